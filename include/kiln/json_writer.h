/*
 * json_writer.h - JSON text written straight into a growing buffer.
 *
 * For answers on the hot path (the 201 of a create): building a jansson
 * tree of a hundred values only to dump and free it cost more than the
 * insert itself.  The text is what json_dumps(tree, JSON_COMPACT) gives
 * for the same values: same escapes, same number forms, so a reader
 * cannot tell the two apart.
 *
 * Commas are implicit: every value and key is preceded by one unless it
 * follows '{', '[' or a key.  Out of memory is sticky: the writer stops
 * writing and kiln_jw_take returns NULL.
 */
#ifndef KILN_JSON_WRITER_H
#define KILN_JSON_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct kiln_jw {
	char *buf;
	size_t len, cap;
	int failed;
};

/* Room for n bytes in all, so a text of about that size is written
 * without reallocations. */
void kiln_jw_reserve(struct kiln_jw *w, size_t n);
/* '{' or '[' (after a comma if needed), and '}' or ']'. */
void kiln_jw_open(struct kiln_jw *w, char bracket);
void kiln_jw_close(struct kiln_jw *w, char bracket);
/* "key": (key is plain ASCII and needs no escape). */
void kiln_jw_key(struct kiln_jw *w, const char *key);
/* A string of len bytes (valid UTF-8), escaped as jansson escapes it. */
void kiln_jw_strn(struct kiln_jw *w, const char *s, size_t len);
/* A NUL-terminated string; NULL writes null. */
void kiln_jw_str(struct kiln_jw *w, const char *s);
void kiln_jw_int(struct kiln_jw *w, int64_t v);
void kiln_jw_bool(struct kiln_jw *w, int v);
void kiln_jw_null(struct kiln_jw *w);
/* Any jansson value, dumped compact; NULL writes null. */
void kiln_jw_json(struct kiln_jw *w, const json_t *v);
/* json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), faster (no loop check,
 * no allocations but the text's): *len bytes, for a text used at once
 * (sent, bound); NULL when out of memory. */
char *kiln_jw_text(const json_t *v, size_t *len);
/* The same, exactly its size, for a text that is kept. */
char *kiln_jw_dump(const json_t *v);
/* A value given as JSON text already (e.g. "0.0", "[]"). */
void kiln_jw_raw(struct kiln_jw *w, const char *text);

/* The text (NUL-terminated, *len bytes), owned by the caller; NULL after
 * an allocation failed.  The writer is empty again. */
char *kiln_jw_take(struct kiln_jw *w, size_t *len);
/* Frees what the writer holds. */
void kiln_jw_free(struct kiln_jw *w);

#endif
