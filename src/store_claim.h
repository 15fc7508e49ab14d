/*
 * store_claim.h - the claim of a step inserted already RUNNING (a root
 * step of a workflow created RUNNING), built from the inserted values
 * instead of read back.  Private to the store.
 */
#ifndef KILN_STORE_CLAIM_H
#define KILN_STORE_CLAIM_H

#include <jansson.h>
#include <stdint.h>

#include "kiln/json_writer.h"

/* Writes the attempts list of a step whose first attempt starts at now_ms
 * on provider: what NEW_ATTEMPT (store_engine.c) makes of an empty list. */
void kiln_claim_first_attempts(struct kiln_jw *w, const char *provider,
			       int64_t now_ms);

/* The claim that claim_locked (store_engine.c) would read for step (a
 * validated
 * step as kiln_store_insert_workflow takes it, with no dependencies) of
 * workflow wf_id, claimed as task_id at now_ms.  run_inputs may be NULL. */
json_t *kiln_claim_of_new_step(const char *wf_id, const json_t *step,
			       const json_t *run_inputs, const char *task_id,
			       int64_t now_ms);

#endif
