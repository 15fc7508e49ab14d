/*
 * catalog.h - what a workflow can be built from: every task type this
 * kilnd accepts, with the inputs a step's config and input mappings
 * usually carry, the outputs its result carries, its capabilities, the
 * provider it runs on and an example step.  GET /api/v1/catalog/actions
 * serves it, so that tools can build workflow definitions.
 *
 * The descriptions of the built-in task types are a static table (see
 * catalog.c); a task type that only the config declares gets a generic
 * entry.  Rendering is pure: it reads the config and allocates JSON,
 * nothing else.  Provider headers (they may hold API keys) are never
 * rendered, and a provider URL only as scheme://host[:port].
 */
#ifndef KILN_CATALOG_H
#define KILN_CATALOG_H

#include <jansson.h>
#include <stddef.h>

#include "kiln/common.h"
#include "kiln/config.h"

/* One input or output field of a task type. */
struct kiln_catalog_field {
	const char *name;
	/* "string", "integer", "number", "boolean", "url", "array",
	 * "object" */
	const char *type;
	int is_required; /* inputs: the step's input must carry it */
	const char *description;
};

/* The description of one task type. */
struct kiln_catalog_entry {
	const char *task_type;
	const char *description;
	const struct kiln_catalog_field *inputs;  /* ends with {0} */
	const struct kiln_catalog_field *outputs; /* ends with {0} */
	const char *const *capabilities;          /* ends with NULL */
	/* JSON text of a minimal valid WorkflowStepDefinition (it runs on
	 * its own: no dependencies, no mappings) */
	const char *example_step;
};

/* The built-in task types, in kiln_builtin_task_types order; ends with
 * an entry whose task_type is NULL. */
extern const struct kiln_catalog_entry kiln_catalog_builtins[];

/* The built-in entry of task_type (case-sensitive), or NULL. */
const struct kiln_catalog_entry *kiln_catalog_builtin(const char *task_type);

/*
 * {"actions": [CatalogAction, ...], "total": N}: every task type of cfg,
 * in the config's order, or only those whose capabilities include
 * capability (exact match) when it is not NULL.  *out is owned by the
 * caller.  Fails only when out of memory.
 */
enum kiln_rc kiln_catalog_render_list(const struct kiln_config *cfg,
				      const char *capability, json_t **out,
				      struct kiln_err *err) KILN_WARN_UNUSED;

/*
 * The CatalogAction of task_type (case-sensitive).  *out is owned by the
 * caller.  KILN_ENOTFOUND, with err->msg "Task type 'X' not found" (X cut
 * and made valid UTF-8), when cfg does not know task_type.
 */
enum kiln_rc kiln_catalog_render_action(const struct kiln_config *cfg,
					const char *task_type, json_t **out,
					struct kiln_err *err) KILN_WARN_UNUSED;

/*
 * Writes the origin of an http(s) URL, "scheme://host[:port]" in lower
 * case, into out (size bytes): no user name or password, path, query or
 * fragment.  Returns 0, or -1 (out is then "") when url has no
 * "scheme://host" or the origin does not fit.
 */
int kiln_catalog_url_origin(const char *url, char *out, size_t size);

#endif
