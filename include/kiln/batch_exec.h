/*
 * batch_exec.h - what one asset of a batch runs: its inputs (the batch's
 * shared inputs, the asset's overrides, and the asset itself under the
 * template input it fills) and its workflow.  Used by the API to check
 * every asset before anything is stored, and by the scheduler to start
 * each execution.
 */
#ifndef KILN_BATCH_EXEC_H
#define KILN_BATCH_EXEC_H

#include <jansson.h>

#include "kiln/common.h"
#include "kiln/config.h"

/* The origin_instance of a batch execution's workflow by default. */
#define KILN_BATCH_ORIGIN_INSTANCE "batch"

/* The template input a batch's assets fill when the body names none: the
 * only input of type "asset", else the only one of type "url"; NULL when
 * there is no such single input. */
const char *kiln_batch_default_asset_input(const json_t *schema);

/* The inputs of asset ({"asset_id", "url", "inputs"}) before they are
 * resolved against the schema (owned): shared, then the asset's
 * "inputs", then asset_input = the asset (an object {"url", "asset_id"}
 * for an input of type "asset", its url otherwise). */
json_t *kiln_batch_asset_inputs(const json_t *schema,
				const char *asset_input, const json_t *shared,
				const json_t *asset);

/* The workflow of one execution, without "id" and "status" (owned), or
 * NULL with err (KILN_EINVAL, field and message of the first fault).
 * batch and asset are as struct kiln_dispatch describes them. */
json_t *kiln_batch_workflow(const struct kiln_config *cfg,
			    const json_t *definition, const json_t *batch,
			    const json_t *asset, struct kiln_err *err);

/* kiln_batch_workflow from the asset's inputs already resolved (for
 * callers that resolved them to place their errors). */
json_t *kiln_batch_workflow_of(const struct kiln_config *cfg,
			       const json_t *definition, const json_t *batch,
			       const json_t *resolved, struct kiln_err *err);

#endif
