/*
 * test_batch_exec.c - what one asset of a batch runs (src/batch_exec.c):
 * kiln_batch_default_asset_input (the only asset input, else the only url
 * input, else none), kiln_batch_asset_inputs (shared inputs, the asset's
 * overrides over them, the asset itself over both: {"url", "asset_id"}
 * for an asset input, the url string otherwise), and kiln_batch_workflow
 * on real template definitions (kiln_template_validate, default config):
 * placeholders filled, template, version and batch ids, run_inputs with
 * defaults, no webhook_url, origin fields from the batch ("batch" as the
 * default instance, the tenant as origin_tenant_id), and the first fault
 * (KILN_EINVAL, its field and message) when an asset's inputs are wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/batch_exec.h"
#include "kiln/config.h"
#include "kiln/template_validate.h"

static struct kiln_config cfg;

static int setup(void **state)
{
	struct kiln_err err = {0};

	(void)state;
	assert_int_equal(kiln_config_init_defaults(&cfg, &err), KILN_OK);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kiln_config_free(&cfg);
	return 0;
}

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return v;
}

/* Fails unless got equals the JSON text want; releases got. */
static void expect_json(const char *what, json_t *got, const char *want)
{
	json_t *w = parse(want);
	char *text = got ? json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS)
			 : NULL;
	int is_equal = got != NULL && json_equal(got, w);

	if (!is_equal)
		fail_msg("%s: got %s, wanted %s", what, text ? text : "NULL",
			 want);
	free(text);
	json_decref(w);
	json_decref(got);
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A template definition validated with the default config (owned). */
static json_t *definition(const char *body_text)
{
	json_t *body = parse(body_text), *detail = json_array(), *def;

	def = kiln_template_validate(body, &cfg, detail);
	if (json_array_size(detail) != 0) {
		char *d = json_dumps(detail, 0);

		fail_msg("invalid test template: %s", d);
	}
	assert_non_null(def);
	json_decref(detail);
	json_decref(body);
	return def;
}

/* prompt (string, required) and image (asset, required), an optional
 * steps with a default; one GENERATION step using all three. */
static const char *const PRODUCT =
	"{\"name\": \"Product shot\","
	" \"webhook_url\": \"https://hooks.example.test/tpl\","
	" \"inputs\": {"
	"  \"prompt\": {\"type\": \"string\", \"required\": true},"
	"  \"image\": {\"type\": \"asset\", \"required\": true},"
	"  \"steps\": {\"type\": \"integer\", \"default\": 30}},"
	" \"steps\": [{\"id\": \"generate\", \"task_type\": \"GENERATION\","
	"  \"config\": {\"prompt\": \"{{inputs.prompt}}\","
	"   \"image\": \"{{inputs.image}}\","
	"   \"caption\": \"{{inputs.prompt}} from {{ inputs.image }}\","
	"   \"num_steps\": \"{{inputs.steps}}\"}}]}";

/* A url input the assets fill, and an optional string without default
 * that the config uses. */
static const char *const BY_URL =
	"{\"name\": \"By url\","
	" \"inputs\": {"
	"  \"source\": {\"type\": \"url\", \"required\": true},"
	"  \"style\": {\"type\": \"string\"}},"
	" \"steps\": [{\"id\": \"g\", \"task_type\": \"GENERATION\","
	"  \"config\": {\"prompt\": \"{{inputs.style}}\","
	"   \"image_url\": \"{{inputs.source}}\"}}]}";

static json_t *batch(const char *extra)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "{\"id\": \"b-1\", \"tenant_id\": \"acme\","
		 " \"template_id\": \"tpl-1\", \"template_version\": 4,"
		 " \"asset_input\": \"image\","
		 " \"inputs\": {\"prompt\": \"a red dress\"}%s}",
		 extra ? extra : "");
	return parse(text);
}

/* ---- kiln_batch_default_asset_input ----------------------------------- */

static void test_default_asset_input(void **state)
{
	static const struct {
		const char *schema, *want; /* want NULL: none */
	} cases[] = {
		{"{\"prompt\": {\"type\": \"string\"}, \"image\": {\"type\":"
		 " \"asset\"}}",
		 "image"},
		/* The asset input wins over a url input. */
		{"{\"link\": {\"type\": \"url\"}, \"image\": {\"type\":"
		 " \"asset\"}, \"n\": {\"type\": \"integer\"}}",
		 "image"},
		{"{\"prompt\": {\"type\": \"string\"}, \"link\": {\"type\":"
		 " \"url\"}}",
		 "link"},
		{"{\"a\": {\"type\": \"asset\"}, \"b\": {\"type\": \"asset\"}}",
		 NULL},
		{"{\"a\": {\"type\": \"url\"}, \"b\": {\"type\": \"url\"}}",
		 NULL},
		{"{\"a\": {\"type\": \"url\"}, \"b\": {\"type\": \"url\"},"
		 " \"c\": {\"type\": \"asset\"}}",
		 "c"},
		{"{\"prompt\": {\"type\": \"string\"}, \"size\": {\"type\":"
		 " \"enum\", \"values\": [\"s\"]}}",
		 NULL},
		{"{}", NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *schema = parse(cases[i].schema);
		const char *got = kiln_batch_default_asset_input(schema);

		if (cases[i].want == NULL && got != NULL)
			fail_msg("%s: got %s, wanted none", cases[i].schema,
				 got);
		if (cases[i].want != NULL &&
		    (got == NULL || strcmp(got, cases[i].want) != 0))
			fail_msg("%s: got %s, wanted %s", cases[i].schema,
				 got ? got : "none", cases[i].want);
		json_decref(schema);
	}
}

/* ---- kiln_batch_asset_inputs ------------------------------------------ */

static void test_asset_inputs_asset_type(void **state)
{
	json_t *schema = parse("{\"prompt\": {\"type\": \"string\"},"
			       " \"image\": {\"type\": \"asset\"},"
			       " \"steps\": {\"type\": \"integer\"}}");
	json_t *shared = parse("{\"prompt\": \"shared\", \"steps\": 20}");
	json_t *copy = json_deep_copy(shared), *asset;

	(void)state;
	/* Shared only. */
	asset = parse("{\"asset_id\": \"sku-1\", \"url\": \"https://x/1.png\","
		      " \"inputs\": {}}");
	expect_json("shared only",
		    kiln_batch_asset_inputs(schema, "image", shared, asset),
		    "{\"prompt\": \"shared\", \"steps\": 20, \"image\":"
		    " {\"url\": \"https://x/1.png\","
		    " \"asset_id\": \"sku-1\"}}");
	json_decref(asset);

	/* The asset's inputs override, and add; the asset itself beats an
	 * override of its own input. */
	asset = parse("{\"asset_id\": \"sku-2\", \"url\": \"https://x/2.png\","
		      " \"inputs\": {\"prompt\": \"mine\", \"extra\": true,"
		      " \"image\": \"https://elsewhere/z.png\"}}");
	expect_json("overrides",
		    kiln_batch_asset_inputs(schema, "image", shared, asset),
		    "{\"prompt\": \"mine\", \"steps\": 20, \"extra\": true,"
		    " \"image\": {\"url\": \"https://x/2.png\", \"asset_id\":"
		    " \"sku-2\"}}");
	json_decref(asset);

	/* Without an asset_id (absent or null): just the url. */
	asset = parse("{\"url\": \"s3://bucket/3.png\"}");
	expect_json("no asset_id",
		    kiln_batch_asset_inputs(schema, "image", shared, asset),
		    "{\"prompt\": \"shared\", \"steps\": 20, \"image\":"
		    " {\"url\": \"s3://bucket/3.png\"}}");
	json_decref(asset);
	asset = parse("{\"url\": \"s3://bucket/3.png\", \"asset_id\": null,"
		      " \"inputs\": null}");
	expect_json("null asset_id",
		    kiln_batch_asset_inputs(schema, "image", shared, asset),
		    "{\"prompt\": \"shared\", \"steps\": 20, \"image\":"
		    " {\"url\": \"s3://bucket/3.png\"}}");
	json_decref(asset);

	/* No shared inputs. */
	asset = parse("{\"asset_id\": \"a\", \"url\": \"https://x/4.png\","
		      " \"inputs\": {\"steps\": 1}}");
	expect_json("no shared",
		    kiln_batch_asset_inputs(schema, "image", NULL, asset),
		    "{\"steps\": 1, \"image\": {\"url\": \"https://x/4.png\","
		    " \"asset_id\": \"a\"}}");
	json_decref(asset);

	/* The shared inputs are not changed. */
	assert_true(json_equal(shared, copy));
	json_decref(copy);
	json_decref(shared);
	json_decref(schema);
}

static void test_asset_inputs_url_type(void **state)
{
	json_t *schema = parse("{\"style\": {\"type\": \"string\"},"
			       " \"source\": {\"type\": \"url\"}}");
	json_t *shared = parse("{\"style\": \"noir\"}");
	json_t *asset = parse("{\"asset_id\": \"sku-9\", \"url\":"
			      " \"https://x/9.png\", \"inputs\":"
			      " {\"source\": \"https://no/\"}}");

	(void)state;
	/* A url input takes the url string; the asset_id goes nowhere. */
	expect_json("url input",
		    kiln_batch_asset_inputs(schema, "source", shared, asset),
		    "{\"style\": \"noir\", \"source\": \"https://x/9.png\"}");
	/* An input the schema does not know is filled the same way. */
	expect_json("unknown input",
		    kiln_batch_asset_inputs(schema, "other", shared, asset),
		    "{\"style\": \"noir\", \"source\": \"https://no/\","
		    " \"other\": \"https://x/9.png\"}");
	json_decref(asset);
	json_decref(shared);
	json_decref(schema);
}

/* ---- kiln_batch_workflow ---------------------------------------------- */

static void test_workflow_built(void **state)
{
	struct kiln_err err = {0};
	json_t *def = definition(PRODUCT), *b = batch(NULL);
	json_t *asset = parse("{\"asset_id\": \"sku-1\", \"url\":"
			      " \"https://cdn.test/1.png\", \"inputs\": {}}");
	json_t *wf = kiln_batch_workflow(&cfg, def, b, asset, &err);
	json_t *step;

	(void)state;
	assert_non_null(wf);
	assert_null(json_object_get(wf, "id"));
	assert_null(json_object_get(wf, "status"));
	assert_string_equal(str(wf, "template_id"), "tpl-1");
	assert_int_equal(json_integer_value(json_object_get(
				 wf, "template_version")),
			 4);
	assert_string_equal(str(wf, "batch_id"), "b-1");
	/* The template's webhook_url is not used: the batch reports. */
	assert_true(json_is_null(json_object_get(wf, "webhook_url")));
	assert_string_equal(str(wf, "origin_instance"),
			    KILN_BATCH_ORIGIN_INSTANCE);
	assert_string_equal(str(wf, "origin_instance"), "batch");
	assert_string_equal(str(wf, "origin_tenant_id"), "acme");
	assert_string_equal(str(wf, "name"), "Product shot");
	expect_json("run_inputs",
		    json_incref(json_object_get(wf, "run_inputs")),
		    "{\"prompt\": \"a red dress\", \"image\": {\"url\":"
		    " \"https://cdn.test/1.png\", \"asset_id\": \"sku-1\"},"
		    " \"steps\": 30}");
	/* Validated: one step with its provider, uuid and final step. */
	assert_int_equal(json_array_size(json_object_get(wf, "steps")), 1);
	step = json_array_get(json_object_get(wf, "steps"), 0);
	assert_string_equal(str(step, "id"), "generate");
	assert_true(json_is_string(json_object_get(step, "uuid")));
	assert_true(json_is_string(json_object_get(step, "provider")));
	assert_string_equal(str(wf, "final_step_id"), "generate");
	expect_json("config", json_incref(json_object_get(step, "config")),
		    "{\"prompt\": \"a red dress\", \"image\": {\"url\":"
		    " \"https://cdn.test/1.png\", \"asset_id\": \"sku-1\"},"
		    " \"caption\": \"a red dress from https://cdn.test/1.png\","
		    " \"num_steps\": 30}");
	json_decref(wf);
	json_decref(asset);
	json_decref(b);
	json_decref(def);
}

/* Per-asset overrides reach the step config; the batch's origin fields
 * and name are the workflow's. */
static void test_workflow_overrides_and_origin(void **state)
{
	struct kiln_err err = {0};
	json_t *def = definition(PRODUCT);
	json_t *b = batch(", \"origin_instance\": \"shop-eu\","
			  " \"origin_zone\": \"eu-1\","
			  " \"origin_reference\": \"order-7\","
			  " \"name\": \"Spring catalogue\"");
	json_t *asset = parse("{\"asset_id\": \"sku-2\", \"url\":"
			      " \"https://cdn.test/2.png\", \"inputs\":"
			      " {\"prompt\": \"a blue coat\", \"steps\": 12}}");
	json_t *wf = kiln_batch_workflow(&cfg, def, b, asset, &err), *config;

	(void)state;
	assert_non_null(wf);
	assert_string_equal(str(wf, "origin_instance"), "shop-eu");
	assert_string_equal(str(wf, "origin_zone"), "eu-1");
	assert_string_equal(str(wf, "origin_reference"), "order-7");
	assert_string_equal(str(wf, "name"), "Spring catalogue");
	assert_string_equal(str(wf, "origin_tenant_id"), "acme");
	config = json_object_get(json_array_get(json_object_get(wf, "steps"),
						0),
				 "config");
	assert_string_equal(str(config, "prompt"), "a blue coat");
	assert_int_equal(json_integer_value(json_object_get(config,
							    "num_steps")),
			 12);
	assert_string_equal(str(json_object_get(wf, "run_inputs"), "prompt"),
			    "a blue coat");
	json_decref(wf);
	json_decref(asset);
	json_decref(b);

	/* Origin fields that are null fall back; no tenant: null. */
	b = parse("{\"id\": \"b-2\", \"tenant_id\": null, \"template_id\":"
		  " \"tpl-1\", \"template_version\": 1, \"asset_input\":"
		  " \"image\", \"inputs\": {\"prompt\": \"p\"},"
		  " \"origin_instance\": null, \"origin_zone\": null,"
		  " \"origin_reference\": null, \"name\": null}");
	asset = parse("{\"asset_id\": null,"
		      " \"url\": \"https://cdn.test/3.png\","
		      " \"inputs\": {}}");
	wf = kiln_batch_workflow(&cfg, def, b, asset, &err);
	assert_non_null(wf);
	assert_string_equal(str(wf, "origin_instance"), "batch");
	assert_true(json_is_null(json_object_get(wf, "origin_tenant_id")));
	assert_string_equal(str(wf, "name"), "Product shot");
	assert_string_equal(str(wf, "batch_id"), "b-2");
	expect_json("asset without id",
		    json_incref(json_object_get(json_object_get(wf,
								"run_inputs"),
						"image")),
		    "{\"url\": \"https://cdn.test/3.png\"}");
	json_decref(wf);
	json_decref(asset);
	json_decref(b);
	json_decref(def);
}

static void test_workflow_url_input(void **state)
{
	struct kiln_err err = {0};
	json_t *def = definition(BY_URL);
	json_t *b = parse("{\"id\": \"b-3\", \"tenant_id\": \"acme\","
			  " \"template_id\": \"tpl-u\","
			  " \"template_version\": 1,"
			  " \"asset_input\": \"source\","
			  " \"inputs\": {\"style\": \"noir\"}}");
	json_t *asset = parse("{\"asset_id\": \"x\", \"url\":"
			      " \"gs://bucket/o.png\", \"inputs\": {}}");
	json_t *wf = kiln_batch_workflow(&cfg, def, b, asset, &err);

	(void)state;
	assert_non_null(wf);
	expect_json("config",
		    json_incref(json_object_get(
			    json_array_get(json_object_get(wf, "steps"), 0),
			    "config")),
		    "{\"prompt\": \"noir\", \"image_url\":"
		    " \"gs://bucket/o.png\"}");
	expect_json("run_inputs",
		    json_incref(json_object_get(wf, "run_inputs")),
		    "{\"source\": \"gs://bucket/o.png\", \"style\": \"noir\"}");
	json_decref(wf);
	json_decref(asset);
	json_decref(b);
	json_decref(def);
}

/* An input of the wrong type: NULL, KILN_EINVAL, the input named. */
static void test_workflow_bad_override(void **state)
{
	struct kiln_err err = {0};
	json_t *def = definition(PRODUCT), *b = batch(NULL);
	json_t *asset = parse("{\"asset_id\": \"sku-1\", \"url\":"
			      " \"https://cdn.test/1.png\", \"inputs\":"
			      " {\"prompt\": 3}}");

	(void)state;
	assert_null(kiln_batch_workflow(&cfg, def, b, asset, &err));
	assert_int_equal(err.code, KILN_EINVAL);
	assert_string_equal(err.field, "inputs.prompt");
	assert_non_null(strstr(err.msg, "inputs.prompt"));
	assert_non_null(strstr(err.msg, "Input should be a valid string"));
	json_decref(asset);
	json_decref(b);
	json_decref(def);
}

/* Other faults: a required input nobody gives, an unknown override, an
 * asset url that is not one, a placeholder without a value. */
static void test_workflow_other_faults(void **state)
{
	static const struct {
		const char *tpl, *shared, *asset, *field, *msg_part;
	} cases[] = {
		{NULL, "{}",
		 "{\"url\": \"https://cdn.test/1.png\", \"inputs\": {}}",
		 "inputs.prompt", "Field required"},
		{NULL, "{\"prompt\": \"p\"}",
		 "{\"url\": \"https://cdn.test/1.png\", \"inputs\":"
		 " {\"colour\": \"red\"}}",
		 "inputs.colour", "inputs.colour"},
		{NULL, "{\"prompt\": \"p\"}",
		 "{\"url\": \"not a url\", \"inputs\": {}}", "inputs.image",
		 "inputs.image"},
		/* style has no value and no default, but the config uses
		 * it. */
		{"url", "{}",
		 "{\"url\": \"https://cdn.test/1.png\", \"inputs\": {}}",
		 "inputs", "style"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kiln_err err = {0};
		json_t *def = definition(cases[i].tpl ? BY_URL : PRODUCT);
		json_t *b = batch(NULL), *asset = parse(cases[i].asset);
		json_t *wf;

		json_object_set_new(b, "inputs", parse(cases[i].shared));
		if (cases[i].tpl)
			json_object_set_new(b, "asset_input",
					    json_string("source"));
		wf = kiln_batch_workflow(&cfg, def, b, asset, &err);
		if (wf != NULL)
			fail_msg("case %zu built a workflow", i);
		assert_int_equal(err.code, KILN_EINVAL);
		if (strncmp(err.field, cases[i].field,
			    strlen(cases[i].field)) != 0 ||
		    strstr(err.msg, cases[i].msg_part) == NULL)
			fail_msg("case %zu: field %s, msg %s", i, err.field,
				 err.msg);
		json_decref(asset);
		json_decref(b);
		json_decref(def);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_asset_input),
		cmocka_unit_test(test_asset_inputs_asset_type),
		cmocka_unit_test(test_asset_inputs_url_type),
		cmocka_unit_test(test_workflow_built),
		cmocka_unit_test(test_workflow_overrides_and_origin),
		cmocka_unit_test(test_workflow_url_input),
		cmocka_unit_test(test_workflow_bad_override),
		cmocka_unit_test(test_workflow_other_faults),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
