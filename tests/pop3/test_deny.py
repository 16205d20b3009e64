"""pop3ext_deny_commands: refused commands, per-user overrides from userdb,
and failing closed on a malformed value."""

import os
import poplib
import re
import subprocess

from pop3ext_harness import TestCase, mail
from pop3ext_harness.pop3raw import Conversation


class DenyTest(TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.dovecot(
            users={"alice": {},
                   # userdb overrides the plugin {} default
                   "bob": {"fields": {"pop3ext_deny_commands": "top,UIDL"}},
                   "carol": {"fields": {"pop3ext_deny_commands": "none"}},
                   # Dovecot passes an empty userdb value on as "yes"
                   "frank": {"fields": {"pop3ext_deny_commands": ""}},
                   "dave": {"fields": {"pop3ext_deny_commands": "DELETE"}},
                   "erin": {"fields": {"pop3ext_deny_commands": "DELE;TOP"}},
                   # handled by pop3-login, never by this process
                   "gina": {"fields": {"pop3ext_deny_commands": "APOP"}}},
            plugin_settings={"pop3ext_deny_commands": "DELE"})
        for user in self.d.users:
            self.d.deliver_many(user, [mail.message(n) for n in range(3)])

    def refused(self, p, cmd, code=b"[SYS/PERM]"):
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd(cmd)
        self.assertTrue(cm.exception.args[0].startswith(b"-ERR " + code),
                        cm.exception.args[0])
        return cm.exception.args[0]

    def test_plugin_default_refuses_dele_and_nothing_is_deleted(self):
        p = self.d.pop3("alice")
        msg = self.refused(p, "DELE 1")
        self.assertEqual(msg, b"-ERR [SYS/PERM] The DELE command is disabled "
                              b"for this account.")
        self.refused(p, "dele 2")
        # other commands are untouched
        self.assertEqual(p.stat()[0], 3)
        self.assertEqual(len(p.retr(1)[1]) > 0, True)
        self.assertIn("TOP", p.capa())
        p.quit()
        p = self.d.pop3("alice")
        self.assertEqual(p.stat()[0], 3)
        p.quit()

    def test_userdb_field_overrides_plugin_setting(self):
        p = self.d.pop3("bob")
        capa = p.capa()
        self.assertNotIn("TOP", capa)
        self.assertNotIn("UIDL", capa)
        self.assertIn("IMPLEMENTATION", capa)
        self.refused(p, "TOP 1 0")
        self.refused(p, "UIDL")
        self.refused(p, "UIDL 1")
        # bob's list replaced the default: DELE works
        self.assertTrue(p.dele(1).startswith(b"+OK"))
        p.quit()
        p = self.d.pop3("bob")
        self.assertEqual(p.stat()[0], 2)
        p.quit()

    def test_empty_userdb_field_allows_everything(self):
        p = self.d.pop3("carol")
        self.assertTrue(p.dele(1).startswith(b"+OK"))
        p.top(2, 0)
        p.quit()
        self.assertEqual(self.d.pop3("carol").stat()[0], 2)

    def test_refusals_are_not_bad_commands(self):
        # Dovecot disconnects after 20 bad commands; refused ones are valid
        c = Conversation(self.d.pop3_port)
        c.login("alice", "secret")
        out = c.command(b"DELE 1\r\n" * 30 + b"STAT\r\n")
        self.assertEqual(len(out), 31)
        self.assertTrue(all(r.startswith(b"-ERR [SYS/PERM]") for r in out[:30]))
        self.assertTrue(out[30].startswith(b"+OK 3 "))
        c.close()

    def test_pipelined_refusal_keeps_order(self):
        c = Conversation(self.d.pop3_port)
        c.login("alice", "secret")
        out = c.command(b"STAT\r\nDELE 1\r\nRETR 1\r\nDELE 2\r\nQUIT\r\n")
        self.assertEqual([r[:4] for r in out],
                         [b"+OK ", b"-ERR", b"+OK ", b"-ERR", b"+OK "])
        c.close()

    def assert_fails_closed(self, user, value):
        p = self.d.pop3(user)
        for cmd in ("STAT", "LIST", "UIDL", "RETR 1", "TOP 1 0", "DELE 1",
                    "LIST 1", "LAST"):
            if cmd == "LAST":
                # not a command of this server: still "unknown"
                with self.assertRaises(poplib.error_proto) as cm:
                    p._shortcmd(cmd)
                self.assertIn(b"Unknown command", cm.exception.args[0])
                continue
            msg = self.refused(p, cmd, b"[SYS/TEMP]")
            self.assertIn(b"server configuration error", msg)
        self.assertTrue(p.noop().startswith(b"+OK"))
        self.assertTrue(p.rset().startswith(b"+OK"))
        capa = p.capa()
        self.assertNotIn("TOP", capa)
        self.assertNotIn("UIDL", capa)
        p.quit()
        log = self.d.wait_log("Invalid pop3ext_deny_commands=%s for user %s"
                              % (value, user))
        self.assertRegex(log, r"pop3\(%s\).*Error: pop3ext_pop3: Invalid "
                         r"pop3ext_deny_commands" % user)
        # nothing was deleted
        self.d.set_user_fields(user, pop3ext_deny_commands=None)
        self.assertEqual(self.d.pop3(user).stat()[0], 3)

    def test_empty_userdb_value_is_not_silently_ignored(self):
        self.assert_fails_closed("frank", "yes")

    def test_unknown_command_name_fails_closed(self):
        self.assert_fails_closed("dave", "DELETE")

    def test_unparseable_value_fails_closed(self):
        self.assert_fails_closed("erin", "DELE;TOP")

    def test_pre_login_command_is_a_config_error(self):
        self.assert_fails_closed("gina", "APOP")
        self.assertIn("'APOP' is a command before login: only commands "
                      "after login can be denied", self.d.log())

    def test_fetchmail_nokeep_cannot_delete(self):
        """fetchmail without --keep retrieves a message and then tries
        DELE; the refusal ends its poll (it reports an error), and the mail
        stays on the server. (pop3ext_on_dele=hide is the setting for
        leave-on-server that clients do not notice.)"""
        out = os.path.join(self.workdir, "fetched.bsmtp")
        rc = os.path.join(self.workdir, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("poll 127.0.0.1 protocol pop3 port %d user alice "
                    "password secret sslproto '' nokeep\n" % self.d.pop3_port)
        os.chmod(rc, 0o600)
        r = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--nosyslog",
                            "--bsmtp", out, "-v", "--idfile",
                            os.path.join(self.workdir, "fetchids")],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, HOME=self.workdir))
        with open(out) as f:
            fetched = f.read()
        self.assertGreaterEqual(
            len(re.findall(r"^MAIL FROM:", fetched, re.M)), 1, r.stdout)
        self.assertIn("POP3> DELE 1", r.stdout + r.stderr)
        self.assertIn("-ERR [SYS/PERM] The DELE command is disabled",
                      r.stdout + r.stderr)
        self.assertEqual(self.d.pop3("alice").stat()[0], 3)
