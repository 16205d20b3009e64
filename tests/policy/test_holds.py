"""pop3ext_min_age and pop3ext_legal_hold hold every deletion, by any
protocol: POP3 DELE, IMAP EXPUNGE and MOVE, doveadm expunge, autoexpunge.
A held deletion leaves the message in place, marked $POP3ExpungePending
and hidden from POP3; IMAP is not told it is gone; the sweep completes it
once allowed."""

import re
import time

from policytest import PolicyTestCase

PENDING = "$POP3ExpungePending"
AUTOEXPUNGE = """
namespace inbox {
  inbox = yes
  mailbox INBOX {
    autoexpunge = 3s
  }
}
"""


class HoldsTest(PolicyTestCase):

    def attempt_every_deletion(self, user):
        """Tries to delete message 1 over POP3, 2 with IMAP EXPUNGE, 3 with
        IMAP MOVE, 4 with doveadm expunge."""
        p = self.d.pop3(user)
        p.dele(1)
        p.quit()

        i = self.d.imap(user)
        i.create("Other")
        i.select("INBOX")
        typ, data = i.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        uids = {}
        for item in data:
            if isinstance(item, tuple):
                import re
                uid = re.search(rb"UID (\d+)", item[0]).group(1).decode()
                subject = item[1].decode().split(":", 1)[1].strip()
                uids[subject] = uid
        i.uid("STORE", uids["%s 1" % user], "+FLAGS", "(\\Deleted)")
        typ, data = i.expunge()
        self.assertEqual(typ, "OK")
        # the client is not told that a message went away
        self.assertEqual(data, [None])
        typ, data = i.uid("MOVE", uids["%s 2" % user], "Other")
        self.assertEqual(typ, "OK")
        typ, data = i.select("INBOX")
        self.assertEqual(data, [b"5"])
        i.logout()

        self.d.doveadm("expunge", "-u", user, "mailbox", "INBOX", "subject",
                       "%s 3" % user)

    def test_min_age_holds_every_deletion_until_old_enough(self):
        self.start({"u": {"pop3ext_min_age": "7d"}, "free": {}}, messages=5)
        self.attempt_every_deletion("u")
        inbox = self.imap_messages("u")
        self.assertEqual(set(inbox), {"u 0", "u 1", "u 2", "u 3", "u 4"})
        for n in range(4):
            self.assertIn(PENDING, inbox["u %d" % n])
        self.assertNotIn(PENDING, inbox["u 4"])
        # the move's copy arrived; the original waits
        self.assertEqual(set(self.imap_messages("u", "Other")), {"u 2"})
        # held messages are gone for POP3
        self.assertEqual(self.pop3_subjects("u"), ["u 4"])

        # the same attempts for a user without the policy really delete
        self.attempt_free_user()

        self.assertEqual(self.sweep("-u", "u", faketime="+1d")["-"]["held"],
                         4)
        self.assertEqual(len(self.imap_messages("u")), 5)
        res = self.sweep("-u", "u", faketime="+8d")["-"]
        self.assertEqual((res["messages"], res["held"]), (4, 0))
        self.assertEqual(set(self.imap_messages("u")), {"u 4"})
        # idempotent
        self.assertEqual(self.sweep("-u", "u", faketime="+8d")["-"]
                         ["messages"], 0)

    def attempt_free_user(self):
        p = self.d.pop3("free")
        p.dele(1)
        p.quit()
        self.d.doveadm("expunge", "-u", "free", "mailbox", "INBOX",
                       "subject", "free 3")
        self.assertEqual(set(self.imap_messages("free")),
                         {"free 1", "free 2", "free 4"})

    def test_legal_hold_holds_until_lifted(self):
        self.start({"u": {"pop3ext_legal_hold": "yes",
                          "pop3ext_max_age": "1d"}}, messages=5)
        self.attempt_every_deletion("u")
        self.assertEqual(len(self.imap_messages("u")), 5)
        # no amount of time expunges under legal hold, max_age included
        res = self.sweep("-u", "u", faketime="+100d")["-"]
        self.assertEqual(res["messages"], 0)
        self.assertEqual(len(self.imap_messages("u")), 5)
        # lifted: the held deletions complete, and max_age applies
        self.d.set_user_fields("u", pop3ext_legal_hold="no")
        res = self.sweep("-u", "u", faketime="+2d")["-"]
        self.assertEqual(res["messages"], 5)
        self.assertEqual(self.imap_messages("u"), {})

    def end_sessions_and_wait(self, *users):
        """An IMAP session (SELECT, LOGOUT) per user; returns once each
        imap process has logged out, which it does only after its
        autoexpunge."""
        for user in users:
            i = self.d.imap(user)
            i.select("INBOX")
            i.logout()
        for user in users:
            # a held autoexpunge used to loop for ever here (100% CPU)
            deadline = time.monotonic() + 20
            pattern = re.compile(r"imap\(%s\)<[^\n]*Logged out" % user)
            while not pattern.search(self.d.log()) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(pattern.search(self.d.log()),
                            "imap(%s) did not log out within 20 s" % user)

    def test_autoexpunge_is_held(self):
        """Autoexpunge leaves held messages alone (it comes back at the
        end of every session, so nothing is marked pending), and the
        session ends: no process is left running after LOGOUT."""
        self.start({"u": {"pop3ext_min_age": "7d"}, "free": {}},
                   extra_conf=AUTOEXPUNGE)
        # (3 s: long enough that LMTP, which autoexpunges after each
        # delivery, has nothing to do while the test delivers)
        time.sleep(3.5)
        # autoexpunge runs as a session ends
        self.end_sessions_and_wait("u", "free")
        self.assertEqual(self.imap_messages("free"), {})
        inbox = self.imap_messages("u")
        self.assertEqual(len(inbox), 3)
        self.assertFalse(any(PENDING in f for f in inbox.values()))
        self.assertEqual(len(self.pop3_subjects("u")), 3)

    def test_autoexpunge_max_mails_is_held(self):
        """autoexpunge_max_mails under a legal hold: nothing expunged, the
        session ends, and the log says why."""
        self.start({"u": {"pop3ext_legal_hold": "yes"}, "free": {}},
                   extra_conf=AUTOEXPUNGE.replace(
                       "autoexpunge = 3s",
                       "autoexpunge = 3s\n    autoexpunge_max_mails = 1"))
        time.sleep(3.5)
        self.end_sessions_and_wait("u", "free")
        self.assertEqual(self.imap_messages("free"), {})
        self.assertEqual(len(self.imap_messages("u")), 3)
        self.assertIn("over autoexpunge_max_mails kept", self.d.log())

    def test_autoexpunge_max_mails_batch_all_held(self):
        """autoexpunge_max_mails asking for a whole batch (1000) of held
        expunges, under a legal hold and under a malformed policy (which
        refuses every expunge): the session still ends."""
        if self.storage != "maildir":
            # Dovecot's batch loop, the same on every storage; 2002
            # deliveries are slow
            self.skipTest("storage-independent, run on maildir")
        users = {"h": {"pop3ext_legal_hold": "yes"},
                 "bad": {"pop3ext_legal_hold": "maybe"}}
        self.start(users, messages=0)
        for user in users:
            self.d.deliver_many(user, [b"Subject: %d\r\n\r\nx\r\n" % n
                                       for n in range(1001)])
        # autoexpunge from now on (LMTP would have run it after each
        # delivery)
        self.d.extra_conf = AUTOEXPUNGE.replace(
            "autoexpunge = 3s", "autoexpunge_max_mails = 1")
        self.d.reload()
        self.end_sessions_and_wait(*users)
        for user in users:
            i = self.d.imap(user)
            self.assertEqual(i.select("INBOX"), ("OK", [b"1001"]))
            i.logout()

    def test_withdrawn_deletion_is_not_completed(self):
        """Removing the pending keyword (the admin taking the deletion
        back; clients may not) means the sweep leaves the message
        alone."""
        self.start({"u": {"pop3ext_min_age": "7d"}})
        p = self.d.pop3("u")
        p.dele(1)
        p.dele(2)
        p.quit()
        self.d.doveadm("flags", "remove", "-u", "u", PENDING, "mailbox",
                       "INBOX", "subject", "u 0")
        res = self.sweep("-u", "u", faketime="+8d")["-"]
        self.assertEqual(res["messages"], 1)
        self.assertEqual(set(self.imap_messages("u")), {"u 0", "u 2"})

    def test_imap_undelete_withdraws_a_held_expunge(self):
        """An IMAP client's undelete (removing \\Deleted, by -FLAGS or by
        FLAGS (...)) takes back a held EXPUNGE: the sweep leaves the
        message alone. A deletion still standing is completed."""
        self.start({"u": {"pop3ext_min_age": "7d"}}, messages=4)
        i = self.d.imap("u")
        i.select("INBOX")
        i.store("1:3", "+FLAGS", "(\\Deleted)")
        self.assertEqual(i.expunge(), ("OK", [None]))
        typ, data = i.store("1", "-FLAGS", "(\\Deleted)")
        self.assertEqual(typ, "OK", data)
        typ, data = i.store("2", "FLAGS", "(\\Seen)")
        self.assertEqual(typ, "OK", data)
        i.logout()
        inbox = self.imap_messages("u")
        self.assertEqual(inbox["u 0"], set())
        self.assertEqual(inbox["u 1"], {"\\Seen"})
        self.assertEqual(inbox["u 2"], {"\\Deleted", PENDING})
        res = self.sweep("-u", "u", faketime="+8d")["-"]
        self.assertEqual(res["messages"], 1)
        self.assertEqual(set(self.imap_messages("u")), {"u 0", "u 1", "u 3"})


class HoldsSdboxTest(HoldsTest):
    storage = "sdbox"


class HoldsSqlboxTest(HoldsTest):
    storage = "sqlbox"
