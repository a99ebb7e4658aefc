"""A worker's link to the cluster: channels to its servers, its proposals, and the majority's clock.

It stands where a member's Consensus stands for the executor (see
:class:`~ordo_node.executor.Proposer`): the executor's run updates, lease
renewals and given-back attempts go to the server the worker is connected to
(WorkerService.Propose), which proposes them through Raft.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from .. import commands as c
from ..channels import client_credentials, open_channel
from ..errors import DeadlineExceeded, InvalidArgument, OrdoError, Unavailable
from ..pb import internal_pb2, internal_pb2_grpc
from ..timeutil import now_us
from .config import WorkerConfig

# Round trips slower than this tell little about the clocks.
MAX_RTT_US = 250_000
SAMPLES = 8
PROPOSE_TIMEOUT = 10.0
# Codes after which a proposal may be sent again (it carries its request id).
_RETRY = {"UNAVAILABLE", "FAILED_PRECONDITION", "CANCELLED"}


def _error(code: str, where: str) -> OrdoError:
    """The error a proposal's refusal (a gRPC status code's name) stands for."""
    if code == "DEADLINE_EXCEEDED":
        return DeadlineExceeded(where)
    if code in _RETRY:
        return Unavailable(where)
    if code == "INVALID_ARGUMENT":
        return InvalidArgument("command", where)
    return OrdoError(f"{code}: {where}")


class Remote:
    """The servers, the one the worker is connected to, and the clock readings from it."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.address = cfg.servers[0]
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {cfg.token}"),) if cfg.token else ()
        )
        self._credentials = client_credentials(
            cfg.ca_file or None, cfg.cert_file or None, cfg.key_file or None
        )
        self._channels: dict[str, grpc.aio.Channel] = {}
        # (round trip, offset) of the last heartbeats' answers, both in microseconds.
        self._samples: deque[tuple[int, int]] = deque(maxlen=SAMPLES)
        # While a stream to the leader is up: writes a message on it (False when it cannot).
        self._stream: Callable[[internal_pb2.WorkerMessage], Awaitable[bool]] | None = None
        self._answers: dict[int, asyncio.Future[internal_pb2.ServerProposed]] = {}
        self._seq = 0
        self.on_stream = 0  # proposals sent on the stream, and by a call of their own
        self.by_call = 0

    def attach(self, send: Callable[[internal_pb2.WorkerMessage], Awaitable[bool]]) -> None:
        """A stream to the leader is up: proposals go on it."""
        self._stream = send

    def detach(self) -> None:
        """The stream ended: proposals waiting for their answer fail (they are retried)."""
        self._stream = None
        for fut in self._answers.values():
            if not fut.done():
                fut.set_exception(Unavailable(f"{self.address}: the stream ended"))
        self._answers.clear()

    def answered(self, answer: internal_pb2.ServerProposed) -> None:
        """The leader's answer to a proposal made on the stream."""
        fut = self._answers.pop(answer.seq, None)
        if fut is not None and not fut.done():
            fut.set_result(answer)

    def channel(self, address: str) -> grpc.aio.Channel:
        """A channel to ``address`` (one per address, kept)."""
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = open_channel(
                address, self._credentials, server_name=self.cfg.server_name
            )
        return ch

    def stub(self, address: str) -> internal_pb2_grpc.WorkerServiceStub:
        return internal_pb2_grpc.WorkerServiceStub(self.channel(address))

    @property
    def clock_offset_us(self) -> int:
        """This machine's wall clock minus the majority's, from the sample of the fastest round trip."""
        if not self._samples:
            return 0
        return min(self._samples)[1]

    def observe(self, time: internal_pb2.ServerTime) -> None:
        """A heartbeat's answer: the leader's reading of the majority's clock, and our send time."""
        received = now_us()
        rtt = received - time.echo_sent_us
        if time.echo_sent_us <= 0 or not 0 <= rtt <= MAX_RTT_US:
            return
        # Read by the leader about half-way through the round trip.
        self._samples.append((rtt, (time.echo_sent_us + received) // 2 - time.majority_now_us))

    async def propose(self, cmd: c.Command, timeout: float | None = None) -> Any:
        """Send one of this worker's commands to its server; the state machine's result.

        On the stream to the leader while it is up, else by a call of its own. Raises
        Unavailable (retry: the command carries its request id) or DeadlineExceeded.
        """
        blob = c.encode(cmd)
        send = self._stream
        if send is not None:
            self._seq += 1
            seq = self._seq
            fut: asyncio.Future[internal_pb2.ServerProposed] = asyncio.get_running_loop().create_future()
            self._answers[seq] = fut
            try:
                proposal = internal_pb2.WorkerPropose(seq=seq, command=blob)
                if await send(internal_pb2.WorkerMessage(propose=proposal)):
                    self.on_stream += 1
                    try:
                        answer = await asyncio.wait_for(fut, timeout or PROPOSE_TIMEOUT)
                    except TimeoutError:
                        raise DeadlineExceeded(f"{self.address}: no answer on the stream") from None
                    if answer.code:
                        raise _error(answer.code, f"{self.address}: {answer.message or answer.code}")
                    return json.loads(answer.result_json)
            finally:
                self._answers.pop(seq, None)
        # No stream (or it could not be written): a call of its own.
        self.by_call += 1
        request = internal_pb2.WorkerProposal(worker_id=self.cfg.worker_id, command=blob)
        try:
            reply = await self.stub(self.address).Propose(
                request, timeout=timeout or PROPOSE_TIMEOUT, metadata=self.metadata
            )
        except grpc.aio.AioRpcError as e:
            raise _error(e.code().name, f"{self.address}: {e.details() or e.code().name}") from None
        return json.loads(reply.result_json)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
