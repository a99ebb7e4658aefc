"""Operator tools outside the node's own code: the benchmark, the chaos harness, the demo.

Nothing in the node imports this package; the tools drive real nodes as
processes (``localcluster``), over the network, the way an operator would.
"""
