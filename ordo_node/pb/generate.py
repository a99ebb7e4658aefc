"""Regenerate ``ordo_node/pb`` from ``proto/``: ``python -m ordo_node.pb.generate``.

The generated modules are committed, so ``pip install .`` needs no build step;
``tests/unit/test_generated.py`` fails when they no longer match the protos.
protoc writes imports as ``from ordo.v1 import ...``; they are rewritten to
``ordo_node.pb`` so the package needs no top-level ``ordo`` module.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
OUT_DIR = Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every proto into ``out_dir``; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(PROTO_DIR.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *[str(p) for p in protos],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed")
        written = []
        for src in sorted(Path(tmp).rglob("*_pb2*.py*")):
            text = re.sub(r"^from ordo\.v1 import", "from ordo_node.pb import", src.read_text(), flags=re.M)
            dest = out_dir / src.name
            dest.write_text(text)
            written.append(dest)
        return written


if __name__ == "__main__":
    for path in generate(OUT_DIR):
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
