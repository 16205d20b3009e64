"""Real POP3 clients nobody here wrote, through the dispatcher: curl
(pop3:// and pop3s://), fetchmail (keep and no-keep), mpop; imaplib sees
the result."""

import email
import glob
import os
import re
import subprocess

from pop3ext_harness import TestCase, mail

N = 5


class ClientsTest(TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.dovecot(users={"alice": {}}, ssl=True)
        self.msgs = [mail.message(n, size=3000 + 1000 * n) for n in range(N)]
        self.d.deliver_many("alice", self.msgs)

    def run_client(self, argv, **kw):
        r = subprocess.run(argv, capture_output=True, timeout=120,
                           env=dict(os.environ, HOME=self.workdir), **kw)
        return r

    def test_curl_pop3_and_pop3s(self):
        cert = os.path.join(self.d.dir, "ssl.crt")
        for url, extra in (("pop3://127.0.0.1:%d" % self.d.pop3_port, []),
                           ("pop3s://localhost:%d" % self.d.pop3s_port,
                            ["--cacert", cert, "--resolve",
                             "localhost:%d:127.0.0.1" % self.d.pop3s_port])):
            r = self.run_client(["curl", "-sS", "-u", "alice:secret"] +
                                extra + [url])
            self.assertEqual(r.returncode, 0, r.stderr)
            listing = r.stdout.decode().split("\r\n")
            self.assertEqual(len([x for x in listing if x]), N)
            r = self.run_client(["curl", "-sS", "-u", "alice:secret"] +
                                extra + [url + "/3"])
            self.assertEqual(r.returncode, 0, r.stderr)
            got = email.message_from_bytes(r.stdout)
            self.assertEqual(got["Subject"], "test message 2")
            # the body arrives un-dot-stuffed and complete
            self.assertTrue(r.stdout.endswith(self.msgs[2].split(b"\r\n\r\n",
                                                                 1)[1]))

    def fetchmail(self, keep):
        out = os.path.join(self.workdir, "fetched-%s" % keep)
        rc = os.path.join(self.workdir, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("poll 127.0.0.1 protocol pop3 port %d user alice "
                    "password secret sslproto '' %s\n"
                    % (self.d.pop3_port, "keep" if keep else "nokeep fetchall"))
        os.chmod(rc, 0o600)
        r = self.run_client(["fetchmail", "-f", rc, "--nodetach", "--nosyslog",
                             "--bsmtp", out, "--idfile",
                             os.path.join(self.workdir, "fetchids")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(out, "rb") as f:
            return f.read()

    def test_fetchmail_keep_then_nokeep(self):
        got = self.fetchmail(keep=True)
        self.assertEqual(len(re.findall(rb"^MAIL FROM:", got, re.M)), N)
        self.assertEqual(self.d.pop3("alice").stat()[0], N)
        got = self.fetchmail(keep=False)
        self.assertEqual(len(re.findall(rb"^MAIL FROM:", got, re.M)), N)
        self.assertEqual(self.d.pop3("alice").stat()[0], 0)
        i = self.d.imap("alice")
        typ, data = i.select("INBOX")
        self.assertEqual(data, [b"0"])
        i.logout()

    def test_mpop_keeps_and_deletes(self):
        deliver = os.path.join(self.workdir, "mpop-out")
        os.makedirs(os.path.join(deliver, "new"))
        os.makedirs(os.path.join(deliver, "cur"))
        os.makedirs(os.path.join(deliver, "tmp"))
        conf = os.path.join(self.workdir, "mpoprc")
        uidls = os.path.join(self.workdir, "mpop-uidls")
        with open(conf, "w") as f:
            f.write("account default\nhost 127.0.0.1\nport %d\nuser alice\n"
                    "password secret\ntls off\nauth user\n"
                    "delivery maildir %s\nuidls_file %s\nkeep on\n"
                    % (self.d.pop3_port, deliver, uidls))
        os.chmod(conf, 0o600)
        r = self.run_client(["mpop", "-C", conf, "-q"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(glob.glob(os.path.join(deliver, "new", "*"))), N)
        # a second run with keep: nothing new (UIDLs remembered)
        r = self.run_client(["mpop", "-C", conf, "-q"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(glob.glob(os.path.join(deliver, "new", "*"))), N)
        self.assertEqual(self.d.pop3("alice").stat()[0], N)
        r = self.run_client(["mpop", "-C", conf, "-q", "--keep=off",
                             "--only-new=off"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.d.pop3("alice").stat()[0], 0)
