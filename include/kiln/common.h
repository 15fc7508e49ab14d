/*
 * common.h - result codes, the caller-owned error record, clocks and ids.
 *
 * Every fallible function in Kiln returns an enum kiln_rc and takes a
 * struct kiln_err * last.  The error carries the code, the name of the
 * field at fault (a JSON Pointer-ish path or a config key, may be empty)
 * and a human message.  reply.c is the one place that turns codes into
 * HTTP statuses.
 */
#ifndef KILN_COMMON_H
#define KILN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define KILN_WARN_UNUSED __attribute__((warn_unused_result))
#define KILN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KILN_WARN_UNUSED
#define KILN_PRINTF(a, b)
#endif

enum kiln_rc {
	KILN_OK = 0,
	KILN_EINVAL,    /* bad input: 422/400 */
	KILN_ENOTFOUND, /* 404 */
	KILN_ECONFLICT, /* state transition not allowed: 409 */
	KILN_EFORBIDDEN,/* 403 */
	KILN_EAUTH,     /* 401 */
	KILN_ETOOBIG,   /* 413 */
	KILN_EBUSY,     /* store busy or full: 503 */
	KILN_EIO,       /* local I/O or store failure */
	KILN_EUPSTREAM, /* a provider or receiver misbehaved */
	KILN_ENOMEM,
	KILN_ETIMEOUT,
};

#define KILN_ERR_FIELD_MAX 256
#define KILN_ERR_MSG_MAX 1024

struct kiln_err {
	enum kiln_rc code;
	char field[KILN_ERR_FIELD_MAX]; /* offending field or key, "" if none */
	char msg[KILN_ERR_MSG_MAX];
};

/* Fill err (if not NULL) and return code, so callers can write
 * `return kiln_err_set(err, KILN_EINVAL, "name", "too long");` */
enum kiln_rc kiln_err_set(struct kiln_err *err, enum kiln_rc code,
			  const char *field, const char *fmt, ...)
	KILN_PRINTF(4, 5);
void kiln_err_clear(struct kiln_err *err);
const char *kiln_rc_name(enum kiln_rc rc);

/* Wall clock in milliseconds since the Unix epoch. */
int64_t kiln_now_ms(void);
/* Monotonic clock in milliseconds, for timeouts and intervals. */
int64_t kiln_mono_ms(void);
/* The monotonic clock in microseconds. */
int64_t kiln_mono_us(void);

#define KILN_RFC3339_LEN 32
/* Writes "2022-04-13T15:42:05.901Z" (UTC, milliseconds) into out. */
void kiln_rfc3339(int64_t ms, char out[KILN_RFC3339_LEN]);
/* Reads an RFC 3339 time (what kiln_rfc3339 writes, any fraction, "Z" or
 * a "+hh:mm"/"-hh:mm" offset) into ms since the epoch; -1 if s is not
 * such a time, or names no real date (a 13th month, 30 February). */
int64_t kiln_rfc3339_parse(const char *s);

#define KILN_UUID_LEN 37
/* A fresh random UUID (libuuid), lower-case, into out. */
void kiln_uuid_new(char out[KILN_UUID_LEN]);
/* 1 if s is a canonical 36-character UUID (any case), else 0. */
int kiln_uuid_is_valid(const char *s);

/* Safe bounded copy: always NUL-terminates, returns strlen(src). */
size_t kiln_strlcpy(char *dst, const char *src, size_t size);

#endif
