"""Schedules and policies of a submission: validated, and stored as the job's options (JSON).

Field names in errors are the wire's (lowerCamelCase). Stored keys are
snake_case; durations are microseconds. The limits are in validate.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidArgument
from ..pb import ordo_pb2
from ..schedule import fire_time, from_options, next_occurrence
from ..statemachine.policy import DEFAULT_BUFFER_LIMIT
from . import validate as v


def policy_name(enum: Any, value: int, field: str, default: str) -> str:
    """The policy name of an enum value ("ONE" for CATCH_UP_ONE); the default for UNSPECIFIED."""
    name = v.enum(enum, value, field)
    if not name:
        return default
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
            ("moreCron", bool(req.more_cron)),
            ("excludeDates", bool(req.exclude_dates)),
            ("excludeCron", bool(req.exclude_cron)),
        ):
            if present:
                raise InvalidArgument(prefix + name, "applies only to a recurring job (set cron)")
        return {}
    v.text(req.cron, prefix + "cron", v.MAX_CRON)
    if req.run_at or req.HasField("delay"):
        raise InvalidArgument(prefix + "cron", "a recurring job takes startAt, not runAt or delay")
    if req.max_runs < 0:
        raise InvalidArgument(prefix + "maxRuns", "must not be negative")
    return {
        "cron": req.cron.strip(),
        "timezone": v.timezone(req.timezone, prefix + "timezone"),
        "start_at": v.time_field(req.start_at, prefix + "startAt"),
        "end_at": v.time_field(req.end_at, prefix + "endAt"),
        "max_runs": req.max_runs,
        "jitter": v.duration(req.jitter, prefix + "jitter", maximum=v.MAX_JITTER_US),
        **spec_options(req.more_cron, req.exclude_dates, req.exclude_cron, prefix),
    }


def spec_options(
    more_cron: Sequence[str], exclude_dates: Sequence[str], exclude_cron: Sequence[str], prefix: str
) -> dict[str, Any]:
    """More specs and the exclusions, stored only when given (schedule.py checks their grammar)."""
    out: dict[str, Any] = {}
    for field, key, items, limit, size in (
        ("moreCron", "more_cron", more_cron, v.MAX_MORE_CRON, v.MAX_CRON),
        ("excludeDates", "exclude_dates", exclude_dates, v.MAX_EXCLUDE_DATES, 10),
        ("excludeCron", "exclude_cron", exclude_cron, v.MAX_EXCLUDE_CRON, v.MAX_CRON),
    ):
        if len(items) > limit:
            raise InvalidArgument(prefix + field, f"has {len(items)} items; the limit is {limit}")
        for i, text in enumerate(items):
            v.text(text, f"{prefix}{field}[{i}]", size, required=True)
        if items:
            out[key] = [text.strip() for text in items]
    return out


def backoff_options(b: ordo_pb2.Backoff, prefix: str) -> dict[str, Any]:
    """The backoff fields that were set, checked."""
    backoff: dict[str, Any] = {}
    if b.HasField("initial"):
        backoff["initial"] = v.duration(
            b.initial, prefix + "backoff.initial", maximum=v.MAX_BACKOFF_INITIAL_US
        )
    if b.HasField("max"):
        backoff["max"] = v.duration(b.max, prefix + "backoff.max", maximum=v.MAX_BACKOFF_US)
    if b.multiplier:
        if not math.isfinite(b.multiplier) or not 1 <= b.multiplier <= v.MAX_MULTIPLIER:
            raise InvalidArgument(
                prefix + "backoff.multiplier", f"must be between 1 and {v.MAX_MULTIPLIER:g}"
            )
        backoff["multiplier"] = b.multiplier
    if b.jitter:
        if not math.isfinite(b.jitter) or not 0 <= b.jitter <= 1:
            raise InvalidArgument(prefix + "backoff.jitter", "must be between 0 and 1")
        backoff["jitter"] = b.jitter
    return backoff


def policy_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """Attempts, backoff, timeout, priority, catch-up and overlap."""
    out: dict[str, Any] = {}
    if req.max_attempts < 0 or req.max_attempts > v.MAX_ATTEMPTS:
        raise InvalidArgument(prefix + "maxAttempts", f"must be between 1 and {v.MAX_ATTEMPTS}")
    if req.max_attempts > 1:
        out["max_attempts"] = req.max_attempts
    if req.HasField("backoff"):
        out["backoff"] = backoff_options(req.backoff, prefix)
    if req.HasField("timeout"):
        timeout = v.duration(req.timeout, prefix + "timeout", maximum=v.MAX_TIMEOUT_US)
        if timeout == 0:
            raise InvalidArgument(prefix + "timeout", "must be positive")
        out["timeout"] = timeout
    if abs(req.priority) > v.MAX_PRIORITY:
        raise InvalidArgument(prefix + "priority", f"must be between -{v.MAX_PRIORITY} and {v.MAX_PRIORITY}")
    if req.priority:
        out["priority"] = req.priority
    catch_up = policy_name(ordo_pb2.CatchUp, req.catch_up, prefix + "catchUp", "ONE")
    overlap = policy_name(ordo_pb2.Overlap, req.overlap, prefix + "overlap", "ALLOW")
    window = v.duration(req.catch_up_window, prefix + "catchUpWindow", maximum=v.MAX_CATCH_UP_WINDOW_US)
    if req.cron:
        out.update(catch_up=catch_up, catch_up_window=window, overlap=overlap)
        out.update(buffer_options(req, overlap, prefix))
    elif req.catch_up or req.overlap or window or req.buffer_limit:
        given = {"catchUp": req.catch_up, "overlap": req.overlap, "catchUpWindow": window}
        field = next((name for name, value in given.items() if value), "bufferLimit")
        raise InvalidArgument(prefix + field, "applies only to a recurring job (set cron)")
    return out


def buffer_options(req: ordo_pb2.SubmitJobRequest, overlap: str, prefix: str) -> dict[str, Any]:
    """Overlap BUFFER_ALL's bound: ``buffer_limit``, stored with its default so apply never guesses."""
    if overlap != "BUFFER_ALL":
        if req.buffer_limit:
            raise InvalidArgument(prefix + "bufferLimit", "applies only with overlap OVERLAP_BUFFER_ALL")
        return {}
    if not 0 <= req.buffer_limit <= v.MAX_BUFFER_LIMIT:
        raise InvalidArgument(
            prefix + "bufferLimit", f"must be between 1 and {v.MAX_BUFFER_LIMIT} (0: {DEFAULT_BUFFER_LIMIT})"
        )
    return {"buffer_limit": req.buffer_limit or DEFAULT_BUFFER_LIMIT}


def placement_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """Required executor tags, and long-running jobs."""
    out: dict[str, Any] = {}
    if req.tags:
        out["tags"] = v.tags(req.tags, prefix + "tags")
    if req.long_running:
        if req.cron:
            raise InvalidArgument(prefix + "longRunning", "a long-running job cannot be recurring")
        if req.HasField("timeout"):
            raise InvalidArgument(prefix + "longRunning", "a long-running job takes no timeout")
        if not req.name:
            raise InvalidArgument(prefix + "name", "is required for a long-running job (one runs per name)")
        out["long_running"] = True
    return out


def rate_limit(r: ordo_pb2.RateLimit, prefix: str) -> dict[str, Any]:
    """A rate limit: key, the interval between two tokens (us), burst, and the rate as text."""
    v.text(r.key, prefix + "key", v.MAX_KEY, required=True)
    if bool(r.per_second) == bool(r.per_minute):
        raise InvalidArgument(prefix + "perSecond", "give one of perSecond and perMinute")
    per, unit, span = (r.per_second, "s", 1_000_000) if r.per_second else (r.per_minute, "min", 60_000_000)
    field = prefix + ("perSecond" if r.per_second else "perMinute")
    if not math.isfinite(per) or not 0 < per <= v.MAX_RATE_PER_SECOND * span / 1_000_000:
        raise InvalidArgument(field, f"must be above 0 and at most {v.MAX_RATE_PER_SECOND:g} per second")
    if not 0 <= r.burst <= v.MAX_BURST:
        raise InvalidArgument(prefix + "burst", f"must be between 0 and {v.MAX_BURST}")
    interval = max(1, round(span / per))
    return {"key": r.key, "interval": interval, "burst": r.burst or 1, "text": f"{per:g}/{unit}"}


def flow_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """Run after, the concurrency key, the rate limit, pauseOnFailure, debounce and singleton."""
    return {**after_options(req, prefix), **key_options(req, prefix), **join_options(req, prefix)}


def join_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """Debounce (key, window and maxWait in us, mode) and singleton (key, mode): one-off jobs only,
    one of the two, and not with ``after`` or a long-running job (see statemachine/joining.py)."""
    which = [f for f in ("debounce", "singleton") if req.HasField(f)]
    if not which:
        return {}
    field = prefix + which[0]
    if len(which) == 2:
        raise InvalidArgument(prefix + "singleton", "give debounce or singleton, not both")
    for other, why in (("cron", "cron"), ("after", "after"), ("long_running", "longRunning")):
        if getattr(req, other):
            raise InvalidArgument(field, f"applies only to a one-off job without {why}")
    if req.HasField("singleton"):
        s = req.singleton
        v.text(s.key, field + ".key", v.MAX_KEY, required=True)
        mode = v.enum(ordo_pb2.SingletonMode, s.mode, field + ".mode").removeprefix("SINGLETON_MODE_")
        return {"singleton": {"key": s.key, "mode": mode or "SKIP"}}
    d = req.debounce
    v.text(d.key, field + ".key", v.MAX_KEY, required=True)
    window = v.duration(d.window, field + ".window", maximum=v.MAX_DEBOUNCE_US)
    if window <= 0:
        raise InvalidArgument(field + ".window", "is required: how close submissions must come to be merged")
    mode = v.enum(ordo_pb2.DebounceMode, d.mode, field + ".mode").removeprefix("DEBOUNCE_MODE_") or "TRAILING"
    max_wait = v.duration(d.max_wait, field + ".maxWait", maximum=v.MAX_DEBOUNCE_US)
    if max_wait and mode != "TRAILING":
        raise InvalidArgument(field + ".maxWait", "applies only to mode TRAILING")
    if max_wait and max_wait < window:
        raise InvalidArgument(field + ".maxWait", "must be at least the window (0: no bound)")
    out: dict[str, Any] = {"key": d.key, "window": window, "mode": mode}
    if max_wait:
        out["max_wait"] = max_wait
    return {"debounce": out}


def after_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """Run after (``after``, ``afterCondition``)."""
    out: dict[str, Any] = {}
    if req.after:
        if req.cron:
            raise InvalidArgument(prefix + "after", "applies only to a one-off job (not with cron)")
        if len(req.after) > v.MAX_AFTER:
            raise InvalidArgument(
                prefix + "after", f"names {len(req.after)} jobs; the limit is {v.MAX_AFTER}"
            )
        ids = [v.job_id(j, f"{prefix}after[{i}]") for i, j in enumerate(req.after)]
        if len(set(ids)) != len(ids):
            raise InvalidArgument(prefix + "after", "names a job twice")
        out["after"] = ids
        condition = v.enum(ordo_pb2.AfterCondition, req.after_condition, prefix + "afterCondition")
        out["after_condition"] = condition.removeprefix("AFTER_CONDITION_") or "SUCCEEDED"
    elif req.after_condition:
        raise InvalidArgument(prefix + "afterCondition", "applies only with after")
    return out


def key_options(req: ordo_pb2.SubmitJobRequest, prefix: str) -> dict[str, Any]:
    """The concurrency key (``concurrencyKey``/``Limit``), the rate limit and pauseOnFailure."""
    out: dict[str, Any] = {}
    if req.concurrency_key:
        v.text(req.concurrency_key, prefix + "concurrencyKey", v.MAX_KEY)
        if not 1 <= req.concurrency_limit <= v.MAX_CONCURRENCY_LIMIT:
            raise InvalidArgument(
                prefix + "concurrencyLimit", f"must be between 1 and {v.MAX_CONCURRENCY_LIMIT} with a key"
            )
        out["concurrency_key"] = req.concurrency_key
        out["concurrency_limit"] = req.concurrency_limit
    elif req.concurrency_limit:
        raise InvalidArgument(prefix + "concurrencyLimit", "applies only with concurrencyKey")
    if req.HasField("rate_limit"):
        out["rate_limit"] = rate_limit(req.rate_limit, prefix + "rateLimit.")
    if req.pause_on_failure:
        if not req.cron:
            raise InvalidArgument(prefix + "pauseOnFailure", "applies only to a recurring job (set cron)")
        if not 1 <= req.pause_on_failure <= v.MAX_PAUSE_ON_FAILURE:
            raise InvalidArgument(
                prefix + "pauseOnFailure", f"must be between 0 and {v.MAX_PAUSE_ON_FAILURE}"
            )
        out["pause_on_failure"] = req.pause_on_failure
    return out


# The fields of a submission that are not options (checked in submission.py).
_PLAIN = frozenset({"type", "payload", "run_at", "delay", "name", "idempotency_key"})


def job_options(
    req: ordo_pb2.SubmitJobRequest, *, job_id: str, now: int, prefix: str = ""
) -> tuple[dict[str, Any], int | None, int | None]:
    """(options, first nominal time, first fire time); the times are None for a one-off job."""
    if all(f.name in _PLAIN for f, _ in req.ListFields()):
        return {}, None, None  # a plain one-off job: no option is set (ListFields lists the set ones)
    options = {
        **schedule_options(req, prefix),
        **policy_options(req, prefix),
        **placement_options(req, prefix),
        **flow_options(req, prefix),
    }
    if "cron" not in options:
        return options, None, None
    try:
        schedule = from_options(options, job_id)
    except InvalidArgument as e:
        raise InvalidArgument(prefix + e.field, e.reason) from None
    try:
        first = next_occurrence(schedule, now, 0)
        fire = fire_time(schedule, first) if first is not None else None
    except (ValueError, OverflowError):  # the calendar ends in 9999
        first = fire = None
    except InvalidArgument as e:  # the exclusions leave no time
        raise InvalidArgument(prefix + e.field, e.reason) from None
    if first is None or fire is None or fire > v.MAX_TIME_US:
        raise InvalidArgument(
            prefix + "cron",
            "the schedule has no fire time between now and 9999 (see startAt, endAt, maxRuns)",
        )
    return options, first, fire
