/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "str.h"
#include "sqlbox-db.h"

#include <stdarg.h>

struct sqlbox_db *
sqlbox_db_init(const struct sqlbox_db_settings *set, struct event *parent)
{
	const struct sqlbox_db_vfuncs *v = NULL;
	struct sqlbox_db *db;

	switch (set->driver) {
	case SQLBOX_DB_DRIVER_SQLITE:
		v = &sqlbox_db_sqlite_vfuncs;
		break;
	case SQLBOX_DB_DRIVER_PGSQL:
		v = &sqlbox_db_pgsql_vfuncs;
		break;
	}
	i_assert(v != NULL);
	db = v->alloc();
	db->v = v;
	db->pool = pool_alloconly_create("sqlbox db", 1024);
	db->set = *set;
	db->set.connect = p_strdup(db->pool, set->connect);
	db->event = event_create(parent);
	event_set_append_log_prefix(db->event,
		t_strdup_printf("%s: ", db->v->name));
	return db;
}

void sqlbox_db_deinit(struct sqlbox_db **_db)
{
	struct sqlbox_db *db = *_db;

	*_db = NULL;
	if (db == NULL)
		return;
	i_assert(db->transaction_depth == 0);
	db->v->disconnect(db);
	event_unref(&db->event);
	i_free(db->error_str);
	pool_unref(&db->pool);
	i_free(db);
}

void sqlbox_db_set_error(struct sqlbox_db *db, enum sqlbox_db_error error,
			 const char *fmt, ...)
{
	va_list args;

	i_assert(error != SQLBOX_DB_ERROR_NONE);

	va_start(args, fmt);
	i_free(db->error_str);
	db->error_str = i_strdup_vprintf(fmt, args);
	va_end(args);
	db->error = error;
	e_debug(db->event, "%s", db->error_str);
}

void sqlbox_db_clear_error(struct sqlbox_db *db)
{
	db->error = SQLBOX_DB_ERROR_NONE;
	i_free_and_null(db->error_str);
}

enum sqlbox_db_error sqlbox_db_get_error(struct sqlbox_db *db,
					 const char **error_r)
{
	if (error_r != NULL) {
		*error_r = db->error_str != NULL ? db->error_str :
			"Unknown database error";
	}
	return db->error == SQLBOX_DB_ERROR_NONE ?
		SQLBOX_DB_ERROR_INTERNAL : db->error;
}

int sqlbox_db_connect(struct sqlbox_db *db)
{
	if (db->schema_refused) {
		/* keep the original error */
		return -1;
	}
	if (!db->v->is_connected(db)) {
		i_assert(db->transaction_depth == 0);
		if (db->v->connect(db) < 0)
			return -1;
	}
	if (!db->schema_checked) {
		int ret;

		db->connecting = TRUE;
		ret = sqlbox_schema_update(db, 0);
		db->connecting = FALSE;
		if (ret < 0)
			return -1;
		db->schema_checked = TRUE;
	}
	return 0;
}

/* An error reported is always the current statement's, never an older
   one's (except a refused schema, which stays). */
static void sqlbox_db_statement_start(struct sqlbox_db *db)
{
	if (!db->schema_refused)
		sqlbox_db_clear_error(db);
}

static int sqlbox_db_connect_if_idle(struct sqlbox_db *db)
{
	if (db->transaction_depth > 0 || db->connecting)
		return 0;
	return sqlbox_db_connect(db);
}

void sqlbox_db_disconnect(struct sqlbox_db *db)
{
	i_assert(db->transaction_depth == 0);
	db->v->disconnect(db);
}

int sqlbox_db_exec(struct sqlbox_db *db, const char *sql,
		   const struct sqlbox_db_param *params, unsigned int count)
{
	sqlbox_db_statement_start(db);
	if (sqlbox_db_connect_if_idle(db) < 0)
		return -1;
	return db->v->exec(db, sql, params, count, NULL);
}

int sqlbox_db_query(struct sqlbox_db *db, const char *sql,
		    const struct sqlbox_db_param *params, unsigned int count,
		    struct sqlbox_db_result **result_r)
{
	*result_r = NULL;
	sqlbox_db_statement_start(db);
	if (sqlbox_db_connect_if_idle(db) < 0)
		return -1;
	return db->v->exec(db, sql, params, count, result_r) < 0 ? -1 : 0;
}

int sqlbox_db_query_row(struct sqlbox_db *db, const char *sql,
			const struct sqlbox_db_param *params,
			unsigned int count,
			struct sqlbox_db_result **result_r)
{
	int ret;

	if (sqlbox_db_query(db, sql, params, count, result_r) < 0)
		return -1;
	ret = sqlbox_db_result_next(*result_r);
	if (ret <= 0)
		sqlbox_db_result_free(result_r);
	return ret;
}

int sqlbox_db_result_next(struct sqlbox_db_result *result)
{
	return result == NULL ? 0 : result->db->v->result_next(result);
}

bool sqlbox_db_result_is_null(struct sqlbox_db_result *result,
			      unsigned int col)
{
	return result->db->v->result_is_null(result, col);
}

int64_t sqlbox_db_result_int(struct sqlbox_db_result *result,
			     unsigned int col)
{
	return result->db->v->result_int(result, col);
}

const char *sqlbox_db_result_text(struct sqlbox_db_result *result,
				  unsigned int col)
{
	return result->db->v->result_text(result, col);
}

const unsigned char *
sqlbox_db_result_blob(struct sqlbox_db_result *result, unsigned int col,
		      size_t *size_r)
{
	return result->db->v->result_blob(result, col, size_r);
}

void sqlbox_db_result_free(struct sqlbox_db_result **_result)
{
	struct sqlbox_db_result *result = *_result;

	*_result = NULL;
	if (result != NULL)
		result->db->v->result_free(result);
}

int sqlbox_db_begin(struct sqlbox_db *db, bool write)
{
	if (db->transaction_depth > 0) {
		/* nested: allowed only inside a write transaction, or read
		   inside read */
		i_assert(db->write_transaction || !write);
		db->transaction_depth++;
		return 0;
	}
	if (sqlbox_db_connect(db) < 0)
		return -1;
	if (db->v->begin(db, write) < 0)
		return -1;
	db->transaction_depth = 1;
	db->write_transaction = write;
	return 0;
}

int sqlbox_db_commit(struct sqlbox_db *db)
{
	i_assert(db->transaction_depth > 0);
	if (--db->transaction_depth > 0)
		return 0;
	db->write_transaction = FALSE;
	return db->v->commit(db);
}

void sqlbox_db_rollback(struct sqlbox_db *db)
{
	i_assert(db->transaction_depth > 0);
	/* a nested rollback rolls back everything: the outer levels will
	   fail at their commit */
	if (--db->transaction_depth > 0) {
		db->v->rollback(db);
		db->transaction_depth = 0;
		db->write_transaction = FALSE;
		return;
	}
	db->write_transaction = FALSE;
	db->v->rollback(db);
}

int sqlbox_db_body_write(struct sqlbox_db *db, struct istream *input,
			 uoff_t size, const unsigned char *sha256,
			 int64_t *body_id_r)
{
	i_assert(db->write_transaction);
	return db->v->body_write(db, input, size, sha256, body_id_r);
}

int sqlbox_db_body_copy(struct sqlbox_db *db, int64_t src_id,
			int64_t *body_id_r)
{
	i_assert(db->write_transaction);
	return db->v->body_copy(db, src_id, body_id_r);
}

bool sqlbox_db_can_prefetch(struct sqlbox_db *db)
{
	return db->v->body_prefetch != NULL;
}

void sqlbox_db_body_prefetch(struct sqlbox_db *db, int64_t mailbox_id,
			     const int64_t *body_ids, unsigned int count)
{
	if (db->v->body_prefetch != NULL && db->transaction_depth == 0 &&
	    sqlbox_db_connect_if_idle(db) == 0)
		db->v->body_prefetch(db, mailbox_id, body_ids, count);
}

int sqlbox_db_body_open(struct sqlbox_db *db, int64_t body_id,
			const struct sqlbox_body_owner *owner,
			struct sqlbox_body **body_r)
{
	sqlbox_db_statement_start(db);
	if (sqlbox_db_connect_if_idle(db) < 0)
		return -1;
	return db->v->body_open(db, body_id, owner, body_r);
}

ssize_t sqlbox_db_body_read(struct sqlbox_body *body, uoff_t offset,
			    void *buf, size_t size)
{
	if (body->data != NULL) {
		if (offset >= body->data_size)
			return 0;
		size = I_MIN(size, body->data_size - offset);
		memcpy(buf, body->data + offset, size);
		return size;
	}
	return body->db->v->body_read(body, offset, buf, size);
}

void sqlbox_db_body_close(struct sqlbox_body **_body)
{
	struct sqlbox_body *body = *_body;

	*_body = NULL;
	if (body != NULL)
		body->db->v->body_close(body);
}
