/*
 * io_loop.h - outbound HTTP on one libcurl multi handle driven by one
 * thread, plus the timers that pace retries and polls.
 *
 * Thousands of slow transfers cost a socket and a few kilobytes each, not a
 * thread.  Connections are reused per host by the multi handle's
 * connection cache.  In-flight transfers are bounded globally
 * (max_inflight) and per lane (a provider's concurrency); the rest wait in
 * order.
 */
#ifndef KILN_IO_LOOP_H
#define KILN_IO_LOOP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/common.h"

struct kiln_io;
struct kiln_io_lane;

/* Streams a response body somewhere else than memory (artifact files).
 * Returns 0 to go on, -1 to abort the transfer (CURLE_WRITE_ERROR). */
typedef int (*kiln_io_sink_fn)(void *ctx, const char *data, size_t len);

/* A request to send.  All strings are owned by the request and freed by
 * the loop after the transfer. */
struct kiln_http_request {
	char *method;              /* "POST", "PUT", "GET", ...; NULL = POST */
	char *url;
	char *body;                /* NULL = none */
	size_t body_len;
	struct curl_slist *headers;
	int headers_borrowed;      /* headers are not the request's to free */
	long connect_timeout_ms;
	long timeout_ms;           /* total */
	size_t max_response_bytes; /* the answer is cut off (error) past this */
	struct kiln_io_lane *lane; /* NULL = only the global bound */
	kiln_io_sink_fn sink;      /* NULL = keep the body in memory */
	void *sink_ctx;
	int public_only;           /* refuse private addresses (webhooks) */
};

/* What came back.  Borrowed by the callback for its duration. */
struct kiln_http_response {
	int is_shutdown;  /* 1: the loop is stopping; no transfer happened */
	int is_aborted;   /* 1: kiln_io_abort stopped it */
	CURLcode curl_code;
	long status;      /* HTTP status, 0 if none */
	char *body;       /* NUL-terminated ("" with a sink) */
	size_t body_len;
	int is_too_big;   /* body passed max_response_bytes */
	char *content_type; /* NULL if none */
	long retry_after_ms; /* from a Retry-After header, -1 if none */
	long total_ms;
	int is_refused;   /* public_only and the address was not public */
	char error[CURL_ERROR_SIZE];
};

/* Called exactly once per submitted request, on the loop's thread (keep it
 * short: hand the work to the pool), or with is_shutdown set. */
typedef void (*kiln_io_done_fn)(void *ctx,
				const struct kiln_http_response *resp);
/* A timer's callback, on the loop's thread; is_shutdown when the loop
 * stops before it is due. */
typedef void (*kiln_io_timer_fn)(void *ctx, int is_shutdown);

/* The connections a loop's cache keeps open by default (all hosts
 * together) when fewer transfers are in progress. */
#define KILN_IO_IDLE_CONNECTIONS 256

/* A loop of at most max_inflight transfers at once.  Its connection cache
 * holds idle_connections, or 4 per transfer in progress if that is more,
 * and closes the oldest idle connection beyond it; 0 leaves the size to
 * libcurl (4 per transfer in progress). */
enum kiln_rc kiln_io_start(size_t max_inflight, size_t idle_connections,
			   struct kiln_io **out,
			   struct kiln_err *err) KILN_WARN_UNUSED;

/* A lane of at most limit transfers at once; lives as long as the loop. */
struct kiln_io_lane *kiln_io_lane(struct kiln_io *io, size_t limit);

/* A lane's transfers wait for one of its connections to come free rather
 * than open more than floor (default 64), until the oldest in flight has
 * taken slow_ms (default 10) while the loop's thread has time to spare;
 * the lane may then double its connections once per slow_ms.  For tests;
 * call before the first submit. */
void kiln_io_set_conn_floor(struct kiln_io *io, size_t floor,
			    int64_t slow_ms);

/* Queues req (consumed in all cases).  Returns the transfer's id (> 0), or
 * 0 if the loop is stopping (done is then called with is_shutdown before
 * returning). */
uint64_t kiln_io_submit(struct kiln_io *io, struct kiln_http_request *req,
			kiln_io_done_fn done, void *ctx);

/* Reserves the id the next kiln_io_submit_as will use: a caller that must
 * know the id before the callback can run (to abort it later) takes it
 * first, since the callback may run before kiln_io_submit returns. */
uint64_t kiln_io_new_id(struct kiln_io *io);
/* kiln_io_submit with an id from kiln_io_new_id; returns 0 like it. */
uint64_t kiln_io_submit_as(struct kiln_io *io, uint64_t id,
			   struct kiln_http_request *req, kiln_io_done_fn done,
			   void *ctx);

/* Stops transfer id if it is still queued or in flight: its done callback
 * then runs with is_aborted.  Unknown or finished ids are ignored. */
void kiln_io_abort(struct kiln_io *io, uint64_t id);

/* Calls fn(ctx, 0) on the loop's thread after delay_ms.  Returns 0, or -1
 * when stopping (fn is then called with is_shutdown before returning). */
int kiln_io_after(struct kiln_io *io, int64_t delay_ms, kiln_io_timer_fn fn,
		  void *ctx);

/* Transfers queued or in flight. */
size_t kiln_io_inflight(struct kiln_io *io);

/* Stops the loop: transfers and timers are abandoned and their callbacks
 * called with is_shutdown.  Afterwards submit and after still work: they
 * call back at once with is_shutdown.  NULL is a no-op. */
void kiln_io_stop(struct kiln_io *io);
/* Frees a stopped loop, once nothing uses it any more.  NULL is a no-op. */
void kiln_io_free(struct kiln_io *io);

void kiln_http_request_free(struct kiln_http_request *req);

/* Parses a Retry-After value (delta seconds or an HTTP date) into ms from
 * now_ms (wall clock); -1 if it is neither. */
long kiln_parse_retry_after(const char *value, int64_t now_ms);

#endif
