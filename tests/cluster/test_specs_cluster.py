"""Schedules on a real cluster (issue 17): overlap BUFFER_ALL with a slow handler."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from helpers import Cluster, eventually

from ordo_node.client import submit_request
from ordo_node.pb import ordo_pb2
from ordo_node.timeutil import format_us

pytestmark = pytest.mark.cluster

SEC = 1_000_000


def whole_second(from_now: float) -> int:
    """A whole second at least ``from_now`` seconds ahead, in microseconds."""
    return (int(time.time() + from_now) + 1) * SEC


async def test_buffer_all_lists_its_buffered_occurrences_and_runs_them_in_order(cluster: Cluster) -> None:
    # Given a job every second for 5 seconds whose handler takes 3 s, overlap BUFFER_ALL, bufferLimit 2
    start = whole_second(4)
    client = cluster.client(cluster.nodes[0])
    req = submit_request(
        "sleep",
        {"seconds": 3},
        cron="* * * * * *",
        start_at=format_us(start),
        end_at=format_us(start + 4 * SEC),
        overlap="BUFFER_ALL",
    )
    req.buffer_limit = 2
    job_id = await client.send(req)
    assert (await client.get(job_id)).buffer_limit == 2

    # When the occurrences fall due faster than the handler ends
    async def buffered() -> list[ordo_pb2.Occurrence]:
        page = await client.occurrences(job_id, fate="BUFFERED", page_size=100)
        return list(page.occurrences) if len(page.occurrences) == 2 else []

    # Then ListOccurrences shows two waiting, with their places in line (newest first)
    waiting = await eventually(buffered, timeout=20, what="two buffered occurrences")
    assert [o.buffer_position for o in waiting] == [2, 1]
    assert all("overlap BUFFER_ALL" in o.reason for o in waiting)

    # and, once the schedule ended, the ones beyond the bound were skipped saying so, and every
    # buffered one ran after the one before it, oldest first
    job = (await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[cluster.nodes[0]], timeout=40))[
        cluster.nodes[0].id
    ]
    page = await client.occurrences(job_id, page_size=100)
    occs = sorted(page.occurrences, key=lambda o: o.nominal_time.ToMicroseconds())
    assert [o.nominal_time.ToMicroseconds() for o in occs] == [start + i * SEC for i in range(5)]
    fates = [ordo_pb2.Fate.Name(o.fate) for o in occs]
    assert "FATE_BUFFERED" not in fates, fates
    skipped = [o for o in occs if o.fate == ordo_pb2.FATE_SKIPPED_OVERLAP]
    assert skipped and all("bufferLimit 2" in o.reason for o in skipped), fates
    ran = [o for o in occs if o.fate == ordo_pb2.FATE_TRIGGERED]
    assert len(ran) >= 3 and all(o.outcome == ordo_pb2.RUN_STATE_SUCCEEDED for o in ran), fates
    runs = {r.run_id: r for r in job.runs}
    spans = [
        (runs[o.run_id].started_at.ToMicroseconds(), runs[o.run_id].finished_at.ToMicroseconds()) for o in ran
    ]
    assert all(end <= nxt for (_, end), (nxt, _) in pairwise(spans)), spans


async def test_two_specs_with_an_exclusion_fire_at_the_times_preview_shows(cluster: Cluster) -> None:
    # Given a job every 3 s and every 5 s, except at seconds 0, 15, 30 and 45, for 10 seconds
    start = whole_second(4)
    end = start + 9 * SEC
    specs = {"more_cron": ["*/5 * * * * *"], "exclude_cron": ["*/15 * * * * *"]}
    expected = [
        t for t in range(start, end + 1, SEC) if ((t // SEC) % 60 % 3 == 0 or (t // SEC) % 60 % 5 == 0)
    ]
    expected = [t for t in expected if (t // SEC) % 60 % 15 != 0]
    client = cluster.client(cluster.nodes[1])

    # When it is previewed, and submitted
    preview = await client.preview("*/3 * * * * *", count=20, after=format_us(start - 1), **specs)
    # (catchUp ALL: an occurrence a busy machine triggers late still runs)
    req = submit_request(
        "echo",
        {},
        cron="*/3 * * * * *",
        start_at=format_us(start),
        end_at=format_us(end),
        catch_up="ALL",
        **specs,
    )
    job_id = await client.send(req)
    job = await client.get(job_id)
    assert list(job.more_cron) == specs["more_cron"] and list(job.exclude_cron) == specs["exclude_cron"]
    assert job.next_fire_time.ToMicroseconds() == expected[0]

    # Then the preview shows those times, and the job fires at exactly them
    assert [
        p.nominal_time.ToMicroseconds() for p in preview if p.nominal_time.ToMicroseconds() <= end
    ] == expected
    await cluster.wait_for_state(job_id, "SUCCEEDED", nodes=[cluster.nodes[1]], timeout=40)
    page = await client.occurrences(job_id, page_size=100)
    occs = sorted(page.occurrences, key=lambda o: o.nominal_time.ToMicroseconds())
    assert [o.nominal_time.ToMicroseconds() for o in occs] == expected
    assert all(o.fate == ordo_pb2.FATE_TRIGGERED for o in occs), [o.reason for o in occs]
