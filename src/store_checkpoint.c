/*
 * store_checkpoint.c - copies the WAL back into the database from a thread
 * of its own, so that no committing thread pays for it while the writer
 * lock is held.  PASSIVE checkpoints never block readers or writers.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kiln/log.h"
#include "kiln/store.h"

static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int running, stopping, interval;

static void *checkpoint_main(void *arg)
{
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);
	struct timespec until;

	(void)arg;
	if (st == NULL)
		kiln_log(KILN_LOG_ERROR, "checkpointer: %s", err.msg);
	pthread_mutex_lock(&lock);
	while (!stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += interval / 1000;
		until.tv_nsec += (long)(interval % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!stopping &&
		       pthread_cond_timedwait(&wake, &lock, &until) != ETIMEDOUT)
			;
		if (stopping || st == NULL)
			break;
		pthread_mutex_unlock(&lock);
		kiln_store_checkpoint(st);
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	kiln_store_thread_release();
	return NULL;
}

enum kiln_rc kiln_store_checkpointer_start(int interval_ms,
					   struct kiln_err *err)
{
	interval = interval_ms > 0 ? interval_ms : 1000;
	stopping = 0;
	kiln_store_set_background_checkpoints(1);
	if (pthread_create(&thread, NULL, checkpoint_main, NULL) != 0) {
		kiln_store_set_background_checkpoints(0);
		return kiln_err_set(err, KILN_EIO, "",
				    "cannot start the checkpoint thread");
	}
	running = 1;
	return KILN_OK;
}

void kiln_store_checkpointer_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
	kiln_store_set_background_checkpoints(0);
}
