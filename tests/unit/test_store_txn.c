/*
 * test_store_txn.c - group commit of write transactions (store_txn.c):
 * a writer alone commits at once; a writer that finishes while another
 * waits leaves the COMMIT to it and returns only once it is done; a part
 * that fails is undone without undoing the group, and returns after the
 * group's commit if it could have read the group's work; the hooks run
 * after the group's commit; many threads writing at once lose nothing.
 * Writes that do not wait (kiln_store_commit_then) run their fn once
 * their group commits: at once when alone, at kiln_store_flush, at the
 * next waiting writer's commit, or when the pool runs dry.  Under a
 * steady load, with a reader always on the WAL, the checkpointer keeps the
 * WAL at its limit by restarting it, and a writer restarts a WAL at twice
 * its limit itself, however far behind the checkpointer is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kiln/pool.h"
#include "kiln/store.h"

#define SQL_INSERT "INSERT INTO scratch (k, v) VALUES (?1, ?2)"
#define THREADS 8
#define PER_THREAD 150

static char data_dir[64];

static int setup(void **state)
{
	struct kiln_err err = {0};
	struct kiln_store *st;

	(void)state;
	/* A group stays open for more parts however slowly the threads are
	 * scheduled: 10 ms by default, and a loaded machine can take longer
	 * between two steps of a test. */
	kiln_store_set_group_max_ms(60 * 1000);
	snprintf(data_dir, sizeof(data_dir), "/tmp/kiln-txn-XXXXXX");
	assert_non_null(mkdtemp(data_dir));
	assert_int_equal(kiln_store_init(data_dir, &err), KILN_OK);
	st = kiln_store_thread(&err);
	assert_non_null(st);
	assert_int_equal(sqlite3_exec(kiln_store_db(st),
				      "CREATE TABLE scratch (k INTEGER"
				      " PRIMARY KEY, v TEXT NOT NULL)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	kiln_store_shutdown();
	kiln_store_set_group_max_ms(0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", data_dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* One INSERT inside the calling thread's current transaction; SQLite's
 * result code. */
static int insert_row(struct kiln_store *st, int64_t k, const char *v)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_INSERT, NULL);
	int src;

	assert_non_null(s);
	sqlite3_bind_int64(s, 1, k);
	sqlite3_bind_text(s, 2, v, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src;
}

/* Read on the calling thread's own connection (committed rows only). */
static int64_t count_where(const char *where)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	char sql[256];
	sqlite3_stmt *s;
	int64_t n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM scratch WHERE %s",
		 where);
	assert_int_equal(sqlite3_prepare_v2(kiln_store_db(st), sql, -1, &s,
					    NULL),
			 SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static void test_alone_commits_at_once(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_write_stats before, after;
	struct kiln_err err = {0};

	(void)state;
	kiln_store_write_stats(&before);
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, 1, "one"), SQLITE_DONE);
	assert_int_equal(kiln_store_commit(st, &err), KILN_OK);
	kiln_store_write_stats(&after);
	assert_int_equal(after.commits - before.commits, 1);
	assert_int_equal(after.parts - before.parts, 1);
	assert_int_equal(after.deferred - before.deferred, 0);
	assert_int_equal(count_where("k = 1 AND v = 'one'"), 1);

	/* A rollback alone leaves nothing behind and the store usable. */
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, 2, "two"), SQLITE_DONE);
	kiln_store_rollback(st);
	assert_int_equal(count_where("k = 2"), 0);
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, 2, "two"), SQLITE_DONE);
	assert_int_equal(kiln_store_commit(st, &err), KILN_OK);
	assert_int_equal(count_where("k = 2"), 1);
}

/* ---- a deferred commit, and a failed part in the same group --------- */

static pthread_mutex_t step_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t step_cond = PTHREAD_COND_INITIALIZER;
static int a_inserted, a_may_commit, a_returned, b_failed_insert;
static enum kiln_rc a_rc, b_rc;
static int64_t seen_by_hook = -1;
static char hook_wf[64];

static void set_flag(int *flag)
{
	pthread_mutex_lock(&step_lock);
	*flag = 1;
	pthread_cond_broadcast(&step_cond);
	pthread_mutex_unlock(&step_lock);
}

static void wait_flag(const int *flag)
{
	pthread_mutex_lock(&step_lock);
	while (!*flag)
		pthread_cond_wait(&step_cond, &step_lock);
	pthread_mutex_unlock(&step_lock);
}

static void on_ended(void *ctx, const char *wf_id)
{
	(void)ctx;
	/* Runs on A's thread once its commit returned: A's row is there
	 * for a reader on another connection. */
	snprintf(hook_wf, sizeof(hook_wf), "%s", wf_id);
	seen_by_hook = count_where("k = 100 AND v = 'from A'");
}

static void *writer_a(void *arg)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};

	(void)arg;
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, 100, "from A"), SQLITE_DONE);
	kiln_store_mark_workflow_ended(st, "wf-of-a");
	set_flag(&a_inserted);
	wait_flag(&a_may_commit);
	a_rc = kiln_store_commit(st, &err);
	set_flag(&a_returned);
	kiln_store_thread_release();
	return NULL;
}

static void *writer_b(void *arg)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};

	(void)arg;
	b_rc = kiln_store_begin(st, &err);
	if (b_rc == KILN_OK) {
		/* A's uncommitted row is visible to the group: the same key
		 * is a constraint error, and only B's part is undone. */
		assert_int_equal(insert_row(st, 101, "from B"), SQLITE_DONE);
		b_failed_insert = insert_row(st, 100, "B again") ==
				  SQLITE_CONSTRAINT;
		kiln_store_rollback(st);
	}
	kiln_store_thread_release();
	return NULL;
}

static void test_deferred_commit_and_failed_part(void **state)
{
	struct kiln_write_stats before, now;
	pthread_t a, b;
	int i;

	(void)state;
	kiln_store_on_workflow_end(on_ended, NULL);
	kiln_store_write_stats(&before);
	assert_int_equal(pthread_create(&a, NULL, writer_a, NULL), 0);
	wait_flag(&a_inserted);
	assert_int_equal(pthread_create(&b, NULL, writer_b, NULL), 0);
	/* B waits for the writer lock that A holds. */
	for (i = 0; i < 5000; i++) {
		kiln_store_write_stats(&now);
		if (now.waiting == 1)
			break;
		usleep(1000);
	}
	assert_int_equal(now.waiting, 1);
	set_flag(&a_may_commit);
	assert_int_equal(pthread_join(b, NULL), 0);
	assert_int_equal(pthread_join(a, NULL), 0);

	assert_int_equal(b_rc, KILN_OK);
	assert_true(b_failed_insert);
	assert_int_equal(a_rc, KILN_OK);
	assert_true(a_returned);
	kiln_store_write_stats(&now);
	/* A left the COMMIT to B: one commit for the two parts. */
	assert_int_equal(now.deferred - before.deferred, 1);
	assert_int_equal(now.commits - before.commits, 1);
	assert_int_equal(now.parts - before.parts, 2);
	/* A's row is committed, B's part (both rows) is not. */
	assert_int_equal(count_where("k = 100 AND v = 'from A'"), 1);
	assert_int_equal(count_where("k = 101"), 0);
	assert_string_equal(hook_wf, "wf-of-a");
	assert_int_equal(seen_by_hook, 1);
	kiln_store_on_workflow_end(NULL, NULL);
}

/* ---- an undone part that read another's work waits for its commit --- */

static int b2_in, c2_waits_flag, b2_counted;
static int b2_found = -1;
static int64_t b2_sees_after = -1;

static void *reader_b2(void *arg)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	sqlite3_stmt *s;

	(void)arg;
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	set_flag(&b2_in);
	wait_flag(&c2_waits_flag);
	/* A's row, released but not yet committed, as an Idempotency-Key
	 * lookup would find it; then B answers without writing. */
	assert_int_equal(sqlite3_prepare_v2(kiln_store_db(st),
					    "SELECT count(*) FROM scratch"
					    " WHERE k = 200",
					    -1, &s, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	b2_found = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	kiln_store_rollback(st);
	/* What B's client does next: read it on another connection. */
	b2_sees_after = count_where("k = 200");
	set_flag(&b2_counted);
	kiln_store_thread_release();
	return NULL;
}

static void *writer_c2(void *arg)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	struct timespec until;
	int i;

	(void)arg;
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, 202, "from C"), SQLITE_DONE);
	/* Give B every chance to read before the group's COMMIT (it must
	 * not, and then this waits the whole 300 ms). */
	pthread_mutex_lock(&step_lock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 300 * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	for (i = 0; !b2_counted && i < 100; i++)
		if (pthread_cond_timedwait(&step_cond, &step_lock, &until))
			break;
	pthread_mutex_unlock(&step_lock);
	assert_int_equal(kiln_store_commit(st, &err), KILN_OK);
	kiln_store_thread_release();
	return NULL;
}

static void wait_waiting(int n)
{
	struct kiln_write_stats now;
	int i;

	for (i = 0; i < 5000; i++) {
		kiln_store_write_stats(&now);
		if ((int)now.waiting == n)
			break;
		usleep(1000);
	}
	assert_int_equal(now.waiting, n);
}

static int a2_inserted, a2_may_commit;
static enum kiln_rc a2_rc = KILN_EIO;

static void *writer_a2(void *arg)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};

	(void)arg;
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, 200, "from A"), SQLITE_DONE);
	set_flag(&a2_inserted);
	wait_flag(&a2_may_commit);
	a2_rc = kiln_store_commit(st, &err);
	kiln_store_thread_release();
	return NULL;
}

static void test_undone_reader_waits_for_the_group(void **state)
{
	pthread_t a, b, c;

	(void)state;
	/* A writes; B waits for the lock, so A's commit is deferred. */
	assert_int_equal(pthread_create(&a, NULL, writer_a2, NULL), 0);
	wait_flag(&a2_inserted);
	assert_int_equal(pthread_create(&b, NULL, reader_b2, NULL), 0);
	wait_waiting(1);
	set_flag(&a2_may_commit);
	wait_flag(&b2_in);
	/* C waits for the lock while B holds it: B's undo is deferred. */
	assert_int_equal(pthread_create(&c, NULL, writer_c2, NULL), 0);
	wait_waiting(1);
	set_flag(&c2_waits_flag);
	assert_int_equal(pthread_join(b, NULL), 0);
	assert_int_equal(pthread_join(c, NULL), 0);
	assert_int_equal(pthread_join(a, NULL), 0);

	assert_int_equal(a2_rc, KILN_OK);
	assert_int_equal(b2_found, 1);
	/* B returned only after the group's COMMIT. */
	assert_int_equal(b2_sees_after, 1);
	assert_int_equal(count_where("k IN (200, 202)"), 2);
}

/* ---- many writers at once ------------------------------------------- */

static enum kiln_rc many_rc[THREADS][PER_THREAD];

static void *many_writer(void *arg)
{
	intptr_t t = (intptr_t)arg;
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		int64_t k = 10000 + t * 1000 + i;

		many_rc[t][i] = kiln_store_begin(st, &err);
		if (many_rc[t][i] != KILN_OK)
			continue;
		assert_int_equal(insert_row(st, k, "x"), SQLITE_DONE);
		if (i % 10 == 9) {
			/* Every tenth part fails and is rolled back. */
			kiln_store_rollback(st);
			many_rc[t][i] = KILN_ECONFLICT;
			continue;
		}
		many_rc[t][i] = kiln_store_commit(st, &err);
	}
	kiln_store_thread_release();
	return NULL;
}

static void test_many_writers_lose_nothing(void **state)
{
	struct kiln_write_stats before, after;
	pthread_t th[THREADS];
	char where[64];
	intptr_t t;
	int i;

	(void)state;
	kiln_store_write_stats(&before);
	for (t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, many_writer,
						(void *)t),
				 0);
	for (t = 0; t < THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	kiln_store_write_stats(&after);

	for (t = 0; t < THREADS; t++) {
		for (i = 0; i < PER_THREAD; i++) {
			snprintf(where, sizeof(where), "k = %ld",
				 (long)(10000 + t * 1000 + i));
			if (i % 10 == 9) {
				assert_int_equal(many_rc[t][i], KILN_ECONFLICT);
				assert_int_equal(count_where(where), 0);
			} else {
				assert_int_equal(many_rc[t][i], KILN_OK);
				assert_int_equal(count_where(where), 1);
			}
		}
	}
	assert_int_equal(count_where("k >= 10000"),
			 THREADS * PER_THREAD / 10 * 9);
	assert_int_equal(after.parts - before.parts, THREADS * PER_THREAD);
	assert_true(after.commits - before.commits <=
		    after.parts - before.parts);
	assert_int_equal(after.waiting, 0);
	printf("# %d parts in %lu commits (%lu deferred)\n",
	       THREADS * PER_THREAD,
	       (unsigned long)(after.commits - before.commits),
	       (unsigned long)(after.deferred - before.deferred));
}

/* ---- writes that do not wait for their commit ------------------------ */

#define MAX_CALLS 8
static int n_calls;
static long call_tag[MAX_CALLS];
static enum kiln_rc call_rc[MAX_CALLS];
static int64_t call_saw[MAX_CALLS]; /* rows k >= 200 committed then */
static int n_ended_told;
static char ended_told[64];

static void on_then_ended(void *ctx, const char *wf_id)
{
	(void)ctx;
	n_ended_told++;
	snprintf(ended_told, sizeof(ended_told), "%s", wf_id);
}

/* fn of the writes below: out is {"tag": n}, owned here. */
static void on_committed(void *ctx, enum kiln_rc rc, json_t *out)
{
	pthread_mutex_lock(&step_lock);
	assert_true(n_calls < MAX_CALLS);
	assert_ptr_equal(ctx, &n_calls);
	call_tag[n_calls] = (long)json_integer_value(json_object_get(out,
								      "tag"));
	call_rc[n_calls] = rc;
	/* (not at shutdown, when the store is closing) */
	call_saw[n_calls] = rc == KILN_OK ? count_where("k >= 200") : -1;
	n_calls++;
	pthread_cond_broadcast(&step_cond);
	pthread_mutex_unlock(&step_lock);
	json_decref(out);
}

/* One row k in a part ended by kiln_store_commit_then. */
static enum kiln_rc write_then(int64_t k, int more_coming, const char *ended)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_then then = {on_committed, &n_calls, more_coming};
	struct kiln_err err = {0};
	json_t *out = json_pack("{sI}", "tag", (json_int_t)k);
	enum kiln_rc rc;

	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, k, "then"), SQLITE_DONE);
	if (ended != NULL)
		kiln_store_mark_workflow_ended(st, ended);
	rc = kiln_store_commit_then(st, &then, out, &err);
	if (rc != KILN_OK)
		json_decref(out);
	return rc;
}

static void reset_calls(void)
{
	n_calls = 0;
	n_ended_told = 0;
	ended_told[0] = '\0';
	kiln_store_on_workflow_end(on_then_ended, NULL);
}

/* Two writes' fns ran, in the order written, told KILN_OK, the first
 * seeing saw rows k >= 200 committed. */
static void assert_two_told(long first, long second, int64_t saw)
{
	assert_int_equal(n_calls, 2);
	assert_int_equal(call_tag[0], first);
	assert_int_equal(call_tag[1], second);
	assert_int_equal(call_rc[0], KILN_OK);
	assert_int_equal(call_rc[1], KILN_OK);
	assert_int_equal(call_saw[0], saw);
}

static void wait_calls(int n)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&step_lock);
	while (n_calls < n &&
	       pthread_cond_timedwait(&step_cond, &step_lock, &until) == 0)
		;
	pthread_mutex_unlock(&step_lock);
}

static void test_then_alone_runs_at_once(void **state)
{
	struct kiln_write_stats before, after;

	(void)state;
	reset_calls();
	kiln_store_write_stats(&before);
	/* Nobody else writing, nothing more coming: committed before the
	 * call returns, and fn has run, after the hooks, seeing the row. */
	assert_int_equal(write_then(200, 0, "wf-200"), KILN_OK);
	assert_int_equal(n_calls, 1);
	assert_int_equal(call_tag[0], 200);
	assert_int_equal(call_rc[0], KILN_OK);
	assert_int_equal(call_saw[0], 1);
	assert_int_equal(n_ended_told, 1);
	assert_string_equal(ended_told, "wf-200");
	kiln_store_write_stats(&after);
	assert_int_equal(after.commits - before.commits, 1);

	/* A commit without a write is refused and fn never runs. */
	{
		struct kiln_then then = {on_committed, &n_calls, 0};
		struct kiln_err err = {0};

		assert_int_equal(kiln_store_commit_then(kiln_store_thread(NULL),
							&then, NULL, &err),
				 KILN_EIO);
		assert_int_equal(n_calls, 1);
	}
	kiln_store_on_workflow_end(NULL, NULL);
}

static void test_then_more_coming_waits_for_flush(void **state)
{
	struct kiln_write_stats before, mid, after;

	(void)state;
	reset_calls();
	kiln_store_write_stats(&before);
	assert_int_equal(write_then(300, 1, "wf-300"), KILN_OK);
	assert_int_equal(write_then(301, 1, NULL), KILN_OK);
	/* Both parts are in one open group: not committed, nobody told. */
	kiln_store_write_stats(&mid);
	assert_int_equal(mid.commits - before.commits, 0);
	assert_int_equal(mid.deferred - before.deferred, 2);
	assert_int_equal(n_calls, 0);
	assert_int_equal(n_ended_told, 0);
	assert_int_equal(count_where("k >= 300"), 0);

	kiln_store_flush();
	kiln_store_write_stats(&after);
	assert_int_equal(after.commits - mid.commits, 1);
	assert_int_equal(after.parts - before.parts, 2);
	/* In the order written, each seeing both rows committed. */
	assert_two_told(300, 301, 2);
	assert_int_equal(n_ended_told, 1);
	assert_string_equal(ended_told, "wf-300");

	/* Nothing left open: a second flush commits nothing. */
	kiln_store_flush();
	kiln_store_write_stats(&before);
	assert_int_equal(before.commits, after.commits);
	kiln_store_on_workflow_end(NULL, NULL);
}

static void test_waiting_writer_commits_carried_on_parts(void **state)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_write_stats before, after;
	struct kiln_err err = {0};

	(void)state;
	reset_calls();
	kiln_store_write_stats(&before);
	assert_int_equal(write_then(400, 1, NULL), KILN_OK);
	assert_int_equal(n_calls, 0);
	/* A writer that waits for its commit commits the open group, and
	 * the carried-on write's fn has run by the time it returns. */
	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, 401, "sync"), SQLITE_DONE);
	assert_int_equal(kiln_store_commit(st, &err), KILN_OK);
	kiln_store_write_stats(&after);
	assert_int_equal(after.commits - before.commits, 1);
	assert_int_equal(after.parts - before.parts, 2);
	assert_int_equal(n_calls, 1);
	assert_int_equal(call_tag[0], 400);
	assert_int_equal(call_saw[0], 2);
	kiln_store_on_workflow_end(NULL, NULL);
}

static void test_shutdown_commits_what_nobody_flushed(void **state)
{
	struct kiln_err err = {0};

	(void)state;
	reset_calls();
	assert_int_equal(write_then(600, 1, "wf-600"), KILN_OK);
	assert_int_equal(n_calls, 0);
	/* Every writer gone, the store closes: the row is kept, and fn is
	 * told that nothing may follow (the process is stopping). */
	kiln_store_on_workflow_end(NULL, NULL);
	kiln_store_shutdown();
	assert_int_equal(n_calls, 1);
	assert_int_equal(call_tag[0], 600);
	assert_int_equal(call_rc[0], KILN_EIO);
	assert_int_equal(n_ended_told, 0);
	assert_int_equal(kiln_store_init(data_dir, &err), KILN_OK);
	assert_int_equal(count_where("k = 600"), 1);
}

/* A pool job writing with more_coming, as the engine does with jobs
 * queued behind it. */
static struct kiln_pool *then_pool;

static void then_job(void *arg)
{
	/* Only such a thread may leave a group open (it flushes). */
	assert_true(kiln_pool_in_worker(then_pool));
	assert_int_equal(write_then((int64_t)(intptr_t)arg, 1, NULL),
			 KILN_OK);
}

static void test_pool_running_dry_commits(void **state)
{
	struct kiln_pool *pool = NULL;
	struct kiln_err err = {0};
	int i;

	(void)state;
	reset_calls();
	assert_int_equal(kiln_pool_start(2, &pool, &err), KILN_OK);
	then_pool = pool;
	assert_false(kiln_pool_in_worker(pool));
	for (i = 0; i < 3; i++)
		assert_int_equal(kiln_pool_submit(pool, then_job, NULL,
						  (void *)(intptr_t)(500 + i)),
				 0);
	/* Nothing else comes: the worker that finds the queue empty
	 * commits what the jobs left open. */
	wait_calls(3);
	assert_int_equal(n_calls, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(call_rc[i], KILN_OK);
	assert_int_equal(count_where("k >= 500 AND k < 503"), 3);
	kiln_pool_stop(pool);
	kiln_store_on_workflow_end(NULL, NULL);
}

/* ---- the commit pacer ------------------------------------------------ */

/* A write that waits for its commit, alone: committed at once, which
 * also tells the pacer that commits are coming now. */
static void write_sync(int64_t k)
{
	struct kiln_store *st = kiln_store_thread(NULL);
	struct kiln_err err = {0};

	assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
	assert_int_equal(insert_row(st, k, "sync"), SQLITE_DONE);
	assert_int_equal(kiln_store_commit(st, &err), KILN_OK);
}

static void test_pacer_groups_writes_under_load(void **state)
{
	struct kiln_write_stats before, mid, after;
	struct kiln_err err = {0};

	(void)state;
	reset_calls();
	/* A long delay, so that nothing below depends on the clock. */
	assert_int_equal(kiln_store_pacer_start(5 * 1000 * 1000, &err),
			 KILN_OK);
	write_sync(700);
	kiln_store_write_stats(&before);
	/* Right after a commit, writes alone that do not wait for theirs
	 * (nothing more_coming) stay in one open group... */
	assert_int_equal(write_then(701, 0, "wf-701"), KILN_OK);
	assert_int_equal(write_then(702, 0, NULL), KILN_OK);
	/* ...which a pool running dry leaves to the pacer. */
	kiln_store_flush();
	kiln_store_write_stats(&mid);
	assert_int_equal(mid.commits - before.commits, 0);
	assert_int_equal(mid.deferred - before.deferred, 2);
	assert_int_equal(n_calls, 0);
	assert_int_equal(count_where("k > 700"), 0);
	/* Stopping it commits the group: one COMMIT for both, each fn told
	 * KILN_OK, seeing both rows, after the hooks. */
	kiln_store_pacer_stop();
	wait_calls(2);
	kiln_store_write_stats(&after);
	assert_int_equal(after.commits - mid.commits, 1);
	assert_two_told(701, 702, 3); /* 700, 701 and 702 */
	assert_string_equal(ended_told, "wf-701");
	/* Stopped: a write alone commits at once again. */
	assert_int_equal(write_then(703, 0, NULL), KILN_OK);
	assert_int_equal(n_calls, 3);
	assert_int_equal(count_where("k > 700"), 3);
	kiln_store_on_workflow_end(NULL, NULL);
}

static void test_pacer_commits_when_the_delay_is_up(void **state)
{
	struct kiln_write_stats before, after;
	struct kiln_err err = {0};

	(void)state;
	reset_calls();
	/* 200 ms: the write below comes within it even on a loaded
	 * machine. */
	assert_int_equal(kiln_store_pacer_start(200 * 1000, &err), KILN_OK);
	write_sync(800);
	kiln_store_write_stats(&before);
	assert_int_equal(write_then(801, 0, NULL), KILN_OK);
	/* Nobody else writes or flushes: the pacer's thread commits it and
	 * runs its fn. */
	wait_calls(1);
	assert_int_equal(n_calls, 1);
	assert_int_equal(call_rc[0], KILN_OK);
	assert_int_equal(call_saw[0], 2); /* 800 and 801 */
	kiln_store_write_stats(&after);
	assert_int_equal(after.commits - before.commits, 1);
	assert_int_equal(after.deferred - before.deferred, 1);

	/* After a quiet spell longer than the delay, a write alone commits
	 * at once: no delay when there is no load. */
	usleep(300 * 1000);
	assert_int_equal(write_then(802, 0, NULL), KILN_OK);
	assert_int_equal(n_calls, 2);
	assert_int_equal(count_where("k > 800"), 2);
	/* The store's shutdown (teardown) stops the pacer. */
}

/* ---- the WAL's limit ------------------------------------------------- */

static int reading;

/* A steady reader: point reads, 100 µs apart, as kilnd's HTTP threads
 * and workers make them. */
static void *read_steadily(void *arg)
{
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);

	(void)arg;
	assert_non_null(st);
	while (__atomic_load_n(&reading, __ATOMIC_ACQUIRE)) {
		sqlite3_stmt *s = kiln_store_stmt(
			st, "SELECT length(v) FROM scratch WHERE k = 1", NULL);

		assert_int_equal(kiln_store_begin_read(st, &err), KILN_OK);
		assert_non_null(s);
		assert_int_not_equal(sqlite3_step(s), SQLITE_ERROR);
		sqlite3_reset(s);
		kiln_store_rollback(st);
		usleep(100);
	}
	kiln_store_thread_release();
	return NULL;
}

static off_t wal_size(void)
{
	char path[128];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/kiln.db-wal", data_dir);
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* n single-row commits of 2 KiB each (two pages a commit at least), with
 * a steady reader and the checkpointer every interval_ms on limit_bytes
 * (interval_ms 0: no checkpointer, the writer alone keeps the limit);
 * returns the WAL's largest size seen, and the restarts made. */
static off_t write_under_load(int64_t first, int n, int64_t limit_bytes,
			      int interval_ms, uint64_t *restarts)
{
	struct kiln_write_stats before, after;
	struct kiln_err err = {0};
	struct kiln_store *st;
	char value[2048];
	pthread_t reader;
	off_t largest = 0;

	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	kiln_store_set_wal_limit(limit_bytes);
	if (interval_ms > 0)
		assert_int_equal(
			kiln_store_checkpointer_start(interval_ms, &err),
			KILN_OK);
	else
		kiln_store_set_background_checkpoints(1);
	__atomic_store_n(&reading, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_create(&reader, NULL, read_steadily, NULL),
			 0);
	kiln_store_write_stats(&before);
	st = kiln_store_thread(&err);
	for (int i = 0; i < n; i++) {
		assert_int_equal(kiln_store_begin(st, &err), KILN_OK);
		assert_int_equal(insert_row(st, first + i, value), SQLITE_DONE);
		assert_int_equal(kiln_store_commit(st, &err), KILN_OK);
		if (wal_size() > largest)
			largest = wal_size();
	}
	__atomic_store_n(&reading, 0, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(reader, NULL), 0);
	kiln_store_checkpointer_stop();
	kiln_store_set_background_checkpoints(0);
	kiln_store_set_wal_limit(0);
	kiln_store_write_stats(&after);
	*restarts = after.wal_restarts - before.wal_restarts;
	return largest;
}

static void test_wal_stays_at_its_limit(void **state)
{
	const int64_t limit = 256 * 1024;
	uint64_t restarts = 0;
	off_t largest;

	(void)state;
	/* 1,500 commits write about 12 MB of WAL: 48 times the limit.  A
	 * long interval: only the limit sets the checkpointer to work. */
	largest = write_under_load(1, 1500, limit, 60 * 1000, &restarts);
	assert_true(restarts >= 5);
	/* Twice the limit at most, and one commit: this writer writes far
	 * faster than kilnd, and on a loaded machine the checkpointer falls
	 * behind it, but a WAL at twice its limit is restarted before the
	 * next write (the next bound would be a reader that stayed 20 ms). */
	assert_true(largest <= 3 * limit);
	assert_int_equal(count_where("k >= 1"), 1500);
}

static void test_writer_restarts_an_overdue_wal(void **state)
{
	const int64_t limit = 256 * 1024;
	uint64_t restarts = 0;
	off_t largest;

	(void)state;
	/* No checkpointer at all: the writer that finds the WAL at twice
	 * its limit restarts it itself, about 24 times for 48 limits'
	 * worth of commits. */
	largest = write_under_load(1, 1500, limit, 0, &restarts);
	assert_true(restarts >= 10);
	assert_true(largest <= 3 * limit);
	assert_int_equal(count_where("k >= 1"), 1500);
}

static void test_wal_grows_without_a_limit(void **state)
{
	uint64_t restarts = 0;
	off_t largest;

	(void)state;
	/* What the limit prevents: even checkpointed every 5 ms, a WAL that
	 * some commit always follows never starts over, and takes the whole
	 * load (the test above would fail). */
	largest = write_under_load(1, 1500, 0, 5, &restarts);
	assert_int_equal(restarts, 0);
	assert_true(largest > 16 * 256 * 1024);
	assert_int_equal(count_where("k >= 1"), 1500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_alone_commits_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_deferred_commit_and_failed_part, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_undone_reader_waits_for_the_group, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_many_writers_lose_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_then_alone_runs_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_then_more_coming_waits_for_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_waiting_writer_commits_carried_on_parts, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_pool_running_dry_commits,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_shutdown_commits_what_nobody_flushed, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_pacer_groups_writes_under_load, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_pacer_commits_when_the_delay_is_up, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_wal_stays_at_its_limit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_writer_restarts_an_overdue_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_wal_grows_without_a_limit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
