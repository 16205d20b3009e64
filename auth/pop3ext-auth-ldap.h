#ifndef POP3EXT_AUTH_LDAP_H
#define POP3EXT_AUTH_LDAP_H

/* The directory, through libldap's asynchronous calls on Dovecot's ioloop.

   In Dovecot's auth process the operations run asynchronously: one
   connection bound as the service account (or anonymous) carries every
   search, pipelined; up to ldap_bind_connections connections carry the
   users' binds (a bind needs a connection of its own while it runs).
   Connections are reused. In an auth-worker process (PAM, site hooks, user
   listing) the same code runs, and each operation waits for its answer in
   a private ioloop before the call returns.

   A connection's TCP connect, TLS handshake and StartTLS run in a thread
   (libldap does them only blocking), bounded by ldap_connect_timeout;
   requests wait in a queue meanwhile, so the process never waits for a
   server.

   Servers are tried in the order of ldap_uris. A server that refuses the
   connection, or does not answer within ldap_connect_timeout/ldap_timeout,
   is marked down for ldap_retry_interval (doubled per failure in a row)
   and its requests, and those queued for its connection, go to the next
   server; once the interval has passed, new requests go to the earlier
   (preferred) server again if it answers. A request tries each server at
   most once (a connection closed under it is retried once on the same
   server); when every server it may still try is marked down, it fails at
   once. Each search and bind has a deadline besides.

   Each callback is called exactly once, possibly before the function that
   started the operation returns. */

#include "pop3ext-auth-config.h"

struct event;

enum pop3ext_ldap_result {
	POP3EXT_LDAP_OK,
	/* the search found no entry */
	POP3EXT_LDAP_NOT_FOUND,
	/* bind: wrong password (or no such DN) */
	POP3EXT_LDAP_INVALID_CREDENTIALS,
	/* password policy (draft-behera ppolicy) told us so at bind */
	POP3EXT_LDAP_PASSWORD_EXPIRED,
	POP3EXT_LDAP_ACCOUNT_LOCKED,
	/* no server answered, or the directory said something unexpected
	   (logged): a temporary failure, never a wrong password */
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

typedef void pop3ext_ldap_entry_callback_t(enum pop3ext_ldap_result result,
					   struct pop3ext_ldap_entry *entry,
					   void *context);
typedef void pop3ext_ldap_callback_t(enum pop3ext_ldap_result result,
				     void *context);

/* Called where the auth process still runs as root (passdb/userdb
   preinit): TLS certificates and keys are read here. Returns NULL and sets
   *error_r when they can't be. sync: wait for each answer (auth-workers). */
struct pop3ext_ldap *pop3ext_ldap_init(const struct pop3ext_auth_config *set,
				       bool sync, const char **error_r);
/* Pending operations end with POP3EXT_LDAP_TEMPFAIL. */
void pop3ext_ldap_deinit(struct pop3ext_ldap **ldap);

/* Finds the user's entry with ldap_user_filter under ldap_base and reads the
   configured attributes into pool. NOT_FOUND when there is none; TEMPFAIL
   (logged) when the filter matches several entries. */
void pop3ext_ldap_find_user(struct pop3ext_ldap *ldap, struct event *event,
			    pool_t pool, const char *user, const char *service,
			    pop3ext_ldap_entry_callback_t *callback,
			    void *context);
/* Reads the configured attributes of the entry at dn. */
void pop3ext_ldap_read_entry(struct pop3ext_ldap *ldap, struct event *event,
			     pool_t pool, const char *dn,
			     pop3ext_ldap_entry_callback_t *callback,
			     void *context);
/* Checks the password by binding as dn. */
void pop3ext_ldap_bind_user(struct pop3ext_ldap *ldap, struct event *event,
			    const char *dn, const char *password,
			    pop3ext_ldap_callback_t *callback, void *context);
/* The same, then reads the entry at dn (the configured attributes, always
   ldap_username_attribute) as that user, on the same connection. */
void pop3ext_ldap_bind_user_read(struct pop3ext_ldap *ldap,
				 struct event *event, pool_t pool,
				 const char *dn, const char *password,
				 pop3ext_ldap_entry_callback_t *callback,
				 void *context);
/* Lists every value of ldap_username_attribute of the entries matching
   ldap_iterate_filter (paged, so server size limits don't cut it short; a
   listing the server cuts short anyway is an error), in auth-workers, as
   a stream: _start() waits for the first page, _next() for each further
   one; both append to users. _next() returns 1 when more pages may
   follow, 0 when the listing is complete, -1 when it failed (logged; a
   failure after a page was handed out is never retried, which would list
   users twice). */
struct pop3ext_ldap_listing;
struct pop3ext_ldap_listing *
pop3ext_ldap_listing_start(struct pop3ext_ldap *ldap, struct event *event,
			   pool_t pool, ARRAY_TYPE(const_string) *users);
int pop3ext_ldap_listing_next(struct pop3ext_ldap_listing *listing);
void pop3ext_ldap_listing_end(struct pop3ext_ldap_listing **listing);

/* The entry's values of an attribute, or NULL. */
const ARRAY_TYPE(const_string) *
pop3ext_ldap_entry_values(const struct pop3ext_ldap_entry *entry,
			  const char *name);

#endif
