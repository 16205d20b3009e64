/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "istream.h"
#include "str.h"
#include "sort.h"
#include "hash.h"
#include "sqlbox-storage.h"

/* A message's facts (body id, sizes, dates, GUID) come from the index
   extension record that sync copied from the database; its body from the
   database. Flag, keyword and expunge changes are remembered in the
   transaction and written to the database at its commit, before the
   index. */

struct mail *
sqlbox_mail_alloc(struct mailbox_transaction_context *t,
		  enum mail_fetch_field wanted_fields,
		  struct mailbox_header_lookup_ctx *wanted_headers)
{
	struct index_mail *mail;
	pool_t pool;

	pool = pool_alloconly_create("mail", 2048);
	mail = p_new(pool, struct index_mail, 1);
	index_mail_init(mail, t, wanted_fields, wanted_headers, pool, NULL);
	return &mail->mail.mail;
}

const struct sqlbox_index_record *sqlbox_mail_get_record(struct mail *mail)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(mail->box);
	const void *data;
	bool expunged;

	if (mail->saving || mail->seq == 0)
		return NULL;
	mail_index_lookup_ext(mail->transaction->view, mail->seq,
			      mbox->rec_ext_id, &data, &expunged);
	if (data == NULL)
		return NULL;
	return data;
}

static int sqlbox_mail_no_record(struct mail *mail)
{
	mail_set_critical(mail, "sqlbox: The index has no record of "
			  "this message's database row");
	return -1;
}

static int sqlbox_mail_get_physical_size(struct mail *_mail, uoff_t *size_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct sqlbox_index_record *rec;

	if (mail->data.physical_size != UOFF_T_MAX) {
		*size_r = mail->data.physical_size;
		return 0;
	}
	if ((rec = sqlbox_mail_get_record(_mail)) == NULL) {
		if (_mail->saving)
			return index_mail_get_physical_size(_mail, size_r);
		return sqlbox_mail_no_record(_mail);
	}
	*size_r = mail->data.physical_size = rec->physical_size;
	return 0;
}

static int sqlbox_mail_get_virtual_size(struct mail *_mail, uoff_t *size_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct sqlbox_index_record *rec;

	if (mail->data.virtual_size != UOFF_T_MAX) {
		*size_r = mail->data.virtual_size;
		return 0;
	}
	if ((rec = sqlbox_mail_get_record(_mail)) == NULL) {
		if (_mail->saving)
			return index_mail_get_virtual_size(_mail, size_r);
		return sqlbox_mail_no_record(_mail);
	}
	*size_r = mail->data.virtual_size = rec->virtual_size;
	return 0;
}

static int sqlbox_mail_get_received_date(struct mail *_mail, time_t *date_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct sqlbox_index_record *rec;

	if ((rec = sqlbox_mail_get_record(_mail)) == NULL) {
		if (_mail->saving)
			return index_mail_get_received_date(_mail, date_r);
		return sqlbox_mail_no_record(_mail);
	}
	*date_r = mail->data.received_date = rec->received_date;
	return 0;
}

static int sqlbox_mail_get_save_date(struct mail *_mail, time_t *date_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct sqlbox_index_record *rec;

	if ((rec = sqlbox_mail_get_record(_mail)) == NULL) {
		if (_mail->saving)
			return index_mail_get_save_date(_mail, date_r);
		return sqlbox_mail_no_record(_mail);
	}
	*date_r = mail->data.save_date = rec->save_date;
	return 1;
}

void sqlbox_mailbox_strings_free(struct sqlbox_mailbox *mbox)
{
	if (mbox->strings_pool == NULL)
		return;
	hash_table_destroy(&mbox->strings);
	pool_unref(&mbox->strings_pool);
	mbox->strings_next_uid = 0;
}

static void
sqlbox_mailbox_strings_add(uint32_t uid, const char *guid,
			   const char *pop3_uidl, void *context)
{
	struct sqlbox_mailbox *mbox = context;
	struct sqlbox_msg_strings *strings;

	strings = p_new(mbox->strings_pool, struct sqlbox_msg_strings, 1);
	strings->guid = p_strdup(mbox->strings_pool, guid);
	strings->pop3_uidl = p_strdup(mbox->strings_pool, pop3_uidl);
	hash_table_update(mbox->strings, POINTER_CAST(uid), strings);
}

/* The GUID string (NULL if it's 128-bit) and stored POP3 UIDL (NULL if
   none) of the message. POP3's UIDL and dsync ask for every message in
   turn: the first one reads those of the whole mailbox in one query. */
static int
sqlbox_mail_get_strings(struct mail *mail, const char **guid_r,
			const char **pop3_uidl_r)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(mail->box);
	struct sqlbox_db *db = mbox->storage->db;
	const struct sqlbox_msg_strings *strings;
	uint32_t next_uid;
	int ret;

	if (mbox->strings_pool != NULL &&
	    mbox->strings_mailbox_id != mbox->db_box.id)
		sqlbox_mailbox_strings_free(mbox);
	if (mbox->strings_pool == NULL) {
		mbox->strings_pool = pool_alloconly_create(
			MEMPOOL_GROWING"sqlbox strings", 4096);
		hash_table_create_direct(&mbox->strings, mbox->strings_pool,
					 0);
		mbox->strings_next_uid = 1;
		mbox->strings_mailbox_id = mbox->db_box.id;
	}
	if (mail->uid >= mbox->strings_next_uid) {
		/* every row below the next UID of the last sync is
		   committed, so it's in this query's result */
		next_uid = I_MAX(mbox->db_box.next_uid, mail->uid + 1);
		if (sqlbox_storage_db_connect(mbox->storage) < 0 ||
		    sqlbox_db_message_strings(db, mbox->db_box.id,
					      mbox->strings_next_uid,
					      sqlbox_mailbox_strings_add,
					      mbox) < 0) {
			sqlbox_mailbox_set_db_error(mbox, "Reading GUIDs "
						    "and POP3 UIDLs");
			return -1;
		}
		mbox->strings_next_uid = next_uid;
	}
	strings = hash_table_lookup(mbox->strings, POINTER_CAST(mail->uid));
	if (strings != NULL) {
		*guid_r = strings->guid;
		*pop3_uidl_r = strings->pop3_uidl;
		return 0;
	}
	/* (e.g. a 32-character GUID string that isn't hex) */
	ret = sqlbox_db_message_get_strings(db, mbox->db_box.id, mail->uid,
					    guid_r, pop3_uidl_r);
	if (ret < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Reading a GUID or "
					    "POP3 UIDL");
		return -1;
	}
	if (ret == 0) {
		mail_set_expunged(mail);
		return -1;
	}
	return 0;
}

static int
sqlbox_mail_get_special(struct mail *_mail, enum mail_fetch_field field,
			const char **value_r)
{
	pool_t pool = ((struct mail_private *)_mail)->data_pool;
	const struct sqlbox_index_record *rec;
	const char *guid, *uidl;

	switch (field) {
	case MAIL_FETCH_GUID:
	case MAIL_FETCH_UIDL_BACKEND:
	case MAIL_FETCH_POP3_ORDER:
		break;
	default:
		return index_mail_get_special(_mail, field, value_r);
	}
	if ((rec = sqlbox_mail_get_record(_mail)) == NULL) {
		if (_mail->saving)
			return index_mail_get_special(_mail, field, value_r);
		return sqlbox_mail_no_record(_mail);
	}

	switch (field) {
	case MAIL_FETCH_GUID:
		/* (the value must live as long as the mail's data: dsync
		   keeps it across calls, data stack memory would be gone) */
		if ((rec->flags & SQLBOX_INDEX_RECORD_FLAG_GUID_STRING) == 0) {
			*value_r = p_strdup(pool, guid_128_to_string(rec->guid));
			return 0;
		}
		/* kept as given (dsync from maildir: its file name) */
		if (sqlbox_mail_get_strings(_mail, &guid, &uidl) < 0)
			return -1;
		*value_r = p_strdup(pool, guid != NULL ? guid :
				    guid_128_to_string(rec->guid));
		return 0;
	case MAIL_FETCH_UIDL_BACKEND:
		*value_r = "";
		if ((rec->flags & SQLBOX_INDEX_RECORD_FLAG_POP3_UIDL) == 0)
			return 0;
		/* a UIDL kept from a migration: in the database */
		if (sqlbox_mail_get_strings(_mail, &guid, &uidl) < 0)
			return -1;
		*value_r = uidl == NULL ? "" : p_strdup(pool, uidl);
		return 0;
	case MAIL_FETCH_POP3_ORDER:
		*value_r = rec->pop3_order == 0 ? "" :
			p_strdup(pool, dec2str(rec->pop3_order));
		return 0;
	default:
		i_unreached();
	}
}

#define SQLBOX_PREFETCH_MAX_COUNT 32
#define SQLBOX_PREFETCH_MAX_BYTES (4*1024*1024)

/* When messages are read one after another (POP3 RETR of every message,
   IMAP FETCH 1:* BODY[]), a backend that can (PostgreSQL) reads the
   following small bodies ahead, in one round trip. */
static void sqlbox_mail_prefetch(struct mail *mail)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(mail->box);
	struct mail_index_view *view = mail->transaction->view;
	const struct sqlbox_index_record *rec;
	const void *data;
	int64_t ids[SQLBOX_PREFETCH_MAX_COUNT];
	uint32_t seq, messages;
	unsigned int count = 0;
	uoff_t bytes = 0;
	bool expunged, sequential;

	/* two in a row: not for a client that reads one message */
	sequential = mbox->last_stream_seq != 0 &&
		mail->seq == mbox->last_stream_seq + 1;
	mbox->last_stream_seq = mail->seq;
	if (!sequential || mail->seq <= mbox->prefetched_until_seq ||
	    !sqlbox_db_can_prefetch(mbox->storage->db))
		return;

	messages = mail_index_view_get_messages_count(view);
	for (seq = mail->seq; seq <= messages &&
	     count < SQLBOX_PREFETCH_MAX_COUNT; seq++) {
		mail_index_lookup_ext(view, seq, mbox->rec_ext_id, &data,
				      &expunged);
		rec = data;
		if (rec == NULL || rec->physical_size > SQLBOX_BODY_CHUNK_SIZE)
			break;
		if (bytes + rec->physical_size > SQLBOX_PREFETCH_MAX_BYTES &&
		    count > 0)
			break;
		bytes += rec->physical_size;
		ids[count++] = rec->body_id;
	}
	if (count > 1) {
		sqlbox_db_body_prefetch(mbox->storage->db, mbox->db_box.id,
					ids, count);
		mbox->prefetched_until_seq = seq - 1;
	}
}

/* The one place a body read failure becomes the storage's error: the cause
   is logged with the mailbox and UID; a temporary one (database down,
   spool disk full) is MAIL_ERROR_TEMP, anything else (a corrupt body
   included) internal. */
static void
sqlbox_mail_set_body_error(struct mail *mail, enum sqlbox_body_error type,
			   const char *error)
{
	switch (type) {
	case SQLBOX_BODY_ERROR_TEMP:
		e_error(mail_event(mail), "sqlbox: uid %u: %s", mail->uid, error);
		mail_storage_set_error(mail->box->storage, MAIL_ERROR_TEMP,
			"Mail database temporarily unavailable, "
			"try again later");
		break;
	case SQLBOX_BODY_ERROR_CORRUPT:
	case SQLBOX_BODY_ERROR_INTERNAL:
	case SQLBOX_BODY_ERROR_NONE:
		mail_set_critical(mail, "sqlbox: uid %u: %s", mail->uid, error);
		break;
	}
}

static int
sqlbox_mail_get_stream(struct mail *_mail, bool get_body ATTR_UNUSED,
		       struct message_size *hdr_size,
		       struct message_size *body_size,
		       struct istream **stream_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(_mail->box);
	const struct sqlbox_index_record *rec;
	struct sqlbox_body_owner owner;
	struct istream *input;
	enum sqlbox_body_error error_type;
	const char *error;
	int ret;

	if (mail->data.stream == NULL) {
		if (_mail->saving) {
			/* the mail being saved: its body is still here */
			input = _mail->transaction->save_ctx == NULL ? NULL :
				sqlbox_save_get_body(_mail->transaction->save_ctx,
						     _mail->seq);
			if (input == NULL) {
				mail_set_critical(_mail, "sqlbox: The body of "
					"a mail is readable after its save");
				return -1;
			}
			mail->data.stream = input;
			/* (not an access to the storage) */
			_mail->mail_stream_accessed = TRUE;
			return index_mail_init_stream(mail, hdr_size,
						      body_size, stream_r);
		}
		if ((rec = sqlbox_mail_get_record(_mail)) == NULL)
			return sqlbox_mail_no_record(_mail);
		if (!mail_stream_access_start(_mail))
			return -1;
		if (sqlbox_storage_db_connect(mbox->storage) < 0) {
			sqlbox_mailbox_set_db_error(mbox,
				"Connecting to the database");
			return -1;
		}
		sqlbox_mail_prefetch(_mail);
		owner.mailbox_id = mbox->db_box.id;
		owner.uid = _mail->uid;
		ret = sqlbox_istream_open(mbox->storage->db, rec->body_id,
					  &owner,
					  mbox->storage->temp_prefix,
					  &input, &error_type, &error);
		if (ret == 0) {
			/* expunged meanwhile by another session */
			mail_set_expunged(_mail);
			return -1;
		}
		if (ret < 0) {
			sqlbox_mail_set_body_error(_mail, error_type, error);
			return -1;
		}
		mail->data.stream = input;
		if (mail->mail.v.istream_opened != NULL) {
			if (mail->mail.v.istream_opened(_mail,
							&mail->data.stream) < 0) {
				index_mail_close_streams(mail);
				return -1;
			}
		}
	}
	return index_mail_init_stream(mail, hdr_size, body_size, stream_r);
}

static struct sqlbox_change *
sqlbox_transaction_add_change(struct mail *mail, enum sqlbox_change_type type)
{
	struct sqlbox_transaction_context *st =
		SQLBOX_TRANSACTION(mail->transaction);
	struct sqlbox_change *change;

	if (st->pool == NULL) {
		st->pool = pool_alloconly_create("sqlbox changes", 1024);
		p_array_init(&st->changes, st->pool, 64);
	}
	change = array_append_space(&st->changes);
	change->type = type;
	change->uid = mail->uid;
	return change;
}

static void
sqlbox_mail_update_flags(struct mail *mail, enum modify_type modify_type,
			 enum mail_flags flags)
{
	struct sqlbox_change *change;

	if (!mail->saving && mail->uid != 0) {
		change = sqlbox_transaction_add_change(mail,
						       SQLBOX_CHANGE_FLAGS);
		change->modify_type = modify_type;
		change->flags = flags & MAIL_FLAGS_NONRECENT;
	}
	index_mail_update_flags(mail, modify_type, flags);
}

static void
sqlbox_mail_update_keywords(struct mail *mail, enum modify_type modify_type,
			    struct mail_keywords *keywords)
{
	struct sqlbox_transaction_context *st =
		SQLBOX_TRANSACTION(mail->transaction);
	const ARRAY_TYPE(keywords) *all_names;
	struct sqlbox_change *change;
	const char **names;
	unsigned int i;

	if (!mail->saving && mail->uid != 0) {
		change = sqlbox_transaction_add_change(mail,
						       SQLBOX_CHANGE_KEYWORDS);
		change->modify_type = modify_type;
		all_names = mail_index_get_keywords(mail->box->index);
		names = p_new(st->pool, const char *, keywords->count + 1);
		for (i = 0; i < keywords->count; i++) {
			names[i] = p_strdup(st->pool, array_idx_elem(all_names,
							keywords->idx[i]));
		}
		i_qsort(names, keywords->count, sizeof(*names), i_strcmp_p);
		change->keywords = names;
	}
	index_mail_update_keywords(mail, modify_type, keywords);
}

static void
sqlbox_mail_update_pop3_uidl(struct mail *mail, const char *uidl)
{
	struct sqlbox_transaction_context *st =
		SQLBOX_TRANSACTION(mail->transaction);
	struct sqlbox_change *change;

	if (mail->saving || mail->uid == 0)
		return;
	change = sqlbox_transaction_add_change(mail, SQLBOX_CHANGE_POP3_UIDL);
	change->pop3_uidl = p_strdup(st->pool, uidl);
}

static void sqlbox_mail_expunge(struct mail *mail)
{
	if (!mail->saving && mail->uid != 0)
		(void)sqlbox_transaction_add_change(mail, SQLBOX_CHANGE_EXPUNGE);
	index_mail_expunge(mail);
}

struct mail_vfuncs sqlbox_mail_vfuncs = {
	.close = index_mail_close,
	.free = index_mail_free,
	.set_seq = index_mail_set_seq,
	.set_uid = index_mail_set_uid,
	.set_uid_cache_updates = index_mail_set_uid_cache_updates,
	.prefetch = index_mail_prefetch,
	.precache = index_mail_precache,
	.add_temp_wanted_fields = index_mail_add_temp_wanted_fields,

	.get_flags = index_mail_get_flags,
	.get_keywords = index_mail_get_keywords,
	.get_keyword_indexes = index_mail_get_keyword_indexes,
	.get_modseq = index_mail_get_modseq,
	.get_pvt_modseq = index_mail_get_pvt_modseq,
	.get_parts = index_mail_get_parts,
	.get_date = index_mail_get_date,
	.get_received_date = sqlbox_mail_get_received_date,
	.get_save_date = sqlbox_mail_get_save_date,
	.get_virtual_size = sqlbox_mail_get_virtual_size,
	.get_physical_size = sqlbox_mail_get_physical_size,
	.get_first_header = index_mail_get_first_header,
	.get_headers = index_mail_get_headers,
	.get_header_stream = index_mail_get_header_stream,
	.get_stream = sqlbox_mail_get_stream,
	.get_binary_stream = index_mail_get_binary_stream,
	.get_special = sqlbox_mail_get_special,
	.get_backend_mail = index_mail_get_backend_mail,
	.update_flags = sqlbox_mail_update_flags,
	.update_keywords = sqlbox_mail_update_keywords,
	.update_modseq = index_mail_update_modseq,
	.update_pvt_modseq = index_mail_update_pvt_modseq,
	.update_pop3_uidl = sqlbox_mail_update_pop3_uidl,
	.expunge = sqlbox_mail_expunge,
	.set_cache_corrupted = index_mail_set_cache_corrupted,
	.istream_opened = index_mail_opened,
};
