/*
 * workflow_validate.h - the CreateWorkflow and WorkflowUpdate bodies:
 * structure (json_spec), then meaning (unique step ids, known
 * dependencies, no cycles, mappings from ancestors, known task types,
 * providers and transforms).
 */
#ifndef KILN_WORKFLOW_VALIDATE_H
#define KILN_WORKFLOW_VALIDATE_H

#include <jansson.h>

#include "kiln/config.h"

/*
 * Validates a CreateWorkflow body.  Errors are appended to detail (loc
 * starting with "body").  On success returns a normalised copy (owned):
 * every optional field present with its default, each step with
 * "provider" (resolved), "max_retries" and a fresh "uuid", each mapping
 * with all four keys; plus "final_step_id".  NULL when detail got errors.
 */
json_t *kiln_workflow_validate_create(const json_t *body,
				      const struct kiln_config *cfg,
				      json_t *detail);

/* The from_step of an input mapping that reads a template run's inputs. */
#define KILN_INPUTS_STEP "$inputs"

/* kiln_workflow_validate_create for a template's steps, whose input
 * mappings may also read from_step "$inputs". */
json_t *kiln_workflow_validate_with_inputs(const json_t *body,
					   const struct kiln_config *cfg,
					   json_t *detail);

/* Validates a WorkflowUpdate body; returns 0 or -1 (errors in detail). */
int kiln_workflow_validate_update(const json_t *body, json_t *detail);

#endif
