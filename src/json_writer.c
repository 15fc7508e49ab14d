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
	cap = w->cap ? w->cap : 256;
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

/* Whether none of the 8 bytes in x needs an escape: none is below 0x20,
 * '"' or '\\'.  (v - 0x01..) & ~v & 0x80.. is nonzero exactly when a
 * byte of v is zero (and v - 0x20.. when one is below 0x20); bytes from
 * 0x80 up never count, so UTF-8 passes. */
static int clean8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101u;
	const uint64_t highs = 0x8080808080808080u;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');

	return ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
		 ((b - ones) & ~b)) &
		highs) == 0;
}

static int needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

/* s (len bytes, from a byte that needs an escape) escaped. */
static void put_escaped(struct kiln_jw *w, const char *s, size_t len)
{
	size_t i = 0, from = 0, end;
	uint64_t x;
	char esc[8];

	while (i < len) {
		if (len - i >= 8) {
			memcpy(&x, s + i, 8);
			if (clean8(x)) {
				i += 8;
				continue;
			}
			end = i + 8;
		} else {
			end = len;
		}
		for (; i < end; i++) {
			unsigned char c = (unsigned char)s[i];
			const char *e;

			if (!needs_escape(c))
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
	}
	put(w, s + from, len - from);
}

/* s as a JSON string, without the separator.  The escapes are jansson's
 * (dump.c): \" \\ \b \f \n \r \t, \u00XX (upper case) for the other
 * control characters; everything else, '/' and non-ASCII included, as
 * it is.  Most strings need no escape at all: the text up to the first
 * byte that does is found 8 bytes at a time and copied at once.  Byte by
 * byte, through put(), this was the writer's largest cost (180 strings a
 * workflow). */
static void quote(struct kiln_jw *w, const char *s, size_t len)
{
	size_t i = 0;
	uint64_t x;

	if (grow(w, len + 2) != 0)
		return;
	while (len - i >= 8) {
		memcpy(&x, s + i, 8);
		if (!clean8(x))
			break;
		i += 8;
	}
	while (i < len && !needs_escape((unsigned char)s[i]))
		i++;
	w->buf[w->len++] = '"';
	memcpy(w->buf + w->len, s, i);
	w->len += i;
	if (i < len)
		put_escaped(w, s + i, len - i);
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
	/* By hand, from the last digit: snprintf costs several hundred
	 * instructions a number, and every answer has a dozen. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	char num[24], *p = num + sizeof(num);

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	sep(w);
	put(w, p, (size_t)(num + sizeof(num) - p));
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

/* A real as jansson writes it (strconv.c, jsonp_dtostr with precision
 * 17): "%.17g", ".0" added when it would read back as an integer, and
 * the exponent without '+' or leading zeros. */
static void put_real(struct kiln_jw *w, double v)
{
	char num[40], *e, *digits;
	int n = snprintf(num, sizeof(num), "%.17g", v);

	if (n < 0 || (size_t)n >= sizeof(num) - 3) {
		w->failed = 1;
		return;
	}
	if (strchr(num, '.') == NULL && strchr(num, 'e') == NULL) {
		memcpy(num + n, ".0", 3);
		n += 2;
	}
	e = strchr(num, 'e');
	if (e != NULL) {
		e++;
		digits = e + 1;
		if (*e == '-')
			e++;
		while (*digits == '0')
			digits++;
		memmove(e, digits, strlen(digits) + 1);
		n = (int)strlen(num);
	}
	put(w, num, (size_t)n);
}

/* v dumped as json_dumps(v, JSON_COMPACT) would: objects in their keys'
 * order of insertion, which is jansson's unsorted order too. */
static void put_value(struct kiln_jw *w, const json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		kiln_jw_open(w, '{');
		json_object_foreach((json_t *)v, key, item) {
			kiln_jw_key(w, key);
			put_value(w, item);
		}
		kiln_jw_close(w, '}');
		break;
	case JSON_ARRAY:
		kiln_jw_open(w, '[');
		json_array_foreach(v, i, item)
			put_value(w, item);
		kiln_jw_close(w, ']');
		break;
	case JSON_STRING:
		kiln_jw_strn(w, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		kiln_jw_int(w, json_integer_value(v));
		break;
	case JSON_REAL:
		sep(w);
		put_real(w, json_real_value(v));
		break;
	case JSON_TRUE:
		kiln_jw_raw(w, "true");
		break;
	case JSON_FALSE:
		kiln_jw_raw(w, "false");
		break;
	case JSON_NULL:
	default:
		kiln_jw_null(w);
		break;
	}
}

void kiln_jw_json(struct kiln_jw *w, const json_t *v)
{
	if (v == NULL)
		kiln_jw_null(w);
	else
		put_value(w, v);
}

void kiln_jw_reserve(struct kiln_jw *w, size_t n)
{
	if (n > w->len)
		(void)grow(w, n - w->len);
}

char *kiln_jw_text(const json_t *v, size_t *len)
{
	struct kiln_jw w = {0};

	kiln_jw_json(&w, v);
	return kiln_jw_take(&w, len);
}

char *kiln_jw_dump(const json_t *v)
{
	size_t len;
	char *text = kiln_jw_text(v, &len), *fit;

	/* Some of these texts are kept while a call is out, thousands at
	 * once: no slack. */
	fit = text ? realloc(text, len + 1) : NULL;
	return fit ? fit : text;
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
