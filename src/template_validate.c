/*
 * template_validate.c - what makes a template definition acceptable, and
 * turning one into a workflow for given inputs.
 *
 * The steps are checked by the workflow rules themselves
 * (kiln_workflow_validate_with_inputs), so a template that validates
 * makes workflows that validate; what is added here is the input schema
 * and that every input the steps use is declared.
 */
#include <stdio.h>
#include <string.h>

#include "kiln/json_spec.h"
#include "kiln/mapping.h"
#include "kiln/template_inputs.h"
#include "kiln/template_validate.h"
#include "kiln/workflow_validate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct kiln_field template_fields[] = {
	{"name", KILN_F_STRING, KILN_F_REQUIRED, 1, 255},
	{"description", KILN_F_STRING, KILN_F_NULLABLE, 0, 1000},
	{"inputs", KILN_F_OBJECT, 0, 0, KILN_F_NO_LIMIT},
	{"steps", KILN_F_ARRAY, KILN_F_REQUIRED, 1, KILN_F_NO_LIMIT},
	{"config", KILN_F_OBJECT, 0, 0, KILN_F_NO_LIMIT},
	{"webhook_url", KILN_F_STRING, KILN_F_NULLABLE, 0, 512},
	{"suppress_subtask_events", KILN_F_BOOL, 0, 0, KILN_F_NO_LIMIT},
};

/* The steps, checked as a workflow's (locs are the same: body.steps). */
static void check_steps(const json_t *body, const struct kiln_config *cfg,
			json_t *detail)
{
	json_t *as_wf = json_pack("{s:s, s:s, s:O}", "name", "template",
				  "origin_instance", "template", "steps",
				  json_object_get(body, "steps"));
	json_t *wf = kiln_workflow_validate_with_inputs(as_wf, cfg, detail);

	json_decref(wf);
	json_decref(as_wf);
}

/* The values placeholders may fill: each step's config and provider
 * parameters, and the template's config. */
static const char *const fillable[] = {"config", "provider_config",
				       "fallback_provider_config"};

/* A step without its fillable values: no placeholder may be left. */
static void check_unfillable(const json_t *steps, json_t *detail)
{
	size_t i, k;
	json_t *st;

	json_array_foreach(steps, i, st) {
		json_t *rest = json_deep_copy(st), *used, *loc;

		for (k = 0; k < N(fillable); k++)
			json_object_del(rest, fillable[k]);
		used = kiln_inputs_used(rest);
		if (json_array_size(used) > 0) {
			loc = json_pack("[ssI]", "body", "steps",
					(json_int_t)i);
			kiln_detail_add(detail, loc, "value_error",
					"Value error, {{inputs.%s}} is only"
					" allowed in config, provider_config"
					" and fallback_provider_config",
					json_string_value(
						json_array_get(used, 0)));
			json_decref(loc);
		}
		json_decref(used);
		json_decref(rest);
	}
}

/* Every {{inputs.NAME}} of the steps and config is declared. */
static void check_used(const json_t *body, const json_t *inputs,
		       json_t *detail)
{
	json_t *both = json_pack("[OO]", json_object_get(body, "steps"),
				 json_object_get(body, "config")
					 ? json_object_get(body, "config")
					 : json_null());
	json_t *used = kiln_inputs_used(both);
	json_t *loc, *name;
	size_t i;

	json_array_foreach(used, i, name) {
		if (json_object_get(inputs, json_string_value(name)) != NULL)
			continue;
		loc = json_pack("[ssO]", "body", "inputs", name);
		kiln_detail_add(detail, loc, "missing",
				"Field required: the steps use"
				" {{inputs.%s}}, which is not declared",
				json_string_value(name));
		json_decref(loc);
	}
	json_decref(used);
	json_decref(both);
}

/* The input a "$inputs" mapping reads: its from_field (a key), or the
 * first token of it as a JSON Pointer ("/asset/url"). */
static void check_input_mappings(const json_t *steps, const json_t *inputs,
				 json_t *detail)
{
	size_t i, k;
	json_t *st, *m;

	json_array_foreach(steps, i, st) {
		json_array_foreach(json_object_get(st, "input_mappings"), k,
				   m) {
			const char *from = json_string_value(
				json_object_get(m, "from_step"));
			const char *field = json_string_value(
				json_object_get(m, "from_field"));
			char name[128];
			size_t n;
			json_t *loc;

			if (from == NULL || field == NULL ||
			    strcmp(from, KILN_INPUTS_STEP) != 0)
				continue;
			if (field[0] == '/')
				field++;
			n = field == json_string_value(json_object_get(
						m, "from_field"))
				    ? strlen(field)
				    : strcspn(field, "/");
			if (n < sizeof(name)) {
				memcpy(name, field, n);
				name[n] = '\0';
				if (json_object_get(inputs, name) != NULL)
					continue;
			}
			field = json_string_value(
				json_object_get(m, "from_field"));
			loc = json_pack("[ssIsIs]", "body", "steps",
					(json_int_t)i, "input_mappings",
					(json_int_t)k, "from_field");
			kiln_detail_add(detail, loc, "value_error",
					"Value error, '%s' is not a declared"
					" input",
					field);
			json_decref(loc);
		}
	}
}

static json_t *empty_object(void)
{
	return json_object();
}

static json_t *null_value(void)
{
	return json_null();
}

static json_t *true_value(void)
{
	return json_true();
}

/* The optional keys of a definition and their defaults. */
static const struct {
	const char *key;
	json_t *(*dflt)(void);
} optional[] = {
	{"description", null_value},
	{"inputs", empty_object},
	{"config", empty_object},
	{"webhook_url", null_value},
	{"suppress_subtask_events", true_value},
};

json_t *kiln_template_validate(const json_t *body,
			       const struct kiln_config *cfg, json_t *detail)
{
	json_t *root = json_pack("[s]", "body"), *loc, *def;
	const json_t *inputs = json_object_get(body, "inputs");
	size_t before = json_array_size(detail);
	const json_t *steps;

	kiln_spec_check(detail, root, body, template_fields,
			N(template_fields));
	if (json_is_object(inputs)) {
		loc = kiln_loc_key(root, "inputs");
		kiln_inputs_schema_check(detail, loc, inputs);
		json_decref(loc);
	}
	json_decref(root);
	if (!json_is_object(body))
		return NULL;
	steps = json_object_get(body, "steps");
	if (json_is_array(steps) && json_array_size(steps) > 0) {
		check_steps(body, cfg, detail);
		check_unfillable(steps, detail);
		check_used(body, inputs, detail);
		check_input_mappings(steps, inputs, detail);
	}
	if (json_array_size(detail) > before)
		return NULL;
	def = json_object();
	json_object_set(def, "name", json_object_get(body, "name"));
	for (size_t i = 0; i < N(optional); i++) {
		json_t *v = json_object_get(body, optional[i].key);

		json_object_set_new(def, optional[i].key,
				    v ? json_incref(v) : optional[i].dflt());
	}
	json_object_set(def, "steps", (json_t *)steps);
	return def;
}

/* The steps with their fillable values substituted. */
static json_t *fill_steps(const json_t *steps, const json_t *inputs,
			  struct kiln_err *err)
{
	json_t *out = json_deep_copy(steps), *st;
	char path[96];
	size_t i, k;

	json_array_foreach(out, i, st) {
		for (k = 0; k < N(fillable); k++) {
			json_t *v = json_object_get(st, fillable[k]), *filled;

			if (v == NULL)
				continue;
			snprintf(path, sizeof(path), "steps[%zu].%s", i,
				 fillable[k]);
			filled = kiln_inputs_substitute(v, inputs, path, err);
			if (filled == NULL) {
				json_decref(out);
				return NULL;
			}
			json_object_set_new(st, fillable[k], filled);
		}
	}
	return out;
}

json_t *kiln_template_instantiate(const json_t *definition,
				  const json_t *inputs, struct kiln_err *err)
{
	json_t *steps, *config, *wf;

	steps = fill_steps(json_object_get(definition, "steps"), inputs, err);
	if (steps == NULL)
		return NULL;
	config = kiln_inputs_substitute(json_object_get(definition,
							"config"),
					inputs, "config", err);
	if (config == NULL) {
		json_decref(steps);
		return NULL;
	}
	wf = json_pack("{s:O, s:O, s:o, s:o, s:O, s:O}", "name",
		       json_object_get(definition, "name"), "description",
		       json_object_get(definition, "description"), "steps",
		       steps, "config", config, "webhook_url",
		       json_object_get(definition, "webhook_url"),
		       "suppress_subtask_events",
		       json_object_get(definition, "suppress_subtask_events"));
	return wf;
}

/* Applies each mapping from "$inputs" to a scratch copy of its step's
 * config, so an input that cannot feed its mapping (left out, or of
 * another shape than the from_field pointer needs) is refused before the
 * run is stored, at ["body", "inputs", NAME].  -1 when detail got one. */
static int apply_input_mappings(const json_t *wf, const json_t *inputs,
				json_t *detail)
{
	size_t i, k;
	json_t *st, *m;
	int bad = 0;

	json_array_foreach(json_object_get(wf, "steps"), i, st) {
		json_array_foreach(json_object_get(st, "input_mappings"), k, m) {
			const char *from = json_string_value(
				json_object_get(m, "from_step"));
			const char *field = json_string_value(
				json_object_get(m, "from_field"));
			struct kiln_err err = {0};
			json_t *scratch, *loc;
			char name[KILN_INPUTS_NAME_MAX + 1];
			size_t n;

			if (from == NULL || strcmp(from, KILN_INPUTS_STEP) != 0)
				continue;
			scratch = json_deep_copy(json_object_get(st, "config"));
			if (scratch == NULL)
				scratch = json_object();
			if (kiln_mapping_apply(scratch, m, inputs, &err) ==
			    KILN_OK) {
				json_decref(scratch);
				continue;
			}
			json_decref(scratch);
			/* A key names the input; a pointer's first token. */
			field = field ? field : "";
			n = *field == '/' ? strcspn(++field, "/") : strlen(field);
			if (n > KILN_INPUTS_NAME_MAX)
				n = KILN_INPUTS_NAME_MAX;
			memcpy(name, field, n);
			name[n] = '\0';
			loc = json_pack("[sss]", "body", "inputs", name);
			kiln_detail_add(detail, loc, "value_error",
					"Value error, step '%s' maps %s from"
					" this input: %s",
					json_string_value(json_object_get(
						st, "id")),
					json_string_value(json_object_get(
						m, "from_field")),
					err.msg);
			json_decref(loc);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

json_t *kiln_template_run_workflow(const json_t *definition,
				   const json_t *inputs, const json_t *run,
				   const struct kiln_config *cfg,
				   json_t *detail)
{
	static const char *const run_keys[] = {
		"name",        "origin_instance",  "origin_zone",
		"origin_tenant_id", "origin_reference", "webhook_url",
	};
	struct kiln_err err = {0};
	json_t *body, *wf, *loc;
	size_t i;

	body = kiln_template_instantiate(definition, inputs, &err);
	if (body == NULL) {
		loc = json_pack("[ss]", "body", "inputs");
		kiln_detail_add(detail, loc, "value_error", "Value error, %s",
				err.msg);
		json_decref(loc);
		return NULL;
	}
	for (i = 0; i < sizeof(run_keys) / sizeof(run_keys[0]); i++) {
		json_t *v = json_object_get(run, run_keys[i]);

		if (v != NULL)
			json_object_set(body, run_keys[i], v);
	}
	if (json_object_get(body, "origin_instance") == NULL)
		json_object_set_new(body, "origin_instance",
				    json_string(KILN_RUN_ORIGIN_INSTANCE));
	wf = kiln_workflow_validate_with_inputs(body, cfg, detail);
	json_decref(body);
	if (wf != NULL && apply_input_mappings(wf, inputs, detail) != 0) {
		json_decref(wf);
		return NULL;
	}
	if (wf != NULL)
		json_object_set(wf, "run_inputs", (json_t *)inputs);
	return wf;
}
