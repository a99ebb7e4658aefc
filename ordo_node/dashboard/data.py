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
import json
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
STATUS_TIMEOUT = 3.0

StatusFn = Callable[[], Coroutine[Any, Any, ordo_pb2.ClusterStatus]]


class Unavailable(Exception):
    """The data cannot be read right now (the node is starting or stopping); try again."""


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def _json_text(value: Any) -> str:
    return "" if value is None else _clip(json.dumps(value, ensure_ascii=False))


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

    def __init__(self, db: Path, status: StatusFn, loop: asyncio.AbstractEventLoop) -> None:
        self.db = db
        self._status = status
        self._loop = loop

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

    def jobs(self, state: str, limit: int) -> dict[str, Any]:
        """The newest ``limit`` jobs (in ``state``, if given), without payloads."""
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_JOB_COLS} FROM jobs {where} ORDER BY rowid DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        jobs = []
        for row in rows:
            job = asdict(_job(row))
            for heavy in ("payload", "options", "runs", "position"):
                del job[heavy]
            jobs.append(job)
        return {"state": state, "limit": limit, "jobs": jobs}

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

    def job(self, job_id: str) -> dict[str, Any] | None:
        """One job with its newest attempts, history events and occurrences; None if unknown."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchall()
            if not rows:
                return None
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
        attempts = []
        for row in runs:
            run = asdict(_run(row))
            run["result"] = _json_text(run["result"])
            run["error"] = _clip(run["error"])
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
