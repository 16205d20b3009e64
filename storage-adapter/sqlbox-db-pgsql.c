/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str.h"
#include "istream.h"
#include "sqlbox-db.h"

#include <libpq-fe.h>
#include <dlfcn.h>

/* PostgreSQL backend, through libpq directly: sqlbox_connect is a libpq
   conninfo string, so "host=pg1,pg2 target_session_attrs=read-write" fails
   over to whichever server accepts writes, and a per-user value from userdb
   shards users across clusters. Every table is keyed by user.

   Statements are prepared once per connection and run with binary results.
   A lost connection is a temporary error; the next statement outside a
   transaction (or the BEGIN of the next transaction) reconnects, so that a
   long-lived process resumes by itself after a failover.

   Bodies are stored in chunks of SQLBOX_BODY_CHUNK_SIZE: the first in
   bodies.data, the rest in body_chunks(body_id, seq). Rows rather than large
   objects: rows are replicated physically and logically, deleted by
   ON DELETE CASCADE inside the message's transaction, and need no
   lo_* privileges; a chunk is the most that is held in memory. */

#define PG_OID_BOOL 16
#define PG_OID_BYTEA 17
#define PG_OID_INT8 20
#define PG_OID_INT2 21
#define PG_OID_INT4 23
#define PG_OID_TEXT 25

/* any constant: the advisory lock that serializes schema changes */
#define SQLBOX_PG_SCHEMA_LOCK_ID 0x73716c62

HASH_TABLE_DEFINE_TYPE(pgsql_stmts, const char *, const char *);

/* a result shared by the bodies read ahead in it */
struct pgsql_shared_result {
	PGresult *res;
	unsigned int refcount;
};

struct pgsql_prefetched {
	int64_t body_id;
	struct pgsql_shared_result *shared;
	int row;
};

struct pgsql_db {
	struct sqlbox_db db;
	PGconn *conn;
	/* SQL text (by address) -> name of its prepared statement */
	HASH_TABLE_TYPE(pgsql_stmts) stmts;
	pool_t stmt_pool;
	unsigned int stmt_counter;
	/* bodies read ahead (body_prefetch), not yet opened */
	ARRAY(struct pgsql_prefetched) prefetched;
};

struct pgsql_result {
	struct sqlbox_db_result result;
	PGresult *res;
	int row, rows;
};

struct pgsql_body {
	struct sqlbox_body body;
	/* the result holding the chunk read last (its data is used in
	   place, not copied) */
	PGresult *res;
	/* or the read-ahead result holding the whole body */
	struct pgsql_shared_result *shared;
	const unsigned char *chunk;
	size_t chunk_size;
	int64_t chunk_seq;
};

#define PGSQL_DB(d) (container_of(d, struct pgsql_db, db))

static const char *const pgsql_migrations[] = {
	/* version 1 */
	"CREATE TABLE sqlbox_schema (version INTEGER NOT NULL);\n"
	"INSERT INTO sqlbox_schema (version) VALUES (0);\n"
	"CREATE TABLE users (\n"
	"  id BIGSERIAL PRIMARY KEY,\n"
	"  username TEXT NOT NULL UNIQUE,\n"
	"  last_uidvalidity BIGINT NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE TABLE mailboxes (\n"
	"  id BIGSERIAL PRIMARY KEY,\n"
	"  user_id BIGINT NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  guid TEXT NOT NULL,\n"
	"  uidvalidity BIGINT NOT NULL,\n"
	"  next_uid BIGINT NOT NULL DEFAULT 1,\n"
	"  modseq BIGINT NOT NULL DEFAULT 1,\n"
	"  UNIQUE (user_id, name)\n"
	");\n"
	"CREATE TABLE bodies (\n"
	"  id BIGSERIAL PRIMARY KEY,\n"
	"  size BIGINT NOT NULL,\n"
	"  sha256 BYTEA NOT NULL,\n"
	"  data BYTEA NOT NULL\n"
	");\n"
	"ALTER TABLE bodies ALTER COLUMN data SET STORAGE EXTERNAL;\n"
	"CREATE TABLE body_chunks (\n"
	"  body_id BIGINT NOT NULL REFERENCES bodies (id) ON DELETE CASCADE,\n"
	"  seq BIGINT NOT NULL,\n"
	"  data BYTEA NOT NULL,\n"
	"  PRIMARY KEY (body_id, seq)\n"
	");\n"
	"ALTER TABLE body_chunks ALTER COLUMN data SET STORAGE EXTERNAL;\n"
	"CREATE TABLE messages (\n"
	"  mailbox_id BIGINT NOT NULL,\n"
	"  uid BIGINT NOT NULL,\n"
	"  modseq BIGINT NOT NULL,\n"
	"  body_id BIGINT NOT NULL,\n"
	"  guid TEXT NOT NULL,\n"
	"  flags BIGINT NOT NULL,\n"
	"  received_date BIGINT NOT NULL,\n"
	"  save_date BIGINT NOT NULL,\n"
	"  physical_size BIGINT NOT NULL,\n"
	"  virtual_size BIGINT NOT NULL,\n"
	"  pop3_uidl TEXT,\n"
	"  pop3_order BIGINT NOT NULL DEFAULT 0,\n"
	"  PRIMARY KEY (mailbox_id, uid)\n"
	");\n"
	"CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);\n"
	"CREATE TABLE keywords (\n"
	"  mailbox_id BIGINT NOT NULL,\n"
	"  uid BIGINT NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  PRIMARY KEY (mailbox_id, uid, name)\n"
	");\n"
	"CREATE TABLE expunged (\n"
	"  mailbox_id BIGINT NOT NULL,\n"
	"  uid BIGINT NOT NULL,\n"
	"  modseq BIGINT NOT NULL,\n"
	"  PRIMARY KEY (mailbox_id, uid)\n"
	");\n"
	"CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);\n",
	/* version 2: expunge records (tombstones) are pruned; an index that
	   last synced before the pruned ones is rebuilt */
	"ALTER TABLE mailboxes ADD COLUMN expunge_floor BIGINT NOT NULL "
	"DEFAULT 0;\n",
	/* version 3: (SQLite's body ids got a counter; here they come from
	   a sequence already and are never reused) */
	"COMMENT ON COLUMN bodies.id IS 'from a sequence: never reused';\n",
	NULL
};

/* libpq is loaded when the first user with sqlbox_driver=pgsql needs it,
   not linked into the plugin: it brings some twenty libraries (Kerberos,
   LDAP, GnuTLS, ...) whose loading would cost every SQLite session's
   process several milliseconds. */
#define SQLBOX_LIBPQ_SONAME "libpq.so.5"

#define SQLBOX_PQ_FUNCS \
	SQLBOX_PQ(PQclear) \
	SQLBOX_PQ(PQcmdStatus) \
	SQLBOX_PQ(PQcmdTuples) \
	SQLBOX_PQ(PQconnectdb) \
	SQLBOX_PQ(PQerrorMessage) \
	SQLBOX_PQ(PQexec) \
	SQLBOX_PQ(PQexecPrepared) \
	SQLBOX_PQ(PQfinish) \
	SQLBOX_PQ(PQftype) \
	SQLBOX_PQ(PQgetisnull) \
	SQLBOX_PQ(PQgetlength) \
	SQLBOX_PQ(PQgetvalue) \
	SQLBOX_PQ(PQhost) \
	SQLBOX_PQ(PQntuples) \
	SQLBOX_PQ(PQport) \
	SQLBOX_PQ(PQprepare) \
	SQLBOX_PQ(PQresultErrorField) \
	SQLBOX_PQ(PQresultErrorMessage) \
	SQLBOX_PQ(PQresultStatus) \
	SQLBOX_PQ(PQstatus) \
	SQLBOX_PQ(PQconninfoParse) \
	SQLBOX_PQ(PQconninfoFree) \
	SQLBOX_PQ(PQfreemem) \
	SQLBOX_PQ(PQtransactionStatus) \

static struct {
	void *handle;
#define SQLBOX_PQ(name) __typeof__(name) *name;
	SQLBOX_PQ_FUNCS
#undef SQLBOX_PQ
} pq;

static int pgsql_load_libpq(const char **error_r)
{
	void *handle;

	if (pq.handle != NULL)
		return 0;
	handle = dlopen(SQLBOX_LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL) {
		*error_r = t_strdup_printf("dlopen("SQLBOX_LIBPQ_SONAME
			") failed: %s (is libpq installed?)", dlerror());
		return -1;
	}
#define SQLBOX_PQ(name) \
	if ((pq.name = dlsym(handle, #name)) == NULL) { \
		*error_r = t_strdup_printf(SQLBOX_LIBPQ_SONAME \
			" has no %s: %s", #name, dlerror()); \
		(void)dlclose(handle); \
		return -1; \
	}
	SQLBOX_PQ_FUNCS
#undef SQLBOX_PQ
	pq.handle = handle;
	return 0;
}

int sqlbox_db_pgsql_check_conninfo(const char *conninfo,
				   bool *have_connect_timeout_r,
				   const char **error_r)
{
	PQconninfoOption *opts, *opt;
	char *errmsg = NULL;

	if (pgsql_load_libpq(error_r) < 0)
		return -1;
	opts = pq.PQconninfoParse(conninfo, &errmsg);
	if (opts == NULL) {
		*error_r = t_strdup(errmsg == NULL ? "out of memory" :
				    t_strcut(errmsg, '\n'));
		pq.PQfreemem(errmsg);
		return -1;
	}
	*have_connect_timeout_r = FALSE;
	for (opt = opts; opt->keyword != NULL; opt++) {
		if (strcmp(opt->keyword, "connect_timeout") == 0 &&
		    opt->val != NULL && *opt->val != '\0')
			*have_connect_timeout_r = TRUE;
	}
	pq.PQconninfoFree(opts);
	return 0;
}

static const char *pgsql_error_text(const char *msg)
{
	/* libpq's messages end with a newline and may have several lines */
	return t_strcut(msg, '\n');
}

static void pgsql_clear_stmts(struct pgsql_db *db)
{
	if (hash_table_is_created(db->stmts))
		hash_table_destroy(&db->stmts);
	pool_unref(&db->stmt_pool);
}

static void pgsql_prefetch_clear(struct pgsql_db *db);

static void pgsql_close(struct pgsql_db *db)
{
	pgsql_prefetch_clear(db);
	if (array_is_created(&db->prefetched))
		array_free(&db->prefetched);
	pgsql_clear_stmts(db);
	if (db->conn != NULL) {
		pq.PQfinish(db->conn);
		db->conn = NULL;
	}
}

/* Connections kept open after their storage is gone, for the next storage
   with the same conninfo in this process (an lmtp process delivering to
   many users of one cluster): no new connection, no new prepared
   statements for each message. */
#define PGSQL_CONN_CACHE_SIZE 4

struct pgsql_cached_conn {
	char *conninfo;
	PGconn *conn;
	HASH_TABLE_TYPE(pgsql_stmts) stmts;
	pool_t stmt_pool;
	unsigned int stmt_counter;
	unsigned int last_used;
};

static struct pgsql_cached_conn pgsql_conn_cache[PGSQL_CONN_CACHE_SIZE];
static unsigned int pgsql_conn_cache_counter;

static void pgsql_cache_slot_close(struct pgsql_cached_conn *slot)
{
	struct pgsql_db tmp;

	i_zero(&tmp);
	tmp.conn = slot->conn;
	tmp.stmts = slot->stmts;
	tmp.stmt_pool = slot->stmt_pool;
	pgsql_close(&tmp);
	i_free(slot->conninfo);
	i_zero(slot);
}

void sqlbox_db_pgsql_cache_clear(void)
{
	unsigned int i;

	for (i = 0; i < PGSQL_CONN_CACHE_SIZE; i++) {
		if (pgsql_conn_cache[i].conn != NULL)
			pgsql_cache_slot_close(&pgsql_conn_cache[i]);
	}
}

static bool pgsql_cache_put(struct pgsql_db *db)
{
	struct pgsql_cached_conn *slot = NULL;
	unsigned int i;

	if (db->conn == NULL || pq.PQstatus(db->conn) != CONNECTION_OK ||
	    pq.PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		return FALSE;
	for (i = 0; i < PGSQL_CONN_CACHE_SIZE; i++) {
		if (pgsql_conn_cache[i].conn == NULL) {
			slot = &pgsql_conn_cache[i];
			break;
		}
		if (slot == NULL ||
		    pgsql_conn_cache[i].last_used < slot->last_used)
			slot = &pgsql_conn_cache[i];
	}
	if (slot->conn != NULL)
		pgsql_cache_slot_close(slot);
	slot->conninfo = i_strdup(db->db.set.connect);
	slot->conn = db->conn;
	slot->stmts = db->stmts;
	slot->stmt_pool = db->stmt_pool;
	slot->stmt_counter = db->stmt_counter;
	slot->last_used = ++pgsql_conn_cache_counter;
	db->conn = NULL;
	i_zero(&db->stmts);
	db->stmt_pool = NULL;
	return TRUE;
}

static bool pgsql_cache_take(struct pgsql_db *db)
{
	struct pgsql_cached_conn *slot;
	unsigned int i;

	for (i = 0; i < PGSQL_CONN_CACHE_SIZE; i++) {
		slot = &pgsql_conn_cache[i];
		if (slot->conn == NULL ||
		    strcmp(slot->conninfo, db->db.set.connect) != 0)
			continue;
		db->conn = slot->conn;
		db->stmts = slot->stmts;
		db->stmt_pool = slot->stmt_pool;
		db->stmt_counter = slot->stmt_counter;
		i_free(slot->conninfo);
		i_zero(slot);
		/* a connection broken while it was kept fails at its first
		   statement, which outside a transaction reconnects */
		return TRUE;
	}
	return FALSE;
}

static void pgsql_disconnect(struct sqlbox_db *_db)
{
	struct pgsql_db *db = PGSQL_DB(_db);

	pgsql_prefetch_clear(db);
	if (array_is_created(&db->prefetched))
		array_free(&db->prefetched);
	if (!pgsql_cache_put(db))
		pgsql_close(db);
}

static bool pgsql_is_connected(struct sqlbox_db *_db)
{
	struct pgsql_db *db = PGSQL_DB(_db);

	return db->conn != NULL && pq.PQstatus(db->conn) == CONNECTION_OK;
}

static int pgsql_exec_simple(struct pgsql_db *db, const char *sql);

static int pgsql_connect_full(struct sqlbox_db *_db, bool fresh)
{
	struct pgsql_db *db = PGSQL_DB(_db);
	const char *error;

	pgsql_close(db);
	if (pgsql_load_libpq(&error) < 0) {
		sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_INTERNAL, "%s", error);
		return -1;
	}
	if (!fresh && pgsql_cache_take(db))
		return 0;
	db->conn = pq.PQconnectdb(_db->set.connect);
	if (db->conn == NULL) {
		sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_TEMP,
				    "PQconnectdb() failed: out of memory");
		return -1;
	}
	if (pq.PQstatus(db->conn) != CONNECTION_OK) {
		sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_TEMP,
			"Connecting to PostgreSQL failed: %s",
			pgsql_error_text(pq.PQerrorMessage(db->conn)));
		pq.PQfinish(db->conn);
		db->conn = NULL;
		return -1;
	}
	db->stmt_pool = pool_alloconly_create("sqlbox pgsql statements",
					      1024);
	hash_table_create_direct(&db->stmts, default_pool, 64);
	e_debug(_db->event, "Connected to %s:%s", pq.PQhost(db->conn),
		pq.PQport(db->conn));
	/* a lock held by another session (a stuck transaction, a long
	   rename) fails the statement after sqlbox_lock_timeout instead of
	   blocking deliveries for ever (a connection kept for reuse keeps
	   the setting: the cache is per connection string, i.e. per
	   cluster) */
	if (_db->set.lock_timeout_msecs > 0 &&
	    pgsql_exec_simple(db, t_strdup_printf("SET lock_timeout = %u",
			_db->set.lock_timeout_msecs)) < 0) {
		pgsql_close(db);
		return -1;
	}
	return 0;
}

static int pgsql_connect(struct sqlbox_db *_db)
{
	return pgsql_connect_full(_db, FALSE);
}

static enum sqlbox_db_error pgsql_sqlstate_error(const char *state)
{
	if (state == NULL)
		return SQLBOX_DB_ERROR_TEMP;
	/* 08: connection exception, 53: insufficient resources,
	   57P0x: shutdown/cannot connect now, 40001/40P01: serialization
	   failure/deadlock, 25006: read-only transaction (a standby) */
	if (strcmp(state, "55P03") == 0) {
		/* lock_not_available: lock_timeout passed */
		return SQLBOX_DB_ERROR_LOCKED;
	}
	if (str_begins(state, "08") || str_begins(state, "53") ||
	    str_begins(state, "57P") || strcmp(state, "40001") == 0 ||
	    strcmp(state, "40P01") == 0 || strcmp(state, "25006") == 0)
		return SQLBOX_DB_ERROR_TEMP;
	if (str_begins(state, "23"))
		return SQLBOX_DB_ERROR_CONSTRAINT;
	return SQLBOX_DB_ERROR_INTERNAL;
}

static void
pgsql_set_result_error(struct pgsql_db *db, PGresult *res, const char *what)
{
	enum sqlbox_db_error error;
	const char *state, *msg;

	if (pq.PQstatus(db->conn) != CONNECTION_OK) {
		/* the connection is gone; whatever the statement said */
		error = SQLBOX_DB_ERROR_TEMP;
		msg = pq.PQerrorMessage(db->conn);
	} else if (res == NULL) {
		error = SQLBOX_DB_ERROR_TEMP;
		msg = pq.PQerrorMessage(db->conn);
	} else {
		state = pq.PQresultErrorField(res, PG_DIAG_SQLSTATE);
		error = pgsql_sqlstate_error(state);
		msg = pq.PQresultErrorMessage(res);
	}
	sqlbox_db_set_error(&db->db, error, "%s: %s", what,
			    pgsql_error_text(msg));
}

static bool pgsql_result_ok(PGresult *res)
{
	if (res == NULL)
		return FALSE;
	switch (pq.PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		return TRUE;
	default:
		return FALSE;
	}
}

static Oid pgsql_param_type(enum sqlbox_db_param_type type)
{
	switch (type) {
	case SQLBOX_DB_PARAM_NULL:
		return 0;
	case SQLBOX_DB_PARAM_INT:
		return PG_OID_INT8;
	case SQLBOX_DB_PARAM_TEXT:
		return PG_OID_TEXT;
	case SQLBOX_DB_PARAM_BLOB:
		return PG_OID_BYTEA;
	}
	i_unreached();
}

static int
pgsql_prepare(struct pgsql_db *db, const char *sql,
	      const struct sqlbox_db_param *params, unsigned int count,
	      const char **name_r)
{
	const char *name;
	Oid *types;
	PGresult *res;
	unsigned int i;

	name = hash_table_lookup(db->stmts, sql);
	if (name != NULL) {
		*name_r = name;
		return 0;
	}
	types = t_new(Oid, count + 1);
	for (i = 0; i < count; i++)
		types[i] = pgsql_param_type(params[i].type);
	name = p_strdup_printf(db->stmt_pool, "sqlbox_%u",
			       ++db->stmt_counter);
	res = pq.PQprepare(db->conn, name, sql, count, types);
	if (!pgsql_result_ok(res)) {
		pgsql_set_result_error(db, res, t_strdup_printf(
			"Preparing %s", t_strcut(sql, '\n')));
		pq.PQclear(res);
		return -1;
	}
	pq.PQclear(res);
	hash_table_insert(db->stmts, sql, name);
	*name_r = name;
	return 0;
}

static PGresult *
pgsql_exec_once(struct pgsql_db *db, const char *sql,
		const struct sqlbox_db_param *params, unsigned int count)
{
	const char **values, *name;
	int *lengths, *formats;
	unsigned int i;

	if (pgsql_prepare(db, sql, params, count, &name) < 0)
		return NULL;

	values = t_new(const char *, count + 1);
	lengths = t_new(int, count + 1);
	formats = t_new(int, count + 1);
	for (i = 0; i < count; i++) {
		switch (params[i].type) {
		case SQLBOX_DB_PARAM_NULL:
			values[i] = NULL;
			break;
		case SQLBOX_DB_PARAM_INT:
			values[i] = t_strdup_printf("%"PRId64, params[i].i);
			break;
		case SQLBOX_DB_PARAM_TEXT:
			values[i] = t_strndup(params[i].data, params[i].size);
			break;
		case SQLBOX_DB_PARAM_BLOB:
			values[i] = params[i].size == 0 ? "" : params[i].data;
			lengths[i] = params[i].size;
			formats[i] = 1;
			break;
		}
	}
	return pq.PQexecPrepared(db->conn, name, count, values, lengths,
			      formats, 1);
}

static int
pgsql_exec(struct sqlbox_db *_db, const char *sql,
	   const struct sqlbox_db_param *params, unsigned int count,
	   struct sqlbox_db_result **result_r)
{
	struct pgsql_db *db = PGSQL_DB(_db);
	PGresult *res = NULL;
	int ret;

	if (!pgsql_is_connected(_db)) {
		if (_db->transaction_depth > 0) {
			sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_TEMP,
				"Lost the connection to PostgreSQL "
				"in a transaction");
			return -1;
		}
		if (pgsql_connect(_db) < 0)
			return -1;
	}
	sqlbox_db_clear_error(_db);
	T_BEGIN {
		res = pgsql_exec_once(db, sql, params, count);
	} T_END;
	if (!pgsql_result_ok(res) && _db->transaction_depth == 0 &&
	    pq.PQstatus(db->conn) != CONNECTION_OK) {
		/* the connection broke while idle (a restarted or failed
		   over server): outside a transaction, trying once more on
		   a new connection is safe */
		pq.PQclear(res);
		res = NULL;
		if (pgsql_connect_full(_db, TRUE) < 0)
			return -1;
		sqlbox_db_clear_error(_db);
		T_BEGIN {
			res = pgsql_exec_once(db, sql, params, count);
		} T_END;
	}
	if (!pgsql_result_ok(res)) {
		/* (a failed pq.PQprepare() has set the error already) */
		if (res != NULL || _db->error == SQLBOX_DB_ERROR_NONE)
			pgsql_set_result_error(db, res, t_strcut(sql, '\n'));
		pq.PQclear(res);
		return -1;
	}
	if (result_r != NULL) {
		struct pgsql_result *result = i_new(struct pgsql_result, 1);

		result->result.db = _db;
		result->res = res;
		result->row = -1;
		result->rows = pq.PQntuples(res);
		*result_r = &result->result;
		return 0;
	}
	ret = atoi(pq.PQcmdTuples(res));
	pq.PQclear(res);
	return ret;
}

static int pgsql_exec_simple(struct pgsql_db *db, const char *sql)
{
	PGresult *res;

	res = pq.PQexec(db->conn, sql);
	if (!pgsql_result_ok(res)) {
		pgsql_set_result_error(db, res, t_strcut(sql, '\n'));
		pq.PQclear(res);
		return -1;
	}
	pq.PQclear(res);
	return 0;
}

static int pgsql_exec_script(struct sqlbox_db *_db, const char *script)
{
	return pgsql_exec_simple(PGSQL_DB(_db), script);
}

static int pgsql_result_next(struct sqlbox_db_result *_result)
{
	struct pgsql_result *result =
		container_of(_result, struct pgsql_result, result);

	if (result->row + 1 >= result->rows)
		return 0;
	result->row++;
	return 1;
}

static bool pgsql_result_is_null(struct sqlbox_db_result *_result,
				 unsigned int col)
{
	struct pgsql_result *result =
		container_of(_result, struct pgsql_result, result);

	return pq.PQgetisnull(result->res, result->row, col) != 0;
}

static int64_t pgsql_result_int_at(PGresult *res, int row, unsigned int col)
{
	const unsigned char *p;
	uint64_t value = 0;
	int i, len;

	if (pq.PQgetisnull(res, row, col) != 0)
		return 0;
	p = (const unsigned char *)pq.PQgetvalue(res, row, col);
	len = pq.PQgetlength(res, row, col);
	switch (pq.PQftype(res, col)) {
	case PG_OID_INT8:
	case PG_OID_INT4:
	case PG_OID_INT2:
	case PG_OID_BOOL:
		break;
	default:
		i_panic("sqlbox: column %u is not an integer (type %u)",
			col, pq.PQftype(res, col));
	}
	/* binary format: big-endian two's complement */
	for (i = 0; i < len; i++)
		value = (value << 8) | p[i];
	if (len < 8 && len > 0 && (p[0] & 0x80) != 0)
		value |= ~(uint64_t)0 << (len * 8);
	return (int64_t)value;
}

static int64_t pgsql_result_int(struct sqlbox_db_result *_result,
				unsigned int col)
{
	struct pgsql_result *result =
		container_of(_result, struct pgsql_result, result);

	return pgsql_result_int_at(result->res, result->row, col);
}

static const char *pgsql_result_text(struct sqlbox_db_result *_result,
				     unsigned int col)
{
	struct pgsql_result *result =
		container_of(_result, struct pgsql_result, result);

	if (pq.PQgetisnull(result->res, result->row, col) != 0)
		return NULL;
	/* binary format text is the text itself, NUL-terminated */
	return pq.PQgetvalue(result->res, result->row, col);
}

static const unsigned char *
pgsql_result_blob(struct sqlbox_db_result *_result, unsigned int col,
		  size_t *size_r)
{
	struct pgsql_result *result =
		container_of(_result, struct pgsql_result, result);

	*size_r = pq.PQgetlength(result->res, result->row, col);
	return (const unsigned char *)
		pq.PQgetvalue(result->res, result->row, col);
}

static void pgsql_result_free(struct sqlbox_db_result *_result)
{
	struct pgsql_result *result =
		container_of(_result, struct pgsql_result, result);

	pq.PQclear(result->res);
	i_free(result);
}

static int pgsql_begin(struct sqlbox_db *_db, bool write)
{
	struct pgsql_db *db = PGSQL_DB(_db);
	const char *sql = write ? "BEGIN" :
		"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

	if (!pgsql_is_connected(_db) && pgsql_connect(_db) < 0)
		return -1;
	if (pgsql_exec_simple(db, sql) == 0)
		return 0;
	if (pq.PQstatus(db->conn) == CONNECTION_OK)
		return -1;
	/* broken while idle: nothing was done yet, try a new connection */
	if (pgsql_connect_full(_db, TRUE) < 0)
		return -1;
	return pgsql_exec_simple(db, sql);
}

static int pgsql_commit(struct sqlbox_db *_db)
{
	struct pgsql_db *db = PGSQL_DB(_db);
	PGresult *res;

	res = pq.PQexec(db->conn, "COMMIT");
	if (!pgsql_result_ok(res)) {
		pgsql_set_result_error(db, res, "COMMIT");
		pq.PQclear(res);
		return -1;
	}
	if (strcmp(pq.PQcmdStatus(res), "COMMIT") != 0) {
		/* an earlier statement failed: it was rolled back */
		sqlbox_db_set_error(_db, SQLBOX_DB_ERROR_INTERNAL,
				    "COMMIT: transaction was rolled back");
		pq.PQclear(res);
		return -1;
	}
	pq.PQclear(res);
	return 0;
}

static void pgsql_rollback(struct sqlbox_db *_db)
{
	struct pgsql_db *db = PGSQL_DB(_db);

	if (pgsql_is_connected(_db))
		pq.PQclear(pq.PQexec(db->conn, "ROLLBACK"));
}

static int pgsql_lock_schema(struct sqlbox_db *_db)
{
	const struct sqlbox_db_param param =
		SQLBOX_INT(SQLBOX_PG_SCHEMA_LOCK_ID);

	return pgsql_exec(_db, "SELECT pg_advisory_xact_lock($1)",
			  &param, 1, NULL) < 0 ? -1 : 0;
}

static int
pgsql_read_chunk(struct sqlbox_db *db, struct istream *input, size_t size,
		 buffer_t *buf)
{
	const unsigned char *data;
	size_t data_size;

	buffer_set_used_size(buf, 0);
	while (buf->used < size &&
	       i_stream_read_more(input, &data, &data_size) > 0) {
		data_size = I_MIN(data_size, size - buf->used);
		buffer_append(buf, data, data_size);
		i_stream_skip(input, data_size);
	}
	if (buf->used == size)
		return 0;
	sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
			    "read(%s) failed: %s", i_stream_get_name(input),
			    input->stream_errno != 0 ?
			    i_stream_get_error(input) : "Input too short");
	return -1;
}

static int
pgsql_body_write(struct sqlbox_db *_db, struct istream *input, uoff_t size,
		 const unsigned char *sha256, int64_t *body_id_r)
{
	struct sqlbox_db_result *result;
	buffer_t *buf;
	uoff_t left;
	int64_t seq;
	int ret = 0;

	buf = buffer_create_dynamic(default_pool,
				    I_MIN(size, SQLBOX_BODY_CHUNK_SIZE) + 1);
	if (pgsql_read_chunk(_db, input, I_MIN(size, SQLBOX_BODY_CHUNK_SIZE),
			     buf) < 0) {
		buffer_free(&buf);
		return -1;
	}
	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(size),
		SQLBOX_BLOB(sha256, SQLBOX_SHA256_SIZE),
		SQLBOX_BLOB(buf->data, buf->used),
	};
	if (pgsql_exec(_db, "INSERT INTO bodies (size, sha256, data) "
		       "VALUES ($1, $2, $3) RETURNING id", params,
		       N_ELEMENTS(params), &result) < 0) {
		buffer_free(&buf);
		return -1;
	}
	i_assert(pgsql_result_next(result) == 1);
	*body_id_r = pgsql_result_int(result, 0);
	pgsql_result_free(result);

	left = size - buf->used;
	for (seq = 1; left > 0 && ret == 0; seq++) {
		size_t n = I_MIN(left, SQLBOX_BODY_CHUNK_SIZE);

		if (pgsql_read_chunk(_db, input, n, buf) < 0) {
			ret = -1;
			break;
		}
		const struct sqlbox_db_param cparams[] = {
			SQLBOX_INT(*body_id_r),
			SQLBOX_INT(seq),
			SQLBOX_BLOB(buf->data, buf->used),
		};
		if (pgsql_exec(_db, "INSERT INTO body_chunks "
			       "(body_id, seq, data) VALUES ($1, $2, $3)",
			       cparams, N_ELEMENTS(cparams), NULL) < 0)
			ret = -1;
		left -= n;
	}
	buffer_free(&buf);
	return ret;
}

static int
pgsql_body_copy(struct sqlbox_db *_db, int64_t src_id, int64_t *body_id_r)
{
	struct sqlbox_db_result *result;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(src_id),
	};
	if (pgsql_exec(_db, "INSERT INTO bodies (size, sha256, data) "
		       "SELECT size, sha256, data FROM bodies WHERE id = $1 "
		       "RETURNING id", params, N_ELEMENTS(params),
		       &result) < 0)
		return -1;
	if (pgsql_result_next(result) == 0) {
		pgsql_result_free(result);
		return 0;
	}
	*body_id_r = pgsql_result_int(result, 0);
	pgsql_result_free(result);

	const struct sqlbox_db_param cparams[] = {
		SQLBOX_INT(src_id),
		SQLBOX_INT(*body_id_r),
	};
	if (pgsql_exec(_db, "INSERT INTO body_chunks (body_id, seq, data) "
		       "SELECT $2, seq, data FROM body_chunks "
		       "WHERE body_id = $1", cparams, N_ELEMENTS(cparams),
		       NULL) < 0)
		return -1;
	return 1;
}

static void pgsql_shared_result_unref(struct pgsql_shared_result **_shared)
{
	struct pgsql_shared_result *shared = *_shared;

	*_shared = NULL;
	if (shared == NULL || --shared->refcount > 0)
		return;
	pq.PQclear(shared->res);
	i_free(shared);
}

static void pgsql_prefetch_clear(struct pgsql_db *db)
{
	struct pgsql_prefetched *p;

	if (!array_is_created(&db->prefetched))
		return;
	array_foreach_modifiable(&db->prefetched, p)
		pgsql_shared_result_unref(&p->shared);
	array_clear(&db->prefetched);
}

/* Reads small bodies ahead in one query (POP3 RETR of every message, IMAP
   FETCH 1:* BODY[]): one round trip for several messages instead of one
   each. */
static void
pgsql_body_prefetch(struct sqlbox_db *_db, int64_t mailbox_id,
		    const int64_t *body_ids, unsigned int count)
{
	struct pgsql_db *db = PGSQL_DB(_db);
	struct sqlbox_db_result *_result;
	struct pgsql_result *result;
	struct pgsql_shared_result *shared;
	struct pgsql_prefetched *p;
	string_t *ids;
	unsigned int i;

	pgsql_prefetch_clear(db);
	if (count == 0)
		return;
	ids = t_str_new(128);
	str_append_c(ids, '{');
	for (i = 0; i < count; i++) {
		if (i > 0)
			str_append_c(ids, ',');
		str_printfa(ids, "%"PRId64, body_ids[i]);
	}
	str_append_c(ids, '}');
	const struct sqlbox_db_param params[] = {
		SQLBOX_TEXT(str_c(ids)),
		SQLBOX_INT(mailbox_id),
	};
	/* only bodies that messages of this mailbox still refer to */
	if (sqlbox_db_query(_db, "SELECT b.id, b.size, b.sha256, b.data "
			    "FROM messages m JOIN bodies b ON b.id = m.body_id "
			    "WHERE m.mailbox_id = $2 "
			    "AND m.body_id = ANY(CAST($1 AS BIGINT[])) "
			    "AND b.size = length(b.data)", params,
			    N_ELEMENTS(params), &_result) < 0) {
		/* only a read-ahead: the bodies will be read one by one */
		return;
	}
	result = container_of(_result, struct pgsql_result, result);
	shared = i_new(struct pgsql_shared_result, 1);
	shared->res = result->res;
	shared->refcount = 1;
	if (!array_is_created(&db->prefetched))
		i_array_init(&db->prefetched, 32);
	for (i = 0; i < (unsigned int)result->rows; i++) {
		p = array_append_space(&db->prefetched);
		p->body_id = pgsql_result_int_at(shared->res, i, 0);
		p->shared = shared;
		p->row = i;
		shared->refcount++;
	}
	e_debug(_db->event, "Read %d of %u bodies ahead", result->rows,
		count);
	i_free(result);
	pgsql_shared_result_unref(&shared);
}

static bool
pgsql_body_open_prefetched(struct pgsql_db *db, struct pgsql_body *body)
{
	struct pgsql_prefetched *p;
	const unsigned char *sha;
	unsigned int i, count;

	if (!array_is_created(&db->prefetched))
		return FALSE;
	p = array_get_modifiable(&db->prefetched, &count);
	for (i = 0; i < count; i++) {
		if (p[i].body_id != body->body.id)
			continue;
		body->shared = p[i].shared;
		body->body.size = pgsql_result_int_at(body->shared->res,
						      p[i].row, 1);
		sha = (const unsigned char *)
			pq.PQgetvalue(body->shared->res, p[i].row, 2);
		if (pq.PQgetlength(body->shared->res, p[i].row, 2) ==
		    SQLBOX_SHA256_SIZE)
			memcpy(body->body.sha256, sha, SQLBOX_SHA256_SIZE);
		body->chunk = (const unsigned char *)
			pq.PQgetvalue(body->shared->res, p[i].row, 3);
		body->chunk_size = pq.PQgetlength(body->shared->res,
						  p[i].row, 3);
		array_delete(&db->prefetched, i, 1);
		return TRUE;
	}
	return FALSE;
}

/* Reads one chunk into the body, keeping the result whose data it is. */
static int
pgsql_body_read_chunk(struct pgsql_body *body, const char *sql,
		      const struct sqlbox_db_param *params,
		      unsigned int count, unsigned int data_col)
{
	struct sqlbox_db *db = body->body.db;
	struct sqlbox_db_result *_result;
	struct pgsql_result *result;
	int ret;

	ret = sqlbox_db_query_row(db, sql, params, count, &_result);
	if (ret <= 0)
		return ret;
	result = container_of(_result, struct pgsql_result, result);
	pq.PQclear(body->res);
	pgsql_shared_result_unref(&body->shared);
	body->res = result->res;
	body->chunk = (const unsigned char *)
		pq.PQgetvalue(body->res, result->row, data_col);
	body->chunk_size = pq.PQgetlength(body->res, result->row, data_col);
	if (data_col > 0) {
		const unsigned char *sha;
		size_t sha_size;

		body->body.size = pgsql_result_int(_result, 0);
		sha = pgsql_result_blob(_result, 1, &sha_size);
		if (sha_size == SQLBOX_SHA256_SIZE)
			memcpy(body->body.sha256, sha, sha_size);
	}
	/* the PGresult now belongs to the body */
	i_free(result);
	return 1;
}

static int
pgsql_body_open(struct sqlbox_db *_db, int64_t body_id,
		const struct sqlbox_body_owner *owner,
		struct sqlbox_body **body_r)
{
	struct pgsql_body *body;
	int ret;

	body = i_new(struct pgsql_body, 1);
	body->body.db = _db;
	body->body.id = body_id;

	if (pgsql_body_open_prefetched(PGSQL_DB(_db), body)) {
		body->body.data = body->chunk;
		body->body.data_size = body->chunk_size;
		*body_r = &body->body;
		return 1;
	}

	if (owner != NULL) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(body_id),
			SQLBOX_INT(owner->mailbox_id),
			SQLBOX_INT(owner->uid),
		};
		ret = pgsql_body_read_chunk(body, "SELECT b.size, b.sha256, "
			"b.data FROM messages m JOIN bodies b "
			"ON b.id = m.body_id WHERE m.mailbox_id = $2 "
			"AND m.uid = $3 AND m.body_id = $1", params,
			N_ELEMENTS(params), 2);
	} else {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(body_id),
		};
		ret = pgsql_body_read_chunk(body, "SELECT size, sha256, data "
					    "FROM bodies WHERE id = $1", params,
					    N_ELEMENTS(params), 2);
	}
	if (ret <= 0) {
		i_free(body);
		return ret;
	}
	body->chunk_seq = 0;
	if (body->chunk_size == body->body.size) {
		/* all of it */
		body->body.data = body->chunk;
		body->body.data_size = body->chunk_size;
	}
	*body_r = &body->body;
	return 1;
}

static ssize_t
pgsql_body_read(struct sqlbox_body *_body, uoff_t offset, void *buf,
		size_t size)
{
	struct pgsql_body *body = container_of(_body, struct pgsql_body,
					       body);
	int64_t seq = offset / SQLBOX_BODY_CHUNK_SIZE;
	size_t chunk_offset = offset % SQLBOX_BODY_CHUNK_SIZE;
	int ret;

	if (offset >= _body->size)
		return 0;
	if (seq != body->chunk_seq) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(_body->id),
			SQLBOX_INT(seq),
		};
		/* the first chunk is in bodies.data */
		ret = seq == 0 ?
			pgsql_body_read_chunk(body,
				"SELECT data FROM bodies WHERE id = $1",
				params, 1, 0) :
			pgsql_body_read_chunk(body,
				"SELECT data FROM body_chunks "
				"WHERE body_id = $1 AND seq = $2",
				params, N_ELEMENTS(params), 0);
		if (ret <= 0) {
			if (ret == 0) {
				sqlbox_db_set_error(_body->db,
					SQLBOX_DB_ERROR_CORRUPT,
					"chunk %"PRId64" is missing", seq);
			}
			return -1;
		}
		body->chunk_seq = seq;
	}
	if (chunk_offset >= body->chunk_size) {
		sqlbox_db_set_error(_body->db, SQLBOX_DB_ERROR_CORRUPT,
				    "chunk %"PRId64" is too short", seq);
		return -1;
	}
	size = I_MIN(size, body->chunk_size - chunk_offset);
	memcpy(buf, body->chunk + chunk_offset, size);
	return size;
}

static void pgsql_body_close(struct sqlbox_body *_body)
{
	struct pgsql_body *body = container_of(_body, struct pgsql_body,
					       body);

	pq.PQclear(body->res);
	pgsql_shared_result_unref(&body->shared);
	i_free(body);
}

static struct sqlbox_db *pgsql_alloc(void)
{
	struct pgsql_db *db = i_new(struct pgsql_db, 1);

	return &db->db;
}

const struct sqlbox_db_vfuncs sqlbox_db_pgsql_vfuncs = {
	.name = "pgsql",
	.schema_exists_sql = "SELECT count(*) FROM pg_catalog.pg_tables "
		"WHERE tablename = 'sqlbox_schema' "
		"AND schemaname = current_schema()",
	.migrations = pgsql_migrations,
	.spool_large_bodies = TRUE,
	.alloc = pgsql_alloc,
	.connect = pgsql_connect,
	.disconnect = pgsql_disconnect,
	.is_connected = pgsql_is_connected,
	.exec = pgsql_exec,
	.exec_script = pgsql_exec_script,
	.result_next = pgsql_result_next,
	.result_is_null = pgsql_result_is_null,
	.result_int = pgsql_result_int,
	.result_text = pgsql_result_text,
	.result_blob = pgsql_result_blob,
	.result_free = pgsql_result_free,
	.begin = pgsql_begin,
	.commit = pgsql_commit,
	.rollback = pgsql_rollback,
	.lock_schema = pgsql_lock_schema,
	.body_write = pgsql_body_write,
	.body_copy = pgsql_body_copy,
	.body_prefetch = pgsql_body_prefetch,
	.body_open = pgsql_body_open,
	.body_read = pgsql_body_read,
	.body_close = pgsql_body_close,
};
