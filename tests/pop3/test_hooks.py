"""The dispatcher's public API, used by a plugin built only from
pop3ext-pop3.h (plugin/pop3/pop3ext-testhooks-plugin.c); and how the
modules refuse to load where they must not."""

import os
import re
import shutil

from pop3ext_harness import TestCase, mail, env
from pop3ext_harness.pop3raw import Conversation, EOF

TESTHOOKS = "protocol pop3 {\n  mail_plugins = $mail_plugins " \
            "pop3ext_testhooks\n}\n"


class HooksApiTest(TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.dovecot(users={"alice": {}}, extra_conf=TESTHOOKS)
        self.d.deliver_many("alice", [mail.big_message(1, 4 * 1024 * 1024),
                                      mail.message(2)])

    def session(self):
        c = Conversation(self.d.pop3_port)
        c.login("alice", "secret")
        return c

    def test_registered_command_and_pre_hook(self):
        c = self.session()
        out = c.command(b"XECHO hello world\r\nxecho  lower\r\nNOOP refuse\r\n"
                        b"NOOP\r\n")
        self.assertEqual(out, [b"+OK hello world\r\n", b"+OK lower\r\n",
                               b"-ERR refused by testhooks\r\n", b"+OK\r\n"])
        c.close()

    def test_post_hooks_see_outcomes(self):
        # a small receive buffer: 30 MB of XLINES cannot be sent at once,
        # while a 2 KB RETR is complete before the post-hooks run
        c = Conversation(self.d.pop3_port, rcvbuf=4096)
        c.login("alice", "secret")
        c.send(b"XLINES 3000000\r\nRETR 2\r\nNOOP refuse\r\nFOO\r\n"
               b"STAT\r\nQUIT\r\n")
        for multiline in (True, True, False, False, False, False):
            c.read_response(multiline)
        c.close()
        log = self.d.wait_log("testhooks: post QUIT")
        posts = re.findall(r"testhooks: post (.*)", log)
        self.assertEqual(posts, [
            "XLINES args=3000000 ret=1 hook=0 pending=1",
            "RETR args=2 ret=1 hook=0 pending=0",
            "NOOP args=refuse ret=0 hook=1 pending=0",
            "FOO args= ret=-1 hook=0 pending=0",
            "STAT args= ret=1 hook=0 pending=0",
            "QUIT args= ret=1 hook=0 pending=0"])

    def test_done_hooks_see_whether_the_message_was_sent(self):
        c = Conversation(self.d.pop3_port, rcvbuf=4096)
        c.login("alice", "secret")
        c.send(b"RETR 1\r\nTOP 2 0\r\nTOP 2 100000\r\nRETR 9\r\n"
               b"XLINES 2\r\nQUIT\r\n")
        big = c.read_response(True, chunk=4096, delay=0.0005)
        self.assertGreater(len(big), 4 * 1024 * 1024)
        for multiline in (True, True, True, True, False):
            c.read_response(multiline)
        c.close()
        log = self.d.wait_log("testhooks: done QUIT")
        self.assertEqual(re.findall(r"testhooks: done (.*)", log), [
            # streamed from the flush callback: done at its end
            "RETR args=1 sent=1",
            "TOP args=2 0 sent=0",
            "TOP args=2 100000 sent=1",
            # -ERR: no such message
            "RETR args=9 sent=0",
            "XLINES args=2 sent=0",
            "QUIT args= sent=0"])

        # a client that goes away in the middle of a RETR
        c = Conversation(self.d.pop3_port, rcvbuf=4096)
        c.login("alice", "secret")
        c.send(b"RETR 1\r\n")
        self.assertTrue(c.read_response(False).startswith(b"+OK"))
        c.close()
        log = self.d.wait_log("testhooks: done RETR args=1 sent=0")
        self.assertEqual(log.count("testhooks: done RETR args=1 sent=0"), 1)

    def extra_hook_calls(self, log):
        return re.findall(r"testhooks: extra (pre|post) (\d+) NOOP (\S+)",
                          log)

    def test_hooks_registered_and_unregistered_while_hooks_run(self):
        c = self.session()
        args = ["register", "register", "all-a", "unregister", "none-b",
                "register", "register", "all-c", "unregister-post",
                "none-d"]
        out = c.command(b"".join(b"NOOP %s\r\n" % a.encode()
                                 for a in args))
        self.assertEqual(out, [b"+OK\r\n"] * len(args))
        self.assertTrue(c.command(b"QUIT\r\n")[0].startswith(b"+OK"))
        c.close()
        log = self.d.wait_log("testhooks: post QUIT")
        n = 24

        def pre(a, ids):
            return [("pre", str(i), a) for i in ids]

        def post(a, ids):
            return [("post", str(i), a) for i in ids]
        # a hook registered while hooks run is called from the next
        # command on; one unregistered is not called any more, not even
        # for the command that unregistered it
        self.assertEqual(self.extra_hook_calls(log),
                         pre("register", [0, 1]) + post("register", [0, 1]) +
                         pre("all-a", range(n)) + post("all-a", range(n)) +
                         pre("register", [0, 1]) + post("register", [0, 1]) +
                         pre("all-c", range(n)) + post("all-c", range(n)) +
                         pre("unregister-post", range(n)))
        self.assertNotIn("Panic", log)

    def test_quit_refused_by_a_later_pre_hook_changes_nothing(self):
        """The UPDATE-state work of QUIT runs as QUIT's handler, after
        every pre-hook has let QUIT through."""
        self.d.add_user("arch", pop3ext_on_dele="archive:Archive",
                        pop3ext_on_retr="hide")
        self.d.deliver_many("arch", [mail.message(n) for n in range(3)])
        c = Conversation(self.d.pop3_port)
        c.login("arch", "secret")
        out = c.command(b"DELE 1\r\nRETR 2\r\nNOOP refuse-quit\r\n"
                        b"QUIT\r\n")
        self.assertEqual(out[-1], b"-ERR QUIT refused by testhooks\r\n")
        # the session goes on; nothing was archived or hidden
        i = self.d.imap("arch")
        typ, data = i.list('""', "Archive")
        self.assertEqual(data, [None])
        i.select("INBOX")
        self.assertEqual(i.search(None, "KEYWORD", "$POP3Hidden")[1],
                         [b""])
        i.logout()
        # a second QUIT does the work, once
        self.assertTrue(c.command(b"QUIT\r\n")[0].startswith(b"+OK"))
        c.close()
        i = self.d.imap("arch")
        typ, count = i.select("Archive")
        self.assertEqual(count, [b"1"])
        i.select("INBOX")
        self.assertEqual(i.search(None, "KEYWORD", "$POP3Hidden")[1],
                         [b"1"])
        i.logout()

    def test_session_hooks(self):
        c = self.session()
        self.assertTrue(c.command(b"QUIT\r\n")[0].startswith(b"+OK"))
        c.close()
        self.d.wait_log("testhooks: session destroyed")
        self.assertEqual(re.findall(r"testhooks: session (\w+)",
                                    self.d.log()),
                         ["created", "destroyed"])

        # a ready hook refuses the session: its -ERR instead of Dovecot's
        # "+OK Logged in.", and no command runs
        self.d.add_user("refused", testhooks_refuse="yes")
        self.d.deliver("refused", mail.message(1))
        c = Conversation(self.d.pop3_port)
        out = c.command(b"USER refused\r\nPASS secret\r\nDELE 1\r\n"
                        b"QUIT\r\n")
        self.assertEqual(out[0], b"+OK\r\n")
        self.assertEqual(out[1], b"-ERR refused by testhooks\r\n")
        self.assertTrue(len(out) == 2 or out[2] == EOF, c.text())
        c.close()
        log = self.d.wait_log("Disconnected: Refused by testhooks")
        self.assertNotRegex(log, r"pop3\(refused\).*testhooks: post")
        # DELE never ran
        i = self.d.imap("refused")
        typ, count = i.select("INBOX")
        i.logout()
        self.assertEqual(count, [b"1"])

    def test_commands_behind_big_retr_reach_the_dispatcher(self):
        # A command pipelined behind a 4 MB RETR is read from the flush
        # callback; it must still go through the dispatcher.
        c = self.session()
        c.send(b"RETR 1\r\nXECHO after retr\r\nXLINES 3\r\nCAPA\r\n")
        big = c.read_response(True, chunk=4096, delay=0.0005)
        self.assertGreater(len(big), 4 * 1024 * 1024)
        self.assertEqual(c.read_response(False), b"+OK after retr\r\n")
        self.assertEqual(c.read_response(True),
                         b"+OK 3 lines\r\nline 0\r\nline 1\r\nline 2\r\n.\r\n")
        capa = c.read_response(True).split(b"\r\n")
        c.close()
        self.assertIn(b"X-TESTHOOKS", capa)
        self.assertIn(b"X-TESTHOOKS-SAW-PIPELINING", capa)
        self.assertNotIn(b"AUTH-RESP-CODE", capa)
        self.assertTrue(capa[-3].startswith(b"IMPLEMENTATION dovecot-pop3ext"),
                        capa)

    def test_registered_streaming_command_with_slow_reader(self):
        c = Conversation(self.d.pop3_port, rcvbuf=4096)
        c.login("alice", "secret")
        c.send(b"XLINES 200000\r\nXECHO done\r\nSTAT\r\n")
        resp = c.read_response(True, chunk=2048, delay=0.0001)
        lines = resp.split(b"\r\n")
        self.assertEqual(lines[0], b"+OK 200000 lines")
        self.assertEqual(lines[1:-2], [b"line %d" % i for i in range(200000)])
        self.assertEqual(c.read_response(False), b"+OK done\r\n")
        self.assertTrue(c.read_response(False).startswith(b"+OK 2 "))
        c.close()

    def test_registered_command_can_be_denied(self):
        self.d.add_user("bob", pop3ext_deny_commands="xecho")
        self.d.deliver("bob", mail.message(1))
        c = Conversation(self.d.pop3_port)
        c.login("bob", "secret")
        out = c.command(b"XECHO hi\r\nXLINES 1\r\n")
        self.assertEqual(out[0], b"-ERR [SYS/PERM] The XECHO command is "
                                 b"disabled for this account.\r\n")
        self.assertTrue(out[1].startswith(b"+OK 1 lines"))
        c.close()


class LoadingTest(TestCase):

    def test_pop3_plugin_refuses_to_load_into_imap(self):
        d = self.dovecot(users={"alice": {}},
                         extra_conf="protocol imap {\n  mail_plugins = "
                                    "$mail_plugins pop3ext_pop3\n}\n")
        with self.assertRaises(Exception):
            d.imap("alice").select("INBOX")
        # dlopen() fails on the pop3-only symbols: loud, not a silent no-op
        d.wait_log("lib21_pop3ext_pop3_plugin.so")
        self.assertRegex(d.log(), r"imap\(alice\).*Error: Couldn't load "
                         r"required plugin .*lib21_pop3ext_pop3_plugin.so: "
                         r"dlopen\(\) failed: .*undefined symbol")

    def test_pop3_plugin_needs_the_policy_engine(self):
        d = self.dovecot(users={"alice": {}}, plugins=False,
                         extra_conf="protocol pop3 {\n  mail_plugins = "
                                    "$mail_plugins pop3ext_pop3\n}\n")
        # a stock config, plus the project's modules in mail_plugin_dir
        shutil.rmtree(d.plugin_dir)
        from pop3ext_harness import make_plugin_dir
        make_plugin_dir(d.plugin_dir)
        with self.assertRaises(Exception):
            d.pop3("alice")
        d.wait_log("pop3ext_pop3")
        self.assertRegex(d.log(), r"pop3\(alice\).*Couldn't load required "
                         r"plugin .*lib21_pop3ext_pop3_plugin.so: Plugin "
                         r"pop3ext must be loaded also")

    def test_module_for_another_abi_is_refused(self):
        d = self.dovecot(users={"alice": {}}, start=False)
        # the same module, its recorded ABI changed as a build for another
        # Dovecot would have it
        so = os.path.join(d.plugin_dir, "lib20_pop3ext_plugin.so")
        data = open(so, "rb").read()
        abi = open(env.built("pop3ext-config.h")).read()
        abi = re.search(r'POP3EXT_DOVECOT_ABI_VERSION "([^"]+)"', abi).group(1)
        other = re.sub(r"ABIv(\d+)", lambda m: "ABIv%02d" % (
            (int(m.group(1)) + 1) % 100), abi)[:len(abi)]
        self.assertEqual(data.count(abi.encode() + b"\0"), 1)
        os.unlink(so)
        with open(so, "wb") as f:
            f.write(data.replace(abi.encode() + b"\0", other.encode() + b"\0"))
        d.start()
        with self.assertRaises(Exception):
            d.pop3("alice")
        log = d.wait_log("different ABI")
        self.assertIn("Module is for different ABI version %s (we have %s)"
                      % (other, abi), log)
