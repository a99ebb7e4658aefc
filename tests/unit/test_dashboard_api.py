"""Tests for the node's HTTP port: the dashboard's JSON API, its page, /metrics, the token check,
and the actions (through a real JobService on a store that commits at once) with their CSRF guard.

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
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from helpers import eventually

from ordo_node import commands as c
from ordo_node.api.jobs import Changes, JobService
from ordo_node.auth import Tokens
from ordo_node.config import Config, Token
from ordo_node.dashboard import Dashboard
from ordo_node.dashboard import server as server_mod
from ordo_node.dashboard.actions import Actions
from ordo_node.dashboard.server import Allow, HttpServer, bearer_token, token_cookie
from ordo_node.handlers import registry
from ordo_node.metrics import Metrics
from ordo_node.pb import ordo_pb2
from ordo_node.queries import Queries
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
        ("/api/jobs?sort=name", 400, "unknown parameter 'sort': this endpoint takes state, q, before, limit"),
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


# --- actions (issue 16) ------------------------------------------------------------

RECURRING = "00000000-0000-4000-8000-0000000000cc"
ADMIN = "admin-token-0123456789"
READER = "read-token-0123456789"


class StoreConsensus:
    """Commits at once: a proposal is applied to the store on the caller's thread (the loop)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def propose(self, cmd: c.Command) -> Any:
        return self.store.apply(self.store.last_applied + 1, c.encode(cmd))


@dataclass
class Acting:
    served: Served
    store: Store
    app: Any
    jobs: JobService

    async def post(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return await self.served.get(path, headers, method="POST")

    async def session(self, token: str | None = None) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        reply = await self.served.get("/api/session", auth)
        assert reply.status == 200, reply.text
        session: dict[str, Any] = reply.json
        return session

    async def same_origin(self, token: str | None = None) -> dict[str, str]:
        """The headers chromium sends with the page's own POST, the CSRF token included."""
        headers = {
            "Origin": f"http://127.0.0.1:{self.served.server.port}",
            "Host": f"127.0.0.1:{self.served.server.port}",
            "Sec-Fetch-Site": "same-origin",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers["X-Ordo-CSRF"] = (await self.session(token))["csrf"]
        return headers

    def events(self, job_id: str) -> list[tuple[str, str]]:
        conn = sqlite3.connect(self.store.path)
        try:
            return conn.execute(
                "SELECT type, message FROM events WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
        finally:
            conn.close()


ActFn = Callable[..., Awaitable[Acting]]


@pytest.fixture
async def acting(tmp_path: Path) -> AsyncIterator[ActFn]:
    """A dashboard that acts through a real JobService on a store that commits at once."""
    store = Store(tmp_path / "state.db")
    _apply(store)
    options = json.dumps({"cron": "*/5 * * * *", "timezone": "Europe/Paris", "overlap": "SKIP"})
    spec = c.JobSpec(
        RECURRING, "echo", "{}", DUE, name="every five", spec_hash="r", options=options, first_nominal=DUE
    )
    store.apply(
        store.last_applied + 1, c.encode(c.SubmitJobs(request_id="r", at=T0, node="node1", jobs=(spec,)))
    )
    queries = Queries(store.path)
    await queries.open()
    loop = asyncio.get_running_loop()
    servers: list[HttpServer] = []

    async def start(tokens: tuple[Token, ...] = ()) -> Acting:
        config = Config(
            node_id="node2",
            grpc_address="127.0.0.1:1",
            raft_address="127.0.0.1:2",
            data_dir=tmp_path,
            secret="x" * 16,
            tokens=tokens,
        )
        jobs = JobService(config, cast(Any, StoreConsensus(store)), queries, registry, Changes())
        actions = Actions(jobs, Tokens(tokens), loop)
        allow = Tokens(tokens).can_read if tokens else None
        metrics = Metrics()
        server = metrics.serve(
            "127.0.0.1:0", Dashboard(store.path, cluster_status, loop, actions), allow=allow
        )
        servers.append(server)
        return Acting(Served(server, metrics), store, server._server.app, jobs)

    try:
        yield start
    finally:
        for s in servers:
            await asyncio.to_thread(s.close)
        await queries.close()
        store.close()


TOKENS = (Token("ops-admin", ADMIN, "admin"), Token("viewer", READER, "read"))


async def test_an_admin_cancels_from_the_page_and_the_history_names_the_token(acting: ActFn) -> None:
    # Given a dashboard with tokens, and the session an admin's page reads
    node = await acting(TOKENS)
    session = await node.session(ADMIN)
    assert session["can_act"] and session["actor"] == "ops-admin" and len(session["csrf"]) == 64

    # When the admin's page cancels a scheduled job
    reply = await node.post(f"/api/jobs/{RECURRING}/cancel", await node.same_origin(ADMIN))

    # Then the answer shows the job's new state and the history entry it wrote, with the token's name
    assert reply.status == 200, reply.text
    assert reply.json["job"]["state"] == "CANCELLED" and reply.json["by"] == "ops-admin"
    assert reply.json["event"]["type"] == "CANCELLED"
    assert node.events(RECURRING)[-1] == ("CANCELLED", "cancelled while SCHEDULED by ops-admin")


async def test_pause_resume_run_now_and_retry_from_the_page(acting: ActFn) -> None:
    node = await acting(TOKENS)
    headers = await node.same_origin(ADMIN)

    paused = await node.post(f"/api/jobs/{RECURRING}/pause", headers)
    assert paused.status == 200 and paused.json["job"]["state"] == "PAUSED"
    refused = await node.post(f"/api/jobs/{RECURRING}/run-now", headers)
    assert refused.status == 409 and "resume it first" in refused.json["error"]
    resumed = await node.post(f"/api/jobs/{RECURRING}/resume", headers)
    assert resumed.status == 200 and resumed.json["job"]["state"] == "SCHEDULED"
    now = await node.post(f"/api/jobs/{RECURRING}/run-now", headers)
    assert now.status == 200 and now.json["job"]["state"] == "TRIGGERED"
    assert now.json["event"]["message"] == "lateness_ms=0.0 triggered now by ops-admin"
    retried = await node.post(f"/api/jobs/{BAD_JOB}/retry", headers)
    # (its run's scheduled time is in 2030: the job shows SCHEDULED until then, no longer FAILED)
    assert retried.status == 200 and retried.json["job"]["state"] == "SCHEDULED"
    assert [e for e in node.events(RECURRING) if e[0] in ("PAUSED", "RESUMED")] == [
        ("PAUSED", "paused by ops-admin"),
        ("RESUMED", "resumed by ops-admin"),
    ]
    assert node.events(BAD_JOB)[-1] == ("RETRIED", "retry requested by ops-admin")
    # A transition the job's state does not allow is a 409 with the state machine's reason
    again = await node.post(f"/api/jobs/{OK_JOB}/retry", headers)
    assert again.status == 409 and "only a failed job is retried" in again.json["error"]
    missing = await node.post("/api/jobs/00000000-0000-4000-8000-0000000000ff/cancel", headers)
    assert missing.status == 404


async def test_cross_site_posts_are_refused(acting: ActFn) -> None:
    # Given an admin's browser (its token in the cookie, as after /?token=)
    node = await acting(TOKENS)
    good = await node.same_origin(ADMIN)
    cookie = {"Cookie": f"ordo_token={ADMIN}"}
    path = f"/api/jobs/{RECURRING}/cancel"

    # When another site's page posts, with or without the headers it cannot get right
    attempts = {
        "cross-site fetch": {**cookie, "Sec-Fetch-Site": "cross-site", "X-Ordo-CSRF": good["X-Ordo-CSRF"]},
        "same-site fetch": {**cookie, "Sec-Fetch-Site": "same-site", "X-Ordo-CSRF": good["X-Ordo-CSRF"]},
        "foreign origin": {**cookie, "Origin": "http://evil.example", "X-Ordo-CSRF": good["X-Ordo-CSRF"]},
        "a form (no CSRF header)": {**cookie, "Origin": good["Origin"], "Host": good["Host"]},
        "a guessed CSRF token": {**cookie, "X-Ordo-CSRF": "0" * 64},
        "another session's token": {
            "Authorization": f"Bearer {ADMIN}",
            "X-Ordo-CSRF": (await node.session(READER))["csrf"] or "x",
        },
    }
    for what, headers in attempts.items():
        reply = await node.post(path, headers)
        # Then each is refused, and the job is untouched
        assert reply.status == 403, what
        assert "may not act" in reply.json["error"] or "X-Ordo-CSRF" in reply.json["error"], what
    assert node.events(RECURRING)[-1][0] == "SCHEDULED"
    # while the page's own request, cookie and all, acts
    own = {**cookie, **{k: v for k, v in good.items() if k != "Authorization"}}
    assert (await node.post(path, own)).status == 200


async def test_without_an_admin_token_nothing_acts(acting: ActFn) -> None:
    node = await acting(TOKENS)
    path = f"/api/jobs/{RECURRING}/pause"

    # No token at all: 401, as for any request
    assert (await node.post(path, {"Sec-Fetch-Site": "same-origin"})).status == 401
    # A read token may look, and its page learns it cannot act (no CSRF token is given)
    session = await node.session(READER)
    assert session == {
        "can_act": False,
        "actor": "viewer",
        "why": "token 'viewer' is a read token; actions need an admin token",
        "csrf": "",
        "csrf_header": "X-Ordo-CSRF",
    }
    headers = {"Authorization": f"Bearer {READER}", "X-Ordo-CSRF": node.app.csrf_token(READER)}
    reply = await node.post(path, headers)
    assert reply.status == 403 and "actions need an admin token" in reply.json["error"]
    assert node.events(RECURRING)[-1][0] == "SCHEDULED"
    # An action is a POST: GET on it is 405, and POST elsewhere too
    assert (await node.served.get(path, {"Authorization": f"Bearer {ADMIN}"})).status == 405
    post = await node.post("/api/jobs", {"Authorization": f"Bearer {ADMIN}"})
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"


async def test_an_open_port_acts_as_the_dashboard(acting: ActFn) -> None:
    node = await acting()
    assert (await node.session())["actor"] == "dashboard"

    reply = await node.post(f"/api/jobs/{RECURRING}/run-now", await node.same_origin())

    assert reply.status == 200, reply.text
    assert node.events(RECURRING)[-1] == ("TRIGGERED", "lateness_ms=0.0 triggered now by dashboard")


async def test_a_dashboard_without_actions_says_so(serve: ServeFn) -> None:
    node = serve()
    session = (await node.get("/api/session")).json
    assert session["can_act"] is False and session["why"] == "this dashboard only reads"
    reply = await node.get(f"/api/jobs/{OK_JOB}/cancel", {"Sec-Fetch-Site": "same-origin"}, method="POST")
    assert reply.status == 403


# --- the views (issue 16) ------------------------------------------------------------


async def test_jobs_are_searched_by_id_prefix_or_name_and_paged(acting: ActFn) -> None:
    node = (await acting()).served

    # by name, any case
    found = (await node.get("/api/jobs?q=NIGHTLY")).json
    assert [j["job_id"] for j in found["jobs"]] == [OK_JOB]
    # by a prefix of the id, or by its end (what the page shows)
    found = (await node.get(f"/api/jobs?q={BAD_JOB[:-1]}")).json
    assert [j["job_id"] for j in found["jobs"]] == [BAD_JOB, OK_JOB]
    found = (await node.get(f"/api/jobs?q={BAD_JOB[-8:].upper()}")).json
    assert [j["job_id"] for j in found["jobs"]] == [BAD_JOB]
    # a page of one at a time, newest first, to the end
    seen, before = [], 0
    while True:
        page = (await node.get(f"/api/jobs?limit=1&before={before}")).json
        seen += [j["job_id"] for j in page["jobs"]]
        before = page["next"]
        if not before:
            break
    assert seen == [RECURRING, BAD_JOB, OK_JOB]
    # a recurring job's list entry carries its spec and time zone
    (entry,) = (await node.get(f"/api/jobs?q={RECURRING}")).json["jobs"]
    assert (entry["cron"], entry["timezone"], entry["next_fire"]) == ("*/5 * * * *", "Europe/Paris", DUE)
    assert (await node.get("/api/jobs?before=x")).status == 400


async def test_schedules_list_recurring_jobs_with_spec_zone_next_fire_and_fates(acting: ActFn) -> None:
    node = await acting()
    headers = await node.same_origin()
    await node.post(f"/api/jobs/{RECURRING}/run-now", headers)
    await node.post(f"/api/jobs/{RECURRING}/run-now", headers)  # skipped: the first still runs (SKIP)
    await node.post(f"/api/jobs/{RECURRING}/pause", headers)

    data = (await node.served.get("/api/schedules")).json

    (s,) = data["schedules"]
    assert (s["job_id"], s["name"], s["cron"], s["timezone"]) == (
        RECURRING,
        "every five",
        "*/5 * * * *",
        "Europe/Paris",
    )
    assert s["paused"] and s["state"] == "PAUSED" and s["next_fire"] == DUE and s["overlap"] == "SKIP"
    assert [f["fate"] for f in s["last"]] == ["SKIPPED_OVERLAP", "TRIGGERED"]
    assert s["last"][1]["reason"] == "triggered now by dashboard" and s["last"][1]["outcome"] == "PENDING"


async def test_the_chart_counts_outcomes_and_lateness_per_minute(serve: ServeFn) -> None:
    node = serve()
    dashboard = node.server._server.app.dashboard

    data = dashboard.chart(now=DUE + 10 * SEC, minutes=3)

    minutes = data["minutes"]
    minute = DUE - DUE % (60 * SEC)  # the UTC minute DUE falls in: the runs ended within it
    assert [m["start"] for m in minutes] == [minute - 120 * SEC, minute - 60 * SEC, minute]
    last = minutes[-1]
    assert last["outcomes"] == {"SUCCEEDED": 1, "FAILED": 1, "LOST": 0, "CANCELLED": 0}
    assert (last["triggered"], last["late_p50_ms"], last["late_max_ms"]) == (2, 0.0, 0.0)
    assert minutes[0]["triggered"] == 0 and minutes[0]["late_max_ms"] is None
    assert (await node.get("/api/chart")).status == 200


async def test_the_job_view_has_the_traceback_and_the_exact_result_text(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    job = "00000000-0000-4000-8000-0000000000dd"
    big = "9007199254740993"
    cmds: list[c.Command] = [
        c.SubmitJobs(
            request_id="s",
            at=T0,
            node="n",
            jobs=(c.JobSpec(job, "echo", f'{{"n": {big}}}', DUE, spec_hash="h"),),
        ),
        c.TriggerJobs(request_id="t", at=DUE, node="n", triggers=(c.Trigger(job, DUE),)),
        c.AssignRuns(request_id="a", at=DUE, node="n", assignments=(c.Assignment(f"{job}:1", 1, "n"),)),
        c.RecordRunUpdates(
            request_id="u",
            node="n",
            updates=(
                c.RunUpdate(
                    f"{job}:1",
                    1,
                    "failed",
                    DUE + SEC,
                    result=f'{{"sum": {big}}}',
                    error="boom",
                    traceback='Traceback (most recent call last):\n  File "h.py", line 3\nValueError: boom',
                ),
            ),
        ),
    ]
    for cmd in cmds:
        store.apply(store.last_applied + 1, c.encode(cmd))
    try:
        data = Dashboard(store.path, cluster_status, asyncio.get_running_loop()).job(job[:13])
    finally:
        store.close()

    assert data is not None and data["job"]["job_id"] == job  # a unique prefix finds the job
    assert data["job"]["payload_json"] == f'{{"n": {big}}}'
    (run,) = data["runs"]
    assert run["result"] == f'{{"sum": {big}}}'  # as stored: no float on the way
    assert run["traceback"].endswith("ValueError: boom")


class CallContext:
    """What the JobService reads of a gRPC call's context: its metadata."""

    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def abort(self, code: Any, message: str) -> None:
        raise AssertionError(f"aborted {code}: {message}")


async def test_the_grpc_calls_record_the_callers_token_name_too(acting: ActFn) -> None:
    node = await acting(TOKENS)
    ctx = cast(Any, CallContext(ADMIN))

    await node.jobs.PauseJob(ordo_pb2.PauseJobRequest(job_id=RECURRING, note="deploy"), ctx)
    await node.jobs.ResumeJob(ordo_pb2.ResumeJobRequest(job_id=RECURRING), ctx)
    job = await node.jobs.TriggerNow(ordo_pb2.TriggerNowRequest(job_id=RECURRING), ctx)
    await node.jobs.CancelJob(ordo_pb2.CancelJobRequest(job_id=RECURRING), ctx)

    assert job.state == ordo_pb2.JOB_STATE_TRIGGERED
    events = node.events(RECURRING)
    assert ("PAUSED", "paused by ops-admin: deploy") in events and (
        "RESUMED",
        "resumed by ops-admin",
    ) in events
    assert ("TRIGGERED", "lateness_ms=0.0 triggered now by ops-admin") in events
    assert events[-1] == ("CANCELLED", "cancelled while TRIGGERED by ops-admin")
