"""Helpers for the sqlbox storage tests: a Dovecot with mail in sqlbox, and
direct looks into (and deliberate damage to) the user's SQLite database.

The database file belongs to the mail user (nobody): every access from the
tests runs as that user, so that no file (-wal, -shm) is ever created as
root where the mail processes couldn't open it."""

import hashlib
import json
import os
import pwd
import re
import smtplib
import socket
import subprocess
import sys

from . import mail
from .dovecot import Dovecot, MAIL_USER

SQLBOX_PLUGINS = ("sqlbox",)
# the mail user can't run a Python under /root (e.g. pyenv's)
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
SQLBOX_LOCATION = "sqlbox:~/sqlbox"


def sqlbox_dovecot(workdir, users=None, driver="sqlite", connect=None,
                   plugin_settings=None, **kwargs):
    """A Dovecot instance (not started) storing mail in sqlbox."""
    settings = dict(plugin_settings or {})
    if driver != "sqlite":
        settings.setdefault("sqlbox_driver", driver)
    if connect is not None:
        settings.setdefault("sqlbox_connect", connect)
    kwargs.setdefault("mail_plugins", SQLBOX_PLUGINS)
    kwargs.setdefault("mail_location", SQLBOX_LOCATION)
    d = Dovecot(workdir, users=users, plugin_settings=settings, **kwargs)
    with_temp_dir(d)
    return d


def with_temp_dir(dovecot):
    """Gives the instance a mail_temp_dir that the mail user can write
    to (/tmp may not be: large messages are spooled there while being
    saved)."""
    tmp = os.path.join(dovecot.dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, 0o1777)
    dovecot.extra_conf += "\nmail_temp_dir = %s\n" % tmp
    return dovecot


def sqlite_path(dovecot, user):
    return os.path.join(dovecot.home(user), "sqlbox", "sqlbox.db")


_RUNNER = r"""
import json, sqlite3, sys
args = json.loads(sys.stdin.read())
db = sqlite3.connect(args["path"], timeout=30)
out = []
for sql, params in args["statements"]:
    params = [bytes.fromhex(p[4:]) if isinstance(p, str) and
              p.startswith("hex:") else p for p in params]
    cur = db.execute(sql, params)
    rows = cur.fetchall()
    out.append([[("hex:" + v.hex()) if isinstance(v, bytes) else v
                 for v in row] for row in rows])
db.commit()
db.close()
print(json.dumps(out))
"""


def sqlite_run(path, statements):
    """Runs [(sql, params), ...] against the SQLite file as the mail user;
    returns each statement's rows (bytes values as "hex:..." strings)."""
    enc = []
    for sql, params in statements:
        enc.append((sql, [("hex:" + p.hex()) if isinstance(p, bytes) else p
                          for p in params]))
    pw = pwd.getpwnam(MAIL_USER)
    r = subprocess.run([SYSTEM_PYTHON, "-c", _RUNNER],
                       input=json.dumps({"path": path,
                                         "statements": enc}),
                       capture_output=True, text=True, timeout=120,
                       user=pw.pw_uid, group=pw.pw_gid)
    if r.returncode != 0:
        raise RuntimeError("sqlite as %s failed: %s" % (MAIL_USER,
                                                        r.stderr))
    out = json.loads(r.stdout)
    for rows in out:
        for row in rows:
            for i, v in enumerate(row):
                if isinstance(v, str) and v.startswith("hex:"):
                    row[i] = bytes.fromhex(v[4:])
    return out


def sqlite_query(path, sql, params=()):
    return sqlite_run(path, [(sql, list(params))])[0]


def index_files(dovecot, user):
    """Dovecot's index files of the user's sqlbox (the cache)."""
    found = []
    root = os.path.join(dovecot.home(user), "sqlbox", "mailboxes")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            if n.startswith("dovecot.index"):
                found.append(os.path.join(dirpath, n))
    return found


def remove_index_files(dovecot, user):
    files = index_files(dovecot, user)
    for f in files:
        os.unlink(f)
    return files


def lmtp_status(dovecot, user, msg):
    """The LMTP reply code of one delivery (0 if the connection broke)."""
    try:
        with smtplib.LMTP("127.0.0.1", dovecot.lmtp_port, timeout=60) as l:
            l.sendmail("sender@example.test", [user], msg)
            return 250
    except smtplib.SMTPRecipientsRefused as e:
        return list(e.recipients.values())[0][0]
    except smtplib.SMTPDataError as e:
        return e.smtp_code
    except (smtplib.SMTPServerDisconnected, OSError):
        return 0


def pop3_view(dovecot, user):
    """(UIDLs, messages) of the user's POP3 maildrop, each message as the
    server sent it (dot-unstuffed by poplib)."""
    p = dovecot.pop3(user)
    uidls = [x.split()[1] for x in p.uidl()[1]]
    bodies = []
    for n in range(1, len(uidls) + 1):
        _, lines, _ = p.retr(n)
        bodies.append(b"\r\n".join(lines) + b"\r\n")
    p.quit()
    return uidls, bodies


def peak_rss_kb(pid):
    """The peak resident size (VmHWM) of a process, in kB."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def retr_streamed(dovecot, user, password="secret"):
    """RETR 1 of a large message without keeping it: returns its size, its
    SHA-256 and the peak RSS (kB) of the pop3 process that served it."""
    s = socket.create_connection(("127.0.0.1", dovecot.pop3_port))
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"USER %s\r\nPASS %s\r\n" % (user.encode(),
                                               password.encode()))
    f.readline()
    if not f.readline().startswith(b"+OK"):
        raise RuntimeError("login failed")
    pid = int(re.findall(r"Login: user=<%s>.*mpid=(\d+)" % re.escape(user),
                         dovecot.log())[-1])
    s.sendall(b"RETR 1\r\n")
    if not f.readline().startswith(b"+OK"):
        raise RuntimeError("RETR failed")
    h = hashlib.sha256()
    size = 0
    while True:
        line = f.readline()
        if line == b".\r\n":
            break
        if line.startswith(b".."):
            line = line[1:]
        h.update(line)
        size += len(line)
    peak = peak_rss_kb(pid)
    s.sendall(b"QUIT\r\n")
    f.readline()
    s.close()
    return size, h.digest(), peak


def deliver_and_retr_big(dovecot, user, size):
    """Delivers a message of about size bytes over LMTP and reads it back
    with RETR without keeping it. Returns (size read, its SHA-256, peak
    RSS in kB of the lmtp process that stored it, of the pop3 process that
    served it)."""
    dovecot.deliver(user, mail.big_message(1, size))
    lmtp_pid = int(re.findall(r"lmtp\((\d+)\): Info: Connect",
                              dovecot.log())[-1])
    lmtp_peak = peak_rss_kb(lmtp_pid)
    read, digest, pop3_peak = retr_streamed(dovecot, user)
    return read, digest, lmtp_peak, pop3_peak
