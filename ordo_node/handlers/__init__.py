"""The job handler registry.

A job's ``type`` names a handler registered here. The scheduler validates a
payload with :meth:`Registry.validate` when a job is submitted and calls
:meth:`Registry.run` for every attempt. Users add handlers with the
:func:`handler` decorator in modules listed in the configuration, which the
node imports with :func:`load_modules` at start-up.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ordo_node.errors import ConfigError, InvalidArgument

__all__ = [
    "Handler",
    "HandlerFn",
    "JobContext",
    "Registry",
    "handler",
    "load_modules",
    "registry",
]


@dataclass(frozen=True)
class JobContext:
    """What a handler knows about the run it is executing."""

    job_id: str
    run_id: str
    attempt: int
    job_type: str
    name: str
    idempotency_key: str
    scheduled_at: datetime
    node_id: str
    data_dir: Path
    logger: logging.Logger
    # Set when the cluster asks this attempt to stop (CancelJob, or its run
    # was given to another node); a long-running handler returns soon after.
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Call now and then from a long-running handler: it shows in the cluster
    # status, with an optional note on progress.
    heartbeat: Callable[[str], None] = field(default=lambda note="": None)


HandlerFn = Callable[[JobContext, Any], Any]


@dataclass(frozen=True)
class Handler:
    """A registered handler: its job type name, function and optional payload validator."""

    name: str
    fn: HandlerFn
    validate: Callable[[Any], None] | None


class Registry:
    """Maps job type names to handlers."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, fn: HandlerFn, validate: Callable[[Any], None] | None = None) -> None:
        """Register ``fn`` as the handler for job type ``name``; a name may be registered once."""
        if name in self._handlers:
            raise ValueError(f"handler '{name}' is already registered")
        self._handlers[name] = Handler(name=name, fn=fn, validate=validate)

    def get(self, name: str) -> Handler:
        """Return the handler for ``name``; raise KeyError when there is none."""
        return self._handlers[name]

    def names(self) -> list[str]:
        """Return the registered job type names, sorted."""
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        """Tell whether a handler is registered under ``name``."""
        return name in self._handlers

    def validate(self, name: str, payload: Any, elsewhere: Collection[str] = ()) -> None:
        """Check that ``name`` is a known job type and that its validator accepts ``payload``.

        ``elsewhere``: the types that other processes run (registered workers): such a
        type is known, and its payload is checked by the worker's handler when it runs.
        Raises InvalidArgument naming the offending field.
        """
        found = self._handlers.get(name)
        if found is None:
            if name in elsewhere:
                return
            known = ", ".join(sorted({*self.names(), *elsewhere}))
            raise InvalidArgument("type", f"unknown job type '{name}'; known: {known}")
        if found.validate is not None:
            found.validate(payload)

    async def run(self, name: str, ctx: JobContext, payload: Any) -> Any:
        """Run the handler for ``name`` and return its result.

        Coroutine functions are awaited; plain functions run in a worker thread
        so that a blocking handler cannot stall the event loop.
        """
        fn = self.get(name).fn
        if inspect.iscoroutinefunction(fn):
            return await fn(ctx, payload)
        result = await asyncio.to_thread(fn, ctx, payload)
        # A callable object with an async __call__ is not a coroutine function
        # but hands back a coroutine; it still has to run on the loop.
        if inspect.isawaitable(result):
            return await result
        return result


registry = Registry()


def handler(name: str, *, validate: Callable[[Any], None] | None = None) -> Callable[[HandlerFn], HandlerFn]:
    """Decorator registering a function as the handler for job type ``name`` in the default registry."""

    def decorate(fn: HandlerFn) -> HandlerFn:
        # Looked up at call time so that tests can swap the default registry.
        registry.register(name, fn, validate)
        return fn

    return decorate


def load_modules(modules: list[str]) -> None:
    """Import each named module so that its ``@handler`` functions register themselves.

    Any failure becomes a ConfigError naming the module.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:
            raise ConfigError(f"handlers: cannot import module '{module}': {e}") from e


# At the bottom because builtin needs the names above.
from ordo_node.handlers.builtin import register_builtins  # noqa: E402

register_builtins(registry)
