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
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .. import config as config_mod
from ..channels import client_credentials, open_channel
from ..client import DEFAULT_ADDRESSES, ENV_ADDRESS
from ..errors import ConfigError
from ..logs import setup_logging
from ..tls import make_certificates
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


def cmd_up(args: argparse.Namespace) -> int:
    """Start every ``*.toml`` in a folder as a child process; stop them all on Ctrl-C.

    The children run in their own process group, so a Ctrl-C in the terminal
    reaches only this process, which then sends each node exactly one SIGTERM:
    every node drains at the same time (takes no new work, lets its running
    attempts finish within its shutdown_grace, commits their outcomes while
    the others are still up) and then stops. A second Ctrl-C is passed on to
    the nodes, which then stop without waiting for running attempts.
    """
    folder = Path(args.dir)
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        print(f"ordo-node: {folder}: no *.toml node configs", file=sys.stderr)
        return EXIT_CONFIG
    try:
        configs = [config_mod.load(p) for p in paths]
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
    children: list[subprocess.Popen[bytes]] = []
    for path, cfg in zip(paths, configs, strict=True):
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "ordo_node", "run", "--config", str(path)], process_group=0
            )
        )
        print(
            f"{cfg.node_id}: grpc {cfg.grpc_address}  raft {cfg.raft_address}  data {cfg.data_dir}",
            flush=True,
        )
    print(f"{len(children)} nodes started; Ctrl-C stops them all. Try: ordo-node cluster", flush=True)
    alive = set(range(len(children)))

    def reap() -> None:
        for i in list(alive):
            rc = children[i].poll()
            if rc is not None:
                alive.discard(i)
                if not signals:
                    print(f"{configs[i].node_id} exited with status {rc}", flush=True)

    while alive and not signals:
        time.sleep(0.2)
        reap()
    if alive:
        _stop_nodes(
            {configs[i].node_id: children[i] for i in alive},
            max(cfg.shutdown_grace for cfg in configs),
            lambda: signals,
        )
    return 0 if signals else 1


def _stop_nodes(nodes: dict[str, subprocess.Popen[bytes]], grace: float, signals: Callable[[], int]) -> None:
    """SIGTERM every node at once and wait for them; pass further Ctrl-Cs on as SIGINT.

    A node bounds its own stop to its shutdown_grace and a few seconds; the
    kill -9 after ``grace`` + 15 s is only a backstop.
    """
    print(
        f"stopping {len(nodes)} nodes: running jobs get up to {grace:g}s to finish"
        " (Ctrl-C again to stop at once)",
        flush=True,
    )
    for proc in nodes.values():
        proc.terminate()
    deadline = time.monotonic() + grace + 15
    passed_on = signals()
    while any(p.poll() is None for p in nodes.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
        if signals() > passed_on:
            passed_on = signals()
            for proc in nodes.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
    for node_id, proc in nodes.items():
        if proc.poll() is None:
            print(f"{node_id} did not stop in time; killing it", flush=True)
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

    up = sub.add_parser("up", help="run every *.toml in DIR as a local cluster")
    up.add_argument("dir", nargs="?", default="cluster-configs")
    up.set_defaults(func=cmd_up)
