#ifndef POP3EXT_AUTH_H
#define POP3EXT_AUTH_H

/* The pop3ext passdb and userdb driver (libauthdb_pop3ext.so): what its
   files share. */

#include "pop3ext-auth-config.h"
#include "pop3ext-auth-ldap.h"

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

/* Appends the passdb (passdb: TRUE) or userdb fields that a directory
   entry gives (ldap_fields: attributes, then defaults and composed values
   for fields no attribute set): name, value, ... on the data stack. */
void pop3ext_auth_entry_fields(const struct pop3ext_auth_config *set,
			       const struct pop3ext_ldap_entry *entry,
			       bool passdb, ARRAY_TYPE(const_string) *fields);
/* The userdb ones. */
void pop3ext_auth_entry_userdb_fields(const struct pop3ext_auth_config *set,
				      const struct pop3ext_ldap_entry *entry,
				      ARRAY_TYPE(const_string) *fields);

enum pop3ext_auth_name {
	/* the login name is one of the entry's names, exactly */
	POP3EXT_AUTH_NAME_SAME,
	/* the entry has one other name: it is the user's if it finds the
	   same entry (pop3ext_auth_verify_name()) */
	POP3EXT_AUTH_NAME_VERIFY,
	/* neither: the login is refused (*error_r says why) */
	POP3EXT_AUTH_NAME_REFUSE,
};
/* The user's name as the directory spells it (ldap_username_attribute of
   the entry) against the login name. Directories match names by their own
   rules (case, spaces, Unicode compatibility forms), so a login continues
   with the entry's exact name - but only if that name leads back to the
   same entry, so that two entries never become one Dovecot user. */
enum pop3ext_auth_name
pop3ext_auth_entry_name(const struct pop3ext_auth_config *set,
			const struct pop3ext_ldap_entry *entry, const char *user,
			const char **name_r, const char **error_r);
/* Searches ldap_user_filter with name; calls back with POP3EXT_LDAP_OK and
   name if that finds entry again, POP3EXT_LDAP_NOT_FOUND (logged) if it
   finds no or another entry, or the search's failure. */
typedef void pop3ext_auth_name_callback_t(enum pop3ext_ldap_result result,
					  const char *name, void *context);
void pop3ext_auth_verify_name(struct pop3ext_auth_db *db, struct event *event,
			      pool_t pool, const struct pop3ext_ldap_entry *entry,
			      const char *name, const char *service,
			      pop3ext_auth_name_callback_t *callback,
			      void *context);

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
