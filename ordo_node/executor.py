"""The executor: on every node, runs the handlers of the attempts assigned to it.

It accepts assignments up to its capacity, runs each handler in its own task,
and reports "started" and the outcome through Raft (RecordRunUpdates). The
reports are batched, and a batch is proposed again with the same request id
until it commits, so an outcome is not lost while the process lives; if the
process dies, the attempt's lease (see the dispatcher) brings the run back.

An assignment may arrive twice (the leader re-sends what it has not seen
start); attempts are remembered by their fencing token (run id, attempt), so
the second copy does not run again.

Accepted attempts are *held* until they may start: until their scheduled
time (the leader triggers and assigns one-off jobs slightly ahead of it), and
until one of the ``capacity`` slots is free (the leader keeps a short queue
here, so that a slot is refilled at once when a handler returns instead of
after the outcome's commit and the next assignment's). A held attempt's lease
is renewed like a running one's; a cancelled one never starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import commands as c
from . import handlers
from .clock import majority_now_us
from .config import DANGEROUS, Config
from .errors import HandlerFailed, OrdoError
from .handlers import JobContext, Registry
from .logs import JobLines
from .pb import internal_pb2
from .timeutil import now_us, to_datetime
from .wire import from_value, ts

log = logging.getLogger("ordo_node.executor")
job_log = logging.getLogger("ordo_node.jobs")

MAX_RESULT_BYTES = 256 * 1024
LINGER = 0.005
# While runs wait here for a slot, outcomes gather up to this long before they are
# proposed: starting runs comes first, and a bigger batch costs less per update
# on every replica.
MAX_LINGER = 0.25
# Seconds a long-running handler has to return after ctx.cancelled is set.
CANCEL_GRACE = 10.0
REMEMBERED_ATTEMPTS = 100_000
# A failed attempt keeps the end of its handler's traceback, at most this many bytes.
MAX_TRACEBACK_BYTES = 8 * 1024
# Frames of these files come before a handler's own in its traceback, and are left out.
_OWN_CODE = (__file__, str(Path(handlers.__file__)), str(Path(asyncio.__file__).parent))
# A held run whose time has come gives itself back (a new attempt runs elsewhere)
# if no slot here has freed for this long: the slots are taken by long runs.
SLOT_WAIT = 5.0


@dataclass
class Running:
    """An attempt this executor is running."""

    run_id: str
    attempt: int
    job_id: str
    type: str
    started_at: int
    long_running: bool = False
    task: asyncio.Task[None] = field(init=False)
    cancelled: threading.Event = field(default_factory=threading.Event)
    last_heartbeat: int | None = None
    progress: str = ""

    def heartbeat(self, note: str = "") -> None:
        """Called by a handler (from any thread): it is alive, and how far it got."""
        self.last_heartbeat = now_us()
        self.progress = note[:200]


def running_messages(runs: list[Running]) -> list[internal_pb2.ExecutorRun]:
    """Running attempts as an executor's status lists them."""
    return [
        internal_pb2.ExecutorRun(
            run_id=r.run_id,
            attempt=r.attempt,
            job_id=r.job_id,
            type=r.type,
            started_at=ts(r.started_at),
            last_heartbeat=ts(r.last_heartbeat),
            progress=r.progress,
        )
        for r in runs
    ]


def handler_traceback(e: BaseException) -> str:
    """The traceback of a handler's exception, from the handler's own frame on; its last
    MAX_TRACEBACK_BYTES (the end names the line that raised)."""
    tb = e.__traceback__
    # Skip the executor's and the registry's frames: the user's code starts below them.
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_CODE):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(e), e, tb))
    data = text.encode()
    if len(data) > MAX_TRACEBACK_BYTES:
        text = "...\n" + data[-MAX_TRACEBACK_BYTES:].decode(errors="ignore")
    return text


# One encoder, made once (json.dumps with any option builds a new one every call).
_result_json = json.JSONEncoder(default=str, ensure_ascii=False).encode


def encode_result(value: Any) -> str:
    """A handler's return value as JSON text, bounded in size."""
    text = _result_json(value)
    if len(text.encode()) > MAX_RESULT_BYTES:
        text = json.dumps({"truncated": True, "preview": text[: MAX_RESULT_BYTES // 4]})
    return text


class Proposer(Protocol):
    """Where an executor's commands go: its node's Consensus, or a worker's link to the leader."""

    @property
    def clock_offset_us(self) -> int: ...

    async def propose(self, cmd: c.Command, timeout: float | None = None) -> Any: ...


class Reporter:
    """Batches run updates and commits them through Raft, retrying until they commit."""

    def __init__(self, node_id: str, consensus: Proposer, *, batch: int = 1000) -> None:
        self.node_id = node_id
        self.consensus = consensus
        self.batch = batch
        # Queued updates in order, by (run id, attempt, kind): an outcome finds its
        # queued "started" in one look-up, not a scan (thousands queue up in a burst).
        self._queue: OrderedDict[tuple[str, int, str], c.RunUpdate] = OrderedDict()
        self._busy = 0
        self._ready = asyncio.Event()
        # How many runs wait for a slot on this node (the executor sets it).
        self.backlog: Callable[[], int] = lambda: 0

    def report(self, update: c.RunUpdate) -> None:
        """Queue one update; it is committed soon, with others.

        An outcome whose "started" is still queued replaces it (carrying the
        start time): a short job costs one update, not two.
        """
        if update.kind != "started":
            queued = self._queue.pop((update.run_id, update.attempt, "started"), None)
            if queued is not None:  # (dataclasses.replace costs more than the rest of report())
                u = update
                update = c.RunUpdate(
                    u.run_id, u.attempt, u.kind, u.at, u.result, u.error, queued.at, u.traceback
                )
        self._queue[update.run_id, update.attempt, update.kind] = update
        self._ready.set()

    async def run(self) -> None:
        """Commit queued updates until cancelled."""
        while True:
            await self._ready.wait()
            # Linger a moment: more updates join the batch, and a fast job's
            # outcome can replace its "started".
            await asyncio.sleep(LINGER)
            waited = LINGER
            while self.backlog() and len(self._queue) < self.batch and waited < MAX_LINGER:
                await asyncio.sleep(LINGER)
                waited += LINGER
            self._ready.clear()
            while self._queue:
                updates = [
                    self._queue.popitem(last=False)[1] for _ in range(min(self.batch, len(self._queue)))
                ]
                self._busy = len(updates)
                try:
                    await self._commit(tuple(updates))
                finally:
                    self._busy = 0

    async def _commit(self, updates: tuple[c.RunUpdate, ...]) -> None:
        cmd = c.RecordRunUpdates(request_id=uuid.uuid4().hex, node=self.node_id, updates=updates)
        delay = 0.1
        while True:
            try:
                result = await self.consensus.propose(cmd)
            except OrdoError as e:
                log.warning("run updates not committed yet (%d): %s; retrying", len(updates), e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            for run_id, attempt, why in result.get("stale", []):
                log.info("update for run=%s attempt=%d refused: %s", run_id, attempt, why)
            return

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for queued and in-flight updates to commit."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._queue or self._busy:
            log.warning("stopping with %d run updates not committed", len(self._queue) + self._busy)


class Executor:
    """Runs assigned attempts within ``capacity``; lives on every node.

    While it holds attempts it renews their leases through Raft every third
    of the lease; an attempt the cluster no longer gives it (its lease
    expired and it was run elsewhere, or the job was cancelled) is stopped.
    """

    def __init__(
        self,
        config: Config,
        registry: Registry,
        reporter: Reporter,
        consensus: Proposer,
        on_finished: Callable[[str, float], None] | None = None,
    ) -> None:
        # Told (outcome, seconds) as each attempt ends: the metrics observe through it.
        self.on_finished = on_finished
        self.config = config
        self.registry = registry
        self.reporter = reporter
        self.consensus = consensus
        self.running: dict[tuple[str, int], Running] = {}
        # The seed's "Processing job" and "Successfully executed job": a burst's are held at DEBUG.
        self._job_lines = JobLines(job_log)
        # Accepted, not started yet: waiting for their scheduled time or a free slot.
        self.held: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(config.capacity)
        # Held runs whose time has come, waiting for a slot; and when a slot last
        # freed (or the wait began).
        self._queued: set[tuple[str, int]] = set()
        self._slot_freed = time.monotonic()
        self._data_dir = Path(config.data_dir)
        reporter.backlog = lambda: len(self._queued)
        self.draining = False
        self.boot_id = uuid.uuid4().hex
        self._hurry = asyncio.Event()
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._renewer: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start renewing leases, and watching for runs stuck behind long ones."""
        self._renewer = asyncio.create_task(self._renew_loop(), name="lease renewer")
        self._watcher = asyncio.create_task(self._slot_watch(), name="slot watcher")

    async def _slot_watch(self) -> None:
        """Give back the runs waiting for a slot when none has freed for SLOT_WAIT seconds.

        The leader queues runs here only behind slots whose runs are young, but
        a young run may turn out to be a long one (a stream, a long-running
        job); the runs queued behind it then go to another node.
        """
        while True:
            await asyncio.sleep(SLOT_WAIT / 5)
            if self._queued and not self.draining and time.monotonic() - self._slot_freed >= SLOT_WAIT:
                await self.give_back(
                    list(self._queued), f"no slot freed on {self.config.node_id} for {SLOT_WAIT:g}s"
                )

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_timeout / 3)
            try:
                await self.renew_leases()
            except OrdoError as e:
                log.warning("lease renewal not committed: %s", e)

    async def renew_leases(self) -> None:
        """Extend the lease of every attempt held or running here; stop those the cluster took back."""
        refs = tuple(c.RunRef(*key) for key in (*self.running, *self.held))
        if not refs:
            return
        at = majority_now_us(self.consensus)  # the leader expires leases by the majority's clock
        cmd = c.RenewLeases(
            request_id=uuid.uuid4().hex,
            node=self.config.node_id,
            at=at,
            lease_until=at + int(self.config.lease_timeout * 1_000_000),
            runs=refs,
        )
        result = await self.consensus.propose(cmd, timeout=self.config.lease_timeout / 3)
        for run_id, attempt in result.get("lost", []):
            if (run_id, attempt) in self.running or (run_id, attempt) in self.held:
                log.warning("run=%s attempt=%d is no longer ours; stopping it", run_id, attempt)
                self.cancel(run_id, attempt)

    def runnable(self) -> list[str]:
        """The job types this executor runs: every registered one, but the dangerous ones only if enabled."""
        return [n for n in self.registry.names() if n not in DANGEROUS or n in self.config.dangerous_handlers]

    @property
    def capacity(self) -> int:
        """The most attempts this node runs at once."""
        return self.config.capacity

    def assign(self, assignments: list[internal_pb2.Assignment]) -> list[str]:
        """Take the attempts this node can run; return the run ids taken (or already known).

        Each starts at its scheduled time, once a slot is free.
        """
        accepted: list[str] = []
        if self.draining:
            return accepted
        runnable = set(self.runnable())
        for a in assignments:
            if a.type not in runnable:
                log.warning("refusing run=%s: this node does not run %r jobs", a.run_id, a.type)
                continue
            if a.boot_id and a.boot_id != self.boot_id:
                # Given to this node's previous process, which may have run it: never twice here.
                log.warning("refusing run=%s attempt=%d: assigned to an earlier process", a.run_id, a.attempt)
                continue
            key = (a.run_id, a.attempt)
            if key in self._seen:
                accepted.append(a.run_id)
                continue
            self._remember(key)
            self.held[key] = asyncio.create_task(self._hold(a), name=f"run {a.run_id}#{a.attempt}")
            accepted.append(a.run_id)
        return accepted

    async def _hold(self, a: internal_pb2.Assignment) -> None:
        """Wait for the attempt's scheduled time and a free slot, then run it."""
        key = (a.run_id, a.attempt)
        try:
            # Scheduled by the leader's clock, within bounds of the majority's: wait by that, and by
            # this node's own, which stamps the run's start. A node whose clock is behind the
            # majority's starts late by that much (within max_clock_skew), never early by either.
            now = min(now_us(), majority_now_us(self.consensus))
            delay = (a.scheduled_at.ToMicroseconds() - now) / 1e6
            if delay > 0:
                await asyncio.sleep(delay)
            if not self._queued:
                self._slot_freed = time.monotonic()  # the wait for a slot starts now
            self._queued.add(key)
            try:
                await self._slots.acquire()
            finally:
                self._queued.discard(key)
            try:
                if self.draining:
                    # Never started: finish_running gives it back.
                    return
                del self.held[key]
                running = Running(a.run_id, a.attempt, a.job_id, a.type, now_us(), a.long_running)
                task = asyncio.current_task()
                assert task is not None
                running.task = task
                self.running[key] = running
                await self._run(a, running)
            finally:
                self._slots.release()
                self._slot_freed = time.monotonic()
        finally:
            self.held.pop(key, None)

    def _remember(self, key: tuple[str, int]) -> None:
        self._seen[key] = None
        if len(self._seen) > REMEMBERED_ATTEMPTS:
            self._seen.popitem(last=False)

    def cancel(self, run_id: str, attempt: int) -> None:
        """Stop an attempt the cluster cancelled (if it runs here).

        The handler's ``ctx.cancelled`` is set first. A long-running handler
        gets CANCEL_GRACE seconds to return by itself; any other is cancelled
        at once (a shell command then gets SIGTERM, and SIGKILL after a grace).
        """
        held = self.held.pop((run_id, attempt), None)
        if held is not None:  # not started: it never will
            held.cancel()
            return
        running = self.running.get((run_id, attempt))
        if running is None:
            return
        running.cancelled.set()
        if not running.long_running:
            running.task.cancel()
            return
        loop = asyncio.get_running_loop()
        loop.call_later(CANCEL_GRACE, running.task.cancel)

    async def _run(self, a: internal_pb2.Assignment, running: Running) -> None:
        key = (a.run_id, a.attempt)
        started = now_us()
        self._seed_line("Processing job %s", a)
        self.reporter.report(c.RunUpdate(a.run_id, a.attempt, "started", started))
        ctx = JobContext(
            job_id=a.job_id,
            run_id=a.run_id,
            attempt=a.attempt,
            job_type=a.type,
            name=a.name,
            idempotency_key=a.idempotency_key,
            scheduled_at=to_datetime(a.scheduled_at.ToMicroseconds()),
            node_id=self.config.node_id,
            data_dir=self._data_dir,
            logger=job_log,
            cancelled=running.cancelled,
            heartbeat=running.heartbeat,
        )
        if a.payload_json:  # exact numbers
            payload = json.loads(a.payload_json)
        else:
            payload = from_value(a.payload) if a.HasField("payload") else None
        try:
            if a.timeout_ms > 0:
                try:
                    value = await asyncio.wait_for(
                        self.registry.run(a.type, ctx, payload), a.timeout_ms / 1000
                    )
                except TimeoutError:
                    raise HandlerFailed(f"timed out after {a.timeout_ms / 1000:g}s") from None
            else:
                value = await self.registry.run(a.type, ctx, payload)
        except asyncio.CancelledError:
            job_log.info("job %s run=%s attempt=%d cancelled", a.job_id, a.run_id, a.attempt)
            raise
        except HandlerFailed as e:
            job_log.warning("Failed to execute job %s: %s", a.job_id, e)
            self._finish(key, "failed", encode_result(e.details), str(e), handler_traceback(e))
        except Exception as e:  # a user's handler may raise anything; it fails the attempt, not the node
            job_log.warning("Failed to execute job %s: %s: %s", a.job_id, type(e).__name__, e)
            self._finish(key, "failed", "", f"{type(e).__name__}: {e}", handler_traceback(e))
        else:
            self._seed_line("Successfully executed job %s", a)
            self._finish(key, "succeeded", encode_result(value), "")
        finally:
            self.running.pop(key, None)

    def _seed_line(self, line: str, a: internal_pb2.Assignment) -> None:
        if self._job_lines.info(line, a.job_id, run=a.run_id, attempt=a.attempt):
            asyncio.get_running_loop().call_later(1.0, self._job_lines.flush)

    def _finish(self, key: tuple[str, int], kind: str, result: str, error: str, trace: str = "") -> None:
        running = self.running.get(key)
        if self.on_finished is not None and running is not None:
            self.on_finished(kind, (now_us() - running.started_at) / 1e6)
        update = c.RunUpdate(key[0], key[1], kind, now_us(), result, error[:4000], traceback=trace)
        self.reporter.report(update)

    def status(self) -> list[Running]:
        """The attempts running now."""
        return list(self.running.values())

    def hurry(self) -> None:
        """Stop waiting for running attempts (a second Ctrl-C)."""
        self._hurry.set()

    async def give_back(self, keys: list[tuple[str, int]], reason: str) -> None:
        """Hand attempts held here and never started back to the cluster: each gets a new attempt,
        which the leader places on another node (ExpireRuns, as for a lost executor)."""
        current = asyncio.current_task()
        for key in keys:
            task = self.held.pop(key, None)
            if task is not None and task is not current:
                task.cancel()
        if not keys:
            return
        log.warning("giving back %d attempts not started: %s", len(keys), reason)
        cmd = c.ExpireRuns(
            request_id=uuid.uuid4().hex,
            at=now_us(),
            node=self.config.node_id,
            runs=tuple(c.RunRef(*key) for key in keys),
            reason=reason,
        )
        try:
            await self.consensus.propose(cmd, timeout=self.config.lease_timeout / 3)
        except OrdoError as e:  # no longer renewed here: their leases run out instead
            log.warning("giving back %d attempts not committed: %s", len(keys), e)

    async def finish_running(self, grace: float) -> None:
        """Take no new work, give back what was not started, and give running attempts up to
        ``grace`` seconds to end."""
        self.draining = True
        await self.give_back(list(self.held), f"node {self.config.node_id} is shutting down")
        tasks = [r.task for r in self.running.values()]
        if not tasks or grace <= 0:
            return
        log.info("waiting up to %.0fs for %d running attempts (Ctrl-C again to stop now)", grace, len(tasks))
        hurry = asyncio.create_task(self._hurry.wait())
        deadline = time.monotonic() + grace
        pending: set[asyncio.Task[Any]] = set(tasks)
        try:
            while pending and not hurry.done() and (remaining := deadline - time.monotonic()) > 0:
                _, pending = await asyncio.wait(
                    {*pending, hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(hurry)
        finally:
            hurry.cancel()

    async def stop(self) -> None:
        """Cancel every running attempt; their leases bring them back elsewhere."""
        for loop_task in (self._renewer, self._watcher):
            if loop_task is not None:
                loop_task.cancel()
                with suppress(asyncio.CancelledError):
                    await loop_task
        tasks = [*self.held.values(), *(r.task for r in self.running.values())]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
