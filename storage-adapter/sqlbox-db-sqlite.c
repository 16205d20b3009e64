/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "hash.h"
#include "istream.h"
#include "sqlbox-db.h"

#include <sqlite3.h>
#include <sys/stat.h>

/* SQLite backend: one database file per user, in WAL mode so that readers
   (pop3, imap) and a writer (lmtp) don't block each other. Write
   transactions are BEGIN IMMEDIATE: they take the write lock at once and
   wait for it up to the lock timeout, instead of failing later when a read
   transaction would have to be upgraded.

   Bodies are BLOBs in the bodies table; large ones are written and read
   with incremental blob I/O, never held whole in memory. A large body is
   read through its own read-only connection, so that the long read
   snapshot of a slow POP3 RETR never blocks this connection's writes. */

struct sqlite_stmt {
	sqlite3_stmt *stmt;
	bool in_use;
};

HASH_TABLE_DEFINE_TYPE(sqlite_stmts, const char *, struct sqlite_stmt *);

struct sqlite_db {
	struct sqlbox_db db;
	sqlite3 *conn;
	/* the buffer of the last small body read, kept for the next one:
	   a fresh allocation for every message costs page faults and
	   zeroing */
	unsigned char *spare;
	size_t spare_size;
	/* SQL text (by address) -> prepared statement */
	HASH_TABLE_TYPE(sqlite_stmts) stmts;
};

struct sqlite_result {
	struct sqlbox_db_result result;
	struct sqlite_stmt *cached;
	sqlite3_stmt *stmt;
	bool first_step_done;
	int first_step_ret;
};

struct sqlite_body {
	struct sqlbox_body body;
	sqlite3 *conn;
	sqlite3_blob *blob;
	unsigned char *data;
	size_t data_size;
};

#define SQLITE_DB(d) (container_of(d, struct sqlite_db, db))

static const char *const sqlite_migrations[] = {
	/* version 1 */
	"CREATE TABLE sqlbox_schema (version INTEGER NOT NULL);\n"
	"INSERT INTO sqlbox_schema (version) VALUES (0);\n"
	"CREATE TABLE users (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  username TEXT NOT NULL UNIQUE,\n"
	"  last_uidvalidity INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE TABLE mailboxes (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  user_id INTEGER NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  guid TEXT NOT NULL,\n"
	"  uidvalidity INTEGER NOT NULL,\n"
	"  next_uid INTEGER NOT NULL DEFAULT 1,\n"
	"  modseq INTEGER NOT NULL DEFAULT 1,\n"
	"  UNIQUE (user_id, name)\n"
	");\n"
	"CREATE TABLE bodies (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  size INTEGER NOT NULL,\n"
	"  sha256 BLOB NOT NULL,\n"
	"  data BLOB NOT NULL\n"
	");\n"
	"CREATE TABLE messages (\n"
	"  mailbox_id INTEGER NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  modseq INTEGER NOT NULL,\n"
	"  body_id INTEGER NOT NULL,\n"
	"  guid TEXT NOT NULL,\n"
	"  flags INTEGER NOT NULL,\n"
	"  received_date INTEGER NOT NULL,\n"
	"  save_date INTEGER NOT NULL,\n"
	"  physical_size INTEGER NOT NULL,\n"
	"  virtual_size INTEGER NOT NULL,\n"
	"  pop3_uidl TEXT,\n"
	"  pop3_order INTEGER NOT NULL DEFAULT 0,\n"
	"  PRIMARY KEY (mailbox_id, uid)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);\n"
	"CREATE TABLE keywords (\n"
	"  mailbox_id INTEGER NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  PRIMARY KEY (mailbox_id, uid, name)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE expunged (\n"
	"  mailbox_id INTEGER NOT NULL,\n"
	"  uid INTEGER NOT NULL,\n"
	"  modseq INTEGER NOT NULL,\n"
	"  PRIMARY KEY (mailbox_id, uid)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);\n",
	/* version 2: expunge records (tombstones) are pruned; an index that
	   last synced before the pruned ones is rebuilt */
	"ALTER TABLE mailboxes ADD COLUMN expunge_floor INTEGER NOT NULL "
	"DEFAULT 0;\n",
	/* version 3: body ids are never used twice (a rowid alone is
	   reused after the highest row is deleted, so that a session behind
	   the database could get another message's body): they come from
	   this counter */
	"CREATE TABLE body_ids (last INTEGER NOT NULL);\n"
	"INSERT INTO body_ids (last) SELECT coalesce(max(id), 0) "
	"FROM bodies;\n",
	NULL
};

static void sqlite_set_error(struct sqlite_db *db, int rc, const char *what)
{
	enum sqlbox_db_error error;
	const char *msg = db->conn == NULL ? sqlite3_errstr(rc) :
		sqlite3_errmsg(db->conn);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		error = SQLBOX_DB_ERROR_LOCKED;
		break;
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
		error = SQLBOX_DB_ERROR_TEMP;
		break;
	case SQLITE_CONSTRAINT:
		error = SQLBOX_DB_ERROR_CONSTRAINT;
		break;
	default:
		error = SQLBOX_DB_ERROR_INTERNAL;
		break;
	}
	sqlbox_db_set_error(&db->db, error, "%s (%s): %s", what,
			    db->db.set.connect, msg);
}

static void sqlite_free_stmts(struct sqlite_db *db)
{
	struct hash_iterate_context *iter;
	const char *key;
	struct sqlite_stmt *stmt;

	if (!hash_table_is_created(db->stmts))
		return;
	iter = hash_table_iterate_init(db->stmts);
	while (hash_table_iterate(iter, db->stmts, &key, &stmt)) {
		i_assert(!stmt->in_use);
		(void)sqlite3_finalize(stmt->stmt);
		i_free(stmt);
	}
	hash_table_iterate_deinit(&iter);
	hash_table_destroy(&db->stmts);
}

/* Connections kept open after their storage is gone, for the next storage
   of the same database in this process: an lmtp process delivering one
   message after another to a user would otherwise open the database,
   prepare its statements and, closing it as the last connection,
   checkpoint the whole WAL into the database and delete the WAL, for
   every message. Each one maps up to mmap_size of its database, so the
   cache is kept small: it serves deliveries to one user after another,
   not every user a process ever delivered to. */
#define SQLITE_CONN_CACHE_SIZE 2

struct sqlite_cached_conn {
	char *path;
	dev_t dev;
	ino_t ino;
	bool fsync;
	uoff_t mmap_size;
	sqlite3 *conn;
	HASH_TABLE_TYPE(sqlite_stmts) stmts;
	unsigned int last_used;
};

static struct sqlite_cached_conn sqlite_conn_cache[SQLITE_CONN_CACHE_SIZE];
static unsigned int sqlite_conn_cache_counter;

static void sqlite_close(struct sqlite_db *db)
{
	sqlite_free_stmts(db);
	if (db->conn != NULL) {
		(void)sqlite3_close_v2(db->conn);
		db->conn = NULL;
	}
}

static void sqlite_cache_slot_close(struct sqlite_cached_conn *slot)
{
	struct sqlite_db tmp;

	i_zero(&tmp);
	tmp.conn = slot->conn;
	tmp.stmts = slot->stmts;
	sqlite_close(&tmp);
	i_free(slot->path);
	i_zero(slot);
}

void sqlbox_db_sqlite_cache_clear(void)
{
	unsigned int i;

	for (i = 0; i < SQLITE_CONN_CACHE_SIZE; i++) {
		if (sqlite_conn_cache[i].conn != NULL)
			sqlite_cache_slot_close(&sqlite_conn_cache[i]);
	}
}

static bool sqlite_cache_put(struct sqlite_db *db)
{
	struct sqlite_cached_conn *slot = NULL;
	struct hash_iterate_context *iter;
	struct sqlite_stmt *stmt;
	const char *key;
	struct stat st;
	unsigned int i;
	bool busy = FALSE;

	if (db->conn == NULL || !sqlite3_get_autocommit(db->conn) ||
	    stat(db->db.set.connect, &st) < 0)
		return FALSE;
	iter = hash_table_iterate_init(db->stmts);
	while (hash_table_iterate(iter, db->stmts, &key, &stmt))
		busy = busy || stmt->in_use;
	hash_table_iterate_deinit(&iter);
	if (busy)
		return FALSE;

	for (i = 0; i < SQLITE_CONN_CACHE_SIZE; i++) {
		if (sqlite_conn_cache[i].conn == NULL) {
			slot = &sqlite_conn_cache[i];
			break;
		}
		if (slot == NULL ||
		    sqlite_conn_cache[i].last_used < slot->last_used)
			slot = &sqlite_conn_cache[i];
	}
	if (slot->conn != NULL)
		sqlite_cache_slot_close(slot);
	slot->path = i_strdup(db->db.set.connect);
	slot->dev = st.st_dev;
	slot->ino = st.st_ino;
	slot->fsync = db->db.set.fsync;
	slot->mmap_size = db->db.set.mmap_size;
	slot->conn = db->conn;
	slot->stmts = db->stmts;
	slot->last_used = ++sqlite_conn_cache_counter;
	db->conn = NULL;
	i_zero(&db->stmts);
	return TRUE;
}

static bool sqlite_cache_take(struct sqlite_db *db)
{
	struct sqlite_cached_conn *slot;
	struct stat st;
	unsigned int i;

	for (i = 0; i < SQLITE_CONN_CACHE_SIZE; i++) {
		slot = &sqlite_conn_cache[i];
		if (slot->conn == NULL ||
		    strcmp(slot->path, db->db.set.connect) != 0)
			continue;
		if (stat(db->db.set.connect, &st) < 0 ||
		    st.st_dev != slot->dev || st.st_ino != slot->ino ||
		    slot->fsync != db->db.set.fsync ||
		    slot->mmap_size != db->db.set.mmap_size) {
			/* replaced or changed meanwhile */
			sqlite_cache_slot_close(slot);
			return FALSE;
		}
		db->conn = slot->conn;
		db->stmts = slot->stmts;
		(void)sqlite3_busy_timeout(db->conn,
					   db->db.set.lock_timeout_msecs);
		i_free(slot->path);
		i_zero(slot);
		return TRUE;
	}
	return FALSE;
}

static void sqlite_disconnect(struct sqlbox_db *_db)
{
	struct sqlite_db *db = SQLITE_DB(_db);

	if (!sqlite_cache_put(db))
		sqlite_close(db);
	i_free_and_null(db->spare);
	db->spare_size = 0;
}

static bool sqlite_is_connected(struct sqlbox_db *_db)
{
	return SQLITE_DB(_db)->conn != NULL;
}

static int sqlite_exec_simple(struct sqlite_db *db, const char *sql)
{
	int rc;

	rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite_set_error(db, rc, t_strcut(sql, '\n'));
		return -1;
	}
	return 0;
}

static int
sqlite_open_conn(struct sqlite_db *db, bool readonly, sqlite3 **conn_r)
{
	int rc, flags;

	flags = (readonly ? SQLITE_OPEN_READONLY :
		 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
		SQLITE_OPEN_NOMUTEX;
	rc = sqlite3_open_v2(db->db.set.connect, conn_r, flags, NULL);
	if (rc != SQLITE_OK) {
		sqlbox_db_set_error(&db->db,
			rc == SQLITE_CANTOPEN ? SQLBOX_DB_ERROR_INTERNAL :
			SQLBOX_DB_ERROR_TEMP,
			"Opening database %s failed: %s", db->db.set.connect,
			*conn_r == NULL ? sqlite3_errstr(rc) :
			sqlite3_errmsg(*conn_r));
		(void)sqlite3_close_v2(*conn_r);
		*conn_r = NULL;
		return -1;
	}
	(void)sqlite3_extended_result_codes(*conn_r, 1);
	(void)sqlite3_busy_timeout(*conn_r, db->db.set.lock_timeout_msecs);
	return 0;
}

static int sqlite_connect(struct sqlbox_db *_db)
{
	struct sqlite_db *db = SQLITE_DB(_db);

	i_assert(db->conn == NULL);
	if (sqlite_cache_take(db))
		return 0;
	if (sqlite_open_conn(db, FALSE, &db->conn) < 0)
		return -1;
	hash_table_create_direct(&db->stmts, default_pool, 64);

	/* WAL: readers and the writer don't block each other.
	   synchronous=FULL fsyncs the WAL at each commit (mail_fsync=
	   optimized/always); NORMAL survives a crashed process but not
	   a power loss (mail_fsync=never). */
	if (sqlite_exec_simple(db, "PRAGMA journal_mode=WAL") < 0 ||
	    /* read pages through a mapping, not a pread() each */
	    sqlite_exec_simple(db, t_strdup_printf("PRAGMA mmap_size=%"PRIuUOFF_T,
						   db->db.set.mmap_size)) < 0 ||
	    sqlite_exec_simple(db, db->db.set.fsync ?
			       "PRAGMA synchronous=FULL" :
			       "PRAGMA synchronous=NORMAL") < 0 ||
	    sqlite_exec_simple(db, "PRAGMA foreign_keys=OFF") < 0) {
		sqlite_close(db);
		return -1;
	}
	return 0;
}

static int
sqlite_bind(struct sqlite_db *db, sqlite3_stmt *stmt,
	    const struct sqlbox_db_param *params, unsigned int count)
{
	unsigned int i;
	int idx, rc = SQLITE_OK;

	for (i = 0; i < count && rc == SQLITE_OK; i++) {
		char name[16];

		i_snprintf(name, sizeof(name), "$%u", i + 1);
		idx = sqlite3_bind_parameter_index(stmt, name);
		if (idx == 0)
			i_panic("sqlbox: SQL doesn't use parameter %s: %s",
				name, sqlite3_sql(stmt));
		switch (params[i].type) {
		case SQLBOX_DB_PARAM_NULL:
			rc = sqlite3_bind_null(stmt, idx);
			break;
		case SQLBOX_DB_PARAM_INT:
			rc = sqlite3_bind_int64(stmt, idx, params[i].i);
			break;
		case SQLBOX_DB_PARAM_TEXT:
			rc = sqlite3_bind_text(stmt, idx, params[i].data,
					       params[i].size, SQLITE_STATIC);
			break;
		case SQLBOX_DB_PARAM_BLOB:
			rc = sqlite3_bind_blob64(stmt, idx, params[i].data,
						 params[i].size,
						 SQLITE_STATIC);
			break;
		}
	}
	if (rc != SQLITE_OK) {
		sqlite_set_error(db, rc, "Binding parameters");
		return -1;
	}
	return 0;
}

static int
sqlite_get_stmt(struct sqlite_db *db, const char *sql,
		struct sqlite_stmt **cached_r, sqlite3_stmt **stmt_r)
{
	struct sqlite_stmt *cached;
	sqlite3_stmt *stmt;
	int rc;

	cached = hash_table_lookup(db->stmts, sql);
	if (cached != NULL && !cached->in_use) {
		cached->in_use = TRUE;
		*cached_r = cached;
		*stmt_r = cached->stmt;
		return 0;
	}
	rc = sqlite3_prepare_v3(db->conn, sql, -1,
				cached == NULL ? SQLITE_PREPARE_PERSISTENT : 0,
				&stmt, NULL);
	if (rc != SQLITE_OK) {
		sqlite_set_error(db, rc, t_strdup_printf("Preparing %s",
							 t_strcut(sql, '\n')));
		return -1;
	}
	if (cached == NULL) {
		/* cache it */
		cached = i_new(struct sqlite_stmt, 1);
		cached->stmt = stmt;
		cached->in_use = TRUE;
		hash_table_insert(db->stmts, sql, cached);
		*cached_r = cached;
	} else {
		/* the cached one is in use (nested query): use a
		   temporary statement */
		*cached_r = NULL;
	}
	*stmt_r = stmt;
	return 0;
}

static void sqlite_put_stmt(struct sqlite_stmt *cached, sqlite3_stmt *stmt)
{
	if (cached != NULL) {
		(void)sqlite3_reset(stmt);
		(void)sqlite3_clear_bindings(stmt);
		cached->in_use = FALSE;
	} else {
		(void)sqlite3_finalize(stmt);
	}
}

static int
sqlite_exec(struct sqlbox_db *_db, const char *sql,
	    const struct sqlbox_db_param *params, unsigned int count,
	    struct sqlbox_db_result **result_r)
{
	struct sqlite_db *db = SQLITE_DB(_db);
	struct sqlite_stmt *cached;
	sqlite3_stmt *stmt;
	int rc;

	if (db->conn == NULL) {
		sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_TEMP,
				    "Not connected to %s", _db->set.connect);
		return -1;
	}
	if (sqlite_get_stmt(db, sql, &cached, &stmt) < 0)
		return -1;
	if (sqlite_bind(db, stmt, params, count) < 0) {
		sqlite_put_stmt(cached, stmt);
		return -1;
	}

	if (result_r != NULL) {
		struct sqlite_result *result;

		result = i_new(struct sqlite_result, 1);
		result->result.db = _db;
		result->cached = cached;
		result->stmt = stmt;
		/* run it now, so that errors are reported here */
		result->first_step_ret = sqlite3_step(stmt);
		if (result->first_step_ret != SQLITE_ROW &&
		    result->first_step_ret != SQLITE_DONE) {
			sqlite_set_error(db, result->first_step_ret,
					 t_strcut(sql, '\n'));
			sqlite_put_stmt(cached, stmt);
			i_free(result);
			return -1;
		}
		*result_r = &result->result;
		return 0;
	}

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) ;
	if (rc != SQLITE_DONE) {
		sqlite_set_error(db, rc, t_strcut(sql, '\n'));
		sqlite_put_stmt(cached, stmt);
		return -1;
	}
	sqlite_put_stmt(cached, stmt);
	return sqlite3_changes(db->conn);
}

static int sqlite_exec_script(struct sqlbox_db *_db, const char *script)
{
	return sqlite_exec_simple(SQLITE_DB(_db), script);
}

static int sqlite_result_next(struct sqlbox_db_result *_result)
{
	struct sqlite_result *result =
		container_of(_result, struct sqlite_result, result);
	int rc;

	if (!result->first_step_done) {
		result->first_step_done = TRUE;
		rc = result->first_step_ret;
	} else {
		rc = sqlite3_step(result->stmt);
	}
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	sqlite_set_error(SQLITE_DB(_result->db), rc, "Reading a result");
	return -1;
}

static bool sqlite_result_is_null(struct sqlbox_db_result *_result,
				  unsigned int col)
{
	struct sqlite_result *result =
		container_of(_result, struct sqlite_result, result);

	return sqlite3_column_type(result->stmt, col) == SQLITE_NULL;
}

static int64_t sqlite_result_int(struct sqlbox_db_result *_result,
				 unsigned int col)
{
	struct sqlite_result *result =
		container_of(_result, struct sqlite_result, result);

	return sqlite3_column_int64(result->stmt, col);
}

static const char *sqlite_result_text(struct sqlbox_db_result *_result,
				      unsigned int col)
{
	struct sqlite_result *result =
		container_of(_result, struct sqlite_result, result);

	return (const char *)sqlite3_column_text(result->stmt, col);
}

static const unsigned char *
sqlite_result_blob(struct sqlbox_db_result *_result, unsigned int col,
		   size_t *size_r)
{
	struct sqlite_result *result =
		container_of(_result, struct sqlite_result, result);
	const unsigned char *data;

	data = sqlite3_column_blob(result->stmt, col);
	*size_r = sqlite3_column_bytes(result->stmt, col);
	return data;
}

static void sqlite_result_free(struct sqlbox_db_result *_result)
{
	struct sqlite_result *result =
		container_of(_result, struct sqlite_result, result);

	sqlite_put_stmt(result->cached, result->stmt);
	i_free(result);
}

static int sqlite_begin(struct sqlbox_db *_db, bool write)
{
	struct sqlite_db *db = SQLITE_DB(_db);

	return sqlite_exec_simple(db, write ? "BEGIN IMMEDIATE" : "BEGIN");
}

static int sqlite_commit(struct sqlbox_db *_db)
{
	struct sqlite_db *db = SQLITE_DB(_db);

	if (sqlite_exec_simple(db, "COMMIT") < 0) {
		/* COMMIT failed with SQLITE_BUSY: the transaction is still
		   open. Don't leave it so. */
		if (!sqlite3_get_autocommit(db->conn))
			(void)sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL,
					   NULL);
		return -1;
	}
	return 0;
}

static void sqlite_rollback(struct sqlbox_db *_db)
{
	struct sqlite_db *db = SQLITE_DB(_db);

	if (db->conn != NULL && !sqlite3_get_autocommit(db->conn))
		(void)sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

static int sqlite_lock_schema(struct sqlbox_db *_db ATTR_UNUSED)
{
	/* BEGIN IMMEDIATE already holds the write lock */
	return 0;
}

/* A body id never given before. */
static int sqlite_body_new_id(struct sqlbox_db *db, int64_t *body_id_r)
{
	struct sqlbox_db_result *result;
	int ret;

	ret = sqlbox_db_query_row(db, "UPDATE body_ids SET last = last + 1 "
				  "RETURNING last", NULL, 0, &result);
	if (ret < 0)
		return -1;
	if (ret == 0) {
		sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
				    "The body_ids table is empty");
		return -1;
	}
	*body_id_r = sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	return 0;
}

static int
sqlite_blob_write_stream(struct sqlite_db *db, int64_t body_id,
			 struct istream *input, uoff_t size)
{
	sqlite3_blob *blob;
	const unsigned char *data;
	size_t data_size;
	uoff_t offset = 0;
	int rc;

	rc = sqlite3_blob_open(db->conn, "main", "bodies", "data", body_id,
			       1, &blob);
	if (rc != SQLITE_OK) {
		sqlite_set_error(db, rc, "Opening a body for writing");
		return -1;
	}
	while (offset < size &&
	       i_stream_read_more(input, &data, &data_size) > 0) {
		data_size = I_MIN(data_size, size - offset);
		rc = sqlite3_blob_write(blob, data, data_size, offset);
		if (rc != SQLITE_OK) {
			sqlite_set_error(db, rc, "Writing a body");
			(void)sqlite3_blob_close(blob);
			return -1;
		}
		offset += data_size;
		i_stream_skip(input, data_size);
	}
	rc = sqlite3_blob_close(blob);
	if (input->stream_errno != 0) {
		sqlbox_db_set_error(&db->db, SQLBOX_DB_ERROR_INTERNAL,
				    "read(%s) failed: %s",
				    i_stream_get_name(input),
				    i_stream_get_error(input));
		return -1;
	}
	if (offset != size) {
		sqlbox_db_set_error(&db->db, SQLBOX_DB_ERROR_INTERNAL,
			"Body input ended at %"PRIuUOFF_T" of %"PRIuUOFF_T
			" bytes", offset, size);
		return -1;
	}
	if (rc != SQLITE_OK) {
		sqlite_set_error(db, rc, "Writing a body");
		return -1;
	}
	return 0;
}

static int
sqlite_body_write(struct sqlbox_db *_db, struct istream *input, uoff_t size,
		  const unsigned char *sha256, int64_t *body_id_r)
{
	struct sqlite_db *db = SQLITE_DB(_db);
	const unsigned char *data;
	size_t data_size;
	int ret;

	if (size <= SQLBOX_BODY_CHUNK_SIZE) {
		/* small: bind it as a whole */
		ret = i_stream_read_bytes(input, &data, &data_size, size);
		if (size == 0) {
			data = (const unsigned char *)"";
			data_size = 0;
		} else if (ret <= 0 || data_size < size) {
			sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_INTERNAL,
				"read(%s) failed: %s", i_stream_get_name(input),
				input->stream_errno != 0 ?
				i_stream_get_error(input) : "Input too short");
			return -1;
		}
		if (sqlite_body_new_id(_db, body_id_r) < 0)
			return -1;
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(size),
			SQLBOX_BLOB(sha256, SQLBOX_SHA256_SIZE),
			SQLBOX_BLOB(data, size),
			SQLBOX_INT(*body_id_r),
		};
		if (sqlite_exec(_db, "INSERT INTO bodies (id, size, sha256, "
				"data) VALUES ($4, $1, $2, $3)", params,
				N_ELEMENTS(params), NULL) < 0)
			return -1;
		i_stream_skip(input, size);
		return 0;
	}

	/* large: reserve the space, then stream into it */
	if (sqlite_body_new_id(_db, body_id_r) < 0)
		return -1;
	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(size),
		SQLBOX_BLOB(sha256, SQLBOX_SHA256_SIZE),
		SQLBOX_INT(*body_id_r),
	};
	if (sqlite_exec(_db, "INSERT INTO bodies (id, size, sha256, data) "
			"VALUES ($3, $1, $2, zeroblob($1))", params,
			N_ELEMENTS(params), NULL) < 0)
		return -1;
	return sqlite_blob_write_stream(db, *body_id_r, input, size);
}

static int
sqlite_blob_copy(struct sqlite_db *db, struct sqlite_body *src,
		 int64_t dest_id)
{
	unsigned char buf[IO_BLOCK_SIZE*8];
	uoff_t offset = 0;
	sqlite3_blob *dest;
	int rc;

	rc = sqlite3_blob_open(db->conn, "main", "bodies", "data", dest_id, 1,
			       &dest);
	if (rc != SQLITE_OK) {
		sqlite_set_error(db, rc, "Opening a body for writing");
		return -1;
	}
	while (rc == SQLITE_OK && offset < src->body.size) {
		size_t n = I_MIN(sizeof(buf), src->body.size - offset);

		rc = sqlite3_blob_read(src->blob, buf, n, offset);
		if (rc == SQLITE_OK)
			rc = sqlite3_blob_write(dest, buf, n, offset);
		offset += n;
	}
	if (rc != SQLITE_OK)
		sqlite_set_error(db, rc, "Copying a body");
	(void)sqlite3_blob_close(dest);
	return rc == SQLITE_OK ? 0 : -1;
}

static int
sqlite_body_copy(struct sqlbox_db *_db, int64_t src_id, int64_t *body_id_r)
{
	struct sqlite_db *db = SQLITE_DB(_db);
	struct sqlbox_body *body;
	int ret;

	if (sqlite_body_new_id(_db, body_id_r) < 0)
		return -1;
	const struct sqlbox_db_param cparams[] = {
		SQLBOX_INT(src_id),
		SQLBOX_INT(*body_id_r),
	};
	if (sqlite_exec(_db, "INSERT INTO bodies (id, size, sha256, data) "
			"SELECT $2, size, sha256, data FROM bodies "
			"WHERE id = $1 AND size <= 1048576",
			cparams, N_ELEMENTS(cparams), NULL) < 0)
		return -1;
	if (sqlite3_changes(db->conn) == 1)
		return 1;

	/* large or missing: stream it (under the id taken above) */
	if ((ret = _db->v->body_open(_db, src_id, NULL, &body)) <= 0)
		return ret;
	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(body->size),
		SQLBOX_BLOB(body->sha256, SQLBOX_SHA256_SIZE),
		SQLBOX_INT(*body_id_r),
	};
	if (sqlite_exec(_db, "INSERT INTO bodies (id, size, sha256, data) "
			"VALUES ($3, $1, $2, zeroblob($1))", params,
			N_ELEMENTS(params), NULL) < 0) {
		sqlbox_db_body_close(&body);
		return -1;
	}
	ret = sqlite_blob_copy(db, container_of(body, struct sqlite_body, body),
			       *body_id_r);
	sqlbox_db_body_close(&body);
	return ret < 0 ? -1 : 1;
}

static int
sqlite_body_open(struct sqlbox_db *_db, int64_t body_id,
		 const struct sqlbox_body_owner *owner,
		 struct sqlbox_body **body_r)
{
	struct sqlite_db *db = SQLITE_DB(_db);
	struct sqlbox_db_result *result;
	struct sqlite_body *body;
	const unsigned char *data;
	size_t size;
	int ret, rc;

	if (owner != NULL) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(body_id),
			SQLBOX_INT(owner->mailbox_id),
			SQLBOX_INT(owner->uid),
		};
		ret = sqlbox_db_query_row(_db, "SELECT b.size, b.sha256, "
			"CASE WHEN b.size <= 1048576 THEN b.data END "
			"FROM messages m JOIN bodies b ON b.id = m.body_id "
			"WHERE m.mailbox_id = $2 AND m.uid = $3 "
			"AND m.body_id = $1", params, N_ELEMENTS(params),
			&result);
	} else {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(body_id),
		};
		ret = sqlbox_db_query_row(_db, "SELECT size, sha256, "
			"CASE WHEN size <= 1048576 THEN data END "
			"FROM bodies WHERE id = $1", params,
			N_ELEMENTS(params), &result);
	}
	if (ret <= 0)
		return ret;

	body = i_new(struct sqlite_body, 1);
	body->body.db = _db;
	body->body.id = body_id;
	body->body.size = sqlbox_db_result_int(result, 0);
	data = sqlbox_db_result_blob(result, 1, &size);
	if (size == SQLBOX_SHA256_SIZE)
		memcpy(body->body.sha256, data, size);
	if (!sqlbox_db_result_is_null(result, 2)) {
		data = sqlbox_db_result_blob(result, 2, &size);
		if (db->spare != NULL && db->spare_size > size) {
			body->data = db->spare;
			body->data_size = db->spare_size;
			db->spare = NULL;
			db->spare_size = 0;
		} else {
			body->data_size = I_MAX(size + 1, IO_BLOCK_SIZE);
			body->data = i_malloc(body->data_size);
		}
		if (size > 0)
			memcpy(body->data, data, size);
		body->body.data = body->data;
		body->body.data_size = size;
	}
	sqlbox_db_result_free(&result);
	if (body->body.data != NULL) {
		*body_r = &body->body;
		return 1;
	}

	/* large: a connection of its own, for as long as it's read */
	if (sqlite_open_conn(db, TRUE, &body->conn) < 0) {
		i_free(body);
		return -1;
	}
	rc = sqlite3_blob_open(body->conn, "main", "bodies", "data",
			       body_id, 0, &body->blob);
	if (rc != SQLITE_OK) {
		if (rc == SQLITE_ERROR) {
			/* no such row: expunged meanwhile */
			(void)sqlite3_close_v2(body->conn);
			i_free(body);
			return 0;
		}
		sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_TEMP,
				    "Opening body %"PRId64" failed: %s",
				    body_id, sqlite3_errmsg(body->conn));
		(void)sqlite3_close_v2(body->conn);
		i_free(body);
		return -1;
	}
	*body_r = &body->body;
	return 1;
}

static ssize_t
sqlite_body_read(struct sqlbox_body *_body, uoff_t offset, void *buf,
		 size_t size)
{
	struct sqlite_body *body = container_of(_body, struct sqlite_body,
						body);
	int blob_size, rc;

	i_assert(body->blob != NULL);
	blob_size = sqlite3_blob_bytes(body->blob);
	if (offset >= (uoff_t)blob_size)
		return 0;
	size = I_MIN(size, blob_size - offset);
	rc = sqlite3_blob_read(body->blob, buf, size, offset);
	if (rc != SQLITE_OK) {
		sqlbox_db_set_error(_body->db, SQLBOX_DB_ERROR_TEMP,
				    "Reading body %"PRId64" failed: %s",
				    _body->id, sqlite3_errmsg(body->conn));
		return -1;
	}
	return size;
}

static void sqlite_body_close(struct sqlbox_body *_body)
{
	struct sqlite_body *body = container_of(_body, struct sqlite_body,
						body);

	struct sqlite_db *db = SQLITE_DB(_body->db);

	if (body->blob != NULL)
		(void)sqlite3_blob_close(body->blob);
	if (body->conn != NULL)
		(void)sqlite3_close_v2(body->conn);
	if (body->data != NULL && body->data_size > db->spare_size &&
	    body->data_size <= SQLBOX_BODY_CHUNK_SIZE * 2) {
		/* keep the larger buffer for the next body */
		i_free(db->spare);
		db->spare = body->data;
		db->spare_size = body->data_size;
	} else {
		i_free(body->data);
	}
	i_free(body);
}

static struct sqlbox_db *sqlite_alloc(void);

const struct sqlbox_db_vfuncs sqlbox_db_sqlite_vfuncs = {
	.name = "sqlite",
	.schema_exists_sql = "SELECT count(*) FROM sqlite_master "
		"WHERE type = 'table' AND name = 'sqlbox_schema'",
	.migrations = sqlite_migrations,
	.alloc = sqlite_alloc,
	.connect = sqlite_connect,
	.disconnect = sqlite_disconnect,
	.is_connected = sqlite_is_connected,
	.exec = sqlite_exec,
	.exec_script = sqlite_exec_script,
	.result_next = sqlite_result_next,
	.result_is_null = sqlite_result_is_null,
	.result_int = sqlite_result_int,
	.result_text = sqlite_result_text,
	.result_blob = sqlite_result_blob,
	.result_free = sqlite_result_free,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.lock_schema = sqlite_lock_schema,
	.body_write = sqlite_body_write,
	.body_copy = sqlite_body_copy,
	.body_open = sqlite_body_open,
	.body_read = sqlite_body_read,
	.body_close = sqlite_body_close,
};

static struct sqlbox_db *sqlite_alloc(void)
{
	struct sqlite_db *db = i_new(struct sqlite_db, 1);

	return &db->db;
}
