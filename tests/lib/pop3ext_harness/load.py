"""A bounded POP3 load against one Dovecot instance, and its accounting.

    result = load.run(d, users, seconds=8, deliver_threads=1)
    problems = result.problems()      # [] when nothing went wrong

One worker thread per user runs POP3 sessions back to back (so every
session of a user is alone on the mailbox and the accounting is exact):
login, STAT, UIDL, LIST, then RETR and DELE of a few messages, then either
QUIT, or (drop_fraction of the sessions) RETR sent and the connection
dropped without reading the answer. Meanwhile deliverer threads deliver
numbered messages to random users over LMTP. The instance's policy is
expected to archive on DELE (pop3ext_on_dele = archive:Archive), so at the
end, read over IMAP:

  - INBOX + Archive hold every delivered message exactly once (none lost,
    none duplicated);
  - Archive holds exactly the messages of sessions whose QUIT was answered
    +OK (a dropped session committed nothing);
  - no POP3 or LMTP error, no error in Dovecot's log, every message RETR
    returned is the one UIDL named;
  - once the load stops, no pop3 process is left, and each process's peak
    RSS (sampled while it ran) stays under the bound given.
"""

import collections
import imaplib
import os
import poplib
import random
import re
import smtplib
import socket
import threading
import time

TOKEN = re.compile(rb"^Subject: load (\d+)\r?$", re.M | re.I)


def message(n, size):
    body = (b"line of load message %d\r\n" % n) * max(1, size // 28)
    return (b"From: load@example.test\r\nTo: user@example.test\r\n"
            b"Subject: load %d\r\nMessage-ID: <load-%d@example.test>\r\n"
            b"\r\n" % (n, n)) + body


class Result:
    def __init__(self):
        self.lock = threading.Lock()
        self.delivered = collections.defaultdict(set)
        self.committed = collections.defaultdict(set)
        self.errors = []
        self.sessions = 0
        self.quits = 0
        self.drops = 0
        self.retrs = 0
        self.deliveries = 0
        self.peak_rss_kb = {}
        self.left_behind = []
        self.final = {}
        self.seconds = 0.0

    def error(self, what):
        with self.lock:
            if len(self.errors) < 200:
                self.errors.append(what)

    def problems(self, rss_bound_kb=None):
        out = list(self.errors)
        for user, (inbox, archive) in sorted(self.final.items()):
            delivered = self.delivered[user]
            seen = inbox + archive
            dups = [t for t, c in collections.Counter(seen).items() if c > 1]
            if dups:
                out.append("%s: duplicated: %s" % (user, sorted(dups)[:10]))
            lost = delivered - set(seen)
            if lost:
                out.append("%s: lost: %s" % (user, sorted(lost)[:10]))
            extra = set(seen) - delivered
            if extra:
                out.append("%s: never delivered: %s" % (user,
                                                        sorted(extra)[:10]))
            if set(archive) != self.committed[user]:
                out.append("%s: archive %s != committed %s" % (
                    user, sorted(set(archive))[:10],
                    sorted(self.committed[user])[:10]))
        if self.left_behind:
            out.append("processes left behind: %s" % self.left_behind)
        if rss_bound_kb is not None:
            for name, kb in sorted(self.peak_rss_kb.items()):
                if kb > rss_bound_kb:
                    out.append("%s: peak RSS %d kB > %d kB" % (
                        name, kb, rss_bound_kb))
        return out

    def summary(self):
        return ("%d sessions (%d QUIT, %d dropped mid-command), %d RETR, "
                "%d deliveries in %.0f s; %d errors; peak RSS (kB): %s" % (
                    self.sessions, self.quits, self.drops, self.retrs,
                    self.deliveries, self.seconds, len(self.errors),
                    ", ".join("%s %d" % kv
                              for kv in sorted(self.peak_rss_kb.items()))))


def _instance_processes(d):
    """{pid: (name, rss kB)} of the instance's processes (their titles
    start with its instance_name)."""
    prefix = None
    for line in open(d.conf_path):
        if line.startswith("instance_name = "):
            prefix = "dovecot-" + line.split("=", 1)[1].strip() + "/"
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")[0].decode("latin-1")
            if not cmd.startswith(prefix):
                continue
            rss = 0
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
            name = cmd[len(prefix):].split()[0] if cmd[len(prefix):] else "?"
            found[int(pid)] = (name, rss)
        except (OSError, ValueError):
            continue
    return found


def _pop3_session(d, user, password, rnd, result, drop):
    try:
        p = poplib.POP3("127.0.0.1", d.pop3_port, timeout=60)
        p.user(user)
        p.pass_(password)
    except (poplib.error_proto, OSError) as e:
        result.error("%s: login: %r" % (user, e))
        return
    with result.lock:
        result.sessions += 1
    try:
        count, _ = p.stat()
        uidls = {}
        for line in p.uidl()[1]:
            n, uid = line.split(b" ", 1)
            uidls[int(n)] = uid
        sizes = dict((int(a), int(b)) for a, b in
                     (line.split(b" ") for line in p.list()[1]))
        if len(uidls) != count or len(sizes) != count:
            result.error("%s: STAT %d, UIDL %d, LIST %d" % (
                user, count, len(uidls), len(sizes)))
        pick = rnd.sample(sorted(uidls), min(len(uidls), rnd.randint(0, 3)))
        deleted = set()
        for n in pick:
            _, lines, _ = p.retr(n)
            with result.lock:
                result.retrs += 1
            m = TOKEN.search(b"\r\n".join(lines))
            if m is None:
                result.error("%s: RETR %d: no load subject" % (user, n))
                continue
            p.dele(n)
            deleted.add(int(m.group(1)))
        if count and drop:
            # a client that goes away mid-command: RETR sent, answer
            # not read, no QUIT - nothing it deleted may go
            p.sock.sendall(b"RETR %d\r\n" % rnd.choice(sorted(uidls)))
            p.sock.close()
            with result.lock:
                result.drops += 1
            return
        resp = p.quit()
        if not resp.startswith(b"+OK"):
            result.error("%s: QUIT: %r" % (user, resp))
            return
        with result.lock:
            result.quits += 1
            result.committed[user] |= deleted
    except (poplib.error_proto, OSError, ValueError) as e:
        result.error("%s: %r" % (user, e))
        try:
            p.sock.close()
        except OSError:
            pass


def _deliverer(d, users, rnd, result, counter, stop, size):
    lmtp = None
    while not stop.is_set():
        with result.lock:
            counter[0] += 1
            n = counter[0]
        user = rnd.choice(users)
        try:
            if lmtp is None:
                lmtp = smtplib.LMTP("127.0.0.1", d.lmtp_port, timeout=60)
            refused = lmtp.sendmail("load@example.test", [user],
                                    message(n, size))
            if refused:
                result.error("LMTP refused %d: %r" % (n, refused))
                continue
            with result.lock:
                result.delivered[user].add(n)
                result.deliveries += 1
        except (smtplib.SMTPException, OSError) as e:
            result.error("LMTP %d to %s: %r" % (n, user, e))
            lmtp = None
    if lmtp is not None:
        try:
            lmtp.quit()
        except (smtplib.SMTPException, OSError):
            pass


def _read_tokens(d, user, password, mailbox):
    i = imaplib.IMAP4("127.0.0.1", d.imap_port)
    try:
        i.login(user, password)
        typ, data = i.select(mailbox, readonly=True)
        if typ != "OK" or int(data[0]) == 0:
            return []
        typ, data = i.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = []
        for item in data or []:
            if isinstance(item, tuple):
                m = TOKEN.search(item[1])
                if m:
                    out.append(int(m.group(1)))
        return out
    finally:
        try:
            i.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def run(d, users, password, seconds, deliver_threads=1, drop_fraction=0.1,
        message_size=3000, preload=3, seed=1):
    """Runs the load on d (started, with users and an archive-on-DELE
    policy) for seconds; returns a Result with the final mailboxes read."""
    result = Result()
    rnd = random.Random(seed)
    counter = [0]
    # some mail for everyone from the start
    for user in users:
        for _ in range(preload):
            counter[0] += 1
            d.deliver(user, message(counter[0], message_size))
            result.delivered[user].add(counter[0])
            result.deliveries += 1
    stop = threading.Event()
    threads = []

    def worker(k, user, wseed):
        wrnd = random.Random(wseed)
        # the first session of every tenth user drops for sure (it has
        # the preloaded mail), so that some do however few run
        drop = k % 10 == 0
        while not stop.is_set():
            _pop3_session(d, user, password, wrnd, result, drop)
            drop = wrnd.random() < drop_fraction

    for k, user in enumerate(users):
        threads.append(threading.Thread(target=worker,
                                        args=(k, user, seed * 100003 + k)))
    for k in range(deliver_threads):
        threads.append(threading.Thread(
            target=_deliverer, args=(d, users, random.Random(seed + k), result,
                                     counter, stop, message_size)))
    start = time.monotonic()
    for t in threads:
        t.start()
    deadline = start + seconds
    while time.monotonic() < deadline:
        for pid, (name, rss) in _instance_processes(d).items():
            if rss > result.peak_rss_kb.get(name, 0):
                result.peak_rss_kb[name] = rss
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(120)
        if t.is_alive():
            result.error("a load thread did not end")
    result.seconds = time.monotonic() - start
    # every session ended: its pop3 process must go (a dropped client's
    # process ends when it notices the hang-up)
    wait_end = time.monotonic() + 60
    while time.monotonic() < wait_end:
        left = [pid for pid, (name, _) in _instance_processes(d).items()
                if name == "pop3"]
        if not left:
            break
        time.sleep(0.1)
    else:
        result.left_behind = left
    for user in users:
        result.final[user] = (_read_tokens(d, user, password, "INBOX"),
                              _read_tokens(d, user, password, "Archive"))
    for line in d.log().splitlines():
        if re.search(r": (Error|Fatal|Panic): ", line):
            result.error("log: " + line[:300])
    return result
