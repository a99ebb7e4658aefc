"""The pure policies apply decides with: the retry backoff and the overlap of recurring runs.

Pure functions of their arguments (no clock, no randomness: the backoff's
jitter is a hash of the run and attempt), so every replica decides alike.
The schedule arithmetic (time zones, cron) stays on the proposer's side in
``schedule.py``, which uses these too.
"""

from __future__ import annotations

import hashlib

OVERLAP_POLICIES = ("ALLOW", "SKIP", "BUFFER_ONE", "CANCEL_OTHER", "BUFFER_ALL")
# BUFFER_ALL: how many occurrences may wait at once when the submission names no bufferLimit.
DEFAULT_BUFFER_LIMIT = 100
DEFAULT_BACKOFF = {"initial": 1_000_000, "multiplier": 2.0, "max": 300_000_000, "jitter": 0.0}


def backoff_delay(
    attempt: int, *, initial: int, multiplier: float, maximum: int, jitter: float = 0.0, key: str = ""
) -> int:
    """Microseconds to wait after failed attempt ``attempt`` (>= 1) before the next one.

    ``min(maximum, initial * multiplier ** (attempt - 1))``, less a deterministic fraction in
    ``[0, jitter)`` of it seeded by ``key`` and ``attempt``, so retries of many jobs do not stampede.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be between 0 and 1")
    if initial < 0 or maximum < 0 or multiplier < 1.0:
        raise ValueError("initial and maximum must not be negative, multiplier must be at least 1")
    try:
        grown = initial * float(multiplier) ** (attempt - 1)
    except OverflowError:  # float pow raises rather than returning inf
        grown = float(maximum)
    delay = int(min(float(maximum), grown))
    if jitter > 0.0:
        delay -= int(delay * jitter * (hash64(f"{key}:{attempt}") / 2**64))
    return max(0, delay)


def overlap_decision(policy: str, running: int, buffered: int, limit: int = DEFAULT_BUFFER_LIMIT) -> str:
    """What to do with an occurrence that falls due while ``running`` runs of its job are still running.

    Returns ``RUN``, ``SKIP`` (record SKIPPED_OVERLAP), ``BUFFER`` (run when the current one ends) or
    ``CANCEL_OTHER`` (cancel the running ones, then run); ``buffered`` occurrences are already waiting.
    BUFFER_ALL buffers while fewer than ``limit`` wait, and skips once the buffer is full.
    """
    if policy not in OVERLAP_POLICIES:
        raise ValueError(f"unknown overlap policy {policy!r}")
    if running <= 0 or policy == "ALLOW":
        return "RUN"
    if policy == "BUFFER_ONE":
        return "BUFFER" if buffered == 0 else "SKIP"
    if policy == "BUFFER_ALL":
        return "BUFFER" if buffered < limit else "SKIP"
    return policy  # "SKIP" or "CANCEL_OTHER"


def hash64(text: str) -> int:
    """The first 8 bytes of the SHA-256 of ``text``, as an unsigned big-endian integer."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
