/*
 * store_batches.c - batches and their executions: insert, render, list,
 * cancel, retry, and what happens when an execution's workflow ends.
 *
 * Executions are rows, never structs in memory.  A batch's counts are kept
 * in the transaction that changes an execution, so they are right after
 * any crash; its terminal status and batch.completed are written by the
 * transaction that ends its last execution.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/run_view.h"
#include "kiln/store.h"
#include "kiln/webhook_event.h"
#include "store_row.h"

#define BATCH_COLS                                                            \
	"id, tenant_id, template_id, template_version, status, priority,"     \
	" concurrency_limit, continue_on_error, asset_input, inputs,"         \
	" webhook_url, execution_events, origin_instance, origin_zone,"       \
	" origin_reference, name, total, pending, processing, completed,"     \
	" failed, cancelled, credit_cost, started_at, completed_at,"          \
	" cancelled_at, created_at, updated_at, duration_sum_ms,"             \
	" duration_count"

#define EXEC_COLS                                                             \
	"id, asset_index, asset_id, asset_url, inputs, status, workflow_id,"  \
	" outputs, error_code, error_message, started_at, completed_at,"      \
	" duration_ms, credit_cost, runs, previous_workflow_ids"

/* Failed execution ids listed in a batch's status, at most. */
#define FAILED_IDS_MAX 1000

static const char *const PRIORITIES[] = {"HIGH", "NORMAL", "LOW"};

/* ---- rendering --------------------------------------------------------- */

static json_t *col_real(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL
		       ? json_null()
		       : json_real(sqlite3_column_double(s, i));
}

static const struct kiln_col_spec BATCH_ROW[] = {
	{"id", 0, KILN_COL_TEXT},
	{"status", 4, KILN_COL_TEXT},
	{"name", 15, KILN_COL_TEXT},
	{"template_id", 2, KILN_COL_TEXT},
	{"template_version", 3, KILN_COL_INT},
	{"concurrency_limit", 6, KILN_COL_INT},
	{"continue_on_error", 7, KILN_COL_BOOL},
	{"asset_input", 8, KILN_COL_TEXT},
	{"inputs", 9, KILN_COL_JSON},
	{"webhook_url", 10, KILN_COL_TEXT},
	{"execution_events", 11, KILN_COL_BOOL},
	{"origin_instance", 12, KILN_COL_TEXT},
	{"origin_zone", 13, KILN_COL_TEXT},
	{"origin_reference", 14, KILN_COL_TEXT},
	{"origin_tenant_id", 1, KILN_COL_TEXT},
	{"created_at", 26, KILN_COL_TIME},
	{"updated_at", 27, KILN_COL_TIME},
	{"cancelled_at", 25, KILN_COL_TIME},
};

/* The batch row as lists show it: counts, timing and links (the
 * percentiles and failed ids need more queries: see get). */
static json_t *render_batch_row(sqlite3_stmt *s)
{
	const char *id = (const char *)sqlite3_column_text(s, 0);
	int64_t total = sqlite3_column_int64(s, 16);
	int64_t pending = sqlite3_column_int64(s, 17);
	int64_t processing = sqlite3_column_int64(s, 18);
	int64_t completed = sqlite3_column_int64(s, 19);
	int64_t failed = sqlite3_column_int64(s, 20);
	int64_t finished = completed + failed;
	int64_t timed = sqlite3_column_int64(s, 29);
	int64_t started = sqlite3_column_int64(s, 23);
	int has_started = sqlite3_column_type(s, 23) != SQLITE_NULL;
	int has_ended = sqlite3_column_type(s, 24) != SQLITE_NULL;
	int64_t end = has_ended ? sqlite3_column_int64(s, 24) : kiln_now_ms();
	int64_t elapsed = has_started && end > started ? end - started : 0;
	int priority = sqlite3_column_int(s, 5);
	json_t *o = json_object(), *timing, *eta = json_null();
	char base[64], link[96];

	kiln_row_set(o, s, BATCH_ROW, sizeof(BATCH_ROW) / sizeof(BATCH_ROW[0]));
	json_object_set_new(o, "priority",
			    json_string(PRIORITIES[priority >= 0 &&
							   priority <= 2
						   ? priority
						   : 1]));
	json_object_set_new(
		o, "assets",
		json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "total",
			  (json_int_t)total, "pending", (json_int_t)pending,
			  "processing", (json_int_t)processing, "completed",
			  (json_int_t)completed, "failed", (json_int_t)failed,
			  "cancelled",
			  (json_int_t)sqlite3_column_int64(s, 21)));
	timing = json_pack("{s:o, s:o, s:o}", "started_at",
			   kiln_col_time(s, 23), "completed_at",
			   kiln_col_time(s, 24), "elapsed_ms",
			   has_started ? json_integer(elapsed) : json_null());
	json_object_set_new(
		timing, "mean_execution_ms",
		timed > 0 ? json_real((double)sqlite3_column_int64(s, 28) /
				      (double)timed)
			  : json_null());
	json_object_set_new(
		timing, "throughput_per_minute",
		finished > 0 && elapsed > 0
			? json_real((double)finished * 60000.0 /
				    (double)elapsed)
			: json_null());
	json_object_set_new(o, "timing", timing);
	/* What is left, at the pace so far. */
	if (!has_ended && finished > 0 && elapsed > 0)
		eta = json_integer((json_int_t)llround(
			(double)(pending + processing) * (double)elapsed /
			(double)finished));
	else if (has_ended)
		eta = json_integer(0);
	json_object_set_new(o, "estimated_time_remaining_ms", eta);
	json_object_set_new(o, "credit_cost", col_real(s, 22));
	snprintf(base, sizeof(base), "/api/v1/batches/%s", id);
	json_object_set_new(o, "links", json_pack("{s:s, s:s}", "self", base,
						  "status", base));
	snprintf(link, sizeof(link), "%s/cancel", base);
	json_object_set_new(json_object_get(o, "links"), "cancel",
			    json_string(link));
	snprintf(link, sizeof(link), "%s/executions", base);
	json_object_set_new(json_object_get(o, "links"), "executions",
			    json_string(link));
	snprintf(link, sizeof(link), "%s/retry", base);
	json_object_set_new(json_object_get(o, "links"), "retry",
			    json_string(link));
	return o;
}

static const struct kiln_col_spec EXEC_ROW[] = {
	{"execution_id", 0, KILN_COL_TEXT},
	{"asset_index", 1, KILN_COL_INT},
	{"status", 5, KILN_COL_TEXT},
	{"workflow_id", 6, KILN_COL_TEXT},
	{"started_at", 10, KILN_COL_TIME},
	{"completed_at", 11, KILN_COL_TIME},
	{"duration_ms", 12, KILN_COL_INT},
	{"runs", 14, KILN_COL_INT},
};

static json_t *render_exec(sqlite3_stmt *s)
{
	const char *status = (const char *)sqlite3_column_text(s, 5);
	json_t *o = json_object(), *inputs = kiln_col_json(s, 4);
	json_t *prev = kiln_col_json(s, 15);

	kiln_row_set(o, s, EXEC_ROW, sizeof(EXEC_ROW) / sizeof(EXEC_ROW[0]));
	json_object_set_new(o, "input_asset",
			    json_pack("{s:o, s:o, s:o}", "asset_id",
				      kiln_col_text(s, 2), "url",
				      kiln_col_text(s, 3), "inputs",
				      json_is_null(inputs) ? json_object()
							   : inputs));
	if (strcmp(status, "SUCCESS") == 0)
		json_object_set_new(o, "outputs", kiln_col_json(s, 7));
	if (sqlite3_column_type(s, 8) != SQLITE_NULL)
		json_object_set_new(o, "error",
				    json_pack("{s:o, s:o}", "code",
					      kiln_col_text(s, 8), "message",
					      kiln_col_text(s, 9)));
	json_object_set_new(o, "credit_cost", col_real(s, 13));
	json_object_set_new(o, "previous_workflow_ids",
			    json_is_null(prev) ? json_array() : prev);
	return o;
}

/* ---- reading ----------------------------------------------------------- */

/* Nearest-rank percentiles of the finished executions' durations. */
static enum kiln_rc add_percentiles(struct kiln_store *st, const char *id,
				    json_t *timing, int64_t finished,
				    struct kiln_err *err)
{
	static const char sql[] =
		"SELECT duration_ms FROM batch_executions"
		" WHERE batch_id = ?1 AND duration_ms IS NOT NULL"
		" AND status IN ('SUCCESS', 'FAILED')"
		" ORDER BY duration_ms LIMIT 1 OFFSET ?2";
	static const struct {
		const char *key;
		double p;
	} ps[] = {{"p50_execution_ms", 0.50}, {"p95_execution_ms", 0.95}};
	size_t i;

	for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		int64_t rank = (int64_t)ceil(ps[i].p * (double)finished) - 1;
		int64_t v = 0;
		int found = 0;
		enum kiln_rc rc;

		if (finished <= 0) {
			json_object_set_new(timing, ps[i].key, json_null());
			continue;
		}
		rc = kiln_store_int(st, sql, id, rank < 0 ? 0 : rank, &v, &found,
			       err);
		if (rc != KILN_OK)
			return rc;
		json_object_set_new(timing, ps[i].key,
				    found ? json_integer(v) : json_null());
	}
	return KILN_OK;
}

static enum kiln_rc add_failed_ids(struct kiln_store *st, const char *id,
				   json_t *batch, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT id FROM batch_executions WHERE batch_id = ?1"
		" AND status = 'FAILED' ORDER BY asset_index LIMIT ?2";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	json_t *ids = json_array();
	int src;

	if (s == NULL) {
		json_decref(ids);
		return err ? err->code : KILN_EIO;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 2, FAILED_IDS_MAX);
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(ids, kiln_col_text(s, 0));
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		json_decref(ids);
		return kiln_store_fail(st, src, err);
	}
	json_object_set_new(
		batch, "failed_execution_ids_truncated",
		json_boolean(json_integer_value(json_object_get(
			json_object_get(batch, "assets"), "failed")) >
			     (json_int_t)json_array_size(ids)));
	json_object_set_new(batch, "failed_execution_ids", ids);
	return KILN_OK;
}

/* The batch as GET renders it, inside the caller's transaction. */
static enum kiln_rc get_batch_locked(struct kiln_store *st, const char *id,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT " BATCH_COLS " FROM batches WHERE id = ?1"
		" AND (?2 IS NULL OR tenant_id = ?2)";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int64_t timed;
	json_t *b;
	enum kiln_rc rc;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src != SQLITE_ROW) {
		sqlite3_reset(s);
		if (src == SQLITE_DONE)
			return kiln_err_set(err, KILN_ENOTFOUND, "",
					    "Batch %s not found", id);
		return kiln_store_fail(st, src, err);
	}
	b = render_batch_row(s);
	timed = sqlite3_column_int64(s, 29);
	sqlite3_reset(s);
	rc = add_percentiles(st, id, json_object_get(b, "timing"), timed,
			     err);
	if (rc == KILN_OK)
		rc = add_failed_ids(st, id, b, err);
	if (rc != KILN_OK) {
		json_decref(b);
		return rc;
	}
	*out = b;
	return KILN_OK;
}

enum kiln_rc kiln_store_get_batch(struct kiln_store *st, const char *id,
				  const struct kiln_scope *scope,
				  json_t **out, struct kiln_err *err)
{
	enum kiln_rc rc = kiln_store_begin_read(st, err);

	if (rc != KILN_OK)
		return rc;
	rc = get_batch_locked(st, id, scope, out, err);
	kiln_store_rollback(st);
	return rc;
}

#define BATCH_WHERE                                                           \
	" WHERE (?1 IS NULL OR status = ?1)"                                  \
	" AND (?2 IS NULL OR template_id = ?2)"                               \
	" AND (?3 IS NULL OR tenant_id = ?3)"                                 \
	" AND (?4 IS NULL OR tenant_id = ?4)"                                 \
	" AND (?5 IS NULL OR created_at > ?5)"                                \
	" AND (?6 IS NULL OR created_at < ?6)"

static const char SQL_BATCH_COUNT[] =
	"SELECT count(*) FROM batches" BATCH_WHERE;
static const char SQL_BATCH_LIST[] =
	"SELECT " BATCH_COLS " FROM batches" BATCH_WHERE
	" ORDER BY created_at DESC, rowid DESC LIMIT ?7 OFFSET ?8";

struct batch_list {
	const struct kiln_batch_filter *f;
	const struct kiln_scope *scope;
};

static void bind_time(sqlite3_stmt *s, int i, int64_t ms)
{
	if (ms > 0)
		sqlite3_bind_int64(s, i, ms);
	else
		sqlite3_bind_null(s, i);
}

static void bind_batch_filter(sqlite3_stmt *s, const void *ctx)
{
	const struct batch_list *l = ctx;

	kiln_bind_cstr(s, 1, l->f->status);
	kiln_bind_cstr(s, 2, l->f->template_id);
	kiln_bind_cstr(s, 3, l->f->tenant_id);
	kiln_bind_cstr(s, 4, l->scope ? l->scope->tenant : NULL);
	bind_time(s, 5, l->f->created_after);
	bind_time(s, 6, l->f->created_before);
}

enum kiln_rc kiln_store_list_batches(struct kiln_store *st,
				     const struct kiln_batch_filter *f,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
{
	struct batch_list l = {f, scope};
	struct kiln_page_query q = {SQL_BATCH_COUNT, SQL_BATCH_LIST,
				    bind_batch_filter, &l, 7, f->limit,
				    f->offset, render_batch_row, "batches"};

	return kiln_store_page(st, &q, out, err);
}

/* One statement per combination of filters: "?2 IS NULL OR status = ?2"
 * would keep SQLite from using the status and asset_id indexes. */
#define EXEC_FROM " FROM batch_executions WHERE batch_id = ?1"
#define EXEC_ORDER " ORDER BY asset_index LIMIT ?4 OFFSET ?5"
#define BY_STATUS " AND status = ?2"
#define BY_ASSET " AND asset_id = ?3"

static const char *const SQL_EXEC_COUNT[4] = {
	"SELECT count(*)" EXEC_FROM,
	"SELECT count(*)" EXEC_FROM BY_STATUS,
	"SELECT count(*)" EXEC_FROM BY_ASSET,
	"SELECT count(*)" EXEC_FROM BY_STATUS BY_ASSET,
};
static const char *const SQL_EXEC_LIST[4] = {
	"SELECT " EXEC_COLS EXEC_FROM EXEC_ORDER,
	"SELECT " EXEC_COLS EXEC_FROM BY_STATUS EXEC_ORDER,
	"SELECT " EXEC_COLS EXEC_FROM BY_ASSET EXEC_ORDER,
	"SELECT " EXEC_COLS EXEC_FROM BY_STATUS BY_ASSET EXEC_ORDER,
};

struct exec_list {
	const char *batch_id;
	const struct kiln_exec_filter *f;
};

static void bind_exec_filter(sqlite3_stmt *s, const void *ctx)
{
	const struct exec_list *l = ctx;

	sqlite3_bind_text(s, 1, l->batch_id, -1, SQLITE_TRANSIENT);
	if (l->f->status != NULL)
		sqlite3_bind_text(s, 2, l->f->status, -1, SQLITE_TRANSIENT);
	if (l->f->asset_id != NULL)
		sqlite3_bind_text(s, 3, l->f->asset_id, -1, SQLITE_TRANSIENT);
}

static enum kiln_rc batch_status(struct kiln_store *st, const char *id,
				 const struct kiln_scope *scope,
				 char status[32], struct kiln_err *err);

enum kiln_rc kiln_store_list_executions(struct kiln_store *st,
					const char *batch_id,
					const struct kiln_exec_filter *f,
					const struct kiln_scope *scope,
					json_t **out, struct kiln_err *err)
{
	struct exec_list l = {batch_id, f};
	int which = (f->status != NULL) | (f->asset_id != NULL) << 1;
	struct kiln_page_query q = {SQL_EXEC_COUNT[which], SQL_EXEC_LIST[which],
				    bind_exec_filter, &l, 4, f->limit,
				    f->offset, render_exec, "executions"};
	char status[32];
	enum kiln_rc rc = batch_status(st, batch_id, scope, status, err);

	if (rc != KILN_OK)
		return rc;
	rc = kiln_store_page(st, &q, out, err);
	if (rc == KILN_OK)
		json_object_set_new(*out, "batch_id", json_string(batch_id));
	return rc;
}

/* ---- insert -------------------------------------------------------- */

static enum kiln_rc insert_executions(struct kiln_store *st,
				      const char *batch_id,
				      const json_t *assets,
				      struct kiln_err *err)
{
	static const char sql[] =
		"INSERT INTO batch_executions (id, batch_id, asset_index,"
		" asset_id, asset_url, inputs, status)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'PENDING')";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	size_t i;
	json_t *a;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	json_array_foreach(assets, i, a) {
		const json_t *inputs = json_object_get(a, "inputs");
		int src;

		sqlite3_reset(s);
		kiln_bind_str(s, 1, json_object_get(a, "execution_id"));
		sqlite3_bind_text(s, 2, batch_id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)i);
		kiln_bind_str(s, 4, json_object_get(a, "asset_id"));
		kiln_bind_str(s, 5, json_object_get(a, "url"));
		kiln_bind_json(s, 6,
			       json_object_size(inputs) > 0 ? inputs : NULL,
			       NULL);
		src = sqlite3_step(s);
		if (src != SQLITE_DONE) {
			sqlite3_reset(s);
			return kiln_store_fail(st, src, err);
		}
	}
	sqlite3_reset(s);
	return KILN_OK;
}

enum kiln_rc kiln_store_insert_batch(struct kiln_store *st,
				     const json_t *b,
				     const struct kiln_idem *idem,
				     json_t **rendered, char **existing,
				     struct kiln_err *err)
{
	static const char sql[] =
		"INSERT INTO batches (id, tenant_id, template_id,"
		" template_version, status, priority, concurrency_limit,"
		" continue_on_error, asset_input, inputs, webhook_url,"
		" execution_events, origin_instance, origin_zone,"
		" origin_reference, name, total, pending, created_at,"
		" updated_at)"
		" VALUES (?1, ?2, ?3, ?4, 'PENDING', ?5, ?6, ?7, ?8, ?9, ?10,"
		" ?11, ?12, ?13, ?14, ?15, ?16, ?16, ?17, ?17)";
	const char *id = json_string_value(json_object_get(b, "id"));
	const json_t *assets = json_object_get(b, "assets");
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	*rendered = NULL;
	*existing = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK)
		return rc;
	rc = kiln_store_idem_find(st, idem, existing, err);
	if (rc != KILN_OK || *existing != NULL) {
		kiln_store_rollback(st);
		if (rc == KILN_OK)
			rc = kiln_store_get_batch(st, *existing, NULL,
						  rendered, err);
		return rc;
	}
	s = kiln_store_stmt(st, sql, err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto fail;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_str(s, 2, json_object_get(b, "tenant_id"));
	kiln_bind_str(s, 3, json_object_get(b, "template_id"));
	sqlite3_bind_int64(s, 4, json_integer_value(json_object_get(
					 b, "template_version")));
	sqlite3_bind_int64(s, 5, json_integer_value(json_object_get(
					 b, "priority")));
	sqlite3_bind_int64(s, 6, json_integer_value(json_object_get(
					 b, "concurrency_limit")));
	sqlite3_bind_int(s, 7, json_is_true(json_object_get(
				       b, "continue_on_error")));
	kiln_bind_str(s, 8, json_object_get(b, "asset_input"));
	kiln_bind_json(s, 9, json_object_get(b, "inputs"), "{}");
	kiln_bind_str(s, 10, json_object_get(b, "webhook_url"));
	sqlite3_bind_int(s, 11, json_is_true(json_object_get(
					b, "execution_events")));
	kiln_bind_str(s, 12, json_object_get(b, "origin_instance"));
	kiln_bind_str(s, 13, json_object_get(b, "origin_zone"));
	kiln_bind_str(s, 14, json_object_get(b, "origin_reference"));
	kiln_bind_str(s, 15, json_object_get(b, "name"));
	sqlite3_bind_int64(s, 16, (sqlite3_int64)json_array_size(assets));
	sqlite3_bind_int64(s, 17, kiln_now_ms());
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
		goto fail;
	}
	rc = insert_executions(st, id, assets, err);
	if (rc == KILN_OK)
		rc = kiln_store_idem_record(st, idem, "batch", id, err);
	if (rc == KILN_OK)
		rc = get_batch_locked(st, id, NULL, rendered, err);
	if (rc != KILN_OK)
		goto fail;
	kiln_store_mark_batches_changed(st);
	rc = kiln_store_commit(st, err);
	if (rc == KILN_OK)
		return KILN_OK;
fail:
	kiln_store_rollback(st);
	json_decref(*rendered);
	*rendered = NULL;
	return rc;
}

/* ---- ends of executions ------------------------------------------------ */

/* Runs sql (?1 = id, ?2 = now) in the caller's transaction; *changes
 * (if not NULL) receives the rows it changed. */
static enum kiln_rc exec_id(struct kiln_store *st, const char *sql,
			    const char *id, int64_t now, int *changes,
			    struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	if (sqlite3_bind_parameter_count(s) >= 2)
		sqlite3_bind_int64(s, 2, now);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (changes != NULL)
		*changes = sqlite3_changes(kiln_store_db(st));
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

/* The batch's webhook target: its url (NULL: none), tenant, and whether it
 * wants per-execution events. */
struct batch_hook {
	char *url;
	char *tenant;
	int execution_events;
};

static enum kiln_rc batch_hook(struct kiln_store *st, const char *batch_id,
			       struct batch_hook *h, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT webhook_url, tenant_id, execution_events FROM batches"
		" WHERE id = ?1";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	memset(h, 0, sizeof(*h));
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, batch_id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_NULL)
			h->url = strdup((const char *)sqlite3_column_text(s, 0));
		if (sqlite3_column_type(s, 1) != SQLITE_NULL)
			h->tenant =
				strdup((const char *)sqlite3_column_text(s, 1));
		h->execution_events = sqlite3_column_int(s, 2);
	}
	sqlite3_reset(s);
	return src == SQLITE_ROW || src == SQLITE_DONE
		       ? KILN_OK
		       : kiln_store_fail(st, src, err);
}

static void batch_hook_free(struct batch_hook *h)
{
	free(h->url);
	free(h->tenant);
}

/* When the batch has no execution left pending or running: its final
 * status, completed_at, and batch.completed. */
static enum kiln_rc finish_if_done(struct kiln_store *st, const char *id,
				   struct kiln_err *err)
{
	static const char sql_final[] =
		"UPDATE batches SET status = CASE"
		"   WHEN status IN ('CANCELLED', 'FAILED') THEN status"
		"   WHEN failed + cancelled = 0 THEN 'COMPLETED'"
		"   WHEN completed = 0 THEN 'FAILED'"
		"   ELSE 'COMPLETED_WITH_ERRORS' END,"
		" completed_at = ?2, abort_running = 0, updated_at = ?2"
		" WHERE id = ?1 AND pending = 0 AND processing = 0"
		" AND completed_at IS NULL";
	struct batch_hook h;
	json_t *b = NULL, *payload;
	enum kiln_rc rc;
	int changed = 0;

	rc = exec_id(st, sql_final, id, kiln_now_ms(), &changed, err);
	if (rc != KILN_OK || changed == 0)
		return rc;
	rc = batch_hook(st, id, &h, err);
	if (rc != KILN_OK || h.url == NULL)
		goto out;
	rc = get_batch_locked(st, id, NULL, &b, err);
	if (rc != KILN_OK)
		goto out;
	payload = json_pack(
		"{s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}",
		"schema_version", KILN_WEBHOOK_SCHEMA_VERSION, "batch_id",
		json_object_get(b, "id"), "status",
		json_object_get(b, "status"), "template_id",
		json_object_get(b, "template_id"), "template_version",
		json_object_get(b, "template_version"), "assets",
		json_object_get(b, "assets"), "failed_execution_ids",
		json_object_get(b, "failed_execution_ids"), "timing",
		json_object_get(b, "timing"), "credit_cost",
		json_object_get(b, "credit_cost"), "origin_reference",
		json_object_get(b, "origin_reference"), "origin_tenant_id",
		json_object_get(b, "origin_tenant_id"), "links",
		json_object_get(b, "links"));
	rc = kiln_store_queue_delivery(st, "batch.completed", h.url, h.tenant,
				       NULL, payload, err);
	json_decref(payload);
out:
	json_decref(b);
	batch_hook_free(&h);
	return rc;
}

/* A failure in a batch that stops on errors: the pending executions are
 * cancelled and the running ones are to be (the scheduler does it). */
static enum kiln_rc stop_on_error(struct kiln_store *st, const char *id,
				  int64_t now, struct kiln_err *err)
{
	static const char sql_check[] =
		"SELECT continue_on_error = 0 AND status IN"
		" ('PENDING', 'RUNNING') FROM batches WHERE id = ?1";
	static const char sql_cancel[] =
		"UPDATE batch_executions SET status = 'CANCELLED',"
		" completed_at = ?2, error_code = 'CANCELLED',"
		" error_message = 'an earlier execution failed and the batch"
		" stops on errors (continue_on_error is false)'"
		" WHERE batch_id = ?1 AND status = 'PENDING'";
	static const char sql_batch[] =
		"UPDATE batches SET status = 'FAILED', pending = 0,"
		" cancelled = cancelled + pending, abort_running = 1,"
		" updated_at = ?2 WHERE id = ?1";
	int64_t stop = 0;
	enum kiln_rc rc;
	int found = 0;

	rc = kiln_store_int(st, sql_check, id, 0, &stop, &found, err);
	if (rc != KILN_OK || !found || !stop)
		return rc;
	rc = exec_id(st, sql_cancel, id, now, NULL, err);
	if (rc == KILN_OK)
		rc = exec_id(st, sql_batch, id, now, NULL, err);
	return rc;
}

/* What an execution ended with. */
struct exec_end {
	const char *status; /* SUCCESS, FAILED, CANCELLED */
	json_t *outputs;    /* SUCCESS only */
	const char *error_code, *error_message;
	json_t *credit_cost; /* real or null */
	const char *workflow_id;
};

/* The per-execution event, when the batch asked for them. */
static enum kiln_rc execution_event(struct kiln_store *st,
				    const char *batch_id, const char *exec_id,
				    const struct exec_end *e,
				    struct kiln_err *err)
{
	static const char sql[] =
		"SELECT " EXEC_COLS " FROM batch_executions WHERE id = ?1";
	struct batch_hook h;
	json_t *payload = NULL, *row = NULL;
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	if (strcmp(e->status, "CANCELLED") == 0)
		return KILN_OK;
	rc = batch_hook(st, batch_id, &h, err);
	if (rc != KILN_OK || h.url == NULL || !h.execution_events)
		goto out;
	s = kiln_store_stmt(st, sql, err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto out;
	}
	sqlite3_bind_text(s, 1, exec_id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		row = render_exec(s);
	sqlite3_reset(s);
	if (src != SQLITE_ROW) {
		rc = kiln_store_fail(st, src, err);
		goto out;
	}
	json_object_set_new(row, "schema_version",
			    json_string(KILN_WEBHOOK_SCHEMA_VERSION));
	json_object_set_new(row, "batch_id", json_string(batch_id));
	payload = row;
	rc = kiln_store_queue_delivery(
		st,
		strcmp(e->status, "SUCCESS") == 0 ? "batch.execution.completed"
						  : "batch.execution.failed",
		h.url, h.tenant, e->workflow_id, payload, err);
out:
	json_decref(payload);
	batch_hook_free(&h);
	return rc;
}

/* An execution as it was before it ended. */
struct exec_row {
	char id[KILN_UUID_LEN];
	char batch_id[KILN_UUID_LEN];
	char status[16];
	int64_t started_at;   /* 0: never */
	int64_t duration_ms;  /* counted in the batch's sum when finished */
	double credit_cost;
};

#define EXEC_ROW_SQL                                                          \
	"SELECT id, batch_id, status, COALESCE(started_at, 0),"               \
	" COALESCE(duration_ms, 0), COALESCE(credit_cost, 0)"                 \
	" FROM batch_executions"

static void read_exec_row(sqlite3_stmt *s, struct exec_row *r)
{
	kiln_strlcpy(r->id, (const char *)sqlite3_column_text(s, 0),
		     sizeof(r->id));
	kiln_strlcpy(r->batch_id, (const char *)sqlite3_column_text(s, 1),
		     sizeof(r->batch_id));
	kiln_strlcpy(r->status, (const char *)sqlite3_column_text(s, 2),
		     sizeof(r->status));
	r->started_at = sqlite3_column_int64(s, 3);
	r->duration_ms = sqlite3_column_int64(s, 4);
	r->credit_cost = sqlite3_column_double(s, 5);
}

/* Whether an execution with status that started as r did counts in the
 * batch's durations: it finished (SUCCESS, FAILED) and it ran. */
static int is_timed(const struct exec_row *r, const char *status)
{
	return r->started_at > 0 && (strcmp(status, "SUCCESS") == 0 ||
				     strcmp(status, "FAILED") == 0);
}

static int was_timed(const struct exec_row *r)
{
	return is_timed(r, r->status);
}

/* Ends execution old (as it was): the row, the batch's counts, stop on
 * error, the event, and the batch's own end. */
static enum kiln_rc end_execution(struct kiln_store *st,
				  const struct exec_row *old,
				  const struct exec_end *e,
				  struct kiln_err *err)
{
	static const char sql_exec[] =
		"UPDATE batch_executions SET status = ?2, outputs = ?3,"
		" error_code = ?4, error_message = ?5, credit_cost = ?6,"
		" completed_at = ?7, duration_ms = ?8 WHERE id = ?1";
	/* ?2 old status, ?3 new status, ?4 old duration counted, ?5 new
	 * duration counted, ?6 old credit, ?7 new credit, ?8 now. */
	static const char sql_batch[] =
		"UPDATE batches SET"
		" pending = pending - (?2 = 'PENDING'),"
		" processing = processing - (?2 = 'RUNNING'),"
		" completed = completed + (?3 = 'SUCCESS') - (?2 = 'SUCCESS'),"
		" failed = failed + (?3 = 'FAILED') - (?2 = 'FAILED'),"
		" cancelled = cancelled + (?3 = 'CANCELLED')"
		"   - (?2 = 'CANCELLED'),"
		" duration_sum_ms = duration_sum_ms + ?5 - ?4,"
		" duration_count = duration_count + ?10 - ?9,"
		" credit_cost = credit_cost + ?7 - ?6, updated_at = ?8"
		" WHERE id = ?1";
	int64_t now = kiln_now_ms();
	int64_t duration = old->started_at > 0 && now > old->started_at
				   ? now - old->started_at
				   : 0;
	double credit = json_is_number(e->credit_cost)
				? json_number_value(e->credit_cost)
				: 0;
	sqlite3_stmt *s = kiln_store_stmt(st, sql_exec, err);
	enum kiln_rc rc;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, old->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, e->status, -1, SQLITE_STATIC);
	kiln_bind_json(s, 3, e->outputs, NULL);
	kiln_bind_cstr(s, 4, e->error_code);
	kiln_bind_cstr(s, 5, e->error_message);
	if (json_is_number(e->credit_cost))
		sqlite3_bind_double(s, 6, credit);
	sqlite3_bind_int64(s, 7, now);
	if (old->started_at > 0)
		sqlite3_bind_int64(s, 8, duration);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	s = kiln_store_stmt(st, sql_batch, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, old->batch_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, old->status, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, e->status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, was_timed(old) ? old->duration_ms : 0);
	sqlite3_bind_int64(s, 5, is_timed(old, e->status) ? duration : 0);
	sqlite3_bind_double(s, 6, old->credit_cost);
	sqlite3_bind_double(s, 7, credit);
	sqlite3_bind_int64(s, 8, now);
	sqlite3_bind_int(s, 9, was_timed(old));
	sqlite3_bind_int(s, 10, is_timed(old, e->status));
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	rc = KILN_OK;
	if (strcmp(e->status, "FAILED") == 0)
		rc = stop_on_error(st, old->batch_id, now, err);
	if (rc == KILN_OK)
		rc = execution_event(st, old->batch_id, old->id, e, err);
	if (rc == KILN_OK)
		rc = finish_if_done(st, old->batch_id, err);
	kiln_store_mark_batches_changed(st);
	return rc;
}

enum kiln_rc kiln_store_workflow_ended(struct kiln_store *st,
				       const char *wf_id,
				       const struct kiln_event_error *why,
				       struct kiln_err *err)
{
	static const char sql[] =
		EXEC_ROW_SQL " WHERE workflow_id = ?1";
	struct exec_end e = {0};
	struct exec_row old;
	json_t *wf = NULL, *error = NULL;
	sqlite3_stmt *s;
	enum kiln_rc rc;
	const char *status;
	int src;

	(void)why;
	kiln_store_mark_workflow_ended(st, wf_id);
	s = kiln_store_stmt(st, sql, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, wf_id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		read_exec_row(s, &old);
	sqlite3_reset(s);
	if (src == SQLITE_DONE)
		return KILN_OK; /* not a batch execution */
	if (src != SQLITE_ROW)
		return kiln_store_fail(st, src, err);
	rc = kiln_store_get_workflow_locked(st, wf_id, NULL, &wf, err);
	if (rc != KILN_OK)
		return rc;
	status = json_string_value(json_object_get(wf, "status"));
	e.workflow_id = wf_id;
	if (strcmp(status, "COMPLETED") == 0) {
		e.status = "SUCCESS";
		e.outputs = kiln_run_outputs(wf);
	} else {
		e.status = strcmp(status, "CANCELLED") == 0 ? "CANCELLED"
							    : "FAILED";
		error = kiln_run_error(wf);
		e.error_code = json_string_value(json_object_get(error, "code"));
		e.error_message =
			json_string_value(json_object_get(error, "message"));
	}
	e.credit_cost = kiln_workflow_credit_cost(wf);
	rc = end_execution(st, &old, &e, err);
	json_decref(e.outputs);
	json_decref(e.credit_cost);
	json_decref(error);
	json_decref(wf);
	return rc;
}

/* Ends a pending execution that could not start (its inputs do not make
 * a valid workflow): FAILED with INVALID_INPUT. */
enum kiln_rc kiln_store_fail_execution(struct kiln_store *st,
				       const char *exec_id,
				       const char *message,
				       struct kiln_err *err)
{
	static const char sql[] =
		EXEC_ROW_SQL " WHERE id = ?1";
	struct exec_end e = {"FAILED", NULL, "INVALID_INPUT", message, NULL,
			     NULL};
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	struct exec_row old;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, exec_id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		read_exec_row(s, &old);
	sqlite3_reset(s);
	if (src != SQLITE_ROW)
		return src == SQLITE_DONE ? KILN_OK
					  : kiln_store_fail(st, src, err);
	return end_execution(st, &old, &e, err);
}

/* ---- cancel and retry -------------------------------------------------- */

/* {"id", "status", "previous_status", "assets"} of batch id. */
static json_t *summary(const json_t *b, const char *previous)
{
	return json_pack("{s:O, s:O, s:s, s:O}", "id", json_object_get(b, "id"),
			 "status", json_object_get(b, "status"),
			 "previous_status", previous, "assets",
			 json_object_get(b, "assets"));
}

static enum kiln_rc batch_status(struct kiln_store *st, const char *id,
				 const struct kiln_scope *scope,
				 char status[32], struct kiln_err *err)
{
	static const char sql[] =
		"SELECT status FROM batches WHERE id = ?1"
		" AND (?2 IS NULL OR tenant_id = ?2)";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		kiln_strlcpy(status, (const char *)sqlite3_column_text(s, 0),
			     32);
	sqlite3_reset(s);
	if (src == SQLITE_DONE)
		return kiln_err_set(err, KILN_ENOTFOUND, "",
				    "Batch %s not found", id);
	return src == SQLITE_ROW ? KILN_OK : kiln_store_fail(st, src, err);
}

enum kiln_rc kiln_store_cancel_batch(struct kiln_store *st, const char *id,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
{
	static const char sql_execs[] =
		"UPDATE batch_executions SET status = 'CANCELLED',"
		" completed_at = ?2, error_code = 'CANCELLED',"
		" error_message = 'the batch was cancelled'"
		" WHERE batch_id = ?1 AND status = 'PENDING'";
	static const char sql_batch[] =
		"UPDATE batches SET status = 'CANCELLED', cancelled_at = ?2,"
		" cancelled = cancelled + pending, pending = 0, updated_at = ?2"
		" WHERE id = ?1";
	int64_t now = kiln_now_ms();
	char previous[32] = "";
	json_t *b = NULL;
	enum kiln_rc rc;

	*out = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK)
		return rc;
	rc = batch_status(st, id, scope, previous, err);
	if (rc == KILN_OK && strcmp(previous, "PENDING") != 0 &&
	    strcmp(previous, "RUNNING") != 0)
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "Batch %s is %s; only PENDING or RUNNING"
				  " batches can be cancelled",
				  id, previous);
	if (rc == KILN_OK)
		rc = exec_id(st, sql_execs, id, now, NULL, err);
	if (rc == KILN_OK)
		rc = exec_id(st, sql_batch, id, now, NULL, err);
	if (rc == KILN_OK)
		rc = finish_if_done(st, id, err);
	if (rc == KILN_OK)
		rc = get_batch_locked(st, id, NULL, &b, err);
	if (rc == KILN_OK)
		rc = kiln_store_commit(st, err);
	else
		kiln_store_rollback(st);
	if (rc == KILN_OK)
		*out = summary(b, previous);
	json_decref(b);
	return rc;
}

/* Makes one execution (read by EXEC_ROW_SQL) PENDING again. */
static enum kiln_rc reset_execution(struct kiln_store *st,
				    const struct exec_row *r, int64_t now,
				    struct kiln_err *err)
{
	static const char sql_exec[] =
		"UPDATE batch_executions SET status = 'PENDING',"
		" previous_workflow_ids = CASE WHEN workflow_id IS NULL"
		"   THEN previous_workflow_ids ELSE json_insert("
		"   COALESCE(previous_workflow_ids, '[]'), '$[#]', workflow_id)"
		"   END,"
		" workflow_id = NULL, outputs = NULL, error_code = NULL,"
		" error_message = NULL, credit_cost = NULL, started_at = NULL,"
		" completed_at = NULL, duration_ms = NULL WHERE id = ?1";
	static const char sql_batch[] =
		"UPDATE batches SET pending = pending + 1,"
		" failed = failed - (?2 = 'FAILED'),"
		" cancelled = cancelled - (?2 = 'CANCELLED'),"
		" duration_sum_ms = duration_sum_ms - ?3,"
		" duration_count = duration_count - ?6,"
		" credit_cost = credit_cost - ?4,"
		" status = CASE WHEN started_at IS NULL THEN 'PENDING'"
		"   ELSE 'RUNNING' END,"
		" completed_at = NULL, abort_running = 0, updated_at = ?5"
		" WHERE id = ?1";
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	rc = exec_id(st, sql_exec, r->id, now, NULL, err);
	if (rc != KILN_OK)
		return rc;
	s = kiln_store_stmt(st, sql_batch, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, r->batch_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, r->status, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, was_timed(r) ? r->duration_ms : 0);
	sqlite3_bind_double(s, 4, r->credit_cost);
	sqlite3_bind_int64(s, 5, now);
	sqlite3_bind_int(s, 6, was_timed(r));
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

static int listed_before(const struct exec_row *rows, size_t n,
			 const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(rows[i].id, id) == 0)
			return 1;
	return 0;
}

/* The executions to retry: those listed (an id listed twice counts once) (each must be in the batch and
 * FAILED or CANCELLED), or every FAILED one. */
static enum kiln_rc retry_targets(struct kiln_store *st, const char *id,
				  const json_t *ids, struct exec_row **out,
				  size_t *n, struct kiln_err *err)
{
	static const char sql_failed[] =
		EXEC_ROW_SQL " WHERE batch_id = ?1"
		" AND status = 'FAILED' ORDER BY asset_index";
	static const char sql_one[] =
		EXEC_ROW_SQL " WHERE batch_id = ?1 AND id = ?2";
	size_t cap = ids ? json_array_size(ids) : 64, i;
	struct exec_row *rows = malloc((cap ? cap : 1) * sizeof(*rows));
	sqlite3_stmt *s;
	int src;

	*n = 0;
	if (rows == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	if (ids == NULL) {
		s = kiln_store_stmt(st, sql_failed, err);
		if (s == NULL)
			goto fail_io;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
		while ((src = sqlite3_step(s)) == SQLITE_ROW) {
			if (*n == cap) {
				struct exec_row *nr =
					realloc(rows, 2 * cap * sizeof(*rows));

				if (nr == NULL) {
					sqlite3_reset(s);
					free(rows);
					return kiln_err_set(err, KILN_ENOMEM,
							    "", "out of memory");
				}
				rows = nr;
				cap *= 2;
			}
			read_exec_row(s, &rows[(*n)++]);
		}
		sqlite3_reset(s);
		if (src != SQLITE_DONE) {
			free(rows);
			return kiln_store_fail(st, src, err);
		}
		*out = rows;
		return KILN_OK;
	}
	for (i = 0; i < json_array_size(ids); i++) {
		const char *eid = json_string_value(json_array_get(ids, i));

		s = kiln_store_stmt(st, sql_one, err);
		if (s == NULL)
			goto fail_io;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 2, eid, -1, SQLITE_TRANSIENT);
		src = sqlite3_step(s);
		if (src == SQLITE_ROW)
			read_exec_row(s, &rows[*n]);
		sqlite3_reset(s);
		if (src == SQLITE_DONE) {
			free(rows);
			return kiln_err_set(err, KILN_ENOTFOUND,
					    "execution_ids",
					    "Execution %s is not in batch %s",
					    eid, id);
		}
		if (src != SQLITE_ROW) {
			free(rows);
			return kiln_store_fail(st, src, err);
		}
		if (listed_before(rows, *n, rows[*n].id))
			continue;
		if (strcmp(rows[*n].status, "FAILED") != 0 &&
		    strcmp(rows[*n].status, "CANCELLED") != 0) {
			enum kiln_rc rc = kiln_err_set(
				err, KILN_ECONFLICT, "execution_ids",
				"Execution %s is %s; only FAILED or"
				" CANCELLED executions can be retried",
				eid, rows[*n].status);

			free(rows);
			return rc;
		}
		(*n)++;
	}
	*out = rows;
	return KILN_OK;
fail_io:
	free(rows);
	return err ? err->code : KILN_EIO;
}

enum kiln_rc kiln_store_retry_batch(struct kiln_store *st, const char *id,
				    const struct kiln_scope *scope,
				    const json_t *ids, json_t **out,
				    struct kiln_err *err)
{
	struct exec_row *rows = NULL;
	int64_t now = kiln_now_ms();
	char status[32];
	json_t *b = NULL, *retried = json_array();
	enum kiln_rc rc;
	size_t n = 0, i;

	*out = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK) {
		json_decref(retried);
		return rc;
	}
	rc = batch_status(st, id, scope, status, err);
	if (rc == KILN_OK)
		rc = retry_targets(st, id, ids, &rows, &n, err);
	for (i = 0; rc == KILN_OK && i < n; i++) {
		rc = reset_execution(st, &rows[i], now, err);
		json_array_append_new(retried, json_string(rows[i].id));
	}
	if (rc == KILN_OK)
		rc = finish_if_done(st, id, err);
	if (rc == KILN_OK)
		rc = get_batch_locked(st, id, NULL, &b, err);
	if (rc == KILN_OK) {
		if (n > 0)
			kiln_store_mark_batches_changed(st);
		rc = kiln_store_commit(st, err);
	} else {
		kiln_store_rollback(st);
	}
	if (rc == KILN_OK)
		*out = json_pack("{s:O, s:O, s:s, s:I, s:O, s:O}", "id",
				 json_object_get(b, "id"), "status",
				 json_object_get(b, "status"),
				 "previous_status", status, "retried",
				 (json_int_t)n, "execution_ids", retried,
				 "assets", json_object_get(b, "assets"));
	free(rows);
	json_decref(retried);
	json_decref(b);
	return rc;
}
