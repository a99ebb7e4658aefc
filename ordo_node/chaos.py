"""The chaos harness: a 3-node cluster under load while nodes are killed, then the invariants.

    ordo-node chaos --duration 300          # or: python -m ordo_node.chaos --duration 300

It starts three nodes in a temporary directory, starts three every-second
cron jobs, keeps submitting one-off jobs through random nodes (each with an idempotency key, retried until
acknowledged or given up), and every few seconds kills a random node with
SIGKILL — the leader at least a third of the time — and restarts it. The
jobs run a handler that appends each execution (job, run, attempt, node) to a
file outside the cluster. Then the faults stop, the cluster settles, every
node is stopped, and the harness checks, from the nodes' own SQLite files:

- every acknowledged submission exists on every node;
- no job was triggered twice;
- every job due during the run has a fate (it ended SUCCEEDED);
- every second of the every-second cron jobs has exactly one occurrence, with
  its fate, and every run they triggered ended;
- every run has at most one accepted final result;
- every node holds the same jobs, runs and events;
- an execution was repeated only for an attempt that was given up (LOST).

It prints a summary and exits 1 if any invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

from .client import Client
from .localcluster import LocalCluster, LocalNode

RECORDER = '''
"""Chaos harness handler: records every execution outside the cluster."""
import json
import os
import time

from ordo_node.handlers import handler

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "executions.jsonl")


@handler("chaos_record")
async def chaos_record(ctx, payload):
    line = json.dumps({"job": ctx.job_id, "run": ctx.run_id, "attempt": ctx.attempt, "node": ctx.node_id})
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)
    import asyncio
    await asyncio.sleep(float(payload.get("work", 0)))
    return {"node": ctx.node_id}
'''


_OPEN = ("PENDING", "ASSIGNED", "RUNNING")


@dataclass
class Stats:
    """What happened during the run."""

    submissions: int = 0
    acknowledged: int = 0
    unacknowledged: int = 0
    kills: int = 0
    leader_kills: int = 0
    leader_changes: int = 0
    longest_without_leader_s: float = 0.0
    reassignments: int = 0
    cron_jobs: int = 0
    cron_occurrences: int = 0
    cron_missed: int = 0
    executions: int = 0
    duplicate_executions: int = 0
    duplicates_of_lost_attempts: int = 0
    settle_s: float = 0.0
    violations: list[str] = field(default_factory=list)


class Chaos:
    """One run of the harness."""

    def __init__(self, root: Path, duration: float, rate: float, seed: int, lease: float) -> None:
        self.rng = random.Random(seed)
        self.duration = duration
        self.rate = rate
        self.cluster = LocalCluster(
            root,
            size=3,
            capacity=16,
            handlers=["chaos_jobs"],
            files={"chaos_jobs.py": RECORDER},
            settings={"cluster": {"lease_timeout": lease}, "raft": {"commit_timeout": 5.0}},
        )
        self.stats = Stats()
        self.acked: dict[str, str] = {}  # idempotency key -> job id
        self.cron: list[str] = []
        self._clients: dict[str, Client] = {}
        self._stop_faults = asyncio.Event()
        self._leader: str = ""

    def client(self, node: LocalNode) -> Client:
        if node.id not in self._clients:
            self._clients[node.id] = Client([node.address], timeout=3.0)
        return self._clients[node.id]

    async def leader_of(self, node: LocalNode) -> str:
        try:
            return (await self.client(node).cluster()).leader_id
        except grpc.RpcError:
            return ""

    async def wait_for_leader(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.cluster.nodes if n.alive]
            seen = {await self.leader_of(n) for n in live}
            if len(seen) == 1 and "" not in seen:
                leader = seen.pop()
                if self.cluster.node(leader).alive:
                    return leader
            await asyncio.sleep(0.1)
        raise RuntimeError("no leader")

    # -- the load -------------------------------------------------------------

    async def submit_one(self) -> None:
        key = uuid.uuid4().hex
        self.stats.submissions += 1
        payload = {"work": round(self.rng.uniform(0, 0.5), 3)}
        delay = self.rng.uniform(0, 3)
        for _ in range(6):  # the same key each time: a retry cannot make a second job
            node = self.rng.choice([n for n in self.cluster.nodes if n.alive] or self.cluster.nodes)
            try:
                job_id = await self.client(node).submit(
                    "chaos_record", payload, delay=delay, idempotency_key=key
                )
            except grpc.RpcError:
                await asyncio.sleep(0.3)
                continue
            self.acked[key] = job_id
            self.stats.acknowledged += 1
            return
        self.stats.unacknowledged += 1

    async def load(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        deadline = time.monotonic() + self.duration
        while time.monotonic() < deadline:
            task = asyncio.create_task(self.submit_one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(1 / self.rate)
        await asyncio.gather(*tasks)

    async def start_cron_jobs(self, count: int = 3) -> None:
        """A few every-second jobs, whose every occurrence must get a fate."""
        node = self.cluster.node(self._leader)
        for i in range(count):
            job_id = await self.client(node).submit(
                "chaos_record", {"work": 0}, cron="* * * * * *", name=f"chaos-cron-{i}", catch_up="ONE"
            )
            self.cron.append(job_id)
        self.stats.cron_jobs = len(self.cron)

    async def stop_cron_jobs(self) -> None:
        """Cancel the every-second jobs, so that the history to check is final."""
        for job_id in self.cron:
            for _ in range(20):
                live = [n for n in self.cluster.nodes if n.alive]
                try:
                    await self.client(self.rng.choice(live)).cancel(job_id)
                    break
                except grpc.RpcError:
                    await asyncio.sleep(0.5)

    # -- the faults -------------------------------------------------------------

    async def faults(self) -> None:
        while not self._stop_faults.is_set():
            await asyncio.sleep(self.rng.uniform(2, 6))
            if self._stop_faults.is_set():
                break
            leader = self._leader
            if leader and self.rng.random() < 0.4:
                victim = self.cluster.node(leader)
            else:
                victim = self.rng.choice(self.cluster.nodes)
            if not victim.alive:
                continue
            victim.kill()
            self.stats.kills += 1
            self.stats.leader_kills += victim.id == leader
            print(f"chaos: killed {victim.id}{' (leader)' if victim.id == leader else ''}", file=sys.stderr)
            await asyncio.sleep(self.rng.uniform(1, 3))
            victim.start()

    async def watch_leader(self) -> None:
        without_since: float | None = None
        while not self._stop_faults.is_set():
            live = [n for n in self.cluster.nodes if n.alive]
            leader = await self.leader_of(self.rng.choice(live)) if live else ""
            now = time.monotonic()
            if leader and self.cluster.node(leader).alive:
                if without_since is not None:
                    gap = round(now - without_since, 2)
                    self.stats.longest_without_leader_s = max(self.stats.longest_without_leader_s, gap)
                    without_since = None
                if leader != self._leader:
                    self.stats.leader_changes += bool(self._leader)
                    self._leader = leader
            elif without_since is None:
                without_since = now
            await asyncio.sleep(0.1)

    # -- settling and checking ------------------------------------------------------

    async def settle(self, timeout: float = 180.0) -> None:
        """Wait until every acknowledged job has ended on the leader and every node applied as much."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        for node in self.cluster.nodes:
            if not node.alive:
                node.start()
        leader = self.cluster.node(await self.wait_for_leader())
        pending = set(self.acked.values())
        while pending and time.monotonic() < deadline:
            for job_id in list(pending)[:200]:
                try:
                    job = await self.client(leader).get(job_id)
                except grpc.RpcError:
                    leader = self.cluster.node(await self.wait_for_leader())
                    break
                if job.state in (4, 5, 6):  # SUCCEEDED, FAILED, CANCELLED
                    pending.discard(job_id)
            else:
                await asyncio.sleep(0.2)
        if pending:
            self.stats.violations.append(
                f"{len(pending)} acknowledged jobs did not end within {timeout:.0f}s"
            )
        while time.monotonic() < deadline:
            applied = set()
            for n in self.cluster.nodes:
                try:
                    applied.add((await self.client(n).cluster()).applied_index)
                except grpc.RpcError:
                    applied.add(-1)
            if len(applied) == 1:
                break
            await asyncio.sleep(0.2)
        self.stats.settle_s = round(time.monotonic() - t0, 1)

    def check(self) -> None:
        """The invariants, from every node's database (all nodes stopped)."""
        dumps = [_dump(n.data_dir / "state.db") for n in self.cluster.nodes]
        first = dumps[0]
        for node, dump in zip(self.cluster.nodes[1:], dumps[1:], strict=True):
            for table in ("jobs", "runs", "occurrences", "events"):
                if dump[table] != first[table]:
                    self.stats.violations.append(f"{node.id} differs from node1 in table {table}")
        jobs = {row[0]: row for row in first["jobs"]}
        for node, dump in zip(self.cluster.nodes, dumps, strict=True):
            ids = {row[0] for row in dump["jobs"]}
            missing = [j for j in self.acked.values() if j not in ids]
            if missing:
                self.stats.violations.append(
                    f"{node.id} lacks {len(missing)} acknowledged jobs, e.g. {missing[0]}"
                )
        # One TRIGGERED event per run: a one-off job has one run, a cron job one per occurrence.
        triggers = Counter(row[5] for row in first["events"] if row[2] == "TRIGGERED")
        doubled = [r for r, n in triggers.items() if n > 1]
        if doubled:
            self.stats.violations.append(f"{len(doubled)} runs triggered more than once, e.g. {doubled[0]}")
        unfinished = [j for j in self.acked.values() if j in jobs and jobs[j][4] != "SUCCEEDED"]
        if unfinished:
            example = unfinished[0]
            self.stats.violations.append(
                f"{len(unfinished)} acknowledged jobs have no final fate,"
                f" e.g. {example} is {jobs[example][4]}"
            )
        finals = Counter(row[0] for row in first["runs"] if row[3] in ("SUCCEEDED", "FAILED"))
        multi = [r for r, n in finals.items() if n > 1]
        if multi:
            self.stats.violations.append(
                f"{len(multi)} runs have more than one final result, e.g. {multi[0]}"
            )
        self.stats.reassignments = sum(1 for row in first["runs"] if row[3] == "LOST")
        self.check_cron(first["occurrences"], first["runs"])
        self.check_executions(first["runs"])

    def check_cron(self, occurrences: list[tuple[Any, ...]], runs: list[tuple[Any, ...]]) -> None:
        """Every second of every cron job has exactly one occurrence, and each triggered one ran to an end."""
        final = {
            r[0]: r[3] for r in runs
        }  # run id -> state of its latest attempt (rows are in attempt order)
        for job_id in self.cron:
            nominal = [o[1] for o in occurrences if o[0] == job_id]
            self.stats.cron_occurrences += len(nominal)
            self.stats.cron_missed += sum(1 for o in occurrences if o[0] == job_id and o[3] != "TRIGGERED")
            if not nominal:
                self.stats.violations.append(f"cron job {job_id} has no occurrence")
                continue
            gaps = [(a, b) for a, b in itertools.pairwise(nominal) if b - a != 1_000_000]
            if gaps:
                self.stats.violations.append(f"cron job {job_id} has {len(gaps)} gaps, e.g. {gaps[0]}")
            open_runs = [
                o[5]
                for o in occurrences
                if o[0] == job_id and o[3] == "TRIGGERED" and final.get(o[5]) in _OPEN
            ]
            if open_runs:
                self.stats.violations.append(f"cron job {job_id}: {len(open_runs)} runs never ended")

    def check_executions(self, runs: list[tuple[Any, ...]]) -> None:
        log = self.cluster.root / "executions.jsonl"
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        self.stats.executions = len(lines)
        state = {(r[0], r[1]): r[3] for r in runs}
        per_run = Counter(x["run"] for x in lines)
        self.stats.duplicate_executions = sum(n - 1 for n in per_run.values() if n > 1)
        attempts = Counter((x["run"], x["attempt"]) for x in lines)
        for x in lines:
            if state.get((x["run"], x["attempt"])) == "LOST":
                self.stats.duplicates_of_lost_attempts += 1
        repeated = [k for k, n in attempts.items() if n > 1]
        if repeated:
            self.stats.violations.append(
                f"{len(repeated)} attempts executed more than once, e.g. {repeated[0]}"
            )
        unexplained = self.stats.duplicate_executions - self.stats.duplicates_of_lost_attempts
        if unexplained > 0:
            self.stats.violations.append(f"{unexplained} repeated executions are not of LOST attempts")

    async def run(self) -> Stats:
        self.cluster.start()
        try:
            self._leader = await self.wait_for_leader()
            await self.start_cron_jobs()
            watcher = asyncio.create_task(self.watch_leader())
            faults = asyncio.create_task(self.faults())
            await self.load()
            self._stop_faults.set()
            await asyncio.gather(faults, watcher)
            await self.settle()
            await self.stop_cron_jobs()
        finally:
            for c in self._clients.values():
                await c.close()
            await asyncio.to_thread(self.cluster.terminate_all)
        self.check()
        return self.stats


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "jobs": db.execute("SELECT * FROM jobs ORDER BY id").fetchall(),
            "runs": db.execute("SELECT * FROM runs ORDER BY run_id, attempt").fetchall(),
            "occurrences": db.execute("SELECT * FROM occurrences ORDER BY job_id, nominal").fetchall(),
            "events": db.execute(
                "SELECT seq, job_id, type, at, node_id, run_id, attempt FROM events ORDER BY seq"
            ).fetchall(),
        }
    finally:
        db.close()


def add_parser(sub: Any) -> None:
    """The ``chaos`` subcommand."""
    p = sub.add_parser("chaos", help="kill nodes under load, then check the invariants")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load and faults (default 60)")
    p.add_argument("--rate", type=float, default=20.0, help="submissions per second (default 20)")
    p.add_argument("--lease", type=float, default=3.0, help="lease timeout of the cluster, seconds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the cluster's directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_chaos)


def cmd_chaos(args: argparse.Namespace) -> int:
    """Run the harness; exit 1 if an invariant failed."""
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    root = Path(tempfile.mkdtemp(prefix="ordo-chaos-"))
    print(f"chaos: seed {seed}, cluster in {root}", file=sys.stderr)
    chaos = Chaos(root, args.duration, args.rate, seed, args.lease)
    stats = asyncio.run(chaos.run())
    summary = {"seed": seed, **asdict(stats)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for k, v in summary.items():
            if k != "violations":
                print(f"{k:30} {v}")
        print("invariants                     " + ("all hold" if not stats.violations else "VIOLATED"))
        for v in stats.violations:
            print(f"  - {v}")
    if stats.violations or args.keep:
        print(f"chaos: cluster directory kept: {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if stats.violations else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m ordo_node.chaos")
    add_parser(parser.add_subparsers(dest="command", required=True))
    sys.exit(cmd_chaos(parser.parse_args(["chaos", *sys.argv[1:]])))
