-- 008_status_index_live.sql: workflows_by_status also holds is_deleted.
--
-- A list filtered by status counts its matches for "total"; with
-- (status, created_at) alone, SQLite read every matching workflow's row
-- to test is_deleted, so polling ?status=COMPLETED cost a row read per
-- completed workflow.  With is_deleted in the index the count reads the
-- index only, and the list (status = ? AND is_deleted = 0, newest first)
-- still walks it in order.
DROP INDEX workflows_by_status;
CREATE INDEX workflows_by_status ON workflows (status, is_deleted, created_at DESC);
