"""Commands on attempts: assignment, outcomes and retries, leases, expiry, waiting; buffered occurrences."""

from __future__ import annotations

import sqlite3
from typing import Any

from .. import commands as c
from . import autopause, concurrency, ratelimit
from .base import OPEN, Base, options_of
from .effects import Effects
from .policy import DEFAULT_BACKOFF, backoff_delay


class RunCommands(Base):
    """AssignRuns, RecordRunUpdates, RenewLeases, ExpireRuns and MarkWaiting."""

    def assign(self, cmd: c.AssignRuns, fx: Effects) -> Any:
        accepted: list[list[Any]] = []
        rows = self.runs_by_key([(a.run_id, a.attempt) for a in cmd.assignments])
        for a in cmd.assignments:
            if self.assign_one(a, cmd.at, cmd.lease_until, cmd.node, fx, rows):
                accepted.append([a.run_id, a.attempt, a.node_id])
        return {"assigned": accepted}

    def assign_one(
        self,
        a: c.Assignment,
        at: int,
        lease_until: int,
        by: str,
        fx: Effects,
        rows: dict[tuple[str, int], tuple[Any, ...]] | None = None,
    ) -> bool:
        """Give one pending attempt to ``a.node_id``; False if it is not pending (any more).

        ``rows`` are the attempts as :meth:`runs_by_key` read them before this
        command changed anything; an attempt is looked up again once it was
        assigned here (a command may name it twice).
        """
        key = (a.run_id, a.attempt)
        row = rows.pop(key, None) if rows is not None else None
        if row is None:
            self.flush_writes()
            row = self.runs_by_key([key]).get(key)
        if row is None or row[1] != "PENDING":
            return False
        job_id, options = row[0], row[4]
        ck: tuple[str, int] | None = None  # its concurrency key and limit
        if options != "":
            self.flush_writes()
            opts = options_of(options)
            ck = concurrency.key_of(opts)
            if not self.flow_admits(a, job_id, opts, ck, at, fx):
                return False
        self.later(
            "UPDATE runs SET state = 'ASSIGNED', node_id = ?, assigned_at = ?, lease_until = ?,"
            " waiting = NULL, boot_id = ? WHERE run_id = ? AND attempt = ?",
            (a.node_id, at, lease_until or None, a.boot_id or None, a.run_id, a.attempt),
        )
        self.event(job_id, "ASSIGNED", at, a.node_id, key, f"by {by}")
        if options == "":
            self.set_plain_job_state(job_id, "SCHEDULED" if row[5] > at else "TRIGGERED", at)
        else:
            self.flush_writes()
            self.settle(job_id, at, "TRIGGERED")
            if ck is not None:
                for job, run_id, attempt in concurrency.hold_others(
                    self.db, ck[0], concurrency.held(self.db, ck[0])
                ):
                    self.note_waiting((run_id, attempt), at)
                    self.settle(job, at, "TRIGGERED")
        fx.assigned.append((a.run_id, a.attempt, a.node_id))
        return True

    def flow_admits(
        self,
        a: c.Assignment,
        job_id: str,
        opts: dict[str, Any],
        ck: tuple[str, int] | None,
        at: int,
        fx: Effects,
    ) -> bool:
        """Whether an attempt may be assigned under its concurrency key and rate limit; if not, it stays
        pending and says why (its job WAITING). A rate limit's token is taken here."""
        if ck is not None and concurrency.held(self.db, ck[0]) >= ck[1]:
            concurrency.hold(self.db, a.run_id, a.attempt)  # see concurrency.py
        else:
            rate = ratelimit.rate_of(opts)
            free_at = ratelimit.take(self.db, rate[0], rate[1], rate[2], at) if rate is not None else None
            if rate is None or free_at is None:
                return True
            ratelimit.hold(self.db, a.run_id, a.attempt, ratelimit.reason(rate[0], rate[3], rate[2]), free_at)
            fx.retry_at = min(fx.retry_at or free_at, free_at)
        self.note_waiting((a.run_id, a.attempt), at)
        self.settle(job_id, at, "TRIGGERED")
        return False

    def runs_by_key(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[Any, ...]]:
        """(job id, state, node, failures before, the job's options or None, scheduled time, start
        time) of these attempts, by key."""
        wanted = set(keys)
        ids = sorted({k[0] for k in keys})
        out: dict[tuple[str, int], tuple[Any, ...]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                "SELECT r.run_id, r.attempt, r.job_id, r.state, r.node_id, r.failures_before, j.options,"
                " r.scheduled_at, r.started_at"
                f" FROM runs r LEFT JOIN jobs j ON j.id = r.job_id WHERE r.run_id IN ({marks})",
                chunk,
            ):
                if (row[0], row[1]) in wanted:
                    out[(row[0], row[1])] = row[2:]
        return out

    def record(self, cmd: c.RecordRunUpdates, fx: Effects) -> Any:
        stale: list[list[Any]] = []
        rows = self.runs_by_key([(u.run_id, u.attempt) for u in cmd.updates])
        seen: set[tuple[str, int]] = set()
        for u in cmd.updates:
            run = (u.run_id, u.attempt)
            # An attempt named twice in one command is read again: the first update changed it.
            if run in seen:
                self.flush_writes()
            row = self.runs_by_key([run]).get(run) if run in seen else rows.get(run)
            seen.add(run)
            if row is None or row[2] != cmd.node:
                stale.append([u.run_id, u.attempt, "not assigned to this node"])
                continue
            job_id, state, _, failures_before, options, _, started_at = row
            # A plain one-off job (no options) has one open attempt at a time, no
            # schedule and no policies: that attempt's state is the job's, which is
            # what settle() would find, without reading the job and its runs again.
            plain = options == ""
            if not plain:
                self.flush_writes()
            if u.kind == "started" and state == "ASSIGNED":
                self.later(
                    "UPDATE runs SET state = 'RUNNING', started_at = ? WHERE run_id = ? AND attempt = ?",
                    (u.at, *run),
                )
                self.event(job_id, "STARTED", u.at, cmd.node, run)
                if plain:
                    self.set_plain_job_state(job_id, "RUNNING", u.at)
                else:
                    self.flush_writes()  # settle reads the attempt's new state
                    self.settle(job_id, u.at, "RUNNING")
            elif u.kind in ("succeeded", "failed") and state in ("ASSIGNED", "RUNNING"):
                final = "SUCCEEDED" if u.kind == "succeeded" else "FAILED"
                if state == "ASSIGNED":  # its start was reported with the outcome
                    self.event(job_id, "STARTED", u.started_at or u.at, cmd.node, run)
                self.later(
                    "UPDATE runs SET state = ?, started_at = COALESCE(started_at, NULLIF(?, 0), ?),"
                    " finished_at = ?, result = ?, error = ?, traceback = ? WHERE run_id = ? AND attempt = ?",
                    (
                        final,
                        u.started_at,
                        u.at,
                        u.at,
                        u.result or None,
                        u.error or None,
                        u.traceback or None,
                        *run,
                    ),
                )
                self.event(job_id, final, u.at, cmd.node, run, u.error[:500])
                fx.finished.append((u.run_id, u.attempt, cmd.node, final))
                began = started_at or u.started_at
                if began:
                    fx.run_times.append((cmd.node, max(1, u.at - began)))
                if plain and final == "SUCCEEDED":
                    self.set_plain_job_state(job_id, final, u.at)
                    continue
                self.flush_writes()
                outcome = (
                    final if final == "SUCCEEDED" else self.after_failure(job_id, run, failures_before, u, fx)
                )
                self.pause_on_failure(job_id, options, outcome, u.at, cmd.node)
                start_buffered(self, job_id, u.at, fx)  # the run before a BUFFERED occurrence ended
                self.settle(job_id, u.at, outcome)
            else:
                stale.append([u.run_id, u.attempt, f"run is {state}"])
                if u.kind != "started":
                    self.event(
                        job_id, "STALE", u.at, cmd.node, run, f"{u.kind} refused: the attempt is {state}"
                    )
        return {"stale": stale}

    def set_plain_job_state(self, job_id: str, state: str, at: int) -> None:
        """A plain one-off job takes the state of its one open attempt (settle's answer for it)."""
        if state == "SUCCEEDED":
            self._ended.append((job_id, at))
        self.later(
            "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND state NOT IN ('CANCELLED', 'PAUSED')",
            (state, at, job_id),
        )

    def after_failure(
        self, job_id: str, run: tuple[str, int], failures_before: int, u: c.RunUpdate, fx: Effects
    ) -> str:
        """Retry after the backoff if attempts are left; return the job's final state otherwise."""
        job = self.job(job_id)
        assert job is not None
        options = options_of(job["options"])
        max_attempts = int(options.get("max_attempts", 1))
        failures = failures_before + 1
        if failures < max_attempts:
            b = {**DEFAULT_BACKOFF, **options.get("backoff", {})}
            delay = backoff_delay(
                failures,
                initial=int(b["initial"]),
                multiplier=float(b["multiplier"]),
                maximum=int(b["max"]),
                jitter=float(b["jitter"]),
                key=run[0],
            )
            nxt = self.next_attempt(run, fx, failures=failures, not_before=u.at + delay)
            self.event(
                job_id,
                "RETRIED",
                u.at,
                job["submitted_to"],
                nxt,
                f"failure {failures} of {max_attempts}; next attempt after {delay / 1e6:.3f}s",
            )
            fx.retry_at = min(fx.retry_at or u.at + delay, u.at + delay)
            return "RETRYING"
        if max_attempts > 1:
            self.event(job_id, "DEAD_LETTERED", u.at, job["submitted_to"], run, f"{failures} attempts failed")
            return "DEAD_LETTER"
        return "FAILED"

    def pause_on_failure(self, job_id: str, options: str, outcome: str, at: int, node: str) -> None:
        """A recurring job with pauseOnFailure whose occurrence failed for good: pause it if that makes N
        in a row (autopause.py)."""
        if outcome not in ("FAILED", "DEAD_LETTER") or not options:
            return
        limit = int(options_of(options).get("pause_on_failure", 0))
        note = autopause.pause_if_failing(self.db, job_id, limit, at)
        if note:
            self.event(job_id, "PAUSED", at, node, message=note)

    def renew(self, cmd: c.RenewLeases) -> Any:
        lost: list[list[Any]] = []
        for ref in cmd.runs:
            cur = self.db.execute(
                "UPDATE runs SET lease_until = MAX(COALESCE(lease_until, 0), ?)"
                " WHERE run_id = ? AND attempt = ? AND node_id = ? AND state IN ('ASSIGNED', 'RUNNING')",
                (cmd.lease_until, ref.run_id, ref.attempt, cmd.node),
            )
            if cur.rowcount == 0:
                lost.append([ref.run_id, ref.attempt])
        return {"lost": lost}

    def expire(self, cmd: c.ExpireRuns, fx: Effects) -> Any:
        requeued: list[list[Any]] = []
        for ref in cmd.runs:
            row = self.db.execute(
                "SELECT job_id, state, node_id, lease_until FROM runs WHERE run_id = ? AND attempt = ?",
                (ref.run_id, ref.attempt),
            ).fetchone()
            if row is None or row[1] not in ("ASSIGNED", "RUNNING"):
                continue
            job_id, state, node_id, lease_until = row
            if cmd.check_lease and (lease_until is None or lease_until > cmd.at):
                continue
            self.end_run(ref.run_id, ref.attempt, "LOST", cmd.at, cmd.reason)
            # A lost attempt is not a failure of the handler: the new attempt
            # keeps the failure count, and the trigger time, so it is first in line.
            nxt = self.next_attempt((ref.run_id, ref.attempt), fx)
            self.event(job_id, "LOST", cmd.at, node_id, (ref.run_id, ref.attempt), f"{state}: {cmd.reason}")
            self.settle(job_id, cmd.at, "TRIGGERED")
            fx.cancelled_runs.append((ref.run_id, ref.attempt, node_id))
            requeued.append([*nxt])
        return {"requeued": requeued}

    def mark_waiting(self, cmd: c.MarkWaiting) -> Any:
        """Note why pending attempts wait; their jobs show WAITING."""
        marked = 0
        for ref in cmd.runs:
            row = self.db.execute(
                "SELECT job_id FROM runs WHERE run_id = ? AND attempt = ? AND state = 'PENDING'",
                (ref.run_id, ref.attempt),
            ).fetchone()
            if row is None:
                continue
            self.db.execute(
                "UPDATE runs SET waiting = ? WHERE run_id = ? AND attempt = ?",
                (cmd.reason, ref.run_id, ref.attempt),
            )
            self.settle(row[0], cmd.at, "TRIGGERED")
            marked += 1
        return {"marked": marked}


# Buffered occurrences (overlap BUFFER_ONE and BUFFER_ALL). Functions over the groups' shared helpers
# rather than RunCommands methods, so that JobCommands (resume, cancel) can call them too.


def start_buffered(sm: Base, job_id: str, at: int, fx: Effects) -> bool:
    """Run the job's oldest BUFFERED occurrence now if nothing of the job is open; True if it started.

    Called when a run ended, before an occurrence of the job is decided (TriggerCommands.fate_of: what
    a resume left buffered runs first), and meant for the resume itself (JobCommands). Nothing starts
    while the job is PAUSED (its buffered occurrences wait, still BUFFERED, for the resume) or CANCELLED,
    nor while a run of it is open: an attempt that failed with retries left, or a run still going when
    a paused job is resumed, keeps them waiting until it ends.
    """
    row = sm.db.execute(
        "SELECT nominal, ordinal FROM occurrences WHERE job_id = ? AND fate = 'BUFFERED' ORDER BY"
        " nominal LIMIT 1",
        (job_id,),
    ).fetchone()
    if row is None:
        return False
    job = sm.job(job_id)
    if job is None or job["state"] in ("CANCELLED", "PAUSED"):
        return False
    if sm.db.execute(
        "SELECT 1 FROM runs WHERE job_id = ? AND state IN (?, ?, ?) LIMIT 1", (job_id, *OPEN)
    ).fetchone():
        return False
    run = sm.new_run(job, row[1], row[0], at, fx)
    sm.db.execute(
        "UPDATE occurrences SET fate = 'TRIGGERED', run_id = ?, reason = 'buffered until the previous"
        " run ended',"
        " decided_at = ? WHERE job_id = ? AND nominal = ?",
        (run[0], at, job_id, row[0]),
    )
    sm.event(job_id, "TRIGGERED", at, job["submitted_to"], run, "buffered until the previous run ended")
    return True


BUFFERED_CANCELLED = "it was buffered, waiting for the previous run to end"


def cancel_buffered(db: sqlite3.Connection, job_id: str, at: int) -> int:
    """The job is cancelled: its BUFFERED occurrences will not run, so they are recorded CANCELLED.

    Returns how many were."""
    return db.execute(
        "UPDATE occurrences SET fate = 'CANCELLED', reason = ?, decided_at = ? WHERE job_id = ?"
        " AND fate = 'BUFFERED'",
        (BUFFERED_CANCELLED, at, job_id),
    ).rowcount
