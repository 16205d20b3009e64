/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "auth-master.h"
#include "pop3ext-state.h"
#include "pop3ext-plugin.h"

#define POP3EXT_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3ext_user_module)
#define POP3EXT_USER_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3ext_user_module)

/* under the home directory */
#define POP3EXT_STATE_DIR_NAME ".pop3ext"
#define POP3EXT_LEDGER_PATH_SETTING "pop3ext_ledger_path"

struct event_category event_category_pop3ext = {
	.name = "pop3ext",
};

static MODULE_CONTEXT_DEFINE_INIT(pop3ext_user_module,
				  &mail_user_module_register);

struct pop3ext_user *pop3ext_user_get(struct mail_user *user)
{
	return POP3EXT_USER_CONTEXT(user);
}

static bool userdb_has_field(struct mail_user *user, const char *name)
{
	size_t len = strlen(name);
	const char *const *field;

	if (user->userdb_fields == NULL)
		return FALSE;
	for (field = user->userdb_fields; *field != NULL; field++) {
		if (strncmp(*field, name, len) == 0 &&
		    ((*field)[len] == '=' || (*field)[len] == '\0'))
			return TRUE;
	}
	return FALSE;
}

const char *pop3ext_user_setting(struct mail_user *user, const char *name,
				 enum pop3ext_source *source_r)
{
	const char *value;

	*source_r = POP3EXT_SOURCE_DEFAULT;
	value = mail_user_plugin_getenv(user, name);
	if (value != NULL) {
		*source_r = userdb_has_field(user, name) ?
			POP3EXT_SOURCE_USERDB : POP3EXT_SOURCE_PLUGIN;
	}
	return value;
}

static const char *
pop3ext_user_lookup(const char *name, enum pop3ext_source *source_r,
		    void *context)
{
	struct mail_user *user = context;
	const char *value;

	value = mail_user_plugin_getenv(user, name);
	if (value != NULL) {
		*source_r = userdb_has_field(user, name) ?
			POP3EXT_SOURCE_USERDB : POP3EXT_SOURCE_PLUGIN;
	}
	return value;
}

int pop3ext_user_read_policy(struct mail_user *user, pool_t pool,
			     struct pop3ext_policy *policy_r,
			     const char **error_r)
{
	return pop3ext_policy_parse(pool, pop3ext_user_lookup, user, policy_r,
				    error_r);
}

/* The owner of a shared mailbox, as Dovecot's shared storage creates it
   (shared-storage.c): from the settings alone, without the userdb fields
   where per-user policy lives. Those are looked up here. */
struct owner_lookup_ctx {
	struct mail_user *user;
	const char *const *fields;
	/* a setting whose plugin {} value can't be known */
	const char *unknown;
};

static const char *
pop3ext_owner_lookup(const char *name, enum pop3ext_source *source_r,
		     void *context)
{
	struct owner_lookup_ctx *ctx = context;
	size_t len = strlen(name);
	const char *const *field;

	for (field = ctx->fields; *field != NULL; field++) {
		if (strncmp(*field, name, len) == 0 && (*field)[len] == '=') {
			*source_r = POP3EXT_SOURCE_USERDB;
			return *field + len + 1;
		}
	}
	/* The owner's settings are the accessing user's (their creator's)
	   without a userdb lookup, but with that user's userdb fields
	   applied: a value from there is not the owner's. */
	if (userdb_has_field(ctx->user->creator, name)) {
		if (ctx->unknown == NULL)
			ctx->unknown = name;
		return NULL;
	}
	if (mail_user_plugin_getenv(ctx->user, name) != NULL)
		*source_r = POP3EXT_SOURCE_PLUGIN;
	return mail_user_plugin_getenv(ctx->user, name);
}

static int
pop3ext_owner_read_policy(struct mail_user *user, struct pop3ext_policy *policy_r,
			  const char **error_r)
{
	struct owner_lookup_ctx ctx = { .user = user };
	struct auth_user_info info;
	const char *username;
	pool_t pool;
	int ret;

	i_zero(&info);
	info.service = user->service;
	pool = pool_alloconly_create("pop3ext owner lookup", 1024);
	ret = mail_user_auth_master_conn == NULL ? -1 :
		auth_master_user_lookup(mail_user_auth_master_conn,
					user->username, &info, pool,
					&username, &ctx.fields);
	if (ret <= 0) {
		*error_r = ret == 0 ? "no such user in userdb" :
			"userdb lookup failed";
		pool_unref(&pool);
		return -1;
	}
	ret = pop3ext_policy_parse(user->pool, pop3ext_owner_lookup, &ctx,
				   policy_r, error_r);
	if (ret == 0 && ctx.unknown != NULL) {
		*error_r = t_strdup_printf("%s is not in their userdb, and "
			"the plugin {} value cannot be told apart from the "
			"userdb value of %s", ctx.unknown,
			user->creator->username);
		ret = -1;
	}
	pool_unref(&pool);
	return ret;
}

void pop3ext_user_log_policy_error(struct pop3ext_user *puser)
{
	if (puser->policy_error_logged)
		return;
	puser->policy_error_logged = TRUE;
	e_error(puser->event, "Invalid policy setting %s - failing safe: "
		"no message is expunged and POP3 refuses commands that read "
		"or change mail until the setting is fixed",
		puser->policy_error);
}

static void pop3ext_user_deinit(struct mail_user *user)
{
	struct pop3ext_user *puser = POP3EXT_USER_CONTEXT_REQUIRE(user);

	pop3ext_state_deinit(&puser->state);
	event_unref(&puser->event);
	puser->module_ctx.super.deinit(user);
}

/* The ledger: pop3ext_ledger_path (~/ is the home), by default
   ~/.pop3ext/ledger.db. A ledger (or old logs to import) that exists is
   opened now, so that a damaged one fails the user safe at once; a new
   one is created when something is first recorded. */
static int
pop3ext_user_init_state(struct mail_user *user, struct pop3ext_user *puser,
			const char *home, const char **error_r)
{
	const char *path, *dir, *p;

	path = mail_user_plugin_getenv(user, POP3EXT_LEDGER_PATH_SETTING);
	if (path != NULL && *path == '\0')
		path = NULL;
	if (path != NULL && str_begins(path, "~/")) {
		if (home == NULL) {
			*error_r = POP3EXT_LEDGER_PATH_SETTING": ~/ needs a "
				"home directory";
			return -1;
		}
		path = t_strconcat(home, path + 1, NULL);
	} else if (path != NULL && *path != '/') {
		*error_r = t_strdup_printf(POP3EXT_LEDGER_PATH_SETTING
			"=%s: must be an absolute path or start with ~/",
			path);
		return -1;
	}
	if (home != NULL)
		dir = t_strconcat(home, "/", POP3EXT_STATE_DIR_NAME, NULL);
	else if (path != NULL) {
		p = strrchr(path, '/');
		dir = p == path ? "/" : t_strdup_until(path, p);
	} else {
		/* no home, no ledger: what needs it says so */
		return 0;
	}
	puser->state = pop3ext_state_init(dir, path, puser->event);
	if (pop3ext_state_exists(puser->state) &&
	    pop3ext_state_open(puser->state, error_r) < 0) {
		*error_r = t_strconcat(POP3EXT_LEDGER_PATH_SETTING": ",
				       *error_r, NULL);
		return -1;
	}
	return 0;
}

void pop3ext_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct pop3ext_user *puser;
	const char *home, *error;

	puser = p_new(user->pool, struct pop3ext_user, 1);
	puser->user = user;
	puser->module_ctx.super = *v;
	user->vlast = &puser->module_ctx.super;
	v->deinit = pop3ext_user_deinit;

	puser->event = event_create(user->event);
	event_add_category(puser->event, &event_category_pop3ext);
	event_set_append_log_prefix(puser->event, "pop3ext: ");

	if (user->autocreated && user->creator != NULL) {
		/* a shared mailbox's owner: if their policy cannot be
		   known, nothing of theirs is expunged */
		if (pop3ext_owner_read_policy(user, &puser->policy,
					      &error) < 0) {
			puser->policy_error = p_strdup_printf(user->pool,
				"unknown (%s) for user %s, the owner of a "
				"shared mailbox", error, user->username);
		}
	} else if (pop3ext_user_read_policy(user, user->pool, &puser->policy,
				     &error) < 0) {
		/* Fail safe, not closed: mail keeps arriving and can be
		   read over IMAP, but nothing is expunged (see
		   pop3ext-storage.c). */
		puser->policy_error = p_strdup_printf(user->pool,
			"%s for user %s", error, user->username);
	}
	if (mail_user_get_home(user, &home) <= 0)
		home = NULL;
	if (pop3ext_user_init_state(user, puser, home, &error) < 0 &&
	    puser->policy_error == NULL) {
		/* the state is part of the policy: without it, fail safe */
		puser->policy_error = p_strdup_printf(user->pool,
			"%s for user %s", error, user->username);
	}
	MODULE_CONTEXT_SET(user, pop3ext_user_module, puser);
}
