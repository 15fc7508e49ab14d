/*
 * test_store_vfs.c - the store's VFS (store_vfs.c), which gathers a
 * commit's WAL frames and writes them at once.  The system calls are
 * counted under SQLite's own unix VFS (its xSetSystemCall), on real files:
 * a commit of many pages is one write to the WAL where the default VFS
 * makes two per page; another connection reads every commit as soon as
 * it returns, across WAL restarts; a transaction too big for the page
 * cache (frames spilled, rewritten and read back before the commit) comes
 * out whole; a full disk fails the COMMIT and keeps the store as it was;
 * and a process killed in the middle of a transaction leaves exactly the
 * committed rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_vfs.h"

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

static pwrite_fn real_pwrite, real_pwrite64;
static int wal_writes;      /* pwrite calls on a -wal file */
static int fail_wal_writes; /* make them fail with ENOSPC */
static char dir[64], db_path[96];

static int is_wal(int fd)
{
	char link[64], path[512];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 4)
		return 0;
	path[n] = '\0';
	return strcmp(path + n - 4, "-wal") == 0;
}

static ssize_t counted(pwrite_fn real, int fd, const void *buf, size_t n,
		       off_t off)
{
	if (is_wal(fd)) {
		if (fail_wal_writes) {
			errno = ENOSPC;
			return -1;
		}
		wal_writes++;
	}
	return real(fd, buf, n, off);
}

static ssize_t counting_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return counted(real_pwrite, fd, buf, n, off);
}

static ssize_t counting_pwrite64(int fd, const void *buf, size_t n,
				 off_t off)
{
	return counted(real_pwrite64, fd, buf, n, off);
}

/* Whichever of pwrite and pwrite64 this SQLite writes with is counted. */
static void count_wal_writes(void)
{
	sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");

	assert_non_null(unix_vfs);
	real_pwrite = (pwrite_fn)unix_vfs->xGetSystemCall(unix_vfs, "pwrite");
	real_pwrite64 =
		(pwrite_fn)unix_vfs->xGetSystemCall(unix_vfs, "pwrite64");
	if (real_pwrite != NULL)
		unix_vfs->xSetSystemCall(unix_vfs, "pwrite",
					 (sqlite3_syscall_ptr)counting_pwrite);
	if (real_pwrite64 != NULL)
		unix_vfs->xSetSystemCall(
			unix_vfs, "pwrite64",
			(sqlite3_syscall_ptr)counting_pwrite64);
}

static sqlite3 *open_db(const char *vfs)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(db_path, &db,
					 SQLITE_OPEN_READWRITE |
						 SQLITE_OPEN_CREATE,
					 vfs),
			 SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "PRAGMA journal_mode=WAL;"
				      "PRAGMA synchronous=NORMAL;"
				      "PRAGMA wal_autocheckpoint=0;"
				      "CREATE TABLE IF NOT EXISTS t (k INTEGER"
				      " PRIMARY KEY, v TEXT NOT NULL);"
				      "CREATE INDEX IF NOT EXISTS t_v"
				      " ON t (v);",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
}

static int64_t one_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static void assert_intact(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1,
					    &s, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
}

/* A fresh connection, from the files alone, finds rows rows, intact. */
static void assert_reopens_with(int64_t rows)
{
	sqlite3 *db = open_db(KILN_STORE_VFS);

	assert_int_equal(one_int(db, "SELECT count(*) FROM t"), rows);
	assert_intact(db);
	sqlite3_close(db);
}

/* Inserts n rows from key first on, each with a 400-byte value that
 * starts with the key (so that rows can be checked by their sum). */
static void insert_rows(sqlite3 *db, int first, int n)
{
	char sql[200];

	snprintf(sql, sizeof(sql),
		 "WITH RECURSIVE r(k) AS (SELECT %d UNION ALL SELECT k + 1"
		 " FROM r WHERE k < %d) INSERT INTO t (k, v) SELECT k,"
		 " printf('%%020d', k) || hex(zeroblob(190)) FROM r",
		 first, first + n - 1);
	exec_ok(db, sql);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kiln-vfs-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(db_path, sizeof(db_path), "%s/v.db", dir);
	wal_writes = 0;
	fail_wal_writes = 0;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------- */

static void test_commit_is_one_write(void **state)
{
	sqlite3 *plain, *db;
	int plain_writes;
	char wal_path[128];
	struct stat st;

	(void)state;
	/* The counter counts: the default VFS writes each frame's header
	 * and page apart. */
	plain = open_db("unix");
	wal_writes = 0;
	exec_ok(plain, "BEGIN");
	insert_rows(plain, 1, 200);
	exec_ok(plain, "COMMIT");
	plain_writes = wal_writes;
	assert_true(plain_writes >= 2 * 20);
	sqlite3_close(plain);

	db = open_db(KILN_STORE_VFS);
	snprintf(wal_path, sizeof(wal_path), "%s-wal", db_path);
	wal_writes = 0;
	exec_ok(db, "BEGIN");
	insert_rows(db, 201, 200);
	assert_int_equal(wal_writes, 0); /* nothing before the COMMIT */
	exec_ok(db, "COMMIT");
	/* A fresh WAL (the last close removed the old): its 32-byte
	 * header, which SQLite syncs on its own, then all the frames in
	 * one run, written in pieces of at most 124 KiB. */
	assert_int_equal(stat(wal_path, &st), 0);
	assert_true(st.st_size > 40 * 4096);
	assert_int_equal(wal_writes, 1 + (st.st_size - 32 + 124 * 1024 - 1) /
						 (124 * 1024));
	assert_true(wal_writes * 10 < plain_writes);
	assert_int_equal(one_int(db, "SELECT count(*) FROM t"), 400);
	sqlite3_close(db);
}

static void test_other_connection_reads_each_commit(void **state)
{
	sqlite3 *w, *r;
	int i;

	(void)state;
	assert_int_equal(kiln_store_vfs_register(), SQLITE_OK);
	w = open_db(KILN_STORE_VFS);
	r = open_db(KILN_STORE_VFS);
	for (i = 0; i < 200; i++) {
		exec_ok(w, "BEGIN");
		insert_rows(w, 1 + 5 * i, 5);
		exec_ok(w, "COMMIT");
		/* Seen by the other connection as soon as COMMIT returns. */
		assert_int_equal(one_int(r, "SELECT count(*) FROM t"),
				 5 * (i + 1));
		assert_int_equal(one_int(r, "SELECT sum(CAST(substr(v, 1, 20)"
					    " AS INTEGER)) FROM t"),
				 (int64_t)(5 * (i + 1)) * (5 * (i + 1) + 1) /
					 2);
		/* The WAL starts over (its header rewritten) after this. */
		if (i % 25 == 24)
			exec_ok(r, "PRAGMA wal_checkpoint(TRUNCATE)");
	}
	assert_intact(r);
	sqlite3_close(w);
	sqlite3_close(r);
	assert_reopens_with(1000);
}

static void test_spilled_transaction(void **state)
{
	sqlite3 *w, *r;

	(void)state;
	w = open_db(KILN_STORE_VFS);
	r = open_db(KILN_STORE_VFS);
	insert_rows(w, 1, 10);
	/* Ten pages of cache: the transaction spills frames into the WAL,
	 * rewrites them as it changes those pages again, and reads them
	 * back, all before it commits. */
	exec_ok(w, "PRAGMA cache_size=10");
	wal_writes = 0;
	exec_ok(w, "BEGIN");
	insert_rows(w, 11, 3000);
	exec_ok(w, "UPDATE t SET v = printf('%020d', 2 * k)"
		   " || hex(zeroblob(150))"
		   " WHERE k % 3 = 0");
	assert_true(wal_writes > 0); /* it did spill */
	assert_int_equal(one_int(w, "SELECT count(*) FROM t"), 3010);
	assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 10);
	exec_ok(w, "COMMIT");
	assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 3010);
	/* sum of k, plus once more each k divisible by 3 */
	assert_int_equal(one_int(r, "SELECT sum(CAST(substr(v, 1, 20) AS"
				    " INTEGER)) FROM t"),
			 (int64_t)3010 * 3011 / 2 + 3 * (1003 * 1004 / 2));
	assert_intact(r);
	assert_intact(w);
	sqlite3_close(w);
	sqlite3_close(r);
}

static void test_full_disk_fails_the_commit(void **state)
{
	sqlite3 *w, *r;
	int rc;

	(void)state;
	w = open_db(KILN_STORE_VFS);
	r = open_db(KILN_STORE_VFS);
	insert_rows(w, 1, 50);
	fail_wal_writes = 1;
	exec_ok(w, "BEGIN");
	insert_rows(w, 51, 50);
	rc = sqlite3_exec(w, "COMMIT", NULL, NULL, NULL);
	fail_wal_writes = 0;
	assert_int_equal(rc & 0xff, SQLITE_FULL);
	if (!sqlite3_get_autocommit(w))
		exec_ok(w, "ROLLBACK");
	/* Nothing of it was published, and the store goes on. */
	assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 50);
	insert_rows(w, 51, 20);
	assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 70);
	assert_intact(r);
	sqlite3_close(w);
	sqlite3_close(r);
	assert_reopens_with(70);
}

static void test_kill_in_a_transaction(void **state)
{
	sqlite3 *db;
	pid_t pid;
	int status, i;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		db = open_db(KILN_STORE_VFS);
		for (i = 0; i < 10; i++)
			insert_rows(db, 1 + 10 * i, 10);
		/* A big transaction whose frames are partly in the WAL and
		 * partly gathered in memory, then SIGKILL. */
		sqlite3_exec(db, "PRAGMA cache_size=10; BEGIN", NULL, NULL,
			     NULL);
		insert_rows(db, 101, 2000);
		raise(SIGKILL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	db = open_db(KILN_STORE_VFS);
	assert_int_equal(one_int(db, "SELECT count(*) FROM t"), 100);
	assert_int_equal(one_int(db, "SELECT max(k) FROM t"), 100);
	assert_intact(db);
	insert_rows(db, 101, 5);
	assert_int_equal(one_int(db, "SELECT count(*) FROM t"), 105);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_is_one_write,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_other_connection_reads_each_commit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_spilled_transaction,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_full_disk_fails_the_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_in_a_transaction,
						setup, teardown),
	};

	count_wal_writes();
	assert_int_equal(kiln_store_vfs_register(), SQLITE_OK);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
