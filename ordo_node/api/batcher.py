"""Groups concurrent single submissions into one Raft command.

Every SubmitJob call would otherwise be its own log entry, replicated and
applied on its own. While one group is being committed, the calls that
arrive wait together and form the next group (up to ``max_batch``): under
load a group holds as many calls as arrived during one commit, and a lone
call is never delayed. The command is not atomic: each job is created or
refused on its own, and each caller gets its own answer.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from .. import commands as c
from ..consensus import Consensus
from ..timeutil import now_us


class SubmitBatcher:
    """One group in flight at a time; the next one forms while it commits."""

    def __init__(self, node_id: str, consensus: Consensus, *, max_batch: int = 1000) -> None:
        self.node_id = node_id
        self.consensus = consensus
        self.max_batch = max_batch
        self._waiting: list[tuple[c.JobSpec, asyncio.Future[dict[str, Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, spec: c.JobSpec) -> dict[str, Any]:
        """Commit ``spec`` with whatever else is waiting; its own result:
        ``{"job_id", "created"}`` or a refusal ``{"error", "message"}``."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((spec, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            cmd = c.SubmitJobs(
                request_id=uuid.uuid4().hex,
                at=now_us(),
                node=self.node_id,
                jobs=tuple(spec for spec, _ in group),
                atomic=False,
            )
            try:
                result = await self.consensus.propose(cmd)
            except Exception as e:  # every caller of the group gets the error (UNAVAILABLE, ...)
                for _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            if "error" in result:  # the command as a whole failed (a bug, refused on every replica)
                answers = [result] * len(group)
            else:
                answers = [
                    err or {"job_id": job_id, "created": created}
                    for job_id, created, err in zip(
                        result["job_ids"], result["created"], result["errors"], strict=True
                    )
                ]
            for (_, fut), answer in zip(group, answers, strict=True):
                if not fut.done():
                    fut.set_result(answer)


class ProposalBatcher:
    """Merges concurrent commands (workers' outcomes and renewals) into one Raft entry.

    As :class:`SubmitBatcher`: one entry in flight at a time, and the commands
    that arrive meanwhile go together in the next, as a :class:`~ordo_node.commands.Batch`
    (a lone command goes as it is). Each keeps its request id, so a retry after
    an uncertain outcome is answered with the first result; each caller gets
    its own command's result.
    """

    def __init__(self, node_id: str, consensus: Consensus, *, max_batch: int = 500, max_bytes: int) -> None:
        self.node_id = node_id
        self.consensus = consensus
        self.max_batch = max_batch
        # The group's commands together, as their proposers encoded them: well under a command's limit.
        self.max_bytes = max_bytes
        self._waiting: list[tuple[c.Command, int, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.entries = 0  # Raft entries proposed, and the commands they held: for tests and figures
        self.merged = 0

    async def propose(self, cmd: c.Command, size: int) -> Any:
        """Commit ``cmd`` (``size``: its encoded bytes) with whatever else is waiting; its own result."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((cmd, size, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    def _next_group(self) -> list[tuple[c.Command, int, asyncio.Future[Any]]]:
        total = 0
        n = 0
        for _, size, _ in self._waiting[: self.max_batch]:
            if n and total + size > self.max_bytes:
                break
            total += size
            n += 1
        group, self._waiting = self._waiting[:n], self._waiting[n:]
        return group

    async def _flush(self) -> None:
        while self._waiting:
            group = self._next_group()
            cmds = tuple(cmd for cmd, _, _ in group)
            self.entries += 1
            self.merged += len(cmds)
            try:
                if len(cmds) == 1:
                    answers = [await self.consensus.propose(cmds[0])]
                else:
                    result = await self.consensus.propose(c.Batch(node=self.node_id, commands=cmds))
                    # A batch refused as a whole (a bug met on every replica) answers each the same.
                    answers = result["results"] if "results" in result else [result] * len(cmds)
            except Exception as e:  # every caller of the group gets the error (UNAVAILABLE, ...)
                for _, _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, _, fut), answer in zip(group, answers, strict=True):
                if not fut.done():
                    fut.set_result(answer)
