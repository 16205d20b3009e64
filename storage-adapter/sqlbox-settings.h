#ifndef SQLBOX_SETTINGS_H
#define SQLBOX_SETTINGS_H

#include "sqlbox-db.h"

#define SQLBOX_DB_FILE_NAME "sqlbox.db"
#define SQLBOX_DEFAULT_EXPUNGED_KEEP 10000
#define SQLBOX_DEFAULT_LOCK_TIMEOUT_SECS 30
/* added to a PostgreSQL conninfo that has no connect_timeout */
#define SQLBOX_DEFAULT_PG_CONNECT_TIMEOUT_SECS 10

struct sqlbox_settings {
	enum sqlbox_db_driver driver;
	/* SQLite: the database file; PostgreSQL: the libpq conninfo */
	const char *connect;
	/* expunge records kept per mailbox (pruning starts at twice this) */
	unsigned int expunged_keep;
	unsigned int lock_timeout_secs;
};

/* Returns a plugin setting's value or NULL. */
typedef const char *sqlbox_setting_lookup_t(const char *name, void *context);

/* Parses sqlbox_driver, sqlbox_connect, sqlbox_expunged_keep and
   sqlbox_lock_timeout. root_dir is the mail location's root, home the user's
   home (for ~/ in an SQLite path). Returns -1 with an error naming the
   setting. */
int sqlbox_settings_parse(sqlbox_setting_lookup_t *lookup, void *context,
			  const char *home, const char *root_dir, pool_t pool,
			  struct sqlbox_settings *set_r, const char **error_r);

#endif
