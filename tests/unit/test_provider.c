/*
 * test_provider.c - building provider requests and reading their answers:
 * each failure kind gives the error message the API shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "kiln/provider.h"

static struct kiln_provider_cfg prov = {
	.name = "fal",
	.type = "http",
	.url = "http://127.0.0.1:9/gen",
	.timeout_s = 7,
	.connect_timeout_s = 3,
};

static void test_dryrun_echoes_input(void **state)
{
	json_t *in = json_pack("{sisi}", "width", 1024, "height", 512);
	json_t *r = kiln_provider_dryrun_result(in, "wf", "gen", "GENERATION");

	assert_int_equal(json_integer_value(json_object_get(r, "width")),
			 1024);
	assert_true(json_is_true(json_object_get(r, "dry_run")));
	assert_string_equal(
		json_string_value(json_object_get(r, "result_image_path")),
		"dryrun://wf/gen.png");
	assert_string_equal(json_string_value(json_object_get(r, "task_type")),
			    "GENERATION");
	/* The input is not modified. */
	assert_null(json_object_get(in, "dry_run"));
	json_decref(r);
	json_decref(in);
}

static void test_request_shape(void **state)
{
	char *lines[] = {"X-Api-Key: k"};
	struct kiln_provider_cfg p = prov;
	json_t *in = json_pack("{ss}", "prompt", "dress");
	struct kiln_http_request *req;
	struct curl_slist *h;
	int has_key = 0, has_ct = 0;

	p.header_lines = lines;
	p.n_headers = 1;
	req = kiln_provider_http_request(&p, in, NULL);
	assert_non_null(req);
	assert_string_equal(req->url, "http://127.0.0.1:9/gen");
	assert_string_equal(req->body, "{\"prompt\":\"dress\"}");
	assert_int_equal(req->timeout_ms, 7000);
	assert_int_equal(req->connect_timeout_ms, 3000);
	for (h = req->headers; h; h = h->next) {
		has_key |= strcmp(h->data, "X-Api-Key: k") == 0;
		has_ct |= strcmp(h->data, "Content-Type: application/json") ==
			  0;
	}
	assert_true(has_key && has_ct);
	kiln_http_request_free(req);
	json_decref(in);
}

/* The headers of requests are built once per provider and shared: a
 * request borrows them, and freeing it leaves them to the config. */
static void test_requests_share_the_provider_headers(void **state)
{
	char *lines[] = {"X-Api-Key: k"};
	struct kiln_provider_cfg p = prov;
	json_t *in = json_pack("{ss}", "prompt", "dress");
	struct kiln_http_request *a, *b, *get;

	(void)state;
	p.header_lines = lines;
	p.n_headers = 1;
	assert_int_equal(kiln_provider_share_headers(&p), 0);
	a = kiln_provider_http_request(&p, in, NULL);
	b = kiln_provider_http_request(&p, in, NULL);
	get = kiln_provider_request(&p, "GET", "http://127.0.0.1:9/s", NULL,
				    NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(get);
	assert_true(a->headers_borrowed && b->headers_borrowed);
	assert_ptr_equal(a->headers, p.request_headers[1]);
	assert_ptr_equal(b->headers, p.request_headers[1]);
	assert_ptr_equal(get->headers, p.request_headers[0]);
	/* Without a body, "Content-Type:" (no value) comes first. */
	assert_string_equal(get->headers->data, "Content-Type:");
	assert_string_equal(a->headers->data,
			    "Content-Type: application/json");
	kiln_http_request_free(a);
	kiln_http_request_free(b);
	kiln_http_request_free(get);
	/* Still the config's, whole. */
	assert_string_equal(p.request_headers[1]->next->next->next->data,
			    "X-Api-Key: k");
	curl_slist_free_all(p.request_headers[0]);
	curl_slist_free_all(p.request_headers[1]);
	json_decref(in);
}

struct answer_case {
	CURLcode code;
	long status;
	const char *body;
	int is_too_big;
	enum kiln_rc rc;
	const char *msg_part;
};

static const struct answer_case answers[] = {
	{CURLE_OK, 200, "{\"url\":\"u\"}", 0, KILN_OK, NULL},
	{CURLE_OK, 201, "{}", 0, KILN_OK, NULL},
	{CURLE_OK, 500, "upstream exploded", 0, KILN_EUPSTREAM,
	 "provider 'fal' answered HTTP 500: upstream exploded"},
	{CURLE_OK, 404, "", 0, KILN_EUPSTREAM, "answered HTTP 404"},
	{CURLE_OK, 200, "hello", 0, KILN_EUPSTREAM,
	 "answered HTTP 200 with a body that is not a JSON object: hello"},
	{CURLE_OK, 200, "[1,2]", 0, KILN_EUPSTREAM, "not a JSON object"},
	{CURLE_OPERATION_TIMEDOUT, 0, "", 0, KILN_ETIMEOUT,
	 "provider 'fal' timed out after 7 s"},
	{CURLE_COULDNT_CONNECT, 0, "", 0, KILN_EUPSTREAM,
	 "provider 'fal' request failed: refused"},
	{CURLE_WRITE_ERROR, 200, "", 1, KILN_EUPSTREAM, "more than"},
};

static void test_answers(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		const struct answer_case *c = &answers[i];
		struct kiln_http_response r = {0};
		struct kiln_err err = {0};
		json_t *result = NULL;

		r.curl_code = c->code;
		r.status = c->status;
		r.body = (char *)c->body;
		r.body_len = strlen(c->body);
		r.is_too_big = c->is_too_big;
		kiln_strlcpy(r.error, "refused", sizeof(r.error));
		assert_int_equal(kiln_provider_http_result(&prov, &r, &result,
							   &err),
				 c->rc);
		if (c->rc == KILN_OK) {
			assert_true(json_is_object(result));
			json_decref(result);
		} else {
			assert_null(result);
			assert_non_null(strstr(err.msg, c->msg_part));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dryrun_echoes_input),
		cmocka_unit_test(test_request_shape),
		cmocka_unit_test(test_requests_share_the_provider_headers),
		cmocka_unit_test(test_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
