"""What both ends of the wire share: JSON values to and from ``google.protobuf.Value``, times as Timestamps.

Depends on protobuf and the standard library only: the client, the API's
servicers and the node's actors (dispatcher, executor) all use it, and none of
them through another.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2


def value(obj: Any) -> struct_pb2.Value:
    """A JSON value as a protobuf Value."""
    v = struct_pb2.Value()
    json_format.ParseDict(obj, v)
    return v


class BadValue(ValueError):
    """A Value that is not a JSON value we accept; the message says why."""


def from_value(v: struct_pb2.Value, *, max_depth: int = 0, exact: bool = False) -> Any:
    """A protobuf Value as a JSON value; whole numbers come back as ints, as they were sent.

    Read directly, not through json_format.MessageToDict, which cost more than
    the echo handler in the executor and half of a small job's validation.
    Numbers that are not finite raise BadValue (MessageToDict refused them too);
    with ``max_depth``, so do lists and objects nested deeper than that. With
    ``exact``, so does a whole number beyond 2^53: as a double it may no longer
    be the number that was written.
    """
    return _from_value(v, max_depth or _UNBOUNDED, 1, exact)


_UNBOUNDED = 1 << 62


def _from_value(v: struct_pb2.Value, max_depth: int, depth: int, exact: bool) -> Any:
    # Positional arguments and no keyword defaults: this runs for every value of
    # every payload a node accepts or runs.
    if depth > max_depth:
        raise BadValue(f"nests deeper than {max_depth} levels")
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        # protobuf's Value keeps every number as a double.
        n = v.number_value
        if not math.isfinite(n):
            raise BadValue("numbers must be finite")
        if n.is_integer():
            # 2^53 itself is where doubles stop holding every integer: 2^53 + 1 arrives as it.
            if exact and abs(n) >= 2**53:
                raise BadValue(
                    f"{n:.17g} is 2^53 or beyond: as a protobuf Value it may not be the number sent"
                )
            if abs(n) <= 2**53:
                return int(n)
        return n
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        depth += 1
        return {k: _from_value(x, max_depth, depth, exact) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        depth += 1
        return [_from_value(x, max_depth, depth, exact) for x in v.list_value.values]
    return None  # null_value, or no kind set


def ts(us: int | None) -> timestamp_pb2.Timestamp | None:
    """Microseconds since the epoch as a Timestamp (None stays None)."""
    if us is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(us)
    return t


def ts_of(us: int) -> timestamp_pb2.Timestamp:
    """Microseconds since the epoch as a Timestamp."""
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(us)
    return t
