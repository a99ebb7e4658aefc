"""WorkerService: workers (``ordo-node worker``) connect here; the leader serves them.

A worker opens :meth:`WorkerService.Connect` on any server. A server that does
not lead answers one redirect (the leader's id and gRPC address) and ends the
stream. The leader registers the worker through Raft (RegisterWorker: a
worker known to every node, and its earlier process's attempts given up),
welcomes it, and from then on sends it assignments and clock readings on the
stream while the worker sends heartbeats and acknowledgements.

Outcomes, lease renewals and attempts given back come by :meth:`Propose`:
the worker's own commands (RecordRunUpdates, RenewLeases, ExpireRuns) under
its own id, proposed through Raft by the server that receives them, with the
same request ids and fencing tokens as a member's executor uses. Those that
arrive together from many workers go into one Raft entry (a Batch).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import grpc

from .. import commands as c
from ..auth import Tokens, certificate_refusal, token_refusal
from ..clock import majority_now_us
from ..config import Config
from ..consensus import Consensus
from ..errors import FailedPrecondition, InvalidArgument, OrdoError, PermissionDenied, Unavailable
from ..pb import internal_pb2, internal_pb2_grpc, ordo_pb2
from ..peers import Peers
from ..queries import Queries
from ..timeutil import now_us
from ..wire import ts
from ..workerhub import Link, WorkerHub
from . import validate as v
from .batcher import ProposalBatcher
from .convert import running_runs
from .errors import code_for, rpc

log = logging.getLogger("ordo_node.workers")

# Commands a worker may propose, each under its own id only.
WORKER_COMMANDS = (c.RecordRunUpdates, c.RenewLeases, c.ExpireRuns)
MAX_HANDLERS = 1000


def worker_status(link: Link, node_id: str) -> ordo_pb2.WorkerStatus:
    """A connected worker as GetClusterStatus lists it."""
    return ordo_pb2.WorkerStatus(
        worker_id=link.worker_id,
        address=link.address,
        capacity=link.capacity,
        tags=list(link.tags),
        handlers=list(link.handlers),
        running_count=len(link.running),
        running=running_runs(link.running),
        last_heartbeat=ts(link.last_heartbeat or None),
        connected_to=node_id,
        boot_id=link.boot_id,
        draining=link.draining,
    )


def check_hello(hello: internal_pb2.WorkerHello, members: set[str]) -> None:
    """InvalidArgument naming the first bad field of a worker's hello."""
    v.node_id(hello.worker_id, "hello.workerId")
    if hello.worker_id in members:
        raise InvalidArgument("hello.workerId", f"'{hello.worker_id}' is a cluster member's id")
    if not hello.boot_id or len(hello.boot_id) > 64:
        raise InvalidArgument("hello.bootId", "must be 1 to 64 characters")
    if not 0 <= hello.capacity <= 10_000:
        raise InvalidArgument("hello.capacity", f"must be between 0 and 10000, not {hello.capacity}")
    v.tags(hello.tags, "hello.tags")
    if len(hello.handlers) > MAX_HANDLERS:
        raise InvalidArgument("hello.handlers", f"has {len(hello.handlers)}; the limit is {MAX_HANDLERS}")
    for name in hello.handlers:
        v.text(name, "hello.handlers", v.MAX_TYPE, required=True)


class WorkerService(internal_pb2_grpc.WorkerServiceServicer):  # type: ignore[misc]
    """The leader's end of its workers' streams, and their proposals on any server."""

    def __init__(
        self, config: Config, consensus: Consensus, hub: WorkerHub, peers: Peers, queries: Queries
    ) -> None:
        self.config = config
        self.consensus = consensus
        self.hub = hub
        self.peers = peers
        self.queries = queries
        self.tokens = Tokens(config.tokens)
        # Outcomes and renewals of many workers, committed together.
        self.batcher = ProposalBatcher(config.node_id, consensus, max_bytes=consensus.max_command_bytes // 2)
        self._proposing: set[asyncio.Task[None]] = set()

    def _identity_refusal(
        self, context: grpc.aio.ServicerContext, worker_id: str
    ) -> tuple[grpc.StatusCode, str] | None:
        """Why this caller may not act as ``worker_id``: a token bound to other workers, or (under
        ``[auth] worker_certificates``, without a token) a certificate of another name."""
        if not self.tokens.enabled and not self.config.worker_certificates:
            return None
        metadata = context.invocation_metadata()
        if self.tokens.enabled:
            refusal = token_refusal(self.tokens, metadata, worker_id)
            if refusal is not None:
                return refusal
        if not self.config.worker_certificates:
            return None
        return certificate_refusal(
            self.config.worker_certificates, metadata, context.auth_context(), worker_id
        )

    def _redirect(self, reason: str) -> internal_pb2.ServerMessage:
        leader = self.consensus.leader_id() or ""
        peer = self.peers.get(leader) if leader else None
        address = (
            self.config.grpc_address if leader == self.config.node_id else (peer.grpc_address if peer else "")
        )
        return internal_pb2.ServerMessage(
            redirect=internal_pb2.ServerRedirect(leader_id=leader, leader_address=address, reason=reason)
        )

    async def Connect(
        self, requests: AsyncIterator[internal_pb2.WorkerMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[internal_pb2.ServerMessage]:
        """Serve one worker's stream until it or this node's leadership ends."""
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("kind") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hello: the first message must be a hello")
            return
        hello = first.hello
        try:
            check_hello(hello, {m.id for m in self.peers.members()})
        except InvalidArgument as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            return
        refusal = self._identity_refusal(context, hello.worker_id)
        if refusal is not None:
            log.warning("refused worker %s: %s", hello.worker_id, refusal[1])
            await context.abort(*refusal)
            return
        if not self.consensus.is_leader:
            yield self._redirect(f"{self.config.node_id} does not lead")
            return
        address = context.peer()
        register = c.RegisterWorker(
            request_id=uuid.uuid4().hex,
            at=now_us(),
            node=self.config.node_id,
            worker_id=hello.worker_id,
            boot_id=hello.boot_id,
            capacity=hello.capacity,
            tags=tuple(sorted(set(hello.tags))),
            handlers=tuple(sorted(set(hello.handlers))),
            address=address,
        )
        try:
            result = await self.consensus.propose(register)
        except Exception as e:  # no majority, not leading any more: the worker tries elsewhere
            yield self._redirect(f"registration not committed: {e}")
            return
        if result.get("lost"):
            log.info(
                "worker %s restarted: %d attempts of its earlier process given up",
                hello.worker_id,
                len(result["lost"]),
            )
        link = Link(
            worker_id=hello.worker_id,
            boot_id=hello.boot_id,
            capacity=hello.capacity,
            tags=register.tags,
            handlers=register.handlers,
            address=address,
        )
        self.hub.attach(link)
        reader = asyncio.create_task(self._read(link, requests), name=f"worker {link.worker_id} reader")
        # The worker's end of the stream, or its failure, ends ours too.
        reader.add_done_callback(lambda _: link.close())
        try:
            yield internal_pb2.ServerMessage(
                welcome=internal_pb2.ServerWelcome(
                    leader_id=self.config.node_id,
                    term=self.consensus.term,
                    lease_timeout_ms=int(self.config.lease_timeout * 1000),
                )
            )
            # One queue, ended by close() with None: no future per message (200 workers'
            # heartbeat answers made the futures a tenth of the leader's quiet cost).
            while (message := await link.outbox.get()) is not None:
                yield message
        finally:
            reader.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await reader
            self.hub.detach(link)
            if link.draining and not link.running and self.consensus.is_leader:
                await self._left(link)

    async def _read(self, link: Link, requests: AsyncIterator[internal_pb2.WorkerMessage]) -> None:
        """The worker's messages after its hello: heartbeats (answered with the time) and acks."""
        async for message in requests:
            kind = message.WhichOneof("kind")
            if kind == "heartbeat":
                hb = message.heartbeat
                link.last_heartbeat = now_us()
                link.running = list(hb.running)
                link.draining = hb.draining
                # Every heartbeat is answered: the worker's clock samples, and its sign that the
                # leader still hears it.
                link.send(
                    internal_pb2.ServerMessage(
                        time=internal_pb2.ServerTime(
                            majority_now_us=majority_now_us(self.consensus), echo_sent_us=hb.sent_us
                        )
                    )
                )
            elif kind == "ack":
                self.hub.acknowledged(link, message.ack)
            elif kind == "propose":
                task = asyncio.create_task(self._propose_on_stream(link, message.propose))
                self._proposing.add(task)
                task.add_done_callback(self._proposing.discard)

    async def _propose_on_stream(self, link: Link, proposal: internal_pb2.WorkerPropose) -> None:
        """A proposal that came on the worker's stream: as Propose, the answer on the stream.

        Cheaper than a call of its own: no call to set up, no interceptors, no token to check
        again (the stream's was). With hundreds of workers each reporting a job or two at a
        time, the calls were the larger part of the leader's cost per job.
        """
        answer = internal_pb2.ServerProposed(seq=proposal.seq)
        try:
            cmd = await self._admit(link.worker_id, proposal.command)
            answer.result_json = json.dumps(await self.batcher.propose(cmd, len(proposal.command)))
        except OrdoError as e:
            answer.code, answer.message = code_for(e).name, str(e)
        except Exception as e:  # a bug: the worker retries, the log says what
            log.exception("proposal of worker %s failed", link.worker_id)
            answer.code, answer.message = "INTERNAL", f"the proposal failed: {type(e).__name__}"
        with suppress(Unavailable):
            link.send(internal_pb2.ServerMessage(proposed=answer))

    async def reap(self) -> None:
        """While this node leads: record as gone each registered worker that has not been
        connected for ``worker_gone_after`` (killed, or cut off for good), so that the cluster's
        status and the job types it accepts follow the workers that are there. A worker that
        comes back registers again."""
        since = now_us()  # a worker not seen since this node leads has been away at least this long
        after = int(self.config.worker_gone_after * 1_000_000)
        while True:
            await asyncio.sleep(min(5.0, self.config.worker_gone_after / 4))
            now = now_us()
            for w in await self.queries.workers():
                if w.state != "ACTIVE" or w.id in self.hub.links:
                    continue
                away = now - max(since, self.hub.left_at.get(w.id, 0))
                if away < after:
                    continue
                cmd = c.RegisterWorker(
                    request_id=uuid.uuid4().hex,
                    at=now,
                    node=self.config.node_id,
                    worker_id=w.id,
                    boot_id=w.boot_id,
                    gone=True,
                )
                result = await self.consensus.propose(cmd)
                log.warning(
                    "worker %s not connected for %.0fs: recorded as gone (%d attempts given up)",
                    w.id,
                    away / 1e6,
                    len(result.get("lost", [])),
                )

    async def _left(self, link: Link) -> None:
        """A draining worker closed its stream with nothing running: it left."""
        cmd = c.RegisterWorker(
            request_id=uuid.uuid4().hex,
            at=now_us(),
            node=self.config.node_id,
            worker_id=link.worker_id,
            boot_id=link.boot_id,
            gone=True,
        )
        try:
            await self.consensus.propose(cmd)
            log.info("worker %s left", link.worker_id)
        except Exception as e:
            log.warning("worker %s left, not recorded: %s", link.worker_id, e)

    @rpc
    async def Propose(
        self, request: internal_pb2.WorkerProposal, context: grpc.aio.ServicerContext
    ) -> internal_pb2.WorkerProposalResult:
        """Propose one of the worker's own commands; answer the state machine's result."""
        worker_id = v.node_id(request.worker_id, "workerId")
        refusal = self._identity_refusal(context, worker_id)
        if refusal is not None:
            await context.abort(*refusal)
        cmd = await self._admit(worker_id, request.command)
        result = await self.batcher.propose(cmd, len(request.command))
        return internal_pb2.WorkerProposalResult(result_json=json.dumps(result))

    async def _admit(self, worker_id: str, blob: bytes) -> c.Command:
        """The command a worker proposes, if it may: one of its own, of the kinds it may propose."""
        try:
            cmd = c.decode(blob)
        except c.DecodeError as e:
            raise InvalidArgument("command", str(e)) from None
        if not isinstance(cmd, WORKER_COMMANDS):
            raise PermissionDenied(f"command: a worker may not propose '{cmd.op}'")
        if cmd.node != worker_id:
            raise PermissionDenied(
                f"command: is for '{cmd.node}'; worker '{worker_id}' proposes its own only"
            )
        # Registered (replicated), or connected here: a registration just committed may not have
        # reached this node's list of the registered ones yet.
        if worker_id not in self.hub.active and worker_id not in self.hub.links:
            raise FailedPrecondition(f"workerId: no registered worker '{worker_id}'; connect first")
        if isinstance(cmd, c.ExpireRuns):
            theirs = await self.queries.held_of(worker_id, [(r.run_id, r.attempt) for r in cmd.runs])
            others = [r for r in cmd.runs if (r.run_id, r.attempt) not in theirs]
            if others or cmd.check_lease:
                raise PermissionDenied("command: a worker gives back only attempts it holds")
        return cmd
