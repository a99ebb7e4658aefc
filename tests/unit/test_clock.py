"""Clock skew (issue 13): the verdict on a node's clock, and what a node with a skewed clock refuses to do.

Fixed numbers throughout: the offsets are what the Raft heartbeats would have
measured (engine.py); a fake consensus stands for the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from helpers import eventually

from ordo_node.clock import OK, SKEWED, UNMEASURED, ClockGuard, judge, members_out_of_bounds, skew_fault
from ordo_node.config import Config, Peer
from ordo_node.consensus import Consensus
from ordo_node.errors import Unavailable

SEC = 1_000_000
MS = 1_000


@dataclass
class FakeEngine:
    clock_offset_us: int = 0
    clock_measured: bool = True
    otherNodes: set[str] = field(default_factory=lambda: {"127.0.0.1:2", "127.0.0.1:3"})
    offsets: dict[str, int] = field(default_factory=dict)


class FakePeers:
    def members(self) -> list[Peer]:
        return [Peer(f"node{i}", f"127.0.0.1:10{i}", f"127.0.0.1:{i}") for i in (1, 2, 3)]


class FakeConsensus:
    """What clock.py reads of a Consensus, and a hand-over that succeeds or not."""

    def __init__(self, engine: FakeEngine | None, *, max_skew: float = 1.0, takes_over: bool = True) -> None:
        self.config = Config(
            node_id="node1",
            grpc_address="127.0.0.1:101",
            raft_address="127.0.0.1:1",
            data_dir=cast(Any, None),
            secret="x" * 16,
            max_clock_skew=max_skew,
        )
        self.engine = engine
        self.peers = FakePeers()
        self.term = 7
        self.is_leader = True
        self.takes_over = takes_over
        self.transfers = 0

    @property
    def clock_offset_us(self) -> int:
        return self.engine.clock_offset_us if self.engine else 0

    async def transfer_leadership(self) -> None:
        self.transfers += 1
        if self.takes_over:
            self.is_leader = False


def guard_of(consensus: FakeConsensus, **kwargs: Any) -> ClockGuard:
    return ClockGuard(cast(Consensus, consensus), **kwargs)


# --- the verdict ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset_us", "measured", "alone", "state"),
    [
        (0, True, False, OK),
        (1 * SEC, True, False, OK),  # the bound itself is within bounds
        (-1 * SEC, True, False, OK),
        (1 * SEC + 1, True, False, SKEWED),
        (-30 * SEC, True, False, SKEWED),
        (30 * SEC, True, False, SKEWED),
        (0, False, False, UNMEASURED),  # peers, but no measurement yet
        (30 * SEC, False, True, OK),  # alone: this clock is the majority's
    ],
)
def test_the_verdict_compares_the_offset_with_max_clock_skew(
    offset_us: int, measured: bool, alone: bool, state: str
) -> None:
    v = judge(offset_us, measured=measured, alone=alone, max_skew_us=SEC)
    assert v.state == state
    assert v.ok == (state == OK)


def test_the_reason_names_the_offset_and_the_key() -> None:
    assert judge(30_012 * MS, measured=True, alone=False, max_skew_us=SEC).reason() == (
        "clock offset +30.012s from the majority's exceeds cluster.max_clock_skew 1s"
    )
    assert judge(-2_500 * MS, measured=True, alone=False, max_skew_us=250 * MS).reason() == (
        "clock offset -2.500s from the majority's exceeds cluster.max_clock_skew 0.25s"
    )
    assert judge(0, measured=False, alone=False, max_skew_us=SEC).reason() == (
        "clock offset from the majority's not measured yet"
    )
    assert judge(999 * MS, measured=True, alone=False, max_skew_us=SEC).reason() == ""


def test_the_status_fault_shows_a_measured_skew_only() -> None:
    # A skewed node says why in the cluster status
    skewed = FakeConsensus(FakeEngine(clock_offset_us=30 * SEC))
    assert skew_fault(cast(Consensus, skewed)) == (
        "clock offset +30.000s from the majority's exceeds cluster.max_clock_skew 1s:"
        " does not trigger jobs or take submissions timed by its clock"
    )
    # A healthy one, one not measured yet and a stopped one show nothing
    for engine in (FakeEngine(clock_offset_us=400 * MS), FakeEngine(clock_measured=False), None):
        assert skew_fault(cast(Consensus, FakeConsensus(engine))) == ""


def test_the_leader_knows_which_executors_clocks_are_out_of_bounds() -> None:
    # Given a leader that measured node2 at +30 s and has no sample of node3 yet
    consensus = FakeConsensus(FakeEngine(offsets={"127.0.0.1:2": 30 * SEC}))
    # Then node2 is out of bounds with its offset, node3 not known to be within them
    assert members_out_of_bounds(cast(Consensus, consensus)) == {"node2": 30 * SEC, "node3": None}
    # and only the members asked about are judged
    assert members_out_of_bounds(cast(Consensus, consensus), {"node3"}) == {"node3": None}
    # When node3 is measured at -0.2 s and node2 comes back to +0.9 s: none
    assert consensus.engine is not None
    consensus.engine.offsets = {"127.0.0.1:2": 900 * MS, "127.0.0.1:3": -200 * MS}
    assert members_out_of_bounds(cast(Consensus, consensus)) == {}


# --- submissions --------------------------------------------------------------------------------------


def test_a_skewed_node_refuses_to_time_a_submission_as_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    # Given a node whose clock is 30 s fast
    consensus = FakeConsensus(FakeEngine(clock_offset_us=30 * SEC))
    guard = guard_of(consensus)

    # When it is asked twice to time a delay
    with caplog.at_level(logging.WARNING, "ordo_node.clock"):
        for _ in range(2):
            with pytest.raises(Unavailable) as info:
                guard.refuse_timing("delay")

    # Then it refuses with UNAVAILABLE (retryable) naming the clock and the offset, and logs it once
    assert str(info.value) == (
        "this node cannot time delay: its clock offset +30.000s from the majority's exceeds"
        " cluster.max_clock_skew 1s; send it to another node, or give runAt"
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "offset=+30.000s" in warnings[0].getMessage()
    # When its clock is corrected, it times submissions again
    assert consensus.engine is not None
    consensus.engine.clock_offset_us = 3 * MS
    guard.refuse_timing("delay")


def test_a_node_not_measured_yet_or_alone_takes_submissions() -> None:
    # Not measured yet: a heartbeat after a start, or no leader (the commit then says so)
    guard_of(FakeConsensus(FakeEngine(clock_measured=False))).refuse_timing("delay")
    guard_of(FakeConsensus(FakeEngine(clock_measured=False, otherNodes=set()))).refuse_timing("delay")
    guard_of(FakeConsensus(None)).refuse_timing("delay")


# --- the leader -----------------------------------------------------------------------------------------


async def test_a_leader_within_bounds_goes_on_at_once() -> None:
    consensus = FakeConsensus(FakeEngine(clock_offset_us=-800 * MS))
    v = await asyncio.wait_for(guard_of(consensus).hold(), 1.0)
    assert v.state == OK and consensus.transfers == 0


async def test_a_skewed_leader_hands_over_once_the_skew_is_confirmed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a leader whose clock is 30 s fast, and followers that take no leadership
    consensus = FakeConsensus(FakeEngine(clock_offset_us=30 * SEC), takes_over=False)
    guard = guard_of(consensus, confirm=0.05, poll=0.01, retry=0.05)

    with caplog.at_level(logging.INFO, "ordo_node.clock"):
        task = asyncio.create_task(guard.hold())
        try:
            # Then it hands over, and tries again while nobody takes it
            await eventually(lambda: _true(consensus.transfers >= 2), timeout=5, interval=0.01)
            # and it does not go on (nothing is triggered) meanwhile
            assert not task.done()
            # When its clock is corrected
            assert consensus.engine is not None
            consensus.engine.clock_offset_us = 10 * MS
            # Then it goes on
            v = await asyncio.wait_for(task, 2.0)
        finally:
            task.cancel()
    assert v.state == OK
    # and the log said why in one WARNING line with the offset, and then that it is back
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "not triggering jobs: clock offset=+30.000s from the majority exceeds max_clock_skew=1s;"
        " handing leadership over term=7"
    ]
    assert any("within bounds again offset=+0.010s" in r.getMessage() for r in caplog.records)


async def test_a_skew_shorter_than_the_confirmation_hands_nothing_over() -> None:
    # Given a new leader whose first estimate, from one follower's sample, is -15 s
    consensus = FakeConsensus(FakeEngine(clock_offset_us=-15 * SEC))
    guard = guard_of(consensus, confirm=0.5, poll=0.01)
    task = asyncio.create_task(guard.hold())
    await asyncio.sleep(0.1)
    # When the next estimate, from every follower, is within bounds
    assert consensus.engine is not None
    consensus.engine.clock_offset_us = 0
    # Then it goes on without handing over
    assert (await asyncio.wait_for(task, 1.0)).state == OK
    assert consensus.transfers == 0


async def test_a_leader_waits_for_a_first_measurement() -> None:
    consensus = FakeConsensus(FakeEngine(clock_measured=False))
    task = asyncio.create_task(guard_of(consensus, poll=0.01).hold())
    await asyncio.sleep(0.05)
    assert not task.done()
    assert consensus.engine is not None
    consensus.engine.clock_measured = True
    assert (await asyncio.wait_for(task, 1.0)).state == OK


async def _true(value: bool) -> bool:
    return value


# --- the test hook ----------------------------------------------------------------------------------------


def _now_in_child(skew: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORDO_TEST_CLOCK_SKEW_MS"}
    if skew is not None:
        env["ORDO_TEST_CLOCK_SKEW_MS"] = skew
    code = "import time; from ordo_node.timeutil import now_us; print(now_us() - time.time_ns() // 1000)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("skew", "expected_s"), [(None, 0), ("30000", 30), ("-30000", -30), ("", 0)])
def test_the_test_hook_shifts_now_us(skew: str | None, expected_s: int) -> None:
    child = _now_in_child(skew)
    assert child.returncode == 0, child.stderr
    assert abs(int(child.stdout) - expected_s * SEC) < SEC


def test_the_test_hook_refuses_a_value_that_is_not_milliseconds() -> None:
    child = _now_in_child("30s")
    assert child.returncode != 0
    assert "ORDO_TEST_CLOCK_SKEW_MS: '30s' is not a number of milliseconds" in child.stderr
