"""Stopping nodes: a whole cluster stopped at once loses no outcome, and no stop hangs (issue 13)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import MakeCluster
from helpers import Cluster, eventually

pytestmark = pytest.mark.cluster

HANDLERS = '''
"""Test handlers: every execution is recorded outside the cluster, in executions.jsonl."""
import asyncio
import json
import os
import time

from ordo_node.handlers import handler

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "executions.jsonl")


def _record(ctx):
    line = json.dumps({"job": ctx.job_id, "run": ctx.run_id, "attempt": ctx.attempt, "node": ctx.node_id})
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


@handler("record")
async def record(ctx, payload):
    _record(ctx)
    await asyncio.sleep(float(payload.get("work", 0)))
    return {"node": ctx.node_id}


@handler("stubborn_thread")
def stubborn_thread(ctx, payload):
    """A blocking handler (run in a thread) that nothing can cancel."""
    _record(ctx)
    time.sleep(120)


@handler("stubborn_async")
async def stubborn_async(ctx, payload):
    """A coroutine that swallows every cancellation."""
    _record(ctx)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            pass
'''


def executions(root: Path) -> list[dict[str, object]]:
    """Every execution the handlers recorded."""
    path = root / "executions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def runs_in_database(cluster: Cluster, job_id: str) -> dict[str, list[tuple[int, str]]]:
    """Per stopped node: the job's run attempts in its SQLite file, as (attempt, state)."""
    found = {}
    for node in cluster.nodes:
        db = sqlite3.connect(f"file:{node.data_dir / 'state.db'}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT attempt, state FROM runs WHERE job_id = ? ORDER BY attempt", (job_id,)
            ).fetchall()
        finally:
            db.close()
        found[node.id] = [(int(a), str(s)) for a, s in rows]
    return found


async def test_a_node_whose_stop_is_slowed_every_way_exits_within_shutdown_grace_and_5s(
    make_cluster: MakeCluster,
) -> None:
    # Given a 3-node cluster with 2 s of shutdown grace, each node with a tag of its own
    grace = 2.0
    tags = {f"node{i}": {"executor": {"tags": [f"on-node{i}"]}} for i in (1, 2, 3)}
    cluster = await make_cluster(
        handlers=["stop_jobs"], files={"stop_jobs.py": HANDLERS}, shutdown_grace=grace, node_settings=tags
    )
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    # and on the leader two jobs that ignore cancellation (a blocking thread, a coroutine),
    # and a 1 s job
    here = [f"on-{leader.id}"]
    for job_type, payload in (("stubborn_thread", {}), ("stubborn_async", {}), ("record", {"work": 1})):
        await client.submit(job_type, payload, tags=here)

    async def all_started() -> bool:
        return len(executions(cluster.root)) == 3

    await eventually(all_started, timeout=20, what="the three jobs started")
    # and a majority already gone, so that nothing can commit and no follower can take over
    for node in cluster.nodes:
        if node is not leader:
            node.kill()

    # When the leader is sent SIGTERM
    assert leader.proc is not None
    sent = time.monotonic()
    leader.proc.terminate()
    status = await asyncio.to_thread(leader.proc.wait, 30)
    took = time.monotonic() - sent

    # Then it exits within shutdown_grace + 5 s, saying which steps it cut short
    assert took < grace + 5, f"the stop took {took:.1f}s"
    text = leader.log_text()
    assert "stop: executor overran" in text, text[-4000:]
    assert "did not exit" in text or "overran its deadline" in text, text[-4000:]
    assert status == 1, status
