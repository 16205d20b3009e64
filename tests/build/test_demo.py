"""The README's demo (scripts/demo.py, what scripts/demo.sh runs after
setting up): a Dovecot on sqlbox/SQLite that serves a POP3 session, whose
output can be piped, and which `stop` ends and removes."""

import os
import re
import subprocess
import sys
import time

from pop3ext_harness import TestCase, env


class DemoTest(TestCase):

    def run_demo(self, *args):
        environ = dict(os.environ, POP3EXT_DEMO_DIR=self.demo_dir)
        # stdout is a pipe: the daemonized Dovecot must not keep it open,
        # or this would hang until the timeout
        return subprocess.run([sys.executable,
                               os.path.join(env.SRCDIR, "scripts",
                                            "demo.py")] + list(args),
                              env=environ, capture_output=True, text=True,
                              timeout=120)

    def test_demo_starts_serves_pop3_on_sqlbox_and_stops(self):
        self.demo_dir = os.path.join(self.workdir, "demo")
        r = self.run_demo()
        pidfile = os.path.join(self.demo_dir, "dovecot", "run", "master.pid")
        try:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            out = r.stdout
            self.assertIn("< +OK 3 messages", out)
            self.assertRegex(out, r"IMPLEMENTATION dovecot-pop3ext \d")
            self.assertIn("Subject: dovecot-pop3ext demo 1", out)
            self.assertIn("-ERR [SYS/PERM] The TOP command is disabled", out)
            db = re.search(r"mail: +sqlbox/SQLite .*: (\S+)", out).group(1)
            self.assertTrue(os.path.getsize(db) > 0, db)
            pop3_port = int(re.search(r"POP3: 127\.0\.0\.1:(\d+)",
                                      out).group(1))
            # the server stays up for the admin to try
            import poplib
            p = poplib.POP3("127.0.0.1", pop3_port, timeout=30)
            p.user("demo")
            p.pass_("demo")
            self.assertEqual(p.stat()[0], 3)
            p.quit()
            with open(pidfile) as f:
                pid = int(f.read())
        finally:
            stopped = self.run_demo("stop")
        self.assertEqual(stopped.returncode, 0, stopped.stderr)
        self.assertFalse(os.path.exists(self.demo_dir))
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            self.fail("the demo's dovecot (pid %d) still runs" % pid)
