"""A throwaway Dovecot: its own dovecot.conf in a temp dir, a real
`dovecot -F` master on 127.0.0.1 at free ports, users from a passwd-file,
mail delivered over LMTP, stopped by its pid.

    d = Dovecot(workdir, users={"alice": {}})
    d.start()
    d.deliver("alice", message_bytes)
    p = d.pop3("alice")            # poplib.POP3, logged in
    ...
    d.stop()

Several instances may run at once; each has its own base_dir, ports and
logs. Everything lives under `workdir`, which the test runner keeps when a
test fails."""

import glob
import grp
import imaplib
import os
import poplib
import pwd
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time

from . import env
from . import sanitizers
from .ports import free_port, wait_port

MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"
DEFAULT_PASSWORD = "secret"


class DovecotError(Exception):
    pass


def _pid_dir():
    root = os.environ.get("POP3EXT_TEST_WORKDIR")
    return os.path.join(root, "pids") if root else None


def record_pid(pid):
    """Records a process group leader that a test started, so that
    tests/run.py can end it if the test dies without stopping it."""
    d = _pid_dir()
    if d:
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, str(pid)), "w").close()


def forget_pid(pid):
    d = _pid_dir()
    if d:
        try:
            os.unlink(os.path.join(d, str(pid)))
        except FileNotFoundError:
            pass


def read_text(path):
    """A log or other text file a server writes, as text ("" while it
    doesn't exist yet; undecodable bytes replaced)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def end_process(proc, request=None, timeout=20):
    """Ends a server a test started as a process group leader: request()
    asks it to stop (default: SIGTERM), and if it hasn't after timeout
    seconds its whole group is killed. Then its pid is forgotten."""
    if proc.poll() is None:
        if request is None:
            proc.send_signal(signal.SIGTERM)
        else:
            request()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # the server's own process group: it and the children it
            # started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    forget_pid(proc.pid)


def _userdb_value(value):
    value = str(value)
    if any(c in value for c in " \t\n"):
        raise ValueError("passwd-file userdb fields cannot hold spaces, "
                         "tabs or newlines: %r" % value)
    return value


def make_plugin_dir(path, with_project=True):
    """A mail_plugin_dir holding Dovecot's own modules and, unless
    with_project is false, the project's mail plugins from the build
    tree."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    for so in glob.glob(os.path.join(env.DOVECOT_MODULEDIR, "*.so")):
        os.symlink(so, os.path.join(path, os.path.basename(so)))
    if with_project:
        # copies: mail processes run as an unprivileged user, who may not
        # be able to read the build tree (a checkout under /root)
        for so in env.built_mail_plugins():
            dst = os.path.join(path, os.path.basename(so))
            if os.path.lexists(dst):
                os.unlink(dst)
            shutil.copy(so, dst)
            os.chmod(dst, 0o755)
    return path


class Dovecot:
    """One Dovecot instance.

    users: {name: {"password": str, "fields": {userdb field: value}}}
    plugins: load the project's modules through dovecot-pop3ext.conf (as an
      admin would); False gives stock Dovecot with otherwise the same config.
    plugin_settings: plugin {} settings.
    mail_plugins: further mail plugins for every protocol (e.g. "sqlbox"),
      set before dovecot-pop3ext.conf is included.
    extra_conf: text appended to dovecot.conf.
    pop3_clock_speed: run pop3 processes under libfaketime at this speed
      (e.g. 100: Dovecot's hard-coded 10-minute idle timeout takes 6 s).
    pop3_faketime: a libfaketime FAKETIME spec for pop3 processes (e.g.
      "+2d": they live two days ahead).
    protocols: which of pop3, imap, lmtp get listeners.
    ssl: also listen with pop3s/imaps, with a self-signed certificate.
    module_overlays: {"auth": [.so, ...], "doveadm": [...]}: modules for
      Dovecot's compile-time module dirs (/usr/lib/dovecot/modules/auth and
      .../doveadm). The master then runs in a private mount namespace where
      a copy of that dir with these modules added is bind-mounted over the
      real one; the system's dirs are never changed. doveadm() runs in the
      same namespace.
    auth_conf: text that replaces the passwd-file passdb and userdb blocks
      (e.g. passdb/userdb blocks of another driver); users= then only
      creates homes.
    """

    def __init__(self, workdir, name="dovecot", users=None, plugins=True,
                 plugin_settings=None, extra_conf="",
                 protocols=("pop3", "imap", "lmtp"),
                 mail_location="maildir:~/Maildir", ssl=False,
                 import_environment=(), environment=None,
                 module_overlays=None, mail_plugins=(),
                 pop3_clock_speed=None, pop3_faketime=None,
                 auth_conf=None):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.users = {}
        for user, spec in (users or {}).items():
            self.users[user] = {"password": spec.get("password",
                                                     DEFAULT_PASSWORD),
                                "fields": dict(spec.get("fields", {}))}
        self.plugins = plugins
        self.plugin_settings = dict(plugin_settings or {})
        self.extra_conf = extra_conf
        self.protocols = tuple(protocols)
        self.mail_location = mail_location
        self.ssl = ssl
        self.import_environment = tuple(import_environment)
        self.environment = dict(environment or {})
        self.module_overlays = dict(module_overlays or {})
        self.mail_plugins = tuple(mail_plugins)
        self.pop3_faketime = pop3_faketime or (
            "+0 x%s" % pop3_clock_speed if pop3_clock_speed else None)
        self.auth_conf = auth_conf
        self.uid = pwd.getpwnam(MAIL_USER).pw_uid
        self.gid = grp.getgrnam(MAIL_GROUP).gr_gid
        self.proc = None
        self.ports = {}
        # unix socket paths must stay under 108 bytes, whatever the work
        # dir's path; a link from the work dir leads there
        self.base_dir = tempfile.mkdtemp(prefix="dc.", dir="/tmp")
        os.chmod(self.base_dir, 0o755)
        os.symlink(self.base_dir, os.path.join(self.dir, "run"))
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.plugin_dir = make_plugin_dir(os.path.join(self.dir, "modules"),
                                          with_project=plugins)

    # -- configuration ---------------------------------------------------

    def home(self, user):
        return os.path.join(self.dir, "home", user)

    def write_passwd(self):
        lines = []
        for user, spec in self.users.items():
            home = self.home(user)
            if not os.path.isdir(home):
                os.makedirs(home)
                os.chown(home, self.uid, self.gid)
            extra = " ".join("userdb_%s=%s" % (k, _userdb_value(v))
                             for k, v in spec["fields"].items())
            lines.append("%s:{PLAIN}%s:%d:%d::%s::%s" % (
                user, spec["password"], self.uid, self.gid, home, extra))
        tmp = os.path.join(self.dir, "passwd.tmp")
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        # atomic, and a new mtime so that passwd-file re-reads it
        os.replace(tmp, os.path.join(self.dir, "passwd"))
        if self.running():
            # Dovecot's passwd-file checks the file at most once a second:
            # a lookup in the next second is sure to see the change
            now = time.time()
            time.sleep(int(now) + 1.01 - now)

    def add_user(self, user, password=DEFAULT_PASSWORD, **fields):
        self.users[user] = {"password": password, "fields": dict(fields)}
        self.write_passwd()

    def set_user_fields(self, user, **fields):
        """Changes a user's userdb fields (None removes one); takes effect
        with the user's next login."""
        spec = self.users.setdefault(user, {"password": DEFAULT_PASSWORD,
                                            "fields": {}})
        for k, v in fields.items():
            if v is None:
                spec["fields"].pop(k, None)
            else:
                spec["fields"][k] = v
        self.write_passwd()

    def _make_cert(self):
        key = os.path.join(self.dir, "ssl.key")
        cert = os.path.join(self.dir, "ssl.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return key, cert

    def _listener(self, service, name, ssl_name):
        port = self.ports.setdefault(name, free_port())
        ssl_port = self.ports.setdefault(ssl_name, free_port()) \
            if self.ssl else 0
        return ("service %s-login {\n"
                "  inet_listener %s {\n    address = 127.0.0.1\n"
                "    port = %d\n  }\n"
                "  inet_listener %s {\n    address = 127.0.0.1\n"
                "    port = %d\n  }\n}\n" % (service, name, port,
                                                ssl_name, ssl_port))

    def config_text(self):
        protos = [p for p in self.protocols]
        c = []
        c.append("# generated by tests/lib/pop3ext_harness/dovecot.py")
        c.append("protocols = %s" % " ".join(protos))
        c.append("listen = 127.0.0.1")
        c.append("base_dir = %s" % self.base_dir)
        c.append("state_dir = %s/state" % self.dir)
        c.append("instance_name = pop3ext-%s-%d" % (self.name, os.getpid()))
        c.append("log_path = %s" % self.log_path)
        c.append("mail_location = %s" % self.mail_location)
        c.append("mail_plugin_dir = %s" % self.plugin_dir)
        c.append("postmaster_address = postmaster@example.test")
        c.append("hostname = pop3ext.test")
        c.append("disable_plaintext_auth = no")
        c.append("auth_mechanisms = plain login")
        c.append("mail_max_userip_connections = 100")
        # ASan maps terabytes of shadow memory (not resident): no limit
        c.append("default_vsz_limit = %s"
                 % ("0" if sanitizers.enabled() else "2G"))
        c.append("login_greeting = Dovecot ready.")
        env_names = ["TZ", "CORE_OUTOFMEM", "CORE_ERROR", "LISTEN_PID",
                     "LISTEN_FDS"] + list(self.import_environment)
        environment = dict(self.environment)
        if sanitizers.enabled():
            # every process with the ASan runtime first (before any
            # LD_PRELOAD of the test's own), reports to <dir>/sanitizer
            san = sanitizers.environment(sanitizers.log_dir(self.dir))
            san["LD_PRELOAD"] = sanitizers.preload(
                environment.pop("LD_PRELOAD", None))
            environment.update(san)
        env_items = env_names + ["%s=%s" % kv
                                 for kv in environment.items()]
        c.append("import_environment = %s" % " ".join(env_items))
        if self.ssl:
            key, cert = self._make_cert()
            c.append("ssl = yes")
            c.append("ssl_cert = <%s" % cert)
            c.append("ssl_key = <%s" % key)
        else:
            c.append("ssl = no")
        passwd = os.path.join(self.dir, "passwd")
        if self.auth_conf is not None:
            c.append(self.auth_conf)
        else:
            c.append("passdb {\n  driver = passwd-file\n"
                     "  args = scheme=PLAIN username_format=%%u %s\n}"
                     % passwd)
            c.append("userdb {\n  driver = passwd-file\n"
                     "  args = username_format=%%u %s\n}" % passwd)
        if "pop3" in protos:
            c.append(self._listener("pop3", "pop3", "pop3s"))
        if "imap" in protos:
            c.append(self._listener("imap", "imap", "imaps"))
        if "lmtp" in protos:
            port = self.ports.setdefault("lmtp", free_port())
            c.append("service lmtp {\n  inet_listener lmtp {\n"
                     "    address = 127.0.0.1\n    port = %d\n  }\n}" % port)
        if self.mail_plugins:
            c.append("mail_plugins = $mail_plugins %s"
                     % " ".join(self.mail_plugins))
        if self.plugins:
            c.append("!include %s" % env.shipped_conf())
        if self.plugin_settings:
            c.append("plugin {")
            for k, v in self.plugin_settings.items():
                c.append("  %s = %s" % (k, v))
            c.append("}")
        if self.pop3_faketime:
            wrapper = os.path.join(self.dir, "pop3-faketime")
            with open(wrapper, "w") as f:
                f.write('#!/bin/sh\nexport LD_PRELOAD=%s FAKETIME="%s" '
                        'NO_FAKE_STAT=1\n'
                        'exec %s/pop3 "$@"\n' % (
                            sanitizers.preload(env.LIBFAKETIME),
                            self.pop3_faketime,
                            env.DOVECOT_LIBEXECDIR))
            os.chmod(wrapper, 0o755)
            c.append("service pop3 {\n  executable = %s\n}" % wrapper)
        c.append(self.extra_conf)
        return "\n".join(c) + "\n"

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())

    # -- process -----------------------------------------------------------

    def start(self, timeout=30):
        for attempt in range(3):
            self.write_passwd()
            self.write_config()
            out = open(os.path.join(self.dir, "master.out"), "ab")
            self.proc = subprocess.Popen(
                self._overlay_command(["dovecot", "-F", "-c",
                                       self.conf_path]),
                stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
            out.close()
            record_pid(self.proc.pid)
            ok = True
            for name, port in self.ports.items():
                if not self.ssl and name in ("pop3s", "imaps"):
                    continue
                if not wait_port(port, timeout,
                                 alive=lambda: self.proc.poll() is None):
                    ok = False
                    break
            if ok:
                return self
            self.stop()
            if "Address already in use" not in self.log():
                break
            # another program took a port meanwhile: new ports, new try
            self.ports = {}
        raise DovecotError("dovecot did not start; log:\n%s\n%s" % (
            self.log()[-4000:], self._read("master.out")[-2000:]))

    def _overlay_command(self, argv):
        """argv run in a private mount namespace with the module overlays
        bind-mounted, or argv itself when there are none."""
        if not self.module_overlays:
            return argv
        script = []
        args = []
        for sub, modules in sorted(self.module_overlays.items()):
            real = os.path.join(env.DOVECOT_MODULEDIR, sub)
            overlay = os.path.join(self.dir, "modules-" + sub)
            if not os.path.isdir(overlay):
                os.makedirs(overlay)
                os.chmod(overlay, 0o755)
                # files, not links: a link back into the real dir would
                # resolve to the bind mount itself
                for so in glob.glob(os.path.join(real, "*.so")):
                    shutil.copy(so, overlay)
                for so in modules:
                    shutil.copy(so, overlay)
                for n in os.listdir(overlay):
                    os.chmod(os.path.join(overlay, n), 0o755)
            args += [overlay, real]
            n = len(args)
            script.append('mount --bind "${%d}" "${%d}"' % (n - 1, n))
        script.append('shift %d; exec "$@"' % len(args))
        return (["unshare", "-m", "--propagation", "private", "sh", "-ec",
                 "; ".join(script), "overlay"] + args + list(argv))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """Stops the master; fails (DovecotError) if a process of this
        instance outlives it, naming the process, after killing it."""
        if self.proc is None:
            return
        end_process(self.proc, timeout=timeout)
        self.proc = None
        self._check_no_leftovers()

    def _own_processes(self):
        """{pid: cmdline} of the processes whose cwd is in this instance's
        directories (every Dovecot process: the master's children start in
        base_dir, mail processes move to the user's home)."""
        roots = tuple(os.path.realpath(d) + os.sep
                      for d in (self.dir, self.base_dir))
        found = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                cwd = os.readlink("/proc/%s/cwd" % name) + os.sep
                if not cwd.startswith(roots):
                    continue
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").strip()
            except OSError:
                # gone meanwhile (or not ours to read)
                continue
            found[int(name)] = cmd.decode("utf-8", "replace")
        return found

    def _check_no_leftovers(self, grace=3.0):
        # children get SIGTERM from the master as it exits: a moment to go
        deadline = time.monotonic() + grace
        left = self._own_processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self._own_processes()
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise DovecotError(
            "%s: process(es) outlived the instance's stop (killed now): %s"
            % (self.name, "; ".join("pid %d %s" % kv
                                    for kv in sorted(left.items()))))

    def cleanup(self):
        """Stops the instance and removes its base_dir (sockets)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def reload(self):
        self.write_passwd()
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    def _read(self, name):
        return read_text(os.path.join(self.dir, name))

    def log(self):
        return self._read("dovecot.log")

    def wait_log(self, needle, timeout=10):
        """Waits until the log contains needle; returns the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError("%r not in %s's log within %ss:\n%s" % (
            needle, self.name, timeout, self.log()[-3000:]))

    # -- clients -------------------------------------------------------------

    @property
    def pop3_port(self):
        return self.ports["pop3"]

    @property
    def pop3s_port(self):
        return self.ports["pop3s"]

    @property
    def imap_port(self):
        return self.ports["imap"]

    @property
    def lmtp_port(self):
        return self.ports["lmtp"]

    def deliver(self, user, message, sender="sender@example.test"):
        """Delivers one message (bytes) to user over LMTP; returns once the
        server has answered 250."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=60) as lmtp:
            refused = lmtp.sendmail(sender, [user], message)
        if refused:
            raise DovecotError("LMTP refused: %r" % refused)

    def deliver_many(self, user, messages, sender="sender@example.test"):
        """Delivers messages over one LMTP connection."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=60) as lmtp:
            for msg in messages:
                refused = lmtp.sendmail(sender, [user], msg)
                if refused:
                    raise DovecotError("LMTP refused: %r" % refused)

    def pop3(self, user, password=None, timeout=30):
        p = poplib.POP3("127.0.0.1", self.pop3_port, timeout=timeout)
        p.user(user)
        p.pass_(password or self.users[user]["password"])
        return p

    def imap(self, user, password=None):
        i = imaplib.IMAP4("127.0.0.1", self.imap_port)
        i.login(user, password or self.users[user]["password"])
        return i

    def doveadm(self, *args, check=True, input=None, faketime=None):
        """Runs doveadm against this instance; returns CompletedProcess with
        text output. faketime: a libfaketime spec (e.g. "+8d") to run it in
        the future."""
        # -k: keep the environment (LD_PRELOAD of libfaketime) through
        # doveadm's re-exec via doveconf
        argv = ["doveadm"] + (["-k"] if faketime else []) + \
            ["-c", self.conf_path] + list(args)
        if self.module_overlays:
            if self.running():
                # the master's mount namespace, with its module dirs
                argv = ["nsenter", "-m", "-t", str(self.proc.pid)] + argv
            else:
                argv = self._overlay_command(argv)
        run_env = None
        if faketime:
            # NO_FAKE_STAT: file times (maildir save dates) stay real
            run_env = dict(os.environ, LD_PRELOAD=env.LIBFAKETIME,
                           FAKETIME=faketime, NO_FAKE_STAT="1")
        if sanitizers.enabled():
            run_env = dict(run_env or os.environ, **sanitizers.environment(
                sanitizers.log_dir(self.dir)))
            run_env["LD_PRELOAD"] = sanitizers.preload(
                env.LIBFAKETIME if faketime else None)
        r = subprocess.run(argv, env=run_env,
                           input=input, capture_output=True, text=True,
                           timeout=300)
        if check and r.returncode != 0:
            raise DovecotError("doveadm %s failed (%d): %s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def copy_home(self, user, other, other_user=None):
        """Copies user's whole home (mail and indexes) to other instance, so
        both serve byte-identical mailboxes (same UIDVALIDITY and UIDs)."""
        src = self.home(user)
        dst = other.home(other_user or user)
        if os.path.exists(dst):
            shutil.rmtree(dst)
        shutil.copytree(src, dst, symlinks=True)
        for root, dirs, files in os.walk(dst):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), self.uid, self.gid)
        os.chown(dst, self.uid, self.gid)
