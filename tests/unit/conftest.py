"""Fixtures of the unit tests that drive a real store: its file, the store, a log of commands, queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from applylog import Log

from ordo_node.queries import Queries
from ordo_node.statemachine.store import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def apply(store: Store) -> Log:
    """Commands applied to ``store`` at consecutive indexes."""
    return Log(store)


@pytest.fixture
async def queries(store: Store) -> AsyncIterator[Queries]:
    q = Queries(store.path)
    await q.open()
    yield q
    await q.close()
