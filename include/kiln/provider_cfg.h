/*
 * provider_cfg.h - the settings of an http provider beyond its URL and
 * headers: sync/async mode, request body template, retries, concurrency,
 * deadline, how to read an async job, which result fields are artifacts.
 * docs/providers.md is the user-facing description of every key.
 *
 * Parsed once at start-up and immutable afterwards, so copies share it by
 * reference count.
 */
#ifndef KILN_PROVIDER_CFG_H
#define KILN_PROVIDER_CFG_H

#include <jansson.h>
#include <stddef.h>

#include "kiln/common.h"

struct kiln_provider_ext {
	int refs;
	int is_async;
	const char *method;        /* "POST" | "PUT" (points into spec) */
	const json_t *body;        /* template or NULL: the input itself */
	int retry_base_ms;         /* 1000 */
	int retry_max_ms;          /* 60000 */
	int jitter_full;           /* 1 = full jitter, 0 = none */
	int concurrency;           /* 100 */
	int step_deadline_s;       /* 0 = none */
	/* async: all pointers/templates are NULL when not configured */
	const char *job_id_pointer;
	const char *status_url_pointer, *status_url_template;
	const char *cancel_url_pointer, *cancel_url_template;
	const char *cancel_method; /* "POST" */
	const json_t *cancel_body;
	const char *result_url_pointer, *result_url_template;
	const char *status_pointer, *result_pointer, *error_pointer;
	const json_t *success_values, *failure_values; /* arrays of strings */
	int poll_initial_ms;       /* 1000 */
	int poll_max_ms;           /* 30000 */
	/* artifacts */
	const json_t *artifact_pointers; /* array of strings, or NULL */
	size_t artifact_max_bytes;       /* 100 MiB */
	json_t *spec; /* owns every string and value above */
};

/* 1 if key is one that kiln_provider_ext_apply handles. */
int kiln_provider_ext_key(const char *key);

/*
 * Builds the extension from the provider object obj (keys other than the
 * extension's are ignored here).  base is the provider's dotted path for
 * error fields ("providers.fal").  *out is owned (kiln_provider_ext_unref).
 */
enum kiln_rc kiln_provider_ext_parse(const json_t *obj, const char *base,
				     struct kiln_provider_ext **out,
				     struct kiln_err *err) KILN_WARN_UNUSED;

/* The defaults, for providers without extension keys (dryrun too). */
enum kiln_rc kiln_provider_ext_default(struct kiln_provider_ext **out,
				       struct kiln_err *err) KILN_WARN_UNUSED;

struct kiln_provider_ext *kiln_provider_ext_ref(struct kiln_provider_ext *x);
void kiln_provider_ext_unref(struct kiln_provider_ext *x);

#endif
