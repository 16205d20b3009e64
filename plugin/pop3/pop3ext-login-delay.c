/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* pop3ext_login_delay / pop3ext_login_delay_burst (RFC 2449 LOGIN-DELAY):
   a user may log in at most <burst> times within <delay> seconds. The
   times of the recent logins live in a Dovecot dict
   (pop3ext_login_delay_dict), so that all servers sharing it agree.

   The decision is made when the pop3 session is created, before Dovecot
   sends "+OK Logged in." (a ready hook of the session): a refused login
   gets -ERR [LOGIN-DELAY] instead, and the dispatcher ends its session as
   soon as pop3 has set it up (pop3 cannot be stopped earlier).

   If the dict fails, the login is allowed and the error logged: the delay
   is a rate limit, and an unreachable dict must not lock everybody out. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "sort.h"
#include "ostream.h"
#include "dict.h"
#include "mail-user.h"
#include "mail-storage-settings.h"
#include "pop3ext-plugin.h"
#include "pop3ext-pop3-private.h"

#define POP3EXT_LOGIN_DELAY_KEY DICT_PATH_PRIVATE"pop3ext/login-times"

/* Parses "t1 t2 ..." (unix times); ignores what is not a time. */
static void parse_times(const char *value, ARRAY_TYPE(uint32_t) *times)
{
	const char *const *p;
	uint32_t t;

	if (value == NULL)
		return;
	for (p = t_strsplit_spaces(value, " "); *p != NULL; p++) {
		if (str_to_uint32(*p, &t) == 0)
			array_push_back(times, &t);
	}
}

/* Returns the seconds to wait (0: the login may go ahead), or -1 if the
   dict failed. The allowed login is recorded. */
static int login_delay_lookup(struct mail_user *user,
			      const struct pop3ext_policy *policy,
			      struct event *event)
{
	struct dict_settings set;
	struct dict *dict;
	struct dict_transaction_context *trans;
	const struct dict_op_settings *op_set;
	ARRAY_TYPE(uint32_t) times;
	const char *value, *error;
	string_t *str;
	const uint32_t *sorted;
	uint32_t t, now = ioloop_time, oldest = 0;
	unsigned int recent = 0, i, count;
	int ret;

	i_zero(&set);
	set.base_dir = user->set->base_dir;
	set.event_parent = event;
	if (dict_init(policy->login_delay_dict, &set, &dict, &error) < 0) {
		e_error(event, "pop3ext_login_delay_dict: dict_init(%s) "
			"failed: %s", policy->login_delay_dict, error);
		return -1;
	}
	op_set = mail_user_get_dict_op_settings(user);
	/* Dovecot 2.3's dict_lookup() reads *error_r after a success too */
	error = NULL;
	ret = dict_lookup(dict, op_set, pool_datastack_create(),
			  POP3EXT_LOGIN_DELAY_KEY, &value, &error);
	if (ret < 0) {
		e_error(event, "pop3ext_login_delay_dict: lookup failed: %s",
			error);
		dict_deinit(&dict);
		return -1;
	}
	t_array_init(&times, policy->login_delay_burst + 1);
	parse_times(ret > 0 ? value : NULL, &times);

	/* logins within the delay window */
	array_foreach_elem(&times, t) {
		if (t <= now && now - t < policy->login_delay) {
			if (recent == 0 || t < oldest)
				oldest = t;
			recent++;
		}
	}
	if (recent >= policy->login_delay_burst) {
		dict_deinit(&dict);
		return oldest + policy->login_delay - now;
	}

	/* allowed: remember this login and the latest others */
	array_push_back(&times, &now);
	array_sort(&times, uint32_cmp);
	sorted = array_get(&times, &count);
	str = t_str_new(64);
	for (i = count > policy->login_delay_burst ?
		     count - policy->login_delay_burst : 0; i < count; i++) {
		if (str_len(str) > 0)
			str_append_c(str, ' ');
		str_printfa(str, "%u", sorted[i]);
	}
	trans = dict_transaction_begin(dict, op_set);
	dict_set(trans, POP3EXT_LOGIN_DELAY_KEY, str_c(str));
	if (dict_transaction_commit(&trans, &error) < 0) {
		e_error(event, "pop3ext_login_delay_dict: commit failed: %s",
			error);
		dict_deinit(&dict);
		return -1;
	}
	dict_deinit(&dict);
	return 0;
}

/* The session's ready hook: refuses a login beyond the burst. */
static bool pop3ext_login_delay_ready(struct client *client,
				      void *context ATTR_UNUSED,
				      const char **reason_r)
{
	struct pop3ext_user *puser = pop3ext_user_get(client->user);
	const struct pop3ext_policy *policy;
	struct event *event;
	int wait;

	if (puser == NULL || puser->policy_error != NULL)
		return TRUE;
	policy = &puser->policy;
	/* recent: logins too: the same password, the same limit */
	if (policy->login_delay == 0)
		return TRUE;
	event = event_create(client->user->event);
	event_set_append_log_prefix(event, "pop3ext_pop3: ");
	wait = login_delay_lookup(client->user, policy, event);
	event_unref(&event);
	if (wait <= 0)
		return TRUE;

	pop3ext_audit_command(puser, "pop3ext_refusal", "LOGIN",
			      "pop3ext_login_delay", "refused");
	client_send_line(client, "-ERR [LOGIN-DELAY] Logins are limited to "
			 "%u per %u seconds; try again in %d seconds.",
			 policy->login_delay_burst, policy->login_delay, wait);
	*reason_r = "Login delayed (pop3ext_login_delay)";
	return FALSE;
}

static const struct pop3ext_pop3_session_hooks pop3ext_login_delay_session = {
	.ready = pop3ext_login_delay_ready,
};

void pop3ext_login_delay_init(void)
{
	pop3ext_pop3_session_hooks_register(&pop3ext_login_delay_session, NULL);
}

void pop3ext_login_delay_deinit(void)
{
	pop3ext_pop3_session_hooks_unregister(&pop3ext_login_delay_session,
					      NULL);
}
