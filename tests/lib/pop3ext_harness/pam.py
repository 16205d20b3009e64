"""PAM for tests through pam_wrapper (Debian's libpam-wrapper): the real
libpam, loaded with LD_PRELOAD=libpam_wrapper.so, reads service files from
a directory of ours instead of /etc/pam.d. Users come from pam_matrix's
password file; the project's test module (tests/auth/fixtures/
pam_pop3ext_test.c, built into the build tree) adds account states
pam_matrix cannot express and records the PAM items it saw.

    pam = PamWrapper(workdir)
    pam.add_user("alice", "secret")                # service "dovecot"
    pam.set_state("bob", "password-expired")
    d = Dovecot(..., extra_conf=pam.dovecot_conf())
    pam.items()                                    # [{"user": ..., "rhost": ...}]

pam_wrapper picks its work dir among /tmp/pam.<letter> when a process
starts, and two processes starting at once can pick the same one (and the
first to exit removes it). So the wrapper is preloaded into the auth-worker
processes only - the ones that call PAM - not into every Dovecot process as
import_environment would.
"""

import glob
import os

from . import env
from . import sanitizers

_LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64", "/usr/lib")


def _find(pattern):
    for d in _LIBDIRS:
        found = glob.glob(os.path.join(d, pattern))
        if found:
            return found[0]
    raise FileNotFoundError("%s not found (Debian: libpam-wrapper)" % pattern)


def wrapper_library():
    return _find("libpam_wrapper.so")


def matrix_module():
    return _find("pam_wrapper/pam_matrix.so")


def test_module():
    return env.built("auth/.libs/pam_pop3ext_test.so")


class PamWrapper:

    def __init__(self, workdir, services=("dovecot",)):
        self.dir = os.path.join(workdir, "pam")
        self.service_dir = os.path.join(self.dir, "services")
        os.makedirs(self.service_dir)
        self.passdb = os.path.join(self.dir, "passdb")
        self.states = os.path.join(self.dir, "states")
        self.items_log = os.path.join(self.dir, "items.log")
        self.users = {}
        self.state = {}
        self._write_users()
        self._write_states()
        for s in services:
            self.write_service(s)
        # libpam reads "other" besides the service's file
        with open(os.path.join(self.service_dir, "other"), "w") as f:
            f.write("auth required pam_deny.so\n"
                    "account required pam_deny.so\n")

    def write_service(self, name):
        """A service file: pam_matrix checks the password and that the
        user may use this service; the test module records items and
        applies account states."""
        m, t = matrix_module(), test_module()
        lines = [
            "auth required %s passdb=%s" % (m, self.passdb),
            "auth optional %s log=%s" % (t, self.items_log),
            "account required %s states=%s" % (t, self.states),
            "account required %s passdb=%s" % (m, self.passdb),
        ]
        with open(os.path.join(self.service_dir, name), "w") as f:
            f.write("\n".join(lines) + "\n")

    def add_user(self, name, password, service="dovecot"):
        self.users[name] = (password, service)
        self._write_users()

    def remove_passdb(self):
        """Makes pam_matrix's data unreachable (PAM_AUTHINFO_UNAVAIL)."""
        os.rename(self.passdb, self.passdb + ".away")

    def restore_passdb(self):
        os.rename(self.passdb + ".away", self.passdb)

    def set_state(self, name, state):
        """state: account-expired, password-expired, denied, unavailable,
        or None."""
        if state is None:
            self.state.pop(name, None)
        else:
            self.state[name] = state
        self._write_states()

    def _write_users(self):
        tmp = self.passdb + ".tmp"
        with open(tmp, "w") as f:
            for name, (pw, service) in self.users.items():
                f.write("%s:%s:%s\n" % (name, pw, service))
        os.replace(tmp, self.passdb)

    def _write_states(self):
        tmp = self.states + ".tmp"
        with open(tmp, "w") as f:
            for name, state in self.state.items():
                f.write("%s:%s\n" % (name, state))
        os.replace(tmp, self.states)

    def environment(self):
        """What a process needs to use PAM through pam_wrapper with our
        service files."""
        # in the sanitizer mode, after the sanitizer runtimes
        return {"LD_PRELOAD": sanitizers.preload(wrapper_library()),
                "PAM_WRAPPER": "1",
                "PAM_WRAPPER_SERVICE_DIR": self.service_dir}

    def dovecot_conf(self, **worker_settings):
        """Dovecot settings that run the auth-workers with pam_wrapper;
        worker_settings go into the same service block (e.g.
        process_limit=1)."""
        env_args = " ".join("%s=%s" % kv for kv in
                            sorted(self.environment().items()))
        lines = ["service auth-worker {",
                 "  executable = /usr/bin/env %s %s/auth -w" % (
                     env_args, env.DOVECOT_LIBEXECDIR)]
        lines += ["  %s = %s" % kv for kv in worker_settings.items()]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def items(self):
        """The PAM items the test module recorded, one dict per call."""
        out = []
        try:
            with open(self.items_log) as f:
                for line in f:
                    out.append(dict(kv.split("=", 1)
                                    for kv in line.split()))
        except FileNotFoundError:
            pass
        return out
