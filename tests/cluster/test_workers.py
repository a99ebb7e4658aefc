"""Workers (``ordo-node worker``) on a control plane of 3 voters with capacity 0: real processes.

Most cases share one cluster (module scope, with [auth] tokens); each starts
its own workers under ids of its own and stops them at its end, so that the
workers of one case never take the jobs of another. The kill of the leader
has a cluster of its own.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from helpers import Cluster, eventually

from ordo_node.client import Client, submit_request
from ordo_node.pb import ordo_pb2
from ordo_node.tools.localcluster import LocalWorker

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]

ADMIN = "admin-token-0123456789abcdef"
READER = "read-token-0123456789abcdef"
WORKER = "worker-token-0123456789abcdef"
BOUND = "bound-token-0123456789abcdef"
TOKENS = [
    {"name": "ops", "role": "admin", "token": ADMIN},
    {"name": "dashboard", "role": "read", "token": READER},
    {"name": "workers", "role": "worker", "token": WORKER},
    {"name": "gpu-pool", "role": "worker", "token": BOUND, "workers": ["gpu-*"]},
]
# Short enough for a dead worker's runs to move soon, long enough for a worker to restart within it.
LEASE = 4.0
# A worker away this long is recorded as gone (the shared cluster).
GONE_AFTER = 8.0

# A handler module the voters do not have: each execution appends a line to executions.jsonl.
WORK_MODULE = """
import json, os
from ordo_node.handlers import handler

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "executions.jsonl")


@handler("{type}")
def work(ctx, payload):
    with open(LOG, "a") as f:
        f.write(json.dumps({{"job": ctx.job_id, "attempt": ctx.attempt, "node": ctx.node_id}}) + "\\n")
    ctx.cancelled.wait((payload or {{}}).get("seconds", 0))
    return {{"by": ctx.node_id}}
"""

SUCCEEDED = ordo_pb2.RUN_STATE_SUCCEEDED
LOST = ordo_pb2.RUN_STATE_LOST


def control_plane(root: Path, **kwargs: Any) -> Cluster:
    """3 voters that run nothing themselves (capacity 0), with short leases."""
    return Cluster(root, size=3, capacity=0, lease_timeout=LEASE, shutdown_grace=5.0, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """One control plane with [auth] tokens (admin, read, worker) for the cases that do not kill a voter."""
    cluster = control_plane(
        tmp_path_factory.mktemp("workers"),
        settings={"auth": {"tokens": TOKENS}, "cluster": {"worker_gone_after": GONE_AFTER}},
        client_options={"token": ADMIN},
    )
    cluster.start()
    try:
        await cluster.wait_for_leader()
        yield cluster
    finally:
        await cluster.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(shared: Cluster) -> AsyncIterator[Cluster]:
    """The shared cluster; the workers a test starts are stopped (SIGTERM) at its end."""
    before = set(shared.workers)
    yield shared
    mine = [w for k, w in shared.workers.items() if k not in before]
    await asyncio.gather(*(asyncio.to_thread(w.terminate, 15) for w in mine))
    print(shared.logs())  # shown when the test failed


def start_workers(cluster: Cluster, *specs: tuple[str, int], args: tuple[str, ...] = ()) -> list[LocalWorker]:
    """Start workers (id, capacity) with the worker token."""
    return [cluster.start_worker(wid, "--token", WORKER, *args, capacity=cap) for wid, cap in specs]


async def jobs_of(client: Client, ids: list[str]) -> list[ordo_pb2.Job]:
    """GetJob of every id, 50 at a time."""
    out: list[ordo_pb2.Job] = []
    for i in range(0, len(ids), 50):
        out += await asyncio.gather(*(client.get(job_id) for job_id in ids[i : i + 50]))
    return out


async def succeeded_ids(client: Client) -> set[str]:
    """The ids of every SUCCEEDED job, read page by page."""
    found: set[str] = set()
    token = ""
    while True:
        page = await client.list_jobs(state="SUCCEEDED", page_size=1000, page_token=token)
        found.update(j.job_id for j in page.jobs)
        token = page.next_page_token
        if not token:
            return found


async def all_succeeded(client: Client, ids: list[str], timeout: float = 60.0) -> list[ordo_pb2.Job]:
    """Wait until every job SUCCEEDED (as ``client``'s node sees it); the jobs with their runs."""

    async def done() -> bool:
        missing = set(ids) - await succeeded_ids(client)
        assert not missing, f"{len(missing)} of {len(ids)} not SUCCEEDED yet"
        return True

    await eventually(done, timeout=timeout, interval=0.3, what=f"{len(ids)} jobs SUCCEEDED")
    return await jobs_of(client, ids)


async def running(client: Client, job_id: str, attempt: int = 1) -> ordo_pb2.Run | None:
    """The job's last run if it is ``attempt`` and RUNNING."""
    job = await client.get(job_id)
    last = job.runs[-1] if job.runs else None
    if last is not None and last.attempt == attempt and last.state == ordo_pb2.RUN_STATE_RUNNING:
        return last
    return None


def events(history: list[ordo_pb2.Event]) -> list[str]:
    return [ordo_pb2.EventType.Name(e.type).removeprefix("EVENT_TYPE_") for e in history]


async def test_jobs_run_on_workers_only_spread_by_capacity(cluster: Cluster) -> None:
    # Given 3 workers of capacities 1, 2 and 4 beside voters of capacity 0
    start_workers(cluster, ("small", 1), ("medium", 2), ("large", 4))
    status = await cluster.wait_for_workers("small", "medium", "large")
    assert {w.worker_id: w.capacity for w in status.workers if w.connected_to} == {
        "small": 1,
        "medium": 2,
        "large": 4,
    }
    assert [n.capacity for n in status.nodes] == [0, 0, 0]

    # When 600 echo jobs are submitted
    client = cluster.client(cluster.nodes[1])
    ids: list[str] = []
    for batch in range(3):
        ids += await client.submit_many([submit_request("echo", {"b": batch, "i": i}) for i in range(200)])

    # Then every one SUCCEEDED in one run, on a worker, never on a voter
    jobs = await all_succeeded(client, ids)
    assert all(len(j.runs) == 1 and j.runs[0].state == SUCCEEDED for j in jobs)
    spread = Counter(j.runs[0].node_id for j in jobs)
    print("spread by worker:", dict(spread))
    assert set(spread) <= {"small", "medium", "large"}, spread
    # and the bigger worker ran more
    assert spread["large"] > spread["small"], spread
    # (medium and large both have room for echo jobs that end at once: their order varies)
    assert spread["large"] + spread["medium"] > 2 * spread["small"], spread

    # and every node lists the workers as connected to the leader
    for node in cluster.nodes:
        seen = await cluster.status(node)
        assert {w.worker_id: w.connected_to for w in seen.workers} == dict.fromkeys(spread, status.leader_id)

    # When one stops (SIGTERM), it is recorded as gone: no longer listed
    assert await asyncio.to_thread(cluster.workers["small"].terminate, 15) == 0

    async def gone() -> bool:
        return "small" not in {w.worker_id for w in (await cluster.status(cluster.nodes[0])).workers}

    await eventually(gone, timeout=10, what="worker small no longer listed")


async def test_killed_worker_runs_run_again_on_another_worker_within_the_lease(cluster: Cluster) -> None:
    # Given two workers of capacity 2 and 4 sleep jobs running on them, 2 each
    start_workers(cluster, ("lease-a", 2), ("lease-b", 2))
    await cluster.wait_for_workers("lease-a", "lease-b")
    client = cluster.client(cluster.nodes[0])
    ids = [await client.submit("sleep", {"seconds": 3}) for _ in range(4)]
    first = [await eventually(lambda i=i: running(client, i), what=f"{i} running") for i in ids]
    assert Counter(r.node_id for r in first) == {"lease-a": 2, "lease-b": 2}

    # When lease-a is killed with SIGKILL
    cluster.workers["lease-a"].kill()
    killed_at = time.monotonic()
    victims = [i for i, r in zip(ids, first, strict=True) if r.node_id == "lease-a"]

    # Then its attempts run again on lease-b within the lease (plus the checker's pace)
    for job_id in victims:
        second = await eventually(lambda j=job_id: running(client, j, 2), timeout=30, what="attempt 2")
        assert second.node_id == "lease-b"
    rerun_after = time.monotonic() - killed_at
    assert rerun_after < LEASE + 4, f"re-run {rerun_after:.1f}s after the kill (lease {LEASE}s)"
    # and every job SUCCEEDED; the victims' histories show LOST (lease expired) then SUCCEEDED
    jobs = {j.job_id: j for j in await all_succeeded(client, ids, timeout=30)}
    for job_id in ids:
        states = [r.state for r in jobs[job_id].runs]
        assert states == ([LOST, SUCCEEDED] if job_id in victims else [SUCCEEDED]), (job_id, states)
    for job_id in victims:
        history = await client.history(job_id)
        names = events(history)
        assert names.index("LOST") < len(names) - 1 - names[::-1].index("SUCCEEDED"), names
        lost = next(e for e in history if e.type == ordo_pb2.EVENT_TYPE_LOST)
        assert lost.node_id == "lease-a" and "lease expired" in lost.message, lost


async def test_worker_restarted_under_its_id_gives_up_old_attempts_at_once(cluster: Cluster) -> None:
    # Given a worker running 2 long jobs
    (phoenix,) = start_workers(cluster, ("phoenix", 2))
    await cluster.wait_for_workers("phoenix")
    client = cluster.client(cluster.nodes[0])
    ids = [await client.submit("sleep", {"seconds": 2}) for _ in range(2)]
    for job_id in ids:
        await eventually(lambda j=job_id: running(client, j), what=f"{job_id} running")

    # When its process is killed and a new one starts under the same id
    phoenix.kill()
    killed_at = time.monotonic()
    phoenix.start()

    # Then the old attempts are LOST as soon as the new process registers, before their lease ends
    for job_id in ids:
        history = await eventually(
            lambda j=job_id: _lost(client, j), timeout=LEASE + 10, what=f"{job_id} attempt 1 LOST"
        )
        assert "worker phoenix restarted" in history.message, history
    lost_after = time.monotonic() - killed_at
    # and they run again, on the new process, to success
    jobs = await all_succeeded(client, ids, timeout=30)
    for job in jobs:
        assert [(r.attempt, r.state) for r in job.runs] == [(1, LOST), (2, SUCCEEDED)], job.runs
        assert job.runs[1].node_id == "phoenix"
    assert lost_after < LEASE + 5, lost_after


async def _lost(client: Client, job_id: str) -> ordo_pb2.Event | None:
    return next((e for e in await client.history(job_id) if e.type == ordo_pb2.EVENT_TYPE_LOST), None)


async def test_worker_brings_a_job_type_no_voter_knows(cluster: Cluster) -> None:
    client = cluster.client(cluster.nodes[2])
    # Given a module of type "rare" in the worker's folder, and one of type "conf" beside a config file
    (cluster.root / "rarejobs.py").write_text(WORK_MODULE.format(type="rare"))
    conf = cluster.root / "conf"
    conf.mkdir()
    (conf / "confjobs.py").write_text(WORK_MODULE.format(type="conf"))
    (conf / "worker.toml").write_text(
        "[worker]\n"
        f"servers = {json.dumps(cluster.addresses())}\n"
        'handlers = ["confjobs"]\n'
        f'token = "{WORKER}"\n'
        "capacity = 2\n"
    )

    # Before any worker runs them, the types are refused, naming the type and the known ones
    for kind in ("rare", "conf"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.submit(kind, {})
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = err.value.details() or ""
        assert f"unknown job type '{kind}'" in details and "echo" in details and "sleep" in details

    # When workers with those modules register (flags only, in its folder; and by a config file elsewhere)
    start_workers(cluster, ("rare-w", 2), args=("--handlers", "rarejobs"))
    cluster.start_worker("conf-w", "--config", "conf/worker.toml")
    status = await cluster.wait_for_workers("rare-w", "conf-w")
    handlers = {w.worker_id: list(w.handlers) for w in status.workers}
    assert "rare" in handlers["rare-w"] and "conf" not in handlers["rare-w"]
    assert "conf" in handlers["conf-w"] and "rare" not in handlers["conf-w"]

    # Then such jobs are accepted on any node, and run on the worker that has the type
    async def accepted(kind: str) -> str:
        return await client.submit(kind, {"seconds": 0})

    ids = {
        kind: [await eventually(lambda k=kind: accepted(k)) for _ in range(3)] for kind in ("rare", "conf")
    }
    for kind, worker in (("rare", "rare-w"), ("conf", "conf-w")):
        for job in await all_succeeded(client, ids[kind], timeout=30):
            assert [r.node_id for r in job.runs] == [worker]
            assert dict(job.result.struct_value) == {"by": worker}
    # and an unknown type is still refused, now listing the workers' types too
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.submit("nope", {})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "conf" in (err.value.details() or "") and "rare" in (err.value.details() or "")


async def test_worker_needs_a_worker_token_and_a_worker_token_only_works(cluster: Cluster) -> None:
    # Given workers without a token, with a read token and with an admin token
    cluster.start_worker("anon", capacity=1)
    cluster.start_worker("reader", "--token", READER, capacity=1)
    cluster.start_worker("admin", "--token", ADMIN, capacity=1)

    # Then each is refused, and says why in its log
    reasons = {"anon": "no bearer token", "reader": "needs a worker token", "admin": "needs a worker token"}
    for wid, why in reasons.items():
        w = cluster.workers[wid]

        async def refused(w: LocalWorker = w, why: str = why) -> bool:
            return f"refused this worker: {why}" in w.log_text() or why in w.log_text()

        await eventually(refused, timeout=20, what=f"{wid} refused ({why})")
        assert "refused this worker" in w.log_text() and w.alive, w.log_text()

    # while a worker with a worker token connects
    start_workers(cluster, ("tokened", 1))
    status = await cluster.wait_for_workers("tokened")
    # and none of the refused ones was registered
    assert not {"anon", "reader", "admin"} & {w.worker_id for w in status.workers}
    # and each said so once per server, though it kept retrying all along
    for wid in reasons:
        lines = [
            line for line in cluster.workers[wid].log_text().splitlines() if "refused this worker" in line
        ]
        assert 1 <= len(lines) <= len(cluster.nodes), lines

    # and a worker token can neither submit nor read the cluster
    async with Client([cluster.nodes[0].address], token=WORKER, timeout=5.0) as as_worker:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await as_worker.submit("echo", {})
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await as_worker.cluster()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_killed_worker_is_recorded_as_gone_and_its_types_refused(cluster: Cluster) -> None:
    # Given a worker that alone runs jobs of type "solo"
    (cluster.root / "solojobs.py").write_text(WORK_MODULE.format(type="solo"))
    (w,) = start_workers(cluster, ("solo-w", 1), args=("--handlers", "solojobs"))
    await cluster.wait_for_workers("solo-w")
    client = cluster.client(cluster.nodes[0])
    await eventually(lambda: client.submit("solo", {}), what="type solo accepted")
    # When it is killed and does not come back
    w.kill()
    killed = time.monotonic()

    # Then, once it has been away for worker_gone_after, the cluster no longer lists it
    async def gone() -> bool:
        status = await cluster.status(cluster.nodes[1])
        assert "solo-w" not in {x.worker_id for x in status.workers}
        return True

    await eventually(gone, timeout=GONE_AFTER + 20, what="solo-w recorded as gone")
    assert time.monotonic() - killed >= GONE_AFTER - 1
    # and its type is refused, naming it
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.submit("solo", {})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown job type 'solo'" in (err.value.details() or "")
    # and the leader said why
    assert "worker solo-w not connected for" in cluster.logs()


async def test_worker_token_bound_to_ids_connects_only_as_them(cluster: Cluster) -> None:
    # Given a worker token that may act only as gpu-* workers
    # When one worker uses it as gpu-7 and another as cpu-7
    cluster.start_worker("gpu-7", "--token", BOUND, capacity=1)
    cpu = cluster.start_worker("cpu-7", "--token", BOUND, capacity=1)
    # Then gpu-7 connects, and cpu-7 is refused, saying why
    await cluster.wait_for_workers("gpu-7")

    async def refused() -> bool:
        assert "token 'gpu-pool' may act only as gpu-*" in cpu.log_text()
        return True

    await eventually(refused, timeout=20, what="cpu-7 refused")
    status = await cluster.status(cluster.nodes[0])
    assert "cpu-7" not in {w.worker_id for w in status.workers}


async def test_tagged_worker_gets_only_jobs_asking_for_its_tag(cluster: Cluster) -> None:
    # Given a worker tagged gpu and an untagged one
    start_workers(cluster, ("gpu-w", 2), args=("--tags", "gpu"))
    start_workers(cluster, ("plain-w", 2))
    status = await cluster.wait_for_workers("gpu-w", "plain-w")
    assert {w.worker_id: list(w.tags) for w in status.workers if w.connected_to} == {
        "gpu-w": ["gpu"],
        "plain-w": [],
    }
    client = cluster.client(cluster.nodes[0])

    # When jobs asking for gpu and jobs asking for nothing are submitted
    gpu = await client.submit_many([submit_request("echo", {"i": i}, tags=["gpu"]) for i in range(20)])
    untagged = await client.submit_many([submit_request("echo", {"i": i}) for i in range(20)])
    # and one asking for a tag no worker has
    tpu = await client.submit("echo", {}, tags=["tpu"])

    # Then the gpu jobs ran on gpu-w only, the others on either worker
    for job in await all_succeeded(client, gpu):
        assert [r.node_id for r in job.runs] == ["gpu-w"]
    for job in await all_succeeded(client, untagged):
        assert len(job.runs) == 1 and job.runs[0].node_id in ("gpu-w", "plain-w")
    # and the tpu job waits, saying why
    job = (await cluster.wait_for_state(tpu, "WAITING", nodes=[cluster.nodes[0]]))["node1"]
    assert job.waiting == "no live executor has the tags tpu"
    assert [(r.state, r.node_id) for r in job.runs] == [(ordo_pb2.RUN_STATE_PENDING, "")]
    await client.cancel(tpu)


async def test_workers_follow_a_new_leader_and_no_job_is_lost(tmp_path: Path) -> None:
    # Given a control plane of its own (a voter dies here) and 2 workers running 0.4 s jobs
    cluster = control_plane(tmp_path / "failover", files={"workjobs.py": WORK_MODULE.format(type="work")})
    cluster.start()
    try:
        await _failover(cluster)
    finally:
        await cluster.stop()
        print(cluster.logs())


async def _failover(cluster: Cluster) -> None:
    leader = await cluster.wait_for_leader()
    for wid in ("w1", "w2"):
        cluster.start_worker(wid, "--handlers", "workjobs", capacity=4)
    await cluster.wait_for_workers("w1", "w2")
    survivor = next(n for n in cluster.nodes if n.id != leader.id)
    client = cluster.client(survivor)
    ids = await client.submit_many([submit_request("work", {"seconds": 0.4}) for _ in range(60)])
    executions = cluster.root / "executions.jsonl"

    def executed() -> list[dict[str, Any]]:
        text = executions.read_text() if executions.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    async def busy() -> ordo_pb2.ClusterStatus | None:
        status = await cluster.status(leader)
        return status if 8 <= len(executed()) < 40 and sum(w.running_count for w in status.workers) else None

    status = await eventually(busy, timeout=30, what="workers running jobs")
    in_flight = {(r.run_id, r.attempt) for w in status.workers for r in w.running}

    # When the leader is killed with SIGKILL while the workers run jobs
    leader.kill()
    new = await cluster.wait_for_leader(exclude=leader.id)
    elected_at = time.monotonic()

    # Then both workers connect to the new leader, within seconds
    await cluster.wait_for_workers("w1", "w2", via=new)
    reconnect = time.monotonic() - elected_at
    print(f"workers connected to {new.id} {reconnect:.2f}s after it was agreed on")
    assert reconnect < 10, reconnect

    # and every job SUCCEEDED, once; other attempts are LOST ones
    jobs = await all_succeeded(cluster.client(new), ids, timeout=60)
    runs = {(r.run_id, r.attempt): r for job in jobs for r in job.runs}
    for job in jobs:
        states = [r.state for r in job.runs]
        assert states.count(SUCCEEDED) == 1 and states[-1] == SUCCEEDED, (job.job_id, states)
        assert set(states) <= {SUCCEEDED, LOST}, (job.job_id, states)
    # and a handler ran twice for a job only when an attempt was LOST: each attempt executed once
    by_job = {job.job_id: job for job in jobs}
    seen = Counter((e["job"], e["attempt"]) for e in executed())
    assert all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n > 1]
    for job_id, attempt in seen:
        run = next(r for r in by_job[job_id].runs if r.attempt == attempt)
        assert run.state in (SUCCEEDED, LOST), (job_id, attempt, run.state)
    assert {j.job_id for j in jobs} == {job for job, _ in seen}
    # and the attempts in flight at the kill kept running; the new leader took their outcomes
    assert in_flight
    assert {k: runs[k].state for k in in_flight} == dict.fromkeys(in_flight, SUCCEEDED)


async def test_worker_leaves_a_frozen_leader_for_the_new_one(tmp_path: Path) -> None:
    # Given a control plane of its own and a worker connected to its leader
    cluster = control_plane(tmp_path / "frozen")
    cluster.start()
    leader = await cluster.wait_for_leader()
    frozen = False
    try:
        cluster.start_worker("w1", capacity=2)
        await cluster.wait_for_workers("w1", via=leader)
        # When the leader freezes (SIGSTOP): its connections stay open, and say nothing more
        assert leader.proc is not None
        leader.proc.send_signal(signal.SIGSTOP)
        frozen = True
        others = [n for n in cluster.nodes if n is not leader]

        async def elected() -> Any:
            named = {(await cluster.status(n)).leader_id for n in others}
            return cluster.node(named.pop()) if len(named) == 1 and leader.id not in named | {""} else None

        new = await eventually(elected, timeout=30, what="a leader among the two others")
        elected_at = time.monotonic()
        # Then the worker gives up the silent stream and connects to the new leader, within seconds
        await cluster.wait_for_workers("w1", via=new)
        moved = time.monotonic() - elected_at
        print(f"worker connected to {new.id} {moved:.2f}s after it was agreed on")
        assert moved < 15, moved
        # and runs the jobs the new leader gives it
        client = cluster.client(new)
        ids = await client.submit_many([submit_request("echo", {"n": i}) for i in range(5)])
        jobs = await all_succeeded(client, ids, timeout=30)
        assert {r.node_id for job in jobs for r in job.runs} == {"w1"}
    finally:
        if frozen and leader.proc is not None:
            leader.proc.send_signal(signal.SIGCONT)
        await cluster.stop()
        print(cluster.logs())
