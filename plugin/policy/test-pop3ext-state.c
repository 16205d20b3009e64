/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "unlink-directory.h"
#include "file-lock.h"
#include "test-common.h"
#include "pop3ext-state.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

static char *test_dir;
static struct event *test_event;

static struct pop3ext_state *test_state(void)
{
	const char *error;

	if (test_event == NULL) {
		/* after test_run() has initialized the library */
		test_dir = i_strdup_printf("/tmp/test-pop3ext-state.%s",
					   dec2str(getpid()));
		test_event = event_create(NULL);
	}

	if (unlink_directory(test_dir, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0 && errno != ENOENT)
		i_fatal("%s", error);
	return pop3ext_state_init(test_dir, test_event);
}

static void test_file_write(const char *name, const char *data)
{
	const char *path = t_strconcat(test_dir, "/", name, NULL);
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(data, f) < 0 || fclose(f) != 0)
		i_fatal("write %s: %m", path);
}

static const char *test_file_read(const char *name)
{
	const char *path = t_strconcat(test_dir, "/", name, NULL);
	char buf[65536];
	ssize_t ret;
	int fd = open(path, O_RDONLY);

	if (fd == -1)
		return NULL;
	ret = read(fd, buf, sizeof(buf) - 1);
	i_close_fd(&fd);
	if (ret < 0)
		i_fatal("read %s: %m", path);
	return t_strndup(buf, ret);
}

static void add_retrieval(ARRAY_TYPE(pop3ext_retrieval) *arr, uint32_t uid,
			  const char *guid, time_t t)
{
	struct pop3ext_retrieval *r = array_append_space(arr);

	r->uidvalidity = 1000;
	r->uid = uid;
	r->guid = guid;
	r->time = t;
}

static void test_retrievals(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_retrieval) in, out;
	const struct pop3ext_retrieval *r;
	const char *error;
	uoff_t offset;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext state: retrieval log");
	t_array_init(&in, 4);
	add_retrieval(&in, 1, "guid-1", 100);
	add_retrieval(&in, 7, "guid\\with-backslash", 200);
	test_assert(pop3ext_state_append_retrievals(state, &in, &error) == 0);
	array_clear(&in);
	add_retrieval(&in, 9, "guid-9", 300);
	test_assert(pop3ext_state_append_retrievals(state, &in, &error) == 0);

	p_array_init(&out, pool, 4);
	offset = (uoff_t)-1;
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 0,
						  &out, &error) == 0);
	test_assert(array_count(&out) == 3);
	test_assert(offset == (array_idx(&out, 2))->end_offset);
	r = array_idx(&out, 1);
	test_assert(r->uidvalidity == 1000 && r->uid == 7 && r->time == 200);
	test_assert_strcmp(r->guid, "guid\\with-backslash");

	/* a GUID a line could not carry is refused */
	array_clear(&in);
	add_retrieval(&in, 8, "guid with space", 250);
	error = NULL;
	test_assert(pop3ext_state_append_retrievals(state, &in, &error) < 0);
	test_assert(error != NULL && strstr(error, "invalid GUID") != NULL);

	/* at most max, then on from there */
	array_clear(&out);
	offset = (uoff_t)-1;
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 2,
						  &out, &error) == 0);
	test_assert(array_count(&out) == 2);
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 2,
						  &out, &error) == 0);
	test_assert(array_count(&out) == 3 &&
		    (array_idx(&out, 2))->uid == 9);
	array_delete(&out, 2, 1);

	/* consuming the first two leaves the third */
	test_assert(pop3ext_state_consume_retrievals(state,
		(array_idx(&out, 1))->end_offset, &error) == 0);
	array_clear(&out);
	offset = (uoff_t)-1;
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 0,
						  &out, &error) == 0);
	test_assert(array_count(&out) == 1 &&
		    (array_idx(&out, 0))->uid == 9);
	pop3ext_state_deinit(&state);
	pool_unref(&pool);
	test_end();
}

static void test_retrievals_compact(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_retrieval) in, out;
	const char *error;
	unsigned int i;
	struct stat st;
	uoff_t offset;
	pool_t pool = pool_alloconly_create("test", 1024*1024);

	test_begin("pop3ext state: retrieval log compaction");
	t_array_init(&in, 4000);
	for (i = 1; i <= 4000; i++)
		add_retrieval(&in, i, "0123456789abcdef0123456789abcdef", i);
	test_assert(pop3ext_state_append_retrievals(state, &in, &error) == 0);
	p_array_init(&out, pool, 4000);
	offset = (uoff_t)-1;
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 3900,
						  &out, &error) == 0);
	test_assert(array_count(&out) == 3900);
	test_assert(pop3ext_state_consume_retrievals(state,
		(array_idx(&out, 3899))->end_offset, &error) == 0);
	/* rewritten: only the last 100 entries, and the offset restarts */
	test_assert(stat(t_strconcat(test_dir, "/retrieved.log", NULL),
			 &st) == 0 && st.st_size < 10000);
	test_assert_strcmp(test_file_read("retrieved.offset"), "0\n");
	array_clear(&out);
	offset = (uoff_t)-1;
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 0,
						  &out, &error) == 0);
	test_assert(array_count(&out) == 100 &&
		    (array_idx(&out, 0))->uid == 3901);
	pop3ext_state_deinit(&state);
	pool_unref(&pool);
	test_end();
}

static void test_retrievals_damaged(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_retrieval) in, out;
	const char *error;
	uoff_t offset;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext state: damaged retrieval log");
	(void)mkdir(test_dir, 0700);
	/* a good line, garbage, then a line a crash cut short (dropped
	   by the next append) */
	test_file_write("retrieved.log",
		"1\t1000\t5\tguid-5\t500\ngarbage line\n1\t1000\t6\tgu");
	t_array_init(&in, 1);
	add_retrieval(&in, 8, "guid-8", 800);
	test_expect_error_string("dropped an incomplete last line");
	test_assert(pop3ext_state_append_retrievals(state, &in, &error) == 0);
	test_expect_no_more_errors();
	p_array_init(&out, pool, 4);
	offset = (uoff_t)-1;
	test_expect_error_string_n_times("invalid line ignored", 1);
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 0,
						  &out, &error) == 0);
	test_expect_no_more_errors();
	/* the invalid line is read (uid 0), so that it gets consumed */
	test_assert(array_count(&out) == 3);
	test_assert((array_idx(&out, 0))->uid == 5);
	test_assert((array_idx(&out, 1))->uid == 0);
	test_assert((array_idx(&out, 2))->uid == 8);

	/* a broken offset file: read from the start */
	test_file_write("retrieved.offset", "banana\n");
	array_clear(&out);
	/* the offset, and the invalid line again */
	test_expect_errors(2);
	offset = (uoff_t)-1;
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 0,
						  &out, &error) == 0);
	test_expect_no_more_errors();
	test_assert(array_count(&out) == 3);
	pop3ext_state_deinit(&state);
	pool_unref(&pool);
	test_end();
}

/* A6: a retrieval line cut inside its time field must not become a
   complete, earlier retrieval once the next entry is appended. */
static void test_retrievals_cut_time(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_retrieval) in, out;
	const struct pop3ext_retrieval *r;
	const char *error;
	uoff_t offset;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext state: a cut line is no retrieval");
	(void)mkdir(test_dir, 0700);
	test_file_write("retrieved.log",
		"1\t1000\t6\tguid-6\t1764000000\n1\t1000\t7\tguid-7\t17");
	t_array_init(&in, 1);
	add_retrieval(&in, 8, "guid-8", 1764000100);
	test_expect_error_string("dropped an incomplete last line");
	test_assert(pop3ext_state_append_retrievals(state, &in, &error) == 0);
	test_expect_no_more_errors();
	p_array_init(&out, pool, 4);
	offset = (uoff_t)-1;
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 0,
						  &out, &error) == 0);
	test_assert(array_count(&out) == 2);
	array_foreach(&out, r)
		test_assert(r->uid != 7 && r->time >= 1764000000);
	pop3ext_state_deinit(&state);
	pool_unref(&pool);
	test_end();
}

/* P1: a crash during compaction between its two renames leaves the new,
   short log with the old, large offset: no entry may be skipped. */
static void test_retrievals_stale_offset(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_retrieval) in, out;
	const char *error;
	unsigned int i;
	uoff_t offset;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext state: offset beyond the log");
	t_array_init(&in, 16);
	for (i = 1; i <= 15; i++)
		add_retrieval(&in, i, "guid", 1000 + i);
	test_assert(pop3ext_state_append_retrievals(state, &in, &error) == 0);
	test_file_write("retrieved.offset", "78786\n");
	p_array_init(&out, pool, 16);
	offset = (uoff_t)-1;
	test_expect_error_string("beyond");
	test_assert(pop3ext_state_read_retrievals(state, pool, &offset, 0,
						  &out, &error) == 0);
	test_expect_no_more_errors();
	test_assert(array_count(&out) == 15);
	pop3ext_state_deinit(&state);
	pool_unref(&pool);
	test_end();
}

/* P2: a line over 8 KB neither ends the reading nor makes remove_held
   drop the records after it. */
static void test_held_long_line(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_held) out, done;
	const char *error, *line, *data;
	string_t *str = t_str_new(10000);
	unsigned int i;
	pool_t pool = pool_alloconly_create("test", 4096);

	test_begin("pop3ext state: an over-long line in held.log");
	(void)mkdir(test_dir, 0700);
	for (i = 1; i <= 3; i++) {
		line = t_strdup_printf("1\tINBOX\t5\t%u\tg%u\t1000\t2000\t"
				       "min_age\n", i, i);
		str_append(str, line);
		if (i == 1) {
			for (unsigned int j = 0; j < 9000; j++)
				str_append_c(str, 'x');
			str_append_c(str, '\n');
		}
	}
	test_file_write("held.log", str_c(str));
	p_array_init(&out, pool, 4);
	test_expect_error_string("too long");
	test_assert(pop3ext_state_read_held(state, pool, &out, &error) == 0);
	test_expect_no_more_errors();
	test_assert(array_count(&out) == 3);
	/* removing uid 1 keeps uid 2 and 3 (and the long line) */
	t_array_init(&done, 1);
	array_push_back(&done, array_idx(&out, 0));
	test_expect_error_string("too long");
	test_assert(pop3ext_state_remove_held(state, &done, &error) == 0);
	test_expect_no_more_errors();
	data = test_file_read("held.log");
	test_assert(data != NULL && strstr(data, "\tg1\t") == NULL &&
		    strstr(data, "\tg2\t") != NULL &&
		    strstr(data, "\tg3\t") != NULL &&
		    strlen(data) > 9000);
	pop3ext_state_deinit(&state);
	pool_unref(&pool);
	test_end();
}

/* A8: one sweep of a user at a time. */
static void test_sweep_lock(void)
{
	struct pop3ext_state *state = test_state();
	struct file_lock *lock1 = NULL, *lock2 = NULL;
	const char *error;

	test_begin("pop3ext state: sweep lock");
	test_assert(pop3ext_state_sweep_lock(state, &lock1, &error) == 1);
	test_assert(pop3ext_state_sweep_lock(state, &lock2, &error) == 0);
	test_assert(lock2 == NULL);
	file_lock_free(&lock1);
	test_assert(pop3ext_state_sweep_lock(state, &lock2, &error) == 1);
	file_lock_free(&lock2);
	pop3ext_state_deinit(&state);
	test_end();
}

static void test_held(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_held) in, out, done;
	struct pop3ext_held *h;
	const char *error;
	unsigned int i;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext state: held expunges");
	t_array_init(&in, 4);
	for (i = 1; i <= 3; i++) {
		h = array_append_space(&in);
		h->mailbox = i == 2 ? "Other\tBox" : "INBOX";
		h->uidvalidity = 5;
		h->uid = i;
		h->guid = t_strdup_printf("g%u", i);
		h->save_date = 1000 + i;
		h->held_time = 2000;
		h->reason = i == 3 ? "legal_hold" : "min_age";
	}
	test_assert(pop3ext_state_append_held(state, &in, &error) == 0);
	p_array_init(&out, pool, 4);
	test_assert(pop3ext_state_read_held(state, pool, &out, &error) == 0);
	test_assert(array_count(&out) == 3);
	test_assert_strcmp((array_idx(&out, 1))->mailbox, "Other\tBox");
	test_assert_strcmp((array_idx(&out, 2))->reason, "legal_hold");
	test_assert((array_idx(&out, 0))->save_date == 1001);

	/* done with 1 and 3; meanwhile 4 was held */
	t_array_init(&done, 2);
	array_push_back(&done, array_idx(&out, 0));
	array_push_back(&done, array_idx(&out, 2));
	array_clear(&in);
	h = array_append_space(&in);
	h->mailbox = "INBOX"; h->uid = 4; h->guid = "g4";
	h->reason = "min_age";
	test_assert(pop3ext_state_append_held(state, &in, &error) == 0);
	test_assert(pop3ext_state_remove_held(state, &done, &error) == 0);
	array_clear(&out);
	test_assert(pop3ext_state_read_held(state, pool, &out, &error) == 0);
	test_assert(array_count(&out) == 2);
	test_assert((array_idx(&out, 0))->uid == 2 &&
		    (array_idx(&out, 1))->uid == 4);

	/* a line that can't be parsed stays, reported */
	test_file_write("held.log", "1\tINBOX\t5\t1\tg1\t1\t2\tbogus\n");
	array_clear(&out);
	test_expect_error_string("held.log: invalid line ignored");
	test_assert(pop3ext_state_read_held(state, pool, &out, &error) == 0);
	test_expect_no_more_errors();
	test_assert(array_count(&out) == 0);
	test_assert(pop3ext_state_remove_held(state, &done, &error) == 0);
	test_assert_strcmp(test_file_read("held.log"),
			   "1\tINBOX\t5\t1\tg1\t1\t2\tbogus\n");
	pop3ext_state_deinit(&state);
	pool_unref(&pool);
	test_end();
}

static void test_first_login(void)
{
	struct pop3ext_state *state = test_state();
	struct pop3ext_first_login rec, other;
	const char *error;

	test_begin("pop3ext state: first login");
	test_assert(pop3ext_state_read_first_login(state, &rec, &error) == 0);
	rec.time = 1234; rec.uidvalidity = 99; rec.uidnext = 42;
	test_assert(pop3ext_state_write_first_login(state, &rec, &error) == 0);
	/* a second "first" login gets the first one's record */
	other.time = 9999; other.uidvalidity = 1; other.uidnext = 1;
	test_assert(pop3ext_state_write_first_login(state, &other,
						    &error) == 0);
	test_assert(other.time == 1234 && other.uidvalidity == 99 &&
		    other.uidnext == 42);
	i_zero(&other);
	test_assert(pop3ext_state_read_first_login(state, &other,
						   &error) == 1);
	test_assert(other.uidnext == 42);

	test_file_write("first-login", "12 x\n");
	error = NULL;
	test_assert(pop3ext_state_read_first_login(state, &other,
						   &error) < 0);
	test_assert(error != NULL && strstr(error, "invalid content") != NULL);
	pop3ext_state_deinit(&state);
	test_end();
}

static void test_parse_lines(void)
{
	static const char *const bad_retrievals[] = {
		"", "1", "2\t1\t1\tg\t1", "1\t1\t0\tg\t1", "1\tx\t1\tg\t1",
		"1\t1\t1\t\t1", "1\t1\t1\tg h\t1", "1\t1\t1\tg\t-5",
		"1\t1\t1\tg\t1\textra",
	};
	struct pop3ext_retrieval r;
	struct pop3ext_held h;
	unsigned int i;

	test_begin("pop3ext state: line parsing");
	test_assert(pop3ext_state_parse_retrieval("1\t4\t2\tabc\t77",
		pool_datastack_create(), &r) == 0);
	test_assert(r.uidvalidity == 4 && r.uid == 2 && r.time == 77);
	for (i = 0; i < N_ELEMENTS(bad_retrievals); i++) {
		test_assert_idx(pop3ext_state_parse_retrieval(bad_retrievals[i],
			pool_datastack_create(), &r) < 0, i);
	}
	test_assert(pop3ext_state_parse_held("1\tA\t1\t2\tg\t3\t4\tmin_age",
		pool_datastack_create(), &h) == 0);
	test_assert(pop3ext_state_parse_held("1\t\t1\t2\tg\t3\t4\tmin_age",
		pool_datastack_create(), &h) < 0);
	test_assert(pop3ext_state_parse_held("1\tA\t1\t2\tg\t3\tx\tmin_age",
		pool_datastack_create(), &h) < 0);
	test_end();
}

static void test_cleanup(void)
{
	const char *error;

	if (unlink_directory(test_dir, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0 && errno != ENOENT)
		i_error("%s", error);
	event_unref(&test_event);
	i_free(test_dir);
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_retrievals,
		test_retrievals_compact,
		test_retrievals_damaged,
		test_retrievals_cut_time,
		test_retrievals_stale_offset,
		test_held_long_line,
		test_sweep_lock,
		test_held,
		test_first_login,
		test_parse_lines,
		test_cleanup,
		NULL
	};
	return test_run(test_functions);
}
