"""Flow control on a real 3-node cluster (issue 17): run after, concurrency keys."""

from __future__ import annotations

import pytest
from conftest import MakeCluster
from helpers import Cluster, eventually

from ordo_node.client import Client
from ordo_node.pb import ordo_pb2

pytestmark = pytest.mark.cluster


def us(ts: object) -> int:
    """A protobuf Timestamp in microseconds (0 when unset)."""
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000  # type: ignore[attr-defined]


async def test_run_after_runs_b_after_a_and_skips_c_after_a_failed_one(cluster: Cluster) -> None:
    # Given A (1 s), B after A, A2 that fails, C after A2
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    a = await client.submit("sleep", {"seconds": 1})
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


async def _succeeded(client: Client, ids: list[str], count: int) -> bool:
    """At least ``count`` of the jobs SUCCEEDED."""
    done = 0
    for job_id in ids:
        job = await client.get(job_id)
        done += job.state == ordo_pb2.JOB_STATE_SUCCEEDED
    return done >= count
