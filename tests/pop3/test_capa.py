"""CAPA after login: Dovecot's list, then IMPLEMENTATION dovecot-pop3ext;
before login pop3-login answers, unchanged."""

import re
import subprocess

from pop3ext_harness import TestCase

STOCK = [b"CAPA", b"TOP", b"UIDL", b"RESP-CODES", b"PIPELINING",
         b"AUTH-RESP-CODE"]


def configured_version():
    from pop3ext_harness import env
    with open(env.built("pop3ext-config.h")) as f:
        return re.search(r'POP3EXT_VERSION "([^"]+)"', f.read()).group(1)


class CapaTest(TestCase):

    def test_capa_after_login_adds_implementation(self):
        d = self.dovecot(users={"alice": {}})
        p = d.pop3("alice")
        resp, lines, _ = p._longcmd("CAPA")
        p.quit()
        self.assertEqual(resp, b"+OK")
        self.assertEqual(lines, STOCK + [
            b"EXPIRE NEVER",
            b"IMPLEMENTATION dovecot-pop3ext " +
            configured_version().encode()])

    def test_stock_capa_has_no_implementation(self):
        d = self.dovecot(users={"alice": {}}, plugins=False)
        p = d.pop3("alice")
        resp, lines, _ = p._longcmd("CAPA")
        p.quit()
        self.assertEqual(lines, STOCK)

    def test_capa_before_login_is_pop3_logins(self):
        d = self.dovecot(users={"alice": {}})
        stock = self.dovecot(name="stock", users={"alice": {}},
                             plugins=False)
        import poplib
        a = poplib.POP3("127.0.0.1", d.pop3_port).capa()
        b = poplib.POP3("127.0.0.1", stock.pop3_port).capa()
        self.assertEqual(a, b)
        self.assertNotIn("IMPLEMENTATION", a)

    def test_curl_sees_implementation(self):
        d = self.dovecot(users={"alice": {}})
        r = subprocess.run(["curl", "-sS", "-u", "alice:secret", "-X", "CAPA",
                            "pop3://127.0.0.1:%d" % d.pop3_port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.replace("\r", "").strip().split("\n")
        self.assertEqual(lines[-1], "IMPLEMENTATION dovecot-pop3ext " +
                         configured_version())
        self.assertIn("UIDL", lines)
