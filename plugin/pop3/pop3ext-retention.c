/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* The retention policy in a POP3 session (the policy itself and the
   storage-level enforcement are in the pop3ext plugin):

   - DELE is refused with -ERR [SYS/PERM] under pop3ext_on_dele = refuse,
     and in a recent: session, which is read-only: its mails ignore flag,
     keyword and UIDL updates, and its INBOX keeps \Recent;
   - a RETR (or a TOP that reached the end) that sent the whole message
     is remembered (a done-hook: not for -ERR, a read error or a
     disconnection in the middle), and at QUIT (the UPDATE state, never before;
     a dropped connection changes nothing) each DELEted message gets
     pop3ext_on_dele and each retrieved one pop3ext_on_retr, in the
     session's own transaction; the first retrieval of a message that stays
     is logged durably for pop3ext_expire_after_retr;
   - CAPA gains EXPIRE and LOGIN-DELAY;
   - with a malformed policy, commands that read or change mail are
     refused with -ERR [SYS/TEMP]. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "seq-range-array.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "pop3ext-plugin.h"
#include "pop3ext-state.h"
#include "pop3ext-pop3-private.h"
#include "pop3-commands.h"

#define BIT_IS_SET(mask, n) \
	(((mask)[(n) / CHAR_BIT] & (1 << ((n) % CHAR_BIT))) != 0)
#define BIT_SET(mask, n) \
	((mask)[(n) / CHAR_BIT] |= (1 << ((n) % CHAR_BIT)))
#define BIT_CLEAR(mask, n) \
	((mask)[(n) / CHAR_BIT] &= ~(1 << ((n) % CHAR_BIT)))

#define POP3EXT_RETENTION_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3ext_retention_client_module)

/* the retention policy's state of a session */
struct pop3ext_retention_client {
	union pop3_module_context module_ctx;
	struct client *client;
	/* the policy engine's user (NULL if pop3ext is not loaded) */
	struct pop3ext_user *puser;
	/* [msgnum/8]: retrieved (sent whole) in this session */
	unsigned char *retrieved;
};

static MODULE_CONTEXT_DEFINE_INIT(pop3ext_retention_client_module,
				  &pop3_module_register);

struct pop3ext_quit {
	struct client *client;
	struct pop3ext_user *puser;
	/* hidden by on_dele, by on_retr */
	ARRAY_TYPE(seq_range) hide_dele, hide_retr;
	ARRAY_TYPE(seq_range) seen, keep_retrieved;
	/* archive mailbox name -> sequences (two at most: on_dele's and
	   on_retr's) */
	const char *archive_name[2];
	ARRAY_TYPE(seq_range) archive[2];
	const char *error;
};

static uint32_t client_msgnum_to_seq(struct client *client, uint32_t msgnum)
{
	return msgnum < client->msgnum_to_seq_map_count ?
		client->msgnum_to_seq_map[msgnum] : msgnum + 1;
}

/* The messages that DELE/RETR args name, if valid: message number - 1 */
static bool parse_msgnum(struct client *client, const char *args,
			 uint32_t *msgnum_r)
{
	uint32_t num;

	if (str_to_uint32(t_strcut(args, ' '), &num) < 0 || num == 0 ||
	    num > client->messages_count)
		return FALSE;
	*msgnum_r = num - 1;
	return TRUE;
}

static struct mail *client_mail(struct client *client, uint32_t msgnum)
{
	struct mail *mail;

	mail = mail_alloc(client->trans, 0, NULL);
	mail_set_seq(mail, client_msgnum_to_seq(client, msgnum));
	return mail;
}

/*
 * Session setup
 */

static void pop3ext_retention_session_created(struct client *client,
					      void *context ATTR_UNUSED)
{
	struct pop3ext_retention_client *rclient;
	struct pop3ext_user *puser = pop3ext_user_get(client->user);

	if (puser == NULL)
		return;
	rclient = p_new(client->pool, struct pop3ext_retention_client, 1);
	rclient->client = client;
	rclient->puser = puser;
	MODULE_CONTEXT_SET(client, pop3ext_retention_client_module, rclient);
	/* the storage filters the listing only with us to keep pop3's
	   message list consistent */
	puser->pop3_frontend = TRUE;
	if (puser->policy_error != NULL)
		pop3ext_user_log_policy_error(puser);
}

static const struct pop3ext_pop3_session_hooks pop3ext_retention_session = {
	.created = pop3ext_retention_session_created,
};

/* pop3 reads the filtered listing with all_seqs = 1..N when it has no
   pop3_deleted_flag; UIDL and RSET search by all_seqs, so it must name the
   messages really listed. */
void pop3ext_retention_fix_all_seqs(struct client *client)
{
	uint32_t msgnum;

	if (client->msgnum_to_seq_map == NULL ||
	    !array_is_created(&client->all_seqs))
		return;
	array_clear(&client->all_seqs);
	for (msgnum = 0; msgnum < client->messages_count; msgnum++) {
		seq_range_array_add(&client->all_seqs,
				    client_msgnum_to_seq(client, msgnum));
	}
}

/*
 * QUIT: the UPDATE state
 */

static void quit_set_deleted(struct client *client, uint32_t msgnum,
			     bool deleted)
{
	if (deleted == (client->deleted_bitmask != NULL &&
			BIT_IS_SET(client->deleted_bitmask, msgnum)))
		return;
	if (client->deleted_bitmask == NULL)
		client->deleted_bitmask = i_malloc(MSGS_BITMASK_SIZE(client));
	if (deleted) {
		BIT_SET(client->deleted_bitmask, msgnum);
		client->deleted_count++;
		client->deleted_size += client->message_sizes[msgnum];
	} else {
		BIT_CLEAR(client->deleted_bitmask, msgnum);
		client->deleted_count--;
		client->deleted_size -= client->message_sizes[msgnum];
	}
	/* "+OK Logging out, messages deleted." only if some are */
	client->deleted = client->deleted_count > 0;
}

static void quit_archive(struct pop3ext_quit *quit, const char *name,
			 uint32_t seq)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(quit->archive_name); i++) {
		if (quit->archive_name[i] == NULL) {
			quit->archive_name[i] = name;
			t_array_init(&quit->archive[i], 8);
		}
		if (strcmp(quit->archive_name[i], name) == 0) {
			seq_range_array_add(&quit->archive[i], seq);
			return;
		}
	}
	i_unreached();
}

/* Sorts each message into what QUIT does with it. */
static void quit_classify(struct pop3ext_quit *quit,
			  struct pop3ext_retention_client *rclient)
{
	struct client *client = quit->client;
	const struct pop3ext_policy *policy = &quit->puser->policy;
	uint32_t msgnum, seq;
	bool deleted, retrieved;

	for (msgnum = 0; msgnum < client->messages_count; msgnum++) {
		deleted = client->deleted && client->deleted_bitmask != NULL &&
			BIT_IS_SET(client->deleted_bitmask, msgnum);
		retrieved = rclient->retrieved != NULL &&
			BIT_IS_SET(rclient->retrieved, msgnum);
		seq = client_msgnum_to_seq(client, msgnum);

		if (deleted) {
			switch (policy->on_dele) {
			case POP3EXT_ON_DELE_EXPUNGE:
				break;
			case POP3EXT_ON_DELE_HIDE:
			case POP3EXT_ON_DELE_REFUSE:
				quit_set_deleted(client, msgnum, FALSE);
				seq_range_array_add(&quit->hide_dele, seq);
				if (retrieved)
					seq_range_array_add(&quit->keep_retrieved, seq);
				break;
			case POP3EXT_ON_DELE_ARCHIVE:
				quit_archive(quit, policy->on_dele_archive, seq);
				break;
			}
			continue;
		}
		if (!retrieved)
			continue;
		switch (policy->on_retr) {
		case POP3EXT_ON_RETR_KEEP:
			seq_range_array_add(&quit->keep_retrieved, seq);
			break;
		case POP3EXT_ON_RETR_SEEN:
			seq_range_array_add(&quit->seen, seq);
			seq_range_array_add(&quit->keep_retrieved, seq);
			break;
		case POP3EXT_ON_RETR_HIDE:
			seq_range_array_add(&quit->hide_retr, seq);
			seq_range_array_add(&quit->keep_retrieved, seq);
			break;
		case POP3EXT_ON_RETR_ARCHIVE:
			quit_archive(quit, policy->on_retr_archive, seq);
			quit_set_deleted(client, msgnum, TRUE);
			break;
		case POP3EXT_ON_RETR_EXPUNGE:
			quit_set_deleted(client, msgnum, TRUE);
			break;
		}
	}
}

static int quit_archive_copy(struct pop3ext_quit *quit, const char *vname,
			     const ARRAY_TYPE(seq_range) *seqs)
{
	struct client *client = quit->client;
	struct mail_namespace *ns;
	struct mailbox *box;
	struct mailbox_transaction_context *t;
	struct mail_save_context *save_ctx;
	struct mail *mail;
	struct seq_range_iter iter;
	enum mail_error error;
	unsigned int n = 0;
	uint32_t seq;
	int ret = 0;

	ns = mail_namespace_find(client->user->namespaces, vname);
	box = mailbox_alloc(ns->list, vname, 0);
	if (mailbox_open(box) < 0) {
		(void)mailbox_get_last_error(box, &error);
		if (error != MAIL_ERROR_NOTFOUND ||
		    (mailbox_create(box, NULL, FALSE) < 0 &&
		     mailbox_get_last_mail_error(box) != MAIL_ERROR_EXISTS) ||
		    mailbox_open(box) < 0) {
			quit->error = t_strdup_printf("Archive mailbox %s: %s",
				vname, mailbox_get_last_internal_error(box, NULL));
			mailbox_free(&box);
			return -1;
		}
	}
	t = mailbox_transaction_begin(box, MAILBOX_TRANSACTION_FLAG_EXTERNAL,
				      "pop3ext archive");
	mail = mail_alloc(client->trans, 0, NULL);
	seq_range_array_iter_init(&iter, seqs);
	while (ret == 0 && seq_range_array_iter_nth(&iter, n++, &seq)) {
		mail_set_seq(mail, seq);
		save_ctx = mailbox_save_alloc(t);
		mailbox_save_copy_flags(save_ctx, mail);
		if (mailbox_copy(&save_ctx, mail) < 0)
			ret = -1;
	}
	mail_free(&mail);
	if (ret < 0 || mailbox_transaction_commit(&t) < 0) {
		quit->error = t_strdup_printf("Archiving to %s failed: %s",
			vname, mailbox_get_last_internal_error(box, NULL));
		if (t != NULL)
			mailbox_transaction_rollback(&t);
		ret = -1;
	}
	mailbox_free(&box);
	return ret;
}

static void quit_hide(struct pop3ext_quit *quit, struct mail *mail,
		      const ARRAY_TYPE(seq_range) *seqs, const char *policy)
{
	struct mail_keywords *kw;
	struct seq_range_iter iter;
	unsigned int n = 0;
	uint32_t seq;

	if (array_count(seqs) == 0)
		return;
	kw = pop3ext_keywords(mail->box, POP3EXT_KEYWORD_HIDDEN);
	seq_range_array_iter_init(&iter, seqs);
	while (seq_range_array_iter_nth(&iter, n++, &seq)) {
		mail_set_seq(mail, seq);
		mail_update_keywords(mail, MODIFY_ADD, kw);
		pop3ext_audit_mail(quit->puser, "pop3ext_hide", mail, policy,
				   "hide");
	}
	mailbox_keywords_unref(&kw);
}

static void quit_apply_hide_seen(struct pop3ext_quit *quit)
{
	struct client *client = quit->client;
	struct mail *mail;
	struct seq_range_iter iter;
	unsigned int n = 0;
	uint32_t seq;

	mail = mail_alloc(client->trans, 0, NULL);
	quit_hide(quit, mail, &quit->hide_dele, "pop3ext_on_dele=hide");
	quit_hide(quit, mail, &quit->hide_retr, "pop3ext_on_retr=hide");
	seq_range_array_iter_init(&iter, &quit->seen);
	while (seq_range_array_iter_nth(&iter, n++, &seq)) {
		mail_set_seq(mail, seq);
		mail_update_flags(mail, MODIFY_ADD, MAIL_SEEN);
	}
	mail_free(&mail);
}

/* The storage's expunge gate for the messages QUIT is about to expunge (the
   POP3 session's mails have no expunge vfunc of pop3ext's): a held one
   stays, marked pending, and is no longer listed. */
static void quit_gate_expunges(struct pop3ext_quit *quit)
{
	struct client *client = quit->client;
	struct mail *mail;
	uint32_t msgnum;

	if (!client->deleted || !pop3ext_expunge_gate_needed(quit->puser))
		return;
	mail = mail_alloc(client->trans, MAIL_FETCH_SAVE_DATE, NULL);
	for (msgnum = 0; msgnum < client->messages_count; msgnum++) {
		if (!BIT_IS_SET(client->deleted_bitmask, msgnum))
			continue;
		mail_set_seq(mail, client_msgnum_to_seq(client, msgnum));
		if (!pop3ext_expunge_gate(mail))
			quit_set_deleted(client, msgnum, FALSE);
	}
	mail_free(&mail);
}

/* Logs the first retrieval of messages that stay in INBOX, durably,
   before QUIT answers. */
static void quit_record_retrievals(struct pop3ext_quit *quit)
{
	struct client *client = quit->client;
	struct pop3ext_user *puser = quit->puser;
	ARRAY_TYPE(pop3ext_retrieval) entries;
	ARRAY_TYPE(seq_range) recorded;
	struct pop3ext_retrieval *r;
	struct mail_keywords *kw;
	struct mail *mail;
	struct seq_range_iter iter;
	unsigned int n = 0;
	const char *guid, *error;
	uint32_t seq;

	if (array_count(&quit->keep_retrieved) == 0 ||
	    puser->policy.expire_after_retr == POP3EXT_NEVER) {
		/* only the expiry after retrieval needs the record; it counts
		   retrievals from when it is set */
		return;
	}
	if (puser->state == NULL) {
		if (puser->policy.expire_after_retr != POP3EXT_NEVER) {
			e_error(puser->event, "Can't record retrievals for "
				"pop3ext_expire_after_retr: no home directory");
		}
		return;
	}
	t_array_init(&entries, 16);
	t_array_init(&recorded, 16);
	mail = mail_alloc(client->trans, 0, NULL);
	seq_range_array_iter_init(&iter, &quit->keep_retrieved);
	while (seq_range_array_iter_nth(&iter, n++, &seq)) {
		mail_set_seq(mail, seq);
		if (str_array_find(mail_get_keywords(mail),
				   POP3EXT_KEYWORD_RETRIEVED))
			continue;
		if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0 ||
		    *guid == '\0')
			continue;
		r = array_append_space(&entries);
		r->uidvalidity = client->uid_validity;
		r->uid = mail->uid;
		r->guid = t_strdup(guid);
		r->time = ioloop_time;
		seq_range_array_add(&recorded, seq);
	}
	if (array_count(&entries) > 0 &&
	    pop3ext_state_append_retrievals(puser->state, &entries,
					    &error) < 0) {
		/* the expiry clock does not start: nothing is lost */
		e_error(puser->event, "Can't record %u retrieval(s): %s",
			array_count(&entries), error);
		mail_free(&mail);
		return;
	}
	kw = pop3ext_keywords(client->mailbox, POP3EXT_KEYWORD_RETRIEVED);
	n = 0;
	seq_range_array_iter_init(&iter, &recorded);
	while (seq_range_array_iter_nth(&iter, n++, &seq)) {
		mail_set_seq(mail, seq);
		mail_update_keywords(mail, MODIFY_ADD, kw);
	}
	mailbox_keywords_unref(&kw);
	mail_free(&mail);
}

/* What Dovecot's QUIT does, answered with the truth when archiving
   failed: the messages that were not archived stay. */
static void quit_answer_failure(struct pop3ext_quit *quit)
{
	struct client *client = quit->client;

	e_error(quit->puser->event, "%s", quit->error);
	client->quit_seen = TRUE;
	if ((client->deleted || client->seen_bitmask != NULL) &&
	    !client_update_mails(client)) {
		client_send_storage_error(client);
		client_disconnect(client, "Storage error during logout.");
		return;
	}
	if (mailbox_transaction_commit(&client->trans) < 0 ||
	    mailbox_sync(client->mailbox, MAILBOX_SYNC_FLAG_FULL_WRITE) < 0) {
		client_send_storage_error(client);
		client_disconnect(client, "Storage error during logout.");
		return;
	}
	/* the deletions that were done count in the logout line */
	client->delete_success = TRUE;
	client_send_line(client, "-ERR [SYS/TEMP] Some deleted messages were "
			 "not removed: archiving them failed.");
	client_disconnect(client, "Archiving failed during logout.");
}

static bool pop3ext_retention_quit(struct pop3ext_retention_client *rclient)
{
	struct client *client = rclient->client;
	struct pop3ext_quit quit;
	unsigned int i;
	uint32_t msgnum;

	pop3ext_pop3_crash_point("quit-begin");
	if (client->trans == NULL)
		return FALSE;
	if (rclient->puser->policy.view == POP3EXT_VIEW_RECENT) {
		/* read-only: not even \Seen */
		if (client->seen_bitmask != NULL) {
			memset(client->seen_bitmask, 0,
			       MSGS_BITMASK_SIZE(client));
			client->seen_change_count = 0;
		}
		return FALSE;
	}

	i_zero(&quit);
	quit.client = client;
	quit.puser = rclient->puser;
	t_array_init(&quit.hide_dele, 8);
	t_array_init(&quit.hide_retr, 8);
	t_array_init(&quit.seen, 8);
	t_array_init(&quit.keep_retrieved, 8);
	quit_classify(&quit, rclient);

	for (i = 0; i < N_ELEMENTS(quit.archive_name); i++) {
		if (quit.archive_name[i] == NULL)
			continue;
		pop3ext_pop3_crash_point("quit-archive-before-copy");
		if (quit_archive_copy(&quit, quit.archive_name[i],
				      &quit.archive[i]) == 0) {
			pop3ext_pop3_crash_point("quit-archive-after-commit");
			continue;
		}
		/* not archived: not removed either */
		for (msgnum = 0; msgnum < client->messages_count; msgnum++) {
			if (seq_range_exists(&quit.archive[i],
					     client_msgnum_to_seq(client, msgnum)))
				quit_set_deleted(client, msgnum, FALSE);
		}
	}
	quit_gate_expunges(&quit);
	pop3ext_pop3_crash_point("quit-after-gate");
	quit_apply_hide_seen(&quit);
	pop3ext_pop3_crash_point("quit-after-hide");
	quit_record_retrievals(&quit);
	pop3ext_pop3_crash_point("quit-after-retrievals");
	if (quit.error != NULL) {
		quit_answer_failure(&quit);
		return TRUE;
	}
	pop3ext_pop3_crash_point("quit-commit-before");
	return FALSE;
}

/*
 * A recent: session is read-only in every way
 */

static MODULE_CONTEXT_DEFINE_INIT(pop3ext_recent_mail_module,
				  &mail_module_register);

static bool pop3ext_box_is_recent_session(struct mailbox *box)
{
	struct pop3ext_user *puser;

	if ((box->flags & MAILBOX_FLAG_POP3_SESSION) == 0)
		return FALSE;
	puser = pop3ext_user_get(box->storage->user);
	return puser != NULL && puser->policy_error == NULL &&
		puser->policy.view == POP3EXT_VIEW_RECENT;
}

/* The POP3 session's INBOX: \Recent stays for IMAP, and pop3 treats the
   mailbox as read-only (QUIT changes no flags). */
void pop3ext_retention_mailbox_allocated(struct mailbox *box)
{
	if (!pop3ext_box_is_recent_session(box))
		return;
	box->flags &= ENUM_NEGATE(MAILBOX_FLAG_DROP_RECENT);
	box->flags |= MAILBOX_FLAG_READONLY;
}

static void
pop3ext_recent_update_flags(struct mail *mail ATTR_UNUSED,
			    enum modify_type modify_type ATTR_UNUSED,
			    enum mail_flags flags ATTR_UNUSED)
{
}

static void
pop3ext_recent_update_keywords(struct mail *mail ATTR_UNUSED,
			       enum modify_type modify_type ATTR_UNUSED,
			       struct mail_keywords *keywords ATTR_UNUSED)
{
}

static void pop3ext_recent_update_pop3_uidl(struct mail *mail ATTR_UNUSED,
					    const char *uidl ATTR_UNUSED)
{
}

static void pop3ext_recent_expunge(struct mail *mail ATTR_UNUSED)
{
}

/* Whatever a command does with the session's mails changes nothing: RETR's
   \Seen, RSET's removal of \Seen (pop3_enable_last), the UIDLs that
   pop3_save_uidl stores, an expunge. */
void pop3ext_retention_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	union mail_module_context *mmail;

	if (!pop3ext_box_is_recent_session(_mail->box))
		return;
	mmail = p_new(mail->pool, union mail_module_context, 1);
	mmail->super = *v;
	mail->vlast = &mmail->super;
	v->update_flags = pop3ext_recent_update_flags;
	v->update_keywords = pop3ext_recent_update_keywords;
	v->update_pop3_uidl = pop3ext_recent_update_pop3_uidl;
	v->expunge = pop3ext_recent_expunge;
	MODULE_CONTEXT_SET_SELF(mail, pop3ext_recent_mail_module, mmail);
}

/*
 * Hooks
 */

static enum pop3ext_pop3_hook_result
refuse(struct pop3ext_pop3_command *cmd,
       struct pop3ext_retention_client *rclient,
       const char *policy, const char *text)
{
	uint32_t msgnum;
	struct mail *mail;

	if (rclient->puser->policy.audit &&
	    parse_msgnum(cmd->client, cmd->args, &msgnum) &&
	    cmd->client->trans != NULL) {
		mail = client_mail(cmd->client, msgnum);
		pop3ext_audit_mail(rclient->puser, "pop3ext_refusal", mail,
				   policy, "refused");
		mail_free(&mail);
	} else {
		pop3ext_audit_command(rclient->puser, "pop3ext_refusal",
				      cmd->name, policy, "refused");
	}
	client_send_line(cmd->client, "%s", text);
	cmd->ret = 0;
	return POP3EXT_POP3_HOOK_ANSWERED;
}

static enum pop3ext_pop3_hook_result
pop3ext_retention_pre_hook(struct pop3ext_pop3_command *cmd,
			   void *context ATTR_UNUSED)
{
	struct pop3ext_retention_client *rclient =
		POP3EXT_RETENTION_CONTEXT(cmd->client);
	const struct pop3ext_policy *policy;
	uint32_t msgnum;

	if (rclient == NULL || rclient->puser == NULL)
		return POP3EXT_POP3_HOOK_CONTINUE;
	if (rclient->puser->policy_error != NULL)
		return pop3ext_pop3_refuse_fail_closed(cmd);

	policy = &rclient->puser->policy;
	if (strcmp(cmd->name, "DELE") == 0 &&
	    parse_msgnum(cmd->client, cmd->args, &msgnum)) {
		/* (a DELE of no message is Dovecot's bad command) */
		if (policy->view == POP3EXT_VIEW_RECENT) {
			return refuse(cmd, rclient, "pop3ext_view=recent",
				"-ERR [SYS/PERM] This is a read-only recent: "
				"session; messages are not deleted.");
		}
		if (policy->on_dele == POP3EXT_ON_DELE_REFUSE) {
			return refuse(cmd, rclient, "pop3ext_on_dele=refuse",
				"-ERR [SYS/PERM] Messages of this account stay "
				"on the server: DELE is not allowed.");
		}
	}
	return POP3EXT_POP3_HOOK_CONTINUE;
}

/* QUIT's handler: it runs only once every pre-hook has let QUIT through,
   so the UPDATE-state work never happens for a QUIT that is refused. */
static int pop3ext_retention_cmd_quit(struct client *client, const char *args,
				      void *context ATTR_UNUSED)
{
	struct pop3ext_retention_client *rclient =
		POP3EXT_RETENTION_CONTEXT(client);
	int ret;

	if (rclient != NULL && rclient->puser != NULL &&
	    rclient->puser->policy_error == NULL &&
	    pop3ext_retention_quit(rclient))
		return 1;
	/* Dovecot's QUIT commits all of it in one transaction */
	ret = client_command_execute(client, "QUIT", args);
	pop3ext_pop3_crash_point("quit-commit-after");
	return ret;
}

static void
pop3ext_retention_post_hook(const struct pop3ext_pop3_command *cmd,
			    void *context ATTR_UNUSED)
{
	struct pop3ext_retention_client *rclient =
		POP3EXT_RETENTION_CONTEXT(cmd->client);
	struct client *client = cmd->client;
	uint32_t msgnum;

	if (rclient == NULL || rclient->puser == NULL || cmd->answered_by_hook)
		return;
	if (rclient->puser->policy_error == NULL &&
	    rclient->puser->policy.view == POP3EXT_VIEW_RECENT &&
	    strcmp(cmd->name, "RETR") == 0 &&
	    parse_msgnum(client, cmd->args, &msgnum) &&
	    client->seen_bitmask != NULL &&
	    BIT_IS_SET(client->seen_bitmask, msgnum)) {
		/* read-only: a dropped connection would otherwise still
		   flush the \Seen that RETR set when it began */
		BIT_CLEAR(client->seen_bitmask, msgnum);
		client->seen_change_count--;
	}
}

/* A message counts as retrieved only once RETR (or a TOP that reached the
   end) has sent all of it: not for -ERR, a read error or a disconnection
   in the middle. */
static void
pop3ext_retention_done_hook(const struct pop3ext_pop3_command *cmd,
			    void *context ATTR_UNUSED)
{
	struct pop3ext_retention_client *rclient =
		POP3EXT_RETENTION_CONTEXT(cmd->client);
	struct client *client = cmd->client;
	struct mail *mail;
	uint32_t msgnum;

	if (!cmd->message_sent || rclient == NULL || rclient->puser == NULL ||
	    rclient->puser->policy_error != NULL ||
	    !parse_msgnum(client, cmd->args, &msgnum))
		return;

	if (rclient->retrieved == NULL) {
		/* the message count is fixed once pop3 has read the mailbox */
		rclient->retrieved = p_new(client->pool, unsigned char,
					   MSGS_BITMASK_SIZE(client));
	}
	BIT_SET(rclient->retrieved, msgnum);
	if (rclient->puser->policy.audit && client->trans != NULL) {
		mail = client_mail(client, msgnum);
		pop3ext_audit_mail(rclient->puser, "pop3ext_retrieval", mail,
				   t_strdup_printf("pop3ext_on_retr=%s",
					pop3ext_policy_value(&rclient->puser->policy,
							     POP3EXT_SET_ON_RETR)),
				   "retrieved");
		mail_free(&mail);
	}
}

static void pop3ext_retention_capa(struct client *client,
				   struct pop3ext_pop3_capa *capa,
				   void *context ATTR_UNUSED)
{
	struct pop3ext_retention_client *rclient =
		POP3EXT_RETENTION_CONTEXT(client);
	const struct pop3ext_policy *policy;

	if (rclient == NULL || rclient->puser == NULL)
		return;
	if (rclient->puser->policy_error != NULL) {
		/* nothing is expunged while the policy is unknown */
		pop3ext_pop3_capa_add(capa, "EXPIRE NEVER");
		return;
	}
	policy = &rclient->puser->policy;
	if (policy->view == POP3EXT_VIEW_RECENT) {
		/* read-only: it hides, expunges and records nothing */
		pop3ext_pop3_capa_add(capa, "EXPIRE NEVER");
	} else {
		pop3ext_pop3_capa_add(capa, t_strconcat("EXPIRE ",
			pop3ext_policy_expire_capability(policy), NULL));
	}
	if (policy->login_delay > 0) {
		pop3ext_pop3_capa_add(capa, t_strdup_printf("LOGIN-DELAY %u",
			policy->login_delay));
	}
}

void pop3ext_retention_init(void)
{
	pop3ext_pop3_session_hooks_register(&pop3ext_retention_session, NULL);
	pop3ext_pop3_hook_register(pop3ext_retention_pre_hook,
				   pop3ext_retention_post_hook, NULL);
	pop3ext_pop3_done_hook_register(pop3ext_retention_done_hook, NULL);
	pop3ext_pop3_command_register("QUIT", pop3ext_retention_cmd_quit, NULL);
	pop3ext_pop3_capa_register(pop3ext_retention_capa, NULL);
}

void pop3ext_retention_deinit(void)
{
	pop3ext_pop3_capa_unregister(pop3ext_retention_capa, NULL);
	pop3ext_pop3_command_unregister("QUIT");
	pop3ext_pop3_done_hook_unregister(pop3ext_retention_done_hook, NULL);
	pop3ext_pop3_hook_unregister(pop3ext_retention_pre_hook,
				     pop3ext_retention_post_hook, NULL);
	pop3ext_pop3_session_hooks_unregister(&pop3ext_retention_session, NULL);
}
