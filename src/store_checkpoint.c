/*
 * store_checkpoint.c - copies the WAL back into the database from a thread
 * of its own, so that no committing thread pays for it while the writer
 * lock is held.  PASSIVE checkpoints never block readers or writers.
 *
 * PASSIVE checkpoints alone never let the WAL start over under a steady
 * load: it restarts from its beginning only when a write begins with every
 * frame copied and no reader on the WAL, and there is always a commit
 * since the last copy.  So once a commit leaves the WAL at its limit, the
 * thread restarts it (kiln_store_wal_restart): the file stays at the
 * limit instead of growing by the whole load (12 KB a workflow), and the
 * writes go to pages the OS caches instead of new ones.  Should the thread
 * fall behind (starved of the CPU or of the writer lock), the commit that
 * takes the WAL to twice its limit makes the next writer restart it
 * itself: the WAL's size is bounded by the limit, not by the scheduler.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <time.h>

#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/thread_name.h"
#include "store_conn.h"

/* How long a restart waits for readers of the WAL while writes are held
 * back, and how long after one that did not happen the next may try. */
#define RESTART_BUSY_MS 20
#define RESTART_RETRY_MS 100
#define OVERDUE_RETRY_MS 10

static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int running, stopping, interval;
/* The WAL's limit (0: none) in bytes and in frames, at which a commit
 * asks for a restart, and whether one asked (atomic: set by the hook,
 * under the writer lock). */
static int64_t limit_bytes;
static int limit_frames;
static int restart_wanted;
/* Set by a commit at twice the limit: the next writer restarts the WAL
 * (atomic), not before retry_at_ms (kiln_mono_ms) after one that missed. */
static int restart_overdue;
static int64_t retry_at_ms;
/* Held by whoever checkpoints; copying is set on its thread, where a
 * write that the restart's group commit sets off must not wait for it. */
static pthread_mutex_t copy_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int copying;

void kiln_store_set_wal_limit(int64_t bytes)
{
	/* A frame is a 24-byte header and a page (4 KiB: SQLite's default,
	 * never changed here). */
	int64_t frames = bytes / (4096 + 24);

	limit_bytes = bytes > 0 ? bytes : 0;
	limit_frames = bytes <= 0	 ? 0
		       : frames < 1	 ? 1
		       : frames > INT_MAX ? INT_MAX
					 : (int)frames;
	/* What the last limit asked for is not this one's business. */
	__atomic_store_n(&restart_wanted, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&restart_overdue, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&retry_at_ms, 0, __ATOMIC_RELAXED);
}

int64_t kiln_store_wal_limit(void)
{
	return limit_bytes;
}

int kiln_store_on_wal_commit(void *ctx, sqlite3 *db, const char *name,
			     int frames)
{
	(void)ctx;
	(void)db;
	(void)name;
	if (limit_frames > 0 && frames / 2 >= limit_frames)
		__atomic_store_n(&restart_overdue, 1, __ATOMIC_RELEASE);
	if (limit_frames > 0 && frames >= limit_frames &&
	    !__atomic_exchange_n(&restart_wanted, 1, __ATOMIC_ACQ_REL)) {
		pthread_mutex_lock(&lock);
		pthread_cond_signal(&wake);
		pthread_mutex_unlock(&lock);
	}
	return SQLITE_OK;
}

/* The checkpointer's work and an overdue writer's, one at a time (SQLite
 * fails a second checkpoint at once instead of letting it wait): most of
 * the copy without holding writes back, then, if restart, the restart.
 * -1 if the restart was missed (a reader stayed). */
static int copy_and_restart(struct kiln_store *st, int restart)
{
	int rc = 0;

	copying = 1;
	kiln_store_checkpoint(st);
	if (restart) {
		rc = kiln_store_wal_restart(RESTART_BUSY_MS);
		/* The next write starts the WAL over. */
		if (rc == 0)
			__atomic_store_n(&restart_overdue, 0, __ATOMIC_RELEASE);
	}
	copying = 0;
	return rc;
}

void kiln_store_restart_if_overdue(struct kiln_store *st)
{
	if (!__atomic_load_n(&restart_overdue, __ATOMIC_RELAXED) || copying ||
	    st->holds_writer || !sqlite3_get_autocommit(st->own.db) ||
	    kiln_mono_ms() < __atomic_load_n(&retry_at_ms, __ATOMIC_RELAXED))
		return;
	/* Waits for the checkpointer's copy if one runs, and then has
	 * nothing to do if that restarted the WAL. */
	pthread_mutex_lock(&copy_lock);
	if (__atomic_exchange_n(&restart_overdue, 0, __ATOMIC_ACQ_REL) &&
	    copy_and_restart(st, 1) != 0)
		__atomic_store_n(&retry_at_ms, kiln_mono_ms() + OVERDUE_RETRY_MS,
				 __ATOMIC_RELAXED);
	pthread_mutex_unlock(&copy_lock);
}

static void at(struct timespec *t, int ms)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

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
		int missed;

		at(&until, interval);
		while (!stopping &&
		       !__atomic_load_n(&restart_wanted, __ATOMIC_ACQUIRE) &&
		       pthread_cond_timedwait(&wake, &lock, &until) != ETIMEDOUT)
			;
		if (stopping || st == NULL)
			break;
		pthread_mutex_unlock(&lock);
		pthread_mutex_lock(&copy_lock);
		missed = copy_and_restart(
				 st, __atomic_load_n(&restart_wanted,
						     __ATOMIC_ACQUIRE)) != 0;
		pthread_mutex_unlock(&copy_lock);
		pthread_mutex_lock(&lock);
		if (missed) {
			/* A reader stayed: writes flow for a while before the
			 * next try. */
			at(&until, RESTART_RETRY_MS);
			while (!stopping && pthread_cond_timedwait(
						    &wake, &lock, &until) !=
						    ETIMEDOUT)
				;
		}
		/* The next commit at the limit asks again. */
		__atomic_store_n(&restart_wanted, 0, __ATOMIC_RELEASE);
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
	kiln_thread_name(thread, "kiln-checkpoint");
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
