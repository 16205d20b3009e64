/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* The command dispatcher: a registry of hooks and commands, and the input
   and output handlers that replace Dovecot's static client_input() and
   client_output() for sessions of users with pop3ext_pop3 loaded.

   Dovecot 2.3 has no command registry, so the dispatcher owns the client's
   input io and its output flush callback. The handlers below keep the
   core's semantics (src/pop3/pop3-client.c in 2.3.19.1): one command at a
   time, a streaming command (client->cmd) blocks further input until it
   has finished, input stops while the output buffer is full and resumes
   from the flush callback once it is below half, the bad-command counter
   and the idle/commit timeouts. Anything that is not answered by a hook
   or a registered command goes to Dovecot's own client_command_execute(). */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "ioloop-private.h"
#include "istream.h"
#include "ostream.h"
#include "ostream-null.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "pop3ext-command-list.h"
#include "pop3ext-pop3-private.h"
#include "pop3-commands.h"

/* Dovecot's limit (pop3-client.c CLIENT_MAX_BAD_COMMANDS): more bad commands
   than this in a row disconnect the client. */
#define POP3EXT_MAX_BAD_COMMANDS 20

struct pop3ext_pop3_hook {
	pop3ext_pop3_pre_hook_t *pre;
	pop3ext_pop3_post_hook_t *post;
	void *context;
};

struct pop3ext_pop3_done_hook {
	pop3ext_pop3_done_hook_t *done;
	void *context;
};

struct pop3ext_pop3_session_hook {
	const struct pop3ext_pop3_session_hooks *hooks;
	void *context;
};

struct pop3ext_pop3_registered_command {
	char *name;
	pop3ext_pop3_command_func_t *func;
	void *context;
};

static ARRAY(struct pop3ext_pop3_hook) pop3ext_hooks;
static ARRAY(struct pop3ext_pop3_done_hook) pop3ext_done_hooks;
static ARRAY(struct pop3ext_pop3_session_hook) pop3ext_session_hooks;
static ARRAY(struct pop3ext_pop3_registered_command) pop3ext_commands;

#define POP3EXT_POP3_MAIL_CONTEXT(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3ext_pop3_mail_module)
static MODULE_CONTEXT_DEFINE_INIT(pop3ext_pop3_mail_module,
				  &mail_module_register);
/* the client whose RETR or TOP handler runs now */
static struct pop3ext_pop3_client *pop3ext_fetching;

/* Dovecot's own commands after login (pop3-commands.c). LAST exists only
   with pop3_enable_last. */
static const char *const pop3ext_core_commands[] = {
	"CAPA", "DELE", "LIST", "NOOP", "QUIT", "RETR", "RSET", "STAT",
	"TOP", "UIDL", NULL
};

static void pop3ext_client_input(struct client *client);
static int pop3ext_client_output(struct client *client);

/*
 * Registry
 */

static bool
pop3ext_hook_equals(const struct pop3ext_pop3_hook *hook,
		    pop3ext_pop3_pre_hook_t *pre,
		    pop3ext_pop3_post_hook_t *post, void *context)
{
	return hook->pre == pre && hook->post == post &&
		hook->context == context;
}

void pop3ext_pop3_hook_register(pop3ext_pop3_pre_hook_t *pre,
				pop3ext_pop3_post_hook_t *post,
				void *context)
{
	const struct pop3ext_pop3_hook *hook;
	struct pop3ext_pop3_hook new_hook = {
		.pre = pre, .post = post, .context = context
	};

	i_assert(pre != NULL || post != NULL);
	if (!array_is_created(&pop3ext_hooks))
		i_array_init(&pop3ext_hooks, 8);
	array_foreach(&pop3ext_hooks, hook) {
		if (pop3ext_hook_equals(hook, pre, post, context))
			i_panic("pop3ext_pop3: hook registered twice");
	}
	array_push_back(&pop3ext_hooks, &new_hook);
}

void pop3ext_pop3_hook_unregister(pop3ext_pop3_pre_hook_t *pre,
				  pop3ext_pop3_post_hook_t *post,
				  void *context)
{
	const struct pop3ext_pop3_hook *hook;

	if (!array_is_created(&pop3ext_hooks))
		i_panic("pop3ext_pop3: unregistering a hook never registered");
	array_foreach(&pop3ext_hooks, hook) {
		if (pop3ext_hook_equals(hook, pre, post, context)) {
			array_delete(&pop3ext_hooks,
				     array_foreach_idx(&pop3ext_hooks, hook), 1);
			return;
		}
	}
	i_panic("pop3ext_pop3: unregistering a hook never registered");
}

void pop3ext_pop3_done_hook_register(pop3ext_pop3_done_hook_t *done,
				     void *context)
{
	const struct pop3ext_pop3_done_hook *hook;
	struct pop3ext_pop3_done_hook new_hook = {
		.done = done, .context = context
	};

	i_assert(done != NULL);
	if (!array_is_created(&pop3ext_done_hooks))
		i_array_init(&pop3ext_done_hooks, 8);
	array_foreach(&pop3ext_done_hooks, hook) {
		if (hook->done == done && hook->context == context)
			i_panic("pop3ext_pop3: done-hook registered twice");
	}
	array_push_back(&pop3ext_done_hooks, &new_hook);
}

void pop3ext_pop3_done_hook_unregister(pop3ext_pop3_done_hook_t *done,
				       void *context)
{
	const struct pop3ext_pop3_done_hook *hook;

	if (array_is_created(&pop3ext_done_hooks)) {
		array_foreach(&pop3ext_done_hooks, hook) {
			if (hook->done == done && hook->context == context) {
				array_delete(&pop3ext_done_hooks,
					array_foreach_idx(&pop3ext_done_hooks,
							  hook), 1);
				return;
			}
		}
	}
	i_panic("pop3ext_pop3: unregistering a done-hook never registered");
}

void pop3ext_pop3_session_hooks_register(
	const struct pop3ext_pop3_session_hooks *hooks, void *context)
{
	const struct pop3ext_pop3_session_hook *hook;
	struct pop3ext_pop3_session_hook new_hook = {
		.hooks = hooks, .context = context
	};

	if (!array_is_created(&pop3ext_session_hooks))
		i_array_init(&pop3ext_session_hooks, 8);
	array_foreach(&pop3ext_session_hooks, hook) {
		if (hook->hooks == hooks && hook->context == context)
			i_panic("pop3ext_pop3: session hooks registered twice");
	}
	array_push_back(&pop3ext_session_hooks, &new_hook);
}

void pop3ext_pop3_session_hooks_unregister(
	const struct pop3ext_pop3_session_hooks *hooks, void *context)
{
	const struct pop3ext_pop3_session_hook *hook;

	if (array_is_created(&pop3ext_session_hooks)) {
		array_foreach(&pop3ext_session_hooks, hook) {
			if (hook->hooks == hooks && hook->context == context) {
				array_delete(&pop3ext_session_hooks,
					array_foreach_idx(
						&pop3ext_session_hooks, hook),
					1);
				return;
			}
		}
	}
	i_panic("pop3ext_pop3: unregistering session hooks never registered");
}

/* still allowed when a setting is unusable */
static const char *const pop3ext_fail_closed_allowed[] = {
	"CAPA", "NOOP", "RSET", "QUIT", NULL
};

enum pop3ext_pop3_hook_result
pop3ext_pop3_refuse_fail_closed(struct pop3ext_pop3_command *cmd)
{
	if (str_array_find(pop3ext_fail_closed_allowed, cmd->name) ||
	    !pop3ext_pop3_command_exists(cmd->client, cmd->name))
		return POP3EXT_POP3_HOOK_CONTINUE;
	client_send_line(cmd->client, "-ERR [SYS/TEMP] The %s command is "
			 "unavailable: server configuration error.", cmd->name);
	cmd->ret = 0;
	return POP3EXT_POP3_HOOK_ANSWERED;
}

static struct pop3ext_pop3_registered_command *
pop3ext_command_find(const char *name)
{
	struct pop3ext_pop3_registered_command *cmd;

	if (!array_is_created(&pop3ext_commands))
		return NULL;
	array_foreach_modifiable(&pop3ext_commands, cmd) {
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	}
	return NULL;
}

void pop3ext_pop3_command_register(const char *name,
				   pop3ext_pop3_command_func_t *func,
				   void *context)
{
	struct pop3ext_pop3_registered_command *cmd;

	if (!pop3ext_command_name_is_valid(name))
		i_panic("pop3ext_pop3: invalid command name '%s'", name);
	if (pop3ext_command_find(t_str_ucase(name)) != NULL)
		i_panic("pop3ext_pop3: command %s registered twice", name);
	if (!array_is_created(&pop3ext_commands))
		i_array_init(&pop3ext_commands, 8);
	cmd = array_append_space(&pop3ext_commands);
	cmd->name = i_strdup(t_str_ucase(name));
	cmd->func = func;
	cmd->context = context;
}

void pop3ext_pop3_command_unregister(const char *name)
{
	struct pop3ext_pop3_registered_command *cmd;

	cmd = pop3ext_command_find(t_str_ucase(name));
	if (cmd == NULL)
		i_panic("pop3ext_pop3: unregistering unknown command %s", name);
	i_free(cmd->name);
	array_delete(&pop3ext_commands,
		     array_foreach_idx(&pop3ext_commands, cmd), 1);
}

bool pop3ext_pop3_command_exists(struct client *client, const char *name)
{
	if (pop3ext_command_find(name) != NULL)
		return TRUE;
	if (str_array_find(pop3ext_core_commands, name))
		return TRUE;
	return strcmp(name, "LAST") == 0 && client->set->pop3_enable_last;
}

bool pop3ext_pop3_client_is_dispatched(struct client *client)
{
	struct pop3ext_pop3_client *pclient =
		POP3EXT_POP3_CLIENT_CONTEXT(client);

	return pclient != NULL && pclient->dispatched;
}

void pop3ext_pop3_dispatch_deinit(void)
{
	struct pop3ext_pop3_registered_command *cmd;

	/* whatever other plugins left registered */
	if (array_is_created(&pop3ext_commands)) {
		array_foreach_modifiable(&pop3ext_commands, cmd)
			i_free(cmd->name);
		array_free(&pop3ext_commands);
	}
	array_free(&pop3ext_hooks);
	array_free(&pop3ext_done_hooks);
	array_free(&pop3ext_session_hooks);
}

/*
 * Was the whole message sent? RETR and TOP read the mail's stream; the
 * stream of the mail they allocate is watched until it is destroyed.
 */

static bool pop3ext_fetch_input_sent_all(struct istream *input)
{
	/* fetch reads until the stream reports its end, unless TOP's line
	   count or the client stopped it first */
	return input->stream_errno == 0 && input->eof &&
		i_stream_get_data_size(input) == 0;
}

static void pop3ext_fetch_input_destroyed(struct pop3ext_pop3_client *pclient)
{
	pclient->fetch_sent_all =
		pop3ext_fetch_input_sent_all(pclient->fetch_input);
	pclient->fetch_input = NULL;
}

static int
pop3ext_mail_get_stream(struct mail *_mail, bool get_body,
			struct message_size *hdr_size,
			struct message_size *body_size,
			struct istream **stream_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = POP3EXT_POP3_MAIL_CONTEXT(mail);
	struct pop3ext_pop3_client *pclient = pop3ext_fetching;

	if (mmail->super.get_stream(_mail, get_body, hdr_size, body_size,
				    stream_r) < 0)
		return -1;
	if (pclient != NULL && !pclient->fetch_watched && get_body) {
		pclient->fetch_watched = TRUE;
		pclient->fetch_input = *stream_r;
		i_stream_add_destroy_callback(*stream_r,
					      pop3ext_fetch_input_destroyed,
					      pclient);
	}
	return 0;
}

void pop3ext_pop3_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	union mail_module_context *mmail;

	pop3ext_retention_mail_allocated(_mail);
	/* only the mail that RETR or TOP sends */
	if (pop3ext_fetching == NULL ||
	    _mail->box != pop3ext_fetching->client->mailbox)
		return;
	mmail = p_new(mail->pool, union mail_module_context, 1);
	mmail->super = *v;
	mail->vlast = &mmail->super;
	v->get_stream = pop3ext_mail_get_stream;
	MODULE_CONTEXT_SET_SELF(mail, pop3ext_pop3_mail_module, mmail);
}

/* Whether the watched message was sent whole; forgets it. */
static bool pop3ext_fetch_finish(struct pop3ext_pop3_client *pclient)
{
	bool sent_all;

	if (pclient->fetch_input != NULL) {
		/* the stream is still referenced elsewhere */
		sent_all = pop3ext_fetch_input_sent_all(pclient->fetch_input);
		i_stream_remove_destroy_callback(pclient->fetch_input,
						 pop3ext_fetch_input_destroyed);
		pclient->fetch_input = NULL;
	} else {
		sent_all = pclient->fetch_watched && pclient->fetch_sent_all;
	}
	pclient->fetch_watched = FALSE;
	pclient->fetch_sent_all = FALSE;
	return sent_all;
}

static void pop3ext_run_done_hooks(struct pop3ext_pop3_client *pclient,
				   struct pop3ext_pop3_command *cmd,
				   bool cut_short)
{
	const struct pop3ext_pop3_done_hook *hooks, *live;
	unsigned int i, count;
	bool registered;

	cmd->pending = FALSE;
	cmd->message_sent = pop3ext_fetch_finish(pclient) && !cut_short &&
		(strcmp(cmd->name, "RETR") == 0 ||
		 strcmp(cmd->name, "TOP") == 0);
	if (!array_is_created(&pop3ext_done_hooks) ||
	    array_count(&pop3ext_done_hooks) == 0)
		return;
	/* as with the other hooks: a copy, and only entries still there */
	hooks = array_get(&pop3ext_done_hooks, &count);
	hooks = p_memdup(unsafe_data_stack_pool, hooks, sizeof(*hooks) * count);
	for (i = 0; i < count; i++) {
		registered = FALSE;
		array_foreach(&pop3ext_done_hooks, live) {
			if (live->done == hooks[i].done &&
			    live->context == hooks[i].context) {
				registered = TRUE;
				break;
			}
		}
		if (registered)
			hooks[i].done(cmd, hooks[i].context);
	}
}

/* The reply of the streaming command has ended (or, cut_short, the
   session is going away before it did). */
static void pop3ext_pending_cmd_done(struct pop3ext_pop3_client *pclient,
				     bool cut_short)
{
	struct pop3ext_pop3_command *cmd = &pclient->pending_cmd;

	if (!pclient->have_pending_cmd)
		return;
	pclient->have_pending_cmd = FALSE;
	T_BEGIN {
		pop3ext_run_done_hooks(pclient, cmd, cut_short);
	} T_END;
	i_free(pclient->pending_name);
	i_free(pclient->pending_args);
}

/*
 * Dispatch
 *
 * Hooks may register or unregister hooks while they run. Each run walks a
 * copy of the registry taken when it starts (a hook registered meanwhile
 * is called from the next command on) and calls an entry only while it is
 * still registered (one unregistered meanwhile is not called again).
 */

static struct pop3ext_pop3_hook *pop3ext_hooks_snapshot(unsigned int *count_r)
{
	const struct pop3ext_pop3_hook *hooks;

	if (!array_is_created(&pop3ext_hooks) ||
	    array_count(&pop3ext_hooks) == 0) {
		*count_r = 0;
		return NULL;
	}
	hooks = array_get(&pop3ext_hooks, count_r);
	return p_memdup(unsafe_data_stack_pool, hooks,
			sizeof(*hooks) * *count_r);
}

static bool pop3ext_hook_is_registered(const struct pop3ext_pop3_hook *hook)
{
	const struct pop3ext_pop3_hook *live;

	array_foreach(&pop3ext_hooks, live) {
		if (pop3ext_hook_equals(live, hook->pre, hook->post,
					hook->context))
			return TRUE;
	}
	return FALSE;
}

static int pop3ext_dispatch(struct client *client, const char *name,
			    const char *args)
{
	struct pop3ext_pop3_command cmd;
	const struct pop3ext_pop3_hook *hook;
	const struct pop3ext_pop3_registered_command *rcmd;
	unsigned int i, count;

	struct pop3ext_pop3_client *pclient =
		POP3EXT_POP3_CLIENT_CONTEXT_REQUIRE(client);

	if (!pclient->seqs_fixed) {
		/* before the first command: pop3 has read the mailbox */
		pop3ext_retention_fix_all_seqs(client);
		pclient->seqs_fixed = TRUE;
	}

	i_zero(&cmd);
	cmd.client = client;
	cmd.name = t_str_ucase(name);
	cmd.args = args;
	while (*cmd.args == ' ')
		cmd.args++;

	hook = pop3ext_hooks_snapshot(&count);
	for (i = 0; i < count; i++) {
		if (hook[i].pre != NULL &&
		    pop3ext_hook_is_registered(&hook[i]) &&
		    hook[i].pre(&cmd, hook[i].context) ==
		    POP3EXT_POP3_HOOK_ANSWERED) {
			cmd.answered_by_hook = TRUE;
			break;
		}
	}

	if (!cmd.answered_by_hook) {
		if (strcmp(cmd.name, "RETR") == 0 ||
		    strcmp(cmd.name, "TOP") == 0)
			pop3ext_fetching = pclient;
		rcmd = pop3ext_command_find(cmd.name);
		if (rcmd != NULL)
			cmd.ret = rcmd->func(client, cmd.args, rcmd->context);
		else if (strcmp(cmd.name, "CAPA") == 0)
			cmd.ret = pop3ext_pop3_cmd_capa(client);
		else
			cmd.ret = client_command_execute(client, name, args);
		pop3ext_fetching = NULL;
	}
	cmd.pending = client->cmd != NULL;

	for (i = 0; i < count; i++) {
		if (hook[i].post != NULL &&
		    pop3ext_hook_is_registered(&hook[i]))
			hook[i].post(&cmd, hook[i].context);
	}

	if (!cmd.pending)
		pop3ext_run_done_hooks(pclient, &cmd, FALSE);
	else {
		/* done when client->cmd returns to NULL */
		i_assert(!pclient->have_pending_cmd);
		pclient->pending_cmd = cmd;
		pclient->pending_name = i_strdup(cmd.name);
		pclient->pending_args = i_strdup(cmd.args);
		pclient->pending_cmd.name = pclient->pending_name;
		pclient->pending_cmd.args = pclient->pending_args;
		pclient->have_pending_cmd = TRUE;
	}
	return cmd.ret;
}

/* Runs the complete lines in the input buffer. Returns FALSE if the client
   was destroyed. */
static bool pop3ext_client_handle_input(struct client *client)
{
	char *line, *args;
	int ret;

	o_stream_cork(client->output);
	while (!client->output->closed &&
	       (line = i_stream_next_line(client->input)) != NULL) {
		args = strchr(line, ' ');
		if (args != NULL)
			*args++ = '\0';
		if (*line == '\0') {
			client_send_line(client, "-ERR Unknown command.");
			ret = -1;
		} else T_BEGIN {
			struct event_reason *reason = event_reason_begin(
				event_reason_code_prefix("pop3", "cmd_", line));
			ret = pop3ext_dispatch(client, line,
					       args != NULL ? args : "");
			event_reason_end(&reason);
		} T_END;

		if (ret < 0) {
			if (++client->bad_counter > POP3EXT_MAX_BAD_COMMANDS) {
				client_send_line(client,
					"-ERR Too many bad commands.");
				client_disconnect(client,
					"Too many bad commands.");
			}
			continue;
		}
		client->bad_counter = 0;
		if (client->cmd != NULL) {
			/* streaming reply: the rest of the input waits until
			   the flush callback has finished it */
			o_stream_set_flush_pending(client->output, TRUE);
			client->waiting_input = TRUE;
			break;
		}
	}
	o_stream_uncork(client->output);

	if (client->output->closed) {
		client_destroy(client, NULL);
		return FALSE;
	}
	return TRUE;
}

static void pop3ext_client_input(struct client *client)
{
	if (client->cmd != NULL) {
		/* a reply is still streaming; read on when it is done */
		io_remove(&client->io);
		client->waiting_input = TRUE;
		return;
	}

	client->waiting_input = FALSE;
	client->last_input = ioloop_time;
	timeout_reset(client->to_idle);
	if (client->to_commit != NULL)
		timeout_reset(client->to_commit);

	switch (i_stream_read(client->input)) {
	case -1:
		client_destroy(client, NULL);
		return;
	case -2:
		client_send_line(client, "-ERR Input line too long.");
		client_destroy(client, "Input line too long");
		return;
	default:
		break;
	}
	(void)pop3ext_client_handle_input(client);
}

static int pop3ext_client_output(struct client *client)
{
	if (o_stream_flush(client->output) < 0) {
		client_destroy(client, NULL);
		return 1;
	}

	client->last_output = ioloop_time;
	timeout_reset(client->to_idle);
	if (client->to_commit != NULL)
		timeout_reset(client->to_commit);

	if (client->cmd != NULL)
		client->cmd(client);
	if (client->cmd != NULL) {
		/* not finished: come back when the client has read more */
		return 0;
	}
	pop3ext_pending_cmd_done(POP3EXT_POP3_CLIENT_CONTEXT_REQUIRE(client),
				 client->output->closed);

	if (client->io == NULL && !client->input->closed &&
	    o_stream_get_buffer_used_size(client->output) <
	    POP3_OUTBUF_THROTTLE_SIZE / 2) {
		/* the client has read enough of our output: listen again */
		client->io = io_add_istream(client->input,
					    pop3ext_client_input, client);
	}
	if (client->io != NULL && client->waiting_input) {
		if (!pop3ext_client_handle_input(client))
			return 1;
	}
	/* With io still removed there is output left to drain; returning 0
	   brings us back here to add it. */
	return client->cmd != NULL || client->io == NULL ? 0 : 1;
}

/*
 * Taking over a session
 */

enum pop3ext_session_event {
	POP3EXT_SESSION_CREATED,
	POP3EXT_SESSION_READY,
	POP3EXT_SESSION_DESTROYED,
};

/* Runs one kind of session hook (a copy of the registry, entries still
   registered). READY stops at the first refusal: returns FALSE then. */
static bool pop3ext_run_session_hooks(struct client *client,
				      enum pop3ext_session_event event,
				      char **reason_r)
{
	const struct pop3ext_pop3_session_hook *hooks, *live;
	const struct pop3ext_pop3_session_hooks *h;
	const char *reason;
	unsigned int i, count;
	bool registered, ret = TRUE;

	if (!array_is_created(&pop3ext_session_hooks) ||
	    array_count(&pop3ext_session_hooks) == 0)
		return TRUE;
	T_BEGIN {
		hooks = array_get(&pop3ext_session_hooks, &count);
		hooks = p_memdup(unsafe_data_stack_pool, hooks,
				 sizeof(*hooks) * count);
		for (i = 0; i < count && ret; i++) {
			registered = FALSE;
			array_foreach(&pop3ext_session_hooks, live) {
				if (live->hooks == hooks[i].hooks &&
				    live->context == hooks[i].context) {
					registered = TRUE;
					break;
				}
			}
			if (!registered)
				continue;
			h = hooks[i].hooks;
			switch (event) {
			case POP3EXT_SESSION_CREATED:
				if (h->created != NULL)
					h->created(client, hooks[i].context);
				break;
			case POP3EXT_SESSION_READY:
				reason = "Session refused";
				if (h->ready != NULL &&
				    !h->ready(client, hooks[i].context,
					      &reason)) {
					*reason_r = i_strdup(reason);
					ret = FALSE;
				}
				break;
			case POP3EXT_SESSION_DESTROYED:
				if (h->destroyed != NULL)
					h->destroyed(client, hooks[i].context);
				break;
			}
		}
	} T_END;
	return ret;
}

static void pop3ext_pop3_client_destroy(struct client *client,
					const char *reason)
{
	struct pop3ext_pop3_client *pclient =
		POP3EXT_POP3_CLIENT_CONTEXT_REQUIRE(client);

	/* a reply still streaming is cut short */
	pop3ext_pending_cmd_done(pclient, TRUE);
	(void)pop3ext_run_session_hooks(client, POP3EXT_SESSION_DESTROYED,
					NULL);
	o_stream_destroy(&pclient->refused_real_output);
	i_free(pclient->refused_reason);
	event_unref(&pclient->event);
	pclient->module_ctx.super.destroy(client, reason);
}

/* A ready hook refused the session: what pop3 says from now on (its
   "+OK Logged in." first) goes nowhere. */
static void pop3ext_client_refuse(struct pop3ext_pop3_client *pclient,
				  char *reason)
{
	struct client *client = pclient->client;

	(void)o_stream_flush(client->output);
	pclient->refused_real_output = client->output;
	client->output = o_stream_create_null();
	pclient->refused_reason = reason;
}

static pop3_client_created_func_t *pop3ext_next_hook_client_created;

void pop3ext_pop3_client_created(struct client **clientp)
{
	struct client *client = *clientp;
	struct pop3ext_pop3_client *pclient;
	char *reason;

	if (mail_user_is_plugin_loaded(client->user, pop3ext_pop3_module)) {
		pclient = p_new(client->pool, struct pop3ext_pop3_client, 1);
		pclient->client = client;
		pclient->module_ctx.super = client->v;
		client->v.destroy = pop3ext_pop3_client_destroy;
		pclient->event = event_create(client->user->event);
		event_set_append_log_prefix(pclient->event, "pop3ext_pop3: ");
		MODULE_CONTEXT_SET(client, pop3ext_pop3_client_module, pclient);

		(void)pop3ext_run_session_hooks(client,
						POP3EXT_SESSION_CREATED, NULL);
		if (!pop3ext_run_session_hooks(client, POP3EXT_SESSION_READY,
					       &reason))
			pop3ext_client_refuse(pclient, reason);
	}

	if (pop3ext_next_hook_client_created != NULL)
		pop3ext_next_hook_client_created(clientp);
}

static void pop3ext_client_take_over(struct pop3ext_pop3_client *pclient)
{
	struct client *client = pclient->client;
	bool input_pending;

	i_assert(client->io != NULL);
	if (pclient->refused_reason != NULL) {
		/* refused: nothing is read from this client any more; the
		   client is destroyed from a timeout, once pop3 is done */
		client_disconnect(client, pclient->refused_reason);
		io_remove(&client->io);
		return;
	}
	/* Input that the login process passed on (commands pipelined after
	   PASS) sits in client->input, and the core marked its io pending so
	   that it runs without waiting for the socket. The new io must be
	   pending too, or those commands would wait for more input. */
	input_pending = client->io->pending;
	io_remove(&client->io);
	client->io = io_add_istream(client->input, pop3ext_client_input,
				    client);
	if (input_pending)
		io_set_pending(client->io);
	o_stream_set_flush_callback(client->output, pop3ext_client_output,
				    client);
	pclient->dispatched = TRUE;
}

void pop3ext_pop3_mail_namespaces_created(struct mail_namespace *namespaces)
{
	struct mail_user *user = namespaces->user;
	struct pop3ext_pop3_client *pclient;
	struct client *client;

	/* The client's io exists from client_create_finish() on; this hook
	   is the first that runs after it (init_namespaces() in pop3's
	   client_init_session()). */
	for (client = pop3_clients; client != NULL; client = client->next) {
		if (client->user != user || client->io == NULL)
			continue;
		pclient = POP3EXT_POP3_CLIENT_CONTEXT(client);
		if (pclient != NULL && !pclient->dispatched)
			pop3ext_client_take_over(pclient);
	}
}

void pop3ext_pop3_hooks_set(void)
{
	pop3ext_next_hook_client_created =
		pop3_client_created_hook_set(pop3ext_pop3_client_created);
}

void pop3ext_pop3_hooks_unset(void)
{
	pop3_client_created_hook_set(pop3ext_next_hook_client_created);
}
