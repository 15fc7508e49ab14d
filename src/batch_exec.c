/*
 * batch_exec.c - the inputs and workflow of one asset of a batch (see
 * batch_exec.h).
 */
#include <stdio.h>
#include <string.h>

#include "kiln/batch_exec.h"
#include "kiln/json_spec.h"
#include "kiln/template_inputs.h"
#include "kiln/template_validate.h"

/* The only input of type, or NULL. */
static const char *only_input_of(const json_t *schema, const char *type)
{
	const char *key, *found = NULL;
	json_t *spec;

	json_object_foreach((json_t *)schema, key, spec) {
		const char *t = json_string_value(json_object_get(spec,
								  "type"));

		if (t == NULL || strcmp(t, type) != 0)
			continue;
		if (found != NULL)
			return NULL;
		found = key;
	}
	return found;
}

const char *kiln_batch_default_asset_input(const json_t *schema)
{
	const char *name = only_input_of(schema, "asset");

	return name ? name : only_input_of(schema, "url");
}

json_t *kiln_batch_asset_inputs(const json_t *schema,
				const char *asset_input, const json_t *shared,
				const json_t *asset)
{
	const json_t *spec = json_object_get(schema, asset_input);
	const char *type = json_string_value(json_object_get(spec, "type"));
	json_t *inputs = json_is_object(shared) ? json_deep_copy(shared)
						: json_object();
	json_t *url = json_object_get(asset, "url");
	json_t *asset_id = json_object_get(asset, "asset_id");

	json_object_update(inputs, json_object_get(asset, "inputs"));
	if (type != NULL && strcmp(type, "asset") == 0) {
		json_t *v = json_pack("{s:O}", "url", url);

		if (json_is_string(asset_id))
			json_object_set(v, "asset_id", asset_id);
		json_object_set_new(inputs, asset_input, v);
	} else {
		json_object_set(inputs, asset_input, url);
	}
	return inputs;
}

/* err from the first item of detail: its loc (after "body") and msg. */
static void first_fault(const json_t *detail, struct kiln_err *err)
{
	const json_t *d = json_array_get(detail, 0);
	const json_t *loc = json_object_get(d, "loc");
	char field[256] = "";
	size_t i, n = 0;

	for (i = 1; i < json_array_size(loc) && n < sizeof(field); i++) {
		const char *part = json_string_value(json_array_get(loc, i));
		int w = part ? snprintf(field + n, sizeof(field) - n, "%s%s",
					n ? "." : "", part)
			     : 0;

		n += w > 0 ? (size_t)w : 0;
	}
	kiln_err_set(err, KILN_EINVAL, field, "%s: %s", field,
		     json_string_value(json_object_get(d, "msg")));
}

json_t *kiln_batch_workflow_of(const struct kiln_config *cfg,
			       const json_t *definition, const json_t *batch,
			       const json_t *resolved, struct kiln_err *err)
{
	static const char *const origin_keys[] = {
		"origin_instance", "origin_zone", "origin_reference", "name",
	};
	json_t *detail = json_array(), *run, *wf;
	size_t i;

	run = json_pack("{s:n, s:O?}", "webhook_url", "origin_tenant_id",
			json_object_get(batch, "tenant_id"));
	for (i = 0; i < sizeof(origin_keys) / sizeof(origin_keys[0]); i++) {
		json_t *v = json_object_get(batch, origin_keys[i]);

		if (json_is_string(v))
			json_object_set(run, origin_keys[i], v);
	}
	if (json_object_get(run, "origin_instance") == NULL)
		json_object_set_new(run, "origin_instance",
				    json_string(KILN_BATCH_ORIGIN_INSTANCE));
	wf = kiln_template_run_workflow(definition, resolved, run, cfg, detail);
	if (wf != NULL) {
		json_object_set(wf, "template_id",
				json_object_get(batch, "template_id"));
		json_object_set(wf, "template_version",
				json_object_get(batch, "template_version"));
		json_object_set(wf, "batch_id", json_object_get(batch, "id"));
	} else {
		first_fault(detail, err);
	}
	json_decref(run);
	json_decref(detail);
	return wf;
}

json_t *kiln_batch_workflow(const struct kiln_config *cfg,
			    const json_t *definition, const json_t *batch,
			    const json_t *asset, struct kiln_err *err)
{
	const json_t *schema = json_object_get(definition, "inputs");
	json_t *detail = json_array(), *loc = json_pack("[ss]", "body",
							"inputs");
	json_t *merged, *resolved, *wf = NULL;

	merged = kiln_batch_asset_inputs(
		schema,
		json_string_value(json_object_get(batch, "asset_input")),
		json_object_get(batch, "inputs"), asset);
	resolved = kiln_inputs_resolve(detail, loc, schema, merged);
	if (resolved != NULL)
		wf = kiln_batch_workflow_of(cfg, definition, batch, resolved,
					    err);
	else
		first_fault(detail, err);
	json_decref(resolved);
	json_decref(merged);
	json_decref(loc);
	json_decref(detail);
	return wf;
}
