"""The dashboard's actions on a job: cancel, retry, pause, resume and run now.

Each goes through the same code as the gRPC API (``api/jobs.py``: the
JobService's ``cancel``, ``retry``, ``pause`` and ``trigger_now``), so it is
proposed through Raft and a follower's proposal reaches the leader the way an
RPC's does; the history entry it writes names who asked (``by``).

Who may act: with ``[auth]`` tokens, an admin token, named in the history by
its name; a read token may look but not act. Without tokens the port is open
(to the node's own names only, see server.py) and the actor is
:data:`OPEN_ACTOR`. Cross-site requests are refused by the server before any
of this runs (server.py: POST only, same origin, a CSRF header).

Threading: :meth:`Actions.run` is called on an HTTP server thread; the
coroutine is handed to the node's event loop and awaited with a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ..auth import Tokens
from ..errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OrdoError,
    PermissionDenied,
    Unavailable,
)
from ..pb import ordo_pb2

# The history's name for whoever acts on a port without tokens.
OPEN_ACTOR = "dashboard"
# Seconds an action may take to commit (an election in between included).
ACTION_TIMEOUT = 15.0
ACTIONS = ("cancel", "retry", "pause", "resume", "run-now")

# HTTP statuses of the errors an action can meet, nearest class first.
STATUSES: tuple[tuple[type[OrdoError], int], ...] = (
    (InvalidArgument, 400),
    (PermissionDenied, 403),
    (NotFound, 404),
    (FailedPrecondition, 409),
    (AlreadyExists, 409),
    (Unavailable, 503),
    (DeadlineExceeded, 504),
)


class JobActions(Protocol):
    """What the dashboard needs of the JobService (``api/jobs.py``)."""

    async def cancel(self, job_id: str, by: str = "") -> ordo_pb2.Job: ...

    async def retry(self, job_id: str, by: str = "") -> ordo_pb2.Job: ...

    async def pause(self, job_id: str, note: str, pause: bool, by: str = "") -> ordo_pb2.Job: ...

    async def trigger_now(self, job_id: str, by: str = "") -> ordo_pb2.Job: ...


class ActionFailed(Exception):
    """An action was refused or failed; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Actor:
    """Who a request comes from: the name its action is recorded under, or why it may not act."""

    name: str = ""
    refusal: str = ""

    @property
    def may_act(self) -> bool:
        return not self.refusal


def status_of(error: OrdoError) -> int:
    """The HTTP status of an error an action met."""
    for cls, status in STATUSES:
        if isinstance(error, cls):
            return status
    return 500


class Actions:
    """Runs the dashboard's actions on the node's loop; decides who may act."""

    def __init__(self, jobs: JobActions, tokens: Tokens, loop: asyncio.AbstractEventLoop) -> None:
        self.jobs = jobs
        self.tokens = tokens
        self._loop = loop

    def actor(self, presented: str | None) -> Actor:
        """Who presents the token ``presented`` (from the Authorization header or cookie)."""
        if not self.tokens.enabled:
            return Actor(OPEN_ACTOR)
        token = self.tokens.find(presented)
        if token is None:
            return Actor(refusal="no token: actions need an admin token")
        if token.role != "admin":
            why = f"token '{token.name}' is a {token.role} token; actions need an admin token"
            return Actor(token.name, why)
        return Actor(token.name)

    def _call(self, action: str, job_id: str, by: str) -> Coroutine[Any, Any, ordo_pb2.Job]:
        match action:
            case "cancel":
                return self.jobs.cancel(job_id, by)
            case "retry":
                return self.jobs.retry(job_id, by)
            case "pause" | "resume":
                return self.jobs.pause(job_id, "", action == "pause", by)
            case "run-now":
                return self.jobs.trigger_now(job_id, by)
        raise ActionFailed(404, f"no action {action[:40]!r}; one of {', '.join(ACTIONS)}")

    def run(self, action: str, job_id: str, actor: Actor) -> ordo_pb2.Job:
        """Do ``action`` on the job as ``actor``; the job afterwards. Raises ActionFailed."""
        if not actor.may_act:
            raise ActionFailed(403, actor.refusal)
        coro = self._call(action, job_id, actor.name)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop is closed: the node is stopping
            coro.close()
            raise ActionFailed(503, "the node is shutting down") from None
        try:
            return future.result(ACTION_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise ActionFailed(
                504, f"not committed within {ACTION_TIMEOUT:g} s; it may still be: look at the job's history"
            ) from None
        except OrdoError as e:
            raise ActionFailed(status_of(e), str(e)) from None
