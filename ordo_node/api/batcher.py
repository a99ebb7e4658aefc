"""Groups concurrent requests into one Raft command.

Every SubmitJob call, and every proposal of a worker, would otherwise be its
own log entry, replicated and applied on its own. While one group is being
committed, the requests that arrive wait together and form the next group (up
to ``max_batch``, and ``max_bytes`` when they say their size): under load a
group holds as many as arrived during one commit, and a lone request is never
delayed. Each caller gets its own answer.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Generic, TypeVar

from .. import commands as c
from ..consensus import Consensus
from ..timeutil import now_us

T = TypeVar("T")


class _Grouper(Generic[T]):
    """One group in flight at a time; the next one forms while it commits (see :meth:`_commit`)."""

    def __init__(self, node_id: str, consensus: Consensus, *, max_batch: int, max_bytes: int) -> None:
        self.node_id = node_id
        self.consensus = consensus
        self.max_batch = max_batch
        self.max_bytes = max_bytes
        self._waiting: list[tuple[T, int, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.entries = 0  # Raft entries proposed, and the requests they held: for tests and figures
        self.merged = 0

    async def _add(self, item: T, size: int) -> Any:
        """Commit ``item`` (``size``: its encoded bytes, or 0) with whatever else is waiting; its answer."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, size, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    def _next_group(self) -> list[tuple[T, int, asyncio.Future[Any]]]:
        """The first waiting requests, within max_batch and max_bytes (a request alone may exceed it)."""
        total = 0
        n = 0
        for _, size, _ in self._waiting[: self.max_batch]:
            if n and total + size > self.max_bytes:
                break
            total += size
            n += 1
        group, self._waiting = self._waiting[:n], self._waiting[n:]
        return group

    async def _commit(self, items: tuple[T, ...]) -> list[Any]:
        """Propose one command for ``items``; an answer for each, in order."""
        raise NotImplementedError

    async def _flush(self) -> None:
        while self._waiting:
            group = self._next_group()
            self.entries += 1
            self.merged += len(group)
            try:
                answers = await self._commit(tuple(item for item, _, _ in group))
            except Exception as e:  # every caller of the group gets the error (UNAVAILABLE, ...)
                for _, _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, _, fut), answer in zip(group, answers, strict=True):
                if not fut.done():
                    fut.set_result(answer)


class SubmitBatcher(_Grouper[c.JobSpec]):
    """Single submissions, as one SubmitJobs command. The command is not atomic: each job is
    created or refused on its own."""

    def __init__(self, node_id: str, consensus: Consensus, *, max_batch: int = 1000) -> None:
        # A request holds at most max_request_bytes, and a command up to twice that: no byte bound here.
        super().__init__(node_id, consensus, max_batch=max_batch, max_bytes=0)

    async def submit(self, spec: c.JobSpec) -> dict[str, Any]:
        """Commit ``spec`` with whatever else is waiting; its own result:
        ``{"job_id", "created", "note"}`` or a refusal ``{"error", "message"}``."""
        answer: dict[str, Any] = await self._add(spec, 0)
        return answer

    async def _commit(self, items: tuple[c.JobSpec, ...]) -> list[Any]:
        cmd = c.SubmitJobs(
            request_id=uuid.uuid4().hex, at=now_us(), node=self.node_id, jobs=items, atomic=False
        )
        result = await self.consensus.propose(cmd)
        if "error" in result:  # the command as a whole failed (a bug, refused on every replica)
            return [result] * len(items)
        notes = result.get("notes") or [""] * len(items)  # debounce, singleton
        return [
            err or {"job_id": job_id, "created": created, "note": note}
            for job_id, created, err, note in zip(
                result["job_ids"], result["created"], result["errors"], notes, strict=True
            )
        ]


class ProposalBatcher(_Grouper[c.Command]):
    """Concurrent commands (workers' outcomes and renewals) as one Raft entry: a
    :class:`~ordo_node.commands.Batch` (a lone command goes as it is). Each keeps its request id,
    so a retry after an uncertain outcome is answered with the first result; each caller gets its
    own command's result. ``max_bytes`` bounds the group's commands together, as their proposers
    encoded them: well under a command's limit.
    """

    def __init__(self, node_id: str, consensus: Consensus, *, max_batch: int = 500, max_bytes: int) -> None:
        super().__init__(node_id, consensus, max_batch=max_batch, max_bytes=max_bytes)

    async def propose(self, cmd: c.Command, size: int) -> Any:
        """Commit ``cmd`` (``size``: its encoded bytes) with whatever else is waiting; its own result."""
        return await self._add(cmd, size)

    async def _commit(self, items: tuple[c.Command, ...]) -> list[Any]:
        if len(items) == 1:
            return [await self.consensus.propose(items[0])]
        result = await self.consensus.propose(c.Batch(node=self.node_id, commands=items))
        # A batch refused as a whole (a bug met on every replica) answers each the same.
        return result["results"] if "results" in result else [result] * len(items)
