#ifndef POP3EXT_AUTH_H
#define POP3EXT_AUTH_H

/* The pop3ext passdb and userdb driver (libauthdb_pop3ext.so): what its
   files share. */

#include "pop3ext-auth-config.h"

struct auth_request;
struct pop3ext_ldap_entry;

/* One configuration file, shared by the passdb and userdb blocks that name
   it (like Dovecot's db-ldap), and the per-process state that goes with it. */
struct pop3ext_auth_db {
	struct pop3ext_auth_db *prev, *next;
	int refcount;
	pool_t pool;
	const struct pop3ext_auth_config *set;
	/* when LDAP is used; connects on first use */
	struct pop3ext_ldap *ldap;
	struct pop3ext_auth_site_hooks *site_hooks;
};

/* Reads (or shares) the configuration file that a passdb or userdb block's
   args name (what: "passdb" or "userdb") and loads its site hooks. A bad
   file stops the auth process with a fatal error naming file, line and
   key. */
struct pop3ext_auth_db *pop3ext_auth_db_get(const char *what,
					    const char *args);
void pop3ext_auth_db_unref(struct pop3ext_auth_db **db);

/* Removes the recent_prefix from *user. Returns TRUE when it was there. */
bool pop3ext_auth_strip_recent(const struct pop3ext_auth_config *set,
			       const char **user);

/* Appends the userdb fields that a directory entry gives (ldap_fields):
   name, value, ... on the data stack. */
void pop3ext_auth_entry_userdb_fields(const struct pop3ext_auth_config *set,
				      const struct pop3ext_ldap_entry *entry,
				      ARRAY_TYPE(const_string) *fields);

/* The user's name as the directory spells it (ldap_username_attribute of
   the entry), when that is one valid name different from user; else NULL.
   Directories match names ignoring case and extra spaces, so this keeps
   one account from becoming several Dovecot users. */
const char *pop3ext_auth_entry_username(const struct pop3ext_auth_config *set,
					const struct pop3ext_ldap_entry *entry,
					const char *user);

/* PAM (pop3ext-auth-pam.c): checks user's password; returns Dovecot's
   passdb result and may change the request's user name to PAM's. */
enum passdb_result
pop3ext_pam_verify(const struct pop3ext_auth_config *set,
		   struct auth_request *request, const char *password);

extern struct passdb_module_interface pop3ext_passdb_interface;
extern struct userdb_module_interface pop3ext_userdb_interface;

/* for the userdb: did this request's passdb (ours, same file) already set
   the user's userdb fields? */
bool pop3ext_passdb_prefetched(struct auth_request *request,
			       struct pop3ext_auth_db *db);

#endif
