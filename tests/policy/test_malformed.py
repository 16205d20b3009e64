"""A malformed value of any policy setting, from userdb or plugin {}: a
clear error naming the setting, the value and the user; the user's mail
fails safe (nothing is expunged by anyone; POP3 refuses commands that read
or change mail); other users are unaffected."""

import json
import poplib
import re

from policytest import PolicyTestCase

MALFORMED = [
    ("pop3ext_on_dele", "delete"),
    ("pop3ext_on_dele", "archive:"),
    ("pop3ext_on_dele", "archive:INBOX"),
    # an empty userdb value reaches plugins as "yes"
    ("pop3ext_on_dele", ""),
    ("pop3ext_on_retr", "remove"),
    ("pop3ext_on_retr", "archive:inbox"),
    ("pop3ext_expire_after_retr", "30"),
    ("pop3ext_expire_after_retr", "30x"),
    ("pop3ext_expire_after_retr", "-1d"),
    ("pop3ext_expire_after_retr", "30dd"),
    ("pop3ext_expire_after_retr", "99999999999d"),
    ("pop3ext_max_age", "1y"),
    ("pop3ext_min_age", "never"),
    ("pop3ext_min_age", "abc"),
    ("pop3ext_legal_hold", "maybe"),
    ("pop3ext_legal_hold", "1"),
    ("pop3ext_visible_since", "2026-13-01"),
    ("pop3ext_visible_since", "2026-02-30"),
    ("pop3ext_visible_since", "yesterday"),
    ("pop3ext_visible_since", "2026-01-01T25:00Z"),
    ("pop3ext_recent_window", "never"),
    ("pop3ext_recent_window", "5"),
    ("pop3ext_view", "old"),
    ("pop3ext_audit", "true"),
    ("pop3ext_login_delay", "never"),
    ("pop3ext_login_delay_burst", "0"),
    ("pop3ext_login_delay_burst", "1000"),
    ("pop3ext_login_delay_burst", "x"),
    ("pop3ext_login_delay_dict", "nocolon"),
]


class MalformedTest(PolicyTestCase):

    def test_every_setting(self):
        users = {"ok": {}}
        cases = {}
        for n, (setting, value) in enumerate(MALFORMED):
            user = "bad%02d" % n
            users[user] = {setting: value}
            cases[user] = (setting, value if value != "" else "yes")
        # a login delay without the dict it needs
        users["nodict"] = {"pop3ext_login_delay": "5m"}
        cases["nodict"] = ("pop3ext_login_delay", "5m")
        self.start(users, messages=2)

        for user, (setting, value) in cases.items():
            with self.subTest(user=user, setting=setting, value=value):
                p = self.d.pop3(user)
                self.assertEqual(p.capa()["EXPIRE"], ["NEVER"])
                for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL"):
                    err = self.pop3_error(p, cmd)
                    self.assertTrue(err.startswith("-ERR [SYS/TEMP]"), err)
                self.assertTrue(p.noop().startswith(b"+OK"))
                p.quit()

                # IMAP works, but nothing is expunged
                i = self.d.imap(user)
                i.select("INBOX")
                i.store("1:*", "+FLAGS", "(\\Deleted)")
                i.expunge()
                i.logout()
                self.assertEqual(len(self.imap_messages(user)), 2)
                self.d.doveadm("expunge", "-u", user, "mailbox", "INBOX",
                               "all")
                self.assertEqual(len(self.imap_messages(user)), 2)

                log = self.d.wait_log("for user %s" % user)
                line = [l for l in log.splitlines()
                        if "for user %s" % user in l and "Error" in l][0]
                self.assertIn("Invalid policy setting %s=%s"
                              % (setting, value), line)
                self.assertIn("(from userdb)", line)
                self.assertIn("failing safe", line)

                r = self.d.doveadm("-f", "json", "pop3ext", "policy", "-u",
                                   user, check=False)
                self.assertNotEqual(r.returncode, 0)
                rows = {row["setting"]: row for row in json.loads(r.stdout)}
                self.assertEqual(rows[setting]["value"], value)
                self.assertEqual(rows[setting]["source"], "userdb")

        # the sweep reports the broken users and still sweeps the others
        r = self.d.doveadm("pop3ext", "sweep", "-A", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"Sweep of user bad00 failed: Invalid "
                         r"policy setting pop3ext_on_dele=delete")
        self.assertIn("ok", r.stdout)

        # the good user was never affected
        p = self.d.pop3("ok")
        self.assertEqual(p.stat()[0], 2)
        p.dele(1)
        p.quit()
        self.assertEqual(len(self.imap_messages("ok")), 1)

    def test_malformed_plugin_setting_applies_to_everyone(self):
        self.plugin_settings = {"pop3ext_max_age": "forever"}
        self.start({"a": {}, "b": {"pop3ext_max_age": "30d"}}, messages=1)
        p = self.d.pop3("a")
        self.assertTrue(self.pop3_error(p, "STAT").startswith(
            "-ERR [SYS/TEMP]"))
        p.quit()
        self.d.wait_log("Invalid policy setting pop3ext_max_age=forever "
                        "(from plugin)")
        # a user whose userdb overrides the broken default is fine
        p = self.d.pop3("b")
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        r = self.d.doveadm("-f", "json", "pop3ext", "policy", "-u", "b")
        rows = {row["setting"]: row for row in json.loads(r.stdout)}
        self.assertEqual((rows["pop3ext_max_age"]["value"],
                          rows["pop3ext_max_age"]["source"],
                          rows["pop3ext_max_age"]["status"]),
                         ("30d", "userdb", "ok"))
        self.assertEqual(rows["pop3ext_on_dele"]["source"], "default")

    def test_policy_command_shows_sources(self):
        self.plugin_settings = {"pop3ext_on_retr": "seen",
                                "pop3ext_max_age": "90d"}
        self.start({"u": {"pop3ext_max_age": "30d"}}, messages=1)
        r = self.d.doveadm("-f", "json", "pop3ext", "policy", "-u", "u")
        rows = {row["setting"]: row for row in json.loads(r.stdout)}
        self.assertEqual(len(rows), 13)
        self.assertEqual((rows["pop3ext_max_age"]["value"],
                          rows["pop3ext_max_age"]["source"]),
                         ("30d", "userdb"))
        self.assertEqual((rows["pop3ext_on_retr"]["value"],
                          rows["pop3ext_on_retr"]["source"]),
                         ("seen", "plugin"))
        self.assertEqual((rows["pop3ext_min_age"]["value"],
                          rows["pop3ext_min_age"]["source"]),
                         ("0", "default"))
        self.assertTrue(all(row["status"] == "ok" for row in rows.values()))
        # tab and table formatters work too
        r = self.d.doveadm("-f", "tab", "pop3ext", "policy", "-u", "u")
        self.assertIn("pop3ext_max_age\t30d\tuserdb\tok", r.stdout)

    def test_malformed_policy_without_pop3ext_pop3_expunges_nothing(self):
        """Fail safe whatever the protocol loads: a pop3 without
        pop3ext_pop3 refuses the session for a malformed policy as for a
        valid one, so POP3 DELE + QUIT expunges nothing."""
        self.start({"bad": {"pop3ext_legal_hold": "yes",
                            "pop3ext_login_delay": "bogus"},
                    "good": {}},
                   extra_conf="protocol pop3 {\n"
                              "  mail_plugins = pop3ext\n}\n")
        for user in ("bad", "good"):
            with self.subTest(user=user):
                with self.assertRaises(poplib.error_proto) as cm:
                    p = self.d.pop3(user)
                    # (had the session opened: the deletion to refuse)
                    p.dele(1)
                    p.quit()
                self.assertIn(b"-ERR", cm.exception.args[0])
                self.assertEqual(len(self.imap_messages(user)), 3)
        self.assertRegex(self.d.log(), r"pop3\(bad\).*the POP3 session "
                         r"needs pop3ext_pop3")
