/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "mail-storage.h"
#include "sqlbox-db-mail.h"

struct sqlbox_db_msg_iter {
	struct sqlbox_db *db;
	struct sqlbox_db_result *msgs, *keywords;
	pool_t pool;
	ARRAY_TYPE(const_string) keyword_names;
	struct sqlbox_db_message msg;
	/* the keyword result stands at a row not yet consumed */
	bool keyword_pending;
	bool keywords_done;
	bool failed;
};

/* Returns TRUE if str is a 128-bit GUID, FALSE if it was hashed. */
static bool
sqlbox_db_guid_parse(const char *str, guid_128_t guid_r)
{
	if (str == NULL || guid_128_from_string(str, guid_r) < 0) {
		/* not one of ours: hash it the way Dovecot does */
		mail_generate_guid_128_hash(str == NULL ? "" : str, guid_r);
		return FALSE;
	}
	return TRUE;
}

int sqlbox_db_user_id(struct sqlbox_db *db, const char *username,
		      int64_t *user_id_r)
{
	struct sqlbox_db_result *result;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_TEXT(username),
	};
	ret = sqlbox_db_query_row(db, "SELECT id FROM users "
				  "WHERE username = $1", params,
				  N_ELEMENTS(params), &result);
	if (ret == 0) {
		if (sqlbox_db_exec(db, "INSERT INTO users (username) "
				   "VALUES ($1) ON CONFLICT DO NOTHING",
				   params, N_ELEMENTS(params)) < 0)
			return -1;
		ret = sqlbox_db_query_row(db, "SELECT id FROM users "
					  "WHERE username = $1", params,
					  N_ELEMENTS(params), &result);
	}
	if (ret < 0)
		return -1;
	if (ret == 0) {
		sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
				    "User row vanished after insert");
		return -1;
	}
	*user_id_r = sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	return 0;
}

#define SQLBOX_MAILBOX_COLUMNS \
	"id, guid, uidvalidity, next_uid, modseq, expunge_floor"

static void
sqlbox_db_mailbox_read(struct sqlbox_db_result *result,
		       struct sqlbox_db_mailbox *mailbox_r)
{
	i_zero(mailbox_r);
	mailbox_r->id = sqlbox_db_result_int(result, 0);
	sqlbox_db_guid_parse(sqlbox_db_result_text(result, 1),
			     mailbox_r->guid);
	mailbox_r->uidvalidity = sqlbox_db_result_int(result, 2);
	mailbox_r->next_uid = sqlbox_db_result_int(result, 3);
	mailbox_r->modseq = sqlbox_db_result_int(result, 4);
	mailbox_r->expunge_floor = sqlbox_db_result_int(result, 5);
}

int sqlbox_db_mailbox_lookup(struct sqlbox_db *db, int64_t user_id,
			     const char *name,
			     struct sqlbox_db_mailbox *mailbox_r)
{
	struct sqlbox_db_result *result;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(user_id),
		SQLBOX_TEXT(name),
	};
	ret = sqlbox_db_query_row(db, "SELECT "SQLBOX_MAILBOX_COLUMNS
				  " FROM mailboxes WHERE user_id = $1 "
				  "AND name = $2", params, N_ELEMENTS(params),
				  &result);
	if (ret <= 0)
		return ret;
	sqlbox_db_mailbox_read(result, mailbox_r);
	sqlbox_db_result_free(&result);
	return 1;
}

int sqlbox_db_mailbox_get(struct sqlbox_db *db, int64_t mailbox_id,
			  struct sqlbox_db_mailbox *mailbox_r)
{
	struct sqlbox_db_result *result;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
	};
	ret = sqlbox_db_query_row(db, "SELECT "SQLBOX_MAILBOX_COLUMNS
				  " FROM mailboxes WHERE id = $1", params,
				  N_ELEMENTS(params), &result);
	if (ret <= 0)
		return ret;
	sqlbox_db_mailbox_read(result, mailbox_r);
	sqlbox_db_result_free(&result);
	return 1;
}

int sqlbox_db_mailbox_names(struct sqlbox_db *db, int64_t user_id,
			    pool_t pool, ARRAY_TYPE(const_string) *names)
{
	struct sqlbox_db_result *result;
	const char *name;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(user_id),
	};
	if (sqlbox_db_query(db, "SELECT name FROM mailboxes "
			    "WHERE user_id = $1 ORDER BY name", params,
			    N_ELEMENTS(params), &result) < 0)
		return -1;
	while ((ret = sqlbox_db_result_next(result)) > 0) {
		name = p_strdup(pool, sqlbox_db_result_text(result, 0));
		array_push_back(names, &name);
	}
	sqlbox_db_result_free(&result);
	return ret;
}

static int
sqlbox_db_next_uidvalidity(struct sqlbox_db *db, int64_t user_id,
			   uint32_t *uid_validity_r)
{
	struct sqlbox_db_result *result;
	int ret;

	/* like Dovecot's: the time, but always above the previous one, so
	   that a mailbox deleted and created again in the same second gets
	   a new UIDVALIDITY */
	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(user_id),
		SQLBOX_INT(ioloop_time),
	};
	ret = sqlbox_db_query_row(db, "UPDATE users SET last_uidvalidity = "
		"CASE WHEN last_uidvalidity >= $2 THEN last_uidvalidity + 1 "
		"ELSE $2 END WHERE id = $1 RETURNING last_uidvalidity",
		params, N_ELEMENTS(params), &result);
	if (ret < 0)
		return -1;
	if (ret == 0) {
		sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
				    "User %"PRId64" doesn't exist", user_id);
		return -1;
	}
	*uid_validity_r = (uint32_t)sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	if (*uid_validity_r == 0)
		*uid_validity_r = 1;
	return 0;
}

int sqlbox_db_mailbox_create(struct sqlbox_db *db, int64_t user_id,
			     const char *name, const guid_128_t guid,
			     uint32_t uid_validity, uint32_t min_next_uid,
			     struct sqlbox_db_mailbox *mailbox_r)
{
	struct sqlbox_db_result *result;
	guid_128_t new_guid;
	int ret;

	if (sqlbox_db_begin(db, TRUE) < 0)
		return -1;
	if (uid_validity == 0 &&
	    sqlbox_db_next_uidvalidity(db, user_id, &uid_validity) < 0) {
		sqlbox_db_rollback(db);
		return -1;
	}
	if (guid_128_is_empty(guid))
		guid_128_generate(new_guid);
	else
		guid_128_copy(new_guid, guid);

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(user_id),
		SQLBOX_TEXT(name),
		SQLBOX_TEXT(guid_128_to_string(new_guid)),
		SQLBOX_INT(uid_validity),
		SQLBOX_INT(I_MAX(min_next_uid, 1)),
	};
	ret = sqlbox_db_query_row(db, "INSERT INTO mailboxes "
		"(user_id, name, guid, uidvalidity, next_uid) "
		"VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING "
		"RETURNING "SQLBOX_MAILBOX_COLUMNS, params,
		N_ELEMENTS(params), &result);
	if (ret < 0) {
		sqlbox_db_rollback(db);
		return -1;
	}
	if (ret > 0) {
		sqlbox_db_mailbox_read(result, mailbox_r);
		sqlbox_db_result_free(&result);
	}
	if (sqlbox_db_commit(db) < 0)
		return -1;
	return ret;
}

int sqlbox_db_mailbox_update(struct sqlbox_db *db, int64_t mailbox_id,
			     const guid_128_t guid, uint32_t uid_validity,
			     uint32_t min_next_uid)
{
	int ret = 0;

	if (sqlbox_db_begin(db, TRUE) < 0)
		return -1;
	if (!guid_128_is_empty(guid)) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_TEXT(guid_128_to_string(guid)),
		};
		ret = sqlbox_db_exec(db, "UPDATE mailboxes SET guid = $2, "
				     "modseq = modseq + 1 WHERE id = $1 "
				     "AND guid <> $2", params,
				     N_ELEMENTS(params));
	}
	if (ret >= 0 && uid_validity != 0) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_INT(uid_validity),
		};
		ret = sqlbox_db_exec(db, "UPDATE mailboxes SET "
				     "uidvalidity = $2, modseq = modseq + 1 "
				     "WHERE id = $1 AND uidvalidity <> $2", params,
				     N_ELEMENTS(params));
	}
	if (ret >= 0 && min_next_uid != 0) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_INT(min_next_uid),
		};
		ret = sqlbox_db_exec(db, "UPDATE mailboxes SET "
				     "next_uid = $2, modseq = modseq + 1 "
				     "WHERE id = $1 AND next_uid < $2", params,
				     N_ELEMENTS(params));
	}
	if (ret < 0) {
		sqlbox_db_rollback(db);
		return -1;
	}
	return sqlbox_db_commit(db);
}

int sqlbox_db_mailbox_delete(struct sqlbox_db *db, int64_t mailbox_id)
{
	struct sqlbox_db_result *result;
	int64_t count;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
	};
	if (sqlbox_db_begin(db, TRUE) < 0)
		return -1;
	/* lock the mailbox row first, like every change does */
	if (sqlbox_db_exec(db, "UPDATE mailboxes SET modseq = modseq + 1 "
			   "WHERE id = $1", params, N_ELEMENTS(params)) < 0) {
		sqlbox_db_rollback(db);
		return -1;
	}
	ret = sqlbox_db_query_row(db, "SELECT count(*) FROM messages "
				  "WHERE mailbox_id = $1", params,
				  N_ELEMENTS(params), &result);
	if (ret <= 0) {
		sqlbox_db_rollback(db);
		if (ret == 0) {
			sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
					    "count(*) returned no row");
		}
		return -1;
	}
	count = sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	if (count > 0) {
		sqlbox_db_rollback(db);
		return 0;
	}
	if (sqlbox_db_exec(db, "DELETE FROM keywords WHERE mailbox_id = $1",
			   params, N_ELEMENTS(params)) < 0 ||
	    sqlbox_db_exec(db, "DELETE FROM expunged WHERE mailbox_id = $1",
			   params, N_ELEMENTS(params)) < 0 ||
	    sqlbox_db_exec(db, "DELETE FROM mailboxes WHERE id = $1",
			   params, N_ELEMENTS(params)) < 0) {
		sqlbox_db_rollback(db);
		return -1;
	}
	if (sqlbox_db_commit(db) < 0)
		return -1;
	return 1;
}

int sqlbox_db_mailbox_rename(struct sqlbox_db *db, int64_t user_id,
			     const char *old_name, const char *new_name,
			     char sep)
{
	struct sqlbox_db_result *result;
	const char *old_prefix = t_strdup_printf("%s%c", old_name, sep);
	const char *new_prefix = t_strdup_printf("%s%c", new_name, sep);
	int64_t count;
	int ret;

	if (sqlbox_db_begin(db, TRUE) < 0)
		return -1;
	/* (lengths measured by the database: substr() counts characters,
	   not bytes, in both engines, and names may be UTF-8) */
	const struct sqlbox_db_param cparams[] = {
		SQLBOX_INT(user_id),
		SQLBOX_TEXT(new_name),
		SQLBOX_TEXT(new_prefix),
	};
	ret = sqlbox_db_query_row(db, "SELECT count(*) FROM mailboxes "
		"WHERE user_id = $1 AND (name = $2 OR "
		"substr(name, 1, length(CAST($3 AS TEXT))) = $3)",
		cparams, N_ELEMENTS(cparams), &result);
	if (ret <= 0) {
		sqlbox_db_rollback(db);
		if (ret == 0) {
			sqlbox_db_set_error(db, SQLBOX_DB_ERROR_INTERNAL,
					    "count(*) returned no row");
		}
		return -1;
	}
	count = sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	if (count > 0) {
		sqlbox_db_rollback(db);
		return 0;
	}

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(user_id),
		SQLBOX_TEXT(old_name),
		SQLBOX_TEXT(new_name),
		SQLBOX_TEXT(old_prefix),
	};
	if (sqlbox_db_exec(db, "UPDATE mailboxes SET "
		"name = CAST($3 AS TEXT) || "
		"substr(name, length(CAST($2 AS TEXT)) + 1), "
		"modseq = modseq + 1 "
		"WHERE user_id = $1 AND (name = $2 OR "
		"substr(name, 1, length(CAST($4 AS TEXT))) = $4)",
		params, N_ELEMENTS(params)) < 0) {
		sqlbox_db_rollback(db);
		return -1;
	}
	if (sqlbox_db_commit(db) < 0)
		return -1;
	return 1;
}

struct sqlbox_db_msg_iter *
sqlbox_db_msg_iter_init(struct sqlbox_db *db, int64_t mailbox_id,
			uint64_t since_modseq, uint64_t upto_modseq)
{
	struct sqlbox_db_msg_iter *iter;

	iter = i_new(struct sqlbox_db_msg_iter, 1);
	iter->db = db;
	iter->pool = pool_alloconly_create("sqlbox keywords", 256);
	i_array_init(&iter->keyword_names, 8);

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(since_modseq),
		SQLBOX_INT(upto_modseq),
	};
	if (sqlbox_db_query(db, "SELECT uid, modseq, body_id, guid, flags, "
		"received_date, save_date, physical_size, virtual_size, "
		"pop3_order, pop3_uidl IS NOT NULL FROM messages "
		"WHERE mailbox_id = $1 AND modseq > $2 AND modseq <= $3 "
		"ORDER BY uid", params, N_ELEMENTS(params),
		&iter->msgs) < 0) {
		iter->failed = TRUE;
		return iter;
	}
	if (since_modseq == 0) {
		/* all of them */
		if (sqlbox_db_query(db, "SELECT uid, name FROM keywords "
				    "WHERE mailbox_id = $1 "
				    "ORDER BY uid, name", params, 1,
				    &iter->keywords) < 0)
			iter->failed = TRUE;
	} else {
		if (sqlbox_db_query(db, "SELECT k.uid, k.name "
			"FROM keywords k JOIN messages m "
			"ON m.mailbox_id = k.mailbox_id AND m.uid = k.uid "
			"WHERE m.mailbox_id = $1 AND m.modseq > $2 "
			"AND m.modseq <= $3 ORDER BY k.uid, k.name",
			params, N_ELEMENTS(params), &iter->keywords) < 0)
			iter->failed = TRUE;
	}
	return iter;
}

static int sqlbox_db_msg_iter_keywords(struct sqlbox_db_msg_iter *iter)
{
	const char *name;
	uint32_t uid;
	int ret;

	array_clear(&iter->keyword_names);
	p_clear(iter->pool);
	while (!iter->keywords_done) {
		if (!iter->keyword_pending) {
			ret = sqlbox_db_result_next(iter->keywords);
			if (ret < 0)
				return -1;
			if (ret == 0) {
				iter->keywords_done = TRUE;
				break;
			}
			iter->keyword_pending = TRUE;
		}
		uid = sqlbox_db_result_int(iter->keywords, 0);
		if (uid > iter->msg.uid)
			break;
		if (uid == iter->msg.uid) {
			name = p_strdup(iter->pool,
				sqlbox_db_result_text(iter->keywords, 1));
			array_push_back(&iter->keyword_names, &name);
		}
		iter->keyword_pending = FALSE;
	}
	array_append_zero(&iter->keyword_names);
	iter->msg.keywords = array_front(&iter->keyword_names);
	return 0;
}

int sqlbox_db_msg_iter_next(struct sqlbox_db_msg_iter *iter,
			    const struct sqlbox_db_message **msg_r)
{
	struct sqlbox_db_result *r = iter->msgs;
	int ret;

	if (iter->failed)
		return -1;
	ret = sqlbox_db_result_next(r);
	if (ret <= 0) {
		if (ret < 0)
			iter->failed = TRUE;
		return ret;
	}
	i_zero(&iter->msg);
	iter->msg.uid = sqlbox_db_result_int(r, 0);
	iter->msg.modseq = sqlbox_db_result_int(r, 1);
	iter->msg.body_id = sqlbox_db_result_int(r, 2);
	iter->msg.guid_is_string =
		!sqlbox_db_guid_parse(sqlbox_db_result_text(r, 3),
				      iter->msg.guid);
	iter->msg.flags = sqlbox_db_result_int(r, 4) & MAIL_FLAGS_NONRECENT;
	iter->msg.received_date = sqlbox_db_result_int(r, 5);
	iter->msg.save_date = sqlbox_db_result_int(r, 6);
	iter->msg.physical_size = sqlbox_db_result_int(r, 7);
	iter->msg.virtual_size = sqlbox_db_result_int(r, 8);
	iter->msg.pop3_order = sqlbox_db_result_int(r, 9);
	iter->msg.have_pop3_uidl = sqlbox_db_result_int(r, 10) != 0;
	if (sqlbox_db_msg_iter_keywords(iter) < 0) {
		iter->failed = TRUE;
		return -1;
	}
	*msg_r = &iter->msg;
	return 1;
}

int sqlbox_db_msg_iter_deinit(struct sqlbox_db_msg_iter **_iter)
{
	struct sqlbox_db_msg_iter *iter = *_iter;
	int ret = iter->failed ? -1 : 0;

	*_iter = NULL;
	sqlbox_db_result_free(&iter->msgs);
	sqlbox_db_result_free(&iter->keywords);
	array_free(&iter->keyword_names);
	pool_unref(&iter->pool);
	i_free(iter);
	return ret;
}

int sqlbox_db_expunged_uids(struct sqlbox_db *db, int64_t mailbox_id,
			    uint64_t since_modseq, uint64_t upto_modseq,
			    ARRAY_TYPE(seq_range) *uids)
{
	struct sqlbox_db_result *result;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(since_modseq),
		SQLBOX_INT(upto_modseq),
	};
	if (sqlbox_db_query(db, "SELECT uid FROM expunged "
			    "WHERE mailbox_id = $1 AND modseq > $2 "
			    "AND modseq <= $3", params, N_ELEMENTS(params),
			    &result) < 0)
		return -1;
	while ((ret = sqlbox_db_result_next(result)) > 0)
		seq_range_array_add(uids, sqlbox_db_result_int(result, 0));
	sqlbox_db_result_free(&result);
	return ret;
}

static const char *
sqlbox_db_result_guid_str(struct sqlbox_db_result *result, unsigned int col)
{
	const char *str = sqlbox_db_result_text(result, col);
	guid_128_t guid;

	return sqlbox_db_guid_parse(str, guid) ? NULL : str;
}

int sqlbox_db_message_strings(struct sqlbox_db *db, int64_t mailbox_id,
			      uint32_t min_uid,
			      sqlbox_db_strings_callback_t *callback,
			      void *context)
{
	struct sqlbox_db_result *result;
	const char *guid, *uidl;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(min_uid),
	};
	/* (a 128-bit GUID is 32 hex digits: anything else is a string) */
	if (sqlbox_db_query(db, "SELECT uid, guid, pop3_uidl FROM messages "
			    "WHERE mailbox_id = $1 AND uid >= $2 AND "
			    "(pop3_uidl IS NOT NULL OR length(guid) <> 32)",
			    params, N_ELEMENTS(params), &result) < 0)
		return -1;
	while ((ret = sqlbox_db_result_next(result)) > 0) {
		guid = sqlbox_db_result_guid_str(result, 1);
		uidl = sqlbox_db_result_is_null(result, 2) ? NULL :
			sqlbox_db_result_text(result, 2);
		if (guid != NULL || uidl != NULL) {
			callback(sqlbox_db_result_int(result, 0), guid, uidl,
				 context);
		}
	}
	sqlbox_db_result_free(&result);
	return ret;
}

int sqlbox_db_message_get_strings(struct sqlbox_db *db, int64_t mailbox_id,
				  uint32_t uid, const char **guid_r,
				  const char **pop3_uidl_r)
{
	struct sqlbox_db_result *result;
	const char *guid;
	int ret;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(uid),
	};
	ret = sqlbox_db_query_row(db, "SELECT guid, pop3_uidl FROM messages "
				  "WHERE mailbox_id = $1 AND uid = $2",
				  params, N_ELEMENTS(params), &result);
	if (ret <= 0)
		return ret;
	guid = sqlbox_db_result_guid_str(result, 0);
	*guid_r = guid == NULL ? NULL : t_strdup(guid);
	*pop3_uidl_r = sqlbox_db_result_is_null(result, 1) ? NULL :
		t_strdup(sqlbox_db_result_text(result, 1));
	sqlbox_db_result_free(&result);
	return 1;
}

int sqlbox_db_mailbox_change(struct sqlbox_db *db, int64_t mailbox_id,
			     unsigned int uid_count, uint32_t *first_uid_r,
			     uint64_t *modseq_r)
{
	struct sqlbox_db_result *result;
	int ret;

	i_assert(db->write_transaction);

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(uid_count),
	};
	ret = sqlbox_db_query_row(db, "UPDATE mailboxes SET "
		"next_uid = next_uid + $2, modseq = modseq + 1 "
		"WHERE id = $1 RETURNING next_uid - $2, modseq",
		params, N_ELEMENTS(params), &result);
	if (ret <= 0)
		return ret;
	*first_uid_r = sqlbox_db_result_int(result, 0);
	*modseq_r = sqlbox_db_result_int(result, 1);
	sqlbox_db_result_free(&result);
	return 1;
}

int sqlbox_db_mailbox_raise_next_uid(struct sqlbox_db *db, int64_t mailbox_id,
				     uint32_t next_uid)
{
	i_assert(db->write_transaction);

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(next_uid),
	};
	return sqlbox_db_exec(db, "UPDATE mailboxes SET next_uid = $2 "
			      "WHERE id = $1 AND next_uid < $2", params,
			      N_ELEMENTS(params)) < 0 ? -1 : 0;
}

static int
sqlbox_db_keywords_insert(struct sqlbox_db *db, int64_t mailbox_id,
			  uint32_t uid, const char *const *keywords)
{
	if (keywords == NULL)
		return 0;
	for (; *keywords != NULL; keywords++) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_INT(uid),
			SQLBOX_TEXT(*keywords),
		};
		if (sqlbox_db_exec(db, "INSERT INTO keywords "
				   "(mailbox_id, uid, name) "
				   "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
				   params, N_ELEMENTS(params)) < 0)
			return -1;
	}
	return 0;
}

int sqlbox_db_message_insert(struct sqlbox_db *db, int64_t mailbox_id,
			     uint64_t modseq,
			     const struct sqlbox_db_new_message *msg)
{
	i_assert(db->write_transaction);

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(msg->uid),
		SQLBOX_INT(modseq),
		SQLBOX_INT(msg->body_id),
		SQLBOX_TEXT(msg->guid_str != NULL ? msg->guid_str :
			    guid_128_to_string(msg->guid)),
		SQLBOX_INT(msg->flags & MAIL_FLAGS_NONRECENT),
		SQLBOX_INT(msg->received_date),
		SQLBOX_INT(msg->save_date),
		SQLBOX_INT(msg->physical_size),
		SQLBOX_INT(msg->virtual_size),
		SQLBOX_TEXT_OR_NULL(msg->pop3_uidl),
		SQLBOX_INT(msg->pop3_order),
	};
	if (sqlbox_db_exec(db, "INSERT INTO messages (mailbox_id, uid, "
		"modseq, body_id, guid, flags, received_date, save_date, "
		"physical_size, virtual_size, pop3_uidl, pop3_order) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
		params, N_ELEMENTS(params)) < 0)
		return -1;
	return sqlbox_db_keywords_insert(db, mailbox_id, msg->uid,
					 msg->keywords);
}

int sqlbox_db_message_copy(struct sqlbox_db *db, int64_t mailbox_id,
			   uint64_t modseq, int64_t src_mailbox_id,
			   uint32_t src_uid,
			   const struct sqlbox_db_new_message *msg)
{
	struct sqlbox_db_new_message new_msg = *msg;
	struct sqlbox_db_result *result;
	int64_t src_body_id;
	const char *src_uidl;
	int ret;

	i_assert(db->write_transaction);

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(src_mailbox_id),
		SQLBOX_INT(src_uid),
	};
	ret = sqlbox_db_query_row(db, "SELECT body_id, guid, received_date, "
		"physical_size, virtual_size, pop3_uidl, pop3_order "
		"FROM messages WHERE mailbox_id = $1 AND uid = $2",
		params, N_ELEMENTS(params), &result);
	if (ret <= 0)
		return ret;
	src_body_id = sqlbox_db_result_int(result, 0);
	if (guid_128_is_empty(new_msg.guid)) {
		/* the source's GUID, as it is stored */
		new_msg.guid_str = t_strdup(sqlbox_db_result_text(result, 1));
		(void)sqlbox_db_guid_parse(new_msg.guid_str, new_msg.guid);
	}
	if (new_msg.received_date == (time_t)-1)
		new_msg.received_date = sqlbox_db_result_int(result, 2);
	new_msg.physical_size = sqlbox_db_result_int(result, 3);
	new_msg.virtual_size = sqlbox_db_result_int(result, 4);
	src_uidl = sqlbox_db_result_text(result, 5);
	if (new_msg.pop3_uidl == NULL && src_uidl != NULL)
		new_msg.pop3_uidl = t_strdup(src_uidl);
	if (new_msg.pop3_order == 0)
		new_msg.pop3_order = sqlbox_db_result_int(result, 6);
	sqlbox_db_result_free(&result);

	if ((ret = sqlbox_db_body_copy(db, src_body_id,
				       &new_msg.body_id)) <= 0)
		return ret;
	if (sqlbox_db_message_insert(db, mailbox_id, modseq, &new_msg) < 0)
		return -1;
	return 1;
}

int sqlbox_db_messages_update_flags(struct sqlbox_db *db, int64_t mailbox_id,
				    uint64_t modseq,
				    const ARRAY_TYPE(seq_range) *uids,
				    enum mail_flags add,
				    enum mail_flags remove)
{
	const struct seq_range *range;

	i_assert(db->write_transaction);

	array_foreach(uids, range) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_INT(range->seq1),
			SQLBOX_INT(range->seq2),
			SQLBOX_INT(add & MAIL_FLAGS_NONRECENT),
			SQLBOX_INT(remove & MAIL_FLAGS_NONRECENT),
			SQLBOX_INT(modseq),
		};
		if (sqlbox_db_exec(db, "UPDATE messages SET "
			"flags = (flags | $4) & ~$5, modseq = $6 "
			"WHERE mailbox_id = $1 AND uid >= $2 AND uid <= $3 "
			"AND ((flags | $4) & ~$5) <> flags",
			params, N_ELEMENTS(params)) < 0)
			return -1;
	}
	return 0;
}

static int
sqlbox_db_keyword_add(struct sqlbox_db *db, int64_t mailbox_id,
		      const struct seq_range *range, const char *name)
{
	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(range->seq1),
		SQLBOX_INT(range->seq2),
		SQLBOX_TEXT(name),
	};
	return sqlbox_db_exec(db, "INSERT INTO keywords (mailbox_id, uid, name) "
		"SELECT mailbox_id, uid, $4 FROM messages "
		"WHERE mailbox_id = $1 AND uid >= $2 AND uid <= $3 "
		"ON CONFLICT DO NOTHING", params, N_ELEMENTS(params));
}

static bool sqlbox_str_in(const char *const *list, const char *str)
{
	for (; *list != NULL; list++) {
		if (strcmp(*list, str) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Replace: removes the range's keywords that aren't in keywords. Returns
   the number of rows removed. */
static int
sqlbox_db_keywords_remove_others(struct sqlbox_db *db, int64_t mailbox_id,
				 const struct seq_range *range,
				 const char *const *keywords)
{
	struct sqlbox_db_result *result;
	ARRAY_TYPE(const_string) others;
	const char *name;
	int ret, count = 0;

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(range->seq1),
		SQLBOX_INT(range->seq2),
	};
	if (sqlbox_db_query(db, "SELECT DISTINCT name FROM keywords "
			    "WHERE mailbox_id = $1 AND uid >= $2 "
			    "AND uid <= $3", params, N_ELEMENTS(params),
			    &result) < 0)
		return -1;
	t_array_init(&others, 8);
	while ((ret = sqlbox_db_result_next(result)) > 0) {
		name = sqlbox_db_result_text(result, 0);
		if (!sqlbox_str_in(keywords, name)) {
			name = t_strdup(name);
			array_push_back(&others, &name);
		}
	}
	sqlbox_db_result_free(&result);
	if (ret < 0)
		return -1;
	array_foreach_elem(&others, name) {
		const struct sqlbox_db_param rparams[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_INT(range->seq1),
			SQLBOX_INT(range->seq2),
			SQLBOX_TEXT(name),
		};
		ret = sqlbox_db_exec(db, "DELETE FROM keywords "
				     "WHERE mailbox_id = $1 AND uid >= $2 "
				     "AND uid <= $3 AND name = $4",
				     rparams, N_ELEMENTS(rparams));
		if (ret < 0)
			return -1;
		count += ret;
	}
	return count;
}

int sqlbox_db_messages_update_keywords(struct sqlbox_db *db,
				       int64_t mailbox_id, uint64_t modseq,
				       const ARRAY_TYPE(seq_range) *uids,
				       enum modify_type modify_type,
				       const char *const *keywords)
{
	const struct seq_range *range;
	const char *const *kw;
	int ret, changed;

	i_assert(db->write_transaction);

	array_foreach(uids, range) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_INT(range->seq1),
			SQLBOX_INT(range->seq2),
			SQLBOX_INT(modseq),
		};
		changed = 0;
		if (modify_type == MODIFY_REPLACE) {
			ret = sqlbox_db_keywords_remove_others(db, mailbox_id,
							       range, keywords);
			if (ret < 0)
				return -1;
			changed += ret;
		}
		for (kw = keywords; *kw != NULL; kw++) {
			if (modify_type == MODIFY_REMOVE) {
				const struct sqlbox_db_param rparams[] = {
					SQLBOX_INT(mailbox_id),
					SQLBOX_INT(range->seq1),
					SQLBOX_INT(range->seq2),
					SQLBOX_TEXT(*kw),
				};
				ret = sqlbox_db_exec(db, "DELETE FROM keywords "
					"WHERE mailbox_id = $1 AND uid >= $2 "
					"AND uid <= $3 AND name = $4",
					rparams, N_ELEMENTS(rparams));
			} else {
				ret = sqlbox_db_keyword_add(db, mailbox_id,
							    range, *kw);
			}
			if (ret < 0)
				return -1;
			changed += ret;
		}
		/* (setting what is already there, as dsync does for every
		   message, changes nothing) */
		if (changed > 0 &&
		    sqlbox_db_exec(db, "UPDATE messages SET modseq = $4 "
				   "WHERE mailbox_id = $1 AND uid >= $2 "
				   "AND uid <= $3", params,
				   N_ELEMENTS(params)) < 0)
			return -1;
	}
	return 0;
}

int sqlbox_db_message_set_pop3_uidl(struct sqlbox_db *db, int64_t mailbox_id,
				    uint64_t modseq, uint32_t uid,
				    const char *pop3_uidl)
{
	i_assert(db->write_transaction);

	/* (the modseq: other servers' indexes learn that it has one) */
	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(uid),
		SQLBOX_TEXT(pop3_uidl),
		SQLBOX_INT(modseq),
	};
	return sqlbox_db_exec(db, "UPDATE messages SET pop3_uidl = $3, "
			      "modseq = $4 WHERE mailbox_id = $1 AND uid = $2 "
			      "AND pop3_uidl IS NULL", params,
			      N_ELEMENTS(params)) < 0 ? -1 : 0;
}

int sqlbox_db_messages_expunge(struct sqlbox_db *db, int64_t mailbox_id,
			       uint64_t modseq,
			       const ARRAY_TYPE(seq_range) *uids)
{
	const struct seq_range *range;
	int ret, count = 0;

	i_assert(db->write_transaction);

	array_foreach(uids, range) {
		const struct sqlbox_db_param params[] = {
			SQLBOX_INT(mailbox_id),
			SQLBOX_INT(range->seq1),
			SQLBOX_INT(range->seq2),
			SQLBOX_INT(modseq),
		};
		if (sqlbox_db_exec(db, "INSERT INTO expunged "
			"(mailbox_id, uid, modseq) "
			"SELECT mailbox_id, uid, $4 FROM messages "
			"WHERE mailbox_id = $1 AND uid >= $2 AND uid <= $3 "
			"ON CONFLICT (mailbox_id, uid) "
			"DO UPDATE SET modseq = excluded.modseq",
			params, N_ELEMENTS(params)) < 0)
			return -1;
		if (sqlbox_db_exec(db, "DELETE FROM bodies WHERE id IN "
			"(SELECT body_id FROM messages WHERE mailbox_id = $1 "
			"AND uid >= $2 AND uid <= $3)", params, 3) < 0)
			return -1;
		if (sqlbox_db_exec(db, "DELETE FROM keywords "
			"WHERE mailbox_id = $1 AND uid >= $2 AND uid <= $3",
			params, 3) < 0)
			return -1;
		ret = sqlbox_db_exec(db, "DELETE FROM messages "
			"WHERE mailbox_id = $1 AND uid >= $2 AND uid <= $3",
			params, 3);
		if (ret < 0)
			return -1;
		count += ret;
	}
	return count;
}

int sqlbox_db_expunged_prune(struct sqlbox_db *db, int64_t mailbox_id,
			     unsigned int keep)
{
	struct sqlbox_db_result *result;
	int64_t count, floor;
	int ret;

	i_assert(db->write_transaction);

	const struct sqlbox_db_param params[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(keep),
	};
	ret = sqlbox_db_query_row(db, "SELECT count(*) FROM expunged "
				  "WHERE mailbox_id = $1", params, 1, &result);
	if (ret <= 0)
		return ret;
	count = sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);
	if (count <= (int64_t)keep * 2)
		return 0;

	/* the modseq of the newest record to drop */
	ret = sqlbox_db_query_row(db, "SELECT modseq FROM expunged "
				  "WHERE mailbox_id = $1 ORDER BY modseq DESC "
				  "LIMIT 1 OFFSET $2", params,
				  N_ELEMENTS(params), &result);
	if (ret <= 0)
		return ret;
	floor = sqlbox_db_result_int(result, 0);
	sqlbox_db_result_free(&result);

	const struct sqlbox_db_param fparams[] = {
		SQLBOX_INT(mailbox_id),
		SQLBOX_INT(floor),
	};
	if (sqlbox_db_exec(db, "DELETE FROM expunged WHERE mailbox_id = $1 "
			   "AND modseq <= $2", fparams,
			   N_ELEMENTS(fparams)) < 0 ||
	    sqlbox_db_exec(db, "UPDATE mailboxes SET expunge_floor = $2 "
			   "WHERE id = $1 AND expunge_floor < $2", fparams,
			   N_ELEMENTS(fparams)) < 0)
		return -1;
	return 1;
}
