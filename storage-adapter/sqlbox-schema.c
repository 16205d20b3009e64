/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "str.h"
#include "sqlbox-db.h"

/* The schema is versioned: the table sqlbox_schema holds one row with the
   version. Each backend lists its migrations: script 0 creates version 1,
   script n upgrades version n to n+1. A new database runs them all, so the
   upgrade path is the same code that every new user goes through. A
   database with a version newer than this build knows is refused: an older
   sqlbox must not write to a layout it doesn't understand. */

static int sqlbox_schema_read_version(struct sqlbox_db *db, int *version_r)
{
	struct sqlbox_db_result *result;
	int ret;

	ret = sqlbox_db_query_row(db, db->v->schema_exists_sql, NULL, 0,
				  &result);
	if (ret < 0)
		return -1;
	if (ret == 0 || sqlbox_db_result_int(result, 0) == 0) {
		sqlbox_db_result_free(&result);
		*version_r = 0;
		return 0;
	}
	sqlbox_db_result_free(&result);

	ret = sqlbox_db_query_row(db, "SELECT version FROM sqlbox_schema",
				  NULL, 0, &result);
	if (ret < 0)
		return -1;
	if (ret == 0) {
		sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
			"Table sqlbox_schema exists, but is empty: "
			"the schema version is unknown");
		return -1;
	}
	*version_r = (int)sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	return 0;
}

static int sqlbox_schema_refuse_newer(struct sqlbox_db *db, int version)
{
	if (version <= SQLBOX_SCHEMA_VERSION)
		return 0;
	sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
		"Database schema version %d is newer than this sqlbox "
		"understands (version %d): refusing to use it; "
		"upgrade dovecot-pop3ext", version, SQLBOX_SCHEMA_VERSION);
	db->schema_refused = TRUE;
	return -1;
}

static unsigned int sqlbox_schema_migration_count(struct sqlbox_db *db)
{
	unsigned int count = 0;

	while (db->v->migrations[count] != NULL)
		count++;
	return count;
}

int sqlbox_schema_update(struct sqlbox_db *db, int max_version)
{
	int version, i;

	if (max_version == 0)
		max_version = SQLBOX_SCHEMA_VERSION;
	i_assert(max_version <= SQLBOX_SCHEMA_VERSION);
	i_assert(sqlbox_schema_migration_count(db) ==
		 SQLBOX_SCHEMA_VERSION);

	/* quick check without locking */
	if (sqlbox_schema_read_version(db, &version) < 0)
		return -1;
	if (sqlbox_schema_refuse_newer(db, version) < 0)
		return -1;
	if (version >= max_version) {
		db->schema_version = version;
		return 0;
	}

	/* create or upgrade: one process at a time, all or nothing */
	i_assert(db->transaction_depth == 0);
	if (db->v->begin(db, TRUE) < 0)
		return -1;
	db->transaction_depth = 1;
	db->write_transaction = TRUE;
	if (db->v->lock_schema(db) < 0 ||
	    sqlbox_schema_read_version(db, &version) < 0 ||
	    sqlbox_schema_refuse_newer(db, version) < 0) {
		sqlbox_db_rollback(db);
		return -1;
	}
	for (i = version; i < max_version; i++) {
		const struct sqlbox_db_param param = SQLBOX_INT(i + 1);

		if (db->v->exec_script(db, db->v->migrations[i]) < 0 ||
		    sqlbox_db_exec(db, "UPDATE sqlbox_schema SET version = $1",
				   &param, 1) < 0) {
			const char *error;
			enum sqlbox_db_error err =
				sqlbox_db_get_error(db, &error);

			sqlbox_db_set_error(db, err,
				"Schema %s from version %d to %d failed: %s",
				i == 0 ? "creation" : "upgrade", i, i + 1,
				error);
			sqlbox_db_rollback(db);
			return -1;
		}
	}
	if (sqlbox_db_commit(db) < 0)
		return -1;
	if (version > 0) {
		e_info(db->event, "Database schema upgraded from version %d "
		       "to %d", version, max_version);
	}
	db->schema_version = max_version;
	return 0;
}
