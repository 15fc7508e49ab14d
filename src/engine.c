/*
 * engine.c - the DAG scheduler: the only writer of step state.
 *
 * Three kinds of job run on the worker pool:
 *   advance(wf)   store: mark PENDING steps whose dependencies are all
 *                 COMPLETED as READY (or the workflow COMPLETED); queue a
 *                 run job per READY step.
 *   run(step)     store: claim READY -> RUNNING; resolve input mappings;
 *                 dry-run providers finish at once, http providers hand a
 *                 request to the I/O loop.
 *   answer(step)  (queued by the I/O loop's callback) read the provider's
 *                 answer; store: record COMPLETED or FAILED.
 * Each finish queues advance(wf) again.  Jobs carry only ids: the store
 * decides, so a duplicate or stale job is harmless (the guarded claim or
 * finish simply changes nothing).
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/engine.h"
#include "kiln/io_loop.h"
#include "kiln/log.h"
#include "kiln/mapping.h"
#include "kiln/pool.h"
#include "kiln/provider.h"
#include "kiln/store.h"

/* How long a claim stays valid without renewal (ms). */
#define STEP_LEASE_MS (10 * 60 * 1000)

struct kiln_engine {
	const struct kiln_config *cfg;
	struct kiln_pool *pool;
	struct kiln_io *io;
	char node_id[KILN_UUID_LEN]; /* lease owner name of this process */
};

struct id_job {
	struct kiln_engine *engine;
	char id[KILN_UUID_LEN];
};

/* A step whose provider call is in flight. */
struct call {
	struct kiln_engine *engine;
	json_t *claim; /* from kiln_store_claim_step */
	struct kiln_http_response resp; /* copied from the I/O loop */
};

static void advance_job(void *arg);
static void run_job(void *arg);

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
	if (kiln_pool_submit(e->pool, fn, free, j) != 0)
		free(j); /* stopping: the store still holds the work */
}

void kiln_engine_kick(struct kiln_engine *e, const char *wf_id)
{
	submit_id_job(e, advance_job, wf_id);
}

static void advance_job(void *arg)
{
	struct id_job *j = arg;
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);
	json_t *ready = NULL;
	size_t i;

	if (st == NULL || kiln_store_advance(st, j->id, &ready, &err) !=
				  KILN_OK) {
		if (err.code != KILN_ENOTFOUND)
			kiln_log(KILN_LOG_ERROR, "advance %s: %s", j->id,
				 err.msg);
		free(j);
		return;
	}
	for (i = 0; i < json_array_size(ready); i++)
		submit_id_job(j->engine, run_job,
			      json_string_value(json_array_get(ready, i)));
	json_decref(ready);
	free(j);
}

/* Records the end of the claimed attempt and schedules what follows. */
static void finish(struct kiln_engine *e, const json_t *claim,
		   const json_t *result, const char *error_message)
{
	const char *uuid = json_string_value(json_object_get(claim, "uuid"));
	const char *task_id =
		json_string_value(json_object_get(claim, "task_id"));
	char wf_id[KILN_UUID_LEN];
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);
	enum kiln_rc rc;

	if (st == NULL) {
		kiln_log(KILN_LOG_ERROR, "finish %s: %s", uuid, err.msg);
		return;
	}
	rc = kiln_store_finish_step(st, uuid, task_id, result, error_message,
				    wf_id, &err);
	if (rc == KILN_ECONFLICT) {
		kiln_log(KILN_LOG_DEBUG, "dropping stale answer: %s", err.msg);
		return;
	}
	if (rc != KILN_OK) {
		/* The step stays RUNNING with its lease; recovery retries. */
		kiln_log(KILN_LOG_ERROR, "finish %s: %s", uuid, err.msg);
		return;
	}
	kiln_log(KILN_LOG_DEBUG, "step %s %s", uuid,
		 error_message ? "failed" : "completed");
	kiln_engine_kick(e, wf_id);
}

/* The step's request: its config with the input mappings applied. */
static json_t *resolve_input(const json_t *claim, struct kiln_err *err)
{
	json_t *config = json_object_get(claim, "config");
	json_t *mappings = json_object_get(claim, "input_mappings");
	json_t *results = json_object_get(claim, "results");
	json_t *input = json_is_object(config) ? json_deep_copy(config)
					       : json_object();
	size_t i;

	for (i = 0; i < json_array_size(mappings); i++) {
		json_t *m = json_array_get(mappings, i);
		const char *from = json_string_value(
			json_object_get(m, "from_step"));

		if (kiln_mapping_apply(input, m,
				       json_object_get(results, from ? from : ""),
				       err) != KILN_OK) {
			json_decref(input);
			return NULL;
		}
	}
	return input;
}

static void answer_job(void *arg)
{
	struct call *c = arg;
	const char *pname =
		json_string_value(json_object_get(c->claim, "provider"));
	const struct kiln_provider_cfg *p =
		kiln_config_provider(c->engine->cfg, pname);
	struct kiln_err err = {0};
	json_t *result = NULL;

	if (p == NULL)
		finish(c->engine, c->claim, NULL, "provider is not configured");
	else if (kiln_provider_http_result(p, &c->resp, &result, &err) ==
		 KILN_OK)
		finish(c->engine, c->claim, result, NULL);
	else
		finish(c->engine, c->claim, NULL, err.msg);
	json_decref(result);
	json_decref(c->claim);
	free(c->resp.body);
	free(c->resp.content_type);
	free(c);
}

static void free_call(void *arg)
{
	struct call *c = arg;

	json_decref(c->claim);
	free(c->resp.body);
	free(c->resp.content_type);
	free(c);
}

/* I/O thread: copy the answer and hand the rest to a worker. */
static void on_answer(void *ctx, const struct kiln_http_response *resp)
{
	struct call *c = ctx;

	if (resp->is_shutdown) {
		free_call(c); /* the step stays RUNNING; recovery retries it */
		return;
	}
	c->resp = *resp;
	c->resp.body = malloc(resp->body_len + 1);
	c->resp.content_type = resp->content_type
				       ? strdup(resp->content_type)
				       : NULL;
	if (c->resp.body == NULL) {
		free_call(c);
		return;
	}
	memcpy(c->resp.body, resp->body ? resp->body : "", resp->body_len);
	c->resp.body[resp->body_len] = '\0';
	if (kiln_pool_submit(c->engine->pool, answer_job, free_call, c) != 0)
		free_call(c);
}

static void run_job(void *arg)
{
	struct id_job *j = arg;
	struct kiln_engine *e = j->engine;
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);
	const struct kiln_provider_cfg *p;
	struct kiln_http_request *req;
	json_t *claim = NULL, *input = NULL, *result;
	const char *pname;
	enum kiln_rc rc;
	struct call *c;

	if (st == NULL)
		goto out;
	rc = kiln_store_claim_step(st, j->id, e->node_id,
				   kiln_now_ms() + STEP_LEASE_MS, &claim, &err);
	if (rc != KILN_OK) {
		if (rc != KILN_ECONFLICT)
			kiln_log(KILN_LOG_ERROR, "claim %s: %s", j->id,
				 err.msg);
		goto out;
	}
	input = resolve_input(claim, &err);
	if (input == NULL) {
		finish(e, claim, NULL, err.msg);
		goto out;
	}
	pname = json_string_value(json_object_get(claim, "provider"));
	p = kiln_config_provider(e->cfg, pname ? pname : "");
	if (p == NULL) {
		kiln_err_set(&err, KILN_EINVAL, "",
			     "provider '%s' is not configured", pname);
		finish(e, claim, NULL, err.msg);
		goto out;
	}
	if (strcmp(p->type, "dryrun") == 0) {
		result = kiln_provider_dryrun_result(
			input,
			json_string_value(json_object_get(claim, "workflow_id")),
			json_string_value(json_object_get(claim, "step_id")),
			json_string_value(json_object_get(claim, "task_type")));
		finish(e, claim, result, NULL);
		json_decref(result);
		goto out;
	}
	req = kiln_provider_http_request(p, input, &err);
	c = req ? calloc(1, sizeof(*c)) : NULL;
	if (c == NULL) {
		kiln_http_request_free(req);
		finish(e, claim, NULL, "out of memory building the request");
		goto out;
	}
	c->engine = e;
	c->claim = claim;
	claim = NULL; /* owned by the call now */
	kiln_io_submit(e->io, req, on_answer, c);
out:
	json_decref(claim);
	json_decref(input);
	free(j);
}

enum kiln_rc kiln_engine_start(const struct kiln_config *cfg,
			       struct kiln_engine **out, struct kiln_err *err)
{
	struct kiln_engine *e = calloc(1, sizeof(*e));
	struct kiln_store *st;
	json_t *running = NULL;
	enum kiln_rc rc;
	size_t i;

	if (e == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	e->cfg = cfg;
	kiln_uuid_new(e->node_id);
	st = kiln_store_thread(err);
	if (st == NULL) {
		rc = err->code;
		goto fail;
	}
	rc = kiln_store_recover(st, &running, err);
	if (rc != KILN_OK)
		goto fail;
	rc = kiln_io_start(0, &e->io, err);
	if (rc != KILN_OK)
		goto fail;
	rc = kiln_pool_start((size_t)cfg->workers, &e->pool, err);
	if (rc != KILN_OK)
		goto fail;
	for (i = 0; i < json_array_size(running); i++)
		kiln_engine_kick(e, json_string_value(
					    json_array_get(running, i)));
	if (json_array_size(running) > 0)
		kiln_log(KILN_LOG_INFO, "resuming %zu running workflow(s)",
			 json_array_size(running));
	json_decref(running);
	*out = e;
	return KILN_OK;
fail:
	json_decref(running);
	kiln_io_stop(e->io);
	free(e);
	return rc;
}

void kiln_engine_stop(struct kiln_engine *e)
{
	if (e == NULL)
		return;
	/* Stop the I/O loop first so no callback queues new jobs, then the
	 * pool (queued jobs are dropped: the store still holds the work). */
	kiln_io_stop(e->io);
	kiln_pool_stop(e->pool);
	free(e);
}
