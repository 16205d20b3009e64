/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

#include "lib.h"
#include "mail-copy.h"
#include "sqlbox-storage.h"

/* Copying between mailboxes of the same user's sqlbox is done inside the
   database at commit (the row and the body are copied there, nothing goes
   through this process). Anything else is copied by streaming the message
   through the save path. */

int sqlbox_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox_transaction_context *t = ctx->transaction;
	struct mail *backend_mail;
	struct sqlbox_mailbox *src_mbox;

	if (mail_get_backend_mail(mail, &backend_mail) < 0)
		return -1;
	if (backend_mail->box->storage != t->box->storage ||
	    backend_mail->saving || backend_mail->uid == 0 ||
	    ctx->data.attach != NULL)
		return mail_storage_copy(ctx, mail);

	src_mbox = SQLBOX_MAILBOX(backend_mail->box);
	if (sqlbox_mail_get_record(backend_mail) == NULL) {
		/* not synced into the index (can't happen with a mail that
		   was found through the index) */
		return mail_storage_copy(ctx, mail);
	}
	sqlbox_save_add_copy(ctx, src_mbox, backend_mail->uid);
	index_save_context_free(ctx);
	return 0;
}
