"""The pop3ext driver against a real slapd: logins with search+bind and with a
DN template, policy attributes reaching the session as userdb fields,
recent: logins, the POP3-enabled flag, allow_nets, user iteration, the
shipped schema in both formats, password policy, and directory trouble."""

import imaplib
import os
import poplib
import re
import threading
import time

from authtest import (AuthTestCase, AUTH_FAILED, TEMP_FAILED, ldap_conf,
                      pop3_login, auth_login, auth_test, userdb_fields,
                      doveadm_user, assert_clean_log, auth_client_plain)
from pop3ext_harness import mail
from pop3ext_harness.slapd import PEOPLE, SUFFIX, schema_dir, user_dn


class LdapLoginTest(AuthTestCase):

    def setup_ldap(self, users, conf=None, slapd_kw=None, **dovecot_kw):
        s = self.slapd(users=users, **(slapd_kw or {}))
        path = self.write_conf(ldap_conf([s], **(conf or {})))
        d = self.auth_dovecot(path, **dovecot_kw)
        return s, d

    def test_policy_attributes_reach_the_pop3_session(self):
        s, d = self.setup_ldap(
            {"alice": {"password": "alice-pw", "attrs": {
                "pop3extOnDele": "hide",
                "pop3extLegalHold": "TRUE",
                "pop3extMaxAge": "365d",
                "pop3extDenyCommands": ["DELE", "TOP"]}}},
            plugins=True)
        code, out = auth_login(d, "alice", "alice-pw")
        self.assertEqual(code, 0, out)
        fields = userdb_fields(out)
        self.assertEqual(fields.get("pop3ext_on_dele"), "hide")
        self.assertEqual(fields.get("pop3ext_legal_hold"), "yes")
        self.assertEqual(fields.get("pop3ext_max_age"), "365d")
        self.assertEqual(fields.get("pop3ext_deny_commands"), "DELE,TOP")
        # the same for a userdb-only lookup (LMTP, doveadm)
        u = doveadm_user(d, "alice")
        self.assertEqual(u["pop3ext_deny_commands"], "DELE,TOP")
        self.assertEqual(u["pop3ext_on_dele"], "hide")

        # a real POP3 session: the policy engine got the fields - DELE
        # is refused as the directory says
        d.deliver("alice", mail.message(1))
        p = poplib.POP3("127.0.0.1", d.pop3_port, timeout=30)
        p.user("alice")
        p.pass_("alice-pw")
        self.assertEqual(p.stat()[0], 1)
        with self.assertRaises(poplib.error_proto) as e:
            p.dele(1)
        self.assertTrue(e.exception.args[0].startswith(b"-ERR [SYS/PERM]"))
        p.quit()
        # and a change in the directory applies to the next login
        s.set_attrs("alice", pop3extDenyCommands=None)
        p = d.pop3("alice", "alice-pw")
        self.assertTrue(p.dele(1).startswith(b"+OK"))
        p.quit()
        assert_clean_log(self, d)

    def test_wrong_password_and_unknown_user_get_the_same_answer(self):
        s, d = self.setup_ldap({"alice": {"password": "alice-pw"}})
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), b"+OK Logged in.")
        wrong = pop3_login(d, "alice", "wrong")
        unknown = pop3_login(d, "mallory", "alice-pw")
        empty = pop3_login(d, "alice", "")
        self.assertEqual(wrong, AUTH_FAILED)
        self.assertEqual(unknown, AUTH_FAILED)
        # an empty password would be an anonymous bind that succeeds
        self.assertIn(empty, (AUTH_FAILED, b"-ERR No password given."))
        code, out = auth_test(d, "alice", "")
        self.assertNotEqual(code, 0, out)
        log = d.log()
        self.assertIn("pop3ext(mallory,127.0.0.1", log)
        self.assertIn("unknown user", log)
        self.assertIn("Password mismatch", log)
        assert_clean_log(self, d)

    def test_dn_template_bind(self):
        users = {"alice": {"password": "alice-pw",
                           "attrs": {"pop3extOnRetr": "seen"}}}
        # direct bind, no service account, attributes not wanted: the
        # directory is only asked "is this the password of that DN"
        s, d = self.dn_template_dovecot(users)
        self.assertEqual(pop3_login(d, "alice", "alice-pw"),
                         b"+OK Logged in.")
        self.assertEqual(pop3_login(d, "alice", "nope"), AUTH_FAILED)
        self.assertEqual(pop3_login(d, "bob", "alice-pw"), AUTH_FAILED)
        d.stop()
        # with attributes: read from the DN with the service account
        path = self.write_conf(ldap_conf(
            [s], ldap_user_dn_template="uid=%n,ou=people," + SUFFIX),
            name="template-attrs.conf")
        d2 = self.auth_dovecot(path, name="dovecot2")
        code, out = auth_login(d2, "alice", "alice-pw")
        self.assertEqual(code, 0, out)
        self.assertEqual(userdb_fields(out)["pop3ext_on_retr"], "seen")
        self.assertIn('BIND dn="uid=alice,ou=people,dc=example,dc=test"',
                      s.log())
        assert_clean_log(self, d2)

    def test_recent_login(self):
        s, d = self.setup_ldap({"alice": {"password": "alice-pw", "attrs": {
            "pop3extRecentWindow": "30d"}}})
        d.deliver("alice", mail.message(1))
        p = d.pop3("recent:alice", "alice-pw")
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        self.assertIn("Login: user=<alice>", d.log())
        code, out = auth_login(d, "recent:alice", "alice-pw")
        self.assertEqual(code, 0, out)
        fields = userdb_fields(out)
        self.assertEqual(fields.get("pop3ext_view"), "recent")
        self.assertEqual(fields.get("pop3ext_recent_window"), "30d")
        self.assertIn("user=alice", out)
        # the plain login has no view
        code, out = auth_login(d, "alice", "alice-pw")
        self.assertNotIn("pop3ext_view", userdb_fields(out))
        # a userdb lookup by the prefixed name gives the same
        u = doveadm_user(d, "recent:alice")
        self.assertEqual(u.get("pop3ext_view"), "recent")
        self.assertEqual(pop3_login(d, "recent:alice", "wrong"), AUTH_FAILED)
        self.assertEqual(pop3_login(d, "recent:", "alice-pw"), AUTH_FAILED)

    def test_pop3_enabled_flag_is_nologin_for_pop3_only(self):
        s, d = self.setup_ldap({
            "carol": {"password": "carol-pw",
                      "attrs": {"pop3extPOP3Enabled": "FALSE"}},
            "dave": {"password": "dave-pw",
                     "attrs": {"pop3extPOP3Enabled": "TRUE"}}})
        self.assertEqual(pop3_login(d, "carol", "carol-pw"),
                         b"-ERR [AUTH] POP3 access is disabled for this "
                         b"account.")
        # a wrong password still gets the generic answer
        self.assertEqual(pop3_login(d, "carol", "wrong"), AUTH_FAILED)
        self.assertEqual(pop3_login(d, "dave", "dave-pw"), b"+OK Logged in.")
        # IMAP is not POP3
        i = d.imap("carol", "carol-pw")
        i.logout()
        self.assertIn("POP3 is disabled for this user", d.log())

    def test_allowed_networks(self):
        s, d = self.setup_ldap({"bob": {"password": "bob-pw", "attrs": {
            "pop3extAllowedNetworks": ["192.0.2.0/24", "10.0.0.0/8"]}}})
        self.assertEqual(pop3_login(d, "bob", "bob-pw"), AUTH_FAILED)
        self.assertIn("allow_nets check failed: IP 127.0.0.1 not in allowed "
                      "networks", d.log())
        s.set_attrs("bob", pop3extAllowedNetworks=["192.0.2.0/24",
                                                   "127.0.0.0/8"])
        self.assertEqual(pop3_login(d, "bob", "bob-pw"), b"+OK Logged in.")

    def test_iteration_reaches_every_user(self):
        # more than slapd's size limit (500): the listing must page
        users = {"user%03d" % i: {"password": "pw%d" % i}
                 for i in range(620)}
        s, d = self.setup_ldap(users)
        r = d.doveadm("user", "*")
        listed = r.stdout.split()
        self.assertEqual(sorted(listed), sorted(users))
        # a doveadm mail command with -A reaches them
        for u in ("user000", "user619"):
            d.deliver(u, mail.message(1))
        r = d.doveadm("-f", "tab", "mailbox", "status", "-A", "messages",
                      "INBOX")
        lines = r.stdout.splitlines()
        header = lines[0].lower().split("\t")
        rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
        self.assertEqual(len(rows), 620)
        counts = {row["username"]: row["messages"] for row in rows}
        self.assertEqual(counts["user000"], "1")
        self.assertEqual(counts["user619"], "1")
        self.assertEqual(counts["user300"], "0")

    def test_iteration_failure_is_reported(self):
        s, d = self.setup_ldap({"alice": {"password": "pw"}})
        s.kill()
        r = d.doveadm("user", "*", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no LDAP server answered", d.log())

    def test_schema_file_format(self):
        # slapd.conf with auth/schema/pop3ext.schema instead of the LDIF
        s, d = self.setup_ldap(
            {"alice": {"password": "alice-pw", "attrs": {
                "pop3extAudit": "TRUE", "pop3extVisibleSince": "first-login",
                "pop3extExpireAfterRetr": "30d",
                "pop3extOnRetr": "archive:Read"}}},
            slapd_kw={"schema_format": "schema"})
        code, out = auth_login(d, "alice", "alice-pw")
        self.assertEqual(code, 0, out)
        fields = userdb_fields(out)
        self.assertEqual(fields["pop3ext_audit"], "yes")
        self.assertEqual(fields["pop3ext_visible_since"], "first-login")
        self.assertEqual(fields["pop3ext_expire_after_retr"], "30d")
        self.assertEqual(fields["pop3ext_on_retr"], "archive:Read")

    def test_shipped_example_entries(self):
        with open(os.path.join(schema_dir(), "example-users.ldif")) as f:
            text = f.read().replace("dc=example,dc=com", SUFFIX)
        # the example's users (the OUs and service account exist already)
        entries = [e for e in re.split(r"\n\s*\n", text)
                   if "dn: uid=" in e]
        entries = ["\n".join(line for line in e.splitlines()
                             if not line.startswith("#")) for e in entries]
        self.assertEqual(len(entries), 3)
        s = self.slapd(extra_ldif="\n\n".join(entries))
        d = self.auth_dovecot(self.write_conf(ldap_conf([s])))
        code, out = auth_login(d, "alice", "alice-example-secret")
        self.assertEqual(code, 0, out)
        self.assertEqual(userdb_fields(out)["pop3ext_on_dele"], "hide")
        self.assertEqual(userdb_fields(out)["pop3ext_audit"], "yes")
        code, out = auth_login(d, "bob", "bob-example-secret",
                               "rip=127.0.0.1")
        self.assertEqual(code, 0, out)
        self.assertEqual(userdb_fields(out)["pop3ext_legal_hold"], "yes")
        self.assertEqual(userdb_fields(out)["pop3ext_deny_commands"], "DELE")
        self.assertEqual(pop3_login(d, "carol", "carol-example-secret"),
                         b"-ERR [AUTH] POP3 access is disabled for this "
                         b"account.")

    def test_password_policy_expired_and_locked(self):
        s = self.slapd(ppolicy=True, users={
            "alice": {"password": "alice-pw"},
            "reset": {"password": "reset-pw",
                      "attrs": {"pwdReset": "TRUE"}},
            "locked": {"password": "locked-pw",
                       "attrs": {"pwdAccountLockedTime": "000001010000Z"}}})
        d = self.auth_dovecot(self.write_conf(ldap_conf([s])))
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), b"+OK Logged in.")
        # must change the password first: Dovecot's "expired" result
        self.assertEqual(pop3_login(d, "reset", "reset-pw"),
                         b"-ERR [AUTH] Password expired")
        i = imaplib.IMAP4("127.0.0.1", d.imap_port)
        with self.assertRaises(imaplib.IMAP4.error) as e:
            i.login("reset", "reset-pw")
        self.assertIn("[EXPIRED]", str(e.exception))
        i.shutdown()
        self.assertEqual(pop3_login(d, "locked", "locked-pw"), AUTH_FAILED)
        log = d.log()
        self.assertIn("password of uid=reset,ou=people,dc=example,dc=test "
                      "has expired or must be changed", log)
        self.assertIn("(password expired)", log)
        self.assertIn("account uid=locked,ou=people,dc=example,dc=test is "
                      "locked", log)
        d.wait_log("(user disabled)")

    def test_malformed_directory_value_fails_safe(self):
        s, d = self.setup_ldap({"alice": {"password": "alice-pw", "attrs": {
            "pop3extOnDele": "hide\nexpunge"}}})
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertIn("pop3extOnDele of uid=alice,ou=people,dc=example,"
                      "dc=test has a value with control characters", d.log())
        self.assertIsNone(doveadm_user(d, "alice"))

    def test_ambiguous_filter_is_an_error_not_a_login(self):
        s, d = self.setup_ldap(
            {"alice": {"password": "pw1", "attrs": {"mail": "a@x.test"}},
             "alice2": {"password": "pw2", "attrs": {"mail": "a@x.test"}}},
            conf={"ldap_user_filter": "(mail=%u)"})
        self.assert_tempfail(pop3_login(d, "a@x.test", "pw1"))
        self.assertIn("matches more than one entry", d.log())

    def test_directory_down_is_a_temporary_failure(self):
        # (directory trouble is logged even without auth_verbose)
        s, d = self.setup_ldap({"alice": {"password": "alice-pw"}},
                               conf={"ldap_retry_interval": "1s"},
                               extra_conf="auth_verbose = no\n")
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), b"+OK Logged in.")
        s.kill()
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assert_tempfail(pop3_login(d, "alice", "wrong"))
        self.assert_tempfail(pop3_login(d, "mallory", "x"))
        self.assertIsNone(doveadm_user(d, "alice"))
        self.assertIn("no LDAP server answered", d.log())
        s.start()
        # used again once its ldap_retry_interval has passed
        self.assert_logs_in_again(d)

    def assert_logs_in_again(self, d, within=10):
        deadline = time.monotonic() + within
        while pop3_login(d, "alice", "alice-pw") != b"+OK Logged in.":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)

    def test_hung_directory_times_out(self):
        s, d = self.setup_ldap({"alice": {"password": "alice-pw"}},
                               conf={"ldap_timeout": "1s",
                                     "ldap_retry_interval": "1s"})
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), b"+OK Logged in.")
        s.pause()
        try:
            self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
            self.assertIn("no answer to", d.log())
        finally:
            s.resume()
        self.assert_logs_in_again(d)

    def test_session_user_is_the_directory_name(self):
        # log in with the mail address; the session (home, mailbox) is the
        # directory's uid, so both names reach the same mailbox
        s, d = self.setup_ldap(
            {"alice": {"password": "alice-pw",
                       "attrs": {"mail": "Alice.Example@x.test"}}},
            conf={"ldap_user_filter": "(|(uid=%u)(mail=%u))"})
        self.assertEqual(pop3_login(d, "alice.example@x.test", "alice-pw"),
                         b"+OK Logged in.")
        d.wait_log("Login: user=<alice>")
        # delivery to the address lands in the mailbox alice logs into
        d.deliver("alice.example@x.test", mail.message(1))
        p = d.pop3("alice", "alice-pw")
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        # names the directory would match only by ignoring spaces
        self.assertEqual(pop3_login(d, " alice", "alice-pw"), AUTH_FAILED)
        self.assertEqual(pop3_login(d, "alice ", "alice-pw"), AUTH_FAILED)

    def test_wrong_service_account_password_is_a_clear_error(self):
        s, d = self.setup_ldap({"alice": {"password": "alice-pw"}},
                               conf={"ldap_bind_password": "not-it"})
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertIn("bind as ldap_bind_dn=cn=dovecot,ou=services,"
                      "dc=example,dc=test failed: Invalid credentials",
                      d.log())
        # a configuration error, not a server to fail over from
        self.assertNotIn("unavailable", d.log())

    def test_concurrent_logins_get_their_own_answers(self):
        # many requests in flight over the pipelined search connection and
        # fewer bind connections than binds: each gets its own answer
        users = {"u%02d" % i: {"password": "pw%02d" % i,
                               "attrs": {"pop3extMaxAge": "%dd" % i}}
                 for i in range(20)}
        s, d = self.setup_ldap(users, conf={"ldap_bind_connections": "2"})
        jobs = []
        for rnd in range(5):
            for i in range(20):
                user = "u%02d" % i
                good = (i + rnd) % 3 != 0
                jobs.append((user, "pw%02d" % i if good else "nope", good))
            jobs.append(("ghost%d" % rnd, "pw00", False))
        results = {}
        # (the master may not have made the auth-client socket yet when
        # the first POP3 port answers)
        sock = os.path.join(d.base_dir, "auth-client")
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)

        def run(n):
            results[n] = auth_client_plain(d, jobs[n][0], jobs[n][1])

        threads = [threading.Thread(target=run, args=(n,))
                   for n in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n, reply in results.items():
            user, pw, good = jobs[n]
            if good:
                self.assertTrue(reply.startswith("OK\t"), (user, reply))
                self.assertIn("user=%s" % user, reply)
            else:
                self.assertTrue(reply.startswith("FAIL\t"), (user, reply))
        self.assertEqual(len(results), len(jobs))
        # and the attributes of each are its own
        for i in (3, 17):
            self.assertEqual(doveadm_user(d, "u%02d" % i)["pop3ext_max_age"],
                             "%dd" % i)
        assert_clean_log(self, d)
