"""JobService: submit, read, list, cancel and the history of jobs."""

from __future__ import annotations

import logging
import uuid

import grpc

from .. import commands as c
from ..config import Config
from ..consensus import Consensus
from ..errors import InvalidArgument, NotFound
from ..handlers import Registry
from ..pb import ordo_pb2, ordo_pb2_grpc
from ..queries import MAX_PAGE, Queries
from ..timeutil import format_us, now_us
from . import validate
from .convert import event_message, job_message
from .errors import raise_refusal, rpc

log = logging.getLogger("ordo_node.jobs")

MAX_BATCH = 10_000


class JobService(ordo_pb2_grpc.JobServiceServicer):  # type: ignore[misc]
    """The public job API; every node serves it, followers included."""

    def __init__(self, config: Config, consensus: Consensus, queries: Queries, registry: Registry) -> None:
        self.config = config
        self.consensus = consensus
        self.queries = queries
        self.registry = registry

    async def _submit(self, specs: list[c.JobSpec]) -> list[str]:
        cmd = c.SubmitJobs(
            request_id=uuid.uuid4().hex, at=now_us(), node=self.config.node_id, jobs=tuple(specs)
        )
        result = await self.consensus.propose(cmd)
        raise_refusal(result)
        for spec, job_id, created in zip(specs, result["job_ids"], result["created"], strict=True):
            if created:
                log.info("Scheduling new job %s for %s", job_id, format_us(spec.run_at))
        return list(result["job_ids"])

    def _spec(self, req: ordo_pb2.SubmitJobRequest, now: int, prefix: str = "") -> c.JobSpec:
        return validate.job_spec(
            req,
            registry=self.registry,
            now=now,
            max_payload_bytes=self.config.max_payload_bytes,
            prefix=prefix,
        )

    @rpc
    async def SubmitJob(
        self, request: ordo_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.SubmitJobResponse:
        """Schedule one job; answer once it is committed."""
        ids = await self._submit([self._spec(request, now_us())])
        return ordo_pb2.SubmitJobResponse(job_id=ids[0])

    @rpc
    async def SubmitJobs(
        self, request: ordo_pb2.SubmitJobsRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.SubmitJobsResponse:
        """Schedule many jobs in one command: all or none."""
        if not request.jobs:
            raise InvalidArgument("jobs", "is empty")
        if len(request.jobs) > MAX_BATCH:
            raise InvalidArgument("jobs", f"has {len(request.jobs)} jobs; the limit is {MAX_BATCH}")
        now = now_us()
        specs = [self._spec(r, now, f"jobs[{i}].") for i, r in enumerate(request.jobs)]
        keys = [s.idempotency_key for s in specs if s.idempotency_key]
        if len(keys) != len(set(keys)):
            raise InvalidArgument("jobs", "two jobs in one batch share an idempotencyKey")
        return ordo_pb2.SubmitJobsResponse(job_ids=await self._submit(specs))

    async def _barrier(self, consistent: bool) -> None:
        if consistent:
            await self.consensus.propose(c.Barrier(node=self.config.node_id))

    @rpc
    async def GetJob(
        self, request: ordo_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """One job with its runs."""
        job_id = validate.job_id(request.job_id)
        await self._barrier(request.consistent)
        job = await self.queries.get_job(job_id)
        if job is None:
            raise NotFound(f"jobId: no job {job_id}")
        return job_message(job)

    @rpc
    async def ListJobs(
        self, request: ordo_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.ListJobsResponse:
        """A page of jobs, newest first, optionally of one state or type."""
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            raise InvalidArgument("pageSize", f"must be between 0 and {MAX_PAGE}")
        state = ""
        if request.state:
            name = (
                ordo_pb2.JobState.Name(request.state) if request.state in ordo_pb2.JobState.values() else ""
            )
            if not name:
                raise InvalidArgument("state", f"{request.state} is not a JobState")
            state = name.removeprefix("JOB_STATE_")
        await self._barrier(request.consistent)
        jobs, token = await self.queries.list_jobs(
            state=state, type_=request.type, page_size=request.page_size, page_token=request.page_token
        )
        return ordo_pb2.ListJobsResponse(jobs=[job_message(j) for j in jobs], next_page_token=token)

    @rpc
    async def CancelJob(
        self, request: ordo_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """Cancel a job that has not started; answer with the cancelled job."""
        job_id = validate.job_id(request.job_id)
        cmd = c.CancelJob(request_id=uuid.uuid4().hex, at=now_us(), node=self.config.node_id, job_id=job_id)
        raise_refusal(await self.consensus.propose(cmd))
        log.info("Cancelled job %s", job_id)
        job = await self.queries.get_job(job_id)
        if job is None:
            raise NotFound(f"jobId: no job {job_id}")
        return job_message(job)

    @rpc
    async def GetJobHistory(
        self, request: ordo_pb2.GetJobHistoryRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.GetJobHistoryResponse:
        """The job's events, oldest first."""
        job_id = validate.job_id(request.job_id)
        await self._barrier(request.consistent)
        events = await self.queries.history(job_id)
        if events is None:
            raise NotFound(f"jobId: no job {job_id}")
        return ordo_pb2.GetJobHistoryResponse(events=[event_message(e) for e in events])
