"""The handlers every node has: echo, sleep, shell, http_get, file_write and cpu.

Each validator raises InvalidArgument naming the field as ``payload.<key>``.
Handlers check their payload again when they run, because a stored job may
predate a validator change; a bad payload then fails the run with
HandlerFailed instead of crashing with a KeyError.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeGuard

from ordo_node.errors import HandlerFailed, InvalidArgument

if TYPE_CHECKING:
    from ordo_node.handlers import JobContext, Registry

OUTPUT_LIMIT = 64 * 1024
BODY_LIMIT = 1024 * 1024
HTTP_DEFAULT_TIMEOUT = 30.0
KILL_GRACE_SECONDS = 2.0
_READ_CHUNK = 16 * 1024
_CPU_BATCH = 10_000


# --- payload checks -------------------------------------------------------


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidArgument("payload", "must be a JSON object")
    return payload


def _is_number(value: Any) -> TypeGuard[int | float]:
    # bool is an int subclass, but true/false is never meant as a number.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number_in(payload: dict[str, Any], key: str, low: float, high: float) -> float:
    value = payload.get(key)
    if not _is_number(value) or not low <= value <= high:
        raise InvalidArgument(f"payload.{key}", f"must be a number between {low:g} and {high:g}")
    return value


def _optional_timeout(payload: dict[str, Any]) -> float | None:
    value = payload.get("timeout")
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise InvalidArgument("payload.timeout", "must be a number of seconds greater than 0")
    return float(value)


def _string(payload: dict[str, Any], key: str, *, non_empty: bool) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or (non_empty and not value):
        kind = "a non-empty string" if non_empty else "a string"
        raise InvalidArgument(f"payload.{key}", f"must be {kind}")
    return value


def _checked(validate: Callable[[Any], None], payload: Any) -> dict[str, Any]:
    try:
        validate(payload)
    except InvalidArgument as e:
        raise HandlerFailed(f"invalid payload: {e}") from e
    return _object(payload)


# --- echo -----------------------------------------------------------------


async def echo(ctx: JobContext, payload: Any) -> Any:
    """Log the payload and return it unchanged."""
    ctx.logger.info("echo job=%s payload=%s", ctx.job_id, json.dumps(payload))
    return payload


# --- sleep ----------------------------------------------------------------


def validate_sleep(payload: Any) -> None:
    """Accept ``{"seconds": n}`` with 0 <= n <= 86400."""
    _number_in(_object(payload), "seconds", 0, 86400)


async def sleep(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Sleep for ``payload.seconds`` without blocking the loop; cancellation stops it at once."""
    seconds = _checked(validate_sleep, payload)["seconds"]
    await asyncio.sleep(seconds)
    return {"slept": seconds}


# --- shell ----------------------------------------------------------------


def validate_shell(payload: Any) -> None:
    """Accept ``{"command": "...", "timeout": n?}``; the command must be non-empty."""
    body = _object(payload)
    _string(body, "command", non_empty=True)
    _optional_timeout(body)


@dataclass
class _Output:
    """The tail of a process's output, bounded to OUTPUT_LIMIT bytes."""

    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > OUTPUT_LIMIT:
            del self.data[: len(self.data) - OUTPUT_LIMIT]
            self.truncated = True

    def result(self, rc: int | None) -> dict[str, Any]:
        text = self.data.decode("utf-8", errors="replace")
        return {"exitCode": rc, "output": text, "truncated": self.truncated}


async def _collect(proc: asyncio.subprocess.Process, out: _Output) -> int:
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(_READ_CHUNK):
        out.add(chunk)
    return await proc.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; tell whether the group still existed."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A member changed its uid: the group exists but is out of our reach.
        return True
    return True


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the command's process group, SIGKILL it after a grace period, and reap the shell."""
    # start_new_session made the shell a session and group leader: pgid == pid.
    pgid = proc.pid
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_GRACE_SECONDS
    if _signal_group(pgid, signal.SIGTERM):
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            # Killed members whose parent died become zombies of another
            # reaper; until it reaps them the group still "exists", and the
            # SIGKILL below is then harmless.
            if proc.returncode is not None and not _signal_group(pgid, 0):
                break
        else:
            _signal_group(pgid, signal.SIGKILL)
    await proc.wait()


async def shell(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Run ``payload.command`` with /bin/sh in the data directory and return its exit code and output.

    Output (stdout and stderr together) is kept to its last 64 KiB. A non-zero
    exit raises HandlerFailed with the result as details. On timeout or
    cancellation the command's whole process group is killed and reaped.
    """
    body = _checked(validate_shell, payload)
    command: str = body["command"]
    timeout = _optional_timeout(body)
    try:
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            cwd=ctx.data_dir,
        )
    except OSError as e:
        raise HandlerFailed(f"cannot start command: {e}") from e
    out = _Output()
    try:
        try:
            rc = await asyncio.wait_for(_collect(proc, out), timeout)
        except BaseException:
            # Shielded so that a second cancel cannot leave the group running.
            await asyncio.shield(_kill_group(proc))
            raise
    except TimeoutError as e:
        details = out.result(proc.returncode)
        raise HandlerFailed(f"command timed out after {timeout:g} s", details=details) from e
    result = out.result(rc)
    if rc != 0:
        raise HandlerFailed(f"command exited with status {rc}", details=result)
    return result


# --- http_get -------------------------------------------------------------


def validate_http_get(payload: Any) -> None:
    """Accept ``{"url": "http(s)://host/...", "timeout": n?}``."""
    body = _object(payload)
    url = _string(body, "url", non_empty=True)
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError as e:
        raise InvalidArgument("payload.url", f"is not a valid URL: {e}") from e
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidArgument("payload.url", "must be an http:// or https:// URL with a host")
    _optional_timeout(body)


def _fetch(url: str, timeout: float) -> dict[str, Any]:
    # A fresh opener per call reads the proxy settings of the moment and
    # ignores any opener installed globally by other code.
    opener = urllib.request.build_opener()
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout) as response:
            body = response.read(BODY_LIMIT)
            return {"status": response.status, "bytes": len(body)}
    except urllib.error.HTTPError as e:
        e.close()
        raise HandlerFailed(f"GET {url} answered {e.code}", details={"status": e.code}) from e
    except urllib.error.URLError as e:
        raise HandlerFailed(f"GET {url} failed: {e.reason}", details={"error": str(e.reason)}) from e
    except (OSError, http.client.HTTPException) as e:
        # Raised while reading the body, after urlopen has returned, so not
        # wrapped in URLError: read timeouts, resets, truncated bodies.
        reason = str(e) or type(e).__name__
        raise HandlerFailed(f"GET {url} failed: {reason}", details={"error": reason}) from e


async def http_get(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """GET ``payload.url`` and return the status and body size (body read up to 1 MiB).

    An error status raises HandlerFailed with the status as details. The
    request runs in a worker thread; cancelling the job returns at once while
    the thread finishes within the timeout.
    """
    body = _checked(validate_http_get, payload)
    timeout = _optional_timeout(body) or HTTP_DEFAULT_TIMEOUT
    return await asyncio.to_thread(_fetch, body["url"], timeout)


# --- file_write -----------------------------------------------------------


def validate_file_write(payload: Any) -> None:
    """Accept ``{"fileName": "relative/path", "content": "..."}`` that stays inside the files folder."""
    body = _object(payload)
    _relative_name(_string(body, "fileName", non_empty=True))
    _string(body, "content", non_empty=False)


def _relative_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if "\x00" in name:
        raise InvalidArgument("payload.fileName", "must not contain NUL characters")
    if path.is_absolute():
        raise InvalidArgument("payload.fileName", "must be a relative path")
    if ".." in path.parts:
        raise InvalidArgument("payload.fileName", "must not contain '..' components")
    if not path.parts:
        raise InvalidArgument("payload.fileName", "must name a file")
    return path


def _write_atomically(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def file_write(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Write ``payload.content`` (UTF-8) to ``payload.fileName`` under ``<data_dir>/files``, atomically.

    Paths that leave the folder, also through symlinks, fail the run.
    """
    body = _checked(validate_file_write, payload)
    name = PurePosixPath(body["fileName"])
    data = body["content"].encode("utf-8")
    try:
        base = (ctx.data_dir / "files").resolve()
        base.mkdir(parents=True, exist_ok=True)
        target = (base / name).resolve()
        if target == base or not target.is_relative_to(base):
            raise HandlerFailed(f"payload.fileName: '{name}' resolves outside the files folder")
        # resolve() followed every existing symlink and the rest of the name
        # has no '..', so the directories made here are real ones inside base.
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, data)
    except OSError as e:
        raise HandlerFailed(f"cannot write '{name}': {e}") from e
    return {"path": target.relative_to(base).as_posix(), "bytes": len(data)}


# --- cpu ------------------------------------------------------------------


def validate_cpu(payload: Any) -> None:
    """Accept ``{"durationSeconds": n}`` with 0 <= n <= 3600."""
    _number_in(_object(payload), "durationSeconds", 0, 3600)


def _spin(seconds: float, stop: threading.Event) -> int:
    deadline = time.monotonic() + seconds
    iterations = 0
    x = 1
    while time.monotonic() < deadline and not stop.is_set():
        for _ in range(_CPU_BATCH):
            x = (x * 48271) % 2147483647
        iterations += _CPU_BATCH
    return iterations


async def cpu(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Burn CPU in a worker thread for ``payload.durationSeconds``; cancelling stops the thread soon."""
    seconds = _checked(validate_cpu, payload)["durationSeconds"]
    stop = threading.Event()
    try:
        iterations = await asyncio.to_thread(_spin, seconds, stop)
    finally:
        stop.set()
    return {"iterations": iterations}


def register_builtins(target: Registry) -> None:
    """Register every built-in handler into ``target``."""
    target.register("echo", echo)
    target.register("sleep", sleep, validate_sleep)
    target.register("shell", shell, validate_shell)
    target.register("http_get", http_get, validate_http_get)
    target.register("file_write", file_write, validate_file_write)
    target.register("cpu", cpu, validate_cpu)
