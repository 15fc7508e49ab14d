/*
 * test_migrate.c - schema migrations on real files: a database made by
 * the migrations before 006 or 007 (an older kilnd) is upgraded with
 * every row kept, ends with the same schema as a new database, and keeps
 * its constraints; one made before 009 gets ascending indexes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/migrate.h"

static char dir[64];

static sqlite3 *open_db(const char *name)
{
	char path[128];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	return db;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kiln-migrate-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* What kilnd before 006 made: the migrations up to before_name. */
static void migrate_until(sqlite3 *db, const char *before_name)
{
	const struct kiln_migration *m;
	char sql[256];

	exec_ok(db, "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY,"
		    " applied_at TEXT NOT NULL)");
	for (m = kiln_migrations; m->name != NULL; m++) {
		if (strcmp(m->name, before_name) >= 0)
			break;
		exec_ok(db, m->sql);
		snprintf(sql, sizeof(sql),
			 "INSERT INTO schema_migrations VALUES ('%s', 'x')",
			 m->name);
		exec_ok(db, sql);
	}
}

/* Every row of the query, each column quote()d, joined into one text. */
static char *dump(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	size_t len = 0, cap = 4096;
	char *out = calloc(1, cap);
	int i, n;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	n = sqlite3_column_count(s);
	while (sqlite3_step(s) == SQLITE_ROW) {
		for (i = 0; i < n; i++) {
			const char *v = (const char *)sqlite3_column_text(s, i);
			size_t add = (v ? strlen(v) : 4) + 2;

			if (len + add + 1 > cap) {
				cap = (len + add + 1) * 2;
				out = realloc(out, cap);
			}
			len += (size_t)snprintf(out + len, cap - len, "%s%c",
						 v ? v : "NULL",
						 i + 1 < n ? '|' : '\n');
		}
	}
	sqlite3_finalize(s);
	return out;
}

/* Fails unless the query's rows (as dump gives them) are want. */
static void expect_dump(sqlite3 *db, const char *sql, const char *want)
{
	char *got = dump(db, sql);

	if (strcmp(got, want) != 0)
		fail_msg("%s:\n got: %s\nwant: %s", sql, got, want);
	free(got);
}

/* Steps with every column set, as the engine leaves them mid-run. */
static const char *STEPS_SQL =
	"INSERT INTO workflows (id, name, status, origin_instance,"
	" total_steps, created_at, updated_at) VALUES"
	" ('w1', 'wf', 'RUNNING', 'api', 3, 1, 2),"
	" ('w2', 'other', 'COMPLETED', 'api', 1, 3, 4);"
	"INSERT INTO steps (id, workflow_id, position, step_id, task_type,"
	" provider, config, provider_config, active_provider_capabilities,"
	" fallback_provider_type, fallback_provider_config,"
	" fallback_provider_capabilities, dependencies, input_mappings,"
	" status, task_id, result, error_message, started_at, completed_at,"
	" retry_count, max_retries, lease_owner, lease_expires_at,"
	" created_at, updated_at, is_deleted, attempts, provider_used,"
	" current_provider, provider_retries, on_fallback, job,"
	" next_attempt_at, first_started_at) VALUES"
	" ('s1', 'w1', 0, 'generate', 'GENERATION', 'fal', '{\"p\":1}',"
	"  '{\"k\":2}', '[\"a\"]', 'replicate', '{\"f\":3}', '[\"b\"]', '[]',"
	"  '[]', 'COMPLETED', 't1', '{\"url\":\"x\"}', NULL, 10, 20, 1, 3,"
	"  NULL, NULL, 5, 20, 0, '[{\"attempt\":1}]', 'fal', 'fal', 1, 0,"
	"  NULL, NULL, 10),"
	" ('s2', 'w1', 1, 'refine', 'REFINE', 'fal', '{}', NULL, NULL, NULL,"
	"  NULL, NULL, '[\"generate\"]', '[{\"from_step\":\"generate\"}]',"
	"  'RUNNING', 't2', NULL, NULL, 21, NULL, 0, 0, 'node-a', 99999,"
	"  5, 21, 0, '[{\"attempt\":1,\"outcome\":\"running\"}]', NULL,"
	"  'replicate', 0, 1, '{\"id\":\"job-7\"}', 30000, 21),"
	" ('s3', 'w1', 2, 'export', 'EXPORT', 'fal', '{}', NULL, NULL, NULL,"
	"  NULL, NULL, '[\"refine\"]', '[]', 'PENDING', NULL, NULL, 'why',"
	"  NULL, NULL, 0, 2, NULL, NULL, 5, 5, 1, '[]', NULL, NULL, 0, 0,"
	"  NULL, NULL, NULL),"
	" ('s4', 'w2', 0, 'only', 'UPSCALE', 'runpod', '{}', NULL, NULL,"
	"  NULL, NULL, NULL, '[]', '[]', 'FAILED', 't4', NULL, 'boom', 1, 2,"
	"  0, 0, NULL, NULL, 3, 4, 0, '[]', NULL, NULL, 0, 0, NULL, NULL,"
	"  1);"
	/* A gap in the rowids, which the copy must keep. */
	"DELETE FROM steps WHERE id = 's3';"
	"INSERT INTO steps (id, workflow_id, position, step_id, task_type,"
	" provider, status, created_at, updated_at) VALUES"
	" ('s5', 'w1', 2, 'export', 'EXPORT', 'fal', 'READY', 6, 6);";

static const char *ALL_STEPS = "SELECT rowid, * FROM steps ORDER BY rowid";
static const char *STEPS_SCHEMA =
	"SELECT type, name, sql FROM sqlite_schema WHERE tbl_name = 'steps'"
	" ORDER BY name";

static void test_upgrade_keeps_every_step(void **state)
{
	sqlite3 *db = open_db("old.db");
	struct kiln_err err = {0};
	char *before, *after;

	(void)state;
	migrate_until(db, "006");
	exec_ok(db, STEPS_SQL);
	before = dump(db, ALL_STEPS);
	assert_non_null(strstr(before, "s5"));

	assert_int_equal(kiln_migrate(db, &err), KILN_OK);
	after = dump(db, ALL_STEPS);
	assert_string_equal(after, before);

	expect_dump(db,
		    "SELECT name FROM sqlite_schema WHERE tbl_name ="
		    " 'steps' AND type = 'index' ORDER BY name",
		    "sqlite_autoindex_steps_1\n"
		    "sqlite_autoindex_steps_2\n"
		    "steps_running\n");
	expect_dump(db, "SELECT name FROM schema_migrations WHERE name"
			 " LIKE '006%'", "006_steps_lean.sql\n");
	expect_dump(db, "PRAGMA integrity_check", "ok\n");
	expect_dump(db, "PRAGMA foreign_key_check", "");
	free(before);
	free(after);
	sqlite3_close(db);
}

static void test_upgraded_schema_is_a_new_one(void **state)
{
	sqlite3 *old = open_db("old.db"), *fresh = open_db("new.db");
	struct kiln_err err = {0};
	char *a, *b;

	(void)state;
	migrate_until(old, "006");
	exec_ok(old, STEPS_SQL);
	assert_int_equal(kiln_migrate(old, &err), KILN_OK);
	assert_int_equal(kiln_migrate(fresh, &err), KILN_OK);
	/* And a second start changes nothing. */
	assert_int_equal(kiln_migrate(fresh, &err), KILN_OK);
	a = dump(old, STEPS_SCHEMA);
	b = dump(fresh, STEPS_SCHEMA);
	assert_string_equal(a, b);
	free(a);
	free(b);
	sqlite3_close(old);
	sqlite3_close(fresh);
}

static int step_status_accepted(sqlite3 *db, const char *status)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "UPDATE steps SET status = '%s'"
		 " WHERE id = 's2'", status);
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static void test_constraints_still_hold(void **state)
{
	static const char *const statuses[] = {
		"PENDING", "READY",   "RUNNING",  "COMPLETED",
		"FAILED",  "SKIPPED", "CANCELLED"};
	sqlite3 *db = open_db("old.db");
	struct kiln_err err = {0};
	size_t i;

	(void)state;
	migrate_until(db, "006");
	exec_ok(db, STEPS_SQL);
	assert_int_equal(kiln_migrate(db, &err), KILN_OK);

	for (i = 0; i < sizeof(statuses) / sizeof(*statuses); i++)
		assert_true(step_status_accepted(db, statuses[i]));
	assert_false(step_status_accepted(db, "BOGUS"));
	assert_false(step_status_accepted(db, "running"));
	assert_false(step_status_accepted(db, ""));
	/* Two steps at one position of a workflow. */
	assert_int_not_equal(
		sqlite3_exec(db,
			     "INSERT INTO steps (id, workflow_id, position,"
			     " step_id, task_type, provider, status,"
			     " created_at, updated_at) VALUES ('s9', 'w1', 0,"
			     " 'again', 'T', 'p', 'PENDING', 1, 1)",
			     NULL, NULL, NULL),
		SQLITE_OK);
	/* A step of no workflow. */
	assert_int_not_equal(
		sqlite3_exec(db,
			     "INSERT INTO steps (id, workflow_id, position,"
			     " step_id, task_type, provider, status,"
			     " created_at, updated_at) VALUES ('s9', 'nope',"
			     " 0, 'x', 'T', 'p', 'PENDING', 1, 1)",
			     NULL, NULL, NULL),
		SQLITE_OK);
	/* Deleting a workflow still deletes its steps. */
	exec_ok(db, "DELETE FROM workflows WHERE id = 'w1'");
	expect_dump(db, "SELECT id FROM steps ORDER BY id", "s4\n");
	sqlite3_close(db);
}

static const char *ALL_WORKFLOWS =
	"SELECT rowid, * FROM workflows ORDER BY rowid";
static const char *WORKFLOWS_SCHEMA =
	"SELECT type, name, sql FROM sqlite_schema WHERE tbl_name ="
	" 'workflows' ORDER BY name";

/* 007 rebuilds workflows, which steps refer to: no step may go with it. */
static void test_workflows_rebuild_keeps_every_row(void **state)
{
	sqlite3 *db = open_db("old.db");
	struct kiln_err err = {0};
	char *wf_before, *wf_after, *st_before, *st_after;

	(void)state;
	migrate_until(db, "007");
	exec_ok(db, STEPS_SQL);
	exec_ok(db, "UPDATE workflows SET description = 'd', config = '{\"a\":1}',"
		    " origin_tenant_id = 't', webhook_url = 'http://x',"
		    " errors = '[\"e\"]', template_id = 'tp', template_version = 2,"
		    " run_inputs = '{\"i\":1}', batch_id = 'b', deleted_at = 9"
		    " WHERE id = 'w2'");
	/* A gap in the rowids, which the copy must keep. */
	exec_ok(db, "INSERT INTO workflows (id, name, status, origin_instance,"
		    " total_steps, created_at, updated_at) VALUES ('w3', 'x',"
		    " 'PAUSED', 'api', 0, 5, 5); DELETE FROM workflows WHERE"
		    " id = 'w3'; INSERT INTO workflows (id, name, status,"
		    " origin_instance, total_steps, created_at, updated_at)"
		    " VALUES ('w4', 'y', 'CANCELLED', 'api', 0, 6, 6)");
	wf_before = dump(db, ALL_WORKFLOWS);
	st_before = dump(db, ALL_STEPS);

	assert_int_equal(kiln_migrate(db, &err), KILN_OK);
	wf_after = dump(db, ALL_WORKFLOWS);
	st_after = dump(db, ALL_STEPS);
	assert_string_equal(wf_after, wf_before);
	assert_string_equal(st_after, st_before);
	assert_non_null(strstr(st_after, "s4"));

	expect_dump(db, "SELECT name FROM schema_migrations WHERE name"
		       " LIKE '007%'", "007_workflows_status_check.sql\n");
	expect_dump(db, "PRAGMA integrity_check", "ok\n");
	expect_dump(db, "PRAGMA foreign_key_check", "");
	/* Foreign keys are on again for the connection's next writes. */
	expect_dump(db, "PRAGMA foreign_keys", "1\n");
	free(wf_before);
	free(wf_after);
	free(st_before);
	free(st_after);
	sqlite3_close(db);
}

static void test_rebuilt_workflows_schema_is_a_new_one(void **state)
{
	sqlite3 *old = open_db("old.db"), *fresh = open_db("new.db");
	struct kiln_err err = {0};
	char *a, *b;

	(void)state;
	migrate_until(old, "007");
	exec_ok(old, STEPS_SQL);
	assert_int_equal(kiln_migrate(old, &err), KILN_OK);
	assert_int_equal(kiln_migrate(fresh, &err), KILN_OK);
	a = dump(old, WORKFLOWS_SCHEMA);
	b = dump(fresh, WORKFLOWS_SCHEMA);
	assert_string_equal(a, b);
	/* No temporary table for the status check, and no IN list. */
	assert_null(strstr(a, "status IN"));
	assert_non_null(strstr(a, "workflows_by_status"));
	free(a);
	free(b);
	a = dump(old, "SELECT sql FROM sqlite_schema WHERE name = 'steps'");
	assert_non_null(strstr(a, "REFERENCES workflows (id)"));
	free(a);
	sqlite3_close(old);
	sqlite3_close(fresh);
}

static int workflow_status_accepted(sqlite3 *db, const char *status)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "UPDATE workflows SET status = '%s'"
		 " WHERE id = 'w1'", status);
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static void test_workflow_constraints_still_hold(void **state)
{
	static const char *const statuses[] = {"PENDING",   "RUNNING",
					       "PAUSED",    "COMPLETED",
					       "FAILED",    "CANCELLED"};
	sqlite3 *db = open_db("old.db");
	struct kiln_err err = {0};
	char *out;
	size_t i;

	(void)state;
	migrate_until(db, "007");
	exec_ok(db, STEPS_SQL);
	assert_int_equal(kiln_migrate(db, &err), KILN_OK);

	for (i = 0; i < sizeof(statuses) / sizeof(*statuses); i++)
		assert_true(workflow_status_accepted(db, statuses[i]));
	assert_false(workflow_status_accepted(db, "READY"));
	assert_false(workflow_status_accepted(db, "running"));
	assert_false(workflow_status_accepted(db, ""));
	/* A workflow id used twice. */
	assert_int_not_equal(
		sqlite3_exec(db,
			     "INSERT INTO workflows (id, name, status,"
			     " origin_instance, total_steps, created_at,"
			     " updated_at) VALUES ('w2', 'again', 'RUNNING',"
			     " 'api', 1, 1, 1)",
			     NULL, NULL, NULL),
		SQLITE_OK);
	/* Deleting a workflow still deletes its steps, and only its. */
	exec_ok(db, "DELETE FROM workflows WHERE id = 'w1'");
	expect_dump(db, "SELECT id FROM steps ORDER BY id", "s4\n");
	/* The status filter of the list still reads its index, and its
	 * count reads nothing else (migration 008). */
	out = dump(db, "EXPLAIN QUERY PLAN SELECT count(*) FROM workflows"
		       " WHERE status = 'COMPLETED'");
	assert_non_null(strstr(out, "workflows_by_status"));
	free(out);
	out = dump(db, "EXPLAIN QUERY PLAN SELECT count(*) FROM workflows"
		       " WHERE status = 'COMPLETED' AND is_deleted = 0");
	assert_non_null(strstr(out, "COVERING INDEX workflows_by_status"));
	free(out);
	/* ... and the newest first come in the index's order. */
	out = dump(db, "EXPLAIN QUERY PLAN SELECT id FROM workflows"
		       " WHERE status = 'COMPLETED' AND is_deleted = 0"
		       " ORDER BY created_at DESC LIMIT 1");
	assert_non_null(strstr(out, "workflows_by_status"));
	assert_null(strstr(out, "TEMP B-TREE"));
	free(out);
	sqlite3_close(db);
}

/* The scans of RUNNING steps (start-up, the lease timer) use the index. */
static void test_running_steps_are_found_by_index(void **state)
{
	sqlite3 *db = open_db("new.db");
	struct kiln_err err = {0};
	char *plan;

	(void)state;
	assert_int_equal(kiln_migrate(db, &err), KILN_OK);
	plan = dump(db, "EXPLAIN QUERY PLAN SELECT id FROM steps WHERE"
			" status = 'RUNNING' AND (?1 = 0 OR lease_expires_at"
			" IS NULL OR lease_expires_at < ?2)");
	assert_non_null(strstr(plan, "steps_running"));
	free(plan);
	sqlite3_close(db);
}

/* The lists, newest first, as kilnd asks them (store_workflows.c,
 * store_deliveries.c, store_templates.c, store_batches.c). */
static const char *const NEWEST_FIRST[] = {
	"SELECT id FROM workflows WHERE is_deleted = 0"
	" ORDER BY created_at DESC, rowid DESC LIMIT 50",
	"SELECT id FROM workflows WHERE status = 'RUNNING' AND is_deleted = 0"
	" ORDER BY created_at DESC, rowid DESC LIMIT 50",
	"SELECT id FROM workflows WHERE origin_tenant_id = 't'"
	" AND is_deleted = 0 ORDER BY created_at DESC, rowid DESC LIMIT 50",
	"SELECT id FROM webhook_deliveries"
	" ORDER BY created_at DESC, rowid DESC LIMIT 50",
	"SELECT id FROM webhook_deliveries WHERE workflow_id = 'w1'"
	" ORDER BY created_at DESC, rowid DESC LIMIT 50",
	"SELECT id FROM templates ORDER BY created_at DESC, rowid DESC"
	" LIMIT 50",
	"SELECT id FROM templates WHERE tenant_id = 't'"
	" ORDER BY created_at DESC, rowid DESC LIMIT 50",
	"SELECT id FROM batches ORDER BY created_at DESC, rowid DESC LIMIT 50",
};

static const char *INDEXES_SQL =
	"SELECT name, sql FROM sqlite_schema WHERE type = 'index'"
	" AND sql IS NOT NULL ORDER BY name";

/* Migration 009: a store with the DESC indexes keeps every row, ends with
 * a new store's indexes, and each list walks its index backwards, where
 * it used to sort the rows of equal created_at in a temporary b-tree. */
static void test_created_indexes_ascend(void **state)
{
	sqlite3 *old = open_db("old.db"), *fresh = open_db("new.db");
	struct kiln_err err = {0};
	char *before, *after, *a, *b, *plan;
	size_t i;

	(void)state;
	migrate_until(old, "009");
	exec_ok(old, STEPS_SQL);
	before = dump(old, "SELECT rowid, * FROM workflows ORDER BY rowid");
	plan = dump(old, "EXPLAIN QUERY PLAN SELECT id FROM workflows"
			 " WHERE is_deleted = 0"
			 " ORDER BY created_at DESC, rowid DESC LIMIT 50");
	assert_non_null(strstr(plan, "TEMP B-TREE"));
	free(plan);

	assert_int_equal(kiln_migrate(old, &err), KILN_OK);
	assert_int_equal(kiln_migrate(fresh, &err), KILN_OK);
	after = dump(old, "SELECT rowid, * FROM workflows ORDER BY rowid");
	assert_string_equal(after, before);
	a = dump(old, INDEXES_SQL);
	b = dump(fresh, INDEXES_SQL);
	assert_string_equal(a, b);
	assert_null(strstr(a, "DESC"));
	for (i = 0; i < sizeof(NEWEST_FIRST) / sizeof(*NEWEST_FIRST); i++) {
		char sql[512];

		snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s",
			 NEWEST_FIRST[i]);
		plan = dump(old, sql);
		if (strstr(plan, "USING INDEX") == NULL ||
		    strstr(plan, "TEMP B-TREE") != NULL)
			fail_msg("%s:\n%s", NEWEST_FIRST[i], plan);
		free(plan);
	}
	/* Newest first, ties by rowid, as before. */
	exec_ok(old, "INSERT INTO workflows (id, name, status,"
		     " origin_instance, total_steps, created_at, updated_at)"
		     " VALUES ('w5', 'tie', 'RUNNING', 'api', 0, 3, 3)");
	expect_dump(old,
		    "SELECT id FROM workflows WHERE is_deleted = 0"
		    " ORDER BY created_at DESC, rowid DESC",
		    "w5\nw2\nw1\n");
	expect_dump(old, "PRAGMA integrity_check", "ok\n");
	free(a);
	free(b);
	free(before);
	free(after);
	sqlite3_close(old);
	sqlite3_close(fresh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upgrade_keeps_every_step,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_upgraded_schema_is_a_new_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_constraints_still_hold,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_running_steps_are_found_by_index, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_workflows_rebuild_keeps_every_row, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_rebuilt_workflows_schema_is_a_new_one, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_workflow_constraints_still_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_created_indexes_ascend,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
