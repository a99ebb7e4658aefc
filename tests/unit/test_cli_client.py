"""The client command line's parts that need no cluster: flags, state names, tables, job id prefixes,
and the reads behind ``list --name`` and id prefixes (on a real SQLite file)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2

from ordo_node import commands as c
from ordo_node.api.jobs import MIN_PREFIX, id_or_prefix
from ordo_node.cli import build_parser
from ordo_node.cli.client import JOB_STATES, job_state, print_job, print_jobs, tags, usage_error
from ordo_node.errors import InvalidArgument
from ordo_node.pb import ordo_pb2
from ordo_node.queries import Queries
from ordo_node.statemachine.store import Store

SEC = 1_000_000
T0 = 1_900_000_000 * SEC
FULL = "01a24897-11f4-7287-a29a-82f81b8a4a3d"


def stamp(text: str) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromJsonString(text)
    return t


# -- list --state -------------------------------------------------------------------


def test_every_job_state_is_accepted_in_any_case_with_or_without_its_prefix() -> None:
    # Given every state of the JobState enum but UNSPECIFIED
    names = [n for n in ordo_pb2.JobState.keys() if n != "JOB_STATE_UNSPECIFIED"]  # noqa: SIM118
    assert [f"JOB_STATE_{s}" for s in JOB_STATES] == names
    assert {"WAITING", "RETRYING", "DEAD_LETTER", "PAUSED"} <= set(JOB_STATES)
    for name in names:
        short = name.removeprefix("JOB_STATE_")
        # When it is given as --state in upper, lower or mixed case, with or without JOB_STATE_
        # Then it names that enum value
        for text in (short, short.lower(), short.title(), name, name.lower()):
            assert job_state(text) == name, text


@pytest.mark.parametrize("text", ["bogus", "UNSPECIFIED", "JOB_STATE_UNSPECIFIED", "", "DONE"])
def test_a_word_that_is_no_job_state_is_refused_naming_the_valid_ones(text: str) -> None:
    with pytest.raises(ValueError, match="is not a job state") as e:
        job_state(text)
    assert f"'{text}'" in str(e.value)
    assert all(s in str(e.value) for s in JOB_STATES)


def test_list_checks_the_state_before_any_call_and_keeps_the_enum_name() -> None:
    args = build_parser().parse_args(["list", "--state", "dead_letter", "--name", "nightly"])
    assert usage_error(args) is None
    assert (args.state, args.name) == ("JOB_STATE_DEAD_LETTER", "nightly")
    bad = build_parser().parse_args(["list", "--state", "later"])
    assert (usage_error(bad) or "").startswith("--state: 'later' is not a job state")


# -- submit flags ---------------------------------------------------------------------


def test_submit_tags_are_comma_separated_and_may_be_repeated() -> None:
    args = build_parser().parse_args(["submit", "echo", "--tags", "gpu, eu", "--tags", "big,"])
    assert tags(args.tags) == ["gpu", "eu", "big"]
    assert tags(build_parser().parse_args(["submit", "echo"]).tags) == []


def test_the_call_timeout_and_the_attempt_timeout_are_two_flags() -> None:
    # When both are given
    args = build_parser().parse_args(["submit", "echo", "--timeout", "500ms", "--attempt-timeout", "5m"])
    # Then --timeout is the client's deadline in seconds and --attempt-timeout the job's limit
    assert args.timeout == 0.5
    assert args.attempt_timeout == "5m"
    assert usage_error(args) is None
    assert build_parser().parse_args(["get", FULL, "--timeout", "3"]).timeout == 3.0
    # and a bad attempt timeout is named with its flag
    bad = build_parser().parse_args(["submit", "echo", "--attempt-timeout", "soon"])
    assert (usage_error(bad) or "").startswith("--attempt-timeout: 'soon'")


def test_help_says_which_timeout_is_which(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--timeout DURATION how long this command's calls to the cluster may take" in text
    assert "Not the job's limit: see submit --attempt-timeout" in text
    assert "--attempt-timeout DURATION the job's limit per attempt" in text
    assert "--wait print the id, wait until the job ends" in text
    assert "--tags TAG,..." in text


def test_wait_timeout_needs_wait_and_a_duration() -> None:
    parse = build_parser().parse_args
    assert usage_error(parse(["submit", "echo", "--wait-timeout", "5s"])) == (
        "--wait-timeout applies only with --wait"
    )
    assert (usage_error(parse(["submit", "echo", "--wait", "--wait-timeout", "x"])) or "").startswith(
        "--wait-timeout: 'x'"
    )
    args = parse(["submit", "echo", "--wait", "--wait-timeout", "2m"])
    assert usage_error(args) is None and args.wait


# -- tables -----------------------------------------------------------------------------


def test_list_shows_a_recurring_jobs_next_fire_time(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a page with a recurring job (its next fire time set) and a one-off job (none)
    recurring = ordo_pb2.Job(job_id=FULL, type="echo", name="nightly", state=ordo_pb2.JOB_STATE_SCHEDULED)
    recurring.run_at.CopyFrom(stamp("2030-01-01T09:00:00Z"))
    recurring.next_fire_time.CopyFrom(stamp("2030-01-02T09:00:00Z"))
    one_off = ordo_pb2.Job(job_id=FULL.replace("a", "b"), type="sleep", state=ordo_pb2.JOB_STATE_WAITING)
    one_off.run_at.CopyFrom(stamp("2030-01-01T10:00:00Z"))

    # When it is printed
    print_jobs(ordo_pb2.ListJobsResponse(jobs=[recurring, one_off]))

    # Then NEXT FIRE is a column, "-" for the one-off job
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == ["JOB", "TYPE", "STATE", "RUN", "AT", "NEXT", "FIRE", "NAME"]
    assert lines[1] == [FULL, "echo", "SCHEDULED", "2030-01-01T09:00:00Z", "2030-01-02T09:00:00Z", "nightly"]
    assert lines[2] == [one_off.job_id, "sleep", "WAITING", "2030-01-01T10:00:00Z", "-"]


def test_a_summary_has_one_line_about_the_runs_not_one_per_run(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a recurring job with 50 runs
    job = ordo_pb2.Job(
        job_id=FULL, type="echo", state=ordo_pb2.JOB_STATE_PAUSED, cron="*/5 * * * *", timezone="UTC"
    )
    job.occurrences = 50
    job.next_fire_time.CopyFrom(stamp("2030-01-01T09:05:00Z"))
    for i in range(50):
        job.runs.add(run_id=f"r{i}", attempt=1, state=ordo_pb2.RUN_STATE_SUCCEEDED, node_id="node2")

    # When it is printed as a summary (pause, resume)
    print_job(job, runs=False)
    summary = capsys.readouterr().out.splitlines()
    # Then it shows its state, schedule and next fire time, and one line for all its runs
    assert summary[2] == "state    PAUSED"
    assert "schedule */5 * * * * (UTC), 50 occurrences so far" in summary
    assert "next     2030-01-01T09:05:00Z" in summary
    assert [line for line in summary if line.startswith("run")][1:] == [
        "runs     50 attempts; the last SUCCEEDED on node2 finished -"
    ]
    assert not any(line.startswith("run      r") for line in summary)

    # while `get` still lists every run
    print_job(job)
    assert sum(line.startswith("run      r") for line in capsys.readouterr().out.splitlines()) == 50


# -- job id prefixes ------------------------------------------------------------------------


def test_a_full_id_is_canonical_and_needs_no_lookup() -> None:
    assert id_or_prefix(FULL) == (FULL, True)
    assert id_or_prefix(FULL.upper()) == (FULL, True)


@pytest.mark.parametrize("prefix", ["01a2", "01A24897", "01a24897-11f4", FULL[:-1]])
def test_a_start_of_an_id_is_a_prefix_in_lower_case(prefix: str) -> None:
    assert id_or_prefix(prefix) == (prefix.lower(), False)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is required"),
        ("01a", f"too short to name a job: give at least {MIN_PREFIX} characters"),
        ("not-a-uuid", "is not a job id (a UUID) nor the start of one"),
        ("01a2%", "is not a job id (a UUID) nor the start of one"),
        (FULL + "0", "is not a job id"),
    ],
)
def test_what_is_neither_an_id_nor_a_prefix_is_refused_naming_the_field(value: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        id_or_prefix(value, "jobId")
    assert e.value.field == "jobId" and reason in e.value.reason


# -- the reads ---------------------------------------------------------------------------------


def job_spec(job_id: str, name: str) -> c.JobSpec:
    return c.JobSpec(job_id=job_id, type="echo", payload=json.dumps({}), run_at=T0, name=name, spec_hash="h")


@pytest.fixture
async def queries(tmp_path: Path) -> AsyncIterator[Queries]:
    """A database holding jobs whose ids share their first 8 and 13 characters, and three names."""
    store = Store(tmp_path / "state.db")
    ids = [
        "01a24897-0fec-719a-ab14-ebd8003f4853",
        "01a24897-11f4-7287-a29a-82f81b8a4a3d",
        "01a24897-11f4-7aaa-a29a-82f81b8a4a3d",
        "01a248a9-c6c8-7669-9800-d96a70fce9a3",
    ]
    names = ["nightly", "nightly", "hourly", ""]
    specs = tuple(job_spec(i, n) for i, n in zip(ids, names, strict=True))
    store.apply(1, c.encode(c.SubmitJobs(request_id="r1", at=T0, node="node1", jobs=specs)))
    q = Queries(store.path)
    await q.open()
    try:
        yield q
    finally:
        await q.close()
        store.close()


async def test_prefix_lookup_finds_one_or_two_ids_of_any_length(queries: Queries) -> None:
    assert await queries.job_ids_with_prefix("01a24897-0") == ["01a24897-0fec-719a-ab14-ebd8003f4853"]
    assert await queries.job_ids_with_prefix("01a248a") == ["01a248a9-c6c8-7669-9800-d96a70fce9a3"]
    # A prefix several ids share: the first two, in order (enough to call it ambiguous)
    assert await queries.job_ids_with_prefix("01a24897-11f4") == [
        "01a24897-11f4-7287-a29a-82f81b8a4a3d",
        "01a24897-11f4-7aaa-a29a-82f81b8a4a3d",
    ]
    assert len(await queries.job_ids_with_prefix("01a2")) == 2
    assert await queries.job_ids_with_prefix("0000") == []
    assert await queries.job_ids_with_prefix("01a248a9-c6c8-7669-9800-d96a70fce9a3") == [
        "01a248a9-c6c8-7669-9800-d96a70fce9a3"
    ]


async def test_prefix_lookup_is_a_range_of_the_primary_key(queries: Queries) -> None:
    async with queries.db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
        ("01a2", "01a2\U0010ffff", 2),
    ) as cur:
        plan = " ".join(str(r[-1]) for r in await cur.fetchall())
    assert "USING COVERING INDEX sqlite_autoindex_jobs_1 (id>? AND id<?)" in plan, plan


async def test_list_by_name_is_exact_and_uses_the_name_index(queries: Queries) -> None:
    jobs, token = await queries.list_jobs(name="nightly")
    assert [j.job_id for j in jobs] == [
        "01a24897-11f4-7287-a29a-82f81b8a4a3d",
        "01a24897-0fec-719a-ab14-ebd8003f4853",
    ]
    assert token == ""
    assert [j.name for j in (await queries.list_jobs(name="hourly"))[0]] == ["hourly"]
    assert (await queries.list_jobs(name="night"))[0] == []
    # and pages by name too
    first, token = await queries.list_jobs(name="nightly", page_size=1)
    second, _ = await queries.list_jobs(name="nightly", page_size=1, page_token=token)
    assert [j.job_id for j in first + second] == [j.job_id for j in jobs]
    async with queries.db.execute(
        "EXPLAIN QUERY PLAN SELECT rowid FROM jobs WHERE name = ? AND name != '' ORDER BY rowid DESC",
        ("nightly",),
    ) as cur:
        plan = " ".join(str(r[-1]) for r in await cur.fetchall())
    assert "jobs_name" in plan and "TEMP B-TREE" not in plan, plan
