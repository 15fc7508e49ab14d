/*
 * json_spec.h - declarative validation of JSON request bodies and query
 * arguments, producing FastAPI/pydantic-shaped errors:
 *   {"type": "string_too_long", "loc": ["body", "steps", 0, "id"],
 *    "msg": "String should have at most 100 characters"}
 * appended to a `detail` array.  A spec is an array of kiln_field; keys not
 * in the spec are "extra_forbidden".
 */
#ifndef KILN_JSON_SPEC_H
#define KILN_JSON_SPEC_H

#include <jansson.h>
#include <stddef.h>

#include "kiln/common.h"

enum kiln_field_kind {
	KILN_F_STRING,
	KILN_F_BOOL,
	KILN_F_INT,
	KILN_F_OBJECT,
	KILN_F_ARRAY,
	KILN_F_STRING_ARRAY, /* array whose items are strings */
};

#define KILN_F_REQUIRED 1u
#define KILN_F_NULLABLE 2u

#define KILN_F_NO_LIMIT (-1L)

struct kiln_field {
	const char *name;
	enum kiln_field_kind kind;
	unsigned flags;
	long min; /* strings: min characters; arrays: min items; ints: min */
	long max; /* strings: max characters; ints: max; KILN_F_NO_LIMIT */
};

/* A new loc array: base (may be NULL) plus a key. */
json_t *kiln_loc_key(const json_t *base, const char *key);
/* A new loc array: base plus an index. */
json_t *kiln_loc_index(const json_t *base, size_t index);

/* Appends {type, loc, msg} to detail; loc is borrowed (copied). */
void kiln_detail_add(json_t *detail, const json_t *loc, const char *type,
		     const char *fmt, ...) KILN_PRINTF(4, 5);

/*
 * Checks obj (at loc) against fields.  obj that is not an object adds
 * "model_attributes_type".  Returns the number of errors added.
 */
size_t kiln_spec_check(json_t *detail, const json_t *loc, const json_t *obj,
		       const struct kiln_field *fields, size_t n_fields);

/*
 * Query arguments.  Each returns 0 and writes *out (the default when value
 * is NULL), or adds an error at ["query", name] to detail and returns -1.
 */
int kiln_query_bool(json_t *detail, const char *name, const char *value,
		    int dflt, int *out);
int kiln_query_int(json_t *detail, const char *name, const char *value,
		   long long dflt, long long min, long long max,
		   long long *out);

/* "limit" (1..max_limit, default 50) and "offset" (default 0). */
void kiln_query_page(json_t *detail, const char *limit, const char *offset,
		     long long max_limit, int64_t *limit_out,
		     int64_t *offset_out);

#endif
