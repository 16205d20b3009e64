/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "auth-common.h"
#include "array.h"
#include "llist.h"
#include "str.h"
#include "str-sanitize.h"
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
	/* hooks run in auth-workers (the passdb is blocking with hooks):
	   initialised only there, never in the auth process that serves
	   the clients */
	if (pop3ext_auth_site_hooks_load(set, worker, &db->site_hooks,
					 &error) < 0)
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

/* A =field=template value, or NULL when an attribute it uses is absent. */
static const char *
field_template_expand(const struct pop3ext_auth_field_map *map,
		      const struct pop3ext_ldap_entry *entry)
{
	const ARRAY_TYPE(const_string) *values;
	string_t *str = t_str_new(64);
	const char *p, *end, *name;

	for (p = map->template; *p != '\0'; p++) {
		if (*p != '%') {
			str_append_c(str, *p);
			continue;
		}
		if (p[1] == '%') {
			str_append_c(str, '%');
			p++;
			continue;
		}
		/* %{ldap:name}, checked when the file was read */
		end = strchr(p, '}');
		i_assert(end != NULL);
		name = t_strdup_until(p + 7, end);
		values = pop3ext_ldap_entry_values(entry, name);
		if (values == NULL || array_count(values) == 0)
			return NULL;
		str_append(str, attribute_value(values));
		p = end;
	}
	return str_c(str);
}

static bool fields_have(ARRAY_TYPE(const_string) *fields, const char *name)
{
	const char *const *f;
	unsigned int i, count;

	f = array_get(fields, &count);
	for (i = 0; i + 1 < count; i += 2) {
		if (strcmp(f[i], name) == 0)
			return TRUE;
	}
	return FALSE;
}

void pop3ext_auth_entry_fields(const struct pop3ext_auth_config *set,
			       const struct pop3ext_ldap_entry *entry,
			       bool passdb, ARRAY_TYPE(const_string) *fields)
{
	const struct pop3ext_auth_field_map *map;
	const ARRAY_TYPE(const_string) *values;
	const char *value;

	/* attributes first, then defaults and composed values for the
	   fields no attribute gave */
	array_foreach(&set->ldap_fields, map) {
		if (map->passdb != passdb || map->template != NULL)
			continue;
		values = pop3ext_ldap_entry_values(entry, map->attribute);
		if (values == NULL || array_count(values) == 0)
			continue;
		value = attribute_value(values);
		array_push_back(fields, &map->field);
		array_push_back(fields, &value);
	}
	array_foreach(&set->ldap_fields, map) {
		if (map->passdb != passdb || map->template == NULL ||
		    fields_have(fields, map->field))
			continue;
		value = field_template_expand(map, entry);
		if (value == NULL)
			continue;
		array_push_back(fields, &map->field);
		array_push_back(fields, &value);
	}
}

void pop3ext_auth_entry_userdb_fields(const struct pop3ext_auth_config *set,
				      const struct pop3ext_ldap_entry *entry,
				      ARRAY_TYPE(const_string) *fields)
{
	pop3ext_auth_entry_fields(set, entry, FALSE, fields);
}

enum pop3ext_auth_name
pop3ext_auth_entry_name(const struct pop3ext_auth_config *set,
			const struct pop3ext_ldap_entry *entry, const char *user,
			const char **name_r, const char **error_r)
{
	const ARRAY_TYPE(const_string) *values;
	const char *name, *error;

	values = pop3ext_ldap_entry_values(entry, set->ldap_username_attribute);
	if (values == NULL || array_count(values) == 0) {
		*error_r = t_strdup_printf(
			"entry %s has no %s (ldap_username_attribute): its "
			"user name can't be checked", str_sanitize(entry->dn, 256),
			set->ldap_username_attribute);
		return POP3EXT_AUTH_NAME_REFUSE;
	}
	array_foreach_elem(values, name) {
		if (strcmp(name, user) == 0)
			return POP3EXT_AUTH_NAME_SAME;
	}
	if (array_count(values) != 1) {
		*error_r = t_strdup_printf(
			"entry %s has several %s values (ldap_username_attribute) "
			"and none is the login name exactly",
			str_sanitize(entry->dn, 256),
			set->ldap_username_attribute);
		return POP3EXT_AUTH_NAME_REFUSE;
	}
	name = array_idx_elem(values, 0);
	if (pop3ext_auth_username_check(name, set->username_max_length,
					&error) < 0) {
		*error_r = t_strdup_printf(
			"entry %s: %s %s is not a valid user name: %s",
			str_sanitize(entry->dn, 256),
			set->ldap_username_attribute, str_sanitize(name, 256),
			error);
		return POP3EXT_AUTH_NAME_REFUSE;
	}
	*name_r = name;
	return POP3EXT_AUTH_NAME_VERIFY;
}

struct name_verify {
	const char *dn, *name, *attribute;
	struct event *event;
	pop3ext_auth_name_callback_t *callback;
	void *context;
};

static void name_verify_found(enum pop3ext_ldap_result lret,
			      struct pop3ext_ldap_entry *entry, void *context)
{
	struct name_verify *verify = context;

	if (lret == POP3EXT_LDAP_OK && strcasecmp(entry->dn, verify->dn) == 0) {
		verify->callback(POP3EXT_LDAP_OK, verify->name,
				 verify->context);
		return;
	}
	if (lret == POP3EXT_LDAP_OK || lret == POP3EXT_LDAP_NOT_FOUND) {
		e_error(verify->event, "the directory names entry %s %s, but "
			"ldap_user_filter with %s finds %s: refusing the login "
			"(two entries must not become one user; set "
			"ldap_username_attribute to the attribute "
			"ldap_user_filter matches)",
			str_sanitize(verify->dn, 256),
			str_sanitize(verify->name, 256),
			str_sanitize(verify->name, 256),
			lret == POP3EXT_LDAP_NOT_FOUND ? "no entry" :
			t_strdup_printf("another entry (%s)",
					str_sanitize(entry->dn, 256)));
		verify->callback(POP3EXT_LDAP_NOT_FOUND, NULL, verify->context);
		return;
	}
	verify->callback(lret, NULL, verify->context);
}

void pop3ext_auth_verify_name(struct pop3ext_auth_db *db, struct event *event,
			      pool_t pool, const struct pop3ext_ldap_entry *entry,
			      const char *name, const char *service,
			      pop3ext_auth_name_callback_t *callback,
			      void *context)
{
	struct name_verify *verify;

	if (db->set->ldap_user_dn_template[0] != '\0') {
		/* the name is the user's if the DN template makes the entry's
		   DN of it */
		const char *dn = pop3ext_auth_template_expand(
			db->set->ldap_user_dn_template, name, service,
			pop3ext_ldap_escape_dn);

		if (strcasecmp(dn, entry->dn) == 0) {
			callback(POP3EXT_LDAP_OK, name, context);
			return;
		}
		e_error(event, "the directory names entry %s %s, but "
			"ldap_user_dn_template with %s is %s: refusing the "
			"login (two entries must not become one user)",
			str_sanitize(entry->dn, 256), str_sanitize(name, 256),
			str_sanitize(name, 256), str_sanitize(dn, 256));
		callback(POP3EXT_LDAP_NOT_FOUND, NULL, context);
		return;
	}
	verify = p_new(pool, struct name_verify, 1);
	verify->dn = entry->dn;
	verify->name = p_strdup(pool, name);
	verify->event = event;
	verify->callback = callback;
	verify->context = context;
	pop3ext_ldap_find_user(db->ldap, event, pool, name, service,
			       name_verify_found, verify);
}
