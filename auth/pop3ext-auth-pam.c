/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "auth-common.h"
#include "safe-memset.h"
#include "str-sanitize.h"
#include "passdb.h"
#include "pop3ext-auth-escape.h"
#include "pop3ext-auth.h"

#include <security/pam_appl.h>

struct pam_conv_context {
	const char *user;
	const char *password;
};

/* PAM asks; we answer with the user name or the password. The replies are
   malloc()ed because PAM free()s them. */
static int
pam_conversation(int num_msg, const struct pam_message **msg,
		 struct pam_response **resp_r, void *appdata_ptr)
{
	struct pam_conv_context *ctx = appdata_ptr;
	struct pam_response *resp;
	int i;

	*resp_r = NULL;
	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	resp = calloc(num_msg, sizeof(*resp));
	if (resp == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "Out of memory");
	for (i = 0; i < num_msg; i++) {
		const char *answer;

		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_ON:
			answer = ctx->user;
			break;
		case PAM_PROMPT_ECHO_OFF:
			answer = ctx->password;
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			answer = NULL;
			break;
		default:
			while (--i >= 0) {
				if (resp[i].resp != NULL) {
					safe_memset(resp[i].resp, 0,
						    strlen(resp[i].resp));
					free(resp[i].resp);
				}
			}
			free(resp);
			return PAM_CONV_ERR;
		}
		if (answer != NULL) {
			resp[i].resp = strdup(answer);
			if (resp[i].resp == NULL)
				i_fatal_status(FATAL_OUTOFMEM, "Out of memory");
		}
		resp[i].resp_retcode = PAM_SUCCESS;
	}
	*resp_r = resp;
	return PAM_SUCCESS;
}

/* What a PAM status means for Dovecot: a refusal by the account stage
   (acct) is a disabled account, a refusal by the auth stage a wrong
   password; PAM that cannot reach its data is a temporary failure. */
static enum passdb_result pam_status_result(int status, bool acct_stage)
{
	switch (status) {
	case PAM_SUCCESS:
		return PASSDB_RESULT_OK;
	case PAM_USER_UNKNOWN:
		return PASSDB_RESULT_USER_UNKNOWN;
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_ACCT_EXPIRED:
	case PAM_AUTHTOK_EXPIRED:
		return PASSDB_RESULT_PASS_EXPIRED;
	case PAM_AUTHINFO_UNAVAIL:
	case PAM_CRED_UNAVAIL:
	case PAM_SYSTEM_ERR:
	case PAM_BUF_ERR:
	case PAM_SERVICE_ERR:
	case PAM_ABORT:
	case PAM_OPEN_ERR:
	case PAM_SYMBOL_ERR:
	case PAM_MODULE_UNKNOWN:
	case PAM_CONV_ERR:
	case PAM_TRY_AGAIN:
		return PASSDB_RESULT_INTERNAL_FAILURE;
	case PAM_PERM_DENIED:
	case PAM_AUTH_ERR:
		return acct_stage ? PASSDB_RESULT_USER_DISABLED :
			PASSDB_RESULT_PASSWORD_MISMATCH;
	default:
		return PASSDB_RESULT_PASSWORD_MISMATCH;
	}
}

static void
pam_log_result(struct auth_request *request, const char *stage,
	       pam_handle_t *pamh, int status, enum passdb_result result)
{
	struct event *event = authdb_event(request);
	const char *msg = t_strdup_printf("pam: %s: %s", stage,
					  pam_strerror(pamh, status));

	switch (result) {
	case PASSDB_RESULT_USER_UNKNOWN:
		auth_request_log_unknown_user(request, AUTH_SUBSYS_DB);
		break;
	case PASSDB_RESULT_PASSWORD_MISMATCH:
		e_info(event, "%s (password mismatch?)", msg);
		break;
	case PASSDB_RESULT_INTERNAL_FAILURE:
		e_error(event, "%s", msg);
		break;
	default:
		e_info(event, "%s", msg);
		break;
	}
}

enum passdb_result
pop3ext_pam_verify(const struct pop3ext_auth_config *set,
		   struct auth_request *request, const char *password)
{
	struct pam_conv_context ctx;
	struct pam_conv conv;
	pam_handle_t *pamh = NULL;
	const char *service, *tty, *host, *stage = "pam_start";
	enum passdb_result result, renamed;
	const void *item;
	int status, status2;
	bool acct_stage = FALSE;

	service = pop3ext_auth_template_expand(set->pam_service,
		request->fields.user, request->fields.service, NULL);
	tty = pop3ext_auth_template_expand(set->pam_tty,
		request->fields.user, request->fields.service, NULL);
	e_debug(authdb_event(request), "pam: service=%s", service);

	i_zero(&ctx);
	ctx.user = request->fields.user;
	ctx.password = password;
	conv.conv = pam_conversation;
	conv.appdata_ptr = &ctx;

	status = pam_start(service, request->fields.user, &conv, &pamh);
	if (status != PAM_SUCCESS) {
		e_error(authdb_event(request), "pam: pam_start(%s) failed: %s",
			service, pam_strerror(pamh, status));
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}

	/* what PAM modules may base a decision on: where the client is and
	   which Dovecot service it uses */
	host = net_ip2addr(&request->fields.remote_ip);
	if (host[0] != '\0')
		(void)pam_set_item(pamh, PAM_RHOST, host);
	(void)pam_set_item(pamh, PAM_RUSER, request->fields.user);
	if (tty[0] != '\0')
		(void)pam_set_item(pamh, PAM_TTY, tty);

	stage = "pam_authenticate";
	status = pam_authenticate(pamh, PAM_SILENT);
	if (status == PAM_SUCCESS && set->pam_acct_mgmt) {
		stage = "pam_acct_mgmt";
		acct_stage = TRUE;
		status = pam_acct_mgmt(pamh, PAM_SILENT);
	}
	renamed = PASSDB_RESULT_OK;
	if (status == PAM_SUCCESS) {
		/* PAM may have mapped the name (e.g. case) */
		const char *error;

		stage = "pam_get_item(PAM_USER)";
		status2 = pam_get_item(pamh, PAM_USER, &item);
		if (status2 != PAM_SUCCESS || item == NULL) {
			/* not a wrong password: PAM said yes */
			e_error(authdb_event(request), "pam: pam_get_item("
				"PAM_USER) failed: %s",
				pam_strerror(pamh, status2));
			renamed = PASSDB_RESULT_INTERNAL_FAILURE;
		} else if (strcmp(item, request->fields.user) == 0) {
			/* the same */
		} else if (pop3ext_auth_username_check(
				item, set->username_max_length, &error) < 0) {
			/* the same checks as for the client's name */
			e_error(authdb_event(request), "pam: PAM_USER %s (set "
				"by PAM) refused: %s", str_sanitize(item, 256),
				error);
			renamed = PASSDB_RESULT_USER_UNKNOWN;
		} else {
			auth_request_set_field(request, "user", item, NULL);
		}
	}
	result = pam_status_result(status, acct_stage);
	if (result == PASSDB_RESULT_OK)
		result = renamed;
	if (result != PASSDB_RESULT_OK)
		pam_log_result(request, stage, pamh, status, result);

	status2 = pam_end(pamh, status);
	if (status2 != PAM_SUCCESS) {
		e_error(authdb_event(request), "pam: pam_end() failed: %s",
			pam_strerror(pamh, status2));
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}
	return result;
}
