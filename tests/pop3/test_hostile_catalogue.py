"""Hostile clients: a catalogue of bad POP3 inputs sent to stock Dovecot and
to Dovecot with every plugin (the pair and the comparison of
test_differential.PairTestCase: same config otherwise, byte-identical
mailboxes, transcripts and logged session summaries equal but for the CAPA
lines the plugins add). Each case is its own test method, so the runner
names it; after each, both servers must answer a fresh session, and
neither log may hold a Panic, a Fatal or a killed child.

The two Dovecot instances start once for the class (ssl = yes on both, for
STLS); every case runs against both within the same test.

The catalogue is data: CASES, a list of Case(name, state, steps). A step is
the bytes of one write; the reader then takes one response for each line
it completes (multi-line where RFC 1939/2449 says so, or as the step says).
After the last step the client half-closes and reads to EOF, so any reply
a server sends that was not asked for is in the transcript too. A few
cases need a client that misbehaves in time (stops reading, TLS) and are
methods of their own below."""

import os
import re
import fcntl
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import termios
import time
import unittest
from collections import namedtuple

import test_differential as differential
from pop3ext_harness import Dovecot, mail
from pop3ext_harness.case import WORK_ROOT
from pop3ext_harness.pop3raw import Conversation, EOF, is_multiline_command

USER = differential.USER
PASSWORD = differential.PASSWORD
BIG = differential.BIG

# Dovecot 2.3.19.1: src/pop3/pop3-client.c MAX_INBUF_SIZE (a command line
# after login, CRLF included, must fit) and login-common's
# LOGIN_MAX_INBUF_SIZE (1218 - 128 - 64: the line limit of pop3-login)
POP3_INBUF = 2048
LOGIN_INBUF = 1026

# a log line that means a process died or gave up
BAD_LOG = re.compile(r"^.*(?:Panic:|Fatal:|killed with signal).*$", re.M)


class Step(namedtuple("Step", "data multi")):
    """One write; multi: a list of booleans, one per response expected
    (True: multi-line), when the command names alone don't tell."""


Case = namedtuple("Case", "name state steps bug rst")

# replies after which Dovecot closes the connection: the client reads to
# EOF before it writes on (whether a write after the close still succeeds
# is the kernel's timing, not the server's answer)
CLOSING = (b"-ERR Input line too long.", b"-ERR Too many bad commands.",
           b"-ERR Too many invalid bad commands.", b"+OK Logging out",
           b"-ERR Input buffer full, aborting")

# Dovecot's auth penalty delays logins from an address that failed one,
# up to 15 s: every case talks from an address of its own on 127/8 (the
# fresh session after it from 127.0.0.1)
_next_source = [0]


def next_source():
    _next_source[0] += 1
    n = _next_source[0]
    return "127.%d.%d.2" % (1 + n // 250, n % 250 + 1)


class SourceConversation(Conversation):
    """A Conversation from a chosen loopback source address."""

    def __init__(self, port, source, timeout=30, rcvbuf=None):
        real = socket.socket

        def bound(*args, **kw):
            sock = real(*args, **kw)
            sock.bind((source, 0))
            return sock
        socket.socket = bound
        try:
            super().__init__(port, timeout=timeout, rcvbuf=rcvbuf)
        finally:
            socket.socket = real


def case(name, state, *steps, bug=None, rst=False):
    """state: "auth" (greeting read), "user" (USER accepted), "trans"
    (logged in). bug: the reason this case is a known plugin bug (the test
    is then an expected failure). rst: the server closes with input
    unread, so the kernel answers with a reset that may destroy its last
    reply before the client reads it; the comparison then ignores that
    reply (the logged reason still has to be the same)."""
    return Case(name, state, [s if isinstance(s, Step) else Step(s, None)
                              for s in steps], bug, rst)


LIMIT_REPLIES = (b"-ERR Input line too long.\r\n",
                 b"-ERR Input buffer full, aborting\r\n")


def without_reset_artefacts(transcript):
    out = []
    for who, data in transcript:
        if who == "S":
            if data in LIMIT_REPLIES or data == b"<send failed>":
                continue
            for r in LIMIT_REPLIES:
                data = data.replace(r + EOF, EOF)
            if data == EOF and out and out[-1] == ("S", EOF):
                continue
        out.append((who, data))
    return out


def catalogue():
    c = []
    add = c.append

    # -- overlong lines ----------------------------------------------------
    # lengths count the whole line, CRLF included
    for total in (POP3_INBUF - 2, POP3_INBUF - 1, POP3_INBUF):
        add(case("overlong_noop_%d" % total, "trans",
                 b"NOOP " + b"x" * (total - 7) + b"\r\n", b"STAT\r\n"))
    # a full buffer without a line end, then the client's EOF: Dovecot
    # reads all of it, so its reply is sure to arrive
    add(case("overlong_noop_full_buffer_no_lf", "trans",
             b"NOOP " + b"x" * (POP3_INBUF - 5)))
    for total in (POP3_INBUF + 1, POP3_INBUF + 2, 2 * POP3_INBUF, 65536):
        add(case("overlong_noop_%d" % total, "trans",
                 b"NOOP " + b"x" * (total - 7) + b"\r\n", b"STAT\r\n",
                 rst=True))
    add(case("overlong_retr_argument", "trans",
             b"RETR " + b"0" * 3000 + b"2\r\n", b"STAT\r\n", rst=True))
    add(case("overlong_lf_only", "trans",
             b"NOOP " + b"x" * (POP3_INBUF - 5) + b"\n", b"STAT\r\n",
             rst=True))
    for total in (LOGIN_INBUF - 1, LOGIN_INBUF, LOGIN_INBUF + 1, 4000):
        add(case("overlong_login_user_%d" % total, "auth",
                 b"USER " + b"u" * (total - 7) + b"\r\n", b"CAPA\r\n",
                 rst=total > LOGIN_INBUF - 2))
    add(case("overlong_login_pass", "user",
             b"PASS " + b"p" * 3000 + b"\r\n", b"NOOP\r\n", rst=True))
    add(case("overlong_split_in_many_writes", "trans",
             *([b"NOOP " + b"z" * 500] + [b"z" * 500] * 2 +
               [b"\r", b"\n", b"STAT\r\n"])))

    # -- NUL, 8-bit, invalid UTF-8 ----------------------------------------
    add(case("nul_in_commands", "trans", b"NO\x00OP\r\n", b"STAT\x00\r\n",
             b"\x00\r\n", b"RETR\x002\r\n", b"DELE 2\x00\r\n",
             b"UIDL \x003\r\n", b"STAT\r\n"))
    add(case("nul_only_line", "trans", b"\x00" * 100 + b"\r\n",
             b"NOOP\r\n"))
    add(case("nul_in_login", "auth", b"USER ali\x00ce\r\n",
             b"PASS secret\r\n", b"STAT\r\n"))
    add(case("nul_before_user", "auth", b"\x00USER alice\r\n",
             b"CAPA\r\n"))
    add(case("eightbit_commands", "trans", b"NO\xffOP\r\n",
             b"LIST \xc3\xa9\r\n", b"RETR \xff\r\n", b"\xe2\x82\r\n",
             b"TOP 2 \xa0\r\n", b"STAT\r\n"))
    add(case("invalid_utf8_user", "auth",
             b"USER \xc0\xaf\xed\xa0\x80\xf8\x88\x80\x80\x80\r\n",
             b"PASS secret\r\n", b"CAPA\r\n"))
    add(case("utf8_user", "auth", b"USER \xc3\xa4lice\r\n",
             b"PASS secret\r\n"))

    # -- line ends -----------------------------------------------------------
    add(case("cr_inside_line", "trans", b"NOOP\rSTAT\r\n", b"STAT\r\n"))
    add(case("cr_without_lf_then_lf", "trans", b"STAT\r", b"\n",
             b"NOOP\r\n"))
    add(case("cr_cr_lf", "trans", b"LIST\r\r\n", b"STAT\r\r\n",
             b"NOOP\r\n"))
    add(case("cr_only_at_eof", "trans", b"STAT\r\n", b"QUIT\r"))
    add(case("lf_without_cr", "trans", b"STAT\nLIST\nUIDL 1\n",
             b"RETR 2\n", b"TOP 3 1\n", b"QUIT\n"))
    add(case("lf_without_cr_login", "auth", b"USER alice\nPASS secret\n",
             b"STAT\n"))
    add(case("partial_command_in_pieces", "trans", b"LI", b"S", b"T",
             b" 2\r", b"\n", b"UI", b"DL\r\n"))

    # -- bad numbers ----------------------------------------------------------
    numbers = [("zero", b"0"), ("minus_one", b"-1"),
               ("uint32_max", b"4294967295"), ("uint32_wrap", b"4294967296"),
               ("twenty_digits", b"99999999999999999999"),
               ("hex", b"0x2"), ("plus", b"+2"), ("leading_zero", b"02"),
               ("two_spaces", b" 2"), ("trailing_space", b"2 "),
               ("tab", b"\t2"), ("trailing_garbage", b"2x"),
               ("decimal", b"2.0"), ("empty", b"")]
    for cmd in (b"RETR", b"DELE", b"LIST", b"UIDL", b"TOP"):
        for label, num in numbers:
            if cmd == b"TOP":
                steps = [b"TOP " + num + b" 1\r\n", b"TOP 2 " + num + b"\r\n"]
            else:
                steps = [cmd + b" " + num + b"\r\n"]
            add(case("number_%s_%s" % (cmd.decode().lower(), label),
                     "trans", *steps, b"STAT\r\nLIST 2\r\n"))

    # -- every command in every state -----------------------------------------
    commands = [b"USER alice", b"PASS secret", b"APOP alice "
                b"c4c9334bac560ecc979e58001b3e22fb", b"AUTH PLAIN",
                b"CAPA", b"STAT", b"LIST", b"LIST 2", b"RETR 2", b"DELE 2",
                b"NOOP", b"RSET", b"TOP 2 1", b"UIDL", b"UIDL 2", b"LAST",
                b"XCLIENT ADDR=1.2.3.4", b"ID", b"FOO", b"QUIT"]
    for state in ("auth", "user", "trans"):
        for cmd in commands:
            name = cmd.split(b" ")[0].decode().lower()
            if cmd in (b"LIST 2", b"UIDL 2"):
                name += "_arg"
            steps = [cmd + b"\r\n"]
            if cmd == b"AUTH PLAIN" and state != "trans":
                # the continuation, then a cancel
                steps.append(b"*\r\n")
            # what the state allows afterwards
            steps.append(b"CAPA\r\n" if state != "trans" else b"STAT\r\n")
            add(case("state_%s_%s" % (state, name), state, *steps))
    add(case("quit_then_more", "trans",
             b"QUIT\r\nSTAT\r\nLIST\r\nRETR 2\r\n"))
    add(case("quit_then_more_separately", "trans", b"QUIT\r\n",
             b"STAT\r\n"))
    add(case("quit_then_more_before_login", "auth",
             b"QUIT\r\nUSER alice\r\nPASS secret\r\n"))
    add(case("rset_after_deletes", "trans", b"DELE 2\r\nDELE 3\r\n",
             b"STAT\r\nRSET\r\nSTAT\r\nLIST 2\r\nRETR 3\r\n"))
    add(case("deleted_message_commands", "trans", b"DELE 2\r\n",
             b"RETR 2\r\nTOP 2 0\r\nLIST 2\r\nUIDL 2\r\nDELE 2\r\n",
             b"LIST\r\nUIDL\r\nSTAT\r\n"))

    # -- wrong argument counts ------------------------------------------------
    add(case("args_too_many_transaction", "trans",
             b"STAT 1\r\n", b"NOOP x\r\n", b"RSET 1\r\n", b"LAST x\r\n",
             b"RETR 1 2\r\n", b"DELE 1 2\r\n", b"LIST 1 2\r\n",
             b"UIDL 1 2\r\n", b"TOP 2 1 3\r\n", b"CAPA x\r\n", b"STAT\r\n"))
    add(case("args_too_few_transaction", "trans", b"RETR\r\n",
             b"DELE\r\n", b"TOP\r\n", b"TOP 2\r\n", b"TOP 2 \r\n",
             b"RETR \r\n", b"STAT\r\n"))
    add(case("quit_with_argument", "trans", b"QUIT now\r\n", b"STAT\r\n"))
    add(case("args_user_none", "auth", b"USER\r\n", b"CAPA\r\n"))
    add(case("args_user_two", "auth", b"USER alice bob\r\n",
             b"PASS secret\r\n"))
    add(case("args_pass_none", "user", b"PASS\r\n", b"CAPA\r\n"))
    add(case("args_pass_with_space", "user", b"PASS secret x\r\n",
             b"CAPA\r\n"))

    # -- case -----------------------------------------------------------------
    add(case("lower_and_mixed_case", "trans", b"stat\r\n", b"LiSt\r\n",
             b"uidl 2\r\n", b"rEtR 2\r\n", b"top 3 1\r\n", b"capa\r\n",
             b"dele 2\r\n", b"rset\r\n", b"noop\r\n", b"quit\r\n"))
    add(case("lower_case_login", "auth", b"user alice\r\n",
             b"pAsS secret\r\n", b"Stat\r\n"))

    # -- pipelining ---------------------------------------------------------
    add(case("pipelined_garbage_behind_big_retr", "trans",
             b"RETR 1\r\nFOO\r\n\x00\xff\xfe\r\nLIST 99\r\n\r\n"
             b"TOP 1 x\r\nNOOP\r\nRETR 2\r\nSTAT\r\n"))
    add(case("pipelined_overlong_behind_big_retr", "trans",
             b"RETR 1\r\n" + b"X" * POP3_INBUF))
    add(case("pipelined_bad_command_flood_behind_big_retr", "trans",
             b"RETR 1\r\n" + b"BAD\r\n" * 25 + b"NOOP\r\n"))
    add(case("bad_commands_up_to_the_limit", "trans",
             b"BAD\r\n" * 20 + b"NOOP\r\n" + b"BAD\r\n" * 21 + b"NOOP\r\n"))
    add(case("pipelined_login_and_garbage", "auth",
             b"USER alice\r\nPASS secret\r\nFOO\r\n\xff\r\nRETR 2\r\n"
             b"QUIT\r\n"))

    # -- STLS ------------------------------------------------------------------
    add(case("stls_then_plaintext", "auth", b"STLS\r\n", b"STAT\r\n"))
    add(case("stls_pipelined_with_plaintext", "auth",
             b"STLS\r\nUSER alice\r\nPASS secret\r\n"))
    add(case("stls_twice_in_user_state", "user", b"STLS\r\n",
             b"USER alice\r\n"))

    # -- AUTH, APOP, PASS ---------------------------------------------------
    add(case("auth_bad_base64_initial", "auth",
             b"AUTH PLAIN !!!notbase64\r\n", b"CAPA\r\n"))
    add(case("auth_bad_base64_continuation", "auth", b"AUTH PLAIN\r\n",
             b"****\r\n", b"CAPA\r\n"))
    add(case("auth_base64_padding_only", "auth", b"AUTH PLAIN =\r\n",
             b"CAPA\r\n"))
    add(case("auth_login_bad_base64", "auth", b"AUTH LOGIN\r\n",
             b"@@@\r\n", b"CAPA\r\n"))
    add(case("auth_plain_wrong_password", "auth",
             b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n", b"CAPA\r\n"))
    add(case("auth_plain_ok_then_transaction", "auth",
             b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", b"STAT\r\nCAPA\r\n",
             b"AUTH PLAIN\r\n"))
    add(case("auth_unknown_mechanism", "auth", b"AUTH FOO\r\n",
             b"CAPA\r\n"))
    add(case("auth_no_mechanism", "auth", Step(b"AUTH\r\n", [True]),
             b"CAPA\r\n"))
    add(case("auth_nul_in_plain", "auth",
             b"AUTH PLAIN AGFsAGljZQBzZWNyZXQ=\r\n", b"CAPA\r\n"))
    add(case("apop_garbage", "auth", b"APOP\r\n", b"APOP alice\r\n",
             b"CAPA\r\n"))
    add(case("apop_garbage_digest", "auth", b"APOP alice zz\r\n",
             b"APOP \x00 \xff\r\n", b"CAPA\r\n"))
    add(case("pass_repeated_wrong_then_right", "user", b"PASS wrong\r\n",
             b"PASS wrong\r\n", b"USER alice\r\nPASS secret\r\n",
             b"STAT\r\n"))
    add(case("pass_repeated_pipelined", "auth",
             b"USER alice\r\nPASS secret\r\nPASS secret\r\nSTAT\r\n"))
    add(case("pass_in_transaction", "trans", b"PASS secret\r\n",
             b"USER alice\r\n", b"STAT\r\n"))
    return c


CASES = catalogue()


class Recorded:
    """A transcript that was not read through a Conversation (openssl
    s_client's output), for PairTestCase.compare."""

    def __init__(self, transcript):
        self.transcript = transcript

    def close(self):
        pass

    def text(self):
        return "\n".join("%s: %r" % t for t in self.transcript)


class HostileCatalogueTest(differential.PairTestCase):
    """The pair starts once for the class; each test is one case."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = WORK_ROOT or tempfile.mkdtemp(prefix="pop3ext-test.")
        os.chmod(root, 0o755)
        cls.workdir = tempfile.mkdtemp(prefix="HostileCatalogueTest.",
                                       dir=root)
        os.chmod(cls.workdir, 0o755)
        cls.instances = []
        cls.all_passed = True
        try:
            # both: the same config but for the plugins; ssl for STLS; no
            # delay after a failed login (dozens of cases fail one)
            common = dict(users={USER: {"password": PASSWORD}}, ssl=True,
                          extra_conf="auth_failure_delay = 0\n")
            cls.stock = Dovecot(cls.workdir, name="stock", plugins=False,
                                **common)
            cls.instances.append(cls.stock)
            cls.plug = Dovecot(cls.workdir, name="plugins", **common)
            cls.instances.append(cls.plug)
            cls.stock.start()
            cls.plug.start()
            cls.stock.deliver_many(USER, differential.seed_messages())
            cls.stock.copy_home(USER, cls.plug)
            cls.pristine = os.path.join(cls.workdir, "pristine-home")
            shutil.copytree(cls.stock.home(USER), cls.pristine,
                            symlinks=True)
        except BaseException:
            cls.tearDownClass()
            raise
        cls.shared_sessions = {cls.stock.name: 0, cls.plug.name: 0}
        cls.log_offsets = {cls.stock.name: 0, cls.plug.name: 0}

    @classmethod
    def tearDownClass(cls):
        for inst in reversed(cls.instances):
            inst.cleanup()
        if cls.all_passed:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        # not PairTestCase.setUp: the class's pair serves every case
        unittest.TestCase.setUp(self)
        self.sessions = self.shared_sessions
        self.mask_retr_bytes = False
        self.logins = {}
        self.mask_reset = False
        self.source = next_source()
        # a case that failed before its summaries were read leaves them
        # behind: the next case starts after them
        for inst in (self.stock, self.plug):
            differential.PairTestCase.summaries(self, inst, 0)
            self.log_offsets[inst.name] = len(inst.log())
        self.addCleanup(self._note_outcome)

    def _note_outcome(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not outcome.success:
            type(self).all_passed = False

    def remove_workdir(self):
        # the runner removes a passed test's work dir: the class's is
        # removed by tearDownClass when every case passed
        pass

    # -- the summaries of every logged-in session of a case -------------

    def summaries(self, inst, count):
        # sorted: whether a case's session or the fresh one after it logs
        # first is the scheduler's choice
        found = sorted(super().summaries(inst,
                                         self.logins.get(inst.name, 0)))
        # how long a command ran or the session waited is not the server's
        # answer
        found = [re.sub(r"\d+(\.\d+)? secs", "N secs", s) for s in found]
        if self.mask_reset:
            found = [s.replace(": Connection reset by peer", "")
                     for s in found]
        return found

    # sessions a case logs in but does not return for comparison (their
    # summaries are still waited for)
    unreturned_logins = 0

    def count_logins(self, inst, convs):
        self.logins[inst.name] = self.unreturned_logins + sum(
            1 for c in convs
            if any(w == "S" and d.startswith(b"+OK Logged in.")
                   for w, d in c.transcript))

    # -- running one case -----------------------------------------------

    def open(self, inst, state, source=None, **kw):
        if source is None:
            source = self.source
        c = SourceConversation(inst.pop3_port, source, **kw)
        c.pending = b""
        if state == "user":
            c.command(b"USER %s\r\n" % USER.encode())
        elif state == "trans":
            c.login(USER, PASSWORD)
        return c

    @staticmethod
    def step(c, step):
        """Sends step.data and reads one response per line it completes."""
        c.send(step.data)
        parts = (c.pending + step.data).split(b"\n")
        c.pending = parts.pop()
        multi = step.multi
        if multi is None:
            multi = [is_multiline_command(p + b"\n") for p in parts]
        for m in multi:
            if c.eof and not c.buf:
                return
            resp = c.read_response(m)
            if resp.endswith(EOF):
                return
            if resp.startswith(CLOSING):
                c.read_until_eof()
                return

    @staticmethod
    def finish(c):
        """Half-closes and reads what the server still sends until it
        closes: a reply nobody asked for shows in the transcript."""
        if not (c.eof and not c.buf):
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            c.read_until_eof()

    def fresh_session(self, inst):
        c = self.open(inst, "trans", source="127.0.0.1")
        c.command(b"STAT\r\nLIST 2\r\nUIDL 10\r\nQUIT\r\n")
        return c

    def run_pair(self, script):
        """Runs script(inst) -> [Conversation] on both servers, adds a
        fresh session after it on each, compares everything, and checks
        the logs; returns the stock conversations."""
        def full(inst):
            convs = script(inst)
            convs.append(self.fresh_session(inst))
            self.count_logins(inst, convs)
            return convs
        convs = self.compare(full)
        health = convs[-1].transcript
        self.assertTrue(health[-1][1].startswith(b"+OK Logging out"),
                        "no fresh session after the case:\n%s"
                        % convs[-1].text())
        self.assertTrue(any(d.startswith(b"+OK 10 ") for w, d in health))
        for inst in (self.stock, self.plug):
            text = inst.log()
            new = text[self.log_offsets[inst.name]:]
            self.log_offsets[inst.name] = len(text)
            self.assertEqual(BAD_LOG.findall(new), [],
                             "%s's log" % inst.name)
        return convs

    def run_case(self, c):
        def script(inst):
            conv = self.open(inst, c.state)
            for step in c.steps:
                self.step(conv, step)
                if conv.eof and not conv.buf:
                    break
            self.finish(conv)
            if c.rst:
                conv.transcript = without_reset_artefacts(conv.transcript)
            return [conv]
        return self.run_pair(script)

    # -- cases that need a client misbehaving in time ---------------------

    def test_client_stops_reading_mid_retr(self):
        self.mask_retr_bytes = True
        # the stalled session is not compared byte by byte (how much of
        # the RETR it got is the socket buffers' doing), but its summary
        # is: wait for it too
        self.unreturned_logins = 1
        # it hangs up with the RETR unread: whether the log says "reset by
        # peer" is where the kernel's reset finds the server
        self.mask_reset = True

        def script(inst):
            stalled = self.open(inst, "trans", rcvbuf=8192)
            stalled.send(b"RETR 1\r\n")
            got = len(stalled.sock.recv(20000))
            # the client reads no more: a bounded wait, then what the
            # server got through stays far below the 5 MB (it is stuck
            # writing, with the session open)
            time.sleep(1)
            queued = struct.unpack("i", fcntl.ioctl(
                stalled.sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
            self.assertLess(got + queued, BIG // 2)
            # meanwhile another session works
            other = self.fresh_session(inst)
            stalled.close()
            return [other]
        self.run_pair(script)

    def test_client_disconnects_with_reply_unread(self):
        self.mask_retr_bytes = True
        # whether the RST came while the server was writing is timing
        self.mask_reset = True

        def script(inst):
            c = self.open(inst, "trans", rcvbuf=4096)
            c.send(b"RETR 1\r\nRETR 1\r\nLIST\r\n")
            # an RST, with megabytes the server still wants to write
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
            return [c]
        self.run_pair(script)

    def test_tls_renegotiation(self):
        """openssl s_client's R command asks for a TLS 1.2 renegotiation
        after login. Dovecot 2.3.19.1 with OpenSSL 3 refuses it (a "no
        renegotiation" alert ends the session): both servers must do the
        same, and a new session still works."""
        def script(inst):
            out = self.s_client(inst)
            return [Recorded([("S", line) for line in out])]
        convs = self.run_pair(script)
        lines = [d for _, d in convs[0].transcript]
        self.assertIn(b"+OK Logged in.", lines)
        self.assertIn(b"RENEGOTIATING", lines)
        self.assertTrue(any(b"no renegotiation" in line for line in lines),
                        lines)

    def s_client(self, inst):
        """Logs in over STLS with TLS 1.2, sends R, then STAT and QUIT;
        returns the POP3 lines and renegotiation notes s_client printed."""
        p = subprocess.Popen(
            ["openssl", "s_client", "-connect",
             "127.0.0.1:%d" % inst.pop3_port, "-starttls", "pop3",
             "-tls1_2", "-crlf", "-no_ign_eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        out = []
        buf = b""
        try:
            def expect(pattern, timeout=10):
                nonlocal buf
                deadline = time.monotonic() + timeout
                while not re.search(pattern, buf):
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select(
                            [p.stdout], [], [], left)[0]:
                        return False
                    data = os.read(p.stdout.fileno(), 65536)
                    if not data:
                        return False
                    buf += data
                return True

            def send(line):
                try:
                    p.stdin.write(line)
                    p.stdin.flush()
                except BrokenPipeError:
                    # s_client ended (the server closed): what it printed
                    # is the answer
                    pass

            self.assertTrue(expect(rb"Verify return code[^\n]*\n"),
                            buf.decode("latin-1"))
            send(b"USER %s\n" % USER.encode())
            expect(rb"\+OK\r?\n")
            send(b"PASS %s\n" % PASSWORD.encode())
            expect(rb"Logged in\.[^\n]*\n")
            send(b"R\n")
            # what follows R is the answer to the next command, or the end
            send(b"STAT\n")
            expect(rb"(\+OK \d+ \d+|-ERR[^\n]*|closed)\r?\n", timeout=5)
            send(b"QUIT\n")
            expect(rb"Logging out|closed", timeout=5)
        finally:
            try:
                rest, _ = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                rest, _ = p.communicate()
            buf += rest
        for line in buf.split(b"\n"):
            line = line.rstrip(b"\r")
            if re.match(rb"^(\+OK|-ERR|RENEGOTIATING|DONE|closed|"
                        rb"[0-9A-F]+:error:)", line):
                # an OpenSSL error line names a pid: keep its reason
                line = re.sub(rb"^[0-9A-F]+:", b"", line)
                out.append(line)
        return out


def _make_test(c):
    def test(self):
        self.run_case(c)
    test.__doc__ = "hostile case %s (%s state)" % (c.name, c.state)
    if c.bug:
        test = unittest.expectedFailure(test)
    return test


def _add_cases():
    names = set()
    for i, c in enumerate(CASES):
        assert c.name not in names, c.name
        names.add(c.name)
        setattr(HostileCatalogueTest, "test_%03d_%s" % (i, c.name),
                _make_test(c))


_add_cases()


class CatalogueShapeTest(unittest.TestCase):

    def test_catalogue_is_big_enough(self):
        # the issue asks for at least 60 bad inputs
        self.assertGreaterEqual(len(CASES), 60)
        states = {c.state for c in CASES}
        self.assertEqual(states, {"auth", "user", "trans"})
