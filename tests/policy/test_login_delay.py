"""pop3ext_login_delay with pop3ext_login_delay_burst: -ERR [LOGIN-DELAY]
to a login sooner than allowed, shared by several servers through a dict;
CAPA LOGIN-DELAY."""

import os
import poplib

from policytest import PolicyTestCase
from pop3ext_harness import Dovecot


class LoginDelayTest(PolicyTestCase):

    def setUp(self):
        super().setUp()
        # a dict file that the mail processes (as the mail user) can write
        self.dict_dir = os.path.join(self.workdir, "dict")
        os.makedirs(self.dict_dir)
        self.dict_uri = "file:%s/login-delay.db" % self.dict_dir

    def start_delay(self, **kw):
        d = self.start({"u": {"pop3ext_login_delay": "1h",
                              "pop3ext_login_delay_burst": "2",
                              "pop3ext_login_delay_dict": self.dict_uri},
                        "free": {}}, messages=1, **kw)
        os.chown(self.dict_dir, d.uid, d.gid)
        return d

    def login(self, d, user="u"):
        p = poplib.POP3("127.0.0.1", d.pop3_port, timeout=30)
        p.user(user)
        try:
            p.pass_("secret")
        except poplib.error_proto as e:
            p.close()
            return e.args[0].decode()
        capa = p.capa()
        p.quit()
        return capa

    def test_burst_then_delay(self):
        d = self.start_delay()
        first = self.login(d)
        self.assertEqual(first["LOGIN-DELAY"], ["3600"])
        self.assertIsInstance(self.login(d), dict)
        third = self.login(d)
        self.assertRegex(third, r"^-ERR \[LOGIN-DELAY\] Logins are limited "
                         r"to 2 per 3600 seconds; try again in \d+ seconds\.$")
        # other users are not affected
        self.assertNotIn("LOGIN-DELAY", self.login(d, "free"))
        # the refused session did nothing, and said so in the log
        d.wait_log("Login delayed (pop3ext_login_delay)")
        self.assertEqual(len(self.pop3_subjects("free")), 1)

    def test_recent_logins_are_delayed_too(self):
        # a recent: login (pop3ext_view=recent) is a login like any other:
        # CAPA says LOGIN-DELAY, and it is enforced
        d = self.start({"r": {"pop3ext_view": "recent",
                              "pop3ext_login_delay": "1h",
                              "pop3ext_login_delay_dict": self.dict_uri}},
                       messages=1)
        os.chown(self.dict_dir, d.uid, d.gid)
        self.assertEqual(self.login(d, "r")["LOGIN-DELAY"], ["3600"])
        self.assertRegex(self.login(d, "r"), r"^-ERR \[LOGIN-DELAY\] ")

    def test_servers_sharing_the_dict_agree(self):
        d = self.start_delay()
        other = self.track(Dovecot(self.workdir, name="other",
                                   users={"u": {"fields": {
                                       "pop3ext_login_delay": "1h",
                                       "pop3ext_login_delay_burst": "2",
                                       "pop3ext_login_delay_dict":
                                           self.dict_uri}}}))
        other.start()
        other.deliver("u", b"Subject: x\r\n\r\nx\r\n")
        self.assertIsInstance(self.login(d), dict)
        self.assertIsInstance(self.login(other), dict)
        self.assertIn("[LOGIN-DELAY]", self.login(d))
        self.assertIn("[LOGIN-DELAY]", self.login(other))
        # an hour later, on a third server, the user may log in again
        later = self.track(Dovecot(self.workdir, name="later",
                                   users={"u": {"fields": {
                                       "pop3ext_login_delay": "1h",
                                       "pop3ext_login_delay_burst": "2",
                                       "pop3ext_login_delay_dict":
                                           self.dict_uri}}},
                                   pop3_faketime="+61m"))
        later.start()
        later.deliver("u", b"Subject: x\r\n\r\nx\r\n")
        self.assertIsInstance(self.login(later), dict)

    def test_refused_login_pipelined_commands_do_nothing(self):
        from pop3ext_harness.pop3raw import Conversation
        d = self.start_delay(plugin_settings={"pop3ext_on_dele": "expunge"})
        self.login(d)
        self.login(d)
        c = Conversation(d.pop3_port)
        out = c.command(b"USER u\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n")
        c.close()
        self.assertTrue(out[1].startswith(b"-ERR [LOGIN-DELAY]"), out)
        # then the connection ends: DELE and QUIT are never run
        self.assertEqual(out[2:], [b"<EOF>"], out)
        self.assertEqual(len(self.imap_messages("u")), 1)

    def test_unusable_dict_lets_logins_through_and_says_so(self):
        self.dict_uri = "file:/nonexistent-pop3ext-dir/x.db"
        d = self.start_delay()
        for _ in range(3):
            self.assertIsInstance(self.login(d), dict)
        d.wait_log("pop3ext_login_delay_dict")
        self.assertRegex(d.log(), r"pop3\(u\).*Error: pop3ext_pop3: "
                         r"pop3ext_login_delay_dict: commit failed")
