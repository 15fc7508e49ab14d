/*
 * test_run_view.c - runs as the run API shows them (src/run_view.c), on
 * hand-built WorkflowPublic-like JSON: kiln_run_view's fields (lower-case
 * status, the run, cancel and workflow URLs, what is copied from the
 * workflow), outputs only once COMPLETED and taken from the final step's
 * result through kiln_result_outputs (asset_type/asset_url renamed
 * type/url, null details dropped, artifacts' extra fields kept), errors
 * only for FAILED (the failed step's last attempt outcome as the code,
 * its field, the step's message) and CANCELLED, and kiln_run_ended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/run_view.h"

#define WF_ID "0b9f4c1e-6a57-4c1c-9a51-2f4f0a7e1d23"

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return v;
}

/* Fails unless got equals the JSON text want; releases got. */
static void expect_json(const char *what, json_t *got, const char *want)
{
	json_t *w = parse(want);
	char *text = got ? json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS)
			 : NULL;
	int is_equal = got != NULL && json_equal(got, w);

	if (!is_equal)
		fail_msg("%s: got %s, wanted %s", what, text ? text : "NULL",
			 want);
	free(text);
	json_decref(w);
	json_decref(got);
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/*
 * A two-step workflow (generate -> refine, refine final) with status, the
 * generate step's and the refine step's JSON (their status, result,
 * attempts...), as the store renders it.  Owned.
 */
static json_t *workflow(const char *status, const char *generate,
			const char *refine)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "{\"id\": \"" WF_ID "\", \"name\": \"Hero\","
		 " \"status\": \"%s\", \"template_id\": \"tpl-1\","
		 " \"template_version\": 3,"
		 " \"inputs\": {\"prompt\": \"a red dress\","
		 " \"image\": {\"url\": \"https://cdn.test/in.png\","
		 " \"asset_id\": \"sku-1\"}},"
		 " \"origin_reference\": \"ref-9\","
		 " \"origin_instance\": \"template-run\","
		 " \"batch_id\": null, \"final_step_id\": \"refine\","
		 " \"error_message\": null,"
		 " \"created_at\": \"2024-05-01T10:00:00.000Z\","
		 " \"started_at\": \"2024-05-01T10:00:01.000Z\","
		 " \"completed_at\": null,"
		 " \"steps\": [%s, %s]}",
		 status, generate, refine);
	return parse(text);
}

#define STEP(id, status, extra)                                             \
	"{\"id\": \"s-" id "\", \"step_id\": \"" id "\","                   \
	" \"task_type\": \"GENERATION\", \"status\": \"" status "\"" extra  \
	"}"

#define GEN_DONE                                                            \
	STEP("generate", "COMPLETED",                                       \
	     ", \"result\": {\"result_image_path\":"                       \
	     " \"https://x/first.png\"},"                                     \
	     " \"attempts\": [{\"attempt\": 1, \"outcome\": \"succeeded\"}]")
#define REFINE_DONE                                                         \
	STEP("refine", "COMPLETED",                                         \
	     ", \"result\": {\"result_image_path\": \"https://x/y.png\"},"  \
	     " \"attempts\": [{\"attempt\": 1, \"outcome\": \"succeeded\"}]")
#define REFINE_PENDING STEP("refine", "PENDING", ", \"result\": null")

static const char *const VIEW_KEYS[] = {
	"runId",      "status",      "template_id", "template_version",
	"inputs",     "origin_reference", "created_at", "started_at",
	"completed_at", "statusUrl", "cancelUrl",   "workflowUrl",
};

/* Fails unless view has exactly VIEW_KEYS plus extra (NULL-terminated). */
static void expect_keys(const json_t *view, const char *const *extra)
{
	size_t i, n = sizeof(VIEW_KEYS) / sizeof(VIEW_KEYS[0]);

	for (i = 0; i < sizeof(VIEW_KEYS) / sizeof(VIEW_KEYS[0]); i++)
		if (json_object_get(view, VIEW_KEYS[i]) == NULL)
			fail_msg("view lacks %s", VIEW_KEYS[i]);
	for (i = 0; extra && extra[i]; i++, n++)
		if (json_object_get(view, extra[i]) == NULL)
			fail_msg("view lacks %s", extra[i]);
	if (json_object_size(view) != n) {
		char *t = json_dumps(view, JSON_SORT_KEYS);

		fail_msg("view has other keys: %s", t);
	}
}

/* ---- the view ---------------------------------------------------------- */

static void test_view_running(void **state)
{
	json_t *wf = workflow("RUNNING", GEN_DONE,
			      STEP("refine", "RUNNING", ", \"result\": null"));
	json_t *v = kiln_run_view(wf);

	(void)state;
	expect_keys(v, NULL);
	assert_string_equal(str(v, "runId"), WF_ID);
	assert_string_equal(str(v, "status"), "running");
	assert_string_equal(str(v, "statusUrl"), "/api/v1/runs/" WF_ID);
	assert_string_equal(str(v, "cancelUrl"), "/api/v1/runs/" WF_ID
						 "/cancel");
	assert_string_equal(str(v, "workflowUrl"),
			    "/api/v1/workflows/" WF_ID);
	assert_string_equal(str(v, "template_id"), "tpl-1");
	assert_int_equal(json_integer_value(json_object_get(
				 v, "template_version")),
			 3);
	assert_true(json_equal(json_object_get(v, "inputs"),
			       json_object_get(wf, "inputs")));
	assert_string_equal(str(v, "origin_reference"), "ref-9");
	assert_string_equal(str(v, "created_at"), "2024-05-01T10:00:00.000Z");
	assert_string_equal(str(v, "started_at"), "2024-05-01T10:00:01.000Z");
	assert_true(json_is_null(json_object_get(v, "completed_at")));
	/* Neither outputs (the generate step has a result) nor error. */
	assert_null(json_object_get(v, "outputs"));
	assert_null(json_object_get(v, "error"));
	assert_false(kiln_run_ended(wf));
	assert_null(kiln_run_error(wf));
	json_decref(v);
	json_decref(wf);
}

/* Every workflow status in lower case; only three are ended. */
static void test_view_statuses(void **state)
{
	static const struct {
		const char *status, *lower;
		int ended, has_error;
	} cases[] = {
		{"PENDING", "pending", 0, 0},
		{"RUNNING", "running", 0, 0},
		{"PAUSED", "paused", 0, 0},
		{"COMPLETED", "completed", 1, 0},
		{"FAILED", "failed", 1, 1},
		{"CANCELLED", "cancelled", 1, 1},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *wf = workflow(cases[i].status, GEN_DONE,
				      REFINE_PENDING);
		json_t *v = kiln_run_view(wf);

		assert_string_equal(str(v, "status"), cases[i].lower);
		assert_int_equal(kiln_run_ended(wf), cases[i].ended);
		assert_int_equal(json_object_get(v, "error") != NULL,
				 cases[i].has_error);
		assert_int_equal(json_object_get(v, "outputs") != NULL,
				 strcmp(cases[i].status, "COMPLETED") == 0);
		json_decref(v);
		json_decref(wf);
	}
}

/* Optional workflow fields that are absent come out as null. */
static void test_view_absent_fields(void **state)
{
	json_t *wf = parse("{\"id\": \"w-1\", \"status\": \"PENDING\","
			   " \"steps\": []}");
	json_t *v = kiln_run_view(wf);

	(void)state;
	expect_keys(v, NULL);
	assert_string_equal(str(v, "runId"), "w-1");
	assert_string_equal(str(v, "status"), "pending");
	assert_string_equal(str(v, "statusUrl"), "/api/v1/runs/w-1");
	assert_string_equal(str(v, "cancelUrl"), "/api/v1/runs/w-1/cancel");
	assert_string_equal(str(v, "workflowUrl"), "/api/v1/workflows/w-1");
	assert_true(json_is_null(json_object_get(v, "template_id")));
	assert_true(json_is_null(json_object_get(v, "template_version")));
	assert_true(json_is_null(json_object_get(v, "inputs")));
	assert_true(json_is_null(json_object_get(v, "origin_reference")));
	assert_true(json_is_null(json_object_get(v, "started_at")));
	json_decref(v);
	json_decref(wf);
}

/* ---- outputs ----------------------------------------------------------- */

static void test_view_completed_outputs(void **state)
{
	static const char *const extra[] = {"outputs", NULL};
	json_t *wf = workflow("COMPLETED", GEN_DONE, REFINE_DONE);
	json_t *v, *out;
	char *text;

	(void)state;
	json_object_set_new(wf, "completed_at",
			    json_string("2024-05-01T10:00:09.000Z"));
	v = kiln_run_view(wf);
	expect_keys(v, extra);
	assert_string_equal(str(v, "status"), "completed");
	assert_string_equal(str(v, "completed_at"),
			    "2024-05-01T10:00:09.000Z");
	assert_true(kiln_run_ended(wf));
	assert_null(kiln_run_error(wf));
	/* The final step's file, not the first step's. */
	out = json_object_get(v, "outputs");
	expect_json("outputs", json_incref(out),
		    "[{\"type\": \"image\", \"url\": \"https://x/y.png\","
		    " \"format\": \"png\"}]");
	/* "type" and "url" come first. */
	text = json_dumps(json_array_get(out, 0), JSON_COMPACT);
	assert_non_null(text);
	assert_int_equal(strncmp(text, "{\"type\":\"image\",\"url\":"
				       "\"https://x/y.png\"",
				 39),
			 0);
	free(text);
	expect_json("kiln_run_outputs", kiln_run_outputs(wf),
		    "[{\"type\": \"image\", \"url\": \"https://x/y.png\","
		    " \"format\": \"png\"}]");
	json_decref(v);
	json_decref(wf);
}

/* What kiln_result_outputs knows is kept (dimensions, artifacts' copies,
 * sizes, digests); what it leaves null is dropped. */
static void test_outputs_details(void **state)
{
	json_t *wf;

	(void)state;
	wf = workflow("COMPLETED", GEN_DONE,
		      STEP("refine", "COMPLETED",
			   ", \"result\": {\"images\": [{\"url\":"
			   " \"https://x/a.webp\", \"width\": 640, \"height\":"
			   " 480}, \"https://x/noext\"]}"));
	expect_json("images", kiln_run_outputs(wf),
		    "[{\"type\": \"image\", \"url\": \"https://x/a.webp\","
		    " \"format\": \"webp\", \"width\": 640, \"height\": 480},"
		    " {\"type\": \"file\", \"url\": \"https://x/noext\"}]");
	json_decref(wf);

	wf = workflow("COMPLETED", GEN_DONE,
		      STEP("refine", "COMPLETED",
			   ", \"result\": {\"artifacts\": [{\"url\":"
			   " \"https://p.test/v.mp4\", \"artifact_url\":"
			   " \"/api/v1/artifacts/abc\", \"size_bytes\": 1234,"
			   " \"sha256\": null, \"content_type\":"
			   " \"video/mp4\"}], \"width\": 1920, \"height\":"
			   " 1080}"));
	expect_json("artifacts", kiln_run_outputs(wf),
		    "[{\"type\": \"video\", \"url\": \"https://p.test/v.mp4\","
		    " \"format\": \"mp4\", \"artifact_url\":"
		    " \"/api/v1/artifacts/abc\", \"size_bytes\": 1234,"
		    " \"width\": 1920, \"height\": 1080}]");
	json_decref(wf);
}

/* A final step without a result, or with nothing kiln_result_outputs
 * recognises, has no outputs: [] (still present in a completed view). */
static void test_outputs_none(void **state)
{
	json_t *wf, *v;

	(void)state;
	wf = workflow("COMPLETED", GEN_DONE, REFINE_PENDING);
	expect_json("null result", kiln_run_outputs(wf), "[]");
	v = kiln_run_view(wf);
	expect_json("view outputs", json_incref(json_object_get(v, "outputs")),
		    "[]");
	json_decref(v);
	json_decref(wf);

	wf = workflow("COMPLETED", GEN_DONE,
		      STEP("refine", "COMPLETED",
			   ", \"result\": {\"text\": \"no file\"}"));
	expect_json("no file", kiln_run_outputs(wf), "[]");
	json_decref(wf);

	/* No final_step_id matching a step. */
	wf = workflow("COMPLETED", GEN_DONE, REFINE_DONE);
	json_object_set_new(wf, "final_step_id", json_string("nope"));
	expect_json("no final step", kiln_run_outputs(wf), "[]");
	json_decref(wf);

	wf = parse("{\"id\": \"w\", \"status\": \"COMPLETED\"}");
	expect_json("no steps", kiln_run_outputs(wf), "[]");
	json_decref(wf);
}

/* Only a completed run shows outputs, whatever its steps hold. */
static void test_outputs_only_when_completed(void **state)
{
	static const char *const statuses[] = {"RUNNING", "PAUSED", "FAILED",
					       "CANCELLED", "PENDING"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		json_t *wf = workflow(statuses[i], GEN_DONE, REFINE_DONE);
		json_t *v = kiln_run_view(wf);

		if (json_object_get(v, "outputs") != NULL)
			fail_msg("%s run shows outputs", statuses[i]);
		json_decref(v);
		json_decref(wf);
	}
}

/* ---- errors ------------------------------------------------------------ */

static void test_error_failed_step(void **state)
{
	static const char *const extra[] = {"error", NULL};
	json_t *wf = workflow(
		"FAILED", GEN_DONE,
		STEP("refine", "FAILED",
		     ", \"result\": null, \"error_message\": \"HTTP 400:"
		     " prompt refused\", \"attempts\": [{\"attempt\": 1,"
		     " \"outcome\": \"transient_error\", \"http_status\": 503},"
		     " {\"attempt\": 2, \"outcome\": \"permanent_error\","
		     " \"http_status\": 400, \"field\": \"prompt\"}]"));
	json_t *v;

	(void)state;
	json_object_set_new(wf, "error_message",
			    json_string("step 'refine' failed: HTTP 400:"
					" prompt refused"));
	v = kiln_run_view(wf);
	expect_keys(v, extra);
	assert_string_equal(str(v, "status"), "failed");
	expect_json("view error", json_incref(json_object_get(v, "error")),
		    "{\"code\": \"PROVIDER_REJECTED\", \"message\": \"HTTP 400:"
		    " prompt refused\", \"step_id\": \"refine\", \"field\":"
		    " \"prompt\"}");
	expect_json("kiln_run_error", kiln_run_error(wf),
		    "{\"code\": \"PROVIDER_REJECTED\", \"message\": \"HTTP 400:"
		    " prompt refused\", \"step_id\": \"refine\", \"field\":"
		    " \"prompt\"}");
	json_decref(v);
	json_decref(wf);
}

/* Each attempt outcome's code; the step's message, "failed" without
 * one; field null when the last attempt names none. */
static void test_error_codes(void **state)
{
	static const struct {
		const char *outcome, *code;
	} cases[] = {
		{"invalid_input", "INVALID_INPUT"},
		{"permanent_error", "PROVIDER_REJECTED"},
		{"transient_error", "PROVIDER_UNAVAILABLE"},
		{"job_failed", "GENERATION_FAILED"},
		{"deadline_exceeded", "DEADLINE_EXCEEDED"},
		{"something_new", "STEP_FAILED"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char step[512], want[512];
		json_t *wf;

		snprintf(step, sizeof(step),
			 "{\"step_id\": \"generate\", \"status\": \"FAILED\","
			 " \"attempts\": [{\"attempt\": 1, \"outcome\": "
			 "\"%s\"}]}",
			 cases[i].outcome);
		wf = workflow("FAILED", step, REFINE_PENDING);
		snprintf(want, sizeof(want),
			 "{\"code\": \"%s\", \"message\": \"failed\","
			 " \"step_id\": \"generate\", \"field\": null}",
			 cases[i].code);
		expect_json(cases[i].outcome, kiln_run_error(wf), want);
		json_decref(wf);
	}
}

/* A failed step without attempts; a failed workflow without a failed
 * step (the workflow's own message). */
static void test_error_fallbacks(void **state)
{
	json_t *wf;

	(void)state;
	wf = workflow("FAILED", GEN_DONE,
		      STEP("refine", "FAILED",
			   ", \"error_message\": \"lost\", \"attempts\": []"));
	expect_json("no attempts", kiln_run_error(wf),
		    "{\"code\": \"STEP_FAILED\", \"message\": \"lost\","
		    " \"step_id\": \"refine\", \"field\": null}");
	json_decref(wf);

	wf = workflow("FAILED", GEN_DONE, REFINE_PENDING);
	json_object_set_new(wf, "error_message",
			    json_string("the deadline passed"));
	expect_json("no failed step", kiln_run_error(wf),
		    "{\"code\": \"STEP_FAILED\", \"message\": \"the deadline"
		    " passed\", \"step_id\": null, \"field\": null}");
	json_decref(wf);
}

static void test_error_cancelled(void **state)
{
	static const char *const extra[] = {"error", NULL};
	/* Even with a failed step, a cancelled run says CANCELLED. */
	json_t *wf = workflow(
		"CANCELLED", GEN_DONE,
		STEP("refine", "FAILED",
		     ", \"attempts\": [{\"outcome\": \"permanent_error\"}]"));
	json_t *v = kiln_run_view(wf);

	(void)state;
	expect_keys(v, extra);
	assert_string_equal(str(v, "status"), "cancelled");
	expect_json("view error", json_incref(json_object_get(v, "error")),
		    "{\"code\": \"CANCELLED\", \"message\": \"the run was"
		    " cancelled\", \"step_id\": null, \"field\": null}");
	assert_true(kiln_run_ended(wf));
	json_decref(v);
	json_decref(wf);
}

/* No error for runs that have not failed, even with a failed step
 * (a resumed workflow keeps running). */
static void test_error_none(void **state)
{
	static const char *const statuses[] = {"PENDING", "RUNNING", "PAUSED",
					       "COMPLETED"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		json_t *wf = workflow(
			statuses[i], GEN_DONE,
			STEP("refine", "FAILED",
			     ", \"attempts\": [{\"outcome\":"
			     " \"job_failed\"}]"));

		if (kiln_run_error(wf) != NULL)
			fail_msg("%s run has an error", statuses[i]);
		json_decref(wf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view_running),
		cmocka_unit_test(test_view_statuses),
		cmocka_unit_test(test_view_absent_fields),
		cmocka_unit_test(test_view_completed_outputs),
		cmocka_unit_test(test_outputs_details),
		cmocka_unit_test(test_outputs_none),
		cmocka_unit_test(test_outputs_only_when_completed),
		cmocka_unit_test(test_error_failed_step),
		cmocka_unit_test(test_error_codes),
		cmocka_unit_test(test_error_fallbacks),
		cmocka_unit_test(test_error_cancelled),
		cmocka_unit_test(test_error_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
