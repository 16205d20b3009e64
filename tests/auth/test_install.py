"""make install places the auth driver where Dovecot loads it from, with
its public header, the default site hook dir and the admin's files."""

import os
import subprocess

from pop3ext_harness import TestCase, env


class InstallTest(TestCase):

    def test_make_install(self):
        dest = os.path.join(self.workdir, "root")
        r = subprocess.run(["make", "-C", env.BUILDDIR, "install",
                            "DESTDIR=" + dest], capture_output=True,
                           text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr)
        installed = set()
        for root, dirs, files in os.walk(dest):
            for n in files + dirs:
                installed.add(os.path.relpath(os.path.join(root, n), dest))
        auth = os.path.relpath(os.path.join(env.DOVECOT_MODULEDIR, "auth"),
                               "/")
        self.assertIn(auth + "/libauthdb_pop3ext.so", installed)
        self.assertIn(auth + "/pop3ext-site", installed)
        self.assertIn("usr/include/dovecot/pop3ext/pop3ext-auth-site.h",
                      installed)
        docs = {os.path.basename(f) for f in installed if "/doc/" in f}
        for f in ("pop3ext-auth.conf.example", "pop3ext.schema",
                  "pop3ext.ldif", "example-users.ldif",
                  "pop3ext_site_example.c"):
            self.assertIn(f, docs)
        # test-only objects are never installed
        for f in installed:
            self.assertNotIn("pam_pop3ext_test", f)
            self.assertNotIn("pop3ext_site_wrong_abi", f)
            self.assertFalse(f.endswith("pop3ext_site_example.so"), f)
        # the installed module exports what Dovecot's loader looks for
        so = os.path.join(dest, auth, "libauthdb_pop3ext.so")
        syms = subprocess.run(["nm", "-D", "--defined-only", so],
                              capture_output=True, text=True).stdout
        for sym in ("authdb_pop3ext_init", "authdb_pop3ext_deinit",
                    "authdb_pop3ext_version"):
            self.assertIn(" " + sym + "\n", syms)
