/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* sqlbox rows read back from a damaged database
   (storage-adapter/sqlbox-db-mail.c, sqlbox-db-sqlite.c, sqlbox-istream.c):
   a SQLite file with a user, two mailboxes, messages, keywords, expunge
   records and bodies (one of them large) is made once; each input is a
   list of changes to its rows (any column of any table set to an integer,
   text, blob or NULL, rows deleted or added) made inside a transaction,
   after which everything is read back the way the storage reads it -
   mailboxes, the messages with their keywords and POP3 UIDLs, expunge
   records, the bodies through the checked istream - and the transaction
   is rolled back. A corrupt database must give errors, never a crash.
   (An input starting with 'L' also reads the 1 MB body, which is slow.) */

#include "fuzz-common.h"
#include "hash.h"
#include "istream.h"
#include "unlink-directory.h"
#include "sqlbox-db.h"
#include "sqlbox-db-mail.h"
#include "sqlbox-storage.h"

#include <sys/stat.h>

static const char *fuzz_dir;
static struct sqlbox_db *fuzz_db;
/* sqlbox caches prepared statements by the SQL's address (its SQL is all
   static strings): the same text must always come at the same address */
static HASH_TABLE(char *, char *) fuzz_sql;

static const char *fuzz_sql_intern(const char *sql)
{
	char *copy = hash_table_lookup(fuzz_sql, sql);

	if (copy == NULL) {
		copy = i_strdup(sql);
		hash_table_insert(fuzz_sql, copy, copy);
	}
	return copy;
}

struct fuzz_table {
	const char *name;
	const char *const *columns;
};

static const char *const users_cols[] = { "id", "username",
	"last_uidvalidity", NULL };
static const char *const mailboxes_cols[] = { "id", "user_id", "name",
	"guid", "uidvalidity", "next_uid", "modseq", "expunge_floor", NULL };
static const char *const bodies_cols[] = { "id", "size", "sha256", "data",
	NULL };
static const char *const messages_cols[] = { "mailbox_id", "uid", "modseq",
	"body_id", "guid", "flags", "received_date", "save_date",
	"physical_size", "virtual_size", "pop3_uidl", "pop3_order", NULL };
static const char *const keywords_cols[] = { "mailbox_id", "uid", "name",
	NULL };
static const char *const expunged_cols[] = { "mailbox_id", "uid", "modseq",
	NULL };
static const char *const schema_cols[] = { "version", NULL };
static const char *const body_ids_cols[] = { "last", NULL };

static const struct fuzz_table tables[] = {
	{ "users", users_cols },
	{ "mailboxes", mailboxes_cols },
	{ "bodies", bodies_cols },
	{ "messages", messages_cols },
	{ "keywords", keywords_cols },
	{ "expunged", expunged_cols },
	{ "sqlbox_schema", schema_cols },
	{ "body_ids", body_ids_cols },
};

static void fuzz_setup_db(void)
{
	static const char *const kw[] = { "$Label1", "Junk", NULL };
	struct sqlbox_db_settings set = {
		.driver = SQLBOX_DB_DRIVER_SQLITE,
		.fsync = FALSE,
		.lock_timeout_msecs = 1000,
	};
	struct sqlbox_db_mailbox box;
	struct sqlbox_db_new_message msg;
	struct istream *input;
	unsigned char sha[SQLBOX_SHA256_SIZE];
	guid_128_t empty;
	int64_t user_id;
	uint32_t first_uid, uid;
	uint64_t modseq;
	unsigned int i;
	string_t *large = t_str_new(SQLBOX_BODY_CHUNK_SIZE + 65536);
	const char *small = "Subject: x\r\n\r\nbody\r\n";
	ARRAY_TYPE(seq_range) uids;

	set.connect = t_strconcat(fuzz_dir, "/sqlbox.db", NULL);
	fuzz_db = sqlbox_db_init(&set, NULL);
	if (sqlbox_db_user_id(fuzz_db, "u", &user_id) < 0)
		i_fatal("user_id failed");
	guid_128_empty(empty);
	for (i = 0; i < 2; i++) {
		if (sqlbox_db_mailbox_create(fuzz_db, user_id,
					     i == 0 ? "INBOX" : "Archive/Sub",
					     empty, 0, 0, &box) != 1)
			i_fatal("mailbox_create failed");
	}
	if (sqlbox_db_mailbox_lookup(fuzz_db, user_id, "INBOX", &box) != 1)
		i_fatal("mailbox_lookup failed");
	str_append(large, "Subject: large\r\n\r\n");
	/* over SQLBOX_BODY_CHUNK_SIZE: stored and read in chunks */
	while (str_len(large) <= SQLBOX_BODY_CHUNK_SIZE)
		str_append(large, "0123456789abcdef0123456789abcdef\r\n");

	if (sqlbox_db_begin(fuzz_db, TRUE) < 0 ||
	    sqlbox_db_mailbox_change(fuzz_db, box.id, 4, &first_uid,
				     &modseq) != 1)
		i_fatal("mailbox_change failed");
	for (uid = first_uid; uid < first_uid + 4; uid++) {
		const char *body = uid == first_uid + 3 ? str_c(large) : small;
		size_t size = strlen(body);

		i_zero(&msg);
		msg.uid = uid;
		guid_128_generate(msg.guid);
		msg.flags = uid % 2 == 0 ? MAIL_SEEN : 0;
		msg.keywords = uid == first_uid + 1 ? kw : NULL;
		msg.physical_size = msg.virtual_size = size;
		msg.received_date = msg.save_date = 1700000000 + uid;
		msg.pop3_uidl = uid == first_uid ? "uidl-1" : NULL;
		sqlbox_sha256(body, size, sha);
		input = i_stream_create_from_data(body, size);
		if (sqlbox_db_body_write(fuzz_db, input, size, sha,
					 &msg.body_id) < 0 ||
		    sqlbox_db_message_insert(fuzz_db, box.id, modseq,
					     &msg) < 0)
			i_fatal("message insert failed");
		i_stream_unref(&input);
	}
	if (sqlbox_db_commit(fuzz_db) < 0)
		i_fatal("commit failed");
	/* an expunge record */
	t_array_init(&uids, 2);
	seq_range_array_add(&uids, first_uid + 2);
	if (sqlbox_db_begin(fuzz_db, TRUE) < 0 ||
	    sqlbox_db_mailbox_change(fuzz_db, box.id, 0, &first_uid,
				     &modseq) != 1 ||
	    sqlbox_db_messages_expunge(fuzz_db, box.id, modseq, &uids) < 0 ||
	    sqlbox_db_commit(fuzz_db) < 0)
		i_fatal("expunge failed");
}

/* the scratch dir goes when the fuzzer exits normally (a crash leaves it
   for a look) */
static void fuzz_remove_dir(void)
{
	const char *error;

	(void)unlink_directory(fuzz_dir, UNLINK_DIRECTORY_FLAG_RMDIR, &error);
}

int LLVMFuzzerInitialize(int *argc ATTR_UNUSED, char ***argv ATTR_UNUSED)
{
	char tmpl[] = "/tmp/pop3ext-fuzz-sqlbox.XXXXXX";

	fuzz_init();
	if (mkdtemp(tmpl) == NULL)
		i_fatal("mkdtemp() failed: %m");
	fuzz_dir = i_strdup(tmpl);
	atexit(fuzz_remove_dir);
	hash_table_create(&fuzz_sql, default_pool, 0, str_hash, strcmp);
	T_BEGIN {
		fuzz_setup_db();
	} T_END;
	return 0;
}

struct fuzz_input {
	const uint8_t *data;
	size_t size, pos;
};

static bool fuzz_byte(struct fuzz_input *in, uint8_t *b_r)
{
	if (in->pos >= in->size)
		return FALSE;
	*b_r = in->data[in->pos++];
	return TRUE;
}

static struct sqlbox_db_param fuzz_param(struct fuzz_input *in)
{
	uint8_t kind = 0, len = 0;
	uint64_t v = 0;
	unsigned int i;
	const void *p;

	(void)fuzz_byte(in, &kind);
	switch (kind % 4) {
	case 0:
		for (i = 0; i < 8 && in->pos < in->size; i++)
			v = (v << 8) | in->data[in->pos++];
		/* small numbers matter most: keep some */
		if (kind & 0x80)
			return SQLBOX_INT((int8_t)v);
		return SQLBOX_INT((int64_t)v);
	case 1:
	case 2:
		(void)fuzz_byte(in, &len);
		if (len > in->size - in->pos)
			len = in->size - in->pos;
		p = in->data + in->pos;
		in->pos += len;
		if (kind % 4 == 1)
			return (struct sqlbox_db_param){
				.type = SQLBOX_DB_PARAM_TEXT,
				.data = p, .size = len };
		return SQLBOX_BLOB(p, len);
	default:
		return SQLBOX_NULL;
	}
}

static void fuzz_change(struct fuzz_input *in)
{
	const struct fuzz_table *table;
	struct sqlbox_db_param params[3];
	uint8_t op, t, c, row;
	unsigned int ncols;

	if (!fuzz_byte(in, &op) || !fuzz_byte(in, &t) || !fuzz_byte(in, &c) ||
	    !fuzz_byte(in, &row))
		return;
	table = &tables[t % N_ELEMENTS(tables)];
	ncols = str_array_length(table->columns);
	switch (op % 4) {
	case 0:
	case 1:
		/* one column of the rows whose first column (mod 4) matches,
		   or of every row */
		params[0] = fuzz_param(in);
		params[1] = SQLBOX_INT(row % 5);
		(void)sqlbox_db_exec(fuzz_db, fuzz_sql_intern(t_strdup_printf(
			"UPDATE %s SET %s = $1 WHERE %s %% 4 = $2 OR $2 = 4",
			table->name, table->columns[c % ncols],
			table->columns[0])), params, 2);
		break;
	case 2:
		(void)sqlbox_db_exec(fuzz_db, fuzz_sql_intern(t_strdup_printf(
			"DELETE FROM %s WHERE %s %% 4 = $1", table->name,
			table->columns[c % ncols])),
			(struct sqlbox_db_param[]){ SQLBOX_INT(row % 4) }, 1);
		break;
	default:
		/* a copy of a row with one column changed */
		params[0] = fuzz_param(in);
		(void)sqlbox_db_exec(fuzz_db, fuzz_sql_intern(t_strdup_printf(
			"INSERT OR IGNORE INTO %s SELECT * FROM %s LIMIT 1",
			table->name, table->name)), NULL, 0);
		(void)sqlbox_db_exec(fuzz_db, fuzz_sql_intern(t_strdup_printf(
			"UPDATE %s SET %s = $1 WHERE rowid = (SELECT max(rowid) "
			"FROM %s)", table->name, table->columns[c % ncols],
			table->name)), params, 1);
		break;
	}
}

/* reading the 1 MB body costs milliseconds: only for inputs that start
   with 'L' */
static bool fuzz_read_large;

static void fuzz_read_body(int64_t mailbox_id, uint32_t uid,
			   int64_t body_id, uoff_t body_size)
{
	const struct sqlbox_body_owner owner = {
		.mailbox_id = mailbox_id,
		.uid = uid,
	};
	struct istream *input;
	const unsigned char *data;
	enum sqlbox_body_error error_type;
	const char *error;
	size_t size;

	if (body_size > 65536 && !fuzz_read_large)
		return;
	if (sqlbox_istream_open(fuzz_db, body_id, &owner, NULL, &input,
				&error_type, &error) <= 0)
		return;
	while (i_stream_read_more(input, &data, &size) > 0)
		i_stream_skip(input, size);
	i_stream_unref(&input);
}

static void fuzz_read_all(void)
{
	ARRAY_TYPE(const_string) names;
	ARRAY_TYPE(seq_range) expunged;
	const char *const *name, *guid, *uidl;
	struct sqlbox_db_mailbox box;
	struct sqlbox_db_msg_iter *iter;
	const struct sqlbox_db_message *msg;
	pool_t pool = pool_datastack_create();
	int64_t user_id;
	unsigned int n;

	if (sqlbox_db_user_id(fuzz_db, "u", &user_id) < 0)
		return;
	t_array_init(&names, 4);
	if (sqlbox_db_mailbox_names(fuzz_db, user_id, pool, &names) < 0)
		return;
	array_foreach(&names, name) {
		if (sqlbox_db_mailbox_lookup(fuzz_db, user_id, *name,
					     &box) <= 0)
			continue;
		(void)sqlbox_db_mailbox_get(fuzz_db, box.id, &box);
		iter = sqlbox_db_msg_iter_init(fuzz_db, box.id, 0,
					       (uint64_t)INT64_MAX);
		n = 0;
		while (sqlbox_db_msg_iter_next(iter, &msg) > 0 && n++ < 64) {
			(void)sqlbox_db_message_get_strings(fuzz_db, box.id,
							    msg->uid, &guid,
							    &uidl);
			fuzz_read_body(box.id, msg->uid, msg->body_id,
				       msg->physical_size);
		}
		(void)sqlbox_db_msg_iter_deinit(&iter);
		t_array_init(&expunged, 4);
		(void)sqlbox_db_expunged_uids(fuzz_db, box.id, 0,
					      (uint64_t)INT64_MAX, &expunged);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { .data = data, .size = size };
	unsigned int changes = 0;

	fuzz_read_large = size > 0 && data[0] == 'L';
	T_BEGIN {
		if (sqlbox_db_begin(fuzz_db, TRUE) == 0) {
			while (in.pos < in.size && changes++ < 16)
				fuzz_change(&in);
			fuzz_read_all();
			sqlbox_db_rollback(fuzz_db);
		}
		sqlbox_db_clear_error(fuzz_db);
	} T_END;
	return 0;
}
