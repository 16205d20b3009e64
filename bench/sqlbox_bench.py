#!/usr/bin/env python3
"""Benchmarks of the sqlbox storage against Dovecot's own sdbox, in one run,
on the same machine, with the same messages (docs/PERFORMANCE.md, "Storage
adapter", has the figures and how to read them). Not part of the tests.

  python3 bench/sqlbox_bench.py                 # everything
  python3 bench/sqlbox_bench.py --only pop3,lmtp --messages 2000

Measures, each as sqlbox / sdbox:
  lmtp      LMTP delivery throughput: the mailbox of --messages messages
            (2-200 KB, fixed seed) delivered to each storage, in turns of
            --batch messages over one LMTP connection per batch
  pop3      one POP3 session (login, UIDL, RETR of every message, QUIT) on
            that mailbox: wall time seen by the client, and CPU time of the
            server side (the pop3 process; with PostgreSQL also the
            database backend serving it)
  rebuild   the first POP3 session (login, UIDL, QUIT) after the index
            files of a --big-messages mailbox were deleted (sqlbox rebuilds
            from the database) against the same session on sdbox with a
            warm index

Run as root from a built tree (bash scripts/setup.sh)."""

import argparse
import json
import os
import random
import shutil
import signal
import smtplib
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

from pop3ext_harness import Dovecot, mail  # noqa: E402
from pop3ext_harness.postgres import Postgres, PG_USER  # noqa: E402
from pop3ext_harness.sqlbox import (sqlbox_dovecot, with_temp_dir,  # noqa
                                    remove_index_files)

POP3_WRAPPER = """#!/bin/bash
# runs pop3 and records its CPU time (bash's times: user and system of the
# children) when it exits
/usr/lib/dovecot/pop3 "$@"
rc=$?
times > %s/rusage.$$
exit $rc
"""


def parse_times(text):
    """bash `times` output: second line is the children's user/system."""
    def secs(v):
        m, s = v.rstrip("s").split("m")
        return int(m) * 60 + float(s)
    line = text.strip().splitlines()[1].split()
    return secs(line[0]) + secs(line[1])


def messages(count, seed, min_size, max_size):
    rnd = random.Random(seed)
    for n in range(count):
        yield mail.message(n, size=rnd.randint(min_size, max_size))


class Target:
    """One storage under test: a Dovecot instance and what its sessions
    cost."""

    def __init__(self, name, dovecot, pg=None):
        self.name = name
        self.d = dovecot
        self.pg = pg
        self.rusage_dir = os.path.join(dovecot.dir, "rusage")
        os.makedirs(self.rusage_dir)
        os.chmod(self.rusage_dir, 0o1777)
        wrapper = os.path.join(dovecot.dir, "pop3-wrapper")
        with open(wrapper, "w") as f:
            f.write(POP3_WRAPPER % self.rusage_dir)
        os.chmod(wrapper, 0o755)
        dovecot.extra_conf += ("\nservice pop3 {\n  executable = %s\n}\n"
                               "mail_fsync = optimized\n" % wrapper)

    def pg_cpu(self):
        """CPU seconds of the PostgreSQL server's processes, counting the
        exited backends (reaped by the postmaster)."""
        if self.pg is None:
            return 0.0
        with open("/proc/%d/stat" % self.pg.postmaster_pid()) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")

    def deliver(self, msgs):
        with smtplib.LMTP("127.0.0.1", self.d.lmtp_port, timeout=300) as l:
            for m in msgs:
                refused = l.sendmail("sender@example.test", ["bench"], m)
                if refused:
                    raise RuntimeError(refused)

    def pop3_session(self, retr_all=True):
        """Returns (wall seconds, server CPU seconds, bytes, count)."""
        for n in os.listdir(self.rusage_dir):
            os.unlink(os.path.join(self.rusage_dir, n))
        pg_before = self.pg_cpu()
        start = time.monotonic()
        s = socket.create_connection(("127.0.0.1", self.d.pop3_port))
        f = s.makefile("rb", buffering=1024 * 1024)
        f.readline()
        s.sendall(b"USER bench\r\nPASS secret\r\n")
        f.readline()
        if not f.readline().startswith(b"+OK"):
            raise RuntimeError("login failed")
        s.sendall(b"UIDL\r\n")
        _, uidls = read_multiline(f, keep=True)
        count = uidls.count(b"\r\n")
        total = 0
        if retr_all:
            for n in range(1, count + 1):
                s.sendall(b"RETR %d\r\n" % n)
                total += read_multiline(f)[0]
        s.sendall(b"QUIT\r\n")
        if not f.readline().startswith(b"+OK"):
            raise RuntimeError("QUIT failed")
        while f.read(65536):
            pass
        s.close()
        wall = time.monotonic() - start
        cpu = None
        deadline = time.monotonic() + 30
        while cpu is None and time.monotonic() < deadline:
            files = os.listdir(self.rusage_dir)
            if files:
                with open(os.path.join(self.rusage_dir, files[0])) as rf:
                    text = rf.read()
                if text.count("\n") >= 2:
                    cpu = parse_times(text)
            time.sleep(0.01)
        time.sleep(0.2)
        self.last_server_cpu = self.pg_cpu() - pg_before
        cpu = (cpu or 0.0) + self.last_server_cpu
        return wall, cpu, total, count


def read_multiline(f, keep=False):
    """Reads a multi-line reply up to its terminating dot line; returns
    its length in bytes and, with keep, the data."""
    first = f.readline()
    if not first.startswith(b"+OK"):
        raise RuntimeError("server said %r" % first)
    kept = []
    size = 0
    tail = b"\r\n"
    while True:
        data = f.read1(1024 * 1024)
        if not data:
            raise RuntimeError("connection closed")
        window = tail + data
        end = window.find(b"\r\n.\r\n")
        if end >= 0:
            if end + 5 != len(window):
                raise RuntimeError("unexpected data after the reply")
            size += end + 2 - len(tail)
            if keep:
                kept.append(window[len(tail):end + 2])
            return size, b"".join(kept)
        size += len(data)
        if keep:
            kept.append(data)
        tail = window[-4:]


def make_targets(workdir, kinds, pg, phase):
    targets = []
    users = {"bench": {}}
    for kind in kinds:
        if kind == "sdbox":
            d = Dovecot(workdir, name="sdbox-" + phase, users=users,
                        mail_location="sdbox:~/sdbox")
            with_temp_dir(d)
            targets.append(Target("sdbox", d))
        elif kind == "sqlite":
            d = sqlbox_dovecot(workdir, name="sqlbox-sqlite-" + phase,
                               users=users)
            targets.append(Target("sqlbox/SQLite", d))
        elif kind == "pgsql":
            db = "bench_" + phase
            pg.psql("CREATE DATABASE " + db)
            d = sqlbox_dovecot(workdir, name="sqlbox-pgsql-" + phase,
                               users=users, driver="pgsql",
                               connect=pg.conninfo(db))
            targets.append(Target("sqlbox/PostgreSQL", d, pg))
        elif kind == "pgsql-socket":
            # the same server, reached over its Unix socket
            db = "bench_%s_socket" % phase
            pg.psql("CREATE DATABASE " + db)
            d = sqlbox_dovecot(workdir, name="sqlbox-pgsock-" + phase,
                               users=users, driver="pgsql",
                               connect="host=%s port=%d dbname=%s user=%s"
                               % (pg.socket_dir, pg.port, db, PG_USER))
            targets.append(Target("sqlbox/PostgreSQL, Unix socket", d, pg))
    for t in targets:
        t.d.start()
    return targets


def bench_lmtp_and_pop3(workdir, args, pg, results):
    kinds = ["sdbox", "sqlite"] + ([] if args.skip_pg else
                                   ["pgsql", "pgsql-socket"])
    targets = make_targets(workdir, kinds, pg, "session")
    try:
        msgs = list(messages(args.messages, 1, 2 * 1024, 200 * 1024))
        total_bytes = sum(len(m) for m in msgs)
        spent = {t.name: 0.0 for t in targets}
        for i in range(0, len(msgs), args.batch):
            batch = msgs[i:i + args.batch]
            # in turns, so that the machine's state is shared alike
            for t in (targets if (i // args.batch) % 2 == 0
                      else list(reversed(targets))):
                start = time.monotonic()
                t.deliver(batch)
                spent[t.name] += time.monotonic() - start
        # the deliveries' dirty pages are written back now, not during the
        # sessions measured next
        os.sync()
        results["lmtp"] = {
            "messages": len(msgs), "bytes": total_bytes,
            "seconds": spent,
            "messages_per_sec": {k: len(msgs) / v for k, v in spent.items()},
        }
        if "pop3" in args.only:
            # restart the servers: an lmtp process that lingers (idle_kill)
            # would otherwise exit during a measured session, and the
            # PostgreSQL backend of its connection, reaped then, would be
            # counted as that session's CPU
            for t in targets:
                t.d.stop()
                t.d.start()
            # and what the last SQLite connections wrote when they closed
            # (a checkpoint of the WAL into the database) is on disk
            # before the sessions, not written back during them
            time.sleep(1)
            os.sync()
            # one session to warm up page cache and index, then measured
            # ones in turns
            for t in targets:
                t.pop3_session()
            runs = {t.name: [] for t in targets}
            server_cpu = {t.name: [] for t in targets}
            for r in range(args.pop3_runs):
                for t in (targets if r % 2 == 0 else reversed(targets)):
                    wall, cpu, size, count = t.pop3_session()
                    runs[t.name].append((wall, cpu))
                    server_cpu[t.name].append(t.last_server_cpu)
                    if count != len(msgs):
                        raise RuntimeError("%s lists %d messages" % (
                            t.name, count))
            results["pop3"] = {
                k: {"wall": min(w for w, _ in v),
                    "cpu": min(c for _, c in v),
                    "wall_median": statistics.median(w for w, _ in v),
                    "cpu_median": statistics.median(c for _, c in v),
                    "server_cpu": server_cpu[k],
                    "runs": v} for k, v in runs.items()}
    finally:
        for t in targets:
            t.d.stop()


def bench_rebuild(workdir, args, pg, results):
    targets = make_targets(workdir, ["sdbox", "sqlite"], pg, "rebuild")
    try:
        msgs = list(messages(args.big_messages, 2, 2 * 1024, 4 * 1024))
        for i in range(0, len(msgs), 1000):
            for t in targets:
                t.deliver(msgs[i:i + 1000])
        sdbox, sqlite = targets
        os.sync()
        # warm sdbox: a session to build its caches, then the measured one
        sdbox.pop3_session(retr_all=False)
        warm = [sdbox.pop3_session(retr_all=False)[0] for _ in range(3)]
        # sqlbox warm first: a mailbox in use loses its index, not one
        # just filled (the first reader of freshly written database pages
        # pays once for them, index or not)
        warm_sqlite = [sqlite.pop3_session(retr_all=False)[0]
                       for _ in range(3)]
        cold = []
        for _ in range(3):
            removed = remove_index_files(sqlite.d, "bench")
            if not removed:
                raise RuntimeError("no index files to remove")
            os.sync()
            wall, cpu, _, count = sqlite.pop3_session(retr_all=False)
            if count != len(msgs):
                raise RuntimeError("rebuilt index lists %d" % count)
            cold.append(wall)
        results["rebuild"] = {
            "messages": len(msgs),
            "sdbox_warm": min(warm), "sqlbox_first_after_index_loss":
            min(cold), "sqlbox_warm": min(warm_sqlite),
            "runs": {"sdbox_warm": warm, "sqlbox_cold": cold,
                     "sqlbox_warm": warm_sqlite}}
    finally:
        for t in targets:
            t.d.stop()


def report(results):
    out = []
    if "lmtp" in results:
        r = results["lmtp"]
        base = r["messages_per_sec"]["sdbox"]
        out.append("LMTP delivery, %d messages, %.0f MB:" % (
            r["messages"], r["bytes"] / 1e6))
        for k, v in r["messages_per_sec"].items():
            out.append("  %-32s %8.1f msg/s  %.2fx of sdbox" % (
                k, v, v / base))
    if "pop3" in results:
        r = results["pop3"]
        base = r["sdbox"]
        for how, w, c in (("best", "wall", "cpu"),
                          ("median", "wall_median", "cpu_median")):
            out.append("POP3 session (login, UIDL, RETR all, QUIT), %s of "
                       "%d:" % (how, len(base["runs"])))
            for k, v in r.items():
                out.append("  %-32s wall %7.2f s (%.2fx)  cpu %7.2f s "
                           "(%.2fx)" % (k, v[w], v[w] / base[w], v[c],
                                        v[c] / base[c] if base[c] else 0))
    if "rebuild" in results:
        r = results["rebuild"]
        out.append("First POP3 session (login, UIDL, QUIT) after index "
                   "loss, %d messages:" % r["messages"])
        out.append("  sdbox, warm index          %7.3f s" % r["sdbox_warm"])
        out.append("  sqlbox/SQLite, index lost  %7.3f s (%.2fx of warm "
                   "sdbox)" % (r["sqlbox_first_after_index_loss"],
                               r["sqlbox_first_after_index_loss"] /
                               r["sdbox_warm"]))
        out.append("  sqlbox/SQLite, warm index  %7.3f s" %
                   r["sqlbox_warm"])
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--big-messages", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--pop3-runs", type=int, default=7)
    ap.add_argument("--only", default="lmtp,pop3,rebuild")
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    args.only = args.only.split(",")
    if os.geteuid() != 0:
        sys.exit("run as root")

    # a kill ends the servers this started too (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="sqlbox-bench.", dir="/tmp")
    os.chmod(workdir, 0o755)
    os.environ.setdefault("POP3EXT_BUILDDIR",
                          os.path.join(HERE, "..", "build"))
    pg = None
    # short: a Unix socket path has at most 107 bytes
    pg_socket_dir = tempfile.mkdtemp(prefix="pgs.", dir="/tmp")
    results = {"machine": os.uname().nodename, "cpus": os.cpu_count()}
    try:
        if not args.skip_pg:
            import pwd
            pw = pwd.getpwnam(PG_USER)
            os.chown(pg_socket_dir, pw.pw_uid, pw.pw_gid)
            os.chmod(pg_socket_dir, 0o755)
            pg = Postgres(workdir, settings={
                # durable like a production server would be
                "fsync": "on", "synchronous_commit": "on",
                "shared_buffers": "256MB",
                # TCP on 127.0.0.1 and a Unix socket, both measured
                "unix_socket_directories": "'%s'" % pg_socket_dir,
                "unix_socket_permissions": "0777"})
            pg.socket_dir = pg_socket_dir
        if "lmtp" in args.only or "pop3" in args.only:
            bench_lmtp_and_pop3(workdir, args, pg, results)
            print(report(results), flush=True)
            save(args, results)
        if "rebuild" in args.only:
            bench_rebuild(workdir, args, pg, results)
    finally:
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(pg_socket_dir, ignore_errors=True)
    print(report(results))
    save(args, results)


def save(args, results):
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
