#!/usr/bin/env python3
"""Benchmark: one POP3 session (login, UIDL, RETR of every message, QUIT) on
a 1,000-message mailbox, stock Dovecot against Dovecot with pop3ext and
pop3ext_pop3 (loaded by the shipped dovecot-pop3ext.conf), in one run on
byte-identical mailboxes.

- wall time: sessions alternate between the two servers (poplib client);
  the median of each side, and their ratio;
- instructions: the pop3 process of one session of each side runs under
  valgrind --tool=callgrind (its executable wrapped); the total
  instruction count of that process, and the ratio.

Usage (as root, after `bash scripts/setup.sh`):
  python3 bench/pop3_session.py [--messages 1000] [--rounds 15]
Prints a Markdown table for docs/PERFORMANCE.md."""

import argparse
import glob
import os
import poplib
import re
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "lib"))
from pop3ext_harness import Dovecot, mail  # noqa: E402

USER = "bench"


def session(inst, expect):
    p = poplib.POP3("127.0.0.1", inst.pop3_port, timeout=120)
    p.user(USER)
    p.pass_("secret")
    uidls = p.uidl()[1]
    total = 0
    for i in range(1, len(uidls) + 1):
        total += len(p.retr(i)[1])
    p.quit()
    assert len(uidls) == expect, (len(uidls), expect)
    return total


def callgrind_conf(inst, outdir):
    wrapper = os.path.join(inst.dir, "pop3-callgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup "
                "--clear-groups valgrind -q --tool=callgrind "
                "--callgrind-out-file=%s/callgrind.%%p "
                "/usr/lib/dovecot/pop3 \"$@\"\n" % outdir)
    os.chmod(wrapper, 0o755)
    # pop3 runs as the mail user from the start (setpriv): callgrind
    # writes its file at exit, when a root-started pop3 would have dropped
    # privileges and could no longer open it. Same for both sides.
    # So it must reach the sockets a root-started pop3 opens first.
    return ("service pop3 {\n  executable = %s\n}\n"
            "service auth {\n  unix_listener auth-master {\n"
            "    mode = 0666\n  }\n}\n"
            "service stats {\n  unix_listener stats-writer {\n"
            "    mode = 0666\n  }\n}\n"
            "service config {\n  unix_listener config {\n"
            "    mode = 0666\n  }\n}\n" % wrapper)


def instructions(outdir):
    """The total of the one callgrind file, once the process has written
    it (at its exit)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        files = glob.glob(os.path.join(outdir, "callgrind.*"))
        assert len(files) <= 1, files
        if files:
            with open(files[0]) as f:
                m = re.search(r"^totals: (\d+)", f.read(), re.M)
            if m:
                return int(m.group(1))
        time.sleep(0.2)
    raise RuntimeError("no callgrind totals in %s" % outdir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--setting", action="append", default=[],
                    metavar="NAME=VALUE",
                    help="a plugin {} setting for the side with the "
                         "plugins (repeatable), e.g. an active policy")
    ap.add_argument("--keep-callgrind", metavar="DIR",
                    help="copy the callgrind files here")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pop3ext-bench.")
    os.chmod(work, 0o755)
    insts = []
    try:
        stock = Dovecot(work, name="stock", plugins=False,
                        users={USER: {}})
        settings = dict(x.split("=", 1) for x in args.setting)
        plug = Dovecot(work, name="plugins", users={USER: {}},
                       plugin_settings=settings)
        insts += [stock, plug]
        for i in insts:
            i.start()
        msgs = [mail.message(n, size=2000 + (n * 7919) % 18000)
                for n in range(args.messages)]
        stock.deliver_many(USER, msgs)
        stock.copy_home(USER, plug)
        size = sum(len(m) for m in msgs)

        # warm both (index and page cache), then alternate
        for i in insts:
            session(i, args.messages)
        times = {"stock": [], "plugins": []}
        for r in range(args.rounds):
            # alternate which side goes first
            for i in (insts if r % 2 == 0 else insts[::-1]):
                t = time.perf_counter()
                session(i, args.messages)
                times[i.name].append(time.perf_counter() - t)

        # instructions of one session's pop3 process, each side
        counts = {}
        for i in insts:
            i.stop()
            outdir = os.path.join(work, "callgrind-" + i.name)
            os.makedirs(outdir)
            os.chmod(outdir, 0o777)
            i.extra_conf = callgrind_conf(i, outdir)
            i.start()
            session(i, args.messages)
            counts[i.name] = instructions(outdir)
            i.stop()
            if args.keep_callgrind:
                os.makedirs(args.keep_callgrind, exist_ok=True)
                for f in glob.glob(os.path.join(outdir, "callgrind.*")):
                    shutil.copy(f, os.path.join(args.keep_callgrind,
                                                i.name + ".callgrind"))
    except BaseException:
        for i in insts:
            sys.stderr.write("--- %s log tail:\n%s\n" % (i.name,
                                                       i.log()[-3000:]))
        raise
    finally:
        for i in insts:
            i.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    ws, wp = (statistics.median(times["stock"]),
              statistics.median(times["plugins"]))
    cs, cp = counts["stock"], counts["plugins"]
    print("POP3 session (login, UIDL, RETR x %d, QUIT), %d messages, "
          "%.1f MB, maildir, %d rounds%s:\n" % (
              args.messages, args.messages, size / 1e6, args.rounds,
              ", plugins with " + ", ".join(args.setting)
              if args.setting else ""))
    print("| measure | stock Dovecot | with pop3ext + pop3ext_pop3 | ratio |")
    print("|---|---|---|---|")
    print("| wall time, median of %d sessions | %.1f ms | %.1f ms | %.3fx |"
          % (args.rounds, ws * 1000, wp * 1000, wp / ws))
    print("| instructions of the pop3 process (callgrind) | %s | %s | "
          "%.4fx |" % (format(cs, ","), format(cp, ","), cp / cs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
