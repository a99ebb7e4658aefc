"""Debounce and singleton: what a submission with a key does when another job holds that key.

A one-off job submitted with ``debounce`` or ``singleton`` names a key; the
table ``join_keys`` keeps, per kind and key, the last job created with it and
the time of the key's last submission (``last_at``, a command's time).
:func:`decide` tells :meth:`JobCommands.submit_one` what to do with a new
submission, from that row and the job's row alone:

- debounce TRAILING: while the key's job has not been triggered (SCHEDULED,
  due after this command's time), the submission is merged into it: its due
  time moves to this submission's (:func:`trailing_due`; not past the burst's
  first submission plus ``max_wait``) and it takes this submission's
  payload. The job is triggered at its due time, not ahead (it has a nominal
  time, as a recurring job), so a merge can still move it until then.
- debounce LEADING: a submission within the window of the key's last one is
  merged into the job that led the burst (unless that job was cancelled); the
  window slides with each submission, so a burst makes one run at its start.
- singleton: while the key's job has not ended, SKIP creates nothing (the
  answer names that job) and REPLACE cancels it and creates the new one.

Every merge or skip is an event (JOINED) on the job kept. Functions of the
write connection, inside apply's transaction: the time is the command's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from .. import commands as c
from ..timeutil import format_duration, format_us
from .base import ENDED, Refused

# A key's row: (job id, last submission's time).
_ROW_SQL = "SELECT job_id, last_at FROM join_keys WHERE kind = ? AND key = ?"


@dataclass(frozen=True)
class Join:
    """What to do with a submission that has a key.

    ``action``: "create" (a new job; nothing else), "merge" (debounce: into ``job_id``, due then at
    ``due_at`` for TRAILING), "skip" (singleton SKIP: ``job_id`` holds the key) or "replace"
    (singleton REPLACE: cancel ``job_id``, whose state was ``state``, and create).
    """

    kind: str
    key: str
    mode: str
    action: str
    job_id: str = ""
    state: str = ""
    due_at: int | None = None
    label: str = ""  # "debounce key 'k', TRAILING, window 5s" or "singleton key 'k', SKIP"


def spec_of(options: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """("debounce" or "singleton", its options) of a job's options, or None."""
    for kind in ("debounce", "singleton"):
        if kind in options:
            return kind, options[kind]
    return None


def trailing_due(spec: dict[str, Any], sub: c.JobSpec, at: int) -> int:
    """When a TRAILING submission made at command time ``at`` wants its run: a window after the
    later of its runAt (the API's time of receipt, when not given) and ``at``, the time its JOINED or
    SCHEDULED entry shows. The API already added the window to ``sub.run_at``."""
    return max(sub.run_at, at + int(spec["window"]))


def label(kind: str, spec: dict[str, Any]) -> str:
    """The key and mode in words, as events and answers name them."""
    text = f"{kind} key '{spec['key']}', {spec['mode']}"
    if kind == "debounce":
        text += f", window {format_duration(spec['window'])}"
        if spec.get("max_wait"):
            text += f", maxWait {format_duration(spec['max_wait'])}"
    return text


def decide(db: sqlite3.Connection, kind: str, spec: dict[str, Any], sub: c.JobSpec, at: int) -> Join:
    """The fate of submission ``sub`` with ``spec`` (its kind's options) at command time ``at``.

    Refused (FAILED_PRECONDITION) when it would merge into a job of another type or other options:
    a burst's submissions may differ only in their payload.
    """
    key, mode = spec["key"], spec["mode"]
    words = label(kind, spec)
    create = Join(kind, key, mode, "create", label=words)
    row = db.execute(_ROW_SQL, (kind, key)).fetchone()
    if row is None:
        return create
    job = db.execute(
        "SELECT state, armed, due_at, created_at, type, options FROM jobs WHERE id = ?", (row[0],)
    ).fetchone()
    if job is None:
        return create
    state, armed, due_at, created_at, type_, options = job
    if kind == "singleton":
        if state in ENDED:
            return create
        return Join(kind, key, mode, "skip" if mode == "SKIP" else "replace", row[0], state, label=words)
    if mode == "LEADING":
        merge = at < row[1] + spec["window"] and state != "CANCELLED"
    else:  # TRAILING: only a job not yet triggered can still move
        merge = state == "SCHEDULED" and bool(armed) and due_at is not None and due_at > at
    if not merge:
        return create
    if (type_, options) != (sub.type, sub.options):
        raise Refused(
            "FAILED_PRECONDITION",
            f"debounce.key: '{key}' is held by job {row[0]} of type '{type_}' with its own options; the"
            f" submissions of a burst may differ only in their payload (this one: type '{sub.type}')",
        )
    if mode == "LEADING":
        return Join(kind, key, mode, "merge", row[0], state, label=words)
    due = trailing_due(spec, sub, at)
    if spec.get("max_wait"):
        due = min(due, created_at + spec["max_wait"])
    return Join(kind, key, mode, "merge", row[0], state, max(due, due_at), words)


def remember(db: sqlite3.Connection, kind: str, key: str, job_id: str, at: int) -> None:
    """The key's job is now ``job_id``, last submitted at ``at``."""
    db.execute(
        "INSERT OR REPLACE INTO join_keys (kind, key, job_id, last_at) VALUES (?, ?, ?, ?)",
        (kind, key, job_id, at),
    )


def move(db: sqlite3.Connection, job_id: str, due_at: int, payload: str, at: int) -> None:
    """A TRAILING merge: the job is due at ``due_at`` (its nominal time too) with ``payload``."""
    db.execute(
        "UPDATE jobs SET run_at = ?, due_at = ?, next_nominal = ?, payload = ?, updated_at = ? WHERE id = ?",
        (due_at, due_at, due_at, payload, at, job_id),
    )


def merged_event(j: Join, node: str) -> str:
    """The history message of a merge or skip on the job kept."""
    source = f" from node {node}" if node else ""
    if j.action == "skip":
        return f"a submission{source} was skipped ({j.label}): this job holds the key ({j.state})"
    if j.due_at is not None:
        return f"a submission{source} was merged ({j.label}): due {format_us(j.due_at)}, with its payload"
    return f"a submission{source} was merged ({j.label})"


def answer(j: Join) -> str:
    """The submission's note (SubmitJobResponse.note)."""
    if j.action == "skip":
        return f"skipped: {j.label.replace(', SKIP', '')} is held by job {j.job_id} ({j.state})"
    if j.action == "replace":
        return f"replaced job {j.job_id} ({j.label}; it was {j.state})"
    if j.due_at is not None:
        return f"merged into job {j.job_id} ({j.label}): due {format_us(j.due_at)}"
    return f"merged into job {j.job_id} ({j.label})"
