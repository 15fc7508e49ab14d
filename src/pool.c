/*
 * pool.c - worker threads fed from one FIFO queue guarded by a mutex and a
 * condition variable.  The queue only wakes workers up: the work itself is
 * described in the store, so jobs dropped at shutdown are found again at
 * the next start (see kiln_store_recover).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/log.h"
#include "kiln/pool.h"
#include "kiln/store.h"
#include "kiln/thread_name.h"

struct job {
	kiln_job_fn fn;
	kiln_job_fn drop;
	void *arg;
	struct job *next;
};

struct kiln_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *head, *tail;
	size_t queued, running;
	int stopping;
	size_t n_threads;
	pthread_t *threads;
};

/* The pool whose worker this thread is (NULL for other threads). */
static _Thread_local const struct kiln_pool *my_pool;

static void *worker_main(void *p)
{
	struct kiln_pool *pool = p;

	my_pool = pool;
	for (;;) {
		struct job *j;
		int dry;

		pthread_mutex_lock(&pool->lock);
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
		if (pool->stopping) {
			pthread_mutex_unlock(&pool->lock);
			break;
		}
		j = pool->head;
		pool->head = j->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		__atomic_sub_fetch(&pool->queued, 1, __ATOMIC_RELAXED);
		pool->running++;
		pthread_mutex_unlock(&pool->lock);

		j->fn(j->arg);
		free(j);

		pthread_mutex_lock(&pool->lock);
		pool->running--;
		dry = pool->head == NULL;
		pthread_mutex_unlock(&pool->lock);
		/* Writes left uncommitted for the jobs that were queued
		 * (kiln_store_commit_then) wait for nobody else now. */
		if (dry)
			kiln_store_flush();
	}
	kiln_store_flush();
	kiln_store_thread_release();
	return NULL;
}

enum kiln_rc kiln_pool_start(size_t n, struct kiln_pool **out,
			     struct kiln_err *err)
{
	struct kiln_pool *pool = calloc(1, sizeof(*pool));
	size_t i;

	if (pool == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	pool->threads = calloc(n, sizeof(*pool->threads));
	if (pool->threads == NULL) {
		free(pool);
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
	for (i = 0; i < n; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker_main,
				   pool) != 0) {
			pool->n_threads = i;
			kiln_pool_stop(pool);
			return kiln_err_set(err, KILN_EIO, "workers",
					    "cannot start worker thread %zu",
					    i);
		}
		kiln_thread_name(pool->threads[i], "kiln-worker");
	}
	pool->n_threads = n;
	*out = pool;
	return KILN_OK;
}

int kiln_pool_submit(struct kiln_pool *pool, kiln_job_fn fn,
		     kiln_job_fn drop, void *arg)
{
	struct job *j = malloc(sizeof(*j));

	if (j == NULL)
		return -1;
	j->fn = fn;
	j->drop = drop;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&pool->lock);
	if (pool->stopping) {
		pthread_mutex_unlock(&pool->lock);
		free(j);
		return -1;
	}
	if (pool->tail)
		pool->tail->next = j;
	else
		pool->head = j;
	pool->tail = j;
	__atomic_add_fetch(&pool->queued, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

int kiln_pool_in_worker(const struct kiln_pool *pool)
{
	return pool != NULL && my_pool == pool;
}

size_t kiln_pool_queued(struct kiln_pool *pool)
{
	/* A glance, not a promise: read without the lock. */
	return __atomic_load_n(&pool->queued, __ATOMIC_RELAXED);
}

size_t kiln_pool_pending(struct kiln_pool *pool)
{
	size_t n;

	pthread_mutex_lock(&pool->lock);
	n = pool->queued + pool->running;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

void kiln_pool_stop(struct kiln_pool *pool)
{
	struct job *j;
	size_t i;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	while ((j = pool->head) != NULL) {
		pool->head = j->next;
		if (j->drop)
			j->drop(j->arg);
		free(j);
	}
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->wake);
	free(pool->threads);
	free(pool);
}
