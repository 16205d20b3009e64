#ifndef POP3EXT_AUTH_SITE_H
#define POP3EXT_AUTH_SITE_H

/* Site hooks for the pop3ext passdb (libauthdb_pop3ext.so).

   A site hook is a shared object that an integrator writes against this
   header alone (no Dovecot headers needed) and that the pop3ext driver loads
   by name from its configuration file:

     site_hook = <name> [arguments]

   loads <site_hook_dir>/pop3ext_site_<name>.so (site_hook_dir defaults to
   the "pop3ext-site" folder in Dovecot's auth module dir) and reads its
   exported `pop3ext_auth_site_module` variable. Several site_hook lines load
   several hooks; they run in the order given.

   When a hook runs: after the password was verified (by PAM or LDAP) and the
   user's directory attributes were read, before Dovecot sees the result. It
   runs in Dovecot's auth-worker processes (as root, like PAM), one request
   at a time per process, so it may block - but every second it blocks is a
   second a login waits.

   What a hook may answer:
   - POP3EXT_AUTH_SITE_ALLOW: no objection; the next hook runs, then the login
     succeeds (unless Dovecot refuses it for another reason, e.g. allow_nets).
   - POP3EXT_AUTH_SITE_DENY: the login fails. The reason set with
     reply->set_reason() is logged (with the hook's name, the user and the
     remote IP); the client gets Dovecot's generic "Authentication failed."
     and never sees the reason.
   - POP3EXT_AUTH_SITE_TEMPFAIL: the login fails as a temporary failure
     ("[SYS/TEMP]"/"[UNAVAIL]" to the client); the reason is logged.
   Fields: reply->add_field(reply, name, value) adds a Dovecot passdb extra
   field, e.g. "userdb_pop3ext_audit" = "yes" (a userdb field for the mail
   session), or "nologin" + "reason". Fields added by a hook that then denies
   are discarded. Fields that would change who the user is or where the
   mail is (user, username, domain, login_user, imports, userdb_home,
   userdb_mail, userdb_uid, ...; see docs/AUTH.md), other passdb fields than
   nologin, reason, allow_nets, allow_real_nets, nodelay and fail, and names
   with other characters than letters, digits, '_', '-', '/' and '.' are
   refused (logged).

   A hook must not keep pointers into the request after login() returns.

   ABI: the module's first two members (magic, abi_version) never move. The
   driver refuses to load a module whose abi_version differs from its own
   POP3EXT_AUTH_SITE_ABI_VERSION, naming both versions, and auth start-up
   stops. The version is raised whenever a struct below changes. */

#include <stdbool.h>

#define POP3EXT_AUTH_SITE_MAGIC 0x70336173u /* "p3as" */
#define POP3EXT_AUTH_SITE_ABI_VERSION 1u

enum pop3ext_auth_site_verdict {
	POP3EXT_AUTH_SITE_ALLOW = 0,
	POP3EXT_AUTH_SITE_DENY,
	POP3EXT_AUTH_SITE_TEMPFAIL
};

struct pop3ext_auth_site_request {
	/* The authenticated user name (a "recent:" prefix already removed). */
	const char *user;
	/* The name as the client sent it. */
	const char *login_user;
	/* Dovecot's service: "pop3", "imap", ... */
	const char *service;
	/* Addresses as text; "" when unknown. Ports are 0 when unknown. */
	const char *remote_ip;
	const char *local_ip;
	unsigned int remote_port;
	unsigned int local_port;
	/* TRUE when the client connection is TLS or local. */
	bool secured;
	/* TRUE for a "recent:" login. */
	bool recent_view;
	/* The userdb fields found so far (directory attributes mapped by the
	   configuration), as name, value, name, value, ..., NULL. */
	const char *const *userdb_fields;
};

struct pop3ext_auth_site_reply {
	/* Adds a passdb extra field (a "userdb_" prefix makes it a userdb
	   field). Names and values are copied. */
	void (*add_field)(struct pop3ext_auth_site_reply *reply,
			  const char *name, const char *value);
	/* Sets the reason logged for DENY or TEMPFAIL (copied). */
	void (*set_reason)(struct pop3ext_auth_site_reply *reply,
			   const char *reason);
};

struct pop3ext_auth_site_module {
	/* POP3EXT_AUTH_SITE_MAGIC and POP3EXT_AUTH_SITE_ABI_VERSION */
	unsigned int magic;
	unsigned int abi_version;

	/* Called once per auth-worker process (where hooks run; never in
	   the auth process that serves the clients) with the rest of the
	   site_hook line ("" if none). Returns 0 and sets *context_r, or -1
	   and sets *error_r (a static or leaked string) which stops the
	   auth-worker with the configuration file, line and the error. May
	   be NULL. */
	int (*init)(const char *args, void **context_r, const char **error_r);
	/* Called when the auth process ends. May be NULL. */
	void (*deinit)(void *context);
	/* Called for each login; see above. Required. */
	enum pop3ext_auth_site_verdict
		(*login)(void *context,
			 const struct pop3ext_auth_site_request *request,
			 struct pop3ext_auth_site_reply *reply);
};

/* The variable each site hook module defines:

   const struct pop3ext_auth_site_module pop3ext_auth_site_module = {
	.magic = POP3EXT_AUTH_SITE_MAGIC,
	.abi_version = POP3EXT_AUTH_SITE_ABI_VERSION,
	.init = my_init,
	.deinit = my_deinit,
	.login = my_login,
   };
*/
#define POP3EXT_AUTH_SITE_SYMBOL "pop3ext_auth_site_module"

#endif
