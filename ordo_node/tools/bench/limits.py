"""This machine's ceilings, measured in the same run: a bare gRPC echo and PySyncObj's raw commit rate."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from ...config import RaftTimings
from ..localcluster import free_ports
from .load import closed_loop
from .plan import ECHO_METHOD, ECHO_SERVICE, RPC_TIMEOUT, BenchError, Plan, Progress, far_future_request

# -- scenario: limits of this machine ----------------------------------------------------


class _Counter(SyncObj):  # type: ignore[misc]
    """The trivial replicated state machine of the raw PySyncObj measurement."""

    def __init__(self, self_address: str, partners: list[str], conf: SyncObjConf) -> None:
        self.value = 0
        super().__init__(self_address, partners, conf)

    @replicated  # type: ignore[untyped-decorator]
    def incr(self, n: int) -> int:
        self.value += n
        return self.value


def _drive(obj: _Counter, commands: int, in_flight: int) -> dict[str, Any]:
    """Commit ``commands`` increments with at most ``in_flight`` waiting for their callback.

    With one in flight, each command's latency (from the call to its callback) is kept too.
    """
    slots = threading.Semaphore(in_flight)
    finished = threading.Event()
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    sent = [0.0]

    def done(result: Any, reason: int) -> None:  # the tick thread
        if in_flight == 1:
            latencies.append(time.perf_counter() - sent[0])
        outcomes["ok" if reason == FAIL_REASON.SUCCESS else "failed"] += 1
        slots.release()
        if outcomes.total() == commands:
            finished.set()

    start = time.perf_counter()
    for _ in range(commands):
        slots.acquire()
        sent[0] = time.perf_counter()
        obj.incr(1, callback=done)
    finished.wait(300)
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {
        "commands": commands,
        "commits": outcomes["ok"],
        "errors": outcomes["failed"],
        "seconds": seconds,
    }
    if latencies:
        ms = sorted(x * 1000 for x in latencies)
        out["latency_p50_ms"] = round(ms[len(ms) // 2], 3)
        out["latency_p99_ms"] = round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3)
    return out


def raw_raft_node(spec: str) -> None:
    """One member of the raw PySyncObj cluster (run in its own process by :func:`raw_commit_rate`).

    It waits for a leader; the leader commits the commands and prints the
    result as one JSON line, the others print ``{"role": "follower"}``. Each
    then serves until its stdin closes or it is killed.
    """
    s = json.loads(spec)
    t = RaftTimings()
    conf = SyncObjConf(
        password=s["secret"],
        autoTick=True,
        appendEntriesUseBatch=False,
        commandsWaitLeader=False,
        raftMinTimeout=t.election_timeout_min,
        raftMaxTimeout=t.election_timeout_max,
        appendEntriesPeriod=t.heartbeat_interval,
        leaderFallbackTimeout=t.leader_fallback_timeout,
        connectionRetryTime=1.0,
        journalFile=s["journal"],
    )
    addresses = [f"127.0.0.1:{p}" for p in s["ports"]]
    me = addresses[s["index"]]
    obj = _Counter(me, [a for a in addresses if a != me], conf)
    deadline = time.monotonic() + 30
    while obj._getLeader() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling PySyncObj, which offers no wait for a leader
    if obj._isLeader():
        # One command at a time first (the latency of a commit), then the rate with many in flight.
        serial = _drive(obj, s["serial_commands"], 1)
        out = _drive(obj, s["commands"], s["in_flight"])
        out["serial"] = serial
        print(json.dumps(out), flush=True)
    else:
        print(json.dumps({"role": "follower" if obj._getLeader() else "no leader"}), flush=True)
    sys.stdin.read()
    obj.destroy()


def serve_echo(port: int) -> None:
    """A bare grpc.aio echo server on 127.0.0.1:``port`` (bytes in, the same bytes out), until killed."""

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def serve() -> None:
        handler = grpc.method_handlers_generic_handler(
            ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(serve())


def python_child(code: str, arg: str, log: Path) -> subprocess.Popen[str]:
    """``python -c code arg`` with stdin and stdout piped, stderr to ``log``."""
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", code, arg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


async def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line the child prints (empty if it exits first)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    try:
        return await asyncio.wait_for(asyncio.to_thread(stdout.readline), timeout)
    except TimeoutError:
        raise BenchError(f"a child process (pid {proc.pid}) printed nothing in {timeout:.0f}s") from None


def kill_all(procs: Sequence[subprocess.Popen[str]]) -> None:
    """SIGKILL and reap every child still running."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


async def echo_limits(plan: Plan, progress: Progress, root: Path) -> list[dict[str, Any]]:
    """Calls per second of a bare grpc.aio unary echo at each concurrency, server in its own process."""
    port = free_ports(1)[0]
    code = "import sys; from ordo_node.tools.bench.limits import serve_echo; serve_echo(int(sys.argv[1]))"
    proc = python_child(code, str(port), root / "echo-server.log")
    try:
        if (await first_line(proc, 30)).strip() != "ready":
            raise BenchError(f"the echo server did not start; see {root / 'echo-server.log'}")
        payload = far_future_request().SerializeToString()  # the size of a SubmitJob request
        results = []
        for c in plan.concurrency:
            progress.start(f"limits: bare gRPC echo C={c}")

            def make(ch: grpc.aio.Channel) -> Callable[[], Awaitable[Any]]:
                call = ch.unary_unary(ECHO_METHOD)
                return lambda: call(payload, timeout=RPC_TIMEOUT)

            result = await closed_loop(make, f"127.0.0.1:{port}", c, plan.submit_seconds, progress)
            progress.done(f"{result.rate:,.0f} calls/s")
            results.append(result.as_dict("calls_per_s"))
        return results
    finally:
        kill_all([proc])


async def raw_commit_rate(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """PySyncObj's commit rate for small commands: three member processes, the leader drives."""
    ports = free_ports(3)
    secret = secrets.token_urlsafe(24)
    code = "import sys; from ordo_node.tools.bench.limits import raw_raft_node; raw_raft_node(sys.argv[1])"
    procs: list[subprocess.Popen[str]] = []
    progress.start(f"limits: PySyncObj raw commits x{plan.raw_commands:,}")
    try:
        for i in range(3):
            spec = {
                "index": i,
                "ports": ports,
                "secret": secret,
                "commands": plan.raw_commands,
                "in_flight": plan.raw_in_flight,
                "serial_commands": max(50, plan.raw_commands // 20),
                "journal": str(root / f"raw{i}.journal"),
            }
            procs.append(python_child(code, json.dumps(spec), root / f"raw{i}.log"))
        lines = await asyncio.gather(*(first_line(p, 60 + plan.raw_commands / 200) for p in procs))
        drivers = [r for r in (json.loads(x) for x in lines if x.strip()) if "commits" in r]
        if len(drivers) != 1:
            raise BenchError(f"raw PySyncObj cluster: expected one leader to drive, got {lines}")
        out: dict[str, Any] = drivers[0]
        out["commits_per_s"] = round(out["commits"] / out["seconds"], 1)
        out["seconds"] = round(out["seconds"], 3)
        out["in_flight"] = plan.raw_in_flight
        serial = out["serial"]
        progress.done(
            f"{out['commits_per_s']:,.0f} commits/s; one at a time p50 {serial.get('latency_p50_ms')} ms"
        )
        return out
    finally:
        kill_all(procs)


async def scenario_limits(plan: Plan, progress: Progress, root: Path) -> dict[str, Any]:
    """This machine's ceilings: bare gRPC echo and raw PySyncObj commits."""
    return {
        "echo": await echo_limits(plan, progress, root),
        "raw_commit": await raw_commit_rate(plan, progress, root),
    }
