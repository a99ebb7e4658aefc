"""The state machine: committed commands applied, in log order, to SQLite.

Threading contract: :meth:`Store.apply`, :meth:`Store.snapshot` and
:meth:`Store.restore` are called only by the Raft engine's tick thread, one at
a time, through the write connection this class owns. Readers use their own
connections (see ``queries.py``); WAL mode lets them read while apply writes.

Determinism: apply reads no clock, no randomness and no network. Every time
comes inside the command. Every transition is guarded by the state it expects;
a command that no longer fits (a second trigger for the same due time, an
outcome from an attempt that was re-assigned) changes nothing and reports why.

Exactly-once application: the entry's index is written in the same
transaction as its effects, so replaying the journal after a restart skips
what is already in the database.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import commands as c
from .timeutil import format_us

log = logging.getLogger("ordo_node.store")

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    idempotency_key TEXT,
    spec_hash TEXT NOT NULL,
    submitted_to TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
-- The timekeeper's question, "what falls due next", reads only this index.
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(due_at) WHERE state = 'SCHEDULED';
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at, id);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs(state, created_at, id);
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
    PRIMARY KEY (run_id, attempt)
);
CREATE INDEX IF NOT EXISTS runs_job ON runs(job_id);
CREATE INDEX IF NOT EXISTS runs_open ON runs(state, node_id)
    WHERE state IN ('PENDING', 'ASSIGNED', 'RUNNING');
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
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    applied_index INTEGER NOT NULL
);
"""

OPEN_RUN_STATES = ("PENDING", "ASSIGNED", "RUNNING")


@dataclass
class Effects:
    """What one applied command changed, for the actors that react to it.

    Filled by apply and handed to the listener after the transaction commits.
    Listeners observe; they never change the state machine.
    """

    index: int = 0
    earliest_due: int | None = None
    scheduled: list[tuple[str, int]] = field(default_factory=list)
    triggered: list[str] = field(default_factory=list)
    pending: list[tuple[str, int]] = field(default_factory=list)
    assigned: list[tuple[str, int, str]] = field(default_factory=list)
    finished: list[tuple[str, int, str, str]] = field(default_factory=list)
    cancelled_runs: list[tuple[str, int, str]] = field(default_factory=list)

    def empty(self) -> bool:
        """True when nothing an actor cares about changed."""
        return not (
            self.scheduled
            or self.triggered
            or self.pending
            or self.assigned
            or self.finished
            or self.cancelled_runs
        )


class _Refused(Exception):
    """Raised inside apply to roll a whole command back; its result is the refusal."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.result = {"error": code, "message": message}


class Store:
    """SQLite state machine; see the module docstring for its contracts."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('last_applied', '0')")
        self.last_applied = self._read_last_applied()
        self.listener: Callable[[Effects], None] | None = None
        self._lock = threading.Lock()

    def _read_last_applied(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'last_applied'").fetchone()
        return int(row[0])

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
        except c.DecodeError as e:
            log.error("skipping entry index=%d: %s", index, e)
            cmd = None
        effects = Effects(index=index)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                result = None
                if cmd is not None:
                    result, effects = self._apply_in_tx(cmd, index)
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'last_applied'", (str(index),))
                self._db.execute("COMMIT")
        except sqlite3.Error:
            log.critical("cannot write the state machine at index=%d; stopping", index, exc_info=True)
            logging.shutdown()
            os._exit(70)
        self.last_applied = index
        if self.listener is not None and not effects.empty():
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
            result = self._dispatch(cmd, fx)
            self._db.execute("RELEASE cmd")
        except _Refused as refusal:
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

    def _dispatch(self, cmd: c.Command, fx: Effects) -> Any:
        match cmd:
            case c.SubmitJobs():
                return self._submit(cmd, fx)
            case c.TriggerJobs():
                return self._trigger(cmd, fx)
            case c.AssignRuns():
                return self._assign(cmd, fx)
            case c.RecordRunUpdates():
                return self._record(cmd, fx)
            case c.RenewLeases():
                return self._renew(cmd)
            case c.ExpireRuns():
                return self._expire(cmd, fx)
            case c.CancelJob():
                return self._cancel(cmd, fx)
            case c.Barrier():
                return {"index": fx.index}

    def _event(
        self,
        job_id: str,
        type_: str,
        at: int,
        node: str,
        run: tuple[str, int] | None = None,
        message: str = "",
    ) -> None:
        self._db.execute(
            "INSERT INTO events (job_id, type, at, node_id, run_id, attempt, message)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, type_, at, node, run[0] if run else None, run[1] if run else None, message),
        )

    def _submit(self, cmd: c.SubmitJobs, fx: Effects) -> Any:
        ids: list[str] = []
        created: list[bool] = []
        for spec in cmd.jobs:
            if spec.idempotency_key:
                row = self._db.execute(
                    "SELECT id, spec_hash FROM jobs WHERE idempotency_key = ?", (spec.idempotency_key,)
                ).fetchone()
                if row is not None:
                    if row[1] != spec.spec_hash:
                        raise _Refused(
                            "ALREADY_EXISTS",
                            f"idempotencyKey: '{spec.idempotency_key}' was used for job {row[0]}"
                            " with a different definition",
                        )
                    ids.append(row[0])
                    created.append(False)
                    continue
            if self._db.execute("SELECT 1 FROM jobs WHERE id = ?", (spec.job_id,)).fetchone():
                raise _Refused("ALREADY_EXISTS", f"jobId: job {spec.job_id} exists")
            self._db.execute(
                "INSERT INTO jobs (id, name, type, payload, state, due_at, created_at, updated_at,"
                " idempotency_key, spec_hash, submitted_to)"
                " VALUES (?, ?, ?, ?, 'SCHEDULED', ?, ?, ?, ?, ?, ?)",
                (
                    spec.job_id,
                    spec.name,
                    spec.type,
                    spec.payload,
                    spec.run_at,
                    cmd.at,
                    cmd.at,
                    spec.idempotency_key or None,
                    spec.spec_hash,
                    cmd.node,
                ),
            )
            self._event(spec.job_id, "SCHEDULED", cmd.at, cmd.node, message=f"due {format_us(spec.run_at)}")
            fx.scheduled.append((spec.job_id, spec.run_at))
            if fx.earliest_due is None or spec.run_at < fx.earliest_due:
                fx.earliest_due = spec.run_at
            ids.append(spec.job_id)
            created.append(True)
        return {"job_ids": ids, "created": created}

    def _trigger(self, cmd: c.TriggerJobs, fx: Effects) -> Any:
        triggered: list[str] = []
        skipped: dict[str, str] = {}
        for t in cmd.triggers:
            row = self._db.execute("SELECT state, due_at FROM jobs WHERE id = ?", (t.job_id,)).fetchone()
            if row is None:
                skipped[t.job_id] = "no such job"
                continue
            if row[0] != "SCHEDULED" or row[1] != t.due_at:
                skipped[t.job_id] = f"not due: state {row[0]}, due {format_us(row[1])}"
                continue
            run = (f"{t.job_id}:1", 1)
            self._db.execute(
                "INSERT INTO runs (run_id, attempt, job_id, state, scheduled_at, triggered_at)"
                " VALUES (?, ?, ?, 'PENDING', ?, ?)",
                (run[0], run[1], t.job_id, t.due_at, cmd.at),
            )
            self._db.execute(
                "UPDATE jobs SET state = 'TRIGGERED', attempts = 1, updated_at = ? WHERE id = ?",
                (cmd.at, t.job_id),
            )
            late_ms = (cmd.at - t.due_at) / 1000
            self._event(t.job_id, "TRIGGERED", cmd.at, cmd.node, run, f"lateness_ms={late_ms:.1f}")
            triggered.append(t.job_id)
            fx.triggered.append(t.job_id)
            fx.pending.append(run)
        return {"triggered": triggered, "skipped": skipped}

    def _assign(self, cmd: c.AssignRuns, fx: Effects) -> Any:
        accepted: list[list[Any]] = []
        for a in cmd.assignments:
            row = self._db.execute(
                "SELECT job_id, state FROM runs WHERE run_id = ? AND attempt = ?", (a.run_id, a.attempt)
            ).fetchone()
            if row is None or row[1] != "PENDING":
                continue
            self._db.execute(
                "UPDATE runs SET state = 'ASSIGNED', node_id = ?, assigned_at = ?, lease_until = ?"
                " WHERE run_id = ? AND attempt = ?",
                (a.node_id, cmd.at, cmd.lease_until or None, a.run_id, a.attempt),
            )
            self._event(row[0], "ASSIGNED", cmd.at, a.node_id, (a.run_id, a.attempt), f"by {cmd.node}")
            accepted.append([a.run_id, a.attempt, a.node_id])
            fx.assigned.append((a.run_id, a.attempt, a.node_id))
        return {"assigned": accepted}

    def _record(self, cmd: c.RecordRunUpdates, fx: Effects) -> Any:
        stale: list[list[Any]] = []
        for u in cmd.updates:
            row = self._db.execute(
                "SELECT job_id, state, node_id FROM runs WHERE run_id = ? AND attempt = ?",
                (u.run_id, u.attempt),
            ).fetchone()
            run = (u.run_id, u.attempt)
            if row is None or row[2] != cmd.node:
                stale.append([u.run_id, u.attempt, "not assigned to this node"])
                continue
            job_id, state = row[0], row[1]
            if u.kind == "started" and state == "ASSIGNED":
                self._db.execute(
                    "UPDATE runs SET state = 'RUNNING', started_at = ? WHERE run_id = ? AND attempt = ?",
                    (u.at, *run),
                )
                self._db.execute(
                    "UPDATE jobs SET state = 'RUNNING', updated_at = ? WHERE id = ?", (u.at, job_id)
                )
                self._event(job_id, "STARTED", u.at, cmd.node, run)
            elif u.kind in ("succeeded", "failed") and state in ("ASSIGNED", "RUNNING"):
                final = "SUCCEEDED" if u.kind == "succeeded" else "FAILED"
                self._db.execute(
                    "UPDATE runs SET state = ?, started_at = COALESCE(started_at, ?), finished_at = ?,"
                    " result = ?, error = ? WHERE run_id = ? AND attempt = ?",
                    (final, u.at, u.at, u.result or None, u.error or None, *run),
                )
                self._db.execute(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?", (final, u.at, job_id)
                )
                self._event(job_id, final, u.at, cmd.node, run, u.error[:500])
                fx.finished.append((u.run_id, u.attempt, cmd.node, final))
            else:
                stale.append([u.run_id, u.attempt, f"run is {state}"])
        return {"stale": stale}

    def _renew(self, cmd: c.RenewLeases) -> Any:
        lost: list[list[Any]] = []
        for ref in cmd.runs:
            cur = self._db.execute(
                "UPDATE runs SET lease_until = MAX(COALESCE(lease_until, 0), ?)"
                " WHERE run_id = ? AND attempt = ? AND node_id = ? AND state IN ('ASSIGNED', 'RUNNING')",
                (cmd.lease_until, ref.run_id, ref.attempt, cmd.node),
            )
            if cur.rowcount == 0:
                lost.append([ref.run_id, ref.attempt])
        return {"lost": lost}

    def _expire(self, cmd: c.ExpireRuns, fx: Effects) -> Any:
        requeued: list[list[Any]] = []
        for ref in cmd.runs:
            row = self._db.execute(
                "SELECT job_id, state, node_id, scheduled_at, triggered_at, lease_until FROM runs"
                " WHERE run_id = ? AND attempt = ?",
                (ref.run_id, ref.attempt),
            ).fetchone()
            if row is None or row[1] not in ("ASSIGNED", "RUNNING"):
                continue
            job_id, state, node_id, scheduled_at, triggered_at, lease_until = row
            if cmd.check_lease and (lease_until is None or lease_until > cmd.at):
                continue
            self._db.execute(
                "UPDATE runs SET state = 'LOST', finished_at = ?, error = ? WHERE run_id = ? AND attempt = ?",
                (cmd.at, cmd.reason, ref.run_id, ref.attempt),
            )
            nxt = (ref.run_id, ref.attempt + 1)
            # The new attempt keeps the trigger time, so it is first in line again.
            self._db.execute(
                "INSERT INTO runs (run_id, attempt, job_id, state, scheduled_at, triggered_at)"
                " VALUES (?, ?, ?, 'PENDING', ?, ?)",
                (*nxt, job_id, scheduled_at, triggered_at),
            )
            self._db.execute(
                "UPDATE jobs SET state = 'TRIGGERED', attempts = ?, updated_at = ? WHERE id = ?",
                (nxt[1], cmd.at, job_id),
            )
            self._event(job_id, "LOST", cmd.at, node_id, (ref.run_id, ref.attempt), f"{state}: {cmd.reason}")
            fx.pending.append(nxt)
            fx.cancelled_runs.append((ref.run_id, ref.attempt, node_id))
            requeued.append([*nxt])
        return {"requeued": requeued}

    def _cancel(self, cmd: c.CancelJob, fx: Effects) -> Any:
        row = self._db.execute("SELECT state FROM jobs WHERE id = ?", (cmd.job_id,)).fetchone()
        if row is None:
            raise _Refused("NOT_FOUND", f"jobId: no job {cmd.job_id}")
        state = row[0]
        if state == "RUNNING":
            raise _Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is running; it cannot be cancelled")
        if state not in ("SCHEDULED", "TRIGGERED"):
            raise _Refused("FAILED_PRECONDITION", f"job {cmd.job_id} is {state}; nothing to cancel")
        for run_id, attempt, node_id in self._db.execute(
            "SELECT run_id, attempt, node_id FROM runs WHERE job_id = ? AND state IN ('PENDING', 'ASSIGNED')",
            (cmd.job_id,),
        ).fetchall():
            self._db.execute(
                "UPDATE runs SET state = 'CANCELLED', finished_at = ? WHERE run_id = ? AND attempt = ?",
                (cmd.at, run_id, attempt),
            )
            fx.cancelled_runs.append((run_id, attempt, node_id or ""))
        self._db.execute(
            "UPDATE jobs SET state = 'CANCELLED', updated_at = ? WHERE id = ?", (cmd.at, cmd.job_id)
        )
        self._event(cmd.job_id, "CANCELLED", cmd.at, cmd.node, message=f"cancelled while {state}")
        return {"job_id": cmd.job_id}

    # -- snapshots -----------------------------------------------------------

    def snapshot(self, path: str, raft_meta: Any) -> None:
        """Write a consistent copy of the database to ``path``, with PySyncObj's metadata inside.

        Called on the tick thread with the database exactly at the last applied
        entry, so a plain SQLite backup is consistent.
        """
        if os.path.exists(path):
            os.unlink(path)
        dest = sqlite3.connect(path)
        try:
            with self._lock:
                self._db.backup(dest)
            dest.execute("CREATE TABLE raft_snapshot (meta BLOB NOT NULL)")
            dest.execute("INSERT INTO raft_snapshot VALUES (?)", (pickle.dumps(raft_meta),))
            dest.commit()
        finally:
            dest.close()

    def restore(self, path: str) -> Any:
        """Load a snapshot written by :meth:`snapshot`; return PySyncObj's metadata.

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
                    log.info("restored snapshot index=%d (was %d)", snap_index, self.last_applied)
                    self.last_applied = self._read_last_applied()
            return meta
        finally:
            src.close()
