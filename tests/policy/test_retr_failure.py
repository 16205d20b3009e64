"""A message counts as retrieved only when RETR (or a TOP that returned
the whole message) sent all of it: a RETR answered -ERR (an unreadable
maildir file, a corrupt sqlbox body) triggers no pop3ext_on_retr action and
starts no pop3ext_expire_after_retr clock."""

import glob
import os

from policytest import PolicyTestCase


class RetrFailureTest(PolicyTestCase):

    def break_message(self, user, n):
        """Makes message n (1-based, as delivered) unreadable; returns a
        function that repairs it."""
        subject = ("Subject: %s %d" % (user, n - 1)).encode()
        for path in glob.glob(os.path.join(self.d.home(user), "Maildir",
                                           "*", "*")):
            with open(path, "rb") as f:
                data = f.read()
            if subject + b"\r\n" in data or subject + b"\n" in data:
                os.chmod(path, 0)
                base = os.path.basename(path).split(":")[0]

                def repair():
                    # pop3 may have moved it from new/ to cur/
                    for moved in glob.glob(os.path.join(
                            self.d.home(user), "Maildir", "*",
                            base + "*")):
                        os.chmod(moved, 0o600)
                return repair
        self.fail("no file of %s" % subject)

    def retr_fails(self, p, n):
        err = self.pop3_error(p, "RETR %d" % n)
        self.assertTrue(err.startswith("-ERR"), err)

    def inbox_uids(self, user):
        i = self.d.imap(user)
        i.select("INBOX")
        typ, data = i.uid("SEARCH", "ALL")
        i.logout()
        return [int(x) for x in data[0].split()]

    def test_failed_retr_is_not_expunged_by_on_retr(self):
        self.start({"u": {"pop3ext_on_retr": "expunge"}})
        repair = self.break_message("u", 2)
        p = self.d.pop3("u")
        p.retr(1)
        self.retr_fails(p, 2)
        p.retr(3)
        p.quit()
        repair()
        # the two messages the client got are gone, the one it never got
        # stays
        self.assertEqual(self.inbox_uids("u"), [2])

    def test_failed_retr_starts_no_expiry(self):
        self.start({"u": {"pop3ext_expire_after_retr": "1d"}})
        repair = self.break_message("u", 2)
        p = self.d.pop3("u")
        p.retr(1)
        self.retr_fails(p, 2)
        p.quit()
        repair()
        self.sweep("-u", "u", faketime="+2d")
        self.assertEqual(self.inbox_uids("u"), [2, 3])

    def test_top_of_the_whole_message_is_a_retrieval(self):
        self.start({"u": {"pop3ext_on_retr": "expunge"}})
        p = self.d.pop3("u")
        p.top(1, 0)             # the header only: no retrieval
        p.top(2, 100000)        # every line: the whole message
        p.quit()
        self.assertEqual(self.inbox_uids("u"), [1, 3])

    def test_big_retr_counts_when_it_has_been_sent(self):
        # streamed from the output flush callback: counted at its end
        self.start({"u": {"pop3ext_on_retr": "expunge"}}, messages=0)
        from pop3ext_harness import mail
        self.d.deliver("u", mail.message(0, size=3 * 1024 * 1024,
                                         subject="big"))
        self.d.deliver("u", mail.message(1, subject="small"))
        p = self.d.pop3("u")
        resp, lines, octets = p.retr(1)
        self.assertGreater(octets, 3 * 1024 * 1024)
        p.quit()
        self.assertEqual(self.inbox_uids("u"), [2])


class RetrFailureSqlboxTest(RetrFailureTest):
    storage = "sqlbox"

    def break_message(self, user, n):
        from pop3ext_harness import sqlbox
        path = sqlbox.sqlite_path(self.d, user)
        body_id, data = sqlbox.sqlite_query(
            path, "SELECT b.id, b.data FROM messages m JOIN bodies b "
            "ON b.id = m.body_id WHERE m.uid = ?", [n])[0]
        # one byte changed, same length: its SHA-256 no longer matches
        pos = len(data) // 2
        bad = data[:pos] + bytes([data[pos] ^ 0x20]) + data[pos + 1:]
        sqlbox.sqlite_run(path, [("UPDATE bodies SET data = ? "
                                  "WHERE id = ?", [bad, body_id])])

        def repair():
            sqlbox.sqlite_run(path, [("UPDATE bodies SET data = ? "
                                      "WHERE id = ?", [data, body_id])])
        return repair


class RetrFailureSdboxTest(RetrFailureTest):
    storage = "sdbox"

    def break_message(self, user, n):
        path = os.path.join(self.d.home(user), "sdbox", "mailboxes",
                            "INBOX", "dbox-Mails", "u.%d" % n)
        os.chmod(path, 0)
        return lambda: os.chmod(path, 0o600)
