"""Prometheus metrics, served at ``/metrics`` on the node's HTTP port (``[node] metrics_address``).

Counters and histograms are updated where things happen (the timekeeper, the
executor, a gRPC interceptor); gauges of state (jobs by state, occurrences by
fate, Raft, the executor) are read at scrape time, on the HTTP server's
thread, from a read-only SQLite connection and a few integers.

The same port serves the read-only dashboard (see ``ordo_node/dashboard``).
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .dashboard.server import Allow, App, HttpServer

if TYPE_CHECKING:
    from .consensus import Consensus
    from .dashboard.data import Dashboard
    from .executor import Executor

ROLES = ("follower", "candidate", "leader")
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)


class Metrics:
    """Every metric of one node, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.trigger_lateness = Histogram(
            "ordo_trigger_lateness_seconds",
            "Committed trigger time minus the occurrence's fire time (on the leader).",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "ordo_run_duration_seconds",
            "How long handlers ran on this node, by outcome.",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.grpc_calls = Counter(
            "ordo_grpc_calls",
            "gRPC calls this node answered, by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )

    def observe_run(self, outcome: str, seconds: float) -> None:
        """An attempt ended after ``seconds`` with ``outcome`` (the executor's ``on_finished``)."""
        self.run_duration.labels(outcome).observe(seconds)

    def observe_lateness(self, seconds: float) -> None:
        """A job was triggered ``seconds`` after its fire time (the timekeeper's ``on_lateness``)."""
        self.trigger_lateness.observe(seconds)

    def watch(self, db: Path, consensus: Consensus, executor: Executor) -> None:
        """Read the node's state at scrape time."""
        self.registry.register(StateCollector(db, consensus, executor))

    def serve(
        self,
        address: str,
        dashboard: Dashboard | None = None,
        *,
        allow: Allow | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> HttpServer:
        """Serve ``/metrics``, and the dashboard if given, on ``host:port`` from a daemon thread.

        ``allow(token)`` decides who may read anything on the port (None: everyone);
        ``tls`` makes it HTTPS. Raises OSError if the address cannot be bound. The
        caller closes the server.
        """
        host = address.rpartition(":")[0].strip("[]").lower()
        names = frozenset({host, socket.gethostname().lower()})
        app = App(self.registry, dashboard, allow, https=tls is not None, names=names)
        server = HttpServer(address, app, tls)
        server.start()
        return server


class StateCollector(Collector):
    """Gauges read at scrape time: jobs, occurrences, Raft, executor, snapshot."""

    def __init__(self, db: Path, consensus: Consensus, executor: Executor) -> None:
        self.db = db
        self.consensus = consensus
        self.executor = executor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
        try:
            jobs = GaugeMetricFamily("ordo_jobs", "Jobs by state.", labels=["state"])
            for state, count in conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                jobs.add_metric([state], count)
            yield jobs
            fates = GaugeMetricFamily("ordo_occurrences", "Occurrences by fate.", labels=["fate"])
            for fate, count in conn.execute("SELECT fate, COUNT(*) FROM occurrences GROUP BY fate"):
                fates.add_metric([fate], count)
            yield fates
            per_node = GaugeMetricFamily(
                "ordo_runs_by_node", "Run attempts by executor node and state.", labels=["node", "state"]
            )
            for node, state, count in conn.execute(
                "SELECT COALESCE(node_id, ''), state, COUNT(*) FROM runs GROUP BY node_id, state"
            ):
                per_node.add_metric([node, state], count)
            yield per_node
        finally:
            conn.close()
        c = self.consensus
        yield _gauge("ordo_raft_term", "This node's Raft term.", c.term)
        yield _gauge(
            "ordo_raft_commit_index", "The highest log index this node knows committed.", c.commit_index
        )
        yield _gauge(
            "ordo_raft_applied_index",
            "The last command applied to this node's database.",
            c.store.last_applied,
        )
        raft = c.engine
        yield _gauge(
            "ordo_raft_fault",
            "1 once this node stopped replicating to protect the data (fail-stop; see the log).",
            1.0 if c.fault else 0.0,
        )
        if raft is not None:
            yield CounterMetricFamily(
                "ordo_raft_chunked_entries",
                "Entries that arrived in chunks (never expected: commands stay below the batch size).",
                value=raft.chunked_entries,
            )
            yield CounterMetricFamily(
                "ordo_raft_stale_replies",
                "Replies to appends sent before a reset, ignored by this leader.",
                value=raft.stale_replies,
            )
            yield CounterMetricFamily(
                "ordo_raft_fsyncs",
                "Journal fsyncs ([raft] durable: one per group of entries, before an ack or a commit).",
                value=raft.fsyncs,
            )
            yield CounterMetricFamily(
                "ordo_raft_held_next_index",
                "Success acks that would have moved this leader's nextIndex backward, held.",
                value=raft.held_next_index,
            )
            yield CounterMetricFamily(
                "ordo_raft_skipped_entries",
                "Entries a leader sent again that this follower already held, kept instead of truncated.",
                value=raft.skipped_entries,
            )
        yield _gauge(
            "ordo_clock_offset_seconds",
            "This node's wall clock minus the majority's, as measured over the Raft heartbeats.",
            c.clock_offset_us / 1e6,
        )
        role = GaugeMetricFamily("ordo_raft_role", "1 for this node's current role.", labels=["role"])
        for name in ROLES:
            role.add_metric([name], 1.0 if c.role == name else 0.0)
        yield role
        running = len(self.executor.running)
        capacity = self.executor.capacity
        yield _gauge("ordo_executor_running", "Attempts running on this node.", running)
        yield _gauge("ordo_executor_capacity", "Attempts this node runs at most.", capacity)
        yield _gauge(
            "ordo_executor_utilisation",
            "Running over capacity (0 to 1).",
            running / capacity if capacity else 0.0,
        )
        snapshot = Path(self.consensus.config.data_dir) / "raft.snapshot"
        yield _gauge(
            "ordo_snapshot_bytes",
            "Size of the last Raft snapshot.",
            snapshot.stat().st_size if snapshot.exists() else 0,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class CallCounter(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts unary calls by method and final status code."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary
        counter = self.metrics.grpc_calls
        method = details.method

        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behavior(request, context)
            finally:
                code = context.code() or grpc.StatusCode.OK
                counter.labels(method, code.name if isinstance(code, grpc.StatusCode) else str(code)).inc()

        return grpc.unary_unary_rpc_method_handler(
            counted,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
