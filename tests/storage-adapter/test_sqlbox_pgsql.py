"""sqlbox on a real PostgreSQL started by the tests: the same storage
through libpq, two Dovecot instances sharing one database (UIDs allocated
atomically, each index caching the same database), the database going
away and coming back, and a primary + synchronous replica failing over
without losing an acknowledged delivery."""

import hashlib
import os
import poplib
import subprocess
import threading
import time

from pop3ext_harness import TestCase, mail
from pop3ext_harness.postgres import PostgresPair, PostgresPerClass
from pop3ext_harness.sqlbox import (sqlbox_dovecot, remove_index_files,
                                    lmtp_status, pop3_view,
                                    deliver_and_retr_big)


class PgsqlStorageTest(PostgresPerClass, TestCase):
    """One server for the class; a database per test."""

    pg_dir_prefix = "pgsql-class."

    def database(self):
        name = self.next_name("mail")
        self.pg.psql("CREATE DATABASE %s OWNER dovecot" % name)
        return name

    def start(self, users=("alice",), name="dovecot", db=None, **kwargs):
        db = db or self.database()
        d = self.track(sqlbox_dovecot(
            self.workdir, name=name, users={u: {} for u in users},
            driver="pgsql", connect=self.pg.conninfo(db, "dovecot"),
            **kwargs))
        d.start()
        return d, db

    def test_roundtrip_and_chunked_bodies(self):
        d, db = self.start()
        sent = [mail.message(1, size=500), mail.message(2, size=40000),
                mail.big_message(3, 3 * 1024 * 1024 + 77)]
        d.deliver_many("alice", sent)
        uidls, got = pop3_view(d, "alice")
        self.assertEqual(len(got), 3)
        for s, g in zip(sent, got):
            self.assertTrue(g.endswith(s))
        # a large body is stored in 1 MiB chunks, checksummed as a whole
        rows = self.pg.psql("SELECT b.size, encode(b.sha256, 'hex'), "
                            "(SELECT count(*) FROM body_chunks c WHERE "
                            "c.body_id = b.id) FROM bodies b ORDER BY b.id",
                            db)
        self.assertEqual([int(r[0]) for r in rows], [len(g) for g in got])
        self.assertEqual([r[1] for r in rows],
                         [hashlib.sha256(g).hexdigest() for g in got])
        self.assertEqual([int(r[2]) for r in rows], [0, 0, 3])

        i = d.imap("alice")
        i.create("Saved")
        i.select("INBOX")
        i.store("1", "+FLAGS", r"(\Answered $Label)")
        self.assertEqual(i.copy("1:3", "Saved")[0], "OK")
        i.select("Saved")
        typ, data = i.fetch("3", "(BODY.PEEK[])")
        self.assertEqual(data[0][1], got[2])
        i.logout()
        self.assertEqual(self.pg.psql("SELECT count(*) FROM keywords "
                                      "WHERE name = '$Label'", db),
                         [["2"]])

        # index loss: same UIDLs, same everything
        remove_index_files(d, "alice")
        self.assertEqual(pop3_view(d, "alice"), (uidls, got))

    def test_corrupted_body_is_never_served(self):
        d, db = self.start()
        d.deliver_many("alice", [mail.message(1),
                                 mail.big_message(2, 2 * 1024 * 1024)])
        # damage one byte of each: the small body and a chunk of the
        # large one
        self.pg.psql("UPDATE bodies SET data = set_byte(data, 100, 65) "
                     "WHERE id = (SELECT min(id) FROM bodies)", db)
        self.pg.psql("UPDATE body_chunks SET data = set_byte(data, 7, 65) "
                     "WHERE seq = 1", db)
        p = d.pop3("alice")
        for n in (1, 2):
            with self.assertRaises(poplib.error_proto):
                p.retr(n)
        p.quit()
        log = d.wait_log("is corrupted: SHA-256")
        self.assertIn("uid 1: Body", log)
        d.wait_log("uid 2: Body")

    def test_bodies_read_ahead_are_checked_too(self):
        # reading in order makes the PostgreSQL backend fetch the next
        # bodies in one query; each is still checked before it's served
        d, db = self.start(extra_conf="log_debug = category=sqlbox\n")
        sent = [mail.message(n, size=3000 + n * 500) for n in range(12)]
        d.deliver_many("alice", sent)
        self.pg.psql("UPDATE bodies SET data = set_byte(data, 50, 66) "
                     "WHERE id = (SELECT body_id FROM messages "
                     "WHERE uid = 7)", db)
        p = d.pop3("alice")
        for n in range(1, 13):
            if n == 7:
                with self.assertRaises(poplib.error_proto):
                    p.retr(n)
                continue
            _, lines, _ = p.retr(n)
            self.assertTrue((b"\r\n".join(lines) + b"\r\n").endswith(
                sent[n - 1]), n)
        p.quit()
        d.wait_log("uid 7: Body")
        d.wait_log("Read 11 of 11 bodies ahead")
        i = d.imap("alice")
        i.select("INBOX")
        typ, data = i.fetch("8:12", "(BODY.PEEK[TEXT])")
        texts = [x[1] for x in data if isinstance(x, tuple)]
        self.assertEqual(len(texts), 5)
        for n, t in zip(range(8, 13), texts):
            self.assertTrue(sent[n - 1].endswith(t))
        i.logout()

    def test_105mb_message_is_streamed(self):
        # stored in 1 MiB chunks, checked and spooled to a temporary
        # file before it's served: no process holds it whole
        d, db = self.start()
        size, digest, lmtp_peak, pop3_peak = deliver_and_retr_big(
            d, "alice", 105 * 1024 * 1024)
        rows = self.pg.psql("SELECT size, encode(sha256, 'hex'), "
                            "(SELECT count(*) FROM body_chunks) FROM bodies",
                            db)
        self.assertEqual(rows, [[str(size), digest.hex(), str(
            (size - 1) // (1024 * 1024))]])
        self.assertLess(pop3_peak, 64 * 1024, "pop3 peak RSS (kB)")
        self.assertLess(lmtp_peak, 64 * 1024, "lmtp peak RSS (kB)")

    def test_two_instances_share_one_database(self):
        db = self.database()
        a, _ = self.start(name="a", db=db)
        b, _ = self.start(name="b", db=db)
        results = {}

        def deliver(d, tag):
            codes = []
            for n in range(25):
                codes.append(lmtp_status(
                    d, "alice", mail.message(n, subject="%s %d" % (tag, n))))
            results[tag] = codes

        threads = [threading.Thread(target=deliver, args=(a, "A")),
                   threading.Thread(target=deliver, args=(b, "B"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, {"A": [250] * 25, "B": [250] * 25})

        # UIDs allocated in the database: 1..50, no gap, no duplicate
        rows = self.pg.psql("SELECT uid FROM messages ORDER BY uid", db)
        self.assertEqual([int(r[0]) for r in rows], list(range(1, 51)))
        # both instances list the same messages with the same UIDLs
        view_a = pop3_view(a, "alice")
        view_b = pop3_view(b, "alice")
        self.assertEqual(len(view_a[0]), 50)
        self.assertEqual(view_a, view_b)

        # a change through one is seen by the other's open session
        ib = b.imap("alice")
        ib.select("INBOX")
        ia = a.imap("alice")
        ia.select("INBOX")
        ia.store("1:5", "+FLAGS", r"(\Flagged Shared)")
        ia.store("6", "+FLAGS", r"(\Deleted)")
        ia.expunge()
        ia.logout()
        ib.noop()
        self.assertEqual(ib.search(None, "KEYWORD", "Shared"),
                         ("OK", [b"1 2 3 4 5"]))
        typ, data = ib.search(None, "ALL")
        self.assertEqual(len(data[0].split()), 49)
        ib.logout()

    def test_database_down_and_back(self):
        d, db = self.start()
        d.deliver("alice", mail.message(1))
        i = d.imap("alice")
        i.select("INBOX")

        self.pg.stop()
        try:
            self.assertEqual(lmtp_status(d, "alice", mail.message(2)) // 100,
                             4)
            # pop3 says +OK at login before it opens INBOX; the failure
            # comes with the next reply
            with self.assertRaises(poplib.error_proto) as cm:
                d.pop3("alice").stat()
            self.assertIn(b"[SYS/TEMP]", cm.exception.args[0])
            typ, data = i.store("1", "+FLAGS", r"(\Flagged)")
            self.assertEqual(typ, "NO")
            self.assertIn(b"temporarily unavailable", data[0])
        finally:
            self.pg.start()

        # back, without restarting Dovecot: the same processes reconnect
        self.assertEqual(lmtp_status(d, "alice", mail.message(3)), 250)
        typ, data = i.store("1", "+FLAGS", r"(\Flagged)")
        self.assertEqual(typ, "OK", data)
        i.noop()
        typ, data = i.search(None, "ALL")
        self.assertEqual(data, [b"1 2"])
        i.logout()
        uidls, bodies = pop3_view(d, "alice")
        self.assertEqual(len(bodies), 2)
        self.assertIn(b"test message 3", bodies[1])
        self.assertEqual(self.pg.psql("SELECT flags & 2 FROM messages "
                                      "WHERE uid = 1", db), [["2"]])

    def test_newer_schema_is_refused(self):
        d, db = self.start()
        d.deliver("alice", mail.message(1))
        self.pg.psql("UPDATE sqlbox_schema SET version = 7", db)
        self.assertEqual(lmtp_status(d, "alice", mail.message(2)) // 100, 4)
        d.wait_log("Database schema version 7 is newer than this sqlbox "
                   "understands")
        self.assertEqual(self.pg.psql("SELECT count(*) FROM messages", db),
                         [["1"]])


class PgsqlFailoverTest(TestCase):

    def test_failover_loses_no_acknowledged_delivery(self):
        pair = self.track(PostgresPair(self.workdir))
        pair.primary.psql("CREATE ROLE dovecot LOGIN")
        pair.primary.psql("CREATE DATABASE mail OWNER dovecot")
        d = self.track(sqlbox_dovecot(
            self.workdir, users={"alice": {}}, driver="pgsql",
            connect=pair.conninfo("mail", "dovecot")))
        d.start()

        acked, failed = [], []
        stop = threading.Event()
        failed_over = threading.Event()
        after_failover = []
        current = [None]

        def deliver():
            n = 0
            while not stop.is_set():
                n += 1
                subject = "failover %d" % n
                current[0] = subject
                code = lmtp_status(d, "alice",
                                    mail.message(n, size=600,
                                                 subject=subject))
                if code == 250:
                    acked.append(subject)
                    if failed_over.is_set():
                        after_failover.append(subject)
                else:
                    failed.append((subject, code))
                    time.sleep(0.05)

        t = threading.Thread(target=deliver)
        t.start()
        try:
            deadline = time.monotonic() + 60
            while len(acked) < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
            # The outage must meet a delivery under way, not by luck: a
            # session of our own locks the mailboxes table, so the next
            # delivery waits for its mailbox row on the primary; the
            # primary dies while it waits.
            locker = subprocess.Popen(
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                 pair.primary.conninfo("mail")],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, text=True)
            try:
                locker.stdin.write(
                    "BEGIN;\nLOCK TABLE mailboxes IN EXCLUSIVE MODE;\n")
                locker.stdin.flush()
                deadline = time.monotonic() + 30
                waiting = 0
                while waiting == 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                    waiting = int(pair.primary.psql(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = 'mail' "
                        "AND wait_event_type = 'Lock'", "mail")[0][0])
                self.assertGreater(waiting, 0,
                                   "no delivery came to wait for the "
                                   "mailbox lock within 30 s")
                in_flight = current[0]
                pair.fail_over()
                failed_over.set()
            finally:
                try:
                    locker.stdin.close()
                except OSError:
                    pass
                try:
                    locker.wait(30)
                except subprocess.TimeoutExpired:
                    locker.kill()
                    locker.wait()
            deadline = time.monotonic() + 60
            while len(after_failover) < 10 and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            t.join(120)
        self.assertGreaterEqual(len(after_failover), 10,
                                "deliveries didn't resume: %r" % failed[-5:])
        # the delivery under way when the primary died was either
        # acknowledged (then it is stored once, below) or failed
        # temporarily, like every failure (4xx, or a dropped connection)
        self.assertIn(in_flight, acked + [f[0] for f in failed])
        for subject, code in failed:
            self.assertIn(code // 100, (0, 4), (subject, code))

        # every acknowledged message is on the promoted server, once
        i = d.imap("alice")
        i.select("INBOX")
        typ, data = i.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [x[1].decode().strip()[len("Subject: "):]
                    for x in data if isinstance(x, tuple)]
        i.logout()
        for s in acked:
            self.assertIn(s, subjects)
        self.assertEqual(len(subjects), len(set(subjects)))
        rows = pair.replica.psql("SELECT count(*) FROM messages", "mail")
        self.assertEqual(int(rows[0][0]), len(subjects))
