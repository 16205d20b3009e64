/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* Audit events (pop3ext_audit = yes): one named event per decision about a
   message, with typed fields, for Dovecot's event_exporter and metrics,
   and an info line in the log:

     pop3ext_retrieval       a POP3 RETR
     pop3ext_deletion        an expunge the policy allowed
     pop3ext_hide            a message hidden from POP3 (on_dele/on_retr)
     pop3ext_refusal         a POP3 command the policy refused
     pop3ext_expunge_held    an expunge held (legal hold, min age) or
                             refused (malformed policy)
     pop3ext_sweep_expunge   an expunge by doveadm pop3ext sweep

   Fields: user, mailbox, uid, guid, size, policy (the setting that
   decided), decision. */

#include "lib.h"
#include "mail-storage-private.h"
#include "pop3ext-plugin.h"

void pop3ext_audit_mail(struct pop3ext_user *puser, const char *name,
			struct mail *mail, const char *policy,
			const char *decision)
{
	struct event_passthrough *e;
	const char *guid;
	uoff_t size;
	bool have_guid, have_size;

	if (!puser->policy.audit || puser->policy_error != NULL)
		return;

	/* Look the message up before the passthrough event exists: the
	   storage may log or emit events of its own meanwhile (dbox adds
	   the save date to the cache, whose decision change is a
	   passthrough event), and only one passthrough event can be under
	   construction at a time. */
	have_guid = mail_get_special(mail, MAIL_FETCH_GUID, &guid) == 0;
	if (!have_guid)
		guid = "";
	have_size = mail_get_physical_size(mail, &size) == 0;
	if (!have_size)
		size = 0;

	e = event_create_passthrough(puser->event)->
		set_name(name)->
		add_str("user", mail->box->storage->user->username)->
		add_str("mailbox", mailbox_get_vname(mail->box))->
		add_int("uid", mail->uid)->
		add_str("policy", policy)->
		add_str("decision", decision);
	if (have_guid)
		e->add_str("guid", guid);
	if (have_size)
		e->add_int("size", size);
	e_info(e->event(), "%s: mailbox=%s uid=%u guid=%s size=%"PRIuUOFF_T
	       " policy=%s decision=%s", name, mailbox_get_vname(mail->box),
	       mail->uid, guid, size, policy, decision);
}

void pop3ext_audit_command(struct pop3ext_user *puser, const char *name,
			   const char *command, const char *policy,
			   const char *decision)
{
	struct event_passthrough *e;

	if (!puser->policy.audit || puser->policy_error != NULL)
		return;
	e = event_create_passthrough(puser->event)->
		set_name(name)->
		add_str("user", puser->user->username)->
		add_str("command", command)->
		add_str("policy", policy)->
		add_str("decision", decision);
	e_info(e->event(), "%s: command=%s policy=%s decision=%s",
	       name, command, policy, decision);
}
