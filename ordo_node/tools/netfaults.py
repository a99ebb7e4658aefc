"""Network faults for the chaos harness: each node in its own network namespace, links cut by routes.

    net = Network(3)             # names unique to this run: ordo-<run>-1 ... and a bridge
    net.create()                 # namespaces, a veth pair each to the bridge, 10.213.X.i/24
    cluster = NetCluster(root, net, ...)   # nodes run under `ip netns exec`, bound to 10.213.X.i
    net.cut(a, b)                # a -> b dropped: a blackhole route to b's address in a's namespace
    net.heal_all()
    net.destroy()                # every namespace, veth and the bridge (also on SIGTERM, see chaos.py)

Only what this module creates is touched: namespaces and interfaces named after
the run, addresses in one private /24 that no interface of this machine uses
yet. The harness stays in the root namespace and reaches every node through the
bridge (10.213.X.254), which no cut ever touches, so it always sees every node.

A cut is a blackhole route in the sender's namespace: the kernel drops what
that node sends to the other, both Raft and gRPC. ``cut(a, b)`` alone is
one-way loss: b's packets still reach a, but a's answers (TCP acknowledgements
included) do not reach b. Needs root and ``ip netns``; ``unavailable()`` says
why not, so callers can skip.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .localcluster import LocalCluster, LocalNode, LocalProcess, LocalWorker

SUBNET_PREFIX = "10.213"
HARNESS_HOST = 254  # the bridge's address in the root namespace
GRPC_PORT = 7001
RAFT_PORT = 7101


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=10)


def unavailable() -> str:
    """Why network namespaces cannot be used here ('' when they can)."""
    if sys.platform != "linux":
        return "network faults need Linux network namespaces"
    if os.geteuid() != 0:
        return "network faults need root (ip netns add)"
    if shutil.which("ip") is None:
        return "network faults need the 'ip' command (iproute2)"
    probe = f"ordo-probe-{secrets.token_hex(3)}"
    try:
        done = _ip("netns", "add", probe, check=False)
        if done.returncode != 0:
            return f"ip netns add failed: {done.stderr.strip()}"
        inside = subprocess.run(
            ["ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if inside.returncode != 0:
            return f"ip netns exec failed: {inside.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as e:
        return f"ip netns does not work here: {e}"
    finally:
        _ip("netns", "del", probe, check=False)
    return ""


def _used_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the interfaces of the root namespace already have."""
    out = _ip("-o", "-4", "addr", "show").stdout
    return [ipaddress.IPv4Interface(cidr).network for cidr in re.findall(r"inet (\S+)", out)]


@dataclass
class Network:
    """N network namespaces on one bridge, and the cuts between them.

    Not thread-safe: one caller (the harness's event loop) at a time.
    """

    size: int
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: str = ""
    cuts: set[tuple[int, int]] = field(default_factory=set)
    created: bool = False

    @property
    def bridge(self) -> str:
        return f"obr{self.run}"  # interface names have at most 15 characters

    def netns(self, i: int) -> str:
        """The namespace of node i (1-based)."""
        return f"ordo-{self.run}-{i}"

    def veth(self, i: int) -> str:
        return f"ov{self.run}n{i}"

    def host(self, i: int) -> str:
        """Node i's address."""
        return f"{self.subnet}.{i}"

    def create(self) -> None:
        """Namespaces, veth pairs and the bridge; on any failure, remove what was made and raise."""
        used = _used_networks()
        free = [
            x
            for x in range(1, 255)
            if not any(ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{x}.0/24").overlaps(u) for u in used)
        ]
        if not free:
            raise RuntimeError(f"no free {SUBNET_PREFIX}.X.0/24 subnet")
        self.subnet = f"{SUBNET_PREFIX}.{free[secrets.randbelow(len(free))]}"
        self.created = True
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.subnet}.{HARNESS_HOST}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(1, self.size + 1):
                ns = self.netns(i)
                _ip("netns", "add", ns)
                _ip("link", "add", self.veth(i), "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("link", "set", self.veth(i), "master", self.bridge)
                _ip("link", "set", self.veth(i), "up")
                _ip("addr", "add", f"{self.host(i)}/24", "dev", "eth0", netns=ns)
                _ip("link", "set", "eth0", "up", netns=ns)
                _ip("link", "set", "lo", "up", netns=ns)
        except subprocess.CalledProcessError as e:
            self.destroy()
            raise RuntimeError(f"setting up the network failed: {' '.join(e.cmd)}: {e.stderr.strip()}") from e

    def destroy(self) -> None:
        """Remove every namespace, veth and the bridge of this run; safe to call twice."""
        if not self.created:
            return
        for i in range(1, self.size + 1):
            _ip("netns", "del", self.netns(i), check=False)  # takes its veth pair with it
            _ip("link", "del", self.veth(i), check=False)
        _ip("link", "del", self.bridge, check=False)
        self.cuts.clear()
        self.created = False

    def cut(self, a: int, b: int) -> None:
        """Drop what node a sends to node b (one way)."""
        if (a, b) not in self.cuts:
            _ip("route", "add", "blackhole", f"{self.host(b)}/32", netns=self.netns(a))
            self.cuts.add((a, b))

    def heal(self, a: int, b: int) -> None:
        """Let node a reach node b again."""
        if (a, b) in self.cuts:
            _ip("route", "del", "blackhole", f"{self.host(b)}/32", netns=self.netns(a), check=False)
            self.cuts.discard((a, b))

    def cut_both(self, a: int, b: int) -> None:
        """No traffic between a and b."""
        self.cut(a, b)
        self.cut(b, a)

    def isolate(self, group: set[int]) -> None:
        """Cut every link between ``group`` and the other nodes, both ways."""
        for a in group:
            for b in range(1, self.size + 1):
                if b not in group:
                    self.cut_both(a, b)

    def heal_all(self) -> None:
        """Remove every cut."""
        for a, b in list(self.cuts):
            self.heal(a, b)


@dataclass
class NetNode(LocalNode):
    """A LocalNode that runs in its own network namespace, bound to its own address there."""

    host: str = "127.0.0.1"
    netns: str = ""
    index: int = 0

    @property
    def address(self) -> str:
        """The gRPC address."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def raft_address(self) -> str:
        return f"{self.host}:{self.raft_port}"

    def command(self) -> list[str]:
        # `ip netns exec` execs the program: the process is the node itself, so kill -9 reaches it.
        return ["ip", "netns", "exec", self.netns, *super().command()]


@dataclass
class NetWorker(LocalWorker):
    """A LocalWorker that runs in a network namespace of its own (it dials the nodes' addresses)."""

    netns: str = ""
    index: int = 0

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().command()]


@dataclass
class NetCluster(LocalCluster):
    """A LocalCluster whose nodes live in the namespaces of ``network`` (which must be created)."""

    network: Network | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        net = self.network
        if net is None or not net.created:
            raise RuntimeError("NetCluster needs a created Network")
        self.nodes = [
            NetNode(n.id, GRPC_PORT, RAFT_PORT, n.root, host=net.host(i), netns=net.netns(i), index=i)
            for i, n in enumerate(self.nodes, start=1)
        ]
        for node in self.nodes:
            node.config_path.write_text(self.config_text(node))

    def config_text(self, node: LocalNode) -> str:
        """LocalCluster's config with every Raft address on the node's own host."""
        text = super().config_text(node)
        # LocalCluster writes Raft addresses as 127.0.0.1:<port>; every node here has the same
        # ports on its own host, so the address of each peer's line is set from its gRPC one.
        if not isinstance(node, NetNode):
            return text
        lines = []
        for line in text.splitlines():
            m = re.search(r'grpc_address = "([\d.]+):\d+"', line)
            if m and "raft_address" in line:
                line = line.replace(f'"127.0.0.1:{RAFT_PORT}"', f'"{m.group(1)}:{RAFT_PORT}"')
            elif line.startswith("raft_address = "):
                line = f'raft_address = "{node.raft_address}"'
            lines.append(line)
        return "\n".join(lines) + "\n"

    def by_index(self, i: int) -> NetNode:
        """Node i (1-based) as a NetNode."""
        node = self.nodes[i - 1]
        assert isinstance(node, NetNode)
        return node

    def add_net_worker(self, worker_id: str, **options: Any) -> NetWorker:
        """A worker in the network's next namespace after the nodes' and the workers' so far
        (the Network must have been made with room for it)."""
        net = self.network
        assert net is not None
        index = len(self.nodes) + len(self.workers) + 1
        if index > net.size:
            raise RuntimeError(f"the network has {net.size} namespaces; {worker_id} needs namespace {index}")
        worker = self.add_worker(worker_id, worker_class=NetWorker, **options)
        assert isinstance(worker, NetWorker)
        worker.netns, worker.index = net.netns(index), index
        return worker

    def net_workers(self) -> list[NetWorker]:
        """The workers, each in its namespace."""
        return [w for w in self.workers.values() if isinstance(w, NetWorker)]

    def index(self, node_id: str) -> int:
        """The 1-based index of a node id."""
        return next(i for i, n in enumerate(self.nodes, start=1) if n.id == node_id)


def stop_all(cluster: LocalCluster | None, network: Network | None) -> None:
    """kill -9 whatever node or worker still runs, then remove the network: the last resort of every
    exit path."""
    if cluster is not None:
        for proc in cluster.processes():
            proc.kill()
    if network is not None:
        network.destroy()


# -- the nemeses ----------------------------------------------------------------------

NEMESES = ("isolate_leader", "split", "bridge", "one_way", "flap", "kill_partitioned", "kill")
# With workers (issue 15): a worker cut off from the leader (it still reaches the followers), and a
# worker stopped (kill -9 or SIGTERM) and started again.
WORKER_NEMESES = ("worker_from_leader", "kill_worker")


@dataclass
class Episode:
    """One nemesis: what it did, from when (wall clock) until the network healed."""

    nemesis: str
    detail: str
    start: float
    healed: float = 0.0


class Nemeses:
    """Applies one nemesis at a time to a NetCluster; every one heals (and restarts) before it returns.

    ``leader`` returns the current leader's id as the harness sees it ('' if none).
    Runs on the harness's event loop; the ``ip`` calls it makes take milliseconds.
    """

    def __init__(
        self,
        cluster: NetCluster,
        network: Network,
        rng: random.Random,
        leader: Callable[[], str],
        hold: tuple[float, float],
        say: Callable[[str], None],
    ) -> None:
        self.cluster = cluster
        self.net = network
        self.rng = rng
        self.leader = leader
        self.hold = hold
        self.say = say
        self.episodes: list[Episode] = []
        self.kills = 0
        self.leader_kills = 0
        self.worker_kills = 0
        self.worker_terms = 0
        self.node_count = len(cluster.nodes)  # nodes are namespaces 1..nodes; workers come after them

    def _leader_index(self) -> int:
        leader = self.leader()
        return self.cluster.index(leader) if leader else self.rng.randint(1, self.node_count)

    def _others(self, group: set[int]) -> list[int]:
        return [i for i in range(1, self.node_count + 1) if i not in group]

    def _name(self, i: int) -> str:
        if i > len(self.cluster.nodes):
            return next(w.id for w in self.cluster.net_workers() if w.index == i)
        return self.cluster.by_index(i).id

    async def _hold(self, factor: float = 1.0) -> None:
        await asyncio.sleep(self.rng.uniform(*self.hold) * factor)

    async def run(self, nemesis: str) -> Episode:
        """Apply ``nemesis``, hold it, heal everything; return what happened."""
        episode = Episode(nemesis, "", time.time())
        self.episodes.append(episode)
        try:
            await getattr(self, nemesis)(episode)
        finally:
            self.net.heal_all()
            for proc in self.cluster.processes():
                if not proc.alive:
                    proc.start()
            episode.healed = time.time()
        return episode

    def _kill(self, i: int) -> None:
        node = self.cluster.by_index(i)
        was_leader = node.id == self.leader()
        node.kill()
        self.kills += 1
        self.leader_kills += was_leader
        self.say(f"killed {node.id}{' (leader)' if was_leader else ''}")

    async def isolate_leader(self, episode: Episode) -> None:
        """The leader can reach no other node, nor they it."""
        leader = self._leader_index()
        episode.detail = f"{self._name(leader)} isolated"
        self.net.isolate({leader})
        await self._hold()

    async def split(self, episode: Episode) -> None:
        """A random minority cut from the majority."""
        nodes = list(range(1, self.node_count + 1))
        minority = set(self.rng.sample(nodes, (self.node_count - 1) // 2))
        episode.detail = (
            f"{sorted(self._name(i) for i in minority)} | {[self._name(i) for i in self._others(minority)]}"
        )
        self.net.isolate(minority)
        await self._hold()

    async def bridge(self, episode: Episode) -> None:
        """A-B and B-C connected, A-C cut: B alone reaches everyone (the leader is an end half the time)."""
        leader = self._leader_index()
        nodes = list(range(1, self.node_count + 1))
        self.rng.shuffle(nodes)
        if self.rng.random() < 0.5 and nodes[1] == leader:
            nodes[0], nodes[1] = nodes[1], nodes[0]
        b, ends = nodes[1], [nodes[0], *nodes[2:]]
        episode.detail = f"bridge {self._name(b)}, cut between {[self._name(i) for i in ends]}"
        for x in ends:
            for y in ends:
                if x < y:
                    self.net.cut_both(x, y)
        await self._hold()

    async def one_way(self, episode: Episode) -> None:
        """One node's packets to another are dropped; the other way still works."""
        leader = self._leader_index()
        other = self.rng.choice(self._others({leader}))
        a, b = (leader, other) if self.rng.random() < 0.5 else (other, leader)
        episode.detail = f"{self._name(a)} -> {self._name(b)} dropped"
        self.net.cut(a, b)
        await self._hold()

    async def flap(self, episode: Episode) -> None:
        """A node (a new random one each time) cut off and let back every 1-2 s."""
        end = time.monotonic() + self.rng.uniform(*self.hold) * 1.5
        flips = 0
        while time.monotonic() < end:
            victim = self.rng.randint(1, self.node_count)
            self.net.isolate({victim})
            flips += 1
            await asyncio.sleep(self.rng.uniform(1, 2))
            self.net.heal_all()
            await asyncio.sleep(self.rng.uniform(1, 2))
        episode.detail = f"{flips} flips"

    async def kill_partitioned(self, episode: Episode) -> None:
        """A minority cut off, then kill -9 of a node on either side, restarted while the cut holds."""
        victim_side = {
            self._leader_index() if self.rng.random() < 0.5 else self.rng.randint(1, self.node_count)
        }
        self.net.isolate(victim_side)
        await self._hold(0.4)
        target = self.rng.choice([*victim_side, *self._others(victim_side)])
        episode.detail = (
            f"{[self._name(i) for i in victim_side]} isolated, {self._name(target)} killed and restarted"
        )
        self._kill(target)
        await self._hold(0.4)
        self.cluster.by_index(target).start()
        await self._hold(0.4)

    async def kill(self, episode: Episode) -> None:
        """kill -9 without a partition: the leader 40% of the time, restarted 1-3 s later."""
        leader = self._leader_index()
        victim = leader if self.rng.random() < 0.4 else self.rng.randint(1, self.node_count)
        episode.detail = f"{self._name(victim)} killed"
        self._kill(victim)
        await asyncio.sleep(self.rng.uniform(1, 3))
        self.cluster.by_index(victim).start()

    async def worker_from_leader(self, episode: Episode) -> None:
        """A worker and the leader cannot reach each other; the worker still reaches the followers."""
        worker = self.rng.choice(self.cluster.net_workers())
        leader = self._leader_index()
        episode.detail = f"{worker.id} cut from {self._name(leader)}"
        self.net.cut_both(worker.index, leader)
        await self._hold()

    async def kill_worker(self, episode: Episode) -> None:
        """A worker stopped, by kill -9 or SIGTERM in turn, and started 1-3 s later."""
        worker = self.rng.choice(self.cluster.net_workers())
        how = await stop_worker(worker, worker_stop_kind(self.worker_kills + self.worker_terms))
        self.worker_kills += how == "kill -9"
        self.worker_terms += how == "SIGTERM"
        episode.detail = f"{worker.id} stopped by {how}"
        self.say(f"{worker.id} stopped by {how}")
        await asyncio.sleep(self.rng.uniform(1, 3))
        worker.start()


async def stop_worker(worker: LocalProcess, how: str) -> str:
    """Stop a worker by "kill -9", or by "SIGTERM" and wait for it to drain and exit (kill -9
    after 20 s); ``how``."""
    if how == "SIGTERM":
        await asyncio.to_thread(worker.terminate, 20.0)
    else:
        worker.kill()
    return how


def worker_stop_kind(stopped_so_far: int) -> str:
    """kill -9 and SIGTERM in turn, so that a short run has both."""
    return "SIGTERM" if stopped_so_far % 2 else "kill -9"
