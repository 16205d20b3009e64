"""A pop3 process killed during QUIT (the UPDATE state): whatever the
moment, no message is lost; with on_dele=archive each is in INBOX, the
archive, or both, and a later clean QUIT completes the work."""

import os
import random
import re
import signal
import socket
import time

from policytest import PolicyTestCase
from pop3ext_harness import mail

N = 1500


def children(pid, name):
    """Processes named name whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid and comm == name:
            found.append(int(entry))
    return found


class CrashDuringQuitTest(PolicyTestCase):
    # how long after QUIT the kill may come: well within the time the
    # storage takes to archive N messages
    kill_window = 0.05

    def subjects(self, mailbox):
        return set(self.imap_messages("u", mailbox))

    def test_kill_pop3_during_quit(self):
        self.start({"u": {"pop3ext_on_dele": "archive:Archive"}},
                   messages=0)
        all_subjects = {"m %d" % n for n in range(N)}
        self.d.deliver_many("u", [mail.message(n, size=1500,
                                               subject="m %d" % n)
                                  for n in range(N)])
        rnd = random.Random(1234)
        kills = 0
        for trial in range(12):
            s = socket.create_connection(("127.0.0.1", self.d.pop3_port))
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"USER u\r\nPASS secret\r\nSTAT\r\n")
            f.readline()
            f.readline()
            stat = f.readline()
            count = int(stat.split()[1])
            if count == 0:
                s.close()
                break
            s.sendall(b"".join(b"DELE %d\r\n" % i
                               for i in range(1, count + 1)))
            for _ in range(count):
                f.readline()
            pids = children(self.d.proc.pid, "pop3")
            self.assertEqual(len(pids), 1, pids)
            s.sendall(b"QUIT\r\n")
            time.sleep(rnd.uniform(0, self.kill_window))
            try:
                os.kill(pids[0], signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
            s.close()
            # nothing lost, nothing half there
            inbox, archive = self.subjects("INBOX"), self.subjects("Archive")
            self.assertEqual(inbox | archive, all_subjects,
                             "trial %d" % trial)
        self.assertGreater(kills, 0)
        # a clean session finishes the job (duplicates of messages archived
        # before a kill are just that: copies). A kill between writing a
        # message file and committing the index can make the next archive
        # attempt find the file and rebuild the index (sdbox): that QUIT
        # says so with -ERR [SYS/TEMP] and keeps the messages; the next
        # one succeeds.
        # A process killed while holding maildir's dovecot-uidlist dotlock
        # leaves it behind: Dovecot waits until it is stale (2 minutes)
        # before the next session can sync, hence the long timeout.
        import poplib
        for attempt in range(3):
            p = self.d.pop3("u", timeout=300)
            for i in range(1, p.stat()[0] + 1):
                p.dele(i)
            try:
                p.quit()
                break
            except poplib.error_proto as e:
                self.assertIn(b"[SYS/TEMP]", e.args[0])
                self.assertEqual(self.subjects("INBOX") |
                                 self.subjects("Archive"), all_subjects)
        self.assertEqual(self.subjects("INBOX"), set())
        self.assertEqual(self.subjects("Archive"), all_subjects)
        # Dovecot's own consistency check of the mailboxes
        self.d.doveadm("force-resync", "-u", "u", "*")
        self.assertEqual(self.subjects("Archive"), all_subjects)
        self.assertNotRegex(self.d.log(), r"Panic|Fatal: (?!master: "
                            r"service\(pop3\): child \d+ killed)")


class CrashDuringQuitSdboxTest(CrashDuringQuitTest):
    storage = "sdbox"


class CrashDuringQuitSqlboxTest(CrashDuringQuitTest):
    storage = "sqlbox"
    # one database transaction archives all N messages in a few ms
    kill_window = 0.005
