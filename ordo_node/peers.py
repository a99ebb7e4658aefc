"""gRPC channels from this node to every member's internal PeerService."""

from __future__ import annotations

import grpc

from .config import Config
from .pb import internal_pb2_grpc


class Peers:
    """One lazily opened channel and stub per member, this node included."""

    def __init__(self, config: Config) -> None:
        self.addresses = {m.id: m.grpc_address for m in config.members()}
        self._channels: dict[str, grpc.aio.Channel] = {}

    def stub(self, node_id: str) -> internal_pb2_grpc.PeerServiceStub:
        """The PeerService stub of ``node_id`` (KeyError for a stranger)."""
        channel = self._channels.get(node_id)
        if channel is None:
            channel = grpc.aio.insecure_channel(
                self.addresses[node_id], options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
            )
            self._channels[node_id] = channel
        return internal_pb2_grpc.PeerServiceStub(channel)

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
