/*
 * http_wait.c - connections suspended until a workflow ends (?wait= on
 * runs): no thread is held while they wait.
 *
 * A waiter is resumed when its workflow ends (the store's commit hook),
 * when its time is up (this module's timer thread), or at stop.  A
 * resumed connection's handler looks at the store again and answers, or
 * waits again after a spurious wake.  Ends are counted: a waiter added
 * after an end it may have missed (between the handler's look at the
 * store and its suspension) is resumed at once to look again.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/http.h"
#include "kiln/thread_name.h"

struct waiter {
	struct MHD_Connection *conn;
	char wf_id[KILN_UUID_LEN];
	int64_t until_ms;
};

struct kiln_waits {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t timer;
	struct waiter *w;
	size_t n, cap;
	uint64_t seq;
	int stopping;
	/* Requests that have waited and not been completed yet (answered
	 * and sent, or dropped): stop lets them finish first. */
	size_t active;
	pthread_cond_t idle;
};

/* How long stop lets woken waiters send their answers. */
#define STOP_GRACE_MS 5000

/* Resumes and forgets waiter i; the caller holds the lock. */
static void release(struct kiln_waits *w, size_t i)
{
	MHD_resume_connection(w->w[i].conn);
	w->w[i] = w->w[--w->n];
}

static void on_ended(void *ctx, const char *wf_id)
{
	struct kiln_waits *w = ctx;
	size_t i = 0;

	pthread_mutex_lock(&w->lock);
	w->seq++;
	while (i < w->n) {
		if (wf_id == NULL || strcmp(w->w[i].wf_id, wf_id) == 0)
			release(w, i);
		else
			i++;
	}
	pthread_mutex_unlock(&w->lock);
}

static void *timer_main(void *arg)
{
	struct kiln_waits *w = arg;

	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		int64_t now = kiln_now_ms(), next = -1;
		size_t i = 0;

		while (i < w->n) {
			if (w->w[i].until_ms <= now) {
				release(w, i);
				continue;
			}
			if (next < 0 || w->w[i].until_ms < next)
				next = w->w[i].until_ms;
			i++;
		}
		if (next < 0) {
			pthread_cond_wait(&w->wake, &w->lock);
		} else {
			/* kiln_now_ms is CLOCK_REALTIME, the condition's. */
			struct timespec ts;

			ts.tv_sec = (time_t)(next / 1000);
			ts.tv_nsec = (long)(next % 1000) * 1000000L;
			pthread_cond_timedwait(&w->wake, &w->lock, &ts);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct kiln_waits *kiln_waits_start(struct kiln_err *err)
{
	struct kiln_waits *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->idle, NULL);
	if (pthread_create(&w->timer, NULL, timer_main, w) != 0) {
		pthread_cond_destroy(&w->wake);
		pthread_cond_destroy(&w->idle);
		pthread_mutex_destroy(&w->lock);
		free(w);
		kiln_err_set(err, KILN_EIO, "", "cannot start a thread");
		return NULL;
	}
	kiln_thread_name(w->timer, "kiln-waits");
	kiln_store_on_workflow_end(on_ended, w);
	return w;
}

void kiln_waits_stop(struct kiln_waits *w)
{
	if (w == NULL)
		return;
	kiln_store_on_workflow_end(NULL, NULL);
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	while (w->n > 0)
		release(w, 0);
	pthread_cond_signal(&w->wake);
	/* Every waiter answers (with the run as it is) before the daemon
	 * closes its connections. */
	{
		int64_t until = kiln_now_ms() + STOP_GRACE_MS;
		struct timespec ts;

		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000L;
		while (w->active > 0 &&
		       pthread_cond_timedwait(&w->idle, &w->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->timer, NULL);
}

void kiln_waits_begin(struct kiln_waits *w)
{
	pthread_mutex_lock(&w->lock);
	w->active++;
	pthread_mutex_unlock(&w->lock);
}

void kiln_waits_end(struct kiln_waits *w)
{
	pthread_mutex_lock(&w->lock);
	if (w->active > 0 && --w->active == 0)
		pthread_cond_broadcast(&w->idle);
	pthread_mutex_unlock(&w->lock);
}

/* Frees w once the HTTP daemon is gone (no handler can reach it). */
void kiln_waits_free(struct kiln_waits *w)
{
	if (w == NULL)
		return;
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->idle);
	pthread_mutex_destroy(&w->lock);
	free(w->w);
	free(w);
}

uint64_t kiln_waits_seq(struct kiln_waits *w)
{
	uint64_t seq;

	pthread_mutex_lock(&w->lock);
	seq = w->seq;
	pthread_mutex_unlock(&w->lock);
	return seq;
}

int kiln_waits_stopping(struct kiln_waits *w)
{
	int stopping;

	pthread_mutex_lock(&w->lock);
	stopping = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return stopping;
}

void kiln_waits_add(struct kiln_waits *w, struct MHD_Connection *conn,
		    const char *wf_id, int64_t until_ms, uint64_t seq)
{
	pthread_mutex_lock(&w->lock);
	if (w->stopping || w->seq != seq) {
		pthread_mutex_unlock(&w->lock);
		MHD_resume_connection(conn);
		return;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct waiter *nw = realloc(w->w, cap * sizeof(*nw));

		if (nw == NULL) {
			/* It answers now with what it has. */
			pthread_mutex_unlock(&w->lock);
			MHD_resume_connection(conn);
			return;
		}
		w->w = nw;
		w->cap = cap;
	}
	w->w[w->n].conn = conn;
	kiln_strlcpy(w->w[w->n].wf_id, wf_id, KILN_UUID_LEN);
	w->w[w->n].until_ms = until_ms;
	w->n++;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}
