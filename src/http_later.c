/*
 * http_later.c - answers another thread finishes: a handler whose answer
 * depends on a write's commit (kiln_store_commit_then) returns at once,
 * and its connection is suspended, holding no thread, until the thread
 * that commits the write fills in the answer and resumes it.
 *
 * The answer may be ready before the handler has even returned (the
 * commit ran inline), or while the connection is being suspended, so the
 * states are changed under one lock.  The connection may also be gone
 * before the answer comes: then the answer is dropped.  Each later is
 * freed by whichever of the two sides lets go of it last.
 *
 * MHD must not stop with a connection suspended, so kiln_later_stop
 * waits until every suspended one has its answer, and from then on a
 * handler's thread waits for its answer instead of suspending.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "kiln/log.h"

#include "kiln/http.h"

enum later_state {
	LATER_RUNNING,   /* the handler has not finished with it yet */
	LATER_SUSPENDED, /* the connection waits for the answer */
	LATER_READY,     /* the answer is in resp */
	LATER_ORPHANED,  /* the connection is gone: drop the answer */
};

struct kiln_later {
	struct MHD_Connection *conn;
	enum later_state state;
	int refs; /* the connection's side and the finishing side */
	struct kiln_resp resp;
};

/* How long a stop waits for the suspended answers (their commits). */
#define STOP_WAIT_MS 30000

static pthread_mutex_t later_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under later_lock: an answer arrived (for kiln_later_stop and for
 * threads waiting once stopping is set), and how many wait suspended. */
static pthread_cond_t later_sent = PTHREAD_COND_INITIALIZER;
static size_t n_suspended;
static int stopping;

/* Under later_lock: one side lets go; 1 if l is to be freed. */
static int let_go(struct kiln_later *l)
{
	return --l->refs == 0;
}

struct kiln_later *kiln_answer_later(struct kiln_req *req,
				     struct kiln_resp *resp)
{
	struct kiln_later *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		kiln_reply_detail(resp, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "out of memory");
		return NULL;
	}
	l->conn = req->conn;
	l->state = LATER_RUNNING;
	l->refs = 2;
	resp->later = l;
	return l;
}

void kiln_later_cancel(struct kiln_later *l, struct kiln_resp *resp)
{
	resp->later = NULL;
	free(l);
}

void kiln_later_send(struct kiln_later *l, struct kiln_resp *resp)
{
	int orphaned, last;

	pthread_mutex_lock(&later_lock);
	orphaned = l->state == LATER_ORPHANED;
	if (!orphaned) {
		l->resp = *resp;
		if (l->state == LATER_SUSPENDED) {
			MHD_resume_connection(l->conn);
			n_suspended--;
		}
		l->state = LATER_READY;
		pthread_cond_broadcast(&later_sent);
	}
	last = let_go(l);
	pthread_mutex_unlock(&later_lock);
	if (orphaned)
		kiln_reply_drop(resp);
	if (last)
		free(l);
}

int kiln_later_hold(struct kiln_later *l)
{
	int ready;

	pthread_mutex_lock(&later_lock);
	/* Stopping: this thread waits, as MHD will not stop while the
	 * connection is suspended. */
	while (stopping && l->state != LATER_READY)
		pthread_cond_wait(&later_sent, &later_lock);
	ready = l->state == LATER_READY;
	if (!ready) {
		MHD_suspend_connection(l->conn);
		l->state = LATER_SUSPENDED;
		n_suspended++;
	}
	pthread_mutex_unlock(&later_lock);
	return ready;
}

void kiln_later_take(struct kiln_later *l, struct kiln_resp *out)
{
	int last;

	pthread_mutex_lock(&later_lock);
	*out = l->resp;
	last = let_go(l);
	pthread_mutex_unlock(&later_lock);
	if (last)
		free(l);
}

void kiln_later_drop(struct kiln_later *l)
{
	int last;

	pthread_mutex_lock(&later_lock);
	if (l->state == LATER_SUSPENDED)
		n_suspended--;
	if (l->state == LATER_READY)
		kiln_reply_drop(&l->resp); /* never sent */
	l->state = LATER_ORPHANED;
	last = let_go(l);
	pthread_mutex_unlock(&later_lock);
	if (last)
		free(l);
}

void kiln_later_stop(void)
{
	int64_t until = kiln_now_ms() + STOP_WAIT_MS;
	struct timespec ts;

	ts.tv_sec = (time_t)(until / 1000);
	ts.tv_nsec = (long)(until % 1000) * 1000000L;
	pthread_mutex_lock(&later_lock);
	stopping = 1;
	while (n_suspended > 0 &&
	       pthread_cond_timedwait(&later_sent, &later_lock, &ts) !=
		       ETIMEDOUT)
		;
	if (n_suspended > 0)
		kiln_log(KILN_LOG_ERROR,
			 "http: %zu answers still wait for their commit",
			 n_suspended);
	pthread_mutex_unlock(&later_lock);
}

void kiln_later_restart(void)
{
	pthread_mutex_lock(&later_lock);
	stopping = 0;
	pthread_mutex_unlock(&later_lock);
}
