"""PeerService: the internal API the leader uses to reach this node's executor."""

from __future__ import annotations

import logging

import grpc

from ..clock import skew_fault
from ..consensus import Consensus
from ..errors import Unavailable
from ..executor import Executor, running_messages
from ..pb import internal_pb2, internal_pb2_grpc
from ..workerhub import WorkerHub
from .errors import rpc
from .workers import worker_status

log = logging.getLogger("ordo_node.peer")


def executor_status(executor: Executor, consensus: Consensus, node_id: str) -> internal_pb2.ExecutorStatus:
    """This node's executor, as the leader and ClusterService see it."""
    applied, state_hash = consensus.store.applied
    return internal_pb2.ExecutorStatus(
        node_id=node_id,
        capacity=executor.capacity,
        tags=list(executor.config.tags),
        running=running_messages(executor.status()),
        applied_index=applied,
        state_hash=state_hash,
        clock_offset_ms=consensus.clock_offset_us // 1000,
        fault=consensus.fault or skew_fault(consensus),
        role=consensus.role,
        draining=executor.draining,
        boot_id=executor.boot_id,
        handlers=executor.runnable(),
    )


class PeerService(internal_pb2_grpc.PeerServiceServicer):  # type: ignore[misc]
    """Internal: assignments in, executor status out."""

    def __init__(self, node_id: str, executor: Executor, consensus: Consensus, hub: WorkerHub) -> None:
        self.node_id = node_id
        self.executor = executor
        self.consensus = consensus
        self.hub = hub

    @rpc
    async def Assign(
        self, request: internal_pb2.AssignRequest, context: grpc.aio.ServicerContext
    ) -> internal_pb2.AssignResponse:
        """Start the assigned attempts that fit; none while this node is catching up or has stopped."""
        if self.consensus.fault or not self.consensus.caught_up:
            raise Unavailable(
                f"node {self.node_id} takes no assignments: "
                + (self.consensus.fault or "it is catching up with the leader")
            )
        accepted = self.executor.assign(list(request.assignments))
        return internal_pb2.AssignResponse(accepted=accepted)

    @rpc
    async def GetExecutorStatus(
        self, request: internal_pb2.ExecutorStatusRequest, context: grpc.aio.ServicerContext
    ) -> internal_pb2.ExecutorStatus:
        """Capacity, tags and running attempts of this node."""
        return executor_status(self.executor, self.consensus, self.node_id)

    @rpc
    async def GetWorkers(
        self, request: internal_pb2.ExecutorStatusRequest, context: grpc.aio.ServicerContext
    ) -> internal_pb2.WorkerList:
        """The workers connected to this node (the leader's are all of them)."""
        return internal_pb2.WorkerList(
            workers=[worker_status(link, self.node_id) for link in self.hub.links.values()]
        )
