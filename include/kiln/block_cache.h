/*
 * block_cache.h - a per-thread cache of small heap blocks, which SQLite
 * and jansson allocate from (src/block_cache.c says why).
 */
#ifndef KILN_BLOCK_CACHE_H
#define KILN_BLOCK_CACHE_H

#include <stddef.h>

/* Each thread keeps at most this many freed blocks of a size class (16
 * bytes wide, up to KILN_BLOCK_CACHE_MAX_SIZE), and at most
 * KILN_BLOCK_CACHE_BYTES in all. */
#define KILN_BLOCK_CACHE_PER_CLASS 256
#define KILN_BLOCK_CACHE_MAX_SIZE 520
#define KILN_BLOCK_CACHE_BYTES (256 * 1024)
#define KILN_BLOCK_CACHE_BATCH 32
#define KILN_BLOCK_CACHE_SHARED_BYTES (512 * 1024)

/* malloc(n), served from the calling thread's cache when it holds a block
 * of n's size class.  The block is a glibc block: free() may release it. */
void *kiln_block_alloc(size_t n);

/* free(p), or keep p for the calling thread's next allocation of its size
 * class.  p may come from malloc, calloc or realloc as well. */
void kiln_block_free(void *p);

/* Bytes the calling thread's cache holds. */
size_t kiln_block_cache_bytes(void);

/* Bytes held in the list threads hand their surplus to (in batches of
 * KILN_BLOCK_CACHE_BATCH blocks), at most KILN_BLOCK_CACHE_SHARED_BYTES. */
size_t kiln_block_cache_shared_bytes(void);

/* Gives the calling thread's cached blocks back to glibc (threads do so
 * when they end). */
void kiln_block_cache_drain(void);

/* Gives the shared list's blocks back to glibc (the main thread, before
 * exiting). */
void kiln_block_cache_drain_shared(void);

/* Makes SQLite and jansson allocate through the cache.  Call it before
 * the first sqlite3_initialize (any SQLite call); 0, or -1 if SQLite was
 * already initialised (it then keeps its own allocator). */
int kiln_block_cache_install(void);

#endif
