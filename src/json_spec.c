/*
 * json_spec.c - declarative validation (see json_spec.h).  Messages and
 * type names follow pydantic v2, so clients written against FastAPI
 * services parse Kiln's 422s unchanged.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kiln/json_spec.h"
#include "kiln/utf8.h"

json_t *kiln_loc_key(const json_t *base, const char *key)
{
	json_t *loc = base ? json_copy((json_t *)base) : json_array();

	json_array_append_new(loc, json_string(key));
	return loc;
}

json_t *kiln_loc_index(const json_t *base, size_t index)
{
	json_t *loc = base ? json_copy((json_t *)base) : json_array();

	json_array_append_new(loc, json_integer((json_int_t)index));
	return loc;
}

void kiln_detail_add(json_t *detail, const json_t *loc, const char *type,
		     const char *fmt, ...)
{
	char msg[KILN_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(detail,
			      json_pack("{sssOss}", "type", type, "loc", loc,
					"msg", msg));
}

static const char *plural(long n)
{
	return n == 1 ? "" : "s";
}

/* A field's loc, built only for an error: most values are fine, and the
 * loc is a copied array and a string. */
struct lazy_loc {
	const json_t *base;
	const char *key;
	json_t *built;
};

static const json_t *loc_of(struct lazy_loc *l)
{
	if (l->built == NULL)
		l->built = kiln_loc_key(l->base, l->key);
	return l->built;
}

/* Checks one present, non-null value; returns errors added. */
static size_t check_value(json_t *detail, struct lazy_loc *at,
			  const json_t *v, const struct kiln_field *f)
{
	size_t before = json_array_size(detail);
	size_t i;

	switch (f->kind) {
	case KILN_F_STRING:
		if (!json_is_string(v)) {
			kiln_detail_add(detail, loc_of(at), "string_type",
					"Input should be a valid string");
			break;
		}
		if (f->min > 0 &&
		    kiln_utf8_length(json_string_value(v)) < (size_t)f->min)
			kiln_detail_add(detail, loc_of(at), "string_too_short",
					"String should have at least %ld"
					" character%s",
					f->min, plural(f->min));
		else if (f->max >= 0 && kiln_utf8_length(json_string_value(
						v)) > (size_t)f->max)
			kiln_detail_add(detail, loc_of(at), "string_too_long",
					"String should have at most %ld"
					" character%s",
					f->max, plural(f->max));
		break;
	case KILN_F_BOOL:
		if (!json_is_boolean(v))
			kiln_detail_add(detail, loc_of(at), "bool_type",
					"Input should be a valid boolean");
		break;
	case KILN_F_INT:
		if (!json_is_integer(v)) {
			kiln_detail_add(detail, loc_of(at), "int_type",
					"Input should be a valid integer");
			break;
		}
		if (f->min != KILN_F_NO_LIMIT && json_integer_value(v) < f->min)
			kiln_detail_add(detail, loc_of(at),
					"greater_than_equal",
					"Input should be greater than or"
					" equal to %ld",
					f->min);
		else if (f->max != KILN_F_NO_LIMIT &&
			 json_integer_value(v) > f->max)
			kiln_detail_add(detail, loc_of(at), "less_than_equal",
					"Input should be less than or equal"
					" to %ld",
					f->max);
		break;
	case KILN_F_OBJECT:
		if (!json_is_object(v))
			kiln_detail_add(detail, loc_of(at), "dict_type",
					"Input should be a valid dictionary");
		break;
	case KILN_F_ARRAY:
	case KILN_F_STRING_ARRAY:
		if (!json_is_array(v)) {
			kiln_detail_add(detail, loc_of(at), "list_type",
					"Input should be a valid list");
			break;
		}
		if (f->min > 0 && json_array_size(v) < (size_t)f->min) {
			kiln_detail_add(detail, loc_of(at), "too_short",
					"List should have at least %ld item%s"
					" after validation, not %zu",
					f->min, plural(f->min),
					json_array_size(v));
			break;
		}
		if (f->kind != KILN_F_STRING_ARRAY)
			break;
		for (i = 0; i < json_array_size(v); i++) {
			json_t *il;

			if (json_is_string(json_array_get(v, i)))
				continue;
			il = kiln_loc_index(loc_of(at), i);
			kiln_detail_add(detail, il, "string_type",
					"Input should be a valid string");
			json_decref(il);
		}
		break;
	}
	return json_array_size(detail) - before;
}

size_t kiln_spec_check(json_t *detail, const json_t *loc, const json_t *obj,
		       const struct kiln_field *fields, size_t n_fields)
{
	size_t before = json_array_size(detail);
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(obj)) {
		kiln_detail_add(detail, loc, "model_attributes_type",
				"Input should be a valid dictionary or object"
				" to extract fields from");
		return 1;
	}
	for (i = 0; i < n_fields; i++) {
		const struct kiln_field *f = &fields[i];
		struct lazy_loc at = {loc, f->name, NULL};

		v = json_object_get(obj, f->name);
		/* An optional field left out, or null where null is fine:
		 * nothing to check (most fields of a create are left out). */
		if (v == NULL ? !(f->flags & KILN_F_REQUIRED)
			      : json_is_null(v) && (f->flags & KILN_F_NULLABLE))
			continue;
		if (v == NULL)
			kiln_detail_add(detail, loc_of(&at), "missing",
					"Field required");
		else
			check_value(detail, &at, v, f);
		json_decref(at.built);
	}
	json_object_foreach((json_t *)obj, key, v) {
		json_t *fl;

		for (i = 0; i < n_fields; i++)
			if (strcmp(fields[i].name, key) == 0)
				break;
		if (i < n_fields)
			continue;
		fl = kiln_loc_key(loc, key);
		kiln_detail_add(detail, fl, "extra_forbidden",
				"Extra inputs are not permitted");
		json_decref(fl);
	}
	return json_array_size(detail) - before;
}

int kiln_query_bool(json_t *detail, const char *name, const char *value,
		    int dflt, int *out)
{
	static const char *const truthy[] = {"true", "1", "yes", "on", "t",
					     "y"};
	static const char *const falsy[] = {"false", "0", "no", "off", "f",
					    "n"};
	json_t *loc;
	size_t i;

	if (value == NULL) {
		*out = dflt;
		return 0;
	}
	for (i = 0; i < sizeof(truthy) / sizeof(truthy[0]); i++) {
		if (strcasecmp(value, truthy[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(value, falsy[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	loc = json_pack("[ss]", "query", name);
	kiln_detail_add(detail, loc, "bool_parsing",
			"Input should be a valid boolean, unable to interpret"
			" input");
	json_decref(loc);
	return -1;
}

int kiln_query_int(json_t *detail, const char *name, const char *value,
		   long long dflt, long long min, long long max,
		   long long *out)
{
	json_t *loc;
	long long v;
	char *end;

	if (value == NULL) {
		*out = dflt;
		return 0;
	}
	loc = json_pack("[ss]", "query", name);
	errno = 0;
	v = strtoll(value, &end, 10);
	if (value[0] == '\0' || *end != '\0' || errno == ERANGE) {
		kiln_detail_add(detail, loc, "int_parsing",
				"Input should be a valid integer, unable to"
				" parse string as an integer");
		json_decref(loc);
		return -1;
	}
	if (v < min) {
		kiln_detail_add(detail, loc, "greater_than_equal",
				"Input should be greater than or equal to %lld",
				min);
		json_decref(loc);
		return -1;
	}
	if (v > max) {
		kiln_detail_add(detail, loc, "less_than_equal",
				"Input should be less than or equal to %lld",
				max);
		json_decref(loc);
		return -1;
	}
	json_decref(loc);
	*out = v;
	return 0;
}

void kiln_query_page(json_t *detail, const char *limit, const char *offset,
		     long long max_limit, int64_t *limit_out,
		     int64_t *offset_out)
{
	long long l = 50, o = 0;

	kiln_query_int(detail, "limit", limit, 50, 1, max_limit, &l);
	kiln_query_int(detail, "offset", offset, 0, 0, INT64_MAX / 2, &o);
	*limit_out = l;
	*offset_out = o;
}
