"""Tests for client input checks: ``validate.job_spec`` with the real handler registry, and ``job_id``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from ordo_node.api import validate
from ordo_node.api.convert import value
from ordo_node.errors import InvalidArgument
from ordo_node.handlers import registry
from ordo_node.pb import ordo_pb2
from ordo_node.timeutil import parse_rfc3339

NOW = parse_rfc3339("2030-01-01T00:00:00Z")
SEC = 1_000_000
LIMIT = 1024


def request(payload: Any = ..., **fields: Any) -> ordo_pb2.SubmitJobRequest:
    """A SubmitJobRequest of type echo unless ``type`` is given; ``payload`` as JSON."""
    fields.setdefault("type", "echo")
    req = ordo_pb2.SubmitJobRequest(**fields)
    if payload is not ...:
        req.payload.CopyFrom(value(payload))
    return req


def spec_of(req: ordo_pb2.SubmitJobRequest, *, now: int = NOW, prefix: str = "", limit: int = LIMIT) -> Any:
    return validate.job_spec(req, registry=registry, now=now, max_payload_bytes=limit, prefix=prefix)


def invalid_field(req: ordo_pb2.SubmitJobRequest, **kwargs: Any) -> str:
    """The field named by the InvalidArgument that ``req`` raises."""
    with pytest.raises(InvalidArgument) as info:
        spec_of(req, **kwargs)
    return info.value.field


def delay(seconds: int, nanos: int = 0) -> Duration:
    return Duration(seconds=seconds, nanos=nanos)


# --- job_spec: accepted requests ------------------------------------------------------


def test_good_echo_request() -> None:
    req = request(
        {"msg": "hello", "n": 2},
        run_at="2030-06-01T12:00:00+02:00",
        name="greeting",
        idempotency_key="greet-1",
    )

    spec = spec_of(req)

    assert spec.type == "echo"
    assert json.loads(spec.payload) == {"msg": "hello", "n": 2}
    assert spec.payload == '{"msg":"hello","n":2}'  # canonical: sorted keys, no spaces
    assert spec.run_at == parse_rfc3339("2030-06-01T10:00:00Z")
    assert (spec.name, spec.idempotency_key) == ("greeting", "greet-1")
    assert str(uuid.UUID(spec.job_id)) == spec.job_id
    assert len(spec.spec_hash) == 64


def test_no_payload_is_null_and_no_time_is_now() -> None:
    spec = spec_of(request())

    assert spec.payload == "null"
    assert spec.run_at == NOW


def test_delay_adds_to_now() -> None:
    spec = spec_of(request(delay=delay(90, 500_000_000)))

    assert spec.run_at == NOW + 90 * SEC + 500_000


def test_each_spec_gets_a_fresh_job_id() -> None:
    assert spec_of(request()).job_id != spec_of(request()).job_id


def test_spec_hash_is_stable_for_identical_requests() -> None:
    # The hash describes what was asked for, so a retry with the same delay matches
    # even though "now" moved on.
    a = spec_of(request({"x": 1}, delay=delay(60)), now=NOW)
    b = spec_of(request({"x": 1}, delay=delay(60)), now=NOW + 5 * SEC)

    assert a.spec_hash == b.spec_hash
    assert a.run_at != b.run_at


@pytest.mark.parametrize(
    "changed",
    [
        {"payload": {"x": 2}},
        {"payload": {"x": 1, "y": 1}},
        {"name": "other"},
        {"delay": delay(61)},
        {"type": "sleep", "payload": {"seconds": 1}},
    ],
    ids=["payload-value", "payload-key", "name", "delay", "type"],
)
def test_spec_hash_changes_with_the_definition(changed: dict[str, Any]) -> None:
    base: dict[str, Any] = {"payload": {"x": 1}, "name": "n", "delay": delay(60)}

    a = spec_of(request(**base))
    b = spec_of(request(**{**base, **changed}))

    assert a.spec_hash != b.spec_hash


def test_payload_at_the_limit_is_accepted() -> None:
    text = "a" * (LIMIT - 2)  # JSON adds two quotes

    assert len(spec_of(request(text)).payload.encode()) == LIMIT


# --- job_spec: refused requests -------------------------------------------------------


def test_missing_type_is_refused() -> None:
    assert invalid_field(request(type="")) == "type"


def test_unknown_type_is_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        spec_of(request(type="no_such_type"))

    assert info.value.field == "type"
    assert "no_such_type" in info.value.reason


@pytest.mark.parametrize(
    "run_at",
    ["tomorrow", "2030-01-01T00:00:00", "2030-01-01", "2030-13-01T00:00:00Z", "  "],
    ids=["word", "no-offset", "date-only", "bad-month", "blank"],
)
def test_invalid_run_at_is_refused(run_at: str) -> None:
    assert invalid_field(request(run_at=run_at)) == "runAt"


def test_run_at_and_delay_together_are_refused() -> None:
    req = request(run_at="2030-01-01T00:00:00Z", delay=delay(5))

    assert invalid_field(req) == "runAt"


@pytest.mark.parametrize("d", [delay(-1), delay(0, -1_000_000)], ids=["seconds", "nanos"])
def test_negative_delay_is_refused(d: Duration) -> None:
    assert invalid_field(request(delay=d)) == "delay"


def test_delay_of_a_century_is_refused() -> None:
    assert invalid_field(request(delay=delay(101 * 365 * 86400))) == "delay"


def test_payload_over_limit_is_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        spec_of(request("a" * (LIMIT - 1)))

    assert info.value.field == "payload"
    assert str(LIMIT) in info.value.reason


def test_handler_validator_names_payload_field() -> None:
    assert invalid_field(request({"seconds": -1}, type="sleep")) == "payload.seconds"


def test_long_name_and_key_are_refused() -> None:
    assert invalid_field(request(name="n" * 201)) == "name"
    assert invalid_field(request(idempotency_key="k" * 201)) == "idempotencyKey"


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (request(type="nope"), "jobs[3].type"),
        (request(type=""), "jobs[3].type"),
        (request(run_at="tomorrow"), "jobs[3].runAt"),
        (request(delay=delay(-1)), "jobs[3].delay"),
        (request("a" * LIMIT), "jobs[3].payload"),
        (request({"seconds": -1}, type="sleep"), "jobs[3].payload.seconds"),
    ],
    ids=["type", "missing-type", "runAt", "delay", "payload", "payload.seconds"],
)
def test_prefix_is_applied_to_every_field(req: ordo_pb2.SubmitJobRequest, field: str) -> None:
    assert invalid_field(req, prefix="jobs[3].") == field


def test_run_at_past_year_9999_utc_is_refused() -> None:
    assert invalid_field(request(run_at="9999-12-31T23:59:59-01:00")) == "runAt"


# --- job_id -----------------------------------------------------------------------


def test_canonical_job_id_is_accepted() -> None:
    text = str(uuid.uuid4())

    assert validate.job_id(text) == text


def test_uppercase_job_id_is_normalized() -> None:
    text = str(uuid.uuid4())

    assert validate.job_id(text.upper()) == text


@pytest.mark.parametrize(
    "text",
    ["abc", "", "12345678123456781234567812345678", "{12345678-1234-5678-1234-567812345678}", "urn:uuid:x"],
    ids=["short", "empty", "no-hyphens", "braces", "urn"],
)
def test_bad_job_id_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.job_id(text)

    assert info.value.field == "jobId"


def test_job_id_field_name_can_be_changed() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.job_id("abc", field="runs[0].jobId")

    assert info.value.field == "runs[0].jobId"
