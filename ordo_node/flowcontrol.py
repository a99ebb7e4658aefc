"""The dispatcher's side of concurrency keys: offer no attempt whose key is at its limit.

The decision is the state machine's (``statemachine/concurrency.py``: an
assignment over the limit is refused in apply and the attempt notes why); this
only keeps the leader from proposing what apply would refuse, counting the
attempts that hold each key (assigned or running, committed) and those it has
proposed and not yet seen committed (``reserved``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .queries import Queries


def admit(
    runs: Iterable[Any], keyed: dict[tuple[str, int], tuple[str, int]], taken: dict[str, int]
) -> tuple[list[Any], int]:
    """Of ``runs`` (tuples starting with run id and attempt), in order, those that keep their key
    within its limit, given ``keyed`` (attempt -> (key, limit)) and ``taken`` (key -> attempts
    holding it), which is updated. Returns them and how many were held back. Pure."""
    out: list[Any] = []
    held_back = 0
    for run in runs:
        kl = keyed.get((run[0], run[1]))
        if kl is not None:
            key, limit = kl
            if taken.get(key, 0) >= limit:
                held_back += 1
                continue
            taken[key] = taken.get(key, 0) + 1
        out.append(run)
    return out, held_back


async def admit_keyed(
    queries: Queries, reserved: Iterable[tuple[str, int]], *batches: Sequence[Any]
) -> tuple[list[list[Any]], int]:
    """:func:`admit` over each batch in turn (due runs first, then those ahead of their time), with
    the keys' holders read from the store. Returns the batches admitted and how many were held."""
    open_runs = await queries.open_keyed_runs()
    if not open_runs:
        return [list(b) for b in batches], 0
    keyed = {(r[0], r[1]): (r[3], r[4]) for r in open_runs}
    taken: dict[str, int] = {}
    holding = {(r[0], r[1]) for r in open_runs if r[2] != "PENDING"} | {k for k in reserved if k in keyed}
    for k in holding:
        key = keyed[k][0]
        taken[key] = taken.get(key, 0) + 1
    out: list[list[Any]] = []
    held = 0
    for batch in batches:
        admitted, n = admit(batch, keyed, taken)
        out.append(admitted)
        held += n
    return out, held
