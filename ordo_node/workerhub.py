"""The leader's side of its workers' connections: who is connected, their status, and assignments.

A worker (``ordo-node worker``) holds one stream to the leader
(:class:`~ordo_node.api.workers.WorkerService`). Each open stream is a
:class:`Link` here; the dispatcher asks the hub for a worker's status as it
asks a member's PeerService, and hands it assignments through :meth:`assign`.
The hub holds nothing replicated: the workers' registrations are in the state
machine (``workers``), and a new leader's hub fills as the workers reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from .errors import Unavailable
from .pb import internal_pb2
from .timeutil import now_us

log = logging.getLogger("ordo_node.workers")

# How long an assignment waits for the worker's acknowledgement.
ACK_TIMEOUT = 5.0
# A worker heartbeats every second; one not heard from for this long gets no work.
SILENT_US = 3_500_000
# Messages queued for one worker before the stream counts as stuck and is closed.
MAX_OUTBOX = 10_000


@dataclass
class Link:
    """One worker's open stream to this node."""

    worker_id: str
    boot_id: str
    capacity: int
    tags: tuple[str, ...]
    handlers: tuple[str, ...]
    address: str
    connected_at: int = field(default_factory=now_us)
    last_heartbeat: int = 0
    running: list[internal_pb2.ExecutorRun] = field(default_factory=list)
    draining: bool = False
    # What goes out on the stream, in order; None ends it (see close).
    outbox: asyncio.Queue[internal_pb2.ServerMessage | None] = field(default_factory=asyncio.Queue)
    acks: dict[int, asyncio.Future[list[str]]] = field(default_factory=dict)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, message: internal_pb2.ServerMessage) -> None:
        """Queue a message for the worker; a worker that stopped reading is disconnected."""
        if self.closed.is_set():
            raise Unavailable(f"worker {self.worker_id} is not connected")
        if self.outbox.qsize() >= MAX_OUTBOX:
            self.close()
            raise Unavailable(f"worker {self.worker_id} stopped reading its stream; disconnected")
        self.outbox.put_nowait(message)

    def close(self) -> None:
        """End the stream (after what is queued); waiting assignments fail."""
        if not self.closed.is_set():
            self.closed.set()
            self.outbox.put_nowait(None)
        for fut in self.acks.values():
            if not fut.done():
                fut.set_exception(Unavailable(f"worker {self.worker_id} disconnected"))
        self.acks.clear()


class WorkerHub:
    """The workers connected to this node (only the leader accepts them)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.links: dict[str, Link] = {}
        # The job types registered workers run (replicated; refreshed on every
        # change): submissions of these types are accepted on any node.
        self.types: frozenset[str] = frozenset()
        self.active: frozenset[str] = frozenset()
        # Told when a worker connects or disconnects (the dispatcher polls at once).
        self.on_change: Callable[[], None] = lambda: None
        self._seq = 0
        # worker id -> when its stream to this node ended (microseconds)
        self.left_at: dict[str, int] = {}

    def set_registered(self, rows: list[tuple[str, str, str]]) -> None:
        """The registered workers, (id, state, handlers as JSON), as the state machine holds them."""
        types: set[str] = set()
        for _, state, handlers in rows:
            if state == "ACTIVE":
                types.update(json.loads(handlers))
        self.types = frozenset(types)
        self.active = frozenset(worker_id for worker_id, state, _ in rows if state == "ACTIVE")

    def attach(self, link: Link) -> None:
        """A worker connected; a stream it had before is closed (the worker reconnected)."""
        old = self.links.get(link.worker_id)
        if old is not None:
            old.close()
        self.links[link.worker_id] = link
        self.left_at.pop(link.worker_id, None)
        self.on_change()
        log.info(
            "worker %s connected from %s (capacity %d, %d handlers)",
            link.worker_id,
            link.address,
            link.capacity,
            len(link.handlers),
        )

    def detach(self, link: Link) -> None:
        """The stream ended."""
        link.close()
        if self.links.get(link.worker_id) is link:
            del self.links[link.worker_id]
            self.left_at[link.worker_id] = now_us()
            self.on_change()
            log.info("worker %s disconnected", link.worker_id)

    def close_all(self, redirect: internal_pb2.ServerRedirect | None = None) -> None:
        """Leadership ended: tell every worker where to go (if known) and end the streams."""
        for link in list(self.links.values()):
            if redirect is not None:
                with suppress(Unavailable):
                    link.send(internal_pb2.ServerMessage(redirect=redirect))
            link.close()
        self.links.clear()

    def cancel(self, worker_id: str, run_id: str, attempt: int) -> None:
        """Tell a connected worker to stop an attempt (cancelled, or given up by the cluster)."""
        link = self.links.get(worker_id)
        if link is not None:
            with suppress(Unavailable):
                link.send(
                    internal_pb2.ServerMessage(
                        cancel=internal_pb2.ServerCancel(run_id=run_id, attempt=attempt)
                    )
                )

    def status(self, worker_id: str) -> internal_pb2.ExecutorStatus | None:
        """The connected worker's status as a member's executor reports it; None if not connected."""
        link = self.links.get(worker_id)
        if link is None or link.closed.is_set():
            return None
        if link.last_heartbeat and now_us() - link.last_heartbeat > SILENT_US:
            return None  # connected, but silent (cut off): no work goes there until it is heard again
        return internal_pb2.ExecutorStatus(
            node_id=worker_id,
            capacity=link.capacity,
            tags=list(link.tags),
            running=link.running,
            role="worker",
            draining=link.draining,
            boot_id=link.boot_id,
            handlers=list(link.handlers),
        )

    async def assign(self, worker_id: str, request: internal_pb2.AssignRequest) -> list[str]:
        """Send assignments to a connected worker; the run ids it accepted.

        Raises Unavailable when it is not connected or does not answer in ACK_TIMEOUT.
        """
        link = self.links.get(worker_id)
        if link is None:
            raise Unavailable(f"worker {worker_id} is not connected")
        self._seq += 1
        seq = self._seq
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        link.acks[seq] = fut
        try:
            link.send(internal_pb2.ServerMessage(assign=internal_pb2.ServerAssign(seq=seq, request=request)))
            return await asyncio.wait_for(fut, ACK_TIMEOUT)
        except TimeoutError:
            raise Unavailable(f"worker {worker_id} did not acknowledge in {ACK_TIMEOUT:g}s") from None
        finally:
            link.acks.pop(seq, None)

    def acknowledged(self, link: Link, ack: internal_pb2.WorkerAck) -> None:
        """The worker answered assignment ``ack.seq``."""
        fut = link.acks.get(ack.seq)
        if fut is not None and not fut.done():
            fut.set_result(list(ack.accepted))

    def describe(self) -> dict[str, Any]:
        """For logs and tests: worker id -> (capacity, running)."""
        return {w: (x.capacity, len(x.running)) for w, x in self.links.items()}
