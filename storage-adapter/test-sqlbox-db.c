/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "istream.h"
#include "str.h"
#include "unlink-directory.h"
#include "test-common.h"
#include "sqlbox-storage.h"

#include <unistd.h>
#include <sys/stat.h>

/* The SQLite backend and the SQL of sqlbox-db-mail.c, on a real database
   file: schema creation, the upgrade from version 1, refusal of a newer
   schema, message changes by modseq, expunge records and their pruning,
   bodies (streamed when large) and their checksum. */

#define TEST_DIR ".test-sqlbox-db"

static struct sqlbox_db *test_db_open(void)
{
	struct sqlbox_db_settings set = {
		.driver = SQLBOX_DB_DRIVER_SQLITE,
		.connect = TEST_DIR"/sqlbox.db",
		.fsync = FALSE,
		.lock_timeout_msecs = 1000,
	};
	return sqlbox_db_init(&set, NULL);
}

static void test_dir_reset(void)
{
	const char *error;

	if (unlink_directory(TEST_DIR, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0)
		i_fatal("%s", error);
	if (mkdir(TEST_DIR, 0700) < 0)
		i_fatal("mkdir("TEST_DIR") failed: %m");
}

static int64_t test_count(struct sqlbox_db *db, const char *sql)
{
	struct sqlbox_db_result *result;
	int64_t count;

	if (sqlbox_db_query_row(db, sql, NULL, 0, &result) <= 0)
		return -1;
	count = sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	return count;
}

static void test_sqlbox_schema_create(void)
{
	struct sqlbox_db *db;

	test_begin("sqlbox schema created at the current version");
	test_dir_reset();
	db = test_db_open();
	test_assert(sqlbox_db_connect(db) == 0);
	test_assert(db->schema_version == SQLBOX_SCHEMA_VERSION);
	test_assert(test_count(db, "SELECT version FROM sqlbox_schema") ==
		    SQLBOX_SCHEMA_VERSION);
	test_assert(test_count(db, "SELECT count(*) FROM sqlbox_schema") == 1);
	test_assert(test_count(db, "SELECT count(expunge_floor) "
			       "FROM mailboxes") == 0);
	sqlbox_db_deinit(&db);
	test_end();
}

static void test_sqlbox_schema_upgrade(void)
{
	struct sqlbox_db *db;
	struct sqlbox_db_mailbox box;
	int64_t user_id;

	test_begin("sqlbox schema upgraded from version 1");
	test_dir_reset();
	/* a database as version 1 created it, with data */
	db = test_db_open();
	db->connecting = TRUE;
	test_assert(db->v->connect(db) == 0);
	test_assert(sqlbox_schema_update(db, 1) == 0);
	test_assert(test_count(db, "SELECT version FROM sqlbox_schema") == 1);
	test_assert(sqlbox_db_exec(db, "INSERT INTO users (id, username) "
				   "VALUES (1, 'u')", NULL, 0) == 1);
	test_assert(sqlbox_db_exec(db, "INSERT INTO mailboxes (id, user_id, "
				   "name, guid, uidvalidity, next_uid, modseq) "
				   "VALUES (7, 1, 'INBOX', "
				   "'00112233445566778899aabbccddeeff', 1234, "
				   "5, 9)", NULL, 0) == 1);
	test_assert(sqlbox_db_exec(db, "INSERT INTO bodies (id, size, sha256, "
				   "data) VALUES (5, 1, x'00', 'x')",
				   NULL, 0) == 1);
	/* version 1 has no expunge_floor */
	test_assert(test_count(db, "SELECT expunge_floor FROM mailboxes") < 0);
	sqlbox_db_deinit(&db);

	/* the current code upgrades it in place, keeping everything */
	db = test_db_open();
	test_assert(sqlbox_db_connect(db) == 0);
	test_assert(test_count(db, "SELECT version FROM sqlbox_schema") ==
		    SQLBOX_SCHEMA_VERSION);
	test_assert(sqlbox_db_user_id(db, "u", &user_id) == 0 && user_id == 1);
	test_assert(sqlbox_db_mailbox_lookup(db, 1, "INBOX", &box) == 1);
	test_assert(box.id == 7 && box.uidvalidity == 1234 &&
		    box.next_uid == 5 && box.modseq == 9 &&
		    box.expunge_floor == 0);
	test_assert_strcmp(guid_128_to_string(box.guid),
			   "00112233445566778899aabbccddeeff");
	/* body ids continue above the existing ones, and one deleted isn't
	   given again */
	unsigned char sha[SQLBOX_SHA256_SIZE] = { 0 };
	struct istream *input = i_stream_create_from_data("abc", 3);
	int64_t body_id;
	test_assert(sqlbox_db_begin(db, TRUE) == 0);
	test_assert(sqlbox_db_body_write(db, input, 3, sha, &body_id) == 0);
	test_assert(body_id == 6);
	test_assert(sqlbox_db_exec(db, "DELETE FROM bodies WHERE id = 6",
				   NULL, 0) == 1);
	i_stream_seek(input, 0);
	test_assert(sqlbox_db_body_write(db, input, 3, sha, &body_id) == 0);
	test_assert(body_id == 7);
	test_assert(sqlbox_db_commit(db) == 0);
	i_stream_unref(&input);
	sqlbox_db_deinit(&db);
	test_end();
}

static void test_sqlbox_schema_newer_refused(void)
{
	struct sqlbox_db *db;
	const char *error;

	test_begin("sqlbox refuses a newer schema");
	test_dir_reset();
	db = test_db_open();
	test_assert(sqlbox_db_connect(db) == 0);
	test_assert(sqlbox_db_exec(db, "UPDATE sqlbox_schema SET version = 99",
				   NULL, 0) == 1);
	sqlbox_db_deinit(&db);

	db = test_db_open();
	test_assert(sqlbox_db_connect(db) < 0);
	test_assert(db->schema_refused);
	(void)sqlbox_db_get_error(db, &error);
	test_assert(strstr(error, "version 99 is newer") != NULL);
	/* and nothing else works either */
	test_assert(sqlbox_db_begin(db, TRUE) < 0);
	sqlbox_db_deinit(&db);
	test_end();
}

static void
test_msg_uids(struct sqlbox_db *db, int64_t mailbox_id, uint64_t since,
	      uint64_t upto, string_t *out)
{
	struct sqlbox_db_msg_iter *iter;
	const struct sqlbox_db_message *msg;
	const char *const *kw;

	str_truncate(out, 0);
	test_assert(sqlbox_db_begin(db, FALSE) == 0);
	iter = sqlbox_db_msg_iter_init(db, mailbox_id, since, upto);
	while (sqlbox_db_msg_iter_next(iter, &msg) > 0) {
		str_printfa(out, "%u:%u", msg->uid, (unsigned int)msg->flags);
		for (kw = msg->keywords; *kw != NULL; kw++)
			str_printfa(out, ":%s", *kw);
		str_append_c(out, ' ');
	}
	test_assert(sqlbox_db_msg_iter_deinit(&iter) == 0);
	sqlbox_db_rollback(db);
}

static void test_sqlbox_messages(void)
{
	static const char *const kw_a[] = { "$A", NULL };
	static const char *const kw_ab[] = { "$A", "$B", NULL };
	struct sqlbox_db *db;
	struct sqlbox_db_mailbox box;
	struct sqlbox_db_new_message msg;
	ARRAY_TYPE(seq_range) uids, expunged;
	string_t *out = t_str_new(128);
	guid_128_t empty_guid;
	int64_t user_id;
	uint32_t first_uid, uid;
	uint64_t modseq, modseq_saved;
	const char *body = "Subject: x\r\n\r\nbody\r\n";
	unsigned char sha[SQLBOX_SHA256_SIZE];
	struct istream *input;

	test_begin("sqlbox messages by modseq");
	test_dir_reset();
	db = test_db_open();
	test_assert(sqlbox_db_user_id(db, "u", &user_id) == 0);
	guid_128_empty(empty_guid);
	test_assert(sqlbox_db_mailbox_create(db, user_id, "INBOX", empty_guid,
					     0, 0, &box) == 1);
	test_assert(sqlbox_db_mailbox_create(db, user_id, "INBOX", empty_guid,
					     0, 0, &box) == 0);
	test_assert(sqlbox_db_mailbox_lookup(db, user_id, "INBOX", &box) == 1);
	test_assert(box.next_uid == 1 && box.uidvalidity != 0);

	/* five messages in one transaction */
	test_assert(sqlbox_db_begin(db, TRUE) == 0);
	test_assert(sqlbox_db_mailbox_change(db, box.id, 5, &first_uid,
					     &modseq) == 1);
	test_assert(first_uid == 1);
	sqlbox_sha256(body, strlen(body), sha);
	for (uid = 1; uid <= 5; uid++) {
		i_zero(&msg);
		msg.uid = uid;
		guid_128_generate(msg.guid);
		msg.flags = uid == 2 ? MAIL_SEEN : 0;
		msg.keywords = uid == 3 ? kw_ab : NULL;
		msg.physical_size = msg.virtual_size = strlen(body);
		input = i_stream_create_from_data(body, strlen(body));
		test_assert(sqlbox_db_body_write(db, input, strlen(body), sha,
						 &msg.body_id) == 0);
		i_stream_unref(&input);
		test_assert(sqlbox_db_message_insert(db, box.id, modseq,
						     &msg) == 0);
	}
	test_assert(sqlbox_db_commit(db) == 0);
	modseq_saved = modseq;
	test_msg_uids(db, box.id, 0, modseq, out);
	test_assert_strcmp(str_c(out), "1:0 2:8 3:0:$A:$B 4:0 5:0 ");

	/* flag and keyword changes on ranges, one modseq */
	t_array_init(&uids, 4);
	seq_range_array_add_range(&uids, 1, 2);
	test_assert(sqlbox_db_begin(db, TRUE) == 0);
	test_assert(sqlbox_db_mailbox_change(db, box.id, 0, &first_uid,
					     &modseq) == 1);
	test_assert(modseq == modseq_saved + 1);
	test_assert(sqlbox_db_messages_update_flags(db, box.id, modseq, &uids,
						    MAIL_FLAGGED, MAIL_SEEN) == 0);
	test_assert(sqlbox_db_messages_update_keywords(db, box.id, modseq,
						       &uids, MODIFY_ADD,
						       kw_a) == 0);
	array_clear(&uids);
	seq_range_array_add(&uids, 3);
	test_assert(sqlbox_db_messages_update_keywords(db, box.id, modseq,
						       &uids, MODIFY_REMOVE,
						       kw_a) == 0);
	test_assert(sqlbox_db_commit(db) == 0);
	/* only what changed since the save */
	test_msg_uids(db, box.id, modseq_saved, modseq, out);
	test_assert_strcmp(str_c(out), "1:2:$A 2:2:$A 3:0:$B ");

	/* expunges leave records; the rows and bodies go */
	for (uid = 2; uid <= 4; uid++) {
		array_clear(&uids);
		seq_range_array_add(&uids, uid);
		test_assert(sqlbox_db_begin(db, TRUE) == 0);
		test_assert(sqlbox_db_mailbox_change(db, box.id, 0, &first_uid,
						     &modseq) == 1);
		test_assert(sqlbox_db_messages_expunge(db, box.id, modseq,
						       &uids) == 1);
		test_assert(sqlbox_db_expunged_prune(db, box.id, 1) ==
			    (uid == 4 ? 1 : 0));
		test_assert(sqlbox_db_commit(db) == 0);
	}
	test_msg_uids(db, box.id, 0, modseq, out);
	test_assert_strcmp(str_c(out), "1:2:$A 5:0 ");
	test_assert(test_count(db, "SELECT count(*) FROM bodies") == 2);
	test_assert(test_count(db, "SELECT count(*) FROM keywords") == 1);
	/* 3 records, more than twice 1: pruned to the newest, and the
	   floor raised to the newest of the dropped */
	test_assert(test_count(db, "SELECT count(*) FROM expunged") == 1);
	test_assert(sqlbox_db_mailbox_get(db, box.id, &box) == 1);
	test_assert(box.expunge_floor == modseq - 1);
	t_array_init(&expunged, 4);
	test_assert(sqlbox_db_begin(db, FALSE) == 0);
	test_assert(sqlbox_db_expunged_uids(db, box.id, box.expunge_floor,
					    modseq, &expunged) == 0);
	sqlbox_db_rollback(db);
	test_assert(seq_range_count(&expunged) == 1 &&
		    seq_range_exists(&expunged, 4));

	/* a mailbox with messages isn't deleted */
	test_assert(sqlbox_db_mailbox_delete(db, box.id) == 0);
	sqlbox_db_deinit(&db);
	test_end();
}

static void test_sqlbox_mailbox_rename(void)
{
	struct sqlbox_db *db;
	struct sqlbox_db_mailbox box;
	guid_128_t guid;
	int64_t user_id;

	test_begin("sqlbox mailbox rename");
	test_dir_reset();
	db = test_db_open();
	test_assert(sqlbox_db_user_id(db, "u", &user_id) == 0);
	guid_128_empty(guid);
	test_assert(sqlbox_db_mailbox_create(db, user_id, "a", guid, 0, 0,
					     &box) == 1);
	test_assert(sqlbox_db_mailbox_create(db, user_id, "a/b", guid, 0, 0,
					     &box) == 1);
	test_assert(sqlbox_db_mailbox_create(db, user_id, "ab", guid, 0, 0,
					     &box) == 1);
	test_assert(sqlbox_db_mailbox_create(db, user_id, "c/x", guid, 0, 0,
					     &box) == 1);
	/* the target or a child of it exists */
	test_assert(sqlbox_db_mailbox_rename(db, user_id, "a", "ab", '/') == 0);
	test_assert(sqlbox_db_mailbox_rename(db, user_id, "a", "c", '/') == 0);
	test_assert(sqlbox_db_mailbox_rename(db, user_id, "a", "d", '/') == 1);
	test_assert(sqlbox_db_mailbox_lookup(db, user_id, "d", &box) == 1);
	test_assert(sqlbox_db_mailbox_lookup(db, user_id, "d/b", &box) == 1);
	/* "ab" only shares a prefix */
	test_assert(sqlbox_db_mailbox_lookup(db, user_id, "ab", &box) == 1);
	test_assert(sqlbox_db_mailbox_lookup(db, user_id, "a/b", &box) == 0);
	sqlbox_db_deinit(&db);
	test_end();
}

static void test_body(struct sqlbox_db *db, size_t size)
{
	unsigned char sha[SQLBOX_SHA256_SIZE];
	struct istream *input;
	const unsigned char *data;
	buffer_t *body, *read_back;
	const char *error;
	enum sqlbox_body_error error_type;
	int64_t body_id;
	size_t i, n;

	body = buffer_create_dynamic(default_pool, size);
	for (i = 0; i < size; i++)
		buffer_append_c(body, 'a' + (i * 7 + i / 1000) % 26);
	sqlbox_sha256(body->data, body->used, sha);
	input = i_stream_create_from_data(body->data, body->used);
	test_assert(sqlbox_db_begin(db, TRUE) == 0);
	test_assert(sqlbox_db_body_write(db, input, size, sha,
					 &body_id) == 0);
	test_assert(sqlbox_db_commit(db) == 0);
	i_stream_unref(&input);

	test_assert(sqlbox_istream_open(db, body_id, NULL, NULL, &input, &error_type,
					&error) == 1);
	read_back = buffer_create_dynamic(default_pool, size);
	while (i_stream_read_more(input, &data, &n) > 0) {
		buffer_append(read_back, data, n);
		i_stream_skip(input, n);
	}
	test_assert(input->stream_errno == 0);
	test_assert(buffer_cmp(body, read_back));
	/* seekable */
	i_stream_seek(input, size / 2);
	test_assert(i_stream_read_more(input, &data, &n) > 0 &&
		    data[0] == ((const unsigned char *)body->data)[size / 2]);
	i_stream_unref(&input);

	/* damage one byte: never served */
	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(body_id),
		SQLBOX_INT(size / 3 + 1),
	};
	test_assert(sqlbox_db_exec(db, "UPDATE bodies SET data = CAST("
		"substr(data, 1, $2 - 1) || 'Z' || substr(data, $2 + 1) "
		"AS BLOB) WHERE id = $1", params, N_ELEMENTS(params)) == 1);
	test_assert(sqlbox_istream_open(db, body_id, NULL, NULL, &input, &error_type,
					&error) == -1);
	test_assert(error_type == SQLBOX_BODY_ERROR_CORRUPT);
	test_assert(strstr(error, "SHA-256") != NULL);

	/* a missing body is "expunged" */
	test_assert(sqlbox_istream_open(db, body_id + 1000, NULL, NULL, &input, &error_type,
					&error) == 0);
	buffer_free(&body);
	buffer_free(&read_back);
}

static void test_sqlbox_bodies(void)
{
	struct sqlbox_db *db;

	test_begin("sqlbox bodies small and large");
	test_dir_reset();
	db = test_db_open();
	test_assert(sqlbox_db_connect(db) == 0);
	test_body(db, 10);
	test_body(db, 3 * SQLBOX_BODY_CHUNK_SIZE + 12345);
	sqlbox_db_deinit(&db);
	test_end();
}

static struct ioloop *test_ioloop;

static void test_sqlbox_init(void)
{
	test_ioloop = io_loop_create();
}

static void test_sqlbox_deinit(void)
{
	const char *error;

	sqlbox_db_sqlite_cache_clear();
	(void)unlink_directory(TEST_DIR, UNLINK_DIRECTORY_FLAG_RMDIR, &error);
	io_loop_destroy(&test_ioloop);
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_sqlbox_init,
		test_sqlbox_schema_create,
		test_sqlbox_schema_upgrade,
		test_sqlbox_schema_newer_refused,
		test_sqlbox_messages,
		test_sqlbox_mailbox_rename,
		test_sqlbox_bodies,
		test_sqlbox_deinit,
		NULL
	};
	return test_run(test_functions);
}
