"""The cluster's members as this node knows them, and gRPC channels to each.

Members come from the node's config (its peers) and from the replicated
``members`` table (nodes added or removed at run time through ClusterService),
so every node ends up with the same view once it has applied the same log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from .auth import PEER_KEY, peer_credential
from .channels import open_channel
from .config import Config, Peer
from .pb import internal_pb2_grpc
from .tls import peer_credentials

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]


class _Credential(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds this node's member credential to every call to a peer."""

    def __init__(self, value: str) -> None:
        self.value = value

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), (PEER_KEY, self.value))
        details = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        return await continuation(details, request)


class Peers:
    """The member list, and one lazily opened channel and stub per member (this node included)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._static = {m.id: m for m in config.members()}
        self._members = dict(self._static)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._retired: list[grpc.aio.Channel] = []  # of removed members, closed at the end

    def members(self) -> list[Peer]:
        """Every member, sorted by id."""
        return sorted(self._members.values(), key=lambda m: m.id)

    def get(self, node_id: str) -> Peer | None:
        """The member with that id, if any."""
        return self._members.get(node_id)

    def is_member(self, node_id: str) -> bool:
        """True for a current member."""
        return node_id in self._members

    def id_of_raft(self, raft_address: str) -> str | None:
        """The id of the member with that Raft address."""
        return next((m.id for m in self._members.values() if m.raft_address == raft_address), None)

    def sync(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Apply the replicated changes: rows of (id, grpc address, raft address, ACTIVE|REMOVED)."""
        members = dict(self._static)
        for node_id, grpc_address, raft_address, state in rows:
            if state == "ACTIVE":
                members[node_id] = Peer(node_id, grpc_address, raft_address)
            else:
                members.pop(node_id, None)
        for gone in set(self._channels) - set(members):
            self._retired.append(self._channels.pop(gone))
        self._members = members

    def stub(self, node_id: str) -> internal_pb2_grpc.PeerServiceStub:
        """The PeerService stub of ``node_id`` (KeyError for a stranger)."""
        channel = self._channels.get(node_id)
        if channel is None:
            channel = self._channels[node_id] = self._open(self._members[node_id].grpc_address)
        return internal_pb2_grpc.PeerServiceStub(channel)

    def _open(self, address: str) -> grpc.aio.Channel:
        """A channel to a peer: TLS when this node serves TLS, this node's credential on every call."""
        interceptors = [_Credential(peer_credential(self.config.secret, self.config.node_id))]
        tls = self.config.tls
        return open_channel(
            address,
            peer_credentials(tls),
            server_name=tls.server_name if tls else "",
            options=CHANNEL_OPTIONS,
            interceptors=interceptors,
        )

    async def close(self) -> None:
        """Close every channel."""
        for channel in [*self._channels.values(), *self._retired]:
            await channel.close()
        self._channels.clear()
        self._retired.clear()
