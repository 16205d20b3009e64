/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "pop3ext-auth-config.h"
#include "pop3ext-auth-site-loader.h"

#include <dlfcn.h>

struct site_hook {
	const char *name;
	void *handle;
	const struct pop3ext_auth_site_module *module;
	void *context;
	bool initialized;
};

struct pop3ext_auth_site_hooks {
	pool_t pool;
	ARRAY(struct site_hook) hooks;
};

/* the reply handed to a hook: its callbacks write into the outcome */
struct site_reply {
	struct pop3ext_auth_site_reply reply;
	struct pop3ext_auth_site_outcome *outcome;
	const char *reason;
};

static int
site_hook_load(struct pop3ext_auth_site_hooks *hooks,
	       const struct pop3ext_auth_config *set,
	       const struct pop3ext_auth_site_hook_config *conf, bool init,
	       const char **error_r)
{
	struct site_hook *hook;
	const char *path, *error;
	void *handle;
	const struct pop3ext_auth_site_module *module;

	path = t_strdup_printf("%s/pop3ext_site_%s.so", set->site_hook_dir,
			       conf->name);
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL) {
		*error_r = t_strdup_printf("cannot load %s: %s", path,
					   dlerror());
		return -1;
	}
	module = dlsym(handle, POP3EXT_AUTH_SITE_SYMBOL);
	if (module == NULL) {
		*error_r = t_strdup_printf(
			"%s defines no %s: not a pop3ext site hook", path,
			POP3EXT_AUTH_SITE_SYMBOL);
		(void)dlclose(handle);
		return -1;
	}
	if (module->magic != POP3EXT_AUTH_SITE_MAGIC) {
		*error_r = t_strdup_printf(
			"%s: %s has the wrong magic number: not a pop3ext "
			"site hook", path, POP3EXT_AUTH_SITE_SYMBOL);
		(void)dlclose(handle);
		return -1;
	}
	if (module->abi_version != POP3EXT_AUTH_SITE_ABI_VERSION) {
		*error_r = t_strdup_printf(
			"%s was built for site hook ABI version %u, this "
			"driver has version %u: rebuild it with this "
			"version's pop3ext-auth-site.h", path,
			module->abi_version, POP3EXT_AUTH_SITE_ABI_VERSION);
		(void)dlclose(handle);
		return -1;
	}
	if (module->login == NULL) {
		*error_r = t_strdup_printf("%s: the module has no login "
					   "function", path);
		(void)dlclose(handle);
		return -1;
	}

	hook = array_append_space(&hooks->hooks);
	hook->name = p_strdup(hooks->pool, conf->name);
	hook->handle = handle;
	hook->module = module;
	if (!init) {
		/* checked, but initialised only where it runs */
		return 0;
	}
	if (module->init != NULL) {
		error = NULL;
		if (module->init(conf->args, &hook->context, &error) < 0) {
			*error_r = t_strdup_printf("%s: %s", conf->name,
				error == NULL ? "init failed" : error);
			return -1;
		}
	}
	hook->initialized = TRUE;
	return 0;
}

int pop3ext_auth_site_hooks_load(const struct pop3ext_auth_config *set,
				 bool init,
				 struct pop3ext_auth_site_hooks **hooks_r,
				 const char **error_r)
{
	struct pop3ext_auth_site_hooks *hooks;
	const struct pop3ext_auth_site_hook_config *conf;
	const char *error;
	pool_t pool;

	*hooks_r = NULL;
	if (array_count(&set->site_hooks) == 0)
		return 0;

	pool = pool_alloconly_create("pop3ext site hooks", 512);
	hooks = p_new(pool, struct pop3ext_auth_site_hooks, 1);
	hooks->pool = pool;
	p_array_init(&hooks->hooks, pool, array_count(&set->site_hooks));
	array_foreach(&set->site_hooks, conf) {
		if (site_hook_load(hooks, set, conf, init, &error) < 0) {
			*error_r = t_strdup_printf("%s line %u: site_hook: %s",
						   set->path, conf->line, error);
			pop3ext_auth_site_hooks_unload(&hooks);
			return -1;
		}
	}
	*hooks_r = hooks;
	return 0;
}

void pop3ext_auth_site_hooks_unload(struct pop3ext_auth_site_hooks **_hooks)
{
	struct pop3ext_auth_site_hooks *hooks = *_hooks;
	struct site_hook *hook;

	if (hooks == NULL)
		return;
	*_hooks = NULL;
	array_foreach_modifiable(&hooks->hooks, hook) {
		if (hook->initialized && hook->module->deinit != NULL)
			hook->module->deinit(hook->context);
		(void)dlclose(hook->handle);
	}
	pool_unref(&hooks->pool);
}

static void site_reply_add_field(struct pop3ext_auth_site_reply *_reply,
				 const char *name, const char *value)
{
	struct site_reply *reply = container_of(_reply, struct site_reply,
						reply);

	if (name == NULL || name[0] == '\0' || value == NULL)
		return;
	name = t_strdup(name);
	value = t_strdup(value);
	array_push_back(&reply->outcome->fields, &name);
	array_push_back(&reply->outcome->fields, &value);
}

static void site_reply_set_reason(struct pop3ext_auth_site_reply *_reply,
				  const char *reason)
{
	struct site_reply *reply = container_of(_reply, struct site_reply,
						reply);

	reply->reason = reason == NULL ? NULL : t_strdup(reason);
}

void pop3ext_auth_site_hooks_run(struct pop3ext_auth_site_hooks *hooks,
				 const struct pop3ext_auth_site_request *request,
				 struct pop3ext_auth_site_outcome *outcome_r)
{
	struct site_hook *hook;
	struct site_reply reply;

	i_zero(outcome_r);
	outcome_r->verdict = POP3EXT_AUTH_SITE_ALLOW;
	t_array_init(&outcome_r->fields, 8);
	if (hooks == NULL)
		return;

	array_foreach_modifiable(&hooks->hooks, hook) {
		enum pop3ext_auth_site_verdict verdict;

		/* hooks run only where they were initialised */
		i_assert(hook->initialized);
		i_zero(&reply);
		reply.reply.add_field = site_reply_add_field;
		reply.reply.set_reason = site_reply_set_reason;
		reply.outcome = outcome_r;
		verdict = hook->module->login(hook->context, request,
					      &reply.reply);
		if (verdict == POP3EXT_AUTH_SITE_ALLOW)
			continue;
		if (verdict != POP3EXT_AUTH_SITE_DENY &&
		    verdict != POP3EXT_AUTH_SITE_TEMPFAIL) {
			/* not a verdict we know: fail safe */
			reply.reason = t_strdup_printf(
				"returned unknown verdict %d", (int)verdict);
			verdict = POP3EXT_AUTH_SITE_TEMPFAIL;
		}
		outcome_r->verdict = verdict;
		outcome_r->hook_name = hook->name;
		outcome_r->reason = reply.reason != NULL ? reply.reason :
			"(no reason given)";
		array_clear(&outcome_r->fields);
		return;
	}
}
