"""@task: one definition for the handler and the typed entry point that submits it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ordo_node import handlers as handlers_mod
from ordo_node.errors import InvalidArgument
from ordo_node.handlers import JobContext, Registry
from ordo_node.pb import ordo_pb2
from ordo_node.tasks import task


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Registry:
    registry = Registry()
    monkeypatch.setattr(handlers_mod, "registry", registry)
    return registry


class Recorder:
    """Stands for a Client: keeps the requests it is given."""

    def __init__(self) -> None:
        self.sent: list[ordo_pb2.SubmitJobRequest] = []

    async def send(self, request: ordo_pb2.SubmitJobRequest) -> str:
        self.sent.append(request)
        return f"job-{len(self.sent)}"


async def test_keyword_arguments_become_the_payload_and_options_the_jobs(fresh: Registry) -> None:
    @task("send_report", max_attempts=3)
    async def send_report(ctx: JobContext, customer_id: int, period: str = "month") -> dict[str, Any]:
        return {"customer": customer_id, "period": period}

    client = Recorder()
    job_id = await send_report.submit(client, customer_id=9007199254740993)  # type: ignore[call-overload]
    later = await send_report.options(delay=60, idempotency_key="r-7").submit(  # type: ignore[call-overload]
        client, customer_id=7, period="week"
    )

    assert (job_id, later) == ("job-1", "job-2")
    first, second = client.sent
    assert first.type == "send_report" and json.loads(first.payload_json) == {"customer_id": 9007199254740993}
    assert first.max_attempts == 3 and not first.HasField("delay")
    assert json.loads(second.payload_json) == {"customer_id": 7, "period": "week"}
    assert second.delay.seconds == 60 and second.idempotency_key == "r-7" and second.max_attempts == 3
    assert "send_report" in fresh


def test_a_misspelt_or_missing_argument_fails_in_the_caller(fresh: Registry) -> None:
    @task()
    def resize(ctx: JobContext, image: str, width: int) -> None:
        return None

    with pytest.raises(TypeError, match="task 'resize': got an unexpected keyword argument 'widht'"):
        resize.request(image="a.png", width=10, widht=10)
    with pytest.raises(TypeError, match="task 'resize': missing a required argument: 'width'"):
        resize.request(image="a.png")
    with pytest.raises(TypeError, match="unknown job option 'dealy'"):
        resize.options(dealy=5)
    assert resize.request(image="a.png", width=10).type == "resize"


async def test_the_registered_handler_calls_the_function_with_the_payload_as_keywords(
    fresh: Registry, tmp_path: Path
) -> None:
    @task("add")
    async def add(ctx: JobContext, a: int, b: int = 1) -> int:
        return a + b

    @task("shout")
    def shout(ctx: JobContext, text: str) -> str:
        return text.upper()

    ctx = JobContext("j", "j:1", 1, "add", "", "", None, "node1", tmp_path, None)  # type: ignore[arg-type]
    assert await fresh.run("add", ctx, {"a": 2**53 + 1}) == 2**53 + 2
    assert await fresh.run("shout", ctx, {"text": "hi"}) == "HI"
    # and the node checks a submitted payload against the same signature
    fresh.validate("add", {"a": 1, "b": 2})
    with pytest.raises(InvalidArgument) as refused:
        fresh.validate("add", {"c": 1})
    assert refused.value.field == "payload" and "missing a required argument: 'a'" in refused.value.reason
    with pytest.raises(InvalidArgument, match="takes an object of keyword arguments"):
        fresh.validate("add", [1, 2])


def test_the_first_parameter_takes_the_context(fresh: Registry) -> None:
    with pytest.raises(TypeError, match="first parameter must take the JobContext"):

        @task("bad")
        def bad(*, x: int) -> None:
            return None
