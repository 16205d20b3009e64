/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* The POP3 dispatcher's command lists (plugin/pop3/pop3ext-command-list.c):
   pop3ext_deny and the other lists of command names an admin or a userdb
   field gives. (The deny hook itself and the command-line dispatch need a
   pop3 client and are covered by the integration tests.) The input is the
   list; names that parse are valid, upper-case, known and unique. */

#include "fuzz-common.h"
#include "pop3ext-command-list.h"

static const char *const known[] = {
	"USER", "PASS", "APOP", "AUTH", "STLS", "CAPA", "QUIT", "STAT",
	"LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST",
	"XECHO", "X-LONG_NAME-1",
};

static bool fuzz_known(const char *name, void *context ATTR_UNUSED)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(known); i++) {
		if (strcasecmp(known[i], name) == 0)
			return TRUE;
	}
	return FALSE;
}

int LLVMFuzzerInitialize(int *argc ATTR_UNUSED, char ***argv ATTR_UNUSED)
{
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	T_BEGIN {
		const char *value = fuzz_str(data, size);
		ARRAY_TYPE(const_string) names;
		const char *const *name, *const *other, *error = NULL;
		int ret;

		(void)pop3ext_command_name_is_valid(value);
		t_array_init(&names, 8);
		ret = pop3ext_command_list_parse(value, fuzz_known, NULL,
						 &names, &error);
		if (ret < 0)
			fuzz_check(error != NULL);
		array_foreach(&names, name) {
			const char *p;

			fuzz_check(pop3ext_command_name_is_valid(*name));
			fuzz_check(fuzz_known(*name, NULL));
			for (p = *name; *p != '\0'; p++)
				fuzz_check(!(*p >= 'a' && *p <= 'z'));
			for (other = name + 1;
			     other < array_front(&names) + array_count(&names);
			     other++)
				fuzz_check(strcmp(*name, *other) != 0);
		}
	} T_END;
	return 0;
}
