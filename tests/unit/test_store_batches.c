/*
 * test_store_batches.c - batches, their executions and their scheduler on
 * real SQLite files (src/store_batches.c, src/store_batch_sched.c,
 * src/store_runs.c):
 *   - insert and render (GET), executions and their filters and pages,
 *     the batch list's filters, scope and pages;
 *   - kiln_store_dispatch_batches: concurrency_limit, the global
 *     max_running, max_starts, HIGH before NORMAL before LOW, batches of
 *     one priority in turn, a build that fails (the execution FAILED with
 *     INVALID_INPUT, the batch goes on);
 *   - counts and statuses through PENDING, RUNNING, COMPLETED,
 *     COMPLETED_WITH_ERRORS, FAILED and CANCELLED, execution outputs,
 *     errors, durations, runs and failed_execution_ids;
 *   - cancel, retry, continue_on_error false and kiln_store_batch_aborts;
 *   - batch.completed and batch.execution.* in the webhook outbox;
 *   - the batch-change and workflow-end hooks, after their commits;
 *   - Idempotency-Keys of runs and batches.
 *
 * The template is validated by kiln_template_validate and stored with
 * kiln_store_insert_template; executions are started by the scheduler's
 * store call with kiln_batch_workflow as the build callback, and their
 * workflows end through the engine's store calls (finish_step, cancel),
 * as test_store_outbox.c drives them.
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

#include "kiln/batch_exec.h"
#include "kiln/config.h"
#include "kiln/idempotency.h"
#include "kiln/store.h"
#include "kiln/template_validate.h"

#define TENANT "acme"
#define HOOK_URL "https://hooks.example.test/batches"
#define PRIO_HIGH 0
#define PRIO_NORMAL 1
#define PRIO_LOW 2
/* Big enough not to matter. */
#define MANY 1000

static char data_dir[64];
static struct kiln_config cfg;
static json_t *def;        /* tpl-1's definition */
static json_t *all_claims; /* every claim dispatch handed out */
static int build_calls;
static const struct kiln_claimer who = {"me", INT64_MAX};
static const struct kiln_attempt_end ok_end = {"succeeded", 200, NULL,
						 NULL};
static const struct kiln_attempt_end refused = {
	"permanent_error", 400, "prompt refused", "prompt"};

/* prompt (string, required) and image (asset, required); one GENERATION
 * step, so one step end ends an execution's workflow. */
static const char *const PRODUCT =
	"{\"name\": \"Product shot\","
	" \"inputs\": {"
	"  \"prompt\": {\"type\": \"string\", \"required\": true},"
	"  \"image\": {\"type\": \"asset\", \"required\": true}},"
	" \"steps\": [{\"id\": \"generate\", \"task_type\": \"GENERATION\","
	"  \"config\": {\"prompt\": \"{{inputs.prompt}}\","
	"   \"image\": \"{{inputs.image}}\"}}]}";

static struct kiln_store *st(void)
{
	struct kiln_store *s = kiln_store_thread(NULL);

	assert_non_null(s);
	return s;
}

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return v;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t num(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		fail_msg("\"%s\" is not an integer", k);
	return json_integer_value(v);
}

/* Fails unless got equals the JSON text want (got borrowed). */
static void expect_json(const char *what, const json_t *got, const char *want)
{
	json_t *w = parse(want);

	if (got == NULL || !json_equal(got, w)) {
		char *text = got ? json_dumps(got, JSON_ENCODE_ANY |
							   JSON_SORT_KEYS)
				 : NULL;

		fail_msg("%s: got %s, wanted %s", what, text ? text : "NULL",
			 want);
	}
	json_decref(w);
}

static json_t *definition(const char *body_text)
{
	json_t *body = parse(body_text), *detail = json_array(), *d;

	d = kiln_template_validate(body, &cfg, detail);
	if (json_array_size(detail) != 0) {
		char *t = json_dumps(detail, 0);

		fail_msg("invalid test template: %s", t);
	}
	assert_non_null(d);
	json_decref(detail);
	json_decref(body);
	return d;
}

static void insert_template(const char *id, const char *tenant)
{
	struct kiln_err err = {0};

	assert_int_equal(kiln_store_insert_template(st(), id, tenant, def,
						    NULL, &err),
			 KILN_OK);
}

static int setup(void **state)
{
	struct kiln_err err = {0};

	(void)state;
	snprintf(data_dir, sizeof(data_dir), "/tmp/kiln-batches-XXXXXX");
	assert_non_null(mkdtemp(data_dir));
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	assert_int_equal(kiln_store_init(data_dir, &err), KILN_OK);
	def = definition(PRODUCT);
	insert_template("tpl-1", TENANT);
	all_claims = json_array();
	build_calls = 0;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	kiln_store_on_batch_change(NULL, NULL);
	kiln_store_on_workflow_end(NULL, NULL);
	json_decref(all_claims);
	json_decref(def);
	kiln_store_shutdown();
	kiln_config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", data_dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- batches ----------------------------------------------------------- */

/*
 * A batch of tpl-1 v1 with n assets (asset_id "a<i>", url
 * https://cdn.test/<i>.png, no overrides) for TENANT: NORMAL, limit 10,
 * continue_on_error, shared prompt, no webhook.  extra (JSON object text,
 * or NULL) replaces fields.  Owned.
 */
static json_t *make_batch(size_t n, const char *extra)
{
	json_t *b = parse("{\"tenant_id\": \"" TENANT "\","
			  " \"template_id\": \"tpl-1\","
			  " \"template_version\": 1, \"priority\": 1,"
			  " \"concurrency_limit\": 10,"
			  " \"continue_on_error\": true,"
			  " \"asset_input\": \"image\","
			  " \"inputs\": {\"prompt\": \"a red dress\"},"
			  " \"webhook_url\": null, \"execution_events\": false,"
			  " \"origin_instance\": null, \"origin_zone\": null,"
			  " \"origin_reference\": null, \"name\": null}");
	json_t *assets = json_array();
	char id[KILN_UUID_LEN];
	size_t i;

	kiln_uuid_new(id);
	json_object_set_new(b, "id", json_string(id));
	for (i = 0; i < n; i++) {
		char eid[KILN_UUID_LEN], aid[32], url[64];

		kiln_uuid_new(eid);
		snprintf(aid, sizeof(aid), "a%zu", i);
		snprintf(url, sizeof(url), "https://cdn.test/%zu.png", i);
		json_array_append_new(
			assets, json_pack("{s:s, s:s, s:s, s:{}}",
					  "execution_id", eid, "asset_id", aid,
					  "url", url, "inputs"));
	}
	json_object_set_new(b, "assets", assets);
	if (extra != NULL) {
		json_t *e = parse(extra);

		json_object_update(b, e);
		json_decref(e);
	}
	return b;
}

/* Asset i's overrides (JSON object text). */
static void asset_inputs(json_t *b, size_t i, const char *inputs)
{
	json_object_set_new(json_array_get(json_object_get(b, "assets"), i),
			    "inputs", parse(inputs));
}

/* Inserts b without a key; returns its id (owned); releases b. */
static char *insert_batch(json_t *b)
{
	struct kiln_err err = {0};
	json_t *rendered = NULL;
	char *existing = NULL, *id = strdup(str(b, "id"));

	assert_int_equal(kiln_store_insert_batch(st(), b, NULL, &rendered,
						 &existing, &err),
			 KILN_OK);
	assert_null(existing);
	assert_non_null(rendered);
	assert_string_equal(str(rendered, "id"), id);
	json_decref(rendered);
	json_decref(b);
	return id;
}

static char *new_batch(size_t n, const char *extra)
{
	return insert_batch(make_batch(n, extra));
}

static json_t *get_batch(const char *id)
{
	struct kiln_err err = {0};
	json_t *b = NULL;

	assert_int_equal(kiln_store_get_batch(st(), id, NULL, &b, &err),
			 KILN_OK);
	assert_non_null(b);
	return b;
}

static json_t *list_execs(const char *id, const struct kiln_exec_filter *f)
{
	struct kiln_err err = {0};
	json_t *out = NULL;

	assert_int_equal(kiln_store_list_executions(st(), id, f, NULL, &out,
						    &err),
			 KILN_OK);
	assert_non_null(out);
	return out;
}

/* Execution i (asset order) of batch id (owned). */
static json_t *exec_at(const char *id, size_t i)
{
	struct kiln_exec_filter f = {.limit = MANY};
	json_t *l = list_execs(id, &f);
	json_t *e = json_incref(json_array_get(json_object_get(l,
							       "executions"),
					       i));

	json_decref(l);
	if (e == NULL)
		fail_msg("batch %s has no execution %zu", id, i);
	return e;
}

/* Execution i's status, compared. */
static void expect_exec_status(const char *id, size_t i, const char *status)
{
	json_t *e = exec_at(id, i);

	if (strcmp(str(e, "status"), status) != 0)
		fail_msg("execution %zu is %s, not %s", i, str(e, "status"),
			 status);
	json_decref(e);
}

/* Execution i's workflow id (owned copy). */
static char *wf_of(const char *id, size_t i)
{
	json_t *e = exec_at(id, i);
	char *wf;

	if (!json_is_string(json_object_get(e, "workflow_id")))
		fail_msg("execution %zu has no workflow", i);
	wf = strdup(str(e, "workflow_id"));
	json_decref(e);
	return wf;
}

static char *exec_id_of(const char *id, size_t i)
{
	json_t *e = exec_at(id, i);
	char *x = strdup(str(e, "execution_id"));

	json_decref(e);
	return x;
}

/* The batch's status and counts are exactly these. */
static void expect_counts(const char *id, const char *status, int pending,
			  int processing, int completed, int failed,
			  int cancelled)
{
	json_t *b = get_batch(id), *a = json_object_get(b, "assets");

	if (strcmp(str(b, "status"), status) != 0 ||
	    num(a, "pending") != pending ||
	    num(a, "processing") != processing ||
	    num(a, "completed") != completed || num(a, "failed") != failed ||
	    num(a, "cancelled") != cancelled ||
	    num(a, "total") !=
		    pending + processing + completed + failed + cancelled) {
		char *t = json_dumps(a, JSON_SORT_KEYS);

		fail_msg("batch is %s %s; wanted %s pending %d processing %d"
			 " completed %d failed %d cancelled %d",
			 str(b, "status"), t, status, pending, processing,
			 completed, failed, cancelled);
	}
	json_decref(b);
}

/* ---- the scheduler and the engine ------------------------------------ */

static json_t *build(void *ctx, const json_t *definition_,
		     const json_t *batch, const json_t *asset,
		     struct kiln_err *err)
{
	build_calls++;
	return kiln_batch_workflow(ctx, definition_, batch, asset, err);
}

/* One dispatch; returns *started and keeps the claims. */
static int dispatch(int max_running, int max_starts)
{
	struct kiln_dispatch d = {&who, build, &cfg, max_running, max_starts};
	struct kiln_err err = {0};
	json_t *claims = NULL;
	int started = -1;

	assert_int_equal(kiln_store_dispatch_batches(st(), &d, &claims,
						     &started, &err),
			 KILN_OK);
	assert_non_null(claims);
	json_array_extend(all_claims, claims);
	json_decref(claims);
	return started;
}

/* The claim dispatch handed out for workflow wf (borrowed). */
static const json_t *claim_of(const char *wf)
{
	size_t i;
	json_t *c;

	json_array_foreach(all_claims, i, c)
		if (strcmp(str(c, "workflow_id"), wf) == 0)
			return c;
	fail_msg("no claim for workflow %s", wf);
	return NULL;
}

/* Ends wf's only step with a result (an image, credits). */
static void succeed(const char *wf, double credits)
{
	struct kiln_err err = {0};
	const json_t *c = claim_of(wf);
	char url[128];
	json_t *result, *claims = NULL;

	snprintf(url, sizeof(url), "https://out.test/%s.png", wf);
	result = json_pack("{s:s, s:f}", "result_image_path", url,
			   "credit_cost", credits);
	assert_int_equal(kiln_store_finish_step(st(), str(c, "uuid"),
						str(c, "task_id"), result,
						&ok_end, &who, &claims, &err),
			 KILN_OK);
	assert_int_equal(json_array_size(claims), 0);
	json_decref(claims);
	json_decref(result);
}

/* Ends wf's only step with a provider's refusal. */
static void fail_wf(const char *wf)
{
	struct kiln_err err = {0};
	const json_t *c = claim_of(wf);

	assert_int_equal(kiln_store_finish_step(st(), str(c, "uuid"),
						str(c, "task_id"), NULL,
						&refused, NULL, NULL, &err),
			 KILN_OK);
}

static void cancel_wf(const char *wf)
{
	struct kiln_err err = {0};
	json_t *stopped = NULL;

	assert_int_equal(kiln_store_workflow_action(st(), wf, NULL,
						    KILN_WF_ACTION_CANCEL,
						    &stopped, &err),
			 KILN_OK);
	json_decref(stopped);
}

/* Ends execution i of batch id: 's'ucceed, 'f'ail or 'c'ancel. */
static void end_exec(const char *id, size_t i, char how)
{
	char *wf = wf_of(id, i);

	if (how == 's')
		succeed(wf, 0.5);
	else if (how == 'f')
		fail_wf(wf);
	else
		cancel_wf(wf);
	free(wf);
}

static json_t *workflow(const char *wf)
{
	struct kiln_err err = {0};
	json_t *w = NULL;

	assert_int_equal(kiln_store_get_workflow(st(), wf, NULL, &w, &err),
			 KILN_OK);
	return w;
}

/* The index of batch id's only RUNNING execution. */
static size_t only_running(const char *id)
{
	struct kiln_exec_filter f = {.status = "RUNNING", .limit = MANY};
	json_t *l = list_execs(id, &f);
	size_t i;

	assert_int_equal(json_array_size(json_object_get(l, "executions")),
			 1);
	i = (size_t)num(json_array_get(json_object_get(l, "executions"), 0),
			"asset_index");
	json_decref(l);
	return i;
}

static json_int_t processing_of(const char *id)
{
	json_t *b = get_batch(id);
	json_int_t n = num(json_object_get(b, "assets"), "processing");

	json_decref(b);
	return n;
}

/* ---- insert and render -------------------------------------------------- */

static void test_insert_renders(void **state)
{
	json_t *b = make_batch(3, "{\"priority\": 2, \"concurrency_limit\": 4,"
				  " \"continue_on_error\": false,"
				  " \"name\": \"Spring\","
				  " \"origin_reference\": \"ref-1\","
				  " \"webhook_url\": \"" HOOK_URL "\","
				  " \"execution_events\": true}");
	char *id;
	json_t *g, *t, *e, *l;
	struct kiln_exec_filter f = {.limit = MANY};
	char self[96];
	size_t i;

	(void)state;
	asset_inputs(b, 1, "{\"prompt\": \"mine\"}");
	id = insert_batch(b);
	g = get_batch(id);
	assert_string_equal(str(g, "id"), id);
	assert_string_equal(str(g, "status"), "PENDING");
	assert_string_equal(str(g, "name"), "Spring");
	assert_string_equal(str(g, "template_id"), "tpl-1");
	assert_int_equal(num(g, "template_version"), 1);
	assert_string_equal(str(g, "priority"), "LOW");
	assert_int_equal(num(g, "concurrency_limit"), 4);
	assert_true(json_is_false(json_object_get(g, "continue_on_error")));
	assert_true(json_is_true(json_object_get(g, "execution_events")));
	assert_string_equal(str(g, "asset_input"), "image");
	expect_json("inputs", json_object_get(g, "inputs"),
		    "{\"prompt\": \"a red dress\"}");
	assert_string_equal(str(g, "webhook_url"), HOOK_URL);
	assert_string_equal(str(g, "origin_reference"), "ref-1");
	assert_string_equal(str(g, "origin_tenant_id"), TENANT);
	assert_true(json_is_string(json_object_get(g, "created_at")));
	assert_true(json_is_null(json_object_get(g, "cancelled_at")));
	expect_json("assets", json_object_get(g, "assets"),
		    "{\"total\": 3, \"pending\": 3, \"processing\": 0,"
		    " \"completed\": 0, \"failed\": 0, \"cancelled\": 0}");
	t = json_object_get(g, "timing");
	assert_true(json_is_null(json_object_get(t, "started_at")));
	assert_true(json_is_null(json_object_get(t, "completed_at")));
	assert_true(json_is_null(json_object_get(t, "elapsed_ms")));
	assert_true(json_is_null(json_object_get(t, "mean_execution_ms")));
	assert_true(json_is_null(json_object_get(t, "p50_execution_ms")));
	assert_true(json_is_null(
		json_object_get(g, "estimated_time_remaining_ms")));
	expect_json("failed ids", json_object_get(g, "failed_execution_ids"),
		    "[]");
	assert_true(json_is_false(json_object_get(
		g, "failed_execution_ids_truncated")));
	snprintf(self, sizeof(self), "/api/v1/batches/%s", id);
	assert_string_equal(str(json_object_get(g, "links"), "self"), self);
	json_decref(g);

	/* The executions, pending, in asset order. */
	l = list_execs(id, &f);
	assert_string_equal(str(l, "batch_id"), id);
	assert_int_equal(num(json_object_get(l, "pagination"), "total"), 3);
	json_array_foreach(json_object_get(l, "executions"), i, e) {
		char url[64], aid[32];

		snprintf(url, sizeof(url), "https://cdn.test/%zu.png", i);
		snprintf(aid, sizeof(aid), "a%zu", i);
		assert_int_equal(num(e, "asset_index"), (json_int_t)i);
		assert_string_equal(str(e, "status"), "PENDING");
		assert_true(json_is_string(json_object_get(e, "execution_id")));
		assert_true(json_is_null(json_object_get(e, "workflow_id")));
		assert_true(json_is_null(json_object_get(e, "started_at")));
		assert_true(json_is_null(json_object_get(e, "duration_ms")));
		assert_true(json_is_null(json_object_get(e, "credit_cost")));
		assert_int_equal(num(e, "runs"), 0);
		expect_json("previous",
			    json_object_get(e, "previous_workflow_ids"), "[]");
		assert_null(json_object_get(e, "outputs"));
		assert_null(json_object_get(e, "error"));
		assert_string_equal(str(json_object_get(e, "input_asset"),
					"url"),
				    url);
		assert_string_equal(str(json_object_get(e, "input_asset"),
					"asset_id"),
				    aid);
		expect_json("overrides",
			    json_object_get(json_object_get(e, "input_asset"),
					    "inputs"),
			    i == 1 ? "{\"prompt\": \"mine\"}" : "{}");
	}
	json_decref(l);
	free(id);
}

static void test_get_unknown_and_scope(void **state)
{
	struct kiln_err err = {0};
	struct kiln_scope mine = {TENANT}, theirs = {"other"};
	struct kiln_exec_filter f = {.limit = 10};
	char *id = new_batch(1, NULL);
	json_t *out = NULL;

	(void)state;
	assert_int_equal(kiln_store_get_batch(st(), "nope", NULL, &out, &err),
			 KILN_ENOTFOUND);
	assert_null(out);
	assert_int_equal(kiln_store_get_batch(st(), id, &theirs, &out, &err),
			 KILN_ENOTFOUND);
	assert_null(out);
	assert_int_equal(kiln_store_get_batch(st(), id, &mine, &out, &err),
			 KILN_OK);
	json_decref(out);
	out = NULL;
	assert_int_equal(kiln_store_list_executions(st(), "nope", &f, NULL,
						    &out, &err),
			 KILN_ENOTFOUND);
	assert_int_equal(kiln_store_list_executions(st(), id, &f, &theirs,
						    &out, &err),
			 KILN_ENOTFOUND);
	assert_null(out);
	assert_int_equal(kiln_store_list_executions(st(), id, &f, &mine, &out,
						    &err),
			 KILN_OK);
	json_decref(out);
	assert_int_equal(kiln_store_cancel_batch(st(), id, &theirs, &out,
						 &err),
			 KILN_ENOTFOUND);
	assert_int_equal(kiln_store_retry_batch(st(), id, &theirs, NULL, &out,
						&err),
			 KILN_ENOTFOUND);
	expect_counts(id, "PENDING", 1, 0, 0, 0, 0);
	free(id);
}

/* ---- the scheduler --------------------------------------------------- */

/* A started execution: its workflow is the template's, for the asset. */
static void test_dispatch_starts_workflow(void **state)
{
	char *id = new_batch(1, "{\"origin_reference\": \"ref-7\","
				" \"name\": \"Nightly\"}");
	char *wf;
	json_t *w, *e, *b;
	const json_t *c;

	(void)state;
	assert_int_equal(dispatch(10, 10), 1);
	assert_int_equal(build_calls, 1);
	expect_counts(id, "RUNNING", 0, 1, 0, 0, 0);
	wf = wf_of(id, 0);
	e = exec_at(id, 0);
	assert_string_equal(str(e, "status"), "RUNNING");
	assert_int_equal(num(e, "runs"), 1);
	assert_true(json_is_string(json_object_get(e, "started_at")));
	assert_true(json_is_null(json_object_get(e, "completed_at")));
	json_decref(e);
	b = get_batch(id);
	assert_true(json_is_string(
		json_object_get(json_object_get(b, "timing"), "started_at")));
	json_decref(b);

	/* The first step was claimed for who, in the same transaction. */
	assert_int_equal(json_array_size(all_claims), 1);
	c = claim_of(wf);
	assert_string_equal(str(c, "step_id"), "generate");
	expect_json("config", json_object_get(c, "config"),
		    "{\"prompt\": \"a red dress\", \"image\": {\"url\":"
		    " \"https://cdn.test/0.png\", \"asset_id\": \"a0\"}}");

	w = workflow(wf);
	assert_string_equal(str(w, "status"), "RUNNING");
	assert_string_equal(str(w, "batch_id"), id);
	assert_string_equal(str(w, "template_id"), "tpl-1");
	assert_int_equal(num(w, "template_version"), 1);
	assert_string_equal(str(w, "origin_instance"), "batch");
	assert_string_equal(str(w, "origin_tenant_id"), TENANT);
	assert_string_equal(str(w, "origin_reference"), "ref-7");
	assert_string_equal(str(w, "name"), "Nightly");
	assert_true(json_is_null(json_object_get(w, "webhook_url")));
	expect_json("run inputs", json_object_get(w, "inputs"),
		    "{\"prompt\": \"a red dress\", \"image\": {\"url\":"
		    " \"https://cdn.test/0.png\", \"asset_id\": \"a0\"}}");
	json_decref(w);

	/* Nothing more to do. */
	assert_int_equal(dispatch(10, 10), 0);
	assert_int_equal(build_calls, 1);
	free(wf);
	free(id);
}

static void test_concurrency_limit(void **state)
{
	char *id = new_batch(5, "{\"concurrency_limit\": 2}");

	(void)state;
	assert_int_equal(dispatch(MANY, MANY), 2);
	expect_counts(id, "RUNNING", 3, 2, 0, 0, 0);
	expect_exec_status(id, 0, "RUNNING");
	expect_exec_status(id, 1, "RUNNING");
	expect_exec_status(id, 2, "PENDING");
	/* Full: nothing starts. */
	assert_int_equal(dispatch(MANY, MANY), 0);
	expect_counts(id, "RUNNING", 3, 2, 0, 0, 0);

	/* One ends: one more starts, the next in asset order. */
	end_exec(id, 0, 's');
	expect_counts(id, "RUNNING", 3, 1, 1, 0, 0);
	assert_int_equal(dispatch(MANY, MANY), 1);
	expect_counts(id, "RUNNING", 2, 2, 1, 0, 0);
	expect_exec_status(id, 2, "RUNNING");
	expect_exec_status(id, 3, "PENDING");
	end_exec(id, 1, 'f');
	end_exec(id, 2, 'c');
	assert_int_equal(dispatch(MANY, MANY), 2);
	expect_counts(id, "RUNNING", 0, 2, 1, 1, 1);
	assert_int_equal(dispatch(MANY, MANY), 0);
	free(id);
}

static void test_max_starts(void **state)
{
	char *id = new_batch(5, NULL);

	(void)state;
	assert_int_equal(dispatch(MANY, 1), 1);
	expect_counts(id, "RUNNING", 4, 1, 0, 0, 0);
	assert_int_equal(dispatch(MANY, 3), 3);
	expect_counts(id, "RUNNING", 1, 4, 0, 0, 0);
	assert_int_equal(dispatch(MANY, 3), 1);
	assert_int_equal(dispatch(MANY, 3), 0);
	expect_counts(id, "RUNNING", 0, 5, 0, 0, 0);
	free(id);
}

/* max_running counts the running executions of every batch. */
static void test_max_running_global(void **state)
{
	char *a = new_batch(5, NULL);
	char *b = new_batch(5, NULL);

	(void)state;
	assert_int_equal(dispatch(3, MANY), 3);
	assert_int_equal(processing_of(a) + processing_of(b), 3);
	assert_int_equal(dispatch(3, MANY), 0);
	/* A larger cap lets more start. */
	assert_int_equal(dispatch(4, MANY), 1);
	assert_int_equal(processing_of(a) + processing_of(b), 4);
	assert_int_equal(dispatch(4, MANY), 0);
	/* One ends anywhere: one more may start. */
	end_exec(a, 0, 's');
	assert_int_equal(dispatch(4, MANY), 1);
	assert_int_equal(processing_of(a) + processing_of(b), 4);
	/* A lower cap than what runs: none. */
	assert_int_equal(dispatch(2, MANY), 0);
	assert_int_equal(processing_of(a) + processing_of(b), 4);
	free(a);
	free(b);
}

/* HIGH before NORMAL before LOW, whatever the order of creation. */
static void test_priority_order(void **state)
{
	char *low = new_batch(2, "{\"priority\": 2}");
	char *normal = new_batch(2, "{\"priority\": 1}");
	char *high = new_batch(2, "{\"priority\": 0}");
	const char *order[6] = {high, high, normal, normal, low, low};
	size_t i;

	(void)state;
	for (i = 0; i < 6; i++) {
		assert_int_equal(dispatch(1, MANY), 1);
		if (processing_of(order[i]) != 1)
			fail_msg("start %zu is not the expected batch's", i);
		end_exec(order[i], only_running(order[i]), 's');
	}
	assert_int_equal(dispatch(1, MANY), 0);
	expect_counts(high, "COMPLETED", 0, 0, 2, 0, 0);
	expect_counts(normal, "COMPLETED", 0, 0, 2, 0, 0);
	expect_counts(low, "COMPLETED", 0, 0, 2, 0, 0);
	free(low);
	free(normal);
	free(high);
}

/* In one transaction too; a higher batch at its limit does not hold the
 * lower ones back. */
static void test_priority_in_one_dispatch(void **state)
{
	char *low = new_batch(3, "{\"priority\": 2}");
	char *normal = new_batch(3, "{\"priority\": 1}");
	char *high = new_batch(3, "{\"priority\": 0,"
				  " \"concurrency_limit\": 2}");

	(void)state;
	assert_int_equal(dispatch(4, MANY), 4);
	expect_counts(high, "RUNNING", 1, 2, 0, 0, 0);
	expect_counts(normal, "RUNNING", 1, 2, 0, 0, 0);
	expect_counts(low, "PENDING", 3, 0, 0, 0, 0);
	/* Room again: the high one first. */
	end_exec(normal, 0, 's');
	end_exec(normal, 1, 's');
	assert_int_equal(dispatch(4, MANY), 2);
	expect_counts(high, "RUNNING", 1, 2, 0, 0, 0);
	expect_counts(normal, "RUNNING", 0, 1, 2, 0, 0);
	expect_counts(low, "RUNNING", 2, 1, 0, 0, 0);
	free(low);
	free(normal);
	free(high);
}

/* Batches of one priority take turns: the 3-asset batch created after a
 * 10-asset one does not wait for it. */
static void test_round_robin(void **state)
{
	char *a = new_batch(10, NULL), *b;
	char seq[16] = "";
	size_t i;

	(void)state;
	usleep(3000); /* b is created strictly after a */
	b = new_batch(3, NULL);
	for (i = 0; i < 13; i++) {
		const char *which;

		assert_int_equal(dispatch(1, MANY), 1);
		assert_int_equal(processing_of(a) + processing_of(b), 1);
		which = processing_of(a) == 1 ? a : b;
		seq[i] = which == a ? 'A' : 'B';
		end_exec(which, only_running(which), 's');
	}
	assert_string_equal(seq, "ABABABAAAAAAA");
	assert_int_equal(dispatch(1, MANY), 0);
	expect_counts(a, "COMPLETED", 0, 0, 10, 0, 0);
	expect_counts(b, "COMPLETED", 0, 0, 3, 0, 0);
	free(a);
	free(b);
}

/* Turns are taken inside one transaction as well. */
static void test_round_robin_in_one_dispatch(void **state)
{
	char *a = new_batch(10, NULL), *b;

	(void)state;
	usleep(3000);
	b = new_batch(10, NULL);
	assert_int_equal(dispatch(5, MANY), 5);
	expect_counts(a, "RUNNING", 7, 3, 0, 0, 0);
	expect_counts(b, "RUNNING", 8, 2, 0, 0, 0);
	/* a started last in that pass: b goes first now. */
	end_exec(a, 0, 's');
	assert_int_equal(dispatch(5, MANY), 1);
	expect_counts(b, "RUNNING", 7, 3, 0, 0, 0);
	free(a);
	free(b);
}

/* ---- counts and statuses ---------------------------------------------- */

static void test_completed_with_errors(void **state)
{
	char *id = new_batch(3, NULL);
	char *wf0, *wf1, *x1;
	json_t *e, *b, *t;

	(void)state;
	assert_int_equal(dispatch(MANY, MANY), 3);
	expect_counts(id, "RUNNING", 0, 3, 0, 0, 0);
	wf0 = wf_of(id, 0);
	wf1 = wf_of(id, 1);
	x1 = exec_id_of(id, 1);
	succeed(wf0, 0.5);
	expect_counts(id, "RUNNING", 0, 2, 1, 0, 0);
	fail_wf(wf1);
	expect_counts(id, "RUNNING", 0, 1, 1, 1, 0);
	b = get_batch(id);
	assert_int_equal(json_array_size(json_object_get(
				 b, "failed_execution_ids")),
			 1);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(b, "failed_execution_ids"),
				    0)),
			    x1);
	assert_true(json_is_null(
		json_object_get(json_object_get(b, "timing"), "completed_at")));
	json_decref(b);
	end_exec(id, 2, 's');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 2, 1, 0);

	/* The successful execution: outputs, no error, duration, credits. */
	e = exec_at(id, 0);
	assert_string_equal(str(e, "status"), "SUCCESS");
	assert_string_equal(str(e, "workflow_id"), wf0);
	{
		char want[256];

		snprintf(want, sizeof(want),
			 "[{\"type\": \"image\", \"url\":"
			 " \"https://out.test/%s.png\", \"format\": \"png\"}]",
			 wf0);
		expect_json("outputs", json_object_get(e, "outputs"), want);
	}
	assert_null(json_object_get(e, "error"));
	assert_true(num(e, "duration_ms") >= 0);
	assert_true(json_is_string(json_object_get(e, "completed_at")));
	assert_true(json_is_real(json_object_get(e, "credit_cost")));
	assert_true(json_real_value(json_object_get(e, "credit_cost")) == 0.5);
	assert_int_equal(num(e, "runs"), 1);
	json_decref(e);

	/* The failed one: the failed step's last attempt says why. */
	e = exec_at(id, 1);
	assert_string_equal(str(e, "status"), "FAILED");
	assert_string_equal(str(e, "workflow_id"), wf1);
	assert_null(json_object_get(e, "outputs"));
	expect_json("error", json_object_get(e, "error"),
		    "{\"code\": \"PROVIDER_REJECTED\","
		    " \"message\": \"prompt refused\"}");
	assert_true(num(e, "duration_ms") >= 0);
	assert_true(json_is_null(json_object_get(e, "credit_cost")));
	json_decref(e);

	b = get_batch(id);
	t = json_object_get(b, "timing");
	assert_true(json_is_string(json_object_get(t, "completed_at")));
	assert_true(json_is_integer(json_object_get(t, "elapsed_ms")));
	assert_true(json_is_real(json_object_get(t, "mean_execution_ms")));
	assert_true(json_is_integer(json_object_get(t, "p50_execution_ms")));
	assert_true(json_is_integer(json_object_get(t, "p95_execution_ms")));
	assert_int_equal(num(b, "estimated_time_remaining_ms"), 0);
	assert_true(json_real_value(json_object_get(b, "credit_cost")) == 1.0);
	assert_int_equal(json_array_size(json_object_get(
				 b, "failed_execution_ids")),
			 1);
	json_decref(b);
	free(x1);
	free(wf0);
	free(wf1);
	free(id);
}

static void test_all_succeed_completed(void **state)
{
	char *id = new_batch(2, NULL);

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 1, 's');
	end_exec(id, 0, 's');
	expect_counts(id, "COMPLETED", 0, 0, 2, 0, 0);
	free(id);
}

static void test_all_fail_failed(void **state)
{
	char *id = new_batch(2, NULL);
	json_t *b;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 0, 'f');
	expect_counts(id, "RUNNING", 0, 1, 0, 1, 0);
	end_exec(id, 1, 'f');
	expect_counts(id, "FAILED", 0, 0, 0, 2, 0);
	b = get_batch(id);
	assert_int_equal(json_array_size(json_object_get(
				 b, "failed_execution_ids")),
			 2);
	json_decref(b);
	free(id);
}

/* A cancelled workflow cancels its execution; cancellations count as
 * errors. */
static void test_cancelled_executions(void **state)
{
	char *id = new_batch(3, NULL);
	json_t *e;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 0, 'c');
	expect_counts(id, "RUNNING", 0, 2, 0, 0, 1);
	e = exec_at(id, 0);
	assert_string_equal(str(e, "status"), "CANCELLED");
	assert_string_equal(str(json_object_get(e, "error"), "code"),
			    "CANCELLED");
	json_decref(e);
	end_exec(id, 1, 's');
	end_exec(id, 2, 'c');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 1, 0, 2);
	free(id);

	/* Every execution cancelled: nothing completed. */
	id = new_batch(1, NULL);
	dispatch(MANY, MANY);
	end_exec(id, 0, 'c');
	expect_counts(id, "FAILED", 0, 0, 0, 0, 1);
	free(id);
}

/* ---- builds that fail -------------------------------------------------- */

static void test_build_failure(void **state)
{
	json_t *b = make_batch(3, NULL), *e, *g;
	char *id;
	size_t n_claims;

	(void)state;
	asset_inputs(b, 1, "{\"prompt\": 3}");
	id = insert_batch(b);
	/* The three are handled; two start. */
	assert_int_equal(dispatch(MANY, MANY), 3);
	assert_int_equal(build_calls, 3);
	n_claims = json_array_size(all_claims);
	assert_int_equal(n_claims, 2);
	expect_counts(id, "RUNNING", 0, 2, 0, 1, 0);
	e = exec_at(id, 1);
	assert_string_equal(str(e, "status"), "FAILED");
	assert_true(json_is_null(json_object_get(e, "workflow_id")));
	assert_string_equal(str(json_object_get(e, "error"), "code"),
			    "INVALID_INPUT");
	assert_non_null(strstr(str(json_object_get(e, "error"), "message"),
			       "inputs.prompt"));
	assert_true(json_is_string(json_object_get(e, "completed_at")));
	assert_int_equal(num(e, "runs"), 0);
	json_decref(e);
	g = get_batch(id);
	assert_int_equal(json_array_size(json_object_get(
				 g, "failed_execution_ids")),
			 1);
	json_decref(g);
	/* The batch goes on. */
	end_exec(id, 0, 's');
	end_exec(id, 2, 's');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 2, 1, 0);
	assert_int_equal(dispatch(MANY, MANY), 0);
	free(id);

	/* The only execution cannot build: the batch ends at once. */
	b = make_batch(1, NULL);
	asset_inputs(b, 0, "{\"colour\": \"red\"}");
	id = insert_batch(b);
	assert_int_equal(dispatch(MANY, MANY), 1);
	expect_counts(id, "FAILED", 0, 0, 0, 1, 0);
	g = get_batch(id);
	assert_true(json_is_string(
		json_object_get(json_object_get(g, "timing"), "completed_at")));
	json_decref(g);
	assert_int_equal(dispatch(MANY, MANY), 0);
	free(id);
}

/* A failed build does not use a slot of the batch nor of max_running. */
static void test_build_failure_uses_no_slot(void **state)
{
	json_t *b = make_batch(3, "{\"concurrency_limit\": 1}");
	char *id;

	(void)state;
	asset_inputs(b, 0, "{\"prompt\": false}");
	id = insert_batch(b);
	assert_int_equal(dispatch(1, MANY), 2);
	expect_counts(id, "RUNNING", 1, 1, 0, 1, 0);
	expect_exec_status(id, 1, "RUNNING");
	free(id);
}

/* A batch that stops on errors, whose first build fails: the rest is
 * cancelled, and the dispatch reports the one execution it handled. */
static void test_build_failure_stops_batch(void **state)
{
	json_t *b = make_batch(3, "{\"continue_on_error\": false}");
	struct kiln_err err = {0};
	json_t *aborts = NULL;
	char *id;
	int started;

	(void)state;
	asset_inputs(b, 0, "{\"prompt\": 3}");
	id = insert_batch(b);
	started = dispatch(MANY, MANY);
	assert_int_equal(build_calls, 1);
	assert_int_equal(json_array_size(all_claims), 0);
	expect_counts(id, "FAILED", 0, 0, 0, 1, 2);
	assert_int_equal(kiln_store_batch_aborts(st(), &aborts, &err),
			 KILN_OK);
	assert_int_equal(json_array_size(aborts), 0);
	json_decref(aborts);
	assert_int_equal(dispatch(MANY, MANY), 0);
	free(id);
	/* One execution failed to build, none started. */
	assert_int_equal(started, 1);
}

/* Percentiles cover the finished executions that have a duration: one
 * that never started (its build failed) does not leave p95 empty. */
static void test_timing_with_build_failure(void **state)
{
	json_t *b = make_batch(2, NULL), *g, *t;
	char *id;

	(void)state;
	asset_inputs(b, 0, "{\"prompt\": 3}");
	id = insert_batch(b);
	dispatch(MANY, MANY);
	end_exec(id, 1, 's');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 1, 1, 0);
	g = get_batch(id);
	t = json_object_get(g, "timing");
	assert_true(json_is_real(json_object_get(t, "mean_execution_ms")));
	assert_true(json_is_integer(json_object_get(t, "p50_execution_ms")));
	assert_true(json_is_integer(json_object_get(t, "p95_execution_ms")));
	assert_true(num(t, "p50_execution_ms") <= num(t, "p95_execution_ms"));
	json_decref(g);
	free(id);
}

/* ---- cancel -------------------------------------------------------------- */

static void test_cancel_running_batch(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(5, "{\"concurrency_limit\": 2}");
	json_t *out = NULL, *e, *b;

	(void)state;
	dispatch(MANY, MANY);
	assert_int_equal(kiln_store_cancel_batch(st(), id, NULL, &out, &err),
			 KILN_OK);
	assert_non_null(out);
	assert_string_equal(str(out, "id"), id);
	assert_string_equal(str(out, "status"), "CANCELLED");
	assert_string_equal(str(out, "previous_status"), "RUNNING");
	expect_json("assets", json_object_get(out, "assets"),
		    "{\"total\": 5, \"pending\": 0, \"processing\": 2,"
		    " \"completed\": 0, \"failed\": 0, \"cancelled\": 3}");
	json_decref(out);
	out = NULL;
	expect_counts(id, "CANCELLED", 0, 2, 0, 0, 3);
	e = exec_at(id, 3);
	assert_string_equal(str(e, "status"), "CANCELLED");
	expect_json("error", json_object_get(e, "error"),
		    "{\"code\": \"CANCELLED\","
		    " \"message\": \"the batch was cancelled\"}");
	assert_true(json_is_null(json_object_get(e, "workflow_id")));
	json_decref(e);
	b = get_batch(id);
	assert_true(json_is_string(json_object_get(b, "cancelled_at")));
	assert_true(json_is_null(
		json_object_get(json_object_get(b, "timing"), "completed_at")));
	json_decref(b);

	/* Running ones finish; nothing new starts. */
	expect_exec_status(id, 0, "RUNNING");
	assert_int_equal(dispatch(MANY, MANY), 0);
	/* Already cancelled. */
	assert_int_equal(kiln_store_cancel_batch(st(), id, NULL, &out, &err),
			 KILN_ECONFLICT);
	assert_int_equal(err.code, KILN_ECONFLICT);
	assert_null(out);
	end_exec(id, 0, 's');
	expect_counts(id, "CANCELLED", 0, 1, 1, 0, 3);
	end_exec(id, 1, 'f');
	expect_counts(id, "CANCELLED", 0, 0, 1, 1, 3);
	b = get_batch(id);
	assert_true(json_is_string(
		json_object_get(json_object_get(b, "timing"), "completed_at")));
	json_decref(b);
	assert_int_equal(kiln_store_cancel_batch(st(), id, NULL, &out, &err),
			 KILN_ECONFLICT);
	assert_null(out);
	free(id);
}

static void test_cancel_pending_and_ended(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(3, NULL), *done;
	json_t *out = NULL, *b;

	(void)state;
	assert_int_equal(kiln_store_cancel_batch(st(), id, NULL, &out, &err),
			 KILN_OK);
	assert_string_equal(str(out, "previous_status"), "PENDING");
	assert_string_equal(str(out, "status"), "CANCELLED");
	json_decref(out);
	out = NULL;
	expect_counts(id, "CANCELLED", 0, 0, 0, 0, 3);
	b = get_batch(id);
	assert_true(json_is_string(
		json_object_get(json_object_get(b, "timing"), "completed_at")));
	json_decref(b);
	assert_int_equal(dispatch(MANY, MANY), 0);
	assert_int_equal(build_calls, 0);

	/* A batch that ended by itself. */
	done = new_batch(1, NULL);
	dispatch(MANY, MANY);
	end_exec(done, 0, 's');
	expect_counts(done, "COMPLETED", 0, 0, 1, 0, 0);
	assert_int_equal(kiln_store_cancel_batch(st(), done, NULL, &out,
						 &err),
			 KILN_ECONFLICT);
	assert_null(out);
	expect_counts(done, "COMPLETED", 0, 0, 1, 0, 0);
	assert_int_equal(kiln_store_cancel_batch(st(), "nope", NULL, &out,
						 &err),
			 KILN_ENOTFOUND);
	free(done);
	free(id);
}

/* ---- retry ------------------------------------------------------------- */

static void test_retry_failed(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(3, NULL);
	char *old1, *old2, *x1, *x2, *new1;
	json_t *out = NULL, *e, *b;

	(void)state;
	dispatch(MANY, MANY);
	old1 = wf_of(id, 1);
	old2 = wf_of(id, 2);
	x1 = exec_id_of(id, 1);
	x2 = exec_id_of(id, 2);
	end_exec(id, 0, 's');
	end_exec(id, 1, 'f');
	end_exec(id, 2, 'f');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 1, 2, 0);

	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, NULL, &out,
						&err),
			 KILN_OK);
	assert_non_null(out);
	assert_string_equal(str(out, "id"), id);
	assert_string_equal(str(out, "status"), "RUNNING");
	assert_int_equal(num(out, "retried"), 2);
	assert_int_equal(json_array_size(json_object_get(out,
							 "execution_ids")),
			 2);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(out, "execution_ids"), 0)),
			    x1);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(out, "execution_ids"), 1)),
			    x2);
	expect_json("assets", json_object_get(out, "assets"),
		    "{\"total\": 3, \"pending\": 2, \"processing\": 0,"
		    " \"completed\": 1, \"failed\": 0, \"cancelled\": 0}");
	json_decref(out);
	out = NULL;
	expect_counts(id, "RUNNING", 2, 0, 1, 0, 0);
	e = exec_at(id, 1);
	assert_string_equal(str(e, "status"), "PENDING");
	assert_true(json_is_null(json_object_get(e, "workflow_id")));
	assert_null(json_object_get(e, "error"));
	assert_true(json_is_null(json_object_get(e, "completed_at")));
	assert_true(json_is_null(json_object_get(e, "duration_ms")));
	assert_int_equal(json_array_size(json_object_get(
				 e, "previous_workflow_ids")),
			 1);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(e, "previous_workflow_ids"),
				    0)),
			    old1);
	assert_int_equal(num(e, "runs"), 1);
	json_decref(e);
	b = get_batch(id);
	expect_json("failed ids", json_object_get(b, "failed_execution_ids"),
		    "[]");
	assert_true(json_is_null(
		json_object_get(json_object_get(b, "timing"), "completed_at")));
	json_decref(b);

	/* They run again, as new workflows. */
	assert_int_equal(dispatch(MANY, MANY), 2);
	expect_counts(id, "RUNNING", 0, 2, 1, 0, 0);
	new1 = wf_of(id, 1);
	assert_string_not_equal(new1, old1);
	e = exec_at(id, 1);
	assert_int_equal(num(e, "runs"), 2);
	json_decref(e);
	end_exec(id, 1, 's');
	end_exec(id, 2, 'f');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 2, 1, 0);

	/* Again: two earlier workflows now. */
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, NULL, &out,
						&err),
			 KILN_OK);
	assert_int_equal(num(out, "retried"), 1);
	json_decref(out);
	e = exec_at(id, 2);
	assert_int_equal(json_array_size(json_object_get(
				 e, "previous_workflow_ids")),
			 2);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(e, "previous_workflow_ids"),
				    0)),
			    old2);
	json_decref(e);
	dispatch(MANY, MANY);
	end_exec(id, 2, 's');
	expect_counts(id, "COMPLETED", 0, 0, 3, 0, 0);
	free(new1);
	free(old1);
	free(old2);
	free(x1);
	free(x2);
	free(id);
}

/* Listed ids: FAILED and CANCELLED ones may be retried; anything else
 * refuses the whole request. */
static void test_retry_listed(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(3, NULL);
	char *x0, *x1, *x2;
	json_t *before, *after, *ids, *out = NULL;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 0, 's');
	end_exec(id, 1, 'f');
	end_exec(id, 2, 'c');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 1, 1, 1);
	x0 = exec_id_of(id, 0);
	x1 = exec_id_of(id, 1);
	x2 = exec_id_of(id, 2);

	/* A SUCCESS execution: conflict, nothing changes (not even the
	 * FAILED one listed before it). */
	before = get_batch(id);
	ids = json_pack("[ss]", x1, x0);
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, ids, &out,
						&err),
			 KILN_ECONFLICT);
	assert_int_equal(err.code, KILN_ECONFLICT);
	assert_null(out);
	json_decref(ids);
	after = get_batch(id);
	assert_true(json_equal(before, after));
	json_decref(after);
	expect_exec_status(id, 1, "FAILED");

	/* Unknown execution: not found, nothing changes. */
	ids = json_pack("[ss]", x1, "no-such-execution");
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, ids, &out,
						&err),
			 KILN_ENOTFOUND);
	assert_null(out);
	json_decref(ids);
	after = get_batch(id);
	assert_true(json_equal(before, after));
	json_decref(after);
	json_decref(before);

	/* Unknown batch. */
	assert_int_equal(kiln_store_retry_batch(st(), "nope", NULL, NULL, &out,
						&err),
			 KILN_ENOTFOUND);
	assert_null(out);

	/* The cancelled one alone. */
	ids = json_pack("[s]", x2);
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, ids, &out,
						&err),
			 KILN_OK);
	assert_int_equal(num(out, "retried"), 1);
	json_decref(out);
	json_decref(ids);
	expect_counts(id, "RUNNING", 1, 0, 1, 1, 0);
	expect_exec_status(id, 1, "FAILED");
	assert_int_equal(dispatch(MANY, MANY), 1);
	end_exec(id, 2, 's');
	expect_counts(id, "COMPLETED_WITH_ERRORS", 0, 0, 2, 1, 0);
	free(x0);
	free(x1);
	free(x2);
	free(id);
}

/* Nothing failed: nothing retried, nothing changes. */
static void test_retry_nothing(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(1, NULL);
	json_t *out = NULL;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 0, 's');
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, NULL, &out,
						&err),
			 KILN_OK);
	assert_int_equal(num(out, "retried"), 0);
	assert_string_equal(str(out, "status"), "COMPLETED");
	assert_int_equal(json_array_size(json_object_get(out,
							 "execution_ids")),
			 0);
	json_decref(out);
	expect_counts(id, "COMPLETED", 0, 0, 1, 0, 0);
	free(id);
}

/* The same execution listed twice is retried once: the counts stay
 * right, and the batch can end. */
static void test_retry_duplicate_ids(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(2, NULL), *x1;
	json_t *ids, *out = NULL;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 0, 's');
	end_exec(id, 1, 'f');
	x1 = exec_id_of(id, 1);
	ids = json_pack("[ss]", x1, x1);
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, ids, &out,
						&err),
			 KILN_OK);
	json_decref(ids);
	json_decref(out);
	expect_counts(id, "RUNNING", 1, 0, 1, 0, 0);
	assert_int_equal(dispatch(MANY, MANY), 1);
	/* Nothing is left to start. */
	assert_int_equal(dispatch(MANY, MANY), 0);
	end_exec(id, 1, 's');
	expect_counts(id, "COMPLETED", 0, 0, 2, 0, 0);
	free(x1);
	free(id);
}

/* ---- continue_on_error false --------------------------------------------- */

static void test_stop_on_first_failure(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(5, "{\"continue_on_error\": false,"
				" \"concurrency_limit\": 3}");
	char *wf1, *wf2;
	json_t *aborts = NULL, *e, *out = NULL;

	(void)state;
	assert_int_equal(dispatch(MANY, MANY), 3);
	wf1 = wf_of(id, 1);
	wf2 = wf_of(id, 2);
	assert_int_equal(kiln_store_batch_aborts(st(), &aborts, &err),
			 KILN_OK);
	assert_int_equal(json_array_size(aborts), 0);
	json_decref(aborts);

	end_exec(id, 0, 'f');
	expect_counts(id, "FAILED", 0, 2, 0, 1, 2);
	e = exec_at(id, 3);
	assert_string_equal(str(e, "status"), "CANCELLED");
	assert_string_equal(str(json_object_get(e, "error"), "code"),
			    "CANCELLED");
	assert_non_null(strstr(str(json_object_get(e, "error"), "message"),
			       "continue_on_error"));
	json_decref(e);
	/* The scheduler is to cancel the running ones. */
	assert_int_equal(kiln_store_batch_aborts(st(), &aborts, &err),
			 KILN_OK);
	assert_int_equal(json_array_size(aborts), 2);
	assert_true(
		(strcmp(json_string_value(json_array_get(aborts, 0)), wf1) ==
			 0 &&
		 strcmp(json_string_value(json_array_get(aborts, 1)), wf2) ==
			 0) ||
		(strcmp(json_string_value(json_array_get(aborts, 0)), wf2) ==
			 0 &&
		 strcmp(json_string_value(json_array_get(aborts, 1)), wf1) ==
			 0));
	json_decref(aborts);
	assert_int_equal(dispatch(MANY, MANY), 0);
	assert_int_equal(kiln_store_cancel_batch(st(), id, NULL, &out, &err),
			 KILN_ECONFLICT);

	/* As the scheduler does it, one at a time. */
	cancel_wf(wf1);
	expect_counts(id, "FAILED", 0, 1, 0, 1, 3);
	assert_int_equal(kiln_store_batch_aborts(st(), &aborts, &err),
			 KILN_OK);
	assert_int_equal(json_array_size(aborts), 1);
	assert_string_equal(json_string_value(json_array_get(aborts, 0)), wf2);
	json_decref(aborts);
	cancel_wf(wf2);
	expect_counts(id, "FAILED", 0, 0, 0, 1, 4);
	assert_int_equal(kiln_store_batch_aborts(st(), &aborts, &err),
			 KILN_OK);
	expect_json("aborts", aborts, "[]");
	json_decref(aborts);
	e = get_batch(id);
	assert_true(json_is_string(
		json_object_get(json_object_get(e, "timing"), "completed_at")));
	json_decref(e);
	free(wf1);
	free(wf2);
	free(id);
}

/* The running execution finishes after the stop; the batch stays
 * FAILED. */
static void test_stop_then_running_finishes(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(3, "{\"continue_on_error\": false,"
				" \"concurrency_limit\": 2}");
	json_t *aborts = NULL;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 1, 'f');
	expect_counts(id, "FAILED", 0, 1, 0, 1, 1);
	end_exec(id, 0, 's');
	expect_counts(id, "FAILED", 0, 0, 1, 1, 1);
	assert_int_equal(kiln_store_batch_aborts(st(), &aborts, &err),
			 KILN_OK);
	assert_int_equal(json_array_size(aborts), 0);
	json_decref(aborts);
	free(id);
}

/*
 * An execution's FAILED workflow resumed through the workflow API: either
 * refused, or the batch keeps agreeing with its executions (it has not
 * ended while one of its workflows runs, and once that one succeeds every
 * asset has, so the batch is COMPLETED).
 */
static void test_resumed_execution_workflow(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(2, NULL), *wf0;
	json_t *stopped = NULL, *claims = NULL, *c, *result;
	enum kiln_rc rc;

	(void)state;
	dispatch(MANY, MANY);
	wf0 = wf_of(id, 0);
	fail_wf(wf0);
	expect_counts(id, "RUNNING", 0, 1, 0, 1, 0);
	rc = kiln_store_workflow_action(st(), wf0, NULL, KILN_WF_ACTION_RESUME,
					&stopped, &err);
	json_decref(stopped);
	if (rc == KILN_ECONFLICT) {
		/* Refused: nothing changed. */
		expect_counts(id, "RUNNING", 0, 1, 0, 1, 0);
		free(wf0);
		free(id);
		return;
	}
	assert_int_equal(rc, KILN_OK);
	end_exec(id, 1, 's');
	/* wf0 runs again: the batch has not ended. */
	{
		json_t *b = get_batch(id);
		int ended = json_is_string(json_object_get(
			json_object_get(b, "timing"), "completed_at"));

		json_decref(b);
		assert_false(ended);
	}
	assert_int_equal(kiln_store_advance_claim(st(), wf0, &who, &claims,
						  &err),
			 KILN_OK);
	assert_int_equal(json_array_size(claims), 1);
	c = json_array_get(claims, 0);
	result = json_pack("{s:s}", "result_image_path",
			   "https://out.test/r.png");
	json_decref(stopped);
	stopped = NULL;
	assert_int_equal(kiln_store_finish_step(st(), str(c, "uuid"),
						str(c, "task_id"), result,
						&ok_end, &who, &stopped, &err),
			 KILN_OK);
	json_decref(stopped);
	json_decref(result);
	json_decref(claims);
	expect_exec_status(id, 0, "SUCCESS");
	expect_counts(id, "COMPLETED", 0, 0, 2, 0, 0);
	free(wf0);
	free(id);
}

/* ---- webhooks ---------------------------------------------------------- */

/* Deliveries of event (NULL: any), newest first (owned). */
static json_t *deliveries(const char *event)
{
	struct kiln_delivery_filter f = {.event = event, .limit = 100};
	struct kiln_err err = {0};
	json_t *l = NULL, *items;

	assert_int_equal(kiln_store_list_deliveries(st(), &f, NULL, &l, &err),
			 KILN_OK);
	items = json_incref(json_object_get(l, "deliveries"));
	json_decref(l);
	return items;
}

static json_t *payload_of(const json_t *delivery)
{
	struct kiln_err err = {0};
	json_t *d = NULL, *p;

	assert_int_equal(kiln_store_get_delivery(st(), str(delivery, "id"),
						 NULL, &d, &err),
			 KILN_OK);
	p = json_incref(json_object_get(d, "payload"));
	json_decref(d);
	assert_true(json_is_object(p));
	return p;
}

static void test_webhook_events(void **state)
{
	char *id = new_batch(3, "{\"webhook_url\": \"" HOOK_URL "\","
				" \"execution_events\": true,"
				" \"origin_reference\": \"ref-b\"}");
	char *wf0, *wf1, *x0, *x1;
	json_t *items, *d, *p;

	(void)state;
	dispatch(MANY, MANY);
	wf0 = wf_of(id, 0);
	wf1 = wf_of(id, 1);
	x0 = exec_id_of(id, 0);
	x1 = exec_id_of(id, 1);
	succeed(wf0, 0.5);
	items = deliveries(NULL);
	assert_int_equal(json_array_size(items), 1);
	json_decref(items);
	fail_wf(wf1);
	/* A cancelled execution has no event of its own. */
	end_exec(id, 2, 'c');

	items = deliveries(NULL);
	assert_int_equal(json_array_size(items), 3);
	assert_string_equal(str(json_array_get(items, 0), "event"),
			    "batch.completed");
	assert_string_equal(str(json_array_get(items, 1), "event"),
			    "batch.execution.failed");
	assert_string_equal(str(json_array_get(items, 2), "event"),
			    "batch.execution.completed");
	d = json_array_get(items, 0);
	assert_string_equal(str(d, "url"), HOOK_URL);
	assert_string_equal(str(d, "tenant_id"), TENANT);
	assert_string_equal(str(d, "status"), "pending");
	assert_true(json_is_null(json_object_get(d, "workflow_id")));
	assert_string_equal(str(json_array_get(items, 1), "workflow_id"), wf1);
	assert_string_equal(str(json_array_get(items, 2), "workflow_id"), wf0);
	assert_string_equal(str(json_array_get(items, 2), "tenant_id"),
			    TENANT);

	/* batch.completed: the batch's final state. */
	p = payload_of(json_array_get(items, 0));
	assert_true(json_is_string(json_object_get(p, "schema_version")));
	assert_string_equal(str(p, "id"), str(json_array_get(items, 0), "id"));
	assert_string_equal(str(p, "event"), "batch.completed");
	assert_true(json_is_string(json_object_get(p, "timestamp")));
	assert_string_equal(str(p, "batch_id"), id);
	assert_string_equal(str(p, "status"), "COMPLETED_WITH_ERRORS");
	assert_string_equal(str(p, "template_id"), "tpl-1");
	assert_int_equal(num(p, "template_version"), 1);
	expect_json("assets", json_object_get(p, "assets"),
		    "{\"total\": 3, \"pending\": 0, \"processing\": 0,"
		    " \"completed\": 1, \"failed\": 1, \"cancelled\": 1}");
	assert_int_equal(json_array_size(json_object_get(
				 p, "failed_execution_ids")),
			 1);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(p, "failed_execution_ids"),
				    0)),
			    x1);
	assert_true(json_is_object(json_object_get(p, "timing")));
	assert_string_equal(str(p, "origin_reference"), "ref-b");
	assert_string_equal(str(p, "origin_tenant_id"), TENANT);
	assert_true(json_is_object(json_object_get(p, "links")));
	json_decref(p);

	/* batch.execution.*: the execution as listed. */
	p = payload_of(json_array_get(items, 2));
	assert_true(json_is_string(json_object_get(p, "schema_version")));
	assert_string_equal(str(p, "event"), "batch.execution.completed");
	assert_true(json_is_string(json_object_get(p, "timestamp")));
	assert_string_equal(str(p, "batch_id"), id);
	assert_string_equal(str(p, "execution_id"), x0);
	assert_string_equal(str(p, "status"), "SUCCESS");
	assert_string_equal(str(p, "workflow_id"), wf0);
	assert_int_equal(json_array_size(json_object_get(p, "outputs")), 1);
	json_decref(p);
	p = payload_of(json_array_get(items, 1));
	assert_string_equal(str(p, "execution_id"), x1);
	assert_string_equal(str(p, "status"), "FAILED");
	assert_string_equal(str(json_object_get(p, "error"), "code"),
			    "PROVIDER_REJECTED");
	json_decref(p);
	json_decref(items);
	free(x0);
	free(x1);
	free(wf0);
	free(wf1);
	free(id);
}

/* Without execution_events only batch.completed; without webhook_url
 * nothing; a build failure and a cancelled batch report too. */
static void test_webhook_settings(void **state)
{
	char *quiet = new_batch(2, "{\"webhook_url\": \"" HOOK_URL "\"}");
	char *none = new_batch(2, "{\"execution_events\": true}");
	char *cancelled;
	json_t *items, *b, *p;
	struct kiln_err err = {0};
	json_t *out = NULL;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(none, 0, 's');
	end_exec(none, 1, 'f');
	expect_counts(none, "COMPLETED_WITH_ERRORS", 0, 0, 1, 1, 0);
	items = deliveries(NULL);
	assert_int_equal(json_array_size(items), 0);
	json_decref(items);

	end_exec(quiet, 0, 'f');
	items = deliveries(NULL);
	assert_int_equal(json_array_size(items), 0);
	json_decref(items);
	end_exec(quiet, 1, 's');
	items = deliveries(NULL);
	assert_int_equal(json_array_size(items), 1);
	assert_string_equal(str(json_array_get(items, 0), "event"),
			    "batch.completed");
	json_decref(items);

	/* The only asset cannot build: the batch fails, and says so. */
	b = make_batch(1, "{\"webhook_url\": \"" HOOK_URL "\","
			  " \"execution_events\": true}");
	asset_inputs(b, 0, "{\"prompt\": 1}");
	free(insert_batch(b));
	assert_int_equal(dispatch(MANY, MANY), 1);
	items = deliveries(NULL);
	assert_int_equal(json_array_size(items), 3);
	assert_string_equal(str(json_array_get(items, 0), "event"),
			    "batch.completed");
	assert_string_equal(str(json_array_get(items, 1), "event"),
			    "batch.execution.failed");
	p = payload_of(json_array_get(items, 1));
	assert_string_equal(str(json_object_get(p, "error"), "code"),
			    "INVALID_INPUT");
	json_decref(p);
	p = payload_of(json_array_get(items, 0));
	assert_string_equal(str(p, "status"), "FAILED");
	json_decref(p);
	json_decref(items);

	/* Cancelled while pending: batch.completed at once. */
	cancelled = new_batch(2, "{\"webhook_url\": \"" HOOK_URL "\","
				 " \"execution_events\": true}");
	assert_int_equal(kiln_store_cancel_batch(st(), cancelled, NULL, &out,
						 &err),
			 KILN_OK);
	json_decref(out);
	items = deliveries("batch.completed");
	assert_int_equal(json_array_size(items), 3);
	p = payload_of(json_array_get(items, 0));
	assert_string_equal(str(p, "batch_id"), cancelled);
	assert_string_equal(str(p, "status"), "CANCELLED");
	json_decref(p);
	json_decref(items);
	free(cancelled);
	free(quiet);
	free(none);
}

/* Each end of a batch is reported: a retried batch ends again. */
static void test_webhook_after_retry(void **state)
{
	struct kiln_err err = {0};
	char *id = new_batch(1, "{\"webhook_url\": \"" HOOK_URL "\"}");
	json_t *out = NULL, *items, *p;

	(void)state;
	dispatch(MANY, MANY);
	end_exec(id, 0, 'f');
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, NULL, &out,
						&err),
			 KILN_OK);
	json_decref(out);
	dispatch(MANY, MANY);
	end_exec(id, 0, 's');
	items = deliveries("batch.completed");
	assert_int_equal(json_array_size(items), 2);
	p = payload_of(json_array_get(items, 0));
	assert_string_equal(str(p, "status"), "COMPLETED");
	json_decref(p);
	p = payload_of(json_array_get(items, 1));
	assert_string_equal(str(p, "status"), "FAILED");
	json_decref(p);
	json_decref(items);
	free(id);
}

/* ---- hooks --------------------------------------------------------------- */

#define SEEN_MAX 16
static int batch_calls, end_calls;
static const char *watched; /* the batch the hooks look at */
static char seen_status[SEEN_MAX][32];
static json_int_t seen_completed[SEEN_MAX];
static char ended_wf[SEEN_MAX][KILN_UUID_LEN];
static char ended_exec[SEEN_MAX][16];

/* What a reader sees when told: the commit must be done. */
static void on_batch(void *ctx)
{
	assert_ptr_equal(ctx, &batch_calls);
	if (batch_calls < SEEN_MAX && watched != NULL) {
		json_t *b = get_batch(watched);

		snprintf(seen_status[batch_calls], 32, "%s", str(b, "status"));
		seen_completed[batch_calls] =
			num(json_object_get(b, "assets"), "completed");
		json_decref(b);
	}
	batch_calls++;
}

static void on_end(void *ctx, const char *wf_id)
{
	assert_ptr_equal(ctx, &end_calls);
	assert_non_null(wf_id);
	if (end_calls < SEEN_MAX) {
		struct kiln_exec_filter f = {.limit = MANY};
		json_t *l, *e;
		size_t i;

		snprintf(ended_wf[end_calls], KILN_UUID_LEN, "%s", wf_id);
		snprintf(ended_exec[end_calls], 16, "none");
		if (watched != NULL) {
			l = list_execs(watched, &f);
			json_array_foreach(json_object_get(l, "executions"), i,
					   e)
				if (json_is_string(json_object_get(
					    e, "workflow_id")) &&
				    strcmp(str(e, "workflow_id"), wf_id) == 0)
					snprintf(ended_exec[end_calls], 16,
						 "%s", str(e, "status"));
			json_decref(l);
		}
	}
	end_calls++;
}

/* A template run's workflow, ready to insert (owned). */
static json_t *run_workflow(const char *tenant)
{
	json_t *inputs = parse("{\"prompt\": \"p\", \"image\": {\"url\":"
			       " \"https://cdn.test/r.png\"}}");
	json_t *run = json_pack("{s:s?}", "origin_tenant_id", tenant);
	json_t *detail = json_array(), *wf;
	char id[KILN_UUID_LEN];

	wf = kiln_template_run_workflow(def, inputs, run, &cfg, detail);
	assert_non_null(wf);
	assert_int_equal(json_array_size(detail), 0);
	kiln_uuid_new(id);
	json_object_set_new(wf, "id", json_string(id));
	json_object_set_new(wf, "status", json_string("RUNNING"));
	json_object_set_new(wf, "template_id", json_string("tpl-1"));
	json_object_set_new(wf, "template_version", json_integer(1));
	json_decref(detail);
	json_decref(run);
	json_decref(inputs);
	return wf;
}

static void test_hooks(void **state)
{
	struct kiln_err err = {0};
	json_t *b = make_batch(2, "{\"concurrency_limit\": 1}");
	json_t *out = NULL, *ids, *claims = NULL, *wf;
	char *id = strdup(str(b, "id")), *wf0, *wf1, *x0, *existing = NULL;
	char *bad;

	(void)state;
	batch_calls = end_calls = 0;
	watched = id;
	kiln_store_on_batch_change(on_batch, &batch_calls);
	kiln_store_on_workflow_end(on_end, &end_calls);

	/* Created: told, and the batch is there. */
	free(insert_batch(b));
	assert_int_equal(batch_calls, 1);
	assert_string_equal(seen_status[0], "PENDING");
	/* A start neither ends a workflow nor makes room. */
	assert_int_equal(dispatch(MANY, MANY), 1);
	assert_int_equal(batch_calls, 1);
	assert_int_equal(end_calls, 0);
	/* Nothing to do: nothing said. */
	assert_int_equal(dispatch(MANY, MANY), 0);
	assert_int_equal(batch_calls, 1);

	/* An execution ends: both hooks, after its commit. */
	wf0 = wf_of(id, 0);
	succeed(wf0, 0.5);
	assert_int_equal(end_calls, 1);
	assert_string_equal(ended_wf[0], wf0);
	assert_string_equal(ended_exec[0], "SUCCESS");
	assert_int_equal(batch_calls, 2);
	assert_string_equal(seen_status[1], "RUNNING");
	assert_int_equal(seen_completed[1], 1);

	assert_int_equal(dispatch(MANY, MANY), 1);
	wf1 = wf_of(id, 1);
	fail_wf(wf1);
	assert_int_equal(end_calls, 2);
	assert_string_equal(ended_wf[1], wf1);
	assert_string_equal(ended_exec[1], "FAILED");
	assert_int_equal(batch_calls, 3);
	assert_string_equal(seen_status[2], "COMPLETED_WITH_ERRORS");

	/* A refused retry: not told. */
	x0 = exec_id_of(id, 0);
	ids = json_pack("[s]", x0);
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, ids, &out,
						&err),
			 KILN_ECONFLICT);
	json_decref(ids);
	assert_int_equal(batch_calls, 3);
	/* A retry: told (there is work again), nothing ended. */
	assert_int_equal(kiln_store_retry_batch(st(), id, NULL, NULL, &out,
						&err),
			 KILN_OK);
	json_decref(out);
	assert_int_equal(batch_calls, 4);
	assert_string_equal(seen_status[3], "RUNNING");
	assert_int_equal(end_calls, 2);

	/* A build that fails ends its execution: told. */
	b = make_batch(1, NULL);
	asset_inputs(b, 0, "{\"prompt\": 3}");
	bad = insert_batch(b);
	assert_int_equal(batch_calls, 5);
	assert_int_equal(dispatch(MANY, MANY), 2);
	assert_int_equal(batch_calls, 6);
	assert_int_equal(end_calls, 2);

	/* A workflow outside batches: its end only. */
	wf = run_workflow(NULL);
	assert_int_equal(kiln_store_insert_run(st(), wf, NULL, &who, &claims,
					       &existing, &err),
			 KILN_OK);
	assert_null(existing);
	json_decref(claims);
	cancel_wf(str(wf, "id"));
	assert_int_equal(end_calls, 3);
	assert_string_equal(ended_wf[2], str(wf, "id"));
	assert_string_equal(ended_exec[2], "none");
	assert_int_equal(batch_calls, 6);
	json_decref(wf);

	/* Unset: no more calls. */
	kiln_store_on_batch_change(NULL, NULL);
	kiln_store_on_workflow_end(NULL, NULL);
	watched = NULL;
	free(new_batch(1, NULL));
	free(wf1);
	wf1 = wf_of(id, 1);
	succeed(wf1, 0.1);
	assert_int_equal(batch_calls, 6);
	assert_int_equal(end_calls, 3);
	free(bad);
	free(x0);
	free(wf0);
	free(wf1);
	free(id);
}

/* ---- Idempotency-Keys --------------------------------------------------- */

static void test_idempotent_runs(void **state)
{
	struct kiln_err err = {0};
	char h1[KILN_IDEM_HASH_LEN], h2[KILN_IDEM_HASH_LEN];
	json_t *body1 = parse("{\"inputs\": {\"prompt\": \"p\"}}");
	json_t *body2 = parse("{\"inputs\": {\"prompt\": \"q\"}}");
	struct kiln_idem idem = {"key-1", TENANT, h1};
	json_t *wf1 = run_workflow(TENANT), *wf2 = run_workflow(TENANT), *w;
	json_t *claims = NULL;
	char *existing = NULL;

	(void)state;
	assert_int_equal(kiln_idem_hash("POST", "/api/v1/templates/tpl-1/run",
					body1, h1),
			 0);
	assert_int_equal(kiln_idem_hash("POST", "/api/v1/templates/tpl-1/run",
					body2, h2),
			 0);
	assert_int_equal(kiln_store_insert_run(st(), wf1, &idem, &who, &claims,
					       &existing, &err),
			 KILN_OK);
	assert_null(existing);
	assert_int_equal(json_array_size(claims), 1);
	json_decref(claims);
	claims = NULL;
	w = workflow(str(wf1, "id"));
	assert_string_equal(str(w, "template_id"), "tpl-1");
	assert_true(json_is_null(json_object_get(w, "batch_id")));
	json_decref(w);

	/* The same key and request: the first run, nothing inserted. */
	assert_int_equal(kiln_store_insert_run(st(), wf2, &idem, &who, &claims,
					       &existing, &err),
			 KILN_OK);
	assert_non_null(existing);
	assert_string_equal(existing, str(wf1, "id"));
	assert_int_equal(json_array_size(claims), 0);
	json_decref(claims);
	claims = NULL;
	free(existing);
	existing = NULL;
	assert_int_equal(kiln_store_get_workflow(st(), str(wf2, "id"), NULL,
						 &w, &err),
			 KILN_ENOTFOUND);

	/* The same key, another request: conflict. */
	idem.hash = h2;
	assert_int_equal(kiln_store_insert_run(st(), wf2, &idem, &who, &claims,
					       &existing, &err),
			 KILN_ECONFLICT);
	assert_int_equal(err.code, KILN_ECONFLICT);
	assert_null(existing);
	assert_null(claims);
	assert_int_equal(kiln_store_get_workflow(st(), str(wf2, "id"), NULL,
						 &w, &err),
			 KILN_ENOTFOUND);

	/* Keys are per tenant (no tenant is one of them). */
	idem.tenant = "other";
	assert_int_equal(kiln_store_insert_run(st(), wf2, &idem, &who, &claims,
					       &existing, &err),
			 KILN_OK);
	assert_null(existing);
	json_decref(claims);
	claims = NULL;
	json_decref(wf2);
	wf2 = run_workflow(NULL);
	idem.tenant = NULL;
	assert_int_equal(kiln_store_insert_run(st(), wf2, &idem, &who, &claims,
					       &existing, &err),
			 KILN_OK);
	assert_null(existing);
	json_decref(claims);
	claims = NULL;
	w = workflow(str(wf2, "id"));
	json_decref(w);
	json_decref(wf2);

	/* Without a key, every request inserts. */
	idem.key = NULL;
	wf2 = run_workflow(TENANT);
	assert_int_equal(kiln_store_insert_run(st(), wf2, &idem, &who, &claims,
					       &existing, &err),
			 KILN_OK);
	assert_null(existing);
	json_decref(claims);
	claims = NULL;
	json_decref(wf2);
	wf2 = run_workflow(TENANT);
	assert_int_equal(kiln_store_insert_run(st(), wf2, NULL, NULL, &claims,
					       &existing, &err),
			 KILN_OK);
	assert_null(existing);
	json_decref(claims);
	w = workflow(str(wf2, "id"));
	json_decref(w);
	json_decref(wf2);
	json_decref(wf1);
	json_decref(body1);
	json_decref(body2);
}

static json_int_t batch_total(const struct kiln_batch_filter *f,
			      const struct kiln_scope *scope)
{
	struct kiln_err err = {0};
	json_t *l = NULL;
	json_int_t n;

	assert_int_equal(kiln_store_list_batches(st(), f, scope, &l, &err),
			 KILN_OK);
	n = num(json_object_get(l, "pagination"), "total");
	json_decref(l);
	return n;
}

static void test_idempotent_batches(void **state)
{
	struct kiln_err err = {0};
	struct kiln_batch_filter all = {.limit = 100};
	struct kiln_idem idem = {"batch-key", TENANT, NULL};
	char h1[KILN_IDEM_HASH_LEN], h2[KILN_IDEM_HASH_LEN];
	json_t *body1 = parse("{\"template_id\": \"tpl-1\", \"assets\": [1]}");
	json_t *body2 = parse("{\"template_id\": \"tpl-1\", \"assets\": [2]}");
	json_t *b1 = make_batch(2, NULL), *b2 = make_batch(3, NULL);
	json_t *rendered = NULL;
	char *existing = NULL;
	int calls_before;

	(void)state;
	assert_int_equal(kiln_idem_hash("POST", "/api/v1/batches", body1, h1),
			 0);
	assert_int_equal(kiln_idem_hash("POST", "/api/v1/batches", body2, h2),
			 0);
	idem.hash = h1;
	assert_int_equal(kiln_store_insert_batch(st(), b1, &idem, &rendered,
						 &existing, &err),
			 KILN_OK);
	assert_null(existing);
	assert_string_equal(str(rendered, "id"), str(b1, "id"));
	json_decref(rendered);
	rendered = NULL;

	/* A replay: the first batch rendered, nothing inserted, nobody
	 * told. */
	batch_calls = 0;
	kiln_store_on_batch_change(on_batch, &batch_calls);
	watched = NULL;
	calls_before = batch_calls;
	assert_int_equal(kiln_store_insert_batch(st(), b2, &idem, &rendered,
						 &existing, &err),
			 KILN_OK);
	assert_non_null(existing);
	assert_string_equal(existing, str(b1, "id"));
	assert_non_null(rendered);
	assert_string_equal(str(rendered, "id"), str(b1, "id"));
	assert_int_equal(num(json_object_get(rendered, "assets"), "total"), 2);
	json_decref(rendered);
	rendered = NULL;
	free(existing);
	existing = NULL;
	assert_int_equal(batch_calls, calls_before);
	assert_int_equal(batch_total(&all, NULL), 1);

	/* Another request with the key: conflict. */
	idem.hash = h2;
	assert_int_equal(kiln_store_insert_batch(st(), b2, &idem, &rendered,
						 &existing, &err),
			 KILN_ECONFLICT);
	assert_int_equal(err.code, KILN_ECONFLICT);
	assert_null(rendered);
	assert_null(existing);
	assert_int_equal(batch_total(&all, NULL), 1);
	assert_int_equal(batch_calls, calls_before);

	/* Another tenant's key of the same name is another key. */
	idem.tenant = "other";
	assert_int_equal(kiln_store_insert_batch(st(), b2, &idem, &rendered,
						 &existing, &err),
			 KILN_OK);
	assert_null(existing);
	assert_string_equal(str(rendered, "id"), str(b2, "id"));
	json_decref(rendered);
	assert_int_equal(batch_total(&all, NULL), 2);
	json_decref(b1);
	json_decref(b2);
	json_decref(body1);
	json_decref(body2);
}

/* ---- lists ----------------------------------------------------------- */

/* The ids of a batch list page, in order, as "id,id,..." compared to the
 * wanted ones. */
static void expect_page(const struct kiln_batch_filter *f,
			const struct kiln_scope *scope, const char *const *want,
			size_t n, json_int_t total, int has_more)
{
	struct kiln_err err = {0};
	json_t *l = NULL, *items, *pg;
	size_t i;

	assert_int_equal(kiln_store_list_batches(st(), f, scope, &l, &err),
			 KILN_OK);
	items = json_object_get(l, "batches");
	pg = json_object_get(l, "pagination");
	if (json_array_size(items) != n || num(pg, "total") != total ||
	    json_is_true(json_object_get(pg, "has_more")) != has_more) {
		char *t = json_dumps(pg, 0);

		fail_msg("got %zu batches, pagination %s; wanted %zu of %d",
			 json_array_size(items), t, n, (int)total);
	}
	for (i = 0; i < n; i++)
		if (strcmp(str(json_array_get(items, i), "id"), want[i]) != 0)
			fail_msg("batch %zu is not the one expected", i);
	assert_int_equal(num(pg, "limit"), f->limit);
	assert_int_equal(num(pg, "offset"), f->offset);
	json_decref(l);
}

static void test_list_batches(void **state)
{
	struct kiln_err err = {0};
	struct kiln_scope acme = {TENANT}, other = {"other"};
	struct kiln_batch_filter f = {.limit = 100};
	char *b1, *b2, *b3;
	int64_t mid1, mid2;
	json_t *out = NULL, *l = NULL, *item;

	(void)state;
	insert_template("tpl-2", TENANT);
	b1 = new_batch(1, NULL);
	usleep(3000);
	mid1 = kiln_now_ms();
	usleep(3000);
	b2 = new_batch(1, "{\"template_id\": \"tpl-2\"}");
	usleep(3000);
	mid2 = kiln_now_ms();
	usleep(3000);
	b3 = new_batch(2, "{\"tenant_id\": \"other\"}");
	assert_int_equal(kiln_store_cancel_batch(st(), b1, NULL, &out, &err),
			 KILN_OK);
	json_decref(out);

	{
		const char *all[] = {b3, b2, b1};
		const char *pending[] = {b3, b2};
		const char *only1[] = {b1}, *only2[] = {b2}, *only3[] = {b3};
		const char *acme_ids[] = {b2, b1};

		expect_page(&f, NULL, all, 3, 3, 0);
		f.status = "CANCELLED";
		expect_page(&f, NULL, only1, 1, 1, 0);
		f.status = "PENDING";
		expect_page(&f, NULL, pending, 2, 2, 0);
		f.status = "RUNNING";
		expect_page(&f, NULL, NULL, 0, 0, 0);
		f.status = NULL;
		f.template_id = "tpl-2";
		expect_page(&f, NULL, only2, 1, 1, 0);
		f.template_id = "tpl-9";
		expect_page(&f, NULL, NULL, 0, 0, 0);
		f.template_id = NULL;
		f.tenant_id = "other";
		expect_page(&f, NULL, only3, 1, 1, 0);
		/* Scope and filter together. */
		expect_page(&f, &acme, NULL, 0, 0, 0);
		expect_page(&f, &other, only3, 1, 1, 0);
		f.tenant_id = NULL;
		expect_page(&f, &acme, acme_ids, 2, 2, 0);
		/* Times: strictly after, strictly before. */
		f.created_after = mid1;
		expect_page(&f, NULL, pending, 2, 2, 0);
		f.created_after = 0;
		f.created_before = mid2;
		expect_page(&f, NULL, acme_ids, 2, 2, 0);
		f.created_after = mid1;
		expect_page(&f, NULL, only2, 1, 1, 0);
		f.created_before = 0;
		f.created_after = mid2;
		f.status = "PENDING";
		expect_page(&f, NULL, only3, 1, 1, 0);
		f.status = NULL;
		f.created_after = 0;
		/* Pages. */
		f.limit = 2;
		expect_page(&f, NULL, all, 2, 3, 1);
		f.offset = 2;
		expect_page(&f, NULL, all + 2, 1, 3, 0);
		f.offset = 5;
		expect_page(&f, NULL, NULL, 0, 3, 0);
	}

	/* List rows: counts, priority and links as GET shows them. */
	f.offset = 0;
	f.limit = 1;
	assert_int_equal(kiln_store_list_batches(st(), &f, NULL, &l, &err),
			 KILN_OK);
	item = json_array_get(json_object_get(l, "batches"), 0);
	assert_string_equal(str(item, "id"), b3);
	assert_string_equal(str(item, "status"), "PENDING");
	assert_string_equal(str(item, "priority"), "NORMAL");
	assert_string_equal(str(item, "origin_tenant_id"), "other");
	assert_int_equal(num(json_object_get(item, "assets"), "total"), 2);
	assert_true(json_is_object(json_object_get(item, "links")));
	assert_true(json_is_object(json_object_get(item, "timing")));
	/* Lists leave out the percentiles and the failed ids. */
	assert_null(json_object_get(json_object_get(item, "timing"),
				    "p50_execution_ms"));
	assert_null(json_object_get(item, "failed_execution_ids"));
	json_decref(l);
	free(b1);
	free(b2);
	free(b3);
}

static void expect_exec_page(const char *id, const struct kiln_exec_filter *f,
			     const int *want, size_t n, json_int_t total,
			     int has_more)
{
	json_t *l = list_execs(id, f), *items = json_object_get(l,
								 "executions");
	json_t *pg = json_object_get(l, "pagination");
	size_t i;

	assert_string_equal(str(l, "batch_id"), id);
	if (json_array_size(items) != n || num(pg, "total") != total ||
	    json_is_true(json_object_get(pg, "has_more")) != has_more)
		fail_msg("got %zu executions of %d; wanted %zu of %d",
			 json_array_size(items), (int)num(pg, "total"), n,
			 (int)total);
	for (i = 0; i < n; i++)
		assert_int_equal(num(json_array_get(items, i), "asset_index"),
				 want[i]);
	json_decref(l);
}

static void test_list_executions(void **state)
{
	json_t *b = make_batch(5, "{\"concurrency_limit\": 2}");
	struct kiln_exec_filter f = {.limit = 100};
	char *id;

	(void)state;
	json_object_set_new(json_array_get(json_object_get(b, "assets"), 3),
			    "asset_id", json_string("dup"));
	json_object_set_new(json_array_get(json_object_get(b, "assets"), 4),
			    "asset_id", json_string("dup"));
	id = insert_batch(b);
	dispatch(MANY, MANY);
	end_exec(id, 1, 'f');
	{
		static const int all[] = {0, 1, 2, 3, 4};
		static const int running[] = {0}, failed[] = {1};
		static const int pending[] = {2, 3, 4}, dup[] = {3, 4};

		expect_exec_page(id, &f, all, 5, 5, 0);
		f.status = "RUNNING";
		expect_exec_page(id, &f, running, 1, 1, 0);
		f.status = "FAILED";
		expect_exec_page(id, &f, failed, 1, 1, 0);
		f.status = "PENDING";
		expect_exec_page(id, &f, pending, 3, 3, 0);
		f.status = "SUCCESS";
		expect_exec_page(id, &f, NULL, 0, 0, 0);
		f.status = NULL;
		f.asset_id = "a2";
		expect_exec_page(id, &f, pending, 1, 1, 0);
		f.asset_id = "dup";
		expect_exec_page(id, &f, dup, 2, 2, 0);
		f.status = "PENDING";
		expect_exec_page(id, &f, dup, 2, 2, 0);
		f.status = "RUNNING";
		expect_exec_page(id, &f, NULL, 0, 0, 0);
		f.status = NULL;
		f.asset_id = "zzz";
		expect_exec_page(id, &f, NULL, 0, 0, 0);
		f.asset_id = NULL;
		f.limit = 2;
		f.offset = 1;
		expect_exec_page(id, &f, all + 1, 2, 5, 1);
		f.offset = 3;
		expect_exec_page(id, &f, all + 3, 2, 5, 0);
		f.offset = 4;
		expect_exec_page(id, &f, all + 4, 1, 5, 0);
		f.offset = 9;
		expect_exec_page(id, &f, NULL, 0, 5, 0);
	}
	free(id);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_insert_renders),
		T(test_get_unknown_and_scope),
		T(test_dispatch_starts_workflow),
		T(test_concurrency_limit),
		T(test_max_starts),
		T(test_max_running_global),
		T(test_priority_order),
		T(test_priority_in_one_dispatch),
		T(test_round_robin),
		T(test_round_robin_in_one_dispatch),
		T(test_completed_with_errors),
		T(test_all_succeed_completed),
		T(test_all_fail_failed),
		T(test_cancelled_executions),
		T(test_build_failure),
		T(test_build_failure_uses_no_slot),
		T(test_build_failure_stops_batch),
		T(test_timing_with_build_failure),
		T(test_cancel_running_batch),
		T(test_cancel_pending_and_ended),
		T(test_retry_failed),
		T(test_retry_listed),
		T(test_retry_nothing),
		T(test_retry_duplicate_ids),
		T(test_stop_on_first_failure),
		T(test_stop_then_running_finishes),
		T(test_resumed_execution_workflow),
		T(test_webhook_events),
		T(test_webhook_settings),
		T(test_webhook_after_retry),
		T(test_hooks),
		T(test_idempotent_runs),
		T(test_idempotent_batches),
		T(test_list_batches),
		T(test_list_executions),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
