/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "istream.h"
#include "test-common.h"
#include "pop3ext-auth-config.h"

static int
test_parse(pool_t pool, const char *text,
	   const struct pop3ext_auth_config **set_r, const char **error_r)
{
	struct istream *input;
	int ret;

	input = i_stream_create_from_data(text, strlen(text));
	ret = pop3ext_auth_config_parse(pool, "/etc/test.conf", input,
					set_r, error_r);
	i_stream_unref(&input);
	return ret;
}

static void test_config_ldap_defaults(void)
{
	pool_t pool = pool_alloconly_create("test", 4096);
	const struct pop3ext_auth_config *set;
	const struct pop3ext_auth_field_map *map;
	const char *error = NULL;

	test_begin("config: ldap with defaults");
	test_assert(test_parse(pool,
		"# comment\n"
		"\n"
		"password_check = ldap\n"
		"  ldap_uris = ldaps://a.example:636 ldaps://b.example\n"
		"ldap_base = dc=example,dc=test\r\n", &set, &error) == 0);
	test_assert(error == NULL);
	test_assert(set->password_check == POP3EXT_AUTH_PASSWORD_LDAP);
	/* attributes default to ldap when ldap_uris is set */
	test_assert(set->attributes == POP3EXT_AUTH_ATTRIBUTES_LDAP);
	test_assert(array_count(&set->ldap_uris) == 2);
	test_assert_strcmp(array_idx_elem(&set->ldap_uris, 1),
			   "ldaps://b.example");
	test_assert_strcmp(set->ldap_base, "dc=example,dc=test");
	test_assert_strcmp(set->ldap_user_filter, "(uid=%u)");
	test_assert_strcmp(set->recent_prefix, "recent:");
	test_assert(set->ldap_tls_require_cert == POP3EXT_AUTH_TLS_DEMAND);
	test_assert(set->ldap_scope == POP3EXT_AUTH_SCOPE_SUBTREE);
	test_assert(set->ldap_connect_timeout_msecs == 5000);
	test_assert(set->ldap_timeout_msecs == 10000);
	test_assert(set->ldap_retry_interval_msecs == 30000);
	test_assert(set->ldap_bind_connections == 4);
	test_assert(!set->ldap_starttls);
	test_assert(array_count(&set->ldap_fields) == 10);
	map = array_front(&set->ldap_fields);
	test_assert_strcmp(map->attribute, "pop3extOnDele");
	test_assert_strcmp(map->field, "pop3ext_on_dele");
	test_assert(array_count(&set->site_hooks) == 0);
	test_end();
	pool_unref(&pool);
}

static void test_config_pam_values(void)
{
	pool_t pool = pool_alloconly_create("test", 4096);
	const struct pop3ext_auth_config *set;
	const struct pop3ext_auth_site_hook_config *hook;
	const char *error = NULL;

	test_begin("config: pam and explicit values");
	test_assert(test_parse(pool,
		"password_check = pam\n"
		"pam_service = %s\n"
		"pam_tty = tty-%s-%%\n"
		"ldap_user_filter = (&(|(uid=%n)(mail=%u))(o=%d)(x=%s))\n"
		"pam_acct_mgmt = no\n"
		"pam_max_requests = 0\n"
		"recent_prefix = \"\"\n"
		"username_max_length = 64\n"
		"ldap_connect_timeout = 250ms\n"
		"ldap_timeout = 2 secs\n"
		"ldap_retry_interval = 1min\n"
		"site_hook = example deny_file=/x  field=a=b\n"
		"site_hook = second\n", &set, &error) == 0);
	test_assert(error == NULL);
	test_assert(set->password_check == POP3EXT_AUTH_PASSWORD_PAM);
	test_assert(set->attributes == POP3EXT_AUTH_ATTRIBUTES_NONE);
	test_assert_strcmp(set->pam_service, "%s");
	test_assert_strcmp(set->pam_tty, "tty-%s-%%");
	test_assert(!set->pam_acct_mgmt);
	test_assert(set->pam_max_requests == 0);
	test_assert_strcmp(set->recent_prefix, "");
	test_assert(set->username_max_length == 64);
	test_assert(set->ldap_connect_timeout_msecs == 250);
	test_assert(set->ldap_timeout_msecs == 2000);
	test_assert(set->ldap_retry_interval_msecs == 60000);
	test_assert(array_count(&set->site_hooks) == 2);
	hook = array_idx(&set->site_hooks, 0);
	test_assert_strcmp(hook->name, "example");
	test_assert_strcmp(hook->args, "deny_file=/x  field=a=b");
	test_assert(hook->line == 12);
	hook = array_idx(&set->site_hooks, 1);
	test_assert_strcmp(hook->args, "");
	test_end();
	pool_unref(&pool);
}

static void test_config_errors(void)
{
	static const struct {
		const char *text;
		const char *error;
	} tests[] = {
		{ "password_check = pam\nfoo = bar\n",
		  "/etc/test.conf line 2: foo: unknown key" },
		{ "password_check = kerberos\n",
		  "line 1: password_check: 'kerberos' is not one of: pam, ldap" },
		{ "password_check\n", "line 1: expected key = value" },
		{ "pam_service = x\n",
		  "/etc/test.conf: password_check: required" },
		{ "password_check = pam\npassword_check = ldap\n",
		  "line 2: password_check: given twice (first on line 1)" },
		{ "password_check = pam\npam_acct_mgmt = maybe\n",
		  "line 2: pam_acct_mgmt: 'maybe' is not yes or no" },
		{ "password_check = pam\npam_max_requests = -1\n",
		  "line 2: pam_max_requests: '-1' is not a number >= 0" },
		{ "password_check = pam\nusername_max_length = 0\n",
		  "username_max_length: '0' is not a number in 1..4096" },
		{ "password_check = pam\nldap_timeout = soon\n",
		  "line 2: ldap_timeout: 'soon' is not a time interval" },
		{ "password_check = pam\nldap_timeout = 0\n",
		  "line 2: ldap_timeout: must be more than 0" },
		{ "password_check = ldap\n",
		  "/etc/test.conf: ldap_uris: required with password_check = ldap" },
		{ "password_check = ldap\nldap_uris = http://x\n",
		  "line 2: ldap_uris: 'http://x' is not an ldap://" },
		{ "password_check = ldap\nldap_uris = ldap://x/dc=a??sub\n",
		  "line 2: ldap_uris: 'ldap://x/dc=a??sub': give base" },
		{ "password_check = ldap\nldap_uris = ldap://x\n",
		  "/etc/test.conf: ldap_base: required" },
		{ "password_check = ldap\nldap_uris = ldaps://x\n"
		  "ldap_base = dc=x\nldap_starttls = yes\n",
		  "line 4: ldap_starttls: ldap_starttls = yes needs ldap:// URIs" },
		{ "password_check = pam\nldap_user_filter = uid=%u\n",
		  "line 2: ldap_user_filter: an LDAP filter must start with '('" },
		{ "password_check = pam\nldap_user_filter = (&(uid=%u)\n",
		  "line 2: ldap_user_filter: unbalanced parentheses" },
		{ "password_check = pam\nldap_user_filter = (uid=%x)\n",
		  "line 2: ldap_user_filter: unknown %x" },
		{ "password_check = pam\nldap_iterate_filter = (uid=%u)\n",
		  "line 2: ldap_iterate_filter: %u is not allowed here" },
		{ "password_check = pam\nldap_user_dn_template = ou=people\n",
		  "ldap_user_dn_template: the DN template must contain %u or %n" },
		{ "password_check = pam\nldap_fields = pop3extOnDele\n",
		  "line 2: ldap_fields: 'pop3extOnDele' is not attribute=field" },
		{ "password_check = pam\nldap_fields = a(b=x\n",
		  "line 2: ldap_fields: 'a(b' is not an LDAP attribute name" },
		{ "password_check = pam\nldap_fields = a=x\ty\n",
		  "line 2: ldap_fields: 'y' is not attribute=field" },
		{ "password_check = pam\nldap_tls_ca_file = ca.pem\n",
		  "line 2: ldap_tls_ca_file: an absolute path is required" },
		{ "password_check = pam\nldap_tls_require_cert = sometimes\n",
		  "'sometimes' is not one of: never, allow, try, demand, hard" },
		{ "password_check = pam\nldap_bind_password = x\n",
		  "line 2: ldap_bind_password: set without ldap_bind_dn" },
		{ "password_check = ldap\nldap_uris = ldaps://x\n"
		  "ldap_base = dc=x\nldap_tls_cert_file = /c.pem\n",
		  "ldap_tls_cert_file and ldap_tls_key_file go together" },
		{ "password_check = pam\nsite_hook =\n",
		  "line 2: site_hook: a hook name is required" },
		{ "password_check = pam\nsite_hook = ../evil\n",
		  "line 2: site_hook: '../evil' is not a hook name" },
		{ "password_check = pam\nsite_hook_dir = relative\n",
		  "line 2: site_hook_dir: an absolute path is required" },
		{ "password_check = pam\nldap_connect_timeout_msecs = 5\n",
		  "line 2: ldap_connect_timeout_msecs: unknown key" },
		{ "password_check = pam\nldap_bind_connections = 0\n",
		  "ldap_bind_connections: '0' is not a number in 1..64" },
		{ "password_check = pam\nrecent_prefix = a b\n",
		  "line 2: recent_prefix: must not contain spaces" },
		/* M4: passdb fields, defaults and composed values */
		{ "password_check = pam\nldap_fields = =quota\n",
		  "line 2: ldap_fields: '=quota' is not =field=value" },
		{ "password_check = pam\nldap_fields = =home=/v/%u\n",
		  "line 2: ldap_fields: /v/%u: only %{ldap:attribute} and %%" },
		{ "password_check = pam\nldap_fields = =home=/v/%{ldap:a(b}\n",
		  "line 2: ldap_fields: 'a(b' is not an LDAP attribute name" },
		{ "password_check = pam\nldap_fields = uid=passdb:user\n",
		  "line 2: ldap_fields: passdb:user is not a passdb field" },
		{ "password_check = pam\nldap_fields = =passdb:username=x\n",
		  "line 2: ldap_fields: passdb:username is not a passdb field" },
		/* S1: a filter that does not pin the user */
		{ "password_check = pam\nldap_user_filter = (cn=alice)\n",
		  "line 2: ldap_user_filter: must match the user's name: "
		  "give an equality with %u or %n" },
		{ "password_check = pam\nldap_user_filter = (objectClass=*)\n",
		  "line 2: ldap_user_filter: must match the user's name" },
		{ "password_check = pam\nldap_user_filter = (&(uid=%d)(o=%s))\n",
		  "line 2: ldap_user_filter: must match the user's name" },
		{ "password_check = pam\nldap_user_filter = (uid=%u*)\n",
		  "line 2: ldap_user_filter: %u next to '*'" },
		{ "password_check = pam\nldap_user_filter = (uid=*%n)\n",
		  "line 2: ldap_user_filter: %n next to '*'" },
		{ "password_check = pam\nldap_user_filter = (uid~=%u)\n",
		  "line 2: ldap_user_filter: must match the user's name" },
		/* S5: PAM service and tty */
		{ "password_check = pam\npam_service = dovecot-%d\n",
		  "line 2: pam_service: %d is not allowed here (only %s and %%" },
		{ "password_check = pam\npam_service = %u\n",
		  "line 2: pam_service: %u is not allowed here" },
		{ "password_check = pam\npam_service = dovecot-%{service}\n",
		  "line 2: pam_service: unknown %{" },
		{ "password_check = pam\npam_tty = %x\n",
		  "line 2: pam_tty: unknown %x" },
		{ "password_check = pam\npam_tty = %n\n",
		  "line 2: pam_tty: %n is not allowed here" },
		/* S4: no silent downgrade */
		{ "password_check = ldap\nldap_uris = ldap://x\n"
		  "ldap_base = dc=x\nldap_tls_ca_file = /ca.pem\n",
		  "line 4: ldap_tls_ca_file: set, but no URI uses TLS" },
		{ "password_check = ldap\nldap_uris = ldap://x\n"
		  "ldap_base = dc=x\nldap_tls_require_cert = hard\n",
		  "line 4: ldap_tls_require_cert: set, but no URI uses TLS" },
		{ "password_check = ldap\nldap_uris = ldaps://x ldap://y\n"
		  "ldap_base = dc=x\n",
		  "line 2: ldap_uris: mixes ldaps:// and ldap:// URIs" },
		{ "password_check = ldap\nldap_uris = ldap://x\n"
		  "ldap_base = dc=x\nldap_bind_dn = cn=x\n",
		  "line 4: ldap_bind_dn: set without ldap_bind_password" },
		{ "password_check = pam\nldap_username_attribute =\n",
		  "line 2: ldap_username_attribute: must not be empty" },
		{ "password_check = pam\nsite_hook_dir =\n",
		  "line 2: site_hook_dir: must not be empty" },
	};
	pool_t pool = pool_alloconly_create("test", 4096);
	const struct pop3ext_auth_config *set;
	const char *error;
	unsigned int i;

	test_begin("config: errors name file, line and key");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		error = NULL;
		test_assert_idx(test_parse(pool, tests[i].text, &set,
					   &error) < 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error) != NULL, i);
		if (error != NULL && strstr(error, tests[i].error) == NULL)
			i_info("test %u: got: %s", i, error);
		p_clear(pool);
	}
	test_end();
	pool_unref(&pool);
}

static void test_config_read_file(void)
{
	pool_t pool = pool_alloconly_create("test", 1024);
	const struct pop3ext_auth_config *set;
	const char *error = NULL;

	test_begin("config: read errors");
	test_assert(pop3ext_auth_config_read(pool, "", &set, &error) < 0);
	test_assert(error != NULL && strstr(error, "path") != NULL);
	test_assert(pop3ext_auth_config_read(pool, "/nonexistent/pop3ext.conf",
					     &set, &error) < 0);
	test_assert(strstr(error, "open(/nonexistent/pop3ext.conf) failed") != NULL);
	test_end();
	pool_unref(&pool);
}

static const char *test_escape_brackets(const char *value)
{
	return t_strconcat("[", value, "]", NULL);
}

static void test_template_expand(void)
{
	test_begin("pop3ext_auth_template_expand");
	test_assert_strcmp(pop3ext_auth_template_expand(
		"(uid=%u)", "alice", "pop3", NULL), "(uid=alice)");
	test_assert_strcmp(pop3ext_auth_template_expand(
		"uid=%n,ou=%d,%%,%s", "bob@example.test", "imap",
		test_escape_brackets),
		"uid=[bob],ou=[example.test],%,[imap]");
	test_assert_strcmp(pop3ext_auth_template_expand(
		"%n/%d", "nodomain", "pop3", NULL), "nodomain/");
	/* split at the first '@', as Dovecot does (W1) */
	test_assert_strcmp(pop3ext_auth_template_expand(
		"%n/%d", "alice@evil.test@example.test", "pop3", NULL),
		"alice/evil.test@example.test");
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_config_ldap_defaults,
		test_config_pam_values,
		test_config_errors,
		test_config_read_file,
		test_template_expand,
		NULL
	};
	return test_run(test_functions);
}
