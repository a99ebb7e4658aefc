"""Backfill with fixed clocks: the choice by stored fate, apply's runs, and the API's range."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from applylog import Log, rows

from ordo_node import commands as c
from ordo_node.api.backfill import backfill_command, backfill_range
from ordo_node.errors import FailedPrecondition, InvalidArgument
from ordo_node.pb import ordo_pb2
from ordo_node.queries import JobRow
from ordo_node.statemachine.backfill import BACKFILL_PRIORITY, chosen
from ordo_node.timeutil import format_us

SEC = 1_000_000
T = 1_900_000_000 * SEC
JOB = "00000000-0000-4000-8000-000000000001"
NODE = "node1"


def rid() -> str:
    return uuid.uuid4().hex


def every_second(apply: Log) -> None:
    """A job every second from T: T+0 failed, T+1 MISSED, T+2 PAUSED, T+3 succeeded, T+4 unrecorded."""
    options = json.dumps({"cron": "every 1s", "timezone": "UTC", "catch_up": "ONE", "overlap": "ALLOW"})
    spec = c.JobSpec(JOB, "echo", "{}", T, spec_hash="h", options=options, first_nominal=T)
    apply(c.SubmitJobs(request_id=rid(), at=T - SEC, node=NODE, jobs=(spec,)))
    occ = (
        c.Occurrence(T, T, "run"),
        c.Occurrence(T + SEC, T + SEC, "missed", "no leader"),
        c.Occurrence(T + 2 * SEC, T + 2 * SEC, "paused", "paused"),
        c.Occurrence(T + 3 * SEC, T + 3 * SEC, "run"),
    )
    trig = c.Trigger(JOB, T, occurrences=occ, next_nominal=T + 5 * SEC, next_due=T + 5 * SEC)
    apply(c.TriggerJobs(request_id=rid(), at=T + 3 * SEC, node=NODE, triggers=(trig,)))
    assign = tuple(c.Assignment(f"{JOB}:{o}", 1, NODE) for o in (1, 4))
    apply(c.AssignRuns(request_id=rid(), at=T + 3 * SEC, node=NODE, assignments=assign))
    apply(
        c.RecordRunUpdates(
            request_id=rid(),
            node=NODE,
            updates=(
                c.RunUpdate(f"{JOB}:1", 1, "failed", T + 4 * SEC, error="boom"),
                c.RunUpdate(f"{JOB}:4", 1, "succeeded", T + 4 * SEC, result="{}"),
            ),
        )
    )


def backfill(reprocess: str, limit: int = 0, seconds: range = range(5)) -> c.BackfillOccurrences:
    occs = tuple(c.Occurrence(T + s * SEC, T + s * SEC, "backfill") for s in seconds)
    return c.BackfillOccurrences(rid(), T + 10 * SEC, NODE, JOB, reprocess, occs, limit)


def test_chosen_by_fate() -> None:
    assert chosen("MISSING", None, "") and chosen("MISSING", "MISSED", "") and chosen("MISSING", "PAUSED", "")
    assert not chosen("MISSING", "TRIGGERED", "FAILED")
    assert chosen("FAILED", "TRIGGERED", "FAILED") and not chosen("FAILED", "TRIGGERED", "SUCCEEDED")
    assert chosen("ALL", "TRIGGERED", "SUCCEEDED") and not chosen("ALL", "TRIGGERED", "RUNNING")
    assert not chosen("ALL", "BUFFERED", "")


def test_backfill_missing_runs_exactly_the_occurrences_that_never_ran(apply: Log, db_path: Path) -> None:
    # Given an every-second job with one failed, one missed, one paused, one succeeded and one unrecorded time
    every_second(apply)
    # When MISSING is backfilled over the five seconds, with at most 1 at once
    result = apply(backfill("MISSING", limit=1))
    # Then the missed, paused and unrecorded seconds get runs, recorded TRIGGERED with reason "backfill"
    assert [r[0] for r in result["runs"]] == [T + SEC, T + 2 * SEC, T + 4 * SEC]
    fates = rows(
        db_path, "SELECT nominal, fate, reason FROM occurrences WHERE job_id = ? ORDER BY nominal", JOB
    )
    assert fates[1:3] == [(T + SEC, "TRIGGERED", "backfill"), (T + 2 * SEC, "TRIGGERED", "backfill")]
    assert fates[4] == (T + 4 * SEC, "TRIGGERED", "backfill")
    assert fates[0][1] == "TRIGGERED" and fates[0][2] != "backfill"
    # after any live run (priority), and one at a time (the backfill's key, limit 1)
    runs = rows(
        db_path,
        "SELECT priority, concurrency_key, concurrency_limit FROM runs WHERE run_id IN (?, ?, ?)",
        *(r[1] for r in result["runs"]),
    )
    assert runs == [(BACKFILL_PRIORITY, f"backfill:{JOB}", 1)] * 3
    history = rows(db_path, "SELECT message FROM events WHERE job_id = ? AND message LIKE 'backfill%'", JOB)
    assert history[0][0] == f"backfill {format_us(T + SEC)} (was MISSED)"
    # And a second backfill of the same range finds nothing missing
    assert apply(backfill("MISSING"))["runs"] == []


def test_backfill_failed_and_refusals(apply: Log) -> None:
    every_second(apply)
    assert [r[0] for r in apply(backfill("FAILED"))["runs"]] == [T]
    one_off = c.JobSpec("00000000-0000-4000-8000-000000000002", "echo", "{}", T, spec_hash="x")
    apply(c.SubmitJobs(request_id=rid(), at=T, node=NODE, jobs=(one_off,)))
    refused = apply(
        c.BackfillOccurrences(rid(), T, NODE, one_off.job_id, "MISSING", (c.Occurrence(T, T, "backfill"),))
    )
    assert refused["error"] == "FAILED_PRECONDITION"


def job_row(next_fire: int | None, **options: Any) -> JobRow:
    opts = {"cron": "every 1s", "timezone": "UTC", **options}
    return JobRow(JOB, "", "echo", {}, "SCHEDULED", T, T, T, "", NODE, opts, 5, next_fire)


def test_the_range_stops_at_the_live_schedule() -> None:
    # Times from T to T+10 s, the job's next fire at T+5 s: T..T+4 s are past, the rest are live
    assert [n for n, _ in backfill_range(job_row(T + 5 * SEC), T, T + 10 * SEC)] == [
        T + s * SEC for s in range(5)
    ]
    # and none before the job's first fire time (T: job_row's run_at)
    assert [n for n, _ in backfill_range(job_row(T + 2 * SEC), T - 10 * SEC, T + 10 * SEC)] == [T, T + SEC]


def test_backfill_requests_are_checked() -> None:
    job = job_row(T + 5 * SEC)
    req = ordo_pb2.BackfillScheduleRequest(
        job_id=JOB, to="2030-03-17T17:46:50Z", overlap=ordo_pb2.OVERLAP_SKIP
    )
    setattr(req, "from", "2030-03-17T17:46:40Z")
    reprocess, limit, (since, until) = backfill_command(req, job, T + 100 * SEC)
    assert (reprocess, limit, until - since) == ("MISSING", 1, 10 * SEC)
    for field, change in (
        ("from", {"from": ""}),
        ("to", {"to": "2030-03-17T17:46:00Z"}),
        ("overlap", {"overlap": ordo_pb2.OVERLAP_CANCEL_OTHER}),
        ("maxConcurrent", {"max_concurrent": -1}),
        ("reprocess", {"reprocess": 9}),
    ):
        bad = ordo_pb2.BackfillScheduleRequest()
        bad.CopyFrom(req)
        for k, val in change.items():
            setattr(bad, k, val)
        with pytest.raises(InvalidArgument) as e:
            backfill_command(bad, job, T + 100 * SEC)
        assert e.value.field == field
    with pytest.raises(FailedPrecondition):
        backfill_command(req, JobRow(JOB, "", "echo", {}, "SCHEDULED", T, T, T, "", NODE, {}, 1, None), T)
    # A cancelled job is refused as apply refuses it, dry run or not: a dry run never lists what would not run
    cancelled = dataclasses.replace(job, state="CANCELLED")
    with pytest.raises(FailedPrecondition, match="CANCELLED"):
        backfill_command(req, cancelled, T + 100 * SEC)
