/*
 * test_utf8.c - cutting and quoting text so JSON replies stay valid
 * (src/utf8.c, and kiln_strlcpy / kiln_err_set built on it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <jansson.h>

#include "kiln/common.h"
#include "kiln/utf8.h"

/* "é" is 2 bytes, "€" 3, "😀" 4. */
static void test_length_counts_characters(void **state)
{
	(void)state;
	assert_int_equal(kiln_utf8_length(""), 0);
	assert_int_equal(kiln_utf8_length("abc"), 3);
	assert_int_equal(kiln_utf8_length("é€😀"), 3);
}

static void test_prefix_never_splits_a_character(void **state)
{
	const char *s = "a€b"; /* a, 3-byte €, b */

	(void)state;
	assert_int_equal(kiln_utf8_prefix(s, 5, 10), 5);
	assert_int_equal(kiln_utf8_prefix(s, 5, 4), 4);
	assert_int_equal(kiln_utf8_prefix(s, 5, 3), 1);
	assert_int_equal(kiln_utf8_prefix(s, 5, 2), 1);
	assert_int_equal(kiln_utf8_prefix(s, 5, 1), 1);
	assert_int_equal(kiln_utf8_prefix(s, 5, 0), 0);
}

static void test_trim_tail_drops_a_cut_sequence(void **state)
{
	char cut3[] = "ab\xE2\x82";   /* € without its last byte */
	char whole[] = "ab\xE2\x82\xAC";
	char cut4[] = "x\xF0\x9F\x98"; /* 😀 without its last byte */

	(void)state;
	kiln_utf8_trim_tail(cut3);
	assert_string_equal(cut3, "ab");
	kiln_utf8_trim_tail(whole);
	assert_string_equal(whole, "ab€");
	kiln_utf8_trim_tail(cut4);
	assert_string_equal(cut4, "x");
}

static void test_excerpt_replaces_bad_bytes_and_marks_cuts(void **state)
{
	char out[16 + 4];
	const char bad[] = "ok\xFF\xC0\x80\t\nz"; /* invalid, overlong, tab */

	(void)state;
	assert_string_equal(kiln_text_excerpt(bad, sizeof(bad) - 1, 16, out),
			    "ok???\?\nz");
	assert_string_equal(kiln_text_excerpt("abcdef", 6, 4, out), "abcd...");
	/* A cut lands between characters: € (3 bytes) does not fit in 5. */
	assert_string_equal(kiln_text_excerpt("abc€", 6, 5, out), "abc...");
	/* Surrogates encoded in UTF-8 are not valid. */
	assert_string_equal(kiln_text_excerpt("\xED\xA0\x80", 3, 16, out),
			    "???");
	/* Whatever goes in, jansson accepts what comes out. */
	{
		json_t *j = json_string(kiln_text_excerpt(bad, sizeof(bad) - 1,
							  16, out));
		assert_non_null(j);
		json_decref(j);
	}
}

static void test_strlcpy_and_err_stay_valid(void **state)
{
	char small[4];
	struct kiln_err err;
	char long_msg[KILN_ERR_MSG_MAX + 8];
	size_t i;
	json_t *j;

	(void)state;
	assert_int_equal(kiln_strlcpy(small, "a€", sizeof(small)), 4);
	assert_string_equal(small, "a");
	/* A message of "€"s that overflows msg is cut between characters. */
	for (i = 0; i + 3 < sizeof(long_msg); i += 3)
		memcpy(long_msg + i, "€", 3);
	long_msg[i] = '\0';
	kiln_err_set(&err, KILN_EINVAL, "f", "x%s", long_msg);
	j = json_string(err.msg);
	assert_non_null(j);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length_counts_characters),
		cmocka_unit_test(test_prefix_never_splits_a_character),
		cmocka_unit_test(test_trim_tail_drops_a_cut_sequence),
		cmocka_unit_test(test_excerpt_replaces_bad_bytes_and_marks_cuts),
		cmocka_unit_test(test_strlcpy_and_err_stay_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
