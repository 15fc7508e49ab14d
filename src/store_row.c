/*
 * store_row.c - how JSON values are kept in SQLite columns: strings as
 * TEXT, objects and arrays as compact JSON text, times as integer ms.
 */
#include <stdlib.h>

#include "kiln/common.h"
#include "kiln/json_load.h"
#include "store_row.h"

json_t *kiln_col_text(sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	return json_stringn((const char *)sqlite3_column_text(s, i),
			    (size_t)sqlite3_column_bytes(s, i));
}

json_t *kiln_col_json(sqlite3_stmt *s, int i)
{
	json_t *v;

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	v = kiln_json_load((const char *)sqlite3_column_text(s, i),
			   (size_t)sqlite3_column_bytes(s, i), JSON_DECODE_ANY,
			   NULL);
	return v ? v : json_null();
}

json_t *kiln_col_time(sqlite3_stmt *s, int i)
{
	char buf[KILN_RFC3339_LEN];

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	kiln_rfc3339(sqlite3_column_int64(s, i), buf);
	return json_string(buf);
}

json_t *kiln_col_bool(sqlite3_stmt *s, int i)
{
	return json_boolean(sqlite3_column_int(s, i) != 0);
}

json_t *kiln_col_int(sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	return json_integer(sqlite3_column_int64(s, i));
}

json_t *kiln_value_json(const json_t *v, json_t *dflt)
{
	if (v == NULL || json_is_null(v))
		return dflt ? dflt : json_null();
	json_decref(dflt);
	return json_deep_copy(v);
}

json_t *kiln_value_text(const json_t *v)
{
	return json_is_string(v) ? json_stringn(json_string_value(v),
						json_string_length(v))
				 : json_null();
}

void kiln_copy_set(json_t *o, const json_t *from,
		   const struct kiln_copy_spec *spec, size_t n)
{
	size_t i;
	json_t *v;

	for (i = 0; i < n; i++) {
		v = json_object_get(from, spec[i].src);
		switch (spec[i].kind) {
		case KILN_COPY_TEXT: v = kiln_value_text(v); break;
		case KILN_COPY_OBJECT: v = kiln_value_json(v, json_object()); break;
		case KILN_COPY_ARRAY: v = kiln_value_json(v, json_array()); break;
		case KILN_COPY_JSON:
		default: v = kiln_value_json(v, NULL); break;
		}
		json_object_set_new_nocheck(o, spec[i].key, v);
	}
}

void kiln_copy_write(struct kiln_jw *w, const json_t *from,
		     const struct kiln_copy_spec *spec, size_t n)
{
	size_t i;
	const json_t *v;

	for (i = 0; i < n; i++) {
		v = json_object_get(from, spec[i].src);
		kiln_jw_key(w, spec[i].key);
		if (spec[i].kind == KILN_COPY_TEXT)
			v = json_is_string(v) ? v : NULL;
		else if (v != NULL && json_is_null(v))
			v = NULL;
		if (v != NULL)
			kiln_jw_json(w, v);
		else if (spec[i].kind == KILN_COPY_OBJECT)
			kiln_jw_raw(w, "{}");
		else if (spec[i].kind == KILN_COPY_ARRAY)
			kiln_jw_raw(w, "[]");
		else
			kiln_jw_null(w);
	}
}

void kiln_bind_str(sqlite3_stmt *s, int i, const json_t *v)
{
	if (json_is_string(v))
		sqlite3_bind_text(s, i, json_string_value(v),
				  (int)json_string_length(v), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

void kiln_bind_json(sqlite3_stmt *s, int i, const json_t *v,
		    const char *dflt)
{
	char *text;
	size_t len;

	if (v == NULL || json_is_null(v)) {
		if (dflt != NULL)
			sqlite3_bind_text(s, i, dflt, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, i);
		return;
	}
	text = kiln_jw_text(v, &len);
	if (text == NULL) {
		sqlite3_bind_null(s, i);
		return;
	}
	sqlite3_bind_text64(s, i, text, len, free, SQLITE_UTF8);
}

void kiln_bind_cstr(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

void kiln_row_set(json_t *o, sqlite3_stmt *s,
		  const struct kiln_col_spec *spec, size_t n)
{
	size_t i;
	json_t *v;

	for (i = 0; i < n; i++) {
		switch (spec[i].kind) {
		case KILN_COL_TEXT: v = kiln_col_text(s, spec[i].col); break;
		case KILN_COL_JSON: v = kiln_col_json(s, spec[i].col); break;
		case KILN_COL_TIME: v = kiln_col_time(s, spec[i].col); break;
		case KILN_COL_BOOL: v = kiln_col_bool(s, spec[i].col); break;
		case KILN_COL_INT: v = kiln_col_int(s, spec[i].col); break;
		case KILN_PLACE_ZERO: v = json_real(0); break;
		case KILN_PLACE_NULL:
		default: v = json_null(); break;
		}
		json_object_set_new_nocheck(o, spec[i].key, v);
	}
}
