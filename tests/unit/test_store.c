/*
 * test_store.c - the SQLite store on real files: insert and render,
 * list filters and order, guarded transitions, the engine's advance /
 * claim / finish cycle, crash recovery, and persistence across reopen.
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

#include "kiln/config.h"
#include "kiln/store.h"
#include "kiln/workflow_validate.h"

static char data_dir[64];
static const struct kiln_attempt_end ok_end = {"succeeded", 200, NULL,
						 NULL};
#define END_FAILED(msg) \
	(&(struct kiln_attempt_end){"transient_error", 503, (msg), NULL})
static struct kiln_config cfg;

static const char *FASHION =
	"{\"name\":\"Fashion Image Pipeline\",\"origin_instance\":\"api-prod\","
	"\"steps\":[{\"id\":\"generate\",\"task_type\":\"GENERATION\","
	"\"config\":{\"prompt\":\"dress\",\"width\":1024}},"
	"{\"id\":\"refine\",\"task_type\":\"REFINE\",\"depends_on\":"
	"[\"generate\"],\"input_mappings\":[{\"from_step\":\"generate\","
	"\"from_field\":\"result_image_path\",\"to_field\":"
	"\"base_image_url\"}]}]}";

static int setup(void **state)
{
	struct kiln_err err = {0};

	snprintf(data_dir, sizeof(data_dir), "/tmp/kiln-store-XXXXXX");
	assert_non_null(mkdtemp(data_dir));
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	assert_int_equal(kiln_store_init(data_dir, &err), KILN_OK);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	kiln_store_shutdown();
	kiln_config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", data_dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Validates body, gives it an id and status, inserts it; returns id. */
static char *insert(const char *body_text, const char *status,
		    const char *tenant)
{
	struct kiln_err err = {0};
	json_t *detail = json_array();
	json_t *body = json_loads(body_text, 0, NULL);
	json_t *wf;
	char id[KILN_UUID_LEN];

	assert_non_null(body);
	wf = kiln_workflow_validate_create(body, &cfg, detail);
	assert_int_equal(json_array_size(detail), 0);
	assert_non_null(wf);
	kiln_uuid_new(id);
	json_object_set_new(wf, "id", json_string(id));
	json_object_set_new(wf, "status", json_string(status));
	if (tenant)
		json_object_set_new(wf, "origin_tenant_id",
				    json_string(tenant));
	assert_int_equal(kiln_store_insert_workflow(kiln_store_thread(NULL),
						    wf, NULL, NULL, NULL, &err),
			 KILN_OK);
	json_decref(wf);
	json_decref(body);
	json_decref(detail);
	return strdup(id);
}

static json_t *get(const char *id)
{
	struct kiln_err err = {0};
	json_t *wf = NULL;

	assert_int_equal(kiln_store_get_workflow(kiln_store_thread(NULL), id,
						 NULL, &wf, &err),
			 KILN_OK);
	return wf;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The stored completed_steps column (a GET or a list counts the steps
 * instead), read on a connection of its own. */
static sqlite3_int64 stored_completed_steps(const char *id)
{
	char path[128];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	sqlite3_int64 n = -1;

	snprintf(path, sizeof(path), "%s/kiln.db", data_dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT completed_steps FROM"
					    " workflows WHERE id = ?1",
					    -1, &s, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

static const char *step_status(const json_t *wf, size_t i)
{
	return str(json_array_get(json_object_get(wf, "steps"), i), "status");
}

/* The attempts listed for the workflow's step i. */
static json_t *step_attempts(const json_t *wf, size_t i)
{
	return json_object_get(json_array_get(json_object_get(wf, "steps"), i),
			       "attempts");
}

static void test_insert_renders_every_field(void **state)
{
	static const char *const wf_fields[] = {
		"id", "name", "description", "status", "total_steps",
		"completed_steps", "progress", "current_step", "final_step_id",
		"final_step_result", "canvas_task_id", "config",
		"suppress_subtask_events", "origin_instance", "origin_zone",
		"origin_tenant_id", "origin_reference", "webhook_url",
		"error_message", "errors", "started_at", "completed_at",
		"created_at", "updated_at", "is_deleted", "deleted_at", "steps"};
	static const char *const step_fields[] = {
		"id", "step_id", "task_type", "config", "provider_config",
		"active_provider_capabilities", "fallback_provider_type",
		"fallback_provider_config", "fallback_provider_capabilities",
		"dependencies", "input_mappings", "status", "task_id", "result",
		"error_message", "started_at", "completed_at", "retry_count",
		"max_retries", "created_at", "updated_at", "provider"};
	char *id = insert(FASHION, "PENDING", NULL);
	json_t *wf = get(id), *step;
	size_t i;

	for (i = 0; i < sizeof(wf_fields) / sizeof(wf_fields[0]); i++)
		assert_non_null(json_object_get(wf, wf_fields[i]));
	step = json_array_get(json_object_get(wf, "steps"), 1);
	for (i = 0; i < sizeof(step_fields) / sizeof(step_fields[0]); i++)
		assert_non_null(json_object_get(step, step_fields[i]));
	assert_string_equal(str(wf, "status"), "PENDING");
	assert_string_equal(str(wf, "final_step_id"), "refine");
	assert_int_equal(json_integer_value(json_object_get(wf, "total_steps")),
			 2);
	assert_true(json_is_true(json_object_get(wf,
						 "suppress_subtask_events")));
	assert_string_equal(str(step, "step_id"), "refine");
	assert_string_equal(str(step, "provider"), "dryrun");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(step, "dependencies"), 0)),
			    "generate");
	assert_true(json_is_null(json_object_get(
		json_array_get(json_object_get(step, "input_mappings"), 0),
		"transform")));
	assert_int_equal(strlen(str(wf, "created_at")), 24);
	json_decref(wf);
	free(id);
}

static void test_list_order_filters_and_scope(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_wf_filter f = {.limit = 50};
	struct kiln_scope t1 = {.tenant = "t1"};
	struct kiln_err err = {0};
	char *a = insert(FASHION, "PENDING", "t1");
	char *b = insert(FASHION, "RUNNING", "t2");
	char *c = insert(FASHION, "PENDING", "t1");
	json_t *list = NULL, *items;

	assert_int_equal(kiln_store_list_workflows(st, &f, NULL, &list, &err),
			 KILN_OK);
	items = json_object_get(list, "workflows");
	assert_int_equal(json_integer_value(json_object_get(list, "total")),
			 3);
	assert_string_equal(str(json_array_get(items, 0), "id"), c);
	assert_string_equal(str(json_array_get(items, 2), "id"), a);
	json_decref(list);

	f.status = "RUNNING";
	assert_int_equal(kiln_store_list_workflows(st, &f, NULL, &list, &err),
			 KILN_OK);
	assert_int_equal(json_integer_value(json_object_get(list, "total")),
			 1);
	assert_string_equal(
		str(json_array_get(json_object_get(list, "workflows"), 0),
		    "id"),
		b);
	json_decref(list);

	f.status = NULL;
	f.skip = 1;
	f.limit = 1;
	assert_int_equal(kiln_store_list_workflows(st, &f, &t1, &list, &err),
			 KILN_OK);
	assert_int_equal(json_integer_value(json_object_get(list, "total")),
			 2);
	assert_int_equal(json_array_size(json_object_get(list, "workflows")),
			 1);
	assert_string_equal(
		str(json_array_get(json_object_get(list, "workflows"), 0),
		    "id"),
		a);
	json_decref(list);

	/* Another tenant's workflow is invisible to t1. */
	assert_int_equal(kiln_store_get_workflow(st, b, &t1, &list, &err),
			 KILN_ENOTFOUND);
	free(a);
	free(b);
	free(c);
}

static void test_transitions_are_guarded(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	char *id = insert(FASHION, "PENDING", NULL);
	json_t *wf;

	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_PAUSE, NULL, &err),
			 KILN_ECONFLICT);
	assert_non_null(strstr(err.msg, "is PENDING"));
	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_START, NULL, &err),
			 KILN_OK);
	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_START, NULL, &err),
			 KILN_ECONFLICT);
	assert_non_null(strstr(err.msg, "is RUNNING"));
	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_CANCEL, NULL, &err),
			 KILN_OK);
	wf = get(id);
	assert_string_equal(str(wf, "status"), "CANCELLED");
	assert_string_equal(step_status(wf, 0), "CANCELLED");
	assert_string_equal(step_status(wf, 1), "CANCELLED");
	assert_false(json_is_null(json_object_get(wf, "completed_at")));
	json_decref(wf);
	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_RESUME, NULL, &err),
			 KILN_ECONFLICT);
	free(id);
}

/* Runs advance and claims the single ready step; returns the claim. */
static json_t *advance_and_claim(const char *wf_id)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	json_t *ready = NULL, *claim = NULL;

	assert_int_equal(kiln_store_advance(st, wf_id, &ready, &err), KILN_OK);
	assert_int_equal(json_array_size(ready), 1);
	assert_int_equal(
		kiln_store_claim_step(st,
				      json_string_value(json_array_get(ready, 0)),
				      "node", kiln_now_ms() + 1000, &claim,
				      &err),
		KILN_OK);
	/* A second claim of the same step fails: one runner at a time. */
	{
		json_t *again = NULL;

		assert_int_equal(
			kiln_store_claim_step(
				st, json_string_value(json_array_get(ready, 0)),
				"other", kiln_now_ms() + 1000, &again, &err),
			KILN_ECONFLICT);
	}
	json_decref(ready);
	return claim;
}

static void test_engine_cycle_to_completed(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	struct kiln_claimer who = {"me", INT64_MAX};
	char *id = insert(FASHION, "RUNNING", NULL);
	json_t *claim, *result, *wf, *attempts, *claims = NULL;

	claim = advance_and_claim(id);
	assert_string_equal(str(claim, "step_id"), "generate");
	wf = get(id);
	assert_string_equal(str(wf, "current_step"), "generate");
	json_decref(wf);
	result = json_pack("{ss}", "result_image_path", "/x.png");
	/* The success and the claim of what it lets run: one transaction. */
	assert_int_equal(kiln_store_finish_step(st, str(claim, "uuid"),
						str(claim, "task_id"), result,
						&ok_end, &who, &claims, &err),
			 KILN_OK);
	/* A late duplicate answer for the same attempt changes nothing. */
	assert_int_equal(kiln_store_finish_step(st, str(claim, "uuid"),
						str(claim, "task_id"), NULL,
						END_FAILED("late"), NULL, NULL,
						&err),
			 KILN_ECONFLICT);
	json_decref(claim);

	assert_int_equal(json_array_size(claims), 1);
	claim = json_incref(json_array_get(claims, 0));
	json_decref(claims);
	assert_string_equal(str(claim, "step_id"), "refine");
	wf = get(id);
	assert_string_equal(step_status(wf, 1), "RUNNING");
	/* The advance counted the step it followed. */
	assert_int_equal(
		json_integer_value(json_object_get(wf, "completed_steps")), 1);
	assert_int_equal(stored_completed_steps(id), 1);
	/* Its first attempt started with the claim. */
	attempts = step_attempts(wf, 1);
	assert_int_equal(json_array_size(attempts), 1);
	assert_string_equal(str(json_array_get(attempts, 0), "outcome"),
			    "running");
	json_decref(wf);
	/* The claim carries the results of completed steps for mappings. */
	assert_string_equal(
		str(json_object_get(json_object_get(claim, "results"),
				    "generate"),
		    "result_image_path"),
		"/x.png");
	assert_int_equal(kiln_store_finish_step(st, str(claim, "uuid"),
						str(claim, "task_id"), result,
						&ok_end, &who, &claims, &err),
			 KILN_OK);
	json_decref(claim);
	assert_int_equal(json_array_size(claims), 0);
	json_decref(claims);
	wf = get(id);
	assert_string_equal(str(wf, "status"), "COMPLETED");
	assert_int_equal(
		json_integer_value(json_object_get(wf, "completed_steps")), 2);
	assert_int_equal(stored_completed_steps(id), 2);
	assert_true(json_real_value(json_object_get(wf, "progress")) == 100.0);
	assert_string_equal(str(json_object_get(wf, "final_step_result"),
				"result_image_path"),
			    "/x.png");
	assert_string_equal(str(json_array_get(step_attempts(wf, 1), 0),
				"outcome"),
			    "succeeded");
	json_decref(wf);
	json_decref(result);
	free(id);
}

static void test_failure_then_resume(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	char *id = insert(FASHION, "RUNNING", NULL);
	json_t *claim, *wf, *ok = json_pack("{ss}", "result_image_path", "p");

	claim = advance_and_claim(id);
	assert_int_equal(kiln_store_finish_step(st, str(claim, "uuid"),
						str(claim, "task_id"), ok,
						&ok_end, NULL, NULL, &err),
			 KILN_OK);
	json_decref(claim);
	claim = advance_and_claim(id);
	assert_int_equal(kiln_store_finish_step(st, str(claim, "uuid"),
						str(claim, "task_id"), NULL,
						END_FAILED("HTTP 500"), NULL, NULL, &err),
			 KILN_OK);
	json_decref(claim);
	wf = get(id);
	assert_string_equal(str(wf, "status"), "FAILED");
	assert_string_equal(str(wf, "error_message"),
			    "step 'refine' failed: HTTP 500");
	assert_int_equal(json_array_size(json_object_get(wf, "errors")), 1);
	assert_string_equal(step_status(wf, 1), "FAILED");
	json_decref(wf);

	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_RESUME, NULL, &err),
			 KILN_OK);
	wf = get(id);
	assert_string_equal(str(wf, "status"), "RUNNING");
	assert_true(json_is_null(json_object_get(wf, "error_message")));
	assert_int_equal(json_array_size(json_object_get(wf, "errors")), 0);
	assert_string_equal(step_status(wf, 0), "COMPLETED");
	assert_string_equal(step_status(wf, 1), "PENDING");
	json_decref(wf);
	/* Only the failed step runs again. */
	claim = advance_and_claim(id);
	assert_string_equal(str(claim, "step_id"), "refine");
	json_decref(claim);
	json_decref(ok);
	free(id);
}

static void test_recover_and_reopen(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	char *id = insert(FASHION, "RUNNING", NULL);
	json_t *claim, *running = NULL, *steps = NULL, *wf, *attempts;
	struct kiln_next_attempt next = {kiln_now_ms() + 5000, 1, NULL};
	json_t *job = json_pack("{ss ss}", "id", "job-1", "status_url",
				"http://127.0.0.1:9/s");
	char uuid[KILN_UUID_LEN];
	size_t i;
	int found = 0;

	claim = advance_and_claim(id);
	kiln_strlcpy(uuid, str(claim, "uuid"), sizeof(uuid));
	/* A failed first attempt waits for its retry... */
	assert_int_equal(kiln_store_end_attempt(st, uuid,
						str(claim, "task_id"),
						END_FAILED("HTTP 503"), &next,
						&err),
			 KILN_OK);
	/* ...then the second one submits a job. */
	assert_int_equal(kiln_store_start_attempt(st, uuid,
						  str(claim, "task_id"), &err),
			 KILN_OK);
	assert_int_equal(kiln_store_record_job(st, uuid, str(claim, "task_id"),
					       job, &err),
			 KILN_OK);
	/* A stale attempt id changes nothing. */
	assert_int_equal(kiln_store_record_job(st, uuid, "not-the-task", job,
					       &err),
			 KILN_ECONFLICT);
	json_decref(claim);
	/* "Crash": close every connection, reopen, recover. */
	kiln_store_shutdown();
	assert_int_equal(kiln_store_init(data_dir, &err), KILN_OK);
	st = kiln_store_thread(NULL);
	assert_int_equal(kiln_store_running_workflows(st, &running, &err),
			 KILN_OK);
	for (i = 0; i < json_array_size(running); i++)
		found |= strcmp(json_string_value(json_array_get(running, i)),
				id) == 0;
	assert_true(found);
	json_decref(running);
	/* The lease has not expired: only a forced take-over gets it. */
	assert_int_equal(kiln_store_running_steps(st, 0, &steps, &err),
			 KILN_OK);
	assert_true(json_array_size(steps) >= 1);
	json_decref(steps);
	assert_int_equal(kiln_store_take_over(st, uuid, "me", 1, 1, &claim,
					      &err),
			 KILN_ECONFLICT);
	assert_int_equal(kiln_store_take_over(st, uuid, "me",
					      kiln_now_ms() + 1000, 0, &claim,
					      &err),
			 KILN_OK);
	/* The job survives the crash, so it is polled, not resubmitted. */
	assert_string_equal(str(json_object_get(claim, "job"), "id"), "job-1");
	assert_int_equal(
		json_integer_value(json_object_get(claim, "retry_count")), 1);
	json_decref(claim);
	wf = get(id);
	attempts = step_attempts(wf, 0);
	assert_int_equal(json_array_size(attempts), 2);
	assert_string_equal(str(json_array_get(attempts, 0), "outcome"),
			    "transient_error");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(attempts, 0), "http_status")),
			 503);
	assert_string_equal(str(json_array_get(attempts, 1), "outcome"),
			    "running");
	assert_string_equal(str(json_array_get(attempts, 1), "job_id"),
			    "job-1");
	json_decref(wf);
	json_decref(job);
	free(id);
}

static void test_soft_delete(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_wf_filter f = {.limit = 1000};
	struct kiln_err err = {0};
	char *id = insert(FASHION, "RUNNING", NULL);
	json_t *steps = NULL, *list = NULL, *wf;
	int64_t before;

	assert_int_equal(kiln_store_soft_delete_workflow(st, id, NULL, &steps,
							 &err),
			 KILN_ECONFLICT);
	assert_non_null(strstr(err.msg, "is RUNNING"));
	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_CANCEL, NULL, &err),
			 KILN_OK);
	assert_int_equal(kiln_store_list_workflows(st, &f, NULL, &list, &err),
			 KILN_OK);
	before = json_integer_value(json_object_get(list, "total"));
	json_decref(list);
	assert_int_equal(kiln_store_soft_delete_workflow(st, id, NULL, &steps,
							 &err),
			 KILN_OK);
	assert_int_equal(json_array_size(steps), 2);
	json_decref(steps);
	assert_int_equal(kiln_store_list_workflows(st, &f, NULL, &list, &err),
			 KILN_OK);
	assert_int_equal(json_integer_value(json_object_get(list, "total")),
			 before - 1);
	json_decref(list);
	wf = get(id);
	assert_true(json_is_true(json_object_get(wf, "is_deleted")));
	assert_false(json_is_null(json_object_get(wf, "deleted_at")));
	json_decref(wf);
	assert_int_equal(kiln_store_workflow_action(st, id, NULL,
						    KILN_WF_ACTION_START, NULL, &err),
			 KILN_ECONFLICT);
	assert_non_null(strstr(err.msg, "deleted"));
	free(id);
}

/* step's claim as a read after the commit finds it. */
static json_t *claim_read_back(const char *step_uuid)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	json_t *claim = NULL;

	assert_int_equal(kiln_store_begin_read(st, &err), KILN_OK);
	assert_int_equal(kiln_store_load_claim(st, step_uuid, &claim, &err),
			 KILN_OK);
	kiln_store_rollback(st);
	return claim;
}

/* Text every escape of which jansson and the 201's writer must agree on:
 * quotes, backslashes, control characters, '/', non-ASCII, a real. */
static const char *ESCAPES =
	"{\"name\":\"q\\\"b\\\\s/\\u0001\\u001f\\t\\n\\u00e9\\u20ac"
	"\\ud83d\\ude00\",\"origin_instance\":\"\\u00fcber/\\\\x\","
	"\"description\":\"\\b\\f\\r\\u007f\","
	"\"config\":{\"k\\\"\":[1.5,-2,1e300,null,true,\"x\\u0002y\"]},"
	"\"steps\":[{\"id\":\"gen\\u00e9\",\"task_type\":\"GENERATION\","
	"\"config\":{\"prompt\":\"a \\\"dress\\\"\",\"f\":2.0}},"
	"{\"id\":\"refine\",\"task_type\":\"REFINE\",\"depends_on\":"
	"[\"gen\\u00e9\"]}]}";

/* Inserts body RUNNING with claims; checks the answer is, byte for byte,
 * what a read right after the commit renders. */
static void insert_and_compare(const char *body_text, const char *first)
{
	struct kiln_err err = {0};
	struct kiln_claimer who = {"me", INT64_MAX};
	json_t *detail = json_array();
	json_t *body = json_loads(body_text, 0, NULL);
	json_t *wf, *claims = NULL, *rendered, *steps, *back;
	char id[KILN_UUID_LEN];
	char *text = NULL, *back_text;

	assert_non_null(body);
	wf = kiln_workflow_validate_create(body, &cfg, detail);
	if (wf == NULL) {
		char *why = json_dumps(detail, 0);

		fail_msg("refused: %s", why);
	}
	kiln_uuid_new(id);
	json_object_set_new(wf, "id", json_string(id));
	json_object_set_new(wf, "status", json_string("RUNNING"));
	assert_int_equal(kiln_store_insert_workflow(kiln_store_thread(NULL),
						    wf, &who, &claims, &text,
						    &err),
			 KILN_OK);
	assert_int_equal(json_array_size(claims), 1);
	assert_string_equal(str(json_array_get(claims, 0), "step_id"), first);
	back = claim_read_back(str(json_array_get(claims, 0), "uuid"));
	assert_true(json_equal(json_array_get(claims, 0), back));
	json_decref(back);
	assert_non_null(text);
	rendered = json_loads(text, 0, NULL);
	assert_non_null(rendered);
	assert_string_equal(str(rendered, "id"), id);
	assert_string_equal(str(rendered, "status"), "RUNNING");
	assert_string_equal(str(rendered, "current_step"), first);
	/* Built from what was written: what a read finds, in the same
	 * bytes as the read's answer. */
	assert_int_equal(kiln_store_get_workflow(kiln_store_thread(NULL), id,
						 NULL, &back, &err),
			 KILN_OK);
	assert_true(json_equal(rendered, back));
	back_text = json_dumps(back, JSON_COMPACT);
	assert_string_equal(text, back_text);
	free(back_text);
	json_decref(back);
	steps = json_object_get(rendered, "steps");
	assert_string_equal(str(json_array_get(steps, 0), "status"), "RUNNING");
	assert_string_equal(str(json_array_get(steps, 1), "status"), "PENDING");
	json_decref(claims);
	json_decref(rendered);
	free(text);
	json_decref(wf);
	json_decref(body);
	json_decref(detail);
}

/* Create claims the first steps and renders the answer in its own
 * transaction. */
static void test_insert_claims_and_renders(void **state)
{
	(void)state;
	insert_and_compare(FASHION, "generate");
	insert_and_compare(ESCAPES, "gen\xc3\xa9");
}

/* A claim is whole when its transaction commits, and it is what a read
 * of the step after the commit finds, whether read by the claiming
 * UPDATE or built from the inserted values. */
static void test_claims_are_whole_at_commit(void **state)
{
	char *id = insert(FASHION, "RUNNING", NULL);
	json_t *claim = advance_and_claim(id), *back;

	(void)state;
	assert_string_equal(str(claim, "step_id"), "generate");
	assert_string_equal(str(claim, "workflow_id"), id);
	back = claim_read_back(str(claim, "uuid"));
	assert_true(json_equal(claim, back));
	json_decref(back);
	json_decref(claim);
	free(id);
}

/* SQLite keeps no allocation statistics (a process-wide mutex on every
 * allocation otherwise): the store configures it before SQLite starts. */
static void test_sqlite_keeps_no_memory_statistics(void **state)
{
	char *id;

	(void)state;
	id = insert(FASHION, "RUNNING", NULL);
	assert_non_null(id);
	assert_int_equal(sqlite3_memory_used(), 0);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_renders_every_field,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_list_order_filters_and_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transitions_are_guarded,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_cycle_to_completed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_then_resume, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_recover_and_reopen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_soft_delete, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_claims_are_whole_at_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert_claims_and_renders,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sqlite_keeps_no_memory_statistics, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
