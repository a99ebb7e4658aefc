"""When jobs fire: cron and interval schedules, jitter and catch-up (backoff, overlap: statemachine/policy).

Everything here is arithmetic on the times it is given (integer microseconds since the epoch, UTC). Nothing
reads the clock or draws random numbers, so every node computes the same answer from the same inputs: the
leader writes the results into Raft commands, and the API uses the same functions to validate and preview.

Expressions (ASCII only; the grammar is in the README and read by cron.py, which refuses the rest)
    * Five cron fields: ``minute hour day-of-month month day-of-week`` (``*/5 * * * *``). When both day
      fields are restricted (their text does not begin with ``*``; ``?`` is ``*``) a day matching either
      one fires, as in Vixie cron; otherwise a day must match both.
    * Six cron fields put the SECONDS FIRST, as Quartz, Spring and Dkron do: ``*/10 * * * * *`` is every
      10 s and ``0 30 9 * * *`` is 09:30:00. Seven fields (a year) are refused.
    * Macros: ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.
    * Intervals: ``every 30s``, ``every 1h30m``, ``every 500ms`` (``@every ...`` too), at least 100 ms.
      Their grid is ``anchor + k * interval`` with the anchor at ``start_at``, or at the Unix epoch.
    * Nothing is random: ``R`` and ``H`` fields are refused. Jitter is a hash of the job id and the
      nominal time, and may not be longer than the shortest gap between two nominal times (for a cron
      expression: between two consecutive times of day it names), so that fire times strictly increase.

More than one spec, and exclusions
    A schedule may have more expressions (``more``): its next nominal time is the earliest next time of
    any of them (a time two of them name fires once). A time is excluded when its wall-clock date is one
    of ``exclude_dates`` or an ``exclude_cron`` expression names it (five fields name whole minutes, so
    ``* * * * sat,sun`` excludes weekends); the search moves on to the next time of the specs.

Time zones and daylight saving time
    Cron fields are matched against the wall clock of the schedule's IANA time zone. A wall time that
    does not exist (the spring-forward gap) fires once, at the first instant after the gap; several gap
    times of one schedule collapse into that one fire. A wall time that occurs twice (the fall-back fold)
    fires at its first occurrence only, unless the hour field is every hour (``*``, ``*/1``, ``0-23``), which
    fires at every real hour, in both passes, as Vixie cron does for wildcard jobs. Fire times are thus
    strictly increasing and never repeat an instant.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ordo_node import cron
from ordo_node.errors import InvalidArgument
from ordo_node.statemachine.policy import hash64
from ordo_node.timeutil import format_duration, from_datetime, to_datetime

MILLISECOND = 1_000
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

MIN_INTERVAL = 100 * MILLISECOND
MAX_JITTER = DAY
MAX_PREVIEW = 1000
# Excluded candidates one search may pass over before it gives up (InvalidArgument). An exclusion that names
# whole minutes, hours or days is passed over a unit at a time, so only an exclusion leaving no time for
# years comes near it (a submission's first fire time is searched, and refused if there is none).
MAX_EXCLUDED = 10_000
# Longer than any daylight-saving fold in the tz database (Antarctica/Troll's 2 h is the longest), so a
# fold that matters to a search always has its transition within this distance of the search start.
_FOLD_REACH = 3 * HOUR

CATCH_UP_POLICIES = ("SKIP", "ONE", "ALL")

_UNITS = {"ms": MILLISECOND, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}
# ASCII only: without it, \d takes full-width digits (U+FF10-FF19) and int() reads them as 0-9.
_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d))+", re.ASCII)
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)", re.ASCII)
_INTERVAL = re.compile(r"@?every[ \t]+(.*)", re.IGNORECASE | re.DOTALL | re.ASCII)
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


@dataclass(frozen=True)
class Schedule:
    """A validated schedule; build it with :func:`parse_schedule`.

    ``start_at``/``end_at`` bound the nominal times (inclusive), ``max_runs`` (0: unlimited) is enforced
    by :func:`next_occurrence` against the caller's count, and ``jitter`` delays each fire by a
    deterministic offset in ``[0, jitter)`` seeded by ``key`` (the job id), short of the next nominal
    time (see :func:`fire_time`).
    """

    expression: str
    timezone: str = "UTC"
    start_at: int | None = None
    end_at: int | None = None
    max_runs: int = 0
    jitter: int = 0
    key: str = ""
    more: tuple[str, ...] = ()  # further expressions: the earliest next time of all of them fires
    exclude_dates: frozenset[date] = frozenset()  # wall-clock dates in ``timezone`` that never fire
    exclude_cron: tuple[str, ...] = ()  # expressions naming wall-clock times that never fire

    @property
    def expressions(self) -> tuple[str, ...]:
        """Every spec of the schedule, the first one first."""
        return (self.expression, *self.more)


@dataclass(frozen=True)
class _Compiled:
    interval: int  # us; 0 for a cron expression
    cron: cron.CronExpr | None  # None for an interval
    both_fold_passes: bool  # the hour field is every hour: fire in both passes of a fall-back fold
    shortest_gap: int  # us: the interval, or the shortest gap between two times of day the expression names


def parse_duration(text: str, field: str) -> int:
    """``30s``, ``5m``, ``1h30m``, ``500ms``, ``2h``, ``1d`` to microseconds (> 0).

    Units (``ms s m h d``) may be combined; anything else raises ``InvalidArgument(field, ...)``.
    """
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise InvalidArgument(field, f"{text!r} is not a duration like 30s, 5m, 1h30m or 500ms")
    total = sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(compact))
    if total <= 0:
        raise InvalidArgument(field, f"{text!r} must be longer than zero")
    return total


@lru_cache(maxsize=1024)
def _compile(expression: str) -> _Compiled:
    """Check an expression once and keep what the searches need; ValueError carries the reason."""
    odd = _NOT_ASCII.search(expression)
    if odd:
        char = odd.group()
        raise ValueError(f"{expression!r}: {char!r} (U+{ord(char):04X}) is not allowed; write it in ASCII")
    interval = _INTERVAL.fullmatch(expression)
    if interval:
        try:
            every = parse_duration(interval.group(1), "cron")
        except InvalidArgument as e:
            raise ValueError(f"{expression!r} is not a valid interval: {e.reason}") from None
        if every < MIN_INTERVAL:
            raise ValueError(f"{expression!r}: intervals must be at least 100ms")
        return _Compiled(every, None, False, every)
    expr = cron.parse(expression)
    return _Compiled(0, expr, expr.every_hour, expr.shortest_gap() * SECOND)


@lru_cache(maxsize=256)
def _exclusion(expression: str) -> cron.CronExpr:
    """An exclusion: a cron expression, five fields naming every second of their minutes."""
    if _NOT_ASCII.search(expression) or _INTERVAL.fullmatch(expression):
        _compile(expression)  # the same message for a character outside ASCII
        raise ValueError(f"{expression!r}: an exclusion is a cron expression or a macro, not an interval")
    fields = cron.MACROS.get(expression.lower(), expression).split()
    return cron.parse(" ".join(["*", *fields]) if len(fields) == 5 else expression)


def _date(text: str) -> date:
    """A calendar date written YYYY-MM-DD; ValueError otherwise."""
    if not _DATE.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date of the calendar") from None


def _zone(name: str) -> ZoneInfo:
    """The IANA zone; ValueError with the reason if there is none of that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a directory of the tz database ("America") or a name too long for a file
        raise ValueError(f"{name[:80]!r} is not an IANA time zone") from None


def parse_schedule(
    expression: str,
    *,
    timezone: str = "UTC",
    start_at: int | None = None,
    end_at: int | None = None,
    max_runs: int = 0,
    jitter: int = 0,
    key: str = "",
    prefix: str = "",
    more: Sequence[str] = (),
    exclude_dates: Sequence[str] = (),
    exclude_cron: Sequence[str] = (),
) -> Schedule:
    """Validate the parts of a schedule and build it; InvalidArgument names the field (after ``prefix``).

    ``more``, ``exclude_dates`` and ``exclude_cron`` are named in errors as ``moreCron[i]``,
    ``excludeDates[i]`` and ``excludeCron[i]``.
    """
    expression = expression.strip()
    more = tuple(m.strip() for m in more)
    for field, text in (("cron", expression), *((f"moreCron[{i}]", m) for i, m in enumerate(more))):
        try:
            _compile(text)
        except ValueError as e:
            raise InvalidArgument(prefix + field, str(e)) from None
    dates: set[date] = set()
    for i, text in enumerate(exclude_dates):
        try:
            dates.add(_date(text.strip()))
        except ValueError as e:
            raise InvalidArgument(f"{prefix}excludeDates[{i}]", str(e)) from None
    exclusions = tuple(x.strip() for x in exclude_cron)
    for i, text in enumerate(exclusions):
        try:
            _exclusion(text)
        except ValueError as e:
            raise InvalidArgument(f"{prefix}excludeCron[{i}]", str(e)) from None
    try:
        _zone(timezone)
    except ValueError as e:
        raise InvalidArgument(prefix + "timezone", str(e)) from None
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise InvalidArgument(prefix + "endAt", "must be later than startAt")
    if max_runs < 0:
        raise InvalidArgument(prefix + "maxRuns", "must not be negative (0 means unlimited)")
    if not 0 <= jitter <= MAX_JITTER:
        raise InvalidArgument(prefix + "jitter", "must be between 0 and 1 day")
    gap, shortest = min((_compile(e).shortest_gap, e) for e in (expression, *more))
    if jitter > gap:
        # A longer jitter could fire an occurrence after the next one.
        raise InvalidArgument(
            prefix + "jitter",
            f"must not be longer than {format_duration(gap)}, the shortest time between two nominal "
            f"times of {shortest!r}",
        )
    return Schedule(
        expression, timezone, start_at, end_at, max_runs, jitter, key, more, frozenset(dates), exclusions
    )


def nominal_after(s: Schedule, after: int) -> int | None:
    """The first nominal fire time strictly after ``after``, within ``start_at``/``end_at``; None if none.

    The earliest next time of the schedule's specs that no exclusion names; ValueError when the calendar
    ends, InvalidArgument naming the exclusions when they pass over MAX_EXCLUDED times in a row (the
    timekeeper pauses such a job, saying why, as it does any it cannot read).
    """
    # A Schedule built without parse_schedule may still be invalid; say which part is.
    try:
        specs = [_compile(e) for e in s.expressions]
    except ValueError as e:
        raise InvalidArgument("cron", str(e)) from None
    try:
        zone = _zone(s.timezone)
    except ValueError as e:
        raise InvalidArgument("timezone", str(e)) from None
    if s.start_at is not None:
        after = max(after, s.start_at - 1)
    for _ in range(MAX_EXCLUDED):
        nominal = min(_spec_after(spec, zone, after, s.start_at or 0) for spec in specs)
        if s.end_at is not None and nominal > s.end_at:
            return None
        excluded_to = _excluded_until(s, zone, nominal)
        if excluded_to is None:
            return nominal
        after = max(nominal, excluded_to)
    raise InvalidArgument(
        "excludeCron" if s.exclude_cron else "excludeDates",
        f"the exclusions pass over {MAX_EXCLUDED} fire times in a row after {to_datetime(after):%Y-%m-%d}",
    )


def _spec_after(spec: _Compiled, zone: ZoneInfo, after: int, anchor: int) -> int:
    """One spec's first nominal time strictly after ``after`` (an interval's grid starts at ``anchor``)."""
    if spec.cron is None:
        return anchor + ((after - anchor) // spec.interval + 1) * spec.interval
    # Every accepted expression has a next time until the calendar ends (ValueError then).
    return _cron_after(spec.cron, zone, after, both_passes=spec.both_fold_passes)


def _excluded_until(s: Schedule, zone: ZoneInfo, nominal: int) -> int | None:
    """None if ``nominal`` is not excluded; else an instant (>= it) up to which every time is excluded.

    An excluded date, or an exclusion naming every second of its minutes (hours, days), passes over the
    rest of that wall-clock day (hour, minute), so a search does not visit each time of it.
    """
    if not s.exclude_dates and not s.exclude_cron:
        return None
    wall = nominal + _offset(zone, nominal)
    local = to_datetime(wall).replace(tzinfo=None)
    unit = 0
    if local.date() in s.exclude_dates:
        unit = DAY
    for text in s.exclude_cron:
        expr = _exclusion(text)
        if expr.matches(local):
            unit = max(unit, expr.whole_unit() * SECOND)
    if not unit:
        return None
    if unit == SECOND:
        return nominal
    # The unit ends at a wall time; the instant just before its first occurrence (past a gap, or the
    # first pass of a fold) is still inside it, whatever the clock did meanwhile.
    return max(nominal, _first_instant(zone, (wall // unit + 1) * unit) - 1)


def excluded_by(s: Schedule, us: int) -> tuple[date | None, tuple[str, ...]]:
    """What excludes instant ``us``, as :func:`nominal_after` judges it: its wall-clock date if that is
    one of ``exclude_dates`` (else None), and the ``exclude_cron`` expressions naming its wall-clock time.

    ``(None, ())`` when nothing excludes it. For explanations; the searches use ``_excluded_until``.
    """
    if not s.exclude_dates and not s.exclude_cron:
        return None, ()
    zone = _zone(s.timezone)
    local = to_datetime(us + _offset(zone, us)).replace(tzinfo=None)
    day = local.date() if local.date() in s.exclude_dates else None
    return day, tuple(text for text in s.exclude_cron if _exclusion(text).matches(local))


def _offset(zone: ZoneInfo, us: int, *, fold0: bool = False) -> int:
    """The zone's UTC offset (us) at instant ``us``; with ``fold0``, that of its wall time's first pass."""
    local = to_datetime(us).astimezone(zone)
    delta = (local.replace(fold=0) if fold0 else local).utcoffset()
    assert delta is not None  # ZoneInfo always knows its offset
    return delta // timedelta(microseconds=1)


def _transition(zone: ZoneInfo, lo: int, hi: int) -> int:
    """The first instant in (lo, hi] whose offset differs from that at ``lo`` (one change in between)."""
    base = _offset(zone, lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, mid) == base:
            lo = mid
        else:
            hi = mid
    return hi


def _next_wall(expr: cron.CronExpr, wall: int) -> int:
    """The first wall time ``expr`` names strictly after ``wall`` (both in us, read as if UTC)."""
    return from_datetime(expr.next_after(to_datetime(wall)))


def _first_instant(zone: ZoneInfo, wall: int) -> int:
    """The instant a wall time first occurs; a wall time in a gap maps to the end of the gap."""
    naive = to_datetime(wall).replace(tzinfo=None)
    first = from_datetime(naive.replace(tzinfo=zone))  # fold=0: the earlier of two, or past a gap
    if first + _offset(zone, first) == wall:
        return first
    # In a gap fold=0 reads the wall with the pre-gap offset (landing past the gap) and fold=1 with the
    # post-gap one (landing before it), so the transition lies between the two.
    return _transition(zone, from_datetime(naive.replace(tzinfo=zone, fold=1)), first)


def _cron_after(expr: cron.CronExpr, zone: ZoneInfo, after: int, *, both_passes: bool) -> int:
    """The first fire instant of a cron expression strictly after ``after``."""
    # First passes: wall time -> instant is non-decreasing, so walk walls until one lands past `after`.
    wall = after + _offset(zone, after)
    fold = _offset(zone, after, fold0=True) - _offset(zone, after)
    if fold:
        # `after` is in a fold's second pass, whose walls' first passes are all behind it: start at the
        # wall where the fold ends rather than walking through it (a per-second job would take 3600 steps).
        change = _transition(zone, after - fold, after)
        wall = change + _offset(zone, change - 1) - 1
    while True:
        wall = _next_wall(expr, wall)
        best = _first_instant(zone, wall)
        if best > after:
            break
    if both_passes:
        second = _second_pass_after(expr, zone, after)
        if second is not None and second < best:
            best = second
    return best


def _second_pass_after(expr: cron.CronExpr, zone: ZoneInfo, after: int) -> int | None:
    """The first second-pass fire strictly after ``after`` of a fold around ``after``; None if none."""
    lo, hi = after - _FOLD_REACH, after + _FOLD_REACH
    if _offset(zone, hi) >= _offset(zone, lo):
        return None  # the clock does not go back near `after`
    change = _transition(zone, lo, hi)
    before, post = _offset(zone, change - 1), _offset(zone, change)
    # The second pass runs from `change` until its wall clock reaches the wall where the first pass ended.
    wall = _next_wall(expr, max(after, change - 1) + post)
    if wall >= change + before:
        return None
    instant = wall - post
    return instant if instant > after else None


def fire_time(s: Schedule, nominal: int) -> int:
    """``nominal`` plus the job's deterministic jitter offset in ``[0, s.jitter)``, before the next nominal.

    parse_schedule keeps the jitter within the shortest gap between nominal times, but where a clock
    goes forward a cron expression's real gap can be shorter (with a 30-minute gap, ``*/20`` fires at
    01:40, then at 02:30 for 02:00 and 02:20, then at 02:40): there the offset stops short of the next
    nominal time, so that fire times still strictly increase.
    """
    if s.jitter <= 0:
        return nominal
    offset = hash64(f"{s.key}:{nominal}") % s.jitter
    if offset and (_compile(s.expression).cron is not None or s.more):
        try:
            following = nominal_after(s, nominal)
        except (ValueError, OverflowError):  # the calendar ends
            following = None
        if following is not None:
            offset = min(offset, following - nominal - 1)
    return nominal + offset


def next_occurrence(s: Schedule, after: int, fired: int) -> int | None:
    """The next nominal time after ``after``, or None once ``fired`` runs have used up ``max_runs``."""
    if s.max_runs > 0 and fired >= s.max_runs:
        return None
    return nominal_after(s, after)


def preview(s: Schedule, after: int, count: int) -> list[tuple[int, int]]:
    """The next ``count`` (at most 1000) ``(nominal, fire_time)`` pairs after ``after``, for a fresh job."""
    pairs: list[tuple[int, int]] = []
    for fired in range(min(count, MAX_PREVIEW)):
        nominal = next_occurrence(s, after, fired)
        if nominal is None:
            break
        pairs.append((nominal, fire_time(s, nominal)))
        after = nominal
    return pairs


def catch_up(policy: str, missed: list[int], now: int, window: int) -> tuple[list[int], list[int]]:
    """Split ``missed`` nominal times (ascending, all <= ``now``) into ``(to_run, to_mark_missed)``.

    Times older than ``now - window`` (``window`` 0: no limit) are always marked missed; of the others
    ``SKIP`` runs none, ``ONE`` runs the latest and ``ALL`` runs all.
    """
    if policy not in CATCH_UP_POLICIES:
        raise ValueError(f"unknown catch-up policy {policy!r}")
    if window < 0:
        raise ValueError("window must not be negative")
    fresh = bisect_left(missed, now - window) if window > 0 else 0
    # What runs is always a suffix of `missed`, so the split is a single cut.
    cut = {"SKIP": len(missed), "ONE": max(fresh, len(missed) - 1), "ALL": fresh}[policy]
    return missed[cut:], missed[:cut]


def from_options(options: dict[str, Any], key: str) -> Schedule:
    """The schedule stored in a job's options (see api/options.py); ``key`` seeds its jitter."""
    return parse_schedule(
        options["cron"],
        timezone=options.get("timezone", "UTC"),
        start_at=options.get("start_at"),
        end_at=options.get("end_at"),
        max_runs=options.get("max_runs", 0),
        jitter=options.get("jitter", 0),
        key=key,
        more=options.get("more_cron", ()),
        exclude_dates=options.get("exclude_dates", ()),
        exclude_cron=options.get("exclude_cron", ()),
    )
