"""Dovecot's auth cache with the pop3ext passdb and userdb (M1): a second
login within auth_cache_ttl costs no directory round trip (nor PAM call),
cached users still log in while the directory is down, a wrong password is
not taken from the cache, and doveadm auth cache flush empties it."""

from authtest import (AuthTestCase, AUTH_FAILED, ldap_conf, pop3_login,
                      doveadm_user)
from pop3ext_harness.pam import PamWrapper

OK = b"+OK Logged in."
CACHE = "auth_cache_size = 1M\nauth_cache_ttl = 1h\n" \
        "auth_cache_negative_ttl = 1h\n"


def binds(log, user):
    """slapd's BIND lines for user (one "mech=" line per bind)."""
    dn = 'BIND dn="uid=%s,ou=people,dc=example,dc=test"' % user
    return sum(1 for line in log.splitlines()
               if dn in line and "mech=" in line)


class LdapCacheTest(AuthTestCase):

    def test_second_login_comes_from_the_cache(self):
        s = self.slapd(users={"alice": {"password": "alice-pw",
                                        "attrs": {"pop3extOnDele": "hide"}}})
        d = self.auth_dovecot(self.write_conf(ldap_conf([s])),
                              extra_conf=CACHE)
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertEqual(binds(s.log(), "alice"), 1)
        searches = s.log().count("SRCH base=")
        for _ in range(3):
            self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        # no bind and no search: passdb and userdb came from the cache
        self.assertEqual(binds(s.log(), "alice"), 1)
        self.assertEqual(s.log().count("SRCH base="), searches)
        self.assertEqual(doveadm_user(d, "alice")["pop3ext_on_dele"],
                         "hide")
        # the directory down: cached users still log in
        s.kill()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        # a wrong password is never a cache hit
        self.assertNotEqual(pop3_login(d, "alice", "wrong"), OK)
        # flushed: the directory is asked again (and is down)
        d.doveadm("auth", "cache", "flush")
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))

    def test_pop3_enabled_flag_is_per_service_in_the_cache(self):
        s = self.slapd(users={"alice": {"password": "alice-pw", "attrs": {
            "pop3extPOP3Enabled": "FALSE"}}})
        d = self.auth_dovecot(self.write_conf(ldap_conf([s])),
                              extra_conf=CACHE, protocols=("pop3", "imap"))
        import imaplib
        m = imaplib.IMAP4("127.0.0.1", d.imap_port)
        m.login("alice", "alice-pw")
        m.logout()
        # the IMAP login is cached; POP3 is still refused
        self.assertNotEqual(pop3_login(d, "alice", "alice-pw"), OK)


class PamCacheTest(AuthTestCase):

    def test_cached_login_calls_no_pam(self):
        pam = PamWrapper(self.workdir, services=("dovecot",))
        pam.add_user("alice", "alice-pw")
        path = self.write_conf({"password_check": "pam"})
        d = self.auth_dovecot(path, userdb_conf=(
            "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup "
            "home={HOMES}/%u\n}"), extra_conf=pam.dovecot_conf() + CACHE)
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        calls = len(pam.items())
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertEqual(len(pam.items()), calls)
        self.assertEqual(pop3_login(d, "alice", "wrong"), AUTH_FAILED)
