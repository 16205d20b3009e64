"""Differential test of the dispatcher: the same scripted conversations run
against stock Dovecot and against Dovecot with pop3ext + pop3ext_pop3
loaded (through the shipped dovecot-pop3ext.conf, nothing else configured),
on byte-identical mailboxes. The transcripts (every byte each server sent)
and the session summaries Dovecot logs must be identical; the one allowed
difference is what CAPA after login gains: IMPLEMENTATION, and EXPIRE NEVER
for the default policy (nothing deletes retrieved mail)."""

import os
import re
import time

from pop3ext_harness import TestCase, mail
from pop3ext_harness.pop3raw import Conversation, EOF

USER = "alice"
PASSWORD = "secret"
BIG = 5 * 1024 * 1024


def seed_messages():
    msgs = [mail.big_message(1, BIG)]
    msgs += [mail.message(n, size=1500 + n * 700) for n in range(2, 9)]
    # a body of nothing but dot lines, and an empty body
    msgs.append(b"From: a@example.test\r\nSubject: dots\r\n\r\n.\r\n..\r\n"
                b"...\r\n. x\r\n.\r\n")
    msgs.append(b"From: a@example.test\r\nSubject: empty\r\n\r\n")
    return msgs


class PairTestCase(TestCase):
    """A stock and a plugin instance serving the same mailbox."""

    def setUp(self):
        super().setUp()
        self.stock = self.dovecot(name="stock", plugins=False,
                                  users={USER: {"password": PASSWORD}})
        self.plug = self.dovecot(name="plugins",
                                 users={USER: {"password": PASSWORD}})
        self.stock.deliver_many(USER, seed_messages())
        # byte-identical mailboxes: same files, UIDVALIDITY and UIDs
        self.stock.copy_home(USER, self.plug)
        self.sessions = {self.stock.name: 0, self.plug.name: 0}
        self.mask_retr_bytes = False

    # -- running a script on both --------------------------------------------

    def summaries(self, inst, count):
        """The last count "Disconnected:" summaries of USER's pop3
        sessions in inst's log, without pids and session ids."""
        pat = re.compile(r"pop3\(%s\)<[^>]*><[^>]*>: Info: (Disconnected: .*)"
                         % USER)
        deadline = time.monotonic() + 15
        while True:
            found = pat.findall(inst.log())
            if len(found) >= self.sessions[inst.name] + count or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        new = found[self.sessions[inst.name]:]
        self.sessions[inst.name] = len(found)
        if self.mask_retr_bytes:
            # how much of a RETR reached a client that hung up depends on
            # socket buffers, not on the server
            new = [re.sub(r"retr=(\d+)/\d+", r"retr=\1/N", s) for s in new]
        return new

    def normalize_plugin(self, transcript):
        """Removes the IMPLEMENTATION line from CAPA responses after login
        (checking that each has exactly one)."""
        out = []
        logged_in = False
        for who, data in transcript:
            if who == "S" and logged_in and data.startswith(b"+OK\r\n") \
                    and data.endswith(b"\r\n.\r\n") and b"\r\nCAPA\r\n" in data:
                lines = data.split(b"\r\n")
                impl = [line for line in lines
                        if line.startswith(b"IMPLEMENTATION ")]
                self.assertEqual(len(impl), 1, data)
                self.assertTrue(impl[0].startswith(
                    b"IMPLEMENTATION dovecot-pop3ext "), impl)
                # the capabilities the plugins add: IMPLEMENTATION, and
                # EXPIRE for the (default) policy
                self.assertIn(b"EXPIRE NEVER", lines)
                data = b"\r\n".join(line for line in lines
                                    if line not in (impl[0],
                                                    b"EXPIRE NEVER"))
            if who == "S" and data.startswith(b"+OK Logged in."):
                logged_in = True
            out.append((who, data))
        return out

    def compare_lines(self, lines):
        """Sends lines, one command each, in one logged-in session on both
        servers and compares."""
        def script(inst):
            c = self.session(inst)
            for line in lines:
                c.command(line + b"\r\n")
            return [c]
        self.compare(script)

    def compare(self, script, sessions=1):
        """Runs script(instance) -> [Conversation] on both servers and
        compares the transcripts and the logged session summaries."""
        convs = {}
        for inst in (self.stock, self.plug):
            convs[inst.name] = script(inst)
            for c in convs[inst.name]:
                c.close()
        stock_t = [c.transcript for c in convs[self.stock.name]]
        plug_t = [self.normalize_plugin(c.transcript)
                  for c in convs[self.plug.name]]
        for i, (a, b) in enumerate(zip(stock_t, plug_t)):
            if a != b:
                self.fail("conversation %d differs:\n--- stock\n%s\n"
                          "--- with plugins\n%s" % (
                              i, convs[self.stock.name][i].text(),
                              convs[self.plug.name][i].text()))
        self.assertEqual(len(stock_t), len(plug_t))
        self.assertEqual(self.summaries(self.stock, sessions),
                         self.summaries(self.plug, sessions))
        return convs[self.stock.name]

    def session(self, inst, **kw):
        c = Conversation(inst.pop3_port, **kw)
        c.login(USER, PASSWORD)
        return c



class DifferentialTest(PairTestCase):

    def test_every_command_one_by_one(self):
        cmds = [b"STAT", b"LIST", b"UIDL", b"LIST 2", b"UIDL 3", b"TOP 2 3",
                b"TOP 9 0", b"RETR 2", b"RETR 9", b"RETR 10", b"CAPA",
                b"NOOP", b"DELE 2", b"LIST 2", b"RETR 2", b"UIDL 2", b"STAT",
                b"RSET", b"STAT", b"LAST", b"DELE 3", b"DELE 3", b"QUIT"]

        def script(inst):
            c = self.session(inst)
            for cmd in cmds:
                c.command(cmd + b"\r\n")
            c2 = self.session(inst)
            c2.command(b"STAT\r\nUIDL\r\nQUIT\r\n")
            return [c, c2]
        convs = self.compare(script, sessions=2)
        # the scripts really exercised the mailbox
        text = b"".join(d for _, d in convs[0].transcript)
        self.assertIn(b"+OK 10 messages:", text)
        self.assertIn(b"\r\n..dot line", text)
        self.assertIn(b"+OK 9 ", b"".join(d for _, d in convs[1].transcript))

    def test_syntax_errors_and_odd_lines(self):
        lines = [b"", b" STAT", b"STAT   ", b"list   2", b"retr", b"RETR x",
                 b"DELE 999", b"TOP 2", b"TOP 2 -1", b"TOP 2 x", b"LIST 0",
                 b"UIDL 99999999999999999999", b"RETR 1 2", b"USER bob",
                 b"PASS x", b"AUTH PLAIN", b"STLS", b"APOP a b",
                 b"\tSTAT", b"stat", b"Noop", b"QUIT now"]
        self.compare_lines(lines)

    def test_nul_bytes(self):
        lines = [b"NO\x00OP", b"STAT\x00", b"\x00", b"RETR 2\x00garbage",
                 b"LIST \x002", b"QUIT\x00"]
        self.compare_lines(lines)

    def test_pipelined_after_pass_in_one_packet(self):
        # pop3-login hands what follows PASS to the pop3 process, which
        # must run it once the session is ready
        data = (b"USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 2\r\n"
                b"TOP 3 0\r\nCAPA\r\nNOOP\r\nQUIT\r\n" % (
                    USER.encode(), PASSWORD.encode()))

        def script(inst):
            c = Conversation(inst.pop3_port)
            c.command(data)
            return [c]
        convs = self.compare(script)
        self.assertTrue(convs[0].transcript[-1][1].startswith(b"+OK Logging"))

    def test_pipelined_behind_big_retr_with_slow_reader(self):
        data = b"RETR 1\r\n" + b"NOOP\r\n" * 50 + b"LIST\r\nUIDL 3\r\n" \
            b"RETR 1\r\nSTAT\r\nFOO\r\nTOP 1 2\r\nQUIT\r\n"

        def script(inst):
            # a small receive buffer and a slow reader keep the server's
            # output full, so it must stop reading input (throttling)
            c = self.session(inst, rcvbuf=16384)
            c.send(data)
            for n, line in enumerate(data.split(b"\r\n")[:-1]):
                multi = line in (b"RETR 1", b"LIST", b"TOP 1 2")
                if n < 3:
                    c.read_response(multi, chunk=8192, delay=0.001)
                else:
                    c.read_response(multi)
            return [c]
        convs = self.compare(script)
        sizes = [len(d) for w, d in convs[0].transcript if w == "S"]
        self.assertGreater(max(sizes), BIG)

    def test_many_pipelined_commands_in_one_write(self):
        data = b"".join(b"LIST %d\r\nUIDL %d\r\nTOP %d 1\r\n" % (i, i, i)
                        for i in range(1, 11)) * 20 + b"QUIT\r\n"

        def script(inst):
            c = self.session(inst)
            c.command(data)
            return [c]
        self.compare(script)

    def test_bad_command_limit(self):
        def script(inst):
            c = self.session(inst)
            # valid commands reset the counter
            c.command(b"FOO\r\n" * 15 + b"NOOP\r\n")
            c.command(b"BAR\r\n" * 20)
            c.command(b"BAZ\r\n")
            c.read_until_eof()
            return [c]
        convs = self.compare(script)
        self.assertIn(b"-ERR Too many bad commands.",
                      b"".join(d for _, d in convs[0].transcript))

    def test_overlong_lines(self):
        def script(inst):
            c = self.session(inst)
            c.command(b"NOOP " + b"x" * 2000 + b"\r\n")
            c2 = self.session(inst)
            c2.command(b"NOOP " + b"y" * 5000 + b"\r\n")
            c2.read_until_eof()
            return [c, c2]
        convs = self.compare(script, sessions=2)
        self.assertIn(b"Input line too long",
                      b"".join(d for _, d in convs[1].transcript))

    def test_client_drops_mid_retr(self):
        self.mask_retr_bytes = True

        def script(inst):
            c = self.session(inst)
            c.command(b"DELE 3\r\n")
            c.send(b"RETR 1\r\n")
            c.sock.recv(20000)
            c.close()
            # the DELE never reached UPDATE state: nothing changed
            c2 = self.session(inst)
            c2.command(b"STAT\r\nLIST 3\r\nQUIT\r\n")
            return [c2]
        convs = self.compare(script, sessions=2)
        self.assertIn(b"+OK 10 ", b"".join(d for _, d in convs[0].transcript))

    def test_quit_applies_deletions(self):
        def script(inst):
            c = self.session(inst)
            c.command(b"DELE 2\r\nDELE 4\r\nRETR 5\r\nQUIT\r\n")
            c2 = self.session(inst)
            c2.command(b"STAT\r\nUIDL\r\nQUIT\r\n")
            return [c, c2]
        convs = self.compare(script, sessions=2)
        self.assertIn(b"+OK 8 ", b"".join(d for _, d in convs[1].transcript))

    def test_large_listing_with_slow_reader(self):
        # LIST and UIDL of 3000 messages stream from the flush callback
        for inst in (self.stock, self.plug):
            inst.add_user("many", PASSWORD)
        maildir = os.path.join(self.stock.home("many"), "Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        for n in range(3000):
            body = b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n)
            name = "%d.M%dP1.pop3ext,S=%d:2," % (1700000000 + n, n, len(body))
            with open(os.path.join(maildir, "cur", name), "wb") as f:
                f.write(body)
        for root, dirs, files in os.walk(self.stock.home("many")):
            for n in dirs + files:
                os.chown(os.path.join(root, n), self.stock.uid,
                         self.stock.gid)
        os.chown(self.stock.home("many"), self.stock.uid, self.stock.gid)
        self.stock.doveadm("force-resync", "-u", "many", "INBOX")
        self.stock.copy_home("many", self.plug)

        def script(inst):
            c = Conversation(inst.pop3_port, rcvbuf=4096)
            c.login("many", PASSWORD)
            c.send(b"LIST\r\nUIDL\r\nSTAT\r\nQUIT\r\n")
            c.read_response(True, chunk=512, delay=0.0005)
            c.read_response(True, chunk=512, delay=0.0005)
            c.read_response(False)
            c.read_response(False)
            return [c]
        convs = {}
        for inst in (self.stock, self.plug):
            convs[inst.name] = script(inst)[0]
            convs[inst.name].close()
        self.assertEqual(convs[self.stock.name].transcript,
                         convs[self.plug.name].transcript)
        self.assertIn(b"+OK 3000 ", convs[self.stock.name].transcript[-2][1])

    def test_capa_differs_only_by_implementation(self):
        def script(inst):
            c = Conversation(inst.pop3_port)
            c.command(b"CAPA\r\n")
            c.login(USER, PASSWORD)
            c.command(b"CAPA\r\nSTAT\r\nCAPA\r\nQUIT\r\n")
            return [c]
        self.compare(script)


class IdleTimeoutTest(PairTestCase):
    """Dovecot's 10-minute idle timeout (hard-coded) is kept by the
    dispatcher: commands reset it, silence ends the session. The pop3
    processes of both servers run 100 times faster under libfaketime."""

    def setUp(self):
        TestCase.setUp(self)
        self.stock = self.dovecot(name="stock", plugins=False,
                                  users={USER: {"password": PASSWORD}},
                                  pop3_clock_speed=100)
        self.plug = self.dovecot(name="plugins",
                                 users={USER: {"password": PASSWORD}},
                                 pop3_clock_speed=100)
        self.stock.deliver(USER, mail.message(1))
        self.stock.copy_home(USER, self.plug)
        self.sessions = {self.stock.name: 0, self.plug.name: 0}
        self.mask_retr_bytes = False

    def summaries(self, inst, count):
        # "no input for 601 secs": the second depends on scheduling
        return [re.sub(r"for \d+ secs", "for N secs", s)
                for s in super().summaries(inst, count)]

    def test_idle_timeout(self):
        def script(inst):
            start = time.monotonic()
            c = self.session(inst, timeout=60)
            # 3 x 2.5 s = 12.5 minutes of the server's time in all, but
            # never 10 minutes without input
            for _ in range(3):
                time.sleep(2.5)
                c.command(b"NOOP\r\n")
            c.read_until_eof()
            self.assertGreater(time.monotonic() - start, 7.5 + 5)
            return [c]
        convs = self.compare(script)
        self.assertEqual(convs[0].transcript[-1][1],
                         b"-ERR Disconnected for inactivity.\r\n" + EOF)

