#ifndef POP3EXT_STATE_H
#define POP3EXT_STATE_H

/* A user's pop3ext state, kept in files beside the mail (<home>/.pop3ext/)
   so that it works on every mail storage and survives the loss of
   Dovecot's index files:

   - retrieved.log: the first POP3 retrieval of each INBOX message
     (pop3ext_expire_after_retr), appended in time order at QUIT;
     retrieved.offset tells how much of it the sweep has consumed;
   - held.log: expunges held by pop3ext_min_age / pop3ext_legal_hold, which
     the sweep completes once allowed;
   - first-login: the user's first POP3 login (pop3ext_visible_since =
     first-login): its time and INBOX's UIDVALIDITY and UIDNEXT then, so
     that "from now on" means exactly the messages that arrived later.

   Appends are written in one write() and fdatasync()ed before they are
   relied on. Writers serialize on a lock file. A line that cannot be
   parsed is reported (file and line) and skipped: a skipped line can only
   delay an expunge, never cause one. */

struct event;

struct pop3ext_retrieval {
	uint32_t uidvalidity, uid;
	const char *guid;
	time_t time;
	/* offset just past this entry in retrieved.log (reading only) */
	uoff_t end_offset;
};
ARRAY_DEFINE_TYPE(pop3ext_retrieval, struct pop3ext_retrieval);

struct pop3ext_held {
	const char *mailbox;
	uint32_t uidvalidity, uid;
	const char *guid;
	time_t save_date, held_time;
	/* "legal_hold" or "min_age" */
	const char *reason;
};
ARRAY_DEFINE_TYPE(pop3ext_held, struct pop3ext_held);

struct pop3ext_state *
pop3ext_state_init(const char *dir, struct event *event);
void pop3ext_state_deinit(struct pop3ext_state **state);
const char *pop3ext_state_dir(struct pop3ext_state *state);

int pop3ext_state_append_retrievals(struct pop3ext_state *state,
				    const ARRAY_TYPE(pop3ext_retrieval) *entries,
				    const char **error_r);
int pop3ext_state_append_held(struct pop3ext_state *state,
			      const ARRAY_TYPE(pop3ext_held) *entries,
			      const char **error_r);

struct pop3ext_first_login {
	time_t time;
	uint32_t uidvalidity, uidnext;
};

/* Reads the first-login record: 1 if there is one, 0 if not, -1 if it
   cannot be read or makes no sense. */
int pop3ext_state_read_first_login(struct pop3ext_state *state,
				   struct pop3ext_first_login *rec_r,
				   const char **error_r);
/* Records the first login, unless another session just did: then *rec is
   replaced with the record that won. */
int pop3ext_state_write_first_login(struct pop3ext_state *state,
				    struct pop3ext_first_login *rec,
				    const char **error_r);

/* Up to max entries (0 = all) of the retrieval log from *offset on; with
   *offset == (uoff_t)-1, from where the sweep has consumed it. *offset is
   set to just past the last entry read. Returns 0 or -1. */
int pop3ext_state_read_retrievals(struct pop3ext_state *state, pool_t pool,
				  uoff_t *offset, unsigned int max,
				  ARRAY_TYPE(pop3ext_retrieval) *entries_r,
				  const char **error_r);
/* Marks the retrieval log consumed up to offset (the end_offset of the
   last entry the sweep is done with); compacts the file when most of it
   is consumed. */
int pop3ext_state_consume_retrievals(struct pop3ext_state *state,
				     uoff_t offset, const char **error_r);

int pop3ext_state_read_held(struct pop3ext_state *state, pool_t pool,
			    ARRAY_TYPE(pop3ext_held) *entries_r,
			    const char **error_r);
/* Removes the given entries from held.log (entries appended meanwhile are
   kept). */
int pop3ext_state_remove_held(struct pop3ext_state *state,
			      const ARRAY_TYPE(pop3ext_held) *done,
			      const char **error_r);

/* The user's sweep lock (one sweep of a user at a time, from reading the
   logs to consuming them): 1 if taken (file_lock_free() releases it), 0
   if another sweep holds it, -1 on error. */
struct file_lock;
int pop3ext_state_sweep_lock(struct pop3ext_state *state,
			     struct file_lock **lock_r, const char **error_r);

/* for tests: the line parsers */
int pop3ext_state_parse_retrieval(const char *line, pool_t pool,
				  struct pop3ext_retrieval *r_r);
int pop3ext_state_parse_held(const char *line, pool_t pool,
			     struct pop3ext_held *h_r);

#endif
