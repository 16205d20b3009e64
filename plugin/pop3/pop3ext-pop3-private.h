#ifndef POP3EXT_POP3_PRIVATE_H
#define POP3EXT_POP3_PRIVATE_H

#include "module-context.h"
#include "pop3-common.h"
#include "pop3ext-pop3.h"

#define POP3EXT_POP3_CLIENT_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3ext_pop3_client_module)
#define POP3EXT_POP3_CLIENT_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3ext_pop3_client_module)

struct mail_namespace;

struct pop3ext_pop3_client {
	union pop3_module_context module_ctx;
	struct client *client;
	struct event *event;

	/* pop3ext_deny_commands, parsed once per session */
	ARRAY_TYPE(const_string) deny_names;
	/* the setting was malformed: refuse every command that reads or
	   changes mail (see pop3ext-deny.c) */
	bool deny_config_error:1;
	/* the dispatcher owns client->io and the output flush callback */
	bool dispatched:1;
};

struct pop3ext_pop3_capa {
	ARRAY_TYPE(const_string) lines;
};

extern struct module *pop3ext_pop3_module;
extern MODULE_CONTEXT_DEFINE(pop3ext_pop3_client_module,
			     &pop3_module_register);

/* pop3ext-dispatch.c */
void pop3ext_pop3_client_created(struct client **client);
void pop3ext_pop3_mail_namespaces_created(struct mail_namespace *namespaces);
void pop3ext_pop3_dispatch_deinit(void);
void pop3ext_pop3_hooks_set(void);
void pop3ext_pop3_hooks_unset(void);

/* pop3ext-capa.c */
int pop3ext_pop3_cmd_capa(struct client *client);
void pop3ext_pop3_capa_deinit(void);

/* pop3ext-deny.c */
void pop3ext_deny_client_init(struct pop3ext_pop3_client *pclient);
void pop3ext_deny_init(void);
void pop3ext_deny_deinit(void);

#endif
