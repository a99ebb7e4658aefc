"""Checks of client input; each failure names the field as it is spelled on the wire."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from typing import Any

from ..commands import JobSpec
from ..errors import InvalidArgument
from ..handlers import Registry
from ..pb import ordo_pb2
from ..timeutil import parse_rfc3339
from .convert import from_value
from .options import job_options

MAX_NAME = 200
MAX_KEY = 200
MAX_DELAY_US = 100 * 365 * 86400 * 1_000_000
MIN_TIME_US = 0
MAX_TIME_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z, the end of protobuf's Timestamp


def job_id(text: str, field: str = "jobId") -> str:
    """A job id in canonical UUID form."""
    if not text:
        raise InvalidArgument(field, "is required")
    try:
        canonical = str(uuid.UUID(text))
    except ValueError:
        raise InvalidArgument(field, f"'{text[:80]}' is not a job id (a UUID)") from None
    if canonical != text.lower():
        raise InvalidArgument(field, f"'{text[:80]}' is not a job id in canonical UUID form")
    return canonical


def _finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def _run_at(req: ordo_pb2.SubmitJobRequest, now: int, prefix: str) -> int:
    """When the job is due: runAt, or now plus delay, or now."""
    if req.run_at and req.HasField("delay"):
        raise InvalidArgument(f"{prefix}runAt", "give runAt or delay, not both")
    if req.run_at:
        try:
            run_at = parse_rfc3339(req.run_at)
            if not MIN_TIME_US <= run_at <= MAX_TIME_US:
                raise ValueError("it must lie between years 1970 and 9999 (UTC)")
        except (ValueError, OverflowError) as e:
            raise InvalidArgument(
                f"{prefix}runAt", f"'{req.run_at[:80]}' is not an RFC 3339 time: {e}"
            ) from None
    elif req.HasField("delay"):
        delay = req.delay.ToMicroseconds()
        if delay < 0:
            raise InvalidArgument(f"{prefix}delay", "must not be negative")
        if delay > MAX_DELAY_US:
            raise InvalidArgument(f"{prefix}delay", "must be under 100 years")
        run_at = now + delay
    else:
        run_at = now
    return run_at


def job_spec(
    req: ordo_pb2.SubmitJobRequest,
    *,
    registry: Registry,
    now: int,
    max_payload_bytes: int,
    prefix: str = "",
) -> JobSpec:
    """A validated JobSpec with a fresh job id; InvalidArgument names the first bad field."""
    if not req.type:
        raise InvalidArgument(f"{prefix}type", "is required (e.g. 'echo')")
    payload = from_value(req.payload) if req.HasField("payload") else None
    if not _finite(payload):
        raise InvalidArgument(f"{prefix}payload", "numbers must be finite")
    payload_json = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    size = len(payload_json.encode())
    if size > max_payload_bytes:
        raise InvalidArgument(f"{prefix}payload", f"is {size} bytes; the limit is {max_payload_bytes}")
    try:
        registry.validate(req.type, payload)
    except InvalidArgument as e:
        raise InvalidArgument(prefix + e.field, e.reason) from None
    job_id = str(uuid.uuid4())
    options, first_nominal, first_fire = job_options(req, job_id=job_id, now=now, prefix=prefix)
    run_at = first_fire if first_fire is not None else _run_at(req, now, prefix)
    if len(req.name) > MAX_NAME:
        raise InvalidArgument(f"{prefix}name", f"is longer than {MAX_NAME} characters")
    if len(req.idempotency_key) > MAX_KEY:
        raise InvalidArgument(f"{prefix}idempotencyKey", f"is longer than {MAX_KEY} characters")
    # What the client asked for, not what it resolved to: a retry with the
    # same delay is the same job even though "now" moved on.
    options_json = json.dumps(options, sort_keys=True) if options else ""
    definition = [req.type, payload_json, req.run_at, req.delay.ToMicroseconds(), req.name, options_json]
    spec_hash = hashlib.sha256(json.dumps(definition).encode()).hexdigest()
    return JobSpec(
        job_id=job_id,
        type=req.type,
        payload=payload_json,
        run_at=run_at,
        name=req.name,
        idempotency_key=req.idempotency_key,
        spec_hash=spec_hash,
        options=options_json,
        first_nominal=first_nominal,
    )
