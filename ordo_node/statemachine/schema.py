"""The state machine's tables: every replica's SQLite file, and the migration from older versions.

Bump SCHEMA_VERSION with any change here; ``MIGRATE`` runs before ``SCHEMA`` on
open and after a snapshot came in, so a file of an older version gets this one's
indexes.
"""

SCHEMA_VERSION = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    run_at INTEGER NOT NULL,          -- the first fire time
    due_at INTEGER,                   -- the next fire time; NULL when nothing is left to trigger
    next_nominal INTEGER,             -- recurring: the nominal time due_at belongs to
    armed INTEGER NOT NULL,           -- 1 while the timekeeper should trigger it at due_at
    occurrences INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    idempotency_key TEXT,
    spec_hash TEXT NOT NULL,
    submitted_to TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '', -- schedule and policies, JSON
    paused_at INTEGER,
    resumed_at INTEGER
);
-- The timekeeper's question, "what falls due next", reads only this index.
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(due_at) WHERE armed = 1;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Lists are newest first by rowid: the order jobs were committed in, the same on
-- every replica (apply is deterministic, and a snapshot is a copy of the file).
-- An index on (state) holds (state, rowid): a list by state needs no other.
CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name) WHERE name != '';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
-- Retention looks only at jobs with more than one occurrence: the recurring ones.
CREATE INDEX IF NOT EXISTS jobs_recurring ON jobs(occurrences) WHERE occurrences > 1;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    node_id TEXT,
    scheduled_at INTEGER NOT NULL,
    triggered_at INTEGER NOT NULL,
    assigned_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    result TEXT,
    error TEXT,
    lease_until INTEGER,
    priority INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER,               -- a retry waits for its backoff until then
    failures_before INTEGER NOT NULL DEFAULT 0,
    waiting TEXT,                     -- why no executor takes it (tags no live node has)
    boot_id TEXT,                     -- the executor process it was assigned to
    traceback TEXT,                   -- a failed attempt: the handler's traceback
    PRIMARY KEY (run_id, attempt)
);
CREATE INDEX IF NOT EXISTS runs_job ON runs(job_id);
-- Open attempts (pending, assigned, running) are exactly those not finished. The
-- condition is not "state IN (...)": SQLite 3.40 then builds the IN list's table
-- twice for every row a statement writes, and a run's insert and updates cost
-- two to five times as much.
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs(state, node_id) WHERE finished_at IS NULL;
CREATE TABLE IF NOT EXISTS occurrences (
    job_id TEXT NOT NULL,
    nominal INTEGER NOT NULL,
    fire_at INTEGER NOT NULL,
    fate TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    run_id TEXT,
    decided_at INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    PRIMARY KEY (job_id, nominal)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    run_id TEXT,
    attempt INTEGER,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    grpc_address TEXT NOT NULL,
    raft_address TEXT NOT NULL,
    state TEXT NOT NULL,              -- ACTIVE or REMOVED
    changed_at INTEGER NOT NULL
);
-- Workers (ordo-node worker): registered by the leader they connect to. Tags and
-- handlers are JSON lists. state: ACTIVE, or GONE once it left.
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    boot_id TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    tags TEXT NOT NULL,
    handlers TEXT NOT NULL,
    address TEXT NOT NULL,
    server TEXT NOT NULL,
    state TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL
);
-- Run after (schema 7): job_id runs once every after_id ended as its options' after_condition asks.
CREATE TABLE IF NOT EXISTS job_after (
    job_id TEXT NOT NULL,
    after_id TEXT NOT NULL,
    PRIMARY KEY (job_id, after_id)
);
CREATE INDEX IF NOT EXISTS job_after_by ON job_after(after_id);
-- Rate limits (schema 7): per key, the time its token bucket is free of debt (see ratelimit.py).
CREATE TABLE IF NOT EXISTS rate_buckets (key TEXT PRIMARY KEY, tat INTEGER NOT NULL);
-- Debounce and singleton (schema 8): per kind and key, the last job created with the key and
-- the time of the key's last submission (see joining.py).
CREATE TABLE IF NOT EXISTS join_keys (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
-- Submissions with an idempotency key that created no job (merged by debounce, skipped by
-- singleton): a retry with the key is answered as the first was (schema 8).
CREATE TABLE IF NOT EXISTS joined_submissions (
    idempotency_key TEXT PRIMARY KEY,
    spec_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    applied_index INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_index ON requests(applied_index);
"""

# Schema 2 had indexes that every job paid for on each replica: jobs(created_at, id)
# and jobs(state, created_at, id), replaced by rowid order and jobs(state), and
# events(at), replaced by pruning the oldest events by seq. Schema 3 had
# runs_open, partial on "state IN (...)", replaced by runs_unfinished.
MIGRATE = """
DROP INDEX IF EXISTS jobs_created;
DROP INDEX IF EXISTS jobs_state_created;
DROP INDEX IF EXISTS events_at;
DROP INDEX IF EXISTS runs_open;
"""

# Columns added to existing tables since schema 4, as (table, column, type): added on
# open when missing (SQLite has no ADD COLUMN IF NOT EXISTS).
COLUMNS = (
    ("runs", "traceback", "TEXT"),
    # Schema 7: the concurrency key an attempt holds from its assignment to its end, and its limit.
    ("runs", "concurrency_key", "TEXT"),
    ("runs", "concurrency_limit", "INTEGER"),
)

# Indexes on columns of COLUMNS: made once they exist. Open attempts holding a key.
AFTER_COLUMNS = """
CREATE INDEX IF NOT EXISTS runs_key ON runs(concurrency_key, state)
    WHERE concurrency_key IS NOT NULL AND finished_at IS NULL;
"""
