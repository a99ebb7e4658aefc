"""A real outside client: grpcurl, through server reflection only (no proto files)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2
from helpers import Cluster, eventually, grpcurl_program

pytestmark = pytest.mark.cluster


async def grpcurl(address: str, method: str, body: dict | None = None) -> subprocess.CompletedProcess[str]:
    """Run grpcurl against ``address``; the result holds its exit code, stdout and stderr."""
    args = [grpcurl_program(), "-plaintext", "-max-time", "10"]
    if body is not None:
        args += ["-d", "@"]  # the body on stdin: it may be larger than a command line
    args += [address, method]
    stdin = json.dumps(body) if body is not None else None
    return await asyncio.to_thread(
        subprocess.run, args, input=stdin, capture_output=True, text=True, timeout=30
    )


async def reflected_services(address: str, service: str) -> list[str]:
    """The services a node's reflection lists when asked under ``service``'s name."""
    async with grpc.aio.insecure_channel(address) as channel:
        info = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        call = info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        answers = [answer async for answer in call]
    return [s.name for s in answers[0].list_services_response.service]


async def call(address: str, method: str, body: dict | None = None) -> dict:
    """grpcurl that must succeed; its JSON answer."""
    out = await grpcurl(address, method, body)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_grpcurl_drives_a_job_end_to_end(cluster: Cluster) -> None:
    a, b, c = (n.address for n in cluster.nodes)

    # Health and reflection work on every node
    for address in (a, b, c):
        assert (await call(address, "grpc.health.v1.Health/Check"))["status"] == "SERVING"
    listed = await grpcurl(a, "list")
    assert {"ordo.v1.JobService", "ordo.v1.ClusterService", "grpc.health.v1.Health"} <= set(
        listed.stdout.split()
    )
    # and the members' and workers' services are not advertised to clients
    assert not {"ordo.v1.PeerService", "ordo.v1.WorkerService"} & set(listed.stdout.split())
    # and reflection answers under its v1 name too (newer clients ask for it first)
    for name in ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"):
        assert set(await reflected_services(a, name)) == {
            "ordo.v1.JobService",
            "ordo.v1.ClusterService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        }

    # SubmitJob exactly as the README writes it, with delay instead of a far runAt
    submitted = await call(
        b, "ordo.v1.JobService/SubmitJob", {"type": "echo", "payload": {"msg": "hi"}, "delay": "1s"}
    )
    job_id = submitted["jobId"]

    # GetJob on another node until SUCCEEDED
    async def succeeded() -> dict | None:
        job = await call(c, "ordo.v1.JobService/GetJob", {"jobId": job_id})
        return job if job["state"] == "JOB_STATE_SUCCEEDED" else None

    job = await eventually(succeeded, timeout=30, what="grpcurl GetJob SUCCEEDED")
    assert job["type"] == "echo"
    assert job["result"] == {"msg": "hi"}
    assert job["runs"][0]["attempt"] == 1 and job["runs"][0]["nodeId"]

    # GetJobHistory: events in order, exactly one TRIGGERED
    history = await call(a, "ordo.v1.JobService/GetJobHistory", {"jobId": job_id})
    types = [e["type"] for e in history["events"]]
    assert types[0] == "EVENT_TYPE_SCHEDULED" and types[-1] == "EVENT_TYPE_SUCCEEDED"
    assert types.count("EVENT_TYPE_TRIGGERED") == 1
    assert all("time" in e and "nodeId" in e for e in history["events"])

    # A far-future runAt is SCHEDULED, and ListJobs filters by state
    later = await call(
        a,
        "ordo.v1.JobService/SubmitJob",
        {"type": "echo", "payload": {"msg": "hi"}, "runAt": "2030-01-01T00:00:00Z"},
    )
    page = await call(a, "ordo.v1.JobService/ListJobs", {"state": "JOB_STATE_SCHEDULED", "pageSize": 10})
    assert [j["jobId"] for j in page["jobs"]] == [later["jobId"]]

    # GetClusterStatus names the leader, term, commit index and three reachable nodes
    status = await call(b, "ordo.v1.ClusterService/GetClusterStatus", {})
    assert status["leaderId"] in {"node1", "node2", "node3"}
    assert int(status["term"]) >= 1 and int(status["commitIndex"]) >= 1
    assert sorted(n["nodeId"] for n in status["nodes"]) == ["node1", "node2", "node3"]
    assert all(n["reachable"] and n["capacity"] == 8 for n in status["nodes"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "echo", "runAt": "next tuesday"}, "runAt"),
        ({"type": "echo", "runAt": "2030-01-01T00:00:00"}, "runAt"),
        ({"type": "no_such_handler"}, "type"),
        ({"type": "echo", "delay": "-5s"}, "delay"),
        ({"type": "sleep", "payload": {"seconds": "soon"}}, "payload.seconds"),
        ({"type": "echo", "payload": {"blob": "x" * (1024 * 1024 + 10)}}, "payload"),
        ({"type": "echo", "payload": {"id": 9007199254740993}}, "payload"),
        ({"type": "echo", "payloadJson": "{not json"}, "payloadJson"),
        ({"type": "echo", "payload": {"a": 1}, "payloadJson": "{}"}, "payloadJson"),
    ],
)
async def test_grpcurl_bad_submissions_name_the_field(cluster: Cluster, body: dict, field: str) -> None:
    out = await grpcurl(cluster.nodes[0].address, "ordo.v1.JobService/SubmitJob", body)
    assert out.returncode != 0
    assert "InvalidArgument" in out.stderr, out.stderr
    assert f"{field}:" in out.stderr, out.stderr
    # and the node keeps serving
    assert (await call(cluster.nodes[0].address, "grpc.health.v1.Health/Check"))["status"] == "SERVING"


async def test_grpcurl_bad_and_unknown_job_ids(cluster: Cluster) -> None:
    address = cluster.nodes[1].address
    bad = await grpcurl(address, "ordo.v1.JobService/GetJob", {"jobId": "../../etc/passwd"})
    assert "InvalidArgument" in bad.stderr and "jobId" in bad.stderr
    unknown = await grpcurl(
        address, "ordo.v1.JobService/GetJob", {"jobId": "00000000-0000-4000-8000-000000000000"}
    )
    assert "NotFound" in unknown.stderr and "jobId" in unknown.stderr
    history = await grpcurl(
        address, "ordo.v1.JobService/GetJobHistory", {"jobId": "00000000-0000-4000-8000-000000000000"}
    )
    assert "NotFound" in history.stderr


async def test_grpcurl_recurring_job_occurrences_explain_and_preview(cluster: Cluster) -> None:
    a = cluster.nodes[0].address
    # The README's recurring submission: every 2 seconds, three times
    body = {
        "type": "echo",
        "payload": {"msg": "tick"},
        "cron": "*/2 * * * * *",
        "timezone": "Europe/Paris",
        "maxRuns": 3,
        "catchUp": "CATCH_UP_ONE",
        "overlap": "OVERLAP_SKIP",
    }
    job_id = (await call(a, "ordo.v1.JobService/SubmitJob", body))["jobId"]

    async def three_done() -> list[dict] | None:
        page = await call(a, "ordo.v1.JobService/ListOccurrences", {"jobId": job_id})
        occs = page.get("occurrences", [])
        done = [o for o in occs if o.get("outcome") == "RUN_STATE_SUCCEEDED"]
        return occs if len(done) == 3 else None

    occs = await eventually(three_done, timeout=30, what="three occurrences SUCCEEDED")
    assert all(o["fate"] == "FATE_TRIGGERED" for o in occs)
    job = await call(a, "ordo.v1.JobService/GetJob", {"jobId": job_id})
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["occurrences"] == 3 and job["maxRuns"] == 3
    assert job["catchUp"] == "CATCH_UP_ONE" and job["overlap"] == "OVERLAP_SKIP"

    explained = await call(
        a, "ordo.v1.JobService/ExplainOccurrence", {"jobId": job_id, "time": occs[0]["nominalTime"]}
    )
    assert "was triggered" in explained["explanation"] and "succeeded" in explained["explanation"]

    preview = await call(
        a,
        "ordo.v1.JobService/PreviewSchedule",
        {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris", "count": 3, "after": "2026-11-20T12:00:00Z"},
    )
    assert [t["localTime"] for t in preview["times"]] == [
        "2026-11-23T09:00:00+01:00",
        "2026-11-24T09:00:00+01:00",
        "2026-11-25T09:00:00+01:00",
    ]


async def test_grpcurl_retries_and_dead_letter(cluster: Cluster) -> None:
    a = cluster.nodes[1].address
    body = {
        "type": "shell",
        "payload": {"command": "exit 1"},
        "maxAttempts": 3,
        "backoff": {"initial": "0.2s", "multiplier": 2, "max": "30s"},
        "timeout": "10s",
    }
    job_id = (await call(a, "ordo.v1.JobService/SubmitJob", body))["jobId"]

    async def dead() -> dict | None:
        job = await call(a, "ordo.v1.JobService/GetJob", {"jobId": job_id})
        return job if job["state"] == "JOB_STATE_DEAD_LETTER" else None

    job = await eventually(dead, timeout=30, what="DEAD_LETTER")
    assert [r["attempt"] for r in job["runs"]] == [1, 2, 3]
    # each failed attempt keeps the handler's traceback, ending with what it raised
    for run in job["runs"]:
        assert "Traceback (most recent call last)" in run["traceback"], run
        assert run["traceback"].rstrip().endswith("HandlerFailed: command exited with status 1"), run[
            "traceback"
        ][-300:]
    retried = await call(a, "ordo.v1.JobService/RetryJob", {"jobId": job_id})
    assert retried["state"] in (
        "JOB_STATE_TRIGGERED",
        "JOB_STATE_RUNNING",
        "JOB_STATE_FAILED",
        "JOB_STATE_RETRYING",
    )


async def test_grpcurl_exact_numbers_travel_as_json_text(cluster: Cluster) -> None:
    # Given a payload whose integer a double cannot hold, sent as JSON text
    a, b = cluster.nodes[0].address, cluster.nodes[1].address
    body = {"type": "echo", "payloadJson": '{"id": 9007199254740993, "n": [1, 2.5]}'}
    job_id = (await call(a, "ordo.v1.JobService/SubmitJob", body))["jobId"]

    async def succeeded() -> dict | None:
        job = await call(b, "ordo.v1.JobService/GetJob", {"jobId": job_id})
        return job if job["state"] == "JOB_STATE_SUCCEEDED" else None

    job = await eventually(succeeded, timeout=30, what="the echo job SUCCEEDED")

    # Then the handler got it exactly (echo returns its payload), and the text forms say so
    exact = '{"id":9007199254740993,"n":[1,2.5]}'
    assert job["payloadJson"] == exact
    assert job["resultJson"] == exact and job["runs"][0]["resultJson"] == exact
