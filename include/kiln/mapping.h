/*
 * mapping.h - input mappings: copy a field of an earlier step's result into
 * a step's input, with an optional transform.  Pure (jansson only).
 *
 * A field is named either by a top-level key ("result_image_path") or by a
 * JSON Pointer (RFC 6901) when it starts with '/' ("/images/0/url").  The
 * same holds for to_field; intermediate objects are created as needed.
 *
 * Transforms (TransformType):
 *   to_string  number/bool -> its text; string unchanged; others -> JSON text
 *   to_int     number or numeric string -> integer (truncates)
 *   to_float   number or numeric string -> real
 *   to_bool    bool; numbers (0 = false); "true"/"false"/"1"/"0"
 *   first      first element of an array
 *   last       last element of an array
 *   to_list    wraps a non-array value in a one-element array
 *   json_encode any value -> its compact JSON text
 *   json_decode a string holding JSON -> that value
 */
#ifndef KILN_MAPPING_H
#define KILN_MAPPING_H

#include <jansson.h>

#include "kiln/common.h"

/* NULL-terminated list of transform names, for validation and docs. */
extern const char *const kiln_mapping_transforms[];

/* 1 if name is one of kiln_mapping_transforms. */
int kiln_mapping_transform_is_known(const char *name);

/* Borrowed lookup of a field (key or JSON Pointer) in root; NULL if absent. */
json_t *kiln_json_field_get(const json_t *root, const char *field);

/* Sets field (key or JSON Pointer) in the object root to value, creating
 * intermediate objects.  Steals value (also on failure). */
enum kiln_rc kiln_json_field_set(json_t *root, const char *field,
				 json_t *value, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Applies transform (NULL or "" for none) to value.  Returns a new reference
 * on success; on failure NULL with err->msg saying why. */
json_t *kiln_mapping_transform(const char *transform, json_t *value,
			       struct kiln_err *err);

/*
 * Applies one FieldMapping object ({from_step, from_field, to_field,
 * transform}) to input, reading from source_result (the from_step's result
 * object).  A missing from_field is KILN_EINVAL with err->field = from_field
 * and a message naming the field and the step.
 */
enum kiln_rc kiln_mapping_apply(json_t *input, const json_t *mapping,
				const json_t *source_result,
				struct kiln_err *err) KILN_WARN_UNUSED;

#endif
