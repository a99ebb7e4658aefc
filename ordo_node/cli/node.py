"""The node's commands: run a node, run a local cluster (up), write test certificates, probe health."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .. import config as config_mod
from ..channels import client_credentials, open_channel
from ..client import DEFAULT_ADDRESSES, ENV_ADDRESS
from ..errors import ConfigError
from ..logs import setup_logging
from ..tls import make_certificates
from ..worker import config as worker_config
from .common import EXIT_CONFIG, add_security_flags


def cmd_run(args: argparse.Namespace) -> int:
    """Run one node until SIGINT or SIGTERM."""
    from ..node import Node

    overrides = [f for f in ("data_dir", "grpc_address", "raft_address") if getattr(args, f) is not None]
    if args.config and overrides:
        flag = "--" + overrides[0].replace("_", "-")
        print(f"ordo-node: {flag} applies only without --config (set it in the file)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.config:
            cfg = config_mod.load(args.config)
        else:
            cfg = config_mod.default(
                Path(args.data_dir) if args.data_dir else None,
                grpc_address=args.grpc_address or config_mod.DEFAULT_GRPC,
                raft_address=args.raft_address or config_mod.DEFAULT_RAFT,
            )
    except ConfigError as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(cfg.log_level, cfg.node_id, cfg.log_format)
    try:
        asyncio.run(Node(cfg).run())
    except ConfigError as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


@dataclass(frozen=True)
class _Child:
    """A process ``up`` started: a node or a worker."""

    name: str
    worker: bool
    proc: subprocess.Popen[bytes]


def _load_folder(
    folder: Path,
) -> tuple[list[tuple[Path, config_mod.Config]], list[tuple[Path, worker_config.WorkerConfig]]]:
    """The folder's node files and worker files (those with a ``[worker]`` table), each one checked."""
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise ConfigError(f"{folder}: no *.toml node configs")
    nodes, workers = [], []
    for path in paths:
        if worker_config.is_worker_file(path):
            workers.append((path, worker_config.load(path)))
        else:
            nodes.append((path, config_mod.load(path)))
    seen: dict[str, Path] = {}
    for path, w in workers:
        if w.worker_id in seen:
            raise ConfigError(f"{path}: worker.id: {w.worker_id!r} is already the id of {seen[w.worker_id]}")
        seen[w.worker_id] = path
    return nodes, workers


def cmd_up(args: argparse.Namespace) -> int:
    """Start every ``*.toml`` in a folder as a child process; stop them all on Ctrl-C.

    A file with a ``[worker]`` table is a worker (``ordo-node worker --config``),
    any other a node (``ordo-node run --config``). Every file is checked before
    anything starts; the nodes start first, then the workers, which dial them.

    The children run in their own process group, so a Ctrl-C in the terminal
    reaches only this process, which then stops them in two waves. First each
    worker gets one SIGTERM: it takes no new work, lets its running attempts
    finish within its shutdown_grace, reports their outcomes to the cluster,
    which is still up, and leaves. Then each node gets one SIGTERM: every node
    drains at the same time (takes no new work, lets its running attempts
    finish within its shutdown_grace, commits their outcomes while the others
    are still up) and then stops. A second Ctrl-C is passed on as SIGINT, to
    the wave stopping and to the nodes after it, which then stop without
    waiting for running attempts.
    """
    try:
        nodes, workers = _load_folder(Path(args.dir))
    except ConfigError as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    signals = 0

    def stop(signum: int, frame: object) -> None:
        nonlocal signals
        signals += 1

    # Before the first child starts, so a Ctrl-C at any moment stops them all.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    children = _start_all(nodes, workers)
    alive = list(children)

    def reap() -> None:
        for child in list(alive):
            rc = child.proc.poll()
            if rc is not None:
                alive.remove(child)
                if not signals:
                    print(f"{child.name} exited with status {rc}", flush=True)

    while alive and not signals:
        time.sleep(0.2)
        reap()
    waves = (
        ("worker", True, max((w.shutdown_grace for _, w in workers), default=0.0)),
        ("node", False, max((cfg.shutdown_grace for _, cfg in nodes), default=0.0)),
    )
    for kind, worker, grace in waves:
        wave = {c.name: c.proc for c in alive if c.worker == worker}
        if wave:
            _stop_wave(wave, grace, lambda: signals, kind)
    return 0 if signals else 1


def _start_all(
    nodes: list[tuple[Path, config_mod.Config]], workers: list[tuple[Path, worker_config.WorkerConfig]]
) -> list[_Child]:
    """Start the nodes, then the workers, each as ``ordo-node run|worker --config FILE``; a line each."""
    children: list[_Child] = []
    for path, cfg in nodes:
        children.append(_Child(cfg.node_id, False, _spawn("run", path)))
        print(
            f"{cfg.node_id}: grpc {cfg.grpc_address}  raft {cfg.raft_address}  data {cfg.data_dir}",
            flush=True,
        )
    for path, w in workers:
        children.append(_Child(w.worker_id, True, _spawn("worker", path)))
        print(
            f"{w.worker_id}: worker of {','.join(w.servers)}  capacity {w.capacity}  data {w.data_dir}",
            flush=True,
        )
    print(f"{_started(len(nodes), len(workers))}; Ctrl-C stops them all. Try: ordo-node cluster", flush=True)
    return children


def _spawn(command: str, path: Path) -> subprocess.Popen[bytes]:
    """``ordo-node COMMAND --config PATH`` in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "ordo_node", command, "--config", str(path)], process_group=0
    )


def _started(nodes: int, workers: int) -> str:
    """What started, e.g. ``3 nodes and 2 workers started`` (or ``3 nodes started`` without workers)."""
    parts = [_count(n, kind) for n, kind in ((nodes, "node"), (workers, "worker")) if n]
    return " and ".join(parts) + " started"


def _count(n: int, kind: str) -> str:
    return f"{n} {kind}{'' if n == 1 else 's'}"


def _stop_wave(
    procs: dict[str, subprocess.Popen[bytes]], grace: float, signals: Callable[[], int], kind: str
) -> None:
    """SIGTERM every process of one wave (the nodes, or the workers) at once and wait for them.

    Further Ctrl-Cs (beyond the first, which began the stop) are passed on as
    SIGINT, also those that came while an earlier wave stopped. A node or a
    worker bounds its own stop to its shutdown_grace and a few seconds; the
    kill -9 after ``grace`` + 15 s is only a backstop.
    """
    print(
        f"stopping {_count(len(procs), kind)}: running jobs get up to {grace:g}s to finish"
        " (Ctrl-C again to stop at once)",
        flush=True,
    )
    for proc in procs.values():
        proc.terminate()
    deadline = time.monotonic() + grace + 15
    passed_on = 1
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        if signals() > passed_on:
            passed_on = signals()
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    for name, proc in procs.items():
        if proc.poll() is None:
            print(f"{name} did not stop in time; killing it", flush=True)
            proc.kill()
            proc.wait()


def cmd_certs(args: argparse.Namespace) -> int:
    """Write test certificates and say how to use them."""
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    clients = [n.strip() for n in args.clients.split(",") if n.strip()]
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    if not names or not hosts or args.days < 1:
        print("ordo-node: certs: give at least one --names, one --hosts, and --days >= 1", file=sys.stderr)
        return EXIT_CONFIG
    folder = Path(args.dir)
    taken = [
        str(folder / f"{n}.{ext}") for n in ["ca", *names, *clients] for ext in ("pem", "key")
        if (folder / f"{n}.{ext}").exists()
    ]  # fmt: skip
    if taken:
        print(f"ordo-node: certs: {taken[0]} exists; not overwriting", file=sys.stderr)
        return EXIT_CONFIG
    issued = make_certificates(folder, names, hosts, clients=clients, days=args.days)
    print(f"CA: {issued.ca_file} (its key, ca.key, signs certificates: keep it off the nodes)")
    for name, (cert, key) in issued.certs.items():
        print(f"{'client' if name in clients else 'node'} {name}: {cert} {key}")
    print(f"node certificates are valid for {', '.join(hosts)}; all for {args.days} days")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the node answers SERVING on the gRPC health service (for container health checks)."""
    address = args.address or os.environ.get(ENV_ADDRESS, DEFAULT_ADDRESSES).split(",")[0].strip()
    ca, cert, key, name = args.ca_file, args.cert_file, args.key_file, args.server_name
    if args.config:
        try:
            cfg = config_mod.load(args.config)
        except ConfigError as e:
            print(f"ordo-node: {e}", file=sys.stderr)
            return EXIT_CONFIG
        host, _, port = cfg.grpc_address.rpartition(":")
        address = f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]") else cfg.grpc_address
        if cfg.tls:
            # The node's own certificate is one its peers, and so the node itself, accept.
            ca, cert, key, name = cfg.tls.ca_file, cfg.tls.cert_file, cfg.tls.key_file, cfg.tls.server_name
    try:
        credentials = client_credentials(ca, cert, key)
    except OSError as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_health(address, credentials, name, args.timeout))


async def _health(
    address: str, credentials: grpc.ChannelCredentials | None, name: str, timeout: float
) -> int:
    async with open_channel(address, credentials, server_name=name) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError as e:
            print(f"{address}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    print(f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The node's subcommands: run, certs, health, up."""
    run = sub.add_parser("run", help="run one node (no --config: a single-node cluster)")
    run.add_argument("--config", help="the node's TOML file")
    run.add_argument("--data-dir", help="data directory of the single-node default (default ./ordo-data)")
    run.add_argument(
        "--grpc-address", help=f"gRPC address of the single-node default ({config_mod.DEFAULT_GRPC})"
    )
    run.add_argument(
        "--raft-address", help=f"Raft address of the single-node default ({config_mod.DEFAULT_RAFT})"
    )
    run.set_defaults(func=cmd_run)

    certs = sub.add_parser(
        "certs", help="write a private CA and a certificate per name (for tests and local clusters)"
    )
    certs.add_argument("dir", help="folder to write ca.pem, ca.key, NAME.pem, NAME.key into")
    certs.add_argument("--names", default="node1,node2,node3", help="nodes, comma-separated")
    certs.add_argument(
        "--clients", default="client", help="client-only certificates (no host names), comma-separated"
    )
    certs.add_argument(
        "--hosts", default="127.0.0.1,localhost", help="names and IPs every certificate is valid for"
    )
    certs.add_argument("--days", type=int, default=365)
    certs.set_defaults(func=cmd_certs)

    hc = sub.add_parser("health", help="exit 0 when a node's gRPC health service answers SERVING")
    hc.add_argument(
        "--address", default=None, help=f"the node (default: the first of ${ENV_ADDRESS}, or 127.0.0.1:7001)"
    )
    hc.add_argument("--config", default=None, help="take the address and TLS files from the node's TOML file")
    hc.add_argument("--timeout", type=float, default=3.0)
    add_security_flags(hc, token=False)
    hc.set_defaults(func=cmd_health)

    up = sub.add_parser(
        "up", help="run every *.toml in DIR as a local cluster: the nodes, then the workers ([worker] files)"
    )
    up.add_argument("dir", nargs="?", default="cluster-configs")
    up.set_defaults(func=cmd_up)
