/*
 * test_catalog.c - the catalog of actions (src/catalog.c).
 *
 * First the table itself: it covers exactly model.c's built-in task
 * types, each entry is complete, and each example step is accepted by the
 * same validation as POST /api/v1/workflows and carries the entry's
 * required inputs.  Then the rendering against configs: the defaults, a
 * config with http providers (whose headers, credentials and URL paths
 * must not show) and custom task types, the capability filter, one
 * action, the 404 message, and the URL origins (a table).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/catalog.h"
#include "kiln/config.h"
#include "kiln/model.h"
#include "kiln/workflow_validate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const field_types[] = {
	"string", "integer", "number", "boolean", "url", "array", "object",
};

static const char *const step_keys[] = {
	"id",
	"task_type",
	"config",
	"depends_on",
	"input_mappings",
	"max_retries",
	"provider_config",
	"active_provider_capabilities",
	"fallback_provider_type",
	"fallback_provider_config",
	"fallback_provider_capabilities",
};

static int is_one_of(const char *s, const char *const *set, size_t n)
{
	size_t i;

	for (i = 0; s != NULL && i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return 1;
	return 0;
}

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL)
		fail_msg("JSON does not parse: %s: %s", text, jerr.text);
	return root;
}

static void init_defaults(struct kiln_config *cfg)
{
	struct kiln_err err = {0};

	assert_int_equal(kiln_config_init_defaults(cfg, &err), KILN_OK);
}

/* Defaults with text applied over them. */
static void init_with(struct kiln_config *cfg, const char *text)
{
	struct kiln_err err = {0};
	json_t *root = parse(text);

	init_defaults(cfg);
	if (kiln_config_apply_json(cfg, root, &err) != KILN_OK)
		fail_msg("config refused: %s: %s", err.field, err.msg);
	json_decref(root);
}

static json_t *render_list(const struct kiln_config *cfg,
			   const char *capability)
{
	struct kiln_err err = {0};
	json_t *list = NULL;

	if (kiln_catalog_render_list(cfg, capability, &list, &err) !=
	    KILN_OK)
		fail_msg("render_list: %s", err.msg);
	assert_non_null(list);
	return list;
}

static json_t *action_of(const json_t *list, const char *task_type)
{
	size_t i;
	json_t *a;

	json_array_foreach(json_object_get(list, "actions"), i, a) {
		const char *tt =
			json_string_value(json_object_get(a, "task_type"));

		if (tt != NULL && strcmp(tt, task_type) == 0)
			return a;
	}
	return NULL;
}

static const char *str_at(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (s == NULL)
		fail_msg("no string at \"%s\"", key);
	return s;
}

static json_int_t int_at(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		fail_msg("no integer at \"%s\"", key);
	return json_integer_value(v);
}

/* 1 if the JSON value v suits a catalog field type. */
static int value_has_type(const json_t *v, const char *type)
{
	if (strcmp(type, "string") == 0 || strcmp(type, "url") == 0)
		return json_is_string(v);
	if (strcmp(type, "integer") == 0)
		return json_is_integer(v);
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v);
	if (strcmp(type, "array") == 0)
		return json_is_array(v);
	return json_is_object(v);
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

static void test_table_covers_the_builtin_task_types(void **state)
{
	size_t n = 0;

	while (kiln_builtin_task_types[n] != NULL) {
		const struct kiln_catalog_entry *e =
			kiln_catalog_builtin(kiln_builtin_task_types[n]);

		if (e == NULL)
			fail_msg("no catalog entry for %s",
				 kiln_builtin_task_types[n]);
		/* same order as model.c */
		assert_ptr_equal(e, &kiln_catalog_builtins[n]);
		n++;
	}
	assert_null(kiln_catalog_builtins[n].task_type);
	assert_null(kiln_catalog_builtin("generation")); /* case-sensitive */
	assert_null(kiln_catalog_builtin("MY_CUSTOM_TYPE"));
	assert_null(kiln_catalog_builtin(""));
	assert_null(kiln_catalog_builtin(NULL));
}

static void check_fields(const char *task_type,
			 const struct kiln_catalog_field *f, int is_input)
{
	size_t i, k, n_required = 0;

	for (i = 0; f[i].name != NULL; i++) {
		if (!is_one_of(f[i].type, field_types, N(field_types)))
			fail_msg("%s.%s: type %s", task_type, f[i].name,
				 f[i].type ? f[i].type : "NULL");
		assert_non_null(f[i].description);
		assert_true(strlen(f[i].description) > 10);
		assert_true(is_input || !f[i].is_required);
		n_required += f[i].is_required != 0;
		for (k = 0; k < i; k++)
			if (strcmp(f[k].name, f[i].name) == 0)
				fail_msg("%s: %s listed twice", task_type,
					 f[i].name);
	}
	assert_true(i > 0);
	assert_true(!is_input || n_required > 0);
}

static void test_table_entries_are_complete(void **state)
{
	const struct kiln_catalog_entry *e;

	for (e = kiln_catalog_builtins; e->task_type != NULL; e++) {
		assert_non_null(e->description);
		assert_true(strlen(e->description) > 10);
		check_fields(e->task_type, e->inputs, 1);
		check_fields(e->task_type, e->outputs, 0);
		assert_non_null(e->capabilities);
		assert_non_null(e->capabilities[0]);
		assert_non_null(e->example_step);
	}
}

/* Every example step: an object of WorkflowStepDefinition keys, of its
 * own task type, carrying every required input with a value of the
 * input's type, and accepted alone by the create validation. */
static void test_examples_are_valid_steps(void **state)
{
	const struct kiln_catalog_entry *e;
	struct kiln_config cfg;

	init_defaults(&cfg);
	for (e = kiln_catalog_builtins; e->task_type != NULL; e++) {
		json_t *step = parse(e->example_step), *config, *v, *body,
		       *detail = json_array(), *wf;
		const struct kiln_catalog_field *f;
		const char *key;

		json_object_foreach(step, key, v) {
			if (!is_one_of(key, step_keys, N(step_keys)))
				fail_msg("%s: example key %s", e->task_type,
					 key);
		}
		assert_string_equal(str_at(step, "task_type"), e->task_type);
		config = json_object_get(step, "config");
		assert_true(json_is_object(config));
		for (f = e->inputs; f->name != NULL; f++) {
			v = json_object_get(config, f->name);
			if (f->is_required && v == NULL)
				fail_msg("%s: example lacks %s", e->task_type,
					 f->name);
			if (v != NULL && !value_has_type(v, f->type))
				fail_msg("%s: example's %s is not a %s",
					 e->task_type, f->name, f->type);
		}
		json_object_foreach(config, key, v) {
			for (f = e->inputs; f->name != NULL; f++)
				if (strcmp(f->name, key) == 0)
					break;
			if (f->name == NULL)
				fail_msg("%s: example's %s is not an input",
					 e->task_type, key);
		}
		body = json_pack("{sssss[O]}", "name", "example",
				 "origin_instance", "unit", "steps", step);
		wf = kiln_workflow_validate_create(body, &cfg, detail);
		if (wf == NULL) {
			char *text = json_dumps(detail, 0);

			fail_msg("%s: example refused: %s", e->task_type,
				 text);
		}
		json_decref(wf);
		json_decref(body);
		json_decref(detail);
		json_decref(step);
	}
	kiln_config_free(&cfg);
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */
/* ------------------------------------------------------------------ */

/* The CatalogAction keys, and nothing else. */
static void assert_action_shape(const json_t *a)
{
	static const char *const keys[] = {
		"task_type", "description", "is_builtin", "inputs", "outputs",
		"capabilities", "provider", "providers", "example_step",
	};
	const char *key;
	json_t *v;
	size_t i;

	assert_int_equal(json_object_size(a), N(keys));
	for (i = 0; i < N(keys); i++)
		if (json_object_get(a, keys[i]) == NULL)
			fail_msg("action lacks %s", keys[i]);
	assert_true(json_is_boolean(json_object_get(a, "is_builtin")));
	json_array_foreach(json_object_get(a, "inputs"), i, v) {
		assert_int_equal(json_object_size(v), 4);
		assert_true(json_is_boolean(json_object_get(v, "required")));
	}
	json_array_foreach(json_object_get(a, "outputs"), i, v) {
		assert_int_equal(json_object_size(v), 3);
		str_at(v, "name");
		str_at(v, "type");
		str_at(v, "description");
	}
	json_object_foreach((json_t *)json_object_get(a, "provider"), key,
			    v) {
		/* CatalogProvider keys */
		static const char *const pkeys[] = {
			"name", "type", "mode", "url", "max_retries",
			"timeout_s", "connect_timeout_s", "step_deadline_s",
			"concurrency", "async", "artifacts",
		};

		if (!is_one_of(key, pkeys, N(pkeys)))
			fail_msg("provider key %s", key);
	}
	assert_int_equal(json_object_size(json_object_get(a, "provider")), 11);
}

static void test_defaults_render_every_builtin_on_dryrun(void **state)
{
	struct kiln_config cfg;
	json_t *list, *a, *p;
	size_t i;

	init_defaults(&cfg);
	list = render_list(&cfg, NULL);
	assert_int_equal(json_object_size(list), 2);
	assert_int_equal(int_at(list, "total"), cfg.n_task_types);
	assert_int_equal(json_array_size(json_object_get(list, "actions")),
			 cfg.n_task_types);
	json_array_foreach(json_object_get(list, "actions"), i, a) {
		const struct kiln_catalog_entry *e =
			kiln_catalog_builtin(kiln_builtin_task_types[i]);

		assert_action_shape(a);
		assert_string_equal(str_at(a, "task_type"),
				    kiln_builtin_task_types[i]);
		assert_string_equal(str_at(a, "description"), e->description);
		assert_true(json_is_true(json_object_get(a, "is_builtin")));
		p = json_object_get(a, "provider");
		assert_string_equal(str_at(p, "name"), "dryrun");
		assert_string_equal(str_at(p, "type"), "dryrun");
		assert_string_equal(str_at(p, "mode"), "sync");
		assert_true(json_is_null(json_object_get(p, "url")));
		assert_int_equal(int_at(p, "max_retries"), 0);
		assert_int_equal(int_at(p, "timeout_s"), 60);
		assert_true(json_is_false(json_object_get(p, "async")));
		assert_true(json_is_false(json_object_get(p, "artifacts")));
		assert_int_equal(json_array_size(json_object_get(a,
								 "providers")),
				 1);
		assert_string_equal(
			json_string_value(json_array_get(
				json_object_get(a, "providers"), 0)),
			"dryrun");
		assert_string_equal(
			str_at(json_object_get(a, "example_step"),
			       "task_type"),
			kiln_builtin_task_types[i]);
	}
	json_decref(list);
	kiln_config_free(&cfg);
}

static const char PROVIDERS_CONFIG[] =
	"{\"providers\": {"
	"  \"imagegen\": {\"type\": \"http\","
	"    \"url\": \"https://bob:hunter2@ImageGen.Example.com:8443"
	"/v1/generate?api_key=QUERYKEY#frag\","
	"    \"headers\": {\"Authorization\": \"Bearer ${env:KILN_TEST_CAT}\","
	"                  \"X-Api-Key\": \"HEADERKEY\"},"
	"    \"timeout_s\": 120, \"connect_timeout_s\": 5, \"max_retries\": 3,"
	"    \"concurrency\": 7, \"step_deadline_s\": 900},"
	"  \"queue\": {\"url\": \"http://[::1]:9000/queue/submit\","
	"    \"mode\": \"async\", \"body\": {\"token\": \"BODYKEY\","
	"      \"input\": \"{{input}}\"},"
	"    \"async\": {\"job_id_pointer\": \"/id\","
	"      \"status_url_template\": \"http://[::1]:9000/jobs/{job_id}"
	"?k=TEMPLATEKEY\","
	"      \"status_pointer\": \"/status\","
	"      \"success_values\": [\"done\"]},"
	"    \"artifacts\": {\"url_pointers\": [\"/images/*/url\"]}}},"
	" \"task_types\": {\"UPSCALE\": \"imagegen\","
	"   \"MY_CUSTOM_TYPE\": \"queue\", \"ANOTHER_1\": \"dryrun\"}}";

static void test_config_providers_and_custom_types(void **state)
{
	struct kiln_config cfg;
	json_t *list, *a, *p, *names, *ex;
	char *text;

	assert_int_equal(setenv("KILN_TEST_CAT", "ENVKEY", 1), 0);
	init_with(&cfg, PROVIDERS_CONFIG);
	list = render_list(&cfg, NULL);
	assert_int_equal(int_at(list, "total"), cfg.n_task_types);

	/* Secrets: no header, credential, path, query or template. */
	text = json_dumps(list, 0);
	assert_non_null(text);
	assert_null(strstr(text, "ENVKEY"));
	assert_null(strstr(text, "HEADERKEY"));
	assert_null(strstr(text, "Authorization"));
	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "bob"));
	assert_null(strstr(text, "QUERYKEY"));
	assert_null(strstr(text, "/v1/generate"));
	assert_null(strstr(text, "BODYKEY"));
	assert_null(strstr(text, "TEMPLATEKEY"));
	assert_null(strstr(text, "/queue/submit"));
	free(text);

	/* A built-in moved to an http provider. */
	a = action_of(list, "UPSCALE");
	assert_non_null(a);
	assert_action_shape(a);
	p = json_object_get(a, "provider");
	assert_string_equal(str_at(p, "name"), "imagegen");
	assert_string_equal(str_at(p, "type"), "http");
	assert_string_equal(str_at(p, "mode"), "sync");
	assert_string_equal(str_at(p, "url"),
			    "https://imagegen.example.com:8443");
	assert_int_equal(int_at(p, "max_retries"), 3);
	assert_int_equal(int_at(p, "timeout_s"), 120);
	assert_int_equal(int_at(p, "connect_timeout_s"), 5);
	assert_int_equal(int_at(p, "step_deadline_s"), 900);
	assert_int_equal(int_at(p, "concurrency"), 7);
	assert_true(json_is_false(json_object_get(p, "async")));
	assert_true(json_is_false(json_object_get(p, "artifacts")));
	assert_true(json_is_true(json_object_get(a, "is_builtin")));

	/* A custom task type on an async provider with artifacts. */
	a = action_of(list, "MY_CUSTOM_TYPE");
	assert_non_null(a);
	assert_action_shape(a);
	assert_true(json_is_false(json_object_get(a, "is_builtin")));
	assert_int_equal(json_array_size(json_object_get(a, "inputs")), 0);
	assert_true(json_array_size(json_object_get(a, "outputs")) > 0);
	assert_int_equal(json_array_size(json_object_get(a, "capabilities")),
			 1);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(a, "capabilities"), 0)),
			    "custom");
	p = json_object_get(a, "provider");
	assert_string_equal(str_at(p, "name"), "queue");
	assert_string_equal(str_at(p, "mode"), "async");
	assert_string_equal(str_at(p, "url"), "http://[::1]:9000");
	assert_true(json_is_true(json_object_get(p, "async")));
	assert_true(json_is_true(json_object_get(p, "artifacts")));
	ex = json_object_get(a, "example_step");
	assert_int_equal(json_object_size(ex), 3);
	assert_string_equal(str_at(ex, "id"), "my_custom_type");
	assert_string_equal(str_at(ex, "task_type"), "MY_CUSTOM_TYPE");
	assert_true(json_is_object(json_object_get(ex, "config")));
	assert_int_equal(json_object_size(json_object_get(ex, "config")), 0);

	a = action_of(list, "ANOTHER_1");
	assert_non_null(a);
	assert_string_equal(str_at(json_object_get(a, "example_step"), "id"),
			    "another_1");
	assert_string_equal(str_at(json_object_get(a, "provider"), "name"),
			    "dryrun");

	/* Every provider a step may name, in the config's order. */
	names = json_object_get(a, "providers");
	assert_int_equal(json_array_size(names), 3);
	assert_string_equal(json_string_value(json_array_get(names, 0)),
			    "dryrun");
	assert_string_equal(json_string_value(json_array_get(names, 1)),
			    "imagegen");
	assert_string_equal(json_string_value(json_array_get(names, 2)),
			    "queue");

	/* Built-ins first (model.c's order), then the config's own. */
	assert_string_equal(str_at(json_array_get(json_object_get(list,
								  "actions"),
						  0),
				   "task_type"),
			    "GENERATION");
	json_decref(list);
	kiln_config_free(&cfg);
}

static void test_capability_filter(void **state)
{
	static const struct {
		const char *capability;
		const char *first; /* NULL: none */
		size_t total;
	} cases[] = {
		{"upscale", "UPSCALE", 1},
		{"text-to-image", "GENERATION", 1},
		{"inpainting", "FILL", 1},
		{"image-to-video", "VIDEO_GENERATION", 1},
		{"image-to-image", "REFINE", 7},
		{"custom", "MY_CUSTOM_TYPE", 2},
		{"Upscale", NULL, 0}, /* exact match */
		{"no-such-capability", NULL, 0},
	};
	struct kiln_config cfg;
	json_t *list, *a, *c;
	size_t i, k, j;

	assert_int_equal(setenv("KILN_TEST_CAT", "ENVKEY", 1), 0);
	init_with(&cfg, PROVIDERS_CONFIG);
	for (i = 0; i < N(cases); i++) {
		list = render_list(&cfg, cases[i].capability);
		assert_int_equal(int_at(list, "total"), cases[i].total);
		assert_int_equal(
			json_array_size(json_object_get(list, "actions")),
			cases[i].total);
		json_array_foreach(json_object_get(list, "actions"), k, a) {
			int found = 0;

			json_array_foreach(json_object_get(a, "capabilities"),
					   j, c)
				found |= strcmp(json_string_value(c),
						cases[i].capability) == 0;
			assert_true(found);
		}
		if (cases[i].first != NULL)
			assert_string_equal(
				str_at(json_array_get(json_object_get(
							      list, "actions"),
						      0),
				       "task_type"),
				cases[i].first);
		json_decref(list);
	}
	kiln_config_free(&cfg);
}

static void test_one_action_and_not_found(void **state)
{
	struct kiln_config cfg;
	struct kiln_err err = {0};
	json_t *one = NULL, *list, *sentinel = json_object();
	json_t *out, *msg;
	char long_name[600];

	init_defaults(&cfg);
	assert_int_equal(kiln_catalog_render_action(&cfg, "FILL", &one, &err),
			 KILN_OK);
	assert_action_shape(one);
	list = render_list(&cfg, NULL);
	assert_true(json_equal(one, action_of(list, "FILL")));
	json_decref(list);
	json_decref(one);

	out = sentinel;
	assert_int_equal(kiln_catalog_render_action(&cfg, "fill", &out, &err),
			 KILN_ENOTFOUND);
	assert_ptr_equal(out, sentinel); /* untouched on failure */
	assert_string_equal(err.msg, "Task type 'fill' not found");
	assert_int_equal(kiln_catalog_render_action(&cfg, "MY_CUSTOM_TYPE",
						    &out, &err),
			 KILN_ENOTFOUND);
	assert_string_equal(err.msg, "Task type 'MY_CUSTOM_TYPE' not found");
	assert_int_equal(kiln_catalog_render_action(&cfg, NULL, &out, &err),
			 KILN_ENOTFOUND);
	/* Bytes that are not UTF-8 must not break the JSON answer. */
	assert_int_equal(kiln_catalog_render_action(&cfg, "A\xff\xfe" "B",
						    &out, &err),
			 KILN_ENOTFOUND);
	assert_string_equal(err.msg, "Task type 'A??B' not found");
	msg = json_string(err.msg);
	assert_non_null(msg);
	json_decref(msg);
	memset(long_name, 'X', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(kiln_catalog_render_action(&cfg, long_name, &out,
						    &err),
			 KILN_ENOTFOUND);
	assert_true(strlen(err.msg) < 200);
	assert_ptr_equal(out, sentinel);
	json_decref(sentinel);
	kiln_config_free(&cfg);
}

static void test_url_origin(void **state)
{
	static const struct {
		const char *url;
		const char *origin; /* NULL: refused */
	} cases[] = {
		{"https://api.example.com/v1/run?key=x",
		 "https://api.example.com"},
		{"HTTP://API.Example.COM", "http://api.example.com"},
		{"https://u:p@host:8443/x", "https://host:8443"},
		{"https://a@b@host/x", "https://host"},
		{"https://host?key=x", "https://host"},
		{"https://host#frag", "https://host"},
		{"https://host\\@evil/x", "https://host"},
		{"http://[::1]:9000/q", "http://[::1]:9000"},
		{"http://127.0.0.1:5000/gen", "http://127.0.0.1:5000"},
		{"https://", NULL},
		{"https://user@/x", NULL},
		{"https:///path", NULL},
		{"no-scheme.example.com/x", NULL},
		{"://host", NULL},
		{"host/x?u=http://evil", NULL},
		{"1http://host", NULL},
		{NULL, NULL},
	};
	char out[64], tiny[9];
	size_t i;

	for (i = 0; i < N(cases); i++) {
		int rc = kiln_catalog_url_origin(cases[i].url, out,
						 sizeof(out));

		if (cases[i].origin == NULL) {
			assert_int_equal(rc, -1);
			assert_string_equal(out, "");
		} else {
			if (rc != 0)
				fail_msg("%s refused", cases[i].url);
			assert_string_equal(out, cases[i].origin);
		}
	}
	assert_int_equal(kiln_catalog_url_origin("https://long-host.example",
						 tiny, sizeof(tiny)),
			 -1);
	assert_string_equal(tiny, "");
	assert_int_equal(kiln_catalog_url_origin("http://a", tiny,
						 sizeof(tiny)),
			 0);
	assert_string_equal(tiny, "http://a"); /* exactly fits */
	assert_int_equal(kiln_catalog_url_origin("http://ab", tiny,
						 sizeof(tiny)),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_covers_the_builtin_task_types),
		cmocka_unit_test(test_table_entries_are_complete),
		cmocka_unit_test(test_examples_are_valid_steps),
		cmocka_unit_test(test_defaults_render_every_builtin_on_dryrun),
		cmocka_unit_test(test_config_providers_and_custom_types),
		cmocka_unit_test(test_capability_filter),
		cmocka_unit_test(test_one_action_and_not_found),
		cmocka_unit_test(test_url_origin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
