"""What the dashboard shows, read on the HTTP server's threads.

Threading contract: every method here runs on one of the HTTP server's
threads. Tables are read through a fresh read-only SQLite connection per call
(``mode=ro``: this code cannot write); WAL mode lets it read while the tick
thread applies. The cluster view is the one ``ClusterService`` gives (leader,
term, each member's role, reachability and load, and the registered workers):
its coroutine is handed to the node's event loop and awaited here with a
timeout, so a busy loop or an unreachable peer slows this page, never the node.

Every read is bounded: lists have a limit, and recent failures are looked for
among the newest :data:`FAILURE_LOOKBACK` history events only, so a poll costs
the same on a database of a million jobs as on a small one. Jobs and runs
are decoded with the column lists and row decoders of ``queries.py``, so they
read the same here as over gRPC.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..pb import ordo_pb2
from ..queries import _JOB_COLS, _RUN_COLS, _job, _run
from ..timeutil import now_us
from .actions import Actions

# How many columns _RUN_COLS selects: what follows them in a row is the dashboard's own.
_RUN_WIDTH = len(_RUN_COLS.split(","))

# In the order the proto declares them, which is roughly a job's life.
JOB_STATES = tuple(
    v.name.removeprefix("JOB_STATE_") for v in ordo_pb2.JobState.DESCRIPTOR.values if v.number != 0
)
FAILURE_TYPES = ("FAILED", "LOST", "DEAD_LETTERED")
FAILURE_LOOKBACK = 50_000
DETAIL_LIMIT = 200
TEXT_LIMIT = 4000
# A traceback is bounded where it is stored; this only guards the page.
TRACEBACK_LIMIT = 20_000
STATUS_TIMEOUT = 3.0
# States in which a recurring job's schedule is alive (paused included): the schedules view
# reads these through the jobs_state index, never the whole table.
LIVE_STATES = ("SCHEDULED", "TRIGGERED", "WAITING", "RUNNING", "RETRYING", "PAUSED")
SCHEDULES_LIMIT = 200
# The last fates shown per schedule.
FATES_SHOWN = 8
# The chart: minutes shown, and how many of the newest runs it looks at (a bound on its cost).
CHART_MINUTES = 30
CHART_LOOKBACK = 20_000
MINUTE = 60_000_000
OUTCOMES = ("SUCCEEDED", "FAILED", "LOST", "CANCELLED")
FATE_FIELDS = ("nominal", "fire_at", "fate", "reason", "run_id", "outcome")

StatusFn = Callable[[], Coroutine[Any, Any, ordo_pb2.ClusterStatus]]


class Unavailable(Exception):
    """The data cannot be read right now (the node is starting or stopping); try again."""


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def _worker(w: ordo_pb2.WorkerStatus, now: int) -> dict[str, Any]:
    """A registered worker: where it is connected, its load and its last heartbeat (and how old it is)."""
    heartbeat = w.last_heartbeat.ToMicroseconds() if w.HasField("last_heartbeat") else 0
    return {
        "worker_id": w.worker_id,
        "connected_to": w.connected_to,
        "address": re.sub(r"^(ipv4|ipv6):", "", w.address),
        "capacity": w.capacity,
        "running": w.running_count,
        "last_heartbeat": heartbeat,
        # Seconds, by this node's clock (heartbeats carry the leader's); None when none was heard.
        "heartbeat_age": round(max(0, now - heartbeat) / 1e6, 1) if heartbeat else None,
        "tags": list(w.tags),
        "handlers": list(w.handlers),
        "draining": w.draining,
        "registered_at": w.registered_at.ToMicroseconds() if w.HasField("registered_at") else 0,
    }


class Dashboard:
    """Read-only views of one node's database and of the cluster, as plain JSON-ready dicts."""

    def __init__(
        self, db: Path, status: StatusFn, loop: asyncio.AbstractEventLoop, actions: Actions | None = None
    ) -> None:
        self.db = db
        self._status = status
        self._loop = loop
        # The actions on jobs (cancel, retry, pause, resume, run now); None: this dashboard only reads.
        self.actions = actions

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
        except sqlite3.OperationalError as e:
            raise Unavailable(f"the node's database cannot be read yet: {e}") from None
        try:
            yield conn
        except sqlite3.OperationalError as e:
            raise Unavailable(f"the node's database is busy: {e}") from None
        finally:
            conn.close()

    def cluster(self) -> dict[str, Any]:
        """Leader, term, indexes, every member's role, reachability and load, and the registered workers."""
        coro = self._status()
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop is closed: the node is stopping
            coro.close()
            raise Unavailable("the node is shutting down") from None
        try:
            st = future.result(STATUS_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise Unavailable(f"no cluster status within {STATUS_TIMEOUT:g} s") from None
        except Exception as e:
            raise Unavailable(f"cluster status failed: {type(e).__name__}: {e}") from None
        return {
            "node_id": st.node_id,
            "leader_id": st.leader_id,
            "term": st.term,
            "commit_index": st.commit_index,
            "applied_index": st.applied_index,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "leader": n.node_id == st.leader_id,
                    "role": n.role,
                    "reachable": n.reachable,
                    "grpc_address": n.grpc_address,
                    "raft_address": n.raft_address,
                    "capacity": n.capacity,
                    "running": n.running_count,
                    "tags": list(n.tags),
                    "applied_index": n.applied_index,
                    "draining": n.draining,
                }
                for n in st.nodes
            ],
            "workers": [_worker(w, now_us()) for w in st.workers],
        }

    def counts(self) -> dict[str, Any]:
        """How many jobs are in each state (every state named, zeros included)."""
        with self._read() as conn:
            found = dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        jobs = {state: int(found.pop(state, 0)) for state in JOB_STATES}
        jobs.update(found)  # a state this build does not know still shows
        return {"jobs": jobs, "total": sum(jobs.values())}

    def jobs(self, state: str, limit: int, query: str = "", before: int = 0) -> dict[str, Any]:
        """The newest ``limit`` jobs, without payloads: in ``state`` if given; whose id or name
        contains ``query`` (any case) if given (a search reads every id and name: on a large
        database it costs a table scan per poll while it is on); older than the list position
        ``before`` if given. ``next`` is the position to ask the next page for (0: no more)."""
        where: list[str] = []
        args: list[Any] = []
        if state:
            where.append("state = ?")
            args.append(state)
        if query:
            # Any part of an id (its start, or the end the page shows), or of a name in any case.
            where.append("(instr(id, ?) > 0 OR instr(lower(name), ?) > 0)")
            args += [query.lower(), query.lower()]
        if before:
            where.append("rowid < ?")
            args.append(before)
        sql = f"SELECT rowid, {_JOB_COLS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            rows = conn.execute(f"{sql} ORDER BY rowid DESC LIMIT ?", (*args, limit + 1)).fetchall()
        jobs = []
        for row in rows[:limit]:
            job = asdict(_job(row[1:], position=row[0]))
            options = job.pop("options")
            job["cron"] = options.get("cron", "")
            job["timezone"] = options.get("timezone", "") if job["cron"] else ""
            for heavy in ("payload", "runs"):
                del job[heavy]
            jobs.append(job)
        more = len(rows) > limit
        return {
            "state": state,
            "q": query,
            "before": before,
            "limit": limit,
            "jobs": jobs,
            "next": jobs[-1]["position"] if more else 0,
        }

    def schedules(self, limit: int = SCHEDULES_LIMIT) -> dict[str, Any]:
        """The live recurring jobs (paused ones included), newest first: spec, time zone, next fire
        time, policies, and the fates of their last occurrences."""
        marks = ", ".join("?" for _ in LIVE_STATES)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT rowid, {_JOB_COLS} FROM jobs WHERE state IN ({marks}) AND options LIKE '%\"cron\"%'"
                " ORDER BY rowid DESC LIMIT ?",
                (*LIVE_STATES, limit + 1),
            ).fetchall()
            items = []
            for row in rows[:limit]:
                job = _job(row[1:], position=row[0])
                if not job.options.get("cron"):
                    continue
                fates = conn.execute(
                    "SELECT o.nominal, o.fire_at, o.fate, o.reason, COALESCE(o.run_id, ''),"
                    " COALESCE((SELECT r.state FROM runs r WHERE r.run_id = o.run_id"
                    " ORDER BY r.attempt DESC LIMIT 1), '')"
                    " FROM occurrences o WHERE o.job_id = ? ORDER BY o.nominal DESC LIMIT ?",
                    (job.job_id, FATES_SHOWN),
                ).fetchall()
                o = job.options
                items.append(
                    {
                        "job_id": job.job_id,
                        "name": job.name,
                        "type": job.type,
                        "state": job.state,
                        "paused": job.state == "PAUSED",
                        "cron": o["cron"],
                        "timezone": o.get("timezone") or "UTC",
                        "next_fire": job.next_fire,
                        "overlap": o.get("overlap", "ALLOW"),
                        "catch_up": o.get("catch_up", "ONE"),
                        "max_runs": o.get("max_runs", 0),
                        "occurrences": job.occurrences,
                        "last": [dict(zip(FATE_FIELDS, f, strict=True)) for f in fates],
                    }
                )
        return {"schedules": items, "limit": limit, "more": len(rows) > limit}

    def chart(self, now: int | None = None, minutes: int = CHART_MINUTES) -> dict[str, Any]:
        """Per minute (UTC) of the last ``minutes``: attempts finished by outcome, and trigger lateness.

        Lateness is how long after its scheduled time a run was triggered (0 for a one-off
        job triggered ahead of it); per minute its median and maximum, in milliseconds. Only
        the newest CHART_LOOKBACK attempts are looked at.
        """
        now = now_us() if now is None else now
        end = now - now % MINUTE + MINUTE
        start = end - minutes * MINUTE
        with self._read() as conn:
            newest = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()[0]
            rows = conn.execute(
                "SELECT state, finished_at, attempt, triggered_at, scheduled_at FROM runs"
                " WHERE rowid > ? AND (finished_at >= ? OR (attempt = 1 AND triggered_at >= ?))",
                (newest - CHART_LOOKBACK, start, start),
            ).fetchall()
        outcomes: list[dict[str, int]] = [dict.fromkeys(OUTCOMES, 0) for _ in range(minutes)]
        lateness: list[list[float]] = [[] for _ in range(minutes)]
        for state, finished, attempt, triggered, scheduled in rows:
            if finished is not None and start <= finished < end and state in OUTCOMES:
                outcomes[(finished - start) // MINUTE][state] += 1
            if attempt == 1 and start <= triggered < end:
                lateness[(triggered - start) // MINUTE].append(max(0, triggered - scheduled) / 1000)
        buckets = []
        for i in range(minutes):
            late = sorted(lateness[i])
            buckets.append(
                {
                    "start": start + i * MINUTE,
                    "outcomes": outcomes[i],
                    "triggered": len(late),
                    "late_p50_ms": round(late[len(late) // 2], 1) if late else None,
                    "late_max_ms": round(late[-1], 1) if late else None,
                }
            )
        return {"minutes": buckets, "outcomes": list(OUTCOMES), "minute_us": MINUTE, "now": now}

    def recent(self, limit: int) -> dict[str, Any]:
        """The newest run attempts, and the newest failures with their error text."""
        with self._read() as conn:
            runs = conn.execute(
                f"SELECT {_RUN_COLS}, (SELECT j.name FROM jobs j WHERE j.id = runs.job_id),"
                " (SELECT j.type FROM jobs j WHERE j.id = runs.job_id)"
                " FROM runs ORDER BY rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
            newest = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            marks = ", ".join("?" for _ in FAILURE_TYPES)
            failures = conn.execute(
                "SELECT e.seq, e.job_id, e.type, e.at, e.node_id, COALESCE(e.run_id, ''),"
                " COALESCE(e.attempt, 0), e.message, COALESCE(j.name, ''), r.error"
                " FROM events e LEFT JOIN jobs j ON j.id = e.job_id"
                " LEFT JOIN runs r ON r.run_id = e.run_id AND r.attempt = e.attempt"
                f" WHERE e.seq > ? AND e.type IN ({marks}) ORDER BY e.seq DESC LIMIT ?",
                (newest - FAILURE_LOOKBACK, *FAILURE_TYPES, limit),
            ).fetchall()
        return {
            "runs": [self._run_summary(r) for r in runs],
            "failures": [
                {
                    "seq": f[0],
                    "job_id": f[1],
                    "type": f[2],
                    "at": f[3],
                    "node_id": f[4],
                    "run_id": f[5],
                    "attempt": f[6],
                    "name": f[8],
                    # The run's error in full; the event's message says why for LOST and DEAD_LETTERED.
                    "error": _clip(f[9] if f[2] == "FAILED" and f[9] else f[7]),
                }
                for f in failures
            ],
        }

    @staticmethod
    def _run_summary(row: Any) -> dict[str, Any]:
        width = _RUN_WIDTH
        run = asdict(_run(row[:width]))
        del run["result"], run["traceback"]  # a list shows the error; the job's page the traceback
        run["error"] = _clip(run["error"])
        run["name"] = row[width] or ""
        run["type"] = row[width + 1] or ""
        return run

    def last_seq(self, job_id: str) -> int:
        """The seq of the newest entry of the job's history on this node (0: none)."""
        with self._read() as conn:
            sql = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?"
            row = conn.execute(sql, (job_id,)).fetchone()
        return int(row[0])

    def action_event(self, job_id: str, after: int, by: str) -> dict[str, Any] | None:
        """The entry an action by ``by`` wrote to the job's history after seq ``after`` (the first
        that names ``by``, else the first at all: a run may be assigned in between); None if none."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT seq, type, at, node_id, message FROM events WHERE job_id = ? AND seq > ?"
                " ORDER BY seq LIMIT 20",
                (job_id, after),
            ).fetchall()
        names = ("seq", "type", "at", "node_id", "message")
        events = [dict(zip(names, row, strict=True)) for row in rows]
        return next((e for e in events if f"by {by}" in e["message"]), events[0] if events else None)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """One job with its newest attempts, history events and occurrences; None if unknown.

        ``job_id`` may be a unique prefix of the id (of 4 characters or more).
        """
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchall()
            if not rows and len(job_id) >= 4:
                ids = conn.execute(
                    "SELECT id FROM jobs WHERE id >= ? AND id < ? LIMIT 2", (job_id, job_id + "\U0010ffff")
                ).fetchall()
                if len(ids) == 1:
                    job_id = ids[0][0]
                    rows = conn.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchall()
            if not rows:
                return None
            payload_text = rows[0][3]
            runs = conn.execute(
                f"SELECT {_RUN_COLS} FROM runs WHERE job_id = ?"
                " ORDER BY triggered_at DESC, run_id DESC, attempt DESC LIMIT ?",
                (job_id, DETAIL_LIMIT),
            ).fetchall()
            events = conn.execute(
                "SELECT seq, type, at, node_id, COALESCE(run_id, ''), COALESCE(attempt, 0), message"
                " FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT ?",
                (job_id, DETAIL_LIMIT),
            ).fetchall()
            occurrences = conn.execute(
                "SELECT o.nominal, o.fire_at, o.fate, o.reason, COALESCE(o.run_id, ''), o.decided_at,"
                " COALESCE((SELECT r.state FROM runs r WHERE r.run_id = o.run_id"
                " ORDER BY r.attempt DESC LIMIT 1), ''),"
                " (SELECT COUNT(*) FROM runs r WHERE r.run_id = o.run_id)"
                " FROM occurrences o WHERE o.job_id = ? ORDER BY o.nominal DESC LIMIT ?",
                (job_id, DETAIL_LIMIT),
            ).fetchall()
            totals = conn.execute(
                "SELECT (SELECT COUNT(*) FROM runs WHERE job_id = ?),"
                " (SELECT COUNT(*) FROM events WHERE job_id = ?),"
                " (SELECT COUNT(*) FROM occurrences WHERE job_id = ?)",
                (job_id, job_id, job_id),
            ).fetchone()
        job = asdict(_job(rows[0]))
        del job["runs"], job["position"]
        job["payload_json"] = _clip(payload_text)
        attempts = []
        for row in runs:
            run = asdict(_run(row))
            # The stored JSON text as it is: parsing it would round large integers in the page.
            run["result"] = _clip(row[10] or "")
            run["error"] = _clip(run["error"])
            run["traceback"] = _clip(run["traceback"], TRACEBACK_LIMIT)
            attempts.append(run)
        return {
            "job": job,
            "runs": attempts,
            "runs_total": totals[0],
            "history": [
                dict(zip(("seq", "type", "at", "node_id", "run_id", "attempt", "message"), e, strict=True))
                for e in events
            ],
            "history_total": totals[1],
            "occurrences": [
                dict(
                    zip(
                        (
                            "nominal",
                            "fire_at",
                            "fate",
                            "reason",
                            "run_id",
                            "decided_at",
                            "outcome",
                            "attempts",
                        ),
                        o,
                        strict=True,
                    )
                )
                for o in occurrences
            ],
            "occurrences_total": totals[2],
            "limit": DETAIL_LIMIT,
        }
