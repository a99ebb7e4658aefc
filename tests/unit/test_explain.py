"""ExplainOccurrence's sentences for fire times with no occurrence: not reached yet, or the schedule ended."""

from __future__ import annotations

from typing import Any

from ordo_node.api.explain import explain
from ordo_node.queries import JobRow, OccurrenceRow

MINUTE = 60_000_000
T0 = 1_900_000_020 * 1_000_000 // MINUTE * MINUTE  # a whole minute


class Occurrences:
    """Queries.occurrence_at over a fixed list of occurrences."""

    def __init__(self, nominals: list[int]) -> None:
        self.rows = [
            OccurrenceRow("job", n, n, "TRIGGERED", "", f"job:{i + 1}", n, "SUCCEEDED", 1)
            for i, n in enumerate(nominals)
        ]

    async def occurrence_at(self, job_id: str, at: int) -> OccurrenceRow | None:
        before = [r for r in self.rows if r.nominal <= at]
        return before[-1] if before else None


def every_minute(occurrences: int, **options: Any) -> JobRow:
    return JobRow(
        job_id="job",
        name="",
        type="echo",
        payload=None,
        state="SUCCEEDED",
        run_at=T0,
        created_at=T0 - 1,
        updated_at=T0,
        idempotency_key="",
        submitted_to="node1",
        options={"cron": "* * * * *", **options},
        occurrences=occurrences,
        next_fire=None,
    )


async def test_a_fire_time_after_max_runs_says_the_job_reached_it() -> None:
    # Given an every-minute job with maxRuns 3 that ran at T0, T0+1m and T0+2m
    job = every_minute(3, max_runs=3)
    queries = Occurrences([T0, T0 + MINUTE, T0 + 2 * MINUTE])

    # When the fire time after its last run is explained, long after it
    occ, text = await explain(queries, job, T0 + 5 * MINUTE, now=T0 + 60 * MINUTE)  # type: ignore[arg-type]

    # Then it names maxRuns and the last occurrence, and does not blame the leader or retention
    assert occ is None
    assert "reached its maxRuns (3)" in text and "its last occurrence was" in text
    assert "leader" not in text and "retention" not in text


async def test_a_fire_time_after_end_at_says_so() -> None:
    job = every_minute(2, end_at=T0 + MINUTE)
    queries = Occurrences([T0, T0 + MINUTE])

    occ, text = await explain(queries, job, T0 + 3 * MINUTE, now=T0 + 60 * MINUTE)  # type: ignore[arg-type]

    assert occ is None and "after the schedule's endAt" in text


async def test_a_fire_time_not_reached_yet_still_blames_the_leader_or_retention() -> None:
    # Given a job with no limits whose last recorded occurrence is T0
    job = every_minute(1)
    queries = Occurrences([T0])

    occ, text = await explain(queries, job, T0 + 2 * MINUTE, now=T0 + 60 * MINUTE)  # type: ignore[arg-type]

    assert occ is None and "the leader has not reached it yet, or history retention removed it" in text
