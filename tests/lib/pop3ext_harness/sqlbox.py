"""Helpers for the sqlbox storage tests: a Dovecot with mail in sqlbox, and
direct looks into (and deliberate damage to) the user's SQLite database.

The database file belongs to the mail user (nobody): every access from the
tests runs as that user, so that no file (-wal, -shm) is ever created as
root where the mail processes couldn't open it."""

import json
import os
import pwd
import subprocess
import sys

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
