#!/usr/bin/env python3
"""The load gate's long form (issue 9, docs/RELIABILITY.md): SESSIONS
concurrent POP3 sessions (one user each, back to back: login, STAT, UIDL,
LIST, RETR and DELE of a few messages, QUIT, a tenth dropped
mid-command) for SECONDS against sqlbox/SQLite with every plugin and an
active policy (pop3ext_on_dele = archive:Archive), while LMTP delivers.
Then checks what tests/gate/test_load.py checks (none lost or duplicated,
the archive is exactly what the QUITs committed, no error, no process
left, each process's peak RSS under the bound) and prints the figures.

Usage (as root, after `bash scripts/setup.sh`):
  python3 bench/pop3_load.py [--sessions 200] [--seconds 60]
                             [--deliverers 2] [--builddir build]
Exit status 0 when nothing went wrong."""

import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--deliverers", type=int, default=2)
    ap.add_argument("--rss-bound-mb", type=int, default=96)
    ap.add_argument("--builddir",
                    default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the work dir (logs) at the end")
    args = ap.parse_args()
    os.environ["POP3EXT_BUILDDIR"] = os.path.abspath(args.builddir)
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
    from pop3ext_harness import load, sanitizers
    from pop3ext_harness.load import _instance_processes
    from pop3ext_harness.sqlbox import sqlbox_dovecot

    work = tempfile.mkdtemp(prefix="pop3ext-load.", dir="/tmp")
    os.chmod(work, 0o755)
    users = ["load%03d" % i for i in range(args.sessions)]
    d = sqlbox_dovecot(work, users={u: {"password": "secret"}
                                    for u in users},
                       plugin_settings={"pop3ext_on_dele": "archive:Archive"},
                       # one pop3-login and one pop3 process per session
                       extra_conf="service pop3 {\n  process_limit = %d\n}\n"
                       "service pop3-login {\n  process_limit = %d\n}\n"
                       % (args.sessions + 50, args.sessions + 50))
    d.start()
    try:
        result = load.run(d, users, "secret", seconds=args.seconds,
                          deliver_threads=args.deliverers,
                          drop_fraction=0.1)
    finally:
        d.stop()
    left = _instance_processes(d)
    bound = None if sanitizers.enabled() else args.rss_bound_mb * 1024
    problems = result.problems(bound)
    if left:
        problems.append("processes left after stop: %s" % left)
    archived = sum(len(a) for _, a in result.final.values())
    inbox = sum(len(i) for i, _ in result.final.values())
    print("%d concurrent sessions, %d s: %s" % (args.sessions, args.seconds,
                                               result.summary()))
    print("final: %d messages in INBOXes, %d archived (= committed by "
          "QUIT), %d delivered" % (inbox, archived, result.deliveries))
    print("%d problems" % len(problems))
    for p in problems[:50]:
        print("  " + p)
    if args.keep or problems:
        print("work dir kept: %s" % work)
    else:
        d.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
