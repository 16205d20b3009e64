"""doveadm pop3ext sweep: an error fails only its mailbox (the others
still commit, the records of the failed one are kept), the printed counts
are what was committed, and two sweeps of one user never run at once."""

import fcntl
import os

from policytest import PolicyTestCase

PENDING = "$POP3ExpungePending"


class SweepTest(PolicyTestCase):

    def hold_in(self, i, mailbox):
        """Holds the expunge of message 1 of mailbox (over IMAP)."""
        i.select('"%s"' % mailbox)
        i.store("1", "+FLAGS", "(\\Deleted)")
        self.assertEqual(i.expunge(), ("OK", [None]))

    def test_an_error_fails_only_its_mailbox(self):
        self.start({"u": {"pop3ext_min_age": "7d"}})
        i = self.d.imap("u")
        i.select("INBOX")
        for box in ("Bad", "Good"):
            i.create(box)
            i.copy("1", box)
        # held.log order: Bad first, then Good, then INBOX
        self.hold_in(i, "Bad")
        self.hold_in(i, "Good")
        self.hold_in(i, "INBOX")
        i.logout()
        bad = os.path.join(self.d.home("u"), "Maildir", ".Bad")
        os.chmod(bad, 0)
        try:
            r = self.d.doveadm("-f", "json", "pop3ext", "sweep", "-u", "u",
                               faketime="+8d", check=False)
        finally:
            os.chmod(bad, 0o700)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Bad", r.stderr)
        import json
        row = json.loads(r.stdout)[0]
        # what was committed: Good's and INBOX's
        self.assertEqual(int(row["messages"]), 2)
        self.assertEqual(self.imap_messages("u", "Good"), {})
        self.assertEqual(len(self.imap_messages("u")), 2)
        self.assertEqual(len(self.imap_messages("u", "Bad")), 1)
        # Bad's record was kept: the next sweep completes it
        res = self.sweep("-u", "u", faketime="+8d")["-"]
        self.assertEqual(res["messages"], 1)
        self.assertEqual(self.imap_messages("u", "Bad"), {})

    def test_one_sweep_of_a_user_at_a_time(self):
        self.start({"u": {"pop3ext_max_age": "1d"}})
        state = os.path.join(self.d.home("u"), ".pop3ext")
        os.makedirs(state, exist_ok=True)
        os.chown(state, self.d.uid, self.d.gid)
        path = os.path.join(state, "sweep.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchown(fd, self.d.uid, self.d.gid)
        try:
            # another sweep of u holds it
            fcntl.flock(fd, fcntl.LOCK_EX)
            r = self.d.doveadm("pop3ext", "sweep", "-u", "u",
                               faketime="+2d", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("another sweep of this user is running",
                          r.stderr)
            self.assertEqual(len(self.imap_messages("u")), 3)
        finally:
            os.close(fd)
        self.assertEqual(self.sweep("-u", "u", faketime="+2d")["-"]
                         ["messages"], 3)
        self.assertEqual(self.imap_messages("u"), {})
