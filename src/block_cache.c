/*
 * block_cache.c - a per-thread cache of small heap blocks, for SQLite and
 * jansson.
 *
 * Debian's SQLite is built without lookaside (SQLITE_OMIT_LOOKASIDE), so
 * every text column it reads, every bind and every savepoint is a malloc;
 * jansson makes one or two per value.  In W1 the two made about 700 of
 * kilnd's 880 allocations per workflow, all on the one glibc arena that
 * kilnd keeps for W2's memory (main.c).  glibc's per-thread cache holds 7
 * free blocks of a size; past that every malloc and free takes the arena
 * lock, which a dozen threads contend for: 80 % of kilnd's futex calls
 * were that lock.  Here each thread keeps up to BLOCKS_PER_CLASS freed
 * blocks of each size class, CACHE_BYTES in all, so parsing a request,
 * running its statements and freeing it all is mostly served without the
 * lock: 290 allocations reached glibc per workflow instead of 880, W1
 * +12 % (bench/README.md).  Smaller bounds (64 blocks, 32 KiB) left two
 * thirds of them going to glibc.  A thread's frees and allocations of a
 * class do not balance (the pacer builds claims the workers drop), so a
 * thread past its bound hands blocks on, in batches, to a shared list
 * that threads short of a class take from: a third fewer futex calls
 * again.  The caches hold at most 256 KiB a thread and the list 512 KiB
 * (W2's peak: +0.2 MB).
 *
 * A cached block is an ordinary glibc block: its size class is read back
 * with malloc_usable_size, so anything may free() it (libjwt frees the
 * strings jansson dumps for it with free()), and anything malloc gave may
 * be passed here.  Blocks of a class are all the same glibc chunk size, so
 * one freed by any thread serves any allocation of its class.
 *
 * Under AddressSanitizer the cache is off, so every use after free still
 * hits a freed block.
 */
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "kiln/block_cache.h"

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_ON 0
#endif
#endif
#ifndef CACHE_ON
#define CACHE_ON 1
#endif

/* Class c holds blocks whose usable size is 16 * c + 8 bytes: what glibc
 * gives for any request of 16 * (c - 1) + 9 up to 16 * c + 8 bytes on
 * 64-bit Linux (chunks are multiples of 16, with an 8-byte header).  It
 * sometimes gives more, when what would be left of a free chunk is too
 * small to keep; such a block is filed under the class of its real size. */
#define NCLASS 32
#define MAX_CACHED (16 * NCLASS + 8)
#define BLOCKS_PER_CLASS KILN_BLOCK_CACHE_PER_CLASS
#define CACHE_BYTES KILN_BLOCK_CACHE_BYTES
_Static_assert(MAX_CACHED == KILN_BLOCK_CACHE_MAX_SIZE, "class sizes");

/* Blocks a thread has too many of go, BATCH at a time, to a shared list
 * that threads short of blocks take from: a thread that mostly frees a
 * class (the one that drops what others built) hands its surplus to those
 * that mostly allocate it, instead of both going to glibc.  What the list
 * holds is bounded by SHARED_BYTES; past that batches go back to glibc. */
#define BATCH KILN_BLOCK_CACHE_BATCH
#define SHARED_BYTES KILN_BLOCK_CACHE_SHARED_BYTES

struct free_block {
	struct free_block *next;       /* within a thread's list or a batch */
	struct free_block *next_batch; /* in the shared list: the next batch */
};

struct thread_cache {
	struct free_block *head[NCLASS + 1];
	unsigned short count[NCLASS + 1];
	size_t bytes;
	int registered;
};

static __thread struct thread_cache cache;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under shared_lock; shared[c] is also peeked at without it, so it is
 * read and written atomically. */
static struct free_block *shared[NCLASS + 1];
static size_t shared_bytes;

static size_t class_of_request(size_t n)
{
	return n <= 24 ? 1 : (n - 8 + 15) / 16;
}

static void free_chain(struct free_block *b)
{
	while (b != NULL) {
		struct free_block *next = b->next;

		free(b);
		b = next;
	}
}

static void drain(struct thread_cache *tc)
{
	for (int c = 1; c <= NCLASS; c++) {
		free_chain(tc->head[c]);
		tc->head[c] = NULL;
		tc->count[c] = 0;
	}
	tc->bytes = 0;
}

/* A thread's cache goes back to glibc when the thread ends. */
static void on_thread_exit(void *arg)
{
	drain(arg);
	((struct thread_cache *)arg)->registered = 0;
}

static void make_exit_key(void)
{
	pthread_key_create(&exit_key, on_thread_exit);
}

/* So the thread's blocks go back to glibc when it ends. */
static int registered(void)
{
	if (cache.registered)
		return 1;
	pthread_once(&exit_once, make_exit_key);
	if (pthread_setspecific(exit_key, &cache) != 0)
		return 0;
	cache.registered = 1;
	return 1;
}

/* A batch of class c from the shared list, or NULL. */
static struct free_block *take_batch(size_t c)
{
	struct free_block *b;

	if (__atomic_load_n(&shared[c], __ATOMIC_RELAXED) == NULL ||
	    !registered())
		return NULL;
	pthread_mutex_lock(&shared_lock);
	b = shared[c];
	if (b != NULL) {
		__atomic_store_n(&shared[c], b->next_batch, __ATOMIC_RELAXED);
		shared_bytes -= BATCH * (16 * c + 8);
	}
	pthread_mutex_unlock(&shared_lock);
	return b;
}

/* The first BATCH of the thread's blocks of class c to the shared list
 * (or to glibc, when the list holds its bound). */
static void give_batch(size_t c)
{
	struct free_block *b = cache.head[c], *last = b;
	size_t bytes = BATCH * (16 * c + 8);

	for (int i = 1; i < BATCH; i++)
		last = last->next;
	cache.head[c] = last->next;
	cache.count[c] -= BATCH;
	cache.bytes -= bytes;
	last->next = NULL;
	pthread_mutex_lock(&shared_lock);
	if (shared_bytes + bytes <= SHARED_BYTES) {
		b->next_batch = shared[c];
		__atomic_store_n(&shared[c], b, __ATOMIC_RELAXED);
		shared_bytes += bytes;
		b = NULL;
	}
	pthread_mutex_unlock(&shared_lock);
	free_chain(b);
}

/* The thread has no block of class c: a batch from the shared list, or
 * glibc's.  Out of line, so the common case stays a few instructions. */
static __attribute__((noinline)) void *refill(size_t c)
{
	size_t size = 16 * c + 8;
	struct free_block *b = NULL;

	/* A batch only while the thread's bound has room for it. */
	if (cache.bytes + BATCH * size <= CACHE_BYTES)
		b = take_batch(c);
	if (b == NULL)
		return malloc(size);
	cache.head[c] = b->next;
	cache.count[c] = BATCH - 1;
	cache.bytes += (BATCH - 1) * size;
	return b;
}

void *kiln_block_alloc(size_t n)
{
	if (CACHE_ON && n <= MAX_CACHED) {
		size_t c = class_of_request(n);
		struct free_block *b = cache.head[c];

		if (b == NULL)
			return refill(c);
		cache.head[c] = b->next;
		cache.count[c]--;
		cache.bytes -= 16 * c + 8;
		return b;
	}
	return malloc(n);
}

void kiln_block_free(void *p)
{
	size_t size, c;
	struct free_block *b = p;

	if (!CACHE_ON || p == NULL) {
		free(p);
		return;
	}
	size = malloc_usable_size(p);
	c = (size - 8) / 16;
	if (size > MAX_CACHED || size < 24 || size != 16 * c + 8 ||
	    !registered()) {
		free(p);
		return;
	}
	if (cache.count[c] >= BLOCKS_PER_CLASS ||
	    cache.bytes + size > CACHE_BYTES) {
		if (cache.count[c] < BATCH) {
			free(p); /* the bytes are in other classes */
			return;
		}
		give_batch(c);
	}
	b->next = cache.head[c];
	cache.head[c] = b;
	cache.count[c]++;
	cache.bytes += size;
}

size_t kiln_block_cache_bytes(void)
{
	return cache.bytes;
}

size_t kiln_block_cache_shared_bytes(void)
{
	size_t n;

	pthread_mutex_lock(&shared_lock);
	n = shared_bytes;
	pthread_mutex_unlock(&shared_lock);
	return n;
}

void kiln_block_cache_drain(void)
{
	drain(&cache);
}

void kiln_block_cache_drain_shared(void)
{
	pthread_mutex_lock(&shared_lock);
	for (int c = 1; c <= NCLASS; c++) {
		struct free_block *b = shared[c];

		while (b != NULL) {
			struct free_block *next = b->next_batch;

			free_chain(b);
			b = next;
		}
		__atomic_store_n(&shared[c], NULL, __ATOMIC_RELAXED);
	}
	shared_bytes = 0;
	pthread_mutex_unlock(&shared_lock);
}

/* ---- SQLite's and jansson's allocators ---- */

static void *sq_malloc(int n)
{
	return n > 0 ? kiln_block_alloc((size_t)n) : NULL;
}

static void sq_free(void *p)
{
	kiln_block_free(p);
}

static void *sq_realloc(void *p, int n)
{
	size_t have = malloc_usable_size(p);
	void *q;

	if (!CACHE_ON || ((size_t)n > MAX_CACHED && have > MAX_CACHED))
		return realloc(p, (size_t)n);
	if ((size_t)n <= have && (size_t)n + 16 > have)
		return p; /* already of n's size class */
	q = kiln_block_alloc((size_t)n);
	if (q != NULL) {
		memcpy(q, p, have < (size_t)n ? have : (size_t)n);
		kiln_block_free(p);
	}
	return q;
}

static int sq_size(void *p)
{
	return p == NULL ? 0 : (int)malloc_usable_size(p);
}

static int sq_roundup(int n)
{
	if (n <= MAX_CACHED)
		return (int)(16 * class_of_request((size_t)n) + 8);
	return (n + 7) & ~7;
}

static int sq_init(void *unused)
{
	(void)unused;
	return SQLITE_OK;
}

static void sq_shutdown(void *unused)
{
	(void)unused;
}

int kiln_block_cache_install(void)
{
	static const sqlite3_mem_methods methods = {
		sq_malloc, sq_free,    sq_realloc,  sq_size,
		sq_roundup, sq_init, sq_shutdown, NULL,
	};

	json_set_alloc_funcs(kiln_block_alloc, kiln_block_free);
	return sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) == SQLITE_OK
		       ? 0
		       : -1;
}
