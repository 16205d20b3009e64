#!/usr/bin/env python3
"""Benchmark: `doveadm pop3ext sweep -A` over 1,000 users x 1,000 messages
(maildir), beside stock Dovecot's way of finding old mail
(`doveadm expunge -A mailbox INBOX savedbefore <date>`), in one run.

Each user has pop3ext_expire_after_retr=30d, pop3ext_max_age=365d and a
retrieval log of 1,000 entries of which --due (default 10) are more than 30
days old. Measured, wall time:
  1. sweep -n -A (dry run): finds the 10,000 due messages;
  2. stock: doveadm expunge -A mailbox INBOX savedbefore 365d on the same
     mailboxes (finds nothing, but reads every message's save date);
  3. sweep -A: expunges the due messages;
  4. sweep -A again: nothing left to do.
Goal: the sweep under 60 s.

The users' mail is one delivered mailbox copied 1,000 times (message files
hard-linked, index files copied).

Usage (as root): python3 bench/sweep.py [--users 1000] [--messages 1000]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "lib"))
from pop3ext_harness import Dovecot, env  # noqa: E402

DAY = 86400


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--due", type=int, default=10)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pop3ext-bench-sweep.")
    os.chmod(work, 0o755)
    users = ["u%04d" % i for i in range(args.users)]
    fields = {"pop3ext_expire_after_retr": "30d", "pop3ext_max_age": "365d"}
    d = Dovecot(work, users={"tmpl": {"fields": fields}},
                module_overlays=env.doveadm_overlay())
    try:
        d.start()
        t0 = time.perf_counter()
        msg = (b"From: a@example.test\r\nSubject: m\r\n\r\n" +
               b"x" * 900 + b"\r\n")
        d.deliver_many("tmpl", [msg] * args.messages)
        d.doveadm("force-resync", "-u", "tmpl", "INBOX")
        r = d.doveadm("-f", "tab", "fetch", "-u", "tmpl", "uid guid",
                      "mailbox", "INBOX")
        uid_guid = []
        for line in r.stdout.strip().splitlines()[1:]:
            uid, guid = line.split("\t")
            uid_guid.append((int(uid), guid))
        r = d.doveadm("mailbox", "status", "-u", "tmpl", "uidvalidity",
                      "INBOX")
        uidvalidity = int(r.stdout.split("=")[1])
        d.stop()

        tmpl = os.path.join(d.home("tmpl"), "Maildir")
        now = int(time.time())
        for user in users:
            home = d.home(user)
            os.makedirs(home)
            maildir = os.path.join(home, "Maildir")
            # message files hard-linked, Dovecot's own files copied
            subprocess.run(["cp", "-al", tmpl, maildir], check=True)
            for name in os.listdir(tmpl):
                if name.startswith("dovecot"):
                    p = os.path.join(maildir, name)
                    os.unlink(p)
                    shutil.copy2(os.path.join(tmpl, name), p)
            state = os.path.join(home, ".pop3ext")
            os.makedirs(state)
            with open(os.path.join(state, "retrieved.log"), "w") as f:
                for i, (uid, guid) in enumerate(uid_guid):
                    t = now - 40 * DAY + i if i < args.due else now - DAY + i
                    f.write("1\t%d\t%d\t%s\t%d\n" % (uidvalidity, uid, guid, t))
            subprocess.run(["chown", "-R", "%d:%d" % (d.uid, d.gid), home],
                           check=True)
            d.users[user] = {"password": "secret", "fields": fields}
        del d.users["tmpl"]
        setup = time.perf_counter() - t0
        d.start()

        def sweep(*a):
            return d.doveadm("-f", "tab", "pop3ext", "sweep", *a, "-A")

        def total(r):
            line = [x for x in r.stdout.splitlines()
                    if x.startswith("*total*")][0].split("\t")
            return int(line[1]), int(line[2])

        t_dry, r_dry = timed(lambda: sweep("-n"))
        # stock, on the same full mailboxes
        t_stock, _ = timed(lambda: d.doveadm(
            "expunge", "-A", "mailbox", "INBOX", "savedbefore", "365d"))
        t_real, r_real = timed(lambda: sweep())
        t_again, r_again = timed(lambda: sweep())
    finally:
        d.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    due = total(r_dry)
    print("Sweep of %d users x %d messages (maildir), %d due per user "
          "(setup %.0f s):\n" % (args.users, args.messages, args.due, setup))
    print("| run | wall time | messages | bytes |")
    print("|---|---|---|---|")
    print("| `pop3ext sweep -n -A` (dry run) | %.1f s | %d | %d |"
          % (t_dry, due[0], due[1]))
    print("| `pop3ext sweep -A` | %.1f s | %d | %d |"
          % ((t_real,) + total(r_real)))
    print("| `pop3ext sweep -A`, again (nothing due) | %.1f s | %d | %d |"
          % ((t_again,) + total(r_again)))
    print("| stock `doveadm expunge -A mailbox INBOX savedbefore 365d` | "
          "%.1f s | 0 | 0 |" % t_stock)
    print("\nratio dry-run sweep / stock scan of the same mailboxes: %.2fx"
          % (t_dry / t_stock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
