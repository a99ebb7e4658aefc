"""The leader's decisions for recurring jobs (which occurrences run, which are recorded, what comes next),
and when the timekeeper wakes up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from types import SimpleNamespace
from typing import Any, cast

from helpers import eventually

from ordo_node import commands as c
from ordo_node.config import Config, Peer
from ordo_node.consensus import Consensus
from ordo_node.dispatcher import Dispatcher
from ordo_node.queries import DueJob, Queries
from ordo_node.timekeeper import BURST, LOOKAHEAD, MAX_LOOKAHEAD, MAX_SLEEP, Timekeeper, recurring_trigger
from ordo_node.timeutil import now_us

SEC = 1_000_000
T0 = 1_800_000_000 * SEC  # a whole second


def due(first: int, *, policy: str = "ONE", window: int = 0, fired: int = 0, **extra: Any) -> DueJob:
    options = {
        "cron": "* * * * * *",
        "timezone": "UTC",
        "catch_up": policy,
        "catch_up_window": window,
        **extra,
    }
    return DueJob("job", first, first, options, fired, extra.get("paused_at"), extra.get("resumed_at"))


def decisions(d: DueJob, now: int) -> list[tuple[int, str]]:
    return [((o.nominal - T0) // SEC, o.decision) for o in recurring_trigger(d, now).occurrences]


def test_an_on_time_occurrence_runs_and_the_next_is_computed() -> None:
    trig = recurring_trigger(due(T0), T0 + 5_000)
    assert [(o.nominal, o.decision) for o in trig.occurrences] == [(T0, "run")]
    assert (trig.next_nominal, trig.next_due) == (T0 + SEC, T0 + SEC)


def test_late_occurrences_follow_the_catch_up_policy() -> None:
    now = T0 + 4 * SEC + 500_000  # 0..4 fell due; 4 is on time (0.5 s), 0..3 are late
    assert decisions(due(T0, policy="ONE"), now) == [
        (0, "missed"),
        (1, "missed"),
        (2, "missed"),
        (3, "run"),
        (4, "run"),
    ]
    assert decisions(due(T0, policy="SKIP"), now) == [
        (0, "missed"),
        (1, "missed"),
        (2, "missed"),
        (3, "missed"),
        (4, "run"),
    ]
    assert decisions(due(T0, policy="ALL"), now) == [
        (0, "run"),
        (1, "run"),
        (2, "run"),
        (3, "run"),
        (4, "run"),
    ]
    # a window of 2 s records anything older as missed, whatever the policy
    assert decisions(due(T0, policy="ALL", window=2 * SEC), now) == [
        (0, "missed"),
        (1, "missed"),
        (2, "missed"),
        (3, "run"),
        (4, "run"),
    ]


def test_occurrences_while_paused_are_late_and_say_so() -> None:
    # paused from T0 - 0.5 s to T0 + 2.8 s; now is just after the resume
    d = due(T0, policy="ONE", paused_at=T0 - 500_000, resumed_at=T0 + 2_800_000)
    occs = recurring_trigger(d, T0 + 2_900_000).occurrences
    assert [(o.decision, "paused" in o.reason) for o in occs] == [
        ("paused", True),
        ("paused", True),
        ("run", False),
    ]
    assert "caught up" in occs[-1].reason


def test_max_runs_ends_the_schedule() -> None:
    trig = recurring_trigger(due(T0, fired=2, max_runs=3), T0 + 1_000)
    assert len(trig.occurrences) == 1
    assert (trig.next_nominal, trig.next_due) == (None, None)


class FakeQueries:
    """The timekeeper's reads: nothing is due, and the earliest job is ``earliest``."""

    def __init__(self, earliest: int) -> None:
        self.earliest = earliest
        self.plans = 0

    async def due_jobs(self, now: int, limit: int, *, one_offs_until: int | None = None) -> list[DueJob]:
        return []

    async def next_due(self) -> int | None:
        self.plans += 1
        return self.earliest

    async def count_one_offs_due(self, by: int, limit: int) -> int:
        return 0


async def test_a_job_due_long_after_the_planned_wake_up_does_not_wake_the_timekeeper() -> None:
    # Given a timekeeper asleep with its earliest job an hour away (it wakes by itself within MAX_SLEEP)
    queries = FakeQueries(now_us() + 3600 * SEC)
    keeper = Timekeeper("node1", cast(Consensus, None), cast(Queries, queries))
    task = asyncio.create_task(keeper.run())

    async def asleep_after(plans: int) -> bool:
        return queries.plans == plans and keeper._wakes_at is not None

    try:
        await eventually(lambda: asleep_after(1), interval=0.01)
        # When jobs are scheduled for after its wake-up plus the longest lead a burst may need
        keeper.notify_due(now_us() + int(MAX_SLEEP * SEC) + MAX_LOOKAHEAD + BURST + SEC)
        keeper.notify_due(now_us() + 3600 * SEC)
        # Then it keeps sleeping: no wake-up, no reads
        assert not keeper._wake.is_set()
        assert queries.plans == 1
        # When one is due soon enough that its burst may need triggering before that wake-up
        keeper.notify_due(now_us() + MAX_LOOKAHEAD)
        # Then it plans again
        await eventually(lambda: asleep_after(2), interval=0.01)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_a_far_earliest_job_is_planned_again_in_time_for_the_longest_lead() -> None:
    # Given the earliest job 14 s away: beyond MAX_LOOKAHEAD + BURST, so no burst is counted yet
    earliest = now_us() + 14 * SEC
    queries = FakeQueries(earliest)
    keeper = Timekeeper("node1", cast(Consensus, None), cast(Queries, queries))
    task = asyncio.create_task(keeper.run())

    async def asleep() -> bool:
        return keeper._wakes_at is not None

    try:
        await eventually(asleep, interval=0.01)
        # Then it wakes up to plan again no later than the longest lead a burst due then may need
        assert keeper._wakes_at is not None
        assert keeper._wakes_at <= earliest - MAX_LOOKAHEAD - BURST
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


# --- clock skew (issue 13) ----------------------------------------------------------------------------


class SkewConsensus:
    """What the timekeeper's clock checks read: this node's offset, and each follower's (as leader)."""

    def __init__(self, offset_us: int, followers: dict[str, int]) -> None:
        self.config = Config(
            node_id="node1",
            grpc_address="127.0.0.1:101",
            raft_address="127.0.0.1:1",
            data_dir=cast(Any, None),
            secret="x" * 16,
        )
        self.engine = SimpleNamespace(
            clock_offset_us=offset_us,
            clock_measured=True,
            otherNodes={"127.0.0.1:2", "127.0.0.1:3"},
            offsets=followers,
        )
        self.peers = SimpleNamespace(
            members=lambda: [Peer(f"node{i}", f"127.0.0.1:10{i}", f"127.0.0.1:{i}") for i in (1, 2, 3)]
        )
        self.term = 3
        self.transfers = 0

    @property
    def clock_offset_us(self) -> int:
        return int(self.engine.clock_offset_us)

    async def transfer_leadership(self) -> None:
        self.transfers += 1


class WindowQueries(FakeQueries):
    """Records how far ahead the timekeeper asked for one-off jobs."""

    def __init__(self) -> None:
        super().__init__(now_us() + 3600 * SEC)
        self.ahead: list[int] = []

    async def due_jobs(self, now: int, limit: int, *, one_offs_until: int | None = None) -> list[DueJob]:
        self.ahead.append((one_offs_until or now) - now)
        return []


def keeper_with(consensus: SkewConsensus, queries: Queries, reachable: dict[str, bool]) -> Timekeeper:
    dispatcher = SimpleNamespace(reachable=reachable)
    return Timekeeper("node1", cast(Consensus, consensus), queries, dispatcher=cast(Dispatcher, dispatcher))


async def test_one_offs_are_not_triggered_ahead_while_an_executor_clock_is_out_of_bounds() -> None:
    # Given a leader within bounds whose follower node3 is 30 s fast, node2 within bounds
    consensus = SkewConsensus(0, {"127.0.0.1:2": 2 * 1000, "127.0.0.1:3": 30 * SEC})
    queries = WindowQueries()
    keeper = keeper_with(consensus, cast(Queries, queries), {"node2": True, "node3": True})

    # When it looks for due jobs
    await keeper.trigger_due()
    # Then it asks only for one-off jobs due by now (node3 would start a run held for later at once)
    assert queries.ahead == [0]

    # When node3 is unreachable (no run goes there), or its clock is back within bounds
    keeper.dispatcher.reachable["node3"] = False  # type: ignore[union-attr]
    await keeper.trigger_due()
    keeper.dispatcher.reachable["node3"] = True  # type: ignore[union-attr]
    consensus.engine.offsets["127.0.0.1:3"] = 500_000
    await keeper.trigger_due()
    # Then one-off jobs are triggered ahead again
    assert queries.ahead[1:] == [LOOKAHEAD, LOOKAHEAD]


async def test_a_leader_whose_clock_is_out_of_bounds_triggers_nothing_and_hands_over() -> None:
    # Given a leader whose clock is 30 s fast (its followers agree with each other)
    consensus = SkewConsensus(30 * SEC, {"127.0.0.1:2": 0, "127.0.0.1:3": 0})
    queries = WindowQueries()
    keeper = keeper_with(consensus, cast(Queries, queries), {"node2": True, "node3": True})
    assert keeper.clock is not None
    keeper.clock.confirm, keeper.clock.retry = 0.05, 0.05
    task = asyncio.create_task(keeper.run())
    try:
        # Then it asks to hand leadership over
        await eventually(lambda: _at_least(lambda: consensus.transfers, 1), timeout=5, interval=0.01)
        # and never looked for due jobs
        assert queries.ahead == [] and queries.plans == 0
        # When its clock is corrected (an operator fixed NTP), it triggers again
        consensus.engine.clock_offset_us = 0
        await eventually(lambda: _at_least(lambda: queries.plans, 1), timeout=5, interval=0.01)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _at_least(read: Callable[[], int], n: int) -> bool:
    return read() >= n


class ProposeRecorder(SkewConsensus):
    """Within bounds, and remembers what the timekeeper proposed (every command commits)."""

    def __init__(self) -> None:
        super().__init__(0, {"127.0.0.1:2": 0, "127.0.0.1:3": 0})
        self.proposed: list[Any] = []

    async def propose(self, cmd: Any, timeout: float | None = None) -> Any:
        self.proposed.append(cmd)
        return {"triggered": [t.job_id for t in getattr(cmd, "triggers", ())]}


class DueQueries(FakeQueries):
    def __init__(self, jobs: list[DueJob]) -> None:
        super().__init__(now_us() + 3600 * SEC)
        self.jobs = jobs

    async def due_jobs(self, now: int, limit: int, *, one_offs_until: int | None = None) -> list[DueJob]:
        return self.jobs


async def test_a_stored_schedule_this_version_refuses_pauses_that_job_not_the_timekeeper() -> None:
    # Given two due recurring jobs, one stored with an expression an older version accepted
    now = now_us()
    good = DueJob("good", now - SEC, now - SEC, {"cron": "* * * * * *", "timezone": "UTC"}, 0, None, None)
    old = DueJob("old", now - SEC, now - SEC, {"cron": "R * * * *", "timezone": "UTC"}, 0, None, None)
    consensus = ProposeRecorder()
    keeper = Timekeeper("node1", cast(Consensus, consensus), cast(Queries, DueQueries([old, good])))

    # When the timekeeper triggers what is due
    assert await keeper.trigger_due()

    # Then the old one is paused with a note naming the refusal, and the other is triggered
    pauses = [p for p in consensus.proposed if isinstance(p, c.PauseJob)]
    assert [(p.job_id, p.pause) for p in pauses] == [("old", True)]
    assert "no longer accepted" in pauses[0].note and "random" in pauses[0].note
    triggers = [p for p in consensus.proposed if isinstance(p, c.TriggerJobs)]
    assert [t.job_id for t in triggers[0].triggers] == ["good"]
