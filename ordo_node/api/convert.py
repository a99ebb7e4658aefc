"""Rows to protobuf messages, and JSON values to and from ``google.protobuf.Value``."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from ..pb import ordo_pb2
from ..queries import EventRow, JobRow, RunRow


def value(obj: Any) -> struct_pb2.Value:
    """A JSON value as a protobuf Value."""
    v = struct_pb2.Value()
    json_format.ParseDict(obj, v)
    return v


def from_value(v: struct_pb2.Value) -> Any:
    """A protobuf Value as a JSON value; whole numbers come back as ints, as they were sent."""
    return _ints(json_format.MessageToDict(v))


def _ints(obj: Any) -> Any:
    # protobuf's Value keeps every number as a double.
    if isinstance(obj, float) and obj.is_integer() and abs(obj) <= 2**53:
        return int(obj)
    if isinstance(obj, dict):
        return {k: _ints(x) for k, x in obj.items()}
    if isinstance(obj, list):
        return [_ints(x) for x in obj]
    return obj


def ts(us: int | None) -> timestamp_pb2.Timestamp | None:
    """Microseconds since the epoch as a Timestamp (None stays None)."""
    if us is None:
        return None
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
        run_at=ts(j.due_at),
        created_at=ts(j.created_at),
        updated_at=ts(j.updated_at),
        idempotency_key=j.idempotency_key,
        submitted_to=j.submitted_to,
        runs=[run_message(r) for r in j.runs],
    )
    if j.payload is not None:
        msg.payload.CopyFrom(value(j.payload))
    if j.runs:
        last = j.runs[-1]
        if last.result is not None:
            msg.result.CopyFrom(value(last.result))
        msg.error = last.error
    return msg


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
    )
