"""Test messages: deterministic, with the features POP3 has to get right
(dot-stuffing, long lines, CRLF)."""

import email.utils
import hashlib


def message(n, size=2000, subject=None, sender="sender@example.test",
            to="user@example.test", date=None):
    """Message number n of about size bytes (CRLF line ends). Lines that
    start with '.' are included so that dot-stuffing is exercised."""
    subject = subject or "test message %d" % n
    date = date or email.utils.formatdate(1700000000 + n * 60)
    head = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n"
            "Message-ID: <msg%d.%s@example.test>\r\n\r\n" % (
                sender, to, subject, date, n,
                hashlib.sha1(str(n).encode()).hexdigest()[:8]))
    lines = []
    total = len(head)
    i = 0
    while total < size:
        if i % 17 == 5:
            line = ".dot line %d of message %d" % (i, n)
        elif i % 17 == 9:
            line = ".."
        else:
            seed = hashlib.sha256(b"%d-%d" % (n, i)).hexdigest()
            line = "line %d: %s" % (i, seed * (1 + i % 3))
        lines.append(line)
        total += len(line) + 2
        i += 1
    return (head + "\r\n".join(lines) + "\r\n").encode()


def big_message(n, size):
    """A message of at least size bytes built quickly (for multi-MB
    RETRs)."""
    head = ("From: sender@example.test\r\nTo: user@example.test\r\n"
            "Subject: big message %d\r\nMessage-ID: <big%d@example.test>"
            "\r\n\r\n" % (n, n)).encode()
    line = (b"%d " % n) + b"x" * 74 + b"\r\n"
    dot = b".starts with a dot\r\n"
    block = line * 50 + dot
    count = size // len(block) + 1
    return head + block * count
