/*
 * engine.h - runs workflows: the only writer of step state.
 *
 * Anything that may make steps runnable (a workflow created or started or
 * resumed, a step finished) calls kiln_engine_kick(); the engine then reads
 * the store to decide what to run.  Memory holds only what is in flight.
 */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include <jansson.h>

#include "kiln/common.h"
#include "kiln/config.h"
#include "kiln/store.h"

struct kiln_engine;

/* Starts the worker pool and the I/O loop, recovers steps left running by
 * an earlier process, and schedules every RUNNING workflow.  cfg is
 * borrowed and must outlive the engine. */
enum kiln_rc kiln_engine_start(const struct kiln_config *cfg,
			       struct kiln_engine **out, struct kiln_err *err)
	KILN_WARN_UNUSED;

/* Who claims steps for this engine (its node id, a lease from now). */
struct kiln_claimer kiln_engine_claimer(struct kiln_engine *e);
/* Runs steps already claimed for kiln_engine_claimer (claims: an array
 * from the store, stolen; NULL is fine). */
void kiln_engine_start_claimed(struct kiln_engine *e, json_t *claims);

/* Asks the engine to look at workflow wf_id again (cheap; asynchronous). */
void kiln_engine_kick(struct kiln_engine *e, const char *wf_id);

/* The workflow's steps in stopped ([{"uuid", "provider", "job"}], from
 * kiln_store_workflow_action) were cancelled or reset: abort their
 * transfers and ask their providers to cancel their jobs. */
void kiln_engine_stop_steps(struct kiln_engine *e, const json_t *stopped);

/* Stops the engine: work in flight stays recorded in the store and is
 * resumed at the next start.  NULL is a no-op. */
void kiln_engine_stop(struct kiln_engine *e);

#endif
