"""The Raft engine: PySyncObj, guarded against the ways it loses acknowledged commands under load.

PySyncObj 0.3.17 has three faults that our load meets (see ``../shared/DESIGN.md``,
"PySyncObj: hazards found under load"). Every one is handled here by wrapping the
transport that carries the Raft messages, never by copying PySyncObj's code:

* **Leader: success acks move ``nextIndex`` backward.** With several appends in
  flight, the ack of an older one sets ``nextIndex`` to just past what that append
  carried, although later ones were already sent. The resend then overlaps what
  the follower holds. Here a success ack never lowers ``nextIndex``.
* **Follower: an overlapping append deletes everything after ``prevLogIdx``,**
  even entries it already holds with the same term, applied ones included, while
  the leader goes on counting them as replicated. Here the follower skips the
  entries it already holds with the same index and term (checking their bytes too),
  and a deletion reaches PySyncObj only at a real conflict (Raft's AppendEntries
  rules 3 and 4). An append that verifies only a prefix of a longer log is
  acknowledged for that prefix and truncates nothing.
* **Leader: replies to appends sent before a reset undo it** (an isolated leader
  that came back was never repaired: its ``nextIndex`` went back one step on the
  conflict and forward again on every later reply). Each append carries a
  sequence number that its reply echoes; once a ``reset`` reply is acted on,
  replies to appends sent before it are stale and ignored.

Two more faults of PySyncObj's Raft are closed the same way. **Acks carry no
term**: each reply here carries the term of the append it answers, and a
leader ignores replies from another term. **No PreVote**: a node cut off from
the others times out again and again, raising its term each time, and when it
comes back its vote requests depose a healthy leader. Here a node whose
election timer runs out first asks the others whether they would vote for it
(``ordo_prevote``, which changes no term); a node that has heard from a leader
within the minimum election timeout, or holds a longer log, says no. Only with
a majority of yeses does PySyncObj start its real election. A leadership
transfer (``timeout_now``) skips the question.

Should a follower still be asked to delete an entry it has applied, or meet a
different command at an index and term it holds, it stops replicating at once
(fail-stop): one CRITICAL log line, the reason in :attr:`Engine.fault` (shown by
the cluster status, the metrics and the health check), and no further Raft
message is handled, so it neither votes nor acknowledges. It never diverges
silently.

Durability (``durable=True``): PySyncObj writes its journal through mmap and
never flushes it, and renames its term/vote file without fsync. A durable
engine fsyncs the journal before every success reply a follower sends and, on
every tick, before the leader counts its own log towards a commit (group
commit: one fsync covers every entry appended since the last); the term/vote
file is written, fsynced, renamed and its directory fsynced before any vote.

The same messages measure the nodes' clocks: each append carries the leader's
wall clock and each reply the follower's, which gives the leader every
follower's offset (the sample with the shortest round trip of the last few, of
those under 250 ms and 30 s old);
the leader tells each follower its offset from the majority's clock in the next
append. See :attr:`Engine.clock_offset_us`.

Threading: everything here runs on PySyncObj's tick thread, except the read-only
properties, which read values the tick thread replaces whole.

This module relies on PySyncObj's private state (its name-mangled attributes);
:func:`check_engine` stops the node at start-up if the installed version is not
the one these wrappers were written and tested against.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pysyncobj
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.journal import FileJournal, MetaStorer
from pysyncobj.monotonic import monotonic as monotonic_time
from pysyncobj.pickle import dumps as meta_dumps
from pysyncobj.transport import TCPTransport
from pysyncobj.version import VERSION as PYSYNCOBJ_VERSION

from . import timeutil
from .errors import ConfigError

log = logging.getLogger("ordo_node.engine")

PINNED_VERSION = "0.3.17"
# PySyncObj's private attributes the wrappers read or set; all exist after SyncObj.__init__.
_PRIVATE = (
    "_SyncObj__raftLog",
    "_SyncObj__raftNextIndex",
    "_SyncObj__raftMatchIndex",
    "_SyncObj__raftCurrentTerm",
    "_SyncObj__raftLastApplied",
    "_SyncObj__raftCommitIndex",
    "_SyncObj__raftState",
    "_SyncObj__raftLeader",
    "_SyncObj__leaderCommitIndex",
    "_SyncObj__lastResponseTime",
    "_SyncObj__sendNextNodeIdx",
    "_SyncObj__onMessageReceived",
    "_SyncObj__transport",
    "_SyncObj__raftElectionDeadline",
    "_SyncObj__transferInProgress",
    "_SyncObj__selfNode",
    "_SyncObj__otherNodes",
    "_SyncObj__generateRaftTimeout",
    "_SyncObj__conf",
)
_LEADER = 2
# A follower that has not been level with the leader's commit index for this long
# is catching up: it takes no assignments and no writes (seconds).
CATCH_UP_GRACE = 3.0
# Clock samples kept per follower; the one with the shortest round trip counts.
_CLOCK_SAMPLES = 8
# The leader recomputes the offsets from its samples at most this often (seconds).
_CLOCK_EVERY = 0.2
# Samples with a longer round trip (microseconds) or older (seconds) count for nothing.
_CLOCK_MAX_RTT_US = 250_000
_CLOCK_MAX_AGE = 30.0


class EngineFault(Exception):
    """The engine met a state it must not go on from; the node stops replicating."""


def check_engine() -> None:
    """Refuse to start on a PySyncObj whose internals the wrappers were not written for."""
    if PYSYNCOBJ_VERSION != PINNED_VERSION:
        raise ConfigError(
            f"pysyncobj {PYSYNCOBJ_VERSION} is installed, but ordo_node's Raft safety wrappers are "
            f"written for exactly {PINNED_VERSION}: pip install 'pysyncobj=={PINNED_VERSION}'"
        )


class DurableMetaStorer(MetaStorer):  # type: ignore[misc]
    """PySyncObj's term/vote file, written so that it survives power loss: fsync, rename, fsync the folder."""

    def storeMeta(self, meta: Any) -> None:
        path = self.getPath()
        with open(path + ".tmp", "wb") as f:
            f.write(meta_dumps(meta))
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class GuardedTransport(TCPTransport):  # type: ignore[misc]
    """PySyncObj's TCP transport with the engine's checks on every Raft message, both ways."""

    def send(self, node: Any, message: Any) -> bool:
        engine = self._syncObj
        if isinstance(engine, Engine) and isinstance(message, dict):
            engine._ordo_outgoing(node, message)
        return bool(super().send(node, message))

    def _onMessageReceived(self, node: Any, message: Any) -> None:
        engine = self._syncObj
        if not (isinstance(engine, Engine) and isinstance(message, dict)):
            super()._onMessageReceived(node, message)
            return
        try:
            passed = engine._ordo_incoming(node, message)
            if passed is not None:
                super()._onMessageReceived(node, passed)
        finally:
            # Replies sent while the message was handled carried its tag; no later one may.
            engine._ordo_replying = None


class Engine(SyncObj):  # type: ignore[misc]
    """A SyncObj whose Raft messages pass through the guards described in the module docstring.

    Subclasses add the replicated methods; this class adds none.
    """

    _SyncObj__raftElectionDeadline: float  # PySyncObj's, set here too

    def __init__(
        self,
        self_address: str,
        partners: list[str],
        conf: SyncObjConf,
        transport_class: type[GuardedTransport] = GuardedTransport,
        *,
        durable: bool = False,
    ) -> None:
        check_engine()
        self.durable = durable
        self._ordo_level_at = -CATCH_UP_GRACE  # when this node last had applied all the leader committed
        self.fsyncs = 0
        self._ordo_flushed_at = -1
        self.fault = ""
        self.on_fault: Callable[[str], None] | None = None  # called on the tick thread, once
        self.chunked_entries = 0
        self.stale_replies = 0
        self.held_next_index = 0
        self.skipped_entries = 0
        self.clock_offset_us = 0
        self.clock_measured = False
        self._ordo_sent: dict[Any, int] = {}  # leader: the last append sequence number sent to each node
        self._ordo_barrier: dict[Any, int] = {}  # leader: replies to appends up to this one are stale
        # follower: (leader, seq, leader's time, term) of the append being handled
        self._ordo_replying: tuple[Any, int, int, int] | None = None
        self._ordo_leader_seen = 0.0  # when an append of a current leader last arrived
        self._ordo_prevote_round = 0
        self._ordo_prevotes: set[Any] = set()
        self._ordo_prevote_won = False
        self.prevotes_refused = 0
        # leader: (round trip, offset, when) per node
        self._ordo_samples: dict[Any, deque[tuple[int, int, float]]] = {}
        self._ordo_offsets: dict[Any, int] = {}  # leader: each follower's offset from the majority
        self._ordo_clock_next = 0.0
        super().__init__(self_address, partners, conf, transportClass=transport_class)
        missing = [name for name in _PRIVATE if not hasattr(self, name)]
        journal = self._SyncObj__raftLog
        if durable and isinstance(journal, FileJournal):
            parts = ("__journalFile", "__currentOffset", "__metaStorer")
            missing += [f"_FileJournal{p}" for p in parts if not hasattr(journal, f"_FileJournal{p}")]
        if missing:
            raise ConfigError(
                f"pysyncobj {pysyncobj.__file__} lacks {', '.join(missing)}: reinstall "
                f"pysyncobj=={PINNED_VERSION}"
            )
        if durable and isinstance(journal, FileJournal):
            journal._FileJournal__metaStorer = DurableMetaStorer(journal._FileJournal__metaStorer.getPath())

    # -- durability -------------------------------------------------------------

    def _onTick(self, timeToWait: float = 0.0) -> None:
        # The leader counts its own log when it commits, at the start of a tick:
        # what earlier ticks appended reaches the disk first.
        if self.durable:
            self._ordo_flush()
        self._ordo_hold_election()
        super()._onTick(timeToWait)
        if self._SyncObj__raftState == _LEADER or (
            self._SyncObj__raftLeader is not None
            and self._SyncObj__raftLastApplied >= (self._SyncObj__leaderCommitIndex or 0)
        ):
            self._ordo_level_at = time.monotonic()

    # -- pre-vote ---------------------------------------------------------------

    def _ordo_hold_election(self) -> None:
        """Tick thread, before PySyncObj's tick: an election it would start now waits for a pre-vote."""
        if (
            self.fault
            or self._SyncObj__raftState == _LEADER
            or self._SyncObj__raftElectionDeadline >= monotonic_time()
            or self._SyncObj__transferInProgress
            or self._SyncObj__selfNode is None
        ):
            return
        if self._ordo_prevote_won or not self._SyncObj__otherNodes:
            self._ordo_prevote_won = False
            return  # PySyncObj starts its election in this tick
        self._SyncObj__raftElectionDeadline = monotonic_time() + self._SyncObj__generateRaftTimeout()
        self._ordo_prevote_round += 1
        self._ordo_prevotes = set()
        log_ = self._SyncObj__raftLog
        for node in self._SyncObj__otherNodes:
            self._SyncObj__transport.send(
                node,
                {
                    "type": "ordo_prevote",
                    "round": self._ordo_prevote_round,
                    "term": self._SyncObj__raftCurrentTerm + 1,
                    "last_log_index": log_[-1][1],
                    "last_log_term": log_[-1][2],
                },
            )

    def _ordo_answer_prevote(self, node: Any, message: dict[str, Any]) -> None:
        log_ = self._SyncObj__raftLog
        mine = (log_[-1][2], log_[-1][1])
        theirs = (message["last_log_term"], message["last_log_index"])
        leader_alive = self._SyncObj__raftState == _LEADER or (
            monotonic_time() - self._ordo_leader_seen < self._SyncObj__conf.raftMinTimeout
        )
        granted = not leader_alive and message["term"] > self._SyncObj__raftCurrentTerm and theirs >= mine
        self._SyncObj__transport.send(
            node, {"type": "ordo_prevote_reply", "round": message["round"], "granted": granted}
        )

    def _ordo_count_prevote(self, node: Any, message: dict[str, Any]) -> None:
        if message["round"] != self._ordo_prevote_round or self._SyncObj__raftState == _LEADER:
            return
        if not message["granted"]:
            self.prevotes_refused += 1
            return
        self._ordo_prevotes.add(node)
        if len(self._ordo_prevotes) + 1 > (len(self._SyncObj__otherNodes) + 1) / 2:
            self._ordo_prevote_won = True
            self._ordo_prevote_round += 1  # later replies of this round count for nothing
            self._SyncObj__raftElectionDeadline = 0  # elect in the next tick

    def caught_up(self) -> bool:
        """False only for a follower that knows it is behind its leader and has been for CATCH_UP_GRACE.

        A node that knows no leader yet is not "behind": a write through it waits for a
        leader in Consensus.propose, as before (a node just started would otherwise be
        refused until it had heard from one).
        """
        if self._SyncObj__raftState == _LEADER or self._SyncObj__raftLeader is None or self.behind == 0:
            return True
        return time.monotonic() - self._ordo_level_at < CATCH_UP_GRACE

    @property
    def behind(self) -> int:
        """Entries the leader committed that this node has not applied yet (as of its last append)."""
        return max(0, int(self._SyncObj__leaderCommitIndex or 0) - int(self._SyncObj__raftLastApplied))

    def _ordo_flush(self) -> None:
        """fsync the journal if anything was appended or deleted since the last fsync."""
        journal = self._SyncObj__raftLog
        if not isinstance(journal, FileJournal):
            return
        offset = journal._FileJournal__currentOffset
        if offset == self._ordo_flushed_at:
            return
        # fsync of the file descriptor writes the mmap's dirty pages and the file's size.
        os.fsync(journal._FileJournal__journalFile._ResizableFile__f.fileno())
        self._ordo_flushed_at = offset
        self.fsyncs += 1

    # -- the log, as the wrappers read it -------------------------------------

    def _ordo_last_index(self) -> int:
        return int(self._SyncObj__raftLog[-1][1])

    def _ordo_entry(self, index: int) -> tuple[bytes, int, int] | None:
        log_ = self._SyncObj__raftLog
        first = log_[0][1]
        if index < first or index > log_[-1][1]:
            return None
        entry: tuple[bytes, int, int] = log_[index - first]
        return entry

    # -- outgoing ---------------------------------------------------------------

    def _ordo_outgoing(self, node: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "append_entries":
            seq = self._ordo_sent.get(node, 0) + 1
            self._ordo_sent[node] = seq
            message["ordo_seq"] = seq
            message["ordo_time"] = timeutil.now_us()
            if node in self._ordo_offsets:
                message["ordo_offset"] = self._ordo_offsets[node]
        elif kind == "next_node_idx" and self._ordo_replying is not None and self._ordo_replying[0] == node:
            if self.durable and message.get("success"):
                self._ordo_flush()  # what this reply says the follower holds is on its disk
            _, seq, leader_time, term = self._ordo_replying
            message["ordo_ack"] = seq
            message["ordo_term"] = term
            message["ordo_echo"] = leader_time
            message["ordo_time"] = timeutil.now_us()

    # -- incoming ---------------------------------------------------------------

    def _ordo_incoming(self, node: Any, message: dict[str, Any]) -> dict[str, Any] | None:
        """Return the message PySyncObj should handle (maybe rewritten), or None to drop it."""
        if self.fault:
            return None
        kind = message.get("type")
        if kind == "next_node_idx":
            self._ordo_reply(node, message)
            return None
        if kind == "ordo_prevote":
            self._ordo_answer_prevote(node, message)
            return None
        if kind == "ordo_prevote_reply":
            self._ordo_count_prevote(node, message)
            return None
        if kind != "append_entries":
            return message
        term = int(message.get("term", 0))
        if term >= self._SyncObj__raftCurrentTerm:
            self._ordo_leader_seen = monotonic_time()
            self._ordo_prevote_won = False  # a leader is there: a pre-vote won before it is void
        self._ordo_replying = (node, int(message.get("ordo_seq", 0)), int(message.get("ordo_time", 0)), term)
        if "ordo_offset" in message:
            self.clock_offset_us = int(message["ordo_offset"])
            self.clock_measured = True
        try:
            return self._ordo_append(node, message)
        except EngineFault as fault:
            self._ordo_stop(str(fault))
            return None

    def _ordo_append(self, node: Any, message: dict[str, Any]) -> dict[str, Any] | None:
        if message.get("term", 0) < self._SyncObj__raftCurrentTerm or "prevLogIdx" not in message:
            return message  # PySyncObj ignores an old term; a snapshot install goes through as it is
        if "transmission" in message:
            # Never sent while every command is below the batch size (Consensus checks);
            # PySyncObj's reassembly of chunks is unreliable, so count it where it happens.
            self.chunked_entries += 1
            return message
        prev = int(message["prevLogIdx"])
        last = self._ordo_last_index()
        if prev > last:
            return message  # PySyncObj answers with a reset to this log's end
        mine = self._ordo_entry(prev)
        if mine is None:
            return message  # prev is compacted away: PySyncObj answers with a reset to the log's end
        if mine[2] != message["prevLogTerm"]:
            kept = max(self._SyncObj__raftLastApplied, self._SyncObj__raftCommitIndex)
            if prev <= kept:
                raise EngineFault(
                    f"the leader's entry index={prev} term={message['prevLogTerm']} conflicts with one "
                    f"this node committed (term {mine[2]}; commit {self._SyncObj__raftCommitIndex})"
                )
            self._ordo_conflict(node, message, prev, mine[2])
            return None
        if prev == last:
            return message  # the usual append: nothing held past prev, nothing to truncate
        entries = message.get("entries") or []
        held = self._ordo_held(entries, last)
        self.skipped_entries += held
        verified, verified_term = (entries[held - 1][1], entries[held - 1][2]) if held else (prev, mine[2])
        rest = entries[held:]
        if rest:
            # A real conflict at rest[0] (or plain new entries when verified == last):
            # PySyncObj deletes from verified + 1 and appends.
            kept = max(self._SyncObj__raftLastApplied, self._SyncObj__raftCommitIndex)
            if rest[0][1] <= kept:
                raise EngineFault(
                    f"the leader's entry index={rest[0][1]} term={rest[0][2]} conflicts with one this "
                    f"node committed (commit {self._SyncObj__raftCommitIndex}, "
                    f"applied {self._SyncObj__raftLastApplied})"
                )
            return dict(message, prevLogIdx=verified, prevLogTerm=verified_term, entries=rest)
        if verified == last:
            return dict(message, prevLogIdx=verified, prevLogTerm=verified_term, entries=[])
        # This append verifies a prefix of a longer log: keep the rest (it is not in
        # conflict with anything the leader sent), let PySyncObj note the leader and
        # term, commit no further than what was verified, and acknowledge the prefix.
        self._ordo_note_leader(node, message, verified)
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=verified + 1, success=True)
        return None

    def _ordo_held(self, entries: list[tuple[bytes, int, int]], last: int) -> int:
        """How many of ``entries`` (which follow a matching prevLogIdx) this log already holds."""
        held = 0
        for command, index, term in entries:
            if index > last:
                break
            own = self._ordo_entry(index)
            if own is None or own[2] != term:
                break
            if own[0] != command:
                raise EngineFault(f"entry index={index} term={term} holds another command than the leader's")
            held += 1
        return held

    def _ordo_conflict(self, node: Any, message: dict[str, Any], prev: int, term: int) -> None:
        """prev holds another term than the leader's: answer with a reset to where that term began.

        PySyncObj would step back one entry per round trip; an isolated leader that
        came back with thousands of entries of its old term would take minutes. The
        entries up to the commit index match every later leader's, so the reset never
        goes below it.
        """
        floor = max(self._SyncObj__raftCommitIndex, self._SyncObj__raftLog[0][1]) + 1
        start = prev
        while start - 1 >= floor:
            entry = self._ordo_entry(start - 1)
            if entry is None or entry[2] != term:
                break
            start -= 1
        self._ordo_note_leader(node, message, self._SyncObj__raftCommitIndex)
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=max(start, floor), success=False, reset=True)

    def _ordo_note_leader(self, node: Any, message: dict[str, Any], verified: int) -> None:
        """Let PySyncObj take the append's leader, term and election deadline, without its entries.

        The commit index it may take is capped at what this append verified: entries
        past it were not checked against the leader's log.
        """
        bookkeeping = {k: v for k, v in message.items() if k not in ("prevLogIdx", "entries", "serialized")}
        bookkeeping["commit_index"] = min(int(message["commit_index"]), verified)
        self._SyncObj__onMessageReceived(node, bookkeeping)

    def _ordo_reply(self, node: Any, message: dict[str, Any]) -> None:
        """A follower's answer to an append; handled here and by PySyncObj (leader only)."""
        ack = message.get("ordo_ack")
        if message.get("ordo_term", self._SyncObj__raftCurrentTerm) != self._SyncObj__raftCurrentTerm:
            self.stale_replies += 1  # answers an append of another term (acks carry no term in PySyncObj)
            return
        if ack is not None and "ordo_echo" in message and "ordo_time" in message:
            self._ordo_clock_sample(node, int(message["ordo_echo"]), int(message["ordo_time"]))
        if ack is not None and ack <= self._ordo_barrier.get(node, 0):
            # Answers an append sent before a reset was acted on: stale. It still shows the node is alive.
            self.stale_replies += 1
            if self._SyncObj__raftState == _LEADER and node in self._SyncObj__lastResponseTime:
                self._SyncObj__lastResponseTime[node] = monotonic_time()
            return
        next_index = self._SyncObj__raftNextIndex
        before = next_index.get(node)
        if message.get("reset"):
            self._ordo_barrier[node] = self._ordo_sent.get(node, 0)
            self._SyncObj__onMessageReceived(node, message)
            return
        self._SyncObj__onMessageReceived(node, message)
        if before is not None and self._SyncObj__raftState == _LEADER and next_index.get(node, 0) < before:
            next_index[node] = before
            self.held_next_index += 1

    def _ordo_clock_sample(self, node: Any, sent_us: int, their_us: int) -> None:
        now = timeutil.now_us()
        rtt = now - sent_us
        if rtt < 0 or rtt > _CLOCK_MAX_RTT_US:
            # Its error can be half the round trip: an append that waited out a cut in a
            # socket buffer would read as a clock seconds off.
            return
        samples = self._ordo_samples.setdefault(node, deque(maxlen=_CLOCK_SAMPLES))
        samples.append((rtt, their_us - (sent_us + now) // 2, time.monotonic()))
        if time.monotonic() >= self._ordo_clock_next:
            self._ordo_clock_next = time.monotonic() + _CLOCK_EVERY
            self._ordo_clock_update()

    def _ordo_clock_update(self) -> None:
        # Each follower's offset from this node: the sample with the shortest round trip.
        members, fresh = self._ordo_members(), time.monotonic() - _CLOCK_MAX_AGE
        offsets = {}
        for n, samples in self._ordo_samples.items():
            recent = [sample for sample in samples if sample[2] >= fresh]
            if recent and n in members:
                offsets[n] = min(recent)[1]
        if not offsets:
            return
        majority = int(statistics.median([0, *offsets.values()]))
        self.clock_offset_us = -majority
        self.clock_measured = True
        self._ordo_offsets = {n: off - majority for n, off in offsets.items()}

    def _ordo_members(self) -> set[Any]:
        members: set[Any] = self.otherNodes
        return members

    # -- fail-stop --------------------------------------------------------------

    def _ordo_stop(self, reason: str) -> None:
        self.fault = f"replication stopped to protect the data: {reason}"
        log.critical("fail-stop: %s; this node no longer votes, acknowledges or applies", reason)
        if self.on_fault is not None:
            self.on_fault(self.fault)

    @property
    def offsets(self) -> dict[str, int]:
        """Leader: each follower's clock offset from the majority, by Raft address, in microseconds."""
        return {n.id: off for n, off in dict(self._ordo_offsets).items()}
