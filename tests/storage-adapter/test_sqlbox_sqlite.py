"""sqlbox on SQLite (the default): LMTP delivery, POP3, IMAP (folders,
flags, keywords, copy, move, expunge, search), doveadm, fetchmail, and the
database as the source of truth (index files are a cache)."""

import hashlib
import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import time

from pop3ext_harness import TestCase, mail
from pop3ext_harness.sqlbox import (sqlbox_dovecot, sqlite_path,
                                    sqlite_query, sqlite_run,
                                    remove_index_files, index_files,
                                    deliver_and_retr_big)


def pop3_messages(p):
    """All messages of a POP3 session as bytes, as the server sent them
    (dot-unstuffed by poplib)."""
    count, _ = p.stat()
    out = []
    for n in range(1, count + 1):
        _, lines, _ = p.retr(n)
        out.append(b"\r\n".join(lines) + b"\r\n")
    return out


def uidl_map(p):
    return dict(line.split(b" ", 1) for line in p.uidl()[1])


def imap_state(i, mailbox="INBOX"):
    """UIDVALIDITY, UIDNEXT and {uid: sorted flags} of a mailbox."""
    typ, data = i.status(mailbox, "(UIDVALIDITY UIDNEXT MESSAGES)")
    assert typ == "OK", data
    m = re.search(rb"UIDVALIDITY (\d+)", data[0])
    uidvalidity = int(m.group(1))
    uidnext = int(re.search(rb"UIDNEXT (\d+)", data[0]).group(1))
    typ, data = i.select(mailbox, readonly=True)
    assert typ == "OK", data
    flags = {}
    if int(data[0]) > 0:
        typ, data = i.uid("FETCH", "1:*", "(UID FLAGS)")
        assert typ == "OK", data
        for line in data:
            uid = int(re.search(rb"UID (\d+)", line).group(1))
            fl = re.search(rb"FLAGS \(([^)]*)\)", line).group(1).split()
            flags[uid] = sorted(f for f in fl if f != b"\\Recent")
    i.close()
    return uidvalidity, uidnext, flags


class SqliteStorageTest(TestCase):

    def start(self, users=("alice",), **kwargs):
        d = self.track(sqlbox_dovecot(self.workdir,
                                      users={u: {} for u in users},
                                      **kwargs))
        d.start()
        return d

    def test_lmtp_then_pop3_returns_what_was_stored(self):
        d = self.start()
        sent = [mail.message(1, size=400), mail.message(2, size=3000),
                mail.message(3, size=90000), mail.message(4, size=250)]
        d.deliver_many("alice", sent)

        p = d.pop3("alice")
        count, total = p.stat()
        got = pop3_messages(p)
        uidls = uidl_map(p)
        p.quit()
        self.assertEqual(count, 4)
        # LMTP prepends Return-Path/Delivered-To/Received; the rest is
        # exactly what was sent, in order
        for s, g in zip(sent, got):
            self.assertTrue(g.endswith(s), g[:300])
        self.assertEqual(total, sum(len(g) for g in got))

        # the database is the store: bodies with their SHA-256, UIDs,
        # UIDVALIDITY (the default pop3_uidl_format is made of them)
        path = sqlite_path(d, "alice")
        rows = sqlite_query(path, "SELECT m.uid, b.size, b.sha256, "
                            "m.physical_size FROM messages m JOIN bodies b "
                            "ON b.id = m.body_id ORDER BY m.uid")
        self.assertEqual([r[0] for r in rows], [1, 2, 3, 4])
        for (uid, size, sha, psize), g in zip(rows, got):
            self.assertEqual(size, len(g))
            self.assertEqual(psize, len(g))
            self.assertEqual(sha, hashlib.sha256(g).digest())
        uidvalidity = sqlite_query(path, "SELECT uidvalidity FROM mailboxes "
                                   "WHERE name = 'INBOX'")[0][0]
        self.assertEqual(sorted(uidls.values()), [
            ("%08x%08x" % (uid, uidvalidity)).encode()
            for uid in (1, 2, 3, 4)])

        # a second session sees the same
        p = d.pop3("alice")
        self.assertEqual(uidl_map(p), uidls)
        self.assertEqual(pop3_messages(p), got)
        p.quit()

    def test_lmtp_delivery_to_several_recipients(self):
        # LMTP saves the first recipient's copy, then copies it (through
        # the first user's sqlbox) to the others
        d = self.start(users=("alice", "bob", "carol"))
        msg = mail.message(7, size=5000)
        with smtplib.LMTP("127.0.0.1", d.lmtp_port) as lmtp:
            lmtp.ehlo()
            self.assertEqual(lmtp.mail("sender@example.test")[0], 250)
            for rcpt in ("alice", "bob", "carol"):
                self.assertEqual(lmtp.rcpt(rcpt)[0], 250)
            # LMTP: one reply per recipient after the data
            replies = [lmtp.data(msg)[0]]
            replies += [lmtp.getreply()[0] for _ in range(2)]
        self.assertEqual(replies, [250, 250, 250])
        bodies = {}
        for user in ("alice", "bob", "carol"):
            p = d.pop3(user)
            got = pop3_messages(p)
            p.quit()
            self.assertEqual(len(got), 1, user)
            self.assertTrue(got[0].endswith(msg), user)
            bodies[user] = got[0]
        # one message, copied byte for byte from the first user's
        self.assertEqual(len(set(bodies.values())), 1)
        for user in ("alice", "bob", "carol"):
            self.assertEqual(sqlite_query(sqlite_path(d, user),
                                          "SELECT count(*) FROM messages"),
                             [[1]], user)

    def test_pop3_dele_expunges_in_the_database(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(n) for n in range(5)])
        p = d.pop3("alice")
        before = uidl_map(p)
        p.retr(1)
        p.dele(2)
        p.dele(4)
        p.quit()
        path = sqlite_path(d, "alice")
        self.assertEqual(
            [r[0] for r in sqlite_query(path, "SELECT uid FROM messages "
                                        "ORDER BY uid")], [1, 3, 5])
        self.assertEqual(
            sorted(r[0] for r in sqlite_query(path, "SELECT uid FROM "
                                              "expunged")), [2, 4])
        # RETR marked \Seen (stock pop3 behaviour), kept in the database
        self.assertEqual(sqlite_query(path, "SELECT flags FROM messages "
                                      "WHERE uid = 1")[0][0] & 8, 8)
        # no body left behind
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM bodies")
                         [0][0], 3)
        p = d.pop3("alice")
        after = uidl_map(p)
        p.quit()
        self.assertEqual(list(after.values()),
                         [before[b"1"], before[b"3"], before[b"5"]])

    def test_pop3_session_without_quit_changes_nothing(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(n) for n in range(3)])
        p = d.pop3("alice")
        p.dele(1)
        p.close()  # no QUIT: RFC 1939 says nothing is deleted
        time.sleep(0.3)
        p = d.pop3("alice")
        self.assertEqual(p.stat()[0], 3)
        p.quit()

    def test_imap_flags_keywords_search(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(n) for n in range(6)])
        i = d.imap("alice")
        i.select("INBOX")
        self.assertEqual(i.store("1:3", "+FLAGS", r"(\Flagged $Hidden)")[0],
                         "OK")
        self.assertEqual(i.store("2", "-FLAGS", r"($Hidden)")[0], "OK")
        self.assertEqual(i.store("4", "FLAGS", r"(\Answered Work)")[0],
                         "OK")
        self.assertEqual(i.search(None, "KEYWORD", "$Hidden"),
                         ("OK", [b"1 3"]))
        self.assertEqual(i.search(None, "FLAGGED", "NOT", "KEYWORD",
                                  "$Hidden"), ("OK", [b"2"]))
        self.assertEqual(i.search(None, "SUBJECT", '"message 4"'),
                         ("OK", [b"5"]))
        self.assertEqual(i.search(None, "BODY", '"of message 2"'),
                         ("OK", [b"3"]))
        i.logout()

        path = sqlite_path(d, "alice")
        kw = sqlite_query(path, "SELECT uid, name FROM keywords "
                          "ORDER BY uid, name")
        self.assertEqual(kw, [[1, "$Hidden"], [3, "$Hidden"], [4, "Work"]])
        flags = dict(sqlite_query(path, "SELECT uid, flags FROM messages"))
        self.assertEqual(flags[1], 2)      # \Flagged
        self.assertEqual(flags[4], 1)      # \Answered
        self.assertEqual(flags[6], 0)

        # a new session, after the index is thrown away, sees the same
        remove_index_files(d, "alice")
        i = d.imap("alice")
        i.select("INBOX")
        self.assertEqual(i.search(None, "KEYWORD", "$Hidden"),
                         ("OK", [b"1 3"]))
        self.assertEqual(i.search(None, "KEYWORD", "Work"), ("OK", [b"4"]))
        i.logout()

    def test_imap_copy_move_expunge_and_folders(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(n, size=1500)
                                 for n in range(5)])
        i = d.imap("alice")
        self.assertEqual(i.create("Archive/2024")[0], "OK")
        self.assertEqual(i.create("Trash")[0], "OK")
        i.select("INBOX")
        i.store("1", "+FLAGS", r"(\Seen Keep)")
        typ, data = i.copy("1:2", "Archive/2024")
        self.assertEqual(typ, "OK", data)
        typ, data = i._simple_command("MOVE", "3", "Trash")
        self.assertEqual(typ, "OK", data)
        i.uid("STORE", "5", "+FLAGS", r"(\Deleted)")
        self.assertEqual(i.expunge()[0], "OK")
        i.select("INBOX")
        typ, data = i.uid("SEARCH", "ALL")
        self.assertEqual(data, [b"1 2 4"])

        i.select("Archive/2024")
        typ, data = i.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS "
                            "(SUBJECT)])")
        text = b" ".join(x if isinstance(x, bytes) else b" ".join(x)
                         for x in data)
        self.assertIn(b"test message 0", text)
        self.assertIn(b"test message 1", text)
        self.assertIn(b"Keep", text)
        i.select("Trash")
        typ, data = i.fetch("1", "(BODY.PEEK[TEXT])")
        self.assertIn(b"message 2", data[0][1])

        # rename a parent: its children move along, in the database too
        self.assertEqual(i.rename("Archive", "Old")[0], "OK")
        typ, data = i.list()
        names = sorted(re.search(rb'"/" "?([^"]*)"?$', x).group(1)
                       for x in data)
        self.assertEqual(names, [b"INBOX", b"Old", b"Old/2024", b"Trash"])
        typ, data = i.select("Old/2024")
        self.assertEqual((typ, data), ("OK", [b"2"]))
        self.assertEqual(i.delete("Trash")[0], "OK")
        i.logout()

        path = sqlite_path(d, "alice")
        self.assertEqual(
            [r[0] for r in sqlite_query(path, "SELECT name FROM mailboxes "
                                        "ORDER BY name")],
            ["INBOX", "Old/2024"])
        # Trash's messages went with it, bodies included
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM messages")
                         [0][0], 5)
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM bodies")
                         [0][0], 5)

    def test_imap_append(self):
        d = self.start()
        i = d.imap("alice")
        i.create("Drafts")
        # bare LF line ends: stored (and served) with CRLF
        msg = b"Subject: appended\nFrom: a@example.test\n\nline 1\n.line 2\n"
        crlf = msg.replace(b"\n", b"\r\n")
        typ, data = i.append("Drafts", r"(\Draft $Todo)",
                             imaplib.Time2Internaldate(1600000000), msg)
        self.assertEqual(typ, "OK")
        m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
        self.assertIsNotNone(m, data)
        i.select("Drafts")
        typ, data = i.uid("FETCH", m.group(2).decode(),
                          "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        meta = data[0][0]
        self.assertIn(b"\\Draft", meta)
        self.assertIn(b"$Todo", meta)
        self.assertIn(b"RFC822.SIZE %d" % len(crlf), meta)
        self.assertEqual(data[0][1], crlf)
        self.assertIn(b"13-Sep-2020", meta)
        i.logout()
        path = sqlite_path(d, "alice")
        row = sqlite_query(path, "SELECT m.uid, m.flags, m.received_date, "
                           "x.uidvalidity FROM messages m JOIN mailboxes x "
                           "ON x.id = m.mailbox_id WHERE x.name = 'Drafts'")
        self.assertEqual(row, [[int(m.group(2)), 16, 1600000000,
                                int(m.group(1))]])

    def test_new_mail_appears_in_an_open_session(self):
        d = self.start()
        d.deliver("alice", mail.message(1))
        i = d.imap("alice")
        i.select("INBOX")
        d.deliver("alice", mail.message(2))
        # another process stored it in the database; the next sync of
        # this session finds it
        typ, data = i.noop()
        i.select("INBOX")
        typ, data = i.fetch("2", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(typ, "OK")
        self.assertIn(b"test message 2", data[0][1])
        i.logout()

    def test_index_loss_changes_no_uid_uidl_or_flag(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(n, size=800)
                                 for n in range(12)])
        i = d.imap("alice")
        i.create("Folder")
        i.select("INBOX")
        i.store("2,5", "+FLAGS", r"(\Seen $POP3Deleted)")
        i.store("7", "+FLAGS", r"(\Deleted)")
        i.expunge()
        i.copy("1:3", "Folder")
        i.logout()
        d.deliver("alice", mail.message(99))

        def snapshot():
            i = d.imap("alice")
            s = {box: imap_state(i, box) for box in ("INBOX", "Folder")}
            i.logout()
            p = d.pop3("alice")
            u = uidl_map(p)
            p.quit()
            return s, u

        before = snapshot()
        self.assertEqual(len(before[1]), 12)
        removed = remove_index_files(d, "alice")
        self.assertGreater(len(removed), 0)
        self.assertEqual(index_files(d, "alice"), [])
        self.assertEqual(snapshot(), before)

        # even the whole directory tree of the index: rebuilt from the
        # database, folders included
        shutil.rmtree(os.path.join(d.home("alice"), "sqlbox", "mailboxes"))
        self.assertEqual(snapshot(), before)

    def test_corrupted_body_is_never_served(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(1), mail.message(2),
                                 mail.message(3)])
        path = sqlite_path(d, "alice")
        body_id = sqlite_query(path, "SELECT body_id FROM messages "
                               "WHERE uid = 2")[0][0]
        data = sqlite_query(path, "SELECT data FROM bodies WHERE id = ?",
                            [body_id])[0][0]
        # one byte changed, same length
        pos = len(data) // 2
        bad = data[:pos] + bytes([data[pos] ^ 0x20]) + data[pos + 1:]
        sqlite_run(path, [("UPDATE bodies SET data = ? WHERE id = ?",
                           [bad, body_id])])

        p = d.pop3("alice")
        p.retr(1)
        with self.assertRaises(Exception) as cm:
            p.retr(2)
        self.assertIn("-ERR", str(cm.exception))
        _, lines, _ = p.retr(3)
        self.assertIn(b"Subject: test message 3", lines)
        p.quit()
        log = d.wait_log("is corrupted: SHA-256")
        self.assertIn("uid 2", log)

        i = d.imap("alice")
        i.select("INBOX")
        try:
            typ, data = i.fetch("2", "(BODY.PEEK[])")
            served = typ == "OK" and any(
                isinstance(x, tuple) and bad[pos - 10:pos + 10] in x[1]
                for x in data)
        except imaplib.IMAP4.abort:
            served = False
        self.assertFalse(served)
        i.logout() if i.state != "LOGOUT" else None

        # a shortened body is corrupt as well
        sqlite_run(path, [("UPDATE bodies SET data = substr(data, 1, 100) "
                           "WHERE id = (SELECT body_id FROM messages "
                           "WHERE uid = 3)", [])])
        p = d.pop3("alice")
        with self.assertRaises(Exception):
            p.retr(3)
        p.quit()
        d.wait_log("differs from the recorded")

    def test_doveadm_commands(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(n) for n in range(4)])
        r = d.doveadm("fetch", "-u", "alice", "uid guid flags",
                      "mailbox", "INBOX", "all")
        self.assertEqual(len(re.findall(r"^uid: ", r.stdout, re.M)), 4)
        guids = re.findall(r"^guid: (\S+)", r.stdout, re.M)
        path = sqlite_path(d, "alice")
        self.assertEqual(sorted(guids), sorted(
            r[0] for r in sqlite_query(path, "SELECT guid FROM messages")))

        r = d.doveadm("search", "-u", "alice", "mailbox", "INBOX",
                      "subject", "message 2")
        self.assertEqual(len(r.stdout.strip().splitlines()), 1)

        d.doveadm("mailbox", "create", "-u", "alice", "Projects")
        d.doveadm("mailbox", "rename", "-u", "alice", "Projects", "Work")
        d.doveadm("copy", "-u", "alice", "Work", "mailbox", "INBOX",
                  "uid", "1:2")
        d.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "uid", "3")
        r = d.doveadm("mailbox", "status", "-u", "alice",
                      "messages uidnext", "Work")
        self.assertIn("messages=2", r.stdout)
        r = d.doveadm("mailbox", "status", "-u", "alice", "messages",
                      "INBOX")
        self.assertIn("messages=3", r.stdout)
        self.assertEqual(
            sorted(x[0] for x in sqlite_query(path, "SELECT name FROM "
                                              "mailboxes")),
            ["INBOX", "Work"])

        # force-resync rebuilds the index from the database
        before = d.doveadm("fetch", "-u", "alice", "uid guid",
                           "mailbox", "INBOX", "all").stdout
        d.doveadm("force-resync", "-u", "alice", "INBOX")
        after = d.doveadm("fetch", "-u", "alice", "uid guid",
                          "mailbox", "INBOX", "all").stdout
        self.assertEqual(before, after)

        d.doveadm("mailbox", "delete", "-u", "alice", "Work")
        self.assertEqual(
            [x[0] for x in sqlite_query(path, "SELECT name FROM mailboxes")],
            ["INBOX"])
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM messages")
                         [0][0], 3)

    def test_fetchmail_retrieves_and_deletes(self):
        d = self.start()
        sent = [mail.message(n, size=2000) for n in range(5)]
        d.deliver_many("alice", sent)
        out = os.path.join(self.workdir, "fetched")
        os.makedirs(out)
        rc = os.path.join(self.workdir, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("poll 127.0.0.1 protocol pop3 port %d user alice "
                    "password secret mda \"sh -c 'cat > %s/$$.eml'\" "
                    "no rewrite\n" % (d.pop3_port, out))
        os.chmod(rc, 0o600)
        r = subprocess.run(["fetchmail", "-f", rc, "--nosslcertck",
                            "--idfile", os.path.join(self.workdir, "ids"),
                            "-v"], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ,
                                                 HOME=self.workdir))
        self.assertIn(r.returncode, (0,), r.stdout + r.stderr)
        files = sorted(os.listdir(out))
        self.assertEqual(len(files), 5)
        got = set()
        for n in files:
            with open(os.path.join(out, n), "rb") as f:
                got.add(f.read().replace(b"\r\n", b"\n"))
        for s in sent:
            self.assertTrue(any(g.endswith(s.replace(b"\r\n", b"\n"))
                                for g in got))
        # fetchmail deleted them after retrieving
        path = sqlite_path(d, "alice")
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM messages")
                         [0][0], 0)


class SqliteLargeMessageTest(TestCase):

    def test_110mb_message_is_streamed(self):
        d = self.track(sqlbox_dovecot(self.workdir, users={"alice": {}}))
        d.start()
        size, digest, lmtp_peak, pop3_peak = deliver_and_retr_big(
            d, "alice", 110 * 1024 * 1024)

        # what came back is what was stored (Dovecot's added headers
        # first), and no process held it whole in memory
        path = sqlite_path(d, "alice")
        (stored_size, stored_sha), = sqlite_query(
            path, "SELECT size, sha256 FROM bodies")
        self.assertEqual(size, stored_size)
        self.assertEqual(digest, stored_sha)
        self.assertGreater(size, 110 * 1024 * 1024)
        self.assertLess(pop3_peak, 64 * 1024, "pop3 peak RSS (kB)")
        self.assertLess(lmtp_peak, 64 * 1024, "lmtp peak RSS (kB)")
