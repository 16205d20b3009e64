"""A byte-exact POP3 conversation on a raw socket, recorded as a
transcript: what the client sent and every byte the server answered, split
into responses. Used to compare stock Dovecot with Dovecot plus plugins.

The reader knows which responses are multi-line (RFC 1939/2449: CAPA, LIST
and UIDL without argument, RETR, TOP, when the answer is +OK), so it reads
exactly the responses it expects, however TCP splits them."""

import socket
import time

MULTILINE = {"CAPA", "RETR", "TOP"}
MULTILINE_NO_ARG = {"LIST", "UIDL"}

EOF = b"<EOF>"


def is_multiline_command(line):
    parts = line.decode("latin-1").strip("\r\n").split(" ", 1)
    name = parts[0].upper()
    has_arg = len(parts) > 1 and parts[1].strip() != ""
    return name in MULTILINE or (name in MULTILINE_NO_ARG and not has_arg)


def command_lines(data):
    """The complete command lines in data (bytes ending in CRLF or LF)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line + b"\n" for line in lines]


class Conversation:
    def __init__(self, port, host="127.0.0.1", timeout=30, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        # [("C", bytes) | ("S", bytes)]
        self.transcript = []
        self.read_response(False)

    # -- reading -------------------------------------------------------------

    def _fill(self, chunk=65536, delay=0):
        if self.eof:
            return False
        if delay:
            time.sleep(delay)
        try:
            data = self.sock.recv(chunk)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, end):
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out

    def _take_until(self, terminator, chunk=65536, delay=0):
        pos = 0
        while True:
            i = self.buf.find(terminator, pos)
            if i >= 0:
                return self._take(i + len(terminator))
            pos = max(0, len(self.buf) - len(terminator) + 1)
            if not self._fill(chunk, delay):
                return self._take(len(self.buf)) + EOF

    def _take_body(self, chunk=65536, delay=0):
        """The rest of a multi-line response after its status line: up to
        and including the terminating ".CRLF" line."""
        pos = 0
        while True:
            if len(self.buf) >= 3 and self.buf.startswith(b".\r\n"):
                return self._take(3)
            i = self.buf.find(b"\r\n.\r\n", pos)
            if i >= 0:
                return self._take(i + 5)
            pos = max(0, len(self.buf) - 4)
            if not self._fill(chunk, delay):
                return self._take(len(self.buf)) + EOF

    def read_response(self, multiline, chunk=65536, delay=0):
        """Reads one response; records and returns it (ending in <EOF> if
        the server closed the connection first)."""
        resp = self._take_until(b"\r\n", chunk, delay)
        if multiline and resp.startswith(b"+OK") and not resp.endswith(EOF):
            resp += self._take_body(chunk, delay)
        self.transcript.append(("S", resp))
        return resp

    def read_until_eof(self):
        while self._fill():
            pass
        data = self._take(len(self.buf))
        self.transcript.append(("S", data + EOF))
        return data

    # -- writing -------------------------------------------------------------

    def send(self, data):
        self.transcript.append(("C", data))
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.transcript.append(("S", b"<send failed>"))

    def command(self, data, chunk=65536, delay=0):
        """Sends one or more pipelined command lines and reads one response
        per line. Returns the responses."""
        self.send(data)
        out = []
        for line in command_lines(data):
            if self.eof and not self.buf:
                break
            out.append(self.read_response(is_multiline_command(line),
                                          chunk, delay))
            if out[-1].endswith(EOF):
                break
        return out

    def login(self, user, password):
        return self.command(b"USER %s\r\nPASS %s\r\n" % (
            user.encode(), password.encode()))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def text(self):
        """The transcript as readable text, for assertion messages."""
        out = []
        for who, data in self.transcript:
            shown = data if len(data) < 400 else \
                data[:200] + b"...(%d bytes)..." % len(data) + data[-100:]
            out.append("%s: %r" % (who, shown))
        return "\n".join(out)
