"""Snapshots written off the tick thread: a SQLite backup of the state machine as PySyncObj's full dump.

PySyncObj calls a custom serializer synchronously on its tick thread (it forks
only for its own pickled dumps), and a backup of a large database there would
stop heartbeats for seconds and start elections. So the serializer only pins
the database's state (a read transaction on a connection of its own: WAL mode
keeps that view while apply goes on writing) and hands the copy to a thread;
PySyncObj asks :meth:`SnapshotWriter.check` on every tick how it is going, and
drops the journal's entries up to the snapshot only once it reports success.

PySyncObj renames ``<dump>.tmp`` over the dump as soon as the serializer
returns. The serializer makes that rename a no-op (``.tmp`` is a second link to
the dump already there); the new dump is renamed into place by :meth:`check`,
on the tick thread, once written. On disk the dump is therefore always a
complete snapshot, the old or the new one, and the journal still holds every
entry after it. (Before a node's first snapshot there is no dump to link to:
PySyncObj's rename then fails, which it notes and ignores.)
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysyncobj import SERIALIZER_STATE

log = logging.getLogger("ordo_node.snapshots")


class SnapshotWriter:
    """PySyncObj's ``serializer`` and ``serializeChecker``, for the database at ``db_path``.

    ``restores`` counts the snapshots the store took in; a dump begun before one
    of them is out of date when it is done, and is dropped.
    """

    def __init__(self, db_path: Path, dump_path: Path, restores: Callable[[], int]) -> None:
        self.db_path = db_path
        self.dump_path = dump_path
        self._restores = restores
        self._lock = threading.Lock()
        self._state = SERIALIZER_STATE.NOT_SERIALIZING
        self._written: Path | None = None
        self._began_at_restore = 0
        self._began = 0.0
        self._tmp: Path | None = None
        self.last_seconds = 0.0
        self.last_bytes = 0

    def serialize(self, tmp_path: str, raft_meta: Any) -> None:
        """Tick thread, database exactly at the last applied entry: pin that state and copy it in a thread."""
        src = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        try:
            src.execute("BEGIN")
            # The first read takes the transaction's view of the database.
            src.execute("SELECT value FROM meta WHERE key = 'last_applied'").fetchone()
        except BaseException:
            src.close()
            raise
        tmp = self._tmp = Path(tmp_path)
        tmp.unlink(missing_ok=True)
        if self.dump_path.exists():
            os.link(self.dump_path, tmp)
        with self._lock:
            self._state = SERIALIZER_STATE.SERIALIZING
            self._written = None
        self._began_at_restore = self._restores()
        self._began = time.monotonic()
        threading.Thread(target=self._write, args=(src, raft_meta), name="snapshot", daemon=True).start()

    def _write(self, src: sqlite3.Connection, raft_meta: Any) -> None:
        out = self.dump_path.with_name(self.dump_path.name + ".writing")
        try:
            copy_database(src, out, raft_meta)
            written: Path | None = out
            state = SERIALIZER_STATE.SUCCESS
        except Exception:
            log.exception("writing the snapshot failed; the journal is kept")
            written, state = None, SERIALIZER_STATE.FAILED
        finally:
            src.close()
        with self._lock:
            self._written = written
            self._state = state

    def check(self) -> int:
        """Tick thread: SERIALIZING while the copy runs, then once SUCCESS (the dump in place) or FAILED."""
        with self._lock:
            state, written = self._state, self._written
            if state in (SERIALIZER_STATE.SUCCESS, SERIALIZER_STATE.FAILED):
                self._state = SERIALIZER_STATE.NOT_SERIALIZING
                self._written = None
        if state != SERIALIZER_STATE.SUCCESS or written is None:
            return int(state)
        if self._restores() != self._began_at_restore:
            # The leader's snapshot came in meanwhile and is the dump now; ours is older.
            written.unlink(missing_ok=True)
            return int(SERIALIZER_STATE.FAILED)
        self.last_bytes = written.stat().st_size
        os.replace(written, self.dump_path)
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)  # the second link to the old dump
        _fsync_dir(self.dump_path.parent)
        self.last_seconds = time.monotonic() - self._began
        log.info("snapshot written bytes=%d seconds=%.2f", self.last_bytes, self.last_seconds)
        return int(SERIALIZER_STATE.SUCCESS)


def copy_database(src: sqlite3.Connection, out: Path, raft_meta: Any) -> None:
    """Copy what ``src`` sees (in its open transaction, if any) to ``out``, with PySyncObj's metadata."""
    out.unlink(missing_ok=True)
    dest = sqlite3.connect(out)
    try:
        src.backup(dest)  # one step: inside src's read transaction, a consistent copy
        dest.execute("CREATE TABLE raft_snapshot (meta BLOB NOT NULL)")
        dest.execute("INSERT INTO raft_snapshot VALUES (?)", (pickle.dumps(raft_meta),))
        dest.commit()
    finally:
        dest.close()
    with open(out, "rb") as f:
        os.fsync(f.fileno())


def write(db_path: Path, out: Path, raft_meta: Any) -> None:
    """Write a snapshot of the database at ``db_path`` as it is now, synchronously (tests, tools)."""
    src = sqlite3.connect(db_path)
    try:
        copy_database(src, out, raft_meta)
    finally:
        src.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
