"""A pop3 process killed during QUIT (the UPDATE state) at every step of
the work, named crash points (POP3EXT_CRASH_AT, read by pop3ext_pop3 when
it loads) instead of a timed kill: nothing is lost, nothing is half done,
and the next clean session completes the work. A point that is not reached
fails the test; the outcome never depends on timing."""

import re
import time
from collections import Counter

from policytest import PolicyTestCase
from pop3ext_harness import mail
from pop3ext_harness.pop3raw import Conversation, EOF

# in the order QUIT reaches them
POINTS = [
    "quit-begin",
    "quit-archive-before-copy",
    "quit-archive-after-commit",
    "quit-after-gate",
    "quit-after-hide",
    "quit-after-retrievals",
    "quit-commit-before",
    "quit-commit-after",
]
# the points at which the archive copies are committed but the session's
# own transaction is not: the originals stay, the next QUIT copies again
ARCHIVED_NOT_COMMITTED = {"quit-archive-after-commit", "quit-after-gate",
                          "quit-after-hide", "quit-after-retrievals",
                          "quit-commit-before"}

POLICY = {"pop3ext_on_dele": "archive:Archive",
          "pop3ext_on_retr": "hide",
          "pop3ext_expire_after_retr": "1d"}
N = 6
ALL = {"m %d" % n for n in range(N)}
DELETE = {"m 0", "m 3"}
RETRIEVE = {"m 1", "m 4"}
UNTOUCHED = ALL - DELETE - RETRIEVE


def user_of(point):
    return point.replace("-", "_")


class CrashDuringQuitTest(PolicyTestCase):

    def folder(self, user, mailbox):
        """[(subject, flags)] of every message of mailbox, duplicates
        included."""
        i = self.d.imap(user)
        typ, count = i.select('"%s"' % mailbox)
        out = []
        if typ == "NO" and b"doesn't exist" in count[0]:
            # the archive is created by the first archiving QUIT
            i.logout()
            return out
        self.assertEqual(typ, "OK", count)
        if count != [b"0"]:
            typ, data = i.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS "
                                       "(SUBJECT)])")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1)
                subject = re.search(rb"Subject: (.*)", item[1]).group(1)
                out.append((subject.strip().decode(),
                            set(flags.decode().split()) - {"\\Recent"}))
        i.logout()
        return out

    def session(self, user):
        """USER/PASS, DELE of DELETE, RETR of RETRIEVE (by subject, from
        what POP3 lists now), QUIT. Returns the conversation and QUIT's
        answer."""
        c = Conversation(self.d.pop3_port)
        resp = c.login(user, "secret")
        self.assertTrue(resp[-1].startswith(b"+OK"), c.text())
        count = int(c.command(b"STAT\r\n")[0].split()[1])
        listed = {}
        for n in range(1, count + 1):
            top = c.command(b"TOP %d 0\r\n" % n)[0]
            listed[re.search(rb"Subject: ([^\r\n]*)", top).group(1)
                   .decode()] = n
        for subject, n in sorted(listed.items()):
            if subject in DELETE:
                self.assertTrue(c.command(b"DELE %d\r\n" % n)[0]
                                .startswith(b"+OK"), c.text())
            elif subject in RETRIEVE:
                self.assertTrue(c.command(b"RETR %d\r\n" % n)[0]
                                .startswith(b"+OK"), c.text())
        quit = c.command(b"QUIT\r\n")[0]
        if not quit.endswith(EOF):
            c.read_until_eof()
        c.close()
        return c, quit

    def wait_kills(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            found = len(re.findall(r"service\(pop3\): child \d+ killed "
                                   r"with signal 9", self.d.log()))
            if found >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(found, count, self.d.log()[-3000:])

    def check_nothing_lost(self, user, point):
        inbox, archive = self.folder(user, "INBOX"), \
            self.folder(user, "Archive")
        subjects = {s for s, _ in inbox} | {s for s, _ in archive}
        self.assertEqual(subjects, ALL, point)
        return inbox, archive

    def test_kill_at_every_point_of_quit(self):
        users = {user_of(p): dict(POLICY) for p in POINTS}
        self.start(users, messages=0)
        for user in users:
            self.d.deliver_many(user, [mail.message(n, subject="m %d" % n)
                                       for n in range(N)])

        for point in POINTS:
            self.d.stop()
            self.d.environment = {"POP3EXT_CRASH_AT": point}
            self.d.start()
            c, quit = self.session(user_of(point))
            try:
                self.d.wait_log("crash point %s reached" % point)
            except AssertionError as e:
                self.fail("crash point %s was not reached; the session:\n"
                          "%s\n%s" % (point, c.text(), e))
            # the master saw the kill (one per point so far)
            self.wait_kills(POINTS.index(point) + 1)
            if point != "quit-commit-after":
                # the process died before Dovecot's QUIT answered
                self.assertNotIn(b"+OK Logging out", quit, c.text())

        # the hook is gone: what did the dead sessions leave?
        self.d.stop()
        self.d.environment = {}
        self.d.start()
        for point in POINTS:
            user = user_of(point)
            inbox, archive = self.check_nothing_lost(user, point)
            if point == "quit-commit-after":
                # all done before the kill
                self.assertEqual(sorted(s for s, _ in inbox),
                                 sorted(ALL - DELETE), point)
                self.assertEqual(sorted(s for s, _ in archive),
                                 sorted(DELETE), point)
            else:
                # nothing of the session's own transaction is there: all
                # messages in INBOX, none hidden or marked retrieved
                self.assertEqual(sorted(s for s, _ in inbox), sorted(ALL),
                                 point)
                for s, flags in inbox:
                    self.assertFalse(flags & {"$POP3Hidden",
                                              "$POP3Retrieved"},
                                     (point, s, flags))
                # archive copies exist only once their own commit ran
                expected = DELETE if point in ARCHIVED_NOT_COMMITTED \
                    else set()
                self.assertEqual(sorted(s for s, _ in archive),
                                 sorted(expected), point)

        # a clean session completes the work, for every point
        for point in POINTS:
            user = user_of(point)
            c, quit = self.session(user)
            self.assertTrue(quit.startswith(b"+OK Logging out"), c.text())
            inbox, archive = self.check_nothing_lost(user, point)
            self.assertEqual({s for s, _ in inbox}, ALL - DELETE, point)
            for s, flags in inbox:
                want = {"$POP3Hidden", "$POP3Retrieved"} \
                    if s in RETRIEVE else set()
                self.assertEqual(flags & {"$POP3Hidden", "$POP3Retrieved"},
                                 want, (point, s, flags))
            # a copy of its own per archiving QUIT that committed
            copies = 2 if point in ARCHIVED_NOT_COMMITTED else 1
            self.assertEqual(Counter(s for s, _ in archive),
                             {s: copies for s in DELETE}, point)
            # hidden, and no longer listed
            self.assertEqual(self.pop3_subjects(user), sorted(UNTOUCHED))

        # the retrievals were recorded: a day later they expire
        rows = self.sweep("-A", faketime="+2d")
        for point in POINTS:
            user = user_of(point)
            self.assertEqual({s for s, _ in self.folder(user, "INBOX")},
                             UNTOUCHED, (point, rows.get(user)))

        # Dovecot's own consistency check of the mailboxes
        for point in POINTS:
            user = user_of(point)
            self.d.doveadm("force-resync", "-u", user, "*")
            self.assertEqual({s for s, _ in self.folder(user, "INBOX")},
                             UNTOUCHED, point)
            self.assertEqual({s for s, _ in self.folder(user, "Archive")},
                             DELETE, point)
        self.assertNotRegex(self.d.log(), r"Panic|Fatal: (?!master: "
                            r"service\(pop3\): child \d+ killed)")


class CrashDuringQuitSdboxTest(CrashDuringQuitTest):
    storage = "sdbox"


class CrashDuringQuitMdboxTest(CrashDuringQuitTest):
    storage = "mdbox"


class CrashDuringQuitSqlboxTest(CrashDuringQuitTest):
    storage = "sqlbox"
