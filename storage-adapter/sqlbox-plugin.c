/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "mail-storage-private.h"
#include "sqlbox-plugin.h"
#include "sqlbox-storage.h"
#include "sqlbox-db.h"

/* sqlbox: a mail storage in SQLite or PostgreSQL.
   mail_plugins = $mail_plugins sqlbox
   mail_location = sqlbox:~/sqlbox */

const char *sqlbox_plugin_version = DOVECOT_ABI_VERSION;

void sqlbox_plugin_init(struct module *module ATTR_UNUSED)
{
	mail_storage_class_register(&sqlbox_storage);
}

void sqlbox_plugin_deinit(void)
{
	sqlbox_db_sqlite_cache_clear();
	sqlbox_db_pgsql_cache_clear();
	mail_storage_class_unregister(&sqlbox_storage);
}
