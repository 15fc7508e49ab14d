/*
 * batch_sched.c - the batch scheduler thread (see batch_sched.h).
 *
 * It holds no state of its own: each pass asks the store which
 * executions may start, creates their workflows in the same transaction,
 * and hands their first steps to the engine.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "kiln/batch_exec.h"
#include "kiln/batch_sched.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/thread_name.h"

/* Executions started per transaction, at most. */
#define STARTS_PER_TX 32
/* The pass that runs even when nothing said so. */
#define TICK_MS 1000

struct kiln_batch_sched {
	const struct kiln_config *cfg;
	struct kiln_engine *engine;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int dirty;
	int stopping;
};

static void kick(void *ctx)
{
	struct kiln_batch_sched *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->dirty = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

static json_t *build(void *ctx, const json_t *definition,
		     const json_t *batch, const json_t *asset,
		     struct kiln_err *err)
{
	struct kiln_batch_sched *s = ctx;

	return kiln_batch_workflow(s->cfg, definition, batch, asset, err);
}

/* Starts what may start; 0, or -1 when the store failed. */
static int dispatch(struct kiln_batch_sched *s, struct kiln_store *st)
{
	struct kiln_claimer who = kiln_engine_claimer(s->engine);
	struct kiln_dispatch d = {&who, build, s, s->cfg->batch_max_running,
				  STARTS_PER_TX};
	struct kiln_err err = {0};
	int handled;

	do {
		json_t *claims = NULL;

		who = kiln_engine_claimer(s->engine);
		if (kiln_store_dispatch_batches(st, &d, &claims, &handled,
						&err) != KILN_OK) {
			kiln_log(KILN_LOG_WARN, "batches: cannot start: %s",
				 err.msg);
			return -1;
		}
		kiln_engine_start_claimed(s->engine, claims);
	} while (handled > 0 && !s->stopping);
	return 0;
}

/* Cancels the running executions of batches that stop on errors. */
static void abort_running(struct kiln_batch_sched *s, struct kiln_store *st)
{
	struct kiln_err err = {0};
	json_t *ids = NULL, *id;
	size_t i;

	if (kiln_store_batch_aborts(st, &ids, &err) != KILN_OK) {
		kiln_log(KILN_LOG_WARN, "batches: %s", err.msg);
		return;
	}
	json_array_foreach(ids, i, id) {
		json_t *stopped = NULL;

		/* Already ended is fine: it raced us to the end. */
		if (kiln_store_workflow_action(st, json_string_value(id), NULL,
					       KILN_WF_ACTION_CANCEL, &stopped,
					       &err) == KILN_OK &&
		    stopped != NULL)
			kiln_engine_stop_steps(s->engine, stopped);
		json_decref(stopped);
	}
	json_decref(ids);
}

static void *sched_main(void *arg)
{
	struct kiln_batch_sched *s = arg;
	struct kiln_err err = {0};

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct kiln_store *st;
		int failed = 0;

		if (!s->dirty) {
			int64_t until = kiln_now_ms() + TICK_MS;
			struct timespec ts;

			ts.tv_sec = (time_t)(until / 1000);
			ts.tv_nsec = (long)(until % 1000) * 1000000L;
			pthread_cond_timedwait(&s->wake, &s->lock, &ts);
		}
		if (s->stopping)
			break;
		s->dirty = 0;
		pthread_mutex_unlock(&s->lock);
		st = kiln_store_thread(&err);
		if (st != NULL) {
			failed = dispatch(s, st);
			abort_running(s, st);
		}
		pthread_mutex_lock(&s->lock);
		/* A busy store: try again at the next tick. */
		(void)failed;
	}
	pthread_mutex_unlock(&s->lock);
	kiln_store_thread_release();
	return NULL;
}

enum kiln_rc kiln_batch_sched_start(const struct kiln_config *cfg,
				    struct kiln_engine *engine,
				    struct kiln_batch_sched **out,
				    struct kiln_err *err)
{
	struct kiln_batch_sched *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	s->cfg = cfg;
	s->engine = engine;
	s->dirty = 1; /* a restart carries on at once */
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	kiln_store_on_batch_change(kick, s);
	if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
		kiln_store_on_batch_change(NULL, NULL);
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return kiln_err_set(err, KILN_EIO, "",
				    "cannot start the batch scheduler");
	}
	kiln_thread_name(s->thread, "kiln-batches");
	*out = s;
	return KILN_OK;
}

void kiln_batch_sched_stop(struct kiln_batch_sched *s)
{
	if (s == NULL)
		return;
	kiln_store_on_batch_change(NULL, NULL);
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
