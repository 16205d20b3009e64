"""pop3ext_on_dele and pop3ext_on_retr: what DELE and RETR do, applied in
the UPDATE state at QUIT and never before; on maildir, sdbox and mdbox."""

import os
import re
import subprocess

from pop3ext_harness.pop3raw import Conversation
from policytest import PolicyTestCase


class DispositionsTest(PolicyTestCase):

    def test_on_dele_expunge_is_stock(self):
        self.start({"u": {}})
        p = self.d.pop3("u")
        p.dele(2)
        p.quit()
        self.assertEqual(self.pop3_subjects("u"), ["u 0", "u 2"])
        self.assertEqual(set(self.imap_messages("u")), {"u 0", "u 2"})

    def test_on_dele_hide_keeps_mail_for_imap(self):
        self.start({"u": {"pop3ext_on_dele": "hide"}})
        p = self.d.pop3("u")
        p.dele(1)
        p.dele(3)
        resp = p.quit()
        # nothing was deleted, and the client is not told it was
        self.assertEqual(resp, b"+OK Logging out.")
        self.assertEqual(self.pop3_subjects("u"), ["u 1"])
        imap = self.imap_messages("u")
        self.assertEqual(set(imap), {"u 0", "u 1", "u 2"})
        self.assertIn("$POP3Hidden", imap["u 0"])
        self.assertNotIn("$POP3Hidden", imap["u 1"])

    def test_on_dele_archive_moves_at_quit(self):
        self.start({"u": {"pop3ext_on_dele": "archive:Archive"}})
        p = self.d.pop3("u")
        p.dele(1)
        p.quit()
        self.assertEqual(self.pop3_subjects("u"), ["u 1", "u 2"])
        self.assertEqual(set(self.imap_messages("u", "Archive")),
                         {"u 0"})
        # the archived copy is the message, byte for byte
        i = self.d.imap("u")
        i.select("Archive")
        body = i.fetch("1", "(BODY.PEEK[TEXT])")[1][0][1]
        i.logout()
        self.assertTrue(self.msgs["u"][0].endswith(body))

    def test_on_dele_refuse(self):
        self.start({"u": {"pop3ext_on_dele": "refuse"}})
        p = self.d.pop3("u")
        err = self.pop3_error(p, "DELE 1")
        self.assertTrue(err.startswith("-ERR [SYS/PERM] Messages of this "
                                       "account stay on the server"), err)
        # refusals are not bad commands: 25 in a row keep the session
        for _ in range(25):
            self.pop3_error(p, "DELE 2")
        self.assertEqual(p.stat()[0], 3)
        p.quit()
        self.assertEqual(len(self.pop3_subjects("u")), 3)

    def test_dropped_connection_changes_nothing(self):
        self.start({"u": {"pop3ext_on_dele": "hide",
                          "pop3ext_on_retr": "expunge"}})
        c = Conversation(self.d.pop3_port)
        c.login("u", "secret")
        c.command(b"DELE 1\r\nRETR 2\r\nNOOP\r\n")
        c.close()
        self.d.wait_log("Disconnected: Connection closed")
        self.assertEqual(self.pop3_subjects("u"), ["u 0", "u 1", "u 2"])
        imap = self.imap_messages("u")
        self.assertFalse(any("$POP3Hidden" in f for f in imap.values()))

    def test_rset_undoes_dele(self):
        self.start({"u": {"pop3ext_on_dele": "hide"}})
        p = self.d.pop3("u")
        p.dele(1)
        p.rset()
        p.quit()
        self.assertEqual(len(self.pop3_subjects("u")), 3)

    def test_on_retr_keep_and_capa(self):
        self.start({"u": {}})
        p = self.d.pop3("u")
        self.assertEqual(p.capa()["EXPIRE"], ["NEVER"])
        p.retr(1)
        p.quit()
        self.assertEqual(len(self.pop3_subjects("u")), 3)

    def test_on_retr_seen(self):
        # pop3_no_flag_updates: stock pop3 would not set \Seen itself
        self.start({"u": {"pop3ext_on_retr": "seen"},
                    "v": {}},
                   extra_conf="pop3_no_flag_updates = yes\n")
        for user in ("u", "v"):
            p = self.d.pop3(user)
            p.retr(2)
            p.top(3, 0)
            p.quit()
        u = self.imap_messages("u")
        self.assertEqual(u["u 1"], {"\\Seen"})
        self.assertEqual(u["u 2"], set())
        self.assertEqual(self.imap_messages("v")["v 1"], set())

    def test_on_retr_hide(self):
        self.start({"u": {"pop3ext_on_retr": "hide"}})
        p = self.d.pop3("u")
        self.assertEqual(p.capa()["EXPIRE"], ["0"])
        p.retr(1)
        p.retr(3)
        p.top(2, 0)   # TOP is no retrieval
        p.quit()
        self.assertEqual(self.pop3_subjects("u"), ["u 1"])
        self.assertEqual(len(self.imap_messages("u")), 3)

    def test_on_retr_archive(self):
        self.start({"u": {"pop3ext_on_retr": "archive:Fetched"}})
        p = self.d.pop3("u")
        p.retr(2)
        p.quit()
        self.assertEqual(self.pop3_subjects("u"), ["u 0", "u 2"])
        self.assertEqual(set(self.imap_messages("u", "Fetched")), {"u 1"})

    def test_on_retr_expunge(self):
        self.start({"u": {"pop3ext_on_retr": "expunge"}})
        p = self.d.pop3("u")
        self.assertEqual(p.capa()["EXPIRE"], ["0"])
        p.retr(1)
        resp = p.quit()
        self.assertEqual(resp, b"+OK Logging out, messages deleted.")
        self.assertEqual(self.pop3_subjects("u"), ["u 1", "u 2"])
        self.assertEqual(set(self.imap_messages("u")), {"u 1", "u 2"})

    def test_dele_and_retr_dispositions_together(self):
        self.start({"u": {"pop3ext_on_dele": "archive:Deleted",
                          "pop3ext_on_retr": "hide"}}, messages=4)
        p = self.d.pop3("u")
        for i in (1, 2, 3):
            p.retr(i)
        p.dele(2)       # retrieved and deleted: on_dele decides
        p.dele(4)
        p.quit()
        self.assertEqual(self.pop3_subjects("u"), [])
        inbox = self.imap_messages("u")
        self.assertEqual(set(inbox), {"u 0", "u 2"})
        self.assertTrue(all("$POP3Hidden" in f for f in inbox.values()))
        self.assertEqual(set(self.imap_messages("u", "Deleted")),
                         {"u 1", "u 3"})

    def fetchmail(self, user, keep):
        out = os.path.join(self.workdir, "fetched")
        if os.path.exists(out):
            os.unlink(out)
        rc = os.path.join(self.workdir, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("poll 127.0.0.1 protocol pop3 port %d user %s "
                    "password secret sslproto '' %s\n" % (
                        self.d.pop3_port, user,
                        "keep" if keep else "nokeep fetchall"))
        os.chmod(rc, 0o600)
        r = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--nosyslog",
                            "--bsmtp", out, "--idfile",
                            os.path.join(self.workdir, "ids")],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, HOME=self.workdir))
        # 1: no new mail
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        if not os.path.exists(out):
            return 0
        with open(out) as f:
            return len(re.findall(r"^MAIL FROM:", f.read(), re.M))

    def test_refused_dele_with_a_bad_argument_is_a_bad_command(self):
        # as in stock Dovecot: a DELE of no message counts towards the
        # limit of bad commands, refused by the policy or not
        self.start({"u": {"pop3ext_on_dele": "refuse"}})
        c = Conversation(self.d.pop3_port)
        c.login("u", "secret")
        out = c.command(b"DELE x\r\nDELE 9\r\n" * 10 + b"DELE 0\r\n")
        self.assertEqual(len(out), 21, c.text())
        self.assertFalse([r for r in out if b"[SYS/PERM]" in r], c.text())
        self.assertEqual(c.read_response(False),
                         b"-ERR Too many bad commands.\r\n")
        c.close()

    def test_fetchmail_nokeep_with_on_dele_hide(self):
        """A client set to delete mail from the server: with on_dele=hide
        it downloads everything once, and the mail stays for IMAP."""
        self.start({"u": {"pop3ext_on_dele": "hide"}}, messages=5)
        self.assertEqual(self.fetchmail("u", keep=False), 5)
        self.assertEqual(self.fetchmail("u", keep=False), 0)
        self.assertEqual(len(self.imap_messages("u")), 5)

    def test_fetchmail_keep_with_on_retr_hide(self):
        self.start({"u": {"pop3ext_on_retr": "hide"}}, messages=4)
        self.assertEqual(self.fetchmail("u", keep=True), 4)
        self.d.deliver("u", b"Subject: late\r\n\r\nlate\r\n")
        self.assertEqual(self.fetchmail("u", keep=True), 1)
        self.assertEqual(len(self.imap_messages("u")), 5)


class DispositionsSdboxTest(DispositionsTest):
    storage = "sdbox"


class HideMdboxTest(PolicyTestCase):
    storage = "mdbox"

    def test_on_dele_hide(self):
        DispositionsTest.test_on_dele_hide_keeps_mail_for_imap(self)

    def test_on_retr_hide(self):
        DispositionsTest.test_on_retr_hide(self)


class ArchiveFailureTest(PolicyTestCase):

    def test_archive_failure_keeps_messages_and_says_so(self):
        # "INBOX/x" cannot be created under maildir++'s layout with this
        # separator: the archive fails, so nothing is removed
        self.start({"u": {"pop3ext_on_dele": "archive:..bad"}})
        p = self.d.pop3("u")
        p.dele(1)
        err = self.pop3_error(p, "QUIT")
        self.assertTrue(err.startswith("-ERR [SYS/TEMP] Some deleted "
                                       "messages were not removed"), err)
        self.assertEqual(len(self.pop3_subjects("u")), 3)
        self.assertRegex(self.d.log(), r"pop3\(u\).*Error: pop3ext: "
                         r"Archive mailbox \.\.bad")


    def test_archive_failure_still_logs_the_deletions_done(self):
        # on_retr=expunge removes message 2; on_dele's archive of message
        # 1 fails, so message 1 stays: the logout line counts 1 deletion
        self.start({"u": {"pop3ext_on_dele": "archive:..bad",
                          "pop3ext_on_retr": "expunge"}})
        p = self.d.pop3("u")
        p.dele(1)
        p.retr(2)
        err = self.pop3_error(p, "QUIT")
        self.assertTrue(err.startswith("-ERR [SYS/TEMP]"), err)
        self.assertEqual(set(self.imap_messages("u")), {"u 0", "u 2"})
        log = self.d.wait_log("Archiving failed during logout")
        self.assertRegex(log, r"pop3\(u\).*Disconnected: Archiving failed "
                         r"during logout\. .*del=1/3")


class DispositionsSqlboxTest(DispositionsTest):
    storage = "sqlbox"
