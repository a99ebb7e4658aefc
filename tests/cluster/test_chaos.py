"""The chaos harness at a small scale: kill -9 under load, then every invariant holds."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from helpers import ordo_node_program

pytestmark = pytest.mark.cluster


async def test_chaos_harness_finds_every_invariant_holding() -> None:
    # Given a 3-node cluster under load, with nodes killed every few seconds for 25 s
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
    assert summary["kills"] >= 3
    assert summary["acknowledged"] >= 200
    assert summary["executions"] >= summary["acknowledged"]
    assert summary["duplicate_executions"] == summary["duplicates_of_lost_attempts"]
