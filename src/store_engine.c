/*
 * store_engine.c - the state changes the engine makes: advancing a
 * workflow's DAG, claiming a READY step, recording a step's end, and
 * recovering after a crash.
 *
 * Every function here is one BEGIN IMMEDIATE transaction.  Claims and
 * finishes are guarded updates (`WHERE status = 'READY'`, `WHERE status =
 * 'RUNNING' AND task_id = ?`) checked with sqlite3_changes(), so a step is
 * run by one worker at a time and a late answer for a cancelled or reset
 * attempt is dropped instead of overwriting newer state.
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/dag.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/webhook_event.h"
#include "kiln/workflow_validate.h"
#include "store_claim.h"
#include "store_row.h"

static enum kiln_rc step_done(struct kiln_store *st, sqlite3_stmt *s,
			      int src, struct kiln_err *err)
{
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

/* Runs a statement with ?1 = text id, ?2 = now; expects no rows. */
static enum kiln_rc exec_id_now(struct kiln_store *st, const char *sql,
				const char *id, int64_t now,
				struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, now);
	return step_done(st, s, sqlite3_step(s), err);
}

/* ---- advance --------------------------------------------------------- */

/* A step of workflow ?1 has completed, at ?2. */
static const char SQL_COUNT_STEP[] =
	"UPDATE workflows SET completed_steps = completed_steps + 1,"
	" updated_at = ?2 WHERE id = ?1";

struct step_graph {
	size_t n;
	struct kiln_dag_node *nodes;
	enum kiln_step_status *status;
	char **uuids;
	json_t **deps; /* parsed dependency arrays */
	const char ***dep_ids;
};

static void graph_free(struct step_graph *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->uuids[i]);
		free((void *)g->nodes[i].id);
		json_decref(g->deps[i]);
		free(g->dep_ids[i]);
	}
	free(g->nodes);
	free(g->status);
	free(g->uuids);
	free(g->deps);
	free(g->dep_ids);
	memset(g, 0, sizeof(*g));
}

static enum kiln_rc graph_load(struct kiln_store *st, const char *wf_id,
			       struct step_graph *g, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT id, step_id, status, dependencies FROM steps"
		" WHERE workflow_id = ?1 ORDER BY position";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	size_t cap = 0;
	int src;

	memset(g, 0, sizeof(*g));
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, wf_id, -1, SQLITE_TRANSIENT);
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		size_t i = g->n, j;
		json_t *deps;

		if (i == cap) {
			cap = cap ? cap * 2 : 8;
			g->nodes = realloc(g->nodes, cap * sizeof(*g->nodes));
			g->status = realloc(g->status, cap * sizeof(*g->status));
			g->uuids = realloc(g->uuids, cap * sizeof(*g->uuids));
			g->deps = realloc(g->deps, cap * sizeof(*g->deps));
			g->dep_ids = realloc(g->dep_ids,
					     cap * sizeof(*g->dep_ids));
			if (!g->nodes || !g->status || !g->uuids || !g->deps ||
			    !g->dep_ids)
				abort(); /* out of memory: nothing sane left */
		}
		g->uuids[i] = strdup((const char *)sqlite3_column_text(s, 0));
		g->nodes[i].id = strdup((const char *)sqlite3_column_text(s, 1));
		if (kiln_step_status_parse(
			    (const char *)sqlite3_column_text(s, 2),
			    &g->status[i]) != 0)
			g->status[i] = KILN_STEP_PENDING;
		deps = kiln_col_json(s, 3);
		g->deps[i] = deps;
		g->dep_ids[i] = calloc(json_array_size(deps) + 1,
				       sizeof(char *));
		for (j = 0; j < json_array_size(deps); j++)
			g->dep_ids[i][j] =
				json_string_value(json_array_get(deps, j));
		g->nodes[i].deps = g->dep_ids[i];
		g->nodes[i].n_deps = json_array_size(deps);
		g->n++;
	}
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		graph_free(g);
		return kiln_store_fail(st, src, err);
	}
	return KILN_OK;
}

static enum kiln_rc workflow_status(struct kiln_store *st, const char *id,
				    enum kiln_wf_status *out,
				    struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(
		st, "SELECT status FROM workflows WHERE id = ?1", err);
	enum kiln_rc rc = KILN_OK;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		if (kiln_wf_status_parse((const char *)sqlite3_column_text(s, 0),
					 out) != 0)
			rc = kiln_err_set(err, KILN_EIO, "", "corrupt status");
	} else if (src == SQLITE_DONE) {
		rc = kiln_err_set(err, KILN_ENOTFOUND, "",
				  "Workflow %s not found", id);
	} else {
		rc = kiln_store_fail(st, src, err);
	}
	sqlite3_reset(s);
	return rc;
}

/* Marks the steps whose dependencies are all COMPLETED as READY, in g
 * and, when write, in the store (a step about to be claimed in the same
 * transaction goes from PENDING to RUNNING in one update). */
static enum kiln_rc mark_ready(struct kiln_store *st, struct step_graph *g,
			       int64_t now, int write, struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE steps SET status = 'READY', updated_at = ?2"
		" WHERE id = ?1 AND status = 'PENDING'";
	size_t *ready = malloc((g->n + 1) * sizeof(*ready));
	size_t n_ready, i;
	enum kiln_rc rc = KILN_OK;

	if (ready == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	n_ready = kiln_dag_ready(g->nodes, g->n, g->status, ready);
	for (i = 0; i < n_ready && rc == KILN_OK; i++) {
		if (write)
			rc = exec_id_now(st, sql, g->uuids[ready[i]], now,
					 err);
		g->status[ready[i]] = KILN_STEP_READY;
	}
	free(ready);
	return rc;
}

static enum kiln_rc claim_locked(struct kiln_store *st,
				 const char *step_uuid, int from_pending,
				 const struct kiln_claimer *who,
				 json_t **claim_out, struct kiln_err *err);

/*
 * The advance of a workflow known to be RUNNING, inside the caller's
 * transaction: marks it COMPLETED when every step is, else marks PENDING
 * steps whose dependencies are COMPLETED as READY.  Appends the uuids of
 * all READY steps to out, or, with who, claims them and appends their
 * claims.  count: a step has just completed and completed_steps does not
 * show it yet; the COMPLETED update sets it to total_steps anyway, so
 * only an advance that leaves steps to run counts it (one update less
 * per workflow on the hot path).
 */
static enum kiln_rc advance_running(struct kiln_store *st, const char *wf_id,
				    const struct kiln_claimer *who, int count,
				    json_t *out, struct kiln_err *err)
{
	static const char sql_complete[] =
		"UPDATE workflows SET status = 'COMPLETED', completed_at = ?2,"
		" completed_steps = total_steps, updated_at = ?2"
		" WHERE id = ?1 AND status = 'RUNNING'";
	struct step_graph g = {0};
	int64_t now = kiln_now_ms();
	size_t i, n_done = 0;
	enum kiln_rc rc;
	json_t *claim;

	rc = graph_load(st, wf_id, &g, err);
	if (rc != KILN_OK)
		return rc;
	for (i = 0; i < g.n; i++)
		n_done += g.status[i] == KILN_STEP_COMPLETED;
	if (n_done == g.n) {
		rc = exec_id_now(st, sql_complete, wf_id, now, err);
		if (rc == KILN_OK && sqlite3_changes(kiln_store_db(st)) > 0) {
			rc = kiln_store_queue_event(st, wf_id,
						    "workflow.completed", NULL,
						    NULL, err);
			if (rc == KILN_OK)
				rc = kiln_store_workflow_ended(st, wf_id, NULL,
							       err);
		}
		goto out;
	}
	if (count)
		rc = exec_id_now(st, SQL_COUNT_STEP, wf_id, now, err);
	if (rc == KILN_OK)
		rc = mark_ready(st, &g, now, who == NULL, err);
	for (i = 0; rc == KILN_OK && i < g.n; i++) {
		if (g.status[i] != KILN_STEP_READY)
			continue;
		if (who == NULL) {
			json_array_append_new(out, json_string(g.uuids[i]));
			continue;
		}
		rc = claim_locked(st, g.uuids[i], 1, who, &claim, err);
		if (rc == KILN_OK)
			json_array_append_new(out, claim);
	}
out:
	graph_free(&g);
	return rc;
}

enum kiln_rc kiln_store_advance_locked(struct kiln_store *st, const char *wf_id,
				   const struct kiln_claimer *who,
				   json_t *out, struct kiln_err *err)
{
	enum kiln_wf_status wf_status;
	enum kiln_rc rc;

	rc = workflow_status(st, wf_id, &wf_status, err);
	if (rc != KILN_OK || wf_status != KILN_WF_RUNNING)
		return rc;
	return advance_running(st, wf_id, who, 0, out, err);
}

static enum kiln_rc advance_tx(struct kiln_store *st, const char *wf_id,
			       const struct kiln_claimer *who, json_t **out,
			       struct kiln_err *err)
{
	json_t *list = json_array();
	enum kiln_rc rc;

	rc = kiln_store_begin(st, err);
	if (rc == KILN_OK) {
		rc = kiln_store_advance_locked(st, wf_id, who, list, err);
		if (rc == KILN_OK || rc == KILN_ENOTFOUND) {
			enum kiln_rc crc = kiln_store_commit(st, err);

			if (rc == KILN_OK)
				rc = crc;
		} else {
			kiln_store_rollback(st);
		}
	}
	if (rc == KILN_OK)
		*out = list;
	else
		json_decref(list);
	return rc;
}

enum kiln_rc kiln_store_advance(struct kiln_store *st, const char *wf_id,
				json_t **ready_out, struct kiln_err *err)
{
	return advance_tx(st, wf_id, NULL, ready_out, err);
}

enum kiln_rc kiln_store_advance_claim(struct kiln_store *st,
				      const char *wf_id,
				      const struct kiln_claimer *who,
				      json_t **claims, struct kiln_err *err)
{
	return advance_tx(st, wf_id, who, claims, err);
}

/* ---- claim ----------------------------------------------------------- */

/* The attempt object appended when an attempt starts; ?2 = now (ms). */
#define NEW_ATTEMPT                                                           \
	"json_insert(attempts, '$[#]', json_object('attempt',"                \
	" json_array_length(attempts) + 1, 'provider',"                       \
	" COALESCE(current_provider, provider), 'started_at',"                \
	" strftime('%Y-%m-%dT%H:%M:%fZ', ?2 / 1000.0, 'unixepoch'),"          \
	" 'finished_at', NULL, 'outcome', 'running', 'http_status', NULL,"    \
	" 'error', NULL, 'job_id', NULL))"

static const struct kiln_col_spec CLAIM_ROW[] = {
	{"workflow_id", 0, KILN_COL_TEXT},
	{"step_id", 1, KILN_COL_TEXT},
	{"task_type", 2, KILN_COL_TEXT},
	{"provider", 3, KILN_COL_TEXT},
	{"config", 4, KILN_COL_JSON},
	{"input_mappings", 5, KILN_COL_JSON},
	{"retry_count", 6, KILN_COL_INT},
	{"max_retries", 7, KILN_COL_INT},
	{"task_id", 8, KILN_COL_TEXT},
	{"current_provider", 9, KILN_COL_TEXT},
	{"on_fallback", 10, KILN_COL_BOOL},
	{"provider_retries", 11, KILN_COL_INT},
	{"provider_config", 12, KILN_COL_JSON},
	{"fallback_provider_type", 13, KILN_COL_TEXT},
	{"fallback_provider_config", 14, KILN_COL_JSON},
	{"job", 15, KILN_COL_JSON},
	{"next_attempt_at", 16, KILN_COL_INT},
	{"first_started_at", 17, KILN_COL_INT},
};

/* The columns of a claim (CLAIM_ROW's, then the run's inputs). */
#define CLAIM_COLS                                                            \
	"workflow_id, step_id, task_type, provider, config,"                  \
	" input_mappings, retry_count, max_retries, task_id,"                \
	" COALESCE(current_provider, provider), on_fallback,"                \
	" provider_retries, provider_config, fallback_provider_type,"        \
	" fallback_provider_config, job, next_attempt_at,"                   \
	" first_started_at, (SELECT run_inputs FROM workflows w"              \
	"  WHERE w.id = steps.workflow_id)"

/* The claim of step_uuid from s's current row of CLAIM_COLS, with the
 * results of the workflow's COMPLETED steps (read on st's connection). */
static enum kiln_rc claim_of_row(struct kiln_store *st, sqlite3_stmt *s,
				 const char *step_uuid, json_t **claim_out,
				 struct kiln_err *err)
{
	static const char sql_results[] =
		"SELECT step_id, result FROM steps WHERE workflow_id = ?1"
		" AND status = 'COMPLETED'";
	json_t *claim, *results;
	sqlite3_stmt *r;
	int src;

	claim = json_object();
	json_object_set_new_nocheck(claim, "uuid", json_string(step_uuid));
	kiln_row_set(claim, s, CLAIM_ROW,
		     sizeof(CLAIM_ROW) / sizeof(CLAIM_ROW[0]));
	/* A run's inputs are what mappings from "$inputs" read. */
	results = json_object();
	json_object_set_new_nocheck(claim, "results", results);
	if (sqlite3_column_type(s, 18) != SQLITE_NULL)
		json_object_set_new_nocheck(results, KILN_INPUTS_STEP,
					    kiln_col_json(s, 18));
	r = kiln_store_stmt(st, sql_results, err);
	if (r == NULL) {
		json_decref(claim);
		return err ? err->code : KILN_EIO;
	}
	sqlite3_bind_text(r, 1,
			  json_string_value(json_object_get(claim,
							    "workflow_id")),
			  -1, SQLITE_TRANSIENT);
	while ((src = sqlite3_step(r)) == SQLITE_ROW)
		json_object_set_new(results,
				    (const char *)sqlite3_column_text(r, 0),
				    kiln_col_json(r, 1));
	sqlite3_reset(r);
	if (src != SQLITE_DONE) {
		json_decref(claim);
		return kiln_store_fail(st, src, err);
	}
	*claim_out = claim;
	return KILN_OK;
}

enum kiln_rc kiln_store_load_claim(struct kiln_store *st,
				   const char *step_uuid, json_t **claim_out,
				   struct kiln_err *err)
{
	static const char sql_step[] =
		"SELECT " CLAIM_COLS " FROM steps WHERE id = ?1";
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	s = kiln_store_stmt(st, sql_step, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src != SQLITE_ROW) {
		sqlite3_reset(s);
		if (src == SQLITE_DONE)
			return kiln_err_set(err, KILN_ENOTFOUND, "",
					    "step %s not found", step_uuid);
		return kiln_store_fail(st, src, err);
	}
	rc = claim_of_row(st, s, step_uuid, claim_out, err);
	sqlite3_reset(s);
	return rc;
}

void kiln_claim_first_attempts(struct kiln_jw *w, const char *provider,
			       int64_t now_ms)
{
	char started[KILN_RFC3339_LEN];

	kiln_rfc3339(now_ms, started);
	kiln_jw_open(w, '[');
	kiln_jw_open(w, '{');
	kiln_jw_key(w, "attempt");
	kiln_jw_int(w, 1);
	kiln_jw_key(w, "provider");
	kiln_jw_str(w, provider);
	kiln_jw_key(w, "started_at");
	kiln_jw_str(w, started);
	kiln_jw_key(w, "finished_at");
	kiln_jw_null(w);
	kiln_jw_key(w, "outcome");
	kiln_jw_str(w, "running");
	kiln_jw_key(w, "http_status");
	kiln_jw_null(w);
	kiln_jw_key(w, "error");
	kiln_jw_null(w);
	kiln_jw_key(w, "job_id");
	kiln_jw_null(w);
	kiln_jw_close(w, '}');
	kiln_jw_close(w, ']');
}

/* What a step's claim copies of the step as validated. */
static const struct kiln_copy_spec CLAIM_OF_STEP[] = {
	{"uuid", "uuid", KILN_COPY_TEXT},
	{"step_id", "id", KILN_COPY_TEXT},
	{"task_type", "task_type", KILN_COPY_TEXT},
	{"provider", "provider", KILN_COPY_TEXT},
	{"current_provider", "provider", KILN_COPY_TEXT},
	{"config", "config", KILN_COPY_OBJECT},
	{"input_mappings", "input_mappings", KILN_COPY_ARRAY},
	{"provider_config", "provider_config", KILN_COPY_JSON},
	{"fallback_provider_type", "fallback_provider_type", KILN_COPY_TEXT},
	{"fallback_provider_config", "fallback_provider_config",
	 KILN_COPY_JSON},
};

json_t *kiln_claim_of_new_step(const char *wf_id, const json_t *step,
			       const json_t *run_inputs, const char *task_id,
			       int64_t now_ms)
{
	json_t *claim = json_object(), *results = json_object();

	/* CLAIM_ROW's keys, as kiln_store_load_claim would read them. */
	json_object_set_new_nocheck(claim, "workflow_id", json_string(wf_id));
	KILN_COPY_SET(claim, step, CLAIM_OF_STEP);
	json_object_set_new_nocheck(claim, "task_id", json_string(task_id));
	json_object_set_new_nocheck(claim, "retry_count", json_integer(0));
	json_object_set_new_nocheck(
		claim, "max_retries",
		json_integer(json_integer_value(
			json_object_get(step, "max_retries"))));
	json_object_set_new_nocheck(claim, "on_fallback", json_false());
	json_object_set_new_nocheck(claim, "provider_retries",
				    json_integer(0));
	json_object_set_new_nocheck(claim, "job", json_null());
	json_object_set_new_nocheck(claim, "next_attempt_at", json_null());
	json_object_set_new_nocheck(claim, "first_started_at",
				    json_integer(now_ms));
	/* No dependencies: the run's inputs are all a mapping can read. */
	if (run_inputs != NULL && !json_is_null(run_inputs))
		json_object_set_new_nocheck(results, KILN_INPUTS_STEP,
					    json_deep_copy(run_inputs));
	json_object_set_new_nocheck(claim, "results", results);
	return claim;
}

#define CLAIM_SQL(where)                                                      \
	"UPDATE steps SET status = 'RUNNING', task_id = ?3,"                  \
	" started_at = ?2, completed_at = NULL, error_message = NULL,"        \
	" lease_owner = ?4, lease_expires_at = ?5, updated_at = ?2,"          \
	" first_started_at = COALESCE(first_started_at, ?2),"                \
	" current_provider = COALESCE(current_provider, provider),"          \
	" next_attempt_at = NULL, job = NULL, attempts = " NEW_ATTEMPT        \
	" WHERE id = ?1 AND " where

/* from_pending: the caller (advance) found the step ready and its
 * workflow RUNNING in this transaction, so the step may still be PENDING
 * in the store, and the workflow need not be read again. */
static enum kiln_rc claim_locked(struct kiln_store *st,
				 const char *step_uuid, int from_pending,
				 const struct kiln_claimer *who,
				 json_t **claim_out, struct kiln_err *err)
{
	static const char sql_ready[] = CLAIM_SQL(
		"status = 'READY' AND (SELECT w.status FROM workflows w"
		" WHERE w.id = steps.workflow_id) = 'RUNNING'");
	static const char sql_ready_or_pending[] =
		CLAIM_SQL("(status = 'READY' OR status = 'PENDING')");
	char task_id[KILN_UUID_LEN];
	sqlite3_stmt *s;
	int src;

	kiln_uuid_new(task_id);
	s = kiln_store_stmt(st, from_pending ? sql_ready_or_pending : sql_ready,
			    err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, kiln_now_ms());
	sqlite3_bind_text(s, 3, task_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 4, who->owner, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 5, who->lease_until_ms);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	if (sqlite3_changes(kiln_store_db(st)) != 1)
		return kiln_err_set(err, KILN_ECONFLICT, "",
				    "step %s is not ready to run", step_uuid);
	/* The whole claim from the updated row, in the same transaction:
	 * its pages are in the writer's cache.  Read by a SELECT, not a
	 * RETURNING clause: SQLite stages RETURNING rows in a temporary
	 * table, a pager opened and closed on every claim. */
	return kiln_store_load_claim(st, step_uuid, claim_out, err);
}

enum kiln_rc kiln_store_claim_step(struct kiln_store *st,
				   const char *step_uuid, const char *owner,
				   int64_t lease_until_ms, json_t **claim_out,
				   struct kiln_err *err)
{
	struct kiln_claimer who = {owner, lease_until_ms};
	enum kiln_rc rc;

	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK)
		return rc;
	rc = claim_locked(st, step_uuid, 0, &who, claim_out, err);
	if (rc != KILN_OK)
		goto fail;
	rc = kiln_store_commit(st, err);
	if (rc != KILN_OK) {
		json_decref(*claim_out);
		*claim_out = NULL;
		goto fail;
	}
	return KILN_OK;
fail:
	kiln_store_rollback(st);
	return rc;
}

/* ---- finish ---------------------------------------------------------- */

/* Sets the last attempt's end: ?7 finished (ms), ?8 outcome, ?9 HTTP
 * status (NULL = none), ?10 error. */
#define END_ATTEMPT                                                           \
	"json_set(attempts, '$[#-1].finished_at',"                            \
	" strftime('%Y-%m-%dT%H:%M:%fZ', ?7 / 1000.0, 'unixepoch'),"          \
	" '$[#-1].outcome', ?8, '$[#-1].http_status', ?9,"                    \
	" '$[#-1].error', ?10)"

static void bind_end(sqlite3_stmt *s, int64_t now,
		     const struct kiln_attempt_end *end)
{
	sqlite3_bind_int64(s, 7, now);
	sqlite3_bind_text(s, 8, end->outcome, -1, SQLITE_STATIC);
	if (end->http_status > 0)
		sqlite3_bind_int64(s, 9, end->http_status);
	else
		sqlite3_bind_null(s, 9);
	kiln_bind_cstr(s, 10, end->error);
}

/* kiln_store_finish_step, or with then kiln_store_finish_step_then (the
 * claims then go to then->fn). */
static enum kiln_rc finish_step(struct kiln_store *st, const char *step_uuid,
				const char *task_id, const json_t *result,
				const struct kiln_attempt_end *end,
				const struct kiln_claimer *who, json_t **claims,
				const struct kiln_then *then,
				struct kiln_err *err)
{
	static const char sql_finish[] =
		"UPDATE steps SET status = ?3, result = ?4, error_message = ?5,"
		" completed_at = ?6, lease_owner = NULL,"
		" lease_expires_at = NULL, updated_at = ?6, job = NULL,"
		" next_attempt_at = NULL,"
		" provider_used = CASE WHEN ?4 IS NULL THEN provider_used"
		"   ELSE current_provider END,"
		" active_provider_capabilities = CASE WHEN ?4 IS NOT NULL"
		"   AND on_fallback THEN fallback_provider_capabilities"
		"   ELSE active_provider_capabilities END,"
		" attempts = " END_ATTEMPT
		" WHERE id = ?1 AND task_id = ?2 AND status = 'RUNNING'";
	/* Read after the UPDATE, not by RETURNING (see claim_locked); with
	 * the workflow's status, which decides what follows. */
	static const char sql_ended[] =
		"SELECT s.workflow_id, s.step_id, w.webhook_url IS NOT NULL,"
		" w.status FROM steps s JOIN workflows w"
		" ON w.id = s.workflow_id WHERE s.id = ?1";
	static const char sql_fail[] =
		"UPDATE workflows SET errors = json_insert(errors, '$[#]', ?3),"
		" error_message = CASE WHEN status IN ('RUNNING', 'PAUSED')"
		"   THEN ?3 ELSE error_message END,"
		" completed_at = CASE WHEN status IN ('RUNNING', 'PAUSED')"
		"   THEN ?2 ELSE completed_at END,"
		" status = CASE WHEN status IN ('RUNNING', 'PAUSED')"
		"   THEN 'FAILED' ELSE status END,"
		" updated_at = ?2 WHERE id = ?1";
	static const char sql_unready[] =
		"UPDATE steps SET status = 'PENDING', updated_at = ?2"
		" WHERE workflow_id = ?1 AND status = 'READY'";
	const char *error_message = end->error;
	int ok = result != NULL;
	int64_t now = kiln_now_ms();
	char wf_id[KILN_UUID_LEN] = "";
	char step_id[512] = ""; /* ids are at most 100 characters */
	int has_hook = 0;
	enum kiln_wf_status wf_status = KILN_WF_FAILED;
	char *wf_error = NULL;
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	if (!ok && error_message == NULL)
		error_message = "failed";
	if (claims != NULL)
		*claims = NULL;
	rc = kiln_store_begin_with(st, sql_finish, &s, err);
	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, task_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, ok ? "COMPLETED" : "FAILED", -1,
			  SQLITE_STATIC);
	kiln_bind_json(s, 4, ok ? result : NULL, NULL);
	kiln_bind_cstr(s, 5, ok ? NULL : error_message);
	sqlite3_bind_int64(s, 6, now);
	bind_end(s, now, end);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	s = NULL;
	if (src == SQLITE_DONE && sqlite3_changes(kiln_store_db(st)) == 1) {
		s = kiln_store_stmt(st, sql_ended, err);
		if (s == NULL) {
			rc = err ? err->code : KILN_EIO;
			goto fail;
		}
		sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
		src = sqlite3_step(s);
	}
	if (src == SQLITE_ROW) {
		const char *sid = (const char *)sqlite3_column_text(s, 1);
		size_t len;

		kiln_strlcpy(wf_id, (const char *)sqlite3_column_text(s, 0),
			     sizeof(wf_id));
		kiln_strlcpy(step_id, sid, sizeof(step_id));
		/* Step ends are the hot path: without a webhook_url no
		 * event is rendered or even looked up. */
		has_hook = sqlite3_column_int(s, 2);
		if (kiln_wf_status_parse((const char *)sqlite3_column_text(s, 3),
					 &wf_status) != 0) {
			sqlite3_reset(s);
			rc = kiln_err_set(err, KILN_EIO, "", "corrupt status");
			goto fail;
		}
		if (!ok) {
			len = strlen(sid) + strlen(error_message) + 32;
			wf_error = malloc(len);
			if (wf_error != NULL)
				snprintf(wf_error, len, "step '%s' failed: %s",
					 sid, error_message);
		}
		src = sqlite3_step(s);
	}
	if (s != NULL)
		sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
		goto fail;
	}
	if (wf_id[0] == '\0') {
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "step %s is no longer running attempt %s",
				  step_uuid, task_id);
		goto fail;
	}
	if (ok) {
		/* An advance counts the step itself, or completes the
		 * workflow, which sets the count (events and reads count the
		 * steps, not this column). */
		int counted = claims == NULL || wf_status != KILN_WF_RUNNING;

		if (counted)
			rc = exec_id_now(st, SQL_COUNT_STEP, wf_id, now, err);
		if (rc == KILN_OK && has_hook)
			rc = kiln_store_queue_event(st, wf_id, "step.completed",
						    step_id, NULL, err);
		/* What the result lets run, in the same transaction. */
		if (rc == KILN_OK && claims != NULL) {
			*claims = json_array();
			if (wf_status == KILN_WF_RUNNING)
				rc = advance_running(st, wf_id, who, !counted,
						     *claims, err);
		}
	} else {
		struct kiln_event_error why = {end->outcome, end->http_status,
					       error_message, end->field};
		enum kiln_wf_status before = wf_status;

		s = kiln_store_stmt(st, sql_fail, err);
		if (s == NULL) {
			rc = err ? err->code : KILN_EIO;
			goto fail;
		}
		sqlite3_bind_text(s, 1, wf_id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 2, now);
		kiln_bind_cstr(s, 3, wf_error ? wf_error : error_message);
		rc = step_done(st, s, sqlite3_step(s), err);
		/* A failed workflow starts nothing more: READY siblings go
		 * back to PENDING so a resume schedules them afresh. */
		if (rc == KILN_OK)
			rc = exec_id_now(st, sql_unready, wf_id, now, err);
		/* Queued once the workflow shows the failure too. */
		if (rc == KILN_OK && has_hook)
			rc = kiln_store_queue_event(st, wf_id, "step.failed",
						    step_id, &why, err);
		if (rc == KILN_OK && has_hook &&
		    (before == KILN_WF_RUNNING || before == KILN_WF_PAUSED))
			rc = kiln_store_queue_event(st, wf_id,
						    "workflow.failed", step_id,
						    &why, err);
		if (rc == KILN_OK &&
		    (before == KILN_WF_RUNNING || before == KILN_WF_PAUSED))
			rc = kiln_store_workflow_ended(st, wf_id, &why, err);
	}
	if (rc != KILN_OK)
		goto fail;
	if (then != NULL) {
		rc = kiln_store_commit_then(st, then, *claims, err);
		if (rc == KILN_OK)
			*claims = NULL; /* then->fn's now */
	} else {
		rc = kiln_store_commit(st, err);
	}
	if (rc != KILN_OK)
		goto fail;
	free(wf_error);
	return KILN_OK;
fail:
	free(wf_error);
	kiln_store_rollback(st);
	if (claims != NULL) {
		json_decref(*claims);
		*claims = NULL;
	}
	return rc;
}

enum kiln_rc kiln_store_finish_step(struct kiln_store *st,
				    const char *step_uuid, const char *task_id,
				    const json_t *result,
				    const struct kiln_attempt_end *end,
				    const struct kiln_claimer *who,
				    json_t **claims, struct kiln_err *err)
{
	return finish_step(st, step_uuid, task_id, result, end, who, claims,
			   NULL, err);
}

enum kiln_rc kiln_store_finish_step_then(struct kiln_store *st,
					 const char *step_uuid,
					 const char *task_id,
					 const json_t *result,
					 const struct kiln_attempt_end *end,
					 const struct kiln_claimer *who,
					 const struct kiln_then *then,
					 struct kiln_err *err)
{
	json_t *claims = NULL;

	return finish_step(st, step_uuid, task_id, result, end, who, &claims,
			   then, err);
}

/* ---- recovery -------------------------------------------------------- */

enum kiln_rc kiln_store_running_workflows(struct kiln_store *st,
					  json_t **running,
					  struct kiln_err *err)
{
	static const char sql_running[] =
		"SELECT id FROM workflows WHERE status = 'RUNNING'";
	json_t *ids = json_array();
	sqlite3_stmt *s = kiln_store_stmt(st, sql_running, err);
	int src;

	if (s == NULL) {
		json_decref(ids);
		return err ? err->code : KILN_EIO;
	}
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(ids, kiln_col_text(s, 0));
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		json_decref(ids);
		return kiln_store_fail(st, src, err);
	}
	*running = ids;
	return KILN_OK;
}
