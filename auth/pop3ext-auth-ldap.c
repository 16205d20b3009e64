/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "str-sanitize.h"
#include "pop3ext-auth-escape.h"
#include "pop3ext-auth-ldap.h"

#include <time.h>
#include <ldap.h>

/* entries per page when listing users */
#define LDAP_LIST_PAGE_SIZE 500

struct ldap_server {
	const char *uri;
	/* monotonic msecs until which it is not tried; 0 = fine */
	uint64_t down_until;
};

struct ldap_conn {
	const char *purpose;
	LDAP *ld;
	/* index in servers, -1 = not connected */
	int server;
	/* bound as the service account (the search connection) */
	bool service_bound;
};

struct pop3ext_ldap {
	pool_t pool;
	const struct pop3ext_auth_config *set;
	ARRAY(struct ldap_server) servers;
	struct ldap_conn search_conn, bind_conn;
	/* the attributes read from a user's entry, NULL-terminated */
	char **entry_attrs;
	/* the server that answered last, -1 = none yet */
	int active_server;
};

typedef int ldap_op_func_t(struct pop3ext_ldap *ldap, LDAP *ld, void *context,
			   const char **diag_r);

static uint64_t monotonic_msecs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		i_fatal("clock_gettime(CLOCK_MONOTONIC) failed: %m");
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval msecs_to_timeval(unsigned int msecs)
{
	struct timeval tv;

	tv.tv_sec = msecs / 1000;
	tv.tv_usec = (msecs % 1000) * 1000;
	return tv;
}

/* Errors that say the server (or the way to it) is gone, not that it
   answered: these move to the next server. */
static bool ldap_rc_is_unavailable(int rc)
{
	switch (rc) {
	case LDAP_SERVER_DOWN:
	case LDAP_TIMEOUT:
	case LDAP_CONNECT_ERROR:
	case LDAP_UNAVAILABLE:
	case LDAP_BUSY:
		return TRUE;
	}
	return FALSE;
}

static const char *ldap_diag(LDAP *ld, int rc)
{
	char *msg = NULL;
	const char *ret;

	if (ld != NULL)
		(void)ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg);
	if (msg == NULL || msg[0] == '\0')
		ret = ldap_err2string(rc);
	else
		ret = t_strdup_printf("%s (%s)", ldap_err2string(rc), msg);
	if (msg != NULL)
		ldap_memfree(msg);
	return ret;
}

static void ldap_conn_close(struct ldap_conn *conn)
{
	if (conn->ld != NULL)
		(void)ldap_unbind_ext(conn->ld, NULL, NULL);
	conn->ld = NULL;
	conn->server = -1;
	conn->service_bound = FALSE;
}

/* Waits up to ldap_timeout for the result of msgid and parses it. Returns
   the operation's result code, or libldap's error. res_r (optional) gets the
   messages (a search's entries), else they are freed; ctrls_r (optional)
   the response controls. */
static int
ldap_wait_result(struct pop3ext_ldap *ldap, LDAP *ld, int msgid,
		 const char *what, LDAPMessage **res_r, LDAPControl ***ctrls_r,
		 const char **diag_r)
{
	struct timeval tv;
	LDAPMessage *res;
	char *errmsg = NULL;
	int rc, err;

	tv = msecs_to_timeval(ldap->set->ldap_timeout_msecs);
	rc = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, &res);
	if (rc == 0) {
		(void)ldap_abandon_ext(ld, msgid, NULL, NULL);
		*diag_r = t_strdup_printf("no answer to %s within %u ms", what,
					  ldap->set->ldap_timeout_msecs);
		return LDAP_TIMEOUT;
	}
	if (rc < 0) {
		(void)ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &rc);
		if (rc == LDAP_SUCCESS)
			rc = LDAP_SERVER_DOWN;
		*diag_r = ldap_diag(ld, rc);
		return rc;
	}
	rc = ldap_parse_result(ld, res, &err, NULL, &errmsg, NULL, ctrls_r, 0);
	if (rc != LDAP_SUCCESS) {
		ldap_msgfree(res);
		*diag_r = ldap_diag(ld, rc);
		if (errmsg != NULL)
			ldap_memfree(errmsg);
		return rc;
	}
	*diag_r = errmsg == NULL || errmsg[0] == '\0' ? ldap_err2string(err) :
		t_strdup_printf("%s (%s)", ldap_err2string(err),
				str_sanitize(errmsg, 256));
	if (errmsg != NULL)
		ldap_memfree(errmsg);
	if (res_r != NULL)
		*res_r = res;
	else
		ldap_msgfree(res);
	return err;
}

/* Simple bind with our own timeout. Returns the LDAP result code;
   *ctrls_r (optional) gets the response controls. */
static int
ldap_bind_timeout(struct pop3ext_ldap *ldap, LDAP *ld, const char *dn,
		  const char *password, LDAPControl **sctrls,
		  LDAPControl ***ctrls_r, const char **diag_r)
{
	struct berval cred;
	int rc, msgid;

	cred.bv_val = (char *)password;
	cred.bv_len = strlen(password);
	rc = ldap_sasl_bind(ld, dn, LDAP_SASL_SIMPLE, &cred, sctrls, NULL,
			    &msgid);
	if (rc != LDAP_SUCCESS) {
		*diag_r = ldap_diag(ld, rc);
		return rc;
	}
	return ldap_wait_result(ldap, ld, msgid, "bind", NULL, ctrls_r, diag_r);
}

static int ldap_set_tls_options(struct pop3ext_ldap *ldap, LDAP *ld,
				const char **error_r)
{
	const struct pop3ext_auth_config *set = ldap->set;
	int opt, zero = 0;

	switch (set->ldap_tls_require_cert) {
	case POP3EXT_AUTH_TLS_NEVER: opt = LDAP_OPT_X_TLS_NEVER; break;
	case POP3EXT_AUTH_TLS_ALLOW: opt = LDAP_OPT_X_TLS_ALLOW; break;
	case POP3EXT_AUTH_TLS_TRY: opt = LDAP_OPT_X_TLS_TRY; break;
	case POP3EXT_AUTH_TLS_DEMAND: opt = LDAP_OPT_X_TLS_DEMAND; break;
	case POP3EXT_AUTH_TLS_HARD: opt = LDAP_OPT_X_TLS_HARD; break;
	default: i_unreached();
	}
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &opt) !=
	    LDAP_OPT_SUCCESS) {
		*error_r = "ldap_set_option(LDAP_OPT_X_TLS_REQUIRE_CERT) failed";
		return -1;
	}
	if (set->ldap_tls_ca_file[0] != '\0' &&
	    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
			    set->ldap_tls_ca_file) != LDAP_OPT_SUCCESS) {
		*error_r = "ldap_set_option(LDAP_OPT_X_TLS_CACERTFILE) failed";
		return -1;
	}
	if (set->ldap_tls_cert_file[0] != '\0' &&
	    (ldap_set_option(ld, LDAP_OPT_X_TLS_CERTFILE,
			     set->ldap_tls_cert_file) != LDAP_OPT_SUCCESS ||
	     ldap_set_option(ld, LDAP_OPT_X_TLS_KEYFILE,
			     set->ldap_tls_key_file) != LDAP_OPT_SUCCESS)) {
		*error_r = "ldap_set_option(LDAP_OPT_X_TLS_CERTFILE/KEYFILE) failed";
		return -1;
	}
	/* a TLS context of this handle's own, with the options above */
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) !=
	    LDAP_OPT_SUCCESS) {
		*error_r = t_strdup_printf(
			"cannot set up TLS (ldap_tls_ca_file=%s, "
			"ldap_tls_cert_file=%s): %s", set->ldap_tls_ca_file,
			set->ldap_tls_cert_file, ldap_diag(ld, LDAP_LOCAL_ERROR));
		return -1;
	}
	return 0;
}

static const char *ldap_tls_hint(const struct pop3ext_auth_config *set)
{
	return t_strdup_printf(
		" (TLS handshake failed: is the server's certificate signed by "
		"a CA in ldap_tls_ca_file=%s and issued for the host in the "
		"URI?)", set->ldap_tls_ca_file[0] == '\0' ?
		"(system default)" : set->ldap_tls_ca_file);
}

/* Connects conn to server idx: TLS as configured, and for the search
   connection a bind as the service account. Returns an LDAP result code. */
static int
ldap_conn_open(struct pop3ext_ldap *ldap, struct ldap_conn *conn,
	       unsigned int idx, const char **diag_r)
{
	const struct pop3ext_auth_config *set = ldap->set;
	const struct ldap_server *server = array_idx(&ldap->servers, idx);
	struct timeval network_tv, api_tv;
	const char *error;
	int rc, version = LDAP_VERSION3;
	LDAP *ld;

	i_assert(conn->ld == NULL);

	rc = ldap_initialize(&ld, server->uri);
	if (rc != LDAP_SUCCESS) {
		*diag_r = t_strdup_printf("ldap_initialize() failed: %s",
					  ldap_err2string(rc));
		return rc;
	}
	network_tv = msecs_to_timeval(set->ldap_connect_timeout_msecs);
	api_tv = msecs_to_timeval(set->ldap_timeout_msecs);
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &network_tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &api_tv) != LDAP_OPT_SUCCESS) {
		*diag_r = "ldap_set_option() failed";
		(void)ldap_unbind_ext(ld, NULL, NULL);
		return LDAP_LOCAL_ERROR;
	}
	if ((set->ldap_starttls || str_begins(server->uri, "ldaps://")) &&
	    ldap_set_tls_options(ldap, ld, &error) < 0) {
		*diag_r = error;
		(void)ldap_unbind_ext(ld, NULL, NULL);
		return LDAP_LOCAL_ERROR;
	}

	/* connect now, so that an unreachable server shows as such */
	rc = ldap_connect(ld);
	if (rc == LDAP_SUCCESS && set->ldap_starttls) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			/* libldap says little more than "connect error"
			   when the handshake or certificate check fails */
			*diag_r = t_strdup_printf("StartTLS failed: %s%s",
				ldap_diag(ld, rc), rc != LDAP_CONNECT_ERROR ? "" :
				ldap_tls_hint(set));
			/* a server refusing StartTLS or failing the
			   certificate checks can't be used */
			if (!ldap_rc_is_unavailable(rc))
				rc = LDAP_CONNECT_ERROR;
			(void)ldap_unbind_ext(ld, NULL, NULL);
			return rc;
		}
	}
	if (rc != LDAP_SUCCESS) {
		*diag_r = t_strdup_printf("connect failed: %s%s",
			ldap_diag(ld, rc), !str_begins(server->uri, "ldaps://") ?
			"" : t_strconcat(" (server down, or",
					 ldap_tls_hint(set) + 1, NULL));
		(void)ldap_unbind_ext(ld, NULL, NULL);
		return rc;
	}

	conn->ld = ld;
	conn->server = (int)idx;
	if (conn == &ldap->search_conn && set->ldap_bind_dn[0] != '\0') {
		rc = ldap_bind_timeout(ldap, ld, set->ldap_bind_dn,
				       set->ldap_bind_password, NULL, NULL,
				       diag_r);
		if (rc != LDAP_SUCCESS) {
			*diag_r = t_strdup_printf(
				"bind as ldap_bind_dn=%s failed: %s",
				set->ldap_bind_dn, *diag_r);
			ldap_conn_close(conn);
			return rc;
		}
		conn->service_bound = TRUE;
	}
	return LDAP_SUCCESS;
}

static void
ldap_server_mark_down(struct pop3ext_ldap *ldap, struct event *event,
		      unsigned int idx, const char *reason)
{
	struct ldap_server *server = array_idx_modifiable(&ldap->servers, idx);

	server->down_until = monotonic_msecs() +
		ldap->set->ldap_retry_interval_msecs;
	e_warning(event, "ldap: %s unavailable: %s - not used for %u ms",
		  server->uri, reason, ldap->set->ldap_retry_interval_msecs);
}

static void
ldap_server_answered(struct pop3ext_ldap *ldap, struct event *event,
		     unsigned int idx)
{
	const struct ldap_server *server = array_idx(&ldap->servers, idx);

	if (ldap->active_server == (int)idx)
		return;
	if (ldap->active_server < 0) {
		e_debug(event, "ldap: using %s", server->uri);
	} else if ((int)idx < ldap->active_server) {
		const struct ldap_server *previous =
			array_idx(&ldap->servers, ldap->active_server);

		e_info(event, "ldap: back to %s (preferred over %s)",
		       server->uri, previous->uri);
	} else {
		e_warning(event, "ldap: failed over to %s", server->uri);
	}
	ldap->active_server = (int)idx;
}

/* Runs op on conn, trying the servers as described in the header. Returns
   the LDAP result code of the server that answered, or -1 when none did
   (logged). */
static int
ldap_run(struct pop3ext_ldap *ldap, struct ldap_conn *conn,
	 struct event *event, const char *what, ldap_op_func_t *op,
	 void *context, const char **diag_r)
{
	const struct ldap_server *servers;
	unsigned int i, count;
	uint64_t now = monotonic_msecs();
	bool all_down = TRUE;
	const char *diag = "no server";
	int rc;

	servers = array_get(&ldap->servers, &count);
	for (i = 0; i < count; i++) {
		if (servers[i].down_until <= now)
			all_down = FALSE;
	}
	for (i = 0; i < count; i++) {
		bool reused;

		if (!all_down && servers[i].down_until > now)
			continue;
		for (;;) {
			reused = conn->ld != NULL && conn->server == (int)i;
			if (!reused) {
				ldap_conn_close(conn);
				rc = ldap_conn_open(ldap, conn, i, &diag);
				if (rc != LDAP_SUCCESS &&
				    !ldap_rc_is_unavailable(rc)) {
					/* the server answered, but not as
					   configured: not a reason to fail
					   over */
					e_error(event, "ldap: %s: %s",
						servers[i].uri, diag);
					*diag_r = diag;
					return -1;
				}
				if (rc != LDAP_SUCCESS)
					break;
			}
			rc = op(ldap, conn->ld, context, &diag);
			if (!ldap_rc_is_unavailable(rc)) {
				ldap_server_answered(ldap, event, i);
				*diag_r = diag;
				return rc;
			}
			ldap_conn_close(conn);
			if (!reused || rc != LDAP_SERVER_DOWN)
				break;
			/* a reused connection may have been closed by the
			   server while idle: one more try, connected anew */
			e_debug(event, "ldap: %s: %s: %s - reconnecting",
				servers[i].uri, what, diag);
		}
		ldap_server_mark_down(ldap, event, i,
				      t_strdup_printf("%s: %s", what, diag));
	}
	e_error(event, "ldap: %s: no LDAP server answered (last error: %s)",
		what, diag);
	*diag_r = diag;
	return -1;
}

/* -- searches -------------------------------------------------------------- */

struct search_context {
	const char *base;
	int scope;
	const char *filter;
	char **attrs;
	int sizelimit;
	/* out */
	LDAPMessage *res;
};

static int ldap_scope(enum pop3ext_auth_ldap_scope scope)
{
	switch (scope) {
	case POP3EXT_AUTH_SCOPE_BASE:
		return LDAP_SCOPE_BASE;
	case POP3EXT_AUTH_SCOPE_ONELEVEL:
		return LDAP_SCOPE_ONELEVEL;
	case POP3EXT_AUTH_SCOPE_SUBTREE:
		return LDAP_SCOPE_SUBTREE;
	}
	i_unreached();
}

static int
ldap_search_timeout(struct pop3ext_ldap *ldap, LDAP *ld, const char *base,
		    int scope, const char *filter, char **attrs, int sizelimit,
		    LDAPControl **sctrls, LDAPMessage **res_r,
		    LDAPControl ***ctrls_r, const char **diag_r)
{
	struct timeval timelimit;
	int rc, msgid;

	*res_r = NULL;
	/* the server's own limit, in whole seconds */
	timelimit.tv_sec = (ldap->set->ldap_timeout_msecs + 999) / 1000;
	timelimit.tv_usec = 0;
	rc = ldap_search_ext(ld, base, scope, filter, attrs, 0, sctrls, NULL,
			     &timelimit, sizelimit, &msgid);
	if (rc != LDAP_SUCCESS) {
		*diag_r = ldap_diag(ld, rc);
		return rc;
	}
	return ldap_wait_result(ldap, ld, msgid, "search", res_r, ctrls_r,
				diag_r);
}

static int ldap_op_search(struct pop3ext_ldap *ldap, LDAP *ld, void *context,
			  const char **diag_r)
{
	struct search_context *ctx = context;
	int rc;

	rc = ldap_search_timeout(ldap, ld, ctx->base, ctx->scope, ctx->filter,
				 ctx->attrs, ctx->sizelimit, NULL, &ctx->res,
				 NULL, diag_r);
	if (ldap_rc_is_unavailable(rc) && ctx->res != NULL) {
		ldap_msgfree(ctx->res);
		ctx->res = NULL;
	}
	return rc;
}

static bool value_is_clean(const struct berval *bv)
{
	ber_len_t i;

	for (i = 0; i < bv->bv_len; i++) {
		unsigned char c = (unsigned char)bv->bv_val[i];

		if (c < 0x20 || c == 0x7f)
			return FALSE;
	}
	return TRUE;
}

/* Copies the wanted attributes of entry. Returns -1 (logged) when a value
   cannot be a userdb field. */
static int
ldap_entry_read(struct pop3ext_ldap *ldap, struct event *event, LDAP *ld,
		LDAPMessage *msg, pool_t pool,
		struct pop3ext_ldap_entry **entry_r)
{
	struct pop3ext_ldap_entry *entry;
	struct pop3ext_ldap_attribute *attr;
	struct berval **vals;
	char *dn, **name;
	unsigned int i;

	entry = p_new(pool, struct pop3ext_ldap_entry, 1);
	dn = ldap_get_dn(ld, msg);
	entry->dn = p_strdup(pool, dn == NULL ? "" : dn);
	if (dn != NULL)
		ldap_memfree(dn);
	p_array_init(&entry->attributes, pool, 8);
	for (name = ldap->entry_attrs; *name != NULL; name++) {
		vals = ldap_get_values_len(ld, msg, *name);
		if (vals == NULL)
			continue;
		attr = array_append_space(&entry->attributes);
		attr->name = *name;
		p_array_init(&attr->values, pool, 2);
		for (i = 0; vals[i] != NULL; i++) {
			const char *value;

			if (!value_is_clean(vals[i]) ||
			    memchr(vals[i]->bv_val, '\0', vals[i]->bv_len) != NULL) {
				e_error(event, "ldap: %s of %s has a value with "
					"control characters",
					*name, str_sanitize(entry->dn, 256));
				ldap_value_free_len(vals);
				return -1;
			}
			value = p_strndup(pool, vals[i]->bv_val,
					  vals[i]->bv_len);
			array_push_back(&attr->values, &value);
		}
		ldap_value_free_len(vals);
	}
	*entry_r = entry;
	return 0;
}

static enum pop3ext_ldap_result
ldap_find_entry(struct pop3ext_ldap *ldap, struct event *event, pool_t pool,
		struct search_context *ctx, const char *what,
		struct pop3ext_ldap_entry **entry_r)
{
	enum pop3ext_ldap_result result;
	const char *diag;
	LDAP *ld;
	LDAPMessage *msg;
	int rc, count;

	*entry_r = NULL;
	rc = ldap_run(ldap, &ldap->search_conn, event, what, ldap_op_search,
		      ctx, &diag);
	if (rc < 0)
		return POP3EXT_LDAP_TEMPFAIL;
	ld = ldap->search_conn.ld;
	if (rc == LDAP_NO_SUCH_OBJECT && ctx->scope == LDAP_SCOPE_BASE) {
		/* the DN (from ldap_user_dn_template) has no entry */
		result = POP3EXT_LDAP_NOT_FOUND;
	} else if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		e_error(event, "ldap: %s (base=%s filter=%s) failed: %s", what,
			ctx->base, str_sanitize(ctx->filter, 256), diag);
		result = POP3EXT_LDAP_TEMPFAIL;
	} else if ((count = ldap_count_entries(ld, ctx->res)) == 0) {
		result = POP3EXT_LDAP_NOT_FOUND;
	} else if (count > 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
		e_error(event, "ldap: %s: filter %s matches more than one "
			"entry under %s", what, str_sanitize(ctx->filter, 256),
			ctx->base);
		result = POP3EXT_LDAP_TEMPFAIL;
	} else {
		msg = ldap_first_entry(ld, ctx->res);
		result = ldap_entry_read(ldap, event, ld, msg, pool,
					 entry_r) < 0 ?
			POP3EXT_LDAP_TEMPFAIL : POP3EXT_LDAP_OK;
	}
	if (ctx->res != NULL)
		ldap_msgfree(ctx->res);
	return result;
}

enum pop3ext_ldap_result
pop3ext_ldap_find_user(struct pop3ext_ldap *ldap, struct event *event,
		       pool_t pool, const char *user, const char *service,
		       struct pop3ext_ldap_entry **entry_r)
{
	struct search_context ctx;

	i_zero(&ctx);
	ctx.base = ldap->set->ldap_base;
	ctx.scope = ldap_scope(ldap->set->ldap_scope);
	ctx.filter = pop3ext_auth_template_expand(ldap->set->ldap_user_filter,
		user, service, pop3ext_ldap_escape_filter);
	ctx.attrs = ldap->entry_attrs;
	/* two tell us that the filter is ambiguous */
	ctx.sizelimit = 2;
	return ldap_find_entry(ldap, event, pool, &ctx, "user search", entry_r);
}

enum pop3ext_ldap_result
pop3ext_ldap_read_entry(struct pop3ext_ldap *ldap, struct event *event,
			pool_t pool, const char *dn,
			struct pop3ext_ldap_entry **entry_r)
{
	struct search_context ctx;

	i_zero(&ctx);
	ctx.base = dn;
	ctx.scope = LDAP_SCOPE_BASE;
	ctx.filter = "(objectClass=*)";
	ctx.attrs = ldap->entry_attrs;
	ctx.sizelimit = 2;
	return ldap_find_entry(ldap, event, pool, &ctx, "entry read", entry_r);
}

/* -- user bind ------------------------------------------------------------ */

struct bind_context {
	const char *dn;
	const char *password;
	/* out: from the password policy response control */
	bool expired, locked;
};

static int ldap_op_bind(struct pop3ext_ldap *ldap, LDAP *ld, void *context,
			const char **diag_r)
{
	struct bind_context *ctx = context;
	LDAPControl *ppolicy = NULL, *sctrls[2], **ctrls = NULL, *resp;
	LDAPPasswordPolicyError pperr;
	ber_int_t expire, grace;
	int rc;

	ctx->expired = ctx->locked = FALSE;
	if (ldap_create_passwordpolicy_control(ld, &ppolicy) != LDAP_SUCCESS)
		ppolicy = NULL;
	sctrls[0] = ppolicy;
	sctrls[1] = NULL;
	rc = ldap_bind_timeout(ldap, ld, ctx->dn, ctx->password,
			       ppolicy == NULL ? NULL : sctrls, &ctrls, diag_r);
	if (ctrls != NULL) {
		resp = ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE,
					 ctrls, NULL);
		if (resp != NULL &&
		    ldap_parse_passwordpolicy_control(ld, resp, &expire,
						      &grace, &pperr) == LDAP_SUCCESS) {
			if (pperr == PP_passwordExpired ||
			    pperr == PP_changeAfterReset)
				ctx->expired = TRUE;
			else if (pperr == PP_accountLocked)
				ctx->locked = TRUE;
		}
		ldap_controls_free(ctrls);
	}
	if (ppolicy != NULL)
		ldap_control_free(ppolicy);
	return rc;
}

enum pop3ext_ldap_result
pop3ext_ldap_bind_user(struct pop3ext_ldap *ldap, struct event *event,
		       const char *dn, const char *password)
{
	struct bind_context ctx;
	const char *diag;
	int rc;

	/* an empty password would be an unauthenticated bind (RFC 4513
	   5.1.2), which servers answer with success */
	if (password[0] == '\0' || dn[0] == '\0')
		return POP3EXT_LDAP_INVALID_CREDENTIALS;

	i_zero(&ctx);
	ctx.dn = dn;
	ctx.password = password;
	rc = ldap_run(ldap, &ldap->bind_conn, event, "user bind",
		      ldap_op_bind, &ctx, &diag);
	if (rc < 0)
		return POP3EXT_LDAP_TEMPFAIL;
	if (ctx.expired) {
		e_info(event, "ldap: password of %s has expired or must be "
		       "changed (password policy)", str_sanitize(dn, 256));
		return POP3EXT_LDAP_PASSWORD_EXPIRED;
	}
	if (ctx.locked) {
		e_info(event, "ldap: account %s is locked (password policy)",
		       str_sanitize(dn, 256));
		return POP3EXT_LDAP_ACCOUNT_LOCKED;
	}
	switch (rc) {
	case LDAP_SUCCESS:
		return POP3EXT_LDAP_OK;
	case LDAP_INVALID_CREDENTIALS:
		return POP3EXT_LDAP_INVALID_CREDENTIALS;
	case LDAP_INVALID_DN_SYNTAX:
		/* not a DN: nobody can have that password */
		e_info(event, "ldap: user bind: %s is not a DN: %s",
		       str_sanitize(dn, 256), diag);
		return POP3EXT_LDAP_INVALID_CREDENTIALS;
	default:
		e_error(event, "ldap: user bind as %s failed: %s",
			str_sanitize(dn, 256), diag);
		return POP3EXT_LDAP_TEMPFAIL;
	}
}

/* -- listing users -------------------------------------------------------- */

struct list_context {
	pool_t pool;
	ARRAY_TYPE(const_string) *users;
	struct event *event;
	const char *error;
};

static int ldap_op_list(struct pop3ext_ldap *ldap, LDAP *ld, void *context,
			const char **diag_r)
{
	struct list_context *ctx = context;
	const struct pop3ext_auth_config *set = ldap->set;
	char *attrs[2];
	struct berval *cookie = NULL;
	LDAPControl *page, *sctrls[2], **ctrls, *resp;
	LDAPMessage *res, *msg;
	ber_int_t count;
	int rc;

	attrs[0] = (char *)set->ldap_username_attribute;
	attrs[1] = NULL;
	array_clear(ctx->users);
	ctx->error = NULL;
	do {
		rc = ldap_create_page_control(ld, LDAP_LIST_PAGE_SIZE, cookie,
					      0, &page);
		if (cookie != NULL) {
			ber_bvfree(cookie);
			cookie = NULL;
		}
		if (rc != LDAP_SUCCESS) {
			*diag_r = ldap_diag(ld, rc);
			return rc;
		}
		sctrls[0] = page;
		sctrls[1] = NULL;
		ctrls = NULL;
		rc = ldap_search_timeout(ldap, ld, set->ldap_base,
					 ldap_scope(set->ldap_scope),
					 set->ldap_iterate_filter, attrs, 0,
					 sctrls, &res, &ctrls, diag_r);
		ldap_control_free(page);
		if (rc != LDAP_SUCCESS) {
			if (res != NULL)
				ldap_msgfree(res);
			if (ctrls != NULL)
				ldap_controls_free(ctrls);
			return rc;
		}
		for (msg = ldap_first_entry(ld, res); msg != NULL;
		     msg = ldap_next_entry(ld, msg)) {
			struct berval **vals =
				ldap_get_values_len(ld, msg, attrs[0]);
			unsigned int i;

			for (i = 0; vals != NULL && vals[i] != NULL; i++) {
				const char *user;

				if (!value_is_clean(vals[i]) ||
				    vals[i]->bv_len == 0)
					continue;
				user = p_strndup(ctx->pool, vals[i]->bv_val,
						 vals[i]->bv_len);
				array_push_back(ctx->users, &user);
			}
			if (vals != NULL)
				ldap_value_free_len(vals);
		}
		ldap_msgfree(res);
		resp = ctrls == NULL ? NULL :
			ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, ctrls,
					  NULL);
		if (resp != NULL) {
			struct berval c = { 0, NULL };

			if (ldap_parse_pageresponse_control(ld, resp, &count,
							    &c) == LDAP_SUCCESS &&
			    c.bv_len > 0)
				cookie = ber_bvdup(&c);
			if (c.bv_val != NULL)
				ldap_memfree(c.bv_val);
		}
		if (ctrls != NULL)
			ldap_controls_free(ctrls);
	} while (cookie != NULL);
	return LDAP_SUCCESS;
}

enum pop3ext_ldap_result
pop3ext_ldap_list_users(struct pop3ext_ldap *ldap, struct event *event,
			pool_t pool, ARRAY_TYPE(const_string) *users)
{
	struct list_context ctx;
	const char *diag;
	int rc;

	i_zero(&ctx);
	ctx.pool = pool;
	ctx.users = users;
	ctx.event = event;
	rc = ldap_run(ldap, &ldap->search_conn, event, "user listing",
		      ldap_op_list, &ctx, &diag);
	if (rc < 0)
		return POP3EXT_LDAP_TEMPFAIL;
	if (rc != LDAP_SUCCESS) {
		e_error(event, "ldap: user listing (base=%s filter=%s) "
			"failed: %s", ldap->set->ldap_base,
			ldap->set->ldap_iterate_filter, diag);
		return POP3EXT_LDAP_TEMPFAIL;
	}
	return POP3EXT_LDAP_OK;
}

/* -- setup ------------------------------------------------------------------ */

const ARRAY_TYPE(const_string) *
pop3ext_ldap_entry_values(const struct pop3ext_ldap_entry *entry,
			  const char *name)
{
	const struct pop3ext_ldap_attribute *attr;

	array_foreach(&entry->attributes, attr) {
		if (strcasecmp(attr->name, name) == 0)
			return &attr->values;
	}
	return NULL;
}

static void entry_attrs_add(ARRAY_TYPE(const_string) *attrs, const char *name)
{
	const char *existing;

	if (name[0] == '\0')
		return;
	array_foreach_elem(attrs, existing) {
		if (strcasecmp(existing, name) == 0)
			return;
	}
	array_push_back(attrs, &name);
}

struct pop3ext_ldap *pop3ext_ldap_init(const struct pop3ext_auth_config *set)
{
	struct pop3ext_ldap *ldap;
	const struct pop3ext_auth_field_map *map;
	ARRAY_TYPE(const_string) attrs;
	const char *uri, *none = LDAP_NO_ATTRS;
	pool_t pool;

	pool = pool_alloconly_create("pop3ext ldap", 1024);
	ldap = p_new(pool, struct pop3ext_ldap, 1);
	ldap->pool = pool;
	ldap->set = set;
	ldap->active_server = -1;
	ldap->search_conn.purpose = "search";
	ldap->search_conn.server = -1;
	ldap->bind_conn.purpose = "bind";
	ldap->bind_conn.server = -1;
	p_array_init(&ldap->servers, pool, array_count(&set->ldap_uris));
	array_foreach_elem(&set->ldap_uris, uri) {
		struct ldap_server *server = array_append_space(&ldap->servers);
		server->uri = uri;
	}

	p_array_init(&attrs, pool, 16);
	array_foreach(&set->ldap_fields, map)
		entry_attrs_add(&attrs, map->attribute);
	entry_attrs_add(&attrs, set->ldap_pop3_enabled_attribute);
	entry_attrs_add(&attrs, set->ldap_allow_nets_attribute);
	entry_attrs_add(&attrs, set->ldap_username_attribute);
	if (array_count(&attrs) == 0)
		array_push_back(&attrs, &none);
	array_append_zero(&attrs);
	ldap->entry_attrs = (char **)array_front_modifiable(&attrs);
	return ldap;
}

void pop3ext_ldap_deinit(struct pop3ext_ldap **_ldap)
{
	struct pop3ext_ldap *ldap = *_ldap;

	if (ldap == NULL)
		return;
	*_ldap = NULL;
	ldap_conn_close(&ldap->search_conn);
	ldap_conn_close(&ldap->bind_conn);
	pool_unref(&ldap->pool);
}
