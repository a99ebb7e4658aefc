"""Recurring jobs, retries, timeouts, cancellation, idempotency and pause/resume on a real cluster."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import pytest
from helpers import Cluster, eventually, trigger_count

from ordo_node.client import submit_request
from ordo_node.pb import ordo_pb2
from ordo_node.timekeeper import LOOKAHEAD
from ordo_node.timeutil import format_us

pytestmark = pytest.mark.cluster

SEC = 1_000_000


def whole_second(from_now: float) -> int:
    """A whole second at least ``from_now`` seconds ahead, in microseconds."""
    return (int(time.time() + from_now) + 1) * SEC


async def occurrences(cluster: Cluster, job_id: str, via: int = 0) -> list[ordo_pb2.Occurrence]:
    """Every occurrence of the job, oldest first (read from node ``via``)."""
    page = await cluster.client(cluster.nodes[via]).occurrences(job_id, page_size=1000)
    return sorted(page.occurrences, key=lambda o: o.nominal_time.ToMicroseconds())


def process_gone(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0


async def test_every_second_cron_has_one_fate_per_second_across_a_leader_kill(cluster: Cluster) -> None:
    # Given a job every second (6 fields, seconds first) for 10 seconds
    start = whole_second(2)
    end = start + 9 * SEC
    leader = await cluster.wait_for_leader()
    survivor = next(n for n in cluster.nodes if n is not leader)
    job_id = await cluster.client(survivor).submit(
        "echo", {"tick": True}, cron="* * * * * *", start_at=format_us(start), end_at=format_us(end)
    )

    # When the leader is killed in the middle
    await eventually(lambda: _past(start + 4 * SEC), timeout=20, what="4 s into the schedule")
    leader.kill()
    await cluster.wait_for_leader(exclude=leader.id)

    # Then, once the schedule ended, every second has exactly one occurrence with a fate
    await eventually(lambda: _past(end + 3 * SEC), timeout=30, what="the schedule's end")
    job = (await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[survivor]))[survivor.id]
    occs = await occurrences(cluster, job_id, via=cluster.nodes.index(survivor))
    nominal = [o.nominal_time.ToMicroseconds() for o in occs]
    assert nominal == [start + i * SEC for i in range(10)]
    fates = [ordo_pb2.Fate.Name(o.fate) for o in occs]
    assert set(fates) <= {"FATE_TRIGGERED", "FATE_MISSED"}, fates
    triggered = [o for o in occs if o.fate == ordo_pb2.FATE_TRIGGERED]
    assert len(triggered) >= 6, fates
    for o in occs:
        if o.fate == ordo_pb2.FATE_MISSED:
            assert "no leader" in o.reason and "catchUp ONE" in o.reason
    # and each triggered second ran once and succeeded
    assert all(o.outcome == ordo_pb2.RUN_STATE_SUCCEEDED for o in triggered)
    assert len({o.run_id for o in triggered}) == len(triggered)
    history = await cluster.client(survivor).history(job_id)
    assert trigger_count(history) == len(triggered)
    assert job.occurrences == 10 and not job.HasField("next_fire_time")


async def _past(us: int) -> bool:
    return time.time() * SEC >= us


async def _mid_second() -> bool:
    return 0.3 <= time.time() % 1 <= 0.6


async def test_failing_job_retries_with_backoff_then_dead_letters_and_retry_brings_it_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Given a shell job that fails until a file exists, with 3 attempts and a backoff of 0.3 s doubling
    flag = tmp_path / f"ok-{uuid.uuid4().hex}"
    client = cluster.client(cluster.nodes[0])
    job_id = await client.submit(
        "shell",
        {"command": f"test -f {flag} || exit 3"},
        max_attempts=3,
        backoff={"initial": 0.3, "multiplier": 2, "max": 10},
    )

    # When it has failed three times
    job = (await cluster.wait_for_state(job_id, "DEAD_LETTER"))["node1"]

    # Then the attempts were spaced by at least the backoff, and the history says so
    runs = sorted(job.runs, key=lambda r: r.attempt)
    assert [r.state for r in runs] == [ordo_pb2.RUN_STATE_FAILED] * 3
    starts = [r.started_at.ToMicroseconds() for r in runs]
    ends = [r.finished_at.ToMicroseconds() for r in runs]
    assert starts[1] - ends[0] >= 0.3 * SEC and starts[2] - ends[1] >= 0.6 * SEC
    assert "exited with status 3" in runs[-1].error
    kinds = [ordo_pb2.EventType.Name(e.type) for e in await client.history(job_id)]
    assert kinds.count("EVENT_TYPE_RETRIED") == 2 and kinds.count("EVENT_TYPE_DEAD_LETTERED") == 1

    # When the cause is fixed and RetryJob is called
    flag.write_text("fixed")
    await client.retry(job_id)

    # Then it runs once more and succeeds
    job = (await cluster.wait_for_state(job_id, "SUCCEEDED"))["node1"]
    assert [r.state for r in sorted(job.runs, key=lambda r: r.attempt)][-1] == ordo_pb2.RUN_STATE_SUCCEEDED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.retry(job_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_timeout_kills_a_long_shell_command(cluster: Cluster) -> None:
    # Given a shell job that would sleep a minute, with a 1 s timeout
    marker = f"ordo-timeout-{uuid.uuid4().hex}"
    job_id = await cluster.client(cluster.nodes[1]).submit(
        "shell", {"command": f"sleep 60; echo {marker}"}, timeout=1.0
    )

    # Then the attempt fails as timed out within a few seconds, and the process is gone
    started = time.monotonic()
    job = (await cluster.wait_for_state(job_id, "FAILED", timeout=20))["node2"]
    assert time.monotonic() - started < 15
    assert "timed out after 1s" in job.runs[0].error
    await eventually(lambda: asyncio.to_thread(process_gone, marker), timeout=10, what="sleep 60 killed")


async def test_cancel_stops_a_running_job(cluster: Cluster) -> None:
    # Given a long shell job that is running
    marker = f"ordo-cancel-{uuid.uuid4().hex}"
    client = cluster.client(cluster.nodes[2])
    job_id = await client.submit("shell", {"command": f"sleep 30; echo {marker}"})
    await cluster.wait_for_state(job_id, "RUNNING")
    assert not await asyncio.to_thread(process_gone, marker)

    # When it is cancelled
    job = await client.cancel(job_id)

    # Then the job and its attempt are CANCELLED everywhere and the process is killed
    assert job.state == ordo_pb2.JOB_STATE_CANCELLED
    jobs = await cluster.wait_for_state(job_id, "CANCELLED")
    assert all(j.runs[0].state == ordo_pb2.RUN_STATE_CANCELLED for j in jobs.values())
    await eventually(lambda: asyncio.to_thread(process_gone, marker), timeout=10, what="sleep 30 killed")


async def test_same_idempotency_key_twice_is_one_job(cluster: Cluster) -> None:
    key = f"report-{uuid.uuid4().hex}"
    a = await cluster.client(cluster.nodes[0]).submit("echo", {"n": 1}, delay=3600, idempotency_key=key)
    b = await cluster.client(cluster.nodes[1]).submit("echo", {"n": 1}, delay=3600, idempotency_key=key)
    assert a == b
    page = await cluster.client(cluster.nodes[2]).list_jobs(page_size=100, consistent=True)
    assert [j.job_id for j in page.jobs] == [a]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.client(cluster.nodes[0]).submit("echo", {"n": 2}, delay=3600, idempotency_key=key)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "idempotencyKey" in (err.value.details() or "")


async def test_pause_then_resume_with_catch_up_one_runs_exactly_one_catch_up(cluster: Cluster) -> None:
    # Given an every-second job with catchUp ONE that has run a little
    client = cluster.client(cluster.nodes[0])
    job_id = await client.submit("echo", {}, cron="* * * * * *", catch_up="ONE")
    await eventually(lambda: _ran(client, job_id, 2), timeout=20, what="two occurrences")

    # When it is paused for about 3.5 seconds, then resumed; paused mid-second, so that no fire time
    # falls between the pause's time and its commit (a trigger committed first would run it)
    await eventually(_mid_second, timeout=5, interval=0.05, what="mid-second")
    paused = await client.pause(job_id, note="maintenance")
    assert paused.state == ordo_pb2.JOB_STATE_PAUSED
    paused_at = time.time() * SEC
    await eventually(lambda: _past(int(paused_at + 3.5 * SEC)), timeout=10, what="pause")
    await client.resume(job_id, note="done")
    resumed_at = time.time() * SEC
    await eventually(lambda: _past(int(resumed_at + 2.5 * SEC)), timeout=10, what="after resume")
    await client.pause(job_id)  # stop it, to read a settled history

    # Then the seconds that fell due while paused ran exactly once (the latest), the rest are PAUSED;
    # "while paused" as the cluster saw it: between the committed PAUSED and RESUMED events
    events = await client.history(job_id)
    paused_at = next(e.time.ToMicroseconds() for e in events if e.type == ordo_pb2.EVENT_TYPE_PAUSED)
    resumed_at = next(e.time.ToMicroseconds() for e in events if e.type == ordo_pb2.EVENT_TYPE_RESUMED)
    occs = await occurrences(cluster, job_id)
    during = [o for o in occs if paused_at <= o.fire_time.ToMicroseconds() <= resumed_at]
    assert len(during) >= 3, [format_us(o.fire_time.ToMicroseconds()) for o in occs]
    fates = [o.fate for o in during]
    assert fates.count(ordo_pb2.FATE_TRIGGERED) == 1 and fates[-1] == ordo_pb2.FATE_TRIGGERED
    assert all(f == ordo_pb2.FATE_PAUSED for f in fates[:-1])
    assert "caught up" in during[-1].reason
    # and the schedule went on after the resume
    assert any(o.fire_time.ToMicroseconds() > resumed_at and o.fate == ordo_pb2.FATE_TRIGGERED for o in occs)
    explained = await client.explain(job_id, format_us(during[0].nominal_time.ToMicroseconds()))
    assert "paused" in explained.explanation


async def _ran(client: object, job_id: str, n: int) -> bool:
    page = await client.occurrences(job_id)  # type: ignore[attr-defined]
    return sum(o.fate == ordo_pb2.FATE_TRIGGERED for o in page.occurrences) >= n


async def test_preview_and_bad_schedules(cluster: Cluster) -> None:
    client = cluster.client(cluster.nodes[0])
    times = await client.preview(
        "0 9 * * 1-5", timezone="Europe/Paris", count=3, after="2026-11-20T12:00:00Z"
    )
    assert [t.local_time for t in times] == [
        "2026-11-23T09:00:00+01:00",
        "2026-11-24T09:00:00+01:00",
        "2026-11-25T09:00:00+01:00",
    ]
    for kwargs, field in (
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        (
            {"cron": "* * * * *", "start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"},
            "endAt",
        ),
        ({"max_attempts": -1}, "maxAttempts"),
        ({"cron": "* * * * *", "max_runs": -2}, "maxRuns"),
        ({"timeout": -1}, "timeout"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.submit_many([submit_request("echo", {}, **kwargs)])  # type: ignore[arg-type]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"jobs[0].{field}:" in (err.value.details() or ""), err.value.details()


async def test_watch_streams_a_jobs_events_as_they_happen(cluster: Cluster) -> None:
    # Given a client watching one node's event stream for a job submitted just after it starts
    # (due a second after the timekeeper's look-ahead: one-off jobs are triggered that early)
    client = cluster.client(cluster.nodes[1])
    job_id = await client.submit("echo", {"w": 1}, delay=1.0 + LOOKAHEAD / 1e6)
    seen: list[str] = []

    async def follow() -> None:
        async for event in client.watch(job_id):
            seen.append(ordo_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_"))
            if seen[-1] == "SUCCEEDED":
                return

    # When the job runs, then the stream delivers its events in order, ending with SUCCEEDED
    await asyncio.wait_for(follow(), timeout=30)
    assert seen == ["TRIGGERED", "ASSIGNED", "STARTED", "SUCCEEDED"]
