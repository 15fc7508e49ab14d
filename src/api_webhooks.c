/*
 * api_webhooks.c - /api/v1/webhook-deliveries: the delivery log (list,
 * one delivery with every attempt) and redelivery.  A tenant's token sees
 * only its tenant's deliveries; another tenant's is a 404.
 */
#include <string.h>

#include "kiln/http.h"
#include "kiln/json_spec.h"
#include "kiln/store.h"

static const char *const events[] = {
	"workflow.completed", "workflow.failed", "workflow.cancelled",
	"step.completed",     "step.failed",        "batch.completed",
	"batch.execution.completed", "batch.execution.failed",
};
static const char *const statuses[] = {"pending", "delivered", "failed"};

static int one_of(const char *v, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, set[i]) == 0)
			return 1;
	return 0;
}

static void bad_query(json_t *detail, const char *name, const char *type,
		      const char *msg)
{
	json_t *loc = json_pack("[ss]", "query", name);

	kiln_detail_add(detail, loc, type, "%s", msg);
	json_decref(loc);
}

void kiln_api_delivery_list(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_delivery_filter f = {0};
	json_t *detail = json_array(), *list = NULL;
	struct kiln_err err = {0};
	struct kiln_store *st;

	f.workflow_id = kiln_req_query(req, "workflow_id");
	f.event = kiln_req_query(req, "event");
	f.status = kiln_req_query(req, "status");
	if (f.workflow_id && !kiln_uuid_is_valid(f.workflow_id))
		bad_query(detail, "workflow_id", "uuid_parsing",
			  "Input should be a valid UUID");
	if (f.event && !one_of(f.event, events, sizeof(events) /
							sizeof(events[0])))
		bad_query(detail, "event", "enum",
			  "Input should be 'workflow.completed',"
			  " 'workflow.failed', 'workflow.cancelled',"
			  " 'step.completed', 'step.failed',"
			  " 'batch.completed', 'batch.execution.completed'"
			  " or 'batch.execution.failed'");
	if (f.status && !one_of(f.status, statuses, sizeof(statuses) /
							    sizeof(statuses[0])))
		bad_query(detail, "status", "enum",
			  "Input should be 'pending', 'delivered' or"
			  " 'failed'");
	kiln_query_page(detail, kiln_req_query(req, "limit"),
			kiln_req_query(req, "offset"), 100, &f.limit,
			&f.offset);
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		return;
	}
	json_decref(detail);
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_list_deliveries(st, &f, &req->scope, &list, &err) !=
	    KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	kiln_reply_json(resp, MHD_HTTP_OK, list);
}

static void reply_delivery(struct kiln_store *st, struct kiln_req *req,
			   unsigned status, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	json_t *d = NULL;

	if (kiln_store_get_delivery(st, req->path_id, &req->scope, &d,
				    &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	kiln_reply_json(resp, status, d);
}

void kiln_api_delivery_get(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_store *st = kiln_reply_store(resp);

	if (st != NULL)
		reply_delivery(st, req, MHD_HTTP_OK, resp);
}

void kiln_api_delivery_redeliver(struct kiln_req *req,
				 struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_reply_store(resp);

	if (st == NULL)
		return;
	if (kiln_store_redeliver(st, req->path_id, &req->scope, &err) !=
	    KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	reply_delivery(st, req, MHD_HTTP_ACCEPTED, resp);
}
