"""The benchmark scenarios that run against ordo_node: submit, end to end, lateness, failover, scale."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ... import snapshots
from ...client import submit_request
from ...pb import ordo_pb2, ordo_pb2_grpc
from ...queries import Queries
from ...statemachine.store import Store
from ...timeutil import format_us, now_us
from ..localcluster import LocalNode
from .cpu import CpuMark, cpu_figures, cpu_summary, end_mark, start_mark
from .load import (
    LocalCluster,
    Target,
    batches_of,
    bounded_map,
    closed_loop,
    created_at,
    file_mb,
    percentile,
    poll_until,
    same_jobs,
    sleep_until_us,
    spread,
    submit_batches,
    wait_finished,
)
from .plan import (
    FAR_FUTURE,
    FAR_FUTURE_US,
    KILL_FRACTION,
    QUERY_REPEATS,
    READ_IN_FLIGHT,
    RPC_TIMEOUT,
    SCALE_IN_FLIGHT,
    BenchError,
    Plan,
    Progress,
    far_future_request,
)

# -- scenario: submit -------------------------------------------------------------------


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
        mark = await start_mark(target)
        sent = await submit_batches(
            target.jobs(leader), same_jobs(request, plan.batch_jobs, plan.batch), k, progress
        )
        cpu = cpu_figures(mark, await end_mark(target), len(sent.ids))
        progress.done(f"{sent.rate:,.0f} jobs/s{cpu_summary(cpu)}")
        batch.append(
            {
                "in_flight": k,
                "batch": plan.batch,
                "jobs": len(sent.ids),
                "seconds": round(sent.seconds, 3),
                "jobs_per_s": round(sent.rate, 1),
                "errors": sum(sent.errors.values()),
                **cpu,
            }
        )
    return {"address": leader, "unary": unary, "batch": batch}


# -- scenario: end to end ---------------------------------------------------------------


async def scenario_e2e(
    target: Target,
    plan: Plan,
    progress: Progress,
    label: str = "e2e",
    job_type: str = "",
    *,
    request: Any = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """N echo jobs due now: from the first submission until the last success, and the CPU it took.

    ``request`` replaces the echo job (``jobs`` its count, by default the plan's ``e2e_jobs``).

    The CPU window opens before the first submission and closes once no job is
    open any more and every node has applied the leader's commits (before the
    count of the ended jobs, which pages through them all).
    """
    leader = await target.leader()
    stub = target.jobs(leader)
    n = plan.e2e_jobs if jobs is None else jobs
    request = request if request is not None else submit_request("echo", {"n": 1})
    progress.start(f"{label}: submit {n:,} {request.type} jobs due now")
    mark = await start_mark(target)
    start_us = now_us()
    sent = await submit_batches(stub, same_jobs(request, n, plan.batch), 1, progress)
    progress.done(f"{len(sent.ids):,} submitted, {sent.rate:,.0f} jobs/s")
    if not sent.ids:
        raise BenchError(f"no {label} job was accepted: {dict(sent.errors)}")
    since = await created_at(stub, sent.ids[0])
    progress.start(f"{label}: wait for {len(sent.ids):,} to succeed")
    ends: list[CpuMark] = []

    async def at_idle() -> None:
        ends[:] = [await end_mark(target)]

    fin = await wait_finished(
        stub,
        since,
        len(sent.ids),
        timeout=120 + n / 50,
        progress=progress,
        on_idle=at_idle,
        job_type=job_type,
    )
    seconds = (fin.last_update_us - start_us) / 1e6
    cpu = cpu_figures(mark, ends[-1], len(sent.ids))
    progress.done(f"{len(sent.ids) / seconds:,.0f} jobs/s{cpu_summary(cpu)}")
    return {
        "jobs": len(sent.ids),
        "seconds": round(seconds, 3),
        "jobs_per_s": round(len(sent.ids) / seconds, 1),
        "submit_seconds": round(sent.seconds, 3),
        "succeeded": fin.succeeded,
        "failed": fin.failed,
        "errors": sum(sent.errors.values()),
        **cpu,
    }


# -- scenario: unary under load ---------------------------------------------------------


async def scenario_loaded(target: Target, plan: Plan, progress: Progress) -> dict[str, Any]:
    """Unary SubmitJob, one call in flight, to the leader while N echo jobs run end to end.

    The caller starts with the first batch of echo jobs and stops once the last
    of them has ended; its latencies are those a client sees while the same
    nodes trigger, assign and run the burst.
    """
    leader = await target.leader()
    # Not echo, the burst's type: the burst's end is found by listing its type.
    request = submit_request("sleep", {"seconds": 0}, run_at=FAR_FUTURE)
    finished = False

    def make(ch: grpc.aio.Channel) -> Callable[[], Awaitable[Any]]:
        stub = ordo_pb2_grpc.JobServiceStub(ch)
        return lambda: stub.SubmitJob(request, timeout=RPC_TIMEOUT)

    async def burst() -> dict[str, Any]:
        nonlocal finished
        try:
            return await scenario_e2e(target, plan, progress, label="loaded", job_type="echo")
        finally:
            finished = True

    quiet = Progress(io.StringIO())
    e2e, unary = await asyncio.gather(
        burst(), closed_loop(make, leader, 1, 600, quiet, stop=lambda: finished)
    )
    out = unary.as_dict("jobs_per_s")
    out["max_ms"] = round(max(unary.latencies, default=0.0) * 1000, 2)
    progress.note(
        f"loaded: unary SubmitJob C=1 during the burst: p50 {out['latency_p50_ms']} ms,"
        f" p99 {out['latency_p99_ms']} ms, {out['calls']:,} calls"
    )
    return {"unary": out, "e2e": e2e}


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

    The same code the engine calls (snapshots.copy_database, Store.restore), on a copy
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
    snapshots.write(store.path, snap, ("entry", "entry", "cluster"))
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
