"""TriggerNow: an operator runs a recurring job once, now, beside its schedule.

The run is one extra occurrence whose nominal and fire time are the command's
``at`` (chosen by the proposer: apply reads no clock). Its fate is decided as a
scheduled occurrence's is (:meth:`TriggerCommands.fate_of`, the job's overlap
policy), and its reason says who asked. It takes the job's next ordinal like any
occurrence, so it counts toward ``maxRuns``; the schedule's own next fire time
does not move.
"""

from __future__ import annotations

from typing import Any

from .. import commands as c
from ..timeutil import format_us
from .base import Refused, options_of
from .effects import Effects
from .triggers import TriggerCommands

# States in which a recurring job has no schedule left to add a run to, or must not run.
_REFUSED = ("CANCELLED", "PAUSED", "SUCCEEDED", "FAILED", "DEAD_LETTER")


class ManualCommands(TriggerCommands):
    """TriggerNow."""

    def trigger_now(self, cmd: c.TriggerNow, fx: Effects) -> Any:
        """Record one occurrence at ``cmd.at`` with its fate; create its run if the overlap policy allows."""
        job = self.job(cmd.job_id)
        if job is None:
            raise Refused("NOT_FOUND", f"jobId: no job {cmd.job_id}")
        options = options_of(job["options"])
        if not options.get("cron"):
            raise Refused(
                "FAILED_PRECONDITION", f"job {cmd.job_id} is not recurring; only a recurring job is run now"
            )
        if job["state"] in _REFUSED:
            why = "resume it first" if job["state"] == "PAUSED" else "its schedule has ended"
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is {job['state']}; {why}")
        taken = self.db.execute(
            "SELECT 1 FROM occurrences WHERE job_id = ? AND nominal = ?", (cmd.job_id, cmd.at)
        ).fetchone()
        if taken:
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} has an occurrence at {format_us(cmd.at)}")
        asked = f"triggered now by {cmd.by}" if cmd.by else "triggered now"
        if cmd.note:
            asked += f": {cmd.note}"
        occ = c.Occurrence(cmd.at, cmd.at, "run", asked)
        ordinal = job["occurrences"] + 1
        fate, reason, run_id = self.fate_of(job, occ, options.get("overlap", "ALLOW"), cmd.at, fx)
        if reason != asked:  # the overlap policy had its say: keep who asked, then why
            reason = f"{asked}; {reason}"
        if fate == "TRIGGERED":
            run = self.new_run(job, ordinal, cmd.at, cmd.at, fx)
            run_id = run[0]
            self.event(cmd.job_id, "TRIGGERED", cmd.at, cmd.node, run, f"lateness_ms=0.0 {reason}")
            fx.triggered.append(cmd.job_id)
        else:
            self.event(
                cmd.job_id, "SKIPPED", cmd.at, cmd.node, message=f"{fate} {format_us(cmd.at)}: {reason}"
            )
        self.db.execute(
            "INSERT INTO occurrences (job_id, nominal, fire_at, fate, reason, run_id, decided_at, ordinal)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (cmd.job_id, cmd.at, cmd.at, fate, reason, run_id, cmd.at, ordinal),
        )
        self.db.execute(
            "UPDATE jobs SET occurrences = occurrences + 1, updated_at = ? WHERE id = ?", (cmd.at, cmd.job_id)
        )
        self.settle(cmd.job_id, cmd.at, "SUCCEEDED")
        return {"job_id": cmd.job_id, "fate": fate, "reason": reason, "run_id": run_id or ""}
