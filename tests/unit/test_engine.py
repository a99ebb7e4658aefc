"""The Raft engine's guards on three in-process nodes: an acknowledged command is never lost.

The hazard (DESIGN.md, "PySyncObj: hazards found under load"): with many large
commands in flight, PySyncObj 0.3.17's leader moved ``nextIndex`` backward on
every pipelined ack and its followers then deleted entries they had already
acknowledged, applied ones included, while the leader went on counting them.
Cut the leader off at such an instant and the survivors elect a leader that
lacks acknowledged commands. Measured on PySyncObj alone with this harness, the
instant came in every run.

Here every run cuts one follower off (so the leader commits through the other
alone, the worst case), pipelines 200 commands of 100 KB through the guarded
engine, watches the whole time that every acknowledged entry is held by a
follower, cuts the leader off at a different point, leaves it a few entries of
its own that never commit, lets the survivors elect a new leader, heals every
cut, and then checks that nothing acknowledged was lost, that all three nodes
applied the same command at every index, and that the old leader was repaired.
The same harness on PySyncObj without the guards (their message hook made a
pass-through) logged "truncating already-applied log entries" in 3 runs of 4.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pysyncobj import SyncObjConf, replicated

from ordo_node.engine import Engine, GuardedTransport
from ordo_node.tools.localcluster import free_ports

COMMAND_BYTES = 100_000
COMMANDS = 200
STRAYS = 5  # commands the cut-off leader appends to its own log; they never commit


class Cuttable(GuardedTransport):
    """Drops every message to or from a node whose address is in ``cut`` (a partition)."""

    cut: set[str] = set()

    def _severed(self, node: Any) -> bool:
        return self._selfNode.id in Cuttable.cut or node.id in Cuttable.cut

    def send(self, node: Any, message: Any) -> bool:
        return False if self._severed(node) else super().send(node, message)

    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if not self._severed(node):
            super()._onMessageReceived(node, message)


class Replica(Engine):
    """A node that records which command it applied at which index."""

    def __init__(self, address: str, partners: list[str]) -> None:
        self.applied: dict[int, bytes] = {}
        conf = SyncObjConf(
            autoTick=True,
            appendEntriesUseBatch=False,
            commandsWaitLeader=False,
            raftMinTimeout=0.4,
            raftMaxTimeout=1.4,
            appendEntriesPeriod=0.1,
            leaderFallbackTimeout=3.0,
            # Above the largest entry (PySyncObj pickles bytes over 127 as two), as in
            # Consensus; a resend still carries only two of these entries.
            appendEntriesBatchSizeBytes=3 * COMMAND_BYTES,
            logCompactionMinEntries=10**9,
            logCompactionMinTime=10**9,
            dynamicMembershipChange=True,
        )
        super().__init__(address, partners, conf, transport_class=Cuttable)

    @replicated  # type: ignore[untyped-decorator]
    def put(self, blob: bytes) -> int:
        index = int(self.raftLastApplied) + 1
        self.applied[index] = blob[:8]
        return index

    def entry_term(self, index: int) -> int | None:
        entry = self._ordo_entry(index)
        return None if entry is None else entry[2]


def command(n: int) -> bytes:
    return n.to_bytes(8, "big") + bytes([n % 251]) * (COMMAND_BYTES - 8)


def wait(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class TruncationLog(logging.Handler):
    """Counts PySyncObj's 'truncating already-applied log entries' lines."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "truncating already-applied" in record.getMessage():
            self.count += 1


@pytest.fixture
def truncations() -> Iterator[TruncationLog]:
    handler = TruncationLog()
    logger = logging.getLogger("pysyncobj.syncobj")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    Cuttable.cut = set()
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    nodes = [Replica(a, [b for b in addresses if b != a]) for a in addresses]
    try:
        yield nodes
    finally:
        Cuttable.cut = set()
        for node in nodes:
            node.destroy()


def leader_of(nodes: list[Replica]) -> Replica | None:
    leaders = [n for n in nodes if n._isLeader()]
    return leaders[0] if len(leaders) == 1 else None


class Watch(threading.Thread):
    """Samples, all the time, that every acknowledged index is held by some follower at the leader's term."""

    def __init__(self, leader: Replica, followers: list[Replica], acked: dict[int, int]) -> None:
        super().__init__(daemon=True)
        self.leader, self.followers, self.acked = leader, followers, acked
        self.violations: list[int] = []
        self.samples = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            for index in list(self.acked):
                term = self.leader.entry_term(index)
                if term is not None and all(f.entry_term(index) != term for f in self.followers):
                    self.violations.append(index)
            self.samples += 1
            time.sleep(0.001)


@pytest.mark.parametrize("cut_after", [25, 80, 140, 195])
def test_acknowledged_commands_survive_the_leader_cut_off(
    replicas: list[Replica], truncations: TruncationLog, cut_after: int
) -> None:
    # Given: three nodes, one leading
    wait("a leader", lambda: leader_of(replicas) is not None)
    leader = leader_of(replicas)
    assert leader is not None
    followers = [n for n in replicas if n is not leader]
    acked: dict[int, int] = {}  # index -> command number, as the leader acknowledged them
    lock = threading.Lock()

    def done(n: int) -> Callable[[Any, Any], None]:
        def callback(result: Any, error: Any) -> None:
            if error == 0:  # FAIL_REASON.SUCCESS
                with lock:
                    acked[int(result)] = n

        return callback

    watch = Watch(leader, followers, acked)
    Cuttable.cut = {followers[1].selfNode.id}
    watch.start()

    # When: 200 large commands are in flight, committed through one follower, and the
    # leader is cut off after `cut_after` were acknowledged, with a few more queued on it alone
    for n in range(COMMANDS):
        leader.put(command(n), callback=done(n))
        time.sleep(0.002)  # a steady stream: acks and appends interleave
    wait(f"{cut_after} acknowledgements", lambda: len(acked) >= cut_after)
    Cuttable.cut = {leader.selfNode.id}
    watch.running = False
    watch.join()
    with lock:
        acknowledged = dict(acked)
    for n in range(COMMANDS, COMMANDS + STRAYS):
        leader.put(command(n), callback=done(n))
    wait("a new leader among the others", lambda: leader_of(followers) is not None)
    new_leader = leader_of(followers)
    assert new_leader is not None
    marker: list[int] = []
    new_leader.put(command(10_000), callback=lambda r, e: marker.append(int(r)) if e == 0 else None)
    wait("the new leader's first command", lambda: bool(marker))
    Cuttable.cut = set()
    wait(
        "the old leader to apply the new leader's command",
        lambda: marker[0] in leader.applied and marker[0] in followers[0].applied | followers[1].applied,
    )
    wait("every node at the same index", lambda: len({max(n.applied) for n in replicas}) == 1)

    # Then: every acknowledged command is applied on the new leader at its index,
    # the three nodes applied the same command at every index, nothing was truncated
    assert watch.samples > 0 and watch.violations == []
    assert len(acknowledged) >= cut_after
    for index, n in acknowledged.items():
        assert new_leader.applied.get(index) == command(n)[:8], f"acknowledged index {index} lost"
    assert replicas[0].applied == replicas[1].applied == replicas[2].applied
    strays = {command(n)[:8] for n in range(COMMANDS, COMMANDS + STRAYS)}
    assert not strays & set(leader.applied.values()) - set(new_leader.applied.values())
    assert truncations.count == 0
    assert [n.fault for n in replicas] == ["", "", ""]
    assert [n.caught_up() for n in replicas] == [True, True, True]
    assert sum(n.chunked_entries for n in replicas) == 0


# -- the follower's rules, one append at a time ----------------------------------------


class Recorder(GuardedTransport):
    """Keeps what the engine sends instead of sending it."""

    def send(self, node: Any, message: Any) -> bool:
        engine = self._syncObj
        assert isinstance(engine, Engine)
        engine._ordo_outgoing(node, message)
        self.sent.append((node, message))
        return True

    @property
    def sent(self) -> list[tuple[Any, dict[str, Any]]]:
        if not hasattr(self, "_sent"):
            self._sent: list[tuple[Any, dict[str, Any]]] = []
        return self._sent


@pytest.fixture
def follower() -> Iterator[Engine]:
    """A follower (no ticks: the test drives it) holding entries 1..10 of term 1, 8 of them applied."""
    me, leader = (f"127.0.0.1:{p}" for p in free_ports(2))
    engine = Engine(me, [leader], SyncObjConf(autoTick=False), transport_class=Recorder)
    log_ = engine._SyncObj__raftLog
    log_.clear()
    for i in range(1, 11):
        log_.add(entry(i, 1)[0], i, 1)
    engine._SyncObj__raftCurrentTerm = 1
    engine._SyncObj__raftCommitIndex = 8
    engine._SyncObj__raftLastApplied = 8
    try:
        yield engine
    finally:
        engine.destroy()


def entry(index: int, term: int) -> tuple[bytes, int, int]:
    return (f"cmd {index} of term {term}".encode(), index, term)


def append(engine: Engine, prev: int, prev_term: int, entries: list[Any], commit: int = 8) -> dict[str, Any]:
    """Deliver one append from the leader; return the reply the follower sent."""
    transport = engine._SyncObj__transport
    leader = next(iter(engine._SyncObj__otherNodes))
    transport.sent.clear()
    message = {
        "type": "append_entries",
        "term": 1 if not entries else max(e[2] for e in entries),
        "commit_index": commit,
        "prevLogIdx": prev,
        "prevLogTerm": prev_term,
        "entries": entries,
        "ordo_seq": 7,
        "ordo_time": 0,
    }
    transport._onMessageReceived(leader, message)
    replies = [m for _, m in transport.sent if m["type"] == "next_node_idx"]
    return replies[-1] if replies else {}


def terms(engine: Engine) -> list[tuple[int, int]]:
    log_ = engine._SyncObj__raftLog
    return [(log_[i][1], log_[i][2]) for i in range(len(log_))]


def test_an_append_of_entries_held_already_truncates_nothing(follower: Engine) -> None:
    # When the leader resends 6..7, which the follower holds with the same term
    reply = append(follower, 5, 1, [entry(6, 1), entry(7, 1)])

    # Then entries 8..10 stay, and it acknowledges what the append verified, tagged
    assert terms(follower) == [(i, 1) for i in range(1, 11)]
    assert reply["success"] and reply["next_node_idx"] == 8 and reply["ordo_ack"] == 7
    assert follower.skipped_entries == 2 and follower.fault == ""


def test_an_overlapping_append_adds_only_what_is_new(follower: Engine) -> None:
    reply = append(follower, 5, 1, [entry(i, 1) for i in range(6, 13)])

    assert terms(follower) == [(i, 1) for i in range(1, 13)]
    assert reply["success"] and reply["next_node_idx"] == 13
    assert follower.skipped_entries == 5


def test_a_real_conflict_past_the_commit_index_replaces_the_tail(follower: Engine) -> None:
    # When a leader of term 2 sends 9..10 of its own after 8
    reply = append(follower, 8, 1, [entry(9, 2), entry(10, 2)])

    # Then the unapplied tail of term 1 is replaced
    assert terms(follower) == [*((i, 1) for i in range(1, 9)), (9, 2), (10, 2)]
    assert reply["success"] and reply["next_node_idx"] == 11
    assert follower.fault == ""


def test_a_conflict_at_an_applied_entry_stops_the_follower(follower: Engine) -> None:
    # When a leader asks to replace entry 7, which this node applied
    reply = append(follower, 6, 1, [entry(7, 2)])

    # Then it fail-stops: nothing deleted, no reply, and every later message is dropped
    assert reply == {}
    assert terms(follower) == [(i, 1) for i in range(1, 11)]
    assert "conflicts with one this node committed" in follower.fault
    assert append(follower, 10, 1, [entry(11, 1)]) == {}
    assert len(terms(follower)) == 10


def test_another_command_at_a_held_index_and_term_stops_the_follower(follower: Engine) -> None:
    forged = (b"another command", 9, 1)
    reply = append(follower, 8, 1, [forged])

    assert reply == {} and "another command than the leader's" in follower.fault


def test_a_conflict_at_prev_resets_to_where_that_term_began(follower: Engine) -> None:
    # Given entries 9..10 of term 1 that a leader of term 3 does not have (its 10 is of term 2)
    # When it appends after its entry 10
    reply = append(follower, 10, 2, [entry(11, 3)])

    # Then nothing is deleted yet, and the reset points past the commit index, at the term's start
    assert len(terms(follower)) == 10
    assert reply["reset"] and not reply["success"] and reply["next_node_idx"] == 9


# -- pre-vote -----------------------------------------------------------------------------


def test_a_node_cut_off_and_back_does_not_depose_the_leader(replicas: list[Replica]) -> None:
    # Given: a leader and two followers
    wait("a leader", lambda: leader_of(replicas) is not None)
    leader = leader_of(replicas)
    assert leader is not None
    term = leader.raftCurrentTerm
    wait("every node in the leader's term", lambda: all(n.raftCurrentTerm == term for n in replicas))
    loner = next(n for n in replicas if n is not leader)

    # When: one follower is cut off for several election timeouts, then comes back
    Cuttable.cut = {loner.selfNode.id}
    wait(
        "three of the loner's election timeouts",
        lambda: loner._ordo_prevote_round >= 3 or loner.raftCurrentTerm > term,
    )
    assert loner.raftCurrentTerm == term  # its timeouts raised no term
    Cuttable.cut = set()
    marker: list[int] = []
    leader.put(command(1), callback=lambda r, e: marker.append(int(r)) if e == 0 else None)
    wait("a command after the heal", lambda: bool(marker) and marker[0] in loner.applied)

    # Then: the same leader leads in the same term, and nobody started an election
    assert leader_of(replicas) is leader
    assert [n.raftCurrentTerm for n in replicas] == [term, term, term]


def test_followers_elect_a_new_leader_after_pre_votes(replicas: list[Replica]) -> None:
    wait("a leader", lambda: leader_of(replicas) is not None)
    leader = leader_of(replicas)
    assert leader is not None
    others = [n for n in replicas if n is not leader]

    Cuttable.cut = {leader.selfNode.id}
    started = time.monotonic()
    wait("a new leader", lambda: leader_of(others) is not None)

    # pre-votes and elections, within a few election timeouts: a term is spent only on a real
    # election (both followers may stand at once and split the vote, so a busy machine may take two)
    assert time.monotonic() - started < 6.0
    new_leader = leader_of(others)
    assert new_leader is not None
    assert leader.raftCurrentTerm + 1 <= new_leader.raftCurrentTerm <= leader.raftCurrentTerm + 2


# -- clock offsets --------------------------------------------------------------------------


def test_clock_offsets_ignore_replies_delayed_by_a_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a leader with two followers whose clocks agree with its own within 2 ms
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    engine = Engine(addresses[0], addresses[1:], SyncObjConf(autoTick=False), transport_class=Recorder)
    try:
        a, b = sorted(engine._SyncObj__otherNodes, key=lambda n: n.id)
        now = 1_800_000_000_000_000
        monkeypatch.setattr("ordo_node.timeutil.now_us", lambda: now)
        engine._ordo_clock_sample(a, now - 1_000, now + 1_500)  # rtt 1 ms, a is 2 ms ahead
        engine._ordo_clock_sample(b, now - 1_000, now - 500)  # rtt 1 ms, b agrees
        # When a cut heals and the replies to ten appends that waited in a socket buffer arrive at once
        for held in range(10):
            engine._ordo_clock_sample(a, now - 4_000_000 + held * 1_000, now)
        engine._ordo_clock_update()

        # Then they count for nothing (each would read as a clock 2 s ahead): offsets stay exact
        assert engine.offsets == {a.id: 2_000, b.id: 0}
        assert engine.clock_offset_us == 0
    finally:
        engine.destroy()
