"""sqlbox when something is wrong: malformed settings, a database schema
newer than this build, a database that stays locked (busy), a keyword
that hides messages from POP3 (pop3_deleted_flag), which the retention
policy relies on."""

import os
import poplib
import subprocess

from pop3ext_harness import TestCase, mail
from pop3ext_harness.dovecot import MAIL_USER
from pop3ext_harness.sqlbox import (sqlbox_dovecot, sqlite_path,
                                    sqlite_query, sqlite_run,
                                    remove_index_files, SYSTEM_PYTHON,
                                    lmtp_status)


class SqlboxSettingsErrorTest(TestCase):

    def test_malformed_settings_fail_the_session_naming_setting_and_user(self):
        cases = {
            "u1": ({"sqlbox_driver": "mysql"}, "sqlbox_driver: Unknown "
                   "driver 'mysql' (expected sqlite or pgsql) (user u1)"),
            "u2": ({"sqlbox_driver": "pgsql"}, "sqlbox_connect: Missing: "
                   "sqlbox_driver=pgsql needs a libpq connection string"),
            "u3": ({"sqlbox_driver": "pgsql",
                    "sqlbox_connect": "bogus_option=1"},
                   "sqlbox_connect: Invalid libpq connection string"),
            "u4": ({"sqlbox_connect": "mail.db"},
                   "sqlbox_connect: 'mail.db' is not an absolute path"),
            "u5": ({"sqlbox_expunged_keep": "-3"},
                   "sqlbox_expunged_keep: '-3' is not a positive number"),
            "u6": ({"sqlbox_lock_timeout": "forever"},
                   "sqlbox_lock_timeout: "),
        }
        d = self.track(sqlbox_dovecot(self.workdir, users={
            u: {"fields": f} for u, (f, _) in cases.items()}))
        d.start()
        for user, (_, text) in cases.items():
            with self.assertRaises((poplib.error_proto, OSError,
                                    EOFError)):
                p = d.pop3(user)
                p.stat()
            self.assertEqual(lmtp_status(d, user, mail.message(1)) // 100,
                             4, user)
            log = d.wait_log(text)
            # the error names the user
            self.assertTrue(any(text in line and user in line
                                for line in log.splitlines()), user)
            # and nothing was stored anywhere
            self.assertFalse(os.path.exists(sqlite_path(d, user)), user)


class SqlboxDatabaseErrorTest(TestCase):

    def start(self, **kwargs):
        d = self.track(sqlbox_dovecot(self.workdir, users={"alice": {}},
                                      **kwargs))
        d.start()
        return d

    def test_newer_schema_is_refused(self):
        d = self.start()
        d.deliver_many("alice", [mail.message(1), mail.message(2)])
        path = sqlite_path(d, "alice")
        sqlite_run(path, [("UPDATE sqlbox_schema SET version = 99", [])])

        self.assertEqual(lmtp_status(d, "alice", mail.message(3)) // 100,
                         4)
        with self.assertRaises((poplib.error_proto, OSError, EOFError)):
            d.pop3("alice").stat()
        d.wait_log("Database schema version 99 is newer than this sqlbox "
                   "understands (version 3): refusing to use it")
        # untouched
        self.assertEqual(sqlite_query(path, "SELECT version FROM "
                                      "sqlbox_schema"), [[99]])
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM messages"),
                         [[2]])

        # a known version works again
        sqlite_run(path, [("UPDATE sqlbox_schema SET version = 3", [])])
        p = d.pop3("alice")
        self.assertEqual(p.stat()[0], 2)
        p.quit()

    def test_locked_database_is_a_temporary_failure(self):
        d = self.start(plugin_settings={"sqlbox_lock_timeout": "1s"})
        d.deliver_many("alice", [mail.message(1), mail.message(2)])
        path = sqlite_path(d, "alice")

        # another process holds the write lock for a while
        holder = subprocess.Popen(
            [SYSTEM_PYTHON, "-c",
             "import sqlite3, sys, time\n"
             "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "db.execute('BEGIN IMMEDIATE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.read()\n"
             "db.execute('ROLLBACK')\n", path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            user=MAIL_USER, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "locked")
            # LMTP: a temporary failure, nothing stored
            self.assertEqual(lmtp_status(d, "alice", mail.message(3)),
                             451)
            # POP3 reads (WAL), but its QUIT can't delete: [SYS/TEMP]
            p = d.pop3("alice")
            self.assertEqual(p.stat()[0], 2)
            p.dele(1)
            with self.assertRaises(poplib.error_proto) as cm:
                p.quit()
            self.assertIn(b"[SYS/TEMP]", cm.exception.args[0])
            # IMAP: the store fails, temporarily: in use
            i = d.imap("alice")
            i.select("INBOX")
            typ, data = i.store("1", "+FLAGS", r"(\Flagged)")
            self.assertEqual(typ, "NO")
            self.assertIn(b"[INUSE]", data[0])
            i.logout()
        finally:
            holder.stdin.close()
            holder.wait(30)

        # service resumes by itself: nothing was lost or changed
        self.assertEqual(lmtp_status(d, "alice", mail.message(3)), 250)
        p = d.pop3("alice")
        self.assertEqual(p.stat()[0], 3)
        p.quit()
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM messages "
                                      "WHERE flags & 2 = 2"), [[0]])


class SqlboxPop3DeletedFlagTest(TestCase):

    def test_pop3_deleted_flag_hides_with_a_keyword(self):
        d = self.track(sqlbox_dovecot(self.workdir, users={
            "alice": {"fields": {"pop3_deleted_flag": "$POP3Deleted"}}}))
        d.start()
        d.deliver_many("alice", [mail.message(n) for n in range(4)])
        p = d.pop3("alice")
        uidls = [x.split()[1] for x in p.uidl()[1]]
        p.dele(2)
        p.dele(3)
        p.quit()

        path = sqlite_path(d, "alice")
        self.assertEqual(sqlite_query(path, "SELECT uid, name FROM keywords "
                                      "ORDER BY uid"),
                         [[2, "$POP3Deleted"], [3, "$POP3Deleted"]])
        self.assertEqual(sqlite_query(path, "SELECT count(*) FROM messages"),
                         [[4]])

        def pop3_view():
            p = d.pop3("alice")
            v = [x.split()[1] for x in p.uidl()[1]]
            p.quit()
            return v

        self.assertEqual(pop3_view(), [uidls[0], uidls[3]])
        # the keyword lives in the database: still hidden without the index
        remove_index_files(d, "alice")
        self.assertEqual(pop3_view(), [uidls[0], uidls[3]])
        # IMAP still has them
        i = d.imap("alice")
        i.select("INBOX")
        self.assertEqual(i.search(None, "KEYWORD", "$POP3Deleted"),
                         ("OK", [b"2 3"]))
        i.store("2", "-FLAGS", "($POP3Deleted)")
        i.logout()
        self.assertEqual(pop3_view(), uidls[:2] + [uidls[3]])
