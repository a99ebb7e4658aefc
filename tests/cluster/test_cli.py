"""The ``ordo-node`` command line, run as a real program: nodes, local clusters, client commands, errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeCluster
from helpers import Cluster, eventually, free_ports, ordo_node_program

from ordo_node.client import ENV_ADDRESS, Client
from ordo_node.pb import ordo_pb2

pytestmark = pytest.mark.cluster

PROGRAM = ordo_node_program()
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NO_SUCH_JOB = "00000000-0000-4000-8000-000000000000"


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without ORDO_ADDRESS, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != ENV_ADDRESS}
    env.update(extra)
    return env


async def ordo(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``ordo-node ARGS`` to completion; the result holds its exit code, stdout and stderr."""
    return await asyncio.to_thread(
        subprocess.run,
        [*PROGRAM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env() if env is None else env,
        cwd=cwd,
    )


async def ok(*args: str, **kwargs: Any) -> str:
    """``ordo-node ARGS`` that must succeed; its stdout."""
    out = await ordo(*args, **kwargs)
    assert out.returncode == 0, f"ordo-node {' '.join(args)}: exit {out.returncode}: {out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    return out.stdout


async def ok_json(*args: str, **kwargs: Any) -> Any:
    """``ordo-node ARGS --json`` that must succeed; its parsed stdout."""
    return json.loads(await ok(*args, "--json", **kwargs))


def one_line_error(out: subprocess.CompletedProcess[str], status: int) -> str:
    """Assert the program failed with ``status`` and one ``ordo-node: ...`` line on stderr; return it."""
    assert out.returncode == status, f"exit {out.returncode}, wanted {status}: {out.stderr}"
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    assert out.stdout == "", out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("ordo-node: "), lines[0]
    return lines[0]


def start(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``ordo-node ARGS`` in the background, its output appended to ``log``."""
    with open(log, "ab") as f:
        return subprocess.Popen([*PROGRAM, *args], stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=cli_env())


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Send ``sig`` and wait; kill -9 if it does not exit in time. Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


async def leader_status(addresses: str) -> dict[str, Any]:
    """``cluster --json``, once it names a leader."""
    status: dict[str, Any] = await ok_json("cluster", "--address", addresses, "--timeout", "5")
    assert status.get("leaderId"), status
    return status


async def job_in(addresses: str, job_id: str, state: str) -> dict[str, Any]:
    """``get --json``, once the job is in ``state``."""
    job: dict[str, Any] = await ok_json("get", job_id, "--address", addresses, "--timeout", "5")
    assert job["state"] == f"JOB_STATE_{state}", job["state"]
    return job


def timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- run and up -------------------------------------------------------------------


async def test_run_without_config_is_a_single_node_cluster_that_keeps_its_jobs(tmp_path: Path) -> None:
    # Given a node started with no config file, on free ports and a fresh data directory
    grpc_port, raft_port = free_ports(2)
    address = f"127.0.0.1:{grpc_port}"
    data_dir = (tmp_path / "data").resolve()
    run = ["run", "--data-dir", str(data_dir), "--grpc-address", address]
    run += ["--raft-address", f"127.0.0.1:{raft_port}"]
    log = tmp_path / "node.log"
    proc = start(run, log, tmp_path)
    try:
        # When it has started
        # Then it elects itself leader of a cluster of one
        status = await eventually(lambda: leader_status(address), timeout=30, what="a leader")
        assert status["leaderId"] == "node1" and status["nodeId"] == "node1"
        members = [(n["nodeId"], n["role"], n["grpcAddress"], n["raftAddress"]) for n in status["nodes"]]
        assert members == [("node1", "leader", address, f"127.0.0.1:{raft_port}")]

        # When a job is submitted through the CLI
        submitted = await ok_json("submit", "echo", "--payload", '{"k": 1}', "--address", address)
        job_id = submitted["jobId"]
        assert UUID.match(job_id), submitted

        # Then it runs once, on node1, with its payload as result
        job = await eventually(lambda: job_in(address, job_id, "SUCCEEDED"), what="job SUCCEEDED")
        assert job["result"] == {"k": 1}
        assert [(r["attempt"], r["state"], r["nodeId"]) for r in job["runs"]] == [
            (1, "RUN_STATE_SUCCEEDED", "node1")
        ]
        # and the data directory holds the database and a private, generated cluster secret
        assert (data_dir / "state.db").is_file()
        secret = data_dir / "cluster.secret"
        assert secret.stat().st_mode & 0o777 == 0o600
        assert len(secret.read_text().strip()) >= 16

        # When a second node is started on the same data directory
        other_grpc, other_raft = free_ports(2)
        second = ["run", "--data-dir", str(data_dir), "--grpc-address", f"127.0.0.1:{other_grpc}"]
        out = await ordo(*second, "--raft-address", f"127.0.0.1:{other_raft}", cwd=tmp_path)
        # Then it is refused in one line naming the directory, and the first node keeps serving
        line = one_line_error(out, 2)
        assert f"{data_dir} is in use" in line, line
        assert (await job_in(address, job_id, "SUCCEEDED"))["jobId"] == job_id

        # When the node gets SIGTERM
        began = time.monotonic()
        status_code = await asyncio.to_thread(stop, proc, signal.SIGTERM, 20.0)
        took = time.monotonic() - began
        # Then it exits 0 within a few seconds, and its port closes
        assert status_code == 0, log.read_text()
        assert took < 5, f"took {took:.1f}s to stop"
        assert not port_open(grpc_port)

        # When it is started again on the same data directory
        proc = start(run, log, tmp_path)
        # Then it leads again, and the job is still there, SUCCEEDED, with its one run
        await eventually(lambda: leader_status(address), timeout=30, what="a leader after restart")
        job = await job_in(address, job_id, "SUCCEEDED")
        assert job["result"] == {"k": 1} and len(job["runs"]) == 1
    finally:
        await asyncio.to_thread(stop, proc)
        print(log.read_text(errors="replace")[-6000:])


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=10)
    return sorted(int(p) for p in out.stdout.split())


async def test_up_runs_every_config_in_a_folder_and_stops_them_all(tmp_path: Path) -> None:
    # Given a folder with three node configs on free ports (written, not started, by the harness)
    configs = Cluster(tmp_path, size=3)
    addresses = ",".join(n.address for n in configs.nodes)
    # and a worker's config (a [worker] table) naming the three nodes
    (tmp_path / "worker1.toml").write_text(
        f'[worker]\nid = "worker1"\nservers = "{addresses}"\ncapacity = 2\ntags = ["up"]\n'
        'data_dir = "data/worker1"\nshutdown_grace = 5\n'
    )
    names = ["node1.toml", "node2.toml", "node3.toml", "worker1.toml"]
    assert sorted(p.name for p in tmp_path.glob("*.toml")) == names
    log = tmp_path / "up.log"

    # When `ordo-node up` runs on it
    with open(log, "ab") as f:
        up = subprocess.Popen(
            [*PROGRAM, "up", str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=f,
            text=True,
            cwd=tmp_path,
            env=cli_env(),
        )
    assert up.stdout is not None
    lines: list[str] = []

    def read(stream: Any = up.stdout) -> None:
        for line in stream:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    children: list[int] = []
    try:

        async def printed() -> bool:
            return len(lines) >= 5

        # Then it prints one line per node with its addresses and data directory, one for the
        # worker with its servers, capacity and data directory, then a summary
        await eventually(printed, timeout=30, what="up's start-up lines")
        for node, line in zip(configs.nodes, lines[:3], strict=True):
            assert line == (
                f"{node.id}: grpc {node.address}  raft 127.0.0.1:{node.raft_port}"
                f"  data {node.data_dir.resolve()}\n"
            ), line
        worker_data = (tmp_path / "data" / "worker1").resolve()
        assert lines[3] == f"worker1: worker of {addresses}  capacity 2  data {worker_data}\n", lines[3]
        assert lines[4].startswith("3 nodes and 1 worker started;"), lines[4]

        # and runs each node and the worker as a child process
        async def four_children() -> list[int]:
            pids = await asyncio.to_thread(child_pids, up.pid)
            assert len(pids) == 4, pids
            return pids

        children = await eventually(four_children, what="three node processes and a worker")
        commands = []
        for pid in children:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert b"--config" in cmdline, cmdline
            commands.append(cmdline[cmdline.index(b"--config") - 1 : cmdline.index(b"--config") + 2])
        assert sorted(commands) == sorted(
            [[b"run", b"--config", str(tmp_path / f"node{i}.toml").encode()] for i in (1, 2, 3)]
            + [[b"worker", b"--config", str(tmp_path / "worker1.toml").encode()]]
        ), commands

        # and the three nodes form one cluster, every node reachable (a node may still be starting
        # when the first two have elected a leader, so this is polled too)
        async def all_reachable() -> dict[str, Any] | None:
            status = await leader_status(addresses)
            nodes = sorted((n["nodeId"], n.get("reachable", False)) for n in (status or {}).get("nodes", []))
            return status if nodes == [("node1", True), ("node2", True), ("node3", True)] else None

        status = await eventually(all_reachable, timeout=30, what="a leader and three reachable nodes")
        assert status["leaderId"] in {"node1", "node2", "node3"}

        # and `ordo-node cluster` lists the worker after the nodes, connected to the leader
        async def worker_listed() -> list[str]:
            out = (await ok("cluster", "--address", addresses, "--timeout", "5")).splitlines()
            workers = out[out.index("") + 1 :] if "" in out else []
            assert len(workers) == 2 and workers[1].split()[1] != "-", out
            return out

        out = await eventually(worker_listed, timeout=30, what="the worker connected")
        leader = re.match(r"leader (\S+) ", out[0])
        assert leader, out[0]
        assert [line.split()[0] for line in out[2:5]] == ["node1", "node2", "node3"]
        assert len(out) == 8 and out[5] == "", out
        assert out[6].split() == [
            *("WORKER", "CONNECTED", "TO", "ADDRESS", "RUNNING", "LAST", "HEARTBEAT", "TAGS", "HANDLERS")
        ]
        worker_id, connected_to, peer, running, age, ago, tags, handlers = out[7].split()
        assert [worker_id, connected_to, running, ago, tags] == [
            "worker1",
            leader.group(1),
            "0/2",
            "ago",
            "up",
        ]
        assert re.fullmatch(r"127\.0\.0\.1:\d+", peer) and re.fullmatch(r"\d+\.\ds", age), out[7]
        assert float(age[:-1]) < 5 and "echo" in handlers.split(","), out[7]
        # and so does `cluster --json`
        (worker,) = (await leader_status(addresses))["workers"]
        assert (worker["workerId"], worker["connectedTo"], worker["capacity"]) == (
            "worker1",
            leader.group(1),
            2,
        )

        # When a job is submitted through the CLI with all three addresses
        submitted = await ok_json("submit", "echo", "--payload", '{"via": "up"}', "--address", addresses)
        job_id = submitted["jobId"]
        # Then it succeeds
        job = await eventually(lambda: job_in(addresses, job_id, "SUCCEEDED"), what="job SUCCEEDED")
        assert job["result"] == {"via": "up"}

        # When `up` gets SIGINT (Ctrl-C)
        up.send_signal(signal.SIGINT)
        status_code = await asyncio.to_thread(up.wait, 30)

        # Then it exits 0, every node and worker process is gone and no node port answers
        assert status_code == 0, log.read_text()
        assert [pid for pid in children if pid_alive(pid)] == []
        assert [n.id for n in configs.nodes if port_open(n.grpc_port)] == []
        # and it stopped the worker first (it left while the nodes were still up), then the nodes
        await asyncio.to_thread(reader.join, 10)
        stopping = [line for line in lines if line.startswith("stopping")]
        assert [line.split(":")[0] for line in stopping] == ["stopping 1 worker", "stopping 3 nodes"], lines
        text = log.read_text(errors="replace")
        assert "worker worker1 left" in text, text[-3000:]
        assert text.index("worker worker1 stopped") < text.index("node node1 stopping"), text[-3000:]
    finally:
        await asyncio.to_thread(stop, up, signal.SIGINT)
        for pid in children:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(reader.join, 10)
        up.stdout.close()
        print(log.read_text(errors="replace")[-6000:])


# -- client commands ----------------------------------------------------------------


async def test_client_commands_in_human_and_json_form(cluster: Cluster) -> None:
    n1, n2, n3 = (n.address for n in cluster.nodes)

    # Given a job due in an hour, submitted through the CLI: the human answer is the id alone
    out = await ok(
        "submit", "echo", "--payload", '{"later": true}', "--delay", "1h", "--name", "later", "--address", n1
    )
    job_id = out.strip()
    assert UUID.match(job_id) and out == f"{job_id}\n", out

    # Then `list --state SCHEDULED --json` holds it, due an hour after it was created
    page = await ok_json("list", "--state", "SCHEDULED", "--address", n1)
    assert [(j["jobId"], j["name"], j["type"]) for j in page["jobs"]] == [(job_id, "later", "echo")]
    due_in = timestamp(page["jobs"][0]["runAt"]) - timestamp(page["jobs"][0]["createdAt"])
    assert abs(due_in.total_seconds() - 3600) < 5, due_in
    assert "nextPageToken" not in page
    # and `get` shows it readably
    shown = (await ok("get", job_id, "--address", n1)).splitlines()
    assert shown[:3] == [f"job      {job_id}", "type     echo  name later", "state    SCHEDULED"]
    assert 'payload  {"later": true}' in shown

    # When it is cancelled through another node
    out = await ok("cancel", job_id, "--address", n2)
    # Then the human answer shows it CANCELLED, and a consistent read on a third node agrees
    assert out.splitlines()[:3] == [f"job      {job_id}", "type     echo  name later", "state    CANCELLED"]
    job = await ok_json("get", job_id, "--consistent", "--address", n3)
    assert job["state"] == "JOB_STATE_CANCELLED"
    assert "runs" not in job
    # and its history table holds a SCHEDULED row then a CANCELLED row
    rows = [line.split() for line in (await ok("history", job_id, "--address", n3)).splitlines()]
    assert rows[0] == ["TIME", "EVENT", "NODE", "DETAIL"]
    assert [r[1] for r in rows[1:]] == ["SCHEDULED", "CANCELLED"]
    assert all(r[2] in {"node1", "node2", "node3"} for r in rows[1:])
    assert timestamp(rows[1][0]) <= timestamp(rows[2][0])

    # Given five more jobs, of another type
    submit_sleep = ["submit", "sleep", "--payload", '{"seconds": 0.1}', "--delay", "1h", "--address", n1]
    ids = [(await ok_json(*submit_sleep, "--name", f"p{i}"))["jobId"] for i in range(5)]

    # When they are listed two per page, following the token each page prints
    pages: list[str] = []
    token = ""
    while True:
        more = ["--page-token", token] if token else []
        pages.append(await ok("list", "--type", "sleep", "--page-size", "2", *more, "--address", n2))
        found = re.search(r"^next page: --page-token (\S+)$", pages[-1], re.MULTILINE)
        if not found:
            break
        token = found.group(1)
        assert len(pages) < 5, pages

    # Then the pages hold 2, 2 and 1 jobs, newest first, each once, and only the last has no token
    listed = [
        [line.split() for line in page.splitlines()[1:] if not line.startswith("next page:")]
        for page in pages
    ]
    assert all(
        page.splitlines()[0].split() == ["JOB", "TYPE", "STATE", "RUN", "AT", "NEXT", "FIRE", "NAME"]
        for page in pages
    )
    assert [len(rows) for rows in listed] == [2, 2, 1]
    assert [r[0] for rows in listed for r in rows] == ids[::-1]
    assert all(r[1:3] == ["sleep", "SCHEDULED"] for rows in listed for r in rows)
    # one-off jobs have no next fire time
    assert [r[4:] for rows in listed for r in rows] == [["-", f"p{i}"] for i in range(4, -1, -1)]
    # and --json pages the same way
    first = await ok_json("list", "--type", "sleep", "--page-size", "2", "--address", n2)
    assert [j["jobId"] for j in first["jobs"]] == [ids[4], ids[3]]
    assert f"next page: --page-token {first['nextPageToken']}" in pages[0].splitlines()

    # When `cluster` is asked for a readable status
    lines = (await ok("cluster", "--address", n2)).splitlines()
    # Then it names the leader, the answering node and all three nodes with their addresses
    head = re.fullmatch(r"leader (node[123])  term (\d+)  commit (\d+)  \(answered by node2\)", lines[0])
    assert head, lines[0]
    assert lines[1].split() == ["NODE", "ROLE", "UP", "GRPC", "RAFT", "RUNNING", "APPLIED", "TAGS"]
    table = {line.split()[0]: line.split() for line in lines[2:]}
    assert sorted(table) == ["node1", "node2", "node3"]
    for node in cluster.nodes:
        role, up, grpc_address, raft_address, running = table[node.id][1:6]
        assert role == ("leader" if node.id == head.group(1) else "follower"), table[node.id]
        assert (up, grpc_address, raft_address) == ("yes", node.address, f"127.0.0.1:{node.raft_port}")
        assert running == "0/8"

    # When ORDO_ADDRESS names a node and --address is absent, the CLI uses it
    job = await ok_json("get", job_id, env=cli_env(ORDO_ADDRESS=n3))
    assert job["jobId"] == job_id and job["state"] == "JOB_STATE_CANCELLED"
    # and --address wins over it
    (closed,) = free_ports(1)
    job = await ok_json("get", job_id, "--address", n1, env=cli_env(ORDO_ADDRESS=f"127.0.0.1:{closed}"))
    assert job["jobId"] == job_id
    # and a dead first address is skipped for the next one
    job = await ok_json("get", job_id, "--address", f"127.0.0.1:{closed},{n1}")
    assert job["jobId"] == job_id
    # and an ORDO_ADDRESS where nothing listens fails in one line naming it
    out = await ordo("get", job_id, "--timeout", "1", env=cli_env(ORDO_ADDRESS=f"127.0.0.1:{closed}"))
    line = one_line_error(out, 1)
    assert line.startswith("ordo-node: UNAVAILABLE: ") and f"127.0.0.1:{closed}" in line, line


async def test_client_errors_are_one_line_with_the_status_code(cluster: Cluster) -> None:
    address = cluster.nodes[0].address
    # Given a cancelled job
    job_id = (await ok_json("submit", "echo", "--delay", "1h", "--address", address))["jobId"]
    await ok("cancel", job_id, "--address", address)

    # When bad or impossible requests are made, Then each fails with exit 1 and one line
    cases = [
        (["get", "not-a-uuid"], "INVALID_ARGUMENT", ["jobId:", "not-a-uuid"]),
        (["get", "not-a-uuid", "--json"], "INVALID_ARGUMENT", ["jobId:"]),
        (["get", NO_SUCH_JOB], "NOT_FOUND", ["jobId:", NO_SUCH_JOB]),
        (["history", NO_SUCH_JOB], "NOT_FOUND", [NO_SUCH_JOB]),
        (["cancel", NO_SUCH_JOB], "NOT_FOUND", [NO_SUCH_JOB]),
        (["cancel", job_id], "FAILED_PRECONDITION", [job_id, "CANCELLED"]),
        (["submit", "nosuch"], "INVALID_ARGUMENT", ["type:", "'nosuch'"]),
        (["submit", "echo", "--run-at", "next tuesday"], "INVALID_ARGUMENT", ["runAt:"]),
        (["list", "--page-token", "garbage"], "INVALID_ARGUMENT", ["pageToken:"]),
    ]
    for args, code, words in cases:
        line = one_line_error(await ordo(*args, "--address", address), 1)
        assert line.startswith(f"ordo-node: {code}: "), (args, line)
        assert all(w in line for w in words), (args, line)

    # and the node keeps serving
    assert (await leader_status(address))["leaderId"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["submit", "echo", "--payload", "{bad"], ["--payload is not JSON"]),
        (["submit", "echo", "--delay", "soon"], ["--delay", "'soon'"]),
        (["list", "--state", "BOGUS"], ["--state", "'BOGUS'"]),
        (["run", "--config", "missing.toml"], ["missing.toml: cannot read"]),
        (["run", "--config", "x.toml", "--data-dir", "d"], ["--data-dir applies only without --config"]),
        (
            ["run", "--grpc-address", "nope", "--raft-address", "127.0.0.1:1", "--data-dir", "d"],
            ["--grpc-address", "'nope'"],
        ),
        (["up", "empty"], ["empty: no *.toml node configs"]),
    ],
    ids=["payload", "delay", "state", "missing-config", "config-and-data-dir", "grpc-address", "up-empty"],
)
async def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    # Given no node at all: client commands point at a closed port, so only local checks can answer
    (tmp_path / "empty").mkdir()
    (closed,) = free_ports(1)
    if args[0] in ("submit", "list"):
        args = [*args, "--address", f"127.0.0.1:{closed}", "--timeout", "1"]

    # When the command runs
    out = await ordo(*args, cwd=tmp_path)

    # Then it exits 2 with one line naming what is wrong, and starts nothing
    line = one_line_error(out, 2)
    assert all(w in line for w in words), line
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("busy", ["grpc", "raft"])
async def test_run_refuses_a_port_in_use_naming_the_key(tmp_path: Path, busy: str) -> None:
    # Given a node config whose gRPC (or Raft) port this test holds open
    grpc_port, raft_port = free_ports(2)
    port = grpc_port if busy == "grpc" else raft_port
    config = tmp_path / "node.toml"
    config.write_text(
        f'[node]\nid = "solo"\ngrpc_address = "127.0.0.1:{grpc_port}"\n'
        f'raft_address = "127.0.0.1:{raft_port}"\ndata_dir = "data"\n\n'
        '[cluster]\nsecret = "test-cluster-secret-0123456789"\n'
    )
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", port))
        holder.listen()

        # When a node is run with it
        out = await ordo("run", "--config", str(config), cwd=tmp_path)
    finally:
        holder.close()

    # Then it exits 2, its last line naming the file, the key and the address, with no traceback
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last == f"ordo-node: {config}: node.{busy}_address: cannot listen on 127.0.0.1:{port}", out.stderr
    # and the other port was let go
    other = raft_port if busy == "grpc" else grpc_port
    assert not port_open(other)


@pytest.mark.parametrize(
    "program", [PROGRAM, [sys.executable, "-m", "ordo_node"]], ids=["ordo-node", "python-m"]
)
async def test_version(program: list[str]) -> None:
    out = await asyncio.to_thread(
        subprocess.run, [*program, "--version"], capture_output=True, text=True, timeout=60
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "ordo-node 0.1.0\n", "")


# -- issue 16: the command line without rough edges -----------------------------------


def unique_prefix(job_id: str, others: list[str]) -> str:
    """The shortest start of ``job_id`` (at least 4 characters) that no other id begins with."""
    for n in range(4, len(job_id)):
        if not any(o != job_id and o.startswith(job_id[:n]) for o in others):
            return job_id[:n]
    return job_id


async def test_submit_wait_prints_the_result_or_fails_with_the_error(make_cluster: MakeCluster) -> None:
    address = (await make_cluster(1)).nodes[0].address

    # When a job is submitted with --wait
    out = await ok("submit", "echo", "--payload", '{"n": 9007199254740993}', "--wait", "--address", address)
    # Then the id comes first, then the handler's result, numbers exact
    job_id, result = out.splitlines()
    assert UUID.match(job_id) and json.loads(result) == {"n": 9007199254740993}, out
    assert (await job_in(address, job_id, "SUCCEEDED"))["jobId"] == job_id

    # When a job that fails is submitted with --wait
    command = '{"command": "echo boom >&2; exit 3"}'
    failed = await ordo("submit", "shell", "--payload", command, "--wait", "--address", address)
    # Then it exits 1: the id on stdout, the job's fate and its error on stderr
    assert failed.returncode == 1, failed.stderr
    assert UUID.match(failed.stdout.strip()), failed.stdout
    assert "Traceback (most recent call last)" not in failed.stderr.split("\n")[0], failed.stderr
    first = failed.stderr.splitlines()[0]
    assert first.startswith(f"ordo-node: job {failed.stdout.strip()} FAILED after attempt 1: "), first

    # When --json is asked with --wait: the final job, as JSON
    job = await ok_json("submit", "echo", "--payload", "[1, 2]", "--wait", "--address", address)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and json.loads(job["resultJson"]) == [1, 2]

    # When the job does not end within --wait-timeout: exit 124, the job goes on
    late = await ordo(
        "submit", "echo", "--delay", "1h", "--wait", "--wait-timeout", "300ms", "--address", address
    )
    assert late.returncode == 124, late.stderr
    assert "is still SCHEDULED after 0.3s" in late.stderr, late.stderr
    await job_in(address, late.stdout.strip(), "SCHEDULED")


async def test_list_filters_show_next_fire_times_and_a_summary_for_pause(make_cluster: MakeCluster) -> None:
    address = (await make_cluster(1)).nodes[0].address
    at = ["--address", address]

    # Given a recurring job, a job with tags no executor has, a failed job and a cancelled one
    nightly = (await ok("submit", "echo", "--cron", "0 3 * * *", "--name", "nightly", *at)).strip()
    tagged = await ok_json("submit", "echo", "--tags", "gpu,big", "--tags", "eu", "--name", "tagged", *at)
    failed = await ordo("submit", "shell", "--payload", '{"command": "exit 3"}', "--wait", *at)
    assert failed.returncode == 1, failed.stderr
    cancelled = (await ok("submit", "echo", "--delay", "1h", "--name", "nightly", *at)).strip()
    await ok("cancel", cancelled, *at)
    # and an attempt timeout, which is not the client's --timeout
    limited = (
        await ok("submit", "echo", "--delay", "1h", "--attempt-timeout", "5m", "--timeout", "7", *at)
    ).strip()

    job = await ok_json("get", tagged["jobId"], *at)
    assert sorted(job["tags"]) == ["big", "eu", "gpu"]
    await eventually(lambda: job_in(address, tagged["jobId"], "WAITING"), what="the tagged job WAITING")
    assert (await ok_json("get", limited, *at))["timeout"] == "300s"
    assert "timeout" not in await ok_json("get", cancelled, *at)

    # When the jobs are listed by name, Then only that name's jobs come, newest first
    page = await ok_json("list", "--name", "nightly", *at)
    assert [j["jobId"] for j in page["jobs"]] == [cancelled, nightly]
    assert (await ok_json("list", "--name", "nosuch", *at)) == {}

    # and the table shows the recurring job's next fire time, "-" for the one-off job
    rows = [line.split() for line in (await ok("list", "--name", "nightly", *at)).splitlines()]
    assert rows[0] == ["JOB", "TYPE", "STATE", "RUN", "AT", "NEXT", "FIRE", "NAME"]
    next_fire = (await ok_json("get", nightly, *at))["nextFireTime"]
    assert timestamp(next_fire).time().isoformat() == "03:00:00"
    assert rows[1][0] == cancelled and rows[1][4] == "-"
    assert rows[2][0] == nightly and timestamp(rows[2][4]) == timestamp(next_fire)

    # When it is paused: the answer is the job's summary, its runs in one line at most
    shown = (await ok("pause", nightly, "--note", "maintenance", *at)).splitlines()
    assert shown[:3] == [f"job      {nightly}", "type     echo  name nightly", "state    PAUSED"]
    assert "schedule 0 3 * * * (UTC), 0 occurrences so far" in shown
    assert f"next     {rows[2][4]}" in shown
    assert not [line for line in shown if line.startswith("run      ")]
    assert (await ok("resume", nightly, *at)).splitlines()[2] == "state    SCHEDULED"
    await ok("pause", nightly, *at)

    # When every job state is asked for, in lower case: each is accepted, and lists its jobs only
    expected = {"PAUSED": nightly, "WAITING": tagged["jobId"], "FAILED": failed.stdout.strip()}
    expected |= {"CANCELLED": cancelled, "SCHEDULED": limited}
    for state in [n.removeprefix("JOB_STATE_") for n in ordo_pb2.JobState.keys()[1:]]:
        page = await ok_json("list", "--state", state.lower(), *at)
        assert {j["state"] for j in page.get("jobs", [])} <= {f"JOB_STATE_{state}"}, (state, page)
        if state in expected:
            assert expected[state] in [j["jobId"] for j in page["jobs"]], (state, page)
    # and a word that is none is refused before any call, naming the valid ones
    line = one_line_error(await ordo("list", "--state", "done", *at), 2)
    assert "'done' is not a job state" in line and "DEAD_LETTER" in line and "RETRYING" in line, line


async def test_a_unique_start_of_a_job_id_is_taken_wherever_an_id_is(make_cluster: MakeCluster) -> None:
    address = (await make_cluster(1)).nodes[0].address
    at = ["--address", address]
    # Given jobs submitted together (version-7 ids: they share their first characters)
    ids = [(await ok("submit", "echo", "--cron", "@daily", "--name", f"j{i}", *at)).strip() for i in range(3)]
    failed = await ordo("submit", "shell", "--payload", '{"command": "exit 3"}', "--wait", *at)
    ids.append(failed.stdout.strip())
    job_id = ids[0]
    short = unique_prefix(job_id, ids)
    assert len(short) < len(job_id)

    # When each command that takes an id is given a unique prefix (in upper case too)
    # Then it acts on that job
    assert (await ok_json("get", short.upper(), *at))["jobId"] == job_id
    assert (await ok("get", short, *at)).splitlines()[0] == f"job      {job_id}"
    assert [e["jobId"] for e in (await ok_json("history", short, *at))["events"]] == [job_id]
    assert (await ok_json("occurrences", short, *at)) == {}
    assert (await ok_json("explain", short, "2030-01-01T00:00:00Z", *at))["explanation"]
    assert (await ok_json("pause", short, *at))["state"] == "JOB_STATE_PAUSED"
    assert (await ok_json("resume", short, *at))["state"] == "JOB_STATE_SCHEDULED"
    assert (await ok_json("cancel", short, *at))["state"] == "JOB_STATE_CANCELLED"
    retry = unique_prefix(ids[3], ids)
    assert (await ok_json("retry", retry, *at))["jobId"] == ids[3]
    # and WatchJobs streams that job's events only
    async with Client(address) as client:
        events = client.watch(short, after_seq=1)
        seen = [await asyncio.wait_for(anext(events), 10) for _ in range(2)]
        await events.aclose()
    assert [e.job_id for e in seen] == [job_id, job_id]
    kinds = {ordo_pb2.EventType.Name(e.type).removeprefix("EVENT_TYPE_") for e in seen}
    assert kinds <= {"SCHEDULED", "PAUSED", "RESUMED", "CANCELLED"}, kinds

    # When a prefix is shared by several jobs: INVALID_ARGUMENT naming the field, and ambiguous
    shared = next(
        ids[0][:n] for n in range(len(ids[0]), 0, -1) if all(i.startswith(ids[0][:n]) for i in ids[:3])
    )
    assert len(shared) >= 4, ids
    for command in (["get", shared], ["cancel", shared], ["explain", shared, "2030-01-01T00:00:00Z"]):
        line = one_line_error(await ordo(*command, *at), 1)
        assert line.startswith(f"ordo-node: INVALID_ARGUMENT: jobId: '{shared}' is ambiguous"), line
    # a prefix of no job: NOT_FOUND; a prefix too short or not hex: INVALID_ARGUMENT
    line = one_line_error(await ordo("history", "ffff-ff", *at), 1)
    assert line == "ordo-node: NOT_FOUND: jobId: no job id starts with 'ffff-ff'", line
    line = one_line_error(await ordo("pause", job_id[:3], *at), 1)
    assert line.startswith("ordo-node: INVALID_ARGUMENT: jobId: ") and "at least 4 characters" in line, line
    line = one_line_error(await ordo("get", "zzzzzz", *at), 1)
    assert "INVALID_ARGUMENT: jobId: 'zzzzzz' is not a job id" in line, line


async def test_a_second_singleton_submission_prints_a_skipped_note(make_cluster: MakeCluster) -> None:
    at = ["--address", (await make_cluster(1)).nodes[0].address]
    # Given a job queued with singleton key k (mode SKIP by default)
    first = (await ok("submit", "echo", "--delay", "1h", "--singleton-key", "k", *at)).splitlines()
    assert len(first) == 1 and UUID.match(first[0]), first
    # When another is submitted with that key
    second = (await ok("submit", "echo", "--delay", "1h", "--singleton-key", "k", *at)).splitlines()
    # Then its answer is the first job, and a second line says it was skipped, naming that job
    assert second[0] == first[0] and len(second) == 2, second
    assert second[1].startswith("skipped") and first[0] in second[1], second


async def test_ctrl_c_ends_watch_quietly(make_cluster: MakeCluster) -> None:
    address = (await make_cluster(1)).nodes[0].address
    # Given `watch` following every job's events
    watch = subprocess.Popen(
        [*PROGRAM, "watch", "--address", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watch.stdout or ()), daemon=True)
    reader.start()
    try:
        # When a job runs, Then its events are printed as they come
        async def streamed() -> bool:
            job_id = (await ok("submit", "echo", "--address", address)).strip()
            return await eventually(
                lambda: asyncio.sleep(0, any(job_id in line and "SUCCEEDED" in line for line in lines)),
                timeout=5,
                what="the job's SUCCEEDED event",
            )

        await eventually(streamed, timeout=30, what="watch printing events")
        # When it gets SIGINT (Ctrl-C)
        watch.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(watch.wait, 10)
        stderr = watch.stderr.read() if watch.stderr else ""
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(10)
        reader.join(10)
        for pipe in (watch.stdout, watch.stderr):
            if pipe is not None:
                pipe.close()
    # Then it ends at once, as interrupted, without a traceback or a word on stderr
    assert code in (0, 130), stderr
    assert stderr == "", stderr


# -- known bugs ---------------------------------------------------------------------


@pytest.mark.parametrize("addresses", ["", " , "], ids=["empty", "commas"])
async def test_empty_address_is_a_one_line_usage_error(addresses: str) -> None:
    out = await ordo("get", NO_SUCH_JOB, "--address", addresses, "--timeout", "1")
    line = one_line_error(out, 2)
    assert "address" in line, line


@pytest.mark.parametrize("how", ["data-dir-flag", "config-file"])
async def test_data_dir_that_cannot_be_created_is_a_one_line_error(tmp_path: Path, how: str) -> None:
    # Given a data directory below a regular file
    (tmp_path / "afile").write_text("")
    grpc_port, raft_port = free_ports(2)
    if how == "data-dir-flag":
        args = ["run", "--data-dir", str(tmp_path / "afile" / "sub")]
        args += ["--grpc-address", f"127.0.0.1:{grpc_port}", "--raft-address", f"127.0.0.1:{raft_port}"]
    else:
        config = tmp_path / "node.toml"
        config.write_text(
            f'[node]\nid = "solo"\ngrpc_address = "127.0.0.1:{grpc_port}"\n'
            f'raft_address = "127.0.0.1:{raft_port}"\ndata_dir = "afile/sub"\n\n'
            '[cluster]\nsecret = "test-cluster-secret-0123456789"\n'
        )
        args = ["run", "--config", str(config)]

    # When a node is run with it, Then it fails in one line naming the directory
    line = one_line_error(await ordo(*args, cwd=tmp_path), 2)
    assert "afile/sub" in line, line


async def test_closed_stdout_does_not_print_a_traceback(make_cluster: MakeCluster) -> None:
    # Given a running node and a pipe whose reading end is already closed (a reader that quit)
    cluster = await make_cluster(1)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        # When a client command writes its answer there
        out = await asyncio.to_thread(
            subprocess.run,
            [*PROGRAM, "cluster", "--address", cluster.nodes[0].address],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=cli_env(),
        )
    finally:
        os.close(write_end)

    # Then it stops quietly
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr


async def test_demo_submits_a_mix_that_runs(cluster: Cluster) -> None:
    # When the demo runs against the cluster
    addresses = ",".join(n.address for n in cluster.nodes)
    out = await asyncio.to_thread(
        subprocess.run,
        [*PROGRAM, "demo", "--address", addresses],
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it submitted every job and says how to follow them
    assert out.returncode == 0, out.stderr
    ids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", out.stdout)
    assert len(ids) == 7 and "ordo-node watch" in out.stdout
    # and the first one, due now, succeeds
    await cluster.wait_for_state(ids[0], "SUCCEEDED")


def test_sync_client_works_without_asyncio(cluster: Cluster) -> None:
    from ordo_node.client import SyncClient

    with SyncClient(cluster.nodes[0].address) as client:
        job_id = client.submit("echo", {"sync": True}, delay=3600)
        assert client.get(job_id).state == ordo_pb2.JOB_STATE_SCHEDULED
        assert client.cancel(job_id).state == ordo_pb2.JOB_STATE_CANCELLED
