/*
 * test_json_spec.c - the declarative validator: each error type, its loc
 * and message, query arguments, and the create/update body rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "kiln/json_spec.h"

static const struct kiln_field fields[] = {
	{"name", KILN_F_STRING, KILN_F_REQUIRED, 1, 5},
	{"note", KILN_F_STRING, KILN_F_NULLABLE, 0, 3},
	{"n", KILN_F_INT, 0, 0, 10},
	{"flag", KILN_F_BOOL, 0, 0, KILN_F_NO_LIMIT},
	{"obj", KILN_F_OBJECT, 0, 0, KILN_F_NO_LIMIT},
	{"list", KILN_F_ARRAY, 0, 1, KILN_F_NO_LIMIT},
	{"tags", KILN_F_STRING_ARRAY, 0, 0, KILN_F_NO_LIMIT},
};

struct spec_case {
	const char *body;
	const char *type; /* NULL: valid */
	const char *loc;  /* compact JSON of the loc */
	const char *msg;
};

static const struct spec_case cases[] = {
	{"{\"name\":\"ab\"}", NULL, NULL, NULL},
	{"{\"name\":\"ab\",\"note\":null}", NULL, NULL, NULL},
	{"{}", "missing", "[\"body\",\"name\"]", "Field required"},
	{"{\"name\":3}", "string_type", "[\"body\",\"name\"]",
	 "Input should be a valid string"},
	{"{\"name\":\"\"}", "string_too_short", "[\"body\",\"name\"]",
	 "String should have at least 1 character"},
	{"{\"name\":\"abcdef\"}", "string_too_long", "[\"body\",\"name\"]",
	 "String should have at most 5 characters"},
	/* five code points, more bytes: still valid */
	{"{\"name\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}", NULL, NULL,
	 NULL},
	{"{\"name\":null}", "string_type", "[\"body\",\"name\"]",
	 "Input should be a valid string"},
	{"{\"name\":\"a\",\"n\":1.5}", "int_type", "[\"body\",\"n\"]",
	 "Input should be a valid integer"},
	{"{\"name\":\"a\",\"n\":-1}", "greater_than_equal", "[\"body\",\"n\"]",
	 "Input should be greater than or equal to 0"},
	{"{\"name\":\"a\",\"n\":11}", "less_than_equal", "[\"body\",\"n\"]",
	 "Input should be less than or equal to 10"},
	{"{\"name\":\"a\",\"flag\":\"yes\"}", "bool_type",
	 "[\"body\",\"flag\"]", "Input should be a valid boolean"},
	{"{\"name\":\"a\",\"obj\":[]}", "dict_type", "[\"body\",\"obj\"]",
	 "Input should be a valid dictionary"},
	{"{\"name\":\"a\",\"list\":{}}", "list_type", "[\"body\",\"list\"]",
	 "Input should be a valid list"},
	{"{\"name\":\"a\",\"list\":[]}", "too_short", "[\"body\",\"list\"]",
	 "List should have at least 1 item after validation, not 0"},
	{"{\"name\":\"a\",\"tags\":[\"x\",2]}", "string_type",
	 "[\"body\",\"tags\",1]", "Input should be a valid string"},
	{"{\"name\":\"a\",\"bogus\":1}", "extra_forbidden",
	 "[\"body\",\"bogus\"]", "Extra inputs are not permitted"},
	{"[1]", "model_attributes_type", "[\"body\"]",
	 "Input should be a valid dictionary or object to extract fields "
	 "from"},
};

static void test_spec_cases(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct spec_case *c = &cases[i];
		json_t *body = json_loads(c->body, JSON_DECODE_ANY, NULL);
		json_t *detail = json_array();
		json_t *loc = json_pack("[s]", "body");
		json_t *e;
		char *got_loc;

		assert_non_null(body);
		kiln_spec_check(detail, loc, body, fields,
				sizeof(fields) / sizeof(fields[0]));
		if (c->type == NULL) {
			assert_int_equal(json_array_size(detail), 0);
		} else {
			assert_int_equal(json_array_size(detail), 1);
			e = json_array_get(detail, 0);
			assert_string_equal(
				json_string_value(json_object_get(e, "type")),
				c->type);
			assert_string_equal(
				json_string_value(json_object_get(e, "msg")),
				c->msg);
			got_loc = json_dumps(json_object_get(e, "loc"),
					     JSON_COMPACT);
			assert_string_equal(got_loc, c->loc);
			free(got_loc);
		}
		json_decref(loc);
		json_decref(detail);
		json_decref(body);
	}
}

static void test_query_arguments(void **state)
{
	json_t *detail = json_array();
	long long v = 0;
	int b = 0;

	assert_int_equal(kiln_query_bool(detail, "x", NULL, 1, &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(kiln_query_bool(detail, "x", "FALSE", 1, &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(kiln_query_bool(detail, "x", "on", 0, &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(kiln_query_int(detail, "limit", NULL, 50, 1, 1000,
					&v),
			 0);
	assert_int_equal(v, 50);
	assert_int_equal(kiln_query_int(detail, "limit", "7", 50, 1, 1000, &v),
			 0);
	assert_int_equal(v, 7);
	assert_int_equal(json_array_size(detail), 0);

	assert_int_equal(kiln_query_bool(detail, "start", "maybe", 1, &b), -1);
	assert_int_equal(kiln_query_int(detail, "limit", "0", 50, 1, 1000, &v),
			 -1);
	assert_int_equal(kiln_query_int(detail, "limit", "1001", 50, 1, 1000,
					&v),
			 -1);
	assert_int_equal(kiln_query_int(detail, "skip", "x1", 0, 0, 100, &v),
			 -1);
	assert_int_equal(json_array_size(detail), 4);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(detail, 0), "type")),
			    "bool_parsing");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(detail, 1), "type")),
			    "greater_than_equal");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(detail, 2), "type")),
			    "less_than_equal");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(detail, 3), "type")),
			    "int_parsing");
	assert_string_equal(
		json_string_value(json_array_get(
			json_object_get(json_array_get(detail, 3), "loc"), 1)),
		"skip");
	json_decref(detail);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_cases),
		cmocka_unit_test(test_query_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
