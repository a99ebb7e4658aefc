"""Flow control in the state machine, with fixed clocks: run after and concurrency keys.

Every test applies commands to a real store file (the helpers of test_store.py)
and reads the tables back through a separate connection.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from applylog import Log, rows

from ordo_node import commands as c
from ordo_node.api.explain import explain
from ordo_node.api.options import flow_options
from ordo_node.errors import InvalidArgument
from ordo_node.pb import ordo_pb2
from ordo_node.queries import JobRow, OccurrenceRow
from ordo_node.statemachine import ratelimit
from ordo_node.statemachine.flow import verdict

SEC = 1_000_000
DUE = 1_900_000_060 * SEC  # 2030-03-17, in microseconds
NODE = "node1"
OTHER = "node2"


def jid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def run_of(n: int) -> str:
    return f"{jid(n)}:1"


def rid() -> str:
    return uuid.uuid4().hex


def submit(*specs: c.JobSpec, at: int = DUE - 60 * SEC) -> c.SubmitJobs:
    return c.SubmitJobs(request_id=rid(), at=at, node=NODE, jobs=specs)


def trigger(n: int, due: int = DUE, *, at: int = DUE + SEC) -> c.TriggerJobs:
    return c.TriggerJobs(request_id=rid(), at=at, node=NODE, triggers=(c.Trigger(jid(n), due),))


def report(node: str, *updates: c.RunUpdate) -> c.RecordRunUpdates:
    return c.RecordRunUpdates(request_id=rid(), node=node, updates=updates)


def job_state(path: Path, n: int) -> str:
    return str(rows(path, "SELECT state FROM jobs WHERE id = ?", jid(n))[0][0])


def flow_spec(n: int, *, due: int = DUE, **options: Any) -> c.JobSpec:
    return c.JobSpec(
        job_id=jid(n),
        type="echo",
        payload="{}",
        run_at=due,
        spec_hash=f"h{n}",
        options=json.dumps(options) if options else "",
    )


def after(n: int, *deps: int, condition: str = "SUCCEEDED") -> c.JobSpec:
    return flow_spec(n, after=[jid(d) for d in deps], after_condition=condition)


def keyed(n: int, key: str = "acme", limit: int = 2) -> c.JobSpec:
    return flow_spec(n, concurrency_key=key, concurrency_limit=limit)


def run_to_end(apply: Log, n: int, outcome: str, at: int = DUE + 4 * SEC) -> None:
    """Job ``n`` (due at DUE): triggered, assigned to OTHER, started, then ``outcome``."""
    apply(trigger(n))
    apply(
        c.AssignRuns(
            request_id=rid(), at=DUE + 2 * SEC, node=NODE, assignments=(c.Assignment(run_of(n), 1, OTHER),)
        )
    )
    apply(report(OTHER, c.RunUpdate(run_of(n), 1, "started", DUE + 3 * SEC)))
    end = c.RunUpdate(run_of(n), 1, outcome, at, result="{}" if outcome == "succeeded" else "", error="boom")
    apply(report(OTHER, end))


def armed(path: Path, n: int) -> tuple[int, int | None]:
    return rows(path, "SELECT armed, due_at FROM jobs WHERE id = ?", jid(n))[0]


# --- run after -----------------------------------------------------------------------------------


def test_verdict_is_pure() -> None:
    # Given two jobs waited for, when one is still running: wait; when both succeeded: run.
    assert verdict(["a", "b"], "SUCCEEDED", {"a": "SUCCEEDED", "b": "RUNNING"}) == ("wait", "")
    assert verdict(["a", "b"], "SUCCEEDED", {"a": "SUCCEEDED", "b": "SUCCEEDED"})[0] == "run"
    # One failed: skip, naming it, even while the other still runs.
    what, why = verdict(["a", "b"], "SUCCEEDED", {"a": "RUNNING", "b": "FAILED"})
    assert what == "skip" and "job b ended FAILED" in why
    # FINISHED: any end counts, a skipped job's too.
    assert verdict(["a", "b"], "FINISHED", {"a": "FAILED", "b": "SKIPPED"})[0] == "run"
    assert verdict(["a", "b"], "FINISHED", {"a": "FAILED", "b": "TRIGGERED"}) == ("wait", "")


def test_job_after_another_waits_then_is_armed_when_it_succeeds(apply: Log, db_path: Path) -> None:
    # Given B after A, both submitted at once
    apply(submit(flow_spec(1), after(2, 1)))
    assert job_state(db_path, 2) == "WAITING"
    assert armed(db_path, 2)[0] == 0
    # When A succeeds at DUE + 4 s
    run_to_end(apply, 1, "succeeded")
    # Then B is armed at that time (its own runAt, DUE, is past), and says why in its history
    assert job_state(db_path, 2) == "SCHEDULED"
    assert armed(db_path, 2) == (1, DUE + 4 * SEC)
    msgs = [r[0] for r in rows(db_path, "SELECT message FROM events WHERE job_id = ? ORDER BY seq", jid(2))]
    assert any(f"after jobs {jid(1)} SUCCEEDED" in m for m in msgs)
    # And it is triggered like any job
    apply(trigger(2, due=DUE + 4 * SEC, at=DUE + 5 * SEC))
    assert rows(db_path, "SELECT state FROM runs WHERE job_id = ?", jid(2)) == [("PENDING",)]


def test_job_after_a_failed_one_is_skipped_and_so_is_the_chain(apply: Log, db_path: Path) -> None:
    # Given C after B after A, and D after A with FINISHED
    apply(submit(flow_spec(1), after(2, 1), after(3, 2), after(4, 1, condition="FINISHED")))
    # When A fails
    run_to_end(apply, 1, "failed")
    # Then B and C are SKIPPED with a reason naming the job; D runs
    assert job_state(db_path, 1) == "FAILED"
    assert job_state(db_path, 2) == "SKIPPED"
    assert job_state(db_path, 3) == "SKIPPED"
    assert job_state(db_path, 4) == "SCHEDULED"
    fate = rows(db_path, "SELECT fate, reason FROM occurrences WHERE job_id = ?", jid(2))
    assert fate[0][0] == "SKIPPED" and f"job {jid(1)} ended FAILED" in fate[0][1]
    assert (
        f"job {jid(2)} ended SKIPPED"
        in rows(db_path, "SELECT reason FROM occurrences WHERE job_id = ?", jid(3))[0][0]
    )


def test_job_after_jobs_already_ended_is_decided_at_submission(apply: Log, db_path: Path) -> None:
    apply(submit(flow_spec(1), flow_spec(2)))
    run_to_end(apply, 1, "succeeded")
    run_to_end(apply, 2, "failed")
    apply(submit(after(3, 1), after(4, 2), at=DUE + 10 * SEC))
    assert job_state(db_path, 3) == "SCHEDULED" and armed(db_path, 3) == (1, DUE)
    assert job_state(db_path, 4) == "SKIPPED"


def test_cancelled_dependency_skips_and_unknown_one_is_refused(apply: Log, db_path: Path) -> None:
    apply(submit(flow_spec(1), after(2, 1)))
    apply(c.CancelJob(request_id=rid(), at=DUE, node=NODE, job_id=jid(1)))
    assert job_state(db_path, 2) == "SKIPPED"
    result = apply(submit(after(3, 99)))
    assert result == {"error": "NOT_FOUND", "message": f"after: no job {jid(99)}"}


def test_after_options_are_validated() -> None:
    ok = flow_options(ordo_pb2.SubmitJobRequest(after=[jid(1)]), "")
    assert ok == {"after": [jid(1)], "after_condition": "SUCCEEDED"}
    for req, field in (
        (ordo_pb2.SubmitJobRequest(after=["x"]), "after[0]"),
        (ordo_pb2.SubmitJobRequest(after=[jid(1), jid(1)]), "after"),
        (ordo_pb2.SubmitJobRequest(after=[jid(1)], cron="* * * * *"), "after"),
        (ordo_pb2.SubmitJobRequest(after_condition=2), "afterCondition"),
        (ordo_pb2.SubmitJobRequest(concurrency_key="k"), "concurrencyLimit"),
        (ordo_pb2.SubmitJobRequest(concurrency_limit=2), "concurrencyLimit"),
        (ordo_pb2.SubmitJobRequest(concurrency_key="k" * 201, concurrency_limit=1), "concurrencyKey"),
    ):
        with pytest.raises(InvalidArgument) as e:
            flow_options(req, "")
        assert e.value.field == field


# --- concurrency keys ----------------------------------------------------------------------------


def trigger_together(apply: Log, ns: Iterable[int]) -> None:
    """Jobs ``ns`` (due at DUE) triggered by one command."""
    apply(
        c.TriggerJobs(
            request_id=rid(), at=DUE + SEC, node=NODE, triggers=tuple(c.Trigger(jid(n), DUE) for n in ns)
        )
    )


def assign_all(apply: Log, ns: list[int], at: int = DUE + 2 * SEC) -> Any:
    return apply(
        c.AssignRuns(
            request_id=rid(),
            at=at,
            node=NODE,
            assignments=tuple(c.Assignment(run_of(n), 1, OTHER) for n in ns),
        )
    )


def test_concurrency_key_holds_runs_over_the_limit_and_releases_on_every_end(
    apply: Log, db_path: Path
) -> None:
    # Given four jobs with key 'acme' (limit 2) triggered together
    apply(submit(*(keyed(n) for n in range(1, 5))))
    trigger_together(apply, range(1, 5))
    # When the dispatcher offers all four at once
    result = assign_all(apply, [1, 2, 3, 4])
    # Then two are assigned; the others stay pending, WAITING with the reason
    assert [a[0] for a in result["assigned"]] == [run_of(1), run_of(2)]
    for n in (3, 4):
        assert job_state(db_path, n) == "WAITING"
        assert rows(db_path, "SELECT waiting FROM runs WHERE run_id = ?", run_of(n)) == [
            ("concurrency key 'acme' at its limit of 2",)
        ]
    # When one fails, a slot frees: 3 is assigned, 4 still refused
    apply(report(OTHER, c.RunUpdate(run_of(1), 1, "failed", DUE + 3 * SEC, error="x")))
    result = assign_all(apply, [3, 4], at=DUE + 4 * SEC)
    assert [a[0] for a in result["assigned"]] == [run_of(3)]
    # An attempt given up (LOST) frees its slot too: its new attempt and 4 compete for one slot
    apply(
        c.ExpireRuns(
            request_id=rid(), at=DUE + 5 * SEC, node=NODE, runs=(c.RunRef(run_of(2), 1),), reason="gone"
        )
    )
    result = assign_all(apply, [4], at=DUE + 6 * SEC)
    assert [a[0] for a in result["assigned"]] == [run_of(4)]
    assert job_state(db_path, 4) == "TRIGGERED"
    # The key is full again: 2's new attempt says so
    assert rows(db_path, "SELECT waiting FROM runs WHERE run_id = ? AND attempt = 2", run_of(2)) == [
        ("concurrency key 'acme' at its limit of 2",)
    ]
    assert job_state(db_path, 2) == "WAITING"
    # A cancelled attempt frees its slot: 2's new attempt gets it
    apply(c.CancelJob(request_id=rid(), at=DUE + 7 * SEC, node=NODE, job_id=jid(3)))
    result = apply(
        c.AssignRuns(
            request_id=rid(), at=DUE + 8 * SEC, node=NODE, assignments=(c.Assignment(run_of(2), 2, OTHER),)
        )
    )
    assert result["assigned"] == [[run_of(2), 2, OTHER]]
    held = rows(
        db_path,
        "SELECT COUNT(*) FROM runs WHERE concurrency_key = 'acme' AND finished_at IS NULL"
        " AND state != 'PENDING'",
    )
    assert held == [(2,)]


def test_other_keys_and_plain_jobs_are_not_held(apply: Log, db_path: Path) -> None:
    apply(
        submit(keyed(1, limit=1), keyed(2, limit=1), keyed(3, key="other", limit=1), flow_spec(4, priority=1))
    )
    trigger_together(apply, range(1, 5))
    result = assign_all(apply, [1, 2, 3, 4])
    assert sorted(a[0] for a in result["assigned"]) == [run_of(1), run_of(3), run_of(4)]
    assert job_state(db_path, 2) == "WAITING"


# --- pauseOnFailure ------------------------------------------------------------------------------


def recurring(apply: Log, pause_on_failure: int) -> None:
    """Job 1 every second from DUE, its first three occurrences triggered and running on OTHER."""
    options = {
        "cron": "every 1s",
        "timezone": "UTC",
        "overlap": "ALLOW",
        "pause_on_failure": pause_on_failure,
    }
    spec = c.JobSpec(jid(1), "echo", "{}", DUE, spec_hash="h", options=json.dumps(options), first_nominal=DUE)
    apply(submit(spec))
    occ = tuple(c.Occurrence(DUE + s * SEC, DUE + s * SEC, "run") for s in range(3))
    trig = c.Trigger(jid(1), DUE, occurrences=occ, next_nominal=DUE + 3 * SEC, next_due=DUE + 3 * SEC)
    apply(c.TriggerJobs(request_id=rid(), at=DUE + 2 * SEC, node=NODE, triggers=(trig,)))
    runs = tuple(c.Assignment(f"{jid(1)}:{o}", 1, OTHER) for o in (1, 2, 3))
    apply(c.AssignRuns(request_id=rid(), at=DUE + 2 * SEC, node=NODE, assignments=runs))


def end(apply: Log, ordinal: int, kind: str, at: int) -> None:
    update = c.RunUpdate(f"{jid(1)}:{ordinal}", 1, kind, at, error="boom" if kind == "failed" else "")
    apply(report(OTHER, update))


def test_pause_on_failure_pauses_after_n_failed_occurrences_in_a_row(apply: Log, db_path: Path) -> None:
    # Given a recurring job with pauseOnFailure 2
    recurring(apply, 2)
    # When its first occurrence fails, it goes on
    end(apply, 1, "failed", DUE + 3 * SEC)
    assert job_state(db_path, 1) != "PAUSED"
    # When the second fails too, it pauses itself, saying why
    end(apply, 2, "failed", DUE + 4 * SEC)
    assert job_state(db_path, 1) == "PAUSED"
    assert rows(db_path, "SELECT armed, paused_at FROM jobs WHERE id = ?", jid(1)) == [(0, DUE + 4 * SEC)]
    notes = rows(db_path, "SELECT message FROM events WHERE job_id = ? AND type = 'PAUSED'", jid(1))
    assert notes == [("paused itself: 2 consecutive occurrences failed (pauseOnFailure 2)",)]


def test_a_run_failing_after_the_pause_adds_no_second_note(apply: Log, db_path: Path) -> None:
    # Given a job that paused itself while its third occurrence was still running
    recurring(apply, 2)
    end(apply, 1, "failed", DUE + 3 * SEC)
    end(apply, 2, "failed", DUE + 4 * SEC)
    # When that run fails too
    end(apply, 3, "failed", DUE + 5 * SEC)
    # Then the job is still paused from the first time, with one note
    assert rows(db_path, "SELECT state, paused_at FROM jobs WHERE id = ?", jid(1)) == [
        ("PAUSED", DUE + 4 * SEC)
    ]
    paused = rows(db_path, "SELECT COUNT(*) FROM events WHERE job_id = ? AND type = 'PAUSED'", jid(1))
    assert paused == [(1,)]


def test_a_resume_starts_a_fresh_count(apply: Log, db_path: Path) -> None:
    # Given a job that paused itself after two failures, resumed while its third occurrence ran
    recurring(apply, 2)
    end(apply, 1, "failed", DUE + 3 * SEC)
    end(apply, 2, "failed", DUE + 4 * SEC)
    apply(c.PauseJob(request_id=rid(), at=DUE + 5 * SEC, node=NODE, job_id=jid(1), pause=False))
    assert job_state(db_path, 1) == "TRIGGERED"  # its third run is still open
    # When that occurrence, due before the resume, fails as well
    end(apply, 3, "failed", DUE + 6 * SEC)
    # Then the failures before the resume do not pause it again
    assert job_state(db_path, 1) != "PAUSED"
    assert rows(db_path, "SELECT COUNT(*) FROM events WHERE job_id = ? AND type = 'PAUSED'", jid(1)) == [(1,)]


def test_a_success_between_failures_keeps_it_running(apply: Log, db_path: Path) -> None:
    recurring(apply, 2)
    end(apply, 1, "failed", DUE + 3 * SEC)
    end(apply, 2, "succeeded", DUE + 4 * SEC)
    end(apply, 3, "failed", DUE + 5 * SEC)
    assert job_state(db_path, 1) == "SCHEDULED"


def test_pause_on_failure_is_validated() -> None:
    assert flow_options(ordo_pb2.SubmitJobRequest(cron="every 1s", pause_on_failure=3), "") == {
        "pause_on_failure": 3
    }
    for req in (
        ordo_pb2.SubmitJobRequest(pause_on_failure=3),
        ordo_pb2.SubmitJobRequest(cron="every 1s", pause_on_failure=-1),
        ordo_pb2.SubmitJobRequest(cron="every 1s", pause_on_failure=1001),
    ):
        with pytest.raises(InvalidArgument) as e:
            flow_options(req, "jobs[0].")
        assert e.value.field == "jobs[0].pauseOnFailure"


# --- rate limits ---------------------------------------------------------------------------------


def test_the_token_bucket_is_timed_by_the_commands(db_path: Path) -> None:
    # Given a bucket of 5/s (200 ms a token) and a burst of 2, on an empty table
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("CREATE TABLE rate_buckets (key TEXT PRIMARY KEY, tat INTEGER NOT NULL)")
        step = 200_000
        # Two tokens at once, then the third only 200 ms after the first
        assert ratelimit.take(db, "k", step, 2, DUE) is None
        assert ratelimit.take(db, "k", step, 2, DUE) is None
        assert ratelimit.take(db, "k", step, 2, DUE + 1) == DUE + step
        assert ratelimit.take(db, "k", step, 2, DUE + step) is None
        # A command with an older time (another leader's clock) takes nothing it should not
        assert ratelimit.take(db, "k", step, 2, DUE) == DUE + 2 * step
        # Other keys have buckets of their own; a quiet spell refills up to the burst only
        assert ratelimit.take(db, "other", step, 2, DUE) is None
        later = DUE + 10 * SEC
        assert [ratelimit.take(db, "k", step, 2, later) for _ in range(3)] == [None, None, later + step]


def test_a_run_over_its_rate_waits_for_the_next_token(apply: Log, db_path: Path) -> None:
    # Given three jobs with the rate limit 'api' of 5/s, burst 1, triggered together
    rate = {"key": "api", "interval": 200_000, "burst": 1, "text": "5/s"}
    apply(submit(*(flow_spec(n, rate_limit=rate) for n in (1, 2, 3))))
    apply(
        c.TriggerJobs(
            request_id=rid(), at=DUE, node=NODE, triggers=tuple(c.Trigger(jid(n), DUE) for n in (1, 2, 3))
        )
    )
    # When all three are offered at DUE + 1 s: one is assigned
    assert [a[0] for a in assign_all(apply, [1, 2, 3], at=DUE + SEC)["assigned"]] == [run_of(1)]
    # Then the others wait for the next token (200 ms later), WAITING and saying why
    assert rows(db_path, "SELECT waiting, not_before FROM runs WHERE run_id = ?", run_of(2)) == [
        ("rate limit 'api' of 5/s (burst 1)", DUE + SEC + 200_000)
    ]
    assert job_state(db_path, 2) == "WAITING"
    # And at that time one more goes
    assert [a[0] for a in assign_all(apply, [2, 3], at=DUE + SEC + 200_000)["assigned"]] == [run_of(2)]


def test_rate_limits_are_validated() -> None:
    ok = flow_options(ordo_pb2.SubmitJobRequest(rate_limit=ordo_pb2.RateLimit(key="api", per_minute=30)), "")
    assert ok == {"rate_limit": {"key": "api", "interval": 2_000_000, "burst": 1, "text": "30/min"}}
    for r, field in (
        (ordo_pb2.RateLimit(per_second=5), "rateLimit.key"),
        (ordo_pb2.RateLimit(key="k"), "rateLimit.perSecond"),
        (ordo_pb2.RateLimit(key="k", per_second=5, per_minute=5), "rateLimit.perSecond"),
        (ordo_pb2.RateLimit(key="k", per_second=-1), "rateLimit.perSecond"),
        (ordo_pb2.RateLimit(key="k", per_minute=float("inf")), "rateLimit.perMinute"),
        (ordo_pb2.RateLimit(key="k", per_second=5, burst=-2), "rateLimit.burst"),
    ):
        with pytest.raises(InvalidArgument) as e:
            flow_options(ordo_pb2.SubmitJobRequest(rate_limit=r), "")
        assert e.value.field == field


# --- history and ExplainOccurrence name the key or limit -----------------------------------------


def test_history_names_the_key_that_held_a_run_once(apply: Log, db_path: Path) -> None:
    # Given three jobs of key 'acme' (limit 1), offered twice while the key is full
    apply(submit(*(keyed(n, limit=1) for n in (1, 2, 3))))
    apply(
        c.TriggerJobs(
            request_id=rid(),
            at=DUE + SEC,
            node=NODE,
            triggers=tuple(c.Trigger(jid(n), DUE) for n in (1, 2, 3)),
        )
    )
    assign_all(apply, [1, 2, 3])
    assign_all(apply, [2, 3], at=DUE + 3 * SEC)
    # Then each held run has one WAITING entry naming the key and its limit, at the time it was held
    for n in (2, 3):
        assert rows(
            db_path, "SELECT at, run_id, message FROM events WHERE job_id = ? AND type = 'WAITING'", jid(n)
        ) == [(DUE + 2 * SEC, run_of(n), "concurrency key 'acme' at its limit of 1")]


class Waits:
    """Queries.occurrence_at and run_waits over one occurrence whose run was held back."""

    def __init__(self, occ: OccurrenceRow) -> None:
        self.occ = occ

    async def occurrence_at(self, job_id: str, at: int) -> OccurrenceRow | None:
        return self.occ if at >= self.occ.nominal else None

    async def run_waits(self, job_id: str, run_id: str) -> list[str]:
        return ["concurrency key 'acme' at its limit of 2"] if run_id == self.occ.run_id else []


async def test_explain_names_the_key_that_delayed_a_run() -> None:
    occ = OccurrenceRow(jid(1), DUE, DUE, "TRIGGERED", "", run_of(1), DUE, "SUCCEEDED", 1)
    job = JobRow(jid(1), "", "echo", {}, "SUCCEEDED", DUE, DUE - SEC, DUE, "", NODE, {}, 1, None)
    found, text = await explain(Waits(occ), job, DUE, DUE + SEC)  # type: ignore[arg-type]
    assert found == occ
    assert text.endswith("Its run was held back: concurrency key 'acme' at its limit of 2.")
