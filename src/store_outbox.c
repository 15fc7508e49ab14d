/*
 * store_outbox.c - the webhook outbox: deliveries queued in the same
 * transaction as the state change that causes them, claimed by the
 * dispatcher, and every attempt recorded.
 *
 * A delivery is "in flight" while in_flight_since is set.  Only this
 * process sends (the data directory is locked), so at start-up every
 * delivery still marked in flight belonged to a dead process: its attempt
 * is recorded as interrupted and it is sent again.  A delivery is marked
 * delivered only by the attempt that got a 2xx.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/netcheck.h"
#include "kiln/store.h"
#include "kiln/webhook_event.h"
#include "store_row.h"

/* ---- queueing ---------------------------------------------------------- */

/* schedule_s[0]: how long a new delivery waits for its first attempt. */
static volatile int64_t first_delay_ms;

void kiln_store_set_first_delivery_delay(int64_t ms)
{
	first_delay_ms = ms;
}

struct hook_target {
	json_t *url;
	int suppress_steps;
	json_t *tenant;
};

static enum kiln_rc hook_target(struct kiln_store *st, const char *wf_id,
				struct hook_target *t, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT webhook_url, suppress_subtask_events, origin_tenant_id"
		" FROM workflows WHERE id = ?1";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	memset(t, 0, sizeof(*t));
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, wf_id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		t->url = kiln_col_text(s, 0);
		t->suppress_steps = sqlite3_column_int(s, 1);
		t->tenant = kiln_col_text(s, 2);
	}
	sqlite3_reset(s);
	if (src != SQLITE_ROW && src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	return KILN_OK;
}

static void new_event_id(char out[40])
{
	char uuid[KILN_UUID_LEN];
	size_t i, j = 4;

	kiln_uuid_new(uuid);
	memcpy(out, "msg_", 4);
	for (i = 0; uuid[i] != '\0'; i++)
		if (uuid[i] != '-')
			out[j++] = uuid[i];
	out[j] = '\0';
}

static enum kiln_rc insert_delivery(struct kiln_store *st, const char *id,
				    const char *type, const char *wf_id,
				    const char *step_id,
				    const struct hook_target *t,
				    const char *payload, int64_t now,
				    struct kiln_err *err)
{
	static const char sql[] =
		"INSERT INTO webhook_deliveries (id, event, workflow_id,"
		" step_id, tenant_id, url, endpoint, payload, status,"
		" next_attempt_at, created_at, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?10, ?9,"
		" ?9)";
	const char *url = json_string_value(t->url);
	char *endpoint = kiln_url_endpoint(url);
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL) {
		free(endpoint);
		return err ? err->code : KILN_EIO;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, type, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 3, wf_id);
	kiln_bind_cstr(s, 4, step_id);
	kiln_bind_str(s, 5, t->tenant);
	sqlite3_bind_text(s, 6, url, -1, SQLITE_TRANSIENT);
	/* An endpoint that does not parse fails at its first attempt; it
	 * still gets a concurrency bucket of its own. */
	sqlite3_bind_text(s, 7, endpoint ? endpoint : url, -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 8, payload, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 9, now);
	sqlite3_bind_int64(s, 10, now + first_delay_ms);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	free(endpoint);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

enum kiln_rc kiln_store_queue_delivery(struct kiln_store *st,
				       const char *type, const char *url,
				       const char *tenant, const char *wf_id,
				       json_t *payload, struct kiln_err *err)
{
	struct hook_target t = {0};
	int64_t now = kiln_now_ms();
	char ts[KILN_RFC3339_LEN];
	enum kiln_rc rc;
	char id[40];
	char *text;

	new_event_id(id);
	json_object_set_new(payload, "id", json_string(id));
	json_object_set_new(payload, "event", json_string(type));
	kiln_rfc3339(now, ts);
	json_object_set_new(payload, "timestamp", json_string(ts));
	text = json_dumps(payload, JSON_COMPACT);
	if (text == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	t.url = json_string(url);
	t.tenant = tenant ? json_string(tenant) : NULL;
	rc = insert_delivery(st, id, type, wf_id, NULL, &t, text, now, err);
	if (rc == KILN_OK)
		kiln_store_mark_delivery_queued(st);
	json_decref(t.url);
	json_decref(t.tenant);
	free(text);
	return rc;
}

enum kiln_rc kiln_store_queue_event(struct kiln_store *st, const char *wf_id,
				    const char *type, const char *step_id,
				    const struct kiln_event_error *error,
				    struct kiln_err *err)
{
	struct hook_target t;
	struct kiln_event ev = {0};
	char id[40];
	json_t *wf = NULL, *payload = NULL;
	char *text = NULL;
	enum kiln_rc rc;

	rc = hook_target(st, wf_id, &t, err);
	if (rc != KILN_OK || !json_is_string(t.url) ||
	    (strncmp(type, "step.", 5) == 0 && t.suppress_steps))
		goto out;
	rc = kiln_store_get_workflow_locked(st, wf_id, NULL, &wf, err);
	if (rc != KILN_OK)
		goto out;
	new_event_id(id);
	ev.id = id;
	ev.type = type;
	ev.now_ms = kiln_now_ms();
	ev.workflow = wf;
	ev.step_id = step_id;
	ev.error = error;
	payload = kiln_webhook_payload(&ev);
	text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	if (text == NULL) {
		rc = kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
		goto out;
	}
	rc = insert_delivery(st, id, type, wf_id, step_id, &t, text,
			     ev.now_ms, err);
	if (rc == KILN_OK)
		kiln_store_mark_delivery_queued(st);
out:
	free(text);
	json_decref(payload);
	json_decref(wf);
	json_decref(t.url);
	json_decref(t.tenant);
	return rc;
}

/* ---- the dispatcher's side --------------------------------------------- */

static const char SQL_DUE[] =
	"SELECT id, url, endpoint, payload, tenant_id, attempt_count + 1,"
	" round_attempts FROM webhook_deliveries"
	" WHERE status = 'pending' AND next_attempt_at <= ?1"
	" AND in_flight_since IS NULL"
	" AND endpoint NOT IN (SELECT value FROM json_each(?2))"
	" ORDER BY next_attempt_at LIMIT ?3";

static const struct kiln_col_spec CLAIM_ROW[] = {
	{"id", 0, KILN_COL_TEXT},     {"url", 1, KILN_COL_TEXT},
	{"endpoint", 2, KILN_COL_TEXT}, {"payload", 3, KILN_COL_TEXT},
	{"tenant_id", 4, KILN_COL_TEXT}, {"attempt", 5, KILN_COL_INT},
	{"round", 6, KILN_COL_INT},
};

/* One batch of due rows outside the endpoints in full. */
static enum kiln_rc due_rows(struct kiln_store *st, int64_t now,
			     const json_t *full, size_t limit, json_t **rows,
			     struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_DUE, err);
	json_t *list;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_int64(s, 1, now);
	kiln_bind_json(s, 2, full, "[]");
	sqlite3_bind_int64(s, 3, (sqlite3_int64)limit);
	list = json_array();
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *o = json_object();

		kiln_row_set(o, s, CLAIM_ROW,
			     sizeof(CLAIM_ROW) / sizeof(CLAIM_ROW[0]));
		json_array_append_new(list, o);
	}
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		json_decref(list);
		return kiln_store_fail(st, src, err);
	}
	*rows = list;
	return KILN_OK;
}

static enum kiln_rc mark_in_flight(struct kiln_store *st, const char *id,
				   int64_t now, struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE webhook_deliveries SET in_flight_since = ?2"
		" WHERE id = ?1";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, now);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

/*
 * Each round either takes rows or finds endpoints full (and leaves them
 * out of the next query), so a receiver with a backlog never hides the
 * deliveries due to others behind it.
 */
enum kiln_rc kiln_store_claim_deliveries(struct kiln_store *st, int64_t now,
					 const json_t *inflight,
					 int per_endpoint, size_t max,
					 json_t **claimed,
					 struct kiln_err *err)
{
	json_t *taken = json_array(), *full = json_array();
	json_t *counts = inflight ? json_deep_copy(inflight) : json_object();
	enum kiln_rc rc;
	int progress = 1;

	*claimed = NULL;
	rc = kiln_store_begin(st, err);
	while (rc == KILN_OK && progress && json_array_size(taken) < max) {
		json_t *rows = NULL, *row;
		size_t i;

		rc = due_rows(st, now, full, max - json_array_size(taken),
			      &rows, err);
		if (rc != KILN_OK)
			break;
		progress = 0;
		json_array_foreach(rows, i, row) {
			const char *ep = json_string_value(
				json_object_get(row, "endpoint"));
			json_int_t n = json_integer_value(
				json_object_get(counts, ep));

			if (n >= per_endpoint) {
				json_array_append_new(full, json_string(ep));
				progress = 1;
				/* Skip its other rows of this batch too. */
				json_object_set_new(counts, ep,
						    json_integer(n + 1));
				continue;
			}
			if (n == per_endpoint - 1 && n >= 0)
				json_array_append_new(full, json_string(ep));
			json_object_set_new(counts, ep, json_integer(n + 1));
			rc = mark_in_flight(
				st,
				json_string_value(json_object_get(row, "id")),
				now, err);
			if (rc != KILN_OK)
				break;
			json_array_append(taken, row);
			progress = 1;
		}
		json_decref(rows);
	}
	if (rc == KILN_OK)
		rc = kiln_store_commit(st, err);
	else
		kiln_store_rollback(st);
	json_decref(full);
	json_decref(counts);
	if (rc != KILN_OK) {
		json_decref(taken);
		return rc;
	}
	*claimed = taken;
	return KILN_OK;
}

static enum kiln_rc record_one(struct kiln_store *st,
			       const struct kiln_delivery_attempt *a,
			       int64_t now, struct kiln_err *err)
{
	static const char sql_attempt[] =
		"INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt,"
		" started_at, latency_ms, outcome, http_status,"
		" response_excerpt, error, retry_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
	static const char sql_delivery[] =
		"UPDATE webhook_deliveries SET in_flight_since = NULL,"
		" attempt_count = ?2, round_attempts = round_attempts + 1,"
		" status = ?3, next_attempt_at = ?4, last_http_status = ?5,"
		" last_error = ?6, updated_at = ?7,"
		" completed_at = CASE WHEN ?3 = 'pending' THEN NULL ELSE ?7 END"
		" WHERE id = ?1 AND in_flight_since IS NOT NULL";
	const char *status = a->delivered	 ? "delivered"
			     : a->retry_at > 0 ? "pending"
					       : "failed";
	sqlite3_stmt *s = kiln_store_stmt(st, sql_delivery, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, a->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 2, a->attempt);
	sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
	if (a->retry_at > 0 && !a->delivered)
		sqlite3_bind_int64(s, 4, a->retry_at);
	else
		sqlite3_bind_null(s, 4);
	if (a->http_status > 0)
		sqlite3_bind_int64(s, 5, a->http_status);
	else
		sqlite3_bind_null(s, 5);
	kiln_bind_cstr(s, 6, a->error);
	sqlite3_bind_int64(s, 7, now);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	/* Redelivered or recovered meanwhile: this attempt is history. */
	if (sqlite3_changes(kiln_store_db(st)) == 0)
		return KILN_OK;
	s = kiln_store_stmt(st, sql_attempt, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, a->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 2, a->attempt);
	sqlite3_bind_int64(s, 3, a->started_at);
	sqlite3_bind_int64(s, 4, a->latency_ms);
	sqlite3_bind_text(s, 5, a->delivered ? "delivered" : "failed", -1,
			  SQLITE_STATIC);
	if (a->http_status > 0)
		sqlite3_bind_int64(s, 6, a->http_status);
	else
		sqlite3_bind_null(s, 6);
	kiln_bind_cstr(s, 7, a->excerpt);
	kiln_bind_cstr(s, 8, a->error);
	if (a->retry_at > 0 && !a->delivered)
		sqlite3_bind_int64(s, 9, a->retry_at);
	else
		sqlite3_bind_null(s, 9);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

enum kiln_rc kiln_store_record_deliveries(struct kiln_store *st,
					  const struct kiln_delivery_attempt *a,
					  size_t n, struct kiln_err *err)
{
	int64_t now = kiln_now_ms();
	enum kiln_rc rc = kiln_store_begin(st, err);
	size_t i;

	for (i = 0; rc == KILN_OK && i < n; i++)
		rc = record_one(st, &a[i], now, err);
	if (rc == KILN_OK)
		return kiln_store_commit(st, err);
	kiln_store_rollback(st);
	return rc;
}

enum kiln_rc kiln_store_next_delivery_at(struct kiln_store *st,
					 const json_t *full, int64_t *at,
					 struct kiln_err *err)
{
	static const char sql[] =
		"SELECT MIN(next_attempt_at) FROM webhook_deliveries"
		" WHERE status = 'pending' AND in_flight_since IS NULL"
		" AND endpoint NOT IN (SELECT value FROM json_each(?1))";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	*at = -1;
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	kiln_bind_json(s, 1, full, "[]");
	src = sqlite3_step(s);
	if (src == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*at = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return src == SQLITE_ROW ? KILN_OK : kiln_store_fail(st, src, err);
}

enum kiln_rc kiln_store_recover_deliveries(struct kiln_store *st,
					   size_t *recovered,
					   struct kiln_err *err)
{
	static const char sql_attempts[] =
		"INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt,"
		" started_at, latency_ms, outcome, error)"
		" SELECT id, attempt_count + 1, in_flight_since, ?1 -"
		" in_flight_since, 'failed', 'interrupted: kilnd stopped during"
		" this attempt; the delivery is sent again'"
		" FROM webhook_deliveries WHERE in_flight_since IS NOT NULL";
	static const char sql_due[] =
		"UPDATE webhook_deliveries SET attempt_count = attempt_count + 1,"
		" in_flight_since = NULL, next_attempt_at = ?1,"
		" last_error = 'interrupted', updated_at = ?1"
		" WHERE in_flight_since IS NOT NULL";
	int64_t now = kiln_now_ms();
	const char *sqls[] = {sql_attempts, sql_due};
	enum kiln_rc rc = kiln_store_begin(st, err);
	size_t i;

	*recovered = 0;
	for (i = 0; rc == KILN_OK && i < 2; i++) {
		sqlite3_stmt *s = kiln_store_stmt(st, sqls[i], err);
		int src;

		if (s == NULL) {
			rc = err ? err->code : KILN_EIO;
			break;
		}
		sqlite3_bind_int64(s, 1, now);
		src = sqlite3_step(s);
		sqlite3_reset(s);
		if (src != SQLITE_DONE)
			rc = kiln_store_fail(st, src, err);
		else
			*recovered = (size_t)sqlite3_changes(
				kiln_store_db(st));
	}
	if (rc == KILN_OK)
		return kiln_store_commit(st, err);
	kiln_store_rollback(st);
	return rc;
}
