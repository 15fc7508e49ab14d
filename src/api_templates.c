/*
 * api_templates.c - /api/v1/templates: published workflows (create, list,
 * get any version, publish a new version, archive) and previews that show
 * what each step would receive for given inputs, calling no provider.
 */
#include <string.h>

#include "kiln/http.h"
#include "kiln/json_spec.h"
#include "kiln/mapping.h"
#include "kiln/template_inputs.h"
#include "kiln/template_validate.h"
#include "kiln/workflow_validate.h"

/* The JSON body, or {} when a body is optional and absent. */
static json_t *body_or_reply(struct kiln_req *req, struct kiln_resp *resp,
			     int optional)
{
	if (optional && (req->body == NULL || req->body_len == 0))
		return json_object();
	return kiln_reply_body(req, resp);
}

static int id_or_reply(struct kiln_req *req, struct kiln_resp *resp)
{
	return kiln_reply_uuid(req, resp, "template_id");
}

/* Moves errors found in a nested object under its key: ["body", ...]
 * becomes ["body", key, ...]. */
static void nest_locs(json_t *detail, const char *key)
{
	size_t i;
	json_t *d;

	json_array_foreach(detail, i, d)
		json_array_insert_new(json_object_get(d, "loc"), 1,
				      json_string(key));
}

/* A validated definition from the body, or NULL with a 422 in resp. */
static json_t *definition_or_reply(struct kiln_req *req, const json_t *body,
				   const char *nested, struct kiln_resp *resp)
{
	json_t *detail = json_array();
	json_t *def = kiln_template_validate(body, req->app->cfg, detail);

	kiln_api_check_webhook_target(req, body, detail);
	if (json_array_size(detail) == 0) {
		json_decref(detail);
		return def;
	}
	json_decref(def);
	if (nested != NULL)
		nest_locs(detail, nested);
	kiln_reply_validation(resp, detail);
	return NULL;
}

void kiln_api_template_create(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	json_t *body, *def = NULL, *created = NULL;
	struct kiln_store *st;
	char id[KILN_UUID_LEN];

	body = body_or_reply(req, resp, 0);
	if (body == NULL)
		return;
	def = definition_or_reply(req, body, NULL, resp);
	st = def ? kiln_reply_store(resp) : NULL;
	if (st != NULL) {
		kiln_uuid_new(id);
		if (kiln_store_insert_template(
			    st, id,
			    req->principal.has_tenant ? req->principal.tenant
						      : NULL,
			    def, &created, &err) != KILN_OK)
			kiln_reply_error(resp, &err);
		else
			kiln_reply_json(resp, MHD_HTTP_CREATED, created);
	}
	json_decref(def);
	json_decref(body);
}

void kiln_api_template_list(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_tpl_filter f = {0};
	json_t *detail = json_array(), *list = NULL;
	struct kiln_err err = {0};
	struct kiln_store *st;

	f.status = kiln_req_query(req, "status");
	f.name = kiln_req_query(req, "name");
	if (f.status && strcmp(f.status, "ACTIVE") != 0 &&
	    strcmp(f.status, "ARCHIVED") != 0) {
		json_t *loc = json_pack("[ss]", "query", "status");

		kiln_detail_add(detail, loc, "enum",
				"Input should be 'ACTIVE' or 'ARCHIVED'");
		json_decref(loc);
	}
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
	if (kiln_store_list_templates(st, &f, &req->scope, &list, &err) !=
	    KILN_OK)
		kiln_reply_error(resp, &err);
	else
		kiln_reply_json(resp, MHD_HTTP_OK, list);
}

/* The template of the path at the query's version (default latest), or
 * NULL with the error in resp. */
static json_t *template_or_reply(struct kiln_req *req,
				 struct kiln_resp *resp)
{
	json_t *detail = json_array(), *tpl = NULL;
	struct kiln_err err = {0};
	struct kiln_store *st;
	long long version = 0;

	if (id_or_reply(req, resp) != 0) {
		json_decref(detail);
		return NULL;
	}
	kiln_query_int(detail, "version", kiln_req_query(req, "version"), 0,
		       1, INT32_MAX, &version);
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		return NULL;
	}
	json_decref(detail);
	st = kiln_reply_store(resp);
	if (st != NULL && kiln_store_get_template(st, req->path_id, version,
						  &req->scope, &tpl,
						  &err) != KILN_OK)
		kiln_reply_error(resp, &err);
	return tpl;
}

void kiln_api_template_get(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *tpl = template_or_reply(req, resp);

	if (tpl != NULL)
		kiln_reply_json(resp, MHD_HTTP_OK, tpl);
}

void kiln_api_template_put(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	json_t *body, *def = NULL, *published = NULL;
	struct kiln_store *st;

	if (id_or_reply(req, resp) != 0)
		return;
	body = body_or_reply(req, resp, 0);
	if (body == NULL)
		return;
	def = definition_or_reply(req, body, NULL, resp);
	st = def ? kiln_reply_store(resp) : NULL;
	if (st != NULL) {
		if (kiln_store_publish_template(st, req->path_id, &req->scope,
						def, &published,
						&err) != KILN_OK)
			kiln_reply_error(resp, &err);
		else
			kiln_reply_json(resp, MHD_HTTP_OK, published);
	}
	json_decref(def);
	json_decref(body);
}

void kiln_api_template_archive(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *tpl = NULL;

	if (id_or_reply(req, resp) != 0)
		return;
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_archive_template(st, req->path_id, &req->scope, &tpl,
					&err) != KILN_OK)
		kiln_reply_error(resp, &err);
	else
		kiln_reply_json(resp, MHD_HTTP_OK, tpl);
}

/* ---- preview ------------------------------------------------------------ */

/* What step st would send its provider now: its config with the mappings
 * from "$inputs" applied and its provider parameters merged; mappings
 * from earlier steps are listed as pending (they need those results). */
static json_t *step_preview(const json_t *st, const json_t *inputs,
			    size_t *bad_mapping, struct kiln_err *err)
{
	json_t *request = json_deep_copy(json_object_get(st, "config"));
	json_t *pending = json_array(), *m, *v;
	const json_t *params = json_object_get(st, "provider_config");
	const char *key;
	size_t i;

	json_array_foreach(json_object_get(st, "input_mappings"), i, m) {
		const char *from = json_string_value(
			json_object_get(m, "from_step"));

		if (from == NULL || strcmp(from, KILN_INPUTS_STEP) != 0) {
			json_array_append(pending, m);
			continue;
		}
		if (kiln_mapping_apply(request, m, inputs, err) != KILN_OK) {
			*bad_mapping = i;
			json_decref(request);
			json_decref(pending);
			return NULL;
		}
	}
	json_object_foreach((json_t *)params, key, v)
		if (strcmp(key, "provider_type") != 0)
			json_object_set(request, key, v);
	return json_pack("{s:O, s:O, s:O, s:O, s:o, s:o}", "step_id",
			 json_object_get(st, "id"), "task_type",
			 json_object_get(st, "task_type"), "provider",
			 json_object_get(st, "provider"), "depends_on",
			 json_object_get(st, "depends_on"), "request", request,
			 "pending_mappings", pending);
}

/* Answers the preview of def (a validated definition) for the body's
 * "inputs": 200 with every step's request, or 422 naming what is wrong. */
static void reply_preview(struct kiln_req *req, const json_t *tpl_info,
			  const json_t *def, const json_t *body,
			  struct kiln_resp *resp)
{
	json_t *detail = json_array(), *loc = json_pack("[ss]", "body",
							"inputs");
	json_t *inputs, *wf_body = NULL, *wf = NULL, *steps = NULL, *st;
	json_t *later = json_array();
	struct kiln_err err = {0};
	size_t i;

	inputs = kiln_inputs_resolve(detail, loc,
				     json_object_get(def, "inputs"),
				     json_object_get(body, "inputs"));
	if (inputs != NULL)
		wf_body = kiln_template_instantiate(def, inputs, &err);
	if (inputs != NULL && wf_body == NULL)
		kiln_detail_add(detail, loc, "value_error", "Value error, %s",
				err.msg);
	if (wf_body != NULL) {
		json_object_set_new(wf_body, "origin_instance",
				    json_string("preview"));
		wf = kiln_workflow_validate_with_inputs(wf_body,
							req->app->cfg, later);
	}
	steps = json_array();
	json_array_foreach(json_object_get(wf, "steps"), i, st) {
		size_t k = 0;
		json_t *p = step_preview(st, inputs, &k, &err);

		if (p == NULL) {
			json_t *at = json_pack("[ssIsIs]", "body", "steps",
					       (json_int_t)i, "input_mappings",
					       (json_int_t)k, "from_field");

			kiln_detail_add(later, at, "value_error",
					"Value error, %s", err.msg);
			json_decref(at);
			continue;
		}
		json_array_append_new(steps, p);
	}
	/* Faults of the steps are where the definition is: under
	 * "definition" for a draft. */
	if (tpl_info == NULL)
		nest_locs(later, "definition");
	json_array_extend(detail, later);
	json_decref(later);
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		detail = NULL;
	} else {
		kiln_reply_json(
			resp, MHD_HTTP_OK,
			json_pack("{s:O?, s:O?, s:b, s:O, s:O, s:O, s:O}",
				  "template_id", json_object_get(tpl_info, "id"),
				  "version",
				  json_object_get(tpl_info, "version"),
				  "valid", 1, "inputs", inputs, "final_step_id",
				  json_object_get(wf, "final_step_id"),
				  "config", json_object_get(wf, "config"),
				  "steps", steps));
	}
	json_decref(steps);
	json_decref(wf);
	json_decref(wf_body);
	json_decref(inputs);
	json_decref(loc);
	json_decref(detail);
}

void kiln_api_template_preview(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *tpl, *body;

	tpl = template_or_reply(req, resp);
	if (tpl == NULL)
		return;
	body = body_or_reply(req, resp, 1);
	if (body != NULL) {
		if (!json_is_object(body))
			kiln_reply_validation(
				resp, json_pack("[{sss[s]ss}]", "type",
						"model_attributes_type", "loc",
						"body", "msg",
						"Input should be a valid"
						" dictionary"));
		else
			reply_preview(req, tpl, tpl, body, resp);
	}
	json_decref(body);
	json_decref(tpl);
}

/* POST /api/v1/templates/preview: {"definition": {...}, "inputs": {...}}
 * checks a definition before it is published. */
void kiln_api_template_preview_draft(struct kiln_req *req,
				     struct kiln_resp *resp)
{
	json_t *body = body_or_reply(req, resp, 0), *def, *draft;

	if (body == NULL)
		return;
	draft = json_object_get(body, "definition");
	if (!json_is_object(draft)) {
		kiln_reply_validation(
			resp, json_pack("[{sss[ss]ss}]", "type", "missing",
					"loc", "body", "definition", "msg",
					"Field required (an object)"));
		json_decref(body);
		return;
	}
	def = definition_or_reply(req, draft, "definition", resp);
	if (def != NULL)
		reply_preview(req, NULL, def, body, resp);
	json_decref(def);
	json_decref(body);
}
