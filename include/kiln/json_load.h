/*
 * json_load.h - JSON text to jansson values, faster than json_loadb.
 *
 * jansson's reader takes each byte through a function call, a UTF-8
 * check and a growing buffer: in W1 it read about 1,000 tokens a
 * workflow (the request, the stored columns of claims, the providers'
 * answers) at 150 instructions a byte, 12 % of kilnd's instructions.
 * kiln_json_load reads the same texts straight from the buffer into the
 * same jansson values.
 *
 * It is json_loadb, not a second dialect: what it accepts, jansson
 * accepts, as the same tree (same types, same key order, the last of
 * duplicate keys).  What it does not take on (any error, flags other than
 * JSON_DECODE_ANY, rare forms such as \u0000 or numbers longer than it
 * reads itself) goes to json_loadb, so errors and their messages are
 * jansson's.  test_json_load holds the two to that.
 */
#ifndef KILN_JSON_LOAD_H
#define KILN_JSON_LOAD_H

#include <stddef.h>

#include <jansson.h>

/* json_loadb(text, len, flags, error). */
json_t *kiln_json_load(const char *text, size_t len, size_t flags,
		       json_error_t *error);

/* The fast reader alone: the value, or NULL where kiln_json_load would
 * ask json_loadb (for the tests). */
json_t *kiln_json_load_fast(const char *text, size_t len, size_t flags);

#endif
