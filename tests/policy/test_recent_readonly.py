"""A recent: session (pop3ext_view=recent) is read-only in every way: RSET
with pop3_enable_last keeps \\Seen, UIDL with pop3_save_uidl stores
nothing, opening INBOX keeps \\Recent for IMAP, and its CAPA says that it
expires and hides nothing."""

import re
import socket
import time

from policytest import PolicyTestCase

CONF = "pop3_enable_last = yes\npop3_save_uidl = yes\n"
RECENT = {"pop3ext_view": "recent", "pop3ext_recent_window": "1d",
          "pop3ext_on_retr": "hide", "pop3ext_expire_after_retr": "7d"}


class RecentReadOnlyTest(PolicyTestCase):

    def flags(self, user):
        """{uid: flags} without touching \\Recent (EXAMINE)."""
        i = self.d.imap(user)
        typ, _ = i.select("INBOX", readonly=True)
        self.assertEqual(typ, "OK")
        typ, data = i.fetch("1:*", "(UID FLAGS)")
        i.logout()
        out = {}
        for item in data:
            m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", item)
            out[int(m.group(1))] = set(m.group(2).decode().split())
        return out

    def test_nothing_is_written(self):
        self.start({"r": dict(RECENT)}, extra_conf=CONF)
        # two messages \Seen before the session, one not
        self.d.doveadm("flags", "add", "-u", "r", "\\Seen", "mailbox",
                       "INBOX", "uid", "1:2")
        before = self.flags("r")
        self.assertEqual(before[1], {"\\Seen", "\\Recent"})
        self.assertEqual(before[3], {"\\Recent"})

        p = self.d.pop3("r")
        capa = p.capa()
        p.uidl()
        p.retr(3)
        self.assertTrue(p.rset().startswith(b"+OK"))
        p.uidl()
        p.quit()

        # not \Seen removed by RSET nor added by RETR, \Recent not dropped
        self.assertEqual(self.flags("r"), before)
        # no UIDLs saved
        r = self.d.doveadm("fetch", "-u", "r", "pop3.uidl", "mailbox",
                           "INBOX", "all")
        self.assertEqual(re.findall(r"pop3\.uidl: *(\S+)", r.stdout), [])
        # nothing hidden or recorded
        self.assertEqual(len(self.pop3_subjects("r")), 3)
        # and CAPA says so (not the EXPIRE 0 of on_retr=hide)
        self.assertEqual(capa["EXPIRE"], ["NEVER"])

    def test_dropped_session_writes_nothing(self):
        self.start({"r": dict(RECENT)}, extra_conf=CONF)
        before = self.flags("r")
        p = self.d.pop3("r")
        p.uidl()
        p.retr(1)
        p.rset()
        # gone without QUIT
        p.sock.shutdown(socket.SHUT_RDWR)
        p.close()
        deadline = time.monotonic() + 10
        while not re.search(r"pop3\(r\).*Disconnected", self.d.log()):
            self.assertLess(time.monotonic(), deadline, self.d.log())
            time.sleep(0.05)
        self.assertEqual(self.flags("r"), before)


class RecentReadOnlySdboxTest(RecentReadOnlyTest):
    storage = "sdbox"


class RecentReadOnlySqlboxTest(RecentReadOnlyTest):
    storage = "sqlbox"
