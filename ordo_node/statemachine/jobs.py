"""Commands on jobs: submit (one or many), and the operator's cancel, retry, pause and resume."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from functools import lru_cache
from typing import Any

from .. import commands as c
from ..timeutil import format_us
from . import joining
from .base import FINAL, OPEN, Refused, options_of
from .effects import Effects
from .flow import FlowCommands
from .runs import cancel_buffered, start_buffered

# A batch of jobs is often due at a few distinct times: format each once.
_due_text = lru_cache(maxsize=1024)(format_us)


def _by(who: str) -> str:
    """The end of a history message that names who asked: `` by <who>``, or nothing."""
    return f" by {who}" if who else ""


def _noted(cmd: c.PauseJob) -> str:
    """A pause or resume's history message: its note, and who asked."""
    if not cmd.by:
        return cmd.note
    return f"{'paused' if cmd.pause else 'resumed'} by {cmd.by}" + (f": {cmd.note}" if cmd.note else "")


class JobCommands(FlowCommands):
    """SubmitJobs, CancelJob, RetryJob and PauseJob (pause and resume)."""

    def submit(self, cmd: c.SubmitJobs, fx: Effects) -> Any:
        """Create the jobs. Atomic: one refusal refuses all. Otherwise each job succeeds or fails alone."""
        ids: list[str | None] = []
        created: list[bool] = []
        errors: list[dict[str, str] | None] = []
        notes: list[str] = []
        taken = self.existing_ids([spec.job_id for spec in cmd.jobs])
        for spec in cmd.jobs:
            note = ""
            if cmd.atomic:
                job_id, new, note = self.submit_one(spec, cmd, fx, taken)
                errors.append(None)
            else:
                # submit_one refuses a job before it writes anything for it, so a
                # refusal needs no savepoint to undo: the other jobs go on.
                try:
                    job_id, new, note = self.submit_one(spec, cmd, fx, taken)
                    errors.append(None)
                except Refused as refusal:
                    job_id, new = None, False
                    errors.append(refusal.result)
            ids.append(job_id)
            created.append(new)
            notes.append(note)
        result: dict[str, Any] = {"job_ids": ids, "created": created}
        if not cmd.atomic:
            result["errors"] = errors
        if any(notes):  # debounce and singleton (joining.py)
            result["notes"] = notes
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
    ) -> tuple[str, bool, str]:
        """Create one job (or find it by its idempotency key, or join it to the job that holds its
        debounce or singleton key); (job id, created, note: what debounce or singleton did, or "").

        ``taken``: the job ids known to exist (read in bulk by :meth:`submit`); a
        job created here is added to it. Every refusal (Refused) comes before the
        first write: a grouped submission relies on it to go on with the other jobs.
        """
        if spec.idempotency_key:
            found = self.by_idempotency_key(spec)
            if found is not None:
                return found[0], False, found[1]
        options = options_of(spec.options)  # read once for every check and decision below
        self.check_new(spec, options, taken)
        keyed = joining.spec_of(options)
        join = joining.decide(self.db, keyed[0], keyed[1], spec, cmd.at) if keyed else None
        if join is not None and join.action in ("merge", "skip"):
            return join.job_id, False, self.join_existing(join, spec, cmd, fx)
        if keyed and join is not None and join.kind == "debounce" and join.mode == "TRAILING":
            due = joining.trailing_due(keyed[1], spec, cmd.at)
            spec = replace(spec, run_at=due, first_nominal=due)
        if join is not None and join.action == "replace":
            held = self.job(join.job_id)
            if held is not None:
                why = f"cancelled while {join.state}: replaced by job {spec.job_id} ({join.label})"
                self.cancel_job(held, cmd.at, cmd.node, fx, why)
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
        note = ""
        if join is not None:
            joining.remember(self.db, join.kind, join.key, spec.job_id, cmd.at)
            if join.action == "replace":
                note = joining.answer(join)
                self.event(spec.job_id, "JOINED", cmd.at, cmd.node, message=note)
        if options and not self.wait_after(spec, options, cmd):
            return spec.job_id, True, note  # it runs after other jobs (flow.py): not armed yet
        fx.schedule(spec.job_id, spec.run_at)
        return spec.job_id, True, note

    def join_existing(self, join: joining.Join, spec: c.JobSpec, cmd: c.SubmitJobs, fx: Effects) -> str:
        """A debounce merge or a singleton skip: nothing is created; the job kept records it (and a
        TRAILING merge moves its due time and takes the new payload). Returns the submission's note."""
        if join.action == "merge":
            joining.remember(self.db, join.kind, join.key, join.job_id, cmd.at)
            if join.due_at is not None:
                joining.move(self.db, join.job_id, join.due_at, spec.payload, cmd.at)
                fx.schedule(join.job_id, join.due_at)
        self.event(join.job_id, "JOINED", cmd.at, cmd.node, message=joining.merged_event(join, cmd.node))
        note = joining.answer(join)
        if spec.idempotency_key:  # a retry is answered as this one was, not decided again
            self.db.execute(
                "INSERT INTO joined_submissions (idempotency_key, spec_hash, job_id, note)"
                " VALUES (?, ?, ?, ?)",
                (spec.idempotency_key, spec.spec_hash, join.job_id, note),
            )
        return note

    def by_idempotency_key(self, spec: c.JobSpec) -> tuple[str, str] | None:
        """(job id, note) of the submission made before with ``spec``'s idempotency key: the job it
        created, or the one it was merged into or skipped for (debounce, singleton); None if none.
        Refused if that submission had another definition."""
        row = self.db.execute(
            "SELECT id, spec_hash, '' FROM jobs WHERE idempotency_key = ? UNION ALL"
            " SELECT job_id, spec_hash, note FROM joined_submissions WHERE idempotency_key = ? LIMIT 1",
            (spec.idempotency_key, spec.idempotency_key),
        ).fetchone()
        if row is None:
            return None
        if row[1] != spec.spec_hash:
            raise Refused(
                "ALREADY_EXISTS",
                f"idempotencyKey: '{spec.idempotency_key}' was used for job {row[0]}"
                " with a different definition",
            )
        return row[0], row[2]

    def check_new(self, spec: c.JobSpec, options: dict[str, Any], taken: set[str] | None) -> None:
        """Refuse a job whose id exists, a second long-running job of a name, or a job after a job that
        does not exist."""
        exists = (
            spec.job_id in taken
            if taken is not None
            else self.db.execute("SELECT 1 FROM jobs WHERE id = ?", (spec.job_id,)).fetchone()
        )
        if exists:
            raise Refused("ALREADY_EXISTS", f"jobId: job {spec.job_id} exists")
        if options.get("long_running"):
            self.one_long_running_per_name(spec)
        if options.get("after"):
            self.check_after(options["after"], taken)

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

    def operate(self, cmd: c.CancelJob | c.RetryJob | c.PauseJob, fx: Effects) -> Any:
        """An operator's command on one job."""
        match cmd:
            case c.CancelJob():
                return self.cancel(cmd, fx)
            case c.RetryJob():
                return self.retry(cmd, fx)
            case c.PauseJob():
                return self.pause(cmd, fx)

    def cancel(self, cmd: c.CancelJob, fx: Effects) -> Any:
        job = self.job(cmd.job_id)
        if job is None:
            raise Refused("NOT_FOUND", f"jobId: no job {cmd.job_id}")
        state = job["state"]
        if state in ("SUCCEEDED", "FAILED", "DEAD_LETTER", "CANCELLED"):
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is {state}; nothing to cancel")
        self.cancel_job(job, cmd.at, cmd.node, fx, f"cancelled while {state}{_by(cmd.by)}")
        return {"job_id": cmd.job_id}

    def cancel_job(self, job: sqlite3.Row, at: int, node: str, fx: Effects, message: str) -> None:
        """Cancel a job that has not ended: its open attempts (their executors told), its first
        occurrence if it had none yet, the job; ``message`` goes into its history."""
        job_id = job["id"]
        for run_id, attempt, node_id in self.db.execute(
            "SELECT run_id, attempt, node_id FROM runs WHERE job_id = ? AND state IN (?, ?, ?)",
            (job_id, *OPEN),
        ).fetchall():
            self.end_run(run_id, attempt, "CANCELLED", at, "job cancelled")
            fx.cancelled_runs.append((run_id, attempt, node_id or ""))
        cancel_buffered(self.db, job_id, at)  # overlap BUFFER_*: what waited will not run
        if not job["occurrences"] and job["due_at"] is not None:
            self.db.execute(
                "INSERT OR IGNORE INTO occurrences (job_id, nominal, fire_at, fate, reason, decided_at,"
                " ordinal)"
                " VALUES (?, ?, ?, 'CANCELLED', 'the job was cancelled before it fell due', ?, 1)",
                (job_id, job["next_nominal"] or job["due_at"], job["due_at"], at),
            )
        self.db.execute(
            "UPDATE jobs SET state = 'CANCELLED', armed = 0, updated_at = ? WHERE id = ?", (at, job_id)
        )
        self.event(job_id, "CANCELLED", at, node, message=message)
        self._ended.append((job_id, at))

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
        self.event(cmd.job_id, "RETRIED", cmd.at, cmd.node, nxt, f"retry requested{_by(cmd.by)}")
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
            self.event(cmd.job_id, "PAUSED", cmd.at, cmd.node, message=_noted(cmd))
        else:
            if job["state"] != "PAUSED":
                raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is {job['state']}, not PAUSED")
            armed = job["due_at"] is not None
            self.db.execute(
                "UPDATE jobs SET state = 'SCHEDULED', armed = ?, resumed_at = ?, updated_at = ? WHERE id = ?",
                (int(armed), cmd.at, cmd.at, cmd.job_id),
            )
            self.event(cmd.job_id, "RESUMED", cmd.at, cmd.node, message=_noted(cmd))
            # Occurrences buffered behind a run that ended during the pause run now, oldest first.
            start_buffered(self, cmd.job_id, cmd.at, fx)
            self.settle(cmd.job_id, cmd.at, "SUCCEEDED")
            if armed:
                fx.schedule(cmd.job_id, job["due_at"])
        return {"job_id": cmd.job_id}
