import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_SCHEDULED: _ClassVar[JobState]
    JOB_STATE_WAITING: _ClassVar[JobState]
    JOB_STATE_TRIGGERED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_DEAD_LETTER: _ClassVar[JobState]
    JOB_STATE_PAUSED: _ClassVar[JobState]
    JOB_STATE_RETRYING: _ClassVar[JobState]
    JOB_STATE_SKIPPED: _ClassVar[JobState]

class Fate(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FATE_UNSPECIFIED: _ClassVar[Fate]
    FATE_TRIGGERED: _ClassVar[Fate]
    FATE_SKIPPED_OVERLAP: _ClassVar[Fate]
    FATE_MISSED: _ClassVar[Fate]
    FATE_PAUSED: _ClassVar[Fate]
    FATE_CANCELLED: _ClassVar[Fate]
    FATE_BUFFERED: _ClassVar[Fate]
    FATE_SKIPPED: _ClassVar[Fate]

class AfterCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AFTER_CONDITION_UNSPECIFIED: _ClassVar[AfterCondition]
    AFTER_CONDITION_SUCCEEDED: _ClassVar[AfterCondition]
    AFTER_CONDITION_FINISHED: _ClassVar[AfterCondition]

class CatchUp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATCH_UP_UNSPECIFIED: _ClassVar[CatchUp]
    CATCH_UP_SKIP: _ClassVar[CatchUp]
    CATCH_UP_ONE: _ClassVar[CatchUp]
    CATCH_UP_ALL: _ClassVar[CatchUp]

class Overlap(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERLAP_UNSPECIFIED: _ClassVar[Overlap]
    OVERLAP_ALLOW: _ClassVar[Overlap]
    OVERLAP_SKIP: _ClassVar[Overlap]
    OVERLAP_BUFFER_ONE: _ClassVar[Overlap]
    OVERLAP_CANCEL_OTHER: _ClassVar[Overlap]
    OVERLAP_BUFFER_ALL: _ClassVar[Overlap]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_PENDING: _ClassVar[RunState]
    RUN_STATE_ASSIGNED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
    RUN_STATE_LOST: _ClassVar[RunState]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_SCHEDULED: _ClassVar[EventType]
    EVENT_TYPE_TRIGGERED: _ClassVar[EventType]
    EVENT_TYPE_ASSIGNED: _ClassVar[EventType]
    EVENT_TYPE_STARTED: _ClassVar[EventType]
    EVENT_TYPE_SUCCEEDED: _ClassVar[EventType]
    EVENT_TYPE_FAILED: _ClassVar[EventType]
    EVENT_TYPE_CANCELLED: _ClassVar[EventType]
    EVENT_TYPE_LOST: _ClassVar[EventType]
    EVENT_TYPE_RETRIED: _ClassVar[EventType]
    EVENT_TYPE_DEAD_LETTERED: _ClassVar[EventType]
    EVENT_TYPE_PAUSED: _ClassVar[EventType]
    EVENT_TYPE_RESUMED: _ClassVar[EventType]
    EVENT_TYPE_SKIPPED: _ClassVar[EventType]
    EVENT_TYPE_STALE: _ClassVar[EventType]
    EVENT_TYPE_WAITING: _ClassVar[EventType]
    EVENT_TYPE_JOINED: _ClassVar[EventType]

class DebounceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEBOUNCE_MODE_UNSPECIFIED: _ClassVar[DebounceMode]
    DEBOUNCE_MODE_LEADING: _ClassVar[DebounceMode]
    DEBOUNCE_MODE_TRAILING: _ClassVar[DebounceMode]

class SingletonMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SINGLETON_MODE_UNSPECIFIED: _ClassVar[SingletonMode]
    SINGLETON_MODE_SKIP: _ClassVar[SingletonMode]
    SINGLETON_MODE_REPLACE: _ClassVar[SingletonMode]

class Reprocess(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPROCESS_UNSPECIFIED: _ClassVar[Reprocess]
    REPROCESS_MISSING: _ClassVar[Reprocess]
    REPROCESS_FAILED: _ClassVar[Reprocess]
    REPROCESS_ALL: _ClassVar[Reprocess]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_SCHEDULED: JobState
JOB_STATE_WAITING: JobState
JOB_STATE_TRIGGERED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_DEAD_LETTER: JobState
JOB_STATE_PAUSED: JobState
JOB_STATE_RETRYING: JobState
JOB_STATE_SKIPPED: JobState
FATE_UNSPECIFIED: Fate
FATE_TRIGGERED: Fate
FATE_SKIPPED_OVERLAP: Fate
FATE_MISSED: Fate
FATE_PAUSED: Fate
FATE_CANCELLED: Fate
FATE_BUFFERED: Fate
FATE_SKIPPED: Fate
AFTER_CONDITION_UNSPECIFIED: AfterCondition
AFTER_CONDITION_SUCCEEDED: AfterCondition
AFTER_CONDITION_FINISHED: AfterCondition
CATCH_UP_UNSPECIFIED: CatchUp
CATCH_UP_SKIP: CatchUp
CATCH_UP_ONE: CatchUp
CATCH_UP_ALL: CatchUp
OVERLAP_UNSPECIFIED: Overlap
OVERLAP_ALLOW: Overlap
OVERLAP_SKIP: Overlap
OVERLAP_BUFFER_ONE: Overlap
OVERLAP_CANCEL_OTHER: Overlap
OVERLAP_BUFFER_ALL: Overlap
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_PENDING: RunState
RUN_STATE_ASSIGNED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState
RUN_STATE_LOST: RunState
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_SCHEDULED: EventType
EVENT_TYPE_TRIGGERED: EventType
EVENT_TYPE_ASSIGNED: EventType
EVENT_TYPE_STARTED: EventType
EVENT_TYPE_SUCCEEDED: EventType
EVENT_TYPE_FAILED: EventType
EVENT_TYPE_CANCELLED: EventType
EVENT_TYPE_LOST: EventType
EVENT_TYPE_RETRIED: EventType
EVENT_TYPE_DEAD_LETTERED: EventType
EVENT_TYPE_PAUSED: EventType
EVENT_TYPE_RESUMED: EventType
EVENT_TYPE_SKIPPED: EventType
EVENT_TYPE_STALE: EventType
EVENT_TYPE_WAITING: EventType
EVENT_TYPE_JOINED: EventType
DEBOUNCE_MODE_UNSPECIFIED: DebounceMode
DEBOUNCE_MODE_LEADING: DebounceMode
DEBOUNCE_MODE_TRAILING: DebounceMode
SINGLETON_MODE_UNSPECIFIED: SingletonMode
SINGLETON_MODE_SKIP: SingletonMode
SINGLETON_MODE_REPLACE: SingletonMode
REPROCESS_UNSPECIFIED: Reprocess
REPROCESS_MISSING: Reprocess
REPROCESS_FAILED: Reprocess
REPROCESS_ALL: Reprocess

class AddNodeRequest(_message.Message):
    __slots__ = ("node_id", "grpc_address", "raft_address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    grpc_address: str
    raft_address: str
    def __init__(self, node_id: _Optional[str] = ..., grpc_address: _Optional[str] = ..., raft_address: _Optional[str] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("type", "payload", "run_at", "delay", "name", "idempotency_key", "cron", "timezone", "start_at", "end_at", "max_runs", "jitter", "max_attempts", "backoff", "timeout", "priority", "catch_up", "catch_up_window", "overlap", "tags", "long_running", "payload_json", "after", "after_condition", "concurrency_key", "concurrency_limit", "pause_on_failure", "rate_limit", "debounce", "singleton", "buffer_limit", "more_cron", "exclude_dates", "exclude_cron")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    END_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LONG_RUNNING_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_CONDITION_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DEBOUNCE_FIELD_NUMBER: _ClassVar[int]
    SINGLETON_FIELD_NUMBER: _ClassVar[int]
    BUFFER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MORE_CRON_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DATES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CRON_FIELD_NUMBER: _ClassVar[int]
    type: str
    payload: _struct_pb2.Value
    run_at: str
    delay: _duration_pb2.Duration
    name: str
    idempotency_key: str
    cron: str
    timezone: str
    start_at: str
    end_at: str
    max_runs: int
    jitter: _duration_pb2.Duration
    max_attempts: int
    backoff: Backoff
    timeout: _duration_pb2.Duration
    priority: int
    catch_up: CatchUp
    catch_up_window: _duration_pb2.Duration
    overlap: Overlap
    tags: _containers.RepeatedScalarFieldContainer[str]
    long_running: bool
    payload_json: str
    after: _containers.RepeatedScalarFieldContainer[str]
    after_condition: AfterCondition
    concurrency_key: str
    concurrency_limit: int
    pause_on_failure: int
    rate_limit: RateLimit
    debounce: Debounce
    singleton: Singleton
    buffer_limit: int
    more_cron: _containers.RepeatedScalarFieldContainer[str]
    exclude_dates: _containers.RepeatedScalarFieldContainer[str]
    exclude_cron: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., run_at: _Optional[str] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., name: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., start_at: _Optional[str] = ..., end_at: _Optional[str] = ..., max_runs: _Optional[int] = ..., jitter: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_attempts: _Optional[int] = ..., backoff: _Optional[_Union[Backoff, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., priority: _Optional[int] = ..., catch_up: _Optional[_Union[CatchUp, str]] = ..., catch_up_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., overlap: _Optional[_Union[Overlap, str]] = ..., tags: _Optional[_Iterable[str]] = ..., long_running: _Optional[bool] = ..., payload_json: _Optional[str] = ..., after: _Optional[_Iterable[str]] = ..., after_condition: _Optional[_Union[AfterCondition, str]] = ..., concurrency_key: _Optional[str] = ..., concurrency_limit: _Optional[int] = ..., pause_on_failure: _Optional[int] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ..., debounce: _Optional[_Union[Debounce, _Mapping]] = ..., singleton: _Optional[_Union[Singleton, _Mapping]] = ..., buffer_limit: _Optional[int] = ..., more_cron: _Optional[_Iterable[str]] = ..., exclude_dates: _Optional[_Iterable[str]] = ..., exclude_cron: _Optional[_Iterable[str]] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("key", "per_second", "per_minute", "burst")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    key: str
    per_second: float
    per_minute: float
    burst: int
    def __init__(self, key: _Optional[str] = ..., per_second: _Optional[float] = ..., per_minute: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...

class Debounce(_message.Message):
    __slots__ = ("key", "window", "mode", "max_wait")
    KEY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_FIELD_NUMBER: _ClassVar[int]
    key: str
    window: _duration_pb2.Duration
    mode: DebounceMode
    max_wait: _duration_pb2.Duration
    def __init__(self, key: _Optional[str] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., mode: _Optional[_Union[DebounceMode, str]] = ..., max_wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Singleton(_message.Message):
    __slots__ = ("key", "mode")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    key: str
    mode: SingletonMode
    def __init__(self, key: _Optional[str] = ..., mode: _Optional[_Union[SingletonMode, str]] = ...) -> None: ...

class Backoff(_message.Message):
    __slots__ = ("initial", "multiplier", "max", "jitter")
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    initial: _duration_pb2.Duration
    multiplier: float
    max: _duration_pb2.Duration
    jitter: float
    def __init__(self, initial: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., multiplier: _Optional[float] = ..., max: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., jitter: _Optional[float] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id", "note")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    note: str
    def __init__(self, job_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest]
    def __init__(self, jobs: _Optional[_Iterable[_Union[SubmitJobRequest, _Mapping]]] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("job_ids", "notes")
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_ids: _Optional[_Iterable[str]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "consistent")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    consistent: bool
    def __init__(self, job_id: _Optional[str] = ..., consistent: _Optional[bool] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token", "type", "consistent", "name")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    page_size: int
    page_token: str
    type: str
    consistent: bool
    name: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., type: _Optional[str] = ..., consistent: _Optional[bool] = ..., name: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class PauseJobRequest(_message.Message):
    __slots__ = ("job_id", "note")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    note: str
    def __init__(self, job_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ResumeJobRequest(_message.Message):
    __slots__ = ("job_id", "note")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    note: str
    def __init__(self, job_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class TriggerNowRequest(_message.Message):
    __slots__ = ("job_id", "note")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    note: str
    def __init__(self, job_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ListOccurrencesRequest(_message.Message):
    __slots__ = ("job_id", "to", "fate", "page_size", "page_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    FATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    to: str
    fate: Fate
    page_size: int
    page_token: str
    def __init__(self, job_id: _Optional[str] = ..., to: _Optional[str] = ..., fate: _Optional[_Union[Fate, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., **kwargs) -> None: ...

class ListOccurrencesResponse(_message.Message):
    __slots__ = ("occurrences", "next_page_token")
    OCCURRENCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    occurrences: _containers.RepeatedCompositeFieldContainer[Occurrence]
    next_page_token: str
    def __init__(self, occurrences: _Optional[_Iterable[_Union[Occurrence, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Occurrence(_message.Message):
    __slots__ = ("job_id", "nominal_time", "fire_time", "fate", "reason", "run_id", "outcome", "attempts", "decided_at", "buffer_position")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NOMINAL_TIME_FIELD_NUMBER: _ClassVar[int]
    FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    FATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    BUFFER_POSITION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    nominal_time: _timestamp_pb2.Timestamp
    fire_time: _timestamp_pb2.Timestamp
    fate: Fate
    reason: str
    run_id: str
    outcome: RunState
    attempts: int
    decided_at: _timestamp_pb2.Timestamp
    buffer_position: int
    def __init__(self, job_id: _Optional[str] = ..., nominal_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fate: _Optional[_Union[Fate, str]] = ..., reason: _Optional[str] = ..., run_id: _Optional[str] = ..., outcome: _Optional[_Union[RunState, str]] = ..., attempts: _Optional[int] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., buffer_position: _Optional[int] = ...) -> None: ...

class BackfillScheduleRequest(_message.Message):
    __slots__ = ("job_id", "to", "reprocess", "overlap", "max_concurrent", "dry_run")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    REPROCESS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    to: str
    reprocess: Reprocess
    overlap: Overlap
    max_concurrent: int
    dry_run: bool
    def __init__(self, job_id: _Optional[str] = ..., to: _Optional[str] = ..., reprocess: _Optional[_Union[Reprocess, str]] = ..., overlap: _Optional[_Union[Overlap, str]] = ..., max_concurrent: _Optional[int] = ..., dry_run: _Optional[bool] = ..., **kwargs) -> None: ...

class BackfilledOccurrence(_message.Message):
    __slots__ = ("nominal_time", "fire_time", "previous_fate", "run_id")
    NOMINAL_TIME_FIELD_NUMBER: _ClassVar[int]
    FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FATE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    nominal_time: _timestamp_pb2.Timestamp
    fire_time: _timestamp_pb2.Timestamp
    previous_fate: Fate
    run_id: str
    def __init__(self, nominal_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_fate: _Optional[_Union[Fate, str]] = ..., run_id: _Optional[str] = ...) -> None: ...

class BackfillScheduleResponse(_message.Message):
    __slots__ = ("occurrences", "dry_run")
    OCCURRENCES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    occurrences: _containers.RepeatedCompositeFieldContainer[BackfilledOccurrence]
    dry_run: bool
    def __init__(self, occurrences: _Optional[_Iterable[_Union[BackfilledOccurrence, _Mapping]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ExplainOccurrenceRequest(_message.Message):
    __slots__ = ("job_id", "time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    time: str
    def __init__(self, job_id: _Optional[str] = ..., time: _Optional[str] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("occurrence", "explanation")
    OCCURRENCE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    occurrence: Occurrence
    explanation: str
    def __init__(self, occurrence: _Optional[_Union[Occurrence, _Mapping]] = ..., explanation: _Optional[str] = ...) -> None: ...

class PreviewScheduleRequest(_message.Message):
    __slots__ = ("cron", "timezone", "start_at", "end_at", "max_runs", "jitter", "count", "after", "more_cron", "exclude_dates", "exclude_cron")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    END_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    MORE_CRON_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DATES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CRON_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    start_at: str
    end_at: str
    max_runs: int
    jitter: _duration_pb2.Duration
    count: int
    after: str
    more_cron: _containers.RepeatedScalarFieldContainer[str]
    exclude_dates: _containers.RepeatedScalarFieldContainer[str]
    exclude_cron: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ..., start_at: _Optional[str] = ..., end_at: _Optional[str] = ..., max_runs: _Optional[int] = ..., jitter: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., count: _Optional[int] = ..., after: _Optional[str] = ..., more_cron: _Optional[_Iterable[str]] = ..., exclude_dates: _Optional[_Iterable[str]] = ..., exclude_cron: _Optional[_Iterable[str]] = ...) -> None: ...

class PreviewScheduleResponse(_message.Message):
    __slots__ = ("times",)
    TIMES_FIELD_NUMBER: _ClassVar[int]
    times: _containers.RepeatedCompositeFieldContainer[PreviewTime]
    def __init__(self, times: _Optional[_Iterable[_Union[PreviewTime, _Mapping]]] = ...) -> None: ...

class PreviewTime(_message.Message):
    __slots__ = ("nominal_time", "fire_time", "local_time")
    NOMINAL_TIME_FIELD_NUMBER: _ClassVar[int]
    FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    nominal_time: _timestamp_pb2.Timestamp
    fire_time: _timestamp_pb2.Timestamp
    local_time: str
    def __init__(self, nominal_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., local_time: _Optional[str] = ...) -> None: ...

class WatchJobsRequest(_message.Message):
    __slots__ = ("job_id", "after_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_seq: int
    def __init__(self, job_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class GetJobHistoryRequest(_message.Message):
    __slots__ = ("job_id", "consistent")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    consistent: bool
    def __init__(self, job_id: _Optional[str] = ..., consistent: _Optional[bool] = ...) -> None: ...

class GetJobHistoryResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "name", "type", "payload", "state", "run_at", "created_at", "updated_at", "idempotency_key", "submitted_to", "runs", "result", "error", "cron", "timezone", "start_at", "end_at", "max_runs", "jitter", "max_attempts", "backoff", "timeout", "priority", "catch_up", "catch_up_window", "overlap", "occurrences", "next_fire_time", "tags", "long_running", "waiting", "payload_json", "result_json", "after", "after_condition", "concurrency_key", "concurrency_limit", "pause_on_failure", "rate_limit", "debounce", "singleton", "buffer_limit", "more_cron", "exclude_dates", "exclude_cron")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_TO_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    END_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    OCCURRENCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LONG_RUNNING_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_CONDITION_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DEBOUNCE_FIELD_NUMBER: _ClassVar[int]
    SINGLETON_FIELD_NUMBER: _ClassVar[int]
    BUFFER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MORE_CRON_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DATES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CRON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    type: str
    payload: _struct_pb2.Value
    state: JobState
    run_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    submitted_to: str
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    result: _struct_pb2.Value
    error: str
    cron: str
    timezone: str
    start_at: _timestamp_pb2.Timestamp
    end_at: _timestamp_pb2.Timestamp
    max_runs: int
    jitter: _duration_pb2.Duration
    max_attempts: int
    backoff: Backoff
    timeout: _duration_pb2.Duration
    priority: int
    catch_up: CatchUp
    catch_up_window: _duration_pb2.Duration
    overlap: Overlap
    occurrences: int
    next_fire_time: _timestamp_pb2.Timestamp
    tags: _containers.RepeatedScalarFieldContainer[str]
    long_running: bool
    waiting: str
    payload_json: str
    result_json: str
    after: _containers.RepeatedScalarFieldContainer[str]
    after_condition: AfterCondition
    concurrency_key: str
    concurrency_limit: int
    pause_on_failure: int
    rate_limit: RateLimit
    debounce: Debounce
    singleton: Singleton
    buffer_limit: int
    more_cron: _containers.RepeatedScalarFieldContainer[str]
    exclude_dates: _containers.RepeatedScalarFieldContainer[str]
    exclude_cron: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., submitted_to: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., start_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_runs: _Optional[int] = ..., jitter: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_attempts: _Optional[int] = ..., backoff: _Optional[_Union[Backoff, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., priority: _Optional[int] = ..., catch_up: _Optional[_Union[CatchUp, str]] = ..., catch_up_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., overlap: _Optional[_Union[Overlap, str]] = ..., occurrences: _Optional[int] = ..., next_fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., long_running: _Optional[bool] = ..., waiting: _Optional[str] = ..., payload_json: _Optional[str] = ..., result_json: _Optional[str] = ..., after: _Optional[_Iterable[str]] = ..., after_condition: _Optional[_Union[AfterCondition, str]] = ..., concurrency_key: _Optional[str] = ..., concurrency_limit: _Optional[int] = ..., pause_on_failure: _Optional[int] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ..., debounce: _Optional[_Union[Debounce, _Mapping]] = ..., singleton: _Optional[_Union[Singleton, _Mapping]] = ..., buffer_limit: _Optional[int] = ..., more_cron: _Optional[_Iterable[str]] = ..., exclude_dates: _Optional[_Iterable[str]] = ..., exclude_cron: _Optional[_Iterable[str]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "attempt", "state", "node_id", "scheduled_at", "triggered_at", "assigned_at", "started_at", "finished_at", "result", "error", "traceback", "result_json")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGERED_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    state: RunState
    node_id: str
    scheduled_at: _timestamp_pb2.Timestamp
    triggered_at: _timestamp_pb2.Timestamp
    assigned_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    result: _struct_pb2.Value
    error: str
    traceback: str
    result_json: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[_Union[RunState, str]] = ..., node_id: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., triggered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[str] = ..., traceback: _Optional[str] = ..., result_json: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "type", "time", "node_id", "run_id", "attempt", "message", "job_id")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    seq: int
    type: EventType
    time: _timestamp_pb2.Timestamp
    node_id: str
    run_id: str
    attempt: int
    message: str
    job_id: str
    def __init__(self, seq: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., node_id: _Optional[str] = ..., run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., message: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("leader_id", "term", "commit_index", "node_id", "applied_index", "nodes", "workers")
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    leader_id: str
    term: int
    commit_index: int
    node_id: str
    applied_index: int
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    def __init__(self, leader_id: _Optional[str] = ..., term: _Optional[int] = ..., commit_index: _Optional[int] = ..., node_id: _Optional[str] = ..., applied_index: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("worker_id", "address", "capacity", "tags", "handlers", "running_count", "running", "last_heartbeat", "connected_to", "boot_id", "registered_at", "draining")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COUNT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_TO_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    address: str
    capacity: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    handlers: _containers.RepeatedScalarFieldContainer[str]
    running_count: int
    running: _containers.RepeatedCompositeFieldContainer[RunningRun]
    last_heartbeat: _timestamp_pb2.Timestamp
    connected_to: str
    boot_id: str
    registered_at: _timestamp_pb2.Timestamp
    draining: bool
    def __init__(self, worker_id: _Optional[str] = ..., address: _Optional[str] = ..., capacity: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., handlers: _Optional[_Iterable[str]] = ..., running_count: _Optional[int] = ..., running: _Optional[_Iterable[_Union[RunningRun, _Mapping]]] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., connected_to: _Optional[str] = ..., boot_id: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., draining: _Optional[bool] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "role", "grpc_address", "raft_address", "reachable", "capacity", "tags", "running_count", "running", "applied_index", "draining", "state_hash", "clock_offset_ms", "fault")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COUNT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    STATE_HASH_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: str
    grpc_address: str
    raft_address: str
    reachable: bool
    capacity: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    running_count: int
    running: _containers.RepeatedCompositeFieldContainer[RunningRun]
    applied_index: int
    draining: bool
    state_hash: str
    clock_offset_ms: int
    fault: str
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[str] = ..., grpc_address: _Optional[str] = ..., raft_address: _Optional[str] = ..., reachable: _Optional[bool] = ..., capacity: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., running_count: _Optional[int] = ..., running: _Optional[_Iterable[_Union[RunningRun, _Mapping]]] = ..., applied_index: _Optional[int] = ..., draining: _Optional[bool] = ..., state_hash: _Optional[str] = ..., clock_offset_ms: _Optional[int] = ..., fault: _Optional[str] = ...) -> None: ...

class RunningRun(_message.Message):
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
