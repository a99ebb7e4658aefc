"""The cron grammar ordo_node accepts, and the search for the wall-clock times an expression names.

The grammar is written out in the README (``cron`` under "Recurring jobs"); this module is the one place
that reads it. Everything outside the grammar is refused with a ValueError naming the field and the part,
before any search runs, and every accepted expression is matched here, by rules stated once:

* A list is the union of its items; ``a-b`` with ``a == b`` is the one value ``a``; ``a-b/n`` steps from
  ``a``; ``a/n`` runs to the end of the field; a range may not run backwards.
* Day of month and day of week are each *restricted* unless their text begins with ``*`` or is ``?``
  (Vixie cron's rule). When both are restricted a day matching either fires; otherwise a day must match
  both. ``L``, ``W`` and ``#`` are items of their field like any other and take part in the same rule.

Times are wall-clock readings: this module knows nothing of time zones (schedule.py maps wall times to
instants, and owns the daylight-saving rules).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import MAXYEAR, datetime, timedelta
from itertools import pairwise

from ordo_node.errors import InternalError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# The Gregorian calendar, weekdays included, repeats every 400 years (146,097 days is 20,871 weeks):
# an expression that matches at all matches within any 400 years.
_CYCLE_MONTHS = 400 * 12
# Every (length, weekday of the 1st) a month can have, by month: each occurs within the cycle.
_LENGTHS = {m: (28, 29) if m == 2 else (30,) if m in (4, 6, 9, 11) else (31,) for m in range(1, 13)}

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

_VALUE = r"[0-9]+|[a-z]+"
_ITEM = re.compile(rf"(\*|{_VALUE})(?:-({_VALUE}))?(?:/([0-9]+))?", re.ASCII | re.IGNORECASE)
_NEAREST = re.compile(r"([0-9]+)W", re.ASCII | re.IGNORECASE)
_NTH = re.compile(rf"({_VALUE})#([0-9]+)", re.ASCII | re.IGNORECASE)
_LAST_OF = re.compile(rf"({_VALUE})L|L({_VALUE})", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True)
class _Field:
    """One field's name (as error messages say it), its values and its names for them."""

    name: str
    lo: int
    hi: int
    names: tuple[str, ...] = ()  # names[i] is the value lo + i
    star_hi: int = -1  # where '*' and 'a/n' end, if not at hi (day of week: 6, as 7 is Sunday again)

    @property
    def end(self) -> int:
        """The last value of '*' and of 'a/n'."""
        return self.hi if self.star_hi < 0 else self.star_hi


SECOND = _Field("second", 0, 59)
MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, _MONTH_NAMES)
DAY_OF_WEEK = _Field("day-of-week", 0, 7, _DAY_NAMES, star_hi=6)


@dataclass(frozen=True)
class _Days:
    """What one day field names: plain values and its special items; ``restricted`` as the README says."""

    values: frozenset[int]  # days of the month, or weekdays (0 = Sunday)
    restricted: bool
    last: bool = False  # day of month 'L'
    nearest: frozenset[int] = frozenset()  # day of month 'nW'
    nth: frozenset[tuple[int, int]] = frozenset()  # day of week 'd#n' as (d, n)
    last_of: frozenset[int] = frozenset()  # day of week 'dL': the last d of the month


@dataclass(frozen=True, eq=False)
class CronExpr:
    """A parsed cron expression; build it with :func:`parse`. Times are naive wall-clock readings."""

    text: str
    seconds: tuple[int, ...]  # ascending; (0,) for five fields
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    # The days that fire in a month of that length whose 1st is that weekday (0 = Sunday).
    month_days: dict[tuple[int, int], tuple[int, ...]] = field(repr=False)

    @property
    def every_hour(self) -> bool:
        """The hour field names all 24 hours (``*``, ``*/1``, ``0-23``)."""
        return len(self.hours) == 24

    def shortest_gap(self) -> int:
        """Seconds between the two closest consecutive times of day, counting as if every day fired."""
        h = _cyclic_gap(self.hours, 24)
        m = _cyclic_gap(self.minutes, h * 60)
        return _cyclic_gap(self.seconds, m * 60)

    def matches(self, t: datetime) -> bool:
        """The expression names the wall-clock time ``t`` (to the second)."""
        if t.month not in self.months:
            return False
        weekday, length = monthrange(t.year, t.month)  # weekday: 0 = Monday
        return (
            t.day in self.month_days[length, (weekday + 1) % 7]
            and t.hour in self.hours
            and t.minute in self.minutes
            and t.second in self.seconds
        )

    def whole_unit(self) -> int:
        """Seconds in the largest unit (1, a minute, an hour or a day) of which it names every second
        when it names one: 60 when every second of its minutes is named, 3600 when every minute too..."""
        if len(self.seconds) < 60:
            return 1
        if len(self.minutes) < 60:
            return 60
        return 3600 if len(self.hours) < 24 else 86400

    def next_after(self, t: datetime) -> datetime:
        """The first time the expression names strictly after ``t`` (to the second; tzinfo is kept).

        ValueError past the end of the calendar (9999-12-31).
        """
        t = t.replace(microsecond=0) + timedelta(seconds=1)
        year, month, day, clock = t.year, t.month, t.day, (t.hour, t.minute, t.second)
        for _ in range(_CYCLE_MONTHS + 1):
            if month in self.months:
                weekday, length = monthrange(year, month)  # weekday: 0 = Monday
                for d in self.month_days[length, (weekday + 1) % 7]:
                    found = None if d < day else self._time_from(clock if d == day else (0, 0, 0))
                    if found is not None:
                        h, m, s = found
                        return t.replace(year=year, month=month, day=d, hour=h, minute=m, second=s)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            if year > MAXYEAR:
                raise ValueError(f"year {year} is out of range")  # as datetime says it
            day, clock = 1, (0, 0, 0)
        raise InternalError(f"cron: {self.text!r} names no time in the 400 years after {t}, which it must")

    def _time_from(self, clock: tuple[int, int, int]) -> tuple[int, int, int] | None:
        """The first (hour, minute, second) the expression names at or after ``clock`` on a day it fires."""
        h0, m0, s0 = clock
        for h in self.hours[bisect_left(self.hours, h0) :]:
            if h > h0:
                return h, self.minutes[0], self.seconds[0]
            for m in self.minutes[bisect_left(self.minutes, m0) :]:
                if m > m0:
                    return h, m, self.seconds[0]
                i = bisect_left(self.seconds, s0)
                if i < len(self.seconds):
                    return h, m, self.seconds[i]
        return None


def _cyclic_gap(values: tuple[int, ...], wrap: int) -> int:
    """The smallest step between consecutive ``values``, or from the last to the first plus ``wrap``."""
    steps = [b - a for a, b in pairwise(values)]
    return min([*steps, wrap - values[-1] + values[0]])


def parse(text: str) -> CronExpr:
    """Read five fields, six (seconds first) or a macro; ValueError names the field and part it refuses."""
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ValueError(f"{text!r} is not a macro; known: {' '.join(MACROS)}")
        fields = MACROS[text.lower()].split()
    else:
        fields = [f for f in re.split(r"[ \t]+", text) if f]
    if len(fields) not in (5, 6):
        raise ValueError(
            f"{text!r} has {len(fields)} fields; expected 5 (minute hour day-of-month month "
            "day-of-week) or 6 (second first), a macro like @daily, or an interval like 'every 30s'"
        )
    if len(fields) == 5:
        fields = ["0", *fields]
    second, minute, hour, dom_text, month, dow_text = fields
    dom, dow = _day_of_month(dom_text), _day_of_week(dow_text)
    table = {(n, first): _fire_days(dom, dow, n, first) for n in (28, 29, 30, 31) for first in range(7)}
    months = frozenset(_field(MONTH, month))
    if not any(table[n, first] for m in months for n in _LENGTHS[m] for first in range(7)):
        raise ValueError(f"{text!r} never matches a date")
    return CronExpr(
        text,
        tuple(sorted(_field(SECOND, second))),
        tuple(sorted(_field(MINUTE, minute))),
        tuple(sorted(_field(HOUR, hour))),
        months,
        table,
    )


def _error(f: _Field, text: str, part: str, problem: str) -> ValueError:
    """'<field> field '<text>'[, item '<part>']: <problem>'."""
    item = "" if part == text else f", item {part!r}"
    return ValueError(f"{f.name} field {text!r}{item}: {problem}")


def _items(f: _Field, text: str) -> list[str]:
    """The items of a list, refusing empty and random ones."""
    items = text.split(",")
    for part in items:
        if not part:
            raise _error(f, text, part, "a list item is empty")
        if part[0] in "RrHh":  # no name of a month or weekday begins with R or H
            raise _error(f, text, part, "random values (R, H) are not allowed: a schedule names its times")
    return items


def _field(f: _Field, text: str, special: str = "") -> set[int]:
    """The values of a field of values, ranges and steps only; ``special`` adds to the error message."""
    values: set[int] = set()
    for part in _items(f, text):
        values |= _values(f, text, part, special)
    return values


def _values(f: _Field, text: str, part: str, special: str = "") -> set[int]:
    """One item: 'v', '*', 'a-b', '*/n', 'a/n' (a to the end of the field) or 'a-b/n'."""
    m = _ITEM.fullmatch(part)
    if not m:
        names = f", a name ({f.names[0]}-{f.names[-1]})" if f.names else ""
        raise _error(
            f,
            text,
            part,
            f"expected a value {f.lo}-{f.hi}{names}, '*', a range a-b, a step (*/n, a/n, a-b/n){special}"
            ", or a list of these",
        )
    start, end, step = m.groups()
    if start == "*":
        if end is not None:
            raise _error(f, text, part, "'*' takes a step (*/n), not a range")
        lo, hi = f.lo, f.end
    else:
        lo = _number(f, text, part, start)
        hi = _number(f, text, part, end) if end is not None else max(lo, f.end) if step else lo
        if hi < lo:
            raise _error(f, text, part, f"the range runs backwards ({lo} > {hi}); write two ranges in a list")
    every = 1 if step is None else int(step)
    if not 1 <= every <= f.end - f.lo + 1:
        raise _error(f, text, part, f"the step must be 1 to {f.end - f.lo + 1}")
    return set(range(lo, hi + 1, every))


def _number(f: _Field, text: str, part: str, token: str) -> int:
    """A number or name of the field, checked against its range."""
    if token.isdigit():  # the patterns admit ASCII digits only
        value = int(token)
        if not f.lo <= value <= f.hi:
            raise _error(f, text, part, f"{value} is out of range {f.lo}-{f.hi}")
        return value
    if token.lower() in f.names:
        return f.lo + f.names.index(token.lower())
    names = f" or a name ({f.names[0]}-{f.names[-1]})" if f.names else ""
    raise _error(f, text, part, f"{token!r} is not a number{names}")


def _day_of_month(text: str) -> _Days:
    """Values, ranges and steps; 'L' (the last day); 'nW' (the weekday nearest the nth); '?' alone is '*'."""
    f = DAY_OF_MONTH
    if text == "?":
        return _Days(frozenset(range(1, 32)), restricted=False)
    values: set[int] = set()
    last, nearest = False, set()
    for part in _items(f, text):
        if part.upper() == "L":
            last = True
        elif m := _NEAREST.fullmatch(part):
            nearest.add(_number(f, text, part, m.group(1)))
        else:
            values |= _values(f, text, part, ", 'L', 'nW'")
    return _Days(frozenset(values), not text.startswith("*"), last=last, nearest=frozenset(nearest))


def _day_of_week(text: str) -> _Days:
    """Values (0-7, 0 and 7 Sunday), ranges and steps; 'd#n' (the nth d); 'dL' or 'Ld' (the last d)."""
    f = DAY_OF_WEEK
    if text == "?":
        return _Days(frozenset(range(7)), restricted=False)
    values: set[int] = set()
    nth, last_of = set(), set()
    for part in _items(f, text):
        if m := _NTH.fullmatch(part):
            week = int(m.group(2))
            if not 1 <= week <= 5:
                raise _error(f, text, part, f"'#{week}': a month has a 1st to a 5th of a weekday (#1-#5)")
            nth.add((_number(f, text, part, m.group(1)) % 7, week))
        elif m := _LAST_OF.fullmatch(part):
            last_of.add(_number(f, text, part, m.group(1) or m.group(2)) % 7)
        elif part.upper() == "L":
            raise _error(f, text, part, "'L' needs a weekday: '5L' or 'friL' is the last Friday of the month")
        else:
            values |= {v % 7 for v in _values(f, text, part, ", 'd#n', 'dL'")}
    return _Days(frozenset(values), not text.startswith("*"), nth=frozenset(nth), last_of=frozenset(last_of))


def _fire_days(dom: _Days, dow: _Days, length: int, first: int) -> tuple[int, ...]:
    """The days that fire in a month of ``length`` days whose 1st is weekday ``first`` (0 = Sunday)."""
    either = dom.restricted and dow.restricted
    days = []
    for d in range(1, length + 1):
        by_date, by_weekday = _date_matches(dom, d, length, first), _weekday_matches(dow, d, length, first)
        if (by_date or by_weekday) if either else (by_date and by_weekday):
            days.append(d)
    return tuple(days)


def _date_matches(dom: _Days, d: int, length: int, first: int) -> bool:
    """Day ``d`` matches the day-of-month field."""
    if d in dom.values or (dom.last and d == length):
        return True
    return any(_nearest_weekday(n, length, first) == d for n in dom.nearest)


def _nearest_weekday(n: int, length: int, first: int) -> int:
    """The Monday-to-Friday day nearest day ``n``, within the month; 0 if the month has no day ``n``."""
    if n > length:
        return 0
    weekday = (first + n - 1) % 7
    if weekday == 6:  # Saturday: the Friday before, or the Monday after the 1st
        return n - 1 if n > 1 else n + 2
    if weekday == 0:  # Sunday: the Monday after, or the Friday before the last day
        return n + 1 if n < length else n - 2
    return n


def _weekday_matches(dow: _Days, d: int, length: int, first: int) -> bool:
    """Day ``d`` matches the day-of-week field."""
    weekday = (first + d - 1) % 7
    return (
        weekday in dow.values
        or (weekday, (d + 6) // 7) in dow.nth
        or (weekday in dow.last_of and d + 7 > length)
    )
