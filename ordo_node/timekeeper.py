"""The timekeeper: on the leader only, triggers jobs when they fall due.

It sleeps until the earliest due time (one index seek in SQLite) or until a
newly scheduled job is due sooner, then proposes one TriggerJobs command for
everything due, in batches. It never scans the job table. Exactly-once comes
from the state machine: each trigger is guarded by the job's expected state
and due time, so a trigger proposed twice (a retry, a deposed leader) is a
no-op the second time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress

from . import commands as c
from .consensus import Consensus
from .errors import OrdoError
from .queries import Queries
from .timeutil import now_us

log = logging.getLogger("ordo_node.timekeeper")

# Even with nothing due, look again this often: a safety net against a missed
# wake-up, and cheap (one index seek).
MAX_SLEEP = 5.0


class Timekeeper:
    """Leader-only actor; :meth:`run` until cancelled when leadership ends."""

    def __init__(self, node_id: str, consensus: Consensus, queries: Queries, *, batch: int = 2000) -> None:
        self.node_id = node_id
        self.consensus = consensus
        self.queries = queries
        self.batch = batch
        self._wake = asyncio.Event()
        self._sleeping_until: int | None = None

    def notify_due(self, due_at: int) -> None:
        """A job due at ``due_at`` was scheduled; wake up if that is sooner than planned."""
        if self._sleeping_until is None or due_at < self._sleeping_until:
            self._wake.set()

    async def run(self) -> None:
        """Trigger due jobs until cancelled."""
        while True:
            self._wake.clear()
            if await self.trigger_due():
                continue
            nxt = await self.queries.next_due()
            self._sleeping_until = nxt
            delay = MAX_SLEEP if nxt is None else min(MAX_SLEEP, max(0.0, (nxt - now_us()) / 1e6))
            if delay > 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._sleeping_until = None

    async def trigger_due(self) -> bool:
        """Propose triggers for one batch of due jobs; True if it found any."""
        due = await self.queries.due_jobs(now_us(), self.batch)
        if not due:
            return False
        cmd = c.TriggerJobs(
            request_id=uuid.uuid4().hex,
            at=now_us(),
            node=self.node_id,
            triggers=tuple(c.Trigger(job_id, due_at) for job_id, due_at in due),
        )
        try:
            result = await self.consensus.propose(cmd)
        except OrdoError as e:
            log.warning("trigger batch not committed (%d jobs): %s", len(due), e)
            await asyncio.sleep(0.2)
            return True
        for job_id in result.get("triggered", []):
            log.info("Triggering job %s", job_id)
        for job_id, why in result.get("skipped", {}).items():
            log.info("not triggering job %s: %s", job_id, why)
        return True
