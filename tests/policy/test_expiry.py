"""pop3ext_expire_after_retr and pop3ext_max_age, applied by
`doveadm pop3ext sweep`; CAPA EXPIRE; the retrieval record surviving index
loss; the sweep's output, dry run, idempotence and concurrency."""

import glob
import os
import shutil
import time

from policytest import PolicyTestCase


def capa_expire(d, user):
    p = d.pop3(user)
    value = p.capa().get("EXPIRE")
    p.quit()
    return value


class ExpiryTest(PolicyTestCase):

    def test_capa_expire_tells_what_happens(self):
        self.start({"never": {},
                    "days": {"pop3ext_expire_after_retr": "7d"},
                    "hours": {"pop3ext_expire_after_retr": "36h"},
                    "short": {"pop3ext_expire_after_retr": "12h"},
                    "maxage": {"pop3ext_max_age": "30d",
                               "pop3ext_expire_after_retr": "90d"},
                    "hold": {"pop3ext_legal_hold": "yes",
                             "pop3ext_max_age": "30d"},
                    "gone": {"pop3ext_on_retr": "expunge"},
                    "archived": {"pop3ext_on_retr": "archive:Old"}},
                   messages=1)
        expected = {"never": ["NEVER"], "days": ["7"], "hours": ["1"],
                    "short": ["0"], "maxage": ["30"], "hold": ["NEVER"],
                    "gone": ["0"], "archived": ["0"]}
        for user, value in expected.items():
            self.assertEqual(capa_expire(self.d, user), value, user)

    def retrieve(self, user, *msgnums):
        p = self.d.pop3(user)
        for n in msgnums:
            p.retr(n)
        p.quit()

    def test_expire_after_retrieval(self):
        self.start({"u": {"pop3ext_expire_after_retr": "2d"},
                    "other": {}})
        self.retrieve("u", 1, 3)
        self.retrieve("other", 1)
        # not due yet: the dry run and the sweep agree on nothing
        self.assertEqual(self.sweep("-n", "-u", "u", faketime="+1d")
                         ["-"]["messages"], 0)
        res = self.sweep("-A", faketime="+3d")
        self.assertEqual(res["u"]["messages"], 2)
        self.assertEqual(res["other"]["messages"], 0)
        self.assertEqual(res["*total*"]["messages"], 2)
        size = sum(len(m) for m in (self.msgs["u"][0], self.msgs["u"][2]))
        self.assertGreaterEqual(int(res["u"]["bytes"]), size)
        self.assertEqual(self.pop3_subjects("u"), ["u 1"])
        # idempotent
        self.assertEqual(self.sweep("-A", faketime="+3d")["*total*"]
                         ["messages"], 0)

    def test_first_retrieval_counts(self):
        self.start({"u": {"pop3ext_expire_after_retr": "2d"}})
        self.retrieve("u", 1)
        # a later retrieval (here a day later) does not restart the clock
        self.d.stop()
        self.d.pop3_faketime = "+1d"
        self.d.start()
        self.retrieve("u", 1, 2)
        res = self.sweep("-u", "u", faketime="+49h")
        self.assertEqual(res["-"]["messages"], 1)
        self.assertEqual(self.pop3_subjects("u"), ["u 1", "u 2"])

    def test_retrieval_record_survives_index_loss(self):
        self.start({"u": {"pop3ext_expire_after_retr": "1d"}})
        self.retrieve("u", 2)
        self.d.stop()
        home = self.d.home("u")
        removed = [f for f in glob.glob(os.path.join(home, "Maildir",
                                                     "dovecot.index*"))]
        self.assertTrue(removed)
        for f in removed:
            os.unlink(f)
        self.d.start()
        res = self.sweep("-u", "u", faketime="+2d")
        self.assertEqual(res["-"]["messages"], 1)
        self.assertEqual(self.pop3_subjects("u"), ["u 0", "u 2"])

    def test_retrieval_record_follows_a_new_uidvalidity(self):
        """The index lost and the uidlist too: UIDs start over; the
        record finds the message by GUID."""
        self.start({"u": {"pop3ext_expire_after_retr": "1d"}})
        self.retrieve("u", 2)
        self.d.stop()
        maildir = os.path.join(self.d.home("u"), "Maildir")
        for f in glob.glob(os.path.join(maildir, "dovecot*")):
            os.unlink(f)
        self.d.start()
        self.assertEqual(len(self.pop3_subjects("u")), 3)
        res = self.sweep("-u", "u", faketime="+2d")
        self.assertEqual(res["-"]["messages"], 1)
        self.assertEqual(self.pop3_subjects("u"), ["u 0", "u 2"])

    def test_max_age(self):
        self.start({"u": {"pop3ext_max_age": "10d"},
                    "v": {"pop3ext_max_age": "never"}})
        res = self.sweep("-n", "-A", faketime="+11d")
        self.assertEqual(res["u"]["messages"], 3)
        self.assertEqual(res["v"]["messages"], 0)
        self.assertEqual(len(self.pop3_subjects("u")), 3)  # dry run
        self.assertEqual(self.sweep("-A", faketime="+9d")["u"]["messages"],
                         0)
        self.assertEqual(self.sweep("-A", faketime="+11d")["u"]["messages"],
                         3)
        self.assertEqual(self.pop3_subjects("u"), [])
        self.assertEqual(len(self.pop3_subjects("v")), 3)

    def test_max_age_stops_at_the_first_young_message(self):
        # save dates are the files' ctimes: real time has to pass
        self.start({"u": {"pop3ext_max_age": "3s"}}, messages=2)
        time.sleep(3.5)
        self.d.deliver_many("u", [b"Subject: new 1\r\n\r\n1\r\n",
                                  b"Subject: new 2\r\n\r\n2\r\n"])
        res = self.sweep("-u", "u")
        self.assertEqual(res["-"]["messages"], 2)
        self.assertEqual(self.pop3_subjects("u"), ["new 1", "new 2"])

    def test_dovecot_interval_forms(self):
        """Intervals are Dovecot's own: '2 weeks', '30 days', '12h'."""
        self.plugin_settings = {"pop3ext_max_age": "2 weeks",
                                "pop3ext_expire_after_retr": "30 days",
                                "pop3ext_min_age": "12 hours"}
        self.start({"u": {}})
        p = self.d.pop3("u")
        self.assertEqual(p.capa()["EXPIRE"], ["14"])
        p.quit()
        self.assertEqual(self.sweep("-u", "u", faketime="+13d")["-"]
                         ["messages"], 0)
        self.assertEqual(self.sweep("-u", "u", faketime="+15d")["-"]
                         ["messages"], 3)

    def test_sweep_users_from_file(self):
        self.start({"a": {"pop3ext_max_age": "1d"},
                    "b": {"pop3ext_max_age": "1d"},
                    "c": {"pop3ext_max_age": "1d"}}, messages=1)
        users = os.path.join(self.workdir, "users")
        with open(users, "w") as f:
            f.write("a\nc\n")
        res = self.sweep("-F", users, faketime="+2d")
        self.assertEqual(set(res), {"a", "c", "*total*"})
        self.assertEqual(res["*total*"]["messages"], 2)
        self.assertEqual(len(self.pop3_subjects("b")), 1)

    def test_sweep_while_a_session_is_open(self):
        self.start({"u": {"pop3ext_max_age": "1d"}})
        p = self.d.pop3("u")
        self.assertEqual(p.stat()[0], 3)
        self.assertEqual(self.sweep("-u", "u", faketime="+2d")["-"]
                         ["messages"], 3)
        # the open session sees the messages gone, cleanly
        err = self.pop3_error(p, "RETR 1")
        self.assertIn("expunged", err)
        p.quit()
        self.assertEqual(self.pop3_subjects("u"), [])

    def test_sweep_of_unknown_user_or_without_plugin(self):
        self.start({"u": {}})
        r = self.d.doveadm("pop3ext", "sweep", "-u", "nobody-here",
                           check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("doesn't exist", r.stderr)


class ExpirySdboxTest(ExpiryTest):
    storage = "sdbox"

    def test_retrieval_record_survives_index_loss(self):
        self.start({"u": {"pop3ext_expire_after_retr": "1d"}})
        self.retrieve("u", 2)
        self.d.stop()
        box = os.path.join(self.d.home("u"), "sdbox", "mailboxes", "INBOX",
                           "dbox-Mails")
        removed = glob.glob(os.path.join(box, "dovecot.index*"))
        self.assertTrue(removed)
        for f in removed:
            os.unlink(f)
        self.d.start()
        # sdbox rebuilds a lost index when told to (same UIDs, a new
        # UIDVALIDITY): the record finds the message by GUID
        self.d.doveadm("force-resync", "-u", "u", "INBOX")
        self.assertEqual(len(self.pop3_subjects("u")), 3)
        res = self.sweep("-u", "u", faketime="+2d")
        self.assertEqual(res["-"]["messages"], 1)
        self.assertEqual(self.pop3_subjects("u"), ["u 0", "u 2"])

    # sdbox keeps UIDs in its file names: no new UIDVALIDITY to follow
    test_retrieval_record_follows_a_new_uidvalidity = None


class ExpirySqlboxTest(ExpiryTest):
    storage = "sqlbox"

    def test_retrieval_record_survives_index_loss(self):
        """sqlbox's index is a cache of its database: all of it may go."""
        self.start({"u": {"pop3ext_expire_after_retr": "1d"}})
        self.retrieve("u", 2)
        self.d.stop()
        mailboxes = os.path.join(self.d.home("u"), "sqlbox", "mailboxes")
        self.assertTrue(glob.glob(os.path.join(mailboxes, "*", "*",
                                               "dovecot.index*")))
        shutil.rmtree(mailboxes)
        self.d.start()
        self.assertEqual(len(self.pop3_subjects("u")), 3)
        res = self.sweep("-u", "u", faketime="+2d")
        self.assertEqual(res["-"]["messages"], 1)
        self.assertEqual(self.pop3_subjects("u"), ["u 0", "u 2"])

    # sqlbox keeps UIDVALIDITY and UIDs in its database
    test_retrieval_record_follows_a_new_uidvalidity = None
