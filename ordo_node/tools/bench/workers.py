"""The scenarios with workers (issue 15): a control plane of 3 voters with capacity 0, and workers.

- ``workers``: end to end (as ``e2e``) on 3 voters of capacity 0 and 2
  ``ordo-node worker`` processes of the plan's capacity, on this machine: the
  CPU per job of each process, voters and workers, to read beside ``e2e``
  (every voter an executor) of the same run.
- ``swarm``: for each count in ``swarm_counts`` (10, 50, 200), a fresh control
  plane and one process running that many light workers
  (:mod:`ordo_node.tools.swarm`: capacity 1, a no-op handler). First a quiet
  window with the workers connected and no job (what the workers' heartbeats
  cost the leader per second), then ``swarm_jobs`` no-op jobs end to end:
  throughput, the leader's CPU per job, and the same less the quiet cost of
  the window's length. Issue 15's target: the leader's cost per job does not
  grow with the number of workers.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from ...client import submit_request
from ..swarm import NOOP
from .cpu import cpu_figures, end_mark, start_mark
from .load import LocalCluster, Target, on_own_cluster
from .plan import SWARM_GROWTH_LIMIT, Plan, Progress
from .scenarios import scenario_e2e

WORKERS = ("worker1", "worker2")
SWARM = "swarm"


async def scenario_workers(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """End to end on 3 voters of capacity 0 and 2 worker processes: CPU per job of each process."""

    def prepare(cluster: LocalCluster) -> None:
        for worker_id in WORKERS:
            cluster.add_worker(worker_id, capacity=plan.capacity)

    async def body(target: Target) -> dict[str, Any]:
        progress.start(f"workers: waiting for {len(WORKERS)} workers")
        await target.workers_connected(len(WORKERS))
        progress.done("connected to the leader")
        out = await scenario_e2e(target, plan, progress, label="workers")
        return {**out, "workers": len(WORKERS), "worker_capacity": plan.capacity}

    return await on_own_cluster("workers", body, plan, progress, root, capacity=0, prepare=prepare)


def swarm_program(count: int, servers: list[str]) -> list[str]:
    """The swarm process of ``count`` workers, capacity 1 each."""
    return [
        sys.executable,
        "-m",
        "ordo_node.tools.swarm",
        "--servers",
        ",".join(servers),
        "--count",
        str(count),
        "--prefix",
        f"s{count}",
    ]


_READY = re.compile(r"swarm: ready: (\d+) of (\d+) workers in [\d.]+s, (\d+) reconnected")


def swarm_ready(log: str) -> tuple[int, int] | None:
    """(workers ready, workers reconnected) from the swarm's log, once it said so."""
    m = _READY.search(log)
    return (int(m.group(1)), int(m.group(3))) if m else None


async def swarm_round(plan: Plan, progress: Progress, root: Path, count: int) -> dict[str, Any]:
    """One count: a fresh control plane, the swarm, a quiet window, then the jobs end to end."""
    label = f"swarm {count}"

    def prepare(cluster: LocalCluster) -> None:
        cluster.add_worker(SWARM, program=swarm_program(count, cluster.addresses))

    async def body(target: Target) -> dict[str, Any]:
        cluster = target.cluster
        assert cluster is not None
        swarm = cluster.workers[SWARM]
        progress.start(f"{label}: waiting for {count} workers")
        ready: tuple[int, int] | None = None
        for _ in range(1200):  # up to 2 minutes
            cluster.check_alive()
            ready = swarm_ready(swarm.log_text())
            if ready is not None:
                break
            await asyncio.sleep(0.1)
        connected = await target.workers_connected(count)
        reconnected = ready[1] if ready else None
        progress.done(f"{connected} connected, {reconnected} reconnected at start")
        progress.start(f"{label}: {plan.swarm_idle_s:g}s with no job")
        mark = await start_mark(target)
        await asyncio.sleep(plan.swarm_idle_s)
        idle = cpu_figures(mark, await end_mark(target), 1)
        idle_cpu = idle["cpu_us_per_job"]
        window = idle["cpu_window_s"]
        leader_idle = idle_cpu["leader"] / 1e3 / window if idle_cpu["leader"] is not None else None
        swarm_idle = idle_cpu["workers"][SWARM]["us_per_job"] / 1e3 / window
        progress.done(
            f"leader {leader_idle:.1f} ms/s, swarm {swarm_idle:.1f} ms/s"
            if leader_idle is not None
            else "no leader at both ends"
        )
        e2e = await scenario_e2e(
            target, plan, progress, label=label, request=submit_request(NOOP, {}), jobs=plan.swarm_jobs
        )
        cpu = e2e["cpu_us_per_job"]
        leader, jobs = cpu["leader"], e2e["jobs"]
        net = (
            round(leader - leader_idle * 1e3 * e2e["cpu_window_s"] / jobs, 1)
            if leader is not None and leader_idle is not None
            else None
        )
        return {
            "workers": count,
            "connected": connected,
            "reconnected_at_start": reconnected,
            "idle_s": window,
            "idle_leader_cpu_ms_per_s": round(leader_idle, 2) if leader_idle is not None else None,
            "idle_swarm_cpu_ms_per_s": round(swarm_idle, 2),
            "leader_us_per_job_less_idle": net,
            "e2e": e2e,
        }

    return await on_own_cluster(label, body, plan, progress, root, capacity=0, prepare=prepare)


async def scenario_swarm(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """The swarm at each count; the leader's CPU per job at the most workers over that at the fewest."""
    if plan.address:
        return {"skipped": "needs the cluster bench starts itself (not with --address)"}
    rounds = [await swarm_round(plan, progress, root, n) for n in plan.swarm_counts]
    out: dict[str, Any] = {"rounds": rounds, "growth_limit": SWARM_GROWTH_LIMIT}
    first, last = rounds[0]["e2e"]["cpu_us_per_job"]["leader"], rounds[-1]["e2e"]["cpu_us_per_job"]["leader"]
    if first and last is not None and len(rounds) > 1:
        out["leader_growth"] = round(last / first, 3)
    return out
