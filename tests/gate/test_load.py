"""The short form of the load gate (issue 9): concurrent POP3 sessions
(mixed STAT/UIDL/LIST/RETR/DELE/QUIT, a tenth dropped mid-command) on
sqlbox/SQLite with every plugin and an active policy (DELE archives), while
LMTP delivers. Nothing may be lost or duplicated, the archive must hold
exactly what the QUITs committed, no error anywhere, no process left, and
each process's memory bounded. bench/pop3_load.py is the 200-session,
60-second form (docs/RELIABILITY.md)."""

from pop3ext_harness import TestCase, load, sanitizers
from pop3ext_harness.load import _instance_processes
from pop3ext_harness.sqlbox import sqlbox_dovecot

PASSWORD = "secret"
USERS = ["load%02d" % i for i in range(20)]
# peak RSS of any one Dovecot process (kB); ASan's shadow memory and
# quarantine make the bound meaningless in the sanitizer mode
RSS_BOUND_KB = None if sanitizers.enabled() else 96 * 1024


class LoadTest(TestCase):

    def test_concurrent_sessions_while_delivering(self):
        d = self.track(sqlbox_dovecot(
            self.workdir, users={u: {"password": PASSWORD} for u in USERS},
            plugin_settings={"pop3ext_on_dele": "archive:Archive"}))
        d.start()
        result = load.run(d, USERS, PASSWORD, seconds=8, deliver_threads=1,
                          drop_fraction=0.1)
        problems = result.problems(RSS_BOUND_KB)
        self.assertEqual(problems, [], result.summary())
        # the load really happened (bounds that hold however slow the
        # machine: every worker runs at least its first session, and
        # every tenth drops that one)
        self.assertGreaterEqual(result.sessions, len(USERS))
        self.assertGreaterEqual(result.drops, len(USERS) // 10)
        self.assertGreater(result.quits, 0)
        self.assertGreater(result.retrs, 0)
        # the deliverer delivered during the load, besides the preload
        self.assertGreater(result.deliveries, len(USERS) * 3)
        self.assertGreater(sum(len(a) for _, a in result.final.values()), 0)
        self.assertIn("pop3", result.peak_rss_kb)
        d.stop()
        self.assertEqual(_instance_processes(d), {})
