"""sqlbox findings of the audit (issue 14), each through a real Dovecot and
real clients, on SQLite and on PostgreSQL: over-quota saves, body ids never
serving another message, corrupt bodies reported as such, STATUS of folders
that receive mail, and UIDL with stored UIDLs."""

import imaplib
import os
import poplib
import re
import smtplib
import subprocess
import time

from pop3ext_harness import TestCase, mail
from pop3ext_harness.postgres import PostgresPerClass
from pop3ext_harness.sqlbox import (sqlbox_dovecot, lmtp_status,
                                    sqlite_path, sqlite_query, sqlite_run)

QUOTA_SETTINGS = {
    "quota": "count:User quota",
    "quota_rule": "*:storage=3K",
    "quota_vsizes": "yes",
}


class FixesMixin:
    """The tests; a subclass says which database (start())."""

    def start(self, **kwargs):
        raise NotImplementedError

    # -- C1: a save refused before the storage's save_begin -----------------

    def test_over_quota_is_refused_not_a_crash(self):
        d = self.start(mail_plugins=("sqlbox", "quota"),
                       plugin_settings=dict(QUOTA_SETTINGS))
        small = mail.message(1, size=400)
        codes = [lmtp_status(d, "alice", mail.message(n, size=400))
                 for n in range(1, 12)]
        # the first ones fit; then 552 (permanent, the MTA bounces),
        # never a dropped connection (0) that makes the MTA retry
        self.assertEqual(codes[0], 250, codes)
        self.assertIn(552, codes, codes)
        self.assertNotIn(0, codes, codes)
        self.assertEqual(codes[codes.index(552):],
                         [552] * (len(codes) - codes.index(552)), codes)

        i = d.imap("alice")
        typ, data = i.append("INBOX", None, None, small)
        self.assertEqual(typ, "NO", data)
        self.assertIn(b"[OVERQUOTA]", data[0])
        # the session survives
        typ, data = i.select("INBOX")
        self.assertEqual(typ, "OK", data)
        stored = int(data[0])
        self.assertEqual(stored, codes.count(250))
        i.logout()
        self.assertNotIn("Panic", d.log())
        self.assertNotIn("Fatal", d.log())

    def test_multiappend_second_over_quota_saves_nothing(self):
        d = self.start(mail_plugins=("sqlbox", "quota"),
                       plugin_settings=dict(QUOTA_SETTINGS))
        d.deliver("alice", mail.message(1, size=400))
        i = d.imap("alice")
        # raw MULTIAPPEND: a small message that fits, then one too big;
        # the quota plugin refuses the second before sqlbox's save_begin
        m1 = mail.message(2, size=300)
        m2 = mail.message(3, size=5000)
        tag = i._new_tag()
        i.send(b"%s APPEND INBOX {%d+}\r\n" % (tag, len(m1)) + m1 +
               b" {%d+}\r\n" % len(m2) + m2 + b"\r\n")
        while True:
            line = i.readline()
            if line.startswith(tag):
                break
        self.assertIn(b"NO [OVERQUOTA]", line)
        typ, data = i.select("INBOX")
        self.assertEqual(typ, "OK")
        # all or nothing: the first message isn't there either
        self.assertEqual(int(data[0]), 1)
        typ, data = i.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"test message 1", data[0][1])
        i.logout()
        self.assertNotIn("Panic", d.log())

    # -- C2: a UID is never served another message's body --------------------

    def test_stale_session_never_gets_the_next_message(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(n, size=400)
                                 for n in (1, 2, 3)])
        old = set(self.body_ids())
        a = d.pop3("alice")
        self.assertEqual(a.stat()[0], 3)
        # meanwhile: message 3 expunged, a new one delivered
        i = d.imap("alice")
        i.select("INBOX")
        i.store("3", "+FLAGS", "\\Deleted")
        i.expunge()
        i.logout()
        d.deliver("alice", mail.message(9, size=400))
        new = set(self.body_ids()) - old
        # the new message's body has an id never used before
        self.assertEqual(len(new), 1)
        self.assertGreater(min(new), max(old))
        # the session that still lists message 3 doesn't get message 9
        with self.assertRaises(poplib.error_proto) as cm:
            a.retr(3)
        self.assertIn(b"-ERR", cm.exception.args[0])
        _, lines, _ = a.retr(2)
        self.assertIn(b"Subject: test message 2", lines)
        a.quit()

    def test_body_read_checks_the_message_row(self):
        # the message's row is gone but its body is still there (as after a
        # restore of older metadata, or a body row moved to another user):
        # the body is not served under the UID
        d = self.start()
        d.deliver_many("alice", [mail.message(n, size=400)
                                 for n in (1, 2, 3)])
        a = d.pop3("alice")
        self.assertEqual(a.stat()[0], 3)
        self.db_exec("DELETE FROM messages WHERE uid = 2")
        with self.assertRaises(poplib.error_proto):
            a.retr(2)
        _, lines, _ = a.retr(3)
        self.assertIn(b"Subject: test message 3", lines)
        a.quit()

    # -- C7: a short or damaged body is reported as corrupt ---------------

    def assert_reported_corrupt(self, d, cause):
        p = d.pop3("alice")
        with self.assertRaises(poplib.error_proto):
            p.retr(1)
        _, lines, _ = p.retr(2)
        self.assertIn(b"Subject: test message 2", lines)
        p.quit()
        i = d.imap("alice")
        i.select("INBOX")
        try:
            typ, _ = i.fetch("1", "(BODY.PEEK[])")
        except imaplib.IMAP4.abort:
            typ = "aborted"
        self.assertNotEqual(typ, "OK")
        i.logout()
        log = d.wait_log("is corrupted")
        line = [x for x in log.splitlines() if "is corrupted" in x][0]
        self.assertIn("uid 1", line)
        self.assertIn(cause, line)
        self.assertNotIn("Unknown database error", log)
        self.assertNotIn("Reading uid", log)

    def test_short_large_body_is_reported_corrupt(self):
        d = self.start()
        d.deliver_many("alice", [mail.big_message(1, 2400000),
                                 mail.message(2, size=400)])
        self.truncate_body(1, 1500000)
        self.assert_reported_corrupt(d, self.SHORT_LARGE_CAUSE)

    def test_short_small_body_is_reported_corrupt(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(1, size=3000),
                                 mail.message(2, size=400)])
        self.truncate_body(1, 1000)
        self.assert_reported_corrupt(d, self.SHORT_SMALL_CAUSE)

    # -- C3: STATUS of a folder that got mail while nobody had it open ------

    def test_status_of_a_folder_delivered_to_is_right_at_once(self):
        d = self.start(extra_conf="lmtp_save_to_detail_mailbox = yes\n"
                       "recipient_delimiter = +\n")
        i = d.imap("alice")
        self.assertEqual(i.create("Other")[0], "OK")
        i.select("INBOX")
        # the list index now caches Other's status
        typ, data = i.status("Other", "(MESSAGES UIDNEXT)")
        self.assertIn(b"MESSAGES 0", data[0])
        d.deliver_many("alice+Other", [mail.message(n, size=400)
                                       for n in (1, 2, 3)])
        typ, data = i.status("Other", "(MESSAGES UIDNEXT)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"MESSAGES 3", data[0])
        self.assertIn(b"UIDNEXT 4", data[0])
        i.logout()
        # a new session, and doveadm, see it too
        i = d.imap("alice")
        typ, data = i.status("Other", "(MESSAGES)")
        self.assertIn(b"MESSAGES 3", data[0])
        i.logout()
        r = d.doveadm("-f", "tab", "mailbox", "status", "-u", "alice",
                      "messages", "Other")
        self.assertEqual(r.stdout.splitlines()[1].split("\t")[-1], "3")
        # one more while a session has the list open
        i = d.imap("alice")
        i.select("INBOX")
        i.status("Other", "(MESSAGES)")
        d.deliver("alice+Other", mail.message(4, size=400))
        typ, data = i._simple_command("LIST", '""', "Other",
                                      "RETURN", "(STATUS (MESSAGES))")
        self.assertEqual(typ, "OK")
        self.assertIn(b"MESSAGES 4", b" ".join(i.untagged_responses
                                                .get("STATUS", [])))
        i.logout()

    # -- expunges carry the message's GUID in the index log ----------------

    def test_expunges_in_the_index_log_carry_the_guid(self):
        # (dsync recognises expunged messages by it)
        d = self.start()
        d.deliver_many("alice", [mail.message(n, size=300)
                                 for n in (1, 2, 3)])
        r = d.doveadm("-f", "tab", "fetch", "-u", "alice", "guid",
                      "mailbox", "INBOX", "uid", "2")
        guid = r.stdout.splitlines()[1].strip()
        i = d.imap("alice")
        i.select("INBOX")
        i.store("2", "+FLAGS", "\\Deleted")
        i.expunge()
        i.logout()
        log = os.path.join(d.home("alice"), "sqlbox", "mailboxes", "INBOX",
                           "sqlbox-index", "dovecot.index.log")
        r = subprocess.run(["doveadm", "dump", log], capture_output=True,
                           text=True, check=True)
        lines = r.stdout.splitlines()
        done = [lines[n + 1] for n, line in enumerate(lines)
                if "type=expunge-guid (ext)" in line]
        self.assertEqual(done, [" - uid=2 (guid %s)" % guid])

    # -- C6: renaming a hierarchy with non-ASCII names (UTF-8 layout) ------

    def test_rename_of_a_non_ascii_hierarchy_moves_the_children(self):
        d = self.start(mail_location="sqlbox:~/sqlbox:UTF-8")
        i = d.imap("alice")
        top = '"Entw&APw-rfe"'
        for name in (top, '"Entw&APw-rfe/Sub"', '"Entw&APw-rfe/Sub/Deep"'):
            self.assertEqual(i.create(name)[0], "OK")
        typ, _ = i.append('"Entw&APw-rfe/Sub"', None, None,
                          mail.message(1, size=300))
        self.assertEqual(typ, "OK")
        self.assertEqual(i.rename(top, "Drafts2")[0], "OK")
        typ, data = i.status("Drafts2/Sub", "(MESSAGES)")
        self.assertEqual(typ, "OK", data)
        self.assertIn(b"MESSAGES 1", data[0])
        self.assertEqual(i.status("Drafts2/Sub/Deep", "(MESSAGES)")[0], "OK")
        typ, data = i.list()
        names = b" ".join(data)
        self.assertNotIn(b"Entw", names)
        i.logout()
        rows = sorted(r[0] for r in
                      self.db_query("SELECT name FROM mailboxes")
                      if r[0] != "INBOX")
        self.assertEqual(rows, ["Drafts2", "Drafts2/Sub", "Drafts2/Sub/Deep"])

    # -- pop3_save_uidl: UIDLs POP3 showed are kept -----------------------

    def test_pop3_save_uidl_keeps_uidls_when_the_format_changes(self):
        d = self.start(extra_conf="protocol pop3 {\n"
                       "  pop3_save_uidl = yes\n}\n")
        d.deliver_many("alice", [mail.message(n, size=300)
                                 for n in (1, 2, 3)])
        p = d.pop3("alice")
        before = [x.split()[1] for x in p.uidl()[1]]
        p.quit()
        self.assertEqual(len(before), 3)
        # the admin changes the format: clients must not see new UIDLs
        d.extra_conf += "pop3_uidl_format = %g\n"
        d.write_config()
        d.reload()
        d.deliver("alice", mail.message(4, size=300))
        p = d.pop3("alice")
        after = [x.split()[1] for x in p.uidl()[1]]
        p.quit()
        self.assertEqual(after[:3], before)
        # the new message has a UIDL of the new format (its GUID)
        r = d.doveadm("-f", "tab", "fetch", "-u", "alice", "guid",
                      "mailbox", "INBOX", "uid", "4")
        self.assertEqual(after[3].decode(), r.stdout.splitlines()[1].strip())


class SqliteFixesTest(FixesMixin, TestCase):
    SHORT_SMALL_CAUSE = "differs from the recorded"
    SHORT_LARGE_CAUSE = "shorter than its recorded size"

    def start(self, users=("alice",), **kwargs):
        d = self.track(sqlbox_dovecot(self.workdir,
                                      users={u: {} for u in users},
                                      **kwargs))
        d.start()
        self.d = d
        return d

    def db_query(self, sql, params=()):
        return sqlite_query(sqlite_path(self.d, "alice"), sql, params)

    def db_exec(self, sql, params=()):
        sqlite_run(sqlite_path(self.d, "alice"), [(sql, list(params))])

    def body_ids(self):
        return [r[0] for r in self.db_query("SELECT id FROM bodies")]

    def truncate_body(self, uid, size):
        self.db_exec("UPDATE bodies SET data = substr(data, 1, ?) "
                     "WHERE id = (SELECT body_id FROM messages "
                     "WHERE uid = ?)", [size, uid])

    # -- memory: SQLite mappings stay bounded in one process ----------------

    def test_one_lmtp_process_delivers_to_many_large_databases(self):
        # Dovecot's default vsz_limit, and 5 users whose databases are
        # 80 MB each: an lmtp process keeps the connections it used, and
        # each connection maps its database file (up to mmap_size)
        users = ["u%d" % n for n in range(5)]
        d = self.start(users=users,
                       extra_conf="default_vsz_limit = 256M\n")
        for u in users:
            d.deliver(u, mail.message(1))
            # grow the file: SQLite maps the whole file, whatever it holds
            sqlite_run(sqlite_path(d, u), [
                ("CREATE TABLE pad (data BLOB)", []),
                ("INSERT INTO pad VALUES (zeroblob(80 * 1024 * 1024))", [])])
        # one LMTP session, so one lmtp process, delivering to each user
        # in turn, twice
        codes = []
        with smtplib.LMTP("127.0.0.1", d.lmtp_port, timeout=120) as lmtp:
            for n in (2, 3):
                for u in users:
                    try:
                        lmtp.sendmail("sender@example.test", [u],
                                      mail.message(n))
                        codes.append(250)
                    except smtplib.SMTPDataError as e:
                        codes.append(e.smtp_code)
        self.assertEqual(codes, [250] * 10)
        errors = [l for l in d.log().splitlines()
                  if "Error" in l or "Panic" in l or "Fatal" in l]
        self.assertEqual(errors, [])
        for u in users:
            p = d.pop3(u)
            self.assertEqual(p.stat()[0], 3)
            p.quit()


class PgsqlFixesTest(PostgresPerClass, FixesMixin, TestCase):
    """One PostgreSQL server for the class; a database per test."""
    # (the first MiB is bodies.data, cut here; the rest was in body_chunks)
    SHORT_SMALL_CAUSE = "chunk 0 is too short"
    SHORT_LARGE_CAUSE = "chunk 1 is too short"

    pg_dir_prefix = "pgsql-fixes."

    def start(self, users=("alice",), **kwargs):
        db = self.next_name("fix")
        self.pg.psql("CREATE DATABASE %s OWNER dovecot" % db)
        self.db = db
        d = self.track(sqlbox_dovecot(
            self.workdir, users={u: {} for u in users}, driver="pgsql",
            connect=self.pg.conninfo(db, "dovecot"), **kwargs))
        d.start()
        return d

    def db_query(self, sql):
        return self.pg.psql(sql, self.db)

    def db_exec(self, sql):
        self.pg.psql(sql, self.db)

    def body_ids(self):
        return [int(r[0]) for r in self.db_query("SELECT id FROM bodies")]

    def truncate_body(self, uid, size):
        # the first MiB is in bodies.data, the rest in body_chunks: drop
        # the chunks beyond size and cut the last one
        body = "(SELECT body_id FROM messages WHERE uid = %d)" % uid
        chunk = 1024 * 1024
        if size < chunk:
            self.db_exec("DELETE FROM body_chunks WHERE body_id = %s; "
                         "UPDATE bodies SET data = substr(data, 1, %d) "
                         "WHERE id = %s" % (body, size, body))
        else:
            self.db_exec("DELETE FROM body_chunks WHERE body_id = %s "
                         "AND seq > %d; UPDATE body_chunks SET "
                         "data = substr(data, 1, %d) WHERE body_id = %s "
                         "AND seq = %d" % (body, size // chunk,
                                           size % chunk, body,
                                           size // chunk))

    # -- P1: UIDL with stored UIDLs in a bounded number of statements -----

    def statements_during(self, func):
        """Runs func(); returns what it returned and the number of SQL
        statements the mail processes sent meanwhile."""
        self.pg.psql("ALTER ROLE dovecot IN DATABASE %s "
                     "SET log_statement = 'all'" % self.db)
        start = len(self.pg.log())
        out = func()
        self.pg.psql("SELECT 1")
        log = self.pg.log()[start:]
        return out, len(re.findall(r"LOG:  (statement|execute [^:]*):",
                                   log))

    def test_uidl_with_stored_uidls_is_a_bounded_number_of_queries(self):
        d = self.start()
        count = 300
        d.deliver_many("alice", [mail.message(n, size=200)
                                 for n in range(1, count + 1)])
        # as after a migration: every message has a stored UIDL
        self.db_exec("UPDATE messages SET pop3_uidl = 'old-' || uid")

        def session():
            p = d.pop3("alice")
            uidls = [x.decode().split()[1] for x in p.uidl()[1]]
            p.quit()
            return uidls

        # the first session rebuilds the index from the database
        uidls, _ = self.statements_during(session)
        self.assertEqual(uidls, ["old-%d" % n for n in range(1, count + 1)])
        uidls, statements = self.statements_during(session)
        self.assertEqual(uidls, ["old-%d" % n for n in range(1, count + 1)])
        # a login, the sync check and the UIDLs: not one per message
        self.assertLess(statements, 30, statements)

    # -- C9: a lock held in the database doesn't block for ever ------------

    def test_lock_held_elsewhere_is_a_temporary_failure_in_time(self):
        d = self.start(plugin_settings={"sqlbox_lock_timeout": "2s"})
        d.deliver("alice", mail.message(1, size=300))
        # another client holds the mailbox row (as a stuck transaction
        # would)
        holder = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
             self.pg.conninfo(self.db)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            holder.stdin.write("BEGIN;\nSELECT id FROM mailboxes FOR UPDATE;"
                               "\n\\echo locked\n")
            holder.stdin.flush()
            while holder.stdout.readline().strip() != "locked":
                pass
            start = time.monotonic()
            try:
                with smtplib.LMTP("127.0.0.1", d.lmtp_port,
                                  timeout=20) as l:
                    l.sendmail("sender@example.test", ["alice"],
                               mail.message(2, size=300))
                code = 250
            except smtplib.SMTPDataError as e:
                code = e.smtp_code
            except smtplib.SMTPRecipientsRefused as e:
                code = list(e.recipients.values())[0][0]
            elapsed = time.monotonic() - start
        finally:
            holder.stdin.write("ROLLBACK;\n")
            holder.stdin.close()
            holder.wait(timeout=30)
        self.assertEqual(code // 100, 4, code)
        self.assertLess(elapsed, 10)
        # and once the lock is gone, deliveries work again
        d.deliver("alice", mail.message(3, size=300))
        self.assertEqual(self.db_query("SELECT count(*) FROM messages"),
                         [["2"]])
