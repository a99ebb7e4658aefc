"""The state machine's dispatch: each command to the method of its group.

Called only from :meth:`Store.apply`, inside its transaction, on the Raft
tick thread (see the package docstring for the rules every method keeps).
"""

from __future__ import annotations

from typing import Any

from .. import commands as c
from .backfill import BackfillCommands
from .cluster import ClusterCommands
from .effects import Effects
from .jobs import JobCommands
from .manual import ManualCommands
from .triggers import TriggerCommands
from .workers import WorkerCommands


class Transitions(
    JobCommands, BackfillCommands, ManualCommands, TriggerCommands, ClusterCommands, WorkerCommands
):
    """One method per command, from the groups; ``db`` is the store's write connection."""

    def dispatch(self, cmd: c.Command, fx: Effects) -> Any:
        """Apply ``cmd``; return its result."""
        # What a refused command left behind was rolled back with it.
        self._events.clear()
        self._writes.clear()
        self._ended.clear()
        result = self._dispatch(cmd, fx)
        self.flush_writes()
        if self._ended:
            self.after_ended(fx, getattr(cmd, "node", ""))  # run after (flow.py)
        self.flush_events()
        return result

    def _dispatch(self, cmd: c.Command, fx: Effects) -> Any:
        match cmd:
            case c.SubmitJobs():
                return self.submit(cmd, fx)
            case c.TriggerJobs() | c.BackfillOccurrences():
                return self.fire(cmd, fx)
            case c.AssignRuns():
                return self.assign(cmd, fx)
            case c.RecordRunUpdates():
                return self.record(cmd, fx)
            case c.RenewLeases():
                return self.renew(cmd)
            case c.ExpireRuns():
                return self.expire(cmd, fx)
            case c.CancelJob() | c.RetryJob() | c.PauseJob() | c.TriggerNow():
                return self.by_operator(cmd, fx)
            case c.Prune():
                return self.prune(cmd)
            case c.MarkWaiting():
                return self.mark_waiting(cmd)
            case c.ChangeMember() | c.RegisterWorker():
                return self.join(cmd, fx)
            case c.Barrier():
                return {"index": fx.index}

    def by_operator(self, cmd: c.CancelJob | c.RetryJob | c.PauseJob | c.TriggerNow, fx: Effects) -> Any:
        """An operator's command on one job: cancel, retry, pause or resume, or run it now."""
        if isinstance(cmd, c.TriggerNow):
            return self.trigger_now(cmd, fx)
        return self.operate(cmd, fx)

    def join(self, cmd: c.ChangeMember | c.RegisterWorker, fx: Effects) -> Any:
        """Who takes part: a member added or removed, a worker registered or gone."""
        if isinstance(cmd, c.ChangeMember):
            return self.change_member(cmd, fx)
        return self.register_worker(cmd, fx)
