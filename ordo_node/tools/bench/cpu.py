"""CPU per job: what each node process spent over a measured window, divided by the window's jobs.

The measure of issue 14 (DESIGN.md, "What a job costs"): user + system time
of every node process, read from ``/proc/PID/stat`` (``utime`` + ``stime``,
all threads, children excluded), at the start and the end of a window, per
node with its role (leader or follower, from GetClusterStatus at both ends),
per role and in total. Worker processes of the local cluster (issue 15) are
measured the same way, with the role "worker"; the total is then the sum over
the nodes and the workers, and the nodes' own sum is given beside it. The
bench process is the client: its own CPU (``time.process_time``) is
reported beside, never added in. With ``--address`` the node processes are
elsewhere, so the node figures are n/a.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .load import Target, poll_until

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

REMOTE = "n/a (remote cluster)"

SETTLE_TIMEOUT = 30.0


def stat_cpu_seconds(stat: str) -> float:
    """utime + stime of a ``/proc/PID/stat`` line, in seconds.

    The command name (field 2) is in parentheses and may itself hold spaces or
    ")", so the fields are counted from the last ")": utime and stime are
    fields 14 and 15 of the line, the 12th and 13th after it. cutime and
    cstime (the reaped children) are left out.
    """
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process so far; None once it is gone."""
    try:
        return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class CpuMark:
    """One end of a window: each local node's CPU seconds and role, the client's CPU, the time."""

    nodes: dict[str, float]
    roles: dict[str, str]
    client: float
    wall: float
    local: bool
    commit: int | None = None  # the leader's commit index: Raft entries over the window


async def _roles(target: Target) -> dict[str, str]:
    """Each live local node's role as it states it itself in GetClusterStatus; "worker" for workers."""
    assert target.cluster is not None
    roles = {}
    for n in target.cluster.nodes:
        if not n.alive:
            continue
        status = await target.status(n.address)
        me = next((x for x in status.nodes if x.node_id == n.id), None)
        roles[n.id] = me.role if me is not None and me.role else "unknown"
    for w in target.cluster.workers.values():
        if w.alive:
            roles[w.id] = "worker"
    return roles


def _node_cpu(target: Target) -> dict[str, float]:
    """CPU seconds so far of every live node and worker process."""
    assert target.cluster is not None
    out = {}
    for n in target.cluster.processes():
        seconds = process_cpu_seconds(n.proc.pid) if n.proc is not None and n.alive else None
        if seconds is not None:
            out[n.id] = seconds
    return out


async def _commit_index(target: Target) -> int | None:
    """The leader's commit index; None if no leader answers."""
    try:
        return int((await target.status(await target.leader())).commit_index)
    except Exception:
        return None


async def settle(target: Target) -> int:
    """Wait until every live node has applied what the leader had committed when called; that index.

    So that a window's end includes the followers' apply of the window's
    last commands, not only the leader's reply.
    """
    cluster = target.cluster
    assert cluster is not None
    leader = await target.leader()
    goal = int((await target.status(leader)).commit_index)

    async def applied() -> bool | None:
        for n in cluster.nodes:
            if n.alive and (await target.status(n.address)).applied_index < goal:
                return None
        return True

    await poll_until(applied, timeout=SETTLE_TIMEOUT, what=f"every node to apply index {goal}", interval=0.02)
    return goal


async def start_mark(target: Target) -> CpuMark:
    """The start of a window: roles first, then the CPU counters."""
    if target.cluster is None:
        return CpuMark({}, {}, time.process_time(), time.monotonic(), local=False)
    roles = await _roles(target)
    commit = await _commit_index(target)
    return CpuMark(_node_cpu(target), roles, time.process_time(), time.monotonic(), local=True, commit=commit)


async def end_mark(target: Target) -> CpuMark:
    """The end of a window: once every node has applied the leader's commits, the CPU counters, then roles."""
    if target.cluster is None:
        return CpuMark({}, {}, time.process_time(), time.monotonic(), local=False)
    commit = await settle(target)
    cpu, client, wall = _node_cpu(target), time.process_time(), time.monotonic()
    return CpuMark(cpu, await _roles(target), client, wall, local=True, commit=commit)


def _us(seconds: float, jobs: int) -> float:
    return round(seconds / jobs * 1e6, 1)


def cpu_figures(start: CpuMark, end: CpuMark, jobs: int) -> dict[str, Any]:
    """The report's CPU keys for a window of ``jobs`` jobs.

    ``cpu_us_per_job``: total (sum of the nodes, and of the workers if any),
    leader (the node that was leader at both ends, else None), follower_mean
    (the mean of the nodes that were followers at both ends, else None), and
    per node its role ("leader", "follower", or "leader->follower" when it
    changed) and its figure. With worker processes: ``workers`` (each with
    role "worker" and its figure), ``worker_mean`` and ``nodes_total`` (the
    nodes alone). A process that was not running at both ends is left out. ``client_cpu_us_per_job``:
    the bench process's own, for reference.
    """
    out: dict[str, Any] = {
        "cpu_window_s": round(end.wall - start.wall, 3),
        "client_cpu_us_per_job": _us(end.client - start.client, max(jobs, 1)),
    }
    if not (start.local and end.local):
        out["cpu_us_per_job"] = REMOTE
        return out
    if jobs <= 0:
        out["cpu_us_per_job"] = "n/a (no jobs)"
        return out
    if start.commit is not None and end.commit is not None:
        out["raft_entries_per_job"] = round((end.commit - start.commit) / jobs, 3)
    spent = {k: end.nodes[k] - start.nodes[k] for k in sorted(start.nodes.keys() & end.nodes.keys())}
    nodes: dict[str, dict[str, Any]] = {}
    for node_id, seconds in spent.items():
        before, after = start.roles.get(node_id, "unknown"), end.roles.get(node_id, "unknown")
        nodes[node_id] = {
            "role": before if before == after else f"{before}->{after}",
            "cpu_s": round(seconds, 3),
            "us_per_job": _us(seconds, jobs),
        }
    leaders = [v["us_per_job"] for v in nodes.values() if v["role"] == "leader"]
    followers = [v["us_per_job"] for v in nodes.values() if v["role"] == "follower"]
    out["cpu_us_per_job"] = {
        "total": _us(sum(spent.values()), jobs),
        "leader": leaders[0] if len(leaders) == 1 else None,
        "follower_mean": round(statistics.fmean(followers), 1) if followers else None,
        "nodes": {k: v for k, v in nodes.items() if v["role"] != "worker"},
    }
    workers = {k: v for k, v in nodes.items() if v["role"] == "worker"}
    if workers:
        voters = sum(x for k, x in spent.items() if k not in workers)
        out["cpu_us_per_job"] |= {
            "nodes_total": _us(voters, jobs),
            "worker_mean": round(statistics.fmean(v["us_per_job"] for v in workers.values()), 1),
            "workers": workers,
        }
    return out


def cpu_summary(figures: dict[str, Any]) -> str:
    """ ", nodes' CPU 812 us/job" for a progress line; empty when the nodes' CPU is not known."""
    cpu = figures.get("cpu_us_per_job")
    if not isinstance(cpu, dict):
        return ""
    if "workers" in cpu:
        workers = cpu["total"] - cpu["nodes_total"]
        return f", CPU: nodes {cpu['nodes_total']:,.0f} + workers {workers:,.0f} us/job"
    return f", nodes' CPU {cpu['total']:,.0f} us/job"
