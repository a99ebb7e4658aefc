"""The node's HTTP port: ``/metrics``, the dashboard page, its JSON API and its actions.

Routes (GET and HEAD, except the actions):

- ``/metrics``: the Prometheus text exposition of the node's registry.
- ``/``, ``/static/app.js``, ``/static/style.css``: the dashboard, package data.
- ``/api/cluster``, ``/api/counts``, ``/api/jobs?state=&q=&before=&limit=``,
  ``/api/schedules``, ``/api/chart``, ``/api/runs/recent?limit=``,
  ``/api/jobs/<id>``, ``/api/session``: JSON, see :class:`Dashboard`.
- ``POST /api/jobs/<id>/<action>``, action one of cancel, retry, pause, resume,
  run-now: see ``actions.py``. The only requests that change the cluster.

Cross-site requests cannot act. An action is a POST (a link or an image cannot
make one) from the same origin: ``Sec-Fetch-Site``, when the browser sends it,
must be ``same-origin``, and ``Origin``, when sent, this server's own. It
carries the header ``X-Ordo-CSRF`` with the value ``/api/session`` gives: an
HMAC of the request's token under a key this process drew at start. A custom
header makes a browser ask first (CORS preflight), which this server never
grants, and the session's JSON cannot be read by another origin's page. Who
acts is the token's name (an admin token; a read token may only look). Behind
a reverse proxy, pass the ``Host`` header through unchanged: the origin a
browser sends is compared with it.

Errors are short messages: JSON ``{"error": ...}`` under ``/api/``, plain text
elsewhere. 400 for a bad parameter, 403 for an action refused to this caller,
404 for an unknown path or job, 405 for a method the path does not take, 409
for an action the job's state does not allow, 503 while the node cannot
answer, and 500 with no detail (the traceback goes to the node's log) for a bug.

Authentication: with ``allow`` set, every request needs a token for which
``allow(token)`` is true, from ``Authorization: Bearer <token>`` or from the
``ordo_token`` cookie. Opening ``/?token=<token>`` with a good token sets that
cookie (HttpOnly, SameSite=Strict) and redirects to ``/``, so a browser can
use the dashboard; the token does not stay in the address bar or history.

Threading: :class:`HttpServer` serves from a daemon thread and answers each
request on a thread of its own; :class:`App` keeps no state between requests.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ..pb import ordo_pb2
from .actions import ACTIONS, ActionFailed
from .data import JOB_STATES, Dashboard, Unavailable

log = logging.getLogger("ordo_node.http")

Allow = Callable[[str | None], bool]

COOKIE = "ordo_token"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Seconds a connection may take to finish its TLS handshake, and then to send each part of a request.
HANDSHAKE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0
# Connections answered at once (a thread each); more are closed as they arrive.
MAX_CONNECTIONS = 64
# The header an action carries its CSRF token in (see the module docstring).
CSRF_HEADER = "X-Ordo-CSRF"
MAX_QUERY = 200
# Bytes of a request body read (and ignored); no route takes a body.
MAX_BODY = 64 * 1024
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
# The page loads only its own script and style, and talks only to this server.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:;"
    " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
COMMON_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
FOREIGN_HOST = (
    "403 Forbidden: this port has no tokens, so it answers only to the node's IP address and names "
    "(a guard against DNS rebinding); use those, or configure [auth] tokens\n"
)
UNAUTHORIZED = (
    "401 Unauthorized: this node wants a token.\n"
    "Send the header 'Authorization: Bearer <token>',\n"
    "or open /?token=<token> in a browser once (it keeps the token in a cookie).\n"
)
API_INDEX = {
    "endpoints": {
        "/api/cluster": "leader, term, indexes, every member's role, reachability and load, and the workers",
        "/api/counts": "jobs by state",
        "/api/jobs?state=&q=&before=&limit=": (
            f"the newest jobs, optionally in one state, whose id or name holds q (any case),"
            f" older than position before (the previous page's next); limit 1..{MAX_LIMIT}"
        ),
        "/api/schedules": "the live recurring jobs: spec, time zone, next fire time, pause state, last fates",
        "/api/chart": "per minute of the last 30: attempts finished by outcome, trigger lateness",
        "/api/session": "who this request acts as, whether it may act, and the CSRF token actions carry",
        "POST /api/jobs/<id>/<action>": f"act on a job (admin token): {', '.join(ACTIONS)}",
        "/api/runs/recent?limit=": "the newest run attempts and the newest failures with their errors",
        "/api/jobs/<id>": "one job with its attempts, history events and occurrences",
    }
}


class Headers(Protocol):
    """A request's headers, looked up by name without regard to case."""

    def get(self, name: str, /) -> str | None: ...


class HttpError(Exception):
    """A request the server refuses, with the status and the message to send."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(HttpError):
    """400: a parameter is missing, repeated, unknown or out of range."""

    status = 400


class NotFound(HttpError):
    """404: no such path or job."""

    status = 404


@dataclass(frozen=True)
class Response:
    """What one request gets back."""

    status: int
    body: bytes
    content_type: str = TEXT_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def _text(status: int, message: str, *headers: tuple[str, str]) -> Response:
    return Response(status, (message.rstrip("\n") + "\n").encode(), TEXT_TYPE, headers)


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value, separators=(",", ":")).encode(), JSON_TYPE)


def _params(query: dict[str, list[str]], allowed: tuple[str, ...]) -> dict[str, str]:
    """The query's parameters, each given at most once and each one this endpoint takes."""
    for name, values in query.items():
        if name not in allowed:
            takes = ", ".join(allowed) if allowed else "no parameters"
            raise BadRequest(f"unknown parameter {name[:40]!r}: this endpoint takes {takes}")
        if len(values) > 1:
            raise BadRequest(f"parameter {name!r} is given {len(values)} times")
    return {name: values[0] for name, values in query.items()}


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit: {value[:40]!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _before(value: str | None) -> int:
    if not value:
        return 0
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise BadRequest(f"before: {value[:40]!r} is not a list position (a whole number)")
    return int(value)


def _query(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > MAX_QUERY:
        raise BadRequest(f"q: longer than {MAX_QUERY} characters")
    return text


def _job_summary(job: ordo_pb2.Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "name": job.name,
        "type": job.type,
        "state": ordo_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_"),
    }


def _state(value: str) -> str:
    if value and value not in JOB_STATES:
        raise BadRequest(f"state: {value[:40]!r} is not a job state; one of {', '.join(JOB_STATES)}")
    return value


def bearer_token(headers: Headers) -> str | None:
    """The token a request carries: its ``Authorization: Bearer`` header, else its cookie."""
    auth = headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    cookie = headers.get("Cookie")
    if not cookie:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def token_cookie(token: str, *, secure: bool = False) -> str:
    """The ``Set-Cookie`` value that keeps ``token`` for this server's pages and API.

    ``secure`` (on HTTPS) keeps browsers from ever sending it over plain HTTP.
    """
    jar: SimpleCookie = SimpleCookie()
    jar[COOKIE] = token
    morsel = jar[COOKIE]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Strict"
    morsel["secure"] = secure
    return morsel.OutputString()


class App:
    """Answers one request from its method, target and headers; keeps no state between requests."""

    def __init__(
        self,
        registry: CollectorRegistry,
        dashboard: Dashboard | None = None,
        allow: Allow | None = None,
        *,
        https: bool = False,
        names: frozenset[str] = frozenset(),
    ) -> None:
        self.registry = registry
        self.dashboard = dashboard
        self.allow = allow
        self.https = https
        # The key of this process's CSRF tokens: a restart makes every page fetch a new one.
        self._csrf_key = secrets.token_bytes(32)
        # Host names an open port (no tokens) answers to, beside IP addresses and localhost.
        self.names = names | {"localhost"}
        package = resources.files(__package__ or "ordo_node.dashboard") / "static"
        self.static = {
            path: (package.joinpath(name).read_bytes(), ctype) for path, (name, ctype) in STATIC.items()
        }

    def handle(self, method: str, target: str, headers: Headers) -> Response:
        """The response to one request; never raises."""
        url = urlsplit(target)
        path = url.path
        api = path == "/api" or path.startswith("/api/")
        action = _action_path(path)
        try:
            if (method == "POST") != (action is not None) or method not in ("GET", "HEAD", "POST"):
                allowed = "POST" if action is not None else "GET, HEAD"
                what = "an action is a POST" if action is not None else "this path only reads"
                message = f"405 Method Not Allowed: {method[:20]} ({what})"
                return (
                    Response(405, json.dumps({"error": message}).encode(), JSON_TYPE, (("Allow", allowed),))
                    if api
                    else _text(405, message, ("Allow", allowed))
                )
            try:
                query = parse_qs(url.query, keep_blank_values=True, max_num_fields=20)
            except ValueError:
                raise BadRequest("the query string has too many parameters") from None
            if self.allow is not None:
                refused = self._authenticate(path, query, headers)
                if refused is not None:
                    return refused
            elif not self._known_host(headers.get("Host")):
                return _text(403, FOREIGN_HOST)
            if action is not None:
                _params(query, ())
                return self._act(*action, headers)
            return self._route(path, query, headers)
        except HttpError as e:
            return _json({"error": e.message}, e.status) if api else _text(e.status, e.message)
        except Unavailable as e:
            return _json({"error": str(e)}, 503) if api else _text(503, str(e))
        except Exception:
            log.exception("http %s %s failed", method[:20], path[:200])
            message = "internal error (the node's log has the details)"
            return _json({"error": message}, 500) if api else _text(500, message)

    def _known_host(self, host: str | None) -> bool:
        """True for a Host header naming this node: an IP address, or one of its names.

        An open port refuses other names: a web page whose own name resolves to
        this node (DNS rebinding) must not read it from a visitor's browser.
        """
        if not host:
            return True  # HTTP/1.0 clients such as scripts; browsers always send Host
        name = host.strip().lower()
        name = name[1 : name.find("]")] if name.startswith("[") else name.rpartition(":")[0] or name
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _authenticate(self, path: str, query: dict[str, list[str]], headers: Headers) -> Response | None:
        """None if the request may go on; else the 401 or the log-in redirect to send."""
        assert self.allow is not None
        if path == "/" and "token" in query:
            token = query["token"][-1]
            if token and self.allow(token):
                cookie = token_cookie(token, secure=self.https)
                return _text(303, "303 See Other: /", ("Location", "/"), ("Set-Cookie", cookie))
            return _text(401, UNAUTHORIZED, ("WWW-Authenticate", 'Bearer realm="ordo-node"'))
        if self.allow(bearer_token(headers)):
            return None
        return _text(401, UNAUTHORIZED, ("WWW-Authenticate", 'Bearer realm="ordo-node"'))

    def csrf_token(self, presented: str | None) -> str:
        """The CSRF token of a session: an HMAC of its bearer token (None: an open port's)."""
        message = b"ordo-csrf:" + (presented or "").encode()
        return hmac.new(self._csrf_key, message, hashlib.sha256).hexdigest()

    def _cross_site(self, headers: Headers) -> str | None:
        """Why a request that would act is refused as cross-site, or None."""
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site.strip().lower() != "same-origin":
            return f"a {site.strip()[:20]} request may not act (only this dashboard's own page may)"
        origin = headers.get("Origin")
        if origin is not None:
            own = f"{'https' if self.https else 'http'}://{(headers.get('Host') or '').strip().lower()}"
            if origin.strip().lower() != own:
                return f"a request from origin {origin[:100]!r} may not act (only {own} may)"
        sent = headers.get(CSRF_HEADER)
        expected = self.csrf_token(bearer_token(headers))
        if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
            return f"no valid {CSRF_HEADER} header: reload the page (the token comes from /api/session)"
        return None

    def _act(self, job_id: str, action: str, headers: Headers) -> Response:
        """One action on a job, checked for cross-site origin and for the caller's right to act."""
        if self.dashboard is None:
            raise NotFound("404 Not Found: this server has only /metrics")
        refused = self._cross_site(headers)
        if refused is not None:
            log.warning("http: refused %s of job %s: %s", action, job_id[:100], refused)
            return _json({"error": refused}, 403)
        actions = self.dashboard.actions
        if actions is None:
            return _json({"error": "this dashboard only reads: it was started without actions"}, 403)
        actor = actions.actor(bearer_token(headers))
        before = self.dashboard.last_seq(job_id) if actor.may_act else 0
        try:
            job = actions.run(action, job_id, actor)
        except ActionFailed as e:
            return _json({"error": e.message, "action": action, "job_id": job_id}, e.status)
        # On this node too the action is applied once run() returns: its own entry is there.
        event = self.dashboard.action_event(job.job_id, before, actor.name)
        return _json({"action": action, "by": actor.name, "job": _job_summary(job), "event": event})

    def _session(self, headers: Headers) -> dict[str, Any]:
        d = self.dashboard
        assert d is not None
        presented = bearer_token(headers)
        if d.actions is None:
            return {"can_act": False, "actor": "", "why": "this dashboard only reads", "csrf": ""}
        actor = d.actions.actor(presented)
        return {
            "can_act": actor.may_act,
            "actor": actor.name,
            "why": actor.refusal,
            "csrf": self.csrf_token(presented) if actor.may_act else "",
            "csrf_header": CSRF_HEADER,
        }

    def _route(self, path: str, query: dict[str, list[str]], headers: Headers) -> Response:
        if path == "/metrics":
            # The format Prometheus asks for (text or OpenMetrics), as prometheus_client's own server does.
            encode, content_type = choose_encoder(headers.get("Accept") or "")
            return Response(200, encode(self.registry), content_type)
        if self.dashboard is None:
            raise NotFound(f"404 Not Found: {path[:200]} (this server has only /metrics)")
        if path in self.static:
            body, ctype = self.static[path]
            policy = (("Content-Security-Policy", CSP),) if ctype.startswith("text/html") else ()
            return Response(200, body, ctype, policy)
        if path == "/api/session":
            _params(query, ())
            return _json(self._session(headers))
        if path == "/api" or path.startswith("/api/"):
            return self._api(path, query)
        raise NotFound(f"404 Not Found: {path[:200]} (the dashboard is at /, metrics at /metrics)")

    def _api(self, path: str, query: dict[str, list[str]]) -> Response:
        d = self.dashboard
        assert d is not None
        if path in ("/api", "/api/"):
            _params(query, ())
            return _json(API_INDEX)
        if path == "/api/cluster":
            _params(query, ())
            return _json(d.cluster())
        if path == "/api/counts":
            _params(query, ())
            return _json(d.counts())
        if path == "/api/jobs":
            p = _params(query, ("state", "q", "before", "limit"))
            return _json(
                d.jobs(
                    _state(p.get("state", "")),
                    _limit(p.get("limit")),
                    _query(p.get("q")),
                    _before(p.get("before")),
                )
            )
        if path == "/api/schedules":
            _params(query, ())
            return _json(d.schedules())
        if path == "/api/chart":
            _params(query, ())
            return _json(d.chart())
        if path == "/api/runs/recent":
            p = _params(query, ("limit",))
            return _json(d.recent(_limit(p.get("limit"))))
        prefix = "/api/jobs/"
        if path.startswith(prefix) and len(path) > len(prefix) and "/" not in path[len(prefix) :]:
            _params(query, ())
            job_id = unquote(path[len(prefix) :])
            job = d.job(job_id)
            if job is None:
                raise NotFound(f"no job {job_id[:100]!r} on this node")
            return _json(job)
        raise NotFound(f"no such endpoint: {path[:200]} (see /api for the list)")


def _action_path(path: str) -> tuple[str, str] | None:
    """(job id, action) of ``/api/jobs/<id>/<action>``, or None for any other path."""
    prefix = "/api/jobs/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix) :].split("/")
    if len(parts) != 2 or not parts[0] or parts[1] not in ACTIONS:
        return None
    return unquote(parts[0]), parts[1]


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the server's :class:`App` and writes what it answers."""

    server_version = "ordo-node"
    sys_version = ""
    timeout = REQUEST_TIMEOUT  # per read: an idle or stalled connection is dropped

    def _answer(self) -> None:
        app: App = self.server.app  # type: ignore[attr-defined]
        self._discard_body()
        response = app.handle(self.command, self.path, self.headers)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in (*COMMON_HEADERS, *response.headers):
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def _discard_body(self) -> None:
        """Read a small request body (no route takes one), so the answer is not lost to a reset."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and 0 < int(length) <= MAX_BODY:
            self.rfile.read(int(length))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Never the request line: its query string may hold a token.
        path = urlsplit(getattr(self, "path", "")).path[:200]
        log.debug("http %s %s: %s", getattr(self, "command", "-")[:20], path, code)

    def log_message(self, format: str, *args: Any) -> None:
        path = urlsplit(getattr(self, "path", "")).path[:200]
        text = (format % args).replace(getattr(self, "requestline", "") or "\0", "<request line>")
        log.debug("http %s %s: %s", getattr(self, "command", "-")[:20], path, text[:300])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog

    def __init__(self, host: str, port: int, app: App, tls: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self.tls = tls
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, at most MAX_CONNECTIONS at once; the rest are closed at once."""
        if not self.slots.acquire(blocking=False):
            log.warning("http: %d connections open; refusing %s", MAX_CONNECTIONS, client_address[0])
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Answer one connection; with TLS, the handshake happens here, on the connection's own thread."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log.debug("http: TLS handshake with %s failed: %s", client_address, e)
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            self.shutdown_request(wrapped)


class HttpServer:
    """Serves an :class:`App` on ``host:port`` from a daemon thread until :meth:`close`."""

    def __init__(self, address: str, app: App, tls: ssl.SSLContext | None = None) -> None:
        host, _, port = address.rpartition(":")
        self._server = _Server(host.strip("[]"), int(port), app, tls)  # binds now: OSError if it cannot
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on (the real one when the address asked for port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Start answering requests."""
        self._thread.start()

    def close(self) -> None:
        """Stop answering and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
