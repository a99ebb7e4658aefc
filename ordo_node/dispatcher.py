"""The dispatcher: on the leader only, gives pending runs to executors.

For each batch it chooses nodes (the most free capacity first, ties in turn,
so runs spread across the cluster), commits one AssignRuns command, and only
then sends the committed assignments to each executor over the internal gRPC
service. The leader acts on a decision only after its command committed: if
two nodes briefly both lead, the log keeps only the first assignment of an
attempt and the other leader sends nothing for it.

The load of each node is read from SQLite (attempts assigned or running), so
it is right after a leader change without any hand-over. Capacity and
liveness come from polling each executor's status.

An executor runs at most its capacity at once, but holds more: attempts wait
there for a slot (so a slot is refilled as soon as a handler returns, not
after the outcome's commit and the next assignment's round trip), about
QUEUE_US of work per slot by how long that node's runs took lately (from the
outcomes committed: between QUEUE_PER_SLOT and MAX_QUEUE_PER_SLOT runs), and up
to HOLD_PER_SLOT per slot assigned ahead of
their scheduled time wait for it (the timekeeper triggers one-off jobs a
little early and assigns them in the same command, through :meth:`place`).
Nothing is queued behind slots taken by runs that have run for long.
Assignments proposed but not committed yet are reserved, so that the
timekeeper and the dispatch loop never give out the same room twice.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

import grpc
from google.protobuf import struct_pb2

from . import commands as c
from .config import Config
from .consensus import Consensus
from .errors import OrdoError, Unavailable
from .flowcontrol import admit_keyed
from .pb import internal_pb2
from .peers import Peers
from .queries import NodeLoad, Queries, WorkItem
from .timeutil import now_us
from .wire import ts, value
from .workerhub import WorkerHub

log = logging.getLogger("ordo_node.dispatcher")

POLL_INTERVAL = 1.0
RESEND_AFTER_US = 5_000_000
# Attempts queued on an executor per slot, beyond those running: about QUEUE_US of
# work by its recent run times, at least QUEUE_PER_SLOT (also while they are
# unknown: no outcome seen yet) and at most MAX_QUEUE_PER_SLOT. A burst of short jobs due now is then
# mostly assigned by its trigger command (one write per run on every replica
# instead of three, and no AssignRuns), while long runs get a short queue.
QUEUE_PER_SLOT = 2
MAX_QUEUE_PER_SLOT = 64
QUEUE_US = 1_000_000
# Attempts assigned ahead of their scheduled time that an executor holds, per slot.
HOLD_PER_SLOT = 100
# A run that has been running this long keeps its slot a while: nothing queues behind it.
SLOW_US = 1_000_000


def payload_value(obj: Any) -> struct_pb2.Value:
    """A JSON value as a protobuf Value: what ``wire.value`` gives, built directly
    (json_format.ParseDict was a fifth of the leader's cost of sending an assignment)."""
    v = struct_pb2.Value()
    if isinstance(obj, dict):
        v.struct_value.SetInParent()  # an empty object is still an object
        v.struct_value.update(obj)
    elif isinstance(obj, list):
        v.list_value.SetInParent()
        v.list_value.extend(obj)
    elif obj is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        v.bool_value = obj
    elif isinstance(obj, int | float):
        v.number_value = obj
    elif isinstance(obj, str):
        v.string_value = obj
    else:
        return value(obj)
    return v


def assignment_message(item: WorkItem) -> internal_pb2.Assignment:
    """The wire form of one assignment."""
    return internal_pb2.Assignment(
        run_id=item.run_id,
        attempt=item.attempt,
        job_id=item.job_id,
        type=item.type,
        payload=payload_value(json.loads(item.payload)),
        payload_json=item.payload,
        name=item.name,
        idempotency_key=item.idempotency_key,
        scheduled_at=ts(item.scheduled_at),
        timeout_ms=item.timeout_us // 1000,
        long_running=bool(item.options and json.loads(item.options).get("long_running")),
        boot_id=item.boot_id,
    )


Pending = tuple[str, int, frozenset[str]]


def queue_per_slot(mean_run_us: int) -> int:
    """How many due attempts may wait per free slot of an executor whose runs take ``mean_run_us``
    (0: not known yet): about QUEUE_US of work, within [QUEUE_PER_SLOT, MAX_QUEUE_PER_SLOT]."""
    if mean_run_us <= 0:
        return QUEUE_PER_SLOT
    return max(QUEUE_PER_SLOT, min(MAX_QUEUE_PER_SLOT, QUEUE_US // mean_run_us))


def waiting_reason(needs: frozenset[str], offers: Iterable[frozenset[str]]) -> str:
    """Why no node takes a run: the job type no live executor runs, or the tags none has."""
    offered: frozenset[str] = frozenset().union(*offers)
    handlers = sorted(
        n.removeprefix("handler:") for n in needs if n.startswith("handler:") and n not in offered
    )
    if handlers:
        return f"no live executor runs {handlers[0]!r} jobs (executor.dangerous_handlers, handler modules)"
    tags = sorted(n for n in needs if not n.startswith("handler:"))
    return f"no live executor has the tags {', '.join(tags)}"


def choose_nodes(
    runs: list[Pending],
    free: dict[str, int],
    tags: dict[str, frozenset[str]] | None = None,
    start: int = 0,
    rank: dict[str, int] | None = None,
) -> tuple[list[c.Assignment], list[Pending]]:
    """Place ``runs`` on nodes that have every tag a run needs and room (``free``): the highest
    ``rank`` first (by default the most room), ties in turn.

    ``rank`` is for nodes whose queues differ in depth: a node's room then says
    how much it may take, and its rank (its free slots) who takes first.
    Returns the assignments, and the runs that no node in ``free`` could ever
    take (it lacks their tags) — as opposed to runs that wait for a free slot.
    """
    nodes = sorted(free)
    slots = dict(free)
    order = dict(rank) if rank is not None else slots
    tags = tags or {}
    # Among nodes of equal rank, the one whose turn came longest ago goes first (at first: in turn
    # from ``start``). The nodes that fit each set of needs (runs of one type share it) wait in a
    # heap by (rank, turn), so that a run's choice costs log(nodes), not nodes: with 200 workers
    # the scan was most of placing a run. An entry whose node changed since is skipped.
    count = len(nodes)
    turn = {n: (i - start) % count for i, n in enumerate(nodes)}
    last = count
    heaps: dict[frozenset[str], list[tuple[int, int, str]]] = {}
    fits_some: dict[frozenset[str], bool] = {}
    heaps_of: dict[str, list[list[tuple[int, int, str]]]] = {n: [] for n in nodes}
    out: list[c.Assignment] = []
    unplaceable: list[Pending] = []
    # Once no room is left, the other runs only learn whether they could ever fit.
    room = sum(max(0, x) for x in slots.values())
    for run_id, attempt, needs in runs:
        heap = heaps.get(needs)
        if heap is None:
            fit = [n for n in nodes if needs <= tags.get(n, frozenset())]
            fits_some[needs] = bool(fit)
            heap = heaps[needs] = [(-order[n], turn[n], n) for n in fit if slots[n] > 0]
            heapq.heapify(heap)
            for n in fit:
                heaps_of[n].append(heap)
        if not fits_some[needs]:
            unplaceable.append((run_id, attempt, needs))
            continue
        if room <= 0:
            continue
        best = None
        while heap:
            key, at, n = heap[0]
            if slots[n] > 0 and key == -order[n] and at == turn[n]:
                best = n
                break
            heapq.heappop(heap)  # full, or changed since it was pushed
        if best is None:
            continue
        slots[best] -= 1
        room -= 1
        if rank is not None:
            order[best] -= 1
        last += 1
        turn[best] = last
        if slots[best] > 0:
            for h in heaps_of[best]:
                heapq.heappush(h, (-order[best], last, best))
        out.append(c.Assignment(run_id, attempt, best))
    return out, unplaceable


class Dispatcher:
    """Leader-only actor; :meth:`run` until cancelled when leadership ends."""

    def __init__(
        self,
        config: Config,
        consensus: Consensus,
        queries: Queries,
        peers: Peers,
        *,
        batch: int = 2000,
        hub: WorkerHub | None = None,
    ) -> None:
        self.config = config
        self.consensus = consensus
        self.queries = queries
        self.peers = peers
        # Workers connected to this node: executors like the members', reached over their streams.
        self.hub = hub if hub is not None else WorkerHub(config.node_id)
        self.batch = batch
        self.capacity: dict[str, int] = {}
        self.reachable: dict[str, bool] = {}
        self.tags: dict[str, frozenset[str]] = {}
        # node -> how long its runs took lately (a moving average of the committed
        # outcomes, in us; absent: none seen since this node leads)
        self.run_us: dict[str, int] = {}
        self._waiting: set[tuple[str, int]] = set()
        # node -> (boot id, when it was last seen with it)
        self.boots: dict[str, tuple[str, int]] = {}
        self.lease_us = int(config.lease_timeout * 1_000_000)
        self._wake = asyncio.Event()
        self._turn = 0
        self._started = now_us()
        self._sends: set[asyncio.Task[None]] = set()
        # Proposed, not committed: attempt -> (node, ahead of its time)
        self._reserved: dict[tuple[str, int], tuple[str, bool]] = {}
        # Attempts left out of the last placement as their concurrency key was full (flowcontrol.py)
        self._held_back = 0

    def observe(self, run_times: Iterable[tuple[str, int]]) -> None:
        """Runs finished on these nodes after these many microseconds (from committed outcomes)."""
        for node_id, took in run_times:
            mean = self.run_us.get(node_id)
            self.run_us[node_id] = took if mean is None else (7 * mean + took) // 8

    def wake(self) -> None:
        """Something changed (a run became pending, or one finished): look again."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until cancelled."""
        await self.poll_executors()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._poll_loop())
                tg.create_task(self._resend_loop())
                tg.create_task(self._lease_loop())
                tg.create_task(self._dispatch_loop())
        finally:
            for task in self._sends:
                task.cancel()

    async def poll_executors(self) -> None:
        """Ask every member for its executor's status; unreachable members get no work.

        A member that restarted since the last poll (a new boot id) holds
        nothing it was given before: those attempts are given up at once,
        rather than after their lease.
        """

        async def one(node_id: str) -> None:
            asked = now_us()
            try:
                status = await self._status(node_id)
            except Exception as e:  # any failure means: do not send work there now
                if self.reachable.get(node_id, True):
                    log.warning("executor node=%s unreachable: %s", node_id, _short(e))
                self.reachable[node_id] = False
                return
            if not self.reachable.get(node_id, False):
                log.info("executor node=%s reachable capacity=%d", node_id, status.capacity)
            self.reachable[node_id] = True
            self.capacity[node_id] = 0 if status.draining else status.capacity
            offers = frozenset((*status.tags, *(f"handler:{h}" for h in status.handlers)))
            if offers != self.tags.get(node_id):
                self.tags[node_id] = offers
                self._waiting.clear()  # a node's tags changed: waiting runs may fit now
            old = self.boots.get(node_id)
            self.boots[node_id] = (status.boot_id, asked)
            if old is not None and old[0] != status.boot_id:
                held = await self.queries.held_by(node_id, old[1])
                if held:
                    await self.expire(held, f"executor {node_id} restarted")

        members = {m.id for m in self.peers.members()} | set(self.hub.links)
        for gone in set(self.capacity) - members:  # removed from the cluster, or a worker disconnected
            self.capacity.pop(gone, None)
            self.reachable.pop(gone, None)
            self.run_us.pop(gone, None)
        await asyncio.gather(*(one(node_id) for node_id in members))

    async def _status(self, node_id: str) -> internal_pb2.ExecutorStatus:
        """A member's executor status by PeerService, a connected worker's from its heartbeats."""
        if self.peers.get(node_id) is None:
            status = self.hub.status(node_id)
            if status is None:
                raise Unavailable(f"worker {node_id} is not connected")
            return status
        reply: internal_pb2.ExecutorStatus = await self.peers.stub(node_id).GetExecutorStatus(
            internal_pb2.ExecutorStatusRequest(), timeout=POLL_INTERVAL
        )
        return reply

    def on_worker(self) -> None:
        """A worker connected or left: poll at once, so it gets work (or none) without waiting."""
        task = asyncio.create_task(self._repoll())
        self._track(task)

    async def _repoll(self) -> None:
        await self.poll_executors()
        self.wake()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            before = {n for n, ok in self.reachable.items() if ok}
            await self.poll_executors()
            if {n for n, ok in self.reachable.items() if ok} - before:
                self.wake()

    async def _dispatch_loop(self) -> None:
        await self.resend(now_us())
        while True:
            self._wake.clear()
            if await self.dispatch_once():
                continue
            # Sleep until woken, the next retry's backoff ends, or the poll interval.
            wait = POLL_INTERVAL
            retry = await self.queries.next_retry(now_us())
            if retry is not None:
                wait = min(wait, max(0.0, (retry - now_us()) / 1e6))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def room(self, now: int) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Places per reachable node: for attempts due now (its slots and a queue, see
        :func:`queue_per_slot`), and for attempts assigned ahead of their scheduled time; minus what
        is reserved. Third, each node's free slots less the due attempts it holds (below zero when
        some wait in its queue): who takes due attempts first, as queues differ in depth."""
        load = await self.queries.node_load(now, now - SLOW_US)
        reserved: dict[tuple[str, bool], int] = defaultdict(int)
        for node_id, ahead in self._reserved.values():
            reserved[node_id, ahead] += 1
        due: dict[str, int] = {}
        early: dict[str, int] = {}
        spare: dict[str, int] = {}
        for n, cap in self.capacity.items():
            if not self.reachable.get(n) or cap <= 0:
                continue
            held = load.get(n, NodeLoad(0, 0, 0))
            free = max(0, cap - held.slow)  # slots not taken by long runs
            spare[n] = cap - (held.held - held.ahead) - reserved[n, False]
            due[n] = max(0, spare[n] + free * queue_per_slot(self.run_us.get(n, 0)))
            early[n] = max(0, (HOLD_PER_SLOT * cap if free else 0) - held.ahead - reserved[n, True])
        return due, early, spare

    async def place(
        self, due: list[Pending], ahead: Sequence[Pending] = ()
    ) -> tuple[list[c.Assignment], list[Pending]]:
        """Choose executors for pending attempts (``ahead``: scheduled after now) and reserve the room.

        Returns the assignments, and the attempts no live node could ever take
        (their tags). The caller proposes the assignments, then calls
        :meth:`placed` with the committed result, or :meth:`release` if the
        command did not commit. Attempts that find no room stay pending for
        the dispatch loop.
        """
        room_due, room_ahead, spare = await self.room(now_us())
        # Concurrency keys (issue 17): nothing whose key is at its limit is offered.
        (due, ahead), self._held_back = await admit_keyed(self.queries, self._reserved, due, ahead)
        out: list[c.Assignment] = []
        unplaceable: list[Pending] = []
        for runs, room, early in ((due, room_due, False), (list(ahead), room_ahead, True)):
            if not runs:
                continue
            chosen, unfit = choose_nodes(runs, room, self.tags, self._turn, None if early else spare)
            unplaceable += unfit
            self._turn += len(chosen)
            for a in chosen:
                self._reserved[a.run_id, a.attempt] = (a.node_id, early)
                out.append(replace(a, boot_id=self.boots.get(a.node_id, ("", 0))[0]))
        return out, unplaceable

    def release(self, assignments: Iterable[c.Assignment]) -> None:
        """Forget the reservations of these assignments (committed, or given up)."""
        for a in assignments:
            self._reserved.pop((a.run_id, a.attempt), None)

    def placed(self, assignments: Iterable[c.Assignment], accepted: list[list[Any]]) -> None:
        """These assignments were proposed; ``accepted`` ([run id, attempt, node]) committed: send them
        (in the background: the caller goes on with its next batch)."""
        self.release(assignments)
        by_node: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for run_id, attempt, node_id in accepted:
            by_node[node_id].append((run_id, attempt))
        for node_id, keys in by_node.items():
            self._track(asyncio.create_task(self._read_and_send(node_id, keys)))

    async def _read_and_send(self, node_id: str, keys: list[tuple[str, int]]) -> None:
        await self._send(node_id, await self.queries.work_items(keys))

    async def dispatch_once(self) -> int:
        """Assign one batch of pending runs; return how many were assigned."""
        room_due, _, _ = await self.room(now_us())
        room = sum(room_due.values())
        if room == 0:
            return 0
        # As many as there is room for, plus the reserved ones (skipped) and those
        # known to wait for tags no live node has (they would hide the others).
        limit = min(self.batch, room + len(self._reserved) + len(self._waiting) + self._held_back)
        pending = await self.queries.pending_runs(limit, now_us())
        pending = [p for p in pending if (p[0], p[1]) not in self._reserved]
        if not pending:
            return 0
        chosen, unplaceable = await self.place(pending)
        await self.mark_waiting(unplaceable)
        if not chosen:
            return 0
        at = now_us()
        cmd = c.AssignRuns(
            request_id=uuid.uuid4().hex,
            at=at,
            node=self.config.node_id,
            assignments=tuple(chosen),
            lease_until=at + self.lease_us,
        )
        try:
            result = await self.consensus.propose(cmd)
        except OrdoError as e:
            log.warning("assignment batch not committed (%d runs): %s", len(chosen), e)
            await asyncio.sleep(0.2)
            return 0
        finally:
            self.release(chosen)
        accepted = result.get("assigned", [])
        self.placed(chosen, accepted)
        return len(accepted)

    async def mark_waiting(self, runs: list[Pending]) -> None:
        """Say once, in the job's state, why these runs wait: no live executor has their tags."""
        new = [(r, a, t) for r, a, t in runs if (r, a) not in self._waiting]
        by_reason: dict[str, list[c.RunRef]] = defaultdict(list)
        for run_id, attempt, needs in new:
            by_reason[waiting_reason(needs, self.tags.values())].append(c.RunRef(run_id, attempt))
        for reason, refs in by_reason.items():
            cmd = c.MarkWaiting(at=now_us(), node=self.config.node_id, runs=tuple(refs), reason=reason)
            try:
                await self.consensus.propose(cmd)
            except OrdoError as e:
                log.warning("waiting note not committed: %s", e)
                return
            self._waiting.update((r.run_id, r.attempt) for r in refs)

    async def resend(self, before: int) -> None:
        """Send again the assignments made at or before ``before`` whose start was never reported.

        Those whose executor is unreachable are given up instead: each gets a
        new attempt, which the next dispatch round places on a live node.
        """
        by_node: dict[str, list[WorkItem]] = defaultdict(list)
        for item in await self.queries.assigned_before(before):
            by_node[item.node_id].append(item)
        for node_id, items in by_node.items():
            if self.peers.get(node_id) is None and node_id not in self.hub.links:
                # A worker not connected to this leader (yet: after a leader change it
                # reconnects within seconds, its runs still running, their starts maybe not
                # committed): its lease decides, as it does for every attempt it holds.
                continue
            if not self.reachable.get(node_id):
                if self.peers.get(node_id) is None:
                    # A worker connected but silent a while (busy, or its machine loaded): its
                    # stream or its lease decides, not a guess that would run its queue twice.
                    continue
                await self.expire(items, f"executor {node_id} unreachable")
                continue
            # Given to an earlier process of that node: it may have run them before it died.
            boot = self.boots.get(node_id, ("", 0))[0]
            gone = [i for i in items if i.boot_id and i.boot_id != boot]
            if gone:
                await self.expire(gone, f"executor {node_id} restarted")
            self._send_later(node_id, [i for i in items if i not in gone])

    async def expire(
        self, items: list[WorkItem], reason: str, *, at: int | None = None, check_lease: bool = False
    ) -> None:
        """Give up these attempts; the state machine queues a new attempt of each."""
        refs = tuple(c.RunRef(i.run_id, i.attempt) for i in items)
        cmd = c.ExpireRuns(
            request_id=uuid.uuid4().hex,
            at=at or now_us(),
            node=self.config.node_id,
            runs=refs,
            reason=reason,
            check_lease=check_lease,
        )
        try:
            result = await self.consensus.propose(cmd)
        except OrdoError as e:
            log.warning("expiry of %d attempts not committed: %s", len(refs), e)
            return
        if result.get("requeued"):
            log.info("%d attempts given up (%s); new attempts queued", len(result["requeued"]), reason)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            await self.expire_leases(now_us())

    async def expire_leases(self, now: int) -> None:
        """Give up attempts whose lease ran out; new attempts go to live nodes.

        For one lease period after this node became leader nothing expires:
        during the election the executors could not commit renewals.
        """
        if now < self._started + self.lease_us:
            return
        items = await self.queries.expired_leases(now)
        if items:
            await self.expire(items, "lease expired", at=now, check_lease=True)

    async def _resend_loop(self) -> None:
        while True:
            await asyncio.sleep(RESEND_AFTER_US / 1e6 / 2)
            await self.resend(now_us() - RESEND_AFTER_US)

    def _send_later(self, node_id: str, items: list[WorkItem]) -> None:
        self._track(asyncio.create_task(self._send(node_id, items)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, node_id: str, items: list[WorkItem]) -> None:
        request = internal_pb2.AssignRequest(
            leader_id=self.config.node_id,
            term=self.consensus.term,
            assignments=[assignment_message(i) for i in items],
        )
        try:
            if self.peers.get(node_id) is None:
                accepted = await self.hub.assign(node_id, request)
            else:
                accepted = list((await self.peers.stub(node_id).Assign(request, timeout=5.0)).accepted)
        except Exception as e:  # mark the node so no more goes there
            log.warning("assign to node=%s failed (%d runs): %s", node_id, len(items), _short(e))
            self.reachable[node_id] = False
            unavailable = isinstance(e, Unavailable) or (
                isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.UNAVAILABLE
            )
            if unavailable:
                # Not delivered: run these elsewhere now. (After other failures the
                # executor may have them; the resend loop decides later.)
                await self.expire(items, f"executor {node_id} unreachable: {_short(e)}")
            return
        refused = len(items) - len(accepted)
        if refused:
            log.info("node=%s refused %d runs for capacity; they will be offered again", node_id, refused)


def _short(e: BaseException) -> str:
    details = getattr(e, "details", None)
    text = details() if callable(details) else str(e)
    return (text or type(e).__name__).splitlines()[0][:200]
