"""The worker process: an executor with no Raft and no database, fed by the leader over one stream.

It dials its servers in turn. A server that does not lead redirects it to
the leader; the leader registers it (through Raft) and sends it assignments.
Everything the executor reports goes back through :class:`~.remote.Remote`.
When the stream breaks (the leader died or handed over) it dials again within
about a second; its runs keep running meanwhile, and their outcomes are
accepted by the new leader under the same fencing tokens.

On SIGTERM or SIGINT it takes nothing new, gives back what it holds and has
not started, lets running attempts finish within ``shutdown_grace``, commits
their outcomes, and closes its stream saying it is draining: the leader then
records it as gone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from contextlib import suppress
from dataclasses import replace

import grpc

from .. import __version__
from ..config import Config
from ..executor import Executor, Reporter, running_messages
from ..handlers import load_modules, registry
from ..pb import internal_pb2
from ..timeutil import now_us
from .config import WorkerConfig
from .remote import Remote

log = logging.getLogger("ordo_node.worker")

# Seconds between heartbeats on the stream (each costs the leader a read and an answer: with
# hundreds of workers, most of what it spends while no job runs).
HEARTBEAT = 1.0
# The leader answers every heartbeat; a stream silent this long is taken for dead (a leader
# that froze, or a network that drops packets without closing the connection): dial again.
SILENCE = 4.0
ANSWER = 5.0  # seconds a server has to answer a hello (a welcome or a redirect; registering takes a commit)
RETRY_MIN, RETRY_MAX = 0.1, 1.0  # seconds between dial attempts, growing


def executor_config(cfg: WorkerConfig, lease_timeout: float = 10.0) -> Config:
    """The settings the executor reads, as a member's config would hold them."""
    return Config(
        node_id=cfg.worker_id,
        grpc_address="",
        raft_address="",
        data_dir=cfg.data_dir,
        secret="",
        capacity=cfg.capacity,
        tags=cfg.tags,
        dangerous_handlers=cfg.dangerous_handlers,
        handlers=cfg.handlers,
        lease_timeout=lease_timeout,
        shutdown_grace=cfg.shutdown_grace,
        source=cfg.source,
        base_dir=cfg.base_dir,
    )


class Worker:
    """One worker process; :meth:`run` until a signal (or :meth:`stop`)."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.remote = Remote(cfg)
        self.reporter = Reporter(cfg.worker_id, self.remote)
        self.executor = Executor(executor_config(cfg), registry, self.reporter, self.remote)
        self.connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._draining = False
        self._call: (
            grpc.aio.StreamStreamCall[internal_pb2.WorkerMessage, internal_pb2.ServerMessage] | None
        ) = None
        self._write_lock = asyncio.Lock()
        self._leaving = False  # said goodbye: dial no more
        self._ended = asyncio.Event()  # set each time a stream ends
        self._welcomed = False  # the current stream was welcomed by a leader
        self._heard = 0.0  # time.monotonic() of the last message from the leader
        self._silent: set[str] = set()  # servers that went silent or did not answer: dialled last

    def stop(self) -> None:
        """Begin the stop (as SIGTERM does)."""
        self._stop.set()

    async def run(self) -> None:
        """Serve until stopped; then drain and leave."""
        cfg = self.cfg
        if cfg.handlers:
            sys.path.insert(0, str(cfg.base_dir))
            load_modules(list(cfg.handlers))
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal)
        reporter = asyncio.create_task(self.reporter.run(), name="reporter")
        self.executor.start()
        link = asyncio.create_task(self._dial_loop(), name="link")
        log.info(
            "worker %s started: capacity %d, servers %s, handlers %s",
            cfg.worker_id,
            cfg.capacity,
            ",".join(cfg.servers),
            ",".join(self.executor.runnable()),
        )
        try:
            await self._stop.wait()
            log.info("worker %s stopping (running attempts get %gs)", cfg.worker_id, cfg.shutdown_grace)
            self._draining = True
            await self.executor.finish_running(cfg.shutdown_grace)
            await self.reporter.drain(5.0)
            await self._say_goodbye()
        finally:
            link.cancel()
            try:
                await link
            except asyncio.CancelledError:
                pass
            except Exception:  # the connection's failure must not skip stopping the executor
                log.exception("worker %s: the connection loop failed", cfg.worker_id)
            await self.executor.stop()
            reporter.cancel()
            with suppress(asyncio.CancelledError):
                await reporter
            await self.remote.close()
            log.info("worker %s stopped", cfg.worker_id)

    def _on_signal(self) -> None:
        if self._stop.is_set():
            self.executor.hurry()  # a second signal: stop waiting for running attempts
        self._stop.set()

    async def _say_goodbye(self) -> None:
        """Tell the leader this worker is draining with nothing running, then close the stream."""
        call = self._call
        if call is None or self.executor.running:
            return
        with suppress(grpc.RpcError, TimeoutError, asyncio.InvalidStateError):
            await asyncio.wait_for(self._heartbeat(), 2.0)
            async with self._write_lock:
                # From here on nothing more is written: the heartbeat loop stops writing.
                self._leaving = True
                await asyncio.wait_for(call.done_writing(), 2.0)
            # The leader ends the stream once it has read the end of ours.
            await asyncio.wait_for(self._ended.wait(), 3.0)

    async def _dial_loop(self) -> None:
        """Stay connected to the leader: dial the servers in turn, following redirects."""
        servers = list(self.cfg.servers)
        turn = 0
        delay = RETRY_MIN
        target: str | None = None
        refused: dict[str, str] = {}  # address -> its last refusal, logged once
        while True:
            if target is None:
                # Servers that went silent or did not answer are tried after the others.
                order = [servers[(turn + i) % len(servers)] for i in range(len(servers))]
                turn += next((i for i, a in enumerate(order) if a not in self._silent), 0)
            address = target or servers[turn % len(servers)]
            target = None
            self._ended.clear()
            self._welcomed = False
            try:
                target = await self._session(address)
                delay = RETRY_MIN if target else delay
            except grpc.aio.AioRpcError as e:
                code = e.code()
                if code in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ):
                    # Said once per server and reason, not at every retry.
                    hello = code == grpc.StatusCode.INVALID_ARGUMENT
                    what = "this worker's hello" if hello else "this worker"
                    reason = f"server {address} refused {what}: {e.details()}"
                    if refused.get(address) != reason:
                        refused[address] = reason
                        log.error("%s (retrying quietly)", reason)
                else:
                    log.debug("server %s: %s", address, e.details() or code.name)
            finally:
                self.remote.detach()
                self.connected.clear()
                self._call = None
                self._ended.set()
            if self._leaving:
                return
            if self._welcomed:  # served until the stream broke: the first retries come soon again
                delay = RETRY_MIN
            if target is None:
                turn += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _session(self, address: str) -> str | None:
        """One stream to ``address``; the leader's address when redirected there, else None."""
        call = self.remote.stub(address).Connect(metadata=self.remote.metadata)
        self._call = call
        try:
            try:
                # A server that accepts the connection but says nothing (a frozen process) is skipped.
                await asyncio.wait_for(call.write(internal_pb2.WorkerMessage(hello=self._hello())), ANSWER)
                first = await asyncio.wait_for(call.read(), ANSWER)
            except TimeoutError:
                log.warning("server %s did not answer in %gs; trying the next", address, ANSWER)
                self._silent.add(address)
                return None
            if first is grpc.aio.EOF:
                return None
            self._silent.discard(address)
            kind = first.WhichOneof("kind")
            if kind == "redirect":
                r = first.redirect
                log.debug("server %s: %s; leader %s at %s", address, r.reason, r.leader_id, r.leader_address)
                return r.leader_address if r.leader_address and r.leader_address != address else None
            if kind != "welcome":
                return None
            welcome = first.welcome
            self.remote.address = address
            if welcome.lease_timeout_ms > 0:
                lease = welcome.lease_timeout_ms / 1000
                self.executor.config = replace(self.executor.config, lease_timeout=lease)
            log.info("connected to leader %s at %s (term %d)", welcome.leader_id, address, welcome.term)
            self._welcomed = True
            self.connected.set()
            self.remote.attach(self._send_proposal)
            self._heard = time.monotonic()
            beats = asyncio.create_task(self._beat_loop(), name="heartbeats")
            serve = asyncio.create_task(self._serve(call), name="stream")
            try:
                await asyncio.wait({beats, serve}, return_when=asyncio.FIRST_COMPLETED)
                if serve.done():
                    return serve.result()
                beats.result()  # the heartbeats ended first: the stream fell silent (or they failed)
                self._silent.add(address)
                return None
            finally:
                for task in (beats, serve):
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
        finally:
            call.cancel()

    def _hello(self) -> internal_pb2.WorkerHello:
        return internal_pb2.WorkerHello(
            worker_id=self.cfg.worker_id,
            boot_id=self.executor.boot_id,
            capacity=self.cfg.capacity,
            tags=list(self.cfg.tags),
            handlers=self.executor.runnable(),
            version=__version__,
        )

    async def _serve(
        self, call: grpc.aio.StreamStreamCall[internal_pb2.WorkerMessage, internal_pb2.ServerMessage]
    ) -> str | None:
        """The leader's messages until the stream ends; a redirect's address, if it sent one."""
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                if not self._leaving:
                    log.info("stream to the leader ended; reconnecting")
                return None
            self._heard = time.monotonic()
            kind = message.WhichOneof("kind")
            if kind == "assign":
                accepted = self.executor.assign(list(message.assign.request.assignments))
                await self._write(
                    internal_pb2.WorkerMessage(
                        ack=internal_pb2.WorkerAck(seq=message.assign.seq, accepted=accepted)
                    )
                )
            elif kind == "time":
                self.remote.observe(message.time)
            elif kind == "cancel":
                self.executor.cancel(message.cancel.run_id, message.cancel.attempt)
            elif kind == "proposed":
                self.remote.answered(message.proposed)
            elif kind == "redirect":
                return message.redirect.leader_address or None

    async def _beat_loop(self) -> None:
        """Heartbeats until the stream has been silent for SILENCE seconds (then it ends)."""
        while True:
            silent = time.monotonic() - self._heard
            if silent > SILENCE and not self._leaving:
                log.warning("no word from the leader for %.1fs; dialling again", silent)
                return
            await self._heartbeat()
            await asyncio.sleep(HEARTBEAT)

    async def _heartbeat(self) -> None:
        running = running_messages(self.executor.status())
        await self._write(
            internal_pb2.WorkerMessage(
                heartbeat=internal_pb2.WorkerHeartbeat(
                    running=running, draining=self._draining or self.executor.draining, sent_us=now_us()
                )
            )
        )

    async def _write(self, message: internal_pb2.WorkerMessage) -> bool:
        """Write on the stream; False when it is gone (or said goodbye)."""
        call = self._call
        if call is None:
            return False
        async with self._write_lock:
            if self._leaving or call.done():  # said goodbye (done_writing), or the stream ended
                return False
            try:
                await call.write(message)
            except asyncio.InvalidStateError:  # the stream finished meanwhile: the dial loop sees it
                return False
            return True

    async def _send_proposal(self, message: internal_pb2.WorkerMessage) -> bool:
        """The remote's way onto the stream; a failed write is a stream that ended."""
        try:
            return await self._write(message)
        except grpc.RpcError:
            return False
