/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "istream.h"
#include "file-lock.h"
#include "mkdir-parents.h"
#include "eacces-error.h"
#include "pop3ext-state.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sqlite3.h>

/* how long a writer waits for another one's transaction */
#define POP3EXT_LEDGER_BUSY_TIMEOUT_MSECS (30*1000)
#define POP3EXT_LEDGER_SCHEMA_VERSION 1
/* a line of the old logs longer than this is not ours */
#define POP3EXT_STATE_MAX_LINE 8192
#define POP3EXT_STATE_VERSION "1"

struct pop3ext_state {
	char *dir, *path;
	struct event *event;
	sqlite3 *db;
	/* the open failed: every call fails with this */
	char *open_error;
};

static const char *const ledger_schema =
	"CREATE TABLE retrievals ("
	" id INTEGER PRIMARY KEY,"
	" uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" guid TEXT NOT NULL, time INTEGER NOT NULL,"
	" UNIQUE (uidvalidity, uid, guid));"
	"CREATE TABLE held ("
	" id INTEGER PRIMARY KEY,"
	" mailbox_guid TEXT NOT NULL, mailbox TEXT NOT NULL,"
	" uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" guid TEXT NOT NULL,"
	" save_date INTEGER NOT NULL, held_time INTEGER NOT NULL,"
	" reason TEXT NOT NULL CHECK (reason IN ('legal_hold', 'min_age')),"
	" state TEXT NOT NULL CHECK (state IN ('intent', 'committed')),"
	" UNIQUE (mailbox_guid, mailbox, guid, uidvalidity, uid));"
	"CREATE TABLE first_login ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" time INTEGER NOT NULL, uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL);"
	"PRAGMA user_version = 1;";

struct pop3ext_state *
pop3ext_state_init(const char *dir, const char *ledger_path,
		   struct event *event)
{
	struct pop3ext_state *state;

	state = i_new(struct pop3ext_state, 1);
	state->dir = i_strdup(dir);
	state->path = ledger_path != NULL ? i_strdup(ledger_path) :
		i_strconcat(dir, "/ledger.db", NULL);
	state->event = event;
	event_ref(event);
	return state;
}

void pop3ext_state_deinit(struct pop3ext_state **_state)
{
	struct pop3ext_state *state = *_state;

	if (state == NULL)
		return;
	*_state = NULL;
	if (state->db != NULL)
		(void)sqlite3_close(state->db);
	event_unref(&state->event);
	i_free(state->open_error);
	i_free(state->path);
	i_free(state->dir);
	i_free(state);
}

const char *pop3ext_state_dir(struct pop3ext_state *state)
{
	return state->dir;
}

const char *pop3ext_state_ledger_path(struct pop3ext_state *state)
{
	return state->path;
}

static const char *state_path(struct pop3ext_state *state, const char *name)
{
	return t_strconcat(state->dir, "/", name, NULL);
}

static const char *errno_error(const char *func, const char *path)
{
	if (errno == EACCES)
		return eacces_error_get(func, path);
	return t_strdup_printf("%s(%s) failed: %m", func, path);
}

static int state_mkdir(const char *dir, const char **error_r)
{
	if (mkdir_parents(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = errno_error("mkdir", dir);
		return -1;
	}
	return 0;
}

static const char *const legacy_files[] = {
	"retrieved.log", "retrieved.offset", "held.log", "first-login"
};

bool pop3ext_state_exists(struct pop3ext_state *state)
{
	struct stat st;
	unsigned int i;

	if (stat(state->path, &st) == 0 || errno != ENOENT)
		return TRUE;
	for (i = 0; i < N_ELEMENTS(legacy_files); i++) {
		if (stat(state_path(state, legacy_files[i]), &st) == 0 ||
		    errno != ENOENT)
			return TRUE;
	}
	return FALSE;
}

static const char *ledger_error(struct pop3ext_state *state)
{
	int code = sqlite3_extended_errcode(state->db);

	return t_strdup_printf("Ledger %s: %s (SQLite error %d)%s",
		state->path, sqlite3_errmsg(state->db), code,
		(code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB ?
		" - the file is damaged: restore it from a backup, or move "
		"it away to start an empty ledger" : "");
}

static int ledger_exec(struct pop3ext_state *state, const char *sql,
		       const char **error_r)
{
	if (sqlite3_exec(state->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = ledger_error(state);
		return -1;
	}
	return 0;
}

static int ledger_begin(struct pop3ext_state *state, const char **error_r)
{
	return ledger_exec(state, "BEGIN IMMEDIATE", error_r);
}

static int ledger_end(struct pop3ext_state *state, int ret,
		      const char **error_r)
{
	if (ret == 0)
		return ledger_exec(state, "COMMIT", error_r);
	(void)sqlite3_exec(state->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int ledger_prepare(struct pop3ext_state *state, const char *sql,
			  sqlite3_stmt **stmt_r, const char **error_r)
{
	if (sqlite3_prepare_v2(state->db, sql, -1, stmt_r, NULL) !=
	    SQLITE_OK) {
		*error_r = ledger_error(state);
		return -1;
	}
	return 0;
}

/* Steps a statement that returns no rows, and resets it. */
static int ledger_step_done(struct pop3ext_state *state, sqlite3_stmt *stmt,
			    const char **error_r)
{
	int ret = sqlite3_step(stmt);

	if (ret != SQLITE_DONE) {
		*error_r = ledger_error(state);
		(void)sqlite3_reset(stmt);
		return -1;
	}
	(void)sqlite3_reset(stmt);
	(void)sqlite3_clear_bindings(stmt);
	return 0;
}

static void bind_text(sqlite3_stmt *stmt, int idx, const char *str)
{
	(void)sqlite3_bind_text(stmt, idx, str, -1, SQLITE_TRANSIENT);
}

static const char *column_text(sqlite3_stmt *stmt, int idx, pool_t pool)
{
	const unsigned char *str = sqlite3_column_text(stmt, idx);

	return p_strdup(pool, str == NULL ? "" : (const char *)str);
}

typedef int state_line_callback_t(const char *line, uoff_t end_offset,
				  void *context);

/* Calls callback for each complete line from offset on; a callback
   returning 0 stops the reading. A line longer than
   POP3EXT_STATE_MAX_LINE is not ours: it is reported and skipped, or with
   keep_long_lines, passed on whole (to be kept by a rewrite). Returns 0,
   or -1 on I/O error. */
static int state_read_lines(struct pop3ext_state *state, const char *name,
			    uoff_t offset, state_line_callback_t *callback,
			    void *context, bool keep_long_lines,
			    const char **error_r)
{
	const char *path = state_path(state, name);
	struct istream *input;
	const unsigned char *data, *lf;
	string_t *long_line = NULL;
	size_t size, scanned = 0;
	unsigned int linenum = 0;
	bool skipping = FALSE;
	int fd, ret;

	fd = open(path, O_RDONLY);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		*error_r = errno_error("open", path);
		return -1;
	}
	input = i_stream_create_fd_autoclose(&fd, POP3EXT_STATE_MAX_LINE);
	i_stream_seek(input, offset);
	while ((ret = i_stream_read_data(input, &data, &size, scanned)) != -1) {
		lf = memchr(data + scanned, '\n', size - scanned);
		if (lf == NULL) {
			if (ret != -2) {
				scanned = size;
				continue;
			}
			/* the buffer is full: a line too long to be ours */
			if (!skipping) {
				skipping = TRUE;
				e_error(state->event, "%s: line %u is too long "
					"- %s", path, linenum + 1,
					keep_long_lines ? "kept as it is" :
					"skipping it");
				if (keep_long_lines)
					long_line = str_new(default_pool, size * 2);
			}
			if (long_line != NULL)
				str_append_data(long_line, data, size);
			i_stream_skip(input, size);
			scanned = 0;
			continue;
		}
		size = lf - data;
		scanned = 0;
		linenum++;
		if (skipping) {
			skipping = FALSE;
			if (long_line == NULL) {
				i_stream_skip(input, size + 1);
				continue;
			}
			str_append_data(long_line, data, size);
			i_stream_skip(input, size + 1);
			ret = callback(str_c(long_line), input->v_offset,
				       context);
			str_free(&long_line);
		} else {
			const char *line = t_strndup(data, size);

			i_stream_skip(input, size + 1);
			ret = callback(line, input->v_offset, context);
		}
		if (ret == 0)
			break;
	}
	if (long_line != NULL)
		str_free(&long_line);
	ret = 0;
	if (input->stream_errno != 0) {
		*error_r = t_strdup_printf("read(%s) failed: %s", path,
					   i_stream_get_error(input));
		ret = -1;
	}
	i_stream_destroy(&input);
	return ret;
}
static int parse_time(const char *str, time_t *time_r)
{
	uintmax_t num;

	if (str_to_uintmax(str, &num) < 0 || num > (uintmax_t)1 << 40)
		return -1;
	*time_r = (time_t)num;
	return 0;
}

static bool guid_is_valid(const char *guid)
{
	/* storages' GUIDs are printable and without spaces; keep it so */
	if (*guid == '\0' || strlen(guid) > 255)
		return FALSE;
	for (; *guid != '\0'; guid++) {
		if ((unsigned char)*guid <= 0x20 || *guid == 0x7f)
			return FALSE;
	}
	return TRUE;
}

int pop3ext_state_parse_retrieval(const char *line, pool_t pool,
				  struct pop3ext_retrieval *r_r)
{
	const char *const *args = t_strsplit_tabescaped(line);

	i_zero(r_r);
	if (str_array_length(args) != 5 ||
	    strcmp(args[0], POP3EXT_STATE_VERSION) != 0 ||
	    str_to_uint32(args[1], &r_r->uidvalidity) < 0 ||
	    str_to_uint32(args[2], &r_r->uid) < 0 || r_r->uid == 0 ||
	    !guid_is_valid(args[3]) || parse_time(args[4], &r_r->time) < 0)
		return -1;
	r_r->guid = p_strdup(pool, args[3]);
	return 0;
}

int pop3ext_state_parse_held(const char *line, pool_t pool,
			     struct pop3ext_held *h_r)
{
	const char *const *args = t_strsplit_tabescaped(line);

	i_zero(h_r);
	if (str_array_length(args) != 8 ||
	    strcmp(args[0], POP3EXT_STATE_VERSION) != 0 || args[1][0] == '\0' ||
	    str_to_uint32(args[2], &h_r->uidvalidity) < 0 ||
	    str_to_uint32(args[3], &h_r->uid) < 0 || h_r->uid == 0 ||
	    !guid_is_valid(args[4]) ||
	    parse_time(args[5], &h_r->save_date) < 0 ||
	    parse_time(args[6], &h_r->held_time) < 0 ||
	    (strcmp(args[7], "legal_hold") != 0 &&
	     strcmp(args[7], "min_age") != 0))
		return -1;
	h_r->mailbox = p_strdup(pool, args[1]);
	h_r->guid = p_strdup(pool, args[4]);
	h_r->reason = p_strdup(pool, args[7]);
	return 0;
}

int pop3ext_state_sweep_lock(struct pop3ext_state *state,
			     struct file_lock **lock_r, const char **error_r)
{
	/* flock: per open file, so that it excludes another sweep in the
	   same process too (doveadm -A with several users sharing a
	   home) */
	struct file_lock_settings set = {
		.lock_method = FILE_LOCK_METHOD_FLOCK,
		.close_on_free = TRUE,
	};
	const char *path, *error;
	int fd, ret;

	*lock_r = NULL;
	if (state_mkdir(state->dir, error_r) < 0)
		return -1;
	path = state_path(state, "sweep.lock");
	fd = open(path, O_RDWR | O_CREAT, 0600);
	if (fd == -1) {
		*error_r = errno_error("open", path);
		return -1;
	}
	ret = file_try_lock(fd, path, F_WRLCK, &set, lock_r, &error);
	if (ret <= 0) {
		if (ret < 0)
			*error_r = error;
		i_close_fd(&fd);
	}
	return ret;
}

/*
 * Writing records
 */

#define RETRIEVAL_INSERT \
	"INSERT OR IGNORE INTO retrievals (uidvalidity, uid, guid, time) " \
	"VALUES (?, ?, ?, ?)"
#define HELD_INSERT(state) \
	"INSERT OR IGNORE INTO held (mailbox_guid, mailbox, uidvalidity, " \
	"uid, guid, save_date, held_time, reason, state) " \
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, '"state"')"

static int
insert_retrievals(struct pop3ext_state *state,
		  const ARRAY_TYPE(pop3ext_retrieval) *entries,
		  const char **error_r)
{
	const struct pop3ext_retrieval *r;
	sqlite3_stmt *stmt;
	int ret = 0;

	if (ledger_prepare(state, RETRIEVAL_INSERT, &stmt, error_r) < 0)
		return -1;
	array_foreach(entries, r) {
		(void)sqlite3_bind_int64(stmt, 1, r->uidvalidity);
		(void)sqlite3_bind_int64(stmt, 2, r->uid);
		bind_text(stmt, 3, r->guid);
		(void)sqlite3_bind_int64(stmt, 4, r->time);
		if ((ret = ledger_step_done(state, stmt, error_r)) < 0)
			break;
	}
	(void)sqlite3_finalize(stmt);
	return ret;
}

static void bind_held(sqlite3_stmt *stmt, const struct pop3ext_held *h)
{
	bind_text(stmt, 1, h->mailbox_guid == NULL ? "" : h->mailbox_guid);
	bind_text(stmt, 2, h->mailbox);
	(void)sqlite3_bind_int64(stmt, 3, h->uidvalidity);
	(void)sqlite3_bind_int64(stmt, 4, h->uid);
	bind_text(stmt, 5, h->guid);
	(void)sqlite3_bind_int64(stmt, 6, h->save_date);
	(void)sqlite3_bind_int64(stmt, 7, h->held_time);
	bind_text(stmt, 8, h->reason);
}

/* Inserts entries (in the state the statement says); sets the ids of
   those inserted if set_ids. */
static int insert_held(struct pop3ext_state *state, const char *sql,
		       ARRAY_TYPE(pop3ext_held) *entries, bool set_ids,
		       const char **error_r)
{
	struct pop3ext_held *h;
	sqlite3_stmt *stmt;
	int ret = 0;

	if (ledger_prepare(state, sql, &stmt, error_r) < 0)
		return -1;
	array_foreach_modifiable(entries, h) {
		bind_held(stmt, h);
		if ((ret = ledger_step_done(state, stmt, error_r)) < 0)
			break;
		if (set_ids) {
			h->id = sqlite3_changes(state->db) == 0 ? 0 :
				sqlite3_last_insert_rowid(state->db);
		}
	}
	(void)sqlite3_finalize(stmt);
	return ret;
}

static int insert_first_login(struct pop3ext_state *state,
			      const struct pop3ext_first_login *rec,
			      const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (ledger_prepare(state, "INSERT OR IGNORE INTO first_login "
			   "(id, time, uidvalidity, uidnext) VALUES (1, ?, ?, ?)",
			   &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, rec->time);
	(void)sqlite3_bind_int64(stmt, 2, rec->uidvalidity);
	(void)sqlite3_bind_int64(stmt, 3, rec->uidnext);
	ret = ledger_step_done(state, stmt, error_r);
	(void)sqlite3_finalize(stmt);
	return ret;
}

/*
 * Importing the logs of older versions
 */

struct import_ctx {
	struct pop3ext_state *state;
	const char *name;
	pool_t pool;
	ARRAY_TYPE(pop3ext_retrieval) retrievals;
	ARRAY_TYPE(pop3ext_held) held;
};

static int import_line(const char *line, uoff_t end_offset ATTR_UNUSED,
		       void *context)
{
	struct import_ctx *ctx = context;
	struct pop3ext_retrieval r;
	struct pop3ext_held h;
	int ret;

	if (ctx->name[0] == 'r') {
		ret = pop3ext_state_parse_retrieval(line, ctx->pool, &r);
		if (ret == 0)
			array_push_back(&ctx->retrievals, &r);
	} else {
		ret = pop3ext_state_parse_held(line, ctx->pool, &h);
		if (ret == 0) {
			h.mailbox_guid = "";
			array_push_back(&ctx->held, &h);
		}
	}
	if (ret < 0) {
		/* a skipped retrieval only starts no expiry clock; a held
		   message stays pending (hidden), never expunged */
		e_error(ctx->state->event, "%s/%s: invalid line not imported: "
			"%s", ctx->state->dir, ctx->name,
			str_sanitize(line, 100));
	}
	return 1;
}

/* Reads a small whole file; returns 1, 0 if it does not exist, -1. */
static int state_read_small(struct pop3ext_state *state, const char *name,
			    const char **data_r, const char **error_r)
{
	const char *path = state_path(state, name);
	char buf[64];
	ssize_t ret;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		*error_r = errno_error("open", path);
		return -1;
	}
	ret = read(fd, buf, sizeof(buf) - 1);
	if (ret < 0)
		*error_r = errno_error("read", path);
	i_close_fd(&fd);
	if (ret < 0)
		return -1;
	buf[ret] = '\0';
	*data_r = t_strcut(buf, '\n');
	return 1;
}

static int import_first_login(struct pop3ext_state *state,
			      const char **error_r)
{
	struct pop3ext_first_login rec;
	const char *data, *const *args;
	int ret;

	ret = state_read_small(state, "first-login", &data, error_r);
	if (ret <= 0)
		return ret;
	args = t_strsplit(data, " ");
	if (str_array_length(args) != 3 ||
	    parse_time(args[0], &rec.time) < 0 ||
	    str_to_uint32(args[1], &rec.uidvalidity) < 0 ||
	    str_to_uint32(args[2], &rec.uidnext) < 0) {
		*error_r = t_strdup_printf("%s/first-login: invalid content "
			"'%s' - not imported", state->dir,
			str_sanitize(data, 40));
		return -1;
	}
	return insert_first_login(state, &rec, error_r) < 0 ? -1 : 1;
}

/* The part of retrieved.log the sweep had not consumed. */
static int import_retrieved_offset(struct pop3ext_state *state,
				   uoff_t *offset_r, const char **error_r)
{
	const char *data;
	int ret;

	*offset_r = 0;
	ret = state_read_small(state, "retrieved.offset", &data, error_r);
	if (ret <= 0)
		return ret;
	if (str_to_uoff(data, offset_r) < 0) {
		/* importing the whole log is safe: a retrieval already
		   swept finds its message gone */
		e_error(state->event, "%s/retrieved.offset: invalid content "
			"'%s' - importing all of retrieved.log", state->dir,
			str_sanitize(data, 40));
		*offset_r = 0;
	}
	return 0;
}

static int ledger_import(struct pop3ext_state *state, bool *imported_r,
			 const char **error_r)
{
	struct import_ctx ctx;
	struct stat st;
	uoff_t offset;
	int ret = 0;

	*imported_r = FALSE;
	i_zero(&ctx);
	ctx.state = state;
	ctx.pool = pool_alloconly_create("pop3ext import", 4096);
	p_array_init(&ctx.retrievals, ctx.pool, 64);
	p_array_init(&ctx.held, ctx.pool, 64);

	if (import_retrieved_offset(state, &offset, error_r) < 0)
		ret = -1;
	if (ret == 0 && stat(state_path(state, "retrieved.log"), &st) == 0 &&
	    (uoff_t)st.st_size < offset) {
		/* the offset of another file */
		offset = 0;
	}
	ctx.name = "retrieved.log";
	if (ret == 0)
		ret = state_read_lines(state, ctx.name, offset, import_line,
				       &ctx, FALSE, error_r);
	ctx.name = "held.log";
	if (ret == 0)
		ret = state_read_lines(state, ctx.name, 0, import_line,
				       &ctx, FALSE, error_r);
	if (ret == 0)
		ret = insert_retrievals(state, &ctx.retrievals, error_r);
	if (ret == 0)
		ret = insert_held(state, HELD_INSERT("committed"), &ctx.held,
				  FALSE, error_r);
	if (ret == 0 && (ret = import_first_login(state, error_r)) > 0) {
		*imported_r = TRUE;
		ret = 0;
	}
	if (array_count(&ctx.retrievals) > 0 || array_count(&ctx.held) > 0)
		*imported_r = TRUE;
	if (ret == 0 && *imported_r) {
		e_info(state->event, "%s: imported %u retrieval(s) and %u held "
		       "expunge(s) from %s", state->path,
		       array_count(&ctx.retrievals), array_count(&ctx.held),
		       state->dir);
	}
	pool_unref(&ctx.pool);
	return ret;
}

static void ledger_rename_imported(struct pop3ext_state *state)
{
	const char *path;
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(legacy_files); i++) {
		path = state_path(state, legacy_files[i]);
		if (rename(path, t_strconcat(path, ".imported", NULL)) < 0 &&
		    errno != ENOENT) {
			e_error(state->event, "rename(%s) failed: %m", path);
		}
	}
}

/*
 * Opening
 */

static int ledger_get_int(struct pop3ext_state *state, const char *sql,
			  int *value_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (ledger_prepare(state, sql, &stmt, error_r) < 0)
		return -1;
	ret = sqlite3_step(stmt);
	if (ret == SQLITE_ROW) {
		*value_r = sqlite3_column_int(stmt, 0);
		ret = 0;
	} else {
		*error_r = ledger_error(state);
		ret = -1;
	}
	(void)sqlite3_finalize(stmt);
	return ret;
}

static int ledger_open(struct pop3ext_state *state, const char **error_r)
{
	const char *dir, *p;
	bool imported = FALSE;
	int version, ret;

	p = strrchr(state->path, '/');
	dir = p == NULL ? "." : t_strdup_until(state->path, p);
	if (state_mkdir(dir, error_r) < 0)
		return -1;
	if (sqlite3_open_v2(state->path, &state->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		if (state->db == NULL) {
			*error_r = t_strdup_printf("Ledger %s: out of memory",
						   state->path);
			return -1;
		}
		*error_r = ledger_error(state);
		return -1;
	}
	(void)sqlite3_busy_timeout(state->db,
				   POP3EXT_LEDGER_BUSY_TIMEOUT_MSECS);
	/* WAL: readers never wait; FULL: a commit is on disk (and the WAL
	   file's directory entry synced) before it returns */
	if (ledger_exec(state, "PRAGMA journal_mode = WAL", error_r) < 0 ||
	    ledger_exec(state, "PRAGMA synchronous = FULL", error_r) < 0 ||
	    ledger_exec(state, "PRAGMA foreign_keys = OFF", error_r) < 0 ||
	    ledger_begin(state, error_r) < 0)
		return -1;
	ret = ledger_get_int(state, "PRAGMA user_version", &version, error_r);
	if (ret == 0 && version == 0) {
		/* new: the schema, and what older versions wrote */
		ret = ledger_exec(state, ledger_schema, error_r);
		if (ret == 0)
			ret = ledger_import(state, &imported, error_r);
	} else if (ret == 0 && version != POP3EXT_LEDGER_SCHEMA_VERSION) {
		*error_r = t_strdup_printf("Ledger %s: schema version %d, "
			"expected %d (written by another version of pop3ext?)",
			state->path, version, POP3EXT_LEDGER_SCHEMA_VERSION);
		ret = -1;
	}
	if (ledger_end(state, ret, error_r) < 0)
		return -1;
	if (imported)
		ledger_rename_imported(state);
	return 0;
}

int pop3ext_state_open(struct pop3ext_state *state, const char **error_r)
{
	const char *error;

	if (state->open_error != NULL) {
		*error_r = t_strdup(state->open_error);
		return -1;
	}
	if (state->db != NULL)
		return 0;
	if (ledger_open(state, &error) < 0) {
		if (state->db != NULL) {
			(void)sqlite3_close(state->db);
			state->db = NULL;
		}
		state->open_error = i_strdup(error);
		*error_r = error;
		return -1;
	}
	return 0;
}

/*
 * The API
 */

int pop3ext_state_append_retrievals(struct pop3ext_state *state,
				    const ARRAY_TYPE(pop3ext_retrieval) *entries,
				    const char **error_r)
{
	int ret;

	if (array_count(entries) == 0)
		return 0;
	if (pop3ext_state_open(state, error_r) < 0 ||
	    ledger_begin(state, error_r) < 0)
		return -1;
	ret = insert_retrievals(state, entries, error_r);
	return ledger_end(state, ret, error_r);
}

int pop3ext_state_read_retrievals(struct pop3ext_state *state, pool_t pool,
				  int64_t *after_id, unsigned int max,
				  ARRAY_TYPE(pop3ext_retrieval) *entries_r,
				  const char **error_r)
{
	struct pop3ext_retrieval *r;
	sqlite3_stmt *stmt;
	int ret;

	if (pop3ext_state_open(state, error_r) < 0)
		return -1;
	if (ledger_prepare(state, "SELECT id, uidvalidity, uid, guid, time "
			   "FROM retrievals WHERE id > ? ORDER BY id LIMIT ?",
			   &stmt, error_r) < 0)
		return -1;
	(void)sqlite3_bind_int64(stmt, 1, *after_id);
	(void)sqlite3_bind_int64(stmt, 2, max == 0 ? -1 : (int64_t)max);
	while ((ret = sqlite3_step(stmt)) == SQLITE_ROW) {
		r = array_append_space(entries_r);
		r->id = sqlite3_column_int64(stmt, 0);
		r->uidvalidity = sqlite3_column_int64(stmt, 1);
		r->uid = sqlite3_column_int64(stmt, 2);
		r->guid = column_text(stmt, 3, pool);
		r->time = sqlite3_column_int64(stmt, 4);
		*after_id = r->id;
	}
	if (ret != SQLITE_DONE) {
		*error_r = ledger_error(state);
		(void)sqlite3_finalize(stmt);
		return -1;
	}
	(void)sqlite3_finalize(stmt);
	return 0;
}

/* Runs sql (with one parameter, the row id) for each of the count records
   at records, stride bytes apart, whose int64_t id is at id_offset in
   each; records without an id (0) are skipped. One transaction. */
static int delete_ids(struct pop3ext_state *state, const char *sql,
		      const void *records, unsigned int count, size_t stride,
		      size_t id_offset, const char **error_r)
{
	const unsigned char *rec = records;
	sqlite3_stmt *stmt;
	unsigned int i;
	int64_t id;
	int ret = 0;

	if (count == 0)
		return 0;
	if (pop3ext_state_open(state, error_r) < 0 ||
	    ledger_begin(state, error_r) < 0)
		return -1;
	if (ledger_prepare(state, sql, &stmt, error_r) < 0)
		return ledger_end(state, -1, error_r);
	for (i = 0; i < count && ret == 0; i++) {
		memcpy(&id, rec + i * stride + id_offset, sizeof(id));
		if (id == 0)
			continue;
		(void)sqlite3_bind_int64(stmt, 1, id);
		ret = ledger_step_done(state, stmt, error_r);
	}
	(void)sqlite3_finalize(stmt);
	return ledger_end(state, ret, error_r);
}

int pop3ext_state_consume_retrievals(struct pop3ext_state *state,
				     const ARRAY_TYPE(pop3ext_retrieval) *done,
				     const char **error_r)
{
	if (array_count(done) == 0)
		return 0;
	return delete_ids(state, "DELETE FROM retrievals WHERE id = ?",
			  array_front(done), array_count(done),
			  sizeof(struct pop3ext_retrieval),
			  offsetof(struct pop3ext_retrieval, id), error_r);
}

int pop3ext_state_append_held(struct pop3ext_state *state,
			      ARRAY_TYPE(pop3ext_held) *entries,
			      const char **error_r)
{
	int ret;

	if (array_count(entries) == 0)
		return 0;
	if (pop3ext_state_open(state, error_r) < 0 ||
	    ledger_begin(state, error_r) < 0)
		return -1;
	ret = insert_held(state, HELD_INSERT("intent"), entries, TRUE,
			  error_r);
	return ledger_end(state, ret, error_r);
}

int pop3ext_state_reconcile_held(struct pop3ext_state *state,
				 const ARRAY_TYPE(pop3ext_held) *entries,
				 bool committed, const char **error_r)
{
	const struct pop3ext_held *h;
	ARRAY_TYPE(pop3ext_held) voided;
	sqlite3_stmt *stmt;
	int ret = 0;

	if (array_count(entries) == 0)
		return 0;
	if (!committed) {
		return delete_ids(state, "DELETE FROM held "
				  "WHERE id = ? AND state = 'intent'",
				  array_front(entries), array_count(entries),
				  sizeof(struct pop3ext_held),
				  offsetof(struct pop3ext_held, id), error_r);
	}
	if (pop3ext_state_open(state, error_r) < 0 ||
	    ledger_begin(state, error_r) < 0)
		return -1;
	if (ledger_prepare(state, "UPDATE held SET state = 'committed' "
			   "WHERE id = ?", &stmt, error_r) < 0)
		return ledger_end(state, -1, error_r);
	t_array_init(&voided, 4);
	array_foreach(entries, h) {
		if (h->id == 0)
			continue;
		(void)sqlite3_bind_int64(stmt, 1, h->id);
		if ((ret = ledger_step_done(state, stmt, error_r)) < 0)
			break;
		if (sqlite3_changes(state->db) == 0) {
			/* a sweep found the message not yet pending and
			   voided the intent: it is pending now */
			array_push_back(&voided, h);
		}
	}
	(void)sqlite3_finalize(stmt);
	if (ret == 0 && array_count(&voided) > 0) {
		ret = insert_held(state, HELD_INSERT("committed"), &voided,
				  FALSE, error_r);
	}
	return ledger_end(state, ret, error_r);
}

int pop3ext_state_read_held(struct pop3ext_state *state, pool_t pool,
			    ARRAY_TYPE(pop3ext_held) *entries_r,
			    const char **error_r)
{
	struct pop3ext_held *h;
	sqlite3_stmt *stmt;
	int ret;

	if (pop3ext_state_open(state, error_r) < 0)
		return -1;
	if (ledger_prepare(state, "SELECT id, mailbox_guid, mailbox, "
			   "uidvalidity, uid, guid, save_date, held_time, "
			   "reason, state FROM held ORDER BY id",
			   &stmt, error_r) < 0)
		return -1;
	while ((ret = sqlite3_step(stmt)) == SQLITE_ROW) {
		h = array_append_space(entries_r);
		h->id = sqlite3_column_int64(stmt, 0);
		h->mailbox_guid = column_text(stmt, 1, pool);
		h->mailbox = column_text(stmt, 2, pool);
		h->uidvalidity = sqlite3_column_int64(stmt, 3);
		h->uid = sqlite3_column_int64(stmt, 4);
		h->guid = column_text(stmt, 5, pool);
		h->save_date = sqlite3_column_int64(stmt, 6);
		h->held_time = sqlite3_column_int64(stmt, 7);
		h->reason = column_text(stmt, 8, pool);
		h->intent = strcmp((const char *)sqlite3_column_text(stmt, 9),
				   "intent") == 0;
	}
	if (ret != SQLITE_DONE) {
		*error_r = ledger_error(state);
		(void)sqlite3_finalize(stmt);
		return -1;
	}
	(void)sqlite3_finalize(stmt);
	return 0;
}

int pop3ext_state_remove_held(struct pop3ext_state *state,
			      const ARRAY_TYPE(pop3ext_held) *done,
			      const char **error_r)
{
	if (array_count(done) == 0)
		return 0;
	return delete_ids(state, "DELETE FROM held WHERE id = ?",
			  array_front(done), array_count(done),
			  sizeof(struct pop3ext_held),
			  offsetof(struct pop3ext_held, id), error_r);
}

int pop3ext_state_read_first_login(struct pop3ext_state *state,
				   struct pop3ext_first_login *rec_r,
				   const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(rec_r);
	if (pop3ext_state_open(state, error_r) < 0)
		return -1;
	if (ledger_prepare(state, "SELECT time, uidvalidity, uidnext "
			   "FROM first_login WHERE id = 1", &stmt,
			   error_r) < 0)
		return -1;
	ret = sqlite3_step(stmt);
	if (ret == SQLITE_ROW) {
		rec_r->time = sqlite3_column_int64(stmt, 0);
		rec_r->uidvalidity = sqlite3_column_int64(stmt, 1);
		rec_r->uidnext = sqlite3_column_int64(stmt, 2);
		ret = 1;
	} else if (ret == SQLITE_DONE) {
		ret = 0;
	} else {
		*error_r = ledger_error(state);
		ret = -1;
	}
	(void)sqlite3_finalize(stmt);
	return ret;
}

int pop3ext_state_write_first_login(struct pop3ext_state *state,
				    struct pop3ext_first_login *rec,
				    const char **error_r)
{
	int ret;

	if (pop3ext_state_open(state, error_r) < 0 ||
	    ledger_begin(state, error_r) < 0)
		return -1;
	/* of two first logins at once, one records itself and the other
	   reads that */
	ret = insert_first_login(state, rec, error_r);
	if (ret == 0) {
		ret = pop3ext_state_read_first_login(state, rec, error_r);
		if (ret == 0) {
			*error_r = t_strdup_printf("Ledger %s: first login "
				"not recorded", state->path);
			ret = -1;
		} else if (ret > 0) {
			ret = 0;
		}
	}
	return ledger_end(state, ret, error_r);
}
