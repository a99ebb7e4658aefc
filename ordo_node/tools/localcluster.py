"""Local clusters on one machine: node configs on free loopback ports, nodes and workers as processes.

Used by the chaos harness, the benchmark and the tests. Each node is a real
``ordo-node run --config`` process with its own data directory; each worker
(:meth:`LocalCluster.add_worker`) a real ``ordo-node worker`` process that
dials every node. Nothing is shared between them but the network (and the
folder the handler modules are in).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_SECRET = "local-cluster-secret-0123456789"


# Ports are chosen below the kernel's ephemeral range, where it leaves room: the local end of every
# outgoing connection is taken from that range, so a port the kernel handed out with bind(0) could
# be taken by some connection between the moment it was found free and the moment a node binds it
# (seen in CI: "node.metrics_address: cannot listen on ...: Address already in use").
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10_000
_MIN_POOL = 2_000
# The ports handed out lately are not handed out again: their node may not have bound them yet.
_recent: deque[int] = deque(maxlen=4_096)


def _pool() -> range:
    """The ports to choose from: those below the ephemeral range, or none when that is too small."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(_LOWEST_PORT, low) if low - _LOWEST_PORT >= _MIN_POOL else range(0)


def _bind_free(s: socket.socket, pool: range) -> int:
    """Bind ``s`` to a free port of ``pool`` not handed out lately (else one the kernel picks)."""
    for _ in range(200):
        port = random.choice(pool) if pool else 0
        if not port:
            break
        if port in _recent:
            continue
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    s.bind(("127.0.0.1", 0))
    return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free on 127.0.0.1 a moment ago, out of the ephemeral range
    where the machine leaves room below it (see _pool)."""
    pool = _pool()
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            ports.append(_bind_free(s, pool))
    finally:
        for s in socks:
            s.close()
    _recent.extend(ports)
    return ports


def node_program() -> list[str]:
    """The ``ordo-node`` installed beside this interpreter, else ``python -m ordo_node``."""
    script = Path(sys.executable).parent / "ordo-node"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ordo_node"]


class LocalProcess:
    """What a node and a worker process of a local cluster share: start, stop, kill, log, memory.

    The dataclasses below hold ``id``, ``root``, ``proc`` and ``starts``;
    :meth:`command` is the program and its arguments. The process runs in
    ``root`` with its output appended to ``root/ID.log``.
    """

    id: str
    root: Path
    proc: subprocess.Popen[bytes] | None
    starts: int

    def command(self) -> list[str]:
        """The program and its arguments."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The process's environment (None: this one's)."""
        return None

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.id}.log"

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self.proc.pid if self.proc is not None and self.alive else None

    def start(self) -> None:
        """Start the process (again), appending to its log."""
        if self.alive:
            raise RuntimeError(f"{self.id} is running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=self.environment(),
            )

    def kill(self) -> None:
        """kill -9, and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; kill -9 if it does not stop in time. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int | None:
        """Wait for the process to exit; kill -9 if it does not in time. Returns the exit status."""
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.proc.returncode

    def rss_bytes(self) -> int:
        """Resident memory of the process (0 when it is not running)."""
        if not self.alive or self.proc is None:
            return 0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def log_text(self) -> str:
        """The process's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class LocalNode(LocalProcess):
    """One node process of a local cluster: ``ordo-node run --config ID.toml``."""

    id: str
    grpc_port: int
    raft_port: int
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        """The gRPC address."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def config_path(self) -> Path:
        return self.root / f"{self.id}.toml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / self.id

    def command(self) -> list[str]:
        return [*node_program(), "run", "--config", str(self.config_path)]


@dataclass
class LocalWorker(LocalProcess):
    """One worker process of a local cluster: ``ordo-node worker --id ID --servers ...``.

    It runs in the cluster's folder (so the cluster's handler modules are beside
    it), its log is ``ID.log`` there and its data folder ``data/ID``. The ORDO_*
    variables of the caller's environment are left out: the flags say everything.
    ``program`` replaces ``ordo-node worker`` and its flags (the swarm of
    :mod:`ordo_node.tools.swarm` runs many workers in one process).
    """

    id: str
    root: Path
    servers: list[str]
    capacity: int = 4
    handlers: list[str] = field(default_factory=list)
    shutdown_grace: float = 5.0
    args: list[str] = field(default_factory=list)
    program: list[str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / self.id

    def command(self) -> list[str]:
        if self.program is not None:
            return [*self.program, *self.args]
        flags = [
            "--id",
            self.id,
            "--servers",
            ",".join(self.servers),
            "--capacity",
            str(self.capacity),
            "--shutdown-grace",
            f"{self.shutdown_grace:g}",
            "--data-dir",
            str(self.data_dir),
        ]
        if self.handlers:
            flags += ["--handlers", ",".join(self.handlers)]
        return [*node_program(), "worker", *flags, *self.args]

    def environment(self) -> dict[str, str] | None:
        return {k: v for k, v in os.environ.items() if not k.startswith("ORDO_")}


@dataclass
class LocalCluster:
    """N nodes on loopback, configured under ``root``, and the workers added with :meth:`add_worker`.

    ``settings`` adds lines to a section of every config, e.g.
    ``{"raft": {"commit_timeout": 2.0}, "cluster": {"lease_timeout": 3.0}}``.
    """

    root: Path
    size: int = 3
    capacity: int = 8
    handlers: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    # Per node id, like settings: {"node3": {"executor": {"tags": ["gpu"]}}}
    node_settings: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    nodes: list[LocalNode] = field(default_factory=list)
    # Worker processes by id (add_worker); none runs until started.
    workers: dict[str, LocalWorker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * self.size)
        self.nodes = [
            LocalNode(f"node{i + 1}", ports[2 * i], ports[2 * i + 1], self.root) for i in range(self.size)
        ]
        for name, text in self.files.items():
            (self.root / name).write_text(text)
        for node in self.nodes:
            node.config_path.write_text(self.config_text(node))

    def config_text(self, node: LocalNode) -> str:
        """The TOML file of one node."""
        peers = ",\n".join(
            f'  {{ id = "{n.id}", grpc_address = "{n.address}", raft_address = "127.0.0.1:{n.raft_port}" }}'
            for n in self.nodes
            if n is not node
        )
        sections: dict[str, dict[str, Any]] = {
            "node": {},
            "cluster": {},
            "executor": {"capacity": self.capacity},
            "raft": {},
        }
        for layer in (self.settings, self.node_settings.get(node.id, {})):
            for name, values in layer.items():
                sections.setdefault(name, {}).update(values)
        lines = [
            "[node]",
            f'id = "{node.id}"',
            f'grpc_address = "{node.address}"',
            f'raft_address = "127.0.0.1:{node.raft_port}"',
            f'data_dir = "data/{node.id}"',
            f"handlers = [{', '.join(repr(h) for h in self.handlers)}]",
        ]
        lines += [f"{k} = {_toml(v)}" for k, v in sections.pop("node").items()]
        lines += ["", "[cluster]", f'secret = "{DEMO_SECRET}"', f"peers = [\n{peers}\n]"]
        lines += [f"{k} = {_toml(v)}" for k, v in sections.pop("cluster").items()]
        for name, values in sections.items():
            lines += ["", f"[{name}]", *(f"{k} = {_toml(v)}" for k, v in values.items())]
        return "\n".join(lines) + "\n"

    def node(self, node_id: str) -> LocalNode:
        """The node with that id."""
        return next(n for n in self.nodes if n.id == node_id)

    def add_worker(
        self,
        worker_id: str,
        *,
        capacity: int = 4,
        handlers: list[str] | None = None,
        args: list[str] | None = None,
        program: list[str] | None = None,
        worker_class: type[LocalWorker] = LocalWorker,
    ) -> LocalWorker:
        """A worker process (not started) that dials every node; it runs the cluster's handler
        modules unless ``handlers`` says otherwise."""
        if worker_id in self.workers or any(n.id == worker_id for n in self.nodes):
            raise ValueError(f"{worker_id} is taken")
        worker = worker_class(
            worker_id,
            self.root,
            [n.address for n in self.nodes],
            capacity,
            list(self.handlers if handlers is None else handlers),
            args=list(args or []),
            program=program,
        )
        self.workers[worker_id] = worker
        return worker

    def start(self) -> None:
        """Start every node, then every worker added so far."""
        for node in self.nodes:
            node.start()
        for worker in self.workers.values():
            worker.start()

    def terminate_all(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker, then every node, each group at once; wait for each
        (kill -9 after ``timeout`` seconds).

        The workers go first, so that they can give back what they hold to a
        leader that still runs. One signal each: a node or a worker takes a
        second one as "stop now", without waiting for its running attempts.
        """
        deadline = time.monotonic() + timeout
        for group in (list(self.workers.values()), self.nodes):
            for proc in group:
                if proc.alive and proc.proc is not None:
                    proc.proc.terminate()
            for proc in group:
                _reap(proc, max(0.1, deadline - time.monotonic()))

    def processes(self) -> list[LocalProcess]:
        """Every node, then every worker."""
        return [*self.nodes, *self.workers.values()]

    def addresses(self) -> list[str]:
        """Every node's gRPC address."""
        return [n.address for n in self.nodes]


def _reap(proc: LocalProcess, timeout: float) -> None:
    """Wait for a signalled process; kill -9 after ``timeout`` (only ``proc``, ``alive`` and ``kill``
    are used: tests subclass the cluster with worker objects of their own)."""
    if proc.proc is None:
        return
    try:
        proc.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
