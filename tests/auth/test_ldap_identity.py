"""One directory entry is one Dovecot user with one home: the login name
is renamed to the entry's ldap_username_attribute only when that name finds
the same entry again, so two entries never merge into one user (S2), and a
name the directory matches only by its own equivalence rules (trailing
NBSP, fullwidth letters, case) becomes the entry's exact name (S3)."""

from authtest import (AuthTestCase, AUTH_FAILED, ldap_conf, pop3_login,
                      auth_login, doveadm_user, assert_clean_log)
from pop3ext_harness.pam import PamWrapper
from pop3ext_harness.slapd import SUFFIX, user_ldif

OK = b"+OK Logged in."

# uid=bob in two tenants: mail is unique, uid only per organisational unit
EVIL = ("dn: ou=evil,%s\nobjectClass: organizationalUnit\nou: evil\n\n"
        % SUFFIX + user_ldif("bob", "evil-pw", {"mail": "bob@evil.test"})
        .replace("ou=people", "ou=evil"))


class TenantTest(AuthTestCase):

    def setup(self, **conf):
        s = self.slapd(users={"bob": {"password": "bob-pw", "attrs": {
            "mail": "bob@example.test"}}}, extra_ldif=EVIL)
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s], ldap_base=SUFFIX, ldap_user_filter="(mail=%u)", **conf)))
        return s, d

    def test_two_tenants_never_become_one_user(self):
        s, d = self.setup()
        # uid=bob does not find the entry again with (mail=%u): neither
        # login may become "bob"
        for user, pw in (("bob@example.test", "bob-pw"),
                         ("bob@evil.test", "evil-pw")):
            self.assertNotEqual(pop3_login(d, user, pw), OK)
        self.assertNotIn("Login: user=<bob>", d.log())
        self.assertIn("ldap_username_attribute", d.log())

    def test_two_tenants_by_their_own_names(self):
        # with the attribute the filter matches, each is its own user
        s, d = self.setup(ldap_username_attribute="mail")
        self.assertEqual(pop3_login(d, "bob@example.test", "bob-pw"), OK)
        self.assertEqual(pop3_login(d, "bob@evil.test", "evil-pw"), OK)
        d.wait_log("Login: user=<bob@example.test>")
        d.wait_log("Login: user=<bob@evil.test>")
        self.assertNotIn("Login: user=<bob>", d.log())
        # and a userdb-only lookup (LMTP, doveadm) finds each
        self.assertIsNotNone(doveadm_user(d, "bob@evil.test"))
        assert_clean_log(self, d)


class EquivalentNameTest(AuthTestCase):

    def test_lookalikes_become_the_entrys_name(self):
        s = self.slapd(users={"alice": {"password": "alice-pw"}})
        d = self.auth_dovecot(self.write_conf(ldap_conf([s])))
        for name in ("alice\u00a0", "\uff41\uff4c\uff49\uff43\uff45",
                     "ALICE", "alice"):
            code, out = auth_login(d, name, "alice-pw")
            self.assertEqual(code, 0, (name, out))
            self.assertIn("extra fields:\n  user=alice\n", out)
        # one Dovecot user: every POP3 login is alice's session
        for name in ("alice\u00a0", "Alice"):
            self.assertEqual(pop3_login(d, name, "alice-pw"), OK)
        log = d.log()
        self.assertEqual(log.count("Login: user=<"),
                         log.count("Login: user=<alice>"))
        self.assertIsNotNone(doveadm_user(d, "ALICE"))
        assert_clean_log(self, d)


class DnTemplateNameTest(AuthTestCase):

    def test_lookalikes_with_a_dn_template_and_no_attributes(self):
        # no entry is searched: the bind alone would make each spelling a
        # Dovecot user of its own, with its own home (S3); the entry's
        # name is read after the bind, as the user
        _, d = self.dn_template_dovecot({"alice": {"password": "alice-pw"}})
        for name in ("alice\u00a0", "\uff41\uff4c\uff49\uff43\uff45",
                     "ALICE", "alice"):
            self.assertEqual(pop3_login(d, name, "alice-pw"), OK, name)
        self.assertEqual(pop3_login(d, "alice", "nope"), AUTH_FAILED)
        d.wait_log("Login: user=<alice>")
        log = d.log()
        self.assertEqual(log.count("Login: user=<"), 4)
        self.assertEqual(log.count("Login: user=<alice>"), 4)
        assert_clean_log(self, d)


class PamIdentityTest(AuthTestCase):

    def test_directory_never_changes_whom_pam_authenticated(self):
        # the filter pins the name, but by mail: PAM's user alice@x.test
        # finds bob's entry; bob must not be who logs in (S1)
        s = self.slapd(users={"bob": {"password": "ldap-pw", "attrs": {
            "mail": "alice@x.test", "pop3extOnDele": "hide"}}})
        pam = PamWrapper(self.workdir, services=("dovecot",))
        pam.add_user("alice@x.test", "pam-pw")
        conf = ldap_conf([s], password_check="pam", attributes="ldap",
                         ldap_user_filter="(|(uid=%u)(mail=%u))")
        d = self.auth_dovecot(self.write_conf(conf),
                              extra_conf=pam.dovecot_conf())
        self.assertEqual(pop3_login(d, "alice@x.test", "pam-pw"),
                         AUTH_FAILED)
        d.wait_log("refused: PAM authenticated alice@x.test, but the "
                   "directory's entry uid=bob,")
        self.assertNotIn("Login: user=<bob>", d.log())


class ChainTest(AuthTestCase):
    """What a failed pop3ext login leaves for the next passdb (W2)."""

    def test_recent_prefix_does_not_leak_into_the_next_passdb(self):
        s = self.slapd(users={"alice": {"password": "alice-pw"}})
        # another passdb knows alice with another password
        d = self.auth_dovecot(self.write_conf(ldap_conf([s])),
                              passwd_file_after=True,
                              users={"alice": {"password": "file-pw"}})
        code, out = auth_login(d, "recent:alice", "alice-pw")
        self.assertEqual(code, 0, out)
        self.assertIn("pop3ext_view=recent", out)
        # pop3ext refuses the password; the next passdb must see the name
        # as the client sent it, not the stripped one
        code, out = auth_login(d, "recent:alice", "file-pw")
        self.assertNotEqual(code, 0, out)
        self.assertEqual(auth_login(d, "alice", "file-pw")[0], 0)


class MasterUserTest(AuthTestCase):

    def test_master_user_with_pass_yes(self):
        # a master passdb verified the master's password (pass = yes):
        # pop3ext only looks the user up, it does not bind with the
        # master's password (M3)
        s = self.slapd(users={"alice": {"password": "alice-pw", "attrs": {
            "pop3extOnDele": "hide"}}})
        d = self.auth_dovecot(
            self.write_conf(ldap_conf([s])),
            users={"admin": {"password": "admin-pw"}},
            passdb_before="passdb {\n  driver = passwd-file\n  master = yes\n"
            "  pass = yes\n  args = scheme=PLAIN username_format=%u "
            "{PASSWD}\n}",
            extra_conf="auth_master_user_separator = *\n")
        code, out = auth_login(d, "alice*admin", "admin-pw")
        self.assertEqual(code, 0, out)
        self.assertIn("pop3ext_on_dele=hide", out)
        self.assertEqual(pop3_login(d, "alice*admin", "admin-pw"), OK)
        d.wait_log("Login: user=<alice>")
        # an unknown user is still unknown
        self.assertNotEqual(auth_login(d, "ghost*admin", "admin-pw")[0], 0)
        # and the master's password is no user password
        self.assertEqual(pop3_login(d, "alice", "admin-pw"), AUTH_FAILED)
