"""The Raft engine under our own load: nothing truncated, nothing chunked, every replica the same.

A burst of 10,000 jobs due now, with unary submissions beside it, is the load at
which PySyncObj 0.3.17 alone logged "truncating already-applied log entries"
dozens of times a minute (DESIGN.md, "PySyncObj: hazards found under load").
"""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from conftest import MakeCluster
from helpers import Cluster, eventually
from prometheus_client.parser import text_string_to_metric_families

from ordo_node.client import submit_request

pytestmark = pytest.mark.cluster

BURST = 10_000
BATCH = 1_000


def metric(port: int, name: str, **labels: str) -> float:
    """The value of one sample of a node's /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no metric {name} {labels}")


async def same_state_everywhere(cluster: Cluster) -> tuple[int, str]:
    """Wait until every node reports the same applied index and state hash; return them."""

    async def agreed() -> tuple[int, str] | None:
        status = await cluster.status(cluster.nodes[0])
        seen = {(n.applied_index, n.state_hash) for n in status.nodes}
        if len(seen) == 1 and all(n.reachable for n in status.nodes):
            return seen.pop()
        return None

    result: tuple[int, str] = await eventually(agreed, timeout=60, what="equal applied index and state hash")
    return result


async def test_burst_with_unary_submissions_truncates_nothing(make_cluster: MakeCluster) -> None:
    # Given: a cluster serving metrics
    cluster = await make_cluster(http=True)
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)

    # When: 10,000 echo jobs due now arrive in batches while unary submissions go to every node
    async def unary(node_index: int) -> list[str]:
        c = cluster.client(cluster.nodes[node_index])
        return [await c.submit("echo", {"unary": node_index, "i": i}) for i in range(60)]

    async def burst() -> list[str]:
        ids: list[str] = []
        for start in range(0, BURST, BATCH):
            ids += await client.submit_many(
                [submit_request("echo", {"i": i}) for i in range(start, start + BATCH)]
            )
        return ids

    results = await asyncio.gather(burst(), *(unary(i) for i in range(3)))
    ids = [job_id for group in results for job_id in group]

    async def all_done() -> bool:
        port = cluster.http_port(leader)
        return await asyncio.to_thread(metric, port, "ordo_jobs", state="SUCCEEDED") == len(ids)

    await eventually(all_done, timeout=180, what=f"{len(ids)} jobs SUCCEEDED")

    # Then: every node applied the same commands (equal state hashes at equal index)
    index, state_hash = await same_state_everywhere(cluster)
    assert index > 0 and len(state_hash) == 32
    # and no entry was truncated after it was applied, or sent in chunks, and no node stopped
    for node in cluster.nodes:
        assert "truncating already-applied" not in node.log_text(), node.id
        assert "fail-stop" not in node.log_text(), node.id
        port = cluster.http_port(node)
        assert await asyncio.to_thread(metric, port, "ordo_raft_chunked_entries_total") == 0
        assert await asyncio.to_thread(metric, port, "ordo_raft_fault") == 0
    status = await cluster.status(leader)
    assert [n.fault for n in status.nodes] == ["", "", ""]
