/*
 * store_row.h - column <-> JSON conversions shared by the store_*.c files.
 * Private to the store.
 */
#ifndef KILN_STORE_ROW_H
#define KILN_STORE_ROW_H

#include <jansson.h>
#include <sqlite3.h>

/* New JSON values from column i (json null for SQL NULL). */
json_t *kiln_col_text(sqlite3_stmt *s, int i);
json_t *kiln_col_json(sqlite3_stmt *s, int i); /* parses stored JSON text */
json_t *kiln_col_time(sqlite3_stmt *s, int i); /* ms -> RFC 3339 */
json_t *kiln_col_bool(sqlite3_stmt *s, int i);
json_t *kiln_col_int(sqlite3_stmt *s, int i);

/* How a row becomes a JSON object: key, column, conversion.  PLACE_*
 * kinds take no column: they hold the key's place (jansson keeps keys in
 * insertion order) for a value filled in later. */
enum kiln_col_kind {
	KILN_COL_TEXT,
	KILN_COL_JSON,
	KILN_COL_TIME,
	KILN_COL_BOOL,
	KILN_COL_INT,
	KILN_PLACE_NULL,
	KILN_PLACE_ZERO, /* 0.0 */
};
struct kiln_col_spec {
	const char *key;
	int col;
	enum kiln_col_kind kind;
};
/* Sets o[key] for each of the n specs from the current row of s. */
void kiln_row_set(json_t *o, sqlite3_stmt *s,
		  const struct kiln_col_spec *spec, size_t n);

/* Binds a JSON string (or NULL/json null -> SQL NULL) as text. */
void kiln_bind_str(sqlite3_stmt *s, int i, const json_t *v);
/* Binds any JSON value as its compact text (NULL/json null -> SQL NULL,
 * or dflt when dflt is not NULL). */
void kiln_bind_json(sqlite3_stmt *s, int i, const json_t *v,
		    const char *dflt);
/* Binds a C string or SQL NULL. */
void kiln_bind_cstr(sqlite3_stmt *s, int i, const char *v);

#endif
