#ifndef POP3EXT_POP3_PRIVATE_H
#define POP3EXT_POP3_PRIVATE_H

#include "module-context.h"
#include "pop3-common.h"
#include "pop3ext-pop3.h"

#define POP3EXT_POP3_CLIENT_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3ext_pop3_client_module)
#define POP3EXT_POP3_CLIENT_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3ext_pop3_client_module)

struct mail;
struct mailbox;
struct mail_namespace;

struct pop3ext_pop3_client {
	union pop3_module_context module_ctx;
	struct client *client;
	struct event *event;
	/* a ready hook refused the session (why, for the log): it ends as
	   soon as it is set up; what pop3 says goes to a null stream */
	char *refused_reason;
	struct ostream *refused_real_output;

	/* the command whose reply still streams (client->cmd != NULL): its
	   done-hooks run when it ends; name and args are its own copies */
	struct pop3ext_pop3_command pending_cmd;
	char *pending_name, *pending_args;
	/* RETR/TOP: the message stream being sent, until it is destroyed;
	   then whether all of it was read without error */
	struct istream *fetch_input;
	bool fetch_watched:1;
	bool fetch_sent_all:1;
	bool have_pending_cmd:1;

	/* the dispatcher owns client->io and the output flush callback */
	bool dispatched:1;
	/* all_seqs matches the filtered listing */
	bool seqs_fixed:1;
};

struct pop3ext_pop3_capa {
	ARRAY_TYPE(const_string) lines;
};

extern struct module *pop3ext_pop3_module;
extern MODULE_CONTEXT_DEFINE(pop3ext_pop3_client_module,
			     &pop3_module_register);

/* pop3ext-pop3-plugin.c: a test hook for the crash trials. With
   POP3EXT_CRASH_AT=<point> in the environment the process dies (SIGKILL,
   as by a power cut) when it reaches that point, after logging
   "crash point <point> reached". */
void pop3ext_pop3_crash_point(const char *point);

/* pop3ext-dispatch.c */
void pop3ext_pop3_client_created(struct client **client);
void pop3ext_pop3_mail_namespaces_created(struct mail_namespace *namespaces);
void pop3ext_pop3_mail_allocated(struct mail *mail);
void pop3ext_pop3_dispatch_deinit(void);
void pop3ext_pop3_hooks_set(void);
void pop3ext_pop3_hooks_unset(void);

/* pop3ext-capa.c */
int pop3ext_pop3_cmd_capa(struct client *client);
void pop3ext_pop3_capa_deinit(void);

/* pop3ext-retention.c */
void pop3ext_retention_fix_all_seqs(struct client *client);
void pop3ext_retention_mailbox_allocated(struct mailbox *box);
void pop3ext_retention_mail_allocated(struct mail *mail);
void pop3ext_retention_init(void);
void pop3ext_retention_deinit(void);

/* pop3ext-login-delay.c */
void pop3ext_login_delay_init(void);
void pop3ext_login_delay_deinit(void);

/* pop3ext-deny.c */
void pop3ext_deny_init(void);
void pop3ext_deny_deinit(void);

#endif
