#ifndef POP3EXT_STATE_H
#define POP3EXT_STATE_H

/* A user's pop3ext state, kept beside the mail so that it works on every
   mail storage and survives the loss of Dovecot's index files: one SQLite
   database per user (the ledger, pop3ext_ledger_path, by default
   ~/.pop3ext/ledger.db) in WAL mode with synchronous=FULL:

   - retrievals: the first POP3 retrieval of each INBOX message
     (pop3ext_expire_after_retr), written at QUIT; the sweep deletes the
     records it is done with;
   - held: expunges held by pop3ext_min_age / pop3ext_legal_hold, keyed by
     the mailbox's and the message's GUIDs (UIDVALIDITY/UID are hints), so
     that a RENAME changes nothing. A record is written as an intent before
     the storage commit and marked committed (or deleted) after it: a
     crash leaves no pending message without its record. The sweep treats
     an intent whose message lacks the pending keyword as void;
   - first_login: the user's first POP3 login (pop3ext_visible_since =
     first-login): its time and INBOX's UIDVALIDITY and UIDNEXT then.

   Each call is one transaction (BEGIN IMMEDIATE). PRAGMA user_version
   holds the schema version, checked at open; the logs of older versions
   (~/.pop3ext/retrieved.log, held.log, first-login) are imported at the
   first open and renamed to *.imported. */

struct event;
struct file_lock;

struct pop3ext_retrieval {
	uint32_t uidvalidity, uid;
	const char *guid;
	time_t time;
	/* the record's row id (reading only) */
	int64_t id;
};
ARRAY_DEFINE_TYPE(pop3ext_retrieval, struct pop3ext_retrieval);

struct pop3ext_held {
	/* the mailbox's GUID (hex; "" for a record imported from held.log,
	   which knew only the name) and its name when held (a hint) */
	const char *mailbox_guid;
	const char *mailbox;
	uint32_t uidvalidity, uid;
	const char *guid;
	time_t save_date, held_time;
	/* "legal_hold" or "min_age" */
	const char *reason;
	/* the row id: set by reading, and by pop3ext_state_append_held() for
	   the records it inserted (0: there was one already) */
	int64_t id;
	/* written before the storage commit, not yet reconciled */
	bool intent;
};
ARRAY_DEFINE_TYPE(pop3ext_held, struct pop3ext_held);

struct pop3ext_first_login {
	time_t time;
	uint32_t uidvalidity, uidnext;
};

/* dir is the user's ~/.pop3ext (older versions' logs, the sweep lock);
   ledger_path NULL means dir/ledger.db. Nothing is opened yet. */
struct pop3ext_state *
pop3ext_state_init(const char *dir, const char *ledger_path,
		   struct event *event);
void pop3ext_state_deinit(struct pop3ext_state **state);
const char *pop3ext_state_dir(struct pop3ext_state *state);
const char *pop3ext_state_ledger_path(struct pop3ext_state *state);

/* Does the user have state already (the ledger, or logs to import)? */
bool pop3ext_state_exists(struct pop3ext_state *state);
/* Opens (creating, importing old logs) the ledger and checks its schema.
   Every function below opens it when needed; an error names the file and
   is kept: later calls fail with it too. */
int pop3ext_state_open(struct pop3ext_state *state, const char **error_r);

int pop3ext_state_append_retrievals(struct pop3ext_state *state,
				    const ARRAY_TYPE(pop3ext_retrieval) *entries,
				    const char **error_r);
/* Up to max records (0 = all) with a row id above *after_id, in the
   order they were written; *after_id is set to the last one read. */
int pop3ext_state_read_retrievals(struct pop3ext_state *state, pool_t pool,
				  int64_t *after_id, unsigned int max,
				  ARRAY_TYPE(pop3ext_retrieval) *entries_r,
				  const char **error_r);
/* Deletes the records the sweep is done with (by row id). */
int pop3ext_state_consume_retrievals(struct pop3ext_state *state,
				     const ARRAY_TYPE(pop3ext_retrieval) *done,
				     const char **error_r);

/* Records held expunges as intents (before the storage commit); sets the
   id of each record inserted. */
int pop3ext_state_append_held(struct pop3ext_state *state,
			      ARRAY_TYPE(pop3ext_held) *entries,
			      const char **error_r);
/* After the storage commit: committed marks the intents committed (and
   writes again one a sweep voided meanwhile), else they are deleted. */
int pop3ext_state_reconcile_held(struct pop3ext_state *state,
				 const ARRAY_TYPE(pop3ext_held) *entries,
				 bool committed, const char **error_r);
int pop3ext_state_read_held(struct pop3ext_state *state, pool_t pool,
			    ARRAY_TYPE(pop3ext_held) *entries_r,
			    const char **error_r);
/* Deletes the given records (by row id). */
int pop3ext_state_remove_held(struct pop3ext_state *state,
			      const ARRAY_TYPE(pop3ext_held) *done,
			      const char **error_r);

/* Reads the first-login record: 1 if there is one, 0 if not, -1 on
   error. */
int pop3ext_state_read_first_login(struct pop3ext_state *state,
				   struct pop3ext_first_login *rec_r,
				   const char **error_r);
/* Records the first login, unless another session did: then *rec is
   replaced with the record that won. */
int pop3ext_state_write_first_login(struct pop3ext_state *state,
				    struct pop3ext_first_login *rec,
				    const char **error_r);

/* The user's sweep lock (one sweep of a user at a time): 1 if taken
   (file_lock_free() releases it), 0 if another sweep holds it, -1 on
   error. */
int pop3ext_state_sweep_lock(struct pop3ext_state *state,
			     struct file_lock **lock_r, const char **error_r);

/* for tests: the old logs' line parsers */
int pop3ext_state_parse_retrieval(const char *line, pool_t pool,
				  struct pop3ext_retrieval *r_r);
int pop3ext_state_parse_held(const char *line, pool_t pool,
			     struct pop3ext_held *h_r);

#endif
