"""``ordo-node bench``: measure a cluster against the targets of the benchmark issue.

The command starts a local 3-node cluster in a temporary directory (or uses
the one named with ``--address``), runs the selected scenarios with a one-line
progress display on stderr, and prints a table (or, with ``--json``, one JSON
object) with every figure, what it measures, and its target:

- ``submit``: committed jobs per second through unary ``SubmitJob`` from C
  concurrent callers, and through the batch RPC ``SubmitJobs``; the jobs are
  due in 2099, so they never run.
- ``e2e``: N no-op ``echo`` jobs due now, submitted in batches: the time from
  the first submission until the last one has succeeded.
- ``e2e1``: the same on a local cluster of one node of its own.
- ``workers``: the same on 3 voters of capacity 0 and 2 ``ordo-node worker``
  processes (issue 15), with the CPU per job of each process.
- ``swarm``: 10, 50 and 200 light workers in one process against 3 voters of
  capacity 0: end to end throughput and the leader's CPU per job at each count
  (see :mod:`.workers` and :mod:`ordo_node.tools.swarm`).
- ``durable``: submit and e2e again on a local cluster with ``[raft] durable``.
- ``lateness``: N jobs due in the same second: trigger and start lateness.
- ``failover``: jobs due every 100 ms while the leader is killed with SIGKILL:
  how long until triggering resumes, and how many jobs were lost or triggered
  twice (local cluster only).
- ``scale``: M jobs scheduled for the future: submit time, each node's
  resident memory and SQLite size, the restart time of a node, and the cost
  of the timekeeper's two reads (``Queries.next_due``, ``Queries.due_jobs``)
  at cluster start, before and after the M jobs.
- ``limits``: this machine's ceilings in the same run: a bare ``grpc.aio``
  echo server at the same concurrency, and PySyncObj's raw commit rate.

For end to end and for batch submission, the report also gives what a job
costs (issue 14): each node process's CPU time (user + system, from
``/proc/PID/stat``) over the measured window divided by its jobs, per node
with its role, per role and in total, and the client's own beside it
(:mod:`.cpu`); with ``--address`` the nodes' CPU is n/a.

Everything runs on this machine: the benchmark's own client competes with the
nodes for the same cores, and the figures say so.

Usable as ``python -m ordo_node.tools.bench [options]`` as well as through the
``bench`` subcommand (see :func:`add_parser`).
"""

from .main import add_parser, cmd_bench, main
from .plan import PROBLEM_KEYS, SCENARIOS

__all__ = ["PROBLEM_KEYS", "SCENARIOS", "add_parser", "cmd_bench", "main"]
