#ifndef POP3EXT_POLICY_H
#define POP3EXT_POLICY_H

/* A user's retention and leave-on-server policy: every pop3ext_* setting,
   parsed once, strictly, from a lookup function (plugin {} settings with
   userdb overrides in a mail process; anything in the unit tests). */

/* an interval that never elapses */
#define POP3EXT_NEVER ((unsigned int)-1)

enum pop3ext_on_dele {
	POP3EXT_ON_DELE_EXPUNGE = 0,
	POP3EXT_ON_DELE_HIDE,
	POP3EXT_ON_DELE_ARCHIVE,
	POP3EXT_ON_DELE_REFUSE,
};

enum pop3ext_on_retr {
	POP3EXT_ON_RETR_KEEP = 0,
	POP3EXT_ON_RETR_SEEN,
	POP3EXT_ON_RETR_HIDE,
	POP3EXT_ON_RETR_ARCHIVE,
	POP3EXT_ON_RETR_EXPUNGE,
};

enum pop3ext_view {
	POP3EXT_VIEW_NORMAL = 0,
	/* a recent: login: every message of the recent window, hidden or
	   not, read-only */
	POP3EXT_VIEW_RECENT,
};

enum pop3ext_source {
	POP3EXT_SOURCE_DEFAULT = 0,
	POP3EXT_SOURCE_PLUGIN,
	POP3EXT_SOURCE_USERDB,
};

enum pop3ext_setting {
	POP3EXT_SET_ON_DELE = 0,
	POP3EXT_SET_ON_RETR,
	POP3EXT_SET_EXPIRE_AFTER_RETR,
	POP3EXT_SET_MAX_AGE,
	POP3EXT_SET_MIN_AGE,
	POP3EXT_SET_LEGAL_HOLD,
	POP3EXT_SET_VISIBLE_SINCE,
	POP3EXT_SET_RECENT_WINDOW,
	POP3EXT_SET_VIEW,
	POP3EXT_SET_AUDIT,
	POP3EXT_SET_LOGIN_DELAY,
	POP3EXT_SET_LOGIN_DELAY_BURST,
	POP3EXT_SET_LOGIN_DELAY_DICT,

	POP3EXT_SET_COUNT
};

struct pop3ext_policy {
	enum pop3ext_on_dele on_dele;
	enum pop3ext_on_retr on_retr;
	/* the archive mailbox of on_dele / on_retr = archive:<mailbox> */
	const char *on_dele_archive, *on_retr_archive;

	/* seconds, or POP3EXT_NEVER */
	unsigned int expire_after_retr;
	unsigned int max_age;
	/* seconds; 0 = no minimum */
	unsigned int min_age;
	bool legal_hold;

	/* POP3 lists only mail saved at or after this time (0 = all) */
	time_t visible_since;
	/* visible_since is the user's first POP3 login (recorded then) */
	bool visible_since_first_login;
	unsigned int recent_window;
	enum pop3ext_view view;

	bool audit;

	/* seconds between logins; 0 = no limit */
	unsigned int login_delay;
	unsigned int login_delay_burst;
	const char *login_delay_dict;

	/* where each value came from, and the value as given (NULL for a
	   default) */
	enum pop3ext_source sources[POP3EXT_SET_COUNT];
	const char *values[POP3EXT_SET_COUNT];
};

/* Returns the value of setting name and where it came from, or NULL when
   it is not set. */
typedef const char *
pop3ext_policy_lookup_t(const char *name, enum pop3ext_source *source_r,
			void *context);

/* The name of a setting ("pop3ext_on_dele", ...). */
const char *pop3ext_policy_setting_name(enum pop3ext_setting setting);
/* The default of a setting, as text. */
const char *pop3ext_policy_setting_default(enum pop3ext_setting setting);
/* The effective value of a setting, as text (the given value, or the
   default). */
const char *pop3ext_policy_value(const struct pop3ext_policy *policy,
				 enum pop3ext_setting setting);
const char *pop3ext_source_name(enum pop3ext_source source);

/* Reads every setting through lookup into policy_r (strings from pool).
   Returns 0 on success, -1 if a value is malformed: *error_r then names
   the setting and the value (the first malformed one). */
int pop3ext_policy_parse(pool_t pool, pop3ext_policy_lookup_t *lookup,
			 void *context, struct pop3ext_policy *policy_r,
			 const char **error_r);

/* Checks one value of a setting on its own; returns 0 or -1 with an
   error. */
int pop3ext_policy_check_value(enum pop3ext_setting setting, const char *value,
			       const char **error_r);

/* Dovecot's time intervals ("30d", "30 days", "2 weeks", "12h", "90 mins",
   "45s", "0"; settings_get_time()) or "never" (case-insensitive). A
   number needs a unit unless it is 0. */
int pop3ext_parse_interval(const char *str, unsigned int *secs_r,
			   const char **error_r);
/* "YYYY-MM-DD" (UTC midnight) or "YYYY-MM-DDTHH:MM[:SS](Z|+HH:MM|-HH:MM)" */
int pop3ext_parse_date(const char *str, time_t *time_r, const char **error_r);

/* RFC 2449 EXPIRE value that matches what will happen to retrieved mail:
   "0", a number of days, or "NEVER". */
const char *pop3ext_policy_expire_capability(const struct pop3ext_policy *policy);

#endif
