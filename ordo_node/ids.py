"""Job ids: UUIDs whose first bits are the time they were made (RFC 9562, version 7).

A random (version 4) id puts every new job, run and history entry at a random
place in each SQLite index keyed by job id, so every applied batch dirties
pages all over those indexes, and at a million jobs most of those pages are not
in the cache. Ids that grow with time are appended near the end of each index
instead: inserting a job row cost 6.6 us instead of 11.9 us with 20,000 jobs
(/tmp/prof/ins.py in the notes of issue #3), and the gap widens as the tables grow.

Within one process the ids also grow within a millisecond (RFC 9562 section
6.2, method 2: the previous id plus a random step), so a batch of jobs is
appended in order. Ids stay unique across nodes through their 74 random bits.
"""

from __future__ import annotations

import os
import threading
import time

_RANDOM_BITS = 74  # 12 bits of rand_a and 62 of rand_b


class IdMaker:
    """Makes ids greater than the last one it made (one per process: ``new_job_id``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = (0, 0)  # (milliseconds, random part) of the last id
        # Random bytes drawn from the OS a few kilobytes at a time, not per id (a system call each);
        # a forked child draws its own (it must not repeat its parent's ids).
        self._pool = b""
        self._taken = 0
        os.register_at_fork(after_in_child=self._forget_pool)

    def _forget_pool(self) -> None:
        self._pool, self._taken = b"", 0

    def _random(self, n: int) -> int:
        if self._taken + n > len(self._pool):
            self._pool, self._taken = os.urandom(4096), 0
        start, self._taken = self._taken, self._taken + n
        return int.from_bytes(self._pool[start : self._taken], "big")

    def new(self, now_ms: int | None = None) -> str:
        """A fresh version-7 UUID in canonical form; ``now_ms`` (Unix milliseconds) defaults to the clock."""
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._lock:
            last_ms, last_rand = self._last
            if ms <= last_ms:
                # Same millisecond (or a clock step back): keep growing from the last id.
                ms, rand = last_ms, last_rand + 1 + (self._random(4) >> 1)
                if rand >> _RANDOM_BITS:
                    ms, rand = ms + 1, rand & ((1 << (_RANDOM_BITS - 1)) - 1)
            else:
                # A new millisecond: random, with the top bit clear so that steps cannot overflow soon.
                rand = self._random(10) >> (80 - _RANDOM_BITS + 1)
            self._last = (ms, rand)
        rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_job_id = IdMaker().new
