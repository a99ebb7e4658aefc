"""Tests for the handler registry and the built-in handlers, run for real."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import ordo_node.handlers as handlers_mod
from ordo_node.errors import ConfigError, HandlerFailed, InvalidArgument
from ordo_node.handlers import JobContext, Registry, builtin, handler, load_modules, registry

BUILTINS = ["cpu", "echo", "file_write", "http_get", "shell", "sleep"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def ctx(data_dir: Path) -> JobContext:
    return JobContext(
        job_id="job-1",
        run_id="run-1",
        attempt=1,
        job_type="test",
        name="a test job",
        idempotency_key="job-1@2024-01-01T00:00:00Z",
        scheduled_at=datetime(2024, 1, 1, tzinfo=UTC),
        node_id="node-1",
        data_dir=data_dir,
        logger=logging.getLogger("test.handlers"),
    )


@pytest.fixture
def fresh_default_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """Swap the module-level registry so the decorator cannot pollute the real one."""
    fresh = Registry()
    monkeypatch.setattr(handlers_mod, "registry", fresh)
    return fresh


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def process_gone(pid: int) -> bool:
    """Tell whether ``pid`` no longer runs; a zombie left for another reaper counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


# --- registry ---------------------------------------------------------------


def test_default_registry_has_builtins() -> None:
    assert registry.names() == BUILTINS
    for name in BUILTINS:
        assert name in registry
        assert registry.get(name).name == name


def test_register_get_names_contains() -> None:
    reg = Registry()

    def b(ctx: JobContext, payload: Any) -> Any:
        return payload

    reg.register("b", b)
    reg.register("a", b)
    assert reg.names() == ["a", "b"]
    assert "a" in reg
    assert "zzz" not in reg
    assert reg.get("b").fn is b
    assert reg.get("b").validate is None
    with pytest.raises(KeyError):
        reg.get("zzz")


def test_duplicate_registration_raises() -> None:
    reg = Registry()
    reg.register("x", builtin.echo)
    with pytest.raises(ValueError, match="'x'"):
        reg.register("x", builtin.echo)


def test_validate_unknown_type_lists_known_types() -> None:
    reg = Registry()
    builtin.register_builtins(reg)
    with pytest.raises(InvalidArgument) as info:
        reg.validate("nope", {})
    assert info.value.field == "type"
    assert str(info.value) == (
        "type: unknown job type 'nope'; known: cpu, echo, file_write, http_get, shell, sleep"
    )


def test_validate_calls_handler_validator() -> None:
    reg = Registry()
    builtin.register_builtins(reg)
    reg.validate("sleep", {"seconds": 1})
    reg.validate("echo", ["anything", 1, None])
    with pytest.raises(InvalidArgument, match=r"payload\.seconds"):
        reg.validate("sleep", {"seconds": -1})


def test_decorator_registers_user_handler(fresh_default_registry: Registry) -> None:
    def check(payload: Any) -> None:
        if not isinstance(payload, dict):
            raise InvalidArgument("payload", "must be an object")

    @handler("send_report", validate=check)
    def send_report(ctx: JobContext, payload: Any) -> Any:
        return {"sent": True}

    assert "send_report" in fresh_default_registry
    assert fresh_default_registry.get("send_report").fn is send_report
    assert "send_report" not in Registry()
    with pytest.raises(InvalidArgument):
        fresh_default_registry.validate("send_report", [])


async def test_sync_handler_runs_in_worker_thread(ctx: JobContext) -> None:
    reg = Registry()
    reg.register("who", lambda ctx, payload: threading.get_ident())
    assert await reg.run("who", ctx, None) != threading.get_ident()


async def test_async_handler_runs_on_loop_thread(ctx: JobContext) -> None:
    async def who(ctx: JobContext, payload: Any) -> int:
        return threading.get_ident()

    reg = Registry()
    reg.register("who", who)
    assert await reg.run("who", ctx, None) == threading.get_ident()


async def test_async_callable_object_is_awaited(ctx: JobContext) -> None:
    class Handler:
        async def __call__(self, ctx: JobContext, payload: Any) -> Any:
            return {"got": payload}

    reg = Registry()
    reg.register("obj", Handler())
    assert await reg.run("obj", ctx, 5) == {"got": 5}


def test_load_modules_bad_name_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="'ordo_no_such_module_xyz'"):
        load_modules(["ordo_no_such_module_xyz"])


def test_load_modules_failing_module_raises_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ordo_test_broken_mod.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigError, match=r"cannot import module 'ordo_test_broken_mod': boom"):
            load_modules(["ordo_test_broken_mod"])
    finally:
        sys.modules.pop("ordo_test_broken_mod", None)


async def test_load_modules_registers_decorated_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_default_registry: Registry, ctx: JobContext
) -> None:
    (tmp_path / "ordo_test_user_mod.py").write_text(
        "from ordo_node.handlers import handler\n"
        "\n"
        "@handler('user_job')\n"
        "def user_job(ctx, payload):\n"
        "    return {'job': ctx.job_id, 'payload': payload}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        load_modules(["ordo_test_user_mod"])
    finally:
        sys.modules.pop("ordo_test_user_mod", None)
    assert fresh_default_registry.names() == ["user_job"]
    assert await fresh_default_registry.run("user_job", ctx, 7) == {"job": "job-1", "payload": 7}


# --- echo / sleep -------------------------------------------------------------


async def test_echo_returns_payload_and_logs(ctx: JobContext, caplog: pytest.LogCaptureFixture) -> None:
    payload = {"a": [1, 2.5, None, True], "b": "x"}
    with caplog.at_level(logging.INFO, logger="test.handlers"):
        assert await registry.run("echo", ctx, payload) == payload
    assert 'echo job=job-1 payload={"a": [1, 2.5, null, true], "b": "x"}' in caplog.messages


async def test_sleep_returns_seconds(ctx: JobContext) -> None:
    assert await registry.run("sleep", ctx, {"seconds": 0.01}) == {"slept": 0.01}
    assert await registry.run("sleep", ctx, {"seconds": 0}) == {"slept": 0}


@pytest.mark.parametrize(
    "payload",
    [{"seconds": -1}, {"seconds": "1"}, {"seconds": True}, {"seconds": 86401}, {}, {"seconds": None}],
)
def test_sleep_validator_rejects(payload: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"^payload\.seconds: ") as info:
        registry.validate("sleep", payload)
    assert info.value.field == "payload.seconds"


def test_validators_reject_non_object_payload() -> None:
    for name in ("sleep", "shell", "http_get", "file_write", "cpu"):
        with pytest.raises(InvalidArgument) as info:
            registry.validate(name, [1])
        assert info.value.field == "payload"


async def test_sleep_is_cancellable(ctx: JobContext) -> None:
    task = asyncio.create_task(registry.run("sleep", ctx, {"seconds": 60}))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_time_bad_payload_fails_the_run(ctx: JobContext) -> None:
    with pytest.raises(HandlerFailed, match=r"payload\.seconds"):
        await registry.run("sleep", ctx, {"seconds": "x"})


# --- shell --------------------------------------------------------------------


async def test_shell_captures_output_and_exit_code(ctx: JobContext, data_dir: Path) -> None:
    result = await registry.run("shell", ctx, {"command": "echo out; echo err >&2; pwd"})
    assert result == {"exitCode": 0, "output": f"out\nerr\n{data_dir}\n", "truncated": False}


async def test_shell_nonzero_exit_raises_with_details(ctx: JobContext) -> None:
    with pytest.raises(HandlerFailed, match="command exited with status 3") as info:
        await registry.run("shell", ctx, {"command": "echo failing; exit 3"})
    assert info.value.details == {"exitCode": 3, "output": "failing\n", "truncated": False}


async def test_shell_output_keeps_last_64k(ctx: JobContext) -> None:
    command = "yes | head -c 200000; printf END"
    result = await registry.run("shell", ctx, {"command": command})
    assert result["truncated"] is True
    assert len(result["output"]) == 64 * 1024
    assert result["output"].endswith("y\nEND")


async def test_shell_invalid_utf8_is_replaced(ctx: JobContext) -> None:
    result = await registry.run("shell", ctx, {"command": r"printf 'a\377b'"})
    assert result["output"] == "a\ufffdb"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "payload.command"),
        ({"command": ""}, "payload.command"),
        ({"command": 5}, "payload.command"),
        ({"command": "true", "timeout": 0}, "payload.timeout"),
        ({"command": "true", "timeout": "5"}, "payload.timeout"),
        ({"command": "true", "timeout": False}, "payload.timeout"),
    ],
)
def test_shell_validator_rejects(payload: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        registry.validate("shell", payload)
    assert info.value.field == field


def test_shell_validator_ignores_unknown_keys() -> None:
    registry.validate("shell", {"command": "true", "timeout": 1.5, "cwd": "/", "extra": 1})


def _read_pids(path: Path, count: int) -> list[int] | None:
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return None
    return [int(x) for x in lines] if len(lines) >= count else None


SPAWN_TREE = (
    "echo $$ > {p}.tmp; sleep 30 & echo $! >> {p}.tmp; sleep 30 & echo $! >> {p}.tmp; mv {p}.tmp {p}; wait"
)


async def test_shell_cancellation_kills_process_group(ctx: JobContext, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    command = SPAWN_TREE.format(p=pid_file)
    task = asyncio.create_task(registry.run("shell", ctx, {"command": command}))
    await wait_until(lambda: _read_pids(pid_file, 3) is not None, what="the pid file")
    pids = _read_pids(pid_file, 3)
    assert pids is not None
    assert os.getpgid(pids[1]) == pids[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: all(process_gone(pid) for pid in pids), what=f"processes {pids} to end")


async def test_shell_timeout_kills_and_fails(ctx: JobContext, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    command = "echo started; " + SPAWN_TREE.format(p=pid_file)
    started = time.monotonic()
    with pytest.raises(HandlerFailed, match=r"command timed out after 0\.5 s") as info:
        await registry.run("shell", ctx, {"command": command, "timeout": 0.5})
    assert time.monotonic() - started < 10
    assert info.value.details["output"] == "started\n"
    assert info.value.details["truncated"] is False
    pids = _read_pids(pid_file, 3)
    assert pids is not None
    await wait_until(lambda: all(process_gone(pid) for pid in pids), what=f"processes {pids} to end")


async def test_shell_term_ignoring_process_is_killed(ctx: JobContext, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = (
        f"trap '' TERM; echo $$ > {pid_file}.tmp; mv {pid_file}.tmp {pid_file}; while :; do sleep 0.1; done"
    )
    task = asyncio.create_task(registry.run("shell", ctx, {"command": command}))
    await wait_until(lambda: _read_pids(pid_file, 1) is not None, what="the pid file")
    pids = _read_pids(pid_file, 1)
    assert pids is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: process_gone(pids[0]), what="the TERM-ignoring shell to die")


# --- http_get -----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/ok":
            body = b"hello world"
            self.send_response(200)
        else:
            body = b"not here"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # A proxy from the environment must not intercept requests to 127.0.0.1.
    monkeypatch.setenv("no_proxy", "*")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_http_get_ok(ctx: JobContext, http_base: str) -> None:
    assert await registry.run("http_get", ctx, {"url": f"{http_base}/ok"}) == {"status": 200, "bytes": 11}


async def test_http_get_404_fails(ctx: JobContext, http_base: str) -> None:
    url = f"{http_base}/missing"
    with pytest.raises(HandlerFailed, match=f"GET {url} answered 404") as info:
        await registry.run("http_get", ctx, {"url": url, "timeout": 5})
    assert info.value.details == {"status": 404}


async def test_http_get_connection_refused_fails(ctx: JobContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "*")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HandlerFailed, match="failed") as info:
        await registry.run("http_get", ctx, {"url": f"http://127.0.0.1:{port}/", "timeout": 5})
    assert "refused" in info.value.details["error"].lower()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "payload.url"),
        ({"url": "ftp://example.com/x"}, "payload.url"),
        ({"url": "file:///etc/passwd"}, "payload.url"),
        ({"url": "http://"}, "payload.url"),
        ({"url": "http://[::1"}, "payload.url"),
        ({"url": "http://example.com", "timeout": -1}, "payload.timeout"),
    ],
)
def test_http_get_validator_rejects(payload: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        registry.validate("http_get", payload)
    assert info.value.field == field


# --- file_write ---------------------------------------------------------------


async def test_file_write_writes_inside_files_folder(ctx: JobContext, data_dir: Path) -> None:
    result = await registry.run("file_write", ctx, {"fileName": "a/b.txt", "content": "hé"})
    assert result == {"path": "a/b.txt", "bytes": 3}
    assert (data_dir / "files" / "a" / "b.txt").read_text(encoding="utf-8") == "hé"
    result = await registry.run("file_write", ctx, {"fileName": "a/b.txt", "content": ""})
    assert result == {"path": "a/b.txt", "bytes": 0}
    assert (data_dir / "files" / "a" / "b.txt").read_bytes() == b""
    assert sorted(p.name for p in (data_dir / "files" / "a").iterdir()) == ["b.txt"]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "", ".", "a\x00b"])
def test_file_write_validator_refuses_escapes(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        registry.validate("file_write", {"fileName": name, "content": "x"})
    assert info.value.field == "payload.fileName"


def test_file_write_validator_requires_string_content() -> None:
    with pytest.raises(InvalidArgument) as info:
        registry.validate("file_write", {"fileName": "x", "content": 5})
    assert info.value.field == "payload.content"


async def test_file_write_refuses_escapes_at_run_time(ctx: JobContext, tmp_path: Path) -> None:
    for name in ("../x", "/etc/passwd"):
        with pytest.raises(HandlerFailed, match=r"payload\.fileName"):
            await registry.run("file_write", ctx, {"fileName": name, "content": "x"})
    assert not (tmp_path / "data" / "x").exists()


async def test_file_write_refuses_symlink_escape(ctx: JobContext, data_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir / "files").mkdir()
    (data_dir / "files" / "link").symlink_to(outside)
    registry.validate("file_write", {"fileName": "link/x", "content": "x"})
    with pytest.raises(HandlerFailed, match="outside the files folder"):
        await registry.run("file_write", ctx, {"fileName": "link/x", "content": "x"})
    assert list(outside.iterdir()) == []


# --- cpu ----------------------------------------------------------------------


async def test_cpu_runs_for_duration(ctx: JobContext) -> None:
    started = time.monotonic()
    result = await registry.run("cpu", ctx, {"durationSeconds": 0.2})
    assert time.monotonic() - started >= 0.19
    assert result["iterations"] > 0


@pytest.mark.parametrize(
    "payload", [{"durationSeconds": -0.1}, {"durationSeconds": 3601}, {"durationSeconds": "1"}]
)
def test_cpu_validator_rejects(payload: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        registry.validate("cpu", payload)
    assert info.value.field == "payload.durationSeconds"


def _spinning() -> bool:
    for frame in sys._current_frames().values():
        f: Any = frame
        while f is not None:
            if f.f_code is builtin._spin.__code__:
                return True
            f = f.f_back
    return False


async def test_cpu_cancellation_stops_the_thread(ctx: JobContext) -> None:
    task = asyncio.create_task(registry.run("cpu", ctx, {"durationSeconds": 60}))
    await wait_until(_spinning, what="the busy loop to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: not _spinning(), timeout=5, what="the busy loop to stop")
