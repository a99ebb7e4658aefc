"""Answers to "what happened at this time, and why?", and schedule previews."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ..queries import JobRow, OccurrenceRow, Queries
from ..schedule import MAX_PREVIEW, Schedule, fire_time, from_options, next_occurrence, nominal_after
from ..timeutil import format_us, to_datetime
from .validate import MAX_TIME_US

OUTCOMES = {
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "RUNNING": "is running",
    "ASSIGNED": "was assigned to an executor",
    "PENDING": "waits for an executor (or for its retry backoff)",
    "CANCELLED": "was cancelled",
    "LOST": "lost its executor",
}


def job_schedule(job: JobRow) -> Schedule | None:
    """The job's schedule, or None for a one-off job."""
    return from_options(job.options, job.job_id) if job.options.get("cron") else None


def local(s: Schedule | None, us: int) -> str:
    """A time as the schedule's wall clock (UTC for a one-off job, or past the end of 9999 there)."""
    zone = ZoneInfo(s.timezone) if s is not None else ZoneInfo("UTC")
    try:
        return to_datetime(us).astimezone(zone).isoformat(timespec="seconds")
    except OverflowError:
        return to_datetime(us).isoformat(timespec="seconds")


def _after(s: Schedule, us: int) -> int | None:
    """The schedule's first nominal time after ``us``; None also past the end of the calendar (9999)."""
    try:
        nominal = nominal_after(s, us)
    except (ValueError, OverflowError):  # croniter's calendar ends
        return None
    # An interval's grid is plain arithmetic and runs on past 9999.
    return nominal if nominal is not None and nominal <= MAX_TIME_US else None


def describe(occ: OccurrenceRow, s: Schedule | None) -> str:
    """One occurrence in a sentence."""
    when = local(s, occ.nominal)
    if occ.fate == "TRIGGERED":
        outcome = OUTCOMES.get(occ.outcome, occ.outcome.lower() or "has no run")
        extra = f" ({occ.reason})" if occ.reason else ""
        return (
            f"{when} was triggered at {format_us(occ.decided_at)}{extra}; run {occ.run_id} {outcome}"
            f" after {occ.attempts} attempt(s)."
        )
    names = {
        "MISSED": "was not run (missed)",
        "PAUSED": "was not run because the job was paused",
        "SKIPPED_OVERLAP": "was skipped by the overlap policy",
        "BUFFERED": "waits for the previous run to end",
        "CANCELLED": "was not run: the job was cancelled",
    }
    return f"{when} {names.get(occ.fate, occ.fate)}: {occ.reason}."


async def explain(queries: Queries, job: JobRow, at: int, now: int) -> tuple[OccurrenceRow | None, str]:
    """The occurrence that covers ``at`` and a sentence about it (or why there is none)."""
    s = job_schedule(job)
    occ = await queries.occurrence_at(job.job_id, at)
    if occ is not None:
        following = _after(s, occ.nominal) if s is not None else None
        # An occurrence covers the times up to the next one; the last one, only its own time.
        if (following is None and (s is None or at == occ.nominal)) or (
            following is not None and at < following
        ):
            waits = await queries.run_waits(job.job_id, occ.run_id) if occ.run_id else []
            held = f" Its run was held back: {'; '.join(waits)}." if waits else ""
            return occ, describe(occ, s) + held
    if at < job.created_at:
        return (
            None,
            f"The job did not exist yet at {local(s, at)}; it was created at {format_us(job.created_at)}.",
        )
    if s is None:
        if job.state in ("SCHEDULED",):
            return None, f"The job is due at {format_us(job.run_at)}; nothing has happened yet."
        return (
            None,
            f"The job is a one-off job due at {format_us(job.run_at)}; {local(s, at)} is not its time.",
        )
    previous = occ.nominal if occ is not None else None
    nxt = _after(s, at - 1)
    if nxt is not None and nxt == at and at > now:
        return (
            None,
            f"{local(s, at)} is in the future: it will fire at {format_us(at)} unless paused or cancelled.",
        )
    ended = schedule_ended(s, job, at, previous)
    if ended and (nxt is None or nxt == at):
        return None, f"{local(s, at)} is after the end of '{s.expression}': {ended}."
    if nxt is not None and nxt == at:
        return None, (
            f"{local(s, at)} is a fire time of '{s.expression}' but no occurrence is recorded for it: the"
            " leader has not reached it yet, or history retention removed it."
        )
    before = f"the one before is {local(s, previous)}" if previous is not None else "there is none before it"
    after = f"the next is {local(s, nxt)}" if nxt is not None else "there is none after it"
    return None, (
        f"{local(s, at)} is not a fire time of '{s.expression}' in {s.timezone}: {before}, {after}."
    )


def schedule_ended(s: Schedule, job: JobRow, at: int, previous: int | None) -> str:
    """Why the schedule fires no more at ``at`` (its maxRuns used up, past its endAt), or ''."""
    last = f"; its last occurrence was {local(s, previous)}" if previous is not None else ""
    if s.max_runs > 0 and job.occurrences >= s.max_runs and (previous is None or at > previous):
        return f"the job had reached its maxRuns ({s.max_runs}) before it{last}"
    if s.end_at is not None and at > s.end_at:
        return f"it is after the schedule's endAt ({local(s, s.end_at)}){last}"
    return ""


def preview_times(s: Schedule, after: int, count: int) -> list[tuple[int, int, str]]:
    """The next ``count`` (at most 1000) (nominal, fire time, wall-clock time) of a fresh job's schedule.

    Fewer when the schedule ends, or when the calendar does (9999-12-31T23:59:59Z).
    """
    zone = ZoneInfo(s.timezone)
    times: list[tuple[int, int, str]] = []
    for fired in range(min(count, MAX_PREVIEW)):
        try:
            nominal = next_occurrence(s, after, fired)
            if nominal is None:
                break
            fire = fire_time(s, nominal)
            wall = datetime.fromtimestamp(nominal / 1e6, zone).isoformat(timespec="seconds")
        except (ValueError, OverflowError):
            break
        if fire > MAX_TIME_US:
            break
        times.append((nominal, fire, wall))
        after = nominal
    return times
