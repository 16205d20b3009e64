#ifndef POP3EXT_AUTH_ESCAPE_H
#define POP3EXT_AUTH_ESCAPE_H

/* Everything that reaches the directory from a client passes through these.
   Results are on the data stack. */

/* RFC 4515 assertion value: '*', '(', ')', '\', NUL and every byte outside
   printable ASCII become \XX, so the value can only ever match itself. */
const char *pop3ext_ldap_escape_filter(const char *value);

/* RFC 4514 attribute value inside a DN: ',', '+', '"', '\', '<', '>', ';',
   '=', a leading '#' or space, a trailing space and every byte outside
   printable ASCII are escaped. */
const char *pop3ext_ldap_escape_dn(const char *value);

/* A login name we are willing to look up: not empty, at most max_length
   bytes, valid UTF-8, no control characters, no leading or trailing space.
   Returns 0, or -1 with a reason that is safe to log. */
int pop3ext_auth_username_check(const char *user, unsigned int max_length,
				const char **error_r);

#endif
