"""The one error-to-status mapping: short messages, and requests that do not decode."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ordo_node.api.errors import DecodeErrors, short, status_of
from ordo_node.api.validate import MAX_MESSAGE_BYTES
from ordo_node.errors import InvalidArgument, NotFound
from ordo_node.pb import ordo_pb2, ordo_pb2_grpc

GARBAGE = b"\x0a\x05\xff\xfe\xfd\xfc\xfb"  # field 1 (a string) holding bytes that are no UTF-8


def test_a_short_message_is_kept() -> None:
    assert short("jobId: no job x") == "jobId: no job x"


@pytest.mark.parametrize("char", ["x", "é", "😀"], ids=["ascii", "two-byte", "four-byte"])
def test_a_long_message_is_cut_to_the_limit_on_a_character_boundary(char: str) -> None:
    message = "type: " + char * 100_000

    cut = short(message)

    assert len(cut.encode()) <= MAX_MESSAGE_BYTES
    assert cut.startswith("type: " + char) and cut.endswith("...")


def test_status_of_a_huge_refusal_still_reaches_the_client() -> None:
    # Regression: a 100 kB type in "unknown job type" exceeded the client's 16 KiB trailer limit.
    code, message = status_of(InvalidArgument("type", "unknown job type " + "x" * 100_000), "SubmitJob")

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("type: unknown job type xxx")
    assert len(message.encode()) <= MAX_MESSAGE_BYTES


def test_status_of_an_unexpected_error_is_internal_without_details() -> None:
    code, message = status_of(KeyError("secret detail"), "GetJob")

    assert code == grpc.StatusCode.INTERNAL
    assert "secret" not in message


class Jobs(ordo_pb2_grpc.JobServiceServicer):  # type: ignore[misc]
    """Just enough of JobService: one unary method and one that yields."""

    async def GetJob(
        self, request: ordo_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        if not request.job_id:
            raise NotFound("jobId: none")
        return ordo_pb2.Job(job_id=request.job_id)

    async def WatchJobs(
        self, request: ordo_pb2.WatchJobsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ordo_pb2.Event]:
        yield ordo_pb2.Event(seq=request.after_seq + 1, job_id=request.job_id)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    """A server with DecodeErrors, JobService and the health service, and a channel to it."""
    server = grpc.aio.server(interceptors=[DecodeErrors()])
    ordo_pb2_grpc.add_JobServiceServicer_to_server(Jobs(), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield ch
    finally:
        await ch.close()
        await server.stop(None)


async def test_a_unary_request_that_does_not_decode_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    # Regression: found by the fuzz; gRPC answers UNKNOWN when the deserializer raises.
    call = channel.unary_unary("/ordo.v1.JobService/GetJob")

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(GARBAGE, timeout=5)

    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith("request: Error parsing message")


async def test_a_unary_request_that_decodes_reaches_the_servicer(channel: grpc.aio.Channel) -> None:
    stub = ordo_pb2_grpc.JobServiceStub(channel)

    job = await stub.GetJob(ordo_pb2.GetJobRequest(job_id="j"), timeout=5)

    assert job.job_id == "j"


async def test_a_streaming_request_that_does_not_decode_is_invalid_argument(
    channel: grpc.aio.Channel,
) -> None:
    call = channel.unary_stream("/ordo.v1.JobService/WatchJobs")

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call(GARBAGE, timeout=5):
            pass

    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_streaming_request_that_decodes_streams(channel: grpc.aio.Channel) -> None:
    stub = ordo_pb2_grpc.JobServiceStub(channel)

    events = [e async for e in stub.WatchJobs(ordo_pb2.WatchJobsRequest(job_id="j", after_seq=4), timeout=5)]

    assert [(e.seq, e.job_id) for e in events] == [(5, "j")]


async def test_a_method_that_writes_instead_of_yielding_still_streams(channel: grpc.aio.Channel) -> None:
    # Health.Watch writes with context.write: the wrapper must not turn it into a generator.
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=5)

    first = await watch.read()
    watch.cancel()

    assert first.status == health_pb2.HealthCheckResponse.SERVING
