#ifndef SQLBOX_DB_H
#define SQLBOX_DB_H

/* The database behind sqlbox: one small interface with a SQLite and a
   PostgreSQL implementation.

   The SQL itself is written once (sqlbox-db.c) with $1..$n placeholders,
   which both engines accept. A backend provides connections, statements,
   transactions, its schema migrations and the storage of message bodies.
   Bodies go through their own calls (body_*), so that they could later live
   in an object store (e.g. Ceph RADOS, keyed by body id) while the metadata
   stays in SQL. */

#include "guid.h"

#define SQLBOX_SHA256_SIZE 32
/* Bodies up to this size are read whole into memory (one query); larger
   ones are streamed. PostgreSQL stores bodies in chunks of this size. */
#define SQLBOX_BODY_CHUNK_SIZE (1024*1024)

struct istream;
struct sqlbox_db;
struct sqlbox_db_result;

enum sqlbox_db_driver {
	SQLBOX_DB_DRIVER_SQLITE,
	SQLBOX_DB_DRIVER_PGSQL,
};

enum sqlbox_db_error {
	SQLBOX_DB_ERROR_NONE = 0,
	/* The database can't be reached or is busy (connection refused or
	   lost, lock timeout, read-only standby, serialization failure):
	   trying again later may work. */
	SQLBOX_DB_ERROR_TEMP,
	/* Another process holds the lock longer than the lock timeout:
	   temporary too, but the mailbox is in use. */
	SQLBOX_DB_ERROR_LOCKED,
	/* A unique or foreign key constraint was violated. */
	SQLBOX_DB_ERROR_CONSTRAINT,
	/* Stored data doesn't match what was recorded (e.g. a body chunk
	   missing or too short). */
	SQLBOX_DB_ERROR_CORRUPT,
	/* Anything else: a corrupted database, a bug, a schema problem. */
	SQLBOX_DB_ERROR_INTERNAL,
};

enum sqlbox_db_param_type {
	SQLBOX_DB_PARAM_NULL = 0,
	SQLBOX_DB_PARAM_INT,
	SQLBOX_DB_PARAM_TEXT,
	SQLBOX_DB_PARAM_BLOB,
};

struct sqlbox_db_param {
	enum sqlbox_db_param_type type;
	int64_t i;
	const void *data;
	size_t size;
};

#define SQLBOX_INT(v) \
	((struct sqlbox_db_param){ .type = SQLBOX_DB_PARAM_INT, .i = (v) })
#define SQLBOX_TEXT(v) \
	((struct sqlbox_db_param){ .type = SQLBOX_DB_PARAM_TEXT, \
		.data = (v), .size = strlen(v) })
#define SQLBOX_TEXT_OR_NULL(v) \
	((v) == NULL ? SQLBOX_NULL : SQLBOX_TEXT(v))
#define SQLBOX_BLOB(v, len) \
	((struct sqlbox_db_param){ .type = SQLBOX_DB_PARAM_BLOB, \
		.data = (v), .size = (len) })
#define SQLBOX_NULL \
	((struct sqlbox_db_param){ .type = SQLBOX_DB_PARAM_NULL })

struct sqlbox_db_settings {
	enum sqlbox_db_driver driver;
	/* SQLite: the database file. PostgreSQL: a libpq conninfo string. */
	const char *connect;
	/* SQLite: fsync the WAL at each commit (synchronous=FULL) */
	bool fsync;
	/* SQLite: how long to wait for another process's write lock */
	unsigned int lock_timeout_msecs;
	/* SQLite: how much of the database file a connection maps */
	uoff_t mmap_size;
};

/* The message a body is read for: a body is served only while the
   message's row still refers to it (an index or session that is behind
   the database never gets another message's body). */
struct sqlbox_body_owner {
	int64_t mailbox_id;
	uint32_t uid;
};

/* An open body: its size and checksum, and either the whole data (small
   bodies) or a position to read from (large ones). */
struct sqlbox_body {
	struct sqlbox_db *db;
	int64_t id;
	uoff_t size;
	unsigned char sha256[SQLBOX_SHA256_SIZE];
	/* whole body, if it was small enough to be read at once */
	const unsigned char *data;
	size_t data_size;
};

/* Backends embed this first in their result struct. */
struct sqlbox_db_result {
	struct sqlbox_db *db;
};

struct sqlbox_db_vfuncs {
	const char *name;
	/* returns one row with one integer: 1 if the sqlbox_schema table
	   exists, 0 if not */
	const char *schema_exists_sql;
	/* NULL-terminated list of scripts: [0] creates schema version 1,
	   [n] upgrades version n to n+1. Statements are separated by ';'
	   at line ends. */
	const char *const *migrations;
	/* Large bodies are copied to a temporary file while they're checked
	   and served from there: a body read over the network must not fail
	   half way through a POP3 RETR (which would end the message as if it
	   were complete). */
	bool spool_large_bodies;

	/* allocates the backend's struct, which starts with struct
	   sqlbox_db (freed with i_free()) */
	struct sqlbox_db *(*alloc)(void);
	int (*connect)(struct sqlbox_db *db);
	void (*disconnect)(struct sqlbox_db *db);
	bool (*is_connected)(struct sqlbox_db *db);

	/* Run one statement. With result_r==NULL, only the number of changed
	   rows is returned. */
	int (*exec)(struct sqlbox_db *db, const char *sql,
		    const struct sqlbox_db_param *params, unsigned int count,
		    struct sqlbox_db_result **result_r);
	/* Run several statements without parameters (DDL). */
	int (*exec_script)(struct sqlbox_db *db, const char *script);
	/* Returns 1 and moves to the next row, 0 at the end, -1 on error. */
	int (*result_next)(struct sqlbox_db_result *result);
	bool (*result_is_null)(struct sqlbox_db_result *result,
			       unsigned int col);
	int64_t (*result_int)(struct sqlbox_db_result *result,
			      unsigned int col);
	const char *(*result_text)(struct sqlbox_db_result *result,
				   unsigned int col);
	const unsigned char *(*result_blob)(struct sqlbox_db_result *result,
					    unsigned int col, size_t *size_r);
	void (*result_free)(struct sqlbox_db_result *result);

	int (*begin)(struct sqlbox_db *db, bool write);
	int (*commit)(struct sqlbox_db *db);
	void (*rollback)(struct sqlbox_db *db);
	/* Serialize schema creation/upgrades between processes (inside a
	   write transaction). */
	int (*lock_schema)(struct sqlbox_db *db);

	/* Bodies. body_write/body_copy/body_delete_* run inside a write
	   transaction. body_write stores size bytes from input and returns
	   the new body's id. */
	int (*body_write)(struct sqlbox_db *db, struct istream *input,
			  uoff_t size, const unsigned char *sha256,
			  int64_t *body_id_r);
	int (*body_copy)(struct sqlbox_db *db, int64_t src_id,
			 int64_t *body_id_r);
	/* Optional: read these (small) bodies of messages of the mailbox
	   ahead, for the next body_open()s. Best effort. */
	void (*body_prefetch)(struct sqlbox_db *db, int64_t mailbox_id,
			      const int64_t *body_ids, unsigned int count);
	/* Returns 1 if found, 0 if the body doesn't exist or (with owner)
	   the owner's row doesn't refer to it, -1 on error. */
	int (*body_open)(struct sqlbox_db *db, int64_t body_id,
			 const struct sqlbox_body_owner *owner,
			 struct sqlbox_body **body_r);
	/* Read from a large body at offset; returns bytes read, 0 at the
	   end, -1 on error. */
	ssize_t (*body_read)(struct sqlbox_body *body, uoff_t offset,
			     void *buf, size_t size);
	void (*body_close)(struct sqlbox_body *body);
};

struct sqlbox_db {
	pool_t pool;
	const struct sqlbox_db_vfuncs *v;
	struct sqlbox_db_settings set;
	struct event *event;
	enum sqlbox_db_error error;
	char *error_str;

	int schema_version;
	unsigned int transaction_depth;
	bool write_transaction:1;
	bool schema_checked:1;
	/* inside sqlbox_db_connect(): statements don't connect again */
	bool connecting:1;
	/* the schema is newer than we understand: nothing may be done */
	bool schema_refused:1;
};

extern const struct sqlbox_db_vfuncs sqlbox_db_sqlite_vfuncs;
/* Validates a libpq conninfo string (loading libpq). */
int sqlbox_db_pgsql_check_conninfo(const char *conninfo,
				   bool *have_connect_timeout_r,
				   const char **error_r);
/* Close the connections kept for reuse in this process. */
void sqlbox_db_sqlite_cache_clear(void);
void sqlbox_db_pgsql_cache_clear(void);
extern const struct sqlbox_db_vfuncs sqlbox_db_pgsql_vfuncs;

/* The schema version this build creates and understands. */
#define SQLBOX_SCHEMA_VERSION 3

struct sqlbox_db *
sqlbox_db_init(const struct sqlbox_db_settings *set, struct event *parent);
void sqlbox_db_deinit(struct sqlbox_db **db);

/* Connect if not connected, and create or upgrade the schema the first
   time. */
int sqlbox_db_connect(struct sqlbox_db *db);
void sqlbox_db_disconnect(struct sqlbox_db *db);

/* Returns the number of changed rows, or -1. */
int sqlbox_db_exec(struct sqlbox_db *db, const char *sql,
		   const struct sqlbox_db_param *params, unsigned int count);
int sqlbox_db_query(struct sqlbox_db *db, const char *sql,
		    const struct sqlbox_db_param *params, unsigned int count,
		    struct sqlbox_db_result **result_r);
/* Query that returns at most one row: 1 = row (result_r set), 0 = none. */
int sqlbox_db_query_row(struct sqlbox_db *db, const char *sql,
			const struct sqlbox_db_param *params,
			unsigned int count,
			struct sqlbox_db_result **result_r);
int sqlbox_db_result_next(struct sqlbox_db_result *result);
bool sqlbox_db_result_is_null(struct sqlbox_db_result *result,
			      unsigned int col);
int64_t sqlbox_db_result_int(struct sqlbox_db_result *result,
			     unsigned int col);
const char *sqlbox_db_result_text(struct sqlbox_db_result *result,
				  unsigned int col);
const unsigned char *
sqlbox_db_result_blob(struct sqlbox_db_result *result, unsigned int col,
		      size_t *size_r);
void sqlbox_db_result_free(struct sqlbox_db_result **result);

int sqlbox_db_begin(struct sqlbox_db *db, bool write);
int sqlbox_db_commit(struct sqlbox_db *db);
void sqlbox_db_rollback(struct sqlbox_db *db);

int sqlbox_db_body_write(struct sqlbox_db *db, struct istream *input,
			 uoff_t size, const unsigned char *sha256,
			 int64_t *body_id_r);
int sqlbox_db_body_copy(struct sqlbox_db *db, int64_t src_id,
			int64_t *body_id_r);
bool sqlbox_db_can_prefetch(struct sqlbox_db *db);
void sqlbox_db_body_prefetch(struct sqlbox_db *db, int64_t mailbox_id,
			     const int64_t *body_ids, unsigned int count);
/* owner may be NULL: no check */
int sqlbox_db_body_open(struct sqlbox_db *db, int64_t body_id,
			const struct sqlbox_body_owner *owner,
			struct sqlbox_body **body_r);
ssize_t sqlbox_db_body_read(struct sqlbox_body *body, uoff_t offset,
			    void *buf, size_t size);
void sqlbox_db_body_close(struct sqlbox_body **body);

/* The last error. */
enum sqlbox_db_error sqlbox_db_get_error(struct sqlbox_db *db,
					 const char **error_r);
/* For backends: remember an error (also logged at debug level). */
void sqlbox_db_set_error(struct sqlbox_db *db, enum sqlbox_db_error error,
			 const char *fmt, ...) ATTR_FORMAT(3, 4);
void sqlbox_db_clear_error(struct sqlbox_db *db);

/* Creates the schema or upgrades it to SQLBOX_SCHEMA_VERSION; refuses a
   newer one. max_version limits the upgrade (tests); 0 = current. */
int sqlbox_schema_update(struct sqlbox_db *db, int max_version);

#endif
