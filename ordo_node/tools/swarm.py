"""Many light workers in one process: the scale harness of issue 15.

    python -m ordo_node.tools.swarm --servers HOST:PORT[,...] --count 200 [--prefix swarm]

Runs ``count`` :class:`~ordo_node.worker.process.Worker` objects on one event
loop, each with its own id (PREFIX-1 ... PREFIX-N), boot id, channel and
stream to the leader, capacity 1 (``--capacity``) and one no-op handler,
``swarm_noop``, that no voter has: the cluster accepts the type because the
workers registered it. It prints ``swarm: ready: ...`` once the leader
takes every worker's proposals, and on SIGTERM or SIGINT stops them
all the way a worker process stops (each gives back what it holds and says
goodbye); a second signal stops running attempts at once.

The bench's ``swarm`` scenario (:mod:`ordo_node.tools.bench.workers`) runs
it against a control plane of 3 voters with capacity 0, with 10, 50 and 200
workers, and measures end to end throughput and the leader's CPU per job.

``Worker`` is the body of a process; three things are
worked around here rather than changed in it:

- ``Worker.run`` installs its own SIGINT/SIGTERM handlers on the running
  loop, and each worker's replaces the one before (only the last worker
  would hear a signal). The swarm installs its own handlers once every
  ``run`` has begun, and stops each worker with :meth:`Worker.stop`.
- A worker counts as ready once the leader takes a proposal from it (an
  empty RenewLeases), not once it is welcomed: when many workers register
  at once, the leader's list of registered workers (WorkerHub.active, read
  back from SQLite after each registration) can miss some of them, and it
  then refuses their outcomes ("no registered worker") until the next
  registration change. The swarm reconnects a worker still refused 2 s
  after its welcome (a new Worker
  under the same id) and says how many it had to: ``swarm: ready: N
  workers, K reconnected``.
- The executor logs each job at INFO (up to 20 lines a second per
  executor: 4,000 a second for 200 workers); the swarm's log level is
  WARNING unless ``--log-level`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

from .. import commands as c
from ..errors import OrdoError
from ..handlers import registry
from ..logs import setup_logging
from ..timeutil import now_us
from ..worker.config import WorkerConfig, check, servers_of
from ..worker.process import Worker

NOOP = "swarm_noop"
CONNECT_TIMEOUT = 120.0
PROBE_TIMEOUT = 5.0
REFUSED = "no registered worker"
REFUSED_FOR = 2.0  # seconds of refusals after which a welcomed worker is reconnected


async def noop(ctx: Any, payload: Any) -> None:
    """The swarm's job: nothing (no log line either)."""
    return None


def configs(
    servers: tuple[str, ...], count: int, prefix: str, capacity: int, data_root: Path
) -> list[WorkerConfig]:
    """The settings of ``count`` workers: PREFIX-1 ... PREFIX-N, each with a data folder of its own."""
    out = []
    for i in range(1, count + 1):
        worker_id = f"{prefix}-{i}"
        cfg = WorkerConfig(
            worker_id=worker_id,
            servers=servers,
            capacity=capacity,
            data_dir=data_root / worker_id,
            shutdown_grace=5.0,
            log_level="WARNING",
            source="<swarm>",
        )
        out.append(check(cfg, "<swarm>"))
    return out


async def probe(worker: Worker) -> str:
    """'' when the leader takes a proposal from ``worker`` (an empty RenewLeases), else why not."""
    at = now_us()
    cmd = c.RenewLeases(
        request_id=uuid.uuid4().hex, node=worker.cfg.worker_id, at=at, lease_until=at, runs=()
    )
    try:
        await worker.remote.propose(cmd, timeout=PROBE_TIMEOUT)
    except OrdoError as e:
        return str(e) or type(e).__name__
    return ""


class Swarm:
    """The workers of one process, and their tasks."""

    def __init__(self, cfgs: list[WorkerConfig]) -> None:
        self.workers = [Worker(cfg) for cfg in cfgs]
        self.tasks = [asyncio.create_task(w.run(), name=w.cfg.worker_id) for w in self.workers]
        self.reconnected = 0

    async def replace(self, i: int) -> None:
        """Stop worker ``i`` and start a new process of it (a new boot id) under the same id."""
        old = self.workers[i]
        old.stop()
        with suppress(Exception):
            await self.tasks[i]
        self.workers[i] = Worker(old.cfg)
        self.tasks[i] = asyncio.create_task(self.workers[i].run(), name=old.cfg.worker_id)
        self.reconnected += 1

    async def ready(self, deadline: float) -> int:
        """Wait until the leader welcomed every worker and takes its proposals; how many are ready."""

        async def one(i: int) -> bool:
            refused_since: float | None = None
            while time.monotonic() < deadline:
                w = self.workers[i]
                with suppress(TimeoutError):
                    await asyncio.wait_for(w.connected.wait(), max(0.1, deadline - time.monotonic()))
                why = await probe(w) if w.connected.is_set() else "not connected"
                if not why:
                    return True
                now = time.monotonic()
                if REFUSED not in why:
                    refused_since = None
                elif refused_since is None:
                    refused_since = now  # the leader may not have read the registration back yet
                elif now - refused_since > REFUSED_FOR:
                    await self.replace(i)
                    refused_since = None
                    continue
                await asyncio.sleep(0.2)
            return False

        return sum(await asyncio.gather(*(one(i) for i in range(len(self.workers)))))


async def run_swarm(cfgs: list[WorkerConfig]) -> int:
    """Run the workers until SIGTERM or SIGINT (or one of them ends); 0, or 1 if one failed."""
    if NOOP not in registry:
        registry.register(NOOP, noop)
    swarm = Swarm(cfgs)
    # One turn of the loop: every run() has installed its signal handlers; ours replace them.
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            for w in swarm.workers:
                w.executor.hurry()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    t0 = time.monotonic()
    failed = 0
    n = len(cfgs)
    try:
        getting_ready = asyncio.ensure_future(swarm.ready(t0 + CONNECT_TIMEOUT))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({getting_ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if getting_ready.done():
            up = getting_ready.result()
            _say(
                f"ready: {up} of {n} workers in {time.monotonic() - t0:.1f}s, {swarm.reconnected} reconnected"
                + ("" if up == n else "; going on without the others")
            )
            # Until a signal, or until a worker's run() ends by itself (it failed).
            ended = asyncio.ensure_future(asyncio.wait(swarm.tasks, return_when=asyncio.FIRST_COMPLETED))
            await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
        getting_ready.cancel()
        stopping.cancel()
    finally:
        for w in swarm.workers:
            w.stop()
        results = await asyncio.gather(*swarm.tasks, return_exceptions=True)
        for task, result in zip(swarm.tasks, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                _say(f"{task.get_name()} failed: {type(result).__name__}: {result}")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    _say(f"{n} workers stopped" + (f", {failed} with an error" if failed else ""))
    return 1 if failed else 0


def _say(message: str) -> None:
    print(f"swarm: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m ordo_node.tools.swarm``: run the workers until a signal."""
    p = argparse.ArgumentParser(
        prog="python -m ordo_node.tools.swarm", description="Many light workers in one process."
    )
    p.add_argument("--servers", required=True, help="host:port[,host:port...] of the cluster's servers")
    p.add_argument("--count", type=int, default=10, help="workers (default 10)")
    p.add_argument("--prefix", default="swarm", help="worker ids are PREFIX-1 ... PREFIX-N (default swarm)")
    p.add_argument("--capacity", type=int, default=1, help="runs at once per worker (default 1)")
    p.add_argument("--data-dir", default="data", help="each worker's data folder is DATA_DIR/ID (data)")
    p.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING or ERROR (WARNING)")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    setup_logging(args.log_level.upper(), args.prefix)
    servers = servers_of("--servers", "servers", args.servers)
    cfgs = configs(servers, args.count, args.prefix, args.capacity, Path(args.data_dir))
    return asyncio.run(run_swarm(cfgs))


if __name__ == "__main__":
    sys.exit(main())
