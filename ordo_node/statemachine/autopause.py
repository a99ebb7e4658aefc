"""pauseOnFailure: a recurring job pauses itself after N consecutive occurrences failed for good.

Called by apply when one of its runs failed for good (no retry left). The N
latest occurrences whose run ended, by nominal time, decide: if every one
failed, the job is PAUSED (as PauseJob would leave it) and the note says why. A
success among them, or fewer than N that ended, leaves it running. Open runs
and occurrences without a run (missed, skipped, paused) are neither. A resume
starts a fresh count: only occurrences due since the job was last resumed
decide. A job already paused (a run that was still going failed after the pause)
is left as it is, with no second note.
"""

from __future__ import annotations

import sqlite3

# A run's last attempt in these states: the occurrence failed for good.
_FAILED = ("FAILED",)


def failed_streak(db: sqlite3.Connection, job_id: str, count: int) -> bool:
    """True when the ``count`` latest occurrences of the job whose run ended, of those due since it
    was last resumed, all failed."""
    rows = db.execute(
        "SELECT (SELECT r.state FROM runs r WHERE r.run_id = o.run_id ORDER BY r.attempt DESC LIMIT 1) AS s"
        " FROM occurrences o WHERE o.job_id = ? AND o.fate = 'TRIGGERED' AND o.run_id IS NOT NULL"
        " AND o.nominal >= COALESCE((SELECT resumed_at FROM jobs WHERE id = o.job_id), 0)"
        " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = o.run_id AND r.finished_at IS NULL)"
        " ORDER BY o.nominal DESC LIMIT ?",
        (job_id, count),
    ).fetchall()
    return len(rows) == count and all(r[0] in _FAILED for r in rows)


def pause_if_failing(db: sqlite3.Connection, job_id: str, limit: int, at: int) -> str:
    """Pause the job if its last ``limit`` ended occurrences all failed; the note, or "" if not."""
    if limit <= 0 or not failed_streak(db, job_id, limit):
        return ""
    paused = db.execute(
        "UPDATE jobs SET state = 'PAUSED', armed = 0, paused_at = ?, updated_at = ? WHERE id = ?"
        " AND state NOT IN ('PAUSED', 'CANCELLED')",
        (at, at, job_id),
    )
    if paused.rowcount == 0:
        return ""
    return f"paused itself: {limit} consecutive occurrences failed (pauseOnFailure {limit})"
