"""Credentials lookups (M2): with ldap_password_attribute, the service
account reads the user's password hash, so that lookups without a password
work (doveadm auth lookup, proxying, LMTP) and mechanisms that need the
stored password (CRAM-MD5 with a PLAIN value) do."""

import base64
import hashlib
import hmac
import socket

from authtest import AuthTestCase, ldap_conf, pop3_login

OK = b"+OK Logged in."


class CredentialsTest(AuthTestCase):

    def setup(self, **conf):
        s = self.slapd(users={
            "alice": {"password": "alice-pw",
                      "attrs": {"pop3extOnDele": "hide"}},
            "bob": {"password": "bob-pw"}},
            service_reads_passwords=True)
        keys = {"ldap_password_attribute": "userPassword"}
        keys.update(conf)
        d = self.auth_dovecot(self.write_conf(ldap_conf([s], **keys)),
                              extra_conf="auth_mechanisms = plain "
                              "cram-md5\n")
        return s, d

    def test_doveadm_auth_lookup(self):
        s, d = self.setup()
        r = d.doveadm("auth", "lookup", "alice", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("alice", r.stdout)
        r = d.doveadm("auth", "lookup", "ghost", check=False)
        self.assertNotEqual(r.returncode, 0)
        # logins still bind as before
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)

    def test_cram_md5_with_a_plain_password(self):
        s, d = self.setup()
        sock = socket.create_connection(("127.0.0.1", d.pop3_port), 30)
        f = sock.makefile("rb")
        try:
            f.readline()
            sock.sendall(b"AUTH CRAM-MD5\r\n")
            line = f.readline().strip()
            self.assertTrue(line.startswith(b"+ "), line)
            challenge = base64.b64decode(line[2:])
            digest = hmac.new(b"alice-pw", challenge, hashlib.md5).hexdigest()
            sock.sendall(base64.b64encode(b"alice " + digest.encode()) +
                         b"\r\n")
            self.assertTrue(f.readline().startswith(b"+OK"))
        finally:
            f.close()
            sock.close()
