"""The chaos harness at a small scale: kill -9 of nodes, kill -9 and SIGTERM of workers, under load;
then every invariant holds."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from helpers import ordo_node_program

pytestmark = pytest.mark.cluster


async def test_chaos_harness_finds_every_invariant_holding() -> None:
    # Given a 3-node cluster and 2 workers under load, with a node killed or a worker stopped every
    # few seconds for 25 s
    out = await asyncio.to_thread(
        subprocess.run,
        [*ordo_node_program(), "chaos", "--duration", "25", "--rate", "15", "--seed", "7", "--json"],
        capture_output=True,
        text=True,
        timeout=400,
    )

    # Then the harness exits 0: every invariant held
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["violations"] == []
    # and it really exercised faults and load
    # (which of kill -9 and SIGTERM a worker fault was, a short run leaves to chance)
    assert summary["kills"] >= 1 and summary["worker_kills"] + summary["worker_terms"] >= 1
    assert summary["kills"] + summary["worker_kills"] + summary["worker_terms"] >= 3
    # and jobs ran on both workers, which were connected to the leader again at the end
    assert summary["workers"] == 2
    assert sorted(summary["worker_executions"]) == ["worker1", "worker2"]
    assert all(n > 0 for n in summary["worker_executions"].values())
    assert summary["acknowledged"] >= 200
    assert summary["executions"] >= summary["acknowledged"]
    assert summary["duplicate_executions"] == summary["duplicates_of_lost_attempts"]
