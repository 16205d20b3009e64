#ifndef POP3EXT_AUTH_LDAP_H
#define POP3EXT_AUTH_LDAP_H

/* The directory, through libldap's synchronous calls with our own timeouts.
   Used only in auth-worker processes (the driver is blocking), one request at
   a time, so one process keeps two connections: one bound as the service
   account (or anonymous) for searches, one re-bound for each user's password
   check. Both are reused across requests.

   Servers are tried in the order of ldap_uris. A server that fails to connect
   or answer within the timeouts is marked down for ldap_retry_interval and
   the next one is used; once the interval has passed, the next request tries
   the earlier (preferred) server again and moves back to it if it answers.
   When every server is marked down, all are tried in order. */

#include "pop3ext-auth-config.h"

struct event;

enum pop3ext_ldap_result {
	POP3EXT_LDAP_OK,
	/* the search found no entry / bind: invalid credentials */
	POP3EXT_LDAP_NOT_FOUND,
	POP3EXT_LDAP_INVALID_CREDENTIALS,
	/* password policy (RFC draft-behera ppolicy) told us so at bind */
	POP3EXT_LDAP_PASSWORD_EXPIRED,
	POP3EXT_LDAP_ACCOUNT_LOCKED,
	/* no server answered, or the directory said something unexpected:
	   a temporary failure, never a wrong password */
	POP3EXT_LDAP_TEMPFAIL,
};

struct pop3ext_ldap_attribute {
	/* as configured (ldap_fields etc.), not as the server spells it */
	const char *name;
	ARRAY_TYPE(const_string) values;
};

struct pop3ext_ldap_entry {
	const char *dn;
	ARRAY(struct pop3ext_ldap_attribute) attributes;
};

struct pop3ext_ldap *pop3ext_ldap_init(const struct pop3ext_auth_config *set);
void pop3ext_ldap_deinit(struct pop3ext_ldap **ldap);

/* Finds the user's entry with ldap_user_filter under ldap_base and reads the
   configured attributes. NOT_FOUND when there is none; TEMPFAIL (logged)
   when the filter matches several entries. */
enum pop3ext_ldap_result
pop3ext_ldap_find_user(struct pop3ext_ldap *ldap, struct event *event,
		       pool_t pool, const char *user, const char *service,
		       struct pop3ext_ldap_entry **entry_r);
/* Reads the configured attributes of the entry at dn. */
enum pop3ext_ldap_result
pop3ext_ldap_read_entry(struct pop3ext_ldap *ldap, struct event *event,
			pool_t pool, const char *dn,
			struct pop3ext_ldap_entry **entry_r);
/* Checks the password by binding as dn. */
enum pop3ext_ldap_result
pop3ext_ldap_bind_user(struct pop3ext_ldap *ldap, struct event *event,
		       const char *dn, const char *password);
/* Every value of ldap_username_attribute of the entries matching
   ldap_iterate_filter (paged, so server size limits don't cut it short). */
enum pop3ext_ldap_result
pop3ext_ldap_list_users(struct pop3ext_ldap *ldap, struct event *event,
			pool_t pool, ARRAY_TYPE(const_string) *users);

/* The entry's values of an attribute, or NULL. */
const ARRAY_TYPE(const_string) *
pop3ext_ldap_entry_values(const struct pop3ext_ldap_entry *entry,
			  const char *name);

#endif
