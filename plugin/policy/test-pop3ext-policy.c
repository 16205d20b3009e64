/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "pop3ext-decide.h"
#include "pop3ext-policy.h"

#define DAY (24*60*60)

struct test_setting {
	const char *name, *value;
	enum pop3ext_source source;
};

static const char *
test_lookup(const char *name, enum pop3ext_source *source_r, void *context)
{
	const struct test_setting *s = context;

	for (; s->name != NULL; s++) {
		if (strcmp(s->name, name) == 0) {
			*source_r = s->source;
			return s->value;
		}
	}
	return NULL;
}

static void test_interval(void)
{
	static const struct {
		const char *str;
		unsigned int secs;
	} valid[] = {
		{ "0", 0 }, { "never", POP3EXT_NEVER }, { "NEVER", POP3EXT_NEVER },
		{ "45s", 45 }, { "90m", 90*60 }, { "12h", 12*3600 },
		{ "30d", 30*DAY }, { "2w", 14*DAY }, { "30D", 30*DAY },
		{ "0d", 0 },
		/* Dovecot's own forms (settings_get_time) */
		{ "30 days", 30*DAY }, { "2 weeks", 14*DAY }, { "1 week", 7*DAY },
		{ "12 hours", 12*3600 }, { "3 d", 3*DAY }, { "90 mins", 90*60 },
		{ "45 secs", 45 },
	};
	static const char *const invalid[] = {
		"", "30", "d", "30x", "-1d", "30dd", " 3d", "1.5d",
		"99999999999d", "0x10d", "never!", "4294967295s", "30 dayz",
	};
	const char *error;
	unsigned int i, secs = 0;

	test_begin("pop3ext_parse_interval");
	for (i = 0; i < N_ELEMENTS(valid); i++) {
		test_assert_idx(pop3ext_parse_interval(valid[i].str, &secs,
						       &error) == 0, i);
		test_assert_idx(secs == valid[i].secs, i);
	}
	for (i = 0; i < N_ELEMENTS(invalid); i++) {
		error = NULL;
		test_assert_idx(pop3ext_parse_interval(invalid[i], &secs,
						       &error) < 0, i);
		test_assert_idx(error != NULL, i);
	}
	test_end();
}

static void test_date(void)
{
	static const struct {
		const char *str;
		time_t t;
	} valid[] = {
		{ "1970-01-01", 0 },
		{ "2026-11-22", 1795305600 },
		{ "2026-11-22T10:30Z", 1795305600 + 10*3600 + 30*60 },
		{ "2026-11-22T10:30:15Z", 1795305600 + 10*3600 + 30*60 + 15 },
		{ "2026-11-22T10:30:00+02:00", 1795305600 + 8*3600 + 30*60 },
		{ "2026-11-22T10:30:00-01:30", 1795305600 + 12*3600 },
		{ "2024-02-29", 1709164800 },
	};
	static const char *const invalid[] = {
		"", "2026", "2026-11", "2026-13-01", "2026-00-10", "2026-02-30",
		"2025-02-29", "2026-11-22T", "2026-11-22T10:30",
		"2026-11-22T25:00Z", "2026-11-22T10:60Z", "2026-11-22 10:30Z",
		"22-11-2026", "1969-12-31", "2026-11-22T10:30:00+2:00",
		"yesterday", "2026-11-22Z",
	};
	const char *error;
	unsigned int i;
	time_t t;

	test_begin("pop3ext_parse_date");
	for (i = 0; i < N_ELEMENTS(valid); i++) {
		test_assert_idx(pop3ext_parse_date(valid[i].str, &t,
						   &error) == 0, i);
		test_assert_idx(t == valid[i].t, i);
	}
	for (i = 0; i < N_ELEMENTS(invalid); i++) {
		test_assert_idx(pop3ext_parse_date(invalid[i], &t,
						   &error) < 0, i);
	}
	test_end();
}

static void test_policy_defaults(void)
{
	static const struct test_setting none[] = { { NULL, NULL, 0 } };
	struct pop3ext_policy policy;
	const char *error;
	unsigned int i;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext_policy_parse defaults");
	test_assert(pop3ext_policy_parse(pool, test_lookup, (void *)none,
					 &policy, &error) == 0);
	test_assert(policy.on_dele == POP3EXT_ON_DELE_EXPUNGE);
	test_assert(policy.on_retr == POP3EXT_ON_RETR_KEEP);
	test_assert(policy.expire_after_retr == POP3EXT_NEVER);
	test_assert(policy.max_age == POP3EXT_NEVER);
	test_assert(policy.min_age == 0);
	test_assert(!policy.legal_hold);
	test_assert(policy.visible_since == 0 &&
		    !policy.visible_since_first_login);
	test_assert(policy.recent_window == 30*DAY);
	test_assert(policy.view == POP3EXT_VIEW_NORMAL);
	test_assert(!policy.audit);
	test_assert(policy.login_delay == 0 && policy.login_delay_burst == 1);
	for (i = 0; i < POP3EXT_SET_COUNT; i++) {
		test_assert_idx(policy.sources[i] == POP3EXT_SOURCE_DEFAULT, i);
		test_assert_idx(strcmp(pop3ext_policy_value(&policy, i),
			pop3ext_policy_setting_default(i)) == 0, i);
	}
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "NEVER");
	pool_unref(&pool);
	test_end();
}

static void test_policy_values(void)
{
	static const struct test_setting settings[] = {
		{ "pop3ext_on_dele", "archive:Old Mail", POP3EXT_SOURCE_USERDB },
		{ "pop3ext_on_retr", "HIDE", POP3EXT_SOURCE_PLUGIN },
		{ "pop3ext_expire_after_retr", "36h", POP3EXT_SOURCE_USERDB },
		{ "pop3ext_max_age", "30d", POP3EXT_SOURCE_PLUGIN },
		{ "pop3ext_min_age", "7d", POP3EXT_SOURCE_PLUGIN },
		{ "pop3ext_legal_hold", "No", POP3EXT_SOURCE_PLUGIN },
		{ "pop3ext_visible_since", "first-login", POP3EXT_SOURCE_USERDB },
		{ "pop3ext_view", "recent", POP3EXT_SOURCE_USERDB },
		{ "pop3ext_login_delay", "15m", POP3EXT_SOURCE_PLUGIN },
		{ "pop3ext_login_delay_burst", "3", POP3EXT_SOURCE_PLUGIN },
		{ "pop3ext_login_delay_dict", "file:/tmp/x", POP3EXT_SOURCE_PLUGIN },
		{ NULL, NULL, 0 }
	};
	struct pop3ext_policy policy;
	const char *error;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext_policy_parse values");
	test_assert(pop3ext_policy_parse(pool, test_lookup, (void *)settings,
					 &policy, &error) == 0);
	test_assert(policy.on_dele == POP3EXT_ON_DELE_ARCHIVE);
	test_assert_strcmp(policy.on_dele_archive, "Old Mail");
	test_assert(policy.on_retr == POP3EXT_ON_RETR_HIDE);
	test_assert(policy.expire_after_retr == 36*3600);
	test_assert(policy.max_age == 30*DAY);
	test_assert(policy.min_age == 7*DAY);
	test_assert(policy.visible_since_first_login);
	test_assert(policy.view == POP3EXT_VIEW_RECENT);
	test_assert(policy.login_delay == 15*60);
	test_assert(policy.login_delay_burst == 3);
	test_assert(policy.sources[POP3EXT_SET_ON_DELE] ==
		    POP3EXT_SOURCE_USERDB);
	test_assert(policy.sources[POP3EXT_SET_MAX_AGE] ==
		    POP3EXT_SOURCE_PLUGIN);
	test_assert(policy.sources[POP3EXT_SET_AUDIT] ==
		    POP3EXT_SOURCE_DEFAULT);
	test_assert_strcmp(pop3ext_policy_value(&policy, POP3EXT_SET_ON_RETR),
			   "HIDE");
	/* retrieved mail leaves the POP3 view */
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "0");
	pool_unref(&pool);
	test_end();
}

static void test_policy_errors(void)
{
	static const struct {
		const char *name, *value, *error;
	} tests[] = {
		{ "pop3ext_on_dele", "delete", "pop3ext_on_dele=delete (from "
		  "userdb): must be expunge, hide, archive:<mailbox> or refuse" },
		{ "pop3ext_on_dele", "archive:", "archive: needs a mailbox" },
		{ "pop3ext_on_dele", "archive:inbox", "cannot be INBOX" },
		{ "pop3ext_on_dele", "archive:a\001b", "control characters" },
		{ "pop3ext_on_retr", "yes", "must be keep, seen, hide" },
		{ "pop3ext_min_age", "never", "never is not a minimum age" },
		{ "pop3ext_legal_hold", "true", "must be yes or no" },
		{ "pop3ext_recent_window", "never", "must be a finite" },
		{ "pop3ext_login_delay_burst", "101", "from 1 to 100" },
		{ "pop3ext_login_delay_dict", "redis", "must be a dict URI" },
		{ "pop3ext_login_delay", "1h", "needs pop3ext_login_delay_dict" },
		{ "pop3ext_visible_since", "2026-02-29", "not a date" },
	};
	struct test_setting settings[2];
	struct pop3ext_policy policy;
	const char *error;
	unsigned int i;
	pool_t pool = pool_alloconly_create("test", 1024);

	test_begin("pop3ext_policy_parse errors");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		i_zero(&settings);
		settings[0].name = tests[i].name;
		settings[0].value = tests[i].value;
		settings[0].source = POP3EXT_SOURCE_USERDB;
		error = NULL;
		test_assert_idx(pop3ext_policy_parse(pool, test_lookup,
			settings, &policy, &error) < 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error) != NULL &&
				strstr(error, tests[i].name) != NULL, i);
		if (i < N_ELEMENTS(tests) - 2) {
			test_assert_idx(pop3ext_policy_check_value(
				(enum pop3ext_setting)0, "expunge", &error) == 0,
				i);
		}
	}
	pool_unref(&pool);
	test_end();
}

static void test_expire_capability(void)
{
	struct pop3ext_policy policy;

	test_begin("pop3ext_policy_expire_capability");
	i_zero(&policy);
	policy.expire_after_retr = POP3EXT_NEVER;
	policy.max_age = POP3EXT_NEVER;
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "NEVER");
	policy.expire_after_retr = 7*DAY + 3600;
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "7");
	policy.max_age = 5*DAY;
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "5");
	policy.expire_after_retr = 12*3600;
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "0");
	policy.legal_hold = TRUE;
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "NEVER");
	policy.on_retr = POP3EXT_ON_RETR_EXPUNGE;
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "0");
	policy.on_retr = POP3EXT_ON_RETR_SEEN;
	test_assert_strcmp(pop3ext_policy_expire_capability(&policy), "NEVER");
	test_end();
}

static void test_decide(void)
{
	struct pop3ext_policy policy;
	time_t now = 1800000000;

	test_begin("pop3ext_decide_*");
	i_zero(&policy);
	policy.expire_after_retr = POP3EXT_NEVER;
	policy.max_age = POP3EXT_NEVER;
	test_assert(pop3ext_decide_expunge(&policy, now, now) ==
		    POP3EXT_EXPUNGE_ALLOW);
	policy.min_age = 7*DAY;
	test_assert(pop3ext_decide_expunge(&policy, now - 7*DAY + 1, now) ==
		    POP3EXT_EXPUNGE_HOLD_MIN_AGE);
	test_assert(pop3ext_decide_expunge(&policy, now - 7*DAY, now) ==
		    POP3EXT_EXPUNGE_ALLOW);
	/* a save date in the future is young */
	test_assert(pop3ext_decide_expunge(&policy, now + 100*DAY, now) ==
		    POP3EXT_EXPUNGE_HOLD_MIN_AGE);
	policy.legal_hold = TRUE;
	test_assert(pop3ext_decide_expunge(&policy, 0, now) ==
		    POP3EXT_EXPUNGE_HOLD_LEGAL);
	test_assert_strcmp(pop3ext_expunge_decision_name(
		POP3EXT_EXPUNGE_HOLD_LEGAL), "held:legal_hold");

	test_assert(!pop3ext_decide_max_age_reached(&policy, 0, now));
	policy.max_age = 30*DAY;
	test_assert(pop3ext_decide_max_age_reached(&policy, now - 30*DAY, now));
	test_assert(!pop3ext_decide_max_age_reached(&policy, now - 30*DAY + 1,
						    now));
	test_assert(!pop3ext_decide_retr_expired(&policy, 0, now));
	policy.expire_after_retr = 0;
	test_assert(pop3ext_decide_retr_expired(&policy, now, now));
	/* no overflow near the end of time */
	test_assert(pop3ext_time_add((time_t)1 << 40, 100) == (time_t)1 << 40);
	test_assert(pop3ext_time_add(5, POP3EXT_NEVER) == (time_t)1 << 40);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_interval,
		test_date,
		test_policy_defaults,
		test_policy_values,
		test_policy_errors,
		test_expire_capability,
		test_decide,
		NULL
	};
	return test_run(test_functions);
}
