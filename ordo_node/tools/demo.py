"""``ordo-node demo``: a representative mix of jobs, so a new user sees the system work."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc

from ..client import DEFAULT_ADDRESSES, ENV_ADDRESS, Client

# (what it shows, type, payload, submit options)
JOBS: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("runs now", "echo", {"msg": "hello from ordo_node"}, {}),
    ("runs in 10 s", "echo", {"msg": "a delayed hello"}, {"delay": 10}),
    ("every 5 s, three times", "echo", {"msg": "tick"}, {"cron": "*/5 * * * * *", "max_runs": 3}),
    ("sleeps 3 s", "sleep", {"seconds": 3}, {}),
    (
        "fails, retries twice, then dead-letters",
        "shell",
        {"command": "echo trying; exit 1"},
        {"max_attempts": 3, "backoff": {"initial": 1, "multiplier": 2}},
    ),
    ("killed by its 2 s timeout", "shell", {"command": "sleep 30"}, {"timeout": 2}),
    (
        "writes a file in the node's data directory",
        "file_write",
        {"fileName": "demo/hello.txt", "content": "written by ordo-node demo\n"},
        {},
    ),
]


async def run(address: str | None) -> int:
    """Submit every demo job; print what each shows and how to follow it."""
    async with Client(address) as client:
        for what, type_, payload, options in JOBS:
            try:
                job_id = await client.submit(type_, payload, name=f"demo: {what}", **options)
            except grpc.aio.AioRpcError as e:
                print(f"  {what:45} not submitted: {e.code().name}: {e.details()}")
                continue
            print(f"  {what:45} {type_:10} {job_id}")
    print(
        "\nFollow them: ordo-node list; ordo-node watch; ordo-node history <id>; ordo-node occurrences <id>"
    )
    print(
        "(shell and file_write jobs run only on nodes whose config enables them: executor.dangerous_handlers)"
    )
    return 0


def add_parser(sub: Any) -> None:
    """The ``demo`` subcommand."""
    p = sub.add_parser("demo", help="submit a representative mix of jobs to a running cluster")
    p.add_argument("--address", default=None, help=f"node addresses (${ENV_ADDRESS}; {DEFAULT_ADDRESSES})")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo."""
    print("Submitting the demo jobs:")
    try:
        return asyncio.run(run(args.address))
    except grpc.aio.AioRpcError as e:
        print(f"ordo-node: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
