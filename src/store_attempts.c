/*
 * store_attempts.c - the life of a RUNNING step between its claim and its
 * finish: attempts that end and wait for a retry, switches to the fallback
 * provider, async jobs recorded before they are polled, leases renewed,
 * and steps taken over from a process that is gone.
 *
 * Every change to a step is guarded by `status = 'RUNNING' AND task_id =
 * ?`: a step that was cancelled or reset meanwhile is left alone and the
 * caller gets KILN_ECONFLICT.
 */
#include <string.h>

#include "kiln/store.h"
#include "store_row.h"

/* Runs a guarded step update; KILN_ECONFLICT when no row matched. */
static enum kiln_rc guarded(struct kiln_store *st, sqlite3_stmt *s,
			    const char *step_uuid, struct kiln_err *err)
{
	int src = sqlite3_step(s);

	sqlite3_reset(s);
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	if (sqlite3_changes(kiln_store_db(st)) != 1)
		return kiln_err_set(err, KILN_ECONFLICT, "",
				    "step %s is no longer running this"
				    " attempt",
				    step_uuid);
	return KILN_OK;
}

/* Runs s (from kiln_store_begin_with) and ends the transaction. */
static enum kiln_rc in_tx(struct kiln_store *st, sqlite3_stmt *s,
			  const char *step_uuid, struct kiln_err *err)
{
	enum kiln_rc rc = guarded(st, s, step_uuid, err);

	if (rc == KILN_OK)
		rc = kiln_store_commit(st, err);
	if (rc != KILN_OK)
		kiln_store_rollback(st);
	return rc;
}

enum kiln_rc kiln_store_end_attempt(struct kiln_store *st,
				    const char *step_uuid, const char *task_id,
				    const struct kiln_attempt_end *end,
				    const struct kiln_next_attempt *next,
				    struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE steps SET attempts = json_set(attempts,"
		" '$[#-1].finished_at',"
		" strftime('%Y-%m-%dT%H:%M:%fZ', ?3 / 1000.0, 'unixepoch'),"
		" '$[#-1].outcome', ?4, '$[#-1].http_status', ?5,"
		" '$[#-1].error', ?6),"
		" retry_count = retry_count + ?7,"
		" provider_retries = CASE WHEN ?8 IS NULL"
		"   THEN provider_retries + ?7 ELSE 0 END,"
		" current_provider = COALESCE(?8, current_provider),"
		" on_fallback = on_fallback OR ?8 IS NOT NULL,"
		" error_message = ?6, next_attempt_at = ?9, job = NULL,"
		" updated_at = ?3"
		" WHERE id = ?1 AND task_id = ?2 AND status = 'RUNNING'";
	int64_t now = kiln_now_ms();
	sqlite3_stmt *s;
	enum kiln_rc rc = kiln_store_begin_with(st, sql, &s, err);

	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, task_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, now);
	sqlite3_bind_text(s, 4, end->outcome, -1, SQLITE_STATIC);
	if (end->http_status > 0)
		sqlite3_bind_int64(s, 5, end->http_status);
	else
		sqlite3_bind_null(s, 5);
	kiln_bind_cstr(s, 6, end->error);
	sqlite3_bind_int(s, 7, next->counts_as_retry ? 1 : 0);
	kiln_bind_cstr(s, 8, next->fallback_provider);
	sqlite3_bind_int64(s, 9, next->at_ms);
	return in_tx(st, s, step_uuid, err);
}

enum kiln_rc kiln_store_start_attempt(struct kiln_store *st,
				      const char *step_uuid,
				      const char *task_id,
				      struct kiln_err *err)
{
	/* An attempt still "running" here was cut short by a restart. */
	static const char sql[] =
		"UPDATE steps SET attempts = json_insert(CASE"
		" WHEN json_extract(attempts, '$[#-1].outcome') = 'running'"
		" THEN json_set(attempts, '$[#-1].outcome', 'interrupted',"
		"   '$[#-1].finished_at',"
		"   strftime('%Y-%m-%dT%H:%M:%fZ', ?3 / 1000.0, 'unixepoch'),"
		"   '$[#-1].error', 'kilnd stopped before the answer')"
		" ELSE attempts END, '$[#]', json_object('attempt',"
		" json_array_length(attempts) + 1, 'provider', current_provider,"
		" 'started_at',"
		" strftime('%Y-%m-%dT%H:%M:%fZ', ?3 / 1000.0, 'unixepoch'),"
		" 'finished_at', NULL, 'outcome', 'running', 'http_status', NULL,"
		" 'error', NULL, 'job_id', NULL)),"
		" next_attempt_at = NULL, job = NULL, updated_at = ?3"
		" WHERE id = ?1 AND task_id = ?2 AND status = 'RUNNING'";
	sqlite3_stmt *s;
	enum kiln_rc rc = kiln_store_begin_with(st, sql, &s, err);

	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, task_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, kiln_now_ms());
	return in_tx(st, s, step_uuid, err);
}

enum kiln_rc kiln_store_record_job(struct kiln_store *st,
				   const char *step_uuid, const char *task_id,
				   const json_t *job, struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE steps SET job = ?3, attempts = json_set(attempts,"
		" '$[#-1].job_id', json_extract(?3, '$.id')), updated_at = ?4"
		" WHERE id = ?1 AND task_id = ?2 AND status = 'RUNNING'";
	sqlite3_stmt *s;
	enum kiln_rc rc = kiln_store_begin_with(st, sql, &s, err);

	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, task_id, -1, SQLITE_TRANSIENT);
	kiln_bind_json(s, 3, job, NULL);
	sqlite3_bind_int64(s, 4, kiln_now_ms());
	return in_tx(st, s, step_uuid, err);
}

enum kiln_rc kiln_store_take_over(struct kiln_store *st,
				  const char *step_uuid, const char *owner,
				  int64_t lease_until_ms, int only_expired,
				  json_t **claim, struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE steps SET lease_owner = ?2, lease_expires_at = ?3"
		" WHERE id = ?1 AND status = 'RUNNING'"
		" AND (?4 = 0 OR lease_expires_at IS NULL"
		"      OR lease_expires_at < ?5)";
	sqlite3_stmt *s;
	enum kiln_rc rc;

	rc = kiln_store_begin_with(st, sql, &s, err);
	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, step_uuid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, owner, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, lease_until_ms);
	sqlite3_bind_int(s, 4, only_expired);
	sqlite3_bind_int64(s, 5, kiln_now_ms());
	rc = guarded(st, s, step_uuid, err);
	if (rc == KILN_OK)
		rc = kiln_store_load_claim(st, step_uuid, claim, err);
	if (rc != KILN_OK)
		goto fail;
	rc = kiln_store_commit(st, err);
	if (rc == KILN_OK)
		return KILN_OK;
	json_decref(*claim);
	*claim = NULL;
fail:
	kiln_store_rollback(st);
	return rc;
}

enum kiln_rc kiln_store_running_steps(struct kiln_store *st,
				      int only_expired, json_t **uuids,
				      struct kiln_err *err)
{
	static const char sql[] =
		"SELECT id FROM steps WHERE status = 'RUNNING'"
		" AND (?1 = 0 OR lease_expires_at IS NULL"
		"      OR lease_expires_at < ?2)";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	json_t *ids;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_int(s, 1, only_expired);
	sqlite3_bind_int64(s, 2, kiln_now_ms());
	ids = json_array();
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(ids, kiln_col_text(s, 0));
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		json_decref(ids);
		return kiln_store_fail(st, src, err);
	}
	*uuids = ids;
	return KILN_OK;
}

enum kiln_rc kiln_store_renew_leases(struct kiln_store *st,
				     const char *owner, const json_t *uuids,
				     int64_t lease_until_ms,
				     struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE steps SET lease_expires_at = ?2"
		" WHERE lease_owner = ?1 AND status = 'RUNNING'"
		" AND id IN (SELECT value FROM json_each(?3))";
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	if (json_array_size(uuids) == 0)
		return KILN_OK;
	rc = kiln_store_begin_with(st, sql, &s, err);
	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, owner, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, lease_until_ms);
	kiln_bind_json(s, 3, uuids, NULL);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
		kiln_store_rollback(st);
		return rc;
	}
	return kiln_store_commit(st, err);
}
