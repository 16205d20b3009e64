/* A worked example of a pop3ext site hook (see pop3ext-auth-site.h).

   Build (outside this tree):
     cc -shared -fPIC -I/usr/include/dovecot/pop3ext \
        -o pop3ext_site_example.so pop3ext_site_example.c
   Install into the site_hook_dir (by default
   /usr/lib/dovecot/modules/auth/pop3ext-site/) and add to the pop3ext auth
   configuration file:

     site_hook = example deny_file=/etc/dovecot/pop3-blocked maintenance_file=/run/pop3-maintenance field=userdb_pop3ext_audit=yes

   What it does, for each login that passed the password check:
   - maintenance_file=PATH: while PATH exists, every login fails temporarily
     (clients see "[SYS/TEMP]" / "[UNAVAIL]" and retry later);
   - deny_file=PATH: users listed in PATH (one name per line, '#' comments)
     are refused; the reason goes to Dovecot's log, the client only sees
     "Authentication failed.";
   - deny_insecure=yes: refuses logins over connections without TLS
     (except local ones);
   - field=NAME=VALUE (repeatable): adds a field to every login it allows,
     e.g. userdb_pop3ext_audit=yes turns on auditing of the session.
   Unknown arguments are refused at start-up, with the reason.

   The files are read at each login (so an edit takes effect at once);
   a hook on a busy server would cache them. */

#include "pop3ext-auth-site.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FIELDS 16

struct example_field {
	char *name;
	char *value;
};

struct example_context {
	char *deny_file;
	char *maintenance_file;
	bool deny_insecure;
	struct example_field fields[MAX_FIELDS];
	unsigned int field_count;
};

static void example_free(struct example_context *ctx)
{
	unsigned int i;

	free(ctx->deny_file);
	free(ctx->maintenance_file);
	for (i = 0; i < ctx->field_count; i++) {
		free(ctx->fields[i].name);
		free(ctx->fields[i].value);
	}
	free(ctx);
}

static int example_parse_arg(struct example_context *ctx, const char *arg,
			     const char **error_r)
{
	static char error[256];
	const char *eq;

	if (strncmp(arg, "deny_file=", 10) == 0) {
		free(ctx->deny_file);
		ctx->deny_file = strdup(arg + 10);
	} else if (strncmp(arg, "maintenance_file=", 17) == 0) {
		free(ctx->maintenance_file);
		ctx->maintenance_file = strdup(arg + 17);
	} else if (strcmp(arg, "deny_insecure=yes") == 0) {
		ctx->deny_insecure = true;
	} else if (strcmp(arg, "deny_insecure=no") == 0) {
		ctx->deny_insecure = false;
	} else if (strncmp(arg, "field=", 6) == 0 &&
		   (eq = strchr(arg + 6, '=')) != NULL && eq != arg + 6) {
		if (ctx->field_count == MAX_FIELDS) {
			*error_r = "too many field= arguments";
			return -1;
		}
		ctx->fields[ctx->field_count].name =
			strndup(arg + 6, eq - (arg + 6));
		ctx->fields[ctx->field_count].value = strdup(eq + 1);
		ctx->field_count++;
	} else {
		snprintf(error, sizeof(error),
			 "unknown argument '%.100s' (known: "
			 "deny_file=, maintenance_file=, deny_insecure=, "
			 "field=NAME=VALUE)", arg);
		*error_r = error;
		return -1;
	}
	return 0;
}

static int example_init(const char *args, void **context_r,
			const char **error_r)
{
	struct example_context *ctx = calloc(1, sizeof(*ctx));
	char *copy, *arg, *saveptr = NULL;
	int ret = 0;

	if (ctx == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	copy = strdup(args);
	for (arg = strtok_r(copy, " \t", &saveptr); arg != NULL && ret == 0;
	     arg = strtok_r(NULL, " \t", &saveptr))
		ret = example_parse_arg(ctx, arg, error_r);
	free(copy);
	if (ret < 0) {
		example_free(ctx);
		return -1;
	}
	*context_r = ctx;
	return 0;
}

static void example_deinit(void *context)
{
	example_free(context);
}

/* Returns 1 if user is listed in path, 0 if not, -1 if the file can't be
   read (other than not existing). */
static int user_listed(const char *path, const char *user)
{
	char line[1024];
	FILE *f;
	int found = 0;

	f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (found == 0 && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] != '#' && strcmp(line, user) == 0)
			found = 1;
	}
	if (ferror(f))
		found = -1;
	fclose(f);
	return found;
}

static enum pop3ext_auth_site_verdict
example_login(void *context, const struct pop3ext_auth_site_request *request,
	      struct pop3ext_auth_site_reply *reply)
{
	struct example_context *ctx = context;
	char reason[512];
	unsigned int i;
	int listed;

	if (ctx->maintenance_file != NULL &&
	    access(ctx->maintenance_file, F_OK) == 0) {
		reply->set_reason(reply, "maintenance: logins are paused");
		return POP3EXT_AUTH_SITE_TEMPFAIL;
	}
	if (ctx->deny_insecure && !request->secured) {
		reply->set_reason(reply, "connection is not secured by TLS");
		return POP3EXT_AUTH_SITE_DENY;
	}
	if (ctx->deny_file != NULL) {
		listed = user_listed(ctx->deny_file, request->user);
		if (listed < 0) {
			/* can't tell: don't let anyone in by accident */
			snprintf(reason, sizeof(reason),
				 "cannot read %s: %s", ctx->deny_file,
				 strerror(errno));
			reply->set_reason(reply, reason);
			return POP3EXT_AUTH_SITE_TEMPFAIL;
		}
		if (listed > 0) {
			snprintf(reason, sizeof(reason),
				 "user %s is listed in %s (%s login from %s)",
				 request->user, ctx->deny_file,
				 request->service, request->remote_ip);
			reply->set_reason(reply, reason);
			return POP3EXT_AUTH_SITE_DENY;
		}
	}
	for (i = 0; i < ctx->field_count; i++) {
		reply->add_field(reply, ctx->fields[i].name,
				 ctx->fields[i].value);
	}
	return POP3EXT_AUTH_SITE_ALLOW;
}

const struct pop3ext_auth_site_module pop3ext_auth_site_module = {
	.magic = POP3EXT_AUTH_SITE_MAGIC,
	.abi_version = POP3EXT_AUTH_SITE_ABI_VERSION,
	.init = example_init,
	.deinit = example_deinit,
	.login = example_login,
};
