/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "test-common.h"
#include "pop3ext-command-list.h"

static const char *const test_known[] = {
	"CAPA", "DELE", "LIST", "NOOP", "QUIT", "RETR", "RSET", "STAT",
	"TOP", "UIDL", "X-PURGE", NULL
};

static bool test_is_known(const char *name, void *context ATTR_UNUSED)
{
	return str_array_find(test_known, name);
}

static const char *test_names(const ARRAY_TYPE(const_string) *names)
{
	string_t *str = t_str_new(64);
	const char *name;

	array_foreach_elem(names, name) {
		if (str_len(str) > 0)
			str_append_c(str, ' ');
		str_append(str, name);
	}
	return str_c(str);
}

static void test_command_name_is_valid(void)
{
	test_begin("pop3ext_command_name_is_valid");
	test_assert(pop3ext_command_name_is_valid("DELE"));
	test_assert(pop3ext_command_name_is_valid("x-purge_2"));
	test_assert(pop3ext_command_name_is_valid(
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"));
	test_assert(!pop3ext_command_name_is_valid(
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"));
	test_assert(!pop3ext_command_name_is_valid(""));
	test_assert(!pop3ext_command_name_is_valid("DE;LE"));
	test_assert(!pop3ext_command_name_is_valid("RETR\x01"));
	test_assert(!pop3ext_command_name_is_valid("T\xc3\x96P"));
	test_end();
}

static void test_command_list_parse_valid(void)
{
	static const struct {
		const char *value, *names;
	} tests[] = {
		{ "", "" },
		{ "   ", "" },
		{ "DELE", "DELE" },
		{ "dele top", "DELE TOP" },
		{ "DELE,TOP", "DELE TOP" },
		{ " ,DELE ,, top\tUIDL, ", "DELE TOP UIDL" },
		{ "DELE dele Dele", "DELE" },
		{ "x-purge", "X-PURGE" },
	};
	ARRAY_TYPE(const_string) names;
	const char *error;
	unsigned int i;

	test_begin("pop3ext_command_list_parse valid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		t_array_init(&names, 4);
		error = NULL;
		test_assert_idx(pop3ext_command_list_parse(tests[i].value,
			test_is_known, NULL, &names, &error) == 0, i);
		test_assert_idx(error == NULL, i);
		test_assert_strcmp_idx(test_names(&names), tests[i].names, i);
	}
	test_end();
}

static void test_command_list_parse_invalid(void)
{
	static const struct {
		const char *value, *names, *error;
	} tests[] = {
		{ "DELETE", "", "'DELETE' is not a POP3 command of this server" },
		{ "DELE;TOP", "", "'DELE;TOP' is not a command name" },
		{ "DELE USER", "DELE", "'USER' is a command before login: only "
		  "commands after login can be denied" },
		{ "apop", "", "'APOP' is a command before login" },
		{ "PASS,TOP", "TOP", "'PASS' is a command before login" },
		{ "AUTH", "", "'AUTH' is a command before login" },
		{ "STLS", "", "'STLS' is a command before login" },
		{ "XCLIENT", "", "'XCLIENT' is a command before login" },
		{ "TOP D\xc3\xa9LE RETR", "TOP RETR", "is not a command name" },
		{ "TOP ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "TOP",
		  "is not a command name" },
		{ "TOP\x01", "", "is not a command name" },
	};
	ARRAY_TYPE(const_string) names;
	const char *error;
	unsigned int i;

	test_begin("pop3ext_command_list_parse invalid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		t_array_init(&names, 4);
		error = NULL;
		test_assert_idx(pop3ext_command_list_parse(tests[i].value,
			test_is_known, NULL, &names, &error) < 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error) != NULL, i);
		test_assert_strcmp_idx(test_names(&names), tests[i].names, i);
	}
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_command_name_is_valid,
		test_command_list_parse_valid,
		test_command_list_parse_invalid,
		NULL
	};
	return test_run(test_functions);
}
