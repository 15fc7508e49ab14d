/*
 * fake_provider.c - a fast local generation provider for the benchmarks.
 *
 * Answers every POST/PUT with a small JSON object:
 *
 *   {<each --echo-fields member present in the request, copied>,
 *    "bytes_received": N,
 *    "result_image_path": "https://cdn.example/x.png"}

 * (default --echo-fields prompt,base_image_url: so a refine step's result
 * shows the base_image_url its input mapping produced).
 *
 * either at once (--delay-ms 0) or after --delay-ms milliseconds.  A delayed
 * request does not hold a thread: the connection is suspended
 * (MHD_suspend_connection) and put on a FIFO of deadlines; one timer thread
 * resumes each connection when its deadline passes (every request has the
 * same delay, so arrival order is deadline order and a FIFO is a heap).
 * MHD runs with epoll in its internal thread(s), so the number of
 * concurrent connections is bounded only by --max-conns and RLIMIT_NOFILE
 * (raised to its hard limit at start).
 *
 * GET /stats answers {"requests", "answered", "suspended", "suspended_peak",
 * "connections", "connections_peak"}.
 *
 * Usage: fake_provider [--port P] [--delay-ms D] [--threads T]
 *                      [--max-conns N] [--echo-fields A,B,...] [--quiet]
 * --port 0 picks a free port; the chosen port is printed on stdout as
 * "port N" once the daemon listens.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#define BODY_CAP (1u << 20)

struct req {
	char *body;
	size_t len, cap;
	int state; /* 0 reading, 1 suspended, 2 resumed: answer now */
	int64_t due_ms;
	struct MHD_Connection *conn;
	struct req *next; /* FIFO link */
};

static struct {
	unsigned delay_ms;
	const char *echo_fields; /* comma-separated */
	int quiet;
	struct MHD_Daemon *d;
	/* timer FIFO */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct req *head, *tail;
	int stopping;
	/* counters */
	atomic_long requests, answered, suspended, suspended_peak;
	atomic_long connections, connections_peak;
} g = {
	.echo_fields = "prompt,base_image_url",
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void peak(atomic_long *peak_v, long v)
{
	long p = atomic_load(peak_v);

	while (v > p && !atomic_compare_exchange_weak(peak_v, &p, v))
		;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
			     const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
					    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result answer(struct MHD_Connection *conn, struct req *rq)
{
	json_t *in = NULL, *out;
	char *text, name[128];
	const char *p = g.echo_fields;
	enum MHD_Result ret;

	if (rq->len > 0)
		in = json_loadb(rq->body, rq->len, 0, NULL);
	out = json_object();
	while (out && json_is_object(in) && *p) {
		size_t n = strcspn(p, ",");
		json_t *v;

		if (n > 0 && n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			v = json_object_get(in, name);
			if (v)
				json_object_set(out, name, v);
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (out) {
		json_object_set_new(out, "bytes_received",
				    json_integer((json_int_t)rq->len));
		json_object_set_new(out, "result_image_path",
				    json_string("https://cdn.example/x.png"));
	}
	json_decref(in);
	text = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	if (text == NULL)
		return reply(conn, 500, "{\"detail\":\"out of memory\"}");
	ret = reply(conn, 200, text);
	free(text);
	atomic_fetch_add(&g.answered, 1);
	return ret;
}

static enum MHD_Result stats(struct MHD_Connection *conn)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"requests\":%ld,\"answered\":%ld,\"suspended\":%ld,"
		 "\"suspended_peak\":%ld,\"connections\":%ld,"
		 "\"connections_peak\":%ld}",
		 atomic_load(&g.requests), atomic_load(&g.answered),
		 atomic_load(&g.suspended), atomic_load(&g.suspended_peak),
		 atomic_load(&g.connections),
		 atomic_load(&g.connections_peak));
	return reply(conn, 200, buf);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct req *rq = *con_cls;

	(void)cls;
	(void)version;
	if (rq == NULL) {
		if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0)
			return stats(conn);
		if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
			return reply(conn, 405,
				     "{\"detail\":\"method not allowed\"}");
		rq = calloc(1, sizeof(*rq));
		if (rq == NULL)
			return MHD_NO;
		rq->conn = conn;
		*con_cls = rq;
		atomic_fetch_add(&g.requests, 1);
		return MHD_YES;
	}
	if (*upload_size > 0) { /* a chunk of the body */
		size_t n = *upload_size;

		if (rq->len + n > BODY_CAP)
			n = BODY_CAP - rq->len; /* cap; rest dropped */
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap * 2 : 1024;
			char *b;

			while (cap < rq->len + n)
				cap *= 2;
			b = realloc(rq->body, cap);
			if (b == NULL)
				return MHD_NO;
			rq->body = b;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->state == 0 && g.delay_ms > 0) {
		long s;

		rq->state = 1;
		rq->due_ms = now_ms() + g.delay_ms;
		s = atomic_fetch_add(&g.suspended, 1) + 1;
		peak(&g.suspended_peak, s);
		MHD_suspend_connection(conn);
		pthread_mutex_lock(&g.lock);
		rq->next = NULL;
		if (g.tail)
			g.tail->next = rq;
		else
			g.head = rq;
		g.tail = rq;
		pthread_cond_signal(&g.cond);
		pthread_mutex_unlock(&g.lock);
		return MHD_YES;
	}
	return answer(conn, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)conn;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		peak(&g.connections_peak,
		     atomic_fetch_add(&g.connections, 1) + 1);
	else
		atomic_fetch_sub(&g.connections, 1);
}

/* Resumes suspended connections as their deadlines pass. */
static void *timer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g.lock);
	while (!g.stopping) {
		int64_t now;
		struct timespec ts;

		if (g.head == NULL) {
			pthread_cond_wait(&g.cond, &g.lock);
			continue;
		}
		now = now_ms();
		if (g.head->due_ms > now) {
			int64_t wait = g.head->due_ms - now;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (long)(wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&g.cond, &g.lock, &ts);
			continue;
		}
		while (g.head && g.head->due_ms <= now) {
			struct req *rq = g.head;

			g.head = rq->next;
			if (g.head == NULL)
				g.tail = NULL;
			rq->state = 2;
			atomic_fetch_sub(&g.suspended, 1);
			/* The connection stays alive while suspended (no
			 * timeout, no completion callback), so rq is valid. */
			MHD_resume_connection(rq->conn);
		}
	}
	pthread_mutex_unlock(&g.lock);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fake_provider [--port P] [--delay-ms D]"
		   " [--threads T] [--max-conns N] [--echo-fields A,B]"
		   " [--quiet]\n");
}

int main(int argc, char **argv)
{
	unsigned port = 8090, threads = 1, max_conns = 0; /* 0: fds allow */
	struct rlimit rl;
	sigset_t set;
	pthread_t timer;
	const union MHD_DaemonInfo *info;
	unsigned flags;
	int i, sig;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--quiet") == 0) {
			g.quiet = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (v == NULL) {
			usage(stderr);
			return 2;
		}
		i++;
		if (strcmp(a, "--port") == 0)
			port = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--delay-ms") == 0)
			g.delay_ms = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--threads") == 0)
			threads = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--max-conns") == 0)
			max_conns = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--echo-fields") == 0)
			g.echo_fields = v;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (threads < 1)
		threads = 1;

	/* 10,000 concurrent connections need 10,000+ descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (max_conns == 0 || rl.rlim_cur < (rlim_t)max_conns + 64)) {
		unsigned cap = rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64
						 : 64;

		if (max_conns != 0)
			fprintf(stderr,
				"fake_provider: RLIMIT_NOFILE %lu: at most %u"
				" connections\n",
				(unsigned long)rl.rlim_cur, cap);
		max_conns = cap;
	}
	if (max_conns == 0)
		max_conns = 100000;

	/* Signals go to the main thread's sigwait only. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (pthread_create(&timer, NULL, timer_main, NULL) != 0) {
		fprintf(stderr, "fake_provider: cannot start timer thread\n");
		return 1;
	}
	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_TURBO;
	g.d = MHD_start_daemon(
		flags, (uint16_t)port, NULL, NULL, on_request, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		MHD_OPTION_CONNECTION_LIMIT, max_conns,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0u,
		MHD_OPTION_CONNECTION_TIMEOUT, 120u,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 16384u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
		MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_END);
	if (g.d == NULL) {
		fprintf(stderr, "fake_provider: cannot listen on port %u\n",
			port);
		return 1;
	}
	info = MHD_get_daemon_info(g.d, MHD_DAEMON_INFO_BIND_PORT);
	if (info)
		port = info->port;
	printf("port %u\n", port);
	fflush(stdout);
	if (!g.quiet)
		fprintf(stderr,
			"fake_provider: listening on 127.0.0.1:%u, delay %u ms,"
			" %u thread(s), up to %u connections\n",
			port, g.delay_ms, threads, max_conns);

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigwait(&set, &sig);

	/* Resume every suspended connection so MHD can close them. */
	pthread_mutex_lock(&g.lock);
	g.stopping = 1;
	while (g.head) {
		struct req *rq = g.head;

		g.head = rq->next;
		rq->state = 2;
		MHD_resume_connection(rq->conn);
	}
	g.tail = NULL;
	pthread_cond_signal(&g.cond);
	pthread_mutex_unlock(&g.lock);
	pthread_join(timer, NULL);
	MHD_stop_daemon(g.d);
	if (!g.quiet)
		fprintf(stderr,
			"fake_provider: %ld requests, %ld answered, peak %ld"
			" suspended, peak %ld connections\n",
			atomic_load(&g.requests), atomic_load(&g.answered),
			atomic_load(&g.suspended_peak),
			atomic_load(&g.connections_peak));
	return 0;
}
