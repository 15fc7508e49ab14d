/*
 * api_batches.c - /api/v1/batches: one published workflow over many
 * assets.  Create (202 at once; every asset checked first), list, status,
 * cancel, retry, executions.
 *
 * Executions are rows; the scheduler (batch_sched.c) starts them as room
 * frees up.  The handlers only validate, write and render.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/batch_exec.h"
#include "kiln/http.h"
#include "kiln/idempotency.h"
#include "kiln/json_spec.h"
#include "kiln/template_inputs.h"

#define ASSETS_MAX 100000
#define TRIM_ABOVE_BYTES (1024 * 1024)
/* Errors reported for one request, at most (a 100,000-asset batch with
 * one bad shared input must not answer 100,000 errors). */
#define DETAIL_MAX 100

static const struct kiln_field batch_fields[] = {
	{"template_id", KILN_F_STRING, KILN_F_REQUIRED, 36, 36},
	{"inputs", KILN_F_OBJECT, 0, 0, KILN_F_NO_LIMIT},
	{"assets", KILN_F_ARRAY, KILN_F_REQUIRED, 1, KILN_F_NO_LIMIT},
	{"asset_input", KILN_F_STRING, KILN_F_NULLABLE, 1, 64},
	{"concurrency_limit", KILN_F_INT, 0, 1, 100},
	{"priority", KILN_F_STRING, 0, 1, 16},
	{"continue_on_error", KILN_F_BOOL, 0, 0, KILN_F_NO_LIMIT},
	{"webhook_url", KILN_F_STRING, KILN_F_NULLABLE, 0, 512},
	{"execution_events", KILN_F_BOOL, 0, 0, KILN_F_NO_LIMIT},
	{"name", KILN_F_STRING, KILN_F_NULLABLE, 1, 255},
	{"origin_instance", KILN_F_STRING, KILN_F_NULLABLE, 1, 100},
	{"origin_zone", KILN_F_STRING, KILN_F_NULLABLE, 0, 50},
	{"origin_tenant_id", KILN_F_STRING, KILN_F_NULLABLE, 0, 100},
	{"origin_reference", KILN_F_STRING, KILN_F_NULLABLE, 0, 512},
};

static const struct kiln_field asset_fields[] = {
	{"asset_id", KILN_F_STRING, KILN_F_NULLABLE, 1, 256},
	{"url", KILN_F_STRING, KILN_F_REQUIRED, 1, 2048},
	{"inputs", KILN_F_OBJECT, KILN_F_NULLABLE, 0, KILN_F_NO_LIMIT},
};

static const char *const PRIORITIES[] = {"HIGH", "NORMAL", "LOW"};

static void add_error(json_t *detail, const json_t *loc, const char *type,
		      const char *msg)
{
	if (json_array_size(detail) < DETAIL_MAX)
		kiln_detail_add(detail, loc, type, "%s", msg);
}

/* 1 if detail has an item at loc already. */
static int has_loc(const json_t *detail, const json_t *loc)
{
	size_t i;
	json_t *d;

	json_array_foreach(detail, i, d)
		if (json_equal(json_object_get(d, "loc"), loc))
			return 1;
	return 0;
}

/* Where an error found while resolving asset i's merged inputs belongs:
 * the asset's url (its input), its overrides, or the shared inputs. */
static void place_error(json_t *d, size_t i, const char *asset_input,
			const json_t *asset)
{
	json_t *loc = json_object_get(d, "loc"), *at;
	const char *name = json_string_value(json_array_get(loc, 2));
	size_t k;

	if (name == NULL)
		return;
	if (strcmp(name, asset_input) == 0) {
		at = json_pack("[ssIs]", "body", "assets", (json_int_t)i,
			       "url");
	} else if (json_object_get(json_object_get(asset, "inputs"), name)) {
		at = json_pack("[ssIs]", "body", "assets", (json_int_t)i,
			       "inputs");
		for (k = 2; k < json_array_size(loc); k++)
			json_array_append(at, json_array_get(loc, k));
	} else {
		return;
	}
	json_object_set_new(d, "loc", at);
}

/* Checks every asset: its inputs against the template's schema (errors
 * placed at the asset), then the workflow it would run, built as the
 * scheduler will build it, so nothing accepted fails later for its
 * inputs. */
static void check_assets(const struct kiln_config *cfg, const json_t *tpl,
			 const json_t *batch, json_t *detail)
{
	const json_t *schema = json_object_get(tpl, "inputs");
	const char *asset_input = json_string_value(
		json_object_get(batch, "asset_input"));
	json_t *loc = json_pack("[ss]", "body", "inputs");
	const json_t *assets = json_object_get(batch, "assets");
	size_t i;

	for (i = 0; i < json_array_size(assets) &&
		    json_array_size(detail) < DETAIL_MAX;
	     i++) {
		const json_t *asset = json_array_get(assets, i);
		json_t *merged, *resolved, *mine = json_array(), *d, *wf;
		struct kiln_err err = {0};
		size_t j;

		merged = kiln_batch_asset_inputs(
			schema, asset_input, json_object_get(batch, "inputs"),
			asset);
		resolved = kiln_inputs_resolve(mine, loc, schema, merged);
		json_array_foreach(mine, j, d) {
			place_error(d, i, asset_input, asset);
			if (!has_loc(detail, json_object_get(d, "loc")) &&
			    json_array_size(detail) < DETAIL_MAX)
				json_array_append(detail, d);
		}
		wf = resolved ? kiln_batch_workflow_of(cfg, tpl, batch,
						       resolved, &err)
			      : NULL;
		if (resolved != NULL && wf == NULL) {
			json_t *at = json_pack("[ssIs]", "body", "assets",
					       (json_int_t)i, "inputs");

			add_error(detail, at, "value_error", err.msg);
			json_decref(at);
		}
		json_decref(wf);
		json_decref(resolved);
		json_decref(merged);
		json_decref(mine);
	}
	json_decref(loc);
}

/* At most DETAIL_MAX errors are answered. */
static void cap_detail(json_t *detail)
{
	while (json_array_size(detail) > DETAIL_MAX)
		json_array_remove(detail, json_array_size(detail) - 1);
}

/* Structure of the body and of each asset. */
static void check_body(json_t *body, json_t *detail)
{
	json_t *loc = json_pack("[s]", "body"), *assets, *a, *at;
	const char *priority;
	size_t i;

	kiln_spec_check(detail, loc, body, batch_fields,
			sizeof(batch_fields) / sizeof(batch_fields[0]));
	json_decref(loc);
	if (!json_is_object(body))
		return;
	priority = json_string_value(json_object_get(body, "priority"));
	if (priority != NULL && strcmp(priority, "HIGH") != 0 &&
	    strcmp(priority, "NORMAL") != 0 && strcmp(priority, "LOW") != 0) {
		at = json_pack("[ss]", "body", "priority");
		add_error(detail, at, "enum",
			  "Input should be 'HIGH', 'NORMAL' or 'LOW'");
		json_decref(at);
	}
	assets = json_object_get(body, "assets");
	if (json_array_size(assets) > ASSETS_MAX) {
		at = json_pack("[ss]", "body", "assets");
		add_error(detail, at, "too_long",
			  "List should have at most 100000 items");
		json_decref(at);
		return;
	}
	json_array_foreach(assets, i, a) {
		if (json_array_size(detail) >= DETAIL_MAX)
			break;
		at = json_pack("[ssI]", "body", "assets", (json_int_t)i);
		kiln_spec_check(detail, at, a, asset_fields,
				sizeof(asset_fields) / sizeof(asset_fields[0]));
		json_decref(at);
	}
}

/* The template the batch runs (its latest version), if it may run. */
static json_t *batch_template(struct kiln_req *req, struct kiln_store *st,
			      const char *id, struct kiln_resp *resp)
{
	json_t *loc;

	if (kiln_uuid_is_valid(id))
		return kiln_api_runnable_template(req, st, id, resp);
	loc = json_pack("[ss]", "body", "template_id");
	kiln_reply_invalid_input(resp,
				 json_pack("[{s:s, s:O, s:s}]", "type",
					   "uuid_parsing", "loc", loc, "msg",
					   "Input should be a valid UUID"));
	json_decref(loc);
	return NULL;
}

/* The batch to store: the body with defaults, the template's version,
 * the asset input, and an execution id per asset.  NULL with a 422 in
 * resp when an asset or input is wrong. */
static json_t *batch_record(struct kiln_req *req, const json_t *tpl,
			    json_t *body, struct kiln_resp *resp)
{
	const json_t *schema = json_object_get(tpl, "inputs");
	const char *asset_input = json_string_value(
		json_object_get(body, "asset_input"));
	const char *priority = json_string_value(
		json_object_get(body, "priority"));
	json_t *detail = json_array(), *b, *assets, *a, *loc;
	size_t i;
	int p;

	if (asset_input == NULL)
		asset_input = kiln_batch_default_asset_input(schema);
	if (asset_input == NULL ||
	    json_object_get(schema, asset_input) == NULL) {
		loc = json_pack("[ss]", "body", "asset_input");
		kiln_detail_add(
			detail, loc, "value_error",
			asset_input == NULL
				? "Value error, the template has no single"
				  " input of type asset or url: name the input"
				  " the assets fill"
				: "Value error, the template has no input"
				  " named '%s'",
			asset_input);
		json_decref(loc);
		kiln_reply_invalid_input(resp, detail);
		return NULL;
	}
	for (p = 0; priority != NULL && p < 2 &&
		    strcmp(priority, PRIORITIES[p]) != 0;
	     p++)
		;
	if (priority == NULL)
		p = 1;
	b = json_deep_copy(body);
	json_object_set_new(b, "asset_input", json_string(asset_input));
	json_object_set_new(b, "priority", json_integer(p));
	json_object_set(b, "template_version",
			json_object_get(tpl, "version"));
	json_object_set(b, "tenant_id",
			json_object_get(b, "origin_tenant_id"));
	if (json_object_get(b, "concurrency_limit") == NULL)
		json_object_set_new(b, "concurrency_limit", json_integer(10));
	if (json_object_get(b, "continue_on_error") == NULL)
		json_object_set_new(b, "continue_on_error", json_true());
	if (!json_is_object(json_object_get(b, "inputs")))
		json_object_set_new(b, "inputs", json_object());
	check_assets(req->app->cfg, tpl, b, detail);
	kiln_api_check_webhook_target(req, b, detail);
	cap_detail(detail);
	if (json_array_size(detail) > 0) {
		json_decref(b);
		kiln_reply_invalid_input(resp, detail);
		return NULL;
	}
	json_decref(detail);
	assets = json_object_get(b, "assets");
	json_array_foreach(assets, i, a) {
		char id[KILN_UUID_LEN];

		kiln_uuid_new(id);
		json_object_set_new(a, "execution_id", json_string(id));
	}
	return b;
}

void kiln_api_batch_create(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array(), *body = NULL, *tpl = NULL, *b = NULL;
	json_t *created = NULL;
	struct kiln_idem idem;
	struct kiln_err err = {0};
	char hash[KILN_IDEM_HASH_LEN];
	char id[KILN_UUID_LEN];
	struct kiln_store *st;
	char *existing = NULL;

	body = kiln_reply_body(req, resp);
	if (body == NULL)
		goto out;
	kiln_idem_key_check(detail, kiln_req_header(req, "Idempotency-Key"));
	check_body(body, detail);
	cap_detail(detail);
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
		if (kiln_store_get_batch(st, existing, NULL, &created, &err) !=
		    KILN_OK) {
			kiln_reply_error(resp, &err);
			goto out;
		}
		goto answer;
	}
	tpl = batch_template(
		req, st,
		json_string_value(json_object_get(body, "template_id")), resp);
	if (tpl == NULL)
		goto out;
	kiln_api_default_tenant(req, body, tpl);
	b = batch_record(req, tpl, body, resp);
	if (b == NULL)
		goto out;
	kiln_uuid_new(id);
	json_object_set_new(b, "id", json_string(id));
	if (kiln_store_insert_batch(st, b, &idem, &created, &existing,
				    &err) != KILN_OK) {
		kiln_reply_error(resp, &err);
		goto out;
	}
answer:
	resp->is_replay = existing != NULL;
	kiln_reply_json(resp, MHD_HTTP_ACCEPTED, created);
out:
	free(existing);
	json_decref(detail);
	json_decref(body);
	json_decref(tpl);
	json_decref(b);
	/* A big batch's JSON is many small allocations, all freed by now:
	 * give the memory back instead of keeping it as the process's RSS
	 * (pending assets live in the store, not here). */
	if (req->body_len > TRIM_ABOVE_BYTES)
		malloc_trim(0);
}

static const char *const BATCH_STATUSES[] = {
	"PENDING", "RUNNING", "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED",
	"CANCELLED",
};
static const char *const EXEC_STATUSES[] = {
	"PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED",
};

/* Adds an "enum" error at ["query", name] unless value (NULL: absent) is
 * one of the n allowed. */
static void check_enum(json_t *detail, const char *name, const char *value,
		       const char *const *allowed, size_t n)
{
	char msg[256] = "Input should be one of:";
	json_t *loc;
	size_t i, len;

	if (value == NULL)
		return;
	for (i = 0; i < n; i++)
		if (strcmp(value, allowed[i]) == 0)
			return;
	for (i = 0; i < n; i++) {
		len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len, "%s '%s'",
			 i ? "," : "", allowed[i]);
	}
	loc = json_pack("[ss]", "query", name);
	kiln_detail_add(detail, loc, "enum", "%s", msg);
	json_decref(loc);
}

/* An RFC 3339 time query argument in ms (0: absent). */
static int64_t query_time(json_t *detail, struct kiln_req *req,
			  const char *name)
{
	const char *v = kiln_req_query(req, name);
	int64_t ms;
	json_t *loc;

	if (v == NULL)
		return 0;
	ms = kiln_rfc3339_parse(v);
	if (ms >= 0)
		return ms;
	loc = json_pack("[ss]", "query", name);
	kiln_detail_add(detail, loc, "datetime_from_date_parsing",
			"Input should be a valid datetime (RFC 3339, e.g."
			" 2026-11-23T10:00:00Z)");
	json_decref(loc);
	return 0;
}

void kiln_api_batch_list(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_batch_filter f = {0};
	json_t *detail = json_array(), *list = NULL, *loc;
	struct kiln_err err = {0};
	struct kiln_store *st;

	f.status = kiln_req_query(req, "status");
	f.template_id = kiln_req_query(req, "template_id");
	f.tenant_id = kiln_req_query(req, "tenant_id");
	check_enum(detail, "status", f.status, BATCH_STATUSES,
		   sizeof(BATCH_STATUSES) / sizeof(BATCH_STATUSES[0]));
	if (f.template_id != NULL && !kiln_uuid_is_valid(f.template_id)) {
		loc = json_pack("[ss]", "query", "template_id");
		kiln_detail_add(detail, loc, "uuid_parsing",
				"Input should be a valid UUID");
		json_decref(loc);
	}
	f.created_after = query_time(detail, req, "created_after");
	f.created_before = query_time(detail, req, "created_before");
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
	if (kiln_store_list_batches(st, &f, &req->scope, &list, &err) !=
	    KILN_OK)
		kiln_reply_error(resp, &err);
	else
		kiln_reply_json(resp, MHD_HTTP_OK, list);
}

void kiln_api_batch_get(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *b = NULL;

	if (kiln_reply_uuid(req, resp, "batch_id") != 0)
		return;
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_get_batch(st, req->path_id, &req->scope, &b, &err) !=
	    KILN_OK)
		kiln_reply_error(resp, &err);
	else
		kiln_reply_json(resp, MHD_HTTP_OK, b);
}

void kiln_api_batch_cancel(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *out = NULL;

	if (kiln_reply_uuid(req, resp, "batch_id") != 0)
		return;
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_cancel_batch(st, req->path_id, &req->scope, &out,
				    &err) != KILN_OK)
		kiln_reply_error(resp, &err);
	else
		kiln_reply_json(resp, MHD_HTTP_OK, out);
}

static const struct kiln_field retry_fields[] = {
	{"execution_ids", KILN_F_STRING_ARRAY, KILN_F_NULLABLE, 1, 10000},
};

void kiln_api_batch_retry(struct kiln_req *req, struct kiln_resp *resp)
{
	json_t *detail = json_array(), *body = NULL, *ids, *v, *out = NULL;
	struct kiln_err err = {0};
	struct kiln_store *st;
	size_t i;

	if (kiln_reply_uuid(req, resp, "batch_id") != 0)
		goto out;
	if (req->body == NULL || req->body_len == 0)
		body = json_object();
	else if ((body = kiln_reply_body(req, resp)) == NULL)
		goto out;
	{
		json_t *loc = json_pack("[s]", "body");

		kiln_spec_check(detail, loc, body, retry_fields, 1);
		json_decref(loc);
	}
	ids = json_object_get(body, "execution_ids");
	json_array_foreach(ids, i, v) {
		if (json_is_string(v) && !kiln_uuid_is_valid(json_string_value(v))) {
			json_t *loc = json_pack("[ssI]", "body",
						"execution_ids", (json_int_t)i);

			kiln_detail_add(detail, loc, "uuid_parsing",
					"Input should be a valid UUID");
			json_decref(loc);
		}
	}
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		detail = NULL;
		goto out;
	}
	st = kiln_reply_store(resp);
	if (st == NULL)
		goto out;
	if (kiln_store_retry_batch(st, req->path_id, &req->scope,
				   json_is_array(ids) ? ids : NULL, &out,
				   &err) != KILN_OK)
		kiln_reply_error(resp, &err);
	else
		kiln_reply_json(resp, MHD_HTTP_OK, out);
out:
	json_decref(detail);
	json_decref(body);
}

void kiln_api_batch_executions(struct kiln_req *req, struct kiln_resp *resp)
{
	struct kiln_exec_filter f = {0};
	json_t *detail = json_array(), *list = NULL;
	struct kiln_err err = {0};
	struct kiln_store *st;

	if (kiln_reply_uuid(req, resp, "batch_id") != 0) {
		json_decref(detail);
		return;
	}
	f.status = kiln_req_query(req, "status");
	f.asset_id = kiln_req_query(req, "asset_id");
	check_enum(detail, "status", f.status, EXEC_STATUSES,
		   sizeof(EXEC_STATUSES) / sizeof(EXEC_STATUSES[0]));
	kiln_query_page(detail, kiln_req_query(req, "limit"),
			kiln_req_query(req, "offset"), 500, &f.limit,
			&f.offset);
	if (kiln_req_query(req, "limit") == NULL)
		f.limit = 100;
	if (json_array_size(detail) > 0) {
		kiln_reply_validation(resp, detail);
		return;
	}
	json_decref(detail);
	st = kiln_reply_store(resp);
	if (st == NULL)
		return;
	if (kiln_store_list_executions(st, req->path_id, &f, &req->scope,
				       &list, &err) != KILN_OK)
		kiln_reply_error(resp, &err);
	else
		kiln_reply_json(resp, MHD_HTTP_OK, list);
}
