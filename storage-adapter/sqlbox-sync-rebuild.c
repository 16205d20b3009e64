/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str.h"
#include "mailbox-recent-flags.h"
#include "mail-index-modseq.h"
#include "sqlbox-storage.h"

/* The index is a cache of the database: when it's missing, belongs to
   another (or a recreated) mailbox, or lost track of the database's
   changes, it is thrown away and filled again from the database. UIDs,
   UIDVALIDITY, flags, keywords and everything else come from there, so
   nothing a client has seen changes. */

void sqlbox_keyword_cache_init(struct sqlbox_keyword_cache *cache,
			       struct mail_index *index)
{
	i_zero(cache);
	cache->index = index;
	cache->pool = pool_alloconly_create("sqlbox keyword sets", 512);
	hash_table_create(&cache->sets, cache->pool, 0, str_hash, strcmp);
}

void sqlbox_keyword_cache_deinit(struct sqlbox_keyword_cache *cache)
{
	struct hash_iterate_context *iter;
	char *key;
	struct mail_keywords *kw;

	if (cache->pool == NULL)
		return;
	iter = hash_table_iterate_init(cache->sets);
	while (hash_table_iterate(iter, cache->sets, &key, &kw))
		mail_index_keywords_unref(&kw);
	hash_table_iterate_deinit(&iter);
	hash_table_destroy(&cache->sets);
	pool_unref(&cache->pool);
}

static struct mail_keywords *
sqlbox_keyword_cache_get(struct sqlbox_keyword_cache *cache,
			 const char *const *names)
{
	struct mail_keywords *kw;
	const char *key;

	key = t_strarray_join(names, " ");
	kw = hash_table_lookup(cache->sets, key);
	if (kw == NULL) {
		kw = mail_index_keywords_create(cache->index, names);
		hash_table_insert(cache->sets, p_strdup(cache->pool, key), kw);
	}
	return kw;
}

static void
sqlbox_record_fill(const struct sqlbox_db_message *msg,
		   struct sqlbox_index_record *rec_r)
{
	i_zero(rec_r);
	rec_r->body_id = msg->body_id;
	rec_r->physical_size = msg->physical_size;
	rec_r->virtual_size = msg->virtual_size;
	rec_r->received_date = msg->received_date;
	rec_r->save_date = msg->save_date;
	guid_128_copy(rec_r->guid, msg->guid);
	rec_r->pop3_order = msg->pop3_order;
	if (msg->have_pop3_uidl)
		rec_r->flags |= SQLBOX_INDEX_RECORD_FLAG_POP3_UIDL;
	if (msg->guid_is_string)
		rec_r->flags |= SQLBOX_INDEX_RECORD_FLAG_GUID_STRING;
}

static int
sqlbox_min_modseq_cmp(const struct sqlbox_min_modseq *m1,
		      const struct sqlbox_min_modseq *m2)
{
	return m1->uid < m2->uid ? -1 : (m1->uid > m2->uid ? 1 : 0);
}

static int
sqlbox_min_modseq_uid_cmp(const uint32_t *uid,
			  const struct sqlbox_min_modseq *m)
{
	return *uid < m->uid ? -1 : (*uid > m->uid ? 1 : 0);
}

static void
sqlbox_sync_apply_min_modseq(struct sqlbox_mailbox *mbox,
			     struct mail_index_transaction *trans,
			     uint32_t seq, uint32_t uid)
{
	struct sqlbox_min_modseq *min;

	if (!array_is_created(&mbox->min_modseqs))
		return;
	if (!mbox->min_modseqs_sorted) {
		array_sort(&mbox->min_modseqs, sqlbox_min_modseq_cmp);
		mbox->min_modseqs_sorted = TRUE;
	}
	min = array_bsearch(&mbox->min_modseqs, &uid,
			     sqlbox_min_modseq_uid_cmp);
	if (min != NULL && min->modseq != 0) {
		mail_index_modseq_enable(mbox->box.index);
		mail_index_update_modseq(trans, seq, min->modseq);
		/* used (removing it would move the rest) */
		min->modseq = 0;
	}
}

void sqlbox_sync_add_message(struct sqlbox_mailbox *mbox,
			     struct mail_index_transaction *trans,
			     const struct sqlbox_db_message *msg,
			     struct sqlbox_keyword_cache *keywords)
{
	struct sqlbox_index_record rec;
	uint32_t seq;

	mail_index_append(trans, msg->uid, &seq);
	if (msg->flags != 0) {
		mail_index_update_flags(trans, seq, MODIFY_REPLACE,
					msg->flags);
	}
	if (msg->keywords[0] != NULL) T_BEGIN {
		mail_index_update_keywords(trans, seq, MODIFY_REPLACE,
			sqlbox_keyword_cache_get(keywords, msg->keywords));
	} T_END;
	sqlbox_record_fill(msg, &rec);
	mail_index_update_ext(trans, seq, mbox->rec_ext_id, &rec, NULL);
	sqlbox_sync_apply_min_modseq(mbox, trans, seq, msg->uid);
}

void sqlbox_sync_update_message(struct sqlbox_mailbox *mbox,
				struct mail_index_transaction *trans,
				uint32_t seq,
				const struct sqlbox_db_message *msg,
				struct sqlbox_keyword_cache *keywords)
{
	const struct sqlbox_index_record *rec;
	struct sqlbox_index_record new_rec;
	const void *data;
	bool expunged;

	/* a POP3 UIDL stored since (pop3_save_uidl) */
	if (msg->have_pop3_uidl) {
		mail_index_lookup_ext(mail_index_transaction_get_view(trans),
				      seq, mbox->rec_ext_id, &data, &expunged);
		rec = data;
		if (rec != NULL &&
		    (rec->flags & SQLBOX_INDEX_RECORD_FLAG_POP3_UIDL) == 0) {
			new_rec = *rec;
			new_rec.flags |= SQLBOX_INDEX_RECORD_FLAG_POP3_UIDL;
			mail_index_update_ext(trans, seq, mbox->rec_ext_id,
					      &new_rec, NULL);
		}
	}
	/* the transaction skips what doesn't change anything */
	mail_index_update_flags(trans, seq, MODIFY_REPLACE, msg->flags);
	T_BEGIN {
		mail_index_update_keywords(trans, seq, MODIFY_REPLACE,
			sqlbox_keyword_cache_get(keywords, msg->keywords));
	} T_END;
}

static int
sqlbox_sync_rebuild_fill(struct sqlbox_mailbox *mbox,
			 struct mail_index_transaction *trans)
{
	struct mailbox *box = &mbox->box;
	struct sqlbox_db *db = mbox->storage->db;
	struct sqlbox_keyword_cache keywords;
	struct sqlbox_db_msg_iter *iter;
	const struct sqlbox_db_message *msg;
	struct sqlbox_index_header hdr;
	uint32_t next_uid = 1, uid_validity;
	unsigned int count = 0;
	int ret;

	if (sqlbox_db_begin(db, FALSE) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Starting a read transaction");
		return -1;
	}
	ret = sqlbox_db_mailbox_get(db, mbox->db_box.id, &mbox->db_box);
	if (ret <= 0) {
		sqlbox_db_rollback(db);
		if (ret == 0)
			mailbox_set_deleted(box);
		else
			sqlbox_mailbox_set_db_error(mbox, "Reading the mailbox");
		return -1;
	}

	uid_validity = mbox->db_box.uidvalidity;
	mail_index_update_header(trans,
		offsetof(struct mail_index_header, uid_validity),
		&uid_validity, sizeof(uid_validity), TRUE);

	sqlbox_keyword_cache_init(&keywords, box->index);
	iter = sqlbox_db_msg_iter_init(db, mbox->db_box.id, 0,
				       mbox->db_box.modseq);
	while ((ret = sqlbox_db_msg_iter_next(iter, &msg)) > 0) {
		sqlbox_sync_add_message(mbox, trans, msg, &keywords);
		next_uid = msg->uid + 1;
		count++;
	}
	if (sqlbox_db_msg_iter_deinit(&iter) < 0)
		ret = -1;
	sqlbox_keyword_cache_deinit(&keywords);
	if (ret < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Reading the messages");
		sqlbox_db_rollback(db);
		return -1;
	}
	sqlbox_db_rollback(db);

	if (mbox->db_box.next_uid > next_uid) {
		next_uid = mbox->db_box.next_uid;
		mail_index_update_header(trans,
			offsetof(struct mail_index_header, next_uid),
			&next_uid, sizeof(next_uid), FALSE);
	}
	i_zero(&hdr);
	hdr.mailbox_id = mbox->db_box.id;
	hdr.synced_modseq = mbox->db_box.modseq;
	hdr.uidvalidity = mbox->db_box.uidvalidity;
	mail_index_ext_resize_hdr(trans, mbox->hdr_ext_id, sizeof(hdr));
	mail_index_update_header_ext(trans, mbox->hdr_ext_id, 0,
				     &hdr, sizeof(hdr));
	e_debug(box->event, "sqlbox: Index rebuilt from the database: "
		"%u messages, UIDVALIDITY %u, next UID %u", count,
		uid_validity, next_uid);
	return 0;
}

int sqlbox_sync_rebuild(struct sqlbox_mailbox *mbox)
{
	struct mailbox *box = &mbox->box;
	struct mail_index_view *view;
	struct mail_index_transaction *trans;
	int ret;

	i_assert(mail_index_is_locked(box->index));

	view = mail_index_view_open(box->index);
	trans = mail_index_transaction_begin(view,
		MAIL_INDEX_TRANSACTION_FLAG_EXTERNAL);
	mail_index_reset(trans);
	mailbox_recent_flags_reset(box);

	T_BEGIN {
		ret = sqlbox_sync_rebuild_fill(mbox, trans);
	} T_END;
	if (ret < 0)
		mail_index_transaction_rollback(&trans);
	else {
		mail_index_unset_fscked(trans);
		if (mail_index_transaction_commit(&trans) < 0) {
			mailbox_set_index_error(box);
			ret = -1;
		}
	}
	mail_index_view_close(&view);
	return ret;
}
