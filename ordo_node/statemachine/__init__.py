"""The state machine: what a committed command does to every replica's SQLite file.

The rule every module here keeps: **no clock, no randomness, no I/O in apply**
(beyond the store's own SQLite connection). Every time comes inside the command;
every decision is a pure function of the command and the tables (the policies in
``policy.py``); schedule arithmetic that needs a time-zone database is done by the
proposer and arrives in the command. Every transition is guarded by the state it
expects: a command that no longer fits (a second trigger for the same due time, an
outcome from an attempt that was re-assigned) changes nothing and reports why, and
``Refused`` rolls a whole command back. So replicas that apply the same log hold the
same state, which the running state hash lets anyone check.

Modules:
    store.py        Store: apply (one transaction per entry), restore, the state hash
    schema.py       the tables, SCHEMA_VERSION and the migration of older files
    transitions.py  the dispatch of each command to its group
    jobs.py         submit, cancel, retry, pause and resume
    triggers.py     triggers: occurrences, their fates, their runs
    manual.py       TriggerNow: an operator's extra occurrence of a recurring job, now
    runs.py         assignment, outcomes and retries, leases, expiry, waiting
    cluster.py      membership changes and retention (prune)
    base.py         what the groups share: history entries, runs, settling a job's state
    policy.py       the pure policies: retry backoff, overlap
    flow.py         run after: jobs released or skipped when the jobs they wait for end
    concurrency.py  concurrency keys: at most a limit of attempts holding a key at once
    joining.py      debounce and singleton: a submission merged into, skipped for, or replacing a job
    backfill.py     past occurrences run again, chosen by their stored fates
    effects.py      what a command changed, handed to the actors after commit

Nothing here imports the API, the actors or the schedule arithmetic; the actors
learn what changed from :class:`Effects`, never by reading back into apply.
"""
