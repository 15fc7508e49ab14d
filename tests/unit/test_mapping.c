/*
 * test_mapping.c - table-driven tests of input mappings (src/mapping.c):
 * every transform, both ways it can go; field lookup and assignment by key
 * and by JSON Pointer; whole mappings, including the reference example;
 * and that results never share memory with their source.
 *
 * Values are written as JSON text and compared with json_equal, which
 * tells 3 from 3.0, so the tables also pin down result types.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/mapping.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

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
	char *text = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
	int is_equal = got != NULL && json_equal(got, w);

	if (!is_equal)
		fail_msg("%s: got %s, wanted %s", what, text ? text : "NULL",
			 want);
	free(text);
	json_decref(w);
	json_decref(got);
}

/* ------------------------------------------------------------------ */
/* Transforms                                                          */
/* ------------------------------------------------------------------ */

static void test_transform_names(void **state)
{
	static const char *const want[] = {
		"to_string", "to_int", "to_float", "to_bool", "first",
		"last", "to_list", "json_encode", "json_decode",
	};
	size_t i;

	for (i = 0; i < N(want); i++) {
		assert_string_equal(kiln_mapping_transforms[i], want[i]);
		assert_true(kiln_mapping_transform_is_known(want[i]));
	}
	assert_null(kiln_mapping_transforms[N(want)]);
	assert_false(kiln_mapping_transform_is_known("TO_INT"));
	assert_false(kiln_mapping_transform_is_known("to_upper"));
	assert_false(kiln_mapping_transform_is_known(""));
	assert_false(kiln_mapping_transform_is_known(NULL));
}

struct transform_case {
	const char *transform;
	const char *input; /* JSON text */
	const char *want;  /* JSON text, or NULL when it must fail */
	const char *msg;   /* the failure message (prefix when ends '*') */
};

static const struct transform_case transform_cases[] = {
	/* No transform: the value itself. */
	{NULL, "{\"a\":[1,2]}", "{\"a\":[1,2]}", NULL},
	{"", "\"x\"", "\"x\"", NULL},
	{"to_upper", "1", NULL, "unknown transform 'to_upper'"},

	{"to_string", "\"x\"", "\"x\"", NULL},
	{"to_string", "42", "\"42\"", NULL},
	{"to_string", "-7", "\"-7\"", NULL},
	{"to_string", "1.5", "\"1.5\"", NULL},
	{"to_string", "0.1", "\"0.1\"", NULL},
	{"to_string", "2.0", "\"2.0\"", NULL},
	{"to_string", "1e300", "\"1e+300\"", NULL},
	{"to_string", "true", "\"true\"", NULL},
	{"to_string", "false", "\"false\"", NULL},
	{"to_string", "null", "\"null\"", NULL},
	{"to_string", "{\"b\":[1,0.25,\"q\\\"\"],\"a\":{}}",
	 "\"{\\\"b\\\":[1,0.25,\\\"q\\\\\\\"\\\"],\\\"a\\\":{}}\"", NULL},

	{"to_int", "42", "42", NULL},
	{"to_int", "3.9", "3", NULL},
	{"to_int", "-3.9", "-3", NULL},
	{"to_int", "\"17\"", "17", NULL},
	{"to_int", "\" -17 \"", "-17", NULL},
	{"to_int", "\"+5\"", "5", NULL},
	{"to_int", "\"3.7\"", "3", NULL},
	{"to_int", "\"1e3\"", "1000", NULL},
	{"to_int", "\"-9223372036854775808\"", "-9223372036854775808", NULL},
	{"to_int", "\"abc\"", NULL,
	 "transform 'to_int' cannot convert a string 'abc' to an integer"},
	{"to_int", "\"\"", NULL,
	 "transform 'to_int' cannot convert a string '' to an integer"},
	{"to_int", "\"12abc\"", NULL, "transform 'to_int' cannot convert*"},
	{"to_int", "\"0x10\"", NULL, "transform 'to_int' cannot convert*"},
	{"to_int", "\"nan\"", NULL, "transform 'to_int' cannot convert*"},
	{"to_int", "\"inf\"", NULL, "transform 'to_int' cannot convert*"},
	{"to_int", "\"1e\"", NULL, "transform 'to_int' cannot convert*"},
	{"to_int", "\".\"", NULL, "transform 'to_int' cannot convert*"},
	{"to_int", "\"9223372036854775808\"", NULL,
	 "transform 'to_int' cannot convert a string '9223372036854775808'"
	 " to an integer"},
	{"to_int", "1e300", NULL,
	 "transform 'to_int' cannot convert the number 1e+300 to an integer"},
	{"to_int", "true", NULL,
	 "transform 'to_int' cannot convert the boolean true to an integer"},
	{"to_int", "null", NULL,
	 "transform 'to_int' cannot convert null to an integer"},
	{"to_int", "[1]", NULL,
	 "transform 'to_int' cannot convert an array to an integer"},

	{"to_float", "3", "3.0", NULL},
	{"to_float", "2.5", "2.5", NULL},
	{"to_float", "\"2.5\"", "2.5", NULL},
	{"to_float", "\"-1e-3\"", "-0.001", NULL},
	{"to_float", "\"7\"", "7.0", NULL},
	{"to_float", "\"abc\"", NULL,
	 "transform 'to_float' cannot convert a string 'abc' to a number"},
	{"to_float", "\"1e999\"", NULL,
	 "transform 'to_float' cannot convert a string '1e999' to a number"},
	{"to_float", "{}", NULL,
	 "transform 'to_float' cannot convert an object to a number"},

	{"to_bool", "true", "true", NULL},
	{"to_bool", "false", "false", NULL},
	{"to_bool", "0", "false", NULL},
	{"to_bool", "5", "true", NULL},
	{"to_bool", "0.0", "false", NULL},
	{"to_bool", "0.5", "true", NULL},
	{"to_bool", "\"true\"", "true", NULL},
	{"to_bool", "\"True\"", "true", NULL},
	{"to_bool", "\"false\"", "false", NULL},
	{"to_bool", "\"1\"", "true", NULL},
	{"to_bool", "\"0\"", "false", NULL},
	{"to_bool", "\"yes\"", NULL,
	 "transform 'to_bool' cannot convert a string 'yes' to a boolean"},
	{"to_bool", "null", NULL,
	 "transform 'to_bool' cannot convert null to a boolean"},

	{"first", "[1,2,3]", "1", NULL},
	{"first", "[{\"a\":1}]", "{\"a\":1}", NULL},
	{"first", "[]", NULL, "transform 'first' needs a non-empty array"},
	{"first", "{\"a\":1}", NULL,
	 "transform 'first' needs an array, got object"},
	{"first", "\"abc\"", NULL,
	 "transform 'first' needs an array, got string"},

	{"last", "[1,2,3]", "3", NULL},
	{"last", "[[1],[2]]", "[2]", NULL},
	{"last", "[]", NULL, "transform 'last' needs a non-empty array"},
	{"last", "5", NULL, "transform 'last' needs an array, got number"},
	{"last", "null", NULL, "transform 'last' needs an array, got null"},

	{"to_list", "5", "[5]", NULL},
	{"to_list", "[1,2]", "[1,2]", NULL},
	{"to_list", "{\"a\":1}", "[{\"a\":1}]", NULL},
	{"to_list", "null", "[null]", NULL},

	{"json_encode", "{\"a\":1,\"b\":[true,null,\"x\\\"y\"]}",
	 "\"{\\\"a\\\":1,\\\"b\\\":[true,null,\\\"x\\\\\\\"y\\\"]}\"", NULL},
	{"json_encode", "\"s\"", "\"\\\"s\\\"\"", NULL},
	{"json_encode", "0.1", "\"0.1\"", NULL},
	{"json_encode", "3", "\"3\"", NULL},
	{"json_encode", "\"tab\\there\\u0001\"",
	 "\"\\\"tab\\\\there\\\\u0001\\\"\"", NULL},
	{"json_encode", "\"caf\\u00e9\"", "\"\\\"caf\\u00e9\\\"\"", NULL},

	{"json_decode", "\"{\\\"a\\\":1}\"", "{\"a\":1}", NULL},
	{"json_decode", "\"[1,2]\"", "[1,2]", NULL},
	{"json_decode", "\"42\"", "42", NULL},
	{"json_decode", "\"\\\"x\\\"\"", "\"x\"", NULL},
	{"json_decode", "\"null\"", "null", NULL},
	{"json_decode", "\"{bad\"", NULL,
	 "transform 'json_decode' cannot parse a string '{bad' as JSON: *"},
	{"json_decode", "5", NULL,
	 "transform 'json_decode' needs a string, got number"},
};

static void check_msg(const char *what, const char *got, const char *want)
{
	size_t len = strlen(want);

	if (len > 0 && want[len - 1] == '*') {
		if (strncmp(got, want, len - 1) != 0)
			fail_msg("%s: message \"%s\", wanted \"%s\"", what,
				 got, want);
	} else if (strcmp(got, want) != 0) {
		fail_msg("%s: message \"%s\", wanted \"%s\"", what, got,
			 want);
	}
}

static void test_transform_table(void **state)
{
	size_t i;

	for (i = 0; i < N(transform_cases); i++) {
		const struct transform_case *c = &transform_cases[i];
		struct kiln_err err = {KILN_OK, "", ""};
		json_t *in = parse(c->input);
		json_t *out = kiln_mapping_transform(c->transform, in, &err);
		char what[128];

		snprintf(what, sizeof(what), "%s(%s)",
			 c->transform ? c->transform : "NULL", c->input);
		if (c->want != NULL) {
			if (out == NULL)
				fail_msg("%s failed: %s", what, err.msg);
			/* true, false and null are jansson singletons. */
			if (!json_is_boolean(out) && !json_is_null(out))
				assert_ptr_not_equal(out, in);
			expect_json(what, out, c->want);
		} else {
			if (out != NULL)
				fail_msg("%s did not fail", what);
			assert_int_equal(err.code, KILN_EINVAL);
			check_msg(what, err.msg, c->msg);
		}
		json_decref(in);
	}
}

/* Results are copies: changing one leaves the source alone, and back. */
static void test_transform_copies(void **state)
{
	static const char *const transforms[] = {NULL, "first", "last",
						  "to_list"};
	size_t i;

	for (i = 0; i < N(transforms); i++) {
		json_t *in = parse("[{\"k\":[1]}]");
		json_t *out = kiln_mapping_transform(transforms[i], in, NULL);
		json_t *obj;

		assert_non_null(out);
		obj = json_is_array(out) ? json_array_get(out, 0) : out;
		json_array_append_new(json_object_get(obj, "k"),
				      json_integer(2));
		expect_json("source after changing the result",
			    json_incref(in), "[{\"k\":[1]}]");
		json_object_set_new(json_array_get(in, 0), "k", json_null());
		assert_int_equal(json_array_size(json_object_get(obj, "k")),
				 2);
		json_decref(out);
		json_decref(in);
	}
}

/* Object keys keep their order in the encoded text. */
static void test_json_encode_key_order(void **state)
{
	json_t *in = json_object();
	json_t *out;
	const char *keys[] = {"zeta", "alpha", "mid", "beta"};
	size_t i;

	for (i = 0; i < N(keys); i++)
		json_object_set_new(in, keys[i], json_integer((json_int_t)i));
	out = kiln_mapping_transform("json_encode", in, NULL);
	assert_non_null(out);
	assert_string_equal(json_string_value(out),
			    "{\"zeta\":0,\"alpha\":1,\"mid\":2,\"beta\":3}");
	json_decref(out);
	json_decref(in);
}

/* ------------------------------------------------------------------ */
/* Fields and JSON Pointers                                            */
/* ------------------------------------------------------------------ */

static const char get_doc[] =
	"{\"a\":{\"b\":[10,{\"c\":\"x\"}]},\"m~n\":1,\"s/t\":2,\"\":3,"
	"\"arr\":[0,1],\"a/b\":4,\"n\":null}";

struct get_case {
	const char *field;
	const char *want; /* JSON text, or NULL for absent */
};

static const struct get_case get_cases[] = {
	{"a", "{\"b\":[10,{\"c\":\"x\"}]}"},
	{"a/b", "4"},     /* no leading '/': a plain key */
	{"s/t", "2"},
	{"n", "null"},    /* present, and null */
	{"zz", NULL},
	{"/a/b/0", "10"},
	{"/a/b/1/c", "\"x\""},
	{"/a/b", "[10,{\"c\":\"x\"}]"},
	{"/m~0n", "1"},
	{"/s~1t", "2"},
	{"/", "3"},       /* the key "" */
	{"/arr/1", "1"},
	{"/a/b/2", NULL}, /* past the end */
	{"/a/b/-", NULL}, /* "-" names no element */
	{"/a/b/01", NULL},/* leading zero */
	{"/a/b/x", NULL},
	{"/a/b/-1", NULL},
	{"/a/b/0/z", NULL},/* into a number */
	{"/zz", NULL},
	{"/zz/a", NULL},
	{"/m~2n", NULL},  /* bad escape */
	{"/a~", NULL},
	{"/a/", NULL},    /* key "" in a */
};

static void test_field_get_table(void **state)
{
	json_t *doc = parse(get_doc);
	size_t i;

	for (i = 0; i < N(get_cases); i++) {
		json_t *got = kiln_json_field_get(doc, get_cases[i].field);

		if (get_cases[i].want == NULL) {
			if (got != NULL)
				fail_msg("get %s: found something",
					 get_cases[i].field);
			continue;
		}
		if (got == NULL)
			fail_msg("get %s: not found", get_cases[i].field);
		expect_json(get_cases[i].field, json_incref(got),
			    get_cases[i].want);
	}
	/* Borrowed: the very node inside the document. */
	assert_ptr_equal(kiln_json_field_get(doc, "/a/b/1"),
			 json_array_get(json_object_get(
					 json_object_get(doc, "a"), "b"), 1));
	assert_null(kiln_json_field_get(NULL, "a"));
	assert_null(kiln_json_field_get(doc, NULL));
	json_decref(doc);
}

static void test_field_get_array_root(void **state)
{
	json_t *doc = parse("[[5,6]]");

	expect_json("/0/1", json_incref(kiln_json_field_get(doc, "/0/1")),
		    "6");
	assert_null(kiln_json_field_get(doc, "0"));
	json_decref(doc);
}

struct set_case {
	const char *start; /* JSON text of the root */
	const char *field;
	const char *value; /* JSON text */
	const char *want;  /* the root afterwards, or NULL if it must fail */
	const char *msg;   /* the failure message */
};

static const struct set_case set_cases[] = {
	{"{}", "x", "1", "{\"x\":1}", NULL},
	{"{\"x\":1}", "x", "2", "{\"x\":2}", NULL},
	{"{}", "a/b", "1", "{\"a/b\":1}", NULL},
	{"{}", "/a", "1", "{\"a\":1}", NULL},
	{"{}", "/a/b/c", "2", "{\"a\":{\"b\":{\"c\":2}}}", NULL},
	{"{\"a\":{\"keep\":1}}", "/a/new", "2",
	 "{\"a\":{\"keep\":1,\"new\":2}}", NULL},
	{"{}", "/m~0n", "1", "{\"m~n\":1}", NULL},
	{"{}", "/s~1t/~01", "1", "{\"s/t\":{\"~1\":1}}", NULL},
	{"{}", "/", "1", "{\"\":1}", NULL},
	{"{\"arr\":[1,2]}", "/arr/0", "9", "{\"arr\":[9,2]}", NULL},
	{"{\"arr\":[1,2]}", "/arr/2", "3", "{\"arr\":[1,2,3]}", NULL},
	{"{\"arr\":[1,2]}", "/arr/-", "4", "{\"arr\":[1,2,4]}", NULL},
	{"{\"arr\":[{}]}", "/arr/0/k", "1", "{\"arr\":[{\"k\":1}]}", NULL},
	{"{\"arr\":[]}", "/arr/-/k", "1", "{\"arr\":[{\"k\":1}]}", NULL},
	{"{\"arr\":[]}", "/arr/0/k", "1", "{\"arr\":[{\"k\":1}]}", NULL},
	{"{\"o\":{\"0\":1}}", "/o/0", "2", "{\"o\":{\"0\":2}}", NULL},
	{"{\"arr\":[1,2]}", "/arr/9", "1", NULL,
	 "cannot set '/arr/9': index 9 is past the end of '/arr'"
	 " (2 elements)"},
	{"{\"arr\":[1,2]}", "/arr/x", "1", NULL,
	 "cannot set '/arr/x': '/arr' is an array and 'x' is not an array"
	 " index"},
	{"{\"arr\":[1,2]}", "/arr/01", "1", NULL,
	 "cannot set '/arr/01': '/arr' is an array and '01' is not an array"
	 " index"},
	{"{\"arr\":[1,2]}", "/arr/5/k", "1", NULL,
	 "cannot set '/arr/5/k': index 5 is past the end of '/arr'"
	 " (2 elements)"},
	{"{\"s\":\"str\"}", "/s/x", "1", NULL,
	 "cannot set '/s/x': '/s' is a string, not an object or array"},
	{"{\"s\":{\"n\":5}}", "/s/n/x/y", "1", NULL,
	 "cannot set '/s/n/x/y': '/s/n' is a number, not an object or array"},
	{"{\"s\":null}", "/s/x", "1", NULL,
	 "cannot set '/s/x': '/s' is null, not an object or array"},
	{"{}", "/a~2/b", "1", NULL,
	 "cannot set '/a~2/b': '~' must be followed by '0' or '1'"},
	{"[]", "/0", "1", NULL,
	 "cannot set '/0': no value or no object"},
};

static void test_field_set_table(void **state)
{
	size_t i;

	for (i = 0; i < N(set_cases); i++) {
		const struct set_case *c = &set_cases[i];
		struct kiln_err err = {KILN_OK, "", ""};
		json_t *root = parse(c->start);
		enum kiln_rc rc;

		/* Steals the value either way: ASan sees any leak. */
		rc = kiln_json_field_set(root, c->field, parse(c->value),
					 &err);
		if (c->want != NULL) {
			if (rc != KILN_OK)
				fail_msg("set %s: %s", c->field, err.msg);
			expect_json(c->field, json_incref(root), c->want);
		} else {
			if (rc == KILN_OK)
				fail_msg("set %s did not fail", c->field);
			assert_int_equal(rc, KILN_EINVAL);
			assert_int_equal(err.code, KILN_EINVAL);
			assert_string_equal(err.field, c->field);
			check_msg(c->field, err.msg, c->msg);
			/* A failed set leaves the root as it was. */
			expect_json(c->field, json_incref(root), c->start);
		}
		json_decref(root);
	}
}

static void test_field_set_null_value(void **state)
{
	struct kiln_err err = {KILN_OK, "", ""};
	json_t *root = json_object();

	assert_int_equal(kiln_json_field_set(root, "x", NULL, &err),
			 KILN_EINVAL);
	assert_int_equal(kiln_json_field_set(NULL, "x", json_true(), &err),
			 KILN_EINVAL);
	assert_int_equal(kiln_json_field_set(root, NULL, json_true(), NULL),
			 KILN_EINVAL);
	assert_int_equal(json_object_size(root), 0);
	json_decref(root);
}

/* ------------------------------------------------------------------ */
/* Mappings                                                            */
/* ------------------------------------------------------------------ */

static const char dryrun_result[] =
	"{\"dry_run\":true,\"provider\":\"dryrun\",\"task_type\":"
	"\"GENERATION\",\"result_image_path\":\"dryrun://wf/generate.png\","
	"\"seed\":7,\"prompt\":\"abc\",\"images\":[{\"url\":\"u0\"},"
	"{\"url\":\"u1\"}],\"meta\":{\"tags\":[\"a\"]}}";

struct apply_case {
	const char *name;
	const char *mapping; /* JSON text */
	const char *input;   /* JSON text of the input before */
	const char *want;    /* the input after, or NULL if it must fail */
	const char *field;   /* err->field on failure */
	const char *msg;     /* err->msg on failure */
};

static const struct apply_case apply_cases[] = {
	{"reference example",
	 "{\"from_step\":\"generate\",\"from_field\":\"result_image_path\","
	 "\"to_field\":\"base_image_url\",\"transform\":null}",
	 "{\"prompt\":\"x\"}",
	 "{\"prompt\":\"x\",\"base_image_url\":\"dryrun://wf/generate.png\"}",
	 NULL, NULL},
	{"no transform key",
	 "{\"from_step\":\"generate\",\"from_field\":\"result_image_path\","
	 "\"to_field\":\"base_image_url\"}",
	 "{\"base_image_url\":\"old\"}",
	 "{\"base_image_url\":\"dryrun://wf/generate.png\"}", NULL, NULL},
	{"transform",
	 "{\"from_step\":\"generate\",\"from_field\":\"seed\","
	 "\"to_field\":\"seed\",\"transform\":\"to_string\"}",
	 "{}", "{\"seed\":\"7\"}", NULL, NULL},
	{"pointers both ends",
	 "{\"from_step\":\"generate\",\"from_field\":\"/images/1/url\","
	 "\"to_field\":\"/image/url\",\"transform\":\"\"}",
	 "{\"image\":{\"w\":1}}", "{\"image\":{\"w\":1,\"url\":\"u1\"}}",
	 NULL, NULL},
	{"whole object",
	 "{\"from_step\":\"generate\",\"from_field\":\"meta\","
	 "\"to_field\":\"m\",\"transform\":null}",
	 "{}", "{\"m\":{\"tags\":[\"a\"]}}", NULL, NULL},
	{"missing field",
	 "{\"from_step\":\"generate\",\"from_field\":\"xyz\","
	 "\"to_field\":\"y\",\"transform\":null}",
	 "{\"keep\":1}", NULL, "xyz",
	 "input mapping: field 'xyz' not found in result of step 'generate'"},
	{"missing pointer",
	 "{\"from_step\":\"generate\",\"from_field\":\"/images/5/url\","
	 "\"to_field\":\"y\",\"transform\":null}",
	 "{}", NULL, "/images/5/url",
	 "input mapping: field '/images/5/url' not found in result of step"
	 " 'generate'"},
	{"transform fails",
	 "{\"from_step\":\"generate\",\"from_field\":\"prompt\","
	 "\"to_field\":\"steps\",\"transform\":\"to_int\"}",
	 "{}", NULL, "steps",
	 "input mapping to 'steps': transform 'to_int' cannot convert a"
	 " string 'abc' to an integer"},
	{"target cannot be set",
	 "{\"from_step\":\"generate\",\"from_field\":\"seed\","
	 "\"to_field\":\"/p/q\",\"transform\":null}",
	 "{\"p\":\"str\"}", NULL, "/p/q",
	 "input mapping to '/p/q': cannot set '/p/q': '/p' is a string, not"
	 " an object or array"},
	{"malformed mapping",
	 "{\"from_step\":\"generate\",\"from_field\":\"seed\"}",
	 "{}", NULL, "",
	 "input mapping needs from_step, from_field and to_field as strings"},
	{"transform of the wrong type",
	 "{\"from_step\":\"generate\",\"from_field\":\"seed\","
	 "\"to_field\":\"s\",\"transform\":5}",
	 "{}", NULL, "transform",
	 "input mapping: transform must be a string or null"},
};

static void test_apply_table(void **state)
{
	json_t *source = parse(dryrun_result);
	size_t i;

	for (i = 0; i < N(apply_cases); i++) {
		const struct apply_case *c = &apply_cases[i];
		struct kiln_err err = {KILN_OK, "", ""};
		json_t *mapping = parse(c->mapping);
		json_t *input = parse(c->input);
		enum kiln_rc rc = kiln_mapping_apply(input, mapping, source,
						     &err);

		if (c->want != NULL) {
			if (rc != KILN_OK)
				fail_msg("%s: %s", c->name, err.msg);
			expect_json(c->name, json_incref(input), c->want);
		} else {
			if (rc != KILN_EINVAL)
				fail_msg("%s: rc %d", c->name, (int)rc);
			assert_int_equal(err.code, KILN_EINVAL);
			assert_string_equal(err.field, c->field);
			check_msg(c->name, err.msg, c->msg);
			expect_json(c->name, json_incref(input), c->input);
		}
		json_decref(mapping);
		json_decref(input);
	}
	expect_json("source unchanged", source, dryrun_result);
}

/* A step with no result yet reads as "not found". */
static void test_apply_no_source(void **state)
{
	struct kiln_err err = {KILN_OK, "", ""};
	json_t *mapping = parse("{\"from_step\":\"generate\",\"from_field\":"
				"\"result_image_path\",\"to_field\":\"u\"}");
	json_t *input = json_object();

	assert_int_equal(kiln_mapping_apply(input, mapping, NULL, &err),
			 KILN_EINVAL);
	assert_string_equal(err.field, "result_image_path");
	assert_string_equal(err.msg, "input mapping: field "
			    "'result_image_path' not found in result of step"
			    " 'generate'");
	json_decref(mapping);
	json_decref(input);
}

/* The mapped value is a copy: input and source evolve separately. */
static void test_apply_deep_copy(void **state)
{
	struct kiln_err err = {KILN_OK, "", ""};
	json_t *source = parse(dryrun_result);
	json_t *mapping = parse("{\"from_step\":\"generate\",\"from_field\":"
				"\"meta\",\"to_field\":\"copy\"}");
	json_t *input = json_object();
	json_t *copy;

	assert_int_equal(kiln_mapping_apply(input, mapping, source, &err),
			 KILN_OK);
	copy = json_object_get(input, "copy");
	assert_ptr_not_equal(copy, json_object_get(source, "meta"));
	json_array_append_new(json_object_get(copy, "tags"),
			      json_string("b"));
	expect_json("source meta", json_incref(json_object_get(source,
								"meta")),
		    "{\"tags\":[\"a\"]}");
	json_object_set_new(json_object_get(source, "meta"), "tags",
			    json_null());
	expect_json("input copy", json_incref(copy),
		    "{\"tags\":[\"a\",\"b\"]}");
	json_decref(mapping);
	json_decref(input);
	json_decref(source);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transform_names),
		cmocka_unit_test(test_transform_table),
		cmocka_unit_test(test_transform_copies),
		cmocka_unit_test(test_json_encode_key_order),
		cmocka_unit_test(test_field_get_table),
		cmocka_unit_test(test_field_get_array_root),
		cmocka_unit_test(test_field_set_table),
		cmocka_unit_test(test_field_set_null_value),
		cmocka_unit_test(test_apply_table),
		cmocka_unit_test(test_apply_no_source),
		cmocka_unit_test(test_apply_deep_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
