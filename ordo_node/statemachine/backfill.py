"""BackfillOccurrences: past occurrences of a recurring job run again, chosen by their stored fates.

``reprocess`` chooses, with :func:`chosen` (the API's dry run uses the same
function on the same tables):

- MISSING: occurrences that never got a run: none recorded, or MISSED, PAUSED,
  SKIPPED_OVERLAP or SKIPPED;
- FAILED: occurrences whose run's last attempt FAILED (after its retries);
- ALL: every occurrence whose run is not open (BUFFERED and running ones are left).

Each chosen occurrence gets a run (the job's next ordinal, so it counts toward
``maxRuns``) and its row is recorded again: fate TRIGGERED, reason "backfill".
Live occurrences go first: a backfilled run's priority is below any a job may
have (see BACKFILL_PRIORITY). At most ``max_concurrent`` backfilled runs of the
job run at once: they hold the concurrency key ``backfill:<job id>`` with that
limit, unless the job has a key of its own, whose limit then binds them.
"""

from __future__ import annotations

from typing import Any

from .. import commands as c
from ..timeutil import format_us
from . import concurrency
from .base import Refused, options_of
from .effects import Effects
from .triggers import TriggerCommands

REPROCESS = ("MISSING", "FAILED", "ALL")
# Below the lowest priority a job may have (-1000: api/validate.MAX_PRIORITY).
BACKFILL_PRIORITY = -2001
_NEVER_RAN = ("MISSED", "PAUSED", "SKIPPED_OVERLAP", "SKIPPED")
_OPEN = ("PENDING", "ASSIGNED", "RUNNING")


def chosen(reprocess: str, fate: str | None, outcome: str) -> bool:
    """Whether an occurrence with this stored ``fate`` (None: none recorded) and its run's last attempt
    state ``outcome`` ("" without a run) is backfilled under ``reprocess``. Pure."""
    if reprocess == "MISSING":
        return fate is None or fate in _NEVER_RAN
    if reprocess == "FAILED":
        return fate == "TRIGGERED" and outcome == "FAILED"
    if reprocess == "ALL":
        return fate != "BUFFERED" and outcome not in _OPEN
    raise ValueError(f"unknown reprocess {reprocess!r}")


class BackfillCommands(TriggerCommands):
    """BackfillOccurrences."""

    def backfill(self, cmd: c.BackfillOccurrences, fx: Effects) -> Any:
        """Create a run for each listed occurrence its stored fate still chooses."""
        job = self.job(cmd.job_id)
        if job is None:
            raise Refused("NOT_FOUND", f"jobId: no job {cmd.job_id}")
        options = options_of(job["options"])
        if not options.get("cron"):
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is not recurring; nothing to backfill")
        if job["state"] == "CANCELLED":
            raise Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is CANCELLED")
        own_key = concurrency.key_of(options)
        ordinal = job["occurrences"]
        runs: list[list[Any]] = []
        for occ in cmd.occurrences:
            fate, outcome = self.fate_and_outcome(cmd.job_id, occ.nominal)
            if not chosen(cmd.reprocess, fate, outcome):
                continue
            ordinal += 1
            run = self.new_run(job, ordinal, occ.nominal, cmd.at, fx)
            key = (None, None) if own_key else (f"backfill:{cmd.job_id}", cmd.max_concurrent)
            self.db.execute(
                "UPDATE runs SET priority = ?, concurrency_key = COALESCE(?, concurrency_key),"
                " concurrency_limit = COALESCE(?, concurrency_limit) WHERE run_id = ? AND attempt = ?",
                (BACKFILL_PRIORITY, *(key if cmd.max_concurrent else (None, None)), *run),
            )
            concurrency.hold_if_full(self.db, *run)
            self.db.execute(
                "INSERT OR REPLACE INTO occurrences (job_id, nominal, fire_at, fate, reason, run_id,"
                " decided_at, ordinal) VALUES (?, ?, ?, 'TRIGGERED', 'backfill', ?, ?, ?)",
                (cmd.job_id, occ.nominal, occ.fire_at, run[0], cmd.at, ordinal),
            )
            was = fate or "none recorded"
            self.event(
                cmd.job_id,
                "TRIGGERED",
                cmd.at,
                cmd.node,
                run,
                f"backfill {format_us(occ.nominal)} (was {was})",
            )
            runs.append([occ.nominal, run[0]])
        if runs:
            self.db.execute(
                "UPDATE jobs SET occurrences = ?, updated_at = ? WHERE id = ?", (ordinal, cmd.at, cmd.job_id)
            )
            fx.triggered.append(cmd.job_id)
            self.settle(cmd.job_id, cmd.at, "SUCCEEDED")
        return {"job_id": cmd.job_id, "runs": runs}

    def fire(self, cmd: c.TriggerJobs | c.BackfillOccurrences, fx: Effects) -> Any:
        """Occurrences that get runs: those due (TriggerJobs), or past ones run again (a backfill)."""
        if isinstance(cmd, c.BackfillOccurrences):
            return self.backfill(cmd, fx)
        return self.trigger(cmd, fx)

    def fate_and_outcome(self, job_id: str, nominal: int) -> tuple[str | None, str]:
        """The stored fate of one occurrence (None if none), and its run's last attempt state ("")."""
        row = self.db.execute(
            "SELECT o.fate, COALESCE((SELECT r.state FROM runs r WHERE r.run_id = o.run_id"
            " ORDER BY r.attempt DESC LIMIT 1), '') FROM occurrences o WHERE o.job_id = ? AND o.nominal = ?",
            (job_id, nominal),
        ).fetchone()
        return (row[0], row[1]) if row is not None else (None, "")
