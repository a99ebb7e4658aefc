"""Commands on workers: a worker registered by the leader it connected to, or gone."""

from __future__ import annotations

import json
from typing import Any

from .. import commands as c
from .base import Base
from .effects import Effects


class WorkerCommands(Base):
    """RegisterWorker."""

    def register_worker(self, cmd: c.RegisterWorker, fx: Effects) -> Any:
        """Record the worker; give up what an earlier process of it (or, when it leaves, it) held."""
        row = self.db.execute(
            "SELECT boot_id, registered_at FROM workers WHERE id = ?", (cmd.worker_id,)
        ).fetchone()
        restarted = row is not None and row[0] != cmd.boot_id
        fx.workers_changed = True
        if cmd.gone:
            if row is None or restarted:  # another process of it registered since: not this one's to end
                return {"worker": cmd.worker_id, "state": "UNKNOWN" if row is None else "ACTIVE", "lost": []}
            self.db.execute(
                "UPDATE workers SET state = 'GONE', changed_at = ? WHERE id = ?", (cmd.at, cmd.worker_id)
            )
            lost = self._give_up(cmd, fx, f"worker {cmd.worker_id} left")
            return {"worker": cmd.worker_id, "state": "GONE", "lost": lost}
        self.db.execute(
            "INSERT OR REPLACE INTO workers (id, boot_id, capacity, tags, handlers, address, server, state,"
            " registered_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?)",
            (
                cmd.worker_id,
                cmd.boot_id,
                cmd.capacity,
                json.dumps(sorted(cmd.tags)),
                json.dumps(sorted(cmd.handlers)),
                cmd.address,
                cmd.node,
                cmd.at if row is None or restarted else row[1],
                cmd.at,
            ),
        )
        lost = self._give_up(cmd, fx, f"worker {cmd.worker_id} restarted") if restarted else []
        return {"worker": cmd.worker_id, "state": "ACTIVE", "restarted": restarted, "lost": lost}

    def _give_up(self, cmd: c.RegisterWorker, fx: Effects, reason: str) -> list[list[Any]]:
        """End the worker's open attempts of other processes (all of them when it leaves) as LOST."""
        held = self.db.execute(
            "SELECT run_id, attempt, job_id, state, boot_id FROM runs"
            " WHERE finished_at IS NULL AND node_id = ? AND state IN ('ASSIGNED', 'RUNNING')"
            " ORDER BY run_id, attempt",  # the same order, so the same events, on every replica
            (cmd.worker_id,),
        ).fetchall()
        requeued: list[list[Any]] = []
        for run_id, attempt, job_id, state, boot_id in held:
            if not cmd.gone and boot_id == cmd.boot_id:
                continue
            self.end_run(run_id, attempt, "LOST", cmd.at, reason)
            # As for an expired lease: not the handler's failure; the new attempt keeps the count.
            nxt = self.next_attempt((run_id, attempt), fx)
            self.event(job_id, "LOST", cmd.at, cmd.worker_id, (run_id, attempt), f"{state}: {reason}")
            self.settle(job_id, cmd.at, "TRIGGERED")
            fx.cancelled_runs.append((run_id, attempt, cmd.worker_id))
            requeued.append([*nxt])
        return requeued
