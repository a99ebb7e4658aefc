"""Job ids: canonical version-7 UUIDs that grow with time, within a millisecond too."""

from __future__ import annotations

import uuid

from ordo_node.api import validate
from ordo_node.ids import new_job_id

MS = 1_795_435_733_266  # 2026-11-23, Unix milliseconds


def test_an_id_is_a_canonical_version_7_uuid_carrying_its_millisecond() -> None:
    job_id = new_job_id(MS + 10_000_000)
    parsed = uuid.UUID(job_id)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == MS + 10_000_000
    assert validate.job_id(job_id) == job_id  # what the API accepts back


def test_ids_made_in_one_millisecond_grow_and_never_repeat() -> None:
    ids = [new_job_id(MS + 20_000_000) for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_a_clock_step_back_still_gives_a_greater_id() -> None:
    later = new_job_id(MS + 30_000_000)
    earlier_clock = new_job_id(MS + 29_000_000)
    assert earlier_clock > later


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_job_id(MS + 40_000_000)
    second = new_job_id(MS + 40_000_001)
    assert first < second
    assert uuid.UUID(second).int >> 80 == MS + 40_000_001
