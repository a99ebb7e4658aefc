"""``submit``'s flow-control and extra schedule flags, and how they become ``submit_request`` arguments.

Registered by ``cli/client.py`` (issue 17): run after other jobs, concurrency keys, rate limits,
pause on failure, debounce and singleton, more cron specs, exclusions and the BUFFER_ALL limit.
Flags that only make sense together are checked by the server, which answers INVALID_ARGUMENT
naming the field; argparse refuses only what it can by itself (choices, numbers, one rate unit).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..pb import ordo_pb2

# The flags that hold a duration (30s, 500ms, 5m), checked with --delay's parser before any call.
DURATION_FLAGS = ("debounce_window", "debounce_max_wait")


def add_flow_flags(s: argparse.ArgumentParser) -> None:
    """The ``flow control`` group of submit."""
    g = s.add_argument_group("flow control")
    g.add_argument(
        "--after",
        action="append",
        default=[],
        metavar="JOB_ID",
        help="run once this job (a full id) has ended as --after-condition says (may be repeated)",
    )
    g.add_argument(
        "--after-condition",
        default="",
        type=str.upper,
        choices=["", "SUCCEEDED", "FINISHED"],
        help="SUCCEEDED (default: else the job is SKIPPED) or FINISHED (however they ended)",
    )
    g.add_argument("--concurrency-key", default="", metavar="KEY", help="runs holding KEY share a limit")
    g.add_argument("--concurrency-limit", type=int, default=0, metavar="N", help="at most N of them at once")
    g.add_argument("--rate-key", default="", metavar="KEY", help="runs holding KEY share a token bucket")
    rate = g.add_mutually_exclusive_group()
    rate.add_argument("--rate-per-second", type=float, default=None, metavar="X", help="starts per second")
    rate.add_argument("--rate-per-minute", type=float, default=None, metavar="X", help="starts per minute")
    g.add_argument(
        "--rate-burst", type=int, default=None, metavar="N", help="starts at once after a quiet spell (1)"
    )
    g.add_argument(
        "--pause-on-failure",
        type=int,
        default=0,
        metavar="N",
        help="a recurring job pauses itself after N consecutive occurrences failed for good",
    )
    g.add_argument(
        "--debounce-key", default="", metavar="KEY", help="submissions with KEY in a burst make one run"
    )
    g.add_argument(
        "--debounce-window", default=None, metavar="DURATION", help="a burst's gap, e.g. 5s (up to 7 days)"
    )
    g.add_argument("--debounce-mode", default="", type=str.upper, choices=["", "LEADING", "TRAILING"])
    g.add_argument(
        "--debounce-max-wait",
        default=None,
        metavar="DURATION",
        help="TRAILING: run at most this long after the burst's first submission, e.g. 1m",
    )
    g.add_argument("--singleton-key", default="", metavar="KEY", help="one job with KEY queued or running")
    g.add_argument(
        "--singleton-mode",
        default="",
        type=str.upper,
        choices=["", "SKIP", "REPLACE"],
        help="a submission while one is: SKIP it or REPLACE that job",
    )


def add_schedule_extras(g: argparse._ArgumentGroup) -> None:
    """More specs, exclusions and the BUFFER_ALL limit, in submit's ``recurring jobs`` group."""
    g.add_argument(
        "--more-cron",
        action="append",
        default=[],
        metavar="EXPR",
        help="another spec beside --cron; the earliest next time of all fires (may be repeated)",
    )
    g.add_argument(
        "--exclude-date",
        action="append",
        default=[],
        metavar="YYYY-MM-DD",
        help="nothing fires on this date, in --timezone (may be repeated)",
    )
    g.add_argument(
        "--exclude-cron",
        action="append",
        default=[],
        metavar="EXPR",
        help="times that do not fire: '* * * * sat,sun' is the weekend (may be repeated)",
    )
    g.add_argument(
        "--buffer-limit",
        type=int,
        default=0,
        metavar="N",
        help="--overlap BUFFER_ALL: at most N occurrences wait (default 100)",
    )


def _given(pairs: dict[str, Any]) -> dict[str, Any]:
    """The items of ``pairs`` whose value was given (not None, not "")."""
    return {k: v for k, v in pairs.items() if v is not None and v != ""}


def rate_limit(args: argparse.Namespace) -> dict[str, Any] | None:
    """``submit_request``'s ``rate_limit`` of the --rate-* flags, or None when none is given."""
    given = _given(
        {
            "key": args.rate_key,
            "per_second": args.rate_per_second,
            "per_minute": args.rate_per_minute,
            "burst": args.rate_burst,
        }
    )
    return given or None


def debounce(
    args: argparse.Namespace, seconds: Callable[[str | None], float | None]
) -> dict[str, Any] | None:
    """``submit_request``'s ``debounce`` of the --debounce-* flags (durations through ``seconds``)."""
    given = _given(
        {
            "key": args.debounce_key,
            "window": seconds(args.debounce_window),
            "mode": args.debounce_mode,
            "max_wait": seconds(args.debounce_max_wait),
        }
    )
    return given or None


def singleton(args: argparse.Namespace) -> dict[str, Any] | None:
    """``submit_request``'s ``singleton`` of --singleton-key and --singleton-mode."""
    return _given({"key": args.singleton_key, "mode": args.singleton_mode}) or None


def flow_kwargs(args: argparse.Namespace, seconds: Callable[[str | None], float | None]) -> dict[str, Any]:
    """The ``submit_request`` arguments of the flow-control and extra schedule flags."""
    return {
        "after": args.after,
        "after_condition": args.after_condition,
        "concurrency_key": args.concurrency_key,
        "concurrency_limit": args.concurrency_limit,
        "rate_limit": rate_limit(args),
        "pause_on_failure": args.pause_on_failure,
        "debounce": debounce(args, seconds),
        "singleton": singleton(args),
        "more_cron": args.more_cron,
        "exclude_dates": args.exclude_date,
        "exclude_cron": args.exclude_cron,
        "buffer_limit": args.buffer_limit,
    }


def print_submitted(reply: ordo_pb2.SubmitJobResponse) -> None:
    """The job id; then what debounce or singleton did ("merged into job ..."), when they did."""
    print(reply.job_id)
    if reply.note:
        print(reply.note)
