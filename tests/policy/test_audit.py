"""pop3ext_audit: named pop3ext_* events for each retrieval, deletion,
hide, refusal, held expunge and sweep expunge, with typed fields, written
by Dovecot's own event_exporter; on maildir, sdbox, mdbox and sqlbox."""

import json
import re
import time

from policytest import PolicyTestCase

EXPORTER = """
event_exporter log {
  format = json
  format_args = time-rfc3339
  transport = log
}
metric pop3ext_audit {
  exporter = log
  filter = event=pop3ext_*
}
"""


class AuditTest(PolicyTestCase):

    def exported(self, wait_for, count=1, timeout=10):
        """The JSON events the exporter wrote to the log."""
        deadline = time.monotonic() + timeout
        while True:
            events = [json.loads(m) for m in re.findall(
                r"stats: Info: (\{\"event\":\"pop3ext_.*\})", self.d.log())]
            if len([e for e in events if e["event"] == wait_for]) >= count \
                    or time.monotonic() > deadline:
                return events
            time.sleep(0.1)

    def one(self, events, name, user, **fields):
        found = [e for e in events if e["event"] == name and
                 e["fields"]["user"] == user and
                 all(e["fields"].get(k) == v for k, v in fields.items())]
        self.assertEqual(len(found), 1, (name, user, fields, events))
        return found[0]["fields"]

    def test_events_are_exported(self):
        self.start({"hider": {"pop3ext_audit": "yes",
                              "pop3ext_on_dele": "hide"},
                    "deleter": {"pop3ext_audit": "yes"},
                    "refused": {"pop3ext_audit": "yes",
                                "pop3ext_on_dele": "refuse"},
                    "young": {"pop3ext_audit": "yes",
                              "pop3ext_min_age": "7d",
                              "pop3ext_max_age": "30d"},
                    "quiet": {"pop3ext_on_dele": "hide"}},
                   extra_conf=EXPORTER)

        p = self.d.pop3("hider")
        p.retr(1)
        p.dele(2)
        p.quit()
        events = self.exported("pop3ext_hide")
        f = self.one(events, "pop3ext_retrieval", "hider", uid=1)
        self.assertEqual((f["mailbox"], f["decision"], f["policy"]),
                         ("INBOX", "retrieved", "pop3ext_on_retr=keep"))
        # the stored message: what was sent plus the delivery headers
        self.assertGreaterEqual(f["size"], len(self.msgs["hider"][0]))
        self.assertLess(f["size"], len(self.msgs["hider"][0]) + 500)
        self.assertTrue(f["guid"])
        f = self.one(events, "pop3ext_hide", "hider", uid=2)
        self.assertEqual((f["policy"], f["decision"]),
                         ("pop3ext_on_dele=hide", "hide"))

        p = self.d.pop3("deleter")
        p.dele(3)
        p.quit()
        f = self.one(self.exported("pop3ext_deletion"), "pop3ext_deletion",
                     "deleter", uid=3)
        self.assertEqual(f["decision"], "allow")

        p = self.d.pop3("refused")
        self.pop3_error(p, "DELE 1")
        p.quit()
        f = self.one(self.exported("pop3ext_refusal"), "pop3ext_refusal",
                     "refused", uid=1)
        self.assertEqual((f["policy"], f["decision"]),
                         ("pop3ext_on_dele=refuse", "refused"))

        i = self.d.imap("young")
        i.select("INBOX")
        i.store("1", "+FLAGS", "(\\Deleted)")
        i.expunge()
        i.logout()
        f = self.one(self.exported("pop3ext_expunge_held"),
                     "pop3ext_expunge_held", "young", uid=1)
        self.assertEqual((f["policy"], f["decision"]),
                         ("min_age", "held:min_age"))

        self.sweep("-u", "young", faketime="+31d")
        events = self.exported("pop3ext_sweep_expunge", count=3)
        swept = sorted(e["fields"]["uid"] for e in events
                       if e["event"] == "pop3ext_sweep_expunge")
        self.assertEqual(swept, [1, 2, 3])

        # no events for a user without pop3ext_audit
        p = self.d.pop3("quiet")
        p.retr(1)
        p.dele(1)
        p.quit()
        # the session's own log lines come before its Disconnected line
        log = self.d.wait_log("pop3(quiet)")
        deadline = time.monotonic() + 10
        while not re.search(r"pop3\(quiet\).*Disconnected", log) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
            log = self.d.log()
        self.assertRegex(log, r"pop3\(quiet\).*Disconnected")
        self.assertNotRegex(log, r"pop3\(quiet\).*pop3ext_")
        # and an audited session after it: its event is exported, none
        # of quiet's
        p = self.d.pop3("deleter")
        p.retr(1)
        p.quit()
        events = self.exported("pop3ext_retrieval", count=2)
        self.one(events, "pop3ext_retrieval", "deleter", uid=1)
        self.assertFalse([e for e in events
                          if e["fields"].get("user") == "quiet"])

    def test_audit_lines_in_the_log(self):
        self.start({"u": {"pop3ext_audit": "yes"}})
        p = self.d.pop3("u")
        p.retr(2)
        p.quit()
        self.d.wait_log("pop3ext_retrieval")
        self.assertRegex(self.d.log(), r"pop3\(u\).*Info: pop3ext: "
                         r"pop3ext_retrieval: mailbox=INBOX uid=2 guid=\S+ "
                         r"size=\d+ policy=pop3ext_on_retr=keep "
                         r"decision=retrieved")
        self.assertNotIn("Panic", self.d.log())


class AuditSdboxTest(AuditTest):
    storage = "sdbox"


class AuditMdboxTest(AuditTest):
    storage = "mdbox"


class AuditSqlboxTest(AuditTest):
    storage = "sqlbox"
