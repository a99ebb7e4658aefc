"""free_ports: distinct ports, free, outside the kernel's ephemeral range where it leaves room below it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ordo_node.tools import localcluster
from ordo_node.tools.localcluster import free_ports


def test_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = free_ports(20)
    assert len(set(ports)) == 20
    if low - localcluster._LOWEST_PORT >= localcluster._MIN_POOL:
        assert all(localcluster._LOWEST_PORT <= p < low for p in ports)
    for port in ports:  # each can be bound now, as a node will
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    # and the next call hands out none of them again
    assert not set(free_ports(20)) & set(ports)


def test_without_room_below_the_range_the_kernel_chooses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    narrow = tmp_path / "range"
    narrow.write_text("10500\t60999\n")
    monkeypatch.setattr(localcluster, "_EPHEMERAL_RANGE", narrow)
    assert localcluster._pool() == range(0)
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
