#ifndef SQLBOX_SETTINGS_H
#define SQLBOX_SETTINGS_H

#include "sqlbox-db.h"

#define SQLBOX_DB_FILE_NAME "sqlbox.db"
#define SQLBOX_DEFAULT_EXPUNGED_KEEP 10000
#define SQLBOX_DEFAULT_LOCK_TIMEOUT_SECS 30
/* SQLite: how much of a database file a connection maps. A process keeps
   up to 2 connections cached besides the open ones (sqlbox-db-sqlite.c),
   each mapping this much of a large database, all of it counted against
   vsz_limit (256 MB by default). */
#define SQLBOX_DEFAULT_SQLITE_MMAP_SIZE (32ULL * 1024 * 1024)
/* added to a PostgreSQL conninfo that has no connect_timeout */
#define SQLBOX_DEFAULT_PG_CONNECT_TIMEOUT_SECS 10

struct sqlbox_settings {
	enum sqlbox_db_driver driver;
	/* SQLite: the database file; PostgreSQL: the libpq conninfo */
	const char *connect;
	/* expunge records kept per mailbox (pruning starts at twice this) */
	unsigned int expunged_keep;
	unsigned int lock_timeout_secs;
	/* SQLite: PRAGMA mmap_size (0 = read with pread()) */
	uoff_t sqlite_mmap_size;
};

/* Returns a plugin setting's value or NULL. */
typedef const char *sqlbox_setting_lookup_t(const char *name, void *context);

/* Parses sqlbox_driver, sqlbox_connect, sqlbox_expunged_keep,
   sqlbox_lock_timeout and sqlbox_sqlite_mmap_size. root_dir is the mail location's root, home the user's
   home (for ~/ in an SQLite path). Returns -1 with an error naming the
   setting. */
int sqlbox_settings_parse(sqlbox_setting_lookup_t *lookup, void *context,
			  const char *home, const char *root_dir, pool_t pool,
			  struct sqlbox_settings *set_r, const char **error_r);

#endif
