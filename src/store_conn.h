/*
 * store_conn.h - a SQLite connection with its statement cache, and the
 * per-thread store handle.  Private to the store (store.c opens and caches,
 * store_txn.c runs write transactions on the shared writer connection).
 */
#ifndef KILN_STORE_CONN_H
#define KILN_STORE_CONN_H

#include <sqlite3.h>

#include "kiln/store.h"

/* Open addressing keyed by the SQL text's address: every statement is a
 * static string, so the address names it.  A power of two; at most 3/4
 * used. */
#define KILN_STMT_SLOTS 256

struct kiln_cached_stmt {
	const char *sql; /* static string from the store_*.c files */
	sqlite3_stmt *stmt;
};

struct kiln_conn {
	sqlite3 *db;
	struct kiln_cached_stmt slots[KILN_STMT_SLOTS];
	size_t n_stmts;
};

/* What a write did that others hear of once it is committed. */
struct kiln_write_marks {
	int queued_delivery; /* queued a webhook delivery */
	/* Workflows it ended (for waiting runs), and whether it changed
	 * what batches may start. */
	char ended[KILN_STORE_ENDED_MAX][KILN_UUID_LEN];
	size_t n_ended;
	int ended_overflow;
	int batches_changed;
};

struct kiln_store {
	struct kiln_conn own; /* this thread's connection, for reads */
	/* Where statements run: own, or the writer connection while this
	 * thread is inside kiln_store_begin .. commit/rollback. */
	struct kiln_conn *cur;
	int holds_writer;
	struct kiln_write_marks marks; /* of the write under way */
};

/* How long a statement waits for a lock another connection holds. */
#define KILN_STORE_BUSY_TIMEOUT_MS 5000

/* Opens path configured as every connection is (WAL, foreign keys...). */
enum kiln_rc kiln_conn_open(const char *path, struct kiln_conn *c,
			    struct kiln_err *err);
void kiln_conn_close(struct kiln_conn *c);
/* kiln_store_set_wal_limit's bytes (0: none). */
int64_t kiln_store_wal_limit(void);
/* sqlite3_wal_hook of every connection opened while background
 * checkpoints are on (store_checkpoint.c). */
int kiln_store_on_wal_commit(void *ctx, sqlite3 *db, const char *name,
			     int frames);
/* Called by a writer before it takes the writer lock: restarts the WAL
 * if a commit left it at twice its limit (the checkpointer fell behind).
 * After a restart a reader held off, the next try waits 10 ms. */
void kiln_store_restart_if_overdue(struct kiln_store *st);
/* The database path of kiln_store_init (NULL before). */
const char *kiln_store_path(void);
/* After this thread's part of a write ended: tells the hooks what it did
 * when committed is true, and forgets it either way. */
void kiln_store_after_write(struct kiln_store *st, int committed);
/* Moves what this thread's write did out of its handle into m. */
void kiln_store_take_marks(struct kiln_store *st, struct kiln_write_marks *m);
/* Tells the hooks what a committed write did (marks taken from its
 * store handle when its part ended). */
void kiln_store_tell_marks(const struct kiln_write_marks *m);
/* Closes the shared writer connection (no write may be running). */
void kiln_store_writer_close(void);

#endif
