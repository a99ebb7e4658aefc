"""[raft] durable = true: the journal is fsynced before acks and commits, and the cluster works as before."""

from __future__ import annotations

import asyncio

import pytest
from conftest import MakeCluster
from test_raft_safety import metric, same_state_everywhere

pytestmark = pytest.mark.cluster


async def test_durable_cluster_fsyncs_and_runs_jobs(make_cluster: MakeCluster) -> None:
    # Given: a cluster with durable Raft
    cluster = await make_cluster(http=True, settings={"raft": {"durable": True}})
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)

    # When: jobs are submitted one by one, and a follower is killed and restarted meanwhile
    ids = [await client.submit("echo", {"i": i}) for i in range(20)]
    follower = next(n for n in cluster.nodes if n.id != leader.id)
    follower.kill()
    ids += [await client.submit("echo", {"i": i}) for i in range(20, 40)]
    follower.start()

    # Then: every job succeeds on every node, the replicas agree,
    for job_id in ids:
        await cluster.wait_for_state(job_id, "SUCCEEDED", timeout=60)
    await same_state_everywhere(cluster)
    # and every node fsynced its journal
    fsyncs = {
        n.id: await asyncio.to_thread(metric, cluster.http_port(n), "ordo_raft_fsyncs_total")
        for n in cluster.nodes
    }
    assert all(v > 0 for v in fsyncs.values()), fsyncs
