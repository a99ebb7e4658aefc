"""ordo_node: a distributed, time-based job scheduler with no outside database or broker."""

__version__ = "0.1.0"
