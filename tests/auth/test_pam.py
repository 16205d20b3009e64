"""PAM through pam_wrapper: the real libpam in Dovecot's auth-workers reads
our service files; pam_matrix holds the passwords, the project's test PAM
module (tests/auth/fixtures/pam_pop3ext_test.c) reports account states and
records the PAM items the driver set."""

import imaplib
import os

from authtest import (AuthTestCase, AUTH_FAILED, ldap_conf, pop3_login,
                      auth_login, userdb_fields, assert_clean_log)
from pop3ext_harness.pam import PamWrapper

OK = b"+OK Logged in."


class PamTest(AuthTestCase):

    def setUp(self):
        super().setUp()
        self.pam = PamWrapper(self.workdir, services=("dovecot", "pop3",
                                                      "imap"))

    def pam_dovecot(self, conf=None, userdb_conf=None, worker=None, **kw):
        keys = {"password_check": "pam"}
        keys.update(conf or {})
        path = self.write_conf(keys)
        if userdb_conf is None and keys.get("attributes") != "ldap":
            userdb_conf = ("userdb {\n  driver = static\n  args = uid=nobody "
                           "gid=nogroup home={HOMES}/%u\n}")
        return self.auth_dovecot(path, userdb_conf=userdb_conf,
                                 extra_conf=self.pam.dovecot_conf(
                                     **(worker or {})), **kw)

    def test_password_check_and_pam_items(self):
        self.pam.add_user("alice", "alice-pw")
        d = self.pam_dovecot({"pam_tty": "%s"})
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertEqual(pop3_login(d, "alice", "wrong"), AUTH_FAILED)
        self.assertEqual(pop3_login(d, "mallory", "alice-pw"), AUTH_FAILED)
        items = self.pam.items()
        self.assertGreaterEqual(len(items), 3)
        first = items[0]
        self.assertEqual(first["user"], "alice")
        self.assertEqual(first["service"], "dovecot")
        # where the client is, and which Dovecot service it used
        self.assertEqual(first["rhost"], "127.0.0.1")
        self.assertEqual(first["tty"], "pop3")
        self.assertEqual(first["ruser"], "alice")
        # the auth-worker did it (PAM blocks)
        log = d.log()
        self.assertIn("auth-worker(", log)
        self.assertIn("pam: pam_authenticate: Authentication failure "
                      "(password mismatch?)", log)
        assert_clean_log(self, d)

    def test_empty_password_never_reaches_pam(self):
        # Debian's pam_unix "nullok" logs an account with an empty hash
        # in with an empty password: refuse it before PAM, as LDAP does
        self.pam.add_user("alice", "alice-pw")
        d = self.pam_dovecot()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        before = len(self.pam.items())
        code, out = auth_login(d, "alice", "")
        self.assertNotEqual(code, 0, out)
        self.assertEqual(len(self.pam.items()), before)
        d.wait_log("pam: empty password refused")

    def test_pam_user_rename_is_checked(self):
        # PAM may map the name (e.g. case); the mapped name passes the same
        # checks as a client's (W6)
        self.pam.add_user("alice", "alice-pw")
        self.pam.add_user("bob", "bob-pw")
        self.pam.set_state("alice", "rename=Alice")
        self.pam.set_state("bob", "rename=bob ")
        # (pam_matrix's account stage checks the name it is given now)
        self.pam.add_user("Alice", "x")
        self.pam.add_user("bob ", "x")
        d = self.pam_dovecot()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        d.wait_log("Login: user=<Alice>")
        self.assertNotEqual(pop3_login(d, "bob", "bob-pw"), OK)
        d.wait_log("pam: PAM_USER bob  (set by PAM) refused:")
        self.assertNotIn("Login: user=<bob ", d.log())

    def test_recent_login_with_another_userdb(self):
        self.pam.add_user("alice", "alice-pw")
        d = self.pam_dovecot()
        self.assertEqual(pop3_login(d, "recent:alice", "alice-pw"), OK)
        d.wait_log("Login: user=<alice>")
        # PAM saw the name without the prefix
        self.assertEqual({x["user"] for x in self.pam.items()}, {"alice"})
        code, out = auth_login(d, "recent:alice", "alice-pw")
        self.assertEqual(code, 0, out)
        # the static userdb's lookup keeps what the passdb set
        self.assertEqual(userdb_fields(out).get("pop3ext_view"), "recent")

    def test_service_name_per_dovecot_service(self):
        # pam_service = %s: "pop3" and "imap" service files; pam_matrix's
        # account stage lets each user use only the service listed
        self.pam.add_user("imaponly", "pw", service="imap")
        self.pam.add_user("pop3only", "pw", service="pop3")
        d = self.pam_dovecot({"pam_service": "%s"})
        self.assertEqual(pop3_login(d, "pop3only", "pw"), OK)
        self.assertEqual(pop3_login(d, "imaponly", "pw"), AUTH_FAILED)
        i = d.imap("imaponly", "pw")
        i.logout()
        services = {(x["user"], x["service"]) for x in self.pam.items()}
        self.assertIn(("pop3only", "pop3"), services)
        self.assertIn(("imaponly", "imap"), services)
        # refused by the account stage: a disabled account, not a wrong
        # password
        d.wait_log("(user disabled)")

    def test_expired_account_and_password(self):
        for name in ("acct", "pw", "ok"):
            self.pam.add_user(name, "secret")
        self.pam.set_state("acct", "account-expired")
        self.pam.set_state("pw", "password-expired")
        d = self.pam_dovecot()
        self.assertEqual(pop3_login(d, "ok", "secret"), OK)
        for user in ("acct", "pw"):
            self.assertEqual(pop3_login(d, user, "secret"),
                             b"-ERR [AUTH] Password expired")
            i = imaplib.IMAP4("127.0.0.1", d.imap_port)
            with self.assertRaises(imaplib.IMAP4.error) as e:
                i.login(user, "secret")
            self.assertIn("[EXPIRED]", str(e.exception))
            i.shutdown()
        # a wrong password is not "expired"
        self.assertEqual(pop3_login(d, "acct", "wrong"), AUTH_FAILED)
        log = d.wait_log("(password expired)")
        self.assertIn("pam_acct_mgmt: User account has expired", log)
        self.assertIn("pam_acct_mgmt: Authentication token is no longer "
                      "valid; new one required", log)

    def test_account_refused_by_pam(self):
        self.pam.add_user("denied", "secret")
        self.pam.set_state("denied", "denied")
        d = self.pam_dovecot()
        self.assertEqual(pop3_login(d, "denied", "secret"), AUTH_FAILED)
        d.wait_log("(user disabled)")
        # without account management the same user gets in
        d.stop()
        d2 = self.pam_dovecot({"pam_acct_mgmt": "no"}, name="noacct")
        self.assertEqual(pop3_login(d2, "denied", "secret"), OK)

    def test_pam_data_unreachable_is_tempfail(self):
        self.pam.add_user("alice", "secret")
        self.pam.add_user("bob", "secret")
        self.pam.set_state("bob", "unavailable")
        d = self.pam_dovecot()
        self.assert_tempfail(pop3_login(d, "bob", "secret"))
        self.assertEqual(pop3_login(d, "alice", "secret"), OK)
        # pam_matrix's password file gone: PAM_AUTHINFO_UNAVAIL
        self.pam.remove_passdb()
        self.assert_tempfail(pop3_login(d, "alice", "secret"))
        self.assert_tempfail(pop3_login(d, "alice", "wrong"))
        self.pam.restore_passdb()
        self.assertEqual(pop3_login(d, "alice", "secret"), OK)
        self.assertIn("Authentication service cannot retrieve "
                      "authentication info", d.log())

    def test_worker_recycled_after_max_requests(self):
        self.pam.add_user("alice", "secret")
        # one worker, replaced after every 2 PAM requests
        d = self.pam_dovecot({"pam_max_requests": "2"},
                             worker={"process_limit": 1})
        for _ in range(6):
            self.assertEqual(pop3_login(d, "alice", "secret"), OK)
        pids = [x["pid"] for x in self.pam.items() if x["stage"] == "auth"]
        self.assertEqual(len(pids), 6)
        self.assertEqual(len(set(pids)), 3, pids)
        d.stop()
        # without the limit, the one worker serves them all
        os.unlink(self.pam.items_log)
        d2 = self.pam_dovecot({"pam_max_requests": "0"},
                              worker={"process_limit": 1}, name="nolimit")
        for _ in range(4):
            self.assertEqual(pop3_login(d2, "alice", "secret"), OK)
        pids = [x["pid"] for x in self.pam.items() if x["stage"] == "auth"]
        self.assertEqual(len(pids), 4)
        self.assertEqual(len(set(pids)), 1, pids)

    def test_pam_password_with_ldap_attributes(self):
        s = self.slapd(users={
            "alice": {"password": "ldap-pw", "attrs": {
                "pop3extOnDele": "refuse", "pop3extMinAge": "7d"}}})
        self.pam.add_user("alice", "pam-pw")
        self.pam.add_user("bob", "pam-pw")
        conf = ldap_conf([s], password_check="pam", attributes="ldap")
        path = self.write_conf(conf)
        d = self.auth_dovecot(path, extra_conf=self.pam.dovecot_conf())
        # the password is PAM's, not the directory's
        self.assertEqual(pop3_login(d, "alice", "pam-pw"), OK)
        self.assertEqual(pop3_login(d, "alice", "ldap-pw"), AUTH_FAILED)
        code, out = auth_login(d, "alice", "pam-pw")
        self.assertEqual(code, 0, out)
        fields = userdb_fields(out)
        self.assertEqual(fields["pop3ext_on_dele"], "refuse")
        self.assertEqual(fields["pop3ext_min_age"], "7d")
        # known to PAM, unknown to the directory: no policy, no login
        self.assertEqual(pop3_login(d, "bob", "pam-pw"), AUTH_FAILED)
        self.assertIn("no directory entry with the user's attributes",
                      d.log())
        # the directory down: temporary, even though PAM said yes
        s.kill()
        self.assert_tempfail(pop3_login(d, "alice", "pam-pw"))
