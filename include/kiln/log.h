/*
 * log.h - the one logging call.  Lines go to stderr (journald picks them
 * up under systemd) as "LEVEL message".  Thread-safe.
 */
#ifndef KILN_LOG_H
#define KILN_LOG_H

#include "kiln/common.h"

enum kiln_log_level {
	KILN_LOG_DEBUG = 0,
	KILN_LOG_INFO,
	KILN_LOG_WARN,
	KILN_LOG_ERROR,
};

void kiln_log_set_level(enum kiln_log_level level);
/* Parses "debug|info|warn|error"; returns 0 on success, -1 otherwise. */
int kiln_log_parse_level(const char *s, enum kiln_log_level *out);
void kiln_log(enum kiln_log_level level, const char *fmt, ...)
	KILN_PRINTF(2, 3);

#endif
