/*
 * provider.c - request building and answer reading for the provider kinds
 * (see provider.h).  No I/O here: io_loop does the transfer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/json_load.h"
#include "kiln/json_writer.h"
#include "kiln/provider.h"
#include "kiln/utf8.h"

json_t *kiln_provider_dryrun_result(const json_t *input, const char *wf_id,
				    const char *step_id,
				    const char *task_type)
{
	json_t *r = json_is_object(input) ? json_deep_copy(input)
					  : json_object();
	char path[256];

	snprintf(path, sizeof(path), "dryrun://%s/%s.png", wf_id, step_id);
	json_object_set_new(r, "dry_run", json_true());
	json_object_set_new(r, "provider", json_string("dryrun"));
	json_object_set_new(r, "task_type", json_string(task_type));
	json_object_set_new(r, "result_image_path", json_string(path));
	return r;
}

/* The headers every provider request carries, then the provider's own. */
static struct curl_slist *provider_headers(const struct kiln_provider_cfg *p,
					   int has_body)
{
	struct curl_slist *h = NULL, *next;
	size_t i;

	/* Without a body, "Content-Type:" stops curl from sending its
	 * form-urlencoded default on a POST. */
	h = curl_slist_append(h, has_body ? "Content-Type: application/json"
					  : "Content-Type:");
	if (h == NULL)
		return NULL;
	next = curl_slist_append(h, "Accept: application/json");
	if (next == NULL)
		goto oom;
	h = next;
	/* Disable "Expect: 100-continue": it costs a round trip per call. */
	next = curl_slist_append(h, "Expect:");
	for (i = 0; next != NULL && i < p->n_headers; i++) {
		h = next;
		next = curl_slist_append(h, p->header_lines[i]);
	}
	if (next == NULL)
		goto oom;
	return next;
oom:
	curl_slist_free_all(h);
	return NULL;
}

int kiln_provider_share_headers(struct kiln_provider_cfg *p)
{
	int i;

	if (p->type == NULL || strcmp(p->type, "http") != 0)
		return 0;
	for (i = 0; i < 2; i++) {
		curl_slist_free_all(p->request_headers[i]);
		p->request_headers[i] = provider_headers(p, i);
		if (p->request_headers[i] == NULL)
			return -1;
	}
	return 0;
}

struct kiln_http_request *
kiln_provider_request(const struct kiln_provider_cfg *p, const char *method,
		      const char *url, const json_t *body,
		      struct kiln_err *err)
{
	struct kiln_http_request *req = calloc(1, sizeof(*req));

	if (req == NULL)
		goto oom;
	req->method = strdup(method);
	req->url = strdup(url);
	if (!req->method || !req->url)
		goto oom;
	if (body != NULL) {
		req->body = kiln_jw_dump(body);
		if (req->body == NULL)
			goto oom;
		req->body_len = strlen(req->body);
	}
	req->headers = p->request_headers[body != NULL];
	req->headers_borrowed = req->headers != NULL;
	if (req->headers == NULL)
		req->headers = provider_headers(p, body != NULL);
	if (req->headers == NULL)
		goto oom;
	req->connect_timeout_ms = (long)p->connect_timeout_s * 1000;
	req->timeout_ms = (long)p->timeout_s * 1000;
	req->max_response_bytes = KILN_PROVIDER_MAX_RESPONSE;
	return req;
oom:
	kiln_http_request_free(req);
	kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	return NULL;
}

/* Copy of tpl with every string exactly "{{input}}" replaced by input. */
static json_t *fill_body(const json_t *tpl, const json_t *input)
{
	const char *key;
	json_t *v, *out;
	size_t i;

	if (json_is_string(tpl) &&
	    strcmp(json_string_value(tpl), "{{input}}") == 0)
		return json_deep_copy(input);
	if (json_is_object(tpl)) {
		out = json_object();
		json_object_foreach((json_t *)tpl, key, v)
			json_object_set_new(out, key, fill_body(v, input));
		return out;
	}
	if (json_is_array(tpl)) {
		out = json_array();
		json_array_foreach(tpl, i, v)
			json_array_append_new(out, fill_body(v, input));
		return out;
	}
	return json_deep_copy(tpl);
}

struct kiln_http_request *
kiln_provider_http_request(const struct kiln_provider_cfg *p,
			   const json_t *input, struct kiln_err *err)
{
	const struct kiln_provider_ext *x = p->ext;
	json_t *body = x && x->body ? fill_body(x->body, input)
				    : json_incref((json_t *)input);
	struct kiln_http_request *req = kiln_provider_request(
		p, x && x->method ? x->method : "POST", p->url, body, err);

	json_decref(body);
	return req;
}

enum kiln_failure kiln_provider_failure_kind(
	const struct kiln_http_response *resp)
{
	if (resp->is_too_big)
		return KILN_FAIL_PERMANENT;
	if (resp->curl_code != CURLE_OK)
		return KILN_FAIL_TRANSIENT;
	if (resp->status == 408 || resp->status == 429 || resp->status >= 500)
		return KILN_FAIL_TRANSIENT;
	return KILN_FAIL_PERMANENT;
}

int64_t kiln_backoff_ms(const struct kiln_provider_ext *x, int retry_n,
			uint32_t rnd, long retry_after_ms)
{
	int64_t cap = x ? x->retry_base_ms : 1000;
	int64_t max = x ? x->retry_max_ms : 60000;
	int64_t delay;
	int i;

	for (i = 1; i < retry_n && cap < max; i++)
		cap *= 2;
	if (cap > max)
		cap = max;
	delay = x && !x->jitter_full ? cap
		: cap > 0 ? (int64_t)(rnd % (uint64_t)(cap + 1)) : 0;
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	return delay;
}

enum kiln_rc kiln_provider_http_result(const struct kiln_provider_cfg *p,
				       const struct kiln_http_response *resp,
				       json_t **result, struct kiln_err *err)
{
	char ex[KILN_PROVIDER_EXCERPT + 4];
	json_t *v;

	if (resp->is_too_big)
		return kiln_err_set(err, KILN_EUPSTREAM, "",
				    "provider '%s' answered more than %u bytes",
				    p->name, KILN_PROVIDER_MAX_RESPONSE);
	if (resp->curl_code == CURLE_OPERATION_TIMEDOUT)
		return kiln_err_set(err, KILN_ETIMEOUT, "",
				    "provider '%s' timed out after %d s",
				    p->name, p->timeout_s);
	if (resp->curl_code != CURLE_OK)
		return kiln_err_set(err, KILN_EUPSTREAM, "",
				    "provider '%s' request failed: %s", p->name,
				    resp->error);
	/* The excerpt only for a message: it costs more than reading a
	 * short answer. */
	if (resp->status < 200 || resp->status > 299) {
		kiln_text_excerpt(resp->body, resp->body_len,
				  KILN_PROVIDER_EXCERPT, ex);
		return kiln_err_set(err, KILN_EUPSTREAM, "",
				    "provider '%s' answered HTTP %ld: %s",
				    p->name, resp->status, ex);
	}
	v = kiln_json_load(resp->body, resp->body_len, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		kiln_text_excerpt(resp->body, resp->body_len,
				  KILN_PROVIDER_EXCERPT, ex);
		return kiln_err_set(err, KILN_EUPSTREAM, "",
				    "provider '%s' answered HTTP %ld with a"
				    " body that is not a JSON object: %s",
				    p->name, resp->status, ex);
	}
	*result = v;
	return KILN_OK;
}
