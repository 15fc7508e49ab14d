-- 003_webhooks.sql: the webhook outbox.  A delivery row is written in the
-- same transaction as the state change that causes it, so a crash never
-- loses one; the dispatcher sends what is due and records every attempt.

CREATE TABLE webhook_deliveries (
    -- The event id, sent as webhook-id on every attempt (Standard
    -- Webhooks), so receivers can deduplicate.
    id                  TEXT PRIMARY KEY,
    event               TEXT NOT NULL,
    workflow_id         TEXT,
    step_id             TEXT,
    tenant_id           TEXT,
    url                 TEXT NOT NULL,
    -- "scheme://host:port": deliveries to one receiver share its
    -- concurrency limit, and never hold up other receivers.
    endpoint            TEXT NOT NULL,
    -- The JSON body, fixed at creation so every attempt sends the same.
    payload             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN
        ('pending', 'delivered', 'failed')),
    attempt_count       INTEGER NOT NULL DEFAULT 0,
    -- Attempts since creation or the last redelivery: the position in
    -- the retry schedule.
    round_attempts      INTEGER NOT NULL DEFAULT 0,
    -- When it is due (ms).  While an attempt is in flight it is pushed
    -- past that attempt's timeout, and in_flight_since is set: a crash
    -- mid-attempt leaves it due again.
    next_attempt_at     INTEGER,
    in_flight_since     INTEGER,
    last_http_status    INTEGER,
    last_error          TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    completed_at        INTEGER
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_created
    ON webhook_deliveries (created_at DESC);
CREATE INDEX webhook_deliveries_by_workflow
    ON webhook_deliveries (workflow_id, created_at DESC);

CREATE TABLE webhook_attempts (
    delivery_id         TEXT NOT NULL
                        REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt             INTEGER NOT NULL,
    started_at          INTEGER NOT NULL,
    latency_ms          INTEGER NOT NULL,
    outcome             TEXT NOT NULL CHECK (outcome IN
        ('delivered', 'failed')),
    http_status         INTEGER,
    response_excerpt    TEXT,
    error               TEXT,
    -- When the next attempt was scheduled (ms); NULL when none follows.
    retry_at            INTEGER,
    PRIMARY KEY (delivery_id, attempt)
);
