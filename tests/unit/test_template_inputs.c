/*
 * test_template_inputs.c - template input schemas, run inputs and
 * {{inputs.NAME}} placeholders (src/template_inputs.c): every schema rule
 * and value type from both sides, defaults, unknown and missing inputs,
 * several errors at once, substitution of whole and embedded placeholders
 * and the path named when one cannot be filled, and kiln_inputs_used.
 *
 * Values are written as JSON text and compared with json_equal, which
 * tells 3 from 3.0, so the tables also pin down result types.  Expected
 * errors are JSON too: [[type, loc], ...] or [[type, loc, msg], ...].
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/json_spec.h"
#include "kiln/template_inputs.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The longest name an input may have, and one character more. */
#define NAME64                                                           \
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
#define NAME65 NAME64 "m"

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

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

/* Fails unless detail holds exactly the errors in want (see above). */
static void expect_detail(const char *what, const json_t *detail,
			  const char *want)
{
	json_t *w = parse(want), *e, *item;
	char *text = json_dumps(detail, JSON_ENCODE_ANY);
	size_t i;

	if (json_array_size(detail) != json_array_size(w))
		fail_msg("%s: got %s, wanted %s", what, text, want);
	json_array_foreach(w, i, item) {
		e = json_array_get(detail, i);
		if (!json_equal(json_object_get(e, "type"),
				json_array_get(item, 0)) ||
		    !json_equal(json_object_get(e, "loc"),
				json_array_get(item, 1)) ||
		    (json_array_size(item) > 2 &&
		     !json_equal(json_object_get(e, "msg"),
				 json_array_get(item, 2))))
			fail_msg("%s: error %zu: got %s, wanted %s", what, i,
				 text, want);
	}
	free(text);
	json_decref(w);
}

/* A JSON string literal (with quotes) of n copies of c after prefix. */
static char *long_string(const char *prefix, char c, size_t n)
{
	size_t len = strlen(prefix);
	char *s = malloc(len + n + 3);

	assert_non_null(s);
	s[0] = '"';
	memcpy(s + 1, prefix, len);
	memset(s + 1 + len, c, n);
	memcpy(s + 1 + len + n, "\"", 2);
	return s;
}

/* ------------------------------------------------------------------ */
/* Schema                                                              */
/* ------------------------------------------------------------------ */

static const char *const good_schemas[] = {
	"{}",
	"{\"prompt\": {\"type\": \"string\", \"required\": true,"
	" \"description\": \"What to draw\"},"
	" \"steps\": {\"type\": \"integer\", \"default\": 30},"
	" \"scale\": {\"type\": \"number\", \"default\": 7.5},"
	" \"scale2\": {\"type\": \"number\", \"default\": 7},"
	" \"hd\": {\"type\": \"boolean\", \"required\": false,"
	" \"default\": false},"
	" \"callback\": {\"type\": \"url\", \"default\":"
	" \"https://example.com/cb\"},"
	" \"style\": {\"type\": \"enum\", \"values\": [\"anime\", \"photo\"],"
	" \"default\": \"photo\"},"
	" \"image\": {\"type\": \"asset\", \"default\": {\"url\":"
	" \"s3://bucket/a.png\", \"asset_id\": \"a1\"}},"
	" \"image2\": {\"type\": \"asset\", \"default\": \"gs://b/o\"},"
	" \"note\": {\"type\": \"string\", \"default\": \"\"}}",
	/* Name edges: one character, underscore first, 64 characters. */
	"{\"a\": {\"type\": \"string\"}, \"_x9\": {\"type\": \"string\"},"
	" \"A_b_C\": {\"type\": \"string\"},"
	" \"" NAME64 "\": {\"type\": \"string\"}}",
	NULL,
};

static void test_schema_valid(void **state)
{
	json_t *loc = json_pack("[ss]", "body", "inputs");
	size_t i;

	for (i = 0; good_schemas[i] != NULL; i++) {
		json_t *schema = parse(good_schemas[i]);
		json_t *detail = json_array();

		assert_int_equal(kiln_inputs_schema_check(detail, loc, schema),
				 0);
		expect_detail(good_schemas[i], detail, "[]");
		json_decref(detail);
		json_decref(schema);
	}
	json_decref(loc);
}

struct schema_case {
	const char *schema;
	const char *errors;
};

#define TYPES_MSG                                                          \
	"Input should be 'string', 'integer', 'number', 'boolean', 'url',"  \
	" 'enum' or 'asset'"
#define LOC "\"body\", \"inputs\""

static const struct schema_case schema_cases[] = {
	{"[]", "[[\"dict_type\", [" LOC "],"
	       " \"Input should be a valid dictionary\"]]"},
	{"null", "[[\"dict_type\", [" LOC "]]]"},
	{"{\"a\": \"string\"}",
	 "[[\"dict_type\", [" LOC ", \"a\"],"
	 " \"Input should be a valid dictionary\"]]"},
	/* Names. */
	{"{\"1a\": {\"type\": \"string\"}}",
	 "[[\"string_pattern_mismatch\", [" LOC ", \"1a\"],"
	 " \"String should match pattern"
	 " '^[A-Za-z_][A-Za-z0-9_]{0,63}$'\"]]"},
	{"{\"a-b\": {\"type\": \"string\"}}",
	 "[[\"string_pattern_mismatch\", [" LOC ", \"a-b\"]]]"},
	{"{\"\": {\"type\": \"string\"}}",
	 "[[\"string_pattern_mismatch\", [" LOC ", \"\"]]]"},
	{"{\"a b\": {\"type\": \"string\"}}",
	 "[[\"string_pattern_mismatch\", [" LOC ", \"a b\"]]]"},
	{"{\"\\u00e9\": {\"type\": \"string\"}}",
	 "[[\"string_pattern_mismatch\", [" LOC ", \"\\u00e9\"]]]"},
	{"{\"" NAME65 "\": {\"type\": \"string\"}}",
	 "[[\"string_pattern_mismatch\", [" LOC ", \"" NAME65 "\"]]]"},
	/* type */
	{"{\"a\": {}}",
	 "[[\"missing\", [" LOC ", \"a\", \"type\"], \"Field required\"]]"},
	{"{\"a\": {\"required\": true}}",
	 "[[\"missing\", [" LOC ", \"a\", \"type\"]]]"},
	{"{\"a\": {\"type\": \"float\"}}",
	 "[[\"enum\", [" LOC ", \"a\", \"type\"], \"" TYPES_MSG "\"]]"},
	{"{\"a\": {\"type\": \"String\"}}",
	 "[[\"enum\", [" LOC ", \"a\", \"type\"]]]"},
	{"{\"a\": {\"type\": 3}}", "[[\"enum\", [" LOC ", \"a\", \"type\"]]]"},
	/* required */
	{"{\"a\": {\"type\": \"string\", \"required\": \"yes\"}}",
	 "[[\"bool_type\", [" LOC ", \"a\", \"required\"],"
	 " \"Input should be a valid boolean\"]]"},
	{"{\"a\": {\"type\": \"string\", \"required\": 1}}",
	 "[[\"bool_type\", [" LOC ", \"a\", \"required\"]]]"},
	/* default: not with required, and valid for the type */
	{"{\"a\": {\"type\": \"string\", \"required\": true,"
	 " \"default\": \"x\"}}",
	 "[[\"value_error\", [" LOC ", \"a\", \"default\"],"
	 " \"Value error, a required input cannot have a default\"]]"},
	{"{\"a\": {\"type\": \"string\", \"default\": 3}}",
	 "[[\"string_type\", [" LOC ", \"a\", \"default\"],"
	 " \"Input should be a valid string\"]]"},
	{"{\"a\": {\"type\": \"string\", \"default\": null}}",
	 "[[\"string_type\", [" LOC ", \"a\", \"default\"]]]"},
	{"{\"a\": {\"type\": \"integer\", \"default\": 1.0}}",
	 "[[\"int_type\", [" LOC ", \"a\", \"default\"],"
	 " \"Input should be a valid integer\"]]"},
	{"{\"a\": {\"type\": \"number\", \"default\": \"1\"}}",
	 "[[\"float_type\", [" LOC ", \"a\", \"default\"],"
	 " \"Input should be a valid number\"]]"},
	{"{\"a\": {\"type\": \"boolean\", \"default\": 0}}",
	 "[[\"bool_type\", [" LOC ", \"a\", \"default\"]]]"},
	{"{\"a\": {\"type\": \"url\", \"default\": \"ftp://x/y\"}}",
	 "[[\"url_scheme\", [" LOC ", \"a\", \"default\"]]]"},
	{"{\"a\": {\"type\": \"enum\", \"values\": [\"x\", \"y\"],"
	 " \"default\": \"z\"}}",
	 "[[\"enum\", [" LOC ", \"a\", \"default\"],"
	 " \"Input should be 'x' or 'y'\"]]"},
	{"{\"a\": {\"type\": \"asset\", \"default\": {\"asset_id\": \"1\"}}}",
	 "[[\"missing\", [" LOC ", \"a\", \"default\", \"url\"]]]"},
	/* A default of an unknown type is not checked: one error is enough. */
	{"{\"a\": {\"type\": \"float\", \"default\": \"x\"}}",
	 "[[\"enum\", [" LOC ", \"a\", \"type\"]]]"},
	/* description */
	{"{\"a\": {\"type\": \"string\", \"description\": 5}}",
	 "[[\"string_type\", [" LOC ", \"a\", \"description\"]]]"},
	{"{\"a\": {\"type\": \"string\", \"description\": null}}",
	 "[[\"string_type\", [" LOC ", \"a\", \"description\"]]]"},
	/* values */
	{"{\"a\": {\"type\": \"enum\"}}",
	 "[[\"missing\", [" LOC ", \"a\", \"values\"], \"Field required\"]]"},
	{"{\"a\": {\"type\": \"enum\", \"values\": \"x\"}}",
	 "[[\"list_type\", [" LOC ", \"a\", \"values\"],"
	 " \"Input should be a valid list\"]]"},
	{"{\"a\": {\"type\": \"enum\", \"values\": []}}",
	 "[[\"too_short\", [" LOC ", \"a\", \"values\"], \"List should have"
	 " at least 1 item after validation, not 0\"]]"},
	{"{\"a\": {\"type\": \"enum\", \"values\": [\"x\", 1, null]}}",
	 "[[\"string_type\", [" LOC ", \"a\", \"values\", 1]],"
	 " [\"string_type\", [" LOC ", \"a\", \"values\", 2]]]"},
	{"{\"a\": {\"type\": \"enum\", \"values\": [\"x\", \"y\", \"x\"]}}",
	 "[[\"value_error\", [" LOC ", \"a\", \"values\", 2],"
	 " \"Value error, 'x' is listed more than once\"]]"},
	/* Bad values: the default cannot be judged, so it is not. */
	{"{\"a\": {\"type\": \"enum\", \"values\": [], \"default\": \"q\"}}",
	 "[[\"too_short\", [" LOC ", \"a\", \"values\"]]]"},
	{"{\"a\": {\"type\": \"enum\", \"values\": [\"x\", 1],"
	 " \"default\": \"y\"}}",
	 "[[\"string_type\", [" LOC ", \"a\", \"values\", 1]]]"},
	{"{\"a\": {\"type\": \"string\", \"values\": [\"x\"]}}",
	 "[[\"extra_forbidden\", [" LOC ", \"a\", \"values\"],"
	 " \"Extra inputs are not permitted\"]]"},
	/* Any other key. */
	{"{\"a\": {\"type\": \"string\", \"label\": \"A\"}}",
	 "[[\"extra_forbidden\", [" LOC ", \"a\", \"label\"],"
	 " \"Extra inputs are not permitted\"]]"},
	/* Several at once, across inputs, in schema order. */
	{"{\"ok\": {\"type\": \"integer\", \"default\": 2},"
	 " \"b-ad\": {\"type\": \"nope\", \"required\": \"x\", \"extra\": 1},"
	 " \"e\": {\"type\": \"enum\", \"values\": [\"v\", \"v\"],"
	 " \"default\": \"v\", \"required\": true},"
	 " \"n\": {\"type\": \"number\", \"default\": true,"
	 " \"description\": []}}",
	 "[[\"string_pattern_mismatch\", [" LOC ", \"b-ad\"]],"
	 " [\"extra_forbidden\", [" LOC ", \"b-ad\", \"extra\"]],"
	 " [\"enum\", [" LOC ", \"b-ad\", \"type\"]],"
	 " [\"bool_type\", [" LOC ", \"b-ad\", \"required\"]],"
	 " [\"value_error\", [" LOC ", \"e\", \"values\", 1]],"
	 " [\"value_error\", [" LOC ", \"e\", \"default\"]],"
	 " [\"string_type\", [" LOC ", \"n\", \"description\"]],"
	 " [\"float_type\", [" LOC ", \"n\", \"default\"]]]"},
};

static void test_schema_errors(void **state)
{
	json_t *loc = json_pack("[ss]", "body", "inputs");
	size_t i;

	for (i = 0; i < N(schema_cases); i++) {
		const struct schema_case *c = &schema_cases[i];
		json_t *schema = parse(c->schema);
		json_t *detail = json_array();
		size_t n = kiln_inputs_schema_check(detail, loc, schema);

		expect_detail(c->schema, detail, c->errors);
		assert_int_equal(n, json_array_size(detail));
		json_decref(detail);
		json_decref(schema);
	}
	json_decref(loc);
}

/* Errors are appended after what detail already holds, and counted. */
static void test_schema_appends(void **state)
{
	json_t *loc = json_pack("[s]", "inputs");
	json_t *detail =
		parse("[{\"type\": \"x\", \"loc\": [], \"msg\": \"m\"}]");
	json_t *schema = parse("{\"a\": {}, \"b\": {\"type\": \"url\","
			       " \"default\": 3}}");

	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 2);
	expect_detail("appended", detail,
		      "[[\"x\", []],"
		      " [\"missing\", [\"inputs\", \"a\", \"type\"]],"
		      " [\"url_type\", [\"inputs\", \"b\", \"default\"],"
		      " \"URL input should be a string or URL\"]]");
	json_decref(schema);
	json_decref(detail);
	json_decref(loc);
}

/* Counting limits: descriptions in characters, inputs and values in
 * items; each at the limit and one past it. */
static void test_schema_limits(void **state)
{
	json_t *loc = json_pack("[ss]", "body", "inputs");
	json_t *detail = json_array(), *schema, *values;
	char name[16], *text;
	size_t i;

	/* 1000 two-byte characters pass; 1001 one-byte ones do not. */
	text = malloc(2001);
	assert_non_null(text);
	for (i = 0; i < 1000; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2);
	text[2000] = '\0';
	schema = json_pack("{s{ssss}}", "a", "type", "string", "description",
			   text);
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 0);
	json_decref(schema);
	memset(text, 'd', 1001);
	text[1001] = '\0';
	schema = json_pack("{s{ssss}}", "a", "type", "string", "description",
			   text);
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 1);
	expect_detail("long description", detail,
		      "[[\"string_too_long\","
		      " [" LOC ", \"a\", \"description\"],"
		      " \"String should have at most 1000 characters\"]]");
	json_decref(schema);
	free(text);
	json_array_clear(detail);

	/* 100 inputs pass; 101 do not. */
	schema = json_object();
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "in%zu", i);
		json_object_set_new(schema, name,
				    json_pack("{ss}", "type", "boolean"));
	}
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 0);
	json_object_set_new(schema, "one_more",
			    json_pack("{ss}", "type", "boolean"));
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 1);
	expect_detail("101 inputs", detail,
		      "[[\"too_long\", [" LOC "], \"Dictionary should have at"
		      " most 100 items after validation, not 101\"]]");
	json_decref(schema);
	json_array_clear(detail);

	/* 100 enum values pass; 101 do not. */
	values = json_array();
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "v%zu", i);
		json_array_append_new(values, json_string(name));
	}
	schema = json_pack("{s{sssO}}", "e", "type", "enum", "values", values);
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 0);
	json_array_append_new(values, json_string("v100"));
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 1);
	expect_detail("101 values", detail,
		      "[[\"too_long\", [" LOC ", \"e\", \"values\"], \"List"
		      " should have at most 100 items after validation,"
		      " not 101\"]]");
	json_decref(schema);
	json_decref(values);
	json_decref(detail);
	json_decref(loc);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

struct value_case {
	const char *spec;  /* JSON of the spec of input "x" */
	const char *value; /* JSON of the value given */
	const char *type;  /* error type; NULL: valid */
	const char *msg;   /* NULL: not checked */
	const char *under; /* a key under "x" the error is at, or NULL */
};

#define S_STRING "{\"type\": \"string\"}"
#define S_INT "{\"type\": \"integer\"}"
#define S_NUMBER "{\"type\": \"number\"}"
#define S_BOOL "{\"type\": \"boolean\"}"
#define S_URL "{\"type\": \"url\"}"
#define S_ENUM2 "{\"type\": \"enum\", \"values\": [\"a\", \"b\"]}"
#define S_ENUM3 "{\"type\": \"enum\", \"values\": [\"a\", \"b\", \"c\"]}"
#define S_ENUM1 "{\"type\": \"enum\", \"values\": [\"only\"]}"
#define S_ASSET "{\"type\": \"asset\"}"
#define URL_MSG "Input should be a valid URL, "

static const struct value_case value_cases[] = {
	{S_STRING, "\"hello\"", NULL, NULL, NULL},
	{S_STRING, "\"\"", NULL, NULL, NULL},
	{S_STRING, "\"a\\u0000b\"", NULL, NULL, NULL},
	{S_STRING, "3", "string_type", "Input should be a valid string", NULL},
	{S_STRING, "null", "string_type", NULL, NULL},
	{S_STRING, "[\"a\"]", "string_type", NULL, NULL},

	{S_INT, "3", NULL, NULL, NULL},
	{S_INT, "-9223372036854775808", NULL, NULL, NULL},
	{S_INT, "1.0", "int_type", "Input should be a valid integer", NULL},
	{S_INT, "1.5", "int_type", NULL, NULL},
	{S_INT, "\"3\"", "int_type", NULL, NULL},
	{S_INT, "true", "int_type", NULL, NULL},

	{S_NUMBER, "3", NULL, NULL, NULL},
	{S_NUMBER, "-0.25", NULL, NULL, NULL},
	{S_NUMBER, "1e300", NULL, NULL, NULL},
	{S_NUMBER, "\"1.5\"", "float_type", "Input should be a valid number",
	 NULL},
	{S_NUMBER, "false", "float_type", NULL, NULL},

	{S_BOOL, "true", NULL, NULL, NULL},
	{S_BOOL, "false", NULL, NULL, NULL},
	{S_BOOL, "0", "bool_type", "Input should be a valid boolean", NULL},
	{S_BOOL, "\"true\"", "bool_type", NULL, NULL},
	{S_BOOL, "null", "bool_type", NULL, NULL},

	{S_URL, "\"http://example.com\"", NULL, NULL, NULL},
	{S_URL, "\"https://example.com/a/b?c=d#e\"", NULL, NULL, NULL},
	{S_URL, "\"HTTPS://Example.COM/x\"", NULL, NULL, NULL},
	{S_URL, "\"https://user:pw@example.com:8443/x\"", NULL, NULL, NULL},
	{S_URL, "\"http://[::1]:8080/\"", NULL, NULL, NULL},
	{S_URL, "\"s3://bucket/key/with/parts.png\"", NULL, NULL, NULL},
	{S_URL, "\"gs://bucket/object\"", NULL, NULL, NULL},
	{S_URL, "\"ftp://example.com/x\"", "url_scheme",
	 "URL scheme should be 'http', 'https', 's3' or 'gs'", NULL},
	{S_URL, "\"file:///etc/passwd\"", "url_scheme", NULL, NULL},
	{S_URL, "\"javascript://x\"", "url_scheme", NULL, NULL},
	{S_URL, "\"example.com/x\"", "url_parsing", URL_MSG "bad scheme",
	 NULL},
	{S_URL, "\"/relative/path\"", "url_parsing", NULL, NULL},
	{S_URL, "\"\"", "url_parsing", NULL, NULL},
	{S_URL, "\"http://\"", "url_parsing",
	 URL_MSG "no host part in the URL", NULL},
	{S_URL, "\"http:/example.com\"", "url_parsing",
	 URL_MSG "expected '//' after the scheme", NULL},
	{S_URL, "\"http:example.com\"", "url_parsing", NULL, NULL},
	{S_URL, "\"s3:///key\"", "url_parsing", URL_MSG "empty host", NULL},
	{S_URL, "\"https:///example.com\"", "url_parsing", NULL, NULL},
	{S_URL, "\"http://exa mple.com\"", "url_parsing", NULL, NULL},
	{S_URL, "\" http://example.com\"", "url_parsing", NULL, NULL},
	{S_URL, "\"http://example.com:99999/\"", "url_parsing", NULL, NULL},
	{S_URL, "\"http://example.com/\\u0000x\"", "url_parsing",
	 URL_MSG "it contains a NUL character", NULL},
	{S_URL, "3", "url_type", "URL input should be a string or URL", NULL},
	{S_URL, "{\"url\": \"http://example.com\"}", "url_type", NULL, NULL},

	{S_ENUM2, "\"a\"", NULL, NULL, NULL},
	{S_ENUM2, "\"b\"", NULL, NULL, NULL},
	{S_ENUM2, "\"c\"", "enum", "Input should be 'a' or 'b'", NULL},
	{S_ENUM2, "\"A\"", "enum", NULL, NULL},
	{S_ENUM2, "\"a \"", "enum", NULL, NULL},
	{S_ENUM2, "1", "enum", NULL, NULL},
	{S_ENUM2, "null", "enum", NULL, NULL},
	{S_ENUM3, "\"d\"", "enum", "Input should be 'a', 'b' or 'c'", NULL},
	{S_ENUM1, "\"only\"", NULL, NULL, NULL},
	{S_ENUM1, "\"other\"", "enum", "Input should be 'only'", NULL},

	{S_ASSET, "\"https://cdn.example.com/a.png\"", NULL, NULL, NULL},
	{S_ASSET, "{\"url\": \"s3://b/a.png\"}", NULL, NULL, NULL},
	{S_ASSET,
	 "{\"url\": \"s3://b/a.png\", \"asset_id\": \"a1\","
	 " \"mime_type\": \"image/png\", \"meta\": {\"w\": 5}}",
	 NULL, NULL, NULL},
	{S_ASSET, "\"not a url\"", "url_parsing", NULL, NULL},
	{S_ASSET, "\"ftp://x/y\"", "url_scheme", NULL, NULL},
	{S_ASSET, "{}", "missing", "Field required", "url"},
	{S_ASSET, "{\"asset_id\": \"a1\"}", "missing", NULL, "url"},
	{S_ASSET, "{\"url\": 3}", "url_type", NULL, "url"},
	{S_ASSET, "{\"url\": null}", "url_type", NULL, "url"},
	{S_ASSET, "{\"url\": \"ftp://x/y\"}", "url_scheme", NULL, "url"},
	{S_ASSET, "{\"url\": \"s3://\"}", "url_parsing", NULL, "url"},
	{S_ASSET, "3", "url_type",
	 "Input should be a URL or an object with a 'url' key", NULL},
	{S_ASSET, "[\"http://example.com\"]", "url_type", NULL, NULL},
	{S_ASSET, "null", "url_type", NULL, NULL},
};


/* Expected errors for one value_case at loc ["inputs", "x", ...at]. */
static char *case_errors(const struct value_case *c, const char *at)
{
	char *text;
	json_t *want;

	if (c->type == NULL)
		return strdup("[]");
	want = json_pack("[[s[sss*s*]s*]]", c->type, "inputs", "x", at,
			 c->under, c->msg);
	assert_non_null(want); /* without a message, [type, loc] only */
	text = json_dumps(want, JSON_COMPACT);
	json_decref(want);
	return text;
}

static void check_value_case(const struct value_case *c)
{
	char what[512], *want;
	json_t *loc = json_pack("[s]", "inputs");
	json_t *spec = parse(c->spec), *value = parse(c->value);
	json_t *schema = json_pack("{sO}", "x", spec);
	json_t *inputs = json_pack("{sO}", "x", value);
	json_t *detail = json_array(), *got;

	snprintf(what, sizeof(what), "%s given %s", c->spec, c->value);
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 0);

	got = kiln_inputs_resolve(detail, loc, schema, inputs);
	want = case_errors(c, NULL);
	expect_detail(what, detail, want);
	free(want);
	if (c->type == NULL) {
		assert_non_null(got);
		if (!json_equal(got, inputs))
			fail_msg("%s: not resolved to itself", what);
	} else {
		assert_null(got);
	}
	json_decref(got);

	/* The same value as a default: the same verdict, under "default". */
	json_array_clear(detail);
	json_object_set(spec, "default", value);
	json_object_set(schema, "x", spec);
	kiln_inputs_schema_check(detail, loc, schema);
	want = case_errors(c, "default");
	snprintf(what, sizeof(what), "%s default %s", c->spec, c->value);
	expect_detail(what, detail, want);
	free(want);

	json_decref(detail);
	json_decref(inputs);
	json_decref(schema);
	json_decref(value);
	json_decref(spec);
	json_decref(loc);
}

static void test_values(void **state)
{
	size_t i;

	for (i = 0; i < N(value_cases); i++)
		check_value_case(&value_cases[i]);
}

/* Byte limits: strings 100,000 bytes, URLs 2048, each side. */
static void test_value_limits(void **state)
{
	static const struct {
		const char *spec;
		const char *prefix;
		size_t n;
		const char *type;
		const char *msg;
	} cases[] = {
		{S_STRING, "", KILN_INPUTS_STRING_MAX, NULL, NULL},
		{S_STRING, "", KILN_INPUTS_STRING_MAX + 1, "string_too_long",
		 "String should have at most 100000 bytes"},
		{S_URL, "https://example.com/", KILN_INPUTS_URL_MAX - 20, NULL,
		 NULL},
		{S_URL, "https://example.com/", KILN_INPUTS_URL_MAX - 19,
		 "url_too_long", "URL should have at most 2048 bytes"},
		{S_ASSET, "https://example.com/", KILN_INPUTS_URL_MAX - 19,
		 "url_too_long", NULL},
	};
	size_t i;

	for (i = 0; i < N(cases); i++) {
		char *text = long_string(cases[i].prefix, 'a', cases[i].n);
		struct value_case c = {cases[i].spec, text, cases[i].type,
				       cases[i].msg, NULL};

		check_value_case(&c);
		free(text);
	}
}

/* A long enum list is cut in the middle, so the message stays bounded
 * and valid UTF-8 and the error is not lost. */
static void test_enum_message_bounded(void **state)
{
	json_t *loc = json_pack("[s]", "inputs"), *detail = json_array();
	json_t *values = json_array(), *schema, *inputs, *got;
	char value[256];
	const char *msg;
	size_t i;

	for (i = 0; i < 100; i++) {
		/* 70 two-byte characters, more than a quote keeps. */
		size_t k;

		for (k = 0; k < 70; k++)
			memcpy(value + 2 * k, "\xc3\xa9", 2);
		snprintf(value + 140, sizeof(value) - 140, "%zu", i);
		json_array_append_new(values, json_string(value));
	}
	json_array_append_new(values, json_string("last"));
	json_array_remove(values, 0);
	schema = json_pack("{s{sssO}}", "x", "type", "enum", "values",
			   values);
	inputs = json_pack("{ss}", "x", "nope");
	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 0);
	got = kiln_inputs_resolve(detail, loc, schema, inputs);
	assert_null(got);
	assert_int_equal(json_array_size(detail), 1);
	msg = json_string_value(
		json_object_get(json_array_get(detail, 0), "msg"));
	assert_non_null(msg);
	assert_true(strncmp(msg, "Input should be '\xc3\xa9", 19) == 0);
	assert_non_null(strstr(msg, ", ... or 'last'"));
	assert_true(strlen(msg) < 800);
	json_decref(inputs);
	json_decref(schema);
	json_decref(values);
	json_decref(detail);
	json_decref(loc);
}

/* ------------------------------------------------------------------ */
/* Resolving a run's inputs                                            */
/* ------------------------------------------------------------------ */

static const char *const run_schema =
	"{\"prompt\": {\"type\": \"string\", \"required\": true},"
	" \"steps\": {\"type\": \"integer\", \"default\": 30},"
	" \"style\": {\"type\": \"enum\", \"values\": [\"anime\", \"photo\"],"
	" \"default\": \"photo\"},"
	" \"image\": {\"type\": \"asset\", \"default\":"
	" {\"url\": \"s3://b/default.png\", \"asset_id\": \"d\"}},"
	" \"seed\": {\"type\": \"integer\"},"
	" \"hd\": {\"type\": \"boolean\", \"required\": true}}";

struct resolve_case {
	const char *inputs; /* NULL: no inputs at all */
	const char *want;   /* resolved JSON; NULL: errors */
	const char *errors;
};

static const struct resolve_case resolve_cases[] = {
	/* Defaults fill what was not given; "seed" has none and stays out. */
	{"{\"prompt\": \"a cat\", \"hd\": false}",
	 "{\"prompt\": \"a cat\", \"steps\": 30, \"style\": \"photo\","
	 " \"image\": {\"url\": \"s3://b/default.png\", \"asset_id\": \"d\"},"
	 " \"hd\": false}",
	 "[]"},
	/* Given values win over defaults. */
	{"{\"prompt\": \"\", \"hd\": true, \"steps\": 5, \"style\": \"anime\","
	 " \"image\": \"https://x.example/i.png\", \"seed\": -1}",
	 "{\"prompt\": \"\", \"steps\": 5, \"style\": \"anime\","
	 " \"image\": \"https://x.example/i.png\", \"seed\": -1,"
	 " \"hd\": true}",
	 "[]"},
	/* Required ones missing: every one of them reported. */
	{"{}", NULL,
	 "[[\"missing\", [\"body\", \"inputs\", \"prompt\"],"
	 " \"Field required\"],"
	 " [\"missing\", [\"body\", \"inputs\", \"hd\"]]]"},
	{NULL, NULL,
	 "[[\"missing\", [\"body\", \"inputs\", \"prompt\"]],"
	 " [\"missing\", [\"body\", \"inputs\", \"hd\"]]]"},
	/* Unknown inputs, alone and with other faults: declared inputs
	 * first, in schema order, then unknown ones in the order given. */
	{"{\"prompt\": \"p\", \"hd\": true, \"Prompt\": \"p\"}", NULL,
	 "[[\"extra_forbidden\", [\"body\", \"inputs\", \"Prompt\"],"
	 " \"Extra inputs are not permitted\"]]"},
	{"{\"zz\": 1, \"prompt\": 3, \"steps\": 2.5, \"style\": \"oil\","
	 " \"image\": {\"asset_id\": \"x\"}, \"seed\": \"7\", \"aa\": 2}",
	 NULL,
	 "[[\"string_type\", [\"body\", \"inputs\", \"prompt\"]],"
	 " [\"int_type\", [\"body\", \"inputs\", \"steps\"]],"
	 " [\"enum\", [\"body\", \"inputs\", \"style\"],"
	 " \"Input should be 'anime' or 'photo'\"],"
	 " [\"missing\", [\"body\", \"inputs\", \"image\", \"url\"]],"
	 " [\"int_type\", [\"body\", \"inputs\", \"seed\"]],"
	 " [\"missing\", [\"body\", \"inputs\", \"hd\"]],"
	 " [\"extra_forbidden\", [\"body\", \"inputs\", \"zz\"]],"
	 " [\"extra_forbidden\", [\"body\", \"inputs\", \"aa\"]]]"},
	/* An explicit null is a wrong value, not a missing one. */
	{"{\"prompt\": \"p\", \"hd\": true, \"steps\": null}", NULL,
	 "[[\"int_type\", [\"body\", \"inputs\", \"steps\"]]]"},
	/* Not an object at all. */
	{"[]", NULL,
	 "[[\"dict_type\", [\"body\", \"inputs\"],"
	 " \"Input should be a valid dictionary\"]]"},
	{"null", NULL, "[[\"dict_type\", [\"body\", \"inputs\"]]]"},
};

static void test_resolve(void **state)
{
	json_t *loc = json_pack("[ss]", "body", "inputs");
	json_t *schema = parse(run_schema);
	size_t i;

	for (i = 0; i < N(resolve_cases); i++) {
		const struct resolve_case *c = &resolve_cases[i];
		json_t *inputs = c->inputs ? parse(c->inputs) : NULL;
		json_t *detail = json_array();
		json_t *got = kiln_inputs_resolve(detail, loc, schema, inputs);
		const char *what = c->inputs ? c->inputs : "NULL";

		expect_detail(what, detail, c->errors);
		if (c->want != NULL)
			expect_json(what, got, c->want);
		else if (got != NULL)
			fail_msg("%s: resolved despite errors", what);
		json_decref(detail);
		json_decref(inputs);
	}
	json_decref(schema);
	json_decref(loc);
}

/* The result owns its values: changing it changes neither the schema's
 * defaults nor the inputs; and it keeps schema order. */
static void test_resolve_copies(void **state)
{
	json_t *loc = json_pack("[s]", "inputs"), *detail = json_array();
	json_t *schema = parse(run_schema);
	json_t *inputs = parse("{\"hd\": true, \"prompt\": \"p\","
			       " \"image\": {\"url\": \"gs://b/o\"}}");
	json_t *got = kiln_inputs_resolve(detail, loc, schema, inputs);
	json_t *spec_default = json_object_get(
		json_object_get(schema, "image"), "default");
	const char *key;
	const char *order[] = {"prompt", "steps", "style", "image", "hd"};
	json_t *v;
	size_t i = 0;

	assert_non_null(got);
	json_object_foreach(got, key, v)
		assert_string_equal(key, order[i++]);
	assert_int_equal(i, N(order));
	json_object_set_new(json_object_get(got, "image"), "url",
			    json_string("changed"));
	expect_json("input kept", json_incref(inputs),
		    "{\"hd\": true, \"prompt\": \"p\","
		    " \"image\": {\"url\": \"gs://b/o\"}}");
	json_decref(got);

	got = kiln_inputs_resolve(detail, loc, schema, NULL);
	assert_null(got); /* prompt and hd are required */
	json_array_clear(detail);
	json_object_del(schema, "prompt");
	json_object_del(schema, "hd");
	got = kiln_inputs_resolve(detail, loc, schema, NULL);
	assert_non_null(got);
	assert_true(json_object_get(got, "image") != spec_default);
	json_object_set_new(json_object_get(got, "image"), "url",
			    json_string("changed"));
	expect_json("default kept", json_incref(spec_default),
		    "{\"url\": \"s3://b/default.png\", \"asset_id\": \"d\"}");
	expect_json("defaults only", got,
		    "{\"steps\": 30, \"style\": \"photo\", \"image\":"
		    " {\"url\": \"changed\", \"asset_id\": \"d\"}}");
	assert_int_equal(json_array_size(detail), 0);
	json_decref(inputs);
	json_decref(schema);
	json_decref(detail);
	json_decref(loc);
}

/* An empty schema takes no inputs, and rejects every one given. */
static void test_resolve_empty_schema(void **state)
{
	json_t *loc = json_pack("[s]", "inputs"), *detail = json_array();
	json_t *schema = json_object(), *inputs = parse("{\"a\": 1}");

	expect_json("no inputs",
		    kiln_inputs_resolve(detail, loc, schema, NULL), "{}");
	assert_null(kiln_inputs_resolve(detail, loc, schema, inputs));
	expect_detail("unexpected", detail,
		      "[[\"extra_forbidden\", [\"inputs\", \"a\"]]]");
	json_decref(inputs);
	json_decref(schema);
	json_decref(detail);
	json_decref(loc);
}

/* ------------------------------------------------------------------ */
/* Substitution                                                        */
/* ------------------------------------------------------------------ */

static const char *const run_inputs =
	"{\"s\": \"a cat\", \"n\": 5, \"neg\": -12, \"r\": 0.1, \"r2\": 2.0,"
	" \"big\": 1e300, \"t\": true, \"f\": false,"
	" \"asset\": {\"url\": \"s3://b/a.png\", \"asset_id\": \"a1\"},"
	" \"asset_s\": \"https://cdn.example/x.png\","
	" \"empty\": \"\", \"nested\": \"{{inputs.s}}\","
	" \"nul\": \"a\\u0000b\", \"list\": [1, \"x\"]}";

struct subst_case {
	const char *value; /* JSON */
	const char *want;  /* JSON */
};

static const struct subst_case subst_cases[] = {
	/* A whole placeholder: the value itself, whatever its type. */
	{"\"{{inputs.s}}\"", "\"a cat\""},
	{"\"{{inputs.n}}\"", "5"},
	{"\"{{inputs.r}}\"", "0.1"},
	{"\"{{inputs.r2}}\"", "2.0"},
	{"\"{{inputs.t}}\"", "true"},
	{"\"{{inputs.f}}\"", "false"},
	{"\"{{inputs.asset}}\"",
	 "{\"url\": \"s3://b/a.png\", \"asset_id\": \"a1\"}"},
	{"\"{{inputs.asset_s}}\"", "\"https://cdn.example/x.png\""},
	{"\"{{inputs.list}}\"", "[1, \"x\"]"},
	{"\"{{inputs.empty}}\"", "\"\""},
	/* Spaces and tabs inside the braces. */
	{"\"{{ inputs.n }}\"", "5"},
	{"\"{{   inputs.n}}\"", "5"},
	{"\"{{inputs.n\\t}}\"", "5"},
	/* Inside a longer string: the input's text. */
	{"\"draw {{inputs.s}}, please\"", "\"draw a cat, please\""},
	{"\"steps={{inputs.n}}\"", "\"steps=5\""},
	{"\"{{inputs.neg}} degrees\"", "\"-12 degrees\""},
	{"\"r={{inputs.r}}\"", "\"r=0.1\""},
	{"\"r={{inputs.r2}}\"", "\"r=2.0\""},
	{"\"r={{inputs.big}}\"", "\"r=1e+300\""},
	{"\"hd={{inputs.t}}/{{inputs.f}}\"", "\"hd=true/false\""},
	{"\"see {{inputs.asset}}\"", "\"see s3://b/a.png\""},
	{"\"see {{ inputs.asset_s }}\"", "\"see https://cdn.example/x.png\""},
	{"\"l={{inputs.list}}\"", "\"l=[1,\\\"x\\\"]\""},
	{"\"[{{inputs.empty}}]\"", "\"[]\""},
	{"\" {{inputs.n}}\"", "\" 5\""},
	{"\"{{inputs.n}} \"", "\"5 \""},
	{"\"{{inputs.s}}{{inputs.n}}\"", "\"a cat5\""},
	{"\"{{inputs.n}}{{inputs.n}}{{ inputs.n }}\"", "\"555\""},
	{"\"{{{inputs.n}}}\"", "\"{5}\""},
	{"\"x{{inputs.nul}}y\"", "\"xa\\u0000by\""},
	/* Inserted text is not searched again. */
	{"\"{{inputs.nested}}\"", "\"{{inputs.s}}\""},
	{"\"say {{inputs.nested}}\"", "\"say {{inputs.s}}\""},
	/* Not placeholders: left exactly as they are. */
	{"\"{{input}}\"", "\"{{input}}\""},
	{"\"{{ input.n }}\"", "\"{{ input.n }}\""},
	{"\"{{inputs.}}\"", "\"{{inputs.}}\""},
	{"\"{{inputs.1n}}\"", "\"{{inputs.1n}}\""},
	{"\"{{inputs.n.url}}\"", "\"{{inputs.n.url}}\""},
	{"\"{{inputs .n}}\"", "\"{{inputs .n}}\""},
	{"\"{{Inputs.n}}\"", "\"{{Inputs.n}}\""},
	{"\"{inputs.n}\"", "\"{inputs.n}\""},
	{"\"{{inputs.n}\"", "\"{{inputs.n}\""},
	{"\"{{inputs.n\\n}}\"", "\"{{inputs.n\\n}}\""},
	{"\"{{steps.a.output}}\"", "\"{{steps.a.output}}\""},
	{"\"{{\"", "\"{{\""},
	{"\"\"", "\"\""},
	/* Non-strings are copied unchanged. */
	{"42", "42"},
	{"null", "null"},
	{"true", "true"},
	{"[]", "[]"},
	{"{}", "{}"},
	/* Nested objects and arrays; keys are never substituted. */
	{"{\"config\": {\"prompt\": \"a {{inputs.s}}\","
	 " \"n\": \"{{inputs.n}}\","
	 " \"{{inputs.s}}\": \"key\", \"fixed\": 7, \"off\": null,"
	 " \"list\": [\"{{inputs.t}}\", 3, false, [\"{{ inputs.asset }}\"],"
	 " {\"deep\": \"url={{inputs.asset}}\"}]}}",
	 "{\"config\": {\"prompt\": \"a a cat\", \"n\": 5,"
	 " \"{{inputs.s}}\": \"key\", \"fixed\": 7, \"off\": null,"
	 " \"list\": [true, 3, false, [{\"url\": \"s3://b/a.png\","
	 " \"asset_id\": \"a1\"}], {\"deep\": \"url=s3://b/a.png\"}]}}"},
};

static void test_substitute(void **state)
{
	json_t *inputs = parse(run_inputs);
	size_t i;

	for (i = 0; i < N(subst_cases); i++) {
		struct kiln_err err = {0};
		json_t *value = parse(subst_cases[i].value);
		json_t *got = kiln_inputs_substitute(value, inputs, "config",
						     &err);

		if (got == NULL)
			fail_msg("%s: %s", subst_cases[i].value, err.msg);
		assert_int_equal(err.code, KILN_OK);
		expect_json(subst_cases[i].value, got, subst_cases[i].want);
		json_decref(value);
	}
	json_decref(inputs);
}

/* The result shares nothing with the value or the inputs. */
static void test_substitute_copies(void **state)
{
	json_t *inputs = parse(run_inputs);
	json_t *value = parse("{\"a\": [\"{{inputs.asset}}\", {\"k\": 1}],"
			      " \"b\": \"plain\"}");
	json_t *got = kiln_inputs_substitute(value, inputs, "config", NULL);

	assert_non_null(got);
	assert_true(json_object_get(got, "a") != json_object_get(value, "a"));
	assert_true(json_array_get(json_object_get(got, "a"), 0) !=
		    json_object_get(inputs, "asset"));
	json_object_set_new(json_array_get(json_object_get(got, "a"), 0),
			    "url", json_string("changed"));
	json_object_set_new(json_array_get(json_object_get(got, "a"), 1),
			    "k", json_integer(2));
	expect_json("value kept", json_incref(value),
		    "{\"a\": [\"{{inputs.asset}}\", {\"k\": 1}],"
		    " \"b\": \"plain\"}");
	expect_json("input kept",
		    json_incref(json_object_get(inputs, "asset")),
		    "{\"url\": \"s3://b/a.png\", \"asset_id\": \"a1\"}");
	json_decref(got);
	json_decref(value);
	json_decref(inputs);
}

struct subst_error_case {
	const char *value;
	const char *path;  /* passed in */
	const char *field; /* err->field */
	const char *msg;   /* err->msg */
};

static const struct subst_error_case subst_error_cases[] = {
	{"{\"prompt\": \"draw {{inputs.nope}}\"}", "config", "config.prompt",
	 "config.prompt uses {{inputs.nope}}, but the template declares no"
	 " such input or the run gave it no value"},
	{"[{\"id\": \"a\", \"config\": {\"size\": \"{{ inputs.size }}\"}}]",
	 "steps", "steps[0].config.size", NULL},
	{"{\"a\": [[1, {\"b\": [\"x\", \"{{inputs.q}}\"]}]]}", "config",
	 "config.a[0][1].b[1]", NULL},
	{"{\"prompt\": \"{{inputs.nope}}\"}", NULL, "prompt",
	 "prompt uses {{inputs.nope}}, but the template declares no such"
	 " input or the run gave it no value"},
	{"{\"prompt\": \"{{inputs.nope}}\"}", "", "prompt", NULL},
	{"\"{{inputs.nope}}\"", "title", "title", NULL},
	{"\"{{inputs.nope}}\"", NULL, "",
	 "the value uses {{inputs.nope}}, but the template declares no such"
	 " input or the run gave it no value"},
	/* The first bad placeholder of a string is the one named. */
	{"{\"p\": \"{{inputs.s}} {{inputs.x1}} {{inputs.x2}}\"}", "c", "c.p",
	 "c.p uses {{inputs.x1}}, but the template declares no such input or"
	 " the run gave it no value"},
	/* Names are case-sensitive. */
	{"{\"p\": \"{{inputs.S}}\"}", "c", "c.p", NULL},
};

static void test_substitute_errors(void **state)
{
	json_t *inputs = parse(run_inputs);
	size_t i;

	for (i = 0; i < N(subst_error_cases); i++) {
		const struct subst_error_case *c = &subst_error_cases[i];
		struct kiln_err err = {0};
		json_t *value = parse(c->value);

		assert_null(kiln_inputs_substitute(value, inputs, c->path,
						   &err));
		assert_int_equal(err.code, KILN_EINVAL);
		assert_string_equal(err.field, c->field);
		if (c->msg != NULL)
			assert_string_equal(err.msg, c->msg);
		/* Without an error record it fails the same way. */
		assert_null(kiln_inputs_substitute(value, inputs, c->path,
						   NULL));
		json_decref(value);
	}
	json_decref(inputs);
}

/* No inputs: strings without placeholders still copy; any placeholder
 * fails.  No value: an error, not a crash. */
static void test_substitute_edges(void **state)
{
	struct kiln_err err = {0};
	json_t *value = parse("{\"a\": \"{{input}} stays\"}");
	json_t *with = parse("{\"a\": \"{{inputs.a}}\"}");

	expect_json("no inputs",
		    kiln_inputs_substitute(value, NULL, "c", &err),
		    "{\"a\": \"{{input}} stays\"}");
	assert_null(kiln_inputs_substitute(with, NULL, "c", &err));
	assert_string_equal(err.field, "c.a");
	kiln_err_clear(&err);
	assert_null(kiln_inputs_substitute(NULL, with, "c", &err));
	assert_int_equal(err.code, KILN_EINVAL);
	json_decref(with);
	json_decref(value);
}

/* A path too long for err->field is cut between characters, in the
 * field and in the message, which both end up in JSON replies. */
static void test_substitute_long_path(void **state)
{
	struct kiln_err err = {0};
	char key[1 + 2 * 300 + 1] = "x"; /* "x" puts a cut mid-character */
	json_t *value, *field, *msg;
	size_t i;

	for (i = 0; i < 300; i++)
		memcpy(key + 1 + 2 * i, "\xc3\xa9", 2);
	key[601] = '\0';
	value = json_pack("{s{ss}}", "a", key, "{{inputs.none}}");
	assert_null(kiln_inputs_substitute(value, NULL, "config", &err));
	assert_int_equal(err.code, KILN_EINVAL);
	assert_true(strncmp(err.field, "config.a.x\xc3\xa9", 12) == 0);
	field = json_string(err.field);
	msg = json_string(err.msg);
	assert_non_null(field);
	assert_non_null(msg);
	assert_non_null(strstr(err.msg, "{{inputs.none}}"));
	json_decref(msg);
	json_decref(field);
	json_decref(value);
}

/* Inserted bytes are capped per call: a 100,000-byte input fits a
 * hundred times, embedded or whole, but not two hundred. */
static void test_substitute_cap(void **state)
{
	char *text = long_string("", 'x', KILN_INPUTS_STRING_MAX);
	json_t *big = parse(text);
	json_t *inputs = json_pack("{sO}", "big", big);
	json_t *embedded = json_array(), *whole = json_array(), *got;
	struct kiln_err err = {0};
	size_t i;

	for (i = 0; i < 100; i++) {
		json_array_append_new(embedded,
				      json_string("<{{inputs.big}}>"));
		json_array_append_new(whole, json_string("{{inputs.big}}"));
	}
	got = kiln_inputs_substitute(embedded, inputs, "config", &err);
	assert_non_null(got);
	assert_int_equal(json_string_length(json_array_get(got, 99)),
			 KILN_INPUTS_STRING_MAX + 2);
	json_decref(got);
	got = kiln_inputs_substitute(whole, inputs, "config", &err);
	assert_non_null(got);
	assert_true(json_equal(json_array_get(got, 0), big));
	json_decref(got);

	for (i = 0; i < 100; i++) {
		json_array_append_new(embedded,
				      json_string("<{{inputs.big}}>"));
		json_array_append_new(whole, json_string("{{inputs.big}}"));
	}
	assert_null(kiln_inputs_substitute(embedded, inputs, "config", &err));
	assert_int_equal(err.code, KILN_EINVAL);
	assert_string_equal(err.field, "config[167]");
	assert_non_null(strstr(err.msg, "16777216 bytes"));
	kiln_err_clear(&err);
	assert_null(kiln_inputs_substitute(whole, inputs, "config", &err));
	assert_int_equal(err.code, KILN_EINVAL);
	assert_string_equal(err.field, "config[167]");

	json_decref(whole);
	json_decref(embedded);
	json_decref(inputs);
	json_decref(big);
	free(text);
}

/* ------------------------------------------------------------------ */
/* Names used                                                          */
/* ------------------------------------------------------------------ */

struct used_case {
	const char *value;
	const char *want;
};

static const struct used_case used_cases[] = {
	{"\"{{inputs.a}}\"", "[\"a\"]"},
	{"\"x {{ inputs.b }} y {{inputs.a}} {{inputs.b}}\"", "[\"b\", \"a\"]"},
	{"{\"steps\": [{\"config\": {\"p\": \"{{inputs.prompt}}\","
	 " \"n\": \"{{inputs.steps}}\", \"{{inputs.key}}\": 1,"
	 " \"list\": [3, null, \"{{inputs.prompt}} {{inputs.style}}\","
	 " [{\"deep\": \"{{\\tinputs.deep\\t}}\"}]]}}],"
	 " \"config\": {\"x\": \"{{inputs.steps}}\"}}",
	 "[\"prompt\", \"steps\", \"style\", \"deep\"]"},
	/* Names longer than an input may have are still reported, so the
	 * template check can call them undeclared. */
	{"\"{{inputs." NAME65 "}}\"", "[\"" NAME65 "\"]"},
	{"[\"{{input}}\", \"{{inputs.}}\", \"{{inputs.a.b}}\", \"{inputs.c}\","
	 " \"{{ steps.x }}\", 1, true, null, {}]",
	 "[]"},
	{"\"\"", "[]"},
	{"7", "[]"},
};

static void test_used(void **state)
{
	size_t i;

	for (i = 0; i < N(used_cases); i++) {
		json_t *value = parse(used_cases[i].value);

		expect_json(used_cases[i].value, kiln_inputs_used(value),
			    used_cases[i].want);
		json_decref(value);
	}
	expect_json("NULL", kiln_inputs_used(NULL), "[]");
}

/* ------------------------------------------------------------------ */
/* Together                                                            */
/* ------------------------------------------------------------------ */

/* The life of a template run: check the schema, check the steps use
 * only declared inputs, resolve a run's inputs, fill the steps. */
static void test_template_run(void **state)
{
	json_t *loc = json_pack("[ss]", "body", "inputs");
	json_t *detail = json_array();
	json_t *schema = parse(
		"{\"prompt\": {\"type\": \"string\", \"required\": true},"
		" \"count\": {\"type\": \"integer\", \"default\": 2},"
		" \"source\": {\"type\": \"asset\", \"required\": true}}");
	json_t *steps = parse(
		"[{\"id\": \"gen\","
		" \"config\": {\"prompt\": \"{{inputs.prompt}}\","
		" \"n\": \"{{inputs.count}}\","
		" \"image\": \"{{inputs.source}}\","
		" \"note\": \"from {{inputs.source}} x{{inputs.count}}\"}}]");
	json_t *used, *name, *inputs, *got;
	struct kiln_err err = {0};
	size_t i;

	assert_int_equal(kiln_inputs_schema_check(detail, loc, schema), 0);
	used = kiln_inputs_used(steps);
	json_array_foreach(used, i, name)
		assert_non_null(
			json_object_get(schema, json_string_value(name)));
	json_decref(used);

	inputs = parse("{\"prompt\": \"a fox\", \"source\":"
		       " {\"url\": \"https://cdn.example/f.png\","
		       " \"mime_type\": \"image/png\"}}");
	got = kiln_inputs_resolve(detail, loc, schema, inputs);
	assert_non_null(got);
	json_decref(inputs);
	inputs = got;
	got = kiln_inputs_substitute(steps, inputs, "steps", &err);
	expect_json("steps", got,
		    "[{\"id\": \"gen\", \"config\": {\"prompt\": \"a fox\","
		    " \"n\": 2,"
		    " \"image\": {\"url\": \"https://cdn.example/f.png\","
		    " \"mime_type\": \"image/png\"},"
		    " \"note\": \"from https://cdn.example/f.png x2\"}}]");
	json_decref(inputs);
	json_decref(steps);
	json_decref(schema);
	json_decref(detail);
	json_decref(loc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_valid),
		cmocka_unit_test(test_schema_errors),
		cmocka_unit_test(test_schema_appends),
		cmocka_unit_test(test_schema_limits),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_value_limits),
		cmocka_unit_test(test_enum_message_bounded),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_resolve_copies),
		cmocka_unit_test(test_resolve_empty_schema),
		cmocka_unit_test(test_substitute),
		cmocka_unit_test(test_substitute_copies),
		cmocka_unit_test(test_substitute_errors),
		cmocka_unit_test(test_substitute_edges),
		cmocka_unit_test(test_substitute_long_path),
		cmocka_unit_test(test_substitute_cap),
		cmocka_unit_test(test_used),
		cmocka_unit_test(test_template_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
