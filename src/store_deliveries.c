/*
 * store_deliveries.c - the delivery log as the API shows it: listing,
 * one delivery with every attempt, and redelivery.
 */
#include <string.h>

#include "kiln/store.h"
#include "store_row.h"

#define DELIVERY_COLS                                                       \
	"id, event, workflow_id, step_id, tenant_id, url, status,"          \
	" attempt_count, next_attempt_at, in_flight_since,"                 \
	" last_http_status, last_error, created_at, updated_at,"            \
	" completed_at, payload"

/* ?1 workflow, ?2 event, ?3 status, ?4 tenant scope. */
#define DELIVERY_FILTER                                                     \
	" WHERE (?1 IS NULL OR workflow_id = ?1)"                           \
	" AND (?2 IS NULL OR event = ?2) AND (?3 IS NULL OR status = ?3)"   \
	" AND (?4 IS NULL OR tenant_id = ?4)"

static const char SQL_COUNT[] =
	"SELECT count(*) FROM webhook_deliveries" DELIVERY_FILTER;
static const char SQL_LIST[] =
	"SELECT " DELIVERY_COLS " FROM webhook_deliveries" DELIVERY_FILTER
	" ORDER BY created_at DESC, rowid DESC LIMIT ?5 OFFSET ?6";
static const char SQL_GET[] =
	"SELECT " DELIVERY_COLS " FROM webhook_deliveries"
	" WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)";
static const char SQL_ATTEMPTS[] =
	"SELECT attempt, started_at, latency_ms, outcome, http_status,"
	" response_excerpt, error, retry_at FROM webhook_attempts"
	" WHERE delivery_id = ?1 ORDER BY attempt";

static const struct kiln_col_spec DELIVERY_ROW[] = {
	{"id", 0, KILN_COL_TEXT},
	{"event", 1, KILN_COL_TEXT},
	{"workflow_id", 2, KILN_COL_TEXT},
	{"step_id", 3, KILN_COL_TEXT},
	{"tenant_id", 4, KILN_COL_TEXT},
	{"url", 5, KILN_COL_TEXT},
	{"status", 6, KILN_COL_TEXT},
	{"attempt_count", 7, KILN_COL_INT},
	{"next_attempt_at", 8, KILN_COL_TIME},
	{"in_flight_since", 9, KILN_COL_TIME},
	{"last_http_status", 10, KILN_COL_INT},
	{"last_error", 11, KILN_COL_TEXT},
	{"created_at", 12, KILN_COL_TIME},
	{"updated_at", 13, KILN_COL_TIME},
	{"completed_at", 14, KILN_COL_TIME},
};

static const struct kiln_col_spec ATTEMPT_ROW[] = {
	{"attempt", 0, KILN_COL_INT},
	{"started_at", 1, KILN_COL_TIME},
	{"latency_ms", 2, KILN_COL_INT},
	{"outcome", 3, KILN_COL_TEXT},
	{"http_status", 4, KILN_COL_INT},
	{"response_excerpt", 5, KILN_COL_TEXT},
	{"error", 6, KILN_COL_TEXT},
	{"retry_at", 7, KILN_COL_TIME},
};

static json_t *render_delivery(sqlite3_stmt *s, int with_payload)
{
	json_t *o = json_object();

	kiln_row_set(o, s, DELIVERY_ROW,
		     sizeof(DELIVERY_ROW) / sizeof(DELIVERY_ROW[0]));
	if (with_payload)
		json_object_set_new(o, "payload", kiln_col_json(s, 15));
	return o;
}

struct delivery_list {
	const struct kiln_delivery_filter *f;
	const struct kiln_scope *scope;
};

static void bind_filter(sqlite3_stmt *s, const void *ctx)
{
	const struct delivery_list *l = ctx;

	kiln_bind_cstr(s, 1, l->f->workflow_id);
	kiln_bind_cstr(s, 2, l->f->event);
	kiln_bind_cstr(s, 3, l->f->status);
	kiln_bind_cstr(s, 4, l->scope ? l->scope->tenant : NULL);
}

static json_t *render_listed(sqlite3_stmt *s)
{
	return render_delivery(s, 0);
}

enum kiln_rc kiln_store_list_deliveries(struct kiln_store *st,
					const struct kiln_delivery_filter *f,
					const struct kiln_scope *scope,
					json_t **out, struct kiln_err *err)
{
	struct delivery_list l = {f, scope};
	struct kiln_page_query q = {SQL_COUNT, SQL_LIST, bind_filter, &l, 5,
				    f->limit, f->offset, render_listed,
				    "deliveries"};

	return kiln_store_page(st, &q, out, err);
}

static enum kiln_rc attempts_of(struct kiln_store *st, const char *id,
				json_t *delivery, struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_ATTEMPTS, err);
	json_t *list = json_array();
	int src;

	if (s == NULL) {
		json_decref(list);
		return err ? err->code : KILN_EIO;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *o = json_object();

		kiln_row_set(o, s, ATTEMPT_ROW,
			     sizeof(ATTEMPT_ROW) / sizeof(ATTEMPT_ROW[0]));
		json_array_append_new(list, o);
	}
	sqlite3_reset(s);
	json_object_set_new(delivery, "attempts", list);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

enum kiln_rc kiln_store_get_delivery(struct kiln_store *st, const char *id,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
{
	json_t *d = NULL;
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	rc = kiln_store_begin_read(st, err);
	if (rc != KILN_OK)
		return rc;
	s = kiln_store_stmt(st, SQL_GET, err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto out;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		d = render_delivery(s, 1);
	sqlite3_reset(s);
	if (src == SQLITE_DONE)
		rc = kiln_err_set(err, KILN_ENOTFOUND, "",
				  "Webhook delivery %s not found", id);
	else if (src != SQLITE_ROW)
		rc = kiln_store_fail(st, src, err);
	if (rc == KILN_OK)
		rc = attempts_of(st, id, d, err);
out:
	kiln_store_rollback(st);
	if (rc != KILN_OK) {
		json_decref(d);
		return rc;
	}
	*out = d;
	return KILN_OK;
}

enum kiln_rc kiln_store_redeliver(struct kiln_store *st, const char *id,
				  const struct kiln_scope *scope,
				  struct kiln_err *err)
{
	static const char sql_check[] =
		"SELECT in_flight_since IS NOT NULL FROM webhook_deliveries"
		" WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)";
	static const char sql_reset[] =
		"UPDATE webhook_deliveries SET status = 'pending',"
		" round_attempts = 0, next_attempt_at = ?2, completed_at = NULL,"
		" updated_at = ?2 WHERE id = ?1";
	int64_t now = kiln_now_ms();
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src, in_flight = 0;

	rc = kiln_store_begin_with(st, sql_check, &s, err);
	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		in_flight = sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	if (src == SQLITE_DONE)
		rc = kiln_err_set(err, KILN_ENOTFOUND, "",
				  "Webhook delivery %s not found", id);
	else if (src != SQLITE_ROW)
		rc = kiln_store_fail(st, src, err);
	else if (in_flight)
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "Webhook delivery %s has an attempt in"
				  " flight; redeliver it when it ends",
				  id);
	if (rc == KILN_OK) {
		s = kiln_store_stmt(st, sql_reset, err);
		if (s == NULL) {
			rc = err ? err->code : KILN_EIO;
		} else {
			sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(s, 2, now);
			src = sqlite3_step(s);
			sqlite3_reset(s);
			if (src != SQLITE_DONE)
				rc = kiln_store_fail(st, src, err);
		}
	}
	if (rc != KILN_OK) {
		kiln_store_rollback(st);
		return rc;
	}
	kiln_store_mark_delivery_queued(st);
	return kiln_store_commit(st, err);
}
