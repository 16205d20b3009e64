/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "str.h"
#include "unichar.h"
#include "pop3ext-auth-escape.h"

static bool byte_is_printable_ascii(unsigned char c)
{
	return c >= 0x20 && c < 0x7f;
}

const char *pop3ext_ldap_escape_filter(const char *value)
{
	string_t *str = t_str_new(strlen(value) + 16);
	const unsigned char *p;

	for (p = (const unsigned char *)value; *p != '\0'; p++) {
		if (*p == '*' || *p == '(' || *p == ')' || *p == '\\' ||
		    !byte_is_printable_ascii(*p))
			str_printfa(str, "\\%02x", *p);
		else
			str_append_c(str, *p);
	}
	return str_c(str);
}

const char *pop3ext_ldap_escape_dn(const char *value)
{
	string_t *str = t_str_new(strlen(value) + 16);
	const unsigned char *p;

	for (p = (const unsigned char *)value; *p != '\0'; p++) {
		if (!byte_is_printable_ascii(*p))
			str_printfa(str, "\\%02x", *p);
		else if (strchr(",+\"\\<>;=", *p) != NULL ||
			 (p == (const unsigned char *)value &&
			  (*p == '#' || *p == ' ')) ||
			 (*p == ' ' && p[1] == '\0')) {
			str_append_c(str, '\\');
			str_append_c(str, *p);
		} else
			str_append_c(str, *p);
	}
	return str_c(str);
}

int pop3ext_auth_username_check(const char *user, unsigned int max_length,
				const char **error_r)
{
	const unsigned char *p;
	size_t len = strlen(user);

	if (len == 0) {
		*error_r = "empty user name";
		return -1;
	}
	if (len > max_length) {
		*error_r = t_strdup_printf(
			"user name is %zu bytes long (username_max_length = %u)",
			len, max_length);
		return -1;
	}
	if (!uni_utf8_str_is_valid(user)) {
		*error_r = "user name is not valid UTF-8";
		return -1;
	}
	for (p = (const unsigned char *)user; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*error_r = "user name contains control characters";
			return -1;
		}
	}
	/* directories ignore them when matching (RFC 4518), so " alice"
	   would be alice with another home */
	if (user[0] == ' ' || user[len-1] == ' ') {
		*error_r = "user name begins or ends with a space";
		return -1;
	}
	return 0;
}
