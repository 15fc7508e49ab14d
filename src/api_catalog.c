/*
 * api_catalog.c - /api/v1/catalog/actions: what a workflow can be built
 * from (every task type, its inputs, outputs, capabilities, provider and
 * an example step), rendered by catalog.c from the running config.  The
 * catalog is the same for every token, tenant or operator; it reads
 * nothing from the store.
 */
#include "kiln/catalog.h"
#include "kiln/http.h"
#include "kiln/json_spec.h"

void kiln_api_catalog_list(struct kiln_req *req, struct kiln_resp *resp)
{
	const char *capability = kiln_req_query(req, "capability");
	struct kiln_err err = {0};
	json_t *list = NULL;

	if (capability != NULL && capability[0] == '\0') {
		json_t *detail = json_array();
		json_t *loc = json_pack("[ss]", "query", "capability");

		kiln_detail_add(detail, loc, "string_too_short",
				"String should have at least 1 character");
		json_decref(loc);
		kiln_reply_validation(resp, detail);
		return;
	}
	if (kiln_catalog_render_list(req->app->cfg, capability, &list,
				     &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	kiln_reply_json(resp, MHD_HTTP_OK, list);
}

void kiln_api_catalog_get(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	json_t *action = NULL;

	if (kiln_catalog_render_action(req->app->cfg, req->path_id, &action,
				       &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		return;
	}
	kiln_reply_json(resp, MHD_HTTP_OK, action);
}
