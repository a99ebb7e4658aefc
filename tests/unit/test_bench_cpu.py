"""The bench's CPU per job: reading /proc/PID/stat, the figures of a window, and their table rows."""

from __future__ import annotations

import os
import subprocess
import sys

from ordo_node.tools.bench.cpu import (
    CLOCK_TICKS,
    REMOTE,
    CpuMark,
    cpu_figures,
    process_cpu_seconds,
    stat_cpu_seconds,
)
from ordo_node.tools.bench.report import rows_cpu

# A /proc/PID/stat line whose command name holds a space and a ")": utime 250, stime 50,
# cutime 7000, cstime 3000 (the reaped children, which must not count).
STAT = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 7000 3000 20 0 9 0 100 0 0"


def mark(nodes: dict[str, float], roles: dict[str, str], client: float = 0.0, wall: float = 0.0) -> CpuMark:
    return CpuMark(nodes, roles, client, wall, local=True)


def test_utime_and_stime_are_read_after_the_command_name_and_children_are_left_out() -> None:
    assert stat_cpu_seconds(STAT) == 300 / CLOCK_TICKS


def test_a_running_process_has_cpu_seconds_and_a_reaped_one_has_none() -> None:
    # Given a child that burned some CPU and was reaped
    child = subprocess.Popen([sys.executable, "-c", "sum(range(3_000_000))"])
    child.wait()

    # Then this process reads as a number, and the reaped child as gone
    mine = process_cpu_seconds(os.getpid())
    assert mine is not None and mine > 0
    assert process_cpu_seconds(child.pid) is None


def test_a_window_is_divided_per_node_per_role_and_in_total() -> None:
    # Given three nodes whose counters moved by 0.4, 0.2 and 0.2 s over 1,000 jobs
    roles = {"node1": "leader", "node2": "follower", "node3": "follower"}
    start = mark({"node1": 10.0, "node2": 5.0, "node3": 5.0}, roles, client=1.0, wall=100.0)
    end = mark({"node1": 10.4, "node2": 5.2, "node3": 5.2}, roles, client=1.05, wall=102.5)

    # When the figures are taken
    out = cpu_figures(start, end, 1000)

    # Then each node gets its role and its share, and the totals follow
    cpu = out["cpu_us_per_job"]
    assert cpu["nodes"]["node1"] == {"role": "leader", "cpu_s": 0.4, "us_per_job": 400.0}
    assert cpu["nodes"]["node2"]["us_per_job"] == 200.0
    assert (cpu["total"], cpu["leader"], cpu["follower_mean"]) == (800.0, 400.0, 200.0)
    # and the client's CPU is reported beside it, not in it
    assert out["client_cpu_us_per_job"] == 50.0
    assert out["cpu_window_s"] == 2.5


def test_a_node_whose_role_changed_counts_in_the_total_only() -> None:
    # Given node1 lost leadership to node2 during the window
    before = {"node1": "leader", "node2": "follower", "node3": "follower"}
    after = {"node1": "follower", "node2": "leader", "node3": "follower"}
    start = mark({"node1": 0.0, "node2": 0.0, "node3": 0.0}, before)
    end = mark({"node1": 0.3, "node2": 0.3, "node3": 0.1}, after)

    # When the figures are taken
    cpu = cpu_figures(start, end, 1000)["cpu_us_per_job"]

    # Then no node is the leader of the window, and only node3 is a follower of it
    assert cpu["nodes"]["node1"]["role"] == "leader->follower"
    assert cpu["leader"] is None
    assert cpu["follower_mean"] == 100.0
    assert cpu["total"] == 700.0
    # and the table says so
    rows = rows_cpu("e2e", {"jobs": 1000, **cpu_figures(start, end, 1000)}, "a window", total_target=450)
    assert any(r.figure.strip().startswith("WARNING roles") for r in rows)


def test_a_node_not_running_at_both_ends_is_left_out() -> None:
    start = mark({"node1": 1.0, "node2": 1.0}, {"node1": "leader", "node2": "follower"})
    end = mark({"node1": 1.1}, {"node1": "leader"})

    cpu = cpu_figures(start, end, 100)["cpu_us_per_job"]

    assert list(cpu["nodes"]) == ["node1"]
    assert cpu["follower_mean"] is None


def test_a_remote_cluster_has_no_node_figures_but_the_client_still_counts() -> None:
    start = CpuMark({}, {}, client=2.0, wall=0.0, local=False)
    end = CpuMark({}, {}, client=2.1, wall=1.0, local=False)

    out = cpu_figures(start, end, 1000)

    assert out["cpu_us_per_job"] == REMOTE
    assert out["client_cpu_us_per_job"] == 100.0
    # and the table shows n/a, with the target unjudged
    rows = rows_cpu("e2e", {"jobs": 1000, **out}, "a window", total_target=450)
    assert (rows[0].value, rows[0].target, rows[0].met) == (REMOTE, "<= 450 us", None)


def test_rows_judge_the_total_and_the_leader_against_their_targets() -> None:
    # Given a batch window where the leader spent 20 us per job and the total was 60
    roles = {"node1": "leader", "node2": "follower", "node3": "follower"}
    start = mark({"node1": 0.0, "node2": 0.0, "node3": 0.0}, roles)
    end = mark({"node1": 0.2, "node2": 0.2, "node3": 0.2}, roles)
    fig = {"jobs": 10_000, **cpu_figures(start, end, 10_000)}

    # When it becomes rows with a leader target of 25 us
    made = rows_cpu("submit", fig, "a window", where=", 1 in flight", leader_target=25)
    rows = {r.figure.strip(): r for r in made}

    # Then the leader's row is judged met, the total and the followers carry no target
    leader = rows["CPU per job, 1 in flight, leader"]
    assert (leader.value, leader.target, leader.met) == ("20.0 us (node1)", "<= 25 us", True)
    assert rows["CPU per job, 1 in flight, total"].value == "60.0 us (leader 20.0, followers 20.0/20.0)"
    assert rows["CPU per job, 1 in flight, total"].target == ""
    assert rows["CPU per job, 1 in flight, follower mean"].target == ""
    assert "client CPU per job, 1 in flight (reference)" in rows
