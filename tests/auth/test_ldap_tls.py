"""LDAPS and StartTLS with a CA made by openssl in the test: certificates
are checked (CA and host name), and a check that fails is a temporary
failure for the client, never a login without TLS."""

import os

from authtest import AuthTestCase, ldap_conf, pop3_login, assert_clean_log
from pop3ext_harness.tlsca import CA

OK = b"+OK Logged in."
USERS = {"alice": {"password": "alice-pw",
                   "attrs": {"pop3extOnDele": "hide"}}}


class TlsTest(AuthTestCase):

    def setUp(self):
        super().setUp()
        self.ca = CA(os.path.join(self.workdir, "ca"), "good")

    def tls_slapd(self, cert=None, **kw):
        return self.slapd(users=USERS, tls=cert or self.ca.server_cert(
            "127.0.0.1"), **kw)

    def test_ldaps_with_ca_file(self):
        s = self.tls_slapd()
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s.ldaps_uri], ldap_tls_ca_file=self.ca.cert)))
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        log = s.log()
        self.assertIn("ACCEPT from IP=127.0.0.1", log)
        self.assertIn("TLS established", log)
        assert_clean_log(self, d)

    def test_starttls_with_ca_file(self):
        s = self.tls_slapd()
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s], ldap_starttls="yes", ldap_tls_ca_file=self.ca.cert)))
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertIn("STARTTLS", s.log())
        self.assertIn("TLS established", s.log())

    def test_unknown_ca_is_refused(self):
        other = CA(os.path.join(self.workdir, "ca-other"), "other")
        s = self.tls_slapd()
        for name, keys in (("ldaps", {"ldap_uris": s.ldaps_uri}),
                           ("starttls", {"ldap_starttls": "yes"})):
            d = self.auth_dovecot(self.write_conf(
                ldap_conf([s], ldap_tls_ca_file=other.cert, **keys),
                name=name + ".conf"), name=name)
            self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
            log = d.log()
            self.assertIn("no LDAP server answered", log)
            self.assertIn("TLS handshake failed: is the server's "
                          "certificate signed by a CA in ldap_tls_ca_file=%s"
                          % other.cert, log)
            d.stop()
        # nothing was ever bound over an unverified connection
        self.assertNotIn('BIND dn="uid=alice', s.log())

    def test_host_name_mismatch_is_refused(self):
        # signed by the right CA, but for another host
        cert = self.ca.server_cert("ldap.other.test",
                                   sans=("DNS:ldap.other.test",),
                                   name="other-host")
        s = self.tls_slapd(cert=cert)
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s.ldaps_uri], ldap_tls_ca_file=self.ca.cert)))
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertNotIn('BIND dn="uid=alice', s.log())
        # the admin may turn the checks off, knowingly
        d.stop()
        d2 = self.auth_dovecot(self.write_conf(ldap_conf(
            [s.ldaps_uri], ldap_tls_ca_file=self.ca.cert,
            ldap_tls_require_cert="never"), name="never.conf"),
            name="never")
        self.assertEqual(pop3_login(d2, "alice", "alice-pw"), OK)

    def test_starttls_refused_by_server(self):
        # a server without TLS: StartTLS fails, and the driver does not
        # fall back to plain text
        s = self.slapd(users=USERS)
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s], ldap_starttls="yes", ldap_tls_ca_file=self.ca.cert)))
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertIn("StartTLS failed", d.log())
        self.assertNotIn("BIND dn=", s.log())
