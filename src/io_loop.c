/*
 * io_loop.c - one thread, one libcurl multi handle, and a timer heap.
 *
 * Other threads queue requests, aborts and timers under a mutex and wake
 * the loop through an eventfd.  The loop puts each request in the waiting
 * queue of its lane, starts waiting transfers while their lane and the
 * global bound allow, drives them with libcurl's multi_socket API on
 * epoll, reports each finished one to its callback, and fires due timers.
 * The socket API costs the loop only the sockets that are ready: with
 * thousands of slow calls in flight, curl_multi_perform/poll would walk
 * every transfer and every socket on each wake-up.  Every transfer has a
 * connect and a total timeout, CURLOPT_NOSIGNAL, no redirects, and a cap
 * on the bytes read.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kiln/io_loop.h"
#include "kiln/log.h"
#include "kiln/netcheck.h"
#include "kiln/thread_name.h"

/* At most this many idle easy handles are kept (a few hundred KiB). */
#define SPARE_EASY 64

/* A lane opens a new connection for a waiting transfer only while it has
 * fewer than CONN_FLOOR, or once the transfers holding its connections
 * are slow (the oldest in flight for CONN_SLOW_MS) while this thread has
 * time to spare (it slept a quarter of the last CONN_SLOW_MS); then it
 * may double them once per CONN_SLOW_MS.  Otherwise the transfer waits
 * for one of them to come free.  Why: against a provider that answers at
 * once, a burst of claims opened a connection for each (1,000 in W1)
 * whenever this thread fell behind, and the connects made it fall
 * further behind, while the connections it had came free within a
 * millisecond.  A slow provider still gets one connection per call,
 * CONN_SLOW_MS later per doubling. */
#define CONN_FLOOR 64
#define CONN_SLOW_MS 10

struct transfer {
	struct kiln_http_request *req;
	kiln_io_done_fn done;
	void *ctx;
	uint64_t id;
	CURL *easy;
	struct kiln_http_response resp;
	char *refused; /* the address open_socket refused, or NULL */
	size_t body_cap;
	struct kiln_io_lane *lane;          /* set when it starts */
	int64_t started_ms;                 /* monotonic */
	struct transfer *next; /* queue link */
	/* In flight: its lane's list, oldest first. */
	struct transfer *lane_prev, *lane_next;
};

struct queue {
	struct transfer *head, *tail;
};

/* Loop thread only, but for next. */
struct kiln_io_lane {
	size_t limit, active;
	struct queue waiting;
	/* The connections its transfers opened that are still open, and
	 * how many it may hold before it must wait for one (CONN_FLOOR). */
	size_t conns, conn_cap;
	int64_t cap_raised_ms;
	struct transfer *oldest, *newest; /* in flight, by start */
	struct kiln_io *io;
	struct kiln_io_lane *next;
};

struct timer {
	int64_t due_ms; /* monotonic */
	uint64_t seq;   /* keeps equal due times in order */
	kiln_io_timer_fn fn;
	void *ctx;
};

struct kiln_io {
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;
	/* Under lock: */
	struct queue incoming;
	uint64_t *aborts;
	size_t n_aborts, cap_aborts;
	struct timer *timers; /* binary min-heap on (due_ms, seq) */
	size_t n_timers, cap_timers;
	uint64_t next_id, next_seq;
	size_t pending; /* submitted and not yet reported */
	int stopping;
	struct kiln_io_lane *lanes;
	int wake_sent; /* the eventfd was written since the loop last read it */
	/* Loop thread only: */
	int epfd, wakefd;
	int64_t curl_due_ms; /* libcurl's timeout (monotonic), -1 none */
	struct kiln_io_lane unlaned; /* requests without a lane */
	size_t active;
	size_t max_inflight;
	size_t idle_connections; /* 0: libcurl's own cache size */
	long cache_size;         /* CURLMOPT_MAXCONNECTS as last set */
	size_t conn_floor;       /* CONN_FLOOR, or as a test set it */
	int64_t conn_slow_ms;    /* CONN_SLOW_MS, or as a test set it */
	/* When a lane waiting for a connection may open more (-1: none). */
	int64_t conn_due_ms;
	/* The time this thread slept in epoll_wait in the window (of
	 * conn_slow_ms) that began at window_us, and whether it slept a
	 * quarter of the last whole window: it has time to spare. */
	int64_t window_us, window_slept_us;
	int has_spare_time;
	/* By descriptor: whether a socket is in the epoll set and libcurl
	 * watches it (on_socket). */
	unsigned char *watch;
	size_t n_watch;
	/* Aborts that found no transfer: the id may be reserved and about
	 * to be submitted (kiln_io_new_id), so remember the last few. */
	uint64_t unfound[64];
	size_t unfound_next;
	/* Easy handles of ended transfers, reset, for the next ones:
	 * creating and destroying one cost about 13,000 instructions a
	 * call, more than reusing it (libcurl recommends reuse). */
	CURL *spare[SPARE_EASY];
	size_t n_spare;
};

void kiln_http_request_free(struct kiln_http_request *req)
{
	if (req == NULL)
		return;
	free(req->method);
	free(req->url);
	free(req->body);
	if (!req->headers_borrowed)
		curl_slist_free_all(req->headers);
	free(req);
}

static void transfer_free(struct transfer *t)
{
	if (t->easy)
		curl_easy_cleanup(t->easy);
	kiln_http_request_free(t->req);
	free(t->resp.body);
	free(t->resp.content_type);
	free(t->refused);
	free(t);
}

static void queue_push(struct queue *q, struct transfer *t)
{
	t->next = NULL;
	if (q->tail)
		q->tail->next = t;
	else
		q->head = t;
	q->tail = t;
}

static struct transfer *queue_pop(struct queue *q)
{
	struct transfer *t = q->head;

	if (t) {
		q->head = t->next;
		if (q->head == NULL)
			q->tail = NULL;
		t->next = NULL;
	}
	return t;
}

/* Removes the transfer with id from q; NULL if it is not there. */
static struct transfer *queue_take(struct queue *q, uint64_t id)
{
	struct transfer *t, *prev = NULL;

	for (t = q->head; t; prev = t, t = t->next) {
		if (t->id != id)
			continue;
		if (prev)
			prev->next = t->next;
		else
			q->head = t->next;
		if (q->tail == t)
			q->tail = prev;
		t->next = NULL;
		return t;
	}
	return NULL;
}

/* ---- Retry-After ------------------------------------------------------ */

long kiln_parse_retry_after(const char *v, int64_t now_ms)
{
	const char *p;
	long secs = 0;
	time_t when;

	while (*v == ' ' || *v == '\t')
		v++;
	if (isdigit((unsigned char)*v)) {
		for (p = v; isdigit((unsigned char)*p); p++) {
			if (secs > 10L * 365 * 86400)
				break;
			secs = secs * 10 + (*p - '0');
		}
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		return *p == '\0' ? secs * 1000 : -1;
	}
	when = curl_getdate(v, NULL);
	if (when == (time_t)-1)
		return -1;
	/* From now in ms, not in whole seconds: a date names a second's
	 * start, and the retry should not land up to a second after it. */
	return (int64_t)when * 1000 > now_ms
		       ? (long)((int64_t)when * 1000 - now_ms)
		       : 0;
}

/* ---- curl callbacks --------------------------------------------------- */

static size_t on_header(char *data, size_t size, size_t nmemb, void *p)
{
	static const char name[] = "retry-after:";
	struct transfer *t = p;
	size_t n = size * nmemb;
	char value[128];

	if (n > sizeof(name) - 1 && n - (sizeof(name) - 1) < sizeof(value) &&
	    strncasecmp(data, name, sizeof(name) - 1) == 0) {
		memcpy(value, data + sizeof(name) - 1, n - (sizeof(name) - 1));
		value[n - (sizeof(name) - 1)] = '\0';
		t->resp.retry_after_ms =
			kiln_parse_retry_after(value, kiln_now_ms());
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *p)
{
	struct transfer *t = p;
	size_t n = size * nmemb;
	size_t max = t->req->max_response_bytes;

	if (max && t->resp.body_len + n > max) {
		t->resp.is_too_big = 1;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (t->req->sink) {
		if (t->req->sink(t->req->sink_ctx, data, n) != 0)
			return 0;
		t->resp.body_len += n;
		return n;
	}
	if (t->resp.body_len + n + 1 > t->body_cap) {
		size_t cap = t->body_cap ? t->body_cap : 4096;
		char *nb;

		while (cap < t->resp.body_len + n + 1)
			cap *= 2;
		nb = realloc(t->resp.body, cap);
		if (nb == NULL)
			return 0;
		t->resp.body = nb;
		t->body_cap = cap;
	}
	memcpy(t->resp.body + t->resp.body_len, data, n);
	t->resp.body_len += n;
	t->resp.body[t->resp.body_len] = '\0';
	return n;
}

/* What the loop knows of a socket, by descriptor (io->watch). */
enum {
	WATCH_IN = 1,      /* in the epoll set for EPOLLIN */
	WATCH_OUT = 2,     /* ... for EPOLLOUT */
	WATCH_ADDED = 4,   /* in the epoll set */
	WATCH_WANTED = 8,  /* libcurl watches it */
};

/* io->watch[s], grown as needed; NULL if out of memory. */
static unsigned char *watch_of(struct kiln_io *io, curl_socket_t s)
{
	if ((size_t)s >= io->n_watch) {
		size_t n = io->n_watch ? io->n_watch : 1024;
		unsigned char *grown;

		while (n <= (size_t)s)
			n *= 2;
		grown = realloc(io->watch, n);
		if (grown == NULL)
			return NULL;
		memset(grown + io->n_watch, 0, n - io->n_watch);
		io->watch = grown;
		io->n_watch = n;
	}
	return &io->watch[s];
}

/* A socket open_socket made, or is about to close, is in no epoll set. */
static void watch_forget(struct kiln_io *io, curl_socket_t s)
{
	if (s >= 0 && (size_t)s < io->n_watch)
		io->watch[s] = 0;
}

/* Opens a connection's socket, counted in its lane; for a request with
 * public_only, only to a public address (otherwise the transfer fails
 * with is_refused). */
static curl_socket_t open_socket(void *p, curlsocktype purpose,
				 struct curl_sockaddr *a)
{
	struct transfer *t = p;
	char addr[INET6_ADDRSTRLEN];
	curl_socket_t s;

	if (purpose == CURLSOCKTYPE_IPCXN && t->req->public_only &&
	    !kiln_addr_is_public(&a->addr)) {
		kiln_addr_format(&a->addr, addr, sizeof(addr));
		t->resp.is_refused = 1;
		/* The message is made at the end: curl writes its own
		 * into the error buffer meanwhile. */
		free(t->refused);
		t->refused = strdup(addr);
		return CURL_SOCKET_BAD;
	}
	s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (s != CURL_SOCKET_BAD) {
		t->lane->conns++;
		/* The number may have been an old socket's. */
		watch_forget(t->lane->io, s);
	}
	return s;
}

/* Closes a socket open_socket opened.  p is the lane of the transfer that
 * opened it: libcurl keeps it with the connection, which may outlive that
 * transfer in the cache. */
static int close_socket(void *p, curl_socket_t s)
{
	struct kiln_io_lane *lane = p;

	if (lane->conns > 0)
		lane->conns--;
	watch_forget(lane->io, s); /* closing takes it out of the set */
	return close(s);
}

static CURL *easy_get(struct kiln_io *io)
{
	return io->n_spare > 0 ? io->spare[--io->n_spare] : curl_easy_init();
}

/* Takes the easy handle of t (removed from the multi handle, if it was
 * ever added), to be reused as new. */
static void easy_put(struct kiln_io *io, struct transfer *t)
{
	if (t->easy == NULL)
		return;
	if (io->n_spare < SPARE_EASY) {
		curl_easy_reset(t->easy);
		io->spare[io->n_spare++] = t->easy;
	} else {
		curl_easy_cleanup(t->easy);
	}
	t->easy = NULL;
}

static int transfer_setup(struct kiln_io *io, struct transfer *t)
{
	struct kiln_http_request *r = t->req;
	CURL *e = easy_get(io);

	if (e == NULL)
		return -1;
	t->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->resp.error);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "kilnd/" KILN_VERSION);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, t->lane);
	/* public_only is checked on the address actually connected to,
	 * after DNS, so a name that rebinds to a private address is caught;
	 * no proxy, so the address checked is the receiver's. */
	if (r->public_only)
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	/* API answers are small; libcurl's 16 KiB default receive buffer
	 * per transfer is most of the memory 10,000 calls in flight take.
	 * Downloads keep the default. */
	if (r->sink == NULL)
		curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
	if (r->method == NULL || strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
		if (r->body) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)r->body_len);
		}
	}
	return 0;
}

/* ---- reporting -------------------------------------------------------- */

static void report(struct kiln_io *io, struct transfer *t)
{
	if (t->resp.body == NULL) {
		t->resp.body = calloc(1, 1);
		t->resp.body_len = t->req->sink ? t->resp.body_len : 0;
	}
	t->done(t->ctx, &t->resp);
	easy_put(io, t);
	transfer_free(t);
	pthread_mutex_lock(&io->lock);
	io->pending--;
	pthread_mutex_unlock(&io->lock);
}

static void finish(struct kiln_io *io, struct transfer *t, CURLcode code)
{
	char *ct = NULL;
	curl_off_t total_us = 0;

	t->resp.curl_code = code;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->resp.status);
	curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us);
	t->resp.total_ms = (long)(total_us / 1000);
	if (ct)
		t->resp.content_type = strdup(ct);
	if (t->resp.is_refused)
		snprintf(t->resp.error, sizeof(t->resp.error),
			 "refused to connect to %s: a loopback, private or"
			 " reserved address (webhooks.allow_private_networks"
			 " is off)",
			 t->refused ? t->refused : "an address");
	else if (code != CURLE_OK && t->resp.error[0] == '\0')
		kiln_strlcpy(t->resp.error, curl_easy_strerror(code),
			     sizeof(t->resp.error));
	report(io, t);
}

/* ---- admission -------------------------------------------------------- */

static struct kiln_io_lane *lane_of(struct kiln_io *io, struct transfer *t)
{
	return t->req->lane ? t->req->lane : &io->unlaned;
}

/* libcurl's connection cache holds 4 connections per transfer in
 * progress, and as each transfer ends it closes the oldest idle one
 * beyond that: every lull closed the connections of the burst before it,
 * and the next burst paid for new handshakes (TCP, and TLS for https).  W1
 * opened 957 connections for 6,000 calls.  So the cache never shrinks
 * below idle_connections (94 connections in W1).  Above it the rule stays
 * libcurl's: a fixed size under thousands of connections in use makes
 * every transfer's end close one, each after a scan of the whole cache. */
static void size_cache(struct kiln_io *io)
{
	long want = (long)(io->active * 4);

	if (io->idle_connections == 0)
		return;
	if (want < (long)io->idle_connections)
		want = (long)io->idle_connections;
	if (want != io->cache_size) {
		curl_multi_setopt(io->multi, CURLMOPT_MAXCONNECTS, want);
		io->cache_size = want;
	}
}

static void activate(struct kiln_io *io, struct transfer *t)
{
	struct kiln_io_lane *lane = lane_of(io, t);

	t->lane = lane;
	if (transfer_setup(io, t) != 0 ||
	    curl_multi_add_handle(io->multi, t->easy) != CURLM_OK) {
		kiln_strlcpy(t->resp.error, "cannot start transfer",
			     sizeof(t->resp.error));
		finish(io, t, CURLE_FAILED_INIT);
		return;
	}
	lane->active++;
	io->active++;
	size_cache(io);
	t->started_ms = kiln_mono_ms();
	t->lane_prev = lane->newest;
	if (lane->newest)
		lane->newest->lane_next = t;
	else
		lane->oldest = t;
	lane->newest = t;
}

/* The connections the lane holds: each transfer in flight holds one, or
 * is opening one that open_socket has not counted yet; the rest are idle
 * in libcurl's cache. */
static size_t lane_held(const struct kiln_io_lane *lane)
{
	return lane->active > lane->conns ? lane->active : lane->conns;
}

/* Whether the lane's next waiting transfer has a connection to start on
 * (CONN_FLOOR): an idle one, or room for one more.  Otherwise notes in
 * io->conn_due_ms when the lane may open more. */
static int has_connection(struct kiln_io *io, struct kiln_io_lane *lane,
			  int64_t now)
{
	size_t held = lane_held(lane);
	int64_t due;

	if (lane->active < lane->conns || held < lane->conn_cap)
		return 1;
	/* lane->oldest is set: held >= conn_cap >= 1 and none is idle. */
	due = lane->oldest->started_ms + io->conn_slow_ms;
	if (due < lane->cap_raised_ms + io->conn_slow_ms)
		due = lane->cap_raised_ms + io->conn_slow_ms;
	/* The calls holding the connections are slow, and not because
	 * this thread is behind on them (it has time to spare): more. */
	if (due <= now && io->has_spare_time) {
		lane->conn_cap = held * 2;
		lane->cap_raised_ms = now;
		return 1;
	}
	/* Busy: look again in a while. */
	if (due <= now)
		due = now + 1;
	if (io->conn_due_ms < 0 || due < io->conn_due_ms)
		io->conn_due_ms = due;
	return 0;
}

static void admit_lane(struct kiln_io *io, struct kiln_io_lane *lane,
		       int64_t now)
{
	while (lane->waiting.head && lane->active < lane->limit &&
	       io->active < io->max_inflight &&
	       has_connection(io, lane, now))
		activate(io, queue_pop(&lane->waiting));
	/* With nothing left waiting, the cap comes back down to what the
	 * lane holds: more takes slow calls again. */
	if (lane->waiting.head == NULL) {
		size_t held = lane_held(lane);

		lane->conn_cap = held > io->conn_floor ? held : io->conn_floor;
	}
}

static void admit(struct kiln_io *io)
{
	struct kiln_io_lane *lane;
	int64_t now = kiln_mono_ms();

	io->conn_due_ms = -1;
	admit_lane(io, &io->unlaned, now);
	pthread_mutex_lock(&io->lock);
	lane = io->lanes;
	pthread_mutex_unlock(&io->lock);
	/* Lanes are only ever prepended, so this walk is safe unlocked. */
	for (; lane && io->active < io->max_inflight; lane = lane->next)
		admit_lane(io, lane, now);
}

static void unlink_active(struct kiln_io *io, struct transfer *t)
{
	if (t->lane_prev)
		t->lane_prev->lane_next = t->lane_next;
	else
		t->lane->oldest = t->lane_next;
	if (t->lane_next)
		t->lane_next->lane_prev = t->lane_prev;
	else
		t->lane->newest = t->lane_prev;
	t->lane_prev = t->lane_next = NULL;
	t->lane->active--;
	io->active--;
	size_cache(io);
}

static void reap_finished(struct kiln_io *io)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(io->multi, &left)) != NULL) {
		struct transfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
		curl_multi_remove_handle(io->multi, msg->easy_handle);
		unlink_active(io, t);
		finish(io, t, msg->data.result);
	}
}

/* ---- aborts ----------------------------------------------------------- */

/* The transfer with id in flight on lane, or NULL. */
static struct transfer *in_flight(struct kiln_io_lane *lane, uint64_t id)
{
	struct transfer *t;

	for (t = lane->oldest; t; t = t->lane_next)
		if (t->id == id)
			return t;
	return NULL;
}

static void abort_one(struct kiln_io *io, uint64_t id)
{
	struct kiln_io_lane *lanes, *lane;
	struct transfer *t = in_flight(&io->unlaned, id);

	pthread_mutex_lock(&io->lock);
	lanes = io->lanes;
	pthread_mutex_unlock(&io->lock);
	for (lane = lanes; t == NULL && lane; lane = lane->next)
		t = in_flight(lane, id);
	if (t) {
		curl_multi_remove_handle(io->multi, t->easy);
		unlink_active(io, t);
		t->resp.is_aborted = 1;
		report(io, t);
		return;
	}
	t = queue_take(&io->unlaned.waiting, id);
	for (lane = lanes; t == NULL && lane; lane = lane->next)
		t = queue_take(&lane->waiting, id);
	if (t) {
		t->resp.is_aborted = 1;
		report(io, t);
		return;
	}
	io->unfound[io->unfound_next++ % 64] = id;
}

/* 1 (and forgotten) if id was aborted before it was submitted. */
static int was_aborted_early(struct kiln_io *io, uint64_t id)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (io->unfound[i] == id) {
			io->unfound[i] = 0;
			return 1;
		}
	return 0;
}

/* ---- timers ----------------------------------------------------------- */

static int timer_before(const struct timer *a, const struct timer *b)
{
	return a->due_ms < b->due_ms ||
	       (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void heap_push(struct kiln_io *io, struct timer t)
{
	size_t i = io->n_timers++;

	io->timers[i] = t;
	while (i > 0 && timer_before(&io->timers[i], &io->timers[(i - 1) / 2])) {
		struct timer tmp = io->timers[i];

		io->timers[i] = io->timers[(i - 1) / 2];
		io->timers[(i - 1) / 2] = tmp;
		i = (i - 1) / 2;
	}
}

static struct timer heap_pop(struct kiln_io *io)
{
	struct timer top = io->timers[0];
	size_t i = 0;

	io->timers[0] = io->timers[--io->n_timers];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct timer tmp;

		if (l < io->n_timers && timer_before(&io->timers[l], &io->timers[m]))
			m = l;
		if (r < io->n_timers && timer_before(&io->timers[r], &io->timers[m]))
			m = r;
		if (m == i)
			break;
		tmp = io->timers[i];
		io->timers[i] = io->timers[m];
		io->timers[m] = tmp;
		i = m;
	}
	return top;
}

/* Fires the timers due now that were set before this call; returns ms
 * until the next one (0: one is due already), at most max_wait.  A timer
 * set meanwhile waits for the next turn, so one that sets itself again
 * at once cannot keep the loop from its sockets. */
static int fire_timers(struct kiln_io *io, int max_wait)
{
	uint64_t set_before;

	pthread_mutex_lock(&io->lock);
	set_before = io->next_seq;
	pthread_mutex_unlock(&io->lock);
	for (;;) {
		int64_t now = kiln_mono_ms();
		struct timer t;

		pthread_mutex_lock(&io->lock);
		if (io->n_timers == 0 || io->timers[0].due_ms > now ||
		    io->timers[0].seq >= set_before) {
			int64_t wait = io->n_timers
					       ? io->timers[0].due_ms - now
					       : max_wait;

			pthread_mutex_unlock(&io->lock);
			if (wait < 0)
				wait = 0;
			return wait < max_wait ? (int)wait : max_wait;
		}
		t = heap_pop(io);
		pthread_mutex_unlock(&io->lock);
		t.fn(t.ctx, 0);
	}
}

/* ---- the loop --------------------------------------------------------- */

static void take_incoming(struct kiln_io *io)
{
	struct queue in;
	uint64_t *aborts;
	size_t n_aborts, i;
	struct transfer *t;

	pthread_mutex_lock(&io->lock);
	in = io->incoming;
	io->incoming.head = io->incoming.tail = NULL;
	aborts = io->aborts;
	n_aborts = io->n_aborts;
	io->aborts = NULL;
	io->n_aborts = io->cap_aborts = 0;
	pthread_mutex_unlock(&io->lock);
	while ((t = queue_pop(&in)) != NULL) {
		if (was_aborted_early(io, t->id)) {
			t->resp.is_aborted = 1;
			report(io, t);
			continue;
		}
		queue_push(&lane_of(io, t)->waiting, t);
	}
	for (i = 0; i < n_aborts; i++)
		abort_one(io, aborts[i]);
	free(aborts);
}

static void abandon_queue(struct kiln_io *io, struct queue *q)
{
	struct transfer *t;

	while ((t = queue_pop(q)) != NULL) {
		t->resp.is_shutdown = 1;
		report(io, t);
	}
}

/* Ends the lane's transfers in flight with is_shutdown. */
static void abandon_in_flight(struct kiln_io *io, struct kiln_io_lane *lane)
{
	struct transfer *t;

	while ((t = lane->oldest) != NULL) {
		curl_multi_remove_handle(io->multi, t->easy);
		unlink_active(io, t);
		t->resp.is_shutdown = 1;
		report(io, t);
	}
}

static void abandon_all(struct kiln_io *io)
{
	struct kiln_io_lane *lane;

	abandon_in_flight(io, &io->unlaned);
	for (lane = io->lanes; lane; lane = lane->next)
		abandon_in_flight(io, lane);
	take_incoming(io);
	abandon_queue(io, &io->unlaned.waiting);
	for (lane = io->lanes; lane; lane = lane->next)
		abandon_queue(io, &lane->waiting);
	pthread_mutex_lock(&io->lock);
	while (io->n_timers > 0) {
		struct timer tm = heap_pop(io);

		pthread_mutex_unlock(&io->lock);
		tm.fn(tm.ctx, 1);
		pthread_mutex_lock(&io->lock);
	}
	pthread_mutex_unlock(&io->lock);
}

/*
 * libcurl: watch s for what (CURLMOPT_SOCKETFUNCTION).
 *
 * A socket libcurl stops watching stays in the epoll set: that is a
 * connection going back to the cache between two calls, and the next
 * call on it watches it again, so taking it out and putting it back cost
 * two epoll_ctl calls per transfer.  Should it become ready meanwhile
 * (the server closed it), wait_and_drive takes it out then.
 */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	struct kiln_io *io = userp;
	struct epoll_event ev = {0};
	unsigned char *w = watch_of(io, s), bits;

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		if (w != NULL)
			*w &= (unsigned char)~WATCH_WANTED;
		else
			epoll_ctl(io->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	bits = (unsigned char)(((what & CURL_POLL_IN) ? WATCH_IN : 0) |
			       ((what & CURL_POLL_OUT) ? WATCH_OUT : 0));
	if (w != NULL && (*w & WATCH_ADDED) &&
	    (*w & (WATCH_IN | WATCH_OUT)) == bits) {
		*w |= WATCH_WANTED;
		return 0;
	}
	ev.events = ((bits & WATCH_IN) ? EPOLLIN : 0) |
		    ((bits & WATCH_OUT) ? EPOLLOUT : 0);
	ev.data.fd = s;
	if (epoll_ctl(io->epfd,
		      w != NULL && (*w & WATCH_ADDED) ? EPOLL_CTL_MOD
						      : EPOLL_CTL_ADD,
		      s, &ev) != 0) {
		int rc = -1;

		/* Out of step with the epoll set (memory ran out). */
		if (errno == EEXIST)
			rc = epoll_ctl(io->epfd, EPOLL_CTL_MOD, s, &ev);
		else if (errno == ENOENT)
			rc = epoll_ctl(io->epfd, EPOLL_CTL_ADD, s, &ev);
		/* Otherwise the transfer ends at its timeout. */
		if (rc != 0) {
			kiln_log(KILN_LOG_ERROR,
				 "I/O loop cannot watch socket %d: %s", (int)s,
				 strerror(errno));
			if (w != NULL)
				*w = 0;
			return 0;
		}
	}
	if (w != NULL)
		*w = (unsigned char)(bits | WATCH_ADDED | WATCH_WANTED);
	return 0;
}

/* libcurl: call back in timeout_ms (CURLMOPT_TIMERFUNCTION); -1 none. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct kiln_io *io = userp;

	(void)multi;
	io->curl_due_ms = timeout_ms < 0 ? -1 : kiln_mono_ms() + timeout_ms;
	return 0;
}

static void curl_timeout_if_due(struct kiln_io *io)
{
	int running;

	if (io->curl_due_ms >= 0 && io->curl_due_ms <= kiln_mono_ms()) {
		io->curl_due_ms = -1;
		curl_multi_socket_action(io->multi, CURL_SOCKET_TIMEOUT, 0,
					 &running);
	}
}

/* Sleeps until a socket is ready, a timer is due or another thread
 * wakes the loop, then drives the ready sockets. */
static void wait_and_drive(struct kiln_io *io, int wait_ms)
{
	struct epoll_event evs[128];
	int64_t now = kiln_mono_ms(), before_us, after_us;
	int n, i, running;

	if (io->curl_due_ms >= 0 && io->curl_due_ms - now < wait_ms)
		wait_ms = io->curl_due_ms > now ? (int)(io->curl_due_ms - now)
						: 0;
	if (io->conn_due_ms >= 0 && io->conn_due_ms - now < wait_ms)
		wait_ms = io->conn_due_ms > now ? (int)(io->conn_due_ms - now)
						: 0;
	before_us = kiln_mono_us();
	n = epoll_wait(io->epfd, evs, sizeof(evs) / sizeof(evs[0]), wait_ms);
	after_us = kiln_mono_us();
	/* Asleep for at most the timeout: past it, the thread was waiting
	 * for a CPU, which is no time to spare. */
	io->window_slept_us += after_us - before_us < (int64_t)wait_ms * 1000
				       ? after_us - before_us
				       : (int64_t)wait_ms * 1000;
	if (after_us - io->window_us >= io->conn_slow_ms * 1000) {
		io->has_spare_time =
			io->window_slept_us * 4 >= after_us - io->window_us;
		io->window_us = after_us;
		io->window_slept_us = 0;
	}
	for (i = 0; i < n; i++) {
		int mask = 0;

		if (evs[i].data.fd == io->wakefd) {
			uint64_t v;

			/* Read, then clear: a wake() in between finds the
			 * flag set and writes nothing, and what it queued
			 * is taken on the next turn anyway. */
			if (read(io->wakefd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				kiln_log(KILN_LOG_WARN, "I/O loop wake-up: %s",
					 strerror(errno));
			pthread_mutex_lock(&io->lock);
			io->wake_sent = 0;
			pthread_mutex_unlock(&io->lock);
			continue;
		}
		if (evs[i].data.fd >= 0 &&
		    (size_t)evs[i].data.fd < io->n_watch &&
		    !(io->watch[evs[i].data.fd] & WATCH_WANTED)) {
			/* An idle connection in libcurl's cache: closed by
			 * the server, most likely.  libcurl finds out when it
			 * next picks it; until then, not watched. */
			epoll_ctl(io->epfd, EPOLL_CTL_DEL, evs[i].data.fd, NULL);
			io->watch[evs[i].data.fd] = 0;
			continue;
		}
		if (evs[i].events & EPOLLIN)
			mask |= CURL_CSELECT_IN;
		if (evs[i].events & EPOLLOUT)
			mask |= CURL_CSELECT_OUT;
		if (evs[i].events & (EPOLLERR | EPOLLHUP))
			mask |= CURL_CSELECT_ERR;
		curl_multi_socket_action(io->multi, evs[i].data.fd, mask,
					 &running);
	}
}

static void *io_main(void *p)
{
	struct kiln_io *io = p;

	for (;;) {
		int stopping;

		pthread_mutex_lock(&io->lock);
		stopping = io->stopping;
		pthread_mutex_unlock(&io->lock);
		if (stopping)
			break;
		take_incoming(io);
		admit(io);
		curl_timeout_if_due(io);
		reap_finished(io);
		admit(io);
		wait_and_drive(io, fire_timers(io, 1000));
		reap_finished(io);
	}
	abandon_all(io);
	return NULL;
}

/* Under io->lock, after queueing something for the loop: whether the
 * caller must write the eventfd (once until the loop has looked). */
static int wake_due_locked(struct kiln_io *io)
{
	int due = !io->wake_sent;

	io->wake_sent = 1;
	return due;
}

/* Wakes the loop; outside io->lock. */
static void wake(struct kiln_io *io, int due)
{
	static const uint64_t one = 1;

	if (due && write(io->wakefd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		kiln_log(KILN_LOG_ERROR, "cannot wake the I/O loop: %s",
			 strerror(errno));
}

/* ---- public ----------------------------------------------------------- */

enum kiln_rc kiln_io_start(size_t max_inflight, size_t idle_connections,
			   struct kiln_io **out, struct kiln_err *err)
{
	struct kiln_io *io = calloc(1, sizeof(*io));

	if (io == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	io->multi = curl_multi_init();
	if (io->multi == NULL) {
		free(io);
		return kiln_err_set(err, KILN_EIO, "", "curl_multi_init failed");
	}
	io->max_inflight = max_inflight ? max_inflight : 10000;
	io->unlaned.limit = (size_t)-1;
	io->unlaned.io = io;
	io->conn_floor = CONN_FLOOR;
	io->conn_slow_ms = CONN_SLOW_MS;
	io->conn_due_ms = -1;
	io->unlaned.conn_cap = CONN_FLOOR;
	io->next_id = 1;
	io->curl_due_ms = -1;
	io->epfd = epoll_create1(EPOLL_CLOEXEC);
	io->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->epfd >= 0 && io->wakefd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN};

		ev.data.fd = io->wakefd;
		if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->wakefd, &ev) != 0) {
			close(io->wakefd);
			io->wakefd = -1;
		}
	}
	if (io->epfd < 0 || io->wakefd < 0) {
		int e = errno;

		if (io->epfd >= 0)
			close(io->epfd);
		if (io->wakefd >= 0)
			close(io->wakefd);
		curl_multi_cleanup(io->multi);
		free(io);
		return kiln_err_set(err, KILN_EIO, "",
				    "cannot set up the I/O loop: %s",
				    strerror(e));
	}
	curl_multi_setopt(io->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	io->idle_connections = idle_connections;
	size_cache(io);
	curl_multi_setopt(io->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(io->multi, CURLMOPT_SOCKETDATA, io);
	curl_multi_setopt(io->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(io->multi, CURLMOPT_TIMERDATA, io);
	pthread_mutex_init(&io->lock, NULL);
	if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
		curl_multi_cleanup(io->multi);
		close(io->epfd);
		close(io->wakefd);
		pthread_mutex_destroy(&io->lock);
		free(io);
		return kiln_err_set(err, KILN_EIO, "", "cannot start I/O thread");
	}
	kiln_thread_name(io->thread, "kiln-io");
	*out = io;
	return KILN_OK;
}

struct kiln_io_lane *kiln_io_lane(struct kiln_io *io, size_t limit)
{
	struct kiln_io_lane *lane = calloc(1, sizeof(*lane));

	if (lane == NULL)
		return NULL;
	lane->limit = limit ? limit : 1;
	lane->io = io;
	lane->conn_cap = io->conn_floor;
	pthread_mutex_lock(&io->lock);
	lane->next = io->lanes;
	io->lanes = lane;
	pthread_mutex_unlock(&io->lock);
	return lane;
}

void kiln_io_set_conn_floor(struct kiln_io *io, size_t floor,
			    int64_t slow_ms)
{
	struct kiln_io_lane *lane;

	io->conn_floor = floor ? floor : 1;
	io->conn_slow_ms = slow_ms;
	io->unlaned.conn_cap = io->conn_floor;
	pthread_mutex_lock(&io->lock);
	for (lane = io->lanes; lane; lane = lane->next)
		lane->conn_cap = io->conn_floor;
	pthread_mutex_unlock(&io->lock);
}

uint64_t kiln_io_new_id(struct kiln_io *io)
{
	uint64_t id;

	pthread_mutex_lock(&io->lock);
	id = io->next_id++;
	pthread_mutex_unlock(&io->lock);
	return id;
}

uint64_t kiln_io_submit(struct kiln_io *io, struct kiln_http_request *req,
			kiln_io_done_fn done, void *ctx)
{
	return kiln_io_submit_as(io, 0, req, done, ctx);
}

uint64_t kiln_io_submit_as(struct kiln_io *io, uint64_t id,
			   struct kiln_http_request *req, kiln_io_done_fn done,
			   void *ctx)
{
	struct transfer *t = calloc(1, sizeof(*t));
	int due;

	if (t == NULL) {
		struct kiln_http_response r = {.is_shutdown = 1};

		kiln_http_request_free(req);
		done(ctx, &r);
		return 0;
	}
	t->req = req;
	t->done = done;
	t->ctx = ctx;
	t->resp.retry_after_ms = -1;
	pthread_mutex_lock(&io->lock);
	if (io->stopping) {
		pthread_mutex_unlock(&io->lock);
		t->resp.is_shutdown = 1;
		done(ctx, &t->resp);
		transfer_free(t);
		return 0;
	}
	if (id == 0)
		id = io->next_id++;
	t->id = id;
	queue_push(&io->incoming, t);
	io->pending++;
	due = wake_due_locked(io);
	pthread_mutex_unlock(&io->lock);
	wake(io, due);
	return id;
}

void kiln_io_abort(struct kiln_io *io, uint64_t id)
{
	int due;

	pthread_mutex_lock(&io->lock);
	if (io->n_aborts == io->cap_aborts) {
		size_t cap = io->cap_aborts ? io->cap_aborts * 2 : 16;
		uint64_t *grown = realloc(io->aborts, cap * sizeof(*grown));

		if (grown == NULL) {
			pthread_mutex_unlock(&io->lock);
			kiln_log(KILN_LOG_ERROR, "out of memory aborting a"
						 " transfer");
			return;
		}
		io->aborts = grown;
		io->cap_aborts = cap;
	}
	io->aborts[io->n_aborts++] = id;
	due = wake_due_locked(io);
	pthread_mutex_unlock(&io->lock);
	wake(io, due);
}

int kiln_io_after(struct kiln_io *io, int64_t delay_ms, kiln_io_timer_fn fn,
		  void *ctx)
{
	struct timer t = {kiln_mono_ms() + (delay_ms > 0 ? delay_ms : 0), 0,
			  fn, ctx};
	int due;

	pthread_mutex_lock(&io->lock);
	if (io->stopping) {
		pthread_mutex_unlock(&io->lock);
		fn(ctx, 1);
		return -1;
	}
	if (io->n_timers == io->cap_timers) {
		size_t cap = io->cap_timers ? io->cap_timers * 2 : 64;
		struct timer *grown = realloc(io->timers, cap * sizeof(*grown));

		if (grown == NULL) {
			pthread_mutex_unlock(&io->lock);
			fn(ctx, 1);
			return -1;
		}
		io->timers = grown;
		io->cap_timers = cap;
	}
	t.seq = io->next_seq++;
	heap_push(io, t);
	due = wake_due_locked(io);
	pthread_mutex_unlock(&io->lock);
	wake(io, due);
	return 0;
}

size_t kiln_io_inflight(struct kiln_io *io)
{
	size_t n;

	pthread_mutex_lock(&io->lock);
	n = io->pending;
	pthread_mutex_unlock(&io->lock);
	return n;
}

void kiln_io_stop(struct kiln_io *io)
{
	int was_stopping, due;

	if (io == NULL)
		return;
	pthread_mutex_lock(&io->lock);
	was_stopping = io->stopping;
	io->stopping = 1;
	due = wake_due_locked(io);
	pthread_mutex_unlock(&io->lock);
	if (was_stopping)
		return;
	wake(io, due);
	pthread_join(io->thread, NULL);
}

void kiln_io_free(struct kiln_io *io)
{
	struct kiln_io_lane *lane;

	if (io == NULL)
		return;
	kiln_io_stop(io);
	while (io->n_spare > 0)
		curl_easy_cleanup(io->spare[--io->n_spare]);
	curl_multi_cleanup(io->multi);
	while ((lane = io->lanes) != NULL) {
		io->lanes = lane->next;
		free(lane);
	}
	free(io->timers);
	free(io->watch);
	free(io->aborts);
	close(io->epfd);
	close(io->wakefd);
	pthread_mutex_destroy(&io->lock);
	free(io);
}
