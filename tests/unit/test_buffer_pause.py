"""Overlap BUFFER_ALL and BUFFER_ONE with a pause, a resume or a cancel (issue 17), through apply with fixed
times.

Buffered occurrences fell due while a run was open, before any pause: they keep their fate BUFFERED while
the job is paused (FATE_PAUSED is for occurrences that fall due during the pause) and start nothing; on
resume they run, oldest first, one at a time; a cancel records them CANCELLED. A run is "open" until its
last attempt ends: an attempt that failed with retries left keeps them waiting too.
"""

from __future__ import annotations

import json
import uuid
from itertools import pairwise
from typing import Any

import pytest
from applylog import apply_to as apply
from applylog import store_rows as rows

from ordo_node import commands as c
from ordo_node.queries import Queries
from ordo_node.statemachine.store import Store

SEC = 1_000_000
T0 = 1_900_000_000 * SEC  # 2030-03-17T17:46:40Z
DUE = T0 + 60 * SEC
NODE = "node1"
JOB = "00000000-0000-4000-8000-0000000000b7"
BUFFERING = ("BUFFER_ALL", "BUFFER_ONE")


def submit_every_second(store: Store, **options: Any) -> None:
    """A job every second from DUE (its schedule already decided: the ticks below name its times)."""
    opts = json.dumps({"cron": "* * * * * *", "timezone": "UTC", "catch_up": "ONE", **options})
    spec = c.JobSpec(JOB, "echo", "{}", DUE, spec_hash="h", options=opts, first_nominal=DUE)
    apply(store, c.SubmitJobs(request_id=uuid.uuid4().hex, at=T0, node=NODE, jobs=(spec,)))


def tick(k: int, *, last: bool = False) -> c.TriggerJobs:
    """Occurrence ``k`` (0-based) falls due at DUE + k seconds; ``last``: the schedule has no time after."""
    due = DUE + k * SEC
    after = None if last else due + SEC
    trig = c.Trigger(
        JOB, due, occurrences=(c.Occurrence(due, due, "run"),), next_nominal=after, next_due=after
    )
    return c.TriggerJobs(request_id=uuid.uuid4().hex, at=due, node=NODE, triggers=(trig,))


def pause(store: Store, at: int, *, resume: bool = False) -> Any:
    return apply(
        store, c.PauseJob(request_id=uuid.uuid4().hex, at=at, node=NODE, job_id=JOB, pause=not resume)
    )


def update(store: Store, ordinal: int, kind: str, at: int, attempt: int = 1) -> Any:
    run = f"{JOB}:{ordinal}"
    error = "boom" if kind == "failed" else ""
    return apply(
        store,
        c.RecordRunUpdates(
            request_id=uuid.uuid4().hex,
            node=NODE,
            updates=(c.RunUpdate(run, attempt, kind, at, error=error),),
        ),
    )


def assign(store: Store, ordinal: int, at: int, attempt: int = 1) -> None:
    assignment = c.Assignment(f"{JOB}:{ordinal}", attempt, NODE)
    apply(store, c.AssignRuns(request_id=uuid.uuid4().hex, at=at, node=NODE, assignments=(assignment,)))


def end_run(store: Store, ordinal: int, at: int, attempt: int = 1, kind: str = "succeeded") -> None:
    """Attempt ``attempt`` of run ``ordinal`` is assigned, started and ends (``kind``) at ``at``."""
    assign(store, ordinal, at, attempt)
    update(store, ordinal, "started", at, attempt)
    update(store, ordinal, kind, at, attempt)


def fates(store: Store) -> list[tuple[int, str]]:
    """(seconds after DUE, fate) of every occurrence, oldest first."""
    return [
        ((n - DUE) // SEC, f)
        for n, f in rows(store, "SELECT nominal, fate FROM occurrences ORDER BY nominal")
    ]


def open_runs(store: Store) -> list[tuple[int, int, str]]:
    """(ordinal, attempt, state) of the job's open attempts."""
    return [
        (int(r.rsplit(":", 1)[1]), a, s)
        for r, a, s in rows(
            store,
            "SELECT run_id, attempt, state FROM runs WHERE state IN ('PENDING', 'ASSIGNED', 'RUNNING')"
            " ORDER BY run_id, attempt",
        )
    ]


def job_state(store: Store) -> str:
    return str(rows(store, "SELECT state FROM jobs WHERE id = ?", JOB)[0][0])


def ran_in_order(store: Store) -> list[int]:
    """The occurrences that got a run (seconds after DUE), in the order their runs were triggered; and
    every run started after the one before it ended."""
    ran = rows(
        store,
        "SELECT o.nominal, r.triggered_at, r.finished_at"
        " FROM occurrences o JOIN runs r ON r.run_id = o.run_id"
        " WHERE o.fate = 'TRIGGERED' AND r.attempt = 1 ORDER BY r.triggered_at, o.nominal",
    )
    for (_, _, finished), (_, triggered, _) in pairwise(ran):
        assert finished is not None and triggered >= finished  # one at a time
    return [(n - DUE) // SEC for n, _, _ in ran]


def buffer_of(overlap: str) -> list[tuple[int, str]]:
    """The fates after ticks 0..2 with run 1 open: BUFFER_ALL keeps both, BUFFER_ONE the first."""
    return [
        (0, "TRIGGERED"),
        (1, "BUFFERED"),
        (2, "BUFFERED" if overlap == "BUFFER_ALL" else "SKIPPED_OVERLAP"),
    ]


def buffered_then_paused(store: Store, overlap: str) -> None:
    """Ticks 0..2 fall due while run 1 is open; the job is paused at 2.5 s; run 1 ends at 3 s."""
    submit_every_second(store, overlap=overlap)
    for k in range(3):
        apply(store, tick(k))
    assert fates(store) == buffer_of(overlap)
    pause(store, DUE + 2 * SEC + SEC // 2)
    end_run(store, 1, DUE + 3 * SEC)


@pytest.mark.parametrize("overlap", BUFFERING)
async def test_buffered_occurrences_do_not_start_while_the_job_is_paused(
    store: Store, queries: Queries, overlap: str
) -> None:
    # Given occurrences buffered behind run 1, the job paused, then run 1 ending
    buffered_then_paused(store, overlap)

    # Then nothing of the job runs: the buffered ones stay BUFFERED (not PAUSED: they fell due before the
    # pause) in their places in line, and the job stays PAUSED
    assert open_runs(store) == []
    assert fates(store) == buffer_of(overlap)
    assert job_state(store) == "PAUSED"
    page, _ = await queries.occurrences(
        JOB, since=None, until=None, fate="BUFFERED", page_size=10, page_token=""
    )
    assert [o.buffer_position for o in reversed(page)] == list(range(1, len(page) + 1))


@pytest.mark.parametrize("overlap", BUFFERING)
def test_resume_runs_the_buffered_occurrences_in_order(store: Store, overlap: str) -> None:
    # Given buffered occurrences whose run ended while the job was paused
    buffered_then_paused(store, overlap)

    # When the job is resumed, with no occurrence falling due meanwhile
    pause(store, DUE + 4 * SEC, resume=True)

    # Then the oldest buffered occurrence runs at once, the job shows it
    assert open_runs(store) == [(2, 1, "PENDING")]
    assert fates(store)[1] == (1, "TRIGGERED")
    assert job_state(store) == "TRIGGERED"
    # and the next one (BUFFER_ALL) when it ends, one at a time, oldest first
    end_run(store, 2, DUE + 5 * SEC)
    if overlap == "BUFFER_ALL":
        assert open_runs(store) == [(3, 1, "PENDING")]
        end_run(store, 3, DUE + 6 * SEC)
    assert rows(store, "SELECT COUNT(*) FROM occurrences WHERE fate = 'BUFFERED'") == [(0,)]
    assert ran_in_order(store) == ([0, 1, 2] if overlap == "BUFFER_ALL" else [0, 1])


def test_resume_after_the_schedule_ended_still_runs_the_buffered_occurrences(store: Store) -> None:
    # Given a BUFFER_ALL job whose schedule ends with occurrence 2 (no time after it), 1 and 2 buffered
    submit_every_second(store, overlap="BUFFER_ALL")
    apply(store, tick(0))
    apply(store, tick(1))
    apply(store, tick(2, last=True))
    # and paused while run 1 was open, which then ended
    pause(store, DUE + 2 * SEC + SEC // 2)
    end_run(store, 1, DUE + 3 * SEC)

    # When it is resumed
    pause(store, DUE + 4 * SEC, resume=True)

    # Then it does not end SUCCEEDED with occurrences still buffered: they run, then it ends
    assert job_state(store) == "TRIGGERED" and open_runs(store) == [(2, 1, "PENDING")]
    end_run(store, 2, DUE + 5 * SEC)
    end_run(store, 3, DUE + 6 * SEC)
    assert ran_in_order(store) == [0, 1, 2]
    assert job_state(store) == "SUCCEEDED"


@pytest.mark.parametrize("overlap", BUFFERING)
def test_the_first_trigger_after_a_resume_runs_the_buffered_occurrences_first(
    store: Store, overlap: str
) -> None:
    # Given buffered occurrences whose run ended while the job was paused, and the job resumed
    buffered_then_paused(store, overlap)
    pause(store, DUE + 4 * SEC, resume=True)

    # When the first trigger after the resume records the times of the pause and one that runs
    due = DUE + 3 * SEC
    paused = "the job was paused; catchUp ONE"
    occurrences = (
        c.Occurrence(due, due, "paused", paused),
        c.Occurrence(due + SEC, due + SEC, "paused", paused),
        c.Occurrence(DUE + 5 * SEC, DUE + 5 * SEC, "run"),
    )
    trigger = c.Trigger(JOB, due, occurrences=occurrences, next_nominal=DUE + 6 * SEC, next_due=DUE + 6 * SEC)
    apply(store, c.TriggerJobs(request_id=uuid.uuid4().hex, at=DUE + 5 * SEC, node=NODE, triggers=(trigger,)))

    # Then the oldest buffered occurrence has the one open run, and the new one waits behind the buffer
    # (with BUFFER_ONE it is the one that waits, as the only buffered occurrence)
    assert open_runs(store) == [(2, 1, "PENDING")]
    assert fates(store)[1:] == [
        (1, "TRIGGERED"),
        *buffer_of(overlap)[2:],
        (3, "PAUSED"),
        (4, "PAUSED"),
        (5, "BUFFERED"),
    ]
    # and as each run ends the next runs, in the order of their times
    for k in range(3):
        for ordinal, attempt, _ in open_runs(store):
            end_run(store, ordinal, DUE + (6 + k) * SEC, attempt)
    assert open_runs(store) == []
    assert ran_in_order(store) == ([0, 1, 2, 5] if overlap == "BUFFER_ALL" else [0, 1, 5])


@pytest.mark.parametrize("overlap", BUFFERING)
def test_a_resume_while_the_run_is_still_open_starts_nothing_beside_it(store: Store, overlap: str) -> None:
    # Given occurrences buffered behind run 1, the job paused and resumed while run 1 is still open
    submit_every_second(store, overlap=overlap)
    for k in range(3):
        apply(store, tick(k))
    pause(store, DUE + 2 * SEC + SEC // 2)
    pause(store, DUE + 2 * SEC + SEC * 3 // 4, resume=True)

    # Then run 1 is still the only open one and the others still wait
    assert open_runs(store) == [(1, 1, "PENDING")]
    assert fates(store) == buffer_of(overlap)

    # When run 1 ends, the oldest buffered one runs
    end_run(store, 1, DUE + 3 * SEC)
    assert open_runs(store) == [(2, 1, "PENDING")]
    assert fates(store)[1] == (1, "TRIGGERED")


def test_a_failed_attempt_with_retries_left_keeps_the_buffered_occurrences_waiting(store: Store) -> None:
    # Given a BUFFER_ALL job with two attempts per run, occurrences 1 and 2 buffered behind run 1
    submit_every_second(store, overlap="BUFFER_ALL", max_attempts=2)
    for k in range(3):
        apply(store, tick(k))

    # When run 1's first attempt fails (its retry is pending)
    end_run(store, 1, DUE + 3 * SEC, kind="failed")

    # Then the run is still open, and no buffered occurrence runs beside it
    assert open_runs(store) == [(1, 2, "PENDING")]
    assert fates(store) == buffer_of("BUFFER_ALL")

    # When the retry succeeds, the run has ended: the oldest buffered one runs
    end_run(store, 1, DUE + 5 * SEC, attempt=2)
    assert open_runs(store) == [(2, 1, "PENDING")]


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
async def test_cancel_records_the_buffered_occurrences_cancelled(
    store: Store, queries: Queries, paused: bool
) -> None:
    # Given occurrences buffered behind run 1 (and, in one case, the job paused and run 1 ended)
    if paused:
        buffered_then_paused(store, "BUFFER_ALL")
    else:
        submit_every_second(store, overlap="BUFFER_ALL")
        for k in range(3):
            apply(store, tick(k))

    # When the job is cancelled
    apply(store, c.CancelJob(request_id=uuid.uuid4().hex, at=DUE + 4 * SEC, node=NODE, job_id=JOB))

    # Then nothing runs and nothing is shown waiting: the buffered occurrences are CANCELLED, saying why
    assert open_runs(store) == []
    assert fates(store) == [(0, "TRIGGERED"), (1, "CANCELLED"), (2, "CANCELLED")]
    reasons = rows(store, "SELECT reason, decided_at FROM occurrences WHERE fate = 'CANCELLED'")
    assert reasons == [("it was buffered, waiting for the previous run to end", DUE + 4 * SEC)] * 2
    page, _ = await queries.occurrences(
        JOB, since=None, until=None, fate="BUFFERED", page_size=10, page_token=""
    )
    assert page == []
    assert job_state(store) == "CANCELLED"
