"""Tests for client input checks: ``submission.job_spec`` with the real handler registry, and the limits."""

from __future__ import annotations

import base64
import json
import math
import uuid
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration

from ordo_node.api import submission, validate
from ordo_node.api.explain import explain, local, preview_times
from ordo_node.errors import InvalidArgument
from ordo_node.handlers import registry
from ordo_node.pb import ordo_pb2
from ordo_node.queries import JobRow
from ordo_node.schedule import parse_schedule
from ordo_node.timeutil import parse_rfc3339
from ordo_node.wire import from_value, value

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
    return submission.job_spec(req, registry=registry, now=now, max_payload_bytes=limit, prefix=prefix)


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
    a = spec_of(request({"x": 1}, delay=delay(60), idempotency_key="k"), now=NOW)
    b = spec_of(request({"x": 1}, delay=delay(60), idempotency_key="k"), now=NOW + 5 * SEC)

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
    base: dict[str, Any] = {"payload": {"x": 1}, "name": "n", "delay": delay(60), "idempotency_key": "k"}

    a = spec_of(request(**base))
    b = spec_of(request(**{**base, **changed}))

    assert a.spec_hash != b.spec_hash


def test_a_job_without_an_idempotency_key_has_no_spec_hash() -> None:
    # Only a reused idempotency key is compared with the definition: without one
    # the hash is neither computed nor stored.
    assert spec_of(request({"x": 1}, name="n")).spec_hash == ""


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


# --- limits: every field of a submission ------------------------------------------------


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep: lists in lists around a string."""
    obj: Any = "bottom"
    for _ in range(depth - 1):
        obj = [obj]
    return obj


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": "t" * (validate.MAX_TYPE + 1)}, "type"),
        ({"name": "n" * (validate.MAX_NAME + 1)}, "name"),
        ({"idempotency_key": "k" * (validate.MAX_KEY + 1)}, "idempotencyKey"),
        ({"cron": "* " * 101}, "cron"),
        ({"cron": "@daily", "timezone": "Z" * (validate.MAX_TIMEZONE + 1)}, "timezone"),
        ({"cron": "@daily", "start_at": "1969-12-31T23:59:59Z"}, "startAt"),
        ({"cron": "@daily", "end_at": "2030-01-01T00:00:00Z" + " " * 60}, "endAt"),
        ({"run_at": "2030-01-01T00:00:00Z" + " " * 60}, "runAt"),
        ({"tags": [f"t{i}" for i in range(validate.MAX_TAGS + 1)]}, "tags"),
        ({"tags": ["t" * (validate.MAX_TAG + 1)]}, "tags"),
        ({"tags": ["line\nbreak"]}, "tags"),
        ({"max_attempts": validate.MAX_ATTEMPTS + 1}, "maxAttempts"),
        ({"priority": -validate.MAX_PRIORITY - 1}, "priority"),
        ({"cron": "@daily", "jitter": delay(86_401)}, "jitter"),
        ({"timeout": delay(7 * 86_400 + 1)}, "timeout"),
        ({"cron": "@daily", "catch_up_window": delay(366 * 86_400)}, "catchUpWindow"),
        ({"backoff": ordo_pb2.Backoff(multiplier=101)}, "backoff.multiplier"),
        ({"backoff": ordo_pb2.Backoff(multiplier=float("nan"))}, "backoff.multiplier"),
        ({"backoff": ordo_pb2.Backoff(jitter=1.5)}, "backoff.jitter"),
        ({"backoff": ordo_pb2.Backoff(initial=delay(86_401))}, "backoff.initial"),
        ({"backoff": ordo_pb2.Backoff(max=delay(8 * 86_400))}, "backoff.max"),
        ({"cron": "@daily", "catch_up": 99}, "catchUp"),
        ({"cron": "@daily", "overlap": -1}, "overlap"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_each_limit_names_its_field(fields: dict[str, Any], field: str) -> None:
    assert invalid_field(request(**fields)) == field


def test_a_refusal_quotes_no_more_than_a_little_of_a_huge_value() -> None:
    with pytest.raises(InvalidArgument) as info:
        spec_of(request(type="x" * 1_000_000))

    assert str(validate.MAX_TYPE) in info.value.reason
    assert len(str(info.value)) < 200


def test_payload_nesting_at_the_limit_is_accepted_and_one_deeper_refused() -> None:
    assert spec_of(request(nested(validate.MAX_PAYLOAD_DEPTH), type="echo"), limit=10_000)

    with pytest.raises(InvalidArgument) as info:
        spec_of(request(nested(validate.MAX_PAYLOAD_DEPTH + 1), type="echo"), limit=10_000)

    assert info.value.field == "payload"
    assert "deeper" in info.value.reason


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_a_payload_number_that_is_not_finite_is_refused(number: float) -> None:
    # Regression: a NaN inside a list answered INTERNAL (json_format refuses it).
    req = ordo_pb2.SubmitJobRequest(type="echo")
    req.payload.list_value.values.add().struct_value.fields["x"].number_value = number

    assert invalid_field(req) == "payload"


@pytest.mark.parametrize(
    "d",
    [delay(1, -5), delay(-1, 5), delay(0, 1_000_000_000), delay(315_576_000_001)],
    ids=["nanos-sign", "seconds-sign", "nanos-range", "seconds-range"],
)
def test_an_ill_formed_duration_is_refused(d: Duration) -> None:
    assert invalid_field(request(delay=d)) == "delay"


@pytest.mark.parametrize("zone", ["America", "Etc", "../etc/passwd", "a\x00b", "Not/AZone"])
def test_a_time_zone_that_is_no_zone_is_refused(zone: str) -> None:
    # Regression: "America" (a directory of the tz database) answered INTERNAL.
    assert invalid_field(request(cron="@daily", timezone=zone)) == "timezone"


@pytest.mark.parametrize(
    "fields",
    [
        {"cron": "@yearly", "start_at": "9999-06-01T00:00:00Z"},
        {"cron": "@yearly", "start_at": "9999-12-31T00:00:00+14:00", "timezone": "Pacific/Kiritimati"},
        {"cron": "59 59 23 31 12 *", "start_at": "9999-12-31T00:00:00Z", "jitter": delay(86_400)},
    ],
    ids=["next-year-10000", "zone-ahead", "jitter-past-9999"],
)
def test_a_schedule_whose_first_fire_is_past_9999_is_refused(fields: dict[str, Any]) -> None:
    # Regression: croniter's "year 10000 is out of range" answered INTERNAL.
    assert invalid_field(request(**fields)) == "cron"


def test_a_schedule_ending_in_9999_is_accepted() -> None:
    spec = spec_of(request(cron="0 0 1 1 *", start_at="9999-01-01T00:00:00Z"))

    assert spec.run_at == parse_rfc3339("9999-01-01T00:00:00Z")


# --- limits: the other requests' fields ---------------------------------------------------


def test_text_limit_counts_characters() -> None:
    assert validate.text("é" * 5, "note", 5) == "é" * 5
    with pytest.raises(InvalidArgument) as info:
        validate.text("é" * 6, "note", 5)

    assert (info.value.field, info.value.reason) == ("note", "is 6 characters long; the limit is 5")


def test_required_text_must_not_be_empty() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.text("", "cron", 5, required=True)

    assert info.value.reason == "is required"


def test_job_id_longer_than_a_uuid_is_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.job_id(str(uuid.uuid4()) + " " * 10_000)

    assert info.value.field == "jobId"
    assert len(info.value.reason) < 200


@pytest.mark.parametrize("n", [-1, validate.MAX_PAGE + 1, 2**31 - 1])
def test_counts_out_of_range_are_refused(n: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.count(n, "pageSize", validate.MAX_PAGE)

    assert info.value.field == "pageSize"


def test_enum_names_a_known_value_and_refuses_an_unknown_one() -> None:
    assert validate.enum(ordo_pb2.JobState, 0, "state") == ""
    assert validate.enum(ordo_pb2.JobState, ordo_pb2.JOB_STATE_PAUSED, "state") == "JOB_STATE_PAUSED"
    with pytest.raises(InvalidArgument) as info:
        validate.enum(ordo_pb2.JobState, 4242, "state")

    assert info.value.field == "state"


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_a_page_token_of_ours_is_accepted() -> None:
    assert validate.page_token(token(f"{NOW}:{uuid.uuid4()}")) != ""


@pytest.mark.parametrize(
    "text",
    [token("9" * 30 + ":x"), token("-" + "9" * 30 + ":x"), token("x:y"), "%%%", token("1:" + "x" * 300)],
    ids=["huge", "huge-negative", "not-a-number", "not-base64", "too-long"],
)
def test_a_page_token_not_of_ours_is_refused(text: str) -> None:
    # Regression: a position past SQLite's 64 bits answered INTERNAL.
    with pytest.raises(InvalidArgument) as info:
        validate.page_token(text)

    assert info.value.field == "pageToken"


def test_fit_keeps_a_page_within_its_budget_but_never_empty() -> None:
    assert validate.fit([10, 10, 10], 25) == 2
    assert validate.fit([10, 10, 10], 30) == 3
    assert validate.fit([100, 1], 10) == 1
    assert validate.fit([], 10) == 0


def test_timezone_defaults_to_utc() -> None:
    assert validate.timezone("", "timezone") == "UTC"
    assert validate.timezone("Asia/Kathmandu", "timezone") == "Asia/Kathmandu"


@pytest.mark.parametrize("text", ["node1\n", "", "-node", "n" * 64, "nöde"])
def test_a_node_id_not_as_a_config_spells_it_is_refused(text: str) -> None:
    # Regression: "node1\n" passed NODE_ID.match and was added as a second member.
    with pytest.raises(InvalidArgument) as info:
        validate.node_id(text)

    assert info.value.field == "nodeId"


@pytest.mark.parametrize(
    "text",
    ["host:\u00b2", "host:\u0661\u0662", "h" * 251 + ":7001", "host:0", "host", "a b:1"],
    ids=["superscript-port", "arabic-digits", "too-long", "port-0", "no-port", "space"],
)
def test_an_address_that_is_no_host_port_is_refused(text: str) -> None:
    # Regression: a port of "²" raised ValueError (INTERNAL) in config.check_address.
    with pytest.raises(InvalidArgument) as info:
        validate.address(text, "raftAddress")

    assert info.value.field == "raftAddress"


def test_an_address_is_accepted() -> None:
    assert validate.address("10.0.0.7:7101", "raftAddress") == "10.0.0.7:7101"
    assert validate.address("[::1]:7101", "raftAddress") == "[::1]:7101"


# --- schedules near the end of the calendar -------------------------------------------------


def test_preview_stops_where_the_calendar_ends() -> None:
    # Regression: a preview running into year 10000 answered INTERNAL.
    s = parse_schedule("@yearly", timezone="Pacific/Kiritimati")

    times = preview_times(s, parse_rfc3339("9995-06-01T00:00:00Z"), 10)

    assert 1 <= len(times) < 10
    assert all(fire <= validate.MAX_TIME_US for _, fire, _ in times)


def test_a_time_at_the_end_of_9999_reads_in_a_zone_ahead_of_utc() -> None:
    # Regression: ExplainOccurrence at 9999-12-31T23:59:59Z in +14:00 answered INTERNAL.
    s = parse_schedule("* * * * *", timezone="Pacific/Kiritimati")

    assert local(s, validate.MAX_TIME_US) == "9999-12-31T23:59:59+00:00"


def test_max_request_bytes_holds_a_batch_and_grows_with_the_payload_limit() -> None:
    assert validate.max_request_bytes(1024 * 1024) == validate.MAX_REQUEST_BYTES
    assert validate.max_request_bytes(1024 * 1024) > validate.MAX_BATCH_PAYLOAD_BYTES
    assert validate.max_request_bytes(64 * 1024 * 1024) == 129 * 1024 * 1024


def test_an_interval_longer_than_the_calendar_has_no_fire_time() -> None:
    # Regression: "every 10000000000000000000d" answered INTERNAL in SubmitJob and PreviewSchedule.
    expression = "every 10000000000000000000d"

    assert invalid_field(request(cron=expression)) == "cron"
    assert preview_times(parse_schedule(expression), NOW, 10) == []


class NoOccurrences:
    """The one query explain() makes, on a job with no occurrence recorded."""

    async def occurrence_at(self, job_id: str, at: int) -> None:
        return None


@pytest.mark.parametrize("expression", ["every 5s", "*/2 * * * * *"], ids=["interval", "cron"])
async def test_an_explanation_at_the_end_of_9999_names_no_next_time(expression: str) -> None:
    # Regression: found by the long fuzz; an interval's next time past 9999 answered INTERNAL.
    job = JobRow(
        job_id=str(uuid.uuid4()),
        name="",
        type="echo",
        payload=None,
        state="SCHEDULED",
        run_at=NOW,
        created_at=NOW,
        updated_at=NOW,
        idempotency_key="",
        submitted_to="node1",
        options={"cron": expression, "timezone": "UTC"},
        occurrences=0,
        next_fire=NOW,
    )

    occ, text = await explain(NoOccurrences(), job, validate.MAX_TIME_US, NOW)  # type: ignore[arg-type]

    assert occ is None
    assert "there is none after it" in text


@pytest.mark.parametrize(
    "obj",
    [
        None,
        "text",
        0,
        -3,
        2.5,
        2**53,
        2**53 + 2,
        1e300,
        True,
        [],
        {},
        {"b": [1, 2.0, None, {"c": "d"}], "a": False},
        [[[["deep"]]], {"n": -0.0}],
    ],
)
def test_the_payload_reads_as_protobufs_own_json_reading_does(obj: Any) -> None:
    # convert.from_value (the payload's check, the executor and the CLI) reads a Value in
    # one pass of its own; it must agree with protobuf's JSON printer, which it replaced
    # for speed, whole numbers given back as ints as they were sent.
    def ints(x: Any) -> Any:
        if isinstance(x, float) and x.is_integer() and abs(x) <= 2**53:
            return int(x)
        if isinstance(x, dict):
            return {k: ints(y) for k, y in x.items()}
        return [ints(y) for y in x] if isinstance(x, list) else x

    v = value(obj)
    expected = ints(json_format.MessageToDict(v))
    assert from_value(v) == expected
    if isinstance(obj, int | float) and not isinstance(obj, bool) and abs(obj) >= 2**53:
        # a whole number from 2^53 on may not be the one sent (2^53 + 1 arrives as 2^53): refused
        with pytest.raises(InvalidArgument, match=r"2\^53 or beyond.*send payloadJson"):
            validate.payload(v, "payload", 1 << 20)
        return
    parsed, canonical = validate.payload(v, "payload", 1 << 20)
    assert parsed == expected
    assert json.loads(canonical) == expected


def test_a_payload_as_json_text_keeps_its_numbers_exact() -> None:
    text = '{"id": 9007199254740993, "big": -123456789012345678901234567890, "x": 0.1, "s": "é"}'

    parsed, canonical = validate.payload_text(text, "payloadJson", 1 << 20)

    assert parsed["id"] == 9007199254740993 and parsed["big"] == -123456789012345678901234567890
    assert canonical == '{"big":-123456789012345678901234567890,"id":9007199254740993,"s":"é","x":0.1}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "is not JSON"),
        ('{"a": NaN}', "is not JSON: NaN is not a JSON number"),
        ("[Infinity]", "is not JSON: Infinity is not a JSON number"),
        ("[1e999]", "numbers must be finite"),
        ("[" * 32 + "]" * 32, "nests deeper than 32 levels"),
        ('"' + "x" * 2000 + '"', "bytes; the limit is 1000"),
    ],
    ids=["truncated", "nan", "infinity", "overflow", "too-deep", "too-large"],
)
def test_a_bad_payload_as_json_text_is_refused_naming_the_field(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate.payload_text(text, "jobs[3].payloadJson", 1000)
    assert refused.value.field == "jobs[3].payloadJson"
    assert reason in refused.value.reason


def test_thirty_one_levels_of_json_text_are_as_deep_as_a_value_may_go() -> None:
    deep = "[" * 31 + "]" * 31
    assert validate.payload_text(deep, "payloadJson", 1 << 20)[1] == deep
    assert from_value(value(json.loads(deep)), max_depth=validate.MAX_PAYLOAD_DEPTH) is not None
