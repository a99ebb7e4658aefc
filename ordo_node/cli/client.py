"""The client's commands: submit, get, list, watch, cancel, ... against any node, through ``Client``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from ..client import DEFAULT_ADDRESSES, ENV_ADDRESS, Client, JobFailed
from ..pb import ordo_pb2
from ..timeutil import format_duration
from ..wire import from_value
from .backfill import add_backfill_parser
from .common import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_WAIT_TIMEOUT, add_security_flags
from .flow import DURATION_FLAGS, add_flow_flags, add_schedule_extras, flow_kwargs, print_submitted

# Every job state a job can be in, as `list --state` takes them (any case, JOB_STATE_ optional).
JOB_STATES = [n.removeprefix("JOB_STATE_") for n in ordo_pb2.JobState.keys()[1:]]
JOB_ID_HELP = "a job id, or a unique start of one (4 or more characters)"


def _ts(msg: Message, field: str) -> str:
    if not msg.HasField(field):
        return "-"
    return str(getattr(msg, field).ToJsonString())


def _short_state(name: str) -> str:
    return re.sub(r"^(JOB|RUN|EVENT)_(STATE|TYPE)_", "", name)


def job_state(text: str) -> str:
    """The JobState name of ``SUCCEEDED``, ``dead_letter`` or ``JOB_STATE_PAUSED``; ValueError naming
    the valid ones otherwise."""
    short = text.strip().upper().removeprefix("JOB_STATE_")
    if short not in JOB_STATES:
        raise ValueError(f"'{text}' is not a job state; one of {', '.join(JOB_STATES)} (any case)")
    return f"JOB_STATE_{short}"


def _quoted(items: Sequence[str]) -> str:
    """Cron expressions (which hold spaces and commas) as ``'30 17 * * *', 'every 6h'``."""
    return ", ".join(f"'{x}'" for x in items)


def schedule_lines(job: ordo_pb2.Job) -> list[str]:
    """A recurring job's schedule and next fire time, then its extra specs, exclusions and BUFFER_ALL
    limit (only those set); none for a one-off job."""
    if not job.cron:
        return []
    lines = [
        f"schedule {job.cron} ({job.timezone or 'UTC'}), {job.occurrences} occurrences so far",
        f"next     {_ts(job, 'next_fire_time')}",
    ]
    if job.more_cron:
        lines.append(f"also     {_quoted(job.more_cron)}")
    if job.exclude_dates:
        lines.append(f"except   dates {', '.join(job.exclude_dates)}")
    if job.exclude_cron:
        lines.append(f"except   cron {_quoted(job.exclude_cron)}")
    if job.buffer_limit:
        lines.append(f"buffer   up to {job.buffer_limit} occurrences wait (overlap BUFFER_ALL)")
    return lines


def flow_lines(job: ordo_pb2.Job) -> list[str]:
    """One line per flow-control feature the job was submitted with (only those set)."""
    lines = []
    if job.after:
        condition = ordo_pb2.AfterCondition.Name(job.after_condition).removeprefix("AFTER_CONDITION_")
        lines.append(
            f"after    {', '.join(job.after)} ({'SUCCEEDED' if condition == 'UNSPECIFIED' else condition})"
        )
    if job.concurrency_key:
        lines.append(f"limit    concurrency key '{job.concurrency_key}', {job.concurrency_limit} at once")
    if job.HasField("rate_limit"):
        r = job.rate_limit
        rate = f"{r.per_second:g}/s" if r.per_second else f"{r.per_minute:g}/min"
        lines.append(f"limit    rate key '{r.key}', {rate}, burst {r.burst or 1}")
    if job.HasField("singleton"):
        mode = ordo_pb2.SingletonMode.Name(job.singleton.mode).removeprefix("SINGLETON_MODE_")
        lines.append(
            f"limit    singleton key '{job.singleton.key}', {'SKIP' if mode == 'UNSPECIFIED' else mode}"
        )
    if job.HasField("debounce"):
        d = job.debounce
        mode = ordo_pb2.DebounceMode.Name(d.mode).removeprefix("DEBOUNCE_MODE_")
        mode = "TRAILING" if mode == "UNSPECIFIED" else mode
        max_wait = d.max_wait.ToMicroseconds()
        wait = f", max wait {format_duration(max_wait)}" if max_wait else ""
        lines.append(
            f"debounce key '{d.key}', {mode}, window {format_duration(d.window.ToMicroseconds())}{wait}"
        )
    if job.pause_on_failure:
        lines.append(f"pause    after {job.pause_on_failure} failed occurrences in a row")
    return lines


def print_job(job: ordo_pb2.Job, *, runs: bool = True) -> None:
    """A job, readable; with ``runs=False`` a summary: one line about its runs instead of each.

    ``waiting`` says why a due run waits (run after, concurrency key, rate limit, tags); ``skipped``
    why a SKIPPED job (run after) never ran (the Job message's ``error``)."""
    print(f"job      {job.job_id}")
    print(f"type     {job.type}{'  name ' + job.name if job.name else ''}")
    print(f"state    {_short_state(ordo_pb2.JobState.Name(job.state))}")
    if job.waiting:
        print(f"waiting  {job.waiting}")
    if job.state == ordo_pb2.JOB_STATE_SKIPPED and job.error:
        print(f"skipped  {job.error}")
    print(f"run at   {_ts(job, 'run_at')}")
    for line in schedule_lines(job):
        print(line)
    if job.tags:
        print(f"tags     {','.join(job.tags)}")
    for line in flow_lines(job):
        print(line)
    # The JSON text forms keep numbers exact (a Value carries them as doubles).
    payload = json.loads(job.payload_json) if job.payload_json else None
    if not job.payload_json and job.HasField("payload"):
        payload = from_value(job.payload)
    print(f"payload  {json.dumps(payload)}")
    if runs:
        print_runs(job)
    elif job.runs:
        last = job.runs[-1]
        state = _short_state(ordo_pb2.RunState.Name(last.state))
        print(
            f"runs     {len(job.runs)} attempts; the last {state}"
            f" on {last.node_id or '-'} finished {_ts(last, 'finished_at')}"
        )


def print_runs(job: ordo_pb2.Job) -> None:
    """Every attempt of a job: state, node, times, then its result, error and traceback."""
    for r in job.runs:
        print(
            f"run      {r.run_id} attempt {r.attempt} {_short_state(ordo_pb2.RunState.Name(r.state))}"
            f" on {r.node_id or '-'} started {_ts(r, 'started_at')} finished {_ts(r, 'finished_at')}"
        )
        if r.result_json or r.HasField("result"):
            result = json.loads(r.result_json) if r.result_json else from_value(r.result)
            print(f"  result {json.dumps(result)[:500]}")
        if r.error:
            print(f"  error  {r.error[:500]}")
        if r.traceback:
            print("  traceback (the handler's, last lines):")
            for line in r.traceback.rstrip().splitlines()[-12:]:
                print(f"    {line}")


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Rows as aligned columns."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip())


def _seconds(text: str | None) -> float | None:
    return parse_duration(text) if text else None


def submit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``submit_request`` arguments (beside type and payload) of submit's flags."""
    backoff = {
        k: v
        for k, v in (
            ("initial", _seconds(args.backoff_initial)),
            ("max", _seconds(args.backoff_max)),
            ("multiplier", args.backoff_multiplier),
            ("jitter", args.backoff_jitter),
        )
        if v is not None
    }
    return dict(
        run_at=args.run_at,
        delay=_seconds(args.delay),
        name=args.name,
        idempotency_key=args.idempotency_key,
        cron=args.cron,
        timezone=args.timezone,
        start_at=args.start_at,
        end_at=args.end_at,
        max_runs=args.max_runs,
        jitter=_seconds(args.jitter),
        max_attempts=args.max_attempts,
        backoff=backoff,
        timeout=_seconds(args.attempt_timeout),
        priority=args.priority,
        catch_up=args.catch_up,
        catch_up_window=_seconds(args.catch_up_window),
        overlap=args.overlap,
        tags=tags(args.tags),
        **flow_kwargs(args, _seconds),
    )


async def _submit(client: Client, args: argparse.Namespace) -> ordo_pb2.SubmitJobResponse:
    payload = json.loads(args.payload) if args.payload else None
    job_id, note = await client.submit_noted(args.type, payload, **submit_kwargs(args))
    return ordo_pb2.SubmitJobResponse(job_id=job_id, note=note)


def tags(values: list[str] | None) -> list[str]:
    """The tags of ``--tags a,b --tags c``: a, b, c (empty items dropped)."""
    return [t.strip() for v in values or () for t in v.split(",") if t.strip()]


async def _submit_and_wait(client: Client, args: argparse.Namespace) -> int:
    """submit --wait: the id at once, then the handler's result once the job ended; 1 if it failed."""
    submitted = await _submit(client, args)
    job_id = submitted.job_id
    if not args.json:
        print_submitted(submitted)
        sys.stdout.flush()
    try:
        job = await client.wait(job_id, timeout=_seconds(args.wait_timeout))
    except TimeoutError as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_WAIT_TIMEOUT
    if args.json:
        print(json_format.MessageToJson(job, indent=2))
    if job.state == ordo_pb2.JOB_STATE_SUCCEEDED:
        if not args.json:
            print(job.result_json or "null")
        return 0
    failed = JobFailed(job)
    print(f"ordo-node: {failed}", file=sys.stderr)
    if failed.traceback:
        for line in failed.traceback.rstrip().splitlines()[-12:]:
            print(f"    {line}", file=sys.stderr)
    return 1


async def _preview(client: Client, args: argparse.Namespace) -> Message:
    times = await client.preview(
        args.cron,
        timezone=args.timezone,
        count=args.count,
        after=args.after,
        more_cron=args.more_cron,
        exclude_dates=args.exclude_date,
        exclude_cron=args.exclude_cron,
    )
    return ordo_pb2.PreviewScheduleResponse(times=times)


async def _history(client: Client, args: argparse.Namespace) -> Message:
    return ordo_pb2.GetJobHistoryResponse(events=await client.history(args.job_id))


def print_jobs(page: ordo_pb2.ListJobsResponse) -> None:
    """A page of jobs, readable; NEXT FIRE is a recurring job's next fire time."""
    rows = [
        [
            j.job_id,
            j.type,
            _short_state(ordo_pb2.JobState.Name(j.state)),
            _ts(j, "run_at"),
            _ts(j, "next_fire_time"),
            j.name,
        ]
        for j in page.jobs
    ]
    print_table(rows, ["JOB", "TYPE", "STATE", "RUN AT", "NEXT FIRE", "NAME"])
    if page.next_page_token:
        print(f"next page: --page-token {page.next_page_token}")


def print_history(reply: ordo_pb2.GetJobHistoryResponse) -> None:
    """A job's events, readable."""
    rows = [
        [_ts(e, "time"), _short_state(ordo_pb2.EventType.Name(e.type)), e.node_id, e.message]
        for e in reply.events
    ]
    print_table(rows, ["TIME", "EVENT", "NODE", "DETAIL"])


FETCH: dict[str, Callable[[Client, argparse.Namespace], Awaitable[Message]]] = {
    "submit": _submit,
    "get": lambda client, args: client.get(args.job_id, consistent=args.consistent),
    "cancel": lambda client, args: client.cancel(args.job_id),
    "list": lambda client, args: client.list_jobs(
        state=args.state,
        type=args.type,
        name=args.name,
        page_size=args.page_size,
        page_token=args.page_token,
    ),
    "history": _history,
    "cluster": lambda client, args: client.cluster(),
    "retry": lambda client, args: client.retry(args.job_id),
    "pause": lambda client, args: client.pause(args.job_id, args.note),
    "resume": lambda client, args: client.resume(args.job_id, args.note),
    "trigger": lambda client, args: client.trigger_now(args.job_id, args.note),
    "occurrences": lambda client, args: client.occurrences(
        args.job_id, fate=args.fate, page_size=args.page_size, page_token=args.page_token
    ),
    "explain": lambda client, args: client.explain(args.job_id, args.time),
    "add-node": lambda client, args: client.add_node(args.node_id, args.grpc_address, args.raft_address),
    "remove-node": lambda client, args: client.remove_node(args.node_id),
    "preview": _preview,
}


async def _watch(client: Client, args: argparse.Namespace) -> int:
    async for event in client.watch(args.job_id or "", args.after_seq):
        if args.json:
            print(json_format.MessageToJson(event, indent=None), flush=True)
        else:
            kind = _short_state(ordo_pb2.EventType.Name(event.type))
            print(
                f"{_ts(event, 'time')}  {event.job_id}  {kind:<13} {event.node_id:<8} {event.message}",
                flush=True,
            )
    return 0


async def _client_command(client: Client, args: argparse.Namespace) -> int:
    async with client:
        if args.command == "watch":
            return await _watch(client, args)
        if args.command == "submit" and args.wait:
            return await _submit_and_wait(client, args)
        out = await FETCH[args.command](client, args)
    if args.json:
        print(json_format.MessageToJson(out, indent=2))
    else:
        PRINT[args.command](out)
    return 0


def print_cluster(st: ordo_pb2.ClusterStatus) -> None:
    """Cluster status, readable."""
    leader = st.leader_id or "(none)"
    print(f"leader {leader}  term {st.term}  commit {st.commit_index}  (answered by {st.node_id})")
    print_table(
        [
            [
                n.node_id,
                n.role,
                "yes" if n.reachable else "NO",
                n.grpc_address,
                n.raft_address,
                f"{n.running_count}/{n.capacity}",
                str(n.applied_index),
                ",".join(n.tags),
            ]
            for n in st.nodes
        ],
        ["NODE", "ROLE", "UP", "GRPC", "RAFT", "RUNNING", "APPLIED", "TAGS"],
    )
    if st.workers:
        now = time.time()
        print()
        print_table(
            [
                [
                    w.worker_id,
                    (w.connected_to or "-") + (" (draining)" if w.draining else ""),
                    peer_address(w.address),
                    f"{w.running_count}/{w.capacity}",
                    _age(w.last_heartbeat.ToMicroseconds() / 1e6, now)
                    if w.HasField("last_heartbeat")
                    else "-",
                    shorten(w.tags),
                    shorten(w.handlers),
                ]
                for w in st.workers
            ],
            ["WORKER", "CONNECTED TO", "ADDRESS", "RUNNING", "LAST HEARTBEAT", "TAGS", "HANDLERS"],
        )


def peer_address(address: str) -> str:
    """``127.0.0.1:51234`` of gRPC's ``ipv4:127.0.0.1:51234`` (``-`` when empty)."""
    return re.sub(r"^(ipv4|ipv6):", "", address) or "-"


def shorten(items: Sequence[str], width: int = 30) -> str:
    """``a,b,c`` within about ``width`` characters: the first names that fit, then ``+N`` for the rest."""
    if not items:
        return "-"
    shown: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i
        if shown and len(",".join([*shown, item])) + (len(f",+{rest - 1}") if rest > 1 else 0) > width:
            return ",".join(shown) + f",+{rest}"
        shown.append(item)
    return ",".join(shown)


def _age(then: float, now: float) -> str:
    """How long ago ``then`` was (both in seconds since the epoch): ``0.4s ago``, ``3m ago``."""
    ago = max(0.0, now - then)
    if ago < 60:
        return f"{ago:.1f}s ago"
    if ago < 3600:
        return f"{ago / 60:.0f}m ago"
    return f"{ago / 3600:.1f}h ago"


def print_occurrences(page: ordo_pb2.ListOccurrencesResponse) -> None:
    """A page of occurrences, readable; buffered ones (overlap BUFFER_*) with their place in the queue."""
    rows = [
        [
            _ts(o, "nominal_time"),
            ordo_pb2.Fate.Name(o.fate).removeprefix("FATE_")
            + (f" #{o.buffer_position}" if o.buffer_position else ""),
            _short_state(ordo_pb2.RunState.Name(o.outcome)) if o.outcome else "-",
            str(o.attempts),
            o.reason,
        ]
        for o in page.occurrences
    ]
    print_table(rows, ["NOMINAL TIME", "FATE", "OUTCOME", "ATTEMPTS", "REASON"])
    if page.next_page_token:
        print(f"next page: --page-token {page.next_page_token}")


PRINT: dict[str, Callable[[Any], None]] = {
    "submit": print_submitted,
    "get": print_job,
    "cancel": print_job,
    "list": print_jobs,
    "history": print_history,
    "cluster": print_cluster,
    "retry": print_job,
    "pause": lambda job: print_job(job, runs=False),
    "resume": lambda job: print_job(job, runs=False),
    "trigger": lambda job: print_job(job, runs=False),
    "occurrences": print_occurrences,
    "add-node": print_cluster,
    "remove-node": print_cluster,
    "explain": lambda reply: print(reply.explanation),
    "preview": lambda reply: print_table(
        [[t.local_time, t.nominal_time.ToJsonString(), t.fire_time.ToJsonString()] for t in reply.times],
        ["LOCAL TIME", "NOMINAL (UTC)", "FIRES AT (UTC)"],
    ),
}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``1.5s``, ``500ms``, ``5m`` or ``2h``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration like 30s, 500ms, 5m")
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


def usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with a client command's flags, checked before any call ("--flag: why"), or None."""
    if args.command == "submit":
        if args.payload:
            try:
                json.loads(args.payload)
            except json.JSONDecodeError as e:
                return f"--payload is not JSON: {e}"
        flags = ("delay", "jitter", "attempt_timeout", "backoff_initial", "backoff_max", "catch_up_window")
        for flag in (*flags, *DURATION_FLAGS, "wait_timeout"):
            try:
                _seconds(getattr(args, flag))
            except argparse.ArgumentTypeError as e:
                return f"--{flag.replace('_', '-')}: {e}"
        if args.wait_timeout and not args.wait:
            return "--wait-timeout applies only with --wait"
    if args.command == "list" and args.state:
        try:
            args.state = job_state(args.state)
        except ValueError as e:
            return f"--state: {e}"
    return None


def cmd_client(args: argparse.Namespace) -> int:
    """Run a client subcommand; print gRPC errors as one line."""
    wrong = usage_error(args)
    if wrong:
        print(f"ordo-node: {wrong}", file=sys.stderr)
        return EXIT_CONFIG
    address = args.address if args.address is not None else os.environ.get(ENV_ADDRESS, DEFAULT_ADDRESSES)
    if not [a for a in address.split(",") if a.strip()]:
        print(f"ordo-node: --address (or ${ENV_ADDRESS}) names no node", file=sys.stderr)
        return EXIT_CONFIG
    try:
        client = Client(address, **_security(args))  # its channels open in the command's event loop
    except (ValueError, OSError) as e:
        print(f"ordo-node: {e}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return asyncio.run(_client_command(client, args))
    except grpc.aio.AioRpcError as e:
        print(f"ordo-node: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C (watch, submit --wait): the command was cancelled and its channels closed.
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``ordo-node list | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _security(args: argparse.Namespace) -> dict[str, Any]:
    """The Client options of the --timeout, --token and TLS flags."""
    return {
        "timeout": args.timeout,
        "token": args.token,
        "ca_file": args.ca_file,
        "cert_file": args.cert_file,
        "key_file": args.key_file,
        "server_name": args.server_name,
    }


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The client's subcommands, each with --address, --json, --timeout and the security flags."""

    def client(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument(
            "--address",
            default=None,
            help=f"node addresses, comma-separated (${ENV_ADDRESS}; {DEFAULT_ADDRESSES})",
        )
        c.add_argument("--json", action="store_true", help="print the reply as JSON")
        c.add_argument(
            "--timeout",
            type=parse_duration,
            default=15.0,
            metavar="DURATION",
            help="how long this command's calls to the cluster may take, retries and fail-over included"
            " (15s, 500ms, 2m; default 15s). Not the job's limit: see submit --attempt-timeout",
        )
        add_security_flags(c)
        c.set_defaults(func=cmd_client)
        return c

    s = client("submit", "schedule a job")
    s.add_argument("type", help="handler type: echo, sleep, shell, http_get, file_write, cpu, or your own")
    s.add_argument("--payload", default="", help="JSON value for the handler")
    when = s.add_mutually_exclusive_group()
    when.add_argument("--run-at", default=None, help="RFC 3339 time, e.g. 2030-01-01T09:00:00Z")
    when.add_argument("--delay", default=None, help="run after this delay: 30s, 500ms, 5m")
    s.add_argument("--name", default="")
    s.add_argument("--idempotency-key", default="")
    s.add_argument(
        "--tags",
        action="append",
        metavar="TAG,...",
        help="only executors with all these tags run it (comma-separated; may be repeated)",
    )
    s.add_argument(
        "--wait",
        action="store_true",
        help="print the id, wait until the job ends, print the handler's result (JSON);"
        " exit 1 if the job failed or was cancelled (the error and traceback on stderr)",
    )
    s.add_argument(
        "--wait-timeout",
        default=None,
        metavar="DURATION",
        help=f"with --wait: stop waiting after this long and exit {EXIT_WAIT_TIMEOUT} (the job goes on)",
    )
    add_schedule_flags(s)
    add_flow_flags(s)
    for name, help in (
        ("get", "show a job"),
        ("cancel", "cancel a job, a recurring schedule or a running attempt"),
        ("history", "a job's events"),
        ("retry", "run a FAILED or DEAD_LETTER job again"),
        ("pause", "pause a recurring job"),
        ("resume", "resume a paused job"),
        ("trigger", "run a recurring job once now, beside its schedule (under its overlap policy)"),
        ("occurrences", "every scheduled time of a job and its fate"),
        ("explain", "why did (or didn't) the job run at a time?"),
    ):
        g = client(name, help)
        g.add_argument("job_id", help=JOB_ID_HELP)
        if name == "get":
            g.add_argument("--consistent", action="store_true", help="read through the leader")
        if name in ("pause", "resume", "trigger"):
            kept = (
                "the occurrence's reason and the job's history" if name == "trigger" else "the job's history"
            )
            g.add_argument("--note", default="", help=f"kept in {kept}")
        if name == "occurrences":
            g.add_argument("--fate", default="", help="TRIGGERED, MISSED, SKIPPED_OVERLAP, PAUSED, ...")
            g.add_argument("--page-size", type=int, default=0)
            g.add_argument("--page-token", default="")
        if name == "explain":
            g.add_argument("time", help="RFC 3339, e.g. 2030-01-01T09:00:00Z")
    pv = client("preview", "the next fire times of a schedule")
    pv.add_argument("cron")
    pv.add_argument("--timezone", default="")
    pv.add_argument("--count", type=int, default=10)
    pv.add_argument("--after", default=None, help="RFC 3339 (default now)")
    for flag, metavar, help in (
        ("--more-cron", "EXPR", "another spec beside CRON, as submit takes it (may be repeated)"),
        ("--exclude-date", "YYYY-MM-DD", "nothing fires on this date, in --timezone (may be repeated)"),
        (
            "--exclude-cron",
            "EXPR",
            "times that do not fire: '* * * * sat,sun' is the weekend (may be repeated)",
        ),
    ):
        pv.add_argument(flag, action="append", default=[], metavar=metavar, help=help)
    w = client("watch", "follow job events live (Ctrl-C to stop)")
    w.add_argument("job_id", nargs="?", default="", help=f"only this job's events: {JOB_ID_HELP}")
    w.add_argument("--after-seq", type=int, default=0, help="replay from this event sequence number")
    lst = client("list", "list jobs, newest first")
    lst.add_argument("--state", default="", help=f"only jobs in this state: {', '.join(JOB_STATES)}")
    lst.add_argument("--type", default="", help="only jobs of this handler type")
    lst.add_argument("--name", default="", help="only jobs of this name (exact)")
    lst.add_argument("--page-size", type=int, default=0)
    lst.add_argument("--page-token", default="")
    client("cluster", "show the cluster's nodes, leader and load")
    an = client("add-node", "add a member (then start it with the current members as its peers)")
    an.add_argument("node_id")
    an.add_argument("--grpc-address", required=True)
    an.add_argument("--raft-address", required=True)
    rn = client("remove-node", "remove a member that does not lead")
    rn.add_argument("node_id")
    add_backfill_parser(sub)  # issue 17: cli/backfill.py


def add_schedule_flags(s: argparse.ArgumentParser) -> None:
    """The submit flags for schedules and policies."""
    g = s.add_argument_group("recurring jobs")
    g.add_argument(
        "--cron", default="", help="'*/5 * * * *', '*/10 * * * * *' (seconds first), @daily, 'every 30s'"
    )
    g.add_argument("--timezone", default="", help="IANA name for the cron expression (default UTC)")
    g.add_argument("--start-at", default=None)
    g.add_argument("--end-at", default=None)
    g.add_argument("--max-runs", type=int, default=0)
    g.add_argument("--jitter", default=None, help="spread each fire time by up to this, e.g. 30s")
    g.add_argument("--catch-up", default="", choices=["", "SKIP", "ONE", "ALL"])
    g.add_argument("--catch-up-window", default=None)
    g.add_argument(
        "--overlap", default="", choices=["", "ALLOW", "SKIP", "BUFFER_ONE", "BUFFER_ALL", "CANCEL_OTHER"]
    )
    add_schedule_extras(g)
    p = s.add_argument_group("attempts")
    p.add_argument("--max-attempts", type=int, default=0)
    p.add_argument("--backoff-initial", default=None, help="e.g. 1s")
    p.add_argument("--backoff-multiplier", type=float, default=None)
    p.add_argument("--backoff-max", default=None, help="e.g. 5m")
    p.add_argument("--backoff-jitter", type=float, default=None, help="0 to 1")
    p.add_argument(
        "--attempt-timeout",
        default=None,
        metavar="DURATION",
        help="the job's limit per attempt, e.g. 30s: the handler is cancelled and the attempt fails"
        " (not --timeout, which bounds this command's calls)",
    )
    p.add_argument("--priority", type=int, default=0)
