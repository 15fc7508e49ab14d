/*
 * test_clock.c - RFC 3339 times as the API writes and reads them
 * (src/clock.c): milliseconds since the epoch to
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" and back; the monotonic clock in µs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kiln/common.h"

static void expect_text(int64_t ms, const char *want)
{
	char out[KILN_RFC3339_LEN];

	memset(out, '#', sizeof(out));
	kiln_rfc3339(ms, out);
	assert_string_equal(out, want);
}

static void test_formats_known_instants(void **state)
{
	(void)state;
	expect_text(0, "1970-01-01T00:00:00.000Z");
	expect_text(1, "1970-01-01T00:00:00.001Z");
	expect_text(999, "1970-01-01T00:00:00.999Z");
	/* Before the epoch: the millisecond part still counts forwards. */
	expect_text(-1, "1969-12-31T23:59:59.999Z");
	expect_text(951782400000LL, "2000-02-29T00:00:00.000Z");
	expect_text(1795473856985LL, "2026-11-23T22:44:16.985Z");
	expect_text(253402300799999LL, "9999-12-31T23:59:59.999Z");
	/* Past year 9999 the year just gets longer. */
	expect_text(253402300800000LL, "10000-01-01T00:00:00.000Z");
}

/* Every field of many instants, against the C library's own rendering,
 * and read back to the same millisecond. */
static void test_matches_strftime_and_reads_back(void **state)
{
	(void)state;
	for (int64_t ms = -86400000LL * 400; ms < 4102444800000LL;
	     ms += 86400000LL * 37 + 3600000LL * 5 + 60000 * 7 + 1000 * 11 +
		   123) {
		char out[KILN_RFC3339_LEN], want[64], date[48];
		time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
		struct tm tm;

		gmtime_r(&secs, &tm);
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want, sizeof(want), "%s.%03dZ", date,
			 (int)(ms - (int64_t)secs * 1000));
		kiln_rfc3339(ms, out);
		assert_string_equal(out, want);
		assert_int_equal(kiln_rfc3339_parse(out), ms);
	}
}

/* The monotonic clock in µs is the one in ms, finer. */
static void test_mono_us_is_mono_ms_finer(void **state)
{
	int64_t before_ms, us, after_ms;

	(void)state;
	before_ms = kiln_mono_ms();
	us = kiln_mono_us();
	after_ms = kiln_mono_ms();
	assert_in_range(us / 1000, before_ms, after_ms);
	assert_true(kiln_mono_us() >= us);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats_known_instants),
		cmocka_unit_test(test_matches_strftime_and_reads_back),
		cmocka_unit_test(test_mono_us_is_mono_ms_finer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
