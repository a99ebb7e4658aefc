"""Consensus: what a node that cannot take writes answers, before anything reaches the engine."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pysyncobj import SyncObjConf

from ordo_node import commands as c
from ordo_node.config import Config
from ordo_node.consensus import Consensus
from ordo_node.engine import CATCH_UP_GRACE, Engine
from ordo_node.errors import Unavailable
from ordo_node.tools.localcluster import free_ports


def consensus_with(engine: Any, tmp_path: Path) -> Consensus:
    config = Config("node1", "127.0.0.1:1", "127.0.0.1:2", tmp_path, "s" * 16)
    store = SimpleNamespace(path=tmp_path / "state.db", restores=0)
    consensus = Consensus(config, store=store, peers=None)  # type: ignore[arg-type]
    consensus._raft = engine
    return consensus


async def test_a_node_catching_up_refuses_writes_as_unavailable(tmp_path: Path) -> None:
    engine = SimpleNamespace(fault="", caught_up=lambda: False, behind=42, apply=None)
    consensus = consensus_with(engine, tmp_path)

    with pytest.raises(Unavailable, match="catching up with the leader \\(42 entries behind\\)"):
        await consensus.propose(c.Barrier(node="node1"))


async def test_a_node_that_fail_stopped_refuses_writes_naming_why(tmp_path: Path) -> None:
    engine = SimpleNamespace(fault="replication stopped to protect the data: x", caught_up=lambda: True)
    consensus = consensus_with(engine, tmp_path)

    with pytest.raises(Unavailable, match="cannot take writes: replication stopped"):
        await consensus.propose(c.Barrier(node="node1"))


def test_a_follower_behind_its_leader_is_caught_up_only_within_the_grace() -> None:
    me, other = (f"127.0.0.1:{p}" for p in free_ports(2))
    engine = Engine(me, [other], SyncObjConf(autoTick=False))
    try:
        # A node that knows no leader, or is level with its leader's commit index, is caught up
        assert engine.caught_up()
        engine._SyncObj__raftLeader = next(iter(engine._SyncObj__otherNodes))
        engine._SyncObj__leaderCommitIndex = engine._SyncObj__raftLastApplied
        assert engine.caught_up()
        # One behind its leader is caught up only within CATCH_UP_GRACE of when it was last level
        engine._SyncObj__leaderCommitIndex = engine._SyncObj__raftLastApplied + 5
        assert engine.behind == 5 and not engine.caught_up()
        engine._ordo_level_at = time.monotonic()
        assert engine.caught_up()
        engine._ordo_level_at = time.monotonic() - CATCH_UP_GRACE - 0.1
        assert not engine.caught_up()
        # A leader always is
        engine._SyncObj__raftState = 2
        assert engine.caught_up()
    finally:
        engine.destroy()
