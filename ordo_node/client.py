"""The Python client of ordo_node (asyncio), also used by the command line.

    async with Client("127.0.0.1:7001,127.0.0.1:7002") as client:
        job_id = await client.submit("echo", {"msg": "hi"}, delay=5)
        job = await client.get(job_id)

Any node serves any call. When a node answers UNAVAILABLE (no leader yet,
shutting down) or cannot be reached, the client tries the next address, with
a short backoff, until its timeout. A submission retried that way is safe
from duplicates only with an ``idempotency_key``.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf import duration_pb2

from .api.convert import value
from .pb import ordo_pb2, ordo_pb2_grpc
from .timeutil import format_us, from_datetime

DEFAULT_ADDRESSES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
ENV_ADDRESS = "ORDO_ADDRESS"


def submit_request(
    type: str,
    payload: Any = None,
    *,
    run_at: str | datetime | None = None,
    delay: float | timedelta | None = None,
    name: str = "",
    idempotency_key: str = "",
) -> ordo_pb2.SubmitJobRequest:
    """Build a SubmitJobRequest; ``run_at`` an RFC 3339 string or an aware datetime, ``delay`` seconds."""
    req = ordo_pb2.SubmitJobRequest(type=type, name=name, idempotency_key=idempotency_key)
    if payload is not None:
        req.payload.CopyFrom(value(payload))
    if isinstance(run_at, datetime):
        req.run_at = format_us(from_datetime(run_at))
    elif run_at:
        req.run_at = run_at
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        d = duration_pb2.Duration()
        d.FromMicroseconds(round(seconds * 1_000_000))
        req.delay.CopyFrom(d)
    return req


class Client:
    """An asyncio client for a cluster, given one or more node addresses."""

    def __init__(self, addresses: str | list[str] | None = None, *, timeout: float = 15.0) -> None:
        if addresses is None:
            addresses = os.environ.get(ENV_ADDRESS, DEFAULT_ADDRESSES)
        if isinstance(addresses, str):
            addresses = [a.strip() for a in addresses.split(",") if a.strip()]
        if not addresses:
            raise ValueError("no address given")
        self.addresses = addresses
        self.timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._current = 0

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every channel."""
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    def _channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = grpc.aio.insecure_channel(address)
        return ch

    async def _call(self, service: str, method: str, request: Any) -> Any:
        deadline = time.monotonic() + self.timeout
        delay = 0.1
        while True:
            address = self.addresses[self._current % len(self.addresses)]
            stub_cls = ordo_pb2_grpc.JobServiceStub if service == "jobs" else ordo_pb2_grpc.ClusterServiceStub
            stub = stub_cls(self._channel(address))
            remaining = deadline - time.monotonic()
            try:
                return await getattr(stub, method)(request, timeout=max(remaining, 0.1))
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() + delay >= deadline:
                    raise
            self._current += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def submit(self, type: str, payload: Any = None, **kwargs: Any) -> str:
        """Schedule a job; return its id once it is committed. See :func:`submit_request`."""
        reply = await self._call("jobs", "SubmitJob", submit_request(type, payload, **kwargs))
        return str(reply.job_id)

    async def submit_many(self, requests: list[ordo_pb2.SubmitJobRequest]) -> list[str]:
        """Schedule many jobs in one command; all or none."""
        reply = await self._call("jobs", "SubmitJobs", ordo_pb2.SubmitJobsRequest(jobs=requests))
        return list(reply.job_ids)

    async def get(self, job_id: str, *, consistent: bool = False) -> ordo_pb2.Job:
        """A job with its runs."""
        job: ordo_pb2.Job = await self._call(
            "jobs", "GetJob", ordo_pb2.GetJobRequest(job_id=job_id, consistent=consistent)
        )
        return job

    async def list_jobs(
        self, *, state: str = "", type: str = "", page_size: int = 0, page_token: str = ""
    ) -> ordo_pb2.ListJobsResponse:
        """A page of jobs, newest first; ``state`` like "SUCCEEDED"."""
        req = ordo_pb2.ListJobsRequest(type=type, page_size=page_size, page_token=page_token)
        if state:
            req.state = f"JOB_STATE_{state.upper().removeprefix('JOB_STATE_')}"  # type: ignore[assignment]
        page: ordo_pb2.ListJobsResponse = await self._call("jobs", "ListJobs", req)
        return page

    async def cancel(self, job_id: str) -> ordo_pb2.Job:
        """Cancel a job that has not started."""
        job: ordo_pb2.Job = await self._call("jobs", "CancelJob", ordo_pb2.CancelJobRequest(job_id=job_id))
        return job

    async def history(self, job_id: str) -> list[ordo_pb2.Event]:
        """The job's events, oldest first."""
        reply = await self._call("jobs", "GetJobHistory", ordo_pb2.GetJobHistoryRequest(job_id=job_id))
        return list(reply.events)

    async def cluster(self) -> ordo_pb2.ClusterStatus:
        """The cluster as the answering node sees it."""
        status: ordo_pb2.ClusterStatus = await self._call(
            "cluster", "GetClusterStatus", ordo_pb2.GetClusterStatusRequest()
        )
        return status
