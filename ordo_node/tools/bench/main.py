"""Running the benchmark, and its command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from ...timeutil import format_us, now_us
from .limits import scenario_limits
from .load import Target, make_target, on_own_cluster
from .plan import SCENARIOS, BenchError, Plan, Progress, plan_from_args
from .report import build_rows, print_rows, targets_of
from .scenarios import (
    leader_query_costs,
    scenario_e2e,
    scenario_failover,
    scenario_lateness,
    scenario_loaded,
    scenario_scale,
    scenario_submit,
)
from .workers import scenario_swarm, scenario_workers

# -- running it -----------------------------------------------------------------------------


def meta(plan: Plan, root: Path) -> dict[str, Any]:
    """What was run, where, and with which sizes."""
    sizes = {k: v for k, v in plan.__dict__.items() if k not in ("json", "keep", "address", "scenarios")}
    return {
        "started": format_us(now_us()),
        "cluster": plan.address or f"local: 3 ordo-node processes on 127.0.0.1, capacity {plan.capacity}",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "scenarios": list(plan.scenarios),
        "sizes": sizes,
        "temp_dir": str(root) if plan.keep else None,
    }


RECOVERABLE = (BenchError, grpc.aio.AioRpcError, OSError, sqlite3.Error, subprocess.SubprocessError)


async def run_one(
    name: str, run: Callable[[], Awaitable[dict[str, Any]]], report: dict[str, Any], progress: Progress
) -> None:
    """Run one scenario into ``report``; a failure is recorded and the next scenario still runs."""
    try:
        report[name] = await run()
    except RECOVERABLE as e:
        text = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.aio.AioRpcError) else str(e)
        report[name] = {"error": f"{type(e).__name__}: {text}"}
        report["errors"][name] = report[name]["error"]
        progress.note(f"{name}: FAILED: {report[name]['error']}")


def cluster_runs(
    target: Target,
    plan: Plan,
    report: dict[str, Any],
    progress: Progress,
    baseline: dict[str, Any] | None,
    root: Path,
) -> dict[str, Any]:
    """The scenario functions that need a cluster, by name."""

    def batch_rate() -> float | None:
        batch = (report.get("submit") or {}).get("batch") or []
        return float(batch[0]["jobs_per_s"]) if batch else None

    async def failover() -> dict[str, Any]:
        if target.cluster is None:
            return {"skipped": "needs the cluster bench starts itself (not with --address)"}
        return await scenario_failover(target, plan, progress)

    return {
        "submit": lambda: scenario_submit(target, plan, progress),
        "e2e": lambda: scenario_e2e(target, plan, progress),
        "e2e1": lambda: scenario_e2e1(plan, progress, root),
        "workers": lambda: scenario_workers(plan, progress, root),
        "swarm": lambda: scenario_swarm(plan, progress, root),
        "loaded": lambda: scenario_loaded(target, plan, progress),
        "durable": lambda: scenario_durable(plan, progress, root),
        "lateness": lambda: scenario_lateness(target, plan, progress, batch_rate()),
        "failover": failover,
        "scale": lambda: scenario_scale(target, plan, progress, baseline),
    }


async def scenario_durable(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """Submit and end to end again on a second local cluster with ``[raft] durable = true``.

    Beside the same scenarios on the main cluster (durable off), in the same run: the cost of fsync.
    """

    async def body(target: Target) -> dict[str, Any]:
        return {
            "submit": await scenario_submit(target, plan, progress),
            "e2e": await scenario_e2e(target, plan, progress),
        }

    return await on_own_cluster("durable", body, plan, progress, root, settings={"raft": {"durable": True}})


async def scenario_e2e1(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """End to end on a local cluster of one node: the whole job in one process, no replication."""
    return await on_own_cluster(
        "e2e1", lambda t: scenario_e2e(t, plan, progress, label="e2e1"), plan, progress, root, size=1
    )


async def run(plan: Plan, progress: Progress) -> dict[str, Any]:
    """Every selected scenario; the report holds each one's figures (or its error)."""
    root = Path(tempfile.mkdtemp(prefix="ordo-bench-"))
    report: dict[str, Any] = {"meta": meta(plan, root), "errors": {}}
    target: Target | None = None
    try:
        if "limits" in plan.scenarios:
            await run_one("limits", lambda: scenario_limits(plan, progress, root), report, progress)
        names = [s for s in SCENARIOS if s in plan.scenarios and s != "limits"]
        if names:
            target = make_target(plan, root)  # assigned before any wait, so `finally` stops it
            progress.start("cluster: waiting for a leader")
            progress.done(f"leader at {await target.leader(timeout=60)}")
            baseline = await leader_query_costs(target) if "scale" in names else None
            runs = cluster_runs(target, plan, report, progress, baseline, root)
            for name in names:
                await run_one(name, runs[name], report, progress)
            if target.cluster is not None:
                try:
                    target.cluster.check_alive()
                except BenchError as e:
                    report["errors"]["cluster"] = str(e)
    finally:
        if target is not None:
            await target.close()
            if target.cluster is not None:
                target.cluster.stop()
        if plan.keep:
            progress.note(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return report


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 when it ran (targets met or not), 1 when the benchmark itself failed."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    plan = plan_from_args(args)
    progress = Progress(sys.stderr)
    try:
        report = asyncio.run(run(plan, progress))
    except (BenchError, OSError) as e:
        hint = "" if plan.keep else " (--keep keeps the node logs)"
        progress.note(f"ordo-node bench: {e}{hint}")
        return 1
    rows = build_rows(report, plan)
    report["targets"] = targets_of(rows)
    if plan.json:
        print(json.dumps(report, indent=2))
    else:
        print_rows(rows, sys.stdout)
        met = sum(1 for t in report["targets"] if t["met"])
        judged = sum(1 for t in report["targets"] if t["met"] is not None)
        print(
            f"\n{met} of {judged} targets met; measured on {os.cpu_count()} CPUs shared by nodes and client"
        )
    for name, error in report["errors"].items():
        progress.note(f"ordo-node bench: {name} failed: {error}")
    return 1 if report["errors"] else 0


# -- the command line ---------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        n = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be at least 1")
    return n


def _batch_size(text: str) -> int:
    n = _positive_int(text)
    if n > 10_000:
        raise argparse.ArgumentTypeError(f"{n} is more than SubmitJobs takes in one call (10,000)")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if x <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be more than 0")
    return x


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(x) for x in text.split(",") if x.strip())


def _scenario_list(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [x for x in names if x not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {unknown or text!r}; choose from {','.join(SCENARIOS)}"
        )
    return names


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``bench`` subcommand with its options; it runs :func:`cmd_bench`."""
    p = sub.add_parser(
        "bench",
        help="measure a local 3-node cluster (or --address) against the benchmark targets",
        description="Start a local 3-node cluster in a temporary directory (or use --address), run the"
        " scenarios, and print each figure with its target. Progress goes to stderr.",
    )
    p.add_argument(
        "--capacity",
        type=int,
        default=64,
        help="executor capacity of each node of the local cluster (default 64: no-op jobs free a slot fast)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="measure this cluster (host:port[,host:port...]) instead; failover, restart, memory"
        " and SQLite figures are then skipped. Its jobs stay on that cluster.",
    )
    p.add_argument(
        "--scenarios",
        type=_scenario_list,
        default=SCENARIOS,
        help=f"comma-separated, from {','.join(SCENARIOS)} (default: all)",
    )
    sizes = p.add_argument_group("sizes (defaults in brackets; --tiny makes every unset size tiny)")
    sizes.add_argument("--jobs", dest="e2e_jobs", type=_positive_int, help="e2e: echo jobs due now [10,000]")
    sizes.add_argument("--lateness-jobs", type=_positive_int, help="lateness: jobs due at once [10,000]")
    sizes.add_argument(
        "--scale-jobs", type=_positive_int, help="scale: future jobs [100,000; the issue: 1,000,000]"
    )
    sizes.add_argument("--concurrency", type=_int_list, help="unary submit and echo callers [1,16,64]")
    sizes.add_argument("--batch", type=_batch_size, help="jobs per SubmitJobs call [1000]")
    sizes.add_argument("--batch-jobs", type=_positive_int, help="submit: jobs sent with SubmitJobs [20,000]")
    sizes.add_argument("--batch-concurrency", type=_int_list, help="submit: SubmitJobs calls in flight [1,4]")
    sizes.add_argument("--submit-seconds", type=_positive_float, help="seconds per unary/echo level [5]")
    sizes.add_argument("--failover-jobs", type=_positive_int, help="failover: jobs, one per 100 ms [100]")
    sizes.add_argument("--raw-commands", type=_positive_int, help="limits: raw PySyncObj commands [20,000]")
    sizes.add_argument(
        "--swarm-workers",
        dest="swarm_counts",
        type=_int_list,
        help="swarm: light workers in one process, one round per count [10,50,200]",
    )
    sizes.add_argument("--swarm-jobs", type=_positive_int, help="swarm: no-op jobs per round [5,000]")
    sizes.add_argument(
        "--swarm-idle", dest="swarm_idle_s", type=_positive_float, help="swarm: seconds with no job [3]"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object with every figure, nothing else"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, data, logs)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, for CI: well under a minute")
    p.set_defaults(func=cmd_bench)


def main(argv: list[str] | None = None) -> int:
    """``python -m ordo_node.tools.bench [options]``: the same as ``ordo-node bench [options]``."""
    parser = argparse.ArgumentParser(prog="python -m ordo_node.tools.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
