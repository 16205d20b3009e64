#ifndef SQLBOX_STORAGE_H
#define SQLBOX_STORAGE_H

#include "hash.h"
#include "index-storage.h"
#include "index-mail.h"
#include "mailbox-list-private.h"
#include "sqlbox-settings.h"
#include "sqlbox-db-mail.h"

#define SQLBOX_STORAGE_NAME "sqlbox"
/* layout under the mail location: mailboxes/<name>/sqlbox-index/ holds
   Dovecot's index files of each mailbox (a cache of the database) */
#define SQLBOX_MAILBOX_DIR_NAME "mailboxes"
#define SQLBOX_INDEX_DIR_NAME "sqlbox-index"
#define SQLBOX_SUBSCRIPTION_FILE_NAME "subscriptions"

/* index extension header: which database mailbox the index caches, and up
   to which of its modseqs */
struct sqlbox_index_header {
	uint64_t mailbox_id;
	uint64_t synced_modseq;
	uint32_t uidvalidity;
	uint32_t unused;
};

enum sqlbox_index_record_flags {
	/* the database has a POP3 UIDL for the message */
	SQLBOX_INDEX_RECORD_FLAG_POP3_UIDL = 0x01,
	/* the message's GUID isn't 128-bit (guid is its hash): the string
	   is in the database */
	SQLBOX_INDEX_RECORD_FLAG_GUID_STRING = 0x02,
};

/* index extension record: a message's immutable facts from the database */
struct sqlbox_index_record {
	uint64_t body_id;
	uint64_t physical_size;
	uint64_t virtual_size;
	uint32_t received_date;
	uint32_t save_date;
	guid_128_t guid;
	uint32_t pop3_order;
	uint32_t flags; /* enum sqlbox_index_record_flags */
};

struct sqlbox_storage {
	struct mail_storage storage;

	struct sqlbox_settings set;
	struct sqlbox_db *db;
	/* the namespace's list, whose directories follow the database */
	struct mailbox_list *list;
	/* for temporary files (mail_temp_dir) */
	const char *temp_prefix;
	int64_t user_id;
	/* mailbox directories were made to match the database */
	bool dirs_synced:1;
};

struct sqlbox_min_modseq {
	uint32_t uid;
	uint64_t modseq;
};

struct sqlbox_mailbox {
	struct mailbox box;
	struct sqlbox_storage *storage;

	uint32_t hdr_ext_id, rec_ext_id;
	/* the database row, as of open or the last sync */
	struct sqlbox_db_mailbox db_box;
	/* bodies read ahead when messages are read in order */
	uint32_t last_stream_seq, prefetched_until_seq;
	/* GUID strings and stored POP3 UIDLs (immutable), read from the
	   database in one query on first use, for UIDs below
	   strings_next_uid of database mailbox strings_mailbox_id */
	pool_t strings_pool;
	HASH_TABLE(void *, struct sqlbox_msg_strings *) strings;
	uint32_t strings_next_uid;
	int64_t strings_mailbox_id;
	/* saved here with a min_modseq (dsync) that the index hasn't got
	   yet: applied when sync adds them */
	ARRAY(struct sqlbox_min_modseq) min_modseqs;
	bool min_modseqs_sorted;
	/* this process committed changes the index doesn't have yet */
	bool db_changed:1;
	/* opened only to compare the index with the database for the
	   mailbox list index: a STATUS must still sync it */
	bool opened_for_list:1;
};

/* a flag, keyword or expunge change made in a transaction, written to the
   database at commit */
enum sqlbox_change_type {
	SQLBOX_CHANGE_FLAGS,
	SQLBOX_CHANGE_KEYWORDS,
	SQLBOX_CHANGE_EXPUNGE,
	/* pop3_save_uidl: store the UIDL POP3 showed (if none is stored) */
	SQLBOX_CHANGE_POP3_UIDL,
};

struct sqlbox_change {
	enum sqlbox_change_type type;
	enum modify_type modify_type;
	uint32_t uid;
	enum mail_flags flags;
	/* NULL-terminated, sorted (keyword changes) */
	const char *const *keywords;
	/* SQLBOX_CHANGE_POP3_UIDL */
	const char *pop3_uidl;
};

struct sqlbox_transaction_context {
	struct mailbox_transaction_context t;

	pool_t pool;
	ARRAY(struct sqlbox_change) changes;
	/* set by the commit: UIDs given to saved messages */
	ARRAY_TYPE(seq_range) saved_uids;
};

#define SQLBOX_STORAGE(s) (container_of(s, struct sqlbox_storage, storage))
#define SQLBOX_MAILBOX(s) (container_of(s, struct sqlbox_mailbox, box))
#define SQLBOX_TRANSACTION(s) \
	(container_of(s, struct sqlbox_transaction_context, t))

extern struct mail_storage sqlbox_storage;
extern struct mail_vfuncs sqlbox_mail_vfuncs;
extern struct event_category event_category_sqlbox;

/* sqlbox-storage.c */
void sqlbox_crash_point(const char *point);
int sqlbox_storage_db_connect(struct sqlbox_storage *storage);
/* Sets the storage error from the database's last error. */
void sqlbox_storage_set_db_error(struct sqlbox_storage *storage,
				 const char *what);
void sqlbox_mailbox_set_db_error(struct sqlbox_mailbox *mbox,
				 const char *what);
/* Reads the mailbox's row again into mbox->db_box (connecting first):
   0, or -1 with the error set (the mailbox marked deleted if its row is
   gone). */
int sqlbox_mailbox_refresh_db_box(struct sqlbox_mailbox *mbox);

/* sqlbox-mail.c */
struct sqlbox_msg_strings {
	const char *guid, *pop3_uidl;
};
void sqlbox_mailbox_strings_free(struct sqlbox_mailbox *mbox);
struct mail *
sqlbox_mail_alloc(struct mailbox_transaction_context *t,
		  enum mail_fetch_field wanted_fields,
		  struct mailbox_header_lookup_ctx *wanted_headers);
/* The message's record; NULL if there is none (a mail being saved). */
const struct sqlbox_index_record *sqlbox_mail_get_record(struct mail *mail);

/* sqlbox-save.c */
struct mail_save_context *
sqlbox_save_alloc(struct mailbox_transaction_context *t);
int sqlbox_save_begin(struct mail_save_context *ctx, struct istream *input);
int sqlbox_save_continue(struct mail_save_context *ctx);
int sqlbox_save_finish(struct mail_save_context *ctx);
void sqlbox_save_cancel(struct mail_save_context *ctx);
/* Writes the transaction's saves and changes to the database, in one
   database transaction. */
int sqlbox_transaction_db_commit(struct sqlbox_transaction_context *st);
int sqlbox_transaction_save_commit_pre(struct mail_save_context *ctx);
void sqlbox_transaction_save_commit_post(struct mail_save_context *ctx,
		struct mail_index_transaction_commit_result *result);
void sqlbox_transaction_save_rollback(struct mail_save_context *ctx);
/* A stream of the saved (finished) mail with this temporary sequence, or
   NULL. */
struct istream *
sqlbox_save_get_body(struct mail_save_context *ctx, uint32_t seq);
/* The messages saved and copied, in order: 0 if none. */
unsigned int sqlbox_save_get_count(struct mail_save_context *ctx);

/* sqlbox-copy.c */
int sqlbox_copy(struct mail_save_context *ctx, struct mail *mail);
/* Registers a database copy of src (same database) in the save context. */
void sqlbox_save_add_copy(struct mail_save_context *ctx,
			  struct sqlbox_mailbox *src_mbox, uint32_t src_uid);

/* sqlbox-sync.c */
enum sqlbox_sync_flags {
	/* look at the database even if nothing seems to have changed */
	SQLBOX_SYNC_FLAG_FORCE = 0x01,
	/* throw the index away and build it from the database */
	SQLBOX_SYNC_FLAG_REBUILD = 0x02,
};
int sqlbox_sync(struct sqlbox_mailbox *mbox, enum sqlbox_sync_flags flags);
struct mailbox_sync_context *
sqlbox_storage_sync_init(struct mailbox *box, enum mailbox_sync_flags flags);
void sqlbox_read_index_header(struct sqlbox_mailbox *mbox,
			      struct mail_index_view *view,
			      struct sqlbox_index_header *hdr_r);

/* sqlbox-sync-rebuild.c */
/* keyword sets met during a sync, by their names joined with spaces */
struct sqlbox_keyword_cache {
	struct mail_index *index;
	pool_t pool;
	HASH_TABLE(char *, struct mail_keywords *) sets;
};
void sqlbox_keyword_cache_init(struct sqlbox_keyword_cache *cache,
			       struct mail_index *index);
void sqlbox_keyword_cache_deinit(struct sqlbox_keyword_cache *cache);

/* Resets the index and fills it from the database. Called with the index
   locked (inside a sync). */
int sqlbox_sync_rebuild(struct sqlbox_mailbox *mbox);
/* Appends a database message to the index. */
void sqlbox_sync_add_message(struct sqlbox_mailbox *mbox,
			     struct mail_index_transaction *trans,
			     const struct sqlbox_db_message *msg,
			     struct sqlbox_keyword_cache *keywords);
/* Sets an existing index record's flags and keywords to the database's. */
void sqlbox_sync_update_message(struct sqlbox_mailbox *mbox,
				struct mail_index_transaction *trans,
				uint32_t seq,
				const struct sqlbox_db_message *msg,
				struct sqlbox_keyword_cache *keywords);

/* sqlbox-istream.c */
enum sqlbox_body_error {
	SQLBOX_BODY_ERROR_NONE = 0,
	/* the body doesn't match what was recorded when it was saved: its
	   size, its SHA-256, its data cut short or chunks missing */
	SQLBOX_BODY_ERROR_CORRUPT,
	/* the database is unavailable or busy, or the temporary file for
	   spooling it can't be written (disk full) */
	SQLBOX_BODY_ERROR_TEMP,
	SQLBOX_BODY_ERROR_INTERNAL,
};
/* An istream over a stored body, checked against its SHA-256 before any
   byte is returned. Returns 1 and the stream, 0 if the body doesn't exist
   (or owner's row no longer refers to it), -1 on error (*error_type_r and
   error_r say what). owner NULL: no check. */
int sqlbox_istream_open(struct sqlbox_db *db, int64_t body_id,
			const struct sqlbox_body_owner *owner,
			const char *temp_prefix, struct istream **input_r,
			enum sqlbox_body_error *error_type_r,
			const char **error_r);
void sqlbox_sha256(const void *data, size_t size,
		   unsigned char digest_r[SQLBOX_SHA256_SIZE]);

#endif
