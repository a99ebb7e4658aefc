"""One definition for both sides of a job: the handler a worker runs, and the entry point to submit it.

    from ordo_node.tasks import task

    @task("send_report", max_attempts=3)
    async def send_report(ctx: JobContext, customer_id: int, period: str = "month") -> dict:
        ...

    job_id = await send_report.submit(client, customer_id=7)            # keyword arguments: the payload
    job_id = await send_report.options(delay=60).submit(client, customer_id=7)
    job_id = send_report.submit(sync_client, customer_id=7)             # a SyncClient answers at once
    requests = [send_report.request(customer_id=c) for c in customers]  # for client.submit_many

The function's keyword arguments become the payload (a JSON object); they are
bound to its signature in the caller, so a misspelt or missing argument fails
there (TypeError), not on a worker an hour later. The node that takes the
submission checks them again against the same signature. The job options
(``delay``, ``run_at``, ``cron``, ``max_attempts``, ``idempotency_key``... as
:func:`ordo_node.client.submit_request` names them) are given to :func:`task`,
or per call with :meth:`Task.options`; an unknown option name is a TypeError.

The module that defines tasks is a handler module: list it in a node's or a
worker's ``handlers`` so that it registers them where they run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, overload

from . import handlers
from .client import Client, SyncClient, submit_request
from .errors import InvalidArgument
from .handlers import JobContext, Registry
from .pb import ordo_pb2

# The options a job takes besides its type and payload: submit_request's own keywords.
OPTIONS = frozenset(p for p in inspect.signature(submit_request).parameters if p not in ("type", "payload"))


class Task:
    """A job type with its handler and default options; see the module's docstring."""

    def __init__(self, name: str, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.name = name
        self.fn = fn
        self._options = check_options(options)
        self._signature = inspect.signature(fn)
        params = list(self._signature.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError(f"task {name!r}: the function's first parameter must take the JobContext")
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<task {self.name!r} {self.fn.__module__}.{self.fn.__qualname__}{self._signature}>"

    def payload(self, **kwargs: Any) -> dict[str, Any]:
        """The payload of a call: the keyword arguments, checked against the function's signature."""
        try:
            self._signature.bind(None, **kwargs)
        except TypeError as e:
            raise TypeError(f"task {self.name!r}: {e}") from None
        return kwargs

    def options(self, **options: Any) -> Task:
        """The same task with these job options for its next submissions (over the defaults)."""
        return Task(self.name, self.fn, {**self._options, **options})

    def request(self, **kwargs: Any) -> ordo_pb2.SubmitJobRequest:
        """The SubmitJobRequest of a call (for ``client.submit_many``)."""
        return submit_request(self.name, self.payload(**kwargs), **self._options)

    @overload
    def submit(self, client: SyncClient, **kwargs: Any) -> str: ...

    @overload
    def submit(self, client: Client, **kwargs: Any) -> Awaitable[str]: ...

    def submit(self, client: Client | SyncClient, **kwargs: Any) -> str | Awaitable[str]:
        """Schedule one job of this task: awaitable with a Client, its id at once with a SyncClient."""
        return client.send(self.request(**kwargs))

    def register(self, target: Registry) -> None:
        """Register the handler (as the job type ``name``) in ``target``."""
        target.register(self.name, self._handler(), self._validate)

    def _handler(self) -> Callable[[JobContext, Any], Any]:
        fn = self.fn
        if inspect.iscoroutinefunction(fn):

            async def run_async(ctx: JobContext, payload: Any) -> Any:
                return await fn(ctx, **(payload or {}))

            return run_async

        def run(ctx: JobContext, payload: Any) -> Any:
            return fn(ctx, **(payload or {}))

        return run

    def _validate(self, payload: Any) -> None:
        """The node's check at submission: an object whose keys fit the function's signature."""
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise InvalidArgument("payload", f"task {self.name!r} takes an object of keyword arguments")
        try:
            self._signature.bind(None, **payload)
        except TypeError as e:
            raise InvalidArgument("payload", f"task {self.name!r}: {e}") from None


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options, or TypeError naming the first unknown one."""
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise TypeError(f"unknown job option {unknown[0]!r}; known: {', '.join(sorted(OPTIONS))}")
    return dict(options)


def task(name: str | None = None, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """Decorator: the function becomes a Task, registered as job type ``name`` (default: its name)."""

    def decorate(fn: Callable[..., Any]) -> Task:
        t = Task(name or fn.__name__, fn, options)
        t.register(handlers.registry)  # looked up now: tests swap the default registry
        return t

    return decorate
