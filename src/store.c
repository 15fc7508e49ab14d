/*
 * store.c - SQLite connections, one per thread, and the transaction and
 * statement helpers the store_*.c files share.
 *
 * Design: kiln_store_init() opens the database once to apply migrations,
 * then every thread (HTTP, workers) opens its own connection on first use
 * through a pthread key, so no connection is ever shared between threads
 * and the key's destructor closes it when the thread exits.  WAL lets the
 * readers run beside the single writer; busy_timeout absorbs short waits
 * for the write lock; foreign keys are on.  Prepared statements are cached
 * per connection (a small array searched by SQL text) because the same few
 * statements run millions of times.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kiln/log.h"
#include "kiln/migrate.h"
#include "kiln/store.h"

#define STMT_CACHE_MAX 64
#define BUSY_TIMEOUT_MS 5000

struct cached_stmt {
	const char *sql; /* static string from the store_*.c files */
	sqlite3_stmt *stmt;
};

struct kiln_store {
	sqlite3 *db;
	struct cached_stmt stmts[STMT_CACHE_MAX];
	size_t n_stmts;
	int holds_writer; /* this connection holds writer_lock */
	int queued_delivery; /* this transaction queued a webhook delivery */
	/* Workflows this transaction ended (for waiting runs), and whether
	 * it changed what batches may start. */
	char ended[KILN_STORE_ENDED_MAX][KILN_UUID_LEN];
	size_t n_ended;
	int ended_overflow;
	int batches_changed;
};

/* One writer at a time inside this process.  SQLite's busy handler waits
 * for the write lock by sleeping (1, 2, 5, 10 ms...), so under load the
 * lock sat free while every writer slept; a mutex hands it over at once.
 * busy_timeout still covers other processes (the sqlite3 shell). */
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;

static char *db_path;
/* Who is told that a commit queued webhook deliveries (the dispatcher). */
static void (*volatile delivery_hook)(void *ctx);
static void *volatile delivery_hook_ctx;
/* Who is told that workflows ended (waiting runs) or batches changed (the
 * batch scheduler). */
static void (*volatile ended_hook)(void *ctx, const char *wf_id);
static void *volatile ended_hook_ctx;
static void (*volatile batch_hook)(void *ctx);
static void *volatile batch_hook_ctx;
/* Set while store_checkpoint.c checkpoints in the background: new
 * connections then leave the WAL to it instead of checkpointing inside
 * the commit that crosses the threshold (with the writer lock held). */
static volatile int background_checkpoints;
static pthread_key_t conn_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void store_close(struct kiln_store *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->n_stmts; i++)
		sqlite3_finalize(st->stmts[i].stmt);
	sqlite3_close(st->db);
	free(st);
}

static void conn_destructor(void *p)
{
	store_close(p);
}

static void make_key(void)
{
	pthread_key_create(&conn_key, conn_destructor);
}

enum kiln_rc kiln_store_fail(struct kiln_store *st, int src,
			     struct kiln_err *err)
{
	int base = src & 0xff;
	const char *msg = st && st->db ? sqlite3_errmsg(st->db)
				       : sqlite3_errstr(src);

	if (base == SQLITE_BUSY || base == SQLITE_LOCKED || base == SQLITE_FULL)
		return kiln_err_set(err, KILN_EBUSY, "", "store busy: %s", msg);
	return kiln_err_set(err, KILN_EIO, "", "store error: %s", msg);
}

static enum kiln_rc store_open(const char *path, struct kiln_store **out,
			       struct kiln_err *err)
{
	struct kiln_store *st;
	char *errmsg = NULL;
	int rc;

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		kiln_err_set(err, KILN_EIO, "", "cannot open %s: %s", path,
			     st->db ? sqlite3_errmsg(st->db)
				    : sqlite3_errstr(rc));
		store_close(st);
		return KILN_EIO;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	rc = sqlite3_exec(st->db,
			  "PRAGMA journal_mode=WAL;"
			  "PRAGMA synchronous=NORMAL;"
			  /* 1 MiB of page cache per connection (default 2):
			   * one connection per thread, and the OS caches the
			   * file anyway. */
			  "PRAGMA cache_size=-1024;"
			  "PRAGMA foreign_keys=ON;",
			  NULL, NULL, &errmsg);
	if (rc == SQLITE_OK && background_checkpoints)
		rc = sqlite3_exec(st->db, "PRAGMA wal_autocheckpoint=0;", NULL,
				  NULL, &errmsg);
	if (rc != SQLITE_OK) {
		kiln_err_set(err, KILN_EIO, "", "cannot configure %s: %s", path,
			     errmsg ? errmsg : sqlite3_errstr(rc));
		sqlite3_free(errmsg);
		store_close(st);
		return KILN_EIO;
	}
	*out = st;
	return KILN_OK;
}

enum kiln_rc kiln_store_init(const char *data_dir, struct kiln_err *err)
{
	struct kiln_store *st = NULL;
	size_t len = strlen(data_dir) + sizeof("/kiln.db");
	enum kiln_rc rc;

	pthread_once(&key_once, make_key);
	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
		return kiln_err_set(err, KILN_EIO, "data_dir",
				    "cannot create %s: %s", data_dir,
				    strerror(errno));
	free(db_path);
	db_path = malloc(len);
	if (db_path == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	snprintf(db_path, len, "%s/kiln.db", data_dir);
	rc = store_open(db_path, &st, err);
	if (rc != KILN_OK)
		return rc;
	rc = kiln_migrate(st->db, err);
	if (rc != KILN_OK) {
		store_close(st);
		return rc;
	}
	pthread_setspecific(conn_key, st);
	return KILN_OK;
}

void kiln_store_shutdown(void)
{
	kiln_store_thread_release();
	free(db_path);
	db_path = NULL;
}

struct kiln_store *kiln_store_thread(struct kiln_err *err)
{
	struct kiln_store *st;

	pthread_once(&key_once, make_key);
	st = pthread_getspecific(conn_key);
	if (st != NULL)
		return st;
	if (db_path == NULL) {
		kiln_err_set(err, KILN_EIO, "", "store not initialised");
		return NULL;
	}
	if (store_open(db_path, &st, err) != KILN_OK)
		return NULL;
	pthread_setspecific(conn_key, st);
	return st;
}

void kiln_store_thread_release(void)
{
	struct kiln_store *st;

	pthread_once(&key_once, make_key);
	st = pthread_getspecific(conn_key);
	pthread_setspecific(conn_key, NULL);
	store_close(st);
}

void kiln_store_set_background_checkpoints(int on)
{
	background_checkpoints = on;
}

int kiln_store_checkpoint(struct kiln_store *st)
{
	int log_frames = 0, done = 0;

	if (sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
				      &log_frames, &done) != SQLITE_OK)
		return -1;
	return done;
}

int kiln_store_ping(struct kiln_store *st)
{
	sqlite3_stmt *s = kiln_store_stmt(st, "SELECT 1", NULL);

	return s != NULL && sqlite3_step(s) == SQLITE_ROW;
}

sqlite3 *kiln_store_db(struct kiln_store *st)
{
	return st->db;
}

sqlite3_stmt *kiln_store_stmt(struct kiln_store *st, const char *sql,
			      struct kiln_err *err)
{
	sqlite3_stmt *stmt = NULL;
	size_t i;
	int rc;

	for (i = 0; i < st->n_stmts; i++) {
		if (st->stmts[i].sql == sql ||
		    strcmp(st->stmts[i].sql, sql) == 0) {
			stmt = st->stmts[i].stmt;
			sqlite3_reset(stmt);
			sqlite3_clear_bindings(stmt);
			return stmt;
		}
	}
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&stmt, NULL);
	if (rc != SQLITE_OK) {
		kiln_store_fail(st, rc, err);
		return NULL;
	}
	if (st->n_stmts < STMT_CACHE_MAX) {
		st->stmts[st->n_stmts].sql = sql;
		st->stmts[st->n_stmts].stmt = stmt;
		st->n_stmts++;
		return stmt;
	}
	/* Cache full: a programming error (too many distinct statements). */
	kiln_log(KILN_LOG_ERROR, "statement cache full; raise STMT_CACHE_MAX");
	sqlite3_finalize(stmt);
	kiln_err_set(err, KILN_EIO, "", "statement cache full");
	return NULL;
}

static enum kiln_rc exec_simple(struct kiln_store *st, const char *sql,
				struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int rc;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return kiln_store_fail(st, rc, err);
	return KILN_OK;
}

static void release_writer(struct kiln_store *st)
{
	if (st->holds_writer) {
		st->holds_writer = 0;
		pthread_mutex_unlock(&writer_lock);
	}
}

enum kiln_rc kiln_store_begin(struct kiln_store *st, struct kiln_err *err)
{
	enum kiln_rc rc;

	pthread_mutex_lock(&writer_lock);
	st->holds_writer = 1;
	rc = exec_simple(st, "BEGIN IMMEDIATE", err);
	if (rc != KILN_OK)
		release_writer(st);
	return rc;
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
	kiln_store_rollback(st);
	return err ? err->code : KILN_EIO;
}

enum kiln_rc kiln_store_commit(struct kiln_store *st, struct kiln_err *err)
{
	enum kiln_rc rc = exec_simple(st, "COMMIT", err);
	int queued = st->queued_delivery;
	int batches = st->batches_changed;
	size_t i;

	if (rc != KILN_OK)
		kiln_store_rollback(st);
	st->queued_delivery = 0;
	st->batches_changed = 0;
	release_writer(st);
	/* Told only once the rows are committed, so they find them. */
	if (rc == KILN_OK && queued && delivery_hook != NULL)
		delivery_hook(delivery_hook_ctx);
	if (rc == KILN_OK && ended_hook != NULL) {
		for (i = 0; i < st->n_ended; i++)
			ended_hook(ended_hook_ctx, st->ended[i]);
		if (st->ended_overflow)
			ended_hook(ended_hook_ctx, NULL);
	}
	if (rc == KILN_OK && batches && batch_hook != NULL)
		batch_hook(batch_hook_ctx);
	st->n_ended = 0;
	st->ended_overflow = 0;
	return rc;
}

void kiln_store_rollback(struct kiln_store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->queued_delivery = 0;
	st->batches_changed = 0;
	st->n_ended = 0;
	st->ended_overflow = 0;
	release_writer(st);
}

enum kiln_rc kiln_store_begin_read(struct kiln_store *st, struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, "BEGIN", err);
	int rc;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, rc, err);
}

enum kiln_rc kiln_store_page(struct kiln_store *st,
			     const struct kiln_page_query *q, json_t **out,
			     struct kiln_err *err)
{
	json_t *items = json_array();
	int64_t total = 0;
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	rc = kiln_store_begin_read(st, err);
	if (rc != KILN_OK)
		goto out;
	s = kiln_store_stmt(st, q->count_sql, err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto out;
	}
	q->bind(s, q->ctx);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		total = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (src != SQLITE_ROW) {
		rc = kiln_store_fail(st, src, err);
		goto out;
	}
	s = kiln_store_stmt(st, q->list_sql, err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto out;
	}
	q->bind(s, q->ctx);
	sqlite3_bind_int64(s, q->limit_param, q->limit);
	sqlite3_bind_int64(s, q->limit_param + 1, q->offset);
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(items, q->render(s));
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
		goto out;
	}
	*out = json_pack("{s:O, s:{s:I, s:I, s:I, s:b}}", q->key, items,
			 "pagination", "limit", (json_int_t)q->limit, "offset",
			 (json_int_t)q->offset, "total", (json_int_t)total,
			 "has_more",
			 q->offset + (int64_t)json_array_size(items) < total);
out:
	kiln_store_rollback(st);
	json_decref(items);
	return rc;
}

void kiln_store_on_delivery(void (*fn)(void *ctx), void *ctx)
{
	delivery_hook_ctx = ctx;
	delivery_hook = fn;
}

void kiln_store_mark_delivery_queued(struct kiln_store *st)
{
	st->queued_delivery = 1;
}

/* A one-row, one-column integer query bound with batch id ?1 and an
 * optional second integer ?2. */
enum kiln_rc kiln_store_int(struct kiln_store *st, const char *sql,
			    const char *id, int64_t arg, int64_t *out, int *found,
			    struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	if (id != NULL)
		sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	if (sqlite3_bind_parameter_count(s) >= 2)
		sqlite3_bind_int64(s, 2, arg);
	src = sqlite3_step(s);
	*found = src == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL;
	if (*found)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return src == SQLITE_ROW || src == SQLITE_DONE
		       ? KILN_OK
		       : kiln_store_fail(st, src, err);
}

void kiln_store_on_workflow_end(void (*fn)(void *ctx, const char *wf_id),
				void *ctx)
{
	ended_hook_ctx = ctx;
	ended_hook = fn;
}

void kiln_store_on_batch_change(void (*fn)(void *ctx), void *ctx)
{
	batch_hook_ctx = ctx;
	batch_hook = fn;
}

void kiln_store_mark_workflow_ended(struct kiln_store *st, const char *wf_id)
{
	if (st->n_ended < KILN_STORE_ENDED_MAX)
		kiln_strlcpy(st->ended[st->n_ended++], wf_id, KILN_UUID_LEN);
	else
		st->ended_overflow = 1;
}

void kiln_store_mark_batches_changed(struct kiln_store *st)
{
	st->batches_changed = 1;
}
