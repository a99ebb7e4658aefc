"""A SubmitJobRequest, checked field by field, as the JobSpec a SubmitJobs command carries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection

from ..commands import JobSpec
from ..errors import InvalidArgument
from ..handlers import Registry
from ..ids import new_job_id
from ..pb import ordo_pb2
from . import validate as v
from .options import job_options


def clock_timed(req: ordo_pb2.SubmitJobRequest) -> str:
    """What of the request the taking node's clock would time ('' if nothing): a cron schedule (its
    first fire time comes after now), ``delay``, or "now" when runAt is absent."""
    if req.cron:
        return "a cron schedule (its first fire time)"
    if req.run_at:
        return ""
    return "delay" if req.HasField("delay") else "a job without runAt (due now)"


def _run_at(req: ordo_pb2.SubmitJobRequest, now: int, prefix: str) -> int:
    """When the job is due: runAt, or now plus delay, or now."""
    if req.run_at and req.HasField("delay"):
        raise InvalidArgument(f"{prefix}runAt", "give runAt or delay, not both")
    run_at = v.time_field(req.run_at, f"{prefix}runAt")
    if run_at is not None:
        return run_at
    if req.HasField("delay"):
        return now + v.duration(req.delay, f"{prefix}delay", maximum=v.MAX_DELAY_US)
    return now


def job_spec(
    req: ordo_pb2.SubmitJobRequest,
    *,
    registry: Registry,
    now: int,
    max_payload_bytes: int,
    prefix: str = "",
    elsewhere: Collection[str] = (),
) -> JobSpec:
    """A validated JobSpec with a fresh job id; InvalidArgument names the first bad field.

    ``elsewhere``: the job types registered workers run, known beside ``registry``'s.
    """
    v.text(req.type, f"{prefix}type", v.MAX_TYPE, required=True)
    if req.payload_json:
        if req.HasField("payload"):
            raise InvalidArgument(f"{prefix}payloadJson", "give payload or payloadJson, not both")
        payload, payload_json = v.payload_text(req.payload_json, f"{prefix}payloadJson", max_payload_bytes)
    else:
        payload, payload_json = v.payload(
            req.payload if req.HasField("payload") else None, f"{prefix}payload", max_payload_bytes
        )
    try:
        registry.validate(req.type, payload, elsewhere)
    except InvalidArgument as e:
        raise InvalidArgument(prefix + e.field, e.reason) from None
    v.text(req.name, f"{prefix}name", v.MAX_NAME)
    v.text(req.idempotency_key, f"{prefix}idempotencyKey", v.MAX_KEY)
    job_id = new_job_id(now // 1000)
    options, first_nominal, first_fire = job_options(req, job_id=job_id, now=now, prefix=prefix)
    run_at = first_fire if first_fire is not None else _run_at(req, now, prefix)
    trailing = options.get("debounce", {}).get("mode") == "TRAILING"
    if trailing:
        # One run, a window after the burst's last submission: this one's, until another comes. Its
        # nominal time has it triggered at that time, not ahead, so a merge can still move it. Apply
        # counts the window from the command's time if that is later (joining.trailing_due).
        run_at = first_nominal = run_at + options["debounce"]["window"]
        if run_at > v.MAX_TIME_US:
            raise InvalidArgument(f"{prefix}debounce.window", "puts the run past the end of 9999 (see runAt)")
    options_json = json.dumps(options, sort_keys=True) if options else ""
    spec_hash = ""
    if req.idempotency_key:
        # Only a reused idempotency key is compared with it. What the client asked
        # for, not what it resolved to: a retry with the same delay is the same job
        # even though "now" moved on.
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
