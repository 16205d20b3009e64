"""Dovecot's own IMAP compliance suite, imaptest, run in its scripted mode
(`test=<imaptest>/src/tests`: every script's commands and the answers it
expects) against a real Dovecot: stock sdbox as the reference, then sqlbox
with every project plugin on SQLite and on PostgreSQL. Each must fail 0
commands.

imaptest is built once into <builddir>/imaptest by the steering repo's
tools/imaptest/build.sh (in CI a read-only copy at ../shared beside the
checkout); without it the test fails and says so."""

import fcntl
import os
import re
import subprocess
import time

from pop3ext_harness import TestCase, env
from pop3ext_harness.postgres import Postgres
from pop3ext_harness.sqlbox import sqlbox_dovecot

BUILD_SCRIPT = os.path.join(env.SRCDIR, "..", "shared", "tools", "imaptest",
                            "build.sh")
IMAPTEST_DIR = os.path.join(env.BUILDDIR, "imaptest")
# a run takes about 2 s (sdbox), 3 s (sqlbox/SQLite) and 5 s
# (sqlbox/PostgreSQL) on 2 cores, and took 40-90 s at a load average of
# 40; this only bounds a server that stops answering
RUN_TIMEOUT = 240
# imaptest opens some 200 connections: a login process that stays, and
# imap processes started ahead, keep process start-up out of the run time
FAST_LOGIN_CONF = """
service imap-login {
  service_count = 0
  process_min_avail = 1
}
service imap {
  process_min_avail = 4
}
"""

# "base protocol: 0/787 individual commands failed"
SUMMARY = re.compile(r"^(base protocol|extensions): (\d+)/(\d+) individual "
                     r"commands failed", re.M)
# "*** Test copy command 13/18 (line 35)" opens a failure's report
FAILED_TEST = re.compile(r"^\*\*\* Test (\S+) command (\d+)/(\d+) "
                         r"\(line (\d+)\)", re.M)


def imaptest_binary():
    """The imaptest binary, built on first use (under a lock: test modules
    run in parallel)."""
    binary = os.path.join(IMAPTEST_DIR, "src", "imaptest")
    if os.access(binary, os.X_OK):
        return binary
    if not os.path.exists(BUILD_SCRIPT):
        raise AssertionError(
            "imaptest can't be built: %s is missing (the steering repo's "
            "shared/ must be at ../shared beside the checkout)"
            % os.path.normpath(BUILD_SCRIPT))
    os.makedirs(env.BUILDDIR, exist_ok=True)
    with open(IMAPTEST_DIR + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(binary, os.X_OK):
            r = subprocess.run(["sh", BUILD_SCRIPT, IMAPTEST_DIR],
                               capture_output=True, text=True, timeout=1200)
            if r.returncode != 0 or not os.access(binary, os.X_OK):
                raise AssertionError("building imaptest failed (rc %d): %s"
                                     % (r.returncode,
                                        (r.stdout + r.stderr)[-2000:]))
    return binary


def run_imaptest(dovecot, user="alice", password="secret"):
    """Runs the scripted tests against dovecot's IMAP port. Returns
    ({"base protocol": (failed, total), "extensions": ...}, [failed test
    names with their command and line], output, seconds)."""
    binary = imaptest_binary()
    started = time.monotonic()
    r = subprocess.run(
        [binary, "host=127.0.0.1", "port=%d" % dovecot.imap_port,
         "user=%s" % user, "pass=%s" % password,
         "test=%s" % os.path.join(IMAPTEST_DIR, "src", "tests")],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
        env=dict(os.environ, LD_LIBRARY_PATH=env.DOVECOT_LIBEXECDIR),
        cwd=dovecot.dir)
    seconds = time.monotonic() - started
    out = r.stdout + r.stderr
    summary = {m.group(1): (int(m.group(2)), int(m.group(3)))
               for m in SUMMARY.finditer(out)}
    failed = ["%s (command %s/%s, line %s)" % m.groups()
              for m in FAILED_TEST.finditer(out)]
    return summary, failed, out, seconds


class ImaptestCase(TestCase):

    def assert_passes(self, dovecot):
        summary, failed, out, seconds = run_imaptest(dovecot)
        with open(os.path.join(dovecot.dir, "imaptest.out"), "w") as f:
            f.write(out)
            f.write("\n(imaptest ran %.1f s)\n" % seconds)
        self.assertIn("base protocol", summary,
                      "imaptest printed no summary:\n" + out[-3000:])
        base_failed, base_total = summary["base protocol"]
        ext_failed, ext_total = summary.get("extensions", (0, 0))
        # the suite as built has 457 base protocol and 330 extension
        # commands; fewer would mean that scripts were skipped
        self.assertGreaterEqual(base_total + ext_total, 787, out[-3000:])
        self.assertEqual((base_failed, ext_failed, failed), (0, 0, []),
                         "imaptest failed %d/%d base and %d/%d extension "
                         "commands in %s:\n%s" % (
                             base_failed, base_total, ext_failed, ext_total,
                             ", ".join(failed), out[-6000:]))
        self.assertNotIn("Panic", dovecot.log())


class SdboxImaptestTest(ImaptestCase):
    """The reference: stock Dovecot on sdbox passes the whole suite."""

    def test_stock_sdbox(self):
        d = self.dovecot(users={"alice": {}}, plugins=False,
                         mail_location="sdbox:~/sdbox",
                         extra_conf=FAST_LOGIN_CONF)
        self.assert_passes(d)


class SqliteImaptestTest(ImaptestCase):

    def test_sqlbox_sqlite_every_plugin(self):
        d = self.track(sqlbox_dovecot(self.workdir, users={"alice": {}},
                                     extra_conf=FAST_LOGIN_CONF))
        d.start()
        self.assert_passes(d)


class PgsqlImaptestTest(ImaptestCase):

    def test_sqlbox_pgsql_every_plugin(self):
        pg = self.track(Postgres(self.workdir))
        pg.psql("CREATE ROLE dovecot LOGIN")
        pg.psql("CREATE DATABASE mail OWNER dovecot")
        d = self.track(sqlbox_dovecot(
            self.workdir, users={"alice": {}}, driver="pgsql",
            connect=pg.conninfo("mail", "dovecot"),
            extra_conf=FAST_LOGIN_CONF))
        d.start()
        self.assert_passes(d)
