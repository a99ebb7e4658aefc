"""The chaos harness: a cluster under load while nodes are killed or cut off, then the invariants.

    ordo-node chaos --duration 300             # kill -9 only, on loopback
    ordo-node chaos --network --duration 600   # partitions and kill -9 (root, ip netns)
    ordo-node chaos --workers 0                # the nodes alone (no worker processes)

It starts three nodes in a temporary directory, and beside them two worker
processes (``ordo-node worker``, issue 15; ``--workers N``) of the same
capacity and handler as the nodes' executors, so that jobs run on both. It
starts three every-second cron jobs, keeps submitting one-off jobs through
random nodes (each with an idempotency key, retried until acknowledged or
given up), and every few seconds kills a random node with SIGKILL — the
leader at least a third of the time — and restarts it; a third of the faults
stop a worker instead, by kill -9 or by SIGTERM in turn (it gives back what
it has not started and lets its running attempts finish), and start it
again. The jobs run a handler that appends each execution (job, run,
attempt, node or worker) to a file outside the cluster.

With ``--network`` every node runs in its own network namespace
(netfaults.py) and the faults are the nemeses, one at a time, each healed
before the next: the leader isolated, a majority/minority split, a bridge
(A-B and B-C up, A-C cut), one-way loss, a node cut off and let back every
1-2 s, kill -9 during a partition, and plain kill -9; with workers, each in
a namespace of its own, also a worker cut off from the leader (it still
reaches the followers) and a worker stopped (kill -9 or SIGTERM) and
restarted. The harness stays in the root namespace and always reaches every
node. Where namespaces cannot be made (not root, no ``ip netns``) it says
why and runs the kill faults only.

Then the faults stop, the cluster settles, every node is stopped, and the
harness checks, from the nodes' status and their own SQLite files:

- every acknowledged submission exists on every node;
- no job was triggered twice;
- every job due during the run has a fate (it ended SUCCEEDED);
- every second of the every-second cron jobs has exactly one occurrence, with
  its fate, and every run they triggered ended;
- every run has at most one accepted final result;
- every node holds the same jobs, runs and events;
- after quiet every node reaches the same applied index with the same state
  hash (GetClusterStatus, and the ``meta`` table after stop);
- no node reported a fault (fail-stop), and no log has a line
  'truncating already-applied' (both counted per node);
- an execution was repeated only for an attempt that was given up (LOST);
  each repeat is attributed to the fault during or just before which it ran;
- after quiet every worker is connected to the leader again.

It also counts, per heal, the elections that followed it (PySyncObj has no
PreVote: a node back from isolation with a higher term can depose a healthy
leader). It prints a summary and exits 1 if any invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import signal
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

from ..client import Client
from . import netfaults
from .localcluster import LocalCluster, LocalNode, LocalWorker
from .netfaults import (
    NEMESES,
    WORKER_NEMESES,
    Episode,
    Nemeses,
    NetCluster,
    Network,
    stop_worker,
    worker_stop_kind,
)

RECORDER = '''
"""Chaos harness handler: records every execution outside the cluster."""
import json
import os
import time

from ordo_node.handlers import handler

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "executions.jsonl")


@handler("chaos_record")
async def chaos_record(ctx, payload):
    line = json.dumps(
        {"job": ctx.job_id, "run": ctx.run_id, "attempt": ctx.attempt, "node": ctx.node_id, "t": time.time()}
    )
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
CAPACITY = 16  # of every node's executor and every worker
WORKER_FAULTS = 1 / 3  # the share of the kill faults that stop a worker (when there are workers)
RECONNECT_TIMEOUT = 20.0  # seconds after quiet for every worker to be connected to the leader


@dataclass
class Stats:
    """What happened during the run."""

    network: bool = False
    network_skipped: str = ""
    submissions: int = 0
    acknowledged: int = 0
    unacknowledged: int = 0
    kills: int = 0
    leader_kills: int = 0
    workers: int = 0
    worker_kills: int = 0
    worker_terms: int = 0
    # Worker id -> executions it ran (from the execution log); the nodes' are not listed.
    worker_executions: dict[str, int] = field(default_factory=dict)
    workers_reconnected_s: float = 0.0
    nemeses: dict[str, int] = field(default_factory=dict)
    leader_changes: int = 0
    longest_without_leader_s: float = 0.0
    # Per nemesis, the elections (new leader terms) seen after each of its heals, until the next fault.
    elections_per_heal: dict[str, list[int]] = field(default_factory=dict)
    heals: int = 0
    elections_after_heals: int = 0
    heals_with_more_than_one_election: int = 0
    reassignments: int = 0
    cron_jobs: int = 0
    cron_occurrences: int = 0
    cron_missed: int = 0
    executions: int = 0
    duplicate_executions: int = 0
    duplicates_of_lost_attempts: int = 0
    # Executions of LOST attempts, by the fault during (or within a lease after) which they ran.
    duplicate_causes: dict[str, int] = field(default_factory=dict)
    settle_s: float = 0.0
    # node -> "appliedIndex stateHash", from GetClusterStatus after quiet and from the meta table after stop.
    state_hashes: dict[str, str] = field(default_factory=dict)
    state_hashes_after_stop: dict[str, str] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    truncation_lines: dict[str, int] = field(default_factory=dict)
    fail_stop_lines: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


@dataclass
class Seen:
    """One node's last answer to GetClusterStatus."""

    leader: str
    term: int
    applied: int
    state_hash: str
    at: float


class Chaos:
    """One run of the harness; with ``network`` the nodes live in its namespaces and the nemeses run."""

    def __init__(
        self,
        root: Path,
        duration: float,
        rate: float,
        seed: int,
        lease: float,
        *,
        network: Network | None = None,
        hold: tuple[float, float] = (3.0, 8.0),
        gap: tuple[float, float] = (3.0, 6.0),
        workers: int = 2,
    ) -> None:
        self.rng = random.Random(seed)
        self.duration = duration
        self.rate = rate
        self.lease = lease
        self.gap = gap
        self.network = network
        options: dict[str, Any] = {
            "size": 3,
            "capacity": CAPACITY,
            "handlers": ["chaos_jobs"],
            "files": {"chaos_jobs.py": RECORDER},
            "settings": {"cluster": {"lease_timeout": lease}, "raft": {"commit_timeout": 5.0}},
        }
        self.cluster: LocalCluster = (
            NetCluster(root, network=network, **options) if network else LocalCluster(root, **options)
        )
        self.stats = Stats(network=network is not None, workers=workers)
        for i in range(1, workers + 1):
            if isinstance(self.cluster, NetCluster):
                self.cluster.add_net_worker(f"worker{i}", capacity=CAPACITY)
            else:
                self.cluster.add_worker(f"worker{i}", capacity=CAPACITY)
        self.workers: list[LocalWorker] = list(self.cluster.workers.values())
        self.acked: dict[str, str] = {}  # idempotency key -> job id
        self.cron: list[str] = []
        self._clients: dict[str, Client] = {}
        self._pollers: dict[str, Client] = {}
        self._seen: dict[str, Seen] = {}
        self._stop_faults = asyncio.Event()
        self._stop_watch = asyncio.Event()
        self._leader: str = ""
        self._deadline = 0.0
        self.episodes: list[Episode] = []
        self.elections: list[tuple[float, str, int]] = []  # (wall time, leader, term) of each new term
        self.nemeses: Nemeses | None = None
        if isinstance(self.cluster, NetCluster) and network is not None:
            self.nemeses = Nemeses(self.cluster, network, self.rng, lambda: self._leader, hold, _say)
            self.nemeses.episodes = self.episodes

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

    async def load(self, faults: asyncio.Task[None]) -> None:
        """Submit at the rate until the duration is over (and, with nemeses, until the faults end)."""
        tasks: set[asyncio.Task[None]] = set()
        while time.monotonic() < self._deadline or (self.nemeses is not None and not faults.done()):
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
        """kill -9 a random node (the leader 40% of the time) every 2-6 s, restart it 1-3 s later;
        a third of the time stop a worker instead (kill -9 or SIGTERM) and start it 1-3 s later."""
        while not self._stop_faults.is_set():
            await asyncio.sleep(self.rng.uniform(2, 6))
            if self._stop_faults.is_set():
                break
            if self.workers and self.rng.random() < WORKER_FAULTS:
                await self.worker_fault()
                continue
            leader = self._leader
            if leader and self.rng.random() < 0.4:
                victim = self.cluster.node(leader)
            else:
                victim = self.rng.choice(self.cluster.nodes)
            if not victim.alive:
                continue
            episode = Episode("kill", f"{victim.id} killed", time.time())
            self.episodes.append(episode)
            victim.kill()
            self.stats.kills += 1
            self.stats.leader_kills += victim.id == leader
            _say(f"killed {victim.id}{' (leader)' if victim.id == leader else ''}")
            await asyncio.sleep(self.rng.uniform(1, 3))
            victim.start()
            episode.healed = time.time()

    async def worker_fault(self) -> None:
        """Stop a random running worker by kill -9 or SIGTERM (in turn); start it again 1-3 s later."""
        live = [w for w in self.workers if w.alive]
        if not live:
            return
        worker = self.rng.choice(live)
        episode = Episode("worker_stop", f"{worker.id} stopped", time.time())
        self.episodes.append(episode)
        how = await stop_worker(worker, worker_stop_kind(self.stats.worker_kills + self.stats.worker_terms))
        episode.detail = f"{worker.id} stopped by {how}"
        self.stats.worker_kills += how == "kill -9"
        self.stats.worker_terms += how == "SIGTERM"
        _say(f"{worker.id} stopped by {how}")
        await asyncio.sleep(self.rng.uniform(1, 3))
        worker.start()
        episode.healed = time.time()

    async def network_faults(self) -> None:
        """The nemeses in shuffled rounds, one at a time, until the duration is over and each ran once."""
        assert self.nemeses is not None
        names = NEMESES + (WORKER_NEMESES if self.workers else ())
        counts = dict.fromkeys(names, 0)
        self.stats.nemeses = counts
        order: list[str] = []
        while time.monotonic() < self._deadline or not all(counts.values()):
            if not order:
                order = list(names)
                self.rng.shuffle(order)
            name = order.pop()
            _say(f"{name} ...")
            episode = await self.nemeses.run(name)
            counts[name] += 1
            _say(f"{name}: {episode.detail}; healed after {episode.healed - episode.start:.1f}s")
            self.stats.kills, self.stats.leader_kills = self.nemeses.kills, self.nemeses.leader_kills
            self.stats.worker_kills = self.nemeses.worker_kills
            self.stats.worker_terms = self.nemeses.worker_terms
            await asyncio.sleep(self.rng.uniform(*self.gap))

    async def poll(self, node: LocalNode) -> None:
        """Keep this node's own view (leader, term, applied index, hash, fault) fresh while the run lasts."""
        client = self._pollers.setdefault(node.id, Client([node.address], timeout=2.0))
        while not self._stop_watch.is_set():
            if node.alive:
                try:
                    status = await client.cluster()
                except grpc.RpcError:
                    pass
                else:
                    self._note(node.id, status)
            await asyncio.sleep(0.25)

    def _note(self, node_id: str, status: Any) -> None:
        own = next((n for n in status.nodes if n.node_id == node_id), None)
        self._seen[node_id] = Seen(
            status.leader_id,
            status.term,
            own.applied_index if own else status.applied_index,
            own.state_hash if own else "",
            time.monotonic(),
        )
        if own is not None and own.fault and node_id not in self.stats.faults:
            self.stats.faults[node_id] = own.fault
            self.stats.violations.append(f"{node_id} reported a fault: {own.fault}")

    def majority_leader(self) -> tuple[str, int]:
        """The leader (and its term) that more than half the nodes name in a fresh answer, else ('', 0)."""
        now = time.monotonic()
        fresh = [
            s
            for n in self.cluster.nodes
            if n.alive and (s := self._seen.get(n.id)) is not None and now - s.at < 1.5 and s.leader
        ]
        votes = Counter(s.leader for s in fresh)
        if not votes:
            return "", 0
        leader, count = votes.most_common(1)[0]
        if count * 2 <= len(self.cluster.nodes):
            return "", 0
        return leader, max(s.term for s in fresh if s.leader == leader)

    async def watch_leader(self) -> None:
        """Leader changes, new terms and the longest time without a leader a majority agrees on."""
        without_since: float | None = None
        term = 0
        while not self._stop_watch.is_set():
            leader, leader_term = self.majority_leader()
            now = time.monotonic()
            if leader and self.cluster.node(leader).alive:
                if without_since is not None:
                    gap = round(now - without_since, 2)
                    self.stats.longest_without_leader_s = max(self.stats.longest_without_leader_s, gap)
                    without_since = None
                if leader_term > term:
                    if term:
                        self.elections.append((time.time(), leader, leader_term))
                    term = leader_term
                if leader != self._leader:
                    self.stats.leader_changes += bool(self._leader)
                    self._leader = leader
            elif without_since is None:
                without_since = now
            await asyncio.sleep(0.1)

    def count_elections_per_heal(self) -> None:
        """For every healed fault, the new leader terms seen from the heal until the next fault began."""
        per: dict[str, list[int]] = {}
        timeline = []
        for i, ep in enumerate(self.episodes):
            end = self.episodes[i + 1].start if i + 1 < len(self.episodes) else ep.healed + 10.0
            during = [e for e in self.elections if ep.start <= e[0] < ep.healed]
            after = [e for e in self.elections if ep.healed <= e[0] < end]
            per.setdefault(ep.nemesis, []).append(len(after))
            timeline.append({**asdict(ep), "elections_during": during, "elections_after_heal": after})
        # The whole timeline, for reading beside the nodes' logs (kept with --keep or on a violation).
        (self.cluster.root / "episodes.json").write_text(json.dumps(timeline, indent=1))
        self.stats.elections_per_heal = per
        self.stats.heals = len(self.episodes)
        self.stats.elections_after_heals = sum(map(sum, per.values()))
        self.stats.heals_with_more_than_one_election = sum(1 for v in per.values() for n in v if n > 1)

    # -- settling and checking ------------------------------------------------------

    async def settle(self, timeout: float = 180.0) -> None:
        """Wait until every acknowledged job has ended on the leader and every node applied as much."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        for proc in self.cluster.processes():
            if not proc.alive:
                proc.start()
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
        self.stats.settle_s = round(time.monotonic() - t0, 1)

    async def workers_back(self, timeout: float = RECONNECT_TIMEOUT) -> None:
        """Wait until the leader has every worker connected to it (GetClusterStatus.workers)."""
        if not self.workers:
            return
        t0 = time.monotonic()
        wanted = {w.id for w in self.workers}
        on: dict[str, str] = {}
        leader = ""
        while time.monotonic() - t0 < timeout:
            leader = await self.wait_for_leader()
            try:
                status = await self.client(self.cluster.node(leader)).cluster()
            except grpc.RpcError:
                await asyncio.sleep(0.2)
                continue
            on = {w.worker_id: w.connected_to for w in status.workers}
            if all(on.get(w) == leader for w in wanted):
                self.stats.workers_reconnected_s = round(time.monotonic() - t0, 1)
                return
            await asyncio.sleep(0.2)
        missing = sorted(w for w in wanted if on.get(w) != leader)
        self.stats.violations.append(
            f"{len(missing)} workers not connected to the leader {leader} {timeout:.0f}s after quiet:"
            f" {', '.join(missing)}"
        )

    async def quiet(self, timeout: float = 60.0) -> None:
        """Wait until every node reports the same applied index twice running; compare their state hashes."""
        deadline = time.monotonic() + timeout
        last: dict[str, tuple[int, str]] = {}
        previous: dict[str, tuple[int, str]] = {}
        while time.monotonic() < deadline:
            statuses = await asyncio.gather(
                *(self.client(n).cluster() for n in self.cluster.nodes), return_exceptions=True
            )
            last = {}
            for node, status in zip(self.cluster.nodes, statuses, strict=True):
                if isinstance(status, BaseException):
                    continue
                self._note(node.id, status)
                seen = self._seen[node.id]
                last[node.id] = (seen.applied, seen.state_hash)
            applied = {a for a, _ in last.values()}
            if len(last) == len(self.cluster.nodes) and len(applied) == 1 and last == previous:
                break
            previous = last
            await asyncio.sleep(0.5)
        else:
            self.stats.violations.append(
                f"the nodes did not reach one applied index within {timeout:.0f}s of quiet: "
                + ", ".join(f"{k}={a}" for k, (a, _) in sorted(last.items()))
            )
        self.stats.state_hashes = {k: f"{a} {h}" for k, (a, h) in sorted(last.items())}
        self._compare_hashes(last, "after quiet")

    def _compare_hashes(self, hashes: dict[str, tuple[int, str]], when: str) -> None:
        by_index: dict[int, set[str]] = {}
        for applied, state_hash in hashes.values():
            by_index.setdefault(applied, set()).add(state_hash)
        for applied, found in sorted(by_index.items()):
            if len(found) > 1:
                self.stats.violations.append(
                    f"stateHash differs at appliedIndex {applied} {when}: "
                    + ", ".join(f"{k}={h}" for k, (a, h) in sorted(hashes.items()) if a == applied)
                )

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
        metas = {n.id: d["meta"] for n, d in zip(self.cluster.nodes, dumps, strict=True)}
        self.stats.state_hashes_after_stop = {k: f"{a} {h}" for k, (a, h) in metas.items()}
        self._compare_hashes(metas, "after stop (meta table)")
        self.check_logs()

    def check_logs(self) -> None:
        """Count the lines of every node's log that say an applied entry was truncated, or a fail-stop."""
        for node in self.cluster.nodes:
            text = node.log_text()
            truncations = [x for x in text.splitlines() if "truncating already-applied" in x]
            self.stats.truncation_lines[node.id] = len(truncations)
            self.stats.fail_stop_lines[node.id] = sum(1 for x in text.splitlines() if "fail-stop" in x)
            if truncations:
                self.stats.violations.append(
                    f"{node.id} logged {len(truncations)} 'truncating already-applied' lines,"
                    f" e.g. {truncations[0].strip()}"
                )

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

    def fault_at(self, t: float) -> str:
        """The fault during which, or within a lease (plus 5 s) after which, wall time ``t`` fell."""
        for ep in reversed(self.episodes):
            if ep.start <= t <= (ep.healed or t) + self.lease + 5.0:
                return ep.nemesis
        return "no fault"

    def check_executions(self, runs: list[tuple[Any, ...]]) -> None:
        log = self.cluster.root / "executions.jsonl"
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        self.stats.executions = len(lines)
        state = {(r[0], r[1]): r[3] for r in runs}
        workers = {w.id for w in self.workers}
        self.stats.worker_executions = dict(
            sorted(Counter(x["node"] for x in lines if x["node"] in workers).items())
        )
        per_run = Counter(x["run"] for x in lines)
        self.stats.duplicate_executions = sum(n - 1 for n in per_run.values() if n > 1)
        attempts = Counter((x["run"], x["attempt"]) for x in lines)
        causes: Counter[str] = Counter()
        for x in lines:
            if state.get((x["run"], x["attempt"])) == "LOST":
                self.stats.duplicates_of_lost_attempts += 1
                causes[self.fault_at(float(x.get("t", 0)))] += 1
        self.stats.duplicate_causes = dict(causes)
        repeated = [k for k, n in attempts.items() if n > 1]
        if repeated:
            self.stats.violations.append(
                f"{len(repeated)} attempts executed more than once, e.g. {repeated[0]}"
            )
        unexplained = self.stats.duplicate_executions - self.stats.duplicates_of_lost_attempts
        if unexplained > 0:
            self.stats.violations.append(f"{unexplained} repeated executions are not of LOST attempts")

    async def run(self) -> Stats:
        """Start, load and faults, settle, stop every node, check. SIGINT/SIGTERM/SIGHUP cancel it cleanly."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for sig in signals:
            loop.add_signal_handler(sig, main.cancel)
        background: list[asyncio.Task[None]] = []
        self.cluster.start()
        try:
            self._leader = await self.wait_for_leader()
            background += [asyncio.create_task(self.poll(n)) for n in self.cluster.nodes]
            background.append(asyncio.create_task(self.watch_leader()))
            await self.start_cron_jobs()
            self._deadline = time.monotonic() + self.duration
            faults = asyncio.create_task(self.network_faults() if self.nemeses else self.faults())
            background.append(faults)
            await self.load(faults)
            self._stop_faults.set()
            await faults
            await self.settle()
            await self.stop_cron_jobs()
            await self.quiet()
            await self.workers_back()
        finally:
            self._stop_watch.set()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            for c in [*self._clients.values(), *self._pollers.values()]:
                await c.close()
            if self.network is not None:
                self.network.heal_all()
            await asyncio.to_thread(self.cluster.terminate_all)
            for sig in signals:
                loop.remove_signal_handler(sig)
        self.count_elections_per_heal()
        self.check()
        return self.stats


def _say(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def _dump(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return {
            "jobs": db.execute("SELECT * FROM jobs ORDER BY id").fetchall(),
            "runs": db.execute("SELECT * FROM runs ORDER BY run_id, attempt").fetchall(),
            "occurrences": db.execute("SELECT * FROM occurrences ORDER BY job_id, nominal").fetchall(),
            "events": db.execute(
                "SELECT seq, job_id, type, at, node_id, run_id, attempt FROM events ORDER BY seq"
            ).fetchall(),
            "meta": (int(meta.get("last_applied", 0)), str(meta.get("state_hash", ""))),
        }
    finally:
        db.close()


def _span(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    span = (float(low), float(high or low))
    if not 0 < span[0] <= span[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: give MIN:MAX seconds, 0 < MIN <= MAX")
    return span


def add_parser(sub: Any) -> None:
    """The ``chaos`` subcommand."""
    p = sub.add_parser("chaos", help="kill nodes (and, with --network, cut links) under load, then check")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load and faults (default 60)")
    p.add_argument("--rate", type=float, default=20.0, help="submissions per second (default 20)")
    p.add_argument("--lease", type=float, default=3.0, help="lease timeout of the cluster, seconds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--workers", type=int, default=2, help="worker processes beside the 3 nodes (default 2; 0: none)"
    )
    p.add_argument(
        "--network",
        action="store_true",
        help="each node in its own network namespace; partitions as well as kill -9 (needs root, ip netns)",
    )
    p.add_argument(
        "--hold",
        type=_span,
        default=(3.0, 8.0),
        help="with --network: how long a fault lasts, MIN:MAX s (3:8)",
    )
    p.add_argument(
        "--gap",
        type=_span,
        default=(3.0, 6.0),
        help="with --network: quiet time after a heal, MIN:MAX s (3:6)",
    )
    p.add_argument("--keep", action="store_true", help="keep the cluster's directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_chaos)


def cmd_chaos(args: argparse.Namespace) -> int:
    """Run the harness; exit 1 if an invariant failed, 130 if interrupted."""
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    root = Path(tempfile.mkdtemp(prefix="ordo-chaos-"))
    _say(f"seed {seed}, cluster in {root}")
    network: Network | None = None
    skipped = ""
    if args.network:
        skipped = netfaults.unavailable()
        if skipped:
            _say(f"network nemeses skipped: {skipped}; running the kill -9 faults only")
        else:
            network = Network(3 + args.workers)
    chaos: Chaos | None = None
    try:
        if network is not None:
            network.create()
            last = network.netns(network.size)
            _say(f"network: namespaces {network.netns(1)}..{last}, bridge {network.bridge}")
        chaos = Chaos(
            root,
            args.duration,
            args.rate,
            seed,
            args.lease,
            network=network,
            hold=args.hold,
            gap=args.gap,
            workers=args.workers,
        )
        stats = asyncio.run(chaos.run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say(f"interrupted; cluster directory kept: {root}")
        return 130
    finally:
        # Whatever happened above: no node process and no namespace outlives the harness.
        netfaults.stop_all(chaos.cluster if chaos else None, network)
    stats.network_skipped = skipped
    summary = {"seed": seed, **asdict(stats)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for k, v in summary.items():
            if k != "violations":
                print(f"{k:34} {v}")
        print(f"{'invariants':34} " + ("all hold" if not stats.violations else "VIOLATED"))
        for v in stats.violations:
            print(f"  - {v}")
    if stats.violations or args.keep:
        _say(f"cluster directory kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if stats.violations else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m ordo_node.tools.chaos")
    add_parser(parser.add_subparsers(dest="command", required=True))
    sys.exit(cmd_chaos(parser.parse_args(["chaos", *sys.argv[1:]])))
