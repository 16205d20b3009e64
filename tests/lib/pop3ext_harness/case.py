"""TestCase with a work directory per test and instances stopped at the
end. tests/run.py keeps the work directory (configs, logs, mail) of a test
that failed and removes the others."""

import os
import re
import shutil
import tempfile
import unittest

from .dovecot import Dovecot

# set by tests/run.py; a temp dir when a module is run on its own
WORK_ROOT = os.environ.get("POP3EXT_TEST_WORKDIR")


class TestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        root = WORK_ROOT
        if root is None:
            # run on its own: a work root of our own (never chmod /tmp)
            root = tempfile.mkdtemp(prefix="pop3ext-test.")
            os.chmod(root, 0o755)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.id())[-120:]
        self.workdir = tempfile.mkdtemp(prefix=name + ".", dir=root)
        os.chmod(self.workdir, 0o755)
        self._instances = []
        self.addCleanup(self._stop_instances)

    def _stop_instances(self):
        for inst in reversed(self._instances):
            if hasattr(inst, "cleanup"):
                inst.cleanup()
            else:
                inst.stop()

    def track(self, instance):
        """Stops instance (anything with stop()) when the test ends."""
        self._instances.append(instance)
        return instance

    def dovecot(self, start=True, **kwargs):
        """A Dovecot instance in this test's work dir, stopped at the end."""
        d = self.track(Dovecot(self.workdir, **kwargs))
        if start:
            d.start()
        return d

    def remove_workdir(self):
        shutil.rmtree(self.workdir, ignore_errors=True)
