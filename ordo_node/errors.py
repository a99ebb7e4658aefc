"""The one error tree of ordo_node.

Every error a user can cause or see is an :class:`OrdoError`. The API layer
maps each class to one gRPC status code in one place (``api/errors.py``); the
message travels to the client as written here, so it must name the field or
the object it is about and never carry a stack trace.
"""

from __future__ import annotations

from typing import Any


class OrdoError(Exception):
    """Root of every error ordo_node raises on purpose."""


class ConfigError(OrdoError):
    """A configuration file or value is wrong; the message names file and key."""


class InvalidArgument(OrdoError):
    """A request field is invalid; ``field`` names it (lowerCamelCase, as on the wire)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(OrdoError):
    """The object a request names does not exist."""


class AlreadyExists(OrdoError):
    """The request would create something that exists with a different definition."""


class FailedPrecondition(OrdoError):
    """The object is not in a state that allows the requested transition."""


class PermissionDenied(OrdoError):
    """The caller may not do this (a worker proposing what is not its own to propose)."""


class Unavailable(OrdoError):
    """No leader, shutting down or overloaded: the caller may retry."""


class DeadlineExceeded(OrdoError):
    """A command was not committed in time; it may still commit later."""


class InternalError(OrdoError):
    """A bug: the node's log has the details; the client gets no more than this."""


class HandlerFailed(OrdoError):
    """A job handler reports failure, with details kept as the run's result."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details
