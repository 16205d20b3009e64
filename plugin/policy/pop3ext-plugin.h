#ifndef POP3EXT_PLUGIN_H
#define POP3EXT_PLUGIN_H

/* The policy engine (lib20_pop3ext_plugin.so): the per-user state that the
   other pop3ext modules (pop3ext_pop3, doveadm pop3ext) build on. */

struct module;
struct mail_user;

struct pop3ext_user {
	union mail_user_module_context module_ctx;
	/* child of the user's event: category "pop3ext", prefix "pop3ext: " */
	struct event *event;
};

extern const char *pop3ext_plugin_version;
extern struct event_category event_category_pop3ext;

/* Returns the user's pop3ext state, or NULL when pop3ext is not in this
   user's mail_plugins. */
struct pop3ext_user *pop3ext_user_get(struct mail_user *user);

void pop3ext_mail_user_created(struct mail_user *user);

void pop3ext_plugin_init(struct module *module);
void pop3ext_plugin_deinit(void);

#endif
