"""Local clusters on one machine: node configs on free loopback ports, nodes as processes.

Used by the chaos harness, the benchmark and the tests. Each node is a real
``ordo-node run --config`` process with its own data directory; nothing is
shared between nodes but the network.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_SECRET = "local-cluster-secret-0123456789"


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


def node_program() -> list[str]:
    """The ``ordo-node`` installed beside this interpreter, else ``python -m ordo_node``."""
    script = Path(sys.executable).parent / "ordo-node"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ordo_node"]


@dataclass
class LocalNode:
    """One node process of a local cluster."""

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

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.id}.log"

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process (again), appending to its log."""
        if self.alive:
            raise RuntimeError(f"{self.id} is running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*node_program(), "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
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
        """The node's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class LocalCluster:
    """N nodes on loopback, configured under ``root``.

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

    def start(self) -> None:
        """Start every node."""
        for node in self.nodes:
            node.start()

    def terminate_all(self, timeout: float = 30.0) -> None:
        """SIGTERM every node at once, then wait for each (kill -9 after ``timeout`` seconds).

        One signal each: a node takes a second one as "stop now", without
        waiting for its running attempts.
        """
        for node in self.nodes:
            if node.alive and node.proc is not None:
                node.proc.terminate()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait(max(0.1, deadline - time.monotonic()))

    def addresses(self) -> list[str]:
        """Every node's gRPC address."""
        return [n.address for n in self.nodes]


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
