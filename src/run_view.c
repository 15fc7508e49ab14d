/*
 * run_view.c - runs as the run API shows them (see run_view.h).
 *
 * Run statuses are lower case, as in the workflow-run reference
 * ("status": "completed"); outputs carry "type" and "url" first, then
 * what kiln_result_outputs knows of the file (format, size, sha256...).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kiln/run_view.h"
#include "kiln/webhook_event.h"

static int is_status(const json_t *o, const char *status)
{
	const char *s = json_string_value(json_object_get(o, "status"));

	return s != NULL && strcmp(s, status) == 0;
}

int kiln_run_ended(const json_t *wf)
{
	return is_status(wf, "COMPLETED") || is_status(wf, "FAILED") ||
	       is_status(wf, "CANCELLED");
}

static const json_t *final_step(const json_t *wf)
{
	const char *final = json_string_value(json_object_get(wf,
							      "final_step_id"));
	size_t i;
	json_t *s;

	json_array_foreach(json_object_get(wf, "steps"), i, s) {
		const char *id = json_string_value(json_object_get(s,
								   "step_id"));

		if (final != NULL && id != NULL && strcmp(id, final) == 0)
			return s;
	}
	return NULL;
}

json_t *kiln_run_outputs(const json_t *wf)
{
	const json_t *result = json_object_get(final_step(wf), "result");
	json_t *found, *out = json_array(), *o;
	size_t i;

	if (!json_is_object(result))
		return out;
	found = kiln_result_outputs(result);
	json_array_foreach(found, i, o) {
		json_t *item = json_pack("{s:O, s:O}", "type",
					 json_object_get(o, "asset_type"),
					 "url",
					 json_object_get(o, "asset_url"));
		const char *key;
		json_t *v;

		json_object_foreach(o, key, v)
			if (strcmp(key, "asset_type") != 0 &&
			    strcmp(key, "asset_url") != 0 && !json_is_null(v))
				json_object_set(item, key, v);
		json_array_append_new(out, item);
	}
	json_decref(found);
	return out;
}

json_t *kiln_run_error(const json_t *wf)
{
	size_t i;
	json_t *s;

	if (is_status(wf, "CANCELLED"))
		return json_pack("{s:s, s:s, s:n, s:n}", "code", "CANCELLED",
				 "message", "the run was cancelled", "step_id",
				 "field");
	if (!is_status(wf, "FAILED"))
		return NULL;
	/* The step that failed says why: its last attempt's outcome. */
	json_array_foreach(json_object_get(wf, "steps"), i, s) {
		const json_t *attempts = json_object_get(s, "attempts");
		const json_t *last = json_array_get(
			attempts, json_array_size(attempts) - 1);
		const char *msg;

		if (!is_status(s, "FAILED"))
			continue;
		msg = json_string_value(json_object_get(s, "error_message"));
		return json_pack(
			"{s:s, s:s, s:O, s:O?}", "code",
			kiln_event_error_code(json_string_value(
				json_object_get(last, "outcome"))),
			"message", msg ? msg : "failed", "step_id",
			json_object_get(s, "step_id"), "field",
			json_object_get(last, "field"));
	}
	return json_pack("{s:s, s:O?, s:n, s:n}", "code", "STEP_FAILED",
			 "message", json_object_get(wf, "error_message"),
			 "step_id", "field");
}

static json_t *lower(const char *s)
{
	char buf[32];
	size_t i;

	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < sizeof(buf); i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[i] = '\0';
	return json_string(buf);
}

json_t *kiln_run_view(const json_t *wf)
{
	const char *id = json_string_value(json_object_get(wf, "id"));
	char status_url[96], cancel_url[112], wf_url[96];
	json_t *v, *err;

	snprintf(status_url, sizeof(status_url), "/api/v1/runs/%s", id);
	snprintf(cancel_url, sizeof(cancel_url), "/api/v1/runs/%s/cancel", id);
	snprintf(wf_url, sizeof(wf_url), "/api/v1/workflows/%s", id);
	v = json_pack("{s:s, s:o, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?,"
		      " s:s, s:s, s:s}",
		      "runId", id, "status",
		      lower(json_string_value(json_object_get(wf, "status"))),
		      "template_id", json_object_get(wf, "template_id"),
		      "template_version",
		      json_object_get(wf, "template_version"), "inputs",
		      json_object_get(wf, "inputs"), "origin_reference",
		      json_object_get(wf, "origin_reference"), "created_at",
		      json_object_get(wf, "created_at"), "started_at",
		      json_object_get(wf, "started_at"), "completed_at",
		      json_object_get(wf, "completed_at"), "statusUrl",
		      status_url, "cancelUrl", cancel_url, "workflowUrl",
		      wf_url);
	if (is_status(wf, "COMPLETED"))
		json_object_set_new(v, "outputs", kiln_run_outputs(wf));
	err = kiln_run_error(wf);
	if (err != NULL)
		json_object_set_new(v, "error", err);
	return v;
}
