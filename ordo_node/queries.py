"""Reads of the state machine's SQLite file, for the API and the leader's actors.

These run on the event loop through aiosqlite, on a connection of their own;
WAL mode lets them read while the tick thread applies. A read sees the state
as of some applied index: on a follower it may lag the leader (the API offers
a barrier for reads that must not).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from .errors import InvalidArgument

MAX_PAGE = 1000
DEFAULT_PAGE = 100


@dataclass(frozen=True)
class WorkerRow:
    """A registered worker; tags and handlers are JSON lists."""

    id: str
    boot_id: str
    capacity: int
    tags: str
    handlers: str
    address: str
    server: str
    state: str
    registered_at: int
    changed_at: int


@dataclass(frozen=True)
class RunRow:
    """One attempt of a run."""

    run_id: str
    attempt: int
    job_id: str
    state: str
    node_id: str
    scheduled_at: int
    triggered_at: int
    assigned_at: int | None
    started_at: int | None
    finished_at: int | None
    result: Any
    error: str
    traceback: str = ""


@dataclass(frozen=True)
class JobRow:
    """A job with its runs (runs only when asked for)."""

    job_id: str
    name: str
    type: str
    payload: Any
    state: str
    run_at: int
    created_at: int
    updated_at: int
    idempotency_key: str
    submitted_to: str
    options: dict[str, Any]
    occurrences: int
    next_fire: int | None
    waiting: str = ""  # why a due run waits; for a SKIPPED job, why it never ran
    runs: tuple[RunRow, ...] = ()
    # Its place in list order (newest first; the rowid), set by list_jobs only.
    position: int = 0


@dataclass(frozen=True)
class EventRow:
    """One entry of a job's history."""

    seq: int
    job_id: str
    type: str
    at: int
    node_id: str
    run_id: str
    attempt: int
    message: str


@dataclass(frozen=True)
class WorkItem:
    """An open run attempt with what an executor needs to run it."""

    run_id: str
    attempt: int
    job_id: str
    state: str
    node_id: str
    type: str
    payload: str
    name: str
    idempotency_key: str
    scheduled_at: int
    options: str
    boot_id: str

    @property
    def timeout_us(self) -> int:
        """The job's per-attempt timeout (0: none)."""
        return int(json.loads(self.options).get("timeout", 0)) if self.options else 0


_JOB_COLS = (
    "id, name, type, payload, state, run_at, created_at, updated_at, idempotency_key, submitted_to,"
    " options, occurrences, CASE WHEN armed = 1 OR state = 'PAUSED' THEN due_at END,"
    # Why it waits (a pending run's reason) or, SKIPPED (run after), why it never ran.
    " CASE WHEN state = 'SKIPPED' THEN (SELECT o.reason FROM occurrences o WHERE o.job_id = jobs.id"
    " AND o.fate = 'SKIPPED' LIMIT 1) ELSE (SELECT r.waiting FROM runs r WHERE r.job_id = jobs.id"
    " AND r.state = 'PENDING' AND r.waiting IS NOT NULL LIMIT 1) END"
)
_RUN_COLS = (
    "run_id, attempt, job_id, state, node_id, scheduled_at, triggered_at, assigned_at,"
    " started_at, finished_at, result, error, traceback"
)
# Queries on open attempts say "finished_at IS NULL", the runs_unfinished index's
# condition: SQLite uses a partial index only when the query's WHERE contains its WHERE.
_WORK_COLS = (
    "r.run_id, r.attempt, r.job_id, r.state, COALESCE(r.node_id, ''), j.type, j.payload, j.name,"
    " COALESCE(j.idempotency_key, ''), r.scheduled_at, j.options, COALESCE(r.boot_id, '')"
)


def _job(row: Any, runs: tuple[RunRow, ...] = (), position: int = 0) -> JobRow:
    options = json.loads(row[10]) if row[10] else {}
    return JobRow(
        row[0],
        row[1],
        row[2],
        json.loads(row[3]),
        row[4],
        row[5],
        row[6],
        row[7],
        row[8] or "",
        row[9],
        options,
        row[11],
        row[12],
        row[13] or "",
        runs,
        position,
    )


@dataclass(frozen=True)
class DueJob:
    """A job whose next fire time has come, with what the timekeeper needs to trigger it."""

    job_id: str
    due_at: int
    next_nominal: int | None
    options: dict[str, Any]
    occurrences: int
    paused_at: int | None
    resumed_at: int | None
    type: str = ""

    @property
    def needs(self) -> frozenset[str]:
        """What an executor must offer to run this job (see :func:`_needs`)."""
        return _needs_of(self.options, self.type)


@dataclass(frozen=True)
class NodeLoad:
    """The open attempts one node holds: all, those not due yet, and those running for long."""

    held: int
    ahead: int
    slow: int


@dataclass(frozen=True)
class OccurrenceRow:
    """One scheduled time of a job and its fate, with the outcome of its run so far."""

    job_id: str
    nominal: int
    fire_at: int
    fate: str
    reason: str
    run_id: str
    decided_at: int
    outcome: str
    attempts: int
    buffer_position: int = 0  # BUFFERED: its place in line (1 runs next)


def _run(row: Any) -> RunRow:
    result = json.loads(row[10]) if row[10] else None
    return RunRow(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4] or "",
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        result,
        row[11] or "",
        row[12] or "",
    )


def _needs(options: str, job_type: str) -> frozenset[str]:
    """What an executor must offer to run a job: its tags, and its type as "handler:<type>"."""
    return _needs_of(json.loads(options) if options else {}, job_type)


def _needs_of(options: dict[str, Any], job_type: str) -> frozenset[str]:
    return frozenset((*options.get("tags", ()), f"handler:{job_type}"))


def encode_token(position: int, job_id: str) -> str:
    """A page token: where the next page starts, opaque to clients."""
    return base64.urlsafe_b64encode(f"{position}:{job_id}".encode()).decode()


def decode_token(token: str) -> tuple[int, str]:
    """The position a page token names; InvalidArgument(pageToken) if it is not one of ours."""
    try:
        created, job_id = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        position = int(created)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("pageToken", "not a token this server issued") from None
    if not 0 <= position < 2**63:  # SQLite's integers
        raise InvalidArgument("pageToken", "not a token this server issued")
    return position, job_id


class Queries:
    """Read access to one node's database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Open the read connection (the store must have created the schema)."""
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA query_only = ON")

    async def close(self) -> None:
        """Close the read connection."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection."""
        assert self._db is not None, "Queries.open() was not called"
        return self._db

    async def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        # One trip to the connection's thread (execute, fetch, close), not three, and nothing of
        # another query's between this one's execute and its fetch.
        return list(await self.db.execute_fetchall(sql, args))

    async def get_job(self, job_id: str) -> JobRow | None:
        """The job with every run attempt, or None."""
        rows = await self._all(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            return None
        runs = await self._all(
            f"SELECT {_RUN_COLS} FROM runs WHERE job_id = ? ORDER BY triggered_at, run_id, attempt", (job_id,)
        )
        return _job(rows[0], tuple(_run(r) for r in runs))

    async def list_jobs(
        self, *, state: str = "", type_: str = "", name: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[list[JobRow], str]:
        """A page of jobs, newest first, and the token of the next page ('' at the end)."""
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        where: list[str] = []
        args: list[Any] = []
        if name:
            # "name != ''" repeats the jobs_name index's condition, so SQLite may use that partial index.
            where.append("name = ? AND name != ''")
            args.append(name)
        if state:
            where.append("state = ?")
            args.append(state)
        if type_:
            where.append("type = ?")
            args.append(type_)
        if page_token:
            position, _ = decode_token(page_token)
            where.append("rowid < ?")
            args.append(position)
        # Newest first is rowid order: the order the jobs were committed in, the
        # same on every replica, so a token from one node pages on another.
        sql = f"SELECT rowid, {_JOB_COLS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid DESC LIMIT ?"
        rows = await self._all(sql, (*args, size + 1))
        jobs = [_job(r[1:], position=r[0]) for r in rows[:size]]
        token = encode_token(jobs[-1].position, jobs[-1].job_id) if len(rows) > size else ""
        return jobs, token

    async def job_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` job ids starting with ``prefix``, in order: a range of the primary key."""
        rows = await self._all(
            "SELECT id FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
        return [r[0] for r in rows]

    async def history(self, job_id: str) -> list[EventRow] | None:
        """The job's events in order, or None if there is no such job."""
        if not await self._all("SELECT 1 FROM jobs WHERE id = ?", (job_id,)):
            return None
        rows = await self._all(
            "SELECT seq, job_id, type, at, node_id, COALESCE(run_id, ''), COALESCE(attempt, 0), message"
            " FROM events WHERE job_id = ? ORDER BY seq",
            (job_id,),
        )
        return [EventRow(*r) for r in rows]

    async def next_due(self) -> int | None:
        """The earliest fire time of any armed job (one index seek)."""
        rows = await self._all("SELECT MIN(due_at) FROM jobs WHERE armed = 1")
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def due_jobs(self, now: int, limit: int, *, one_offs_until: int | None = None) -> list[DueJob]:
        """Up to ``limit`` armed jobs due at or before ``now``, earliest first.

        With ``one_offs_until``, one-off jobs (no schedule: ``next_nominal`` is
        NULL) due by then are included too: the timekeeper triggers those ahead.
        """
        ahead = now if one_offs_until is None else max(now, one_offs_until)
        rows = await self._all(
            "SELECT id, due_at, next_nominal, options, occurrences, paused_at, resumed_at, type FROM jobs"
            " WHERE armed = 1 AND due_at <= ? AND (due_at <= ? OR next_nominal IS NULL)"
            " ORDER BY due_at LIMIT ?",
            (ahead, now, limit),
        )
        return [
            DueJob(r[0], r[1], r[2], json.loads(r[3]) if r[3] else {}, r[4], r[5], r[6], r[7]) for r in rows
        ]

    async def count_one_offs_due(self, by: int, limit: int) -> int:
        """How many armed one-off jobs are due at or before ``by`` (counting stops at ``limit``)."""
        rows = await self._all(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE armed = 1 AND due_at <= ?"
            " AND next_nominal IS NULL LIMIT ?)",
            (by, limit),
        )
        return int(rows[0][0])

    async def occurrences(
        self, job_id: str, *, since: int | None, until: int | None, fate: str, page_size: int, page_token: str
    ) -> tuple[list[OccurrenceRow], str]:
        """A page of the job's occurrences, newest first, and the next page's token."""
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        where: list[str] = ["o.job_id = ?"]
        args: list[Any] = [job_id]
        if since is not None:
            where.append("o.nominal >= ?")
            args.append(since)
        if until is not None:
            where.append("o.nominal <= ?")
            args.append(until)
        if fate:
            where.append("o.fate = ?")
            args.append(fate)
        if page_token:
            before, _ = decode_token(page_token)
            where.append("o.nominal < ?")
            args.append(before)
        rows = await self._all(
            "SELECT o.job_id, o.nominal, o.fire_at, o.fate, o.reason, COALESCE(o.run_id, ''), o.decided_at,"
            " COALESCE((SELECT r.state FROM runs r WHERE r.run_id = o.run_id ORDER BY r.attempt DESC LIMIT"
            " 1), ''),"
            " (SELECT COUNT(*) FROM runs r WHERE r.run_id = o.run_id),"
            # Buffered occurrences run oldest first (RunCommands.start_buffered): count those ahead.
            " CASE o.fate WHEN 'BUFFERED' THEN (SELECT COUNT(*) FROM occurrences b WHERE b.job_id = o.job_id"
            " AND b.fate = 'BUFFERED' AND b.nominal <= o.nominal) ELSE 0 END"
            f" FROM occurrences o WHERE {' AND '.join(where)} ORDER BY o.nominal DESC LIMIT ?",
            (*args, size + 1),
        )
        items = [OccurrenceRow(*r) for r in rows[:size]]
        token = encode_token(items[-1].nominal, job_id) if len(rows) > size else ""
        return items, token

    async def occurrence_at(self, job_id: str, at: int) -> OccurrenceRow | None:
        """The occurrence whose nominal time is nearest at or before ``at``."""
        items, _ = await self.occurrences(job_id, since=None, until=at, fate="", page_size=1, page_token="")
        return items[0] if items else None

    async def events_after(self, seq: int, job_id: str = "", limit: int = 500) -> list[EventRow]:
        """Events with a sequence number above ``seq`` (of one job, if given), oldest first."""
        cond, args = ("seq > ? AND job_id = ?", (seq, job_id)) if job_id else ("seq > ?", (seq,))
        rows = await self._all(
            "SELECT seq, job_id, type, at, node_id, COALESCE(run_id, ''), COALESCE(attempt, 0), message"
            f" FROM events WHERE {cond} ORDER BY seq LIMIT ?",
            (*args, limit),
        )
        return [EventRow(*r) for r in rows]

    async def last_event_seq(self) -> int:
        """The newest event's sequence number (0 when there is none)."""
        rows = await self._all("SELECT COALESCE(MAX(seq), 0) FROM events")
        return int(rows[0][0])

    async def _work(self, rest: str, args: tuple[Any, ...] = (), *, open_only: bool = True) -> list[WorkItem]:
        """Attempts with what an executor needs; ``rest`` continues the WHERE clause (from "AND ...")."""
        # Open runs are the unfinished ones: said so, SQLite uses the runs_unfinished partial index.
        where = "r.finished_at IS NULL" if open_only else "1"
        rows = await self._all(
            f"SELECT {_WORK_COLS} FROM runs r JOIN jobs j ON j.id = r.job_id WHERE {where} {rest}", args
        )
        return [WorkItem(*r) for r in rows]

    async def open_runs(self) -> list[WorkItem]:
        """Every run attempt that is pending, assigned or running."""
        return await self._work("ORDER BY r.triggered_at")

    async def work_items(self, keys: list[tuple[str, int]]) -> list[WorkItem]:
        """The given run attempts, with their jobs' type and payload."""
        wanted = set(keys)
        ids = sorted({k[0] for k in keys})
        items: list[WorkItem] = []
        for i in range(0, len(ids), 500):
            chunk = tuple(ids[i : i + 500])
            found = await self._work(
                f"AND r.run_id IN ({','.join('?' * len(chunk))})", chunk, open_only=False
            )
            items += [w for w in found if (w.run_id, w.attempt) in wanted]
        return items

    async def pending_runs(self, limit: int, now: int) -> list[tuple[str, int, frozenset[str]]]:
        """Up to ``limit`` attempts ready for an executor, with the tags each needs.

        Highest priority first, then the oldest trigger.
        """
        # The jobs are joined only to the attempts chosen, not to every pending one.
        rows = await self._all(
            "SELECT r.run_id, r.attempt, j.options, j.type FROM (SELECT run_id, attempt, job_id, priority,"
            " triggered_at FROM runs WHERE finished_at IS NULL AND state = 'PENDING'"
            " AND (not_before IS NULL OR not_before <= ?) ORDER BY priority DESC, triggered_at LIMIT ?) r"
            " JOIN jobs j ON j.id = r.job_id ORDER BY r.priority DESC, r.triggered_at",
            (now, limit),
        )
        return [(r[0], r[1], _needs(r[2], r[3])) for r in rows]

    async def fates_between(self, job_id: str, since: int, until: int) -> dict[int, tuple[str, str]]:
        """nominal -> (fate, its run's last attempt state or "") of the occurrences in [since, until]."""
        rows = await self._all(
            "SELECT o.nominal, o.fate, COALESCE((SELECT r.state FROM runs r WHERE r.run_id = o.run_id"
            " ORDER BY r.attempt DESC LIMIT 1), '') FROM occurrences o"
            " WHERE o.job_id = ? AND o.nominal >= ? AND o.nominal <= ?",
            (job_id, since, until),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def run_waits(self, job_id: str, run_id: str) -> list[str]:
        """Why a run was held back (its WAITING events: a concurrency key or rate limit), in order."""
        rows = await self._all(
            "SELECT message FROM events WHERE job_id = ? AND type = 'WAITING' AND run_id = ? ORDER BY seq",
            (job_id, run_id),
        )
        return list(dict.fromkeys(r[0] for r in rows))

    async def joins(self, job_id: str) -> tuple[int, int | None]:
        """How many submissions joined the job (debounce merges, singleton skips and replacements: its
        JOINED events), and the time of the last."""
        rows = await self._all(
            "SELECT COUNT(*), MAX(at) FROM events WHERE job_id = ? AND type = 'JOINED'", (job_id,)
        )
        return int(rows[0][0]), rows[0][1]

    async def open_keyed_runs(self) -> list[tuple[str, int, str, str, int]]:
        """(run id, attempt, state, concurrency key, limit) of the open attempts holding a key or
        waiting for one (the partial index runs_key: nothing to read when no job has a key)."""
        rows = await self._all(
            "SELECT run_id, attempt, state, concurrency_key, concurrency_limit FROM runs"
            " WHERE concurrency_key IS NOT NULL AND finished_at IS NULL"
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def next_retry(self, now: int) -> int | None:
        """When the earliest attempt waiting for its backoff becomes ready."""
        rows = await self._all(
            "SELECT MIN(not_before) FROM runs WHERE finished_at IS NULL AND state = 'PENDING'"
            " AND not_before > ?",
            (now,),
        )
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def load_by_node(self) -> dict[str, int]:
        """How many attempts each node holds (assigned or running)."""
        rows = await self._all(
            "SELECT node_id, COUNT(*) FROM runs WHERE finished_at IS NULL AND state != 'PENDING'"
            " GROUP BY node_id"
        )
        return {r[0]: r[1] for r in rows}

    async def node_load(self, now: int, slow_before: int) -> dict[str, NodeLoad]:
        """Per node: its open attempts, how many of them are scheduled after ``now``, and how many
        have been running since before ``slow_before``."""
        rows = await self._all(
            "SELECT node_id, COUNT(*), SUM(scheduled_at > ?), SUM(state = 'RUNNING' AND started_at < ?)"
            " FROM runs WHERE finished_at IS NULL AND state != 'PENDING'"
            " GROUP BY node_id",
            (now, slow_before),
        )
        return {r[0]: NodeLoad(r[1], r[2] or 0, r[3] or 0) for r in rows}

    async def assigned_before(self, before: int) -> list[WorkItem]:
        """Attempts assigned at or before ``before`` whose executor has not reported a start."""
        return await self._work(
            "AND r.state = 'ASSIGNED' AND r.assigned_at <= ? ORDER BY r.assigned_at", (before,)
        )

    async def held_by(self, node_id: str, assigned_before: int) -> list[WorkItem]:
        """Open attempts given to ``node_id`` at or before ``assigned_before``."""
        return await self._work(
            "AND r.state != 'PENDING' AND r.node_id = ? AND r.assigned_at <= ?", (node_id, assigned_before)
        )

    async def expired_leases(self, now: int) -> list[WorkItem]:
        """Attempts assigned or running whose lease ended before ``now``."""
        return await self._work(
            "AND r.state != 'PENDING' AND r.lease_until < ? ORDER BY r.lease_until", (now,)
        )

    async def held_of(self, node_id: str, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these attempts are open and held by ``node_id``."""
        held: set[tuple[str, int]] = set()
        for run_id, attempt in keys:
            rows = await self._all(
                "SELECT 1 FROM runs WHERE run_id = ? AND attempt = ? AND node_id = ? AND finished_at IS NULL",
                (run_id, attempt, node_id),
            )
            if rows:
                held.add((run_id, attempt))
        return held

    async def workers(self) -> list[WorkerRow]:
        """The registered workers, by id."""
        rows = await self._all(
            "SELECT id, boot_id, capacity, tags, handlers, address, server, state, registered_at, changed_at"
            " FROM workers ORDER BY id"
        )
        return [WorkerRow(*r) for r in rows]

    async def members(self) -> list[tuple[str, str, str, str]]:
        """The replicated membership changes: (id, grpc address, raft address, ACTIVE|REMOVED)."""
        rows = await self._all("SELECT id, grpc_address, raft_address, state FROM members ORDER BY id")
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def last_applied(self) -> int:
        """The index of the last command applied to this database."""
        rows = await self._all("SELECT value FROM meta WHERE key = 'last_applied'")
        return int(rows[0][0])
