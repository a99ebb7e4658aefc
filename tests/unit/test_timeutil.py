"""Times as text: format_us gives what datetime's own formatting gives, for any microsecond."""

from __future__ import annotations

import random

import pytest

from ordo_node.schedule import parse_duration
from ordo_node.timeutil import format_duration, format_us, parse_rfc3339, to_datetime

FIRST = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
LAST = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def test_format_us_matches_datetime_formatting() -> None:
    rng = random.Random(7)
    samples = [0, 1, -1, 999_999, 1_000_000, FIRST, LAST] + [rng.randrange(FIRST, LAST) for _ in range(5000)]
    for us in samples:
        assert format_us(us) == to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), us


def test_format_us_round_trips_through_parse_rfc3339() -> None:
    for us in (1_800_000_000_000_001, 1_800_000_000_999_999, -1):
        assert parse_rfc3339(format_us(us)) == us


def test_a_remembered_time_is_the_same_and_a_bad_one_is_refused_every_time() -> None:
    # parse_rfc3339 remembers what it parsed: a repeat gives the same value, and a
    # refusal is not remembered as an answer.
    assert parse_rfc3339("2030-01-01T09:00:00+02:00") == parse_rfc3339("2030-01-01T07:00:00Z")
    assert parse_rfc3339("2030-01-01T07:00:00Z") == 1_893_481_200_000_000
    for _ in range(2):
        with pytest.raises(ValueError, match="offset"):
            parse_rfc3339("2030-01-01T07:00:00")


def test_format_duration_writes_what_parse_duration_reads() -> None:
    sec = 1_000_000
    texts = [format_duration(us) for us in (5 * sec, 90 * sec, 7200 * sec, sec // 4, 7 * 86400 * sec, 0)]
    assert texts == ["5s", "1m30s", "2h", "250ms", "7d", "0s"]
    assert format_duration(3_723_500_000) == "1h2m3s500ms"
    assert all(
        parse_duration(t, "d") == us for t, us in (("1h2m3s500ms", 3_723_500_000), ("7d", 7 * 86400 * sec))
    )
