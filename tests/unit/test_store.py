"""Tests for the SQLite state machine (``Store``) and the reads over its file (``Queries``).

Every test uses a real SQLite file under ``tmp_path``. Commands are encoded
with ``commands.encode`` and applied at consecutive indexes, as the Raft
engine does; table contents are checked through a separate plain ``sqlite3``
connection, which also proves that what apply wrote was committed.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import SERIALIZER_STATE

from ordo_node import commands as c
from ordo_node import snapshots
from ordo_node.errors import InvalidArgument
from ordo_node.queries import Queries, decode_token, encode_token
from ordo_node.statemachine.effects import Effects
from ordo_node.statemachine.store import Store
from ordo_node.timeutil import format_us, parse_rfc3339

SEC = 1_000_000
T0 = 1_900_000_000 * SEC  # 2030-03-17, in microseconds
DUE = T0 + 60 * SEC
NODE = "node1"
OTHER = "node2"
TABLES = {
    "jobs": "id",
    "runs": "run_id, attempt",
    "events": "seq",
    "requests": "id",
    "meta": "key",
}


# --- helpers ----------------------------------------------------------------


def jid(n: int) -> str:
    """A canonical job id, distinct and sortable by ``n``."""
    return f"00000000-0000-4000-8000-{n:012d}"


def run_of(n: int) -> str:
    """The run id the first trigger of job ``n`` creates."""
    return f"{jid(n)}:1"


def spec(
    n: int, *, due: int = DUE, key: str = "", spec_hash: str = "hash-a", payload: Any = None
) -> c.JobSpec:
    return c.JobSpec(
        job_id=jid(n),
        type="echo",
        payload=json.dumps({"n": n} if payload is None else payload),
        run_at=due,
        name=f"job {n}",
        idempotency_key=key,
        spec_hash=spec_hash,
    )


def rid() -> str:
    return uuid.uuid4().hex


def submit(*specs: c.JobSpec, at: int = T0, request_id: str = "") -> c.SubmitJobs:
    return c.SubmitJobs(request_id=request_id or rid(), at=at, node=NODE, jobs=specs)


def trigger(n: int, due: int = DUE, *, at: int = DUE + SEC, request_id: str = "") -> c.TriggerJobs:
    return c.TriggerJobs(request_id=request_id or rid(), at=at, node=NODE, triggers=(c.Trigger(jid(n), due),))


def assign(n: int, node: str = NODE, *, at: int = DUE + 2 * SEC, attempt: int = 1) -> c.AssignRuns:
    return c.AssignRuns(
        request_id=rid(), at=at, node=NODE, assignments=(c.Assignment(run_of(n), attempt, node),)
    )


def report(node: str, *updates: c.RunUpdate) -> c.RecordRunUpdates:
    return c.RecordRunUpdates(request_id=rid(), node=node, updates=updates)


def started(n: int, at: int = DUE + 3 * SEC) -> c.RunUpdate:
    return c.RunUpdate(run_of(n), 1, "started", at)


def succeeded(n: int, result: Any, at: int = DUE + 4 * SEC) -> c.RunUpdate:
    return c.RunUpdate(run_of(n), 1, "succeeded", at, result=json.dumps(result))


def failed(n: int, error: str, at: int = DUE + 4 * SEC) -> c.RunUpdate:
    return c.RunUpdate(run_of(n), 1, "failed", at, error=error)


def expire(
    n: int, attempt: int = 1, *, at: int = DUE + 6 * SEC, reason: str = "node2 unreachable"
) -> c.ExpireRuns:
    return c.ExpireRuns(
        request_id=rid(), at=at, node=NODE, runs=(c.RunRef(run_of(n), attempt),), reason=reason
    )


def cancel(n: int, at: int = DUE + 5 * SEC) -> c.CancelJob:
    return c.CancelJob(request_id=rid(), at=at, node=NODE, job_id=jid(n))


class Log:
    """Applies commands to one store at consecutive indexes, as the Raft engine does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = store.last_applied

    def __call__(self, cmd: c.Command) -> Any:
        return self.raw(c.encode(cmd))

    def raw(self, blob: bytes) -> Any:
        self.index += 1
        return self.store.apply(self.index, blob)


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` read through a fresh connection (so: only committed data)."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


def dump(path: Path, tables: tuple[str, ...] = tuple(TABLES)) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table, in primary-key order."""
    return {t: rows(path, f"SELECT * FROM {t} ORDER BY {TABLES[t]}") for t in tables}


def state_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The tables a command changes, leaving out its own bookkeeping (requests, meta)."""
    return dump(path, ("jobs", "runs", "events"))


def job_state(path: Path, n: int) -> str:
    return str(rows(path, "SELECT state FROM jobs WHERE id = ?", jid(n))[0][0])


def run_row(path: Path, n: int, attempt: int = 1) -> dict[str, Any]:
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT * FROM runs WHERE run_id = ? AND attempt = ?", (run_of(n), attempt)
        ).fetchone()
    return dict(row)


def event_types(path: Path, n: int) -> list[str]:
    return [r[0] for r in rows(path, "SELECT type FROM events WHERE job_id = ? ORDER BY seq", jid(n))]


def meta_last_applied(path: Path) -> int:
    return int(rows(path, "SELECT value FROM meta WHERE key = 'last_applied'")[0][0])


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "node1" / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()
    # Whatever the test did: the open attempts are exactly the unfinished ones
    # (the runs_unfinished index, and every query on open runs, rely on it).
    with closing(sqlite3.connect(db_path)) as db:
        assert (
            db.execute(
                "SELECT run_id, attempt, state, finished_at FROM runs"
                " WHERE (finished_at IS NULL) != (state IN ('PENDING', 'ASSIGNED', 'RUNNING'))"
            ).fetchall()
            == []
        )


@pytest.fixture
def apply(store: Store) -> Log:
    return Log(store)


def to_running(apply: Log, n: int, node: str = NODE) -> None:
    """Job ``n``: submitted, triggered, assigned to ``node`` and started there."""
    apply(submit(spec(n)))
    apply(trigger(n))
    apply(assign(n, node))
    apply(report(node, started(n)))


# --- determinism and replay --------------------------------------------------


def scenario() -> list[bytes]:
    """A log touching every command type, refusals and a bad entry included."""
    cmds: list[c.Command] = [
        submit(spec(1), spec(2, due=DUE + SEC)),
        submit(spec(3, key="k3"), at=T0 + 1),
        trigger(1),
        trigger(2, due=DUE),  # wrong due time: skipped
        assign(1, OTHER),
        report(OTHER, started(1)),
        report(OTHER, succeeded(1, {"ok": True})),
        report(NODE, failed(1, "stale")),  # not this node's run
        submit(spec(5)),
        trigger(5),
        assign(5, OTHER),
        expire(5),  # attempt 2 becomes pending
        cancel(3),
        cancel(5),  # cancels the pending attempt 2
        cancel(99),  # refused: no such job
        submit(spec(4, key="k3", spec_hash="other")),  # refused: key reused
        c.Barrier(node=NODE),
    ]
    return [c.encode(cmd) for cmd in cmds] + [b"not a command"]


def test_apply_is_deterministic(tmp_path: Path) -> None:
    # Given: one log, encoded once
    blobs = scenario()
    stores = [Store(tmp_path / name / "state.db") for name in ("a", "b")]
    try:
        # When: it is applied to two fresh stores
        for s in stores:
            for index, blob in enumerate(blobs, start=1):
                s.apply(index, blob)
    finally:
        for s in stores:
            s.close()
    # Then: every table holds the same rows, and the scenario did write something
    first, second = dump(stores[0].path), dump(stores[1].path)
    assert first == second
    assert all(first[t] for t in TABLES)
    assert meta_last_applied(stores[0].path) == len(blobs)


def test_replay_after_restart_changes_nothing(db_path: Path) -> None:
    # Given: a store that applied a few entries and was closed
    blobs = scenario()
    store = Store(db_path)
    for index, blob in enumerate(blobs, start=1):
        store.apply(index, blob)
    store.close()
    before = dump(db_path)

    # When: it is reopened and the journal is replayed from the start
    reopened = Store(db_path)
    try:
        assert reopened.last_applied == len(blobs)
        results = [reopened.apply(index, blob) for index, blob in enumerate(blobs, start=1)]
    finally:
        reopened.close()

    # Then: every replayed entry is skipped and the database is unchanged
    assert results == [None] * len(blobs)
    assert dump(db_path) == before
    assert meta_last_applied(db_path) == len(blobs)


def test_undecodable_blob_is_skipped_and_index_advances(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))
    before = state_tables(store.path)

    assert apply.raw(b"\x00garbage") is None
    assert apply.raw(b'{"v": 1, "op": "no-such-op"}') is None

    assert store.last_applied == 3
    assert meta_last_applied(store.path) == 3
    assert state_tables(store.path) == before


# --- submit and trigger ----------------------------------------------------------


def test_submit_schedules_job_with_event(store: Store, apply: Log) -> None:
    result = apply(submit(spec(1), spec(2, due=DUE + SEC)))

    assert result == {"job_ids": [jid(1), jid(2)], "created": [True, True]}
    job = rows(
        store.path, "SELECT state, due_at, created_at, submitted_to, payload FROM jobs WHERE id = ?", jid(1)
    )
    assert job == [("SCHEDULED", DUE, T0, NODE, '{"n": 1}')]
    assert event_types(store.path, 1) == ["SCHEDULED"]
    assert event_types(store.path, 2) == ["SCHEDULED"]
    assert rows(store.path, "SELECT COUNT(*) FROM runs") == [(0,)]


def test_trigger_with_matching_due_at_creates_one_pending_run(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))

    result = apply(trigger(1, DUE, at=DUE + SEC))

    assert result == {"triggered": [jid(1)], "skipped": {}}
    assert job_state(store.path, 1) == "TRIGGERED"
    runs = rows(store.path, "SELECT run_id, attempt, job_id, state, scheduled_at, triggered_at FROM runs")
    assert runs == [(run_of(1), 1, jid(1), "PENDING", DUE, DUE + SEC)]
    assert event_types(store.path, 1) == ["SCHEDULED", "TRIGGERED"]


def test_second_trigger_with_new_request_id_is_skipped(store: Store, apply: Log) -> None:
    # Given: a job already triggered
    apply(submit(spec(1)))
    apply(trigger(1))
    before = state_tables(store.path)

    # When: another trigger for the same due time comes, as a new request
    result = apply(trigger(1, at=DUE + 9 * SEC))

    # Then: it is reported skipped and adds no run or event
    assert result["triggered"] == []
    assert result["skipped"][jid(1)].startswith("not due: state TRIGGERED")
    assert state_tables(store.path) == before


def test_second_trigger_with_same_request_id_answers_first_result(store: Store, apply: Log) -> None:
    # A repeated request is answered from the request table, so it reports the
    # first outcome (triggered), not "skipped"; either way nothing changes.
    apply(submit(spec(1)))
    first = apply(trigger(1, request_id="trigger-1"))
    before = state_tables(store.path)

    again = apply(trigger(1, request_id="trigger-1"))

    assert again == first == {"triggered": [jid(1)], "skipped": {}}
    assert state_tables(store.path) == before


@pytest.mark.parametrize("due", [DUE - 1, DUE + 1], ids=["earlier", "later"])
def test_trigger_with_wrong_due_at_is_skipped(store: Store, apply: Log, due: int) -> None:
    apply(submit(spec(1)))
    before = state_tables(store.path)

    result = apply(trigger(1, due))

    assert result["triggered"] == []
    assert "not due: state SCHEDULED" in result["skipped"][jid(1)]
    assert state_tables(store.path) == before


def test_trigger_of_unknown_job_is_skipped(store: Store, apply: Log) -> None:
    result = apply(trigger(42))

    assert result == {"triggered": [], "skipped": {jid(42): "no such job"}}
    assert rows(store.path, "SELECT COUNT(*) FROM runs") == [(0,)]


# --- assign ------------------------------------------------------------------


def test_assign_pending_run(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))
    apply(trigger(1))

    result = apply(assign(1, OTHER, at=DUE + 2 * SEC))

    assert result == {"assigned": [[run_of(1), 1, OTHER]]}
    run = run_row(store.path, 1)
    assert (run["state"], run["node_id"], run["assigned_at"]) == ("ASSIGNED", OTHER, DUE + 2 * SEC)
    assert event_types(store.path, 1) == ["SCHEDULED", "TRIGGERED", "ASSIGNED"]


def test_second_assignment_of_same_attempt_is_refused(store: Store, apply: Log) -> None:
    # Given: a run assigned to OTHER
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign(1, OTHER))
    before = state_tables(store.path)

    # When: a second assignment of the same attempt comes, to another node
    result = apply(assign(1, NODE, at=DUE + 7 * SEC))

    # Then: it is not accepted and the first assignment stands
    assert result == {"assigned": []}
    assert state_tables(store.path) == before
    assert run_row(store.path, 1)["node_id"] == OTHER


def test_assign_needs_an_existing_pending_run(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))  # scheduled, no run yet

    assert apply(assign(1)) == {"assigned": []}
    assert apply(assign(1, attempt=2)) == {"assigned": []}
    assert rows(store.path, "SELECT COUNT(*) FROM runs") == [(0,)]


# --- run updates -----------------------------------------------------------------


def test_started_marks_run_and_job_running(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign(1, OTHER))

    result = apply(report(OTHER, started(1, at=DUE + 3 * SEC)))

    assert result == {"stale": []}
    run = run_row(store.path, 1)
    assert (run["state"], run["started_at"]) == ("RUNNING", DUE + 3 * SEC)
    assert job_state(store.path, 1) == "RUNNING"
    assert event_types(store.path, 1)[-1] == "STARTED"


def test_succeeded_stores_result(store: Store, apply: Log) -> None:
    to_running(apply, 1, OTHER)

    result = apply(report(OTHER, succeeded(1, {"echo": [1, "two"]}, at=DUE + 4 * SEC)))

    assert result == {"stale": []}
    run = run_row(store.path, 1)
    assert (run["state"], run["finished_at"], run["error"]) == ("SUCCEEDED", DUE + 4 * SEC, None)
    assert json.loads(run["result"]) == {"echo": [1, "two"]}
    assert job_state(store.path, 1) == "SUCCEEDED"
    assert event_types(store.path, 1)[-1] == "SUCCEEDED"


def test_failed_outcome_of_assigned_run_fills_started_at(store: Store, apply: Log) -> None:
    # An attempt may fail before its "started" report arrives.
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign(1, OTHER))

    apply(report(OTHER, failed(1, "boom", at=DUE + 4 * SEC)))

    run = run_row(store.path, 1)
    assert (run["state"], run["started_at"], run["error"]) == ("FAILED", DUE + 4 * SEC, "boom")
    assert job_state(store.path, 1) == "FAILED"
    assert rows(store.path, "SELECT message FROM events WHERE type = 'FAILED'") == [("boom",)]


def test_update_from_another_node_is_stale(store: Store, apply: Log) -> None:
    # Given: a run assigned to OTHER
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign(1, OTHER))
    before = state_tables(store.path)

    # When: NODE reports on it
    result = apply(report(NODE, started(1), succeeded(1, "x")))

    # Then: both reports are stale and nothing changed
    assert result == {
        "stale": [[run_of(1), 1, "not assigned to this node"], [run_of(1), 1, "not assigned to this node"]]
    }
    assert state_tables(store.path) == before


def test_outcome_for_finished_attempt_is_stale(store: Store, apply: Log) -> None:
    to_running(apply, 1)
    apply(report(NODE, succeeded(1, "first")))
    before = state_tables(store.path)

    result = apply(report(NODE, failed(1, "late", at=DUE + 9 * SEC), started(1)))

    assert result == {"stale": [[run_of(1), 1, "run is SUCCEEDED"], [run_of(1), 1, "run is SUCCEEDED"]]}
    # Nothing changes but the history, which records the refused outcome (not the late "started")
    after = state_tables(store.path)
    assert {k: v for k, v in after.items() if k != "events"} == {
        k: v for k, v in before.items() if k != "events"
    }
    assert after["events"][: len(before["events"])] == before["events"]
    assert [(e[2], e[7]) for e in after["events"][len(before["events"]) :]] == [
        ("STALE", "failed refused: the attempt is SUCCEEDED")
    ]


def test_update_for_unknown_run_is_stale(store: Store, apply: Log) -> None:
    assert apply(report(NODE, started(7))) == {"stale": [[run_of(7), 1, "not assigned to this node"]]}


# --- expiry of unreachable executors' attempts ------------------------------------------


def test_expire_assigned_attempt_requeues_a_new_attempt(store: Store, apply: Log) -> None:
    # Given: a run assigned to OTHER, and a listener
    apply(submit(spec(1)))
    apply(trigger(1, at=DUE + SEC))
    apply(assign(1, OTHER))
    seen: list[Effects] = []
    store.listener = seen.append

    # When: the leader gives the attempt up
    result = apply(expire(1, at=DUE + 6 * SEC, reason="node2 unreachable"))

    # Then: attempt 1 is LOST, attempt 2 is pending with the same trigger time, the job is still TRIGGERED
    assert result == {"requeued": [[run_of(1), 2]]}
    lost, fresh = run_row(store.path, 1, 1), run_row(store.path, 1, 2)
    assert (lost["state"], lost["finished_at"], lost["error"]) == ("LOST", DUE + 6 * SEC, "node2 unreachable")
    assert (fresh["state"], fresh["node_id"], fresh["triggered_at"]) == ("PENDING", None, DUE + SEC)
    assert rows(store.path, "SELECT state FROM jobs") == [("TRIGGERED",)]
    assert rows(store.path, "SELECT type, node_id, attempt FROM events ORDER BY seq DESC LIMIT 1") == [
        ("LOST", OTHER, 1)
    ]
    assert [fx.pending for fx in seen] == [[(run_of(1), 2)]]


def test_lost_attempt_is_fenced_off(store: Store, apply: Log) -> None:
    # Given: attempt 1 expired and attempt 2 assigned to NODE
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign(1, OTHER))
    apply(expire(1))
    assert apply(assign(1, NODE, attempt=2)) == {"assigned": [[run_of(1), 2, NODE]]}

    # When: the old executor reports late, and the new one reports its outcome
    late = apply(report(OTHER, succeeded(1, "late")))
    outcome = apply(report(NODE, c.RunUpdate(run_of(1), 2, "succeeded", DUE + 9 * SEC, result='"on time"')))

    # Then: only the new attempt counts
    assert late == {"stale": [[run_of(1), 1, "run is LOST"]]}
    assert outcome == {"stale": []}
    assert run_row(store.path, 1, 1)["state"] == "LOST"
    assert (run_row(store.path, 1, 2)["state"], job_state(store.path, 1)) == ("SUCCEEDED", "SUCCEEDED")


@pytest.mark.parametrize("stage", ["pending", "expired", "succeeded"])
def test_expire_only_touches_assigned_or_running_attempts(store: Store, apply: Log, stage: str) -> None:
    apply(submit(spec(1)))
    apply(trigger(1))
    if stage != "pending":
        apply(assign(1))
    if stage == "expired":
        apply(expire(1))
    if stage == "succeeded":
        apply(report(NODE, started(1), succeeded(1, {"ok": 1})))
    before = state_tables(store.path)

    assert apply(expire(1)) == {"requeued": []}
    assert state_tables(store.path) == before


# --- request ids and idempotency keys ------------------------------------------------


def test_repeated_request_id_returns_first_result(store: Store, apply: Log) -> None:
    # Given: a submit applied once
    first_cmd = submit(spec(1), request_id="client-retry")
    first = apply(first_cmd)
    before = state_tables(store.path)

    # When: the same command, and a different one under the same request id, come later
    same = apply(first_cmd)
    other = apply(submit(spec(2), request_id="client-retry"))

    # Then: both get the first answer and nothing new exists
    assert first == {"job_ids": [jid(1)], "created": [True]}
    assert same == first
    assert other == first
    assert state_tables(store.path) == before
    assert rows(store.path, "SELECT id FROM requests") == [("client-retry",)]


def test_same_idempotency_key_and_hash_returns_existing_job(store: Store, apply: Log) -> None:
    apply(submit(spec(1, key="daily-report")))
    before = state_tables(store.path)

    result = apply(submit(spec(2, key="daily-report")))

    assert result == {"job_ids": [jid(1)], "created": [False]}
    assert state_tables(store.path) == before


def test_same_idempotency_key_different_hash_refuses_whole_batch(store: Store, apply: Log) -> None:
    # Given: a job with key "daily-report"
    apply(submit(spec(1, key="daily-report", spec_hash="hash-a")))
    before = state_tables(store.path)

    # When: a batch holds a new job and then the key with another definition
    result = apply(submit(spec(2), spec(3, key="daily-report", spec_hash="hash-b")))

    # Then: the batch is refused, none of it exists, and the index still advances
    assert result["error"] == "ALREADY_EXISTS"
    assert "daily-report" in result["message"]
    assert rows(store.path, "SELECT id FROM jobs WHERE id IN (?, ?)", jid(2), jid(3)) == []
    assert state_tables(store.path) == before
    assert store.last_applied == apply.index == 2
    assert meta_last_applied(store.path) == 2


def test_existing_job_id_refuses_batch(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))

    result = apply(submit(spec(2), spec(1)))

    assert result["error"] == "ALREADY_EXISTS"
    assert rows(store.path, "SELECT id FROM jobs") == [(jid(1),)]


# --- cancel ------------------------------------------------------------------


def test_cancel_scheduled_job(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))

    result = apply(cancel(1, at=T0 + 5 * SEC))

    assert result == {"job_id": jid(1)}
    assert rows(store.path, "SELECT state, updated_at FROM jobs") == [("CANCELLED", T0 + 5 * SEC)]
    assert event_types(store.path, 1) == ["SCHEDULED", "CANCELLED"]


def test_cancel_triggered_job_cancels_assigned_run(store: Store, apply: Log) -> None:
    # Given: a triggered job whose run is assigned to OTHER, and a listener
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign(1, OTHER))
    seen: list[Effects] = []
    store.listener = seen.append

    # When: it is cancelled
    result = apply(cancel(1, at=DUE + 5 * SEC))

    # Then: job and run are cancelled and the listener learns which executor to stop
    assert result == {"job_id": jid(1)}
    assert job_state(store.path, 1) == "CANCELLED"
    run = run_row(store.path, 1)
    assert (run["state"], run["finished_at"]) == ("CANCELLED", DUE + 5 * SEC)
    assert event_types(store.path, 1)[-1] == "CANCELLED"
    assert [fx.cancelled_runs for fx in seen] == [[(run_of(1), 1, OTHER)]]


def test_cancel_running_job_stops_its_attempt(store: Store, apply: Log) -> None:
    to_running(apply, 1)
    seen: list[Effects] = []
    store.listener = seen.append

    result = apply(cancel(1))

    assert result == {"job_id": jid(1)}
    assert job_state(store.path, 1) == "CANCELLED"
    assert run_row(store.path, 1, 1)["state"] == "CANCELLED"
    assert [fx.cancelled_runs for fx in seen] == [[(run_of(1), 1, NODE)]]
    late = apply(report(NODE, succeeded(1, {"late": True})))
    assert late == {"stale": [[run_of(1), 1, "run is CANCELLED"]]}


def test_cancel_finished_job_is_refused(store: Store, apply: Log) -> None:
    to_running(apply, 1)
    apply(report(NODE, succeeded(1, None)))

    result = apply(cancel(1))

    assert result["error"] == "FAILED_PRECONDITION"
    assert job_state(store.path, 1) == "SUCCEEDED"


def test_cancel_unknown_job_is_not_found(store: Store, apply: Log) -> None:
    result = apply(cancel(5))

    assert result["error"] == "NOT_FOUND"
    assert jid(5) in result["message"]
    assert store.last_applied == 1


# --- the listener --------------------------------------------------------------


def test_listener_gets_effects_after_commit(store: Store, apply: Log) -> None:
    # Given: a listener that reads the database through its own connection
    seen: list[tuple[Effects, int, list[tuple[Any, ...]]]] = []

    def listener(fx: Effects) -> None:
        committed = meta_last_applied(store.path)
        seen.append((fx, committed, rows(store.path, "SELECT id, state FROM jobs ORDER BY id")))

    store.listener = listener

    # When: a submit, a trigger and an outcome are applied
    apply(submit(spec(1, due=DUE + 5), spec(2, due=DUE)))
    apply(trigger(2))
    apply(assign(2))
    apply(report(NODE, succeeded(2, "ok")))

    # Then: each call came after its commit, with what changed
    submit_fx, trigger_fx, assign_fx, outcome_fx = (s[0] for s in seen)
    assert [s[1] for s in seen] == [1, 2, 3, 4]
    assert submit_fx.index == 1
    assert submit_fx.earliest_due == DUE
    assert submit_fx.scheduled == [(jid(1), DUE + 5), (jid(2), DUE)]
    assert seen[0][2] == [(jid(1), "SCHEDULED"), (jid(2), "SCHEDULED")]
    assert trigger_fx.triggered == [jid(2)]
    assert trigger_fx.pending == [(run_of(2), 1)]
    assert seen[1][2][1] == (jid(2), "TRIGGERED")
    assert assign_fx.assigned == [(run_of(2), 1, NODE)]
    assert outcome_fx.finished == [(run_of(2), 1, NODE, "SUCCEEDED")]
    assert seen[3][2][1] == (jid(2), "SUCCEEDED")


def test_an_outcome_tells_the_listener_how_long_the_run_took(store: Store, apply: Log) -> None:
    # Given two runs: one whose start was reported on its own, one whose start came with its outcome
    seen: list[Effects] = []
    store.listener = seen.append
    to_running(apply, 1)  # started at DUE + 3 s
    apply(submit(spec(2)))
    apply(trigger(2))
    apply(assign(2))
    # When both succeed at DUE + 4 s (the second started at DUE + 3.5 s), and one more without a start
    outcome = c.RunUpdate(run_of(2), 1, "succeeded", DUE + 4 * SEC, started_at=DUE + 3 * SEC + SEC // 2)
    apply(report(NODE, succeeded(1, "ok"), outcome))
    # Then the listener hears each node's run times (the leader's dispatcher sizes its queues by them)
    assert seen[-1].run_times == [(NODE, SEC), (NODE, SEC // 2)]


def test_listener_hears_every_entry_with_empty_effects_when_nothing_changed(store: Store, apply: Log) -> None:
    # The listener wakes watchers after each applied entry, even when no actor has work.
    seen: list[Effects] = []
    store.listener = seen.append

    apply(c.Barrier(node=NODE))
    apply(cancel(9))  # refused
    apply(trigger(9))  # skipped
    apply.raw(b"junk")

    assert [fx.index for fx in seen] == [1, 2, 3, 4]
    assert all(fx.empty() for fx in seen)
    assert store.last_applied == 4


def test_barrier_returns_its_index(apply: Log) -> None:
    apply(submit(spec(1)))

    assert apply(c.Barrier(node=NODE)) == {"index": 2}


# --- snapshots -----------------------------------------------------------------


def test_an_older_database_loses_the_old_open_runs_index(db_path: Path) -> None:
    # Given a schema-3 database, with its runs_open index on "state IN (...)"
    Store(db_path).close()
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("DROP INDEX runs_unfinished")
        db.execute(
            "CREATE INDEX runs_open ON runs(state, node_id) WHERE state IN ('PENDING', 'ASSIGNED', 'RUNNING')"
        )
        db.commit()
    # When a node opens it
    Store(db_path).close()
    # Then it has the new index only
    with closing(sqlite3.connect(db_path)) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "runs_unfinished" in names and "runs_open" not in names


def test_snapshot_restores_into_empty_store(store: Store, apply: Log, tmp_path: Path) -> None:
    # Given: a store with jobs in several states, snapshotted to a file
    to_running(apply, 1)
    apply(submit(spec(2), spec(3)))
    apply(cancel(3))
    snap = tmp_path / "snapshots" / "snap.db"
    snap.parent.mkdir()
    snapshots.write(store.path, snap, ("raft", 7, [1, 2]))

    # When: it is restored into a fresh store in another directory
    fresh = Store(tmp_path / "elsewhere" / "state.db")
    try:
        meta = fresh.restore(str(snap))
        restored_index = fresh.last_applied
        restored = dump(fresh.path)
        next_result = fresh.apply(apply.index + 1, c.encode(cancel(2)))
    finally:
        fresh.close()

    # Then: same data and index, the Raft metadata comes back, and the store goes on applying
    assert meta == ("raft", 7, [1, 2])
    assert restored_index == apply.index == meta_last_applied(snap)
    assert restored == dump(store.path)
    assert next_result == {"job_id": jid(2)}
    assert job_state(fresh.path, 2) == "CANCELLED"
    tables = rows(fresh.path, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert ("raft_snapshot",) not in tables


def test_older_snapshot_does_not_overwrite_newer_store(store: Store, apply: Log, tmp_path: Path) -> None:
    # Given: a snapshot taken at index 1, and a store that went on to index 3
    apply(submit(spec(1)))
    snap = tmp_path / "old.db"
    snapshots.write(store.path, snap, "old-meta")
    apply(submit(spec(2)))
    apply(trigger(1))
    newer = dump(store.path)

    # When: the old snapshot is restored into it
    meta = store.restore(str(snap))

    # Then: the local, newer data is kept
    assert meta == "old-meta"
    assert store.last_applied == 3
    assert dump(store.path) == newer


def test_snapshot_overwrites_existing_file(store: Store, apply: Log, tmp_path: Path) -> None:
    snap = tmp_path / "snap.db"
    apply(submit(spec(1)))
    snapshots.write(store.path, snap, "first")
    apply(submit(spec(2)))

    snapshots.write(store.path, snap, "second")

    assert rows(snap, "SELECT id FROM jobs ORDER BY id") == [(jid(1),), (jid(2),)]
    fresh = Store(tmp_path / "fresh" / "state.db")
    try:
        assert fresh.restore(str(snap)) == "second"
    finally:
        fresh.close()


# --- bugs ----------------------------------------------------------------------


@pytest.mark.parametrize("blob", [b'"text"', b"null", b"5"])
def test_json_scalar_blob_is_skipped(store: Store, apply: Log, blob: bytes) -> None:
    assert apply.raw(blob) is None
    assert store.last_applied == 1


def test_run_at_past_year_9999_does_not_break_apply(store: Store, apply: Log) -> None:
    # Given: a due time that validate.job_spec accepts (parse_rfc3339 allows the offset to cross 9999)
    due = parse_rfc3339("9999-12-31T23:59:59-01:00")

    # When: it is applied
    apply(submit(spec(1, due=due)))

    # Then: apply returned, left no transaction open, and the next entry applies
    assert store.last_applied == 1
    assert not store._db.in_transaction  # guard: a later apply would os._exit(70) otherwise
    assert apply(c.Barrier(node=NODE)) == {"index": 2}


# --- queries -----------------------------------------------------------------------


async def test_get_job_with_runs(apply: Log, queries: Queries) -> None:
    apply(submit(spec(1, payload={"msg": "hi"})))
    apply(trigger(1))
    apply(assign(1, OTHER))
    apply(report(OTHER, started(1)))
    apply(report(OTHER, succeeded(1, [1])))

    job = await queries.get_job(jid(1))

    assert job is not None
    assert (job.job_id, job.name, job.type, job.state) == (jid(1), "job 1", "echo", "SUCCEEDED")
    assert job.payload == {"msg": "hi"}
    assert (job.run_at, job.created_at, job.submitted_to, job.idempotency_key) == (DUE, T0, NODE, "")
    assert len(job.runs) == 1
    run = job.runs[0]
    assert (run.run_id, run.attempt, run.state, run.node_id) == (run_of(1), 1, "SUCCEEDED", OTHER)
    assert (run.scheduled_at, run.started_at, run.finished_at) == (DUE, DUE + 3 * SEC, DUE + 4 * SEC)
    assert (run.result, run.error) == ([1], "")
    assert await queries.get_job(jid(2)) is None


async def test_get_job_without_runs(apply: Log, queries: Queries) -> None:
    apply(submit(spec(1, key="k")))

    job = await queries.get_job(jid(1))

    assert job is not None
    assert job.runs == ()
    assert job.idempotency_key == "k"


def submit_five(apply: Log) -> list[str]:
    """Five jobs over three submits (two share a created_at); newest first, as list_jobs orders them."""
    apply(submit(spec(1), at=T0 + 1))
    apply(submit(spec(2), spec(3), at=T0 + 2))
    apply(submit(spec(4), spec(5), at=T0 + 3))
    return [jid(n) for n in (5, 4, 3, 2, 1)]


async def test_list_jobs_pages_chain_through_all_jobs(apply: Log, queries: Queries) -> None:
    newest_first = submit_five(apply)

    # When: pages of 2 are read by following the tokens
    pages: list[list[str]] = []
    token = ""
    while True:
        jobs, token = await queries.list_jobs(page_size=2, page_token=token)
        pages.append([j.job_id for j in jobs])
        if not token:
            break

    # Then: 2 + 2 + 1, newest first, each job once
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [j for p in pages for j in p] == newest_first


async def test_list_jobs_default_page_has_everything(apply: Log, queries: Queries) -> None:
    newest_first = submit_five(apply)

    jobs, token = await queries.list_jobs()

    assert [j.job_id for j in jobs] == newest_first
    assert token == ""


async def test_list_jobs_state_and_type_filters(apply: Log, queries: Queries) -> None:
    submit_five(apply)
    apply(cancel(2))
    apply(cancel(4))

    cancelled, token = await queries.list_jobs(state="CANCELLED", page_size=1)
    rest, last = await queries.list_jobs(state="CANCELLED", page_size=1, page_token=token)

    assert [j.job_id for j in cancelled + rest] == [jid(4), jid(2)]
    assert last == ""
    scheduled, _ = await queries.list_jobs(state="SCHEDULED")
    assert [j.job_id for j in scheduled] == [jid(5), jid(3), jid(1)]
    assert await queries.list_jobs(type_="sleep") == ([], "")


@pytest.mark.parametrize(
    "token",
    ["not base64!", "abc", encode_token(1, "x")[:-1] + "*", "bm8tY29sb24=", "eDox"],
    ids=["junk", "bad-padding", "bad-char", "no-colon", "non-int-time"],
)
async def test_bad_page_token_is_invalid_argument(queries: Queries, token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        await queries.list_jobs(page_token=token)
    assert info.value.field == "pageToken"


async def test_history_in_order(apply: Log, queries: Queries) -> None:
    to_running(apply, 1, OTHER)
    apply(report(OTHER, failed(1, "it broke")))
    apply(submit(spec(2)))

    events = await queries.history(jid(1))

    assert events is not None
    assert [e.type for e in events] == ["SCHEDULED", "TRIGGERED", "ASSIGNED", "STARTED", "FAILED"]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert {e.job_id for e in events} == {jid(1)}
    assert (events[0].run_id, events[0].attempt) == ("", 0)
    assert (events[-1].run_id, events[-1].attempt, events[-1].message) == (run_of(1), 1, "it broke")
    assert [e.node_id for e in events[2:]] == [OTHER] * 3
    assert await queries.history(jid(3)) is None


async def test_next_due_is_earliest_scheduled(apply: Log, queries: Queries) -> None:
    assert await queries.next_due() is None

    apply(submit(spec(1, due=DUE), spec(2, due=DUE + SEC), spec(3, due=DUE + 2 * SEC)))
    assert await queries.next_due() == DUE

    # Triggered and cancelled jobs are no longer due.
    apply(trigger(1, DUE))
    apply(cancel(2))
    assert await queries.next_due() == DUE + 2 * SEC


async def test_due_jobs_earliest_first_up_to_limit(apply: Log, queries: Queries) -> None:
    apply(submit(spec(1, due=DUE + 3), spec(2, due=DUE + 1), spec(3, due=DUE + 2), spec(4, due=DUE + 9)))

    async def due(now: int, limit: int) -> list[tuple[str, int]]:
        return [(d.job_id, d.due_at) for d in await queries.due_jobs(now, limit)]

    assert await due(DUE + 3, 10) == [(jid(2), DUE + 1), (jid(3), DUE + 2), (jid(1), DUE + 3)]
    assert await due(DUE + 3, 2) == [(jid(2), DUE + 1), (jid(3), DUE + 2)]
    assert await due(DUE, 10) == []


async def test_pending_runs_oldest_trigger_first(apply: Log, queries: Queries) -> None:
    apply(submit(spec(1), spec(2), spec(3)))
    apply(trigger(3, at=DUE + 1))
    apply(trigger(1, at=DUE + 2))
    apply(trigger(2, at=DUE + 3))
    apply(assign(3))  # no longer pending

    none = frozenset({"handler:echo"})  # what an executor must offer: the job's type, no tags
    assert await queries.pending_runs(10, DUE + 10) == [(run_of(1), 1, none), (run_of(2), 1, none)]
    assert await queries.pending_runs(1, DUE + 10) == [(run_of(1), 1, none)]


async def test_load_by_node_counts_assigned_and_running(apply: Log, queries: Queries) -> None:
    assert await queries.load_by_node() == {}

    to_running(apply, 1, NODE)  # running on NODE
    to_running(apply, 2, OTHER)
    apply(report(OTHER, succeeded(2, None)))  # finished: not load
    apply(submit(spec(3), spec(4)))
    apply(trigger(3))
    apply(trigger(4))
    apply(assign(3, OTHER))  # assigned to OTHER
    # job 4 stays pending: not load

    assert await queries.load_by_node() == {NODE: 1, OTHER: 1}
    assert await queries.last_applied() == apply.index


# --- leases -------------------------------------------------------------------------

LEASE = 10 * SEC


def assign_with_lease(n: int, at: int = DUE + 2 * SEC) -> c.AssignRuns:
    return c.AssignRuns(
        request_id=rid(),
        at=at,
        node=NODE,
        assignments=(c.Assignment(run_of(n), 1, NODE),),
        lease_until=at + LEASE,
    )


def expire_lease(n: int, at: int) -> c.ExpireRuns:
    return c.ExpireRuns(
        request_id=rid(),
        at=at,
        node=NODE,
        runs=(c.RunRef(run_of(n), 1),),
        reason="lease expired",
        check_lease=True,
    )


def renew(n: int, at: int, node: str = NODE, attempt: int = 1) -> c.RenewLeases:
    return c.RenewLeases(
        request_id=rid(), node=node, at=at, lease_until=at + LEASE, runs=(c.RunRef(run_of(n), attempt),)
    )


def test_a_running_attempt_whose_lease_ended_is_lost_and_run_again(store: Store, apply: Log) -> None:
    # Given: a running attempt with a lease to DUE + 12 s
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign_with_lease(1))
    apply(report(NODE, started(1)))

    # When: the leader expires it before the lease ends, nothing happens
    assert apply(expire_lease(1, at=DUE + 11 * SEC)) == {"requeued": []}
    assert run_row(store.path, 1, 1)["state"] == "RUNNING"

    # When: after the lease ended
    assert apply(expire_lease(1, at=DUE + 13 * SEC)) == {"requeued": [[run_of(1), 2]]}

    # Then: the attempt is LOST, a new one is pending, and the old executor's outcome is stale
    assert run_row(store.path, 1, 1)["state"] == "LOST"
    assert run_row(store.path, 1, 2)["state"] == "PENDING"
    assert job_state(store.path, 1) == "TRIGGERED"
    late = apply(report(NODE, succeeded(1, {"late": True})))
    assert late == {"stale": [[run_of(1), 1, "run is LOST"]]}


def test_renewal_keeps_an_attempt_and_reports_the_ones_it_lost(store: Store, apply: Log) -> None:
    # Given: a running attempt whose lease is renewed just before the leader looks
    apply(submit(spec(1)))
    apply(trigger(1))
    apply(assign_with_lease(1))
    apply(report(NODE, started(1)))
    assert apply(renew(1, at=DUE + 11 * SEC)) == {"lost": []}

    # Then: the expiry that was decided on the old lease changes nothing
    assert apply(expire_lease(1, at=DUE + 13 * SEC)) == {"requeued": []}
    assert run_row(store.path, 1, 1)["state"] == "RUNNING"

    # and: a renewal by another node, or of an attempt that is gone, reports it lost
    assert apply(renew(1, at=DUE + 14 * SEC, node="node9")) == {"lost": [[run_of(1), 1]]}
    apply(report(NODE, succeeded(1, {"ok": True})))
    assert apply(renew(1, at=DUE + 15 * SEC)) == {"lost": [[run_of(1), 1]]}


# --- recurring jobs and retention --------------------------------------------------------


def recurring_spec(n: int) -> c.JobSpec:
    options = json.dumps({"cron": "* * * * * *", "timezone": "UTC", "catch_up": "ONE", "overlap": "ALLOW"})
    return c.JobSpec(jid(n), "echo", "{}", DUE, spec_hash="h", options=options, first_nominal=DUE)


def tick(n: int, k: int, decision: str = "run") -> c.TriggerJobs:
    """Trigger occurrence ``k`` (0-based) of recurring job ``n``: one per second from DUE."""
    due = DUE + k * SEC
    occ = c.Occurrence(due, due, decision, "" if decision == "run" else "no leader")
    trig = c.Trigger(jid(n), due, occurrences=(occ,), next_nominal=due + SEC, next_due=due + SEC)
    return c.TriggerJobs(request_id=rid(), at=due, node=NODE, triggers=(trig,))


def test_recurring_occurrences_get_fates_and_runs(store: Store, apply: Log) -> None:
    apply(submit(recurring_spec(1)))
    assert apply(tick(1, 0)) == {"triggered": [jid(1)], "skipped": {}}
    assert apply(tick(1, 1, "missed")) == {"triggered": [], "skipped": {}}
    # a trigger for a due time that already passed is refused: each occurrence once
    assert apply(tick(1, 0))["skipped"] == {
        jid(1): f"not due: state TRIGGERED, due {format_us(DUE + 2 * SEC)}"
    }

    assert rows(store.path, "SELECT nominal, fate, run_id, ordinal FROM occurrences ORDER BY nominal") == [
        (DUE, "TRIGGERED", f"{jid(1)}:1", 1),
        (DUE + SEC, "MISSED", None, 2),
    ]
    assert rows(store.path, "SELECT state, due_at, occurrences FROM jobs") == [
        ("TRIGGERED", DUE + 2 * SEC, 2)
    ]


def test_prune_keeps_the_last_runs_per_job_and_young_events(store: Store, apply: Log) -> None:
    # Given a recurring job with five finished occurrences
    apply(submit(recurring_spec(1)))
    for k in range(5):
        apply(tick(1, k))
        run = f"{jid(1)}:{k + 1}"
        apply(
            c.AssignRuns(
                request_id=rid(), at=DUE + k * SEC, node=NODE, assignments=(c.Assignment(run, 1, NODE),)
            )
        )
        apply(report(NODE, c.RunUpdate(run, 1, "succeeded", DUE + k * SEC + 1)))

    # When history is pruned to two runs per job, events before DUE + 3 s, and the last 3 request ids
    result = apply(
        c.Prune(
            at=DUE + 10 * SEC, node=NODE, keep_runs=2, events_before=DUE + 3 * SEC, keep_requests=3, limit=100
        )
    )

    # Then the three oldest occurrences and their runs are gone, and the rest is intact
    assert result["occurrences"] == 3 and result["runs"] == 3 and result["events"] > 0
    assert rows(store.path, "SELECT ordinal FROM occurrences ORDER BY ordinal") == [(4,), (5,)]
    assert rows(store.path, "SELECT run_id FROM runs ORDER BY run_id") == [(f"{jid(1)}:4",), (f"{jid(1)}:5",)]
    assert rows(store.path, "SELECT MIN(at) FROM events")[0][0] >= DUE + 3 * SEC
    assert rows(store.path, "SELECT COUNT(*) FROM requests")[0][0] <= 4
    # and a second prune finds nothing more to do
    again = apply(
        c.Prune(
            at=DUE + 11 * SEC, node=NODE, keep_runs=2, events_before=DUE + 3 * SEC, keep_requests=3, limit=100
        )
    )
    assert (again["occurrences"], again["runs"], again["events"]) == (0, 0, 0)


def test_mark_waiting_shows_in_the_job_until_assigned(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))
    apply(trigger(1))
    reason = "no live executor has the tags gpu"
    assert apply(
        c.MarkWaiting(at=DUE + 2 * SEC, node=NODE, runs=(c.RunRef(run_of(1), 1),), reason=reason)
    ) == {"marked": 1}
    assert job_state(store.path, 1) == "WAITING"
    assert run_row(store.path, 1, 1)["waiting"] == reason

    apply(assign(1))
    assert job_state(store.path, 1) == "TRIGGERED"
    assert run_row(store.path, 1, 1)["waiting"] is None


def test_second_active_long_running_job_of_a_name_is_refused(store: Store, apply: Log) -> None:
    def long_running(n: int) -> c.JobSpec:
        return c.JobSpec(
            jid(n), "stream", "{}", DUE, name="feed", spec_hash=f"h{n}", options='{"long_running": true}'
        )

    apply(submit(long_running(1)))
    refused = apply(submit(long_running(2)))
    assert refused["error"] == "ALREADY_EXISTS" and "feed" in refused["message"]
    apply(cancel(1))
    assert apply(submit(long_running(3))) == {"job_ids": [jid(3)], "created": [True]}


def test_member_changes_are_recorded_and_addresses_stay_unique(store: Store, apply: Log) -> None:
    seen: list[Effects] = []
    store.listener = seen.append

    def member(node: str, add: bool, grpc: str = "", raft: str = "") -> c.ChangeMember:
        return c.ChangeMember(
            request_id=rid(), at=T0, node=NODE, member_id=node, add=add, grpc_address=grpc, raft_address=raft
        )

    assert apply(member("node4", True, "h:1", "h:2")) == {"member": "node4", "state": "ACTIVE"}
    assert apply(member("node5", True, "h:3", "h:2"))["error"] == "ALREADY_EXISTS"
    assert apply(member("node4", False)) == {"member": "node4", "state": "REMOVED"}
    assert rows(store.path, "SELECT id, grpc_address, raft_address, state FROM members") == [
        ("node4", "h:1", "h:2", "REMOVED")
    ]
    assert [fx.members_changed for fx in seen] == [True, False, True]


def overlapping(overlap: str) -> c.JobSpec:
    options = json.dumps({"cron": "* * * * * *", "timezone": "UTC", "catch_up": "ONE", "overlap": overlap})
    return c.JobSpec(jid(1), "echo", "{}", DUE, spec_hash="h", options=options, first_nominal=DUE)


def fates(path: Path) -> list[str]:
    return [r[0] for r in rows(path, "SELECT fate FROM occurrences ORDER BY nominal")]


def test_overlap_skip_records_the_occurrence_while_a_run_is_open(store: Store, apply: Log) -> None:
    apply(submit(overlapping("SKIP")))
    apply(tick(1, 0))
    apply(tick(1, 1))
    assert fates(store.path) == ["TRIGGERED", "SKIPPED_OVERLAP"]


def test_overlap_buffer_one_runs_the_buffered_occurrence_when_the_run_ends(store: Store, apply: Log) -> None:
    apply(submit(overlapping("BUFFER_ONE")))
    apply(tick(1, 0))
    apply(tick(1, 1))
    apply(tick(1, 2))
    assert fates(store.path) == ["TRIGGERED", "BUFFERED", "SKIPPED_OVERLAP"]

    first = f"{jid(1)}:1"
    apply(
        c.AssignRuns(
            request_id=rid(), at=DUE + 3 * SEC, node=NODE, assignments=(c.Assignment(first, 1, NODE),)
        )
    )
    apply(report(NODE, c.RunUpdate(first, 1, "succeeded", DUE + 3 * SEC)))

    assert fates(store.path) == ["TRIGGERED", "TRIGGERED", "SKIPPED_OVERLAP"]
    assert rows(store.path, "SELECT run_id, state FROM runs ORDER BY run_id") == [
        (first, "SUCCEEDED"),
        (f"{jid(1)}:2", "PENDING"),
    ]


def test_overlap_cancel_other_cancels_the_open_run(store: Store, apply: Log) -> None:
    seen: list[Effects] = []
    apply(submit(overlapping("CANCEL_OTHER")))
    apply(tick(1, 0))
    store.listener = seen.append
    apply(tick(1, 1))
    assert fates(store.path) == ["TRIGGERED", "TRIGGERED"]
    assert rows(store.path, "SELECT state FROM runs ORDER BY run_id") == [("CANCELLED",), ("PENDING",)]
    assert seen[0].cancelled_runs == [(f"{jid(1)}:1", 1, "")]


def test_a_grouped_submission_refuses_one_job_and_keeps_the_others(store: Store, apply: Log) -> None:
    # Given a job with an idempotency key, and an active long-running job named "feed"
    apply(submit(spec(1, key="k", spec_hash="a")))
    feed = '{"long_running": true}'
    apply(submit(c.JobSpec(jid(9), "stream", "{}", DUE, name="feed", options=feed)))

    # When single submissions are grouped into one non-atomic command, every other one a conflict:
    # the key with another definition, an existing job id, a second long-running "feed"
    cmd = c.SubmitJobs(
        request_id=rid(),
        at=T0,
        node=NODE,
        jobs=(
            spec(2),
            spec(3, key="k", spec_hash="b"),
            spec(4),
            spec(1),
            spec(5),
            c.JobSpec(jid(6), "stream", "{}", DUE, name="feed", options=feed),
            spec(7),
        ),
        atomic=False,
    )
    result = apply(cmd)

    # Then each conflict is refused alone, leaving nothing behind, and the others exist with their history
    assert result["job_ids"] == [jid(2), None, jid(4), None, jid(5), None, jid(7)]
    assert result["created"] == [True, False, True, False, True, False, True]
    assert [e and e["error"] for e in result["errors"]] == [None, "ALREADY_EXISTS"] * 3 + [None]
    assert [r[0] for r in rows(store.path, "SELECT id FROM jobs ORDER BY id")] == [
        jid(n) for n in (1, 2, 4, 5, 7, 9)
    ]
    assert [
        r[0] for r in rows(store.path, "SELECT job_id FROM events WHERE type = 'SCHEDULED' ORDER BY seq")
    ] == [jid(n) for n in (1, 9, 2, 4, 5, 7)]


def test_assignment_records_the_executor_process(store: Store, apply: Log) -> None:
    apply(submit(spec(1)))
    apply(trigger(1))
    cmd = c.AssignRuns(
        request_id=rid(),
        at=DUE + 2 * SEC,
        node=NODE,
        assignments=(c.Assignment(run_of(1), 1, OTHER, "boot-a"),),
    )
    apply(cmd)
    assert run_row(store.path, 1, 1)["boot_id"] == "boot-a"


def trigger_assigning(n: int, *, at: int, node: str = OTHER) -> c.TriggerJobs:
    """A trigger of job ``n`` that assigns the run it creates (command version 3)."""
    return c.TriggerJobs(
        request_id=rid(),
        at=at,
        node=NODE,
        triggers=(c.Trigger(jid(n), DUE),),
        assignments=(c.Assignment(run_of(n), 1, node, "boot-a"),),
        lease_until=at + 10 * SEC,
    )


def test_a_trigger_assigns_the_run_it_creates(store: Store, apply: Log) -> None:
    # Given a scheduled one-off job
    apply(submit(spec(1)))

    # When it is triggered at its due time with an assignment in the same command
    result = apply(trigger_assigning(1, at=DUE + SEC))

    # Then its run is assigned at once, as AssignRuns would have left it
    assert result == {"triggered": [jid(1)], "skipped": {}, "assigned": [[run_of(1), 1, OTHER]]}
    run = run_row(store.path, 1)
    assert (run["state"], run["node_id"], run["boot_id"]) == ("ASSIGNED", OTHER, "boot-a")
    assert run["lease_until"] == DUE + 11 * SEC and run["assigned_at"] == DUE + SEC
    assert job_state(store.path, 1) == "TRIGGERED"
    assert event_types(store.path, 1) == ["SCHEDULED", "TRIGGERED", "ASSIGNED"]


def test_a_job_triggered_ahead_of_its_time_shows_scheduled_until_its_run_starts(
    store: Store, apply: Log
) -> None:
    # Given a one-off job triggered and assigned a second before it is due
    apply(submit(spec(1)))
    apply(trigger_assigning(1, at=DUE - SEC))

    # Then the job is still SCHEDULED, its run ASSIGNED and waiting for its time
    assert job_state(store.path, 1) == "SCHEDULED"
    assert run_row(store.path, 1)["state"] == "ASSIGNED"

    # When its executor starts it, then it runs
    apply(report(OTHER, started(1, at=DUE + 1)))
    assert job_state(store.path, 1) == "RUNNING"


def test_a_job_triggered_ahead_and_cancelled_before_its_time_never_runs(store: Store, apply: Log) -> None:
    # Given a one-off job triggered and assigned ahead of its time
    apply(submit(spec(1)))
    apply(trigger_assigning(1, at=DUE - SEC))

    # When it is cancelled before then
    apply(cancel(1, at=DUE - 1))

    # Then its run is cancelled (its executor drops it) and a late start report is refused
    assert job_state(store.path, 1) == "CANCELLED"
    assert run_row(store.path, 1)["state"] == "CANCELLED"
    assert apply(report(OTHER, started(1, at=DUE + 1)))["stale"] == [[run_of(1), 1, "run is CANCELLED"]]


def test_an_assignment_in_a_trigger_is_guarded_like_assign_runs(store: Store, apply: Log) -> None:
    # Given a job already triggered and assigned
    apply(submit(spec(1)))
    apply(trigger_assigning(1, at=DUE + SEC))

    # When a second leader's trigger for the same due time arrives with its own assignment
    result = apply(trigger_assigning(1, at=DUE + 2 * SEC, node=NODE))

    # Then neither the trigger nor the assignment changes anything
    assert result["triggered"] == [] and result["assigned"] == []
    assert run_row(store.path, 1)["node_id"] == OTHER


def test_a_version_2_trigger_still_decodes() -> None:
    blob = json.dumps(
        {
            "request_id": "r",
            "at": 1,
            "node": "n",
            "triggers": [{"job_id": "j", "due_at": 2}],
            "op": "trigger",
            "v": 2,
        }
    ).encode()
    cmd = c.decode(blob)
    assert isinstance(cmd, c.TriggerJobs) and cmd.assignments == () and cmd.lease_until == 0


@pytest.mark.parametrize("created", ["9" * 30, "-1", "x"])
def test_a_page_token_out_of_range_is_not_ours(created: str) -> None:
    token = base64.urlsafe_b64encode(f"{created}:00000000-0000-4000-8000-000000000001".encode()).decode()
    with pytest.raises(InvalidArgument, match="pageToken"):
        decode_token(token)


# -- state hash and snapshots written off the tick thread ------------------------------


def test_state_hash_follows_the_commands_applied(tmp_path: Path) -> None:
    # Given two stores fed the same commands, and a third fed one different command
    stores = [Store(tmp_path / name / "state.db") for name in ("a", "b", "c")]
    try:
        blobs = scenario()
        for s in stores:
            log_ = Log(s)
            for blob in blobs[:-1]:
                log_.raw(blob)
        Log(stores[0]).raw(blobs[-1])
        Log(stores[1]).raw(blobs[-1])
        Log(stores[2]).raw(c.encode(cancel(1)))
        index_hash = [s.applied for s in stores]
    finally:
        for s in stores:
            s.close()

    # Then equal commands give equal hashes at equal indexes, and one different command shows
    assert index_hash[0] == index_hash[1]
    assert index_hash[2][0] == index_hash[0][0] and index_hash[2][1] != index_hash[0][1]
    assert len(index_hash[0][1]) == 32
    # and the hash is stored with the index: a store opened again reads the same pair
    again = Store(tmp_path / "a" / "state.db")
    try:
        assert again.applied == index_hash[0]
        assert again.apply(index_hash[0][0], c.encode(cancel(1))) is None  # a replay changes nothing
        assert again.applied == index_hash[0]
    finally:
        again.close()


def test_snapshot_writer_copies_the_state_pinned_at_serialize(
    store: Store, apply: Log, tmp_path: Path
) -> None:
    # Given a store with a job, an older dump on disk, and a writer
    apply(submit(spec(1)))
    dump_path = tmp_path / "raft.snapshot"
    snapshots.write(store.path, dump_path, "older")
    writer = snapshots.SnapshotWriter(store.path, dump_path, lambda: store.restores)

    # When it serializes, and the store goes on applying before the copy is checked
    writer.serialize(str(dump_path) + ".tmp", "meta at 1")
    pinned = dump(store.path)
    apply(submit(spec(2)))
    assert (dump_path.with_name(dump_path.name + ".tmp")).exists()  # PySyncObj's rename is a no-op
    states = []
    deadline = time.monotonic() + 10
    while (state := writer.check()) == SERIALIZER_STATE.SERIALIZING and time.monotonic() < deadline:
        time.sleep(0.01)
    states.append(state)
    states.append(writer.check())

    # Then the dump holds the state at serialize, not the later job, and success is reported once
    assert states == [SERIALIZER_STATE.SUCCESS, SERIALIZER_STATE.NOT_SERIALIZING]
    fresh = Store(tmp_path / "fresh" / "state.db")
    try:
        assert fresh.restore(str(dump_path)) == "meta at 1"
        assert dump(fresh.path) == pinned
    finally:
        fresh.close()
    assert not (dump_path.with_name(dump_path.name + ".tmp")).exists()


def test_snapshot_writer_drops_a_dump_overtaken_by_a_restore(
    store: Store, apply: Log, tmp_path: Path
) -> None:
    apply(submit(spec(1)))
    dump_path = tmp_path / "raft.snapshot"
    writer = snapshots.SnapshotWriter(store.path, dump_path, lambda: store.restores)
    writer.serialize(str(dump_path) + ".tmp", "ours")
    store.restores += 1  # the leader's snapshot came in meanwhile

    deadline = time.monotonic() + 10
    while (state := writer.check()) == SERIALIZER_STATE.SERIALIZING and time.monotonic() < deadline:
        time.sleep(0.01)

    assert state == SERIALIZER_STATE.FAILED
    assert not dump_path.exists()


# --- batches of workers' commands -------------------------------------------


def test_batch_applies_each_command_as_if_alone(store: Store, apply: Log, db_path: Path) -> None:
    # Given two jobs running on two workers, and a third job's run held by neither
    to_running(apply, 1, "w1")
    to_running(apply, 2, "w2")
    apply(submit(spec(3)))
    apply(trigger(3))
    apply(assign(3, "w1"))
    first = report("w1", succeeded(1, {"n": 1}))
    # When one entry holds w1's outcome, w2's failure, a stale report and a renewal
    effects: list[Effects] = []
    store.listener = effects.append
    result = apply(
        c.Batch(
            node=NODE,
            commands=(
                first,
                report("w2", failed(2, "boom")),
                report("w2", succeeded(1, {"n": 2})),  # not w2's attempt
                c.RenewLeases(
                    request_id=rid(),
                    node="w1",
                    at=DUE + 5 * SEC,
                    lease_until=DUE + 60 * SEC,
                    runs=(c.RunRef(run_of(3), 1),),
                ),
            ),
        )
    )
    # Then each has its own result, in order
    results = result["results"]
    assert len(results) == 4
    assert results[0].get("stale", []) == []
    assert results[2]["stale"] == [[run_of(1), 1, "not assigned to this node"]]
    # And each changed what it would have changed alone
    assert run_row(db_path, 1)["state"] == "SUCCEEDED"
    assert json.loads(run_row(db_path, 1)["result"]) == {"n": 1}
    assert run_row(db_path, 2)["state"] == "FAILED"
    assert run_row(db_path, 3)["lease_until"] == DUE + 60 * SEC
    # And the listener heard one entry with both outcomes
    assert len(effects) == 1
    assert sorted((f[0], f[3]) for f in effects[0].finished) == [
        (run_of(1), "SUCCEEDED"),
        (run_of(2), "FAILED"),
    ]
    # And a repeat of the first command (a worker's retry) is answered with its first result
    assert apply(first) == results[0]
    assert len(rows(db_path, "SELECT 1 FROM events WHERE job_id = ? AND type = 'SUCCEEDED'", jid(1))) == 1


def test_batch_command_refused_alone_leaves_the_others(store: Store, apply: Log, db_path: Path) -> None:
    # Given a running job on w1
    to_running(apply, 1, "w1")
    # When a batch holds a command the state machine refuses (no such job) and a good outcome
    result = apply(c.Batch(node=NODE, commands=(cancel(99), report("w1", succeeded(1, 7)))))
    # Then the first is refused, with its reason, and the second applied all the same
    assert "error" in result["results"][0]
    assert run_row(db_path, 1)["state"] == "SUCCEEDED"


def test_batch_encoding_round_trips_and_refuses_nesting() -> None:
    # Given a batch of two workers' commands
    inner = (report("w1", failed(1, "e")), report("w2", succeeded(2, [1, 2])))
    batch = c.Batch(node=NODE, commands=inner)
    # Then it decodes to itself, written with the version that introduced batches
    assert c.decode(c.encode(batch)) == batch
    assert json.loads(c.encode(batch))["v"] == 6
    # And a batch inside a batch is not a command
    with pytest.raises(c.DecodeError, match="batch inside a batch"):
        c.decode(c.encode(c.Batch(node=NODE, commands=(batch,))))


def test_effects_add_merges_lists_flags_and_earliest_times() -> None:
    a = Effects(index=7, earliest_due=50, finished=[("r", 1, "n", "SUCCEEDED")])
    b = Effects(index=7, earliest_due=20, retry_at=30, workers_changed=True, triggered=["j"])
    a.add(b)
    assert (a.earliest_due, a.retry_at, a.workers_changed) == (20, 30, True)
    assert a.finished == [("r", 1, "n", "SUCCEEDED")] and a.triggered == ["j"]
    assert a.index == 7


def test_a_started_run_of_a_job_with_options_shows_the_job_running(apply: Log, db_path: Path) -> None:
    # A recurring job's (or any job with options) attempt reported started: the job is RUNNING,
    # not still TRIGGERED (the run's new state must be written before the job's is settled).
    apply(submit(recurring_spec(1)))
    apply(tick(1, 0))
    apply(assign(1, OTHER))
    apply(report(OTHER, started(1)))
    assert rows(db_path, "SELECT state FROM runs WHERE run_id = ?", run_of(1)) == [("RUNNING",)]
    assert rows(db_path, "SELECT state FROM jobs WHERE id = ?", jid(1)) == [("RUNNING",)]
