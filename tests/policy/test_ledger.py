"""The per-user ledger (~/.pop3ext/ledger.db, SQLite): a damaged one fails
the user safe and says which file; held records follow the mailbox's GUID
through a RENAME; the logs of older versions are imported once and kept
as *.imported."""

import os
import poplib
import re
import sqlite3
import time

from policytest import PolicyTestCase

PENDING = "$POP3ExpungePending"


class LedgerTest(PolicyTestCase):

    def state_dir(self, user):
        path = os.path.join(self.d.home(user), ".pop3ext")
        os.makedirs(path, exist_ok=True)
        os.chown(path, self.d.uid, self.d.gid)
        return path

    def write_state_file(self, user, name, data):
        path = os.path.join(self.state_dir(user), name)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, self.d.uid, self.d.gid)
        return path

    def test_corrupt_ledger_expunges_nothing(self):
        self.start({"u": {}})
        path = self.write_state_file(
            "u", "ledger.db", b"not a database " * 100)
        p = self.d.pop3("u")
        try:
            p.dele(1)
            p.dele(2)
        except poplib.error_proto:
            pass
        try:
            p.quit()
        except poplib.error_proto:
            pass
        # IMAP cannot expunge either
        i = self.d.imap("u")
        i.select("INBOX")
        i.store("3", "+FLAGS", "(\\Deleted)")
        i.expunge()
        i.logout()
        self.assertEqual(len(self.imap_messages("u")), 3)
        log = self.d.wait_log(path)
        self.assertRegex(log, re.escape(path) + r".*damaged")
        # moved away: an empty ledger, and the user's mail works again
        os.rename(path, path + ".broken")
        p = self.d.pop3("u")
        p.dele(1)
        p.quit()
        self.assertEqual(len(self.imap_messages("u")), 2)

    def test_rename_keeps_held_messages_held(self):
        self.start({"u": {"pop3ext_min_age": "7d"}})
        i = self.d.imap("u")
        i.create("Box")
        i.select("INBOX")
        i.copy("1:2", "Box")
        i.select("Box")
        i.store("1", "+FLAGS", "(\\Deleted)")
        self.assertEqual(i.expunge(), ("OK", [None]))
        i.close()
        self.assertEqual(i.rename("Box", "Renamed")[0], "OK")
        i.logout()
        box = self.imap_messages("u", "Renamed")
        self.assertEqual(len(box), 2)
        self.assertIn(PENDING, box["u 0"])
        # not yet: still held, its record kept
        res = self.sweep("-u", "u", faketime="+1d")["-"]
        self.assertEqual(res["messages"], 0)
        self.assertEqual(res["held"], 1)
        # allowed: the sweep finds the renamed mailbox by its GUID
        res = self.sweep("-u", "u", faketime="+8d")["-"]
        self.assertEqual(res["messages"], 1)
        self.assertEqual(set(self.imap_messages("u", "Renamed")),
                         {"u 1"})
        # done with: the record is deleted
        db = sqlite3.connect(os.path.join(self.d.home("u"), ".pop3ext",
                                          "ledger.db"))
        self.assertEqual(db.execute("SELECT COUNT(*) FROM held")
                         .fetchone()[0], 0)
        db.close()

    def inbox_guids(self, user):
        """{uid: guid} of INBOX, and its UIDVALIDITY."""
        r = self.d.doveadm("-f", "flow", "fetch", "-u", user, "uid guid",
                           "mailbox", "INBOX", "all")
        guids = dict(re.findall(r"uid=(\d+) guid=(\S+)", r.stdout))
        r = self.d.doveadm("-f", "flow", "mailbox", "status", "-u", user,
                           "uidvalidity", "INBOX")
        uidvalidity = re.search(r"uidvalidity=(\d+)", r.stdout).group(1)
        return guids, uidvalidity

    def test_old_retrieval_log_is_imported(self):
        self.start({"u": {"pop3ext_expire_after_retr": "1d"}})
        guids, uidvalidity = self.inbox_guids("u")
        now = int(time.time())
        lines = "".join("1\t%s\t%s\t%s\t%d\n" % (uidvalidity, uid,
                                                 guids[uid], now)
                        for uid in ("1", "2"))
        # and a line a crash cut: not a retrieval in 1970
        lines += "1\t%s\t3\t%s\t17" % (uidvalidity, guids["3"])
        self.write_state_file("u", "retrieved.log", lines.encode())
        res = self.sweep("-u", "u")["-"]
        self.assertEqual(res["messages"], 0)
        state = os.path.join(self.d.home("u"), ".pop3ext")
        self.assertTrue(os.path.exists(os.path.join(state,
                                                    "retrieved.log.imported")))
        self.assertFalse(os.path.exists(os.path.join(state,
                                                     "retrieved.log")))
        res = self.sweep("-u", "u", faketime="+2d")["-"]
        self.assertEqual(res["messages"], 2)
        self.assertEqual(set(self.imap_messages("u")), {"u 2"})
