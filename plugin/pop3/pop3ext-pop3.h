#ifndef POP3EXT_POP3_H
#define POP3EXT_POP3_H

/*
 * dovecot-pop3ext: the POP3 command dispatcher's public API.
 *
 * Loaded as lib21_pop3ext_pop3_plugin.so into Dovecot's pop3 process, the
 * dispatcher takes over command input of every session whose user has
 * "pop3ext_pop3" in mail_plugins.  Each command line then runs:
 *
 *   1. the pre-hooks, in registration order.  A pre-hook may answer the
 *      command itself (for example refuse it); then no later pre-hook and no
 *      handler runs;
 *   2. the handler: a command registered here, else the dispatcher's own
 *      CAPA, else Dovecot's own client_command_execute();
 *   3. the post-hooks, in registration order, which see the outcome;
 *   4. the done-hooks, in registration order, once the reply is complete:
 *      right after the post-hooks, or for a reply that streams from the
 *      output flush callback (cmd->pending) when it has ended or was cut
 *      short (the client disconnected, the message could not be read).
 *
 * Everything not answered by a hook or a registered command behaves exactly
 * as in stock Dovecot: pipelining, RETR/TOP streaming, output throttling, the
 * bad-command limit and timeouts are unchanged.
 *
 * Another plugin uses this API by listing "pop3ext_pop3" in its
 * <name>_dependencies[] and registering from its init() (unregistering in
 * deinit()).  Registrations are per process; a pop3 process may serve users
 * with different mail_plugins, so a hook that belongs to a per-user plugin
 * checks mail_user_is_plugin_loaded(client->user, its module) itself.
 *
 * All names are upper-case ASCII.  Strings passed to hooks live until the
 * command's data stack frame ends; copy what must be kept.
 *
 * This header needs nothing else included before it.
 */

#include <stdbool.h>

/* Raised on incompatible changes to anything in this header. */
#define POP3EXT_POP3_API_VERSION 2

struct client;	/* Dovecot's pop3 session (pop3-client.h) */

struct pop3ext_pop3_command {
	struct client *client;
	/* command name, upper-cased */
	const char *name;
	/* arguments with leading spaces removed; "" when there are none */
	const char *args;

	/* The outcome, with client_command_execute()'s meaning: >= 0 the
	   command was valid, < 0 it was a bad command (counted towards
	   Dovecot's limit of 20, after which the client is disconnected). */
	int ret;
	/* A pre-hook answered the command; no handler ran. */
	bool answered_by_hook;
	/* The command continues streaming its reply from the output flush
	   callback (LIST, UIDL, RETR and TOP of a large mailbox or message):
	   the reply is not complete when post-hooks run. */
	bool pending;
	/* Done-hooks only: RETR, or TOP whose reply reached the end of the
	   message, sent the whole message, read to its end without error.
	   FALSE for a RETR answered -ERR, or cut short by a read error or a
	   disconnection. (A TOP of exactly the message's line count stops
	   before the end is seen and is not counted.) */
	bool message_sent;
};

enum pop3ext_pop3_hook_result {
	/* let the next pre-hook or the handler run */
	POP3EXT_POP3_HOOK_CONTINUE = 0,
	/* the hook has sent the whole reply and set cmd->ret */
	POP3EXT_POP3_HOOK_ANSWERED,
};

typedef enum pop3ext_pop3_hook_result
pop3ext_pop3_pre_hook_t(struct pop3ext_pop3_command *cmd, void *context);
typedef void
pop3ext_pop3_post_hook_t(const struct pop3ext_pop3_command *cmd,
			 void *context);
typedef void
pop3ext_pop3_done_hook_t(const struct pop3ext_pop3_command *cmd,
			 void *context);

/* A command handler, with client_command_execute()'s return value. It
   replies with client_send_line(); a multi-line or streaming reply uses
   client->cmd/client->cmd_context like Dovecot's own LIST and RETR (the
   continuation must cope with being called from client_destroy() with
   closed streams and must then set client->cmd = NULL). */
typedef int pop3ext_pop3_command_func_t(struct client *client,
					const char *args, void *context);

/* The capability list that CAPA (after login) sends, one line per entry,
   without CRLF. Providers run in registration order; the dispatcher adds
   "IMPLEMENTATION dovecot-pop3ext <version>" after them. */
struct pop3ext_pop3_capa;
typedef void pop3ext_pop3_capa_func_t(struct client *client,
				      struct pop3ext_pop3_capa *capa,
				      void *context);

/* Either hook may be NULL. The same (pre, post, context) may be registered
   only once. Hooks may register and unregister hooks (of any kind) while
   they run: a hook registered meanwhile is called from the next command
   on, one unregistered meanwhile is not called again. */
void pop3ext_pop3_hook_register(pop3ext_pop3_pre_hook_t *pre,
				pop3ext_pop3_post_hook_t *post,
				void *context);
void pop3ext_pop3_hook_unregister(pop3ext_pop3_pre_hook_t *pre,
				  pop3ext_pop3_post_hook_t *post,
				  void *context);

/* The same (done, context) may be registered only once. A done-hook must
   not destroy the client (it may run from client_destroy()). */
void pop3ext_pop3_done_hook_register(pop3ext_pop3_done_hook_t *done,
				     void *context);
void pop3ext_pop3_done_hook_unregister(pop3ext_pop3_done_hook_t *done,
				       void *context);

/* Session hooks, for the sessions the dispatcher runs. Any of them may be
   NULL; each kind runs in registration order. A plugin keeps its per-session
   state in a module context of its own on the client (pop3's
   pop3_module_register).

   created: the session was created; client->user is ready, no mailbox is
     open and nothing has been sent to the client.
   ready: right after the created hooks, before Dovecot answers the login.
     Returning FALSE refuses the session: the hook has sent the client its
     -ERR line and set *reason_r (for the log); Dovecot's "+OK Logged in."
     and anything else pop3 says then go nowhere, no command is run, and
     the session ends as soon as pop3 has set it up. Later ready hooks do
     not run.
   destroyed: the session is being destroyed (any reply still streaming
     was cut short just before). */
struct pop3ext_pop3_session_hooks {
	void (*created)(struct client *client, void *context);
	bool (*ready)(struct client *client, void *context,
		      const char **reason_r);
	void (*destroyed)(struct client *client, void *context);
};

/* hooks must stay valid until unregistered. The same (hooks, context) may
   be registered only once. */
void pop3ext_pop3_session_hooks_register(
	const struct pop3ext_pop3_session_hooks *hooks, void *context);
void pop3ext_pop3_session_hooks_unregister(
	const struct pop3ext_pop3_session_hooks *hooks, void *context);

/* Fail closed, for a pre-hook whose setting is unusable for this user:
   refuses, with -ERR [SYS/TEMP] "... unavailable: server configuration
   error.", every command of this server that reads or changes mail (all
   but CAPA, NOOP, RSET and QUIT, which let a client end the session
   cleanly; unknown commands stay unknown). Returns
   POP3EXT_POP3_HOOK_ANSWERED if it answered cmd. */
enum pop3ext_pop3_hook_result
pop3ext_pop3_refuse_fail_closed(struct pop3ext_pop3_command *cmd);

/* Registers a command by name (1-32 characters of A-Z, 0-9, '-' and '_').
   A registered command takes precedence over Dovecot's command of the same
   name. Registering a name twice panics (pop3ext_pop3 itself registers
   QUIT, whose handler does the retention policy's UPDATE-state work
   before Dovecot's QUIT). */
void pop3ext_pop3_command_register(const char *name,
				   pop3ext_pop3_command_func_t *func,
				   void *context);
void pop3ext_pop3_command_unregister(const char *name);
/* Returns true if name is a command of this pop3 process after login:
   Dovecot's own or a registered one. */
bool pop3ext_pop3_command_exists(struct client *client, const char *name);

void pop3ext_pop3_capa_register(pop3ext_pop3_capa_func_t *func,
				void *context);
void pop3ext_pop3_capa_unregister(pop3ext_pop3_capa_func_t *func,
				  void *context);
/* Appends a capability line (no CR or LF in it). */
void pop3ext_pop3_capa_add(struct pop3ext_pop3_capa *capa, const char *line);
/* Removes the lines whose first word is keyword (case-insensitive).
   Returns true if any was removed. */
bool pop3ext_pop3_capa_remove(struct pop3ext_pop3_capa *capa,
			      const char *keyword);
/* Returns true if a line whose first word is keyword is present. */
bool pop3ext_pop3_capa_has(const struct pop3ext_pop3_capa *capa,
			   const char *keyword);

/* Returns true if the dispatcher runs this client's commands. */
bool pop3ext_pop3_client_is_dispatched(struct client *client);

#endif
