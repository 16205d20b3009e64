#ifndef SQLBOX_DB_MAIL_H
#define SQLBOX_DB_MAIL_H

/* What sqlbox keeps in the database: users, mailboxes, messages, keywords,
   expunge records and bodies. Every SQL statement of sqlbox is in
   sqlbox-db-mail.c; the same text runs on SQLite and PostgreSQL.

   Every change to a mailbox (a new message, a flag or keyword change, an
   expunge) happens in a write transaction that first bumps the mailbox's
   modseq: that row lock orders the writers, and the rows they touch carry
   the new modseq, so that a sync asks for "everything since modseq N". An
   expunged message leaves a record (uid, modseq) in the expunged table;
   old records are pruned and the mailbox's expunge_floor says up to where,
   so that an index last synced before that is rebuilt instead. */

#include "seq-range-array.h"
#include "mail-types.h"
#include "sqlbox-db.h"

struct sqlbox_db_mailbox {
	int64_t id;
	guid_128_t guid;
	uint32_t uidvalidity;
	uint32_t next_uid;
	uint64_t modseq;
	uint64_t expunge_floor;
};

struct sqlbox_db_message {
	uint32_t uid;
	uint64_t modseq;
	int64_t body_id;
	guid_128_t guid;
	enum mail_flags flags;
	time_t received_date, save_date;
	uoff_t physical_size, virtual_size;
	uint32_t pop3_order;
	bool have_pop3_uidl;
	/* the stored GUID isn't a 128-bit one (e.g. a maildir file name
	   kept by dsync): guid is its hash, the string is in the database */
	bool guid_is_string;
	/* sorted, NULL-terminated; valid until the next _next() */
	const char *const *keywords;
};

struct sqlbox_db_new_message {
	/* before the commit: the UID asked for (dsync), or 0 */
	uint32_t uid;
	int64_t body_id;
	guid_128_t guid;
	/* the GUID as given when it isn't a 128-bit one, or NULL */
	const char *guid_str;
	enum mail_flags flags;
	/* NULL-terminated, or NULL */
	const char *const *keywords;
	time_t received_date, save_date;
	uoff_t physical_size, virtual_size;
	const char *pop3_uidl;
	uint32_t pop3_order;
	/* not stored: the lowest modseq the index is to give the message
	   (dsync), or 0 */
	uint64_t min_modseq;
};

struct sqlbox_db_msg_iter;

/* The user's id, creating the user's row if needed. */
int sqlbox_db_user_id(struct sqlbox_db *db, const char *username,
		      int64_t *user_id_r);

/* Returns 1 if found, 0 if not, -1 on error. */
int sqlbox_db_mailbox_lookup(struct sqlbox_db *db, int64_t user_id,
			     const char *name,
			     struct sqlbox_db_mailbox *mailbox_r);
int sqlbox_db_mailbox_get(struct sqlbox_db *db, int64_t mailbox_id,
			  struct sqlbox_db_mailbox *mailbox_r);
int sqlbox_db_mailbox_names(struct sqlbox_db *db, int64_t user_id,
			    pool_t pool, ARRAY_TYPE(const_string) *names);
/* guid may be empty (generated), uid_validity 0 (allocated). Returns 1 if
   created, 0 if the mailbox already exists. */
int sqlbox_db_mailbox_create(struct sqlbox_db *db, int64_t user_id,
			     const char *name, const guid_128_t guid,
			     uint32_t uid_validity, uint32_t min_next_uid,
			     struct sqlbox_db_mailbox *mailbox_r);
int sqlbox_db_mailbox_update(struct sqlbox_db *db, int64_t mailbox_id,
			     const guid_128_t guid, uint32_t uid_validity,
			     uint32_t min_next_uid);
/* Returns 1 if deleted, 0 if it still has messages. */
int sqlbox_db_mailbox_delete(struct sqlbox_db *db, int64_t mailbox_id);
/* Renames the mailbox and its children (names starting with old+sep).
   Returns 1 if renamed, 0 if the new name or a child of it exists. */
int sqlbox_db_mailbox_rename(struct sqlbox_db *db, int64_t user_id,
			     const char *old_name, const char *new_name,
			     char sep);

/* Messages with since_modseq < modseq <= upto_modseq in uid order, with
   their keywords; since_modseq=0 lists all. Run it inside a (read)
   transaction for a consistent view. */
struct sqlbox_db_msg_iter *
sqlbox_db_msg_iter_init(struct sqlbox_db *db, int64_t mailbox_id,
			uint64_t since_modseq, uint64_t upto_modseq);
int sqlbox_db_msg_iter_next(struct sqlbox_db_msg_iter *iter,
			    const struct sqlbox_db_message **msg_r);
int sqlbox_db_msg_iter_deinit(struct sqlbox_db_msg_iter **iter);

/* UIDs expunged with since_modseq < modseq <= upto_modseq. */
int sqlbox_db_expunged_uids(struct sqlbox_db *db, int64_t mailbox_id,
			    uint64_t since_modseq, uint64_t upto_modseq,
			    ARRAY_TYPE(seq_range) *uids);
/* The GUID strings (when not 128-bit) and stored POP3 UIDLs of the
   mailbox's messages with uid >= min_uid, in one query: callback is called
   for each message that has either (guid NULL if it's a 128-bit one). */
typedef void sqlbox_db_strings_callback_t(uint32_t uid, const char *guid,
					  const char *pop3_uidl,
					  void *context);
int sqlbox_db_message_strings(struct sqlbox_db *db, int64_t mailbox_id,
			      uint32_t min_uid,
			      sqlbox_db_strings_callback_t *callback,
			      void *context);
/* The same for one message; returns 1 if it exists, 0 if not. */
int sqlbox_db_message_get_strings(struct sqlbox_db *db, int64_t mailbox_id,
				  uint32_t uid, const char **guid_r,
				  const char **pop3_uidl_r);

/* Changes: inside a write transaction. First sqlbox_db_mailbox_change()
   bumps the mailbox's modseq and allocates uid_count UIDs (0: none,
   first_uid_r is then the next UID); returns 0 if the mailbox no longer
   exists. */
int sqlbox_db_mailbox_change(struct sqlbox_db *db, int64_t mailbox_id,
			     unsigned int uid_count, uint32_t *first_uid_r,
			     uint64_t *modseq_r);
/* Raises the mailbox's next UID to next_uid (after UIDs chosen by the
   caller, inside the transaction of sqlbox_db_mailbox_change()). */
int sqlbox_db_mailbox_raise_next_uid(struct sqlbox_db *db, int64_t mailbox_id,
				     uint32_t next_uid);
int sqlbox_db_message_insert(struct sqlbox_db *db, int64_t mailbox_id,
			     uint64_t modseq,
			     const struct sqlbox_db_new_message *msg);
/* Copies src_uid of src_mailbox_id (same user) into a new message with
   msg's uid, flags and keywords (and guid/dates/uidl when set there); the
   rest and the body come from the source. Returns 0 if the source is
   gone. */
int sqlbox_db_message_copy(struct sqlbox_db *db, int64_t mailbox_id,
			   uint64_t modseq, int64_t src_mailbox_id,
			   uint32_t src_uid,
			   const struct sqlbox_db_new_message *msg);
int sqlbox_db_messages_update_flags(struct sqlbox_db *db, int64_t mailbox_id,
				    uint64_t modseq,
				    const ARRAY_TYPE(seq_range) *uids,
				    enum mail_flags add,
				    enum mail_flags remove);
/* Adds or removes keywords; replace removes all others first. */
int sqlbox_db_messages_update_keywords(struct sqlbox_db *db,
				       int64_t mailbox_id, uint64_t modseq,
				       const ARRAY_TYPE(seq_range) *uids,
				       enum modify_type modify_type,
				       const char *const *keywords);
/* Stores a POP3 UIDL for the message unless it has one. */
int sqlbox_db_message_set_pop3_uidl(struct sqlbox_db *db, int64_t mailbox_id,
				    uint64_t modseq, uint32_t uid,
				    const char *pop3_uidl);
/* Returns the number of messages expunged. */
int sqlbox_db_messages_expunge(struct sqlbox_db *db, int64_t mailbox_id,
			       uint64_t modseq,
			       const ARRAY_TYPE(seq_range) *uids);
/* Prunes expunge records beyond the newest keep (when there are over twice
   as many) and raises the mailbox's expunge_floor. */
int sqlbox_db_expunged_prune(struct sqlbox_db *db, int64_t mailbox_id,
			     unsigned int keep);

#endif
