/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "auth-common.h"
#include "array.h"
#include "auth-cache.h"
#include "userdb.h"
#include "pop3ext-auth-escape.h"
#include "pop3ext-auth-ldap.h"
#include "pop3ext-auth.h"

struct pop3ext_userdb_module {
	struct userdb_module module;
	struct pop3ext_auth_db *db;
};

struct pop3ext_userdb_iterate_context {
	struct userdb_iterate_context ctx;
	/* the page being handed out */
	ARRAY_TYPE(const_string) users;
	unsigned int next_idx;
	struct pop3ext_ldap_listing *listing;
	/* the listing is complete (or failed) */
	bool listed;
};

struct userdb_lookup {
	struct auth_request *request;
	struct pop3ext_userdb_module *module;
	userdb_callback_t *callback;
	/* the name looked up (without the recent: prefix) */
	const char *user;
	struct pop3ext_ldap_entry *entry;
	bool recent;
};

static void
userdb_lookup_finish(struct userdb_lookup *lookup, enum userdb_result result)
{
	struct auth_request *request = lookup->request;

	lookup->callback(result, request);
	auth_request_unref(&request);
}

/* The entry is the user's, with name (NULL: the login name) as its
   user name. */
static void
userdb_lookup_apply(struct userdb_lookup *lookup,
		    struct pop3ext_ldap_entry *entry, const char *name)
{
	struct auth_request *request = lookup->request;
	const struct pop3ext_auth_config *set = lookup->module->db->set;
	ARRAY_TYPE(const_string) fields;
	const char *const *f;
	unsigned int i, count;

	T_BEGIN {
		if (name != NULL)
			auth_request_set_userdb_field(request, "user", name);
		t_array_init(&fields, 16);
		pop3ext_auth_entry_userdb_fields(set, entry, &fields);
		f = array_get(&fields, &count);
		for (i = 0; i + 1 < count; i += 2)
			auth_request_set_userdb_field(request, f[i], f[i+1]);
		if (lookup->recent) {
			auth_request_set_userdb_field(request, "pop3ext_view",
						      "recent");
		}
	} T_END;
	userdb_lookup_finish(lookup, USERDB_RESULT_OK);
}

static void
userdb_lookup_name_verified(enum pop3ext_ldap_result lret, const char *name,
			    void *context)
{
	struct userdb_lookup *lookup = context;

	if (lret == POP3EXT_LDAP_NOT_FOUND)
		userdb_lookup_finish(lookup, USERDB_RESULT_USER_UNKNOWN);
	else if (lret != POP3EXT_LDAP_OK)
		userdb_lookup_finish(lookup, USERDB_RESULT_INTERNAL_FAILURE);
	else
		userdb_lookup_apply(lookup, lookup->entry, name);
}

static void
userdb_lookup_found(enum pop3ext_ldap_result lret,
		    struct pop3ext_ldap_entry *entry, void *context)
{
	struct userdb_lookup *lookup = context;
	struct auth_request *request = lookup->request;
	const struct pop3ext_auth_config *set = lookup->module->db->set;
	const char *name = NULL, *error;
	enum pop3ext_auth_name ret;

	switch (lret) {
	case POP3EXT_LDAP_OK:
		break;
	case POP3EXT_LDAP_NOT_FOUND:
		auth_request_log_unknown_user(request, AUTH_SUBSYS_DB);
		userdb_lookup_finish(lookup, USERDB_RESULT_USER_UNKNOWN);
		return;
	default:
		userdb_lookup_finish(lookup, USERDB_RESULT_INTERNAL_FAILURE);
		return;
	}

	T_BEGIN {
		ret = pop3ext_auth_entry_name(set, entry, lookup->user,
					      &name, &error);
		if (ret == POP3EXT_AUTH_NAME_REFUSE)
			e_error(authdb_event(request), "refused: %s", error);
	} T_END;
	switch (ret) {
	case POP3EXT_AUTH_NAME_SAME:
		userdb_lookup_apply(lookup, entry, NULL);
		break;
	case POP3EXT_AUTH_NAME_REFUSE:
		userdb_lookup_finish(lookup, USERDB_RESULT_USER_UNKNOWN);
		break;
	case POP3EXT_AUTH_NAME_VERIFY:
		lookup->entry = entry;
		pop3ext_auth_verify_name(lookup->module->db,
					 authdb_event(request), request->pool,
					 entry, name, request->fields.service,
					 userdb_lookup_name_verified, lookup);
		break;
	}
}

static void
pop3ext_userdb_lookup(struct auth_request *request,
		      userdb_callback_t *callback)
{
	struct pop3ext_userdb_module *module =
		(struct pop3ext_userdb_module *)request->userdb->userdb;
	const struct pop3ext_auth_config *set = module->db->set;
	struct event *event = authdb_event(request);
	struct userdb_lookup *lookup;
	const char *user = request->fields.user, *error;
	bool recent;

	/* After a login through our passdb with the same file, the entry was
	   read moments ago and its fields are already in the reply. */
	if (pop3ext_passdb_prefetched(request, module->db)) {
		e_debug(event, "userdb fields came with the passdb lookup");
		callback(USERDB_RESULT_OK, request);
		return;
	}

	recent = pop3ext_auth_strip_recent(set, &user);
	if (pop3ext_auth_username_check(user, set->username_max_length,
					&error) < 0) {
		e_info(event, "refused: %s", error);
		callback(USERDB_RESULT_USER_UNKNOWN, request);
		return;
	}
	if (recent)
		auth_request_set_userdb_field(request, "user", user);

	lookup = p_new(request->pool, struct userdb_lookup, 1);
	lookup->request = request;
	lookup->module = module;
	lookup->callback = callback;
	lookup->recent = recent;
	lookup->user = p_strdup(request->pool, user);
	auth_request_ref(request);
	pop3ext_ldap_find_user(module->db->ldap, event, request->pool,
			       user, request->fields.service,
			       userdb_lookup_found, lookup);
}

static struct userdb_iterate_context *
pop3ext_userdb_iterate_init(struct auth_request *request,
			    userdb_iter_callback_t *callback, void *context)
{
	struct pop3ext_userdb_module *module =
		(struct pop3ext_userdb_module *)request->userdb->userdb;
	struct pop3ext_userdb_iterate_context *ctx;

	/* Dovecot always iterates in an auth-worker, where the listing
	   waits for each page: users are handed out page by page, so the
	   first reply does not wait for the whole directory */
	i_assert(worker);
	ctx = p_new(request->pool, struct pop3ext_userdb_iterate_context, 1);
	ctx->ctx.auth_request = request;
	ctx->ctx.callback = callback;
	ctx->ctx.context = context;
	p_array_init(&ctx->users, request->pool, 128);
	ctx->listing = pop3ext_ldap_listing_start(module->db->ldap,
						  authdb_event(request),
						  request->pool, &ctx->users);
	return &ctx->ctx;
}

static void pop3ext_userdb_iterate_next(struct userdb_iterate_context *_ctx)
{
	struct pop3ext_userdb_iterate_context *ctx =
		container_of(_ctx, struct pop3ext_userdb_iterate_context, ctx);
	int ret;

	while (ctx->next_idx >= array_count(&ctx->users) && !ctx->listed) {
		/* this page is out: the next one */
		array_clear(&ctx->users);
		ctx->next_idx = 0;
		ret = pop3ext_ldap_listing_next(ctx->listing);
		if (ret <= 0) {
			ctx->listed = TRUE;
			if (ret < 0)
				_ctx->failed = TRUE;
		}
	}
	if (!_ctx->failed && ctx->next_idx < array_count(&ctx->users)) {
		_ctx->callback(array_idx_elem(&ctx->users, ctx->next_idx++),
			       _ctx->context);
	} else {
		_ctx->callback(NULL, _ctx->context);
	}
}

static int pop3ext_userdb_iterate_deinit(struct userdb_iterate_context *_ctx)
{
	struct pop3ext_userdb_iterate_context *ctx =
		container_of(_ctx, struct pop3ext_userdb_iterate_context, ctx);
	int ret = _ctx->failed ? -1 : 0;

	pop3ext_ldap_listing_end(&ctx->listing);
	return ret;
}

static struct userdb_module *
pop3ext_userdb_preinit(pool_t pool, const char *args)
{
	struct pop3ext_userdb_module *module;
	module = p_new(pool, struct pop3ext_userdb_module, 1);
	module->db = pop3ext_auth_db_get("userdb", args);
	if (module->db->set->attributes != POP3EXT_AUTH_ATTRIBUTES_LDAP) {
		i_fatal("pop3ext: %s: userdb { driver = pop3ext } needs "
			"attributes = ldap (for PAM alone, use Dovecot's "
			"passwd or static userdb)", module->db->set->path);
	}
	/* asynchronous in the auth process */
	module->module.blocking = FALSE;
	/* Dovecot's auth cache: the fields depend on the name (with a
	   recent: prefix) and the service (%s in ldap_user_filter) */
	module->module.default_cache_key = auth_cache_parse_key(pool, "%u%s");
	return &module->module;
}

static void pop3ext_userdb_deinit(struct userdb_module *_module)
{
	struct pop3ext_userdb_module *module =
		(struct pop3ext_userdb_module *)_module;

	pop3ext_auth_db_unref(&module->db);
}

struct userdb_module_interface pop3ext_userdb_interface = {
	.name = "pop3ext",
	.preinit = pop3ext_userdb_preinit,
	.deinit = pop3ext_userdb_deinit,
	.lookup = pop3ext_userdb_lookup,
	.iterate_init = pop3ext_userdb_iterate_init,
	.iterate_next = pop3ext_userdb_iterate_next,
	.iterate_deinit = pop3ext_userdb_iterate_deinit,
};
