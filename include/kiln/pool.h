/*
 * pool.h - a fixed pool of worker threads running short jobs (step logic:
 * claiming, building requests, parsing results, writing state).  Jobs
 * never sleep on network I/O; that is io_loop's work.
 */
#ifndef KILN_POOL_H
#define KILN_POOL_H

#include <stddef.h>

#include "kiln/common.h"

struct kiln_pool;

typedef void (*kiln_job_fn)(void *arg);

/* Starts n worker threads.  *out is owned; free with kiln_pool_stop. */
enum kiln_rc kiln_pool_start(size_t n, struct kiln_pool **out,
			     struct kiln_err *err) KILN_WARN_UNUSED;

/* Queues fn(arg); fn owns arg.  If the job is dropped unrun at shutdown,
 * drop(arg) is called instead (NULL: nothing to free).  Returns 0, or -1
 * when the pool is stopping (the caller still owns arg). */
int kiln_pool_submit(struct kiln_pool *pool, kiln_job_fn fn,
		     kiln_job_fn drop, void *arg);

/* Number of jobs queued and running (for tests and /readyz-style stats). */
size_t kiln_pool_pending(struct kiln_pool *pool);

/* Jobs queued and not yet taken by a worker, read without waiting for
 * the queue's lock (it may change at once). */
size_t kiln_pool_queued(struct kiln_pool *pool);

/* 1 on one of pool's worker threads: a thread that, whenever it finds
 * the queue empty after a job, calls kiln_store_flush. */
int kiln_pool_in_worker(const struct kiln_pool *pool);

/* Stops accepting jobs, lets the running ones finish, drops the queued
 * ones (calling each one's drop), joins the threads and frees the pool.
 * NULL is a no-op. */
void kiln_pool_stop(struct kiln_pool *pool);

#endif
