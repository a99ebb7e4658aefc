"""TriggerJobs: occurrences that fell due, their fates under the overlap policy, and their runs."""

from __future__ import annotations

import sqlite3
from typing import Any

from .. import commands as c
from ..timeutil import format_us
from .base import OPEN, options_of
from .effects import Effects
from .policy import DEFAULT_BUFFER_LIMIT, overlap_decision
from .runs import RunCommands, start_buffered


class TriggerCommands(RunCommands):
    """TriggerJobs; the assignments it carries go the way of :class:`RunCommands`."""

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
            if armed and t.next_due is not None:
                fx.due_by(t.next_due)
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

    def open_runs(self, job_id: str) -> list[tuple[str, int, str, str | None]]:
        """(run id, attempt, state, node) of the job's open attempts."""
        return self.db.execute(
            "SELECT run_id, attempt, state, node_id FROM runs WHERE job_id = ? AND state IN (?, ?, ?)",
            (job_id, *OPEN),
        ).fetchall()

    def fate_of(
        self, job: sqlite3.Row, occ: c.Occurrence, overlap: str, at: int, fx: Effects
    ) -> tuple[str, str, str | None]:
        """The fate of one occurrence: the leader's decision, then the overlap policy."""
        if occ.decision == "missed":
            return "MISSED", occ.reason, None
        if occ.decision == "paused":
            return "PAUSED", occ.reason, None
        open_runs = self.open_runs(job["id"])
        buffered = self.db.execute(
            "SELECT COUNT(*) FROM occurrences WHERE job_id = ? AND fate = 'BUFFERED'", (job["id"],)
        ).fetchone()[0]
        if buffered and not open_runs and start_buffered(self, job["id"], at, fx):
            # Occurrences still buffered with nothing of the job open (a resume that did not start them):
            # the oldest runs now, and this one is decided behind it, so they keep their order.
            open_runs, buffered = self.open_runs(job["id"]), buffered - 1
        limit = int(options_of(job["options"]).get("buffer_limit", DEFAULT_BUFFER_LIMIT))
        decision = overlap_decision(overlap, len(open_runs), buffered, limit)
        if decision == "SKIP" and overlap == "BUFFER_ALL":
            return (
                "SKIPPED_OVERLAP",
                f"the buffer is full: {buffered} occurrences wait for run {open_runs[0][0]}"
                f" (overlap BUFFER_ALL, bufferLimit {limit})",
                None,
            )
        if decision == "SKIP":
            return (
                "SKIPPED_OVERLAP",
                f"previous run {open_runs[0][0]} still running (overlap {overlap})",
                None,
            )
        if decision == "BUFFER" and overlap == "BUFFER_ALL":
            return (
                "BUFFERED",
                f"waits for run {open_runs[0][0]} to end, {buffered} buffered ahead of it"
                " (overlap BUFFER_ALL)",
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
