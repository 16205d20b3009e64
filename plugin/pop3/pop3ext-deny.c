/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* pop3ext_deny_commands: POP3 commands that a user may not run.

   The value is a list of command names separated by spaces or commas
   (a passwd-file userdb field cannot hold spaces), from plugin {} or a
   userdb field of the same name; "none" is the empty list (an empty
   userdb value reaches plugins as "yes"). Listed commands are answered with
   -ERR [SYS/PERM] and dropped from CAPA (TOP, UIDL).

   A malformed value (a token that is not a command name, a command that
   only exists before login such as USER or APOP, or a name that is no
   command of this server, such as a typo) is a configuration error: it
   is logged naming the setting, the value and the user, and since what was
   meant to be denied is unknown, the session fails closed: every command
   that reads or changes mail is refused with -ERR [SYS/TEMP] until the
   value is fixed. CAPA, NOOP, RSET and QUIT keep working, so clients can
   end the session cleanly. */

#include "lib.h"
#include "array.h"
#include "str-sanitize.h"
#include "mail-user.h"
#include "pop3ext-command-list.h"
#include "pop3ext-pop3-private.h"

#define POP3EXT_DENY_SETTING "pop3ext_deny_commands"

#define POP3EXT_DENY_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3ext_deny_client_module)

/* pop3ext_deny_commands of a session, parsed once */
struct pop3ext_deny_client {
	union pop3_module_context module_ctx;
	ARRAY_TYPE(const_string) names;
	/* the setting was malformed: fail closed */
	bool config_error;
};

static MODULE_CONTEXT_DEFINE_INIT(pop3ext_deny_client_module,
				  &pop3_module_register);

static bool pop3ext_deny_command_known(const char *name, void *context)
{
	struct client *client = context;

	return pop3ext_pop3_command_exists(client, name);
}

static void pop3ext_deny_session_created(struct client *client,
					 void *context ATTR_UNUSED)
{
	struct pop3ext_deny_client *dclient;
	ARRAY_TYPE(const_string) names;
	const char *value, *name, *error;

	dclient = p_new(client->pool, struct pop3ext_deny_client, 1);
	p_array_init(&dclient->names, client->pool, 4);
	MODULE_CONTEXT_SET(client, pop3ext_deny_client_module, dclient);
	value = mail_user_plugin_getenv(client->user, POP3EXT_DENY_SETTING);
	/* "none" lets a userdb field clear the plugin {} default: Dovecot
	   turns an empty userdb value into "yes" */
	if (value == NULL || *value == '\0' || strcasecmp(value, "none") == 0)
		return;

	t_array_init(&names, 8);
	if (pop3ext_command_list_parse(value, pop3ext_deny_command_known,
				       client, &names, &error) < 0) {
		e_error(client->user->event, "pop3ext_pop3: Invalid %s=%s "
			"for user %s: %s - refusing all commands that read or change mail "
			"until the setting is fixed", POP3EXT_DENY_SETTING,
			str_sanitize(value, 256), client->user->username,
			error);
		dclient->config_error = TRUE;
	}
	array_foreach_elem(&names, name) {
		name = p_strdup(client->pool, name);
		array_push_back(&dclient->names, &name);
	}
}

static const struct pop3ext_pop3_session_hooks pop3ext_deny_session = {
	.created = pop3ext_deny_session_created,
};

static enum pop3ext_pop3_hook_result
pop3ext_deny_pre_hook(struct pop3ext_pop3_command *cmd,
		      void *context ATTR_UNUSED)
{
	struct pop3ext_deny_client *dclient = POP3EXT_DENY_CONTEXT(cmd->client);

	if (dclient == NULL)
		return POP3EXT_POP3_HOOK_CONTINUE;

	if (array_lsearch(&dclient->names, &cmd->name,
			  i_strcmp_p) != NULL) {
		e_debug(cmd->client->user->event, "pop3ext_pop3: Refused %s: "
			"in %s", cmd->name, POP3EXT_DENY_SETTING);
		client_send_line(cmd->client, "-ERR [SYS/PERM] The %s command "
				 "is disabled for this account.", cmd->name);
		cmd->ret = 0;
		return POP3EXT_POP3_HOOK_ANSWERED;
	}
	if (dclient->config_error)
		return pop3ext_pop3_refuse_fail_closed(cmd);
	return POP3EXT_POP3_HOOK_CONTINUE;
}

static void pop3ext_deny_capa(struct client *client,
			      struct pop3ext_pop3_capa *capa,
			      void *context ATTR_UNUSED)
{
	struct pop3ext_deny_client *dclient = POP3EXT_DENY_CONTEXT(client);
	const char *name;

	if (dclient == NULL)
		return;
	if (dclient->config_error) {
		/* nothing that reads mail can be relied on */
		(void)pop3ext_pop3_capa_remove(capa, "TOP");
		(void)pop3ext_pop3_capa_remove(capa, "UIDL");
	}
	array_foreach_elem(&dclient->names, name)
		(void)pop3ext_pop3_capa_remove(capa, name);
}

void pop3ext_deny_init(void)
{
	pop3ext_pop3_session_hooks_register(&pop3ext_deny_session, NULL);
	pop3ext_pop3_hook_register(pop3ext_deny_pre_hook, NULL, NULL);
	pop3ext_pop3_capa_register(pop3ext_deny_capa, NULL);
}

void pop3ext_deny_deinit(void)
{
	pop3ext_pop3_capa_unregister(pop3ext_deny_capa, NULL);
	pop3ext_pop3_hook_unregister(pop3ext_deny_pre_hook, NULL, NULL);
	pop3ext_pop3_session_hooks_unregister(&pop3ext_deny_session, NULL);
}
