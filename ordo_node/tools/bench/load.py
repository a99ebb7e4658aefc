"""Helpers, the local cluster, the client side and the load drivers of the benchmark."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ...pb import ordo_pb2, ordo_pb2_grpc
from ...timeutil import now_us
from ..localcluster import LocalCluster as BaseCluster
from ..localcluster import LocalNode, LocalProcess
from .plan import OPEN_STATES, POLL, RPC_TIMEOUT, BenchError, Plan, Progress, T, U

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

    def kill(self, node: LocalProcess) -> None:
        """Kill one node or worker on purpose (it does not count as a crash)."""
        self.killed.add(node.id)
        node.kill()

    def restart(self, node: LocalProcess) -> None:
        """Start a node or worker that was killed on purpose."""
        node.start()
        self.killed.discard(node.id)

    def check_alive(self) -> None:
        """Raise if a node or a worker died that the benchmark did not kill."""
        for n in self.processes():
            if n.id not in self.killed and not n.alive:
                code = n.proc.returncode if n.proc is not None else None
                tail = "\n".join(n.log_text().splitlines()[-15:])
                raise BenchError(f"{n.id} exited with status {code}; its log ends:\n{tail}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every worker and node, then SIGKILL whatever is still running after ``timeout``."""
        self.terminate_all(timeout)


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

    async def workers_connected(self, count: int, timeout: float = 60.0) -> int:
        """Wait until the leader has at least ``count`` workers connected to it; how many it has."""

        async def check() -> int | None:
            status = await self.status(await self.leader())
            on = sum(1 for w in status.workers if w.connected_to and w.connected_to == status.leader_id)
            return on if on >= count else None

        return await poll_until(check, timeout=timeout, what=f"{count} workers connected to the leader")

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
    stop: Callable[[], bool] | None = None,
) -> LoadResult:
    """``concurrency`` callers, each with its own channel, calling back to back for ``seconds``
    (or until ``stop()`` is true, if sooner).

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
            while (t0 := time.perf_counter()) < deadline and not (stop is not None and stop()):
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


async def open_state(stub: Any, since_us: int, job_type: str = "") -> str | None:
    """A state among SCHEDULED, TRIGGERED, RUNNING that still holds a job created at or after ``since_us``
    (of ``job_type`` only, if given).

    ListJobs is newest first, so one row per state answers it (an index seek
    on ``jobs(state)``, newest first by rowid). The states are asked in the order a
    job moves through them, so a job cannot slip past all three checks.
    """
    for state in OPEN_STATES:
        page = await stub.ListJobs(
            ordo_pb2.ListJobsRequest(state=f"JOB_STATE_{state}", page_size=1, type=job_type),
            timeout=RPC_TIMEOUT,
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


async def finished_since(stub: Any, since_us: int, job_type: str = "") -> Finished:
    """Count SUCCEEDED and FAILED jobs created at or after ``since_us`` (of ``job_type`` only, if given;
    pages of 1,000, newest first)."""
    out = Finished()
    for state in ("SUCCEEDED", "FAILED"):
        token = ""
        while True:
            page = await stub.ListJobs(
                ordo_pb2.ListJobsRequest(
                    state=f"JOB_STATE_{state}", page_size=1000, page_token=token, type=job_type
                ),
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
    stub: Any,
    since_us: int,
    expected: int,
    timeout: float,
    progress: Progress,
    on_idle: Callable[[], Awaitable[None]] | None = None,
    job_type: str = "",
) -> Finished:
    """Wait until ``expected`` jobs created since ``since_us`` (of ``job_type`` only, if given) have ended.

    Cheap while waiting (three one-row ListJobs calls per poll); the full
    count by paging through SUCCEEDED and FAILED runs only once nothing is
    open any more. ``on_idle`` is awaited each time nothing is open, before
    that count: the last call marks the end of the work, not of the count.
    """
    start = time.monotonic()

    async def check() -> Finished | None:
        state = await open_state(stub, since_us, job_type)
        if state is None:
            if on_idle is not None:
                await on_idle()
            fin = await finished_since(stub, since_us, job_type)
            if fin.total >= expected:
                return fin
            state = f"{fin.total}/{expected} ended"
        progress.update((time.monotonic() - start) / timeout, f"some job still {state}")
        return None

    return await poll_until(check, timeout=timeout, what=f"{expected} jobs to end")


# -- clusters of a scenario's own ---------------------------------------------------


def make_target(
    plan: Plan,
    root: Path,
    *,
    name: str = "cluster",
    size: int = 3,
    settings: dict[str, dict[str, Any]] | None = None,
    capacity: int | None = None,
    prepare: Callable[[LocalCluster], None] | None = None,
) -> Target:
    """The cluster to measure: ``--address``, or ``size`` local processes started here under ``root/name``
    (each node's executor of ``capacity``, by default the plan's; ``prepare`` may add workers, which
    start after the nodes)."""
    if plan.address:
        return Target([a.strip() for a in plan.address.split(",") if a.strip()], None)
    cluster = LocalCluster(
        root / name,
        size=size,
        capacity=plan.capacity if capacity is None else capacity,
        settings=settings or {},
    )
    try:
        if prepare is not None:
            prepare(cluster)
        cluster.start()
    except OSError:
        cluster.stop()
        raise
    return Target(cluster.addresses, cluster)


async def on_own_cluster(
    name: str,
    body: Callable[[Target], Awaitable[dict[str, Any]]],
    plan: Plan,
    progress: Progress,
    root: Path,
    *,
    size: int = 3,
    settings: dict[str, dict[str, Any]] | None = None,
    capacity: int | None = None,
    prepare: Callable[[LocalCluster], None] | None = None,
) -> dict[str, Any]:
    """Run ``body`` on a local cluster of its own (under ``root/name``), stopped afterwards."""
    if plan.address:
        return {"skipped": "needs the cluster bench starts itself (not with --address)"}
    target = make_target(
        plan, root, name=name, size=size, settings=settings, capacity=capacity, prepare=prepare
    )
    try:
        progress.start(f"{name}: waiting for a leader")
        progress.done(f"leader at {await target.leader(timeout=60)}")
        return await body(target)
    finally:
        await target.close()
        if target.cluster is not None:
            target.cluster.stop()
