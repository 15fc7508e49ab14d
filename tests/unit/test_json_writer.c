/*
 * test_json_writer.c - the JSON writer's text is json_dumps' text for the
 * same values, byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln/json_writer.h"

/* Checks w's text against json_dumps(expected, compact) and frees both. */
static void assert_same(struct kiln_jw *w, json_t *expected)
{
	char *want = json_dumps(expected, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t len = 0;
	char *got = kiln_jw_take(w, &len);

	assert_non_null(want);
	assert_non_null(got);
	assert_string_equal(got, want);
	assert_int_equal(len, strlen(want));
	free(want);
	free(got);
	json_decref(expected);
}

/* Every byte below 0x80, NUL included, escaped as jansson escapes it;
 * UTF-8 above it passes as it is. */
static void test_strings_escape_like_jansson(void **state)
{
	char s[160];
	struct kiln_jw w = {0};
	size_t i, n = 0;

	(void)state;
	for (i = 0; i < 0x80; i++)
		s[n++] = (char)i;
	memcpy(s + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/", 10);
	n += 10;
	kiln_jw_strn(&w, s, n);
	assert_same(&w, json_stringn(s, n));

	kiln_jw_str(&w, "");
	assert_same(&w, json_string(""));
	kiln_jw_str(&w, NULL);
	assert_same(&w, json_null());
}

/* Strings are scanned 8 bytes at a time: a byte to escape is found at
 * every offset of strings of every length around that step, in clean
 * text and among UTF-8 bytes (0x80 and up, which pass as they are). */
static void test_escapes_at_every_offset(void **state)
{
	static const char special[] = {'"', '\\', '\n', 0x01, 0x1f, 0};
	/* The text around it: three ASCII fills, then "\xc3\xa9" pairs. */
	static const char fill[] = {'a', ' ', '\x7f', 0};
	char base[40], s[40];
	size_t len, at, k, f, i;
	struct kiln_jw w = {0};

	(void)state;
	for (f = 0; f < sizeof(fill); f++) {
		for (len = 1; len <= 33; len++) {
			for (i = 0; i < len; i++)
				base[i] = fill[f] ? fill[f]
						  : (i % 2 ? '\xa9' : '\xc3');
			if (!fill[f] && len % 2)
				base[len - 1] = 'a';
			kiln_jw_strn(&w, base, len);
			assert_same(&w, json_stringn(base, len));
			for (at = 0; at < len; at++) {
				for (k = 0; k < sizeof(special); k++) {
					memcpy(s, base, len);
					if (!fill[f] && (at & ~(size_t)1) + 1 < len)
						memset(s + (at & ~(size_t)1), 'a', 2);
					s[at] = special[k];
					kiln_jw_strn(&w, s, len);
					assert_same(&w, json_stringn(s, len));
				}
			}
		}
	}
}

/* Keys, values and containers get their commas, and only where needed. */
static void test_containers_and_commas(void **state)
{
	struct kiln_jw w = {0};
	json_t *inner = json_pack("{s:[i,f,s,b,n], s:{}}", "a", 1, 2.5, "x",
				  1, "e");

	(void)state;
	kiln_jw_open(&w, '{');
	kiln_jw_key(&w, "n");
	kiln_jw_int(&w, INT64_MIN);
	kiln_jw_key(&w, "m");
	kiln_jw_int(&w, INT64_MAX);
	kiln_jw_key(&w, "t");
	kiln_jw_bool(&w, 1);
	kiln_jw_key(&w, "f");
	kiln_jw_bool(&w, 0);
	kiln_jw_key(&w, "z");
	kiln_jw_null(&w);
	kiln_jw_key(&w, "real");
	kiln_jw_raw(&w, "0.0");
	kiln_jw_key(&w, "empty");
	kiln_jw_open(&w, '[');
	kiln_jw_close(&w, ']');
	kiln_jw_key(&w, "list");
	kiln_jw_open(&w, '[');
	kiln_jw_open(&w, '{');
	kiln_jw_close(&w, '}');
	kiln_jw_open(&w, '[');
	kiln_jw_int(&w, 7);
	kiln_jw_int(&w, 0);
	kiln_jw_int(&w, -42);
	kiln_jw_int(&w, 1000000007);
	kiln_jw_str(&w, "q\"");
	kiln_jw_close(&w, ']');
	kiln_jw_json(&w, inner);
	kiln_jw_json(&w, NULL);
	kiln_jw_close(&w, ']');
	kiln_jw_key(&w, "tree");
	kiln_jw_json(&w, inner);
	kiln_jw_key(&w, "s");
	kiln_jw_json(&w, json_object_get(json_array_get(
				 json_object_get(inner, "a"), 0), "none"));
	kiln_jw_close(&w, '}');
	assert_same(&w,
		    json_pack("{s:I, s:I, s:b, s:b, s:n, s:f, s:[], "
			      "s:[{}, [i, i, i, i, s], O, n], s:O, s:n}",
			      "n", (json_int_t)INT64_MIN, "m",
			      (json_int_t)INT64_MAX, "t", 1, "f", 0, "z",
			      "real", 0.0, "empty", "list", 7, 0, -42,
			      1000000007, "q\"", inner,
			      "tree", inner, "s"));
	json_decref(inner);
}

/* An empty writer gives "", not NULL; kiln_jw_free leaves it empty. */
static void test_take_and_free(void **state)
{
	struct kiln_jw w = {0};
	size_t len = 99;
	char *text = kiln_jw_take(&w, &len);

	(void)state;
	assert_non_null(text);
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
	kiln_jw_str(&w, "abc");
	kiln_jw_free(&w);
	assert_null(w.buf);
	assert_int_equal(w.len, 0);
	kiln_jw_int(&w, 5); /* usable again, without a comma */
	assert_same(&w, json_integer(5));
}

/* Whole trees, reals of every form and keys that need escapes: the same
 * text as json_dumps. */
static void test_dump_matches_jansson(void **state)
{
	static const char *const texts[] = {
		"{\"a\":1,\"b\":[1.5,2.0,-0.0,1e300,1e-300,0.1,123456789.125,"
		"-1.7976931348623157e308,5e-324,1e21,1e16,12345678901234567]}",
		"{\"k\\\"\\u0001\\u00e9\":{\"z\":{},\"y\":[],\"x\":[[],[{}]]},"
		"\"t\":true,\"f\":false,\"n\":null,\"s\":\"a/b\\\\c\"}",
		"[]", "[\"\"]", "{}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_error_t jerr;
		json_t *v = json_loads(texts[i], 0, &jerr);
		char *want, *got;

		if (v == NULL)
			fail_msg("%s: %s", texts[i], jerr.text);
		want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		got = kiln_jw_dump(v);
		assert_non_null(got);
		assert_string_equal(got, want);
		free(want);
		free(got);
		json_decref(v);
	}
	/* A real built in C, and a scalar alone. */
	{
		json_t *v = json_pack("[f,f,f,I]", 3.0, 1.0 / 3.0, 1e100,
				      (json_int_t)-42);
		char *want = json_dumps(v, JSON_COMPACT);
		char *got = kiln_jw_dump(v);

		assert_string_equal(got, want);
		free(want);
		free(got);
		json_decref(v);
		v = json_real(0.5);
		got = kiln_jw_dump(v);
		assert_string_equal(got, "0.5");
		free(got);
		json_decref(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings_escape_like_jansson),
		cmocka_unit_test(test_escapes_at_every_offset),
		cmocka_unit_test(test_containers_and_commas),
		cmocka_unit_test(test_take_and_free),
		cmocka_unit_test(test_dump_matches_jansson),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
