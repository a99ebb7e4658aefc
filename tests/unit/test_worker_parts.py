"""Workers, piece by piece: RegisterWorker on a real SQLite store, the worker's config and command
line, its clock readings, the leader's WorkerHub, and what WorkerService.Propose refuses."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from applylog import Log, rows

from ordo_node import commands as c
from ordo_node.api.workers import WorkerService
from ordo_node.cli import build_parser
from ordo_node.cli.worker import settings
from ordo_node.config import Config
from ordo_node.errors import ConfigError, InvalidArgument, Unavailable
from ordo_node.pb import internal_pb2
from ordo_node.statemachine.effects import Effects
from ordo_node.statemachine.store import Store
from ordo_node.worker import config as worker_config
from ordo_node.worker import remote as remote_module
from ordo_node.worker.remote import Remote
from ordo_node.workerhub import Link, WorkerHub

SEC = 1_000_000
T0 = 1_900_000_000 * SEC
LEADER = "node1"


# --- RegisterWorker, applied to a real store ---------------------------------------------------------


def rid() -> str:
    return uuid.uuid4().hex


def jid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def run_of(n: int) -> str:
    return f"{jid(n)}:1"


def register(
    worker: str = "w1", boot: str = "boot-a", *, at: int = T0, gone: bool = False
) -> c.RegisterWorker:
    return c.RegisterWorker(
        request_id=rid(),
        at=at,
        node=LEADER,
        worker_id=worker,
        boot_id=boot,
        capacity=4,
        tags=("gpu",),
        handlers=("echo", "rare"),
        address="ipv4:127.0.0.1:5000",
        gone=gone,
    )


def held(apply: Log, n: int, worker: str, boot: str, *, started: bool) -> None:
    """Job ``n`` submitted, triggered and assigned to ``worker`` (process ``boot``); started if asked."""
    due = T0 + SEC
    spec = c.JobSpec(job_id=jid(n), type="echo", payload="{}", run_at=due, spec_hash="h")
    apply(c.SubmitJobs(request_id=rid(), at=T0, node=LEADER, jobs=(spec,)))
    apply(c.TriggerJobs(request_id=rid(), at=due, node=LEADER, triggers=(c.Trigger(jid(n), due),)))
    assignment = c.Assignment(run_of(n), 1, worker, boot)
    apply(c.AssignRuns(request_id=rid(), at=due, node=LEADER, assignments=(assignment,)))
    if started:
        update = c.RunUpdate(run_of(n), 1, "started", due + SEC)
        apply(c.RecordRunUpdates(request_id=rid(), node=worker, updates=(update,)))


def runs(path: Path, n: int) -> list[tuple[Any, ...]]:
    """(attempt, state, node, error) of job ``n``'s runs."""
    return rows(
        path, "SELECT attempt, state, node_id, error FROM runs WHERE job_id = ? ORDER BY attempt", jid(n)
    )


def test_a_fresh_worker_is_recorded_active(store: Store, apply: Log) -> None:
    seen: list[Effects] = []
    store.listener = seen.append

    result = apply(register())

    assert result == {"worker": "w1", "state": "ACTIVE", "restarted": False, "lost": []}
    assert rows(store.path, "SELECT * FROM workers") == [
        ("w1", "boot-a", 4, '["gpu"]', '["echo", "rare"]', "ipv4:127.0.0.1:5000", LEADER, "ACTIVE", T0, T0)
    ]
    assert [fx.workers_changed for fx in seen] == [True]


def test_the_same_process_registering_again_keeps_its_runs(store: Store, apply: Log) -> None:
    # Given a worker holding an assigned and a running attempt
    apply(register())
    held(apply, 1, "w1", "boot-a", started=False)
    held(apply, 2, "w1", "boot-a", started=True)

    # When it reconnects (a new leader) with the same boot id
    result = apply(register(at=T0 + 10 * SEC))

    # Then nothing is given up, and it keeps its first registration time
    assert result == {"worker": "w1", "state": "ACTIVE", "restarted": False, "lost": []}
    assert runs(store.path, 1) == [(1, "ASSIGNED", "w1", None)]
    assert runs(store.path, 2) == [(1, "RUNNING", "w1", None)]
    assert rows(store.path, "SELECT registered_at, changed_at FROM workers") == [(T0, T0 + 10 * SEC)]


def test_a_new_process_gives_up_the_old_ones_attempts_of_that_worker_only(store: Store, apply: Log) -> None:
    # Given w1 holding an assigned and a running attempt, and w2 a running one
    apply(register())
    apply(register("w2", "boot-x"))
    held(apply, 1, "w1", "boot-a", started=False)
    held(apply, 2, "w1", "boot-a", started=True)
    held(apply, 3, "w2", "boot-x", started=True)
    seen: list[Effects] = []
    store.listener = seen.append

    # When w1 registers with another boot id (restarted)
    at = T0 + 10 * SEC
    result = apply(register(boot="boot-b", at=at))

    # Then its attempts are LOST at once, each with a new pending attempt; w2's run is untouched
    assert result == {
        "worker": "w1",
        "state": "ACTIVE",
        "restarted": True,
        "lost": [[run_of(1), 2], [run_of(2), 2]],
    }
    for n in (1, 2):
        assert runs(store.path, n) == [(1, "LOST", "w1", "worker w1 restarted"), (2, "PENDING", None, None)]
        lost = rows(store.path, "SELECT node_id, at FROM events WHERE job_id = ? AND type = 'LOST'", jid(n))
        assert lost == [("w1", at)]
    assert runs(store.path, 3) == [(1, "RUNNING", "w2", None)]
    # and the old process is told to stop them (if it still runs)
    assert seen[0].cancelled_runs == [(run_of(1), 1, "w1"), (run_of(2), 1, "w1")]
    assert rows(store.path, "SELECT boot_id, registered_at FROM workers WHERE id = 'w1'") == [("boot-b", at)]


def test_a_worker_that_leaves_gives_up_what_it_holds(store: Store, apply: Log) -> None:
    apply(register())
    held(apply, 1, "w1", "boot-a", started=True)

    result = apply(register(at=T0 + 5 * SEC, gone=True))

    assert result == {"worker": "w1", "state": "GONE", "lost": [[run_of(1), 2]]}
    assert rows(store.path, "SELECT state, changed_at FROM workers") == [("GONE", T0 + 5 * SEC)]
    assert runs(store.path, 1) == [(1, "LOST", "w1", "worker w1 left"), (2, "PENDING", None, None)]


def test_leaving_of_an_earlier_process_or_an_unknown_worker_changes_nothing(store: Store, apply: Log) -> None:
    apply(register(boot="boot-b"))
    held(apply, 1, "w1", "boot-b", started=True)

    # An earlier process's goodbye arrives after the new one registered
    assert apply(register(boot="boot-a", gone=True)) == {"worker": "w1", "state": "ACTIVE", "lost": []}
    assert apply(register("w9", gone=True)) == {"worker": "w9", "state": "UNKNOWN", "lost": []}

    assert rows(store.path, "SELECT id, boot_id, state FROM workers") == [("w1", "boot-b", "ACTIVE")]
    assert runs(store.path, 1) == [(1, "RUNNING", "w1", None)]


# --- the worker's config file and command line --------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "worker.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_config_file_is_read_relative_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "w.token").write_text("worker-token-0123456789\n")
    path = write(
        tmp_path,
        '[worker]\nid = "w1"\nservers = "127.0.0.1:7001, 127.0.0.1:7002"\ncapacity = 3\n'
        'tags = ["gpu"]\nhandlers = ["jobs"]\ntoken_file = "w.token"\nlog_level = "debug"\n',
    )

    cfg = worker_config.load(path)

    assert cfg.servers == ("127.0.0.1:7001", "127.0.0.1:7002")
    assert (cfg.worker_id, cfg.capacity, cfg.tags, cfg.handlers) == ("w1", 3, ("gpu",), ("jobs",))
    assert cfg.token == "worker-token-0123456789" and cfg.log_level == "DEBUG"
    assert cfg.base_dir == tmp_path.resolve() and cfg.data_dir == tmp_path.resolve() / "data" / "w1"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[worker]\nservers = ["127.0.0.1:1"]\ncapacty = 2\n', "worker.capacty: unknown key"),
        ('[worker]\nservers = ["127.0.0.1:1"]\ncapacity = "2"\n', "worker.capacity: must be int, not '2'"),
        ('[worker]\nservers = ["127.0.0.1:1"]\ncapacity = true\n', "worker.capacity: must be int"),
        ('[worker]\nservers = ["127.0.0.1:1"]\ncapacity = -1\n', "worker.capacity: must be between 0"),
        ("[worker]\ncapacity = 2\n", "worker.servers: name at least one server"),
        ('[worker]\nservers = ["nowhere"]\n', "worker.servers"),
        ("[worker]\nservers = [1]\n", "worker.servers[0]: must be a string"),
        ('[worker]\nservers = ["127.0.0.1:1"]\nid = "a b"\n', "worker.id: 'a b' is not a valid id"),
        ('[worker]\nservers = ["127.0.0.1:1"]\ntags = [""]\n', "worker.tags: must be a list of non-empty"),
        ('[worker]\nservers = ["127.0.0.1:1"]\ndangerous_handlers = ["rm"]\n', "worker.dangerous_handlers"),
        ('[worker]\nservers = ["127.0.0.1:1"]\nlog_level = "loud"\n', "worker.log_level: must be DEBUG"),
        ('[worker]\nservers = ["127.0.0.1:1"]\ncert_file = "c.pem"\n', "worker.cert_file: mutual TLS needs"),
        (
            '[worker]\nservers = ["127.0.0.1:1"]\ntoken = "x"\ntoken_file = "t"\n',
            "worker.token: give token or",
        ),
        ('[worker]\nservers = ["127.0.0.1:1"]\ntoken_file = "missing"\n', "worker.token_file: cannot read"),
        ('[worker]\nservers = ["127.0.0.1:1"]\n[node]\nid = "x"\n', "node: unknown table"),
        ('[node]\nid = "x"\n', "node: unknown table"),
        ("", "worker: is required"),
        ("[worker\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as err:
        worker_config.load(path)

    assert str(err.value).startswith(f"{path}: ") and says in str(err.value), str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{tmp_path / 'nope.toml'}: cannot read"):
        worker_config.load(tmp_path / "nope.toml")


def parse(*argv: str) -> Any:
    return build_parser().parse_args(["worker", *argv])


def test_flags_only_put_the_current_folder_on_the_handlers_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ORDO_ADDRESS", "ORDO_TOKEN", "ORDO_CA_FILE", "ORDO_CERT_FILE", "ORDO_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)

    cfg = settings(parse("--servers", "127.0.0.1:7001", "--id", "w7", "--handlers", "a, b", "--tags", "x"))

    assert cfg.base_dir == tmp_path and cfg.source == "<command line>"
    assert (cfg.worker_id, cfg.handlers, cfg.tags) == ("w7", ("a", "b"), ("x",))
    assert cfg.data_dir == Path("data") / "w7"


def test_flags_override_the_file_and_the_id_names_the_default_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "conf"
    conf.mkdir()
    path = write(conf, '[worker]\nservers = ["127.0.0.1:7001"]\nhandlers = ["jobs"]\ncapacity = 2\n')

    cfg = settings(parse("--config", str(path), "--id", "w2", "--capacity", "5"))
    assert (cfg.worker_id, cfg.capacity, cfg.handlers) == ("w2", 5, ("jobs",))
    # handler modules beside the file; two workers of one file with --id do not share a data folder
    assert cfg.base_dir == conf.resolve() and cfg.data_dir == conf.resolve() / "data" / "w2"

    # a data_dir the file names stays
    path = write(conf, '[worker]\nservers = ["127.0.0.1:7001"]\ndata_dir = "here"\n')
    assert settings(parse("--config", str(path), "--id", "w3")).data_dir == conf.resolve() / "here"
    # and bad flags are named like the file's keys
    with pytest.raises(ConfigError, match=r"worker\.capacity: must be between 0 and 10000"):
        settings(parse("--config", str(path), "--capacity", "-2"))


# --- Remote: the majority's clock from heartbeat answers -----------------------------------------------


def remote() -> Remote:
    return Remote(worker_config.WorkerConfig(worker_id="w1", servers=("127.0.0.1:1",)))


def test_clock_offset_comes_from_the_fastest_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    r = remote()
    assert r.clock_offset_us == 0
    clock = {"now": 0}
    monkeypatch.setattr(remote_module, "now_us", lambda: clock["now"])

    def answer(sent: int, majority: int, received: int) -> None:
        clock["now"] = received
        r.observe(internal_pb2.ServerTime(majority_now_us=majority, echo_sent_us=sent))

    # a slow round trip (40 ms): this machine is 1 s ahead, read with 20 ms of doubt
    answer(T0, T0 + 20_000 - SEC, T0 + 40_000)
    assert r.clock_offset_us == SEC
    # a faster one (2 ms) wins, whatever came before
    answer(T0 + SEC, T0 + SEC + 1_000 - SEC + 300, T0 + SEC + 2_000)
    assert r.clock_offset_us == SEC - 300
    # answers without a send time, with a round trip beyond MAX_RTT_US, or from the future are ignored
    answer(0, T0, T0 + 1)
    answer(T0 + 2 * SEC, T0, T0 + 2 * SEC + remote_module.MAX_RTT_US + 1)
    answer(T0 + 3 * SEC, T0, T0 + 3 * SEC - 1)
    assert r.clock_offset_us == SEC - 300


# --- Remote: proposals on the stream to the leader --------------------------------------------------


class Stream:
    """The worker's side of its stream, as Remote sees it: what was written, answered by the test."""

    def __init__(self, remote: Remote, writable: bool = True) -> None:
        self.remote = remote
        self.writable = writable
        self.sent: list[internal_pb2.WorkerPropose] = []

    async def send(self, message: internal_pb2.WorkerMessage) -> bool:
        if self.writable:
            self.sent.append(message.propose)
        return self.writable

    async def answer(self, **fields: Any) -> None:
        while not self.sent:
            await asyncio.sleep(0.001)
        self.remote.answered(internal_pb2.ServerProposed(seq=self.sent.pop(0).seq, **fields))


async def test_proposals_go_on_the_stream_and_get_their_own_answers() -> None:
    r = remote()
    stream = Stream(r)
    r.attach(stream.send)
    cmd = outcome("w1")
    # A proposal is written on the stream, in the cluster's encoding, and answered by its seq
    call = asyncio.create_task(r.propose(cmd))
    await stream.answer(result_json='{"stale": []}')
    assert await call == {"stale": []}
    assert (r.on_stream, r.by_call) == (1, 0)
    # A refusal comes back as the error a call's status would have made
    for code, error in (("UNAVAILABLE", Unavailable), ("INVALID_ARGUMENT", InvalidArgument)):
        call = asyncio.create_task(r.propose(cmd))
        await stream.answer(code=code, message="no")
        with pytest.raises(error):
            await call
    # A proposal waiting when the stream ends fails at once, to be retried
    call = asyncio.create_task(r.propose(cmd))
    while not stream.sent:
        await asyncio.sleep(0.001)
    r.detach()
    with pytest.raises(Unavailable, match="the stream ended"):
        await call


async def test_a_proposal_the_stream_cannot_take_goes_by_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    r = remote()
    r.attach(Stream(r, writable=False).send)

    class Stub:
        async def Propose(self, request: internal_pb2.WorkerProposal, **_: Any) -> Any:
            assert c.decode(request.command).node == "w1"
            return internal_pb2.WorkerProposalResult(result_json='{"stale": [["r", 1, "x"]]}')

    monkeypatch.setattr(r, "stub", lambda address: Stub())
    assert await r.propose(outcome("w1")) == {"stale": [["r", 1, "x"]]}
    assert (r.on_stream, r.by_call) == (0, 1)


# --- WorkerHub: assignments and acknowledgements over a worker's stream -------------------------------


def link(worker: str = "w1", **kwargs: Any) -> Link:
    return Link(worker, "boot-a", 2, ("gpu",), ("echo",), "ipv4:127.0.0.1:5", **kwargs)


def assign_request(*run_ids: str) -> internal_pb2.AssignRequest:
    return internal_pb2.AssignRequest(
        leader_id=LEADER,
        term=3,
        assignments=[internal_pb2.Assignment(run_id=r, attempt=1, job_id=r, type="echo") for r in run_ids],
    )


async def test_hub_sends_an_assignment_and_returns_what_the_worker_accepted() -> None:
    hub = WorkerHub(LEADER)
    changes: list[str] = []
    hub.on_change = lambda: changes.append("change")
    w = link()
    hub.attach(w)

    pending = asyncio.create_task(hub.assign("w1", assign_request("r1", "r2")))
    sent = await asyncio.wait_for(w.outbox.get(), 1)
    assert sent.WhichOneof("kind") == "assign"
    assert [a.run_id for a in sent.assign.request.assignments] == ["r1", "r2"]
    # an acknowledgement of another assignment does nothing; its own answers the call
    hub.acknowledged(w, internal_pb2.WorkerAck(seq=sent.assign.seq + 1, accepted=["r9"]))
    hub.acknowledged(w, internal_pb2.WorkerAck(seq=sent.assign.seq, accepted=["r1"]))

    assert await asyncio.wait_for(pending, 1) == ["r1"]
    assert w.acks == {} and changes == ["change"]
    status = hub.status("w1")
    assert status is not None and (status.node_id, status.capacity, status.role) == ("w1", 2, "worker")
    assert list(status.tags) == ["gpu"] and list(status.handlers) == ["echo"]


async def test_hub_assignment_fails_when_the_stream_closes_or_no_ack_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = WorkerHub(LEADER)
    w = link()
    hub.attach(w)

    # the stream closes while an assignment waits for its acknowledgement
    pending = asyncio.create_task(hub.assign("w1", assign_request("r1")))
    await asyncio.wait_for(w.outbox.get(), 1)
    hub.detach(w)
    with pytest.raises(Unavailable, match="w1 disconnected"):
        await asyncio.wait_for(pending, 1)
    assert hub.status("w1") is None and "w1" not in hub.links
    # a worker not connected gets nothing
    with pytest.raises(Unavailable, match="not connected"):
        await hub.assign("w1", assign_request("r2"))

    # a connected worker that never acknowledges
    monkeypatch.setattr("ordo_node.workerhub.ACK_TIMEOUT", 0.05)
    hub.attach(link())
    with pytest.raises(Unavailable, match="did not acknowledge"):
        await hub.assign("w1", assign_request("r3"))
    assert hub.links["w1"].acks == {}


async def test_hub_a_reconnect_closes_the_old_stream_and_leadership_end_redirects_all() -> None:
    hub = WorkerHub(LEADER)
    old, new, other = link(), link(), link("w2")
    hub.attach(old)
    hub.attach(other)
    pending = asyncio.create_task(hub.assign("w1", assign_request("r1")))
    await asyncio.wait_for(old.outbox.get(), 1)

    hub.attach(new)  # the same worker connected again
    assert old.closed.is_set() and hub.links["w1"] is new
    with pytest.raises(Unavailable):
        await asyncio.wait_for(pending, 1)
    hub.detach(old)  # the old stream's end does not drop the new one
    assert hub.links["w1"] is new

    redirect = internal_pb2.ServerRedirect(leader_id="node2", leader_address="127.0.0.1:2")
    hub.close_all(redirect)
    assert hub.links == {} and new.closed.is_set() and other.closed.is_set()
    assert new.outbox.get_nowait().redirect.leader_id == "node2"
    with pytest.raises(Unavailable):
        new.send(internal_pb2.ServerMessage(redirect=redirect))


def test_hub_knows_the_types_of_active_workers_only() -> None:
    hub = WorkerHub(LEADER)
    hub.set_registered([("w1", "ACTIVE", '["rare", "echo"]'), ("w2", "GONE", '["old"]')])
    assert hub.types == {"rare", "echo"} and hub.active == {"w1"}


# --- WorkerService.Propose: a worker's own commands, and nothing else ---------------------------------


class Aborted(Exception):
    pass


class Context:
    """The part of grpc.aio.ServicerContext that @rpc uses."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class Recorder:
    max_command_bytes = 1 << 20

    def __init__(self) -> None:
        self.proposed: list[c.Command] = []

    async def propose(self, cmd: c.Command, timeout: float | None = None) -> Any:
        self.proposed.append(cmd)
        return {"stale": []}


def service(consensus: Recorder, held: set[tuple[str, int]] = frozenset()) -> WorkerService:  # type: ignore[assignment]
    hub = WorkerHub(LEADER)
    hub.set_registered([("w1", "ACTIVE", "[]")])

    async def held_of(node_id: str, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        return {k for k in keys if k in held}

    config = Config(LEADER, "127.0.0.1:1", "127.0.0.1:2", Path("."), "s" * 16)
    queries = SimpleNamespace(held_of=held_of)
    return WorkerService(config, consensus, hub, None, queries)  # type: ignore[arg-type]


async def propose(svc: WorkerService, worker: str, cmd: c.Command) -> Any:
    request = internal_pb2.WorkerProposal(worker_id=worker, command=c.encode(cmd))
    reply = await svc.Propose(request, Context())
    return json.loads(reply.result_json)


def outcome(node: str) -> c.RecordRunUpdates:
    update = c.RunUpdate("r1", 1, "succeeded", T0, result="1")
    return c.RecordRunUpdates(request_id=rid(), node=node, updates=(update,))


async def test_propose_passes_the_workers_own_commands() -> None:
    consensus = Recorder()
    svc = service(consensus, held={("r1", 1)})
    give_back = c.ExpireRuns(request_id=rid(), at=T0, node="w1", runs=(c.RunRef("r1", 1),), reason="draining")

    assert await propose(svc, "w1", outcome("w1")) == {"stale": []}
    await propose(
        svc,
        "w1",
        c.RenewLeases(request_id=rid(), node="w1", at=T0, lease_until=T0 + SEC, runs=(c.RunRef("r1", 1),)),
    )
    await propose(svc, "w1", give_back)

    assert [type(x) for x in consensus.proposed] == [c.RecordRunUpdates, c.RenewLeases, c.ExpireRuns]


@pytest.mark.parametrize(
    ("worker", "cmd", "code", "says"),
    [
        ("w1", outcome("node2"), grpc.StatusCode.PERMISSION_DENIED, "is for 'node2'"),
        (
            "w1",
            c.CancelJob(request_id="x", at=T0, node="w1", job_id=jid(1)),
            grpc.StatusCode.PERMISSION_DENIED,
            "may not propose 'cancel'",
        ),
        ("w1", register("w1"), grpc.StatusCode.PERMISSION_DENIED, "may not propose 'worker'"),
        (
            "w1",
            c.ExpireRuns(request_id="x", at=T0, node="w1", runs=(c.RunRef("r2", 1),), reason="x"),
            grpc.StatusCode.PERMISSION_DENIED,
            "gives back only attempts it holds",
        ),
        (
            "w1",
            c.ExpireRuns(
                request_id="x", at=T0, node="w1", runs=(c.RunRef("r1", 1),), reason="x", check_lease=True
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "gives back only",
        ),
        ("w2", outcome("w2"), grpc.StatusCode.FAILED_PRECONDITION, "no registered worker 'w2'"),
        ("a b", outcome("a b"), grpc.StatusCode.INVALID_ARGUMENT, "workerId"),
    ],
)
async def test_propose_refuses_other_nodes_commands_and_forbidden_ops(
    worker: str, cmd: c.Command, code: grpc.StatusCode, says: str
) -> None:
    consensus = Recorder()
    svc = service(consensus, held={("r1", 1)})

    with pytest.raises(Aborted) as err:
        await propose(svc, worker, cmd)

    assert err.value.args[0] == code and says in err.value.args[1], err.value.args
    assert consensus.proposed == []


async def test_propose_refuses_bytes_that_are_no_command() -> None:
    svc = service(Recorder())
    with pytest.raises(Aborted) as err:
        await svc.Propose(internal_pb2.WorkerProposal(worker_id="w1", command=b"junk"), Context())
    assert err.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT and "command" in err.value.args[1]


class SlowRaft(Recorder):
    """Commits one entry at a time, each when the test opens the gate; a command's result names it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def propose(self, cmd: c.Command, timeout: float | None = None) -> Any:
        self.proposed.append(cmd)
        await self.gate.wait()
        if isinstance(cmd, c.Batch):
            return {"results": [{"request": sub.request_id} for sub in cmd.commands]}  # type: ignore[union-attr]
        return {"request": cmd.request_id}  # type: ignore[union-attr]


async def test_proposals_arriving_together_share_one_entry() -> None:
    # Given a leader whose Raft commits one entry at a time, slowly
    raft = SlowRaft()
    svc = service(raft)  # type: ignore[arg-type]
    svc.hub.set_registered([(w, "ACTIVE", "[]") for w in ("w1", "w2", "w3")])
    cmds = [outcome(w) for w in ("w1", "w2", "w3", "w1")]
    # When three outcomes arrive while a first one is being committed
    calls = [asyncio.create_task(propose(svc, cmds[0].node, cmds[0]))]
    while len(raft.proposed) < 1:
        await asyncio.sleep(0.001)
    calls += [asyncio.create_task(propose(svc, cmd.node, cmd)) for cmd in cmds[1:]]
    while len(svc.batcher._waiting) < 3:
        await asyncio.sleep(0.001)
    raft.gate.set()
    answers = await asyncio.gather(*calls)
    # Then the first went alone and the three that waited went as one batch, in order
    assert len(raft.proposed) == 2
    assert raft.proposed[0] == cmds[0]
    assert raft.proposed[1] == c.Batch(node=LEADER, commands=tuple(cmds[1:]))
    # And each worker got its own command's result
    assert answers == [{"request": cmd.request_id} for cmd in cmds]
    assert (svc.batcher.entries, svc.batcher.merged) == (2, 4)


async def test_a_batch_that_fails_fails_each_of_its_proposals() -> None:
    class Down(Recorder):
        async def propose(self, cmd: c.Command, timeout: float | None = None) -> Any:
            raise Unavailable("no leader")

    svc = service(Down())
    calls = [asyncio.create_task(propose(svc, "w1", outcome("w1"))) for _ in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, Aborted) and r.args[0] == grpc.StatusCode.UNAVAILABLE for r in results)


def test_a_group_stays_under_the_byte_limit() -> None:
    from ordo_node.api.batcher import ProposalBatcher

    batcher = ProposalBatcher("n1", Recorder(), max_bytes=100)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    try:
        futs = [loop.create_future() for _ in range(4)]
        batcher._waiting = [(outcome("w1"), size, f) for size, f in zip((60, 30, 20, 500), futs, strict=True)]
        assert [size for _, size, _ in batcher._next_group()] == [60, 30]
        assert [size for _, size, _ in batcher._next_group()] == [20]
        assert [size for _, size, _ in batcher._next_group()] == [500]  # too big alone: goes alone
    finally:
        loop.close()


async def test_the_leader_answers_stream_proposals_as_it_answers_calls() -> None:
    raft = Recorder()
    svc = service(raft)
    w = link("w1")
    # A worker's own outcome is committed, and answered on its stream with the result
    await svc._propose_on_stream(w, internal_pb2.WorkerPropose(seq=7, command=c.encode(outcome("w1"))))
    answer = w.outbox.get_nowait().proposed
    assert (answer.seq, json.loads(answer.result_json), answer.code) == (7, {"stale": []}, "")
    # Another worker's command, a command a worker may not propose, and bytes that are none are refused
    for seq, blob, code in (
        (8, c.encode(outcome("w2")), "PERMISSION_DENIED"),
        (9, c.encode(c.Barrier(node="w1")), "PERMISSION_DENIED"),
        (10, b"{", "INVALID_ARGUMENT"),
    ):
        await svc._propose_on_stream(w, internal_pb2.WorkerPropose(seq=seq, command=blob))
        answer = w.outbox.get_nowait().proposed
        assert (answer.seq, answer.code, answer.result_json) == (seq, code, "")
    assert len(raft.proposed) == 1
