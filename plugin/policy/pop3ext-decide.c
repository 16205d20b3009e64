/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "pop3ext-decide.h"

/* far enough: the year 36812 (time_t is 64-bit on the supported systems) */
#define POP3EXT_TIME_MAX ((time_t)1 << 40)

time_t pop3ext_time_add(time_t t, unsigned int secs)
{
	if (secs == POP3EXT_NEVER || t > POP3EXT_TIME_MAX - (time_t)secs)
		return POP3EXT_TIME_MAX;
	return t + secs;
}

enum pop3ext_expunge_decision
pop3ext_decide_expunge(const struct pop3ext_policy *policy,
		       time_t save_date, time_t now)
{
	if (policy->legal_hold)
		return POP3EXT_EXPUNGE_HOLD_LEGAL;
	/* a save date in the future (clock skew) counts as young */
	if (policy->min_age > 0 &&
	    (save_date > now ||
	     pop3ext_time_add(save_date, policy->min_age) > now))
		return POP3EXT_EXPUNGE_HOLD_MIN_AGE;
	return POP3EXT_EXPUNGE_ALLOW;
}

const char *pop3ext_expunge_decision_name(enum pop3ext_expunge_decision d)
{
	switch (d) {
	case POP3EXT_EXPUNGE_ALLOW:
		return "allow";
	case POP3EXT_EXPUNGE_HOLD_LEGAL:
		return "held:legal_hold";
	case POP3EXT_EXPUNGE_HOLD_MIN_AGE:
		return "held:min_age";
	}
	i_unreached();
}

bool pop3ext_decide_max_age_reached(const struct pop3ext_policy *policy,
				    time_t save_date, time_t now)
{
	return policy->max_age != POP3EXT_NEVER &&
		pop3ext_time_add(save_date, policy->max_age) <= now;
}

bool pop3ext_decide_retr_expired(const struct pop3ext_policy *policy,
				 time_t retr_time, time_t now)
{
	return policy->expire_after_retr != POP3EXT_NEVER &&
		pop3ext_time_add(retr_time, policy->expire_after_retr) <= now;
}
