-- 007_workflows_status_check.sql: the workflows table rebuilt with its
-- status CHECK written as a chain of comparisons, as 006 did for steps.
-- `status IN (...)` with more than two constants makes SQLite build a
-- temporary table on every INSERT into workflows and every status change
-- (each create, each workflow's end); `=` comparisons cost nothing.  The
-- allowed values are the same.
--
-- Same columns in the same order (those 005 added at the end); rows keep
-- their rowids; the three indexes are made again.  steps refers to
-- workflows by name, so it refers to the new table once it is renamed.
-- kiln_migrate runs every migration with foreign keys off (else dropping
-- the old table would delete every step) and checks them before its
-- COMMIT.

CREATE TABLE workflows_new (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    description             TEXT,
    status                  TEXT NOT NULL CHECK (
        status = 'PENDING' OR status = 'RUNNING' OR status = 'PAUSED' OR
        status = 'COMPLETED' OR status = 'FAILED' OR
        status = 'CANCELLED'),
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
    deleted_at              INTEGER,
    -- From 005_runs_batches.sql, where each is described.
    template_id             TEXT,
    template_version        INTEGER,
    run_inputs              TEXT,
    batch_id                TEXT
);

INSERT INTO workflows_new (rowid, id, name, description, status, config,
    suppress_subtask_events, origin_instance, origin_zone, origin_tenant_id,
    origin_reference, webhook_url, canvas_task_id, error_message, errors,
    total_steps, completed_steps, final_step_id, started_at, completed_at,
    created_at, updated_at, is_deleted, deleted_at, template_id,
    template_version, run_inputs, batch_id)
SELECT rowid, id, name, description, status, config,
    suppress_subtask_events, origin_instance, origin_zone, origin_tenant_id,
    origin_reference, webhook_url, canvas_task_id, error_message, errors,
    total_steps, completed_steps, final_step_id, started_at, completed_at,
    created_at, updated_at, is_deleted, deleted_at, template_id,
    template_version, run_inputs, batch_id
FROM workflows;

DROP TABLE workflows;
ALTER TABLE workflows_new RENAME TO workflows;

CREATE INDEX workflows_by_created ON workflows (created_at DESC);
CREATE INDEX workflows_by_status ON workflows (status, created_at DESC);
CREATE INDEX workflows_by_tenant ON workflows (origin_tenant_id, created_at DESC);
