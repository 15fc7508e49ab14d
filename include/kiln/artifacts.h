/*
 * artifacts.h - files a workflow produced under <data-dir>/artifacts/
 * <workflow_id>/<step_id>/, and their removal at clean-up.
 */
#ifndef KILN_ARTIFACTS_H
#define KILN_ARTIFACTS_H

#include <jansson.h>

#include "kiln/common.h"

/*
 * Deletes <data_dir>/artifacts/<wf_id>/ and everything under it.  steps is
 * [{id, step_id, task_type}].  Returns the WorkflowCleanupDetail object
 * (owned): tasks_processed (= steps), tasks_cleaned, deleted_paths
 * (relative to data_dir) and errors [{task_id, step_id, task_type, error}].
 */
json_t *kiln_artifacts_cleanup(const char *data_dir, const char *wf_id,
			       const json_t *steps);

#endif
