-- 009_ascending_indexes.sql: the indexes on created_at ascend.
--
-- A DESC key puts the newest row first, so each insert went to the left
-- edge of the index (or of its status or tenant group), where SQLite
-- splits pages by redistributing them with their siblings: the indexes
-- were about half full and every split rewrote three pages and their
-- parent.  An ascending key appends at the right edge, which SQLite
-- fills to the brim and splits by starting a new page.  The lists still
-- read newest first: SQLite walks an index backwards for ORDER BY
-- created_at DESC, rowid DESC without sorting.
DROP INDEX workflows_by_created;
CREATE INDEX workflows_by_created ON workflows (created_at);
DROP INDEX workflows_by_status;
CREATE INDEX workflows_by_status ON workflows (status, is_deleted, created_at);
DROP INDEX workflows_by_tenant;
CREATE INDEX workflows_by_tenant ON workflows (origin_tenant_id, created_at);
DROP INDEX webhook_deliveries_by_created;
CREATE INDEX webhook_deliveries_by_created
    ON webhook_deliveries (created_at);
DROP INDEX webhook_deliveries_by_workflow;
CREATE INDEX webhook_deliveries_by_workflow
    ON webhook_deliveries (workflow_id, created_at);
DROP INDEX templates_by_created;
CREATE INDEX templates_by_created ON templates (created_at);
DROP INDEX templates_by_tenant;
CREATE INDEX templates_by_tenant ON templates (tenant_id, created_at);
DROP INDEX batches_by_created;
CREATE INDEX batches_by_created ON batches (created_at);
