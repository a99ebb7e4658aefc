"""Sizes, shared constants and the progress line of the benchmark."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from ...client import submit_request

T = TypeVar("T")

U = TypeVar("U")

SCENARIOS = (
    "submit",
    "e2e",
    "e2e1",
    "workers",
    "loaded",
    "durable",
    "swarm",
    "lateness",
    "failover",
    "scale",
    "limits",
)

FAR_FUTURE = "2099-01-01T00:00:00Z"

FAR_FUTURE_US = 4_070_908_800_000_000  # 2099-01-01T00:00:00Z

OPEN_STATES = ("SCHEDULED", "TRIGGERED", "RUNNING")

ECHO_SERVICE = "ordo.bench.Echo"

ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"

POLL = 0.2

READ_IN_FLIGHT = 32

SCALE_IN_FLIGHT = 4

RPC_TIMEOUT = 60.0

QUERY_REPEATS = 200

RSS_TARGET_MB = 500

SWARM_GROWTH_LIMIT = 1.25  # swarm: the leader's CPU per job, most workers over fewest, at most

SWARM_JUDGED_FROM = 50  # swarm: judged when the most workers are at least this many

KILL_FRACTION = 0.3  # failover: the leader dies this far into the span of due times

# Counts of things that went wrong: 0 is the good value, so they are not "figures".
PROBLEM_KEYS = frozenset(
    {
        "errors",
        "failed",
        "lost",
        "doubled",
        "missing",
        "history_mismatches",
        "submit_overran_ms",
        "reconnected_at_start",
    }
)


class BenchError(Exception):
    """The benchmark itself could not go on (a node did not start, a wait timed out)."""


# -- sizes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to run, and how big."""

    scenarios: tuple[str, ...]
    address: str | None
    e2e_jobs: int
    lateness_jobs: int
    scale_jobs: int
    concurrency: tuple[int, ...]
    batch: int
    batch_jobs: int
    batch_concurrency: tuple[int, ...]
    submit_seconds: float
    failover_jobs: int
    failover_interval: float
    raw_commands: int
    raw_in_flight: int
    keep: bool
    json: bool
    capacity: int = 64
    swarm_counts: tuple[int, ...] = (10, 50, 200)
    swarm_jobs: int = 5_000
    swarm_idle_s: float = 3.0


DEFAULTS: dict[str, Any] = {
    "e2e_jobs": 10_000,
    "lateness_jobs": 10_000,
    "scale_jobs": 100_000,
    "concurrency": (1, 16, 64),
    "batch": 1000,
    "batch_jobs": 20_000,
    "batch_concurrency": (1, 4),
    "submit_seconds": 5.0,
    "failover_jobs": 100,
    "raw_commands": 20_000,
    "swarm_counts": (10, 50, 200),
    "swarm_jobs": 5_000,
    "swarm_idle_s": 3.0,
}
TINY: dict[str, Any] = {
    "e2e_jobs": 200,
    "lateness_jobs": 200,
    "scale_jobs": 2_000,
    "concurrency": (1, 4),
    "batch": 100,
    "batch_jobs": 2_000,
    "batch_concurrency": (1, 2),
    "submit_seconds": 1.0,
    # Due over 6 s: the timekeeper triggers one-off jobs up to 2 s ahead, so the
    # jobs due after the kill must reach further than that for a trigger to follow it.
    "failover_jobs": 60,
    "raw_commands": 2_000,
    "swarm_counts": (2, 6),
    "swarm_jobs": 200,
    "swarm_idle_s": 0.5,
}


def plan_from_args(args: argparse.Namespace) -> Plan:
    """Options given on the command line win; the rest come from ``--tiny`` or the defaults."""
    base = TINY if args.tiny else DEFAULTS

    def pick(name: str) -> Any:
        given = getattr(args, name)
        return base[name] if given is None else given

    return Plan(
        scenarios=tuple(args.scenarios),
        address=args.address,
        e2e_jobs=pick("e2e_jobs"),
        lateness_jobs=pick("lateness_jobs"),
        scale_jobs=pick("scale_jobs"),
        concurrency=tuple(pick("concurrency")),
        batch=pick("batch"),
        batch_jobs=pick("batch_jobs"),
        batch_concurrency=tuple(pick("batch_concurrency")),
        submit_seconds=pick("submit_seconds"),
        failover_jobs=pick("failover_jobs"),
        failover_interval=0.1,
        raw_commands=pick("raw_commands"),
        raw_in_flight=1000,
        keep=args.keep,
        json=args.json,
        capacity=args.capacity,
        swarm_counts=tuple(pick("swarm_counts")),
        swarm_jobs=pick("swarm_jobs"),
        swarm_idle_s=pick("swarm_idle_s"),
    )


# -- progress on stderr ------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (carriage return); plain lines when stderr is not a terminal."""

    WIDTH = 24

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.label = ""
        self._started = 0.0
        self._last_draw = 0.0
        self._drawn = 0

    def start(self, label: str) -> None:
        """Begin a phase."""
        self.label = label
        self._started = time.monotonic()
        self._last_draw = 0.0
        self.update(0.0)

    def update(self, fraction: float, text: str = "") -> None:
        """Redraw the bar (at most ten times a second)."""
        now = time.monotonic()
        if not self.live or (now - self._last_draw < 0.1 and 0 < fraction < 1):
            return
        self._last_draw = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"{self.label:<40} [{bar}] {fraction * 100:3.0f}% {now - self._started:6.1f}s {text}"
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def done(self, summary: str) -> None:
        """End the phase with a one-line summary."""
        elapsed = time.monotonic() - self._started
        line = f"{self.label:<40} {summary} ({elapsed:.1f}s)"
        prefix = "\r" if self.live else ""
        self.stream.write(prefix + line.ljust(self._drawn) + "\n")
        self.stream.flush()
        self._drawn = 0

    def note(self, text: str) -> None:
        """A line of its own."""
        if self._drawn:
            self.stream.write("\n")
            self._drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()


def far_future_request() -> Any:
    """A tiny echo job due in 2099: it never runs during the benchmark."""
    return submit_request("echo", {"n": 1}, run_at=FAR_FUTURE)
