"""Answers to "what happened at this time, and why?", and schedule previews."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from ..queries import JobRow, OccurrenceRow, Queries
from ..schedule import (
    MAX_PREVIEW,
    Schedule,
    excluded_by,
    fire_time,
    from_options,
    next_occurrence,
    nominal_after,
)
from ..statemachine.joining import label, spec_of
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
# Excluded dates a sentence lists before it says how many more there are.
SHOWN_DATES = 5
# Steps of the walk to the time before an explained one (explain._before).
MAX_WALK = 10_000


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


def whole(s: Schedule) -> str:
    """The whole schedule in words: every spec (cron, then moreCron), its time zone, its exclusions."""
    text = f"{' or '.join(repr(e) for e in s.expressions)} in {s.timezone}"
    excluded = []
    if s.exclude_dates:
        dates = sorted(s.exclude_dates)
        shown = ", ".join(d.isoformat() for d in dates[:SHOWN_DATES])
        rest = f" and {len(dates) - SHOWN_DATES} more" if len(dates) > SHOWN_DATES else ""
        excluded.append(f"excludeDates {shown}{rest}")
    if s.exclude_cron:
        excluded.append("excludeCron " + ", ".join(repr(x) for x in s.exclude_cron))
    return text + (f", except {' and '.join(excluded)}" if excluded else "")


def naming(s: Schedule, at: int) -> tuple[str, ...]:
    """The specs naming ``at`` as a nominal time (within startAt and endAt), whatever the exclusions say."""
    bare = replace(s, more=(), exclude_dates=frozenset(), exclude_cron=())
    return tuple(e for e in s.expressions if _after(replace(bare, expression=e), at - 1) == at)


def fire_time_of(s: Schedule, at: int) -> str:
    """``at`` as a fire time of the whole schedule, naming the spec(s) it comes from when there are more."""
    named = naming(s, at) if s.more else ()
    by = f" (named by {' and '.join(repr(e) for e in named)})" if named else ""
    return f"{local(s, at)} is a fire time of {whole(s)}{by}"


def exclusion(s: Schedule, at: int) -> str:
    """Why ``at`` is excluded ("2030-01-01 is excluded by excludeDates"), or '' when it is not."""
    try:
        day, crons = excluded_by(s, at)
    except OverflowError:  # a wall clock past the end of 9999
        return ""
    reasons = [f"{day.isoformat()} is excluded by excludeDates"] if day is not None else []
    reasons += [f"excludeCron {x!r} excludes it" for x in crons]
    return " and ".join(reasons)


def excluded(s: Schedule, at: int, why: str) -> str:
    """A sentence (without its full stop) about an excluded time: a time of a spec that does not fire, or
    a time of none of them that an exclusion names as well."""
    named = naming(s, at)
    if named:
        return (
            f"{local(s, at)} is a time of {' and '.join(repr(e) for e in named)} but does not fire: {why}"
            f" (the schedule is {whole(s)})"
        )
    return f"{local(s, at)} is not a fire time: no spec names it, and {why} (the schedule is {whole(s)})"


def _before(s: Schedule, at: int, floor: int) -> int | None:
    """The schedule's last nominal time before ``at`` and not before ``floor`` (the job's first), or None.

    Schedules have no way back, so windows before ``at`` widen (1 s, 2 s, 4 s...) until one holds a
    time; the latest of that window is walked to, forward (at most MAX_WALK steps).
    """
    width = 1_000_000
    while True:
        start = max(floor, at - width)
        found = _after(s, start - 1)
        if found is not None and found < at:
            for _ in range(MAX_WALK):
                following = _after(s, found)
                if following is None or following >= at:
                    break
                found = following
            return found
        if start == floor:
            return None
        width *= 2


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
            text = describe(occ, s) + held + await joined(queries, job)
            why = exclusion(s, at) if s is not None and at != occ.nominal else ""
            if s is not None and why:
                # The time asked about lies between this occurrence and the next because it is excluded.
                return occ, f"{excluded(s, at, why)}. The occurrence before it: {text}"
            return occ, text
    if at < job.created_at:
        return (
            None,
            f"The job did not exist yet at {local(s, at)}; it was created at {format_us(job.created_at)}.",
        )
    if s is None:
        if job.state in ("SCHEDULED",):
            text = f"The job is due at {format_us(job.run_at)}; nothing has happened yet."
            return None, text + await joined(queries, job)
        return (
            None,
            f"The job is a one-off job due at {format_us(job.run_at)}; {local(s, at)} is not its time.",
        )
    previous = occ.nominal if occ is not None else None
    nxt = _after(s, at - 1)
    if nxt is not None and nxt == at and at > now:
        return (
            None,
            f"{fire_time_of(s, at)}, in the future: it will fire at {format_us(at)} unless paused or"
            " cancelled.",
        )
    ended = schedule_ended(s, job, at, previous)
    if ended and (nxt is None or nxt == at):
        return None, f"{local(s, at)} is after the end of {whole(s)}: {ended}."
    if nxt is not None and nxt == at:
        return None, (
            f"{fire_time_of(s, at)} but no occurrence is recorded for it: the leader has not reached it"
            " yet, or history retention removed it."
        )
    # The schedule's time before it, not the last one recorded: a time in the future has none recorded.
    earlier = _before(s, at, job.run_at - s.jitter)
    before = f"the one before is {local(s, earlier)}" if earlier is not None else "there is none before it"
    after = f"the next is {local(s, nxt)}" if nxt is not None else "there is none after it"
    why = exclusion(s, at)
    if why:
        return None, f"{excluded(s, at, why)}; {before}, {after}."
    return None, f"{local(s, at)} is not a fire time of {whole(s)}: {before}, {after}."


async def joined(queries: Queries, job: JobRow) -> str:
    """A sentence on the submissions that joined a job with a debounce or singleton key, or ''."""
    keyed = spec_of(job.options)
    if keyed is None:
        return ""
    count, last = await queries.joins(job.job_id)
    if not count:
        return ""
    kind, spec = keyed
    what = {"debounce": "were merged into it", "singleton": "joined it"}[kind]
    moved = " (each moved its due time)" if kind == "debounce" and spec["mode"] == "TRAILING" else ""
    last_at = f"; the last at {format_us(last)}" if last is not None else ""
    return f" {count} other submission(s) {what} under {label(kind, spec)}{moved}{last_at}."


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
