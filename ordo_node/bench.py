"""``ordo-node bench``: measure a cluster against the targets of the benchmark issue.

The command starts a local 3-node cluster in a temporary directory (or uses
the one named with ``--address``), runs the selected scenarios with a one-line
progress display on stderr, and prints a table (or, with ``--json``, one JSON
object) with every figure, what it measures, and its target:

- ``submit``: committed jobs per second through unary ``SubmitJob`` from C
  concurrent callers, and through the batch RPC ``SubmitJobs``; the jobs are
  due in 2099, so they never run.
- ``e2e``: N no-op ``echo`` jobs due now, submitted in batches: the time from
  the first submission until the last one has succeeded.
- ``lateness``: N jobs due in the same second: trigger and start lateness.
- ``failover``: jobs due every 100 ms while the leader is killed with SIGKILL:
  how long until triggering resumes, and how many jobs were lost or triggered
  twice (local cluster only).
- ``scale``: M jobs scheduled for the future: submit time, each node's
  resident memory and SQLite size, the restart time of a node, and the cost
  of the timekeeper's two reads (``Queries.next_due``, ``Queries.due_jobs``)
  at cluster start, before and after the M jobs.
- ``limits``: this machine's ceilings in the same run: a bare ``grpc.aio``
  echo server at the same concurrency, and PySyncObj's raw commit rate.

Everything runs on this machine: the benchmark's own client competes with the
nodes for the same cores, and the figures say so.

Usable as ``python -m ordo_node.bench [options]`` as well as through the
``bench`` subcommand (see :func:`add_parser`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import grpc
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from .client import submit_request
from .config import RaftTimings
from .localcluster import LocalCluster as BaseCluster
from .localcluster import LocalNode, free_ports
from .pb import ordo_pb2, ordo_pb2_grpc
from .queries import Queries
from .store import Store
from .timeutil import format_us, now_us

T = TypeVar("T")
U = TypeVar("U")

SCENARIOS = ("submit", "e2e", "lateness", "failover", "scale", "limits")
FAR_FUTURE = "2099-01-01T00:00:00Z"
FAR_FUTURE_US = 4_070_908_800_000_000  # 2099-01-01T00:00:00Z
OPEN_STATES = ("SCHEDULED", "TRIGGERED", "RUNNING")
ECHO_SERVICE = "ordo.bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
POLL = 0.2
READ_IN_FLIGHT = 32
SCALE_IN_FLIGHT = 4
RPC_TIMEOUT = 60.0
QUERY_REPEATS = 200
RSS_TARGET_MB = 500
KILL_FRACTION = 0.3  # failover: the leader dies this far into the span of due times

# Counts of things that went wrong: 0 is the good value, so they are not "figures".
PROBLEM_KEYS = frozenset(
    {"errors", "failed", "lost", "doubled", "missing", "history_mismatches", "submit_overran_ms"}
)


class BenchError(Exception):
    """The benchmark itself could not go on (a node did not start, a wait timed out)."""


# -- sizes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to run, and how big."""

    scenarios: tuple[str, ...]
    address: str | None
    e2e_jobs: int
    lateness_jobs: int
    scale_jobs: int
    concurrency: tuple[int, ...]
    batch: int
    batch_jobs: int
    batch_concurrency: tuple[int, ...]
    submit_seconds: float
    failover_jobs: int
    failover_interval: float
    raw_commands: int
    raw_in_flight: int
    keep: bool
    json: bool
    capacity: int = 64


DEFAULTS: dict[str, Any] = {
    "e2e_jobs": 10_000,
    "lateness_jobs": 10_000,
    "scale_jobs": 100_000,
    "concurrency": (1, 16, 64),
    "batch": 1000,
    "batch_jobs": 20_000,
    "batch_concurrency": (1, 4),
    "submit_seconds": 5.0,
    "failover_jobs": 100,
    "raw_commands": 20_000,
}
TINY: dict[str, Any] = {
    "e2e_jobs": 200,
    "lateness_jobs": 200,
    "scale_jobs": 2_000,
    "concurrency": (1, 4),
    "batch": 100,
    "batch_jobs": 2_000,
    "batch_concurrency": (1, 2),
    "submit_seconds": 1.0,
    "failover_jobs": 20,
    "raw_commands": 2_000,
}


def plan_from_args(args: argparse.Namespace) -> Plan:
    """Options given on the command line win; the rest come from ``--tiny`` or the defaults."""
    base = TINY if args.tiny else DEFAULTS

    def pick(name: str) -> Any:
        given = getattr(args, name)
        return base[name] if given is None else given

    return Plan(
        scenarios=tuple(args.scenarios),
        address=args.address,
        e2e_jobs=pick("e2e_jobs"),
        lateness_jobs=pick("lateness_jobs"),
        scale_jobs=pick("scale_jobs"),
        concurrency=tuple(pick("concurrency")),
        batch=pick("batch"),
        batch_jobs=pick("batch_jobs"),
        batch_concurrency=tuple(pick("batch_concurrency")),
        submit_seconds=pick("submit_seconds"),
        failover_jobs=pick("failover_jobs"),
        failover_interval=0.1,
        raw_commands=pick("raw_commands"),
        raw_in_flight=1000,
        keep=args.keep,
        json=args.json,
        capacity=args.capacity,
    )


# -- progress on stderr ------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (carriage return); plain lines when stderr is not a terminal."""

    WIDTH = 24

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.label = ""
        self._started = 0.0
        self._last_draw = 0.0
        self._drawn = 0

    def start(self, label: str) -> None:
        """Begin a phase."""
        self.label = label
        self._started = time.monotonic()
        self._last_draw = 0.0
        self.update(0.0)

    def update(self, fraction: float, text: str = "") -> None:
        """Redraw the bar (at most ten times a second)."""
        now = time.monotonic()
        if not self.live or (now - self._last_draw < 0.1 and 0 < fraction < 1):
            return
        self._last_draw = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"{self.label:<40} [{bar}] {fraction * 100:3.0f}% {now - self._started:6.1f}s {text}"
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def done(self, summary: str) -> None:
        """End the phase with a one-line summary."""
        elapsed = time.monotonic() - self._started
        line = f"{self.label:<40} {summary} ({elapsed:.1f}s)"
        prefix = "\r" if self.live else ""
        self.stream.write(prefix + line.ljust(self._drawn) + "\n")
        self.stream.flush()
        self._drawn = 0

    def note(self, text: str) -> None:
        """A line of its own."""
        if self._drawn:
            self.stream.write("\n")
            self._drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()


# -- small helpers -------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values_ms: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of millisecond values, rounded."""
    return {
        "p50_ms": round(percentile(values_ms, 50), 2),
        "p99_ms": round(percentile(values_ms, 99), 2),
        "max_ms": round(max(values_ms), 2),
    }


async def poll_until(
    check: Callable[[], Awaitable[T | None]], *, timeout: float, what: str, interval: float = POLL
) -> T:
    """Call ``check`` until it returns something other than None; gRPC errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while True:
        try:
            value = await check()
            if value is not None:
                return value
        except grpc.aio.AioRpcError as e:
            last = f"{e.code().name}: {e.details()}"
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")
        await asyncio.sleep(interval)


async def sleep_until_us(when_us: int) -> None:
    """Wait until the wall clock reaches ``when_us`` (a moment the scenario chose, not a poll)."""
    delay = (when_us - now_us()) / 1e6
    if delay > 0:
        await asyncio.sleep(delay)


async def bounded_map(
    fn: Callable[[T], Awaitable[U]],
    items: Sequence[T],
    limit: int,
    progress: Progress | None = None,
) -> list[U]:
    """``fn`` over ``items`` with at most ``limit`` calls in flight; results in order."""
    results: list[U | None] = [None] * len(items)
    cursor = 0

    async def worker() -> None:
        nonlocal cursor
        while cursor < len(items):
            i = cursor
            cursor += 1
            results[i] = await fn(items[i])
            if progress is not None:
                progress.update(cursor / len(items), f"{cursor}/{len(items)}")

    await asyncio.gather(*(worker() for _ in range(min(limit, len(items)))))
    return [r for r in results if r is not None]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process from /proc/<pid>/status (VmRSS), in MB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def file_mb(*paths: Path) -> float:
    """The total size of the files that exist among ``paths``, in MB."""
    return round(sum(p.stat().st_size for p in paths if p.exists()) / 1e6, 2)


# -- a local cluster -----------------------------------------------------------


@dataclass
class LocalCluster(BaseCluster):
    """The shared local-cluster launcher, plus what the benchmark tracks: nodes it killed on purpose."""

    killed: set[str] = field(default_factory=set)

    @property
    def addresses(self) -> list[str]:  # type: ignore[override]
        return [n.address for n in self.nodes]

    def kill(self, node: LocalNode) -> None:
        """Kill one node on purpose (it does not count as a crash)."""
        self.killed.add(node.id)
        node.kill()

    def restart(self, node: LocalNode) -> None:
        """Start a node that was killed on purpose."""
        node.start()
        self.killed.discard(node.id)

    def check_alive(self) -> None:
        """Raise if a node died that the benchmark did not kill."""
        for n in self.nodes:
            if n.id not in self.killed and not n.alive:
                code = n.proc.returncode if n.proc is not None else None
                tail = "\n".join(n.log_text().splitlines()[-15:])
                raise BenchError(f"{n.id} exited with status {code}; its log ends:\n{tail}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every node, then SIGKILL whatever is still running after ``timeout``."""
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.proc.terminate()
        for n in self.nodes:
            n.terminate(timeout)


# -- talking to the cluster ---------------------------------------------------------


class Target:
    """The cluster under test: its addresses, a channel per address, and the processes if local."""

    def __init__(self, addresses: list[str], cluster: LocalCluster | None) -> None:
        self.addresses = addresses
        self.cluster = cluster
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = grpc.aio.insecure_channel(address)
        return ch

    def jobs(self, address: str) -> Any:
        """A JobService stub on ``address``."""
        return ordo_pb2_grpc.JobServiceStub(self.channel(address))

    async def status(self, address: str) -> Any:
        """GetClusterStatus as ``address`` sees it."""
        stub = ordo_pb2_grpc.ClusterServiceStub(self.channel(address))
        return await stub.GetClusterStatus(ordo_pb2.GetClusterStatusRequest(), timeout=3.0)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    async def _agreed_leader(self, exclude: str) -> str | None:
        """The leader's address if every live local node names it, and it says so itself."""
        assert self.cluster is not None
        self.cluster.check_alive()
        live = [n for n in self.cluster.nodes if n.alive]
        leaders = {(await self.status(n.address)).leader_id for n in live}
        if len(leaders) != 1:
            return None
        (leader_id,) = leaders
        if not leader_id or leader_id == exclude or not self.cluster.node(leader_id).alive:
            return None
        leader = self.cluster.node(leader_id)
        status = await self.status(leader.address)
        me = next((x for x in status.nodes if x.node_id == leader_id), None)
        return leader.address if me is not None and me.role == "leader" else None

    async def _named_leader(self) -> str | None:
        """The leader's address as the first answering address names it."""
        for address in self.addresses:
            try:
                status = await self.status(address)
            except grpc.aio.AioRpcError:
                continue
            for n in status.nodes:
                if n.node_id == status.leader_id and n.role == "leader":
                    return n.grpc_address if n.grpc_address in self.addresses else address
        return None

    async def leader(self, *, exclude: str = "", timeout: float = 30.0) -> str:
        """The address of the leader, once there is one (for a local cluster: one all nodes agree on)."""
        if self.cluster is not None:
            return await poll_until(
                lambda: self._agreed_leader(exclude), timeout=timeout, what="one agreed leader"
            )
        return await poll_until(self._named_leader, timeout=timeout, what="a leader")

    def local_node(self, address: str) -> LocalNode:
        """The local process serving ``address``."""
        assert self.cluster is not None
        return next(n for n in self.cluster.nodes if n.address == address)


# -- driving load -----------------------------------------------------------------


@dataclass
class LoadResult:
    """What a closed loop of callers achieved."""

    concurrency: int
    ok: int
    errors: Counter[str]
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self, unit: str) -> dict[str, Any]:
        lat_ms = [x * 1000 for x in self.latencies] or [0.0]
        return {
            "concurrency": self.concurrency,
            unit: round(self.rate, 1),
            "calls": self.ok,
            "seconds": round(self.seconds, 3),
            "latency_p50_ms": round(percentile(lat_ms, 50), 2),
            "latency_p99_ms": round(percentile(lat_ms, 99), 2),
            "errors": sum(self.errors.values()),
            "error_codes": dict(self.errors),
        }


async def closed_loop(
    make_call: Callable[[grpc.aio.Channel], Callable[[], Awaitable[Any]]],
    address: str,
    concurrency: int,
    seconds: float,
    progress: Progress,
) -> LoadResult:
    """``concurrency`` callers, each with its own channel, calling back to back for ``seconds``.

    Each caller makes one untimed call first (connection set-up). The rate is
    the successful calls divided by the time until the last caller returned.
    """
    channels = [grpc.aio.insecure_channel(address) for _ in range(concurrency)]
    calls = [make_call(ch) for ch in channels]
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    try:
        await asyncio.gather(*(call() for call in calls))
        start = time.perf_counter()
        deadline = start + seconds

        async def caller(call: Callable[[], Awaitable[Any]]) -> None:
            while (t0 := time.perf_counter()) < deadline:
                try:
                    await call()
                except grpc.aio.AioRpcError as e:
                    errors[e.code().name] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                progress.update((t0 - start) / seconds, f"{len(latencies)} calls")

        await asyncio.gather(*(caller(call) for call in calls))
        elapsed = time.perf_counter() - start
    finally:
        for ch in channels:
            await ch.close()
    return LoadResult(concurrency, len(latencies), errors, elapsed, latencies)


@dataclass
class Submitted:
    """Jobs submitted in batches: their ids (in order), the time it took, and the failed calls."""

    ids: list[str]
    seconds: float
    errors: Counter[str]

    @property
    def rate(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else 0.0


def batches_of(requests: Sequence[Any], size: int) -> list[Any]:
    """SubmitJobsRequests of ``size`` jobs each (the last may be smaller)."""
    return [ordo_pb2.SubmitJobsRequest(jobs=requests[i : i + size]) for i in range(0, len(requests), size)]


def same_jobs(request: Any, total: int, size: int) -> list[Any]:
    """``total`` copies of one SubmitJobRequest in SubmitJobsRequests of ``size`` (built once per size)."""
    full = ordo_pb2.SubmitJobsRequest(jobs=[request] * size)
    out = [full] * (total // size)
    if total % size:
        out.append(ordo_pb2.SubmitJobsRequest(jobs=[request] * (total % size)))
    return out


async def submit_batches(stub: Any, batches: Sequence[Any], in_flight: int, progress: Progress) -> Submitted:
    """Send ``batches`` with at most ``in_flight`` SubmitJobs calls at once; failed calls are counted."""
    total = sum(len(b.jobs) for b in batches)
    done = 0
    errors: Counter[str] = Counter()

    async def send(batch: Any) -> list[str]:
        nonlocal done
        try:
            reply = await stub.SubmitJobs(batch, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as e:
            errors[e.code().name] += 1
            return []
        done += len(batch.jobs)
        progress.update(done / total, f"{done}/{total} jobs")
        return list(reply.job_ids)

    start = time.perf_counter()
    results = await bounded_map(send, batches, in_flight)
    elapsed = time.perf_counter() - start
    return Submitted([job_id for ids in results for job_id in ids], elapsed, errors)


async def created_at(stub: Any, job_id: str) -> int:
    """A job's creation time (the submitting node's clock), in microseconds."""
    job = await stub.GetJob(ordo_pb2.GetJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)
    return int(job.created_at.ToMicroseconds())


# -- waiting for jobs ----------------------------------------------------------------


async def open_state(stub: Any, since_us: int) -> str | None:
    """A state among SCHEDULED, TRIGGERED, RUNNING that still holds a job created at or after ``since_us``.

    ListJobs is newest first, so one row per state answers it (an index seek
    on ``jobs(state, created_at, id)``). The states are asked in the order a
    job moves through them, so a job cannot slip past all three checks.
    """
    for state in OPEN_STATES:
        page = await stub.ListJobs(
            ordo_pb2.ListJobsRequest(state=f"JOB_STATE_{state}", page_size=1), timeout=RPC_TIMEOUT
        )
        if page.jobs and page.jobs[0].created_at.ToMicroseconds() >= since_us:
            return state
    return None


@dataclass
class Finished:
    """Jobs created since a moment that ended, and when the last one ended."""

    succeeded: int = 0
    failed: int = 0
    last_update_us: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed


async def finished_since(stub: Any, since_us: int) -> Finished:
    """Count SUCCEEDED and FAILED jobs created at or after ``since_us`` (pages of 1,000, newest first)."""
    out = Finished()
    for state in ("SUCCEEDED", "FAILED"):
        token = ""
        while True:
            page = await stub.ListJobs(
                ordo_pb2.ListJobsRequest(state=f"JOB_STATE_{state}", page_size=1000, page_token=token),
                timeout=RPC_TIMEOUT,
            )
            ours = [j for j in page.jobs if j.created_at.ToMicroseconds() >= since_us]
            if state == "SUCCEEDED":
                out.succeeded += len(ours)
            else:
                out.failed += len(ours)
            for j in ours:
                out.last_update_us = max(out.last_update_us, j.updated_at.ToMicroseconds())
            if len(ours) < len(page.jobs) or not page.next_page_token:
                break
            token = page.next_page_token
    return out


async def wait_finished(
    stub: Any, since_us: int, expected: int, timeout: float, progress: Progress
) -> Finished:
    """Wait until ``expected`` jobs created since ``since_us`` have ended.

    Cheap while waiting (three one-row ListJobs calls per poll); the full
    count by paging through SUCCEEDED and FAILED runs only once nothing is
    open any more.
    """
    start = time.monotonic()

    async def check() -> Finished | None:
        state = await open_state(stub, since_us)
        if state is None:
            fin = await finished_since(stub, since_us)
            if fin.total >= expected:
                return fin
            state = f"{fin.total}/{expected} ended"
        progress.update((time.monotonic() - start) / timeout, f"some job still {state}")
        return None

    return await poll_until(check, timeout=timeout, what=f"{expected} jobs to end")


# -- scenario: submit -------------------------------------------------------------------


def far_future_request() -> Any:
    """A tiny echo job due in 2099: it never runs during the benchmark."""
    return submit_request("echo", {"n": 1}, run_at=FAR_FUTURE)


async def scenario_submit(target: Target, plan: Plan, progress: Progress) -> dict[str, Any]:
    """Committed jobs per second: unary SubmitJob at each concurrency, then SubmitJobs batches."""
    leader = await target.leader()
    request = far_future_request()
    unary = []
    for c in plan.concurrency:
        progress.start(f"submit: unary SubmitJob C={c}")

        def make(ch: grpc.aio.Channel) -> Callable[[], Awaitable[Any]]:
            stub = ordo_pb2_grpc.JobServiceStub(ch)
            return lambda: stub.SubmitJob(request, timeout=RPC_TIMEOUT)

        result = await closed_loop(make, leader, c, plan.submit_seconds, progress)
        progress.done(f"{result.rate:,.0f} jobs/s")
        unary.append(result.as_dict("jobs_per_s"))
    batch = []
    for k in plan.batch_concurrency:
        progress.start(f"submit: SubmitJobs x{plan.batch}, {k} in flight")
        sent = await submit_batches(
            target.jobs(leader), same_jobs(request, plan.batch_jobs, plan.batch), k, progress
        )
        progress.done(f"{sent.rate:,.0f} jobs/s")
        batch.append(
            {
                "in_flight": k,
                "batch": plan.batch,
                "jobs": len(sent.ids),
                "seconds": round(sent.seconds, 3),
                "jobs_per_s": round(sent.rate, 1),
                "errors": sum(sent.errors.values()),
            }
        )
    return {"address": leader, "unary": unary, "batch": batch}


# -- scenario: end to end ---------------------------------------------------------------


async def scenario_e2e(target: Target, plan: Plan, progress: Progress) -> dict[str, Any]:
    """N echo jobs due now: from the first submission until the last success."""
    leader = await target.leader()
    stub = target.jobs(leader)
    n = plan.e2e_jobs
    progress.start(f"e2e: submit {n:,} echo jobs due now")
    start_us = now_us()
    sent = await submit_batches(stub, same_jobs(submit_request("echo", {"n": 1}), n, plan.batch), 1, progress)
    progress.done(f"{len(sent.ids):,} submitted, {sent.rate:,.0f} jobs/s")
    if not sent.ids:
        raise BenchError(f"no e2e job was accepted: {dict(sent.errors)}")
    since = await created_at(stub, sent.ids[0])
    progress.start(f"e2e: wait for {len(sent.ids):,} to succeed")
    fin = await wait_finished(stub, since, len(sent.ids), timeout=120 + n / 50, progress=progress)
    seconds = (fin.last_update_us - start_us) / 1e6
    progress.done(f"{len(sent.ids) / seconds:,.0f} jobs/s")
    return {
        "jobs": len(sent.ids),
        "seconds": round(seconds, 3),
        "jobs_per_s": round(len(sent.ids) / seconds, 1),
        "submit_seconds": round(sent.seconds, 3),
        "succeeded": fin.succeeded,
        "failed": fin.failed,
        "errors": sum(sent.errors.values()),
    }


# -- scenario: lateness -----------------------------------------------------------------


def lateness_of(job: Any) -> tuple[float, float | None]:
    """(trigger lateness, start lateness) of a job in ms, from GetJob.

    The trigger time is the first attempt's ``triggered_at``: the state machine
    writes it from the same command time as the TRIGGERED event. The start is
    the ``started_at`` of the last attempt that started.
    """
    due = job.run_at.ToMicroseconds()
    trigger = (job.runs[0].triggered_at.ToMicroseconds() - due) / 1000
    starts = [r.started_at.ToMicroseconds() for r in job.runs if r.HasField("started_at")]
    return trigger, ((starts[-1] - due) / 1000 if starts else None)


async def history_mismatches(stub: Any, jobs: Sequence[Any]) -> int:
    """How many ``jobs`` have TRIGGERED event times other than [the first run's ``triggered_at``]."""

    async def one(job: Any) -> int:
        reply = await stub.GetJobHistory(
            ordo_pb2.GetJobHistoryRequest(job_id=job.job_id), timeout=RPC_TIMEOUT
        )
        times = [e.time.ToMicroseconds() for e in reply.events if e.type == ordo_pb2.EVENT_TYPE_TRIGGERED]
        return 0 if times == [job.runs[0].triggered_at.ToMicroseconds()] else 1

    return sum(await bounded_map(one, jobs, READ_IN_FLIGHT))


async def scenario_lateness(
    target: Target, plan: Plan, progress: Progress, batch_rate: float | None
) -> dict[str, Any]:
    """N jobs due in the same second: trigger and start lateness, p50/p99/max."""
    leader = await target.leader()
    stub = target.jobs(leader)
    n = plan.lateness_jobs
    lead = max(3.0, 2.0 + 2.0 * n / (batch_rate or 5000.0))
    due_us = (now_us() // 1_000_000 + 1) * 1_000_000 + int(lead * 1e6)
    request = submit_request("echo", {"n": 1}, run_at=format_us(due_us))
    progress.start(f"lateness: submit {n:,} jobs due at one time")
    sent = await submit_batches(stub, same_jobs(request, n, plan.batch), 1, progress)
    overran_ms = max(0.0, (now_us() - due_us) / 1000)
    progress.done(f"{len(sent.ids):,} due in {(due_us - now_us()) / 1e6:.1f}s")
    if not sent.ids:
        raise BenchError(f"no lateness job was accepted: {dict(sent.errors)}")
    since = await created_at(stub, sent.ids[0])
    progress.start("lateness: wait for all to run")
    await wait_finished(stub, since, len(sent.ids), timeout=lead + 120 + n / 50, progress=progress)
    progress.done("all ended")
    progress.start(f"lateness: read {len(sent.ids):,} jobs")

    async def get(job_id: str) -> Any:
        return await stub.GetJob(ordo_pb2.GetJobRequest(job_id=job_id), timeout=RPC_TIMEOUT)

    jobs = await bounded_map(get, sent.ids, READ_IN_FLIGHT, progress)
    pairs = [lateness_of(j) for j in jobs]
    trigger = [t for t, _ in pairs]
    start = [s for _, s in pairs if s is not None]
    checked = jobs[:50]
    mismatches = await history_mismatches(stub, checked)
    progress.done(f"trigger p99 {percentile(trigger, 99):.0f} ms, start p99 {percentile(start, 99):.0f} ms")
    return {
        "jobs": len(jobs),
        "due_in_s": round(lead, 1),
        "trigger": spread(trigger),
        "start": spread(start),
        "missing": len(pairs) - len(start),
        "history_checked": len(checked),
        "history_mismatches": mismatches,
        "submit_overran_ms": round(overran_ms, 1),
        "errors": sum(sent.errors.values()),
    }


# -- scenario: failover ----------------------------------------------------------------


@dataclass
class Triggers:
    """The TRIGGERED event times of one job, and its due time."""

    due_us: int
    times: list[int]


async def triggers_of(stub: Any, job_id: str, due_us: int) -> Triggers:
    """The job's TRIGGERED event times, from GetJobHistory."""
    reply = await stub.GetJobHistory(ordo_pb2.GetJobHistoryRequest(job_id=job_id), timeout=RPC_TIMEOUT)
    return Triggers(
        due_us, [e.time.ToMicroseconds() for e in reply.events if e.type == ordo_pb2.EVENT_TYPE_TRIGGERED]
    )


async def restart(target: Target, node: LocalNode, timeout: float = 120.0) -> tuple[float, float]:
    """Start a killed ``node``: seconds until it answers, and until it has applied what the leader had.

    The leader is looked up just before the start (leadership may have moved
    since the node was killed); "caught up" is its applied index reached,
    with a leader known.
    """
    cluster = target.cluster
    assert cluster is not None
    goal = int((await target.status(await target.leader())).applied_index)
    t0 = time.monotonic()
    cluster.restart(node)

    async def answers() -> bool | None:
        cluster.check_alive()
        await target.status(node.address)
        return True

    await poll_until(answers, timeout=timeout, what=f"{node.id} to answer", interval=0.05)
    serving = time.monotonic() - t0

    async def caught_up() -> bool | None:
        st = await target.status(node.address)
        return True if st.applied_index >= goal and st.leader_id else None

    await poll_until(
        caught_up, timeout=timeout, what=f"{node.id} to reach applied index {goal}", interval=0.05
    )
    return serving, time.monotonic() - t0


def failover_figures(triggers: list[Triggers], kill_us: int) -> dict[str, Any]:
    """Lost, doubled, and how long after the kill triggering resumed."""
    after = [t for tr in triggers if tr.due_us > kill_us for t in tr.times if t > kill_us]
    late_after = [(tr.times[0] - tr.due_us) / 1000 for tr in triggers if tr.due_us > kill_us and tr.times]
    return {
        "jobs": len(triggers),
        "due_after_kill": sum(1 for tr in triggers if tr.due_us > kill_us),
        "lost": sum(1 for tr in triggers if not tr.times),
        "doubled": sum(1 for tr in triggers if len(tr.times) > 1),
        "resume_s": round((min(after) - kill_us) / 1e6, 3) if after else None,
        "lateness_after_kill": spread(late_after) if late_after else None,
    }


async def scenario_failover(target: Target, plan: Plan, progress: Progress) -> dict[str, Any]:
    """Jobs due every 100 ms; SIGKILL the leader part-way; count lost and doubled triggers."""
    cluster = target.cluster
    assert cluster is not None
    leader = await target.leader()
    stub = target.jobs(leader)
    n, step_us = plan.failover_jobs, int(plan.failover_interval * 1e6)
    first_due = now_us() + 2_000_000
    dues = [first_due + i * step_us for i in range(n)]
    requests = [submit_request("echo", {"i": i}, run_at=format_us(d)) for i, d in enumerate(dues)]
    progress.start(f"failover: submit {n} jobs, one per {step_us // 1000} ms")
    sent = await submit_batches(stub, batches_of(requests, plan.batch), 1, progress)
    if len(sent.ids) != n:
        raise BenchError(f"failover: {n - len(sent.ids)} jobs not accepted: {dict(sent.errors)}")
    since = await created_at(stub, sent.ids[0])
    kill_at = first_due + int(n * step_us * KILL_FRACTION)
    progress.done(f"leader killed in {(kill_at - now_us()) / 1e6:.1f}s")
    await sleep_until_us(kill_at)
    victim = target.local_node(await target.leader(timeout=5))
    progress.start(f"failover: SIGKILL {victim.id} (leader)")
    kill_us = now_us()
    t_kill = time.monotonic()
    cluster.kill(victim)
    new_leader = await target.leader(exclude=victim.id)
    election_s = time.monotonic() - t_kill
    new_stub = target.jobs(new_leader)

    async def all_triggered() -> bool | None:
        if now_us() < dues[-1]:
            return None
        return await _none_scheduled_since(new_stub, since)

    await poll_until(all_triggered, timeout=(dues[-1] - now_us()) / 1e6 + 30, what="every job triggered")
    progress.done(f"new leader {target.local_node(new_leader).id} after {election_s:.2f}s")
    progress.start(f"failover: restart {victim.id}")
    serving, rejoined = await restart(target, victim)
    triggers = await bounded_map(
        lambda pair: triggers_of(new_stub, pair[0], pair[1]),
        list(zip(sent.ids, dues, strict=True)),
        READ_IN_FLIGHT,
    )
    out = failover_figures(triggers, kill_us)
    progress.done(f"resumed after {out['resume_s']}s, lost {out['lost']}, doubled {out['doubled']}")
    return {
        **out,
        "killed": victim.id,
        "new_leader": target.local_node(new_leader).id,
        "leader_seen_s": round(election_s, 3),
        "restart_serving_s": round(serving, 3),
        "restart_caught_up_s": round(rejoined, 3),
    }


async def _none_scheduled_since(stub: Any, since_us: int) -> bool | None:
    """True when no job created at or after ``since_us`` is still SCHEDULED."""
    page = await stub.ListJobs(
        ordo_pb2.ListJobsRequest(state="JOB_STATE_SCHEDULED", page_size=1), timeout=RPC_TIMEOUT
    )
    if page.jobs and page.jobs[0].created_at.ToMicroseconds() >= since_us:
        return None
    return True


# -- scenario: scale ---------------------------------------------------------------------


async def query_costs(db_path: Path) -> dict[str, Any]:
    """The timekeeper's own two reads on a node's state.db: median time, and the plan SQLite chose.

    Calls ``Queries.next_due()`` and ``Queries.due_jobs(now, 2000)`` (what the
    timekeeper runs on each wake-up) on a read connection of their own. The
    SQL they send is captured once on another connection (a trace callback)
    and explained read-only.
    """
    out: dict[str, Any] = {"scheduled_jobs": _scheduled_count(db_path)}
    for name, sql in (await _timekeeper_sql(db_path)).items():
        out[f"{name}_sql"] = sql
        out[f"{name}_plan"] = _plan(db_path, sql) if sql else ""
    queries = Queries(db_path)
    await queries.open()
    try:
        for name, call in _timekeeper_calls(queries).items():
            times = []
            for _ in range(QUERY_REPEATS):
                t0 = time.perf_counter()
                await call()
                times.append(time.perf_counter() - t0)
            out[f"{name}_us"] = round(statistics.median(times) * 1e6, 1)
    finally:
        await queries.close()
    return out


def _timekeeper_calls(queries: Queries) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {"next_due": queries.next_due, "due_batch": lambda: queries.due_jobs(now_us(), 2000)}


async def _timekeeper_sql(db_path: Path) -> dict[str, str]:
    """The last SQL statement each timekeeper read sends, parameters bound."""
    queries = Queries(db_path)
    await queries.open()
    sent: list[str] = []
    try:
        await queries.db.set_trace_callback(sent.append)
        out = {}
        for name, call in _timekeeper_calls(queries).items():
            sent.clear()
            await call()
            out[name] = sent[-1] if sent else ""
        return out
    finally:
        await queries.close()


def _scheduled_count(db_path: Path) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'SCHEDULED'").fetchone()[0])
    finally:
        db.close()


def _plan(db_path: Path, sql: str) -> str:
    """SQLite's query plan for ``sql`` (parameters already bound), one line."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return "; ".join(str(r[-1]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
    finally:
        db.close()


def _mb(n: int) -> float | None:
    return round(n / 1e6, 1) if n else None


def node_sizes(cluster: LocalCluster) -> dict[str, Any]:
    """Each node's resident memory, SQLite size (state.db + WAL) and Raft journal size."""
    return {
        n.id: {
            "rss_mb": _mb(n.rss_bytes()),
            "sqlite_mb": file_mb(n.data_dir / "state.db", n.data_dir / "state.db-wal"),
            "journal_mb": file_mb(*n.data_dir.glob("raft.journal*")),
        }
        for n in cluster.nodes
    }


def scale_requests(m: int) -> list[Any]:
    """``m`` tiny echo jobs due one second apart from 2099 on: scheduled, never due in the run."""
    template = far_future_request()
    out = []
    for i in range(m):
        req = ordo_pb2.SubmitJobRequest()
        req.CopyFrom(template)
        req.run_at = format_us(FAR_FUTURE_US + i * 1_000_000)
        out.append(req)
    return out


async def restart_follower(target: Target, batch: int, progress: Progress) -> dict[str, Any]:
    """SIGKILL a follower, commit one batch without it, start it: time until it serves and catches up."""
    cluster = target.cluster
    assert cluster is not None
    leader = await target.leader()
    victim = next(n for n in cluster.nodes if n.address != leader and n.alive)
    cluster.kill(victim)
    await submit_batches(target.jobs(leader), same_jobs(far_future_request(), batch, batch), 1, progress)
    serving, caught_up = await restart(target, victim)
    return {
        "node": victim.id,
        "serving_s": round(serving, 3),
        "caught_up_s": round(caught_up, 3),
        "rss_after_restart_mb": _mb(victim.rss_bytes()),
    }


async def leader_query_costs(target: Target) -> dict[str, Any] | None:
    """:func:`query_costs` on the leader's state.db (None without local processes)."""
    if target.cluster is None:
        return None
    return await query_costs(target.local_node(await target.leader()).data_dir / "state.db")


async def scenario_scale(
    target: Target, plan: Plan, progress: Progress, baseline: dict[str, Any] | None
) -> dict[str, Any]:
    """M future jobs: submit time, memory, disk, restart time, timekeeper query cost before and after.

    ``baseline`` is the query cost measured when the cluster had just started.
    """
    leader = await target.leader()
    cluster = target.cluster
    local = cluster is not None
    db = target.local_node(leader).data_dir / "state.db" if local else None
    before = await query_costs(db) if db else None
    sizes_before = node_sizes(cluster) if cluster else None
    m = plan.scale_jobs
    progress.start(f"scale: submit {m:,} future jobs")
    sent = await submit_batches(
        target.jobs(leader), batches_of(scale_requests(m), plan.batch), SCALE_IN_FLIGHT, progress
    )
    progress.done(f"{sent.rate:,.0f} jobs/s")
    out: dict[str, Any] = {
        "jobs": len(sent.ids),
        "submit_seconds": round(sent.seconds, 3),
        "submit_jobs_per_s": round(sent.rate, 1),
        "in_flight": SCALE_IN_FLIGHT,
        "errors": sum(sent.errors.values()),
    }
    if not local or db is None or cluster is None:
        out["note"] = "with --address: memory, SQLite size, restart and query cost need the local processes"
        return out
    progress.start("scale: sizes, query cost, restart")
    out["nodes_before"] = sizes_before
    out["nodes"] = node_sizes(cluster)
    out["query"] = {"cluster_start": baseline, "before": before, "after": await query_costs(db)}
    out["restart"] = await restart_follower(target, plan.batch, progress)
    progress.done(f"restart caught up in {out['restart']['caught_up_s']}s")
    progress.start("scale: snapshot of the leader's database")
    out["snapshot"] = await asyncio.to_thread(snapshot_cost, db, Path(tempfile.mkdtemp(dir=cluster.root)))
    progress.done(f"{out['snapshot']['size_mb']} MB")
    return out


def snapshot_cost(db: Path, work: Path) -> dict[str, Any]:
    """Size and time of a Raft snapshot of ``db``, and of restoring it on an empty node.

    The same code the engine calls (Store.snapshot, Store.restore), on a copy
    of the leader's database taken with SQLite's backup API.
    """
    copy = work / "state.db"
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    store = Store(copy)
    snap = work / "raft.snapshot"
    t0 = time.perf_counter()
    store.snapshot(str(snap), ("entry", "entry", "cluster"))
    written = time.perf_counter() - t0
    store.close()
    fresh = Store(work / "fresh" / "state.db")
    t0 = time.perf_counter()
    fresh.restore(str(snap))
    restored = time.perf_counter() - t0
    jobs = fresh._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    fresh.close()
    return {
        "size_mb": round(snap.stat().st_size / 1e6, 1),
        "write_s": round(written, 2),
        "restore_s": round(restored, 2),
        "jobs": jobs,
    }


# -- scenario: limits of this machine ----------------------------------------------------


class _Counter(SyncObj):  # type: ignore[misc]
    """The trivial replicated state machine of the raw PySyncObj measurement."""

    def __init__(self, self_address: str, partners: list[str], conf: SyncObjConf) -> None:
        self.value = 0
        super().__init__(self_address, partners, conf)

    @replicated  # type: ignore[untyped-decorator]
    def incr(self, n: int) -> int:
        self.value += n
        return self.value


def _drive(obj: _Counter, commands: int, in_flight: int) -> dict[str, Any]:
    """Commit ``commands`` increments with at most ``in_flight`` waiting for their callback."""
    slots = threading.Semaphore(in_flight)
    finished = threading.Event()
    outcomes: Counter[str] = Counter()

    def done(result: Any, reason: int) -> None:  # the tick thread
        outcomes["ok" if reason == FAIL_REASON.SUCCESS else "failed"] += 1
        slots.release()
        if outcomes.total() == commands:
            finished.set()

    start = time.perf_counter()
    for _ in range(commands):
        slots.acquire()
        obj.incr(1, callback=done)
    finished.wait(300)
    seconds = time.perf_counter() - start
    return {"commands": commands, "commits": outcomes["ok"], "errors": outcomes["failed"], "seconds": seconds}


def raw_raft_node(spec: str) -> None:
    """One member of the raw PySyncObj cluster (run in its own process by :func:`raw_commit_rate`).

    It waits for a leader; the leader commits the commands and prints the
    result as one JSON line, the others print ``{"role": "follower"}``. Each
    then serves until its stdin closes or it is killed.
    """
    s = json.loads(spec)
    t = RaftTimings()
    conf = SyncObjConf(
        password=s["secret"],
        autoTick=True,
        appendEntriesUseBatch=False,
        commandsWaitLeader=False,
        raftMinTimeout=t.election_timeout_min,
        raftMaxTimeout=t.election_timeout_max,
        appendEntriesPeriod=t.heartbeat_interval,
        leaderFallbackTimeout=t.leader_fallback_timeout,
        connectionRetryTime=1.0,
        journalFile=s["journal"],
    )
    addresses = [f"127.0.0.1:{p}" for p in s["ports"]]
    me = addresses[s["index"]]
    obj = _Counter(me, [a for a in addresses if a != me], conf)
    deadline = time.monotonic() + 30
    while obj._getLeader() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling PySyncObj, which offers no wait for a leader
    if obj._isLeader():
        print(json.dumps(_drive(obj, s["commands"], s["in_flight"])), flush=True)
    else:
        print(json.dumps({"role": "follower" if obj._getLeader() else "no leader"}), flush=True)
    sys.stdin.read()
    obj.destroy()


def serve_echo(port: int) -> None:
    """A bare grpc.aio echo server on 127.0.0.1:``port`` (bytes in, the same bytes out), until killed."""

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def serve() -> None:
        handler = grpc.method_handlers_generic_handler(
            ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(serve())


def python_child(code: str, arg: str, log: Path) -> subprocess.Popen[str]:
    """``python -c code arg`` with stdin and stdout piped, stderr to ``log``."""
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", code, arg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


async def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line the child prints (empty if it exits first)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    try:
        return await asyncio.wait_for(asyncio.to_thread(stdout.readline), timeout)
    except TimeoutError:
        raise BenchError(f"a child process (pid {proc.pid}) printed nothing in {timeout:.0f}s") from None


def kill_all(procs: Sequence[subprocess.Popen[str]]) -> None:
    """SIGKILL and reap every child still running."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


async def echo_limits(plan: Plan, progress: Progress, root: Path) -> list[dict[str, Any]]:
    """Calls per second of a bare grpc.aio unary echo at each concurrency, server in its own process."""
    port = free_ports(1)[0]
    code = "import sys; from ordo_node.bench import serve_echo; serve_echo(int(sys.argv[1]))"
    proc = python_child(code, str(port), root / "echo-server.log")
    try:
        if (await first_line(proc, 30)).strip() != "ready":
            raise BenchError(f"the echo server did not start; see {root / 'echo-server.log'}")
        payload = far_future_request().SerializeToString()  # the size of a SubmitJob request
        results = []
        for c in plan.concurrency:
            progress.start(f"limits: bare gRPC echo C={c}")

            def make(ch: grpc.aio.Channel) -> Callable[[], Awaitable[Any]]:
                call = ch.unary_unary(ECHO_METHOD)
                return lambda: call(payload, timeout=RPC_TIMEOUT)

            result = await closed_loop(make, f"127.0.0.1:{port}", c, plan.submit_seconds, progress)
            progress.done(f"{result.rate:,.0f} calls/s")
            results.append(result.as_dict("calls_per_s"))
        return results
    finally:
        kill_all([proc])


async def raw_commit_rate(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """PySyncObj's commit rate for small commands: three member processes, the leader drives."""
    ports = free_ports(3)
    secret = secrets.token_urlsafe(24)
    code = "import sys; from ordo_node.bench import raw_raft_node; raw_raft_node(sys.argv[1])"
    procs: list[subprocess.Popen[str]] = []
    progress.start(f"limits: PySyncObj raw commits x{plan.raw_commands:,}")
    try:
        for i in range(3):
            spec = {
                "index": i,
                "ports": ports,
                "secret": secret,
                "commands": plan.raw_commands,
                "in_flight": plan.raw_in_flight,
                "journal": str(root / f"raw{i}.journal"),
            }
            procs.append(python_child(code, json.dumps(spec), root / f"raw{i}.log"))
        lines = await asyncio.gather(*(first_line(p, 60 + plan.raw_commands / 200) for p in procs))
        drivers = [r for r in (json.loads(x) for x in lines if x.strip()) if "commits" in r]
        if len(drivers) != 1:
            raise BenchError(f"raw PySyncObj cluster: expected one leader to drive, got {lines}")
        out: dict[str, Any] = drivers[0]
        out["commits_per_s"] = round(out["commits"] / out["seconds"], 1)
        out["seconds"] = round(out["seconds"], 3)
        out["in_flight"] = plan.raw_in_flight
        progress.done(f"{out['commits_per_s']:,.0f} commits/s")
        return out
    finally:
        kill_all(procs)


async def scenario_limits(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """This machine's ceilings: bare gRPC echo and raw PySyncObj commits."""
    return {
        "echo": await echo_limits(plan, progress, root),
        "raw_commit": await raw_commit_rate(plan, progress, root),
    }


# -- the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its target and whether it is met, and what it measures."""

    scenario: str
    figure: str
    value: str
    measures: str
    target: str = ""
    met: bool | None = None
    number: float | None = None

    @property
    def status(self) -> str:
        if not self.target:
            return ""
        return {True: "met", False: "NOT MET", None: "n/a"}[self.met]


def _ms(d: dict[str, float]) -> str:
    return f"p50 {d['p50_ms']:,.1f} / p99 {d['p99_ms']:,.1f} / max {d['max_ms']:,.1f} ms"


def rows_limits(lim: dict[str, Any], plan: Plan) -> list[Row]:
    """The machine's ceilings."""
    rows = [
        Row(
            "limits",
            f"bare gRPC echo C={e['concurrency']}",
            f"{e['calls_per_s']:,.0f} calls/s (p50 {e['latency_p50_ms']} ms)",
            f"grpc.aio unary echo of {len(far_future_request().SerializeToString())} bytes, server in its"
            f" own process, loopback, C callers back to back for {plan.submit_seconds:g}s",
            number=e["calls_per_s"],
        )
        for e in lim.get("echo", [])
    ]
    raw = lim.get("raw_commit")
    if raw:
        rows.append(
            Row(
                "limits",
                "PySyncObj raw commit rate",
                f"{raw['commits_per_s']:,.0f} commits/s",
                f"3 PySyncObj processes (appendEntriesUseBatch=False, password, journal file);"
                f" {raw['commands']:,} one-int commands, <= {raw['in_flight']} in flight, counted at the"
                " leader's callback",
                number=raw["commits_per_s"],
            )
        )
    return rows


def rows_submit(sub: dict[str, Any], lim: dict[str, Any], plan: Plan) -> list[Row]:
    """Unary and batch submission, and unary against the bare echo."""
    echo = {e["concurrency"]: e["calls_per_s"] for e in lim.get("echo", [])}
    rows = []
    for u in sub["unary"]:
        c = u["concurrency"]
        rows.append(
            Row(
                "submit",
                f"unary SubmitJob C={c}",
                f"{u['jobs_per_s']:,.0f} jobs/s (p50 {u['latency_p50_ms']} ms, p99 {u['latency_p99_ms']} ms)"
                + (f", {u['errors']} errors" if u["errors"] else ""),
                f"jobs committed per second, C callers to the leader for {plan.submit_seconds:g}s;"
                " each call one Raft command",
                number=u["jobs_per_s"],
            )
        )
        ratio = u["jobs_per_s"] / echo[c] * 100 if echo.get(c) else None
        rows.append(
            Row(
                "submit",
                f"  unary / bare echo, C={c}",
                f"{ratio:.1f}%" if ratio is not None else "n/a (no limits run)",
                "unary SubmitJob rate over the bare gRPC echo rate at the same C",
                ">= 60%",
                None if ratio is None else ratio >= 60,
                ratio,
            )
        )
    for b in sub["batch"]:
        rows.append(
            Row(
                "submit",
                f"SubmitJobs x{b['batch']:,}, {b['in_flight']} in flight",
                f"{b['jobs_per_s']:,.0f} jobs/s" + (f", {b['errors']} errors" if b["errors"] else ""),
                f"{b['jobs']:,} jobs committed, one Raft command per call, to the leader",
                ">= 20,000 jobs/s",
                b["jobs_per_s"] >= 20_000,
                b["jobs_per_s"],
            )
        )
    return rows


def rows_e2e(e2e: dict[str, Any], lim: dict[str, Any], plan: Plan) -> list[Row]:
    """End to end, and against the raw commit rate."""
    raw = lim.get("raw_commit", {}).get("commits_per_s")
    ratio = e2e["jobs_per_s"] / raw * 100 if raw else None
    return [
        Row(
            "e2e",
            f"end to end, {e2e['jobs']:,} echo jobs due now",
            f"{e2e['jobs_per_s']:,.0f} jobs/s ({e2e['seconds']:.1f} s; {e2e['succeeded']:,} succeeded)",
            f"from the first SubmitJobs call (x{plan.batch:,}) to the last job's SUCCEEDED time"
            f" (its updated_at); 3 executors of capacity {plan.capacity}",
            ">= 4,000 jobs/s",
            e2e["jobs_per_s"] >= 4000,
            e2e["jobs_per_s"],
        ),
        Row(
            "e2e",
            "  end to end / raw PySyncObj commits",
            f"{ratio:.1f}%" if ratio is not None else "n/a (no limits run)",
            "jobs/s end to end over raw commits/s; each job takes several (batched) Raft commands",
            number=ratio,
        ),
    ]


def rows_lateness(lat: dict[str, Any]) -> list[Row]:
    """Trigger and start lateness."""
    rows = [
        Row(
            "lateness",
            f"trigger lateness, {lat['jobs']:,} jobs due at once",
            _ms(lat["trigger"]),
            "TRIGGERED time minus runAt (first run's triggered_at, from GetJob; checked against"
            f" GetJobHistory on {lat['history_checked']} jobs: {lat['history_mismatches']} differ)",
            "p99 <= 100 ms",
            lat["trigger"]["p99_ms"] <= 100,
            lat["trigger"]["p99_ms"],
        ),
        Row(
            "lateness",
            "start lateness",
            _ms(lat["start"]),
            "the run's started_at (executor clock) minus runAt",
            "p99 <= 1 s",
            lat["start"]["p99_ms"] <= 1000,
            lat["start"]["p99_ms"],
        ),
    ]
    if lat["submit_overran_ms"] > 0:
        rows.append(
            Row(
                "lateness",
                "  WARNING submission overran",
                f"{lat['submit_overran_ms']:,.0f} ms",
                "the last batch committed after the due time: lateness includes submission",
            )
        )
    return rows


def rows_failover(fo: dict[str, Any]) -> list[Row]:
    """Failover: resume time, lost and doubled."""
    resume = fo["resume_s"]
    return [
        Row(
            "failover",
            f"resume after SIGKILL of leader {fo['killed']}",
            f"{resume:.2f} s" if resume is not None else "n/a",
            f"first TRIGGERED time after the kill of a job due after it, minus the kill time;"
            f" {fo['jobs']} jobs due every 100 ms, {fo['due_after_kill']} due after the kill",
            "<= 3 s",
            None if resume is None else resume <= 3,
            resume,
        ),
        Row(
            "failover",
            "  jobs lost",
            str(fo["lost"]),
            "jobs with no TRIGGERED event",
            "0",
            fo["lost"] == 0,
            fo["lost"],
        ),
        Row(
            "failover",
            "  jobs triggered twice",
            str(fo["doubled"]),
            "jobs with more than one TRIGGERED event",
            "0",
            fo["doubled"] == 0,
            fo["doubled"],
        ),
        Row(
            "failover",
            "  new leader agreed after",
            f"{fo['leader_seen_s']:.2f} s",
            f"kill until every live node names {fo['new_leader']} (polled every 0.2 s)",
        ),
        Row(
            "failover",
            f"  {fo['killed']} restarted, caught up after",
            f"{fo['restart_caught_up_s']:.2f} s",
            "start until its applied index reaches the leader's",
        ),
    ]


def rows_scale(sc: dict[str, Any]) -> list[Row]:
    """Scale: submit time, memory, disk, restart, query cost."""
    rows = [
        Row(
            "scale",
            f"submit {sc['jobs']:,} future jobs",
            f"{sc['submit_seconds']:.1f} s ({sc['submit_jobs_per_s']:,.0f} jobs/s)",
            f"SubmitJobs batches, {sc['in_flight']} in flight, to the leader",
            number=sc["submit_seconds"],
        )
    ]
    if "nodes" not in sc:
        rows.append(Row("scale", "  memory, disk, restart, query cost", "n/a", sc.get("note", "")))
        return rows
    nodes, before = sc["nodes"], sc["nodes_before"]
    rss = [v["rss_mb"] for v in nodes.values() if v["rss_mb"] is not None]
    full = sc["jobs"] >= 1_000_000
    rows += [
        Row(
            "scale",
            "  resident memory per node",
            " / ".join(f"{k} {v['rss_mb']} MB" for k, v in nodes.items()),
            "VmRSS after the submissions (before: "
            + " / ".join(f"{v['rss_mb']} MB" for v in before.values())
            + ")",
            f"<= {RSS_TARGET_MB} MB at 1M jobs",
            (max(rss) <= RSS_TARGET_MB) if full and rss else None,
            max(rss) if rss else None,
        ),
        Row(
            "scale",
            "  SQLite per node",
            " / ".join(f"{v['sqlite_mb']} MB" for v in nodes.values()),
            "state.db + state.db-wal (Raft journal: "
            + " / ".join(f"{v['journal_mb']} MB" for v in nodes.values())
            + ")",
        ),
        Row(
            "scale",
            f"  snapshot of {sc['snapshot']['jobs']:,} jobs",
            f"{sc['snapshot']['size_mb']} MB, written in {sc['snapshot']['write_s']:.2f} s,"
            f" restored in {sc['snapshot']['restore_s']:.2f} s",
            "Store.snapshot (a SQLite backup, on the tick thread) and Store.restore on an empty node,"
            " on a copy of the leader's database",
        ),
        Row(
            "scale",
            f"  restart {sc['restart']['node']}",
            f"serving {sc['restart']['serving_s']:.2f} s, caught up {sc['restart']['caught_up_s']:.2f} s",
            "SIGKILL a follower, commit one batch without it, start it: until it answers, and until its"
            " applied index reaches the leader's",
        ),
    ]
    points = [q for q in sc["query"].values() if q is not None]
    for name, what in (("next_due", "next_due()"), ("due_batch", "due_jobs(now, 2000)")):
        rows.append(
            Row(
                "scale",
                f"  timekeeper Queries.{what}",
                " -> ".join(f"{q[name + '_us']:,.0f} us at {q['scheduled_jobs']:,}" for q in points)
                + " scheduled",
                f"median of {QUERY_REPEATS} calls on a read connection to the leader's state.db, at"
                f" cluster start, before and after the M jobs; plan: {points[-1][name + '_plan']}",
            )
        )
    return rows


def build_rows(report: dict[str, Any], plan: Plan) -> list[Row]:
    """Every row of the table, scenario by scenario; skipped or failed scenarios get one row."""
    lim = report.get("limits") or {}
    lim = lim if "error" not in lim else {}
    makers: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
        "limits": lambda r: rows_limits(r, plan),
        "submit": lambda r: rows_submit(r, lim, plan),
        "e2e": lambda r: rows_e2e(r, lim, plan),
        "lateness": rows_lateness,
        "failover": rows_failover,
        "scale": rows_scale,
    }
    rows: list[Row] = []
    for name in SCENARIOS:
        result = report.get(name)
        if result is None:
            continue
        if "error" in result:
            rows.append(Row(name, "FAILED", "-", result["error"].splitlines()[0]))
        elif "skipped" in result:
            rows.append(Row(name, "skipped", "-", result["skipped"]))
        else:
            rows += makers[name](result)
    return rows


def targets_of(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows that carry a target, for the JSON output."""
    return [
        {
            "scenario": r.scenario,
            "figure": r.figure.strip(),
            "value": r.number,
            "target": r.target,
            "met": r.met,
        }
        for r in rows
        if r.target
    ]


def print_rows(rows: list[Row], out: IO[str]) -> None:
    """The table, columns aligned; the last column is not padded."""
    cells = [["SCENARIO", "FIGURE", "VALUE", "TARGET", "MET", "WHAT IT MEASURES"]]
    cells += [[r.scenario, r.figure, r.value, r.target, r.status, r.measures] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(5)]
    for row in cells:
        print("  ".join(x.ljust(w) for x, w in zip(row[:5], widths, strict=True)) + "  " + row[5], file=out)


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
        "lateness": lambda: scenario_lateness(target, plan, progress, batch_rate()),
        "failover": failover,
        "scale": lambda: scenario_scale(target, plan, progress, baseline),
    }


def make_target(plan: Plan, root: Path) -> Target:
    """The cluster to measure: ``--address``, or three local processes started here."""
    if plan.address:
        return Target([a.strip() for a in plan.address.split(",") if a.strip()], None)
    cluster = LocalCluster(root / "cluster", capacity=plan.capacity)
    try:
        cluster.start()
    except OSError:
        cluster.stop()
        raise
    return Target(cluster.addresses, cluster)


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
            runs = cluster_runs(target, plan, report, progress, baseline)
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
    p.add_argument(
        "--json", action="store_true", help="print one JSON object with every figure, nothing else"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, data, logs)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, for CI: well under a minute")
    p.set_defaults(func=cmd_bench)


def main(argv: list[str] | None = None) -> int:
    """``python -m ordo_node.bench [options]``: the same as ``ordo-node bench [options]``."""
    parser = argparse.ArgumentParser(prog="python -m ordo_node.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
