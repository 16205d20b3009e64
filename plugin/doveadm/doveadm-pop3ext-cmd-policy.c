/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* doveadm pop3ext policy -u <user>: the user's effective policy, one row
   per setting: value, where it came from (userdb, plugin, default), and
   whether it is valid. Exit code 65 (DATAERR) if any value is not. */

#include "lib.h"
#include "mail-user.h"
#include "doveadm-print.h"
#include "doveadm-mail.h"
#include "pop3ext-plugin.h"
#include "doveadm-pop3ext-plugin.h"

static int
cmd_pop3ext_policy_run(struct doveadm_mail_cmd_context *ctx,
		       struct mail_user *user)
{
	struct pop3ext_user *puser = pop3ext_user_get(user);
	enum pop3ext_setting setting;
	enum pop3ext_source source;
	const char *name, *value, *error;
	bool failed = FALSE;
	int ret = 0;

	if (puser == NULL) {
		i_error("pop3ext is not in mail_plugins for user %s",
			user->username);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_NOTFOUND);
		return -1;
	}
	for (setting = 0; setting < POP3EXT_SET_COUNT; setting++) {
		name = pop3ext_policy_setting_name(setting);
		value = pop3ext_user_setting(user, name, &source);
		doveadm_print(name);
		doveadm_print(value != NULL ? value :
			      pop3ext_policy_setting_default(setting));
		doveadm_print(pop3ext_source_name(source));
		if (value != NULL &&
		    pop3ext_policy_check_value(setting, value, &error) < 0) {
			doveadm_print(t_strconcat("invalid: ", error, NULL));
			failed = TRUE;
		} else {
			doveadm_print("ok");
		}
	}
	if (puser->policy_error != NULL) {
		/* also what involves two settings */
		i_error("User %s: invalid policy %s: the user's mail fails "
			"safe (nothing is expunged)", user->username,
			puser->policy_error);
		failed = TRUE;
	}
	if (failed) {
		doveadm_mail_failed_error(ctx, MAIL_ERROR_PARAMS);
		ret = -1;
	}
	return ret;
}

static void
cmd_pop3ext_policy_init(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			const char *const args[] ATTR_UNUSED)
{
	doveadm_print_header_simple("setting");
	doveadm_print_header_simple("value");
	doveadm_print_header_simple("source");
	doveadm_print_header_simple("status");
}

static struct doveadm_mail_cmd_context *cmd_pop3ext_policy_alloc(void)
{
	struct doveadm_mail_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct doveadm_mail_cmd_context);
	ctx->v.init = cmd_pop3ext_policy_init;
	ctx->v.run = cmd_pop3ext_policy_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return ctx;
}

struct doveadm_cmd_ver2 doveadm_pop3ext_cmd_policy = {
	.name = "pop3ext policy",
	.usage = "-u <user>",
	.mail_cmd = cmd_pop3ext_policy_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
};
