/*
 * template_inputs.h - a template's input schema, the inputs a run
 * supplies, and {{inputs.NAME}} placeholders in step configs.  Pure
 * (jansson, and libcurl's URL parser only).
 *
 * A schema is a JSON object NAME -> spec, at most 100 of them, NAME
 * matching ^[A-Za-z_][A-Za-z0-9_]{0,63}$.  A spec is an object:
 *   type         required: "string", "integer", "number", "boolean",
 *                "url", "enum" or "asset"
 *   required     boolean, default false
 *   default      a valid value of the type; not with required: true
 *   description  string of at most 1000 characters
 *   values       enum only, and required there: 1..100 distinct strings
 * Any other key is an error.
 *
 * Values by type:
 *   string   a JSON string of at most 100,000 bytes
 *   integer  a JSON integer (1.0 is not one)
 *   number   a JSON integer or real
 *   boolean  true or false
 *   url      a string of at most 2048 bytes that is an absolute http,
 *            https, s3 or gs URL with a host
 *   enum     one of the spec's values
 *   asset    a url, or an object whose "url" is one (other keys, such as
 *            "asset_id" or "mime_type", are kept as they are)
 * JSON null is not a value of any type.
 *
 * Errors go into a FastAPI-shaped detail array (see json_spec.h), with
 * pydantic v2 types and messages.
 */
#ifndef KILN_TEMPLATE_INPUTS_H
#define KILN_TEMPLATE_INPUTS_H

#include <jansson.h>
#include <stddef.h>

#include "kiln/common.h"

#define KILN_INPUTS_MAX 100
#define KILN_INPUTS_NAME_MAX 64
#define KILN_INPUTS_DESCRIPTION_MAX 1000 /* characters */
#define KILN_INPUTS_ENUM_VALUES_MAX 100
#define KILN_INPUTS_STRING_MAX 100000 /* bytes */
#define KILN_INPUTS_URL_MAX 2048      /* bytes */
/* Most bytes one kiln_inputs_substitute call may insert, so a config
 * that uses a large input many times cannot blow up memory. */
#define KILN_INPUTS_SUBSTITUTE_MAX (16 * 1024 * 1024)

/*
 * Checks schema (found at loc, e.g. ["body", "inputs"]; loc is borrowed)
 * and appends its errors to detail, at loc + [NAME] or loc + [NAME, key]
 * (+ [index] inside "values").  Returns the number of errors added.
 */
size_t kiln_inputs_schema_check(json_t *detail, const json_t *loc,
				const json_t *schema);

/*
 * Validates inputs (an object; NULL stands for {}) against schema, which
 * kiln_inputs_schema_check accepted.  Every fault is appended to detail at
 * loc + [NAME] (+ ["url"] inside an asset object): an unknown input is
 * "extra_forbidden", a required one left out "missing", a bad value
 * "string_type", "int_type", "url_parsing", "enum", ...  Returns a new
 * object (caller owns) holding every declared input that was given or has
 * a default, in schema order, values deep-copied; NULL when errors were
 * added.
 */
json_t *kiln_inputs_resolve(json_t *detail, const json_t *loc,
			    const json_t *schema, const json_t *inputs);

/*
 * A deep copy of value (caller owns) in which every string using
 * {{inputs.NAME}} (spaces or tabs allowed inside the braces:
 * "{{ inputs.NAME }}") is filled from inputs (resolved, as
 * kiln_inputs_resolve returns them):
 *   - a string that is exactly one placeholder becomes a copy of the
 *     input's JSON value, whatever its type;
 *   - inside a longer string, the input's text goes in: a string as it
 *     is, a number or boolean as JSON text, an asset object its "url",
 *     anything else its compact JSON.
 * Object keys and non-string values are copied unchanged, and inserted
 * text is not searched for placeholders again.  path names value in
 * errors (e.g. "config"; NULL for none).  Returns NULL with err set on
 * failure: a NAME missing from inputs is KILN_EINVAL with err->field the
 * path of the string ("config.prompt", "steps[0].config.size") and a
 * message naming the input; so is inserting more than
 * KILN_INPUTS_SUBSTITUTE_MAX bytes.  value and inputs are borrowed.
 */
json_t *kiln_inputs_substitute(const json_t *value, const json_t *inputs,
			       const char *path, struct kiln_err *err);

/*
 * The NAMEs used as {{inputs.NAME}} in the strings of value (NULL: none),
 * as a new array (caller owns) of distinct strings in order of first use.
 */
json_t *kiln_inputs_used(const json_t *value);

#endif
