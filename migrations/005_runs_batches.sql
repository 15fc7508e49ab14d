-- 005_runs_batches.sql: runs of published workflows, idempotency keys,
-- and batches that run one template over many assets.

-- A run is a workflow created from a template version; a batch execution
-- runs as one too.  run_inputs are the resolved inputs (defaults applied)
-- that input mappings read as from_step "$inputs".
ALTER TABLE workflows ADD COLUMN template_id TEXT;
ALTER TABLE workflows ADD COLUMN template_version INTEGER;
ALTER TABLE workflows ADD COLUMN run_inputs TEXT;
ALTER TABLE workflows ADD COLUMN batch_id TEXT;

-- Idempotency-Key: the same key (per tenant; '' for none) and the same
-- request return what the first request created; another request with
-- that key is a conflict.
CREATE TABLE idempotency_keys (
    tenant_id           TEXT NOT NULL,
    idem_key            TEXT NOT NULL,
    -- SHA-256 (hex) of the method, path and canonical JSON body.
    request_hash        TEXT NOT NULL,
    resource_type       TEXT NOT NULL,
    resource_id         TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, idem_key)
);

CREATE TABLE batches (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT,
    template_id         TEXT NOT NULL,
    template_version    INTEGER NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('PENDING',
        'RUNNING', 'COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED',
        'CANCELLED')),
    -- 0 HIGH, 1 NORMAL, 2 LOW: the scheduler's first sort key.
    priority            INTEGER NOT NULL,
    concurrency_limit   INTEGER NOT NULL,
    continue_on_error   INTEGER NOT NULL,
    -- The template input each asset fills.
    asset_input         TEXT NOT NULL,
    -- Inputs shared by every asset (a JSON object).
    inputs              TEXT NOT NULL,
    webhook_url         TEXT,
    execution_events    INTEGER NOT NULL DEFAULT 0,
    origin_instance     TEXT,
    origin_zone         TEXT,
    origin_reference    TEXT,
    name                TEXT,
    -- Execution counts, kept in the transaction that changes an
    -- execution, so they are right after any crash.
    total               INTEGER NOT NULL,
    pending             INTEGER NOT NULL,
    processing          INTEGER NOT NULL DEFAULT 0,
    completed           INTEGER NOT NULL DEFAULT 0,
    failed              INTEGER NOT NULL DEFAULT 0,
    cancelled           INTEGER NOT NULL DEFAULT 0,
    credit_cost         REAL NOT NULL DEFAULT 0,
    -- Sum and number of the durations of finished (SUCCESS, FAILED)
    -- executions that ran (one that could not start has none).
    duration_sum_ms     INTEGER NOT NULL DEFAULT 0,
    duration_count      INTEGER NOT NULL DEFAULT 0,
    -- Set when running executions must be cancelled (a failure with
    -- continue_on_error false); the scheduler does it.
    abort_running       INTEGER NOT NULL DEFAULT 0,
    -- Round robin among batches of one priority: the batch that started
    -- an execution longest ago goes next.
    last_dispatch       INTEGER NOT NULL DEFAULT 0,
    started_at          INTEGER,
    completed_at        INTEGER,
    cancelled_at        INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE INDEX batches_by_created ON batches (created_at DESC);
CREATE INDEX batches_active ON batches (priority, last_dispatch)
    WHERE status IN ('PENDING', 'RUNNING');

CREATE TABLE batch_executions (
    id                  TEXT PRIMARY KEY,
    batch_id            TEXT NOT NULL REFERENCES batches (id),
    asset_index         INTEGER NOT NULL,
    asset_id            TEXT,
    asset_url           TEXT NOT NULL,
    -- Per-asset input overrides (a JSON object) or NULL.
    inputs              TEXT,
    status              TEXT NOT NULL CHECK (status IN ('PENDING',
        'RUNNING', 'SUCCESS', 'FAILED', 'CANCELLED')),
    workflow_id         TEXT,
    -- Earlier workflows of this execution (retries), a JSON array.
    previous_workflow_ids TEXT,
    runs                INTEGER NOT NULL DEFAULT 0,
    outputs             TEXT,
    error_code          TEXT,
    error_message       TEXT,
    credit_cost         REAL,
    started_at          INTEGER,
    completed_at        INTEGER,
    duration_ms         INTEGER,
    UNIQUE (batch_id, asset_index)
);

CREATE INDEX batch_executions_pending ON batch_executions
    (batch_id, asset_index) WHERE status = 'PENDING';
CREATE INDEX batch_executions_by_status ON batch_executions
    (batch_id, status, asset_index);
CREATE INDEX batch_executions_by_asset ON batch_executions
    (batch_id, asset_id, asset_index);
CREATE INDEX batch_executions_by_workflow ON batch_executions (workflow_id)
    WHERE workflow_id IS NOT NULL;
CREATE INDEX batch_executions_by_duration ON batch_executions
    (batch_id, duration_ms) WHERE duration_ms IS NOT NULL;
