"""Tests for ``ordo_node.schedule``: every time is a fixed instant, nothing reads the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from hashlib import sha256
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from ordo_node.errors import InternalError, InvalidArgument
from ordo_node.schedule import (
    CATCH_UP_POLICIES,
    Schedule,
    catch_up,
    fire_time,
    next_occurrence,
    nominal_after,
    parse_duration,
    parse_schedule,
    preview,
)
from ordo_node.statemachine.policy import OVERLAP_POLICIES, backoff_delay, overlap_decision
from ordo_node.timeutil import format_us, from_datetime, parse_rfc3339, to_datetime

MS = 1_000
SEC = 1_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
NY = "America/New_York"


def at(text: str) -> int:
    """An RFC 3339 instant in microseconds."""
    return parse_rfc3339(text)


def walk(s: Schedule, after: int, n: int) -> list[int]:
    """The next ``n`` nominal times after ``after``, by calling nominal_after repeatedly."""
    out: list[int] = []
    for _ in range(n):
        nxt = nominal_after(s, after)
        assert nxt is not None
        out.append(nxt)
        after = nxt
    return out


def utc(times: list[int]) -> list[str]:
    """Instants as ``YYYY-MM-DDTHH:MM:SS`` in UTC, for readable assertions."""
    return [format_us(t)[:19] for t in times]


def local(times: list[int], zone: str) -> list[str]:
    """Instants as local wall time with offset, e.g. ``11-01 01:30-0400``."""
    return [to_datetime(t).astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M%z") for t in times]


# --- expressions ------------------------------------------------------------------------------------


def test_five_fields() -> None:
    s = parse_schedule("*/5 * * * *")
    assert utc(walk(s, at("2026-01-01T00:02:00Z"), 3)) == [
        "2026-01-01T00:05:00",
        "2026-01-01T00:10:00",
        "2026-01-01T00:15:00",
    ]
    # Strictly after: a time that matches is not returned for itself.
    assert nominal_after(s, at("2026-01-01T00:05:00Z")) == at("2026-01-01T00:10:00Z")


def test_six_fields_put_seconds_first() -> None:
    every_10s = parse_schedule("*/10 * * * * *")
    assert utc(walk(every_10s, at("2026-01-01T00:00:00Z"), 3)) == [
        "2026-01-01T00:00:10",
        "2026-01-01T00:00:20",
        "2026-01-01T00:00:30",
    ]
    assert nominal_after(parse_schedule("0 30 9 * * *"), at("2026-01-01T00:00:00Z")) == at(
        "2026-01-01T09:30:00Z"
    )
    every_second = parse_schedule("* * * * * *")
    assert walk(every_second, at("2026-01-01T00:00:00.5Z"), 2) == [
        at("2026-01-01T00:00:01Z"),
        at("2026-01-01T00:00:02Z"),
    ]


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", "2027-01-01T00:00:00"),
        ("@annually", "2027-01-01T00:00:00"),
        ("@monthly", "2026-02-01T00:00:00"),
        ("@weekly", "2026-01-04T00:00:00"),  # 2026-01-01 is a Thursday; weeks start on Sunday
        ("@daily", "2026-01-02T00:00:00"),
        ("@midnight", "2026-01-02T00:00:00"),
        ("@hourly", "2026-01-01T01:00:00"),
    ],
)
def test_macros(macro: str, expected: str) -> None:
    s = parse_schedule(macro)
    assert utc([nominal_after(s, at("2026-01-01T00:30:00Z")) or 0]) == [expected]


def test_interval_is_anchored_at_the_epoch() -> None:
    s = parse_schedule("every 30s")
    assert walk(s, at("2026-01-01T00:00:10Z"), 2) == [at("2026-01-01T00:00:30Z"), at("2026-01-01T00:01:00Z")]
    # 1h30m does not divide a day, so the grid is a multiple of 90 minutes counted from 1970.
    ninety = parse_schedule("every 1h30m")
    first = nominal_after(ninety, at("2026-01-01T00:00:00Z"))
    assert first is not None and first % (90 * MIN) == 0
    assert first - at("2026-01-01T00:00:00Z") <= 90 * MIN
    assert walk(parse_schedule("every 500ms"), 0, 3) == [500 * MS, 1000 * MS, 1500 * MS]
    assert nominal_after(parse_schedule("@every 30s"), at("2026-01-01T00:00:10Z")) == at(
        "2026-01-01T00:00:30Z"
    )


def test_interval_is_anchored_at_start_at() -> None:
    start = at("2026-01-01T00:00:07Z")
    s = parse_schedule("every 30s", start_at=start)
    assert nominal_after(s, at("2025-12-01T00:00:00Z")) == start
    assert nominal_after(s, start - 1) == start
    assert walk(s, start, 2) == [start + 30 * SEC, start + 60 * SEC]
    assert nominal_after(s, start + 31 * SEC) == start + 60 * SEC


# --- the cron grammar: what each expression of issue 18 means ---------------------------------------------

# January 2026 starts on a Thursday, February and March on a Sunday.
AFTER = "2026-01-01T00:30:00Z"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # Both day fields restricted: a day matching either fires (croniter refused these as never matching).
        ("0 0 1 * fri#2", ["01-09", "02-01", "02-13", "03-01", "03-13"]),
        ("0 0 1 * L5", ["01-30", "02-01", "02-27", "03-01", "03-27"]),
        # '#' or 'W' in one day field does not drop the other (croniter fired only on the '#'/'W' days).
        ("0 0 10 * fri#2", ["01-09", "01-10", "02-10", "02-13", "03-10", "03-13"]),
        ("0 0 15W * 1", ["01-05", "01-12", "01-15", "01-19", "01-26", "02-02", "02-09", "02-16"]),
        # A range with equal ends is its one value (croniter read it as the whole field).
        ("0 9 * * MON-MON", ["01-05", "01-12", "01-19"]),
        # A day field beginning with '*' is unrestricted, whatever follows: '*,sat#3' is every day
        # (croniter kept only third Saturdays), and the other field must match too.
        ("0 0 * * *,sat#3", ["01-02", "01-03", "01-04", "01-05"]),
        ("0 0 */2 * mon", ["01-05", "01-19", "02-09", "02-23"]),
        # Plain weekdays and '#' mix in one list (croniter refused it).
        ("0 0 * * mon,fri#2", ["01-05", "01-09", "01-12", "01-19", "01-26", "02-02", "02-09", "02-13"]),
    ],
)
def test_day_fields_mean_what_the_readme_says(expr: str, expected: list[str]) -> None:
    days = walk(parse_schedule(expr), at(AFTER), len(expected))
    assert [format_us(t)[5:10] for t in days] == expected
    assert all(format_us(t)[11:19] == ("09:00:00" if "9" in expr.split()[1] else "00:00:00") for t in days)


def test_equal_ends_in_the_time_fields() -> None:
    assert utc(walk(parse_schedule("30 5-5 * * *"), at(AFTER), 2)) == [
        "2026-01-01T05:30:00",
        "2026-01-02T05:30:00",
    ]
    assert utc(walk(parse_schedule("59-59/15 * * * *"), at(AFTER), 2)) == [
        "2026-01-01T00:59:00",
        "2026-01-01T01:59:00",
    ]


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("R * * * *", "minute field 'R': random values (R, H) are not allowed"),
        ("R/15 * * * *", "minute field 'R/15': random values (R, H) are not allowed"),
        ("0 0 * * R", "day-of-week field 'R': random values (R, H) are not allowed"),
        ("H H * * *", "minute field 'H': random values (R, H) are not allowed"),
        ("0 22-2 * * *", "hour field '22-2': the range runs backwards (22 > 2)"),
        ("0 0 * * fri#6", "day-of-week field 'fri#6': '#6': a month has a 1st to a 5th of a weekday"),
        ("0 0 L * * *", "hour field 'L': 'L' is not a number"),  # six fields: the seconds come first
        ("@reboot", "'@reboot' is not a macro"),
    ],
)
def test_what_the_grammar_does_not_define_is_refused(expr: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_schedule(expr, prefix="jobs[0].")
    assert info.value.field == "jobs[0].cron"
    assert reason in info.value.reason


def test_a_random_expression_is_refused_rather_than_previewed_differently_each_time() -> None:
    with pytest.raises(InvalidArgument) as info:
        preview(Schedule("R * * * *"), at(AFTER), 3)
    assert (
        str(info.value)
        == "cron: minute field 'R': random values (R, H) are not allowed: a schedule names its times"
    )


# Full-width digits (U+FF10-FF19) and the ideographic space (U+3000).
@pytest.mark.parametrize("expr", ["every \uff13\uff10s", "*/\uff15 * * * *", "0 0\u3000* * * *"])
def test_only_ascii_is_read(expr: str) -> None:
    # Python's \d and int() read full-width digits as 0-9; a schedule must not.
    with pytest.raises(InvalidArgument) as info:
        parse_schedule(expr)
    assert info.value.field == "cron"
    assert "is not allowed; write it in ASCII" in info.value.reason
    with pytest.raises(InvalidArgument):
        parse_duration("\uff13\uff10s", "timeout")


def test_a_search_that_fails_raises_instead_of_ending_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    import ordo_node.schedule as schedule

    def failing(expr: object, wall: int) -> int:
        raise InternalError("cron: a search found nothing")

    monkeypatch.setattr(schedule, "_next_wall", failing)
    with pytest.raises(InternalError):
        nominal_after(parse_schedule("0 0 1 * fri#2"), at(AFTER))


# --- time zones and daylight saving time --------------------------------------------------------------


def test_cron_is_evaluated_in_the_time_zone() -> None:
    s = parse_schedule("0 9 * * *", timezone="Europe/Paris")
    assert nominal_after(s, at("2026-01-15T00:00:00Z")) == at("2026-01-15T08:00:00Z")  # CET, +01:00
    assert nominal_after(s, at("2026-07-15T00:00:00Z")) == at("2026-07-15T07:00:00Z")  # CEST, +02:00


def test_spring_forward_daily_time_in_the_gap_fires_once_at_the_end_of_the_gap() -> None:
    s = parse_schedule("30 2 * * *", timezone=NY)  # 2026-03-08: 02:00 EST -> 03:00 EDT
    times = walk(s, at("2026-03-07T12:00:00Z"), 3)
    assert utc(times) == ["2026-03-08T07:00:00", "2026-03-09T06:30:00", "2026-03-10T06:30:00"]
    assert local(times, NY) == ["03-08 03:00-0400", "03-09 02:30-0400", "03-10 02:30-0400"]


def test_spring_forward_hourly_jobs_collapse_the_gap_into_one_fire() -> None:
    half_past = walk(parse_schedule("30 * * * *", timezone=NY), at("2026-03-08T05:00:00Z"), 4)
    assert local(half_past, NY) == [
        "03-08 00:30-0500",
        "03-08 01:30-0500",
        "03-08 03:00-0400",
        "03-08 03:30-0400",
    ]
    # 02:00 does not exist and maps to 03:00, which is also a regular fire: one fire, not two.
    on_the_hour = walk(parse_schedule("0 * * * *", timezone=NY), at("2026-03-08T05:30:00Z"), 3)
    assert local(on_the_hour, NY) == ["03-08 01:00-0500", "03-08 03:00-0400", "03-08 04:00-0400"]
    every_20 = walk(parse_schedule("*/20 * * * *", timezone=NY), at("2026-03-08T06:30:00Z"), 3)
    assert local(every_20, NY) == ["03-08 01:40-0500", "03-08 03:00-0400", "03-08 03:20-0400"]


def test_fall_back_daily_time_in_the_fold_fires_once_at_its_first_occurrence() -> None:
    s = parse_schedule("30 1 * * *", timezone=NY)  # 2026-11-01: 02:00 EDT -> 01:00 EST
    times = walk(s, at("2026-10-31T12:00:00Z"), 2)
    assert utc(times) == ["2026-11-01T05:30:00", "2026-11-02T06:30:00"]
    assert local(times, NY) == ["11-01 01:30-0400", "11-02 01:30-0500"]
    # A fixed hour with a minute step is also first-pass only.
    steps = walk(parse_schedule("*/30 1 * * *", timezone=NY), at("2026-11-01T04:00:00Z"), 3)
    assert local(steps, NY) == ["11-01 01:00-0400", "11-01 01:30-0400", "11-02 01:00-0500"]


def test_fall_back_hourly_jobs_fire_at_every_real_hour() -> None:
    on_the_hour = walk(parse_schedule("0 * * * *", timezone=NY), at("2026-11-01T04:30:00Z"), 3)
    assert local(on_the_hour, NY) == ["11-01 01:00-0400", "11-01 01:00-0500", "11-01 02:00-0500"]
    assert utc(on_the_hour) == ["2026-11-01T05:00:00", "2026-11-01T06:00:00", "2026-11-01T07:00:00"]
    every_20 = walk(parse_schedule("*/20 * * * *", timezone=NY), at("2026-11-01T05:30:00Z"), 4)
    assert local(every_20, NY) == [
        "11-01 01:40-0400",
        "11-01 01:00-0500",
        "11-01 01:20-0500",
        "11-01 01:40-0500",
    ]


def test_fall_back_second_pass_search_starts_where_it_is() -> None:
    every_second = parse_schedule("* * * * * *", timezone=NY)
    inside = at("2026-11-01T06:10:00Z")  # 01:10:00 EST, the second pass
    assert walk(every_second, inside, 2) == [inside + SEC, inside + 2 * SEC]
    last_of_fold = at("2026-11-01T06:59:59Z")
    assert nominal_after(every_second, last_of_fold) == at("2026-11-01T07:00:00Z")
    # A daily job asked from inside the second pass waits for the next day.
    daily = parse_schedule("30 1 * * *", timezone=NY)
    assert nominal_after(daily, at("2026-11-01T06:10:00Z")) == at("2026-11-02T06:30:00Z")


def test_second_pass_search_does_not_walk_the_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    import ordo_node.schedule as schedule

    calls = 0
    real = schedule._next_wall

    def counting(cron: str, wall: int) -> int:
        nonlocal calls
        calls += 1
        return real(cron, wall)

    monkeypatch.setattr(schedule, "_next_wall", counting)
    every_second = parse_schedule("* * * * * *", timezone=NY)
    assert nominal_after(every_second, at("2026-11-01T06:00:05Z")) == at("2026-11-01T06:00:06Z")
    assert calls <= 3  # not one step per second of the fold


def _transitions(zone: ZoneInfo, year: int) -> list[int]:
    """Instants (to the hour) just after the zone's offset changes during ``year``."""
    start = from_datetime(datetime(year, 1, 1, tzinfo=UTC))
    found = []
    for h in range(1, 366 * 24):
        t = start + h * HOUR
        if to_datetime(t).astimezone(zone).utcoffset() != to_datetime(t - HOUR).astimezone(zone).utcoffset():
            found.append(t)
    return found


def _expected(expr: str, zone: ZoneInfo, lo: int, hi: int) -> list[int]:
    """A brute-force oracle of the documented rules: fire instants in (lo, hi], minute by minute."""
    wall_lo, wall_hi = to_datetime(lo - DAY), to_datetime(hi + DAY)
    it = croniter(expr, wall_lo)
    matching = set()  # matching wall times (as UTC datetimes, so croniter applies no DST)
    while (w := it.get_next(datetime)) < wall_hi:
        matching.add(w.replace(tzinfo=None))
    both_passes = croniter(expr).expanded[1] == ["*"]
    out = []
    for t in range(lo - lo % MIN + MIN, hi + 1, MIN):
        now, before = to_datetime(t).astimezone(zone), to_datetime(t - MIN).astimezone(zone)
        wall = now.replace(tzinfo=None)
        fires = wall in matching and (now.fold == 0 or both_passes)
        skipped = wall - before.replace(tzinfo=None) - timedelta(minutes=1)  # a gap just ended at t
        if skipped > timedelta(0):
            gap = [wall - timedelta(minutes=m) for m in range(1, skipped // timedelta(minutes=1) + 1)]
            fires = fires or any(g in matching for g in gap)
        if fires:
            out.append(t)
    return out


@pytest.mark.parametrize("zone_name", [NY, "Europe/Paris", "Australia/Lord_Howe", "Antarctica/Troll"])
@pytest.mark.parametrize(
    "expr",
    [
        "*/20 * * * *",
        "0 * * * *",
        "30 2 * * *",
        "30 1 * * *",
        "15,45 1-3 * * *",
        "0 */2 * * *",
        "*/7 2 * * *",
    ],
)
def test_walks_match_the_rules_around_every_transition(zone_name: str, expr: str) -> None:
    zone = ZoneInfo(zone_name)
    s = parse_schedule(expr, timezone=zone_name)
    transitions = _transitions(zone, 2026)
    assert len(transitions) == 2
    for change in transitions:
        lo, hi = change - DAY, change + DAY
        got = []
        t = nominal_after(s, lo)
        while t is not None and t <= hi:
            got.append(t)
            t = nominal_after(s, t)
        assert got == sorted(set(got)), "fire times must strictly increase"
        assert got == _expected(expr, zone, lo, hi)


# --- bounds, preview, jitter ---------------------------------------------------------------------------


def test_start_end_and_max_runs_bound_the_times() -> None:
    start, end = at("2026-01-01T05:30:00Z"), at("2026-01-01T08:00:00Z")
    s = parse_schedule("0 * * * *", start_at=start, end_at=end)
    assert nominal_after(s, at("2026-01-01T00:00:00Z")) == at("2026-01-01T06:00:00Z")
    assert nominal_after(s, at("2026-01-01T07:00:00Z")) == end  # end_at itself may fire
    assert nominal_after(s, end) is None
    on_the_hour = parse_schedule("0 * * * *", start_at=at("2026-01-01T06:00:00Z"))
    assert nominal_after(on_the_hour, 0) == at("2026-01-01T06:00:00Z")  # start_at itself may fire
    limited = parse_schedule("0 * * * *", max_runs=2)
    assert next_occurrence(limited, start, fired=1) == at("2026-01-01T06:00:00Z")
    assert next_occurrence(limited, start, fired=2) is None
    assert next_occurrence(parse_schedule("0 * * * *"), start, fired=10**6) is not None


def test_preview() -> None:
    s = parse_schedule("every 1m", jitter=10 * SEC, key="job-1")
    pairs = preview(s, 0, 5)
    assert [n for n, _ in pairs] == [MIN, 2 * MIN, 3 * MIN, 4 * MIN, 5 * MIN]
    assert all(f == fire_time(s, n) for n, f in pairs)
    bounded = parse_schedule("every 1m", end_at=3 * MIN)
    assert [n for n, _ in preview(bounded, 0, 10)] == [MIN, 2 * MIN, 3 * MIN]
    assert len(preview(parse_schedule("every 1m", max_runs=4), 0, 10)) == 4
    assert len(preview(parse_schedule("every 1s"), 0, 5000)) == 1000
    assert preview(s, 0, 0) == []


def test_jitter_is_deterministic_and_bounded() -> None:
    s = parse_schedule("every 1m", jitter=30 * SEC, key="job-a")
    nominal = at("2026-01-01T00:01:00Z")
    digest = sha256(f"job-a:{nominal}".encode()).digest()
    assert fire_time(s, nominal) == nominal + int.from_bytes(digest[:8], "big") % (30 * SEC)
    assert fire_time(s, nominal) == fire_time(
        parse_schedule("every 1m", jitter=30 * SEC, key="job-a"), nominal
    )
    other = parse_schedule("every 1m", jitter=30 * SEC, key="job-b")
    nominals = [nominal + i * MIN for i in range(100)]
    assert all(0 <= fire_time(s, n) - n < 30 * SEC for n in nominals)
    assert sum(fire_time(s, n) != fire_time(other, n) for n in nominals) >= 95
    assert fire_time(parse_schedule("every 1m", key="job-a"), nominal) == nominal


@pytest.mark.parametrize(
    ("expr", "longest", "gap"),
    [
        ("every 1s", SEC, "1s"),
        ("every 1h30m", 90 * MIN, "1h30m"),
        ("every 500ms", 500 * MS, "500ms"),
        ("* * * * * *", SEC, "1s"),
        ("*/5 * * * *", 5 * MIN, "5m"),
        ("0,50 * * * * *", 10 * SEC, "10s"),
        ("0 0,23 * * *", HOUR, "1h"),
        ("@daily", DAY, "1d"),
    ],
)
def test_jitter_is_at_most_the_shortest_gap(expr: str, longest: int, gap: str) -> None:
    assert parse_schedule(expr, jitter=longest).jitter == longest
    with pytest.raises(InvalidArgument) as info:
        parse_schedule(expr, jitter=longest + 1, prefix="job.")
    assert info.value.field == "job.jitter"
    if longest < DAY:
        assert info.value.reason == (
            f"must not be longer than {gap}, the shortest time between two nominal times of {expr!r}"
        )


def test_jittered_fire_times_strictly_increase() -> None:
    s = parse_schedule("every 1s", jitter=SEC, key="job-a")
    fires = [f for _, f in preview(s, 0, 1000)]
    assert fires == sorted(set(fires))
    assert max(f - n for n, f in preview(s, 0, 1000)) > SEC * 9 // 10  # the jitter is used, not squashed


def test_jitter_stops_short_of_the_next_time_where_the_clock_goes_forward() -> None:
    # Lord Howe, 2026-10-04: 02:00 +10:30 -> 02:30 +11:00. "*/20" fires at 01:40, at 02:30 for the lost
    # 02:00 and 02:20, then at 02:40: ten minutes apart, though its wall times are 20 minutes apart.
    zone = "Australia/Lord_Howe"
    lost, after_it = at("2026-10-03T15:30:00Z"), at("2026-10-03T15:40:00Z")
    capped = 0
    for i in range(40):
        key = f"job-{i}"
        s = parse_schedule("*/20 * * * *", timezone=zone, jitter=20 * MIN, key=key)
        assert walk(s, at("2026-10-03T15:00:00Z"), 3) == [at("2026-10-03T15:10:00Z"), lost, after_it]
        offset = int.from_bytes(sha256(f"{key}:{lost}".encode()).digest()[:8], "big") % (20 * MIN)
        assert fire_time(s, lost) == lost + min(offset, after_it - lost - 1)
        capped += offset >= after_it - lost
        fires = [f for _, f in preview(s, at("2026-10-03T14:00:00Z"), 12)]
        assert fires == sorted(set(fires))
    assert capped > 0  # some key's offset would have fired 02:30's occurrence after 02:40's


# --- backoff, catch-up, overlap ---------------------------------------------------------------------------


def test_backoff_grows_and_caps() -> None:
    delays = [backoff_delay(a, initial=SEC, multiplier=2.0, maximum=10 * SEC) for a in range(1, 7)]
    assert delays == [SEC, 2 * SEC, 4 * SEC, 8 * SEC, 10 * SEC, 10 * SEC]
    assert backoff_delay(10_000, initial=SEC, multiplier=2.0, maximum=HOUR) == HOUR  # no float overflow
    assert backoff_delay(3, initial=SEC, multiplier=1.0, maximum=HOUR) == SEC


def test_backoff_jitter_is_bounded_and_deterministic() -> None:
    for attempt in range(1, 50):
        full = backoff_delay(attempt, initial=SEC, multiplier=1.5, maximum=MIN)
        jittered = backoff_delay(attempt, initial=SEC, multiplier=1.5, maximum=MIN, jitter=0.25, key="j")
        assert full * 0.75 <= jittered <= full
        assert jittered == backoff_delay(
            attempt, initial=SEC, multiplier=1.5, maximum=MIN, jitter=0.25, key="j"
        )
    keys = {
        backoff_delay(3, initial=SEC, multiplier=2.0, maximum=MIN, jitter=1.0, key=f"k{i}") for i in range(20)
    }
    assert len(keys) > 15
    assert all(0 <= d <= 4 * SEC for d in keys)


def test_backoff_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, initial=SEC, multiplier=2.0, maximum=MIN)
    with pytest.raises(ValueError):
        backoff_delay(1, initial=SEC, multiplier=2.0, maximum=MIN, jitter=1.5)


NOW = at("2026-01-01T12:00:00Z")
MISSED = [NOW - 3 * HOUR, NOW - 2 * HOUR, NOW - HOUR, NOW]


@pytest.mark.parametrize(
    ("policy", "window", "run"),
    [
        ("SKIP", 0, []),
        ("ONE", 0, MISSED[-1:]),
        ("ALL", 0, MISSED),
        ("SKIP", 90 * MIN, []),
        ("ONE", 90 * MIN, MISSED[-1:]),
        ("ALL", 90 * MIN, MISSED[2:]),
        ("ALL", 2 * HOUR, MISSED[1:]),  # exactly now - window is not older than it
        ("ONE", 1, MISSED[-1:]),
    ],
)
def test_catch_up(policy: str, window: int, run: list[int]) -> None:
    to_run, to_mark = catch_up(policy, MISSED, NOW, window)
    assert to_run == run
    assert to_mark == [t for t in MISSED if t not in run]


def test_catch_up_when_everything_is_too_old_or_nothing_was_missed() -> None:
    old = [NOW - 3 * HOUR, NOW - 2 * HOUR]
    for policy in CATCH_UP_POLICIES:
        assert catch_up(policy, old, NOW, HOUR) == ([], old)
        assert catch_up(policy, [], NOW, 0) == ([], [])
    with pytest.raises(ValueError):
        catch_up("SOME", old, NOW, 0)


@pytest.mark.parametrize(
    ("policy", "running", "buffered", "decision"),
    [
        ("ALLOW", 0, 0, "RUN"),
        ("ALLOW", 3, 1, "RUN"),
        ("SKIP", 0, 0, "RUN"),
        ("SKIP", 1, 0, "SKIP"),
        ("BUFFER_ONE", 0, 0, "RUN"),
        ("BUFFER_ONE", 1, 0, "BUFFER"),
        ("BUFFER_ONE", 1, 1, "SKIP"),
        ("CANCEL_OTHER", 0, 0, "RUN"),
        ("CANCEL_OTHER", 2, 0, "CANCEL_OTHER"),
    ],
)
def test_overlap_decision(policy: str, running: int, buffered: int, decision: str) -> None:
    assert policy in OVERLAP_POLICIES
    assert overlap_decision(policy, running, buffered) == decision


def test_overlap_decision_rejects_unknown_policy() -> None:
    with pytest.raises(ValueError):
        overlap_decision("QUEUE", 1, 0)


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"expression": "61 * * * *"}, "job.cron", "minute field '61': 61 is out of range 0-59"),
        ({"expression": "0 0 1 1 * * 2030"}, "job.cron", "has 7 fields"),
        ({"expression": "* * *"}, "job.cron", "has 3 fields"),
        ({"expression": "0 0 30 2 *"}, "job.cron", "never matches"),
        ({"expression": "every 50ms"}, "job.cron", "at least 100ms"),
        ({"expression": "every banana"}, "job.cron", "not a valid interval"),
        ({"expression": "every 0s"}, "job.cron", "longer than zero"),
        ({"expression": ""}, "job.cron", "has 0 fields"),
        ({"timezone": "Mars/Olympus"}, "job.timezone", "'Mars/Olympus' is not an IANA time zone"),
        ({"timezone": "../etc/passwd"}, "job.timezone", "not an IANA time zone"),
        ({"start_at": 10 * SEC, "end_at": 10 * SEC}, "job.endAt", "later than startAt"),
        ({"max_runs": -1}, "job.maxRuns", "negative"),
        ({"jitter": -1}, "job.jitter", "between 0 and 1 day"),
        ({"jitter": DAY + 1}, "job.jitter", "between 0 and 1 day"),
    ],
)
def test_parse_errors_name_the_field(kwargs: dict[str, object], field: str, words: str) -> None:
    args: dict[str, object] = {"expression": "* * * * *", **kwargs}
    with pytest.raises(InvalidArgument) as info:
        parse_schedule(prefix="job.", **args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert words in info.value.reason
    assert str(info.value).startswith(f"{field}: ")


def test_parse_keeps_the_parts() -> None:
    s = parse_schedule(
        " @every 90s ", timezone="Asia/Kolkata", start_at=1, end_at=2, max_runs=3, jitter=4, key="k"
    )
    assert s == Schedule("@every 90s", "Asia/Kolkata", 1, 2, 3, 4, "k")


def test_unparsed_schedule_errors_name_the_field() -> None:
    with pytest.raises(InvalidArgument) as info:
        nominal_after(Schedule("every banana"), 0)
    assert info.value.field == "cron"
    with pytest.raises(InvalidArgument) as info:
        nominal_after(Schedule("* * * * *", timezone="Nowhere/Town"), 0)
    assert info.value.field == "timezone"


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("30s", 30 * SEC),
        ("5m", 5 * MIN),
        ("1h30m", 90 * MIN),
        ("500ms", 500 * MS),
        ("2h", 2 * HOUR),
        ("1d", DAY),
        ("1m30s", 90 * SEC),
        (" 10S ", 10 * SEC),
    ],
)
def test_parse_duration(text: str, us: int) -> None:
    assert parse_duration(text, "timeout") == us


@pytest.mark.parametrize("text", ["", "0s", "0ms", "-5s", "1.5h", "5", "banana", "5 m", "1w", "m5"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_duration(text, "timeout")
    assert info.value.field == "timeout"


@pytest.mark.parametrize("zone", ["America", "x" * 5000, "../../etc/passwd", "Europe/"])
def test_a_zone_that_is_a_folder_or_too_long_is_not_a_zone(zone: str) -> None:
    # zoneinfo raises OSError for these (a directory, a file name too long), not ZoneInfoNotFoundError
    with pytest.raises((ValueError, InvalidArgument), match="not an IANA time zone"):
        parse_schedule("0 9 * * *", timezone=zone)
