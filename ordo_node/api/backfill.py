"""BackfillSchedule: past occurrences of a recurring job run again, chosen by their stored fates.

The node that takes the request lists the nominal times of the range (schedule
arithmetic never runs in apply), reads their stored fates, and keeps those that
``statemachine.backfill.chosen`` picks: a dry run answers them; otherwise one
BackfillOccurrences command carries them and apply checks each fate again, so
an occurrence decided meanwhile is not run twice.
"""

from __future__ import annotations

from .. import commands as c
from ..errors import FailedPrecondition, InvalidArgument
from ..pb import ordo_pb2
from ..queries import JobRow, Queries
from ..schedule import fire_time, from_options, nominal_after
from ..statemachine.backfill import chosen
from ..wire import ts
from . import validate as v

MAX_BACKFILL = 10_000  # occurrences in one backfill's range


def backfill_range(job: JobRow, since: int, until: int) -> list[tuple[int, int]]:
    """(nominal, fire time) of the job's schedule in [since, until] that fire from its first fire time
    (``run_at``: none before the job existed) and before its next one (those are live: the timekeeper's)."""
    schedule = from_options(job.options, job.job_id)
    out: list[tuple[int, int]] = []
    # A nominal time fires less than its jitter after it: none before this one fires at run_at or later.
    after = max(since - 1, job.run_at - schedule.jitter - 1)
    while True:
        nominal = nominal_after(schedule, after)
        if nominal is None or nominal > until:
            return out
        fire = fire_time(schedule, nominal)
        after = nominal
        if fire < job.run_at:
            continue
        if job.next_fire is not None and fire >= job.next_fire:
            return out
        if len(out) == MAX_BACKFILL:
            raise InvalidArgument(
                "to", f"the range holds more than {MAX_BACKFILL} occurrences; backfill it in parts"
            )
        out.append((nominal, fire))


def backfill_command(
    request: ordo_pb2.BackfillScheduleRequest, job: JobRow, now: int
) -> tuple[str, int, tuple[int, int]]:
    """(reprocess, max concurrent, (from, to)) of a request, checked."""
    if not job.options.get("cron"):
        raise FailedPrecondition(f"job {job.job_id} is not recurring; nothing to backfill")
    if job.state == "CANCELLED":  # as apply refuses it: a dry run says so too, not what would run
        raise FailedPrecondition(f"job {job.job_id} is CANCELLED")
    since = v.time_field(getattr(request, "from"), "from")
    until = v.time_field(request.to, "to")
    if since is None:
        raise InvalidArgument("from", "is required (RFC 3339)")
    if until is None:
        raise InvalidArgument("to", "is required (RFC 3339)")
    if since > until:
        raise InvalidArgument("to", "is before from")
    reprocess = (
        v.enum(ordo_pb2.Reprocess, request.reprocess, "reprocess").removeprefix("REPROCESS_") or "MISSING"
    )
    overlap = v.enum(ordo_pb2.Overlap, request.overlap, "overlap").removeprefix("OVERLAP_") or "ALLOW"
    if overlap not in ("ALLOW", "SKIP"):
        raise InvalidArgument("overlap", "a backfill takes OVERLAP_ALLOW or OVERLAP_SKIP")
    limit = v.count(request.max_concurrent, "maxConcurrent", v.MAX_CONCURRENCY_LIMIT)
    if overlap == "SKIP":
        limit = 1
    return reprocess, limit, (since, min(until, now))


async def plan(
    queries: Queries, job: JobRow, reprocess: str, since: int, until: int
) -> list[tuple[int, int, str | None]]:
    """(nominal, fire time, stored fate or None) of the occurrences the backfill would run."""
    times = backfill_range(job, since, until)
    if not times:
        return []
    fates = await queries.fates_between(job.job_id, times[0][0], times[-1][0])
    out = []
    for nominal, fire in times:
        fate, outcome = fates.get(nominal, (None, ""))
        if chosen(reprocess, fate, outcome):
            out.append((nominal, fire, fate))
    return out


def response(
    planned: list[tuple[int, int, str | None]], runs: dict[int, str], dry_run: bool
) -> ordo_pb2.BackfillScheduleResponse:
    """The answer: each occurrence chosen (and, unless a dry run, that got a run)."""
    reply = ordo_pb2.BackfillScheduleResponse(dry_run=dry_run)
    for nominal, fire, fate in planned:
        if not dry_run and nominal not in runs:
            continue  # decided meanwhile: apply did not choose it any more
        reply.occurrences.append(
            ordo_pb2.BackfilledOccurrence(
                nominal_time=ts(nominal),
                fire_time=ts(fire),
                previous_fate=f"FATE_{fate}" if fate else "FATE_UNSPECIFIED",
                run_id=runs.get(nominal, ""),
            )
        )
    return reply


def command(
    request_id: str,
    at: int,
    node: str,
    job: JobRow,
    reprocess: str,
    limit: int,
    planned: list[tuple[int, int, str | None]],
) -> c.BackfillOccurrences:
    """The command that runs the planned occurrences."""
    return c.BackfillOccurrences(
        request_id=request_id,
        at=at,
        node=node,
        job_id=job.job_id,
        reprocess=reprocess,
        occurrences=tuple(c.Occurrence(n, f, "backfill") for n, f, _ in planned),
        max_concurrent=limit,
    )
