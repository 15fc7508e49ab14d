/*
 * webhook_event.h - the body of a webhook event (schema_version "1"), as
 * docs/webhooks.md documents it: built once from the workflow as the API
 * renders it, stored in the outbox, and sent unchanged on every attempt.
 *
 * Pure: no store, no clock, so the schema is unit-tested field by field.
 */
#ifndef KILN_WEBHOOK_EVENT_H
#define KILN_WEBHOOK_EVENT_H

#include <jansson.h>
#include <stdint.h>

#define KILN_WEBHOOK_SCHEMA_VERSION "1"

/* Why a step or workflow failed. */
struct kiln_event_error {
	const char *outcome; /* the attempt outcome: "permanent_error", ... */
	long http_status;    /* 0 = none */
	const char *message;
	const char *field;   /* the input at fault, or NULL */
};

struct kiln_event {
	const char *id;         /* "msg_..." */
	const char *type;       /* "workflow.completed", "step.failed", ... */
	int64_t now_ms;
	const json_t *workflow; /* WorkflowPublic, with its steps */
	const char *step_id;    /* the step the event is about, or NULL */
	const struct kiln_event_error *error; /* failures; NULL otherwise */
};

/* The payload (owned by the caller). */
json_t *kiln_webhook_payload(const struct kiln_event *ev);

/* The stable error_code of an attempt outcome ("PROVIDER_REJECTED"...). */
const char *kiln_event_error_code(const char *outcome);

/* The generated files named by a step result: [{"asset_url",
 * "asset_type", "format", ...}] (owned). */
json_t *kiln_result_outputs(const json_t *result);

/* The credits a rendered workflow's step results report (credit_cost or
 * cost), summed, as a real; JSON null when none reports any (owned). */
json_t *kiln_workflow_credit_cost(const json_t *wf);

#endif
