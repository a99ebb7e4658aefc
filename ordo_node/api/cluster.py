"""ClusterService: who leads, how far the log is, and what every node runs."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import grpc

from .. import commands as c
from ..config import Config
from ..consensus import Consensus
from ..errors import AlreadyExists, FailedPrecondition, NotFound
from ..executor import Executor
from ..pb import internal_pb2, ordo_pb2, ordo_pb2_grpc
from ..peers import Peers
from ..queries import Queries
from ..timeutil import now_us
from ..workerhub import WorkerHub
from . import validate as v
from .convert import running_runs
from .errors import raise_refusal, rpc
from .peer import executor_status
from .workers import worker_status

STATUS_TIMEOUT = 1.0
log = logging.getLogger("ordo_node.cluster")


class ClusterService(ordo_pb2_grpc.ClusterServiceServicer):  # type: ignore[misc]
    """The cluster as this node sees it, asking every member for its executor status."""

    def __init__(
        self,
        config: Config,
        consensus: Consensus,
        executor: Executor,
        peers: Peers,
        queries: Queries,
        hub: WorkerHub,
    ) -> None:
        self.hub = hub
        self.queries = queries
        self.config = config
        self.consensus = consensus
        self.executor = executor
        self.peers = peers

    async def _status(self, node_id: str) -> internal_pb2.ExecutorStatus | None:
        if node_id == self.config.node_id:
            return executor_status(self.executor, self.consensus, node_id)
        try:
            status: internal_pb2.ExecutorStatus = await self.peers.stub(node_id).GetExecutorStatus(
                internal_pb2.ExecutorStatusRequest(), timeout=STATUS_TIMEOUT
            )
            return status
        except grpc.RpcError:
            return None

    @rpc
    async def GetClusterStatus(
        self, request: ordo_pb2.GetClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.ClusterStatus:
        """Leader, term, commit index and every node's role, reachability and running runs."""
        return await self.status()

    async def status(self) -> ordo_pb2.ClusterStatus:
        """The cluster status message."""
        members = self.peers.members()
        statuses = await asyncio.gather(*(self._status(m.id) for m in members))
        leader = self.consensus.leader_id() or ""
        nodes = []
        for m, st in zip(members, statuses, strict=True):
            node = ordo_pb2.NodeStatus(
                node_id=m.id,
                grpc_address=m.grpc_address,
                raft_address=m.raft_address,
                reachable=st is not None,
                role=st.role if st is not None else "unknown",
            )
            if st is not None:
                node.capacity = st.capacity
                node.tags.extend(st.tags)
                node.running_count = len(st.running)
                node.applied_index = st.applied_index
                node.state_hash = st.state_hash
                node.clock_offset_ms = st.clock_offset_ms
                node.fault = st.fault
                node.draining = st.draining
                node.running.extend(running_runs(st.running))
            nodes.append(node)
        return ordo_pb2.ClusterStatus(
            leader_id=leader,
            term=self.consensus.term,
            commit_index=self.consensus.commit_index,
            node_id=self.config.node_id,
            applied_index=self.consensus.store.last_applied,
            nodes=nodes,
            workers=await self._workers(leader),
        )

    async def _workers(self, leader: str) -> list[ordo_pb2.WorkerStatus]:
        """The registered workers (replicated), with what the leader knows of the connected ones."""
        live: dict[str, ordo_pb2.WorkerStatus] = {}
        if leader == self.config.node_id:
            live = {w: worker_status(link, leader) for w, link in self.hub.links.items()}
        elif leader and self.peers.get(leader) is not None:
            try:
                reply = await self.peers.stub(leader).GetWorkers(
                    internal_pb2.ExecutorStatusRequest(), timeout=STATUS_TIMEOUT
                )
                live = {w.worker_id: w for w in reply.workers}
            except grpc.RpcError:
                pass
        out = []
        for row in await self.queries.workers():
            if row.state != "ACTIVE" and row.id not in live:
                continue
            status = live.get(row.id)
            if status is None:  # registered, not connected now
                status = ordo_pb2.WorkerStatus(
                    worker_id=row.id,
                    address=row.address,
                    capacity=row.capacity,
                    tags=json.loads(row.tags),
                    handlers=json.loads(row.handlers),
                    boot_id=row.boot_id,
                )
            status.registered_at.FromMicroseconds(row.registered_at)
            out.append(status)
        return out

    @rpc
    async def AddNode(
        self, request: ordo_pb2.AddNodeRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.ClusterStatus:
        """Add a member: record its addresses for every node, then add it to the Raft group."""
        node_id = v.node_id(request.node_id)
        grpc_address = v.address(request.grpc_address, "grpcAddress")
        raft_address = v.address(request.raft_address, "raftAddress")
        if self.peers.get(node_id) is not None:
            raise AlreadyExists(f"nodeId: {node_id} is a member already")
        for m in self.peers.members():
            if grpc_address in (m.grpc_address, m.raft_address) or raft_address in (
                m.grpc_address,
                m.raft_address,
            ):
                raise AlreadyExists(f"member {m.id} already uses one of these addresses")
        await self._record(node_id, True, grpc_address, raft_address)
        await self.consensus.change_membership(True, raft_address)
        log.info("added member %s grpc=%s raft=%s", node_id, grpc_address, raft_address)
        return await self.status()

    @rpc
    async def RemoveNode(
        self, request: ordo_pb2.RemoveNodeRequest, context: grpc.aio.ServicerContext
    ) -> ordo_pb2.ClusterStatus:
        """Remove a member that does not lead; its runs move by lease."""
        member = self.peers.get(v.node_id(request.node_id))
        if member is None:
            raise NotFound(f"nodeId: no member {request.node_id}")
        if member.id == self.consensus.leader_id():
            raise FailedPrecondition(
                f"{member.id} leads the cluster: stop it with SIGTERM first (it hands leadership over)"
            )
        if len(self.peers.members()) <= 1:
            raise FailedPrecondition("the last member cannot be removed")
        if member.id == self.config.node_id:
            await self.consensus.change_membership(False, member.raft_address)
            await self._record(member.id, False, "", "")
        else:
            await self._record(member.id, False, "", "")
            await self.consensus.change_membership(False, member.raft_address)
        log.info("removed member %s", member.id)
        return await self.status()

    async def _record(self, node_id: str, add: bool, grpc_address: str, raft_address: str) -> None:
        cmd = c.ChangeMember(
            request_id=uuid.uuid4().hex,
            at=now_us(),
            node=self.config.node_id,
            member_id=node_id,
            add=add,
            grpc_address=grpc_address,
            raft_address=raft_address,
        )
        raise_refusal(await self.consensus.propose(cmd))
        self.peers.sync(await self.queries.members())
