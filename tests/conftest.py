"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Cluster

MakeCluster = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[MakeCluster]:
    """Start real clusters on free ports; every one is stopped, and its logs printed, at teardown."""
    clusters: list[Cluster] = []

    async def make(size: int = 3, *, wait: bool = True, **kwargs: Any) -> Cluster:
        root = tmp_path / f"cluster{len(clusters)}"
        root.mkdir()
        cluster = Cluster(root, size=size, **kwargs)
        clusters.append(cluster)
        cluster.start()
        if wait:
            await cluster.wait_for_leader()
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            await cluster.stop()
            # Shown by pytest only when the test failed.
            print(cluster.logs())


@pytest.fixture
async def cluster(make_cluster: MakeCluster) -> Cluster:
    """A running 3-node cluster with an elected leader."""
    return await make_cluster()
