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
#include <stdint.h>

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

/* Builds p's request_headers (an "http" provider's; others have none),
 * once per config instead of once per request.  0, or -1 out of memory. */
int kiln_provider_share_headers(struct kiln_provider_cfg *p);

/* A request to the provider's service with its headers and timeouts:
 * method to url with body (NULL = none) as JSON.  Owned by the caller, or
 * handed to kiln_io_submit.  NULL with err on failure. */
struct kiln_http_request *
kiln_provider_request(const struct kiln_provider_cfg *p, const char *method,
		      const char *url, const json_t *body,
		      struct kiln_err *err);

/* The call (sync) or submission (async) of a step: the provider's method
 * to its url, with its body template filled with input. */
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

/* How a failed answer should be treated (docs/providers.md): transient
 * (connection errors, timeouts, 408, 429, 5xx) or permanent. */
enum kiln_failure {
	KILN_FAIL_TRANSIENT,
	KILN_FAIL_PERMANENT,
};
enum kiln_failure kiln_provider_failure_kind(
	const struct kiln_http_response *resp);

/* Delay before retry retry_n (1, 2, ...): base * 2^(n-1) capped at max,
 * uniformly jittered from 0 with full jitter (rnd is a random number),
 * and never less than retry_after_ms (-1: none).  x NULL = defaults. */
int64_t kiln_backoff_ms(const struct kiln_provider_ext *x, int retry_n,
			uint32_t rnd, long retry_after_ms);

/* ---- async providers (provider_async.c) --------------------------- */

/* tpl with every "{job_id}" replaced by job_id (malloc'd; NULL if out of
 * memory). */
char *kiln_subst_job_id(const char *tpl, const char *job_id);

/* Reads a submission's answer: *job = {"id", "status_url", and
 * "cancel_url"/"result_url" when configured} (owned).  KILN_EUPSTREAM
 * when the answer lacks the id or a URL. */
enum kiln_rc kiln_provider_job(const struct kiln_provider_cfg *p,
			       const json_t *answer, json_t **job,
			       struct kiln_err *err) KILN_WARN_UNUSED;

enum kiln_job_state {
	KILN_JOB_RUNNING,
	KILN_JOB_SUCCEEDED,
	KILN_JOB_FAILED,
};
/* The state a status answer reports; for KILN_JOB_FAILED, error receives
 * the message ("provider 'x' job J ended failed: <error>"). */
enum kiln_job_state kiln_provider_job_state(const struct kiln_provider_cfg *p,
					    const json_t *answer,
					    const char *job_id, char *error,
					    size_t error_size);

/* The step result from a finished job's answer (status or result URL):
 * the value at result_pointer (whole answer by default); a value that is
 * not an object is wrapped as {"output": value}.  Owned. */
json_t *kiln_provider_job_result(const struct kiln_provider_cfg *p,
				 const json_t *answer, const char *job_id);

/* The cancel request's body for job_id (owned), NULL when none. */
json_t *kiln_provider_cancel_body(const struct kiln_provider_cfg *p,
				  const char *job_id);

#endif
