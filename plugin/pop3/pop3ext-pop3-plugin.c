/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "mail-storage-hooks.h"
#include "pop3ext-pop3-private.h"

#include <signal.h>
#include <unistd.h>

const char *pop3ext_pop3_plugin_version = DOVECOT_ABI_VERSION;
const char pop3ext_pop3_plugin_binary_dependency[] = "pop3";
const char *pop3ext_pop3_plugin_dependencies[] = { "pop3ext", NULL };

void pop3ext_pop3_plugin_init(struct module *module);
void pop3ext_pop3_plugin_deinit(void);

struct module *pop3ext_pop3_module;
struct pop3ext_pop3_client_module pop3ext_pop3_client_module =
	MODULE_CONTEXT_INIT(&pop3_module_register);

/* POP3EXT_CRASH_AT, read once when the plugin loads (Dovecot passes it on
   through import_environment) */
static char *pop3ext_crash_at;

void pop3ext_pop3_crash_point(const char *point)
{
	if (pop3ext_crash_at == NULL || strcmp(pop3ext_crash_at, point) != 0)
		return;
	/* the log line is written before the process dies, so that a test
	   can tell that the point was reached */
	i_info("pop3ext_pop3: crash point %s reached", point);
	(void)kill(getpid(), SIGKILL);
}

static struct mail_storage_hooks pop3ext_pop3_mail_storage_hooks = {
	.mail_namespaces_created = pop3ext_pop3_mail_namespaces_created,
	.mailbox_allocated = pop3ext_retention_mailbox_allocated,
	.mail_allocated = pop3ext_pop3_mail_allocated,
};

void pop3ext_pop3_plugin_init(struct module *module)
{
	const char *crash_at = getenv("POP3EXT_CRASH_AT");

	pop3ext_pop3_module = module;
	if (crash_at != NULL && *crash_at != '\0')
		pop3ext_crash_at = i_strdup(crash_at);
	mail_storage_hooks_add(module, &pop3ext_pop3_mail_storage_hooks);
	pop3ext_pop3_hooks_set();
	pop3ext_deny_init();
	pop3ext_retention_init();
	pop3ext_login_delay_init();
}

void pop3ext_pop3_plugin_deinit(void)
{
	pop3ext_login_delay_deinit();
	pop3ext_retention_deinit();
	pop3ext_deny_deinit();
	pop3ext_pop3_hooks_unset();
	mail_storage_hooks_remove(&pop3ext_pop3_mail_storage_hooks);
	pop3ext_pop3_capa_deinit();
	pop3ext_pop3_dispatch_deinit();
	i_free(pop3ext_crash_at);
}
