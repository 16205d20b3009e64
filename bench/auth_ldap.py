#!/usr/bin/env python3
"""Benchmark: logins per second through the pop3ext auth driver (LDAP)
against Dovecot's own ldap passdb/userdb (Debian's dovecot-ldap), both
against the same slapd with the same 1,000 users, in one run.

Both sides do the same directory work for a login: search the user's entry
with a service account (reading the pop3ext* policy attributes), then bind
as the user to check the password (Dovecot: auth_bind = yes, pass_attrs
with userdb_ fields and userdb prefetch; pop3ext: password_check = ldap).

Two loads, rounds alternating between the two servers, each measured as
logins per second of wall time and as logins per CPU second used by the
Dovecot instance (all its processes) and slapd together - the second is
steadier on a machine that runs other work:
- auth: SASL PLAIN authentications straight over Dovecot's auth-client
  socket (the protocol login processes speak), 16 in flight: the passdb
  alone;
- pop3: whole POP3 logins (USER, PASS, QUIT) from 8 client processes:
  login process (Dovecot's high-performance mode), passdb, userdb and the
  pop3 process.

A third column, for reference: Dovecot's ldap driver with `blocking = yes`,
which runs in auth-worker processes (as pop3ext's PAM half does) instead of
asynchronously in the auth process.

Usage (as root, after `bash scripts/setup.sh` and `make check`):
  python3 bench/auth_ldap.py [--users 1000] [--seconds 8] [--rounds 3]
Prints a Markdown table for docs/PERFORMANCE.md."""

import argparse
import base64
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "lib"))
from pop3ext_harness import Dovecot, env  # noqa: E402
from pop3ext_harness.slapd import (Slapd, PEOPLE, SERVICE_DN,  # noqa: E402
                                   SERVICE_PASSWORD)

ATTRS = {"pop3extOnDele": ("pop3ext_on_dele", "hide"),
         "pop3extMaxAge": ("pop3ext_max_age", "365d"),
         "pop3extLegalHold": ("pop3ext_legal_hold", "FALSE")}
BASE_CONF = """
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
mail_home = %s/%%u
mail_uid = nobody
mail_gid = nogroup
# Dovecot's "high-performance" login mode, so that a login costs a pop3
# process but no new pop3-login process
service pop3-login {
  service_count = 0
  process_min_avail = 2
}
"""


def user_password(i):
    return "user%04d" % i, "pw-%04d" % i


def pop3ext_side(workdir, slapd):
    conf = os.path.join(workdir, "pop3ext-auth.conf")
    with open(conf, "w") as f:
        f.write("password_check = ldap\n"
                "ldap_uris = %s\nldap_base = %s\n"
                "ldap_bind_dn = %s\nldap_bind_password = %s\n"
                "ldap_fields = %s\n" % (
                    slapd.uri, PEOPLE, SERVICE_DN, SERVICE_PASSWORD,
                    " ".join("%s=%s" % (a, f) for a, (f, _) in
                             ATTRS.items())))
    os.chmod(conf, 0o600)
    return ("passdb {\n  driver = pop3ext\n  args = %s\n}\n"
            "userdb {\n  driver = pop3ext\n  args = %s\n}\n" % (conf, conf))


def dovecot_ldap_side(workdir, slapd, blocking=False):
    conf = os.path.join(workdir, "dovecot-ldap%s.conf.ext" %
                        ("-blocking" if blocking else ""))
    with open(conf, "w") as f:
        if blocking:
            f.write("blocking = yes\n")
        f.write("uris = %s\ndn = %s\ndnpass = %s\nauth_bind = yes\n"
                "base = %s\nscope = subtree\n"
                "pass_filter = (uid=%%u)\n"
                "pass_attrs = uid=user,%s\n"
                "user_filter = (uid=%%u)\nuser_attrs = %s\n"
                "iterate_filter = (uid=*)\niterate_attrs = uid=user\n" % (
                    slapd.uri, SERVICE_DN, SERVICE_PASSWORD, PEOPLE,
                    ",".join("%s=userdb_%s" % (a, f) for a, (f, _) in
                             ATTRS.items()),
                    ",".join("%s=%s" % (a, f) for a, (f, _) in
                             ATTRS.items())))
    os.chmod(conf, 0o600)
    return ("passdb {\n  driver = ldap\n  args = %s\n}\n"
            "userdb {\n  driver = prefetch\n}\n"
            "userdb {\n  driver = ldap\n  args = %s\n}\n" % (conf, conf))


def start_dovecot(workdir, name, auth_conf):
    d = Dovecot(workdir, name=name, plugins=False, protocols=("pop3",),
                module_overlays={"auth": [env.built(
                    "auth/.libs/libauthdb_pop3ext.so")]},
                auth_conf=auth_conf, extra_conf="")
    homes = os.path.join(d.dir, "home")
    os.makedirs(homes)
    os.chown(homes, d.uid, d.gid)
    d.extra_conf = BASE_CONF % homes
    return d.start()


# -- CPU time ------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command: state ppid pgrp session ... utime(14) stime(15)
    # cutime(16) cstime(17), counted from field 3
    return {"session": int(fields[3]), "utime": int(fields[11]),
            "stime": int(fields[12]), "cutime": int(fields[13]),
            "cstime": int(fields[14])}


def cpu_seconds(d, slapd):
    """CPU time used so far by the Dovecot instance (its master, every
    process of its session, and the children it has reaped) and slapd."""
    ticks = 0
    master = d.proc.pid
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            st = _stat(int(name))
        except (FileNotFoundError, ProcessLookupError):
            continue
        if st["session"] == master:
            ticks += st["utime"] + st["stime"]
            if int(name) == master:
                ticks += st["cutime"] + st["cstime"]
    st = _stat(slapd.proc.pid)
    ticks += st["utime"] + st["stime"]
    return ticks / CLK_TCK


# -- auth-client: the passdb alone --------------------------------------------

def auth_round(d, nusers, seconds, inflight=16):
    """PLAIN authentications over one auth-client connection with
    `inflight` requests outstanding; returns (count, failures)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(d.base_dir, "auth-client"))
    s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
    buf = b""
    while b"\nDONE\n" not in buf:
        buf += s.recv(65536)
    buf = buf.split(b"\nDONE\n", 1)[1]
    next_id = 1
    outstanding = 0
    done = failed = 0
    rnd = random.Random(1)
    deadline = time.monotonic() + seconds

    def send():
        nonlocal next_id, outstanding
        user, pw = user_password(rnd.randrange(nusers))
        resp = base64.b64encode(b"\0%s\0%s" % (user.encode(), pw.encode()))
        s.sendall(b"AUTH\t%d\tPLAIN\tservice=pop3\tsecured\t"
                  b"rip=127.0.0.1\tlip=127.0.0.1\tresp=%s\n"
                  % (next_id, resp))
        next_id += 1
        outstanding += 1

    for _ in range(inflight):
        send()
    while outstanding > 0:
        while b"\n" not in buf:
            buf += s.recv(65536)
        line, buf = buf.split(b"\n", 1)
        outstanding -= 1
        if line.startswith(b"OK\t"):
            done += 1
        else:
            failed += 1
        if time.monotonic() < deadline:
            send()
    s.close()
    return done, failed


# -- POP3: the whole login ------------------------------------------------------

def pop3_worker(args):
    port, nusers, seconds, seed = args
    rnd = random.Random(seed)
    done = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        user, pw = user_password(rnd.randrange(nusers))
        s = socket.create_connection(("127.0.0.1", port), 30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER %s\r\n" % user.encode())
        f.readline()
        s.sendall(b"PASS %s\r\n" % pw.encode())
        r = f.readline()
        if r.startswith(b"+OK"):
            s.sendall(b"QUIT\r\n")
            f.readline()
            done += 1
        else:
            failed += 1
        f.close()
        s.close()
    return done, failed


def pop3_round(pool, d, nusers, seconds, clients=8):
    start = time.monotonic()
    results = pool.map(pop3_worker, [(d.pop3_port, nusers, seconds, i)
                                     for i in range(clients)])
    elapsed = time.monotonic() - start
    return (sum(r[0] for r in results), sum(r[1] for r in results),
            elapsed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-auth.", dir="/tmp")
    os.chmod(workdir, 0o755)
    users = {}
    for i in range(args.users):
        u, pw = user_password(i)
        users[u] = {"password": pw,
                    "attrs": {a: v for a, (_, v) in ATTRS.items()}}
    slapd = Slapd(workdir, users=users, debug="0")
    slapd.start()
    sides = {}
    pool = multiprocessing.Pool(8)
    try:
        sides["dovecot ldap"] = start_dovecot(
            workdir, "stock", dovecot_ldap_side(workdir, slapd))
        sides["pop3ext"] = start_dovecot(
            workdir, "pop3ext", pop3ext_side(workdir, slapd))
        sides["dovecot ldap blocking"] = start_dovecot(
            workdir, "stock-blocking",
            dovecot_ldap_side(workdir, slapd, blocking=True))
        # warm up: workers, connections, caches of the OS
        for d in sides.values():
            auth_round(d, args.users, 1)
            pop3_round(pool, d, args.users, 1)

        auth_rates = {k: [] for k in sides}
        pop3_rates = {k: [] for k in sides}
        auth_cpu = {k: [] for k in sides}
        pop3_cpu = {k: [] for k in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                start = time.monotonic()
                cpu = cpu_seconds(sides[name], slapd)
                done, failed = auth_round(sides[name], args.users,
                                          args.seconds)
                elapsed = time.monotonic() - start
                cpu = cpu_seconds(sides[name], slapd) - cpu
                assert failed == 0, (name, failed)
                auth_rates[name].append(done / elapsed)
                auth_cpu[name].append(done / cpu)
            for name in order:
                cpu = cpu_seconds(sides[name], slapd)
                done, failed, elapsed = pop3_round(pool, sides[name],
                                                   args.users, args.seconds)
                cpu = cpu_seconds(sides[name], slapd) - cpu
                assert failed == 0, (name, failed)
                pop3_rates[name].append(done / elapsed)
                pop3_cpu[name].append(done / cpu)
            sys.stderr.write("round %d: auth %s; pop3 %s\n" % (
                r + 1,
                ", ".join("%s %.0f/s" % (k, v[-1])
                          for k, v in auth_rates.items()),
                ", ".join("%s %.0f/s" % (k, v[-1])
                          for k, v in pop3_rates.items())))
    finally:
        pool.close()
        pool.join()
        for d in sides.values():
            d.cleanup()
        slapd.stop()

    def row(label, rates):
        a = statistics.median(rates["dovecot ldap"])
        b = statistics.median(rates["pop3ext"])
        c = statistics.median(rates["dovecot ldap blocking"])
        spread = ", ".join("%.2fx" % (y / x) for x, y in
                           zip(rates["dovecot ldap"], rates["pop3ext"]))
        return "| %s | %.0f | %.0f | **%.2fx** (rounds: %s) | %.0f |" % (
            label, a, b, b / a, spread, c)

    print("| measure (%s, %d users, %d rounds of %gs) | "
          "Dovecot ldap | pop3ext | ratio | Dovecot ldap, blocking = yes |"
          % (time.strftime("%Y-%m-%d"), args.users, args.rounds,
             args.seconds))
    print("|---|---|---|---|---|")
    print(row("auth-client PLAIN, 16 in flight (passdb): logins/s",
              auth_rates))
    print(row("the same: logins per CPU second (Dovecot + slapd)",
              auth_cpu))
    print(row("POP3 USER/PASS/QUIT, 8 clients (passdb+userdb+pop3): "
              "logins/s", pop3_rates))
    print(row("the same: logins per CPU second (Dovecot + slapd)",
              pop3_cpu))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
