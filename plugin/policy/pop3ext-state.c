/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "istream.h"
#include "file-lock.h"
#include "mkdir-parents.h"
#include "write-full.h"
#include "eacces-error.h"
#include "hostpid.h"
#include "pop3ext-state.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#define POP3EXT_STATE_LOCK_TIMEOUT_SECS 30
/* a line longer than this is not ours */
#define POP3EXT_STATE_MAX_LINE 8192
/* rewrite retrieved.log once this much of it is consumed */
#define POP3EXT_STATE_COMPACT_MIN_BYTES (64*1024)
#define POP3EXT_STATE_VERSION "1"

struct pop3ext_state {
	char *dir;
	struct event *event;
};

struct pop3ext_state *pop3ext_state_init(const char *dir, struct event *event)
{
	struct pop3ext_state *state;

	state = i_new(struct pop3ext_state, 1);
	state->dir = i_strdup(dir);
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
	event_unref(&state->event);
	i_free(state->dir);
	i_free(state);
}

const char *pop3ext_state_dir(struct pop3ext_state *state)
{
	return state->dir;
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

static int state_mkdir(struct pop3ext_state *state, const char **error_r)
{
	if (mkdir_parents(state->dir, 0700) < 0 && errno != EEXIST) {
		*error_r = errno_error("mkdir", state->dir);
		return -1;
	}
	return 0;
}

static int state_lock(struct pop3ext_state *state, struct file_lock **lock_r,
		      const char **error_r)
{
	struct file_lock_settings set = {
		.lock_method = FILE_LOCK_METHOD_FCNTL,
		.close_on_free = TRUE,
	};
	const char *path, *error;
	int fd, ret;

	if (state_mkdir(state, error_r) < 0)
		return -1;
	path = state_path(state, "lock");
	fd = open(path, O_RDWR | O_CREAT, 0600);
	if (fd == -1) {
		*error_r = errno_error("open", path);
		return -1;
	}
	ret = file_wait_lock(fd, path, F_WRLCK, &set,
			     POP3EXT_STATE_LOCK_TIMEOUT_SECS, lock_r, &error);
	if (ret <= 0) {
		*error_r = ret < 0 ? error : t_strdup_printf(
			"Timed out locking %s", path);
		i_close_fd(&fd);
		return -1;
	}
	return 0;
}

/* The offset just past the last LF in fd's first size bytes (0 if none). */
static int state_find_last_lf(int fd, off_t size, off_t *end_r)
{
	char buf[4096];
	off_t pos = size;
	size_t n;
	ssize_t ret;

	while (pos > 0) {
		n = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);
		pos -= n;
		ret = pread(fd, buf, n, pos);
		if (ret != (ssize_t)n)
			return -1;
		while (n > 0) {
			if (buf[--n] == '\n') {
				*end_r = pos + n + 1;
				return 0;
			}
		}
	}
	*end_r = 0;
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
	if (state_mkdir(state, error_r) < 0)
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

static int state_cut_tail(struct pop3ext_state *state, int fd,
			  const char *path, off_t end, off_t size)
{
	if (ftruncate(fd, end) < 0)
		return -1;
	e_error(state->event, "%s: dropped an incomplete last line "
		"(%"PRIuUOFF_T" bytes) a crash left", path,
		(uoff_t)(size - end));
	return 0;
}

/* Appends data to path as whole lines, durably. A line a crash (or a
   full disk) cut short is cut off first: ended with a LF, a cut number
   would read as another, valid one (a retrieval in 1970). */
static int state_append(struct pop3ext_state *state, const char *name,
			const string_t *data, const char **error_r)
{
	struct file_lock *lock;
	const char *path = state_path(state, name);
	struct stat st;
	off_t end;
	int fd, ret = -1;

	if (str_len(data) == 0)
		return 0;
	if (state_lock(state, &lock, error_r) < 0)
		return -1;
	fd = open(path, O_RDWR | O_APPEND | O_CREAT, 0600);
	if (fd == -1) {
		*error_r = errno_error("open", path);
		file_lock_free(&lock);
		return -1;
	}
	if (fstat(fd, &st) < 0)
		*error_r = errno_error("fstat", path);
	else if (state_find_last_lf(fd, st.st_size, &end) < 0)
		*error_r = errno_error("pread", path);
	else if (end < st.st_size && state_cut_tail(state, fd, path, end,
						     st.st_size) < 0)
		*error_r = errno_error("ftruncate", path);
	else if (write_full(fd, str_data(data), str_len(data)) < 0)
		*error_r = errno_error("write", path);
	else if (fdatasync(fd) < 0)
		*error_r = errno_error("fdatasync", path);
	else
		ret = 0;
	if (close(fd) < 0 && ret == 0) {
		*error_r = errno_error("close", path);
		ret = -1;
	}
	file_lock_free(&lock);
	return ret;
}

/* Replaces path with data atomically. */
static int state_replace(struct pop3ext_state *state, const char *name,
			 const void *data, size_t size, const char **error_r)
{
	const char *path = state_path(state, name);
	const char *tmp = t_strconcat(path, ".tmp", NULL);
	int fd;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1) {
		*error_r = errno_error("open", tmp);
		return -1;
	}
	if (write_full(fd, data, size) < 0 || fdatasync(fd) < 0) {
		*error_r = errno_error("write", tmp);
		i_close_fd(&fd);
		i_unlink(tmp);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = errno_error("close", tmp);
		i_unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		*error_r = errno_error("rename", path);
		i_unlink(tmp);
		return -1;
	}
	return 0;
}

/*
 * Lines
 */

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

static void append_retrieval(string_t *str, const struct pop3ext_retrieval *r)
{
	str_printfa(str, POP3EXT_STATE_VERSION"\t%u\t%u\t", r->uidvalidity,
		    r->uid);
	str_append_tabescaped(str, r->guid);
	str_printfa(str, "\t%ld\n", (long)r->time);
}

static void append_held(string_t *str, const struct pop3ext_held *h)
{
	str_append(str, POP3EXT_STATE_VERSION"\t");
	str_append_tabescaped(str, h->mailbox);
	str_printfa(str, "\t%u\t%u\t", h->uidvalidity, h->uid);
	str_append_tabescaped(str, h->guid);
	str_printfa(str, "\t%ld\t%ld\t", (long)h->save_date,
		    (long)h->held_time);
	str_append_tabescaped(str, h->reason);
	str_append_c(str, '\n');
}

int pop3ext_state_append_retrievals(struct pop3ext_state *state,
				    const ARRAY_TYPE(pop3ext_retrieval) *entries,
				    const char **error_r)
{
	const struct pop3ext_retrieval *r;
	string_t *str = t_str_new(128);

	array_foreach(entries, r) {
		if (!guid_is_valid(r->guid)) {
			*error_r = t_strdup_printf("UID %u: invalid GUID '%s'",
				r->uid, str_sanitize(r->guid, 80));
			return -1;
		}
		append_retrieval(str, r);
	}
	return state_append(state, "retrieved.log", str, error_r);
}

int pop3ext_state_append_held(struct pop3ext_state *state,
			      const ARRAY_TYPE(pop3ext_held) *entries,
			      const char **error_r)
{
	const struct pop3ext_held *h;
	string_t *str = t_str_new(128);

	array_foreach(entries, h) {
		if (!guid_is_valid(h->guid)) {
			*error_r = t_strdup_printf("%s UID %u: invalid GUID "
				"'%s'", h->mailbox, h->uid,
				str_sanitize(h->guid, 80));
			return -1;
		}
		append_held(str, h);
	}
	return state_append(state, "held.log", str, error_r);
}

/*
 * Reading
 */

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

struct read_retrievals_ctx {
	struct pop3ext_state *state;
	pool_t pool;
	unsigned int max;
	ARRAY_TYPE(pop3ext_retrieval) *entries;
};

static int read_retrieval_line(const char *line, uoff_t end_offset,
			       void *context)
{
	struct read_retrievals_ctx *ctx = context;
	struct pop3ext_retrieval r;

	if (pop3ext_state_parse_retrieval(line, ctx->pool, &r) < 0) {
		e_error(ctx->state->event, "%s/retrieved.log: invalid line "
			"ignored: %s", ctx->state->dir, str_sanitize(line, 100));
		/* still counts as read, so it is consumed with its
		   neighbours */
		r.uid = 0;
	}
	r.end_offset = end_offset;
	array_push_back(ctx->entries, &r);
	return ctx->max == 0 || array_count(ctx->entries) < ctx->max ? 1 : 0;
}

static int read_consumed_offset(struct pop3ext_state *state, uoff_t *offset_r,
				const char **error_r)
{
	const char *data;
	int ret;

	*offset_r = 0;
	ret = state_read_small(state, "retrieved.offset", &data, error_r);
	if (ret <= 0)
		return ret;
	if (str_to_uoff(data, offset_r) < 0) {
		e_error(state->event, "%s/retrieved.offset: invalid content "
			"'%s' - reading the retrieval log from the start",
			state->dir, str_sanitize(data, 40));
		*offset_r = 0;
	} else if (*offset_r > 0) {
		/* An offset past the end is one of an older, longer log
		   (a crash during compaction, an older pop3ext): it means
		   nothing in this one. Read it all (re-reading entries only
		   delays them; skipping them would keep them for ever). */
		const char *path = state_path(state, "retrieved.log");
		struct stat st;

		if (stat(path, &st) < 0) {
			if (errno != ENOENT) {
				*error_r = errno_error("stat", path);
				return -1;
			}
			st.st_size = 0;
		}
		if (*offset_r > (uoff_t)st.st_size) {
			e_error(state->event, "%s/retrieved.offset: %"PRIuUOFF_T
				" is beyond the log's end (%"PRIuUOFF_T") - "
				"reading the retrieval log from the start",
				state->dir, *offset_r, (uoff_t)st.st_size);
			*offset_r = 0;
		}
	}
	return 0;
}

int pop3ext_state_read_retrievals(struct pop3ext_state *state, pool_t pool,
				  uoff_t *offset, unsigned int max,
				  ARRAY_TYPE(pop3ext_retrieval) *entries_r,
				  const char **error_r)
{
	struct read_retrievals_ctx ctx = {
		.state = state, .pool = pool, .max = max, .entries = entries_r
	};
	unsigned int count = array_count(entries_r);

	if (*offset == (uoff_t)-1 &&
	    read_consumed_offset(state, offset, error_r) < 0)
		return -1;
	ctx.max = max == 0 ? 0 : count + max;
	if (state_read_lines(state, "retrieved.log", *offset,
			     read_retrieval_line, &ctx, FALSE, error_r) < 0)
		return -1;
	if (array_count(entries_r) > count)
		*offset = (array_back(entries_r))->end_offset;
	return 0;
}

static int copy_tail(struct pop3ext_state *state, uoff_t offset,
		     const char **error_r)
{
	const char *path = state_path(state, "retrieved.log");
	buffer_t *buf;
	struct stat st;
	ssize_t ret;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd == -1) {
		*error_r = errno_error("open", path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = errno_error("fstat", path);
		i_close_fd(&fd);
		return -1;
	}
	if ((uoff_t)st.st_size < offset)
		offset = st.st_size;
	buf = t_buffer_create(st.st_size - offset + 1);
	ret = pread(fd, buffer_append_space_unsafe(buf, st.st_size - offset),
		    st.st_size - offset, offset);
	i_close_fd(&fd);
	if (ret != st.st_size - (off_t)offset) {
		*error_r = t_strdup_printf("pread(%s) failed or was short",
					   path);
		return -1;
	}
	/* the offset first, then the new log: a crash in between re-reads
	   the old log's consumed entries, which only delays nothing (their
	   messages are gone); the other order would skip entries */
	if (state_replace(state, "retrieved.offset", "0\n", 2, error_r) < 0)
		return -1;
	return state_replace(state, "retrieved.log", buf->data, buf->used,
			     error_r);
}

int pop3ext_state_consume_retrievals(struct pop3ext_state *state,
				     uoff_t offset, const char **error_r)
{
	struct file_lock *lock;
	struct stat st;
	const char *str, *path;
	int ret;

	if (state_lock(state, &lock, error_r) < 0)
		return -1;
	path = state_path(state, "retrieved.log");
	if (stat(path, &st) < 0) {
		*error_r = errno_error("stat", path);
		ret = -1;
	} else if (offset >= POP3EXT_STATE_COMPACT_MIN_BYTES &&
		   offset * 2 >= (uoff_t)st.st_size) {
		/* appenders hold the lock too: nothing is lost */
		ret = copy_tail(state, offset, error_r);
	} else {
		str = t_strdup_printf("%"PRIuUOFF_T"\n", offset);
		ret = state_replace(state, "retrieved.offset", str,
				    strlen(str), error_r);
	}
	file_lock_free(&lock);
	return ret;
}

struct read_held_ctx {
	struct pop3ext_state *state;
	pool_t pool;
	ARRAY_TYPE(pop3ext_held) *entries;
};

static int read_held_line(const char *line, uoff_t end_offset ATTR_UNUSED,
			  void *context)
{
	struct read_held_ctx *ctx = context;
	struct pop3ext_held h;

	if (pop3ext_state_parse_held(line, ctx->pool, &h) < 0) {
		e_error(ctx->state->event, "%s/held.log: invalid line ignored "
			"(the expunge it held stays held): %s",
			ctx->state->dir, str_sanitize(line, 100));
		return 1;
	}
	array_push_back(ctx->entries, &h);
	return 1;
}

int pop3ext_state_read_held(struct pop3ext_state *state, pool_t pool,
			    ARRAY_TYPE(pop3ext_held) *entries_r,
			    const char **error_r)
{
	struct read_held_ctx ctx = {
		.state = state, .pool = pool, .entries = entries_r
	};

	return state_read_lines(state, "held.log", 0, read_held_line, &ctx,
				FALSE, error_r);
}

static bool held_equals(const struct pop3ext_held *a,
			const struct pop3ext_held *b)
{
	return a->uid == b->uid && a->uidvalidity == b->uidvalidity &&
		strcmp(a->guid, b->guid) == 0 &&
		strcmp(a->mailbox, b->mailbox) == 0;
}

struct remove_held_ctx {
	const ARRAY_TYPE(pop3ext_held) *done;
	string_t *keep;
	pool_t pool;
};

static int remove_held_line(const char *line, uoff_t end_offset ATTR_UNUSED,
			    void *context)
{
	struct remove_held_ctx *ctx = context;
	const struct pop3ext_held *d;
	struct pop3ext_held h;

	if (pop3ext_state_parse_held(line, ctx->pool, &h) == 0) {
		array_foreach(ctx->done, d) {
			if (held_equals(&h, d))
				return 1;
		}
	}
	/* kept, including lines we cannot parse (reported when read) */
	str_append(ctx->keep, line);
	str_append_c(ctx->keep, '\n');
	return 1;
}

int pop3ext_state_remove_held(struct pop3ext_state *state,
			      const ARRAY_TYPE(pop3ext_held) *done,
			      const char **error_r)
{
	struct remove_held_ctx ctx;
	struct file_lock *lock;
	int ret;

	if (array_count(done) == 0)
		return 0;
	if (state_lock(state, &lock, error_r) < 0)
		return -1;
	ctx.done = done;
	ctx.keep = t_str_new(1024);
	ctx.pool = pool_datastack_create();
	ret = state_read_lines(state, "held.log", 0, remove_held_line, &ctx,
			       TRUE, error_r);
	if (ret == 0) {
		ret = state_replace(state, "held.log", str_data(ctx.keep),
				    str_len(ctx.keep), error_r);
	}
	file_lock_free(&lock);
	return ret;
}

int pop3ext_state_read_first_login(struct pop3ext_state *state,
				   struct pop3ext_first_login *rec_r,
				   const char **error_r)
{
	const char *data, *const *args;
	int ret;

	i_zero(rec_r);
	ret = state_read_small(state, "first-login", &data, error_r);
	if (ret <= 0)
		return ret;
	args = t_strsplit(data, " ");
	if (str_array_length(args) != 3 ||
	    parse_time(args[0], &rec_r->time) < 0 ||
	    str_to_uint32(args[1], &rec_r->uidvalidity) < 0 ||
	    str_to_uint32(args[2], &rec_r->uidnext) < 0) {
		*error_r = t_strdup_printf("%s/first-login: invalid content "
			"'%s'", state->dir, str_sanitize(data, 40));
		return -1;
	}
	return 1;
}

int pop3ext_state_write_first_login(struct pop3ext_state *state,
				    struct pop3ext_first_login *rec,
				    const char **error_r)
{
	const char *path, *tmp, *str;
	int fd, ret, link_errno;

	if (state_mkdir(state, error_r) < 0)
		return -1;
	/* written whole to a temporary file, then link()ed into place: of
	   two first logins at once, one records itself and the other reads
	   that, and nobody reads a half-written file */
	path = state_path(state, "first-login");
	tmp = t_strdup_printf("%s.%s.tmp", path, my_pid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1) {
		*error_r = errno_error("open", tmp);
		return -1;
	}
	str = t_strdup_printf("%ld %u %u\n", (long)rec->time,
			      rec->uidvalidity, rec->uidnext);
	if (write_full(fd, str, strlen(str)) < 0 || fdatasync(fd) < 0) {
		*error_r = errno_error("write", tmp);
		i_close_fd(&fd);
		i_unlink(tmp);
		return -1;
	}
	i_close_fd(&fd);
	ret = link(tmp, path);
	link_errno = errno;
	i_unlink(tmp);
	if (ret == 0)
		return 0;
	if (link_errno != EEXIST) {
		errno = link_errno;
		*error_r = errno_error("link", path);
		return -1;
	}
	ret = pop3ext_state_read_first_login(state, rec, error_r);
	if (ret == 0) {
		*error_r = t_strdup_printf("%s vanished", path);
		return -1;
	}
	return ret < 0 ? -1 : 0;
}
