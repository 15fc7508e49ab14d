/*
 * test_webhook_event.c - the webhook body (src/webhook_event.c), field by
 * field, built from hand-written WorkflowPublic objects: the workflow and
 * step events, the error codes of failures, the metadata fallbacks, and
 * the outputs read from each provider's result shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "kiln/common.h"
#include "kiln/webhook_event.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* 2026-01-01T00:00:00.123Z */
#define NOW_MS 1767225600123LL

/* A completed two-step workflow: generate on replicate, then refine on a
 * fallback that took over from fal. */
static const char *COMPLETED_WF =
	"{\"id\":\"wf-1\",\"name\":\"Fashion Image Pipeline\","
	"\"status\":\"COMPLETED\",\"final_step_id\":\"refine\","
	"\"origin_reference\":\"sku-1234\",\"origin_tenant_id\":\"acme\","
	"\"canvas_task_id\":null,"
	"\"started_at\":\"2026-01-01T00:00:00.000Z\","
	"\"completed_at\":\"2026-01-01T00:00:14.500Z\","
	"\"steps\":["
	"{\"step_id\":\"generate\",\"task_type\":\"GENERATION\","
	"\"status\":\"COMPLETED\",\"provider\":\"replicate\","
	"\"provider_used\":\"replicate\",\"retry_count\":0,"
	"\"started_at\":\"2026-01-01T00:00:00.000Z\","
	"\"completed_at\":\"2026-01-01T00:00:05.000Z\","
	"\"config\":{\"prompt\":\"dress\",\"model\":\"flux\"},"
	"\"provider_config\":{},"
	"\"result\":{\"output\":[\"https://x/g.png\"],"
	"\"credit_cost\":0.002}},"
	"{\"step_id\":\"refine\",\"task_type\":\"REFINE\","
	"\"status\":\"COMPLETED\",\"provider\":\"fal\","
	"\"provider_used\":\"fal-backup\",\"retry_count\":1,"
	"\"started_at\":\"2026-01-01T00:00:05.000Z\","
	"\"completed_at\":\"2026-01-01T00:00:14.500Z\","
	"\"config\":{\"prompt\":\"refine it\"},"
	"\"provider_config\":{\"model\":\"fal-ai/refiner\"},"
	"\"result\":{\"images\":[{\"url\":\"https://x/r.jpg\","
	"\"width\":1024,\"height\":768,\"content_type\":\"image/jpeg\"}],"
	"\"prompt_used\":\"a red dress\",\"cost\":0.001}}]}";

/* A running workflow whose first step just completed. */
static const char *RUNNING_WF =
	"{\"id\":\"wf-2\",\"name\":\"Two\",\"status\":\"RUNNING\","
	"\"final_step_id\":\"refine\",\"origin_reference\":null,"
	"\"origin_tenant_id\":null,\"canvas_task_id\":\"canvas-9\","
	"\"started_at\":\"2026-01-01T00:00:00.000Z\",\"completed_at\":null,"
	"\"steps\":["
	"{\"step_id\":\"generate\",\"task_type\":\"GENERATION\","
	"\"status\":\"COMPLETED\",\"provider\":\"replicate\","
	"\"provider_used\":\"replicate\",\"retry_count\":2,"
	"\"started_at\":\"2026-01-01T00:00:01.000Z\","
	"\"completed_at\":\"2026-01-01T00:00:03.250Z\","
	"\"config\":{\"prompt\":\"dress\",\"model\":\"flux\"},"
	"\"provider_config\":{\"model\":\"ignored\"},"
	"\"result\":{\"output\":\"https://x/g.png\",\"width\":512,"
	"\"height\":256,\"credit_cost\":0.25}},"
	"{\"step_id\":\"refine\",\"task_type\":\"REFINE\","
	"\"status\":\"RUNNING\",\"provider\":\"fal\",\"provider_used\":null,"
	"\"retry_count\":0,\"started_at\":\"2026-01-01T00:00:03.300Z\","
	"\"completed_at\":null,\"config\":{},\"provider_config\":{},"
	"\"result\":null}]}";

/* A failed workflow: generate failed, refine never ran. */
static const char *FAILED_WF =
	"{\"id\":\"wf-3\",\"name\":\"Three\",\"status\":\"FAILED\","
	"\"final_step_id\":\"refine\",\"origin_reference\":\"r-3\","
	"\"origin_tenant_id\":null,\"canvas_task_id\":null,"
	"\"started_at\":\"2026-01-01T00:00:00.000Z\","
	"\"completed_at\":\"2026-01-01T00:00:02.000Z\","
	"\"steps\":["
	"{\"step_id\":\"generate\",\"task_type\":\"GENERATION\","
	"\"status\":\"FAILED\",\"provider\":\"replicate\","
	"\"provider_used\":null,\"retry_count\":3,"
	"\"started_at\":\"2026-01-01T00:00:00.000Z\","
	"\"completed_at\":\"2026-01-01T00:00:02.000Z\","
	"\"config\":{\"prompt\":\"dress\"},\"provider_config\":{},"
	"\"result\":null},"
	"{\"step_id\":\"refine\",\"task_type\":\"REFINE\","
	"\"status\":\"PENDING\",\"provider\":\"fal\",\"provider_used\":null,"
	"\"retry_count\":0,\"started_at\":null,\"completed_at\":null,"
	"\"config\":{},\"provider_config\":{},\"result\":null}]}";

static json_t *load(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);

	if (j == NULL)
		fail_msg("test JSON does not parse: %s (%s)", jerr.text, text);
	return j;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t num(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void assert_real(const json_t *v, double want)
{
	assert_true(json_is_number(v));
	if (fabs(json_number_value(v) - want) > 1e-9)
		fail_msg("got %.12g, want %.12g", json_number_value(v), want);
}

static json_t *payload(const json_t *wf, const char *type,
		       const char *step_id,
		       const struct kiln_event_error *error)
{
	struct kiln_event ev = {"msg_0123456789abcdef", type, NOW_MS, wf,
				step_id, error};
	json_t *p = kiln_webhook_payload(&ev);

	assert_non_null(p);
	assert_true(json_is_object(p));
	return p;
}

static const json_t *step_of(const json_t *wf, size_t i)
{
	return json_array_get(json_object_get(wf, "steps"), i);
}

/* ---- workflow.completed ------------------------------------------------ */

static void test_workflow_completed(void **state)
{
	json_t *wf = load(COMPLETED_WF);
	json_t *p = payload(wf, "workflow.completed", NULL, NULL);
	const json_t *outputs, *o, *meta, *steps, *s;

	(void)state;
	assert_string_equal(str(p, "schema_version"), "1");
	assert_string_equal(str(p, "id"), "msg_0123456789abcdef");
	assert_string_equal(str(p, "event"), "workflow.completed");
	assert_string_equal(str(p, "timestamp"), "2026-01-01T00:00:00.123Z");
	assert_string_equal(str(p, "job_id"), "wf-1");
	assert_string_equal(str(p, "status"), "success");
	assert_string_equal(str(p, "workflow_status"), "COMPLETED");
	assert_string_equal(str(p, "workflow_name"), "Fashion Image Pipeline");
	assert_string_equal(str(p, "origin_reference"), "sku-1234");
	assert_string_equal(str(p, "origin_tenant_id"), "acme");
	assert_true(json_is_null(json_object_get(p, "canvas_task_id")));

	/* The outputs are the final step's (refine), not the first's. */
	outputs = json_object_get(p, "outputs");
	assert_int_equal(json_array_size(outputs), 1);
	o = json_array_get(outputs, 0);
	assert_string_equal(str(o, "asset_url"), "https://x/r.jpg");
	assert_string_equal(str(o, "asset_type"), "image");
	assert_string_equal(str(o, "format"), "jpeg");
	assert_int_equal(num(o, "width"), 1024);
	assert_int_equal(num(o, "height"), 768);

	meta = json_object_get(p, "metadata");
	assert_non_null(meta);
	/* result.prompt_used wins over config.prompt. */
	assert_string_equal(str(meta, "prompt_used"), "a red dress");
	/* The provider that produced the result: the fallback. */
	assert_string_equal(str(meta, "provider"), "fal-backup");
	/* No model in result or config: the provider config's. */
	assert_string_equal(str(meta, "model"), "fal-ai/refiner");
	/* credit_cost of generate plus cost of refine. */
	assert_real(json_object_get(meta, "credit_cost"), 0.003);
	assert_real(json_object_get(meta, "processing_time_seconds"), 14.5);

	assert_true(json_equal(json_object_get(p, "result"),
			       json_object_get(step_of(wf, 1), "result")));

	steps = json_object_get(p, "steps");
	assert_int_equal(json_array_size(steps), 2);
	s = json_array_get(steps, 0);
	assert_string_equal(str(s, "step_id"), "generate");
	assert_string_equal(str(s, "task_type"), "GENERATION");
	assert_string_equal(str(s, "status"), "COMPLETED");
	assert_string_equal(str(s, "provider_used"), "replicate");
	assert_int_equal(num(s, "retry_count"), 0);
	assert_string_equal(str(s, "started_at"), "2026-01-01T00:00:00.000Z");
	assert_string_equal(str(s, "completed_at"),
			    "2026-01-01T00:00:05.000Z");
	/* A summary, not the whole step. */
	assert_null(json_object_get(s, "result"));
	assert_null(json_object_get(s, "config"));
	s = json_array_get(steps, 1);
	assert_string_equal(str(s, "step_id"), "refine");
	assert_string_equal(str(s, "provider_used"), "fal-backup");
	assert_int_equal(num(s, "retry_count"), 1);

	/* Not a failure, not about one step. */
	assert_null(json_object_get(p, "error_code"));
	assert_null(json_object_get(p, "error_description"));
	assert_null(json_object_get(p, "field"));
	assert_null(json_object_get(p, "provider_http_status"));
	assert_null(json_object_get(p, "step"));
	json_decref(p);
	json_decref(wf);
}

/* The body does not change the workflow it was built from. */
static void test_payload_leaves_workflow_alone(void **state)
{
	json_t *wf = load(COMPLETED_WF), *copy = json_deep_copy(wf), *p;

	(void)state;
	p = payload(wf, "workflow.completed", NULL, NULL);
	assert_true(json_equal(wf, copy));
	json_decref(p);
	json_decref(copy);
	json_decref(wf);
}

/* ---- metadata fallbacks ------------------------------------------------ */

static void test_metadata_fallbacks(void **state)
{
	json_t *wf = load(COMPLETED_WF), *p, *meta;
	json_t *refine = (json_t *)step_of(wf, 1);
	json_t *gen = (json_t *)step_of(wf, 0);
	json_t *result = json_object_get(refine, "result");

	(void)state;
	/* prompt_used wins over prompt in the result. */
	json_object_set_new(result, "prompt", json_string("from result"));
	p = payload(wf, "workflow.completed", NULL, NULL);
	assert_string_equal(str(json_object_get(p, "metadata"), "prompt_used"),
			    "a red dress");
	json_decref(p);

	/* result.prompt when there is no prompt_used; result.model wins
	 * over the provider config. */
	json_object_del(result, "prompt_used");
	json_object_set_new(result, "model", json_string("result-model"));
	p = payload(wf, "workflow.completed", NULL, NULL);
	meta = json_object_get(p, "metadata");
	assert_string_equal(str(meta, "prompt_used"), "from result");
	assert_string_equal(str(meta, "model"), "result-model");
	json_decref(p);

	/* No prompt in the result: the step's config.prompt; config.model
	 * wins over the provider config; provider_used null: provider. */
	json_object_del(result, "prompt");
	json_object_del(result, "model");
	json_object_set_new(json_object_get(refine, "config"), "model",
			    json_string("config-model"));
	json_object_set_new(refine, "provider_used", json_null());
	p = payload(wf, "workflow.completed", NULL, NULL);
	meta = json_object_get(p, "metadata");
	assert_string_equal(str(meta, "prompt_used"), "refine it");
	assert_string_equal(str(meta, "model"), "config-model");
	assert_string_equal(str(meta, "provider"), "fal");
	json_decref(p);

	/* No step reports a cost: null, not 0.  No end time: null. */
	json_object_del(result, "cost");
	json_object_del(json_object_get(gen, "result"), "credit_cost");
	json_object_set_new(wf, "completed_at", json_null());
	json_object_del(json_object_get(refine, "config"), "prompt");
	json_object_del(json_object_get(refine, "config"), "model");
	json_object_del(json_object_get(refine, "provider_config"), "model");
	p = payload(wf, "workflow.completed", NULL, NULL);
	meta = json_object_get(p, "metadata");
	assert_true(json_is_null(json_object_get(meta, "credit_cost")));
	assert_true(
		json_is_null(json_object_get(meta, "processing_time_seconds")));
	assert_true(json_is_null(json_object_get(meta, "prompt_used")));
	assert_true(json_is_null(json_object_get(meta, "model")));
	/* Every metadata key is present even when null. */
	assert_int_equal(json_object_size(meta), 5);
	json_decref(p);
	json_decref(wf);
}

/* ---- step.completed ---------------------------------------------------- */

static void test_step_completed(void **state)
{
	json_t *wf = load(RUNNING_WF);
	json_t *p = payload(wf, "step.completed", "generate", NULL);
	const json_t *outputs, *o, *meta, *step;

	(void)state;
	assert_string_equal(str(p, "event"), "step.completed");
	assert_string_equal(str(p, "job_id"), "wf-2");
	/* The status of the step, the workflow's as it is. */
	assert_string_equal(str(p, "status"), "success");
	assert_string_equal(str(p, "workflow_status"), "RUNNING");
	assert_true(json_is_null(json_object_get(p, "origin_reference")));
	assert_string_equal(str(p, "canvas_task_id"), "canvas-9");
	/* That step's result and outputs, not the final step's. */
	assert_true(json_equal(json_object_get(p, "result"),
			       json_object_get(step_of(wf, 0), "result")));
	outputs = json_object_get(p, "outputs");
	assert_int_equal(json_array_size(outputs), 1);
	o = json_array_get(outputs, 0);
	assert_string_equal(str(o, "asset_url"), "https://x/g.png");
	assert_string_equal(str(o, "asset_type"), "image");
	assert_string_equal(str(o, "format"), "png");
	/* A single string output takes the result's dimensions. */
	assert_int_equal(num(o, "width"), 512);
	assert_int_equal(num(o, "height"), 256);

	meta = json_object_get(p, "metadata");
	assert_string_equal(str(meta, "prompt_used"), "dress");
	assert_string_equal(str(meta, "model"), "flux");
	assert_string_equal(str(meta, "provider"), "replicate");
	/* Only this step's cost and duration. */
	assert_real(json_object_get(meta, "credit_cost"), 0.25);
	assert_real(json_object_get(meta, "processing_time_seconds"), 2.25);

	step = json_object_get(p, "step");
	assert_non_null(step);
	assert_string_equal(str(step, "step_id"), "generate");
	assert_string_equal(str(step, "status"), "COMPLETED");
	assert_int_equal(num(step, "retry_count"), 2);
	assert_null(json_object_get(p, "steps"));
	assert_null(json_object_get(p, "error_code"));
	json_decref(p);
	json_decref(wf);
}

/* A step event's status is the step's, whatever the workflow's. */
static void test_step_event_status_is_the_steps(void **state)
{
	json_t *wf = load(RUNNING_WF), *p;

	(void)state;
	p = payload(wf, "step.started", "refine", NULL);
	assert_string_equal(str(p, "status"), "running");
	assert_true(json_is_null(json_object_get(p, "result")));
	assert_int_equal(json_array_size(json_object_get(p, "outputs")), 0);
	assert_true(json_is_null(
		json_object_get(json_object_get(p, "metadata"),
				"credit_cost")));
	json_decref(p);

	/* The workflow's status for workflow events: RUNNING -> running. */
	p = payload(wf, "workflow.completed", NULL, NULL);
	assert_string_equal(str(p, "status"), "running");
	json_decref(p);
	json_decref(wf);
}

/* ---- failures ---------------------------------------------------------- */

static void test_workflow_failed_error_fields(void **state)
{
	static const struct {
		const char *outcome, *code;
	} cases[] = {
		{"invalid_input", "INVALID_INPUT"},
		{"permanent_error", "PROVIDER_REJECTED"},
		{"transient_error", "PROVIDER_UNAVAILABLE"},
		{"job_failed", "GENERATION_FAILED"},
		{"deadline_exceeded", "DEADLINE_EXCEEDED"},
		{"cancelled", "CANCELLED"},
		{"unknown", "STEP_FAILED"},
		{"", "STEP_FAILED"},
	};
	json_t *wf = load(FAILED_WF), *p;
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		struct kiln_event_error e = {cases[i].outcome, 0, "it broke",
					     NULL};

		assert_string_equal(kiln_event_error_code(cases[i].outcome),
				    cases[i].code);
		p = payload(wf, "workflow.failed", "generate", &e);
		if (strcmp(str(p, "error_code"), cases[i].code) != 0)
			fail_msg("outcome %s: error_code %s, want %s",
				 cases[i].outcome, str(p, "error_code"),
				 cases[i].code);
		assert_string_equal(str(p, "error_description"), "it broke");
		assert_true(json_is_null(json_object_get(p, "field")));
		assert_null(json_object_get(p, "provider_http_status"));
		json_decref(p);
	}
	assert_string_equal(kiln_event_error_code(NULL), "STEP_FAILED");
	json_decref(wf);
}

static void test_workflow_failed_payload(void **state)
{
	struct kiln_event_error e = {"invalid_input", 0,
				     "mapping names a missing field",
				     "input_mappings[0].to_field"};
	struct kiln_event_error http = {"permanent_error", 422,
					"provider said no", NULL};
	json_t *wf = load(FAILED_WF), *p;

	(void)state;
	p = payload(wf, "workflow.failed", "generate", &e);
	assert_string_equal(str(p, "event"), "workflow.failed");
	assert_string_equal(str(p, "status"), "failed");
	assert_string_equal(str(p, "workflow_status"), "FAILED");
	assert_string_equal(str(p, "error_code"), "INVALID_INPUT");
	assert_string_equal(str(p, "error_description"),
			    "mapping names a missing field");
	assert_string_equal(str(p, "field"), "input_mappings[0].to_field");
	assert_null(json_object_get(p, "provider_http_status"));
	/* The step that failed, and every step. */
	assert_string_equal(str(json_object_get(p, "step"), "step_id"),
			    "generate");
	assert_string_equal(str(json_object_get(p, "step"), "status"),
			    "FAILED");
	assert_int_equal(json_array_size(json_object_get(p, "steps")), 2);
	/* The final step has no result. */
	assert_true(json_is_null(json_object_get(p, "result")));
	assert_int_equal(json_array_size(json_object_get(p, "outputs")), 0);
	assert_real(json_object_get(json_object_get(p, "metadata"),
				    "processing_time_seconds"),
		    2.0);
	json_decref(p);

	p = payload(wf, "workflow.failed", "generate", &http);
	assert_string_equal(str(p, "error_code"), "PROVIDER_REJECTED");
	assert_int_equal(num(p, "provider_http_status"), 422);
	assert_true(json_is_null(json_object_get(p, "field")));
	json_decref(p);

	/* The step's own event. */
	p = payload(wf, "step.failed", "generate", &http);
	assert_string_equal(str(p, "status"), "failed");
	assert_string_equal(str(p, "error_code"), "PROVIDER_REJECTED");
	assert_null(json_object_get(p, "steps"));
	assert_string_equal(str(json_object_get(p, "step"), "step_id"),
			    "generate");
	json_decref(p);
	json_decref(wf);
}

static void test_cancelled_without_message(void **state)
{
	struct kiln_event_error e = {"cancelled", 0, NULL, NULL};
	json_t *wf = load(FAILED_WF), *p;

	(void)state;
	json_object_set_new(wf, "status", json_string("CANCELLED"));
	p = payload(wf, "workflow.cancelled", NULL, &e);
	assert_string_equal(str(p, "status"), "cancelled");
	assert_string_equal(str(p, "workflow_status"), "CANCELLED");
	assert_string_equal(str(p, "error_code"), "CANCELLED");
	/* A description is always there. */
	assert_true(json_is_string(json_object_get(p, "error_description")));
	assert_true(strlen(str(p, "error_description")) > 0);
	assert_null(json_object_get(p, "step"));
	json_decref(p);
	json_decref(wf);
}

/* ---- outputs ----------------------------------------------------------- */

static json_t *outputs_of(const char *result_text)
{
	json_t *result = load(result_text);
	json_t *out = kiln_result_outputs(result);

	json_decref(result);
	assert_non_null(out);
	assert_true(json_is_array(out));
	return out;
}

static void test_outputs_artifacts_win(void **state)
{
	json_t *out = outputs_of(
		"{\"output\":[\"https://x/ignored.webp\"],\"artifacts\":["
		"{\"url\":\"https://cdn.x/o/abc\",\"content_type\":"
		"\"image/png\","
		"\"artifact_url\":\"/api/v1/artifacts/w/s/0.png\","
		"\"size_bytes\":1893221,\"sha256\":\"9f2c\"}]}");
	const json_t *o;

	(void)state;
	assert_int_equal(json_array_size(out), 1);
	o = json_array_get(out, 0);
	assert_string_equal(str(o, "asset_url"), "https://cdn.x/o/abc");
	assert_string_equal(str(o, "artifact_url"),
			    "/api/v1/artifacts/w/s/0.png");
	assert_int_equal(num(o, "size_bytes"), 1893221);
	assert_string_equal(str(o, "sha256"), "9f2c");
	/* The content type names the kind, without an extension. */
	assert_string_equal(str(o, "asset_type"), "image");
	assert_string_equal(str(o, "format"), "png");
	json_decref(out);
}

static void test_outputs_replicate_array(void **state)
{
	json_t *out = outputs_of(
		"{\"output\":[\"https://x/a.webp\",\"https://x/b.webp\"]}");
	size_t i;

	(void)state;
	assert_int_equal(json_array_size(out), 2);
	for (i = 0; i < 2; i++) {
		const json_t *o = json_array_get(out, i);

		assert_string_equal(str(o, "asset_type"), "image");
		assert_string_equal(str(o, "format"), "webp");
		assert_null(json_object_get(o, "width"));
		assert_null(json_object_get(o, "artifact_url"));
	}
	assert_string_equal(str(json_array_get(out, 0), "asset_url"),
			    "https://x/a.webp");
	assert_string_equal(str(json_array_get(out, 1), "asset_url"),
			    "https://x/b.webp");
	json_decref(out);

	/* A one-file list takes the result's dimensions. */
	out = outputs_of("{\"output\":[\"https://x/a.webp\"],"
			 "\"width\":640,\"height\":480}");
	assert_int_equal(json_array_size(out), 1);
	assert_int_equal(num(json_array_get(out, 0), "width"), 640);
	assert_int_equal(num(json_array_get(out, 0), "height"), 480);
	json_decref(out);
}

static void test_outputs_fal_images_and_video(void **state)
{
	json_t *out = outputs_of(
		"{\"images\":[{\"url\":\"https://x/i.jpg\",\"width\":1024,"
		"\"height\":768,\"content_type\":\"image/jpeg\"}],"
		"\"seed\":42}");
	const json_t *o = json_array_get(out, 0);

	(void)state;
	assert_int_equal(json_array_size(out), 1);
	assert_string_equal(str(o, "asset_url"), "https://x/i.jpg");
	assert_string_equal(str(o, "asset_type"), "image");
	assert_string_equal(str(o, "format"), "jpeg");
	assert_int_equal(num(o, "width"), 1024);
	assert_int_equal(num(o, "height"), 768);
	json_decref(out);

	out = outputs_of("{\"video\":{\"url\":\"https://x/v.mp4\"}}");
	o = json_array_get(out, 0);
	assert_int_equal(json_array_size(out), 1);
	assert_string_equal(str(o, "asset_url"), "https://x/v.mp4");
	assert_string_equal(str(o, "asset_type"), "video");
	assert_string_equal(str(o, "format"), "mp4");
	json_decref(out);
}

/* Kind and format from the URL alone. */
static void test_outputs_from_url(void **state)
{
	static const struct {
		const char *url, *type, *format; /* format NULL: null */
	} cases[] = {
		{"https://x/a.PNG?sig=1", "image", "png"},
		{"https://x/a.jpeg#frag", "image", "jpeg"},
		{"https://x/song.mp3", "audio", "mp3"},
		{"https://x/clip.webm?a=b.png", "video", "webm"},
		{"https://x/mesh.glb", "model", "glb"},
		{"https://x/all.zip", "archive", "zip"},
		{"https://x/doc.pdf", "document", "pdf"},
		{"https://x/download", "file", NULL},
		{"https://x/v1.2/download", "file", NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		json_t *result = json_pack("{s:s}", "url", cases[i].url);
		json_t *out = kiln_result_outputs(result);
		const json_t *o = json_array_get(out, 0);
		const json_t *fmt = json_object_get(o, "format");

		assert_int_equal(json_array_size(out), 1);
		assert_string_equal(str(o, "asset_url"), cases[i].url);
		if (strcmp(str(o, "asset_type"), cases[i].type) != 0)
			fail_msg("%s: asset_type %s, want %s", cases[i].url,
				 str(o, "asset_type"), cases[i].type);
		assert_non_null(fmt);
		if (cases[i].format == NULL ? !json_is_null(fmt)
					    : !json_is_string(fmt) ||
						      strcmp(json_string_value(
								     fmt),
							     cases[i].format) !=
							      0)
			fail_msg("%s: format %s, want %s", cases[i].url,
				 json_is_string(fmt) ? json_string_value(fmt)
						     : "null",
				 cases[i].format ? cases[i].format : "null");
		json_decref(out);
		json_decref(result);
	}
}

/* An extension kilnd does not know: a plain file. */
static void test_outputs_unknown_extension(void **state)
{
	json_t *out = outputs_of("{\"url\":\"https://x/blob.xyz\"}");
	const json_t *o = json_array_get(out, 0);

	(void)state;
	assert_int_equal(json_array_size(out), 1);
	assert_string_equal(str(o, "asset_type"), "file");
	json_decref(out);

	/* A content type kilnd does not class still gives the format. */
	out = outputs_of("{\"artifacts\":[{\"url\":\"https://x/blob\","
			 "\"content_type\":\"application/octet-stream\"}]}");
	o = json_array_get(out, 0);
	assert_string_equal(str(o, "asset_type"), "file");
	assert_true(json_is_null(json_object_get(o, "format")));
	json_decref(out);
}

/* A URL without a path has no extension, so its format is null (not the
 * host's last label, "com" or "com:8443"). */
static void test_outputs_url_without_path(void **state)
{
	static const char *const urls[] = {
		"https://cdn.example.com",
		"https://cdn.example.com:8443",
		"https://cdn.example.com?sig=1",
	};
	size_t i, wrong = 0;

	(void)state;
	for (i = 0; i < N(urls); i++) {
		json_t *result = json_pack("{s:s}", "url", urls[i]);
		json_t *out = kiln_result_outputs(result);
		const json_t *o = json_array_get(out, 0);
		const json_t *fmt = json_object_get(o, "format");

		assert_int_equal(json_array_size(out), 1);
		assert_string_equal(str(o, "asset_type"), "file");
		assert_non_null(fmt);
		if (!json_is_null(fmt)) {
			print_message("%s: format \"%s\", want null\n",
				      urls[i], json_string_value(fmt));
			wrong++;
		}
		json_decref(out);
		json_decref(result);
	}
	assert_int_equal(wrong, 0);
}

static void test_outputs_none(void **state)
{
	static const char *const results[] = {
		"{}",
		"{\"text\":\"no files here\",\"width\":10}",
		"{\"output\":[],\"artifacts\":[]}",
		"{\"images\":[{\"width\":3}]}",
		"{\"output\":42}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(results); i++) {
		json_t *out = outputs_of(results[i]);

		if (json_array_size(out) != 0)
			fail_msg("%s: %zu outputs, want 0", results[i],
				 json_array_size(out));
		json_decref(out);
	}
	/* Not even an object. */
	{
		json_t *out = kiln_result_outputs(NULL);

		assert_non_null(out);
		assert_int_equal(json_array_size(out), 0);
		json_decref(out);
	}
}

/* The first key that names files wins; the others are not merged. */
static void test_outputs_key_order(void **state)
{
	json_t *out = outputs_of(
		"{\"images\":[{\"url\":\"https://x/i.png\"}],"
		"\"output\":\"https://x/o.gif\"}");

	(void)state;
	assert_int_equal(json_array_size(out), 1);
	assert_string_equal(str(json_array_get(out, 0), "asset_url"),
			    "https://x/o.gif");
	assert_string_equal(str(json_array_get(out, 0), "format"), "gif");
	json_decref(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workflow_completed),
		cmocka_unit_test(test_payload_leaves_workflow_alone),
		cmocka_unit_test(test_metadata_fallbacks),
		cmocka_unit_test(test_step_completed),
		cmocka_unit_test(test_step_event_status_is_the_steps),
		cmocka_unit_test(test_workflow_failed_error_fields),
		cmocka_unit_test(test_workflow_failed_payload),
		cmocka_unit_test(test_cancelled_without_message),
		cmocka_unit_test(test_outputs_artifacts_win),
		cmocka_unit_test(test_outputs_replicate_array),
		cmocka_unit_test(test_outputs_fal_images_and_video),
		cmocka_unit_test(test_outputs_from_url),
		cmocka_unit_test(test_outputs_unknown_extension),
		cmocka_unit_test(test_outputs_url_without_path),
		cmocka_unit_test(test_outputs_none),
		cmocka_unit_test(test_outputs_key_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
