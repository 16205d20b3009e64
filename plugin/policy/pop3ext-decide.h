#ifndef POP3EXT_DECIDE_H
#define POP3EXT_DECIDE_H

/* What the policy decides about one message: pure functions of the
   policy, the message's facts and the time. */

#include "pop3ext-policy.h"

enum pop3ext_expunge_decision {
	/* the expunge may happen */
	POP3EXT_EXPUNGE_ALLOW = 0,
	/* pop3ext_legal_hold: nothing is expunged */
	POP3EXT_EXPUNGE_HOLD_LEGAL,
	/* the message is younger than pop3ext_min_age */
	POP3EXT_EXPUNGE_HOLD_MIN_AGE,
};

/* May a message saved at save_date be expunged now? */
enum pop3ext_expunge_decision
pop3ext_decide_expunge(const struct pop3ext_policy *policy,
		       time_t save_date, time_t now);
/* "allow", "held:legal_hold", "held:min_age" */
const char *pop3ext_expunge_decision_name(enum pop3ext_expunge_decision d);

/* Has the message reached pop3ext_max_age? */
bool pop3ext_decide_max_age_reached(const struct pop3ext_policy *policy,
				    time_t save_date, time_t now);
/* Has the message, first retrieved at retr_time, reached
   pop3ext_expire_after_retr? */
bool pop3ext_decide_retr_expired(const struct pop3ext_policy *policy,
				 time_t retr_time, time_t now);

/* Adds secs to t without overflowing (POP3EXT_NEVER never elapses). */
time_t pop3ext_time_add(time_t t, unsigned int secs);

#endif
