"""The one place where errors become gRPC status codes.

A user's mistake is never INTERNAL, and no stack trace crosses the wire: an
unexpected exception is logged here with its trace and the client gets a
short INTERNAL message that points at the node's log. A request that does not
even decode is answered INVALID_ARGUMENT by :class:`DecodeErrors`.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from ..errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    OrdoError,
    PermissionDenied,
    Unavailable,
)
from .validate import MAX_MESSAGE_BYTES

log = logging.getLogger("ordo_node.api")

CODES: dict[type[OrdoError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    InternalError: grpc.StatusCode.INTERNAL,
}

# Refusals the state machine returns as values, by the code it names.
REFUSALS: dict[str, type[OrdoError]] = {
    "ALREADY_EXISTS": AlreadyExists,
    "NOT_FOUND": NotFound,
    "FAILED_PRECONDITION": FailedPrecondition,
    "INTERNAL": InternalError,
}


def code_for(error: OrdoError) -> grpc.StatusCode:
    """The status code of an error (its nearest mapped class; else FAILED_PRECONDITION)."""
    for cls in type(error).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.FAILED_PRECONDITION


def raise_refusal(result: Any) -> None:
    """Raise the error a state-machine result carries, if it carries one."""
    if isinstance(result, dict) and "error" in result:
        raise REFUSALS.get(result["error"], FailedPrecondition)(result.get("message", result["error"]))


R = TypeVar("R")


def short(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """``message`` cut to ``limit`` UTF-8 bytes: a longer status would not reach the client at all."""
    data = message.encode()
    if len(data) <= limit:
        return message
    return data[: limit - 3].decode(errors="ignore") + "..."


def status_of(error: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status an exception leaves as: its own for an OrdoError, INTERNAL (logged) otherwise."""
    if isinstance(error, OrdoError):
        return code_for(error), short(str(error))
    log.error("unexpected error in %s", method, exc_info=error)
    return grpc.StatusCode.INTERNAL, "internal error; the node's log has the details"


def rpc_stream(method: Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[R]]) -> Any:
    """Like :func:`rpc`, for a server-streaming method (an async generator)."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[R]:
        try:
            async for item in method(self, request, context):
                yield item
            return
        except Exception as e:
            code, message = status_of(e, method.__name__)
        await context.abort(code, message)

    return wrapper


Method = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def rpc(method: Method[R]) -> Method[R]:
    """Wrap a servicer method so every error leaves as the right status code."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except Exception as e:
            code, message = status_of(e, method.__name__)
        await context.abort(code, message)
        raise AssertionError("unreachable: abort raises")

    return wrapper


@dataclass(frozen=True)
class Undecodable:
    """What a request that is not a valid protobuf message of its type decodes to."""

    reason: str


class DecodeErrors(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Answers INVALID_ARGUMENT to a unary request that does not decode, where gRPC answers UNKNOWN.

    The deserializer hands an :class:`Undecodable` to the method instead of
    raising; the wrapped method aborts before the servicer sees it. Install it
    among the server's interceptors (node.py).
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """The method's handler, with a deserializer that does not raise."""
        handler = await continuation(details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer

        def guarded(data: bytes) -> Any:
            try:
                return decode(data)
            except DecodeError as e:
                return Undecodable(str(e))

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary), guarded, handler.response_serializer
            )
        return grpc.unary_stream_rpc_method_handler(
            _stream(handler.unary_stream), guarded, handler.response_serializer
        )


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, Undecodable):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, short(f"request: {request.reason}"))


def _unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _refuse(request, context)
        return await behavior(request, context)

    return unary


def _stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
    # gRPC tells a streaming method that yields from one that writes by what the method is.
    if inspect.isasyncgenfunction(behavior):

        async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await _refuse(request, context)
            async for item in behavior(request, context):
                yield item

        return generator

    async def writer(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _refuse(request, context)
        return await behavior(request, context)

    return writer
