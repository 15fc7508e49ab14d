-- 004_templates.sql: published workflows.  A template keeps every version
-- it was published with: runs keep the version they started with, and an
-- archived template stays readable for the runs that used it.

CREATE TABLE templates (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT,
    name                TEXT NOT NULL,
    description         TEXT,
    status              TEXT NOT NULL CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    -- The latest version (the one new runs use).
    version             INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    archived_at         INTEGER
);

CREATE INDEX templates_by_created ON templates (created_at DESC);
CREATE INDEX templates_by_tenant ON templates (tenant_id, created_at DESC);

CREATE TABLE template_versions (
    template_id         TEXT NOT NULL REFERENCES templates (id),
    version             INTEGER NOT NULL,
    -- The validated definition: {name, description, inputs, steps,
    -- config, webhook_url, suppress_subtask_events}.
    definition          TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (template_id, version)
);
