"""Tests for ``ordo_node.cron``: the grammar it reads and refuses, and its search over wall times."""

from __future__ import annotations

from datetime import datetime

import pytest
from croniter import croniter

from ordo_node.cron import CronExpr, parse
from ordo_node.errors import InternalError


def times(expression: str, start: str, n: int) -> list[str]:
    """The next ``n`` wall times after ``start`` (``YYYY-MM-DD HH:MM:SS``), as ``Www MM-DD HH:MM:SS``."""
    expr, t, out = parse(expression), datetime.fromisoformat(start), []
    for _ in range(n):
        t = expr.next_after(t)
        out.append(t.strftime("%a %m-%d %H:%M:%S"))
    return out


# --- the grammar: what a field's items mean ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("5 * * * *", (5,)),
        ("5-5 * * * *", (5,)),  # equal ends: the one value, not the whole field
        ("59-59/15 * * * *", (59,)),  # the one value with a step
        ("0-10/5 * * * *", (0, 5, 10)),
        ("*/15 * * * *", (0, 15, 30, 45)),
        ("50/5 * * * *", (50, 55)),  # a/n: from a to the end of the field
        ("1,3-4,*/30 * * * *", (0, 1, 3, 4, 30)),  # a list is the union of its items
        ("*/60 * * * *", (0,)),
        ("07 * * * *", (7,)),
    ],
)
def test_values_ranges_steps_and_lists(expression: str, minutes: tuple[int, ...]) -> None:
    assert parse(expression).minutes == minutes


def test_six_fields_put_seconds_first_and_five_fields_fire_at_second_zero() -> None:
    six = parse("*/20 30 9 * * *")
    assert (six.seconds, six.minutes, six.hours) == ((0, 20, 40), (30,), (9,))
    assert parse("30 9 * * *").seconds == (0,)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 9 * * MON-MON", ["Mon 01-04 09:00:00", "Mon 01-11 09:00:00"]),
        ("0 9 * * mon-Mon", ["Mon 01-04 09:00:00", "Mon 01-11 09:00:00"]),  # names in any case
        ("0 0 * * 7", ["Sun 01-03 00:00:00", "Sun 01-10 00:00:00"]),  # 7 is Sunday, as 0 is
        ("0 0 * * 5-7", ["Sat 01-02 00:00:00", "Sun 01-03 00:00:00", "Fri 01-08 00:00:00"]),
        ("0 0 * FEB,dec *", ["Mon 02-01 00:00:00", "Tue 02-02 00:00:00"]),
    ],
)
def test_names_and_sunday(expression: str, expected: list[str]) -> None:
    # 2027-01-01 is a Friday; a time is strictly after the start.
    start = "2027-01-01 00:00:00" if "FEB" not in expression else "2027-01-15 00:00:00"
    assert times(expression, start, len(expected)) == expected


def test_macros_are_their_expressions() -> None:
    for macro, fields in [("@yearly", "0 0 1 1 *"), ("@WEEKLY", "0 0 * * 0"), ("@hourly", "0 * * * *")]:
        assert times(macro, "2026-03-04 05:06:07", 3) == times(fields, "2026-03-04 05:06:07", 3)


# --- the grammar: what it refuses, naming the field and the part -------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("R * * * *", "minute field 'R': random values (R, H) are not allowed"),
        ("R/15 * * * *", "minute field 'R/15': random values (R, H) are not allowed"),
        ("0 0 * * R", "day-of-week field 'R': random values (R, H) are not allowed"),
        ("H * * * *", "minute field 'H': random values (R, H) are not allowed"),
        ("0 H(0-5) * * *", "hour field 'H(0-5)': random values"),
        ("0 0 * * mon,r", "day-of-week field 'mon,r', item 'r': random values"),
        ("61 * * * *", "minute field '61': 61 is out of range 0-59"),
        ("0 0 0 * *", "day-of-month field '0': 0 is out of range 1-31"),
        ("0 0 * 13 *", "month field '13': 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week field '8': 8 is out of range 0-7"),
        ("60 * * * * *", "second field '60': 60 is out of range 0-59"),
        ("0 22-2 * * *", "hour field '22-2': the range runs backwards (22 > 2); write two ranges in a list"),
        ("0 0 * * sat-sun", "day-of-week field 'sat-sun': the range runs backwards (6 > 0)"),
        ("*/0 * * * *", "minute field '*/0': the step must be 1 to 60"),
        ("*/61 * * * *", "minute field '*/61': the step must be 1 to 60"),
        ("0 0 * * */8", "day-of-week field '*/8': the step must be 1 to 7"),
        ("*-5 * * * *", "minute field '*-5': '*' takes a step (*/n), not a range"),
        ("1,,2 * * * *", "minute field '1,,2', item '': a list item is empty"),
        ("0 0 * * fry", "day-of-week field 'fry': 'fry' is not a number or a name (sun-sat)"),
        ("mon * * * *", "minute field 'mon': 'mon' is not a number"),
        ("0 0 * mon *", "month field 'mon': 'mon' is not a number or a name (jan-dec)"),
        ("L * * * *", "minute field 'L': 'L' is not a number"),
        ("? * * * *", "minute field '?': expected a value 0-59, '*', a range a-b, a step"),
        ("0 0 1,? * *", "day-of-month field '1,?', item '?': expected a value 1-31"),
        ("0 0 15W-20 * *", "day-of-month field '15W-20': expected a value 1-31"),
        ("0 0 32W * *", "day-of-month field '32W': 32 is out of range 1-31"),
        ("0 0 LW * *", "day-of-month field 'LW': 'LW' is not a number"),
        ("0 0 fri#2 * *", "day-of-month field 'fri#2': expected a value 1-31, '*', a range a-b, a step"),
        ("0 0 * * 15W", "day-of-week field '15W': expected a value 0-7, a name (sun-sat)"),
        ("0 0 * * fri#6", "day-of-week field 'fri#6': '#6': a month has a 1st to a 5th of a weekday (#1-#5)"),
        ("0 0 * * fri#0", "'#0': a month has a 1st to a 5th"),
        ("0 0 * * L", "day-of-week field 'L': 'L' needs a weekday: '5L' or 'friL' is the last Friday"),
        ("0 0 * * 9L", "day-of-week field '9L': 9 is out of range 0-7"),
        ("0 0 * * mon-fri#2", "day-of-week field 'mon-fri#2': expected a value 0-7"),
        ("0 0 * * 1 2030", "day-of-week field '2030': 2030 is out of range 0-7"),
        ("0 0 1 1 * * 2030", "'0 0 1 1 * * 2030' has 7 fields; expected 5"),
        ("@reboot", "'@reboot' is not a macro; known: @yearly @annually @monthly @weekly @daily @midnight"),
        ("0 0 30 2 *", "'0 0 30 2 *' never matches a date"),
        ("0 0 31 4,6,9,11 *", "never matches a date"),
        ("0 0 31W 2 *", "never matches a date"),  # a month without day n has no nW
    ],
)
def test_refused(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(expression)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("expression", "first"),
    [
        ("0 0 29 2 *", "Tue 02-29 00:00:00"),  # 2028
        ("0 0 * 2 fri#5", "Fri 02-29 00:00:00"),  # 2036: February's only fifth Friday for decades
        ("0 0 30 2 mon", "Mon 02-02 00:00:00"),  # no 30th, but Mondays: either day field may match
        ("0 0 ? * mon", "Mon 01-05 00:00:00"),
        ("0 0 * * ?", "Fri 01-02 00:00:00"),
    ],
)
def test_rare_but_real_dates_are_accepted(expression: str, first: str) -> None:
    assert times(expression, "2026-01-01 00:00:00", 1) == [first]


# --- days: L, W, # and which of the two day fields decides -------------------------------------------------

# January 2026 starts on a Thursday, February and March on a Sunday.


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Both day fields restricted: a day matching either fires.
        ("0 0 1 * fri#2", ["Fri 01-09", "Sun 02-01", "Fri 02-13", "Sun 03-01", "Fri 03-13"]),
        ("0 0 1 * L5", ["Fri 01-30", "Sun 02-01", "Fri 02-27", "Sun 03-01", "Fri 03-27"]),
        ("0 0 10 * fri#2", ["Fri 01-09", "Sat 01-10", "Tue 02-10", "Fri 02-13", "Tue 03-10"]),
        ("0 0 15W * 1", ["Mon 01-05", "Mon 01-12", "Thu 01-15", "Mon 01-19", "Mon 01-26", "Mon 02-02"]),
        ("0 0 L * 3", ["Wed 01-07", "Wed 01-14", "Wed 01-21", "Wed 01-28", "Sat 01-31", "Wed 02-04"]),
        ("0 0 1-31 * mon", ["Fri 01-02", "Sat 01-03", "Sun 01-04", "Mon 01-05"]),  # '1-31' is restricted
        # One day field unrestricted (it begins with '*'): a day must match both.
        ("0 0 * * *,sat#3", ["Fri 01-02", "Sat 01-03", "Sun 01-04", "Mon 01-05"]),
        ("0 0 */2 * mon", ["Mon 01-05", "Mon 01-19", "Mon 02-09", "Mon 02-23"]),
        ("0 0 1 * */2", ["Sun 02-01", "Sun 03-01", "Sat 08-01"]),
        ("0 0 * * mon,fri#2", ["Mon 01-05", "Fri 01-09", "Mon 01-12", "Mon 01-19", "Mon 01-26", "Mon 02-02"]),
        # W: the weekday nearest, within the month.
        ("0 0 15W * *", ["Thu 01-15", "Mon 02-16", "Mon 03-16"]),  # Feb and Mar 15th are Sundays
        ("0 0 1W * *", ["Mon 02-02", "Mon 03-02", "Wed 04-01", "Fri 05-01"]),  # Feb and Mar 1st: Sundays
        ("0 0 31W * *", ["Fri 01-30", "Tue 03-31", "Fri 05-29", "Fri 07-31"]),  # Jan 31st is a Saturday
        ("0 0 1,15W,L * *", ["Thu 01-15", "Sat 01-31", "Sun 02-01", "Mon 02-16", "Sat 02-28"]),
        # '#' and 'L' of the day of week.
        ("0 0 * * fri#5", ["Fri 01-30", "Fri 05-29", "Fri 07-31"]),
        ("0 0 * * 5L,Lsat", ["Fri 01-30", "Sat 01-31", "Fri 02-27", "Sat 02-28"]),
        ("0 0 * * fri#2,sun#1", ["Sun 01-04", "Fri 01-09", "Sun 02-01", "Fri 02-13"]),
    ],
)
def test_day_fields(expression: str, expected: list[str]) -> None:
    assert [t[:9] for t in times(expression, "2026-01-01 00:00:00", len(expected))] == expected


# --- the search ---------------------------------------------------------------------------------------------


def test_next_after_is_strictly_after_to_the_second() -> None:
    every_second = parse("* * * * * *")
    assert every_second.next_after(datetime(2026, 1, 1, 0, 0, 0, 500_000)) == datetime(2026, 1, 1, 0, 0, 1)
    assert every_second.next_after(datetime(2026, 12, 31, 23, 59, 59)) == datetime(2027, 1, 1)
    quarter = parse("*/15 * * * *")
    assert quarter.next_after(datetime(2026, 1, 1, 0, 15)) == datetime(2026, 1, 1, 0, 30)
    assert quarter.next_after(datetime(2026, 1, 1, 23, 45)) == datetime(2026, 1, 2)
    odd = parse("10,20 5 7,9 * * *")
    assert odd.next_after(datetime(2026, 1, 1, 7, 5, 20)) == datetime(2026, 1, 1, 9, 5, 10)
    assert odd.next_after(datetime(2026, 1, 1, 9, 5, 20)) == datetime(2026, 1, 2, 7, 5, 10)


def test_the_calendar_ends_in_9999() -> None:
    with pytest.raises(ValueError, match="year 10000 is out of range"):
        parse("0 0 1 1 *").next_after(datetime(9999, 6, 1))


def test_a_search_that_finds_nothing_is_an_error_not_an_end() -> None:
    # parse() refuses such an expression; one built by hand must not read as "no more times".
    nothing = CronExpr("0 0 0 0 0", (0,), (0,), (0,), frozenset({1}), {})
    nothing.month_days.update({(n, first): () for n in (28, 29, 30, 31) for first in range(7)})
    with pytest.raises(InternalError, match="names no time in the 400 years"):
        nothing.next_after(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("* * * * * *", 1),
        ("*/10 * * * * *", 10),
        ("0,50 * * * * *", 10),  # :50 to the next minute's :00
        ("*/5 * * * *", 300),
        ("0,59 * * * *", 60),
        ("15,45 1-3 * * *", 1800),
        ("0 0,23 * * *", 3600),  # 23:00 to the next day's 00:00
        ("0 9 * * 1-5", 86400),
        ("0 0 1 1 *", 86400),  # counted as if every day fired
    ],
)
def test_shortest_gap(expression: str, seconds: int) -> None:
    assert parse(expression).shortest_gap() == seconds


def test_every_hour() -> None:
    assert all(parse(f"0 {h} * * *").every_hour for h in ("*", "*/1", "0-23", "0-11,12-23"))
    assert not any(parse(f"0 {h} * * *").every_hour for h in ("*/2", "1-23", "5"))


@pytest.mark.parametrize(
    "expression",
    [
        "*/5 * * * *",
        "0 9 * * 1-5",
        "15,45 1-3 * * *",
        "*/7 2 * * *",
        "0 12 */3 * *",
        "5/15 * * * *",
        "0 0 L * *",
        "0 0 15W * *",
        "0 0 1W * *",
        "0 0 * * fri#2",
        "0 0 * * L5",
        "0 0 1,15 * mon",
        "0 0 13 * fri",
        "0 0 29 2 *",
        "*/10 * * * * *",
        "0 30 9 * jan,jul sun",
    ],
)
def test_agrees_with_croniter_where_croniter_is_right(expression: str) -> None:
    # croniter is an independent reading of the expressions both understand the same way.
    start = datetime(2026, 1, 1)
    reference = croniter(expression, start, second_at_beginning=True)
    ours, t = parse(expression), start
    for _ in range(200):
        t = ours.next_after(t)
        assert t == reference.get_next(datetime)
