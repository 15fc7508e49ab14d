/*
 * test_provider_async.c - provider settings (provider_cfg.c), reading async
 * jobs (provider_async.c), failure classes, backoff and Retry-After
 * (provider.c, io_loop.c), and finding artifact URLs (artifact_fetch.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kiln/artifacts.h"
#include "kiln/provider.h"
#include "kiln/provider_cfg.h"

static struct kiln_provider_ext *parse_ok(const char *text)
{
	json_t *obj = json_loads(text, 0, NULL);
	struct kiln_provider_ext *x = NULL;
	struct kiln_err err = {0};

	assert_non_null(obj);
	if (kiln_provider_ext_parse(obj, "providers.p", &x, &err) != KILN_OK)
		fail_msg("%s: %s", err.field, err.msg);
	json_decref(obj);
	return x;
}

static void parse_bad(const char *text, const char *field)
{
	json_t *obj = json_loads(text, 0, NULL);
	struct kiln_provider_ext *x = NULL;
	struct kiln_err err = {0};

	assert_non_null(obj);
	assert_int_equal(kiln_provider_ext_parse(obj, "providers.p", &x, &err),
			 KILN_EINVAL);
	assert_string_equal(err.field, field);
	assert_null(x);
	json_decref(obj);
}

static void test_defaults(void **state)
{
	struct kiln_provider_ext *x = parse_ok("{}");

	(void)state;
	assert_false(x->is_async);
	assert_string_equal(x->method, "POST");
	assert_int_equal(x->retry_base_ms, 1000);
	assert_int_equal(x->retry_max_ms, 60000);
	assert_true(x->jitter_full);
	assert_int_equal(x->concurrency, 100);
	assert_int_equal(x->step_deadline_s, 0);
	assert_null(x->artifact_pointers);
	kiln_provider_ext_unref(x);
}

static void test_bad_settings_name_the_key(void **state)
{
	(void)state;
	parse_bad("{\"mode\": \"later\"}", "providers.p.mode");
	parse_bad("{\"concurrency\": 0}", "providers.p.concurrency");
	parse_bad("{\"retry\": {\"jitter\": \"some\"}}",
		  "providers.p.retry.jitter");
	parse_bad("{\"retry\": {\"base\": 1}}", "providers.p.retry.base");
	parse_bad("{\"mode\": \"async\"}", "providers.p.async");
	parse_bad("{\"async\": {}}", "providers.p.async");
	parse_bad("{\"mode\": \"async\", \"async\": {\"status_pointer\": "
		  "\"/s\", \"success_values\": [\"ok\"], \"status_url_pointer\":"
		  " \"/u\"}}",
		  "providers.p.async.job_id_pointer");
	parse_bad("{\"mode\": \"async\", \"async\": {\"job_id_pointer\": "
		  "\"id\", \"status_pointer\": \"/s\"}}",
		  "providers.p.async.job_id_pointer");
	parse_bad("{\"mode\": \"async\", \"async\": {\"job_id_pointer\": "
		  "\"/id\", \"status_pointer\": \"/s\", \"success_values\": "
		  "[\"ok\"]}}",
		  "providers.p.async.status_url_pointer");
	parse_bad("{\"mode\": \"async\", \"async\": {\"job_id_pointer\": "
		  "\"/id\", \"status_pointer\": \"/s\", \"success_values\": [],"
		  " \"status_url_pointer\": \"/u\"}}",
		  "providers.p.async.success_values");
	parse_bad("{\"artifacts\": {\"url_pointers\": [\"images\"]}}",
		  "providers.p.artifacts.url_pointers");
	parse_bad("{\"body\": [1]}", "providers.p.body");
}

static const char *ASYNC =
	"{\"mode\": \"async\", \"async\": {"
	"\"job_id_pointer\": \"/jobId\","
	"\"status_url_pointer\": \"/statusUrl\","
	"\"cancel_url_template\": \"http://h/cancel/{job_id}\","
	"\"cancel_method\": \"PUT\","
	"\"cancel_body\": {\"delete\": [\"{job_id}\"]},"
	"\"status_pointer\": \"/status\","
	"\"success_values\": [\"succeeded\"],"
	"\"failure_values\": [\"failed\", \"3\"],"
	"\"result_pointer\": \"/result\","
	"\"error_pointer\": \"/error/message\"}}";

static void test_job_and_states(void **state)
{
	struct kiln_provider_cfg p = {.name = "ff", .type = "http"};
	struct kiln_err err = {0};
	json_t *answer, *job = NULL, *result, *body;
	char error[256];

	(void)state;
	p.ext = parse_ok(ASYNC);
	answer = json_pack("{ss ss}", "jobId", "urn:j/1", "statusUrl",
			   "http://h/status/1");
	assert_int_equal(kiln_provider_job(&p, answer, &job, &err), KILN_OK);
	assert_string_equal(json_string_value(json_object_get(job, "id")),
			    "urn:j/1");
	assert_string_equal(json_string_value(json_object_get(job,
							      "status_url")),
			    "http://h/status/1");
	assert_string_equal(json_string_value(json_object_get(job,
							      "cancel_url")),
			    "http://h/cancel/urn:j/1");
	assert_null(json_object_get(job, "result_url"));
	json_decref(job);
	json_decref(answer);

	/* No job id: the provider's answer is unusable. */
	answer = json_pack("{ss}", "statusUrl", "http://h/s");
	assert_int_equal(kiln_provider_job(&p, answer, &job, &err),
			 KILN_EUPSTREAM);
	assert_non_null(strstr(err.msg, "/jobId"));
	json_decref(answer);

	answer = json_pack("{ss}", "status", "running");
	assert_int_equal(kiln_provider_job_state(&p, answer, "1", error,
						 sizeof(error)),
			 KILN_JOB_RUNNING);
	json_decref(answer);
	answer = json_object(); /* no status yet: still running */
	assert_int_equal(kiln_provider_job_state(&p, answer, "1", error,
						 sizeof(error)),
			 KILN_JOB_RUNNING);
	json_decref(answer);
	answer = json_pack("{ss s{ss}}", "status", "failed", "error",
			   "message", "NSFW");
	assert_int_equal(kiln_provider_job_state(&p, answer, "1", error,
						 sizeof(error)),
			 KILN_JOB_FAILED);
	assert_string_equal(error, "provider 'ff' job 1 ended failed: NSFW");
	json_decref(answer);
	answer = json_pack("{si}", "status", 3); /* numbers compare as text */
	assert_int_equal(kiln_provider_job_state(&p, answer, "1", error,
						 sizeof(error)),
			 KILN_JOB_FAILED);
	json_decref(answer);

	answer = json_pack("{ss s{s[s]}}", "status", "succeeded", "result",
			   "outputs", "u");
	assert_int_equal(kiln_provider_job_state(&p, answer, "1", error,
						 sizeof(error)),
			 KILN_JOB_SUCCEEDED);
	result = kiln_provider_job_result(&p, answer, "1");
	assert_true(json_is_array(json_object_get(result, "outputs")));
	json_decref(result);
	json_decref(answer);

	body = kiln_provider_cancel_body(&p, "j9");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(body, "delete"), 0)),
			    "j9");
	json_decref(body);
	kiln_provider_ext_unref(p.ext);
}

/* ComfyUI: the status sits under the job id, and the result is not an
 * object. */
static void test_job_id_in_pointer_and_wrapped_result(void **state)
{
	struct kiln_provider_cfg p = {.name = "comfy", .type = "http"};
	json_t *answer, *result;
	char error[128];

	(void)state;
	p.ext = parse_ok(
		"{\"mode\": \"async\", \"async\": {\"job_id_pointer\": "
		"\"/prompt_id\", \"status_url_template\": "
		"\"http://c/history/{job_id}\", \"status_pointer\": "
		"\"/{job_id}/status/status_str\", \"success_values\": "
		"[\"success\"], \"result_pointer\": \"/{job_id}/outputs/9\"}}");
	answer = json_pack("{s{s{ss} s{si}}}", "a/b", "status", "status_str",
			   "success", "outputs", "9", 7);
	assert_int_equal(kiln_provider_job_state(&p, answer, "a/b", error,
						 sizeof(error)),
			 KILN_JOB_SUCCEEDED);
	result = kiln_provider_job_result(&p, answer, "a/b");
	assert_int_equal(json_integer_value(json_object_get(result, "output")),
			 7);
	json_decref(result);
	json_decref(answer);
	kiln_provider_ext_unref(p.ext);
}

static void test_failure_kinds(void **state)
{
	struct kiln_http_response r = {0};
	static const long transient[] = {408, 429, 500, 502, 503, 504};
	static const long permanent[] = {301, 400, 401, 403, 404, 422};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
		r.status = transient[i];
		assert_int_equal(kiln_provider_failure_kind(&r),
				 KILN_FAIL_TRANSIENT);
	}
	for (i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++) {
		r.status = permanent[i];
		assert_int_equal(kiln_provider_failure_kind(&r),
				 KILN_FAIL_PERMANENT);
	}
	r.status = 0;
	r.curl_code = CURLE_COULDNT_CONNECT;
	assert_int_equal(kiln_provider_failure_kind(&r), KILN_FAIL_TRANSIENT);
	r.curl_code = CURLE_OPERATION_TIMEDOUT;
	assert_int_equal(kiln_provider_failure_kind(&r), KILN_FAIL_TRANSIENT);
	r.is_too_big = 1;
	assert_int_equal(kiln_provider_failure_kind(&r), KILN_FAIL_PERMANENT);
}

static void test_backoff(void **state)
{
	struct kiln_provider_ext *x = parse_ok(
		"{\"retry\": {\"base_delay_ms\": 500, \"max_delay_ms\": 3000,"
		" \"jitter\": \"none\"}}");
	struct kiln_provider_ext *full = parse_ok(
		"{\"retry\": {\"base_delay_ms\": 500, \"max_delay_ms\": 3000}}");
	uint32_t rnd;

	(void)state;
	assert_int_equal(kiln_backoff_ms(x, 1, 12345, -1), 500);
	assert_int_equal(kiln_backoff_ms(x, 2, 12345, -1), 1000);
	assert_int_equal(kiln_backoff_ms(x, 3, 12345, -1), 2000);
	assert_int_equal(kiln_backoff_ms(x, 4, 12345, -1), 3000);
	assert_int_equal(kiln_backoff_ms(x, 40, 12345, -1), 3000);
	/* Retry-After wins when longer. */
	assert_int_equal(kiln_backoff_ms(x, 1, 0, 7000), 7000);
	assert_int_equal(kiln_backoff_ms(x, 3, 0, 100), 2000);
	/* Full jitter stays within [0, bound]. */
	for (rnd = 0; rnd < 5000; rnd += 7) {
		int64_t d = kiln_backoff_ms(full, 3, rnd * 2654435761u, -1);

		assert_true(d >= 0 && d <= 2000);
	}
	kiln_provider_ext_unref(x);
	kiln_provider_ext_unref(full);
}

static void test_retry_after(void **state)
{
	(void)state;
	assert_int_equal(kiln_parse_retry_after("2", 0), 2000);
	assert_int_equal(kiln_parse_retry_after(" 120\r\n", 0), 120000);
	assert_int_equal(kiln_parse_retry_after("soon", 0), -1);
	assert_int_equal(kiln_parse_retry_after("2x", 0), -1);
	/* An HTTP date: 1994-11-06 08:49:37 GMT is 784111777. */
	assert_int_equal(kiln_parse_retry_after(
				 "Sun, 06 Nov 1994 08:49:37 GMT", 784111770000LL),
			 7000);
	/* Counted in ms: 0.25 s before the named second. */
	assert_int_equal(kiln_parse_retry_after(
				 "Sun, 06 Nov 1994 08:49:37 GMT", 784111776750LL),
			 250);
	assert_int_equal(kiln_parse_retry_after(
				 "Sun, 06 Nov 1994 08:49:37 GMT", 784111800000LL),
			 0);
}

static void test_artifact_urls(void **state)
{
	json_t *result = json_loads(
		"{\"images\": [{\"url\": \"https://cdn/a.png\"},"
		" {\"url\": \"http://cdn/b.png\"}, {\"url\": \"ftp://x\"}],"
		" \"video\": {\"url\": \"https://cdn/v.mp4\"},"
		" \"a/b\": \"https://cdn/slash.png\","
		" \"output\": [\"https://cdn/o0.png\", 3]}",
		0, NULL);
	json_t *ptrs = json_pack("[ssss]", "/images/*/url", "/video/url",
				 "/a~1b", "/output/0");
	json_t *urls = kiln_artifact_urls(result, ptrs);

	(void)state;
	assert_int_equal(json_array_size(urls), 5);
	assert_string_equal(json_string_value(json_array_get(urls, 0)),
			    "https://cdn/a.png");
	assert_string_equal(json_string_value(json_array_get(urls, 1)),
			    "http://cdn/b.png");
	assert_string_equal(json_string_value(json_array_get(urls, 2)),
			    "https://cdn/v.mp4");
	assert_string_equal(json_string_value(json_array_get(urls, 3)),
			    "https://cdn/slash.png");
	assert_string_equal(json_string_value(json_array_get(urls, 4)),
			    "https://cdn/o0.png");
	json_decref(urls);
	json_decref(ptrs);
	json_decref(result);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_settings_name_the_key),
		cmocka_unit_test(test_job_and_states),
		cmocka_unit_test(test_job_id_in_pointer_and_wrapped_result),
		cmocka_unit_test(test_failure_kinds),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_artifact_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
