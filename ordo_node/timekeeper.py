"""The timekeeper: on the leader only, triggers jobs when they fall due.

It sleeps until the earliest due time (one index seek in SQLite) or until a
newly scheduled job is due sooner, then proposes one TriggerJobs command for
everything due, in batches. It never scans the job table. Exactly-once comes
from the state machine: each trigger is guarded by the job's expected state
and due time, so a trigger proposed twice (a retry, a deposed leader) is a
no-op the second time.

One-off jobs are triggered up to LOOKAHEAD ahead of their due time, and the
same command assigns their runs (the dispatcher chooses the executors): the
executor holds each run until its scheduled time, so that thousands of jobs
due in the same second start on time instead of queueing behind their
triggers' and assignments' commits. A cancellation before the due time still
stops the held run. Recurring jobs are triggered at their fire time: their
occurrences' fates (catch-up, overlap, pause) are decided then.

Clock skew (clock.py): the timekeeper triggers only while this node's clock is
within ``[cluster] max_clock_skew`` of the majority's; otherwise it triggers
nothing and hands leadership over. And while an executor it may assign to has
a clock not known to be within bounds, one-off jobs are triggered at their due
time instead of ahead of it: an executor holds a run until its scheduled time
by its own clock, so a fast one would start it early.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress

from . import commands as c
from .clock import ClockGuard, members_out_of_bounds, seconds
from .consensus import Consensus
from .dispatcher import Dispatcher, Pending
from .errors import InvalidArgument, OrdoError
from .logs import log_jobs
from .queries import DueJob, Queries
from .schedule import catch_up, fire_time, from_options, next_occurrence
from .timeutil import now_us

log = logging.getLogger("ordo_node.timekeeper")

# An occurrence triggered later than this after its fire time is "late": it
# fell due while nobody could trigger it, and the catch-up policy decides.
ON_TIME = 1_000_000
# At most this many occurrences of one job in one trigger; the rest next time.
MAX_OCCURRENCES = 1000
# Even with nothing due, look again this often: a safety net against a missed
# wake-up, and cheap (one index seek).
MAX_SLEEP = 5.0
# One-off jobs due within this many microseconds are triggered (and assigned) now.
LOOKAHEAD = 2_000_000
# Many one-off jobs due at about the same time (within BURST of the earliest) are
# triggered earlier still, by the time their triggers take at the measured rate,
# up to MAX_LOOKAHEAD ahead: so that the last of them is assigned before it is due.
BURST = 1_000_000
MAX_LOOKAHEAD = 10_000_000
# Triggers committed per second before any batch was measured.
INITIAL_RATE = 4000.0


class Timekeeper:
    """Leader-only actor; :meth:`run` until cancelled when leadership ends."""

    def __init__(
        self,
        node_id: str,
        consensus: Consensus,
        queries: Queries,
        on_lateness: Callable[[float], None] | None = None,
        *,
        batch: int = 2000,
        dispatcher: Dispatcher | None = None,
        lookahead: int = LOOKAHEAD,
        clock: ClockGuard | None = None,
    ) -> None:
        # Told each triggered job's lateness in seconds: the metrics observe through it.
        self.on_lateness = on_lateness
        # Tests without a consensus have no clock to judge.
        self.clock = clock if clock is not None or consensus is None else ClockGuard(consensus)
        # The executors whose clocks keep one-off jobs from being triggered ahead (logged when it changes).
        self._skewed: set[str] = set()
        self.dispatcher = dispatcher
        self.lookahead = lookahead
        self.node_id = node_id
        self.consensus = consensus
        self.queries = queries
        self.batch = batch
        self._wake = asyncio.Event()
        # When the current sleep ends by itself (its timer), or None while not asleep.
        self._wakes_at: int | None = None
        # How far ahead one-off jobs are triggered now (LOOKAHEAD, more for a burst).
        self._window = lookahead
        self._rate = INITIAL_RATE

    def notify_due(self, due_at: int) -> None:
        """A job due at ``due_at`` was scheduled: wake up to plan again, unless the timekeeper wakes by
        itself early enough anyway (it then plans with this job in view).

        "Early enough" is MAX_LOOKAHEAD + BURST before ``due_at``: the earliest that this job, or a
        burst it belongs to, may have to be triggered. A job due sooner than planned, or one more of
        a burst about to be triggered, wakes it at once; a job due hours ahead costs no wake-up (and
        no reads) at all.
        """
        if self._wakes_at is None or due_at - MAX_LOOKAHEAD - BURST < self._wakes_at:
            self._wake.set()

    async def lead(self, nxt: int) -> int:
        """How long before ``nxt`` (the earliest due time) to start triggering: LOOKAHEAD, plus the
        time the triggers of the one-off jobs due by ``nxt`` + BURST take at the measured rate."""
        if nxt - now_us() > MAX_LOOKAHEAD + BURST:
            return self.lookahead
        limit = int(self._rate * MAX_LOOKAHEAD / 1e6)
        burst = await self.queries.count_one_offs_due(nxt + BURST, limit)
        return min(MAX_LOOKAHEAD, self.lookahead + int(burst / self._rate * 1e6))

    async def run(self) -> None:
        """Trigger due jobs until cancelled."""
        while True:
            self._wake.clear()
            if self.clock is not None:
                await self.clock.hold()
            if await self.trigger_due():
                continue
            nxt = await self.queries.next_due()
            lead = self.lookahead if nxt is None else await self.lead(nxt)
            if nxt is not None and nxt - lead <= now_us() and lead > self._window:
                self._window = lead  # a burst: trigger it now, further ahead than usual
                continue
            self._window = lead
            wake_at = None if nxt is None else nxt - lead
            if nxt is not None and wake_at is not None and wake_at <= now_us():
                # Nothing is due within the look-ahead, so the earliest job is a
                # recurring one: it is triggered at its fire time.
                wake_at = nxt
            now = now_us()
            if nxt is not None and wake_at is not None and nxt - now > MAX_LOOKAHEAD + BURST:
                # Far ahead: plan again while a burst due then can still get the longest lead.
                wake_at = min(wake_at, nxt - MAX_LOOKAHEAD - BURST)
            delay = MAX_SLEEP if wake_at is None else min(MAX_SLEEP, max(0.0, (wake_at - now) / 1e6))
            if delay > 0:
                self._wakes_at = now + int(delay * 1e6)
                try:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                finally:
                    self._wakes_at = None

    async def trigger_due(self) -> bool:
        """Propose triggers for one batch of due jobs; True if it found any."""
        now = now_us()
        window = self._window if not self._executors_out_of_bounds() else 0
        due = await self.queries.due_jobs(now, self.batch, one_offs_until=now + window)
        if not due:
            return False
        due, triggers = await self._triggers(due, now)
        if not due:
            return True
        assignments: list[c.Assignment] = []
        if self.dispatcher is not None:
            # The one run a one-off job's trigger creates is "<job id>:1", attempt 1.
            runs = [(d, (f"{d.job_id}:1", 1, d.needs)) for d in due if not d.options.get("cron")]
            now_due: list[Pending] = [r for d, r in runs if d.due_at <= now]
            ahead: list[Pending] = [r for d, r in runs if d.due_at > now]
            assignments, _ = await self.dispatcher.place(now_due, ahead)
        at = now_us()
        lease_until = at + self.dispatcher.lease_us if self.dispatcher is not None and assignments else 0
        cmd = c.TriggerJobs(
            request_id=uuid.uuid4().hex,
            at=at,
            node=self.node_id,
            triggers=triggers,
            assignments=tuple(assignments),
            lease_until=lease_until,
        )
        try:
            result = await self.consensus.propose(cmd)
        except OrdoError as e:
            log.warning("trigger batch not committed (%d jobs): %s", len(due), e)
            await asyncio.sleep(0.2)
            return True
        finally:
            if self.dispatcher is not None:
                self.dispatcher.release(assignments)
        if self.dispatcher is not None and assignments:
            self.dispatcher.placed(assignments, result.get("assigned", []))
        if len(due) >= 100:  # smaller batches say more about fixed costs than about the rate
            rate = len(due) / max(1e-3, (now_us() - now) / 1e6)
            self._rate = 0.7 * self._rate + 0.3 * rate
        if self.on_lateness is not None:
            due_at = {t.job_id: t.due_at for t in triggers}
            for job_id in result.get("triggered", []):
                self.on_lateness(max(0.0, (cmd.at - due_at[job_id]) / 1e6))
        log_jobs(
            log,
            "Triggering job %s",
            "Triggering %d jobs: %s .. %s",
            [(job_id,) for job_id in result.get("triggered", [])],
            term=self.consensus.term,
        )
        for job_id, why in result.get("skipped", {}).items():
            log.info("not triggering job %s: %s", job_id, why)
        return True

    async def _triggers(self, due: list[DueJob], now: int) -> tuple[list[DueJob], tuple[c.Trigger, ...]]:
        """The trigger of each due job; a recurring job whose stored schedule this version refuses
        (an expression an older version accepted, see README, cron) is paused with a note instead."""
        kept: list[DueJob] = []
        triggers: list[c.Trigger] = []
        for d in due:
            try:
                recurring = bool(d.options.get("cron"))
                trigger = recurring_trigger(d, now) if recurring else c.Trigger(d.job_id, d.due_at)
            except InvalidArgument as e:
                await self._pause_unreadable(d.job_id, str(e))
                continue
            kept.append(d)
            triggers.append(trigger)
        return kept, tuple(triggers)

    async def _pause_unreadable(self, job_id: str, why: str) -> None:
        note = f"paused: its schedule is no longer accepted ({why}); submit it again with a valid one"
        log.error("job %s: %s", job_id, note, extra={"job": job_id})
        cmd = c.PauseJob(
            request_id=uuid.uuid4().hex, at=now_us(), node=self.node_id, job_id=job_id, pause=True, note=note
        )
        try:
            await self.consensus.propose(cmd)
        except OrdoError as e:
            log.warning("pausing job %s not committed: %s", job_id, e)

    def _executors_out_of_bounds(self) -> bool:
        """Whether a reachable executor's clock is not known to be within bounds (see the module doc)."""
        if self.clock is None or self.dispatcher is None:
            return False
        reachable = {n for n, ok in self.dispatcher.reachable.items() if ok}
        unfit = members_out_of_bounds(self.consensus, reachable)
        # Said when a measured skew appears or goes; a member not measured yet (for a moment
        # after this node became leader) is waited for silently.
        skewed = {n: off for n, off in unfit.items() if off is not None}
        if skewed.keys() != self._skewed:
            if skewed:
                log.info(
                    "triggering one-off jobs at their due time, not ahead: executor clock out of bounds %s",
                    " ".join(f"{n}={seconds(off)}" for n, off in sorted(skewed.items())),
                )
            else:
                log.info("triggering one-off jobs ahead again: every executor's clock is within bounds")
            self._skewed = set(skewed)
        return bool(unfit)


def recurring_trigger(d: DueJob, now: int) -> c.Trigger:
    """The occurrences of a recurring job due by ``now``, each with the leader's decision, and the next one.

    An occurrence fired more than ON_TIME late fell due while nobody could
    trigger it (no leader, the cluster down, the job paused): the job's
    catch-up policy and window decide whether it runs or is recorded.
    """
    s = from_options(d.options, d.job_id)
    nominals: list[int] = []
    n: int | None = d.next_nominal if d.next_nominal is not None else d.due_at
    while n is not None and (not nominals or fire_time(s, n) <= now) and len(nominals) < MAX_OCCURRENCES:
        nominals.append(n)
        n = next_occurrence(s, n, d.occurrences + len(nominals))

    def paused_at(fire: int) -> bool:
        return d.paused_at is not None and d.paused_at <= fire <= (d.resumed_at or 0)

    # Late: fired while nobody could trigger it, or while the job was paused
    # (however recently: a pause is never "on time").
    late = [x for x in nominals if fire_time(s, x) < now - ON_TIME or paused_at(fire_time(s, x))]
    policy = d.options.get("catch_up", "ONE")
    to_run, to_skip = catch_up(policy, late, now, int(d.options.get("catch_up_window", 0)))
    skip, run_late = set(to_skip), set(to_run)
    occurrences = []
    for x in nominals:
        fire = fire_time(s, x)
        lateness = f"{(now - fire) / 1e6:.1f}s late"
        if x in skip:
            paused = paused_at(fire)
            why = "the job was paused" if paused else "no leader could trigger it (election or cluster down)"
            occurrences.append(
                c.Occurrence(
                    x, fire, "paused" if paused else "missed", f"{why}; {lateness}; catchUp {policy}"
                )
            )
        elif x in run_late:
            occurrences.append(c.Occurrence(x, fire, "run", f"caught up {lateness} (catchUp {policy})"))
        else:
            occurrences.append(c.Occurrence(x, fire, "run"))
    return c.Trigger(d.job_id, d.due_at, tuple(occurrences), n, fire_time(s, n) if n is not None else None)
