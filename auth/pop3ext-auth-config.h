#ifndef POP3EXT_AUTH_CONFIG_H
#define POP3EXT_AUTH_CONFIG_H

/* The pop3ext auth driver's configuration file (docs/AUTH.md): one
   "key = value" per line, '#' comments. Parsed once into this struct; every
   key has a default or is required, and an unknown key, a key given twice or
   a bad value is an error naming the file, the line and the key. */

struct istream;

enum pop3ext_auth_password_check {
	POP3EXT_AUTH_PASSWORD_PAM,
	POP3EXT_AUTH_PASSWORD_LDAP,
};

enum pop3ext_auth_attributes {
	POP3EXT_AUTH_ATTRIBUTES_NONE,
	POP3EXT_AUTH_ATTRIBUTES_LDAP,
};

/* values of libldap's LDAP_OPT_X_TLS_* / LDAP_SCOPE_*, kept here so that the
   parser needs no ldap.h */
enum pop3ext_auth_tls_require_cert {
	POP3EXT_AUTH_TLS_NEVER,
	POP3EXT_AUTH_TLS_ALLOW,
	POP3EXT_AUTH_TLS_TRY,
	POP3EXT_AUTH_TLS_DEMAND,
	POP3EXT_AUTH_TLS_HARD,
};

enum pop3ext_auth_ldap_scope {
	POP3EXT_AUTH_SCOPE_BASE,
	POP3EXT_AUTH_SCOPE_ONELEVEL,
	POP3EXT_AUTH_SCOPE_SUBTREE,
};

struct pop3ext_auth_field_map {
	/* "" for a default or composed value (=field=template) */
	const char *attribute;
	/* the field, without "passdb:" */
	const char *field;
	/* a passdb extra field rather than a userdb field */
	bool passdb;
	/* =field=template: the value, with %{ldap:attribute} and %% */
	const char *template;
	/* the attributes template uses, NULL-terminated */
	const char *const *template_attrs;
};

struct pop3ext_auth_site_hook_config {
	const char *name;
	const char *args;
	unsigned int line;
};

struct pop3ext_auth_config {
	const char *path;

	enum pop3ext_auth_password_check password_check;
	enum pop3ext_auth_attributes attributes;
	const char *recent_prefix;
	unsigned int username_max_length;
	const char *pop3_disabled_reason;
	const char *site_hook_dir;
	ARRAY(struct pop3ext_auth_site_hook_config) site_hooks;

	const char *pam_service;
	const char *pam_tty;
	bool pam_acct_mgmt;
	unsigned int pam_max_requests;

	ARRAY_TYPE(const_string) ldap_uris;
	bool ldap_starttls;
	const char *ldap_tls_ca_file;
	const char *ldap_tls_cert_file;
	const char *ldap_tls_key_file;
	enum pop3ext_auth_tls_require_cert ldap_tls_require_cert;
	const char *ldap_bind_dn;
	const char *ldap_bind_password;
	const char *ldap_base;
	enum pop3ext_auth_ldap_scope ldap_scope;
	const char *ldap_user_dn_template;
	const char *ldap_user_filter;
	const char *ldap_iterate_filter;
	const char *ldap_username_attribute;
	const char *ldap_password_attribute;
	ARRAY(struct pop3ext_auth_field_map) ldap_fields;
	const char *ldap_pop3_enabled_attribute;
	const char *ldap_allow_nets_attribute;
	unsigned int ldap_connect_timeout_msecs;
	unsigned int ldap_timeout_msecs;
	unsigned int ldap_retry_interval_msecs;
	unsigned int ldap_bind_connections;
};

/* The built-in site_hook_dir, set by the build (auth_moduledir/pop3ext-site) */
#ifndef POP3EXT_SITE_HOOK_DIR
#  define POP3EXT_SITE_HOOK_DIR "/usr/lib/dovecot/modules/auth/pop3ext-site"
#endif

/* Reads and checks the file at path. Returns 0, or -1 with *error_r saying
   file, line and key. */
int pop3ext_auth_config_read(pool_t pool, const char *path,
			     const struct pop3ext_auth_config **config_r,
			     const char **error_r);
/* The same for a stream; path is used in messages. */
int pop3ext_auth_config_parse(pool_t pool, const char *path,
			      struct istream *input,
			      const struct pop3ext_auth_config **config_r,
			      const char **error_r);

/* Expands a template with %u (user), %n (user part before the first '@'),
   %d (domain part after it), %s (service) and %%, passing each user-supplied value
   through escape (NULL: as is). Returns the expansion on the data stack. */
typedef const char *pop3ext_auth_escape_func_t(const char *value);
const char *
pop3ext_auth_template_expand(const char *template, const char *user,
			     const char *service,
			     pop3ext_auth_escape_func_t *escape);

#endif
