"""The ``ordo-node`` command: run a node, run a local cluster, or act as a client."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import __version__
from . import config as config_mod
from .channels import client_credentials, open_channel
from .client import (
    DEFAULT_ADDRESSES,
    ENV_ADDRESS,
    ENV_CA_FILE,
    ENV_CERT_FILE,
    ENV_KEY_FILE,
    ENV_TOKEN,
    Client,
)
from .errors import ConfigError
from .logs import setup_logging
from .pb import ordo_pb2
from .tls import make_certificates
from .tools import bench, chaos, demo
from .wire import from_value

EXIT_CONFIG = 2


def cmd_run(args: argparse.Namespace) -> int:
    """Run one node until SIGINT or SIGTERM."""
    from .node import Node

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


# -- client commands -------------------------------------------------------------


def _ts(msg: Message, field: str) -> str:
    if not msg.HasField(field):
        return "-"
    return str(getattr(msg, field).ToJsonString())


def _short_state(name: str) -> str:
    return re.sub(r"^(JOB|RUN|EVENT)_(STATE|TYPE)_", "", name)


def print_job(job: ordo_pb2.Job) -> None:
    """A job, readable."""
    print(f"job      {job.job_id}")
    print(f"type     {job.type}{'  name ' + job.name if job.name else ''}")
    print(f"state    {_short_state(ordo_pb2.JobState.Name(job.state))}")
    print(f"run at   {_ts(job, 'run_at')}")
    payload = from_value(job.payload) if job.HasField("payload") else None
    print(f"payload  {json.dumps(payload)}")
    for r in job.runs:
        print(
            f"run      {r.run_id} attempt {r.attempt} {_short_state(ordo_pb2.RunState.Name(r.state))}"
            f" on {r.node_id or '-'} started {_ts(r, 'started_at')} finished {_ts(r, 'finished_at')}"
        )
        if r.HasField("result"):
            print(f"  result {json.dumps(from_value(r.result))[:500]}")
        if r.error:
            print(f"  error  {r.error[:500]}")


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Rows as aligned columns."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip())


def _seconds(text: str | None) -> float | None:
    return parse_duration(text) if text else None


async def _submit(client: Client, args: argparse.Namespace) -> Message:
    backoff = {
        k: v
        for k, v in (
            ("initial", _seconds(args.backoff_initial)),
            ("max", _seconds(args.backoff_max)),
            ("multiplier", args.backoff_multiplier),
            ("jitter", args.backoff_jitter),
        )
        if v is not None
    }
    job_id = await client.submit(
        args.type,
        json.loads(args.payload) if args.payload else None,
        run_at=args.run_at,
        delay=_seconds(args.delay),
        name=args.name,
        idempotency_key=args.idempotency_key,
        cron=args.cron,
        timezone=args.timezone,
        start_at=args.start_at,
        end_at=args.end_at,
        max_runs=args.max_runs,
        jitter=_seconds(args.jitter),
        max_attempts=args.max_attempts,
        backoff=backoff,
        timeout=_seconds(args.timeout_each),
        priority=args.priority,
        catch_up=args.catch_up,
        catch_up_window=_seconds(args.catch_up_window),
        overlap=args.overlap,
    )
    return ordo_pb2.SubmitJobResponse(job_id=job_id)


async def _preview(client: Client, args: argparse.Namespace) -> Message:
    times = await client.preview(args.cron, timezone=args.timezone, count=args.count, after=args.after)
    return ordo_pb2.PreviewScheduleResponse(times=times)


async def _history(client: Client, args: argparse.Namespace) -> Message:
    return ordo_pb2.GetJobHistoryResponse(events=await client.history(args.job_id))


def print_jobs(page: ordo_pb2.ListJobsResponse) -> None:
    """A page of jobs, readable."""
    rows = [
        [j.job_id, j.type, _short_state(ordo_pb2.JobState.Name(j.state)), _ts(j, "run_at"), j.name]
        for j in page.jobs
    ]
    print_table(rows, ["JOB", "TYPE", "STATE", "RUN AT", "NAME"])
    if page.next_page_token:
        print(f"next page: --page-token {page.next_page_token}")


def print_history(reply: ordo_pb2.GetJobHistoryResponse) -> None:
    """A job's events, readable."""
    rows = [
        [_ts(e, "time"), _short_state(ordo_pb2.EventType.Name(e.type)), e.node_id, e.message]
        for e in reply.events
    ]
    print_table(rows, ["TIME", "EVENT", "NODE", "DETAIL"])


FETCH: dict[str, Callable[[Client, argparse.Namespace], Awaitable[Message]]] = {
    "submit": _submit,
    "get": lambda client, args: client.get(args.job_id, consistent=args.consistent),
    "cancel": lambda client, args: client.cancel(args.job_id),
    "list": lambda client, args: client.list_jobs(
        state=args.state, type=args.type, page_size=args.page_size, page_token=args.page_token
    ),
    "history": _history,
    "cluster": lambda client, args: client.cluster(),
    "retry": lambda client, args: client.retry(args.job_id),
    "pause": lambda client, args: client.pause(args.job_id, args.note),
    "resume": lambda client, args: client.resume(args.job_id, args.note),
    "occurrences": lambda client, args: client.occurrences(
        args.job_id, fate=args.fate, page_size=args.page_size, page_token=args.page_token
    ),
    "explain": lambda client, args: client.explain(args.job_id, args.time),
    "add-node": lambda client, args: client.add_node(args.node_id, args.grpc_address, args.raft_address),
    "remove-node": lambda client, args: client.remove_node(args.node_id),
    "preview": _preview,
}


async def _watch(client: Client, args: argparse.Namespace) -> int:
    async for event in client.watch(args.job_id or "", args.after_seq):
        if args.json:
            print(json_format.MessageToJson(event, indent=None), flush=True)
        else:
            kind = _short_state(ordo_pb2.EventType.Name(event.type))
            print(
                f"{_ts(event, 'time')}  {event.job_id}  {kind:<13} {event.node_id:<8} {event.message}",
                flush=True,
            )
    return 0


async def _client_command(client: Client, args: argparse.Namespace) -> int:
    async with client:
        if args.command == "watch":
            return await _watch(client, args)
        out = await FETCH[args.command](client, args)
    if args.json:
        print(json_format.MessageToJson(out, indent=2))
    else:
        PRINT[args.command](out)
    return 0


def print_cluster(st: ordo_pb2.ClusterStatus) -> None:
    """Cluster status, readable."""
    leader = st.leader_id or "(none)"
    print(f"leader {leader}  term {st.term}  commit {st.commit_index}  (answered by {st.node_id})")
    print_table(
        [
            [
                n.node_id,
                n.role,
                "yes" if n.reachable else "NO",
                n.grpc_address,
                n.raft_address,
                f"{n.running_count}/{n.capacity}",
                str(n.applied_index),
                ",".join(n.tags),
            ]
            for n in st.nodes
        ],
        ["NODE", "ROLE", "UP", "GRPC", "RAFT", "RUNNING", "APPLIED", "TAGS"],
    )


def print_occurrences(page: ordo_pb2.ListOccurrencesResponse) -> None:
    """A page of occurrences, readable."""
    rows = [
        [
            _ts(o, "nominal_time"),
            ordo_pb2.Fate.Name(o.fate).removeprefix("FATE_"),
            _short_state(ordo_pb2.RunState.Name(o.outcome)) if o.outcome else "-",
            str(o.attempts),
            o.reason,
        ]
        for o in page.occurrences
    ]
    print_table(rows, ["NOMINAL TIME", "FATE", "OUTCOME", "ATTEMPTS", "REASON"])
    if page.next_page_token:
        print(f"next page: --page-token {page.next_page_token}")


PRINT: dict[str, Callable[[Any], None]] = {
    "submit": lambda reply: print(reply.job_id),
    "get": print_job,
    "cancel": print_job,
    "list": print_jobs,
    "history": print_history,
    "cluster": print_cluster,
    "retry": print_job,
    "pause": print_job,
    "resume": print_job,
    "occurrences": print_occurrences,
    "add-node": print_cluster,
    "remove-node": print_cluster,
    "explain": lambda reply: print(reply.explanation),
    "preview": lambda reply: print_table(
        [[t.local_time, t.nominal_time.ToJsonString(), t.fire_time.ToJsonString()] for t in reply.times],
        ["LOCAL TIME", "NOMINAL (UTC)", "FIRES AT (UTC)"],
    ),
}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``1.5s``, ``500ms``, ``5m`` or ``2h``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration like 30s, 500ms, 5m")
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


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


def cmd_client(args: argparse.Namespace) -> int:
    """Run a client subcommand; print gRPC errors as one line."""
    if args.command == "submit" and args.payload:
        try:
            json.loads(args.payload)
        except json.JSONDecodeError as e:
            print(f"ordo-node: --payload is not JSON: {e}", file=sys.stderr)
            return EXIT_CONFIG
    if args.command == "submit":
        for flag in ("delay", "jitter", "timeout_each", "backoff_initial", "backoff_max", "catch_up_window"):
            try:
                _seconds(getattr(args, flag))
            except argparse.ArgumentTypeError as e:
                name = "attempt-timeout" if flag == "timeout_each" else flag.replace("_", "-")
                print(f"ordo-node: --{name}: {e}", file=sys.stderr)
                return EXIT_CONFIG
    if args.command == "list" and args.state:
        name = f"JOB_STATE_{args.state.upper().removeprefix('JOB_STATE_')}"
        if name not in ordo_pb2.JobState.keys():  # noqa: SIM118 - an enum wrapper, not a dict
            print(f"ordo-node: --state: '{args.state}' is not a job state", file=sys.stderr)
            return EXIT_CONFIG
    address = args.address if args.address is not None else os.environ.get(ENV_ADDRESS, DEFAULT_ADDRESSES)
    if not [a for a in address.split(",") if a.strip()]:
        print(f"ordo-node: --address (or ${ENV_ADDRESS}) names no node", file=sys.stderr)
        return EXIT_CONFIG
    try:
        client = Client(address, **_security(args))  # its channels open in the command's event loop
    except (ValueError, OSError) as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return asyncio.run(_client_command(client, args))
    except grpc.aio.AioRpcError as e:
        print(f"ordo-node: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (``ordo-node list | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _security(args: argparse.Namespace) -> dict[str, Any]:
    """The Client options of the --timeout, --token and TLS flags."""
    return {
        "timeout": args.timeout,
        "token": args.token,
        "ca_file": args.ca_file,
        "cert_file": args.cert_file,
        "key_file": args.key_file,
        "server_name": args.server_name,
    }


def add_security_flags(c: argparse.ArgumentParser, *, token: bool = True) -> None:
    """--token and the TLS flags of every client command."""
    g = c.add_argument_group("secured clusters")
    if token:
        g.add_argument("--token", default=None, help=f"bearer token (${ENV_TOKEN})")
    g.add_argument("--ca-file", default=None, help=f"use TLS, trusting this CA's PEM file (${ENV_CA_FILE})")
    g.add_argument("--cert-file", default=None, help=f"client certificate for mutual TLS (${ENV_CERT_FILE})")
    g.add_argument("--key-file", default=None, help=f"its private key (${ENV_KEY_FILE})")
    g.add_argument("--server-name", default="", help="check the nodes' certificates against this name")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="ordo-node", description="A distributed, time-based job scheduler.")
    p.add_argument("--version", action="version", version=f"ordo-node {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

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

    def client(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument(
            "--address",
            default=None,
            help=f"node addresses, comma-separated (${ENV_ADDRESS}; {DEFAULT_ADDRESSES})",
        )
        c.add_argument("--json", action="store_true", help="print the reply as JSON")
        c.add_argument("--timeout", type=float, default=15.0, help="seconds, retries included")
        add_security_flags(c)
        c.set_defaults(func=cmd_client)
        return c

    s = client("submit", "schedule a job")
    s.add_argument("type", help="handler type: echo, sleep, shell, http_get, file_write, cpu, or your own")
    s.add_argument("--payload", default="", help="JSON value for the handler")
    when = s.add_mutually_exclusive_group()
    when.add_argument("--run-at", default=None, help="RFC 3339 time, e.g. 2030-01-01T09:00:00Z")
    when.add_argument("--delay", default=None, help="run after this delay: 30s, 500ms, 5m")
    s.add_argument("--name", default="")
    s.add_argument("--idempotency-key", default="")
    add_schedule_flags(s)
    for name, help in (
        ("get", "show a job"),
        ("cancel", "cancel a job, a recurring schedule or a running attempt"),
        ("history", "a job's events"),
        ("retry", "run a FAILED or DEAD_LETTER job again"),
        ("pause", "pause a recurring job"),
        ("resume", "resume a paused job"),
        ("occurrences", "every scheduled time of a job and its fate"),
        ("explain", "why did (or didn't) the job run at a time?"),
    ):
        g = client(name, help)
        g.add_argument("job_id")
        if name == "get":
            g.add_argument("--consistent", action="store_true", help="read through the leader")
        if name in ("pause", "resume"):
            g.add_argument("--note", default="", help="kept in the job's history")
        if name == "occurrences":
            g.add_argument("--fate", default="", help="TRIGGERED, MISSED, SKIPPED_OVERLAP, PAUSED, ...")
            g.add_argument("--page-size", type=int, default=0)
            g.add_argument("--page-token", default="")
        if name == "explain":
            g.add_argument("time", help="RFC 3339, e.g. 2030-01-01T09:00:00Z")
    pv = client("preview", "the next fire times of a schedule")
    pv.add_argument("cron")
    pv.add_argument("--timezone", default="")
    pv.add_argument("--count", type=int, default=10)
    pv.add_argument("--after", default=None, help="RFC 3339 (default now)")
    w = client("watch", "follow job events live (Ctrl-C to stop)")
    w.add_argument("job_id", nargs="?", default="")
    w.add_argument("--after-seq", type=int, default=0, help="replay from this event sequence number")
    lst = client("list", "list jobs, newest first")
    lst.add_argument(
        "--state", default="", help="SCHEDULED, TRIGGERED, RUNNING, SUCCEEDED, FAILED, CANCELLED"
    )
    lst.add_argument("--type", default="")
    lst.add_argument("--page-size", type=int, default=0)
    lst.add_argument("--page-token", default="")
    client("cluster", "show the cluster's nodes, leader and load")
    an = client("add-node", "add a member (then start it with the current members as its peers)")
    an.add_argument("node_id")
    an.add_argument("--grpc-address", required=True)
    an.add_argument("--raft-address", required=True)
    rn = client("remove-node", "remove a member that does not lead")
    rn.add_argument("node_id")
    chaos.add_parser(sub)
    demo.add_parser(sub)
    bench.add_parser(sub)
    return p


def add_schedule_flags(s: argparse.ArgumentParser) -> None:
    """The submit flags for schedules and policies."""
    g = s.add_argument_group("recurring jobs")
    g.add_argument(
        "--cron", default="", help="'*/5 * * * *', '*/10 * * * * *' (seconds first), @daily, 'every 30s'"
    )
    g.add_argument("--timezone", default="", help="IANA name for the cron expression (default UTC)")
    g.add_argument("--start-at", default=None)
    g.add_argument("--end-at", default=None)
    g.add_argument("--max-runs", type=int, default=0)
    g.add_argument("--jitter", default=None, help="spread each fire time by up to this, e.g. 30s")
    g.add_argument("--catch-up", default="", choices=["", "SKIP", "ONE", "ALL"])
    g.add_argument("--catch-up-window", default=None)
    g.add_argument("--overlap", default="", choices=["", "ALLOW", "SKIP", "BUFFER_ONE", "CANCEL_OTHER"])
    p = s.add_argument_group("attempts")
    p.add_argument("--max-attempts", type=int, default=0)
    p.add_argument("--backoff-initial", default=None, help="e.g. 1s")
    p.add_argument("--backoff-multiplier", type=float, default=None)
    p.add_argument("--backoff-max", default=None, help="e.g. 5m")
    p.add_argument("--backoff-jitter", type=float, default=None, help="0 to 1")
    p.add_argument("--attempt-timeout", dest="timeout_each", default=None, help="per attempt, e.g. 30s")
    p.add_argument("--priority", type=int, default=0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``ordo-node``."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    sys.exit(func(args))
