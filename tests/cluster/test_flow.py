"""Flow control on a real 3-node cluster (issue 17): run after, concurrency keys, backfill, debounce,
singleton."""

from __future__ import annotations

import asyncio
import itertools
import json
import shlex
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeCluster
from helpers import Cluster, eventually, grpcurl_program, ordo_node_program

from ordo_node.client import Client
from ordo_node.pb import ordo_pb2
from ordo_node.timeutil import format_us

pytestmark = pytest.mark.cluster


def us(ts: object) -> int:
    """A protobuf Timestamp in microseconds (0 when unset)."""
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000  # type: ignore[attr-defined]


async def test_run_after_runs_b_after_a_and_skips_c_after_a_failed_one(cluster: Cluster) -> None:
    # Given A (3 s: long enough to be running still when B is read), B after A, A2 that fails, C after A2
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    a = await client.submit("sleep", {"seconds": 3})
    b = await client.submit("echo", {"b": 1}, after=[a])
    a2 = await client.submit("shell", {"command": "exit 3"})
    c = await client.submit("echo", {"c": 1}, after=[a2])

    # Then B waits, and says for what
    job_b = await client.get(b)
    assert job_b.state == ordo_pb2.JOB_STATE_WAITING
    assert list(job_b.after) == [a] and a in job_b.waiting
    assert job_b.after_condition == ordo_pb2.AFTER_CONDITION_SUCCEEDED

    # When A ends, B runs after it
    done_a = await client.wait(a, timeout=20)
    done_b = await client.wait(b, timeout=20)
    assert done_a.state == done_b.state == ordo_pb2.JOB_STATE_SUCCEEDED
    assert us(done_b.runs[0].started_at) >= us(done_a.runs[-1].finished_at)

    # And C, after a failed A2, is SKIPPED with the reason naming it, on every node
    jobs = await cluster.wait_for_state(c, "SKIPPED")
    assert all(not j.runs for j in jobs.values())
    assert all(j.error.startswith(f"job {a2} ended FAILED") for j in jobs.values())  # GetJob says why
    page = await client.occurrences(c)
    assert [o.fate for o in page.occurrences] == [ordo_pb2.FATE_SKIPPED]
    assert f"job {a2} ended FAILED" in page.occurrences[0].reason


def max_overlap(intervals: list[tuple[int, int]]) -> int:
    """The most intervals open at one instant (an end before a start at the same time)."""
    points = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1])
    )
    most = now = 0
    for _, step in points:
        now += step
        most = max(most, now)
    return most


async def test_concurrency_key_holds_across_a_leader_kill(make_cluster: MakeCluster) -> None:
    # Given 10 jobs of 1 s sharing the key 'acme' with a limit of 2
    cluster = await make_cluster(lease_timeout=2.0)
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    ids = await client.submit_many(
        [
            {"type": "sleep", "payload": {"seconds": 1}, "concurrency_key": "acme", "concurrency_limit": 2}
            for _ in range(10)
        ]
    )

    # Then the others wait, and say why
    async def one_waits() -> str:
        for job_id in ids:
            job = await client.get(job_id)
            if job.state == ordo_pb2.JOB_STATE_WAITING:
                return job.waiting
        return ""

    reason = await eventually(one_waits, timeout=15, what="a job WAITING for its key")
    assert reason == "concurrency key 'acme' at its limit of 2"

    # When the leader is killed while runs hold the key
    await eventually(lambda: _succeeded(client, ids, 2), timeout=20, what="two jobs done before the kill")
    leader.kill()
    survivor = next(n for n in cluster.nodes if n.alive)
    await cluster.wait_for_leader(exclude=leader.id)

    # Then every job succeeds, and never more than 2 attempts ran at once (from the runs' times)
    other = cluster.client(survivor)
    for job_id in ids:
        job = await other.wait(job_id, timeout=60)
        assert job.state == ordo_pb2.JOB_STATE_SUCCEEDED
    intervals = []
    for job_id in ids:
        for run in (await other.get(job_id)).runs:
            if run.started_at.seconds:
                intervals.append((us(run.started_at), us(run.finished_at)))
    assert len(intervals) >= 10
    assert max_overlap(intervals) == 2
    # And the history and ExplainOccurrence of a job that was held back name the key and its limit
    for job_id in ids:
        waited = [e for e in await other.history(job_id) if e.type == ordo_pb2.EVENT_TYPE_WAITING]
        if waited:
            break
    assert waited and {e.message for e in waited} == {reason}  # once per attempt held
    job = await other.get(job_id)
    explained = await other.explain(job_id, format_us(us(job.run_at)))
    assert explained.explanation.endswith(f"Its run was held back: {reason}.")


async def _succeeded(client: Client, ids: list[str], count: int) -> bool:
    """At least ``count`` of the jobs SUCCEEDED."""
    done = 0
    for job_id in ids:
        job = await client.get(job_id)
        done += job.state == ordo_pb2.JOB_STATE_SUCCEEDED
    return done >= count


async def test_backfill_of_missing_runs_exactly_the_seconds_missed_during_a_pause(cluster: Cluster) -> None:
    # Given an every-second job that ran a few times, then was paused for 3 s and resumed (catch-up SKIP)
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    job_id = await client.submit("echo", {"tick": 1}, cron="every 1s", catch_up="SKIP")

    async def fates() -> dict[int, tuple[str, str]]:
        page = await client.occurrences(job_id, page_size=200)
        return {us(o.nominal_time): (ordo_pb2.Fate.Name(o.fate), o.reason) for o in page.occurrences}

    await eventually(lambda: _count_at_least(fates, 2), timeout=15, what="two occurrences")
    await client.pause(job_id, "test")
    await asyncio.sleep(3)  # the length of the pause is the test's input, not a wait for an event
    await client.resume(job_id)
    paused = await eventually(
        lambda: _with_fate(fates, "FATE_PAUSED"), timeout=15, what="the paused seconds recorded"
    )
    await client.pause(job_id, "backfill alone")  # no live occurrence while the range is checked
    before = await fates()
    since, until = min(before), max(before)
    never_ran = {n for n in range(since, until + 1, 1_000_000) if before.get(n, ("",))[0] != "FATE_TRIGGERED"}
    assert set(paused) <= never_ran and len(paused) >= 2

    # When MISSING is backfilled over the range: the dry run lists exactly those seconds
    dry = await client.backfill(job_id, format_us(since), format_us(until), dry_run=True)
    assert dry.dry_run and {us(o.nominal_time) for o in dry.occurrences} == never_ran
    assert all(not o.run_id for o in dry.occurrences)
    # and so does the command line's
    argv = [*ordo_node_program(), "backfill", job_id, "--from", format_us(since), "--to", format_us(until)]
    argv += ["--dry-run", "--address", leader.address]
    out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(never_ran) + 1 and "(dry run)" in out.stdout
    assert lines[-1] == f"{len(never_ran)} occurrences would run"
    done = await client.backfill(job_id, format_us(since), format_us(until), max_concurrent=2)

    # Then exactly those run, each recorded with reason "backfill", and nothing else changes
    assert {us(o.nominal_time) for o in done.occurrences} == never_ran
    assert all(o.run_id for o in done.occurrences)
    after = await fates()
    for nominal in range(since, until + 1, 1_000_000):
        if nominal in never_ran:
            assert after[nominal] == ("FATE_TRIGGERED", "backfill")
        else:
            assert after[nominal] == before[nominal]

    async def all_ran() -> bool:
        job = await client.get(job_id)
        states = {r.run_id: r.state for r in job.runs}
        return all(states.get(o.run_id) == ordo_pb2.RUN_STATE_SUCCEEDED for o in done.occurrences)

    await eventually(all_ran, timeout=20, what="the backfilled runs succeeded")
    # And a second backfill finds nothing missing
    again = await client.backfill(job_id, format_us(since), format_us(until), dry_run=True)
    assert list(again.occurrences) == []
    await client.cancel(job_id)


async def _count_at_least(read: Callable[[], Awaitable[dict[int, Any]]], count: int) -> bool:
    return len(await read()) >= count


async def _with_fate(read: Callable[[], Awaitable[dict[int, tuple[str, str]]]], fate: str) -> list[int]:
    return sorted(n for n, (f, _) in (await read()).items() if f == fate)


def readme_commands() -> list[str]:
    """The grpcurl command lines of the README's flow-control section (continuations joined)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("### Flow control: run after, concurrency keys, debounce, singleton, backfill", 1)[
        1
    ].split("\n### ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [line for line in block.splitlines() if line.startswith("grpcurl ")]


async def test_readme_flow_examples_work_with_grpcurl(cluster: Cluster) -> None:
    # Given the README's examples, their placeholders filled in and the address this cluster's
    leader = await cluster.wait_for_leader()
    recurring = await cluster.client(leader).submit("echo", {}, cron="every 1s")
    commands = readme_commands()
    assert [c.rsplit("/", 1)[1] for c in commands] == ["SubmitJob"] * 6 + ["BackfillSchedule"]
    replies: list[dict[str, Any]] = []
    for text in commands:
        if replies:
            text = text.replace("<id of A>", replies[0]["jobId"])
        text = text.replace("<id>", recurring).replace("127.0.0.1:7001", leader.address)
        argv = [grpcurl_program(), *shlex.split(text)[1:]]
        # When each is run as written
        out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=30)
        # Then it succeeds
        assert out.returncode == 0, out.stderr
        replies.append(json.loads(out.stdout))
    client = cluster.client(leader)
    b, keyed = replies[1]["jobId"], replies[2]["jobId"]
    assert (await client.wait(b, timeout=20)).state == ordo_pb2.JOB_STATE_SUCCEEDED
    assert (await client.wait(keyed, timeout=20)).concurrency_key == "acme"
    assert (await client.wait(replies[3]["jobId"], timeout=20)).rate_limit.key == "api"
    debounced = await client.get(replies[4]["jobId"])
    assert debounced.debounce.key == "reindex-42" and debounced.debounce.window.seconds == 2
    assert (await client.wait(replies[5]["jobId"], timeout=20)).singleton.key == "nightly-report"
    assert replies[6]["dryRun"] is True  # the example's range predates the job: nothing to list
    await client.cancel(recurring)


async def test_pause_on_failure_pauses_a_failing_schedule(cluster: Cluster) -> None:
    # Given an every-second job that always fails, with pauseOnFailure 3
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    job_id = await client.submit("shell", {"command": "exit 1"}, cron="every 1s", pause_on_failure=3)

    # Then it pauses itself after three failed occurrences, saying why, on every node
    await cluster.wait_for_state(job_id, "PAUSED", timeout=30)
    history = await client.history(job_id)
    paused = [e for e in history if e.type == ordo_pb2.EVENT_TYPE_PAUSED]
    assert [e.message for e in paused] == [
        "paused itself: 3 consecutive occurrences failed (pauseOnFailure 3)"
    ]
    failed = [e for e in history if e.type == ordo_pb2.EVENT_TYPE_FAILED and e.seq < paused[0].seq]
    assert len(failed) >= 3
    assert (await client.get(job_id)).pause_on_failure == 3
    await client.cancel(job_id)


async def test_a_rate_limit_of_5_per_second_holds_over_10_seconds(cluster: Cluster) -> None:
    # Given 50 jobs sharing the rate limit 'api' of 5 per second (burst 1), submitted at once
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    rate = {"key": "api", "per_second": 5, "burst": 1}
    ids = await client.submit_many(
        [{"type": "echo", "payload": {"n": n}, "rate_limit": rate} for n in range(50)]
    )

    # Then those over the rate wait, saying why
    async def one_waits() -> str:
        for job_id in ids[-10:]:
            job = await client.get(job_id)
            if job.state == ordo_pb2.JOB_STATE_WAITING:
                return job.waiting
        return ""

    assert (
        await eventually(one_waits, timeout=10, what="a job WAITING") == "rate limit 'api' of 5/s (burst 1)"
    )
    # and they all run, in about 10 s, no two assigned less than 200 ms apart (the runs' times)
    jobs = [await client.wait(job_id, timeout=40) for job_id in ids]
    assert all(j.state == ordo_pb2.JOB_STATE_SUCCEEDED for j in jobs)
    assigned = sorted(us(r.assigned_at) for j in jobs for r in j.runs)
    assert len(assigned) == 50
    gaps = [b - a for a, b in itertools.pairwise(assigned)]
    assert min(gaps) >= 200_000, min(gaps)
    span = (assigned[-1] - assigned[0]) / 1e6
    assert 9.8 <= span < 20, span
    assert jobs[-1].rate_limit.key == "api" and jobs[-1].rate_limit.per_second == 5


async def test_debounce_merges_a_burst_from_every_node_into_one_run(cluster: Cluster) -> None:
    # Given 30 submissions with one TRAILING debounce key (window 2 s), sent at once to all three nodes
    await cluster.wait_for_leader()
    nodes = [n for n in cluster.nodes if n.alive]
    debounce = {"key": "reindex-42", "window": 2, "mode": "TRAILING"}
    sent_at = time.time()
    answers = await asyncio.gather(
        *(
            cluster.client(nodes[n % len(nodes)]).submit_noted(
                "echo", {"n": n}, name="reindex", debounce=debounce
            )
            for n in range(30)
        )
    )

    # Then they all name one job: one created it, 29 were merged into it, each told so
    ids = {job_id for job_id, _ in answers}
    assert len(ids) == 1
    (job_id,) = ids
    notes = sorted(note for _, note in answers)
    assert notes[0] == "" and all(
        n.startswith(f"merged into job {job_id} (debounce key 'reindex-42'") for n in notes[1:]
    )

    # And it runs once, a window after the burst's last submission, with that submission's payload
    client = cluster.client(nodes[0])
    done = await client.wait(job_id, timeout=20)
    assert done.state == ordo_pb2.JOB_STATE_SUCCEEDED and len(done.runs) == 1
    history = await client.history(job_id)
    joined = [e for e in history if e.type == ordo_pb2.EVENT_TYPE_JOINED]
    assert len(joined) == 29
    assert us(done.runs[0].started_at) >= us(joined[-1].time) + 2_000_000
    assert json.loads(done.result_json) == json.loads(done.payload_json)
    assert us(done.runs[0].started_at) / 1e6 - sent_at < 10
    # Every node agrees: one job of that name was created, whoever took the submissions
    for node in nodes:
        listed = await cluster.client(node).list_jobs(name="reindex", consistent=True)
        assert [j.job_id for j in listed.jobs] == [job_id]


async def test_singleton_skips_while_running_and_replace_cancels_the_run(cluster: Cluster) -> None:
    # Given a long job holding the singleton key 'nightly'
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    first = await client.submit("sleep", {"seconds": 30}, singleton={"key": "nightly"})
    await cluster.wait_for_state(first, "RUNNING")

    # When the same key is submitted again on another node (SKIP, the default)
    other = next(n for n in cluster.nodes if n.alive and n.id != leader.id)
    kept, note = await cluster.client(other).submit_noted(
        "sleep", {"seconds": 1}, singleton={"key": "nightly"}
    )
    # Then nothing is created: the answer and the running job's history name each other
    assert kept == first
    assert note == f"skipped: singleton key 'nightly' is held by job {first} (RUNNING)"
    skipped = [e.message for e in await client.history(first) if e.type == ordo_pb2.EVENT_TYPE_JOINED]
    assert skipped == [
        f"a submission from node {other.id} was skipped (singleton key 'nightly', SKIP):"
        " this job holds the key (RUNNING)"
    ]

    # When it is submitted with REPLACE, the running job is cancelled (its run stopped) and the new one runs
    new, note = await client.submit_noted("echo", {"new": 1}, singleton={"key": "nightly", "mode": "REPLACE"})
    assert new != first and note.startswith(f"replaced job {first} (singleton key 'nightly', REPLACE")
    old = (await cluster.wait_for_state(first, "CANCELLED"))[leader.id]
    assert old.runs[-1].state == ordo_pb2.RUN_STATE_CANCELLED
    assert (await client.wait(new, timeout=20)).state == ordo_pb2.JOB_STATE_SUCCEEDED
    assert (await client.get(new)).singleton.mode == ordo_pb2.SINGLETON_MODE_REPLACE
