/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "mail-user.h"
#include "mail-storage-hooks.h"
#include "pop3ext-plugin.h"

const char *pop3ext_plugin_version = DOVECOT_ABI_VERSION;

static struct mail_storage_hooks pop3ext_mail_storage_hooks = {
	.mail_user_created = pop3ext_mail_user_created,
	.mailbox_allocated = pop3ext_mailbox_allocated,
	.mail_allocated = pop3ext_mail_allocated,
};

void pop3ext_plugin_init(struct module *module)
{
	mail_storage_hooks_add(module, &pop3ext_mail_storage_hooks);
}

void pop3ext_plugin_deinit(void)
{
	mail_storage_hooks_remove(&pop3ext_mail_storage_hooks);
}
