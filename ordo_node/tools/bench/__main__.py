"""``python -m ordo_node.tools.bench``: the benchmark without the ``ordo-node`` front door."""

import sys

from .main import main

sys.exit(main())
