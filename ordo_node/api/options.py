"""Schedules and policies of a submission: validated, and stored as the job's options (JSON).

Field names in errors are the wire's (lowerCamelCase). Stored keys are
snake_case; durations are microseconds.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import duration_pb2

from ..errors import InvalidArgument
from ..pb import ordo_pb2
from ..schedule import fire_time, from_options, next_occurrence
from ..timeutil import parse_rfc3339

MAX_ATTEMPTS = 100
MAX_PRIORITY = 1000
DAY_US = 86_400_000_000


def duration(msg: duration_pb2.Duration, field: str, *, maximum: int = 365 * DAY_US) -> int:
    """A Duration in microseconds, not negative and not absurd."""
    us = int(msg.ToMicroseconds())
    if us < 0:
        raise InvalidArgument(field, "must not be negative")
    if us > maximum:
        raise InvalidArgument(field, f"must be at most {maximum // 1_000_000}s")
    return us


def time_field(text: str, field: str) -> int | None:
    """An optional RFC 3339 time."""
    if not text:
        return None
    try:
        return parse_rfc3339(text)
    except (ValueError, OverflowError) as e:
        raise InvalidArgument(field, f"'{text[:80]}' is not an RFC 3339 time: {e}") from None


def enum_name(enum: Any, value: int, field: str, default: str) -> str:
    """The policy name of an enum value ("ONE" for CATCH_UP_ONE); the default for UNSPECIFIED."""
    if value == 0:
        return default
    if value not in enum.values():
        raise InvalidArgument(field, f"{value} is not one of {', '.join(enum.keys()[1:])}")
    name: str = enum.Name(value)
    return name.split("_", 2)[-1] if name.startswith("CATCH_UP_") else name.removeprefix("OVERLAP_")


def schedule_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """The schedule part of the options (empty for a one-off job)."""
    if not req.cron:
        for name, present in (
            ("timezone", bool(req.timezone)),
            ("startAt", bool(req.start_at)),
            ("endAt", bool(req.end_at)),
            ("maxRuns", req.max_runs != 0),
            ("jitter", req.HasField("jitter")),
        ):
            if present:
                raise InvalidArgument(prefix + name, "applies only to a recurring job (set cron)")
        return {}
    if req.run_at or req.HasField("delay"):
        raise InvalidArgument(prefix + "cron", "a recurring job takes startAt, not runAt or delay")
    if req.max_runs < 0:
        raise InvalidArgument(prefix + "maxRuns", "must not be negative")
    return {
        "cron": req.cron.strip(),
        "timezone": req.timezone or "UTC",
        "start_at": time_field(req.start_at, prefix + "startAt"),
        "end_at": time_field(req.end_at, prefix + "endAt"),
        "max_runs": req.max_runs,
        "jitter": duration(req.jitter, prefix + "jitter", maximum=DAY_US),
    }


def backoff_options(b: ordo_pb2.Backoff, prefix: str) -> dict[str, Any]:
    """The backoff fields that were set, checked."""
    backoff: dict[str, Any] = {}
    if b.HasField("initial"):
        backoff["initial"] = duration(b.initial, prefix + "backoff.initial", maximum=DAY_US)
    if b.HasField("max"):
        backoff["max"] = duration(b.max, prefix + "backoff.max", maximum=7 * DAY_US)
    if b.multiplier:
        if not math.isfinite(b.multiplier) or not 1 <= b.multiplier <= 100:
            raise InvalidArgument(prefix + "backoff.multiplier", "must be between 1 and 100")
        backoff["multiplier"] = b.multiplier
    if b.jitter:
        if not math.isfinite(b.jitter) or not 0 <= b.jitter <= 1:
            raise InvalidArgument(prefix + "backoff.jitter", "must be between 0 and 1")
        backoff["jitter"] = b.jitter
    return backoff


def policy_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """Attempts, backoff, timeout, priority, catch-up and overlap."""
    out: dict[str, Any] = {}
    if req.max_attempts < 0 or req.max_attempts > MAX_ATTEMPTS:
        raise InvalidArgument(prefix + "maxAttempts", f"must be between 1 and {MAX_ATTEMPTS}")
    if req.max_attempts > 1:
        out["max_attempts"] = req.max_attempts
    if req.HasField("backoff"):
        out["backoff"] = backoff_options(req.backoff, prefix)
    if req.HasField("timeout"):
        timeout = duration(req.timeout, prefix + "timeout", maximum=7 * DAY_US)
        if timeout == 0:
            raise InvalidArgument(prefix + "timeout", "must be positive")
        out["timeout"] = timeout
    if abs(req.priority) > MAX_PRIORITY:
        raise InvalidArgument(prefix + "priority", f"must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
    if req.priority:
        out["priority"] = req.priority
    catch_up = enum_name(ordo_pb2.CatchUp, req.catch_up, prefix + "catchUp", "ONE")
    overlap = enum_name(ordo_pb2.Overlap, req.overlap, prefix + "overlap", "ALLOW")
    window = duration(req.catch_up_window, prefix + "catchUpWindow")
    if req.cron:
        out.update(catch_up=catch_up, catch_up_window=window, overlap=overlap)
    elif req.catch_up or req.overlap or window:
        field = "catchUp" if req.catch_up else "overlap" if req.overlap else "catchUpWindow"
        raise InvalidArgument(prefix + field, "applies only to a recurring job (set cron)")
    return out


MAX_TAGS = 16
MAX_TAG = 64


def placement_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """Required executor tags, and long-running jobs."""
    out: dict[str, Any] = {}
    if req.tags:
        if len(req.tags) > MAX_TAGS:
            raise InvalidArgument(prefix + "tags", f"has {len(req.tags)} tags; the limit is {MAX_TAGS}")
        for tag in req.tags:
            if not tag or len(tag) > MAX_TAG or not tag.isprintable():
                raise InvalidArgument(
                    prefix + "tags", f"{tag[:80]!r} is not a tag (1 to {MAX_TAG} printable characters)"
                )
        out["tags"] = sorted(set(req.tags))
    if req.long_running:
        if req.cron:
            raise InvalidArgument(prefix + "longRunning", "a long-running job cannot be recurring")
        if req.HasField("timeout"):
            raise InvalidArgument(prefix + "longRunning", "a long-running job takes no timeout")
        if not req.name:
            raise InvalidArgument(prefix + "name", "is required for a long-running job (one runs per name)")
        out["long_running"] = True
    return out


def job_options(
    req: ordo_pb2.SubmitJobRequest, *, job_id: str, now: int, prefix: str = ""
) -> tuple[dict[str, Any], int | None, int | None]:
    """(options, first nominal time, first fire time); the times are None for a one-off job."""
    options = {
        **schedule_options(req, prefix),
        **policy_options(req, prefix),
        **placement_options(req, prefix),
    }
    if "cron" not in options:
        return options, None, None
    try:
        schedule = from_options(options, job_id)
    except InvalidArgument as e:
        raise InvalidArgument(prefix + e.field, e.reason) from None
    first = next_occurrence(schedule, now, 0)
    if first is None:
        raise InvalidArgument(prefix + "cron", "the schedule has no fire time after now (see endAt, maxRuns)")
    return options, first, fire_time(schedule, first)
