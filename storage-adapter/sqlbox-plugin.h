#ifndef SQLBOX_PLUGIN_H
#define SQLBOX_PLUGIN_H

struct module;

extern const char *sqlbox_plugin_version;

void sqlbox_plugin_init(struct module *module);
void sqlbox_plugin_deinit(void);

#endif
