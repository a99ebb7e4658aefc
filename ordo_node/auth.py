"""Who may call what: bearer tokens for the public API, a member credential for PeerService.

Public API (``ordo.v1.JobService``, ``ordo.v1.ClusterService``): when the
config lists ``[auth] tokens``, every call carries ``authorization: Bearer
<token>``; ``read`` tokens may call the methods in :data:`READ_METHODS`,
``admin`` tokens everything. ``worker`` tokens may call WorkerService (a
worker's stream and its reports) and nothing else, and only they may. With no
tokens configured the public API and WorkerService are open (the local
default). Health and reflection stay open: they reveal no data.

PeerService (the leader's assignments to executors) is always closed to
strangers, tokens or not: a caller names itself in ``ordo-peer`` metadata as
``<node id>:<HMAC-SHA256 of the node id under the cluster secret>``, and must
be a current member. Over plaintext the credential can be seen on the wire;
with ``[tls]`` it cannot, and ``require_client_cert`` adds certificates.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc

from .config import Token

log = logging.getLogger("ordo_node.auth")

PUBLIC_SERVICES = ("/ordo.v1.JobService/", "/ordo.v1.ClusterService/")
PEER_SERVICE = "/ordo.v1.PeerService/"
WORKER_SERVICE = "/ordo.v1.WorkerService/"
READ_METHODS = frozenset(
    {
        "/ordo.v1.JobService/GetJob",
        "/ordo.v1.JobService/ListJobs",
        "/ordo.v1.JobService/GetJobHistory",
        "/ordo.v1.JobService/ListOccurrences",
        "/ordo.v1.JobService/ExplainOccurrence",
        "/ordo.v1.JobService/PreviewSchedule",
        "/ordo.v1.JobService/WatchJobs",
        "/ordo.v1.ClusterService/GetClusterStatus",
    }
)
PEER_KEY = "ordo-peer"


def peer_credential(secret: str, node_id: str) -> str:
    """The ``ordo-peer`` metadata value node ``node_id`` sends."""
    mac = hmac.new(secret.encode(), f"ordo-peer:{node_id}".encode(), hashlib.sha256).hexdigest()
    return f"{node_id}:{mac}"


class Tokens:
    """The configured tokens, looked up in constant time."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tuple(tokens)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def find(self, presented: str | None) -> Token | None:
        """The token whose value is ``presented``, if any."""
        if not presented:
            return None
        found = None
        for token in self.tokens:
            if hmac.compare_digest(token.token.encode(), presented.encode()):
                found = token
        return found

    def can_read(self, presented: str | None) -> bool:
        """True for read and admin tokens: both may look (a worker token may not)."""
        token = self.find(presented)
        return token is not None and token.role != "worker"

    @staticmethod
    def permits(token: Token, method: str) -> bool:
        """True when ``token`` may call ``method`` (a full gRPC method name)."""
        if token.role == "worker":
            return method.startswith(WORKER_SERVICE)
        return token.role == "admin" or method in READ_METHODS


def token_refusal(
    tokens: Tokens, metadata: Sequence[tuple[str, str | bytes]] | None, worker_id: str
) -> tuple[grpc.StatusCode, str] | None:
    """Why a worker token may not act as ``worker_id`` (its ``workers`` patterns), or None."""
    token = tokens.find(bearer(metadata))
    if token is None or not token.workers or any(fnmatch.fnmatchcase(worker_id, p) for p in token.workers):
        return None
    allowed = ", ".join(token.workers)
    return grpc.StatusCode.PERMISSION_DENIED, f"workerId: token '{token.name}' may act only as {allowed}"


def certificate_refusal(
    patterns: Sequence[str],
    metadata: Sequence[tuple[str, str | bytes]] | None,
    auth_context: Mapping[str, Sequence[bytes]],
    worker_id: str,
) -> tuple[grpc.StatusCode, str] | None:
    """Why a worker's call is refused under ``[auth] worker_certificates`` (None: let it through).

    A call with a bearer token was checked by the interceptor. One without
    needs a client certificate whose common name matches a pattern, and names
    the worker itself: the certificate is the worker's identity, so it cannot
    connect or report as another.
    """
    if not patterns or bearer(metadata) is not None:
        return None
    names = [n.decode(errors="replace") for n in auth_context.get("x509_common_name", ())]
    if not names:
        return grpc.StatusCode.UNAUTHENTICATED, "no worker token and no client certificate"
    name = names[0]
    if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
        return grpc.StatusCode.PERMISSION_DENIED, f"certificate '{name}' matches no auth.worker_certificates"
    if name != worker_id:
        return (
            grpc.StatusCode.PERMISSION_DENIED,
            f"workerId: the certificate is for '{name}', not '{worker_id}'",
        )
    return None


def bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer ...`` entry, if any."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without the right credential, before any service code runs."""

    def __init__(
        self,
        tokens: Tokens,
        secret: str,
        is_member: Callable[[str], bool],
        worker_certificates: Sequence[str] = (),
    ) -> None:
        self.tokens = tokens
        self.secret = secret
        self.is_member = is_member
        self.worker_certificates = tuple(worker_certificates)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method: str = details.method
        refusal = self.refusal(method, details.invocation_metadata)
        if refusal is None:
            return handler
        code, message = refusal
        log.warning("refused %s: %s", method, message)
        return _refuse(handler, code, message)

    def refusal(
        self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None
    ) -> tuple[grpc.StatusCode, str] | None:
        """Why a call to ``method`` with ``metadata`` is refused, or None to let it through."""
        if method.startswith(PEER_SERVICE):
            return self._peer_refusal(metadata)
        if method.startswith(WORKER_SERVICE) and self.worker_certificates and bearer(metadata) is None:
            return None  # a client certificate, which only WorkerService can see: it checks it
        if not self.tokens.enabled or not method.startswith((*PUBLIC_SERVICES, WORKER_SERVICE)):
            return None
        presented = bearer(metadata)
        token = self.tokens.find(presented)
        if token is None:
            what = "no bearer token" if presented is None else "an unknown bearer token"
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                f"{what}: send 'authorization: Bearer <token>' with a token from the node's [auth] section",
            )
        if method.startswith(WORKER_SERVICE) != (token.role == "worker"):
            name = method.rsplit("/", 1)[-1]
            need = "a worker token" if method.startswith(WORKER_SERVICE) else "a read or admin token"
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"token '{token.name}' is a {token.role} token; {name} needs {need}",
            )
        if not self.tokens.permits(token, method):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"token '{token.name}' is read-only; {method.rsplit('/', 1)[-1]} needs an admin token",
            )
        return None

    def _peer_refusal(
        self, metadata: Sequence[tuple[str, str | bytes]] | None
    ) -> tuple[grpc.StatusCode, str] | None:
        value = next((v for k, v in metadata or () if k == PEER_KEY and isinstance(v, str)), None)
        if value is None:
            return grpc.StatusCode.UNAUTHENTICATED, "PeerService is for cluster members only"
        node_id = value.partition(":")[0]
        if not hmac.compare_digest(value.encode(), peer_credential(self.secret, node_id).encode()):
            return grpc.StatusCode.UNAUTHENTICATED, "bad member credential (is the cluster secret the same?)"
        if not self.is_member(node_id):
            return grpc.StatusCode.PERMISSION_DENIED, f"'{node_id}' is not a member of this cluster"
        return None


def _refuse(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler that aborts with ``code`` without reading the request.

    It takes the request as a stream it never iterates, whatever the method's
    shape, so a refused caller cannot make the node buffer and decode a large
    message first.
    """

    async def abort(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def abort_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises

    if handler.unary_stream is not None or handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    return grpc.stream_unary_rpc_method_handler(abort)
