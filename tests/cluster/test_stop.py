"""Stopping nodes: a whole cluster stopped at once loses no outcome, and no stop hangs (issue 13)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import MakeCluster
from helpers import Cluster, eventually, ordo_node_program

from ordo_node.pb import ordo_pb2

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


def assert_committed(cluster: Cluster, job_id: str) -> None:
    """The job's one attempt is SUCCEEDED on a majority of the stopped nodes' disks (a node
    that lagged may hold less, never anything else)."""
    runs = runs_in_database(cluster, job_id)
    done = [node_id for node_id, rows in runs.items() if rows == [(1, "SUCCEEDED")]]
    assert len(done) > len(runs) // 2, runs
    for rows in runs.values():
        assert rows in ([], [(1, "ASSIGNED")], [(1, "RUNNING")], [(1, "SUCCEEDED")]), runs


async def test_ctrl_c_on_up_lets_a_running_job_finish_and_commit_before_the_nodes_stop(
    tmp_path: Path,
) -> None:
    # Given a 3-node cluster started by `ordo-node up` (in its own process group, as in a terminal)
    cluster = Cluster(
        tmp_path / "cluster",
        handlers=["stop_jobs"],
        files={"stop_jobs.py": HANDLERS},
        shutdown_grace=10.0,
    )
    up_log = tmp_path / "up.log"
    with open(up_log, "ab") as out:
        up = subprocess.Popen(
            [*ordo_node_program(), "up", str(cluster.root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cluster.root,
            start_new_session=True,
        )
    try:
        client = cluster.client(cluster.nodes[0])

        async def leader() -> str:
            return (await client.cluster()).leader_id

        await eventually(leader, timeout=30, what="a leader")
        # and a 3 s job that is running
        job_id = await client.submit("record", {"work": 3})
        await eventually(lambda: _started(cluster.root), timeout=20, what="the job started")

        # When Ctrl-C reaches `up` (SIGINT to its process group, as a terminal sends it)
        stopped_at = time.monotonic()
        os.killpg(up.pid, signal.SIGINT)
        status = await asyncio.to_thread(up.wait, 40)
        took = time.monotonic() - stopped_at

        # Then `up` exits cleanly once the job has finished and its outcome is committed
        assert status == 0, up_log.read_text()
        assert took < 10 + 5, f"up took {took:.1f}s to stop"
        text = up_log.read_text()
        assert "run updates not committed" not in text.replace("not committed yet", ""), text
        assert "did not stop in time" not in text and "overran" not in text, text
        # (on a majority of the disks: it was committed while a majority was up)
        assert_committed(cluster, job_id)

        # and after a restart on the same data directories the job is SUCCEEDED, executed once
        cluster.start()
        await cluster.wait_for_leader()
        await cluster.wait_for_applied()
        job = await cluster.client(cluster.nodes[0]).get(job_id)
        assert job.state == ordo_pb2.JOB_STATE_SUCCEEDED
        assert [r.state for r in job.runs] == [ordo_pb2.RUN_STATE_SUCCEEDED]
        assert [e["job"] for e in executions(cluster.root)] == [job_id]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
        await cluster.stop()
        print(up_log.read_text()[-8000:] if up_log.exists() else "")
        print(cluster.logs())


async def test_sigterm_to_every_node_at_once_loses_no_outcome(make_cluster: MakeCluster) -> None:
    # Given a 3-node cluster with a 3 s job running on one of its nodes
    cluster = await make_cluster(
        handlers=["stop_jobs"], files={"stop_jobs.py": HANDLERS}, shutdown_grace=10.0
    )
    leader = await cluster.wait_for_leader()
    job_id = await cluster.client(leader).submit("record", {"work": 3})
    await eventually(lambda: _started(cluster.root), timeout=20, what="the job started")

    # When every node is sent SIGTERM at the same moment (as `docker compose down` does)
    await cluster.stop()

    # Then every node exited by itself, with the job's outcome committed
    assert [n.proc.returncode for n in cluster.nodes if n.proc] == [0, 0, 0]
    assert_committed(cluster, job_id)
    assert "staying in Raft until stopping nodes" in "".join(n.log_text() for n in cluster.nodes)
    # and after a restart it is SUCCEEDED, executed once
    cluster.start()
    await cluster.wait_for_leader()
    await cluster.wait_for_applied()
    job = await cluster.client(cluster.nodes[0]).get(job_id)
    assert [r.state for r in job.runs] == [ordo_pb2.RUN_STATE_SUCCEEDED]
    assert [e["job"] for e in executions(cluster.root)] == [job_id]


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


async def _started(root: Path) -> bool:
    return bool(executions(root))
