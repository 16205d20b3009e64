/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "fd-util.h"
#include "ioloop.h"
#include "llist.h"
#include "safe-memset.h"
#include "str.h"
#include "str-sanitize.h"
#include "pop3ext-auth-escape.h"
#include "pop3ext-auth-ldap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <ldap.h>

/* entries per page when listing users */
#define LDAP_LIST_PAGE_SIZE 500
/* servers are tracked per request in a bitmask */
#define LDAP_MAX_SERVERS 32
/* a server that keeps failing is left alone for ldap_retry_interval
   doubled per failure in a row, up to this many times the interval (but
   not beyond LDAP_BACKOFF_MAX_MSECS unless the interval itself is) */
#define LDAP_BACKOFF_MAX_FACTOR 8
#define LDAP_BACKOFF_MAX_MSECS (5 * 60 * 1000)
/* no request waits longer than this in all, whatever the servers do:
   well below the 60 s after which Dovecot gives up on an auth-worker */
#define LDAP_REQUEST_MAX_MSECS (45 * 1000)
/* the setup thread bounds each of its steps by ldap_connect_timeout; this
   is for what it can't bound (a hanging DNS lookup) */
#define LDAP_SETUP_SLACK_MSECS 1000

struct ldap_server {
	const char *uri;
	/* monotonic msecs until which it is not used; 0 = fine */
	uint64_t down_until;
	/* failures since it last answered */
	unsigned int failures;
};

/* A connection's TCP connect, TLS handshake (ldaps://) and StartTLS,
   done in a thread of its own: libldap only does these blocking (or, for
   the TLS handshake without LDAP_OPT_CONNECT_ASYNC, busy-looping), and
   the auth process must never wait for a server. The thread owns ld until
   it is done; it touches nothing else of the process. */
struct ldap_setup {
	pthread_mutex_t lock;
	pthread_t thread;
	/* [0] becomes readable when the thread is done */
	int fds[2];
	LDAP *ld;
	bool starttls;
	unsigned int timeout_msecs;

	/* set by the thread */
	bool done;
	int rc;
	bool in_starttls;
	char diag[256];
	/* the connect's errno (the thread can't format it safely) */
	int connect_errno;
	/* the connection was closed meanwhile: the thread frees everything */
	bool abandoned;
};

enum ldap_request_type {
	LDAP_REQUEST_SEARCH,
	LDAP_REQUEST_LIST,
	LDAP_REQUEST_BIND,
};

struct ldap_conn {
	struct ldap_conn *prev, *next;
	struct pop3ext_ldap *ldap;
	int refcount;
	/* carries user binds (one at a time) rather than searches */
	bool for_bind;
	unsigned int server;
	LDAP *ld;
	struct io *io;
	bool closed;

	/* connecting: TCP, TLS and StartTLS in a thread */
	struct ldap_setup *setup;
	struct io *setup_io;
	struct timeout *to_setup;

	/* the search connection's bind as the service account */
	bool ready;
	int bind_msgid;
	struct timeout *to_bind;

	/* the requests sent on it, waiting for their answers */
	struct ldap_request *requests;
	unsigned int request_count;
	/* replaced by one to a preferred server: closes when answered */
	bool draining;
	/* failed: libldap may have closed the socket already */
	bool broken;
	/* monotonic msecs of the last answer read */
	uint64_t last_input;
};

struct ldap_request {
	struct ldap_request *prev, *next;
	struct pop3ext_ldap *ldap;
	enum ldap_request_type type;
	pool_t pool;
	struct event *event;
	/* for logs: "user search", "user bind", ... */
	const char *what;

	/* search and list */
	const char *base, *filter;
	int scope, sizelimit;
	char **attrs;
	pool_t result_pool;
	unsigned int entry_count;
	struct pop3ext_ldap_entry *entry;
	bool bad_entry;
	/* list */
	ARRAY_TYPE(const_string) *users;
	unsigned int users_start;
	struct berval *cookie;
	/* streaming (pop3ext_ldap_listing): wait after each page, on
	   page_conn (the cookie is only good there); once a page was
	   handed out, a failure ends the listing instead of a retry */
	bool page_wait, paused, page_delivered;
	struct ldap_conn *page_conn;
	/* bind */
	const char *dn;
	char *password;
	bool expired, locked;
	/* after the bind, read the entry's user name as the user */
	bool read_after_bind;

	/* where it is */
	bool queued;
	struct ldap_conn *conn;
	int msgid;
	struct timeout *to;
	/* monotonic msecs when it was sent */
	uint64_t sent_at;
	/* the whole request's deadline */
	struct timeout *to_deadline;
	/* servers it failed on (bit per index), and whether a connection
	   closed under it once already */
	uint32_t tried;
	bool retried;
	const char *last_error;

	bool finished;
	enum pop3ext_ldap_result result;
	pop3ext_ldap_entry_callback_t *entry_callback;
	pop3ext_ldap_callback_t *callback;
	void *context;
};

struct pop3ext_ldap {
	pool_t pool;
	const struct pop3ext_auth_config *set;
	struct event *event;
	ARRAY(struct ldap_server) servers;
	/* the TLS context every connection uses, made as root at init */
	LDAP *tls_template;
	void *tls_ctx;
	/* the attributes read from a user's entry, NULL-terminated */
	char **entry_attrs;

	struct ldap_conn *conns;
	struct ldap_conn *search_conn;
	/* a search connection to a preferred server that is back, being set
	   up while search_conn still serves */
	struct ldap_conn *search_candidate;
	unsigned int bind_conn_count;
	struct ldap_request *search_queue, *search_queue_tail;
	struct ldap_request *bind_queue, *bind_queue_tail;

	/* the server that answered last, -1 = none yet */
	int active_server;
	/* wait for each answer (auth-workers) */
	bool sync;
	struct ioloop *sync_ioloop;
	bool dispatching, dispatch_again;
};

static void ldap_dispatch(struct pop3ext_ldap *ldap);
static void ldap_conn_input(struct ldap_conn *conn);

static uint64_t monotonic_msecs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		i_fatal("clock_gettime(CLOCK_MONOTONIC) failed: %m");
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval msecs_to_timeval(unsigned int msecs)
{
	struct timeval tv;

	tv.tv_sec = msecs / 1000;
	tv.tv_usec = (msecs % 1000) * 1000;
	return tv;
}

/* Errors that say the server (or the way to it) is gone or refuses work,
   not that it answered the question: these move to the next server. */
static bool ldap_rc_is_unavailable(int rc)
{
	switch (rc) {
	case LDAP_SERVER_DOWN:
	case LDAP_TIMEOUT:
	case LDAP_CONNECT_ERROR:
	case LDAP_UNAVAILABLE:
	case LDAP_BUSY:
		return TRUE;
	}
	return FALSE;
}

/* Search results that another server may not give: a broken backend
   (other), a server that won't (unwilling) - the server is taken for down;
   its own time or admin limit - only this search goes on. */
static bool ldap_search_rc_fails_over(int rc, bool *mark_down_r)
{
	switch (rc) {
	case LDAP_OTHER:
	case LDAP_UNWILLING_TO_PERFORM:
		*mark_down_r = TRUE;
		return TRUE;
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_ADMINLIMIT_EXCEEDED:
		*mark_down_r = FALSE;
		return TRUE;
	}
	return FALSE;
}

static const char *ldap_diag(LDAP *ld, int rc)
{
	char *msg = NULL;
	const char *ret;

	if (ld != NULL)
		(void)ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg);
	if (msg == NULL || msg[0] == '\0')
		ret = ldap_err2string(rc);
	else
		ret = t_strdup_printf("%s (%s)", ldap_err2string(rc), msg);
	if (msg != NULL)
		ldap_memfree(msg);
	return ret;
}

static int ldap_scope(enum pop3ext_auth_ldap_scope scope)
{
	switch (scope) {
	case POP3EXT_AUTH_SCOPE_BASE:
		return LDAP_SCOPE_BASE;
	case POP3EXT_AUTH_SCOPE_ONELEVEL:
		return LDAP_SCOPE_ONELEVEL;
	case POP3EXT_AUTH_SCOPE_SUBTREE:
		return LDAP_SCOPE_SUBTREE;
	}
	i_unreached();
}

static int ldap_require_cert(enum pop3ext_auth_tls_require_cert value)
{
	switch (value) {
	case POP3EXT_AUTH_TLS_NEVER: return LDAP_OPT_X_TLS_NEVER;
	case POP3EXT_AUTH_TLS_ALLOW: return LDAP_OPT_X_TLS_ALLOW;
	case POP3EXT_AUTH_TLS_TRY: return LDAP_OPT_X_TLS_TRY;
	case POP3EXT_AUTH_TLS_DEMAND: return LDAP_OPT_X_TLS_DEMAND;
	case POP3EXT_AUTH_TLS_HARD: return LDAP_OPT_X_TLS_HARD;
	}
	i_unreached();
}

static const char *ldap_tls_hint(const struct pop3ext_auth_config *set)
{
	return t_strdup_printf(
		" (TLS handshake failed: is the server's certificate signed by "
		"a CA in ldap_tls_ca_file=%s and issued for the host in the "
		"URI?)", set->ldap_tls_ca_file[0] == '\0' ?
		"(system default)" : set->ldap_tls_ca_file);
}

/* -- servers ---------------------------------------------------------------- */

static const char *ldap_server_uri(struct pop3ext_ldap *ldap, unsigned int idx)
{
	const struct ldap_server *server = array_idx(&ldap->servers, idx);

	return server->uri;
}

static void
ldap_server_mark_down(struct pop3ext_ldap *ldap, unsigned int idx,
		      const char *reason)
{
	struct ldap_server *server = array_idx_modifiable(&ldap->servers, idx);
	uint64_t now = monotonic_msecs(), interval, max;

	if (server->down_until > now) {
		/* already known (another connection to it failed too) */
		return;
	}
	/* back off: the interval doubles with each failure in a row */
	interval = ldap->set->ldap_retry_interval_msecs;
	max = interval * LDAP_BACKOFF_MAX_FACTOR;
	if (max > LDAP_BACKOFF_MAX_MSECS)
		max = I_MAX(interval, LDAP_BACKOFF_MAX_MSECS);
	interval <<= I_MIN(server->failures, 10U);
	if (interval > max)
		interval = max;
	server->failures++;
	server->down_until = now + interval;
	e_warning(ldap->event, "ldap: %s unavailable: %s - not used for "
		  "%"PRIu64" ms", server->uri, reason, interval);
}

static void ldap_server_answered(struct pop3ext_ldap *ldap, unsigned int idx)
{
	struct ldap_server *server = array_idx_modifiable(&ldap->servers, idx);

	server->failures = 0;
	server->down_until = 0;
	if (ldap->active_server == (int)idx)
		return;
	if (ldap->active_server < 0) {
		e_debug(ldap->event, "ldap: using %s", server->uri);
	} else if ((int)idx < ldap->active_server) {
		const struct ldap_server *previous =
			array_idx(&ldap->servers, ldap->active_server);

		e_info(ldap->event, "ldap: back to %s (preferred over %s)",
		       server->uri, previous->uri);
	} else {
		e_warning(ldap->event, "ldap: failed over to %s", server->uri);
	}
	ldap->active_server = (int)idx;
}

static bool ldap_server_is_up(struct pop3ext_ldap *ldap, unsigned int idx)
{
	const struct ldap_server *server = array_idx(&ldap->servers, idx);

	return server->down_until <= monotonic_msecs();
}

/* The server a request should go to: the first it hasn't failed on that
   is not marked down. -1: none (every server it may still try is down:
   the request fails at once rather than waiting for one of them). */
static int ldap_pick_server(struct pop3ext_ldap *ldap,
			    const struct ldap_request *req)
{
	const struct ldap_server *servers;
	unsigned int i, count;
	uint64_t now = monotonic_msecs();

	servers = array_get(&ldap->servers, &count);
	for (i = 0; i < count; i++) {
		if ((req->tried & (1U << i)) == 0 && servers[i].down_until <= now)
			return (int)i;
	}
	return -1;
}

/* -- requests --------------------------------------------------------------- */

static void ldap_request_free(struct ldap_request *req)
{
	if (req->password != NULL)
		safe_memset(req->password, 0, strlen(req->password));
	if (req->cookie != NULL)
		ber_bvfree(req->cookie);
	event_unref(&req->event);
	pool_unref(&req->pool);
}

static void ldap_request_callback(struct ldap_request *req)
{
	if (req->entry_callback != NULL) {
		req->entry_callback(req->result, req->result ==
				    POP3EXT_LDAP_OK ? req->entry : NULL,
				    req->context);
	} else {
		req->callback(req->result, req->context);
	}
	ldap_request_free(req);
}

static void ldap_request_unqueue(struct ldap_request *req)
{
	struct pop3ext_ldap *ldap = req->ldap;

	if (!req->queued)
		return;
	if (req->type == LDAP_REQUEST_BIND)
		DLLIST2_REMOVE(&ldap->bind_queue, &ldap->bind_queue_tail, req);
	else
		DLLIST2_REMOVE(&ldap->search_queue, &ldap->search_queue_tail, req);
	req->queued = FALSE;
}

static void ldap_request_queue(struct ldap_request *req, bool front)
{
	struct pop3ext_ldap *ldap = req->ldap;

	i_assert(!req->queued && req->conn == NULL);
	req->queued = TRUE;
	if (req->type == LDAP_REQUEST_BIND) {
		if (front)
			DLLIST2_PREPEND(&ldap->bind_queue, &ldap->bind_queue_tail, req);
		else
			DLLIST2_APPEND(&ldap->bind_queue, &ldap->bind_queue_tail, req);
	} else {
		if (front)
			DLLIST2_PREPEND(&ldap->search_queue, &ldap->search_queue_tail, req);
		else
			DLLIST2_APPEND(&ldap->search_queue, &ldap->search_queue_tail, req);
	}
}

static void ldap_conn_close(struct ldap_conn *conn);

/* Takes the request off its connection (it was answered, or the
   connection failed). */
static void ldap_request_detach(struct ldap_request *req)
{
	struct ldap_conn *conn = req->conn;

	timeout_remove(&req->to);
	if (conn == NULL)
		return;
	DLLIST_REMOVE(&conn->requests, req);
	conn->request_count--;
	req->conn = NULL;
	req->msgid = -1;
	if (conn->draining && conn->request_count == 0)
		ldap_conn_close(conn);
}

/* The request is done: its callback runs now (or, when waiting in an
   auth-worker, once the wait is over). */
static void
ldap_request_finish(struct ldap_request *req, enum pop3ext_ldap_result result)
{
	struct pop3ext_ldap *ldap = req->ldap;

	ldap_request_unqueue(req);
	ldap_request_detach(req);
	timeout_remove(&req->to_deadline);
	req->result = result;
	req->finished = TRUE;
	if (ldap->sync_ioloop != NULL) {
		/* ldap_request_start() calls back once the wait is over */
		io_loop_stop(ldap->sync_ioloop);
		return;
	}
	ldap_request_callback(req);
}

/* No server is left to try. */
static void ldap_request_fail_unanswered(struct ldap_request *req)
{
	if (req->last_error == NULL) {
		e_error(req->event, "ldap: %s: every LDAP server is marked "
			"down (ldap_retry_interval)", req->what);
	} else {
		e_error(req->event, "ldap: %s: no LDAP server answered "
			"(last error: %s)", req->what, req->last_error);
	}
	ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
}

static void ldap_conn_failed(struct ldap_conn *conn, const char *reason,
			     bool hung);

/* Puts req, which failed on a server, back at the head of its queue, with
   what it had received forgotten. */
static void ldap_request_retry(struct ldap_request *req, const char *reason)
{
	req->last_error = p_strdup(req->pool, reason);
	if (req->type == LDAP_REQUEST_LIST && req->page_delivered) {
		/* the users listed so far are out: starting again would
		   list them twice */
		e_error(req->event, "ldap: user listing cut short: %s",
			reason);
		ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
		return;
	}
	if (req->type == LDAP_REQUEST_LIST) {
		/* start again from the first page */
		array_delete(req->users, req->users_start,
			     array_count(req->users) - req->users_start);
		if (req->cookie != NULL)
			ber_bvfree(req->cookie);
		req->cookie = NULL;
	}
	req->entry_count = 0;
	req->entry = NULL;
	req->bad_entry = FALSE;
	ldap_request_queue(req, TRUE);
}

static void ldap_request_timeout(struct ldap_request *req)
{
	struct pop3ext_ldap *ldap = req->ldap;
	struct ldap_conn *conn = req->conn;
	const char *reason = t_strdup_printf(
		"no answer to %s within %u ms", req->type == LDAP_REQUEST_BIND ?
		"bind" : "search", ldap->set->ldap_timeout_msecs);
	unsigned int server = conn->server;

	if (conn->last_input > req->sent_at) {
		/* the server answered others meanwhile: only this request
		   is slow (an expensive search), the server is fine */
		e_warning(req->event, "ldap: %s: %s: %s - trying the next "
			  "server", ldap_server_uri(ldap, server), req->what,
			  reason);
		(void)ldap_abandon_ext(conn->ld, req->msgid, NULL, NULL);
		ldap_request_detach(req);
		req->tried |= 1U << server;
		ldap_request_retry(req, reason);
		ldap_dispatch(ldap);
		return;
	}
	ldap_conn_failed(conn, reason, TRUE);
}

/* -- connections ------------------------------------------------------------ */

static void ldap_conn_unref(struct ldap_conn **_conn)
{
	struct ldap_conn *conn = *_conn;

	*_conn = NULL;
	i_assert(conn->refcount > 0);
	if (--conn->refcount > 0)
		return;
	i_assert(conn->closed && conn->requests == NULL);
	i_free(conn);
}

static void ldap_setup_free(struct ldap_setup *setup)
{
	if (setup->ld != NULL)
		(void)ldap_unbind_ext(setup->ld, NULL, NULL);
	i_close_fd(&setup->fds[0]);
	i_close_fd(&setup->fds[1]);
	pthread_mutex_destroy(&setup->lock);
	free(setup);
}

/* The connection no longer wants the setup's result. */
static void ldap_setup_abandon(struct ldap_setup *setup)
{
	bool done;

	pthread_mutex_lock(&setup->lock);
	done = setup->done;
	setup->abandoned = !done;
	pthread_mutex_unlock(&setup->lock);
	if (done) {
		/* the thread has ended, or is about to */
		(void)pthread_join(setup->thread, NULL);
		ldap_setup_free(setup);
	} else {
		/* it frees everything when it is done */
		(void)pthread_detach(setup->thread);
	}
}

/* Disconnects; the requests on it must have been taken off. */
static void ldap_conn_close(struct ldap_conn *conn)
{
	struct pop3ext_ldap *ldap = conn->ldap;

	if (conn->closed)
		return;
	i_assert(conn->requests == NULL);
	conn->closed = TRUE;
	io_remove(&conn->setup_io);
	timeout_remove(&conn->to_setup);
	if (conn->setup != NULL) {
		ldap_setup_abandon(conn->setup);
		conn->setup = NULL;
	}
	if (conn->broken)
		io_remove_closed(&conn->io);
	else
		io_remove(&conn->io);
	timeout_remove(&conn->to_bind);
	if (conn->ld != NULL)
		(void)ldap_unbind_ext(conn->ld, NULL, NULL);
	conn->ld = NULL;
	DLLIST_REMOVE(&ldap->conns, conn);
	if (ldap->search_conn == conn)
		ldap->search_conn = NULL;
	if (ldap->search_candidate == conn)
		ldap->search_candidate = NULL;
	if (conn->for_bind)
		ldap->bind_conn_count--;
	ldap_conn_unref(&conn);
}

/* A connection that was being set up (or binding as the service account)
   failed: the requests waiting in the queue for it were waiting on that
   server, so it counts as tried for them. */
static void
ldap_queue_failed_on(struct pop3ext_ldap *ldap, bool binds,
		     unsigned int server, const char *reason)
{
	struct ldap_request *req;

	req = binds ? ldap->bind_queue : ldap->search_queue;
	for (; req != NULL; req = req->next) {
		req->tried |= 1U << server;
		req->last_error = p_strdup(req->pool, reason);
	}
}

/* The connection broke, or a request on it got no answer in time (hung).
   Its requests go back to the queue: to another server if this one is
   taken for down, else (a connection closed under them) once more to the
   same one. A connection that fails before it is ready takes its server
   down. */
static void
ldap_conn_failed(struct ldap_conn *conn, const char *reason, bool hung)
{
	struct pop3ext_ldap *ldap = conn->ldap;
	struct ldap_request *req, *requests = NULL, *next;
	unsigned int server = conn->server;
	bool setup = !conn->ready, for_bind = conn->for_bind;
	bool candidate = ldap->search_candidate == conn;
	bool mark_down = hung || setup;

	conn->broken = TRUE;
	if (conn->requests == NULL && !setup) {
		/* idle, e.g. closed by the server's idle timeout */
		e_debug(ldap->event, "ldap: %s: connection closed: %s",
			ldap_server_uri(ldap, server), reason);
		ldap_conn_close(conn);
		return;
	}
	for (req = conn->requests; req != NULL; req = req->next) {
		if (req->retried)
			mark_down = TRUE;
	}
	while ((req = conn->requests) != NULL) {
		conn->draining = FALSE;
		ldap_request_detach(req);
		DLLIST_PREPEND(&requests, req);
	}
	ldap_conn_close(conn);
	if (mark_down)
		ldap_server_mark_down(ldap, server, reason);
	if (setup && !candidate) {
		/* the queued requests were waiting for this connection */
		ldap_queue_failed_on(ldap, for_bind, server, reason);
	}
	for (req = requests; req != NULL; req = next) {
		next = req->next;
		req->prev = req->next = NULL;
		if (mark_down)
			req->tried |= 1U << server;
		else
			req->retried = TRUE;
		ldap_request_retry(req, reason);
	}
	ldap_dispatch(ldap);
}

static void ldap_conn_bind_timeout(struct ldap_conn *conn)
{
	ldap_conn_failed(conn, t_strdup_printf(
		"no answer to the bind as ldap_bind_dn within %u ms",
		conn->ldap->set->ldap_timeout_msecs), TRUE);
}

/* conn can carry requests now. */
static void ldap_conn_set_ready(struct ldap_conn *conn)
{
	struct pop3ext_ldap *ldap = conn->ldap;
	struct ldap_conn *old;

	conn->ready = TRUE;
	if (ldap->search_candidate != conn)
		return;
	/* the preferred server is back: searches go there from now on, the
	   old connection finishes what it has */
	ldap->search_candidate = NULL;
	old = ldap->search_conn;
	ldap->search_conn = conn;
	if (old != NULL) {
		if (old->requests == NULL)
			ldap_conn_close(old);
		else
			old->draining = TRUE;
	}
}

/* -- connection setup (in a thread) ----------------------------------------- */

static uint64_t setup_msecs_left(const struct timespec *start,
				 unsigned int timeout_msecs)
{
	struct timespec now;
	int64_t spent;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	spent = (int64_t)(now.tv_sec - start->tv_sec) * 1000 +
		(now.tv_nsec - start->tv_nsec) / 1000000;
	return spent >= (int64_t)timeout_msecs ? 0 : timeout_msecs - spent;
}

static void setup_fail(struct ldap_setup *setup, int rc, const char *what)
{
	char *msg = NULL;

	setup->rc = rc;
	(void)ldap_get_option(setup->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg);
	if (msg == NULL || msg[0] == '\0') {
		(void)snprintf(setup->diag, sizeof(setup->diag), "%s%s",
			       what, ldap_err2string(rc));
	} else {
		(void)snprintf(setup->diag, sizeof(setup->diag), "%s%s (%s)",
			       what, ldap_err2string(rc), msg);
	}
	if (msg != NULL)
		ldap_memfree(msg);
}

/* Waits (up to msecs) until the socket's non-blocking connect is done. */
static int setup_wait_connected(struct ldap_setup *setup, int fd,
				uint64_t msecs)
{
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	int ret, err = 0;

	pfd.fd = fd;
	pfd.events = POLLOUT;
	pfd.revents = 0;
	do {
		ret = poll(&pfd, 1, (int)msecs);
	} while (ret < 0 && errno == EINTR);
	if (ret == 0) {
		setup->rc = LDAP_TIMEOUT;
		(void)snprintf(setup->diag, sizeof(setup->diag),
			       "connect failed: no connection within %u ms",
			       setup->timeout_msecs);
		return -1;
	}
	if (ret < 0)
		err = errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		setup->rc = LDAP_SERVER_DOWN;
		setup->connect_errno = err;
		return -1;
	}
	return 0;
}

static void *ldap_setup_thread(void *context)
{
	struct ldap_setup *setup = context;
	struct timespec start;
	struct timeval tv;
	uint64_t left;
	bool abandoned;
	int rc, fd = -1;

	(void)clock_gettime(CLOCK_MONOTONIC, &start);
	setup->rc = LDAP_SUCCESS;
	/* with LDAP_OPT_CONNECT_ASYNC: the TCP connect is only started;
	   an ldaps:// handshake polls, up to LDAP_OPT_NETWORK_TIMEOUT */
	rc = ldap_connect(setup->ld);
	if (rc != LDAP_SUCCESS)
		setup_fail(setup, rc, "connect failed: ");
	else if (ldap_get_option(setup->ld, LDAP_OPT_DESC, &fd) !=
		 LDAP_OPT_SUCCESS || fd < 0)
		setup_fail(setup, LDAP_SERVER_DOWN, "connect failed: ");
	else if (setup_wait_connected(setup, fd, setup_msecs_left(
			&start, setup->timeout_msecs)) < 0)
		;
	else if (setup->starttls) {
		setup->in_starttls = TRUE;
		/* the StartTLS answer and handshake get what is left */
		left = setup_msecs_left(&start, setup->timeout_msecs);
		tv = msecs_to_timeval(left == 0 ? 1 : left);
		(void)ldap_set_option(setup->ld, LDAP_OPT_TIMEOUT, &tv);
		(void)ldap_set_option(setup->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
		rc = ldap_start_tls_s(setup->ld, NULL, NULL);
		if (rc != LDAP_SUCCESS)
			setup_fail(setup, rc, "StartTLS failed: ");
	}

	pthread_mutex_lock(&setup->lock);
	setup->done = TRUE;
	abandoned = setup->abandoned;
	pthread_mutex_unlock(&setup->lock);
	if (abandoned)
		ldap_setup_free(setup);
	else if (write(setup->fds[1], "", 1) < 0) {
		/* can't happen (a pipe with room for one byte); the
		   connection's setup timeout ends it */
	}
	return NULL;
}

static void ldap_conn_setup_timeout(struct ldap_conn *conn)
{
	ldap_conn_failed(conn, t_strdup_printf(
		"connect failed: no connection within %u ms",
		conn->ldap->set->ldap_connect_timeout_msecs), FALSE);
}

/* The setup thread is done. */
static void ldap_conn_setup_done(struct ldap_conn *conn)
{
	struct pop3ext_ldap *ldap = conn->ldap;
	const struct pop3ext_auth_config *set = ldap->set;
	struct ldap_setup *setup = conn->setup;
	const char *uri = ldap_server_uri(ldap, conn->server);
	struct timeval io_tv;
	int rc, fd;

	io_remove(&conn->setup_io);
	timeout_remove(&conn->to_setup);
	(void)pthread_join(setup->thread, NULL);
	conn->setup = NULL;
	rc = setup->rc;
	conn->ld = setup->ld;
	setup->ld = NULL;
	if (rc != LDAP_SUCCESS) {
		const char *diag = setup->connect_errno != 0 ?
			t_strdup_printf("connect failed: %s",
					strerror(setup->connect_errno)) :
			t_strdup(setup->diag);

		/* libldap says little more than "connect error" when the
		   handshake or certificate check fails */
		if (setup->in_starttls && rc == LDAP_CONNECT_ERROR)
			diag = t_strconcat(diag, ldap_tls_hint(set), NULL);
		else if (!setup->in_starttls && str_begins(uri, "ldaps://"))
			diag = t_strconcat(diag, " (server down, or",
					   ldap_tls_hint(set) + 1, NULL);
		ldap_setup_free(setup);
		/* a server refusing StartTLS or failing the certificate
		   checks can't be used either */
		ldap_conn_failed(conn, diag, FALSE);
		return;
	}
	ldap_setup_free(setup);

	if (ldap_get_option(conn->ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS ||
	    fd < 0) {
		ldap_conn_failed(conn, "ldap_get_option(LDAP_OPT_DESC) failed",
				 FALSE);
		return;
	}
	/* the socket is non-blocking; should libldap ever wait on it, it
	   waits no longer than an operation may take */
	io_tv = msecs_to_timeval(set->ldap_timeout_msecs);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io_tv, sizeof(io_tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io_tv, sizeof(io_tv));
	conn->io = io_add(fd, IO_READ, ldap_conn_input, conn);

	if (conn->for_bind || set->ldap_bind_dn[0] == '\0') {
		ldap_conn_set_ready(conn);
	} else {
		struct berval cred;

		cred.bv_val = (char *)set->ldap_bind_password;
		cred.bv_len = strlen(set->ldap_bind_password);
		rc = ldap_sasl_bind(conn->ld, set->ldap_bind_dn,
				    LDAP_SASL_SIMPLE, &cred, NULL, NULL,
				    &conn->bind_msgid);
		if (rc != LDAP_SUCCESS) {
			ldap_conn_failed(conn, t_strdup_printf(
				"bind as ldap_bind_dn=%s failed: %s",
				set->ldap_bind_dn, ldap_diag(conn->ld, rc)),
				FALSE);
			return;
		}
		conn->to_bind = timeout_add(set->ldap_timeout_msecs,
					    ldap_conn_bind_timeout, conn);
	}
	ldap_dispatch(ldap);
}

/* Starts connecting to server idx: TCP, TLS and StartTLS happen in a
   thread, bounded by ldap_connect_timeout; the service account's bind is
   sent once that is done. Returns the connection (not ready yet), or
   NULL with the LDAP error code and a diagnostic when it can't even be
   started. */
static struct ldap_conn *
ldap_conn_open(struct pop3ext_ldap *ldap, bool for_bind, unsigned int idx,
	       int *rc_r, const char **diag_r)
{
	const struct pop3ext_auth_config *set = ldap->set;
	const struct ldap_server *server = array_idx(&ldap->servers, idx);
	struct ldap_conn *conn;
	struct ldap_setup *setup;
	struct timeval network_tv, api_tv;
	sigset_t all, old;
	bool tls = set->ldap_starttls || str_begins(server->uri, "ldaps://");
	int rc, require_cert, version = LDAP_VERSION3;
	LDAP *ld;

	rc = ldap_initialize(&ld, server->uri);
	if (rc != LDAP_SUCCESS) {
		*rc_r = rc;
		*diag_r = t_strdup_printf("ldap_initialize() failed: %s",
					  ldap_err2string(rc));
		return NULL;
	}
	network_tv = msecs_to_timeval(set->ldap_connect_timeout_msecs);
	api_tv = network_tv;
	require_cert = ldap_require_cert(set->ldap_tls_require_cert);
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &network_tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &api_tv) != LDAP_OPT_SUCCESS ||
	    (tls && (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require_cert) != LDAP_OPT_SUCCESS ||
		     ldap_set_option(ld, LDAP_OPT_X_TLS_CTX, ldap->tls_ctx) != LDAP_OPT_SUCCESS))) {
		*rc_r = LDAP_LOCAL_ERROR;
		*diag_r = "ldap_set_option() failed";
		(void)ldap_unbind_ext(ld, NULL, NULL);
		return NULL;
	}

	setup = calloc(1, sizeof(*setup));
	if (setup == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "calloc() failed: %m");
	setup->ld = ld;
	setup->starttls = set->ldap_starttls;
	setup->timeout_msecs = set->ldap_connect_timeout_msecs;
	if (pthread_mutex_init(&setup->lock, NULL) != 0)
		i_fatal("pthread_mutex_init() failed");
	if (pipe(setup->fds) < 0) {
		*rc_r = LDAP_LOCAL_ERROR;
		*diag_r = t_strdup_printf("pipe() failed: %m");
		setup->fds[0] = setup->fds[1] = -1;
		ldap_setup_free(setup);
		return NULL;
	}
	fd_close_on_exec(setup->fds[0], TRUE);
	fd_close_on_exec(setup->fds[1], TRUE);
	/* signals are for the process's own thread */
	sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&setup->thread, NULL, ldap_setup_thread, setup);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		*rc_r = LDAP_LOCAL_ERROR;
		*diag_r = t_strdup_printf("pthread_create() failed: %s",
					  strerror(rc));
		ldap_setup_free(setup);
		return NULL;
	}

	conn = i_new(struct ldap_conn, 1);
	conn->refcount = 1;
	conn->ldap = ldap;
	conn->for_bind = for_bind;
	conn->server = idx;
	conn->bind_msgid = -1;
	conn->setup = setup;
	conn->setup_io = io_add(setup->fds[0], IO_READ,
				ldap_conn_setup_done, conn);
	conn->to_setup = timeout_add(set->ldap_connect_timeout_msecs +
				     LDAP_SETUP_SLACK_MSECS,
				     ldap_conn_setup_timeout, conn);
	DLLIST_PREPEND(&ldap->conns, conn);
	if (for_bind)
		ldap->bind_conn_count++;
	*rc_r = LDAP_SUCCESS;
	return conn;
}

/* A new connection for req to server idx. Returns it (being set up), or
   NULL when it can't be had (a local error): req is then finished. */
static struct ldap_conn *
ldap_conn_open_for(struct pop3ext_ldap *ldap, struct ldap_request *req,
		   bool for_bind, unsigned int idx)
{
	struct ldap_conn *conn;
	const char *diag;
	int rc;

	conn = ldap_conn_open(ldap, for_bind, idx, &rc, &diag);
	if (conn != NULL)
		return conn;
	e_error(req->event, "ldap: %s: %s", ldap_server_uri(ldap, idx), diag);
	ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
	return NULL;
}

/* The result code of an answer (freed) and a diagnostic for logs;
   ctrls_r (optional) gets its controls. */
static int ldap_parse_answer(LDAP *ld, LDAPMessage *msg,
			     LDAPControl ***ctrls_r, const char **diag_r)
{
	char *errmsg = NULL;
	int rc, err;

	rc = ldap_parse_result(ld, msg, &err, NULL, &errmsg, NULL, ctrls_r, 1);
	if (rc != LDAP_SUCCESS)
		err = rc;
	*diag_r = errmsg == NULL || errmsg[0] == '\0' ? ldap_err2string(err) :
		t_strdup_printf("%s (%s)", ldap_err2string(err),
				str_sanitize(errmsg, 256));
	if (errmsg != NULL)
		ldap_memfree(errmsg);
	return err;
}

/* The answer to the service account's bind. */
static void ldap_conn_bound(struct ldap_conn *conn, LDAPMessage *msg)
{
	struct pop3ext_ldap *ldap = conn->ldap;
	struct ldap_request *req;
	const char *diag;
	int err;

	timeout_remove(&conn->to_bind);
	conn->bind_msgid = -1;
	err = ldap_parse_answer(conn->ld, msg, NULL, &diag);
	diag = t_strdup_printf("bind as ldap_bind_dn=%s failed: %s",
			       ldap->set->ldap_bind_dn, diag);
	if (err == LDAP_SUCCESS) {
		ldap_server_answered(ldap, conn->server);
		ldap_conn_set_ready(conn);
	} else if (ldap_rc_is_unavailable(err)) {
		ldap_conn_failed(conn, diag, TRUE);
	} else if (ldap->search_candidate == conn) {
		/* the searches don't wait for this one */
		e_error(ldap->event, "ldap: %s: %s",
			ldap_server_uri(ldap, conn->server), diag);
		ldap_conn_close(conn);
	} else {
		/* a configuration error, not a server to fail over from:
		   the searches waiting for this connection fail */
		e_error(ldap->event, "ldap: %s: %s",
			ldap_server_uri(ldap, conn->server), diag);
		ldap_conn_close(conn);
		while ((req = ldap->search_queue) != NULL)
			ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
	}
}

/* -- sending ---------------------------------------------------------------- */

static int ldap_request_send_search(struct ldap_conn *conn,
				    struct ldap_request *req)
{
	struct timeval timelimit;
	LDAPControl *page = NULL, *sctrls[2] = { NULL, NULL };
	int rc;

	if (req->type == LDAP_REQUEST_LIST) {
		rc = ldap_create_page_control(conn->ld, LDAP_LIST_PAGE_SIZE,
					      req->cookie, 0, &page);
		if (rc != LDAP_SUCCESS)
			return rc;
		sctrls[0] = page;
	}
	/* the server's own limit, in whole seconds */
	timelimit.tv_sec = (req->ldap->set->ldap_timeout_msecs + 999) / 1000;
	timelimit.tv_usec = 0;
	rc = ldap_search_ext(conn->ld, req->base, req->scope, req->filter,
			     req->attrs, 0, page == NULL ? NULL : sctrls, NULL,
			     &timelimit, req->sizelimit, &req->msgid);
	if (page != NULL)
		ldap_control_free(page);
	return rc;
}

static int ldap_request_send_bind(struct ldap_conn *conn,
				  struct ldap_request *req)
{
	LDAPControl *ppolicy = NULL, *sctrls[2] = { NULL, NULL };
	struct berval cred;
	int rc;

	/* ask for the password policy's verdict (ignored by servers without
	   it) */
	if (ldap_create_passwordpolicy_control(conn->ld, &ppolicy) ==
	    LDAP_SUCCESS)
		sctrls[0] = ppolicy;
	cred.bv_val = req->password;
	cred.bv_len = strlen(req->password);
	rc = ldap_sasl_bind(conn->ld, req->dn, LDAP_SASL_SIMPLE, &cred,
			    ppolicy == NULL ? NULL : sctrls, NULL, &req->msgid);
	if (ppolicy != NULL)
		ldap_control_free(ppolicy);
	return rc;
}

/* Sends req on conn. */
static void ldap_request_send(struct ldap_conn *conn, struct ldap_request *req)
{
	int rc;

	ldap_request_unqueue(req);
	rc = req->type == LDAP_REQUEST_BIND ?
		ldap_request_send_bind(conn, req) :
		ldap_request_send_search(conn, req);
	req->conn = conn;
	DLLIST_PREPEND(&conn->requests, req);
	conn->request_count++;
	if (rc == LDAP_SUCCESS) {
		req->sent_at = monotonic_msecs();
		req->to = timeout_add(req->ldap->set->ldap_timeout_msecs,
				      ldap_request_timeout, req);
		return;
	}
	if (ldap_rc_is_unavailable(rc)) {
		/* the connection is gone: as if it broke under the request */
		ldap_conn_failed(conn, ldap_diag(conn->ld, rc), FALSE);
		return;
	}
	e_error(req->event, "ldap: %s (base=%s filter=%s) failed: %s",
		req->what, req->base == NULL ? "" : req->base,
		req->filter == NULL ? "" : str_sanitize(req->filter, 256),
		ldap_diag(conn->ld, rc));
	ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
}

/* -- dispatching ------------------------------------------------------------ */

/* Sends what waits in the search queue over the search connection. */
static void ldap_dispatch_searches(struct pop3ext_ldap *ldap)
{
	struct ldap_request *req;
	struct ldap_conn *conn;
	int idx;

	while ((req = ldap->search_queue) != NULL) {
		idx = ldap_pick_server(ldap, req);
		if (idx < 0) {
			ldap_request_fail_unanswered(req);
			continue;
		}
		conn = ldap->search_conn;
		if (conn != NULL && conn->server != (unsigned int)idx &&
		    conn->ready && (unsigned int)idx < conn->server &&
		    (req->tried & (1U << conn->server)) == 0 &&
		    ldap_server_is_up(ldap, conn->server)) {
			/* a preferred server may be back: connect to it on
			   the side, this connection serves meanwhile */
			if (ldap->search_candidate == NULL) {
				const char *diag;
				int rc;

				ldap->search_candidate = ldap_conn_open(
					ldap, FALSE, idx, &rc, &diag);
				if (ldap->search_candidate == NULL) {
					e_error(ldap->event, "ldap: %s: %s",
						ldap_server_uri(ldap, idx),
						diag);
				}
			}
			ldap_request_send(conn, req);
			continue;
		}
		if (conn != NULL && conn->server != (unsigned int)idx) {
			/* the one req hasn't tried: move there; the old
			   connection finishes what it has */
			ldap->search_conn = NULL;
			if (conn->requests == NULL)
				ldap_conn_close(conn);
			else
				conn->draining = TRUE;
			conn = NULL;
		}
		if (conn == NULL && ldap->search_candidate != NULL &&
		    ldap->search_candidate->server == (unsigned int)idx) {
			/* the one being set up is where req goes */
			conn = ldap->search_conn = ldap->search_candidate;
			ldap->search_candidate = NULL;
		}
		if (conn == NULL) {
			conn = ldap_conn_open_for(ldap, req, FALSE, idx);
			if (conn == NULL)
				continue;
			ldap->search_conn = conn;
		}
		if (!conn->ready) {
			/* the rest waits until it is */
			break;
		}
		ldap_request_send(conn, req);
	}
}

/* Sends what waits in the bind queue over free bind connections; opens
   more (up to ldap_bind_connections) for requests that no connection
   being set up will take. */
static void ldap_dispatch_binds(struct pop3ext_ldap *ldap)
{
	unsigned int setting_up[LDAP_MAX_SERVERS], waiting[LDAP_MAX_SERVERS];
	struct ldap_request *req, *next;
	struct ldap_conn *conn, *free_conn;
	int idx;

	memset(setting_up, 0, sizeof(setting_up));
	memset(waiting, 0, sizeof(waiting));
	for (conn = ldap->conns; conn != NULL; conn = conn->next) {
		if (conn->for_bind && !conn->ready)
			setting_up[conn->server]++;
	}
	for (req = ldap->bind_queue; req != NULL; req = next) {
		next = req->next;
		idx = ldap_pick_server(ldap, req);
		if (idx < 0) {
			ldap_request_fail_unanswered(req);
			continue;
		}
		conn = free_conn = NULL;
		for (struct ldap_conn *c = ldap->conns; c != NULL; c = c->next) {
			if (!c->for_bind || !c->ready || c->requests != NULL)
				continue;
			if (c->server == (unsigned int)idx) {
				conn = c;
				break;
			}
			free_conn = c;
		}
		if (conn != NULL) {
			ldap_request_send(conn, req);
			continue;
		}
		if (waiting[idx] < setting_up[idx]) {
			/* one being set up will take it */
			waiting[idx]++;
			continue;
		}
		if (free_conn != NULL)
			ldap_conn_close(free_conn);
		else if (ldap->bind_conn_count >=
			 ldap->set->ldap_bind_connections)
			break;
		if (ldap_conn_open_for(ldap, req, TRUE, idx) != NULL) {
			setting_up[idx]++;
			waiting[idx]++;
		}
	}
}

static void ldap_dispatch(struct pop3ext_ldap *ldap)
{
	if (ldap->dispatching) {
		ldap->dispatch_again = TRUE;
		return;
	}
	ldap->dispatching = TRUE;
	do {
		ldap->dispatch_again = FALSE;
		T_BEGIN {
			ldap_dispatch_searches(ldap);
			ldap_dispatch_binds(ldap);
		} T_END;
	} while (ldap->dispatch_again);
	ldap->dispatching = FALSE;
}

/* -- answers ---------------------------------------------------------------- */

static bool value_is_clean(const struct berval *bv)
{
	ber_len_t i;

	for (i = 0; i < bv->bv_len; i++) {
		unsigned char c = (unsigned char)bv->bv_val[i];

		if (c < 0x20 || c == 0x7f)
			return FALSE;
	}
	return TRUE;
}

/* Copies the wanted attributes of entry. Returns -1 (logged) when a value
   cannot be a userdb field. */
static int
ldap_entry_read(struct pop3ext_ldap *ldap, struct event *event, LDAP *ld,
		LDAPMessage *msg, pool_t pool,
		struct pop3ext_ldap_entry **entry_r)
{
	struct pop3ext_ldap_entry *entry;
	struct pop3ext_ldap_attribute *attr;
	struct berval **vals;
	char *dn, **name;
	unsigned int i;

	entry = p_new(pool, struct pop3ext_ldap_entry, 1);
	dn = ldap_get_dn(ld, msg);
	entry->dn = p_strdup(pool, dn == NULL ? "" : dn);
	if (dn != NULL)
		ldap_memfree(dn);
	p_array_init(&entry->attributes, pool, 8);
	for (name = ldap->entry_attrs; *name != NULL; name++) {
		vals = ldap_get_values_len(ld, msg, *name);
		if (vals == NULL)
			continue;
		attr = array_append_space(&entry->attributes);
		attr->name = *name;
		p_array_init(&attr->values, pool, 2);
		for (i = 0; vals[i] != NULL; i++) {
			const char *value;

			if (!value_is_clean(vals[i])) {
				e_error(event, "ldap: %s of %s has a value with "
					"control characters",
					*name, str_sanitize(entry->dn, 256));
				ldap_value_free_len(vals);
				return -1;
			}
			value = p_strndup(pool, vals[i]->bv_val,
					  vals[i]->bv_len);
			array_push_back(&attr->values, &value);
		}
		ldap_value_free_len(vals);
	}
	*entry_r = entry;
	return 0;
}

static void ldap_list_entry(struct ldap_request *req, LDAP *ld,
			    LDAPMessage *msg)
{
	struct berval **vals = ldap_get_values_len(ld, msg, req->attrs[0]);
	unsigned int i;

	for (i = 0; vals != NULL && vals[i] != NULL; i++) {
		const char *user;

		if (!value_is_clean(vals[i]) || vals[i]->bv_len == 0)
			continue;
		user = p_strndup(req->result_pool, vals[i]->bv_val,
				 vals[i]->bv_len);
		array_push_back(req->users, &user);
	}
	if (vals != NULL)
		ldap_value_free_len(vals);
}

/* The cookie for the next page, or NULL when this was the last. */
static struct berval *ldap_next_page(LDAP *ld, LDAPControl **ctrls)
{
	LDAPControl *resp;
	struct berval c = { 0, NULL }, *cookie = NULL;
	ber_int_t count;

	if (ctrls == NULL)
		return NULL;
	resp = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, ctrls, NULL);
	if (resp != NULL &&
	    ldap_parse_pageresponse_control(ld, resp, &count, &c) ==
	    LDAP_SUCCESS && c.bv_len > 0)
		cookie = ber_bvdup(&c);
	if (c.bv_val != NULL)
		ldap_memfree(c.bv_val);
	return cookie;
}

static enum pop3ext_ldap_result
ldap_search_result(struct ldap_request *req, int err, const char *diag)
{
	if (err == LDAP_NO_SUCH_OBJECT && req->scope == LDAP_SCOPE_BASE) {
		/* the DN (from ldap_user_dn_template) has no entry */
		return POP3EXT_LDAP_NOT_FOUND;
	}
	if (err != LDAP_SUCCESS && err != LDAP_SIZELIMIT_EXCEEDED) {
		e_error(req->event, "ldap: %s (base=%s filter=%s) failed: %s",
			req->what, req->base, str_sanitize(req->filter, 256),
			diag);
		return POP3EXT_LDAP_TEMPFAIL;
	}
	if (req->entry_count == 0)
		return POP3EXT_LDAP_NOT_FOUND;
	if (req->entry_count > 1 || err == LDAP_SIZELIMIT_EXCEEDED) {
		e_error(req->event, "ldap: %s: filter %s matches more than one "
			"entry under %s", req->what,
			str_sanitize(req->filter, 256), req->base);
		return POP3EXT_LDAP_TEMPFAIL;
	}
	return req->bad_entry ? POP3EXT_LDAP_TEMPFAIL : POP3EXT_LDAP_OK;
}

static enum pop3ext_ldap_result
ldap_bind_result(struct ldap_request *req, int err, const char *diag)
{
	const char *dn = str_sanitize(req->dn, 256);

	if (req->expired) {
		e_info(req->event, "ldap: password of %s has expired or must "
		       "be changed (password policy)", dn);
		return POP3EXT_LDAP_PASSWORD_EXPIRED;
	}
	if (req->locked) {
		e_info(req->event, "ldap: account %s is locked (password "
		       "policy)", dn);
		return POP3EXT_LDAP_ACCOUNT_LOCKED;
	}
	switch (err) {
	case LDAP_SUCCESS:
		return POP3EXT_LDAP_OK;
	case LDAP_INVALID_CREDENTIALS:
		return POP3EXT_LDAP_INVALID_CREDENTIALS;
	case LDAP_INVALID_DN_SYNTAX:
		/* not a DN: nobody can have that password */
		e_info(req->event, "ldap: user bind: %s is not a DN: %s",
		       dn, diag);
		return POP3EXT_LDAP_INVALID_CREDENTIALS;
	default:
		e_error(req->event, "ldap: user bind as %s failed: %s",
			dn, diag);
		return POP3EXT_LDAP_TEMPFAIL;
	}
}

static void ldap_bind_ppolicy(struct ldap_request *req, LDAP *ld,
			      LDAPControl **ctrls)
{
	LDAPControl *resp;
	LDAPPasswordPolicyError pperr;
	ber_int_t expire, grace;

	if (ctrls == NULL)
		return;
	resp = ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE, ctrls,
				 NULL);
	if (resp == NULL ||
	    ldap_parse_passwordpolicy_control(ld, resp, &expire, &grace,
					      &pperr) != LDAP_SUCCESS)
		return;
	if (pperr == PP_passwordExpired || pperr == PP_changeAfterReset)
		req->expired = TRUE;
	else if (pperr == PP_accountLocked)
		req->locked = TRUE;
}

/* The final answer to req (a search's result or a bind's). */
static void ldap_request_answered(struct ldap_conn *conn,
				  struct ldap_request *req, LDAPMessage *msg)
{
	struct pop3ext_ldap *ldap = conn->ldap;
	LDAPControl **ctrls = NULL;
	const char *diag;
	bool mark_down = TRUE;
	int err;

	err = ldap_parse_answer(conn->ld, msg, &ctrls, &diag);

	if (ldap_rc_is_unavailable(err) ||
	    (req->type != LDAP_REQUEST_BIND &&
	     ldap_search_rc_fails_over(err, &mark_down))) {
		/* busy or unavailable: try the next server */
		unsigned int server = conn->server;

		if (ctrls != NULL)
			ldap_controls_free(ctrls);
		ldap_request_detach(req);
		if (mark_down)
			ldap_server_mark_down(ldap, server, diag);
		else {
			e_warning(req->event, "ldap: %s: %s: %s - trying "
				  "the next server",
				  ldap_server_uri(ldap, server), req->what,
				  diag);
		}
		req->tried |= 1U << server;
		ldap_request_retry(req, diag);
		return;
	}
	ldap_server_answered(ldap, conn->server);

	switch (req->type) {
	case LDAP_REQUEST_SEARCH:
		if (ctrls != NULL)
			ldap_controls_free(ctrls);
		ldap_request_finish(req, ldap_search_result(req, err, diag));
		break;
	case LDAP_REQUEST_LIST:
		if (req->cookie != NULL)
			ber_bvfree(req->cookie);
		req->cookie = err != LDAP_SUCCESS ? NULL :
			ldap_next_page(conn->ld, ctrls);
		if (ctrls != NULL)
			ldap_controls_free(ctrls);
		if (err != LDAP_SUCCESS) {
			e_error(req->event, "ldap: user listing (base=%s "
				"filter=%s) failed: %s", req->base, req->filter,
				diag);
			ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
		} else if (req->cookie == NULL) {
			ldap_request_finish(req, POP3EXT_LDAP_OK);
		} else if (req->page_wait) {
			/* wait until the caller wants the next page; the
			   connection stays (with the cookie) */
			bool draining = conn->draining;

			conn->draining = FALSE;
			ldap_request_detach(req);
			conn->draining = draining;
			req->page_conn = conn;
			conn->refcount++;
			req->paused = TRUE;
			req->page_delivered = TRUE;
			if (ldap->sync_ioloop != NULL)
				io_loop_stop(ldap->sync_ioloop);
		} else {
			/* the next page, on the same connection (the cookie
			   is only good there), even if it is draining */
			bool draining = conn->draining;

			conn->draining = FALSE;
			ldap_request_detach(req);
			ldap_request_send(conn, req);
			if (conn->ld != NULL)
				conn->draining = draining;
		}
		break;
	case LDAP_REQUEST_BIND: {
		enum pop3ext_ldap_result result;

		ldap_bind_ppolicy(req, conn->ld, ctrls);
		if (ctrls != NULL)
			ldap_controls_free(ctrls);
		result = ldap_bind_result(req, err, diag);
		if (result == POP3EXT_LDAP_OK && req->read_after_bind) {
			/* the entry, read as the user on this connection */
			safe_memset(req->password, 0, strlen(req->password));
			req->type = LDAP_REQUEST_SEARCH;
			req->what = "user entry read";
			req->base = req->dn;
			req->scope = LDAP_SCOPE_BASE;
			req->filter = "(objectClass=*)";
			req->attrs = ldap->entry_attrs;
			req->sizelimit = 2;
			ldap_request_detach(req);
			ldap_request_send(conn, req);
			break;
		}
		ldap_request_finish(req, result);
		break;
	}
	}
}

static void ldap_conn_message(struct ldap_conn *conn, LDAPMessage *msg)
{
	struct pop3ext_ldap *ldap = conn->ldap;
	struct ldap_request *req;
	int msgid = ldap_msgid(msg), type = ldap_msgtype(msg);

	if (msgid == conn->bind_msgid && type == LDAP_RES_BIND) {
		ldap_conn_bound(conn, msg);
		return;
	}
	for (req = conn->requests; req != NULL; req = req->next) {
		if (req->msgid == msgid)
			break;
	}
	if (req == NULL) {
		/* e.g. the late answer to an abandoned request */
		ldap_msgfree(msg);
		return;
	}
	switch (type) {
	case LDAP_RES_SEARCH_ENTRY:
		if (req->type == LDAP_REQUEST_LIST)
			ldap_list_entry(req, conn->ld, msg);
		else if (++req->entry_count == 1 &&
			 ldap_entry_read(ldap, req->event, conn->ld, msg,
					 req->result_pool, &req->entry) < 0)
			req->bad_entry = TRUE;
		ldap_msgfree(msg);
		break;
	case LDAP_RES_SEARCH_RESULT:
	case LDAP_RES_BIND:
		ldap_request_answered(conn, req, msg);
		break;
	default:
		/* references, intermediate responses */
		ldap_msgfree(msg);
		break;
	}
}

static void ldap_conn_input(struct ldap_conn *conn)
{
	struct pop3ext_ldap *ldap = conn->ldap;
	struct timeval tv = { 0, 0 };
	LDAPMessage *msg;
	int ret, rc;

	conn->refcount++;
	while (conn->ld != NULL) {
		ret = ldap_result(conn->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &tv, &msg);
		if (ret == 0)
			break;
		if (ret < 0) {
			(void)ldap_get_option(conn->ld, LDAP_OPT_RESULT_CODE, &rc);
			if (rc == LDAP_SUCCESS)
				rc = LDAP_SERVER_DOWN;
			T_BEGIN {
				ldap_conn_failed(conn, ldap_diag(conn->ld, rc),
						 FALSE);
			} T_END;
			break;
		}
		conn->last_input = monotonic_msecs();
		T_BEGIN {
			ldap_conn_message(conn, msg);
		} T_END;
	}
	ldap_conn_unref(&conn);
	ldap_dispatch(ldap);
}

/* -- starting operations ---------------------------------------------------- */

static void ldap_move_ios(struct pop3ext_ldap *ldap, struct ioloop *ioloop)
{
	struct ldap_conn *conn;

	for (conn = ldap->conns; conn != NULL; conn = conn->next) {
		if (conn->io != NULL)
			conn->io = io_loop_move_io_to(ioloop, &conn->io);
		if (conn->to_bind != NULL) {
			conn->to_bind = io_loop_move_timeout_to(ioloop,
							&conn->to_bind);
		}
		if (conn->setup_io != NULL) {
			conn->setup_io = io_loop_move_io_to(ioloop,
							    &conn->setup_io);
		}
		if (conn->to_setup != NULL) {
			conn->to_setup = io_loop_move_timeout_to(ioloop,
							&conn->to_setup);
		}
	}
}

/* What a request may take in all: a connect and an operation per server,
   within LDAP_REQUEST_MAX_MSECS. */
static unsigned int ldap_request_max_msecs(struct pop3ext_ldap *ldap)
{
	uint64_t msecs = (uint64_t)(ldap->set->ldap_connect_timeout_msecs +
				    ldap->set->ldap_timeout_msecs) *
		array_count(&ldap->servers);

	return msecs > LDAP_REQUEST_MAX_MSECS ? LDAP_REQUEST_MAX_MSECS :
		(unsigned int)msecs;
}

static void ldap_request_deadline(struct ldap_request *req)
{
	struct pop3ext_ldap *ldap = req->ldap;
	struct ldap_conn *conn = req->conn;

	if (conn != NULL && req->msgid >= 0 && conn->ld != NULL) {
		(void)ldap_abandon_ext(conn->ld, req->msgid, NULL, NULL);
		if (conn->for_bind) {
			/* never a new bind while one may still run */
			ldap_request_detach(req);
			ldap_conn_close(conn);
		}
	}
	e_error(req->event, "ldap: %s: no LDAP server answered within %u ms "
		"(last error: %s)", req->what, ldap_request_max_msecs(req->ldap),
		req->last_error == NULL ? "none" : req->last_error);
	ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
	ldap_dispatch(ldap);
}

static void ldap_request_add_deadline(struct ldap_request *req)
{
	/* a listing's pages each have ldap_timeout */
	if (req->type == LDAP_REQUEST_LIST)
		return;
	req->to_deadline = timeout_add(ldap_request_max_msecs(req->ldap),
				       ldap_request_deadline, req);
}

/* An auth-worker: sends req (queued, or the next page on conn) and waits
   until it is finished (then calls back) or paused after a page. */
static void ldap_request_wait(struct ldap_request *req,
			      struct ldap_conn *page_conn)
{
	struct pop3ext_ldap *ldap = req->ldap;
	struct ioloop *prev_ioloop = current_ioloop;

	i_assert(ldap->sync_ioloop == NULL);
	ldap->sync_ioloop = io_loop_create();
	ldap_move_ios(ldap, ldap->sync_ioloop);
	if (page_conn == NULL) {
		ldap_request_add_deadline(req);
		ldap_dispatch(ldap);
	} else {
		ldap_request_send(page_conn, req);
	}
	while (!req->finished && !req->paused)
		io_loop_run(ldap->sync_ioloop);
	ldap_move_ios(ldap, prev_ioloop);
	io_loop_destroy(&ldap->sync_ioloop);
	if (req->finished)
		ldap_request_callback(req);
}

static void ldap_request_start(struct ldap_request *req)
{
	struct pop3ext_ldap *ldap = req->ldap;

	ldap_request_queue(req, FALSE);
	if (!ldap->sync) {
		ldap_request_add_deadline(req);
		ldap_dispatch(ldap);
		return;
	}
	/* an auth-worker: wait for the answer here */
	ldap_request_wait(req, NULL);
}

static struct ldap_request *
ldap_request_new(struct pop3ext_ldap *ldap, enum ldap_request_type type,
		 struct event *event, const char *what)
{
	struct ldap_request *req;
	pool_t pool;

	pool = pool_alloconly_create("pop3ext ldap request", 512);
	req = p_new(pool, struct ldap_request, 1);
	req->pool = pool;
	req->ldap = ldap;
	req->type = type;
	req->event = event;
	event_ref(event);
	req->what = what;
	req->msgid = -1;
	return req;
}

/* A search for one entry, with the configured attributes. */
static void
ldap_entry_search(struct pop3ext_ldap *ldap, struct event *event,
		  const char *what, const char *base, int scope,
		  const char *filter, pool_t pool,
		  pop3ext_ldap_entry_callback_t *callback, void *context)
{
	struct ldap_request *req;

	req = ldap_request_new(ldap, LDAP_REQUEST_SEARCH, event, what);
	req->base = p_strdup(req->pool, base);
	req->scope = scope;
	req->filter = p_strdup(req->pool, filter);
	req->attrs = ldap->entry_attrs;
	/* two tell us that the filter is ambiguous */
	req->sizelimit = 2;
	req->result_pool = pool;
	req->entry_callback = callback;
	req->context = context;
	ldap_request_start(req);
}

void pop3ext_ldap_find_user(struct pop3ext_ldap *ldap, struct event *event,
			    pool_t pool, const char *user, const char *service,
			    pop3ext_ldap_entry_callback_t *callback,
			    void *context)
{
	ldap_entry_search(ldap, event, "user search", ldap->set->ldap_base,
			  ldap_scope(ldap->set->ldap_scope),
			  pop3ext_auth_template_expand(
				ldap->set->ldap_user_filter, user, service,
				pop3ext_ldap_escape_filter),
			  pool, callback, context);
}

void pop3ext_ldap_read_entry(struct pop3ext_ldap *ldap, struct event *event,
			     pool_t pool, const char *dn,
			     pop3ext_ldap_entry_callback_t *callback,
			     void *context)
{
	ldap_entry_search(ldap, event, "entry read", dn, LDAP_SCOPE_BASE,
			  "(objectClass=*)", pool, callback, context);
}

void pop3ext_ldap_bind_user(struct pop3ext_ldap *ldap, struct event *event,
			    const char *dn, const char *password,
			    pop3ext_ldap_callback_t *callback, void *context)
{
	struct ldap_request *req;

	/* an empty password would be an unauthenticated bind (RFC 4513
	   5.1.2), which servers answer with success */
	if (password[0] == '\0' || dn[0] == '\0') {
		callback(POP3EXT_LDAP_INVALID_CREDENTIALS, context);
		return;
	}
	req = ldap_request_new(ldap, LDAP_REQUEST_BIND, event, "user bind");
	req->dn = p_strdup(req->pool, dn);
	req->password = p_strdup(req->pool, password);
	req->callback = callback;
	req->context = context;
	ldap_request_start(req);
}

void pop3ext_ldap_bind_user_read(struct pop3ext_ldap *ldap,
				 struct event *event, pool_t pool,
				 const char *dn, const char *password,
				 pop3ext_ldap_entry_callback_t *callback,
				 void *context)
{
	struct ldap_request *req;

	if (password[0] == '\0' || dn[0] == '\0') {
		callback(POP3EXT_LDAP_INVALID_CREDENTIALS, NULL, context);
		return;
	}
	req = ldap_request_new(ldap, LDAP_REQUEST_BIND, event, "user bind");
	req->dn = p_strdup(req->pool, dn);
	req->password = p_strdup(req->pool, password);
	req->read_after_bind = TRUE;
	req->result_pool = pool;
	req->entry_callback = callback;
	req->context = context;
	ldap_request_start(req);
}

/* -- streaming listing (auth-workers) ---------------------------------------- */

struct pop3ext_ldap_listing {
	struct ldap_request *req;
	bool done, failed;
};

static void ldap_listing_finished(enum pop3ext_ldap_result result,
				  void *context)
{
	struct pop3ext_ldap_listing *listing = context;

	listing->req = NULL;
	listing->done = TRUE;
	listing->failed = result != POP3EXT_LDAP_OK;
}

static void ldap_listing_release_conn(struct ldap_request *req)
{
	if (req->page_conn != NULL)
		ldap_conn_unref(&req->page_conn);
}

struct pop3ext_ldap_listing *
pop3ext_ldap_listing_start(struct pop3ext_ldap *ldap, struct event *event,
			   pool_t pool, ARRAY_TYPE(const_string) *users)
{
	struct pop3ext_ldap_listing *listing;
	struct ldap_request *req;

	i_assert(ldap->sync);
	listing = p_new(pool, struct pop3ext_ldap_listing, 1);
	req = ldap_request_new(ldap, LDAP_REQUEST_LIST, event, "user listing");
	req->base = ldap->set->ldap_base;
	req->scope = ldap_scope(ldap->set->ldap_scope);
	req->filter = ldap->set->ldap_iterate_filter;
	req->attrs = p_new(req->pool, char *, 2);
	req->attrs[0] = (char *)ldap->set->ldap_username_attribute;
	req->result_pool = pool;
	req->users = users;
	req->users_start = array_count(users);
	req->page_wait = TRUE;
	req->callback = ldap_listing_finished;
	req->context = listing;
	listing->req = req;
	ldap_request_start(req);
	return listing;
}

int pop3ext_ldap_listing_next(struct pop3ext_ldap_listing *listing)
{
	struct ldap_request *req = listing->req;
	struct ldap_conn *conn;

	if (listing->done)
		return listing->failed ? -1 : 0;
	i_assert(req->paused);
	req->paused = FALSE;
	conn = req->page_conn;
	req->page_conn = NULL;
	if (conn->closed || !conn->ready) {
		/* e.g. the server closed it while we waited */
		ldap_conn_unref(&conn);
		e_error(req->event, "ldap: user listing cut short: the "
			"connection closed between pages");
		/* (not waiting: this calls back, which ends the listing) */
		ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
		return -1;
	}
	ldap_request_wait(req, conn);
	ldap_conn_unref(&conn);
	if (listing->done)
		return listing->failed ? -1 : 0;
	return 1;
}

void pop3ext_ldap_listing_end(struct pop3ext_ldap_listing **_listing)
{
	struct pop3ext_ldap_listing *listing = *_listing;
	struct ldap_request *req = listing->req;

	*_listing = NULL;
	if (req == NULL)
		return;
	/* stopped early: no more pages */
	ldap_listing_release_conn(req);
	req->paused = FALSE;
	req->callback = NULL;
	req->context = NULL;
	ldap_request_free(req);
}

/* -- setup ------------------------------------------------------------------ */

const ARRAY_TYPE(const_string) *
pop3ext_ldap_entry_values(const struct pop3ext_ldap_entry *entry,
			  const char *name)
{
	const struct pop3ext_ldap_attribute *attr;

	array_foreach(&entry->attributes, attr) {
		if (strcasecmp(attr->name, name) == 0)
			return &attr->values;
	}
	return NULL;
}

static void entry_attrs_add(ARRAY_TYPE(const_string) *attrs, const char *name)
{
	const char *existing;

	if (name[0] == '\0')
		return;
	array_foreach_elem(attrs, existing) {
		if (strcasecmp(existing, name) == 0)
			return;
	}
	array_push_back(attrs, &name);
}

/* The TLS context (CA, client certificate and key) for every connection,
   read now, while the process may still read root-only files. */
static int ldap_tls_init(struct pop3ext_ldap *ldap, const char **error_r)
{
	const struct pop3ext_auth_config *set = ldap->set;
	const char *uri = array_idx_elem(&set->ldap_uris, 0);
	int require_cert, zero = 0;
	LDAP *ld;

	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS) {
		*error_r = t_strdup_printf("ldap_initialize(%s) failed", uri);
		return -1;
	}
	ldap->tls_template = ld;
	require_cert = ldap_require_cert(set->ldap_tls_require_cert);
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require_cert) !=
	    LDAP_OPT_SUCCESS ||
	    (set->ldap_tls_ca_file[0] != '\0' &&
	     ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
			     set->ldap_tls_ca_file) != LDAP_OPT_SUCCESS) ||
	    (set->ldap_tls_cert_file[0] != '\0' &&
	     (ldap_set_option(ld, LDAP_OPT_X_TLS_CERTFILE,
			      set->ldap_tls_cert_file) != LDAP_OPT_SUCCESS ||
	      ldap_set_option(ld, LDAP_OPT_X_TLS_KEYFILE,
			      set->ldap_tls_key_file) != LDAP_OPT_SUCCESS)) ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) !=
	    LDAP_OPT_SUCCESS ||
	    ldap_get_option(ld, LDAP_OPT_X_TLS_CTX, &ldap->tls_ctx) !=
	    LDAP_OPT_SUCCESS || ldap->tls_ctx == NULL) {
		*error_r = t_strdup_printf(
			"ldap_tls_ca_file=%s ldap_tls_cert_file=%s "
			"ldap_tls_key_file=%s: cannot set up TLS: %s",
			set->ldap_tls_ca_file, set->ldap_tls_cert_file,
			set->ldap_tls_key_file,
			ldap_diag(ld, LDAP_LOCAL_ERROR));
		return -1;
	}
	return 0;
}

struct pop3ext_ldap *pop3ext_ldap_init(const struct pop3ext_auth_config *set,
				       bool sync, const char **error_r)
{
	struct pop3ext_ldap *ldap;
	const struct pop3ext_auth_field_map *map;
	ARRAY_TYPE(const_string) attrs;
	const char *uri, *none = LDAP_NO_ATTRS;
	bool tls = set->ldap_starttls;
	pool_t pool;

	i_assert(array_count(&set->ldap_uris) <= LDAP_MAX_SERVERS);

	pool = pool_alloconly_create("pop3ext ldap", 1024);
	ldap = p_new(pool, struct pop3ext_ldap, 1);
	ldap->pool = pool;
	ldap->set = set;
	ldap->sync = sync;
	ldap->active_server = -1;
	ldap->event = event_create(NULL);
	event_set_append_log_prefix(ldap->event, "pop3ext: ");
	p_array_init(&ldap->servers, pool, array_count(&set->ldap_uris));
	array_foreach_elem(&set->ldap_uris, uri) {
		struct ldap_server *server = array_append_space(&ldap->servers);
		server->uri = uri;
		if (str_begins(uri, "ldaps://"))
			tls = TRUE;
	}

	p_array_init(&attrs, pool, 16);
	array_foreach(&set->ldap_fields, map) {
		entry_attrs_add(&attrs, map->attribute);
		if (map->template_attrs != NULL) {
			for (const char *const *a = map->template_attrs;
			     *a != NULL; a++)
				entry_attrs_add(&attrs, *a);
		}
	}
	entry_attrs_add(&attrs, set->ldap_pop3_enabled_attribute);
	entry_attrs_add(&attrs, set->ldap_allow_nets_attribute);
	entry_attrs_add(&attrs, set->ldap_username_attribute);
	entry_attrs_add(&attrs, set->ldap_password_attribute);
	if (array_count(&attrs) == 0)
		array_push_back(&attrs, &none);
	array_append_zero(&attrs);
	ldap->entry_attrs = (char **)array_front_modifiable(&attrs);

	if (tls && ldap_tls_init(ldap, error_r) < 0) {
		pop3ext_ldap_deinit(&ldap);
		return NULL;
	}
	return ldap;
}

void pop3ext_ldap_deinit(struct pop3ext_ldap **_ldap)
{
	struct pop3ext_ldap *ldap = *_ldap;
	struct ldap_request *req;
	struct ldap_conn *conn;

	if (ldap == NULL)
		return;
	*_ldap = NULL;
	/* pending requests end: Dovecot is stopping */
	while ((req = ldap->search_queue) != NULL ||
	       (req = ldap->bind_queue) != NULL)
		ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
	for (conn = ldap->conns; conn != NULL; conn = conn->next)
		conn->draining = FALSE;
	for (conn = ldap->conns; conn != NULL; conn = conn->next) {
		while ((req = conn->requests) != NULL)
			ldap_request_finish(req, POP3EXT_LDAP_TEMPFAIL);
	}
	while (ldap->conns != NULL)
		ldap_conn_close(ldap->conns);
	if (ldap->tls_template != NULL)
		(void)ldap_unbind_ext(ldap->tls_template, NULL, NULL);
	event_unref(&ldap->event);
	pool_unref(&ldap->pool);
}
