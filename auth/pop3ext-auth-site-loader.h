#ifndef POP3EXT_AUTH_SITE_LOADER_H
#define POP3EXT_AUTH_SITE_LOADER_H

/* Loads the site hooks named by site_hook lines and runs them for a login
   (the public side is pop3ext-auth-site.h). */

#include "pop3ext-auth-site.h"

struct pop3ext_auth_config;
struct pop3ext_auth_site_hooks;

struct pop3ext_auth_site_outcome {
	enum pop3ext_auth_site_verdict verdict;
	/* the hook that denied or temp-failed, and its reason */
	const char *hook_name;
	const char *reason;
	/* fields added by the hooks: name, value, ...; only when allowed */
	ARRAY_TYPE(const_string) fields;
};

/* Loads and checks every hook, and initialises it if init is TRUE (in the
   auth-workers where hooks run; elsewhere they can't be run). Returns 0,
   or -1 with *error_r naming the configuration file, line and key. NULL
   *hooks_r when none are configured. */
int pop3ext_auth_site_hooks_load(const struct pop3ext_auth_config *set,
				 bool init,
				 struct pop3ext_auth_site_hooks **hooks_r,
				 const char **error_r);
void pop3ext_auth_site_hooks_unload(struct pop3ext_auth_site_hooks **hooks);

/* Runs the hooks in order until one does not allow. outcome is filled in
   (with data stack memory). */
void pop3ext_auth_site_hooks_run(struct pop3ext_auth_site_hooks *hooks,
				 const struct pop3ext_auth_site_request *request,
				 struct pop3ext_auth_site_outcome *outcome_r);

#endif
