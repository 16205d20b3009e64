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
#include <sys/wait.h>
#include <sqlite3.h>

#define RIDX(a, i) ((const struct pop3ext_retrieval *)array_idx(a, i))
#define HIDX(a, i) ((const struct pop3ext_held *)array_idx(a, i))

static char *test_dir;
static struct event *test_event;

static void test_dir_clean(void)
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
}

/* another handle on the same ledger (another process's, say) */
static struct pop3ext_state *test_state_open(void)
{
	return pop3ext_state_init(test_dir, NULL, test_event);
}

static struct pop3ext_state *test_state(void)
{
	test_dir_clean();
	return test_state_open();
}

static void test_file_write(const char *name, const char *data, size_t size)
{
	const char *path = t_strconcat(test_dir, "/", name, NULL);
	FILE *f;

	if (mkdir(test_dir, 0700) < 0 && errno != EEXIST)
		i_fatal("mkdir %s: %m", test_dir);
	f = fopen(path, "w");
	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		i_fatal("write %s: %m", path);
}

static bool test_file_exists(const char *name)
{
	struct stat st;

	return stat(t_strconcat(test_dir, "/", name, NULL), &st) == 0;
}

static void test_add_retrieval(ARRAY_TYPE(pop3ext_retrieval) *entries,
			       uint32_t uid, const char *guid, time_t t)
{
	struct pop3ext_retrieval *r = array_append_space(entries);

	r->uidvalidity = 1000;
	r->uid = uid;
	r->guid = guid;
	r->time = t;
}

static void test_add_held(ARRAY_TYPE(pop3ext_held) *entries,
			  const char *box_guid, uint32_t uid, const char *guid)
{
	struct pop3ext_held *h = array_append_space(entries);

	h->mailbox_guid = box_guid;
	h->mailbox = "Box";
	h->uidvalidity = 7;
	h->uid = uid;
	h->guid = guid;
	h->save_date = 100;
	h->held_time = 200;
	h->reason = "legal_hold";
}

static unsigned int test_count_retrievals(struct pop3ext_state *state)
{
	ARRAY_TYPE(pop3ext_retrieval) entries;
	const char *error;
	int64_t after = 0;

	t_array_init(&entries, 16);
	if (pop3ext_state_read_retrievals(state, pool_datastack_create(),
					  &after, 0, &entries, &error) < 0)
		i_fatal("%s", error);
	return array_count(&entries);
}

static void test_retrievals(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_retrieval) entries, read;
	const struct pop3ext_retrieval *r;
	const char *error;
	int64_t after = 0;

	test_begin("pop3ext ledger: retrievals append/read/consume");
	test_assert(!pop3ext_state_exists(state));
	t_array_init(&entries, 4);
	t_array_init(&read, 4);
	test_add_retrieval(&entries, 1, "g1", 10);
	test_add_retrieval(&entries, 2, "g2", 20);
	test_add_retrieval(&entries, 3, "g3", 30);
	test_assert(pop3ext_state_append_retrievals(state, &entries,
						    &error) == 0);
	test_assert(pop3ext_state_exists(state));
	/* a record written again keeps the first retrieval's time */
	array_clear(&entries);
	test_add_retrieval(&entries, 2, "g2", 99);
	test_assert(pop3ext_state_append_retrievals(state, &entries,
						    &error) == 0);

	/* in chunks, in the order written */
	test_assert(pop3ext_state_read_retrievals(state,
		pool_datastack_create(), &after, 2, &read, &error) == 0);
	test_assert(array_count(&read) == 2);
	r = array_idx(&read, 1);
	test_assert(r->uid == 2 && strcmp(r->guid, "g2") == 0 &&
		    r->time == 20 && r->uidvalidity == 1000 && after == r->id);
	test_assert(pop3ext_state_read_retrievals(state,
		pool_datastack_create(), &after, 2, &read, &error) == 0);
	test_assert(array_count(&read) == 3);
	r = array_idx(&read, 2);
	test_assert(r->uid == 3 && r->time == 30);

	/* consumed: deleted, the others stay */
	array_delete(&read, 1, 1);
	test_assert(pop3ext_state_consume_retrievals(state, &read,
						     &error) == 0);
	array_clear(&read);
	after = 0;
	test_assert(pop3ext_state_read_retrievals(state,
		pool_datastack_create(), &after, 0, &read, &error) == 0);
	test_assert(array_count(&read) == 1);
	test_assert(RIDX(&read, 0)->uid == 2);
	pop3ext_state_deinit(&state);
	test_end();
}

static void test_held(void)
{
	struct pop3ext_state *state = test_state(), *other;
	ARRAY_TYPE(pop3ext_held) entries, read;
	const struct pop3ext_held *h;
	const char *error;

	test_begin("pop3ext ledger: held intents and reconciliation");
	t_array_init(&entries, 4);
	t_array_init(&read, 4);
	test_add_held(&entries, "boxguid", 1, "g1");
	test_add_held(&entries, "boxguid", 2, "g2");
	test_assert(pop3ext_state_append_held(state, &entries, &error) == 0);
	test_assert(HIDX(&entries, 0)->id > 0 &&
		    HIDX(&entries, 1)->id > HIDX(&entries, 0)->id);

	/* before the reconciliation: intents */
	test_assert(pop3ext_state_read_held(state, pool_datastack_create(),
					    &read, &error) == 0);
	test_assert(array_count(&read) == 2);
	array_foreach(&read, h)
		test_assert(h->intent);
	h = array_idx(&read, 1);
	test_assert(strcmp(h->mailbox_guid, "boxguid") == 0 &&
		    strcmp(h->mailbox, "Box") == 0 && h->uid == 2 &&
		    h->uidvalidity == 7 && strcmp(h->guid, "g2") == 0 &&
		    h->save_date == 100 && h->held_time == 200 &&
		    strcmp(h->reason, "legal_hold") == 0);

	/* a sweep voids the second intent meanwhile (its message is not
	   pending yet) */
	other = test_state_open();
	array_delete(&read, 0, 1);
	test_assert(pop3ext_state_remove_held(other, &read, &error) == 0);

	/* committed: both are committed, the voided one written again */
	test_assert(pop3ext_state_reconcile_held(state, &entries, TRUE,
						 &error) == 0);
	array_clear(&read);
	test_assert(pop3ext_state_read_held(other, pool_datastack_create(),
					    &read, &error) == 0);
	test_assert(array_count(&read) == 2);
	array_foreach(&read, h)
		test_assert(!h->intent);

	/* held again: nothing new; a rollback deletes only new intents */
	test_assert(pop3ext_state_append_held(state, &entries, &error) == 0);
	test_assert(HIDX(&entries, 0)->id == 0 &&
		    HIDX(&entries, 1)->id == 0);
	array_clear(&entries);
	test_add_held(&entries, "boxguid", 3, "g3");
	test_assert(pop3ext_state_append_held(state, &entries, &error) == 0);
	test_assert(pop3ext_state_reconcile_held(state, &entries, FALSE,
						 &error) == 0);
	array_clear(&read);
	test_assert(pop3ext_state_read_held(state, pool_datastack_create(),
					    &read, &error) == 0);
	test_assert(array_count(&read) == 2);

	/* removed */
	test_assert(pop3ext_state_remove_held(state, &read, &error) == 0);
	array_clear(&read);
	test_assert(pop3ext_state_read_held(other, pool_datastack_create(),
					    &read, &error) == 0);
	test_assert(array_count(&read) == 0);
	pop3ext_state_deinit(&other);
	pop3ext_state_deinit(&state);
	test_end();
}

static void test_first_login(void)
{
	struct pop3ext_state *state = test_state(), *other;
	struct pop3ext_first_login rec, rec2;
	const char *error;

	test_begin("pop3ext ledger: first login");
	test_assert(pop3ext_state_read_first_login(state, &rec, &error) == 0);
	rec.time = 1700000000;
	rec.uidvalidity = 5;
	rec.uidnext = 9;
	test_assert(pop3ext_state_write_first_login(state, &rec, &error) == 0);
	/* another session's later first login reads the one that won */
	other = test_state_open();
	rec2.time = 1800000000;
	rec2.uidvalidity = 6;
	rec2.uidnext = 20;
	test_assert(pop3ext_state_write_first_login(other, &rec2,
						    &error) == 0);
	test_assert(rec2.time == 1700000000 && rec2.uidvalidity == 5 &&
		    rec2.uidnext == 9);
	i_zero(&rec);
	test_assert(pop3ext_state_read_first_login(other, &rec, &error) == 1);
	test_assert(rec.time == 1700000000 && rec.uidnext == 9);
	pop3ext_state_deinit(&other);
	pop3ext_state_deinit(&state);
	test_end();
}

#define TEST_WRITERS 3
#define TEST_WRITES 40
/* Writers in other processes at once, and a "sweep" consuming what it
   reads meanwhile: every record is either consumed once or still there. */
static void test_concurrent_writers(void)
{
	struct pop3ext_state *state = test_state();
	ARRAY_TYPE(pop3ext_retrieval) entries;
	const char *error;
	unsigned int i, j, consumed = 0;
	int64_t after = 0;
	pid_t pids[TEST_WRITERS];
	int status, fds[2];
	char c;

	test_begin("pop3ext ledger: concurrent writers and a sweep");
	/* created first, so that the children share it */
	t_array_init(&entries, 4);
	test_add_retrieval(&entries, 100000, "first", 1);
	test_assert(pop3ext_state_append_retrievals(state, &entries,
						    &error) == 0);
	/* SQLite's connections do not cross a fork() */
	pop3ext_state_deinit(&state);
	if (pipe(fds) < 0)
		i_fatal("pipe: %m");
	for (i = 0; i < TEST_WRITERS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			i_fatal("fork: %m");
		if (pids[i] == 0) {
			struct pop3ext_state *child = test_state_open();
			int ret = 0;

			i_close_fd(&fds[1]);
			/* all start together */
			if (read(fds[0], &c, 1) < 0)
				ret = -1;
			for (j = 0; j < TEST_WRITES && ret == 0; j++) T_BEGIN {
				ARRAY_TYPE(pop3ext_retrieval) one;

				t_array_init(&one, 1);
				test_add_retrieval(&one, i * 1000 + j + 1,
					t_strdup_printf("g%u.%u", i, j), j);
				ret = pop3ext_state_append_retrievals(child,
					&one, &error);
			} T_END;
			if (ret < 0)
				i_error("child: %s", error);
			pop3ext_state_deinit(&child);
			/* (valgrind checks the child's leaks too) */
			event_unref(&test_event);
			i_free(test_dir);
			_exit(ret == 0 ? 0 : 1);
		}
	}
	i_close_fd(&fds[0]);
	state = test_state_open();
	i_close_fd(&fds[1]);
	/* the sweep: reads and consumes while they write */
	for (i = 0; i < 20; i++) {
		array_clear(&entries);
		test_assert(pop3ext_state_read_retrievals(state,
			pool_datastack_create(), &after, 5, &entries,
			&error) == 0);
		test_assert(pop3ext_state_consume_retrievals(state, &entries,
							     &error) == 0);
		consumed += array_count(&entries);
	}
	for (i = 0; i < TEST_WRITERS; i++) {
		test_assert(waitpid(pids[i], &status, 0) == pids[i]);
		test_assert_idx(WIFEXITED(status) &&
				WEXITSTATUS(status) == 0, i);
	}
	test_assert(consumed + test_count_retrievals(state) ==
		    TEST_WRITERS * TEST_WRITES + 1);
	pop3ext_state_deinit(&state);
	test_end();
}

static void test_import(void)
{
	struct pop3ext_state *state;
	ARRAY_TYPE(pop3ext_retrieval) retrievals;
	ARRAY_TYPE(pop3ext_held) held;
	struct pop3ext_first_login rec;
	const struct pop3ext_retrieval *r;
	const char *error;
	string_t *log;
	int64_t after = 0;

	test_begin("pop3ext ledger: import of the old logs");
	test_dir_clean();
	log = t_str_new(20000);
	/* consumed already (retrieved.offset points past it) */
	str_append(log, "1\t1000\t1\tguid-1\t1764000000\n");
	test_file_write("retrieved.offset", "27\n", 3);
	str_append(log, "1\t1000\t2\tguid-2\t1764000001\n");
	/* an over-long line stops nothing */
	str_append(log, "1\t1000\t3\t");
	while (str_len(log) < 12000)
		str_append_c(log, 'x');
	str_append(log, "\t1764000002\n");
	str_append(log, "1\t1000\t4\tguid-4\t1764000003\n");
	/* a line a crash cut: not a retrieval in 1970 */
	str_append(log, "1\t1000\t7\tguid-7\t17");
	test_file_write("retrieved.log", str_c(log), str_len(log));
	test_file_write("held.log", "1\tINBOX\t1000\t5\tguid-5\t100\t200\t"
			"min_age\n1\tINBOX\t1000\t6\tguid-6\t100\t20", 60);
	test_file_write("first-login", "1700000000 1000 3\n", 18);

	state = test_state_open();
	test_assert(pop3ext_state_exists(state));
	test_expect_errors(1);
	t_array_init(&retrievals, 4);
	test_assert(pop3ext_state_read_retrievals(state,
		pool_datastack_create(), &after, 0, &retrievals,
		&error) == 0);
	test_expect_no_more_errors();
	test_assert(array_count(&retrievals) == 2);
	r = array_idx(&retrievals, 0);
	test_assert(r->uid == 2 && r->time == 1764000001 &&
		    strcmp(r->guid, "guid-2") == 0);
	r = array_idx(&retrievals, 1);
	test_assert(r->uid == 4 && r->time == 1764000003);
	t_array_init(&held, 4);
	test_assert(pop3ext_state_read_held(state, pool_datastack_create(),
					    &held, &error) == 0);
	test_assert(array_count(&held) == 1);
	test_assert(strcmp(HIDX(&held, 0)->mailbox, "INBOX") == 0 &&
		    HIDX(&held, 0)->mailbox_guid[0] == '\0' &&
		    HIDX(&held, 0)->uid == 5 &&
		    !HIDX(&held, 0)->intent);
	test_assert(pop3ext_state_read_first_login(state, &rec, &error) == 1);
	test_assert(rec.time == 1700000000 && rec.uidvalidity == 1000 &&
		    rec.uidnext == 3);
	/* kept as backups, and not imported again */
	test_assert(!test_file_exists("retrieved.log") &&
		    test_file_exists("retrieved.log.imported") &&
		    test_file_exists("retrieved.offset.imported") &&
		    test_file_exists("held.log.imported") &&
		    test_file_exists("first-login.imported"));
	pop3ext_state_deinit(&state);
	state = test_state_open();
	test_assert(test_count_retrievals(state) == 2);
	pop3ext_state_deinit(&state);
	test_end();
}

static void test_corrupt(void)
{
	struct pop3ext_state *state;
	ARRAY_TYPE(pop3ext_held) held;
	const char *error, *path;
	sqlite3 *db;

	test_begin("pop3ext ledger: a damaged ledger is an error naming it");
	test_dir_clean();
	test_file_write("ledger.db", "this is not a database, not at all, "
			"but it is long enough to look like one\n", 76);
	state = test_state_open();
	path = t_strconcat(test_dir, "/ledger.db", NULL);
	test_assert(pop3ext_state_exists(state));
	test_assert(pop3ext_state_open(state, &error) < 0);
	test_assert(strstr(error, path) != NULL);
	test_assert(strstr(error, "damaged") != NULL);
	/* and stays so: nothing reads as empty */
	t_array_init(&held, 4);
	test_assert(pop3ext_state_read_held(state, pool_datastack_create(),
					    &held, &error) < 0);
	test_assert(strstr(error, path) != NULL);
	pop3ext_state_deinit(&state);

	/* another schema version */
	test_dir_clean();
	test_file_write("x", "", 0);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "CREATE TABLE t (a); PRAGMA user_version = 7",
			 NULL, NULL, NULL) != SQLITE_OK)
		i_fatal("sqlite: %s", sqlite3_errmsg(db));
	(void)sqlite3_close(db);
	state = test_state_open();
	test_assert(pop3ext_state_open(state, &error) < 0);
	test_assert(strstr(error, path) != NULL &&
		    strstr(error, "schema version 7") != NULL);
	pop3ext_state_deinit(&state);
	test_end();
}

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
		test_held,
		test_first_login,
		test_concurrent_writers,
		test_import,
		test_corrupt,
		test_sweep_lock,
		test_parse_lines,
		test_cleanup,
		NULL
	};
	return test_run(test_functions);
}
