/*
 * provider_cfg.c - parses and checks a provider's extension keys (see
 * provider_cfg.h and docs/providers.md).
 *
 * The validated keys are kept in one jansson object (spec) with every
 * default filled in; the struct's fields point into it, so freeing is one
 * json_decref.  Every error names the key as a dotted path
 * ("providers.fal.async.status_pointer").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kiln/provider_cfg.h"

#define DEFAULT_ARTIFACT_MAX ((json_int_t)100 * 1024 * 1024)

static const char *const top_keys[] = {
	"mode", "method", "body", "retry", "concurrency", "step_deadline_s",
	"async", "artifacts", NULL,
};

int kiln_provider_ext_key(const char *key)
{
	for (size_t i = 0; top_keys[i] != NULL; i++)
		if (strcmp(key, top_keys[i]) == 0)
			return 1;
	return 0;
}

/* "base.key", cut to fit (between characters). */
static void path(char out[KILN_ERR_FIELD_MAX], const char *base,
		 const char *key)
{
	size_t n = kiln_strlcpy(out, base, KILN_ERR_FIELD_MAX);

	if (n + 2 < KILN_ERR_FIELD_MAX) {
		out[n] = '.';
		kiln_strlcpy(out + n + 1, key, KILN_ERR_FIELD_MAX - n - 1);
	}
}

static enum kiln_rc bad(struct kiln_err *err, const char *base,
			const char *key, const char *why)
{
	char field[KILN_ERR_FIELD_MAX];

	path(field, base, key);
	return kiln_err_set(err, KILN_EINVAL, field, "%s", why);
}

/* Integer key of obj in [min, max], or dflt when absent; stored in spec. */
static enum kiln_rc take_int(const json_t *obj, json_t *spec,
			     const char *base, const char *key,
			     json_int_t min, json_int_t max, json_int_t dflt,
			     struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);
	char why[96];

	if (v == NULL) {
		json_object_set_new(spec, key, json_integer(dflt));
		return KILN_OK;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		snprintf(why, sizeof(why),
			 "must be an integer from %" JSON_INTEGER_FORMAT
			 " to %" JSON_INTEGER_FORMAT, min, max);
		return bad(err, base, key, why);
	}
	json_object_set(spec, key, (json_t *)v);
	return KILN_OK;
}

/* A JSON Pointer ("" or starting with "/"), or NULL when absent. */
static enum kiln_rc take_pointer(const json_t *obj, json_t *spec,
				 const char *base, const char *key,
				 struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);
	const char *s = json_string_value(v);

	if (v == NULL)
		return KILN_OK;
	if (s == NULL || (s[0] != '\0' && s[0] != '/'))
		return bad(err, base, key,
			   "must be a JSON Pointer: \"\" or a string starting"
			   " with \"/\"");
	json_object_set(spec, key, (json_t *)v);
	return KILN_OK;
}

static int is_http_url(const char *s)
{
	return s != NULL && ((strncasecmp(s, "http://", 7) == 0 && s[7]) ||
			     (strncasecmp(s, "https://", 8) == 0 && s[8]));
}

/* A URL template containing {job_id}. */
static enum kiln_rc take_template(const json_t *obj, json_t *spec,
				  const char *base, const char *key,
				  struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);
	const char *s = json_string_value(v);

	if (v == NULL)
		return KILN_OK;
	if (!is_http_url(s))
		return bad(err, base, key,
			   "must be an http:// or https:// URL (it may"
			   " contain {job_id})");
	json_object_set(spec, key, (json_t *)v);
	return KILN_OK;
}

static enum kiln_rc take_method(const json_t *obj, json_t *spec,
				const char *base, const char *key,
				const char *const *allowed, const char *why,
				struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);
	const char *s = json_string_value(v);
	size_t i;

	if (v == NULL) {
		json_object_set_new(spec, key, json_string(allowed[0]));
		return KILN_OK;
	}
	for (i = 0; s != NULL && allowed[i] != NULL; i++)
		if (strcmp(s, allowed[i]) == 0) {
			json_object_set(spec, key, (json_t *)v);
			return KILN_OK;
		}
	return bad(err, base, key, why);
}

/* A non-empty array of strings. */
static enum kiln_rc take_strings(const json_t *obj, json_t *spec,
				 const char *base, const char *key,
				 int required, struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);
	size_t i;

	if (v == NULL && !required)
		return KILN_OK;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return bad(err, base, key,
			   "must be a non-empty array of strings");
	for (i = 0; i < json_array_size(v); i++)
		if (!json_is_string(json_array_get(v, i)))
			return bad(err, base, key,
				   "must be a non-empty array of strings");
	json_object_set(spec, key, (json_t *)v);
	return KILN_OK;
}

static enum kiln_rc check_keys(const json_t *obj, const char *base,
			       const char *const *known,
			       struct kiln_err *err)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL)
			return bad(err, base, key, "unknown key");
	}
	return KILN_OK;
}

static enum kiln_rc parse_retry(const json_t *obj, json_t *spec,
				const char *base, struct kiln_err *err)
{
	static const char *const keys[] = {"base_delay_ms", "max_delay_ms",
					   "jitter", NULL};
	static const char *const jitters[] = {"full", "none", NULL};
	char rbase[KILN_ERR_FIELD_MAX];
	const json_t *r = json_object_get(obj, "retry");
	json_t *empty = json_object();
	enum kiln_rc rc;

	path(rbase, base, "retry");
	if (r == NULL)
		r = empty;
	if (!json_is_object(r)) {
		json_decref(empty);
		return kiln_err_set(err, KILN_EINVAL, rbase,
				    "must be an object");
	}
	rc = check_keys(r, rbase, keys, err);
	if (rc == KILN_OK)
		rc = take_int(r, spec, rbase, "base_delay_ms", 0, 3600000,
			      1000, err);
	if (rc == KILN_OK)
		rc = take_int(r, spec, rbase, "max_delay_ms", 0, 86400000,
			      60000, err);
	if (rc == KILN_OK)
		rc = take_method(r, spec, rbase, "jitter", jitters,
				 "must be \"full\" or \"none\"", err);
	json_decref(empty);
	return rc;
}

static enum kiln_rc parse_async(const json_t *a, json_t *spec,
				const char *abase, struct kiln_err *err)
{
	static const char *const keys[] = {
		"job_id_pointer", "status_url_pointer", "status_url_template",
		"cancel_url_pointer", "cancel_url_template", "cancel_method",
		"cancel_body", "result_url_pointer", "result_url_template",
		"status_pointer", "result_pointer", "error_pointer",
		"success_values", "failure_values", "poll_initial_ms",
		"poll_max_ms", NULL,
	};
	static const char *const pointers[] = {
		"job_id_pointer", "status_url_pointer", "cancel_url_pointer",
		"result_url_pointer", "status_pointer", "result_pointer",
		"error_pointer", NULL,
	};
	static const char *const templates[] = {
		"status_url_template", "cancel_url_template",
		"result_url_template", NULL,
	};
	static const char *const methods[] = {"POST", "PUT", "DELETE", "GET",
					      NULL};
	enum kiln_rc rc;
	size_t i;

	if (!json_is_object(a))
		return kiln_err_set(err, KILN_EINVAL, abase,
				    "must be an object");
	rc = check_keys(a, abase, keys, err);
	for (i = 0; rc == KILN_OK && pointers[i] != NULL; i++)
		rc = take_pointer(a, spec, abase, pointers[i], err);
	for (i = 0; rc == KILN_OK && templates[i] != NULL; i++)
		rc = take_template(a, spec, abase, templates[i], err);
	if (rc == KILN_OK)
		rc = take_method(a, spec, abase, "cancel_method", methods,
				 "must be \"POST\", \"PUT\", \"DELETE\" or"
				 " \"GET\"",
				 err);
	if (rc == KILN_OK)
		rc = take_strings(a, spec, abase, "success_values", 1, err);
	if (rc == KILN_OK)
		rc = take_strings(a, spec, abase, "failure_values", 0, err);
	if (rc == KILN_OK)
		rc = take_int(a, spec, abase, "poll_initial_ms", 10, 3600000,
			      1000, err);
	if (rc == KILN_OK)
		rc = take_int(a, spec, abase, "poll_max_ms", 10, 3600000,
			      30000, err);
	if (rc != KILN_OK)
		return rc;
	if (json_object_get(a, "cancel_body"))
		json_object_set(spec, "cancel_body",
				json_object_get(a, "cancel_body"));
	if (!json_object_get(spec, "job_id_pointer"))
		return bad(err, abase, "job_id_pointer", "is required");
	if (!json_object_get(spec, "status_pointer"))
		return bad(err, abase, "status_pointer", "is required");
	if (!json_object_get(spec, "status_url_pointer") ==
	    !json_object_get(spec, "status_url_template"))
		return bad(err, abase, "status_url_pointer",
			   "exactly one of status_url_pointer and"
			   " status_url_template is required");
	if (json_object_get(spec, "cancel_url_pointer") &&
	    json_object_get(spec, "cancel_url_template"))
		return bad(err, abase, "cancel_url_pointer",
			   "give cancel_url_pointer or cancel_url_template,"
			   " not both");
	if (json_object_get(spec, "result_url_pointer") &&
	    json_object_get(spec, "result_url_template"))
		return bad(err, abase, "result_url_pointer",
			   "give result_url_pointer or result_url_template,"
			   " not both");
	if (json_integer_value(json_object_get(spec, "poll_max_ms")) <
	    json_integer_value(json_object_get(spec, "poll_initial_ms")))
		return bad(err, abase, "poll_max_ms",
			   "must not be less than poll_initial_ms");
	return KILN_OK;
}

static enum kiln_rc parse_artifacts(const json_t *a, json_t *spec,
				    const char *abase, struct kiln_err *err)
{
	static const char *const keys[] = {"url_pointers", "max_bytes", NULL};
	const json_t *ptrs;
	enum kiln_rc rc;
	size_t i;

	if (!json_is_object(a))
		return kiln_err_set(err, KILN_EINVAL, abase,
				    "must be an object");
	rc = check_keys(a, abase, keys, err);
	if (rc == KILN_OK)
		rc = take_strings(a, spec, abase, "url_pointers", 1, err);
	if (rc == KILN_OK)
		rc = take_int(a, spec, abase, "max_bytes", 1,
			      (json_int_t)1 << 40, DEFAULT_ARTIFACT_MAX, err);
	if (rc != KILN_OK)
		return rc;
	ptrs = json_object_get(spec, "url_pointers");
	for (i = 0; i < json_array_size(ptrs); i++) {
		const char *s = json_string_value(json_array_get(ptrs, i));

		if (s[0] != '/')
			return bad(err, abase, "url_pointers",
				   "each must be a JSON Pointer starting with"
				   " \"/\" (\"*\" matches any member)");
	}
	return KILN_OK;
}

static const char *spec_str(const json_t *spec, const char *key)
{
	return json_string_value(json_object_get(spec, key));
}

static int spec_int(const json_t *spec, const char *key)
{
	return (int)json_integer_value(json_object_get(spec, key));
}

/* Points the struct's fields into x->spec. */
static void bind_fields(struct kiln_provider_ext *x)
{
	const json_t *s = x->spec;

	x->is_async = strcmp(spec_str(s, "mode"), "async") == 0;
	x->method = spec_str(s, "method");
	x->body = json_object_get(s, "body");
	x->retry_base_ms = spec_int(s, "base_delay_ms");
	x->retry_max_ms = spec_int(s, "max_delay_ms");
	x->jitter_full = strcmp(spec_str(s, "jitter"), "full") == 0;
	x->concurrency = spec_int(s, "concurrency");
	x->step_deadline_s = spec_int(s, "step_deadline_s");
	x->job_id_pointer = spec_str(s, "job_id_pointer");
	x->status_url_pointer = spec_str(s, "status_url_pointer");
	x->status_url_template = spec_str(s, "status_url_template");
	x->cancel_url_pointer = spec_str(s, "cancel_url_pointer");
	x->cancel_url_template = spec_str(s, "cancel_url_template");
	x->cancel_method = spec_str(s, "cancel_method");
	x->cancel_body = json_object_get(s, "cancel_body");
	x->result_url_pointer = spec_str(s, "result_url_pointer");
	x->result_url_template = spec_str(s, "result_url_template");
	x->status_pointer = spec_str(s, "status_pointer");
	x->result_pointer = spec_str(s, "result_pointer");
	x->error_pointer = spec_str(s, "error_pointer");
	x->success_values = json_object_get(s, "success_values");
	x->failure_values = json_object_get(s, "failure_values");
	x->poll_initial_ms = spec_int(s, "poll_initial_ms");
	x->poll_max_ms = spec_int(s, "poll_max_ms");
	x->artifact_pointers = json_object_get(s, "url_pointers");
	x->artifact_max_bytes =
		(size_t)json_integer_value(json_object_get(s, "max_bytes"));
}

enum kiln_rc kiln_provider_ext_parse(const json_t *obj, const char *base,
				     struct kiln_provider_ext **out,
				     struct kiln_err *err)
{
	static const char *const modes[] = {"sync", "async", NULL};
	static const char *const methods[] = {"POST", "PUT", NULL};
	static const char *const no_cancel[] = {"POST", NULL};
	char sub[KILN_ERR_FIELD_MAX];
	struct kiln_provider_ext *x;
	json_t *spec = json_object();
	const json_t *a;
	enum kiln_rc rc;

	if (spec == NULL)
		return kiln_err_set(err, KILN_ENOMEM, base, "out of memory");
	rc = take_method(obj, spec, base, "mode", modes,
			 "must be \"sync\" or \"async\"", err);
	if (rc == KILN_OK)
		rc = take_method(obj, spec, base, "method", methods,
				 "must be \"POST\" or \"PUT\"", err);
	if (rc == KILN_OK)
		rc = take_int(obj, spec, base, "concurrency", 1, 100000, 100,
			      err);
	if (rc == KILN_OK)
		rc = take_int(obj, spec, base, "step_deadline_s", 0, 604800,
			      0, err);
	if (rc == KILN_OK)
		rc = parse_retry(obj, spec, base, err);
	if (rc == KILN_OK && json_object_get(obj, "body")) {
		if (!json_is_object(json_object_get(obj, "body")))
			rc = bad(err, base, "body",
				 "must be a JSON object template (a string"
				 " \"{{input}}\" stands for the step's input)");
		else
			json_object_set(spec, "body",
					json_object_get(obj, "body"));
	}
	a = json_object_get(obj, "async");
	if (rc == KILN_OK) {
		path(sub, base, "async");
		if (strcmp(spec_str(spec, "mode"), "async") == 0) {
			if (a == NULL)
				rc = kiln_err_set(err, KILN_EINVAL, sub,
						  "is required when mode is"
						  " \"async\"");
			else
				rc = parse_async(a, spec, sub, err);
		} else if (a != NULL) {
			rc = kiln_err_set(err, KILN_EINVAL, sub,
					  "is only allowed when mode is"
					  " \"async\"");
		} else {
			rc = take_method(obj, spec, base, "cancel_method",
					 no_cancel, "", err);
		}
	}
	if (rc == KILN_OK && json_object_get(obj, "artifacts")) {
		path(sub, base, "artifacts");
		rc = parse_artifacts(json_object_get(obj, "artifacts"), spec,
				     sub, err);
	}
	if (rc == KILN_OK && !json_object_get(spec, "max_bytes"))
		json_object_set_new(spec, "max_bytes",
				    json_integer(DEFAULT_ARTIFACT_MAX));
	if (rc == KILN_OK && !json_object_get(spec, "poll_initial_ms")) {
		json_object_set_new(spec, "poll_initial_ms",
				    json_integer(1000));
		json_object_set_new(spec, "poll_max_ms", json_integer(30000));
	}
	if (rc != KILN_OK) {
		json_decref(spec);
		return rc;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		json_decref(spec);
		return kiln_err_set(err, KILN_ENOMEM, base, "out of memory");
	}
	x->refs = 1;
	x->spec = spec;
	bind_fields(x);
	*out = x;
	return KILN_OK;
}

enum kiln_rc kiln_provider_ext_default(struct kiln_provider_ext **out,
				       struct kiln_err *err)
{
	json_t *empty = json_object();
	enum kiln_rc rc = kiln_provider_ext_parse(empty, "provider", out, err);

	json_decref(empty);
	return rc;
}

struct kiln_provider_ext *kiln_provider_ext_ref(struct kiln_provider_ext *x)
{
	if (x != NULL)
		x->refs++;
	return x;
}

void kiln_provider_ext_unref(struct kiln_provider_ext *x)
{
	if (x == NULL || --x->refs > 0)
		return;
	json_decref(x->spec);
	free(x);
}
