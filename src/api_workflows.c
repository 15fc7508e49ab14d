/*
 * api_workflows.c - /api/v1/workflows: create, list, get, patch, cancel,
 * start, pause, resume, cleanup.
 *
 * Handlers validate, write, answer: they never wait on providers.  Each
 * state change is committed by the store before the answer is rendered,
 * and the engine is kicked after the commit.
 */
#include <string.h>

#include "kiln/artifacts.h"
#include "kiln/http.h"
#include "kiln/json_spec.h"
#include "kiln/netcheck.h"
#include "kiln/workflow_validate.h"

/* Answers 200 (or status) with the current WorkflowPublic of id. */
static void reply_workflow(struct kiln_store *st, struct kiln_req *req,
			   const char *id, unsigned status,
			   struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	json_t *wf = NULL;

	if (kiln_store_get_workflow(st, id, &req->scope, &wf, &err) !=
	    KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	kiln_reply_json(resp, status, wf);
}

/* 1 if detail already has an error at ["body", field]. */
static int has_error_at(const json_t *detail, const char *field)
{
	size_t i;
	json_t *d;

	json_array_foreach(detail, i, d) {
		const char *at = json_string_value(
			json_array_get(json_object_get(d, "loc"), 1));

		if (at && strcmp(at, field) == 0)
			return 1;
	}
	return 0;
}

/* A webhook_url whose host is on a private network is refused (unless the
 * config allows it): callbacks must not become a way into the network
 * kilnd runs in.  Checked again at every connection (DNS rebinding). */
void kiln_api_check_webhook_target(struct kiln_req *req, const json_t *body,
				   json_t *detail)
{
	const char *url = json_string_value(json_object_get(body,
							    "webhook_url"));
	struct kiln_err err = {0};
	json_t *loc;

	if (url == NULL || has_error_at(detail, "webhook_url") ||
	    kiln_webhook_url_check(
		    url, req->app->cfg->webhooks->allow_private_networks,
		    &err) == KILN_OK)
		return;
	loc = json_pack("[ss]", "body", "webhook_url");
	kiln_detail_add(detail, loc, "value_error", "Value error, %s",
			err.msg);
	json_decref(loc);
}

/* A tenant's token creates only for its own tenant. */
int kiln_api_tenant_or_reply(struct kiln_req *req, json_t *wf,
			     struct kiln_resp *resp)
{
	const char *asked;

	if (!req->principal.has_tenant)
		return 0;
	asked = json_string_value(json_object_get(wf, "origin_tenant_id"));
	if (asked != NULL && strcmp(asked, req->principal.tenant) != 0) {
		kiln_reply_detail(resp, MHD_HTTP_FORBIDDEN,
				  "token for tenant '%s' cannot create"
				  " workflows for tenant '%s'",
				  req->principal.tenant, asked);
		return -1;
	}
	json_object_set_new(wf, "origin_tenant_id",
			    json_string(req->principal.tenant));
	return 0;
}

/* Where a create's answer goes once its insert is committed. */
struct create_later {
	struct kiln_engine *engine;
	struct kiln_later *later;
};

/* The insert is committed (or lost), on the committing thread: starts
 * the first steps and answers the suspended create. */
static void on_created(void *ctx, enum kiln_rc rc, struct kiln_created *out)
{
	struct create_later *c = ctx;
	struct kiln_resp resp = {0};
	struct kiln_err err = {0};

	if (rc != KILN_OK) {
		kiln_err_set(&err, rc, "", "store error: the workflow was not"
					   " committed; nothing was created");
		kiln_reply_error(&resp, &err);
	} else {
		kiln_engine_start_claimed(c->engine, out->claims);
		if (out->body != NULL) {
			kiln_reply_text(&resp, MHD_HTTP_CREATED, out->body,
					out->body_len);
		} else {
			kiln_err_set(&err, KILN_ENOMEM, "",
				     "out of memory for a created workflow's"
				     " answer");
			kiln_reply_error(&resp, &err);
		}
	}
	kiln_later_send(c->later, &resp);
	free(c);
}

/*
 * The request is answered once the insert is committed, but this thread
 * does not wait for it: the connection is suspended and the committing
 * thread answers it (on_created), so the HTTP threads go on reading
 * requests and many creates share one commit.
 */
void kiln_api_workflow_create(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array();
	json_t *body = NULL, *wf = NULL;
	struct create_later *c = NULL;
	struct kiln_claimer who;
	struct kiln_err err = {0};
	struct kiln_store *st;
	char id[KILN_UUID_LEN];
	int start = 1;

	kiln_query_bool(detail, "start", kiln_req_query(req, "start"), 1,
			&start);
	body = kiln_reply_body(req, resp);
	if (body == NULL)
		goto out;
	wf = kiln_workflow_validate_create(body, req->app->cfg, detail);
	kiln_api_check_webhook_target(req, body, detail);
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		detail = NULL;
		goto out;
	}
	if (kiln_api_tenant_or_reply(req, wf, resp) != 0)
		goto out;
	st = kiln_reply_store(resp);
	if (st == NULL)
		goto out;
	kiln_uuid_new(id);
	json_object_set_new(wf, "id", json_string(id));
	json_object_set_new(wf, "status",
			    json_string(start ? "RUNNING" : "PENDING"));
	who = kiln_engine_claimer(req->app->engine);
	c = malloc(sizeof(*c));
	if (c == NULL) {
		kiln_reply_detail(resp, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "out of memory");
		goto out;
	}
	c->engine = req->app->engine;
	c->later = kiln_answer_later(req, resp);
	if (c->later == NULL) {
		free(c);
		goto out;
	}
	if (kiln_store_insert_workflow_then(st, wf, &who, on_created, c,
					    &err) != KILN_OK) {
		kiln_later_cancel(c->later, resp);
		free(c);
		kiln_reply_error(resp, &err);
	}
out:
	json_decref(detail);
	json_decref(body);
	json_decref(wf);
}

void kiln_api_workflow_list(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array();
	struct kiln_wf_filter f = {0};
	enum kiln_wf_status status;
	struct kiln_err err = {0};
	long long skip = 0, limit = 50;
	struct kiln_store *st;
	json_t *list = NULL;

	f.status = kiln_req_query(req, "status");
	f.origin_instance = kiln_req_query(req, "origin_instance");
	f.origin_tenant_id = kiln_req_query(req, "origin_tenant_id");
	if (f.status && kiln_wf_status_parse(f.status, &status) != 0) {
		json_t *loc = json_pack("[ss]", "query", "status");

		kiln_detail_add(detail, loc, "enum",
				"Input should be 'PENDING', 'RUNNING',"
				" 'PAUSED', 'COMPLETED', 'FAILED' or"
				" 'CANCELLED'");
		json_decref(loc);
	}
	kiln_query_bool(detail, "include_deleted",
			kiln_req_query(req, "include_deleted"), 0,
			&f.include_deleted);
	kiln_query_int(detail, "skip", kiln_req_query(req, "skip"), 0, 0,
		       INT64_MAX / 2, &skip);
	kiln_query_int(detail, "limit", kiln_req_query(req, "limit"), 50, 1,
		       1000, &limit);
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		return;
	}
	json_decref(detail);
	f.skip = skip;
	f.limit = limit;
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_list_workflows(st, &f, &req->scope, &list, &err) !=
	    KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	kiln_reply_json(resp, MHD_HTTP_OK, list);
}

void kiln_api_workflow_get(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_store *st;

	if (kiln_reply_uuid(req, resp, "workflow_id") != 0)
		return;
	st = kiln_reply_store(resp);
	if (st != NULL)
		reply_workflow(st, req, req->path_id, MHD_HTTP_OK, resp);
}

void kiln_api_workflow_patch(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array();
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *body;

	if (kiln_reply_uuid(req, resp, "workflow_id") != 0)
		goto out;
	body = kiln_reply_body(req, resp);
	if (body == NULL)
		goto out;
	kiln_workflow_validate_update(body, detail);
	kiln_api_check_webhook_target(req, body, detail);
	if (json_array_size(detail) > 0) {
		json_decref(body);
		kiln_reply_validation(resp, detail);
		return;
	}
	st = kiln_reply_store(resp);
	if (st != NULL) {
		if (kiln_store_patch_workflow(st, req->path_id, &req->scope,
					      body, &err) != KILN_OK)
			kiln_reply_error(resp, &err);
		else
			reply_workflow(st, req, req->path_id, MHD_HTTP_OK,
				       resp);
	}
	json_decref(body);
out:
	json_decref(detail);
}

/* start, pause, resume, cancel: a guarded transition, then a kick. */
static void transition(struct kiln_req *req, struct kiln_resp *resp,
		       enum kiln_wf_action action)
{
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *stopped = NULL;

	if (kiln_reply_uuid(req, resp, "workflow_id") != 0)
		return;
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_workflow_action(st, req->path_id, &req->scope, action,
				       &stopped, &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	/* Steps that were running stop costing: transfers aborted, provider
	 * jobs cancelled. */
	if (stopped != NULL)
		kiln_engine_stop_steps(req->app->engine, stopped);
	json_decref(stopped);
	if (action == KILN_WF_ACTION_START || action == KILN_WF_ACTION_RESUME)
		kiln_engine_kick(req->app->engine, req->path_id);
	reply_workflow(st, req, req->path_id, MHD_HTTP_OK, resp);
}

void kiln_api_workflow_cancel(struct kiln_req *req, struct kiln_resp *resp)
{
	transition(req, resp, KILN_WF_ACTION_CANCEL);
}

void kiln_api_workflow_start(struct kiln_req *req, struct kiln_resp *resp)
{
	transition(req, resp, KILN_WF_ACTION_START);
}

void kiln_api_workflow_pause(struct kiln_req *req, struct kiln_resp *resp)
{
	transition(req, resp, KILN_WF_ACTION_PAUSE);
}

void kiln_api_workflow_resume(struct kiln_req *req, struct kiln_resp *resp)
{
	transition(req, resp, KILN_WF_ACTION_RESUME);
}

void kiln_api_workflow_cleanup(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array();
	json_t *steps = NULL, *cleanup, *wf = NULL;
	struct kiln_err err = {0};
	struct kiln_store *st;
	int cleanup_tasks = 1;

	kiln_query_bool(detail, "cleanup_tasks",
			kiln_req_query(req, "cleanup_tasks"), 1,
			&cleanup_tasks);
	if (kiln_reply_uuid(req, resp, "workflow_id") != 0)
		goto out;
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		detail = NULL;
		goto out;
	}
	st = kiln_reply_store(resp);
	if (st == NULL)
		goto out;
	if (kiln_store_soft_delete_workflow(st, req->path_id, &req->scope,
					    &steps, &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		goto out;
	}
	if (cleanup_tasks)
		cleanup = kiln_artifacts_cleanup(req->app->cfg->data_dir,
						 req->path_id, steps);
	else
		cleanup = json_pack("{sisis[]s[]}", "tasks_processed", 0,
				    "tasks_cleaned", 0, "deleted_paths",
				    "errors");
	if (kiln_store_get_workflow(st, req->path_id, &req->scope, &wf,
				    &err) != KILN_OK) {
		json_decref(cleanup);
		kiln_reply_error(resp, &err);
		goto out;
	}
	kiln_reply_json(resp, MHD_HTTP_OK,
			json_pack("{soso}", "workflow", wf, "cleanup",
				  cleanup));
out:
	json_decref(detail);
	json_decref(steps);
}
