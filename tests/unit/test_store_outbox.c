/*
 * test_store_outbox.c - the webhook outbox on real SQLite files
 * (src/store_outbox.c, src/store_deliveries.c): which state changes queue
 * which events, the commit hook, claiming with per-endpoint limits,
 * recording attempts, crash recovery, redelivery, and the delivery log.
 *
 * Workflows are driven through the engine's own store calls (advance,
 * claim, finish, cancel), as test_store.c does.
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
#include "kiln/webhook_event.h"
#include "kiln/workflow_validate.h"

#define URL_A "https://hooks.example.test/a"
#define EP_A "https://hooks.example.test:443"
#define URL_B "https://other.example.test/b"
#define EP_B "https://other.example.test:443"

static char data_dir[64];
static struct kiln_config cfg;
static const struct kiln_attempt_end ok_end = {"succeeded", 200, NULL,
						 NULL};
static const struct kiln_claimer who = {"me", INT64_MAX};

#define STEPS                                                               \
	"\"origin_instance\":\"api-test\","                                  \
	"\"steps\":[{\"id\":\"generate\",\"task_type\":\"GENERATION\","     \
	"\"config\":{\"prompt\":\"dress\"}},"                               \
	"{\"id\":\"refine\",\"task_type\":\"REFINE\",\"depends_on\":"       \
	"[\"generate\"]}]"

/* Step events on. */
static const char *HOOKED =
	"{\"name\":\"Hooked\",\"webhook_url\":\"" URL_A "\","
	"\"suppress_subtask_events\":false,\"origin_reference\":\"ref-1\","
	STEPS "}";
/* Step events suppressed (the default). */
static const char *HOOKED_QUIET =
	"{\"name\":\"Quiet\",\"webhook_url\":\"" URL_A "\"," STEPS "}";
static const char *HOOKED_B =
	"{\"name\":\"Other receiver\",\"webhook_url\":\"" URL_B "\"," STEPS
	"}";
static const char *UNHOOKED =
	"{\"name\":\"No hook\",\"suppress_subtask_events\":false," STEPS "}";

static int setup(void **state)
{
	struct kiln_err err = {0};

	(void)state;
	snprintf(data_dir, sizeof(data_dir), "/tmp/kiln-outbox-XXXXXX");
	assert_non_null(mkdtemp(data_dir));
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	assert_int_equal(kiln_store_init(data_dir, &err), KILN_OK);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	kiln_store_on_delivery(NULL, NULL);
	kiln_store_shutdown();
	kiln_config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", data_dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct kiln_store *st(void)
{
	struct kiln_store *s = kiln_store_thread(NULL);

	assert_non_null(s);
	return s;
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
	if (json_array_size(detail) != 0) {
		char *d = json_dumps(detail, 0);

		fail_msg("invalid test workflow: %s", d);
	}
	assert_non_null(wf);
	kiln_uuid_new(id);
	json_object_set_new(wf, "id", json_string(id));
	json_object_set_new(wf, "status", json_string(status));
	if (tenant)
		json_object_set_new(wf, "origin_tenant_id",
				    json_string(tenant));
	assert_int_equal(kiln_store_insert_workflow(st(), wf, NULL, NULL, NULL,
						    &err),
			 KILN_OK);
	json_decref(wf);
	json_decref(body);
	json_decref(detail);
	return strdup(id);
}

/* Advances a RUNNING workflow and claims its first (only) ready step. */
static json_t *claim_first(const char *wf_id)
{
	struct kiln_err err = {0};
	json_t *claims = NULL, *claim;

	assert_int_equal(kiln_store_advance_claim(st(), wf_id, &who, &claims,
						  &err),
			 KILN_OK);
	assert_int_equal(json_array_size(claims), 1);
	claim = json_incref(json_array_get(claims, 0));
	json_decref(claims);
	return claim;
}

/* Finishes claim successfully; returns the next claim or NULL. */
static json_t *succeed(json_t *claim)
{
	struct kiln_err err = {0};
	json_t *result = json_pack("{s:s, s:f}", "url", "https://x/o.png",
				   "credit_cost", 0.5);
	json_t *claims = NULL, *next = NULL;

	assert_int_equal(kiln_store_finish_step(st(), str(claim, "uuid"),
						str(claim, "task_id"), result,
						&ok_end, &who, &claims, &err),
			 KILN_OK);
	if (json_array_size(claims) > 0)
		next = json_incref(json_array_get(claims, 0));
	json_decref(claims);
	json_decref(result);
	json_decref(claim);
	return next;
}

/* Runs a RUNNING two-step workflow to COMPLETED. */
static void complete(const char *wf_id)
{
	json_t *claim = claim_first(wf_id);

	assert_string_equal(str(claim, "step_id"), "generate");
	claim = succeed(claim);
	assert_non_null(claim);
	assert_string_equal(str(claim, "step_id"), "refine");
	assert_null(succeed(claim));
}

static json_t *list(const struct kiln_delivery_filter *f,
		    const struct kiln_scope *scope)
{
	struct kiln_err err = {0};
	json_t *out = NULL;

	assert_int_equal(kiln_store_list_deliveries(st(), f, scope, &out,
						    &err),
			 KILN_OK);
	assert_non_null(out);
	return out;
}

static json_int_t total_of(const json_t *l)
{
	return num(json_object_get(l, "pagination"), "total");
}

/* The deliveries of one workflow, newest first (owned). */
static json_t *deliveries_of(const char *wf_id)
{
	struct kiln_delivery_filter f = {.workflow_id = wf_id, .limit = 100};
	json_t *l = list(&f, NULL);
	json_t *items = json_incref(json_object_get(l, "deliveries"));

	json_decref(l);
	return items;
}

static json_t *get_delivery(const char *id)
{
	struct kiln_err err = {0};
	json_t *d = NULL;

	assert_int_equal(kiln_store_get_delivery(st(), id, NULL, &d, &err),
			 KILN_OK);
	assert_non_null(d);
	return d;
}

/* The id of the workflow's single delivery of event (owned copy). */
static char *delivery_id(const char *wf_id, const char *event)
{
	json_t *items = deliveries_of(wf_id), *d;
	char *id = NULL;
	size_t i;

	json_array_foreach(items, i, d) {
		if (strcmp(str(d, "event"), event) != 0)
			continue;
		assert_null(id);
		id = strdup(str(d, "id"));
	}
	json_decref(items);
	if (id == NULL)
		fail_msg("no %s delivery for %s", event, wf_id);
	return id;
}

static json_t *claim_deliveries(int64_t now, const char *inflight_text,
				int per_endpoint, size_t max)
{
	struct kiln_err err = {0};
	json_t *inflight = json_loads(inflight_text, 0, NULL);
	json_t *claimed = NULL;

	assert_non_null(inflight);
	assert_int_equal(kiln_store_claim_deliveries(st(), now, inflight,
						     per_endpoint, max,
						     &claimed, &err),
			 KILN_OK);
	assert_non_null(claimed);
	json_decref(inflight);
	return claimed;
}

static size_t count_endpoint(const json_t *claimed, const char *ep)
{
	size_t i, n = 0;
	json_t *c;

	json_array_foreach(claimed, i, c)
		n += strcmp(str(c, "endpoint"), ep) == 0;
	return n;
}

static void record(const char *id, int attempt, int delivered,
		   long http_status, const char *excerpt, const char *error,
		   int64_t retry_at)
{
	struct kiln_err err = {0};
	struct kiln_delivery_attempt a = {id,	     attempt,
					  kiln_now_ms(), 42,
					  delivered, http_status,
					  excerpt,   error,
					  retry_at};

	assert_int_equal(kiln_store_record_deliveries(st(), &a, 1, &err),
			 KILN_OK);
}

static int64_t next_at(const char *full_text)
{
	struct kiln_err err = {0};
	json_t *full = full_text ? json_loads(full_text, 0, NULL) : NULL;
	int64_t at = -2;

	assert_int_equal(kiln_store_next_delivery_at(st(), full, &at, &err),
			 KILN_OK);
	json_decref(full);
	return at;
}

static void assert_time(const json_t *v, int64_t ms)
{
	char want[KILN_RFC3339_LEN];

	kiln_rfc3339(ms, want);
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), want);
}

/* ---- what queues what -------------------------------------------------- */

static void test_completion_queues_events(void **state)
{
	char *id = insert(HOOKED, "RUNNING", "t1");
	json_t *items, *d, *l, *payload;
	struct kiln_delivery_filter f = {.workflow_id = NULL, .limit = 1};
	struct kiln_scope t1 = {"t1"}, t2 = {"t2"};
	size_t i;

	(void)state;
	complete(id);
	items = deliveries_of(id);
	assert_int_equal(json_array_size(items), 3);
	/* Newest first. */
	assert_string_equal(str(json_array_get(items, 0), "event"),
			    "workflow.completed");
	assert_true(json_is_null(
		json_object_get(json_array_get(items, 0), "step_id")));
	assert_string_equal(str(json_array_get(items, 1), "event"),
			    "step.completed");
	assert_string_equal(str(json_array_get(items, 1), "step_id"),
			    "refine");
	assert_string_equal(str(json_array_get(items, 2), "event"),
			    "step.completed");
	assert_string_equal(str(json_array_get(items, 2), "step_id"),
			    "generate");
	json_array_foreach(items, i, d) {
		assert_string_equal(str(d, "status"), "pending");
		assert_string_equal(str(d, "url"), URL_A);
		assert_string_equal(str(d, "workflow_id"), id);
		assert_string_equal(str(d, "tenant_id"), "t1");
		assert_int_equal(num(d, "attempt_count"), 0);
		assert_true(
			json_is_null(json_object_get(d, "in_flight_since")));
		assert_true(json_is_null(json_object_get(d, "completed_at")));
		assert_true(json_is_string(json_object_get(d, "created_at")));
		assert_int_equal(strncmp(str(d, "id"), "msg_", 4), 0);
		/* The list leaves payloads out. */
		assert_null(json_object_get(d, "payload"));
	}
	/* Distinct event ids. */
	assert_string_not_equal(str(json_array_get(items, 0), "id"),
				str(json_array_get(items, 1), "id"));

	/* The payload is stored as JSON and names the delivery's id. */
	d = get_delivery(str(json_array_get(items, 0), "id"));
	payload = json_object_get(d, "payload");
	assert_true(json_is_object(payload));
	assert_string_equal(str(payload, "id"),
			    str(json_array_get(items, 0), "id"));
	assert_string_equal(str(payload, "event"), "workflow.completed");
	assert_string_equal(str(payload, "job_id"), id);
	assert_string_equal(str(payload, "status"), "success");
	assert_string_equal(str(payload, "workflow_status"), "COMPLETED");
	assert_string_equal(str(payload, "origin_reference"), "ref-1");
	assert_string_equal(str(payload, "origin_tenant_id"), "t1");
	assert_int_equal(json_array_size(json_object_get(payload, "steps")), 2);
	assert_string_equal(str(json_array_get(json_object_get(payload,
								 "outputs"),
					       0),
				"asset_url"),
			    "https://x/o.png");
	assert_int_equal(json_array_size(json_object_get(d, "attempts")), 0);
	json_decref(d);
	d = get_delivery(str(json_array_get(items, 2), "id"));
	payload = json_object_get(d, "payload");
	assert_string_equal(str(payload, "event"), "step.completed");
	assert_string_equal(str(json_object_get(payload, "step"), "step_id"),
			    "generate");
	json_decref(d);

	/* Pagination. */
	f.workflow_id = id;
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 3);
	assert_int_equal(num(json_object_get(l, "pagination"), "limit"), 1);
	assert_true(json_is_true(
		json_object_get(json_object_get(l, "pagination"), "has_more")));
	assert_int_equal(json_array_size(json_object_get(l, "deliveries")), 1);
	assert_string_equal(str(json_array_get(json_object_get(l,
							       "deliveries"),
					       0),
				"event"),
			    "workflow.completed");
	json_decref(l);
	f.offset = 2;
	l = list(&f, NULL);
	assert_false(json_is_true(
		json_object_get(json_object_get(l, "pagination"), "has_more")));
	assert_string_equal(str(json_array_get(json_object_get(l,
							       "deliveries"),
					       0),
				"id"),
			    str(json_array_get(items, 2), "id"));
	json_decref(l);

	/* Filters. */
	f.offset = 0;
	f.limit = 100;
	f.event = "step.completed";
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 2);
	json_decref(l);
	f.event = "workflow.failed";
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 0);
	json_decref(l);
	f.event = NULL;
	f.status = "pending";
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 3);
	json_decref(l);
	f.status = "delivered";
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 0);
	assert_int_equal(json_array_size(json_object_get(l, "deliveries")), 0);
	json_decref(l);

	/* Tenant scope. */
	f.status = NULL;
	l = list(&f, &t1);
	assert_int_equal(total_of(l), 3);
	json_decref(l);
	l = list(&f, &t2);
	assert_int_equal(total_of(l), 0);
	assert_int_equal(json_array_size(json_object_get(l, "deliveries")), 0);
	json_decref(l);
	f.workflow_id = NULL;
	l = list(&f, &t2);
	assert_int_equal(total_of(l), 0);
	json_decref(l);

	json_decref(items);
	free(id);
}

static void test_subtask_events_suppressed_by_default(void **state)
{
	char *id = insert(HOOKED_QUIET, "RUNNING", NULL);
	json_t *items;

	(void)state;
	complete(id);
	items = deliveries_of(id);
	assert_int_equal(json_array_size(items), 1);
	assert_string_equal(str(json_array_get(items, 0), "event"),
			    "workflow.completed");
	assert_true(json_is_null(
		json_object_get(json_array_get(items, 0), "tenant_id")));
	json_decref(items);
	free(id);
}

static void test_no_webhook_url_queues_nothing(void **state)
{
	char *id = insert(UNHOOKED, "RUNNING", NULL);
	struct kiln_delivery_filter f = {.limit = 100};
	json_t *l;

	(void)state;
	complete(id);
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 0);
	json_decref(l);
	free(id);
}

static void test_failure_queues_failed_events(void **state)
{
	struct kiln_err err = {0};
	struct kiln_attempt_end bad = {"invalid_input", 0,
				       "mapping names missing field x", "x"};
	struct kiln_attempt_end down = {"transient_error", 503, "HTTP 503",
					NULL};
	char *id = insert(HOOKED, "RUNNING", NULL);
	char *id2 = insert(HOOKED, "RUNNING", NULL);
	char *did;
	json_t *claim = claim_first(id), *items, *d, *p;

	(void)state;
	assert_int_equal(kiln_store_finish_step(st(), str(claim, "uuid"),
						str(claim, "task_id"), NULL,
						&bad, NULL, NULL, &err),
			 KILN_OK);
	json_decref(claim);
	items = deliveries_of(id);
	assert_int_equal(json_array_size(items), 2);
	assert_string_equal(str(json_array_get(items, 0), "event"),
			    "workflow.failed");
	assert_string_equal(str(json_array_get(items, 1), "event"),
			    "step.failed");
	assert_string_equal(str(json_array_get(items, 1), "step_id"),
			    "generate");
	json_decref(items);

	did = delivery_id(id, "workflow.failed");
	d = get_delivery(did);
	p = json_object_get(d, "payload");
	assert_string_equal(str(p, "status"), "failed");
	assert_string_equal(str(p, "workflow_status"), "FAILED");
	assert_string_equal(str(p, "error_code"), "INVALID_INPUT");
	assert_string_equal(str(p, "field"), "x");
	assert_string_equal(str(p, "error_description"),
			    "mapping names missing field x");
	assert_null(json_object_get(p, "provider_http_status"));
	assert_string_equal(str(json_object_get(p, "step"), "step_id"),
			    "generate");
	json_decref(d);
	free(did);

	did = delivery_id(id, "step.failed");
	d = get_delivery(did);
	p = json_object_get(d, "payload");
	assert_string_equal(str(p, "status"), "failed");
	assert_string_equal(str(p, "error_code"), "INVALID_INPUT");
	assert_null(json_object_get(p, "steps"));
	json_decref(d);
	free(did);

	/* A provider outage: its HTTP status travels with the event. */
	claim = claim_first(id2);
	assert_int_equal(kiln_store_finish_step(st(), str(claim, "uuid"),
						str(claim, "task_id"), NULL,
						&down, NULL, NULL, &err),
			 KILN_OK);
	json_decref(claim);
	did = delivery_id(id2, "workflow.failed");
	d = get_delivery(did);
	p = json_object_get(d, "payload");
	assert_string_equal(str(p, "error_code"), "PROVIDER_UNAVAILABLE");
	assert_int_equal(num(p, "provider_http_status"), 503);
	assert_true(json_is_null(json_object_get(p, "field")));
	json_decref(d);
	free(did);
	free(id);
	free(id2);
}

static void test_cancel_queues_cancelled(void **state)
{
	struct kiln_err err = {0};
	char *running = insert(HOOKED_QUIET, "RUNNING", NULL);
	char *pending = insert(HOOKED_QUIET, "PENDING", NULL);
	char *plain = insert(UNHOOKED, "RUNNING", NULL);
	struct kiln_delivery_filter f = {.limit = 100};
	json_t *claim = claim_first(running), *items, *d, *p, *l;
	char *did;

	(void)state;
	json_decref(claim);
	assert_int_equal(kiln_store_workflow_action(st(), running, NULL,
						    KILN_WF_ACTION_CANCEL,
						    NULL, &err),
			 KILN_OK);
	items = deliveries_of(running);
	assert_int_equal(json_array_size(items), 1);
	assert_string_equal(str(json_array_get(items, 0), "event"),
			    "workflow.cancelled");
	json_decref(items);
	did = delivery_id(running, "workflow.cancelled");
	d = get_delivery(did);
	p = json_object_get(d, "payload");
	assert_string_equal(str(p, "status"), "cancelled");
	assert_string_equal(str(p, "workflow_status"), "CANCELLED");
	assert_string_equal(str(p, "error_code"), "CANCELLED");
	json_decref(d);
	free(did);

	assert_int_equal(kiln_store_workflow_action(st(), pending, NULL,
						    KILN_WF_ACTION_CANCEL,
						    NULL, &err),
			 KILN_OK);
	items = deliveries_of(pending);
	assert_int_equal(json_array_size(items), 1);
	json_decref(items);

	/* A refused transition queues nothing. */
	assert_int_equal(kiln_store_workflow_action(st(), pending, NULL,
						    KILN_WF_ACTION_CANCEL,
						    NULL, &err),
			 KILN_ECONFLICT);
	assert_int_equal(kiln_store_workflow_action(st(), plain, NULL,
						    KILN_WF_ACTION_CANCEL,
						    NULL, &err),
			 KILN_OK);
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 2);
	json_decref(l);
	free(running);
	free(pending);
	free(plain);
}

/* ---- the commit hook --------------------------------------------------- */

static int hook_calls;
static json_int_t hook_saw_total;

/* Counts calls and what a reader sees at that moment: the rows must be
 * committed already. */
static void on_delivery(void *ctx)
{
	struct kiln_delivery_filter f = {.limit = 1};
	json_t *l;

	assert_ptr_equal(ctx, &hook_calls);
	hook_calls++;
	l = list(&f, NULL);
	hook_saw_total = total_of(l);
	json_decref(l);
}

static void test_delivery_hook(void **state)
{
	struct kiln_err err = {0};
	char *plain = insert(UNHOOKED, "RUNNING", NULL);
	char *hooked = insert(HOOKED, "RUNNING", NULL);
	char *did;
	json_t *claim;

	(void)state;
	hook_calls = 0;
	hook_saw_total = -1;
	kiln_store_on_delivery(on_delivery, &hook_calls);

	/* Nothing queued: not told. */
	complete(plain);
	assert_int_equal(hook_calls, 0);
	claim = claim_first(hooked);
	assert_int_equal(hook_calls, 0);

	/* One commit, one call, after the row is visible. */
	claim = succeed(claim);
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_saw_total, 1);
	/* step.completed and workflow.completed in one transaction. */
	assert_null(succeed(claim));
	assert_int_equal(hook_calls, 2);
	assert_int_equal(hook_saw_total, 3);

	/* Claiming and recording do not queue anything. */
	json_decref(claim_deliveries(kiln_now_ms(), "{}", 8, 10));
	assert_int_equal(hook_calls, 2);
	did = delivery_id(hooked, "workflow.completed");
	record(did, 1, 1, 200, NULL, NULL, 0);
	assert_int_equal(hook_calls, 2);
	/* A redelivery does: the dispatcher must wake up. */
	assert_int_equal(kiln_store_redeliver(st(), did, NULL, &err), KILN_OK);
	assert_int_equal(hook_calls, 3);
	free(did);

	/* Unset: no more calls. */
	kiln_store_on_delivery(NULL, NULL);
	did = insert(HOOKED, "RUNNING", NULL);
	complete(did);
	assert_int_equal(hook_calls, 3);
	free(did);
	free(plain);
	free(hooked);
}

/* ---- claiming ---------------------------------------------------------- */

/* Three deliveries due to endpoint A, one to B. */
static void four_deliveries(char **a, char **b)
{
	*a = insert(HOOKED, "RUNNING", NULL);
	*b = insert(HOOKED_B, "RUNNING", NULL);
	complete(*a);
	complete(*b);
}

static void test_claim_per_endpoint(void **state)
{
	char *a, *b;
	json_t *claimed, *c, *d;
	size_t i;

	(void)state;
	four_deliveries(&a, &b);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 1, 10);
	/* One for A (not more), and B's. */
	assert_int_equal(json_array_size(claimed), 2);
	assert_int_equal(count_endpoint(claimed, EP_A), 1);
	assert_int_equal(count_endpoint(claimed, EP_B), 1);
	json_array_foreach(claimed, i, c) {
		json_t *payload;

		assert_int_equal(num(c, "attempt"), 1);
		assert_int_equal(num(c, "round"), 0);
		assert_true(json_is_string(json_object_get(c, "payload")));
		payload = json_loads(str(c, "payload"), 0, NULL);
		assert_non_null(payload);
		assert_string_equal(str(payload, "id"), str(c, "id"));
		json_decref(payload);
		assert_string_equal(str(c, "url"),
				    strcmp(str(c, "endpoint"), EP_A) == 0
					    ? URL_A
					    : URL_B);
		assert_true(json_is_null(json_object_get(c, "tenant_id")));
		d = get_delivery(str(c, "id"));
		assert_true(json_is_string(json_object_get(d,
							   "in_flight_since")));
		assert_string_equal(str(d, "status"), "pending");
		json_decref(d);
	}
	json_decref(claimed);

	/* What the dispatcher has in flight counts against the limit. */
	claimed = claim_deliveries(kiln_now_ms(),
				   "{\"" EP_A "\":1,\"" EP_B "\":1}", 1, 10);
	assert_int_equal(json_array_size(claimed), 0);
	json_decref(claimed);
	claimed = claim_deliveries(kiln_now_ms(),
				   "{\"" EP_A "\":1,\"" EP_B "\":1}", 2, 10);
	assert_int_equal(json_array_size(claimed), 1);
	assert_int_equal(count_endpoint(claimed, EP_A), 1);
	json_decref(claimed);
	/* Other endpoints' counts do not matter to A. */
	claimed = claim_deliveries(kiln_now_ms(), "{\"" EP_B "\":100}", 1, 10);
	assert_int_equal(json_array_size(claimed), 1);
	assert_int_equal(count_endpoint(claimed, EP_A), 1);
	json_decref(claimed);
	/* All four are in flight now. */
	claimed = claim_deliveries(kiln_now_ms(), "{}", 100, 100);
	assert_int_equal(json_array_size(claimed), 0);
	json_decref(claimed);
	assert_int_equal(next_at(NULL), -1);
	free(a);
	free(b);
}

static void test_claim_max(void **state)
{
	char *a, *b;
	json_t *claimed;

	(void)state;
	four_deliveries(&a, &b);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 2);
	assert_int_equal(json_array_size(claimed), 2);
	json_decref(claimed);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 1);
	assert_int_equal(json_array_size(claimed), 1);
	json_decref(claimed);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	json_decref(claimed);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 0);
	json_decref(claimed);
	free(a);
	free(b);
}

/* A receiver with a backlog does not hide the deliveries due to others
 * behind it, however small max is. */
static void test_claim_full_endpoint_skipped(void **state)
{
	char *a, *b;
	json_t *claimed;

	(void)state;
	four_deliveries(&a, &b);
	claimed = claim_deliveries(kiln_now_ms(), "{\"" EP_A "\":8}", 8, 1);
	assert_int_equal(json_array_size(claimed), 1);
	assert_int_equal(count_endpoint(claimed, EP_B), 1);
	json_decref(claimed);
	/* Only A's are left and A is full; next_delivery_at leaves full
	 * endpoints out. */
	assert_true(next_at(NULL) >= 0);
	assert_int_equal(next_at("[\"" EP_A "\"]"), -1);
	free(a);
	free(b);
}

/* Due deliveries are taken earliest first, whatever their endpoint. */
static void test_claim_earliest_due_first(void **state)
{
	static const int64_t delay_ms[] = {3000, 1000, 4000, 2000};
	static const size_t order[] = {1, 3, 0, 2};
	char *a, *b, *ids[4];
	json_t *claimed;
	int64_t base;
	size_t i;

	(void)state;
	four_deliveries(&a, &b);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 4);
	base = kiln_now_ms();
	for (i = 0; i < 4; i++) {
		ids[i] = strdup(str(json_array_get(claimed, i), "id"));
		record(ids[i], 1, 0, 503, NULL, "HTTP 503", base + delay_ms[i]);
	}
	json_decref(claimed);
	assert_int_equal(next_at(NULL), base + 1000);
	for (i = 0; i < 4; i++) {
		claimed = claim_deliveries(base + 10000, "{}", 8, 1);
		assert_int_equal(json_array_size(claimed), 1);
		assert_string_equal(str(json_array_get(claimed, 0), "id"),
				    ids[order[i]]);
		json_decref(claimed);
	}
	for (i = 0; i < 4; i++)
		free(ids[i]);
	free(a);
	free(b);
}

/* ---- recording attempts ------------------------------------------------ */

static void test_record_delivered(void **state)
{
	char *id = insert(HOOKED_QUIET, "RUNNING", NULL);
	json_t *claimed, *d, *att;
	char *did;

	(void)state;
	complete(id);
	did = delivery_id(id, "workflow.completed");
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	json_decref(claimed);
	record(did, 1, 1, 204, "thanks", NULL, 0);

	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "delivered");
	assert_true(json_is_string(json_object_get(d, "completed_at")));
	assert_true(json_is_null(json_object_get(d, "in_flight_since")));
	assert_int_equal(num(d, "attempt_count"), 1);
	assert_int_equal(num(d, "last_http_status"), 204);
	assert_true(json_is_null(json_object_get(d, "last_error")));
	assert_int_equal(json_array_size(json_object_get(d, "attempts")), 1);
	att = json_array_get(json_object_get(d, "attempts"), 0);
	assert_int_equal(num(att, "attempt"), 1);
	assert_string_equal(str(att, "outcome"), "delivered");
	assert_int_equal(num(att, "http_status"), 204);
	assert_string_equal(str(att, "response_excerpt"), "thanks");
	assert_int_equal(num(att, "latency_ms"), 42);
	assert_true(json_is_string(json_object_get(att, "started_at")));
	assert_true(json_is_null(json_object_get(att, "error")));
	assert_true(json_is_null(json_object_get(att, "retry_at")));
	json_decref(d);

	/* Delivered is final: nothing pending, nothing to claim. */
	assert_int_equal(next_at(NULL), -1);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 0);
	json_decref(claimed);

	/* A late record for an attempt no longer in flight changes
	 * nothing. */
	record(did, 2, 0, 500, NULL, "HTTP 500", 0);
	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "delivered");
	assert_int_equal(json_array_size(json_object_get(d, "attempts")), 1);
	json_decref(d);
	free(did);
	free(id);
}

static void test_record_retry_then_fail(void **state)
{
	char *id = insert(HOOKED_QUIET, "RUNNING", NULL);
	int64_t retry_at;
	json_t *claimed, *d, *att;
	char *did;

	(void)state;
	complete(id);
	did = delivery_id(id, "workflow.completed");
	assert_true(next_at(NULL) <= kiln_now_ms());
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	json_decref(claimed);
	/* In flight: not pending for next_delivery_at. */
	assert_int_equal(next_at(NULL), -1);

	retry_at = kiln_now_ms() + 60000;
	record(did, 1, 0, 500, "oops", "HTTP 500", retry_at);
	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "pending");
	assert_time(json_object_get(d, "next_attempt_at"), retry_at);
	assert_string_equal(str(d, "last_error"), "HTTP 500");
	assert_int_equal(num(d, "last_http_status"), 500);
	assert_int_equal(num(d, "attempt_count"), 1);
	assert_true(json_is_null(json_object_get(d, "completed_at")));
	assert_true(json_is_null(json_object_get(d, "in_flight_since")));
	att = json_array_get(json_object_get(d, "attempts"), 0);
	assert_string_equal(str(att, "outcome"), "failed");
	assert_string_equal(str(att, "error"), "HTTP 500");
	assert_time(json_object_get(att, "retry_at"), retry_at);
	json_decref(d);

	/* Not due yet. */
	assert_int_equal(next_at(NULL), retry_at);
	assert_int_equal(next_at("[\"" EP_A "\"]"), -1);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 0);
	json_decref(claimed);
	claimed = claim_deliveries(retry_at - 1, "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 0);
	json_decref(claimed);
	/* Due at retry_at. */
	claimed = claim_deliveries(retry_at, "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	assert_int_equal(num(json_array_get(claimed, 0), "attempt"), 2);
	assert_int_equal(num(json_array_get(claimed, 0), "round"), 1);
	json_decref(claimed);

	/* No retry left: failed for good. */
	record(did, 2, 0, 0, NULL, "connection refused", 0);
	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "failed");
	assert_true(json_is_string(json_object_get(d, "completed_at")));
	assert_string_equal(str(d, "last_error"), "connection refused");
	assert_int_equal(num(d, "attempt_count"), 2);
	/* Attempts in order. */
	assert_int_equal(json_array_size(json_object_get(d, "attempts")), 2);
	assert_int_equal(num(json_array_get(json_object_get(d, "attempts"), 0),
			     "attempt"),
			 1);
	att = json_array_get(json_object_get(d, "attempts"), 1);
	assert_int_equal(num(att, "attempt"), 2);
	assert_string_equal(str(att, "error"), "connection refused");
	assert_true(json_is_null(json_object_get(att, "retry_at")));
	json_decref(d);
	assert_int_equal(next_at(NULL), -1);
	free(did);
	free(id);
}

/* Several attempts recorded in one call. */
static void test_record_many(void **state)
{
	struct kiln_err err = {0};
	char *a, *b;
	json_t *claimed, *d;
	struct kiln_delivery_attempt at[4];
	size_t i, delivered = 0;
	struct kiln_delivery_filter f = {.status = "delivered", .limit = 100};

	(void)state;
	four_deliveries(&a, &b);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 4);
	memset(at, 0, sizeof(at));
	for (i = 0; i < 4; i++) {
		at[i].id = str(json_array_get(claimed, i), "id");
		at[i].attempt = 1;
		at[i].started_at = kiln_now_ms();
		at[i].delivered = 1;
		at[i].http_status = 200;
	}
	assert_int_equal(kiln_store_record_deliveries(st(), at, 4, &err),
			 KILN_OK);
	d = list(&f, NULL);
	delivered = (size_t)total_of(d);
	json_decref(d);
	assert_int_equal(delivered, 4);
	json_decref(claimed);
	free(a);
	free(b);
}

/* ---- recovery ---------------------------------------------------------- */

static void test_recover_in_flight(void **state)
{
	struct kiln_err err = {0};
	char *a, *b;
	json_t *claimed, *d, *att;
	size_t recovered = 99;
	char *did;
	int64_t before;

	(void)state;
	four_deliveries(&a, &b);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 1, 10);
	assert_int_equal(json_array_size(claimed), 2);
	did = strdup(str(json_array_get(claimed, 0), "id"));
	json_decref(claimed);

	/* "Crash" with two attempts in flight, reopen, recover. */
	kiln_store_shutdown();
	assert_int_equal(kiln_store_init(data_dir, &err), KILN_OK);
	before = kiln_now_ms();
	assert_int_equal(kiln_store_recover_deliveries(st(), &recovered, &err),
			 KILN_OK);
	assert_int_equal(recovered, 2);

	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "pending");
	assert_true(json_is_null(json_object_get(d, "in_flight_since")));
	assert_int_equal(num(d, "attempt_count"), 1);
	assert_int_equal(json_array_size(json_object_get(d, "attempts")), 1);
	att = json_array_get(json_object_get(d, "attempts"), 0);
	assert_int_equal(num(att, "attempt"), 1);
	assert_string_equal(str(att, "outcome"), "failed");
	assert_int_equal(strncmp(str(att, "error"), "interrupted", 11), 0);
	json_decref(d);

	/* Due again at once. */
	assert_true(next_at(NULL) <= kiln_now_ms());
	assert_true(next_at(NULL) >= before - 1000);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 4);
	json_decref(claimed);

	/* Each recovery counts what was in flight: the four just claimed,
	 * then none. */
	assert_int_equal(kiln_store_recover_deliveries(st(), &recovered, &err),
			 KILN_OK);
	assert_int_equal(recovered, 4);
	assert_int_equal(kiln_store_recover_deliveries(st(), &recovered, &err),
			 KILN_OK);
	assert_int_equal(recovered, 0);
	d = get_delivery(did);
	assert_int_equal(num(d, "attempt_count"), 2);
	assert_int_equal(json_array_size(json_object_get(d, "attempts")), 2);
	assert_int_equal(num(json_array_get(json_object_get(d, "attempts"), 1),
			     "attempt"),
			 2);
	json_decref(d);
	free(did);
	free(a);
	free(b);
}

/* A claim after recovery carries the next attempt number. */
static void test_recover_then_claim_attempt(void **state)
{
	struct kiln_err err = {0};
	char *id = insert(HOOKED_QUIET, "RUNNING", NULL);
	json_t *claimed;
	size_t recovered = 0;

	(void)state;
	complete(id);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	json_decref(claimed);
	assert_int_equal(kiln_store_recover_deliveries(st(), &recovered, &err),
			 KILN_OK);
	assert_int_equal(recovered, 1);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	assert_int_equal(num(json_array_get(claimed, 0), "attempt"), 2);
	json_decref(claimed);
	free(id);
}

/* ---- redelivery -------------------------------------------------------- */

static void test_redeliver(void **state)
{
	struct kiln_err err = {0};
	struct kiln_scope mine = {"t1"}, theirs = {"t2"};
	char *id = insert(HOOKED_QUIET, "RUNNING", "t1");
	json_t *claimed, *d, *payload_before, *l;
	char *did;
	struct kiln_delivery_filter f = {.limit = 100};

	(void)state;
	complete(id);
	did = delivery_id(id, "workflow.completed");
	d = get_delivery(did);
	payload_before = json_incref(json_object_get(d, "payload"));
	json_decref(d);

	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	assert_string_equal(str(json_array_get(claimed, 0), "tenant_id"),
			    "t1");
	json_decref(claimed);
	/* Refused while the attempt is in flight. */
	assert_int_equal(kiln_store_redeliver(st(), did, NULL, &err),
			 KILN_ECONFLICT);
	assert_int_equal(err.code, KILN_ECONFLICT);
	record(did, 1, 1, 200, "ok", NULL, 0);

	/* Unknown, or another tenant's: not found. */
	assert_int_equal(kiln_store_redeliver(st(), "msg_nope", NULL, &err),
			 KILN_ENOTFOUND);
	assert_int_equal(kiln_store_redeliver(st(), did, &theirs, &err),
			 KILN_ENOTFOUND);
	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "delivered");
	json_decref(d);

	assert_int_equal(kiln_store_redeliver(st(), did, &mine, &err),
			 KILN_OK);
	d = get_delivery(did);
	assert_string_equal(str(d, "id"), did);
	assert_string_equal(str(d, "status"), "pending");
	assert_true(json_is_null(json_object_get(d, "completed_at")));
	/* The same body (same webhook-id) is sent again. */
	assert_true(json_equal(json_object_get(d, "payload"), payload_before));
	/* The history stays. */
	assert_int_equal(json_array_size(json_object_get(d, "attempts")), 1);
	json_decref(d);
	/* Still one delivery, not a copy. */
	f.workflow_id = id;
	l = list(&f, NULL);
	assert_int_equal(total_of(l), 1);
	json_decref(l);

	/* Due now; the round restarts, the attempt count goes on. */
	assert_true(next_at(NULL) <= kiln_now_ms());
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	assert_string_equal(str(json_array_get(claimed, 0), "id"), did);
	assert_int_equal(num(json_array_get(claimed, 0), "attempt"), 2);
	assert_int_equal(num(json_array_get(claimed, 0), "round"), 0);
	json_decref(claimed);
	record(did, 2, 0, 410, NULL, "HTTP 410", 0);
	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "failed");
	json_decref(d);
	/* A failed delivery can be redelivered too. */
	assert_int_equal(kiln_store_redeliver(st(), did, NULL, &err), KILN_OK);
	d = get_delivery(did);
	assert_string_equal(str(d, "status"), "pending");
	json_decref(d);

	json_decref(payload_before);
	free(did);
	free(id);
}

/* ---- reading one delivery ---------------------------------------------- */

static void test_get_delivery_scope(void **state)
{
	struct kiln_err err = {0};
	struct kiln_scope mine = {"t1"}, theirs = {"t2"};
	char *id = insert(HOOKED_QUIET, "RUNNING", "t1");
	json_t *d = NULL;
	char *did;

	(void)state;
	complete(id);
	did = delivery_id(id, "workflow.completed");
	assert_int_equal(kiln_store_get_delivery(st(), did, &mine, &d, &err),
			 KILN_OK);
	assert_string_equal(str(d, "tenant_id"), "t1");
	assert_true(json_is_array(json_object_get(d, "attempts")));
	json_decref(d);
	d = NULL;
	assert_int_equal(kiln_store_get_delivery(st(), did, &theirs, &d, &err),
			 KILN_ENOTFOUND);
	assert_null(d);
	assert_int_equal(kiln_store_get_delivery(st(), "msg_unknown", NULL, &d,
						 &err),
			 KILN_ENOTFOUND);
	assert_null(d);
	free(did);
	free(id);
}

/* An attempt without an HTTP response, or a delivery not yet attempted,
 * shows http_status / last_http_status null (openapi.yaml: integer or
 * null), not 0. */
static void test_missing_http_status_is_null(void **state)
{
	char *id = insert(HOOKED_QUIET, "RUNNING", NULL);
	json_t *claimed, *d;
	const json_t *last, *att_status;
	char *did;
	int ok;

	(void)state;
	complete(id);
	did = delivery_id(id, "workflow.completed");
	d = get_delivery(did);
	last = json_object_get(d, "last_http_status");
	ok = last != NULL && json_is_null(last);
	json_decref(d);
	claimed = claim_deliveries(kiln_now_ms(), "{}", 8, 10);
	assert_int_equal(json_array_size(claimed), 1);
	json_decref(claimed);
	record(did, 1, 0, 0, NULL, "connection refused", 0);
	d = get_delivery(did);
	last = json_object_get(d, "last_http_status");
	att_status = json_object_get(
		json_array_get(json_object_get(d, "attempts"), 0),
		"http_status");
	ok = ok && last != NULL && json_is_null(last) && att_status != NULL &&
	     json_is_null(att_status);
	json_decref(d);
	free(did);
	free(id);
	assert_true(ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_completion_queues_events,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_subtask_events_suppressed_by_default, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_no_webhook_url_queues_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_failure_queues_failed_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_queues_cancelled,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_hook, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_claim_per_endpoint, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_claim_max, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_claim_full_endpoint_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_earliest_due_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_delivered, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_record_retry_then_fail,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_many, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_recover_in_flight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_recover_then_claim_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redeliver, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_get_delivery_scope, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_missing_http_status_is_null, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
