"""The client's retries: it rides out nodes that answer UNAVAILABLE, and gives up fast when none answers."""

from __future__ import annotations

import inspect
import time
from datetime import UTC, datetime

import grpc
import pytest

from ordo_node.client import UNREACHABLE_AFTER, Client, SyncClient, submit_request
from ordo_node.tools.localcluster import free_ports


async def test_a_client_whose_every_address_refuses_says_so_within_about_two_seconds() -> None:
    # Given two addresses where nothing listens
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    async with Client(addresses, timeout=15) as client:
        started = time.monotonic()

        # When a call is made
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.list_jobs()
        took = time.monotonic() - started

    # Then it ends well before the 15 s timeout, with one line naming the addresses
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    details = raised.value.details() or ""
    assert details.startswith(f"no node answers at {addresses[0]}, {addresses[1]}")
    assert "is the cluster running" in details and "\n" not in details
    assert UNREACHABLE_AFTER <= took < UNREACHABLE_AFTER + 2.5


async def test_the_sync_client_works_where_an_event_loop_already_runs() -> None:
    # Given a running event loop on this thread (this test is a coroutine), and no node listening
    addresses = [f"127.0.0.1:{p}" for p in free_ports(1)]
    # When a blocking call is made from inside it
    with SyncClient(addresses, timeout=5) as client, pytest.raises(grpc.aio.AioRpcError) as raised:
        client.list_jobs()

    # Then the call itself ran (on the client's own loop) and answered, rather than
    # failing with "this event loop is already running"
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (raised.value.details() or "").startswith("no node answers at")


def test_the_sync_client_shows_its_methods_with_their_signatures() -> None:
    # An IDE sees real methods: every public coroutine of Client has a plain method of the same name
    names = {n for n, f in vars(Client).items() if inspect.iscoroutinefunction(f) and not n.startswith("_")}
    names.add("watch")
    for name in names:
        method = vars(SyncClient).get(name)
        assert method is not None and not inspect.iscoroutinefunction(method), name
        sync_params = list(inspect.signature(method).parameters)
        async_params = list(inspect.signature(getattr(Client, name)).parameters)
        assert sync_params == async_params, name


@pytest.mark.parametrize("field", ["run_at", "start_at", "end_at"])
def test_a_naive_datetime_is_refused_naming_the_argument(field: str) -> None:
    naive = datetime(2030, 1, 1, 9, 0)
    kwargs: dict[str, object] = {field: naive}
    if field != "run_at":
        kwargs["cron"] = "0 9 * * *"

    with pytest.raises(ValueError, match=f"^{field}: a naive datetime"):
        submit_request("echo", {}, **kwargs)  # type: ignore[arg-type]

    aware = submit_request("echo", {}, **{**kwargs, field: naive.replace(tzinfo=UTC)})  # type: ignore[arg-type]
    assert getattr(aware, field) == "2030-01-01T09:00:00.000000Z"
