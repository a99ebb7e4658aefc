"""Run after: a one-off job triggered once the jobs it names have ended as its condition asks.

A job submitted with ``after`` (job ids) and ``after_condition`` (SUCCEEDED, the
default, or FINISHED) is stored WAITING and not armed, with one ``job_after``
row per job it waits for. Whenever a command ends jobs (settle, a plain job's
success, a cancel: ``Base._ended``), :meth:`FlowCommands.after_ended` looks at
the jobs waiting for them: once all ended as asked the job is armed at
``max(runAt, the command's time)`` and the timekeeper triggers it like any
other; if one ended otherwise it is SKIPPED, its occurrence recorded with fate
SKIPPED and a reason naming that job, and the jobs after it learn of it in turn.
Deterministic: the time is the command's, the order that of the rows.
"""

from __future__ import annotations

from typing import Any

from .. import commands as c
from ..timeutil import format_us
from .base import ENDED, Base, Refused, options_of
from .effects import Effects


def verdict(after: list[str], condition: str, states: dict[str, str]) -> tuple[str, str]:
    """("run", why), ("wait", "") or ("skip", why) for a job after ``after`` (in that order), given
    the jobs' ``states``. Pure."""
    if condition == "SUCCEEDED":
        for job_id in after:
            state = states.get(job_id, "")
            if state in ENDED and state != "SUCCEEDED":
                which = "it" if len(after) == 1 else f"all {len(after)} jobs it waits for"
                return "skip", f"job {job_id} ended {state}; this job runs only once {which} SUCCEEDED"
        if all(states.get(j) == "SUCCEEDED" for j in after):
            return "run", f"after jobs {', '.join(after)} SUCCEEDED"
        return "wait", ""
    if all(states.get(j) in ENDED for j in after):
        return "run", f"after jobs {', '.join(after)} FINISHED"
    return "wait", ""


class FlowCommands(Base):
    """Run after: the checks at submission and the release when the jobs waited for end."""

    def check_after(self, after: list[str], taken: set[str] | None) -> None:
        """Refuse a job after a job that does not exist (before anything is written)."""
        for job_id in after:
            known = job_id in taken if taken is not None else False
            if not known and self.db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise Refused("NOT_FOUND", f"after: no job {job_id}")

    def states_of(self, ids: list[str]) -> dict[str, str]:
        """The states of these jobs, by id."""
        marks = ",".join("?" * len(ids))
        return dict(self.db.execute(f"SELECT id, state FROM jobs WHERE id IN ({marks})", ids).fetchall())

    def wait_after(self, spec: c.JobSpec, options: dict[str, Any], cmd: c.SubmitJobs) -> bool:
        """A new job (its ``options`` read): record what it runs after; True if it may run at its time
        (nothing to wait for, or all already ended as asked), False if it waits or was skipped."""
        after = options.get("after")
        if not after:
            return True
        self.db.executemany(
            "INSERT OR IGNORE INTO job_after (job_id, after_id) VALUES (?, ?)",
            [(spec.job_id, j) for j in after],
        )
        what, why = verdict(after, options["after_condition"], self.states_of(after))
        if what == "run":
            return True
        if what == "skip":
            self.skip_after(spec.job_id, spec.run_at, why, cmd.at, cmd.node)
            return False
        self.db.execute("UPDATE jobs SET state = 'WAITING', armed = 0 WHERE id = ?", (spec.job_id,))
        return False

    def skip_after(self, job_id: str, due_at: int, why: str, at: int, node: str) -> None:
        """The job will never run: SKIPPED, its one occurrence recorded so, with the reason."""
        self.db.execute(
            "UPDATE jobs SET state = 'SKIPPED', armed = 0, due_at = NULL, occurrences = 1, updated_at = ?"
            " WHERE id = ?",
            (at, job_id),
        )
        self.db.execute(
            "INSERT OR REPLACE INTO occurrences (job_id, nominal, fire_at, fate, reason, decided_at, ordinal)"
            " VALUES (?, ?, ?, 'SKIPPED', ?, ?, 1)",
            (job_id, due_at, due_at, why, at),
        )
        self.event(job_id, "SKIPPED", at, node, message=f"SKIPPED {format_us(due_at)}: {why}")
        self._ended.append((job_id, at))

    def after_ended(self, fx: Effects, node: str) -> None:
        """The jobs this command ended (``_ended``): release or skip the jobs waiting for them, and so on
        down the chain (a skipped job ends too)."""
        queue = self._ended
        done: set[str] = set()
        while queue:
            batch = [j for j, _ in queue if j not in done]
            times = dict(queue)
            self._ended = queue = []
            if not batch:
                break
            done.update(batch)
            marks = ",".join("?" * len(batch))
            rows = self.db.execute(
                f"SELECT job_id, after_id FROM job_after WHERE after_id IN ({marks}) ORDER BY job_id",
                batch,
            ).fetchall()
            seen: set[str] = set()
            for job_id, after_id in rows:
                if job_id in seen:
                    continue
                seen.add(job_id)
                self.decide_after(job_id, times[after_id], fx, node)
            queue = self._ended
        self._ended = []

    def decide_after(self, job_id: str, at: int, fx: Effects, node: str) -> None:
        """One job waiting for others, one of which just ended: run it, skip it, or let it wait."""
        job = self.job(job_id)
        if job is None or job["state"] != "WAITING" or job["armed"]:
            return
        options: dict[str, Any] = options_of(job["options"])
        after = options.get("after") or []
        what, why = verdict(after, options.get("after_condition", "SUCCEEDED"), self.states_of(after))
        if what == "skip":
            self.skip_after(job_id, job["due_at"], why, at, node)
        elif what == "run":
            due = max(job["due_at"], at)
            self.db.execute(
                "UPDATE jobs SET state = 'SCHEDULED', armed = 1, due_at = ?, updated_at = ? WHERE id = ?",
                (due, at, job_id),
            )
            self.event(job_id, "SCHEDULED", at, node, message=f"{why}: due {format_us(due)}")
            fx.schedule(job_id, due)
