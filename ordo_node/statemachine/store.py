"""The store: committed commands applied, in log order, to SQLite; restore from a snapshot; the state hash.

Threading contract: :meth:`Store.apply` and :meth:`Store.restore` are called
only by the Raft engine's tick thread, one at a time, through the write
connection this class owns. Readers use their own connections (see
``queries.py``); WAL mode lets them read while apply writes. Determinism: see
the package docstring.

Exactly-once application: the entry's index is written in the same
transaction as its effects, so replaying the journal after a restart skips
what is already in the database.

Divergence is visible: beside the index, the same transaction stores a running
hash of every command applied (``state_hash``: BLAKE2b over the previous hash,
the index and the command's bytes). Two replicas at the same index hold the
same hash, or they applied different commands.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import commands as c
from .base import Refused
from .effects import Effects
from .schema import AFTER_COLUMNS, COLUMNS, MIGRATE, SCHEMA, SCHEMA_VERSION
from .transitions import Transitions

log = logging.getLogger("ordo_node.store")

# The write connection's page cache, in KiB.
CACHE_KIB = 64 * 1024
WAL_CHECKPOINT_PAGES = 10_000
HASH_BYTES = 16


class Store:
    """SQLite state machine; see the module docstring for its contracts."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        # Apply touches index pages all over the tables (job and run ids are
        # random); the default 2 MiB page cache re-reads them from the file.
        self._db.execute(f"PRAGMA cache_size={-CACHE_KIB}")
        # Checkpoint the WAL every ~40 MB rather than every 4 MB: under load the
        # default checkpointed (and fsynced) several times a second, copying the
        # same hot index pages each time.
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        self._migrate()
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('last_applied', '0')")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('state_hash', '')")
        self.last_applied = self._read_last_applied()
        self.applied = (self.last_applied, self._read_state_hash())
        # Snapshots taken in from the leader (see snapshots.py: a dump begun before one is stale).
        self.restores = 0
        self.listener: Callable[[Effects], None] | None = None
        self._lock = threading.Lock()
        self._transitions = Transitions(self._db)

    def make_durable(self) -> None:
        """Commit with synchronous=FULL from now on (``[raft] durable``); before the engine starts."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")

    def _migrate(self) -> None:
        """Bring the file to this version's schema (idempotent): on open, and after a snapshot came in."""
        self._db.executescript(MIGRATE + SCHEMA)
        for table, column, kind in COLUMNS:
            if column not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self._db.executescript(AFTER_COLUMNS)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _read_last_applied(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'last_applied'").fetchone()
        return int(row[0])

    def _read_state_hash(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'state_hash'").fetchone()
        return str(row[0]) if row is not None else ""

    @property
    def state_hash(self) -> str:
        """The running hash of the commands applied up to :attr:`last_applied`, in hex."""
        return self.applied[1]

    def close(self) -> None:
        """Close the write connection."""
        with self._lock:
            self._db.close()

    # -- apply ---------------------------------------------------------------

    def apply(self, index: int, blob: bytes) -> Any:
        """Apply the committed entry ``index``; return its result (never raise for bad input).

        An entry at or below the stored last-applied index is a replay and is
        skipped. A SQLite error here means the disk failed us: the process
        stops, because PySyncObj would retry the same entry forever.
        """
        if index <= self.last_applied:
            return None
        try:
            cmd = c.decode(blob)
        except c.NewerCommand as e:
            log.critical("cannot apply entry index=%d: %s; stopping", index, e)
            logging.shutdown()
            os._exit(3)
        except c.DecodeError as e:
            log.error("skipping entry index=%d: %s", index, e)
            cmd = None
        effects = Effects(index=index)
        digest = next_hash(self.applied[1], index, blob)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                result = None
                if cmd is not None:
                    result, effects = self._apply_in_tx(cmd, index)
                self._db.execute(
                    "UPDATE meta SET value = CASE key WHEN 'last_applied' THEN ? ELSE ? END"
                    " WHERE key IN ('last_applied', 'state_hash')",
                    (str(index), digest),
                )
                self._db.execute("COMMIT")
        except sqlite3.Error:
            log.critical("cannot write the state machine at index=%d; stopping", index, exc_info=True)
            logging.shutdown()
            os._exit(70)
        self.last_applied = index
        # One assignment, so a reader on another thread sees an index and its hash together.
        self.applied = (index, digest)
        if self.listener is not None:
            self.listener(effects)
        return result

    def _apply_in_tx(self, cmd: c.Command, index: int) -> tuple[Any, Effects]:
        if isinstance(cmd, c.Batch):
            return self._apply_batch(cmd, index)
        request_id = getattr(cmd, "request_id", "")
        if request_id:
            row = self._db.execute("SELECT result FROM requests WHERE id = ?", (request_id,)).fetchone()
            if row is not None:
                return json.loads(row[0]), Effects(index=index)
        fx = Effects(index=index)
        self._db.execute("SAVEPOINT cmd")
        try:
            result = self._transitions.dispatch(cmd, fx)
            self._db.execute("RELEASE cmd")
        except Refused as refusal:
            self._db.execute("ROLLBACK TO cmd")
            self._db.execute("RELEASE cmd")
            fx = Effects(index=index)
            result = refusal.result
        except sqlite3.Error:
            raise  # the disk, not the command: apply() stops the process
        except Exception as e:
            # A bug met by this command meets it on every replica alike, so
            # refusing the command keeps them identical; raising would make
            # PySyncObj retry the entry forever.
            log.exception("command at index=%d failed; refused", index)
            self._db.execute("ROLLBACK TO cmd")
            self._db.execute("RELEASE cmd")
            fx = Effects(index=index)
            result = {"error": "INTERNAL", "message": f"the command failed: {type(e).__name__}"}
        if request_id:
            self._db.execute("INSERT INTO requests VALUES (?, ?, ?)", (request_id, json.dumps(result), index))
        return result, fx

    def _apply_batch(self, batch: c.Batch, index: int) -> tuple[Any, Effects]:
        """Each command of the batch as if it were alone (its request id, its refusal); their results."""
        fx = Effects(index=index)
        results = []
        for cmd in batch.commands:
            result, one = self._apply_in_tx(cmd, index)
            fx.add(one)
            results.append(result)
        return {"results": results}, fx

    # -- snapshots -----------------------------------------------------------

    def restore(self, path: str) -> Any:
        """Load a snapshot (see ``snapshots.py``); return PySyncObj's metadata.

        At start-up the local database is usually at or past the snapshot: it
        is kept, and the journal replay skips what it already holds. Only a
        node that is behind (a wiped or lagging follower) copies the snapshot in.
        """
        src = sqlite3.connect(path)
        try:
            # The file is one this cluster wrote (its own dump, or the leader's
            # over the authenticated Raft port), never a client's.
            meta = pickle.loads(src.execute("SELECT meta FROM raft_snapshot").fetchone()[0])
            snap_index = int(src.execute("SELECT value FROM meta WHERE key = 'last_applied'").fetchone()[0])
            with self._lock:
                if snap_index > self.last_applied:
                    src.backup(self._db)
                    self._db.execute("DROP TABLE IF EXISTS raft_snapshot")
                    # A snapshot from a node of an older schema gets this one's indexes.
                    self._migrate()
                    log.info("restored snapshot index=%d (was %d)", snap_index, self.last_applied)
                    self.last_applied = self._read_last_applied()
                    self.applied = (self.last_applied, self._read_state_hash())
                    self.restores += 1
            return meta
        finally:
            src.close()


def next_hash(previous: str, index: int, blob: bytes) -> str:
    """The running state hash after applying ``blob`` at ``index`` on top of ``previous`` (hex)."""
    h = hashlib.blake2b(bytes.fromhex(previous), digest_size=HASH_BYTES)
    h.update(index.to_bytes(8, "big"))
    h.update(blob)
    return h.hexdigest()
