/*
 * engine.c - the DAG scheduler and the life of each running step: the only
 * writer of step state.
 *
 * Jobs on the worker pool:
 *   advance(wf)  store, one transaction: mark PENDING steps whose
 *                dependencies are COMPLETED READY (or the workflow
 *                COMPLETED) and claim them (READY -> RUNNING, first attempt
 *                recorded); start(run) each (the first on the
 *                claiming thread, the rest queued).
 *   start(run)   resolve the input; dryrun finishes at once, http
 *                providers get a request on the I/O loop.
 *   answer(run)  (queued by the I/O loop) read what came back and decide:
 *                result, next poll, retry after a backoff, fallback, fail.
 *   next(run)    (queued by a timer) the next poll or attempt.
 * A step in flight is a struct run, owned by exactly one of: a queued pool
 * job, a transfer on the I/O loop, a timer.  Every decision is committed
 * to the store first, so a crash at any point is resumed from the store
 * (take_over).  Guarded store updates drop the work of a step that was
 * cancelled or reset meanwhile.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kiln/artifacts.h"
#include "kiln/engine.h"
#include "kiln/io_loop.h"
#include "kiln/json_writer.h"
#include "kiln/log.h"
#include "kiln/mapping.h"
#include "kiln/pool.h"
#include "kiln/provider.h"
#include "kiln/store.h"

/* A running step's lease, and how often leases are renewed and expired
 * ones looked for. */
#define STEP_LEASE_MS (60 * 1000)
#define LEASE_TICK_MS (STEP_LEASE_MS / 3)

enum phase {
	PHASE_CALL,     /* sync call or async submission */
	PHASE_POLL,     /* status poll */
	PHASE_RESULT,   /* GET of the result URL */
	PHASE_FETCH,    /* artifact downloads */
};

/*
 * Thousands of runs are in flight at once, so a run keeps its claim's
 * fields flat (its strings in one block after the struct) and the claim
 * itself only until its input is resolved.
 */
struct run {
	struct kiln_engine *e;
	json_t *claim; /* the input's sources (config, mappings, results), or
			* NULL once they are not needed again */
	const char *uuid, *wf_id, *step_id, *task_id, *task_type;
	const char *provider; /* current: the step's, or its fallback */
	const char *fallback; /* fallback_provider_type, or NULL */
	int on_fallback, provider_retries, max_retries;
	int64_t first_started_at;
	const struct kiln_provider_cfg *p; /* bound to provider */
	json_t *input;     /* the resolved input, until it is sent... */
	char *input_text;  /* ...then kept as text for another attempt */
	json_t *job;    /* async job, or NULL */
	json_t *result; /* from a fetch, waiting to be recorded */
	char *fetch_error;
	enum phase phase;
	int poll_ms, poll_errors;
	int64_t deadline_ms; /* wall clock; 0 = none */
	uint64_t xfer;       /* transfer in flight (0 none); under e->lock */
	int keep_on_cancel;  /* an async submission: under e->lock */
	int cancelled;       /* under e->lock */
	struct kiln_http_response *resp; /* the last answer, or NULL */
	struct run *prev, *next; /* registry, under e->lock */
};

struct kiln_engine {
	const struct kiln_config *cfg;
	struct kiln_pool *pool;
	struct kiln_io *io;
	struct kiln_io_lane **lanes; /* per cfg->providers[i] */
	char node_id[KILN_UUID_LEN]; /* lease owner name of this process */
	pthread_mutex_t lock;
	struct run *runs;
	int stopping;
};

struct id_job {
	struct kiln_engine *engine;
	char id[KILN_UUID_LEN];
	int forced; /* take_over_job: whatever the lease says */
};

static void advance_job(void *arg);
static void start_job(void *arg);
static struct run *run_new(struct kiln_engine *e, json_t *claim);
static void queue_run(struct run *r, kiln_job_fn fn);
static void answer_job(void *arg);
static void next_job(void *arg);
static void take_over_job(void *arg);
/* Only a marker for submit_id_job: a take-over at start-up. */
static void take_over_forced_job(void *arg) { (void)arg; }
static void send_request(struct run *r, struct kiln_http_request *req,
		 enum phase phase);
static void attempt(struct run *r);
static void cancel_job(struct kiln_engine *e, const char *pname,
		       const json_t *job);

/* ---- small helpers ---------------------------------------------------- */

static struct kiln_store *store(void)
{
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);

	if (st == NULL)
		kiln_log(KILN_LOG_ERROR, "store: %s", err.msg);
	return st;
}

static const char *claim_str(const json_t *claim, const char *key)
{
	return json_string_value(json_object_get(claim, key));
}

static struct kiln_io_lane *lane_of(struct kiln_engine *e,
				    const struct kiln_provider_cfg *p)
{
	size_t i = (size_t)(p - e->cfg->providers);

	return i < e->cfg->n_providers ? e->lanes[i] : NULL;
}

static uint32_t random_u32(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint32_t)kiln_mono_ms();
	return v;
}

static void submit_id_job(struct kiln_engine *e, kiln_job_fn fn,
			  const char *id)
{
	struct id_job *j = malloc(sizeof(*j));

	if (j == NULL) {
		kiln_log(KILN_LOG_ERROR, "out of memory queueing job for %s",
			 id);
		return;
	}
	j->engine = e;
	kiln_strlcpy(j->id, id, sizeof(j->id));
	j->forced = fn == take_over_forced_job;
	if (kiln_pool_submit(e->pool,
			     fn == take_over_forced_job ? take_over_job : fn,
			     free, j) != 0)
		free(j); /* stopping: the store still holds the work */
}

void kiln_engine_kick(struct kiln_engine *e, const char *wf_id)
{
	submit_id_job(e, advance_job, wf_id);
}

struct kiln_claimer kiln_engine_claimer(struct kiln_engine *e)
{
	struct kiln_claimer who = {e->node_id, kiln_now_ms() + STEP_LEASE_MS};

	return who;
}

/* Set while this thread starts a claimed step itself. */
static _Thread_local int starting_inline;

/* Runs each claimed step (claims: an owned array, may be NULL).  The
 * first starts on this thread: its request is built and handed to the
 * I/O loop without a trip through the pool (one thread hand-off less per
 * step).  The rest, and any a dryrun step claims as it finishes (which
 * would otherwise recurse down a chain of steps), go to the pool. */
void kiln_engine_start_claimed(struct kiln_engine *e, json_t *claims)
{
	struct run *r, *first = NULL;
	json_t *claim;
	size_t i;

	json_array_foreach(claims, i, claim) {
		r = run_new(e, json_incref(claim));
		if (r == NULL)
			continue;
		if (first == NULL && !starting_inline)
			first = r;
		else
			queue_run(r, start_job);
	}
	json_decref(claims);
	if (first != NULL) {
		starting_inline = 1;
		start_job(first);
		starting_inline = 0;
	}
}

/* Marks what can run READY and claims it, in one transaction. */
static void advance_job(void *arg)
{
	struct id_job *j = arg;
	struct kiln_claimer who = kiln_engine_claimer(j->engine);
	struct kiln_err err = {0};
	struct kiln_store *st = store();
	json_t *claims = NULL;

	if (st == NULL ||
	    kiln_store_advance_claim(st, j->id, &who, &claims, &err) !=
		    KILN_OK) {
		if (st != NULL && err.code != KILN_ENOTFOUND)
			kiln_log(KILN_LOG_ERROR, "advance %s: %s", j->id,
				 err.msg);
		free(j);
		return;
	}
	kiln_engine_start_claimed(j->engine, claims);
	free(j);
}

/* ---- runs ------------------------------------------------------------- */

/* The claim's strings a run keeps, in the order of struct run's. */
static const char *const RUN_STRINGS[] = {
	"uuid",    "workflow_id",      "step_id",
	"task_id", "task_type",        "current_provider",
	"fallback_provider_type",
};
#define N_RUN_STRINGS (sizeof(RUN_STRINGS) / sizeof(RUN_STRINGS[0]))

static struct run *run_new(struct kiln_engine *e, json_t *claim)
{
	const char **to[N_RUN_STRINGS], *from[N_RUN_STRINGS];
	size_t len[N_RUN_STRINGS], total = 0, i;
	struct run *r;
	char *tail;

	for (i = 0; i < N_RUN_STRINGS; i++) {
		from[i] = claim_str(claim, RUN_STRINGS[i]);
		len[i] = from[i] ? strlen(from[i]) + 1 : 0;
		total += len[i];
	}
	r = calloc(1, sizeof(*r) + total);
	if (r == NULL) {
		json_decref(claim);
		return NULL;
	}
	to[0] = &r->uuid;
	to[1] = &r->wf_id;
	to[2] = &r->step_id;
	to[3] = &r->task_id;
	to[4] = &r->task_type;
	to[5] = &r->provider;
	to[6] = &r->fallback;
	tail = (char *)(r + 1);
	for (i = 0; i < N_RUN_STRINGS; i++) {
		if (len[i] == 0)
			continue;
		memcpy(tail, from[i], len[i]);
		*to[i] = tail;
		tail += len[i];
	}
	r->e = e;
	r->claim = claim;
	r->on_fallback = json_is_true(json_object_get(claim, "on_fallback"));
	r->provider_retries = (int)json_integer_value(
		json_object_get(claim, "provider_retries"));
	r->max_retries =
		(int)json_integer_value(json_object_get(claim, "max_retries"));
	r->first_started_at = json_integer_value(
		json_object_get(claim, "first_started_at"));
	pthread_mutex_lock(&e->lock);
	r->next = e->runs;
	if (e->runs)
		e->runs->prev = r;
	e->runs = r;
	pthread_mutex_unlock(&e->lock);
	return r;
}

static void clear_resp(struct run *r)
{
	if (r->resp == NULL)
		return;
	free(r->resp->body);
	free(r->resp->content_type);
	free(r->resp);
	r->resp = NULL;
}

/* The HTTP status of the last answer, 0 if none. */
static long resp_status(const struct run *r)
{
	return r->resp ? r->resp->status : 0;
}

static void run_free(void *arg)
{
	struct run *r = arg;
	struct kiln_engine *e = r->e;

	pthread_mutex_lock(&e->lock);
	if (r->prev)
		r->prev->next = r->next;
	else
		e->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	pthread_mutex_unlock(&e->lock);
	clear_resp(r);
	json_decref(r->claim);
	json_decref(r->input);
	free(r->input_text);
	json_decref(r->job);
	json_decref(r->result);
	free(r->fetch_error);
	free(r);
}

static int is_cancelled(struct run *r)
{
	int c;

	pthread_mutex_lock(&r->e->lock);
	c = r->cancelled;
	pthread_mutex_unlock(&r->e->lock);
	return c;
}

static void queue_run(struct run *r, kiln_job_fn fn)
{
	if (kiln_pool_submit(r->e->pool, fn, run_free, r) != 0)
		run_free(r); /* stopping: resumed from the store later */
}

/* ---- the end of a step ---------------------------------------------- */

/* A step's end is committed (or lost): starts what it lets run. */
struct finished {
	struct kiln_engine *e;
	char uuid[KILN_UUID_LEN];
	int ok;
};

static void on_finished(void *ctx, enum kiln_rc rc, json_t *claims)
{
	struct finished *f = ctx;

	if (rc != KILN_OK) {
		/* The commit failed (the step is still RUNNING), or the store
		 * closed first (the steps it claimed are RUNNING): either way
		 * the leases expire and the steps are taken over again. */
		kiln_log(KILN_LOG_ERROR,
			 "finish %s: not committed, or the store closed first",
			 f->uuid);
		json_decref(claims);
	} else {
		kiln_log(KILN_LOG_DEBUG, "step %s %s", f->uuid,
			 f->ok ? "completed" : "failed");
		kiln_engine_start_claimed(f->e, claims);
	}
	free(f);
}

/*
 * Records the step's end; a success claims the steps it lets run in the
 * same transaction.  This thread does not wait for the commit: it goes
 * on to the next job while on_finished waits in the group, which is
 * committed once the pool runs dry (or by a writer that finds nobody
 * behind it), so one COMMIT serves many step ends.
 */
static void finish(struct run *r, const json_t *result,
		   const struct kiln_attempt_end *end)
{
	struct kiln_claimer who = kiln_engine_claimer(r->e);
	struct kiln_err err = {0};
	struct kiln_store *st = store();
	struct finished *f;
	struct kiln_then then;
	enum kiln_rc rc;

	if (st == NULL)
		return;
	f = malloc(sizeof(*f));
	if (f == NULL)
		return; /* the lease expires and the step is taken over */
	f->e = r->e;
	kiln_strlcpy(f->uuid, r->uuid, sizeof(f->uuid));
	f->ok = result != NULL;
	/* Left open only by a pool worker: it flushes the group itself
	 * should it find the queue empty after this job. */
	then = (struct kiln_then){on_finished, f,
				  kiln_pool_in_worker(r->e->pool) &&
					  kiln_pool_queued(r->e->pool) > 0};
	rc = kiln_store_finish_step_then(st, r->uuid, r->task_id, result, end,
					 &who, &then, &err);
	if (rc == KILN_OK)
		return; /* f is on_finished's */
	free(f);
	if (rc == KILN_ECONFLICT)
		kiln_log(KILN_LOG_DEBUG, "dropping stale answer: %s", err.msg);
	else
		/* The step stays RUNNING; its lease expires and it is taken
		 * over again. */
		kiln_log(KILN_LOG_ERROR, "finish %s: %s", r->uuid, err.msg);
}

static void finish_failed(struct run *r, const char *outcome,
			  long http_status, const char *error)
{
	struct kiln_attempt_end end = {outcome, http_status, error, NULL};

	finish(r, NULL, &end);
}

/* 1 (and the step failed) when the step's deadline has passed. */
static int past_deadline(struct run *r)
{
	char msg[96];

	if (r->deadline_ms == 0 || kiln_now_ms() < r->deadline_ms)
		return 0;
	snprintf(msg, sizeof(msg), "deadline of %d s exceeded",
		 r->p->ext->step_deadline_s);
	finish_failed(r, "deadline_exceeded", 0, msg);
	return 1;
}

/* ---- provider and input ---------------------------------------------- */

/* The step's config with its input mappings applied, then the provider
 * parameters (provider_config or fallback_provider_config, minus
 * provider_type) merged over it. */
static json_t *resolve_input(struct run *r, struct kiln_err *err)
{
	json_t *config = json_object_get(r->claim, "config");
	json_t *mappings = json_object_get(r->claim, "input_mappings");
	json_t *results = json_object_get(r->claim, "results");
	json_t *params = json_object_get(r->claim,
					 r->on_fallback
						 ? "fallback_provider_config"
						 : "provider_config");
	json_t *input = json_is_object(config) ? json_deep_copy(config)
					       : json_object();
	const char *key;
	json_t *v;
	size_t i;

	for (i = 0; i < json_array_size(mappings); i++) {
		json_t *m = json_array_get(mappings, i);
		const char *from = json_string_value(
			json_object_get(m, "from_step"));

		if (kiln_mapping_apply(input, m,
				       json_object_get(results, from ? from : ""),
				       err) != KILN_OK) {
			/* The input at fault, for the failure's "field"
			 * (the message names the field it lacked). */
			if (err != NULL)
				snprintf(err->field, sizeof(err->field),
					 "input_mappings[%zu].to_field", i);
			json_decref(input);
			return NULL;
		}
	}
	if (json_is_object(params))
		json_object_foreach(params, key, v)
			if (strcmp(key, "provider_type") != 0)
				json_object_set(input, key, v);
	return input;
}

/* Drops what the input was resolved from (the workflow's earlier results
 * among it) unless a fallback provider may still need it re-resolved with
 * its own parameters: thousands of steps are in flight at once. */
static void forget_sources(struct run *r)
{
	if (!r->on_fallback && r->fallback != NULL)
		return;
	json_decref(r->claim);
	r->claim = NULL;
}

/* Binds r to its current provider and input; fails the step if it
 * cannot.  Returns 0 when the run can go on. */
static int prepare(struct run *r)
{
	const char *pname = r->provider;
	struct kiln_err err = {0};

	r->p = kiln_config_provider(r->e->cfg, pname ? pname : "");
	if (r->p == NULL) {
		kiln_err_set(&err, KILN_EINVAL, "",
			     "provider '%s' is not configured", pname);
		finish_failed(r, "permanent_error", 0, err.msg);
		return -1;
	}
	if ((r->input == NULL && r->input_text == NULL) || r->claim != NULL) {
		json_decref(r->input);
		free(r->input_text);
		r->input_text = NULL;
		r->input = resolve_input(r, &err);
		if (r->input == NULL) {
			struct kiln_attempt_end end = {"invalid_input", 0,
						       err.msg, err.field};

			finish(r, NULL, &end);
			return -1;
		}
		forget_sources(r);
	}
	r->deadline_ms = r->p->ext->step_deadline_s > 0
				 ? r->first_started_at +
					   r->p->ext->step_deadline_s * 1000LL
				 : 0;
	r->poll_ms = r->p->ext->poll_initial_ms;
	r->poll_errors = 0;
	return 0;
}

/* ---- timers ----------------------------------------------------------- */

static void on_timer(void *ctx, int is_shutdown)
{
	struct run *r = ctx;

	if (is_shutdown)
		run_free(r); /* resumed from the store at the next start */
	else
		queue_run(r, next_job);
}

/* next_job(r) after delay_ms: a poll (PHASE_POLL) or a new attempt. */
static void schedule(struct run *r, int64_t delay_ms)
{
	kiln_io_after(r->e->io, delay_ms, on_timer, r);
}

/* ---- retries and fallbacks ------------------------------------------- */

/* After a failed attempt: retry after a backoff, hand over to the
 * fallback provider, or fail the step. */
static void attempt_failed(struct run *r, const char *outcome,
			   enum kiln_failure kind, long http_status,
			   long retry_after_ms, const char *error)
{
	struct kiln_attempt_end end = {outcome, http_status, error, NULL};
	struct kiln_next_attempt next = {0};
	const char *fb = r->fallback;
	int on_fallback = r->on_fallback;
	int used = r->provider_retries;
	int allowed = on_fallback ? r->p->max_retries : r->max_retries;
	struct kiln_err err = {0};
	struct kiln_store *st;
	int64_t delay = 0;
	enum kiln_rc rc;

	if (past_deadline(r)) {
		run_free(r);
		return;
	}
	if (kind == KILN_FAIL_TRANSIENT && used < allowed) {
		delay = kiln_backoff_ms(r->p->ext, used + 1, random_u32(),
					retry_after_ms);
		if (r->deadline_ms && kiln_now_ms() + delay > r->deadline_ms)
			delay = r->deadline_ms - kiln_now_ms();
		next.counts_as_retry = 1;
	} else if (!on_fallback && fb != NULL &&
		   kiln_config_provider(r->e->cfg, fb) != NULL) {
		next.fallback_provider = fb;
	} else {
		finish(r, NULL, &end);
		run_free(r);
		return;
	}
	next.at_ms = kiln_now_ms() + delay;
	st = store();
	rc = st ? kiln_store_end_attempt(st, r->uuid, r->task_id, &end, &next,
					 &err)
		: KILN_EIO;
	if (rc != KILN_OK) {
		if (rc != KILN_ECONFLICT)
			kiln_log(KILN_LOG_ERROR, "retry %s: %s", r->uuid,
				 err.msg);
		run_free(r);
		return;
	}
	kiln_log(KILN_LOG_INFO, "step %s attempt failed (%s); %s in %lld ms",
		 r->uuid, error,
		 next.fallback_provider ? "falling back" : "retrying",
		 (long long)delay);
	/* Mirror what the store now says. */
	if (next.fallback_provider) {
		r->provider = fb;
		r->on_fallback = 1;
		r->provider_retries = 0;
	} else {
		r->provider_retries = used + 1;
	}
	json_decref(r->job);
	r->job = NULL;
	r->phase = PHASE_CALL;
	schedule(r, delay);
}

/* ---- I/O -------------------------------------------------------------- */

/* I/O thread: keep a copy of the answer and hand the rest to a worker. */
static void on_answer(void *ctx, const struct kiln_http_response *resp)
{
	struct run *r = ctx;

	pthread_mutex_lock(&r->e->lock);
	r->xfer = 0;
	pthread_mutex_unlock(&r->e->lock);
	if (resp->is_shutdown) {
		run_free(r); /* the step stays RUNNING; taken over later */
		return;
	}
	clear_resp(r);
	r->resp = malloc(sizeof(*r->resp));
	if (r->resp == NULL) {
		/* The step stays RUNNING; its lease runs out and it is
		 * taken over. */
		kiln_log(KILN_LOG_ERROR, "step %s: out of memory", r->uuid);
		run_free(r);
		return;
	}
	*r->resp = *resp;
	r->resp->body = malloc(resp->body_len + 1);
	r->resp->content_type = resp->content_type
					? strdup(resp->content_type)
					: NULL;
	if (r->resp->body == NULL) {
		r->resp->body_len = 0;
		r->resp->curl_code = CURLE_OUT_OF_MEMORY;
		kiln_strlcpy(r->resp->error, "out of memory",
			     sizeof(r->resp->error));
	} else {
		memcpy(r->resp->body, resp->body ? resp->body : "",
		       resp->body_len);
		r->resp->body[resp->body_len] = '\0';
	}
	queue_run(r, answer_job);
}

static void send_request(struct run *r, struct kiln_http_request *req,
		 enum phase phase)
{
	uint64_t id;

	clear_resp(r); /* not needed while the next is awaited */
	r->phase = phase;
	req->lane = lane_of(r->e, r->p);
	if (r->deadline_ms) {
		long left = (long)(r->deadline_ms - kiln_now_ms());

		if (left < 1)
			left = 1;
		if (left < req->timeout_ms)
			req->timeout_ms = left;
	}
	/* The id is known before the callback can run (and free r). */
	id = kiln_io_new_id(r->e->io);
	pthread_mutex_lock(&r->e->lock);
	if (r->cancelled) {
		pthread_mutex_unlock(&r->e->lock);
		kiln_http_request_free(req);
		run_free(r);
		return;
	}
	r->xfer = id;
	/* An async submission is let finish on cancel, so that its job id
	 * is known and the job can be cancelled at the provider. */
	r->keep_on_cancel = phase == PHASE_CALL && r->p->ext->is_async;
	pthread_mutex_unlock(&r->e->lock);
	kiln_io_submit_as(r->e->io, id, req, on_answer, r);
}

static void send_get(struct run *r, const char *url, enum phase phase)
{
	struct kiln_err err = {0};
	struct kiln_http_request *req =
		kiln_provider_request(r->p, "GET", url, NULL, &err);

	if (req == NULL) {
		finish_failed(r, "permanent_error", 0, err.msg);
		run_free(r);
		return;
	}
	send_request(r, req, phase);
}

/* The step's call (sync) or submission (async). */
static void attempt(struct run *r)
{
	struct kiln_err err = {0};
	struct kiln_http_request *req;
	json_t *result;

	if (past_deadline(r)) {
		run_free(r);
		return;
	}
	if (r->input == NULL &&
	    (r->input = json_loads(r->input_text, JSON_ALLOW_NUL, NULL)) ==
		    NULL) {
		finish_failed(r, "permanent_error", 0,
			      "cannot read the step's input again");
		run_free(r);
		return;
	}
	if (strcmp(r->p->type, "dryrun") == 0) {
		struct kiln_attempt_end end = {"succeeded", 0, NULL, NULL};

		result = kiln_provider_dryrun_result(r->input, r->wf_id,
						     r->step_id,
						     r->task_type);
		finish(r, result, &end);
		json_decref(result);
		run_free(r);
		return;
	}
	req = kiln_provider_http_request(r->p, r->input, &err);
	if (req == NULL) {
		finish_failed(r, "permanent_error", 0, err.msg);
		run_free(r);
		return;
	}
	/* While the call is out, the input is a few bytes of text rather
	 * than a tree: thousands of calls are out at once. */
	if (r->input_text == NULL)
		r->input_text = kiln_jw_dump(r->input);
	if (r->input_text != NULL) {
		json_decref(r->input);
		r->input = NULL;
	}
	send_request(r, req, PHASE_CALL);
}

/* ---- results ---------------------------------------------------------- */

static void record_result(struct run *r, const json_t *result)
{
	struct kiln_attempt_end end = {"succeeded", resp_status(r), NULL,
				       NULL};

	finish(r, result, &end);
	run_free(r);
}

static void fetched_job(void *arg)
{
	struct run *r = arg;

	if (is_cancelled(r) || past_deadline(r))
		run_free(r);
	else if (r->result)
		record_result(r, r->result);
	else
		attempt_failed(r, "permanent_error", KILN_FAIL_PERMANENT, 0,
			       -1, r->fetch_error);
}

/* Any thread: the artifact downloads ended. */
static void on_fetched(void *ctx, json_t *result, const char *error)
{
	struct run *r = ctx;

	if (result == NULL && error == NULL) {
		run_free(r); /* shutting down: taken over at the next start */
		return;
	}
	r->result = result;
	free(r->fetch_error);
	r->fetch_error = error ? strdup(error) : NULL;
	queue_run(r, fetched_job);
}

/* Any thread: a download started; cancel aborts it like a call. */
static void on_fetch_started(void *ctx, uint64_t xfer)
{
	struct run *r = ctx;

	pthread_mutex_lock(&r->e->lock);
	r->xfer = xfer;
	r->keep_on_cancel = 0;
	if (r->cancelled)
		kiln_io_abort(r->e->io, xfer);
	pthread_mutex_unlock(&r->e->lock);
}

/* A result from the provider: download its artifacts, then record it. */
static void got_result(struct run *r, json_t *result)
{
	const struct kiln_provider_ext *x = r->p->ext;
	long timeout_ms = (long)r->p->timeout_s * 1000;

	if (x->artifact_pointers == NULL) {
		record_result(r, result);
		json_decref(result);
		return;
	}
	/* The downloads count against the step's deadline too. */
	if (r->deadline_ms && r->deadline_ms - kiln_now_ms() < timeout_ms)
		timeout_ms = r->deadline_ms - kiln_now_ms() > 0
				     ? (long)(r->deadline_ms - kiln_now_ms())
				     : 1;
	r->phase = PHASE_FETCH;
	kiln_artifacts_fetch(r->e->io, r->e->cfg->data_dir, r->wf_id, r->uuid,
			     result, x->artifact_pointers,
			     x->artifact_max_bytes,
			     (long)r->p->connect_timeout_s * 1000, timeout_ms,
			     on_fetch_started, on_fetched, r);
}

/* ---- answers ---------------------------------------------------------- */

/* Reads a 2xx JSON object answer into *json; otherwise fails the attempt
 * (or, for polls, schedules another) and returns -1. */
static int read_answer(struct run *r, json_t **json)
{
	struct kiln_err err = {0};
	const struct kiln_http_response *resp = r->resp;
	enum kiln_failure kind;

	if (kiln_provider_http_result(r->p, resp, json, &err) == KILN_OK)
		return 0;
	kind = (resp->curl_code == CURLE_OK && resp->status >= 200 &&
		resp->status <= 299)
		       ? KILN_FAIL_PERMANENT /* not a JSON object */
		       : kiln_provider_failure_kind(resp);
	if (r->phase != PHASE_CALL && kind == KILN_FAIL_TRANSIENT) {
		/* A status or result fetch that failed is asked again, with
		 * the retry backoff, until the step's deadline: the job itself
		 * is still fine, and a new attempt would pay for another. */
		int64_t delay;

		if (past_deadline(r)) {
			run_free(r);
			return -1;
		}
		delay = kiln_backoff_ms(r->p->ext, ++r->poll_errors,
					random_u32(), resp->retry_after_ms);
		if (r->deadline_ms && kiln_now_ms() + delay > r->deadline_ms)
			delay = r->deadline_ms - kiln_now_ms();
		kiln_log(KILN_LOG_INFO, "step %s: %s; asking again in %lld ms",
			 r->uuid, err.msg, (long long)delay);
		schedule(r, delay);
		return -1;
	}
	attempt_failed(r,
		       kind == KILN_FAIL_TRANSIENT ? "transient_error"
						   : "permanent_error",
		       kind, resp->status, resp->retry_after_ms, err.msg);
	return -1;
}

static void schedule_poll(struct run *r)
{
	int64_t delay = r->poll_ms;

	r->phase = PHASE_POLL;
	if (r->deadline_ms && kiln_now_ms() + delay > r->deadline_ms)
		delay = r->deadline_ms - kiln_now_ms();
	r->poll_ms = r->poll_ms * 2 > r->p->ext->poll_max_ms
			     ? r->p->ext->poll_max_ms
			     : r->poll_ms * 2;
	schedule(r, delay); /* last: r belongs to the timer now */
}

static void submitted(struct run *r, json_t *answer)
{
	struct kiln_err err = {0};
	struct kiln_store *st;
	json_t *job = NULL;
	enum kiln_rc rc;

	rc = kiln_provider_job(r->p, answer, &job, &err);
	if (rc != KILN_OK) {
		attempt_failed(r, "permanent_error", KILN_FAIL_PERMANENT,
			       resp_status(r), -1, err.msg);
		return;
	}
	/* Committed before the first poll: a restart polls this job instead
	 * of paying for a second one. */
	st = store();
	rc = st ? kiln_store_record_job(st, r->uuid, r->task_id, job, &err)
		: KILN_EIO;
	if (rc != KILN_OK) {
		if (rc != KILN_ECONFLICT)
			kiln_log(KILN_LOG_ERROR, "job of %s: %s", r->uuid,
				 err.msg);
		json_decref(job);
		run_free(r);
		return;
	}
	r->job = job;
	r->poll_errors = 0;
	schedule_poll(r);
}

static void polled(struct run *r, json_t *answer)
{
	const char *job_id = json_string_value(json_object_get(r->job, "id"));
	const char *result_url =
		json_string_value(json_object_get(r->job, "result_url"));
	char error[1024];

	r->poll_errors = 0;
	switch (kiln_provider_job_state(r->p, answer, job_id, error,
					sizeof(error))) {
	case KILN_JOB_RUNNING:
		if (!past_deadline(r))
			schedule_poll(r);
		else
			run_free(r);
		return;
	case KILN_JOB_FAILED:
		attempt_failed(r, "job_failed", KILN_FAIL_TRANSIENT,
			       resp_status(r), -1, error);
		return;
	case KILN_JOB_SUCCEEDED:
		break;
	}
	if (result_url != NULL)
		send_get(r, result_url, PHASE_RESULT);
	else
		got_result(r, kiln_provider_job_result(r->p, answer, job_id));
}

static void answer_job(void *arg)
{
	struct run *r = arg;
	json_t *answer = NULL;

	if (r->resp->is_aborted) {
		run_free(r);
		return;
	}
	if (is_cancelled(r)) {
		/* A job accepted after its step was cancelled: stop it too. */
		if (r->phase == PHASE_CALL && r->p->ext->is_async &&
		    kiln_provider_http_result(r->p, r->resp, &answer, NULL) ==
			    KILN_OK) {
			json_t *job = NULL;

			if (kiln_provider_job(r->p, answer, &job, NULL) ==
			    KILN_OK)
				cancel_job(r->e, r->p->name, job);
			json_decref(job);
			json_decref(answer);
		}
		run_free(r);
		return;
	}
	if (read_answer(r, &answer) != 0)
		return;
	switch (r->phase) {
	case PHASE_CALL:
		if (r->p->ext->is_async)
			submitted(r, answer);
		else
			got_result(r, json_incref(answer));
		break;
	case PHASE_POLL:
		polled(r, answer);
		break;
	case PHASE_RESULT:
		got_result(r, kiln_provider_job_result(
				      r->p, answer,
				      json_string_value(
					      json_object_get(r->job, "id"))));
		break;
	case PHASE_FETCH:
		break;
	}
	json_decref(answer);
}

/* ---- starting and resuming --------------------------------------------- */

/* A timer fired: poll, or start the next attempt. */
static void next_job(void *arg)
{
	struct run *r = arg;
	struct kiln_err err = {0};
	struct kiln_store *st;
	enum kiln_rc rc;

	if (is_cancelled(r)) {
		run_free(r);
		return;
	}
	if (r->phase == PHASE_POLL || r->phase == PHASE_RESULT) {
		if (past_deadline(r)) {
			run_free(r);
			return;
		}
		send_get(r, json_string_value(json_object_get(
				    r->job, r->phase == PHASE_POLL
						    ? "status_url"
						    : "result_url")),
			 r->phase);
		return;
	}
	st = store();
	rc = st ? kiln_store_start_attempt(st, r->uuid, r->task_id, &err)
		: KILN_EIO;
	if (rc != KILN_OK) {
		if (rc != KILN_ECONFLICT)
			kiln_log(KILN_LOG_ERROR, "attempt of %s: %s", r->uuid,
				 err.msg);
		run_free(r);
		return;
	}
	if (prepare(r) != 0) {
		run_free(r);
		return;
	}
	attempt(r);
}

/* A step claimed by advance or finish: its first attempt. */
static void start_job(void *arg)
{
	struct run *r = arg;

	if (prepare(r) != 0)
		run_free(r);
	else
		attempt(r);
}

/* Carries on with a RUNNING step this process has just taken the lease
 * of: poll its job, wait out its backoff, or start a new attempt. */
static void resume(struct kiln_engine *e, json_t *claim)
{
	json_t *job = json_object_get(claim, "job");
	json_t *next_at = json_object_get(claim, "next_attempt_at");
	int64_t next_at_ms = json_integer_value(next_at);
	int has_next_at = json_is_integer(next_at);
	struct run *r;

	if (!json_is_object(job) || !json_object_get(job, "status_url"))
		job = NULL;
	json_incref(job); /* prepare may drop the claim */
	r = run_new(e, claim);
	if (r == NULL) {
		json_decref(job);
		return;
	}
	if (job != NULL) {
		r->job = job;
		if (prepare(r) != 0) {
			run_free(r);
			return;
		}
		r->phase = PHASE_POLL;
		kiln_log(KILN_LOG_INFO, "step %s: polling job %s again",
			 r->uuid,
			 json_string_value(json_object_get(job, "id")));
		schedule(r, 0);
	} else if (has_next_at) {
		r->phase = PHASE_CALL;
		schedule(r, next_at_ms - kiln_now_ms());
	} else {
		r->phase = PHASE_CALL;
		schedule(r, 0);
	}
}

static void take_over_job(void *arg)
{
	struct id_job *j = arg;
	struct kiln_err err = {0};
	struct kiln_store *st = store();
	json_t *claim = NULL;

	if (st != NULL &&
	    kiln_store_take_over(st, j->id, j->engine->node_id,
				 kiln_now_ms() + STEP_LEASE_MS, !j->forced,
				 &claim, &err) == KILN_OK)
		resume(j->engine, claim);
	else if (err.code != KILN_ECONFLICT && err.code != KILN_OK)
		kiln_log(KILN_LOG_ERROR, "take over %s: %s", j->id, err.msg);
	free(j);
}

/* ---- leases ----------------------------------------------------------- */

static void lease_tick(void *ctx, int is_shutdown);

/* Renews the leases of the steps in flight here, and takes over RUNNING
 * steps whose lease has expired (their owner is gone). */
static void lease_job(void *arg)
{
	struct kiln_engine *e = arg;
	struct kiln_err err = {0};
	struct kiln_store *st = store();
	json_t *mine = json_array(), *expired = NULL;
	struct run *r;
	size_t i;

	pthread_mutex_lock(&e->lock);
	for (r = e->runs; r; r = r->next)
		json_array_append_new(mine, json_string(r->uuid));
	pthread_mutex_unlock(&e->lock);
	if (st != NULL &&
	    kiln_store_renew_leases(st, e->node_id, mine,
				    kiln_now_ms() + STEP_LEASE_MS,
				    &err) != KILN_OK)
		kiln_log(KILN_LOG_ERROR, "renewing leases: %s", err.msg);
	if (st != NULL &&
	    kiln_store_running_steps(st, 1, &expired, &err) == KILN_OK) {
		for (i = 0; i < json_array_size(expired); i++)
			submit_id_job(e, take_over_job,
				      json_string_value(
					      json_array_get(expired, i)));
		json_decref(expired);
	}
	json_decref(mine);
	kiln_io_after(e->io, LEASE_TICK_MS, lease_tick, e);
}

static void lease_tick(void *ctx, int is_shutdown)
{
	struct kiln_engine *e = ctx;

	if (!is_shutdown)
		kiln_pool_submit(e->pool, lease_job, NULL, e);
}

/* ---- cancel ----------------------------------------------------------- */

static void on_cancel_answer(void *ctx, const struct kiln_http_response *resp)
{
	char *what = ctx;

	if (!resp->is_shutdown)
		kiln_log(resp->curl_code == CURLE_OK && resp->status < 300
				 ? KILN_LOG_INFO
				 : KILN_LOG_WARN,
			 "cancel of %s: %s%ld", what,
			 resp->curl_code == CURLE_OK ? "HTTP " : resp->error,
			 resp->curl_code == CURLE_OK ? resp->status : 0L);
	free(what);
}

/* Tells the provider to stop job (best effort: the step is already
 * CANCELLED in the store). */
static void cancel_job(struct kiln_engine *e, const char *pname,
		       const json_t *job)
{
	const struct kiln_provider_cfg *p =
		kiln_config_provider(e->cfg, pname ? pname : "");
	const char *url = json_string_value(json_object_get(job, "cancel_url"));
	const char *id = json_string_value(json_object_get(job, "id"));
	struct kiln_http_request *req;
	struct kiln_err err = {0};
	json_t *body;
	char *what;

	if (p == NULL || url == NULL || id == NULL)
		return;
	body = kiln_provider_cancel_body(p, id);
	req = kiln_provider_request(p, p->ext->cancel_method, url, body, &err);
	json_decref(body);
	what = malloc(strlen(pname) + strlen(id) + 8);
	if (req == NULL || what == NULL) {
		kiln_http_request_free(req);
		free(what);
		kiln_log(KILN_LOG_ERROR, "cannot cancel job %s: %s", id,
			 err.msg);
		return;
	}
	sprintf(what, "%s job %s", pname, id);
	req->lane = lane_of(e, p);
	kiln_io_submit(e->io, req, on_cancel_answer, what);
}

void kiln_engine_stop_steps(struct kiln_engine *e, const json_t *stopped)
{
	const json_t *s;
	struct run *r;
	size_t i;

	json_array_foreach(stopped, i, s) {
		const char *uuid = json_string_value(json_object_get(s, "uuid"));

		pthread_mutex_lock(&e->lock);
		for (r = e->runs; r; r = r->next) {
			if (strcmp(r->uuid, uuid) != 0)
				continue;
			r->cancelled = 1;
			if (r->xfer && !r->keep_on_cancel)
				kiln_io_abort(e->io, r->xfer);
		}
		pthread_mutex_unlock(&e->lock);
		cancel_job(e,
			   json_string_value(json_object_get(s, "provider")),
			   json_object_get(s, "job"));
	}
}

/* ---- start and stop --------------------------------------------------- */

enum kiln_rc kiln_engine_start(const struct kiln_config *cfg,
			       struct kiln_engine **out, struct kiln_err *err)
{
	struct kiln_engine *e = calloc(1, sizeof(*e));
	struct kiln_store *st;
	json_t *running = NULL, *steps = NULL;
	enum kiln_rc rc;
	size_t i;

	if (e == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	e->cfg = cfg;
	pthread_mutex_init(&e->lock, NULL);
	kiln_uuid_new(e->node_id);
	st = kiln_store_thread(err);
	if (st == NULL) {
		rc = err->code;
		goto fail;
	}
	rc = kiln_store_running_workflows(st, &running, err);
	if (rc == KILN_OK)
		rc = kiln_store_running_steps(st, 0, &steps, err);
	if (rc != KILN_OK)
		goto fail;
	rc = kiln_io_start((size_t)cfg->max_inflight,
			   (size_t)cfg->idle_connections, &e->io, err);
	if (rc != KILN_OK)
		goto fail;
	e->lanes = calloc(cfg->n_providers + 1, sizeof(*e->lanes));
	if (e->lanes == NULL) {
		rc = kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
		goto fail;
	}
	for (i = 0; i < cfg->n_providers; i++)
		e->lanes[i] = kiln_io_lane(
			e->io, (size_t)cfg->providers[i].ext->concurrency);
	rc = kiln_pool_start((size_t)cfg->workers, &e->pool, err);
	if (rc != KILN_OK)
		goto fail;
	rc = kiln_store_pacer_start(cfg->commit_delay_us, err);
	if (rc != KILN_OK) {
		kiln_pool_stop(e->pool);
		goto fail;
	}
	/* The data dir is locked: every RUNNING step was left by a process
	 * that is gone, whatever its lease says. */
	for (i = 0; i < json_array_size(steps); i++)
		submit_id_job(e, take_over_forced_job,
			      json_string_value(json_array_get(steps, i)));
	for (i = 0; i < json_array_size(running); i++)
		kiln_engine_kick(e, json_string_value(
					    json_array_get(running, i)));
	if (json_array_size(steps) > 0)
		kiln_log(KILN_LOG_INFO,
			 "resuming %zu running step(s) of %zu running"
			 " workflow(s)",
			 json_array_size(steps), json_array_size(running));
	kiln_io_after(e->io, LEASE_TICK_MS, lease_tick, e);
	json_decref(running);
	json_decref(steps);
	*out = e;
	return KILN_OK;
fail:
	json_decref(running);
	json_decref(steps);
	kiln_io_free(e->io);
	free(e->lanes);
	pthread_mutex_destroy(&e->lock);
	free(e);
	return rc;
}

void kiln_engine_stop(struct kiln_engine *e)
{
	if (e == NULL)
		return;
	/* Stop the I/O loop first (transfers and timers hand their runs
	 * back with is_shutdown), then the pool (queued jobs are dropped:
	 * the store still holds the work).  The commit pacer before both:
	 * what follows its commits starts steps, on this engine. */
	kiln_store_pacer_stop();
	kiln_io_stop(e->io);
	kiln_pool_stop(e->pool);
	kiln_io_free(e->io);
	while (e->runs)
		run_free(e->runs);
	free(e->lanes);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
