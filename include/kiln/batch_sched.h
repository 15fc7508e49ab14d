/*
 * batch_sched.h - the thread that starts batch executions as room frees
 * up (store_batch_sched.c decides which), and cancels the running ones of
 * a batch that stops on its first failure.
 */
#ifndef KILN_BATCH_SCHED_H
#define KILN_BATCH_SCHED_H

#include "kiln/common.h"
#include "kiln/config.h"
#include "kiln/engine.h"

struct kiln_batch_sched;

/* Starts the thread; it looks at the store at once (a restart carries on
 * every batch), after every commit that may free room or add work, and
 * every second.  cfg and engine must outlive it. */
enum kiln_rc kiln_batch_sched_start(const struct kiln_config *cfg,
				    struct kiln_engine *engine,
				    struct kiln_batch_sched **out,
				    struct kiln_err *err) KILN_WARN_UNUSED;
/* Stops and frees it; NULL is a no-op. */
void kiln_batch_sched_stop(struct kiln_batch_sched *s);

#endif
