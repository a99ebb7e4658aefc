"""The one place where errors become gRPC status codes.

A user's mistake is never INTERNAL, and no stack trace crosses the wire: an
unexpected exception is logged here with its trace and the client gets a
short INTERNAL message that points at the node's log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ..errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    OrdoError,
    Unavailable,
)

log = logging.getLogger("ordo_node.api")

CODES: dict[type[OrdoError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
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


def status_of(error: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status an exception leaves as: its own for an OrdoError, INTERNAL (logged) otherwise."""
    if isinstance(error, OrdoError):
        return code_for(error), str(error)
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
