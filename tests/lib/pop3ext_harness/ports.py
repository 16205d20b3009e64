"""Free TCP ports on loopback, in 20000-32767 (below Linux's ephemeral range,
so that no outgoing connection of another program takes one meanwhile)."""

import random
import socket
import threading

PORT_MIN = 20000
PORT_MAX = 32767

_lock = threading.Lock()
_handed_out = set()


def _is_free(port):
    for family, addr in ((socket.AF_INET, "127.0.0.1"),):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    # something may listen on the wildcard address or be in TIME_WAIT
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        return s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        s.close()


def free_port():
    """Returns a port that nothing listens on now and that this process has
    not handed out before."""
    with _lock:
        for _ in range(1000):
            port = random.randint(PORT_MIN, PORT_MAX)
            if port in _handed_out:
                continue
            if _is_free(port):
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port in %d-%d" % (PORT_MIN, PORT_MAX))


def wait_port(port, timeout, alive=None):
    """Waits until 127.0.0.1:port accepts connections. alive() may tell that
    the server has died meanwhile. Returns True when it accepts."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        finally:
            s.close()
        time.sleep(0.05)
    return False
