/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "auth-common.h"
#include "array.h"
#include "llist.h"
#include "str.h"
#include "pop3ext-auth-escape.h"
#include "pop3ext-auth-ldap.h"
#include "pop3ext-auth-site-loader.h"
#include "pop3ext-auth.h"

static struct pop3ext_auth_db *pop3ext_auth_dbs = NULL;

struct pop3ext_auth_db *
pop3ext_auth_db_get(const char *what, const char *args)
{
	struct pop3ext_auth_db *db;
	const struct pop3ext_auth_config *set;
	const char *error, *path = t_str_trim(args, " \t");
	pool_t pool;

	if (strpbrk(path, " \t") != NULL) {
		i_fatal("pop3ext: %s args: expected only the path of the "
			"configuration file, not: %s", what, args);
	}

	for (db = pop3ext_auth_dbs; db != NULL; db = db->next) {
		if (strcmp(db->set->path, path) == 0) {
			db->refcount++;
			return db;
		}
	}

	pool = pool_alloconly_create("pop3ext auth db", 4096);
	if (pop3ext_auth_config_read(pool, path, &set, &error) < 0)
		i_fatal("pop3ext: %s", error);
	db = p_new(pool, struct pop3ext_auth_db, 1);
	db->refcount = 1;
	db->pool = pool;
	db->set = set;
	if (pop3ext_auth_site_hooks_load(set, &db->site_hooks, &error) < 0)
		i_fatal("pop3ext: %s", error);
	if (set->password_check == POP3EXT_AUTH_PASSWORD_LDAP ||
	    set->attributes == POP3EXT_AUTH_ATTRIBUTES_LDAP) {
		/* in auth-workers each operation waits for its answer */
		db->ldap = pop3ext_ldap_init(set, worker, &error);
		if (db->ldap == NULL)
			i_fatal("pop3ext: %s: %s", set->path, error);
	}
	DLLIST_PREPEND(&pop3ext_auth_dbs, db);
	return db;
}

void pop3ext_auth_db_unref(struct pop3ext_auth_db **_db)
{
	struct pop3ext_auth_db *db = *_db;

	*_db = NULL;
	i_assert(db->refcount > 0);
	if (--db->refcount > 0)
		return;
	DLLIST_REMOVE(&pop3ext_auth_dbs, db);
	pop3ext_ldap_deinit(&db->ldap);
	pop3ext_auth_site_hooks_unload(&db->site_hooks);
	pool_unref(&db->pool);
}

bool pop3ext_auth_strip_recent(const struct pop3ext_auth_config *set,
			       const char **user)
{
	size_t len = strlen(set->recent_prefix);

	if (len == 0 || strncmp(*user, set->recent_prefix, len) != 0)
		return FALSE;
	*user += len;
	return TRUE;
}

/* LDAP Booleans are "TRUE"/"FALSE"; Dovecot settings say yes/no. Several
   values of one attribute become one comma-separated value. */
static const char *
attribute_value(const ARRAY_TYPE(const_string) *values)
{
	const char *const *v;
	unsigned int i, count;
	string_t *str;

	v = array_get(values, &count);
	if (count == 1) {
		if (strcmp(v[0], "TRUE") == 0)
			return "yes";
		if (strcmp(v[0], "FALSE") == 0)
			return "no";
		return v[0];
	}
	str = t_str_new(64);
	for (i = 0; i < count; i++) {
		if (i > 0)
			str_append_c(str, ',');
		str_append(str, v[i]);
	}
	return str_c(str);
}

void pop3ext_auth_entry_userdb_fields(const struct pop3ext_auth_config *set,
				      const struct pop3ext_ldap_entry *entry,
				      ARRAY_TYPE(const_string) *fields)
{
	const struct pop3ext_auth_field_map *map;
	const ARRAY_TYPE(const_string) *values;
	const char *value;

	array_foreach(&set->ldap_fields, map) {
		values = pop3ext_ldap_entry_values(entry, map->attribute);
		if (values == NULL || array_count(values) == 0)
			continue;
		value = attribute_value(values);
		array_push_back(fields, &map->field);
		array_push_back(fields, &value);
	}
}

const char *pop3ext_auth_entry_username(const struct pop3ext_auth_config *set,
					const struct pop3ext_ldap_entry *entry,
					const char *user)
{
	const ARRAY_TYPE(const_string) *values;
	const char *name, *error;

	values = pop3ext_ldap_entry_values(entry, set->ldap_username_attribute);
	if (values == NULL || array_count(values) != 1)
		return NULL;
	name = array_idx_elem(values, 0);
	if (strcmp(name, user) == 0 ||
	    pop3ext_auth_username_check(name, set->username_max_length,
					&error) < 0)
		return NULL;
	return name;
}
