/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "sqlbox-settings.h"

struct test_lookup {
	const char *const *pairs;
};

static const char *test_lookup(const char *name, void *context)
{
	struct test_lookup *ctx = context;
	const char *const *p;

	for (p = ctx->pairs; *p != NULL; p += 2) {
		if (strcmp(p[0], name) == 0)
			return p[1];
	}
	return NULL;
}

static int
test_parse(const char *const *pairs, struct sqlbox_settings *set_r,
	   const char **error_r)
{
	struct test_lookup ctx = { .pairs = pairs };

	return sqlbox_settings_parse(test_lookup, &ctx, "/home/u",
				     "/home/u/sqlbox", pool_datastack_create(),
				     set_r, error_r);
}

static void test_sqlbox_settings_defaults(void)
{
	static const char *const none[] = { NULL };
	static const char *const empty[] = {
		"sqlbox_driver", "", "sqlbox_connect", "", NULL };
	struct sqlbox_settings set;
	const char *error;

	test_begin("sqlbox settings defaults");
	test_assert(test_parse(none, &set, &error) == 0);
	test_assert(set.driver == SQLBOX_DB_DRIVER_SQLITE);
	test_assert_strcmp(set.connect, "/home/u/sqlbox/sqlbox.db");
	test_assert(set.expunged_keep == SQLBOX_DEFAULT_EXPUNGED_KEEP);
	test_assert(set.lock_timeout_secs == SQLBOX_DEFAULT_LOCK_TIMEOUT_SECS);
	test_assert(set.sqlite_mmap_size == SQLBOX_DEFAULT_SQLITE_MMAP_SIZE);
	test_assert(test_parse(empty, &set, &error) == 0);
	test_assert(set.driver == SQLBOX_DB_DRIVER_SQLITE);
	test_end();
}

static void test_sqlbox_settings_valid(void)
{
	static const char *const sqlite_home[] = {
		"sqlbox_driver", "sqlite", "sqlbox_connect", "~/db/mail.db",
		"sqlbox_expunged_keep", "5", "sqlbox_lock_timeout", "2 mins",
		"sqlbox_sqlite_mmap_size", "8M", NULL };
	static const char *const pgsql[] = {
		"sqlbox_driver", "pgsql",
		"sqlbox_connect", "host=pg1,pg2 dbname=mail "
			"target_session_attrs=read-write", NULL };
	static const char *const pgsql_timeout[] = {
		"sqlbox_driver", "pgsql",
		"sqlbox_connect", "host=pg1 connect_timeout=3", NULL };
	struct sqlbox_settings set;
	const char *error;

	test_begin("sqlbox settings valid");
	test_assert(test_parse(sqlite_home, &set, &error) == 0);
	test_assert_strcmp(set.connect, "/home/u/db/mail.db");
	test_assert(set.expunged_keep == 5);
	test_assert(set.lock_timeout_secs == 120);
	test_assert(set.sqlite_mmap_size == 8 * 1024 * 1024);

	test_assert(test_parse(pgsql, &set, &error) == 0);
	test_assert(set.driver == SQLBOX_DB_DRIVER_PGSQL);
	/* a timeout is added so that no host is waited for minutes */
	test_assert_strcmp(set.connect, "host=pg1,pg2 dbname=mail "
			   "target_session_attrs=read-write connect_timeout=10");
	test_assert(test_parse(pgsql_timeout, &set, &error) == 0);
	test_assert_strcmp(set.connect, "host=pg1 connect_timeout=3");
	test_end();
}

static void test_sqlbox_settings_invalid(void)
{
	static const struct {
		const char *pairs[7];
		const char *setting;
	} tests[] = {
		{ { "sqlbox_driver", "mysql", NULL }, "sqlbox_driver: " },
		{ { "sqlbox_driver", "SQLite", NULL }, "sqlbox_driver: " },
		{ { "sqlbox_driver", "pgsql", NULL }, "sqlbox_connect: " },
		{ { "sqlbox_driver", "pgsql", "sqlbox_connect", "host=x port",
		    NULL }, "sqlbox_connect: " },
		{ { "sqlbox_driver", "pgsql", "sqlbox_connect", "bogus=1",
		    NULL }, "sqlbox_connect: " },
		{ { "sqlbox_connect", "relative/path.db", NULL },
		  "sqlbox_connect: " },
		{ { "sqlbox_expunged_keep", "0", NULL },
		  "sqlbox_expunged_keep: " },
		{ { "sqlbox_expunged_keep", "many", NULL },
		  "sqlbox_expunged_keep: " },
		{ { "sqlbox_lock_timeout", "soon", NULL },
		  "sqlbox_lock_timeout: " },
		{ { "sqlbox_sqlite_mmap_size", "lots", NULL },
		  "sqlbox_sqlite_mmap_size: " },
	};
	struct sqlbox_settings set;
	const char *error;
	unsigned int i;

	test_begin("sqlbox settings invalid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		error = NULL;
		test_assert_idx(test_parse(tests[i].pairs, &set, &error) < 0,
				i);
		test_assert_idx(error != NULL &&
				str_begins(error, tests[i].setting), i);
	}
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_sqlbox_settings_defaults,
		test_sqlbox_settings_valid,
		test_sqlbox_settings_invalid,
		NULL
	};
	return test_run(test_functions);
}
