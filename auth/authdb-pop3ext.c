/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* libauthdb_pop3ext.so: Dovecot's auth process loads it when a passdb or
   userdb block says driver = pop3ext (lazily, from its compile-time module
   dir). It registers both halves of the driver. */

#include "auth-common.h"
#include "passdb.h"
#include "userdb.h"
#include "pop3ext-auth.h"

const char *authdb_pop3ext_version = DOVECOT_ABI_VERSION;

void authdb_pop3ext_init(void);
void authdb_pop3ext_deinit(void);

void authdb_pop3ext_init(void)
{
	passdb_register_module(&pop3ext_passdb_interface);
	userdb_register_module(&pop3ext_userdb_interface);
}

void authdb_pop3ext_deinit(void)
{
	passdb_unregister_module(&pop3ext_passdb_interface);
	userdb_unregister_module(&pop3ext_userdb_interface);
}
