/*
 * err.c - the caller-owned error record and bounded string copy.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kiln/common.h"
#include "kiln/utf8.h"

enum kiln_rc kiln_err_set(struct kiln_err *err, enum kiln_rc code,
			  const char *field, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	kiln_strlcpy(err->field, field ? field : "", sizeof(err->field));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* A message cut to fit must still be valid UTF-8 for the reply. */
	kiln_utf8_trim_tail(err->msg);
	return code;
}

void kiln_err_clear(struct kiln_err *err)
{
	if (err == NULL)
		return;
	err->code = KILN_OK;
	err->field[0] = '\0';
	err->msg[0] = '\0';
}

const char *kiln_rc_name(enum kiln_rc rc)
{
	switch (rc) {
	case KILN_OK: return "ok";
	case KILN_EINVAL: return "invalid";
	case KILN_ENOTFOUND: return "not found";
	case KILN_ECONFLICT: return "conflict";
	case KILN_EFORBIDDEN: return "forbidden";
	case KILN_EAUTH: return "unauthorized";
	case KILN_ETOOBIG: return "too big";
	case KILN_EBUSY: return "busy";
	case KILN_EIO: return "i/o error";
	case KILN_EUPSTREAM: return "upstream error";
	case KILN_ENOMEM: return "out of memory";
	case KILN_ETIMEOUT: return "timeout";
	}
	return "unknown";
}

size_t kiln_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = kiln_utf8_prefix(src, len, size - 1);
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}
