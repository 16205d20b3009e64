"""Hostile user names: LDAP filter and DN metacharacters, NUL bytes, 10 KB
names, invalid UTF-8. Nothing is injected into the directory, nothing
crashes, and each gets the same clean refusal as a wrong password.

Dovecot itself is configured to pass any character (auth_username_chars
empty), so that it is the driver that has to cope."""

from authtest import (AuthTestCase, AUTH_FAILED, ldap_conf, pop3_login,
                      pop3_auth_plain, auth_test, auth_client_plain,
                      doveadm_user, assert_clean_log)
from pop3ext_harness.slapd import SUFFIX

OK = b"+OK Logged in."
PW = "alice-pw"
USERS = {"alice": {"password": PW}, "bob": {"password": "bob-pw"}}

# each would match alice (or everybody) if pasted into (uid=%u) unescaped
FILTER_ATTACKS = [
    "*",
    "a*",
    "alice*",
    "*)(uid=*",
    "alice)(uid=*",
    "*)(|(uid=*)",
    "alice)(|(objectClass=*)",
    "\\2a",
    "alice\\29",
]


class HostileTest(AuthTestCase):

    def setup_ldap(self, **conf):
        s = self.slapd(users=USERS)
        d = self.auth_dovecot(self.write_conf(ldap_conf([s], **conf)))
        return s, d

    def test_filter_metacharacters_are_escaped(self):
        s, d = self.setup_ldap()
        for name in FILTER_ATTACKS:
            self.assertEqual(pop3_login(d, name, PW), AUTH_FAILED, name)
            code, out = auth_test(d, name, PW)
            self.assertNotEqual(code, 0, (name, out))
            if "*" not in name:
                # (doveadm user with a wildcard lists users instead)
                self.assertIsNone(doveadm_user(d, name), name)
        # what reached slapd: the escaped forms, e.g. (uid=\2a)
        log = s.log()
        self.assertIn('filter="(uid=\\2A)"', log)
        self.assertIn('filter="(uid=\\2A\\29\\28uid=\\2A)"', log)
        self.assertIn('filter="(uid=\\5C2a)"', log)
        self.assertNotIn('filter="(uid=*)"', log)
        # and the directory is fine
        self.assertEqual(pop3_login(d, "alice", PW), OK)
        assert_clean_log(self, d)

    def test_dn_metacharacters_are_escaped(self):
        s = self.slapd(users=USERS)
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s], ldap_user_dn_template="uid=%u,ou=people," + SUFFIX,
            attributes="none", ldap_base=None)), userdb_conf=(
            "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup "
            "home={HOMES}/%u\n}"))
        for name in ("alice,ou=people", "alice+cn=x", "alice\\,",
                     " alice", "#alice", "alice ", "x,uid=alice",
                     "cn=admin," + SUFFIX):
            self.assertEqual(pop3_login(d, name, PW), AUTH_FAILED, name)
        # (slapd logs the DN as it normalises it: \2C for ",", \3D "=")
        self.assertIn('BIND dn="uid=alice\\2Cou\\3Dpeople,ou=people,'
                      'dc=example,dc=test"', s.log())
        self.assertEqual(pop3_login(d, "alice", PW), OK)
        assert_clean_log(self, d)

    def test_long_names(self):
        s, d = self.setup_ldap(username_max_length="4096")
        # 10 KB: refused by the length limit, before the directory
        # (straight to Dovecot's auth-client socket, as a login process
        # would send it)
        big = "a" * 10240
        self.assertTrue(auth_client_plain(d, big, PW).startswith("FAIL"))
        d.wait_log("refused: user name is 10240 bytes long "
                   "(username_max_length = 4096)")
        # the same through doveadm (Dovecot refuses lines of its
        # protocols above 16 KB or, for userdb lookups, 1 KB itself)
        code, out = auth_test(d, "b" * 5000, PW)
        self.assertNotEqual(code, 0, out)
        d.wait_log("refused: user name is 5000 bytes long")
        # 4 KB of filter metacharacters: 12 KB escaped, still only itself
        code, out = auth_test(d, "*" * 4000, PW)
        self.assertNotEqual(code, 0, out)
        self.assertIn("\\2A" * 100, s.log())
        # over POP3: the login process refuses over-long lines itself
        r = pop3_login(d, big, PW)
        self.assertTrue(r.startswith(b"-ERR"), r)
        r = pop3_auth_plain(d, "b" * 3000, PW)
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertEqual(pop3_login(d, "alice", PW), OK)
        assert_clean_log(self, d)

    def test_invalid_utf8_and_control_characters(self):
        s, d = self.setup_ldap()
        for name in (b"alice\xff", b"\xc3", b"ali\xc3\x28ce",
                     b"\xed\xa0\x80x", b"alice\x7f"):
            self.assertEqual(pop3_login(d, name, PW), AUTH_FAILED, name)
            code, out = auth_test(d, name, PW)
            self.assertNotEqual(code, 0, out)
        log = d.log()
        self.assertIn("refused: user name is not valid UTF-8", log)
        self.assertIn("refused: user name contains control characters", log)
        # valid UTF-8 is just a name that isn't there
        self.assertEqual(pop3_login(d, "j\u00fcrgen", PW), AUTH_FAILED)
        self.assertEqual(pop3_login(d, "alice", PW), OK)
        assert_clean_log(self, d)

    def test_nul_bytes(self):
        s, d = self.setup_ldap()
        # Dovecot's pop3-login ends a command line at a NUL, so the driver
        # never sees one: "ali\0ce" arrives as "ali", "\0alice" as ""
        self.assertEqual(pop3_login(d, b"ali\x00ce", PW), AUTH_FAILED)
        r = pop3_login(d, b"\x00alice", PW)
        self.assertTrue(r.startswith(b"-ERR"), r)
        # SASL PLAIN separates its parts with NULs: a NUL inside the name
        # makes the message malformed, refused before any lookup
        for name in (b"alice\x00", b"ali\x00ce", b"\x00alice"):
            r = pop3_auth_plain(d, name, PW)
            self.assertTrue(r.startswith(b"-ERR"), (name, r))
        # what the directory was asked for: "ali", nothing after the NUL
        self.assertIn('filter="(uid=ali)"', s.log())
        self.assertEqual(pop3_login(d, "alice", PW), OK)
        assert_clean_log(self, d)
