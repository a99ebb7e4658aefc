"""A worker's link to the cluster: channels to its servers, its proposals, and the majority's clock.

It stands where a member's Consensus stands for the executor (see
:class:`~ordo_node.executor.Proposer`): the executor's run updates, lease
renewals and given-back attempts go to the server the worker is connected to
(WorkerService.Propose), which proposes them through Raft.
"""

from __future__ import annotations

import json
from collections import deque
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
_RETRY = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.CANCELLED,
}


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

        Raises Unavailable (retry: the command carries its request id) or DeadlineExceeded.
        """
        request = internal_pb2.WorkerProposal(worker_id=self.cfg.worker_id, command=c.encode(cmd))
        try:
            reply = await self.stub(self.address).Propose(
                request, timeout=timeout or PROPOSE_TIMEOUT, metadata=self.metadata
            )
        except grpc.aio.AioRpcError as e:
            where = f"{self.address}: {e.details() or e.code().name}"
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise DeadlineExceeded(where) from None
            if e.code() in _RETRY:
                raise Unavailable(where) from None
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument("command", where) from None
            raise OrdoError(f"{e.code().name}: {where}") from None
        return json.loads(reply.result_json)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
