"""Job ids: canonical version-7 UUIDs that grow with time, within a millisecond too."""

from __future__ import annotations

import os
import time
import uuid
import warnings

from ordo_node.api import validate
from ordo_node.ids import IdMaker, new_job_id

MS = 1_795_435_733_266  # 2026-11-23, Unix milliseconds


def test_an_id_is_a_canonical_version_7_uuid_carrying_its_millisecond() -> None:
    job_id = IdMaker().new(MS + 10_000_000)
    parsed = uuid.UUID(job_id)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == MS + 10_000_000
    assert validate.job_id(job_id) == job_id  # what the API accepts back


def test_ids_made_in_one_millisecond_grow_and_never_repeat() -> None:
    make = IdMaker().new
    ids = [make(MS) for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_a_clock_step_back_still_gives_a_greater_id() -> None:
    make = IdMaker().new
    later = make(MS + 1000)
    earlier_clock = make(MS)
    assert earlier_clock > later


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    make = IdMaker().new
    first = make(MS)
    second = make(MS + 1)
    assert first < second
    assert uuid.UUID(second).int >> 80 == MS + 1


def test_the_process_maker_follows_the_clock() -> None:
    before = time.time_ns() // 1_000_000
    job_id = new_job_id()
    assert uuid.UUID(job_id).int >> 80 >= before


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    # Given a maker that has drawn random bytes, forked in the same millisecond
    maker = IdMaker()
    ms = 1_800_000_000_000
    maker.new(ms)
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, maker.new(ms).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    # Then the child's next id is not the parent's next id
    assert child and child != maker.new(ms)
