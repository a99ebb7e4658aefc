"""Schedules (issue 17): overlap BUFFER_ALL and its bound, with fixed clocks.

The decision is apply's (statemachine/triggers.py), from the times in the commands;
the buffered occurrences are listed with their place in line (queries.py).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ordo_node import commands as c
from ordo_node.api.options import job_options
from ordo_node.errors import InvalidArgument
from ordo_node.pb import ordo_pb2
from ordo_node.queries import Queries
from ordo_node.statemachine.policy import DEFAULT_BUFFER_LIMIT, overlap_decision
from ordo_node.statemachine.store import Store

SEC = 1_000_000
T0 = 1_900_000_000 * SEC  # 2030-03-17T17:46:40Z
DUE = T0 + 60 * SEC
NODE = "node1"
JOB = "00000000-0000-4000-8000-0000000000c1"


# --- BUFFER_ALL: the pure decision -------------------------------------------


@pytest.mark.parametrize(
    ("running", "buffered", "limit", "decision"),
    [
        (0, 0, 3, "RUN"),  # nothing open: it runs
        (1, 0, 3, "BUFFER"),
        (1, 2, 3, "BUFFER"),  # the third place in the buffer
        (1, 3, 3, "SKIP"),  # full
        (2, 0, 1, "BUFFER"),
    ],
)
def test_buffer_all_buffers_up_to_its_limit(running: int, buffered: int, limit: int, decision: str) -> None:
    assert overlap_decision("BUFFER_ALL", running, buffered, limit) == decision


def test_buffer_one_is_buffer_all_with_a_limit_of_one() -> None:
    for running, buffered in ((0, 0), (1, 0), (1, 1), (1, 5)):
        assert overlap_decision("BUFFER_ONE", running, buffered) == overlap_decision(
            "BUFFER_ALL", running, buffered, 1
        )


# --- BUFFER_ALL: options -------------------------------------------------------


def recurring_request(**fields: Any) -> ordo_pb2.SubmitJobRequest:
    return ordo_pb2.SubmitJobRequest(type="echo", cron="* * * * * *", **fields)


def test_buffer_limit_defaults_and_is_stored() -> None:
    options, _, _ = job_options(recurring_request(overlap=ordo_pb2.OVERLAP_BUFFER_ALL), job_id=JOB, now=T0)
    assert options["overlap"] == "BUFFER_ALL" and options["buffer_limit"] == DEFAULT_BUFFER_LIMIT
    options, _, _ = job_options(
        recurring_request(overlap=ordo_pb2.OVERLAP_BUFFER_ALL, buffer_limit=7), job_id=JOB, now=T0
    )
    assert options["buffer_limit"] == 7
    options, _, _ = job_options(recurring_request(overlap=ordo_pb2.OVERLAP_BUFFER_ONE), job_id=JOB, now=T0)
    assert "buffer_limit" not in options


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"overlap": ordo_pb2.OVERLAP_BUFFER_ALL, "buffer_limit": 1001}, "between 1 and 1000"),
        ({"overlap": ordo_pb2.OVERLAP_BUFFER_ALL, "buffer_limit": -1}, "between 1 and 1000"),
        ({"overlap": ordo_pb2.OVERLAP_BUFFER_ONE, "buffer_limit": 5}, "only with overlap OVERLAP_BUFFER_ALL"),
        ({"buffer_limit": 5}, "only with overlap OVERLAP_BUFFER_ALL"),
    ],
)
def test_buffer_limit_out_of_range_is_refused_naming_the_field(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        job_options(recurring_request(**fields), job_id=JOB, now=T0)
    assert e.value.field == "bufferLimit" and reason in e.value.reason


def test_buffer_limit_on_a_one_off_job_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        job_options(ordo_pb2.SubmitJobRequest(type="echo", buffer_limit=5), job_id=JOB, now=T0)
    assert e.value.field == "bufferLimit" and "recurring" in e.value.reason


# --- BUFFER_ALL: in apply ------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
async def queries(store: Store) -> AsyncIterator[Queries]:
    q = Queries(store.path)
    await q.open()
    yield q
    await q.close()


def apply(store: Store, cmd: c.Command) -> Any:
    return store.apply(store.last_applied + 1, c.encode(cmd))


def rows(store: Store, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(store.path)) as db:
        return db.execute(sql, args).fetchall()


def submit_every_second(store: Store, **options: Any) -> None:
    """A job every second from DUE (its schedule already decided: the ticks below name its times)."""
    opts = json.dumps({"cron": "* * * * * *", "timezone": "UTC", "catch_up": "ONE", **options})
    spec = c.JobSpec(JOB, "echo", "{}", DUE, spec_hash="h", options=opts, first_nominal=DUE)
    apply(store, c.SubmitJobs(request_id=uuid.uuid4().hex, at=T0, node=NODE, jobs=(spec,)))


def tick(k: int) -> c.TriggerJobs:
    """Occurrence ``k`` (0-based) falls due, at DUE + k seconds, and the command says so."""
    due = DUE + k * SEC
    trig = c.Trigger(
        JOB, due, occurrences=(c.Occurrence(due, due, "run"),), next_nominal=due + SEC, next_due=due + SEC
    )
    return c.TriggerJobs(request_id=uuid.uuid4().hex, at=due, node=NODE, triggers=(trig,))


def end_run(store: Store, ordinal: int, at: int) -> None:
    """Run ``ordinal`` of the job is assigned, started and succeeds at ``at``."""
    run = f"{JOB}:{ordinal}"
    apply(
        store,
        c.AssignRuns(
            request_id=uuid.uuid4().hex, at=at, node=NODE, assignments=(c.Assignment(run, 1, NODE),)
        ),
    )
    for kind in ("started", "succeeded"):
        apply(
            store,
            c.RecordRunUpdates(
                request_id=uuid.uuid4().hex, node=NODE, updates=(c.RunUpdate(run, 1, kind, at),)
            ),
        )


def fates(store: Store) -> list[tuple[int, str]]:
    """(seconds after DUE, fate) of every occurrence, oldest first."""
    return [
        ((n - DUE) // SEC, f)
        for n, f in rows(store, "SELECT nominal, fate FROM occurrences ORDER BY nominal")
    ]


async def test_buffer_all_keeps_up_to_its_limit_and_runs_them_in_order(
    store: Store, queries: Queries
) -> None:
    # Given a job every second with overlap BUFFER_ALL and bufferLimit 3
    submit_every_second(store, overlap="BUFFER_ALL", buffer_limit=3)

    # When six occurrences fall due while the first one's run is still open
    for k in range(6):
        apply(store, tick(k))

    # Then three wait and the two after them are skipped, saying the buffer is full
    assert fates(store) == [
        (0, "TRIGGERED"),
        (1, "BUFFERED"),
        (2, "BUFFERED"),
        (3, "BUFFERED"),
        (4, "SKIPPED_OVERLAP"),
        (5, "SKIPPED_OVERLAP"),
    ]
    skipped = rows(store, "SELECT reason FROM occurrences WHERE fate = 'SKIPPED_OVERLAP'")
    assert all("bufferLimit 3" in r[0] and "buffer is full" in r[0] for r in skipped)
    # and ListOccurrences shows the buffered ones with their places in line (newest first)
    page, _ = await queries.occurrences(
        JOB, since=None, until=None, fate="BUFFERED", page_size=10, page_token=""
    )
    assert [((o.nominal - DUE) // SEC, o.buffer_position) for o in page] == [(3, 3), (2, 2), (1, 1)]
    assert "1 buffered ahead of it (overlap BUFFER_ALL)" in page[1].reason

    # When the open run ends, the oldest buffered occurrence runs, then the next, one at a time
    end_run(store, 1, DUE + 6 * SEC)
    assert fates(store)[:4] == [(0, "TRIGGERED"), (1, "TRIGGERED"), (2, "BUFFERED"), (3, "BUFFERED")]
    assert rows(store, "SELECT run_id, state FROM runs WHERE state = 'PENDING'") == [(f"{JOB}:2", "PENDING")]
    page, _ = await queries.occurrences(
        JOB, since=None, until=None, fate="BUFFERED", page_size=10, page_token=""
    )
    assert [((o.nominal - DUE) // SEC, o.buffer_position) for o in page] == [(3, 2), (2, 1)]

    # and with room in the buffer again, the next occurrence waits behind them
    apply(store, tick(6))
    assert fates(store)[-1] == (6, "BUFFERED")

    end_run(store, 2, DUE + 7 * SEC)
    end_run(store, 3, DUE + 8 * SEC)
    end_run(store, 4, DUE + 9 * SEC)
    end_run(store, 7, DUE + 10 * SEC)
    # Then every buffered occurrence ran, in the order of its nominal time, each after the one before
    ran = rows(
        store,
        "SELECT o.nominal, r.finished_at FROM occurrences o JOIN runs r ON r.run_id = o.run_id"
        " WHERE o.fate = 'TRIGGERED' ORDER BY r.triggered_at, o.nominal",
    )
    assert [(n - DUE) // SEC for n, _ in ran] == [0, 1, 2, 3, 6]
    assert [f for _, f in ran] == sorted(f for _, f in ran)
    assert rows(store, "SELECT COUNT(*) FROM occurrences WHERE fate = 'BUFFERED'") == [(0,)]
