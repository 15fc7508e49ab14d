-- 002_attempts_jobs.sql: what the engine needs to retry, fall back, poll
-- async jobs and survive a crash without paying twice.

-- Every attempt of the step: [{attempt, provider, started_at, finished_at,
-- outcome, http_status, error, job_id}], times as RFC 3339 text.
ALTER TABLE steps ADD COLUMN attempts TEXT NOT NULL DEFAULT '[]';
-- The provider that produced the result.
ALTER TABLE steps ADD COLUMN provider_used TEXT;
-- The provider of the attempt in progress (primary or fallback), and how
-- many retries the step has used on it.
ALTER TABLE steps ADD COLUMN current_provider TEXT;
ALTER TABLE steps ADD COLUMN provider_retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN on_fallback INTEGER NOT NULL DEFAULT 0;
-- The async job of the attempt in progress: {"id", "status_url",
-- "cancel_url", "result_url"}; committed before the first poll.
ALTER TABLE steps ADD COLUMN job TEXT;
-- When the next attempt may start (ms), while waiting out a backoff.
ALTER TABLE steps ADD COLUMN next_attempt_at INTEGER;
-- When the step's first attempt started (ms): its provider's
-- step_deadline_s counts from here.
ALTER TABLE steps ADD COLUMN first_started_at INTEGER;

CREATE INDEX steps_by_lease ON steps (lease_expires_at)
    WHERE status = 'RUNNING';
