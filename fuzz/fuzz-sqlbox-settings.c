/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* sqlbox's settings (storage-adapter/sqlbox-settings.c): the input is
   lines "name=value" for sqlbox_driver, sqlbox_connect,
   sqlbox_expunged_keep and sqlbox_lock_timeout (userdb fields can carry
   them). Settings that parse have a driver and a place to connect to. */

#include "fuzz-common.h"
#include "sqlbox-settings.h"

struct fuzz_sqlbox_ctx {
	const char *const *lines;
};

static const char *fuzz_sqlbox_lookup(const char *name, void *context)
{
	struct fuzz_sqlbox_ctx *ctx = context;
	const char *const *line;
	size_t len = strlen(name);

	for (line = ctx->lines; *line != NULL; line++) {
		if (strncmp(*line, name, len) == 0 && (*line)[len] == '=')
			return *line + len + 1;
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc ATTR_UNUSED, char ***argv ATTR_UNUSED)
{
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	T_BEGIN {
		struct fuzz_sqlbox_ctx ctx;
		struct sqlbox_settings set;
		const char *error = NULL;

		ctx.lines = fuzz_lines(data, size);
		if (sqlbox_settings_parse(fuzz_sqlbox_lookup, &ctx, "/home/u",
					  "/home/u/sqlbox",
					  pool_datastack_create(), &set,
					  &error) == 0)
			fuzz_check(set.connect != NULL);
		else
			fuzz_check(error != NULL);
	} T_END;
	return 0;
}
