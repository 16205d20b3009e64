#ifndef DOVEADM_POP3EXT_PLUGIN_H
#define DOVEADM_POP3EXT_PLUGIN_H

extern struct doveadm_cmd_ver2 doveadm_pop3ext_cmd_policy;
extern struct doveadm_cmd_ver2 doveadm_pop3ext_cmd_sweep;

#endif
