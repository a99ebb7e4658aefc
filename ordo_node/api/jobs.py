"""JobService: submit, read, list, cancel, retry, pause, run now; history, occurrences, previews, a watch."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import grpc

from .. import commands as c
from ..auth import Tokens, bearer
from ..clock import ClockGuard
from ..config import Config
from ..consensus import Consensus
from ..errors import InvalidArgument, NotFound
from ..handlers import Registry
from ..logs import BURST_LINES, log_jobs
from ..pb import ordo_pb2, ordo_pb2_grpc
from ..queries import JobRow, Queries, encode_token
from ..schedule import parse_schedule
from ..timeutil import format_us, now_us
from ..wire import ts
from ..workerhub import WorkerHub
from . import backfill
from . import validate as v
from .batcher import SubmitBatcher
from .convert import event_message, job_message, occurrence_message
from .errors import raise_refusal, rpc, rpc_stream
from .explain import explain, preview_times
from .options import spec_options
from .submission import clock_timed, job_spec

log = logging.getLogger("ordo_node.jobs")

# The shortest start of a job id that names a job. Ids are version-7 UUIDs: those of jobs
# created in the same few minutes share their first 8 characters, so any length is looked up.
MIN_PREFIX = 4
_PREFIX = re.compile(r"[0-9a-f-]+")


def id_or_prefix(value: str, field: str = "jobId") -> tuple[str, bool]:
    """A full job id (canonical) and True, or the lower-cased start of one and False."""
    if not value or len(value) >= v.MAX_JOB_ID:
        return v.job_id(value, field), True
    prefix = value.lower()
    if not _PREFIX.fullmatch(prefix):
        raise InvalidArgument(field, f"{value[:80]!r} is not a job id (a UUID) nor the start of one")
    if len(prefix) < MIN_PREFIX:
        raise InvalidArgument(
            field, f"{value!r} is too short to name a job: give at least {MIN_PREFIX} characters of its id"
        )
    return prefix, False


class Changes:
    """Wakes the watchers whenever this node applied something."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Something was applied."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Until the next notification, or ``timeout`` seconds."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


class JobService(ordo_pb2_grpc.JobServiceServicer):  # type: ignore[misc]
    """The public job API; every node serves it, followers included."""

    def __init__(
        self,
        config: Config,
        consensus: Consensus,
        queries: Queries,
        registry: Registry,
        changes: Changes,
        hub: WorkerHub | None = None,
    ) -> None:
        # The job types registered workers run are known too.
        self.hub = hub
        self.changes = changes
        self.batcher = SubmitBatcher(config.node_id, consensus)
        self.config = config
        self.consensus = consensus
        self.queries = queries
        self.registry = registry
        # A node whose clock is off the majority's refuses what it would have to time.
        self.clock = ClockGuard(consensus)
        self.tokens = Tokens(config.tokens)

    async def _submit(self, specs: list[c.JobSpec]) -> tuple[list[str], list[str]]:
        """Commit the jobs (all or none); their ids and notes (debounce, singleton), in order."""
        cmd = c.SubmitJobs(
            request_id=uuid.uuid4().hex, at=now_us(), node=self.config.node_id, jobs=tuple(specs)
        )
        result = await self.consensus.propose(cmd)
        raise_refusal(result)
        created = [
            (job_id, spec.run_at)
            for spec, job_id, new in zip(specs, result["job_ids"], result["created"], strict=True)
            if new
        ]
        # A burst's summary shows only the first and last times: format just those then.
        each = len(created) <= BURST_LINES or log.isEnabledFor(logging.DEBUG)
        log_jobs(
            log,
            "Scheduling new job %s for %s",
            "Scheduling %d new jobs: %s for %s .. %s for %s",
            [
                (job_id, format_us(at) if each or i in (0, len(created) - 1) else "")
                for i, (job_id, at) in enumerate(created)
            ],
        )
        return list(result["job_ids"]), list(result.get("notes") or [""] * len(specs))

    def _spec(self, req: ordo_pb2.SubmitJobRequest, now: int, prefix: str = "") -> c.JobSpec:
        return job_spec(
            req,
            registry=self.registry,
            now=now,
            max_payload_bytes=self.config.max_payload_bytes,
            prefix=prefix,
            elsewhere=self.hub.types if self.hub is not None else (),
        )

    @rpc
    async def SubmitJob(
        self, request: ordo_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.SubmitJobResponse:
        """Schedule one job; answer once it is committed (grouped with concurrent calls)."""
        what = clock_timed(request)
        if what:
            self.clock.refuse_timing(what)
        spec = self._spec(request, now_us())
        answer = await self.batcher.submit(spec)
        raise_refusal(answer)
        if answer["created"]:
            log.info(
                "Scheduling new job %s for %s",
                answer["job_id"],
                format_us(spec.run_at),
                extra={"job": answer["job_id"]},
            )
        if answer.get("note"):
            log.info("Submission: %s", answer["note"], extra={"job": answer["job_id"]})
        return ordo_pb2.SubmitJobResponse(job_id=answer["job_id"], note=answer.get("note", ""))

    @rpc
    async def SubmitJobs(
        self, request: ordo_pb2.SubmitJobsRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.SubmitJobsResponse:
        """Schedule many jobs in one command: all or none."""
        if not request.jobs:
            raise InvalidArgument("jobs", "is empty")
        if len(request.jobs) > v.MAX_BATCH:
            raise InvalidArgument("jobs", f"has {len(request.jobs)} jobs; the limit is {v.MAX_BATCH}")
        what = next((w for r in request.jobs if (w := clock_timed(r))), "")
        if what:
            self.clock.refuse_timing(what)
        now = now_us()
        specs = [self._spec(r, now, f"jobs[{i}].") for i, r in enumerate(request.jobs)]
        # One batch is one Raft command: bound it, yet always let one job of the largest payload through.
        total = sum(len(s.payload.encode()) for s in specs)
        limit = max(v.MAX_BATCH_PAYLOAD_BYTES, self.config.max_payload_bytes)
        if total > limit:
            raise InvalidArgument("jobs", f"the payloads add up to {total} bytes; the limit is {limit}")
        keys = [s.idempotency_key for s in specs if s.idempotency_key]
        if len(keys) != len(set(keys)):
            raise InvalidArgument("jobs", "two jobs in one batch share an idempotencyKey")
        ids, notes = await self._submit(specs)
        return ordo_pb2.SubmitJobsResponse(job_ids=ids, notes=notes if any(notes) else [])

    async def _barrier(self, consistent: bool) -> None:
        if consistent:
            await self.consensus.propose(c.Barrier(node=self.config.node_id))

    async def _job_id(self, value: str, field: str = "jobId") -> str:
        """The id of the job a request names: a full id as given (no read), or the one job
        whose id starts with a prefix (NOT_FOUND if none does, INVALID_ARGUMENT if several do)."""
        text, full = id_or_prefix(value, field)
        if full:
            return text
        found = await self.queries.job_ids_with_prefix(text, limit=2)
        if not found:
            raise NotFound(f"{field}: no job id starts with {text!r}")
        if len(found) > 1:
            raise InvalidArgument(
                field,
                f"{text!r} is ambiguous: {found[0]}, {found[1]} and maybe more start with it;"
                " give more characters",
            )
        return found[0]

    @rpc
    async def GetJob(
        self, request: ordo_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """One job with its runs."""
        await self._barrier(request.consistent)
        job_id = await self._job_id(request.job_id)
        job = await self.queries.get_job(job_id)
        if job is None:
            raise NotFound(f"jobId: no job {job_id}")
        return job_message(job)

    @rpc
    async def ListJobs(
        self, request: ordo_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.ListJobsResponse:
        """A page of jobs, newest first, optionally of one state or type."""
        v.count(request.page_size, "pageSize", v.MAX_PAGE)
        state = v.enum(ordo_pb2.JobState, request.state, "state").removeprefix("JOB_STATE_")
        v.text(request.type, "type", v.MAX_TYPE)
        v.text(request.name, "name", v.MAX_NAME)
        v.page_token(request.page_token)
        await self._barrier(request.consistent)
        jobs, token = await self.queries.list_jobs(
            state=state,
            type_=request.type,
            name=request.name,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        messages = [job_message(j) for j in jobs]
        # Jobs with large payloads end the page early, so that a client with gRPC's default
        # 4 MiB receive limit can read every page.
        fits = v.fit([m.ByteSize() for m in messages], v.MAX_PAGE_BYTES)
        if fits < len(messages):
            token = encode_token(jobs[fits - 1].position, jobs[fits - 1].job_id)
        return ordo_pb2.ListJobsResponse(jobs=messages[:fits], next_page_token=token)

    async def _change(self, cmd: c.CancelJob | c.RetryJob | c.PauseJob | c.TriggerNow) -> ordo_pb2.Job:
        raise_refusal(await self.consensus.propose(cmd))
        job = await self.queries.get_job(cmd.job_id)
        if job is None:
            raise NotFound(f"jobId: no job {cmd.job_id}")
        return job_message(job)

    def caller(self, context: grpc.aio.ServicerContext) -> str:
        """The name of the token a call carries, for the job's history; "" without ``[auth]`` tokens."""
        if not self.tokens.enabled:
            return ""
        token = self.tokens.find(bearer(context.invocation_metadata()))
        return token.name if token is not None else ""

    # The operator's actions: the RPCs below and the dashboard (dashboard/actions.py) both
    # come through these, with ``by`` naming who asked.

    async def cancel(self, job_id: str, by: str = "") -> ordo_pb2.Job:
        """Cancel a job: a scheduled one, a recurring schedule, or its running attempts."""
        job_id = await self._job_id(job_id)
        job = await self._change(
            c.CancelJob(
                request_id=uuid.uuid4().hex, at=now_us(), node=self.config.node_id, job_id=job_id, by=by
            )
        )
        log.info("Cancelled job %s%s", job_id, f" by {by}" if by else "")
        return job

    async def retry(self, job_id: str, by: str = "") -> ordo_pb2.Job:
        """Run a failed job's last run again, with a fresh attempt budget."""
        return await self._change(
            c.RetryJob(
                request_id=uuid.uuid4().hex,
                at=now_us(),
                node=self.config.node_id,
                job_id=await self._job_id(job_id),
                by=by,
            )
        )

    async def pause(self, job_id: str, note: str, pause: bool, by: str = "") -> ordo_pb2.Job:
        """Pause (``pause``) or resume a recurring job, with a note for its history."""
        v.text(note, "note", v.MAX_NOTE)
        return await self._change(
            c.PauseJob(
                request_id=uuid.uuid4().hex,
                at=now_us(),
                node=self.config.node_id,
                job_id=await self._job_id(job_id),
                pause=pause,
                note=note,
                by=by,
            )
        )

    async def trigger_now(self, job_id: str, by: str = "", note: str = "") -> ordo_pb2.Job:
        """Run a recurring job once now, under its overlap policy; its schedule does not move."""
        v.text(note, "note", v.MAX_NOTE)
        job_id = await self._job_id(job_id)
        job = await self._change(
            c.TriggerNow(
                request_id=uuid.uuid4().hex,
                at=now_us(),
                node=self.config.node_id,
                job_id=job_id,
                by=by,
                note=note,
            )
        )
        log.info("Triggered job %s now%s", job_id, f" by {by}" if by else "")
        return job

    @rpc
    async def CancelJob(
        self, request: ordo_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """Cancel a job: a scheduled one, a recurring schedule, or its running attempts."""
        return await self.cancel(request.job_id, self.caller(context))

    @rpc
    async def RetryJob(
        self, request: ordo_pb2.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """Run a failed job's last run again, with a fresh attempt budget."""
        return await self.retry(request.job_id, self.caller(context))

    @rpc
    async def PauseJob(
        self, request: ordo_pb2.PauseJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """Pause a recurring job."""
        return await self.pause(request.job_id, request.note, True, self.caller(context))

    @rpc
    async def ResumeJob(
        self, request: ordo_pb2.ResumeJobRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """Resume a paused job."""
        return await self.pause(request.job_id, request.note, False, self.caller(context))

    @rpc
    async def TriggerNow(
        self, request: ordo_pb2.TriggerNowRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Job:
        """Run a recurring job once now, beside its schedule."""
        return await self.trigger_now(request.job_id, self.caller(context), request.note)

    async def _job(self, job_id: str) -> JobRow:
        job = await self.queries.get_job(await self._job_id(job_id))
        if job is None:
            raise NotFound(f"jobId: no job {job_id}")
        return job

    @rpc
    async def ListOccurrences(
        self, request: ordo_pb2.ListOccurrencesRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.ListOccurrencesResponse:
        """The job's occurrences, newest first, with their fates."""
        job = await self._job(request.job_id)
        v.count(request.page_size, "pageSize", v.MAX_PAGE)
        fate = v.enum(ordo_pb2.Fate, request.fate, "fate").removeprefix("FATE_")
        v.page_token(request.page_token)
        items, token = await self.queries.occurrences(
            job.job_id,
            since=v.time_field(getattr(request, "from"), "from"),
            until=v.time_field(request.to, "to"),
            fate=fate,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return ordo_pb2.ListOccurrencesResponse(
            occurrences=[occurrence_message(o) for o in items], next_page_token=token
        )

    @rpc
    async def BackfillSchedule(
        self, request: ordo_pb2.BackfillScheduleRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.BackfillScheduleResponse:
        """Run past occurrences again, chosen by their stored fates (api/backfill.py)."""
        job = await self._job(request.job_id)
        now = now_us()
        reprocess, limit, (since, until) = backfill.backfill_command(request, job, now)
        await self._barrier(True)  # the fates as committed, not as this node lags behind
        planned = await backfill.plan(self.queries, job, reprocess, since, until)
        if request.dry_run or not planned:
            return backfill.response(planned, {}, bool(request.dry_run))
        cmd = backfill.command(uuid.uuid4().hex, now, self.config.node_id, job, reprocess, limit, planned)
        result = await self.consensus.propose(cmd)
        raise_refusal(result)
        return backfill.response(planned, {n: r for n, r in result["runs"]}, False)

    @rpc
    async def ExplainOccurrence(
        self, request: ordo_pb2.ExplainOccurrenceRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.Explanation:
        """What happened at a time of the job's schedule, and why."""
        job = await self._job(request.job_id)
        at = v.time_field(request.time, "time")
        if at is None:
            raise InvalidArgument("time", "is required (RFC 3339)")
        occ, text = await explain(self.queries, job, at, now_us())
        reply = ordo_pb2.Explanation(explanation=text)
        if occ is not None:
            reply.occurrence.CopyFrom(occurrence_message(occ))
        return reply

    @rpc
    async def PreviewSchedule(
        self, request: ordo_pb2.PreviewScheduleRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.PreviewScheduleResponse:
        """The next fire times of a schedule, without creating anything."""
        v.text(request.cron, "cron", v.MAX_CRON, required=True)
        v.count(request.count, "count", v.MAX_PREVIEW)
        if request.max_runs < 0:
            raise InvalidArgument("maxRuns", "must not be negative")
        specs = spec_options(request.more_cron, request.exclude_dates, request.exclude_cron, "")
        schedule = parse_schedule(
            request.cron,
            timezone=v.timezone(request.timezone, "timezone"),
            start_at=v.time_field(request.start_at, "startAt"),
            end_at=v.time_field(request.end_at, "endAt"),
            max_runs=request.max_runs,
            jitter=v.duration(request.jitter, "jitter", maximum=v.MAX_JITTER_US),
            key="preview",
            more=specs.get("more_cron", ()),
            exclude_dates=specs.get("exclude_dates", ()),
            exclude_cron=specs.get("exclude_cron", ()),
        )
        after = v.time_field(request.after, "after") or now_us()
        times = preview_times(schedule, after, request.count or 10)
        return ordo_pb2.PreviewScheduleResponse(
            times=[
                ordo_pb2.PreviewTime(nominal_time=ts(n), fire_time=ts(f), local_time=text)
                for n, f, text in times
            ]
        )

    @rpc_stream
    async def WatchJobs(
        self, request: ordo_pb2.WatchJobsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ordo_pb2.Event]:
        """Stream the events applied on this node, of one job or all, as they come."""
        job_id = await self._job_id(request.job_id) if request.job_id else ""
        if request.after_seq < 0:
            raise InvalidArgument("afterSeq", "must not be negative")
        seq = request.after_seq or await self.queries.last_event_seq()
        while True:
            events = await self.queries.events_after(seq, job_id)
            for e in events:
                yield event_message(e)
                seq = e.seq
            if not events:
                await self.changes.wait(1.0)

    @rpc
    async def GetJobHistory(
        self, request: ordo_pb2.GetJobHistoryRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.GetJobHistoryResponse:
        """The job's events, oldest first."""
        job_id = await self._job_id(request.job_id)
        await self._barrier(request.consistent)
        events = await self.queries.history(job_id)
        if events is None:
            raise NotFound(f"jobId: no job {job_id}")
        return ordo_pb2.GetJobHistoryResponse(events=[event_message(e) for e in events])
