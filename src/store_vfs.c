/*
 * store_vfs.c - the VFS kilnd's connections use: the default one, except
 * that a WAL's appends are gathered in memory and written in one pwrite
 * at the end of each commit.
 *
 * Why: SQLite writes a commit's WAL frames one system call at a time, two
 * per page (the 24-byte frame header, then the page), all with the writer
 * lock held.  A W1 commit group is about 60 pages: 120 pwrites of which
 * one does.  perf put those pwrites at 8 % of kilnd's CPU.
 *
 * When the gathered bytes are written, so that nobody can read a frame
 * before it is in the file:
 *   - with the page that follows a commit frame's header (a header whose
 *     "database size" field is not 0): the last write of a commit, before
 *     SQLite publishes the new frames in the WAL index.  That write's
 *     result is the whole commit's, so a full disk fails the COMMIT as it
 *     did before, and the frames are never published;
 *   - before anything else reads, syncs, sizes, truncates or closes the
 *     WAL, and before a write that does not continue the run (SQLite
 *     rewriting a frame of the same transaction);
 *   - when the run reaches RUN_MAX;
 *   - and, should SQLite ever write a commit some other way, when the
 *     database file's xShmBarrier comes, which SQLite calls between
 *     writing the frames and publishing them.
 * A kill -9 loses only bytes of a commit that had not returned: recovery
 * drops a WAL's torn tail, as it would have without this.
 *
 * Only the writer connection's WAL ever holds bytes, and SQLite uses a
 * connection (and its files) on one thread at a time, so the files need
 * no lock of their own.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "kiln/log.h"
#include "store_vfs.h"

#define FRAME_HEADER_BYTES 24
#define RUN_MIN_CAP (64 * 1024)
/* A W1 commit is about 250 KiB; a bigger one goes out in runs of this
 * size, so the buffer (kept between commits) stays small in RSS. */
#define RUN_MAX (512 * 1024)
/* The default VFS writes at most 128 KiB - 1 bytes a call (os_unix.c
 * masks the length with 0x1ffff): a run goes out in pieces of this. */
#define WRITE_MAX (124 * 1024)

struct vfs_file {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, after this struct */
	/* A database file: its connection's WAL, while that is open. */
	struct vfs_file *wal;
	/* A WAL: its database file, and the run of appends not yet written
	 * (len bytes from offset off). */
	struct vfs_file *db;
	unsigned char *run;
	size_t len, cap;
	sqlite3_int64 off;
	/* Where the page of the last commit frame seen goes (-1: none). */
	sqlite3_int64 commit_page_at;
};

#define REAL_AT ((sizeof(struct vfs_file) + 15) & ~(size_t)15)

static sqlite3_vfs vfs;
static sqlite3_vfs *parent;

static sqlite3_file *real_of(sqlite3_file *f)
{
	return ((struct vfs_file *)f)->real;
}

/* ---- the gathered run -------------------------------------------------- */

static int run_write(struct vfs_file *w)
{
	size_t done = 0;
	int rc = SQLITE_OK;

	while (rc == SQLITE_OK && done < w->len) {
		size_t n = w->len - done;

		if (n > WRITE_MAX)
			n = WRITE_MAX;
		rc = w->real->pMethods->xWrite(w->real, w->run + done, (int)n,
					       w->off + (sqlite3_int64)done);
		done += n;
	}
	w->len = 0; /* on failure SQLite abandons those frames anyway */
	return rc;
}

/* Room for amt more bytes; 0 if the run cannot grow. */
static int run_reserve(struct vfs_file *w, size_t amt)
{
	size_t cap = w->cap ? w->cap : RUN_MIN_CAP;
	unsigned char *grown;

	if (w->len + amt <= w->cap)
		return 1;
	if (w->len + amt > RUN_MAX)
		return 0;
	while (cap < w->len + amt)
		cap *= 2;
	grown = realloc(w->run, cap);
	if (grown == NULL)
		return 0;
	w->run = grown;
	w->cap = cap;
	return 1;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- WAL files --------------------------------------------------------- */

static int wal_write(sqlite3_file *f, const void *data, int amt,
		     sqlite3_int64 off)
{
	struct vfs_file *w = (struct vfs_file *)f;
	int ends_commit = off == w->commit_page_at;
	int rc = SQLITE_OK;

	w->commit_page_at = -1;
	if (w->len > 0 && off != w->off + (sqlite3_int64)w->len)
		rc = run_write(w);
	if (rc == SQLITE_OK && !run_reserve(w, (size_t)amt)) {
		rc = run_write(w);
		if (rc == SQLITE_OK && !run_reserve(w, (size_t)amt))
			return w->real->pMethods->xWrite(w->real, data, amt,
							 off);
	}
	if (rc != SQLITE_OK)
		return rc;
	if (w->len == 0)
		w->off = off;
	memcpy(w->run + w->len, data, (size_t)amt);
	w->len += (size_t)amt;
	if (ends_commit)
		return run_write(w);
	if (amt == FRAME_HEADER_BYTES &&
	    be32((const unsigned char *)data + 4) != 0)
		w->commit_page_at = off + FRAME_HEADER_BYTES;
	return SQLITE_OK;
}

static int wal_read(sqlite3_file *f, void *out, int amt, sqlite3_int64 off)
{
	int rc = run_write((struct vfs_file *)f);

	return rc != SQLITE_OK ? rc
			       : real_of(f)->pMethods->xRead(real_of(f), out,
							     amt, off);
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = run_write((struct vfs_file *)f);

	return rc != SQLITE_OK
		       ? rc
		       : real_of(f)->pMethods->xTruncate(real_of(f), size);
}

static int wal_sync(sqlite3_file *f, int flags)
{
	int rc = run_write((struct vfs_file *)f);

	return rc != SQLITE_OK
		       ? rc
		       : real_of(f)->pMethods->xSync(real_of(f), flags);
}

static int wal_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	int rc = run_write((struct vfs_file *)f);

	return rc != SQLITE_OK
		       ? rc
		       : real_of(f)->pMethods->xFileSize(real_of(f), size);
}

static int wal_file_control(sqlite3_file *f, int op, void *arg)
{
	int rc = run_write((struct vfs_file *)f);

	return rc != SQLITE_OK ? rc
			       : real_of(f)->pMethods->xFileControl(
					 real_of(f), op, arg);
}

static int wal_close(sqlite3_file *f)
{
	struct vfs_file *w = (struct vfs_file *)f;
	int rc = run_write(w);
	int crc = w->real->pMethods->xClose(w->real);

	if (w->db != NULL)
		w->db->wal = NULL;
	free(w->run);
	w->run = NULL;
	return rc != SQLITE_OK ? rc : crc;
}

/* ---- every file: the default VFS's own method ------------------------- */

static int pass_close(sqlite3_file *f)
{
	struct vfs_file *p = (struct vfs_file *)f;

	if (p->wal != NULL)
		p->wal->db = NULL;
	return p->real->pMethods->xClose(p->real);
}

static int pass_read(sqlite3_file *f, void *out, int amt, sqlite3_int64 off)
{
	return real_of(f)->pMethods->xRead(real_of(f), out, amt, off);
}

static int pass_write(sqlite3_file *f, const void *data, int amt,
		      sqlite3_int64 off)
{
	return real_of(f)->pMethods->xWrite(real_of(f), data, amt, off);
}

static int pass_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return real_of(f)->pMethods->xTruncate(real_of(f), size);
}

static int pass_sync(sqlite3_file *f, int flags)
{
	return real_of(f)->pMethods->xSync(real_of(f), flags);
}

static int pass_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return real_of(f)->pMethods->xFileSize(real_of(f), size);
}

static int pass_lock(sqlite3_file *f, int level)
{
	return real_of(f)->pMethods->xLock(real_of(f), level);
}

static int pass_unlock(sqlite3_file *f, int level)
{
	return real_of(f)->pMethods->xUnlock(real_of(f), level);
}

static int pass_check_reserved(sqlite3_file *f, int *out)
{
	return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}

static int pass_file_control(sqlite3_file *f, int op, void *arg)
{
	return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}

static int pass_sector_size(sqlite3_file *f)
{
	return real_of(f)->pMethods->xSectorSize(real_of(f));
}

static int pass_device_characteristics(sqlite3_file *f)
{
	return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}

/* The shared-memory and mmap methods exist only from versions 2 and 3 of
 * sqlite3_io_methods; SQLite asks for them only of a database file. */
static int pass_shm_map(sqlite3_file *f, int region, int size, int extend,
			void volatile **out)
{
	const sqlite3_io_methods *m = real_of(f)->pMethods;

	if (m->iVersion < 2 || m->xShmMap == NULL)
		return SQLITE_IOERR_SHMMAP;
	return m->xShmMap(real_of(f), region, size, extend, out);
}

static int pass_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}

/* SQLite calls this between writing a commit's frames and publishing
 * them.  Normally the WAL's run was written with the commit frame; if it
 * was not (a SQLite that writes frames some other way), it is written
 * now.  A failure here cannot be returned, and publishing frames that
 * are not in the file would hand readers garbage: stop as kill -9 would,
 * with the commit unacknowledged. */
static void db_shm_barrier(sqlite3_file *f)
{
	struct vfs_file *p = (struct vfs_file *)f;

	if (p->wal != NULL && p->wal->len > 0 &&
	    run_write(p->wal) != SQLITE_OK) {
		kiln_log(KILN_LOG_ERROR,
			 "store: writing the WAL failed after its commit "
			 "frames; stopping before they are published");
		abort();
	}
	p->real->pMethods->xShmBarrier(p->real);
}

static int pass_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return real_of(f)->pMethods->xShmUnmap(real_of(f), delete_flag);
}

static int pass_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **out)
{
	const sqlite3_io_methods *m = real_of(f)->pMethods;

	if (m->iVersion < 3 || m->xFetch == NULL) {
		*out = NULL; /* read it the ordinary way */
		return SQLITE_OK;
	}
	return m->xFetch(real_of(f), off, amt, out);
}

static int pass_unfetch(sqlite3_file *f, sqlite3_int64 off, void *page)
{
	const sqlite3_io_methods *m = real_of(f)->pMethods;

	if (m->iVersion < 3 || m->xUnfetch == NULL)
		return SQLITE_OK;
	return m->xUnfetch(real_of(f), off, page);
}

static const sqlite3_io_methods db_methods = {
	3,
	pass_close,
	pass_read,
	pass_write,
	pass_truncate,
	pass_sync,
	pass_file_size,
	pass_lock,
	pass_unlock,
	pass_check_reserved,
	pass_file_control,
	pass_sector_size,
	pass_device_characteristics,
	pass_shm_map,
	pass_shm_lock,
	db_shm_barrier,
	pass_shm_unmap,
	pass_fetch,
	pass_unfetch,
};

/* A WAL is never mapped and has no shared memory: version 1. */
static const sqlite3_io_methods wal_methods = {
	1,
	wal_close,
	wal_read,
	wal_write,
	wal_truncate,
	wal_sync,
	wal_file_size,
	pass_lock,
	pass_unlock,
	pass_check_reserved,
	wal_file_control,
	pass_sector_size,
	pass_device_characteristics,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
};

/* ---- the VFS ----------------------------------------------------------- */

static int vfs_open(sqlite3_vfs *self, sqlite3_filename name,
		    sqlite3_file *f, int flags, int *out_flags)
{
	struct vfs_file *p = (struct vfs_file *)f;
	int rc;

	(void)self;
	memset(p, 0, sizeof(*p));
	p->real = (sqlite3_file *)((char *)p + REAL_AT);
	p->commit_page_at = -1;
	rc = parent->xOpen(parent, name, p->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		/* SQLite closes a failed open only through our pMethods. */
		if (p->real->pMethods != NULL)
			p->real->pMethods->xClose(p->real);
		p->base.pMethods = NULL;
		return rc;
	}
	if (flags & SQLITE_OPEN_WAL) {
		sqlite3_file *db = sqlite3_database_file_object(name);

		p->base.pMethods = &wal_methods;
		if (db != NULL && db->pMethods == &db_methods) {
			p->db = (struct vfs_file *)db;
			p->db->wal = p;
		}
	} else {
		p->base.pMethods = &db_methods;
	}
	return SQLITE_OK;
}

static int registered_rc = -1;

static void register_once(void)
{
	parent = sqlite3_vfs_find(NULL);
	if (parent == NULL) {
		registered_rc = SQLITE_ERROR;
		return;
	}
	/* The default VFS's own methods do the rest: they read nothing of
	 * the sqlite3_vfs they are given but what this copy keeps. */
	vfs = *parent;
	vfs.zName = KILN_STORE_VFS;
	vfs.szOsFile = (int)REAL_AT + parent->szOsFile;
	vfs.pNext = NULL;
	vfs.xOpen = vfs_open;
	registered_rc = sqlite3_vfs_register(&vfs, 0);
}

int kiln_store_vfs_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, register_once);
	return registered_rc;
}
