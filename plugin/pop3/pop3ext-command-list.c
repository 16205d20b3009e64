/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include <ctype.h>
#include "str-sanitize.h"
#include "pop3ext-command-list.h"

/* Handled by pop3-login before the session exists (pop3-login/client.c);
   CAPA and QUIT exist after login too. */
static const char *const pop3ext_pre_login_commands[] = {
	"APOP", "AUTH", "PASS", "STLS", "USER", "XCLIENT", "XOIP", NULL
};

bool pop3ext_command_name_is_valid(const char *name)
{
	size_t len;

	for (len = 0; name[len] != '\0'; len++) {
		if (!i_isalnum(name[len]) && name[len] != '-' &&
		    name[len] != '_')
			return FALSE;
	}
	return len > 0 && len <= POP3EXT_COMMAND_NAME_MAX_LEN;
}

int pop3ext_command_list_parse(const char *value,
			       pop3ext_command_known_func_t *known_func,
			       void *context, ARRAY_TYPE(const_string) *names_r,
			       const char **error_r)
{
	const char *const *tokens, *name, *error = NULL;

	tokens = t_strsplit_spaces(value, " \t,");
	for (; *tokens != NULL; tokens++) {
		if (!pop3ext_command_name_is_valid(*tokens)) {
			if (error == NULL) {
				error = t_strdup_printf(
					"'%s' is not a command name",
					str_sanitize(*tokens, 40));
			}
			continue;
		}
		name = t_str_ucase(*tokens);
		if (str_array_find(pop3ext_pre_login_commands, name)) {
			if (error == NULL) {
				error = t_strdup_printf(
					"'%s' is a command before login: only "
					"commands after login can be denied",
					name);
			}
			continue;
		}
		if (!known_func(name, context)) {
			if (error == NULL) {
				error = t_strdup_printf(
					"'%s' is not a POP3 command of this "
					"server", name);
			}
			continue;
		}
		if (!array_lsearch(names_r, &name, i_strcmp_p))
			array_push_back(names_r, &name);
	}
	if (error != NULL) {
		*error_r = error;
		return -1;
	}
	return 0;
}
