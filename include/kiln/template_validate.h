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

#endif
