/*
 * workflow_validate.c - what makes a workflow definition acceptable (see
 * workflow_validate.h).  Structural checks run first; the DAG checks run
 * only on a structurally sound step list, so every message points at one
 * real culprit instead of a cascade.
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/dag.h"
#include "kiln/json_spec.h"
#include "kiln/mapping.h"
#include "kiln/workflow_validate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define REQ KILN_F_REQUIRED
#define NUL KILN_F_NULLABLE
#define NL KILN_F_NO_LIMIT

static const struct kiln_field create_fields[] = {
	{"name", KILN_F_STRING, REQ, 1, 255},
	{"description", KILN_F_STRING, NUL, 0, 1000},
	{"steps", KILN_F_ARRAY, REQ, 1, NL},
	{"config", KILN_F_OBJECT, 0, 0, NL},
	{"origin_instance", KILN_F_STRING, REQ, 1, 100},
	{"origin_zone", KILN_F_STRING, NUL, 0, 50},
	{"origin_tenant_id", KILN_F_STRING, NUL, 0, 100},
	{"origin_reference", KILN_F_STRING, NUL, 0, 512},
	{"webhook_url", KILN_F_STRING, NUL, 0, 512},
	{"suppress_subtask_events", KILN_F_BOOL, 0, 0, NL},
};

static const struct kiln_field step_fields[] = {
	{"id", KILN_F_STRING, REQ, 1, 100},
	{"task_type", KILN_F_STRING, REQ, 1, 64},
	{"config", KILN_F_OBJECT, 0, 0, NL},
	{"depends_on", KILN_F_STRING_ARRAY, 0, 0, NL},
	{"input_mappings", KILN_F_ARRAY, 0, 0, NL},
	{"max_retries", KILN_F_INT, 0, 0, 100},
	{"provider_config", KILN_F_OBJECT, NUL, 0, NL},
	{"active_provider_capabilities", KILN_F_STRING_ARRAY, NUL, 0, NL},
	{"fallback_provider_type", KILN_F_STRING, NUL, 0, 64},
	{"fallback_provider_config", KILN_F_OBJECT, NUL, 0, NL},
	{"fallback_provider_capabilities", KILN_F_STRING_ARRAY, NUL, 0, NL},
};

static const struct kiln_field mapping_fields[] = {
	{"from_step", KILN_F_STRING, REQ, 1, 100},
	{"from_field", KILN_F_STRING, REQ, 1, 512},
	{"to_field", KILN_F_STRING, REQ, 1, 512},
	{"transform", KILN_F_STRING, NUL, 0, 64},
};

static const struct kiln_field update_fields[] = {
	{"name", KILN_F_STRING, NUL, 1, 255},
	{"description", KILN_F_STRING, NUL, 0, 1000},
	{"webhook_url", KILN_F_STRING, NUL, 0, 512},
};

static json_t *loc3(const char *a, size_t i, const char *b)
{
	json_t *l = json_pack("[ssI]", "body", a, (json_int_t)i);

	if (b)
		json_array_append_new(l, json_string(b));
	return l;
}

static void check_webhook_url(json_t *detail, const json_t *obj)
{
	const char *url =
		json_string_value(json_object_get(obj, "webhook_url"));
	json_t *loc;

	if (url == NULL)
		return;
	if (strncmp(url, "http://", 7) == 0 && url[7] != '\0')
		return;
	if (strncmp(url, "https://", 8) == 0 && url[8] != '\0')
		return;
	loc = json_pack("[ss]", "body", "webhook_url");
	kiln_detail_add(detail, loc, "value_error",
			"Value error, webhook_url must be an http:// or"
			" https:// URL");
	json_decref(loc);
}

/* Task type, provider names and transforms of one (well-formed) step. */
static void check_step_names(json_t *detail, const json_t *step, size_t i,
			     const struct kiln_config *cfg)
{
	const char *tt = json_string_value(json_object_get(step, "task_type"));
	json_t *pc = json_object_get(step, "provider_config");
	json_t *pt = json_object_get(pc, "provider_type");
	const char *fb = json_string_value(
		json_object_get(step, "fallback_provider_type"));
	json_t *maps = json_object_get(step, "input_mappings");
	json_t *loc;
	size_t k;

	if (tt && kiln_config_task_provider(cfg, tt) == NULL) {
		loc = loc3("steps", i, "task_type");
		kiln_detail_add(detail, loc, "enum",
				"Input should be a known task type; '%s' is"
				" not configured",
				tt);
		json_decref(loc);
	}
	if (pt != NULL && !json_is_null(pt)) {
		loc = loc3("steps", i, "provider_config");
		json_array_append_new(loc, json_string("provider_type"));
		if (!json_is_string(pt))
			kiln_detail_add(detail, loc, "string_type",
					"Input should be a valid string");
		else if (kiln_config_provider(cfg, json_string_value(pt)) ==
			 NULL)
			kiln_detail_add(detail, loc, "enum",
					"Input should be a configured"
					" provider; '%s' is not configured",
					json_string_value(pt));
		json_decref(loc);
	}
	if (fb && kiln_config_provider(cfg, fb) == NULL) {
		loc = loc3("steps", i, "fallback_provider_type");
		kiln_detail_add(detail, loc, "enum",
				"Input should be a configured provider; '%s'"
				" is not configured",
				fb);
		json_decref(loc);
	}
	for (k = 0; k < json_array_size(maps); k++) {
		const char *tf = json_string_value(
			json_object_get(json_array_get(maps, k), "transform"));

		if (tf == NULL || kiln_mapping_transform_is_known(tf))
			continue;
		loc = loc3("steps", i, "input_mappings");
		json_array_append_new(loc, json_integer((json_int_t)k));
		json_array_append_new(loc, json_string("transform"));
		kiln_detail_add(detail, loc, "enum",
				"Input should be one of to_string, to_int,"
				" to_float, to_bool, first, last, to_list,"
				" json_encode or json_decode");
		json_decref(loc);
	}
}

/* Structure of every step and mapping; returns errors added. */
static size_t check_steps_shape(json_t *detail, const json_t *steps,
				const struct kiln_config *cfg)
{
	size_t before = json_array_size(detail);
	size_t i, k;

	for (i = 0; i < json_array_size(steps); i++) {
		json_t *step = json_array_get(steps, i);
		json_t *sl = loc3("steps", i, NULL);
		json_t *maps;

		if (kiln_spec_check(detail, sl, step, step_fields,
				    N(step_fields)) == 0)
			check_step_names(detail, step, i, cfg);
		maps = json_object_get(step, "input_mappings");
		for (k = 0; json_is_array(maps) && k < json_array_size(maps);
		     k++) {
			json_t *ml = kiln_loc_key(sl, "input_mappings");
			json_t *mil = kiln_loc_index(ml, k);

			kiln_spec_check(detail, mil, json_array_get(maps, k),
					mapping_fields, N(mapping_fields));
			json_decref(mil);
			json_decref(ml);
		}
		json_decref(sl);
	}
	return json_array_size(detail) - before;
}

/* The graph checks on a well-formed step list. */
static void check_graph(json_t *detail, const json_t *steps,
			struct kiln_dag_node *nodes, size_t n, int has_inputs)
{
	struct kiln_dag_issue issues[32];
	size_t n_issues, i, k;
	json_t *loc;

	n_issues = kiln_dag_validate(nodes, n, issues, N(issues));
	for (i = 0; i < n_issues && i < N(issues); i++) {
		struct kiln_dag_issue *is = &issues[i];

		if (is->kind == KILN_DAG_DUPLICATE_ID) {
			loc = loc3("steps", is->node, "id");
		} else {
			loc = loc3("steps", is->node, "depends_on");
			json_array_append_new(loc,
					      json_integer((json_int_t)is->dep));
		}
		kiln_detail_add(detail, loc, "value_error", "Value error, %s",
				is->msg);
		json_decref(loc);
	}
	if (n_issues > 0)
		return;
	/* Each mapping must read from an ancestor of its step. */
	for (i = 0; i < n; i++) {
		json_t *maps = json_object_get(json_array_get(steps, i),
					       "input_mappings");

		for (k = 0; k < json_array_size(maps); k++) {
			const char *from = json_string_value(json_object_get(
				json_array_get(maps, k), "from_step"));
			long a = kiln_dag_find(nodes, n, from);

			if (a >= 0 && kiln_dag_is_ancestor(nodes, n, (size_t)a,
							   i))
				continue;
			/* A template's steps also map from its run inputs. */
			if (has_inputs && strcmp(from, KILN_INPUTS_STEP) == 0)
				continue;
			loc = loc3("steps", i, "input_mappings");
			json_array_append_new(loc, json_integer((json_int_t)k));
			json_array_append_new(loc, json_string("from_step"));
			kiln_detail_add(detail, loc, "value_error",
					"Value error, step '%s' maps input"
					" from '%s', which is not one of its"
					" dependencies (direct or indirect)",
					nodes[i].id, from);
			json_decref(loc);
		}
	}
}

/* Normalises a mapping: all four keys present (the first three are
 * required, so checked present), in this order. */
static json_t *normal_mapping(const json_t *m)
{
	static const char *const keys[] = {"from_step", "from_field",
					   "to_field", "transform"};
	json_t *o = json_object(), *v;
	size_t i;

	for (i = 0; i < N(keys); i++) {
		v = json_object_get(m, keys[i]);
		json_object_set_new_nocheck(o, keys[i],
					    v ? json_incref(v) : json_null());
	}
	return o;
}

static void set_default(json_t *o, const char *key, json_t *dflt)
{
	if (json_object_get(o, key) == NULL)
		json_object_set_new_nocheck(o, key, dflt);
	else
		json_decref(dflt);
}

static json_t *normalise(const json_t *body, const struct kiln_config *cfg,
			 struct kiln_dag_node *nodes, size_t n)
{
	static const char *const nullable_wf[] = {
		"description", "origin_zone", "origin_tenant_id",
		"origin_reference", "webhook_url"};
	static const char *const nullable_step[] = {
		"provider_config", "active_provider_capabilities",
		"fallback_provider_type", "fallback_provider_config",
		"fallback_provider_capabilities"};
	/* Only the workflow and its steps get keys here: their values
	 * (configs, mappings' sources) are shared with body, not copied. */
	json_t *wf = json_copy((json_t *)body);
	json_t *steps = json_array();
	char uuid[KILN_UUID_LEN];
	size_t i, k;

	for (i = 0; i < json_array_size(json_object_get(body, "steps")); i++)
		json_array_append_new(
			steps, json_copy(json_array_get(
				       json_object_get(body, "steps"), i)));
	json_object_set_new_nocheck(wf, "steps", steps);

	for (i = 0; i < N(nullable_wf); i++)
		set_default(wf, nullable_wf[i], json_null());
	set_default(wf, "config", json_object());
	set_default(wf, "suppress_subtask_events", json_true());
	for (i = 0; i < json_array_size(steps); i++) {
		json_t *st = json_array_get(steps, i);
		json_t *maps = json_object_get(st, "input_mappings");
		json_t *norm = json_array();
		const char *pname = json_string_value(json_object_get(
			json_object_get(st, "provider_config"),
			"provider_type"));
		const struct kiln_provider_cfg *p;

		for (k = 0; k < N(nullable_step); k++)
			set_default(st, nullable_step[k], json_null());
		set_default(st, "config", json_object());
		set_default(st, "depends_on", json_array());
		for (k = 0; k < json_array_size(maps); k++)
			json_array_append_new(
				norm, normal_mapping(json_array_get(maps, k)));
		json_object_set_new_nocheck(st, "input_mappings", norm);
		if (pname == NULL)
			pname = kiln_config_task_provider(
				cfg, json_string_value(
					     json_object_get(st, "task_type")));
		p = kiln_config_provider(cfg, pname);
		json_object_set_new_nocheck(st, "provider", json_string(pname));
		set_default(st, "max_retries",
			    json_integer(p ? p->max_retries : 0));
		kiln_uuid_new(uuid);
		json_object_set_new_nocheck(st, "uuid", json_string(uuid));
	}
	json_object_set_new_nocheck(
		wf, "final_step_id",
		json_string(nodes[kiln_dag_final_node(nodes, n)].id));
	return wf;
}

static json_t *validate_create(const json_t *body,
			       const struct kiln_config *cfg, json_t *detail,
			       int has_inputs);

json_t *kiln_workflow_validate_create(const json_t *body,
				      const struct kiln_config *cfg,
				      json_t *detail)
{
	return validate_create(body, cfg, detail, 0);
}

json_t *kiln_workflow_validate_with_inputs(const json_t *body,
					   const struct kiln_config *cfg,
					   json_t *detail)
{
	return validate_create(body, cfg, detail, 1);
}

static json_t *validate_create(const json_t *body,
			       const struct kiln_config *cfg, json_t *detail,
			       int has_inputs)
{
	json_t *root = json_pack("[s]", "body");
	json_t *steps, *wf = NULL;
	struct kiln_dag_node *nodes = NULL;
	const char ***deps = NULL;
	size_t n, i, j;

	kiln_spec_check(detail, root, body, create_fields,
			       N(create_fields));
	json_decref(root);
	if (!json_is_object(body))
		return NULL;
	check_webhook_url(detail, body);
	steps = json_object_get(body, "steps");
	if (!json_is_array(steps) || json_array_size(steps) == 0)
		return NULL;
	/* Graph checks need well-formed steps; they still run when only
	 * top-level fields were wrong, so one answer lists both. */
	if (check_steps_shape(detail, steps, cfg) > 0)
		return NULL;
	n = json_array_size(steps);
	nodes = calloc(n, sizeof(*nodes));
	deps = calloc(n, sizeof(*deps));
	if (nodes == NULL || deps == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		json_t *st = json_array_get(steps, i);
		json_t *d = json_object_get(st, "depends_on");

		nodes[i].id = json_string_value(json_object_get(st, "id"));
		deps[i] = calloc(json_array_size(d) + 1, sizeof(char *));
		if (deps[i] == NULL)
			goto out;
		for (j = 0; j < json_array_size(d); j++)
			deps[i][j] = json_string_value(json_array_get(d, j));
		nodes[i].deps = deps[i];
		nodes[i].n_deps = json_array_size(d);
	}
	check_graph(detail, steps, nodes, n, has_inputs);
	if (json_array_size(detail) == 0)
		wf = normalise(body, cfg, nodes, n);
out:
	for (i = 0; deps && i < n; i++)
		free(deps[i]);
	free(deps);
	free(nodes);
	return wf;
}

int kiln_workflow_validate_update(const json_t *body, json_t *detail)
{
	json_t *root = json_pack("[s]", "body");
	size_t errs = kiln_spec_check(detail, root, body, update_fields,
				      N(update_fields));

	json_decref(root);
	if (errs == 0)
		check_webhook_url(detail, body);
	return json_array_size(detail) == 0 ? 0 : -1;
}
