/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "auth-common.h"
#include "array.h"
#include "safe-memset.h"
#include "str.h"
#include "str-sanitize.h"
#include "strfuncs.h"
#include "auth-cache.h"
#include "passdb.h"
#include "password-scheme.h"
#include "pop3ext-auth-escape.h"
#include "pop3ext-auth-ldap.h"
#include "pop3ext-auth-site-loader.h"
#include "pop3ext-auth.h"

#include <ctype.h>

struct pop3ext_passdb_module {
	struct passdb_module module;
	struct pop3ext_auth_db *db;
	unsigned int requests_left;
};

static enum passdb_result ldap_result_to_passdb(enum pop3ext_ldap_result r)
{
	switch (r) {
	case POP3EXT_LDAP_OK:
		return PASSDB_RESULT_OK;
	case POP3EXT_LDAP_NOT_FOUND:
		return PASSDB_RESULT_USER_UNKNOWN;
	case POP3EXT_LDAP_INVALID_CREDENTIALS:
		return PASSDB_RESULT_PASSWORD_MISMATCH;
	case POP3EXT_LDAP_PASSWORD_EXPIRED:
		return PASSDB_RESULT_PASS_EXPIRED;
	case POP3EXT_LDAP_ACCOUNT_LOCKED:
		return PASSDB_RESULT_USER_DISABLED;
	case POP3EXT_LDAP_TEMPFAIL:
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}
	i_unreached();
}

/* "TRUE"/"FALSE" (LDAP Boolean) or yes/no. */
static int parse_flag(const char *value, bool *flag_r)
{
	if (strcasecmp(value, "TRUE") == 0 || strcasecmp(value, "yes") == 0 ||
	    strcmp(value, "1") == 0)
		*flag_r = TRUE;
	else if (strcasecmp(value, "FALSE") == 0 ||
		 strcasecmp(value, "no") == 0 || strcmp(value, "0") == 0)
		*flag_r = FALSE;
	else
		return -1;
	return 0;
}

/* Passes the entry's attributes to Dovecot: userdb fields, allow_nets and
   the POP3-enabled flag. Returns -1 (logged) on a malformed value. */
static int
pop3ext_passdb_apply_entry(struct pop3ext_passdb_module *module,
			   struct auth_request *request,
			   const struct pop3ext_ldap_entry *entry,
			   ARRAY_TYPE(const_string) *userdb_fields)
{
	const struct pop3ext_auth_config *set = module->db->set;
	struct event *event = authdb_event(request);
	const ARRAY_TYPE(const_string) *values;
	ARRAY_TYPE(const_string) passdb_fields;
	const char *const *f, *value;
	unsigned int i, count;
	bool enabled;

	pop3ext_auth_entry_userdb_fields(set, entry, userdb_fields);

	if (set->ldap_pop3_enabled_attribute[0] != '\0' &&
	    (values = pop3ext_ldap_entry_values(entry,
			set->ldap_pop3_enabled_attribute)) != NULL) {
		value = array_idx_elem(values, 0);
		if (array_count(values) != 1 ||
		    parse_flag(value, &enabled) < 0) {
			e_error(event, "directory attribute %s of %s is not "
				"TRUE or FALSE: %s",
				set->ldap_pop3_enabled_attribute,
				str_sanitize(entry->dn, 256),
				str_sanitize(value, 64));
			return -1;
		}
		if (!enabled && strcmp(request->fields.service, "pop3") == 0) {
			e_info(event, "POP3 is disabled for this user "
			       "(%s = FALSE)", set->ldap_pop3_enabled_attribute);
			auth_request_set_field(request, "nologin", "y", NULL);
			auth_request_set_field(request, "reason",
					       set->pop3_disabled_reason, NULL);
		}
	}
	if (set->ldap_allow_nets_attribute[0] != '\0' &&
	    (values = pop3ext_ldap_entry_values(entry,
			set->ldap_allow_nets_attribute)) != NULL) {
		string_t *nets = t_str_new(64);

		array_foreach_elem(values, value) {
			if (str_len(nets) > 0)
				str_append_c(nets, ',');
			str_append(nets, value);
		}
		auth_request_set_field(request, "allow_nets", str_c(nets), NULL);
	}

	f = array_get(userdb_fields, &count);
	for (i = 0; i + 1 < count; i += 2) {
		auth_request_set_field(request,
				       t_strconcat("userdb_", f[i], NULL),
				       f[i+1], NULL);
	}
	/* passdb fields (ldap_fields passdb:...; checked when the file was
	   read: none can rename the user) */
	t_array_init(&passdb_fields, 8);
	pop3ext_auth_entry_fields(set, entry, TRUE, &passdb_fields);
	f = array_get(&passdb_fields, &count);
	for (i = 0; i + 1 < count; i += 2)
		auth_request_set_field(request, f[i], f[i+1], NULL);
	return 0;
}

/* The fields a site hook may set. Passdb fields: only those that restrict
   or describe the login. Userdb fields ("userdb_"): any but those through
   which Dovecot (auth-request.c) would change who the user is or where
   the mail is: a rename (user, username, domain), an import of arbitrary
   fields, the system user, the home, the mail location, uid and gid.
   Names are Dovecot's field syntax: no ':' (":protected" and ":remove"
   would change the meaning), no TAB or other control characters (Dovecot
   asserts on a TAB). */
static bool site_hook_field_is_allowed(const char *name, const char **why_r)
{
	static const char *const passdb_allowed[] = {
		"nologin", "reason", "allow_nets", "allow_real_nets",
		"nodelay", "fail", NULL
	};
	static const char *const userdb_denied[] = {
		"user", "username", "domain", "userdb_import", "uidgid_file",
		"system_user", "system_groups_user", "home", "mail", "uid",
		"gid", NULL
	};
	const char *p;

	if (name[0] == '\0') {
		*why_r = "not a field name";
		return FALSE;
	}
	for (p = name; *p != '\0'; p++) {
		if (!i_isalnum(*p) && *p != '_' && *p != '-' && *p != '/' &&
		    *p != '.') {
			*why_r = "not a field name";
			return FALSE;
		}
	}
	if (str_begins(name, "userdb_")) {
		if (name[7] == '\0' ||
		    str_array_find(userdb_denied, name + 7)) {
			*why_r = "it would change who the user is or where the "
				"mail is";
			return FALSE;
		}
		return TRUE;
	}
	if (!str_array_find(passdb_allowed, name)) {
		*why_r = "hooks may set userdb_* fields and the passdb fields "
			"nologin, reason, allow_nets, allow_real_nets, nodelay "
			"and fail";
		return FALSE;
	}
	return TRUE;
}

static enum passdb_result
pop3ext_passdb_site_hooks(struct pop3ext_passdb_module *module,
			  struct auth_request *request, bool recent,
			  ARRAY_TYPE(const_string) *userdb_fields)
{
	struct pop3ext_auth_site_request site;
	struct pop3ext_auth_site_outcome outcome;
	struct event *event = authdb_event(request);
	const char *const *f;
	unsigned int i, count;

	if (module->db->site_hooks == NULL)
		return PASSDB_RESULT_OK;

	i_zero(&site);
	site.user = request->fields.user;
	site.login_user = request->fields.original_username != NULL ?
		request->fields.original_username : request->fields.user;
	site.service = request->fields.service;
	site.remote_ip = net_ip2addr(&request->fields.remote_ip);
	site.local_ip = net_ip2addr(&request->fields.local_ip);
	site.remote_port = request->fields.remote_port;
	site.local_port = request->fields.local_port;
	site.secured = request->fields.secured != AUTH_REQUEST_SECURED_NONE;
	site.recent_view = recent;
	array_append_zero(userdb_fields);
	site.userdb_fields = array_front(userdb_fields);

	pop3ext_auth_site_hooks_run(module->db->site_hooks, &site, &outcome);
	switch (outcome.verdict) {
	case POP3EXT_AUTH_SITE_ALLOW:
		break;
	case POP3EXT_AUTH_SITE_DENY:
		e_info(event, "site hook %s denied the login: %s",
		       outcome.hook_name, str_sanitize(outcome.reason, 512));
		return PASSDB_RESULT_USER_DISABLED;
	case POP3EXT_AUTH_SITE_TEMPFAIL:
		e_error(event, "site hook %s failed the login temporarily: %s",
			outcome.hook_name, str_sanitize(outcome.reason, 512));
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}
	f = array_get(&outcome.fields, &count);
	for (i = 0; i + 1 < count; i += 2) {
		const char *why;

		if (!site_hook_field_is_allowed(f[i], &why)) {
			e_error(event, "site hook tried to set field %s: "
				"refused (%s)", str_sanitize(f[i], 128), why);
			continue;
		}
		auth_request_set_field(request, f[i], f[i+1], NULL);
	}
	return PASSDB_RESULT_OK;
}

/* One login through the passdb. The steps may wait for the directory (in
   Dovecot's auth process) or run straight through (in an auth-worker). */
struct passdb_lookup {
	struct auth_request *request;
	struct pop3ext_passdb_module *module;
	verify_plain_callback_t *callback;
	/* a credentials lookup instead of a password check */
	lookup_credentials_callback_t *cred_callback;
	/* search+bind: the password, until the bind is sent */
	char *password;
	/* the DN from ldap_user_dn_template or the search */
	const char *dn;
	/* the entry the search found, with the attributes */
	struct pop3ext_ldap_entry *entry;
	/* the user name as this passdb got it */
	const char *login_user;
	/* the entry was read for its name only (attributes = none) */
	bool name_only;
	bool recent;
};

static void passdb_lookup_wipe_password(struct passdb_lookup *lookup)
{
	if (lookup->password != NULL) {
		safe_memset(lookup->password, 0, strlen(lookup->password));
		lookup->password = NULL;
	}
}

static void
passdb_lookup_finish(struct passdb_lookup *lookup, enum passdb_result result)
{
	struct auth_request *request = lookup->request;

	passdb_lookup_wipe_password(lookup);
	if (result != PASSDB_RESULT_OK &&
	    strcmp(request->fields.user, lookup->login_user) != 0) {
		/* the recent: prefix stripped, PAM's or the directory's
		   name: none of it holds for a later passdb (Dovecot rolls
		   back the fields of a failed passdb, not the user name) */
		auth_request_set_field(request, "user", lookup->login_user,
				       NULL);
	}
	if (lookup->cred_callback != NULL) {
		const char *password = NULL, *scheme = NULL;

		if (result == PASSDB_RESULT_OK &&
		    request->passdb_password == NULL) {
			e_info(authdb_event(request), "no %s in the user's "
			       "entry (or the service account may not read "
			       "it)", lookup->module->db->set->
			       ldap_password_attribute);
			result = PASSDB_RESULT_SCHEME_NOT_AVAILABLE;
		} else if (result == PASSDB_RESULT_OK) {
			password = t_strdup(request->passdb_password);
			scheme = password_get_scheme(&password);
		}
		passdb_handle_credentials(result, password, scheme,
					  lookup->cred_callback, request);
	} else {
		lookup->callback(result, request);
	}
	auth_request_unref(&request);
}

/* A credentials lookup: the password (hash) from the entry. */
static void passdb_lookup_set_password(struct passdb_lookup *lookup,
				       const struct pop3ext_ldap_entry *entry)
{
	const struct pop3ext_auth_config *set = lookup->module->db->set;
	const ARRAY_TYPE(const_string) *values;

	values = pop3ext_ldap_entry_values(entry, set->ldap_password_attribute);
	if (values == NULL || array_count(values) == 0)
		return;
	if (array_count(values) != 1) {
		e_error(authdb_event(lookup->request), "entry %s has several "
			"%s values", str_sanitize(entry->dn, 256),
			set->ldap_password_attribute);
		return;
	}
	/* without a {SCHEME} prefix the value is the password itself */
	auth_request_set_field(lookup->request, "password",
			       array_idx_elem(values, 0), "PLAIN");
}

/* The password was right and the entry (if any) is read and its name
   checked: apply it (with the entry's name, if not NULL), the recent view
   and the site hooks. */
static void
passdb_lookup_apply(struct passdb_lookup *lookup,
		    struct pop3ext_ldap_entry *entry, const char *name)
{
	struct pop3ext_passdb_module *module = lookup->module;
	struct auth_request *request = lookup->request;
	ARRAY_TYPE(const_string) userdb_fields;
	enum passdb_result result;

	T_BEGIN {
		t_array_init(&userdb_fields, 16);
		result = PASSDB_RESULT_OK;
		if (name != NULL)
			auth_request_set_field(request, "user", name, NULL);
		if (entry != NULL && lookup->cred_callback != NULL)
			passdb_lookup_set_password(lookup, entry);
		if (entry != NULL && !lookup->name_only &&
		    pop3ext_passdb_apply_entry(module, request, entry,
					       &userdb_fields) < 0)
			result = PASSDB_RESULT_INTERNAL_FAILURE;
		if (result == PASSDB_RESULT_OK && lookup->recent) {
			const char *field = "pop3ext_view", *value = "recent";

			auth_request_set_field(request, "userdb_pop3ext_view",
					       "recent", NULL);
			array_push_back(&userdb_fields, &field);
			array_push_back(&userdb_fields, &value);
		}
		if (result == PASSDB_RESULT_OK) {
			result = pop3ext_passdb_site_hooks(module, request,
							   lookup->recent,
							   &userdb_fields);
		}
	} T_END;
	passdb_lookup_finish(lookup, result);
}

static void
passdb_lookup_name_verified(enum pop3ext_ldap_result lret, const char *name,
			    void *context)
{
	struct passdb_lookup *lookup = context;

	if (lret != POP3EXT_LDAP_OK) {
		passdb_lookup_finish(lookup, lret == POP3EXT_LDAP_NOT_FOUND ?
				     PASSDB_RESULT_USER_UNKNOWN :
				     ldap_result_to_passdb(lret));
		return;
	}
	passdb_lookup_apply(lookup, lookup->entry, name);
}

/* The password was right and the entry (if any) is read: the login goes
   on as the entry's user. */
static void
passdb_lookup_authenticated(struct passdb_lookup *lookup,
			    struct pop3ext_ldap_entry *entry)
{
	const struct pop3ext_auth_config *set = lookup->module->db->set;
	struct auth_request *request = lookup->request;
	const char *user = request->fields.user, *name = NULL, *error;
	enum pop3ext_auth_name ret;

	if (entry == NULL) {
		passdb_lookup_apply(lookup, NULL, NULL);
		return;
	}
	T_BEGIN {
		ret = pop3ext_auth_entry_name(set, entry, user, &name, &error);
		if (ret == POP3EXT_AUTH_NAME_VERIFY) {
			name = p_strdup(request->pool, name);
			if (set->password_check == POP3EXT_AUTH_PASSWORD_PAM &&
			    strcasecmp(name, user) != 0) {
				/* the directory must not change whom PAM
				   authenticated */
				error = t_strdup_printf(
					"PAM authenticated %s, but the "
					"directory's entry %s is %s",
					str_sanitize(user, 256),
					str_sanitize(entry->dn, 256),
					str_sanitize(name, 256));
				ret = POP3EXT_AUTH_NAME_REFUSE;
			}
		}
		if (ret == POP3EXT_AUTH_NAME_REFUSE) {
			e_error(authdb_event(request), "refused: %s", error);
		}
	} T_END;
	switch (ret) {
	case POP3EXT_AUTH_NAME_SAME:
		passdb_lookup_apply(lookup, entry, NULL);
		break;
	case POP3EXT_AUTH_NAME_REFUSE:
		passdb_lookup_finish(lookup, PASSDB_RESULT_USER_UNKNOWN);
		break;
	case POP3EXT_AUTH_NAME_VERIFY:
		lookup->entry = entry;
		pop3ext_auth_verify_name(lookup->module->db,
					 authdb_event(request), request->pool,
					 entry, name, request->fields.service,
					 passdb_lookup_name_verified, lookup);
		break;
	}
}

static void
passdb_lookup_attributes_read(enum pop3ext_ldap_result lret,
			      struct pop3ext_ldap_entry *entry, void *context)
{
	struct passdb_lookup *lookup = context;

	if (lret == POP3EXT_LDAP_NOT_FOUND &&
	    (lookup->cred_callback != NULL ||
	     lookup->request->fields.skip_password_check)) {
		/* only a lookup */
		auth_request_log_unknown_user(lookup->request, AUTH_SUBSYS_DB);
		passdb_lookup_finish(lookup, PASSDB_RESULT_USER_UNKNOWN);
	} else if (lret == POP3EXT_LDAP_NOT_FOUND) {
		/* the password was right but the directory doesn't know the
		   user: no policy to apply, so no login */
		e_error(authdb_event(lookup->request), "authenticated, but "
			"there is no directory entry with the user's "
			"attributes");
		passdb_lookup_finish(lookup, PASSDB_RESULT_USER_UNKNOWN);
	} else if (lret != POP3EXT_LDAP_OK) {
		passdb_lookup_finish(lookup, ldap_result_to_passdb(lret));
	} else {
		passdb_lookup_authenticated(lookup, entry);
	}
}

/* The password is right: read the attributes if they come from LDAP. */
static void passdb_lookup_password_ok(struct passdb_lookup *lookup)
{
	const struct pop3ext_auth_config *set = lookup->module->db->set;
	struct auth_request *request = lookup->request;

	if (set->attributes != POP3EXT_AUTH_ATTRIBUTES_LDAP) {
		passdb_lookup_authenticated(lookup, NULL);
	} else if (lookup->dn != NULL) {
		pop3ext_ldap_read_entry(lookup->module->db->ldap,
					authdb_event(request), request->pool,
					lookup->dn, passdb_lookup_attributes_read,
					lookup);
	} else {
		pop3ext_ldap_find_user(lookup->module->db->ldap,
				       authdb_event(request), request->pool,
				       request->fields.user,
				       request->fields.service,
				       passdb_lookup_attributes_read, lookup);
	}
}

/* DN template, attributes = none: bound, and the entry read for its
   name. */
static void
passdb_lookup_bound_read(enum pop3ext_ldap_result lret,
			 struct pop3ext_ldap_entry *entry, void *context)
{
	struct passdb_lookup *lookup = context;

	if (lret == POP3EXT_LDAP_OK) {
		lookup->name_only = TRUE;
		passdb_lookup_authenticated(lookup, entry);
		return;
	}
	if (lret == POP3EXT_LDAP_INVALID_CREDENTIALS) {
		auth_request_log_password_mismatch(lookup->request,
						   AUTH_SUBSYS_DB);
	}
	passdb_lookup_finish(lookup, lret == POP3EXT_LDAP_NOT_FOUND ?
			     PASSDB_RESULT_USER_UNKNOWN :
			     ldap_result_to_passdb(lret));
}

static void passdb_lookup_bound(enum pop3ext_ldap_result lret, void *context)
{
	struct passdb_lookup *lookup = context;

	passdb_lookup_wipe_password(lookup);
	if (lret == POP3EXT_LDAP_OK) {
		if (lookup->entry != NULL)
			passdb_lookup_authenticated(lookup, lookup->entry);
		else
			passdb_lookup_password_ok(lookup);
		return;
	}
	if (lret == POP3EXT_LDAP_INVALID_CREDENTIALS) {
		auth_request_log_password_mismatch(lookup->request,
						   AUTH_SUBSYS_DB);
	}
	passdb_lookup_finish(lookup, ldap_result_to_passdb(lret));
}

/* search+bind: the entry is found; its DN takes the password. */
static void
passdb_lookup_found(enum pop3ext_ldap_result lret,
		    struct pop3ext_ldap_entry *entry, void *context)
{
	struct passdb_lookup *lookup = context;
	struct auth_request *request = lookup->request;

	if (lret == POP3EXT_LDAP_NOT_FOUND) {
		auth_request_log_unknown_user(request, AUTH_SUBSYS_DB);
		passdb_lookup_finish(lookup, PASSDB_RESULT_USER_UNKNOWN);
		return;
	}
	if (lret != POP3EXT_LDAP_OK) {
		passdb_lookup_finish(lookup, ldap_result_to_passdb(lret));
		return;
	}
	lookup->dn = entry->dn;
	if (lookup->module->db->set->attributes ==
	    POP3EXT_AUTH_ATTRIBUTES_LDAP) {
		/* the search read the attributes too */
		lookup->entry = entry;
	}
	/* (the LDAP layer keeps its own copy while the bind runs; ours is
	   wiped in the callback) */
	pop3ext_ldap_bind_user(lookup->module->db->ldap, authdb_event(request),
			       entry->dn, lookup->password,
			       passdb_lookup_bound, lookup);
}

/* The password is verified already: look the user up only. */
static void passdb_lookup_skip_password(struct passdb_lookup *lookup)
{
	const struct pop3ext_auth_config *set = lookup->module->db->set;
	struct auth_request *request = lookup->request;

	passdb_lookup_wipe_password(lookup);
	if (set->password_check == POP3EXT_AUTH_PASSWORD_PAM &&
	    set->attributes != POP3EXT_AUTH_ATTRIBUTES_LDAP) {
		/* PAM can't look a user up without a password */
		passdb_lookup_authenticated(lookup, NULL);
		return;
	}
	if (set->attributes != POP3EXT_AUTH_ATTRIBUTES_LDAP) {
		/* the entry for its name only: the user must exist */
		lookup->name_only = TRUE;
	}
	if (set->ldap_user_dn_template[0] != '\0') {
		lookup->dn = p_strdup(request->pool,
			pop3ext_auth_template_expand(set->ldap_user_dn_template,
				request->fields.user, request->fields.service,
				pop3ext_ldap_escape_dn));
		pop3ext_ldap_read_entry(lookup->module->db->ldap,
					authdb_event(request), request->pool,
					lookup->dn,
					passdb_lookup_attributes_read, lookup);
	} else {
		pop3ext_ldap_find_user(lookup->module->db->ldap,
				       authdb_event(request), request->pool,
				       request->fields.user,
				       request->fields.service,
				       passdb_lookup_attributes_read, lookup);
	}
}

static void
pop3ext_passdb_verify_plain(struct auth_request *request, const char *password,
			    verify_plain_callback_t *callback)
{
	struct pop3ext_passdb_module *module =
		(struct pop3ext_passdb_module *)request->passdb->passdb;
	const struct pop3ext_auth_config *set = module->db->set;
	struct event *event = authdb_event(request);
	struct passdb_lookup *lookup;
	enum passdb_result result;
	const char *user = request->fields.user, *error;
	bool recent;

	if (set->password_check == POP3EXT_AUTH_PASSWORD_PAM &&
	    module->requests_left > 0 && --module->requests_left == 0) {
		/* some PAM modules leak: start a fresh worker after this */
		worker_restart_request = TRUE;
	}

	recent = pop3ext_auth_strip_recent(set, &user);
	if (pop3ext_auth_username_check(user, set->username_max_length,
					&error) < 0) {
		/* the same answer as for an unknown user */
		e_info(event, "refused: %s", error);
		callback(PASSDB_RESULT_USER_UNKNOWN, request);
		return;
	}
	lookup = p_new(request->pool, struct passdb_lookup, 1);
	lookup->login_user = p_strdup(request->pool, request->fields.user);
	if (recent) {
		e_debug(event, "recent view login for %s", user);
		auth_request_set_field(request, "user", user, NULL);
	}

	lookup->request = request;
	lookup->module = module;
	lookup->callback = callback;
	if (set->password_check == POP3EXT_AUTH_PASSWORD_LDAP &&
	    set->ldap_user_dn_template[0] == '\0') {
		/* needed after the search; wiped when done */
		lookup->password = p_strdup(request->pool, password);
	}
	lookup->recent = recent;
	auth_request_ref(request);

	if (request->fields.skip_password_check) {
		/* an earlier passdb verified the password (e.g. a master
		   user's passdb with pass = yes): only the user's entry is
		   wanted, never a check of that password as the user's */
		passdb_lookup_skip_password(lookup);
	} else if (set->password_check == POP3EXT_AUTH_PASSWORD_PAM &&
	    password[0] == '\0') {
		/* PAM modules may take it (pam_unix nullok) */
		e_info(event, "pam: empty password refused");
		passdb_lookup_finish(lookup, PASSDB_RESULT_PASSWORD_MISMATCH);
	} else if (set->password_check == POP3EXT_AUTH_PASSWORD_PAM) {
		/* PAM blocks: this runs in an auth-worker */
		result = pop3ext_pam_verify(set, request, password);
		if (result != PASSDB_RESULT_OK)
			passdb_lookup_finish(lookup, result);
		else
			passdb_lookup_password_ok(lookup);
	} else if (set->ldap_user_dn_template[0] != '\0') {
		lookup->dn = p_strdup(request->pool,
			pop3ext_auth_template_expand(set->ldap_user_dn_template,
				request->fields.user, request->fields.service,
				pop3ext_ldap_escape_dn));
		if (set->attributes == POP3EXT_AUTH_ATTRIBUTES_LDAP) {
			pop3ext_ldap_bind_user(module->db->ldap, event,
					       lookup->dn, password,
					       passdb_lookup_bound, lookup);
		} else {
			/* no attributes are read, but the entry's name is:
			   the DN matches other spellings too */
			pop3ext_ldap_bind_user_read(module->db->ldap, event,
						    request->pool, lookup->dn,
						    password,
						    passdb_lookup_bound_read,
						    lookup);
		}
	} else {
		pop3ext_ldap_find_user(module->db->ldap, event, request->pool,
				       request->fields.user,
				       request->fields.service,
				       passdb_lookup_found, lookup);
	}
}

/* A lookup without a password (doveadm auth lookup, proxying, LMTP,
   mechanisms that need the stored password): the entry, found as for a
   login, with its password attribute. */
static void
pop3ext_passdb_lookup_credentials(struct auth_request *request,
				  lookup_credentials_callback_t *callback)
{
	struct pop3ext_passdb_module *module =
		(struct pop3ext_passdb_module *)request->passdb->passdb;
	const struct pop3ext_auth_config *set = module->db->set;
	struct event *event = authdb_event(request);
	struct passdb_lookup *lookup;
	const char *user = request->fields.user, *error;
	bool recent;

	if (set->ldap_password_attribute[0] == '\0' || module->db->ldap == NULL) {
		e_info(event, "credentials lookups need ldap_password_attribute "
		       "in %s", set->path);
		passdb_handle_credentials(PASSDB_RESULT_SCHEME_NOT_AVAILABLE,
					  NULL, NULL, callback, request);
		return;
	}
	recent = pop3ext_auth_strip_recent(set, &user);
	if (pop3ext_auth_username_check(user, set->username_max_length,
					&error) < 0) {
		e_info(event, "refused: %s", error);
		passdb_handle_credentials(PASSDB_RESULT_USER_UNKNOWN,
					  NULL, NULL, callback, request);
		return;
	}
	lookup = p_new(request->pool, struct passdb_lookup, 1);
	lookup->request = request;
	lookup->module = module;
	lookup->cred_callback = callback;
	lookup->login_user = p_strdup(request->pool, request->fields.user);
	lookup->recent = recent;
	if (recent)
		auth_request_set_field(request, "user", user, NULL);
	if (set->attributes != POP3EXT_AUTH_ATTRIBUTES_LDAP)
		lookup->name_only = TRUE;
	auth_request_ref(request);
	if (set->ldap_user_dn_template[0] != '\0') {
		lookup->dn = p_strdup(request->pool,
			pop3ext_auth_template_expand(set->ldap_user_dn_template,
				request->fields.user, request->fields.service,
				pop3ext_ldap_escape_dn));
		pop3ext_ldap_read_entry(module->db->ldap, event, request->pool,
					lookup->dn,
					passdb_lookup_attributes_read, lookup);
	} else {
		pop3ext_ldap_find_user(module->db->ldap, event, request->pool,
				       request->fields.user,
				       request->fields.service,
				       passdb_lookup_attributes_read, lookup);
	}
}

bool pop3ext_passdb_prefetched(struct auth_request *request,
			       struct pop3ext_auth_db *db)
{
	struct pop3ext_passdb_module *module;

	if (request->passdb == NULL || !request->passdb_success ||
	    !request->userdb_prefetch_set ||
	    request->passdb->passdb->iface.verify_plain !=
	    pop3ext_passdb_verify_plain)
		return FALSE;
	module = (struct pop3ext_passdb_module *)request->passdb->passdb;
	return module->db == db &&
		db->set->attributes == POP3EXT_AUTH_ATTRIBUTES_LDAP;
}

static struct passdb_module *
pop3ext_passdb_preinit(pool_t pool, const char *args)
{
	struct pop3ext_passdb_module *module;
	module = p_new(pool, struct pop3ext_passdb_module, 1);
	module->db = pop3ext_auth_db_get("passdb", args);
	/* PAM blocks, and so may site hooks: then run in auth-workers.
	   LDAP alone runs asynchronously in the auth process. */
	module->module.blocking =
		module->db->set->password_check == POP3EXT_AUTH_PASSWORD_PAM ||
		module->db->site_hooks != NULL;
	/* Dovecot's auth cache (auth_cache_size): what a login's outcome
	   depends on is the name and the service (the POP3-enabled flag,
	   %s in templates); allow_nets is checked again on every hit. Site
	   hooks may decide on anything (the client's address, a maintenance
	   file), so with hooks nothing is cached. A hit stores the password
	   as Dovecot's hash of the one that worked. */
	if (module->db->site_hooks == NULL &&
	    array_count(&module->db->set->site_hooks) == 0) {
		module->module.default_cache_key =
			auth_cache_parse_key(pool, "%u%s");
	}
	module->module.default_pass_scheme = "PLAIN";
	module->requests_left = module->db->set->pam_max_requests;
	return &module->module;
}

static void pop3ext_passdb_deinit(struct passdb_module *_module)
{
	struct pop3ext_passdb_module *module =
		(struct pop3ext_passdb_module *)_module;

	pop3ext_auth_db_unref(&module->db);
}

struct passdb_module_interface pop3ext_passdb_interface = {
	.name = "pop3ext",
	.preinit = pop3ext_passdb_preinit,
	.deinit = pop3ext_passdb_deinit,
	.verify_plain = pop3ext_passdb_verify_plain,
	.lookup_credentials = pop3ext_passdb_lookup_credentials,
};
