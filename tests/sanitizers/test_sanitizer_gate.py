"""The sanitizer mode itself (scripts/test.sh --sanitizers, a build
configured with --enable-sanitizers): a defect in a module that a Dovecot
process loads is reported by ASan or UBSan into the instance's sanitizer/
dir, and the runner fails the test that caused it, naming it. The defects
come from a test-only plugin (tests/sanitizers/fixtures/
pop3ext-sanitizer-fault-plugin.c) and only when a test asks for one.
Skipped in an uninstrumented build."""

import json
import os
import shutil
import subprocess
import sys
import unittest

import pop3ext_harness as h
from pop3ext_harness import env, sanitizers

HERE = os.path.dirname(os.path.abspath(__file__))
FAULT_PLUGIN = ("pop3ext_sanitizer_fault",)


@unittest.skipUnless(sanitizers.enabled(),
                     "build not configured with --enable-sanitizers")
class SanitizerGateTest(h.TestCase):

    def faulty(self, fault):
        """An instance whose plugin commits fault, in a dir of its own
        outside the test's work dir: the runner would rightly fail this
        test for the reports it is meant to cause."""
        root = os.path.join(os.path.dirname(self.workdir),
                            "fault." + os.path.basename(self.workdir))
        os.makedirs(root)
        os.chmod(root, 0o755)
        self.addCleanup(shutil.rmtree, root, True)
        d = self.track(h.Dovecot(root, users={"alice": {}},
                                 mail_plugins=FAULT_PLUGIN,
                                 plugin_settings={
                                     "pop3ext_sanitizer_fault": fault}))
        sanitizers.add_fault_plugin(d)
        d.start()
        self.fault_root = root
        return d

    def fault_reports(self, *needles):
        """The fault instance's reports; one of them holds every needle."""
        found = sanitizers.reports(self.fault_root)
        self.assertTrue(any(all(n in text for n in needles)
                            for _, text in found),
                        "no report with %r in %s" % (needles, found))
        return found

    def test_clean_session_has_no_report(self):
        d = self.dovecot(users={"alice": {}})
        d.deliver("alice", h.mail.message(1))
        p = d.pop3("alice")
        self.assertEqual(len(p.list()[1]), 1)
        p.quit()
        d.doveadm("mailbox", "status", "-u", "alice", "messages", "INBOX")
        d.stop()
        self.assertEqual(sanitizers.reports(self.workdir), [])
        # the processes did run with the runtime
        self.assertIn("LD_PRELOAD=" + sanitizers.runtime().split(":")[0],
                      open(d.conf_path).read())

    def test_heap_overflow_in_pop3_is_reported(self):
        d = self.faulty("heap-overflow")
        with self.assertRaises(Exception):
            # ASan ends the process at the overflow
            d.pop3("alice").quit()
        d.stop()
        found = self.fault_reports(
            "ERROR: AddressSanitizer: heap-buffer-overflow",
            "fault_heap_overflow", "pop3ext-sanitizer-fault-plugin.c:")
        # ASan's report is in the instance's report files
        self.assertTrue(any(p.startswith(os.path.join(d.dir, "sanitizer"))
                            and "AddressSanitizer" in t for p, t in found))

    def test_use_after_free_in_doveadm_is_reported(self):
        d = self.faulty("use-after-free")
        r = d.doveadm("mailbox", "status", "-u", "alice", "messages",
                      "INBOX", check=False)
        self.assertNotEqual(r.returncode, 0)
        d.stop()
        self.fault_reports("heap-use-after-free", "fault_use_after_free")

    def test_undefined_behaviour_is_reported_and_session_goes_on(self):
        d = self.faulty("signed-overflow")
        # UBSan reports and lets the process go on (halt_on_error=0)
        p = d.pop3("alice")
        p.stat()
        p.quit()
        d.stop()
        self.fault_reports("runtime error: signed integer overflow",
                           "pop3ext-sanitizer-fault-plugin.c:")

    def test_runner_fails_the_test_that_caused_a_report(self):
        inner = os.path.join(self.workdir, "inner")
        os.makedirs(inner)
        os.chmod(inner, 0o755)
        result = os.path.join(inner, "results")
        run_env = dict(os.environ, POP3EXT_TEST_WORKDIR=inner,
                       POP3EXT_BUILDDIR=env.BUILDDIR,
                       POP3EXT_SRCDIR=env.SRCDIR)
        r = subprocess.run(
            [sys.executable, os.path.join(env.SRCDIR, "tests", "run.py"),
             "--child", os.path.join(HERE, "fixtures", "faulty_module.py"),
             "--result-file", result],
            env=run_env, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(result) as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["status"], "fail")
        self.assertIn("test_passes_but_overflows", rows[0]["name"])
        self.assertIn("sanitizer report", rows[0]["detail"])
        self.assertIn("heap-buffer-overflow", rows[0]["detail"])
        # the inner test's reports were counted there, not here
        shutil.rmtree(inner)
        self.assertEqual(sanitizers.reports(self.workdir), [])


if __name__ == "__main__":
    unittest.main()
