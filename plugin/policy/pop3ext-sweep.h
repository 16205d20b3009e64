#ifndef POP3EXT_SWEEP_H
#define POP3EXT_SWEEP_H

struct mail_user;

struct pop3ext_sweep_result {
	/* messages expunged (or, in a dry run, that would be) and their
	   size */
	unsigned int messages;
	uoff_t bytes;
	/* of those: reasons */
	unsigned int retr_expired, max_age, held_completed;
	/* due, but held by pop3ext_legal_hold / pop3ext_min_age */
	unsigned int held;
};

/* Applies the user's policy to what is due: INBOX messages whose
   pop3ext_expire_after_retr or pop3ext_max_age has come, and expunges held
   earlier that are now allowed. Its cost grows with what is due, not with
   the mailbox: it reads the retrieval log up to the first entry not yet
   due, INBOX from the oldest message up to the first one younger than
   max_age, and the held-expunge log. A dry run changes nothing.
   Returns 0, or -1 with *error_r. */
int pop3ext_sweep_user(struct mail_user *user, bool dry_run,
		       struct pop3ext_sweep_result *result_r,
		       const char **error_r);

#endif
