/*
 * provider.c - request building and answer reading for the provider kinds
 * (see provider.h).  No I/O here: io_loop does the transfer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct kiln_http_request *
kiln_provider_http_request(const struct kiln_provider_cfg *p,
			   const json_t *input, struct kiln_err *err)
{
	struct kiln_http_request *req = calloc(1, sizeof(*req));
	size_t i;

	if (req == NULL)
		goto oom;
	req->method = strdup("POST");
	req->url = strdup(p->url);
	req->body = json_dumps(input, JSON_COMPACT);
	if (!req->method || !req->url || !req->body)
		goto oom;
	req->body_len = strlen(req->body);
	req->headers = curl_slist_append(NULL,
					 "Content-Type: application/json");
	req->headers = curl_slist_append(req->headers,
					 "Accept: application/json");
	/* Disable "Expect: 100-continue": it costs a round trip per call. */
	req->headers = curl_slist_append(req->headers, "Expect:");
	for (i = 0; i < p->n_headers; i++)
		req->headers = curl_slist_append(req->headers,
						 p->header_lines[i]);
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
	kiln_text_excerpt(resp->body, resp->body_len, KILN_PROVIDER_EXCERPT,
			  ex);
	if (resp->status < 200 || resp->status > 299)
		return kiln_err_set(err, KILN_EUPSTREAM, "",
				    "provider '%s' answered HTTP %ld: %s",
				    p->name, resp->status, ex);
	v = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		return kiln_err_set(err, KILN_EUPSTREAM, "",
				    "provider '%s' answered HTTP %ld with a"
				    " body that is not a JSON object: %s",
				    p->name, resp->status, ex);
	}
	*result = v;
	return KILN_OK;
}
