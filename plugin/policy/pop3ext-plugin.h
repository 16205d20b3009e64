#ifndef POP3EXT_PLUGIN_H
#define POP3EXT_PLUGIN_H

/* The policy engine (lib20_pop3ext_plugin.so): each user's retention and
   leave-on-server policy, enforced at the storage layer, and the API the
   other pop3ext modules (pop3ext_pop3, doveadm pop3ext) build on. */

#include "module-context.h"
#include "mail-user.h"
#include "pop3ext-policy.h"

/* Keywords that carry a message's state (visible to IMAP, so a user or
   admin can see why POP3 does not list a message):
   - hidden: never listed by POP3 again (pop3ext_on_dele/on_retr = hide);
   - expunge pending: an expunge was held by pop3ext_min_age or
     pop3ext_legal_hold; also hidden from POP3; `doveadm pop3ext sweep`
     completes it once allowed;
   - retrieved: its first POP3 retrieval is in the retrieval log. */
#define POP3EXT_KEYWORD_HIDDEN "$POP3Hidden"
#define POP3EXT_KEYWORD_PENDING "$POP3ExpungePending"
#define POP3EXT_KEYWORD_RETRIEVED "$POP3Retrieved"

struct module;
struct mail;
struct mailbox;
struct pop3ext_state;

struct pop3ext_user {
	union mail_user_module_context module_ctx;
	struct mail_user *user;
	/* child of the user's event: category "pop3ext", prefix "pop3ext: " */
	struct event *event;

	struct pop3ext_policy policy;
	/* The policy could not be read (a malformed value): why. Then no
	   expunge happens at all and POP3 refuses commands that read or
	   change mail. */
	const char *policy_error;
	/* per-user state files (retrieval and held-expunge logs); NULL when
	   the user has no home directory */
	struct pop3ext_state *state;

	/* pop3ext_pop3 runs this user's POP3 session (it keeps the POP3
	   message list consistent with the filtered listing) */
	bool pop3_frontend:1;
	/* expunges now come from doveadm pop3ext sweep */
	bool sweeping:1;
	/* the policy error was logged for this user */
	bool policy_error_logged:1;
	/* the state keywords may change now: pop3ext itself changes them
	   (see pop3ext-storage.c, which refuses anyone else) */
	unsigned int own_keyword_updates;
};

extern const char *pop3ext_plugin_version;
extern struct event_category event_category_pop3ext;

/* Returns the user's pop3ext state, or NULL when pop3ext is not in this
   user's mail_plugins. */
struct pop3ext_user *pop3ext_user_get(struct mail_user *user);
/* The policy as the user's settings give it: reads plugin {} and userdb
   values (and where each came from). */
int pop3ext_user_read_policy(struct mail_user *user, pool_t pool,
			     struct pop3ext_policy *policy_r,
			     const char **error_r);
/* One setting's value as the user's settings give it (NULL if unset), and
   where it comes from. */
const char *pop3ext_user_setting(struct mail_user *user, const char *name,
				 enum pop3ext_source *source_r);
/* Logs the policy error once per session. */
void pop3ext_user_log_policy_error(struct pop3ext_user *puser);

/* pop3ext-storage.c */
void pop3ext_mail_user_created(struct mail_user *user);
void pop3ext_mailbox_allocated(struct mailbox *box);
void pop3ext_mail_allocated(struct mail *mail);
/* May mail be expunged now? TRUE: go ahead (audited). FALSE: the policy
   holds it (marked pending, logged for the sweep at commit) or the policy
   is unknown. */
bool pop3ext_expunge_gate(struct mail *mail);
/* Does the user's policy hold or audit expunges at all? */
bool pop3ext_expunge_gate_needed(struct pop3ext_user *puser);
/* The mailbox's keywords struct for one of the POP3EXT_KEYWORD_*s. */
struct mail_keywords *pop3ext_keywords(struct mailbox *box, const char *kw);

/* pop3ext-events.c: audit events (when pop3ext_audit=yes) */
void pop3ext_audit_mail(struct pop3ext_user *puser, const char *name,
			struct mail *mail, const char *policy,
			const char *decision);
/* an event about a command without a message (a refused UIDL, ...) */
void pop3ext_audit_command(struct pop3ext_user *puser, const char *name,
			   const char *command, const char *policy,
			   const char *decision);

void pop3ext_plugin_init(struct module *module);
void pop3ext_plugin_deinit(void);

#endif
