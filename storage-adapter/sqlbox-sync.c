/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "mailbox-recent-flags.h"
#include "sqlbox-storage.h"

/* Sync brings the index up to date with the database: the index header
   says up to which modseq of which database mailbox it is, and the
   database lists what changed since (rows with a higher modseq, expunge
   records with a higher modseq). Expunge requests made in this process's
   transactions were written to the database at commit; here they're only
   applied to the index and announced to plugins (mailbox_sync_notify). */

#define SQLBOX_SYNC_MAX_REBUILDS 3

struct sqlbox_sync_context {
	struct sqlbox_mailbox *mbox;
	struct mail_index_sync_ctx *index_sync_ctx;
	struct mail_index_view *sync_view;
	struct mail_index_transaction *trans;
	struct sqlbox_keyword_cache keywords;
	ARRAY_TYPE(seq_range) expunged_uids;
};

void sqlbox_read_index_header(struct sqlbox_mailbox *mbox,
			      struct mail_index_view *view,
			      struct sqlbox_index_header *hdr_r)
{
	const void *data;
	size_t size;

	i_zero(hdr_r);
	mail_index_get_header_ext(view, mbox->hdr_ext_id, &data, &size);
	if (size >= sizeof(*hdr_r))
		memcpy(hdr_r, data, sizeof(*hdr_r));
}

static void
sqlbox_sync_expunge_seqs(struct sqlbox_sync_context *ctx,
			 uint32_t seq1, uint32_t seq2)
{
	const struct sqlbox_index_record *rec;
	const void *data;
	uint32_t seq, uid;
	bool expunged;

	for (seq = seq1; seq <= seq2; seq++) {
		if (mail_index_transaction_is_expunged(ctx->trans, seq))
			continue;
		mail_index_lookup_uid(ctx->sync_view, seq, &uid);
		/* with the message's GUID in the log, as other storages do:
		   dsync recognises expunged messages by it */
		mail_index_lookup_ext(ctx->sync_view, seq,
				      ctx->mbox->rec_ext_id, &data, &expunged);
		rec = data;
		if (rec != NULL && !guid_128_is_empty(rec->guid))
			mail_index_expunge_guid(ctx->trans, seq, rec->guid);
		else
			mail_index_expunge(ctx->trans, seq);
		seq_range_array_add(&ctx->expunged_uids, uid);
	}
}

static int
sqlbox_sync_from_db(struct sqlbox_sync_context *ctx, bool *need_rebuild_r)
{
	struct sqlbox_mailbox *mbox = ctx->mbox;
	struct sqlbox_db *db = mbox->storage->db;
	const struct mail_index_header *hdr;
	struct sqlbox_index_header ihdr;
	struct sqlbox_db_mailbox db_box;
	struct sqlbox_db_msg_iter *iter;
	const struct sqlbox_db_message *msg;
	ARRAY_TYPE(seq_range) expunged;
	const struct seq_range *range;
	uint32_t seq, seq1, seq2, next_uid;
	int ret;

	*need_rebuild_r = FALSE;
	hdr = mail_index_get_header(ctx->sync_view);
	sqlbox_read_index_header(mbox, ctx->sync_view, &ihdr);

	if (sqlbox_db_begin(db, FALSE) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Starting a read transaction");
		return -1;
	}
	ret = sqlbox_db_mailbox_get(db, mbox->db_box.id, &db_box);
	if (ret <= 0) {
		sqlbox_db_rollback(db);
		if (ret == 0)
			mailbox_set_deleted(&mbox->box);
		else
			sqlbox_mailbox_set_db_error(mbox, "Reading the mailbox");
		return -1;
	}
	mbox->db_box = db_box;

	if (ihdr.mailbox_id != (uint64_t)db_box.id ||
	    ihdr.uidvalidity != db_box.uidvalidity ||
	    hdr->uid_validity != db_box.uidvalidity ||
	    ihdr.synced_modseq == 0 ||
	    ihdr.synced_modseq < db_box.expunge_floor ||
	    ihdr.synced_modseq > db_box.modseq) {
		/* not an index of this database mailbox, or one that lost
		   track of it */
		sqlbox_db_rollback(db);
		*need_rebuild_r = TRUE;
		return 0;
	}
	if (ihdr.synced_modseq == db_box.modseq) {
		sqlbox_db_rollback(db);
		return 0;
	}

	/* expunged by others */
	t_array_init(&expunged, 32);
	if (sqlbox_db_expunged_uids(db, db_box.id, ihdr.synced_modseq,
				    db_box.modseq, &expunged) < 0) {
		sqlbox_db_rollback(db);
		sqlbox_mailbox_set_db_error(mbox, "Reading expunges");
		return -1;
	}
	array_foreach(&expunged, range) {
		if (mail_index_lookup_seq_range(ctx->sync_view, range->seq1,
						range->seq2, &seq1, &seq2))
			sqlbox_sync_expunge_seqs(ctx, seq1, seq2);
	}

	/* new and changed */
	next_uid = hdr->next_uid;
	iter = sqlbox_db_msg_iter_init(db, db_box.id, ihdr.synced_modseq,
				       db_box.modseq);
	while ((ret = sqlbox_db_msg_iter_next(iter, &msg)) > 0) {
		if (mail_index_lookup_seq(ctx->sync_view, msg->uid, &seq)) {
			sqlbox_sync_update_message(mbox, ctx->trans, seq, msg,
						   &ctx->keywords);
		} else if (msg->uid >= next_uid) {
			sqlbox_sync_add_message(mbox, ctx->trans, msg,
						&ctx->keywords);
			/* new to the index, so no session has seen it: recent
			   here, like the appends sdbox finds in its view
			   (committing with DROP_RECENT moves first_recent_uid
			   past it, so nobody could mark it later) */
			if (msg->uid >= hdr->first_recent_uid)
				mailbox_recent_flags_set_uid(&mbox->box,
							     msg->uid);
			next_uid = msg->uid + 1;
		} else {
			/* a message below the index's next UID that the
			   index doesn't have */
			*need_rebuild_r = TRUE;
			break;
		}
	}
	if (sqlbox_db_msg_iter_deinit(&iter) < 0)
		ret = -1;
	sqlbox_db_rollback(db);
	if (ret < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Reading messages");
		return -1;
	}
	if (*need_rebuild_r)
		return 0;

	if (db_box.next_uid > next_uid) {
		next_uid = db_box.next_uid;
		mail_index_update_header(ctx->trans,
			offsetof(struct mail_index_header, next_uid),
			&next_uid, sizeof(next_uid), FALSE);
	}
	ihdr.synced_modseq = db_box.modseq;
	mail_index_update_header_ext(ctx->trans, mbox->hdr_ext_id, 0,
				     &ihdr, sizeof(ihdr));
	return 0;
}

static int
sqlbox_sync_index(struct sqlbox_sync_context *ctx, bool *need_rebuild_r)
{
	struct mailbox *box = &ctx->mbox->box;
	const struct mail_index_header *hdr;
	struct mail_index_sync_rec sync_rec;
	uint32_t seq1, seq2;

	hdr = mail_index_get_header(ctx->sync_view);
	/* mark the newly seen messages as recent */
	if (mail_index_lookup_seq_range(ctx->sync_view, hdr->first_recent_uid,
					hdr->next_uid, &seq1, &seq2))
		mailbox_recent_flags_set_seqs(box, ctx->sync_view, seq1, seq2);

	/* expunge requests: the database has done them at commit */
	while (mail_index_sync_next(ctx->index_sync_ctx, &sync_rec)) {
		if (sync_rec.type != MAIL_INDEX_SYNC_TYPE_EXPUNGE)
			continue;
		if (mail_index_lookup_seq_range(ctx->sync_view,
						sync_rec.uid1, sync_rec.uid2,
						&seq1, &seq2))
			sqlbox_sync_expunge_seqs(ctx, seq1, seq2);
	}
	return sqlbox_sync_from_db(ctx, need_rebuild_r);
}

static void sqlbox_sync_notify_expunges(struct sqlbox_sync_context *ctx)
{
	struct mailbox *box = &ctx->mbox->box;
	const struct seq_range *range;
	uint32_t uid;

	if (array_count(&ctx->expunged_uids) == 0)
		return;
	box->tmp_sync_view = ctx->sync_view;
	array_foreach(&ctx->expunged_uids, range) {
		for (uid = range->seq1; uid <= range->seq2; uid++)
			mailbox_sync_notify(box, uid, MAILBOX_SYNC_TYPE_EXPUNGE);
	}
	mailbox_sync_notify(box, 0, 0);
	box->tmp_sync_view = NULL;
}

/* Returns 1 if the database has changed since the index last looked,
   0 if not, -1 on error. */
static int sqlbox_sync_db_changed(struct sqlbox_mailbox *mbox)
{
	struct sqlbox_index_header ihdr;
	struct mail_index_view *view;
	int ret;

	if (sqlbox_mailbox_refresh_db_box(mbox) < 0)
		return -1;
	(void)mail_index_refresh(mbox->box.index);
	view = mail_index_view_open(mbox->box.index);
	sqlbox_read_index_header(mbox, view, &ihdr);
	ret = ihdr.mailbox_id == (uint64_t)mbox->db_box.id &&
		ihdr.uidvalidity == mbox->db_box.uidvalidity &&
		ihdr.synced_modseq == mbox->db_box.modseq &&
		mail_index_get_header(view)->uid_validity ==
			mbox->db_box.uidvalidity ? 0 : 1;
	mail_index_view_close(&view);
	return ret;
}

int sqlbox_sync(struct sqlbox_mailbox *mbox, enum sqlbox_sync_flags flags)
{
	struct mailbox *box = &mbox->box;
	struct sqlbox_sync_context ctx;
	enum mail_index_sync_flags sync_flags;
	bool need_rebuild;
	unsigned int i;
	int ret;

	sync_flags = index_storage_get_sync_flags(box) |
		MAIL_INDEX_SYNC_FLAG_AVOID_FLAG_UPDATES;
	if ((flags & (SQLBOX_SYNC_FLAG_FORCE | SQLBOX_SYNC_FLAG_REBUILD)) == 0) {
		if ((ret = sqlbox_sync_db_changed(mbox)) < 0)
			return -1;
		if (ret == 0) {
			/* only the index's own changes, if any */
			sync_flags |= MAIL_INDEX_SYNC_FLAG_REQUIRE_CHANGES;
		}
	} else if (sqlbox_storage_db_connect(mbox->storage) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Connecting to the database");
		return -1;
	}

	i_zero(&ctx);
	ctx.mbox = mbox;
	for (i = 0;; i++) {
		ret = index_storage_expunged_sync_begin(box,
				&ctx.index_sync_ctx, &ctx.sync_view,
				&ctx.trans, sync_flags);
		if (ret <= 0) {
			mbox->db_changed = FALSE;
			return ret;
		}
		sqlbox_keyword_cache_init(&ctx.keywords, box->index);
		i_array_init(&ctx.expunged_uids, 32);

		need_rebuild = i == 0 &&
			(flags & SQLBOX_SYNC_FLAG_REBUILD) != 0;
		if (!need_rebuild) T_BEGIN {
			ret = sqlbox_sync_index(&ctx, &need_rebuild);
		} T_END;
		if (ret == 0 && !need_rebuild)
			break;

		sqlbox_keyword_cache_deinit(&ctx.keywords);
		array_free(&ctx.expunged_uids);
		if (ret == 0) {
			if (i >= SQLBOX_SYNC_MAX_REBUILDS) {
				mailbox_set_critical(box, "sqlbox: The index "
					"keeps breaking after rebuilds");
				ret = -1;
			} else {
				/* rebuild with the index still locked */
				ret = sqlbox_sync_rebuild(mbox);
			}
		}
		mail_index_sync_rollback(&ctx.index_sync_ctx);
		index_storage_expunging_deinit(box);
		if (ret < 0)
			return -1;
		sync_flags &= ENUM_NEGATE(MAIL_INDEX_SYNC_FLAG_REQUIRE_CHANGES);
	}

	mail_index_view_ref(ctx.sync_view);
	if (mail_index_sync_commit(&ctx.index_sync_ctx) < 0) {
		mailbox_set_index_error(box);
		ret = -1;
	} else {
		sqlbox_sync_notify_expunges(&ctx);
		mbox->db_changed = FALSE;
	}
	mail_index_view_close(&ctx.sync_view);
	sqlbox_keyword_cache_deinit(&ctx.keywords);
	array_free(&ctx.expunged_uids);
	index_storage_expunging_deinit(box);
	return ret;
}

struct mailbox_sync_context *
sqlbox_storage_sync_init(struct mailbox *box, enum mailbox_sync_flags flags)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);
	enum sqlbox_sync_flags sqlbox_flags = 0;
	int ret = 0;

	if ((flags & MAILBOX_SYNC_FLAG_FORCE_RESYNC) != 0)
		sqlbox_flags |= SQLBOX_SYNC_FLAG_REBUILD;
	if (index_mailbox_want_full_sync(box, flags) || mbox->db_changed ||
	    sqlbox_flags != 0)
		ret = sqlbox_sync(mbox, sqlbox_flags);
	return index_mailbox_sync_init(box, flags, ret < 0);
}
