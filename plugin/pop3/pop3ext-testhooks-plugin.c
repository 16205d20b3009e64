/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* A pop3 plugin that uses nothing but the public pop3ext-pop3.h API, built
   for the tests only (check_LTLIBRARIES, never installed): it shows that
   another plugin can add commands (one with a streaming reply), answer a
   command in a pre-hook, see outcomes in a post-hook and
   completions in a done-hook, and extend CAPA. */

#include "lib.h"
#include "ostream.h"
#include "mail-user.h"
#include "pop3-common.h"
#include "pop3ext-pop3.h"

const char *pop3ext_testhooks_plugin_version = DOVECOT_ABI_VERSION;
const char pop3ext_testhooks_plugin_binary_dependency[] = "pop3";
const char *pop3ext_testhooks_plugin_dependencies[] = { "pop3ext_pop3", NULL };

void pop3ext_testhooks_plugin_init(struct module *module);
void pop3ext_testhooks_plugin_deinit(void);

static struct module *testhooks_module;

struct testhooks_lines {
	unsigned int next, count;
};

static bool testhooks_enabled(struct client *client)
{
	return mail_user_is_plugin_loaded(client->user, testhooks_module);
}

/* XECHO <text>: one-line reply */
static int testhooks_cmd_xecho(struct client *client, const char *args,
			       void *context ATTR_UNUSED)
{
	if (!testhooks_enabled(client)) {
		client_send_line(client, "-ERR Unknown command: XECHO");
		return -1;
	}
	client_send_line(client, "+OK %s", args);
	return 1;
}

static void testhooks_lines_callback(struct client *client)
{
	struct testhooks_lines *ctx = client->cmd_context;

	while (!client->output->closed && ctx->next < ctx->count) {
		if (POP3_CLIENT_OUTPUT_FULL(client))
			return; /* the flush callback calls us again */
		client_send_line(client, "line %u", ctx->next++);
	}
	if (!client->output->closed)
		client_send_line(client, ".");
	client->cmd = NULL;
	client->cmd_context = NULL;
	i_free(ctx);
}

/* XLINES <n>: a multi-line reply of n lines, streamed like RETR */
static int testhooks_cmd_xlines(struct client *client, const char *args,
				void *context ATTR_UNUSED)
{
	struct testhooks_lines *ctx;
	unsigned int count;

	if (str_to_uint(args, &count) < 0 || count > 10000000) {
		client_send_line(client, "-ERR Invalid count");
		return -1;
	}
	client_send_line(client, "+OK %u lines", count);
	ctx = i_new(struct testhooks_lines, 1);
	ctx->count = count;
	client->cmd_context = ctx;
	client->cmd = testhooks_lines_callback;
	testhooks_lines_callback(client);
	return 1;
}

/* Hooks that register and unregister hooks while the dispatcher runs
   them: "NOOP register" registers two more (from a pre-hook); the next
   "NOOP register" makes the first of them register the rest (up to
   TESTHOOKS_EXTRA), so that the registry grows while it is being walked;
   "NOOP unregister" removes them (from a pre-hook),
   "NOOP unregister-post" from a post-hook. Each logs when it runs. */
#define TESTHOOKS_EXTRA 24
static unsigned int testhooks_extra_ids[TESTHOOKS_EXTRA];
static unsigned int testhooks_extra_count;
/* "NOOP refuse-quit": the next QUIT is answered -ERR by a pre-hook that
   runs after every other (registered last) */
static bool testhooks_refuse_quit;

static enum pop3ext_pop3_hook_result
testhooks_extra_pre(struct pop3ext_pop3_command *cmd, void *context);
static void testhooks_extra_post(const struct pop3ext_pop3_command *cmd,
				 void *context);

static void testhooks_extra_register(unsigned int count)
{
	while (testhooks_extra_count < count) {
		unsigned int *id = &testhooks_extra_ids[testhooks_extra_count];

		*id = testhooks_extra_count++;
		pop3ext_pop3_hook_register(testhooks_extra_pre,
					   testhooks_extra_post, id);
	}
}

static void testhooks_extra_unregister(void)
{
	while (testhooks_extra_count > 0) {
		pop3ext_pop3_hook_unregister(testhooks_extra_pre,
			testhooks_extra_post,
			&testhooks_extra_ids[--testhooks_extra_count]);
	}
}

static enum pop3ext_pop3_hook_result
testhooks_extra_pre(struct pop3ext_pop3_command *cmd, void *context)
{
	unsigned int id = *(unsigned int *)context;

	i_info("testhooks: extra pre %u %s %s", id, cmd->name, cmd->args);
	if (id == 0 && strcmp(cmd->name, "NOOP") == 0 &&
	    strcmp(cmd->args, "register") == 0)
		testhooks_extra_register(TESTHOOKS_EXTRA);
	return POP3EXT_POP3_HOOK_CONTINUE;
}

static void testhooks_extra_post(const struct pop3ext_pop3_command *cmd,
				 void *context)
{
	unsigned int id = *(unsigned int *)context;

	i_info("testhooks: extra post %u %s %s", id, cmd->name, cmd->args);
}

/* NOOP refuse: answered by the pre-hook */
static enum pop3ext_pop3_hook_result
testhooks_pre(struct pop3ext_pop3_command *cmd, void *context)
{
	i_assert(context == &testhooks_module);
	if (!testhooks_enabled(cmd->client))
		return POP3EXT_POP3_HOOK_CONTINUE;
	if (strcmp(cmd->name, "NOOP") == 0 &&
	    strcmp(cmd->args, "refuse") == 0) {
		client_send_line(cmd->client, "-ERR refused by testhooks");
		cmd->ret = 0;
		return POP3EXT_POP3_HOOK_ANSWERED;
	}
	if (strcmp(cmd->name, "NOOP") == 0 &&
	    strcmp(cmd->args, "register") == 0 && testhooks_extra_count == 0)
		testhooks_extra_register(2);
	if (strcmp(cmd->name, "NOOP") == 0 &&
	    strcmp(cmd->args, "unregister") == 0)
		testhooks_extra_unregister();
	if (strcmp(cmd->name, "NOOP") == 0 &&
	    strcmp(cmd->args, "refuse-quit") == 0)
		testhooks_refuse_quit = TRUE;
	return POP3EXT_POP3_HOOK_CONTINUE;
}

static enum pop3ext_pop3_hook_result
testhooks_last_pre(struct pop3ext_pop3_command *cmd,
		   void *context ATTR_UNUSED)
{
	if (!testhooks_enabled(cmd->client) || !testhooks_refuse_quit ||
	    strcmp(cmd->name, "QUIT") != 0)
		return POP3EXT_POP3_HOOK_CONTINUE;
	testhooks_refuse_quit = FALSE;
	client_send_line(cmd->client, "-ERR QUIT refused by testhooks");
	cmd->ret = 0;
	return POP3EXT_POP3_HOOK_ANSWERED;
}

static void testhooks_post(const struct pop3ext_pop3_command *cmd,
			   void *context ATTR_UNUSED)
{
	if (!testhooks_enabled(cmd->client))
		return;
	i_info("testhooks: post %s args=%s ret=%d hook=%d pending=%d",
	       cmd->name, cmd->args, cmd->ret, cmd->answered_by_hook ? 1 : 0,
	       cmd->pending ? 1 : 0);
	if (strcmp(cmd->name, "NOOP") == 0 &&
	    strcmp(cmd->args, "unregister-post") == 0)
		testhooks_extra_unregister();
}

static void testhooks_done(const struct pop3ext_pop3_command *cmd,
			   void *context ATTR_UNUSED)
{
	if (!testhooks_enabled(cmd->client))
		return;
	i_info("testhooks: done %s args=%s sent=%d", cmd->name, cmd->args,
	       cmd->message_sent ? 1 : 0);
}

static void testhooks_session_created(struct client *client,
				      void *context ATTR_UNUSED)
{
	if (testhooks_enabled(client))
		i_info("testhooks: session created");
}

/* a user with testhooks_refuse set is refused */
static bool testhooks_session_ready(struct client *client,
				    void *context ATTR_UNUSED,
				    const char **reason_r)
{
	if (!testhooks_enabled(client) ||
	    mail_user_plugin_getenv(client->user, "testhooks_refuse") == NULL)
		return TRUE;
	client_send_line(client, "-ERR refused by testhooks");
	*reason_r = "Refused by testhooks";
	return FALSE;
}

static void testhooks_session_destroyed(struct client *client,
					void *context ATTR_UNUSED)
{
	if (testhooks_enabled(client))
		i_info("testhooks: session destroyed");
}

static const struct pop3ext_pop3_session_hooks testhooks_session = {
	.created = testhooks_session_created,
	.ready = testhooks_session_ready,
	.destroyed = testhooks_session_destroyed,
};

static void testhooks_capa(struct client *client,
			   struct pop3ext_pop3_capa *capa,
			   void *context ATTR_UNUSED)
{
	if (!testhooks_enabled(client))
		return;
	pop3ext_pop3_capa_add(capa, "X-TESTHOOKS");
	if (pop3ext_pop3_capa_has(capa, "PIPELINING"))
		pop3ext_pop3_capa_add(capa, "X-TESTHOOKS-SAW-PIPELINING");
	(void)pop3ext_pop3_capa_remove(capa, "AUTH-RESP-CODE");
}

void pop3ext_testhooks_plugin_init(struct module *module)
{
	testhooks_module = module;
	pop3ext_pop3_command_register("XECHO", testhooks_cmd_xecho, NULL);
	pop3ext_pop3_command_register("xlines", testhooks_cmd_xlines, NULL);
	pop3ext_pop3_hook_register(testhooks_pre, testhooks_post,
				   &testhooks_module);
	pop3ext_pop3_done_hook_register(testhooks_done, NULL);
	pop3ext_pop3_capa_register(testhooks_capa, NULL);
	pop3ext_pop3_hook_register(testhooks_last_pre, NULL, NULL);
	pop3ext_pop3_session_hooks_register(&testhooks_session, NULL);
}

void pop3ext_testhooks_plugin_deinit(void)
{
	pop3ext_pop3_session_hooks_unregister(&testhooks_session, NULL);
	testhooks_extra_unregister();
	pop3ext_pop3_hook_unregister(testhooks_last_pre, NULL, NULL);
	pop3ext_pop3_capa_unregister(testhooks_capa, NULL);
	pop3ext_pop3_done_hook_unregister(testhooks_done, NULL);
	pop3ext_pop3_hook_unregister(testhooks_pre, testhooks_post,
				     &testhooks_module);
	pop3ext_pop3_command_unregister("XLINES");
	pop3ext_pop3_command_unregister("xecho");
}
