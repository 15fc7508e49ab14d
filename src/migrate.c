/*
 * migrate.c - applies the compiled-in migrations in order, each in its own
 * transaction together with its row in schema_migrations, so a crash
 * mid-way leaves either the whole migration or none of it.
 *
 * Foreign keys are off while a migration runs, as SQLite's procedure for
 * rebuilding a table asks: with them on, dropping a table that others
 * refer to would delete the rows that refer to it (ON DELETE CASCADE).
 * PRAGMA foreign_key_check then refuses a migration that broke a
 * reference, before its COMMIT.
 */
#include <stdio.h>

#include "kiln/log.h"
#include "kiln/migrate.h"

static int is_applied(sqlite3 *db, const char *name)
{
	sqlite3_stmt *s = NULL;
	int found = 0;

	if (sqlite3_prepare_v2(db,
			       "SELECT 1 FROM schema_migrations WHERE name = ?",
			       -1, &s, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	found = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return found;
}

/* 1 if the schema breaks no reference (the first broken one in *errmsg,
 * which the caller frees). */
static int references_hold(sqlite3 *db, char **errmsg)
{
	sqlite3_stmt *s = NULL;
	int src;

	if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &s, NULL) !=
	    SQLITE_OK)
		return 0;
	src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*errmsg = sqlite3_mprintf("a row of %s refers to a missing row"
					  " of %s",
					  sqlite3_column_text(s, 0),
					  sqlite3_column_text(s, 2));
	sqlite3_finalize(s);
	return src == SQLITE_DONE;
}

static enum kiln_rc apply_one(sqlite3 *db, const struct kiln_migration *m,
			      struct kiln_err *err)
{
	char *errmsg = NULL;
	sqlite3_stmt *s = NULL;
	enum kiln_rc rc = KILN_OK;
	int fk_on = 0;

	/* A no-op inside a transaction, so before BEGIN. */
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &fk_on) !=
		    SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA foreign_keys=OFF", NULL, NULL, &errmsg) !=
		    SQLITE_OK)
		goto fail;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &errmsg) !=
	    SQLITE_OK)
		goto fail;
	if (sqlite3_exec(db, m->sql, NULL, NULL, &errmsg) != SQLITE_OK)
		goto fail;
	if (!references_hold(db, &errmsg))
		goto fail;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO schema_migrations (name, applied_at)"
			       " VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ'))",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, m->name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, &errmsg) != SQLITE_OK)
		goto fail;
	kiln_log(KILN_LOG_INFO, "applied migration %s", m->name);
	goto out;
fail:
	rc = kiln_err_set(err, KILN_EIO, "", "migration %s failed: %s",
			  m->name, errmsg ? errmsg : sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(s);
	sqlite3_free(errmsg);
	if (fk_on)
		sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	return rc;
}

enum kiln_rc kiln_migrate(sqlite3 *db, struct kiln_err *err)
{
	const struct kiln_migration *m;
	char *errmsg = NULL;
	enum kiln_rc rc;

	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS schema_migrations ("
			 " name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
			 NULL, NULL, &errmsg) != SQLITE_OK) {
		rc = kiln_err_set(err, KILN_EIO, "",
				  "cannot create schema_migrations: %s",
				  errmsg ? errmsg : sqlite3_errmsg(db));
		sqlite3_free(errmsg);
		return rc;
	}
	for (m = kiln_migrations; m->name != NULL; m++) {
		if (is_applied(db, m->name))
			continue;
		rc = apply_one(db, m, err);
		if (rc != KILN_OK)
			return rc;
	}
	return KILN_OK;
}
