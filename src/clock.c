/*
 * clock.c - wall and monotonic clocks in milliseconds (and monotonic in
 * microseconds), RFC 3339 rendering.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kiln/common.h"

int64_t kiln_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kiln_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kiln_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* v (0 <= v < 10^n) as n decimal digits, zero-padded. */
static void put_digits(char *to, int v, int n)
{
	while (n-- > 0) {
		to[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

void kiln_rfc3339(int64_t ms, char out[KILN_RFC3339_LEN])
{
	time_t secs = (time_t)(ms / 1000);
	int millis = (int)(ms % 1000);
	struct tm tm;
	char buf[96]; /* room for any int year, to keep -Wformat happy */

	if (millis < 0) {
		millis += 1000;
		secs -= 1;
	}
	gmtime_r(&secs, &tm);
	if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
		snprintf(buf, sizeof(buf),
			 "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
		kiln_strlcpy(out, buf, KILN_RFC3339_LEN);
		return;
	}
	/* By hand: several times a step, and snprintf costs 3,000
	 * instructions a call. */
	put_digits(out, tm.tm_year + 1900, 4);
	out[4] = '-';
	put_digits(out + 5, tm.tm_mon + 1, 2);
	out[7] = '-';
	put_digits(out + 8, tm.tm_mday, 2);
	out[10] = 'T';
	put_digits(out + 11, tm.tm_hour, 2);
	out[13] = ':';
	put_digits(out + 14, tm.tm_min, 2);
	out[16] = ':';
	put_digits(out + 17, tm.tm_sec, 2);
	out[19] = '.';
	put_digits(out + 20, millis, 3);
	out[23] = 'Z';
	out[24] = '\0';
}

/* Days in month mo (1-12) of year y. */
static int month_days(int y, int mo)
{
	static const int days[] = {31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return days[mo - 1] + (mo == 2 && leap);
}

int64_t kiln_rfc3339_parse(const char *s)
{
	int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0, sign = 0;
	long ms = 0;
	struct tm tm = {0};
	const char *p;

	if (s == NULL ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi,
		   &sec, &n) != 6 || n != 19)
		return -1;
	/* timegm would carry a 13th month or a 30 February into the next:
	 * such a time is not a time. (60: a leap second.) */
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 ||
	    mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
		return -1;
	p = s + n;
	if (*p == '.') {
		int digits = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	/* "Z", or an offset "+hh:mm" / "-hh:mm". */
	if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
		sign = 0;
	} else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 &&
		   sscanf(p + 1, "%2d:%2d", &oh, &om) == 2 && p[3] == ':' &&
		   oh <= 23 && om <= 59 && oh >= 0 && om >= 0) {
		sign = p[0] == '+' ? 1 : -1;
	} else {
		return -1;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return ((int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60)) * 1000 +
	       ms;
}
