"""The client's retries: it rides out nodes that answer UNAVAILABLE, and gives up fast when none answers."""

from __future__ import annotations

import time

import grpc
import pytest

from ordo_node.client import UNREACHABLE_AFTER, Client
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
