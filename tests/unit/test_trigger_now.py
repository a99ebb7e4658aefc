"""TriggerNow in the state machine: one extra occurrence of a recurring job, under its overlap policy,
and the operator's name in the history of every operator command."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from ordo_node import commands as c
from ordo_node.statemachine.store import Store

SEC = 1_000_000
T0 = 1_900_000_000 * SEC
DUE = T0 + 60 * SEC
JOB = "00000000-0000-4000-8000-0000000000aa"
ONE_OFF = "00000000-0000-4000-8000-0000000000bb"


def _apply(store: Store, cmd: c.Command) -> Any:
    return store.apply(store.last_applied + 1, c.encode(cmd))


def _rid() -> str:
    return uuid.uuid4().hex


def _store(tmp_path: Path, overlap: str = "ALLOW") -> Store:
    """A store with a recurring job (every minute, first due at DUE) and a plain one-off job."""
    store = Store(tmp_path / "state.db")
    options = json.dumps({"cron": "* * * * *", "timezone": "UTC", "overlap": overlap})
    _apply(
        store,
        c.SubmitJobs(
            request_id=_rid(),
            at=T0,
            node="node1",
            jobs=(
                c.JobSpec(
                    JOB,
                    "echo",
                    "{}",
                    DUE,
                    name="every minute",
                    spec_hash="a",
                    options=options,
                    first_nominal=DUE,
                ),
                c.JobSpec(ONE_OFF, "echo", "{}", DUE, name="once", spec_hash="b"),
            ),
        ),
    )
    return store


def _now(store: Store, at: int, by: str = "alice", job_id: str = JOB) -> Any:
    return _apply(store, c.TriggerNow(request_id=_rid(), at=at, node="node2", job_id=job_id, by=by))


def _rows(store: Store, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_run_now_adds_one_occurrence_and_its_run_and_leaves_the_schedule_alone(tmp_path: Path) -> None:
    # Given a recurring job not yet due
    store = _store(tmp_path)

    # When an operator runs it now
    result = _now(store, T0 + 5 * SEC)

    # Then one occurrence at that time is triggered, with who asked as its reason, and its run waits
    assert result == {
        "job_id": JOB,
        "fate": "TRIGGERED",
        "reason": "triggered now by alice",
        "run_id": f"{JOB}:1",
    }
    assert _rows(store, "SELECT nominal, fire_at, fate, reason, run_id, ordinal FROM occurrences") == [
        (T0 + 5 * SEC, T0 + 5 * SEC, "TRIGGERED", "triggered now by alice", f"{JOB}:1", 1)
    ]
    assert _rows(store, "SELECT run_id, attempt, state, scheduled_at FROM runs") == [
        (f"{JOB}:1", 1, "PENDING", T0 + 5 * SEC)
    ]
    # and the job's next fire time did not move
    assert _rows(store, "SELECT state, due_at, armed, occurrences FROM jobs WHERE id = ?", JOB) == [
        ("TRIGGERED", DUE, 1, 1)
    ]
    (event,) = _rows(store, "SELECT type, node_id, run_id, message FROM events WHERE type = 'TRIGGERED'")
    assert event == ("TRIGGERED", "node2", f"{JOB}:1", "lateness_ms=0.0 triggered now by alice")

    # And the schedule's next trigger takes the next ordinal: no run id is used twice
    trigger = c.Trigger(JOB, DUE, (c.Occurrence(DUE, DUE, "run"),), DUE + 60 * SEC, DUE + 60 * SEC)
    assert _apply(store, c.TriggerJobs(request_id=_rid(), at=DUE, node="node1", triggers=(trigger,)))[
        "triggered"
    ] == [JOB]
    assert {r[0] for r in _rows(store, "SELECT run_id FROM runs")} == {f"{JOB}:1", f"{JOB}:2"}


def test_run_now_follows_the_overlap_policy_skip(tmp_path: Path) -> None:
    # Given a job whose overlap policy is SKIP, run now once (its run still open)
    store = _store(tmp_path, overlap="SKIP")
    _now(store, T0 + 5 * SEC)

    # When it is run now again
    result = _now(store, T0 + 6 * SEC, by="bob")

    # Then the second occurrence is skipped, saying who asked and why
    assert result["fate"] == "SKIPPED_OVERLAP" and result["run_id"] == ""
    assert result["reason"] == f"triggered now by bob; previous run {JOB}:1 still running (overlap SKIP)"
    assert len(_rows(store, "SELECT 1 FROM runs")) == 1
    (skipped,) = _rows(store, "SELECT message FROM events WHERE type = 'SKIPPED'")
    assert skipped[0].startswith("SKIPPED_OVERLAP ") and "triggered now by bob" in skipped[0]


def test_run_now_follows_the_overlap_policy_cancel_other(tmp_path: Path) -> None:
    store = _store(tmp_path, overlap="CANCEL_OTHER")
    _now(store, T0 + 5 * SEC)

    result = _now(store, T0 + 6 * SEC)

    assert result["fate"] == "TRIGGERED" and result["run_id"] == f"{JOB}:2"
    assert "cancelled the previous run (overlap CANCEL_OTHER)" in result["reason"]
    assert _rows(store, "SELECT run_id, state FROM runs ORDER BY run_id") == [
        (f"{JOB}:1", "CANCELLED"),
        (f"{JOB}:2", "PENDING"),
    ]


@pytest.mark.parametrize(
    ("setup", "job_id", "code", "says"),
    [
        ("", "no-such-job", "NOT_FOUND", "no job no-such-job"),
        ("", ONE_OFF, "FAILED_PRECONDITION", "is not recurring"),
        ("pause", JOB, "FAILED_PRECONDITION", "is PAUSED; resume it first"),
        ("cancel", JOB, "FAILED_PRECONDITION", "is CANCELLED; its schedule has ended"),
    ],
)
def test_run_now_is_refused_where_it_cannot_run(
    tmp_path: Path, setup: str, job_id: str, code: str, says: str
) -> None:
    store = _store(tmp_path)
    if setup == "pause":
        _apply(store, c.PauseJob(request_id=_rid(), at=T0 + SEC, node="node1", job_id=JOB, pause=True))
    elif setup == "cancel":
        _apply(store, c.CancelJob(request_id=_rid(), at=T0 + SEC, node="node1", job_id=JOB))
    before = _rows(store, "SELECT * FROM occurrences")

    result = _now(store, T0 + 5 * SEC, job_id=job_id)

    assert result["error"] == code and says in result["message"]
    assert _rows(store, "SELECT * FROM occurrences") == before


def test_two_runs_now_at_the_same_microsecond_are_one(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _now(store, T0 + 5 * SEC)

    again = _now(store, T0 + 5 * SEC)

    assert again["error"] == "FAILED_PRECONDITION" and "has an occurrence at" in again["message"]


def test_operator_commands_name_who_asked_in_the_history(tmp_path: Path) -> None:
    store = _store(tmp_path)

    _apply(store, c.PauseJob(request_id=_rid(), at=T0 + 1, node="node1", job_id=JOB, pause=True, by="ops"))
    _apply(
        store,
        c.PauseJob(
            request_id=_rid(), at=T0 + 2, node="node1", job_id=JOB, pause=False, note="back", by="ops"
        ),
    )
    _apply(store, c.CancelJob(request_id=_rid(), at=T0 + 3, node="node1", job_id=ONE_OFF, by="alice"))
    _apply(store, c.CancelJob(request_id=_rid(), at=T0 + 4, node="node1", job_id=JOB))

    messages = _rows(
        store, "SELECT type, message FROM events WHERE type IN ('PAUSED', 'RESUMED', 'CANCELLED')"
    )
    assert messages == [
        ("PAUSED", "paused by ops"),
        ("RESUMED", "resumed by ops: back"),
        ("CANCELLED", "cancelled while SCHEDULED by alice"),
        ("CANCELLED", "cancelled while SCHEDULED"),  # no one named: as before
    ]


def test_the_new_fields_are_written_as_version_7_and_only_when_used() -> None:
    now = c.TriggerNow(request_id="r", at=1, node="n", job_id="j", by="alice")
    assert c.decode(c.encode(now)) == now
    assert json.loads(c.encode(now))["v"] == 7
    named = c.CancelJob(request_id="r", at=1, node="n", job_id="j", by="alice")
    assert c.decode(c.encode(named)) == named and json.loads(c.encode(named))["v"] == 7
    # A command without a name stays readable by a node of the previous version.
    assert json.loads(c.encode(c.CancelJob(request_id="r", at=1, node="n", job_id="j")))["v"] < 7


def test_run_now_follows_the_overlap_policy_buffer_one(tmp_path: Path) -> None:
    # Given a job whose overlap policy is BUFFER_ONE, run now once (its run still open)
    store = _store(tmp_path, overlap="BUFFER_ONE")
    _now(store, T0 + 5 * SEC)

    # When it is run now twice more
    second = _now(store, T0 + 6 * SEC)
    third = _now(store, T0 + 7 * SEC)

    # Then the second waits for the first run to end, and the third is skipped (one already waits)
    assert second["fate"] == "BUFFERED" and second["reason"].startswith(
        "triggered now by alice; waits for run"
    )
    assert third["fate"] == "SKIPPED_OVERLAP"
    # And when the first run ends, the buffered occurrence runs, under the ordinal it was given
    run = f"{JOB}:1"
    _apply(
        store,
        c.AssignRuns(
            request_id=_rid(), at=T0 + 8 * SEC, node="node1", assignments=(c.Assignment(run, 1, "node1"),)
        ),
    )
    _apply(
        store,
        c.RecordRunUpdates(
            request_id=_rid(),
            node="node1",
            updates=(c.RunUpdate(run, 1, "succeeded", T0 + 9 * SEC, result="{}"),),
        ),
    )
    assert _rows(store, "SELECT nominal, fate, run_id FROM occurrences ORDER BY nominal") == [
        (T0 + 5 * SEC, "TRIGGERED", run),
        (T0 + 6 * SEC, "TRIGGERED", f"{JOB}:2"),
        (T0 + 7 * SEC, "SKIPPED_OVERLAP", None),
    ]


def test_run_now_keeps_the_operators_note_in_its_reason(tmp_path: Path) -> None:
    # Given a recurring job, run now with a note
    store = _store(tmp_path)
    cmd = c.TriggerNow(
        request_id=_rid(), at=T0 + 5 * SEC, node="node2", job_id=JOB, by="alice", note="hotfix"
    )
    result = _apply(store, cmd)
    # Then the occurrence's reason and the history say who asked and why
    assert result["reason"] == "triggered now by alice: hotfix"
    assert _rows(store, "SELECT reason FROM occurrences") == [("triggered now by alice: hotfix",)]
    # and the command is written as version 9 only with a note (an older node would drop it)
    assert json.loads(c.encode(cmd))["v"] == 9
    assert json.loads(c.encode(c.TriggerNow(request_id="r", at=1, node="n", job_id="j")))["v"] == 7
