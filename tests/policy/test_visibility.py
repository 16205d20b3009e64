"""pop3ext_visible_since (a date, or first-login) and the recent: view
(pop3ext_view=recent with pop3ext_recent_window): what POP3 lists."""

import datetime
import os
import time

from policytest import PolicyTestCase


def day(offset):
    d = datetime.datetime.now(datetime.timezone.utc).date() + \
        datetime.timedelta(days=offset)
    return d.isoformat()


class VisibilityTest(PolicyTestCase):

    def test_visible_since_date(self):
        self.start({"past": {"pop3ext_visible_since": day(-1)},
                    "future": {"pop3ext_visible_since": day(+1)},
                    "exact": {"pop3ext_visible_since":
                              day(0) + "T00:00:00Z"}})
        self.assertEqual(len(self.pop3_subjects("past")), 3)
        self.assertEqual(self.pop3_subjects("future"), [])
        self.assertEqual(len(self.pop3_subjects("exact")), 3)
        # IMAP sees everything
        self.assertEqual(len(self.imap_messages("future")), 3)

    def test_visible_since_first_login(self):
        self.start({"u": {"pop3ext_visible_since": "first-login"}})
        # in INBOX at the first login: never listed (in the same second
        # too: the record keeps INBOX's UIDNEXT then)
        self.assertEqual(self.pop3_subjects("u"), [])
        self.d.deliver("u", b"Subject: after\r\n\r\nafter\r\n")
        self.assertEqual(self.pop3_subjects("u"), ["after"])
        # later logins keep the first login's record
        self.d.deliver("u", b"Subject: later\r\n\r\nlater\r\n")
        self.assertEqual(self.pop3_subjects("u"), ["after", "later"])
        import sqlite3
        db = sqlite3.connect(self.d.home("u") + "/.pop3ext/ledger.db")
        t, uidnext = db.execute("SELECT time, uidnext FROM first_login") \
            .fetchone()
        db.close()
        self.assertLessEqual(abs(int(t) - time.time()), 60)
        self.assertEqual(uidnext, 4)

    def test_unreadable_first_login_record_fails_the_session(self):
        self.start({"u": {"pop3ext_visible_since": "first-login"}})
        # an older version's record, to be imported
        state = self.d.home("u") + "/.pop3ext"
        os.makedirs(state, exist_ok=True)
        os.chown(state, self.d.uid, self.d.gid)
        with open(state + "/first-login", "w") as f:
            f.write("garbage\n")
        with self.assertRaises(Exception):
            self.pop3_subjects("u")
        self.d.wait_log("first-login: invalid content")
        self.assertRegex(self.d.log(), r"first-login: invalid content "
                         r"'garbage'")

    def test_recent_view(self):
        self.start({"main": {"pop3ext_on_retr": "hide"},
                    "second": {"pop3ext_view": "recent",
                               "pop3ext_recent_window": "1d"}},
                   messages=3)
        # the first device takes message 1, which hides it
        p = self.d.pop3("main")
        p.retr(1)
        p.quit()
        self.assertEqual(len(self.pop3_subjects("main")), 2)
        # the second device (same mailbox in real life; here its own user
        # with the view set by userdb) lists the whole window
        self.copy_mailbox("main", "second")
        self.assertEqual(len(self.pop3_subjects("second")), 3)
        p = self.d.pop3("second")
        err = self.pop3_error(p, "DELE 1")
        self.assertTrue(err.startswith("-ERR [SYS/PERM] This is a "
                                       "read-only recent: session"), err)
        p.retr(2)
        p.quit()
        # read-only: nothing changed, not even \\Seen
        msgs = self.imap_messages("second")
        self.assertNotIn("\\Seen", msgs["main 1"])
        self.assertEqual(len(self.pop3_subjects("second")), 3)

    def test_recent_window_ends(self):
        self.start({"second": {"pop3ext_view": "recent",
                               "pop3ext_recent_window": "2d"}},
                   pop3_faketime="+3d")
        self.assertEqual(self.pop3_subjects("second"), [])


class VisibilitySdboxTest(VisibilityTest):
    storage = "sdbox"


class VisibilitySqlboxTest(VisibilityTest):
    storage = "sqlbox"
