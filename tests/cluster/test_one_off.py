"""One-off jobs on a real 3-node cluster: submit anywhere, trigger once, run, read anywhere."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from pathlib import Path

import grpc
import pytest
from conftest import MakeCluster
from google.protobuf import json_format
from helpers import Cluster, eventually, trigger_count

from ordo_node import handlers as handlers_mod
from ordo_node.client import JobFailed, submit_request
from ordo_node.handlers import Registry
from ordo_node.pb import ordo_pb2

pytestmark = pytest.mark.cluster


def follower_of(cluster: Cluster, leader_id: str) -> list:
    return [n for n in cluster.nodes if n.id != leader_id and n.alive]


async def test_job_submitted_on_a_follower_runs_exactly_once(cluster: Cluster) -> None:
    # Given a cluster and one of its followers
    leader = await cluster.wait_for_leader()
    follower = follower_of(cluster, leader.id)[0]

    # When a job is submitted to the follower, to run now
    job_id = await cluster.client(follower).submit("echo", {"msg": "hello"})

    # Then every node shows it SUCCEEDED, with the echoed payload as result
    jobs = await cluster.wait_for_state(job_id, "SUCCEEDED")
    for job in jobs.values():
        assert len(job.runs) == 1
        assert job.runs[0].state == ordo_pb2.RUN_STATE_SUCCEEDED
        assert dict(job.result.struct_value) == {"msg": "hello"}
        assert job.submitted_to == follower.id
    # and its history, read from a third node, holds exactly one TRIGGERED event in order
    other = next(n for n in cluster.nodes if n.id not in (leader.id, follower.id))
    events = await cluster.client(other).history(job_id)
    names = [ordo_pb2.EventType.Name(e.type).removeprefix("EVENT_TYPE_") for e in events]
    assert names == ["SCHEDULED", "TRIGGERED", "ASSIGNED", "STARTED", "SUCCEEDED"]
    assert trigger_count(events) == 1
    assert events[1].node_id == leader.id


async def test_the_python_client_sends_integers_exactly(cluster: Cluster) -> None:
    # Given a payload with an integer a double cannot hold, sent by the Python client
    payload = {"id": 2**53 + 1, "price": 19.99, "ok": True}
    job_id = await cluster.client(cluster.nodes[0]).submit("echo", payload)

    # Then the handler got it exactly: echo's result, read back as JSON text, is the payload
    jobs = await cluster.wait_for_state(job_id, "SUCCEEDED")
    for job in jobs.values():
        assert json.loads(job.payload_json) == payload
        assert json.loads(job.result_json) == payload and json.loads(job.runs[0].result_json) == payload


async def test_wait_and_result_give_the_outcome_as_python_data(cluster: Cluster) -> None:
    client = cluster.client(cluster.nodes[1])
    # Given jobs submitted as plain dicts in one batch: one that succeeds, one that fails for good
    ok, bad = await client.submit_many(
        [
            {"type": "echo", "payload": {"sum": 42, "id": 2**53 + 1}},
            {"type": "shell", "payload": {"command": "echo no >&2; exit 3"}, "max_attempts": 1},
        ]
    )

    # Then result() is the handler's return value as Python data, numbers exact
    assert await client.result(ok, timeout=30) == {"sum": 42, "id": 2**53 + 1}
    # and the failed one raises JobFailed with its error, attempt and traceback
    with pytest.raises(JobFailed) as failed:
        await client.result(bad, timeout=30)
    assert failed.value.state in ("FAILED", "DEAD_LETTER") and failed.value.attempt == 1
    assert "status 3" in failed.value.error and "HandlerFailed" in failed.value.traceback
    # and wait() gives the final job; a job that has not ended times out
    assert (await client.wait(ok)).state == ordo_pb2.JOB_STATE_SUCCEEDED
    later = await client.submit("echo", {}, delay=600)
    with pytest.raises(TimeoutError, match=r"still SCHEDULED after 0\.3s"):
        await client.wait(later, timeout=0.3)


async def test_job_due_in_two_seconds_starts_within_one_second_of_due(cluster: Cluster) -> None:
    # Given a job due in 2 s
    job_id = await cluster.client(cluster.nodes[0]).submit("echo", {"n": 1}, delay=2.0)
    job = await cluster.client(cluster.nodes[0]).get(job_id)
    assert job.state == ordo_pb2.JOB_STATE_SCHEDULED

    # When it has run
    jobs = await cluster.wait_for_state(job_id, "SUCCEEDED")

    # Then it started after its due time, and less than a second after it
    job = jobs["node1"]
    due = job.run_at.ToMicroseconds()
    started = job.runs[0].started_at.ToMicroseconds()
    assert 0 <= started - due < 1_000_000, f"started {(started - due) / 1000:.1f} ms after due"


async def test_thirty_jobs_run_on_at_least_two_nodes(cluster: Cluster) -> None:
    # Given 30 jobs due at the same moment, submitted in one batch
    client = cluster.client(cluster.nodes[1])
    due = time.time() + 1.5
    run_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due)) + f".{int(due % 1 * 1e6):06d}Z"
    ids = await client.submit_many(
        [submit_request("sleep", {"seconds": 0.2}, run_at=run_at) for _ in range(30)]
    )
    assert len(set(ids)) == 30

    # When they have all run
    async def all_done() -> list[ordo_pb2.Job]:
        jobs = [await client.get(i) for i in ids]
        return jobs if all(j.state == ordo_pb2.JOB_STATE_SUCCEEDED for j in jobs) else []

    jobs = await eventually(all_done, timeout=30, what="30 jobs SUCCEEDED")

    # Then each ran once, and the runs were spread over at least two nodes
    assert all(len(j.runs) == 1 for j in jobs)
    nodes = {j.runs[0].node_id for j in jobs}
    assert len(nodes) >= 2, nodes


async def test_leader_killed_before_due_time_job_still_runs_exactly_once(cluster: Cluster) -> None:
    # Given a job due in 4 s, submitted through a follower
    leader = await cluster.wait_for_leader()
    follower = follower_of(cluster, leader.id)[0]
    job_id = await cluster.client(follower).submit("echo", {"x": 1}, delay=4.0)

    # When the leader is killed with SIGKILL before the due time
    leader.kill()
    new_leader = await cluster.wait_for_leader(exclude=leader.id)
    assert new_leader.id != leader.id

    # Then the job still runs, once, triggered by the new leader
    jobs = await cluster.wait_for_state(job_id, "SUCCEEDED")
    for job in jobs.values():
        assert len(job.runs) == 1
        assert job.runs[0].node_id != leader.id
    events = await cluster.client(new_leader).history(job_id)
    assert trigger_count(events) == 1
    assert next(e for e in events if e.type == ordo_pb2.EVENT_TYPE_TRIGGERED).node_id == new_leader.id


async def test_killed_node_restarts_and_catches_up(cluster: Cluster) -> None:
    # Given a follower killed with SIGKILL
    leader = await cluster.wait_for_leader()
    victim = follower_of(cluster, leader.id)[0]
    victim.kill()

    # When jobs are submitted and run while it is down, and it is restarted
    client = cluster.client(leader)
    ids = [await client.submit("echo", {"i": i}) for i in range(10)]
    for job_id in ids:
        await cluster.wait_for_state(job_id, "SUCCEEDED")
    victim.start()

    # Then it catches up to the same applied index and the same job states
    await eventually(lambda: cluster.status(victim), timeout=30, what="restarted node answering")
    await cluster.wait_for_applied()
    for job_id in ids:
        job = await cluster.client(victim).get(job_id)
        assert job.state == ordo_pb2.JOB_STATE_SUCCEEDED
        # An attempt sent to the dead node before the leader noticed is LOST
        # and replaced; exactly one attempt succeeded.
        outcomes = [r.state for r in job.runs]
        assert outcomes.count(ordo_pb2.RUN_STATE_SUCCEEDED) == 1
        assert set(outcomes) <= {ordo_pb2.RUN_STATE_SUCCEEDED, ordo_pb2.RUN_STATE_LOST}

    # and, once stopped, every replica's database holds the same jobs, runs and events
    await cluster.stop()
    dumps = [cluster.database_dump(n) for n in cluster.nodes]
    assert dumps[0]["jobs"] and dumps[0] == dumps[1] == dumps[2]


async def test_no_majority_means_unavailable(make_cluster: MakeCluster) -> None:
    # Given one node of a three-node cluster, alone (no majority, no leader)
    cluster = await make_cluster(wait=False, raft={"commit_timeout": 2.0})
    for n in cluster.nodes[1:]:
        n.terminate()
    lonely = cluster.nodes[0]
    await eventually(lambda: cluster.status(lonely), what="node answering")

    # When a job is submitted there
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.client(lonely).submit("echo", {})

    # Then the answer is UNAVAILABLE (retryable), not INTERNAL
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "leader" in (err.value.details() or "")


async def test_cancel_a_scheduled_job(cluster: Cluster) -> None:
    # Given a job due in an hour
    client = cluster.client(cluster.nodes[2])
    job_id = await client.submit("echo", {}, delay=3600)

    # When it is cancelled
    job = await client.cancel(job_id)

    # Then it is CANCELLED everywhere, and cancelling again is refused
    assert job.state == ordo_pb2.JOB_STATE_CANCELLED
    await cluster.wait_for_state(job_id, "CANCELLED")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.cancel(job_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


USER_HANDLERS = """
import json, os
from ordo_node.handlers import handler

@handler("record")
def record(ctx, payload):
    with open(os.path.join(os.path.dirname(__file__), "executions.log"), "a") as f:
        f.write(json.dumps({"job": ctx.job_id, "attempt": ctx.attempt, "node": ctx.node_id}) + "\\n")
    return {"seen": payload, "node": ctx.node_id}
"""


async def test_user_handler_module_beside_the_config_runs(make_cluster: MakeCluster) -> None:
    # Given a module with a handler beside the node configs, named in them
    cluster = await make_cluster(handlers=["my_jobs"], files={"my_jobs.py": USER_HANDLERS})

    # When a job of that type is submitted
    job_id = await cluster.client(cluster.nodes[0]).submit("record", {"a": 1})

    # Then it runs once, on some node, with the handler's result stored
    jobs = await cluster.wait_for_state(job_id, "SUCCEEDED")
    node = jobs["node1"].runs[0].node_id
    assert json_format.MessageToDict(jobs["node1"].result) == {"seen": {"a": 1}, "node": node}
    lines = (cluster.root / "executions.log").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"job": job_id, "attempt": 1, "node": node}]


async def test_missing_handler_module_stops_the_node_with_one_line(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(size=1, wait=False, handlers=["no_such_module_here"])
    node = cluster.nodes[0]
    assert node.proc is not None
    assert await asyncio.to_thread(node.proc.wait, 30) == 2
    text = node.log_text()
    assert "node.handlers: cannot import module 'no_such_module_here'" in text
    assert "Traceback" not in text


REPORT_TASKS = """
from ordo_node.tasks import task


@task("report", max_attempts=1)
async def report(ctx, customer_id: int, period: str = "month") -> dict:
    return {"customer": customer_id, "period": period, "node": ctx.node_id}
"""


async def test_a_task_defined_once_is_submitted_typed_and_run_by_the_nodes(
    make_cluster: MakeCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given nodes whose handler module defines a task, and the same module in this process
    cluster = await make_cluster(handlers=["report_tasks"], files={"report_tasks.py": REPORT_TASKS})
    monkeypatch.setattr(handlers_mod, "registry", Registry())  # this process registers its own copy
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "report_tasks.py").write_text(REPORT_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path / "app"))
    report = importlib.import_module("report_tasks").report
    client = cluster.client(cluster.nodes[0])

    # When it is submitted through its typed entry point
    job_id = await report.submit(client, customer_id=2**53 + 1, period="week")

    # Then a node runs the function with those keyword arguments
    result = await client.result(job_id, timeout=30)
    assert result["customer"] == 2**53 + 1 and result["period"] == "week"
    assert result["node"] in {n.id for n in cluster.nodes}
    # and a misspelt argument fails in the caller, before anything is sent
    with pytest.raises(TypeError, match="unexpected keyword argument 'perod'"):
        report.request(customer_id=1, perod="day")
    # and a payload that does not fit the signature, sent by another client, is refused by the node
    bad = submit_request("report", {"customer": 1})
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.send(bad)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "payload: task 'report': missing a required argument: 'customer_id'" in (
        refused.value.details() or ""
    )
