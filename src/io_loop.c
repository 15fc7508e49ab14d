/*
 * io_loop.c - one thread, one libcurl multi handle.
 *
 * Other threads queue requests under a mutex and wake the loop with
 * curl_multi_wakeup().  The loop moves queued requests onto the multi
 * handle (up to max_inflight at once; the rest wait in the queue), drives
 * the transfers with curl_multi_perform/curl_multi_poll, and reports each
 * finished one to its callback.  Every transfer has a connect and a total
 * timeout, CURLOPT_NOSIGNAL, no redirects, and a cap on the bytes read.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/io_loop.h"
#include "kiln/log.h"

struct transfer {
	struct kiln_http_request *req;
	kiln_io_done_fn done;
	void *ctx;
	CURL *easy;
	struct kiln_http_response resp;
	size_t body_cap;
	struct transfer *next;             /* queue link */
	struct transfer *prev_on, *next_on; /* active list links */
};

struct kiln_io {
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;
	struct transfer *queue_head, *queue_tail; /* not yet on multi */
	size_t queued;
	struct transfer *active_list; /* on the multi handle; loop thread only */
	size_t active;
	size_t max_inflight;
	int stopping;
};

void kiln_http_request_free(struct kiln_http_request *req)
{
	if (req == NULL)
		return;
	free(req->method);
	free(req->url);
	free(req->body);
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
	free(t);
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

static int transfer_setup(struct transfer *t)
{
	struct kiln_http_request *r = t->req;
	CURL *e = curl_easy_init();

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
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->resp.error);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "kilnd/" KILN_VERSION);
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

static void finish(struct transfer *t, CURLcode code)
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
	if (t->resp.body == NULL) {
		t->resp.body = calloc(1, 1);
		t->resp.body_len = 0;
	}
	if (code != CURLE_OK && t->resp.error[0] == '\0')
		kiln_strlcpy(t->resp.error, curl_easy_strerror(code),
			     sizeof(t->resp.error));
	t->done(t->ctx, &t->resp);
}

/* Moves queued requests onto the multi handle while there is room. */
static void admit_queued(struct kiln_io *io)
{
	for (;;) {
		struct transfer *t;

		pthread_mutex_lock(&io->lock);
		if (io->queue_head == NULL || io->active >= io->max_inflight) {
			pthread_mutex_unlock(&io->lock);
			return;
		}
		t = io->queue_head;
		io->queue_head = t->next;
		if (io->queue_head == NULL)
			io->queue_tail = NULL;
		io->queued--;
		io->active++;
		pthread_mutex_unlock(&io->lock);

		if (transfer_setup(t) == 0 &&
		    curl_multi_add_handle(io->multi, t->easy) == CURLM_OK) {
			t->next_on = io->active_list;
			if (io->active_list)
				io->active_list->prev_on = t;
			io->active_list = t;
		} else {
			kiln_strlcpy(t->resp.error, "cannot start transfer",
				     sizeof(t->resp.error));
			finish(t, CURLE_FAILED_INIT);
			transfer_free(t);
			pthread_mutex_lock(&io->lock);
			io->active--;
			pthread_mutex_unlock(&io->lock);
		}
	}
}

static void unlink_active(struct kiln_io *io, struct transfer *t)
{
	if (t->prev_on)
		t->prev_on->next_on = t->next_on;
	else
		io->active_list = t->next_on;
	if (t->next_on)
		t->next_on->prev_on = t->prev_on;
	t->prev_on = t->next_on = NULL;
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
		finish(t, msg->data.result);
		transfer_free(t);
		pthread_mutex_lock(&io->lock);
		io->active--;
		pthread_mutex_unlock(&io->lock);
	}
}

static void abandon_all(struct kiln_io *io)
{
	struct transfer *t;

	while ((t = io->active_list) != NULL) {
		curl_multi_remove_handle(io->multi, t->easy);
		unlink_active(io, t);
		t->resp.is_shutdown = 1;
		t->done(t->ctx, &t->resp);
		transfer_free(t);
	}
	while ((t = io->queue_head) != NULL) {
		io->queue_head = t->next;
		t->resp.is_shutdown = 1;
		t->done(t->ctx, &t->resp);
		transfer_free(t);
	}
	io->queue_tail = NULL;
}

static void *io_main(void *p)
{
	struct kiln_io *io = p;
	int running = 0;

	for (;;) {
		int stopping;

		pthread_mutex_lock(&io->lock);
		stopping = io->stopping;
		pthread_mutex_unlock(&io->lock);
		if (stopping)
			break;
		admit_queued(io);
		curl_multi_perform(io->multi, &running);
		reap_finished(io);
		curl_multi_poll(io->multi, NULL, 0, 1000, NULL);
	}
	abandon_all(io);
	return NULL;
}

enum kiln_rc kiln_io_start(size_t max_inflight, struct kiln_io **out,
			   struct kiln_err *err)
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
	curl_multi_setopt(io->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	pthread_mutex_init(&io->lock, NULL);
	if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
		curl_multi_cleanup(io->multi);
		pthread_mutex_destroy(&io->lock);
		free(io);
		return kiln_err_set(err, KILN_EIO, "", "cannot start I/O thread");
	}
	*out = io;
	return KILN_OK;
}

int kiln_io_submit(struct kiln_io *io, struct kiln_http_request *req,
		   kiln_io_done_fn done, void *ctx)
{
	struct transfer *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		struct kiln_http_response r = {.is_shutdown = 1};

		kiln_http_request_free(req);
		done(ctx, &r);
		return -1;
	}
	t->req = req;
	t->done = done;
	t->ctx = ctx;
	pthread_mutex_lock(&io->lock);
	if (io->stopping) {
		pthread_mutex_unlock(&io->lock);
		t->resp.is_shutdown = 1;
		done(ctx, &t->resp);
		transfer_free(t);
		return -1;
	}
	if (io->queue_tail)
		io->queue_tail->next = t;
	else
		io->queue_head = t;
	io->queue_tail = t;
	io->queued++;
	pthread_mutex_unlock(&io->lock);
	curl_multi_wakeup(io->multi);
	return 0;
}

size_t kiln_io_inflight(struct kiln_io *io)
{
	size_t n;

	pthread_mutex_lock(&io->lock);
	n = io->queued + io->active;
	pthread_mutex_unlock(&io->lock);
	return n;
}

void kiln_io_stop(struct kiln_io *io)
{
	if (io == NULL)
		return;
	pthread_mutex_lock(&io->lock);
	io->stopping = 1;
	pthread_mutex_unlock(&io->lock);
	curl_multi_wakeup(io->multi);
	pthread_join(io->thread, NULL);
	curl_multi_cleanup(io->multi);
	pthread_mutex_destroy(&io->lock);
	free(io);
}
