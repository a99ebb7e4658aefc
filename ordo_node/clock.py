"""Clock skew: whether this node's wall clock may decide when jobs fall due.

The leader's wall clock decides when jobs fire, and the node that takes a
submission decides when its ``delay`` (or its schedule's first fire time)
falls due. The Raft heartbeats measure every node's clock against the
majority's (engine.py, :attr:`Consensus.clock_offset_us`). A node whose clock
is further from the majority's than ``[cluster] max_clock_skew`` times
nothing: as leader it triggers nothing and hands leadership to a node within
bounds (:meth:`ClockGuard.hold`); it refuses the submissions it would have to
time by its own clock, as UNAVAILABLE (:meth:`ClockGuard.refuse_timing`); and
GetClusterStatus shows why (:func:`skew_fault`).

A leader that has peers but no measurement yet (it just started) is not known
to be within bounds: it triggers nothing until the next heartbeats measure it.
A submission is refused only for a measured skew (see refuse_timing). A node
alone in its cluster is the majority.

Threading: everything here runs on the event loop; it reads a few numbers the
engine's tick thread writes (single assignments, so a read is never torn).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import Unavailable
from .timeutil import now_us

if TYPE_CHECKING:
    from .consensus import Consensus

log = logging.getLogger("ordo_node.clock")

OK = "ok"
UNMEASURED = "unmeasured"
SKEWED = "skewed"
# A leader hands over only once its clock has been out of bounds this long (seconds): a
# new leader's first estimate may rest on one follower's sample (engine.py recomputes it
# every 0.2 s), and a healthy leader with one skewed follower would then look skewed.
CONFIRM = 0.6
# How often a leader waiting for its clock looks again (seconds).
POLL = 0.1
# After a hand-over that did not happen (no follower took it), the next try waits this
# long, doubling up to MAX_RETRY (seconds).
RETRY = 1.0
MAX_RETRY = 5.0


@dataclass(frozen=True)
class Verdict:
    """What the measurement says about this node's clock."""

    state: str  # OK, UNMEASURED or SKEWED
    offset_us: int  # this node's clock minus the majority's (0 while unmeasured)
    max_skew_us: int

    @property
    def ok(self) -> bool:
        """True when this node may time jobs."""
        return self.state == OK

    def reason(self) -> str:
        """Why this node may not time jobs ('' when it may), for logs, errors and the cluster status."""
        if self.state == SKEWED:
            return (
                f"clock offset {seconds(self.offset_us)} from the majority's exceeds"
                f" cluster.max_clock_skew {self.max_skew_us / 1e6:g}s"
            )
        if self.state == UNMEASURED:
            return "clock offset from the majority's not measured yet"
        return ""


def judge(offset_us: int, *, measured: bool, alone: bool, max_skew_us: int) -> Verdict:
    """The verdict on a clock ``offset_us`` from the majority's (``measured``: any measurement yet;
    ``alone``: no other member, so this clock is the majority's)."""
    if alone:
        return Verdict(OK, 0, max_skew_us)
    if not measured:
        return Verdict(UNMEASURED, 0, max_skew_us)
    return Verdict(SKEWED if abs(offset_us) > max_skew_us else OK, offset_us, max_skew_us)


def seconds(us: int) -> str:
    """An offset as signed seconds with milliseconds: ``+30.012s``."""
    return f"{us / 1e6:+.3f}s"


def max_skew_us(consensus: Consensus) -> int:
    """``[cluster] max_clock_skew`` in microseconds."""
    return int(consensus.config.max_clock_skew * 1_000_000)


def verdict(consensus: Consensus) -> Verdict:
    """This node's clock, as the latest heartbeats measured it."""
    engine = consensus.engine
    bound = max_skew_us(consensus)
    if engine is None:  # not started, or stopped: nothing to compare with; nothing is timed either
        return Verdict(UNMEASURED, 0, bound)
    alone = not engine.otherNodes
    return judge(consensus.clock_offset_us, measured=engine.clock_measured, alone=alone, max_skew_us=bound)


def skew_fault(consensus: Consensus) -> str:
    """For the cluster status's ``fault``: why this node refuses to time jobs ('' when it does not).

    Only a measured skew is a fault; a node not measured yet is merely starting.
    """
    v = verdict(consensus)
    if v.state != SKEWED:
        return ""
    return f"{v.reason()}: does not trigger jobs or take submissions timed by its clock"


class HasClockOffset(Protocol):
    """What :func:`majority_now_us` needs: a member's Consensus, or a worker's link to the leader."""

    @property
    def clock_offset_us(self) -> int: ...


def majority_now_us(consensus: HasClockOffset) -> int:
    """The majority's wall clock as this node estimates it: its own less its measured offset.

    For waits that must end at a time the leader chose (an executor holding a run
    until its scheduled time): a skewed node then still waits until the right moment.
    """
    return now_us() - consensus.clock_offset_us


def members_out_of_bounds(consensus: Consensus, node_ids: set[str] | None = None) -> dict[str, int | None]:
    """Leader: the other members (of ``node_ids``, default all) whose clocks are not known to be
    within bounds, with their offsets from the majority's (None: not measured by this leader yet)."""
    engine = consensus.engine
    if engine is None:
        return dict.fromkeys(node_ids or ())
    offsets = engine.offsets  # by Raft address; each follower's offset from the majority
    bound = max_skew_us(consensus)
    out: dict[str, int | None] = {}
    for member in consensus.peers.members():
        if member.id == consensus.config.node_id or (node_ids is not None and member.id not in node_ids):
            continue
        offset = offsets.get(member.raft_address)
        if offset is None or abs(offset) > bound:
            out[member.id] = offset
    return out


class ClockGuard:
    """Keeps a node with a skewed clock from timing jobs; one per user (a leadership, a service)."""

    def __init__(
        self,
        consensus: Consensus,
        *,
        confirm: float = CONFIRM,
        poll: float = POLL,
        retry: float = RETRY,
    ) -> None:
        self.consensus = consensus
        self.confirm = confirm
        self.poll = poll
        self.retry = retry
        self._skewed_since: float | None = None  # monotonic
        self._warned = False
        self.handovers = 0  # hand-overs asked for

    def verdict(self) -> Verdict:
        """This node's clock now; remembers since when it has been out of bounds."""
        v = verdict(self.consensus)
        if v.state == SKEWED:
            if self._skewed_since is None:
                self._skewed_since = time.monotonic()
        else:
            self._skewed_since = None
        return v

    def confirmed(self) -> bool:
        """Out of bounds for at least ``confirm`` seconds (see CONFIRM)."""
        return self._skewed_since is not None and time.monotonic() - self._skewed_since >= self.confirm

    def refuse_timing(self, what: str) -> None:
        """Raise Unavailable (retryable: another node may take it) unless this node's clock may time
        ``what`` (e.g. "a submission without runAt")."""
        v = self.verdict()
        if v.state != SKEWED:
            # Not measured yet is let through: it lasts a heartbeat or two after a start, and
            # without a leader (no measurement either) the commit says "no leader", more useful.
            if self._warned:
                self._warned = False
                log.info("clock within bounds again offset=%s: timing submissions", seconds(v.offset_us))
            return
        if not self._warned:
            self._warned = True
            log.warning(
                "refusing submissions timed by this node's clock offset=%s max_clock_skew=%gs",
                seconds(v.offset_us),
                v.max_skew_us / 1e6,
            )
        raise Unavailable(
            f"this node cannot time {what}: its {v.reason()}; send it to another node, or give runAt"
        )

    async def hold(self) -> Verdict:
        """Leader: return once this node's clock is within bounds.

        While it is not: nothing returns (so nothing is triggered). Once the skew
        is confirmed, one WARNING line says so with the offset, and leadership is
        handed to a follower (the new leader's clock is judged the same way), again
        after RETRY, RETRY x 2, ... up to MAX_RETRY while no follower takes it.
        Cancelled when this node stops leading.
        """
        retry = self.retry
        while True:
            v = self.verdict()
            if v.ok:
                if self._warned:
                    self._warned = False
                    log.info("clock within bounds again offset=%s: triggering", seconds(v.offset_us))
                return v
            if v.state != SKEWED or not self.confirmed():
                await asyncio.sleep(self.poll)
                continue
            if not self._warned:
                self._warned = True
                log.warning(
                    "not triggering jobs: clock offset=%s from the majority exceeds max_clock_skew=%gs;"
                    " handing leadership over term=%d",
                    seconds(v.offset_us),
                    v.max_skew_us / 1e6,
                    self.consensus.term,
                )
            self.handovers += 1
            await self.consensus.transfer_leadership()
            await asyncio.sleep(retry)
            retry = min(retry * 2, MAX_RETRY)
