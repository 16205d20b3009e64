/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "guid.h"
#include "ioloop.h"
#include "seq-range-array.h"
#include "file-lock.h"
#include "mail-namespace.h"
#include "mail-search-build.h"
#include "mail-storage.h"
#include "pop3ext-decide.h"
#include "pop3ext-state.h"
#include "pop3ext-sweep.h"
#include "pop3ext-plugin.h"

struct pop3ext_sweep {
	struct mail_user *user;
	struct pop3ext_user *puser;
	bool dry_run;
	/* what was committed (in a dry run: what would have been) */
	struct pop3ext_sweep_result *result;
	pool_t pool;
	/* the first error, for the report */
	const char *error;
	/* held.log, read once */
	ARRAY_TYPE(pop3ext_held) held;
};

/* One mailbox's part of the sweep: an error fails only this mailbox (its
   expunges are rolled back, its records kept); its counts join the
   result once committed. */
struct sweep_box {
	struct pop3ext_sweep_result counts;
	bool failed;
};

enum sweep_find_result {
	SWEEP_FIND_FOUND,
	SWEEP_FIND_GONE,
	SWEEP_FIND_ERROR,
};

static void sweep_set_error(struct pop3ext_sweep *sweep, struct sweep_box *sbox,
			    const char *error)
{
	if (sbox != NULL)
		sbox->failed = TRUE;
	if (sweep->error == NULL)
		sweep->error = p_strdup(sweep->pool, error);
	else
		e_error(sweep->puser->event, "Sweep: %s", error);
}

static void sweep_set_box_error(struct pop3ext_sweep *sweep,
				struct sweep_box *sbox, struct mailbox *box,
				const char *what)
{
	sweep_set_error(sweep, sbox, t_strdup_printf("%s %s: %s", what,
		mailbox_get_vname(box),
		mailbox_get_last_internal_error(box, NULL)));
}

static void sweep_add_counts(struct pop3ext_sweep_result *dest,
			     const struct pop3ext_sweep_result *src)
{
	dest->messages += src->messages;
	dest->bytes += src->bytes;
	dest->retr_expired += src->retr_expired;
	dest->max_age += src->max_age;
	dest->held_completed += src->held_completed;
	dest->held += src->held;
}

/* Commits the sweep's expunges in box (a dry run or an error of this
   mailbox rolls them back). Returns TRUE if they were committed. */
static bool sweep_finish(struct pop3ext_sweep *sweep, struct sweep_box *sbox,
			 struct mailbox *box,
			 struct mailbox_transaction_context **t)
{
	if (sbox->failed || sweep->dry_run) {
		mailbox_transaction_rollback(t);
		if (!sbox->failed)
			sweep_add_counts(sweep->result, &sbox->counts);
		return FALSE;
	}
	if (mailbox_transaction_commit(t) < 0) {
		sweep_set_box_error(sweep, sbox, box, "Can't expunge in");
		return FALSE;
	}
	sweep_add_counts(sweep->result, &sbox->counts);
	if (mailbox_sync(box, MAILBOX_SYNC_FLAG_FULL_WRITE) < 0) {
		/* committed: done, but say so */
		sweep_set_box_error(sweep, NULL, box, "Can't sync");
	}
	return TRUE;
}

/* Finds the message a log entry names: by UID when UIDVALIDITY still
   holds, else (the index was rebuilt with new UIDs) by GUID. FOUND sets
   mail to it; GONE: no such message; ERROR: it could not be told. */
static enum sweep_find_result
sweep_find(struct mail *mail, uint32_t uidvalidity, uint32_t uid,
	   const char *guid)
{
	struct mailbox_status status;
	struct mail_search_args *args;
	struct mail_search_context *ctx;
	struct mail *found;
	const char *mail_guid;
	enum sweep_find_result ret = SWEEP_FIND_GONE;

	mailbox_get_open_status(mail->box, STATUS_UIDVALIDITY, &status);
	if (status.uidvalidity == uidvalidity) {
		if (!mail_set_uid(mail, uid))
			return SWEEP_FIND_GONE;
		if (mail_get_special(mail, MAIL_FETCH_GUID, &mail_guid) < 0) {
			return mail->expunged ? SWEEP_FIND_GONE :
				SWEEP_FIND_ERROR;
		}
		return strcmp(mail_guid, guid) == 0 ? SWEEP_FIND_FOUND :
			SWEEP_FIND_GONE;
	}

	args = mail_search_build_init();
	mail_search_build_add(args, SEARCH_GUID)->value.str =
		p_strdup(args->pool, guid);
	mail_search_args_init(args, mail->box, FALSE, NULL);
	ctx = mailbox_search_init(mail->transaction, args, NULL, 0, NULL);
	mail_search_args_unref(&args);
	if (mailbox_search_next(ctx, &found)) {
		mail_set_seq(mail, found->seq);
		ret = SWEEP_FIND_FOUND;
	}
	if (mailbox_search_deinit(&ctx) < 0)
		ret = SWEEP_FIND_ERROR;
	return ret;
}

/* Expunges (or counts) one message that is due. Returns TRUE if it is (or
   would be) expunged, FALSE if the policy holds it. */
static bool sweep_expunge(struct pop3ext_sweep *sweep, struct sweep_box *sbox,
			  struct mail *mail)
{
	enum pop3ext_expunge_decision decision;
	time_t save_date;
	uoff_t size;

	if (mail_get_save_date(mail, &save_date) < 0)
		save_date = ioloop_time;
	decision = pop3ext_decide_expunge(&sweep->puser->policy, save_date,
					  ioloop_time);
	if (!sweep->dry_run) {
		/* held ones become pending through the storage gate */
		mail_expunge(mail);
	}
	if (decision != POP3EXT_EXPUNGE_ALLOW) {
		sbox->counts.held++;
		return FALSE;
	}
	if (mail_get_physical_size(mail, &size) < 0)
		size = 0;
	sbox->counts.messages++;
	sbox->counts.bytes += size;
	return TRUE;
}

/* pop3ext_expire_after_retr: the retrieval records, read in chunks; those
   due are done with (consumed_r) once their expunges are committed. */
#define SWEEP_RETRIEVALS_CHUNK 128
static void
sweep_retrievals(struct pop3ext_sweep *sweep, struct sweep_box *sbox,
		 struct mail *mail, ARRAY_TYPE(seq_range) *seqs,
		 ARRAY_TYPE(pop3ext_retrieval) *consumed_r)
{
	ARRAY_TYPE(pop3ext_retrieval) entries;
	const struct pop3ext_retrieval *r;
	const char *error;
	int64_t after_id = 0;
	unsigned int count;

	if (sweep->puser->policy.expire_after_retr == POP3EXT_NEVER ||
	    sweep->puser->state == NULL)
		return;
	p_array_init(&entries, sweep->pool, SWEEP_RETRIEVALS_CHUNK);
	do {
		array_clear(&entries);
		if (pop3ext_state_read_retrievals(sweep->puser->state,
				sweep->pool, &after_id, SWEEP_RETRIEVALS_CHUNK,
				&entries, &error) < 0) {
			sweep_set_error(sweep, sbox, error);
			return;
		}
		count = array_count(&entries);
		array_foreach(&entries, r) {
			if (r->uid != 0) {
				if (!pop3ext_decide_retr_expired(
					&sweep->puser->policy, r->time,
					ioloop_time)) {
					/* not yet: kept (a record from a
					   clock in the future stops no
					   other) */
					continue;
				}
				switch (sweep_find(mail, r->uidvalidity,
						   r->uid, r->guid)) {
				case SWEEP_FIND_FOUND:
					if (seq_range_exists(seqs, mail->seq))
						break;
					seq_range_array_add(seqs, mail->seq);
					sbox->counts.retr_expired++;
					break;
				case SWEEP_FIND_GONE:
					break;
				case SWEEP_FIND_ERROR:
					/* keep the entry (and what follows) */
					sweep_set_box_error(sweep, sbox,
						mail->box, "Can't look up a "
						"retrieved message in");
					return;
				}
			}
			array_push_back(consumed_r, r);
		}
	} while (count == SWEEP_RETRIEVALS_CHUNK);
}

/* pop3ext_max_age: UIDs grow with save time, so INBOX is read from the
   oldest message up to the first one that is young enough. */
static void sweep_max_age(struct pop3ext_sweep *sweep, struct sweep_box *sbox,
			  struct mail *mail, ARRAY_TYPE(seq_range) *seqs)
{
	struct mailbox_status status;
	time_t save_date;
	uint32_t seq;

	if (sweep->puser->policy.max_age == POP3EXT_NEVER)
		return;
	mailbox_get_open_status(mail->box, STATUS_MESSAGES, &status);
	for (seq = 1; seq <= status.messages; seq++) {
		mail_set_seq(mail, seq);
		if (mail_get_save_date(mail, &save_date) < 0) {
			if (mail->expunged)
				continue;
			sweep_set_box_error(sweep, sbox, mail->box,
					    "Can't get save date in");
			return;
		}
		if (!pop3ext_decide_max_age_reached(&sweep->puser->policy,
						    save_date, ioloop_time)) {
			e_debug(sweep->puser->event, "max_age: UID %u saved "
				"%ld, now %ld: not yet", mail->uid,
				(long)save_date, (long)ioloop_time);
			break;
		}
		if (!seq_range_exists(seqs, seq)) {
			seq_range_array_add(seqs, seq);
			sbox->counts.max_age++;
		}
	}
}

/* Is the record h of the mailbox box (its GUID as text)? A record imported
   from an old held.log knows only the name. */
static bool held_is_of(const struct pop3ext_held *h, struct mailbox *box,
		       const char *box_guid)
{
	if (h->mailbox_guid[0] != '\0')
		return strcmp(h->mailbox_guid, box_guid) == 0;
	return strcmp(h->mailbox, mailbox_get_vname(box)) == 0;
}

static const char *sweep_box_guid(struct mailbox *box)
{
	struct mailbox_metadata metadata;

	if (mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) < 0)
		return "";
	return guid_128_to_string(metadata.guid);
}

/* Is the expunge of mail held, i.e. recorded? (The pending keyword alone
   proves nothing.) */
static bool sweep_is_held(struct pop3ext_sweep *sweep, struct mail *mail)
{
	const struct pop3ext_held *h;
	struct mailbox_status status;
	const char *box_guid = sweep_box_guid(mail->box);
	const char *guid = NULL;

	mailbox_get_open_status(mail->box, STATUS_UIDVALIDITY, &status);
	array_foreach(&sweep->held, h) {
		if (!held_is_of(h, mail->box, box_guid))
			continue;
		if (h->uidvalidity == status.uidvalidity) {
			if (h->uid == mail->uid)
				return TRUE;
			continue;
		}
		if (guid == NULL &&
		    mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
			guid = "";
		if (strcmp(h->guid, guid) == 0)
			return TRUE;
	}
	return FALSE;
}

static int sweep_inbox(struct pop3ext_sweep *sweep)
{
	struct mail_namespace *ns;
	struct mailbox *box;
	struct mailbox_transaction_context *t;
	struct mail *mail;
	ARRAY_TYPE(seq_range) seqs;
	struct seq_range_iter iter;
	const char *kws[] = { POP3EXT_KEYWORD_PENDING, NULL };
	struct sweep_box sbox;
	unsigned int n = 0;
	ARRAY_TYPE(pop3ext_retrieval) consumed;
	uint32_t seq;
	int ret = 0;

	i_zero(&sbox);
	ns = mail_namespace_find_inbox(sweep->user->namespaces);
	box = mailbox_alloc(ns->list, "INBOX", 0);
	if (mailbox_sync(box, 0) < 0) {
		enum mail_error error;

		(void)mailbox_get_last_error(box, &error);
		if (error == MAIL_ERROR_NOTFOUND) {
			/* no INBOX yet: nothing to sweep */
			mailbox_free(&box);
			return 0;
		}
		sweep_set_box_error(sweep, &sbox, box, "Can't sync");
		mailbox_free(&box);
		return -1;
	}
	t = mailbox_transaction_begin(box, 0, "pop3ext sweep");
	mail = mail_alloc(t, MAIL_FETCH_SAVE_DATE | MAIL_FETCH_PHYSICAL_SIZE,
			  NULL);
	p_array_init(&seqs, sweep->pool, 64);
	p_array_init(&consumed, sweep->pool, 64);

	sweep_retrievals(sweep, &sbox, mail, &seqs, &consumed);
	if (!sbox.failed)
		sweep_max_age(sweep, &sbox, mail, &seqs);

	seq_range_array_iter_init(&iter, &seqs);
	while (!sbox.failed && seq_range_array_iter_nth(&iter, n++, &seq)) {
		mail_set_seq(mail, seq);
		if (mail->expunged)
			continue;
		/* a held expunge is already recorded */
		if (str_array_find(mail_get_keywords(mail), kws[0]) &&
		    sweep_is_held(sweep, mail))
			continue;
		(void)sweep_expunge(sweep, &sbox, mail);
	}
	mail_free(&mail);

	if (sweep_finish(sweep, &sbox, box, &t) &&
	    array_count(&consumed) > 0) {
		const char *error;

		/* not consumed: read again next time, and found gone */
		if (pop3ext_state_consume_retrievals(sweep->puser->state,
						     &consumed, &error) < 0)
			sweep_set_error(sweep, &sbox, error);
	}
	if (sbox.failed)
		ret = -1;
	mailbox_free(&box);
	return ret;
}

/* The group of records of one mailbox: its GUID and name when held. */
static const char *held_key(const struct pop3ext_held *h)
{
	return t_strconcat(h->mailbox_guid, "/", h->mailbox, NULL);
}

/* Opens the mailbox of the record h: by the name it had, if it is still
   the same mailbox, else by its GUID (renamed). Returns 1 (*box_r is
   synced), 0 if the mailbox is gone, -1 on error (*box_r is set for the
   error). */
static int sweep_held_open(struct pop3ext_sweep *sweep,
			   const struct pop3ext_held *h,
			   struct mailbox **box_r)
{
	struct mail_namespace *ns;
	struct mailbox *box;
	enum mail_error error;
	guid_128_t guid;

	ns = mail_namespace_find(sweep->user->namespaces, h->mailbox);
	box = mailbox_alloc(ns->list, h->mailbox, 0);
	if (mailbox_sync(box, 0) == 0) {
		if (h->mailbox_guid[0] == '\0' ||
		    strcmp(sweep_box_guid(box), h->mailbox_guid) == 0) {
			*box_r = box;
			return 1;
		}
		/* another mailbox has the name now */
	} else {
		(void)mailbox_get_last_error(box, &error);
		if (error != MAIL_ERROR_NOTFOUND) {
			*box_r = box;
			return -1;
		}
	}
	mailbox_free(&box);
	if (h->mailbox_guid[0] == '\0' ||
	    guid_128_from_string(h->mailbox_guid, guid) < 0)
		return 0;
	/* renamed (or gone): its GUID tells */
	for (ns = sweep->user->namespaces; ns != NULL; ns = ns->next) {
		if (ns->type != MAIL_NAMESPACE_TYPE_PRIVATE)
			continue;
		box = mailbox_alloc_guid(ns->list, guid, 0);
		if (mailbox_sync(box, 0) == 0) {
			*box_r = box;
			return 1;
		}
		(void)mailbox_get_last_error(box, &error);
		if (error != MAIL_ERROR_NOTFOUND) {
			*box_r = box;
			return -1;
		}
		mailbox_free(&box);
	}
	return 0;
}

/* Completes one mailbox's held expunges that are now allowed; adds the
   records that are done (expunged, gone, withdrawn, or a void intent) to
   done. */
static void
sweep_held_mailbox(struct pop3ext_sweep *sweep, const char *key,
		   const struct pop3ext_held *first,
		   const ARRAY_TYPE(pop3ext_held) *entries,
		   ARRAY_TYPE(pop3ext_held) *done)
{
	struct mailbox *box;
	struct mailbox_transaction_context *t;
	struct mail *mail;
	const struct pop3ext_held *h;
	ARRAY_TYPE(pop3ext_held) box_done;
	struct sweep_box sbox;
	bool pending;
	int ret;

	i_zero(&sbox);
	ret = sweep_held_open(sweep, first, &box);
	if (ret <= 0) {
		if (ret == 0) {
			/* the mailbox is gone, and its messages with it */
			array_foreach(entries, h) {
				if (strcmp(held_key(h), key) == 0)
					array_push_back(done, h);
			}
		} else {
			sweep_set_box_error(sweep, &sbox, box, "Can't sync");
			mailbox_free(&box);
		}
		return;
	}

	p_array_init(&box_done, sweep->pool, 16);
	t = mailbox_transaction_begin(box, 0, "pop3ext sweep");
	mail = mail_alloc(t, MAIL_FETCH_PHYSICAL_SIZE, NULL);
	array_foreach(entries, h) {
		if (strcmp(held_key(h), key) != 0)
			continue;
		if (!h->intent &&
		    pop3ext_decide_expunge(&sweep->puser->policy, h->save_date,
					   ioloop_time) !=
		    POP3EXT_EXPUNGE_ALLOW) {
			sbox.counts.held++;
			continue;
		}
		switch (sweep_find(mail, h->uidvalidity, h->uid, h->guid)) {
		case SWEEP_FIND_FOUND:
			break;
		case SWEEP_FIND_GONE:
			array_push_back(&box_done, h);
			continue;
		case SWEEP_FIND_ERROR:
			/* the record stays; this mailbox fails */
			sweep_set_box_error(sweep, &sbox, box,
					    "Can't look up a held message in");
			break;
		}
		if (sbox.failed)
			break;
		pending = !mail->expunged &&
			str_array_find(mail_get_keywords(mail),
				       POP3EXT_KEYWORD_PENDING);
		if (pending && h->intent &&
		    pop3ext_decide_expunge(&sweep->puser->policy, h->save_date,
					   ioloop_time) !=
		    POP3EXT_EXPUNGE_ALLOW) {
			/* a crash came between the storage commit and the
			   reconciliation: the intent holds */
			sbox.counts.held++;
			continue;
		}
		if (pending) {
			if (sweep_expunge(sweep, &sbox, mail))
				sbox.counts.held_completed++;
			else
				continue;
		}
		/* expunged now, or gone, or the pending keyword was removed
		   (the deletion withdrawn, or an intent whose commit never
		   happened): done either way */
		array_push_back(&box_done, h);
	}
	mail_free(&mail);
	if (sweep_finish(sweep, &sbox, box, &t))
		array_append_array(done, &box_done);
	mailbox_free(&box);
}

static int sweep_held(struct pop3ext_sweep *sweep)
{
	const ARRAY_TYPE(pop3ext_held) *entries = &sweep->held;
	ARRAY_TYPE(pop3ext_held) done;
	ARRAY_TYPE(const_string) keys;
	const struct pop3ext_held *h;
	const char *key, *error;

	if (sweep->puser->state == NULL)
		return 0;
	p_array_init(&keys, sweep->pool, 4);
	p_array_init(&done, sweep->pool, 16);
	array_foreach(entries, h) {
		key = p_strdup(sweep->pool, held_key(h));
		if (array_lsearch(&keys, &key, i_strcmp_p) != NULL)
			continue;
		array_push_back(&keys, &key);
		T_BEGIN {
			sweep_held_mailbox(sweep, key, h, entries, &done);
		} T_END;
	}
	if (!sweep->dry_run &&
	    pop3ext_state_remove_held(sweep->puser->state, &done, &error) < 0) {
		/* the expunges are done; their records go next time */
		sweep_set_error(sweep, NULL, error);
	}
	return sweep->error == NULL ? 0 : -1;
}

int pop3ext_sweep_user(struct mail_user *user, bool dry_run,
		       struct pop3ext_sweep_result *result_r,
		       const char **error_r)
{
	struct pop3ext_sweep sweep;
	struct file_lock *lock = NULL;
	int ret;

	i_zero(result_r);
	i_zero(&sweep);
	sweep.user = user;
	sweep.puser = pop3ext_user_get(user);
	sweep.dry_run = dry_run;
	sweep.result = result_r;
	if (sweep.puser == NULL) {
		*error_r = "pop3ext is not in this user's mail_plugins";
		return -1;
	}
	if (sweep.puser->policy_error != NULL) {
		*error_r = t_strdup_printf("Invalid policy setting %s - "
			"nothing swept", sweep.puser->policy_error);
		return -1;
	}

	/* one sweep of a user at a time, from reading the logs to
	   consuming them */
	if (sweep.puser->state != NULL) {
		ret = pop3ext_state_sweep_lock(sweep.puser->state, &lock,
					       error_r);
		if (ret <= 0) {
			if (ret == 0) {
				*error_r = "another sweep of this user is "
					"running - skipped";
			}
			return -1;
		}
	}
	sweep.pool = pool_alloconly_create("pop3ext sweep", 4096);
	p_array_init(&sweep.held, sweep.pool, 16);
	if (sweep.puser->state != NULL &&
	    pop3ext_state_read_held(sweep.puser->state, sweep.pool,
				    &sweep.held, error_r) < 0) {
		*error_r = t_strdup(*error_r);
		pool_unref(&sweep.pool);
		file_lock_free(&lock);
		return -1;
	}
	sweep.puser->sweeping = TRUE;
	ret = sweep_inbox(&sweep);
	if (sweep_held(&sweep) < 0)
		ret = -1;
	sweep.puser->sweeping = FALSE;
	if (ret < 0)
		*error_r = t_strdup(sweep.error);
	pool_unref(&sweep.pool);
	if (lock != NULL)
		file_lock_free(&lock);
	return ret;
}
