"""``ordo-node worker``: run jobs for a cluster from this machine, with no Raft port and no database."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..client import ENV_ADDRESS, ENV_CA_FILE, ENV_CERT_FILE, ENV_KEY_FILE, ENV_TOKEN
from ..errors import ConfigError
from ..logs import setup_logging
from ..worker import config as worker_config
from .common import EXIT_CONFIG, add_security_flags


def settings(args: argparse.Namespace) -> worker_config.WorkerConfig:
    """The worker's settings: its file's [worker] table (if any), each flag given over it."""
    if args.config:
        cfg = worker_config.load(args.config)
    else:
        servers = args.servers or os.environ.get(ENV_ADDRESS, "")
        cfg = worker_config.WorkerConfig(
            worker_id=worker_config.default_id(),
            servers=worker_config.servers_of("--servers", "servers", servers),
            token=os.environ.get(ENV_TOKEN, ""),
            ca_file=os.environ.get(ENV_CA_FILE, ""),
            cert_file=os.environ.get(ENV_CERT_FILE, ""),
            key_file=os.environ.get(ENV_KEY_FILE, ""),
        )
        cfg = replace(cfg, data_dir=Path("data") / cfg.worker_id)
    where = cfg.source
    changes: dict[str, object] = {}
    if args.config and args.servers:
        changes["servers"] = worker_config.servers_of("--servers", "servers", args.servers)
    for flag in ("capacity", "shutdown_grace", "token", "ca_file", "cert_file", "key_file"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    if args.server_name:
        changes["server_name"] = args.server_name
    if args.id is not None:
        changes["worker_id"] = args.id
        # The default data folder, data/ID, follows the id (a file's own data_dir stays).
        defaults = (Path("data") / cfg.worker_id, cfg.base_dir / "data" / cfg.worker_id)
        if args.data_dir is None and cfg.data_dir in defaults:
            changes["data_dir"] = cfg.data_dir.parent / args.id
    if args.data_dir is not None:
        changes["data_dir"] = Path(args.data_dir)
    for flag in ("tags", "handlers"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = tuple(x.strip() for x in value.split(",") if x.strip())
    return worker_config.check(replace(cfg, **changes), where)  # type: ignore[arg-type]


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a worker until SIGINT or SIGTERM."""
    from ..worker.process import Worker

    try:
        cfg = settings(args)
    except ConfigError as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(cfg.log_level, cfg.worker_id)
    try:
        asyncio.run(Worker(cfg).run())
    except ConfigError as e:
        print(f"ordo-node: {cfg.source}: worker.{e}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The worker subcommand."""
    w = sub.add_parser(
        "worker",
        help="run jobs for a cluster from this machine (no Raft, no database)",
        description="Connect to the cluster's leader (through any server) and run the jobs it assigns,"
        " with this process's handlers. Flags override the --config file's [worker] table.",
    )
    w.add_argument("--servers", help=f"host:port[,host:port...] of the cluster's servers (${ENV_ADDRESS})")
    w.add_argument("--config", help="a TOML file with a [worker] table")
    w.add_argument("--id", help="the worker's id (default: the host name); keep it across restarts")
    w.add_argument("--capacity", type=int, help="runs at once (default 8)")
    w.add_argument("--tags", help="comma-separated tags jobs may ask for")
    w.add_argument("--handlers", help="comma-separated modules with @handler functions")
    w.add_argument("--data-dir", help="the handlers' data folder (default data/ID)")
    w.add_argument("--shutdown-grace", type=float, help="seconds running jobs get on SIGTERM (default 30)")
    add_security_flags(w)
    w.set_defaults(func=cmd_worker)
