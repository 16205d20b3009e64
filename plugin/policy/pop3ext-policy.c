/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "str-sanitize.h"
#include "utc-mktime.h"
#include "settings-parser.h"
#include "pop3ext-policy.h"

#include <ctype.h>

#define DAY_SECS (24*60*60)
#define MAILBOX_NAME_MAX_LEN 255
#define LOGIN_DELAY_BURST_MAX 100

struct pop3ext_setting_def {
	const char *name;
	const char *default_value;
	int (*parse)(pool_t pool, const char *value,
		     struct pop3ext_policy *policy, const char **error_r);
};

/*
 * Value parsers
 */

int pop3ext_parse_interval(const char *str, unsigned int *secs_r,
			   const char **error_r)
{
	unsigned int secs;

	if (strcasecmp(str, "never") == 0) {
		*secs_r = POP3EXT_NEVER;
		return 0;
	}
	/* Dovecot's own intervals: 30d, 30 days, 2 weeks, 12h, 90 mins */
	if (settings_get_time(str, &secs, error_r) < 0)
		return -1;
	/* POP3EXT_NEVER is not a valid finite value */
	if (secs == POP3EXT_NEVER) {
		*error_r = "interval too long";
		return -1;
	}
	*secs_r = secs;
	return 0;
}

static int parse_fixed_digits(const char **p, unsigned int digits, int *num_r)
{
	int num = 0;

	for (; digits > 0; digits--, (*p)++) {
		if (!i_isdigit(**p))
			return -1;
		num = num * 10 + (**p - '0');
	}
	*num_r = num;
	return 0;
}

int pop3ext_parse_date(const char *str, time_t *time_r, const char **error_r)
{
	struct tm tm;
	const char *p = str;
	int year, mon, day, hour = 0, min = 0, sec = 0, tz_h, tz_m, tz = 0;
	time_t t;

	i_zero(&tm);
	if (parse_fixed_digits(&p, 4, &year) < 0 || *p++ != '-' ||
	    parse_fixed_digits(&p, 2, &mon) < 0 || *p++ != '-' ||
	    parse_fixed_digits(&p, 2, &day) < 0)
		goto invalid;
	if (*p == 'T' || *p == 't') {
		p++;
		if (parse_fixed_digits(&p, 2, &hour) < 0 || *p++ != ':' ||
		    parse_fixed_digits(&p, 2, &min) < 0)
			goto invalid;
		if (*p == ':') {
			p++;
			if (parse_fixed_digits(&p, 2, &sec) < 0)
				goto invalid;
		}
		if (*p == 'Z' || *p == 'z')
			p++;
		else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1;
			if (parse_fixed_digits(&p, 2, &tz_h) < 0 ||
			    *p++ != ':' || parse_fixed_digits(&p, 2, &tz_m) < 0 ||
			    tz_h > 23 || tz_m > 59)
				goto invalid;
			tz = sign * (tz_h * 60 + tz_m) * 60;
		} else
			goto invalid;
	}
	if (*p != '\0')
		goto invalid;
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 ||
	    hour > 23 || min > 59 || sec > 59)
		goto invalid;

	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = utc_mktime(&tm);
	if (t == (time_t)-1)
		goto invalid;
	/* utc_mktime() normalizes 2026-02-31 into March: refuse that */
	struct tm *check = gmtime(&t);
	if (check == NULL || check->tm_mday != day || check->tm_mon != mon - 1)
		goto invalid;
	*time_r = t - tz;
	return 0;
invalid:
	*error_r = "not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z) "
		"or first-login";
	return -1;
}

static int parse_bool(const char *value, bool *bool_r, const char **error_r)
{
	if (strcasecmp(value, "yes") == 0)
		*bool_r = TRUE;
	else if (strcasecmp(value, "no") == 0)
		*bool_r = FALSE;
	else {
		*error_r = "must be yes or no";
		return -1;
	}
	return 0;
}

/* "archive:<mailbox>": returns the mailbox, or NULL with an error */
static const char *
parse_archive(pool_t pool, const char *value, const char **error_r)
{
	const char *mailbox;

	if (strncasecmp(value, "archive:", 8) != 0)
		return NULL;
	mailbox = value + 8;
	if (*mailbox == '\0') {
		*error_r = "archive: needs a mailbox name";
		return NULL;
	}
	if (strlen(mailbox) > MAILBOX_NAME_MAX_LEN) {
		*error_r = "archive mailbox name too long";
		return NULL;
	}
	for (const char *p = mailbox; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "control characters in the archive mailbox "
				"name";
			return NULL;
		}
	}
	if (strcasecmp(mailbox, "INBOX") == 0) {
		*error_r = "the archive mailbox cannot be INBOX";
		return NULL;
	}
	return p_strdup(pool, mailbox);
}

static int parse_on_dele(pool_t pool, const char *value,
			 struct pop3ext_policy *policy, const char **error_r)
{
	const char *error = NULL;

	if (strcasecmp(value, "expunge") == 0)
		policy->on_dele = POP3EXT_ON_DELE_EXPUNGE;
	else if (strcasecmp(value, "hide") == 0)
		policy->on_dele = POP3EXT_ON_DELE_HIDE;
	else if (strcasecmp(value, "refuse") == 0)
		policy->on_dele = POP3EXT_ON_DELE_REFUSE;
	else if ((policy->on_dele_archive =
		  parse_archive(pool, value, &error)) != NULL)
		policy->on_dele = POP3EXT_ON_DELE_ARCHIVE;
	else {
		*error_r = error != NULL ? error :
			"must be expunge, hide, archive:<mailbox> or refuse";
		return -1;
	}
	return 0;
}

static int parse_on_retr(pool_t pool, const char *value,
			 struct pop3ext_policy *policy, const char **error_r)
{
	const char *error = NULL;

	if (strcasecmp(value, "keep") == 0)
		policy->on_retr = POP3EXT_ON_RETR_KEEP;
	else if (strcasecmp(value, "seen") == 0)
		policy->on_retr = POP3EXT_ON_RETR_SEEN;
	else if (strcasecmp(value, "hide") == 0)
		policy->on_retr = POP3EXT_ON_RETR_HIDE;
	else if (strcasecmp(value, "expunge") == 0)
		policy->on_retr = POP3EXT_ON_RETR_EXPUNGE;
	else if ((policy->on_retr_archive =
		  parse_archive(pool, value, &error)) != NULL)
		policy->on_retr = POP3EXT_ON_RETR_ARCHIVE;
	else {
		*error_r = error != NULL ? error :
			"must be keep, seen, hide, archive:<mailbox> or expunge";
		return -1;
	}
	return 0;
}

static int parse_expire_after_retr(pool_t pool ATTR_UNUSED, const char *value,
				   struct pop3ext_policy *policy,
				   const char **error_r)
{
	return pop3ext_parse_interval(value, &policy->expire_after_retr,
				      error_r);
}

static int parse_max_age(pool_t pool ATTR_UNUSED, const char *value,
			 struct pop3ext_policy *policy, const char **error_r)
{
	return pop3ext_parse_interval(value, &policy->max_age, error_r);
}

static int parse_min_age(pool_t pool ATTR_UNUSED, const char *value,
			 struct pop3ext_policy *policy, const char **error_r)
{
	if (pop3ext_parse_interval(value, &policy->min_age, error_r) < 0)
		return -1;
	if (policy->min_age == POP3EXT_NEVER) {
		*error_r = "never is not a minimum age (use pop3ext_legal_hold)";
		return -1;
	}
	return 0;
}

static int parse_legal_hold(pool_t pool ATTR_UNUSED, const char *value,
			    struct pop3ext_policy *policy, const char **error_r)
{
	return parse_bool(value, &policy->legal_hold, error_r);
}

static int parse_visible_since(pool_t pool ATTR_UNUSED, const char *value,
			       struct pop3ext_policy *policy,
			       const char **error_r)
{
	if (*value == '\0')
		policy->visible_since = 0;
	else if (strcasecmp(value, "first-login") == 0)
		policy->visible_since_first_login = TRUE;
	else
		return pop3ext_parse_date(value, &policy->visible_since,
					  error_r);
	return 0;
}

static int parse_recent_window(pool_t pool ATTR_UNUSED, const char *value,
			       struct pop3ext_policy *policy,
			       const char **error_r)
{
	if (pop3ext_parse_interval(value, &policy->recent_window, error_r) < 0)
		return -1;
	if (policy->recent_window == POP3EXT_NEVER) {
		*error_r = "must be a finite interval";
		return -1;
	}
	return 0;
}

static int parse_view(pool_t pool ATTR_UNUSED, const char *value,
		      struct pop3ext_policy *policy, const char **error_r)
{
	if (strcasecmp(value, "normal") == 0)
		policy->view = POP3EXT_VIEW_NORMAL;
	else if (strcasecmp(value, "recent") == 0)
		policy->view = POP3EXT_VIEW_RECENT;
	else {
		*error_r = "must be normal or recent";
		return -1;
	}
	return 0;
}

static int parse_audit(pool_t pool ATTR_UNUSED, const char *value,
		       struct pop3ext_policy *policy, const char **error_r)
{
	return parse_bool(value, &policy->audit, error_r);
}

static int parse_login_delay(pool_t pool ATTR_UNUSED, const char *value,
			     struct pop3ext_policy *policy,
			     const char **error_r)
{
	if (pop3ext_parse_interval(value, &policy->login_delay, error_r) < 0)
		return -1;
	if (policy->login_delay == POP3EXT_NEVER) {
		*error_r = "must be a finite interval (0 for no delay)";
		return -1;
	}
	return 0;
}

static int parse_login_delay_burst(pool_t pool ATTR_UNUSED, const char *value,
				   struct pop3ext_policy *policy,
				   const char **error_r)
{
	if (str_to_uint(value, &policy->login_delay_burst) < 0 ||
	    policy->login_delay_burst < 1 ||
	    policy->login_delay_burst > LOGIN_DELAY_BURST_MAX) {
		*error_r = t_strdup_printf("must be a number from 1 to %u",
					   LOGIN_DELAY_BURST_MAX);
		return -1;
	}
	return 0;
}

static int parse_login_delay_dict(pool_t pool, const char *value,
				  struct pop3ext_policy *policy,
				  const char **error_r)
{
	if (*value != '\0' && strchr(value, ':') == NULL) {
		*error_r = "must be a dict URI (e.g. file:/var/lib/... or "
			"redis:host=...)";
		return -1;
	}
	policy->login_delay_dict = p_strdup(pool, value);
	return 0;
}

static const struct pop3ext_setting_def pop3ext_setting_defs[] = {
	[POP3EXT_SET_ON_DELE] = { "pop3ext_on_dele", "expunge", parse_on_dele },
	[POP3EXT_SET_ON_RETR] = { "pop3ext_on_retr", "keep", parse_on_retr },
	[POP3EXT_SET_EXPIRE_AFTER_RETR] = { "pop3ext_expire_after_retr",
					    "never", parse_expire_after_retr },
	[POP3EXT_SET_MAX_AGE] = { "pop3ext_max_age", "never", parse_max_age },
	[POP3EXT_SET_MIN_AGE] = { "pop3ext_min_age", "0", parse_min_age },
	[POP3EXT_SET_LEGAL_HOLD] = { "pop3ext_legal_hold", "no",
				     parse_legal_hold },
	[POP3EXT_SET_VISIBLE_SINCE] = { "pop3ext_visible_since", "",
					parse_visible_since },
	[POP3EXT_SET_RECENT_WINDOW] = { "pop3ext_recent_window", "30d",
					parse_recent_window },
	[POP3EXT_SET_VIEW] = { "pop3ext_view", "normal", parse_view },
	[POP3EXT_SET_AUDIT] = { "pop3ext_audit", "no", parse_audit },
	[POP3EXT_SET_LOGIN_DELAY] = { "pop3ext_login_delay", "0",
				      parse_login_delay },
	[POP3EXT_SET_LOGIN_DELAY_BURST] = { "pop3ext_login_delay_burst", "1",
					    parse_login_delay_burst },
	[POP3EXT_SET_LOGIN_DELAY_DICT] = { "pop3ext_login_delay_dict", "",
					   parse_login_delay_dict },
};

const char *pop3ext_policy_setting_name(enum pop3ext_setting setting)
{
	i_assert(setting < POP3EXT_SET_COUNT);
	return pop3ext_setting_defs[setting].name;
}

const char *pop3ext_policy_setting_default(enum pop3ext_setting setting)
{
	i_assert(setting < POP3EXT_SET_COUNT);
	return pop3ext_setting_defs[setting].default_value;
}

const char *pop3ext_policy_value(const struct pop3ext_policy *policy,
				 enum pop3ext_setting setting)
{
	i_assert(setting < POP3EXT_SET_COUNT);
	return policy->values[setting] != NULL ? policy->values[setting] :
		pop3ext_setting_defs[setting].default_value;
}

const char *pop3ext_source_name(enum pop3ext_source source)
{
	switch (source) {
	case POP3EXT_SOURCE_DEFAULT:
		return "default";
	case POP3EXT_SOURCE_PLUGIN:
		return "plugin";
	case POP3EXT_SOURCE_USERDB:
		return "userdb";
	}
	i_unreached();
}

int pop3ext_policy_parse(pool_t pool, pop3ext_policy_lookup_t *lookup,
			 void *context, struct pop3ext_policy *policy_r,
			 const char **error_r)
{
	const struct pop3ext_setting_def *def;
	enum pop3ext_source source;
	const char *value, *error;
	unsigned int i;

	i_zero(policy_r);
	for (i = 0; i < POP3EXT_SET_COUNT; i++) {
		def = &pop3ext_setting_defs[i];
		i_assert(def->name != NULL);
		if (def->parse(pool, def->default_value, policy_r, &error) < 0)
			i_panic("pop3ext: bad default %s: %s", def->name, error);
	}
	for (i = 0; i < POP3EXT_SET_COUNT; i++) {
		def = &pop3ext_setting_defs[i];
		source = POP3EXT_SOURCE_DEFAULT;
		value = lookup(def->name, &source, context);
		if (value == NULL)
			continue;
		policy_r->sources[i] = source;
		policy_r->values[i] = p_strdup(pool, value);
		if (def->parse(pool, value, policy_r, &error) < 0) {
			*error_r = t_strdup_printf("%s=%s (from %s): %s",
				def->name, str_sanitize(value, 128),
				pop3ext_source_name(source), error);
			return -1;
		}
	}
	if (policy_r->login_delay > 0 && *policy_r->login_delay_dict == '\0') {
		*error_r = t_strdup_printf("%s=%s (from %s): needs %s (a dict "
			"that all servers share, to remember logins)",
			pop3ext_setting_defs[POP3EXT_SET_LOGIN_DELAY].name,
			policy_r->values[POP3EXT_SET_LOGIN_DELAY],
			pop3ext_source_name(
				policy_r->sources[POP3EXT_SET_LOGIN_DELAY]),
			pop3ext_setting_defs[POP3EXT_SET_LOGIN_DELAY_DICT].name);
		return -1;
	}
	return 0;
}

int pop3ext_policy_check_value(enum pop3ext_setting setting, const char *value,
			       const char **error_r)
{
	struct pop3ext_policy scratch;

	i_assert(setting < POP3EXT_SET_COUNT);
	i_zero(&scratch);
	return pop3ext_setting_defs[setting].parse(pool_datastack_create(),
						   value, &scratch, error_r);
}

const char *
pop3ext_policy_expire_capability(const struct pop3ext_policy *policy)
{
	unsigned int secs;

	switch (policy->on_retr) {
	case POP3EXT_ON_RETR_HIDE:
	case POP3EXT_ON_RETR_ARCHIVE:
	case POP3EXT_ON_RETR_EXPUNGE:
		/* retrieved mail leaves the POP3 mailbox at QUIT */
		return "0";
	case POP3EXT_ON_RETR_KEEP:
	case POP3EXT_ON_RETR_SEEN:
		break;
	}
	if (policy->legal_hold)
		return "NEVER";
	secs = I_MIN(policy->expire_after_retr, policy->max_age);
	if (secs == POP3EXT_NEVER)
		return "NEVER";
	/* never promise more than is kept: whole days, rounded down */
	return dec2str(secs / DAY_SECS);
}
