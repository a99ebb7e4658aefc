"""Consensus: the PySyncObj Raft engine and its bridge to asyncio.

Threading contract. PySyncObj runs one tick thread that does everything on its
side: network, elections, journal, :meth:`_Raft.apply`, callbacks and the
snapshot hooks. The event loop only enqueues commands (``_Raft.apply`` with a
``callback``) and reads a few integers; results and role changes come back to
the loop with ``loop.call_soon_threadsafe`` and nothing else.

What a caller may assume after :meth:`Consensus.propose` returns: the command
is committed on a majority and applied to this node's database, so a read on
this node sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON, SyncObjConf, SyncObjException, replicated

from . import commands
from .config import Config
from .engine import Engine
from .errors import ConfigError, DeadlineExceeded, InvalidArgument, Unavailable
from .peers import Peers
from .snapshots import SnapshotWriter
from .statemachine.store import Store

log = logging.getLogger("ordo_node.consensus")

ROLE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}
# Reasons after which the command was certainly not applied: retry at once.
_NOT_APPLIED = {FAIL_REASON.MISSING_LEADER, FAIL_REASON.DISCARDED, FAIL_REASON.NOT_LEADER}
# Reasons after which it may have committed: retry with the same bytes, which
# carry the same request id, so the state machine answers a repeat with the
# first result.
_MAYBE_APPLIED = {FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME}


class _Raft(Engine):
    """The replicated object. It has one replicated method, on purpose.

    PySyncObj numbers replicated methods by their sorted names, so adding a
    second one would renumber the first and an old journal would call the
    wrong method. Every command travels through ``apply`` in our own encoding.
    """

    def __init__(
        self,
        self_address: str,
        partners: list[str],
        conf: SyncObjConf,
        store: Store,
        journal_bytes: int,
        durable: bool,
    ) -> None:
        self._ordo_store = store
        self._ordo_journal_bytes = journal_bytes
        self._ordo_since_snapshot = 0
        super().__init__(self_address, partners, conf, durable=durable)

    @replicated  # type: ignore[untyped-decorator]
    def apply(self, blob: bytes) -> Any:
        # The entry's index: PySyncObj applies entries in order and increments
        # raftLastApplied after this returns (there is no API for it).
        result = self._ordo_store.apply(self.raftLastApplied + 1, blob)
        # PySyncObj compacts by entry count and time only; bound the journal's
        # bytes too (see RaftTimings.snapshot_journal_mb). The flag is acted on
        # by the tick thread (this one) once no snapshot is being written.
        self._ordo_since_snapshot += len(blob)
        if self._ordo_since_snapshot >= self._ordo_journal_bytes:
            self._ordo_since_snapshot = 0
            self.forceLogCompaction()
        return result


class Consensus:
    """Owns the Raft engine; proposes commands and publishes role changes."""

    def __init__(
        self,
        config: Config,
        store: Store,
        peers: Peers,
        *,
        max_in_flight: int = 2000,
        max_command_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.config = config
        self.store = store
        self.peers = peers
        self._raft: _Raft | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = asyncio.Semaphore(max_in_flight)
        # Every command travels in one append message: PySyncObj splits an entry of
        # its batch size or more into chunks, and its reassembly is unreliable.
        self.max_command_bytes = max_command_bytes
        self.snapshots = SnapshotWriter(store.path, config.data_dir / "raft.snapshot", lambda: store.restores)
        self._role_listeners: list[Callable[[str, int], None]] = []
        self._fault_listeners: list[Callable[[str], None]] = []
        self.role = "follower"

    def on_role_change(self, listener: Callable[[str, int], None]) -> None:
        """Call ``listener(role, term)`` on the event loop whenever this node's role changes."""
        self._role_listeners.append(listener)

    def on_fault(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(reason)`` on the event loop if the engine stops replicating (fail-stop)."""
        self._fault_listeners.append(listener)

    def _fault(self, reason: str) -> None:
        # Tick thread: hand over to the loop.
        if self._loop is not None and not self._loop.is_closed():
            for listener in self._fault_listeners:
                self._loop.call_soon_threadsafe(listener, reason)

    async def start(self) -> None:
        """Create the engine and its tick thread; return once it has bound the Raft port.

        Raises ConfigError naming ``node.raft_address`` if the port cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        t = self.config.raft
        data = self.config.data_dir
        conf = SyncObjConf(
            password=self.config.secret,
            autoTick=True,
            appendEntriesUseBatch=False,
            commandsWaitLeader=False,
            raftMinTimeout=t.election_timeout_min,
            raftMaxTimeout=t.election_timeout_max,
            appendEntriesPeriod=t.heartbeat_interval,
            leaderFallbackTimeout=t.leader_fallback_timeout,
            connectionTimeout=t.connection_timeout,
            connectionRetryTime=1.0,
            journalFile=str(data / "raft.journal"),
            # PySyncObj pickles a command's bytes over 127 as two bytes each.
            appendEntriesBatchSizeBytes=2 * self.max_command_bytes + 1024 * 1024,
            fullDumpFile=str(self.snapshots.dump_path),
            serializer=self.snapshots.serialize,
            serializeChecker=self.snapshots.check,
            deserializer=self.store.restore,
            logCompactionMinEntries=max(2, int(t.snapshot_min_entries)),
            logCompactionMinTime=t.snapshot_min_interval,
            # Snapshots are written by a thread of their own (snapshots.py), so the
            # nodes need not take turns; and a split would hold back the
            # journal-size snapshot for up to snapshot_min_interval.
            logCompactionSplit=False,
            dynamicMembershipChange=True,
            onStateChanged=self._state_changed,
            bindAddress=self.config.raft_address,
            bindRetryTime=0.5,
            maxBindRetries=6,
        )
        partners = [p.raft_address for p in self.config.peers]
        journal_bytes = max(1, int(t.snapshot_journal_mb * 1024 * 1024))
        if self.config.durable:
            self.store.make_durable()
        self._raft = _Raft(
            self.config.raft_address, partners, conf, self.store, journal_bytes, self.config.durable
        )
        self._raft.on_fault = self._fault
        try:
            await asyncio.to_thread(self._raft.waitBinded)
        except SyncObjException:
            await self.stop()
            raise ConfigError(
                f"{self.config.source}: node.raft_address: cannot listen on {self.config.raft_address}"
            ) from None

    def _state_changed(self, old: int, new: int) -> None:
        # Tick thread: hand over to the loop, do nothing else here.
        role = ROLE_NAMES.get(new, "unknown")
        term = self.term
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._publish_role, role, term)

    def _publish_role(self, role: str, term: int) -> None:
        # The term read here, on the loop, is at least the one of the change.
        term = max(term, self.term)
        self.role = role
        for listener in self._role_listeners:
            listener(role, term)

    @property
    def raft(self) -> _Raft:
        """The engine; only after :meth:`start`."""
        assert self._raft is not None, "Consensus.start() was not called"
        return self._raft

    @property
    def term(self) -> int:
        """This node's current Raft term."""
        return int(self._raft.raftCurrentTerm) if self._raft else 0

    @property
    def commit_index(self) -> int:
        """The highest log index this node knows to be committed."""
        return int(self._raft.raftCommitIndex) if self._raft else 0

    @property
    def engine(self) -> Engine | None:
        """The engine while it runs (for its counters), else None."""
        return self._raft

    @property
    def caught_up(self) -> bool:
        """Whether this node leads, or has applied what the leader committed (see engine.CATCH_UP_GRACE)."""
        return bool(self._raft and self._raft.caught_up())

    @property
    def fault(self) -> str:
        """Why this node stopped replicating (fail-stop), or ''."""
        return self._raft.fault if self._raft else ""

    @property
    def clock_offset_us(self) -> int:
        """This node's wall clock minus the majority's, in microseconds, as the heartbeats measure it."""
        return int(self._raft.clock_offset_us) if self._raft else 0

    @property
    def is_leader(self) -> bool:
        """True while this node believes it leads (two may, briefly)."""
        return bool(self._raft and self._raft._isLeader())

    def leader_id(self) -> str | None:
        """The node id of the last known leader, or None."""
        leader = self._raft._getLeader() if self._raft else None
        return self.peers.id_of_raft(leader.id) if leader is not None else None

    async def propose(self, cmd: commands.Command, timeout: float | None = None) -> Any:
        """Commit ``cmd`` through Raft and return the state machine's result.

        Retries by itself while the outcome is certainly "not applied" (no
        leader yet, an election) or uncertain (the leader changed; the command
        carries a request id, so a repeat is answered with the first result).
        Raises Unavailable when the engine's queue is full or no leader appears
        before the deadline, DeadlineExceeded when the outcome stays unknown.
        """
        if self._raft is None:
            raise Unavailable("this node is shutting down")
        if self._raft.fault:
            raise Unavailable(f"this node cannot take writes: {self._raft.fault}")
        if not self.caught_up:
            # A write through it would commit but be confirmed only once this node applied it.
            raise Unavailable(
                f"this node is catching up with the leader ({self._raft.behind} entries behind); "
                "retry, or use another node"
            )
        blob = commands.encode(cmd)
        if len(blob) >= self.max_command_bytes:
            raise InvalidArgument(
                "request", f"is {len(blob)} bytes as a command; the limit is {self.max_command_bytes}"
            )
        deadline = time.monotonic() + (timeout or self.config.raft.commit_timeout)
        uncertain = False
        async with self._in_flight:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if uncertain:
                        raise DeadlineExceeded("the command was not confirmed in time; it may still commit")
                    raise Unavailable("no leader: the cluster is electing one or has lost its majority")
                result, reason = await self._submit_once(blob, remaining)
                if reason == FAIL_REASON.SUCCESS:
                    return result
                if reason == FAIL_REASON.QUEUE_FULL:
                    raise Unavailable("overloaded: the Raft queue is full, retry later")
                if reason == FAIL_REASON.REQUEST_DENIED:
                    raise Unavailable("the Raft engine refused the command")
                if reason in _MAYBE_APPLIED or reason is None:
                    uncertain = True
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    async def change_membership(self, add: bool, raft_address: str) -> None:
        """Add or remove a Raft member (the engine's own log entry); wait until it commits."""
        deadline = time.monotonic() + self.config.raft.commit_timeout
        while True:

            def submit(callback: Callable[[Any, int], None]) -> None:
                if add:
                    self.raft.addNodeToCluster(raft_address, callback=callback)
                else:
                    self.raft.removeNodeFromCluster(raft_address, callback=callback)

            _, reason = await self._call(submit, max(0.1, deadline - time.monotonic()))
            if reason == FAIL_REASON.SUCCESS or self.is_member(raft_address) == add:
                return
            if reason == FAIL_REASON.REQUEST_DENIED:
                raise Unavailable(
                    "the Raft engine refused the membership change (another one is in progress?)"
                )
            if time.monotonic() >= deadline:
                raise Unavailable("the membership change was not committed in time; check the cluster status")
            await asyncio.sleep(0.1)

    def is_member(self, raft_address: str) -> bool:
        """Whether the engine counts ``raft_address`` among the other members now."""
        return any(n.id == raft_address for n in self.raft.otherNodes)

    async def _submit_once(self, blob: bytes, timeout: float) -> tuple[Any, int | None]:
        raft = self._raft
        if raft is None:
            raise Unavailable("this node is shutting down")
        return await self._call(lambda callback: raft.apply(blob, callback=callback), timeout)

    async def _call(
        self, submit: Callable[[Callable[[Any, int], None]], None], timeout: float
    ) -> tuple[Any, int | None]:
        """Hand a request to the engine with a callback, and wait for it on the loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, int]] = loop.create_future()

        def done(result: Any, reason: int) -> None:
            loop.call_soon_threadsafe(_resolve, fut, (result, reason))

        submit(done)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            return None, None

    async def transfer_leadership(self, timeout: float = 2.0) -> None:
        """If this node leads, ask a caught-up follower to take over, and wait (briefly) until it has."""
        if self._raft is None or not self.is_leader or not self._raft.otherNodes:
            return
        raft, asked = self._raft, False

        def on_tick() -> None:  # the tick thread owns the engine's state
            nonlocal asked
            if not asked:
                asked = True
                raft.transferLeadership(callback=lambda *_: None)

        raft.addOnTickCallback(on_tick)
        deadline = time.monotonic() + timeout
        while self.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        log.info(
            "leadership %s", "handed over" if not self.is_leader else "kept: no follower took it in time"
        )

    async def stop(self) -> None:
        """Stop the tick thread and close the transport and journal."""
        if self._raft is not None:
            raft, self._raft = self._raft, None
            await asyncio.to_thread(raft.destroy_synchronous)


def _resolve(fut: asyncio.Future[tuple[Any, int]], value: tuple[Any, int]) -> None:
    if not fut.done():
        fut.set_result(value)
