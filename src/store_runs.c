/*
 * store_runs.c - runs of templates and Idempotency-Keys.
 *
 * A key is recorded in the transaction that creates what it names, and
 * looked up in that same transaction first: two requests racing with one
 * key are serialised by the write lock, so exactly one creates.
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/store.h"
#include "store_row.h"

enum kiln_rc kiln_store_idem_find(struct kiln_store *st,
				  const struct kiln_idem *idem,
				  char **existing, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT request_hash, resource_id FROM idempotency_keys"
		" WHERE tenant_id = ?1 AND idem_key = ?2";
	enum kiln_rc rc = KILN_OK;
	sqlite3_stmt *s;
	int src;

	*existing = NULL;
	if (idem == NULL || idem->key == NULL)
		return KILN_OK;
	s = kiln_store_stmt(st, sql, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, idem->tenant ? idem->tenant : "", -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, idem->key, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		const char *hash = (const char *)sqlite3_column_text(s, 0);

		if (strcmp(hash, idem->hash) != 0)
			rc = kiln_err_set(err, KILN_ECONFLICT, "Idempotency-Key",
					  "Idempotency-Key '%s' was already"
					  " used with another request",
					  idem->key);
		else
			*existing = strdup(
				(const char *)sqlite3_column_text(s, 1));
	} else if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
	}
	sqlite3_reset(s);
	return rc;
}

enum kiln_rc kiln_store_idem_lookup(struct kiln_store *st,
				    const struct kiln_idem *idem,
				    char **existing, struct kiln_err *err)
{
	enum kiln_rc rc;

	*existing = NULL;
	if (idem == NULL || idem->key == NULL)
		return KILN_OK;
	rc = kiln_store_begin_read(st, err);
	if (rc != KILN_OK)
		return rc;
	rc = kiln_store_idem_find(st, idem, existing, err);
	kiln_store_rollback(st);
	return rc;
}

enum kiln_rc kiln_store_idem_record(struct kiln_store *st,
				    const struct kiln_idem *idem,
				    const char *type, const char *id,
				    struct kiln_err *err)
{
	static const char sql[] =
		"INSERT INTO idempotency_keys (tenant_id, idem_key,"
		" request_hash, resource_type, resource_id, created_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	sqlite3_stmt *s;
	int src;

	if (idem == NULL || idem->key == NULL)
		return KILN_OK;
	s = kiln_store_stmt(st, sql, err);
	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, idem->tenant ? idem->tenant : "", -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, idem->key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, idem->hash, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 4, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 6, kiln_now_ms());
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

enum kiln_rc kiln_store_insert_run(struct kiln_store *st, const json_t *wf,
				   const struct kiln_idem *idem,
				   const struct kiln_claimer *who,
				   json_t **claims, char **existing,
				   struct kiln_err *err)
{
	const char *id = json_string_value(json_object_get(wf, "id"));
	json_t *claimed = json_array();
	enum kiln_rc rc;

	*claims = NULL;
	*existing = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK) {
		json_decref(claimed);
		return rc;
	}
	rc = kiln_store_idem_find(st, idem, existing, err);
	if (rc == KILN_OK && *existing == NULL) {
		rc = kiln_store_insert_workflow_locked(st, wf, who, claimed,
						       err);
		if (rc == KILN_OK)
			rc = kiln_store_idem_record(st, idem, "run", id, err);
	}
	if (rc == KILN_OK && *existing == NULL)
		rc = kiln_store_commit(st, err);
	else
		kiln_store_rollback(st);
	if (rc != KILN_OK) {
		free(*existing);
		*existing = NULL;
		json_decref(claimed);
		return rc;
	}
	*claims = claimed;
	return KILN_OK;
}
