"""Throwaway PostgreSQL 15 servers for the tests: initdb and postgres run
as the postgres user (the server refuses root) in a directory of the
test's work dir, listening on 127.0.0.1 at a free port.

    pg = Postgres(workdir)              # initdb + start
    pg.psql("CREATE DATABASE mail")
    pg.conninfo("mail")                 # "host=127.0.0.1 port=N ..."
    pg.cleanup()

    pair = PostgresPair(workdir)        # primary + synchronous replica
    pair.conninfo("mail")               # both hosts, read-write target
    pair.fail_over()                    # SIGKILL primary, promote replica

The server runs in its own process group (recorded, so that tests/run.py
ends it if a test dies without stopping it)."""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from .dovecot import record_pid, end_process, read_text
from .ports import free_port

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "postgres"


class PostgresError(Exception):
    pass


def _as_postgres(argv, **kwargs):
    return subprocess.run(["runuser", "-u", PG_USER, "--"] + argv,
                          capture_output=True, text=True, timeout=120,
                          **kwargs)


class Postgres:
    """One server. replica_of: another Postgres to stream from (a hot
    standby made with pg_basebackup); otherwise a new cluster."""

    def __init__(self, workdir, name="pg", replica_of=None, start=True,
                 settings=None):
        pw = pwd.getpwnam(PG_USER)
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.proc = None
        self.settings = dict(settings or {})
        if replica_of is None:
            self._initdb()
        else:
            self._basebackup(replica_of)
        if start:
            self.start()

    def _initdb(self):
        r = _as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data,
                          "-U", PG_USER, "-A", "trust", "-E", "UTF8",
                          "--locale=C", "--no-sync"])
        if r.returncode != 0:
            raise PostgresError("initdb failed: %s%s" % (r.stdout, r.stderr))
        self._configure()

    def _basebackup(self, primary):
        r = _as_postgres([os.path.join(PG_BIN, "pg_basebackup"),
                          "-h", "127.0.0.1", "-p", str(primary.port),
                          "-U", PG_USER, "-D", self.data, "-R",
                          "-X", "stream", "-c", "fast"])
        if r.returncode != 0:
            raise PostgresError("pg_basebackup failed: %s%s" % (r.stdout,
                                                               r.stderr))
        self._configure()

    def _configure(self):
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            # TCP only: a socket path under the work dir may exceed the
            # 107 bytes a unix socket path can have
            "unix_socket_directories": "''",
            # the tests kill processes, not machines
            "fsync": "off",
            "full_page_writes": "on",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        conf.update(self.settings)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# pop3ext_harness\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))

    # -- process ---------------------------------------------------------

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["runuser", "-u", PG_USER, "--",
             os.path.join(PG_BIN, "postgres"), "-D", self.data],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        record_pid(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            r = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1",
                                "-p", str(self.port)])
            if r.returncode == 0:
                return self
            time.sleep(0.05)
        raise PostgresError("postgres %s did not start:\n%s" % (
            self.name, self.log()[-3000:]))

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def kill(self):
        """SIGKILL the server, as by a crash: no shutdown, no flush."""
        if self.proc is None:
            return
        # backends leave when they see the postmaster gone
        end_process(self.proc, lambda: self._signal(signal.SIGKILL),
                    timeout=30)
        self.proc = None

    def _signal(self, sig):
        try:
            os.kill(self.postmaster_pid(), sig)
        except (FileNotFoundError, ProcessLookupError):
            pass

    def stop(self, timeout=30):
        if self.proc is None:
            return
        # SIGINT: fast shutdown
        end_process(self.proc, lambda: self._signal(signal.SIGINT),
                    timeout=timeout)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def promote(self):
        r = _as_postgres([os.path.join(PG_BIN, "pg_ctl"), "promote",
                          "-D", self.data, "-w", "-t", "60"])
        if r.returncode != 0:
            raise PostgresError("promote failed: %s%s" % (r.stdout,
                                                          r.stderr))

    def log(self):
        return read_text(self.log_path)

    # -- clients -----------------------------------------------------------

    def conninfo(self, dbname="postgres", user=PG_USER):
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (
            self.port, dbname, user)

    def psql(self, sql, dbname="postgres", check=True):
        """Runs SQL; returns the rows as lists of strings."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-c", sql,
                            self.conninfo(dbname)],
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise PostgresError("psql %r failed: %s" % (sql, r.stderr))
        return [line.split("\t") for line in r.stdout.splitlines()
                if line != ""]

    def create_database(self, name, owner=None):
        if owner is not None:
            self.psql("CREATE ROLE %s LOGIN" % owner)
            self.psql("CREATE DATABASE %s OWNER %s" % (name, owner))
        else:
            self.psql("CREATE DATABASE %s" % name)
        return name


class PostgresPair:
    """A primary and a hot standby that it replicates to synchronously
    (synchronous_commit = remote_apply): a commit returns only once the
    standby has applied it, so failing over loses no committed row."""

    def __init__(self, workdir, name="pgpair"):
        self.primary = Postgres(workdir, name=name + "-primary")
        self.replica = None
        try:
            self.replica = Postgres(workdir, name=name + "-replica",
                                    replica_of=self.primary)
            self.primary.psql("ALTER SYSTEM SET synchronous_standby_names "
                              "= '*'")
            self.primary.psql("ALTER SYSTEM SET synchronous_commit = "
                              "'remote_apply'")
            self.primary.psql("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = self.primary.psql("SELECT sync_state FROM "
                                         "pg_stat_replication")
                if rows == [["sync"]]:
                    break
                time.sleep(0.05)
            else:
                raise PostgresError("the replica did not become a "
                                    "synchronous standby")
        except Exception:
            self.cleanup()
            raise

    def conninfo(self, dbname="postgres", user=PG_USER):
        """Both servers; libpq picks the one that accepts writes."""
        return ("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=%s user=%s "
                "target_session_attrs=read-write" % (
                    self.primary.port, self.replica.port, dbname, user))

    def wait_replayed(self, dbname, sql, expected, timeout=30):
        """Waits until the replica answers sql with expected rows."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.replica.psql(sql, dbname) == expected:
                return
            time.sleep(0.05)
        raise PostgresError("replica did not catch up")

    def fail_over(self):
        """The primary crashes; the replica is promoted."""
        self.primary.kill()
        self.replica.promote()

    def cleanup(self):
        for pg in (self.replica, self.primary):
            if pg is not None:
                pg.cleanup()


class PostgresPerClass:
    """A mixin for a TestCase class: one PostgreSQL server (cls.pg, with a
    login role dovecot) for the whole class, in a work dir of its own;
    each test makes its own database, named with next_name()."""

    pg_dir_prefix = "pgsql-class."

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from .case import WORK_ROOT
        root = WORK_ROOT or tempfile.gettempdir()
        os.makedirs(root, exist_ok=True)
        cls.classdir = tempfile.mkdtemp(prefix=cls.pg_dir_prefix, dir=root)
        os.chmod(cls.classdir, 0o755)
        cls.pg = Postgres(cls.classdir)
        cls.pg.psql("CREATE ROLE dovecot LOGIN")
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()
        shutil.rmtree(cls.classdir, ignore_errors=True)
        super().tearDownClass()

    def next_name(self, prefix):
        """A name no other test of the class has: prefix1, prefix2, ..."""
        type(self).counter += 1
        return "%s%d" % (prefix, self.counter)
