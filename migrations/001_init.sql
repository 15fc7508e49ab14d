-- 001_init.sql: workflows and their steps.
-- Times are integer milliseconds since the Unix epoch (UTC); JSON values are
-- stored as compact JSON text.  Ordering "newest first" uses
-- (created_at DESC, rowid DESC) so equal timestamps keep insertion order.

CREATE TABLE workflows (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    description             TEXT,
    status                  TEXT NOT NULL CHECK (status IN
        ('PENDING','RUNNING','PAUSED','COMPLETED','FAILED','CANCELLED')),
    config                  TEXT NOT NULL DEFAULT '{}',
    suppress_subtask_events INTEGER NOT NULL DEFAULT 1,
    origin_instance         TEXT NOT NULL,
    origin_zone             TEXT,
    origin_tenant_id        TEXT,
    origin_reference        TEXT,
    webhook_url             TEXT,
    canvas_task_id          TEXT,
    error_message           TEXT,
    errors                  TEXT NOT NULL DEFAULT '[]',
    total_steps             INTEGER NOT NULL,
    completed_steps         INTEGER NOT NULL DEFAULT 0,
    final_step_id           TEXT,
    started_at              INTEGER,
    completed_at            INTEGER,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    is_deleted              INTEGER NOT NULL DEFAULT 0,
    deleted_at              INTEGER
);

CREATE INDEX workflows_by_created ON workflows (created_at DESC);
CREATE INDEX workflows_by_status ON workflows (status, created_at DESC);
CREATE INDEX workflows_by_tenant ON workflows (origin_tenant_id, created_at DESC);

CREATE TABLE steps (
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
    status                          TEXT NOT NULL CHECK (status IN
        ('PENDING','READY','RUNNING','COMPLETED','FAILED','SKIPPED',
         'CANCELLED')),
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
    UNIQUE (workflow_id, step_id),
    UNIQUE (workflow_id, position)
);

CREATE INDEX steps_in_flight ON steps (status)
    WHERE status IN ('READY', 'RUNNING');
