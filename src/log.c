/*
 * log.c - one log call for the whole daemon: "<time> LEVEL message" on
 * stderr, one write per line so threads do not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kiln/log.h"

static volatile enum kiln_log_level current_level = KILN_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void kiln_log_set_level(enum kiln_log_level level)
{
	current_level = level;
}

int kiln_log_parse_level(const char *s, enum kiln_log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (s != NULL && strcmp(s, level_names[i]) == 0) {
			*out = (enum kiln_log_level)i;
			return 0;
		}
	}
	return -1;
}

void kiln_log(enum kiln_log_level level, const char *fmt, ...)
{
	char line[2048];
	char ts[KILN_RFC3339_LEN];
	int n;
	va_list ap;

	if (level < current_level)
		return;
	kiln_rfc3339(kiln_now_ms(), ts);
	n = snprintf(line, sizeof(line), "%s %-5s ", ts, level_names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return; /* nowhere left to report it */
}
