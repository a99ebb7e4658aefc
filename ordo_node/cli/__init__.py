"""The ``ordo-node`` command: run a node, run a local cluster, or act as a client.

``node.py`` holds the node's commands (run, up, certs, health), ``worker.py`` the
worker's, ``client.py``
the client's (submit, get, list, watch, ...), ``common.py`` what both use; the
operator tools (bench, chaos, demo) bring their own parsers from ``ordo_node.tools``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .. import __version__
from ..tools import bench, chaos, demo
from . import client, node, worker


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="ordo-node", description="A distributed, time-based job scheduler.")
    p.add_argument("--version", action="version", version=f"ordo-node {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    node.add_parsers(sub)
    worker.add_parsers(sub)
    client.add_parsers(sub)
    chaos.add_parser(sub)
    demo.add_parser(sub)
    bench.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``ordo-node``."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    sys.exit(func(args))
