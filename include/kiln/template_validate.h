/*
 * template_validate.h - the body of POST and PUT /api/v1/templates: a
 * published workflow's name, description, input schema, and steps with
 * the same schema and rules as a workflow's, where step configs may use
 * {{inputs.NAME}} and input mappings may read from_step "$inputs".
 */
#ifndef KILN_TEMPLATE_VALIDATE_H
#define KILN_TEMPLATE_VALIDATE_H

#include <jansson.h>

#include "kiln/config.h"

/*
 * Validates body; errors are appended to detail (loc starting with
 * "body").  Returns the definition to store (owned): {name, description,
 * inputs, steps, config, webhook_url, suppress_subtask_events}, optional
 * fields filled with their defaults; NULL when detail got errors.
 */
json_t *kiln_template_validate(const json_t *body,
			       const struct kiln_config *cfg, json_t *detail);

/*
 * The workflow a run of definition creates, before it is validated as a
 * CreateWorkflow: steps and config with inputs (resolved, defaults
 * applied) substituted, plus name, description, webhook_url and
 * suppress_subtask_events.  NULL with err (field: the path of the
 * placeholder) when a placeholder cannot be filled.
 */
json_t *kiln_template_instantiate(const json_t *definition,
				  const json_t *inputs, struct kiln_err *err);

/* The origin_instance of a run that names none. */
#define KILN_RUN_ORIGIN_INSTANCE "template-run"

/*
 * The validated workflow (owned) a run of definition creates:
 * kiln_template_instantiate with inputs (resolved), then the run's name,
 * origin_* and webhook_url (from run, an object or NULL) over the
 * definition's, validated as a CreateWorkflow whose mappings may read
 * "$inputs", with "run_inputs" set to inputs.  NULL when detail got
 * errors: a placeholder that cannot be filled at ["body", "inputs"],
 * the steps as the workflow rules report them.
 */
json_t *kiln_template_run_workflow(const json_t *definition,
				   const json_t *inputs, const json_t *run,
				   const struct kiln_config *cfg,
				   json_t *detail);

#endif
