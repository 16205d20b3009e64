"""A bad configuration file stops Dovecot's auth start-up with a message
naming the file, the line and the key - and logins then fail; they never
succeed with a half-read configuration."""

import os
import re
import time

from authtest import (AuthTestCase, ldap_conf, pop3_login, auth_test,
                      auth_login, userdb_fields)
from pop3ext_harness import env
from pop3ext_harness.slapd import PEOPLE, SUFFIX, SERVICE_PASSWORD


def driver_keys():
    """The keys the parser accepts, from its table in the source."""
    with open(os.path.join(env.SRCDIR, "auth", "pop3ext-auth-config.c")) as f:
        src = f.read()
    keys = set()
    for name in re.findall(r"^\tDEF(?:_ENUM|_UINT)?\((\w+)", src, re.M):
        if name == "site_hooks":
            name = "site_hook"
        keys.add(re.sub(r"_msecs$", "", name))
    return keys

OK = b"+OK Logged in."


class ConfigTest(AuthTestCase):

    def assert_refused_at_startup(self, conf_text, message, userdb=True,
                                  doveadm=False):
        path = self.write_conf(conf_text)
        d = self.auth_dovecot(path, userdb=userdb)
        # the auth process dies while reading the file; Dovecot logs why
        log = d.wait_log(message)
        self.assertIn("auth: Fatal: pop3ext: ", log)
        # and no login gets through
        # (pop3-login greets with "-ERR Auth process broken")
        try:
            r = pop3_login(d, "alice", "alice-pw", timeout=15)
        except OSError as e:
            r = str(e).encode()
        self.assertFalse(r.startswith(b"+OK"), r)
        if doveadm:
            code, out = auth_test(d, "alice", "alice-pw")
            self.assertNotEqual(code, 0, out)
        return d, path

    def test_unknown_key(self):
        s = self.slapd(users={"alice": {"password": "alice-pw"}})
        conf = "".join("%s = %s\n" % kv for kv in ldap_conf([s]).items())
        conf += "# a typo of ldap_timeout\nldap_timout = 5s\n"
        lines = conf.count("\n")
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            conf, "pop3ext: %s line %d: ldap_timout: unknown key"
            % (path, lines), doveadm=True)

    def test_bad_value(self):
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            "password_check = ldap\nldap_uris = ldap://127.0.0.1:1\n"
            "ldap_base = %s\nldap_starttls = maybe\n" % PEOPLE,
            "pop3ext: %s line 4: ldap_starttls: 'maybe' is not yes or no"
            % path)

    def test_filter_that_does_not_pin_the_user(self):
        # with PAM, bob's own password would log him into alice's account
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            "password_check = pam\nattributes = ldap\n"
            "ldap_uris = ldap://127.0.0.1:1\nldap_base = %s\n"
            "ldap_user_filter = (uid=alice)\n" % PEOPLE,
            "pop3ext: %s line 5: ldap_user_filter: must match the user's "
            "name: give an equality with %%u or %%n" % path)

    def test_pam_service_the_client_could_choose(self):
        # %d would let the client pick /etc/pam.d/<anything>
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            "password_check = pam\npam_service = dovecot-%d\n",
            "pop3ext: %s line 2: pam_service: %%d is not allowed here"
            % path, userdb=False)

    def test_pam_service_unknown_placeholder(self):
        # it panicked the auth-worker at every login
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            "password_check = pam\npam_service = dovecot-%{service}\n",
            "pop3ext: %s line 2: pam_service: unknown %%{" % path,
            userdb=False)

    def test_tls_settings_without_tls(self):
        # they would be ignored and the passwords sent in plain text
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            "password_check = ldap\nldap_uris = ldap://127.0.0.1:1\n"
            "ldap_base = %s\nldap_tls_require_cert = hard\n" % PEOPLE,
            "pop3ext: %s line 4: ldap_tls_require_cert: set, but no URI "
            "uses TLS" % path)

    def test_missing_required_key(self):
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            "ldap_uris = ldap://127.0.0.1:1\n",
            "pop3ext: %s: password_check: required (pam or ldap)" % path)

    def test_missing_file(self):
        d = self.auth_dovecot(self.workdir + "/no-such.conf")
        d.wait_log("pop3ext: open(%s/no-such.conf) failed: No such file"
                   % self.workdir)
        self.assertEqual(pop3_login(d, "a", "b", timeout=15),
                         b"-ERR Auth process broken")

    def test_args_are_only_the_path(self):
        path = self.write_conf("password_check = pam\n")
        d = self.auth_dovecot(path + " cache_key=%u", userdb=False)
        d.wait_log("auth: Fatal: pop3ext: passdb args: expected only the "
                   "path of the configuration file, not: %s cache_key=%%u"
                   % path)

    def test_userdb_needs_ldap_attributes(self):
        path = self.workdir + "/pop3ext-auth.conf"
        self.assert_refused_at_startup(
            "password_check = pam\n",
            "pop3ext: %s: userdb { driver = pop3ext } needs attributes = "
            "ldap" % path)

    def test_fixed_file_takes_effect_after_reload(self):
        s = self.slapd(users={"alice": {"password": "alice-pw"}})
        d, path = self.assert_refused_at_startup(
            "password_check = ldap\nldap_uris = %s\nldap_base = %s\n"
            "ldap_scope = everything\n" % (s.uri, PEOPLE),
            "ldap_scope: 'everything' is not one of: base, onelevel, "
            "subtree")
        self.write_conf(ldap_conf([s]))
        d.reload()
        ok = False
        for _ in range(40):
            try:
                if pop3_login(d, "alice", "alice-pw", timeout=15) == OK:
                    ok = True
                    break
            except OSError:
                pass
            time.sleep(0.25)
        self.assertTrue(ok, d.log()[-3000:])

    def test_shipped_example_works(self):
        with open(os.path.join(env.SRCDIR, "auth",
                               "pop3ext-auth.conf.example")) as f:
            text = f.read()
        s = self.slapd(users={"alice": {"password": "alice-pw", "attrs": {
            "pop3extOnDele": "hide", "pop3extPOP3Enabled": "TRUE"}}})
        text = re.sub(r"(?m)^ldap_uris = .*$", "ldap_uris = " + s.uri, text)
        text = text.replace("dc=example,dc=com", SUFFIX).replace(
            "dovecot-service-secret", SERVICE_PASSWORD)
        d = self.auth_dovecot(self.write_conf(text))
        self.assertEqual(pop3_login(d, "alice", "alice-pw"),
                         b"+OK Logged in.")
        code, out = auth_login(d, "recent:alice", "alice-pw")
        self.assertEqual(code, 0, out)
        self.assertEqual(userdb_fields(out)["pop3ext_on_dele"], "hide")
        self.assertEqual(userdb_fields(out)["pop3ext_view"], "recent")

    def test_every_key_is_in_the_example_and_the_docs(self):
        keys = driver_keys()
        self.assertIn("ldap_retry_interval", keys)
        self.assertEqual(len(keys), 33)
        with open(os.path.join(env.SRCDIR, "auth",
                               "pop3ext-auth.conf.example")) as f:
            example = set(re.findall(r"(?m)^#?(\w+) =", f.read()))
        with open(os.path.join(env.SRCDIR, "docs", "AUTH.md")) as f:
            docs = set()
            for cell in re.findall(r"(?m)^\| (`[^|]*) \|", f.read()):
                docs.update(re.findall(r"`(\w+)`", cell))
        self.assertEqual(sorted(keys - example), [])
        self.assertEqual(sorted(example - keys), [])
        self.assertEqual(sorted(keys - docs), [])
