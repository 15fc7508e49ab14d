/*
 * webhook_dispatch.c - sends the webhook outbox.
 *
 * One dispatcher thread owns all decisions: it claims due deliveries from
 * the store (at most max_per_endpoint in flight per receiver, max_inflight
 * in all), signs and submits them to its own I/O loop, and records the
 * attempts that came back, many per transaction.  It sleeps until the
 * next delivery is due, a commit queues a new one (the store's hook), or
 * an attempt ends.  The I/O loop's callbacks only hand results over.
 *
 * Each attempt is signed afresh (Standard Webhooks: webhook-timestamp is
 * the attempt's), with every current secret of the delivery's tenant, so
 * receivers keep verifying through a secret rotation.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "kiln/io_loop.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/thread_name.h"
#include "kiln/utf8.h"
#include "kiln/webhook_sign.h"
#include "kiln/webhooks.h"

#define EXCERPT_BYTES 512
/* Sleep at most this long: new deliveries wake the thread anyway. */
#define IDLE_WAKE_MS 30000
#define STORE_RETRY_MS 1000

/* One attempt in flight, then done. */
struct sent {
	struct kiln_webhooks *w;
	char *id, *endpoint;
	int attempt, round;
	int64_t started_at;
	long status, latency_ms, retry_after_ms;
	int is_shutdown, is_refused;
	char *excerpt;
	char error[CURL_ERROR_SIZE];
	struct sent *next;
};

struct kiln_webhooks {
	const struct kiln_webhook_cfg *hc;
	struct kiln_io *io;
	pthread_t thread;
	int has_thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stopping, kicked;
	struct sent *done; /* under lock */
	/* The dispatcher thread's own: */
	json_t *inflight;  /* endpoint -> attempts in flight */
	size_t n_inflight;
	unsigned short rnd[3];
};

static void sent_free(struct sent *s)
{
	free(s->id);
	free(s->endpoint);
	free(s->excerpt);
	free(s);
}

/* Commit hook and I/O callbacks: hand over, wake the thread. */
static void kick(void *ctx)
{
	struct kiln_webhooks *w = ctx;

	pthread_mutex_lock(&w->lock);
	w->kicked = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void on_sent(void *ctx, const struct kiln_http_response *resp)
{
	struct sent *s = ctx;
	struct kiln_webhooks *w = s->w;
	char buf[EXCERPT_BYTES + 4];

	s->is_shutdown = resp->is_shutdown;
	s->is_refused = resp->is_refused;
	s->status = resp->status;
	s->latency_ms = resp->total_ms;
	s->retry_after_ms = resp->retry_after_ms;
	kiln_strlcpy(s->error, resp->error, sizeof(s->error));
	if (resp->body_len > 0)
		s->excerpt = strdup(kiln_text_excerpt(
			resp->body, resp->body_len, EXCERPT_BYTES, buf));
	pthread_mutex_lock(&w->lock);
	s->next = w->done;
	w->done = s;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* ---- sending ------------------------------------------------------------ */

static struct curl_slist *headers_for(const struct kiln_webhooks *w,
				      const char *id, const char *tenant,
				      const char *body, size_t len)
{
	const struct kiln_webhook_keyset *keys =
		kiln_webhook_cfg_keys(w->hc, tenant);
	int64_t ts = kiln_now_ms() / 1000;
	char *sig = kiln_webhook_signature_header(keys->keys, keys->n, id, ts,
						  body, len);
	char lines[3][KILN_WEBHOOK_SECRETS_MAX * KILN_WEBHOOK_SIG_LEN + 64];
	const char *all[] = {
		"Content-Type: application/json",
		"User-Agent: kilnd-webhooks/" KILN_VERSION,
		/* A round trip saved; receivers answer at once anyway. */
		"Expect:", lines[0], lines[1], lines[2],
	};
	struct curl_slist *h = NULL, *next;
	size_t i;

	if (sig == NULL)
		return NULL;
	snprintf(lines[0], sizeof(lines[0]), "webhook-id: %s", id);
	snprintf(lines[1], sizeof(lines[1]), "webhook-timestamp: %lld",
		 (long long)ts);
	snprintf(lines[2], sizeof(lines[2]), "webhook-signature: %s", sig);
	free(sig);
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		next = curl_slist_append(h, all[i]);
		if (next == NULL) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = next;
	}
	return h;
}

static void count_endpoint(struct kiln_webhooks *w, const char *endpoint,
			   int delta)
{
	json_int_t n = json_integer_value(json_object_get(w->inflight,
							  endpoint)) + delta;

	if (n > 0)
		json_object_set_new(w->inflight, endpoint, json_integer(n));
	else
		json_object_del(w->inflight, endpoint);
	w->n_inflight = (size_t)((long)w->n_inflight + delta);
}

/* Sends one claimed delivery ({"id", "url", "endpoint", "payload",
 * "tenant_id", "attempt", "round"}). */
static void submit(struct kiln_webhooks *w, const json_t *d)
{
	const char *payload = json_string_value(json_object_get(d, "payload"));
	struct kiln_http_request *req = calloc(1, sizeof(*req));
	struct sent *s = calloc(1, sizeof(*s));

	if (req == NULL || s == NULL)
		goto oom;
	s->w = w;
	s->id = strdup(json_string_value(json_object_get(d, "id")));
	s->endpoint = strdup(json_string_value(json_object_get(d, "endpoint")));
	s->attempt = (int)json_integer_value(json_object_get(d, "attempt"));
	s->round = (int)json_integer_value(json_object_get(d, "round"));
	s->started_at = kiln_now_ms();
	req->method = strdup("POST");
	req->url = strdup(json_string_value(json_object_get(d, "url")));
	req->body = strdup(payload);
	req->body_len = strlen(payload);
	if (s->id == NULL || s->endpoint == NULL || req->method == NULL ||
	    req->url == NULL || req->body == NULL)
		goto oom;
	req->headers = headers_for(
		w, s->id, json_string_value(json_object_get(d, "tenant_id")),
		req->body, req->body_len);
	if (req->headers == NULL)
		goto oom;
	req->connect_timeout_ms = w->hc->connect_timeout_ms;
	req->timeout_ms = w->hc->timeout_ms;
	req->max_response_bytes = w->hc->max_response_bytes;
	req->public_only = !w->hc->allow_private_networks;
	count_endpoint(w, s->endpoint, +1);
	kiln_log(KILN_LOG_DEBUG, "webhook %s: attempt %d to %s", s->id,
		 s->attempt, req->url);
	kiln_io_submit(w->io, req, on_sent, s);
	return;
oom:
	/* Left in flight in the store: sent again at the next start. */
	kiln_log(KILN_LOG_ERROR, "webhook %s: out of memory",
		 json_string_value(json_object_get(d, "id")));
	kiln_http_request_free(req);
	if (s != NULL)
		sent_free(s);
}

static void send_due(struct kiln_webhooks *w, struct kiln_store *st)
{
	struct kiln_err err = {0};
	json_t *claimed = NULL, *d;
	size_t i, room;

	if (w->n_inflight >= (size_t)w->hc->max_inflight)
		return;
	room = (size_t)w->hc->max_inflight - w->n_inflight;
	if (kiln_store_claim_deliveries(st, kiln_now_ms(), w->inflight,
					w->hc->max_per_endpoint, room,
					&claimed, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "webhooks: claiming deliveries: %s",
			 err.msg);
		return;
	}
	json_array_foreach(claimed, i, d)
		submit(w, d);
	json_decref(claimed);
}

/* ---- recording ---------------------------------------------------------- */

/* The next attempt's time after a failed one, 0 when the schedule is
 * spent. */
static int64_t retry_at(struct kiln_webhooks *w, const struct sent *s)
{
	const struct kiln_webhook_cfg *hc = w->hc;
	size_t next = (size_t)s->round + 1;
	double delay;

	if (next >= hc->n_schedule)
		return 0;
	delay = (double)hc->schedule_ms[next];
	delay += delay * hc->jitter * erand48(w->rnd);
	if (s->retry_after_ms >= 0) {
		double ra = (double)(s->retry_after_ms < hc->max_retry_after_ms
					     ? s->retry_after_ms
					     : hc->max_retry_after_ms);

		if (ra > delay)
			delay = ra;
	}
	return kiln_now_ms() + (int64_t)delay;
}

static void describe(struct kiln_webhooks *w, struct sent *s,
		     struct kiln_delivery_attempt *a, char *error, size_t size)
{
	memset(a, 0, sizeof(*a));
	a->id = s->id;
	a->attempt = s->attempt;
	a->started_at = s->started_at;
	a->latency_ms = s->latency_ms;
	a->http_status = s->status;
	a->excerpt = s->excerpt;
	a->delivered = !s->is_refused && s->status >= 200 && s->status < 300;
	if (a->delivered)
		return;
	if (s->is_refused || s->status == 0)
		snprintf(error, size, "%s", s->error);
	else if (s->status == 410)
		snprintf(error, size, "HTTP 410 Gone: the receiver wants no"
				      " more deliveries");
	else if (s->status >= 300 && s->status < 400)
		snprintf(error, size, "HTTP %ld: redirects are not followed",
			 s->status);
	else
		snprintf(error, size, "HTTP %ld", s->status);
	a->error = error;
	/* 410 and a refused address end the delivery at once. */
	if (!s->is_refused && s->status != 410)
		a->retry_at = retry_at(w, s);
	kiln_log(a->retry_at ? KILN_LOG_INFO : KILN_LOG_WARN,
		 "webhook %s: attempt %d failed (%s)%s", s->id, s->attempt,
		 error, a->retry_at ? "; will retry" : "; giving up");
}

/* Records the finished attempts; 0, or -1 (they are kept for later) when
 * the store fails. */
static int record(struct kiln_webhooks *w, struct kiln_store *st,
		  struct sent *list)
{
	struct kiln_err err = {0};
	struct kiln_delivery_attempt *a;
	char (*errors)[CURL_ERROR_SIZE + 64];
	struct sent *s, *next;
	size_t n = 0, i = 0;
	enum kiln_rc rc;

	for (s = list; s != NULL; s = s->next)
		n++;
	a = calloc(n, sizeof(*a));
	errors = calloc(n, sizeof(*errors));
	if (a == NULL || errors == NULL) {
		free(a);
		free(errors);
		return -1;
	}
	/* An attempt abandoned by a stopping loop stays in flight in the
	 * store, and is sent again at the next start. */
	for (s = list; s != NULL; s = s->next) {
		if (s->is_shutdown)
			continue;
		describe(w, s, &a[i], errors[i], sizeof(errors[i]));
		i++;
	}
	rc = kiln_store_record_deliveries(st, a, i, &err);
	free(a);
	free(errors);
	if (rc != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "webhooks: recording attempts: %s",
			 err.msg);
		return -1;
	}
	for (s = list; s != NULL; s = next) {
		next = s->next;
		count_endpoint(w, s->endpoint, -1);
		sent_free(s);
	}
	return 0;
}

/* ---- the thread --------------------------------------------------------- */

/* ms until the next delivery is due that could be sent now. */
static int64_t next_wait(struct kiln_webhooks *w, struct kiln_store *st)
{
	json_t *full = json_array(), *v;
	struct kiln_err err = {0};
	const char *endpoint;
	int64_t at, wait;

	json_object_foreach(w->inflight, endpoint, v)
		if (json_integer_value(v) >= w->hc->max_per_endpoint)
			json_array_append_new(full, json_string(endpoint));
	if (w->n_inflight >= (size_t)w->hc->max_inflight) {
		json_decref(full);
		return IDLE_WAKE_MS; /* an attempt ending wakes us */
	}
	if (kiln_store_next_delivery_at(st, full, &at, &err) != KILN_OK) {
		kiln_log(KILN_LOG_ERROR, "webhooks: %s", err.msg);
		at = kiln_now_ms() + STORE_RETRY_MS;
	}
	json_decref(full);
	if (at < 0)
		return IDLE_WAKE_MS;
	wait = at - kiln_now_ms();
	return wait < 0 ? 0 : wait > IDLE_WAKE_MS ? IDLE_WAKE_MS : wait;
}

static void wait_until(struct kiln_webhooks *w, int64_t mono_ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(mono_ms / 1000);
	ts.tv_nsec = (long)(mono_ms % 1000) * 1000000L;
	pthread_cond_timedwait(&w->cond, &w->lock, &ts);
}

static struct sent *append(struct sent *list, struct sent *more)
{
	struct sent *tail = list;

	if (list == NULL)
		return more;
	while (tail->next != NULL)
		tail = tail->next;
	tail->next = more;
	return list;
}

static void free_list(struct sent *s)
{
	struct sent *next;

	for (; s != NULL; s = next) {
		next = s->next;
		sent_free(s);
	}
}

static void *dispatcher_main(void *p)
{
	struct kiln_webhooks *w = p;
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);
	struct sent *backlog = NULL; /* ended, not yet recorded */
	int64_t wake = 0;

	if (st == NULL) {
		kiln_log(KILN_LOG_ERROR, "webhooks: no store: %s", err.msg);
		return NULL;
	}
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->stopping && !w->kicked && w->done == NULL &&
		       kiln_mono_ms() < wake)
			wait_until(w, wake);
		if (w->stopping)
			break;
		w->kicked = 0;
		backlog = append(backlog, w->done);
		w->done = NULL;
		pthread_mutex_unlock(&w->lock);
		if (backlog != NULL && record(w, st, backlog) != 0) {
			wake = kiln_mono_ms() + STORE_RETRY_MS;
		} else {
			backlog = NULL;
			send_due(w, st);
			wake = kiln_mono_ms() + next_wait(w, st);
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	/* Still marked in flight in the store: recovered at the next start. */
	free_list(backlog);
	kiln_store_thread_release();
	return NULL;
}

enum kiln_rc kiln_webhooks_start(const struct kiln_config *cfg,
				 struct kiln_webhooks **out,
				 struct kiln_err *err)
{
	struct kiln_webhooks *w = calloc(1, sizeof(*w));
	pthread_condattr_t attr;
	struct kiln_store *st;
	size_t recovered = 0;
	enum kiln_rc rc;

	*out = NULL;
	if (w == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	w->hc = cfg->webhooks;
	w->inflight = json_object();
	if (getrandom(w->rnd, sizeof(w->rnd), 0) != sizeof(w->rnd))
		w->rnd[0] = (unsigned short)kiln_now_ms();
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &attr);
	pthread_condattr_destroy(&attr);
	st = kiln_store_thread(err);
	if (st == NULL) {
		rc = err->code;
		goto fail;
	}
	rc = kiln_store_recover_deliveries(st, &recovered, err);
	if (rc != KILN_OK)
		goto fail;
	if (recovered > 0)
		kiln_log(KILN_LOG_INFO,
			 "webhooks: %zu deliveries were in flight when kilnd"
			 " stopped; sending them again",
			 recovered);
	rc = kiln_io_start((size_t)w->hc->max_inflight,
			   KILN_IO_IDLE_CONNECTIONS, &w->io, err);
	if (rc != KILN_OK)
		goto fail;
	kiln_store_set_first_delivery_delay(w->hc->schedule_ms[0]);
	kiln_store_on_delivery(kick, w);
	if (pthread_create(&w->thread, NULL, dispatcher_main, w) != 0) {
		kiln_store_on_delivery(NULL, NULL);
		rc = kiln_err_set(err, KILN_EIO, "",
				  "cannot start the webhook dispatcher");
		goto fail;
	}
	kiln_thread_name(w->thread, "kiln-webhooks");
	w->has_thread = 1;
	*out = w;
	return KILN_OK;
fail:
	kiln_webhooks_stop(w);
	return rc;
}

void kiln_webhooks_stop(struct kiln_webhooks *w)
{
	if (w == NULL)
		return;
	kiln_store_on_delivery(NULL, NULL);
	if (w->has_thread) {
		pthread_mutex_lock(&w->lock);
		w->stopping = 1;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	/* Abandoned attempts call back with is_shutdown: dropped here, and
	 * sent again at the next start. */
	kiln_io_stop(w->io);
	free_list(w->done);
	kiln_io_free(w->io);
	json_decref(w->inflight);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
