"""Rows to protobuf messages, and JSON values to and from ``google.protobuf.Value``."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from ..pb import ordo_pb2
from ..queries import EventRow, JobRow, OccurrenceRow, RunRow


def value(obj: Any) -> struct_pb2.Value:
    """A JSON value as a protobuf Value."""
    v = struct_pb2.Value()
    json_format.ParseDict(obj, v)
    return v


class BadValue(ValueError):
    """A Value that is not a JSON value we accept; the message says why."""


def from_value(v: struct_pb2.Value, *, max_depth: int = 0) -> Any:
    """A protobuf Value as a JSON value; whole numbers come back as ints, as they were sent.

    Read directly, not through json_format.MessageToDict, which cost more than
    the echo handler in the executor and half of a small job's validation.
    Numbers that are not finite raise BadValue (MessageToDict refused them too);
    with ``max_depth``, so do lists and objects nested deeper than that.
    """
    return _from_value(v, max_depth or _UNBOUNDED, 1)


_UNBOUNDED = 1 << 62


def _from_value(v: struct_pb2.Value, max_depth: int, depth: int) -> Any:
    # Positional arguments and no keyword defaults: this runs for every value of
    # every payload a node accepts or runs.
    if depth > max_depth:
        raise BadValue(f"nests deeper than {max_depth} levels")
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        # protobuf's Value keeps every number as a double.
        n = v.number_value
        if not math.isfinite(n):
            raise BadValue("numbers must be finite")
        return int(n) if n.is_integer() and abs(n) <= 2**53 else n
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        depth += 1
        return {k: _from_value(x, max_depth, depth) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        depth += 1
        return [_from_value(x, max_depth, depth) for x in v.list_value.values]
    return None  # null_value, or no kind set


def ts(us: int | None) -> timestamp_pb2.Timestamp | None:
    """Microseconds since the epoch as a Timestamp (None stays None)."""
    if us is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(us)
    return t


def ts_of(us: int) -> timestamp_pb2.Timestamp:
    """Microseconds since the epoch as a Timestamp."""
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(us)
    return t


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
    )
    if r.result is not None:
        msg.result.CopyFrom(value(r.result))
    return msg


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
    apply_options(msg, j.options)
    msg.occurrences = j.occurrences
    if j.next_fire is not None and j.options.get("cron"):
        msg.next_fire_time.CopyFrom(ts_of(j.next_fire))
    msg.waiting = j.waiting
    if j.runs:
        last = j.runs[-1]
        if last.result is not None:
            msg.result.CopyFrom(value(last.result))
        msg.error = last.error
    return msg


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
