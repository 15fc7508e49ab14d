/*
 * run_view.h - a template run as POST /api/v1/templates/{id}/run and GET
 * /api/v1/runs/{id} answer it, and a batch execution's outputs and error:
 * built from the workflow as the store renders it (WorkflowPublic).
 * Pure: no store, no clock.
 */
#ifndef KILN_RUN_VIEW_H
#define KILN_RUN_VIEW_H

#include <jansson.h>

/* The run of workflow wf (owned):
 *   runId, status (pending, running, paused, completed, failed,
 *   cancelled), template_id, template_version, inputs, outputs (only once
 *   completed), error (only once failed or cancelled), created_at,
 *   started_at, completed_at, statusUrl, cancelUrl, workflowUrl. */
json_t *kiln_run_view(const json_t *wf);

/* 1 once wf's status is COMPLETED, FAILED or CANCELLED. */
int kiln_run_ended(const json_t *wf);

/* The final step's outputs: [{"type", "url", ...}] (owned; [] when it has
 * no result). */
json_t *kiln_run_outputs(const json_t *wf);

/* Why wf failed or was cancelled: {"code", "message", "step_id",
 * "field"} (owned), or NULL when it did neither. */
json_t *kiln_run_error(const json_t *wf);

#endif
