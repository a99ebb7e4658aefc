"""The commands of the Raft log and their encoding.

A command is a frozen dataclass; :func:`encode` turns it into the bytes that
PySyncObj replicates and :func:`decode` turns them back. The encoding is JSON
with a version number and an ``op`` name, so a journal written by this version
stays readable by the next. Every time a command needs is inside it, chosen by
the node that proposes it: the state machine never reads a clock.

Commands that a client's retry may repeat carry a ``request_id``; the state
machine remembers the result of each request and answers a repeat with it.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

# 2: jobs carry options (schedules, policies); triggers carry occurrences.
# 3: a trigger may carry the leader's assignments of the runs it creates
#    (``TriggerJobs.assignments``/``lease_until``): one command instead of two.
# 4: RegisterWorker (op "worker").
# 5: a run update may carry the handler's traceback (RunUpdate.traceback).
# 6: Batch (op "batch"): several commands in one entry.
# 7: TriggerNow (op "trigger_now"); CancelJob, RetryJob and PauseJob may name who asked (``by``).
# 8: BackfillOccurrences (op "backfill").
# 9: a submitted job may have a debounce or singleton key (its options' "debounce"/"singleton");
#    TriggerNow may carry a note.
VERSION = 9
# Each command is written with the version that introduced it, so a node of an
# older version stops at a command it cannot apply (NewerCommand) instead of
# skipping it, while the commands it knows still reach it during an upgrade.
_WRITTEN_AS = {"worker": 4, "batch": 6, "trigger_now": 7, "backfill": 8}


@dataclass(frozen=True)
class JobSpec:
    """One job to schedule, as accepted and validated by the API."""

    job_id: str
    type: str
    payload: str  # JSON text, validated and size-checked by the API
    run_at: int  # microseconds since the epoch: the first fire time
    name: str = ""
    idempotency_key: str = ""
    spec_hash: str = ""
    # Schedule and policies as JSON (see api/validate.py: JobOptions); "" for a plain one-off job.
    options: str = ""
    # Recurring jobs: the nominal time of the first occurrence (run_at is it plus jitter).
    first_nominal: int | None = None


@dataclass(frozen=True)
class SubmitJobs:
    """Schedule jobs. Atomic (SubmitJobs): all are created, or none. Not atomic (concurrent
    SubmitJob calls grouped into one command): each job is created or refused on its own."""

    op: ClassVar[str] = "submit"
    request_id: str
    at: int
    node: str
    jobs: tuple[JobSpec, ...]
    atomic: bool = True


@dataclass(frozen=True)
class Occurrence:
    """One scheduled time of a job and what the leader decided for it.

    ``decision`` is "run" (the state machine still applies the overlap
    policy), "missed" or "paused" (recorded without a run).
    """

    nominal: int
    fire_at: int
    decision: str
    reason: str = ""


@dataclass(frozen=True)
class Trigger:
    """One due job to trigger, guarded by the due time the proposer saw.

    A one-off job has no ``occurrences`` (its one time is ``due_at``). For a
    recurring job the leader lists the occurrences now due and computes the
    next one (``next_nominal``/``next_due``; None when the schedule ended):
    schedule arithmetic needs a time-zone database, so it happens once, on the
    proposer, and never in apply.
    """

    job_id: str
    due_at: int
    occurrences: tuple[Occurrence, ...] = ()
    next_nominal: int | None = None
    next_due: int | None = None


@dataclass(frozen=True)
class TriggerJobs:
    """The leader's timekeeper triggers due jobs: each becomes a pending run.

    ``assignments`` (version 3) give some of the runs this command creates to
    executors at once, as :class:`AssignRuns` would: each is applied only if
    its attempt exists and is still pending once the triggers are applied.
    A one-off job may be triggered ahead of its due time (``at`` < ``due_at``);
    its executor holds the run until then.
    """

    op: ClassVar[str] = "trigger"
    request_id: str
    at: int
    node: str
    triggers: tuple[Trigger, ...]
    assignments: tuple[Assignment, ...] = ()
    lease_until: int = 0


@dataclass(frozen=True)
class Assignment:
    """A pending run attempt given to the executor of ``node_id``."""

    run_id: str
    attempt: int
    node_id: str
    boot_id: str = ""  # the executor process it was given to; a restarted one holds none of its attempts


@dataclass(frozen=True)
class AssignRuns:
    """The leader's dispatcher assigns pending runs to executors."""

    op: ClassVar[str] = "assign"
    request_id: str
    at: int
    node: str
    assignments: tuple[Assignment, ...]
    lease_until: int = 0  # each attempt's lease runs out then unless its executor renews it


@dataclass(frozen=True)
class RunUpdate:
    """What an executor reports about one attempt: started, succeeded or failed."""

    run_id: str
    attempt: int
    kind: str  # "started" | "succeeded" | "failed"
    at: int
    result: str = ""  # JSON text, for outcomes
    error: str = ""
    started_at: int = 0  # for an outcome whose "started" was never sent on its own
    traceback: str = ""  # a failed attempt: the handler's traceback, bounded (version 5)


@dataclass(frozen=True)
class RecordRunUpdates:
    """An executor's reports, batched; each is guarded by the attempt's fencing token."""

    op: ClassVar[str] = "runs"
    request_id: str
    node: str
    updates: tuple[RunUpdate, ...]


@dataclass(frozen=True)
class RunRef:
    """One attempt of a run: its fencing token."""

    run_id: str
    attempt: int


@dataclass(frozen=True)
class RenewLeases:
    """An executor extends the leases of the attempts it holds."""

    op: ClassVar[str] = "renew"
    request_id: str
    node: str
    at: int
    lease_until: int
    runs: tuple[RunRef, ...]


@dataclass(frozen=True)
class ExpireRuns:
    """The leader gives up attempts whose lease ran out or whose executor is unreachable.

    Each given-up attempt becomes LOST and the run gets a new pending attempt.
    With ``check_lease`` an attempt is given up only if its lease ended by
    ``at``, so a renewal that committed first keeps it.
    """

    op: ClassVar[str] = "expire"
    request_id: str
    at: int
    node: str
    runs: tuple[RunRef, ...]
    reason: str
    check_lease: bool = False


@dataclass(frozen=True)
class RetryJob:
    """Run a FAILED or DEAD_LETTER job's last run again, with a fresh attempt budget."""

    op: ClassVar[str] = "retry"
    request_id: str
    at: int
    node: str
    job_id: str
    by: str = ""  # who asked (a token's name), for the job's history (version 7)


@dataclass(frozen=True)
class PauseJob:
    """Pause (``pause=True``) or resume a recurring job, with a note for its history."""

    op: ClassVar[str] = "pause"
    request_id: str
    at: int
    node: str
    job_id: str
    pause: bool
    note: str = ""
    by: str = ""  # who asked (a token's name), for the job's history (version 7)


@dataclass(frozen=True)
class CancelJob:
    """Cancel a job: a scheduled one, a recurring schedule, or its running attempts."""

    op: ClassVar[str] = "cancel"
    request_id: str
    at: int
    node: str
    job_id: str
    by: str = ""  # who asked (a token's name), for the job's history (version 7)


@dataclass(frozen=True)
class TriggerNow:
    """Run a recurring job once now, beside its schedule: one extra occurrence at ``at``.

    The occurrence's fate is decided as a scheduled one's is, by the job's
    overlap policy; its reason says who asked.
    """

    op: ClassVar[str] = "trigger_now"
    request_id: str
    at: int
    node: str
    job_id: str
    by: str = ""
    note: str = ""  # the operator's note, kept in the occurrence's reason (version 9)


@dataclass(frozen=True)
class MarkWaiting:
    """The dispatcher notes why pending attempts wait (no live executor has their tags)."""

    op: ClassVar[str] = "waiting"
    at: int
    node: str
    runs: tuple[RunRef, ...]
    reason: str


@dataclass(frozen=True)
class ChangeMember:
    """Record a member added (``add=True``, with its addresses) or removed, for every node's view."""

    op: ClassVar[str] = "member"
    request_id: str
    at: int
    node: str
    member_id: str
    add: bool
    grpc_address: str = ""
    raft_address: str = ""


@dataclass(frozen=True)
class RegisterWorker:
    """A worker (``ordo-node worker``) connected to the leader, or left (``gone``).

    Registration is replicated so that any new leader knows every worker at
    once. A worker that comes back under the same id with another ``boot_id``
    is a new process: the attempts its old process held are given up (LOST, a
    new attempt each) in the same command. A worker that leaves gives up what
    it still holds.
    """

    op: ClassVar[str] = "worker"
    request_id: str
    at: int
    node: str  # the server that proposed it (the leader the worker is connected to)
    worker_id: str
    boot_id: str
    capacity: int = 0
    tags: tuple[str, ...] = ()
    handlers: tuple[str, ...] = ()
    address: str = ""
    gone: bool = False


@dataclass(frozen=True)
class Prune:
    """History retention: drop the oldest occurrences and runs beyond ``keep_runs`` per job,
    events older than ``events_before``, and request ids more than ``keep_requests`` entries old.

    At most ``limit`` rows of each kind go per command, so that apply stays short.
    """

    op: ClassVar[str] = "prune"
    at: int
    node: str
    keep_runs: int
    events_before: int
    keep_requests: int
    limit: int


@dataclass(frozen=True)
class Batch:
    """Several commands in one Raft entry, each applied as if alone, in order.

    The leader merges its workers' concurrent proposals (outcomes, lease
    renewals) into one: each keeps its own request id, result and refusal, but
    the entry is replicated, journaled and applied in one transaction once. With
    hundreds of workers each reporting a few outcomes at a time, this keeps the
    number of entries per job what it is with a few workers reporting many.
    A batch holds no batch.
    """

    op: ClassVar[str] = "batch"
    node: str
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class Barrier:
    """A no-op: once it is applied, everything committed before it is applied too."""

    op: ClassVar[str] = "barrier"
    node: str


@dataclass(frozen=True)
class BackfillOccurrences:
    """Run past occurrences of a recurring job again, chosen by their stored fates (``reprocess``:
    MISSING, FAILED or ALL; see statemachine/backfill.py).

    The proposer lists the nominal and fire times of the range (schedule arithmetic
    stays out of apply); apply checks each one's fate again and creates a run for
    those still chosen, their occurrences recorded TRIGGERED with reason "backfill".
    Their runs come after live ones (a lower priority), and at most
    ``max_concurrent`` of them run at once (0: no bound).
    """

    op: ClassVar[str] = "backfill"
    request_id: str
    at: int
    node: str
    job_id: str
    reprocess: str
    occurrences: tuple[Occurrence, ...]
    max_concurrent: int = 0


Command = (
    SubmitJobs
    | TriggerJobs
    | AssignRuns
    | RecordRunUpdates
    | RenewLeases
    | ExpireRuns
    | CancelJob
    | RetryJob
    | PauseJob
    | TriggerNow
    | Prune
    | MarkWaiting
    | ChangeMember
    | RegisterWorker
    | Batch
    | Barrier
    | BackfillOccurrences
)
_BY_OP: dict[str, type[Any]] = {
    c.op: c
    for c in (
        SubmitJobs,
        TriggerJobs,
        AssignRuns,
        RecordRunUpdates,
        RenewLeases,
        ExpireRuns,
        CancelJob,
        RetryJob,
        PauseJob,
        TriggerNow,
        Prune,
        MarkWaiting,
        ChangeMember,
        RegisterWorker,
        Batch,
        Barrier,
        BackfillOccurrences,
    )
}
_NESTED: dict[tuple[str, str], type[Any]] = {
    ("submit", "jobs"): JobSpec,
    ("trigger", "triggers"): Trigger,
    ("trigger", "assignments"): Assignment,
    ("assign", "assignments"): Assignment,
    ("runs", "updates"): RunUpdate,
    ("expire", "runs"): RunRef,
    ("renew", "runs"): RunRef,
    ("waiting", "runs"): RunRef,
    ("backfill", "occurrences"): Occurrence,
}


class DecodeError(ValueError):
    """The bytes are not a command this version understands."""


class NewerCommand(DecodeError):
    """A command written by a newer version: applying past it would make this replica diverge."""


def _build(cls: type[Any], item: dict[str, Any]) -> Any:
    """An item (a job, trigger, outcome...) from its JSON object: its fields filled in directly.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    and building thousands of items was the larger part of decoding a batch. An
    object with a name it does not know, or without one it needs, goes through
    ``__init__``, which raises TypeError (a DecodeError for :func:`decode`).
    """
    if not isinstance(item, dict) or not item.keys() <= _NAMES[cls] or not _NEEDED[cls] <= item.keys():
        return cls(**item)
    obj = object.__new__(cls)
    fields_ = obj.__dict__
    fields_.update(_DEFAULTS[cls])
    fields_.update(item)
    if cls is Trigger and "occurrences" in item:
        fields_["occurrences"] = tuple(_build(Occurrence, o) for o in item["occurrences"])
    return obj


# Field names of every command and nested item type, in declaration order, each
# with its default (or _REQUIRED): encoding walks them directly (dataclasses.asdict
# deep-copies every value, and was a third of the cost of proposing a batch of
# triggers). An item's fields that hold their default are left out, and decoding
# gives them their default again: a plain job, trigger or outcome is about half
# the bytes, for every replica to decode and store in its journal.
_REQUIRED = object()
_FIELDS: dict[type[Any], tuple[tuple[str, Any], ...]] = {
    cls: tuple((f.name, _REQUIRED if f.default is MISSING else f.default) for f in fields(cls))
    for cls in (*_BY_OP.values(), *_NESTED.values(), Occurrence)
}
_ITEMS = frozenset((*_NESTED.values(), Occurrence))
_NAMES = {cls: frozenset(name for name, _ in names) for cls, names in _FIELDS.items()}
_NEEDED = {cls: frozenset(name for name, default in _FIELDS[cls] if default is _REQUIRED) for cls in _ITEMS}
_DEFAULTS = {cls: {name: d for name, d in _FIELDS[cls] if d is not _REQUIRED} for cls in _ITEMS}


def _plain(value: Any) -> Any:
    names = _FIELDS.get(type(value))
    if names is not None:
        if type(value) in _ITEMS:
            out = {}
            for name, default in names:
                v = getattr(value, name)
                if v is not default and v != default:
                    out[name] = _plain(v)
            return out
        return {name: _plain(getattr(value, name)) for name, _ in names}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _joins(options: str) -> bool:
    """Whether a job's options (JSON text, as api/submission.py writes it) carry a debounce or singleton
    key (a name or key that merely says "debounce" is a string, not an object)."""
    return '"debounce": {' in options or '"singleton": {' in options


def _version_of(cmd: Command) -> int:
    """The oldest version that understands ``cmd`` (see _WRITTEN_AS)."""
    if isinstance(cmd, RecordRunUpdates) and any(u.traceback for u in cmd.updates):
        return 5
    if isinstance(cmd, Batch):
        return max((_WRITTEN_AS["batch"], *(_version_of(sub) for sub in cmd.commands)))
    if isinstance(cmd, CancelJob | RetryJob | PauseJob) and cmd.by:
        return 7  # an older node would drop ``by`` and write a different history
    if isinstance(cmd, TriggerNow) and cmd.note:
        return 9  # an older node would drop the note and write a different reason
    if isinstance(cmd, SubmitJobs) and any(_joins(spec.options) for spec in cmd.jobs):
        return 9  # an older node would create every job and not merge or skip any
    return _WRITTEN_AS.get(cmd.op, 3)


def _body(cmd: Command) -> dict[str, Any]:
    """The command as a JSON object: its fields, ``op`` and ``v``; a batch's commands each so."""
    if isinstance(cmd, Batch):
        body: dict[str, Any] = {"node": cmd.node, "commands": [_body(sub) for sub in cmd.commands]}
    else:
        body = _plain(cmd)
    body["op"] = cmd.op
    body["v"] = _version_of(cmd)
    return body


def encode(cmd: Command) -> bytes:
    """The command as the bytes that go into the Raft log."""
    return json.dumps(_body(cmd), separators=(",", ":"), ensure_ascii=False).encode()


def decode(blob: bytes) -> Command:
    """The command encoded in ``blob``; :class:`DecodeError` if it is not one."""
    try:
        return _from_body(json.loads(blob))
    except DecodeError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise DecodeError(f"undecodable command: {e!r}") from None


def _from_body(body: Any, *, nested: bool = False) -> Command:
    """The command a JSON object holds (see :func:`_body`)."""
    if not isinstance(body, dict):
        raise DecodeError(f"undecodable command: a JSON {type(body).__name__}, not an object")
    version, op = body.pop("v"), body.pop("op")
    if not isinstance(version, int) or version > VERSION:
        raise NewerCommand(f"command version {version} is newer than this node's ({VERSION}): upgrade it")
    cls = _BY_OP[op]
    if cls is Batch:
        if nested:
            raise DecodeError("undecodable command: a batch inside a batch")
        return Batch(node=body["node"], commands=tuple(_from_body(b, nested=True) for b in body["commands"]))
    names = _NAMES[cls]
    # Lists are tuples in a command (frozen, comparable); nested items are built below.
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in body.items() if k in names}
    for (nested_op, key), item_cls in _NESTED.items():
        if nested_op == op and key in kwargs:
            kwargs[key] = tuple(_build(item_cls, item) for item in kwargs[key])
    cmd: Command = cls(**kwargs)
    return cmd
