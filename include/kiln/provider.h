/*
 * provider.h - how a step's resolved input becomes a provider call and how
 * the answer becomes the step's result.
 *
 * Two kinds today: "dryrun" (built in, answers at once, generates nothing)
 * and "http" (a JSON POST; a 2xx JSON object is the result).  Request
 * building and answer parsing are pure so they are unit-testable; the
 * transfer itself runs on io_loop.
 */
#ifndef KILN_PROVIDER_H
#define KILN_PROVIDER_H

#include <jansson.h>

#include "kiln/config.h"
#include "kiln/io_loop.h"

/* Largest provider answer read, in bytes. */
#define KILN_PROVIDER_MAX_RESPONSE (16u * 1024u * 1024u)
/* How much of a bad answer is quoted in error messages. */
#define KILN_PROVIDER_EXCERPT 512

/* The dry run's result: a deep copy of input plus dry_run, provider,
 * task_type and result_image_path ("dryrun://<wf>/<step>.png").  Owned. */
json_t *kiln_provider_dryrun_result(const json_t *input, const char *wf_id,
				    const char *step_id,
				    const char *task_type);

/* Builds the HTTP request for an http provider (owned by the caller, or
 * handed to kiln_io_submit).  NULL with err on failure. */
struct kiln_http_request *
kiln_provider_http_request(const struct kiln_provider_cfg *p,
			   const json_t *input, struct kiln_err *err);

/* Reads an http provider's answer.  On success *result is the answer's JSON
 * object (owned).  On failure KILN_EUPSTREAM (or KILN_ETIMEOUT) with
 * err->msg the step's error_message, e.g.
 * "provider 'fal' answered HTTP 500: <excerpt>". */
enum kiln_rc kiln_provider_http_result(const struct kiln_provider_cfg *p,
				       const struct kiln_http_response *resp,
				       json_t **result, struct kiln_err *err)
	KILN_WARN_UNUSED;

#endif
