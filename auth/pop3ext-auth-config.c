/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "istream.h"
#include "str-sanitize.h"
#include "settings-parser.h"
#include "pop3ext-auth-config.h"

#include <stddef.h>
#include <ctype.h>
#include <fcntl.h>
#include <unistd.h>

/* a line longer than this is an error (the file is an admin's) */
#define CONFIG_MAX_LINE_LENGTH 8192

enum key_type {
	KEY_STRING,
	KEY_PATH,	/* absolute path, or empty */
	KEY_BOOL,
	KEY_UINT,
	KEY_MSECS,
	KEY_ENUM,
	KEY_DN_TEMPLATE,
	KEY_FILTER,
	KEY_PAM_TEMPLATE,
	KEY_ATTRIBUTE,
	KEY_URIS,
	KEY_FIELDS,
	KEY_SITE_HOOK,
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;
	/* KEY_ENUM: the accepted values, in enum order */
	const char *const *values;
	/* KEY_UINT: inclusive range */
	unsigned int min, max;
};

static const char *const password_check_values[] = { "pam", "ldap", NULL };
static const char *const attributes_values[] = { "none", "ldap", NULL };
static const char *const tls_require_cert_values[] = {
	"never", "allow", "try", "demand", "hard", NULL
};
static const char *const scope_values[] = {
	"base", "onelevel", "subtree", NULL
};

#define DEF(name, type) \
	{ #name, type, offsetof(struct pop3ext_auth_config, name), NULL, 0, 0 }
#define DEF_ENUM(name, values) \
	{ #name, KEY_ENUM, offsetof(struct pop3ext_auth_config, name), \
	  values, 0, 0 }
#define DEF_UINT(name, min, max) \
	{ #name, KEY_UINT, offsetof(struct pop3ext_auth_config, name), \
	  NULL, min, max }

static const struct key_def key_defs[] = {
	DEF_ENUM(password_check, password_check_values),
	DEF_ENUM(attributes, attributes_values),
	DEF(recent_prefix, KEY_STRING),
	DEF_UINT(username_max_length, 1, 4096),
	DEF(pop3_disabled_reason, KEY_STRING),
	DEF(site_hook_dir, KEY_PATH),
	DEF(site_hooks, KEY_SITE_HOOK),

	DEF(pam_service, KEY_PAM_TEMPLATE),
	DEF(pam_tty, KEY_PAM_TEMPLATE),
	DEF(pam_acct_mgmt, KEY_BOOL),
	DEF_UINT(pam_max_requests, 0, UINT_MAX),

	DEF(ldap_uris, KEY_URIS),
	DEF(ldap_starttls, KEY_BOOL),
	DEF(ldap_tls_ca_file, KEY_PATH),
	DEF(ldap_tls_cert_file, KEY_PATH),
	DEF(ldap_tls_key_file, KEY_PATH),
	DEF_ENUM(ldap_tls_require_cert, tls_require_cert_values),
	DEF(ldap_bind_dn, KEY_STRING),
	DEF(ldap_bind_password, KEY_STRING),
	DEF(ldap_base, KEY_STRING),
	DEF_ENUM(ldap_scope, scope_values),
	DEF(ldap_user_dn_template, KEY_DN_TEMPLATE),
	DEF(ldap_user_filter, KEY_FILTER),
	DEF(ldap_iterate_filter, KEY_FILTER),
	DEF(ldap_username_attribute, KEY_ATTRIBUTE),
	DEF(ldap_password_attribute, KEY_ATTRIBUTE),
	DEF(ldap_fields, KEY_FIELDS),
	DEF(ldap_pop3_enabled_attribute, KEY_ATTRIBUTE),
	DEF(ldap_allow_nets_attribute, KEY_ATTRIBUTE),
	DEF(ldap_connect_timeout_msecs, KEY_MSECS),
	DEF(ldap_timeout_msecs, KEY_MSECS),
	DEF(ldap_retry_interval_msecs, KEY_MSECS),
	DEF_UINT(ldap_bind_connections, 1, 64),
};

/* The attributes of auth/schema/pop3ext.schema and the userdb fields of the
   policy engine they carry. */
static const char *const default_ldap_fields =
	"pop3extOnDele=pop3ext_on_dele "
	"pop3extOnRetr=pop3ext_on_retr "
	"pop3extExpireAfterRetr=pop3ext_expire_after_retr "
	"pop3extMaxAge=pop3ext_max_age "
	"pop3extMinAge=pop3ext_min_age "
	"pop3extLegalHold=pop3ext_legal_hold "
	"pop3extVisibleSince=pop3ext_visible_since "
	"pop3extRecentWindow=pop3ext_recent_window "
	"pop3extAudit=pop3ext_audit "
	"pop3extDenyCommands=pop3ext_deny_commands";

struct config_parser {
	pool_t pool;
	const char *path;
	struct pop3ext_auth_config *set;
	/* which keys were given, by index in key_defs, and where */
	unsigned int seen_line[N_ELEMENTS(key_defs)];
};

/* The config key name as the admin writes it: the struct member names
   ending in _msecs are written without it. */
static const char *key_name(const struct key_def *def)
{
	if (def->type == KEY_MSECS) {
		i_assert(strlen(def->name) > 6 &&
			 strcmp(def->name + strlen(def->name) - 6, "_msecs") == 0);
		return t_strndup(def->name, strlen(def->name) - 6);
	}
	if (def->type == KEY_SITE_HOOK)
		return "site_hook";
	return def->name;
}

static const struct key_def *key_find(const char *name, unsigned int *idx_r)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(key_defs); i++) {
		if (strcmp(key_name(&key_defs[i]), name) == 0) {
			*idx_r = i;
			return &key_defs[i];
		}
	}
	return NULL;
}

static void config_set_defaults(struct pop3ext_auth_config *set, pool_t pool)
{
	set->password_check = (enum pop3ext_auth_password_check)-1;
	set->attributes = (enum pop3ext_auth_attributes)-1;
	set->recent_prefix = "recent:";
	set->username_max_length = 256;
	set->pop3_disabled_reason = "POP3 access is disabled for this account.";
	set->site_hook_dir = POP3EXT_SITE_HOOK_DIR;
	p_array_init(&set->site_hooks, pool, 2);

	set->pam_service = "dovecot";
	set->pam_tty = "dovecot";
	set->pam_acct_mgmt = TRUE;
	set->pam_max_requests = 100;

	p_array_init(&set->ldap_uris, pool, 2);
	set->ldap_starttls = FALSE;
	set->ldap_tls_ca_file = "";
	set->ldap_tls_cert_file = "";
	set->ldap_tls_key_file = "";
	set->ldap_tls_require_cert = POP3EXT_AUTH_TLS_DEMAND;
	set->ldap_bind_dn = "";
	set->ldap_bind_password = "";
	set->ldap_base = "";
	set->ldap_scope = POP3EXT_AUTH_SCOPE_SUBTREE;
	set->ldap_user_dn_template = "";
	set->ldap_user_filter = "(uid=%u)";
	set->ldap_iterate_filter = "(uid=*)";
	set->ldap_username_attribute = "uid";
	set->ldap_password_attribute = "";
	p_array_init(&set->ldap_fields, pool, 16);
	set->ldap_pop3_enabled_attribute = "pop3extPOP3Enabled";
	set->ldap_allow_nets_attribute = "pop3extAllowedNetworks";
	set->ldap_connect_timeout_msecs = 5000;
	set->ldap_timeout_msecs = 10000;
	set->ldap_retry_interval_msecs = 30000;
	set->ldap_bind_connections = 4;
}

/* allowed: the placeholders that may be used ("unds", "s" or "") */
static int template_check(const char *value, const char *allowed,
			  const char **error_r)
{
	const char *p;

	for (p = value; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		p++;
		switch (*p) {
		case 'u':
		case 'n':
		case 'd':
		case 's':
			if (strchr(allowed, *p) == NULL) {
				*error_r = t_strdup_printf(
					"%%%c is not allowed here%s", *p,
					strcmp(allowed, "s") != 0 ? "" :
					" (only %s and %%: what the client "
					"sends must not choose it)");
				return -1;
			}
			break;
		case '%':
			break;
		case '\0':
			*error_r = "ends with a lone %";
			return -1;
		default:
			*error_r = t_strdup_printf(
				"unknown %%%c (use %%u, %%n, %%d, %%s or %%%%)",
				*p);
			return -1;
		}
	}
	return 0;
}

/* ldap_user_filter must pin the entry to the user's name: an equality
   assertion (attr=%u) or (attr=%n), and no placeholder in a substring
   match. Otherwise one login could find another user's entry (with PAM,
   whose password was never checked against it). */
static int user_filter_check(const char *value, const char **error_r)
{
	const char *p;
	bool pinned = FALSE;

	for (p = value; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p != '%' || p[1] == '%') {
			if (*p == '%')
				p++;
			continue;
		}
		if ((p > value && p[-1] == '*') || p[2] == '*') {
			*error_r = t_strdup_printf(
				"%%%c next to '*' (a substring match finds "
				"other users' entries)", p[1]);
			return -1;
		}
		if ((p[1] == 'u' || p[1] == 'n') && p[2] == ')' &&
		    p - value >= 2 && p[-1] == '=' &&
		    strchr("~<>:", p[-2]) == NULL)
			pinned = TRUE;
		p++;
	}
	if (!pinned) {
		*error_r = "must match the user's name: give an equality with "
			"%u or %n, e.g. (uid=%u)";
		return -1;
	}
	return 0;
}

/* An LDAP filter: parenthesised and balanced (slapd checks the rest). */
static int filter_check(const char *value, bool allow_placeholders,
			const char **error_r)
{
	const char *p;
	int depth = 0;

	if (template_check(value, allow_placeholders ? "unds" : "",
			   error_r) < 0)
		return -1;
	if (value[0] != '(') {
		*error_r = "an LDAP filter must start with '('";
		return -1;
	}
	for (p = value; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '(')
			depth++;
		else if (*p == ')') {
			if (--depth < 0)
				break;
			if (depth == 0 && p[1] != '\0') {
				*error_r = "text after the filter's closing ')'";
				return -1;
			}
		}
	}
	if (depth != 0) {
		*error_r = "unbalanced parentheses";
		return -1;
	}
	return 0;
}

static bool attribute_name_is_valid(const char *name)
{
	const char *p;

	/* RFC 4512 descr (keystring) or numericoid, with options */
	if (!i_isalnum(name[0]))
		return FALSE;
	for (p = name; *p != '\0'; p++) {
		if (!i_isalnum(*p) && *p != '-' && *p != ';' && *p != '.')
			return FALSE;
	}
	return TRUE;
}

static bool field_name_is_valid(const char *name)
{
	const char *p;

	if (name[0] == '\0')
		return FALSE;
	for (p = name; *p != '\0'; p++) {
		if (!i_isalnum(*p) && *p != '_' && *p != '-' && *p != ':')
			return FALSE;
	}
	return TRUE;
}

static int parse_uris(struct config_parser *parser, const char *value,
		      const char **error_r)
{
	const char *const *uris = t_strsplit_spaces(value, " ,");

	if (uris[0] == NULL) {
		*error_r = "no URI given";
		return -1;
	}
	array_clear(&parser->set->ldap_uris);
	for (; *uris != NULL; uris++) {
		const char *uri = *uris, *host;

		if (str_begins(uri, "ldap://"))
			host = uri + 7;
		else if (str_begins(uri, "ldaps://"))
			host = uri + 8;
		else if (str_begins(uri, "ldapi://"))
			host = uri + 8;
		else {
			*error_r = t_strdup_printf(
				"'%s' is not an ldap://, ldaps:// or ldapi:// URI",
				uri);
			return -1;
		}
		if (strchr(host, '?') != NULL) {
			*error_r = t_strdup_printf(
				"'%s': give base and filter with ldap_base and "
				"ldap_user_filter, not in the URI", uri);
			return -1;
		}
		if (array_count(&parser->set->ldap_uris) == 32) {
			*error_r = "more than 32 URIs";
			return -1;
		}
		uri = p_strdup(parser->pool, uri);
		array_push_back(&parser->set->ldap_uris, &uri);
	}
	return 0;
}

/* The passdb fields ldap_fields may set: those that restrict the login or
   proxy it - never one that changes who the user is. */
static const char *const passdb_field_names[] = {
	"nologin", "reason", "allow_nets", "allow_real_nets", "nodelay",
	"proxy", "proxy_maybe", "host", "hostip", "port", "ssl", "starttls",
	NULL
};

/* Checks map->template: %{ldap:attribute} and %% only; collects the
   attributes. */
static int field_template_parse(struct config_parser *parser,
				struct pop3ext_auth_field_map *map,
				const char **error_r)
{
	ARRAY_TYPE(const_string) attrs;
	const char *p, *end, *name;

	p_array_init(&attrs, parser->pool, 4);
	for (p = map->template; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		if (p[1] == '%') {
			p++;
			continue;
		}
		if (!str_begins(p, "%{ldap:") ||
		    (end = strchr(p, '}')) == NULL) {
			*error_r = t_strdup_printf(
				"%s: only %%{ldap:attribute} and %%%% may be "
				"used in a value", map->template);
			return -1;
		}
		name = p_strdup_until(parser->pool, p + 7, end);
		if (!attribute_name_is_valid(name)) {
			*error_r = t_strdup_printf(
				"'%s' is not an LDAP attribute name", name);
			return -1;
		}
		array_push_back(&attrs, &name);
		p = end;
	}
	array_append_zero(&attrs);
	map->template_attrs = array_front(&attrs);
	return 0;
}

static int parse_fields(struct config_parser *parser, const char *value,
			const char **error_r)
{
	const char *const *pairs = t_strsplit_spaces(value, " \t");
	struct pop3ext_auth_field_map *map;

	array_clear(&parser->set->ldap_fields);
	for (; *pairs != NULL; pairs++) {
		const char *eq = strchr(*pairs, '='), *field, *eq2;

		if (eq == NULL) {
			*error_r = t_strdup_printf(
				"'%s' is not attribute=field", *pairs);
			return -1;
		}
		map = array_append_space(&parser->set->ldap_fields);
		map->attribute = p_strdup_until(parser->pool, *pairs, eq);
		field = eq + 1;
		if (map->attribute[0] == '\0') {
			/* =field=template */
			eq2 = strchr(field, '=');
			if (eq2 == NULL) {
				*error_r = t_strdup_printf(
					"'%s' is not =field=value", *pairs);
				return -1;
			}
			map->template = p_strdup(parser->pool, eq2 + 1);
			field = t_strdup_until(field, eq2);
			if (field_template_parse(parser, map, error_r) < 0)
				return -1;
		}
		if (str_begins(field, "passdb:")) {
			map->passdb = TRUE;
			field += 7;
			if (!str_array_find(passdb_field_names, field)) {
				*error_r = t_strdup_printf(
					"passdb:%s is not a passdb field "
					"ldap_fields may set (%s)", field,
					t_strarray_join(passdb_field_names,
							", "));
				return -1;
			}
		}
		map->field = p_strdup(parser->pool, field);
		if (map->template != NULL) {
			/* no attribute to check */
		} else if (!attribute_name_is_valid(map->attribute)) {
			*error_r = t_strdup_printf(
				"'%s' is not an LDAP attribute name",
				map->attribute);
			return -1;
		}
		if (!field_name_is_valid(map->field)) {
			*error_r = t_strdup_printf(
				"'%s' is not a userdb field name", map->field);
			return -1;
		}
	}
	return 0;
}

static int parse_site_hook(struct config_parser *parser, const char *value,
			   unsigned int line, const char **error_r)
{
	struct pop3ext_auth_site_hook_config *hook;
	const char *p, *name;

	p = value;
	while (*p != '\0' && *p != ' ' && *p != '\t')
		p++;
	name = t_strdup_until(value, p);
	while (*p == ' ' || *p == '\t')
		p++;
	if (name[0] == '\0') {
		*error_r = "a hook name is required";
		return -1;
	}
	for (const char *c = name; *c != '\0'; c++) {
		if (!i_isalnum(*c) && *c != '_' && *c != '-') {
			*error_r = t_strdup_printf(
				"'%s' is not a hook name (letters, digits, _ and -)",
				name);
			return -1;
		}
	}
	hook = array_append_space(&parser->set->site_hooks);
	hook->name = p_strdup(parser->pool, name);
	hook->args = p_strdup(parser->pool, p);
	hook->line = line;
	return 0;
}

static int
parse_value(struct config_parser *parser, const struct key_def *def,
	    const char *value, unsigned int line, const char **error_r)
{
	void *ptr = PTR_OFFSET(parser->set, def->offset);
	unsigned int i, num;

	switch (def->type) {
	case KEY_STRING:
		*(const char **)ptr = p_strdup(parser->pool, value);
		return 0;
	case KEY_PATH:
		if (value[0] == '\0' && def->offset ==
		    offsetof(struct pop3ext_auth_config, site_hook_dir)) {
			*error_r = "must not be empty";
			return -1;
		}
		if (value[0] != '\0' && value[0] != '/') {
			*error_r = "an absolute path is required";
			return -1;
		}
		*(const char **)ptr = p_strdup(parser->pool, value);
		return 0;
	case KEY_BOOL:
		if (strcmp(value, "yes") == 0)
			*(bool *)ptr = TRUE;
		else if (strcmp(value, "no") == 0)
			*(bool *)ptr = FALSE;
		else {
			*error_r = t_strdup_printf(
				"'%s' is not yes or no", value);
			return -1;
		}
		return 0;
	case KEY_UINT:
		if (str_to_uint(value, &num) < 0 ||
		    num < def->min || num > def->max) {
			*error_r = def->max == UINT_MAX ?
				t_strdup_printf("'%s' is not a number >= %u",
						value, def->min) :
				t_strdup_printf("'%s' is not a number in %u..%u",
						value, def->min, def->max);
			return -1;
		}
		*(unsigned int *)ptr = num;
		return 0;
	case KEY_MSECS: {
		const char *error;

		if (settings_get_time_msecs(value, &num, &error) < 0) {
			*error_r = t_strdup_printf(
				"'%s' is not a time interval (e.g. 500ms, 5s, "
				"2min): %s", value, error);
			return -1;
		}
		if (num == 0) {
			*error_r = "must be more than 0";
			return -1;
		}
		*(unsigned int *)ptr = num;
		return 0;
	}
	case KEY_ENUM:
		for (i = 0; def->values[i] != NULL; i++) {
			if (strcmp(def->values[i], value) == 0) {
				*(int *)ptr = (int)i;
				return 0;
			}
		}
		*error_r = t_strdup_printf("'%s' is not one of: %s", value,
			t_strarray_join(def->values, ", "));
		return -1;
	case KEY_DN_TEMPLATE:
		if (template_check(value, "unds", error_r) < 0)
			return -1;
		if (value[0] != '\0' && strstr(value, "%u") == NULL &&
		    strstr(value, "%n") == NULL) {
			*error_r = "the DN template must contain %u or %n";
			return -1;
		}
		*(const char **)ptr = p_strdup(parser->pool, value);
		return 0;
	case KEY_FILTER:
		if (filter_check(value, def->offset ==
				 offsetof(struct pop3ext_auth_config,
					  ldap_user_filter), error_r) < 0)
			return -1;
		if (def->offset == offsetof(struct pop3ext_auth_config,
					    ldap_user_filter) &&
		    user_filter_check(value, error_r) < 0)
			return -1;
		*(const char **)ptr = p_strdup(parser->pool, value);
		return 0;
	case KEY_PAM_TEMPLATE:
		if (template_check(value, "s", error_r) < 0)
			return -1;
		*(const char **)ptr = p_strdup(parser->pool, value);
		return 0;
	case KEY_ATTRIBUTE:
		if (value[0] == '\0' && def->offset ==
		    offsetof(struct pop3ext_auth_config,
			     ldap_username_attribute)) {
			*error_r = "must not be empty";
			return -1;
		}
		if (value[0] != '\0' && !attribute_name_is_valid(value)) {
			*error_r = t_strdup_printf(
				"'%s' is not an LDAP attribute name", value);
			return -1;
		}
		*(const char **)ptr = p_strdup(parser->pool, value);
		return 0;
	case KEY_URIS:
		return parse_uris(parser, value, error_r);
	case KEY_FIELDS:
		return parse_fields(parser, value, error_r);
	case KEY_SITE_HOOK:
		return parse_site_hook(parser, value, line, error_r);
	}
	i_unreached();
}

static const char *unquote(const char *value)
{
	size_t len = strlen(value);

	if (len >= 2 && value[0] == '"' && value[len-1] == '"')
		return t_strndup(value + 1, len - 2);
	return value;
}

static int
parse_line(struct config_parser *parser, const char *line,
	   unsigned int linenum, const char **error_r)
{
	const struct key_def *def;
	const char *key, *value, *eq, *error;
	unsigned int idx;

	eq = strchr(line, '=');
	if (eq == NULL) {
		*error_r = t_strdup_printf("%s line %u: expected key = value",
					   parser->path, linenum);
		return -1;
	}
	key = t_str_trim(t_strdup_until(line, eq), " \t");
	value = unquote(t_str_trim(eq + 1, " \t"));

	def = key_find(key, &idx);
	if (def == NULL) {
		*error_r = t_strdup_printf("%s line %u: %s: unknown key",
					   parser->path, linenum,
					   str_sanitize(key, 64));
		return -1;
	}
	if (parser->seen_line[idx] != 0 && def->type != KEY_SITE_HOOK) {
		*error_r = t_strdup_printf(
			"%s line %u: %s: given twice (first on line %u)",
			parser->path, linenum, key, parser->seen_line[idx]);
		return -1;
	}
	parser->seen_line[idx] = linenum;
	if (parse_value(parser, def, value, linenum, &error) < 0) {
		*error_r = t_strdup_printf("%s line %u: %s: %s",
					   parser->path, linenum, key, error);
		return -1;
	}
	return 0;
}

static bool key_given(struct config_parser *parser, const char *name)
{
	unsigned int idx;

	if (key_find(name, &idx) == NULL)
		i_unreached();
	return parser->seen_line[idx] != 0;
}

static const char *key_where(struct config_parser *parser, const char *name)
{
	unsigned int idx;

	if (key_find(name, &idx) == NULL)
		i_unreached();
	if (parser->seen_line[idx] == 0)
		return t_strdup_printf("%s: %s", parser->path, name);
	return t_strdup_printf("%s line %u: %s", parser->path,
			       parser->seen_line[idx], name);
}

/* TLS is all or nothing: TLS settings without TLS would be ignored, and a
   list mixing ldaps:// and ldap:// would fail over to plain text. */
static int config_check_tls(struct config_parser *parser,
			    const char **error_r)
{
	static const char *const tls_keys[] = {
		"ldap_tls_ca_file", "ldap_tls_cert_file", "ldap_tls_key_file",
		"ldap_tls_require_cert",
	};
	const struct pop3ext_auth_config *set = parser->set;
	bool ldaps = FALSE, plain = FALSE;
	const char *uri;
	unsigned int i;

	array_foreach_elem(&set->ldap_uris, uri) {
		if (str_begins(uri, "ldaps://"))
			ldaps = TRUE;
		else if (str_begins(uri, "ldap://"))
			plain = TRUE;
	}
	if (ldaps && plain) {
		*error_r = t_strdup_printf(
			"%s: mixes ldaps:// and ldap:// URIs (failing over "
			"would send passwords in plain text): use ldaps:// "
			"for all, or ldap:// with ldap_starttls = yes",
			key_where(parser, "ldap_uris"));
		return -1;
	}
	if (ldaps || set->ldap_starttls)
		return 0;
	for (i = 0; i < N_ELEMENTS(tls_keys); i++) {
		if (key_given(parser, tls_keys[i])) {
			*error_r = t_strdup_printf(
				"%s: set, but no URI uses TLS (ldaps:// or "
				"ldap_starttls = yes): it would be ignored and "
				"passwords sent in plain text",
				key_where(parser, tls_keys[i]));
			return -1;
		}
	}
	return 0;
}

/* Checks between keys, once the whole file was read. */
static int config_finish(struct config_parser *parser, const char **error_r)
{
	struct pop3ext_auth_config *set = parser->set;
	bool uses_ldap, searches;
	const char *error;

	if (!key_given(parser, "password_check")) {
		*error_r = t_strdup_printf(
			"%s: password_check: required (pam or ldap)",
			parser->path);
		return -1;
	}
	if (!key_given(parser, "attributes")) {
		set->attributes = array_count(&set->ldap_uris) > 0 ?
			POP3EXT_AUTH_ATTRIBUTES_LDAP :
			POP3EXT_AUTH_ATTRIBUTES_NONE;
	}
	if (!key_given(parser, "ldap_fields") &&
	    parse_fields(parser, default_ldap_fields, &error) < 0)
		i_panic("default ldap_fields: %s", error);

	uses_ldap = set->password_check == POP3EXT_AUTH_PASSWORD_LDAP ||
		set->attributes == POP3EXT_AUTH_ATTRIBUTES_LDAP;
	if (uses_ldap && array_count(&set->ldap_uris) == 0) {
		*error_r = t_strdup_printf(
			"%s: ldap_uris: required with %s = ldap", parser->path,
			set->password_check == POP3EXT_AUTH_PASSWORD_LDAP ?
			"password_check" : "attributes");
		return -1;
	}
	searches = set->attributes == POP3EXT_AUTH_ATTRIBUTES_LDAP ||
		(set->password_check == POP3EXT_AUTH_PASSWORD_LDAP &&
		 set->ldap_user_dn_template[0] == '\0');
	if (searches && set->ldap_base[0] == '\0') {
		*error_r = t_strdup_printf(
			"%s: ldap_base: required to search the directory "
			"(for attributes, or password_check = ldap without "
			"ldap_user_dn_template)", parser->path);
		return -1;
	}
	if (set->ldap_starttls) {
		const char *uri;

		array_foreach_elem(&set->ldap_uris, uri) {
			if (!str_begins(uri, "ldap://")) {
				*error_r = t_strdup_printf(
					"%s: ldap_starttls = yes needs ldap:// "
					"URIs, not %s",
					key_where(parser, "ldap_starttls"), uri);
				return -1;
			}
		}
	}
	if (set->ldap_bind_dn[0] != '\0' &&
	    set->ldap_bind_password[0] == '\0') {
		*error_r = t_strdup_printf(
			"%s: set without ldap_bind_password (that would be an "
			"unauthenticated bind: no service account at all)",
			key_where(parser, "ldap_bind_dn"));
		return -1;
	}
	if (config_check_tls(parser, error_r) < 0)
		return -1;
	if (set->ldap_bind_password[0] != '\0' &&
	    set->ldap_bind_dn[0] == '\0') {
		*error_r = t_strdup_printf(
			"%s: set without ldap_bind_dn",
			key_where(parser, "ldap_bind_password"));
		return -1;
	}
	if ((set->ldap_tls_cert_file[0] == '\0') !=
	    (set->ldap_tls_key_file[0] == '\0')) {
		*error_r = t_strdup_printf(
			"%s: ldap_tls_cert_file and ldap_tls_key_file go "
			"together", parser->path);
		return -1;
	}
	if (strchr(set->recent_prefix, ' ') != NULL) {
		*error_r = t_strdup_printf("%s: must not contain spaces",
			key_where(parser, "recent_prefix"));
		return -1;
	}
	return 0;
}

int pop3ext_auth_config_parse(pool_t pool, const char *path,
			      struct istream *input,
			      const struct pop3ext_auth_config **config_r,
			      const char **error_r)
{
	struct config_parser parser;
	const char *line;
	unsigned int linenum = 0;
	int ret = 0;

	i_zero(&parser);
	parser.pool = pool;
	parser.path = p_strdup(pool, path);
	parser.set = p_new(pool, struct pop3ext_auth_config, 1);
	parser.set->path = parser.path;
	config_set_defaults(parser.set, pool);

	while (ret == 0 && (line = i_stream_read_next_line(input)) != NULL) {
		linenum++;
		T_BEGIN {
			line = t_str_trim(line, " \t\r");
			if (line[0] != '\0' && line[0] != '#')
				ret = parse_line(&parser, line, linenum, error_r);
		} T_END_PASS_STR_IF(ret < 0, error_r);
	}
	if (ret < 0)
		return -1;
	if (input->stream_errno == ENOBUFS) {
		*error_r = t_strdup_printf("%s line %u: line too long",
					   path, linenum + 1);
		return -1;
	}
	if (input->stream_errno != 0) {
		*error_r = t_strdup_printf("read(%s) failed: %s", path,
					   i_stream_get_error(input));
		return -1;
	}
	if (config_finish(&parser, error_r) < 0)
		return -1;
	*config_r = parser.set;
	return 0;
}

int pop3ext_auth_config_read(pool_t pool, const char *path,
			     const struct pop3ext_auth_config **config_r,
			     const char **error_r)
{
	struct istream *input;
	int fd, ret;

	if (path[0] == '\0') {
		*error_r = "args: the configuration file's path is required "
			"(args = /etc/dovecot/pop3ext-auth.conf)";
		return -1;
	}
	fd = open(path, O_RDONLY);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return -1;
	}
	input = i_stream_create_fd_autoclose(&fd, CONFIG_MAX_LINE_LENGTH);
	ret = pop3ext_auth_config_parse(pool, path, input, config_r, error_r);
	i_stream_unref(&input);
	return ret;
}

const char *
pop3ext_auth_template_expand(const char *template, const char *user,
			     const char *service,
			     pop3ext_auth_escape_func_t *escape)
{
	string_t *str = t_str_new(128);
	const char *p, *at, *value;

	/* the first '@', as Dovecot's %n and %d */
	at = strchr(user, '@');
	for (p = template; *p != '\0'; p++) {
		if (*p != '%' || p[1] == '\0') {
			str_append_c(str, *p);
			continue;
		}
		p++;
		switch (*p) {
		case 'u':
			value = user;
			break;
		case 'n':
			value = at == NULL ? user : t_strdup_until(user, at);
			break;
		case 'd':
			value = at == NULL ? "" : at + 1;
			break;
		case 's':
			value = service;
			break;
		case '%':
			str_append_c(str, '%');
			continue;
		default:
			/* rejected when the file was read */
			i_unreached();
		}
		str_append(str, escape == NULL ? value : escape(value));
	}
	return str_c(str);
}
