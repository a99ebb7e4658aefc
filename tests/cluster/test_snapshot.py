"""Log compaction: snapshots are SQLite backups, and a wiped node is rebuilt from one."""

from __future__ import annotations

import shutil

import pytest
from conftest import MakeCluster
from helpers import eventually

from ordo_node.client import submit_request
from ordo_node.pb import ordo_pb2

pytestmark = pytest.mark.cluster


async def test_wiped_node_is_rebuilt_from_a_snapshot(make_cluster: MakeCluster) -> None:
    # Given a cluster that compacts its journal after a few entries
    cluster = await make_cluster(raft={"snapshot_min_entries": 20, "snapshot_min_interval": 1.0})
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    ids = [await client.submit("echo", {"i": i}) for i in range(40)]
    for job_id in ids:
        await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[leader])

    # and every node has written a snapshot
    async def snapshots() -> bool:
        return all((n.data_dir / "raft.snapshot").exists() for n in cluster.nodes)

    await eventually(snapshots, timeout=30, what="a raft.snapshot on every node")

    # When a follower is killed, its data directory wiped, and it is started again
    victim = next(n for n in cluster.nodes if n.id != leader.id)
    victim.kill()
    shutil.rmtree(victim.data_dir)
    victim.start()

    # Then it catches up, and holds every job with its outcome
    await eventually(lambda: cluster.status(victim), timeout=30, what="wiped node answering")
    await cluster.wait_for_applied(timeout=60)
    page = await cluster.client(victim).list_jobs(page_size=100)
    assert sorted(j.job_id for j in page.jobs) == sorted(ids)
    assert all(j.state == ordo_pb2.JOB_STATE_SUCCEEDED for j in page.jobs)

    # and the replicas are identical once stopped
    await cluster.stop()
    dumps = [cluster.database_dump(n) for n in cluster.nodes]
    assert dumps[0] == dumps[1] == dumps[2]


async def test_the_journal_is_compacted_when_its_commands_pass_a_size(make_cluster: MakeCluster) -> None:
    # Given a cluster whose journal would be compacted only by size: never by entries or time
    cluster = await make_cluster(
        raft={"snapshot_min_entries": 1_000_000, "snapshot_min_interval": 3600, "snapshot_journal_mb": 0.1}
    )
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)

    # When a few batches of future jobs, well over 0.1 MB of commands, are submitted
    requests = [submit_request("echo", {"pad": "x" * 200}, delay=86_400) for _ in range(200)]
    ids = [job_id for _ in range(4) for job_id in await client.submit_many(requests)]

    # Then every node writes a snapshot (only the size bound can have asked for it)
    async def snapshots() -> bool:
        return all((n.data_dir / "raft.snapshot").exists() for n in cluster.nodes)

    await eventually(snapshots, timeout=30, what="a raft.snapshot on every node")

    # and a node killed and started again, from its snapshot and what is left of its journal,
    # holds every job
    victim = next(n for n in cluster.nodes if n.id != leader.id)
    victim.kill()
    victim.start()
    await eventually(lambda: cluster.status(victim), timeout=30, what="restarted node answering")
    await cluster.wait_for_applied(timeout=60)
    held: list[str] = []
    token = ""
    while True:
        page = await cluster.client(victim).list_jobs(page_size=500, page_token=token)
        held += [j.job_id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert sorted(held) == sorted(ids) and len(ids) == 800
