"""``ordo-node submit``'s flow-control and schedule flags, the note of a submission and ``trigger``
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
