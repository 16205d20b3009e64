/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "istream.h"
#include "istream-crlf.h"
#include "ostream.h"
#include "iostream-temp.h"
#include "str.h"
#include "sort.h"
#include "mail-user.h"
#include "sqlbox-storage.h"

#include <openssl/evp.h>

/* Saving. A message being saved is written (with CRLF line ends) to a
   temporary stream, kept in memory up to one body chunk and in a file
   beyond, and its SHA-256 taken. Nothing reaches the database until the
   transaction commits: then one database transaction allocates the UIDs,
   stores the bodies and rows (and the transaction's flag, keyword and
   expunge changes), and commits. Only after that does the caller (e.g.
   LMTP, before its 250) learn that the save succeeded.

   Like imapc, the index gets only temporary records during the save (so
   that the mail being saved has a sequence), which are dropped at commit:
   the messages enter the index through the next sync, from the database,
   in UID order whatever other processes saved meanwhile. */

struct sqlbox_save_mail {
	uint32_t seq;
	/* the body, or NULL for a copy inside the database */
	struct istream *input;
	uoff_t body_size;
	unsigned char sha256[SQLBOX_SHA256_SIZE];

	struct sqlbox_db_new_message msg;
	int64_t src_mailbox_id;
	uint32_t src_uid;
};

struct sqlbox_save_context {
	struct mail_save_context ctx;

	struct sqlbox_mailbox *mbox;
	struct mail_index_transaction *trans;
	pool_t pool;
	ARRAY(struct sqlbox_save_mail) mails;

	/* the mail being saved */
	uint32_t seq;
	struct istream *input;
	struct ostream *output;

	bool failed:1;
	bool finished:1;
	bool db_committed:1;
};

#define SQLBOX_SAVECTX(s) (container_of(s, struct sqlbox_save_context, ctx))

struct mail_save_context *
sqlbox_save_alloc(struct mailbox_transaction_context *t)
{
	struct sqlbox_save_context *ctx;

	i_assert((t->flags & MAILBOX_TRANSACTION_FLAG_EXTERNAL) != 0);

	if (t->save_ctx != NULL) {
		ctx = SQLBOX_SAVECTX(t->save_ctx);
		ctx->failed = FALSE;
		ctx->finished = FALSE;
		/* nothing of the previous mail: a save cancelled before its
		   save_begin must not touch the previous one's record */
		ctx->seq = 0;
		ctx->input = NULL;
		ctx->output = NULL;
		return &ctx->ctx;
	}
	ctx = i_new(struct sqlbox_save_context, 1);
	ctx->ctx.transaction = t;
	ctx->mbox = SQLBOX_MAILBOX(t->box);
	ctx->trans = t->itrans;
	ctx->pool = pool_alloconly_create("sqlbox save", 1024);
	p_array_init(&ctx->mails, ctx->pool, 16);
	t->save_ctx = &ctx->ctx;
	return t->save_ctx;
}

unsigned int sqlbox_save_get_count(struct mail_save_context *_ctx)
{
	return array_count(&SQLBOX_SAVECTX(_ctx)->mails);
}

struct istream *
sqlbox_save_get_body(struct mail_save_context *_ctx, uint32_t seq)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);
	const struct sqlbox_save_mail *mail;

	array_foreach(&ctx->mails, mail) {
		if (mail->seq == seq && mail->input != NULL) {
			i_stream_seek(mail->input, 0);
			return i_stream_create_limit(mail->input, UOFF_T_MAX);
		}
	}
	return NULL;
}

static const char *const *
sqlbox_save_keyword_names(struct sqlbox_save_context *ctx,
			  struct mail_keywords *keywords)
{
	const ARRAY_TYPE(keywords) *all_names;
	const char **names;
	unsigned int i;

	if (keywords == NULL || keywords->count == 0)
		return NULL;
	all_names = mail_index_get_keywords(ctx->mbox->box.index);
	names = p_new(ctx->pool, const char *, keywords->count + 1);
	for (i = 0; i < keywords->count; i++) {
		names[i] = p_strdup(ctx->pool,
			array_idx_elem(all_names, keywords->idx[i]));
	}
	i_qsort(names, keywords->count, sizeof(*names), i_strcmp_p);
	return names;
}

/* Adds the temporary index record of the mail being saved. */
static void sqlbox_save_add_to_index(struct sqlbox_save_context *ctx)
{
	struct mail_save_data *mdata = &ctx->ctx.data;
	struct index_mail *imail = INDEX_MAIL(ctx->ctx.dest_mail);

	mail_index_append(ctx->trans, 0, &ctx->seq);
	mail_index_update_flags(ctx->trans, ctx->seq, MODIFY_REPLACE,
				mdata->flags & MAIL_FLAGS_NONRECENT);
	if (mdata->keywords != NULL) {
		mail_index_update_keywords(ctx->trans, ctx->seq,
					   MODIFY_REPLACE, mdata->keywords);
	}
	mail_set_seq_saving(ctx->ctx.dest_mail, ctx->seq);
	/* the record goes away at commit: cache nothing for it */
	imail->data.no_caching = TRUE;
	imail->data.forced_no_caching = TRUE;
}

static void
sqlbox_save_fill_msg(struct sqlbox_save_context *ctx,
		     struct sqlbox_db_new_message *msg)
{
	struct mail_save_data *mdata = &ctx->ctx.data;

	/* the UID asked for (dsync); the commit decides */
	msg->uid = mdata->uid;
	msg->flags = mdata->flags & MAIL_FLAGS_NONRECENT;
	msg->keywords = sqlbox_save_keyword_names(ctx, mdata->keywords);
	msg->received_date = mdata->received_date;
	msg->save_date = mdata->save_date;
	if (mdata->guid != NULL) {
		if (guid_128_from_string(mdata->guid, msg->guid) < 0) {
			/* not a 128-bit GUID (e.g. a maildir's file name,
			   given by dsync): kept as it is, and its hash for
			   the index */
			msg->guid_str = p_strdup(ctx->pool, mdata->guid);
			mail_generate_guid_128_hash(mdata->guid, msg->guid);
		}
	}
	msg->pop3_uidl = p_strdup(ctx->pool, mdata->pop3_uidl);
	msg->pop3_order = mdata->pop3_order;
	msg->min_modseq = mdata->min_modseq;
}

int sqlbox_save_begin(struct mail_save_context *_ctx, struct istream *input)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);
	struct sqlbox_storage *storage = ctx->mbox->storage;
	struct istream *crlf_input;

	sqlbox_save_add_to_index(ctx);

	/* stored with CRLF line ends: the physical size is the virtual
	   size, and POP3/IMAP send it as it is */
	crlf_input = i_stream_create_crlf(input);
	ctx->input = index_mail_cache_parse_init(_ctx->dest_mail, crlf_input);
	i_stream_unref(&crlf_input);

	ctx->output = iostream_temp_create_sized(storage->temp_prefix, 0,
						"sqlbox save",
						SQLBOX_BODY_CHUNK_SIZE);
	_ctx->data.output = ctx->output;
	if (_ctx->data.received_date == (time_t)-1)
		_ctx->data.received_date = ioloop_time;
	return 0;
}

int sqlbox_save_continue(struct mail_save_context *_ctx)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);

	if (ctx->failed)
		return -1;
	if (index_storage_save_continue(_ctx, ctx->input,
					_ctx->dest_mail) < 0) {
		ctx->failed = TRUE;
		return -1;
	}
	return 0;
}

static int
sqlbox_save_digest(struct sqlbox_save_context *ctx, struct istream *input,
		   struct sqlbox_save_mail *mail)
{
	unsigned int len = SQLBOX_SHA256_SIZE;
	const unsigned char *data;
	size_t size;
	EVP_MD_CTX *md;

	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		i_fatal("sqlbox: EVP_DigestInit_ex(sha256) failed");
	while (i_stream_read_more(input, &data, &size) > 0) {
		if (EVP_DigestUpdate(md, data, size) != 1)
			i_fatal("sqlbox: EVP_DigestUpdate() failed");
		i_stream_skip(input, size);
	}
	if (EVP_DigestFinal_ex(md, mail->sha256, &len) != 1)
		i_fatal("sqlbox: EVP_DigestFinal_ex() failed");
	EVP_MD_CTX_free(md);
	if (input->stream_errno != 0) {
		mail_set_critical(ctx->ctx.dest_mail, "read(%s) failed: %s",
				  i_stream_get_name(input),
				  i_stream_get_error(input));
		return -1;
	}
	mail->body_size = input->v_offset;
	i_stream_seek(input, 0);
	return 0;
}

static int sqlbox_save_finish_write(struct sqlbox_save_context *ctx)
{
	struct mail_save_context *_ctx = &ctx->ctx;
	struct mail_save_data *mdata = &_ctx->data;
	struct sqlbox_save_mail *mail;
	struct istream *body;
	int ret;

	if (!ctx->failed) {
		/* a plugin (e.g. zlib) may have put its stream in front */
		if (mdata->output != ctx->output)
			ret = o_stream_finish(mdata->output);
		else
			ret = o_stream_flush(mdata->output);
		if (ret < 0) {
			mail_set_critical(_ctx->dest_mail,
					  "write(%s) failed: %s",
					  o_stream_get_name(mdata->output),
					  o_stream_get_error(mdata->output));
			ctx->failed = TRUE;
		}
	}
	if (mdata->output != ctx->output) {
		o_stream_ref(ctx->output);
		o_stream_destroy(&mdata->output);
		mdata->output = ctx->output;
	}
	index_mail_cache_parse_deinit(_ctx->dest_mail, mdata->received_date,
				      !ctx->failed);

	if (ctx->failed) {
		o_stream_destroy(&ctx->output);
		mdata->output = NULL;
		return -1;
	}

	mail = array_append_space(&ctx->mails);
	mail->seq = ctx->seq;
	sqlbox_save_fill_msg(ctx, &mail->msg);
	/* the message's size as Dovecot sees it (after plugins that change
	   what is stored, the stored body's size may differ) */
	mail->msg.physical_size = ctx->input->v_offset;
	mail->msg.virtual_size = ctx->input->v_offset;

	body = iostream_temp_finish(&ctx->output, IO_BLOCK_SIZE);
	mdata->output = NULL;
	mail->input = body;
	if (sqlbox_save_digest(ctx, body, mail) < 0) {
		i_stream_unref(&mail->input);
		array_pop_back(&ctx->mails);
		return -1;
	}
	return 0;
}

int sqlbox_save_finish(struct mail_save_context *_ctx)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);

	ctx->finished = TRUE;
	if (ctx->output == NULL) {
		/* cancelled before save_begin (e.g. the quota plugin refused
		   it, or dsync gave up a copy): there's no record to drop */
		ctx->failed = TRUE;
	} else if (sqlbox_save_finish_write(ctx) < 0) {
		ctx->failed = TRUE;
		index_storage_save_abort_last(_ctx, ctx->seq);
	}
	ctx->seq = 0;
	i_stream_unref(&ctx->input);
	index_save_context_free(_ctx);
	return ctx->failed ? -1 : 0;
}

void sqlbox_save_cancel(struct mail_save_context *_ctx)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);

	ctx->failed = TRUE;
	(void)sqlbox_save_finish(_ctx);
}

void sqlbox_save_add_copy(struct mail_save_context *_ctx,
			  struct sqlbox_mailbox *src_mbox, uint32_t src_uid)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);
	struct sqlbox_save_mail *mail;

	sqlbox_save_add_to_index(ctx);
	mail = array_append_space(&ctx->mails);
	mail->seq = ctx->seq;
	sqlbox_save_fill_msg(ctx, &mail->msg);
	mail->src_mailbox_id = src_mbox->db_box.id;
	mail->src_uid = src_uid;
	ctx->finished = TRUE;
}

/* Returns TRUE if some saved mail asks for a UID. */
static bool sqlbox_save_have_wanted_uids(struct sqlbox_save_context *ctx)
{
	const struct sqlbox_save_mail *mail;

	array_foreach(&ctx->mails, mail) {
		if (mail->msg.uid != 0)
			return TRUE;
	}
	return FALSE;
}

/* Gives each saved mail its UID, as Dovecot's index does for appends with
   UIDs: a UID asked for is kept if it's at least next_uid and not asked
   for by an earlier mail of the transaction (in any order: dsync resolving
   a UID conflict asks for 28, then 27); the rest get UIDs after the
   highest kept one. Returns the mailbox's new next UID. */
static uint32_t
sqlbox_save_assign_uids(struct sqlbox_save_context *ctx, uint32_t next_uid)
{
	struct sqlbox_save_mail *mail;
	ARRAY_TYPE(seq_range) kept;
	uint32_t last = next_uid - 1;

	t_array_init(&kept, 16);
	array_foreach_modifiable(&ctx->mails, mail) {
		if (mail->msg.uid >= next_uid &&
		    !seq_range_exists(&kept, mail->msg.uid)) {
			seq_range_array_add(&kept, mail->msg.uid);
			last = I_MAX(last, mail->msg.uid);
		} else {
			mail->msg.uid = 0;
		}
	}
	array_foreach_modifiable(&ctx->mails, mail) {
		if (mail->msg.uid == 0)
			mail->msg.uid = ++last;
	}
	return last + 1;
}

/* Stores the transaction's messages (their UIDs assigned); inside the
   database transaction. */
static int
sqlbox_save_db_write(struct sqlbox_save_context *ctx, uint64_t modseq)
{
	struct sqlbox_mailbox *mbox = ctx->mbox;
	struct sqlbox_db *db = mbox->storage->db;
	struct sqlbox_save_mail *mail;
	int ret;

	array_foreach_modifiable(&ctx->mails, mail) {
		struct sqlbox_db_new_message *msg = &mail->msg;

		if (msg->save_date == (time_t)-1 || msg->save_date == 0)
			msg->save_date = ioloop_time;
		/* (a message without a stored POP3 UIDL gets pop3's from
		   pop3_uidl_format, made of the UID, UIDVALIDITY and GUID
		   that the database keeps) */

		if (mail->src_mailbox_id != 0) {
			ret = sqlbox_db_message_copy(db, mbox->db_box.id,
				modseq, mail->src_mailbox_id, mail->src_uid,
				msg);
			if (ret == 0) {
				mail_storage_set_error(mbox->box.storage,
					MAIL_ERROR_EXPUNGED,
					"Message was expunged before the copy "
					"was committed");
				return -1;
			}
			if (ret < 0)
				goto db_error;
			continue;
		}
		if (guid_128_is_empty(msg->guid))
			guid_128_generate(msg->guid);
		if (msg->received_date == (time_t)-1)
			msg->received_date = ioloop_time;
		i_stream_seek(mail->input, 0);
		if (sqlbox_db_body_write(db, mail->input, mail->body_size,
					 mail->sha256, &msg->body_id) < 0 ||
		    sqlbox_db_message_insert(db, mbox->db_box.id, modseq,
					     msg) < 0)
			goto db_error;
	}
	return 0;
db_error:
	sqlbox_mailbox_set_db_error(mbox, "Saving");
	return -1;
}

static bool
sqlbox_str_array_equal(const char *const *a1, const char *const *a2)
{
	for (; *a1 != NULL && *a2 != NULL; a1++, a2++) {
		if (strcmp(*a1, *a2) != 0)
			return FALSE;
	}
	return *a1 == NULL && *a2 == NULL;
}

static bool
sqlbox_change_same(const struct sqlbox_change *c1,
		   const struct sqlbox_change *c2)
{
	if (c1->type != c2->type)
		return FALSE;
	switch (c1->type) {
	case SQLBOX_CHANGE_EXPUNGE:
		return TRUE;
	case SQLBOX_CHANGE_FLAGS:
		return c1->modify_type == c2->modify_type &&
			c1->flags == c2->flags;
	case SQLBOX_CHANGE_KEYWORDS:
		return c1->modify_type == c2->modify_type &&
			sqlbox_str_array_equal(c1->keywords, c2->keywords);
	case SQLBOX_CHANGE_POP3_UIDL:
		/* each its own */
		return FALSE;
	}
	i_unreached();
}

static int
sqlbox_changes_flush(struct sqlbox_db *db, int64_t mailbox_id,
		     uint64_t modseq, const struct sqlbox_change *change,
		     const ARRAY_TYPE(seq_range) *uids, bool *expunged)
{
	enum mail_flags add = 0, remove = 0;

	switch (change->type) {
	case SQLBOX_CHANGE_FLAGS:
		switch (change->modify_type) {
		case MODIFY_ADD:
			add = change->flags;
			break;
		case MODIFY_REMOVE:
			remove = change->flags;
			break;
		case MODIFY_REPLACE:
			add = change->flags;
			remove = MAIL_FLAGS_NONRECENT & ~change->flags;
			break;
		}
		return sqlbox_db_messages_update_flags(db, mailbox_id, modseq,
						       uids, add, remove);
	case SQLBOX_CHANGE_KEYWORDS:
		return sqlbox_db_messages_update_keywords(db, mailbox_id,
			modseq, uids, change->modify_type, change->keywords);
	case SQLBOX_CHANGE_EXPUNGE:
		*expunged = TRUE;
		return sqlbox_db_messages_expunge(db, mailbox_id, modseq,
						  uids) < 0 ? -1 : 0;
	case SQLBOX_CHANGE_POP3_UIDL:
		return sqlbox_db_message_set_pop3_uidl(db, mailbox_id, modseq,
						       change->uid,
						       change->pop3_uidl);
	}
	i_unreached();
}

/* Writes flag, keyword and expunge changes, in order, each run of equal
   changes as UID ranges. */
static int
sqlbox_changes_db_write(struct sqlbox_transaction_context *st,
			uint64_t modseq, bool *expunged_r)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(st->t.box);
	struct sqlbox_db *db = mbox->storage->db;
	const struct sqlbox_change *change, *prev = NULL;
	ARRAY_TYPE(seq_range) uids;
	int ret = 0;

	*expunged_r = FALSE;
	t_array_init(&uids, 64);
	array_foreach(&st->changes, change) {
		if (prev != NULL && !sqlbox_change_same(prev, change)) {
			if (sqlbox_changes_flush(db, mbox->db_box.id, modseq,
						 prev, &uids, expunged_r) < 0)
				return -1;
			array_clear(&uids);
		}
		seq_range_array_add(&uids, change->uid);
		prev = change;
	}
	if (prev != NULL) {
		ret = sqlbox_changes_flush(db, mbox->db_box.id, modseq, prev,
					   &uids, expunged_r);
	}
	return ret;
}

/* The saved mails' UIDs in the order they were saved, as ranges (not
   sorted: dsync compares them one by one with the UIDs it asked for). */
static void
sqlbox_save_get_uids(struct sqlbox_save_context *ctx,
		     ARRAY_TYPE(seq_range) *uids)
{
	const struct sqlbox_save_mail *mail;
	struct seq_range *last, range;

	array_foreach(&ctx->mails, mail) {
		last = array_count(uids) == 0 ? NULL :
			array_back_modifiable(uids);
		if (last != NULL && last->seq2 + 1 == mail->msg.uid) {
			last->seq2++;
		} else {
			range.seq1 = range.seq2 = mail->msg.uid;
			array_push_back(uids, &range);
		}
	}
}

/* The messages enter the index through sync: remember the modseqs they
   must get at least (modseqs are the index's; dsync asks for the other
   side's). */
static void sqlbox_save_keep_min_modseqs(struct sqlbox_save_context *ctx)
{
	struct sqlbox_mailbox *mbox = ctx->mbox;
	const struct sqlbox_save_mail *mail;
	struct sqlbox_min_modseq *min;

	array_foreach(&ctx->mails, mail) {
		if (mail->msg.min_modseq == 0)
			continue;
		if (!array_is_created(&mbox->min_modseqs))
			i_array_init(&mbox->min_modseqs, 32);
		if (array_count(&mbox->min_modseqs) == 0)
			mbox->min_modseqs_sorted = TRUE;
		else {
			const struct sqlbox_min_modseq *last =
				array_back(&mbox->min_modseqs);

			if (last->uid >= mail->msg.uid)
				mbox->min_modseqs_sorted = FALSE;
		}
		min = array_append_space(&mbox->min_modseqs);
		min->uid = mail->msg.uid;
		min->modseq = mail->msg.min_modseq;
	}
}

static bool
sqlbox_changes_have_pop3_uidls(struct sqlbox_transaction_context *st)
{
	const struct sqlbox_change *change;

	array_foreach(&st->changes, change) {
		if (change->type == SQLBOX_CHANGE_POP3_UIDL)
			return TRUE;
	}
	return FALSE;
}

int sqlbox_transaction_db_commit(struct sqlbox_transaction_context *st)
{
	struct mailbox_transaction_context *t = &st->t;
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(t->box);
	struct sqlbox_storage *storage = mbox->storage;
	struct sqlbox_save_context *ctx = t->save_ctx == NULL ? NULL :
		SQLBOX_SAVECTX(t->save_ctx);
	unsigned int save_count = ctx == NULL ? 0 : array_count(&ctx->mails);
	unsigned int change_count = !array_is_created(&st->changes) ? 0 :
		array_count(&st->changes);
	uint32_t first_uid, next_uid;
	uint64_t modseq;
	bool expunged = FALSE, wanted_uids;
	int ret;

	if (save_count == 0 && change_count == 0)
		return 0;

	if (sqlbox_storage_db_connect(storage) < 0 ||
	    sqlbox_db_begin(storage->db, TRUE) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Starting a transaction");
		return -1;
	}
	/* UIDs from the mailbox row: a range at once, unless some are asked
	   for (dsync) */
	wanted_uids = save_count > 0 && sqlbox_save_have_wanted_uids(ctx);
	ret = sqlbox_db_mailbox_change(storage->db, mbox->db_box.id,
				       wanted_uids ? 0 : save_count,
				       &first_uid, &modseq);
	if (ret <= 0) {
		sqlbox_db_rollback(storage->db);
		if (ret == 0) {
			mail_storage_set_error(t->box->storage,
				MAIL_ERROR_NOTFOUND,
				T_MAIL_ERR_MAILBOX_NOT_FOUND(t->box->vname));
		} else {
			sqlbox_mailbox_set_db_error(mbox, "Changing the mailbox");
		}
		return -1;
	}
	if (save_count > 0 && !wanted_uids) {
		/* (the wanted UIDs are all 0) */
		(void)sqlbox_save_assign_uids(ctx, first_uid);
	} else if (save_count > 0) {
		next_uid = sqlbox_save_assign_uids(ctx, first_uid);
		if (sqlbox_db_mailbox_raise_next_uid(storage->db,
						     mbox->db_box.id,
						     next_uid) < 0) {
			sqlbox_db_rollback(storage->db);
			sqlbox_mailbox_set_db_error(mbox, "Allocating UIDs");
			return -1;
		}
	}
	T_BEGIN {
		if (save_count > 0)
			ret = sqlbox_save_db_write(ctx, modseq);
		if (ret >= 0 && change_count > 0) {
			ret = sqlbox_changes_db_write(st, modseq, &expunged);
			if (ret < 0) {
				sqlbox_mailbox_set_db_error(mbox,
					"Updating messages");
			}
		}
		if (ret >= 0 && expunged &&
		    sqlbox_db_expunged_prune(storage->db, mbox->db_box.id,
					     storage->set.expunged_keep) < 0) {
			sqlbox_mailbox_set_db_error(mbox,
				"Pruning expunge records");
			ret = -1;
		}
	} T_END;
	if (ret < 0) {
		sqlbox_db_rollback(storage->db);
		return -1;
	}
	sqlbox_crash_point("commit-before");
	if (sqlbox_db_commit(storage->db) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Committing");
		return -1;
	}
	sqlbox_crash_point("commit-after");

	mbox->db_changed = TRUE;
	if (change_count > 0 && sqlbox_changes_have_pop3_uidls(st)) {
		/* read them again when asked */
		sqlbox_mailbox_strings_free(mbox);
	}
	if (ctx != NULL) {
		ctx->db_committed = TRUE;
		sqlbox_save_get_uids(ctx, &st->saved_uids);
		sqlbox_save_keep_min_modseqs(ctx);
	}
	return 0;
}

static void sqlbox_save_free(struct sqlbox_save_context *ctx)
{
	struct sqlbox_save_mail *mail;

	array_foreach_modifiable(&ctx->mails, mail)
		i_stream_unref(&mail->input);
	pool_unref(&ctx->pool);
	i_free(ctx);
}

int sqlbox_transaction_save_commit_pre(struct mail_save_context *_ctx)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);
	struct mailbox_transaction_context *t = _ctx->transaction;
	const struct sqlbox_save_mail *mails;
	unsigned int i, count;

	i_assert(ctx->finished);

	/* the messages are in the database: drop their temporary index
	   records (the last appends first); sync brings them in */
	mails = array_get(&ctx->mails, &count);
	for (i = count; i > 0; i--)
		mail_index_expunge(ctx->trans, mails[i-1].seq);
	if (count > 0)
		mail_cache_transaction_reset(t->cache_trans);

	if (ctx->db_committed && count > 0) {
		sqlbox_save_get_uids(ctx, &t->changes->saved_uids);
		t->changes->uid_validity = ctx->mbox->db_box.uidvalidity;
	}
	return 0;
}

void sqlbox_transaction_save_commit_post(struct mail_save_context *_ctx,
		struct mail_index_transaction_commit_result *result ATTR_UNUSED)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);

	_ctx->transaction = NULL; /* already freed */
	sqlbox_save_free(ctx);
}

void sqlbox_transaction_save_rollback(struct mail_save_context *_ctx)
{
	struct sqlbox_save_context *ctx = SQLBOX_SAVECTX(_ctx);

	if (!ctx->finished)
		sqlbox_save_cancel(_ctx);
	sqlbox_save_free(ctx);
}
