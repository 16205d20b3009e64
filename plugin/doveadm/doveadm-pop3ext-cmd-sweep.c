/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* doveadm pop3ext sweep [-n] (-A | -u <user> | -F <file>): applies each
   user's expiry (after retrieval, max age) and completes held expunges
   that are now allowed. Prints per user and in total how many messages
   and bytes were expunged (with -n: would be), through doveadm's
   formatters (-f table|tab|json|flow). */

#include "lib.h"
#include "mail-user.h"
#include "doveadm-print.h"
#include "doveadm-mail.h"
#include "pop3ext-plugin.h"
#include "pop3ext-sweep.h"
#include "doveadm-pop3ext-plugin.h"

struct sweep_cmd_context {
	struct doveadm_mail_cmd_context ctx;
	bool dry_run;
	unsigned int users, messages, held;
	uoff_t bytes;
};

static void sweep_print(unsigned int messages, uoff_t bytes,
			unsigned int held, bool dry_run)
{
	doveadm_print_num(messages);
	doveadm_print_num(bytes);
	doveadm_print_num(held);
	doveadm_print(dry_run ? "yes" : "no");
}

static int
cmd_pop3ext_sweep_run(struct doveadm_mail_cmd_context *_ctx,
		      struct mail_user *user)
{
	struct sweep_cmd_context *ctx =
		container_of(_ctx, struct sweep_cmd_context, ctx);
	struct pop3ext_sweep_result result;
	const char *error;

	if (pop3ext_user_get(user) == NULL) {
		i_error("pop3ext is not in mail_plugins for user %s",
			user->username);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_NOTFOUND);
		return -1;
	}
	if (pop3ext_sweep_user(user, ctx->dry_run, &result, &error) < 0) {
		i_error("Sweep of user %s failed: %s", user->username, error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		/* what was done is still reported */
	}
	/* for -A and -F doveadm adds the user as the Username column */
	sweep_print(result.messages, result.bytes, result.held, ctx->dry_run);
	ctx->users++;
	ctx->messages += result.messages;
	ctx->bytes += result.bytes;
	ctx->held += result.held;
	return 0;
}

static void
cmd_pop3ext_sweep_init(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
		       const char *const args[] ATTR_UNUSED)
{
	doveadm_print_header("messages", "messages",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("bytes", "bytes",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("held", "held",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY |
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header_simple("dry-run");
}

static void cmd_pop3ext_sweep_deinit(struct doveadm_mail_cmd_context *_ctx)
{
	struct sweep_cmd_context *ctx =
		container_of(_ctx, struct sweep_cmd_context, ctx);

	/* the total of several users, as one more row whose Username is
	   "*total*" (no user name can be: '*' is a wildcard to doveadm) */
	if ((!ctx->ctx.iterate_single_user || ctx->ctx.add_username_header) &&
	    ctx->users > 0) {
		doveadm_print_sticky("username", "*total*");
		sweep_print(ctx->messages, ctx->bytes, ctx->held,
			    ctx->dry_run);
	}
}

static bool cmd_pop3ext_sweep_parse_arg(struct doveadm_mail_cmd_context *_ctx,
					int c)
{
	struct sweep_cmd_context *ctx =
		container_of(_ctx, struct sweep_cmd_context, ctx);

	switch (c) {
	case 'n':
		ctx->dry_run = TRUE;
		return TRUE;
	default:
		return FALSE;
	}
}

static struct doveadm_mail_cmd_context *cmd_pop3ext_sweep_alloc(void)
{
	struct sweep_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct sweep_cmd_context);
	ctx->ctx.getopt_args = "n";
	ctx->ctx.v.parse_arg = cmd_pop3ext_sweep_parse_arg;
	ctx->ctx.v.init = cmd_pop3ext_sweep_init;
	ctx->ctx.v.run = cmd_pop3ext_sweep_run;
	ctx->ctx.v.deinit = cmd_pop3ext_sweep_deinit;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->ctx;
}

struct doveadm_cmd_ver2 doveadm_pop3ext_cmd_sweep = {
	.name = "pop3ext sweep",
	.usage = "[-n] (-A | -u <user> | -F <file>)",
	.mail_cmd = cmd_pop3ext_sweep_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('n', "dry-run", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAMS_END
};
