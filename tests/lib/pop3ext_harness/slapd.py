"""A throwaway OpenLDAP slapd: its own config and database in a temp dir,
the project's schema (auth/schema/) loaded, listening on 127.0.0.1 at free
ports, stopped by its pid.

    s = Slapd(workdir, users={"alice": {"password": "pw",
                                        "attrs": {"pop3extOnDele": "hide"}}})
    s.start()
    s.uri                      # ldap://127.0.0.1:<port>
    s.add_user("bob", "pw")    # over LDAP, while running
    s.kill(); s.start()        # same ports, same data
    s.pause(); s.resume()      # SIGSTOP/SIGCONT: a server that hangs
    s.stop()

Entries: dc=example,dc=test, ou=people (users uid=<name>), ou=services
(cn=dovecot, the service account, password SERVICE_PASSWORD). Anonymous
clients can bind (auth) but read nothing; the service account and each user
(its own entry) can read.
"""

import os
import shutil
import signal
import subprocess
import time

from . import env
from .dovecot import record_pid, forget_pid, end_process, read_text
from .ports import free_port, wait_port

SUFFIX = "dc=example,dc=test"
ROOT_DN = "cn=admin," + SUFFIX
ROOT_PW = "root-secret"
PEOPLE = "ou=people," + SUFFIX
SERVICE_DN = "cn=dovecot,ou=services," + SUFFIX
SERVICE_PASSWORD = "service-secret"
SYSTEM_SCHEMA = ("core", "cosine", "inetorgperson", "nis")


class SlapdError(Exception):
    pass


def schema_dir():
    return os.path.join(env.SRCDIR, "auth", "schema")


def user_dn(name):
    return "uid=%s,%s" % (name, PEOPLE)


def _ldif_value(attr, value):
    value = str(value)
    if (value and (value[0] in " :<" or value[-1] == " ")) or \
            any(ord(c) < 0x20 or ord(c) > 0x7e for c in value):
        import base64
        return "%s:: %s" % (attr, base64.b64encode(
            value.encode("utf-8", "surrogateescape")).decode())
    return "%s: %s" % (attr, value)


def user_ldif(name, password, attrs=None, pop3ext=True):
    """An inetOrgPerson entry (with the pop3extUser class) as LDIF."""
    lines = ["dn: " + user_dn(name), "objectClass: inetOrgPerson"]
    if pop3ext:
        lines.append("objectClass: pop3extUser")
    lines += [_ldif_value("uid", name), "cn: " + name, "sn: " + name]
    if password is not None:
        lines.append(_ldif_value("userPassword", password))
    for attr, value in (attrs or {}).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            lines.append(_ldif_value(attr, v))
    return "\n".join(lines) + "\n"


def base_ldif():
    return (
        "dn: %s\nobjectClass: dcObject\nobjectClass: organization\n"
        "dc: example\no: Example\n\n"
        "dn: %s\nobjectClass: organizationalUnit\nou: people\n\n"
        "dn: ou=services,%s\nobjectClass: organizationalUnit\nou: services\n\n"
        "dn: %s\nobjectClass: applicationProcess\n"
        "objectClass: simpleSecurityObject\ncn: dovecot\nuserPassword: %s\n"
        % (SUFFIX, PEOPLE, SUFFIX, SERVICE_DN, SERVICE_PASSWORD))


ACCESS = [
    "to attrs=userPassword by self =xw by anonymous auth by * none",
    "to dn.base=\"\" by * read",
    "to * by dn.exact=\"%s\" read by self read by users read "
    "by anonymous auth" % SERVICE_DN,
]


# service_reads_passwords=True: the service account may also read the
# password hashes (for a passdb's credentials lookups)
ACCESS_SERVICE_READS_PASSWORDS = [
    "to attrs=userPassword by dn.exact=\"%s\" read by self =xw "
    "by anonymous auth by * none" % SERVICE_DN] + ACCESS[1:]


# Like a production directory: 500 entries at most per search, but the
# service account may page through all users (what the driver's user
# listing does).
LIMITS = 'dn.exact="%s" size.prtotal=unlimited' % SERVICE_DN


class Slapd:
    """One slapd.

    users: {name: {"password": str, "attrs": {attribute: value or [values]}}}
    schema_format: "ldif" loads auth/schema/pop3ext.ldif into cn=config
      (slapd -F); "schema" loads auth/schema/pop3ext.schema via slapd.conf
      (slapd -f).
    tls: (cert, key) to serve ldaps:// (ldaps_uri) and StartTLS.
    ppolicy: load the password policy overlay with a default policy
      (cn=default,ou=policies) that honours pwdReset and lockout.
    debug: slapd -d level ("stats" logs each connection and operation).
    idle_timeout: seconds after which slapd closes an idle connection.
    service_reads_passwords: the service account may read userPassword.
    """

    def __init__(self, workdir, name="slapd", users=None, schema_format="ldif",
                 tls=None, ppolicy=False, debug="stats", extra_ldif="",
                 idle_timeout=None, service_reads_passwords=False):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.users = dict(users or {})
        self.schema_format = schema_format
        self.tls = tls
        self.ppolicy = ppolicy
        self.debug = debug
        self.extra_ldif = extra_ldif
        self.idle_timeout = idle_timeout
        self.access = (ACCESS_SERVICE_READS_PASSWORDS
                       if service_reads_passwords else ACCESS)
        self.port = None
        self.ldaps_port = None
        self.proc = None
        self.log_path = os.path.join(self.dir, "slapd.log")
        self._configured = False

    # -- configuration ---------------------------------------------------

    @property
    def uri(self):
        return "ldap://127.0.0.1:%d" % self.port

    @property
    def ldaps_uri(self):
        return "ldaps://127.0.0.1:%d" % self.ldaps_port

    def _db_config(self):
        """The mdb database settings as (name, value) pairs."""
        items = [("suffix", SUFFIX), ("rootdn", ROOT_DN),
                 ("rootpw", ROOT_PW),
                 ("directory", os.path.join(self.dir, "data")),
                 ("maxsize", "104857600")]
        return items

    def _write_ldif_config(self):
        conf = os.path.join(self.dir, "slapd.d")
        os.makedirs(conf)
        ldif = ["dn: cn=config", "objectClass: olcGlobal", "cn: config",
                "olcPidFile: %s/slapd.pid" % self.dir]
        if self.tls:
            ldif += ["olcTLSCertificateFile: %s" % self.tls[0],
                     "olcTLSCertificateKeyFile: %s" % self.tls[1]]
        if self.idle_timeout:
            ldif.append("olcIdleTimeout: %d" % self.idle_timeout)
        ldif += ["", "dn: cn=module{0},cn=config",
                 "objectClass: olcModuleList", "cn: module{0}",
                 "olcModulePath: /usr/lib/ldap", "olcModuleLoad: back_mdb"]
        if self.ppolicy:
            ldif.append("olcModuleLoad: ppolicy")
        ldif += ["", "dn: cn=schema,cn=config",
                 "objectClass: olcSchemaConfig", "cn: schema", ""]
        for s in SYSTEM_SCHEMA:
            ldif += ["include: file:///etc/ldap/schema/%s.ldif" % s, ""]
        ldif += ["include: file://%s/pop3ext.ldif" % schema_dir(), ""]
        ldif += ["dn: olcDatabase={-1}frontend,cn=config",
                 "objectClass: olcDatabaseConfig",
                 "objectClass: olcFrontendConfig",
                 "olcDatabase: {-1}frontend", "olcSizeLimit: 500", "",
                 "dn: olcDatabase={0}config,cn=config",
                 "objectClass: olcDatabaseConfig",
                 "olcDatabase: {0}config",
                 "olcAccess: {0}to * by * none", "",
                 "dn: olcDatabase={1}mdb,cn=config",
                 "objectClass: olcDatabaseConfig",
                 "objectClass: olcMdbConfig", "olcDatabase: {1}mdb",
                 "olcSuffix: " + SUFFIX, "olcRootDN: " + ROOT_DN,
                 "olcRootPW: " + ROOT_PW,
                 "olcDbDirectory: %s/data" % self.dir,
                 "olcDbMaxSize: 104857600",
                 "olcDbIndex: objectClass eq", "olcDbIndex: uid eq",
                 "olcLimits: " + LIMITS]
        for i, a in enumerate(self.access):
            ldif.append("olcAccess: {%d}%s" % (i, a))
        if self.ppolicy:
            ldif += ["", "dn: olcOverlay={0}ppolicy,olcDatabase={1}mdb,"
                     "cn=config", "objectClass: olcOverlayConfig",
                     "objectClass: olcPPolicyConfig",
                     "olcOverlay: {0}ppolicy",
                     "olcPPolicyDefault: cn=default,ou=policies," + SUFFIX,
                     "olcPPolicyUseLockout: TRUE"]
        path = os.path.join(self.dir, "config.ldif")
        with open(path, "w") as f:
            f.write("\n".join(ldif) + "\n")
        self._run(["slapadd", "-n0", "-F", conf, "-l", path])
        return ["-F", conf]

    def _write_schema_config(self):
        c = ["pidfile %s/slapd.pid" % self.dir]
        for s in SYSTEM_SCHEMA:
            c.append("include /etc/ldap/schema/%s.schema" % s)
        c.append("include %s/pop3ext.schema" % schema_dir())
        if self.tls:
            c += ["TLSCertificateFile %s" % self.tls[0],
                  "TLSCertificateKeyFile %s" % self.tls[1]]
        if self.idle_timeout:
            c.append("idletimeout %d" % self.idle_timeout)
        c += ["modulepath /usr/lib/ldap", "moduleload back_mdb"]
        if self.ppolicy:
            c.append("moduleload ppolicy")
        c += ["sizelimit 500", "database mdb"]
        c += ["%s %s" % kv for kv in self._db_config()]
        c += ["index objectClass eq", "index uid eq", "limits " + LIMITS]
        c += ["access %s" % a for a in self.access]
        if self.ppolicy:
            c += ["overlay ppolicy",
                  "ppolicy_default cn=default,ou=policies," + SUFFIX,
                  "ppolicy_use_lockout"]
        path = os.path.join(self.dir, "slapd.conf")
        with open(path, "w") as f:
            f.write("\n".join(c) + "\n")
        return ["-f", path]

    def _data_ldif(self):
        parts = [base_ldif()]
        if self.ppolicy:
            parts.append(
                "dn: ou=policies,%s\nobjectClass: organizationalUnit\n"
                "ou: policies\n\n"
                "dn: cn=default,ou=policies,%s\nobjectClass: device\n"
                "objectClass: pwdPolicy\ncn: default\n"
                "pwdAttribute: userPassword\npwdMustChange: TRUE\n"
                "pwdLockout: TRUE\npwdMaxFailure: 0\n" % (SUFFIX, SUFFIX))
        for user, spec in self.users.items():
            parts.append(user_ldif(user, spec.get("password"),
                                   spec.get("attrs"),
                                   spec.get("pop3ext", True)))
        if self.extra_ldif:
            parts.append(self.extra_ldif)
        return "\n".join(p.rstrip("\n") + "\n" for p in parts)

    def configure(self):
        os.makedirs(os.path.join(self.dir, "data"))
        if self.schema_format == "ldif":
            self.conf_args = self._write_ldif_config()
        elif self.schema_format == "schema":
            self.conf_args = self._write_schema_config()
        else:
            raise ValueError(self.schema_format)
        path = os.path.join(self.dir, "data.ldif")
        with open(path, "w") as f:
            f.write(self._data_ldif())
        self._run(["slapadd", "-q"] + self.conf_args + ["-b", SUFFIX,
                                                         "-l", path])
        self._configured = True

    def _run(self, argv, input=None):
        r = subprocess.run(argv, capture_output=True, text=True,
                           input=input, timeout=120)
        if r.returncode != 0:
            raise SlapdError("%s failed (%d): %s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    # -- process -----------------------------------------------------------

    def start(self, timeout=30):
        if not self._configured:
            self.configure()
        for attempt in range(3):
            if self.port is None:
                self.port = free_port()
                self.ldaps_port = free_port() if self.tls else None
            urls = ["ldap://127.0.0.1:%d/" % self.port]
            if self.tls:
                urls.append("ldaps://127.0.0.1:%d/" % self.ldaps_port)
            out = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                ["slapd", "-d", self.debug, "-h", " ".join(urls)] +
                self.conf_args, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
            out.close()
            record_pid(self.proc.pid)
            ports = [self.port] + ([self.ldaps_port] if self.tls else [])
            if all(wait_port(p, timeout,
                             alive=lambda: self.proc.poll() is None)
                   for p in ports):
                return self
            self.stop()
            if "Address already in use" not in self.log() or attempt == 2:
                break
            # another program took the port meanwhile
            self.port = None
        raise SlapdError("slapd did not start; log:\n%s" %
                         self.log()[-4000:])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        if self.proc is None:
            return

        def request():
            # a stopped (SIGSTOP) slapd must run to see the SIGTERM
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.send_signal(signal.SIGTERM)
        end_process(self.proc, request, timeout=timeout)
        self.proc = None

    def kill(self):
        """Ends slapd at once (SIGKILL), as a crash would."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        forget_pid(self.proc.pid)
        self.proc = None
        # mdb may keep a stale reader slot; slapd copes on restart

    def pause(self):
        """SIGSTOP: the server accepts connections (the kernel does) but
        answers nothing - a hung directory."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def cleanup(self):
        self.stop()

    def log(self):
        return read_text(self.log_path)

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    # -- data ----------------------------------------------------------------

    def ldap(self, tool, ldif, *args):
        return self._run([tool, "-x", "-H", self.uri, "-D", ROOT_DN,
                          "-w", ROOT_PW] + list(args), input=ldif)

    def add(self, ldif):
        return self.ldap("ldapadd", ldif)

    def modify(self, ldif):
        return self.ldap("ldapmodify", ldif)

    def add_user(self, name, password, attrs=None):
        self.users[name] = {"password": password, "attrs": attrs or {}}
        return self.add(user_ldif(name, password, attrs))

    def set_attrs(self, name, **attrs):
        """Replaces (or, with None, deletes) attributes of a user entry."""
        lines = ["dn: " + user_dn(name), "changetype: modify"]
        for attr, value in attrs.items():
            if value is None:
                lines += ["delete: " + attr, "-"]
            else:
                values = value if isinstance(value, (list, tuple)) \
                    else [value]
                lines.append("replace: " + attr)
                lines += [_ldif_value(attr, v) for v in values]
                lines.append("-")
        return self.modify("\n".join(lines) + "\n")

    def search(self, base, filter="(objectClass=*)", *attrs):
        return self._run(["ldapsearch", "-x", "-LLL", "-H", self.uri,
                          "-D", ROOT_DN, "-w", ROOT_PW, "-b", base,
                          filter] + list(attrs)).stdout
