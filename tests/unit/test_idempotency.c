/*
 * test_idempotency.c - the Idempotency-Key header and request
 * fingerprints (src/idempotency.c): keys of 1..255 visible ASCII
 * characters are accepted and an absent key is fine; empty, too long,
 * space, tab, control and non-ASCII keys add exactly one 422 item at
 * ["header", "Idempotency-Key"].  kiln_idem_hash is 64 lower-case hex
 * characters, the SHA-256 of method NUL path NUL canonical JSON (keys
 * sorted, compact): the same for the same JSON however it is ordered or
 * spaced, different when the method, path or any body value differs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/idempotency.h"

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return v;
}

/* A key of n copies of c (owned). */
static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* The number of items kiln_idem_key_check adds for key; checks the shape
 * of each. */
static size_t key_errors(const char *key)
{
	json_t *detail = json_array(), *item;
	json_t *loc = json_pack("[ss]", "header", "Idempotency-Key");
	size_t n, i;

	kiln_idem_key_check(detail, key);
	n = json_array_size(detail);
	json_array_foreach(detail, i, item) {
		const char *msg = json_string_value(
			json_object_get(item, "msg"));

		assert_true(json_equal(json_object_get(item, "loc"), loc));
		assert_string_equal(
			json_string_value(json_object_get(item, "type")),
			"value_error");
		assert_non_null(msg);
		assert_non_null(strstr(msg, "255"));
	}
	json_decref(loc);
	json_decref(detail);
	return n;
}

/* ---- kiln_idem_key_check ---------------------------------------------- */

static void test_key_accepted(void **state)
{
	static const char *const good[] = {
		"a",
		"0",
		"~",
		"!",
		"order-123_ABC.retry:2",
		"550e8400-e29b-41d4-a716-446655440000",
		"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
	};
	char *k255 = repeat('k', 255);
	size_t i;

	(void)state;
	assert_int_equal(key_errors(NULL), 0);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (key_errors(good[i]) != 0)
			fail_msg("key '%s' refused", good[i]);
	assert_int_equal(key_errors(k255), 0);
	free(k255);
}

static void test_key_refused(void **state)
{
	static const char *const bad[] = {
		"",
		" ",
		"a b",
		" lead",
		"trail ",
		"tab\there",
		"new\nline",
		"cr\r",
		"del\x7f",
		"bell\a",
		"caf\xc3\xa9",       /* UTF-8 e-acute */
		"\xe2\x82\xac",      /* UTF-8 euro sign */
		"latin1-\xe9",       /* a lone high byte */
		"\xff",
	};
	char *k256 = repeat('k', 256), *k1000 = repeat('x', 1000);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (key_errors(bad[i]) != 1)
			fail_msg("key %zu ('%s') not refused once", i, bad[i]);
	assert_int_equal(key_errors(k256), 1);
	assert_int_equal(key_errors(k1000), 1);
	free(k256);
	free(k1000);
}

/* Items already in detail stay; one is appended. */
static void test_key_appends(void **state)
{
	json_t *detail = json_pack("[{s:s}]", "type", "missing");

	(void)state;
	kiln_idem_key_check(detail, "ok");
	assert_int_equal(json_array_size(detail), 1);
	kiln_idem_key_check(detail, "not ok");
	assert_int_equal(json_array_size(detail), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(detail, 0), "type")),
			    "missing");
	json_decref(detail);
}

/* ---- kiln_idem_hash --------------------------------------------------- */

/* The hash of method, path and the body JSON text (checked: 64 lower-case
 * hex characters). */
static void hash_of(const char *method, const char *path, const char *body,
		    char out[KILN_IDEM_HASH_LEN])
{
	json_t *b = parse(body);
	size_t i;

	memset(out, 'Z', KILN_IDEM_HASH_LEN);
	assert_int_equal(kiln_idem_hash(method, path, b, out), 0);
	json_decref(b);
	assert_int_equal(strlen(out), 64);
	for (i = 0; i < 64; i++)
		if (!((out[i] >= '0' && out[i] <= '9') ||
		      (out[i] >= 'a' && out[i] <= 'f')))
			fail_msg("hash %s: not lower-case hex at %zu", out, i);
}

static void test_hash_known_value(void **state)
{
	char h[KILN_IDEM_HASH_LEN];

	(void)state;
	/* sha256("POST\0/api/v1/batches\0" + canonical JSON). */
	hash_of("POST", "/api/v1/batches",
		"{\"b\": [1, 2, {\"e\": null, \"c\": \"d\"}], \"a\": 1}", h);
	assert_string_equal(h, "7cc8e82e215f84da32def5661b98f7e33dc770045fb7d3"
			       "fe8c3f12b03c59ac34");
	hash_of("POST", "/p", "{}", h);
	assert_string_equal(h, "d60a6f440f55c3237fb09ceafd14058e47740aace390"
			       "2d0ddb8893a187df06ce");
}

static void test_hash_same_json(void **state)
{
	static const char *const same[] = {
		"{\"template_id\":\"t1\",\"inputs\":{\"prompt\":\"a cat\","
		"\"steps\":30},\"assets\":[{\"url\":\"https://x/1.png\"}]}",
		"{ \"assets\" : [ { \"url\" : \"https://x/1.png\" } ],\n"
		"  \"inputs\" : { \"steps\" : 30, \"prompt\" : \"a cat\" },\n"
		"  \"template_id\" : \"t1\" }",
		"{\"inputs\":{\"steps\":30,\"prompt\":\"a cat\"},"
		"\"template_id\":\"t1\","
		"\"assets\":[{\"url\":\"https://x/1.png\"}]}",
		/* The same string written with escapes. */
		"{\"template_id\":\"\\u0074\\u0031\",\"inputs\":{\"prompt\":"
		"\"a\\u0020cat\",\"steps\":30},\"assets\":[{\"url\":"
		"\"https:\\/\\/x\\/1.png\"}]}",
	};
	char first[KILN_IDEM_HASH_LEN], h[KILN_IDEM_HASH_LEN];
	size_t i;

	(void)state;
	hash_of("POST", "/api/v1/batches", same[0], first);
	for (i = 1; i < sizeof(same) / sizeof(same[0]); i++) {
		hash_of("POST", "/api/v1/batches", same[i], h);
		if (strcmp(h, first) != 0)
			fail_msg("body %zu hashes differently", i);
	}
	/* Deterministic. */
	hash_of("POST", "/api/v1/batches", same[0], h);
	assert_string_equal(h, first);
}

static void test_hash_differs(void **state)
{
	static const char *const base = "{\"a\":1,\"b\":\"x\",\"c\":[1,2]}";
	static const struct {
		const char *method, *path, *body;
	} other[] = {
		{"PUT", "/api/v1/templates/t/run", NULL},
		{"post", "/api/v1/templates/t/run", NULL},
		{"POST", "/api/v1/templates/u/run", NULL},
		{"POST", "/api/v1/templates/t/run/", NULL},
		{"POST", "/api/v1/templates/t/run", "{\"a\":2,\"b\":\"x\","
						    "\"c\":[1,2]}"},
		{"POST", "/api/v1/templates/t/run", "{\"a\":1,\"b\":\"y\","
						    "\"c\":[1,2]}"},
		/* Order inside arrays matters. */
		{"POST", "/api/v1/templates/t/run", "{\"a\":1,\"b\":\"x\","
						    "\"c\":[2,1]}"},
		/* 1 and 1.0 are different JSON. */
		{"POST", "/api/v1/templates/t/run", "{\"a\":1.0,\"b\":\"x\","
						    "\"c\":[1,2]}"},
		{"POST", "/api/v1/templates/t/run", "{\"a\":\"1\",\"b\":\"x\","
						    "\"c\":[1,2]}"},
		{"POST", "/api/v1/templates/t/run", "{\"a\":1,\"b\":\"x\","
						    "\"c\":[1,2],\"d\":null}"},
		{"POST", "/api/v1/templates/t/run", "{\"a\":1,\"b\":\"x\"}"},
		{"POST", "/api/v1/templates/t/run", "{\"A\":1,\"b\":\"x\","
						    "\"c\":[1,2]}"},
	};
	char first[KILN_IDEM_HASH_LEN], h[KILN_IDEM_HASH_LEN];
	size_t i;

	(void)state;
	hash_of("POST", "/api/v1/templates/t/run", base, first);
	for (i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		hash_of(other[i].method, other[i].path,
			other[i].body ? other[i].body : base, h);
		if (strcmp(h, first) == 0)
			fail_msg("case %zu hashes like the base", i);
	}
}

/* Method and path are separated, so moving text across the boundary is
 * another request. */
static void test_hash_fields_separated(void **state)
{
	char a[KILN_IDEM_HASH_LEN], b[KILN_IDEM_HASH_LEN];

	(void)state;
	hash_of("POST", "/x", "{}", a);
	hash_of("POS", "T/x", "{}", b);
	assert_string_not_equal(a, b);
	hash_of("POST", "/x", "\"y\"", a);
	hash_of("POST", "/x\"", "\"y\"", b);
	assert_string_not_equal(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_accepted),
		cmocka_unit_test(test_key_refused),
		cmocka_unit_test(test_key_appends),
		cmocka_unit_test(test_hash_known_value),
		cmocka_unit_test(test_hash_same_json),
		cmocka_unit_test(test_hash_differs),
		cmocka_unit_test(test_hash_fields_separated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
