"""Migrating mail into sqlbox with dsync, and syncing it both ways: a
maildir with UID gaps, flags, keywords, a second folder and POP3 UIDLs
stored by an earlier migration, moved with `doveadm backup -R` (and synced
with `doveadm sync`) into sqlbox. What counts is what a POP3 client sees:
the UIDL list (with sizes and Message-IDs) is the same before and after,
and later runs exit 0 and change nothing."""

import os

from pop3ext_harness import TestCase, mail
from pop3ext_harness.dovecot import Dovecot
from pop3ext_harness.postgres import PostgresPerClass
from pop3ext_harness.sqlbox import (sqlbox_dovecot, sqlite_path,
                                    sqlite_query)

EXPUNGED = (3, 7, 12, 13, 20)
# UIDLs an earlier migration left in dovecot-uidlist
# dsync needs one hierarchy separator on both sides (maildir's default is
# ".", sqlbox's "/")
NAMESPACE = "namespace inbox {\n  inbox = yes\n  separator = /\n}\n"
STORED_UIDLS = {1: "oldsrv-0001", 2: "oldsrv-0002", 4: "oldsrv-0004",
                5: "oldsrv-0005", 6: "oldsrv-0006"}


def pop3_listing(d, user="alice"):
    """What a POP3 client sees: [(UIDL, size, Message-ID)] in order."""
    p = d.pop3(user)
    uidls = [x.decode().split()[1] for x in p.uidl()[1]]
    sizes = [int(x.decode().split()[1]) for x in p.list()[1]]
    ids = []
    for n in range(1, len(uidls) + 1):
        _, lines, _ = p.top(n, 0)
        ids.append([x for x in lines
                    if x.lower().startswith(b"message-id:")][0].decode())
    p.quit()
    return list(zip(uidls, sizes, ids))


def add_stored_uidls(maildir, uidls):
    """Puts POP3 UIDLs (P fields) into a maildir's dovecot-uidlist, as an
    earlier migration (e.g. from another POP3 server) would have."""
    path = os.path.join(maildir, "dovecot-uidlist")
    st = os.stat(path)
    with open(path) as f:
        lines = f.read().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        uid, rest = line.split(" ", 1)
        if int(uid) in uidls:
            line = "%s P%s %s" % (uid, uidls[int(uid)], rest)
        out.append(line)
    with open(path + ".new", "w") as f:
        f.write("\n".join(out) + "\n")
    os.chown(path + ".new", st.st_uid, st.st_gid)
    os.replace(path + ".new", path)


class DsyncMixin:
    """The tests; a subclass says which database (target())."""
    maxDiff = None

    def target(self, extra_conf=""):
        raise NotImplementedError

    def other(self, name, kind, extra_conf=""):
        """A Dovecot with mail in maildir, sdbox or mdbox: the other side
        of the dsync runs."""
        d = self.track(Dovecot(self.workdir, name=name,
                               users={"alice": {}},
                               mail_location="%s:~/%s" % (kind, kind),
                               extra_conf=NAMESPACE + extra_conf))
        d.start()
        d.sync_location = "%s:%s" % (kind, os.path.join(d.home("alice"),
                                                        kind))
        return d

    def source(self, extra_conf="", kind="maildir"):
        src = self.other("src", kind, extra_conf)
        src.deliver_many("alice", [mail.message(n, size=300 + n * 13)
                                   for n in range(1, 26)])
        src.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "uid",
                    ",".join(str(u) for u in EXPUNGED))
        src.doveadm("flags", "add", "-u", "alice", "\\Seen", "mailbox",
                    "INBOX", "uid", "1:6")
        src.doveadm("flags", "add", "-u", "alice", "$Label1", "mailbox",
                    "INBOX", "uid", "2")
        src.doveadm("mailbox", "create", "-u", "alice", "Archive")
        src.doveadm("copy", "-u", "alice", "Archive", "mailbox", "INBOX",
                    "uid", "4:5")
        if kind == "maildir":
            add_stored_uidls(os.path.join(src.home("alice"), kind),
                             STORED_UIDLS)
        return src

    def dsync(self, dst, other, *args):
        """doveadm backup/sync run on the sqlbox side, with the other
        instance's mail as the other side."""
        return dst.doveadm(*(args + ("-u", "alice", other.sync_location)),
                           check=False)

    def fetch_state(self, d):
        """Every message of every mailbox with what a client can see of it
        (UID, GUID, flags, received date, size), and each mailbox's
        UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ. (Not the save date: a
        maildir's is its file's ctime, which its own sync changes when it
        moves a file from new/ to cur/.)"""
        r = d.doveadm("-f", "tab", "fetch", "-u", "alice",
                      "mailbox uid guid flags date.received "
                      "size.virtual pop3.uidl", "all")
        msgs = sorted(r.stdout.splitlines()[1:])
        status = {}
        for box in ("INBOX", "Archive"):
            r = d.doveadm("-f", "tab", "mailbox", "status", "-u", "alice",
                          "uidvalidity uidnext highestmodseq messages", box)
            lines = r.stdout.splitlines()
            row = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
            status[box] = [int(row[k]) for k in ("uidvalidity", "uidnext",
                                                 "highestmodseq",
                                                 "messages")]
        return msgs, status

    def modseqs(self, d):
        r = d.doveadm("-f", "tab", "fetch", "-u", "alice",
                      "mailbox uid modseq", "all")
        out = {}
        for line in r.stdout.splitlines()[1:]:
            box, uid, modseq = line.split("\t")
            out[(box, int(uid))] = int(modseq)
        return out

    def assert_converged(self, r):
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertNotIn("Deleting mailbox", out)
        self.assertNotIn("UIDs changed", out)

    def backup_and_check(self, uidl_format=None, kind="maildir"):
        extra = "pop3_uidl_format = %s\n" % uidl_format if uidl_format \
            else ""
        src = self.source(extra, kind)
        dst = self.target(extra)
        before = pop3_listing(src)
        self.assertEqual(len(before), 20)
        if kind == "maildir":
            # the stored UIDLs are what POP3 shows for those messages
            self.assertIn("oldsrv-0004", [u for u, _, _ in before])

        r = self.dsync(dst, src, "backup", "-R")
        self.assert_converged(r)
        self.assertEqual(pop3_listing(dst), before)
        src_state = self.fetch_state(src)
        dst_state = self.fetch_state(dst)
        self.assertEqual(dst_state[0], src_state[0])
        for box in ("INBOX", "Archive"):
            # UIDVALIDITY, UIDNEXT and count equal; HIGHESTMODSEQ raised to
            # the source's at least
            self.assertEqual(dst_state[1][box][:2] + dst_state[1][box][3:],
                             src_state[1][box][:2] + src_state[1][box][3:])
            self.assertGreaterEqual(dst_state[1][box][2],
                                    src_state[1][box][2])
        # every message's modseq at least the source's (dsync gives it as
        # the save's min_modseq)
        src_modseqs, dst_modseqs = self.modseqs(src), self.modseqs(dst)
        self.assertEqual(sorted(src_modseqs), sorted(dst_modseqs))
        low = [k for k in src_modseqs if dst_modseqs[k] < src_modseqs[k]]
        self.assertEqual(low, [], (src_modseqs, dst_modseqs))
        state = self.db_state()

        # a rerun changes nothing
        r = self.dsync(dst, src, "backup", "-R")
        self.assert_converged(r)
        self.assertEqual(self.db_state(), state)
        self.assertEqual(pop3_listing(dst), before)

        # new mail on the source: only that comes across
        src.deliver_many("alice", [mail.message(n, size=500)
                                   for n in (26, 27)])
        after = pop3_listing(src)
        r = self.dsync(dst, src, "backup", "-R")
        self.assert_converged(r)
        self.assertEqual(pop3_listing(dst), after)
        self.assertEqual(self.fetch_state(dst)[0], self.fetch_state(src)[0])
        new_state = self.db_state()
        self.assertTrue(set(map(tuple, state[0])) <
                        set(map(tuple, new_state[0])))
        r = self.dsync(dst, src, "backup", "-R")
        self.assert_converged(r)
        self.assertEqual(self.db_state(), new_state)
        return src, dst

    def test_backup_from_maildir_keeps_every_uidl(self):
        self.backup_and_check()

    def test_backup_from_maildir_keeps_guid_uidls(self):
        # pop3_uidl_format = %g: the UIDL is the maildir's GUID (its file
        # name), which sqlbox must keep as given
        self.backup_and_check("%g")

    def test_backup_from_sdbox(self):
        self.backup_and_check(kind="sdbox")

    def test_backup_from_mdbox_guid_uidls(self):
        self.backup_and_check("%g", kind="mdbox")

    def reverse_and_check(self, uidl_format=None):
        """Into sqlbox, then back out of it into a new maildir (as a
        rollback after the switch would): what POP3 sees stays the same."""
        src, dst = self.backup_and_check(uidl_format)
        extra = "pop3_uidl_format = %s\n" % uidl_format if uidl_format \
            else ""
        back = self.other("back", "maildir", extra)
        expected = pop3_listing(dst)
        for run in range(2):
            r = self.dsync(dst, back, "backup")
            self.assert_converged(r)
            self.assertEqual(pop3_listing(back), expected)
        self.assertEqual(self.fetch_state(back)[0], self.fetch_state(dst)[0])
        # sqlbox, the source here, wasn't changed
        state = self.db_state()
        r = self.dsync(dst, back, "backup")
        self.assert_converged(r)
        self.assertEqual(self.db_state(), state)

    def test_backup_out_of_sqlbox_into_maildir(self):
        self.reverse_and_check()

    def test_backup_out_of_sqlbox_into_maildir_guid_uidls(self):
        self.reverse_and_check("%g")

    def test_two_way_sync_never_duplicates(self):
        src = self.source()
        dst = self.target()
        before = pop3_listing(src)
        counts = []
        for run in range(3):
            r = self.dsync(dst, src, "sync")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            counts.append((len(pop3_listing(src)), len(pop3_listing(dst))))
        self.assertEqual(counts, [(20, 20)] * 3)
        self.assertEqual(pop3_listing(dst), before)
        self.assertEqual(pop3_listing(src), before)
        self.assertEqual(self.fetch_state(dst)[0], self.fetch_state(src)[0])

        # changes on both sides meet, each message once
        dst.deliver("alice", mail.message(40, size=400))
        src.deliver("alice", mail.message(41, size=400))
        i = dst.imap("alice")
        i.select("INBOX")
        i.store("1", "+FLAGS", "\\Flagged")
        i.logout()
        # both got a new message under UID 26: one run gives both new UIDs,
        # the same on both sides (as with sdbox)
        r = self.dsync(dst, src, "sync")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        s, t = pop3_listing(src), pop3_listing(dst)
        self.assertEqual(len(s), 22)
        self.assertEqual(sorted(x[2] for x in s), sorted(x[2] for x in t))
        self.assertEqual(len(set(x[2] for x in t)), 22)
        self.assertEqual(s, t)
        state = self.fetch_state(dst)[0]
        self.assertEqual(state, self.fetch_state(src)[0])
        # and then it has converged: another run changes nothing
        r = self.dsync(dst, src, "sync")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.fetch_state(dst)[0], state)
        self.assertEqual(self.fetch_state(src)[0], state)

        # an expunge on each side reaches the other
        i = dst.imap("alice")
        i.select("INBOX")
        i.store("3", "+FLAGS", "\\Deleted")
        i.expunge()
        i.logout()
        src.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "uid",
                    "10")
        r = self.dsync(dst, src, "sync")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        s, t = pop3_listing(src), pop3_listing(dst)
        self.assertEqual(len(s), 20)
        self.assertEqual(s, t)
        self.assertEqual(self.fetch_state(dst)[0], self.fetch_state(src)[0])


class SqliteDsyncTest(DsyncMixin, TestCase):

    def target(self, extra_conf=""):
        d = self.track(sqlbox_dovecot(self.workdir, users={"alice": {}},
                                      extra_conf=NAMESPACE + extra_conf))
        d.start()
        self.dst = d
        return d

    def db_state(self):
        path = sqlite_path(self.dst, "alice")
        return (sqlite_query(path, "SELECT b.name, m.uid, m.guid, m.flags, "
                             "m.body_id, m.modseq FROM messages m JOIN "
                             "mailboxes b ON b.id = m.mailbox_id "
                             "ORDER BY 1, 2"),
                sqlite_query(path, "SELECT name, uidvalidity, next_uid, "
                             "modseq FROM mailboxes ORDER BY 1"))


class PgsqlDsyncTest(PostgresPerClass, DsyncMixin, TestCase):
    """One PostgreSQL server for the class; a database per test."""

    pg_dir_prefix = "pgsql-dsync."

    def target(self, extra_conf=""):
        self.db = self.next_name("dsync")
        self.pg.psql("CREATE DATABASE %s OWNER dovecot" % self.db)
        d = self.track(sqlbox_dovecot(
            self.workdir, users={"alice": {}}, driver="pgsql",
            connect=self.pg.conninfo(self.db, "dovecot"),
            extra_conf=NAMESPACE + extra_conf))
        d.start()
        return d

    def db_state(self):
        return (self.pg.psql("SELECT b.name, m.uid, m.guid, m.flags, "
                             "m.body_id, m.modseq FROM messages m JOIN "
                             "mailboxes b ON b.id = m.mailbox_id "
                             "ORDER BY 1, 2", self.db),
                self.pg.psql("SELECT name, uidvalidity, next_uid, modseq "
                             "FROM mailboxes ORDER BY 1", self.db))
