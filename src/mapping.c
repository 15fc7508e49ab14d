/*
 * mapping.c - input mappings (see mapping.h): field lookup by key or JSON
 * Pointer, the transforms, and applying one FieldMapping to a step input.
 *
 * Everything handed out here is fresh: a transform deep-copies what it
 * returns, so a step input built from mappings never shares a node with
 * the source step's result, and changing one cannot change the other.
 *
 * jansson prints reals with 17 significant digits (0.1 comes out as
 * 0.10000000000000001).  to_string and json_encode produce text that
 * people and providers read, so they use a small encoder of our own that
 * prints the shortest text reading back as the same double, and is
 * otherwise compact JSON in the object's insertion order.
 *
 * JSON Pointers (RFC 6901) are decoded token by token from a private copy
 * of the field, unescaping in place (~1 is '/', ~0 is '~').  Array indices
 * are decimal without leading zeros; "-" (one past the end) only makes
 * sense when setting, where it appends.
 *
 * Messages quote user-supplied text through kiln_text_excerpt(), which
 * bounds it and cuts only between UTF-8 characters: the messages end up in JSON replies,
 * and jansson refuses a string that stops half-way through a character.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kiln/json_load.h"
#include "kiln/mapping.h"
#include "kiln/utf8.h"

_Static_assert(sizeof(json_int_t) == sizeof(long long),
	       "numeric strings are parsed with strtoll");

/* Longest quote of a user-supplied value or name in a message, bytes. */
#define EXCERPT_VALUE_MAX 64
#define EXCERPT_NAME_MAX 200
#define EXCERPT_BUF (EXCERPT_NAME_MAX + 4)

/* Deepest nesting the encoder follows; jansson's parser stops at 2048. */
#define ENCODE_DEPTH_MAX 2048

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static const char *excerpt_name(const char *s, char out[EXCERPT_BUF])
{
	return kiln_text_excerpt(s, strlen(s), EXCERPT_NAME_MAX, out);
}

/* "object", "array", ... for "needs an array, got object". */
static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: break;
	}
	return "null";
}

/* The shortest "%g" text that reads back as d, always looking like a real
 * ("2.0", not "2"). */
static void format_real(double d, char *buf, size_t size)
{
	int precision;

	for (precision = 1; precision <= 17; precision++) {
		snprintf(buf, size, "%.*g", precision, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, ".eEni") == NULL && strlen(buf) + 2 < size)
		memcpy(buf + strlen(buf), ".0", 3);
}

/* "a string 'abc'", "the number 1e+300", "an object": for messages. */
static void describe(const json_t *v, char *buf, size_t size)
{
	char text[EXCERPT_VALUE_MAX + 4];

	switch (json_typeof(v)) {
	case JSON_STRING:
		snprintf(buf, size, "a string '%s'",
			 kiln_text_excerpt(json_string_value(v),
					   json_string_length(v),
					   EXCERPT_VALUE_MAX, text));
		return;
	case JSON_INTEGER:
		snprintf(buf, size, "the number %" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return;
	case JSON_REAL:
		format_real(json_real_value(v), text, sizeof(text));
		snprintf(buf, size, "the number %s", text);
		return;
	case JSON_TRUE:
	case JSON_FALSE:
		snprintf(buf, size, "the boolean %s",
			 json_is_true(v) ? "true" : "false");
		return;
	case JSON_OBJECT:
		snprintf(buf, size, "an object");
		return;
	case JSON_ARRAY:
		snprintf(buf, size, "an array");
		return;
	case JSON_NULL:
		break;
	}
	snprintf(buf, size, "null");
}

/* ------------------------------------------------------------------ */
/* Compact JSON text                                                   */
/* ------------------------------------------------------------------ */

/* A growing string.  After a failure it ignores further additions. */
struct text {
	char *s;
	size_t len;
	size_t cap;
	enum kiln_rc rc; /* KILN_OK, KILN_ENOMEM or KILN_EINVAL (too deep) */
};

static void text_add(struct text *t, const char *p, size_t n)
{
	if (t->rc != KILN_OK)
		return;
	if (t->cap - t->len <= n) {
		size_t cap = t->cap > 0 ? t->cap : 64;
		char *s;

		while (cap - t->len <= n) {
			if (cap > SIZE_MAX / 2) {
				t->rc = KILN_ENOMEM;
				return;
			}
			cap *= 2;
		}
		s = realloc(t->s, cap);
		if (s == NULL) {
			t->rc = KILN_ENOMEM;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

static void encode_string(struct text *t, const char *s, size_t len)
{
	size_t i, start = 0;
	char hex[8];

	text_add(t, "\"", 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				snprintf(hex, sizeof(hex), "\\u%04x", c);
				esc = hex;
			}
		}
		if (esc == NULL)
			continue;
		text_add(t, s + start, i - start);
		text_puts(t, esc);
		start = i + 1;
	}
	text_add(t, s + start, len - start);
	text_add(t, "\"", 1);
}

static void encode(struct text *t, json_t *v, int depth)
{
	char num[40];
	const char *key;
	size_t i;
	json_t *item;

	if (depth > ENCODE_DEPTH_MAX) {
		if (t->rc == KILN_OK)
			t->rc = KILN_EINVAL;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		text_add(t, "{", 1);
		i = 0;
		json_object_foreach(v, key, item) {
			if (i++ > 0)
				text_add(t, ",", 1);
			encode_string(t, key, strlen(key));
			text_add(t, ":", 1);
			encode(t, item, depth + 1);
		}
		text_add(t, "}", 1);
		break;
	case JSON_ARRAY:
		text_add(t, "[", 1);
		json_array_foreach(v, i, item) {
			if (i > 0)
				text_add(t, ",", 1);
			encode(t, item, depth + 1);
		}
		text_add(t, "]", 1);
		break;
	case JSON_STRING:
		encode_string(t, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		text_puts(t, num);
		break;
	case JSON_REAL:
		format_real(json_real_value(v), num, sizeof(num));
		text_puts(t, num);
		break;
	case JSON_TRUE: text_puts(t, "true"); break;
	case JSON_FALSE: text_puts(t, "false"); break;
	case JSON_NULL: text_puts(t, "null"); break;
	}
}

/* v as compact JSON text in a new JSON string, or NULL with err set. */
static json_t *encode_to_string(const char *name, json_t *v,
				struct kiln_err *err)
{
	struct text t = {NULL, 0, 0, KILN_OK};
	json_t *out = NULL;

	encode(&t, v, 0);
	if (t.rc == KILN_EINVAL) {
		kiln_err_set(err, KILN_EINVAL, "",
			     "transform '%s' got a value nested too deeply",
			     name);
		goto out;
	}
	if (t.rc == KILN_OK)
		out = json_stringn(t.s, t.len);
	if (out == NULL)
		kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
out:
	free(t.s);
	return out;
}

/* ------------------------------------------------------------------ */
/* Numeric strings                                                     */
/* ------------------------------------------------------------------ */

/*
 * Parses a decimal number written as text: optional surrounding spaces, a
 * sign, digits with an optional fraction and exponent.  strtod alone would
 * also take "inf", "nan" and hex, which nobody means by a numeric string.
 * Sets *is_integer when there is neither fraction nor exponent.  Returns 0,
 * or -1 if s is not such a number.
 */
static int check_numeric(const char *s, size_t len, int *is_integer)
{
	const char *p = s, *end = s + len;
	size_t n_digits = 0;

	*is_integer = 1;
	if (strlen(s) != len) /* an embedded NUL */
		return -1;
	while (p < end && isspace((unsigned char)*p))
		p++;
	if (p < end && (*p == '+' || *p == '-'))
		p++;
	for (; p < end && isdigit((unsigned char)*p); p++)
		n_digits++;
	if (p < end && *p == '.') {
		*is_integer = 0;
		for (p++; p < end && isdigit((unsigned char)*p); p++)
			n_digits++;
	}
	if (n_digits == 0)
		return -1;
	if (p < end && (*p == 'e' || *p == 'E')) {
		*is_integer = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !isdigit((unsigned char)*p))
			return -1;
		while (p < end && isdigit((unsigned char)*p))
			p++;
	}
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p == end ? 0 : -1;
}

/* A finite double from a numeric string; -1 if not one (or too big). */
static int string_to_real(const json_t *v, double *out)
{
	int is_integer;
	double d;

	if (check_numeric(json_string_value(v), json_string_length(v),
			  &is_integer) != 0)
		return -1;
	d = strtod(json_string_value(v), NULL);
	if (!isfinite(d))
		return -1;
	*out = d;
	return 0;
}

/* Truncates d toward zero; -1 if that is outside json_int_t. */
static int real_to_int(double d, json_int_t *out)
{
	if (!(d >= -0x1p63 && d < 0x1p63))
		return -1;
	*out = (json_int_t)d;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Transforms                                                          */
/* ------------------------------------------------------------------ */

/* Each returns a new reference, or NULL with err set.  value is never
 * modified and never shared with the result. */
typedef json_t *(*transform_fn)(const char *name, json_t *value,
				struct kiln_err *err);

static json_t *cannot_convert(const char *name, const json_t *value,
			      const char *to, struct kiln_err *err)
{
	char what[EXCERPT_VALUE_MAX + 32];

	describe(value, what, sizeof(what));
	kiln_err_set(err, KILN_EINVAL, "", "transform '%s' cannot convert %s"
		     " to %s", name, what, to);
	return NULL;
}

static json_t *needs_array(const char *name, const json_t *value,
			   struct kiln_err *err)
{
	if (json_is_array(value))
		kiln_err_set(err, KILN_EINVAL, "",
			     "transform '%s' needs a non-empty array", name);
	else
		kiln_err_set(err, KILN_EINVAL, "",
			     "transform '%s' needs an array, got %s", name,
			     type_name(value));
	return NULL;
}

static json_t *tf_to_string(const char *name, json_t *value,
			    struct kiln_err *err)
{
	if (json_is_string(value))
		return json_stringn(json_string_value(value),
				    json_string_length(value));
	return encode_to_string(name, value, err);
}

static json_t *tf_to_int(const char *name, json_t *value,
			 struct kiln_err *err)
{
	json_int_t i;
	double d;
	int is_integer;

	if (json_is_integer(value))
		return json_integer(json_integer_value(value));
	if (json_is_real(value)) {
		if (real_to_int(json_real_value(value), &i) != 0)
			return cannot_convert(name, value, "an integer", err);
		return json_integer(i);
	}
	if (!json_is_string(value) ||
	    check_numeric(json_string_value(value), json_string_length(value),
			  &is_integer) != 0)
		return cannot_convert(name, value, "an integer", err);
	if (is_integer) {
		errno = 0;
		i = strtoll(json_string_value(value), NULL, 10);
		if (errno == ERANGE)
			return cannot_convert(name, value, "an integer", err);
		return json_integer(i);
	}
	if (string_to_real(value, &d) != 0 || real_to_int(d, &i) != 0)
		return cannot_convert(name, value, "an integer", err);
	return json_integer(i);
}

static json_t *tf_to_float(const char *name, json_t *value,
			   struct kiln_err *err)
{
	double d;

	if (json_is_number(value))
		return json_real(json_number_value(value));
	if (!json_is_string(value) || string_to_real(value, &d) != 0)
		return cannot_convert(name, value, "a number", err);
	return json_real(d);
}

static json_t *tf_to_bool(const char *name, json_t *value,
			  struct kiln_err *err)
{
	const char *s = json_string_value(value);

	if (json_is_boolean(value))
		return json_boolean(json_is_true(value));
	if (json_is_number(value))
		return json_boolean(json_number_value(value) != 0.0);
	if (s != NULL && (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0))
		return json_true();
	if (s != NULL && (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0))
		return json_false();
	return cannot_convert(name, value, "a boolean", err);
}

static json_t *tf_first(const char *name, json_t *value,
			struct kiln_err *err)
{
	if (json_array_size(value) == 0)
		return needs_array(name, value, err);
	return json_deep_copy(json_array_get(value, 0));
}

static json_t *tf_last(const char *name, json_t *value,
		       struct kiln_err *err)
{
	size_t size = json_array_size(value);

	if (size == 0)
		return needs_array(name, value, err);
	return json_deep_copy(json_array_get(value, size - 1));
}

static json_t *tf_to_list(const char *name, json_t *value,
			  struct kiln_err *err)
{
	json_t *list;

	if (json_is_array(value))
		return json_deep_copy(value);
	list = json_array();
	if (list != NULL &&
	    json_array_append_new(list, json_deep_copy(value)) != 0) {
		json_decref(list);
		list = NULL;
	}
	return list;
}

static json_t *tf_json_encode(const char *name, json_t *value,
			      struct kiln_err *err)
{
	return encode_to_string(name, value, err);
}

static json_t *tf_json_decode(const char *name, json_t *value,
			      struct kiln_err *err)
{
	char what[EXCERPT_VALUE_MAX + 32];
	json_error_t jerr;
	json_t *out;

	if (!json_is_string(value)) {
		kiln_err_set(err, KILN_EINVAL, "",
			     "transform '%s' needs a string, got %s", name,
			     type_name(value));
		return NULL;
	}
	out = kiln_json_load(json_string_value(value),
			     json_string_length(value), JSON_DECODE_ANY, &jerr);
	if (out == NULL) {
		describe(value, what, sizeof(what));
		kiln_utf8_trim_tail(jerr.text);
		kiln_err_set(err, KILN_EINVAL, "",
			     "transform '%s' cannot parse %s as JSON: %s",
			     name, what, jerr.text);
	}
	return out;
}

/* In the order of the API's TransformType. */
const char *const kiln_mapping_transforms[] = {
	"to_string", "to_int", "to_float", "to_bool", "first", "last",
	"to_list", "json_encode", "json_decode", NULL,
};

static const struct {
	const char *name;
	transform_fn fn;
} transform_table[] = {
	{"to_string", tf_to_string},
	{"to_int", tf_to_int},
	{"to_float", tf_to_float},
	{"to_bool", tf_to_bool},
	{"first", tf_first},
	{"last", tf_last},
	{"to_list", tf_to_list},
	{"json_encode", tf_json_encode},
	{"json_decode", tf_json_decode},
};

#define N_TRANSFORMS (sizeof(transform_table) / sizeof(transform_table[0]))

_Static_assert(N_TRANSFORMS + 1 == sizeof(kiln_mapping_transforms) /
				       sizeof(kiln_mapping_transforms[0]),
	       "every listed transform has an implementation");

int kiln_mapping_transform_is_known(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && kiln_mapping_transforms[i] != NULL; i++) {
		if (strcmp(name, kiln_mapping_transforms[i]) == 0)
			return 1;
	}
	return 0;
}

json_t *kiln_mapping_transform(const char *transform, json_t *value,
			       struct kiln_err *err)
{
	struct kiln_err inner = {KILN_OK, "", ""};
	char quoted[EXCERPT_BUF];
	json_t *out = NULL;
	size_t i;

	if (value == NULL) {
		kiln_err_set(err, KILN_EINVAL, "", "no value to transform");
		goto out;
	}
	if (transform == NULL || transform[0] == '\0') {
		out = json_deep_copy(value);
		if (out == NULL)
			kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
		goto out;
	}
	for (i = 0; i < N_TRANSFORMS; i++) {
		if (strcmp(transform, transform_table[i].name) == 0)
			break;
	}
	if (i == N_TRANSFORMS) {
		kiln_err_set(err, KILN_EINVAL, "", "unknown transform '%s'",
			     excerpt_name(transform, quoted));
		goto out;
	}
	/* A transform says why it failed, except when jansson ran out of
	 * memory on its behalf. */
	out = transform_table[i].fn(transform, value, &inner);
	if (out == NULL && inner.code != KILN_OK && err != NULL)
		*err = inner;
	else if (out == NULL)
		kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
out:
	return out;
}

/* ------------------------------------------------------------------ */
/* Fields and JSON Pointers                                            */
/* ------------------------------------------------------------------ */

/* 1 if every '~' in the pointer starts "~0" or "~1". */
static int pointer_is_valid(const char *p)
{
	for (; *p != '\0'; p++) {
		if (*p == '~' && p[1] != '0' && p[1] != '1')
			return 0;
	}
	return 1;
}

/*
 * Takes the next token of a pointer copy: *cursor points just past a '/'.
 * Unescapes the token in place, NUL-terminates it and returns it; sets
 * *is_last when no '/' follows, and *end to the offset from base (the
 * copy's start) just past the token, which is also its end in the
 * original text.  The pointer must have passed pointer_is_valid.
 */
static char *pointer_next(char *base, char **cursor, int *is_last,
			  size_t *end)
{
	char *start = *cursor, *in = start, *out = start;

	for (; *in != '\0' && *in != '/'; in++) {
		if (*in == '~') {
			in++;
			*out++ = *in == '0' ? '~' : '/';
		} else {
			*out++ = *in;
		}
	}
	*is_last = *in == '\0';
	*end = (size_t)(in - base);
	*cursor = *is_last ? in : in + 1;
	*out = '\0';
	return start;
}

/* An array index: "0", or decimal digits without a leading zero. */
static int parse_index(const char *tok, size_t *out)
{
	size_t v = 0;

	if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0'))
		return -1;
	for (; *tok != '\0'; tok++) {
		if (*tok < '0' || *tok > '9' || v > (SIZE_MAX - 9) / 10)
			return -1;
		v = v * 10 + (size_t)(*tok - '0');
	}
	*out = v;
	return 0;
}

/* Without memory for the pointer copy the field reads as absent. */
json_t *kiln_json_field_get(const json_t *root, const char *field)
{
	const json_t *parent = root;
	json_t *node = NULL;
	char *copy = NULL, *cursor, *tok;
	int is_last = 0;
	size_t end, index;

	if (root == NULL || field == NULL)
		return NULL;
	if (field[0] != '/')
		return json_object_get(root, field);
	if (!pointer_is_valid(field))
		return NULL;
	copy = strdup(field);
	if (copy == NULL)
		return NULL;
	cursor = copy + 1;
	while (!is_last) {
		tok = pointer_next(copy, &cursor, &is_last, &end);
		if (json_is_object(parent))
			node = json_object_get(parent, tok);
		else if (json_is_array(parent) &&
			 parse_index(tok, &index) == 0)
			node = json_array_get(parent, index);
		else
			node = NULL;
		if (node == NULL)
			break;
		parent = node;
	}
	free(copy);
	return node;
}

/* "cannot set '/a/b': <why>", bounding the quoted field. */
static enum kiln_rc set_failed(struct kiln_err *err, enum kiln_rc rc,
			       const char *field, const char *why)
{
	char quoted[EXCERPT_BUF];

	return kiln_err_set(err, rc, field, "cannot set '%s': %s",
			    excerpt_name(field, quoted), why);
}

/*
 * Checks that token tok can be followed from node, the container found at
 * the first prefix_len bytes of field.  Objects take any key; arrays take
 * an index up to their size, where size (or "-") means "append", which it
 * writes to *index.  Anything else cannot be traversed.
 */
static enum kiln_rc check_step(const json_t *node, const char *tok,
			       const char *field, size_t prefix_len,
			       size_t *index, struct kiln_err *err)
{
	char why[3 * EXCERPT_BUF], prefix[EXCERPT_BUF], quoted[EXCERPT_BUF];
	size_t size = json_array_size(node);

	if (json_is_object(node))
		return KILN_OK;
	kiln_text_excerpt(field, prefix_len, EXCERPT_NAME_MAX, prefix);
	if (!json_is_array(node)) {
		snprintf(why, sizeof(why),
			 "'%s' is %s%s, not an object or array", prefix,
			 json_is_null(node) ? "" : "a ", type_name(node));
		return set_failed(err, KILN_EINVAL, field, why);
	}
	if (strcmp(tok, "-") == 0) {
		*index = size;
		return KILN_OK;
	}
	if (parse_index(tok, index) != 0) {
		snprintf(why, sizeof(why),
			 "'%s' is an array and '%s' is not an array index",
			 prefix, excerpt_name(tok, quoted));
		return set_failed(err, KILN_EINVAL, field, why);
	}
	if (*index > size) {
		snprintf(why, sizeof(why),
			 "index %zu is past the end of '%s' (%zu elements)",
			 *index, prefix, size);
		return set_failed(err, KILN_EINVAL, field, why);
	}
	return KILN_OK;
}

/*
 * The pointer is checked for bad escapes before anything is created, and
 * every later failure is found before the first new object is linked in,
 * except running out of memory; so a rejected pointer leaves root as it
 * was.  (A new object only ever holds further new objects, whose keys
 * cannot fail.)
 */
enum kiln_rc kiln_json_field_set(json_t *root, const char *field,
				 json_t *value, struct kiln_err *err)
{
	enum kiln_rc rc = KILN_OK;
	char *copy = NULL, *cursor, *tok;
	char quoted[EXCERPT_BUF];
	json_t *node = root, *child;
	int is_last = 0, is_set;
	size_t end = 0, prefix_len = 0, index = 0;

	if (value == NULL || field == NULL || !json_is_object(root)) {
		rc = kiln_err_set(err, KILN_EINVAL, field ? field : "",
				  "cannot set '%s': no value or no object",
				  excerpt_name(field ? field : "", quoted));
		goto out;
	}
	if (field[0] != '/') {
		is_set = json_object_set_new(root, field, value) == 0;
		value = NULL;
		if (!is_set)
			rc = set_failed(err, KILN_EINVAL, field,
					"not a valid key");
		goto out;
	}
	if (!pointer_is_valid(field)) {
		rc = set_failed(err, KILN_EINVAL, field,
				"'~' must be followed by '0' or '1'");
		goto out;
	}
	copy = strdup(field);
	if (copy == NULL) {
		rc = set_failed(err, KILN_ENOMEM, field, "out of memory");
		goto out;
	}
	cursor = copy + 1;
	for (;;) {
		tok = pointer_next(copy, &cursor, &is_last, &end);
		rc = check_step(node, tok, field, prefix_len, &index, err);
		if (rc != KILN_OK)
			goto out;
		if (is_last)
			break;
		if (json_is_object(node))
			child = json_object_get(node, tok);
		else
			child = json_array_get(node, index);
		if (child == NULL) {
			child = json_object();
			is_set = json_is_object(node)
					 ? json_object_set_new(node, tok,
							       child) == 0
					 : json_array_append_new(node,
								 child) == 0;
			if (!is_set) {
				rc = set_failed(err, KILN_ENOMEM, field,
						"out of memory");
				goto out;
			}
		}
		node = child;
		prefix_len = end;
	}
	if (json_is_object(node))
		is_set = json_object_set_new(node, tok, value) == 0;
	else if (index < json_array_size(node))
		is_set = json_array_set_new(node, index, value) == 0;
	else
		is_set = json_array_append_new(node, value) == 0;
	value = NULL; /* taken by jansson, also on failure */
	if (!is_set)
		rc = set_failed(err, KILN_ENOMEM, field, "out of memory");
out:
	json_decref(value);
	free(copy);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Mappings                                                            */
/* ------------------------------------------------------------------ */

enum kiln_rc kiln_mapping_apply(json_t *input, const json_t *mapping,
				const json_t *source_result,
				struct kiln_err *err)
{
	const char *from_step, *from_field, *to_field, *transform = NULL;
	char step_q[EXCERPT_BUF], from_q[EXCERPT_BUF], to_q[EXCERPT_BUF];
	struct kiln_err inner = {KILN_OK, "", ""};
	enum kiln_rc rc = KILN_OK;
	json_t *found, *tr, *value;

	from_step = json_string_value(json_object_get(mapping, "from_step"));
	from_field = json_string_value(json_object_get(mapping, "from_field"));
	to_field = json_string_value(json_object_get(mapping, "to_field"));
	tr = json_object_get(mapping, "transform");
	if (from_step == NULL || from_field == NULL || to_field == NULL) {
		rc = kiln_err_set(err, KILN_EINVAL, "",
				  "input mapping needs from_step, from_field"
				  " and to_field as strings");
		goto out;
	}
	if (tr != NULL && !json_is_null(tr)) {
		transform = json_string_value(tr);
		if (transform == NULL) {
			rc = kiln_err_set(err, KILN_EINVAL, "transform",
					  "input mapping: transform must be"
					  " a string or null");
			goto out;
		}
	}
	found = kiln_json_field_get(source_result, from_field);
	if (found == NULL) {
		rc = kiln_err_set(err, KILN_EINVAL, from_field,
				  "input mapping: field '%s' not found in"
				  " result of step '%s'",
				  excerpt_name(from_field, from_q),
				  excerpt_name(from_step, step_q));
		goto out;
	}
	value = kiln_mapping_transform(transform, found, &inner);
	if (value == NULL) {
		rc = kiln_err_set(err, inner.code != KILN_OK ? inner.code
							      : KILN_EINVAL,
				  to_field, "input mapping to '%s': %s",
				  excerpt_name(to_field, to_q), inner.msg);
		goto out;
	}
	/* The transform's result is a fresh copy; the set takes it. */
	rc = kiln_json_field_set(input, to_field, value, &inner);
	if (rc != KILN_OK)
		kiln_err_set(err, rc, to_field, "input mapping to '%s': %s",
			     excerpt_name(to_field, to_q), inner.msg);
out:
	return rc;
}
