/*
 * store_templates.c - published workflows: insert, publish a new version,
 * archive, read (any version), list.
 *
 * A version is never changed once written: a run records the version it
 * started from and can always read it back.
 */
#include <string.h>

#include "kiln/store.h"
#include "store_row.h"

#define TEMPLATE_COLS                                                       \
	"t.id, t.tenant_id, t.status, t.version, t.created_at,"             \
	" t.updated_at, t.archived_at, v.version, v.definition,"            \
	" v.created_at"

static const char SQL_GET[] =
	"SELECT " TEMPLATE_COLS " FROM templates t JOIN template_versions v"
	" ON v.template_id = t.id AND v.version = COALESCE(?2, t.version)"
	" WHERE t.id = ?1 AND (?3 IS NULL OR t.tenant_id = ?3)";

/* ?1 status, ?2 name (substring, any case), ?3 tenant scope. */
#define TEMPLATE_FILTER                                                     \
	" WHERE (?1 IS NULL OR t.status = ?1)"                              \
	" AND (?2 IS NULL OR instr(lower(t.name), lower(?2)) > 0)"          \
	" AND (?3 IS NULL OR t.tenant_id = ?3)"

static const char SQL_COUNT[] =
	"SELECT count(*) FROM templates t" TEMPLATE_FILTER;
static const char SQL_LIST[] =
	"SELECT " TEMPLATE_COLS " FROM templates t JOIN template_versions v"
	" ON v.template_id = t.id AND v.version = t.version" TEMPLATE_FILTER
	" ORDER BY t.created_at DESC, t.rowid DESC LIMIT ?4 OFFSET ?5";

static const struct kiln_col_spec TEMPLATE_ROW[] = {
	{"id", 0, KILN_COL_TEXT},
	{"name", -1, KILN_PLACE_NULL},
	{"description", -1, KILN_PLACE_NULL},
	{"status", 2, KILN_COL_TEXT},
	{"version", 7, KILN_COL_INT},
	{"latest_version", 3, KILN_COL_INT},
	{"origin_tenant_id", 1, KILN_COL_TEXT},
	{"created_at", 4, KILN_COL_TIME},
	{"updated_at", 5, KILN_COL_TIME},
	{"published_at", 9, KILN_COL_TIME},
	{"archived_at", 6, KILN_COL_TIME},
};

/* The row as TemplatePublic: its columns, then its version's definition
 * (name, description, inputs, steps, config, webhook_url,
 * suppress_subtask_events). */
static json_t *render(sqlite3_stmt *s)
{
	json_t *o = json_object(), *def = kiln_col_json(s, 8);

	kiln_row_set(o, s, TEMPLATE_ROW,
		     sizeof(TEMPLATE_ROW) / sizeof(TEMPLATE_ROW[0]));
	json_object_update(o, def);
	json_decref(def);
	return o;
}

static enum kiln_rc get_locked(struct kiln_store *st, const char *id,
			       int64_t version, const struct kiln_scope *scope,
			       json_t **out, struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, SQL_GET, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	if (version > 0)
		sqlite3_bind_int64(s, 2, version);
	else
		sqlite3_bind_null(s, 2);
	kiln_bind_cstr(s, 3, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*out = render(s);
	sqlite3_reset(s);
	if (src == SQLITE_ROW)
		return KILN_OK;
	if (src != SQLITE_DONE)
		return kiln_store_fail(st, src, err);
	return version > 0
		       ? kiln_err_set(err, KILN_ENOTFOUND, "",
				      "Template %s has no version %lld", id,
				      (long long)version)
		       : kiln_err_set(err, KILN_ENOTFOUND, "",
				      "Template %s not found", id);
}

enum kiln_rc kiln_store_get_template(struct kiln_store *st, const char *id,
				     int64_t version,
				     const struct kiln_scope *scope,
				     json_t **out, struct kiln_err *err)
{
	enum kiln_rc rc = kiln_store_begin_read(st, err);

	if (rc != KILN_OK)
		return rc;
	rc = get_locked(st, id, version, scope, out, err);
	kiln_store_rollback(st);
	return rc;
}

static enum kiln_rc insert_version(struct kiln_store *st, const char *id,
				   int64_t version, const json_t *def,
				   int64_t now, struct kiln_err *err)
{
	static const char sql[] =
		"INSERT INTO template_versions (template_id, version,"
		" definition, created_at) VALUES (?1, ?2, ?3, ?4)";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, version);
	kiln_bind_json(s, 3, def, "{}");
	sqlite3_bind_int64(s, 4, now);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

/* Commits, then renders the current version; rolls back on failure. */
static enum kiln_rc finish(struct kiln_store *st, enum kiln_rc rc,
			   const char *id, json_t **rendered,
			   struct kiln_err *err)
{
	if (rc == KILN_OK && rendered != NULL)
		rc = get_locked(st, id, 0, NULL, rendered, err);
	if (rc == KILN_OK)
		rc = kiln_store_commit(st, err);
	if (rc == KILN_OK)
		return KILN_OK;
	kiln_store_rollback(st);
	if (rendered != NULL) {
		json_decref(*rendered);
		*rendered = NULL;
	}
	return rc;
}

enum kiln_rc kiln_store_insert_template(struct kiln_store *st,
					const char *id, const char *tenant,
					const json_t *def, json_t **rendered,
					struct kiln_err *err)
{
	static const char sql[] =
		"INSERT INTO templates (id, tenant_id, name, description,"
		" status, version, created_at, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, 'ACTIVE', 1, ?5, ?5)";
	int64_t now = kiln_now_ms();
	sqlite3_stmt *s;
	enum kiln_rc rc;
	int src;

	if (rendered != NULL)
		*rendered = NULL;
	rc = kiln_store_begin_with(st, sql, &s, err);
	if (rc != KILN_OK)
		return rc;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, tenant);
	kiln_bind_str(s, 3, json_object_get(def, "name"));
	kiln_bind_str(s, 4, json_object_get(def, "description"));
	sqlite3_bind_int64(s, 5, now);
	src = sqlite3_step(s);
	sqlite3_reset(s);
	rc = src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
	if (rc == KILN_OK)
		rc = insert_version(st, id, 1, def, now, err);
	return finish(st, rc, id, rendered, err);
}

/* Reads the status and latest version, inside the transaction. */
static enum kiln_rc read_head(struct kiln_store *st, const char *id,
			      const struct kiln_scope *scope,
			      int *archived, int64_t *version,
			      struct kiln_err *err)
{
	static const char sql[] =
		"SELECT status = 'ARCHIVED', version FROM templates"
		" WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)";
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	kiln_bind_cstr(s, 2, scope ? scope->tenant : NULL);
	src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		*archived = sqlite3_column_int(s, 0);
		*version = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (src == SQLITE_DONE)
		return kiln_err_set(err, KILN_ENOTFOUND, "",
				    "Template %s not found", id);
	return src == SQLITE_ROW ? KILN_OK : kiln_store_fail(st, src, err);
}

/* Runs sql on the templates row: ?1 id, ?5 now, and with def ?2 version,
 * ?3 name, ?4 description. */
static enum kiln_rc update_head(struct kiln_store *st, const char *sql,
				const char *id, int64_t now, int64_t version,
				const json_t *def, struct kiln_err *err)
{
	sqlite3_stmt *s = kiln_store_stmt(st, sql, err);
	int src;

	if (s == NULL)
		return err ? err->code : KILN_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 5, now);
	if (def != NULL) {
		sqlite3_bind_int64(s, 2, version);
		kiln_bind_str(s, 3, json_object_get(def, "name"));
		kiln_bind_str(s, 4, json_object_get(def, "description"));
	}
	src = sqlite3_step(s);
	sqlite3_reset(s);
	return src == SQLITE_DONE ? KILN_OK : kiln_store_fail(st, src, err);
}

enum kiln_rc kiln_store_publish_template(struct kiln_store *st,
					 const char *id,
					 const struct kiln_scope *scope,
					 const json_t *def, json_t **rendered,
					 struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE templates SET version = ?2, name = ?3,"
		" description = ?4, updated_at = ?5 WHERE id = ?1";
	int64_t now = kiln_now_ms(), version = 0;
	int archived = 0;
	enum kiln_rc rc;

	if (rendered != NULL)
		*rendered = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK)
		return rc;
	rc = read_head(st, id, scope, &archived, &version, err);
	if (rc == KILN_OK && archived)
		rc = kiln_err_set(err, KILN_ECONFLICT, "",
				  "Template %s is archived; it cannot be"
				  " published again",
				  id);
	if (rc == KILN_OK)
		rc = insert_version(st, id, version + 1, def, now, err);
	if (rc == KILN_OK)
		rc = update_head(st, sql, id, now, version + 1, def, err);
	return finish(st, rc, id, rendered, err);
}

enum kiln_rc kiln_store_archive_template(struct kiln_store *st,
					 const char *id,
					 const struct kiln_scope *scope,
					 json_t **rendered,
					 struct kiln_err *err)
{
	static const char sql[] =
		"UPDATE templates SET status = 'ARCHIVED', archived_at = ?5,"
		" updated_at = ?5 WHERE id = ?1 AND status = 'ACTIVE'";
	int64_t now = kiln_now_ms(), version = 0;
	int archived = 0;
	enum kiln_rc rc;

	if (rendered != NULL)
		*rendered = NULL;
	rc = kiln_store_begin(st, err);
	if (rc != KILN_OK)
		return rc;
	/* Archiving twice is not an error: the answer is the same. */
	rc = read_head(st, id, scope, &archived, &version, err);
	if (rc == KILN_OK && !archived)
		rc = update_head(st, sql, id, now, 0, NULL, err);
	return finish(st, rc, id, rendered, err);
}

struct tpl_list {
	const struct kiln_tpl_filter *f;
	const struct kiln_scope *scope;
};

static void bind_filter(sqlite3_stmt *s, const void *ctx)
{
	const struct tpl_list *l = ctx;

	kiln_bind_cstr(s, 1, l->f->status);
	kiln_bind_cstr(s, 2, l->f->name);
	kiln_bind_cstr(s, 3, l->scope ? l->scope->tenant : NULL);
}

enum kiln_rc kiln_store_list_templates(struct kiln_store *st,
				       const struct kiln_tpl_filter *f,
				       const struct kiln_scope *scope,
				       json_t **out, struct kiln_err *err)
{
	struct tpl_list l = {f, scope};
	struct kiln_page_query q = {SQL_COUNT, SQL_LIST, bind_filter, &l, 4,
				    f->limit, f->offset, render, "templates"};

	return kiln_store_page(st, &q, out, err);
}
