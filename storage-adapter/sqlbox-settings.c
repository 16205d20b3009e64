/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "str.h"
#include "str-sanitize.h"
#include "settings-parser.h"
#include "sqlbox-settings.h"


static int
sqlbox_settings_parse_driver(const char *value,
			     enum sqlbox_db_driver *driver_r,
			     const char **error_r)
{
	if (value == NULL || *value == '\0' || strcmp(value, "sqlite") == 0) {
		*driver_r = SQLBOX_DB_DRIVER_SQLITE;
		return 0;
	}
	if (strcmp(value, "pgsql") == 0) {
		*driver_r = SQLBOX_DB_DRIVER_PGSQL;
		return 0;
	}
	*error_r = t_strdup_printf("sqlbox_driver: Unknown driver '%s' "
				   "(expected sqlite or pgsql)",
				   str_sanitize(value, 128));
	return -1;
}

static int
sqlbox_settings_parse_pgsql(const char *value, pool_t pool,
			    const char **connect_r, const char **error_r)
{
	const char *error;
	bool have_timeout;

	if (value == NULL || *value == '\0') {
		*error_r = "sqlbox_connect: Missing: sqlbox_driver=pgsql "
			"needs a libpq connection string "
			"(e.g. host=db1,db2 dbname=mail user=dovecot "
			"target_session_attrs=read-write)";
		return -1;
	}
	if (sqlbox_db_pgsql_check_conninfo(value, &have_timeout,
					   &error) < 0) {
		*error_r = t_strdup_printf(
			"sqlbox_connect: Invalid libpq connection string: %s",
			error);
		return -1;
	}
	if (have_timeout || strstr(value, "://") != NULL) {
		/* a URI can't simply be appended to */
		*connect_r = p_strdup(pool, value);
	} else {
		/* never wait minutes for an unreachable host */
		*connect_r = p_strdup_printf(pool, "%s connect_timeout=%u",
			value, SQLBOX_DEFAULT_PG_CONNECT_TIMEOUT_SECS);
	}
	return 0;
}

static int
sqlbox_settings_parse_sqlite(const char *value, const char *home,
			     const char *root_dir, pool_t pool,
			     const char **connect_r, const char **error_r)
{
	if (value == NULL || *value == '\0') {
		if (root_dir == NULL || *root_dir == '\0') {
			*error_r = "mail_location: sqlbox needs a directory "
				"(e.g. sqlbox:~/sqlbox)";
			return -1;
		}
		*connect_r = p_strconcat(pool, root_dir, "/",
					 SQLBOX_DB_FILE_NAME, NULL);
		return 0;
	}
	if (str_begins(value, "~/")) {
		if (home == NULL || *home == '\0') {
			*error_r = t_strdup_printf("sqlbox_connect: %s: "
				"the user has no home directory", value);
			return -1;
		}
		*connect_r = p_strconcat(pool, home, value + 1, NULL);
		return 0;
	}
	if (*value != '/') {
		*error_r = t_strdup_printf("sqlbox_connect: '%s' is not an "
			"absolute path (with sqlbox_driver=sqlite it is the "
			"database file)", str_sanitize(value, 128));
		return -1;
	}
	*connect_r = p_strdup(pool, value);
	return 0;
}

int sqlbox_settings_parse(sqlbox_setting_lookup_t *lookup, void *context,
			  const char *home, const char *root_dir, pool_t pool,
			  struct sqlbox_settings *set_r, const char **error_r)
{
	const char *value;
	unsigned int secs;

	i_zero(set_r);
	if (sqlbox_settings_parse_driver(lookup("sqlbox_driver", context),
					 &set_r->driver, error_r) < 0)
		return -1;

	value = lookup("sqlbox_connect", context);
	switch (set_r->driver) {
	case SQLBOX_DB_DRIVER_SQLITE:
		if (sqlbox_settings_parse_sqlite(value, home, root_dir, pool,
						 &set_r->connect, error_r) < 0)
			return -1;
		break;
	case SQLBOX_DB_DRIVER_PGSQL:
		if (sqlbox_settings_parse_pgsql(value, pool, &set_r->connect,
						error_r) < 0)
			return -1;
		break;
	}

	value = lookup("sqlbox_expunged_keep", context);
	set_r->expunged_keep = SQLBOX_DEFAULT_EXPUNGED_KEEP;
	if (value != NULL && *value != '\0' &&
	    (str_to_uint(value, &set_r->expunged_keep) < 0 ||
	     set_r->expunged_keep == 0)) {
		*error_r = t_strdup_printf("sqlbox_expunged_keep: "
			"'%s' is not a positive number", str_sanitize(value, 128));
		return -1;
	}

	value = lookup("sqlbox_lock_timeout", context);
	set_r->lock_timeout_secs = SQLBOX_DEFAULT_LOCK_TIMEOUT_SECS;
	if (value != NULL && *value != '\0') {
		const char *error;

		if (settings_get_time(value, &secs, &error) < 0) {
			*error_r = t_strdup_printf("sqlbox_lock_timeout: %s",
						   error);
			return -1;
		}
		set_r->lock_timeout_secs = secs;
	}

	value = lookup("sqlbox_sqlite_mmap_size", context);
	set_r->sqlite_mmap_size = SQLBOX_DEFAULT_SQLITE_MMAP_SIZE;
	if (value != NULL && *value != '\0') {
		const char *error;

		if (settings_get_size(value, &set_r->sqlite_mmap_size,
				      &error) < 0) {
			*error_r = t_strdup_printf("sqlbox_sqlite_mmap_size: %s",
						   error);
			return -1;
		}
	}
	return 0;
}
