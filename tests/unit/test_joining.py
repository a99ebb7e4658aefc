"""Debounce and singleton in the state machine, with fixed clocks (statemachine/joining.py).

Submissions are built as the API builds them (``submission.job_spec``), applied to a
real store, and the tables read back through a separate connection.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from applylog import Log, rows
from google.protobuf.duration_pb2 import Duration

from ordo_node import commands as c
from ordo_node.api import submission
from ordo_node.api.convert import job_message
from ordo_node.api.explain import explain
from ordo_node.errors import InvalidArgument
from ordo_node.handlers import registry
from ordo_node.pb import ordo_pb2
from ordo_node.queries import Queries
from ordo_node.statemachine.store import Store
from ordo_node.timeutil import format_us

SEC = 1_000_000
T0 = 1_900_000_000 * SEC  # 2030-03-17
NODE = "node1"


def rid() -> str:
    return uuid.uuid4().hex


def seconds(s: float) -> Duration:
    d = Duration()
    d.FromMicroseconds(round(s * SEC))
    return d


def spec(now: int, payload: Any = None, **fields: Any) -> c.JobSpec:
    """The JobSpec the API makes of a SubmitJobRequest received at ``now``."""
    req = ordo_pb2.SubmitJobRequest(type="echo", payload_json=json.dumps(payload or {}), **fields)
    return submission.job_spec(req, registry=registry, now=now, max_payload_bytes=4096)


def debounce(key: str = "k", window: float = 5, mode: str = "TRAILING", max_wait: float = 0) -> Any:
    d = ordo_pb2.Debounce(key=key, window=seconds(window), mode=f"DEBOUNCE_MODE_{mode}")
    if max_wait:
        d.max_wait.CopyFrom(seconds(max_wait))
    return d


def singleton(key: str = "k", mode: str = "SKIP") -> Any:
    return ordo_pb2.Singleton(key=key, mode=f"SINGLETON_MODE_{mode}")


def submit(*specs: c.JobSpec, at: int, atomic: bool = False) -> c.SubmitJobs:
    return c.SubmitJobs(request_id=rid(), at=at, node=NODE, jobs=specs, atomic=atomic)


class Submitter:
    """Submits one job at a time, as grouped single submissions are; returns (job id, created, note)."""

    def __init__(self, apply: Log) -> None:
        self.apply = apply

    def __call__(self, at: int, payload: Any = None, **fields: Any) -> tuple[str, bool, str]:
        result = self.apply(submit(spec(at, payload, **fields), at=at))
        assert result["errors"] == [None], result
        notes = result.get("notes") or [""]
        return result["job_ids"][0], result["created"][0], notes[0]


@pytest.fixture
def send(apply: Log) -> Submitter:
    return Submitter(apply)


def job(path: Path, job_id: str) -> dict[str, Any]:
    cols = ("state", "armed", "due_at", "next_nominal", "payload")
    row = rows(path, f"SELECT {', '.join(cols)} FROM jobs WHERE id = ?", job_id)[0]
    return dict(zip(cols, row, strict=True))


def events(path: Path, job_id: str, type_: str) -> list[str]:
    return [
        r[0] for r in rows(path, "SELECT message FROM events WHERE job_id = ? AND type = ?", job_id, type_)
    ]


def trigger(job_id: str, due: int, at: int) -> c.TriggerJobs:
    return c.TriggerJobs(request_id=rid(), at=at, node=NODE, triggers=(c.Trigger(job_id, due),))


# --- the options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"debounce": ordo_pb2.Debounce(window=seconds(1))}, "debounce.key", "required"),
        ({"debounce": ordo_pb2.Debounce(key="k")}, "debounce.window", "required"),
        ({"debounce": debounce(window=8 * 86400)}, "debounce.window", "at most"),
        ({"debounce": debounce(mode="LEADING", max_wait=10)}, "debounce.maxWait", "TRAILING"),
        ({"debounce": debounce(window=5, max_wait=2)}, "debounce.maxWait", "at least the window"),
        ({"debounce": ordo_pb2.Debounce(key="k", window=seconds(1), mode=7)}, "debounce.mode", "not one of"),
        ({"singleton": ordo_pb2.Singleton(mode=1)}, "singleton.key", "required"),
        ({"singleton": singleton(), "debounce": debounce()}, "singleton", "not both"),
        ({"singleton": singleton(), "cron": "* * * * *"}, "singleton", "one-off"),
        ({"debounce": debounce(), "after": [str(uuid.uuid4())]}, "debounce", "after"),
        ({"singleton": singleton(), "long_running": True, "name": "n"}, "singleton", "longRunning"),
    ],
)
def test_bad_debounce_and_singleton_name_the_field(fields: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        spec(T0, **fields)
    assert e.value.field == field
    assert reason in e.value.reason


def test_trailing_debounce_is_due_a_window_after_and_has_a_nominal_time() -> None:
    s = spec(T0, debounce=debounce(window=5))
    assert s.run_at == s.first_nominal == T0 + 5 * SEC
    assert json.loads(s.options)["debounce"] == {"key": "k", "window": 5 * SEC, "mode": "TRAILING"}
    leading = spec(T0, debounce=debounce(mode="LEADING"))
    assert leading.run_at == T0 and leading.first_nominal is None


def test_commands_with_a_key_are_written_as_version_9() -> None:
    keyed = submit(spec(T0, singleton=singleton()), at=T0)
    assert json.loads(c.encode(keyed))["v"] == 9
    # A concurrency key that happens to be called "singleton" is not one.
    plain = submit(spec(T0, concurrency_key="singleton", concurrency_limit=1), at=T0)
    assert json.loads(c.encode(plain))["v"] < 9


# --- debounce ------------------------------------------------------------------------------------


def test_trailing_burst_makes_one_job_due_after_the_last_with_its_payload(
    send: Submitter, db_path: Path
) -> None:
    first, created, note = send(T0, {"n": 1}, debounce=debounce(window=5))
    assert created and note == ""
    for i, offset in enumerate((1, 2, 4), start=2):
        job_id, created, note = send(T0 + offset * SEC, {"n": i}, debounce=debounce(window=5))
        assert (job_id, created) == (first, False)
        assert note.startswith(f"merged into job {first} (debounce key 'k', TRAILING, window 5s): due ")
    j = job(db_path, first)
    assert j["due_at"] == j["next_nominal"] == T0 + 9 * SEC
    assert json.loads(j["payload"]) == {"n": 4}
    assert j["state"] == "SCHEDULED" and j["armed"] == 1
    joined = events(db_path, first, "JOINED")
    assert len(joined) == 3
    assert all("was merged (debounce key 'k', TRAILING, window 5s)" in m for m in joined)
    assert rows(db_path, "SELECT COUNT(*) FROM jobs")[0][0] == 1


def test_trailing_window_counts_from_when_the_cluster_took_the_submission(apply: Log, db_path: Path) -> None:
    # Given submissions received at T0 (the API's clock) but grouped into commands made later
    received = spec(T0, {"n": 1}, debounce=debounce(window=5))
    first = apply(submit(received, at=T0 + 30_000))["job_ids"][0]
    # Then the job is due a window after its SCHEDULED entry's time, not after the receipt
    assert job(db_path, first)["due_at"] == T0 + 30_000 + 5 * SEC
    # And a merge made later still moves it to a window after its own JOINED entry's time
    late = apply(submit(spec(T0 + 10_000, {"n": 2}, debounce=debounce(window=5)), at=T0 + 40_000))
    assert late["job_ids"] == [first] and late["created"] == [False]
    j = job(db_path, first)
    assert j["due_at"] == j["next_nominal"] == T0 + 40_000 + 5 * SEC
    joined_at = rows(db_path, "SELECT at FROM events WHERE job_id = ? AND type = 'JOINED'", first)
    assert [r[0] for r in joined_at] == [T0 + 40_000]
    # And a later runAt still wins over the command's time
    later = spec(T0, {"n": 3}, debounce=debounce(window=5), run_at=format_us(T0 + 60 * SEC))
    apply(submit(later, at=T0 + 50_000))
    assert job(db_path, first)["due_at"] == T0 + 65 * SEC


def test_trailing_job_once_triggered_starts_a_new_burst(apply: Log, send: Submitter, db_path: Path) -> None:
    first, _, _ = send(T0, debounce=debounce(window=5))
    # The timekeeper's trigger for the old due time, after a merge moved it, changes nothing.
    send(T0 + 2 * SEC, debounce=debounce(window=5))
    stale = apply(trigger(first, T0 + 5 * SEC, T0 + 5 * SEC))
    assert stale["triggered"] == [] and first in stale["skipped"]
    done = apply(trigger(first, T0 + 7 * SEC, T0 + 7 * SEC))
    assert done["triggered"] == [first]
    assert rows(db_path, "SELECT fate FROM occurrences WHERE job_id = ?", first) == [("TRIGGERED",)]
    second, created, note = send(T0 + 8 * SEC, debounce=debounce(window=5))
    assert created and second != first and note == ""


def test_trailing_max_wait_bounds_a_burst(send: Submitter, db_path: Path) -> None:
    d = debounce(window=5, max_wait=8)
    first, _, _ = send(T0, debounce=d)
    send(T0 + 4 * SEC, debounce=d)
    assert job(db_path, first)["due_at"] == T0 + 8 * SEC  # not T0 + 9 s
    send(T0 + 7 * SEC, debounce=d)
    assert job(db_path, first)["due_at"] == T0 + 8 * SEC
    later, created, _ = send(T0 + 9 * SEC, debounce=d)  # past its due time: a new burst
    assert created and later != first


def test_leading_runs_the_first_and_merges_the_rest_of_its_burst(send: Submitter, db_path: Path) -> None:
    d = debounce(window=5, mode="LEADING")
    first, created, _ = send(T0, {"n": 1}, debounce=d)
    assert created and job(db_path, first)["due_at"] == T0
    # Each within 5 s of the one before: the window slides, so all belong to the first's burst.
    for offset in (3, 7, 11):
        job_id, created, note = send(T0 + offset * SEC, {"n": offset}, debounce=d)
        assert (job_id, created) == (first, False)
        assert note == f"merged into job {first} (debounce key 'k', LEADING, window 5s)"
    assert json.loads(job(db_path, first)["payload"]) == {"n": 1}  # the leader's own
    assert len(events(db_path, first, "JOINED")) == 3
    second, created, _ = send(T0 + 17 * SEC, debounce=d)  # 6 s of quiet: a new burst
    assert created and second != first
    other, created, _ = send(T0 + 18 * SEC, debounce=debounce(key="other", window=5, mode="LEADING"))
    assert created and other not in (first, second)


def test_leading_after_its_leader_was_cancelled_starts_anew(apply: Log, send: Submitter) -> None:
    d = debounce(window=5, mode="LEADING")
    first, _, _ = send(T0 + 60 * SEC, debounce=d)
    apply(c.CancelJob(request_id=rid(), at=T0 + 61 * SEC, node=NODE, job_id=first))
    again, created, _ = send(T0 + 62 * SEC, debounce=d)
    assert created and again != first


# --- singleton -----------------------------------------------------------------------------------


def run_until_started(apply: Log, job_id: str, due: int) -> None:
    apply(trigger(job_id, due, due))
    run = f"{job_id}:1"
    apply(
        c.AssignRuns(request_id=rid(), at=due + SEC, node=NODE, assignments=(c.Assignment(run, 1, "node2"),))
    )
    apply(
        c.RecordRunUpdates(
            request_id=rid(), node="node2", updates=(c.RunUpdate(run, 1, "started", due + SEC),)
        )
    )


def test_singleton_skip_keeps_the_job_that_holds_the_key(apply: Log, send: Submitter, db_path: Path) -> None:
    first, _, _ = send(T0, singleton=singleton())
    run_until_started(apply, first, T0)
    job_id, created, note = send(T0 + 5 * SEC, singleton=singleton())
    assert (job_id, created) == (first, False)
    assert note == f"skipped: singleton key 'k' is held by job {first} (RUNNING)"
    assert events(db_path, first, "JOINED") == [
        "a submission from node node1 was skipped (singleton key 'k', SKIP): this job holds the key (RUNNING)"
    ]
    run = f"{first}:1"
    end = c.RunUpdate(run, 1, "succeeded", T0 + 6 * SEC, result="{}")
    apply(c.RecordRunUpdates(request_id=rid(), node="node2", updates=(end,)))
    after, created, note = send(T0 + 7 * SEC, singleton=singleton())
    assert created and after != first and note == ""


def test_singleton_replace_cancels_the_running_job(apply: Log, send: Submitter, db_path: Path) -> None:
    first, _, _ = send(T0, singleton=singleton())
    run_until_started(apply, first, T0)
    new, created, note = send(T0 + 5 * SEC, singleton=singleton(mode="REPLACE"))
    assert created and new != first
    assert note == f"replaced job {first} (singleton key 'k', REPLACE; it was RUNNING)"
    assert job(db_path, first)["state"] == "CANCELLED"
    assert rows(db_path, "SELECT state FROM runs WHERE job_id = ?", first) == [("CANCELLED",)]
    assert events(db_path, first, "CANCELLED") == [
        f"cancelled while RUNNING: replaced by job {new} (singleton key 'k', REPLACE)"
    ]
    assert events(db_path, new, "JOINED") == [note]
    assert job(db_path, new)["state"] == "SCHEDULED"


def test_one_batch_with_one_key_twice_creates_one_job(apply: Log, db_path: Path) -> None:
    a, b = spec(T0, singleton=singleton()), spec(T0, singleton=singleton())
    result = apply(submit(a, b, at=T0, atomic=True))
    assert result["job_ids"] == [a.job_id, a.job_id]
    assert result["created"] == [True, False]
    assert result["notes"][0] == "" and result["notes"][1].startswith(
        f"skipped: singleton key 'k' is held by job {a.job_id}"
    )
    assert rows(db_path, "SELECT COUNT(*) FROM jobs")[0][0] == 1


def test_replicas_decide_alike(tmp_path: Path) -> None:
    """Two stores applying the same submissions hold the same jobs, keys and history."""
    cmds = [
        submit(spec(T0 + i * SEC, {"i": i}, debounce=debounce(window=3)), at=T0 + i * SEC)
        for i in (0, 1, 2, 9)
    ] + [submit(spec(T0 + i * SEC, singleton=singleton(mode="REPLACE")), at=T0 + i * SEC) for i in (0, 1)]
    tables = []
    for name in ("a.db", "b.db"):
        store = Store(tmp_path / name)
        log = Log(store)
        for cmd in cmds:
            log(cmd)
        store.close()
        tables.append(
            [
                rows(tmp_path / name, f"SELECT * FROM {t} ORDER BY 1, 2")
                for t in ("jobs", "join_keys", "events", "occurrences")
            ]
        )
    assert tables[0] == tables[1]
    assert len(tables[0][1]) == 2  # one debounce key, one singleton key


def test_retention_drops_keys_that_can_decide_nothing_more(
    apply: Log, send: Submitter, db_path: Path
) -> None:
    ended, _, _ = send(T0, singleton=singleton(key="old"))
    apply(c.CancelJob(request_id=rid(), at=T0 + SEC, node=NODE, job_id=ended))
    send(T0, singleton=singleton(key="held"))  # its job is still queued
    send(T0 + 8 * 86400 * SEC, debounce=debounce(key="recent", mode="LEADING"))
    week = 7 * 86400 * SEC
    prune = c.Prune(
        at=T0 + week + 2 * SEC, node=NODE, keep_runs=100, events_before=T0, keep_requests=1000, limit=100
    )
    assert apply(prune)["keys"] == 1
    assert sorted(r[0] for r in rows(db_path, "SELECT key FROM join_keys")) == ["held", "recent"]


async def test_explain_and_get_job_name_the_merges(apply: Log, send: Submitter, db_path: Path) -> None:
    first, _, _ = send(T0, debounce=debounce(window=5))
    send(T0 + 1 * SEC, debounce=debounce(window=5))
    send(T0 + 2 * SEC, debounce=debounce(window=5))
    queries = Queries(db_path)
    await queries.open()
    try:
        row = await queries.get_job(first)
        assert row is not None
        _, text = await explain(queries, row, T0 + 7 * SEC, T0 + 3 * SEC)
        assert "is due at 2030-03-17T" in text and "nothing has happened yet" in text
        assert text.endswith(
            " 2 other submission(s) were merged into it under debounce key 'k', TRAILING, window 5s"
            " (each moved its due time); the last at " + format_us(T0 + 2 * SEC) + "."
        )
        apply(trigger(first, T0 + 7 * SEC, T0 + 7 * SEC))
        occ, text = await explain(queries, row, T0 + 7 * SEC, T0 + 8 * SEC)
        assert occ is not None and occ.fate == "TRIGGERED"
        assert "2 other submission(s) were merged into it" in text
        message = job_message(row)
        assert message.debounce.key == "k" and message.debounce.window.seconds == 5
        assert message.debounce.mode == ordo_pb2.DEBOUNCE_MODE_TRAILING
    finally:
        await queries.close()


# --- found in review: idempotency, another type, the end of the calendar ---------------------------


def test_a_retried_merge_or_skip_is_answered_as_the_first_was(
    apply: Log, send: Submitter, db_path: Path
) -> None:
    first, _, _ = send(T0, debounce=debounce(window=5))
    merged = spec(T0 + SEC, {"n": 2}, debounce=debounce(window=5), idempotency_key="req-B")
    answer = apply(submit(merged, at=T0 + SEC))
    # The client's retry of the same request (same key, same definition), later: nothing is decided again
    retry = apply(submit(merged, at=T0 + 2 * SEC))
    assert retry["job_ids"] == answer["job_ids"] == [first] and retry["created"] == [False]
    assert retry["notes"] == answer["notes"]
    assert job(db_path, first)["due_at"] == T0 + 6 * SEC  # not moved again
    assert len(events(db_path, first, "JOINED")) == 1
    # even once the job has run: the retry still names the job it joined, and creates none
    apply(trigger(first, T0 + 6 * SEC, T0 + 6 * SEC))
    assert apply(submit(merged, at=T0 + 9 * SEC))["job_ids"] == [first]
    assert rows(db_path, "SELECT COUNT(*) FROM jobs")[0][0] == 1
    # the same key with another definition is refused, as for a created job
    other = spec(T0 + SEC, {"n": 3}, debounce=debounce(window=5), idempotency_key="req-B")
    refused = apply(submit(other, at=T0 + 10 * SEC))
    assert refused["errors"][0]["error"] == "ALREADY_EXISTS"
    assert f"was used for job {first}" in refused["errors"][0]["message"]


def test_a_skipped_singleton_retry_is_not_created_once_the_holder_ended(apply: Log, send: Submitter) -> None:
    holder, _, _ = send(T0, singleton=singleton())
    skipped = spec(T0 + SEC, singleton=singleton(), idempotency_key="req-Y")
    assert apply(submit(skipped, at=T0 + SEC))["job_ids"] == [holder]
    apply(c.CancelJob(request_id=rid(), at=T0 + 2 * SEC, node=NODE, job_id=holder))
    again = apply(submit(skipped, at=T0 + 3 * SEC))
    assert again["job_ids"] == [holder] and again["created"] == [False]
    assert again["notes"][0].startswith(f"skipped: singleton key 'k' is held by job {holder}")


def test_a_burst_may_differ_only_in_its_payload(apply: Log, send: Submitter, db_path: Path) -> None:
    first, _, _ = send(T0, debounce=debounce(window=5))  # an echo job
    req = ordo_pb2.SubmitJobRequest(type="sleep", payload_json='{"seconds": 1}', debounce=debounce(window=5))
    sleeper = submission.job_spec(req, registry=registry, now=T0 + SEC, max_payload_bytes=4096)
    refused = apply(submit(sleeper, at=T0 + SEC))["errors"][0]
    assert refused["error"] == "FAILED_PRECONDITION"
    assert refused["message"].startswith(f"debounce.key: 'k' is held by job {first} of type 'echo'")
    # other options (here a priority) are refused too; the job is untouched
    prioritized = spec(T0 + SEC, debounce=debounce(window=5), priority=5)
    assert apply(submit(prioritized, at=T0 + SEC))["errors"][0]["error"] == "FAILED_PRECONDITION"
    assert job(db_path, first)["due_at"] == T0 + 5 * SEC and events(db_path, first, "JOINED") == []


def test_a_trailing_run_past_the_end_of_the_calendar_is_refused_before_commit() -> None:
    with pytest.raises(InvalidArgument) as e:
        spec(T0, debounce=debounce(window=86400), run_at="9999-12-31T23:59:59Z")
    assert e.value.field == "debounce.window" and "9999" in e.value.reason
