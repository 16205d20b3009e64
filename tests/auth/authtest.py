"""What the tests of the pop3ext auth driver share: a TestCase that starts
slapd instances and Dovecot instances whose passdb/userdb is the driver
built in this tree (loaded through the harness's auth module overlay), and
small clients that return the server's answers instead of raising."""

import base64
import os
import socket
import subprocess

from pop3ext_harness import TestCase, env
from pop3ext_harness.dovecot import MAIL_USER, MAIL_GROUP
from pop3ext_harness.slapd import (Slapd, PEOPLE, SERVICE_DN,
                                   SERVICE_PASSWORD, SUFFIX)

AUTH_FAILED = b"-ERR [AUTH] Authentication failed."
# followed by " [<host>:<time>]"
TEMP_FAILED = b"-ERR [SYS/TEMP] Temporary authentication failure. ["

# Dovecot settings every test instance gets: auth_verbose (the driver logs
# why a login failed at info level, as Dovecot's drivers do), no failure
# delay and no
# per-IP penalty (auth-penalty: the auth process can't reach anvil's
# penalty socket), so refused logins don't slow the tests down; user names
# may hold any character, so that the driver - not Dovecot - is what
# refuses hostile ones.
BASE_CONF = """
auth_failure_delay = 0
auth_verbose = yes
auth_username_chars =
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""


def auth_module():
    return env.built("auth/.libs/libauthdb_pop3ext.so")


def ldap_conf(slapds, **keys):
    """A pop3ext configuration for LDAP servers (search+bind with the
    service account), as a dict of keys."""
    conf = {
        "password_check": "ldap",
        "ldap_uris": " ".join(s if isinstance(s, str) else s.uri
                              for s in slapds),
        "ldap_base": PEOPLE,
        "ldap_bind_dn": SERVICE_DN,
        "ldap_bind_password": SERVICE_PASSWORD,
        "ldap_connect_timeout": "1s",
        "ldap_timeout": "2s",
    }
    conf.update(keys)
    return {k: v for k, v in conf.items() if v is not None}


class AuthTestCase(TestCase):

    def slapd(self, name="slapd", start=True, **kwargs):
        s = self.track(Slapd(self.workdir, name=name, **kwargs))
        if start:
            s.start()
        return s

    def assert_tempfail(self, response):
        """A temporary failure, never "wrong password"."""
        self.assertTrue(response.startswith(TEMP_FAILED), response)

    def write_conf(self, conf, name="pop3ext-auth.conf"):
        """Writes the driver's configuration file (a dict of keys, or the
        text itself); returns its path."""
        path = os.path.join(self.workdir, name)
        if isinstance(conf, dict):
            text = "".join("%s = %s\n" % kv for kv in conf.items())
        else:
            text = conf
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def dn_template_dovecot(self, users):
        """A slapd with users= and a Dovecot whose pop3ext passdb only binds
        as uid=%u,ou=people (no service account, no attributes; a static
        userdb, homes under the work dir): the directory is only asked "is
        this the password of that DN". Returns (slapd, dovecot)."""
        s = self.slapd(users=users)
        path = self.write_conf(ldap_conf(
            [s], ldap_base=None, ldap_bind_dn=None, ldap_bind_password=None,
            attributes="none",
            ldap_user_dn_template="uid=%u,ou=people," + SUFFIX))
        d = self.auth_dovecot(path, userdb_conf=(
            "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup "
            "home=%s/home/%%u\n}" % self.workdir))
        return s, d

    def auth_dovecot(self, conf_path, userdb=True, extra_conf="",
                     start=True, passdb_extra="", userdb_conf=None,
                     passwd_file_first=False, passwd_file_after=False,
                     passdb_before="", **kwargs):
        """A Dovecot whose passdb (and userdb) is pop3ext with conf_path.
        passwd_file_first: a passwd-file passdb and userdb with the users=
        come before pop3ext's (a login another driver answers);
        passwd_file_after: a passwd-file passdb after pop3ext's (what a
        failed pop3ext login must not leak into); passdb_before: blocks
        before all ({PASSWD} is the passwd-file of users=)."""
        blocks = [passdb_before] if passdb_before else []
        if passwd_file_first:
            blocks.append("passdb {\n  driver = passwd-file\n  args = "
                          "scheme=PLAIN username_format=%u {PASSWD}\n}")
        blocks.append("passdb {\n  driver = pop3ext\n  args = %s\n%s}"
                      % (conf_path, passdb_extra))
        if passwd_file_after:
            blocks.append("passdb {\n  driver = passwd-file\n  args = "
                          "scheme=PLAIN username_format=%u {PASSWD}\n}")
        if passwd_file_first:
            blocks.append("userdb {\n  driver = passwd-file\n  args = "
                          "username_format=%u {PASSWD}\n}")
        if userdb_conf is not None:
            blocks.append(userdb_conf)
        elif userdb:
            blocks.append(
                "userdb {\n  driver = pop3ext\n  args = %s\n"
                "  default_fields = uid=%s gid=%s\n}"
                % (conf_path, MAIL_USER, MAIL_GROUP))
        kwargs.setdefault("plugins", False)
        # homes by the final user name (mail_home is expanded after the
        # lookups, userdb default_fields before them)
        d = self.dovecot(start=False, module_overlays={"auth": [
            auth_module()]}, auth_conf="\n".join(blocks),
            extra_conf=BASE_CONF + "mail_home = {HOMES}/%u\n" + extra_conf,
            **kwargs)
        homes = os.path.join(d.dir, "home")
        os.makedirs(homes, exist_ok=True)
        os.chown(homes, d.uid, d.gid)
        d.auth_conf = d.auth_conf.replace("{HOMES}", homes).replace(
            "{PASSWD}", os.path.join(d.dir, "passwd"))
        d.extra_conf = d.extra_conf.replace("{HOMES}", homes)
        if start:
            d.start()
        return d


def pop3_login(d, user, password, source=None, timeout=30):
    """USER/PASS over a raw socket (bytes or str, sent as they are).
    Returns the last answer: b"+OK ..." or b"-ERR ...". Logs out when the
    login worked."""
    if isinstance(user, str):
        user = user.encode("utf-8", "surrogateescape")
    if isinstance(password, str):
        password = password.encode("utf-8", "surrogateescape")
    s = socket.create_connection(("127.0.0.1", d.pop3_port), timeout,
                                 source_address=(source, 0) if source
                                 else None)
    f = s.makefile("rb")
    try:
        greeting = f.readline().rstrip(b"\r\n")
        if not greeting.startswith(b"+OK"):
            return greeting
        s.sendall(b"USER " + user + b"\r\n")
        r = f.readline().rstrip(b"\r\n")
        if not r.startswith(b"+OK"):
            return r
        s.sendall(b"PASS " + password + b"\r\n")
        return _answer_and_quit(s, f)
    finally:
        f.close()
        s.close()


def _answer_and_quit(s, f):
    """The server's answer to the last command; QUIT if it logged in."""
    r = f.readline().rstrip(b"\r\n")
    if r.startswith(b"+OK"):
        s.sendall(b"QUIT\r\n")
        f.readline()
    return r


def pop3_auth_plain(d, user, password, timeout=30):
    """AUTH PLAIN with an initial response; returns the answer."""
    if isinstance(user, str):
        user = user.encode("utf-8", "surrogateescape")
    if isinstance(password, str):
        password = password.encode()
    resp = base64.b64encode(b"\0" + user + b"\0" + password)
    s = socket.create_connection(("127.0.0.1", d.pop3_port), timeout)
    f = s.makefile("rb")
    try:
        f.readline()
        s.sendall(b"AUTH PLAIN " + resp + b"\r\n")
        return _answer_and_quit(s, f)
    finally:
        f.close()
        s.close()


def auth_client_plain(d, user, password, service="pop3", timeout=60):
    """One PLAIN authentication straight over Dovecot's auth-client socket
    (the protocol login processes speak). Returns the reply line, e.g.
    "OK\t1\tuser=alice" or "FAIL\t1\tuser=..."."""
    if isinstance(user, str):
        user = user.encode("utf-8", "surrogateescape")
    resp = base64.b64encode(b"\0" + user + b"\0" + password.encode())
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(os.path.join(d.base_dir, "auth-client"))
    f = s.makefile("rb")
    try:
        s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        while f.readline().rstrip(b"\n") != b"DONE":
            pass
        s.sendall(b"AUTH\t1\tPLAIN\tservice=" + service.encode() +
                  b"\tsecured\trip=127.0.0.1\tlip=127.0.0.1\tresp=" + resp +
                  b"\n")
        return f.readline().rstrip(b"\n").decode("utf-8", "replace")
    finally:
        f.close()
        s.close()


def auth_test(d, user, password, *fields):
    """doveadm auth test (passdb only, through the auth-client socket).
    user may be bytes. Returns (exit code, output)."""
    argv = ["doveadm", "-c", d.conf_path, "auth", "test"]
    for f in fields:
        argv += ["-x", f]
    argv += [user, password]
    argv = [a if isinstance(a, bytes) else a.encode() for a in argv]
    if d.module_overlays and d.running():
        argv = [b"nsenter", b"-m", b"-t", str(d.proc.pid).encode()] + argv
    r = subprocess.run(argv, capture_output=True, timeout=120)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def auth_login(d, user, password, *fields):
    """doveadm auth login: passdb and userdb as a real login does; returns
    (exit code, output)."""
    argv = ["auth", "login"]
    for f in fields:
        argv += ["-x", f]
    r = d.doveadm(*(argv + [user, password]), check=False)
    return r.returncode, r.stdout + r.stderr


def userdb_fields(output):
    """The "userdb extra fields" of doveadm auth login output as a dict."""
    fields = {}
    in_userdb = False
    for line in output.splitlines():
        if line.startswith("userdb extra fields"):
            in_userdb = True
            continue
        if in_userdb and line.startswith("  ") and "=" in line:
            k, v = line.strip().split("=", 1)
            fields[k] = v
    return fields


def doveadm_user(d, user):
    """doveadm user: the userdb fields as a dict, or None if unknown."""
    r = d.doveadm("user", user, check=False)
    if r.returncode != 0:
        return None
    fields = {}
    for line in r.stdout.splitlines()[1:]:
        if "\t" in line:
            k, v = line.split("\t", 1)
            fields[k] = v
    return fields


def assert_clean_log(testcase, d):
    """No crash, panic or fatal error in the instance's log."""
    log = d.log()
    for bad in ("Panic:", "Fatal:", "killed with signal", "segfault",
                "Internal login failure"):
        testcase.assertNotIn(bad, log)
