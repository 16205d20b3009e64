/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "test-common.h"
#include "pop3ext-auth-escape.h"

static void test_escape_filter(void)
{
	static const struct {
		const char *in, *out;
	} tests[] = {
		{ "alice", "alice" },
		{ "alice@example.test", "alice@example.test" },
		{ "*", "\\2a" },
		{ "a*)(uid=*", "a\\2a\\29\\28uid=\\2a" },
		{ "x)(|(objectClass=*)", "x\\29\\28|\\28objectClass=\\2a\\29" },
		{ "back\\slash", "back\\5cslash" },
		{ "tab\there", "tab\\09here" },
		{ "caf\xc3\xa9", "caf\\c3\\a9" },
		{ "\xff\xfe", "\\ff\\fe" },
		{ "", "" },
	};
	unsigned int i;

	test_begin("pop3ext_ldap_escape_filter");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_assert_strcmp_idx(pop3ext_ldap_escape_filter(tests[i].in),
				       tests[i].out, i);
	}
	test_end();
}

static void test_escape_dn(void)
{
	static const struct {
		const char *in, *out;
	} tests[] = {
		{ "alice", "alice" },
		{ "a,ou=admins", "a\\,ou\\=admins" },
		{ "a+cn=x", "a\\+cn\\=x" },
		{ "#lead", "\\#lead" },
		{ "mid#dle", "mid#dle" },
		{ " lead", "\\ lead" },
		{ "trail ", "trail\\ " },
		{ "in side", "in side" },
		{ "q\"<>;\\", "q\\\"\\<\\>\\;\\\\" },
		{ "nl\n", "nl\\0a" },
		{ "caf\xc3\xa9", "caf\\c3\\a9" },
	};
	unsigned int i;

	test_begin("pop3ext_ldap_escape_dn");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_assert_strcmp_idx(pop3ext_ldap_escape_dn(tests[i].in),
				       tests[i].out, i);
	}
	test_end();
}

static void test_username_check(void)
{
	const char *error;
	char *big;

	test_begin("pop3ext_auth_username_check");
	test_assert(pop3ext_auth_username_check("alice", 256, &error) == 0);
	test_assert(pop3ext_auth_username_check("j\xc3\xbcrgen@example.test",
						256, &error) == 0);
	test_assert(pop3ext_auth_username_check("a*)(uid=*", 256, &error) == 0);

	error = NULL;
	test_assert(pop3ext_auth_username_check("", 256, &error) < 0);
	test_assert(error != NULL && strstr(error, "empty") != NULL);
	test_assert(pop3ext_auth_username_check("ab\xff", 256, &error) < 0);
	test_assert(strstr(error, "UTF-8") != NULL);
	test_assert(pop3ext_auth_username_check("\xc3", 256, &error) < 0);
	test_assert(pop3ext_auth_username_check("a\tb", 256, &error) < 0);
	test_assert(strstr(error, "control") != NULL);
	test_assert(pop3ext_auth_username_check("a\x7f", 256, &error) < 0);
	test_assert(pop3ext_auth_username_check(" alice", 256, &error) < 0);
	test_assert(strstr(error, "space") != NULL);
	test_assert(pop3ext_auth_username_check("alice ", 256, &error) < 0);
	test_assert(pop3ext_auth_username_check("al ice", 256, &error) == 0);

	big = i_malloc(10 * 1024 + 1);
	memset(big, 'a', 10 * 1024);
	test_assert(pop3ext_auth_username_check(big, 256, &error) < 0);
	test_assert(strstr(error, "10240 bytes") != NULL);
	test_assert(pop3ext_auth_username_check(big, 10240, &error) == 0);
	i_free(big);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_escape_filter,
		test_escape_dn,
		test_username_check,
		NULL
	};
	return test_run(test_functions);
}
