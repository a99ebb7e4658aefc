"""A worker's settings: the ``[worker]`` table of a TOML file, and the command line's flags over it.

```toml
[worker]
id = "worker1"                 # default: this machine's host name
servers = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
capacity = 8                   # runs at once
tags = ["gpu"]
handlers = ["my_jobs"]         # modules with @handler functions (beside this file first)
dangerous_handlers = []        # shell, file_write: off unless listed
data_dir = "data/worker1"      # the handlers' ctx.data_dir
shutdown_grace = 30            # seconds running jobs get to finish on SIGTERM
token_file = "worker.token"    # or token = "...": a token of role "worker"
ca_file = "certs/ca.pem"       # TLS: trust this CA; cert_file/key_file for mutual TLS
```
"""

from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import DANGEROUS, NODE_ID, check_address
from ..errors import ConfigError

# The worker's id when none is given: the host name, as a node id allows it.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def default_id() -> str:
    """This machine's host name as a worker id."""
    return _UNSAFE.sub("-", socket.gethostname())[:64] or "worker"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs; built by :func:`load` and :func:`from_flags`."""

    worker_id: str
    servers: tuple[str, ...]
    capacity: int = 8
    tags: tuple[str, ...] = ()
    handlers: tuple[str, ...] = ()
    dangerous_handlers: tuple[str, ...] = ()
    data_dir: Path = field(default_factory=lambda: Path("data/worker"))
    shutdown_grace: float = 30.0
    token: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    log_level: str = "INFO"
    source: str = "<command line>"
    base_dir: Path = field(default_factory=Path.cwd)


_KEYS = {
    "id": str,
    "servers": (list, str),
    "capacity": int,
    "tags": list,
    "handlers": list,
    "dangerous_handlers": list,
    "data_dir": str,
    "shutdown_grace": (int, float),
    "token": str,
    "token_file": str,
    "ca_file": str,
    "cert_file": str,
    "key_file": str,
    "server_name": str,
    "log_level": str,
}


def is_worker_file(path: str | Path) -> bool:
    """True when the TOML file at ``path`` has a ``[worker]`` table."""
    try:
        return "worker" in tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def load(path: str | Path) -> WorkerConfig:
    """Read and check the ``[worker]`` table of the TOML file at ``path``."""
    p = Path(path)
    where = str(p)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    extra = sorted(set(data) - {"worker"})
    if extra:
        raise ConfigError(f"{where}: {extra[0]}: unknown table (a worker's file has only [worker])")
    table = data.get("worker")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: worker: is required (a [worker] table)")
    return _build(where, table, p.resolve().parent)


def _build(where: str, t: dict[str, Any], base: Path) -> WorkerConfig:
    for key, value in t.items():
        kind = _KEYS.get(key)
        if kind is None:
            raise ConfigError(f"{where}: worker.{key}: unknown key")
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{where}: worker.{key}: must be {names}, not {value!r}")
    if "token" in t and "token_file" in t:
        raise ConfigError(f"{where}: worker.token: give token or token_file, not both")
    token = t.get("token", "")
    if "token_file" in t:
        try:
            token = (base / t["token_file"]).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"{where}: worker.token_file: cannot read: {e.strerror}") from None

    def path(key: str) -> str:
        return str(base / t[key]) if t.get(key) else ""

    cfg = WorkerConfig(
        worker_id=t.get("id", default_id()),
        servers=servers_of(where, "worker.servers", t.get("servers", [])),
        capacity=t.get("capacity", 8),
        tags=tuple(t.get("tags", [])),
        handlers=tuple(t.get("handlers", [])),
        dangerous_handlers=tuple(t.get("dangerous_handlers", [])),
        data_dir=base / t["data_dir"] if "data_dir" in t else base / "data" / t.get("id", default_id()),
        shutdown_grace=float(t.get("shutdown_grace", 30.0)),
        token=token,
        ca_file=path("ca_file"),
        cert_file=path("cert_file"),
        key_file=path("key_file"),
        server_name=t.get("server_name", ""),
        log_level=t.get("log_level", "INFO"),
        source=where,
        base_dir=base,
    )
    return check(cfg, where)


def servers_of(where: str, key: str, raw: Any) -> tuple[str, ...]:
    """``host:port`` addresses from a list or a comma-separated string."""
    items = raw.split(",") if isinstance(raw, str) else raw
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ConfigError(f"{where}: {key}[{i}]: must be a string 'host:port'")
        if item.strip():
            out.append(check_address(where, key, item.strip()))
    return tuple(out)


def check(cfg: WorkerConfig, where: str) -> WorkerConfig:
    """The settings, or ConfigError naming the first bad one."""
    if not NODE_ID.fullmatch(cfg.worker_id):
        raise ConfigError(f"{where}: worker.id: {cfg.worker_id!r} is not a valid id (letters, digits, _ . -)")
    if not cfg.servers:
        raise ConfigError(f"{where}: worker.servers: name at least one server (host:port)")
    if not 0 <= cfg.capacity <= 10_000:
        raise ConfigError(f"{where}: worker.capacity: must be between 0 and 10000, not {cfg.capacity}")
    for key, values in (("tags", cfg.tags), ("handlers", cfg.handlers)):
        if not all(isinstance(x, str) and x for x in values):
            raise ConfigError(f"{where}: worker.{key}: must be a list of non-empty strings")
    for name in cfg.dangerous_handlers:
        if name not in DANGEROUS:
            raise ConfigError(
                f"{where}: worker.dangerous_handlers: {name!r} is not one of {', '.join(sorted(DANGEROUS))}"
            )
    if cfg.shutdown_grace < 0:
        raise ConfigError(f"{where}: worker.shutdown_grace: must be >= 0, not {cfg.shutdown_grace}")
    if cfg.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{where}: worker.log_level: must be DEBUG, INFO, WARNING or ERROR")
    if (cfg.cert_file or cfg.key_file) and not cfg.ca_file:
        raise ConfigError(f"{where}: worker.cert_file: mutual TLS needs ca_file too")
    return replace(cfg, log_level=cfg.log_level.upper())
