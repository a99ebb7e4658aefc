"""The executor's hold: runs wait for their scheduled time and a free slot, cancelled ones never
start, and runs stuck behind long ones are given back; the leader queues about a second of work per
slot, by the run times of the outcomes it saw committed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from ordo_node import commands as c
from ordo_node import executor as executor_module
from ordo_node.config import Config
from ordo_node.dispatcher import (
    MAX_QUEUE_PER_SLOT,
    QUEUE_PER_SLOT,
    QUEUE_US,
    Dispatcher,
    choose_nodes,
    queue_per_slot,
)
from ordo_node.executor import Executor, Reporter
from ordo_node.handlers import JobContext, Registry
from ordo_node.pb import internal_pb2
from ordo_node.queries import NodeLoad
from ordo_node.timeutil import now_us
from ordo_node.wire import ts, value


class FakeConsensus:
    """Commits everything at once and remembers what was proposed."""

    def __init__(self) -> None:
        self.proposed: list[Any] = []
        self.clock_offset_us = 0  # this node's clock less the majority's

    async def propose(self, cmd: Any, timeout: float | None = None) -> Any:
        self.proposed.append(cmd)
        return {}


def make(tmp_path: Path, capacity: int, started: list[str]) -> tuple[Executor, FakeConsensus]:
    registry = Registry()

    async def note(ctx: JobContext, payload: Any) -> Any:
        started.append(ctx.run_id)
        await asyncio.sleep(payload.get("seconds", 0))
        return None

    registry.register("note", note)
    consensus = FakeConsensus()
    config = Config("node1", "127.0.0.1:1", "127.0.0.1:2", tmp_path, "s", capacity=capacity)
    reporter = Reporter("node1", consensus)  # type: ignore[arg-type]
    return Executor(config, registry, reporter, consensus), consensus  # type: ignore[arg-type]


def assignment(run_id: str, at: int, seconds: float = 0) -> internal_pb2.Assignment:
    return internal_pb2.Assignment(
        run_id=run_id,
        attempt=1,
        job_id=run_id.split(":")[0],
        type="note",
        payload=value({"seconds": seconds}),
        scheduled_at=ts(at),
    )


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_run_assigned_ahead_starts_at_its_scheduled_time(tmp_path: Path) -> None:
    # Given a run assigned half a second before its time
    started: list[str] = []
    ex, _ = make(tmp_path, 2, started)
    due = now_us() + 500_000
    assert ex.assign([assignment("a:1", due)]) == ["a:1"]

    # Then it is held, not running, until then; and then it runs
    await asyncio.sleep(0.2)
    assert started == [] and ("a:1", 1) in ex.held and not ex.running
    await until(lambda: started == ["a:1"])
    assert now_us() >= due
    await ex.stop()


async def test_an_executor_with_a_fast_clock_holds_a_run_by_the_majoritys_clock(tmp_path: Path) -> None:
    # Given an executor whose clock is 30 s fast, and a run the leader scheduled half a second ahead
    started: list[str] = []
    ex, consensus = make(tmp_path, 2, started)
    consensus.clock_offset_us = 30_000_000
    assigned = time.monotonic()
    ex.assign([assignment("a:1", now_us() - 30_000_000 + 500_000)])

    # Then it waits the half second (by its own clock the time passed 29.5 s ago)
    await until(lambda: started == ["a:1"])
    assert time.monotonic() - assigned >= 0.45
    await ex.stop()


async def test_an_executor_with_a_slow_clock_waits_for_its_own_clock_too(tmp_path: Path) -> None:
    # Given an executor whose clock is 200 ms behind the majority's, and a run due in 300 ms by its own
    started: list[str] = []
    ex, consensus = make(tmp_path, 2, started)
    consensus.clock_offset_us = -200_000
    assigned = time.monotonic()
    ex.assign([assignment("a:1", now_us() + 300_000)])

    # Then it waits the 300 ms (not 100 ms, as the majority's clock alone would have it): the start it
    # records by its own clock is never before the scheduled time
    await until(lambda: started == ["a:1"])
    assert time.monotonic() - assigned >= 0.29
    await ex.stop()


async def test_a_held_run_cancelled_before_its_time_never_starts(tmp_path: Path) -> None:
    # Given a run held for its time
    started: list[str] = []
    ex, _ = make(tmp_path, 2, started)
    ex.assign([assignment("a:1", now_us() + 300_000)])

    # When the cluster cancels it before then
    ex.cancel("a:1", 1)

    # Then it never starts
    await asyncio.sleep(0.5)
    assert started == [] and not ex.held
    await ex.stop()


async def test_runs_beyond_capacity_wait_for_a_slot(tmp_path: Path) -> None:
    # Given capacity 1 and three short runs due now
    started: list[str] = []
    ex, _ = make(tmp_path, 1, started)
    now = now_us()
    ex.assign([assignment(f"{j}:1", now, 0.1) for j in "abc"])

    # Then they run one at a time, in order
    await asyncio.sleep(0.05)
    assert started == ["a:1"] and len(ex.running) == 1
    await until(lambda: started == ["a:1", "b:1", "c:1"])
    await ex.stop()


async def test_runs_stuck_behind_a_long_run_are_given_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given capacity 1, a long run, and a run queued behind it
    monkeypatch.setattr(executor_module, "SLOT_WAIT", 0.3)
    started: list[str] = []
    ex, consensus = make(tmp_path, 1, started)
    ex.start()
    now = now_us()
    ex.assign([assignment("long:1", now, 60), assignment("next:1", now)])

    # When no slot frees for SLOT_WAIT
    await until(lambda: any(isinstance(p, c.ExpireRuns) for p in consensus.proposed))

    # Then the queued run is given back (a new attempt runs elsewhere) and never starts here
    given = [p for p in consensus.proposed if isinstance(p, c.ExpireRuns)]
    assert [r.run_id for g in given for r in g.runs] == ["next:1"]
    assert started == ["long:1"] and ("next:1", 1) not in ex.held
    await ex.stop()


async def test_draining_gives_back_what_was_not_started(tmp_path: Path) -> None:
    # Given a run held for later
    started: list[str] = []
    ex, consensus = make(tmp_path, 1, started)
    ex.assign([assignment("later:1", now_us() + 10_000_000)])

    # When the node shuts down
    await ex.finish_running(grace=0)

    # Then it is given back at once
    given = [p for p in consensus.proposed if isinstance(p, c.ExpireRuns)]
    assert [r.run_id for g in given for r in g.runs] == ["later:1"]
    assert not ex.held and started == []
    await ex.stop()


def test_the_queue_per_slot_holds_about_a_second_of_work() -> None:
    # Unknown run times: the short default queue
    assert queue_per_slot(0) == QUEUE_PER_SLOT
    # Runs of a millisecond: the deepest queue; of 100 ms: ten; of a second or more: the default
    assert queue_per_slot(1_000) == MAX_QUEUE_PER_SLOT
    assert queue_per_slot(100_000) == 10
    assert queue_per_slot(QUEUE_US) == QUEUE_PER_SLOT
    assert queue_per_slot(60 * QUEUE_US) == QUEUE_PER_SLOT


def test_the_leader_learns_each_nodes_run_times_from_committed_outcomes(tmp_path: Path) -> None:
    # Given a dispatcher that has seen no outcome: nothing is known
    config = Config("node1", "127.0.0.1:1", "127.0.0.1:2", tmp_path, "s")
    dispatcher = Dispatcher(config, None, None, None)  # type: ignore[arg-type]
    assert dispatcher.run_us == {}
    # When outcomes of 2 ms runs on node1 and of 10 s runs on node2 commit
    dispatcher.observe([("node1", 2_000)] * 5 + [("node2", 10_000_000)])
    # Then node1's queue is deep and node2's short
    assert dispatcher.run_us == {"node1": 2_000, "node2": 10_000_000}
    assert queue_per_slot(dispatcher.run_us["node1"]) == MAX_QUEUE_PER_SLOT
    assert queue_per_slot(dispatcher.run_us["node2"]) == QUEUE_PER_SLOT
    # And one slow run moves the average only an eighth of the way
    dispatcher.observe([("node1", 802_000)])
    assert dispatcher.run_us["node1"] == 102_000


def test_a_node_with_a_short_queue_still_takes_due_runs_first_while_it_has_free_slots() -> None:
    # Given node1 and node2 with deep queues (much room) but every slot busy, and a new node3
    # whose run times are unknown (a short queue: little room) with all its 4 slots free
    room = {"node1": 200, "node2": 200, "node3": 12}
    spare = {"node1": -60, "node2": -60, "node3": 4}
    runs: list[Any] = [(f"r{i}", 1, frozenset()) for i in range(8)]
    # When eight due runs are placed
    chosen, _ = choose_nodes(runs, room, None, 0, spare)
    nodes = [a.node_id for a in chosen]
    # Then node3 takes them all: even with its slots taken, less waits there than on the others
    assert nodes == ["node3"] * 8
    # When more runs come than its room holds, the rest go to the others in turn
    chosen, _ = choose_nodes([(f"s{i}", 1, frozenset()) for i in range(16)], room, None, 0, spare)
    assert [a.node_id for a in chosen] == ["node3"] * 12 + ["node1", "node2", "node1", "node2"]
    # And without a rank, the most room goes first (runs assigned ahead of their time)
    chosen, _ = choose_nodes(runs, room)
    assert "node3" not in [a.node_id for a in chosen]


async def test_slots_taken_by_long_runs_count_once_in_who_takes_due_runs_first(tmp_path: Path) -> None:
    # Given node A (capacity 8) running 6 long runs, 2 slots idle, and an idle node B (capacity 8)
    config = Config("node1", "127.0.0.1:1", "127.0.0.1:2", tmp_path, "s")

    class Load:
        async def node_load(self, now: int, slow_before: int) -> dict[str, NodeLoad]:
            return {"A": NodeLoad(6, 0, 6)}

    dispatcher = Dispatcher(config, None, Load(), None)  # type: ignore[arg-type]
    dispatcher.capacity = {"A": 8, "B": 8}
    dispatcher.reachable = {"A": True, "B": True}
    dispatcher.observe([("B", 1_000)])
    # When the room is read
    _, _, spare = await dispatcher.room(now_us())
    # Then A has its 2 idle slots to offer first (not 2 less the 6 long runs again), B its 8
    assert spare == {"A": 2, "B": 8}


def test_a_result_is_json_text_with_anything_else_as_its_string_and_a_huge_one_truncated() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert executor_module.encode_result({"b": [1, 2.5, None], "a": "é", "o": Odd()}) == (
        '{"b": [1, 2.5, null], "a": "é", "o": "odd"}'
    )
    huge = executor_module.encode_result("x" * (executor_module.MAX_RESULT_BYTES + 1))
    assert json.loads(huge)["truncated"] is True
    assert len(huge.encode()) <= executor_module.MAX_RESULT_BYTES


async def test_a_failed_attempt_reports_its_handlers_traceback_bounded(tmp_path: Path) -> None:
    # Given handlers that raise: one deep in the user's own code, one with a huge message
    registry = Registry()

    def parse_invoice(number: str) -> int:
        return int(number)  # raises ValueError

    async def invoice(ctx: JobContext, payload: Any) -> Any:
        return parse_invoice("INV-7")

    async def huge(ctx: JobContext, payload: Any) -> Any:
        raise RuntimeError("x" * 50_000)

    registry.register("invoice", invoice)
    registry.register("huge", huge)
    consensus = FakeConsensus()
    config = Config("node1", "127.0.0.1:1", "127.0.0.1:2", tmp_path, "s", capacity=2)
    ex = Executor(config, registry, Reporter("node1", consensus), consensus)  # type: ignore[arg-type]
    ex.start()
    reporter = asyncio.create_task(ex.reporter.run())

    # When both run
    for run_id, kind in (("a:1", "invoice"), ("b:1", "huge")):
        a = assignment(run_id, now_us())
        a.type = kind
        ex.assign([a])

    def failures() -> dict[str, c.RunUpdate]:
        return {
            u.run_id: u
            for cmd in consensus.proposed
            if isinstance(cmd, c.RecordRunUpdates)
            for u in cmd.updates
            if u.kind == "failed"
        }

    await until(lambda: len(failures()) == 2)
    reporter.cancel()
    await ex.stop()

    # Then each failure carries the traceback from the handler's frame on, ending with the exception,
    # without the executor's own frames; and a huge one keeps its last 8 KiB
    trace = failures()["a:1"].traceback
    assert "in invoice" in trace and "in parse_invoice" in trace and "return int(number)" in trace
    assert trace.rstrip().endswith("ValueError: invalid literal for int() with base 10: 'INV-7'")
    assert "ordo_node/executor.py" not in trace and "ordo_node/handlers" not in trace
    big = failures()["b:1"].traceback
    assert big.startswith("...\n") and len(big.encode()) <= executor_module.MAX_TRACEBACK_BYTES + 4
    assert big.rstrip().endswith("x" * 100)


def test_placement_with_no_room_left_still_finds_the_runs_no_node_could_ever_take() -> None:
    # Given 200 workers of one free slot each, and 2,000 runs of which the last needs a tag none has
    free = {f"w{i:03d}": 1 for i in range(200)}
    tags = {n: frozenset({"handler:noop"}) for n in free}
    runs = [(f"r{i}", 1, frozenset({"handler:noop"})) for i in range(1999)]
    runs.append(("tpu", 1, frozenset({"handler:noop", "tpu"})))

    chosen, unplaceable = choose_nodes(runs, free, tags)

    # Then every slot is filled once, the rest wait, and the tagged run is known to fit nowhere
    assert sorted(a.node_id for a in chosen) == sorted(free)
    assert [a.run_id for a in chosen] == [f"r{i}" for i in range(200)]
    assert unplaceable == [("tpu", 1, frozenset({"handler:noop", "tpu"}))]
