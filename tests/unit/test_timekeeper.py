"""The leader's decisions for recurring jobs (which occurrences run, which are recorded, what comes next),
and when the timekeeper wakes up."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any, cast

from helpers import eventually

from ordo_node.consensus import Consensus
from ordo_node.queries import DueJob, Queries
from ordo_node.timekeeper import BURST, MAX_LOOKAHEAD, MAX_SLEEP, Timekeeper, recurring_trigger
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
