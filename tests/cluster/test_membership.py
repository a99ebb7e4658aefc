"""Adding a fourth node to a running cluster, and removing one."""

from __future__ import annotations

import grpc
import pytest
from helpers import Cluster, eventually

from ordo_node.tools.localcluster import LocalNode, free_ports

pytestmark = pytest.mark.cluster


async def test_add_a_fourth_node_then_remove_one(cluster: Cluster) -> None:
    # Given a running 3-node cluster with some history
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    before = [await client.submit("echo", {"i": i}) for i in range(5)]

    # When a fourth node is added through the API, then started with the three as its peers
    grpc_port, raft_port = free_ports(2)
    node4 = LocalNode("node4", grpc_port, raft_port, cluster.root)
    cluster.nodes.append(node4)
    node4.config_path.write_text(cluster.config_text(node4))
    status = await client.add_node("node4", node4.address, f"127.0.0.1:{raft_port}")
    assert [n.node_id for n in status.nodes] == ["node1", "node2", "node3", "node4"]
    node4.start()

    # Then it catches up, holds the history, and every node lists four members
    await cluster.wait_for_applied(timeout=60)
    for job_id in before:
        assert (await cluster.client(node4).get(job_id)).job_id == job_id
    for n in cluster.nodes:
        assert len((await cluster.status(n)).nodes) == 4

    # and it starts executing
    async def node4_ran() -> bool:
        ids = [await client.submit("sleep", {"seconds": 0.3}) for _ in range(16)]
        for job_id in ids:
            await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[leader])
        jobs = [await client.get(job_id) for job_id in ids]
        return any(j.runs[-1].node_id == "node4" for j in jobs)

    assert await eventually(node4_ran, timeout=60, what="a run executed on node4")

    # When a follower is removed
    victim = next(n for n in cluster.nodes if n.id not in (leader.id, "node4"))
    status = await client.remove_node(victim.id)
    assert victim.id not in [n.node_id for n in status.nodes]
    victim.terminate()

    # Then the three others go on: a majority of three, new jobs run, none on the removed node
    job_id = await client.submit("echo", {"after": "removal"})
    job = (await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[leader]))[leader.id]
    assert job.runs[-1].node_id != victim.id
    for n in cluster.nodes:
        if n.alive:
            assert victim.id not in [m.node_id for m in (await cluster.status(n)).nodes]

    # and the leader cannot be removed, nor an unknown node
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.remove_node(leader.id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.remove_node("node9")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
