"""Executors that die or stop: leases bring their runs back, SIGTERM lets them finish."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import MakeCluster
from helpers import Cluster, NodeProc, eventually

from ordo_node.pb import ordo_pb2

pytestmark = pytest.mark.cluster


async def running_on(cluster: Cluster, job_id: str, via: NodeProc, attempt: int = 1) -> ordo_pb2.Run:
    """Wait until the given attempt of the job runs; return it."""

    async def started() -> ordo_pb2.Run | None:
        job = await cluster.client(via).get(job_id)
        last = job.runs[-1] if job.runs else None
        if last is not None and last.attempt == attempt and last.state == ordo_pb2.RUN_STATE_RUNNING:
            return last
        return None

    return await eventually(started, timeout=30, what=f"job {job_id} RUNNING")


async def test_run_of_a_killed_executor_is_run_again_after_its_lease(make_cluster: MakeCluster) -> None:
    # Given a cluster with 2 s leases and a job that takes 3 s, running on some node
    cluster = await make_cluster(lease_timeout=2.0)
    leader = await cluster.wait_for_leader()
    job_id = await cluster.client(leader).submit("sleep", {"seconds": 3})
    first = await running_on(cluster, job_id, leader)
    victim = cluster.node(first.node_id)

    # When that node is killed with SIGKILL in the middle of the run
    victim.kill()
    killed_at = time.monotonic()
    survivor = next(n for n in cluster.nodes if n.alive)
    await cluster.wait_for_leader(exclude=victim.id)

    # Then a new attempt runs on another node within a few lease periods, and succeeds
    second = await running_on(cluster, job_id, survivor, attempt=2)
    rerun_after = time.monotonic() - killed_at
    assert second.attempt == 2 and second.node_id != victim.id
    assert rerun_after < 15, f"re-run {rerun_after:.1f}s after the kill"
    jobs = await cluster.wait_for_state(job_id, "SUCCEEDED")
    runs = jobs[survivor.id].runs
    assert [r.state for r in runs] == [ordo_pb2.RUN_STATE_LOST, ordo_pb2.RUN_STATE_SUCCEEDED]
    history = await cluster.client(survivor).history(job_id)
    lost = [e for e in history if e.type == ordo_pb2.EVENT_TYPE_LOST]
    assert len(lost) == 1 and "lease expired" in lost[0].message

    # and when the killed node comes back it agrees, and runs nothing of it again
    victim.start()
    await eventually(lambda: cluster.status(victim), timeout=30, what="victim back")
    await cluster.wait_for_applied()
    job = await cluster.client(victim).get(job_id)
    assert [r.state for r in job.runs] == [ordo_pb2.RUN_STATE_LOST, ordo_pb2.RUN_STATE_SUCCEEDED]


async def test_sigterm_lets_a_running_job_finish_and_takes_no_new_work(make_cluster: MakeCluster) -> None:
    # Given a job of 2 s running on some node
    cluster = await make_cluster()
    leader = await cluster.wait_for_leader()
    job_id = await cluster.client(leader).submit("sleep", {"seconds": 2})
    run = await running_on(cluster, job_id, leader)
    node = cluster.node(run.node_id)
    others = [n for n in cluster.nodes if n is not node]

    # When that node gets SIGTERM
    assert node.proc is not None
    node.proc.terminate()

    # Then it reports itself draining, the job still succeeds there, on its first attempt
    jobs = await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=others)
    assert [(r.attempt, r.node_id, r.state) for r in jobs[others[0].id].runs] == [
        (1, node.id, ordo_pb2.RUN_STATE_SUCCEEDED)
    ]
    # and the process exits cleanly
    assert await asyncio.to_thread(node.proc.wait, 30) == 0
    assert "leadership handed over" in node.log_text() or node.id != leader.id

    # and new work goes to the remaining nodes
    await cluster.wait_for_leader(exclude=node.id)
    later = await cluster.client(others[0]).submit("echo", {"after": True})
    done = await cluster.wait_for_state(later, "SUCCEEDED", nodes=others)
    assert done[others[0].id].runs[-1].node_id != node.id


async def test_leader_sigterm_hands_over_leadership_quickly(cluster: Cluster) -> None:
    # Given the leader
    leader = await cluster.wait_for_leader()
    assert leader.proc is not None

    # When it gets SIGTERM
    stopped_at = time.monotonic()
    leader.proc.terminate()

    # Then another node leads within about a second, and jobs keep running
    new = await cluster.wait_for_leader(exclude=leader.id, timeout=15)
    assert time.monotonic() - stopped_at < 5
    job_id = await cluster.client(new).submit("echo", {})
    await cluster.wait_for_state(job_id, "SUCCEEDED")
    assert await asyncio.to_thread(leader.proc.wait, 30) == 0


async def test_whole_cluster_killed_and_restarted_keeps_every_job(cluster: Cluster) -> None:
    # Given finished jobs, a job due in a few seconds and a recurring one
    client = cluster.client(cluster.nodes[0])
    finished = [await client.submit("echo", {"i": i}) for i in range(5)]
    for job_id in finished:
        await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[cluster.nodes[0]])
    later = await client.submit("echo", {"later": True}, delay=6.0)
    recurring = await client.submit("echo", {}, cron="*/2 * * * * *")
    await cluster.wait_for_applied()

    # When every node is killed with SIGKILL, then all are started again
    for node in cluster.nodes:
        node.kill()
    for node in cluster.nodes:
        node.start()
    await cluster.wait_for_leader()
    restarted_at = time.time()

    # Then every job is still there on every node, the due one runs once, and the schedule goes on
    for job_id in finished:
        await cluster.wait_for_state(job_id, "SUCCEEDED")
    jobs = await cluster.wait_for_state(later, "SUCCEEDED")
    assert all(len(j.runs) == 1 for j in jobs.values())

    async def ticked_after_restart() -> bool:
        page = await cluster.client(cluster.nodes[1]).occurrences(recurring, page_size=100)
        return any(
            o.fate == ordo_pb2.FATE_TRIGGERED and o.fire_time.ToMicroseconds() / 1e6 > restarted_at
            for o in page.occurrences
        )

    await eventually(ticked_after_restart, timeout=20, what="the recurring job firing after the restart")
