"""``ordo-node backfill JOB_ID --from T --to T``: run past occurrences of a recurring job again.

Registered by ``cli/client.py`` (:func:`add_backfill_parser`); it answers with
the occurrences chosen (their nominal time, previous fate and new run), or, with
``--dry-run``, those that would be.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc
from google.protobuf import json_format

from ..client import DEFAULT_ADDRESSES, ENV_ADDRESS, Client
from ..pb import ordo_pb2
from ..timeutil import format_us
from .common import EXIT_CONFIG, add_security_flags


def add_backfill_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``backfill`` subcommand, with the client flags every subcommand has."""
    from .client import JOB_ID_HELP, parse_duration  # here: client.py imports this module as it loads

    b = sub.add_parser(
        "backfill", help="run past occurrences of a recurring job again, chosen by their fates"
    )
    b.add_argument("job_id", help=JOB_ID_HELP)
    b.add_argument("--from", dest="since", required=True, help="RFC 3339: the first nominal time")
    b.add_argument("--to", dest="until", required=True, help="RFC 3339: the last nominal time (inclusive)")
    b.add_argument(
        "--reprocess",
        default="MISSING",
        type=str.upper,
        choices=["MISSING", "FAILED", "ALL"],
        help="MISSING (never ran: missed, paused, skipped), FAILED, or ALL (default MISSING)",
    )
    b.add_argument("--overlap", default="", type=str.upper, choices=["", "ALLOW", "SKIP"])
    b.add_argument("--max-concurrent", type=int, default=0, help="backfilled runs at once (0: no bound)")
    b.add_argument("--dry-run", action="store_true", help="list what would run; change nothing")
    b.add_argument(
        "--address",
        default=None,
        help=f"node addresses, comma-separated (${ENV_ADDRESS}; {DEFAULT_ADDRESSES})",
    )
    b.add_argument("--json", action="store_true", help="print the reply as JSON")
    b.add_argument(
        "--timeout",
        type=parse_duration,
        default=15.0,
        metavar="DURATION",
        help="how long this command's calls to the cluster may take, retries and fail-over included"
        " (15s, 500ms, 2m; default 15s)",
    )
    add_security_flags(b)
    b.set_defaults(func=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Run the backfill; print one line per occurrence, then their count (or the reply as JSON), all on
    stdout; errors go to stderr."""
    address = args.address if args.address is not None else os.environ.get(ENV_ADDRESS, DEFAULT_ADDRESSES)
    try:
        client = Client(
            address,
            timeout=args.timeout,
            token=args.token,
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            server_name=args.server_name,
        )
    except (ValueError, OSError) as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        reply = asyncio.run(_backfill(client, args))
    except grpc.aio.AioRpcError as e:
        print(f"ordo-node: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(json_format.MessageToJson(reply, indent=2))
        return 0
    for o in reply.occurrences:
        nominal = o.nominal_time.seconds * 1_000_000 + o.nominal_time.nanos // 1000
        was = (
            ordo_pb2.Fate.Name(o.previous_fate).removeprefix("FATE_") if o.previous_fate else "none recorded"
        )
        print(f"{format_us(nominal)}  was {was}  {o.run_id or '(dry run)'}")
    verb = "would run" if reply.dry_run else "backfilled"
    print(f"{len(reply.occurrences)} occurrences {verb}")
    return 0


async def _backfill(client: Client, args: argparse.Namespace) -> ordo_pb2.BackfillScheduleResponse:
    async with client:
        return await client.backfill(
            args.job_id,
            args.since,
            args.until,
            reprocess=args.reprocess,
            overlap=args.overlap,
            max_concurrent=args.max_concurrent,
            dry_run=args.dry_run,
        )
