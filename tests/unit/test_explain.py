"""ExplainOccurrence's sentences for fire times with no occurrence: not reached yet, or the schedule ended."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ordo_node.api.explain import explain
from ordo_node.queries import JobRow, OccurrenceRow
from ordo_node.schedule import excluded_by, parse_schedule
from ordo_node.timeutil import from_datetime

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

    async def run_waits(self, job_id: str, run_id: str) -> list[str]:
        return []


def every_minute(occurrences: int, **options: Any) -> JobRow:
    return recurring("* * * * *", occurrences, created_at=T0 - 1, **options)


def recurring(cron: str, occurrences: int, *, created_at: int, **options: Any) -> JobRow:
    return JobRow(
        job_id="job",
        name="",
        type="echo",
        payload=None,
        state="SUCCEEDED",
        run_at=T0,
        created_at=created_at,
        updated_at=T0,
        idempotency_key="",
        submitted_to="node1",
        options={"cron": cron, **options},
        occurrences=occurrences,
        next_fire=None,
    )


def utc(text: str) -> int:
    """An ISO time (UTC unless it says otherwise) in microseconds."""
    when = datetime.fromisoformat(text)
    return from_datetime(when if when.tzinfo else when.replace(tzinfo=UTC))


def nine_and_five(occurrences: int = 0, **options: Any) -> JobRow:
    """A job firing at 09:00 (cron) and 17:00 (moreCron) every day, created on 2029-12-29."""
    return recurring(
        "0 9 * * *", occurrences, created_at=utc("2029-12-29T00:00"), more_cron=["0 17 * * *"], **options
    )


BOTH = "'0 9 * * *' or '0 17 * * *' in UTC"
LATER = utc("2031-06-01T00:00")  # "now" for the questions about the past


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


async def test_a_more_cron_time_with_nothing_recorded_names_every_spec() -> None:
    # Given a job firing at 09:00 (cron) and 17:00 (moreCron) whose 09:00 occurrence is recorded
    queries = Occurrences([utc("2029-12-30T09:00")])

    # When 17:00 the same day is explained, later, with nothing recorded for it
    occ, text = await explain(queries, nine_and_five(1), utc("2029-12-30T17:00"), now=LATER)  # type: ignore[arg-type]

    # Then it is a fire time of the whole schedule, named by the moreCron spec, not "not a fire time"
    assert occ is None
    assert text.startswith(f"2029-12-30T17:00:00+00:00 is a fire time of {BOTH} (named by '0 17 * * *')")
    assert "the leader has not reached it yet" in text
    assert "not a fire time" not in text


async def test_a_time_between_the_specs_names_every_spec() -> None:
    # Given the same job with nothing recorded
    queries = Occurrences([])

    # When noon is explained
    occ, text = await explain(queries, nine_and_five(), utc("2029-12-30T12:00"), now=LATER)  # type: ignore[arg-type]

    # Then the sentence names both specs and the next time is the moreCron one
    assert occ is None
    assert text == (
        f"2029-12-30T12:00:00+00:00 is not a fire time of {BOTH}: there is none before it, the next is"
        " 2029-12-30T17:00:00+00:00."
    )


async def test_a_future_more_cron_time_says_it_will_fire() -> None:
    queries = Occurrences([utc("2029-12-30T09:00")])

    occ, text = await explain(  # type: ignore[arg-type]
        queries, nine_and_five(1), utc("2029-12-30T17:00"), now=utc("2029-12-30T10:00")
    )

    assert occ is None
    assert text == (
        f"2029-12-30T17:00:00+00:00 is a fire time of {BOTH} (named by '0 17 * * *'), in the future: it will"
        " fire at 2029-12-30T17:00:00.000000Z unless paused or cancelled."
    )


async def test_a_time_after_end_at_names_every_spec() -> None:
    job = nine_and_five(2, end_at=utc("2029-12-30T17:00"))
    queries = Occurrences([utc("2029-12-30T09:00"), utc("2029-12-30T17:00")])

    occ, text = await explain(queries, job, utc("2029-12-31T09:00"), now=LATER)  # type: ignore[arg-type]

    assert occ is None
    assert text.startswith(
        f"2029-12-31T09:00:00+00:00 is after the end of {BOTH}: it is after the schedule's endAt"
    )


async def test_an_excluded_date_says_it_is_excluded_by_exclude_dates() -> None:
    # Given the job, with 2030-01-01 in excludeDates, and nothing recorded
    job = nine_and_five(exclude_dates=["2030-01-01"])
    queries = Occurrences([])

    # When 2030-01-01 at 09:00 and at 17:00 are explained
    _, morning = await explain(queries, job, utc("2030-01-01T09:00"), now=LATER)  # type: ignore[arg-type]
    _, evening = await explain(queries, job, utc("2030-01-01T17:00"), now=LATER)  # type: ignore[arg-type]

    # Then each names its spec, the exclusion and the whole schedule, and the next time is the day after
    assert morning == (
        "2030-01-01T09:00:00+00:00 is a time of '0 9 * * *' but does not fire: 2030-01-01 is excluded by"
        f" excludeDates (the schedule is {BOTH}, except excludeDates 2030-01-01); there is none before it,"
        " the next is 2030-01-02T09:00:00+00:00."
    )
    assert evening.startswith(
        "2030-01-01T17:00:00+00:00 is a time of '0 17 * * *' but does not fire: 2030-01-01 is excluded by"
        " excludeDates"
    )


async def test_an_excluded_time_after_a_recorded_occurrence_says_why_and_keeps_that_occurrence() -> None:
    # Given the job with 2030-01-01 excluded, whose last occurrence is 2029-12-31T17:00
    job = nine_and_five(1, exclude_dates=["2030-01-01"])
    queries = Occurrences([utc("2029-12-31T17:00")])

    # When 2030-01-01T09:00, which that occurrence covers (the next one is on 2030-01-02), is explained
    occ, text = await explain(queries, job, utc("2030-01-01T09:00"), now=LATER)  # type: ignore[arg-type]

    # Then the occurrence before it is still the answer, but the sentence first says why it did not fire
    assert occ is not None and occ.nominal == utc("2029-12-31T17:00")
    assert text.startswith(
        "2030-01-01T09:00:00+00:00 is a time of '0 9 * * *' but does not fire: 2030-01-01 is excluded by"
        " excludeDates"
    )
    assert text.endswith(
        "The occurrence before it: 2029-12-31T17:00:00+00:00 was triggered at 2029-12-31T17:00:00.000000Z;"
        " run job:1 succeeded after 1 attempt(s)."
    )


async def test_a_time_the_exclusions_do_not_name_still_describes_the_occurrence_covering_it() -> None:
    job = nine_and_five(1, exclude_dates=["2030-01-01"])
    queries = Occurrences([utc("2029-12-31T17:00")])

    occ, text = await explain(queries, job, utc("2029-12-31T20:00"), now=LATER)  # type: ignore[arg-type]

    assert occ is not None
    assert text.startswith("2029-12-31T17:00:00+00:00 was triggered") and "exclude" not in text


async def test_an_exclude_cron_time_names_that_exclusion() -> None:
    # Given the job with weekends excluded (2030-01-05 is a Saturday)
    job = nine_and_five(exclude_cron=["* * * * sat,sun"])
    queries = Occurrences([])

    # When a Saturday's 09:00 and its noon are explained
    _, nine = await explain(queries, job, utc("2030-01-05T09:00"), now=LATER)  # type: ignore[arg-type]
    _, noon = await explain(queries, job, utc("2030-01-05T12:00"), now=LATER)  # type: ignore[arg-type]

    # Then both name the exclusion; the next fire time is Monday's
    assert nine.startswith(
        "2030-01-05T09:00:00+00:00 is a time of '0 9 * * *' but does not fire: excludeCron '* * * * sat,sun'"
        f" excludes it (the schedule is {BOTH}, except excludeCron '* * * * sat,sun')"
    )
    assert nine.endswith("the next is 2030-01-07T09:00:00+00:00.")
    assert noon.startswith(
        "2030-01-05T12:00:00+00:00 is not a fire time: no spec names it, and excludeCron '* * * * sat,sun'"
        " excludes it"
    )


async def test_an_excluded_date_is_the_date_of_the_schedules_wall_clock() -> None:
    # Given a job at 23:00 New York time, 2030-01-01 excluded: its 2030-01-01 fire is 2030-01-02T04:00Z
    job = recurring(
        "0 23 * * *",
        0,
        created_at=utc("2029-12-29T00:00"),
        timezone="America/New_York",
        exclude_dates=["2030-01-01"],
    )
    queries = Occurrences([])

    # When that time is explained
    _, text = await explain(queries, job, utc("2030-01-02T04:00"), now=LATER)  # type: ignore[arg-type]

    # Then the excluded date is New York's, and the UTC date (2030-01-02) is not called excluded
    assert text.startswith(
        "2030-01-01T23:00:00-05:00 is a time of '0 23 * * *' but does not fire: 2030-01-01 is excluded by"
        " excludeDates (the schedule is '0 23 * * *' in America/New_York, except excludeDates 2030-01-01)"
    )
    assert "2030-01-02 is excluded" not in text


def test_excluded_by_names_the_date_and_the_exclude_cron_expressions() -> None:
    s = parse_schedule(
        "0 9 * * *", exclude_dates=["2030-01-05"], exclude_cron=["* * * * sat,sun", "0 9 * * *", "0 10 * * *"]
    )

    assert excluded_by(s, utc("2030-01-05T09:00")) == (
        datetime(2030, 1, 5).date(),
        ("* * * * sat,sun", "0 9 * * *"),
    )
    assert excluded_by(s, utc("2030-01-07T09:00")) == (None, ("0 9 * * *",))
    # five fields name every second of their minutes
    assert excluded_by(s, utc("2030-01-07T09:00:59")) == (None, ("0 9 * * *",))
    assert excluded_by(s, utc("2030-01-07T09:01")) == (None, ())
    assert excluded_by(parse_schedule("0 9 * * *"), utc("2030-01-05T09:00")) == (None, ())


async def test_a_future_excluded_time_names_the_schedules_time_before_it() -> None:
    # Given the job (first fire time 2030-03-17), a Tuesday and the weekends excluded, nothing recorded
    job = nine_and_five(exclude_dates=["2030-04-02"], exclude_cron=["* * * * sat,sun"])
    queries = Occurrences([])
    # When that Tuesday's 09:00, and a Monday 12:00, are explained before they come
    now = utc("2030-03-20T00:00")
    _, tuesday = await explain(queries, job, utc("2030-04-02T09:00"), now=now)  # type: ignore[arg-type]
    _, monday = await explain(queries, job, utc("2030-04-01T12:00"), now=now)  # type: ignore[arg-type]
    # Then the one before is the schedule's (Monday 17:00; Friday's last before the weekend), not "none"
    assert tuesday.endswith(
        "the one before is 2030-04-01T17:00:00+00:00, the next is 2030-04-03T09:00:00+00:00."
    )
    assert monday.endswith(
        "the one before is 2030-04-01T09:00:00+00:00, the next is 2030-04-01T17:00:00+00:00."
    )
    _, sunday = await explain(queries, job, utc("2030-03-31T09:00"), now=now)  # type: ignore[arg-type]
    assert "the one before is 2030-03-29T17:00:00+00:00" in sunday
    # and before the job's first fire time there is none
    _, early = await explain(queries, job, utc("2030-03-16T12:00"), now=now)  # type: ignore[arg-type]
    assert "there is none before it" in early
