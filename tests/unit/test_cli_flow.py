"""``ordo-node submit``'s flow-control and schedule flags, the note of a submission, ``trigger``, what
``get`` shows of them (and why a job waits), ``preview``'s schedule flags and ``backfill``'s output
(issue 17), without a cluster: each command runs through ``cmd_client`` with ``Client._call``
replaced by a fake that records the request and answers as a node would."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ordo_node.cli import build_parser
from ordo_node.cli.client import cmd_client, submit_kwargs, usage_error
from ordo_node.client import Client, submit_request
from ordo_node.pb import ordo_pb2

FULL = "01a24897-11f4-7287-a29a-82f81b8a4a3d"
OTHER = "01a24897-11f4-7287-a29a-82f81b8a4a3e"


class FakeNode:
    """Answers ``Client._call``: records (service, method, request), replies with ``replies[method]``."""

    def __init__(self, **replies: Any) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.replies = replies

    async def __call__(self, service: str, method: str, request: Any) -> Any:
        self.calls.append((service, method, request))
        return self.replies[method]


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode(SubmitJob=ordo_pb2.SubmitJobResponse(job_id=FULL))
    monkeypatch.setattr(Client, "_call", fake)  # not a function: called without the client
    return fake


def run(argv: list[str]) -> int:
    """``ordo-node ARGV`` against the fake node."""
    return cmd_client(build_parser().parse_args([*argv, "--address", "127.0.0.1:1"]))


def submitted(node: FakeNode, argv: list[str]) -> ordo_pb2.SubmitJobRequest:
    """The SubmitJobRequest ``ordo-node submit ARGV`` sends."""
    assert run(["submit", *argv]) == 0
    [(service, method, request)] = node.calls
    assert (service, method) == ("jobs", "SubmitJob")
    assert isinstance(request, ordo_pb2.SubmitJobRequest)
    return request


# -- flow control ---------------------------------------------------------------------------


def test_run_after_flags_land_in_after_and_after_condition(node: FakeNode) -> None:
    req = submitted(node, ["echo", "--after", FULL, "--after", OTHER, "--after-condition", "finished"])
    assert list(req.after) == [FULL, OTHER]
    assert req.after_condition == ordo_pb2.AFTER_CONDITION_FINISHED


def test_concurrency_and_pause_on_failure_flags_land_in_their_fields(node: FakeNode) -> None:
    req = submitted(
        node,
        ["echo", "--concurrency-key", "acme", "--concurrency-limit", "2", "--pause-on-failure", "3"],
    )
    assert (req.concurrency_key, req.concurrency_limit, req.pause_on_failure) == ("acme", 2, 3)


def test_rate_flags_make_one_rate_limit_per_second_or_per_minute(node: FakeNode) -> None:
    req = submitted(node, ["echo", "--rate-key", "api", "--rate-per-second", "2.5", "--rate-burst", "4"])
    assert req.rate_limit == ordo_pb2.RateLimit(key="api", per_second=2.5, burst=4)
    parse = build_parser().parse_args
    per_minute = submit_request("echo", **submit_kwargs(parse(["submit", "echo", "--rate-per-minute", "30"])))
    assert per_minute.rate_limit == ordo_pb2.RateLimit(per_minute=30)


def test_a_rate_is_per_second_or_per_minute_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "echo", "--rate-per-second", "1", "--rate-per-minute", "60"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_debounce_flags_take_durations_as_delay_does(node: FakeNode) -> None:
    req = submitted(
        node,
        [
            "echo",
            "--debounce-key",
            "deploy",
            "--debounce-window",
            "5s",
            "--debounce-mode",
            "trailing",
            "--debounce-max-wait",
            "1m",
        ],
    )
    assert req.HasField("debounce")
    assert req.debounce.key == "deploy"
    assert req.debounce.window.ToMicroseconds() == 5_000_000
    assert req.debounce.max_wait.ToMicroseconds() == 60_000_000
    assert req.debounce.mode == ordo_pb2.DEBOUNCE_MODE_TRAILING


def test_a_bad_debounce_duration_is_named_with_its_flag_before_any_call() -> None:
    parse = build_parser().parse_args
    assert (usage_error(parse(["submit", "echo", "--debounce-window", "soon"])) or "").startswith(
        "--debounce-window: 'soon' is not a duration"
    )
    assert (usage_error(parse(["submit", "echo", "--debounce-max-wait", "5x"])) or "").startswith(
        "--debounce-max-wait: '5x'"
    )


def test_singleton_flags_land_in_singleton(node: FakeNode) -> None:
    req = submitted(node, ["echo", "--singleton-key", "nightly", "--singleton-mode", "replace"])
    assert req.singleton == ordo_pb2.Singleton(key="nightly", mode=ordo_pb2.SINGLETON_MODE_REPLACE)


def test_a_flag_without_its_partner_is_sent_for_the_server_to_judge(node: FakeNode) -> None:
    # --singleton-mode without a key, --debounce-window without a key: sent as given (the server
    # answers INVALID_ARGUMENT naming the field)
    req = submitted(node, ["echo", "--singleton-mode", "SKIP", "--debounce-window", "2s"])
    assert req.HasField("singleton") and req.singleton.key == ""
    assert req.HasField("debounce") and req.debounce.window.ToMicroseconds() == 2_000_000


def test_without_the_new_flags_the_request_has_none_of_their_fields(node: FakeNode) -> None:
    req = submitted(node, ["echo", "--cron", "@daily"])
    for field in ("rate_limit", "debounce", "singleton"):
        assert not req.HasField(field), field
    assert not (req.after or req.more_cron or req.exclude_dates or req.exclude_cron)
    assert (req.after_condition, req.concurrency_key, req.buffer_limit) == (0, "", 0)


@pytest.mark.parametrize("flag", ["--after-condition", "--debounce-mode", "--singleton-mode"])
def test_a_mode_outside_its_choices_is_refused_by_argparse(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "echo", flag, "sometimes"])
    assert "invalid choice: 'SOMETIMES'" in capsys.readouterr().err


# -- schedules --------------------------------------------------------------------------------


def test_schedule_flags_land_in_more_cron_exclusions_and_buffer_limit(node: FakeNode) -> None:
    req = submitted(
        node,
        [
            "echo",
            "--cron",
            "0 9 * * *",
            "--more-cron",
            "30 17 * * *",
            "--more-cron",
            "every 6h",
            "--exclude-date",
            "2030-12-25",
            "--exclude-date",
            "2031-01-01",
            "--exclude-cron",
            "* * * * sat,sun",
            "--overlap",
            "BUFFER_ALL",
            "--buffer-limit",
            "20",
        ],
    )
    assert req.cron == "0 9 * * *"
    assert list(req.more_cron) == ["30 17 * * *", "every 6h"]
    assert list(req.exclude_dates) == ["2030-12-25", "2031-01-01"]
    assert list(req.exclude_cron) == ["* * * * sat,sun"]
    assert req.overlap == ordo_pb2.OVERLAP_BUFFER_ALL
    assert req.buffer_limit == 20


def test_help_shows_the_new_groups(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "flow control:" in text
    for flag in ("--after JOB_ID", "--rate-per-minute X", "--debounce-window DURATION", "--exclude-date"):
        assert flag in text, flag
    assert "BUFFER_ALL" in text


# -- the note of a submission -------------------------------------------------------------------


def test_a_note_is_printed_on_a_second_line(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    note = f"skipped: singleton key 'k' (SKIP) is held by job {FULL}"
    node.replies["SubmitJob"] = ordo_pb2.SubmitJobResponse(job_id=FULL, note=note)
    assert run(["submit", "echo", "--singleton-key", "k"]) == 0
    assert capsys.readouterr().out.splitlines() == [FULL, note]


def test_without_a_note_submit_prints_the_id_alone(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["submit", "echo"]) == 0
    assert capsys.readouterr().out.splitlines() == [FULL]


def test_json_output_carries_the_note(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.replies["SubmitJob"] = ordo_pb2.SubmitJobResponse(job_id=FULL, note=f"merged into job {FULL}")
    assert run(["submit", "echo", "--debounce-key", "d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"jobId": FULL, "note": f"merged into job {FULL}"}


def test_submit_wait_prints_the_note_under_the_id(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.replies["SubmitJob"] = ordo_pb2.SubmitJobResponse(job_id=FULL, note=f"merged into job {FULL}")
    node.replies["GetJob"] = ordo_pb2.Job(job_id=FULL, state=ordo_pb2.JOB_STATE_SUCCEEDED, result_json="7")
    assert run(["submit", "echo", "--debounce-key", "d", "--wait"]) == 0
    assert capsys.readouterr().out.splitlines() == [FULL, f"merged into job {FULL}", "7"]


# -- trigger ------------------------------------------------------------------------------------


def test_trigger_calls_trigger_now_with_the_id_or_prefix_as_given(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a node whose TriggerNow answers the recurring job, its new run the last
    job = ordo_pb2.Job(
        job_id=FULL, type="echo", state=ordo_pb2.JOB_STATE_SCHEDULED, cron="*/5 * * * *", occurrences=4
    )
    job.runs.add(run_id="r4", attempt=1, state=ordo_pb2.RUN_STATE_PENDING)
    node.replies["TriggerNow"] = job
    # When `trigger` is given the start of its id
    assert run(["trigger", FULL[:8]]) == 0
    # Then TriggerNow is called with that start (the node resolves it) and the job's summary printed
    assert node.calls == [("jobs", "TriggerNow", ordo_pb2.TriggerNowRequest(job_id=FULL[:8]))]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"job      {FULL}"
    assert "schedule */5 * * * * (UTC), 4 occurrences so far" in out
    assert "runs     1 attempts; the last PENDING on - finished -" in out


def test_trigger_sends_its_note(node: FakeNode) -> None:
    node.replies["TriggerNow"] = ordo_pb2.Job(job_id=FULL, type="echo", cron="*/5 * * * *")
    assert run(["trigger", FULL, "--note", "hotfix 12"]) == 0
    assert node.calls == [("jobs", "TriggerNow", ordo_pb2.TriggerNowRequest(job_id=FULL, note="hotfix 12"))]


def test_trigger_needs_a_job_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["trigger"])
    assert "job_id" in capsys.readouterr().err


# -- get: why a job waits, and its flow control and schedule --------------------------------------


def shown(node: FakeNode, job: ordo_pb2.Job, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The lines ``ordo-node get`` prints for ``job``, as a node answers it."""
    node.replies["GetJob"] = job
    assert run(["get", job.job_id]) == 0
    return capsys.readouterr().out.splitlines()


def test_get_says_why_a_job_waits_for_its_concurrency_key(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job held back by its concurrency key, its run PENDING
    job = ordo_pb2.Job(
        job_id=FULL,
        type="sleep",
        state=ordo_pb2.JOB_STATE_WAITING,
        waiting="concurrency key 'acme' at its limit of 2",
        concurrency_key="acme",
        concurrency_limit=2,
        payload_json='{"seconds":1}',
    )
    job.run_at.FromJsonString("2026-12-06T03:12:36.051470Z")
    job.runs.add(run_id=f"{FULL}:1", attempt=1, state=ordo_pb2.RUN_STATE_PENDING)
    # When `get` prints it
    lines = shown(node, job, capsys)
    # Then the reason follows the state, and the key and its limit have a line of their own
    assert lines == [
        f"job      {FULL}",
        "type     sleep",
        "state    WAITING",
        "waiting  concurrency key 'acme' at its limit of 2",
        "run at   2026-12-06T03:12:36.051470Z",
        "limit    concurrency key 'acme', 2 at once",
        'payload  {"seconds": 1}',
        f"run      {FULL}:1 attempt 1 PENDING on - started - finished -",
    ]


def test_get_shows_a_debounced_jobs_key_mode_window_and_max_wait(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    job = ordo_pb2.Job(job_id=FULL, type="echo", state=ordo_pb2.JOB_STATE_SCHEDULED)
    job.debounce.key = "reindex"
    job.debounce.mode = ordo_pb2.DEBOUNCE_MODE_TRAILING
    job.debounce.window.FromMicroseconds(2_000_000)
    job.debounce.max_wait.FromMicroseconds(90_000_000)
    lines = shown(node, job, capsys)
    assert "debounce key 'reindex', TRAILING, window 2s, max wait 1m30s" in lines
    assert not any(line.startswith(("waiting", "limit", "after")) for line in lines)
    # without a max wait (LEADING takes none), none is shown; 500ms stays 500ms
    job.debounce.mode = ordo_pb2.DEBOUNCE_MODE_LEADING
    job.debounce.window.FromMicroseconds(500_000)
    job.debounce.ClearField("max_wait")
    assert "debounce key 'reindex', LEADING, window 500ms" in shown(node, job, capsys)


def test_get_shows_a_singleton_jobs_key_and_mode(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    job = ordo_pb2.Job(job_id=FULL, type="echo", state=ordo_pb2.JOB_STATE_RUNNING)
    job.singleton.key = "nightly-report"
    job.singleton.mode = ordo_pb2.SINGLETON_MODE_REPLACE
    lines = shown(node, job, capsys)
    assert lines[:3] == [f"job      {FULL}", "type     echo", "state    RUNNING"]
    assert [line for line in lines if line.startswith("limit")] == [
        "limit    singleton key 'nightly-report', REPLACE"
    ]


def test_get_shows_run_after_the_rate_limit_and_a_waiting_run_after(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    job = ordo_pb2.Job(
        job_id=FULL,
        type="echo",
        state=ordo_pb2.JOB_STATE_WAITING,
        waiting=f"runs after jobs {OTHER} (FINISHED)",
        after=[OTHER],
        after_condition=ordo_pb2.AFTER_CONDITION_FINISHED,
        rate_limit=ordo_pb2.RateLimit(key="api", per_minute=30, burst=5),
    )
    lines = shown(node, job, capsys)
    assert lines[3] == f"waiting  runs after jobs {OTHER} (FINISHED)"
    assert f"after    {OTHER} (FINISHED)" in lines
    assert "limit    rate key 'api', 30/min, burst 5" in lines


def test_get_shows_a_recurring_jobs_other_specs_exclusions_and_limits(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    job = ordo_pb2.Job(
        job_id=FULL,
        type="echo",
        state=ordo_pb2.JOB_STATE_SCHEDULED,
        cron="0 9 * * *",
        timezone="UTC",
        more_cron=["30 17 * * *", "0 12 * * mon,fri"],
        exclude_dates=["2027-01-05", "2027-12-25"],
        exclude_cron=["* * * * sat,sun"],
        overlap=ordo_pb2.OVERLAP_BUFFER_ALL,
        buffer_limit=2,
        pause_on_failure=3,
    )
    job.next_fire_time.FromJsonString("2026-12-07T09:00:00Z")
    lines = shown(node, job, capsys)
    assert lines[4:11] == [
        "schedule 0 9 * * * (UTC), 0 occurrences so far",
        "next     2026-12-07T09:00:00Z",
        "also     '30 17 * * *', '0 12 * * mon,fri'",
        "except   dates 2027-01-05, 2027-12-25",
        "except   cron '* * * * sat,sun'",
        "buffer   up to 2 occurrences wait (overlap BUFFER_ALL)",
        "pause    after 3 failed occurrences in a row",
    ]


def test_get_of_a_plain_job_has_no_flow_lines(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    # A plain job (here SKIPPED, with no reason given) prints no line beyond the usual ones
    job = ordo_pb2.Job(job_id=FULL, type="echo", state=ordo_pb2.JOB_STATE_SKIPPED, payload_json="null")
    assert shown(node, job, capsys) == [
        f"job      {FULL}",
        "type     echo",
        "state    SKIPPED",
        "run at   -",
        "payload  null",
    ]
    assert [method for _, method, _ in node.calls] == ["GetJob"]


def test_get_of_a_skipped_job_says_why_it_never_ran(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    why = "job 01a2 ended FAILED; this job runs only once it SUCCEEDED"
    job = ordo_pb2.Job(
        job_id=FULL, type="echo", state=ordo_pb2.JOB_STATE_SKIPPED, error=why, payload_json="1"
    )
    assert shown(node, job, capsys)[2:4] == ["state    SKIPPED", f"skipped  {why}"]


def test_get_json_is_the_message_as_it_was(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    job = ordo_pb2.Job(
        job_id=FULL,
        state=ordo_pb2.JOB_STATE_WAITING,
        waiting="rate limit 'api' of 4/s (burst 1)",
        rate_limit=ordo_pb2.RateLimit(key="api", per_second=4, burst=1),
    )
    node.replies["GetJob"] = job
    assert run(["get", FULL, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "jobId": FULL,
        "state": "JOB_STATE_WAITING",
        "waiting": "rate limit 'api' of 4/s (burst 1)",
        "rateLimit": {"key": "api", "perSecond": 4.0, "burst": 1},
    }


# -- preview ------------------------------------------------------------------------------------


def test_preview_sends_more_cron_and_exclusions(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a node that answers one fire time
    t = ordo_pb2.PreviewTime(local_time="2027-01-01T09:00:00+00:00")
    t.nominal_time.FromJsonString("2027-01-01T09:00:00Z")
    t.fire_time.FromJsonString("2027-01-01T09:00:00Z")
    node.replies["PreviewSchedule"] = ordo_pb2.PreviewScheduleResponse(times=[t])
    # When preview is given the flags submit takes, some repeated
    argv = ["preview", "0 9 * * *", "--more-cron", "30 17 * * *", "--more-cron", "every 6h"]
    argv += ["--exclude-date", "2027-01-05", "--exclude-date", "2027-12-25"]
    argv += ["--exclude-cron", "* * * * sat,sun", "--after", "2027-01-01T00:00:00Z", "--count", "8"]
    assert run(argv) == 0
    # Then PreviewSchedule gets each of them in its field
    [(service, method, req)] = node.calls
    assert (service, method) == ("jobs", "PreviewSchedule")
    assert req == ordo_pb2.PreviewScheduleRequest(
        cron="0 9 * * *",
        count=8,
        after="2027-01-01T00:00:00Z",
        more_cron=["30 17 * * *", "every 6h"],
        exclude_dates=["2027-01-05", "2027-12-25"],
        exclude_cron=["* * * * sat,sun"],
    )
    assert capsys.readouterr().out.splitlines()[1].split() == [
        "2027-01-01T09:00:00+00:00",
        "2027-01-01T09:00:00Z",
        "2027-01-01T09:00:00Z",
    ]


def test_preview_without_the_flags_sends_no_specs_or_exclusions(node: FakeNode) -> None:
    node.replies["PreviewSchedule"] = ordo_pb2.PreviewScheduleResponse()
    assert run(["preview", "@daily"]) == 0
    [(_, _, req)] = node.calls
    assert not (req.more_cron or req.exclude_dates or req.exclude_cron)


# -- backfill and help ------------------------------------------------------------------------------


def test_backfill_prints_its_lines_and_count_on_stdout(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a node whose dry run chose two occurrences, one PAUSED, one never recorded
    reply = ordo_pb2.BackfillScheduleResponse(dry_run=True)
    paused = reply.occurrences.add(previous_fate=ordo_pb2.FATE_PAUSED)
    paused.nominal_time.FromJsonString("2026-12-06T03:13:21Z")
    never = reply.occurrences.add()
    never.nominal_time.FromJsonString("2026-12-06T03:13:22Z")
    node.replies["BackfillSchedule"] = reply
    # When backfill --dry-run runs (its --timeout a duration, as every command's)
    argv = ["backfill", FULL[:8], "--from", "2026-12-06T03:13:18Z", "--to", "2026-12-06T03:13:28Z"]
    args = build_parser().parse_args([*argv, "--dry-run", "--timeout", "500ms", "--address", "127.0.0.1:1"])
    assert args.timeout == 0.5
    assert args.func(args) == 0
    # Then the occurrences and their count are on stdout, in that order, and nothing on stderr
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "2026-12-06T03:13:21.000000Z  was PAUSED  (dry run)",
        "2026-12-06T03:13:22.000000Z  was none recorded  (dry run)",
        "2 occurrences would run",
    ]
    assert out.err == ""
    [(_, method, req)] = node.calls
    assert (method, req.job_id, req.dry_run) == ("BackfillSchedule", FULL[:8], True)


def test_help_says_durations_and_where_a_trigger_note_goes(capsys: pytest.CaptureFixture[str]) -> None:
    def help_of(command: str) -> str:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        return " ".join(capsys.readouterr().out.split())

    backfill = help_of("backfill")
    assert "--timeout DURATION how long this command's calls" in backfill
    assert "seconds" not in backfill
    assert "a unique start of one" in backfill
    assert "--note NOTE kept in the occurrence's reason and the job's history" in help_of("trigger")
    assert "--note NOTE kept in the job's history" in help_of("pause")
    preview = help_of("preview")
    for flag in ("--more-cron EXPR", "--exclude-date YYYY-MM-DD", "--exclude-cron EXPR"):
        assert flag in preview, flag


def test_occurrences_show_a_buffered_ones_place_in_the_queue(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    page = ordo_pb2.ListOccurrencesResponse()
    page.occurrences.add(fate=ordo_pb2.FATE_BUFFERED, buffer_position=2, reason="waits")
    page.occurrences.add(fate=ordo_pb2.FATE_TRIGGERED, outcome=ordo_pb2.RUN_STATE_SUCCEEDED, attempts=1)
    node.replies["ListOccurrences"] = page
    assert run(["occurrences", FULL]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[1:3] == ["BUFFERED", "#2"]
    assert lines[2].split()[1:3] == ["TRIGGERED", "SUCCEEDED"]


async def test_submit_many_noted_pairs_each_id_with_its_note(node: FakeNode) -> None:
    note = f"skipped: singleton key 'k' is held by job {FULL} (RUNNING)"
    node.replies["SubmitJobs"] = ordo_pb2.SubmitJobsResponse(job_ids=[FULL, FULL], notes=["", note])
    jobs = [{"type": "echo", "singleton": {"key": "k"}}] * 2
    async with Client("127.0.0.1:1") as client:
        assert await client.submit_many_noted(jobs) == [(FULL, ""), (FULL, note)]
        node.replies["SubmitJobs"] = ordo_pb2.SubmitJobsResponse(job_ids=[FULL, OTHER])  # no notes at all
        assert await client.submit_many_noted(jobs) == [(FULL, ""), (OTHER, "")]
        assert await client.submit_many(jobs) == [FULL, OTHER]
