/*
 * test_io_loop.c - how the I/O loop shares a lane's connections
 * (src/io_loop.c): a burst against a provider that answers at once waits
 * for the lane's connections to come free instead of opening one per
 * call, a burst against a slow provider still runs all at once (but not
 * while the loop's thread is busy), and a connection the server closes
 * while it is idle in the cache is dropped from the loop's epoll set;
 * and a timer that sets itself again at once starves no transfer.
 *
 * The provider is a libmicrohttpd server in the test process, one thread
 * per connection, that counts the connections it accepts and the
 * requests it holds at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln/io_loop.h"

#define BURST 40

/* ---- the provider ---------------------------------------------------- */

struct provider {
	struct MHD_Daemon *daemon;
	unsigned short port;
	int delay_ms;
	int connections; /* accepted so far (atomic) */
	int holding;     /* requests being answered now (atomic) */
	int peak;        /* the most held at once (atomic) */
};

static void on_connection(void *cls, struct MHD_Connection *c,
			  void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct provider *p = cls;

	(void)c;
	(void)socket_ctx;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		__atomic_add_fetch(&p->connections, 1, __ATOMIC_RELAXED);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **req_ctx)
{
	static const char body[] = "{\"ok\":true}";
	struct provider *p = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	int now, peak;

	(void)url;
	(void)method;
	(void)version;
	(void)upload;
	if (*req_ctx == NULL) { /* headers only so far */
		*req_ctx = p;
		return MHD_YES;
	}
	if (*upload_size > 0) { /* the body: not needed */
		*upload_size = 0;
		return MHD_YES;
	}
	now = __atomic_add_fetch(&p->holding, 1, __ATOMIC_RELAXED);
	peak = __atomic_load_n(&p->peak, __ATOMIC_RELAXED);
	while (now > peak &&
	       !__atomic_compare_exchange_n(&p->peak, &peak, now, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	if (p->delay_ms > 0)
		usleep((useconds_t)p->delay_ms * 1000);
	__atomic_sub_fetch(&p->holding, 1, __ATOMIC_RELAXED);
	r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
					    MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void provider_start(struct provider *p, int delay_ms)
{
	const union MHD_DaemonInfo *info;

	memset(p, 0, sizeof(*p));
	p->delay_ms = delay_ms;
	p->daemon = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
		0, NULL, NULL, on_request, p, MHD_OPTION_NOTIFY_CONNECTION,
		on_connection, p, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
		MHD_OPTION_END);
	assert_non_null(p->daemon);
	info = MHD_get_daemon_info(p->daemon, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	p->port = info->port;
}

/* ---- the calls ------------------------------------------------------- */

struct results {
	pthread_mutex_t lock;
	pthread_cond_t all_done;
	int done, ok;
};

static void on_done(void *ctx, const struct kiln_http_response *resp)
{
	struct results *r = ctx;

	pthread_mutex_lock(&r->lock);
	r->done++;
	r->ok += resp->curl_code == CURLE_OK && resp->status == 200;
	pthread_cond_signal(&r->all_done);
	pthread_mutex_unlock(&r->lock);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A loop whose lanes open at most floor connections until calls have
 * taken slow_ms, and a lane of BURST on it. */
static struct kiln_io *loop_start(size_t floor, int64_t slow_ms,
				  struct kiln_io_lane **lane)
{
	struct kiln_err err = {0};
	struct kiln_io *io = NULL;

	assert_int_equal(kiln_io_start(1000, 0, &io, &err), KILN_OK);
	kiln_io_set_conn_floor(io, floor, slow_ms);
	*lane = kiln_io_lane(io, BURST);
	assert_non_null(*lane);
	return io;
}

/* Sends BURST POSTs at once on lane. */
static void send_burst(struct kiln_io *io, struct kiln_io_lane *lane,
		       struct provider *p, struct results *r)
{
	char url[64];
	int i;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/call",
		 (unsigned)p->port);
	for (i = 0; i < BURST; i++) {
		struct kiln_http_request *req = calloc(1, sizeof(*req));

		assert_non_null(req);
		req->url = strdup(url);
		req->body = strdup("{}");
		req->body_len = 2;
		req->connect_timeout_ms = 5000;
		req->timeout_ms = 20000;
		req->lane = lane;
		assert_true(kiln_io_submit(io, req, on_done, r) > 0);
	}
}

/* Waits for every answer of a burst; all must be 200. */
static void wait_burst(struct results *r)
{
	pthread_mutex_lock(&r->lock);
	while (r->done < BURST)
		pthread_cond_wait(&r->all_done, &r->lock);
	pthread_mutex_unlock(&r->lock);
	assert_int_equal(r->ok, BURST);
}

/* A burst on a fresh loop; returns the seconds until the last answer. */
static double burst(struct provider *p, size_t floor, int64_t slow_ms)
{
	struct results r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    0, 0};
	struct kiln_io_lane *lane;
	struct kiln_io *io = loop_start(floor, slow_ms, &lane);
	double t0 = mono_s();

	send_burst(io, lane, p, &r);
	wait_burst(&r);
	t0 = mono_s() - t0;
	kiln_io_free(io);
	return t0;
}

/* A timer that sets itself again, delay_ms later, until stop is set;
 * each time it keeps the loop's thread busy for busy_s. */
struct repeat {
	struct kiln_io *io;
	int64_t delay_ms;
	double busy_s;
	int stop;   /* atomic */
	long fired; /* atomic */
};

static void repeat_fire(void *ctx, int is_shutdown)
{
	struct repeat *rp = ctx;
	double until = mono_s() + rp->busy_s;

	if (is_shutdown || __atomic_load_n(&rp->stop, __ATOMIC_ACQUIRE))
		return;
	__atomic_add_fetch(&rp->fired, 1, __ATOMIC_RELAXED);
	while (mono_s() < until)
		;
	kiln_io_after(rp->io, rp->delay_ms, repeat_fire, rp);
}

/* ---- tests ----------------------------------------------------------- */

static void test_fast_burst_waits_for_free_connections(void **state)
{
	struct provider p;

	(void)state;
	provider_start(&p, 0);
	/* slow_ms far beyond the run: only the floor may be opened. */
	burst(&p, 4, 60000);
	assert_in_range(__atomic_load_n(&p.connections, __ATOMIC_RELAXED), 1,
			4);
	MHD_stop_daemon(p.daemon);
}

static void test_slow_burst_gets_a_connection_per_call(void **state)
{
	struct provider p;
	double took;

	(void)state;
	provider_start(&p, 400);
	/* From 4 connections, doubling every 50 ms: all 40 are held at
	 * once within about 200 ms, so the burst takes one call's time
	 * and some, not the ten rounds of 4 (4 s) it would at the floor. */
	took = burst(&p, 4, 50);
	assert_int_equal(__atomic_load_n(&p.peak, __ATOMIC_RELAXED), BURST);
	assert_int_equal(__atomic_load_n(&p.connections, __ATOMIC_RELAXED),
			 BURST);
	if (took >= 2.0)
		fail_msg("the burst took %.2f s: the calls did not run at once",
			 took);
	MHD_stop_daemon(p.daemon);
}

static void test_busy_loop_opens_no_more(void **state)
{
	struct results r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    0, 0};
	struct kiln_io_lane *lane;
	struct kiln_io *io;
	/* Busy 8 ms of every 9, the loop's other work going on between. */
	struct repeat busy = {NULL, 1, 0.008, 0, 0};
	struct provider p;
	int while_busy;

	(void)state;
	provider_start(&p, 400);
	io = loop_start(4, 50, &lane);
	busy.io = io;
	assert_int_equal(kiln_io_after(io, 0, repeat_fire, &busy), 0);
	send_burst(io, lane, &p, &r);
	/* Slow calls, but the loop's thread has no time to spare: more
	 * connections would not be served any sooner. */
	usleep(300 * 1000);
	while_busy = __atomic_load_n(&p.connections, __ATOMIC_RELAXED);
	/* Idle again: the lane grows and the rest run. */
	__atomic_store_n(&busy.stop, 1, __ATOMIC_RELEASE);
	wait_burst(&r);
	kiln_io_free(io); /* before any assertion can end the test */
	MHD_stop_daemon(p.daemon);
	assert_int_equal(while_busy, 4);
	assert_true(__atomic_load_n(&p.connections, __ATOMIC_RELAXED) > 4);
}

/* The id of this process's thread named name (+ "\n" as comm has it),
 * or 0. */
static long thread_named(const char *name)
{
	char path[300], comm[32];
	long tid = 0;
	struct dirent *e;
	FILE *f;
	DIR *d = opendir("/proc/self/task");

	assert_non_null(d);
	while (tid == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL &&
		    strncmp(comm, name, strlen(name)) == 0 &&
		    comm[strlen(name)] == '\n')
			tid = atol(e->d_name);
		fclose(f);
	}
	closedir(d);
	return tid;
}

/* The CPU time thread tid has used, in clock ticks. */
static long thread_ticks(long tid)
{
	char path[64], line[1024], *p;
	unsigned long utime = 0, stime = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/stat", tid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	p = strrchr(line, ')'); /* past the name, which may hold spaces */
	assert_non_null(p);
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u"
				       " %*u %*u %lu %lu", &utime, &stime),
			 2);
	return (long)(utime + stime);
}

/* A timer that sets itself again at once fires once a turn, and the
 * transfers still run. */
static void test_timer_set_again_at_once_starves_nothing(void **state)
{
	struct results r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    0, 0};
	struct kiln_io_lane *lane;
	struct kiln_io *io;
	struct repeat at_once = {NULL, 0, 0.0, 0, 0};
	struct provider p;
	struct timespec until;
	int done;

	(void)state;
	provider_start(&p, 0);
	io = loop_start(64, 10, &lane);
	at_once.io = io;
	assert_int_equal(kiln_io_after(io, 0, repeat_fire, &at_once), 0);
	send_burst(io, lane, &p, &r);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&r.lock);
	while (r.done < BURST &&
	       pthread_cond_timedwait(&r.all_done, &r.lock, &until) == 0)
		;
	done = r.done;
	pthread_mutex_unlock(&r.lock);
	__atomic_store_n(&at_once.stop, 1, __ATOMIC_RELEASE);
	kiln_io_free(io); /* before any assertion can end the test */
	MHD_stop_daemon(p.daemon);
	assert_int_equal(done, BURST);
	assert_int_equal(r.ok, BURST);
	assert_true(__atomic_load_n(&at_once.fired, __ATOMIC_RELAXED) > 1);
}

/* The loop's thread is named kiln-io, for top -H and gdb. */
static void test_thread_is_named(void **state)
{
	struct kiln_io_lane *lane;
	struct kiln_io *io = loop_start(4, 50, &lane);
	long tid = thread_named("kiln-io");

	(void)state;
	kiln_io_free(io);
	assert_true(tid > 0);
}

/* A connection back in the cache stays in the loop's epoll set between
 * calls; when the server closes it there, the loop takes it out instead
 * of waking for it again and again, and the next call opens another. */
static void test_idle_connection_closed_by_server(void **state)
{
	struct results r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    0, 0};
	struct kiln_io_lane *lane;
	struct kiln_io *io;
	struct provider p;
	long tid, ticks;
	int first;

	(void)state;
	provider_start(&p, 0);
	io = loop_start(4, 50, &lane);
	tid = thread_named("kiln-io");
	send_burst(io, lane, &p, &r);
	wait_burst(&r);
	first = __atomic_load_n(&p.connections, __ATOMIC_RELAXED);
	/* The server drops its idle connections. */
	MHD_stop_daemon(p.daemon);
	ticks = tid > 0 ? thread_ticks(tid) : 0;
	usleep(500 * 1000);
	ticks = tid > 0 ? thread_ticks(tid) - ticks : 0;
	/* A new server on another port: new connections, all answered. */
	provider_start(&p, 0);
	r.done = r.ok = 0;
	send_burst(io, lane, &p, &r);
	wait_burst(&r);
	kiln_io_free(io);
	MHD_stop_daemon(p.daemon);
	assert_true(tid > 0);
	assert_in_range(first, 1, 4);
	if (ticks > sysconf(_SC_CLK_TCK) / 10)
		fail_msg("the loop's thread used %ld ticks in 0.5 s with only"
			 " closed connections", ticks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_burst_waits_for_free_connections),
		cmocka_unit_test(test_slow_burst_gets_a_connection_per_call),
		cmocka_unit_test(test_busy_loop_opens_no_more),
		cmocka_unit_test(test_timer_set_again_at_once_starves_nothing),
		cmocka_unit_test(test_thread_is_named),
		cmocka_unit_test(test_idle_connection_closed_by_server),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
