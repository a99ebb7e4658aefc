"""The state machine: committed commands applied, in log order, to SQLite.

Threading contract: :meth:`Store.apply` and :meth:`Store.restore` are called
only by the Raft engine's tick thread, one at a time, through the write
connection this class owns. Readers use their own connections (see
``queries.py``); WAL mode lets them read while apply writes.

Determinism: apply reads no clock, no randomness and no network. Every time
comes inside the command. Every transition is guarded by the state it expects;
a command that no longer fits (a second trigger for the same due time, an
outcome from an attempt that was re-assigned) changes nothing and reports why.

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

from . import commands as c
from .effects import Effects
from .transitions import Refused, Transitions

log = logging.getLogger("ordo_node.store")

SCHEMA_VERSION = 4
# The write connection's page cache, in KiB.
CACHE_KIB = 64 * 1024
WAL_CHECKPOINT_PAGES = 10_000
HASH_BYTES = 16

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    run_at INTEGER NOT NULL,          -- the first fire time
    due_at INTEGER,                   -- the next fire time; NULL when nothing is left to trigger
    next_nominal INTEGER,             -- recurring: the nominal time due_at belongs to
    armed INTEGER NOT NULL,           -- 1 while the timekeeper should trigger it at due_at
    occurrences INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    idempotency_key TEXT,
    spec_hash TEXT NOT NULL,
    submitted_to TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '', -- schedule and policies, JSON
    paused_at INTEGER,
    resumed_at INTEGER
);
-- The timekeeper's question, "what falls due next", reads only this index.
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(due_at) WHERE armed = 1;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Lists are newest first by rowid: the order jobs were committed in, the same on
-- every replica (apply is deterministic, and a snapshot is a copy of the file).
-- An index on (state) holds (state, rowid): a list by state needs no other.
CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name) WHERE name != '';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
-- Retention looks only at jobs with more than one occurrence: the recurring ones.
CREATE INDEX IF NOT EXISTS jobs_recurring ON jobs(occurrences) WHERE occurrences > 1;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    node_id TEXT,
    scheduled_at INTEGER NOT NULL,
    triggered_at INTEGER NOT NULL,
    assigned_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    result TEXT,
    error TEXT,
    lease_until INTEGER,
    priority INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER,               -- a retry waits for its backoff until then
    failures_before INTEGER NOT NULL DEFAULT 0,
    waiting TEXT,                     -- why no executor takes it (tags no live node has)
    boot_id TEXT,                     -- the executor process it was assigned to
    PRIMARY KEY (run_id, attempt)
);
CREATE INDEX IF NOT EXISTS runs_job ON runs(job_id);
-- Open attempts (pending, assigned, running) are exactly those not finished. The
-- condition is not "state IN (...)": SQLite 3.40 then builds the IN list's table
-- twice for every row a statement writes, and a run's insert and updates cost
-- two to five times as much.
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs(state, node_id) WHERE finished_at IS NULL;
CREATE TABLE IF NOT EXISTS occurrences (
    job_id TEXT NOT NULL,
    nominal INTEGER NOT NULL,
    fire_at INTEGER NOT NULL,
    fate TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    run_id TEXT,
    decided_at INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    PRIMARY KEY (job_id, nominal)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    run_id TEXT,
    attempt INTEGER,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    grpc_address TEXT NOT NULL,
    raft_address TEXT NOT NULL,
    state TEXT NOT NULL,              -- ACTIVE or REMOVED
    changed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    applied_index INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_index ON requests(applied_index);
"""

# Schema 2 had indexes that every job paid for on each replica: jobs(created_at, id)
# and jobs(state, created_at, id), replaced by rowid order and jobs(state), and
# events(at), replaced by pruning the oldest events by seq. Schema 3 had
# runs_open, partial on "state IN (...)", replaced by runs_unfinished.
MIGRATE = """
DROP INDEX IF EXISTS jobs_created;
DROP INDEX IF EXISTS jobs_state_created;
DROP INDEX IF EXISTS events_at;
DROP INDEX IF EXISTS runs_open;
"""


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
