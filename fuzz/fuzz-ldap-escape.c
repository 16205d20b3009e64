/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* LDAP filter and DN escaping and the user name check
   (auth/pop3ext-auth-escape.c), and template expansion
   (auth/pop3ext-auth-config.c): everything a client's login name passes
   through on its way into an LDAP request. The input is "template\nuser";
   the whole of it is also escaped as one value. Checked properties: an
   escaped filter value holds only printable ASCII, no '*', '(' or ')',
   and every '\' starts a \XX pair, so it can only match itself; an escaped
   DN value has no unescaped special character; an expansion with escaping
   holds no unescaped filter metacharacter that the template did not. */

#include "fuzz-common.h"
#include "pop3ext-auth-config.h"
#include "pop3ext-auth-escape.h"

#include <ctype.h>

int LLVMFuzzerInitialize(int *argc ATTR_UNUSED, char ***argv ATTR_UNUSED)
{
	fuzz_init();
	return 0;
}

static bool is_printable(unsigned char c)
{
	return c >= 0x20 && c < 0x7f;
}

static void check_filter_value(const char *value)
{
	const char *escaped = pop3ext_ldap_escape_filter(value);
	const unsigned char *p;

	for (p = (const unsigned char *)escaped; *p != '\0'; p++) {
		fuzz_check(is_printable(*p));
		fuzz_check(*p != '*' && *p != '(' && *p != ')');
		if (*p == '\\') {
			fuzz_check(isxdigit(p[1]) && isxdigit(p[2]));
			p += 2;
		}
	}
}

static void check_dn_value(const char *value)
{
	const char *escaped = pop3ext_ldap_escape_dn(value);
	const unsigned char *p, *start = (const unsigned char *)escaped;
	size_t len = strlen(escaped);

	for (p = start; *p != '\0'; p++) {
		fuzz_check(is_printable(*p));
		if (*p == '\\') {
			fuzz_check(p[1] != '\0');
			if (isxdigit(p[1]) && isxdigit(p[2]))
				p += 2;
			else {
				fuzz_check(strchr(",+\"\\<>;=# ", p[1]) != NULL);
				p++;
			}
			continue;
		}
		fuzz_check(strchr(",+\"<>;=", *p) == NULL);
		if (p == start)
			fuzz_check(*p != '#' && *p != ' ');
	}
	if (len > 0 && escaped[len-1] == ' ')
		fuzz_check(len >= 2 && escaped[len-2] == '\\');
}

/* Templates come from the configuration file, whose reader accepts only
   %u, %n, %d, %s and %% (pop3ext_auth_template_expand() relies on that);
   others are not the expansion's input. */
static bool template_is_valid(const char *template)
{
	const char *p;

	for (p = template; *p != '\0'; p++) {
		if (*p == '%') {
			p++;
			if (*p == '\0' || strchr("unds%", *p) == NULL)
				return FALSE;
		}
	}
	return TRUE;
}

/* every '\' in s starts a \XX pair (RFC 4515) */
static bool escapes_are_pairs(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\') {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]))
				return FALSE;
			s += 2;
		}
	}
	return TRUE;
}

/* unescaped '(' ')' '*' in a filter */
static unsigned int count_meta(const char *s)
{
	unsigned int n = 0;

	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '(' || *s == ')' || *s == '*')
			n++;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	T_BEGIN {
		const char *whole = fuzz_str(data, size);
		const char *nl = strchr(whole, '\n');
		const char *template, *user, *error, *exp;

		check_filter_value(whole);
		check_dn_value(whole);
		(void)pop3ext_auth_username_check(whole, 256, &error);

		if (nl != NULL && template_is_valid(t_strdup_until(whole, nl))) {
			template = t_strdup_until(whole, nl);
			user = nl + 1;
			check_filter_value(user);
			check_dn_value(user);
			if (pop3ext_auth_username_check(user, 256, &error) < 0)
				fuzz_check(error != NULL);
			(void)pop3ext_auth_template_expand(template, user,
							   "pop3", NULL);
			(void)pop3ext_auth_template_expand(template, user, "pop3",
						pop3ext_ldap_escape_dn);
			exp = pop3ext_auth_template_expand(template, user, "pop3",
						pop3ext_ldap_escape_filter);
			/* the user adds no filter metacharacter: at most the
			   template's own ones. (Only for templates whose own
			   escapes are RFC 4515 pairs: a stray '\' before a
			   placeholder that expands to "" escapes the next
			   character of the template instead.) */
			if (escapes_are_pairs(template))
				fuzz_check(count_meta(exp) <= count_meta(template));
		}
	} T_END;
	return 0;
}
