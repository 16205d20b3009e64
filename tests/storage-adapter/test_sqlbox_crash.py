"""Crash trials: the lmtp or pop3 process is SIGKILLed at random points
(and at the two edges of the database commit, through the SQLBOX_CRASH_AT
test hook), then the mailbox is checked: every acknowledged delivery is
there, whole; nothing is half stored; a POP3 QUIT is all or nothing; the
UIDLs of what remains never change.

One Dovecot instance serves all the trials of a kind (the master starts a
new lmtp/pop3 process after each kill); messages are small so that the
trials are cheap."""

import hashlib
import os
import poplib
import random
import signal
import smtplib
import threading
import time

from pop3ext_harness import TestCase, mail
from pop3ext_harness.sqlbox import (sqlbox_dovecot, sqlite_path,
                                    sqlite_query, remove_index_files,
                                    pop3_view)

LMTP_TRIALS = 36
POP3_TRIALS = 14
CRASH_POINTS = ("commit-before", "commit-after")
CRASH_POINT_TRIALS = 3


# Each killed process is the one serving the test's connection, found by
# its socket: a process killed while it starts up, or killed many times a
# second before any process of its service ever exited cleanly, makes
# Dovecot's master throttle the service (as a crash storm). Hence also
# service_count = 1 and a first clean session before the trials.
TRIAL_CONF = """
service lmtp {
  service_count = 1
}
service pop3 {
  service_count = 1
}
"""


def tcp_inode(local_port):
    """The socket inode of the server side of our connection from
    local_port."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            rem_port = int(fields[2].split(":")[1], 16)
            if rem_port == local_port and fields[3] == "01":
                return fields[9]
    return None


def server_pid(master_pid, local_port, name, timeout=5):
    """The pid of the master's child (lmtp, pop3) holding our connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inode = tcp_inode(local_port)
        for entry in os.listdir("/proc") if inode else ():
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
                comm = stat[stat.index("(") + 1:stat.rindex(")")]
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                if ppid != master_pid or comm != name:
                    continue
                fds = os.listdir("/proc/%s/fd" % entry)
                for fd in fds:
                    link = os.readlink("/proc/%s/fd/%s" % (entry, fd))
                    if link == "socket:[%s]" % inode:
                        return int(entry)
            except OSError:
                continue
        time.sleep(0.005)
    return None


def lmtp_send(d, user, msg, kill_after=None):
    """Delivers msg; kill_after (secs) SIGKILLs the lmtp process serving
    it that long after the transaction started. Returns (acknowledged,
    killed)."""
    killed = False
    try:
        with smtplib.LMTP("127.0.0.1", d.lmtp_port, timeout=30) as lmtp:
            if kill_after is None:
                lmtp.sendmail("sender@example.test", [user], msg)
                return True, False
            pid = server_pid(d.proc.pid, lmtp.sock.getsockname()[1],
                             "lmtp")

            def kill():
                nonlocal killed
                time.sleep(kill_after)
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed = True
                    except ProcessLookupError:
                        pass
            t = threading.Thread(target=kill)
            t.start()
            try:
                lmtp.sendmail("sender@example.test", [user], msg)
                ok = True
            finally:
                t.join()
            return ok, killed
    except (smtplib.SMTPException, OSError):
        return False, killed


def stored_messages(d, user):
    """{uid: message} from the database, after checking that every body
    matches its SHA-256 and size and that no body lacks its message."""
    path = sqlite_path(d, user)
    rows = sqlite_query(path, "SELECT m.uid, b.data, b.sha256, b.size, "
                        "m.physical_size FROM messages m JOIN bodies b "
                        "ON b.id = m.body_id JOIN mailboxes x "
                        "ON x.id = m.mailbox_id WHERE x.name = 'INBOX'")
    out = {}
    for uid, data, sha, size, psize in rows:
        assert hashlib.sha256(data).digest() == sha, uid
        assert len(data) == size == psize, uid
        out[uid] = data
    orphans = sqlite_query(path, "SELECT count(*) FROM bodies WHERE id NOT "
                           "IN (SELECT body_id FROM messages)")[0][0]
    assert orphans == 0, "%d bodies without a message" % orphans
    return out


class SqliteCrashTest(TestCase):

    def check_consistent(self, d, sent, acked):
        """Acknowledged messages are stored whole; whatever is stored is
        one of the sent messages, whole, once; POP3 serves exactly the
        database's messages."""
        stored = stored_messages(d, "alice")
        matched = {}
        for uid, data in stored.items():
            owners = [k for k, m in sent.items() if data.endswith(m)]
            self.assertEqual(len(owners), 1, "uid %d is no sent message" %
                             uid)
            self.assertNotIn(owners[0], matched, "stored twice")
            matched[owners[0]] = uid
        for k in acked:
            self.assertIn(k, matched, "acknowledged message %s lost" % k)
        uidls, bodies = pop3_view(d, "alice")
        self.assertEqual(sorted(bodies), sorted(stored.values()))
        return uidls

    def test_lmtp_killed_at_random_points(self):
        d = self.track(sqlbox_dovecot(self.workdir, users={"alice": {}},
                                      extra_conf=TRIAL_CONF))
        d.start()
        rnd = random.Random(5)
        sent = {"first": mail.message(0, subject="first")}
        acked = {"first"}
        self.assertEqual(lmtp_send(d, "alice", sent["first"]), (True, False))
        kills = 0
        for trial in range(LMTP_TRIALS):
            key = "trial-%d" % trial
            msg = mail.message(trial, size=rnd.randint(2000, 60000),
                               subject=key)
            sent[key] = msg
            ok, killed = lmtp_send(d, "alice", msg,
                                   kill_after=rnd.uniform(0, 0.012))
            kills += killed
            if ok:
                acked.add(key)
        # the kills hit deliveries under way: some were acknowledged,
        # some not
        self.assertGreater(kills, LMTP_TRIALS // 2)
        self.assertGreater(len(acked), 1)
        self.assertLess(len(acked), LMTP_TRIALS + 1)
        uidls = self.check_consistent(d, sent, acked)
        # and the index, thrown away, comes back with the same UIDLs
        remove_index_files(d, "alice")
        self.assertEqual(pop3_view(d, "alice")[0], uidls)

    def test_crash_at_the_edges_of_the_commit(self):
        for point in CRASH_POINTS:
            d = self.track(sqlbox_dovecot(
                self.workdir, name="crash-" + point, users={"alice": {}},
                environment={"SQLBOX_CRASH_AT": point},
                extra_conf=TRIAL_CONF))
            d.start()
            sent = {}
            for n in range(CRASH_POINT_TRIALS):
                key = "%s-%d" % (point, n)
                sent[key] = mail.message(n, subject=key)
                # the process dies inside the commit: never a 250
                self.assertEqual(lmtp_send(d, "alice", sent[key]),
                                 (False, False))
            d.wait_log("killed with signal 9")
            d.stop()
            # read what the dead processes left, without the hook
            d.environment = {}
            d.start()
            stored = stored_messages(d, "alice")
            if point == "commit-before":
                self.assertEqual(stored, {})
            else:
                # committed before the crash: whole, though never
                # acknowledged (the client will deliver it again)
                self.assertEqual(len(stored), len(sent))
                for m in sent.values():
                    self.assertTrue(any(x.endswith(m)
                                        for x in stored.values()))
            self.check_consistent(d, sent, set())

    def test_pop3_killed_at_random_points(self):
        d = self.track(sqlbox_dovecot(self.workdir, users={"alice": {}},
                                      extra_conf=TRIAL_CONF))
        d.start()
        rnd = random.Random(7)
        sent = {}
        for n in range(POP3_TRIALS * 3):
            key = "m%d" % n
            sent[key] = mail.message(n, size=rnd.randint(1000, 20000),
                                     subject=key)
            self.assertEqual(lmtp_send(d, "alice", sent[key]),
                             (True, False))
        for trial in range(POP3_TRIALS):
            before_uidls, before = pop3_view(d, "alice")
            p = d.pop3("alice")
            count = p.stat()[0]
            dele = sorted(rnd.sample(range(1, count + 1), 2))
            p.retr(1)
            for n in dele:
                p.dele(n)
            pid = server_pid(d.proc.pid, p.sock.getsockname()[1], "pop3")
            self.assertIsNotNone(pid)
            p._putcmd("QUIT")
            time.sleep(rnd.uniform(0, 0.01))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                quit_ok = p._getresp().startswith(b"+OK")
            except (poplib.error_proto, OSError, EOFError):
                quit_ok = False
            p.close()

            after_uidls, after = pop3_view(d, "alice")
            deleted = [before_uidls[n - 1] for n in dele]
            kept = [u for u in before_uidls if u not in deleted]
            if quit_ok:
                self.assertEqual(after_uidls, kept)
            else:
                # all or nothing
                self.assertIn(after_uidls, (kept, before_uidls))
            # what remains is unchanged, UIDLs included
            for u, body in zip(after_uidls, after):
                self.assertEqual(body, before[before_uidls.index(u)])
        stored_messages(d, "alice")
