"""Rows to protobuf messages (the values and timestamps in them: ``wire.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf import duration_pb2

from ..errors import InvalidArgument
from ..pb import internal_pb2, ordo_pb2
from ..queries import EventRow, JobRow, OccurrenceRow, RunRow
from ..schedule import fire_time, from_options, next_occurrence
from ..timeutil import now_us
from ..wire import ts, ts_of, value


def run_message(r: RunRow) -> ordo_pb2.Run:
    """A run attempt on the wire."""
    msg = ordo_pb2.Run(
        run_id=r.run_id,
        attempt=r.attempt,
        state=f"RUN_STATE_{r.state}",
        node_id=r.node_id,
        scheduled_at=ts(r.scheduled_at),
        triggered_at=ts(r.triggered_at),
        assigned_at=ts(r.assigned_at),
        started_at=ts(r.started_at),
        finished_at=ts(r.finished_at),
        error=r.error,
        traceback=r.traceback,
    )
    if r.result is not None:
        msg.result.CopyFrom(value(r.result))
        msg.result_json = exact_json(r.result)
    return msg


def exact_json(obj: Any) -> str:
    """A stored JSON value as text again: its numbers as they were (json.loads keeps ints whole)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def job_message(j: JobRow) -> ordo_pb2.Job:
    """A job on the wire, with its runs and the last run's outcome."""
    msg = ordo_pb2.Job(
        job_id=j.job_id,
        name=j.name,
        type=j.type,
        state=f"JOB_STATE_{j.state}",
        run_at=ts(j.run_at),
        created_at=ts(j.created_at),
        updated_at=ts(j.updated_at),
        idempotency_key=j.idempotency_key,
        submitted_to=j.submitted_to,
        runs=[run_message(r) for r in j.runs],
    )
    if j.payload is not None:
        msg.payload.CopyFrom(value(j.payload))
    msg.payload_json = exact_json(j.payload)
    apply_options(msg, j.options)
    msg.occurrences = j.occurrences
    next_fire = shown_next_fire(j)
    if next_fire is not None:
        msg.next_fire_time.CopyFrom(ts_of(next_fire))
    if j.state == "SKIPPED":  # run after: why it never ran, where a run's error would be
        msg.error = j.waiting
    else:
        msg.waiting = j.waiting
    if not j.waiting and j.state == "WAITING" and j.options.get("after"):
        msg.waiting = f"runs after jobs {', '.join(j.options['after'])} ({j.options['after_condition']})"
    if j.runs:
        last = j.runs[-1]
        if last.result is not None:
            msg.result.CopyFrom(value(last.result))
            msg.result_json = exact_json(last.result)
        msg.error = last.error
    return msg


def shown_next_fire(j: JobRow, now: int | None = None) -> int | None:
    """A recurring job's next fire time as users see it. A paused job keeps its first time not yet
    recorded (the resume records the times that passed, PAUSED): once that has passed, the next time
    after now is shown instead, the time it fires next if resumed now."""
    if j.next_fire is None or not j.options.get("cron"):
        return None
    now = now_us() if now is None else now
    if j.state != "PAUSED" or j.next_fire >= now:
        return j.next_fire
    try:
        s = from_options(j.options, j.job_id)
        nominal = next_occurrence(s, now, j.occurrences)
        return fire_time(s, nominal) if nominal is not None else None
    except (ValueError, OverflowError, InvalidArgument):  # past the calendar, or a schedule it cannot read
        return j.next_fire


def duration(us: int) -> duration_pb2.Duration:
    """Microseconds as a Duration."""
    d = duration_pb2.Duration()
    d.FromMicroseconds(us)
    return d


def apply_options(msg: ordo_pb2.Job, o: dict[str, Any]) -> None:
    """Copy a job's stored schedule and policies into its message."""
    if o.get("cron"):
        msg.cron = o["cron"]
        msg.timezone = o.get("timezone", "UTC")
        if o.get("start_at") is not None:
            msg.start_at.CopyFrom(ts_of(o["start_at"]))
        if o.get("end_at") is not None:
            msg.end_at.CopyFrom(ts_of(o["end_at"]))
        msg.max_runs = o.get("max_runs", 0)
        if o.get("jitter"):
            msg.jitter.CopyFrom(duration(o["jitter"]))
        msg.catch_up = ordo_pb2.CatchUp.Value(f"CATCH_UP_{o.get('catch_up', 'ONE')}")  # type: ignore[assignment]
        if o.get("catch_up_window"):
            msg.catch_up_window.CopyFrom(duration(o["catch_up_window"]))
        msg.overlap = ordo_pb2.Overlap.Value(f"OVERLAP_{o.get('overlap', 'ALLOW')}")  # type: ignore[assignment]
        msg.buffer_limit = o.get("buffer_limit", 0)
        msg.more_cron.extend(o.get("more_cron", []))
        msg.exclude_dates.extend(o.get("exclude_dates", []))
        msg.exclude_cron.extend(o.get("exclude_cron", []))
    msg.max_attempts = o.get("max_attempts", 1)
    if "backoff" in o:
        b = {**{"initial": 1_000_000, "multiplier": 2.0, "max": 300_000_000, "jitter": 0.0}, **o["backoff"]}
        msg.backoff.initial.CopyFrom(duration(b["initial"]))
        msg.backoff.max.CopyFrom(duration(b["max"]))
        msg.backoff.multiplier = b["multiplier"]
        msg.backoff.jitter = b["jitter"]
    if o.get("timeout"):
        msg.timeout.CopyFrom(duration(o["timeout"]))
    msg.priority = o.get("priority", 0)
    msg.tags.extend(o.get("tags", []))
    msg.long_running = bool(o.get("long_running", False))
    flow_fields(msg, o)


def flow_fields(msg: ordo_pb2.Job, o: dict[str, Any]) -> None:
    """Copy a job's stored flow control (run after, keys, rate limit, debounce...) into its message."""
    if o.get("after"):
        msg.after.extend(o["after"])
        msg.after_condition = ordo_pb2.AfterCondition.Value(f"AFTER_CONDITION_{o['after_condition']}")  # type: ignore[assignment]
    if o.get("concurrency_key"):
        msg.concurrency_key = o["concurrency_key"]
        msg.concurrency_limit = o["concurrency_limit"]
    msg.pause_on_failure = o.get("pause_on_failure", 0)
    if o.get("rate_limit"):
        r = o["rate_limit"]
        msg.rate_limit.key = r["key"]
        msg.rate_limit.burst = r["burst"]
        rate, unit = r["text"].split("/")
        setattr(msg.rate_limit, "per_second" if unit == "s" else "per_minute", float(rate))
    if o.get("debounce"):
        d = o["debounce"]
        msg.debounce.key = d["key"]
        msg.debounce.window.CopyFrom(duration(d["window"]))
        msg.debounce.mode = ordo_pb2.DebounceMode.Value(f"DEBOUNCE_MODE_{d['mode']}")  # type: ignore[assignment]
        if d.get("max_wait"):
            msg.debounce.max_wait.CopyFrom(duration(d["max_wait"]))
    if o.get("singleton"):
        msg.singleton.key = o["singleton"]["key"]
        msg.singleton.mode = ordo_pb2.SingletonMode.Value(f"SINGLETON_MODE_{o['singleton']['mode']}")  # type: ignore[assignment]


def occurrence_message(o: OccurrenceRow) -> ordo_pb2.Occurrence:
    """An occurrence on the wire."""
    return ordo_pb2.Occurrence(
        job_id=o.job_id,
        nominal_time=ts(o.nominal),
        fire_time=ts(o.fire_at),
        fate=f"FATE_{o.fate}",
        reason=o.reason,
        run_id=o.run_id,
        outcome=f"RUN_STATE_{o.outcome}" if o.outcome else "RUN_STATE_UNSPECIFIED",
        attempts=o.attempts,
        decided_at=ts(o.decided_at),
        buffer_position=o.buffer_position,
    )


def event_message(e: EventRow) -> ordo_pb2.Event:
    """A history event on the wire."""
    return ordo_pb2.Event(
        seq=e.seq,
        type=f"EVENT_TYPE_{e.type}",
        time=ts(e.at),
        node_id=e.node_id,
        run_id=e.run_id,
        attempt=e.attempt,
        message=e.message,
        job_id=e.job_id,
    )


def running_runs(runs: Iterable[internal_pb2.ExecutorRun]) -> list[ordo_pb2.RunningRun]:
    """An executor's running attempts (a member's or a worker's) as the cluster status lists them."""
    return [
        ordo_pb2.RunningRun(
            run_id=r.run_id,
            attempt=r.attempt,
            job_id=r.job_id,
            type=r.type,
            started_at=r.started_at,
            last_heartbeat=r.last_heartbeat if r.HasField("last_heartbeat") else None,
            progress=r.progress,
        )
        for r in runs
    ]
