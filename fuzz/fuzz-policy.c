/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* The retention policy (plugin/policy/pop3ext-policy.c): the input is
   lines "name=value"; every setting is looked up among them (the names
   the plugin reads, so most lines hit one), the whole policy is parsed,
   and every value is also checked on its own against every setting and as
   an interval and a date. A policy that parses must also give its values
   and EXPIRE capability back. */

#include "fuzz-common.h"
#include "pop3ext-policy.h"

struct fuzz_policy_ctx {
	const char *const *lines;
};

static const char *
fuzz_policy_lookup(const char *name, enum pop3ext_source *source_r,
		   void *context)
{
	struct fuzz_policy_ctx *ctx = context;
	const char *const *line;
	size_t len = strlen(name);

	for (line = ctx->lines; *line != NULL; line++) {
		/* "name=value", or "<source digit>name=value" */
		const char *p = *line;
		enum pop3ext_source source = POP3EXT_SOURCE_PLUGIN;

		if (*p >= '0' && *p <= '2') {
			source = (enum pop3ext_source)(*p - '0');
			p++;
		}
		if (strncmp(p, name, len) == 0 && p[len] == '=') {
			*source_r = source;
			return p + len + 1;
		}
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
		struct fuzz_policy_ctx ctx;
		struct pop3ext_policy policy;
		const char *const *line, *error, *eq;
		pool_t pool = pool_alloconly_create("fuzz policy", 1024);
		unsigned int i, secs;
		time_t t;

		ctx.lines = fuzz_lines(data, size);
		error = NULL;
		if (pop3ext_policy_parse(pool, fuzz_policy_lookup, &ctx,
					 &policy, &error) == 0) {
			for (i = 0; i < POP3EXT_SET_COUNT; i++) {
				const char *v = pop3ext_policy_value(&policy, i);

				fuzz_check(v != NULL);
				/* the effective value passes its own check */
				fuzz_check(pop3ext_policy_check_value(i, v,
								      &error) == 0);
				(void)pop3ext_source_name(policy.sources[i]);
			}
			fuzz_check(pop3ext_policy_expire_capability(&policy) != NULL);
		} else {
			fuzz_check(error != NULL);
		}
		for (line = ctx.lines; *line != NULL; line++) {
			eq = strchr(*line, '=');
			const char *value = eq == NULL ? *line : eq + 1;

			for (i = 0; i < POP3EXT_SET_COUNT; i++)
				(void)pop3ext_policy_check_value(i, value, &error);
			if (pop3ext_parse_interval(value, &secs, &error) < 0)
				fuzz_check(error != NULL);
			if (pop3ext_parse_date(value, &t, &error) < 0)
				fuzz_check(error != NULL);
		}
		pool_unref(&pool);
	} T_END;
	return 0;
}
