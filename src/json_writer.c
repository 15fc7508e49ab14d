/*
 * json_writer.c - JSON text written straight into a growing buffer (see
 * json_writer.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/json_writer.h"

static int grow(struct kiln_jw *w, size_t more)
{
	size_t cap;
	char *nb;

	if (w->failed)
		return -1;
	if (w->len + more + 1 <= w->cap)
		return 0;
	cap = w->cap ? w->cap : 1024;
	while (cap < w->len + more + 1)
		cap *= 2;
	nb = realloc(w->buf, cap);
	if (nb == NULL) {
		w->failed = 1;
		return -1;
	}
	w->buf = nb;
	w->cap = cap;
	return 0;
}

static void put(struct kiln_jw *w, const char *s, size_t n)
{
	if (grow(w, n) != 0)
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

/* The comma before a value or key, unless it opens a container or
 * follows a key. */
static void sep(struct kiln_jw *w)
{
	char last;

	if (w->len == 0)
		return;
	last = w->buf[w->len - 1];
	if (last != '{' && last != '[' && last != ':')
		put(w, ",", 1);
}

void kiln_jw_open(struct kiln_jw *w, char bracket)
{
	sep(w);
	put(w, &bracket, 1);
}

void kiln_jw_close(struct kiln_jw *w, char bracket)
{
	put(w, &bracket, 1);
}

/* s as a JSON string, without the separator.  The escapes are jansson's
 * (dump.c): \" \\ \b \f \n \r \t, \u00XX (upper case) for the other
 * control characters; everything else, '/' and non-ASCII included, as
 * it is. */
static void quote(struct kiln_jw *w, const char *s, size_t len)
{
	size_t i, from = 0;
	char esc[8];

	put(w, "\"", 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *e;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(w, s + from, i - from);
		from = i + 1;
		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04X", c);
			e = esc;
			break;
		}
		put(w, e, strlen(e));
	}
	put(w, s + from, len - from);
	put(w, "\"", 1);
}

void kiln_jw_key(struct kiln_jw *w, const char *key)
{
	sep(w);
	quote(w, key, strlen(key));
	put(w, ":", 1);
}

void kiln_jw_strn(struct kiln_jw *w, const char *s, size_t len)
{
	sep(w);
	quote(w, s, len);
}

void kiln_jw_str(struct kiln_jw *w, const char *s)
{
	if (s == NULL)
		kiln_jw_null(w);
	else
		kiln_jw_strn(w, s, strlen(s));
}

void kiln_jw_int(struct kiln_jw *w, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	sep(w);
	put(w, num, (size_t)n);
}

void kiln_jw_bool(struct kiln_jw *w, int v)
{
	kiln_jw_raw(w, v ? "true" : "false");
}

void kiln_jw_null(struct kiln_jw *w)
{
	kiln_jw_raw(w, "null");
}

void kiln_jw_raw(struct kiln_jw *w, const char *text)
{
	sep(w);
	put(w, text, strlen(text));
}

static int put_cb(const char *s, size_t n, void *data)
{
	struct kiln_jw *w = data;

	put(w, s, n);
	return w->failed ? -1 : 0;
}

void kiln_jw_json(struct kiln_jw *w, const json_t *v)
{
	if (v == NULL) {
		kiln_jw_null(w);
		return;
	}
	if (json_is_string(v)) {
		kiln_jw_strn(w, json_string_value(v), json_string_length(v));
		return;
	}
	sep(w);
	if (json_dump_callback(v, put_cb, w, JSON_COMPACT | JSON_ENCODE_ANY) !=
	    0)
		w->failed = 1;
}

char *kiln_jw_take(struct kiln_jw *w, size_t *len)
{
	char *text = NULL;
	size_t n = 0;

	if (!w->failed) {
		text = w->buf ? w->buf : calloc(1, 1);
		n = w->len;
		w->buf = NULL;
	}
	kiln_jw_free(w);
	if (len != NULL)
		*len = text ? n : 0;
	return text;
}

void kiln_jw_free(struct kiln_jw *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
	w->failed = 0;
}
