"""One ordo_node process: builds the actors, wires them, starts and stops them in order.

Start order: data directory lock, SQLite store, read connection, executor,
gRPC server (public, internal, health, reflection), then the Raft engine.
Leadership starts and stops the leader-only actors (timekeeper, dispatcher);
they are started only after a barrier command commits, so the new leader's
database holds every command committed before its term.

Stop order (SIGINT/SIGTERM), every step bounded by one deadline,
``shutdown_grace`` + STOP_MARGIN after the signal:

1. drain: health NOT_SERVING, the executor takes no new assignments;
2. leadership handed to a caught-up follower, leader actors stopped (no new
   runs are triggered or handed out here);
3. running attempts get until ``shutdown_grace`` after the signal to end;
4. their outcomes are committed (the reporter drains);
5. while peers that are stopping too still hold attempts, stay in Raft, so
   that a whole cluster stopped at once keeps a majority for their outcomes;
6. leadership handed over again if a peer stays up (it would otherwise wait
   for an election);
7. gRPC server, executor (what still runs is cancelled; its lease brings it
   back), reporter, Raft engine, read connection, store.

A step that overruns is logged and skipped. A stop begun by a signal also
arms a watchdog thread: a process still alive a moment past the deadline (a
handler thread that ignores cancellation keeps the interpreter from exiting)
exits with ``os._exit``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, suppress
from typing import IO, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import commands as c
from .api.cluster import ClusterService
from .api.errors import DecodeErrors
from .api.jobs import Changes, JobService
from .api.peer import PeerService
from .api.reflection import enable_reflection
from .api.validate import max_request_bytes
from .api.workers import WorkerService
from .auth import AuthInterceptor, Tokens
from .channels import is_loopback
from .clock import ClockGuard
from .config import Config
from .consensus import Consensus
from .dashboard import Dashboard
from .dashboard.actions import Actions
from .dispatcher import Dispatcher
from .errors import ConfigError, OrdoError
from .executor import Executor, Reporter
from .handlers import load_modules, registry
from .metrics import CallCounter, Metrics
from .pb import internal_pb2, ordo_pb2, ordo_pb2_grpc
from .pb import internal_pb2_grpc as peer_grpc
from .peers import Peers
from .queries import Queries
from .statemachine.effects import Effects
from .statemachine.store import Store
from .timekeeper import Timekeeper
from .timeutil import now_us
from .tls import https_context, server_credentials
from .workerhub import WorkerHub

log = logging.getLogger("ordo_node.node")

GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]
# The stop sequence's own time past shutdown_grace: the last outcomes commit,
# peers that stop too finish theirs (LATE), the node leaves Raft and closes.
LATE = 1.5
STOP_MARGIN = 3.0
# Past the deadline, each step still gets this long (closing files, channels);
# the watchdog bounds the sum.
LAST_CHANCE = 0.1
# A process still alive this long past the stop deadline exits at once.
EXIT_MARGIN = 1.0
# The clients' services (advertised by reflection), then the members' and workers' (not).
PUBLIC_SERVICE_NAMES = (
    ordo_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    ordo_pb2.DESCRIPTOR.services_by_name["ClusterService"].full_name,
)
SERVICE_NAMES = (
    *PUBLIC_SERVICE_NAMES,
    internal_pb2.DESCRIPTOR.services_by_name["PeerService"].full_name,
    internal_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
)


def lock_data_dir(config: Config) -> IO[str]:
    """Take the data directory's lock, so two processes never share one database."""
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        f = open(config.data_dir / "LOCK", "w")  # noqa: SIM115 - held for the life of the process
    except OSError as e:
        raise ConfigError(
            f"{config.source}: node.data_dir: cannot use {config.data_dir}: {e.strerror or e}"
        ) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ConfigError(
            f"{config.source}: node.data_dir: {config.data_dir} is in use by another ordo-node"
        ) from None
    f.write(str(os.getpid()))
    f.flush()
    return f


class Node:
    """The whole node; :meth:`run` until :meth:`stop` or a signal."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self._leader_task: asyncio.Task[None] | None = None
        self.changes = Changes()
        self.metrics = Metrics()
        self.tokens = Tokens(config.tokens)  # the gRPC guard's and the HTTP port's
        self._background: set[asyncio.Task[None]] = set()
        # Registrations changed since the hub last read them, and whether a read runs now.
        self._workers_stale = False
        self._workers_reading = False
        self.timekeeper: Timekeeper | None = None
        self.dispatcher: Dispatcher | None = None
        # Workers connected to this node (while it leads), and the registered ones' job types.
        self.hub = WorkerHub(config.node_id)
        self.hub.on_change = self._on_worker
        self._stop_began: float | None = None  # time.monotonic() of the first stop
        self._hurried = False
        self._exit_at: float | None = None  # the watchdog's time, once a signal armed it
        self._stopped = False

    def stop(self) -> None:
        """Ask the node to shut down; asked again, stop waiting for running attempts."""
        if self._stop.is_set():
            self._hurried = True
            if hasattr(self, "executor"):
                self.executor.hurry()
        self._stop_began = self._stop_began or time.monotonic()
        self._stop.set()

    @property
    def stop_deadline(self) -> float:
        """When the whole stop sequence must be over (time.monotonic())."""
        if self._stop_began is None:  # a failed start-up closes what it opened
            self._stop_began = time.monotonic()
        return self._stop_began + self.config.shutdown_grace + STOP_MARGIN

    def _on_signal(self) -> None:
        """SIGINT/SIGTERM: stop, and make sure the process exits by the deadline."""
        first = not self._stop.is_set()
        self.stop()
        if first:
            self._exit_at = self.stop_deadline + EXIT_MARGIN
            threading.Thread(target=self._watchdog, name="stop watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        """Exit the process (status 1) once it outlived the stop's deadline (runs in its own thread)."""
        while self._exit_at is None or time.monotonic() < self._exit_at:
            time.sleep(0.1)
        if self._stopped:
            log.warning(
                "node %s stopped, but the process did not exit (a handler ignoring cancellation?); exiting",
                self.config.node_id,
            )
        else:
            log.error(
                "node %s: stop overran its deadline (shutdown_grace + %gs); exiting now",
                self.config.node_id,
                STOP_MARGIN,
            )
        for handler in logging.getLogger().handlers:
            with suppress(Exception):
                handler.flush()
        os._exit(1)

    async def _step(
        self, name: str, work: Callable[[], Awaitable[object]], until: Callable[[], float] | float = 1.0
    ) -> None:
        """One step of the stop sequence, given ``until`` seconds, or until the time ``until()``
        returns, and never past the stop deadline (but at least LAST_CHANCE).

        A step that overruns is cancelled without waiting for it (it may ignore
        cancellation), logged and skipped; one that fails is logged; either way
        the sequence goes on.
        """
        began = time.monotonic()
        remaining = min(self.stop_deadline, until() if callable(until) else began + until) - began
        remaining = max(remaining, LAST_CHANCE)
        task = asyncio.ensure_future(work())
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if not done:
            task.cancel()
            log.warning("stop: %s overran its %.1fs; skipped", name, remaining)
            return
        if not task.cancelled() and (e := task.exception()) is not None:
            log.error("stop: %s failed; going on", name, exc_info=e)
        log.debug("stop: %s took %.2fs", name, time.monotonic() - began)

    async def run(self) -> None:
        """Start everything, serve until stopped, then stop everything in order.

        Each part registers its stop as it starts, so a failure half-way
        through start-up (a port in use) still closes what was opened.
        """
        cfg = self.config
        loop = asyncio.get_running_loop()
        async with AsyncExitStack() as stack:
            stack.callback(lock_data_dir(cfg).close)
            if cfg.handlers:
                # A handler module may sit beside the config file.
                sys.path.insert(0, str(cfg.base_dir))
                try:
                    load_modules(list(cfg.handlers))
                except ConfigError as e:
                    raise ConfigError(f"{cfg.source}: node.{e}") from None
            self.store = Store(cfg.data_dir / "state.db")
            stack.callback(self.store.close)
            self.queries = Queries(self.store.path)
            await self.queries.open()
            stack.push_async_callback(self._step, "read connection", self.queries.close)
            self.peers = Peers(cfg)
            self.peers.sync(await self.queries.members())
            await self._sync_workers()
            stack.push_async_callback(self._step, "peer channels", self.peers.close)
            # A command holds at most one request's jobs, and encodes them in less than twice its bytes.
            self.consensus = Consensus(
                cfg, self.store, self.peers, max_command_bytes=2 * max_request_bytes(cfg.max_payload_bytes)
            )
            stack.push_async_callback(
                self._step, "Raft engine", self.consensus.stop, lambda: self.stop_deadline
            )
            self.reporter = Reporter(cfg.node_id, self.consensus)
            reporter_task = asyncio.create_task(self.reporter.run(), name="reporter")
            stack.push_async_callback(self._step, "reporter", lambda: _cancel(reporter_task), 0.5)
            self.executor = Executor(cfg, registry, self.reporter, self.consensus, self.metrics.observe_run)
            stack.push_async_callback(self._step, "executor", self.executor.stop)

            def on_effects(fx: Effects) -> None:  # tick thread: hand over, nothing else
                loop.call_soon_threadsafe(self._on_effects, fx)

            self.store.listener = on_effects
            self.consensus.on_role_change(self._on_role)
            server, health_servicer = self._server()
            self.metrics.watch(self.store.path, self.consensus, self.executor)
            if cfg.metrics_address:
                cluster = ClusterService(
                    cfg, self.consensus, self.executor, self.peers, self.queries, self.hub
                )
                # Its actions go through a JobService, as the gRPC API's do (dashboard/actions.py).
                jobs = JobService(cfg, self.consensus, self.queries, registry, self.changes, self.hub)
                actions = Actions(jobs, self.tokens, loop)
                dashboard = Dashboard(self.store.path, cluster.status, loop, actions)
                try:
                    http = self.metrics.serve(
                        cfg.metrics_address,
                        dashboard,
                        # any token, read or admin, may read the port
                        allow=self.tokens.can_read if self.tokens.enabled else None,
                        tls=https_context(cfg.tls) if cfg.tls else None,
                    )
                except OSError as e:
                    where = f"{cfg.source}: node.metrics_address"
                    raise ConfigError(
                        f"{where}: cannot listen on {cfg.metrics_address}: {e.strerror}"
                    ) from None
                stack.callback(http.close)
            await server.start()
            # The stop sequence runs from the bottom of this list up.
            stack.push_async_callback(self._step, "gRPC server", lambda: server.stop(0.5))
            stack.push_async_callback(self._step, "leadership", self._hand_over, 1.5)
            stack.push_async_callback(
                self._step, "stopping peers", self._wait_for_stopping_peers, lambda: self._late
            )
            stack.push_async_callback(self._step, "outcomes", self._commit_outcomes, self._outcomes_until)
            stack.push_async_callback(
                self._step, "running attempts", self._finish_running, lambda: self._graced
            )
            stack.push_async_callback(self._step, "leader actors", self._stop_leading, 3.0)
            await self.consensus.start()
            self.executor.start()
            for name in ("", *SERVICE_NAMES):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
            self.consensus.on_fault(lambda _: self._spawn(_not_serving(health_servicer)))
            stack.push_async_callback(self._step, "drain", lambda: self._drain(health_servicer), 2.0)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal)
            log.info(
                "node %s serving grpc=%s raft=%s data=%s peers=%s%s",
                cfg.node_id,
                cfg.grpc_address,
                cfg.raft_address,
                cfg.data_dir,
                ",".join(p.id for p in cfg.peers) or "none",
                f" dashboard={dashboard_url(cfg)}" if cfg.metrics_address else "",
            )
            missing = [what for what, given in (("TLS", cfg.tls), ("tokens", cfg.tokens)) if not given]
            if missing and not is_loopback(cfg.grpc_address):
                log.warning(
                    "node %s serves gRPC on %s without %s: see README, Security",
                    cfg.node_id,
                    cfg.grpc_address,
                    " or ".join(missing),
                )
            if cfg.metrics_address and not cfg.tokens and not is_loopback(cfg.metrics_address):
                log.warning(
                    "node %s serves its dashboard and metrics on %s with no tokens: see README, Security",
                    cfg.node_id,
                    cfg.metrics_address,
                )
            await self._stop.wait()
            log.info("node %s stopping (running attempts get %gs)", cfg.node_id, cfg.shutdown_grace)
        self._stopped = True
        if self._exit_at is not None:  # now only the interpreter's exit is left
            self._exit_at = min(self._exit_at, time.monotonic() + EXIT_MARGIN)
        log.info("node %s stopped", cfg.node_id)

    def _server(self) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
        """The gRPC server with every service, bound to the node's address."""
        cfg = self.config
        guard = AuthInterceptor(self.tokens, cfg.secret, self.peers.is_member, cfg.worker_certificates)
        # Refused calls are counted; undecodable requests are INVALID_ARGUMENT, not UNKNOWN.
        interceptors = [CallCounter(self.metrics), guard, DecodeErrors()]
        options = [
            *GRPC_OPTIONS,
            ("grpc.max_receive_message_length", max_request_bytes(cfg.max_payload_bytes)),
        ]
        server = grpc.aio.server(options=options, interceptors=interceptors)
        ordo_pb2_grpc.add_JobServiceServicer_to_server(
            JobService(cfg, self.consensus, self.queries, registry, self.changes, self.hub), server
        )
        ordo_pb2_grpc.add_ClusterServiceServicer_to_server(
            ClusterService(cfg, self.consensus, self.executor, self.peers, self.queries, self.hub), server
        )
        peer_grpc.add_PeerServiceServicer_to_server(
            PeerService(cfg.node_id, self.executor, self.consensus, self.hub), server
        )
        self.worker_service = WorkerService(cfg, self.consensus, self.hub, self.peers, self.queries)
        peer_grpc.add_WorkerServiceServicer_to_server(self.worker_service, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        enable_reflection(server, (*PUBLIC_SERVICE_NAMES, health.SERVICE_NAME))
        try:
            if cfg.tls is None:
                server.add_insecure_port(cfg.grpc_address)
            else:
                server.add_secure_port(cfg.grpc_address, server_credentials(cfg.tls))
        except RuntimeError:
            raise ConfigError(
                f"{cfg.source}: node.grpc_address: cannot listen on {cfg.grpc_address}"
            ) from None
        return server, health_servicer

    # -- reacting to the state machine and to Raft -----------------------------

    def _on_effects(self, fx: Effects) -> None:
        self.changes.notify()
        if fx.members_changed:
            self._spawn(self._sync_members())
        if fx.workers_changed:
            self._spawn(self._sync_workers())
        if fx.earliest_due is not None and self.timekeeper is not None:
            self.timekeeper.notify_due(fx.earliest_due)
        if self.dispatcher is not None and (fx.pending or fx.finished or fx.cancelled_runs or fx.retry_at):
            self.dispatcher.observe(fx.run_times)
            self.dispatcher.wake()
        for run_id, attempt, node_id in fx.cancelled_runs:
            if node_id == self.config.node_id:
                self.executor.cancel(run_id, attempt)
            elif node_id in self.hub.links:
                self.hub.cancel(node_id, run_id, attempt)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, keeping a reference until it ends."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_role(self, role: str, term: int) -> None:
        if self._stop.is_set():
            return  # shutting down: a leadership handed to us now is not taken up
        if role == "leader":
            log.info("became leader term=%d", term, extra={"term": term})
            if self._leader_task is None or self._leader_task.done():
                self._leader_task = asyncio.create_task(self._lead(term), name="leadership")
        else:
            log.info("became %s term=%d", role, term, extra={"term": term})
            self.hub.close_all()  # its workers reconnect, and are sent to the new leader
            if self._leader_task is not None:
                self._leader_task.cancel()
                self._leader_task = None
                self.timekeeper = self.dispatcher = None

    # -- the stop sequence's steps (see the module's docstring) ------------------

    @property
    def _graced(self) -> float:
        """When the running attempts' shutdown_grace ends."""
        return self.stop_deadline - STOP_MARGIN

    @property
    def _late(self) -> float:
        """When the last outcomes, this node's and stopping peers', must have committed."""
        return self._graced + LATE

    async def _drain(self, health_servicer: health.aio.HealthServicer) -> None:
        """Take no new work: health checks say NOT_SERVING, assignments are refused, and the
        attempts held here and not started are given back (a grace of 0 waits for nothing)."""
        await health_servicer.enter_graceful_shutdown()
        await self.executor.finish_running(0)

    async def _finish_running(self) -> None:
        await self.executor.finish_running(max(0.0, self._graced - time.monotonic()))

    def _outcomes_until(self) -> float:
        """When this node stops waiting for its outcomes to commit: LATE after its attempts ended
        (a cluster that lost its majority will not commit them by waiting longer)."""
        return min(self._late, time.monotonic() + LATE)

    async def _commit_outcomes(self) -> None:
        # A little under the step's time, so that the reporter says itself what it leaves.
        await self.reporter.drain(max(0.0, self._outcomes_until() - time.monotonic() - 0.1))

    async def _wait_for_stopping_peers(self) -> None:
        """Stay in Raft while peers that are stopping too still hold attempts.

        When a whole cluster stops at once (Ctrl-C on ``ordo-node up``, a
        SIGTERM to every node), the nodes with nothing running would leave at
        once; with the majority gone, the outcomes of attempts still running
        elsewhere could not commit, and after a restart those attempts would
        be LOST and run again. A peer that is not stopping needs no wait, nor
        one that is gone. A peer's executor status says whether it is draining
        and still runs attempts; the replicated runs table, whether their
        outcomes have committed.
        """
        me, announced = self.config.node_id, ""
        idle_since: dict[str, float] = {}  # draining peers with nothing left running
        ran: set[str] = set()  # peers seen running attempts during this wait
        held: set[str] = set()  # peers this replica showed holding attempts
        while not self._hurried:
            load = await self.queries.load_by_node()
            holders = {n for n, count in load.items() if count}
            held |= holders
            waiting = []
            for peer in self.peers.members():
                if peer.id == me:
                    continue
                status = await self._executor_status(peer.id)
                if status is None or not status.draining:
                    continue
                if status.running:
                    ran.add(peer.id)
                    waiting.append(peer.id)
                    continue
                # Nothing running there now: its last outcomes commit within LATE. Wait
                # that long while this replica still shows it holding attempts (they may
                # also be stale: their leases bring them back), or when it ran some that
                # this replica, behind, never showed.
                now = time.monotonic()
                unseen = peer.id in ran and peer.id not in held
                idle = now - idle_since.setdefault(peer.id, now)
                if (peer.id in holders or unseen) and idle < LATE:
                    waiting.append(peer.id)
            if not waiting:
                return
            if announced != (names := ",".join(waiting)):
                log.info("staying in Raft until stopping nodes %s commit their running attempts", names)
                announced = names
            await asyncio.sleep(0.1)

    async def _hand_over(self) -> None:
        """Leaving Raft as leader would cost the nodes that stay up an election: hand leadership
        over if one of them does (not when every peer is stopping or gone)."""
        if not self.consensus.is_leader:
            return
        for peer in self.peers.members():
            if peer.id == self.config.node_id:
                continue
            status = await self._executor_status(peer.id)
            if status is not None and not status.draining:
                await self.consensus.transfer_leadership(1.0)
                return

    async def _executor_status(self, node_id: str) -> internal_pb2.ExecutorStatus | None:
        """A peer's executor status (None when it does not answer: it is gone, or going)."""
        try:
            status: internal_pb2.ExecutorStatus = await self.peers.stub(node_id).GetExecutorStatus(
                internal_pb2.ExecutorStatusRequest(), timeout=1.0
            )
        except (grpc.RpcError, KeyError):
            return None
        return status

    async def _stop_leading(self) -> None:
        # Hand leadership to a caught-up follower first, so triggering resumes
        # at once instead of after an election timeout.
        await self.consensus.transfer_leadership()
        task, self._leader_task = self._leader_task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _sync_workers(self) -> None:
        """Read the registered workers into the hub. While a read runs, the changes that commit
        make one more read after it, not one each (200 workers registering at once made 200
        reads of 200 rows)."""
        self._workers_stale = True
        if self._workers_reading:
            return
        self._workers_reading = True
        try:
            while self._workers_stale:
                self._workers_stale = False
                self.hub.set_registered([(w.id, w.state, w.handlers) for w in await self.queries.workers()])
        finally:
            self._workers_reading = False

    def _on_worker(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.on_worker()

    async def _sync_members(self) -> None:
        self.peers.sync(await self.queries.members())
        log.info("members now %s", ",".join(m.id for m in self.peers.members()))

    async def _prune(self) -> None:
        """History retention, while this node leads: a Prune command now and then."""
        cfg = self.config
        limit = 5000
        while True:
            await asyncio.sleep(cfg.prune_interval)
            at = now_us()
            cmd = c.Prune(
                at=at,
                node=cfg.node_id,
                keep_runs=cfg.keep_runs,
                events_before=at - int(cfg.event_max_age_days * 86_400_000_000),
                keep_requests=100_000,
                limit=limit,
            )
            try:
                result = await self.consensus.propose(cmd)
            except OrdoError as e:
                log.warning("retention not committed: %s", e)
                continue
            if any(result.values()):
                log.info("retention pruned %s", " ".join(f"{k}={v}" for k, v in result.items()))

    async def _lead(self, term: int) -> None:
        """Run the leader-only actors while this node leads; restart them with backoff if one fails."""
        backoff = 0.2
        while True:
            try:
                # Commit a barrier first: once it is applied here, so is every
                # command committed under earlier leaders.
                await self.consensus.propose(c.Barrier(node=self.config.node_id))
                # A leader whose clock is off the majority's by more than max_clock_skew
                # starts nothing that times by it (leases, triggers); it hands over instead.
                guard = ClockGuard(self.consensus)
                await guard.hold()
                self.dispatcher = Dispatcher(
                    self.config, self.consensus, self.queries, self.peers, hub=self.hub
                )
                self.timekeeper = Timekeeper(
                    self.config.node_id,
                    self.consensus,
                    self.queries,
                    self.metrics.observe_lateness,
                    dispatcher=self.dispatcher,
                    clock=guard,
                )
                log.info("leader actors started term=%d", term)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.timekeeper.run(), name="timekeeper")
                    tg.create_task(self.dispatcher.run(), name="dispatcher")
                    tg.create_task(self._prune(), name="retention")
                    tg.create_task(self.worker_service.reap(), name="absent workers")
            except asyncio.CancelledError:
                log.info("leader actors stopped term=%d", term)
                raise
            except Exception as e:  # a TaskGroup failure: log it, and lead again after a pause
                first = e.exceptions[0] if isinstance(e, ExceptionGroup) else e
                if isinstance(first, OrdoError):
                    log.warning("leader actors interrupted: %s; restarting in %.1fs", first, backoff)
                else:
                    log.error("leader actors failed; restarting in %.1fs", backoff, exc_info=first)
            self.timekeeper = self.dispatcher = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def dashboard_url(cfg: Config) -> str:
    """Where this node's dashboard is (its metrics address: HTTPS with [tls])."""
    host, _, port = cfg.metrics_address.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"{'https' if cfg.tls else 'http'}://{host}:{port}/"


async def _not_serving(health_servicer: health.aio.HealthServicer) -> None:
    """A node that stopped replicating (fail-stop) says so to health checks and load balancers."""
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
