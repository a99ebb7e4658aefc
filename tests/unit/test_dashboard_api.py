"""Tests for the node's HTTP port: the dashboard's JSON API, its page, /metrics and the token check.

A real Store on a temporary SQLite file holds two jobs (one succeeded, one
failed); the server runs on a free port, and requests go over real HTTP
from a worker thread, so the event loop stays free to answer the cluster
status the way a node's loop does.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually

from ordo_node import commands as c
from ordo_node.dashboard import Dashboard
from ordo_node.dashboard import server as server_mod
from ordo_node.dashboard.server import Allow, HttpServer, bearer_token, token_cookie
from ordo_node.metrics import Metrics
from ordo_node.pb import ordo_pb2
from ordo_node.statemachine.store import Store

SEC = 1_000_000
T0 = 1_900_000_000 * SEC
DUE = T0 + 60 * SEC
OK_JOB = "00000000-0000-4000-8000-000000000001"
BAD_JOB = "00000000-0000-4000-8000-000000000002"
ERROR = "ValueError: <script>alert(1)</script> is not a number"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Served:
    server: HttpServer
    metrics: Metrics

    async def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Reply:
        """One request over HTTP, from a worker thread."""

        def call() -> Reply:
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
            try:
                conn.request(method, path, headers=headers or {})
                r = conn.getresponse()
                return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
            finally:
                conn.close()

        reply = await asyncio.to_thread(call)
        assert b"Traceback" not in reply.body
        return reply


def _apply(store: Store) -> None:
    """Two one-off jobs: OK_JOB succeeds on node2, BAD_JOB fails on node3 with ERROR."""
    cmds: list[c.Command] = [
        c.SubmitJobs(
            request_id=uuid.uuid4().hex,
            at=T0,
            node="node1",
            jobs=(
                c.JobSpec(OK_JOB, "echo", '{"n": 1}', DUE, name="nightly report", spec_hash="a"),
                c.JobSpec(BAD_JOB, "echo", '{"n": 2}', DUE, name="<b>bold</b> & co", spec_hash="b"),
            ),
        ),
        c.TriggerJobs(
            request_id=uuid.uuid4().hex,
            at=DUE,
            node="node1",
            triggers=(c.Trigger(OK_JOB, DUE), c.Trigger(BAD_JOB, DUE)),
        ),
        c.AssignRuns(
            request_id=uuid.uuid4().hex,
            at=DUE + SEC,
            node="node1",
            assignments=(c.Assignment(f"{OK_JOB}:1", 1, "node2"), c.Assignment(f"{BAD_JOB}:1", 1, "node3")),
        ),
        c.RecordRunUpdates(
            request_id=uuid.uuid4().hex,
            node="node2",
            updates=(c.RunUpdate(f"{OK_JOB}:1", 1, "succeeded", DUE + 2 * SEC, result='{"ok": true}'),),
        ),
        c.RecordRunUpdates(
            request_id=uuid.uuid4().hex,
            node="node3",
            updates=(c.RunUpdate(f"{BAD_JOB}:1", 1, "failed", DUE + 3 * SEC, error=ERROR),),
        ),
    ]
    for index, cmd in enumerate(cmds, start=store.last_applied + 1):
        store.apply(index, c.encode(cmd))


async def cluster_status() -> ordo_pb2.ClusterStatus:
    return ordo_pb2.ClusterStatus(
        leader_id="node1",
        term=7,
        commit_index=5,
        node_id="node2",
        applied_index=5,
        nodes=[
            ordo_pb2.NodeStatus(node_id="node1", reachable=True, role="leader", capacity=8, applied_index=5),
            ordo_pb2.NodeStatus(
                node_id="node2", reachable=True, role="follower", capacity=4, running_count=1
            ),
            ordo_pb2.NodeStatus(node_id="node3", reachable=False, role="unknown"),
        ],
    )


ServeFn = Callable[..., Served]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServeFn]:
    """Start servers over one populated database; every one is closed at teardown."""
    store = Store(tmp_path / "state.db")
    _apply(store)
    loop = asyncio.get_running_loop()
    servers: list[HttpServer] = []

    def start(allow: Allow | None = None, status: Any = cluster_status) -> Served:
        metrics = Metrics()
        server = metrics.serve("127.0.0.1:0", Dashboard(store.path, status, loop), allow=allow)
        servers.append(server)
        return Served(server, metrics)

    try:
        yield start
    finally:
        for s in servers:
            await asyncio.to_thread(s.close)
        store.close()


# --- the JSON API ------------------------------------------------------------


async def test_cluster_names_the_leader_and_every_member(serve: ServeFn) -> None:
    # Given a server whose node sees a leader and one unreachable member
    node = serve()

    # When the dashboard asks for the cluster
    reply = await node.get("/api/cluster")

    # Then it gets the leader, the term and each member's role and liveness
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    data = reply.json
    assert (data["leader_id"], data["term"], data["node_id"]) == ("node1", 7, "node2")
    nodes = {n["node_id"]: n for n in data["nodes"]}
    assert nodes["node1"]["leader"] and nodes["node1"]["role"] == "leader"
    assert nodes["node2"]["running"] == 1 and nodes["node2"]["capacity"] == 4
    assert not nodes["node3"]["reachable"] and not nodes["node3"]["leader"]


async def test_counts_and_job_lists_by_state(serve: ServeFn) -> None:
    node = serve()

    counts = (await node.get("/api/counts")).json
    assert counts["jobs"]["SUCCEEDED"] == 1 and counts["jobs"]["FAILED"] == 1
    assert counts["jobs"]["SCHEDULED"] == 0  # every state is named, zeros included
    assert counts["total"] == 2

    everything = (await node.get("/api/jobs")).json
    assert {j["job_id"] for j in everything["jobs"]} == {OK_JOB, BAD_JOB}
    assert everything["limit"] == 50
    assert all("payload" not in j for j in everything["jobs"])  # lists stay light

    failed = (await node.get("/api/jobs?state=FAILED&limit=5")).json
    assert [(j["job_id"], j["name"], j["state"]) for j in failed["jobs"]] == [
        (BAD_JOB, "<b>bold</b> & co", "FAILED")
    ]
    assert len((await node.get("/api/jobs?limit=1")).json["jobs"]) == 1


async def test_recent_runs_and_failures_carry_the_error_text(serve: ServeFn) -> None:
    node = serve()

    data = (await node.get("/api/runs/recent?limit=10")).json

    assert {(r["job_id"], r["state"], r["node_id"]) for r in data["runs"]} == {
        (OK_JOB, "SUCCEEDED", "node2"),
        (BAD_JOB, "FAILED", "node3"),
    }
    assert [(f["job_id"], f["type"], f["node_id"], f["error"]) for f in data["failures"]] == [
        (BAD_JOB, "FAILED", "node3", ERROR)
    ]
    assert data["failures"][0]["name"] == "<b>bold</b> & co"


async def test_job_detail_has_attempts_history_and_occurrences(serve: ServeFn) -> None:
    node = serve()

    data = (await node.get(f"/api/jobs/{BAD_JOB}")).json

    assert data["job"]["payload"] == {"n": 2}
    assert [(r["attempt"], r["state"], r["error"]) for r in data["runs"]] == [(1, "FAILED", ERROR)]
    types = [e["type"] for e in data["history"]]
    assert types[0] == "FAILED" and "TRIGGERED" in types and types[-1] == "SCHEDULED"  # newest first
    assert data["history_total"] == len(types)
    assert [(o["fate"], o["outcome"], o["attempts"]) for o in data["occurrences"]] == [
        ("TRIGGERED", "FAILED", 1)
    ]
    ok = (await node.get(f"/api/jobs/{OK_JOB}")).json
    assert json.loads(ok["runs"][0]["result"]) == {"ok": True}


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/jobs?state=NOPE", 400, "state: 'NOPE' is not a job state"),
        ("/api/jobs?state=failed", 400, "is not a job state"),
        ("/api/jobs?limit=abc", 400, "limit: 'abc' is not a whole number from 1 to 500"),
        ("/api/jobs?limit=0", 400, "from 1 to 500"),
        ("/api/jobs?limit=501", 400, "from 1 to 500"),
        ("/api/jobs?limit=-1", 400, "from 1 to 500"),
        ("/api/jobs?sort=name", 400, "unknown parameter 'sort': this endpoint takes state, limit"),
        ("/api/jobs?limit=1&limit=2", 400, "parameter 'limit' is given 2 times"),
        ("/api/runs/recent?state=FAILED", 400, "unknown parameter 'state'"),
        ("/api/cluster?x=1", 400, "takes no parameters"),
        ("/api/jobs/no-such-job", 404, "no job 'no-such-job' on this node"),
        ("/api/jobs/a%2Fb", 404, "no job 'a/b' on this node"),
        ("/api/jobs/a/b", 404, "no such endpoint"),
        ("/api/jobs/", 404, "no such endpoint"),
        ("/api/nothing", 404, "no such endpoint: /api/nothing"),
    ],
)
async def test_bad_requests_get_a_clear_json_error(serve: ServeFn, path: str, status: int, says: str) -> None:
    reply = await serve().get(path)

    assert reply.status == status
    assert reply.headers["content-type"].startswith("application/json")
    assert says in reply.json["error"]


async def test_unknown_paths_and_methods_outside_the_api_get_plain_text(serve: ServeFn) -> None:
    node = serve()

    missing = await node.get("/etc/passwd")
    assert missing.status == 404 and "the dashboard is at /" in missing.text
    assert (await node.get("/static/../server.py")).status == 404
    post = await node.get("/api/jobs", method="POST")
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    head = await node.get("/api/counts", method="HEAD")
    assert head.status == 200 and head.body == b""


async def test_a_cluster_status_that_fails_is_a_503_not_a_traceback(serve: ServeFn) -> None:
    async def broken() -> ordo_pb2.ClusterStatus:
        raise ConnectionError("peer table unreadable")

    reply = await serve(status=broken).get("/api/cluster")

    assert reply.status == 503
    assert reply.json["error"] == "cluster status failed: ConnectionError: peer table unreadable"


async def test_a_bug_is_a_500_with_no_detail(serve: ServeFn, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: Dashboard) -> dict[str, Any]:
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr(Dashboard, "counts", crash)

    reply = await serve().get("/api/counts")

    assert reply.status == 500
    assert reply.json == {"error": "internal error (the node's log has the details)"}


# --- the page and /metrics ------------------------------------------------------


async def test_the_page_its_script_and_style_are_served_with_a_strict_policy(serve: ServeFn) -> None:
    node = serve()

    page = await node.get("/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="static/app.js"' in page.text
    script = await node.get("/static/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    # Data reaches the page as text only (see app.js): no HTML parsing of anything.
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    style = await node.get("/static/style.css")
    assert style.status == 200 and style.headers["content-type"].startswith("text/css")


async def test_metrics_are_unchanged_at_metrics(serve: ServeFn) -> None:
    node = serve()
    node.metrics.run_duration.labels("succeeded").observe(0.5)

    reply = await node.get("/metrics")

    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'ordo_run_duration_seconds_count{outcome="succeeded"} 1.0' in reply.text
    openmetrics = await node.get("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


async def test_metrics_alone_when_there_is_no_dashboard() -> None:
    server = Metrics().serve("127.0.0.1:0")
    try:
        served = Served(server, Metrics())
        assert (await served.get("/metrics")).status == 200
        reply = await served.get("/")
        assert reply.status == 404 and "only /metrics" in reply.text
    finally:
        await asyncio.to_thread(server.close)


# --- tokens --------------------------------------------------------------------


def only_secret(token: str | None) -> bool:
    return token == "s3cret"


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/counts", "/api/jobs/x", "/metrics", "/nope"])
async def test_with_allow_every_path_wants_a_token(serve: ServeFn, path: str) -> None:
    node = serve(allow=only_secret)

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "ordo_token=wrong"}):
        reply = await node.get(path, headers)
        assert reply.status == 401, headers
        assert "Authorization: Bearer <token>" in reply.text and "/?token=<token>" in reply.text
        assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_a_bearer_header_or_the_cookie_lets_a_request_in(serve: ServeFn) -> None:
    node = serve(allow=only_secret)

    assert (await node.get("/metrics", {"Authorization": "Bearer s3cret"})).status == 200
    assert (await node.get("/api/counts", {"Authorization": "bearer s3cret"})).status == 200
    assert (await node.get("/", {"Cookie": "theme=dark; ordo_token=s3cret"})).status == 200
    assert (await node.get("/api/cluster", {"Cookie": "ordo_token=s3cret"})).json["leader_id"] == "node1"
    # A header that is there decides, even beside a good cookie.
    both = {"Authorization": "Bearer wrong", "Cookie": "ordo_token=s3cret"}
    assert (await node.get("/api/counts", both)).status == 401


async def test_opening_the_page_with_a_token_sets_the_cookie_and_drops_it_from_the_url(
    serve: ServeFn,
) -> None:
    node = serve(allow=only_secret)

    reply = await node.get("/?token=s3cret")

    assert reply.status == 303
    assert reply.headers["location"] == "/"
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("ordo_token=s3cret;")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert (await node.get("/?token=wrong")).status == 401
    assert (await node.get("/?token=")).status == 401


async def test_without_allow_everything_is_open(serve: ServeFn) -> None:
    node = serve()

    assert (await node.get("/metrics")).status == 200
    assert (await node.get("/")).status == 200
    assert (await node.get("/?token=anything")).status == 200


def test_a_token_survives_the_cookie_round_trip() -> None:
    for token in ("s3cret", 'with space; semi "quote" \\ back', "ünïcode-token"):
        set_cookie = token_cookie(token)
        sent = set_cookie.split("; Path=")[0]  # what a browser sends back: name=value
        assert bearer_token({"Cookie": sent}) == token
    assert bearer_token({"Authorization": "Basic dXNlcjpwYXNz"}) is None
    assert bearer_token({"Authorization": "Bearer "}) is None
    assert bearer_token({"Cookie": 'ordo_token="unterminated'}) is None
    assert bearer_token({}) is None


async def test_an_open_port_answers_only_to_its_own_names(serve: ServeFn) -> None:
    # Given a port with no tokens
    node = serve()
    # When a page on another name that resolves here (DNS rebinding) asks
    foreign = await node.get("/api/cluster", {"Host": "attacker.example:7201"})
    # Then it is refused, and the node's addresses and names still work
    assert foreign.status == 403 and "DNS rebinding" in foreign.text
    for host in (f"127.0.0.1:{node.server.port}", "localhost", "[::1]:80", socket.gethostname()):
        assert (await node.get("/api/cluster", {"Host": host})).status == 200, host


async def test_with_tokens_any_host_name_may_ask(serve: ServeFn) -> None:
    node = serve(allow=lambda token: token == "t" * 20)
    reply = await node.get(
        "/api/cluster", {"Host": "scheduler.internal", "Authorization": "Bearer " + "t" * 20}
    )
    assert reply.status == 200


async def test_connections_beyond_the_cap_are_closed_and_idle_ones_time_out(
    serve: ServeFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod._Handler, "timeout", 3.0)
    node = serve()
    # Given every slot held by a connection that sends nothing
    idle = [
        socket.create_connection(("127.0.0.1", node.server.port)) for _ in range(server_mod.MAX_CONNECTIONS)
    ]
    try:

        def refused_at_once() -> bool:
            extra = socket.create_connection(("127.0.0.1", node.server.port), timeout=5)
            try:
                extra.sendall(b"GET /api HTTP/1.0\r\n\r\n")
                return extra.recv(100) == b""  # closed without an answer
            except ConnectionResetError:
                return True
            finally:
                extra.close()

        # Then one more is closed without an answer
        assert await eventually(
            lambda: asyncio.to_thread(refused_at_once), timeout=5, what="a refused connection"
        )
        # And once the idle ones time out, the port answers again
        reply = await eventually(lambda: _try_get(node), timeout=10, what="the port answering again")
        assert reply.status == 200
    finally:
        for s in idle:
            s.close()


async def _try_get(node: Served) -> Reply | None:
    try:
        return await node.get("/api")
    except (ConnectionError, http.client.HTTPException):
        return None


async def test_the_log_never_holds_a_token(serve: ServeFn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ordo_node.http")
    node = serve(allow=lambda token: token == "good-token-0123456789")
    await node.get("/?token=wrong-secret-0123456789")
    await node.get("/?token=good-token-0123456789")
    assert caplog.records, "requests are logged at DEBUG"
    assert "0123456789" not in caplog.text
