"""ClusterService: who leads, how far the log is, and what every node runs."""

from __future__ import annotations

import asyncio

import grpc

from ..config import Config
from ..consensus import Consensus
from ..executor import Executor
from ..pb import internal_pb2, ordo_pb2, ordo_pb2_grpc
from ..peers import Peers
from .errors import rpc
from .peer import executor_status

STATUS_TIMEOUT = 1.0


class ClusterService(ordo_pb2_grpc.ClusterServiceServicer):  # type: ignore[misc]
    """The cluster as this node sees it, asking every member for its executor status."""

    def __init__(self, config: Config, consensus: Consensus, executor: Executor, peers: Peers) -> None:
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
        members = sorted(self.config.members(), key=lambda m: m.id)
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
                node.draining = st.draining
                node.running.extend(
                    ordo_pb2.RunningRun(
                        run_id=r.run_id,
                        attempt=r.attempt,
                        job_id=r.job_id,
                        type=r.type,
                        started_at=r.started_at,
                        last_heartbeat=r.last_heartbeat if r.HasField("last_heartbeat") else None,
                        progress=r.progress,
                    )
                    for r in st.running
                )
            nodes.append(node)
        return ordo_pb2.ClusterStatus(
            leader_id=leader,
            term=self.consensus.term,
            commit_index=self.consensus.commit_index,
            node_id=self.config.node_id,
            applied_index=self.consensus.store.last_applied,
            nodes=nodes,
        )
