/*
 * migrate.h - schema migrations: numbered SQL files from migrations/,
 * compiled into the binary (see cmake/embed_migrations.cmake), applied in
 * order at start-up, each in its own transaction, and recorded in the
 * schema_migrations table.
 */
#ifndef KILN_MIGRATE_H
#define KILN_MIGRATE_H

#include <sqlite3.h>

#include "kiln/common.h"

struct kiln_migration {
	const char *name; /* "001_init.sql" */
	const char *sql;
};

/* Terminated by {NULL, NULL}; generated at build time. */
extern const struct kiln_migration kiln_migrations[];

/* Applies every migration not yet recorded.  Returns KILN_OK or KILN_EIO
 * with sqlite's message in err. */
enum kiln_rc kiln_migrate(sqlite3 *db, struct kiln_err *err)
	KILN_WARN_UNUSED;

#endif
