/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* Enforcement at the storage layer, so that no protocol bypasses it:

   - every expunge (POP3 QUIT, IMAP EXPUNGE and MOVE, doveadm expunge,
     autoexpunge, the sweep) passes pop3ext_expunge_gate() (from the mail's
     expunge vfunc; for the POP3 session's own mailbox, from pop3ext_pop3
     at QUIT, which spares the vfunc on every mail a session reads): under
     pop3ext_legal_hold, or for a message younger than pop3ext_min_age, the
     message is kept and marked $POP3ExpungePending (hidden from POP3;
     still visible to IMAP, which is told no EXPUNGE for it), and the held
     expunge is logged in the user's held.log once the transaction commits,
     for the sweep to complete when allowed (autoexpunge, which comes
     back by itself, just leaves held messages alone). With a malformed
     policy no expunge happens at all;
   - the state keywords ($POP3Hidden, $POP3ExpungePending,
     $POP3Retrieved) are pop3ext's alone: a client's STORE or APPEND that
     would set or clear one is refused (NO [NOPERM]), STORE FLAGS (...)
     keeps them, and a COPY does not carry them over (the copy is a new
     message without state); doveadm (the admin) may change them. An IMAP
     undelete (removing \Deleted) of a held expunge withdraws it;
   - the POP3 session's listing (the search that pop3 runs with its POP3
     sort order over all messages) leaves out hidden and pending messages
     and mail saved before pop3ext_visible_since (for first-login: the
     messages INBOX held at the user's first POP3 login, by UID); a
     recent: view lists the recent window, hidden or not. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "guid.h"
#include "mail-index.h"
#include "seq-range-array.h"
#include "mail-search-build.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "pop3ext-decide.h"
#include "pop3ext-state.h"
#include "pop3ext-plugin.h"

#define POP3EXT_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3ext_storage_module)
#define POP3EXT_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3ext_storage_module)
#define POP3EXT_MAIL_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, pop3ext_mail_module)

struct pop3ext_mailbox {
	union mailbox_module_context module_ctx;
	/* whose policy applies to the mailbox's mail: its owner's, whoever
	   opened it; NULL when that cannot be known (owner_error says why),
	   and then nothing is expunged */
	struct pop3ext_user *owner;
	const char *owner_error;
	/* POP3 session: listing limits, computed when opened */
	time_t list_since;
	/* pop3ext_visible_since = first-login */
	struct pop3ext_first_login first_login;
	bool first_login_known:1;
	/* a state error: list nothing (better than listing what should
	   not be) */
	bool list_nothing:1;
};

struct pop3ext_mail {
	union mail_module_context module_ctx;
	/* the expunge gate is on (else only the keyword guard) */
	bool gate:1;
};

struct pop3ext_transaction {
	union mailbox_transaction_module_context module_ctx;
	/* created when needed (most transactions hold nothing) */
	pool_t pool;
	/* held expunges, logged after a successful commit */
	ARRAY_TYPE(pop3ext_held) held;
	/* Dovecot's autoexpunge (mail-autoexpunge.c): its expunges that the
	   policy held and allowed */
	unsigned int autoexpunge_held, autoexpunge_allowed;
	bool autoexpunge:1;
	/* a client tried to change a state keyword: the commit fails */
	const char *refused_keyword;
};

static MODULE_CONTEXT_DEFINE_INIT(pop3ext_storage_module,
				  &mail_storage_module_register);
static MODULE_CONTEXT_DEFINE_INIT(pop3ext_mail_module,
				  &mail_module_register);

/* the reason Dovecot's autoexpunge gives its transactions */
#define AUTOEXPUNGE_TRANSACTION_REASON "autoexpunge"

struct mail_keywords *pop3ext_keywords(struct mailbox *box, const char *kw)
{
	const char *names[] = { kw, NULL };

	return mailbox_keywords_create_valid(box, names);
}

static bool mail_has_keyword(struct mail *mail, const char *kw)
{
	const char *const *kws = mail_get_keywords(mail);

	return str_array_find(kws, kw);
}

static pool_t pop3ext_transaction_pool(struct pop3ext_transaction *pt)
{
	if (pt->pool == NULL) {
		pt->pool = pool_alloconly_create("pop3ext transaction", 512);
		p_array_init(&pt->held, pt->pool, 4);
	}
	return pt->pool;
}

static void pop3ext_transaction_free(struct pop3ext_transaction *pt)
{
	pool_unref(&pt->pool);
	i_free(pt);
}

/*
 * The state keywords: pop3ext's alone
 */

static const char *const pop3ext_state_keywords[] = {
	POP3EXT_KEYWORD_HIDDEN,
	POP3EXT_KEYWORD_PENDING,
	POP3EXT_KEYWORD_RETRIEVED,
};

static bool keyword_is_state(const char *name)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(pop3ext_state_keywords); i++) {
		if (strcasecmp(name, pop3ext_state_keywords[i]) == 0)
			return TRUE;
	}
	return FALSE;
}

/* May this user's process change the state keywords? pop3ext itself, and
   doveadm (the admin: flags, dsync). */
static bool state_keywords_writable(struct mail_user *user)
{
	struct pop3ext_user *puser = pop3ext_user_get(user);

	return puser->own_keyword_updates > 0 ||
		strcmp(user->service, "doveadm") == 0;
}

static void
pop3ext_update_own_keyword(struct mail *mail, enum modify_type type,
			   const char *name)
{
	struct pop3ext_user *puser =
		pop3ext_user_get(mail->box->storage->user);
	struct mail_keywords *kw;

	kw = pop3ext_keywords(mail->box, name);
	puser->own_keyword_updates++;
	mail_update_keywords(mail, type, kw);
	puser->own_keyword_updates--;
	mailbox_keywords_unref(&kw);
}

/* The first state keyword in kw that the change would set (type ADD or
   REPLACE) or clear (REMOVE) on mail (NULL: none; mail NULL: any of
   them). */
static const char *
keywords_find_state_change(struct mailbox *box, const struct mail_keywords *kw,
			   enum modify_type type, struct mail *mail)
{
	const ARRAY_TYPE(keywords) *names;
	const char *name;
	unsigned int i;

	if (kw == NULL)
		return NULL;
	names = mail_index_get_keywords(box->index);
	for (i = 0; i < kw->count; i++) {
		name = array_idx_elem(names, kw->idx[i]);
		if (keyword_is_state(name) &&
		    (mail == NULL ||
		     mail_has_keyword(mail, name) == (type == MODIFY_REMOVE)))
			return name;
	}
	return NULL;
}

/* kw without the state keywords, plus (keep_from != NULL) those that
   keep_from has. */
static struct mail_keywords *
keywords_replace_state(struct mailbox *box, const struct mail_keywords *kw,
		       struct mail *keep_from)
{
	const ARRAY_TYPE(keywords) *names;
	ARRAY_TYPE(keyword_indexes) idx;
	const char *const *kws;
	unsigned int i, n;

	names = mail_index_get_keywords(box->index);
	t_array_init(&idx, 8);
	for (i = 0; kw != NULL && i < kw->count; i++) {
		if (!keyword_is_state(array_idx_elem(names, kw->idx[i])))
			array_push_back(&idx, &kw->idx[i]);
	}
	if (keep_from != NULL) {
		for (kws = mail_get_keywords(keep_from); *kws != NULL; kws++) {
			if (keyword_is_state(*kws) &&
			    mail_index_keyword_lookup(box->index, *kws, &n))
				array_push_back(&idx, &n);
		}
	}
	return mailbox_keywords_create_from_indexes(box, &idx);
}

static void
pop3ext_mail_update_keywords(struct mail *_mail, enum modify_type type,
			     struct mail_keywords *keywords)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3ext_mail *pmail = POP3EXT_MAIL_CONTEXT_REQUIRE(mail);
	struct pop3ext_transaction *pt =
		POP3EXT_CONTEXT_REQUIRE(_mail->transaction);
	struct mail_keywords *kw;
	const char *name;

	if (state_keywords_writable(_mail->box->storage->user)) {
		pmail->module_ctx.super.update_keywords(_mail, type, keywords);
		return;
	}
	name = keywords_find_state_change(_mail->box, keywords, type, _mail);
	if (name != NULL) {
		/* the commit fails, and the client gets a NO */
		pt->refused_keyword = p_strdup(pop3ext_transaction_pool(pt),
					       name);
		return;
	}
	if (type != MODIFY_REPLACE) {
		pmail->module_ctx.super.update_keywords(_mail, type, keywords);
		return;
	}
	/* STORE FLAGS (...): the state keywords stay as they are */
	T_BEGIN {
		kw = keywords_replace_state(_mail->box, keywords, _mail);
		pmail->module_ctx.super.update_keywords(_mail, type, kw);
		mailbox_keywords_unref(&kw);
	} T_END;
}

/* An IMAP undelete (removing \Deleted) of a held expunge withdraws it:
   the pending keyword goes, and the sweep leaves the message alone. */
static void
pop3ext_mail_update_flags(struct mail *_mail, enum modify_type type,
			  enum mail_flags flags)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3ext_mail *pmail = POP3EXT_MAIL_CONTEXT_REQUIRE(mail);
	bool undelete;

	undelete = (type == MODIFY_REMOVE ? (flags & MAIL_DELETED) != 0 :
		    type == MODIFY_REPLACE && (flags & MAIL_DELETED) == 0) &&
		(mail_get_flags(_mail) & MAIL_DELETED) != 0;
	pmail->module_ctx.super.update_flags(_mail, type, flags);
	if (undelete && mail_has_keyword(_mail, POP3EXT_KEYWORD_PENDING)) {
		pop3ext_update_own_keyword(_mail, MODIFY_REMOVE,
					   POP3EXT_KEYWORD_PENDING);
	}
}

/*
 * The expunge gate
 */

/* The name of box as its owner sees it (for the owner's sweep). */
static const char *
pop3ext_owner_vname(struct pop3ext_user *owner, struct mailbox *box)
{
	struct mail_namespace *ns;

	if (mailbox_get_namespace(box)->owner == box->storage->user)
		return mailbox_get_vname(box);
	/* a shared mailbox: its storage name in the owner's namespace */
	ns = mail_namespace_find_inbox(owner->user->namespaces);
	return mailbox_list_get_vname(ns->list, box->name);
}

static void
pop3ext_hold(struct pop3ext_user *puser, struct mail *mail,
	     struct pop3ext_transaction *pt, time_t save_date,
	     enum pop3ext_expunge_decision decision)
{
	struct mailbox_status status;
	struct mailbox_metadata metadata;
	struct pop3ext_held *h;
	const char *guid;

	if (mail_has_keyword(mail, POP3EXT_KEYWORD_PENDING)) {
		/* held before and logged then */
		return;
	}
	pop3ext_update_own_keyword(mail, MODIFY_ADD, POP3EXT_KEYWORD_PENDING);

	if (puser->state == NULL) {
		e_error(puser->event, "Held expunge of %s UID %u cannot be "
			"logged for the sweep: no home directory",
			mailbox_get_vname(mail->box), mail->uid);
		return;
	}
	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0 ||
	    *guid == '\0') {
		e_error(puser->event, "Held expunge of %s UID %u cannot be "
			"logged for the sweep: no GUID: %s",
			mailbox_get_vname(mail->box), mail->uid,
			mailbox_get_last_internal_error(mail->box, NULL));
		return;
	}
	if (mailbox_get_metadata(mail->box, MAILBOX_METADATA_GUID,
				 &metadata) < 0) {
		e_error(puser->event, "Held expunge of %s UID %u cannot be "
			"logged for the sweep: no mailbox GUID: %s",
			mailbox_get_vname(mail->box), mail->uid,
			mailbox_get_last_internal_error(mail->box, NULL));
		return;
	}
	(void)pop3ext_transaction_pool(pt);
	h = array_append_space(&pt->held);
	h->mailbox_guid = p_strdup(pt->pool, guid_128_to_string(metadata.guid));
	h->mailbox = p_strdup(pt->pool, pop3ext_owner_vname(puser, mail->box));
	mailbox_get_open_status(mail->box, STATUS_UIDVALIDITY, &status);
	h->uidvalidity = status.uidvalidity;
	h->uid = mail->uid;
	h->guid = p_strdup(pt->pool, guid);
	h->save_date = save_date;
	h->held_time = ioloop_time;
	h->reason = decision == POP3EXT_EXPUNGE_HOLD_LEGAL ?
		"legal_hold" : "min_age";
}

bool pop3ext_expunge_gate(struct mail *mail)
{
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(mail->box);
	/* the owner's policy; the session's user says who does it */
	struct pop3ext_user *puser = mbox->owner;
	struct pop3ext_user *suser = pop3ext_user_get(mail->box->storage->user);
	struct pop3ext_transaction *pt =
		POP3EXT_CONTEXT_REQUIRE(mail->transaction);
	enum pop3ext_expunge_decision decision;
	bool autoexpunged = ((struct mail_private *)mail)->autoexpunged;
	time_t save_date;

	if (puser == NULL) {
		if (autoexpunged)
			pt->autoexpunge_held++;
		e_error(suser->event, "Expunge of %s UID %u refused: %s",
			mailbox_get_vname(mail->box), mail->uid,
			mbox->owner_error);
		return FALSE;
	}

	if (puser->policy_error != NULL) {
		if (autoexpunged)
			pt->autoexpunge_held++;
		pop3ext_user_log_policy_error(puser);
		pop3ext_audit_mail(puser, "pop3ext_expunge_held", mail,
				   "policy_error", "refused:policy_error");
		return FALSE;
	}
	if (!puser->policy.legal_hold && puser->policy.min_age == 0) {
		if (autoexpunged)
			pt->autoexpunge_allowed++;
		pop3ext_audit_mail(puser, suser->sweeping ?
				   "pop3ext_sweep_expunge" : "pop3ext_deletion",
				   mail, "none", "allow");
		return TRUE;
	}
	if (mail_get_save_date(mail, &save_date) < 0) {
		/* age unknown: as young as can be */
		e_warning(puser->event, "Can't get save date of %s UID %u "
			  "(treating it as new): %s",
			  mailbox_get_vname(mail->box), mail->uid,
			  mailbox_get_last_internal_error(mail->box, NULL));
		save_date = ioloop_time;
	}
	decision = pop3ext_decide_expunge(&puser->policy, save_date,
					  ioloop_time);
	if (decision == POP3EXT_EXPUNGE_ALLOW) {
		if (autoexpunged)
			pt->autoexpunge_allowed++;
		pop3ext_audit_mail(puser, suser->sweeping ?
				   "pop3ext_sweep_expunge" : "pop3ext_deletion",
				   mail, "min_age", "allow");
		return TRUE;
	}
	if (autoexpunged) {
		/* Autoexpunge comes back by itself at the end of every
		   session: nothing to mark or log for the sweep. Only its
		   autoexpunge_max_mails part gets here (its age part sees held
		   messages as new, see pop3ext_mail_get_save_date()). */
		pt->autoexpunge_held++;
	} else {
		pop3ext_hold(puser, mail, pt, save_date, decision);
	}
	pop3ext_audit_mail(puser, "pop3ext_expunge_held", mail,
			   decision == POP3EXT_EXPUNGE_HOLD_LEGAL ?
			   "legal_hold" : "min_age",
			   pop3ext_expunge_decision_name(decision));
	return FALSE;
}

/* Dovecot's autoexpunge counts every message it expunges as gone and
   goes on in batches until a batch expunged nothing or met a message that
   is young enough (mail-autoexpunge.c): a held message it counted would
   make it loop over the same messages for ever. So within its transaction
   a message the policy holds looks new: autoexpunge stops there, as it
   does at the first young message, and the message is left alone. */
static int pop3ext_mail_get_save_date(struct mail *_mail, time_t *date_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3ext_mail *pmail = POP3EXT_MAIL_CONTEXT_REQUIRE(mail);
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(_mail->box);
	struct pop3ext_user *puser = mbox->owner;

	if (pmail->module_ctx.super.get_save_date(_mail, date_r) < 0)
		return -1;
	if (puser == NULL || puser->policy_error != NULL ||
	    pop3ext_decide_expunge(&puser->policy, *date_r, ioloop_time) !=
	    POP3EXT_EXPUNGE_ALLOW)
		*date_r = ioloop_time;
	return 0;
}

static void pop3ext_mail_expunge(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3ext_mail *pmail = POP3EXT_MAIL_CONTEXT_REQUIRE(mail);

	if (!pmail->gate || pop3ext_expunge_gate(_mail))
		pmail->module_ctx.super.expunge(_mail);
}

bool pop3ext_expunge_gate_needed(struct pop3ext_user *puser)
{
	return puser->policy_error != NULL || puser->policy.legal_hold ||
		puser->policy.min_age > 0 || puser->policy.audit;
}

void pop3ext_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct pop3ext_user *puser =
		pop3ext_user_get(_mail->box->storage->user);
	struct mail_vfuncs *v = mail->vlast;
	struct pop3ext_transaction *pt;
	struct pop3ext_mailbox *mbox;
	struct pop3ext_mail *pmail;

	/* A POP3 session changes no keyword but pop3ext's own, and
	   expunges only at QUIT, where pop3ext_pop3 passes each message
	   through the gate itself: its mails (every message it reads) are
	   left alone. */
	if (puser == NULL ||
	    (_mail->box->flags & MAILBOX_FLAG_POP3_SESSION) != 0)
		return;
	pmail = p_new(mail->pool, struct pop3ext_mail, 1);
	pmail->module_ctx.super = *v;
	mail->vlast = &pmail->module_ctx.super;
	v->update_keywords = pop3ext_mail_update_keywords;
	v->update_flags = pop3ext_mail_update_flags;
	v->expunge = pop3ext_mail_expunge;
	/* with nothing to hold and nothing to audit the gate has no work */
	mbox = POP3EXT_CONTEXT_REQUIRE(_mail->box);
	pmail->gate = mbox->owner == NULL ||
		pop3ext_expunge_gate_needed(mbox->owner);
	pt = POP3EXT_CONTEXT_REQUIRE(_mail->transaction);
	if (pt->autoexpunge && pmail->gate)
		v->get_save_date = pop3ext_mail_get_save_date;
	MODULE_CONTEXT_SET(mail, pop3ext_mail_module, pmail);
}

/*
 * Transactions: held expunges are logged once committed
 */

static struct mailbox_transaction_context *
pop3ext_transaction_begin(struct mailbox *box,
			  enum mailbox_transaction_flags flags,
			  const char *reason)
{
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(box);
	struct mailbox_transaction_context *t;
	struct pop3ext_transaction *pt;

	t = mbox->module_ctx.super.transaction_begin(box, flags, reason);
	pt = i_new(struct pop3ext_transaction, 1);
	pt->autoexpunge = strcmp(reason, AUTOEXPUNGE_TRANSACTION_REASON) == 0;
	MODULE_CONTEXT_SET(t, pop3ext_storage_module, pt);
	return t;
}

static int
pop3ext_transaction_commit(struct mailbox_transaction_context *t,
			   struct mail_transaction_commit_changes *changes_r)
{
	struct mailbox *box = t->box;
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(box);
	struct pop3ext_transaction *pt = POP3EXT_CONTEXT_REQUIRE(t);
	/* held expunges go to the owner's log (pop3ext_hold()) */
	struct pop3ext_user *puser = mbox->owner;
	const char *error;
	int ret;

	if (pt->refused_keyword != NULL) {
		mail_storage_set_error(box->storage, MAIL_ERROR_PERM,
			t_strdup_printf("%s is set and cleared by pop3ext "
				"only (it records the message's retention "
				"state)", pt->refused_keyword));
		mbox->module_ctx.super.transaction_rollback(t);
		pop3ext_transaction_free(pt);
		return -1;
	}
	if (pt->autoexpunge_held > 0 && pt->autoexpunge_allowed == 0) {
		/* autoexpunge_max_mails asked only for held expunges: they
		   would be asked for again and again (see
		   pop3ext_mail_get_save_date()); end its loop with an
		   error that says why */
		mail_storage_set_error(box->storage, MAIL_ERROR_LIMIT,
			t_strdup_printf("pop3ext: %u message(s) over "
				"autoexpunge_max_mails kept: the policy "
				"holds them (pop3ext_legal_hold, "
				"pop3ext_min_age, or a policy that cannot "
				"be read)", pt->autoexpunge_held));
		mbox->module_ctx.super.transaction_rollback(t);
		pop3ext_transaction_free(pt);
		return -1;
	}
	if (pt->pool != NULL && array_count(&pt->held) > 0 &&
	    pop3ext_state_append_held(puser->state, &pt->held, &error) < 0) {
		/* the intent first: without its record no message becomes
		   pending, so nothing of this transaction is committed */
		e_error(puser->event, "Failed to record %u held expunge(s) "
			"for the sweep: %s", array_count(&pt->held), error);
		mail_storage_set_error(box->storage, MAIL_ERROR_TEMP,
			"pop3ext: can't record held expunges - nothing "
			"changed");
		mbox->module_ctx.super.transaction_rollback(t);
		pop3ext_transaction_free(pt);
		return -1;
	}
	ret = mbox->module_ctx.super.transaction_commit(t, changes_r);
	if (pt->pool != NULL && array_count(&pt->held) > 0 &&
	    pop3ext_state_reconcile_held(puser->state, &pt->held, ret == 0,
					 &error) < 0) {
		/* the intents stay: the sweep checks the pending keyword */
		e_error(puser->event, "Failed to reconcile %u held expunge(s) "
			"after the %s: %s", array_count(&pt->held),
			ret == 0 ? "commit" : "failed commit", error);
	}
	pop3ext_transaction_free(pt);
	return ret;
}

static void
pop3ext_transaction_rollback(struct mailbox_transaction_context *t)
{
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(t->box);
	struct pop3ext_transaction *pt = POP3EXT_CONTEXT_REQUIRE(t);

	mbox->module_ctx.super.transaction_rollback(t);
	pop3ext_transaction_free(pt);
}

/*
 * The POP3 listing
 */

static bool search_args_have_seqset(const struct mail_search_arg *arg)
{
	for (; arg != NULL; arg = arg->next) {
		if (arg->type == SEARCH_SEQSET || arg->type == SEARCH_UIDSET)
			return TRUE;
	}
	return FALSE;
}

static void build_not_keyword(struct mail_search_args *args, const char *kw)
{
	struct mail_search_arg *arg;

	arg = mail_search_build_add(args, SEARCH_KEYWORDS);
	arg->match_not = TRUE;
	arg->value.str = p_strdup(args->pool, kw);
}

static void build_saved_since(struct mail_search_args *args, time_t since)
{
	struct mail_search_arg *arg;

	arg = mail_search_build_add(args, SEARCH_SINCE);
	arg->value.date_type = MAIL_SEARCH_DATE_TYPE_SAVED;
	arg->value.search_flags = MAIL_SEARCH_ARG_FLAG_UTC_TIMES;
	arg->value.time = since;
}

/* Can a message of the mailbox carry the keyword? Not if the index has
   never known it, the case of every user who never had a message hidden:
   their listing is then searched exactly as without pop3ext. */
static bool mailbox_knows_keyword(struct mailbox *box, const char *kw)
{
	unsigned int idx;

	return box->index == NULL ||
		mail_index_keyword_lookup(box->index, kw, &idx);
}

static void build_uid_from(struct mail_search_args *args, uint32_t uid)
{
	struct mail_search_arg *arg;

	arg = mail_search_build_add(args, SEARCH_UIDSET);
	p_array_init(&arg->value.seqset, args->pool, 1);
	/* (uint32_t)-1 would mean "*", the highest UID in the mailbox */
	seq_range_array_add_range(&arg->value.seqset, uid, (uint32_t)-2);
}

/* pop3ext_visible_since = first-login: records the first login with the
   mailbox as it is now (synced by pop3 before its listing). */
static void
pop3ext_first_login_limit(struct pop3ext_user *puser,
			  struct pop3ext_mailbox *mbox, struct mailbox *box,
			  struct mail_search_args *args)
{
	struct mailbox_status status;
	const char *error;

	mailbox_get_open_status(box, STATUS_UIDVALIDITY | STATUS_UIDNEXT,
				&status);
	if (!mbox->first_login_known) {
		mbox->first_login.time = ioloop_time;
		mbox->first_login.uidvalidity = status.uidvalidity;
		mbox->first_login.uidnext = status.uidnext;
		if (pop3ext_state_write_first_login(puser->state,
						    &mbox->first_login,
						    &error) < 0) {
			e_error(puser->event, "pop3ext_visible_since=first-login:"
				" %s - listing nothing", error);
			mbox->list_nothing = TRUE;
			return;
		}
		mbox->first_login_known = TRUE;
	}
	if (mbox->first_login.uidvalidity == status.uidvalidity)
		build_uid_from(args, mbox->first_login.uidnext);
	else {
		/* the UIDs were renumbered since: by time, then */
		build_saved_since(args, mbox->first_login.time);
	}
}

/* The listing search: pop3's own conditions AND ours; NULL if ours are
   all no-ops. */
static struct mail_search_args *
pop3ext_listing_args(struct pop3ext_user *puser, struct pop3ext_mailbox *mbox,
		     struct mailbox *box, const struct mail_search_args *orig)
{
	struct mail_search_args *args;
	struct mail_search_arg *last;

	args = mail_search_build_init();
	if (puser->policy.view == POP3EXT_VIEW_RECENT) {
		/* hidden or not: a second device's view of the window */
		build_saved_since(args, mbox->list_since);
	} else {
		if (mailbox_knows_keyword(box, POP3EXT_KEYWORD_HIDDEN))
			build_not_keyword(args, POP3EXT_KEYWORD_HIDDEN);
		if (mailbox_knows_keyword(box, POP3EXT_KEYWORD_PENDING))
			build_not_keyword(args, POP3EXT_KEYWORD_PENDING);
		if (mbox->list_since != 0)
			build_saved_since(args, mbox->list_since);
		if (puser->policy.visible_since_first_login)
			pop3ext_first_login_limit(puser, mbox, box, args);
	}
	if (mbox->list_nothing) {
		struct mail_search_arg *none =
			mail_search_build_add(args, SEARCH_ALL);
		none->match_not = TRUE;
	}
	if (args->args == NULL) {
		mail_search_args_unref(&args);
		return NULL;
	}
	for (last = args->args; last->next != NULL; last = last->next) ;
	last->next = mail_search_arg_dup(args->pool, orig->args);
	mail_search_args_init(args, box, TRUE, NULL);
	return args;
}

static struct mail_search_context *
pop3ext_search_init(struct mailbox_transaction_context *t,
		    struct mail_search_args *args,
		    const enum mail_sort_type *sort_program,
		    enum mail_fetch_field wanted_fields,
		    struct mailbox_header_lookup_ctx *wanted_headers)
{
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(t->box);
	struct pop3ext_user *puser = pop3ext_user_get(t->box->storage->user);
	struct mail_search_args *largs;

	/* Only pop3's listing of the whole mailbox is filtered: its later
	   searches name the listed messages by sequence. */
	if ((t->box->flags & MAILBOX_FLAG_POP3_SESSION) == 0 ||
	    puser->policy_error != NULL || args->args == NULL ||
	    search_args_have_seqset(args->args)) {
		return mbox->module_ctx.super.search_init(t, args,
			sort_program, wanted_fields, wanted_headers);
	}
	/* mailbox_search_init() took a reference to args, which
	   mailbox_search_deinit() drops from the context's args: those are
	   now ours, so give that reference back here. */
	largs = pop3ext_listing_args(puser, mbox, t->box, args);
	if (largs == NULL) {
		return mbox->module_ctx.super.search_init(t, args,
			sort_program, wanted_fields, wanted_headers);
	}
	/* (mail_search_args_init() in pop3ext_listing_args() simplified
	   it) */
	mail_search_args_unref(&args);
	return mbox->module_ctx.super.search_init(t, largs, sort_program,
						  wanted_fields,
						  wanted_headers);
}

static int
pop3ext_save_begin(struct mail_save_context *ctx, struct istream *input)
{
	struct mailbox *box = ctx->transaction->box;
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(box);
	const char *name;

	if (mbox->module_ctx.super.save_begin(ctx, input) < 0)
		return -1;
	/* a copy through save had its keywords sorted out in
	   pop3ext_copy(). (Refused only once begun: mailbox_save_begin()
	   then cancels it, which every storage is ready for.) */
	if (!ctx->copying_or_moving &&
	    !state_keywords_writable(box->storage->user) &&
	    (name = keywords_find_state_change(box, ctx->data.keywords,
						MODIFY_ADD, NULL)) != NULL) {
		mail_storage_set_error(box->storage, MAIL_ERROR_PERM,
			t_strdup_printf("%s is set by pop3ext only (it "
				"records a message's retention state)", name));
		return -1;
	}
	return 0;
}

static int pop3ext_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox *box = ctx->transaction->box;
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(box);
	struct mail_keywords *kw;

	/* the state belongs to the message copied from: the copy is a new
	   message without it */
	if (!state_keywords_writable(box->storage->user) &&
	    keywords_find_state_change(box, ctx->data.keywords, MODIFY_ADD,
				       NULL) != NULL) T_BEGIN {
		kw = keywords_replace_state(box, ctx->data.keywords, NULL);
		mailbox_keywords_unref(&ctx->data.keywords);
		ctx->data.keywords = kw;
	} T_END;
	return mbox->module_ctx.super.copy(ctx, mail);
}

static int pop3ext_mailbox_open(struct mailbox *box)
{
	struct pop3ext_mailbox *mbox = POP3EXT_CONTEXT_REQUIRE(box);
	struct pop3ext_user *puser = pop3ext_user_get(box->storage->user);
	const char *error;
	int ret;

	if ((box->flags & MAILBOX_FLAG_POP3_SESSION) != 0 &&
	    !puser->pop3_frontend) {
		/* pop3's message list must match the filtered listing, and
		   its QUIT must pass the expunge gate (or, with a malformed
		   policy, refuse): pop3ext_pop3 does both, so without it
		   there is no POP3 session, whatever the policy's state */
		mail_storage_set_critical(box->storage,
			"pop3ext: the POP3 session needs pop3ext_pop3 "
			"(protocol pop3 { mail_plugins = "
			"$mail_plugins pop3ext pop3ext_pop3 })");
		return -1;
	}
	if ((box->flags & MAILBOX_FLAG_POP3_SESSION) != 0 &&
	    puser->policy_error == NULL) {
		if (puser->policy.view == POP3EXT_VIEW_RECENT) {
			mbox->list_since = ioloop_time <=
				(time_t)puser->policy.recent_window ? 0 :
				ioloop_time - puser->policy.recent_window;
		} else if (puser->policy.visible_since_first_login) {
			if (puser->state == NULL) {
				mail_storage_set_critical(box->storage,
					"pop3ext: pop3ext_visible_since="
					"first-login needs a home directory "
					"to record the first login");
				return -1;
			}
			ret = pop3ext_state_read_first_login(puser->state,
				&mbox->first_login, &error);
			if (ret < 0) {
				mail_storage_set_critical(box->storage,
					"pop3ext: pop3ext_visible_since: %s",
					error);
				return -1;
			}
			mbox->first_login_known = ret > 0;
		} else {
			mbox->list_since = puser->policy.visible_since;
		}
	}
	return mbox->module_ctx.super.open(box);
}

static void
pop3ext_mailbox_find_owner(struct pop3ext_mailbox *mbox, struct mailbox *box)
{
	struct mail_namespace *ns = mailbox_get_namespace(box);

	if (ns->owner == NULL) {
		/* a public namespace (or the root of the shared ones) */
		mbox->owner_error = "the mailbox has no owner whose policy "
			"pop3ext could apply (public namespace)";
	} else if ((mbox->owner = pop3ext_user_get(ns->owner)) == NULL) {
		mbox->owner_error = p_strdup_printf(box->pool,
			"pop3ext is not in the mail_plugins of %s, the owner "
			"of the mailbox: their policy is unknown",
			ns->owner->username);
	}
}

void pop3ext_mailbox_allocated(struct mailbox *box)
{
	struct mailbox_vfuncs *v = box->vlast;
	struct pop3ext_mailbox *mbox;

	if (pop3ext_user_get(box->storage->user) == NULL)
		return;
	mbox = p_new(box->pool, struct pop3ext_mailbox, 1);
	pop3ext_mailbox_find_owner(mbox, box);
	mbox->module_ctx.super = *v;
	box->vlast = &mbox->module_ctx.super;

	v->open = pop3ext_mailbox_open;
	v->transaction_begin = pop3ext_transaction_begin;
	v->transaction_commit = pop3ext_transaction_commit;
	v->transaction_rollback = pop3ext_transaction_rollback;
	v->search_init = pop3ext_search_init;
	v->save_begin = pop3ext_save_begin;
	v->copy = pop3ext_copy;
	MODULE_CONTEXT_SET(box, pop3ext_storage_module, mbox);
}
