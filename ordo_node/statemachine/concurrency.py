"""Concurrency keys: at most ``limit`` attempts holding a key are assigned or running, cluster-wide.

An attempt of a job with ``concurrency_key`` carries the key and its job's limit
in its row (``runs.concurrency_key``, ``runs.concurrency_limit``). It holds the
key from its assignment until it ends, however it ends (succeeded, failed,
LOST, cancelled): a slot is never a counter that could leak, but the count of
the key's open attempts that are not PENDING, read from the runs table.

The decision is apply's (:meth:`RunCommands.assign_one` refuses an assignment
over the limit and notes why on the attempt); the dispatcher only avoids
offering what apply would refuse. Functions of the write connection, called
inside apply's transaction: no clock, no randomness.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# The waiting reason of a held attempt, built in SQL from its own row.
_REASON_SQL = "'concurrency key ''' || concurrency_key || ''' at its limit of ' || concurrency_limit"


def key_of(options: dict[str, Any]) -> tuple[str, int] | None:
    """(key, limit) of a job's options, or None when it has no concurrency key."""
    key = options.get("concurrency_key")
    return (key, int(options["concurrency_limit"])) if key else None


def reason(key: str, limit: int) -> str:
    """Why an attempt holding ``key`` waits."""
    return f"concurrency key '{key}' at its limit of {limit}"


def held(db: sqlite3.Connection, key: str) -> int:
    """How many attempts hold ``key`` now: assigned or running."""
    row = db.execute(
        "SELECT COUNT(*) FROM runs WHERE concurrency_key = ? AND finished_at IS NULL AND state != 'PENDING'",
        (key,),
    ).fetchone()
    return int(row[0])


def hold_if_full(db: sqlite3.Connection, run_id: str, attempt: int) -> None:
    """Note on a new pending attempt that its key is at its limit, if it is (its job shows WAITING)."""
    db.execute(
        f"UPDATE runs SET waiting = {_REASON_SQL} WHERE run_id = ? AND attempt = ?"
        " AND concurrency_key IS NOT NULL AND concurrency_limit <= (SELECT COUNT(*) FROM runs o"
        " WHERE o.concurrency_key = runs.concurrency_key AND o.finished_at IS NULL AND o.state != 'PENDING')",
        (run_id, attempt),
    )


def hold(db: sqlite3.Connection, run_id: str, attempt: int) -> None:
    """Note on one pending attempt that its key is at its limit."""
    db.execute(f"UPDATE runs SET waiting = {_REASON_SQL} WHERE run_id = ? AND attempt = ?", (run_id, attempt))


def hold_others(db: sqlite3.Connection, key: str, count: int) -> list[tuple[str, str, int]]:
    """The key is held ``count`` times: note it on its pending attempts whose limit that reaches (not
    noted yet). Returns (job id, run id, attempt) of each, in run order, for their jobs' state to be
    settled and their history noted."""
    jobs = [
        (r[0], r[1], r[2])
        for r in db.execute(
            "SELECT job_id, run_id, attempt FROM runs WHERE concurrency_key = ? AND finished_at IS NULL"
            " AND state = 'PENDING' AND waiting IS NULL AND concurrency_limit <= ? ORDER BY run_id, attempt",
            (key, count),
        )
    ]
    if jobs:
        db.execute(
            f"UPDATE runs SET waiting = {_REASON_SQL} WHERE concurrency_key = ? AND finished_at IS NULL"
            " AND state = 'PENDING' AND waiting IS NULL AND concurrency_limit <= ?",
            (key, count),
        )
    return jobs
