"""Tests for the Raft log commands: ``encode``/``decode`` round trips and what decode refuses."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_args

import pytest

from ordo_node import commands as c

AT = 1_900_000_000_000_000
JOB = "00000000-0000-4000-8000-000000000001"

COMMANDS: list[c.Command] = [
    c.SubmitJobs(
        request_id="r1",
        at=AT,
        node="node1",
        jobs=(
            c.JobSpec(JOB, "echo", '{"msg":"héllo ✓"}', AT + 1, name="n", idempotency_key="k", spec_hash="h"),
            c.JobSpec("00000000-0000-4000-8000-000000000002", "sleep", '{"seconds":1}', AT + 2),
        ),
    ),
    c.SubmitJobs(request_id="r0", at=AT, node="node1", jobs=()),
    c.TriggerJobs(request_id="r2", at=AT, node="node1", triggers=(c.Trigger(JOB, AT + 1), c.Trigger("x", 0))),
    c.AssignRuns(
        request_id="r3",
        at=AT,
        node="node1",
        assignments=(c.Assignment(f"{JOB}:1", 1, "node2"), c.Assignment(f"{JOB}:1", 2, "node3")),
    ),
    c.RecordRunUpdates(
        request_id="r4",
        node="node2",
        updates=(
            c.RunUpdate(f"{JOB}:1", 1, "started", AT),
            c.RunUpdate(f"{JOB}:1", 1, "succeeded", AT + 5, result='{"ok":true}'),
            c.RunUpdate(f"{JOB}:1", 2, "failed", AT + 6, error="boom\nline 2"),
        ),
    ),
    c.RecordRunUpdates(
        request_id="r5",
        node="node2",
        updates=(
            c.RunUpdate(
                f"{JOB}:1",
                3,
                "failed",
                AT + 7,
                error="ValueError",
                traceback="Traceback (most recent call last)\n  ...\nValueError\n",
            ),
        ),
    ),
    c.ExpireRuns(
        request_id="r6",
        at=AT,
        node="node1",
        runs=(c.RunRef(f"{JOB}:1", 1), c.RunRef(f"{JOB}:1", 2)),
        reason="node2 unreachable",
    ),
    c.ExpireRuns(
        request_id="r8",
        at=AT,
        node="node1",
        runs=(c.RunRef(f"{JOB}:1", 1),),
        reason="lease",
        check_lease=True,
    ),
    c.RenewLeases(request_id="r7", node="node2", at=AT, lease_until=AT + 10, runs=(c.RunRef(f"{JOB}:1", 1),)),
    c.CancelJob(request_id="r5", at=AT, node="node1", job_id=JOB),
    c.RetryJob(request_id="r9", at=AT, node="node1", job_id=JOB),
    c.Prune(at=AT, node="node1", keep_runs=100, events_before=AT - 10, keep_requests=1000, limit=5000),
    c.MarkWaiting(
        at=AT, node="node1", runs=(c.RunRef(f"{JOB}:1", 1),), reason="no live executor has the tags gpu"
    ),
    c.RegisterWorker(
        request_id="r13",
        at=AT,
        node="node1",
        worker_id="w1",
        boot_id="b1",
        capacity=4,
        tags=("gpu",),
        handlers=("echo", "resize"),
        address="ipv4:10.0.0.7:51234",
    ),
    c.RegisterWorker(request_id="r14", at=AT, node="node1", worker_id="w1", boot_id="b1", gone=True),
    c.ChangeMember(
        request_id="r12",
        at=AT,
        node="node1",
        member_id="node4",
        add=True,
        grpc_address="h:1",
        raft_address="h:2",
    ),
    c.PauseJob(request_id="r10", at=AT, node="node1", job_id=JOB, pause=True, note="maintenance"),
    c.BackfillOccurrences(
        request_id="r10b",
        at=AT,
        node="node1",
        job_id=JOB,
        reprocess="MISSING",
        occurrences=(c.Occurrence(AT - 2, AT - 2, "backfill"), c.Occurrence(AT - 1, AT, "backfill")),
        max_concurrent=2,
    ),
    c.TriggerNow(request_id="r10n", at=AT, node="node1", job_id=JOB, by="ops"),
    c.TriggerJobs(
        request_id="r11",
        at=AT,
        node="node1",
        triggers=(
            c.Trigger(
                JOB,
                AT,
                occurrences=(c.Occurrence(AT - 5, AT, "missed", "late"), c.Occurrence(AT, AT + 1, "run")),
                next_nominal=AT + 10,
                next_due=AT + 11,
            ),
        ),
    ),
    c.Barrier(node="node1"),
    c.Batch(
        node="node1",
        commands=(
            c.RecordRunUpdates(
                request_id="r12", node="w1", updates=(c.RunUpdate(f"{JOB}:1", 1, "started", AT),)
            ),
            c.RenewLeases(
                request_id="r13", node="w2", at=AT, lease_until=AT + 9, runs=(c.RunRef(f"{JOB}:2", 1),)
            ),
        ),
    ),
]
NESTED = {
    c.SubmitJobs: ("jobs", c.JobSpec),
    c.TriggerJobs: ("triggers", c.Trigger),
    c.AssignRuns: ("assignments", c.Assignment),
    c.RecordRunUpdates: ("updates", c.RunUpdate),
    c.ExpireRuns: ("runs", c.RunRef),
    c.RenewLeases: ("runs", c.RunRef),
    c.MarkWaiting: ("runs", c.RunRef),
    c.BackfillOccurrences: ("occurrences", c.Occurrence),
}


def sample(cls: type[Any]) -> Any:
    """The first command of type ``cls`` in COMMANDS."""
    return next(cmd for cmd in COMMANDS if type(cmd) is cls)


def body_of(cmd: c.Command) -> dict[str, Any]:
    """The JSON object ``encode`` made, for tests that tamper with it."""
    body: dict[str, Any] = json.loads(c.encode(cmd))
    return body


def blob(body: Any) -> bytes:
    return json.dumps(body).encode()


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{type(x).__name__}-{i}" for i, x in enumerate(COMMANDS)])
def test_round_trip(cmd: c.Command) -> None:
    decoded = c.decode(c.encode(cmd))

    assert decoded == cmd
    assert type(decoded) is type(cmd)
    if type(cmd) in NESTED:
        key, item_cls = NESTED[type(cmd)]
        items = getattr(decoded, key)
        assert isinstance(items, tuple)
        assert all(type(item) is item_cls for item in items)


def test_every_command_type_is_covered() -> None:
    # A command type added to commands.Command must get a round-trip case above.
    assert {type(cmd) for cmd in COMMANDS} == set(get_args(c.Command))


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{type(x).__name__}-{i}" for i, x in enumerate(COMMANDS)])
def test_encoding_is_versioned_compact_json(cmd: c.Command) -> None:
    raw = c.encode(cmd)
    body = json.loads(raw)

    # each command is written with the version that introduced it (older nodes stop at a newer one)
    traced = isinstance(cmd, c.RecordRunUpdates) and any(u.traceback for u in cmd.updates)
    named = isinstance(cmd, c.CancelJob | c.RetryJob | c.PauseJob) and bool(cmd.by)
    written_as = {"worker": 4, "batch": 6, "trigger_now": 7, "backfill": 8}
    expected = written_as.get(cmd.op, 7 if named else 5 if traced else 3)
    assert (body["v"], body["op"]) == (expected, cmd.op)
    assert body["v"] <= c.VERSION
    assert b": " not in raw
    assert b", " not in raw


def test_an_items_fields_that_hold_their_default_are_left_out() -> None:
    # Given a plain job (no name, key, hash, options) beside one with every field
    cmd = sample(c.SubmitJobs)
    plain, full = json.loads(c.encode(cmd))["jobs"][1], json.loads(c.encode(cmd))["jobs"][0]
    # Then the plain one carries only what differs from the defaults, and both decode whole
    assert set(plain) == {"job_id", "type", "payload", "run_at"}
    assert {"name", "idempotency_key", "spec_hash"} <= set(full)
    assert c.decode(c.encode(cmd)) == cmd


def test_an_entry_written_with_every_field_still_decodes() -> None:
    # Journals written before defaults were left out name every field of every item.
    cmd = sample(c.SubmitJobs)
    body = json.loads(c.encode(cmd))
    body["jobs"] = [{f.name: getattr(job, f.name) for f in dataclasses.fields(c.JobSpec)} for job in cmd.jobs]
    assert c.decode(json.dumps(body).encode()) == cmd


def test_encoding_keeps_unicode_as_utf8() -> None:
    raw = c.encode(sample(c.SubmitJobs))

    assert "héllo ✓".encode() in raw


def test_encoding_is_deterministic() -> None:
    assert [c.encode(cmd) for cmd in COMMANDS] == [c.encode(cmd) for cmd in COMMANDS]


def test_unknown_top_level_keys_are_ignored() -> None:
    # A field added by a later version must not make an older journal entry unreadable.
    cmd = sample(c.CancelJob)
    body = body_of(cmd) | {"added_later": [1, 2]}

    assert c.decode(blob(body)) == cmd


# --- refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"\xff\xfe\x00", b"{", b"[]", b"[1, 2]", b"{}", b'{"v": 1}', b'{"op": "barrier"}'],
    ids=["empty", "text", "binary", "truncated", "empty-list", "list", "empty-object", "no-op", "no-version"],
)
def test_garbage_is_decode_error(raw: bytes) -> None:
    with pytest.raises(c.DecodeError):
        c.decode(raw)


@pytest.mark.parametrize("version", [c.VERSION + 1, 99, "1", None])
def test_newer_or_bogus_version_is_refused(version: Any) -> None:
    body = body_of(c.Barrier(node="n")) | {"v": version}

    with pytest.raises(c.NewerCommand, match="version"):
        c.decode(blob(body))


@pytest.mark.parametrize("version", range(1, c.VERSION + 1))
def test_older_versions_still_decode(version: int) -> None:
    body = body_of(c.Barrier(node="n")) | {"v": version}

    assert c.decode(blob(body)) == c.Barrier(node="n")


@pytest.mark.parametrize("op", ["explode", "", "SUBMIT", None, ["submit"]])
def test_unknown_op_is_decode_error(op: Any) -> None:
    body = body_of(c.Barrier(node="n")) | {"op": op}

    with pytest.raises(c.DecodeError):
        c.decode(blob(body))


def tamper(cls: type[Any], change: Any) -> bytes:
    """The encoding of the sample ``cls`` command after ``change`` edited its JSON object."""
    body = body_of(sample(cls))
    change(body)
    return blob(body)


@pytest.mark.parametrize(
    "raw",
    [
        tamper(c.CancelJob, lambda b: b.pop("job_id")),
        tamper(c.SubmitJobs, lambda b: b.pop("jobs")),
        tamper(c.SubmitJobs, lambda b: b.update(jobs=None)),
        tamper(c.SubmitJobs, lambda b: b.update(jobs=[1])),
        tamper(c.SubmitJobs, lambda b: b.update(jobs="ab")),
        tamper(c.SubmitJobs, lambda b: b["jobs"][0].pop("job_id")),
        tamper(c.TriggerJobs, lambda b: b["triggers"][0].update(extra=1)),
        tamper(c.TriggerJobs, lambda b: b["triggers"][0].update(occurrences=[{"nominal": 1, "bogus": 2}])),
        tamper(c.TriggerJobs, lambda b: b["triggers"][0].update(occurrences=[7])),
        tamper(c.RecordRunUpdates, lambda b: b["updates"].append({"run_id": "x"})),
        tamper(c.ExpireRuns, lambda b: b.pop("reason")),
        tamper(c.ExpireRuns, lambda b: b.update(runs=[{"run_id": "x", "attempt": 1, "node_id": "n"}])),
    ],
    ids=[
        "missing-field",
        "missing-list",
        "null-list",
        "list-of-numbers",
        "string-list",
        "item-missing-field",
        "item-unknown-field",
        "occurrence-unknown-field",
        "occurrence-not-an-object",
        "item-incomplete",
        "expire-no-reason",
        "expire-item-unknown-field",
    ],
)
def test_malformed_command_is_decode_error(raw: bytes) -> None:
    with pytest.raises(c.DecodeError):
        c.decode(raw)


@pytest.mark.parametrize("raw", [b'"text"', b"null", b"42", b"true"])
def test_json_scalar_is_decode_error(raw: bytes) -> None:
    with pytest.raises(c.DecodeError):
        c.decode(raw)
