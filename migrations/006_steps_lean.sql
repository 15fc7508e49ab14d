-- 006_steps_lean.sql: the steps table rebuilt so that a step's state
-- changes write fewer index pages.  Every claim and every step end is a
-- write on the one writer connection, and each index it touches is one
-- more page in the commit's WAL frames.
--
-- * One index for the steps in flight instead of two: steps_running holds
--   the RUNNING steps by their lease owner.  It serves the scans at start-
--   up and on the lease timer (RUNNING steps, expired or of any owner),
--   and, unlike steps_by_lease, is not rewritten when leases are renewed.
--   READY steps are found through their workflow, never by a scan.
-- * (workflow_id, position) is the one key by workflow: steps are read in
--   their order, and step ids are unique within a workflow by validation
--   (a 422 at create), never looked up by id in SQL.
-- * The status CHECK is a chain of comparisons: `IN` with more than two
--   constants builds a temporary table on every insert and status update.
--
-- Same columns in the same order; rows keep their rowids.  Nothing refers
-- to steps, so it can be dropped with foreign keys on.

CREATE TABLE steps_new (
    id                              TEXT PRIMARY KEY,
    workflow_id                     TEXT NOT NULL
                                    REFERENCES workflows (id) ON DELETE CASCADE,
    position                        INTEGER NOT NULL,
    step_id                         TEXT NOT NULL,
    task_type                       TEXT NOT NULL,
    provider                        TEXT NOT NULL,
    config                          TEXT NOT NULL DEFAULT '{}',
    provider_config                 TEXT,
    active_provider_capabilities    TEXT,
    fallback_provider_type          TEXT,
    fallback_provider_config        TEXT,
    fallback_provider_capabilities  TEXT,
    dependencies                    TEXT NOT NULL DEFAULT '[]',
    input_mappings                  TEXT NOT NULL DEFAULT '[]',
    status                          TEXT NOT NULL CHECK (
        status = 'PENDING' OR status = 'READY' OR status = 'RUNNING' OR
        status = 'COMPLETED' OR status = 'FAILED' OR status = 'SKIPPED' OR
        status = 'CANCELLED'),
    task_id                         TEXT,
    result                          TEXT,
    error_message                   TEXT,
    started_at                      INTEGER,
    completed_at                    INTEGER,
    retry_count                     INTEGER NOT NULL DEFAULT 0,
    max_retries                     INTEGER NOT NULL DEFAULT 0,
    -- Who runs the step now and until when (ms); reclaimed when expired.
    lease_owner                     TEXT,
    lease_expires_at                INTEGER,
    created_at                      INTEGER NOT NULL,
    updated_at                      INTEGER NOT NULL,
    is_deleted                      INTEGER NOT NULL DEFAULT 0,
    -- From 002_attempts_jobs.sql, where each is described.
    attempts                        TEXT NOT NULL DEFAULT '[]',
    provider_used                   TEXT,
    current_provider                TEXT,
    provider_retries                INTEGER NOT NULL DEFAULT 0,
    on_fallback                     INTEGER NOT NULL DEFAULT 0,
    job                             TEXT,
    next_attempt_at                 INTEGER,
    first_started_at                INTEGER,
    UNIQUE (workflow_id, position)
);

INSERT INTO steps_new (rowid, id, workflow_id, position, step_id, task_type,
    provider, config, provider_config, active_provider_capabilities,
    fallback_provider_type, fallback_provider_config,
    fallback_provider_capabilities, dependencies, input_mappings, status,
    task_id, result, error_message, started_at, completed_at, retry_count,
    max_retries, lease_owner, lease_expires_at, created_at, updated_at,
    is_deleted, attempts, provider_used, current_provider, provider_retries,
    on_fallback, job, next_attempt_at, first_started_at)
SELECT rowid, id, workflow_id, position, step_id, task_type,
    provider, config, provider_config, active_provider_capabilities,
    fallback_provider_type, fallback_provider_config,
    fallback_provider_capabilities, dependencies, input_mappings, status,
    task_id, result, error_message, started_at, completed_at, retry_count,
    max_retries, lease_owner, lease_expires_at, created_at, updated_at,
    is_deleted, attempts, provider_used, current_provider, provider_retries,
    on_fallback, job, next_attempt_at, first_started_at
FROM steps;

DROP TABLE steps;
ALTER TABLE steps_new RENAME TO steps;

CREATE INDEX steps_running ON steps (lease_owner) WHERE status = 'RUNNING';
