"""Site hooks: the worked example (auth/examples/pop3ext_site_example.c)
allows, denies with a logged reason, temp-fails and adds fields; a missing
or wrong-ABI module stops auth start-up with a clear error."""

import os
import shutil

from authtest import (AuthTestCase, AUTH_FAILED, ldap_conf, pop3_login,
                      auth_login, userdb_fields, assert_clean_log)
from pop3ext_harness import env

OK = b"+OK Logged in."
USERS = {"alice": {"password": "alice-pw",
                   "attrs": {"pop3extOnDele": "hide"}},
         "bob": {"password": "bob-pw"}}


class SiteHookTest(AuthTestCase):

    def setUp(self):
        super().setUp()
        self.hook_dir = os.path.join(self.workdir, "site")
        os.makedirs(self.hook_dir)
        for name in ("pop3ext_site_example", "pop3ext_site_wrong_abi",
                     "pop3ext_site_fields"):
            shutil.copy(env.built("auth/.libs/%s.so" % name), self.hook_dir)
        self.s = self.slapd(users=USERS)

    def hook_dovecot(self, *hook_lines, **kw):
        conf = ldap_conf([self.s], site_hook_dir=self.hook_dir)
        text = "".join("%s = %s\n" % kv for kv in conf.items())
        text += "".join("site_hook = %s\n" % h for h in hook_lines)
        return self.auth_dovecot(self.write_conf(text), **kw), \
            text.count("\n")

    def test_example_allows_denies_tempfails_and_adds_fields(self):
        deny = os.path.join(self.workdir, "blocked")
        maint = os.path.join(self.workdir, "maintenance")
        with open(deny, "w") as f:
            f.write("# blocked users\nbob\n")
        d, _ = self.hook_dovecot(
            "example deny_file=%s maintenance_file=%s "
            "field=userdb_pop3ext_audit=yes field=userdb_site=example"
            % (deny, maint))
        # allowed, with the hook's fields next to the directory's
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        code, out = auth_login(d, "alice", "alice-pw")
        self.assertEqual(code, 0, out)
        fields = userdb_fields(out)
        self.assertEqual(fields["pop3ext_audit"], "yes")
        self.assertEqual(fields["site"], "example")
        self.assertEqual(fields["pop3ext_on_dele"], "hide")

        # denied: the client sees the generic answer, the log the reason
        self.assertEqual(pop3_login(d, "bob", "bob-pw"), AUTH_FAILED)
        log = d.wait_log("site hook example denied the login: user bob "
                         "is listed in %s (pop3 login from 127.0.0.1)" % deny)
        self.assertNotIn(b"listed", pop3_login(d, "bob", "bob-pw"))
        # a wrong password never reaches the hook
        self.assertEqual(pop3_login(d, "bob", "wrong"), AUTH_FAILED)
        self.assertEqual(log.count("site hook example denied"), 1)

        # maintenance: everybody gets a temporary failure
        open(maint, "w").close()
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertIn("site hook example failed the login temporarily: "
                      "maintenance: logins are paused", d.log())
        os.unlink(maint)
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        assert_clean_log(self, d)

    def test_hooks_run_in_order_and_see_the_request(self):
        # deny_insecure: these test connections have no TLS (Dovecot calls
        # loopback "secured", so use doveadm without a TLS flag instead)
        d, _ = self.hook_dovecot("example field=userdb_first=1",
                                 "example deny_insecure=yes")
        code, out = auth_login(d, "alice", "alice-pw")
        self.assertNotEqual(code, 0, out)
        d.wait_log("site hook example denied the login: connection is not "
                   "secured by TLS")
        # the first hook's field is dropped with the denial
        self.assertNotIn("first=1", out)
        # over POP3 from 127.0.0.1 (secured for Dovecot) it passes both
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)

    def test_hooks_cannot_rename_the_user(self):
        # every field through which Dovecot would change who logs in (or
        # where the mail is), directly, with a :protected suffix, or by
        # import; and names Dovecot can't take (a TAB crashed the worker)
        renaming = ["user", "username", "domain", "login_user",
                    "userdb_user", "userdb_username", "userdb_domain",
                    "passdb_import", "userdb_userdb_import",
                    "username:protected", "userdb_home", "userdb_mail",
                    "userdb_uid", "password", "nopassword"]
        args = " ".join("%s=bob" % n for n in renaming)
        d, _ = self.hook_dovecot("fields %s x\\tuser=bob "
                                 "userdb_pop3ext_audit=yes" % args)
        code, out = auth_login(d, "alice", "alice-pw")
        self.assertEqual(code, 0, out)
        self.assertIn("auth succeeded", out)
        self.assertNotIn("bob", out)
        # the fields it may set still arrive
        self.assertEqual(userdb_fields(out)["pop3ext_audit"], "yes")
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        d.wait_log("Login: user=<alice>")
        self.assertNotIn("user=<bob>", d.log())
        log = d.log()
        for name in renaming:
            self.assertIn("site hook tried to set field %s: refused" % name,
                          log)
        self.assertIn("site hook tried to set field x?user: refused "
                      "(not a field name)", log)
        assert_clean_log(self, d)

    def test_tempfail_with_later_passdbs(self):
        # a hook's TEMPFAIL (maintenance) is Dovecot's internal failure,
        # which by default goes on to the next passdb; the documented
        # result_internalfail = return-fail keeps it from logging in
        maint = os.path.join(self.workdir, "maintenance")
        open(maint, "w").close()
        d, _ = self.hook_dovecot(
            "example maintenance_file=%s" % maint, passwd_file_after=True,
            users={"alice": {"password": "alice-pw"}},
            passdb_extra="  result_internalfail = return-fail\n")
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertIn("site hook example failed the login temporarily",
                      d.log())
        os.unlink(maint)
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)

    def test_hooks_are_initialised_in_auth_workers_only(self):
        # not as root in the auth process that serves the clients (W3)
        init_log = os.path.join(self.workdir, "inits")
        open(init_log, "w").close()
        os.chmod(init_log, 0o666)
        d, _ = self.hook_dovecot("fields init_log=%s" % init_log)
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        with open(init_log) as f:
            inits = f.read().splitlines()
        self.assertGreater(len(inits), 0)
        for cmdline in inits:
            self.assertTrue(" -w" in cmdline or "auth-worker" in cmdline,
                            inits)

    def assert_startup_error(self, hook_line, message):
        d, line = self.hook_dovecot(hook_line)
        d.wait_log("auth: Fatal: pop3ext: %s line %d: site_hook: %s" % (
            self.workdir + "/pop3ext-auth.conf", line, message))
        self.assertEqual(pop3_login(d, "alice", "alice-pw", timeout=15),
                         b"-ERR Auth process broken")

    def test_missing_module(self):
        self.assert_startup_error(
            "nosuch", "cannot load %s/pop3ext_site_nosuch.so: "
            % self.hook_dir)

    def test_wrong_abi_module(self):
        self.assert_startup_error(
            "wrong_abi", "%s/pop3ext_site_wrong_abi.so was built for site "
            "hook ABI version 2, this driver has version 1" % self.hook_dir)

    def test_not_a_site_hook(self):
        # a shared object without the module variable
        shutil.copy(env.built("auth/.libs/pam_pop3ext_test.so"),
                    os.path.join(self.hook_dir, "pop3ext_site_pam.so"))
        self.assert_startup_error(
            "pam", "%s/pop3ext_site_pam.so defines no "
            "pop3ext_auth_site_module: not a pop3ext site hook"
            % self.hook_dir)

    def test_bad_hook_arguments(self):
        # hooks are initialised in the auth-workers: the error stops the
        # first one, and the login fails temporarily, never without it
        d, line = self.hook_dovecot("example colour=blue")
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        d.wait_log("auth-worker(")
        d.wait_log("Fatal: pop3ext: %s line %d: site_hook: example: "
                   "unknown argument 'colour=blue'"
                   % (self.workdir + "/pop3ext-auth.conf", line))
