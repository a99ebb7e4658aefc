"""``python -m ordo_node``: the same program as ``ordo-node``."""

from .cli import main

main()
