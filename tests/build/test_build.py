"""The build as an admin runs it: configure finds Dovecot or says clearly
that it cannot, and make install puts each module where Dovecot loads it
from."""

import os
import subprocess

from pop3ext_harness import TestCase, env


class BuildTest(TestCase):

    def test_configure_without_dovecot_fails_clearly(self):
        build = os.path.join(self.workdir, "b")
        os.makedirs(build)
        r = subprocess.run([os.path.join(env.SRCDIR, "configure"),
                            "--with-dovecot=%s/nowhere" % self.workdir],
                           cwd=build, capture_output=True, text=True,
                           timeout=300)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("dovecot-config not found", r.stdout + r.stderr)
        self.assertIn("--with-dovecot=DIR", r.stdout + r.stderr)

    def test_make_install_puts_modules_in_dovecots_dirs(self):
        dest = os.path.join(self.workdir, "root")
        r = subprocess.run(["make", "-C", env.BUILDDIR, "install",
                            "DESTDIR=" + dest], capture_output=True,
                           text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr)
        moduledir = dest + env.DOVECOT_MODULEDIR
        installed = set()
        for root, _, files in os.walk(dest):
            for f in files:
                installed.add(os.path.relpath(os.path.join(root, f), dest))
        mods = {os.path.basename(p) for p in env.built_mail_plugins()
                if "testhooks" not in p}
        for so in mods:
            self.assertIn(os.path.relpath(os.path.join(moduledir, so), dest),
                          installed)
        # test-only modules are never installed
        self.assertFalse([f for f in installed if "testhooks" in f])
        self.assertIn("usr/include/dovecot/pop3ext/pop3ext-pop3.h", installed)
        for sub, prefix in (("auth", "libauthdb_pop3ext.so"),
                            ("doveadm", "lib20_doveadm_pop3ext_plugin.so")):
            built = [p for p in env.all_built_modules()
                     if os.path.basename(p) == prefix]
            if built:
                self.assertIn(os.path.relpath(os.path.join(moduledir, sub,
                                                           prefix), dest),
                              installed)
        self.assertTrue([f for f in installed
                         if f.endswith("dovecot-pop3ext.conf")])
