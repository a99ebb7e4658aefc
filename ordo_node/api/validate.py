"""Limits on client input, and the checks that enforce them.

Every limit a public request meets is a constant here; each check raises
InvalidArgument naming the field as it is spelled on the wire (lowerCamelCase,
``jobs[3].`` before the fields of a batch item). The payload's size limit is
the node's ``[limits] max_payload_bytes``; gRPC's own limit on a whole request
(``grpc.max_receive_message_length``, set in node.py) is :func:`max_request_bytes`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf import duration_pb2, struct_pb2

from .. import queries, schedule
from ..config import NODE_ID, check_address
from ..errors import ConfigError, InvalidArgument
from ..timeutil import parse_rfc3339
from ..wire import BadValue, from_value

# --- text -----------------------------------------------------------------------------------------------
MAX_JOB_ID = 36  # a UUID in canonical form
MAX_TYPE = 100  # a handler's name
MAX_NAME = 200
MAX_KEY = 200  # idempotencyKey
MAX_NOTE = 200  # the note of PauseJob and ResumeJob
MAX_CRON = 200
MAX_TIMEZONE = 64  # the longest IANA name is 32 characters
MAX_TIME_TEXT = 64  # an RFC 3339 time
MAX_TAGS = 16
MAX_TAG = 64
MAX_NODE_ID = 63  # config.NODE_ID
MAX_ADDRESS = 255
MAX_PAGE_TOKEN = 200
# What a status message may carry (UTF-8 bytes): gRPC clients refuse trailers over 8 KiB,
# and the message travels percent-encoded, up to three times its size.
MAX_MESSAGE_BYTES = 1024
# --- payload --------------------------------------------------------------------------------------------
MAX_PAYLOAD_DEPTH = 32  # nested lists and objects; protobuf itself stops at 100 messages
# --- counts ---------------------------------------------------------------------------------------------
MAX_BATCH = 10_000  # jobs in one SubmitJobs
MAX_BATCH_PAYLOAD_BYTES = 16 * 1024 * 1024  # the payloads of one SubmitJobs (one Raft command) together
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # one request, serialized (see max_request_bytes)
MAX_PAGE = queries.MAX_PAGE  # pageSize of ListJobs and ListOccurrences
MAX_PAGE_BYTES = 3 * 1024 * 1024  # a ListJobs page stops short of gRPC clients' default 4 MiB
MAX_PREVIEW = schedule.MAX_PREVIEW  # count of PreviewSchedule
MAX_ATTEMPTS = 100
MAX_PRIORITY = 1000  # priority lies in [-MAX_PRIORITY, MAX_PRIORITY]
MAX_MULTIPLIER = 100.0  # backoff.multiplier lies in [1, MAX_MULTIPLIER]
MAX_AFTER = 100  # jobs a job runs after
MAX_CONCURRENCY_LIMIT = 10_000
MAX_PAUSE_ON_FAILURE = 1000
MAX_RATE_PER_SECOND = 100_000.0  # rateLimit
MAX_BURST = 100_000
MAX_BUFFER_LIMIT = 1000  # bufferLimit of overlap BUFFER_ALL (default: policy.DEFAULT_BUFFER_LIMIT)
MAX_MORE_CRON = 20  # moreCron: specs beside cron
MAX_EXCLUDE_DATES = 1000
MAX_EXCLUDE_CRON = 20
# --- durations and times (microseconds) -----------------------------------------------------------------
DAY_US = 86_400_000_000
MAX_DELAY_US = 100 * 365 * DAY_US
MAX_DEBOUNCE_US = 7 * DAY_US  # debounce.window and debounce.maxWait
MAX_JITTER_US = DAY_US
MAX_BACKOFF_INITIAL_US = DAY_US
MAX_BACKOFF_US = 7 * DAY_US
MAX_TIMEOUT_US = 7 * DAY_US
MAX_CATCH_UP_WINDOW_US = 365 * DAY_US
MIN_TIME_US = 0  # 1970-01-01T00:00:00Z
MAX_TIME_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z, the end of protobuf's Timestamp
_MAX_DURATION_SECONDS = 315_576_000_000  # protobuf's Duration: about 10,000 years


def max_request_bytes(max_payload_bytes: int) -> int:
    """The largest request the gRPC server should take: MAX_REQUEST_BYTES, or room for two
    payloads of the configured largest size (protobuf spells numbers longer than JSON)."""
    return max(MAX_REQUEST_BYTES, 2 * max_payload_bytes + 1024 * 1024)


def text(value: str, field: str, maximum: int, *, required: bool = False) -> str:
    """A string of at most ``maximum`` characters (and not empty if ``required``)."""
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > maximum:
        raise InvalidArgument(field, f"is {len(value)} characters long; the limit is {maximum}")
    return value


def job_id(value: str, field: str = "jobId") -> str:
    """A job id in canonical UUID form (upper case is accepted and lowered)."""
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        if len(value) > MAX_JOB_ID:
            raise ValueError(value)
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(field, f"{value[:80]!r} is not a job id (a UUID)") from None
    if canonical != value.lower():
        raise InvalidArgument(field, f"{value[:80]!r} is not a job id in canonical UUID form")
    return canonical


def time_field(value: str, field: str) -> int | None:
    """An optional RFC 3339 time between 1970 and the end of 9999 (UTC), in microseconds."""
    if not value:
        return None
    try:
        if len(value) > MAX_TIME_TEXT:
            raise ValueError(f"longer than {MAX_TIME_TEXT} characters")
        us = parse_rfc3339(value)
        if not MIN_TIME_US <= us <= MAX_TIME_US:
            raise ValueError("it must lie between years 1970 and 9999 (UTC)")
    except (ValueError, OverflowError) as e:
        raise InvalidArgument(field, f"{value[:80]!r} is not an RFC 3339 time: {e}") from None
    return us


def duration(msg: duration_pb2.Duration, field: str, *, maximum: int) -> int:
    """A well-formed Duration between 0 and ``maximum`` microseconds."""
    seconds, nanos = msg.seconds, msg.nanos
    if (
        abs(seconds) > _MAX_DURATION_SECONDS
        or abs(nanos) > 999_999_999
        or (seconds > 0 and nanos < 0)
        or (seconds < 0 and nanos > 0)
    ):
        raise InvalidArgument(
            field, "is not a valid Duration (nanos must be within a second, of seconds' sign)"
        )
    us = int(msg.ToMicroseconds())
    if us < 0:
        raise InvalidArgument(field, "must not be negative")
    if us > maximum:
        raise InvalidArgument(field, f"must be at most {maximum // 1_000_000}s")
    return us


def timezone(value: str, field: str) -> str:
    """An IANA time zone name ("UTC" when empty)."""
    if not value:
        return "UTC"
    text(value, field, MAX_TIMEZONE)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as "America"
        raise InvalidArgument(field, f"{value[:80]!r} is not an IANA time zone") from None
    return value


def enum(enum_type: Any, value: int, field: str) -> str:
    """The name of an enum value ("" for 0, UNSPECIFIED); InvalidArgument if there is no such value."""
    if value == 0:
        return ""
    if value not in enum_type.values():
        raise InvalidArgument(field, f"{value} is not one of {', '.join(enum_type.keys()[1:])}")
    name: str = enum_type.Name(value)
    return name


def count(value: int, field: str, maximum: int) -> int:
    """A count between 0 and ``maximum``."""
    if not 0 <= value <= maximum:
        raise InvalidArgument(field, f"must be between 0 and {maximum}")
    return value


def page_token(value: str, field: str = "pageToken") -> str:
    """A page token this server issued (checked only for its form: the page it names may be gone)."""
    if value:
        try:
            if len(value) > MAX_PAGE_TOKEN:
                raise ValueError(value)
            position, _ = queries.decode_token(value)
            if not -(2**63) <= position < 2**63:  # what SQLite can compare
                raise ValueError(value)
        except (ValueError, InvalidArgument):
            raise InvalidArgument(field, "not a token this server issued") from None
    return value


def fit(sizes: Sequence[int], budget: int) -> int:
    """How many of the leading items, of these serialized sizes, fit in ``budget`` bytes (at least one)."""
    total = 0
    for n, size in enumerate(sizes):
        total += size
        if n and total > budget:
            return n
    return len(sizes)


# json.dumps with any option builds a new encoder on every call (half of the cost
# of dumping a small payload): one encoder, made once.
_canonical = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


def payload(v: struct_pb2.Value | None, field: str, max_bytes: int) -> tuple[Any, str]:
    """The payload as a JSON value and as canonical JSON text: finite, not too deep, not too large."""
    if v is None:
        return None, "null"
    try:
        obj = from_value(v, max_depth=MAX_PAYLOAD_DEPTH, exact=True)
    except BadValue as e:
        hint = "; send payloadJson (JSON text) for exact numbers" if "2^53" in str(e) else ""
        raise InvalidArgument(field, f"{e}{hint}") from None
    return obj, _bounded(_canonical(obj), field, max_bytes)


def payload_text(text: str, field: str, max_bytes: int) -> tuple[Any, str]:
    """A payload given as JSON text: numbers exactly as written; finite, not too deep, not too large."""
    if len(text.encode()) > 4 * max_bytes:  # before parsing: canonical text is never much smaller
        raise InvalidArgument(field, f"is {len(text.encode())} bytes; the limit is {max_bytes}")
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise InvalidArgument(field, f"is not JSON: {str(e)[:200]}") from None
    if _depth(obj) >= MAX_PAYLOAD_DEPTH:  # as from_value counts: the top value is level 1
        raise InvalidArgument(field, f"nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    if _has_non_finite(obj):
        raise InvalidArgument(field, "numbers must be finite")
    return obj, _bounded(_canonical(obj), field, max_bytes)


def _bounded(canonical: str, field: str, max_bytes: int) -> str:
    size = len(canonical.encode())
    if size > max_bytes:
        raise InvalidArgument(field, f"is {size} bytes; the limit is {max_bytes}")
    return canonical


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(obj: Any) -> int:
    """How many lists and objects nest (a scalar: 0; ``{"a": [1]}``: 2)."""
    depth, level = 0, [obj]
    while True:
        containers = [x for x in level if isinstance(x, dict | list)]
        if not containers:
            return depth
        depth += 1
        level = [y for x in containers for y in (x.values() if isinstance(x, dict) else x)]


def _has_non_finite(obj: Any) -> bool:
    """True when a number is infinite (1e999 parses as one)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def tags(values: Sequence[str], field: str) -> list[str]:
    """Executor tags: at most MAX_TAGS, each 1 to MAX_TAG printable characters; sorted, without repeats."""
    if len(values) > MAX_TAGS:
        raise InvalidArgument(field, f"has {len(values)} tags; the limit is {MAX_TAGS}")
    for tag in values:
        if not tag or len(tag) > MAX_TAG or not tag.isprintable():
            raise InvalidArgument(field, f"{tag[:80]!r} is not a tag (1 to {MAX_TAG} printable characters)")
    return sorted(set(values))


def node_id(value: str, field: str = "nodeId") -> str:
    """A node id as a config file spells it: letters, digits, ``_ . -``, at most MAX_NODE_ID."""
    if not NODE_ID.fullmatch(value):  # fullmatch: NODE_ID ends in "$", which lets "id\n" through
        raise InvalidArgument(field, f"{value[:80]!r} is not a node id (letters, digits, _ . -)")
    return value


def address(value: str, field: str) -> str:
    """A ``host:port`` address of at most MAX_ADDRESS characters."""
    try:
        # ASCII first: check_address takes "²" and "١٢" for digits (config.py).
        if len(value) > MAX_ADDRESS or not value.isascii():
            raise ConfigError(value)
        return check_address("request", field, value)
    except ConfigError:
        raise InvalidArgument(field, f"{value[:80]!r} is not a 'host:port' address") from None
