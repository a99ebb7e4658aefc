"""Prometheus metrics on each node's metrics port."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from conftest import MakeCluster
from helpers import eventually
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.cluster


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a node's /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_jobs_raft_executor_lateness_and_calls(make_cluster: MakeCluster) -> None:
    # Given a cluster whose nodes serve metrics
    cluster = await make_cluster(http=True)
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)

    # When jobs run
    ids = [await client.submit("echo", {"i": i}) for i in range(5)]
    for job_id in ids:
        await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[leader])

    # Then the leader's metrics count them, with its role, term, lateness and the calls it answered
    port = cluster.http_port(leader)

    async def counted() -> dict | None:
        m = await asyncio.to_thread(scrape, port)
        return m if m.get(("ordo_jobs", (("state", "SUCCEEDED"),)), 0) >= 5 else None

    m = await eventually(counted, timeout=15, what="5 SUCCEEDED jobs in the metrics")
    assert m[("ordo_raft_role", (("role", "leader"),))] == 1
    assert m[("ordo_raft_term", ())] >= 1
    assert m[("ordo_occurrences", (("fate", "TRIGGERED"),))] >= 5
    assert m[("ordo_trigger_lateness_seconds_count", ())] >= 5
    assert m[("ordo_executor_capacity", ())] == 8
    submits = m[("ordo_grpc_calls_total", (("code", "OK"), ("method", "/ordo.v1.JobService/SubmitJob")))]
    assert submits >= 5
    # and every node reports the executions it ran
    ran = 0.0
    for node in cluster.nodes:
        samples = await asyncio.to_thread(scrape, cluster.http_port(node))
        ran += samples.get(("ordo_run_duration_seconds_count", (("outcome", "succeeded"),)), 0)
    assert ran >= 5
    # and each node's start-up line says where its dashboard is
    for node in cluster.nodes:
        assert f"dashboard=http://127.0.0.1:{cluster.http_port(node)}/" in node.log_path.read_text()
