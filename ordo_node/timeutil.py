"""Time as the system stores it: integer microseconds since the Unix epoch, UTC.

Only proposers read the clock (``now_us``); the state machine gets every time
inside the command it applies.

Test hook: the environment variable ``ORDO_TEST_CLOCK_SKEW_MS``, read once at
import, shifts ``now_us`` by that many milliseconds (e.g. ``30000``: this
node's clock is 30 s fast). It stands for a wrong system clock in the tests of
clock skew (tests/cluster/test_clock_skew.py); nothing else reads it, and
unset it costs nothing: ``now_us`` is then the plain function.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _skew_us(text: str) -> int:
    """The test hook's value (milliseconds, may be fractional or negative) in microseconds."""
    try:
        return round(float(text or "0") * 1000)
    except (ValueError, OverflowError):  # not a number, NaN, infinite
        raise ValueError(f"ORDO_TEST_CLOCK_SKEW_MS: {text!r} is not a number of milliseconds") from None


SKEW_US = _skew_us(os.environ.get("ORDO_TEST_CLOCK_SKEW_MS", ""))

if SKEW_US:

    def now_us() -> int:
        """The wall clock, in microseconds since the epoch, shifted by ORDO_TEST_CLOCK_SKEW_MS (a test)."""
        return time.time_ns() // 1000 + SKEW_US

else:

    def now_us() -> int:
        """The wall clock, in microseconds since the epoch."""
        return time.time_ns() // 1000


def to_datetime(us: int) -> datetime:
    """Microseconds since the epoch to an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def from_datetime(dt: datetime) -> int:
    """An aware datetime to microseconds since the epoch."""
    return (dt - EPOCH) // timedelta(microseconds=1)


@lru_cache(maxsize=1024)
def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 time with an offset (``Z`` or ``+hh:mm``); ValueError if it is not one.

    Remembered (a batch often gives many jobs the same time; a ValueError is not kept).
    """
    s = text.strip()
    if "T" not in s and "t" not in s and " " not in s:
        raise ValueError("expected date and time, e.g. 2030-01-01T09:00:00Z")
    dt = datetime.fromisoformat(s.replace("z", "Z"))
    if dt.tzinfo is None:
        raise ValueError("the time needs an offset, e.g. Z or +02:00")
    return from_datetime(dt)


# The units a duration is written in, largest first, as parse_duration (schedule.py) reads them.
_DURATION_UNITS = (
    ("d", 86_400_000_000),
    ("h", 3_600_000_000),
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
)


def format_duration(us: int) -> str:
    """Microseconds as ``1h30m``, ``10s``, ``500ms`` or ``7d`` (what is below a millisecond is left out)."""
    parts = []
    for unit, size in _DURATION_UNITS:
        count, us = divmod(us, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def format_us(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 in UTC (``2030-01-01T09:00:00.000000Z``)."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_second_text(seconds)}.{micros:06d}Z"


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    # Jobs come in bursts due in the same few seconds, and every one is logged
    # with its due time: the date and time of day are formatted once a second.
    return to_datetime(seconds * 1_000_000).strftime("%Y-%m-%dT%H:%M:%S")
