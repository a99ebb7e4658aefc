"""The journal replay tool: it reads PySyncObj's journal file and applies each command in order."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from pysyncobj.journal import createJournal

from ordo_node import commands as c
from ordo_node.tools.replay import commands_of

AT = 1_900_000_000_000_000


def submit(n: int, request_id: str) -> bytes:
    jobs = tuple(
        c.JobSpec(job_id=f"{request_id}-{i}", type="echo", payload="{}", run_at=AT) for i in range(n)
    )
    return c.encode(c.SubmitJobs(request_id=request_id, at=AT, node="node1", jobs=jobs))


def write_journal(path: Path, blobs: list[bytes]) -> None:
    """A journal as a node writes it: a no-op entry first, then our replicated method's calls."""
    journal = createJournal(str(path))
    journal.add(b"\x01", 1, 1)  # an engine entry, not a command
    for i, blob in enumerate(blobs, start=2):
        journal.add(b"\x00" + pickle.dumps((0, (blob,)), protocol=2), i, 1)
    journal.flush()
    journal._destroy()


def test_replay_applies_every_command_and_reports_cpu_per_job(tmp_path: Path) -> None:
    # Given a journal with two submissions of 3 and 2 jobs
    path = tmp_path / "raft.journal"
    write_journal(path, [submit(3, "a"), submit(2, "b")])

    # When the tool reads it, and runs on it
    entries = commands_of(str(path))
    proc = subprocess.run(
        [sys.executable, "-m", "ordo_node.tools.replay", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it found the two commands at their indexes, applied all five jobs and said what it cost
    assert [index for index, _ in entries] == [2, 3]
    assert [c.decode(blob).op for _, blob in entries] == ["submit", "submit"]
    assert proc.returncode == 0, proc.stderr
    assert "2 commands (submit 2)" in proc.stdout
    assert "5 jobs; apply CPU" in proc.stdout and "us per job" in proc.stdout
