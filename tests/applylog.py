"""Unit tests' way to drive a store: commands applied at consecutive indexes, tables read back."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from ordo_node import commands as c
from ordo_node.statemachine.store import Store


class Log:
    """Applies commands to one store at consecutive indexes, as the Raft engine does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = store.last_applied

    def __call__(self, cmd: c.Command) -> Any:
        self.index += 1
        return self.store.apply(self.index, c.encode(cmd))


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` read through a fresh connection (so: only committed data)."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


def apply_to(store: Store, cmd: c.Command) -> Any:
    """Apply one command at the store's next index."""
    return store.apply(store.last_applied + 1, c.encode(cmd))


def store_rows(store: Store, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` in the store's file, read through a fresh connection."""
    return rows(store.path, sql, *args)
