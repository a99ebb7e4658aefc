"""Rate limits: a token bucket per key, cluster-wide, timed by the commands.

A job's ``rate_limit`` option holds its key, the interval between two tokens
(microseconds: 1 s / perSecond, or 1 min / perMinute) and its burst. The bucket
is kept as one integer per key (``rate_buckets.tat``: the time the bucket is
empty of debt, the generic cell rate algorithm): an attempt may be assigned at
``at`` if ``tat - (burst - 1) * interval <= at``, and then ``tat`` moves to
``max(tat, at) + interval``. ``at`` is the assigning command's time, chosen by
the leader: apply reads no clock, and integer arithmetic decides alike on every
replica. An attempt refused waits (its job WAITING, with the reason) until the
next token, as its ``not_before``: the dispatcher offers it again then.
"""

from __future__ import annotations

import sqlite3
from typing import Any


def rate_of(options: dict[str, Any]) -> tuple[str, int, int, str] | None:
    """(key, interval in us, burst, text such as "5/s") of a job's options, or None."""
    r = options.get("rate_limit")
    return (r["key"], int(r["interval"]), int(r["burst"]), r["text"]) if r else None


def reason(key: str, text: str, burst: int) -> str:
    """Why an attempt holding the rate key waits."""
    return f"rate limit '{key}' of {text} (burst {burst})"


def take(db: sqlite3.Connection, key: str, interval: int, burst: int, at: int) -> int | None:
    """Take a token of ``key`` at ``at``: None if one was free, else the time the next one is."""
    row = db.execute("SELECT tat FROM rate_buckets WHERE key = ?", (key,)).fetchone()
    tat = int(row[0]) if row is not None else at
    free_at = tat - (burst - 1) * interval
    if free_at > at:
        return free_at
    db.execute("INSERT OR REPLACE INTO rate_buckets (key, tat) VALUES (?, ?)", (key, max(tat, at) + interval))
    return None


def hold(db: sqlite3.Connection, run_id: str, attempt: int, why: str, until: int) -> None:
    """A pending attempt waits for its key's next token."""
    db.execute(
        "UPDATE runs SET waiting = ?, not_before = ? WHERE run_id = ? AND attempt = ?",
        (why, until, run_id, attempt),
    )
