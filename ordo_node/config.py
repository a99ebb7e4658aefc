"""Node configuration: one TOML file per node, read into frozen dataclasses.

``load(path)`` reads and validates a file; ``default()`` is the embedded
single-node configuration used when ``ordo-node run`` gets no ``--config``.
Unknown keys and bad values raise :class:`ConfigError` with a message of the
form ``<file>: <key>: <what is wrong>``, which the CLI prints as one line.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DEFAULT_GRPC = "127.0.0.1:7001"
# Built-in handlers that run commands or write files on the node: off unless enabled.
DANGEROUS = ("shell", "file_write")
DEFAULT_RAFT = "127.0.0.1:7101"
# [cluster] max_clock_skew bounds (seconds): below 10 ms the measurement's own error
# (half a round trip on a busy node) would take healthy clocks for skewed ones; above
# an hour the check would no longer stop anything a cron schedule cares about.
MIN_CLOCK_SKEW = 0.01
MAX_CLOCK_SKEW = 3600.0


@dataclass(frozen=True)
class Peer:
    """Another member of the cluster."""

    id: str
    grpc_address: str
    raft_address: str


@dataclass(frozen=True)
class RaftTimings:
    """Raft engine settings (times in seconds); defaults suit a LAN or loopback."""

    election_timeout_min: float = 0.4
    election_timeout_max: float = 1.4
    heartbeat_interval: float = 0.1
    leader_fallback_timeout: float = 3.0
    connection_timeout: float = 30.0
    commit_timeout: float = 10.0
    # A snapshot (a SQLite backup) replaces the journal once it holds this many
    # entries, or this many megabytes of commands, or this many seconds after the
    # last one. The journal is held in memory as well as in its file, so its
    # size bounds a node's memory: 1,000,000 jobs submitted in batches make
    # about 260 MB of journal, which took nodes to 660 MB without the bound.
    snapshot_min_entries: float = 20000
    snapshot_journal_mb: float = 64.0
    snapshot_min_interval: float = 600.0


@dataclass(frozen=True)
class TlsSettings:
    """TLS for the gRPC port, used both ways: this node's server, and its channels to peers."""

    cert_file: Path
    key_file: Path
    # Verifies the peers' certificates (and clients', with require_client_cert).
    ca_file: Path
    # Mutual TLS: every client (and peer) must present a certificate signed by ca_file.
    require_client_cert: bool = False
    # The name peers' certificates are checked against, when it is not their address's host.
    server_name: str = ""


@dataclass(frozen=True)
class Token:
    """A bearer token a client presents; ``read`` tokens may only look."""

    name: str
    token: str
    role: str  # "admin", "read" or "worker" (ordo-node worker: WorkerService only)
    # A worker token: the worker ids (glob patterns) it may connect as; empty: any.
    workers: tuple[str, ...] = ()


ROLES = ("admin", "read", "worker")


@dataclass(frozen=True)
class Config:
    """Everything one node needs to run; built by :func:`load` or :func:`default`."""

    node_id: str
    grpc_address: str
    raft_address: str
    data_dir: Path
    secret: str
    peers: tuple[Peer, ...] = ()
    capacity: int = 8
    tags: tuple[str, ...] = ()
    # Built-in handlers that can harm the host run only where enabled.
    dangerous_handlers: tuple[str, ...] = ()
    handlers: tuple[str, ...] = ()
    max_payload_bytes: int = 1024 * 1024
    lease_timeout: float = 10.0
    # [cluster] worker_gone_after (seconds): a registered worker not connected to the leader
    # this long is recorded as gone (its job types are no longer accepted).
    worker_gone_after: float = 60.0
    # [cluster] max_clock_skew (seconds): a node whose wall clock is further than this from
    # the majority's does not trigger jobs or time submissions (clock.py).
    max_clock_skew: float = 1.0
    shutdown_grace: float = 30.0
    keep_runs: int = 100
    event_max_age_days: float = 30.0
    prune_interval: float = 60.0
    raft: RaftTimings = field(default_factory=RaftTimings)
    # [raft] durable: acknowledge a command only once a majority has it on disk (fsync).
    durable: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_address: str = ""
    tls: TlsSettings | None = None
    # Client authentication: none configured means the public API is open.
    tokens: tuple[Token, ...] = ()
    # [auth] worker_certificates: client certificates' common names (globs) that connect as
    # the worker of that name, without a token (mutual TLS only).
    worker_certificates: tuple[str, ...] = ()
    source: str = "<embedded default>"
    # Where handler modules are looked for first: the config file's folder.
    base_dir: Path = field(default_factory=Path.cwd)

    def peer_by_raft(self, raft_address: str) -> Peer | None:
        """The peer (or this node, as a Peer) whose Raft address is ``raft_address``."""
        for peer in self.members():
            if peer.raft_address == raft_address:
                return peer
        return None

    def members(self) -> tuple[Peer, ...]:
        """Every member, this node first."""
        return (Peer(self.node_id, self.grpc_address, self.raft_address), *self.peers)


def check_address(where: str, key: str, value: Any) -> str:
    """Return ``value`` if it is ``host:port`` with a port in 1..65535."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key}: must be a string 'host:port'")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {key}: {value!r} is not a valid 'host:port' address")
    if host.startswith("["):
        host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            raise ConfigError(f"{where}: {key}: {value!r} has an invalid host") from None
    return value


class _Table:
    """A TOML table that hands out typed values and remembers which keys it gave."""

    def __init__(self, where: str, prefix: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: {prefix.rstrip('.') or 'file'}: must be a table")
        self.where, self.prefix, self.data = where, prefix, data
        self.used: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                others = [str(k) for k in self.data if k not in self.used]
                typo = difflib.get_close_matches(key, others, n=1, cutoff=0.75)
                if typo:  # "grpc_adress" for the required "grpc_address": name the typo
                    raise ConfigError(f"{self.where}: {self.prefix}{unknown_key(typo[0], [key])}")
                raise ConfigError(f"{self.where}: {self.prefix}{key}: is required")
            return default
        value = self.data[key]
        bad_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
        if bad_bool or not isinstance(value, kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ConfigError(f"{self.where}: {self.prefix}{key}: must be {names}, not {value!r}")
        return value

    def table(self, key: str) -> _Table:
        self.used.add(key)
        return _Table(self.where, f"{self.prefix}{key}.", self.data.get(key, {}))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.where}: {self.prefix}{unknown_key(unknown[0], self.used)}")


def unknown_key(key: str, known: Collection[str]) -> str:
    """``key: unknown key``, with the nearest known key when one is close (a typo)."""
    near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    shown = key if key.isprintable() else repr(key)
    return f"{shown}: unknown key" + (f"; did you mean {near[0]}?" if near else "")


def _positive(where: str, key: str, value: float, *, allow_zero: bool = False) -> float:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where}: {key}: must be {'>= 0' if allow_zero else '> 0'}, not {value}")
    return value


def _node_id(where: str, key: str, value: str) -> str:
    if not NODE_ID.fullmatch(value):
        raise ConfigError(f"{where}: {key}: {value!r} is not a valid node id (letters, digits, _ . -)")
    return value


def _peers(where: str, raw: Any, self_id: str, grpc: str, raft: str) -> tuple[Peer, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: cluster.peers: must be an array of tables")
    peers: list[Peer] = []
    seen = {self_id}
    for i, item in enumerate(raw):
        t = _Table(where, f"cluster.peers[{i}].", item)
        peer = Peer(
            _node_id(where, f"cluster.peers[{i}].id", t.get("id", str)),
            check_address(where, f"cluster.peers[{i}].grpc_address", t.get("grpc_address", str)),
            check_address(where, f"cluster.peers[{i}].raft_address", t.get("raft_address", str)),
        )
        t.finish()
        if peer.id == self_id:
            # Listing every member, this node included, is allowed so that all
            # nodes can share one peer list; it must agree with [node].
            if (peer.grpc_address, peer.raft_address) != (grpc, raft):
                raise ConfigError(f"{where}: cluster.peers[{i}]: entry for this node disagrees with [node]")
            continue
        if peer.id in seen:
            raise ConfigError(f"{where}: cluster.peers[{i}].id: duplicate node id '{peer.id}'")
        seen.add(peer.id)
        peers.append(peer)
    addresses = [a for p in peers for a in (p.grpc_address, p.raft_address)] + [grpc, raft]
    for a in addresses:
        if addresses.count(a) > 1:
            raise ConfigError(f"{where}: cluster.peers: address {a} is used twice")
    return tuple(peers)


def _executor(where: str, ex: _Table) -> tuple[int, list[str], list[str], float]:
    """The [executor] section: capacity, tags, enabled dangerous handlers, shutdown grace."""
    capacity = ex.get("capacity", int, 8)
    if not 0 <= capacity <= 10_000:
        raise ConfigError(f"{where}: executor.capacity: must be between 0 and 10000, not {capacity}")
    tags = ex.get("tags", list, [])
    if not all(isinstance(t, str) and t for t in tags):
        raise ConfigError(f"{where}: executor.tags: must be a list of non-empty strings")
    dangerous = ex.get("dangerous_handlers", list, [])
    for name in dangerous:
        if name not in DANGEROUS:
            raise ConfigError(
                f"{where}: executor.dangerous_handlers: {name!r} is not one of {', '.join(DANGEROUS)}"
            )
    grace = _positive(
        where, "executor.shutdown_grace", float(ex.get("shutdown_grace", (int, float), 30.0)), allow_zero=True
    )
    ex.finish()
    return capacity, tags, dangerous, grace


def _pem_file(where: str, key: str, value: str, base_dir: Path, marker: str) -> Path:
    """An existing, readable PEM file holding ``marker`` (e.g. CERTIFICATE)."""
    path = (base_dir / value).resolve()
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise ConfigError(f"{where}: {key}: cannot read {path}: {e.strerror or e}") from None
    if f"-----BEGIN {marker}" not in text and not (
        marker == "PRIVATE KEY" and re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY", text)
    ):
        raise ConfigError(f"{where}: {key}: {path} holds no PEM {marker.lower()}")
    return path


def _tls(where: str, t: _Table, base_dir: Path) -> TlsSettings | None:
    """The [tls] section; absent means plaintext gRPC."""
    if not t.data:
        t.finish()
        return None
    settings = TlsSettings(
        cert_file=_pem_file(where, "tls.cert_file", t.get("cert_file", str), base_dir, "CERTIFICATE"),
        key_file=_pem_file(where, "tls.key_file", t.get("key_file", str), base_dir, "PRIVATE KEY"),
        ca_file=_pem_file(where, "tls.ca_file", t.get("ca_file", str), base_dir, "CERTIFICATE"),
        require_client_cert=t.get("require_client_cert", bool, False),
        server_name=t.get("server_name", str, ""),
    )
    t.finish()
    return settings


def _worker_certificates(where: str, auth: _Table, tls: TlsSettings | None) -> tuple[str, ...]:
    """``[auth] worker_certificates``: the common names (glob patterns) of client certificates
    that may connect as workers, each as the worker its name is; only with mutual TLS."""
    names = auth.get("worker_certificates", list, [])
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: auth.worker_certificates[{i}]: must be a name or a glob pattern")
    if names and (tls is None or not tls.require_client_cert):
        raise ConfigError(f"{where}: auth.worker_certificates: needs [tls] with require_client_cert = true")
    return tuple(names)


def _tokens(where: str, auth: _Table, base_dir: Path) -> tuple[Token, ...]:
    """The [auth] section: ``tokens = [{ name, role, token | token_file }]``."""
    raw = auth.get("tokens", list, [])
    auth.finish()
    tokens: list[Token] = []
    for i, item in enumerate(raw):
        key = f"auth.tokens[{i}]"
        t = _Table(where, f"{key}.", item)
        name = t.get("name", str)
        role = t.get("role", str)
        if role not in ROLES:
            raise ConfigError(f"{where}: {key}.role: must be admin, read or worker, not {role!r}")
        if ("token" in t.data) == ("token_file" in t.data):
            raise ConfigError(f"{where}: {key}: give token or token_file, not both or neither")
        if "token" in t.data:
            value = t.get("token", str)
        else:
            path = (base_dir / t.get("token_file", str)).resolve()
            try:
                value = path.read_text().strip()
            except OSError as e:
                why = e.strerror or e
                raise ConfigError(f"{where}: {key}.token_file: cannot read {path}: {why}") from None
        workers = t.get("workers", list, [])
        if workers and role != "worker":
            raise ConfigError(f"{where}: {key}.workers: only a worker token names the workers it may be")
        if not all(isinstance(w, str) and w.strip() for w in workers):
            raise ConfigError(f"{where}: {key}.workers: must be worker ids or glob patterns")
        t.finish()
        if len(value) < 16 or not value.isprintable() or " " in value:
            raise ConfigError(f"{where}: {key}.token: must be at least 16 printable characters, no spaces")
        if any(value == other.token for other in tokens):
            raise ConfigError(f"{where}: {key}.token: the same token is given twice")
        if any(name == other.name for other in tokens):
            raise ConfigError(f"{where}: {key}.name: duplicate name {name!r}")
        tokens.append(Token(name, value, role, tuple(workers)))
    return tuple(tokens)


def _seconds(table: _Table, key: str, default: float, most: float) -> float:
    """A duration in seconds, between 1 and ``most``."""
    value = float(table.get(key, (int, float), default))
    if not 1.0 <= value <= most:
        where = f"{table.where}: {table.prefix}{key}"
        raise ConfigError(f"{where}: must be between 1 and {most:g} seconds, not {value}")
    return value


def parse(data: dict[str, Any], where: str, base_dir: Path) -> Config:
    """Build a :class:`Config` from parsed TOML; relative paths resolve against ``base_dir``."""
    top = _Table(where, "", data)
    node = top.table("node")
    node_id = _node_id(where, "node.id", node.get("id", str))
    grpc = check_address(where, "node.grpc_address", node.get("grpc_address", str))
    raft = check_address(where, "node.raft_address", node.get("raft_address", str))
    data_dir = Path(node.get("data_dir", str, f"data/{node_id}"))
    handlers = node.get("handlers", list, [])
    if not all(isinstance(h, str) and h for h in handlers):
        raise ConfigError(f"{where}: node.handlers: must be a list of module names")
    log_level = node.get("log_level", str, "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{where}: node.log_level: must be DEBUG, INFO, WARNING or ERROR")
    metrics_address = node.get("metrics_address", str, "")
    if metrics_address:
        check_address(where, "node.metrics_address", metrics_address)
    log_format = node.get("log_format", str, "text")
    if log_format not in ("text", "json"):
        raise ConfigError(f"{where}: node.log_format: must be text or json")
    node.finish()

    cluster = top.table("cluster")
    secret = cluster.get("secret", str)
    if len(secret) < 16:
        raise ConfigError(f"{where}: cluster.secret: must be at least 16 characters")
    peers = _peers(where, cluster.get("peers", list, []), node_id, grpc, raft)
    lease = _seconds(cluster, "lease_timeout", 10.0, 3600)
    gone_after = _seconds(cluster, "worker_gone_after", 60.0, 86_400)
    max_skew = float(cluster.get("max_clock_skew", (int, float), 1.0))
    if not MIN_CLOCK_SKEW <= max_skew <= MAX_CLOCK_SKEW:
        raise ConfigError(
            f"{where}: cluster.max_clock_skew: must be between {MIN_CLOCK_SKEW} and {MAX_CLOCK_SKEW:.0f}"
            f" seconds, not {max_skew}"
        )
    cluster.finish()

    capacity, tags, dangerous, grace = _executor(where, top.table("executor"))

    ret = top.table("retention")
    keep_runs = ret.get("keep_runs", int, 100)
    if keep_runs < 1:
        raise ConfigError(f"{where}: retention.keep_runs: must be at least 1, not {keep_runs}")
    age = _positive(
        where, "retention.event_max_age_days", float(ret.get("event_max_age_days", (int, float), 30.0))
    )
    prune_interval = _positive(where, "retention.interval", float(ret.get("interval", (int, float), 60.0)))
    ret.finish()

    tls = _tls(where, top.table("tls"), base_dir)
    auth = top.table("auth")
    worker_certificates = _worker_certificates(where, auth, tls)
    tokens = _tokens(where, auth, base_dir)

    lim = top.table("limits")
    max_payload = lim.get("max_payload_bytes", int, 1024 * 1024)
    _positive(where, "limits.max_payload_bytes", max_payload)
    lim.finish()

    r = top.table("raft")
    durable = r.get("durable", bool, False)
    d = RaftTimings()
    timings = RaftTimings(
        **{
            name: _positive(where, f"raft.{name}", float(r.get(name, (int, float), getattr(d, name))))
            for name in d.__dataclass_fields__
        }
    )
    r.finish()
    if timings.election_timeout_min <= 3 * timings.heartbeat_interval:
        raise ConfigError(f"{where}: raft.election_timeout_min: must exceed 3 x raft.heartbeat_interval")
    if timings.election_timeout_max <= timings.election_timeout_min:
        raise ConfigError(f"{where}: raft.election_timeout_max: must exceed raft.election_timeout_min")
    if timings.connection_timeout < timings.election_timeout_max:
        raise ConfigError(f"{where}: raft.connection_timeout: must be >= raft.election_timeout_max")
    top.finish()

    return Config(
        node_id=node_id,
        grpc_address=grpc,
        raft_address=raft,
        data_dir=(base_dir / data_dir).resolve(),
        secret=secret,
        peers=peers,
        capacity=capacity,
        tags=tuple(tags),
        dangerous_handlers=tuple(dangerous),
        handlers=tuple(handlers),
        max_payload_bytes=max_payload,
        lease_timeout=lease,
        worker_gone_after=gone_after,
        max_clock_skew=max_skew,
        shutdown_grace=grace,
        keep_runs=keep_runs,
        event_max_age_days=age,
        prune_interval=prune_interval,
        raft=timings,
        durable=durable,
        log_level=log_level,
        log_format=log_format,
        metrics_address=metrics_address,
        tls=tls,
        tokens=tokens,
        worker_certificates=worker_certificates,
        source=where,
        base_dir=base_dir,
    )


def load(path: str | Path) -> Config:
    """Read and validate the TOML file at ``path``."""
    p = Path(path)
    where = str(p)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: syntax error: {e}") from None
    return parse(data, where, p.resolve().parent)


def default(
    data_dir: Path | None = None, *, grpc_address: str = DEFAULT_GRPC, raft_address: str = DEFAULT_RAFT
) -> Config:
    """The embedded single-node configuration: local data directory, loopback ports.

    The Raft port needs a secret even with no peers (PySyncObj unpickles what
    an unauthenticated port receives), so one is made on first start and kept
    in the data directory.
    """
    where = "command line"
    check_address(where, "--grpc-address", grpc_address)
    check_address(where, "--raft-address", raft_address)
    base = (data_dir or Path("ordo-data")).resolve()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{where}: --data-dir: cannot create {base}: {e.strerror or e}") from None
    secret_file = base / "cluster.secret"
    if not secret_file.exists():
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return Config(
        node_id="node1",
        grpc_address=grpc_address,
        raft_address=raft_address,
        data_dir=base,
        secret=secret_file.read_text().strip(),
        source="ordo-node run (no --config)",
    )
