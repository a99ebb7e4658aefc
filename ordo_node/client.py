"""The Python client of ordo_node (asyncio), also used by the command line.

    async with Client("127.0.0.1:7001,127.0.0.1:7002") as client:
        job_id = await client.submit("echo", {"msg": "hi"}, delay=5)
        job = await client.get(job_id)

Wherever a job id is taken, a unique start of one (4 or more characters) will
do; a start that several ids share is refused (INVALID_ARGUMENT, "ambiguous").

Any node serves any call. When a node answers UNAVAILABLE (no leader yet,
shutting down) or cannot be reached, the client tries the next address, with
a short backoff, until its timeout. A submission retried that way is safe
from duplicates only with an ``idempotency_key``.

Secured clusters: ``token`` (or $ORDO_TOKEN) is sent as ``authorization:
Bearer <token>``; ``ca_file`` (or $ORDO_CA_FILE) turns on TLS and trusts that
CA, and ``cert_file``/``key_file`` (or $ORDO_CERT_FILE/$ORDO_KEY_FILE) present
a client certificate to a node that requires one (mutual TLS).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Coroutine, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2

from .channels import client_credentials, is_loopback, open_channel
from .pb import ordo_pb2, ordo_pb2_grpc
from .timeutil import format_us, from_datetime

DEFAULT_ADDRESSES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
ENV_ADDRESS = "ORDO_ADDRESS"
ENV_TOKEN = "ORDO_TOKEN"
ENV_CA_FILE = "ORDO_CA_FILE"
ENV_CERT_FILE = "ORDO_CERT_FILE"
ENV_KEY_FILE = "ORDO_KEY_FILE"


Seconds = float | timedelta
log = logging.getLogger("ordo_node.client")
T = TypeVar("T")


def _duration(value: Seconds) -> duration_pb2.Duration:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    d = duration_pb2.Duration()
    d.FromMicroseconds(round(seconds * 1_000_000))
    return d


def _time(value: str | datetime, name: str = "time") -> str:
    """An RFC 3339 text as given, or an aware datetime as one; a naive datetime is refused."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name}: a naive datetime ({value.isoformat()}) has no time zone; give an aware one,"
            " e.g. datetime.now(timezone.utc) or dt.replace(tzinfo=ZoneInfo('Europe/Paris'))"
        )
    return format_us(from_datetime(value))


def _backoff(backoff: dict[str, float]) -> ordo_pb2.Backoff:
    msg = ordo_pb2.Backoff(
        multiplier=float(backoff.get("multiplier", 0)), jitter=float(backoff.get("jitter", 0))
    )
    if "initial" in backoff:
        msg.initial.CopyFrom(_duration(backoff["initial"]))
    if "max" in backoff:
        msg.max.CopyFrom(_duration(backoff["max"]))
    return msg


def submit_request(
    type: str,
    payload: Any = None,
    *,
    run_at: str | datetime | None = None,
    delay: Seconds | None = None,
    name: str = "",
    idempotency_key: str = "",
    cron: str = "",
    timezone: str = "",
    start_at: str | datetime | None = None,
    end_at: str | datetime | None = None,
    max_runs: int = 0,
    jitter: Seconds | None = None,
    max_attempts: int = 0,
    backoff: dict[str, float] | None = None,
    timeout: Seconds | None = None,
    priority: int = 0,
    catch_up: str = "",
    catch_up_window: Seconds | None = None,
    overlap: str = "",
    tags: list[str] | None = None,
    long_running: bool = False,
    after: Sequence[str] = (),
    after_condition: str = "",
    concurrency_key: str = "",
    concurrency_limit: int = 0,
    pause_on_failure: int = 0,
    rate_limit: dict[str, Any] | None = None,
    buffer_limit: int = 0,
    more_cron: Sequence[str] = (),
    exclude_dates: Sequence[str] = (),
    exclude_cron: Sequence[str] = (),
    debounce: dict[str, Any] | None = None,
    singleton: dict[str, Any] | None = None,
) -> ordo_pb2.SubmitJobRequest:
    """Build a SubmitJobRequest.

    Times are RFC 3339 strings or aware datetimes; durations are seconds or
    timedeltas. ``backoff`` takes ``initial``, ``multiplier``, ``max`` (seconds)
    and ``jitter``; ``catch_up`` is SKIP, ONE or ALL; ``overlap`` ALLOW, SKIP,
    BUFFER_ONE or CANCEL_OTHER. ``after``: job ids this one runs after, as ``after_condition``
    (SUCCEEDED or FINISHED) says; ``concurrency_key``/``concurrency_limit``: at most that many runs
    holding the key at once, cluster-wide; ``pause_on_failure``: a recurring job pauses itself after
    that many consecutive occurrences failed for good; ``rate_limit``: ``{"key": ..., "per_second"
    or "per_minute": ..., "burst": ...}``, a token bucket per key, cluster-wide. ``buffer_limit``: how
    many occurrences overlap BUFFER_ALL keeps waiting; ``more_cron``: specs beside ``cron`` (the earliest
    next time of all fires); ``exclude_dates`` (YYYY-MM-DD) and ``exclude_cron``: times that do not fire.
    ``debounce``: ``{"key": ..., "window": seconds, "mode": "TRAILING" or "LEADING", "max_wait":
    seconds}``, a burst of submissions with the key makes one run; ``singleton``: ``{"key": ...,
    "mode": "SKIP" or "REPLACE"}``, one job per key queued or running (see :meth:`Client.submit_noted`).
    """
    req = ordo_pb2.SubmitJobRequest(
        type=type,
        name=name,
        idempotency_key=idempotency_key,
        cron=cron,
        timezone=timezone,
        max_runs=max_runs,
        max_attempts=max_attempts,
        priority=priority,
        tags=tags or [],
        long_running=long_running,
        after=list(after),
        concurrency_key=concurrency_key,
        concurrency_limit=concurrency_limit,
        pause_on_failure=pause_on_failure,
        buffer_limit=buffer_limit,
        more_cron=list(more_cron),
        exclude_dates=list(exclude_dates),
        exclude_cron=list(exclude_cron),
    )
    _flow_fields(req, after_condition, rate_limit)
    _join_fields(req, debounce, singleton)
    if payload is not None:
        # As JSON text: integers arrive exactly (a protobuf Value would carry them as doubles).
        req.payload_json = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    if run_at:
        req.run_at = _time(run_at, "run_at")
    if start_at:
        req.start_at = _time(start_at, "start_at")
    if end_at:
        req.end_at = _time(end_at, "end_at")
    for field, seconds in (("delay", delay), ("jitter", jitter), ("timeout", timeout)):
        if seconds is not None:
            getattr(req, field).CopyFrom(_duration(seconds))
    if catch_up_window is not None:
        req.catch_up_window.CopyFrom(_duration(catch_up_window))
    if backoff:
        req.backoff.CopyFrom(_backoff(backoff))
    if catch_up:
        req.catch_up = ordo_pb2.CatchUp.Value(f"CATCH_UP_{catch_up.upper()}")  # type: ignore[assignment]
    if overlap:
        req.overlap = ordo_pb2.Overlap.Value(f"OVERLAP_{overlap.upper()}")  # type: ignore[assignment]
    return req


def _flow_fields(
    req: ordo_pb2.SubmitJobRequest, after_condition: str, rate_limit: dict[str, Any] | None
) -> None:
    """Set afterCondition (SUCCEEDED or FINISHED) and the rate limit, when given."""
    if after_condition:
        req.after_condition = ordo_pb2.AfterCondition.Value(f"AFTER_CONDITION_{after_condition.upper()}")  # type: ignore[assignment]
    if rate_limit:
        req.rate_limit.CopyFrom(ordo_pb2.RateLimit(**rate_limit))


def _join_fields(
    req: ordo_pb2.SubmitJobRequest, debounce: dict[str, Any] | None, singleton: dict[str, Any] | None
) -> None:
    """Set debounce and singleton, when given."""
    if debounce:
        d = req.debounce
        d.key = debounce.get("key", "")
        if debounce.get("window") is not None:
            d.window.CopyFrom(_duration(debounce["window"]))
        if debounce.get("max_wait") is not None:
            d.max_wait.CopyFrom(_duration(debounce["max_wait"]))
        if debounce.get("mode"):
            d.mode = ordo_pb2.DebounceMode.Value(f"DEBOUNCE_MODE_{debounce['mode'].upper()}")  # type: ignore[assignment]
    if singleton:
        req.singleton.key = singleton.get("key", "")
        if singleton.get("mode"):
            req.singleton.mode = ordo_pb2.SingletonMode.Value(f"SINGLETON_MODE_{singleton['mode'].upper()}")  # type: ignore[assignment]


# A call gives up this many seconds after its start when no address could be reached at all
# (not one answered, even with UNAVAILABLE): the cluster is not there, or the addresses are wrong.
UNREACHABLE_AFTER = 2.0


def _unreachable(e: grpc.aio.AioRpcError) -> bool:
    """True when the call failed to reach a node (refused, no route), not when a node answered."""
    text = f"{e.details() or ''} {e.debug_error_string() or ''}".lower()
    return "failed to connect" in text or "connection refused" in text or "no route to host" in text


def _nobody_answers(addresses: list[str], seconds: float, last: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
    """UNAVAILABLE saying, in one line, that no address answered."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details=(
            f"no node answers at {', '.join(addresses)} (tried for {seconds:.1f}s: connection refused"
            f" or unreachable); is the cluster running, and are the addresses right"
            f" (--address or ${ENV_ADDRESS})?"
        ),
        debug_error_string=last.debug_error_string(),
    )


# The job states after which nothing more happens to a job.
FINAL_STATES = frozenset(
    {
        ordo_pb2.JOB_STATE_SUCCEEDED,
        ordo_pb2.JOB_STATE_FAILED,
        ordo_pb2.JOB_STATE_DEAD_LETTER,
        ordo_pb2.JOB_STATE_CANCELLED,
        ordo_pb2.JOB_STATE_SKIPPED,
    }
)


class JobFailed(Exception):
    """A job ended without success (FAILED, DEAD_LETTER or CANCELLED): why, from its last attempt."""

    def __init__(self, job: ordo_pb2.Job) -> None:
        last = job.runs[-1] if job.runs else None
        self.job = job
        self.job_id = job.job_id
        self.state = ordo_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
        self.error = job.error or (last.error if last else "")
        self.attempt = last.attempt if last else 0
        self.traceback = last.traceback if last else ""
        super().__init__(
            f"job {job.job_id} {self.state}"
            + (f" after attempt {self.attempt}" if self.attempt else "")
            + (f": {self.error}" if self.error else "")
        )


class Client:
    """An asyncio client for a cluster, given one or more node addresses."""

    def __init__(
        self,
        addresses: str | list[str] | None = None,
        *,
        timeout: float = 15.0,
        token: str | None = None,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        server_name: str = "",
    ) -> None:
        token = token if token is not None else os.environ.get(ENV_TOKEN, "")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        ca_file = ca_file or os.environ.get(ENV_CA_FILE) or None
        cert_file = cert_file or os.environ.get(ENV_CERT_FILE) or None
        key_file = key_file or os.environ.get(ENV_KEY_FILE) or None
        if bool(cert_file) != bool(key_file):
            raise ValueError("give both cert_file and key_file, or neither")
        if (cert_file or server_name) and not ca_file:
            raise ValueError("cert_file and server_name need ca_file (TLS)")
        self._credentials = client_credentials(ca_file, cert_file, key_file)
        self._server_name = server_name
        if addresses is None:
            addresses = os.environ.get(ENV_ADDRESS, DEFAULT_ADDRESSES)
        if isinstance(addresses, str):
            addresses = [a.strip() for a in addresses.split(",") if a.strip()]
        if not addresses:
            raise ValueError("no address given")
        if token and self._credentials is None and not all(map(is_loopback, addresses)):
            log.warning("sending a bearer token without TLS (no ca_file): anyone on the path can read it")
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
            ch = self._channels[address] = open_channel(
                address, self._credentials, server_name=self._server_name
            )
        return ch

    async def _call(self, service: str, method: str, request: Any) -> Any:
        started = time.monotonic()
        deadline = started + self.timeout
        delay = 0.1
        refused: set[str] = set()  # addresses that could not be reached at all during this call
        while True:
            address = self.addresses[self._current % len(self.addresses)]
            stub_cls = ordo_pb2_grpc.JobServiceStub if service == "jobs" else ordo_pb2_grpc.ClusterServiceStub
            stub = stub_cls(self._channel(address))
            remaining = deadline - time.monotonic()
            try:
                return await getattr(stub, method)(
                    request, timeout=max(remaining, 0.1), metadata=self._metadata
                )
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() + delay >= deadline:
                    raise
                if _unreachable(e):
                    refused.add(address)
                else:  # a node answered (no leader yet, stopping): the cluster is there; wait for it
                    refused.clear()
                if (
                    len(refused) == len(set(self.addresses))
                    and time.monotonic() - started >= UNREACHABLE_AFTER
                ):
                    raise _nobody_answers(self.addresses, time.monotonic() - started, e) from None
            self._current += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def submit(self, type: str, payload: Any = None, **kwargs: Any) -> str:
        """Schedule a job; return its id once it is committed. See :func:`submit_request`."""
        reply = await self._call("jobs", "SubmitJob", submit_request(type, payload, **kwargs))
        return str(reply.job_id)

    async def submit_noted(self, type: str, payload: Any = None, **kwargs: Any) -> tuple[str, str]:
        """As :meth:`submit`, with what debounce or singleton did to the submission: (job id, note).

        The note is "" when the submission created the job; else "merged into job ...", "skipped:
        ..." (the id is the job kept) or "replaced job ..." (the id is the new job).
        """
        reply = await self._call("jobs", "SubmitJob", submit_request(type, payload, **kwargs))
        return str(reply.job_id), str(reply.note)

    async def send(self, request: ordo_pb2.SubmitJobRequest) -> str:
        """Schedule the job a SubmitJobRequest describes (see :func:`submit_request`); its id."""
        reply = await self._call("jobs", "SubmitJob", request)
        return str(reply.job_id)

    async def wait(self, job_id: str, timeout: float | None = None) -> ordo_pb2.Job:
        """The job once it has ended (SUCCEEDED, FAILED, DEAD_LETTER or CANCELLED).

        Polls GetJob, more slowly as time passes (up to once a second); rides out a
        leader change. Raises TimeoutError after ``timeout`` seconds (None: no limit).
        A recurring job ends only when its schedule does.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.05
        while True:
            job = await self.get(job_id)
            if job.state in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() + pause > deadline:
                raise TimeoutError(
                    f"job {job_id} is still {ordo_pb2.JobState.Name(job.state).removeprefix('JOB_STATE_')}"
                    f" after {timeout:g}s"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    async def result(self, job_id: str, timeout: float | None = None) -> Any:
        """What the job's handler returned, as Python data (numbers exact), once it succeeded.

        Raises JobFailed (the error, the attempt and the handler's traceback) if it ended
        otherwise, and TimeoutError as :meth:`wait` does.
        """
        job = await self.wait(job_id, timeout)
        if job.state != ordo_pb2.JOB_STATE_SUCCEEDED:
            raise JobFailed(job)
        return json.loads(job.result_json) if job.result_json else None

    async def submit_many(self, jobs: Sequence[dict[str, Any] | ordo_pb2.SubmitJobRequest]) -> list[str]:
        """Schedule many jobs in one command; all or none; their ids in order.

        Each job is a dict of :func:`submit_request`'s arguments
        (``{"type": "echo", "payload": {...}, "delay": 5}``) or a SubmitJobRequest.
        """
        return [job_id for job_id, _ in await self.submit_many_noted(jobs)]

    async def submit_many_noted(
        self, jobs: Sequence[dict[str, Any] | ordo_pb2.SubmitJobRequest]
    ) -> list[tuple[str, str]]:
        """As :meth:`submit_many`, with each job's note (debounce, singleton; see :meth:`submit_noted`)."""
        requests = [j if isinstance(j, ordo_pb2.SubmitJobRequest) else submit_request(**j) for j in jobs]
        reply = await self._call("jobs", "SubmitJobs", ordo_pb2.SubmitJobsRequest(jobs=requests))
        notes = list(reply.notes) or [""] * len(reply.job_ids)
        return list(zip(reply.job_ids, notes, strict=True))

    async def get(self, job_id: str, *, consistent: bool = False) -> ordo_pb2.Job:
        """A job with its runs."""
        job: ordo_pb2.Job = await self._call(
            "jobs", "GetJob", ordo_pb2.GetJobRequest(job_id=job_id, consistent=consistent)
        )
        return job

    async def list_jobs(
        self,
        *,
        state: str = "",
        type: str = "",
        name: str = "",
        page_size: int = 0,
        page_token: str = "",
        consistent: bool = False,
    ) -> ordo_pb2.ListJobsResponse:
        """A page of jobs, newest first; ``state`` like "SUCCEEDED", ``name`` a job's exact name."""
        req = ordo_pb2.ListJobsRequest(
            type=type, name=name, page_size=page_size, page_token=page_token, consistent=consistent
        )
        if state:
            req.state = f"JOB_STATE_{state.upper().removeprefix('JOB_STATE_')}"  # type: ignore[assignment]
        page: ordo_pb2.ListJobsResponse = await self._call("jobs", "ListJobs", req)
        return page

    async def cancel(self, job_id: str) -> ordo_pb2.Job:
        """Cancel a job that has not started."""
        job: ordo_pb2.Job = await self._call("jobs", "CancelJob", ordo_pb2.CancelJobRequest(job_id=job_id))
        return job

    async def retry(self, job_id: str) -> ordo_pb2.Job:
        """Run a failed job's last run again."""
        job: ordo_pb2.Job = await self._call("jobs", "RetryJob", ordo_pb2.RetryJobRequest(job_id=job_id))
        return job

    async def pause(self, job_id: str, note: str = "") -> ordo_pb2.Job:
        """Pause a recurring job."""
        job: ordo_pb2.Job = await self._call(
            "jobs", "PauseJob", ordo_pb2.PauseJobRequest(job_id=job_id, note=note)
        )
        return job

    async def resume(self, job_id: str, note: str = "") -> ordo_pb2.Job:
        """Resume a paused job."""
        job: ordo_pb2.Job = await self._call(
            "jobs", "ResumeJob", ordo_pb2.ResumeJobRequest(job_id=job_id, note=note)
        )
        return job

    async def trigger_now(self, job_id: str, note: str = "") -> ordo_pb2.Job:
        """Run a recurring job once now, beside its schedule (under its overlap policy); ``note`` is kept
        in the occurrence's reason."""
        job: ordo_pb2.Job = await self._call(
            "jobs", "TriggerNow", ordo_pb2.TriggerNowRequest(job_id=job_id, note=note)
        )
        return job

    async def occurrences(
        self, job_id: str, *, fate: str = "", page_size: int = 0, page_token: str = ""
    ) -> ordo_pb2.ListOccurrencesResponse:
        """A page of the job's occurrences, newest first; ``fate`` like "MISSED"."""
        req = ordo_pb2.ListOccurrencesRequest(job_id=job_id, page_size=page_size, page_token=page_token)
        if fate:
            req.fate = ordo_pb2.Fate.Value(f"FATE_{fate.upper().removeprefix('FATE_')}")  # type: ignore[assignment]
        page: ordo_pb2.ListOccurrencesResponse = await self._call("jobs", "ListOccurrences", req)
        return page

    async def backfill(
        self,
        job_id: str,
        since: str | datetime,
        until: str | datetime,
        *,
        reprocess: str = "MISSING",
        overlap: str = "",
        max_concurrent: int = 0,
        dry_run: bool = False,
    ) -> ordo_pb2.BackfillScheduleResponse:
        """Run the past occurrences of a recurring job in [since, until] again, chosen by their stored
        fates (``reprocess`` MISSING, FAILED or ALL); ``dry_run`` only lists them."""
        req = ordo_pb2.BackfillScheduleRequest(
            job_id=job_id,
            to=_time(until, "until"),
            reprocess=f"REPROCESS_{reprocess.upper().removeprefix('REPROCESS_')}",
            max_concurrent=max_concurrent,
            dry_run=dry_run,
        )
        setattr(req, "from", _time(since, "since"))
        if overlap:
            req.overlap = ordo_pb2.Overlap.Value(f"OVERLAP_{overlap.upper().removeprefix('OVERLAP_')}")  # type: ignore[assignment]
        reply: ordo_pb2.BackfillScheduleResponse = await self._call("jobs", "BackfillSchedule", req)
        return reply

    async def explain(self, job_id: str, time: str | datetime) -> ordo_pb2.Explanation:
        """What happened at ``time`` of the job's schedule, and why."""
        req = ordo_pb2.ExplainOccurrenceRequest(job_id=job_id, time=_time(time, "time"))
        reply: ordo_pb2.Explanation = await self._call("jobs", "ExplainOccurrence", req)
        return reply

    async def preview(
        self,
        cron: str,
        *,
        timezone: str = "",
        count: int = 10,
        after: str | datetime | None = None,
        more_cron: Sequence[str] = (),
        exclude_dates: Sequence[str] = (),
        exclude_cron: Sequence[str] = (),
    ) -> list[ordo_pb2.PreviewTime]:
        """The next fire times of a schedule (``more_cron`` and the exclusions as in a submission)."""
        req = ordo_pb2.PreviewScheduleRequest(
            cron=cron,
            timezone=timezone,
            count=count,
            more_cron=list(more_cron),
            exclude_dates=list(exclude_dates),
            exclude_cron=list(exclude_cron),
        )
        if after:
            req.after = _time(after, "after")
        reply = await self._call("jobs", "PreviewSchedule", req)
        return list(reply.times)

    async def watch(self, job_id: str = "", after_seq: int = 0) -> AsyncGenerator[ordo_pb2.Event, None]:
        """Events as they are applied on the first reachable node (not retried once streaming)."""
        stub = ordo_pb2_grpc.JobServiceStub(
            self._channel(self.addresses[self._current % len(self.addresses)])
        )
        request = ordo_pb2.WatchJobsRequest(job_id=job_id, after_seq=after_seq)
        async for event in stub.WatchJobs(request, metadata=self._metadata):
            yield event

    async def history(self, job_id: str) -> list[ordo_pb2.Event]:
        """The job's events, oldest first."""
        reply = await self._call("jobs", "GetJobHistory", ordo_pb2.GetJobHistoryRequest(job_id=job_id))
        return list(reply.events)

    async def add_node(self, node_id: str, grpc_address: str, raft_address: str) -> ordo_pb2.ClusterStatus:
        """Add a member to the cluster (then start it, with the current members as its peers)."""
        req = ordo_pb2.AddNodeRequest(node_id=node_id, grpc_address=grpc_address, raft_address=raft_address)
        status: ordo_pb2.ClusterStatus = await self._call("cluster", "AddNode", req)
        return status

    async def remove_node(self, node_id: str) -> ordo_pb2.ClusterStatus:
        """Remove a member that does not lead."""
        req = ordo_pb2.RemoveNodeRequest(node_id=node_id)
        status: ordo_pb2.ClusterStatus = await self._call("cluster", "RemoveNode", req)
        return status

    async def cluster(self) -> ordo_pb2.ClusterStatus:
        """The cluster as the answering node sees it."""
        status: ordo_pb2.ClusterStatus = await self._call(
            "cluster", "GetClusterStatus", ordo_pb2.GetClusterStatusRequest()
        )
        return status


async def _next(events: AsyncGenerator[ordo_pb2.Event, None]) -> ordo_pb2.Event:
    return await anext(events)


class SyncClient:
    """The same client for code without asyncio.

        with SyncClient("127.0.0.1:7001") as client:
            job_id = client.submit("echo", {"msg": "hi"}, delay=5)

    It runs its own event loop on a thread of its own, so it works where an event
    loop already runs on the calling thread (Jupyter, a FastAPI handler, ...): each
    call blocks the caller until the answer is there. Safe to share between threads.
    """

    def __init__(self, addresses: str | list[str] | None = None, **options: Any) -> None:
        """``options`` as for :class:`Client`: timeout, token, ca_file, cert_file, key_file, server_name."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ordo-sync-client", daemon=True)
        self._thread.start()
        self._client = Client(addresses, **options)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close the channels and stop the loop's thread."""
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def addresses(self) -> list[str]:
        return self._client.addresses

    def submit(self, type: str, payload: Any = None, **kwargs: Any) -> str:
        """Schedule a job; return its id once it is committed. See :func:`submit_request`."""
        return self._run(self._client.submit(type, payload, **kwargs))

    def submit_noted(self, type: str, payload: Any = None, **kwargs: Any) -> tuple[str, str]:
        """As :meth:`submit`, with what debounce or singleton did: (job id, note). See Client.submit_noted."""
        return self._run(self._client.submit_noted(type, payload, **kwargs))

    def send(self, request: ordo_pb2.SubmitJobRequest) -> str:
        """Schedule the job a SubmitJobRequest describes; its id."""
        return self._run(self._client.send(request))

    def wait(self, job_id: str, timeout: float | None = None) -> ordo_pb2.Job:
        """The job once it has ended (see :meth:`Client.wait`)."""
        return self._run(self._client.wait(job_id, timeout))

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """What the job's handler returned, or JobFailed (see :meth:`Client.result`)."""
        return self._run(self._client.result(job_id, timeout))

    def submit_many(self, jobs: Sequence[dict[str, Any] | ordo_pb2.SubmitJobRequest]) -> list[str]:
        """Schedule many jobs in one command; all or none (see :meth:`Client.submit_many`)."""
        return self._run(self._client.submit_many(jobs))

    def submit_many_noted(
        self, jobs: Sequence[dict[str, Any] | ordo_pb2.SubmitJobRequest]
    ) -> list[tuple[str, str]]:
        """As :meth:`submit_many`, with each job's note (debounce, singleton)."""
        return self._run(self._client.submit_many_noted(jobs))

    def get(self, job_id: str, *, consistent: bool = False) -> ordo_pb2.Job:
        """A job with its runs."""
        return self._run(self._client.get(job_id, consistent=consistent))

    def list_jobs(
        self,
        *,
        state: str = "",
        type: str = "",
        name: str = "",
        page_size: int = 0,
        page_token: str = "",
        consistent: bool = False,
    ) -> ordo_pb2.ListJobsResponse:
        """A page of jobs, newest first; ``state`` like "SUCCEEDED", ``name`` a job's exact name."""
        return self._run(
            self._client.list_jobs(
                state=state,
                type=type,
                name=name,
                page_size=page_size,
                page_token=page_token,
                consistent=consistent,
            )
        )

    def cancel(self, job_id: str) -> ordo_pb2.Job:
        """Cancel a job that has not started."""
        return self._run(self._client.cancel(job_id))

    def retry(self, job_id: str) -> ordo_pb2.Job:
        """Run a failed job's last run again."""
        return self._run(self._client.retry(job_id))

    def pause(self, job_id: str, note: str = "") -> ordo_pb2.Job:
        """Pause a recurring job."""
        return self._run(self._client.pause(job_id, note))

    def resume(self, job_id: str, note: str = "") -> ordo_pb2.Job:
        """Resume a paused job."""
        return self._run(self._client.resume(job_id, note))

    def trigger_now(self, job_id: str, note: str = "") -> ordo_pb2.Job:
        """Run a recurring job once now, beside its schedule (under its overlap policy)."""
        return self._run(self._client.trigger_now(job_id, note))

    def occurrences(
        self, job_id: str, *, fate: str = "", page_size: int = 0, page_token: str = ""
    ) -> ordo_pb2.ListOccurrencesResponse:
        """A page of the job's occurrences, newest first; ``fate`` like "MISSED"."""
        return self._run(
            self._client.occurrences(job_id, fate=fate, page_size=page_size, page_token=page_token)
        )

    def backfill(
        self,
        job_id: str,
        since: str | datetime,
        until: str | datetime,
        *,
        reprocess: str = "MISSING",
        overlap: str = "",
        max_concurrent: int = 0,
        dry_run: bool = False,
    ) -> ordo_pb2.BackfillScheduleResponse:
        """Run past occurrences of a recurring job again, chosen by their stored fates (see Client)."""
        return self._run(
            self._client.backfill(
                job_id,
                since,
                until,
                reprocess=reprocess,
                overlap=overlap,
                max_concurrent=max_concurrent,
                dry_run=dry_run,
            )
        )

    def explain(self, job_id: str, time: str | datetime) -> ordo_pb2.Explanation:
        """What happened at ``time`` of the job's schedule, and why."""
        return self._run(self._client.explain(job_id, time))

    def preview(
        self,
        cron: str,
        *,
        timezone: str = "",
        count: int = 10,
        after: str | datetime | None = None,
        more_cron: Sequence[str] = (),
        exclude_dates: Sequence[str] = (),
        exclude_cron: Sequence[str] = (),
    ) -> list[ordo_pb2.PreviewTime]:
        """The next fire times of a schedule (``more_cron`` and the exclusions as in a submission)."""
        specs = {"more_cron": more_cron, "exclude_dates": exclude_dates, "exclude_cron": exclude_cron}
        return self._run(self._client.preview(cron, timezone=timezone, count=count, after=after, **specs))

    def watch(self, job_id: str = "", after_seq: int = 0) -> Iterator[ordo_pb2.Event]:
        """Events as they are applied on the first reachable node (see :meth:`Client.watch`)."""
        events = self._client.watch(job_id, after_seq)
        try:
            while True:
                try:
                    yield self._run(_next(events))
                except StopAsyncIteration:
                    return
        finally:
            if not self._loop.is_closed():
                self._run(events.aclose())

    def history(self, job_id: str) -> list[ordo_pb2.Event]:
        """The job's events, oldest first."""
        return self._run(self._client.history(job_id))

    def add_node(self, node_id: str, grpc_address: str, raft_address: str) -> ordo_pb2.ClusterStatus:
        """Add a member to the cluster (then start it, with the current members as its peers)."""
        return self._run(self._client.add_node(node_id, grpc_address, raft_address))

    def remove_node(self, node_id: str) -> ordo_pb2.ClusterStatus:
        """Remove a member that does not lead."""
        return self._run(self._client.remove_node(node_id))

    def cluster(self) -> ordo_pb2.ClusterStatus:
        """The cluster as the answering node sees it."""
        return self._run(self._client.cluster())
