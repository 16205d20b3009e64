"""Deliberately broken LDAP servers on 127.0.0.1, for the outage tests:

    Tarpit()     accepts TCP and never answers (a hung or SIGSTOPped slapd,
                 a TCP-only load balancer): as ldap:// it hangs the bind or
                 the search or the StartTLS request, as ldaps:// the TLS
                 handshake
    BindThenTarpit()  answers binds with success, then hangs on searches
    FakeLdap(rules)   answers binds, and searches as rules say (hang on
                 some, an error code for others, else no entry)
    Closer()     accepts and closes at once (a load balancer with a dead
                 backend)
    FullQueue()  listens with a full accept queue, so that connect() hangs
                 (a firewall that drops, a dead host)

Each counts the connections it accepted (.accepts) and has .uri/.ldaps_uri;
stop() closes everything. They run in a thread of the test process."""

import selectors
import socket
import threading
import time


class _Listener:

    def __init__(self, backlog=64):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.accepts = 0
        self.accepted = threading.Event()

    @property
    def uri(self):
        return "ldap://127.0.0.1:%d" % self.port

    @property
    def ldaps_uri(self):
        return "ldaps://127.0.0.1:%d" % self.port

    def wait_accept(self, count=1, timeout=10):
        """Waits until count connections were accepted in all."""
        deadline = time.monotonic() + timeout
        while self.accepts < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.accepts >= count


class _Threaded(_Listener):

    def __init__(self):
        super().__init__()
        self._stop = threading.Event()
        self._conns = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(0.05):
                if key.fileobj is self.sock:
                    try:
                        c, _ = self.sock.accept()
                    except OSError:
                        continue
                    self.accepts += 1
                    self.accepted.set()
                    if self.on_accept(c):
                        c.setblocking(False)
                        sel.register(c, selectors.EVENT_READ)
                        self._conns.append(c)
                else:
                    # read and forget what the client sends; notice EOF
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        self.on_data(key.fileobj, data)
                    else:
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
                        self._conns.remove(key.fileobj)
        sel.close()

    def on_accept(self, c):
        raise NotImplementedError

    def on_data(self, c, data):
        pass

    def stop(self):
        self._stop.set()
        self._thread.join()
        for c in self._conns:
            c.close()
        self.sock.close()


class Tarpit(_Threaded):
    """Accepts, reads, never writes."""

    def on_accept(self, c):
        return True


def _ber_length(data, i):
    """(length, index after it) of the BER length at data[i]."""
    n = data[i]
    if n < 0x80:
        return n, i + 1
    n &= 0x7f
    return int.from_bytes(data[i + 1:i + 1 + n], "big"), i + 1 + n


class BindThenTarpit(Tarpit):
    """Answers every bind with success, then never answers anything else:
    a server that hangs on searches."""

    def on_accept(self, c):
        self._buf = getattr(self, "_buf", {})
        self._buf[c] = b""
        return True

    def on_data(self, c, data):
        buf = self._buf.get(c, b"") + data
        while len(buf) >= 2:
            length, i = _ber_length(buf, 1)
            if len(buf) < i + length:
                break
            msg, buf = buf[i:i + length], buf[i + length:]
            # messageID INTEGER, then the protocolOp's tag
            idlen = msg[1]
            self.on_message(c, msg[0:2 + idlen], msg[2 + idlen], msg)
        self._buf[c] = buf

    def on_message(self, c, msgid, op, msg):
        if op == 0x60:
            res = b"\x0a\x01\x00\x04\x00\x04\x00"
            body = msgid + b"\x61" + bytes([len(res)]) + res
            c.sendall(b"\x30" + bytes([len(body)]) + body)


class FakeLdap(BindThenTarpit):
    """Answers binds with success and searches by rules: rules maps a byte
    string found in the search request (e.g. b"slow") to None (never
    answer) or a result code; other searches end with success and no
    entry. .searches counts the searches it got."""

    def __init__(self, rules):
        self.rules = rules
        self.searches = 0
        super().__init__()

    def on_message(self, c, msgid, op, msg):
        if op != 0x63:
            return super().on_message(c, msgid, op, msg)
        self.searches += 1
        code = 0
        for marker, action in self.rules.items():
            if marker in msg:
                if action is None:
                    return
                code = action
        body = b"\x0a\x01" + bytes([code]) + b"\x04\x00\x04\x00"
        body = msgid + b"\x65" + bytes([len(body)]) + body
        c.sendall(b"\x30" + bytes([len(body)]) + body)


def _tlv(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def _octets(value):
    return _tlv(0x04, value if isinstance(value, bytes) else value.encode())


class PagedLister(FakeLdap):
    """Answers binds, and a paged search with one page of entries
    uid=<name> (names given) and a cookie, then hangs on the next page:
    a directory too slow to list in one go."""

    PAGED_OID = b"1.2.840.113556.1.4.319"

    def __init__(self, names):
        self.names = names
        super().__init__({})

    def on_message(self, c, msgid, op, msg):
        if op != 0x63:
            return super().on_message(c, msgid, op, msg)
        self.searches += 1
        if self.searches > 1:
            return
        for name in self.names:
            attrs = _tlv(0x30, _tlv(0x30, _octets("uid") +
                                    _tlv(0x31, _octets(name))))
            entry = _tlv(0x64, _octets("uid=%s,ou=people,dc=example,dc=test"
                                       % name) + attrs)
            c.sendall(_tlv(0x30, msgid + entry))
        done = _tlv(0x65, b"\x0a\x01\x00" + _octets("") + _octets(""))
        value = _tlv(0x30, b"\x02\x01\x00" + _octets("next-page"))
        control = _tlv(0xa0, _tlv(0x30, _octets(self.PAGED_OID) +
                                  _octets(value)))
        c.sendall(_tlv(0x30, msgid + done + control))


class Closer(_Threaded):
    """Accepts and closes at once."""

    def on_accept(self, c):
        c.close()
        return False


class FullQueue(_Listener):
    """listen(0), never accepts, the queue filled by our own connects: a
    further connect() gets no SYN-ACK and hangs."""

    def __init__(self):
        super().__init__(backlog=0)
        self._fillers = []
        # fill until a connect does not complete at once
        for _ in range(16):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(s)
            sel = selectors.DefaultSelector()
            sel.register(s, selectors.EVENT_WRITE)
            done = sel.select(0.3)
            sel.close()
            if not done:
                break
        else:
            raise RuntimeError("could not fill the accept queue")

    def stop(self):
        for s in self._fillers:
            s.close()
        self.sock.close()
