/*
 * store_txn.c - write transactions, committed in groups.
 *
 * Every write runs on one shared writer connection, one thread at a time
 * (writer_lock), as a SAVEPOINT inside a transaction that several writers
 * share.  A writer that finishes while others wait for the lock leaves the
 * transaction open for them and sleeps; whoever finishes with nobody
 * waiting (or the GROUP_MAX-th, or after GROUP_MAX_MS) commits it and wakes
 * the group.  One commit, one set of WAL frames (the pages several writes
 * share are written once), then serves many writes, while a writer alone
 * commits at once as before.  kiln_store_commit() returns only after the
 * group's COMMIT, with its result, so nobody is told of a write before it
 * is durable; a part that fails is rolled back to its savepoint and the
 * others commit without it (after the group's COMMIT too, if it could have
 * read the others' work).
 *
 * The shared connection also keeps its page cache warm: with one writer
 * connection per thread, each write re-read the pages the others changed.
 *
 * Under load, the pacer (kiln_store_pacer_start, PostgreSQL's commit_delay
 * made adaptive) makes the groups bigger: while commits come more often
 * than every delay, a write that does not wait for its commit
 * (kiln_store_commit_then) leaves its group open even when alone, and the
 * pacer's thread commits the group once it is delay old.  One commit then
 * writes the pages that many writes share once.  A write after a quiet
 * spell still commits at once.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/thread_name.h"
#include "store_conn.h"

#define GROUP_MAX 64
#define GROUP_MAX_MS 10

/* How long a group may wait for more parts (kiln_store_set_group_max_ms). */
static int group_max_ms = GROUP_MAX_MS;

/* A write whose writer carried on: what to do once its group commits. */
struct after_commit {
	struct after_commit *next;
	struct kiln_then then;
	json_t *out;
	struct kiln_write_marks marks;
};

/* A writer waiting for its group's commit (on its own stack). */
struct part_wait {
	struct part_wait *next;
	int src;  /* SQLite's result of the group's COMMIT */
	int done; /* futex word: set once src is */
};

static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under writer_lock: the shared connection and the open group. */
static struct kiln_conn writer;
static int writer_open;
static int group_open;
static int group_parts;
static struct part_wait *group_waiters;
static struct after_commit *group_after, **group_after_end = &group_after;
/* Set while the open group holds a write nobody waits for, so that an
 * idle thread's kiln_store_flush takes the lock only when it must. */
static int group_unattended;
/* Threads blocked on writer_lock in kiln_store_begin (atomic). */
static int waiting_writers;
/* The pacer: its state is under writer_lock; pace_us (0: no pacing) is
 * also read without it, by kiln_store_flush. */
static int pace_us;
static int pacer_running, pacer_stopping, pacer_ready;
static pthread_t pacer_thread;
static pthread_cond_t pacer_wake; /* on CLOCK_MONOTONIC */
static pthread_cond_t pacer_started = PTHREAD_COND_INITIALIZER;
/* When the open group began and the last one was committed (monotonic
 * µs), for the caps and the pacer. */
static int64_t group_started_us, last_commit_us;
/* Counters for kiln_store_write_stats (atomic: read without the lock). */
static struct kiln_write_stats stats;

/* This thread's statements run on its own connection again (its part
 * of the writer's transaction is over; writer_lock is still held). */
static void leave_writer(struct kiln_store *st)
{
	st->cur = &st->own;
	st->holds_writer = 0;
}

static int writer_exec(struct kiln_store *st, const char *sql)
{
	sqlite3_stmt *s = kiln_store_stmt(st, sql, NULL);
	int src;

	if (s == NULL)
		return SQLITE_ERROR;
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? SQLITE_OK : src;
}

/*
 * Each sleeper waits on its own futex word, so the commit wakes exactly
 * the group's threads that are asleep, each once, and none of them then
 * contends for a shared lock to leave (a broadcast on one condition
 * variable woke them all onto its mutex, one after another).
 * done: PART_PENDING, PART_ASLEEP (its owner is in FUTEX_WAIT or about to
 * be), PART_DONE.
 */
enum { PART_PENDING, PART_ASLEEP, PART_DONE };

static void wait_done(struct part_wait *me)
{
	int seen = PART_PENDING;

	if (__atomic_compare_exchange_n(&me->done, &seen, PART_ASLEEP, 0,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		seen = PART_ASLEEP;
	while (seen != PART_DONE) {
		syscall(SYS_futex, &me->done, FUTEX_WAIT_PRIVATE, PART_ASLEEP,
			NULL, NULL, 0);
		seen = __atomic_load_n(&me->done, __ATOMIC_ACQUIRE);
	}
}

/* w may be gone as soon as done is set (its owner saw it without
 * sleeping); a wake on the address then is at worst a spurious wake-up,
 * which every futex waiter, wait_done included, checks for. */
static void wake_done(struct part_wait *w, int src)
{
	w->src = src;
	if (__atomic_exchange_n(&w->done, PART_DONE, __ATOMIC_ACQ_REL) ==
	    PART_ASLEEP)
		syscall(SYS_futex, &w->done, FUTEX_WAKE_PRIVATE, 1, NULL,
			NULL, 0);
}

/* Closes the group (under writer_lock); returns its sleepers, for
 * wake_group once the lock is released, and its writes whose writers
 * carried on (*after), for run_after. */
static struct part_wait *close_group(struct after_commit **after)
{
	struct part_wait *sleepers = group_waiters;

	*after = group_after;
	group_after = NULL;
	group_after_end = &group_after;
	__atomic_store_n(&group_unattended, 0, __ATOMIC_RELAXED);

	__atomic_add_fetch(&stats.commits, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&stats.parts, (uint64_t)group_parts,
			   __ATOMIC_RELAXED);
	group_open = 0;
	group_parts = 0;
	group_waiters = NULL;
	return sleepers;
}

/* Wakes a closed group's sleepers with the result of its COMMIT. */
static void wake_group(struct part_wait *w, int src)
{
	struct part_wait *next;

	for (; w != NULL; w = next) {
		next = w->next;
		wake_done(w, src);
	}
}

static enum kiln_rc group_fail(int src, struct kiln_err *err);

/* Tells each carried-on write of a closed group how its COMMIT went. */
static void run_after(struct after_commit *a, int src)
{
	struct after_commit *next;
	enum kiln_rc rc = KILN_OK;

	if (src != SQLITE_OK) {
		struct kiln_err err = {0};

		rc = group_fail(src, &err);
		kiln_log(KILN_LOG_ERROR, "%s", err.msg);
	}
	for (; a != NULL; a = next) {
		next = a->next;
		if (rc == KILN_OK)
			kiln_store_tell_marks(&a->marks);
		a->then.fn(a->then.ctx, rc, a->out);
		free(a);
	}
}

/* Commits the open group (or finds it lost to an error that rolled it
 * all back), releases writer_lock, then tells every part: sleepers are
 * woken, carried-on writes run their fn.  Returns the COMMIT's result. */
static int commit_group(struct kiln_store *st)
{
	struct part_wait *sleepers;
	struct after_commit *after;
	int src;

	if (sqlite3_get_autocommit(writer.db)) {
		src = SQLITE_ABORT;
	} else {
		src = writer_exec(st, "COMMIT");
		if (src != SQLITE_OK && !sqlite3_get_autocommit(writer.db))
			sqlite3_exec(writer.db, "ROLLBACK", NULL, NULL, NULL);
	}
	last_commit_us = kiln_mono_us();
	sleepers = close_group(&after);
	leave_writer(st);
	pthread_mutex_unlock(&writer_lock);
	wake_group(sleepers, src);
	run_after(after, src);
	return src;
}

/* Whether the part that just ended may leave the group open: someone
 * else will come and commit it, soon. */
static int may_defer(int more_coming)
{
	return (more_coming ||
		__atomic_load_n(&waiting_writers, __ATOMIC_SEQ_CST) > 0) &&
	       group_parts < GROUP_MAX &&
	       kiln_mono_us() - group_started_us <
		       (int64_t)__atomic_load_n(&group_max_ms,
						__ATOMIC_RELAXED) * 1000;
}

void kiln_store_set_group_max_ms(int ms)
{
	__atomic_store_n(&group_max_ms, ms > 0 ? ms : GROUP_MAX_MS,
			 __ATOMIC_RELAXED);
}

/* Whether a write alone may still wait for the pacer: commits are coming
 * more often than every pace_us, so the next write is due within it. */
static int may_pace(void)
{
	int delay = __atomic_load_n(&pace_us, __ATOMIC_RELAXED);
	int64_t now;

	if (delay <= 0 || group_parts >= GROUP_MAX)
		return 0;
	now = kiln_mono_us();
	return now - last_commit_us < delay && now - group_started_us < delay;
}

static enum kiln_rc group_fail(int src, struct kiln_err *err)
{
	int base = src & 0xff;

	if (base == SQLITE_BUSY || base == SQLITE_LOCKED || base == SQLITE_FULL)
		return kiln_err_set(err, KILN_EBUSY, "",
				    "store busy: commit failed: %s",
				    sqlite3_errstr(src));
	return kiln_err_set(err, KILN_EIO, "", "store error: commit failed: %s",
			    sqlite3_errstr(src));
}

/*
 * This thread's part has been released (mine == KILN_OK) or undone.
 * Leaves the group open for a waiting writer, or commits it; returns once
 * the group is committed (or lost), with writer_lock released.
 */
static enum kiln_rc end_part(struct kiln_store *st, enum kiln_rc mine,
			     struct kiln_err *err)
{
	struct part_wait me = {0};
	int src;

	group_parts++;
	/* After an error (I/O, out of memory) that rolled the whole
	 * transaction back, commit_group finds every part lost. */
	if (!sqlite3_get_autocommit(writer.db) && may_defer(0)) {
		__atomic_add_fetch(&stats.deferred, 1, __ATOMIC_RELAXED);
		leave_writer(st);
		if (mine != KILN_OK && group_parts == 1) {
			/* Undone, and it saw nobody's uncommitted work:
			 * nothing to wait for. */
			pthread_mutex_unlock(&writer_lock);
			return mine;
		}
		/* An undone part that read earlier parts (an Idempotency-Key
		 * found, a state that made it refuse) waits for them too: its
		 * caller may answer from what it saw, and a client told of a
		 * run must find it on any connection. */
		me.next = group_waiters;
		group_waiters = &me;
		pthread_mutex_unlock(&writer_lock);
		wait_done(&me);
		if (mine != KILN_OK)
			return mine;
		return me.src == SQLITE_OK ? KILN_OK : group_fail(me.src, err);
	}
	src = commit_group(st);
	if (mine != KILN_OK)
		return mine;
	return src == SQLITE_OK ? KILN_OK : group_fail(src, err);
}

/* Undoes this thread's part (its savepoint), keeping the group's. */
static void undo_part(struct kiln_store *st)
{
	if (sqlite3_get_autocommit(writer.db))
		return;
	if (writer_exec(st, "ROLLBACK TO part") == SQLITE_OK)
		writer_exec(st, "RELEASE part");
}

enum kiln_rc kiln_store_begin(struct kiln_store *st, struct kiln_err *err)
{
	enum kiln_rc rc;

	/* The checkpointer fell behind: this writer starts the WAL over
	 * first, so that it stays near its limit whatever the load. */
	kiln_store_restart_if_overdue(st);
	__atomic_add_fetch(&waiting_writers, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&writer_lock);
	__atomic_sub_fetch(&waiting_writers, 1, __ATOMIC_SEQ_CST);
	if (!writer_open) {
		if (kiln_store_path() == NULL) {
			pthread_mutex_unlock(&writer_lock);
			return kiln_err_set(err, KILN_EIO, "",
					    "store not initialised");
		}
		rc = kiln_conn_open(kiln_store_path(), &writer, err);
		if (rc != KILN_OK) {
			pthread_mutex_unlock(&writer_lock);
			return rc;
		}
		/* Its cache is never emptied by another's commit: the
		 * indexes' hot pages stay in it. */
		sqlite3_exec(writer.db, "PRAGMA cache_size=-256", NULL, NULL,
			     NULL);
		writer_open = 1;
	}
	st->cur = &writer;
	st->holds_writer = 1;
	if (!group_open) {
		int src = writer_exec(st, "BEGIN IMMEDIATE");

		if (src != SQLITE_OK) {
			rc = kiln_store_fail(st, src, err);
			leave_writer(st);
			pthread_mutex_unlock(&writer_lock);
			return rc;
		}
		group_open = 1;
		group_parts = 0;
		group_started_us = kiln_mono_us();
	}
	if (writer_exec(st, "SAVEPOINT part") != SQLITE_OK) {
		rc = kiln_store_fail(st, sqlite3_errcode(writer.db), err);
		return end_part(st, rc, err);
	}
	return KILN_OK;
}

enum kiln_rc kiln_store_begin_with(struct kiln_store *st, const char *sql,
				   sqlite3_stmt **s, struct kiln_err *err)
{
	enum kiln_rc rc = kiln_store_begin(st, err);

	if (rc != KILN_OK)
		return rc;
	*s = kiln_store_stmt(st, sql, err);
	if (*s != NULL)
		return KILN_OK;
	rc = err ? err->code : KILN_EIO;
	kiln_store_rollback(st);
	return rc;
}

enum kiln_rc kiln_store_commit(struct kiln_store *st, struct kiln_err *err)
{
	enum kiln_rc rc = KILN_OK;
	int src;

	if (!st->holds_writer)
		return kiln_err_set(err, KILN_EIO, "",
				    "store error: commit without a write");
	src = writer_exec(st, "RELEASE part");
	if (src != SQLITE_OK) {
		rc = kiln_store_fail(st, src, err);
		undo_part(st);
	}
	rc = end_part(st, rc, err);
	kiln_store_after_write(st, rc == KILN_OK);
	return rc;
}

enum kiln_rc kiln_store_commit_then(struct kiln_store *st,
				    const struct kiln_then *then, json_t *out,
				    struct kiln_err *err)
{
	struct after_commit *a;
	int src;

	if (!st->holds_writer)
		return kiln_err_set(err, KILN_EIO, "",
				    "store error: commit without a write");
	a = malloc(sizeof(*a));
	if (a == NULL) {
		kiln_store_rollback(st);
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	}
	src = writer_exec(st, "RELEASE part");
	if (src != SQLITE_OK) {
		enum kiln_rc rc = kiln_store_fail(st, src, err);

		free(a);
		undo_part(st);
		rc = end_part(st, rc, err);
		kiln_store_after_write(st, 0);
		return rc;
	}
	a->next = NULL;
	a->then = *then;
	a->out = out;
	kiln_store_take_marks(st, &a->marks);
	*group_after_end = a;
	group_after_end = &a->next;
	group_parts++;
	if (!sqlite3_get_autocommit(writer.db) &&
	    (may_defer(then->more_coming) || may_pace())) {
		__atomic_add_fetch(&stats.deferred, 1, __ATOMIC_RELAXED);
		/* The group's first such write: the pacer sets its clock. */
		if (__atomic_load_n(&pace_us, __ATOMIC_RELAXED) > 0 &&
		    !__atomic_load_n(&group_unattended, __ATOMIC_RELAXED))
			pthread_cond_signal(&pacer_wake);
		__atomic_store_n(&group_unattended, 1, __ATOMIC_RELAXED);
		leave_writer(st);
		pthread_mutex_unlock(&writer_lock);
		return KILN_OK;
	}
	(void)commit_group(st);
	return KILN_OK;
}

void kiln_store_flush(void)
{
	struct kiln_store *st;

	if (!__atomic_load_n(&group_unattended, __ATOMIC_RELAXED) ||
	    __atomic_load_n(&pace_us, __ATOMIC_RELAXED) > 0)
		return;
	st = kiln_store_thread(NULL);
	if (st == NULL || st->holds_writer)
		return;
	pthread_mutex_lock(&writer_lock);
	if (!group_open || group_after == NULL) {
		pthread_mutex_unlock(&writer_lock);
		return;
	}
	st->cur = &writer;
	st->holds_writer = 1;
	(void)commit_group(st);
}

void kiln_store_rollback(struct kiln_store *st)
{
	if (st->holds_writer) {
		undo_part(st);
		(void)end_part(st, KILN_EIO, NULL);
		kiln_store_after_write(st, 0);
	} else if (!sqlite3_get_autocommit(st->own.db)) {
		/* The end of a read transaction (kiln_store_begin_read), by a
		 * cached statement: sqlite3_exec would parse it each time. */
		sqlite3_stmt *s = kiln_store_stmt(st, "ROLLBACK", NULL);

		if (s == NULL) {
			sqlite3_exec(st->own.db, "ROLLBACK", NULL, NULL, NULL);
			return;
		}
		sqlite3_step(s);
		sqlite3_reset(s);
	}
}

void kiln_store_writer_close(void)
{
	struct part_wait *sleepers = NULL;
	struct after_commit *after = NULL, *next;
	struct kiln_write_stats w;
	int src = SQLITE_OK, dropped = 0;

	kiln_store_pacer_stop();
	pthread_mutex_lock(&writer_lock);
	if (writer_open && group_open) {
		/* Nobody flushed it (every writer is gone): what it wrote is
		 * kept, and found again from the store at the next start;
		 * what was to follow the commit is not done (fn is told
		 * KILN_EIO). */
		src = sqlite3_exec(writer.db, "COMMIT", NULL, NULL, NULL);
		sleepers = close_group(&after);
	}
	if (writer_open)
		kiln_conn_close(&writer);
	writer_open = 0;
	group_open = 0;
	pthread_mutex_unlock(&writer_lock);
	wake_group(sleepers, src);
	for (; after != NULL; after = next) {
		next = after->next;
		after->then.fn(after->then.ctx, KILN_EIO, after->out);
		free(after);
		dropped++;
	}
	if (dropped > 0)
		kiln_log(KILN_LOG_WARN,
			 "store: %d writes nobody flushed %s at close%s%s",
			 dropped,
			 src == SQLITE_OK ? "were committed" : "were lost",
			 src == SQLITE_OK ? "" : ": ",
			 src == SQLITE_OK ? "" : sqlite3_errstr(src));
	kiln_store_write_stats(&w);
	if (w.commits > 0)
		kiln_log(KILN_LOG_INFO,
			 "store: %llu writes committed in %llu groups; WAL"
			 " restarted %llu times (%llu missed)",
			 (unsigned long long)w.parts,
			 (unsigned long long)w.commits,
			 (unsigned long long)w.wal_restarts,
			 (unsigned long long)w.wal_restarts_missed);
}

int kiln_store_wal_restart(int busy_ms)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	int src, log_frames = 0, done = 0;

	if (st == NULL || st->holds_writer)
		return -1;
	pthread_mutex_lock(&writer_lock);
	/* The open group first: its writers are told of their commit as
	 * usual (commit_group lets go of the lock to tell them), on this
	 * thread as on the pacer's.  Once the engine has stopped no group
	 * holds such a continuation: its workers flush theirs as they end. */
	while (writer_open && group_open) {
		st->cur = &writer;
		st->holds_writer = 1;
		(void)commit_group(st);
		pthread_mutex_lock(&writer_lock);
	}
	if (!writer_open) {
		pthread_mutex_unlock(&writer_lock);
		return -1;
	}
	sqlite3_busy_timeout(writer.db, busy_ms);
	src = sqlite3_wal_checkpoint_v2(writer.db, NULL,
					SQLITE_CHECKPOINT_RESTART, &log_frames,
					&done);
	sqlite3_busy_timeout(writer.db, KILN_STORE_BUSY_TIMEOUT_MS);
	pthread_mutex_unlock(&writer_lock);
	__atomic_add_fetch(src == SQLITE_OK ? &stats.wal_restarts
					    : &stats.wal_restarts_missed,
			   1, __ATOMIC_RELAXED);
	return src == SQLITE_OK ? 0 : -1;
}

void kiln_store_write_stats(struct kiln_write_stats *out)
{
	out->commits = __atomic_load_n(&stats.commits, __ATOMIC_RELAXED);
	out->parts = __atomic_load_n(&stats.parts, __ATOMIC_RELAXED);
	out->deferred = __atomic_load_n(&stats.deferred, __ATOMIC_RELAXED);
	out->wal_restarts =
		__atomic_load_n(&stats.wal_restarts, __ATOMIC_RELAXED);
	out->wal_restarts_missed =
		__atomic_load_n(&stats.wal_restarts_missed, __ATOMIC_RELAXED);
	out->waiting = (uint64_t)__atomic_load_n(&waiting_writers,
						 __ATOMIC_SEQ_CST);
}

/* ---- the pacer ------------------------------------------------------- */

/* Commits each group left open, once it is pace_us old; at the stop, at
 * once.  Its writers' fns run on this thread. */
static void *pacer_main(void *arg)
{
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);
	int delay = *(const int *)arg;

	pthread_mutex_lock(&writer_lock);
	if (st == NULL) {
		kiln_log(KILN_LOG_ERROR, "commit pacer: %s", err.msg);
		pacer_ready = -1;
	} else {
		pacer_ready = 1;
		__atomic_store_n(&pace_us, delay, __ATOMIC_RELAXED);
	}
	pthread_cond_signal(&pacer_started);
	while (st != NULL) {
		int64_t due;

		if (!group_open || group_after == NULL) {
			if (pacer_stopping)
				break;
			pthread_cond_wait(&pacer_wake, &writer_lock);
			continue;
		}
		due = group_started_us + delay;
		if (!pacer_stopping && kiln_mono_us() < due) {
			struct timespec until = {
				(time_t)(due / 1000000),
				(long)(due % 1000000) * 1000};

			pthread_cond_timedwait(&pacer_wake, &writer_lock,
					       &until);
			continue;
		}
		st->cur = &writer;
		st->holds_writer = 1;
		(void)commit_group(st);
		pthread_mutex_lock(&writer_lock);
	}
	pthread_mutex_unlock(&writer_lock);
	kiln_store_thread_release();
	return NULL;
}

enum kiln_rc kiln_store_pacer_start(int delay_us, struct kiln_err *err)
{
	static int delay;
	pthread_condattr_t a;
	int ready;

	if (delay_us <= 0 || pacer_running)
		return KILN_OK;
	delay = delay_us;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&pacer_wake, &a);
	pthread_condattr_destroy(&a);
	pacer_stopping = 0;
	pacer_ready = 0;
	if (pthread_create(&pacer_thread, NULL, pacer_main, &delay) != 0) {
		pthread_cond_destroy(&pacer_wake);
		return kiln_err_set(err, KILN_EIO, "",
				    "cannot start the commit pacer thread");
	}
	kiln_thread_name(pacer_thread, "kiln-pacer");
	pthread_mutex_lock(&writer_lock);
	while (pacer_ready == 0)
		pthread_cond_wait(&pacer_started, &writer_lock);
	ready = pacer_ready;
	pthread_mutex_unlock(&writer_lock);
	if (ready < 0) {
		pthread_join(pacer_thread, NULL);
		pthread_cond_destroy(&pacer_wake);
		return kiln_err_set(err, KILN_EIO, "",
				    "the commit pacer cannot open the store");
	}
	pacer_running = 1;
	return KILN_OK;
}

void kiln_store_pacer_stop(void)
{
	if (!pacer_running)
		return;
	pthread_mutex_lock(&writer_lock);
	/* From now on writes commit as without it; the pacer commits what
	 * it was left before it ends. */
	__atomic_store_n(&pace_us, 0, __ATOMIC_RELAXED);
	pacer_stopping = 1;
	pthread_cond_signal(&pacer_wake);
	pthread_mutex_unlock(&writer_lock);
	pthread_join(pacer_thread, NULL);
	pthread_cond_destroy(&pacer_wake);
	pacer_running = 0;
}
