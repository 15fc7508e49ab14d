/*
 * store_workflows.c - workflows as the API sees them: insert, render as
 * WorkflowPublic, list, patch, the API's state transitions, soft delete.
 *
 * Reads that span several statements (a workflow and its steps, a page of
 * workflows and their count) run inside one read transaction so they see
 * one snapshot.  Every transition is a guarded read-check-write inside a
 * BEGIN IMMEDIATE transaction, so two callers can never both succeed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kiln/store.h"
#include "kiln/webhook_event.h"
#include "store_claim.h"
#include "store_row.h"

#define WF_COLS                                                               \
	"id, name, description, status, config, suppress_subtask_events,"     \
	" origin_instance, origin_zone, origin_tenant_id, origin_reference,"  \
	" webhook_url, canvas_task_id, error_message, errors, total_steps,"   \
	" completed_steps, final_step_id, started_at, completed_at,"          \
	" created_at, updated_at, is_deleted, deleted_at, template_id,"      \
	" template_version, run_inputs, batch_id"

#define STEP_COLS                                                             \
	"id, step_id, task_type, provider, config, provider_config,"          \
	" active_provider_capabilities, fallback_provider_type,"              \
	" fallback_provider_config, fallback_provider_capabilities,"          \
	" dependencies, input_mappings, status, task_id, result,"             \
	" error_message, started_at, completed_at, retry_count, max_retries," \
	" created_at, updated_at, attempts, provider_used,"                    \
	" json_extract(job, '$.id')"

static const char SQL_INSERT_WF[] =
	"INSERT INTO workflows (id, name, description, status, config,"
	" suppress_subtask_events, origin_instance, origin_zone,"
	" origin_tenant_id, origin_reference, webhook_url, total_steps,"
	" final_step_id, started_at, created_at, updated_at, template_id,"
	" template_version, run_inputs, batch_id)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
	" ?14, ?15, ?15, ?16, ?17, ?18, ?19)";

/* A first step of a workflow inserted RUNNING is inserted claimed
 * (?15 'RUNNING', ?18-?23), as claim_locked (store_engine.c) would
 * leave it; the others PENDING, with NULLs there. */
static const char SQL_INSERT_STEP[] =
	"INSERT INTO steps (id, workflow_id, position, step_id, task_type,"
	" provider, config, provider_config, active_provider_capabilities,"
	" fallback_provider_type, fallback_provider_config,"
	" fallback_provider_capabilities, dependencies, input_mappings,"
	" status, max_retries, created_at, updated_at, task_id, started_at,"
	" first_started_at, lease_owner, lease_expires_at, current_provider,"
	" attempts)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
	" ?14, ?15, ?16, ?17, ?17, ?18, ?19, ?19, ?20, ?21, ?22,"
	" COALESCE(?23, '[]'))";

static const char SQL_GET_WF[] =
	"SELECT " WF_COLS " FROM workflows"
	" WHERE id = ?1 AND (?2 IS NULL OR origin_tenant_id = ?2)";

static const char SQL_GET_STEPS[] =
	"SELECT " STEP_COLS " FROM steps WHERE workflow_id = ?1"
	" ORDER BY position";

/*
 * The list's WHERE comes in eight forms, by whether a status and a tenant
 * are given and deleted workflows are included: a plain "status = ?1" /
 * "origin_tenant_id = ?8" lets SQLite walk workflows_by_status /
 * workflows_by_tenant, where "(?1 IS NULL OR status = ?1)" made every
 * poll of ?status=COMPLETED scan the table; and a plain "is_deleted = 0"
 * lets the count of a status read workflows_by_status (status,
 * is_deleted, created_at) alone, without visiting a row per workflow
 * counted.  ?8 is the tenant (the filter's, else the caller's scope);
 * the tests on ?3 and ?4 still refuse a filter that differs from the
 * scope.
 */
#define LIST_REST(live)                                                       \
	" AND (?2 IS NULL OR origin_instance = ?2)"                           \
	" AND (?3 IS NULL OR origin_tenant_id = ?3)"                          \
	" AND (?4 IS NULL OR origin_tenant_id = ?4)" live
#define LIVE " AND is_deleted = 0"
#define LIST_ANY(live) " WHERE ?1 IS NULL" LIST_REST(live)
#define LIST_STATUS(live) " WHERE status = ?1" LIST_REST(live)
#define LIST_TENANT(live)                                                     \
	" WHERE ?1 IS NULL AND origin_tenant_id = ?8" LIST_REST(live)
#define LIST_BOTH(live)                                                       \
	" WHERE status = ?1 AND origin_tenant_id = ?8" LIST_REST(live)
#define LIST_SELECT(where)                                                    \
	"SELECT " WF_COLS " FROM workflows" where                             \
	" ORDER BY created_at DESC, rowid DESC LIMIT ?6 OFFSET ?7"
#define LIST_COUNT(where) "SELECT count(*) FROM workflows" where

/* Indexed by list_form(). */
static const char *const SQL_LIST[] = {
	LIST_SELECT(LIST_ANY(LIVE)),    LIST_SELECT(LIST_STATUS(LIVE)),
	LIST_SELECT(LIST_TENANT(LIVE)), LIST_SELECT(LIST_BOTH(LIVE)),
	LIST_SELECT(LIST_ANY("")),      LIST_SELECT(LIST_STATUS("")),
	LIST_SELECT(LIST_TENANT("")),   LIST_SELECT(LIST_BOTH(""))};
static const char *const SQL_COUNT[] = {
	LIST_COUNT(LIST_ANY(LIVE)),    LIST_COUNT(LIST_STATUS(LIVE)),
	LIST_COUNT(LIST_TENANT(LIVE)), LIST_COUNT(LIST_BOTH(LIVE)),
	LIST_COUNT(LIST_ANY("")),      LIST_COUNT(LIST_STATUS("")),
	LIST_COUNT(LIST_TENANT("")),   LIST_COUNT(LIST_BOTH(""))};

static const char SQL_STATUS[] =
	"SELECT status, is_deleted FROM workflows"
	" WHERE id = ?1 AND (?2 IS NULL OR origin_tenant_id = ?2)";

/* ---- rendering ------------------------------------------------------- */

static const struct kiln_col_spec STEP_ROW[] = {
	{"id", 0, KILN_COL_TEXT},
	{"step_id", 1, KILN_COL_TEXT},
	{"task_type", 2, KILN_COL_TEXT},
	{"provider", 3, KILN_COL_TEXT},
	{"config", 4, KILN_COL_JSON},
	{"provider_config", 5, KILN_COL_JSON},
	{"active_provider_capabilities", 6, KILN_COL_JSON},
	{"fallback_provider_type", 7, KILN_COL_TEXT},
	{"fallback_provider_config", 8, KILN_COL_JSON},
	{"fallback_provider_capabilities", 9, KILN_COL_JSON},
	{"dependencies", 10, KILN_COL_JSON},
	{"input_mappings", 11, KILN_COL_JSON},
	{"status", 12, KILN_COL_TEXT},
	{"task_id", 13, KILN_COL_TEXT},
	{"result", 14, KILN_COL_JSON},
	{"error_message", 15, KILN_COL_TEXT},
	{"started_at", 16, KILN_COL_TIME},
	{"completed_at", 17, KILN_COL_TIME},
	{"retry_count", 18, KILN_COL_INT},
	{"max_retries", 19, KILN_COL_INT},
	{"created_at", 20, KILN_COL_TIME},
	{"updated_at", 21, KILN_COL_TIME},
	{"attempts", 22, KILN_COL_JSON},
	{"provider_used", 23, KILN_COL_TEXT},
	{"provider_job_id", 24, KILN_COL_TEXT},
};

static json_t *render_step(sqlite3_stmt *s)
{
	json_t *o = json_object();

	kiln_row_set(o, s, STEP_ROW, sizeof(STEP_ROW) / sizeof(STEP_ROW[0]));
	return o;
}

/* Adds "steps" and the fields derived from them (completed_steps,
 * progress, current_step, final_step_result) to the workflow object. */
static enum kiln_rc render_steps(struct kiln_store *st, json_t *wf,
				 struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_GET_STEPS, err);
	const char *final_id = json_string_value(
		json_object_get(wf, "final_step_id"));
	json_t *steps = json_array();
	json_t *current = json_null();
	json_t *final_result = json_null();
	int64_t total = 0, completed = 0;
	double progress;
	int rc;

	if (s == NULL) {
		json_decref(steps);
		return err ? err->code : KILN_EIO;
	}
	sqlite3_bind_text(s, 1, json_string_value(json_object_get(wf, "id")),
			  -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *step = render_step(s);
		const char *status = json_string_value(
			json_object_get(step, "status"));
		const char *sid = json_string_value(
			json_object_get(step, "step_id"));

		total++;
		if (strcmp(status, "COMPLETED") == 0) {
			completed++;
			if (final_id && strcmp(sid, final_id) == 0) {
				json_decref(final_result);
				final_result = json_incref(
					json_object_get(step, "result"));
			}
		} else if (strcmp(status, "RUNNING") == 0 &&
			   json_is_null(current)) {
			current = json_string(sid);
		}
		json_array_append_new(steps, step);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(steps);
		json_decref(current);
		json_decref(final_result);
		return kiln_store_fail(st, rc, err);
	}
	progress = total ? round(10000.0 * (double)completed /
				 (double)total) / 100.0
			 : 0.0;
	json_object_set_new(wf, "total_steps", json_integer(total));
	json_object_set_new(wf, "completed_steps", json_integer(completed));
	json_object_set_new(wf, "progress", json_real(progress));
	json_object_set_new(wf, "current_step", current);
	json_object_set_new(wf, "final_step_result", final_result);
	json_object_set_new(wf, "steps", steps);
	return KILN_OK;
}

static const struct kiln_col_spec WF_ROW[] = {
	{"id", 0, KILN_COL_TEXT},
	{"name", 1, KILN_COL_TEXT},
	{"description", 2, KILN_COL_TEXT},
	{"status", 3, KILN_COL_TEXT},
	{"total_steps", 14, KILN_COL_INT},
	{"completed_steps", 15, KILN_COL_INT},
	{"progress", -1, KILN_PLACE_ZERO},
	{"current_step", -1, KILN_PLACE_NULL},
	{"final_step_id", 16, KILN_COL_TEXT},
	{"final_step_result", -1, KILN_PLACE_NULL},
	{"canvas_task_id", 11, KILN_COL_TEXT},
	{"config", 4, KILN_COL_JSON},
	{"suppress_subtask_events", 5, KILN_COL_BOOL},
	{"origin_instance", 6, KILN_COL_TEXT},
	{"origin_zone", 7, KILN_COL_TEXT},
	{"origin_tenant_id", 8, KILN_COL_TEXT},
	{"origin_reference", 9, KILN_COL_TEXT},
	{"webhook_url", 10, KILN_COL_TEXT},
	{"error_message", 12, KILN_COL_TEXT},
	{"errors", 13, KILN_COL_JSON},
	{"started_at", 17, KILN_COL_TIME},
	{"completed_at", 18, KILN_COL_TIME},
	{"created_at", 19, KILN_COL_TIME},
	{"updated_at", 20, KILN_COL_TIME},
	{"is_deleted", 21, KILN_COL_BOOL},
	{"deleted_at", 22, KILN_COL_TIME},
	{"template_id", 23, KILN_COL_TEXT},
	{"template_version", 24, KILN_COL_INT},
	{"inputs", 25, KILN_COL_JSON},
	{"batch_id", 26, KILN_COL_TEXT},
};

static json_t *render_workflow_row(sqlite3_stmt *s)
{
	json_t *o = json_object();

	kiln_row_set(o, s, WF_ROW, sizeof(WF_ROW) / sizeof(WF_ROW[0]));
	return o;
}

/* Renders one workflow; the caller holds a transaction. */
enum kiln_rc kiln_store_get_workflow_locked(struct kiln_store *st,
					    const char *id,
					    const struct kiln_scope *scope,
					    json_t **out, struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_GET_WF, err);
	json_t *wf;
	enum kiln_rc rc;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src == SQLITE_DONE) {
		sqlite3_reset(s);
		return kiln_err_set(err, KILN_ENOTFOUND, "",
				    "Workflow %s not found", id);
	}
	if (src != SQLITE_ROW) {
		sqlite3_reset(s);
		return kiln_store_fail(st, src, err);
	}
	wf = render_workflow_row(s);
	sqlite3_reset(s);
	rc = render_steps(st, wf, err);
	if (rc != KILN_OK) {
		json_decref(wf);
		return rc;
	}
	*out = wf;
	return KILN_OK;
}

enum kiln_rc kiln_store_get_workflow(struct kiln_store *st, const char *id,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
{
	enum kiln_rc rc = kiln_store_begin_read(st, err);

	if (rc != KILN_OK)
		return rc;
	rc = kiln_store_get_workflow_locked(st, id, scope, out, err);
	kiln_store_rollback(st);
	return rc;
}

/* ---- insert ---------------------------------------------------------- */

/* The claim of a step inserted RUNNING. */
struct step_claim {
	const struct kiln_claimer *who;
	char task_id[KILN_UUID_LEN];
	struct kiln_jw attempts; /* the attempts column's text */
};

static enum kiln_rc insert_step(struct kiln_store *st, const char *wf_id,
				size_t pos, const json_t *step, int64_t now,
				const struct step_claim *c,
				struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_INSERT_STEP, err);
	int rc;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	kiln_bind_str(s, 1, json_object_get(step, "uuid"));
	sqlite3_bind_text(s, 2, wf_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)pos);
	kiln_bind_str(s, 4, json_object_get(step, "id"));
	kiln_bind_str(s, 5, json_object_get(step, "task_type"));
	kiln_bind_str(s, 6, json_object_get(step, "provider"));
	kiln_bind_json(s, 7, json_object_get(step, "config"), "{}");
	kiln_bind_json(s, 8, json_object_get(step, "provider_config"), NULL);
	kiln_bind_json(s, 9,
		       json_object_get(step, "active_provider_capabilities"),
		       NULL);
	kiln_bind_str(s, 10, json_object_get(step, "fallback_provider_type"));
	kiln_bind_json(s, 11, json_object_get(step, "fallback_provider_config"),
		       NULL);
	kiln_bind_json(s, 12,
		       json_object_get(step, "fallback_provider_capabilities"),
		       NULL);
	kiln_bind_json(s, 13, json_object_get(step, "depends_on"), "[]");
	kiln_bind_json(s, 14, json_object_get(step, "input_mappings"), "[]");
	sqlite3_bind_text(s, 15, c ? "RUNNING" : "PENDING", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 16, json_integer_value(
					  json_object_get(step, "max_retries")));
	sqlite3_bind_int64(s, 17, now);
	if (c != NULL) {
		sqlite3_bind_text(s, 18, c->task_id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 19, now);
		sqlite3_bind_text(s, 20, c->who->owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 21, c->who->lease_until_ms);
		kiln_bind_str(s, 22, json_object_get(step, "provider"));
		sqlite3_bind_text(s, 23, c->attempts.buf,
				  (int)c->attempts.len, SQLITE_STATIC);
	}
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, rc, err);
}

static int is_first_step(const json_t *step)
{
	return json_array_size(json_object_get(step, "depends_on")) == 0;
}

/* The insert at now.  Of a RUNNING workflow, with who and task_ids, the
 * first steps (no dependencies) are inserted claimed, and task_ids gets
 * each step's attempt id (null for a step not claimed), for
 * claims_of_new: the advance at creation, without reading back what was
 * just written. */
static enum kiln_rc insert_at(struct kiln_store *st, const json_t *wf,
			      const struct kiln_claimer *who, json_t *task_ids,
			      int64_t now, struct kiln_err *err)
{
	const char *id = json_string_value(json_object_get(wf, "id"));
	const char *status = json_string_value(json_object_get(wf, "status"));
	json_t *steps = json_object_get(wf, "steps");
	json_t *suppress = json_object_get(wf, "suppress_subtask_events");
	json_t *version = json_object_get(wf, "template_version");
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_INSERT_WF, err);
	int running = strcmp(status, "RUNNING") == 0;
	int claim = running && who != NULL && task_ids != NULL;
	enum kiln_rc rc = KILN_OK;
	size_t i;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_str(s, 2, json_object_get(wf, "name"));
	kiln_bind_str(s, 3, json_object_get(wf, "description"));
	sqlite3_bind_text(s, 4, status, -1, SQLITE_TRANSIENT);
	kiln_bind_json(s, 5, json_object_get(wf, "config"), "{}");
	sqlite3_bind_int(s, 6, suppress == NULL || json_is_true(suppress));
	kiln_bind_str(s, 7, json_object_get(wf, "origin_instance"));
	kiln_bind_str(s, 8, json_object_get(wf, "origin_zone"));
	kiln_bind_str(s, 9, json_object_get(wf, "origin_tenant_id"));
	kiln_bind_str(s, 10, json_object_get(wf, "origin_reference"));
	kiln_bind_str(s, 11, json_object_get(wf, "webhook_url"));
	sqlite3_bind_int64(s, 12, (sqlite3_int64)json_array_size(steps));
	kiln_bind_str(s, 13, json_object_get(wf, "final_step_id"));
	if (running)
		sqlite3_bind_int64(s, 14, now);
	else
		sqlite3_bind_null(s, 14);
	sqlite3_bind_int64(s, 15, now);
	kiln_bind_str(s, 16, json_object_get(wf, "template_id"));
	if (json_is_integer(version))
		sqlite3_bind_int64(s, 17, json_integer_value(version));
	kiln_bind_json(s, 18, json_object_get(wf, "run_inputs"), NULL);
	kiln_bind_str(s, 19, json_object_get(wf, "batch_id"));
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	for (i = 0; rc == KILN_OK && i < json_array_size(steps); i++) {
		json_t *step = json_array_get(steps, i);
		struct step_claim c = {.who = who};

		if (!claim || !is_first_step(step)) {
			rc = insert_step(st, id, i, step, now, NULL, err);
			if (task_ids != NULL)
				json_array_append_new(task_ids, json_null());
			continue;
		}
		kiln_uuid_new(c.task_id);
		kiln_claim_first_attempts(
			&c.attempts,
			json_string_value(json_object_get(step, "provider")),
			now);
		rc = c.attempts.failed
			     ? kiln_err_set(err, KILN_ENOMEM, "",
					    "out of memory")
			     : insert_step(st, id, i, step, now, &c, err);
		kiln_jw_free(&c.attempts);
		json_array_append_new(task_ids, json_string(c.task_id));
	}
	return rc;
}

/* Appends to claims the whole claim of each step insert_at(wf, now)
 * inserted claimed, from what it wrote: nothing here needs the writer. */
static void claims_of_new(const json_t *wf, const json_t *task_ids,
			  int64_t now, json_t *claims)
{
	const char *id = json_string_value(json_object_get(wf, "id"));
	json_t *steps = json_object_get(wf, "steps");
	size_t i;

	for (i = 0; i < json_array_size(task_ids); i++) {
		const char *task_id =
			json_string_value(json_array_get(task_ids, i));

		if (task_id != NULL)
			json_array_append_new(
				claims,
				kiln_claim_of_new_step(
					id, json_array_get(steps, i),
					json_object_get(wf, "run_inputs"),
					task_id, now));
	}
}

enum kiln_rc kiln_store_insert_workflow_locked(struct kiln_store *st,
					       const json_t *wf,
					       const struct kiln_claimer *who,
					       json_t *claims,
					       struct kiln_err *err)
{
	json_t *task_ids = claims ? json_array() : NULL;
	int64_t now = kiln_now_ms();
	enum kiln_rc rc = insert_at(st, wf, who, task_ids, now, err);

	if (rc == KILN_OK && claims != NULL)
		claims_of_new(wf, task_ids, now, claims);
	json_decref(task_ids);
	return rc;
}

/* The claim in claims of the step with this uuid, NULL if none. */
static const json_t *claim_of(const json_t *claims, const char *uuid)
{
	size_t i;

	for (i = 0; uuid != NULL && i < json_array_size(claims); i++) {
		const json_t *c = json_array_get(claims, i);

		if (strcmp(json_string_value(json_object_get(c, "uuid")),
			   uuid) == 0)
			return c;
	}
	return NULL;
}

/* What render_step reads back of a step as validated, in STEP_ROW's
 * order. */
static const struct kiln_copy_spec NEW_STEP[] = {
	{"id", "uuid", KILN_COPY_TEXT},
	{"step_id", "id", KILN_COPY_TEXT},
	{"task_type", "task_type", KILN_COPY_TEXT},
	{"provider", "provider", KILN_COPY_TEXT},
	{"config", "config", KILN_COPY_OBJECT},
	{"provider_config", "provider_config", KILN_COPY_JSON},
	{"active_provider_capabilities", "active_provider_capabilities",
	 KILN_COPY_JSON},
	{"fallback_provider_type", "fallback_provider_type", KILN_COPY_TEXT},
	{"fallback_provider_config", "fallback_provider_config",
	 KILN_COPY_JSON},
	{"fallback_provider_capabilities", "fallback_provider_capabilities",
	 KILN_COPY_JSON},
	{"dependencies", "depends_on", KILN_COPY_ARRAY},
	{"input_mappings", "input_mappings", KILN_COPY_ARRAY},
};

static void null_at(struct kiln_jw *w, const char *key)
{
	kiln_jw_key(w, key);
	kiln_jw_null(w);
}

/* A step as render_step would read it back right after insert_at. */
static void write_new_step(struct kiln_jw *w, const json_t *step,
			   const json_t *claim, int64_t now,
			   const char *now_text)
{
	kiln_jw_open(w, '{');
	KILN_COPY_WRITE(w, step, NEW_STEP);
	kiln_jw_key(w, "status");
	kiln_jw_str(w, claim ? "RUNNING" : "PENDING");
	kiln_jw_key(w, "task_id");
	kiln_jw_json(w, claim ? json_object_get(claim, "task_id") : NULL);
	null_at(w, "result");
	null_at(w, "error_message");
	kiln_jw_key(w, "started_at");
	kiln_jw_str(w, claim ? now_text : NULL);
	null_at(w, "completed_at");
	kiln_jw_key(w, "retry_count");
	kiln_jw_int(w, 0);
	kiln_jw_key(w, "max_retries");
	kiln_jw_int(w,
		    json_integer_value(json_object_get(step, "max_retries")));
	kiln_jw_key(w, "created_at");
	kiln_jw_str(w, now_text);
	kiln_jw_key(w, "updated_at");
	kiln_jw_str(w, now_text);
	kiln_jw_key(w, "attempts");
	if (claim != NULL) {
		kiln_claim_first_attempts(
			w, json_string_value(json_object_get(step, "provider")),
			now);
	} else {
		kiln_jw_raw(w, "[]");
	}
	null_at(w, "provider_used");
	null_at(w, "provider_job_id");
	kiln_jw_close(w, '}');
}

/* The WorkflowPublic that kiln_store_get_workflow would render right
 * after insert_at(wf, now) made claims: built from what was written, as
 * render_workflow_row and render_steps read it, in their keys' order. */
static const struct kiln_copy_spec NEW_WF_HEAD[] = {
	{"id", "id", KILN_COPY_TEXT},
	{"name", "name", KILN_COPY_TEXT},
	{"description", "description", KILN_COPY_TEXT},
	{"status", "status", KILN_COPY_TEXT},
};
static const struct kiln_copy_spec NEW_WF_FINAL[] = {
	{"final_step_id", "final_step_id", KILN_COPY_TEXT},
};
static const struct kiln_copy_spec NEW_WF_CONFIG[] = {
	{"config", "config", KILN_COPY_OBJECT},
};
static const struct kiln_copy_spec NEW_WF_ORIGIN[] = {
	{"origin_instance", "origin_instance", KILN_COPY_TEXT},
	{"origin_zone", "origin_zone", KILN_COPY_TEXT},
	{"origin_tenant_id", "origin_tenant_id", KILN_COPY_TEXT},
	{"origin_reference", "origin_reference", KILN_COPY_TEXT},
	{"webhook_url", "webhook_url", KILN_COPY_TEXT},
};
static const struct kiln_copy_spec NEW_WF_TEMPLATE[] = {
	{"template_id", "template_id", KILN_COPY_TEXT},
};
static const struct kiln_copy_spec NEW_WF_TAIL[] = {
	{"inputs", "run_inputs", KILN_COPY_JSON},
	{"batch_id", "batch_id", KILN_COPY_TEXT},
};

/* Its JSON text (NULL when out of memory), *len bytes. */
static char *render_new_workflow(const json_t *wf, const json_t *claims,
				 int64_t now, size_t *len)
{
	int running = strcmp(json_string_value(json_object_get(wf, "status")),
			     "RUNNING") == 0;
	json_t *steps = json_object_get(wf, "steps");
	json_t *suppress = json_object_get(wf, "suppress_subtask_events");
	json_t *version = json_object_get(wf, "template_version");
	const json_t *current = NULL;
	struct kiln_jw w = {0};
	char now_text[KILN_RFC3339_LEN];
	size_t i;

	kiln_rfc3339(now, now_text);
	for (i = 0; current == NULL && i < json_array_size(steps); i++) {
		const json_t *step = json_array_get(steps, i);

		if (claim_of(claims, json_string_value(
					     json_object_get(step, "uuid"))))
			current = json_object_get(step, "id");
	}
	/* About 1 KiB a step: written without reallocations. */
	kiln_jw_reserve(&w, 1024 + 1024 * json_array_size(steps));
	/* WF_ROW's keys, then render_steps'. */
	kiln_jw_open(&w, '{');
	KILN_COPY_WRITE(&w, wf, NEW_WF_HEAD);
	kiln_jw_key(&w, "total_steps");
	kiln_jw_int(&w, (int64_t)json_array_size(steps));
	kiln_jw_key(&w, "completed_steps");
	kiln_jw_int(&w, 0);
	kiln_jw_key(&w, "progress");
	kiln_jw_raw(&w, "0.0"); /* as jansson writes the real 0 */
	kiln_jw_key(&w, "current_step");
	kiln_jw_json(&w, json_is_string(current) ? current : NULL);
	KILN_COPY_WRITE(&w, wf, NEW_WF_FINAL);
	null_at(&w, "final_step_result");
	null_at(&w, "canvas_task_id");
	KILN_COPY_WRITE(&w, wf, NEW_WF_CONFIG);
	kiln_jw_key(&w, "suppress_subtask_events");
	kiln_jw_bool(&w, suppress == NULL || json_is_true(suppress));
	KILN_COPY_WRITE(&w, wf, NEW_WF_ORIGIN);
	null_at(&w, "error_message");
	kiln_jw_key(&w, "errors");
	kiln_jw_raw(&w, "[]");
	kiln_jw_key(&w, "started_at");
	kiln_jw_str(&w, running ? now_text : NULL);
	null_at(&w, "completed_at");
	kiln_jw_key(&w, "created_at");
	kiln_jw_str(&w, now_text);
	kiln_jw_key(&w, "updated_at");
	kiln_jw_str(&w, now_text);
	kiln_jw_key(&w, "is_deleted");
	kiln_jw_bool(&w, 0);
	null_at(&w, "deleted_at");
	KILN_COPY_WRITE(&w, wf, NEW_WF_TEMPLATE);
	kiln_jw_key(&w, "template_version");
	if (json_is_integer(version))
		kiln_jw_int(&w, json_integer_value(version));
	else
		kiln_jw_null(&w);
	KILN_COPY_WRITE(&w, wf, NEW_WF_TAIL);
	kiln_jw_key(&w, "steps");
	kiln_jw_open(&w, '[');
	for (i = 0; i < json_array_size(steps); i++) {
		const json_t *step = json_array_get(steps, i);
		const char *uuid =
			json_string_value(json_object_get(step, "uuid"));

		write_new_step(&w, step, claim_of(claims, uuid), now,
			       now_text);
	}
	kiln_jw_close(&w, ']');
	kiln_jw_close(&w, '}');
	return kiln_jw_take(&w, len);
}

/* After the commit of insert_at(wf, now): the claims of the steps it
 * inserted claimed and the 201 body.  Nothing has run yet (the claims
 * are the caller's to start), so this is what a read would find. */
static void created_view(const json_t *wf, const json_t *task_ids,
			 int64_t now, struct kiln_created *out)
{
	out->claims = json_array();
	claims_of_new(wf, task_ids, now, out->claims);
	out->body = render_new_workflow(wf, out->claims, now, &out->body_len);
}

enum kiln_rc kiln_store_insert_workflow(struct kiln_store *st,
					const json_t *wf,
					const struct kiln_claimer *who,
					json_t **claims, char **rendered,
					struct kiln_err *err)
{
	json_t *task_ids = json_array();
	struct kiln_created view;
	int64_t now = kiln_now_ms();
	enum kiln_rc rc;

	if (claims != NULL)
		*claims = NULL;
	if (rendered != NULL)
		*rendered = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK) {
		json_decref(task_ids);
		return rc;
	}
	rc = insert_at(st, wf, claims ? who : NULL, task_ids, now, err);
	if (rc == KILN_OK)
		rc = kiln_store_commit(st, err);
	else
		kiln_store_rollback(st);
	if (rc != KILN_OK) {
		json_decref(task_ids);
		return rc;
	}
	created_view(wf, task_ids, now, &view);
	json_decref(task_ids);
	if (rendered != NULL)
		*rendered = view.body;
	else
		free(view.body);
	if (claims != NULL)
		*claims = view.claims;
	else
		json_decref(view.claims);
	return KILN_OK;
}

/* kiln_store_insert_workflow_then's write, waiting for its commit. */
struct inserted {
	kiln_created_fn fn;
	void *ctx;
	json_t *wf;
	int64_t now;
};

/* The insert is committed (or lost): its claims and 201 body, built as
 * kiln_store_insert_workflow builds them, go to the caller's fn. */
static void on_inserted(void *ctx, enum kiln_rc rc, json_t *task_ids)
{
	struct inserted *in = ctx;
	struct kiln_created out = {0};

	if (rc == KILN_OK)
		created_view(in->wf, task_ids, in->now, &out);
	json_decref(task_ids);
	in->fn(in->ctx, rc, &out);
	json_decref(in->wf);
	free(in);
}

enum kiln_rc kiln_store_insert_workflow_then(struct kiln_store *st,
					     const json_t *wf,
					     const struct kiln_claimer *who,
					     kiln_created_fn fn, void *ctx,
					     struct kiln_err *err)
{
	struct inserted *in = malloc(sizeof(*in));
	struct kiln_then mine = {on_inserted, in, 0};
	json_t *task_ids = json_array();
	enum kiln_rc rc;

	if (in == NULL || task_ids == NULL) {
		free(in);
		json_decref(task_ids);
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	}
	in->fn = fn;
	in->ctx = ctx;
	in->wf = json_incref((json_t *)wf);
	in->now = kiln_now_ms();
	rc = kiln_store_begin(st, err);
	if (rc == KILN_OK) {
		rc = insert_at(st, wf, who, task_ids, in->now, err);
		if (rc == KILN_OK)
			rc = kiln_store_commit_then(st, &mine, task_ids, err);
		else
			kiln_store_rollback(st);
	}
	if (rc != KILN_OK) {
		json_decref(task_ids);
		json_decref(in->wf);
		free(in);
	}
	return rc;
}

/* ---- list ------------------------------------------------------------ */

static const char *list_tenant(const struct kiln_wf_filter *f,
			       const struct kiln_scope *scope)
{
	return f->origin_tenant_id ? f->origin_tenant_id
				   : (scope ? scope->tenant : NULL);
}

/* Which of SQL_LIST / SQL_COUNT fits the filter. */
static int list_form(const struct kiln_wf_filter *f,
		     const struct kiln_scope *scope)
{
	return (f->status != NULL) | (list_tenant(f, scope) != NULL) << 1 |
	       (f->include_deleted != 0) << 2;
}

static void bind_list_filter(sqlite3_stmt *s, const struct kiln_wf_filter *f,
			     const struct kiln_scope *scope)
{
	kiln_bind_cstr(s, 1, f->status);
	kiln_bind_cstr(s, 2, f->origin_instance);
	kiln_bind_cstr(s, 3, f->origin_tenant_id);
	kiln_bind_cstr(s, 4, scope ? scope->tenant : NULL);
	if (list_tenant(f, scope) != NULL)
		kiln_bind_cstr(s, 8, list_tenant(f, scope));
}

enum kiln_rc kiln_store_list_workflows(struct kiln_store *st,
				       const struct kiln_wf_filter *f,
				       const struct kiln_scope *scope,
				       json_t **out, struct kiln_err *err)
{
	json_t *list = NULL, *items = json_array();
	sqlite3_stmt *s;
	int64_t total = 0;
	enum kiln_rc rc;
	int src;

	rc = kiln_store_begin_read(st, err);
	if (rc != KILN_OK)
		goto out;
	s = kiln_store_stmt(st, SQL_COUNT[list_form(f, scope)], err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto out;
	}
	bind_list_filter(s, f, scope);
	src = sqlite3_step(s);
	if (src != SQLITE_ROW) {
		sqlite3_reset(s);
		rc = kiln_store_fail(st, src, err);
		goto out;
	}
	total = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);

	s = kiln_store_stmt(st, SQL_LIST[list_form(f, scope)], err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto out;
	}
	bind_list_filter(s, f, scope);
	sqlite3_bind_int64(s, 6, f->limit);
	sqlite3_bind_int64(s, 7, f->skip);
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(items, render_workflow_row(s));
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(items); i++) {
		rc = render_steps(st, json_array_get(items, i), err);
		if (rc != KILN_OK)
			goto out;
	}
	list = json_object();
	json_object_set(list, "workflows", items);
	json_object_set_new(list, "total", json_integer(total));
	json_object_set_new(list, "skip", json_integer(f->skip));
	json_object_set_new(list, "limit", json_integer(f->limit));
	*out = list;
out:
	kiln_store_rollback(st);
	json_decref(items);
	return rc;
}

/* ---- patch ----------------------------------------------------------- */

enum kiln_rc kiln_store_patch_workflow(struct kiln_store *st, const char *id,
				       const struct kiln_scope *scope,
				       const json_t *patch,
				       struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE workflows SET"
		" name = CASE WHEN ?3 THEN ?4 ELSE name END,"
		" description = CASE WHEN ?5 THEN ?6 ELSE description END,"
		" webhook_url = CASE WHEN ?7 THEN ?8 ELSE webhook_url END,"
		" updated_at = ?9"
		" WHERE id = ?1 AND (?2 IS NULL OR origin_tenant_id = ?2)";
	json_t *name = json_object_get(patch, "name");
	json_t *desc = json_object_get(patch, "description");
	json_t *hook = json_object_get(patch, "webhook_url");
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	rc = kiln_store_begin_with(st, sql, &s, err);
	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	sqlite3_bind_int(s, 3, json_is_string(name));
	kiln_bind_str(s, 4, name);
	sqlite3_bind_int(s, 5, desc != NULL);
	kiln_bind_str(s, 6, desc);
	sqlite3_bind_int(s, 7, hook != NULL);
	kiln_bind_str(s, 8, hook);
	sqlite3_bind_int64(s, 9, kiln_now_ms());
	src = sqlite3_step(s);
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
		kiln_store_rollback(st);
		return rc;
	}
	if (sqlite3_changes(kiln_store_db(st)) == 0) {
		kiln_store_rollback(st);
		return kiln_err_set(err, KILN_ENOTFOUND, "",
				    "Workflow %s not found", id);
	}
	return kiln_store_commit(st, err);
}

/* ---- transitions ----------------------------------------------------- */

struct transition {
	unsigned allowed; /* bit mask of enum kiln_wf_status */
	const char *verb;
	const char *needs;
	const char *sql[3]; /* run in order with ?1 = id, ?2 = now */
};

#define BIT(s) (1u << (s))

static const struct transition transitions[] = {
	[KILN_WF_ACTION_START] = {
		BIT(KILN_WF_PENDING), "started", "PENDING",
		{"UPDATE workflows SET status = 'RUNNING',"
		 " started_at = COALESCE(started_at, ?2), updated_at = ?2"
		 " WHERE id = ?1"},
	},
	[KILN_WF_ACTION_PAUSE] = {
		BIT(KILN_WF_RUNNING), "paused", "RUNNING",
		{"UPDATE workflows SET status = 'PAUSED', updated_at = ?2"
		 " WHERE id = ?1"},
	},
	[KILN_WF_ACTION_RESUME] = {
		BIT(KILN_WF_FAILED) | BIT(KILN_WF_PAUSED), "resumed",
		"FAILED or PAUSED",
		/* Failed steps run again, from their primary provider; of a
		 * FAILED workflow, steps left running run again too (clearing
		 * task_id drops a late answer of the old attempt).  Of a
		 * PAUSED workflow, running steps carry on: their provider
		 * calls are live and already paid for.  Completed steps keep
		 * their results.  Steps first: the test reads the workflow's
		 * status before it changes. */
		{"UPDATE steps SET status = 'PENDING', result = NULL,"
		 " error_message = NULL, started_at = NULL, task_id = NULL,"
		 " completed_at = NULL, lease_owner = NULL,"
		 " lease_expires_at = NULL, updated_at = ?2, job = NULL,"
		 " next_attempt_at = NULL, first_started_at = NULL,"
		 " current_provider = NULL, on_fallback = 0,"
		 " provider_retries = 0,"
		 " attempts = CASE WHEN json_extract(attempts,"
		 "   '$[#-1].outcome') = 'running' THEN json_set(attempts,"
		 "   '$[#-1].outcome', 'cancelled', '$[#-1].finished_at',"
		 "   strftime('%Y-%m-%dT%H:%M:%fZ', ?2 / 1000.0, 'unixepoch'))"
		 "   ELSE attempts END"
		 " WHERE workflow_id = ?1 AND (status = 'FAILED'"
		 "   OR (status IN ('RUNNING', 'READY') AND (SELECT w.status"
		 "   FROM workflows w WHERE w.id = ?1) = 'FAILED'))",
		 "UPDATE workflows SET status = 'RUNNING', error_message = NULL,"
		 " errors = '[]', completed_at = NULL,"
		 " started_at = COALESCE(started_at, ?2), updated_at = ?2"
		 " WHERE id = ?1"},
	},
	[KILN_WF_ACTION_CANCEL] = {
		BIT(KILN_WF_PENDING) | BIT(KILN_WF_RUNNING) |
			BIT(KILN_WF_PAUSED),
		"cancelled", "PENDING, RUNNING or PAUSED",
		{"UPDATE workflows SET status = 'CANCELLED', completed_at = ?2,"
		 " updated_at = ?2 WHERE id = ?1",
		 "UPDATE steps SET status = 'CANCELLED', completed_at = ?2,"
		 " lease_owner = NULL, lease_expires_at = NULL, job = NULL,"
		 " next_attempt_at = NULL, updated_at = ?2,"
		 " attempts = CASE WHEN json_extract(attempts,"
		 "   '$[#-1].outcome') = 'running' THEN json_set(attempts,"
		 "   '$[#-1].outcome', 'cancelled', '$[#-1].finished_at',"
		 "   strftime('%Y-%m-%dT%H:%M:%fZ', ?2 / 1000.0, 'unixepoch'))"
		 "   ELSE attempts END WHERE workflow_id = ?1"
		 " AND status IN ('PENDING', 'READY', 'RUNNING')"},
	},
};

/* The workflow's RUNNING steps: [{"uuid", "provider", "job"}]. */
static enum kiln_rc running_steps(struct kiln_store *st, const char *id,
				  json_t **out, struct kiln_err *err)
{
	static const char sql[] =
		"SELECT id, current_provider, job FROM steps"
		" WHERE workflow_id = ?1 AND status = 'RUNNING'";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	json_t *list;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	list = json_array();
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list,
				      json_pack("{s:o, s:o, s:o}", "uuid",
						kiln_col_text(s, 0), "provider",
						kiln_col_text(s, 1), "job",
						kiln_col_json(s, 2)));
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		json_decref(list);
		return kiln_store_fail(st, src, err);
	}
	*out = list;
	return KILN_OK;
}

/* Reads status and is_deleted inside the caller's transaction. */
static enum kiln_rc read_status(struct kiln_store *st, const char *id,
				const struct kiln_scope *scope,
				enum kiln_wf_status *status, int *is_deleted,
				struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_STATUS, err);
	enum kiln_rc rc = KILN_OK;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		if (kiln_wf_status_parse((const char *)sqlite3_column_text(s, 0),
					 status) != 0)
			rc = kiln_err_set(err, KILN_EIO, "",
					  "corrupt status for %s", id);
		*is_deleted = sqlite3_column_int(s, 1);
	} else if (src == SQLITE_DONE) {
		rc = kiln_err_set(err, KILN_ENOTFOUND, "",
				  "Workflow %s not found", id);
	} else {
		rc = kiln_store_fail(st, src, err);
	}
	sqlite3_reset(s);
	return rc;
}

/* A batch execution's workflow runs again through the batch's retry,
 * which keeps the batch's counts and its end right. */
static enum kiln_rc refuse_batch_resume(struct kiln_store *st, const char *id,
					struct kiln_err *err)
{
	static const char sql[] =
		"SELECT batch_id FROM workflows WHERE id = ?1"
		" AND batch_id IS NOT NULL";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	enum kiln_rc rc = KILN_OK;
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "Workflow %s runs an execution of batch %s;"
				  " run it again with POST"
				  " /api/v1/batches/%s/retry",
				  id, (const char *)sqlite3_column_text(s, 0),
				  (const char *)sqlite3_column_text(s, 0));
	else if (src != SQLITE_DONE)
		rc = kiln_store_fail(st, src, err);
	sqlite3_reset(s);
	return rc;
}

enum kiln_rc kiln_store_workflow_action(struct kiln_store *st,
					const char *id,
					const struct kiln_scope *scope,
					enum kiln_wf_action action,
					json_t **stopped,
					struct kiln_err *err)
{
	const struct transition *t = &transitions[action];
	enum kiln_wf_status status;
	int is_deleted = 0;
	enum kiln_rc rc;
	int64_t now = kiln_now_ms();
	size_t i;

	if (stopped != NULL)
		*stopped = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK)
		return rc;
	rc = read_status(st, id, scope, &status, &is_deleted, err);
	if (rc != KILN_OK)
		goto fail;
	if (is_deleted) {
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "Workflow %s is deleted and cannot be %s",
				  id, t->verb);
		goto fail;
	}
	if (action == KILN_WF_ACTION_RESUME && rc == KILN_OK)
		rc = refuse_batch_resume(st, id, err);
	if (rc != KILN_OK)
		goto fail;
	if (!(t->allowed & BIT(status))) {
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "Workflow %s is %s; only %s workflows can"
				  " be %s",
				  id, kiln_wf_status_name(status), t->needs,
				  t->verb);
		goto fail;
	}
	if (stopped != NULL &&
	    (action == KILN_WF_ACTION_CANCEL ||
	     (action == KILN_WF_ACTION_RESUME && status == KILN_WF_FAILED))) {
		rc = running_steps(st, id, stopped, err);
		if (rc != KILN_OK)
			goto fail;
	}
	for (i = 0; i < 3 && t->sql[i] != NULL; i++) {
		sqlite3_stmt *s = kiln_store_stmt(st, t->sql[i], err);
		int src;

		if (s == NULL) {
			rc = err ? err->code : KILN_EIO;
			goto fail;
		}
		sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 2, now);
		src = sqlite3_step(s);
		sqlite3_reset(s);
		if (src != SQLITE_DONE) {
			rc = kiln_store_fail(st, src, err);
			goto fail;
		}
	}
	if (action == KILN_WF_ACTION_CANCEL) {
		struct kiln_event_error why = {"cancelled", 0,
					       "the workflow was cancelled",
					       NULL};

		rc = kiln_store_queue_event(st, id, "workflow.cancelled", NULL,
					    &why, err);
		if (rc == KILN_OK)
			rc = kiln_store_workflow_ended(st, id, &why, err);
		if (rc != KILN_OK)
			goto fail;
	}
	rc = kiln_store_commit(st, err);
	if (rc == KILN_OK)
		return KILN_OK;
fail:
	kiln_store_rollback(st);
	if (stopped != NULL) {
		json_decref(*stopped);
		*stopped = NULL;
	}
	return rc;
}

/* ---- soft delete ----------------------------------------------------- */

enum kiln_rc kiln_store_soft_delete_workflow(struct kiln_store *st,
					     const char *id,
					     const struct kiln_scope *scope,
					     json_t **steps_out,
					     struct kiln_err *err)
{
	static const char sql_wf[] =
		"UPDATE workflows SET is_deleted = 1,"
		" deleted_at = COALESCE(deleted_at, ?2), updated_at = ?2"
		" WHERE id = ?1";
	static const char sql_steps[] =
		"UPDATE steps SET is_deleted = 1, updated_at = ?2"
		" WHERE workflow_id = ?1";
	static const char sql_list[] =
		"SELECT id, step_id, task_type FROM steps WHERE workflow_id = ?1"
		" ORDER BY position";
	const char *sqls[] = {sql_wf, sql_steps};
	enum kiln_wf_status status;
	int is_deleted = 0;
	json_t *steps = NULL;
	int64_t now = kiln_now_ms();
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK)
		return rc;
	rc = read_status(st, id, scope, &status, &is_deleted, err);
	if (rc != KILN_OK)
		goto fail;
	if (status == KILN_WF_RUNNING || status == KILN_WF_PAUSED) {
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "Workflow %s is %s; cancel it before"
				  " cleaning it up",
				  id, kiln_wf_status_name(status));
		goto fail;
	}
	for (size_t i = 0; i < 2; i++) {
		s = kiln_store_stmt(st, sqls[i], err);
		if (s == NULL) {
			rc = err ? err->code : KILN_EIO;
			goto fail;
		}
		sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 2, now);
		src = sqlite3_step(s);
		sqlite3_reset(s);
		if (src != SQLITE_DONE) {
			rc = kiln_store_fail(st, src, err);
			goto fail;
		}
	}
	s = kiln_store_stmt(st, sql_list, err);
	if (s == NULL) {
		rc = err ? err->code : KILN_EIO;
		goto fail;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	steps = json_array();
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *o = json_object();

		json_object_set_new(o, "id", kiln_col_text(s, 0));
		json_object_set_new(o, "step_id", kiln_col_text(s, 1));
		json_object_set_new(o, "task_type", kiln_col_text(s, 2));
		json_array_append_new(steps, o);
	}
	sqlite3_reset(s);
	if (src != SQLITE_DONE) {
		rc = kiln_store_fail(st, src, err);
		goto fail;
	}
	rc = kiln_store_commit(st, err);
	if (rc != KILN_OK)
		goto fail;
	*steps_out = steps;
	return KILN_OK;
fail:
	kiln_store_rollback(st);
	json_decref(steps);
	return rc;
}
