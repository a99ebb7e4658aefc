"""Executor tags, and long-running jobs that move when their node dies."""

from __future__ import annotations

import json

import grpc
import pytest
from conftest import MakeCluster
from helpers import eventually

from ordo_node.pb import ordo_pb2

pytestmark = pytest.mark.cluster

STREAMER = """
import json, os, time
from ordo_node.handlers import handler

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "streams.jsonl")


def note(**fields):
    with open(LOG, "a") as f:
        f.write(json.dumps(fields) + "\\n")


@handler("stream")
def stream(ctx, payload):
    note(event="start", node=ctx.node_id, attempt=ctx.attempt)
    ticks = 0
    while not ctx.cancelled.wait(0.1):
        ticks += 1
        ctx.heartbeat(f"tick {ticks}")
    note(event="stopped", node=ctx.node_id, attempt=ctx.attempt, ticks=ticks)
    return {"ticks": ticks}
"""


async def test_tags_route_runs_and_unfit_runs_wait(make_cluster: MakeCluster) -> None:
    # Given a cluster where only node3 has the tag gpu
    cluster = await make_cluster(node_settings={"node3": {"executor": {"tags": ["gpu", "lane=reports"]}}})
    client = cluster.client(cluster.nodes[0])

    # When jobs requiring gpu are submitted, they all run on node3
    ids = [await client.submit("echo", {"i": i}, tags=["gpu"]) for i in range(6)]
    for job_id in ids:
        job = (await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[cluster.nodes[0]]))["node1"]
        assert job.runs[0].node_id == "node3" and list(job.tags) == ["gpu"]

    # and a job requiring a tag nobody has waits, and says why
    waiting = await client.submit("echo", {}, tags=["tpu"])
    job = (await cluster.wait_for_state(waiting, "WAITING", nodes=[cluster.nodes[0]]))["node1"]
    assert job.waiting == "no live executor has the tags tpu"
    status = await client.cluster()
    assert [list(n.tags) for n in status.nodes] == [[], [], ["gpu", "lane=reports"]]


async def test_dangerous_handlers_run_only_where_enabled(make_cluster: MakeCluster) -> None:
    # Given a cluster where only node2 enables the shell handler
    off: dict[str, list[str]] = {"dangerous_handlers": []}
    cluster = await make_cluster(
        node_settings={
            "node1": {"executor": off},
            "node2": {"executor": {"dangerous_handlers": ["shell"]}},
            "node3": {"executor": off},
        }
    )
    client = cluster.client(cluster.nodes[0])

    # Then shell jobs run on node2 only, and file_write jobs wait, saying why
    for _ in range(4):
        job_id = await client.submit("shell", {"command": "true"})
        job = (await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[cluster.nodes[0]]))["node1"]
        assert job.runs[0].node_id == "node2"
    job_id = await client.submit("file_write", {"fileName": "x.txt", "content": "x"})
    job = (await cluster.wait_for_state(job_id, "WAITING", nodes=[cluster.nodes[0]]))["node1"]
    assert "no live executor runs 'file_write' jobs" in job.waiting


async def test_long_running_job_moves_when_its_node_dies_and_stops_when_cancelled(
    make_cluster: MakeCluster,
) -> None:
    # Given a long-running job, running on some node
    cluster = await make_cluster(lease_timeout=2.0, handlers=["streamer"], files={"streamer.py": STREAMER})
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    job_id = await client.submit("stream", {}, long_running=True, name="orders-feed")

    async def running(attempt: int) -> ordo_pb2.Run | None:
        job = await cluster.client(next(n for n in cluster.nodes if n.alive)).get(job_id)
        last = job.runs[-1] if job.runs else None
        return last if last and last.attempt == attempt and last.state == ordo_pb2.RUN_STATE_RUNNING else None

    first = await eventually(lambda: running(1), timeout=20, what="attempt 1 running")

    # it heartbeats, visible in the cluster status
    async def heartbeating(attempt: int) -> bool:
        via = next(n for n in cluster.nodes if n.alive)
        status = await cluster.client(via).cluster()
        runs = [r for n in status.nodes for r in n.running if r.job_id == job_id and r.attempt == attempt]
        return bool(runs) and runs[0].progress.startswith("tick ") and runs[0].HasField("last_heartbeat")

    await eventually(lambda: heartbeating(1), timeout=10, what="heartbeats in the cluster status")
    # and a second one of the same name is refused
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.submit("stream", {}, long_running=True, name="orders-feed")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "orders-feed" in (err.value.details() or "")

    # When its node dies
    cluster.node(first.node_id).kill()
    await cluster.wait_for_leader(exclude=first.node_id)

    # Then it runs again on another node within a few lease periods
    second = await eventually(lambda: running(2), timeout=30, what="attempt 2 running elsewhere")
    assert second.node_id != first.node_id
    await eventually(lambda: heartbeating(2), timeout=10, what="attempt 2 heartbeating")

    # When it is cancelled, the handler sees ctx.cancelled and returns by itself
    survivor = cluster.node(second.node_id)
    await cluster.client(survivor).cancel(job_id)
    await cluster.wait_for_state(job_id, "CANCELLED", nodes=[survivor])

    async def stopped() -> list[dict]:
        lines = [json.loads(x) for x in (cluster.root / "streams.jsonl").read_text().splitlines()]
        return [x for x in lines if x["event"] == "stopped" and x["attempt"] == 2]

    done = await eventually(stopped, timeout=15, what="the handler stopped cleanly")
    assert done[0]["node"] == second.node_id and done[0]["ticks"] > 0
