"""Shared pieces of the retention policy tests."""

import poplib
import re

from pop3ext_harness import TestCase, mail, env

STORAGES = {
    "maildir": "maildir:~/Maildir",
    "sdbox": "sdbox:~/sdbox",
    "mdbox": "mdbox:~/mdbox",
    "sqlbox": "sqlbox:~/sqlbox",
}
# storages that come as a mail plugin of this product
STORAGE_PLUGINS = {
    "sqlbox": ("sqlbox",),
}


class PolicyTestCase(TestCase):
    """A Dovecot with the plugins, the doveadm module, and users whose
    policy comes from userdb fields. Subclasses set `storage`."""

    storage = "maildir"
    plugin_settings = {}

    def start(self, users, messages=3, **kw):
        kw.setdefault("plugin_settings", self.plugin_settings)
        kw.setdefault("mail_plugins", STORAGE_PLUGINS.get(self.storage, ()))
        self.d = self.dovecot(
            users={u: {"fields": f} for u, f in users.items()},
            mail_location=STORAGES[self.storage],
            module_overlays=env.doveadm_overlay(), **kw)
        self.msgs = {}
        for user in users:
            self.msgs[user] = [mail.message(n, subject="%s %d" % (user, n))
                               for n in range(messages)]
            self.d.deliver_many(user, self.msgs[user])
        return self.d

    def copy_mailbox(self, user, other_user):
        """Gives other_user a byte-identical copy of user's mail (same
        UIDVALIDITY, UIDs and retention state), as a second device of the
        same mailbox would see it."""
        self.d.copy_home(user, self.d, other_user)
        if self.storage == "sqlbox":
            # the database names its user: the copy becomes other_user's
            from pop3ext_harness import sqlbox
            sqlbox.sqlite_run(sqlbox.sqlite_path(self.d, other_user),
                              [("UPDATE users SET username = ? "
                                "WHERE username = ?", [other_user, user])])

    # -- POP3 --------------------------------------------------------------

    def pop3_subjects(self, user):
        """The subjects POP3 lists for user, in order."""
        p = self.d.pop3(user)
        count = p.stat()[0]
        subjects = []
        for i in range(1, count + 1):
            head = b"\r\n".join(p.top(i, 0)[1])
            subjects.append(re.search(rb"^Subject: ([^\r\n]*)", head,
                                      re.M).group(1).decode())
        p.quit()
        return subjects

    def pop3_error(self, p, cmd):
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd(cmd)
        return cm.exception.args[0].decode()

    # -- IMAP --------------------------------------------------------------

    def imap_messages(self, user, mailbox="INBOX"):
        """{subject: set of flags} of mailbox over IMAP."""
        i = self.d.imap(user)
        typ, count = i.select('"%s"' % mailbox)
        self.assertEqual(typ, "OK")
        if count == [b"0"]:
            i.logout()
            return {}
        typ, data = i.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS "
                                   "(SUBJECT)])")
        i.logout()
        out = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1)
            subject = re.search(rb"Subject: (.*)", item[1]).group(1)
            out[subject.strip().decode()] = \
                set(flags.decode().split()) - {"\\Recent"}
        return out

    # -- doveadm -------------------------------------------------------------

    def sweep(self, *args, faketime=None, check=True):
        """doveadm pop3ext sweep in json; returns {user: row}."""
        import json
        r = self.d.doveadm("-f", "json", "pop3ext", "sweep", *args,
                           faketime=faketime, check=check)
        rows = json.loads(r.stdout) if r.stdout.strip() else []
        out = {}
        for row in rows:
            out[row.get("username", "-")] = row
        return out
