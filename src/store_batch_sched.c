/*
 * store_batch_sched.c - which batch executions start next, decided from
 * the store alone, so the order holds after a restart.
 *
 * Candidates are the PENDING and RUNNING batches with pending executions
 * and room under their concurrency_limit.  HIGH goes before NORMAL before
 * LOW; among equals, the batch whose last start is oldest goes next (a
 * start moves it to the back), so a 10-asset batch shares the slots with
 * a 100,000-asset one instead of waiting for it.  All running executions
 * together stay under max_running.
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/store.h"
#include "store_row.h"

/* Batches considered per transaction, at most. */
#define CANDIDATES_MAX 64

struct candidate {
	json_t *batch;      /* what build needs (owned) */
	json_t *definition; /* the template version's (owned; lazy) */
	int priority;
	int64_t last_dispatch;
	int64_t free_slots;
	int64_t pending;
};

static enum kiln_rc load_candidates(struct kiln_store *st,
				    struct candidate *c, size_t *n,
				    struct kiln_err *err)
{
	static const char sql[] =
		"SELECT id, tenant_id, template_id, template_version, inputs,"
		" asset_input, origin_instance, origin_zone, origin_reference,"
		" name, priority, last_dispatch,"
		" concurrency_limit - processing, pending FROM batches"
		" WHERE status IN ('PENDING', 'RUNNING') AND pending > 0"
		" AND processing < concurrency_limit"
		" ORDER BY priority, last_dispatch, created_at LIMIT ?1";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	*n = 0;
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_int(s, 1, CANDIDATES_MAX);
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		struct candidate *k = &c[(*n)++];

		k->batch = json_pack(
			"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			"id", kiln_col_text(s, 0), "tenant_id",
			kiln_col_text(s, 1), "template_id", kiln_col_text(s, 2),
			"template_version", kiln_col_int(s, 3), "inputs",
			kiln_col_json(s, 4), "asset_input", kiln_col_text(s, 5),
			"origin_instance", kiln_col_text(s, 6), "origin_zone",
			kiln_col_text(s, 7), "origin_reference",
			kiln_col_text(s, 8), "name", kiln_col_text(s, 9));
		k->definition = NULL;
		k->priority = sqlite3_column_int(s, 10);
		k->last_dispatch = sqlite3_column_int64(s, 11);
		k->free_slots = sqlite3_column_int64(s, 12);
		k->pending = sqlite3_column_int64(s, 13);
	}
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

/* The next candidate: best priority, then oldest last start; -1 if none
 * has room. */
static int pick(const struct candidate *c, size_t n)
{
	int best = -1;
	size_t i;

	for (i = 0; i < n; i++) {
		if (c[i].free_slots <= 0 || c[i].pending <= 0)
			continue;
		if (best < 0 || c[i].priority < c[best].priority ||
		    (c[i].priority == c[best].priority &&
		     c[i].last_dispatch < c[best].last_dispatch))
			best = (int)i;
	}
	return best;
}

static enum kiln_rc load_definition(struct kiln_store *st,
				    struct candidate *k, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT definition FROM template_versions"
		" WHERE template_id = ?1 AND version = ?2";
	sqlite3_stmt *s;
	int src;

	if (k->definition != NULL)
		return KILN_OK;
	s = kiln_store_stmt(st, sql, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	kiln_bind_str(s, 1, json_object_get(k->batch, "template_id"));
	sqlite3_bind_int64(s, 2,
			   json_integer_value(json_object_get(
				   k->batch, "template_version")));
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		k->definition = kiln_col_json(s, 0);
	sqlite3_reset(s);
	if (src == SQLITE_DONE)
		return kiln_err_set(err, KILN_EIO, "",
				    "template version of batch %s is missing",
				    json_string_value(json_object_get(
					    k->batch, "id")));
	return src == SQLITE_ROW ? KILN_OK : kiln_store_fail(st, src, err);
}

/* The batch's first pending execution: *exec_id and *asset (owned), or
 * *asset NULL when it has none. */
static enum kiln_rc next_pending(struct kiln_store *st, const char *batch_id,
				 char exec_id[KILN_UUID_LEN], json_t **asset,
				 struct kiln_err *err)
{
	static const char sql[] =
		"SELECT id, asset_id, asset_url, inputs FROM batch_executions"
		" WHERE batch_id = ?1 AND status = 'PENDING'"
		" ORDER BY asset_index LIMIT 1";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	*asset = NULL;
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, batch_id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		json_t *inputs = kiln_col_json(s, 3);

		kiln_strlcpy(exec_id, (const char *)sqlite3_column_text(s, 0),
			     KILN_UUID_LEN);
		*asset = json_pack("{s:o, s:o, s:o}", "asset_id",
				   kiln_col_text(s, 1), "url",
				   kiln_col_text(s, 2), "inputs",
				   json_is_null(inputs) ? json_object()
							: inputs);
	}
	sqlite3_reset(s);
	return src == SQLITE_ROW || src == SQLITE_DONE
		       ? KILN_OK
		       : kiln_store_fail(st, src, err);
}

/* Marks the execution RUNNING as workflow wf_id and moves its batch. */
static enum kiln_rc mark_started(struct kiln_store *st,
				 const char *batch_id, const char *exec_id,
				 const char *wf_id, int64_t seq,
				 struct kiln_err *err)
{
	static const char sql_exec[] =
		"UPDATE batch_executions SET status = 'RUNNING',"
		" workflow_id = ?2, started_at = ?3, runs = runs + 1"
		" WHERE id = ?1";
	static const char sql_batch[] =
		"UPDATE batches SET pending = pending - 1,"
		" processing = processing + 1, status = 'RUNNING',"
		" started_at = COALESCE(started_at, ?2), last_dispatch = ?3,"
		" updated_at = ?2 WHERE id = ?1";
	int64_t now = kiln_now_ms();
	sqlite3_stmt *s = kiln_store_stmt(st, sql_exec, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, exec_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, wf_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, now);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	s = kiln_store_stmt(st, sql_batch, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, batch_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_int64(s, 3, seq);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

static enum kiln_rc pending_of(struct kiln_store *st, const char *batch_id,
			       int64_t *pending, struct kiln_err *err)
{
	int found;

	*pending = 0;
	return kiln_store_int(st, "SELECT pending FROM batches WHERE id = ?1",
			      batch_id, 0, pending, &found, err);
}

/* Starts the next execution of candidate k: *handled is 1 when it had
 * one, and *started when its workflow was created (not when it failed to
 * build). */
static enum kiln_rc start_one(struct kiln_store *st,
			      const struct kiln_dispatch *d,
			      struct candidate *k, int64_t seq,
			      json_t *claims, int *handled, int *started,
			      struct kiln_err *err)
{
	const char *batch_id = json_string_value(json_object_get(k->batch,
								 "id"));
	char exec_id[KILN_UUID_LEN], wf_id[KILN_UUID_LEN];
	struct kiln_err build_err = {0};
	json_t *asset = NULL, *wf;
	enum kiln_rc rc;

	*started = 0;
	rc = load_definition(st, k, err);
	if (rc == KILN_OK)
		rc = next_pending(st, batch_id, exec_id, &asset, err);
	if (rc != KILN_OK || asset == NULL) {
		k->pending = 0;
		return rc;
	}
	*handled = 1;
	k->pending--;
	wf = d->build(d->ctx, k->definition, k->batch, asset, &build_err);
	json_decref(asset);
	if (wf == NULL) {
		/* It can never start: it fails, and the batch goes on (or
		 * stops on the error: then nothing of it is pending). */
		rc = kiln_store_fail_execution(
			st, exec_id,
			build_err.msg[0] ? build_err.msg : "invalid inputs",
			err);
		if (rc == KILN_OK)
			rc = pending_of(st, batch_id, &k->pending, err);
		return rc;
	}
	kiln_uuid_new(wf_id);
	json_object_set_new(wf, "id", json_string(wf_id));
	json_object_set_new(wf, "status", json_string("RUNNING"));
	rc = kiln_store_insert_workflow_locked(st, wf, d->who, claims, err);
	if (rc == KILN_OK)
		rc = mark_started(st, batch_id, exec_id, wf_id, seq, err);
	json_decref(wf);
	if (rc == KILN_OK) {
		k->free_slots--;
		k->last_dispatch = seq;
		*started = 1;
	}
	return rc;
}

enum kiln_rc kiln_store_dispatch_batches(struct kiln_store *st,
					 const struct kiln_dispatch *d,
					 json_t **claims_out, int *n_started,
					 struct kiln_err *err)
{
	static const char sql_running[] =
		"SELECT COALESCE(sum(processing), 0) FROM batches"
		" WHERE processing > 0";
	static const char sql_seq[] =
		"SELECT COALESCE(max(last_dispatch), 0) FROM batches";
	struct candidate c[CANDIDATES_MAX];
	json_t *claims = json_array();
	int64_t running = 0, seq = 0;
	size_t n = 0, i;
	int steps = 0, found;
	enum kiln_rc rc;

	*claims_out = NULL;
	*n_started = 0;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK) {
		json_decref(claims);
		return rc;
	}
	rc = kiln_store_int(st, sql_running, NULL, 0, &running, &found, err);
	if (rc == KILN_OK)
		rc = kiln_store_int(st, sql_seq, NULL, 0, &seq, &found, err);
	if (rc == KILN_OK && running < d->max_running)
		rc = load_candidates(st, c, &n, err);
	while (rc == KILN_OK && running < d->max_running &&
	       steps < d->max_starts) {
		int k = pick(c, n), handled = 0, started = 0;

		if (k < 0)
			break;
		rc = start_one(st, d, &c[k], ++seq, claims, &handled,
			       &started, err);
		running += started;
		steps += handled;
	}
	for (i = 0; i < n; i++) {
		json_decref(c[i].batch);
		json_decref(c[i].definition);
	}
	/* A candidate without pending rows after all changes nothing. */
	if (rc == KILN_OK && steps > 0)
		rc = kiln_store_commit(st, err);
	else
		kiln_store_rollback(st);
	if (rc != KILN_OK) {
		json_decref(claims);
		return rc;
	}
	*claims_out = claims;
	*n_started = steps;
	return KILN_OK;
}

enum kiln_rc kiln_store_batch_aborts(struct kiln_store *st, json_t **ids,
				     struct kiln_err *err)
{
	static const char sql[] =
		"SELECT e.workflow_id FROM batches b JOIN batch_executions e"
		" ON e.batch_id = b.id AND e.status = 'RUNNING'"
		" WHERE b.abort_running = 1 AND b.processing > 0";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	json_t *list = json_array();
	int src;

	if (s == NULL) {
		json_decref(list);
		return err ? err->code : KILN_EIO;
	}
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, kiln_col_text(s, 0));
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		json_decref(list);
		return kiln_store_fail(st, src, err);
	}
	*ids = list;
	return KILN_OK;
}
