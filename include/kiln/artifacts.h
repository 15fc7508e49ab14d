/*
 * artifacts.h - files a workflow produced under <data-dir>/artifacts/
 * <workflow id>/<step id>/ (ids are the UUIDs): their download from the
 * URLs a result names, and their removal at clean-up.
 */
#ifndef KILN_ARTIFACTS_H
#define KILN_ARTIFACTS_H

#include <jansson.h>

#include "kiln/common.h"
#include "kiln/io_loop.h"

/* The http(s) URLs in result at pointers (JSON Pointers in which "*"
 * matches every element or member), in order (owned array). */
json_t *kiln_artifact_urls(const json_t *result, const json_t *pointers);

/* Called once when the downloads end: result (owned) is the step's result
 * with "artifacts" and "result_image_path" set, or NULL with error, or
 * NULL with error NULL when the I/O loop stopped first. */
typedef void (*kiln_fetch_done_fn)(void *ctx, json_t *result,
				   const char *error);

/* Told the id of each download's transfer just before it is submitted,
 * so that it can be aborted (kiln_io_abort; done then gets NULL, NULL). */
typedef void (*kiln_fetch_started_fn)(void *ctx, uint64_t xfer);

/*
 * Downloads, one at a time on io, every URL that pointers find in result
 * (stolen) into <data_dir>/artifacts/<wf_id>/<step_uuid>/<n>.<ext>, each
 * at most max_bytes, recording url, path (relative to data_dir),
 * artifact_url, size_bytes, content_type and sha256.  done runs on the
 * I/O thread, or at once on the caller's when there is nothing to fetch.
 */
void kiln_artifacts_fetch(struct kiln_io *io, const char *data_dir,
			  const char *wf_id, const char *step_uuid,
			  json_t *result, const json_t *pointers,
			  size_t max_bytes, long connect_timeout_ms,
			  long timeout_ms, kiln_fetch_started_fn started,
			  kiln_fetch_done_fn done, void *ctx);

/*
 * Deletes <data_dir>/artifacts/<wf_id>/ and everything under it.  steps is
 * [{id, step_id, task_type}].  Returns the WorkflowCleanupDetail object
 * (owned): tasks_processed (= steps), tasks_cleaned, deleted_paths
 * (relative to data_dir) and errors [{task_id, step_id, task_type, error}].
 */
json_t *kiln_artifacts_cleanup(const char *data_dir, const char *wf_id,
			       const json_t *steps);

#endif
