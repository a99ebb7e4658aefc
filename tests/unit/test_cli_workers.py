"""Workers in the CLI and the dashboard: `up`'s split of a folder, `cluster`'s table, /api/cluster."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ordo_node.cli.client import print_cluster, shorten
from ordo_node.cli.node import _load_folder
from ordo_node.dashboard.data import Dashboard
from ordo_node.errors import ConfigError
from ordo_node.pb import ordo_pb2

REPO = Path(__file__).resolve().parents[2]
NOW_US = 1_800_000_000_000_000


def status(*workers: ordo_pb2.WorkerStatus) -> ordo_pb2.ClusterStatus:
    """A cluster of two members, node1 leading, with ``workers``."""
    return ordo_pb2.ClusterStatus(
        leader_id="node1",
        term=3,
        commit_index=9,
        node_id="node2",
        applied_index=9,
        nodes=[
            ordo_pb2.NodeStatus(node_id="node1", role="leader", reachable=True, capacity=0),
            ordo_pb2.NodeStatus(node_id="node2", role="follower", reachable=True, capacity=0),
        ],
        workers=list(workers),
    )


def worker(
    worker_id: str, *, connected: bool = True, now_us: int = NOW_US, **fields: object
) -> ordo_pb2.WorkerStatus:
    """A worker with six handlers; a connected one heard from 1.5 s before ``now_us``."""
    w = ordo_pb2.WorkerStatus(
        worker_id=worker_id,
        address="ipv4:10.0.0.7:51234",
        capacity=4,
        running_count=1,
        tags=["gpu"],
        handlers=["cpu", "echo", "http_get", "sleep", "my_jobs.report", "my_jobs.export"],
        connected_to="node1" if connected else "",
        **fields,  # type: ignore[arg-type]
    )
    if connected:
        w.last_heartbeat.FromMicroseconds(now_us - 1_500_000)
    w.registered_at.FromMicroseconds(now_us - 60_000_000)
    return w


# --- ordo-node cluster ----------------------------------------------------------------


def test_cluster_prints_the_workers_after_the_nodes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a status with a connected worker, a draining one and one that is not connected
    monkeypatch.setattr(time, "time", lambda: NOW_US / 1e6)
    st = status(worker("w1"), worker("w2", draining=True), worker("w3", connected=False))

    # When it is printed
    print_cluster(st)

    # Then the workers' table follows the nodes' after a blank line, one row each
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["node1", "node2"]
    assert lines[4] == ""
    assert lines[5].split() == [
        *("WORKER", "CONNECTED", "TO", "ADDRESS", "RUNNING", "LAST", "HEARTBEAT", "TAGS", "HANDLERS")
    ]
    rows = [line.split() for line in lines[6:]]
    handlers = "cpu,echo,http_get,sleep,+2"
    assert rows == [
        ["w1", "node1", "10.0.0.7:51234", "1/4", "1.5s", "ago", "gpu", handlers],
        ["w2", "node1", "(draining)", "10.0.0.7:51234", "1/4", "1.5s", "ago", "gpu", handlers],
        ["w3", "-", "10.0.0.7:51234", "1/4", "-", "gpu", handlers],
    ]
    # and the columns line up under their headings
    assert lines[6].index("10.0.0.7") == lines[5].index("ADDRESS")
    assert lines[8].index("gpu") == lines[5].index("TAGS")


def test_cluster_prints_nothing_more_without_workers(capsys: pytest.CaptureFixture[str]) -> None:
    print_cluster(status())
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1].split()[0] == "NODE", lines


@pytest.mark.parametrize(
    ("items", "shown"),
    [
        ([], "-"),
        (["echo"], "echo"),
        (["cpu", "echo", "http_get", "sleep"], "cpu,echo,http_get,sleep"),
        (["cpu", "echo", "http_get", "sleep", "shell", "file_write", "x"], "cpu,echo,http_get,sleep,+3"),
        (["a" * 40, "b"], "a" * 40 + ",+1"),
    ],
)
def test_long_lists_are_shortened_with_a_count(items: list[str], shown: str) -> None:
    assert shorten(items) == shown


# --- the dashboard's /api/cluster -------------------------------------------------------


async def test_dashboard_cluster_lists_the_workers(tmp_path: Path) -> None:
    # Given a dashboard whose node reports a connected worker and one that is not connected
    now = time.time_ns() // 1000

    async def cluster_status() -> ordo_pb2.ClusterStatus:
        return status(worker("w1", now_us=now), worker("w3", connected=False, now_us=now))

    dashboard = Dashboard(tmp_path / "state.db", cluster_status, asyncio.get_running_loop())

    # When it reads the cluster (on a thread of its own, as the HTTP server does)
    data = await asyncio.to_thread(dashboard.cluster)

    # Then each worker comes with where it is connected, its load, tags, handlers and heartbeat
    w1, w3 = data["workers"]
    assert {k: w1[k] for k in ("worker_id", "connected_to", "address", "capacity", "running", "tags")} == {
        "worker_id": "w1",
        "connected_to": "node1",
        "address": "10.0.0.7:51234",
        "capacity": 4,
        "running": 1,
        "tags": ["gpu"],
    }
    assert w1["handlers"][:2] == ["cpu", "echo"] and len(w1["handlers"]) == 6
    assert w1["last_heartbeat"] == now - 1_500_000 and w1["registered_at"] == now - 60_000_000
    assert 1.5 <= w1["heartbeat_age"] < 10, w1["heartbeat_age"]  # seconds, by this node's clock
    assert (w3["connected_to"], w3["last_heartbeat"], w3["heartbeat_age"]) == ("", 0, None)
    assert w1["draining"] is False


# --- ordo-node up --------------------------------------------------------------------------


def test_the_sample_folder_holds_three_nodes_and_two_workers() -> None:
    nodes, workers = _load_folder(REPO / "cluster-configs")
    assert [cfg.node_id for _, cfg in nodes] == ["node1", "node2", "node3"]
    assert all(cfg.capacity > 0 for _, cfg in nodes)  # the nodes alone run jobs (the smoke check)
    assert [w.worker_id for _, w in workers] == ["worker1", "worker2"]
    for _, w in workers:
        assert w.servers == ("127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003")
        assert w.data_dir == REPO / "cluster-configs" / "data" / w.worker_id


WORKER = '[worker]\nid = "w1"\nservers = ["127.0.0.1:7001"]\n'


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"w.toml": WORKER.replace("servers", "capacity = -1\nservers")}, ["w.toml: worker.capacity"]),
        ({"w.toml": WORKER + "colour = 1\n"}, ["w.toml: worker.colour: unknown key"]),
        ({"w.toml": WORKER + "[executor]\n"}, ["w.toml: executor: unknown table"]),
        ({"a.toml": WORKER, "b.toml": WORKER}, ["b.toml: worker.id: 'w1'", "a.toml"]),
    ],
    ids=["bad-value", "unknown-key", "node-table", "same-id"],
)
def test_up_refuses_a_bad_worker_file_before_starting_anything(
    tmp_path: Path, files: dict[str, str], words: list[str]
) -> None:
    # Given the sample nodes and a worker file that is wrong
    for node in ("node1", "node2", "node3"):
        text = (REPO / "cluster-configs" / f"{node}.toml").read_text()
        (tmp_path / f"{node}.toml").write_text(text)
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    # When the folder is checked, Then the error names the file and the key
    with pytest.raises(ConfigError) as info:
        _load_folder(tmp_path)
    assert all(w in str(info.value) for w in words), info.value

    # and `ordo-node up` exits 2 with that one line and starts nothing
    out = subprocess.run(
        [sys.executable, "-m", "ordo_node", "up", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert (out.returncode, out.stdout) == (2, ""), out.stderr
    assert out.stderr == f"ordo-node: {info.value}\n"
    assert not (tmp_path / "data").exists()
