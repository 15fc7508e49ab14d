/*
 * store.c - SQLite connections, one per thread, and the statement helpers
 * the store_*.c files share.  Write transactions are store_txn.c's.
 *
 * Design: kiln_store_init() opens the database once to apply migrations,
 * then every thread (HTTP, workers) opens its own connection for reads on
 * first use through a pthread key, so a read never waits for another
 * thread, and the key's destructor closes it when the thread exits.
 * Writes all go through one shared writer connection (store_txn.c).  WAL
 * lets the readers run beside the writer; busy_timeout absorbs waits for
 * other processes; foreign keys are on.  Prepared statements are cached
 * per connection (a hash on the SQL text's address) because the same few
 * statements run millions of times.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "kiln/log.h"
#include "kiln/migrate.h"
#include "kiln/store.h"
#include "store_conn.h"
#include "store_vfs.h"

#define KILN_STMT_JOURNAL_SPILL (120 * 1024)

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

void kiln_conn_close(struct kiln_conn *c)
{
	size_t i;

	for (i = 0; i < KILN_STMT_SLOTS; i++)
		if (c->slots[i].stmt != NULL)
			sqlite3_finalize(c->slots[i].stmt);
	sqlite3_close(c->db);
	memset(c, 0, sizeof(*c));
}

static void store_close(struct kiln_store *st)
{
	if (st == NULL)
		return;
	kiln_conn_close(&st->own);
	free(st);
}

static void conn_destructor(void *p)
{
	store_close(p);
}

static void make_key(void)
{
	/* Both calls fail harmlessly if SQLite is already initialised.
	 * No up-front page cache block per connection (20 pages, 88 KB,
	 * by default): a thread that reads little never fills it, and
	 * there is one connection per thread. */
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	/* No allocation statistics: with them every sqlite3_malloc takes
	 * one process-wide mutex, which the writer and every reader then
	 * contend for (Debian's SQLite has no lookaside, so that is every
	 * small allocation).  Paired W1 runs: 1,646 -> 1,794 workflows/s. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	/* Statement journals stay in memory up to 120 KiB (64 KiB by
	 * default).  Each part of a group commit is a SAVEPOINT, whose
	 * journal keeps the pages it changes: a create's reached 64 KiB,
	 * and the journal became a temporary file, created, written page
	 * by page and unlinked with the writer lock held, once per group.
	 * Bigger ones (renewing thousands of leases) still go to a file:
	 * all in memory, W2's 10,000 calls in flight took 10 MB more.  At
	 * most 128 KiB - 1: the journal is kept in chunks of this size and
	 * moves them to the file one write each, and the unix VFS writes at
	 * most that much a call (a 256 KiB chunk failed with SQLITE_FULL). */
	sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, KILN_STMT_JOURNAL_SPILL);
	pthread_key_create(&conn_key, conn_destructor);
}

const char *kiln_store_path(void)
{
	return db_path;
}

enum kiln_rc kiln_store_fail(struct kiln_store *st, int src,
			     struct kiln_err *err)
{
	int base = src & 0xff;
	const char *msg = st && st->cur->db ? sqlite3_errmsg(st->cur->db)
				       : sqlite3_errstr(src);

	if (base == SQLITE_BUSY || base == SQLITE_LOCKED || base == SQLITE_FULL)
		return kiln_err_set(err, KILN_EBUSY, "", "store busy: %s", msg);
	return kiln_err_set(err, KILN_EIO, "", "store error: %s", msg);
}

enum kiln_rc kiln_conn_open(const char *path, struct kiln_conn *c,
			    struct kiln_err *err)
{
	char *errmsg = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = kiln_store_vfs_register();
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(path, &c->db,
				     SQLITE_OPEN_READWRITE |
					     SQLITE_OPEN_CREATE |
					     SQLITE_OPEN_NOMUTEX,
				     KILN_STORE_VFS);
	if (rc != SQLITE_OK) {
		kiln_err_set(err, KILN_EIO, "", "cannot open %s: %s", path,
			     c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		kiln_conn_close(c);
		return KILN_EIO;
	}
	sqlite3_busy_timeout(c->db, KILN_STORE_BUSY_TIMEOUT_MS);
	rc = sqlite3_exec(c->db,
			  "PRAGMA journal_mode=WAL;"
			  "PRAGMA synchronous=NORMAL;"
			  /* 128 KiB of page cache per reader (default 2 MiB):
			   * one connection per thread, each reader's cache is
			   * emptied whenever another connection commits, and
			   * the OS caches the file anyway.  The writer keeps
			   * more (store_txn.c). */
			  "PRAGMA cache_size=-128;"
			  "PRAGMA foreign_keys=ON;"
			  /* SQLite's own default, which Debian's build turns
			   * on: zeroing every freed cell costs each row
			   * rewrite a memset, and the file is in a 0700
			   * directory. */
			  "PRAGMA secure_delete=OFF;",
			  NULL, NULL, &errmsg);
	if (rc == SQLITE_OK && background_checkpoints) {
		rc = sqlite3_exec(c->db, "PRAGMA wal_autocheckpoint=0;", NULL,
				  NULL, &errmsg);
		/* After wal_autocheckpoint, which sets a hook of its own. */
		sqlite3_wal_hook(c->db, kiln_store_on_wal_commit, NULL);
		/* A WAL that outgrew its limit (a reader held the restart
		 * off) shrinks back to it when it starts over. */
		if (kiln_store_wal_limit() > 0) {
			char sql[64];

			snprintf(sql, sizeof(sql),
				 "PRAGMA journal_size_limit=%lld",
				 (long long)kiln_store_wal_limit());
			rc = sqlite3_exec(c->db, sql, NULL, NULL, &errmsg);
		}
	}
	if (rc != SQLITE_OK) {
		kiln_err_set(err, KILN_EIO, "", "cannot configure %s: %s", path,
			     errmsg ? errmsg : sqlite3_errstr(rc));
		sqlite3_free(errmsg);
		kiln_conn_close(c);
		return KILN_EIO;
	}
	return KILN_OK;
}

static enum kiln_rc store_open(const char *path, struct kiln_store **out,
			       struct kiln_err *err)
{
	struct kiln_store *st = calloc(1, sizeof(*st));
	enum kiln_rc rc;

	if (st == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	rc = kiln_conn_open(path, &st->own, err);
	if (rc != KILN_OK) {
		free(st);
		return rc;
	}
	st->cur = &st->own;
	*out = st;
	return KILN_OK;
}

enum kiln_rc kiln_store_init(const char *data_dir, struct kiln_err *err)
{
	struct kiln_store *st = NULL;
	size_t len = strlen(data_dir) + sizeof("/kiln.db");
	enum kiln_rc rc;

	pthread_once(&key_once, make_key);
	kiln_store_writer_close(); /* of an earlier kiln_store_init */
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
	rc = kiln_migrate(st->own.db, err);
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
	kiln_store_writer_close();
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

	if (sqlite3_wal_checkpoint_v2(st->own.db, NULL, SQLITE_CHECKPOINT_PASSIVE,
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
	return st->cur->db;
}

static size_t stmt_slot(const char *sql)
{
	uintptr_t h = (uintptr_t)sql;

	h ^= h >> 17;
	h *= (uintptr_t)0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 24) & (KILN_STMT_SLOTS - 1);
}

sqlite3_stmt *kiln_store_stmt(struct kiln_store *st, const char *sql,
			      struct kiln_err *err)
{
	struct kiln_conn *c = st->cur;
	sqlite3_stmt *stmt = NULL;
	size_t i = stmt_slot(sql);
	int rc;

	while (c->slots[i].sql != NULL) {
		if (c->slots[i].sql == sql) {
			stmt = c->slots[i].stmt;
			sqlite3_reset(stmt);
			sqlite3_clear_bindings(stmt);
			return stmt;
		}
		i = (i + 1) & (KILN_STMT_SLOTS - 1);
	}
	if (c->n_stmts >= KILN_STMT_SLOTS / 4 * 3) {
		/* A programming error: too many distinct statements. */
		kiln_log(KILN_LOG_ERROR,
			 "statement cache full; raise KILN_STMT_SLOTS");
		kiln_err_set(err, KILN_EIO, "", "statement cache full");
		return NULL;
	}
	rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&stmt, NULL);
	if (rc != SQLITE_OK) {
		kiln_store_fail(st, rc, err);
		return NULL;
	}
	c->slots[i].sql = sql;
	c->slots[i].stmt = stmt;
	c->n_stmts++;
	return stmt;
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
	st->marks.queued_delivery = 1;
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
	struct kiln_write_marks *m = &st->marks;

	if (m->n_ended < KILN_STORE_ENDED_MAX)
		kiln_strlcpy(m->ended[m->n_ended++], wf_id, KILN_UUID_LEN);
	else
		m->ended_overflow = 1;
}

void kiln_store_mark_batches_changed(struct kiln_store *st)
{
	st->marks.batches_changed = 1;
}

void kiln_store_tell_marks(const struct kiln_write_marks *m)
{
	size_t i;

	if (m->queued_delivery && delivery_hook != NULL)
		delivery_hook(delivery_hook_ctx);
	if (ended_hook != NULL) {
		for (i = 0; i < m->n_ended; i++)
			ended_hook(ended_hook_ctx, m->ended[i]);
		if (m->ended_overflow)
			ended_hook(ended_hook_ctx, NULL);
	}
	if (m->batches_changed && batch_hook != NULL)
		batch_hook(batch_hook_ctx);
}

void kiln_store_take_marks(struct kiln_store *st, struct kiln_write_marks *m)
{
	struct kiln_write_marks *mine = &st->marks;

	/* Only the ids in use are copied: this runs after every write. */
	m->queued_delivery = mine->queued_delivery;
	m->n_ended = mine->n_ended;
	m->ended_overflow = mine->ended_overflow;
	m->batches_changed = mine->batches_changed;
	memcpy(m->ended, mine->ended, mine->n_ended * sizeof(m->ended[0]));
	mine->queued_delivery = 0;
	mine->n_ended = 0;
	mine->ended_overflow = 0;
	mine->batches_changed = 0;
}

void kiln_store_after_write(struct kiln_store *st, int committed)
{
	struct kiln_write_marks m;

	/* Forgotten first: a hook may write the store on this thread. */
	kiln_store_take_marks(st, &m);
	/* Told only once the rows are committed, so they find them. */
	if (committed)
		kiln_store_tell_marks(&m);
}
