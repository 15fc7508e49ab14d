/*
 * test_json_load.c - kiln_json_load is json_loadb: whatever its fast
 * reader accepts, jansson accepts as the same tree (types, key order,
 * the last of duplicate keys), and everything else gets jansson's answer,
 * its error text included.  Checked on hand-picked texts, on random
 * values dumped by jansson in every style, and on random corruptions of
 * them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln/json_load.h"

/* The same values, in the same order, as the same text. */
static void assert_same_tree(const json_t *got, const json_t *want)
{
	char *a = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
	char *b = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);

	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, b);
	assert_true(json_equal(got, want));
	free(a);
	free(b);
}

/* The fast reader's answer on text agrees with jansson's; returns
 * whether the fast reader took it. */
static int agrees(const char *text, size_t len, size_t flags)
{
	json_error_t e1, e2;
	json_t *fast = kiln_json_load_fast(text, len, flags);
	json_t *ref = json_loadb(text, len, flags, &e1);
	json_t *both = kiln_json_load(text, len, flags, &e2);
	int took = fast != NULL;

	if (fast != NULL) {
		if (ref == NULL)
			fail_msg("fast reader took what jansson refuses"
				 " (%s): %.*s", e1.text, (int)len, text);
		assert_same_tree(fast, ref);
	}
	if (ref == NULL) {
		assert_null(both);
		assert_string_equal(e1.text, e2.text);
		assert_int_equal(e1.position, e2.position);
	} else {
		assert_non_null(both);
		assert_same_tree(both, ref);
	}
	json_decref(fast);
	json_decref(ref);
	json_decref(both);
	return took;
}

static void must_take(const char *text)
{
	if (!agrees(text, strlen(text), JSON_DECODE_ANY))
		fail_msg("fast reader declined: %s", text);
}

static void either(const char *text)
{
	(void)agrees(text, strlen(text), JSON_DECODE_ANY);
}

/* What kilnd reads all day: requests, stored columns, provider answers. */
static void test_reads_the_usual_fast(void **state)
{
	(void)state;
	must_take("{\"description\":\"Generate and refine\",\"name\":\"P\","
		  "\"steps\":[{\"config\":{\"height\":1024,\"prompt\":"
		  "\"fashion model\",\"width\":1024},\"id\":\"generate\","
		  "\"task_type\":\"GENERATION\"},{\"config\":"
		  "{\"upscale_factor\":2.0},\"depends_on\":[\"generate\"]}]}");
	must_take("  {\"a\" : [ 1 , -2 , 3.5 , -0 , 0 , 1e3 , 1E-3 , 2.5e+2"
		  " , true , false , null , \"\" , [] , {} ] }\n");
	must_take("\"text\"");
	must_take("42");
	must_take("-9223372036854775808");
	must_take("9223372036854775807");
	must_take("123456789012345678");
	must_take("0.1");
	must_take("1e-400"); /* underflow: jansson takes it */
	must_take("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]");
	must_take("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	must_take("\"\\u00e9\\u20AC\\ud83d\\ude00\\u0001\"");
	must_take("{\"k\\n\\u00e9y\":{\"k\\ty\":\"v\\\\\"}}");
	must_take("{\"a\":1,\"b\":2,\"a\":3}"); /* the last one, in place */
	must_take("{\"long\":\"0123456789abcdefghijklmnopqrstuvwxyz"
		  "0123456789abcdefghijklmnopqrstuvwxyz\\n0123456789\"}");
}

/* Errors and rare forms: jansson's answer, whoever gives it. */
static void test_everything_else_is_janssons(void **state)
{
	static const char *const texts[] = {
		"", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{,}",
		"{\"a\":1,}", "{\"a\" 1}", "{\"a\":}", "{1:2}", "{\"a\":1 \"b\":2}",
		"[1 2]", "01", "-01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10",
		"1.5.2", "--1", "NaN", "Infinity", "tru", "truex", "True", "nul",
		"nullnull", "true false", "[true1]", "\"abc", "\"a\nb\"",
		"\"a\x01\"", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\u0000\"",
		"{\"\\u0000\":1}", "\"\\ud83d\"", "\"\\ude00\"",
		"\"\\ud83d\\u0041\"", "\"\\ud83dx\"", "\"\xc3\"", "\"\xc0\x80\"",
		"\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xff\"",
		"\xef\xbb\xbf{}", "9223372036854775808",
		"-9223372036854775809", "123456789012345678901234567890",
		"1e400", "-1e400", "[1]x", "{} {}", "/* c */ {}", "'a'",
		"[\"a\",\"b\"]\x00", "12345678901234567890123456789012345678901234"
		"567890123456789012345678901234567890.5",
	};
	size_t i;
	char deep[3000];

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		either(texts[i]);
	(void)agrees("[1]\0", 4, JSON_DECODE_ANY);
	(void)agrees("\"a\0b\"", 5, JSON_DECODE_ANY);
	/* Deeper than the fast reader goes, and deeper than jansson. */
	for (i = 0; i < 200; i++)
		deep[i] = '[';
	for (i = 0; i < 200; i++)
		deep[200 + i] = ']';
	(void)agrees(deep, 400, JSON_DECODE_ANY);
	for (i = 0; i < 1500; i++) {
		deep[i] = '[';
		deep[1500 + i] = ']';
	}
	(void)agrees(deep, 3000, JSON_DECODE_ANY);
	/* Without JSON_DECODE_ANY only an object or an array. */
	assert_true(agrees("{\"a\":1}", 7, 0));
	assert_true(agrees(" [1]", 4, 0));
	assert_false(agrees("1", 1, 0));
	assert_false(agrees("\"s\"", 3, 0));
	/* Other flags are jansson's alone. */
	assert_false(agrees("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES));
	assert_false(agrees("[1]", 3, JSON_DECODE_INT_AS_REAL));
}

/* ---- random texts ----------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static json_t *random_string(void)
{
	static const char *const pieces[] = {
		"a", "Z", " ", "0", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f",
		"\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"prompt", "https://cdn.example/x.png",
	};
	char buf[256];
	size_t n = 0, k = rnd(12), i;

	for (i = 0; i < k; i++) {
		const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
		size_t l = strlen(p);

		if (n + l >= sizeof(buf))
			break;
		memcpy(buf + n, p, l);
		n += l;
	}
	return json_stringn(buf, n);
}

static json_t *random_value(int depth)
{
	static const double reals[] = {0.5, -2.25, 1e-300, 3.0e300, 1.0,
				       0.1, 123456.789, -0.0};
	json_t *v;
	size_t i, n;

	switch (depth > 4 ? rnd(5) : rnd(7)) {
	case 0: return random_string();
	case 1: {
		json_int_t big = (json_int_t)(rng >> (1 + rnd(63)));

		return json_integer(rnd(2) ? big : -big);
	}
	case 2: return json_real(reals[rnd(sizeof(reals) / sizeof(reals[0]))]);
	case 3: return rnd(2) ? json_true() : json_false();
	case 4: return json_null();
	case 5:
		v = json_array();
		n = rnd(5);
		for (i = 0; i < n; i++)
			json_array_append_new(v, random_value(depth + 1));
		return v;
	default:
		v = json_object();
		n = rnd(5);
		for (i = 0; i < n; i++) {
			json_t *k = random_string();

			json_object_set_new(v, json_string_value(k),
					    random_value(depth + 1));
			json_decref(k);
		}
		return v;
	}
}

/* Every value jansson writes, in any of its styles, is read fast and
 * the same; corrupted by a byte or two, fast or not, it agrees. */
static void test_random_texts_agree(void **state)
{
	static const size_t styles[] = {
		JSON_COMPACT, JSON_INDENT(2), JSON_ENSURE_ASCII,
		JSON_COMPACT | JSON_ENSURE_ASCII, JSON_INDENT(1) | JSON_SORT_KEYS,
	};
	static const char noise[] = "{}[]:,\"\\/ \n0123456789-+.eEtfnul"
				    "\x01\x80\xc3\xff";
	size_t round, k, took = 0, corrupt_took = 0;

	(void)state;
	for (round = 0; round < 3000; round++) {
		json_t *v = random_value(0);
		char *text = json_dumps(
			v, styles[round % (sizeof(styles) / sizeof(styles[0]))] |
				   JSON_ENCODE_ANY);
		size_t len = strlen(text);

		assert_non_null(text);
		if (agrees(text, len, JSON_DECODE_ANY))
			took++;
		else
			fail_msg("fast reader declined jansson's own text: %s",
				 text);
		for (k = 0; k < 8 && len > 0; k++) {
			char *bad = malloc(len + 2);
			size_t at = rnd((uint32_t)len), blen = len;

			memcpy(bad, text, len);
			switch (rnd(3)) {
			case 0: /* replace */
				bad[at] = noise[rnd(sizeof(noise) - 1)];
				break;
			case 1: /* insert */
				memmove(bad + at + 1, bad + at, len - at);
				bad[at] = noise[rnd(sizeof(noise) - 1)];
				blen++;
				break;
			default: /* delete */
				memmove(bad + at, bad + at + 1, len - at - 1);
				blen--;
				break;
			}
			if (agrees(bad, blen, JSON_DECODE_ANY))
				corrupt_took++;
			free(bad);
		}
		free(text);
		json_decref(v);
	}
	assert_int_equal(took, 3000);
	/* Many corruptions still read (a digit for a digit, a letter in a
	 * string): the fast reader was really tried on them. */
	assert_true(corrupt_took > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_the_usual_fast),
		cmocka_unit_test(test_everything_else_is_janssons),
		cmocka_unit_test(test_random_texts_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
