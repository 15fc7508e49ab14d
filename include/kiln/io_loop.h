/*
 * io_loop.h - outbound HTTP on one libcurl multi handle driven by one
 * thread.  Thousands of slow transfers cost a socket and a few kilobytes
 * each, not a thread.  Connections are reused per host by the multi
 * handle's connection cache.
 */
#ifndef KILN_IO_LOOP_H
#define KILN_IO_LOOP_H

#include <curl/curl.h>
#include <stddef.h>

#include "kiln/common.h"

struct kiln_io;

/* A request to send.  All strings are owned by the request and freed by
 * the loop after the transfer. */
struct kiln_http_request {
	char *method;              /* "POST", "GET"; NULL = POST */
	char *url;
	char *body;                /* NULL = none */
	size_t body_len;
	struct curl_slist *headers;
	long connect_timeout_ms;
	long timeout_ms;           /* total */
	size_t max_response_bytes; /* the answer is cut off (error) past this */
};

/* What came back.  Borrowed by the callback for its duration. */
struct kiln_http_response {
	int is_shutdown;  /* 1: the loop is stopping; no transfer happened */
	CURLcode curl_code;
	long status;      /* HTTP status, 0 if none */
	char *body;       /* NUL-terminated */
	size_t body_len;
	int is_too_big;   /* body passed max_response_bytes */
	char *content_type; /* NULL if none */
	long total_ms;
	char error[CURL_ERROR_SIZE];
};

/* Called exactly once per submitted request, on the loop's thread (keep it
 * short: hand the work to the pool), or with is_shutdown set. */
typedef void (*kiln_io_done_fn)(void *ctx,
				const struct kiln_http_response *resp);

enum kiln_rc kiln_io_start(size_t max_inflight, struct kiln_io **out,
			   struct kiln_err *err) KILN_WARN_UNUSED;

/* Queues req (consumed in all cases).  Returns 0, or -1 if the loop is
 * stopping (done is then called with is_shutdown before returning). */
int kiln_io_submit(struct kiln_io *io, struct kiln_http_request *req,
		   kiln_io_done_fn done, void *ctx);

/* Transfers queued or in flight. */
size_t kiln_io_inflight(struct kiln_io *io);

/* Stops the loop: transfers in flight are abandoned and their callbacks
 * called with is_shutdown.  NULL is a no-op. */
void kiln_io_stop(struct kiln_io *io);

void kiln_http_request_free(struct kiln_http_request *req);

#endif
