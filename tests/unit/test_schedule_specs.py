"""Schedules (issue 17), with fixed clocks: overlap BUFFER_ALL and its bound; more than one spec per
schedule, exclusions and the last day of the month (``L``).

The decision is apply's (statemachine/triggers.py), from the times in the commands;
the buffered occurrences are listed with their place in line (queries.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from applylog import apply_to as apply
from applylog import store_rows as rows
from google.protobuf import duration_pb2

from ordo_node import commands as c
from ordo_node import schedule
from ordo_node.api.convert import apply_options, shown_next_fire
from ordo_node.api.explain import preview_times
from ordo_node.api.options import job_options
from ordo_node.errors import InvalidArgument
from ordo_node.pb import ordo_pb2
from ordo_node.queries import JobRow, Queries
from ordo_node.schedule import Schedule, fire_time, from_options, nominal_after, parse_schedule
from ordo_node.statemachine.policy import DEFAULT_BUFFER_LIMIT, overlap_decision
from ordo_node.statemachine.store import Store
from ordo_node.timeutil import format_us, parse_rfc3339, to_datetime

SEC = 1_000_000
T0 = 1_900_000_000 * SEC  # 2030-03-17T17:46:40Z
DUE = T0 + 60 * SEC
NODE = "node1"
JOB = "00000000-0000-4000-8000-0000000000c1"


# --- BUFFER_ALL: the pure decision -------------------------------------------


@pytest.mark.parametrize(
    ("running", "buffered", "limit", "decision"),
    [
        (0, 0, 3, "RUN"),  # nothing open: it runs
        (1, 0, 3, "BUFFER"),
        (1, 2, 3, "BUFFER"),  # the third place in the buffer
        (1, 3, 3, "SKIP"),  # full
        (2, 0, 1, "BUFFER"),
    ],
)
def test_buffer_all_buffers_up_to_its_limit(running: int, buffered: int, limit: int, decision: str) -> None:
    assert overlap_decision("BUFFER_ALL", running, buffered, limit) == decision


def test_buffer_one_is_buffer_all_with_a_limit_of_one() -> None:
    for running, buffered in ((0, 0), (1, 0), (1, 1), (1, 5)):
        assert overlap_decision("BUFFER_ONE", running, buffered) == overlap_decision(
            "BUFFER_ALL", running, buffered, 1
        )


# --- BUFFER_ALL: options -------------------------------------------------------


def recurring_request(**fields: Any) -> ordo_pb2.SubmitJobRequest:
    return ordo_pb2.SubmitJobRequest(type="echo", **{"cron": "* * * * * *", **fields})


def test_buffer_limit_defaults_and_is_stored() -> None:
    options, _, _ = job_options(recurring_request(overlap=ordo_pb2.OVERLAP_BUFFER_ALL), job_id=JOB, now=T0)
    assert options["overlap"] == "BUFFER_ALL" and options["buffer_limit"] == DEFAULT_BUFFER_LIMIT
    options, _, _ = job_options(
        recurring_request(overlap=ordo_pb2.OVERLAP_BUFFER_ALL, buffer_limit=7), job_id=JOB, now=T0
    )
    assert options["buffer_limit"] == 7
    options, _, _ = job_options(recurring_request(overlap=ordo_pb2.OVERLAP_BUFFER_ONE), job_id=JOB, now=T0)
    assert "buffer_limit" not in options


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"overlap": ordo_pb2.OVERLAP_BUFFER_ALL, "buffer_limit": 1001}, "between 1 and 1000"),
        ({"overlap": ordo_pb2.OVERLAP_BUFFER_ALL, "buffer_limit": -1}, "between 1 and 1000"),
        ({"overlap": ordo_pb2.OVERLAP_BUFFER_ONE, "buffer_limit": 5}, "only with overlap OVERLAP_BUFFER_ALL"),
        ({"buffer_limit": 5}, "only with overlap OVERLAP_BUFFER_ALL"),
    ],
)
def test_buffer_limit_out_of_range_is_refused_naming_the_field(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        job_options(recurring_request(**fields), job_id=JOB, now=T0)
    assert e.value.field == "bufferLimit" and reason in e.value.reason


def test_buffer_limit_on_a_one_off_job_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        job_options(ordo_pb2.SubmitJobRequest(type="echo", buffer_limit=5), job_id=JOB, now=T0)
    assert e.value.field == "bufferLimit" and "recurring" in e.value.reason


# --- BUFFER_ALL: in apply ------------------------------------------------------


def submit_every_second(store: Store, **options: Any) -> None:
    """A job every second from DUE (its schedule already decided: the ticks below name its times)."""
    opts = json.dumps({"cron": "* * * * * *", "timezone": "UTC", "catch_up": "ONE", **options})
    spec = c.JobSpec(JOB, "echo", "{}", DUE, spec_hash="h", options=opts, first_nominal=DUE)
    apply(store, c.SubmitJobs(request_id=uuid.uuid4().hex, at=T0, node=NODE, jobs=(spec,)))


def tick(k: int) -> c.TriggerJobs:
    """Occurrence ``k`` (0-based) falls due, at DUE + k seconds, and the command says so."""
    due = DUE + k * SEC
    trig = c.Trigger(
        JOB, due, occurrences=(c.Occurrence(due, due, "run"),), next_nominal=due + SEC, next_due=due + SEC
    )
    return c.TriggerJobs(request_id=uuid.uuid4().hex, at=due, node=NODE, triggers=(trig,))


def end_run(store: Store, ordinal: int, at: int) -> None:
    """Run ``ordinal`` of the job is assigned, started and succeeds at ``at``."""
    run = f"{JOB}:{ordinal}"
    apply(
        store,
        c.AssignRuns(
            request_id=uuid.uuid4().hex, at=at, node=NODE, assignments=(c.Assignment(run, 1, NODE),)
        ),
    )
    for kind in ("started", "succeeded"):
        apply(
            store,
            c.RecordRunUpdates(
                request_id=uuid.uuid4().hex, node=NODE, updates=(c.RunUpdate(run, 1, kind, at),)
            ),
        )


def fates(store: Store) -> list[tuple[int, str]]:
    """(seconds after DUE, fate) of every occurrence, oldest first."""
    return [
        ((n - DUE) // SEC, f)
        for n, f in rows(store, "SELECT nominal, fate FROM occurrences ORDER BY nominal")
    ]


async def test_buffer_all_keeps_up_to_its_limit_and_runs_them_in_order(
    store: Store, queries: Queries
) -> None:
    # Given a job every second with overlap BUFFER_ALL and bufferLimit 3
    submit_every_second(store, overlap="BUFFER_ALL", buffer_limit=3)

    # When six occurrences fall due while the first one's run is still open
    for k in range(6):
        apply(store, tick(k))

    # Then three wait and the two after them are skipped, saying the buffer is full
    assert fates(store) == [
        (0, "TRIGGERED"),
        (1, "BUFFERED"),
        (2, "BUFFERED"),
        (3, "BUFFERED"),
        (4, "SKIPPED_OVERLAP"),
        (5, "SKIPPED_OVERLAP"),
    ]
    skipped = rows(store, "SELECT reason FROM occurrences WHERE fate = 'SKIPPED_OVERLAP'")
    assert all("bufferLimit 3" in r[0] and "buffer is full" in r[0] for r in skipped)
    # and ListOccurrences shows the buffered ones with their places in line (newest first)
    page, _ = await queries.occurrences(
        JOB, since=None, until=None, fate="BUFFERED", page_size=10, page_token=""
    )
    assert [((o.nominal - DUE) // SEC, o.buffer_position) for o in page] == [(3, 3), (2, 2), (1, 1)]
    assert "1 buffered ahead of it (overlap BUFFER_ALL)" in page[1].reason

    # When the open run ends, the oldest buffered occurrence runs, then the next, one at a time
    end_run(store, 1, DUE + 6 * SEC)
    assert fates(store)[:4] == [(0, "TRIGGERED"), (1, "TRIGGERED"), (2, "BUFFERED"), (3, "BUFFERED")]
    assert rows(store, "SELECT run_id, state FROM runs WHERE state = 'PENDING'") == [(f"{JOB}:2", "PENDING")]
    page, _ = await queries.occurrences(
        JOB, since=None, until=None, fate="BUFFERED", page_size=10, page_token=""
    )
    assert [((o.nominal - DUE) // SEC, o.buffer_position) for o in page] == [(3, 2), (2, 1)]

    # and with room in the buffer again, the next occurrence waits behind them
    apply(store, tick(6))
    assert fates(store)[-1] == (6, "BUFFERED")

    end_run(store, 2, DUE + 7 * SEC)
    end_run(store, 3, DUE + 8 * SEC)
    end_run(store, 4, DUE + 9 * SEC)
    end_run(store, 7, DUE + 10 * SEC)
    # Then every buffered occurrence ran, in the order of its nominal time, each after the one before
    ran = rows(
        store,
        "SELECT o.nominal, r.finished_at FROM occurrences o JOIN runs r ON r.run_id = o.run_id"
        " WHERE o.fate = 'TRIGGERED' ORDER BY r.triggered_at, o.nominal",
    )
    assert [(n - DUE) // SEC for n, _ in ran] == [0, 1, 2, 3, 6]
    assert [f for _, f in ran] == sorted(f for _, f in ran)
    assert rows(store, "SELECT COUNT(*) FROM occurrences WHERE fate = 'BUFFERED'") == [(0,)]


# --- More than one spec, exclusions and the last day of the month -------------

NY = "America/New_York"


def at(text: str) -> int:
    return parse_rfc3339(text)


def walk(s: Schedule, after: int, n: int) -> list[int]:
    """The next ``n`` nominal times after ``after``."""
    out: list[int] = []
    for _ in range(n):
        nxt = nominal_after(s, after)
        assert nxt is not None
        out.append(nxt)
        after = nxt
    return out


def utc(times: list[int]) -> list[str]:
    return [format_us(t)[:19] for t in times]


def local(times: list[int], zone: str) -> list[str]:
    return [to_datetime(t).astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M%z") for t in times]


def test_l_is_the_last_day_of_each_month_leap_years_included() -> None:
    s = parse_schedule("0 12 L * *")
    assert utc(walk(s, at("2030-01-15T00:00:00Z"), 4)) == [
        "2030-01-31T12:00:00",
        "2030-02-28T12:00:00",
        "2030-03-31T12:00:00",
        "2030-04-30T12:00:00",
    ]
    assert utc(walk(s, at("2032-02-01T00:00:00Z"), 1)) == ["2032-02-29T12:00:00"]


def test_the_next_time_is_the_earliest_of_the_specs_across_spring_forward() -> None:
    # Given a daily 02:30 and a Sunday 09:00 in New York (2026-03-08, a Sunday: 02:00 EST -> 03:00 EDT)
    s = parse_schedule("30 2 * * *", timezone=NY, more=["0 9 * * sun"])
    times = walk(s, at("2026-03-07T12:00:00Z"), 4)
    # Then the gap's 02:30 fires once at 03:00 EDT, before the Sunday spec's 09:00
    assert local(times, NY) == [
        "03-08 03:00-0400",
        "03-08 09:00-0400",
        "03-09 02:30-0400",
        "03-10 02:30-0400",
    ]


def test_the_next_time_is_the_earliest_of_the_specs_across_fall_back() -> None:
    # Given 01:30 daily and every 12 hours from midnight (2026-11-01: 02:00 EDT -> 01:00 EST)
    s = parse_schedule("30 1 * * *", timezone=NY, more=["0 0,12 * * *"])
    times = walk(s, at("2026-10-31T12:00:00Z"), 6)
    # Then 01:30, in the fold, fires at its first pass only, and the specs interleave in order
    assert local(times, NY) == [
        "10-31 12:00-0400",
        "11-01 00:00-0400",
        "11-01 01:30-0400",
        "11-01 12:00-0500",
        "11-02 00:00-0500",
        "11-02 01:30-0500",
    ]


def test_a_time_two_specs_name_fires_once_and_intervals_mix_with_cron() -> None:
    s = parse_schedule("0 9 * * *", more=["0 9 * * mon", "every 12h"])
    assert utc(walk(s, at("2026-03-08T23:00:00Z"), 5)) == [  # Monday 2026-03-09
        "2026-03-09T00:00:00",
        "2026-03-09T09:00:00",
        "2026-03-09T12:00:00",
        "2026-03-10T00:00:00",
        "2026-03-10T09:00:00",
    ]


def test_excluded_dates_are_dates_of_the_time_zone() -> None:
    # Given 00:30 daily in Paris, except on Christmas Day there
    s = parse_schedule("30 0 * * *", timezone="Europe/Paris", exclude_dates=["2026-12-25"])
    # Then the 24th and 26th fire (23:30 UTC the day before), the 25th does not
    assert utc(walk(s, at("2026-12-23T12:00:00Z"), 2)) == ["2026-12-23T23:30:00", "2026-12-25T23:30:00"]


def test_an_exclusion_of_whole_days_passes_over_them_a_day_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given every second, except at weekends (2026-03-13 is a Friday)
    s = parse_schedule("every 1s", exclude_cron=["* * * * sat,sun"])
    # When the search may pass over only a few excluded times
    monkeypatch.setattr(schedule, "MAX_EXCLUDED", 3)
    # Then the weekend's 172,800 seconds are passed over at once
    assert utc(walk(s, at("2026-03-13T23:59:58Z"), 2)) == ["2026-03-13T23:59:59", "2026-03-16T00:00:00"]


def test_a_five_field_exclusion_names_whole_minutes_and_six_fields_seconds() -> None:
    s = parse_schedule("*/20 * * * * *", exclude_cron=["0 12 * * *"])
    assert utc(walk(s, at("2026-03-13T11:59:30Z"), 2)) == ["2026-03-13T11:59:40", "2026-03-13T12:01:00"]
    s = parse_schedule("*/20 * * * * *", exclude_cron=["20 * * * * *", "@hourly"])
    assert utc(walk(s, at("2026-03-13T11:59:30Z"), 3)) == [
        "2026-03-13T11:59:40",
        "2026-03-13T12:01:00",
        "2026-03-13T12:01:40",
    ]


def test_an_exclusion_of_every_time_ends_the_search_with_an_error() -> None:
    s = parse_schedule("0 9 * * *", exclude_cron=["* * * * *"])
    with pytest.raises(InvalidArgument, match="exclusions pass over") as e:
        nominal_after(s, at("2026-03-13T00:00:00Z"))
    assert e.value.field == "excludeCron"
    with pytest.raises(InvalidArgument) as e:
        job_options(
            recurring_request(cron="0 9 * * *", exclude_cron=["* * * * *"]),
            job_id=JOB,
            now=at("2026-03-13T00:00:00Z"),
        )
    assert e.value.field == "excludeCron" and "exclusions pass over" in e.value.reason


def test_jitter_never_reaches_the_next_time_of_another_spec() -> None:
    # Given hourly and 00:30 daily: each spec's own gap allows 59 minutes of jitter, their union 30
    for key in ("a", "b", "c", "d", "e"):
        s = parse_schedule("0 * * * *", more=["30 0 * * *"], jitter=59 * 60 * SEC, key=key)
        times = walk(s, at("2026-03-12T23:59:00Z"), 4)
        fires = [fire_time(s, t) for t in times]
        assert all(a < b for a, b in pairwise(fires)), utc(fires)
        assert fires[0] < times[1]  # 00:00's fire comes before 00:30


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"more_cron": ["0 9 * * *", "0 9 * * xyz"]}, "moreCron[1]", "day-of-week"),
        ({"more_cron": [""]}, "moreCron[0]", "required"),
        ({"more_cron": ["* * * * *"] * 21}, "moreCron", "the limit is 20"),
        ({"exclude_dates": ["2030-02-30"]}, "excludeDates[0]", "not a date of the calendar"),
        ({"exclude_dates": ["30/01/2030"]}, "excludeDates[0]", "YYYY-MM-DD"),
        ({"exclude_cron": ["every 5m"]}, "excludeCron[0]", "not an interval"),
        ({"exclude_cron": ["0 0 * *"]}, "excludeCron[0]", "fields"),
        ({"jitter": duration_pb2.Duration(seconds=3600), "more_cron": ["*/10 * * * *"]}, "jitter", "10m"),
    ],
)
def test_bad_specs_and_exclusions_are_refused_naming_the_field(
    fields: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as e:
        job_options(recurring_request(cron="0 * * * *", **fields), job_id=JOB, now=T0)
    assert e.value.field == field and reason in e.value.reason, e.value


@pytest.mark.parametrize("field", ["more_cron", "exclude_dates", "exclude_cron"])
def test_specs_and_exclusions_apply_only_to_a_recurring_job(field: str) -> None:
    req = ordo_pb2.SubmitJobRequest(type="echo", **{field: ["2030-01-01"]})
    with pytest.raises(InvalidArgument) as e:
        job_options(req, job_id=JOB, now=T0)
    assert (
        "recurring" in e.value.reason
        and e.value.field
        == {
            "more_cron": "moreCron",
            "exclude_dates": "excludeDates",
            "exclude_cron": "excludeCron",
        }[field]
    )


def test_stored_specs_give_the_schedule_the_timekeeper_and_preview_use() -> None:
    # Given a submission with two specs and both kinds of exclusion
    req = recurring_request(
        cron="0 9 * * 1-5",
        timezone=NY,
        more_cron=["0 12 L * *"],
        exclude_dates=["2026-03-31"],
        exclude_cron=["* * * * fri"],
    )
    now = at("2026-03-26T00:00:00Z")  # a Thursday
    options, first, fire = job_options(req, job_id=JOB, now=now)
    assert options["more_cron"] == ["0 12 L * *"]
    assert options["exclude_dates"] == ["2026-03-31"] and options["exclude_cron"] == ["* * * * fri"]
    # Then the stored options give the same schedule, and the first time honours it all
    s = from_options(options, JOB)
    assert s == parse_schedule(
        "0 9 * * 1-5",
        timezone=NY,
        more=["0 12 L * *"],
        exclude_dates=["2026-03-31"],
        exclude_cron=["* * * * fri"],
        key=JOB,
    )
    times = [t for t, _, _ in preview_times(s, now, 5)]
    assert first == fire == times[0]
    # Thursday 26th 09:00; Friday 27th excluded; Monday 30th 09:00; Tuesday 31st (the last day) excluded
    assert local(times, NY) == [
        "03-26 09:00-0400",
        "03-30 09:00-0400",
        "04-01 09:00-0400",
        "04-02 09:00-0400",
        "04-06 09:00-0400",
    ]
    # and the Job message shows them as submitted
    msg = ordo_pb2.Job()
    apply_options(msg, options)
    assert list(msg.more_cron) == ["0 12 L * *"] and list(msg.exclude_dates) == ["2026-03-31"]
    assert list(msg.exclude_cron) == ["* * * * fri"]


def test_a_paused_jobs_next_fire_time_is_never_in_the_past() -> None:
    opts = {"cron": "*/10 * * * * *", "timezone": "UTC"}
    row = JobRow(JOB, "", "echo", {}, "PAUSED", T0, T0, T0, "", NODE, opts, 3, T0 + 10 * SEC)
    # Paused, its first unrecorded time still ahead: that is shown
    assert shown_next_fire(row, now=T0 + 5 * SEC) == T0 + 10 * SEC
    # Once it has passed: the time it fires next if resumed now, not a time in the past
    assert shown_next_fire(row, now=T0 + 25 * SEC) == T0 + 30 * SEC
    # A job that is not paused shows its stored next fire time, and a one-off job none
    assert shown_next_fire(replace(row, state="SCHEDULED"), now=T0 + 25 * SEC) == T0 + 10 * SEC
    assert shown_next_fire(replace(row, options={}), now=T0) is None
