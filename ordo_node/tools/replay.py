"""Replay a node's Raft journal into an empty state machine and report apply's CPU per job.

``python -m ordo_node.tools.replay DATA_DIR/raft.journal`` (a node's journal, e.g. one
kept by ``ordo-node bench --scenarios e2e --keep``). It applies every command of the
journal, in order, to a new SQLite file in a temporary folder, timing only the
applying thread's CPU: what a follower's apply costs, without the network, the
Raft engine or the executor.

``--without-history`` leaves out the job history rows (``events``), to show their share.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections import Counter
from pathlib import Path

from pysyncobj.journal import createJournal

from .. import commands as c
from ..statemachine import base
from ..statemachine.store import Store


def commands_of(journal_path: str) -> list[tuple[int, bytes]]:
    """The (index, command bytes) of the journal's regular entries (PySyncObj's type 0)."""
    journal = createJournal(journal_path)
    out = []
    try:
        for i in range(len(journal)):
            entry, index, _term = journal[i]
            if entry and entry[0] == 0:
                args = pickle.loads(entry[1:])[1]  # (method number, (blob,))
                if args and isinstance(args[0], bytes):
                    out.append((index, args[0]))
    finally:
        journal._destroy()  # closes the file
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m ordo_node.tools.replay", description=__doc__)
    p.add_argument("journal", help="a node's raft.journal")
    p.add_argument("--without-history", action="store_true", help="write no history rows (events)")
    args = p.parse_args()
    entries = commands_of(args.journal)
    ops = Counter(c.decode(blob).op for _, blob in entries)
    if args.without_history:
        base.Base.event = lambda self, *a, **k: None  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.db")
        started = time.thread_time()
        for index, blob in entries:
            store.apply(index, blob)
        cpu = time.thread_time() - started
        jobs = store._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        store.close()
    print(f"{len(entries)} commands ({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))})")
    print(f"{jobs:,} jobs; apply CPU {cpu:.3f} s = {cpu / max(jobs, 1) * 1e6:.1f} us per job")


if __name__ == "__main__":
    main()
