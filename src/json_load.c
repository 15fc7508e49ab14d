/*
 * json_load.c - JSON text to jansson values, straight from the buffer
 * (see json_load.h).
 *
 * A recursive descent over the bytes.  Strings without escapes (nearly
 * all) are found 8 bytes at a time and handed to jansson from the input;
 * the rest are decoded into a buffer.  Any doubt ends the fast read and
 * json_loadb reads the text again: an error, a depth past FAST_DEPTH, a
 * \u0000 or a lone surrogate, a number longer than NUM_MAX.  The checks
 * that remain are jansson's (load.c, utf.c): control bytes in strings,
 * strict UTF-8, '0' not followed by a digit, a '.' or an exponent with
 * digits after it, integers that fit json_int_t, reals that do not
 * overflow, words that are exactly true, false or null, nothing but
 * white space after the value.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/json_load.h"
#include "kiln/utf8.h"

/* Deeper texts go to jansson (whose limit is 2048), so this reader's
 * recursion stays small on any thread's stack. */
#define FAST_DEPTH 128
/* Longer numbers go to jansson. */
#define NUM_MAX 64

struct reader {
	const unsigned char *s, *end;
	int depth;
	char *buf; /* decoded strings */
	size_t len, cap;
};

static void skip_space(struct reader *r)
{
	while (r->s < r->end && (*r->s == ' ' || *r->s == '\n' ||
				 *r->s == '\r' || *r->s == '\t'))
		r->s++;
}

/* Whether none of the 8 bytes in x ends a plain run of a string: none is
 * below 0x20, '"', '\\' or from 0x80 up.  See clean8 in json_writer.c
 * for the arithmetic. */
static int plain8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101u;
	const uint64_t highs = 0x8080808080808080u;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');

	return ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
		 ((b - ones) & ~b) | x) &
		highs) == 0;
}

static int append(struct reader *r, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 256;
		char *nb;

		while (cap < r->len + n)
			cap *= 2;
		nb = realloc(r->buf, cap);
		if (nb == NULL)
			return -1;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	return 0;
}

static int hex4(const unsigned char *s)
{
	int v = 0, i;

	for (i = 0; i < 4; i++) {
		int c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* The \u escape at s (6 bytes, or 12 for a surrogate pair) appended as
 * UTF-8; its length, 0 if jansson would refuse it or it is \u0000. */
static size_t unicode_escape(struct reader *r, const unsigned char *s)
{
	unsigned char out[4];
	long cp;
	int lo;
	size_t used = 6, n;

	if (r->end - s < 6 || (cp = hex4(s + 2)) <= 0)
		return 0;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return 0;
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		if (r->end - s < 12 || s[6] != '\\' || s[7] != 'u' ||
		    (lo = hex4(s + 8)) < 0xDC00 || lo > 0xDFFF)
			return 0;
		cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
		used = 12;
	}
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (unsigned char)(0xC0 | cp >> 6);
		out[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (unsigned char)(0xE0 | cp >> 12);
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		out[0] = (unsigned char)(0xF0 | cp >> 18);
		out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		out[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return append(r, out, n) == 0 ? used : 0;
}

/* The rest of a string from s, its first escape, decoded into r->buf
 * after the len bytes already there.  0, or -1 if not read. */
static int decode_rest(struct reader *r, const unsigned char *s)
{
	static const char plain[] = "\"\\/bfnrt";
	static const char meant[] = "\"\\/\b\f\n\r\t";
	const unsigned char *run;
	const char *e;
	size_t n;

	while (s < r->end) {
		if (*s == '"') {
			r->s = s + 1;
			return 0;
		}
		if (*s == '\\') {
			if (r->end - s < 2)
				return -1;
			if (s[1] == 'u') {
				n = unicode_escape(r, s);
				if (n == 0)
					return -1;
				s += n;
				continue;
			}
			e = s[1] ? strchr(plain, s[1]) : NULL;
			if (e == NULL || append(r, &meant[e - plain], 1) != 0)
				return -1;
			s += 2;
			continue;
		}
		if (*s >= 0x80) {
			n = kiln_utf8_sequence(s, (size_t)(r->end - s));
			if (n == 0 || append(r, s, n) != 0)
				return -1;
			s += n;
			continue;
		}
		if (*s < 0x20)
			return -1;
		for (run = s; s < r->end && *s >= 0x20 && *s < 0x80 &&
			      *s != '"' && *s != '\\';
		     s++)
			;
		if (append(r, run, (size_t)(s - run)) != 0)
			return -1;
	}
	return -1;
}

/* The string whose opening quote is at r->s: *str (in the input, or in
 * r->buf when it had escapes) and *len.  0, or -1 if not read. */
static int read_string(struct reader *r, const char **str, size_t *len)
{
	const unsigned char *s = r->s + 1, *start = s;
	uint64_t x;
	size_t n;

	for (;;) {
		while (r->end - s >= 8) {
			memcpy(&x, s, 8);
			if (!plain8(x))
				break;
			s += 8;
		}
		if (s >= r->end)
			return -1;
		if (*s == '"') {
			*str = (const char *)start;
			*len = (size_t)(s - start);
			r->s = s + 1;
			return 0;
		}
		if (*s == '\\')
			break;
		if (*s < 0x20)
			return -1;
		if (*s >= 0x80) {
			n = kiln_utf8_sequence(s, (size_t)(r->end - s));
			if (n == 0)
				return -1;
			s += n;
		} else {
			s++;
		}
	}
	r->len = 0;
	if (append(r, start, (size_t)(s - start)) != 0 ||
	    decode_rest(r, s) != 0)
		return -1;
	*str = r->buf;
	*len = r->len;
	return 0;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static const unsigned char *digits(const unsigned char *s,
				   const unsigned char *end)
{
	while (s < end && is_digit(*s))
		s++;
	return s;
}

/* The number at r->s, by jansson's grammar: an integer unless it has a
 * fraction or an exponent. */
static json_t *read_number(struct reader *r)
{
	const unsigned char *s = r->s, *end = r->end, *first;
	char text[NUM_MAX + 1];
	int real = 0, neg = 0;
	size_t n;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	first = s;
	if (s >= end || !is_digit(*s))
		return NULL;
	if (*s == '0') {
		s++;
		if (s < end && is_digit(*s))
			return NULL;
	} else {
		s = digits(s, end);
	}
	if (s < end && *s == '.') {
		if (end - s < 2 || !is_digit(s[1]))
			return NULL;
		s = digits(s + 1, end);
		real = 1;
	}
	if (s < end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		if (s >= end || !is_digit(*s))
			return NULL;
		s = digits(s, end);
		real = 1;
	}
	n = (size_t)(s - r->s);
	r->s = s;
	if (!real && s - first <= 18) {
		uint64_t v = 0;

		for (; first < s; first++)
			v = v * 10 + (uint64_t)(*first - '0');
		return json_integer(neg ? -(json_int_t)v : (json_int_t)v);
	}
	if (n > NUM_MAX)
		return NULL;
	memcpy(text, s - n, n);
	text[n] = '\0';
	errno = 0;
	if (!real) {
		long long v = strtoll(text, NULL, 10);

		return errno == ERANGE ? NULL : json_integer(v);
	}
	/* jansson turns '.' into the locale's decimal point first; kilnd
	 * runs in the C locale, and leaves any other to jansson. */
	if (strcmp(localeconv()->decimal_point, ".") != 0)
		return NULL;
	{
		double d = strtod(text, NULL);

		if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
			return NULL;
		return json_real(d);
	}
}

/* A word (true, false, null) as jansson reads one: all the letters. */
static json_t *read_word(struct reader *r)
{
	const unsigned char *s = r->s;
	size_t n;

	while (s < r->end && ((*s >= 'a' && *s <= 'z') ||
			      (*s >= 'A' && *s <= 'Z')))
		s++;
	n = (size_t)(s - r->s);
	if (n == 4 && memcmp(r->s, "true", 4) == 0) {
		r->s = s;
		return json_true();
	}
	if (n == 5 && memcmp(r->s, "false", 5) == 0) {
		r->s = s;
		return json_false();
	}
	if (n == 4 && memcmp(r->s, "null", 4) == 0) {
		r->s = s;
		return json_null();
	}
	return NULL;
}

static json_t *read_value(struct reader *r);

/* After white space, c: consumed, and 1; otherwise 0. */
static int take(struct reader *r, char c)
{
	skip_space(r);
	if (r->s >= r->end || *r->s != (unsigned char)c)
		return 0;
	r->s++;
	return 1;
}

static json_t *read_array(struct reader *r)
{
	json_t *a = json_array(), *v;

	r->s++;
	if (take(r, ']'))
		return a;
	while (a != NULL) {
		v = read_value(r);
		if (v == NULL || json_array_append_new(a, v) != 0)
			break;
		if (take(r, ']'))
			return a;
		if (!take(r, ','))
			break;
	}
	json_decref(a);
	return NULL;
}

static json_t *read_object(struct reader *r)
{
	json_t *o = json_object(), *v;
	const char *key;
	char *copy;
	size_t len;

	r->s++;
	if (take(r, '}'))
		return o;
	while (o != NULL) {
		skip_space(r);
		if (r->s >= r->end || *r->s != '"' ||
		    read_string(r, &key, &len) != 0)
			break;
		/* A decoded key is in r->buf, which the value may reuse. */
		copy = NULL;
		if (key == r->buf) {
			copy = malloc(len ? len : 1);
			if (copy == NULL)
				break;
			memcpy(copy, key, len);
			key = copy;
		}
		v = take(r, ':') ? read_value(r) : NULL;
		if (v == NULL ||
		    json_object_setn_new_nocheck(o, key, len, v) != 0) {
			free(copy);
			break;
		}
		free(copy);
		if (take(r, '}'))
			return o;
		if (!take(r, ','))
			break;
	}
	json_decref(o);
	return NULL;
}

static json_t *read_value(struct reader *r)
{
	const char *str;
	json_t *v = NULL;
	size_t len;

	skip_space(r);
	if (r->s >= r->end || ++r->depth > FAST_DEPTH)
		return NULL;
	switch (*r->s) {
	case '{':
		v = read_object(r);
		break;
	case '[':
		v = read_array(r);
		break;
	case '"':
		if (read_string(r, &str, &len) == 0)
			v = json_stringn_nocheck(str, len);
		break;
	case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		v = read_number(r);
		break;
	default:
		v = read_word(r);
		break;
	}
	r->depth--;
	return v;
}

json_t *kiln_json_load_fast(const char *text, size_t len, size_t flags)
{
	struct reader r = {(const unsigned char *)text,
			   (const unsigned char *)text + len, 0, NULL, 0, 0};
	json_t *v;

	if (text == NULL || (flags & ~(size_t)JSON_DECODE_ANY) != 0)
		return NULL;
	skip_space(&r);
	if (!(flags & JSON_DECODE_ANY) &&
	    (r.s >= r.end || (*r.s != '{' && *r.s != '[')))
		return NULL;
	v = read_value(&r);
	free(r.buf);
	if (v == NULL)
		return NULL;
	skip_space(&r);
	if (r.s != r.end) {
		json_decref(v);
		return NULL;
	}
	return v;
}

json_t *kiln_json_load(const char *text, size_t len, size_t flags,
		       json_error_t *error)
{
	json_t *v = kiln_json_load_fast(text, len, flags);

	return v ? v : json_loadb(text, len, flags, error);
}
