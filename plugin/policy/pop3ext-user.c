/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "pop3ext-plugin.h"

#define POP3EXT_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3ext_user_module)
#define POP3EXT_USER_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3ext_user_module)

struct event_category event_category_pop3ext = {
	.name = "pop3ext",
};

static MODULE_CONTEXT_DEFINE_INIT(pop3ext_user_module,
				  &mail_user_module_register);

struct pop3ext_user *pop3ext_user_get(struct mail_user *user)
{
	return POP3EXT_USER_CONTEXT(user);
}

static void pop3ext_user_deinit(struct mail_user *user)
{
	struct pop3ext_user *puser = POP3EXT_USER_CONTEXT_REQUIRE(user);

	event_unref(&puser->event);
	puser->module_ctx.super.deinit(user);
}

void pop3ext_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct pop3ext_user *puser;

	puser = p_new(user->pool, struct pop3ext_user, 1);
	puser->module_ctx.super = *v;
	user->vlast = &puser->module_ctx.super;
	v->deinit = pop3ext_user_deinit;

	puser->event = event_create(user->event);
	event_add_category(puser->event, &event_category_pop3ext);
	event_set_append_log_prefix(puser->event, "pop3ext: ");

	MODULE_CONTEXT_SET(user, pop3ext_user_module, puser);
}
