"""Random and malformed requests to every public RPC of one running node (hypothesis).

Whatever a client sends, the node stays up, answers OK or a client-error status
(never INTERNAL or UNKNOWN), names the bad field in every INVALID_ARGUMENT, and
its state stays consistent: what it acknowledged it can read back, listing pages
through every job once, and its database agrees with its API.

The examples are derandomized, so CI sees the same ones every run. For a longer
fuzz, raise the count per test and pick a seed of your own, e.g.::

    ORDO_FUZZ_EXAMPLES=3000 ORDO_FUZZ_SEED=7 pytest tests/cluster/test_fuzz.py -p no:cacheprovider
"""

from __future__ import annotations

import base64
import math
import os
import re
import sqlite3
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import Cluster, NodeProc
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from ordo_node.pb import ordo_pb2, ordo_pb2_grpc

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("ORDO_FUZZ_EXAMPLES", "40"))  # per test
SEED = os.environ.get("ORDO_FUZZ_SEED", "")

# What a client's mistake may be answered with. DEADLINE_EXCEEDED, UNAVAILABLE,
# INTERNAL and UNKNOWN are never a fair answer to a request on a healthy
# single-node cluster.
CLIENT_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# An INVALID_ARGUMENT names the field as spelled on the wire: "jobs[3].backoff.jitter: ...".
FIELD = re.compile(r"^[a-z][A-Za-z0-9]*(\[\d+\])?(\.[a-zA-Z][A-Za-z0-9]*(\[\d+\])?)*: ")
CALL_TIMEOUT = 15.0
WATCH_TIMEOUT = 0.1  # a watch with nothing to report ends by the client's deadline
JOB_SERVICE = ordo_pb2.DESCRIPTOR.services_by_name["JobService"]
CLUSTER_SERVICE = ordo_pb2.DESCRIPTOR.services_by_name["ClusterService"]

F = TypeVar("F", bound=Callable[..., None])
M = TypeVar("M", bound=Message)
# A request's fields: (what a careful client sends, anything at all)
Fields = Mapping[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]


def fuzz(test: F) -> F:
    """Bounded, reproducible hypothesis settings (see the module docstring to run longer)."""
    configured = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not SEED,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )(test)
    return seed(int(SEED))(configured) if SEED else configured


# --- the node --------------------------------------------------------------------------------------------


class Node:
    """One running node, sync stubs on it, and what it acknowledged."""

    def __init__(self, cluster: Cluster, channel: grpc.Channel) -> None:
        self.cluster = cluster
        self.channel = channel
        self.jobs = ordo_pb2_grpc.JobServiceStub(channel)
        self.members = ordo_pb2_grpc.ClusterServiceStub(channel)
        self.acked: dict[str, ordo_pb2.SubmitJobRequest] = {}
        self.live_crons = 0

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return f"Node({self.proc.address}, {len(self.acked)} jobs acknowledged)"

    @property
    def proc(self) -> NodeProc:
        return self.cluster.nodes[0]

    def known_ids(self) -> list[str]:
        """Job ids the node acknowledged, in submission order."""
        return list(self.acked)

    def call(self, name: str, request: Message, *, stub: Any = None) -> Any:
        """The answer of RPC ``name``, or None after a client-error status; fails on any other status or
        a dead node. ``stub`` defaults to the JobService or ClusterService one with that method."""
        method = getattr(stub or (self.jobs if hasattr(self.jobs, name) else self.members), name)
        try:
            reply = method(request, timeout=CALL_TIMEOUT)
            event(f"{name}: OK")  # --hypothesis-show-statistics counts them
            return reply
        except grpc.RpcError as e:
            event(f"{name}: {e.code().name}")
            check_status(e, name, request)
            return None
        finally:
            assert self.proc.alive, f"the node died; its log:\n{self.proc.log_text()[-4000:]}"


def check_status(e: grpc.RpcError, method: str, request: Any) -> None:
    """A client-error status with a short message that names the field if the argument was invalid."""
    code, details = e.code(), e.details() or ""
    shown = repr(request)[:400]
    assert code in CLIENT_ERRORS, f"{method} answered {code.name} ({details[:300]!r}) to {shown}"
    assert "Traceback" not in details
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert FIELD.match(details), f"{method}: INVALID_ARGUMENT names no field: {details[:300]!r}"


def wait_ready(node: Node, timeout: float = 30.0) -> None:
    """Until the node leads and its health service says SERVING."""
    health = health_pb2_grpc.HealthStub(node.channel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = node.members.GetClusterStatus(ordo_pb2.GetClusterStatusRequest(), timeout=2)
            served = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
            if status.leader_id == node.proc.id and served == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        assert time.monotonic() < deadline, f"node not ready:\n{node.proc.log_text()[-4000:]}"
        time.sleep(0.1)


def seed_jobs(node: Node) -> None:
    """Jobs in every state the mutating calls care about: scheduled, recurring, paused, failed, cancelled."""
    requests = [
        ordo_pb2.SubmitJobRequest(type="echo", name="far", delay=duration_pb2.Duration(seconds=86400)),
        ordo_pb2.SubmitJobRequest(type="echo", cron="*/2 * * * * *", name="every-2s"),
        ordo_pb2.SubmitJobRequest(type="echo", cron="@hourly", timezone="Europe/Paris", name="hourly"),
        ordo_pb2.SubmitJobRequest(type="echo", cron="0 9 * * 1-5", name="paused"),
        ordo_pb2.SubmitJobRequest(
            type="sleep",
            payload=struct_pb2.Value(struct_value=struct_pb2.Struct(fields={"seconds": num(5)})),
            timeout=duration_pb2.Duration(seconds=1),
            name="fails",
        ),
        ordo_pb2.SubmitJobRequest(type="echo", cron="every 5s", name="interval"),
    ]
    for req in requests:
        node.acked[node.jobs.SubmitJob(req, timeout=CALL_TIMEOUT).job_id] = req
    node.jobs.PauseJob(
        ordo_pb2.PauseJobRequest(job_id=seeded(node, "paused"), note="seeded"), timeout=CALL_TIMEOUT
    )
    node.jobs.CancelJob(ordo_pb2.CancelJobRequest(job_id=seeded(node, "interval")), timeout=CALL_TIMEOUT)


def seeded(node: Node, name: str) -> str:
    """The id of the seeded job of that name."""
    return next(i for i, r in node.acked.items() if r.name == name)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """ONE node (a single-node cluster) for the whole module; dangerous handlers stay off."""
    cluster = Cluster(tmp_path_factory.mktemp("fuzz"), size=1, shutdown_grace=1.0)
    # Random payloads must never reach a shell: this node enables no dangerous handler.
    cluster.settings["executor"]["dangerous_handlers"] = []
    cluster.nodes[0].config_path.write_text(cluster.config_text(cluster.nodes[0]))
    cluster.start()
    channel = grpc.insecure_channel(
        cluster.nodes[0].address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    )
    try:
        n = Node(cluster, channel)
        wait_ready(n)
        seed_jobs(n)
        yield n
    finally:
        channel.close()
        cluster.terminate_all()
        print(cluster.logs())


# --- strategies ------------------------------------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# Every kind of text: unicode, NULs and control characters, and some of it huge.
huge_text = st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(300, 200_000))
any_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x1F), max_size=10),
    st.text(st.characters(min_codepoint=0x10000), max_size=8),
    huge_text,
)


def num(x: float) -> struct_pb2.Value:
    return struct_pb2.Value(number_value=x)


def _list(items: list[struct_pb2.Value]) -> struct_pb2.Value:
    v = struct_pb2.Value()
    v.list_value.values.extend(items)
    return v


def _struct(items: dict[str, struct_pb2.Value]) -> struct_pb2.Value:
    v = struct_pb2.Value()
    for k, x in items.items():
        v.struct_value.fields[k].CopyFrom(x)
    return v


def _nested(depth: int) -> struct_pb2.Value:
    """Lists in lists, ``depth`` deep (protobuf itself refuses to parse past 100 message levels)."""
    v = struct_pb2.Value(string_value="bottom")
    for _ in range(depth):
        v = _list([v])
    return v


scalars = st.one_of(
    st.just(struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)),
    st.booleans().map(lambda b: struct_pb2.Value(bool_value=b)),
    st.floats(allow_nan=True, allow_infinity=True).map(num),
    st.integers(-(2**64), 2**64).map(lambda i: num(float(i))),
    any_text.map(lambda s: struct_pb2.Value(string_value=s)),
)
values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(_list),
            st.dictionaries(st.text(max_size=10), inner, max_size=4).map(_struct),
        ),
        max_leaves=12,
    ),
    st.integers(10, 45).map(_nested),
)
sleep_payloads = st.one_of(
    st.floats(0, 0.05).map(lambda x: _struct({"seconds": num(x)})),
    st.dictionaries(
        st.sampled_from(["seconds", "timeout", "x"]),
        st.one_of(st.floats(-1, 0.05).map(num), scalars),
        max_size=2,
    ).map(_struct),
)


def durations() -> st.SearchStrategy[duration_pb2.Duration]:
    """Sane, negative, huge and ill-formed (nanos out of range or of the other sign) durations."""
    return st.one_of(
        st.builds(duration_pb2.Duration, seconds=st.integers(0, 120), nanos=st.integers(0, 999_999_999)),
        st.builds(duration_pb2.Duration, seconds=INT64, nanos=INT32),
    )


def rfc3339() -> st.SearchStrategy[str]:
    """Valid times from year 1 to 9999 in odd offsets, times at the edges, and garbage."""
    offsets = st.sampled_from(["Z", "z", "+00:00", "+14:00", "-12:00", "+05:45", "-00:30"])
    valid = st.builds(
        lambda d, off: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + off,
        st.datetimes(),
        offsets,
    )
    edges = st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2030-02-30T00:00:00Z",
            "2030-01-01T24:00:00Z",
            "2030-01-01 09:00:00+02:00",
            "2030-01-01T09:00:00",
            "2030-01-01",
            "  ",
        ]
    )
    return st.one_of(st.just(""), valid, edges, any_text)


CRON_FIELD = st.one_of(
    st.sampled_from(
        ["*", "*/5", "1-5", "1,2,3", "0", "59", "60", "-1", "L", "1W", "2#3", "?", "MON", "JAN", "*/0"]
    ),
    st.integers(-5, 100).map(str),
    st.text(max_size=4),
)
crons = st.one_of(
    st.sampled_from(
        [
            "@daily",
            "@hourly",
            "@yearly",
            "@reboot",
            "@every 1s",
            "every 100ms",
            "every 99ms",
            "every 0s",
            "every 10000000000000000000d",
            "*/10 * * * * *",
            "0 0 29 2 *",
            "0 0 30 2 *",
            "59 23 31 12 *",
            "0 0 1 1 * 2030",
            "0 0 1 1 * * *",
            "   ",
        ]
    ),
    st.lists(CRON_FIELD, min_size=1, max_size=7).map(" ".join),
    any_text,
)
ZONES = sorted(zoneinfo.available_timezones())
timezones = st.one_of(
    st.sampled_from(ZONES),
    st.sampled_from(
        ["", "UTC", "America", "Etc", "../etc/passwd", "Etc/../UTC", "/UTC", "posixrules", "utc"]
    ),
    any_text,
)
job_types = st.one_of(st.sampled_from(["echo", "echo", "sleep", "shell", "file_write", ""]), any_text)
keys = st.one_of(st.sampled_from(["", "", "key-1", "key-2"]), any_text)
tags = st.lists(st.one_of(st.sampled_from(["gpu", "ssd", ""]), any_text), max_size=20)

# What a careful client sends: each request takes most of its fields from these, and a few
# ("wild" ones) from the strategies above, so that the fuzz reaches past the first check.
SLOW_CRONS = ["@daily", "@hourly", "*/10 * * * * *", "every 5s", "0 9 * * 1-5", "0 0 29 2 *", "*/3 * * * * *"]
near_times = st.builds(
    lambda d, off: d.strftime("%Y-%m-%dT%H:%M:%S") + off,
    st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)),
    st.sampled_from(["Z", "+02:00", "-07:00"]),
)
short_durations = st.builds(
    duration_pb2.Duration, seconds=st.integers(0, 60), nanos=st.integers(0, 999_999_999)
)
finite_values = st.recursive(
    st.one_of(
        st.none().map(lambda _: struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)),
        st.booleans().map(lambda b: struct_pb2.Value(bool_value=b)),
        st.floats(allow_nan=False, allow_infinity=False).map(num),
        st.text(max_size=20).map(lambda t: struct_pb2.Value(string_value=t)),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(_list),
        st.dictionaries(st.text(max_size=8), inner, max_size=3).map(_struct),
    ),
    max_leaves=8,
)
backoffs = st.builds(
    ordo_pb2.Backoff,
    initial=short_durations,
    max=short_durations,
    multiplier=st.floats(1, 100),
    jitter=st.floats(0, 1),
)
wild_backoffs = st.builds(
    ordo_pb2.Backoff, initial=durations(), max=durations(), multiplier=st.floats(), jitter=st.floats()
)
SUBMIT_FIELDS: Fields = {
    "run_at": (near_times, rfc3339()),
    "delay": (short_durations, durations()),
    "name": (st.text(max_size=30), any_text),
    "idempotency_key": (st.sampled_from(["", "key-1", "key-2", "key-3"]), keys),
    "cron": (st.sampled_from(SLOW_CRONS), crons),
    "timezone": (st.sampled_from(ZONES), timezones),
    "start_at": (near_times, rfc3339()),
    "end_at": (near_times, rfc3339()),
    "max_runs": (st.integers(0, 5), INT32),
    "jitter": (short_durations, durations()),
    "max_attempts": (st.integers(0, 5), st.one_of(st.integers(-2, 102), INT32)),
    "backoff": (backoffs, wild_backoffs),
    "timeout": (short_durations, durations()),
    "priority": (st.integers(-1000, 1000), st.one_of(st.integers(-1001, 1001), INT32)),
    "catch_up": (st.integers(0, 3), INT32),
    "catch_up_window": (short_durations, durations()),
    "overlap": (st.integers(0, 4), INT32),
    "tags": (st.lists(st.sampled_from(["gpu", "ssd", "handler:echo"]), max_size=3), tags),
    "long_running": (st.booleans(), st.booleans()),
}


def fill(draw: Callable[[st.SearchStrategy[Any]], Any], msg: M, fields: Fields) -> M:
    """Set some of ``fields`` on ``msg``: most from their careful strategy, up to two from their wild one."""
    present = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=5))
    wild = draw(st.sets(st.sampled_from(present), max_size=2)) if present else set()
    for name in present:
        value = draw(fields[name][1 if name in wild else 0])
        if isinstance(value, Message):
            getattr(msg, name).CopyFrom(value)
        elif isinstance(value, list):
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


@st.composite
def submit_requests(draw: st.DrawFn) -> ordo_pb2.SubmitJobRequest:
    """A SubmitJobRequest: a type and payload, and some other fields, a few of them wild."""
    wild = draw(st.sets(st.sampled_from(["type", "payload"]), max_size=1))
    req = ordo_pb2.SubmitJobRequest(
        type=draw(job_types if "type" in wild else st.sampled_from(["echo", "echo", "sleep"]))
    )
    if "payload" in wild:
        req.payload.CopyFrom(draw(values))
    elif req.type == "sleep":
        req.payload.CopyFrom(draw(sleep_payloads))
    elif draw(st.booleans()):
        req.payload.CopyFrom(draw(finite_values))
    fill(draw, req, SUBMIT_FIELDS)
    return req


@st.composite
def job_ids(draw: st.DrawFn, node: Node) -> str:
    """Ids of real jobs, fresh UUIDs in any spelling, and text that is no UUID at all."""
    known = node.known_ids()
    real = st.sampled_from(known) if known else st.just(str(uuid.uuid4()))
    spelled = st.builds(
        lambda u, f: f(u),
        st.uuids(),
        st.sampled_from(
            [str, lambda u: str(u).upper(), lambda u: u.hex, lambda u: "{" + str(u) + "}", lambda u: u.urn]
        ),
    )
    chosen: str = draw(real if draw(st.integers(0, 3)) else st.one_of(spelled, st.just(""), any_text))
    return chosen


def page_tokens() -> st.SearchStrategy[str]:
    """Tokens in the server's format with wild numbers, other base64, and text."""
    ours = st.builds(
        lambda n, s: base64.urlsafe_b64encode(f"{n}:{s}".encode()).decode(),
        st.one_of(INT64, st.integers(-(10**30), 10**30)),
        st.text(max_size=40),
    )
    other = st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())
    return st.one_of(st.just(""), ours, other, any_text)


# --- the tests -------------------------------------------------------------------------------------------


def submitted(node: Node, req: ordo_pb2.SubmitJobRequest, job_id: str) -> None:
    """An acknowledged job reads back as submitted on the node that committed it."""
    job = node.call("GetJob", ordo_pb2.GetJobRequest(job_id=job_id))
    assert job is not None, f"acknowledged job {job_id} is not readable"
    assert (job.job_id, job.type, job.name, job.idempotency_key) == (
        job_id,
        req.type,
        req.name,
        req.idempotency_key,
    )
    if job_id in node.acked:
        return  # an idempotent repeat answers the first job
    node.acked[job_id] = req
    # The node's load stays bounded: a few slow recurring jobs keep firing, the others are cancelled.
    if req.cron:
        if req.cron in SLOW_CRONS and node.live_crons < 4:
            node.live_crons += 1
        else:
            node.call("CancelJob", ordo_pb2.CancelJobRequest(job_id=job_id))


@fuzz
@given(req=submit_requests())
def test_submit_job(node: Node, req: ordo_pb2.SubmitJobRequest) -> None:
    reply = node.call("SubmitJob", req)
    if reply is not None:
        submitted(node, req, reply.job_id)


@fuzz
@given(
    reqs=st.one_of(
        st.lists(submit_requests(), max_size=5),
        st.integers(10_001, 10_003).map(lambda n: [ordo_pb2.SubmitJobRequest(type="echo")] * n),
    )
)
def test_submit_jobs(node: Node, reqs: list[ordo_pb2.SubmitJobRequest]) -> None:
    reply = node.call("SubmitJobs", ordo_pb2.SubmitJobsRequest(jobs=reqs))
    if reply is not None:
        assert len(reply.job_ids) == len(reqs)
        for req, job_id in zip(reqs, reply.job_ids, strict=True):
            submitted(node, req, job_id)


@st.composite
def occurrence_requests(draw: st.DrawFn, node: Node) -> ordo_pb2.ListOccurrencesRequest:
    """A ListOccurrencesRequest of a job, some of its fields set, a few wild."""
    fields: Fields = {
        "from": (near_times, rfc3339()),
        "to": (near_times, rfc3339()),
        "fate": (st.integers(0, 6), INT32),
        "page_size": (st.integers(0, 20), st.one_of(st.integers(-1, 1001), INT32)),
        "page_token": (st.just(""), page_tokens()),
    }
    return fill(draw, ordo_pb2.ListOccurrencesRequest(job_id=draw(job_ids(node))), fields)


@fuzz
@given(data=st.data(), consistent=st.booleans())
def test_reads_of_one_job(node: Node, data: st.DataObject, consistent: bool) -> None:
    job_id = data.draw(job_ids(node))
    node.call("GetJob", ordo_pb2.GetJobRequest(job_id=job_id, consistent=consistent))
    node.call("GetJobHistory", ordo_pb2.GetJobHistoryRequest(job_id=job_id, consistent=consistent))
    occurrences = data.draw(occurrence_requests(node))
    reply = node.call("ListOccurrences", occurrences)
    if reply is not None:
        nominal = [o.nominal_time.ToMicroseconds() for o in reply.occurrences]
        assert nominal == sorted(set(nominal), reverse=True), "occurrences come newest first, once each"
    at = data.draw(st.one_of(near_times, rfc3339()))
    node.call("ExplainOccurrence", ordo_pb2.ExplainOccurrenceRequest(job_id=job_id, time=at))


@fuzz
@given(
    data=st.data(),
    note=st.one_of(st.just(""), any_text),
    which=st.sampled_from(["cancel", "retry", "pause", "resume"]),
)
def test_changes_to_one_job(node: Node, data: st.DataObject, note: str, which: str) -> None:
    job_id = data.draw(job_ids(node))
    if (
        which == "cancel"
        and job_id in node.acked
        and node.acked[job_id].name in ("every-2s", "paused", "fails")
    ):
        return  # the seeded jobs stay for the pause, resume and retry examples
    match which:
        case "cancel":
            node.call("CancelJob", ordo_pb2.CancelJobRequest(job_id=job_id))
        case "retry":
            node.call("RetryJob", ordo_pb2.RetryJobRequest(job_id=job_id))
        case "pause":
            node.call("PauseJob", ordo_pb2.PauseJobRequest(job_id=job_id, note=note))
        case "resume":
            node.call("ResumeJob", ordo_pb2.ResumeJobRequest(job_id=job_id, note=note))


LIST_FIELDS: Fields = {
    "state": (st.integers(0, 10), INT32),
    "page_size": (st.integers(0, 20), st.one_of(st.integers(-1, 1001), INT32)),
    "page_token": (st.just(""), page_tokens()),
    "type": (st.sampled_from(["echo", "sleep", "nope"]), job_types),
    "consistent": (st.booleans(), st.booleans()),
}


@fuzz
@given(data=st.data())
def test_list_jobs(node: Node, data: st.DataObject) -> None:
    req = ordo_pb2.ListJobsRequest()
    fill(data.draw, req, LIST_FIELDS)
    reply = node.call("ListJobs", req)
    if reply is not None:
        assert len(reply.jobs) <= (req.page_size or 100)
        assert all(not req.type or j.type == req.type for j in reply.jobs)
        assert all(not req.state or j.state == req.state for j in reply.jobs)


PREVIEW_FIELDS: Fields = {
    "timezone": (st.sampled_from(ZONES), timezones),
    "start_at": (near_times, rfc3339()),
    "end_at": (near_times, rfc3339()),
    "max_runs": (st.integers(0, 5), INT32),
    "jitter": (short_durations, durations()),
    "count": (st.integers(0, 50), st.one_of(st.integers(-1, 1001), INT32)),
    "after": (near_times, rfc3339()),
}


@fuzz
@given(data=st.data(), careful=st.integers(0, 3))
def test_preview_schedule(node: Node, data: st.DataObject, careful: int) -> None:
    cron = data.draw(st.sampled_from([*SLOW_CRONS, "every 100ms", "0 0 31 * *"]) if careful else crons)
    req = ordo_pb2.PreviewScheduleRequest(cron=cron)
    fill(data.draw, req, PREVIEW_FIELDS)
    reply = node.call("PreviewSchedule", req)
    if reply is not None:
        assert len(reply.times) <= (req.count or 10)
        nominal = [t.nominal_time.ToMicroseconds() for t in reply.times]
        assert nominal == sorted(set(nominal)), "fire times must strictly increase"
        assert all(t.fire_time.ToMicroseconds() >= t.nominal_time.ToMicroseconds() for t in reply.times)


@fuzz
@given(data=st.data(), after_seq=st.one_of(st.integers(0, 50), INT64))
def test_watch_jobs(node: Node, data: st.DataObject, after_seq: int) -> None:
    job_id = data.draw(st.one_of(st.just(""), job_ids(node)))
    stream = node.jobs.WatchJobs(
        ordo_pb2.WatchJobsRequest(job_id=job_id, after_seq=after_seq), timeout=WATCH_TIMEOUT
    )
    try:
        for event in stream:
            assert event.seq > max(after_seq, 0)
            assert not job_id or event.job_id == job_id.lower()
    except grpc.RpcError as e:
        # The client's own deadline ends a watch that is still waiting for events.
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            check_status(e, "WatchJobs", job_id)
    assert node.proc.alive


@st.composite
def add_node_requests(draw: st.DrawFn) -> ordo_pb2.AddNodeRequest:
    """AddNode requests that a correct server refuses: never one that would add a real member.

    A valid AddNode to a single-node cluster adds a member that never starts,
    and the cluster loses its majority: that is the operator's decision, not a
    malformed request, so the fuzz never sends one.
    """
    address = st.one_of(
        st.sampled_from(["127.0.0.1:1", "[::1]:70000", "host:0", ":80", "host:", "a b:80", "h\n:1", "x:1\n"]),
        any_text,
    )
    node_id = st.one_of(st.sampled_from(["", "node1", "node1\n", "-x", "a" * 64, "é"]), any_text)
    req = ordo_pb2.AddNodeRequest(
        node_id=draw(node_id), grpc_address=draw(address), raft_address=draw(address)
    )
    valid_id = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", req.node_id) is not None
    valid = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")
    if (
        valid_id
        and req.node_id != "node1"
        and valid.fullmatch(req.grpc_address)
        and valid.fullmatch(req.raft_address)
    ):
        req.node_id = "node1"  # an existing member: ALREADY_EXISTS
    return req


@fuzz
@given(add=add_node_requests(), remove=st.one_of(st.sampled_from(["node1", "", "node2"]), any_text))
def test_cluster_service(node: Node, add: ordo_pb2.AddNodeRequest, remove: str) -> None:
    status = node.call("GetClusterStatus", ordo_pb2.GetClusterStatusRequest())
    assert status is not None and status.leader_id == node.proc.id
    node.call("AddNode", add)
    node.call("RemoveNode", ordo_pb2.RemoveNodeRequest(node_id=remove))
    status = node.call("GetClusterStatus", ordo_pb2.GetClusterStatusRequest())
    assert status is not None and [m.node_id for m in status.nodes] == [node.proc.id]


# --- bytes that are no protobuf message, or not the one expected ------------------------------------------

METHODS = [
    (f"/{service.full_name}/{m.name}", m.server_streaming)
    for service in (JOB_SERVICE, CLUSTER_SERVICE)
    for m in service.methods
    if m.name not in ("AddNode", "RemoveNode")  # decodable bytes may name a real member or address
]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, body: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def deep_submit(depth: int) -> bytes:
    """A SubmitJobRequest whose payload nests ``depth`` lists: beyond protobuf's own limit when > 50."""
    value = _field(3, b"x")  # Value.string_value
    for _ in range(depth):
        value = _field(6, _field(1, value))  # Value.list_value.values[0]
    return _field(1, b"echo") + _field(2, value)


def mutated(message: bytes, flips: list[tuple[int, int]]) -> bytes:
    """``message`` with some bytes replaced."""
    out = bytearray(message)
    for at, byte in flips:
        if out:
            out[at % len(out)] = byte
    return bytes(out)


SAMPLE = ordo_pb2.SubmitJobRequest(
    type="echo",
    name="n",
    cron="@daily",
    timezone="UTC",
    tags=["a"],
    payload=struct_pb2.Value(string_value="p"),
).SerializeToString()
garbage = st.one_of(
    st.binary(max_size=200),
    st.builds(
        mutated, st.just(SAMPLE), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4)
    ),
    st.sampled_from([b"\xff", b"\x0a\x05\xff\xfe\xfd\xfc\xfb", b"\x0a\xff\xff\xff\xff\x0f", b"\x08"]),
    st.integers(40, 300).map(deep_submit),
)


def send_raw(node: Node, path: str, streaming: bool, body: bytes) -> None:
    """``body`` as the request of ``path``: a client-error status or a decodable request's answer."""
    call = (node.channel.unary_stream if streaming else node.channel.unary_unary)(path)
    try:
        if streaming:
            for _ in call(body, timeout=WATCH_TIMEOUT):
                pass
        else:
            call(body, timeout=CALL_TIMEOUT)
    except grpc.RpcError as e:
        if not (streaming and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED):
            check_status(e, path, body)
    assert node.proc.alive


@fuzz
@given(method=st.sampled_from(METHODS), body=garbage)
def test_undecodable_bytes(node: Node, method: tuple[str, bool], body: bytes) -> None:
    send_raw(node, *method, body)


@fuzz
@given(method=st.sampled_from(METHODS), extra=st.binary(max_size=40))
def test_unknown_fields_are_ignored(node: Node, method: tuple[str, bool], extra: bytes) -> None:
    # A field number no message of ordo.v1 uses, holding arbitrary bytes: decodable, and ignored.
    send_raw(node, *method, _field(999, extra))


@fuzz
@given(service=st.one_of(st.sampled_from(["", JOB_SERVICE.full_name, "ordo.v1.Nope"]), any_text))
def test_health_check(node: Node, service: str) -> None:
    node.call(
        "Check", health_pb2.HealthCheckRequest(service=service), stub=health_pb2_grpc.HealthStub(node.channel)
    )


# --- what the fuzz and the audit found, kept as plain examples -------------------------------------------

INVALID = grpc.StatusCode.INVALID_ARGUMENT
OK = grpc.StatusCode.OK
SEEDED = "<seeded>:"  # a job id "<seeded>:name" stands for the seeded job of that name
EVERY_2S = SEEDED + "every-2s"
REGRESSIONS: list[tuple[str, Message, grpc.StatusCode]] = [
    ("SubmitJob", ordo_pb2.SubmitJobRequest(type="echo", cron="@daily", timezone="America"), INVALID),
    ("SubmitJob", ordo_pb2.SubmitJobRequest(type="echo", cron="@daily", timezone="x" * 5000), INVALID),
    ("SubmitJob", ordo_pb2.SubmitJobRequest(type="echo", cron="x" * 20_000), INVALID),
    ("SubmitJob", ordo_pb2.SubmitJobRequest(type="x" * 100_000), INVALID),
    ("SubmitJob", ordo_pb2.SubmitJobRequest(type="echo", payload=num(math.nan)), INVALID),
    (
        "SubmitJob",
        ordo_pb2.SubmitJobRequest(
            type="echo", cron="@yearly", start_at="9999-12-31T00:00:00+14:00", timezone="Pacific/Kiritimati"
        ),
        INVALID,
    ),
    (
        "ListJobs",
        ordo_pb2.ListJobsRequest(page_token=base64.urlsafe_b64encode(b"9" * 30 + b":x").decode()),
        INVALID,
    ),
    ("PreviewSchedule", ordo_pb2.PreviewScheduleRequest(cron="@daily", timezone="y" * 5000), INVALID),
    (
        "PreviewSchedule",
        ordo_pb2.PreviewScheduleRequest(cron="* * * * *", after="0001-01-01T00:00:00+01:00"),
        INVALID,
    ),
    (
        "PreviewSchedule",
        ordo_pb2.PreviewScheduleRequest(cron="* * * * * *", count=1000, after="9999-12-31T23:59:00Z"),
        OK,
    ),
    (
        "ExplainOccurrence",
        ordo_pb2.ExplainOccurrenceRequest(job_id=EVERY_2S, time="9999-12-31T23:59:59Z"),
        OK,
    ),
    (
        "ExplainOccurrence",
        ordo_pb2.ExplainOccurrenceRequest(job_id=EVERY_2S, time="0001-01-01T00:00:00+14:00"),
        INVALID,
    ),
    (
        "ExplainOccurrence",
        ordo_pb2.ExplainOccurrenceRequest(job_id=SEEDED + "interval", time="9999-12-31T23:59:59Z"),
        OK,
    ),
    ("PreviewSchedule", ordo_pb2.PreviewScheduleRequest(cron="every 10000000000000000000d"), OK),
    ("SubmitJob", ordo_pb2.SubmitJobRequest(type="echo", cron="every 10000000000000000000d"), INVALID),
    (
        "SubmitJob",
        ordo_pb2.SubmitJobRequest(
            type="sleep",
            payload=struct_pb2.Value(struct_value=struct_pb2.Struct(fields={"seconds": num(math.inf)})),
        ),
        INVALID,
    ),
    (
        "AddNode",
        ordo_pb2.AddNodeRequest(node_id="node1\n", grpc_address="127.0.0.1:1", raft_address="127.0.0.1:2"),
        INVALID,
    ),
    ("AddNode", ordo_pb2.AddNodeRequest(node_id="n2", grpc_address="h:\u00b2", raft_address="h:3"), INVALID),
]


@pytest.mark.parametrize(
    ("method", "request_", "code"), REGRESSIONS, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(REGRESSIONS)]
)
def test_requests_that_once_went_wrong(
    node: Node, method: str, request_: Message, code: grpc.StatusCode
) -> None:
    # Given: a request that answered INTERNAL, an unreadable status, or (AddNode) broke the cluster
    name = str(getattr(request_, "job_id", ""))
    if name.startswith(SEEDED):
        sent = type(request_)()
        sent.CopyFrom(request_)
        sent.job_id = seeded(node, name.removeprefix(SEEDED))  # type: ignore[attr-defined]
        request_ = sent
    stub = node.jobs if hasattr(node.jobs, method) else node.members

    # When: it is sent
    try:
        getattr(stub, method)(request_, timeout=CALL_TIMEOUT)
        got, details = OK, ""
    except grpc.RpcError as e:
        got, details = e.code(), e.details() or ""

    # Then: the answer is the expected one, with a message that names the field
    assert got == code, details
    assert got == OK or FIELD.match(details), details
    status = node.members.GetClusterStatus(ordo_pb2.GetClusterStatusRequest(), timeout=CALL_TIMEOUT)
    assert [m.node_id for m in status.nodes] == [node.proc.id]


def test_pages_of_large_jobs_reach_a_client_with_default_limits(node: Node) -> None:
    # Given: five jobs with payloads near the default 1 MiB limit (due tomorrow, so none runs)
    big = struct_pb2.Value(string_value="x" * (1024 * 1024 - 100))
    for _ in range(5):
        req = ordo_pb2.SubmitJobRequest(type="echo", payload=big, delay=duration_pb2.Duration(seconds=86400))
        node.acked[node.jobs.SubmitJob(req, timeout=CALL_TIMEOUT).job_id] = req

    # When: a client with gRPC's default 4 MiB receive limit lists every job, 1000 a page
    seen: list[str] = []
    with grpc.insecure_channel(node.proc.address) as channel:
        stub = ordo_pb2_grpc.JobServiceStub(channel)
        token = ""
        while True:
            reply = stub.ListJobs(
                ordo_pb2.ListJobsRequest(page_size=1000, page_token=token), timeout=CALL_TIMEOUT
            )
            seen += [j.job_id for j in reply.jobs]
            token = reply.next_page_token
            if not token:
                break

    # Then: every page arrived, and together they hold every job once
    assert len(seen) == len(set(seen))
    assert set(node.acked) <= set(seen)


def test_a_batch_whose_payloads_pass_the_batch_limit_is_refused(node: Node) -> None:
    # Given: 17 jobs of almost 1 MiB each: every payload within its limit, together over 16 MiB
    big = struct_pb2.Value(string_value="x" * (1024 * 1024 - 100))
    batch = ordo_pb2.SubmitJobsRequest(jobs=[ordo_pb2.SubmitJobRequest(type="echo", payload=big)] * 17)
    before = len(all_jobs(node))

    # When: they are submitted as one batch
    with pytest.raises(grpc.RpcError) as info:
        node.jobs.SubmitJobs(batch, timeout=CALL_TIMEOUT)

    # Then: the batch is refused as a whole, naming the field, and nothing was created
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith("jobs: the payloads add up to")
    assert len(all_jobs(node)) == before


# --- afterwards: one consistent state ----------------------------------------------------------------------


def all_jobs(node: Node) -> list[ordo_pb2.Job]:
    """Every job, paging with the smallest and an odd page size, checking the pages agree."""
    pages: dict[int, list[ordo_pb2.Job]] = {}
    for size in (1, 7):
        jobs: list[ordo_pb2.Job] = []
        token = ""
        while True:
            reply = node.jobs.ListJobs(
                ordo_pb2.ListJobsRequest(page_size=size, page_token=token, consistent=True),
                timeout=CALL_TIMEOUT,
            )
            assert len(reply.jobs) <= size
            jobs.extend(reply.jobs)
            token = reply.next_page_token
            if not token:
                break
            assert len(jobs) < 100_000, "paging does not end"
        pages[size] = jobs
    ids = [j.job_id for j in pages[1]]
    assert len(ids) == len(set(ids)), "a job was listed twice"
    assert ids == [j.job_id for j in pages[7]]
    return pages[1]


def all_occurrences(node: Node, job_id: str) -> list[int]:
    """The nominal times of a job's occurrences, paged 3 at a time: newest first, each once."""
    nominal: list[int] = []
    token = ""
    while True:
        req = ordo_pb2.ListOccurrencesRequest(job_id=job_id, page_size=3, page_token=token)
        reply = node.jobs.ListOccurrences(req, timeout=CALL_TIMEOUT)
        assert len(reply.occurrences) <= 3
        nominal += [o.nominal_time.ToMicroseconds() for o in reply.occurrences]
        token = reply.next_page_token
        if not token:
            break
    assert nominal == sorted(set(nominal), reverse=True)
    return nominal


def test_state_is_consistent_afterwards(node: Node) -> None:
    # Given: the node after every fuzz test of this module (or just the seeded jobs, run alone)
    wait_ready(node)

    # When: every job is listed and read one by one
    listed = all_jobs(node)

    # Then: every acknowledged job is listed, and each one reads back as listed
    ids = {j.job_id for j in listed}
    assert set(node.acked) <= ids
    newest_first = [(j.created_at.ToMicroseconds(), j.job_id) for j in listed]
    assert newest_first == sorted(newest_first, reverse=True)
    for summary in listed:
        job = node.jobs.GetJob(ordo_pb2.GetJobRequest(job_id=summary.job_id), timeout=CALL_TIMEOUT)
        assert (job.type, job.name, job.idempotency_key, job.created_at) == (
            summary.type,
            summary.name,
            summary.idempotency_key,
            summary.created_at,
        )
        history = node.jobs.GetJobHistory(
            ordo_pb2.GetJobHistoryRequest(job_id=job.job_id), timeout=CALL_TIMEOUT
        )
        assert history.events and history.events[0].type == ordo_pb2.EVENT_TYPE_SCHEDULED
        seqs = [e.seq for e in history.events]
        assert seqs == sorted(set(seqs))
        if job.cron:
            all_occurrences(node, job.job_id)
    keys = [j.idempotency_key for j in listed if j.idempotency_key]
    assert len(keys) == len(set(keys)), "two jobs share an idempotency key"

    # and once stopped, the database agrees with the API and holds together
    status = node.members.GetClusterStatus(ordo_pb2.GetClusterStatusRequest(), timeout=CALL_TIMEOUT)
    assert status.applied_index >= 1
    assert node.proc.terminate() == 0, "the node did not stop cleanly"
    check_database(node, ids)


def check_database(node: Node, listed: set[str]) -> None:
    """The replicated tables agree with what the API listed, and refer only to existing jobs."""
    dump = node.cluster.database_dump(node.proc)
    db_path: Path = node.proc.data_dir / "state.db"
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        occurrences = db.execute("SELECT job_id, run_id FROM occurrences").fetchall()
    finally:
        db.close()
    jobs = {row[0] for row in dump["jobs"]}
    assert jobs == listed
    assert {row[2] for row in dump["runs"]} <= jobs
    assert {row[1] for row in dump["events"]} <= jobs
    assert {job for job, _ in occurrences} <= jobs
    runs = {row[0] for row in dump["runs"]}
    assert {run for _, run in occurrences if run} <= runs
    triggered = [row[5] for row in dump["events"] if row[2] == "TRIGGERED"]
    assert len(triggered) == len(set(triggered)), "a run was triggered twice"
    states = {row[4] for row in dump["jobs"]}
    assert {f"JOB_STATE_{s}" for s in states} <= set(ordo_pb2.JobState.keys())
