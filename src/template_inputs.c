/*
 * template_inputs.c - template input schemas, run inputs and
 * {{inputs.NAME}} placeholders (see template_inputs.h).
 *
 * One value checker serves both a spec's "default" and a run's inputs, so
 * a default that passes the schema check is exactly a value a run could
 * have given.  Errors are counted here rather than read back from the
 * size of detail, so a failed append can never make bad inputs look good.
 *
 * Substitution deep-copies the value once and then replaces strings in
 * place.  A placeholder is "{{", blanks, "inputs.", a name, blanks, "}}";
 * anything else in braces (a provider's "{{input}}", say) is left alone.
 * Inserted text is never scanned again: an input cannot smuggle in a
 * placeholder of its own, and expansion ends.  The bytes inserted in one
 * call are capped, since a config may use a large input many times.
 *
 * Messages quote user text through kiln_text_excerpt(), bounded and cut
 * between UTF-8 characters, as jansson refuses invalid UTF-8.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "kiln/json_spec.h"
#include "kiln/mapping.h"
#include "kiln/template_inputs.h"
#include "kiln/utf8.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Longest quote of a user-supplied value or name in a message, bytes. */
#define EXCERPT_MAX 64
#define EXCERPT_BUF (EXCERPT_MAX + 4)

/* Deepest nesting substitution follows; jansson's parser stops at 2048. */
#define DEPTH_MAX 2048

#define NAME_PATTERN "^[A-Za-z_][A-Za-z0-9_]{0,63}$"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

struct errs {
	json_t *detail;
	size_t n; /* errors added */
};

/* Appends an error at loc (+ [key] unless key is NULL). */
static void add_error(struct errs *e, const json_t *loc, const char *key,
		      const char *type, const char *fmt, ...)
	KILN_PRINTF(5, 6);

static void add_error(struct errs *e, const json_t *loc, const char *key,
		      const char *type, const char *fmt, ...)
{
	char msg[KILN_ERR_MSG_MAX];
	json_t *at = key ? kiln_loc_key(loc, key) : NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kiln_utf8_trim_tail(msg);
	kiln_detail_add(e->detail, at ? at : loc, type, "%s", msg);
	json_decref(at);
	e->n++;
}

static const char *excerpt(const json_t *s, char out[EXCERPT_BUF])
{
	return kiln_text_excerpt(json_string_value(s), json_string_length(s),
				 EXCERPT_MAX, out);
}

/* ------------------------------------------------------------------ */
/* Types and values                                                    */
/* ------------------------------------------------------------------ */

enum input_type {
	T_STRING,
	T_INTEGER,
	T_NUMBER,
	T_BOOLEAN,
	T_URL,
	T_ENUM,
	T_ASSET,
	T_INVALID,
};

static const char *const type_names[] = {
	"string", "integer", "number", "boolean", "url", "enum", "asset",
};

#define TYPES_EXPECTED \
	"Input should be 'string', 'integer', 'number', 'boolean', 'url'," \
	" 'enum' or 'asset'"

static enum input_type type_of(const json_t *spec)
{
	const json_t *t = json_object_get(spec, "type");
	size_t i;

	if (!json_is_string(t))
		return T_INVALID;
	for (i = 0; i < N(type_names); i++)
		if (strcmp(json_string_value(t), type_names[i]) == 0)
			return (enum input_type)i;
	return T_INVALID;
}

/*
 * The error type of url (NULL if it is acceptable), with why filled in.
 * curl alone is lenient: it reads "http:/h" and "s3:///key" as having
 * hosts "h" and "key", so "://" and a host right after it are required.
 */
static const char *url_fault(const char *url, char *why, size_t size)
{
	static const char *const schemes[] = {"http", "https", "s3", "gs"};
	const char *type = NULL;
	char *scheme = NULL, *host = NULL;
	size_t i, n;
	CURLUcode uc;
	CURLU *u;

	u = curl_url();
	if (u == NULL) {
		snprintf(why, size, "Input should be a valid URL, out of"
			 " memory");
		return "url_parsing";
	}
	/* s3 and gs are not curl's schemes; they are checked below. */
	uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	if (uc != CURLUE_OK) {
		/* pydantic's reasons are in lower case. */
		n = (size_t)snprintf(why, size,
				     "Input should be a valid URL, ");
		if (n < size) {
			kiln_strlcpy(why + n, curl_url_strerror(uc), size - n);
			why[n] = (char)tolower((unsigned char)why[n]);
		}
		type = "url_parsing";
		goto out;
	}
	for (i = 0; i < N(schemes); i++)
		if (strcasecmp(scheme, schemes[i]) == 0)
			break;
	if (i == N(schemes)) {
		snprintf(why, size,
			 "URL scheme should be 'http', 'https', 's3' or 'gs'");
		type = "url_scheme";
		goto out;
	}
	n = strlen(scheme);
	if (strncmp(url + n, "://", 3) != 0) {
		snprintf(why, size, "Input should be a valid URL, expected"
			 " '//' after the scheme");
		type = "url_parsing";
		goto out;
	}
	if (url[n + 3] == '/' ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    host[0] == '\0') {
		snprintf(why, size, "Input should be a valid URL, empty host");
		type = "url_parsing";
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return type;
}

static void check_url(struct errs *e, const json_t *loc, const char *key,
		      const json_t *v)
{
	char why[256];
	const char *type;

	if (!json_is_string(v)) {
		add_error(e, loc, key, "url_type",
			  "URL input should be a string or URL");
		return;
	}
	if (json_string_length(v) > KILN_INPUTS_URL_MAX) {
		add_error(e, loc, key, "url_too_long",
			  "URL should have at most %d bytes",
			  KILN_INPUTS_URL_MAX);
		return;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		add_error(e, loc, key, "url_parsing",
			  "Input should be a valid URL, it contains a NUL"
			  " character");
		return;
	}
	type = url_fault(json_string_value(v), why, sizeof(why));
	if (type != NULL)
		add_error(e, loc, key, type, "%s", why);
}

/* pydantic's "Input should be 'a', 'b' or 'c'".  Past a budget the middle
 * values become "...", so the message stays well under the detail limit. */
static void check_enum(struct errs *e, const json_t *loc, const json_t *v,
		       const json_t *values)
{
	char msg[768], quoted[EXCERPT_BUF];
	size_t i, n = json_array_size(values), len;
	const json_t *item;

	json_array_foreach(values, i, item)
		if (json_is_string(v) && json_equal((json_t *)v,
						    (json_t *)item))
			return;
	len = kiln_strlcpy(msg, "Input should be ", sizeof(msg));
	for (i = 0; i < n; i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";

		item = json_array_get(values, i);
		if (!json_is_string(item))
			continue;
		/* Room for this one and a last " or '<excerpt>'" after it. */
		if (i + 1 < n &&
		    len + 2 * (EXCERPT_BUF + 8) + 8 >= sizeof(msg)) {
			len += (size_t)snprintf(msg + len, sizeof(msg) - len,
						"%s...", sep);
			i = n - 2;
			continue;
		}
		len += (size_t)snprintf(msg + len, sizeof(msg) - len,
					"%s'%s'", sep, excerpt(item, quoted));
	}
	add_error(e, loc, NULL, "enum", "%s", msg);
}

/* Checks v as a value of type (values: an enum's).  Adds its errors at
 * loc. */
static void check_value(struct errs *e, const json_t *loc,
			enum input_type type, const json_t *values,
			const json_t *v)
{
	switch (type) {
	case T_STRING:
		if (!json_is_string(v))
			add_error(e, loc, NULL, "string_type",
				  "Input should be a valid string");
		else if (json_string_length(v) > KILN_INPUTS_STRING_MAX)
			add_error(e, loc, NULL, "string_too_long",
				  "String should have at most %d bytes",
				  KILN_INPUTS_STRING_MAX);
		break;
	case T_INTEGER:
		if (!json_is_integer(v))
			add_error(e, loc, NULL, "int_type",
				  "Input should be a valid integer");
		break;
	case T_NUMBER:
		if (!json_is_number(v))
			add_error(e, loc, NULL, "float_type",
				  "Input should be a valid number");
		break;
	case T_BOOLEAN:
		if (!json_is_boolean(v))
			add_error(e, loc, NULL, "bool_type",
				  "Input should be a valid boolean");
		break;
	case T_URL:
		check_url(e, loc, NULL, v);
		break;
	case T_ENUM:
		check_enum(e, loc, v, values);
		break;
	case T_ASSET:
		if (json_is_string(v)) {
			check_url(e, loc, NULL, v);
		} else if (!json_is_object(v)) {
			add_error(e, loc, NULL, "url_type",
				  "Input should be a URL or an object with"
				  " a 'url' key");
		} else if (json_object_get(v, "url") == NULL) {
			add_error(e, loc, "url", "missing", "Field required");
		} else {
			check_url(e, loc, "url", json_object_get(v, "url"));
		}
		break;
	case T_INVALID:
		/* Only a schema that was never checked gets here. */
		add_error(e, loc, NULL, "value_error",
			  "Value error, the input has no valid type");
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Schema                                                              */
/* ------------------------------------------------------------------ */

static int name_is_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > KILN_INPUTS_NAME_MAX ||
	    !(isalpha((unsigned char)name[0]) || name[0] == '_'))
		return 0;
	for (i = 1; i < len; i++)
		if (!(isalnum((unsigned char)name[i]) || name[i] == '_'))
			return 0;
	return 1;
}

/* An enum's "values"; returns 1 if they are usable to check a default. */
static int check_values(struct errs *e, const json_t *spec_loc,
			const json_t *values)
{
	size_t before = e->n, i, k;
	char quoted[EXCERPT_BUF];
	const json_t *item;
	json_t *vl, *il;

	if (!json_is_array(values)) {
		add_error(e, spec_loc, "values", "list_type",
			  "Input should be a valid list");
		return 0;
	}
	if (json_array_size(values) == 0) {
		add_error(e, spec_loc, "values", "too_short",
			  "List should have at least 1 item after"
			  " validation, not 0");
		return 0;
	}
	/* Also keeps the distinctness check below quadratic in 100 only. */
	if (json_array_size(values) > KILN_INPUTS_ENUM_VALUES_MAX) {
		add_error(e, spec_loc, "values", "too_long",
			  "List should have at most %d items after"
			  " validation, not %zu",
			  KILN_INPUTS_ENUM_VALUES_MAX,
			  json_array_size(values));
		return 0;
	}
	vl = kiln_loc_key(spec_loc, "values");
	json_array_foreach(values, i, item) {
		il = kiln_loc_index(vl, i);
		if (!json_is_string(item)) {
			add_error(e, il, NULL, "string_type",
				  "Input should be a valid string");
		} else {
			for (k = 0; k < i; k++)
				if (json_equal((json_t *)item,
					       json_array_get(values, k)))
					break;
			if (k < i)
				add_error(e, il, NULL, "value_error",
					  "Value error, '%s' is listed more"
					  " than once",
					  excerpt(item, quoted));
		}
		json_decref(il);
	}
	json_decref(vl);
	return e->n == before;
}

static void check_spec(struct errs *e, const json_t *spec_loc,
		       const json_t *spec)
{
	static const char *const keys[] = {"type", "required", "default",
					   "description", "values"};
	const json_t *required, *dflt, *description, *values, *v;
	enum input_type type;
	int values_ok = 0;
	const char *key;
	size_t i;

	if (!json_is_object(spec)) {
		add_error(e, spec_loc, NULL, "dict_type",
			  "Input should be a valid dictionary");
		return;
	}
	json_object_foreach((json_t *)spec, key, v) {
		for (i = 0; i < N(keys); i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (i == N(keys))
			add_error(e, spec_loc, key, "extra_forbidden",
				  "Extra inputs are not permitted");
	}

	type = type_of(spec);
	if (json_object_get(spec, "type") == NULL)
		add_error(e, spec_loc, "type", "missing", "Field required");
	else if (type == T_INVALID)
		add_error(e, spec_loc, "type", "enum", TYPES_EXPECTED);

	required = json_object_get(spec, "required");
	if (required != NULL && !json_is_boolean(required))
		add_error(e, spec_loc, "required", "bool_type",
			  "Input should be a valid boolean");

	description = json_object_get(spec, "description");
	if (description != NULL && !json_is_string(description))
		add_error(e, spec_loc, "description", "string_type",
			  "Input should be a valid string");
	else if (description != NULL &&
		 kiln_utf8_length(json_string_value(description)) >
			 KILN_INPUTS_DESCRIPTION_MAX)
		add_error(e, spec_loc, "description", "string_too_long",
			  "String should have at most %d characters",
			  KILN_INPUTS_DESCRIPTION_MAX);

	values = json_object_get(spec, "values");
	if (type == T_ENUM && values == NULL)
		add_error(e, spec_loc, "values", "missing", "Field required");
	else if (type == T_ENUM)
		values_ok = check_values(e, spec_loc, values);
	else if (type != T_INVALID && values != NULL)
		add_error(e, spec_loc, "values", "extra_forbidden",
			  "Extra inputs are not permitted");

	dflt = json_object_get(spec, "default");
	if (dflt != NULL && json_is_true(required)) {
		add_error(e, spec_loc, "default", "value_error",
			  "Value error, a required input cannot have a"
			  " default");
	} else if (dflt != NULL && type != T_INVALID &&
		   (type != T_ENUM || values_ok)) {
		json_t *dl = kiln_loc_key(spec_loc, "default");

		check_value(e, dl, type, values, dflt);
		json_decref(dl);
	}
}

size_t kiln_inputs_schema_check(json_t *detail, const json_t *loc,
				const json_t *schema)
{
	struct errs e = {detail, 0};
	const char *name;
	size_t name_len;
	json_t *spec, *nl;

	if (!json_is_object(schema)) {
		add_error(&e, loc, NULL, "dict_type",
			  "Input should be a valid dictionary");
		return e.n;
	}
	if (json_object_size(schema) > KILN_INPUTS_MAX) {
		add_error(&e, loc, NULL, "too_long",
			  "Dictionary should have at most %d items after"
			  " validation, not %zu",
			  KILN_INPUTS_MAX, json_object_size(schema));
		return e.n;
	}
	json_object_keylen_foreach((json_t *)schema, name, name_len, spec) {
		nl = kiln_loc_key(loc, name);
		if (!name_is_valid(name, name_len))
			add_error(&e, nl, NULL, "string_pattern_mismatch",
				  "String should match pattern '%s'",
				  NAME_PATTERN);
		check_spec(&e, nl, spec);
		json_decref(nl);
	}
	return e.n;
}

/* ------------------------------------------------------------------ */
/* Run inputs                                                          */
/* ------------------------------------------------------------------ */

json_t *kiln_inputs_resolve(json_t *detail, const json_t *loc,
			    const json_t *schema, const json_t *inputs)
{
	struct errs e = {detail, 0};
	json_t *resolved = json_object(), *empty = NULL, *spec, *v, *nl;
	const json_t *dflt;
	const char *name;
	size_t name_len;

	if (inputs == NULL)
		inputs = empty = json_object();
	if (!json_is_object(inputs)) {
		add_error(&e, loc, NULL, "dict_type",
			  "Input should be a valid dictionary");
		goto out;
	}
	json_object_keylen_foreach((json_t *)schema, name, name_len, spec) {
		v = json_object_getn(inputs, name, name_len);
		dflt = json_object_get(spec, "default");
		if (v == NULL && dflt == NULL) {
			if (json_is_true(json_object_get(spec, "required"))) {
				nl = kiln_loc_key(loc, name);
				add_error(&e, nl, NULL, "missing",
					  "Field required");
				json_decref(nl);
			}
			continue;
		}
		if (v != NULL) {
			size_t before = e.n;

			nl = kiln_loc_key(loc, name);
			check_value(&e, nl, type_of(spec),
				    json_object_get(spec, "values"), v);
			json_decref(nl);
			if (e.n > before)
				continue;
		}
		json_object_setn_new(resolved, name, name_len,
				     json_deep_copy(v ? v : dflt));
	}
	json_object_keylen_foreach((json_t *)inputs, name, name_len, v) {
		if (json_object_getn(schema, name, name_len) != NULL)
			continue;
		nl = kiln_loc_key(loc, name);
		add_error(&e, nl, NULL, "extra_forbidden",
			  "Extra inputs are not permitted");
		json_decref(nl);
	}
out:
	json_decref(empty);
	if (e.n > 0) {
		json_decref(resolved);
		return NULL;
	}
	return resolved;
}

/* ------------------------------------------------------------------ */
/* Placeholders                                                        */
/* ------------------------------------------------------------------ */

static size_t skip_blanks(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

/* If a placeholder starts at s[i], returns its length and points *name
 * (*name_len bytes) into s; else 0. */
static size_t match_placeholder(const char *s, size_t len, size_t i,
				const char **name, size_t *name_len)
{
	static const char prefix[] = "inputs.";
	size_t p = i, start;

	if (len - p < 2 || s[p] != '{' || s[p + 1] != '{')
		return 0;
	p = skip_blanks(s, len, p + 2);
	if (len - p < sizeof(prefix) - 1 ||
	    memcmp(s + p, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	p += sizeof(prefix) - 1;
	start = p;
	if (p == len || !(isalpha((unsigned char)s[p]) || s[p] == '_'))
		return 0;
	while (p < len && (isalnum((unsigned char)s[p]) || s[p] == '_'))
		p++;
	*name = s + start;
	*name_len = p - start;
	p = skip_blanks(s, len, p);
	if (len - p < 2 || s[p] != '}' || s[p + 1] != '}')
		return 0;
	return p + 2 - i;
}

/* The next placeholder in s at or after *at: returns its length (0 when
 * there is none) and moves *at to its start. */
static size_t next_placeholder(const char *s, size_t len, size_t *at,
			       const char **name, size_t *name_len)
{
	const char *brace;
	size_t n;

	while (*at < len) {
		brace = memchr(s + *at, '{', len - *at);
		if (brace == NULL)
			break;
		*at = (size_t)(brace - s);
		n = match_placeholder(s, len, *at, name, name_len);
		if (n > 0)
			return n;
		(*at)++;
	}
	*at = len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Substitution                                                        */
/* ------------------------------------------------------------------ */

/* Where a string sits, for err->field: a chain of frames up the stack. */
struct frame {
	const struct frame *up;
	const char *key; /* NULL: an array element */
	size_t index;
};

struct subst {
	const json_t *inputs;
	size_t inserted; /* bytes inserted so far */
	struct kiln_err *err;
};

/* A growing byte string; rc turns KILN_ENOMEM and stays so on failure. */
struct text {
	char *s;
	size_t len;
	size_t cap;
	enum kiln_rc rc;
};

static void text_add(struct text *t, const char *p, size_t n)
{
	size_t cap;
	char *s;

	if (t->rc != KILN_OK || n == 0)
		return;
	cap = t->cap > 0 ? t->cap : 64;
	while (cap - t->len < n) {
		if (cap > ((size_t)-1) / 2) {
			t->rc = KILN_ENOMEM;
			return;
		}
		cap *= 2;
	}
	if (cap != t->cap) {
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
}

static void format_path(const struct frame *f, char *out, size_t size)
{
	size_t len;

	if (f->up != NULL)
		format_path(f->up, out, size);
	len = strlen(out);
	if (len + 1 >= size)
		return;
	if (f->key == NULL)
		snprintf(out + len, size - len, "[%zu]", f->index);
	else if (f->key[0] != '\0')
		snprintf(out + len, size - len, "%s%s", len > 0 ? "." : "",
			 f->key);
}

/* Sets st->err (field: the path of f) and returns NULL. */
static json_t *fail(struct subst *st, const struct frame *f,
		    enum kiln_rc code, const char *fmt, ...) KILN_PRINTF(4, 5);

static json_t *fail(struct subst *st, const struct frame *f,
		    enum kiln_rc code, const char *fmt, ...)
{
	char path[KILN_ERR_FIELD_MAX] = "", msg[KILN_ERR_MSG_MAX];
	va_list ap;

	/* A path cut short is quoted in msg too, so it must stay UTF-8. */
	format_path(f, path, sizeof(path));
	kiln_utf8_trim_tail(path);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kiln_err_set(st->err, code, path, "%s %s",
		     path[0] != '\0' ? path : "the value", msg);
	return NULL;
}

/* The input called name, or NULL with st->err set. */
static const json_t *lookup(struct subst *st, const struct frame *f,
			    const char *name, size_t name_len)
{
	const json_t *v = json_object_getn(st->inputs, name, name_len);
	char quoted[EXCERPT_BUF];

	if (v == NULL)
		fail(st, f, KILN_EINVAL,
		     "uses {{inputs.%s}}, but the template declares no such"
		     " input or the run gave it no value",
		     kiln_text_excerpt(name, name_len, EXCERPT_MAX, quoted));
	return v;
}

/* Roughly the bytes a copy of v takes, for the insertion cap. */
static size_t value_size(const json_t *v)
{
	const char *key;
	size_t i, size = 8;
	json_t *item;

	if (json_is_string(v))
		return json_string_length(v);
	if (json_is_object(v))
		json_object_foreach((json_t *)v, key, item)
			size += strlen(key) + value_size(item);
	else if (json_is_array(v))
		json_array_foreach(v, i, item)
			size += value_size(item);
	return size;
}

/* Counts n more inserted bytes; 0, or -1 with st->err set past the cap. */
static int charge(struct subst *st, const struct frame *f, size_t n)
{
	if (n <= KILN_INPUTS_SUBSTITUTE_MAX - st->inserted) {
		st->inserted += n;
		return 0;
	}
	fail(st, f, KILN_EINVAL,
	     "would grow past %d bytes with the inputs substituted",
	     KILN_INPUTS_SUBSTITUTE_MAX);
	return -1;
}

/* The text of v inside a longer string (a new string), or NULL with
 * st->err set. */
static json_t *text_of(struct subst *st, const struct frame *f,
		       const json_t *v)
{
	const json_t *url = json_object_get(v, "url");
	json_t *text;

	if (json_is_object(v) && json_is_string(url))
		v = url;
	if (json_is_string(v))
		return json_incref((json_t *)v);
	/* The mapping transform prints reals shortest-first (0.1, not
	 * 0.10000000000000001), as people write them. */
	text = kiln_mapping_transform("to_string", (json_t *)v, st->err);
	if (text == NULL)
		fail(st, f, st->err->code, "%s", st->err->msg);
	return text;
}

/* The replacement for str: NULL with st->err set on failure,
 * *is_same when it has no placeholder (and the result is NULL). */
static json_t *fill_string(struct subst *st, const struct frame *f,
			   const json_t *str, int *is_same)
{
	const char *s = json_string_value(str), *name = NULL;
	size_t len = json_string_length(str), at = 0, done = 0, n, name_len;
	struct text t = {NULL, 0, 0, KILN_OK};
	const json_t *v;
	json_t *piece, *out = NULL;

	*is_same = 0;
	n = next_placeholder(s, len, &at, &name, &name_len);
	if (n == 0) {
		*is_same = 1;
		return NULL;
	}
	if (at == 0 && n == len) {
		v = lookup(st, f, name, name_len);
		if (v == NULL || charge(st, f, value_size(v)) != 0)
			return NULL;
		out = json_deep_copy(v);
		if (out == NULL)
			fail(st, f, KILN_ENOMEM, "out of memory");
		return out;
	}
	while (n > 0) {
		v = lookup(st, f, name, name_len);
		if (v == NULL)
			goto out;
		piece = text_of(st, f, v);
		if (piece == NULL)
			goto out;
		if (charge(st, f, json_string_length(piece)) != 0) {
			json_decref(piece);
			goto out;
		}
		text_add(&t, s + done, at - done);
		text_add(&t, json_string_value(piece),
			 json_string_length(piece));
		json_decref(piece);
		at += n;
		done = at;
		n = next_placeholder(s, len, &at, &name, &name_len);
	}
	text_add(&t, s + done, len - done);
	if (t.rc == KILN_OK)
		out = json_stringn(t.s ? t.s : "", t.len);
	if (out == NULL)
		fail(st, f, KILN_ENOMEM, "out of memory");
out:
	free(t.s);
	return out;
}

static int fill(struct subst *st, const struct frame *f, json_t *v,
		int depth);

/* Fills item, a member of a copy this module owns.  Returns 0 with *with
 * its replacement (NULL: keep it), or -1 with st->err set. */
static int fill_member(struct subst *st, const struct frame *f,
		       json_t *item, json_t **with, int depth)
{
	int is_same;

	*with = NULL;
	if (!json_is_string(item))
		return fill(st, f, item, depth + 1);
	*with = fill_string(st, f, item, &is_same);
	return is_same || *with != NULL ? 0 : -1;
}

/* Replaces, in place, the strings under v.  Returns 0, or -1 with
 * st->err set. */
static int fill(struct subst *st, const struct frame *f, json_t *v,
		int depth)
{
	struct frame child = {f, NULL, 0};
	json_t *item, *with;
	void *iter;
	size_t i;

	if (depth > DEPTH_MAX) {
		fail(st, f, KILN_EINVAL, "is nested too deeply");
		return -1;
	}
	if (json_is_object(v)) {
		for (iter = json_object_iter(v); iter != NULL;
		     iter = json_object_iter_next(v, iter)) {
			child.key = json_object_iter_key(iter);
			item = json_object_iter_value(iter);
			if (fill_member(st, &child, item, &with, depth) != 0)
				return -1;
			if (with != NULL &&
			    json_object_iter_set_new(v, iter, with) != 0)
				goto oom;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item) {
			child.index = i;
			if (fill_member(st, &child, item, &with, depth) != 0)
				return -1;
			if (with != NULL &&
			    json_array_set_new(v, i, with) != 0)
				goto oom;
		}
	}
	return 0;
oom:
	fail(st, f, KILN_ENOMEM, "out of memory");
	return -1;
}

json_t *kiln_inputs_substitute(const json_t *value, const json_t *inputs,
			       const char *path, struct kiln_err *err)
{
	struct kiln_err own;
	struct subst st = {inputs, 0, err ? err : &own};
	struct frame root = {NULL, path ? path : "", 0};
	json_t *out, *with;
	int is_same;

	if (value == NULL) {
		kiln_err_set(st.err, KILN_EINVAL, root.key,
			     "no value to substitute inputs into");
		return NULL;
	}
	if (json_is_string(value)) {
		with = fill_string(&st, &root, value, &is_same);
		return is_same ? json_deep_copy(value) : with;
	}
	out = json_deep_copy(value);
	if (out == NULL) {
		kiln_err_set(st.err, KILN_ENOMEM, root.key, "out of memory");
		return NULL;
	}
	if (fill(&st, &root, out, 0) != 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* Names used                                                          */
/* ------------------------------------------------------------------ */

static void collect(const json_t *v, json_t *seen, json_t *used, int depth)
{
	const char *s, *name, *key;
	size_t len, at = 0, n, name_len, i;
	json_t *item;

	if (depth > DEPTH_MAX)
		return;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, item)
			collect(item, seen, used, depth + 1);
		return;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			collect(item, seen, used, depth + 1);
		return;
	}
	if (!json_is_string(v))
		return;
	s = json_string_value(v);
	len = json_string_length(v);
	while ((n = next_placeholder(s, len, &at, &name, &name_len)) > 0) {
		at += n;
		if (json_object_getn(seen, name, name_len) != NULL)
			continue;
		json_object_setn_new(seen, name, name_len, json_true());
		json_array_append_new(used, json_stringn(name, name_len));
	}
}

json_t *kiln_inputs_used(const json_t *value)
{
	json_t *seen = json_object(), *used = json_array();

	if (value != NULL)
		collect(value, seen, used, 0);
	json_decref(seen);
	return used;
}
