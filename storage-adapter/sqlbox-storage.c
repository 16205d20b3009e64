/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str.h"
#include "mkdir-parents.h"
#include "unlink-directory.h"
#include "mail-copy.h"
#include "mail-search-build.h"
#include "mailbox-list-private.h"
#include "index-pop3-uidl.h"
#include "mail-index-modseq.h"
#include "sqlbox-storage.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>

/* The storage class. Mailboxes live in the database; each has a directory
   mailboxes/<name>/sqlbox-index/ under the mail location for Dovecot's
   index files, which are only a cache: the directories are made to match
   the database when a session starts, and an index is rebuilt from the
   database whenever it's missing or doesn't belong to the database's
   mailbox. */

struct event_category event_category_sqlbox = {
	.name = "sqlbox",
	.parent = &event_category_storage,
};

extern struct mailbox sqlbox_mailbox;

void sqlbox_crash_point(const char *point)
{
	/* a test hook for the crash trials: SQLBOX_CRASH_AT=<point> in the
	   environment makes the process die there as by a power cut */
	const char *value = getenv("SQLBOX_CRASH_AT");

	if (value != NULL && strcmp(value, point) == 0)
		(void)kill(getpid(), SIGKILL);
}

static const char *sqlbox_user_lookup(const char *name, void *context)
{
	struct mail_user *user = context;

	return mail_user_plugin_getenv(user, name);
}

void sqlbox_storage_set_db_error(struct sqlbox_storage *storage,
				 const char *what)
{
	const char *error;

	switch (sqlbox_db_get_error(storage->db, &error)) {
	case SQLBOX_DB_ERROR_LOCKED:
		e_error(storage->storage.event, "%s: %s", what, error);
		mail_storage_set_error(&storage->storage, MAIL_ERROR_INUSE,
			"Mailbox is locked by another session, "
			"try again later");
		break;
	case SQLBOX_DB_ERROR_TEMP:
		e_error(storage->storage.event, "%s: %s", what, error);
		mail_storage_set_error(&storage->storage, MAIL_ERROR_TEMP,
			"Mail database temporarily unavailable, "
			"try again later");
		break;
	default:
		mail_storage_set_critical(&storage->storage, "%s: %s",
					  what, error);
		break;
	}
}

void sqlbox_mailbox_set_db_error(struct sqlbox_mailbox *mbox,
				 const char *what)
{
	sqlbox_storage_set_db_error(mbox->storage, t_strdup_printf(
		"Mailbox %s: %s", mbox->box.vname, what));
}

/* -- directories: a cache of the database's mailbox list --------------- */

static void
sqlbox_dirs_find(const char *root, const char *rel, ARRAY_TYPE(const_string) *found)
{
	const char *path, *child;
	struct dirent *d;
	struct stat st;
	DIR *dir;

	path = rel[0] == '\0' ? root : t_strconcat(root, "/", rel, NULL);
	dir = opendir(path);
	if (dir == NULL)
		return;
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		if (strcmp(d->d_name, SQLBOX_INDEX_DIR_NAME) == 0) {
			if (rel[0] != '\0') {
				child = t_strdup(rel);
				array_push_back(found, &child);
			}
			continue;
		}
		child = rel[0] == '\0' ? t_strdup(d->d_name) :
			t_strconcat(rel, "/", d->d_name, NULL);
		if (stat(t_strconcat(root, "/", child, NULL), &st) == 0 &&
		    S_ISDIR(st.st_mode))
			sqlbox_dirs_find(root, child, found);
	}
	(void)closedir(dir);
}

static void sqlbox_storage_sync_dirs(struct sqlbox_storage *storage,
				     struct mailbox_list *list)
{
	struct mailbox_permissions perm;
	ARRAY_TYPE(const_string) names, found;
	HASH_TABLE(const char *, void *) db_names;
	const char *name, *path, *root, *error;
	struct stat st;
	pool_t pool;

	if (list->set.layout == NULL ||
	    strcmp(list->set.layout, MAILBOX_LIST_NAME_FS) != 0 ||
	    list->set.maildir_name == NULL ||
	    strcmp(list->set.maildir_name, SQLBOX_INDEX_DIR_NAME) != 0)
		return;

	pool = pool_alloconly_create("sqlbox dirs", 1024);
	p_array_init(&names, pool, 16);
	if (sqlbox_db_mailbox_names(storage->db, storage->user_id, pool,
				    &names) < 0) {
		pool_unref(&pool);
		return;
	}
	hash_table_create(&db_names, pool, 0, str_hash, strcmp);
	mailbox_list_get_root_permissions(list, &perm);

	/* every mailbox of the database has its directory */
	array_foreach_elem(&names, name) {
		hash_table_insert(db_names, name, POINTER_CAST(1));
		if (mailbox_list_get_path(list, name,
					  MAILBOX_LIST_PATH_TYPE_MAILBOX,
					  &path) <= 0)
			continue;
		if (stat(path, &st) == 0 || errno != ENOENT)
			continue;
		if (mkdir_parents_chgrp(path, perm.dir_create_mode,
					perm.file_create_gid,
					perm.file_create_gid_origin) < 0 &&
		    errno != EEXIST) {
			e_error(storage->storage.event,
				"mkdir_parents(%s) failed: %m", path);
		}
	}

	/* and no other directory looks like a mailbox */
	root = t_strconcat(list->set.root_dir, "/", SQLBOX_MAILBOX_DIR_NAME,
			   NULL);
	p_array_init(&found, pool, 16);
	T_BEGIN {
		sqlbox_dirs_find(root, "", &found);
		array_foreach_elem(&found, name) {
			if (hash_table_lookup(db_names, name) != NULL)
				continue;
			path = t_strconcat(root, "/", name, "/",
					   SQLBOX_INDEX_DIR_NAME, NULL);
			e_debug(storage->storage.event, "Removing the index "
				"of %s: no such mailbox in the database", name);
			if (unlink_directory(path, UNLINK_DIRECTORY_FLAG_RMDIR,
					     &error) < 0) {
				e_error(storage->storage.event, "%s", error);
				continue;
			}
			/* the directory too, unless it has children */
			(void)rmdir(t_strconcat(root, "/", name, NULL));
		}
	} T_END;
	hash_table_destroy(&db_names);
	pool_unref(&pool);
}

int sqlbox_storage_db_connect(struct sqlbox_storage *storage)
{
	if (sqlbox_db_connect(storage->db) < 0)
		return -1;
	if (storage->user_id == 0 &&
	    sqlbox_db_user_id(storage->db, storage->storage.user->username,
			      &storage->user_id) < 0)
		return -1;
	if (!storage->dirs_synced && storage->list != NULL) {
		storage->dirs_synced = TRUE;
		sqlbox_storage_sync_dirs(storage, storage->list);
	}
	return 0;
}

/* -- storage ---------------------------------------------------------- */

static struct mail_storage *sqlbox_storage_alloc(void)
{
	struct sqlbox_storage *storage;
	pool_t pool;

	pool = pool_alloconly_create("sqlbox storage", 1024);
	storage = p_new(pool, struct sqlbox_storage, 1);
	storage->storage = sqlbox_storage;
	storage->storage.pool = pool;
	return &storage->storage;
}

static int
sqlbox_storage_create(struct mail_storage *_storage,
		      struct mail_namespace *ns, const char **error_r)
{
	struct sqlbox_storage *storage = SQLBOX_STORAGE(_storage);
	struct mail_user *user = _storage->user;
	struct sqlbox_db_settings db_set;
	const char *root_dir, *home, *error;

	root_dir = mailbox_list_get_root_forced(ns->list,
						MAILBOX_LIST_PATH_TYPE_DIR);
	if (mail_user_get_home(user, &home) <= 0)
		home = NULL;
	if (sqlbox_settings_parse(sqlbox_user_lookup, user, home, root_dir,
				  _storage->pool, &storage->set, &error) < 0) {
		*error_r = t_strdup_printf("%s (user %s)", error,
					   user->username);
		return -1;
	}
	if (storage->set.driver == SQLBOX_DB_DRIVER_SQLITE &&
	    mailbox_list_mkdir_root(ns->list, root_dir,
				    MAILBOX_LIST_PATH_TYPE_DIR) < 0) {
		*error_r = mailbox_list_get_last_internal_error(ns->list, NULL);
		return -1;
	}

	i_zero(&db_set);
	db_set.driver = storage->set.driver;
	db_set.connect = storage->set.connect;
	db_set.fsync = _storage->set->parsed_fsync_mode != FSYNC_MODE_NEVER;
	db_set.lock_timeout_msecs = storage->set.lock_timeout_secs * 1000;
	db_set.mmap_size = storage->set.sqlite_mmap_size;
	storage->db = sqlbox_db_init(&db_set, _storage->event);
	storage->list = ns->list;
	string_t *prefix = t_str_new(128);
	mail_user_set_get_temp_prefix(prefix, user->set);
	storage->temp_prefix = p_strdup(_storage->pool, str_c(prefix));

	if (sqlbox_storage_db_connect(storage) < 0) {
		if (storage->db->schema_refused) {
			(void)sqlbox_db_get_error(storage->db, &error);
			*error_r = t_strdup_printf("%s (user %s)",
						   error, user->username);
			return -1;
		}
		/* the database is down: the session goes on, and each
		   access tries again (failing with a temporary error,
		   logged then) */
	}
	return 0;
}

static void sqlbox_storage_destroy(struct mail_storage *_storage)
{
	struct sqlbox_storage *storage = SQLBOX_STORAGE(_storage);

	sqlbox_db_deinit(&storage->db);
	index_storage_destroy(_storage);
}

static void
sqlbox_storage_get_list_settings(const struct mail_namespace *ns ATTR_UNUSED,
				 struct mailbox_list_settings *set)
{
	if (set->layout == NULL)
		set->layout = MAILBOX_LIST_NAME_FS;
	if (set->subscription_fname == NULL)
		set->subscription_fname = SQLBOX_SUBSCRIPTION_FILE_NAME;
	if (*set->maildir_name == '\0')
		set->maildir_name = SQLBOX_INDEX_DIR_NAME;
	if (*set->mailbox_dir_name == '\0')
		set->mailbox_dir_name = SQLBOX_MAILBOX_DIR_NAME;
}

/* -- mailboxes -------------------------------------------------------- */

static struct mailbox *
sqlbox_mailbox_alloc(struct mail_storage *storage, struct mailbox_list *list,
		     const char *vname, enum mailbox_flags flags)
{
	struct sqlbox_mailbox *mbox;
	pool_t pool;

	pool = pool_alloconly_create("sqlbox mailbox", 1024*3);
	mbox = p_new(pool, struct sqlbox_mailbox, 1);
	mbox->box = sqlbox_mailbox;
	mbox->box.pool = pool;
	mbox->box.storage = storage;
	mbox->box.list = list;
	mbox->box.mail_vfuncs = &sqlbox_mail_vfuncs;
	mbox->storage = SQLBOX_STORAGE(storage);

	index_storage_mailbox_alloc(&mbox->box, vname, flags,
				    MAIL_INDEX_PREFIX);
	return &mbox->box;
}

int sqlbox_mailbox_refresh_db_box(struct sqlbox_mailbox *mbox)
{
	struct sqlbox_storage *storage = mbox->storage;
	int ret;

	if (sqlbox_storage_db_connect(storage) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Connecting to the database");
		return -1;
	}
	ret = sqlbox_db_mailbox_get(storage->db, mbox->db_box.id,
				    &mbox->db_box);
	if (ret < 0)
		sqlbox_mailbox_set_db_error(mbox, "Reading the mailbox");
	else if (ret == 0)
		mailbox_set_deleted(&mbox->box);
	return ret <= 0 ? -1 : 0;
}

static int sqlbox_mailbox_lookup(struct sqlbox_mailbox *mbox)
{
	struct sqlbox_storage *storage = mbox->storage;
	int ret;

	if (sqlbox_storage_db_connect(storage) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Connecting to the database");
		return -1;
	}
	ret = sqlbox_db_mailbox_lookup(storage->db, storage->user_id,
				       mbox->box.name, &mbox->db_box);
	if (ret < 0)
		sqlbox_mailbox_set_db_error(mbox, "Looking up the mailbox");
	return ret;
}

static int
sqlbox_mailbox_exists(struct mailbox *box, bool auto_boxes,
		      enum mailbox_existence *existence_r)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);
	int ret;

	if (auto_boxes && mailbox_is_autocreated(box)) {
		*existence_r = MAILBOX_EXISTENCE_SELECT;
		return 0;
	}
	if ((ret = sqlbox_mailbox_lookup(mbox)) < 0)
		return -1;
	if (ret > 0) {
		*existence_r = MAILBOX_EXISTENCE_SELECT;
		return 0;
	}
	/* not in the database; a directory may still be a parent of
	   mailboxes (\NoSelect) */
	if (index_storage_mailbox_exists_full(box, NULL, existence_r) < 0)
		return -1;
	if (*existence_r == MAILBOX_EXISTENCE_SELECT)
		*existence_r = MAILBOX_EXISTENCE_NOSELECT;
	return 0;
}

static int sqlbox_mailbox_open(struct mailbox *box)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);
	const char *path;
	struct stat st;
	int ret;

	if ((ret = sqlbox_mailbox_lookup(mbox)) <= 0) {
		if (ret == 0) {
			mail_storage_set_error(box->storage,
				MAIL_ERROR_NOTFOUND,
				T_MAIL_ERR_MAILBOX_NOT_FOUND(box->vname));
		}
		return -1;
	}
	/* the database has it: its index directory is only a cache */
	if (mailbox_get_path_to(box, MAILBOX_LIST_PATH_TYPE_MAILBOX,
				&path) < 0)
		return -1;
	if (stat(path, &st) < 0 && errno == ENOENT) {
		if (mailbox_mkdir(box, path, MAILBOX_LIST_PATH_TYPE_MAILBOX) < 0)
			return -1;
	}
	if (index_storage_mailbox_open(box, FALSE) < 0)
		return -1;

	mbox->hdr_ext_id =
		mail_index_ext_register(box->index, "sqlbox-hdr",
					sizeof(struct sqlbox_index_header),
					0, 0);
	mbox->rec_ext_id =
		mail_index_ext_register(box->index, "sqlbox-rec", 0,
					sizeof(struct sqlbox_index_record),
					sizeof(uint64_t));
	return 0;
}

static void sqlbox_mailbox_close(struct mailbox *box)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);

	if (array_is_created(&mbox->min_modseqs))
		array_free(&mbox->min_modseqs);
	sqlbox_mailbox_strings_free(mbox);
	index_storage_mailbox_close(box);
}

static int
sqlbox_mailbox_create(struct mailbox *box,
		      const struct mailbox_update *update, bool directory)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);
	struct sqlbox_storage *storage = mbox->storage;
	guid_128_t guid;
	const char *path;
	int ret;

	if (directory) {
		/* a \NoSelect parent: only a directory */
		return index_storage_mailbox_create(box, TRUE);
	}
	if (sqlbox_storage_db_connect(storage) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Connecting to the database");
		return -1;
	}
	guid_128_empty(guid);
	if (update != NULL)
		guid_128_copy(guid, update->mailbox_guid);
	ret = sqlbox_db_mailbox_create(storage->db, storage->user_id,
		box->name, guid, update == NULL ? 0 : update->uid_validity,
		update == NULL ? 0 : update->min_next_uid, &mbox->db_box);
	if (ret < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Creating the mailbox");
		return -1;
	}
	if (ret == 0) {
		mail_storage_set_error(box->storage, MAIL_ERROR_EXISTS,
				       "Mailbox already exists");
		return -1;
	}
	if (mailbox_get_path_to(box, MAILBOX_LIST_PATH_TYPE_MAILBOX,
				&path) < 0)
		return -1;
	if (mailbox_mkdir(box, path, MAILBOX_LIST_PATH_TYPE_MAILBOX) < 0)
		return -1;
	return 0;
}

/* What of an update is the index's own (like sdbox): the first recent UID
   and the highest modseq (dsync raises it to the other side's). */
static int
sqlbox_mailbox_update_index(struct mailbox *box,
			    const struct mailbox_update *update)
{
	struct mail_index_transaction *trans;
	const struct mail_index_header *hdr;
	struct mail_index_view *view;
	bool changed = FALSE;
	int ret = 0;

	(void)mail_index_refresh(box->index);
	view = mail_index_view_open(box->index);
	hdr = mail_index_get_header(view);
	trans = mail_index_transaction_begin(view,
		MAIL_INDEX_TRANSACTION_FLAG_EXTERNAL);
	if (update->min_first_recent_uid != 0 &&
	    hdr->first_recent_uid < update->min_first_recent_uid) {
		uint32_t first_recent_uid = update->min_first_recent_uid;

		mail_index_update_header(trans,
			offsetof(struct mail_index_header, first_recent_uid),
			&first_recent_uid, sizeof(first_recent_uid), FALSE);
		changed = TRUE;
	}
	if (update->min_highest_modseq != 0 &&
	    mail_index_modseq_get_highest(view) <
	    update->min_highest_modseq) {
		mail_index_modseq_enable(box->index);
		mail_index_update_highest_modseq(trans,
						 update->min_highest_modseq);
		changed = TRUE;
	}
	if (!changed)
		mail_index_transaction_rollback(&trans);
	else if (mail_index_transaction_commit(&trans) < 0) {
		mailbox_set_index_error(box);
		ret = -1;
	}
	mail_index_view_close(&view);
	return ret;
}

static int
sqlbox_mailbox_update(struct mailbox *box, const struct mailbox_update *update)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);
	struct sqlbox_storage *storage = mbox->storage;

	if (!box->opened) {
		if (mailbox_open(box) < 0)
			return -1;
	}
	if (sqlbox_db_mailbox_update(storage->db, mbox->db_box.id,
				     update->mailbox_guid,
				     update->uid_validity,
				     update->min_next_uid) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Updating the mailbox");
		return -1;
	}
	if (sqlbox_sync(mbox, SQLBOX_SYNC_FLAG_FORCE) < 0)
		return -1;
	if (sqlbox_mailbox_update_index(box, update) < 0)
		return -1;
	return index_storage_mailbox_update_common(box, update);
}

static int sqlbox_mailbox_delete(struct mailbox *box)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);
	int ret;

	/* expunges all messages (in the database, through the usual
	   transaction) and marks the index deleted */
	if ((ret = index_storage_mailbox_delete_pre(box)) <= 0)
		return ret;

	ret = sqlbox_db_mailbox_delete(mbox->storage->db, mbox->db_box.id);
	if (ret < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Deleting the mailbox");
		return -1;
	}
	if (ret == 0) {
		mail_storage_set_error(box->storage, MAIL_ERROR_EXISTS,
			"New mails were added to mailbox during deletion");
		return -1;
	}
	return index_storage_mailbox_delete_post(box);
}

static int sqlbox_mailbox_rename(struct mailbox *src, struct mailbox *dest)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(src);
	struct sqlbox_storage *storage = mbox->storage;
	char sep = mailbox_list_get_hierarchy_sep(src->list);
	int ret;

	if (src->storage != dest->storage) {
		mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
			"Can't rename mailboxes across storages");
		return -1;
	}
	if (sqlbox_storage_db_connect(storage) < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Connecting to the database");
		return -1;
	}
	ret = sqlbox_db_mailbox_rename(storage->db, storage->user_id,
				       src->name, dest->name, sep);
	if (ret < 0) {
		sqlbox_mailbox_set_db_error(mbox, "Renaming the mailbox");
		return -1;
	}
	if (ret == 0) {
		mail_storage_set_error(src->storage, MAIL_ERROR_EXISTS,
				       "Target mailbox already exists");
		return -1;
	}
	if (index_storage_mailbox_rename(src, dest) < 0) {
		/* put the database back as it was */
		if (sqlbox_db_mailbox_rename(storage->db, storage->user_id,
					     dest->name, src->name, sep) <= 0) {
			e_error(src->event, "Renaming back in the database "
				"after a failed rename failed; the next "
				"session recreates the directories");
		}
		return -1;
	}
	return 0;
}

static int
sqlbox_mailbox_get_status(struct mailbox *box,
			  enum mailbox_status_items items,
			  struct mailbox_status *status_r)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);

	if (!box->opened || mbox->opened_for_list) {
		/* nobody looks at this mailbox yet: bring it up to date
		   with the database (STATUS doesn't sync by itself) */
		mbox->opened_for_list = FALSE;
		if (!box->opened && mailbox_open(box) < 0)
			return -1;
		if (mailbox_sync(box, 0) < 0)
			return -1;
	}
	return index_storage_get_status(box, items, status_r);
}

/* The mailbox list index caches STATUS of mailboxes nobody has open, and
   asks here whether that is still right. Deliveries change only the
   database, not the mailbox's index files, so the files alone don't say:
   the database's modseq is compared with the one the index is synced to
   (one query, done by opening the mailbox). */
static int
sqlbox_list_index_has_changed(struct mailbox *box,
			      struct mail_index_view *list_view,
			      uint32_t seq, bool quick, const char **reason_r)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);
	struct sqlbox_index_header ihdr;
	struct mail_index_view *view;
	int ret;

	ret = index_storage_list_index_has_changed(box, list_view, seq, quick,
						   reason_r);
	if (ret != 0)
		return ret;
	if (!box->opened) {
		if (mailbox_open(box) < 0)
			return -1;
		mbox->opened_for_list = TRUE;
	} else if (sqlbox_mailbox_refresh_db_box(mbox) < 0) {
		return -1;
	}
	(void)mail_index_refresh(box->index);
	view = mail_index_view_open(box->index);
	sqlbox_read_index_header(mbox, view, &ihdr);
	mail_index_view_close(&view);
	if (ihdr.mailbox_id != (uint64_t)mbox->db_box.id ||
	    ihdr.synced_modseq != mbox->db_box.modseq) {
		*reason_r = t_strdup_printf("sqlbox: database modseq %"PRIu64
			" != index's %"PRIu64, mbox->db_box.modseq,
			ihdr.synced_modseq);
		return 1;
	}
	return 0;
}

static int
sqlbox_mailbox_get_metadata(struct mailbox *box,
			    enum mailbox_metadata_items items,
			    struct mailbox_metadata *metadata_r)
{
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(box);

	if (index_mailbox_get_metadata(box, items, metadata_r) < 0)
		return -1;
	if ((items & MAILBOX_METADATA_GUID) != 0) {
		if (!box->opened && mailbox_open(box) < 0)
			return -1;
		guid_128_copy(metadata_r->guid, mbox->db_box.guid);
	}
	return 0;
}

/* -- transactions ----------------------------------------------------- */

static struct mailbox_transaction_context *
sqlbox_transaction_begin(struct mailbox *box,
			 enum mailbox_transaction_flags flags,
			 const char *reason)
{
	struct sqlbox_transaction_context *st;

	st = i_new(struct sqlbox_transaction_context, 1);
	i_array_init(&st->saved_uids, 4);
	index_transaction_init(&st->t, box, flags, reason);
	return &st->t;
}

static void sqlbox_transaction_free(struct sqlbox_transaction_context *st)
{
	if (array_is_created(&st->changes))
		array_free(&st->changes);
	array_free(&st->saved_uids);
	pool_unref(&st->pool);
}

static int
sqlbox_transaction_commit(struct mailbox_transaction_context *t,
			  struct mail_transaction_commit_changes *changes_r)
{
	struct sqlbox_transaction_context *st = SQLBOX_TRANSACTION(t);
	struct sqlbox_mailbox *mbox = SQLBOX_MAILBOX(t->box);
	ARRAY_TYPE(seq_range) saved_uids;
	int ret;

	/* the database first: that's the commit that counts */
	if (sqlbox_transaction_db_commit(st) < 0) {
		sqlbox_transaction_free(st);
		index_transaction_rollback(t);
		return -1;
	}
	t_array_init(&saved_uids, array_count(&st->saved_uids) + 1);
	array_append_array(&saved_uids, &st->saved_uids);
	sqlbox_transaction_free(st);

	/* then the index, which is a cache: if it fails, the next sync
	   catches up from the database */
	ret = index_transaction_commit(t, changes_r);
	if (ret < 0) {
		e_warning(mbox->box.event, "Updating the index after a "
			  "committed database transaction failed (it will be "
			  "synced again): %s",
			  mailbox_get_last_internal_error(&mbox->box, NULL));
		if (array_count(&saved_uids) > 0 &&
		    array_count(&changes_r->saved_uids) == 0) {
			array_append_array(&changes_r->saved_uids,
					   &saved_uids);
			changes_r->uid_validity = mbox->db_box.uidvalidity;
		}
	}
	return 0;
}

static void sqlbox_transaction_rollback(struct mailbox_transaction_context *t)
{
	sqlbox_transaction_free(SQLBOX_TRANSACTION(t));
	index_transaction_rollback(t);
}

static void sqlbox_notify_changes(struct mailbox *box)
{
	if (box->notify_callback == NULL)
		mailbox_watch_remove_all(box);
	else {
		mailbox_watch_add(box, t_strconcat(mailbox_get_index_path(box),
			"/"MAIL_INDEX_PREFIX".log", NULL));
	}
}

struct mail_storage sqlbox_storage = {
	.name = SQLBOX_STORAGE_NAME,
	.class_flags = MAIL_STORAGE_CLASS_FLAG_HAVE_MAIL_GUIDS |
		MAIL_STORAGE_CLASS_FLAG_HAVE_MAIL_SAVE_GUIDS,
	.event_category = &event_category_sqlbox,

	.v = {
		.alloc = sqlbox_storage_alloc,
		.create = sqlbox_storage_create,
		.destroy = sqlbox_storage_destroy,
		.get_list_settings = sqlbox_storage_get_list_settings,
		.mailbox_alloc = sqlbox_mailbox_alloc,
	}
};

struct mailbox sqlbox_mailbox = {
	.v = {
		.is_readonly = index_storage_is_readonly,
		.enable = index_storage_mailbox_enable,
		.exists = sqlbox_mailbox_exists,
		.open = sqlbox_mailbox_open,
		.close = sqlbox_mailbox_close,
		.free = index_storage_mailbox_free,
		.create_box = sqlbox_mailbox_create,
		.update_box = sqlbox_mailbox_update,
		.delete_box = sqlbox_mailbox_delete,
		.rename_box = sqlbox_mailbox_rename,
		.get_status = sqlbox_mailbox_get_status,
		.get_metadata = sqlbox_mailbox_get_metadata,
		.set_subscribed = index_storage_set_subscribed,
		.attribute_set = index_storage_attribute_set,
		.attribute_get = index_storage_attribute_get,
		.attribute_iter_init = index_storage_attribute_iter_init,
		.attribute_iter_next = index_storage_attribute_iter_next,
		.attribute_iter_deinit = index_storage_attribute_iter_deinit,
		.list_index_has_changed = sqlbox_list_index_has_changed,
		.list_index_update_sync = index_storage_list_index_update_sync,
		.sync_init = sqlbox_storage_sync_init,
		.sync_next = index_mailbox_sync_next,
		.sync_deinit = index_mailbox_sync_deinit,
		.sync_notify = NULL,
		.notify_changes = sqlbox_notify_changes,
		.transaction_begin = sqlbox_transaction_begin,
		.transaction_commit = sqlbox_transaction_commit,
		.transaction_rollback = sqlbox_transaction_rollback,
		.get_private_flags_mask = NULL,
		.mail_alloc = sqlbox_mail_alloc,
		.search_init = index_storage_search_init,
		.search_deinit = index_storage_search_deinit,
		.search_next_nonblock = index_storage_search_next_nonblock,
		.search_next_update_seq = index_storage_search_next_update_seq,
		.search_next_match_mail = index_storage_search_next_match_mail,
		.save_alloc = sqlbox_save_alloc,
		.save_begin = sqlbox_save_begin,
		.save_continue = sqlbox_save_continue,
		.save_finish = sqlbox_save_finish,
		.save_cancel = sqlbox_save_cancel,
		.copy = sqlbox_copy,
		.transaction_save_commit_pre = sqlbox_transaction_save_commit_pre,
		.transaction_save_commit_post = sqlbox_transaction_save_commit_post,
		.transaction_save_rollback = sqlbox_transaction_save_rollback,
		.is_inconsistent = index_storage_is_inconsistent,
	}
};
