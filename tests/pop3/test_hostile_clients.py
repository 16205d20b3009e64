"""A catalogue of hostile POP3 input (issue 9's gate): every entry is sent,
in a connection of its own, to stock Dovecot and to Dovecot with the
project's plugins (the shipped dovecot-pop3ext.conf, default policy) on
byte-identical mailboxes, and every byte each server answered, the logged
session summaries and whether the session survived must be the same. The
only difference allowed is the one a policy makes: CAPA after login gains
IMPLEMENTATION and EXPIRE (test_differential.normalize_plugin).

Entries: overlong lines, NUL, 8-bit and control bytes, bad numbers, every
command in both states (before login, by pop3-login; after, by the pop3
process and the dispatcher), pipelined garbage behind RETR, a client that
stops reading mid-RETR, plain text pipelined after STLS, and a TLS
renegotiation."""

import os
import socket
import ssl
import subprocess
import threading
import time

from pop3ext_harness import TestCase
from pop3ext_harness.pop3raw import Conversation, EOF

from test_differential import PairTestCase, USER, PASSWORD

COMMANDS = [b"USER alice", b"PASS secret", b"APOP alice 0123", b"AUTH",
            b"AUTH PLAIN", b"STLS", b"CAPA", b"STAT", b"LIST", b"LIST 2",
            b"RETR 2", b"DELE 2", b"NOOP", b"RSET", b"TOP 2 1", b"UIDL",
            b"UIDL 2", b"LAST", b"XTND XMIT", b"QUIT"]

BAD_NUMBERS = [b"RETR 0", b"RETR -1", b"RETR +1", b"RETR 1.0", b"RETR 0x1",
               b"RETR 00002", b"RETR 4294967295", b"RETR 4294967296",
               b"RETR 18446744073709551616", b"RETR 1e1", b"RETR  2",
               b"RETR 2 ", b"DELE -0", b"DELE 99999999999999999999",
               b"TOP 2 -1", b"TOP 2 4294967296", b"TOP 2 99999999999999999999",
               b"TOP 0 0", b"TOP 2 1 1", b"LIST -2", b"LIST 2x",
               b"UIDL 0x2", b"UIDL 4294967297"]

ODD_BYTES = [b"RETR \xff", b"\xc3\xa9STAT", b"LIST \x80", b"NOOP\xfe",
             b"UIDL \xe2\x80\xae2", b"DELE 2\xa0", b"\x1b[2J", b"\x7f",
             b"ST\x08AT", b"LIST\t2", b"RETR\x0b2", b"\x00\x00\x00\x00",
             b"STAT\x00\xff", b"\r", b"STAT\rLIST", b"GET / HTTP/1.0",
             b"EHLO client.example", b"A001 LOGIN alice secret",
             b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"]

LONG_LINES = [b"NOOP " + b"x" * 1000, b"RETR " + b"9" * 3000,
              b"X" * 4090, b"LIST " + b"1" * 5000, b"U" * 70000,
              b"NOOP " + b" " * 20000]


class HostileCatalogueTest(PairTestCase):

    # a client that hangs up with the server's reply unread: whether the
    # server's log says "Connection reset by peer" depends on where the
    # kernel's reset finds it (reading or writing), not on the plugins
    mask_reset = False

    def summaries(self, inst, count):
        found = super().summaries(inst, count)
        if self.mask_reset:
            found = [x.replace("Connection closed: Connection reset by "
                               "peer", "Connection closed") for x in found]
        return found

    def entry(self, data, login, reads=None, after=b"NOOP\r\n"):
        """Runs one entry on both servers and compares. data: bytes sent in
        one write; reads: how many responses to read (default: one per
        line of data)."""
        def script(inst):
            if login:
                c = self.session(inst)
            else:
                c = Conversation(inst.pop3_port)
            c.send(data)
            lines = data.split(b"\n")
            n = reads if reads is not None else max(
                1, len(lines) - (1 if lines[-1] == b"" else 0))
            for line in lines[:n]:
                resp = c.read_response(self.multiline(line))
                if resp.endswith(EOF):
                    break
                if resp.startswith((b"-ERR Input line too long",
                                    b"-ERR Input buffer full")):
                    # the server hangs up: whether a further command
                    # still reaches it would be a race
                    c.read_until_eof()
                    break
            if not c.eof:
                # did the session survive, in which state?
                c.command(after)
            return [c]
        self.compare(script, sessions=1 if login else 0)

    @staticmethod
    def multiline(line):
        from pop3ext_harness.pop3raw import is_multiline_command
        return is_multiline_command(line.rstrip(b"\r") + b"\n")

    def run_catalogue(self, entries, login):
        for data in entries:
            with self.subTest(login=login, data=data[:60]):
                self.entry(data + b"\r\n", login)
        return len(entries)

    def test_catalogue(self):
        n = 0
        # every command before login (pop3-login) and after (pop3)
        n += self.run_catalogue(COMMANDS, login=False)
        n += self.run_catalogue(COMMANDS, login=True)
        n += self.run_catalogue(BAD_NUMBERS, login=True)
        n += self.run_catalogue(ODD_BYTES, login=True)
        n += self.run_catalogue(ODD_BYTES[:8], login=False)
        n += self.run_catalogue(LONG_LINES, login=True)
        n += self.run_catalogue(LONG_LINES[:3], login=False)
        self.assertGreaterEqual(n, 60)

    def test_lf_only_and_bare_cr_endings(self):
        self.entry(b"STAT\nLIST 2\nUIDL 2\n", login=True)
        self.entry(b"STAT\r\r\nNOOP\r\n", login=True)

    def test_garbage_pipelined_behind_retr(self):
        data = b"RETR 1\r\n" + b"\x00\xff garbage \x80\r\n" * 5 + \
            b"RETR 99\r\nTOP 1 x\r\n" + b"Z" * 500 + b"\r\nSTAT\r\n"
        self.entry(data, login=True)

    def test_client_stops_reading_mid_retr(self):
        self.mask_retr_bytes = True
        self.mask_reset = True

        def script(inst):
            c = self.session(inst, rcvbuf=8192)
            c.send(b"RETR 1\r\nRETR 1\r\nDELE 2\r\nQUIT\r\n")
            c.sock.recv(4096)
            # stops reading (the 5 MB RETR fills the small buffers, so the
            # server stops reading the pipelined commands), then hangs up
            c.close()
            c2 = self.session(inst)
            c2.command(b"STAT\r\nLIST 2\r\nQUIT\r\n")
            return [c2]
        convs = self.compare(script, sessions=2)
        # the QUIT was never read: the DELE did not happen
        self.assertIn(b"+OK 10 ", b"".join(d for _, d in convs[0].transcript))


class HostileTlsTest(TestCase):
    """STLS with plain text pipelined behind it, and a client that asks
    for a TLS renegotiation, on stock Dovecot and with the plugins."""

    def setUp(self):
        super().setUp()
        self.stock = self.dovecot(name="stock", plugins=False, ssl=True,
                                  users={USER: {"password": PASSWORD}})
        self.plug = self.dovecot(name="plugins", ssl=True,
                                 users={USER: {"password": PASSWORD}})

    def stls_injection(self, inst):
        """What a client that pipelines USER/PASS in plain text behind STLS
        sees: [greeting, STLS answer, then the answers inside TLS, or the
        error that ended the connection]."""
        s = socket.create_connection(("127.0.0.1", inst.pop3_port), 30)
        f = s.makefile("rb")
        out = [f.readline()]
        # plain text after STLS in the same packet must be dropped, not
        # run inside the TLS session (CVE-2011-0411 class)
        s.sendall(b"STLS\r\nUSER %s\r\nPASS %s\r\n" % (USER.encode(),
                                                       PASSWORD.encode()))
        out.append(f.readline())
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            t = ctx.wrap_socket(s, server_hostname="localhost")
            t.sendall(b"STAT\r\nQUIT\r\n")
            tf = t.makefile("rb")
            out += [tf.readline(), tf.readline()]
            t.close()
        except (ssl.SSLError, OSError) as e:
            out.append(type(e).__name__)
            s.close()
        return out

    def renegotiate(self, inst):
        """openssl s_client over STLS, TLS 1.2, asks for a renegotiation
        ("R") before CAPA; returns the POP3 lines it printed."""
        p = subprocess.Popen(
            ["stdbuf", "-o0", "openssl", "s_client", "-connect",
             "127.0.0.1:%d" % inst.pop3_port, "-starttls", "pop3",
             "-tls1_2", "-crlf", "-no_ign_eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        out = bytearray()

        def read():
            for chunk in iter(lambda: p.stdout.read1(4096), b""):
                out.extend(chunk)
        reader = threading.Thread(target=read)
        reader.start()

        def wait_for(needle, timeout):
            deadline = time.monotonic() + timeout
            while needle not in out and time.monotonic() < deadline:
                time.sleep(0.05)
            return needle in out
        try:
            # s_client takes commands once its handshake is done
            self.assertTrue(wait_for(b"Verify return code", 60), bytes(out))
            p.stdin.write(b"R\n")
            p.stdin.flush()
            # the server's answer: the refusal, which ends the connection
            # (and s_client), or - were it allowed - a session that goes
            # on, which CAPA then shows
            deadline = time.monotonic() + 60
            while b"no renegotiation" not in out and p.poll() is None and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            if p.poll() is None and b"no renegotiation" not in out:
                p.stdin.write(b"CAPA\n")
                p.stdin.flush()
            p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        reader.join(10)
        text = bytes(out).decode("latin-1")
        # (s_client prints RENEGOTIATING behind spaces and control bytes)
        lines = ["RENEGOTIATING" if "RENEGOTIATING" in line else line.strip()
                 for line in text.splitlines()]
        pop3 = [line for line in lines
                if line.startswith(("+OK", "-ERR", "RENEGOTIATING", "."))
                and "IMPLEMENTATION" not in line and "EXPIRE" not in line]
        self.last_text = text
        return pop3, "no renegotiation" in text

    def test_plain_text_after_stls_is_dropped(self):
        a = self.stls_injection(self.stock)
        b = self.stls_injection(self.plug)
        self.assertEqual(a, b)
        self.assertTrue(a[1].startswith(b"+OK"), a)
        # the injected USER/PASS did not log in: the connection ended, or
        # STAT inside TLS is refused
        self.assertTrue(isinstance(a[2], str) or a[2].startswith(b"-ERR"),
                        a)
        self.assertNotIn("Login: user=<%s>" % USER, self.stock.log())
        self.assertNotIn("Login: user=<%s>" % USER, self.plug.log())

    def test_tls_renegotiation(self):
        a = self.renegotiate(self.stock)
        b = self.renegotiate(self.plug)
        self.assertEqual(a, b)
        pop3, refused = a
        self.assertIn("RENEGOTIATING", pop3, self.last_text[-1500:])
        # OpenSSL 3 refuses a client's renegotiation; both the same way
        self.assertTrue(refused, a)
