import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from ordo_node.pb import ordo_pb2 as _ordo_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerList(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[_ordo_pb2.WorkerStatus]
    def __init__(self, workers: _Optional[_Iterable[_Union[_ordo_pb2.WorkerStatus, _Mapping]]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("run_id", "attempt", "job_id", "type", "payload", "name", "idempotency_key", "scheduled_at", "timeout_ms", "long_running", "boot_id", "payload_json")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    LONG_RUNNING_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    job_id: str
    type: str
    payload: _struct_pb2.Value
    name: str
    idempotency_key: str
    scheduled_at: _timestamp_pb2.Timestamp
    timeout_ms: int
    long_running: bool
    boot_id: str
    payload_json: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., job_id: _Optional[str] = ..., type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., name: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., long_running: _Optional[bool] = ..., boot_id: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class AssignRequest(_message.Message):
    __slots__ = ("leader_id", "term", "assignments")
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    leader_id: str
    term: int
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, leader_id: _Optional[str] = ..., term: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class AssignResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecutorStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecutorRun(_message.Message):
    __slots__ = ("run_id", "attempt", "job_id", "type", "started_at", "last_heartbeat", "progress")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    job_id: str
    type: str
    started_at: _timestamp_pb2.Timestamp
    last_heartbeat: _timestamp_pb2.Timestamp
    progress: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., job_id: _Optional[str] = ..., type: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[str] = ...) -> None: ...

class ExecutorStatus(_message.Message):
    __slots__ = ("node_id", "capacity", "tags", "running", "applied_index", "role", "draining", "boot_id", "handlers", "state_hash", "clock_offset_ms", "fault")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    STATE_HASH_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    capacity: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    running: _containers.RepeatedCompositeFieldContainer[ExecutorRun]
    applied_index: int
    role: str
    draining: bool
    boot_id: str
    handlers: _containers.RepeatedScalarFieldContainer[str]
    state_hash: str
    clock_offset_ms: int
    fault: str
    def __init__(self, node_id: _Optional[str] = ..., capacity: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., running: _Optional[_Iterable[_Union[ExecutorRun, _Mapping]]] = ..., applied_index: _Optional[int] = ..., role: _Optional[str] = ..., draining: _Optional[bool] = ..., boot_id: _Optional[str] = ..., handlers: _Optional[_Iterable[str]] = ..., state_hash: _Optional[str] = ..., clock_offset_ms: _Optional[int] = ..., fault: _Optional[str] = ...) -> None: ...

class WorkerHello(_message.Message):
    __slots__ = ("worker_id", "boot_id", "capacity", "tags", "handlers", "version")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    boot_id: str
    capacity: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    handlers: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, worker_id: _Optional[str] = ..., boot_id: _Optional[str] = ..., capacity: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., handlers: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...

class WorkerHeartbeat(_message.Message):
    __slots__ = ("running", "draining", "sent_us")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    SENT_US_FIELD_NUMBER: _ClassVar[int]
    running: _containers.RepeatedCompositeFieldContainer[ExecutorRun]
    draining: bool
    sent_us: int
    def __init__(self, running: _Optional[_Iterable[_Union[ExecutorRun, _Mapping]]] = ..., draining: _Optional[bool] = ..., sent_us: _Optional[int] = ...) -> None: ...

class WorkerAck(_message.Message):
    __slots__ = ("seq", "accepted")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    accepted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, seq: _Optional[int] = ..., accepted: _Optional[_Iterable[str]] = ...) -> None: ...

class WorkerPropose(_message.Message):
    __slots__ = ("seq", "command")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    seq: int
    command: bytes
    def __init__(self, seq: _Optional[int] = ..., command: _Optional[bytes] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "ack", "propose")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    PROPOSE_FIELD_NUMBER: _ClassVar[int]
    hello: WorkerHello
    heartbeat: WorkerHeartbeat
    ack: WorkerAck
    propose: WorkerPropose
    def __init__(self, hello: _Optional[_Union[WorkerHello, _Mapping]] = ..., heartbeat: _Optional[_Union[WorkerHeartbeat, _Mapping]] = ..., ack: _Optional[_Union[WorkerAck, _Mapping]] = ..., propose: _Optional[_Union[WorkerPropose, _Mapping]] = ...) -> None: ...

class ServerWelcome(_message.Message):
    __slots__ = ("leader_id", "term", "lease_timeout_ms")
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEASE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    leader_id: str
    term: int
    lease_timeout_ms: int
    def __init__(self, leader_id: _Optional[str] = ..., term: _Optional[int] = ..., lease_timeout_ms: _Optional[int] = ...) -> None: ...

class ServerRedirect(_message.Message):
    __slots__ = ("leader_id", "leader_address", "reason")
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    leader_id: str
    leader_address: str
    reason: str
    def __init__(self, leader_id: _Optional[str] = ..., leader_address: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ServerAssign(_message.Message):
    __slots__ = ("seq", "request")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    request: AssignRequest
    def __init__(self, seq: _Optional[int] = ..., request: _Optional[_Union[AssignRequest, _Mapping]] = ...) -> None: ...

class ServerTime(_message.Message):
    __slots__ = ("majority_now_us", "echo_sent_us")
    MAJORITY_NOW_US_FIELD_NUMBER: _ClassVar[int]
    ECHO_SENT_US_FIELD_NUMBER: _ClassVar[int]
    majority_now_us: int
    echo_sent_us: int
    def __init__(self, majority_now_us: _Optional[int] = ..., echo_sent_us: _Optional[int] = ...) -> None: ...

class ServerCancel(_message.Message):
    __slots__ = ("run_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ServerProposed(_message.Message):
    __slots__ = ("seq", "result_json", "code", "message")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    result_json: str
    code: str
    message: str
    def __init__(self, seq: _Optional[int] = ..., result_json: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("welcome", "redirect", "assign", "time", "cancel", "proposed")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_FIELD_NUMBER: _ClassVar[int]
    welcome: ServerWelcome
    redirect: ServerRedirect
    assign: ServerAssign
    time: ServerTime
    cancel: ServerCancel
    proposed: ServerProposed
    def __init__(self, welcome: _Optional[_Union[ServerWelcome, _Mapping]] = ..., redirect: _Optional[_Union[ServerRedirect, _Mapping]] = ..., assign: _Optional[_Union[ServerAssign, _Mapping]] = ..., time: _Optional[_Union[ServerTime, _Mapping]] = ..., cancel: _Optional[_Union[ServerCancel, _Mapping]] = ..., proposed: _Optional[_Union[ServerProposed, _Mapping]] = ...) -> None: ...

class WorkerProposal(_message.Message):
    __slots__ = ("worker_id", "command")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    command: bytes
    def __init__(self, worker_id: _Optional[str] = ..., command: _Optional[bytes] = ...) -> None: ...

class WorkerProposalResult(_message.Message):
    __slots__ = ("result_json",)
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    def __init__(self, result_json: _Optional[str] = ...) -> None: ...
