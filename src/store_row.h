/*
 * store_row.h - column <-> JSON conversions shared by the store_*.c files.
 * Private to the store.
 */
#ifndef KILN_STORE_ROW_H
#define KILN_STORE_ROW_H

#include <jansson.h>
#include <sqlite3.h>

#include "kiln/json_writer.h"

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

/* What a column bound from v gives back, without the round trip: a
 * deep copy of v, or dflt (consumed; json null when NULL) when v is
 * NULL or json null.  kiln_value_text: v if it is a string, else null. */
json_t *kiln_value_json(const json_t *v, json_t *dflt);
json_t *kiln_value_text(const json_t *v);

/* How a value that was written becomes the value read back: o[key] from
 * from[src] as kiln_value_text, or kiln_value_json with {} / [] / null
 * for a missing one (what kiln_bind_json's default was). */
enum kiln_copy_kind {
	KILN_COPY_TEXT,
	KILN_COPY_OBJECT,
	KILN_COPY_ARRAY,
	KILN_COPY_JSON,
};
struct kiln_copy_spec {
	const char *key;
	const char *src;
	enum kiln_copy_kind kind;
};
void kiln_copy_set(json_t *o, const json_t *from,
		   const struct kiln_copy_spec *spec, size_t n);
#define KILN_COPY_SET(o, from, spec)                                          \
	kiln_copy_set((o), (from), (spec), sizeof(spec) / sizeof((spec)[0]))
/* The same pairs written as JSON text ("key":value,...) into w. */
void kiln_copy_write(struct kiln_jw *w, const json_t *from,
		     const struct kiln_copy_spec *spec, size_t n);
#define KILN_COPY_WRITE(w, from, spec)                                        \
	kiln_copy_write((w), (from), (spec), sizeof(spec) / sizeof((spec)[0]))

/* Binds a JSON string (or NULL/json null -> SQL NULL) as text. */
void kiln_bind_str(sqlite3_stmt *s, int i, const json_t *v);
/* Binds any JSON value as its compact text (NULL/json null -> SQL NULL,
 * or dflt when dflt is not NULL). */
void kiln_bind_json(sqlite3_stmt *s, int i, const json_t *v,
		    const char *dflt);
/* Binds a C string or SQL NULL. */
void kiln_bind_cstr(sqlite3_stmt *s, int i, const char *v);

#endif
