#!/usr/bin/env python3
"""The demo behind scripts/demo.sh (see there)."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "lib"))
from pop3ext_harness import Dovecot, mail, wait_port  # noqa: E402

# POP3EXT_DEMO_DIR: only for the test that runs this demo
DEMO_DIR = os.environ.get("POP3EXT_DEMO_DIR", "/tmp/dovecot-pop3ext-demo")
USER, PASSWORD = "demo", "demo"


def stop():
    pidfile = os.path.join(DEMO_DIR, "dovecot", "run", "master.pid")
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    shutil.rmtree(DEMO_DIR, ignore_errors=True)


def main():
    stop()
    if sys.argv[1:2] == ["stop"]:
        print("demo stopped, %s removed" % DEMO_DIR)
        return 0
    os.makedirs(DEMO_DIR)
    os.chmod(DEMO_DIR, 0o755)
    d = Dovecot(DEMO_DIR, name="dovecot",
                users={USER: {"password": PASSWORD}},
                plugin_settings={"pop3ext_deny_commands": "TOP"},
                mail_plugins=("sqlbox",), mail_location="sqlbox:~/sqlbox")
    d.write_passwd()
    d.write_config()
    # the demo outlives this script: let dovecot daemonize
    # (its start-up messages to a file: a daemon holding this script's
    # stdout would keep a pipe such as `demo.sh | tee` open)
    startlog = os.path.join(DEMO_DIR, "dovecot-start.log")
    with open(startlog, "wb") as out:
        r = subprocess.run(["dovecot", "-c", d.conf_path],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    if r.returncode != 0:
        with open(startlog) as f:
            print(f.read())
        sys.exit("dovecot did not start")
    for port in d.ports.values():
        if not wait_port(port, 30):
            print(d.log()[-3000:])
            sys.exit("dovecot did not start")

    print("== delivering 3 sample messages to %s over LMTP" % USER)
    for n in range(1, 4):
        d.deliver(USER, mail.message(n, size=600,
                                     subject="dovecot-pop3ext demo %d" % n))

    url = "pop3://127.0.0.1:%d" % d.pop3_port
    print("== a POP3 session with curl (its -v trace: > is the client, "
          "< the server)")
    for i, args in enumerate((["-X", "CAPA"], [], ["%s/1" % url],
                              ["-X", "TOP 1 0"])):
        target = args if args and args[0].startswith("pop3://") else \
            [url] + args
        print("\n$ curl -v -u %s:%s %s" % (USER, PASSWORD, " ".join(target)))
        r = subprocess.run(["curl", "-sS", "-v", "-u",
                            "%s:%s" % (USER, PASSWORD)] + target,
                           capture_output=True, text=True)
        # the first session in full; of the others, what follows login
        shown = i == 0
        for line in r.stderr.splitlines():
            if not line.startswith(("> ", "< ")):
                continue
            if shown:
                print("  " + line)
            shown = shown or "+OK Logged in." in line
        if r.stdout:
            print("  " + r.stdout.strip().replace("\n", "\n  ")[:1500])
        if r.returncode != 0:
            print("  (curl exit %d: %s)" % (r.returncode,
                                            r.stderr.strip().splitlines()[-1]))

    print("""
== the demo Dovecot is running
  POP3: 127.0.0.1:%(pop3)d   IMAP: 127.0.0.1:%(imap)d   LMTP: 127.0.0.1:%(lmtp)d
  user %(user)s, password %(pw)s (this demo denies TOP: pop3ext_deny_commands)
  try:   curl -u %(user)s:%(pw)s pop3://127.0.0.1:%(pop3)d/1
         python3 -c "import poplib; p=poplib.POP3('127.0.0.1',%(pop3)d); \\
p.user('%(user)s'); p.pass_('%(pw)s'); print(p.capa())"
  mail:  sqlbox/SQLite (the embedded default): %(db)s
  config: %(conf)s   log: %(log)s
  stop:  bash scripts/demo.sh stop""" % {
        "pop3": d.pop3_port, "imap": d.imap_port, "lmtp": d.lmtp_port,
        "user": USER, "pw": PASSWORD, "conf": d.conf_path, "log": d.log_path,
        "db": os.path.join(d.home(USER), "sqlbox", "sqlbox.db")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
