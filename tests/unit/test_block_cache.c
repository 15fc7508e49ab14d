/*
 * test_block_cache.c - the per-thread block cache SQLite and jansson
 * allocate from (src/block_cache.c): sizes, reuse, its bounds, blocks
 * that free() may release, the surplus one thread hands to others, and
 * SQLite and jansson running on it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "kiln/block_cache.h"

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ON 0 /* off under ASan, so freed blocks stay poisoned */
#else
#define CACHE_ON 1
#endif

/* The usable size of n's class. */
static size_t class_usable(size_t n)
{
	return n <= 24 ? 24 : (n - 8 + 15) / 16 * 16 + 8;
}

/* A block of exactly its class's size.  glibc may hand out a larger chunk
 * (when what would be left of a free one is too small to keep), which the
 * cache then files under that larger class; the counting tests want none
 * of those. */
static void *alloc_exact(size_t n)
{
	void *odd[16], *p;
	size_t k = 0;

	while ((p = kiln_block_alloc(n)) != NULL &&
	       malloc_usable_size(p) != class_usable(n) && k < 16)
		odd[k++] = p;
	while (k > 0)
		free(odd[--k]);
	return p;
}

static void test_blocks_are_big_enough_and_free_releases_them(void **state)
{
	(void)state;
	for (size_t n = 0; n <= 2 * KILN_BLOCK_CACHE_MAX_SIZE; n++) {
		unsigned char *p = kiln_block_alloc(n);

		assert_non_null(p);
		assert_true(malloc_usable_size(p) >= n);
		memset(p, 0xAB, n);
		/* Half go back through the cache, half to glibc directly
		 * (as libjwt does with the strings jansson dumps). */
		if (n % 2)
			kiln_block_free(p);
		else
			free(p);
	}
	kiln_block_free(NULL);
	kiln_block_cache_drain();
}

static void test_freed_block_serves_its_size_class(void **state)
{
	void *a = kiln_block_alloc(100), *b, *c;

	(void)state;
	kiln_block_free(a);
	b = kiln_block_alloc(97); /* 97..104 share a's class */
	if (CACHE_ON)
		assert_ptr_equal(b, a);
	c = kiln_block_alloc(100);
	assert_ptr_not_equal(c, b);
	kiln_block_free(b);
	kiln_block_free(c);
	/* Blocks glibc gave are taken too. */
	a = malloc(40);
	kiln_block_free(a);
	b = kiln_block_alloc(40);
	if (CACHE_ON)
		assert_ptr_equal(b, a);
	kiln_block_free(b);
	kiln_block_cache_drain();
}

/* A thread keeps at most KILN_BLOCK_CACHE_PER_CLASS blocks of a class:
 * of 300 blocks freed, the cache keeps at most 256, the rest goes on to
 * the shared list in batches, and drained, none stay. */
static void test_a_class_keeps_at_most_its_bound(void **state)
{
	enum { N = KILN_BLOCK_CACHE_PER_CLASS + 44 };
	size_t held, batch = KILN_BLOCK_CACHE_BATCH;
	void *blocks[N];

	(void)state;
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
	for (size_t i = 0; i < N; i++)
		blocks[i] = alloc_exact(64); /* class of 72 bytes */
	for (size_t i = 0; i < N; i++)
		kiln_block_free(blocks[i]);
	held = kiln_block_cache_bytes();
	if (CACHE_ON) {
		/* 256 kept, then each free past that hands 32 on:
		 * 300 = 236 kept + 2 batches. */
		assert_int_equal(held, (N - 2 * batch) * 72);
		assert_int_equal(kiln_block_cache_shared_bytes(),
				 2 * batch * 72);
	} else {
		assert_int_equal(held, 0);
	}
	/* Served from the cache, the held bytes go down as they go out. */
	for (size_t i = 0; i < 10; i++)
		blocks[i] = kiln_block_alloc(60);
	assert_int_equal(kiln_block_cache_bytes(), CACHE_ON ? held - 720 : 0);
	for (size_t i = 0; i < 10; i++)
		kiln_block_free(blocks[i]);
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
	assert_int_equal(kiln_block_cache_bytes(), 0);
	assert_int_equal(kiln_block_cache_shared_bytes(), 0);
}

/* And KILN_BLOCK_CACHE_BYTES in all: blocks of the 24 largest classes
 * (~130 KB each when full) would be 3 MB; the cache keeps 256 KB. */
static void test_the_cache_keeps_at_most_its_bytes(void **state)
{
	size_t per_class = KILN_BLOCK_CACHE_PER_CLASS;
	void **blocks = calloc(per_class, sizeof(*blocks));

	(void)state;
	assert_non_null(blocks);
	for (size_t c = 0; c < 24; c++) {
		size_t size = KILN_BLOCK_CACHE_MAX_SIZE - 16 * c;

		for (size_t i = 0; i < per_class; i++)
			blocks[i] = kiln_block_alloc(size);
		for (size_t i = 0; i < per_class; i++)
			kiln_block_free(blocks[i]);
		assert_true(kiln_block_cache_bytes() <=
			    KILN_BLOCK_CACHE_BYTES);
	}
	if (CACHE_ON)
		assert_true(kiln_block_cache_bytes() >
			    KILN_BLOCK_CACHE_BYTES - KILN_BLOCK_CACHE_MAX_SIZE);
	free(blocks);
	kiln_block_cache_drain();
	assert_int_equal(kiln_block_cache_bytes(), 0);
}

struct handover {
	void *blocks[64];
	size_t held; /* what the freeing thread's cache held after */
};

static void *free_on_thread(void *arg)
{
	struct handover *h = arg;

	for (size_t i = 0; i < 64; i++)
		kiln_block_free(h->blocks[i]);
	h->held = kiln_block_cache_bytes();
	return NULL; /* its cache goes back to glibc as it ends */
}

/* Blocks allocated on one thread may be freed on another, whose cache
 * then holds them (each thread has its own). */
static void test_blocks_cross_threads(void **state)
{
	struct handover h = {0};
	size_t mine;
	pthread_t t;

	(void)state;
	kiln_block_cache_drain();
	for (size_t i = 0; i < 64; i++)
		h.blocks[i] = kiln_block_alloc(8 * i + 1);
	mine = kiln_block_cache_bytes();
	assert_int_equal(pthread_create(&t, NULL, free_on_thread, &h), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(kiln_block_cache_bytes(), mine);
	if (CACHE_ON)
		assert_true(h.held > 0);
}

struct surplus {
	size_t n, size;
	size_t held; /* what the thread's cache held after */
};

static void *free_surplus(void *arg)
{
	struct surplus *sp = arg;
	void **blocks = calloc(sp->n, sizeof(*blocks));

	for (size_t i = 0; i < sp->n; i++)
		blocks[i] = alloc_exact(sp->size);
	for (size_t i = 0; i < sp->n; i++)
		kiln_block_free(blocks[i]);
	free(blocks);
	sp->held = kiln_block_cache_bytes();
	return NULL;
}

/* A thread with more blocks of a class than it keeps hands them on in
 * batches; a thread short of that class takes a batch. */
static void test_surplus_goes_to_threads_short_of_it(void **state)
{
	struct surplus sp = {KILN_BLOCK_CACHE_PER_CLASS + 44, 64, 0};
	size_t batch = KILN_BLOCK_CACHE_BATCH;
	pthread_t t;
	void *p;

	(void)state;
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
	assert_int_equal(pthread_create(&t, NULL, free_surplus, &sp), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (!CACHE_ON) {
		assert_int_equal(kiln_block_cache_shared_bytes(), 0);
		return;
	}
	/* 300 freed on that thread: 2 batches of 32 went on, 236 stayed
	 * (and went back to glibc as the thread ended). */
	assert_int_equal(kiln_block_cache_shared_bytes(), 2 * batch * 72);
	assert_int_equal(sp.held, (sp.n - 2 * batch) * 72);
	p = kiln_block_alloc(64);
	assert_int_equal(kiln_block_cache_shared_bytes(), batch * 72);
	assert_int_equal(kiln_block_cache_bytes(), (batch - 1) * 72);
	kiln_block_free(p);
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
}

/* A thread whose cache is at its byte bound takes no batch: the block
 * comes from glibc and the batch stays for others. */
static void test_a_full_cache_takes_no_batch(void **state)
{
	struct surplus sp = {KILN_BLOCK_CACHE_PER_CLASS + 1, 64, 0};
	size_t batch = KILN_BLOCK_CACHE_BATCH;
	void **blocks;
	size_t held;
	pthread_t t;
	void *p;

	(void)state;
	if (!CACHE_ON)
		return; /* nothing is cached under ASan */
	blocks = calloc(KILN_BLOCK_CACHE_PER_CLASS, sizeof(*blocks));
	assert_non_null(blocks);
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
	/* One batch of the 72-byte class on the shared list. */
	assert_int_equal(pthread_create(&t, NULL, free_surplus, &sp), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(kiln_block_cache_shared_bytes(), batch * 72);
	/* Fill this thread's cache to its bytes with larger blocks. */
	for (size_t size = KILN_BLOCK_CACHE_MAX_SIZE;
	     kiln_block_cache_bytes() + batch * 72 <= KILN_BLOCK_CACHE_BYTES;
	     size -= 16) {
		for (size_t i = 0; i < KILN_BLOCK_CACHE_PER_CLASS; i++)
			blocks[i] = kiln_block_alloc(size);
		for (size_t i = 0; i < KILN_BLOCK_CACHE_PER_CLASS; i++)
			kiln_block_free(blocks[i]);
	}
	free(blocks);
	kiln_block_cache_drain_shared(); /* what the filling handed on */
	assert_int_equal(pthread_create(&t, NULL, free_surplus, &sp), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	held = kiln_block_cache_bytes();
	p = kiln_block_alloc(64);
	assert_int_equal(kiln_block_cache_shared_bytes(), batch * 72);
	assert_int_equal(kiln_block_cache_bytes(), held);
	kiln_block_free(p);
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
}

/* The shared list holds at most KILN_BLOCK_CACHE_SHARED_BYTES; past that
 * the surplus goes back to glibc. */
static void test_shared_list_is_bounded(void **state)
{
	size_t per_batch = KILN_BLOCK_CACHE_BATCH * KILN_BLOCK_CACHE_MAX_SIZE;
	struct surplus sp = {0, KILN_BLOCK_CACHE_MAX_SIZE, 0};
	pthread_t t;

	(void)state;
	sp.n = KILN_BLOCK_CACHE_PER_CLASS +
	       2 * (KILN_BLOCK_CACHE_SHARED_BYTES / per_batch) *
		       KILN_BLOCK_CACHE_BATCH;
	kiln_block_cache_drain_shared();
	assert_int_equal(pthread_create(&t, NULL, free_surplus, &sp), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(kiln_block_cache_shared_bytes() <=
		    KILN_BLOCK_CACHE_SHARED_BYTES);
	if (CACHE_ON)
		assert_true(kiln_block_cache_shared_bytes() >
			    KILN_BLOCK_CACHE_SHARED_BYTES - per_batch);
	kiln_block_cache_drain_shared();
	assert_int_equal(kiln_block_cache_shared_bytes(), 0);
}

static int count_rows(void *arg, int ncol, char **vals, char **names)
{
	(void)ncol;
	(void)names;
	*(long *)arg = strtol(vals[0], NULL, 10);
	return 0;
}

/* SQLite on the cache: texts of every size, grown (group_concat
 * reallocates) and read back. */
static void test_sqlite_runs_on_the_cache(void **state)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL, *sel = NULL;
	char text[700];
	long total = 0;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(n INTEGER, s TEXT)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "INSERT INTO t VALUES (?, ?)", -1,
					    &ins, NULL),
			 SQLITE_OK);
	memset(text, 'x', sizeof(text));
	for (int n = 0; n < 700; n++) {
		sqlite3_bind_int(ins, 1, n);
		sqlite3_bind_text(ins, 2, text, n, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
		sqlite3_reset(ins);
	}
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT n, s FROM t ORDER BY n",
					    -1, &sel, NULL),
			 SQLITE_OK);
	for (int n = 0; n < 700; n++) {
		assert_int_equal(sqlite3_step(sel), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(sel, 0), n);
		assert_int_equal(sqlite3_column_bytes(sel, 1), n);
		assert_memory_equal(sqlite3_column_text(sel, 1), text,
				    (size_t)n);
	}
	assert_int_equal(sqlite3_exec(db,
				      "SELECT length(group_concat(s, ''))"
				      " FROM t",
				      count_rows, &total, NULL),
			 SQLITE_OK);
	assert_int_equal(total, 699 * 700 / 2);
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* jansson on the cache; what it dumps may be released with free(). */
static void test_jansson_runs_on_the_cache(void **state)
{
	json_t *v = json_loads("{\"a\":[1,2,{\"b\":\"c\"}],\"d\":\"e\"}", 0,
			       NULL);
	char *text;

	(void)state;
	assert_non_null(v);
	text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"a\":[1,2,{\"b\":\"c\"}],\"d\":\"e\"}");
	free(text);
	json_decref(v);
	kiln_block_cache_drain();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks_are_big_enough_and_free_releases_them),
		cmocka_unit_test(test_freed_block_serves_its_size_class),
		cmocka_unit_test(test_a_class_keeps_at_most_its_bound),
		cmocka_unit_test(test_the_cache_keeps_at_most_its_bytes),
		cmocka_unit_test(test_blocks_cross_threads),
		cmocka_unit_test(test_surplus_goes_to_threads_short_of_it),
		cmocka_unit_test(test_shared_list_is_bounded),
		cmocka_unit_test(test_a_full_cache_takes_no_batch),
		cmocka_unit_test(test_sqlite_runs_on_the_cache),
		cmocka_unit_test(test_jansson_runs_on_the_cache),
	};

	int rc;

	/* Before any SQLite call, as kilnd does. */
	if (kiln_block_cache_install() != 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	kiln_block_cache_drain();
	kiln_block_cache_drain_shared();
	return rc;
}
