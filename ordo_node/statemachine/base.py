"""What every group of commands shares: the write connection, the history buffer, runs and settling.

``Refused`` rolls a whole command back; every transition checks the state it
expects, and a command that no longer fits changes nothing and says why in its
result.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from . import concurrency
from .effects import Effects

OPEN = ("PENDING", "ASSIGNED", "RUNNING")
FINAL = ("SUCCEEDED", "FAILED", "DEAD_LETTER", "CANCELLED")
# A job that ended: FINAL, or SKIPPED (run after: a job it waited for ended otherwise).
ENDED = (*FINAL, "SKIPPED")


class Refused(Exception):
    """Rolls a whole command back; its result is the refusal."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.result = {"error": code, "message": message}


def options_of(text: str) -> dict[str, Any]:
    """A job's stored options (schedule and policies) as a dict; {} for a plain one-off job."""
    return json.loads(text) if text else {}


class Base:
    """The helpers of the command groups; ``db`` is the store's write connection, mid-transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        # History entries of the command being applied, written together (one
        # executemany) in the order they were made; see :meth:`flush_events`.
        self._events: list[tuple[Any, ...]] = []
        # Writes of the plain one-off jobs' fast paths, by statement, written with one
        # executemany each; see :meth:`later`.
        self._writes: dict[str, list[tuple[Any, ...]]] = {}
        # (job id, time) of the jobs this command ended, for the jobs that run after them
        # (flow.py: FlowCommands.after_ended, at the end of the command).
        self._ended: list[tuple[str, int]] = []

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run ``sql`` with ``params`` at the next :meth:`flush_writes`, grouped with the same statement.

        Only for rows that nothing reads before the flush: the fast paths of
        plain one-off jobs use it, and every other path of the same command
        flushes first.
        """
        self._writes.setdefault(sql, []).append(params)

    def flush_writes(self) -> None:
        """Run the writes :meth:`later` kept, statement by statement."""
        for sql, rows in self._writes.items():
            self.db.executemany(sql, rows)
        self._writes.clear()

    def flush_events(self) -> None:
        """Write the history entries made so far, in order (their ``seq`` follows the order of the calls)."""
        if self._events:
            self.db.executemany(
                "INSERT INTO events (job_id, type, at, node_id, run_id, attempt, message)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                self._events,
            )
            self._events.clear()

    def event(
        self,
        job_id: str,
        type_: str,
        at: int,
        node: str,
        run: tuple[str, int] | None = None,
        message: str = "",
    ) -> None:
        """Append one entry to the job's history (written at the end of the command or before a savepoint)."""
        self._events.append(
            (job_id, type_, at, node, run[0] if run else None, run[1] if run else None, message)
        )

    def job(self, job_id: str) -> sqlite3.Row | None:
        """The job's row (a mapping by column name)."""
        cur = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
        cur.row_factory = sqlite3.Row
        row: sqlite3.Row | None = cur.fetchone()
        return row

    def new_run(
        self,
        job: sqlite3.Row,
        ordinal: int,
        nominal: int,
        at: int,
        fx: Effects,
        *,
        not_before: int | None = None,
    ) -> tuple[str, int]:
        """Create attempt 1 of the job's run number ``ordinal``; it waits for an executor."""
        run = (f"{job['id']}:{ordinal}", 1)
        options = options_of(job["options"])
        priority = options.get("priority", 0)
        key = concurrency.key_of(options)
        self.db.execute(
            "INSERT INTO runs (run_id, attempt, job_id, state, scheduled_at, triggered_at, priority,"
            " not_before,"
            " failures_before, concurrency_key, concurrency_limit) VALUES (?, ?, ?, 'PENDING', ?, ?, ?, ?, 0,"
            " ?, ?)",
            (run[0], run[1], job["id"], nominal, at, priority, not_before, *(key or (None, None))),
        )
        if key is not None:
            concurrency.hold_if_full(self.db, *run)
            self.note_waiting(run, at)
        fx.pending.append(run)
        return run

    def next_attempt(
        self,
        run: tuple[str, int],
        fx: Effects,
        *,
        failures: int | None = None,
        not_before: int | None = None,
        triggered_at: int | None = None,
    ) -> tuple[str, int]:
        """Queue the attempt after ``run``: same job, occurrence and priority; its trigger time and
        failure count carried over unless given; waiting until ``not_before`` if given."""
        nxt = (run[0], run[1] + 1)
        self.db.execute(
            "INSERT INTO runs (run_id, attempt, job_id, state, scheduled_at, triggered_at, priority,"
            " not_before, failures_before, concurrency_key, concurrency_limit) SELECT run_id, ?, job_id,"
            " 'PENDING', scheduled_at, COALESCE(?, triggered_at), priority, ?, COALESCE(?, failures_before),"
            " concurrency_key, concurrency_limit FROM runs WHERE run_id = ? AND attempt = ?",
            (nxt[1], triggered_at, not_before, failures, *run),
        )
        concurrency.hold_if_full(self.db, *nxt)
        self.note_waiting(nxt, triggered_at)
        fx.pending.append(nxt)
        return nxt

    def note_waiting(self, run: tuple[str, int], at: int | None) -> None:
        """History: the attempt is held back by its concurrency key or rate limit (its ``waiting``
        reason), once per attempt and reason. ``at`` None: when the attempt before it ended."""
        row = self.db.execute(
            "SELECT r.job_id, r.waiting, j.submitted_to, (SELECT COALESCE(p.finished_at, p.triggered_at)"
            " FROM runs p WHERE p.run_id = r.run_id AND p.attempt = r.attempt - 1)"
            " FROM runs r JOIN jobs j ON j.id = r.job_id WHERE r.run_id = ? AND r.attempt = ?",
            run,
        ).fetchone()
        if row is None or not row[1]:
            return
        job_id, why = row[0], row[1]
        if any(e[1] == "WAITING" and (e[4], e[5], e[6]) == (*run, why) for e in self._events):
            return
        if self.db.execute(
            "SELECT 1 FROM events WHERE job_id = ? AND type = 'WAITING' AND run_id = ? AND attempt = ?"
            " AND message = ? LIMIT 1",
            (job_id, *run, why),
        ).fetchone():
            return
        self.event(job_id, "WAITING", at if at is not None else row[3] or 0, row[2], run, why)

    def settle(self, job_id: str, at: int, final: str) -> None:
        """Set the job's state from its open runs and schedule; ``final`` when nothing is left of it."""
        job = self.job(job_id)
        if job is None or job["state"] in ("CANCELLED", "PAUSED"):
            return
        rows = self.db.execute(
            "SELECT state, not_before, waiting, scheduled_at FROM runs"
            " WHERE job_id = ? AND state IN ('PENDING', 'ASSIGNED', 'RUNNING')",
            (job_id,),
        ).fetchall()
        states = {r[0] for r in rows}
        ready = [r for r in rows if r[0] == "PENDING" and (r[1] or 0) <= at]
        if "RUNNING" in states:
            state = "RUNNING"
        elif ready and "ASSIGNED" not in states and all(r[2] for r in ready):
            state = "WAITING"
        elif rows and all(r[3] > at for r in rows):
            # Triggered ahead of its time (a one-off job): to its users the job is
            # still scheduled, its run assigned and held until then.
            state = "SCHEDULED"
        elif "ASSIGNED" in states or ready:
            state = "TRIGGERED"
        elif states == {"PENDING"} and all(r[2] for r in rows):
            state = "WAITING"  # for a rate limit's next token (ratelimit.py)
        elif states:
            state = "RETRYING"
        elif job["armed"]:
            state = "SCHEDULED"
        else:
            state = final
        self.db.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?", (state, at, job_id))
        if state in FINAL:
            self._ended.append((job_id, at))

    def end_run(self, run_id: str, attempt: int, state: str, at: int, error: str = "") -> None:
        """Close one attempt."""
        self.db.execute(
            "UPDATE runs SET state = ?, finished_at = ?, error = COALESCE(NULLIF(?, ''), error)"
            " WHERE run_id = ? AND attempt = ?",
            (state, at, error, run_id, attempt),
        )
