/*
 * api_runs.c - runs of published workflows: POST
 * /api/v1/templates/{id}/run, GET /api/v1/runs/{id}, POST
 * /api/v1/runs/{id}/cancel.
 *
 * A run is a workflow created from the template's latest version (its
 * runId is the workflow id).  ?wait=SECONDS suspends the connection, not
 * a thread, until the run ends or the time is up (http_wait.c).
 */
#include <string.h>

#include "kiln/http.h"
#include "kiln/idempotency.h"
#include "kiln/json_spec.h"
#include "kiln/run_view.h"
#include "kiln/template_inputs.h"
#include "kiln/template_validate.h"

#define WAIT_MAX_S 60

static const struct kiln_field run_fields[] = {
	{"inputs", KILN_F_OBJECT, 0, 0, KILN_F_NO_LIMIT},
	{"name", KILN_F_STRING, 0, 1, 255},
	{"webhook_url", KILN_F_STRING, KILN_F_NULLABLE, 0, 512},
	{"origin_instance", KILN_F_STRING, 0, 1, 100},
	{"origin_zone", KILN_F_STRING, KILN_F_NULLABLE, 0, 50},
	{"origin_tenant_id", KILN_F_STRING, KILN_F_NULLABLE, 0, 100},
	{"origin_reference", KILN_F_STRING, KILN_F_NULLABLE, 0, 512},
};

static void render_post(struct kiln_req *req, struct kiln_resp *resp);
static void render_get(struct kiln_req *req, struct kiln_resp *resp);

/* Answers the run id: 200 once it has ended; while it runs, 202 (POST)
 * or 200 (GET) when not waiting or the wait is over, else waits. */
static void answer_run(struct kiln_req *req, const char *id, int is_post,
		       int64_t wait_until_ms, struct kiln_resp *resp)
{
	uint64_t seq = kiln_waits_seq(req->app->waits);
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *wf = NULL;
	int ended;

	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_get_workflow(st, id, &req->scope, &wf, &err) !=
	    KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	ended = kiln_run_ended(wf);
	if (!ended && wait_until_ms > 0 && !req->wait_expired) {
		resp->wait_render = is_post ? render_post : render_get;
		kiln_strlcpy(resp->wait_id, id, sizeof(resp->wait_id));
		resp->wait_until_ms = wait_until_ms;
		resp->wait_seq = seq;
		json_decref(wf);
		return;
	}
	/* A new run answers 202 even when it was quick enough to end
	 * already; 200 says "this is the end you waited (or asked again)
	 * for". */
	kiln_reply_json(resp,
			!is_post || (ended && (wait_until_ms > 0 ||
					       resp->is_replay))
				? MHD_HTTP_OK
				: MHD_HTTP_ACCEPTED,
			kiln_run_view(wf));
	json_decref(wf);
}

static void render_post(struct kiln_req *req, struct kiln_resp *resp)
{
	resp->is_replay = req->is_replay;
	answer_run(req, req->path_id, 1, req->wait_until_ms, resp);
}

static void render_get(struct kiln_req *req, struct kiln_resp *resp)
{
	answer_run(req, req->path_id, 0, req->wait_until_ms, resp);
}

/* ?wait= as a deadline in ms (0: no wait), or -1 with the error in
 * detail. */
static int64_t wait_deadline(struct kiln_req *req, json_t *detail)
{
	long long wait = 0;

	if (kiln_query_int(detail, "wait", kiln_req_query(req, "wait"), 0, 0,
			   WAIT_MAX_S, &wait) != 0)
		return -1;
	return wait > 0 ? kiln_now_ms() + wait * 1000 : 0;
}

json_t *kiln_api_runnable_template(struct kiln_req *req,
				   struct kiln_store *st, const char *id,
				   struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	json_t *tpl = NULL;
	const char *status;

	if (kiln_store_get_template(st, id, 0, &req->scope, &tpl, &err) !=
	    KILN_OK) {
		kiln_reply_error(resp, &err);
		return NULL;
	}
	status = json_string_value(json_object_get(tpl, "status"));
	if (status != NULL && strcmp(status, "ARCHIVED") == 0) {
		kiln_reply_detail(resp, MHD_HTTP_CONFLICT,
				  "Template %s is archived; it cannot run", id);
		json_decref(tpl);
		return NULL;
	}
	return tpl;
}

void kiln_api_default_tenant(struct kiln_req *req, json_t *body,
			     const json_t *tpl)
{
	const json_t *tenant = json_object_get(tpl, "origin_tenant_id");

	if (!req->principal.has_tenant && json_is_string(tenant) &&
	    !json_is_string(json_object_get(body, "origin_tenant_id")))
		json_object_set(body, "origin_tenant_id", (json_t *)tenant);
}

int kiln_api_idempotency(struct kiln_req *req, struct kiln_store *st,
			 const json_t *body, struct kiln_idem *idem,
			 char hash[KILN_IDEM_HASH_LEN], char **existing,
			 struct kiln_resp *resp)
{
	struct kiln_err err = {0};

	const char *key = kiln_req_header(req, "Idempotency-Key");
	char path[1024];
	size_t n;

	memset(idem, 0, sizeof(*idem));
	*existing = NULL;
	if (key == NULL)
		return 0;
	/* The router reads ".../run/" as ".../run": so does the key. */
	n = strlen(req->path);
	while (n > 1 && req->path[n - 1] == '/')
		n--;
	if (n >= sizeof(path))
		n = sizeof(path) - 1;
	memcpy(path, req->path, n);
	path[n] = '\0';
	if (kiln_idem_hash(req->method, path, body, hash) != 0) {
		kiln_reply_detail(resp, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "out of memory");
		return -1;
	}
	idem->key = key;
	idem->tenant = req->principal.has_tenant ? req->principal.tenant : NULL;
	idem->hash = hash;
	/* A retry is recognised before the request is checked again, so it
	 * is answered even if the template changed or was archived since. */
	if (kiln_store_idem_lookup(st, idem, existing, &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		return -1;
	}
	return 0;
}

/* The run's workflow (validated, owned), or NULL with a 422 in resp. */
static json_t *run_workflow(struct kiln_req *req, const json_t *tpl,
			    const json_t *body, struct kiln_resp *resp)
{
	json_t *detail = json_array(), *loc, *inputs, *wf = NULL;

	loc = json_pack("[ss]", "body", "inputs");
	inputs = kiln_inputs_resolve(detail, loc,
				     json_object_get(tpl, "inputs"),
				     json_object_get(body, "inputs"));
	json_decref(loc);
	if (inputs != NULL)
		wf = kiln_template_run_workflow(tpl, inputs, body,
						req->app->cfg, detail);
	json_decref(inputs);
	kiln_api_check_webhook_target(req, wf, detail);
	if (json_array_size(detail) == 0) {
		json_decref(detail);
		return wf;
	}
	json_decref(wf);
	kiln_reply_invalid_input(resp, detail);
	return NULL;
}

void kiln_api_template_run(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array(), *body = NULL, *tpl = NULL, *wf = NULL;
	json_t *claims = NULL;
	struct kiln_idem idem;
	struct kiln_err err = {0};
	char hash[KILN_IDEM_HASH_LEN];
	char id[KILN_UUID_LEN];
	struct kiln_claimer who;
	struct kiln_store *st;
	char *existing = NULL;
	int64_t until;

	if (kiln_reply_uuid(req, resp, "template_id") != 0)
		goto out;
	until = wait_deadline(req, detail);
	kiln_idem_key_check(detail, kiln_req_header(req, "Idempotency-Key"));
	if (req->body == NULL || req->body_len == 0)
		body = json_object();
	else if ((body = kiln_reply_body(req, resp)) == NULL)
		goto out;
	{
		json_t *loc = json_pack("[s]", "body");

		kiln_spec_check(detail, loc, body, run_fields,
				sizeof(run_fields) / sizeof(run_fields[0]));
		json_decref(loc);
	}
	if (json_array_size(detail) > 0) {
		kiln_reply_invalid_input(resp, detail);
		detail = NULL;
		goto out;
	}
	if (kiln_api_tenant_or_reply(req, body, resp) != 0)
		goto out;
	st = kiln_reply_store(resp);
	if (st == NULL || kiln_api_idempotency(req, st, body, &idem, hash,
					       &existing, resp) != 0)
		goto out;
	if (existing != NULL) {
		resp->is_replay = 1;
		answer_run(req, existing, 1, until, resp);
		free(existing);
		goto out;
	}
	tpl = kiln_api_runnable_template(req, st, req->path_id, resp);
	if (tpl == NULL)
		goto out;
	kiln_api_default_tenant(req, body, tpl);
	wf = run_workflow(req, tpl, body, resp);
	if (wf == NULL)
		goto out;
	kiln_uuid_new(id);
	json_object_set_new(wf, "id", json_string(id));
	json_object_set_new(wf, "status", json_string("RUNNING"));
	json_object_set(wf, "template_id", json_object_get(tpl, "id"));
	json_object_set(wf, "template_version",
			json_object_get(tpl, "version"));
	who = kiln_engine_claimer(req->app->engine);
	if (kiln_store_insert_run(st, wf, &idem, &who, &claims, &existing,
				  &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		goto out;
	}
	kiln_engine_start_claimed(req->app->engine, claims);
	resp->is_replay = existing != NULL;
	answer_run(req, existing ? existing : id, 1, until, resp);
	free(existing);
out:
	json_decref(detail);
	json_decref(body);
	json_decref(tpl);
	json_decref(wf);
}

void kiln_api_run_get(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array();
	int64_t until;

	if (kiln_reply_uuid(req, resp, "run_id") != 0) {
		json_decref(detail);
		return;
	}
	until = wait_deadline(req, detail);
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		return;
	}
	json_decref(detail);
	answer_run(req, req->path_id, 0, until, resp);
}

void kiln_api_run_cancel(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *stopped = NULL;

	if (kiln_reply_uuid(req, resp, "run_id") != 0)
		return;
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_workflow_action(st, req->path_id, &req->scope,
				       KILN_WF_ACTION_CANCEL, &stopped,
				       &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	if (stopped != NULL)
		kiln_engine_stop_steps(req->app->engine, stopped);
	json_decref(stopped);
	answer_run(req, req->path_id, 0, 0, resp);
}
