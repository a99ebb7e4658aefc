"""The state machine's transitions: what each command does to the tables.

Called only from :meth:`Store.apply`, inside its transaction, on the Raft
tick thread. Everything here is deterministic: times come from the command,
and the only computations are pure (the overlap policy, the retry backoff,
both in ``schedule.py``); schedule arithmetic that needs a time-zone database
is done by the proposer and arrives in the command. Every transition checks
the state it expects; a command that no longer fits changes nothing and says
why in its result. ``Refused`` rolls a whole command back.
"""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from typing import Any

from . import commands as c
from .effects import Effects
from .schedule import backoff_delay, overlap_decision
from .timeutil import format_us

OPEN = ("PENDING", "ASSIGNED", "RUNNING")
FINAL = ("SUCCEEDED", "FAILED", "DEAD_LETTER", "CANCELLED")
DEFAULT_BACKOFF = {"initial": 1_000_000, "multiplier": 2.0, "max": 300_000_000, "jitter": 0.0}


# A batch of jobs is often due at a few distinct times: format each once.
_due_text = lru_cache(maxsize=1024)(format_us)


class Refused(Exception):
    """Rolls a whole command back; its result is the refusal."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.result = {"error": code, "message": message}


def options_of(text: str) -> dict[str, Any]:
    """A job's stored options (schedule and policies) as a dict; {} for a plain one-off job."""
    return json.loads(text) if text else {}


class Transitions:
    """One method per command; ``db`` is the store's write connection, mid-transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        # History entries of the command being applied, written together (one
        # executemany) in the order they were made; see :meth:`flush_events`.
        self._events: list[tuple[Any, ...]] = []
        # Writes of the plain one-off jobs' fast paths, by statement, written with one
        # executemany each; see :meth:`later`.
        self._writes: dict[str, list[tuple[Any, ...]]] = {}

    def dispatch(self, cmd: c.Command, fx: Effects) -> Any:
        """Apply ``cmd``; return its result."""
        # What a refused command left behind was rolled back with it.
        self._events.clear()
        self._writes.clear()
        result = self._dispatch(cmd, fx)
        self.flush_writes()
        self.flush_events()
        return result

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run ``sql`` with ``params`` at the next :meth:`flush_writes`, grouped with the same statement.

        Only for rows that nothing reads before the flush: the fast paths of
        plain one-off jobs use it, and every other path of the same command
        flushes first.
        """
        self._writes.setdefault(sql, []).append(params)

    def flush_writes(self) -> None:
        """Run the writes :meth:`later` kept, statement by statement."""
        for sql, rows in self._writes.items():
            self.db.executemany(sql, rows)
        self._writes.clear()

    def flush_events(self) -> None:
        """Write the history entries made so far, in order (their ``seq`` follows the order of the calls)."""
        if self._events:
            self.db.executemany(
                "INSERT INTO events (job_id, type, at, node_id, run_id, attempt, message)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                self._events,
            )
            self._events.clear()

    def _dispatch(self, cmd: c.Command, fx: Effects) -> Any:
        match cmd:
            case c.SubmitJobs():
                return self.submit(cmd, fx)
            case c.TriggerJobs():
                return self.trigger(cmd, fx)
            case c.AssignRuns():
                return self.assign(cmd, fx)
            case c.RecordRunUpdates():
                return self.record(cmd, fx)
            case c.RenewLeases():
                return self.renew(cmd)
            case c.ExpireRuns():
                return self.expire(cmd, fx)
            case c.CancelJob() | c.RetryJob() | c.PauseJob():
                return self.operate(cmd, fx)
            case c.Prune():
                return self.prune(cmd)
            case c.MarkWaiting():
                return self.mark_waiting(cmd)
            case c.ChangeMember():
                return self.change_member(cmd, fx)
            case c.Barrier():
                return {"index": fx.index}

    def operate(self, cmd: c.CancelJob | c.RetryJob | c.PauseJob, fx: Effects) -> Any:
        """An operator's command on one job."""
        match cmd:
            case c.CancelJob():
                return self.cancel(cmd, fx)
            case c.RetryJob():
                return self.retry(cmd, fx)
            case c.PauseJob():
                return self.pause(cmd, fx)

    # -- helpers ------------------------------------------------------------------

    def event(
        self,
        job_id: str,
        type_: str,
        at: int,
        node: str,
        run: tuple[str, int] | None = None,
        message: str = "",
    ) -> None:
        """Append one entry to the job's history (written at the end of the command or before a savepoint)."""
        self._events.append(
            (job_id, type_, at, node, run[0] if run else None, run[1] if run else None, message)
        )

    def job(self, job_id: str) -> sqlite3.Row | None:
        """The job's row (a mapping by column name)."""
        cur = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
        cur.row_factory = sqlite3.Row
        row: sqlite3.Row | None = cur.fetchone()
        return row

    def new_run(
        self,
        job: sqlite3.Row,
        ordinal: int,
        nominal: int,
        at: int,
        fx: Effects,
        *,
        not_before: int | None = None,
    ) -> tuple[str, int]:
        """Create attempt 1 of the job's run number ``ordinal``; it waits for an executor."""
        run = (f"{job['id']}:{ordinal}", 1)
        priority = options_of(job["options"]).get("priority", 0)
        self.db.execute(
            "INSERT INTO runs (run_id, attempt, job_id, state, scheduled_at, triggered_at, priority,"
            " not_before,"
            " failures_before) VALUES (?, ?, ?, 'PENDING', ?, ?, ?, ?, 0)",
            (run[0], run[1], job["id"], nominal, at, priority, not_before),
        )
        fx.pending.append(run)
        return run

    def next_attempt(
        self,
        run: tuple[str, int],
        fx: Effects,
        *,
        failures: int | None = None,
        not_before: int | None = None,
        triggered_at: int | None = None,
    ) -> tuple[str, int]:
        """Queue the attempt after ``run``: same job, occurrence and priority; its trigger time and
        failure count carried over unless given; waiting until ``not_before`` if given."""
        nxt = (run[0], run[1] + 1)
        self.db.execute(
            "INSERT INTO runs (run_id, attempt, job_id, state, scheduled_at, triggered_at, priority,"
            " not_before, failures_before) SELECT run_id, ?, job_id, 'PENDING', scheduled_at,"
            " COALESCE(?, triggered_at), priority, ?, COALESCE(?, failures_before)"
            " FROM runs WHERE run_id = ? AND attempt = ?",
            (nxt[1], triggered_at, not_before, failures, *run),
        )
        fx.pending.append(nxt)
        return nxt

    def settle(self, job_id: str, at: int, final: str) -> None:
        """Set the job's state from its open runs and schedule; ``final`` when nothing is left of it."""
        job = self.job(job_id)
        if job is None or job["state"] in ("CANCELLED", "PAUSED"):
            return
        rows = self.db.execute(
            "SELECT state, not_before, waiting, scheduled_at FROM runs"
            " WHERE job_id = ? AND state IN ('PENDING', 'ASSIGNED', 'RUNNING')",
            (job_id,),
        ).fetchall()
        states = {r[0] for r in rows}
        ready = [r for r in rows if r[0] == "PENDING" and (r[1] or 0) <= at]
        if "RUNNING" in states:
            state = "RUNNING"
        elif ready and "ASSIGNED" not in states and all(r[2] for r in ready):
            state = "WAITING"
        elif rows and all(r[3] > at for r in rows):
            # Triggered ahead of its time (a one-off job): to its users the job is
            # still scheduled, its run assigned and held until then.
            state = "SCHEDULED"
        elif "ASSIGNED" in states or ready:
            state = "TRIGGERED"
        elif states:
            state = "RETRYING"
        elif job["armed"]:
            state = "SCHEDULED"
        else:
            state = final
        self.db.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?", (state, at, job_id))

    # -- submit and trigger ---------------------------------------------------------

    def submit(self, cmd: c.SubmitJobs, fx: Effects) -> Any:
        """Create the jobs. Atomic: one refusal refuses all. Otherwise each job succeeds or fails alone."""
        ids: list[str | None] = []
        created: list[bool] = []
        errors: list[dict[str, str] | None] = []
        taken = self.existing_ids([spec.job_id for spec in cmd.jobs])
        for spec in cmd.jobs:
            if cmd.atomic:
                job_id, new = self.submit_one(spec, cmd, fx, taken)
                errors.append(None)
            else:
                # submit_one refuses a job before it writes anything for it, so a
                # refusal needs no savepoint to undo: the other jobs go on.
                try:
                    job_id, new = self.submit_one(spec, cmd, fx, taken)
                    errors.append(None)
                except Refused as refusal:
                    job_id, new = None, False
                    errors.append(refusal.result)
            ids.append(job_id)
            created.append(new)
        result: dict[str, Any] = {"job_ids": ids, "created": created}
        if not cmd.atomic:
            result["errors"] = errors
        return result

    def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of these job ids exist (one query per 500)."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.execute(f"SELECT id FROM jobs WHERE id IN ({marks})", chunk))
        return found

    def submit_one(
        self, spec: c.JobSpec, cmd: c.SubmitJobs, fx: Effects, taken: set[str] | None = None
    ) -> tuple[str, bool]:
        """Create one job (or find it by its idempotency key); (job id, created).

        ``taken``: the job ids known to exist (read in bulk by :meth:`submit`); a
        job created here is added to it. Every refusal (Refused) comes before the
        first write: a grouped submission relies on it to go on with the other jobs.
        """
        if spec.idempotency_key:
            row = self.db.execute(
                "SELECT id, spec_hash FROM jobs WHERE idempotency_key = ?", (spec.idempotency_key,)
            ).fetchone()
            if row is not None:
                if row[1] != spec.spec_hash:
                    raise Refused(
                        "ALREADY_EXISTS",
                        f"idempotencyKey: '{spec.idempotency_key}' was used for job {row[0]}"
                        " with a different definition",
                    )
                return row[0], False
        exists = (
            spec.job_id in taken
            if taken is not None
            else self.db.execute("SELECT 1 FROM jobs WHERE id = ?", (spec.job_id,)).fetchone()
        )
        if exists:
            raise Refused("ALREADY_EXISTS", f"jobId: job {spec.job_id} exists")
        if spec.options and options_of(spec.options).get("long_running"):
            self.one_long_running_per_name(spec)
        self.db.execute(
            "INSERT INTO jobs (id, name, type, payload, state, run_at, due_at, next_nominal, armed,"
            " created_at, updated_at, idempotency_key, spec_hash, submitted_to, options)"
            " VALUES (?, ?, ?, ?, 'SCHEDULED', ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (
                spec.job_id,
                spec.name,
                spec.type,
                spec.payload,
                spec.run_at,
                spec.run_at,
                spec.first_nominal,
                cmd.at,
                cmd.at,
                spec.idempotency_key or None,
                spec.spec_hash,
                cmd.node,
                spec.options,
            ),
        )
        self.event(spec.job_id, "SCHEDULED", cmd.at, cmd.node, message=f"due {_due_text(spec.run_at)}")
        if taken is not None:
            taken.add(spec.job_id)
        fx.scheduled.append((spec.job_id, spec.run_at))
        if fx.earliest_due is None or spec.run_at < fx.earliest_due:
            fx.earliest_due = spec.run_at
        return spec.job_id, True

    def jobs_by_id(self, ids: list[str]) -> dict[str, sqlite3.Row]:
        """The rows of the jobs with these ids (one query per few hundred), by id."""
        out: dict[str, sqlite3.Row] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            cur = self.db.execute(f"SELECT * FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            cur.row_factory = sqlite3.Row
            out.update((row["id"], row) for row in cur)
        return out

    def trigger(self, cmd: c.TriggerJobs, fx: Effects) -> Any:
        """Trigger each job still due at the time its trigger names; then apply the assignments."""
        triggered: list[str] = []
        skipped: dict[str, str] = {}
        given = {(a.run_id, a.attempt): a for a in cmd.assignments}
        assigned: list[list[Any]] = []
        jobs = self.jobs_by_id([t.job_id for t in cmd.triggers])
        seen: set[str] = set()
        for t in cmd.triggers:
            # A job named twice in one command is read again: the first trigger changed it.
            if t.job_id in seen:
                self.flush_writes()
            job = self.job(t.job_id) if t.job_id in seen else jobs.get(t.job_id)
            seen.add(t.job_id)
            if job is None:
                skipped[t.job_id] = "no such job"
                continue
            if not job["armed"] or job["due_at"] != t.due_at:
                due = format_us(job["due_at"]) if job["due_at"] is not None else "none"
                skipped[t.job_id] = f"not due: state {job['state']}, due {due}"
                continue
            if not t.occurrences and not job["options"]:
                a = given.pop((f"{t.job_id}:1", 1), None)
                self.trigger_one_off(job, t, cmd, fx, a)
                triggered.append(t.job_id)
                if a is not None:
                    assigned.append([a.run_id, a.attempt, a.node_id])
                continue
            self.flush_writes()
            occurrences = t.occurrences or (c.Occurrence(t.due_at, t.due_at, "run"),)
            ran = self.occurrences(job, occurrences, cmd, fx)
            armed = t.next_due is not None
            self.db.execute(
                "UPDATE jobs SET due_at = ?, next_nominal = ?, armed = ?, occurrences = occurrences + ?,"
                " updated_at = ? WHERE id = ?",
                (t.next_due, t.next_nominal, int(armed), len(occurrences), cmd.at, t.job_id),
            )
            if armed and t.next_due is not None and (fx.earliest_due is None or t.next_due < fx.earliest_due):
                fx.earliest_due = t.next_due
            self.settle(t.job_id, cmd.at, "SUCCEEDED")
            if ran:
                triggered.append(t.job_id)
                fx.triggered.append(t.job_id)
        # The other assignments (runs of jobs with options, or of triggers skipped
        # above) take the general path, guarded like AssignRuns.
        self.flush_writes()
        for a in given.values():
            if self.assign_one(a, cmd.at, cmd.lease_until, cmd.node, fx):
                assigned.append([a.run_id, a.attempt, a.node_id])
        result: dict[str, Any] = {"triggered": triggered, "skipped": skipped}
        if cmd.assignments:
            result["assigned"] = assigned
        return result

    def trigger_one_off(
        self, job: sqlite3.Row, t: c.Trigger, cmd: c.TriggerJobs, fx: Effects, a: c.Assignment | None = None
    ) -> None:
        """The common case, kept short: a plain one-off job's one occurrence becomes its one run.

        It has no policies, so the outcome is what :meth:`occurrences` and
        :meth:`settle` would decide: the run is pending and the job TRIGGERED
        (SCHEDULED while the trigger is ahead of the due time).
        With an assignment ``a`` the run is created assigned, as :meth:`assign_one`
        would leave it.
        """
        run = (f"{job['id']}:1", 1)
        if a is None:
            self.later(
                "INSERT INTO runs (run_id, attempt, job_id, state, scheduled_at, triggered_at,"
                " failures_before) VALUES (?, 1, ?, 'PENDING', ?, ?, 0)",
                (run[0], job["id"], t.due_at, cmd.at),
            )
        else:
            self.later(
                "INSERT INTO runs (run_id, attempt, job_id, state, node_id, scheduled_at, triggered_at,"
                " assigned_at, lease_until, boot_id, failures_before)"
                " VALUES (?, 1, ?, 'ASSIGNED', ?, ?, ?, ?, ?, ?, 0)",
                (
                    run[0],
                    job["id"],
                    a.node_id,
                    t.due_at,
                    cmd.at,
                    cmd.at,
                    cmd.lease_until or None,
                    a.boot_id or None,
                ),
            )
        self.later(
            "INSERT INTO occurrences (job_id, nominal, fire_at, fate, reason, run_id, decided_at, ordinal)"
            " VALUES (?, ?, ?, 'TRIGGERED', '', ?, ?, 1)",
            (job["id"], t.due_at, t.due_at, run[0], cmd.at),
        )
        # Triggered ahead of its time, the job still shows SCHEDULED (as settle() has it).
        self.later(
            "UPDATE jobs SET state = ?, due_at = NULL, armed = 0, occurrences = 1, updated_at = ?"
            " WHERE id = ?",
            ("SCHEDULED" if t.due_at > cmd.at else "TRIGGERED", cmd.at, job["id"]),
        )
        self.event(
            job["id"], "TRIGGERED", cmd.at, cmd.node, run, f"lateness_ms={(cmd.at - t.due_at) / 1000:.1f}"
        )
        fx.triggered.append(job["id"])
        if a is None:
            fx.pending.append(run)
            return
        self.event(job["id"], "ASSIGNED", cmd.at, a.node_id, run, f"by {cmd.node}")
        fx.assigned.append((a.run_id, a.attempt, a.node_id))

    def occurrences(
        self, job: sqlite3.Row, occs: tuple[c.Occurrence, ...], cmd: c.TriggerJobs, fx: Effects
    ) -> int:
        """Record each occurrence with its fate; create the runs the policies allow. Returns runs created."""
        ordinal = job["occurrences"]
        overlap = options_of(job["options"]).get("overlap", "ALLOW")
        created = 0
        for occ in occs:
            ordinal += 1
            fate, reason, run_id = self.fate_of(job, occ, overlap, cmd.at, fx)
            if fate == "TRIGGERED":
                run = self.new_run(job, ordinal, occ.nominal, cmd.at, fx)
                run_id = run[0]
                created += 1
                late_ms = (cmd.at - occ.fire_at) / 1000
                self.event(
                    job["id"],
                    "TRIGGERED",
                    cmd.at,
                    cmd.node,
                    run,
                    f"lateness_ms={late_ms:.1f} {reason}".strip(),
                )
            else:
                self.event(
                    job["id"],
                    "SKIPPED",
                    cmd.at,
                    cmd.node,
                    message=f"{fate} {format_us(occ.nominal)}: {reason}",
                )
            self.db.execute(
                "INSERT OR REPLACE INTO occurrences (job_id, nominal, fire_at, fate, reason, run_id,"
                " decided_at,"
                " ordinal) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job["id"], occ.nominal, occ.fire_at, fate, reason, run_id, cmd.at, ordinal),
            )
        return created

    def fate_of(
        self, job: sqlite3.Row, occ: c.Occurrence, overlap: str, at: int, fx: Effects
    ) -> tuple[str, str, str | None]:
        """The fate of one occurrence: the leader's decision, then the overlap policy."""
        if occ.decision == "missed":
            return "MISSED", occ.reason, None
        if occ.decision == "paused":
            return "PAUSED", occ.reason, None
        open_runs = self.db.execute(
            "SELECT run_id, attempt, state, node_id FROM runs WHERE job_id = ? AND state IN (?, ?, ?)",
            (job["id"], *OPEN),
        ).fetchall()
        buffered = self.db.execute(
            "SELECT COUNT(*) FROM occurrences WHERE job_id = ? AND fate = 'BUFFERED'", (job["id"],)
        ).fetchone()[0]
        decision = overlap_decision(overlap, len(open_runs), buffered)
        if decision == "SKIP":
            return (
                "SKIPPED_OVERLAP",
                f"previous run {open_runs[0][0]} still running (overlap {overlap})",
                None,
            )
        if decision == "BUFFER":
            return "BUFFERED", f"waits for run {open_runs[0][0]} to end (overlap BUFFER_ONE)", None
        if decision == "CANCEL_OTHER":
            for run_id, attempt, _, node_id in open_runs:
                self.end_run(
                    run_id, attempt, "CANCELLED", at, "cancelled by a newer occurrence (overlap CANCEL_OTHER)"
                )
                fx.cancelled_runs.append((run_id, attempt, node_id or ""))
            return "TRIGGERED", "cancelled the previous run (overlap CANCEL_OTHER)", None
        return "TRIGGERED", occ.reason, None

    def end_run(self, run_id: str, attempt: int, state: str, at: int, error: str = "") -> None:
        """Close one attempt."""
        self.db.execute(
            "UPDATE runs SET state = ?, finished_at = ?, error = COALESCE(NULLIF(?, ''), error)"
            " WHERE run_id = ? AND attempt = ?",
            (state, at, error, run_id, attempt),
        )

    def start_buffered(self, job_id: str, at: int, fx: Effects) -> None:
        """The run before a BUFFERED occurrence ended: run it now."""
        row = self.db.execute(
            "SELECT nominal, ordinal FROM occurrences WHERE job_id = ? AND fate = 'BUFFERED' ORDER BY"
            " nominal LIMIT 1",
            (job_id,),
        ).fetchone()
        job = self.job(job_id)
        if row is None or job is None or job["state"] in ("CANCELLED", "PAUSED"):
            return
        run = self.new_run(job, row[1], row[0], at, fx)
        self.db.execute(
            "UPDATE occurrences SET fate = 'TRIGGERED', run_id = ?, reason = 'buffered until the previous"
            " run ended',"
            " decided_at = ? WHERE job_id = ? AND nominal = ?",
            (run[0], at, job_id, row[0]),
        )
        self.event(job_id, "TRIGGERED", at, job["submitted_to"], run, "buffered until the previous run ended")

    # -- assignment and outcomes ----------------------------------------------------

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
        if options != "":
            self.flush_writes()
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
        fx.assigned.append((a.run_id, a.attempt, a.node_id))
        return True

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
                    self.settle(job_id, u.at, "RUNNING")
            elif u.kind in ("succeeded", "failed") and state in ("ASSIGNED", "RUNNING"):
                final = "SUCCEEDED" if u.kind == "succeeded" else "FAILED"
                if state == "ASSIGNED":  # its start was reported with the outcome
                    self.event(job_id, "STARTED", u.started_at or u.at, cmd.node, run)
                self.later(
                    "UPDATE runs SET state = ?, started_at = COALESCE(started_at, NULLIF(?, 0), ?),"
                    " finished_at = ?, result = ?, error = ? WHERE run_id = ? AND attempt = ?",
                    (final, u.started_at, u.at, u.at, u.result or None, u.error or None, *run),
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
                self.start_buffered(job_id, u.at, fx)
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

    # -- operator commands ------------------------------------------------------------

    def cancel(self, cmd: c.CancelJob, fx: Effects) -> Any:
        job = self.job(cmd.job_id)
        if job is None:
            raise Refused("NOT_FOUND", f"jobId: no job {cmd.job_id}")
        state = job["state"]
        if state in ("SUCCEEDED", "FAILED", "DEAD_LETTER", "CANCELLED"):
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is {state}; nothing to cancel")
        for run_id, attempt, node_id in self.db.execute(
            "SELECT run_id, attempt, node_id FROM runs WHERE job_id = ? AND state IN (?, ?, ?)",
            (cmd.job_id, *OPEN),
        ).fetchall():
            self.end_run(run_id, attempt, "CANCELLED", cmd.at, "job cancelled")
            fx.cancelled_runs.append((run_id, attempt, node_id or ""))
        if not job["occurrences"] and job["due_at"] is not None:
            self.db.execute(
                "INSERT OR IGNORE INTO occurrences (job_id, nominal, fire_at, fate, reason, decided_at,"
                " ordinal)"
                " VALUES (?, ?, ?, 'CANCELLED', 'the job was cancelled before it fell due', ?, 1)",
                (cmd.job_id, job["next_nominal"] or job["due_at"], job["due_at"], cmd.at),
            )
        self.db.execute(
            "UPDATE jobs SET state = 'CANCELLED', armed = 0, updated_at = ? WHERE id = ?",
            (cmd.at, cmd.job_id),
        )
        self.event(cmd.job_id, "CANCELLED", cmd.at, cmd.node, message=f"cancelled while {state}")
        return {"job_id": cmd.job_id}

    def retry(self, cmd: c.RetryJob, fx: Effects) -> Any:
        job = self.job(cmd.job_id)
        if job is None:
            raise Refused("NOT_FOUND", f"jobId: no job {cmd.job_id}")
        row = self.db.execute(
            "SELECT run_id, attempt, state FROM runs WHERE job_id = ? ORDER BY triggered_at DESC, attempt"
            " DESC LIMIT 1",
            (cmd.job_id,),
        ).fetchone()
        if job["state"] not in ("FAILED", "DEAD_LETTER") and not (
            job["options"] and row is not None and row[2] == "FAILED"
        ):
            raise Refused(
                "FAILED_PRECONDITION", f"job {cmd.job_id} is {job['state']}; only a failed job is retried"
            )
        if row is None or row[2] != "FAILED":
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} has no failed run to retry")
        nxt = self.next_attempt((row[0], row[1]), fx, failures=0, triggered_at=cmd.at)
        self.event(cmd.job_id, "RETRIED", cmd.at, cmd.node, nxt, "retry requested")
        self.settle(cmd.job_id, cmd.at, "TRIGGERED")
        return {"job_id": cmd.job_id, "run": list(nxt)}

    def pause(self, cmd: c.PauseJob, fx: Effects) -> Any:
        job = self.job(cmd.job_id)
        if job is None:
            raise Refused("NOT_FOUND", f"jobId: no job {cmd.job_id}")
        if not options_of(job["options"]).get("cron"):
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is not recurring; cancel it instead")
        if cmd.pause:
            if job["state"] in ("CANCELLED", "PAUSED", "SUCCEEDED", "FAILED", "DEAD_LETTER"):
                raise Refused(
                    "FAILED_PRECONDITION", f"job {cmd.job_id} is {job['state']}; it cannot be paused"
                )
            self.db.execute(
                "UPDATE jobs SET state = 'PAUSED', armed = 0, paused_at = ?, updated_at = ? WHERE id = ?",
                (cmd.at, cmd.at, cmd.job_id),
            )
            self.event(cmd.job_id, "PAUSED", cmd.at, cmd.node, message=cmd.note)
        else:
            if job["state"] != "PAUSED":
                raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is {job['state']}, not PAUSED")
            armed = job["due_at"] is not None
            self.db.execute(
                "UPDATE jobs SET state = 'SCHEDULED', armed = ?, resumed_at = ?, updated_at = ? WHERE id = ?",
                (int(armed), cmd.at, cmd.at, cmd.job_id),
            )
            self.event(cmd.job_id, "RESUMED", cmd.at, cmd.node, message=cmd.note)
            self.settle(cmd.job_id, cmd.at, "SUCCEEDED")
            if armed:
                fx.earliest_due = job["due_at"]
                fx.scheduled.append((cmd.job_id, job["due_at"]))
        return {"job_id": cmd.job_id}

    # -- retention ------------------------------------------------------------------

    def prune(self, cmd: c.Prune) -> Any:
        """Drop old history, oldest first, at most ``cmd.limit`` rows of each kind."""
        occurrences = runs = 0
        for job_id, count in self.db.execute(
            "SELECT id, occurrences FROM jobs WHERE occurrences > ? AND occurrences > 1 LIMIT 1000",
            (cmd.keep_runs,),
        ).fetchall():
            if occurrences >= cmd.limit:
                break
            cut = count - cmd.keep_runs  # ordinals up to this one go
            old = self.db.execute(
                "SELECT nominal, run_id FROM occurrences WHERE job_id = ? AND ordinal <= ? LIMIT ?",
                (job_id, cut, cmd.limit - occurrences),
            ).fetchall()
            for nominal, run_id in old:
                if run_id is not None:
                    open_ = self.db.execute(
                        "SELECT 1 FROM runs WHERE run_id = ? AND state IN (?, ?, ?)", (run_id, *OPEN)
                    ).fetchone()
                    if open_:
                        continue
                    runs += self.db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount
                self.db.execute("DELETE FROM occurrences WHERE job_id = ? AND nominal = ?", (job_id, nominal))
                occurrences += 1
        events = self.db.execute(
            # The oldest ``limit`` entries by seq, those of them older than
            # events_before: a bounded read with no index on ``at`` (which every
            # new entry would pay for). Entries are written in log order, so
            # seq order is time order but for clock steps between leaders.
            "DELETE FROM events WHERE seq IN"
            " (SELECT seq FROM (SELECT seq, at FROM events ORDER BY seq LIMIT ?) WHERE at < ?)",
            (cmd.limit, cmd.events_before),
        ).rowcount
        newest = self.db.execute("SELECT COALESCE(MAX(applied_index), 0) FROM requests").fetchone()[0]
        requests = self.db.execute(
            "DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests WHERE applied_index < ?"
            " ORDER BY applied_index LIMIT ?)",
            (newest - cmd.keep_requests, cmd.limit),
        ).rowcount
        return {"occurrences": occurrences, "runs": runs, "events": events, "requests": requests}

    def one_long_running_per_name(self, spec: c.JobSpec) -> None:
        """Refuse a second active long-running job with the same name."""
        for job_id, state, options in self.db.execute(
            "SELECT id, state, options FROM jobs WHERE name = ?", (spec.name,)
        ).fetchall():
            if options_of(options).get("long_running") and state not in FINAL:
                raise Refused(
                    "ALREADY_EXISTS",
                    f"name: long-running job '{spec.name}' is already active as job {job_id}",
                )

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

    def change_member(self, cmd: c.ChangeMember, fx: Effects) -> Any:
        """Record a membership change; the API checked it against the view it had."""
        if cmd.add:
            clash = self.db.execute(
                "SELECT id FROM members WHERE state = 'ACTIVE' AND id != ?"
                " AND (grpc_address = ? OR raft_address = ?)",
                (cmd.member_id, cmd.grpc_address, cmd.raft_address),
            ).fetchone()
            if clash:
                raise Refused("ALREADY_EXISTS", f"member {clash[0]} already uses one of these addresses")
        row = self.db.execute(
            "SELECT grpc_address, raft_address FROM members WHERE id = ?", (cmd.member_id,)
        ).fetchone()
        grpc_address = cmd.grpc_address or (row[0] if row else "")
        raft_address = cmd.raft_address or (row[1] if row else "")
        self.db.execute(
            "INSERT OR REPLACE INTO members (id, grpc_address, raft_address, state, changed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (cmd.member_id, grpc_address, raft_address, "ACTIVE" if cmd.add else "REMOVED", cmd.at),
        )
        fx.members_changed = True
        return {"member": cmd.member_id, "state": "ACTIVE" if cmd.add else "REMOVED"}
