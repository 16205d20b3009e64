/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* doveadm pop3ext policy | sweep. The commands use the pop3ext mail
   plugin's symbols: doveadm loads this module once the user's mail_plugins
   (with pop3ext) are loaded. */

#include "lib.h"
#include "module-dir.h"
#include "doveadm-mail.h"
#include "doveadm-pop3ext-plugin.h"

const char *doveadm_pop3ext_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_pop3ext_plugin_init(struct module *module);
void doveadm_pop3ext_plugin_deinit(void);

void doveadm_pop3ext_plugin_init(struct module *module ATTR_UNUSED)
{
	doveadm_cmd_register_ver2(&doveadm_pop3ext_cmd_policy);
	doveadm_cmd_register_ver2(&doveadm_pop3ext_cmd_sweep);
}

void doveadm_pop3ext_plugin_deinit(void)
{
}
