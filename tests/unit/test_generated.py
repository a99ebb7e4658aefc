"""The committed code in ordo_node/pb matches what proto/ makes now."""

from __future__ import annotations

import re
from pathlib import Path

from ordo_node.pb import generate

# Lines that name the generator's version: a newer grpcio-tools changes them
# without changing the API.
VERSION_LINES = re.compile(
    r"^(# Protobuf Python Version:.*|GRPC_GENERATED_VERSION = .*|\s+\d+,\s*$|\s+'',\s*$)", re.M
)


def normalise(text: str) -> str:
    return VERSION_LINES.sub("", text)


def test_generated_code_is_current(tmp_path: Path) -> None:
    # Given the protos as they are now, when they are compiled again
    written = generate.generate(tmp_path)

    # Then every generated file is committed, and each says the same
    committed = generate.OUT_DIR
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in committed.glob("*_pb2*.py*")), (
        "run: python -m ordo_node.pb.generate"
    )
    for fresh in written:
        assert normalise(fresh.read_text()) == normalise((committed / fresh.name).read_text()), (
            f"ordo_node/pb/{fresh.name} is stale; run: python -m ordo_node.pb.generate"
        )
