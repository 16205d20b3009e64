"""The state keywords ($POP3Hidden, $POP3ExpungePending, $POP3Retrieved)
are pop3ext's alone: IMAP STORE and APPEND that would set or clear one are
refused with a NO, STORE FLAGS (...) keeps them, a COPY does not carry them
over; and the sweep never trusts a keyword alone (a pending keyword without
its held record exempts nothing)."""

from policytest import PolicyTestCase
from pop3ext_harness import mail

HIDDEN = "$POP3Hidden"
PENDING = "$POP3ExpungePending"
RETRIEVED = "$POP3Retrieved"
STATE = (HIDDEN, PENDING, RETRIEVED)


class KeywordsTest(PolicyTestCase):

    def assert_refused(self, res, keyword):
        typ, data = res
        self.assertEqual(typ, "NO", data)
        self.assertIn(b"[NOPERM]", data[-1])
        self.assertIn(keyword.encode(), data[-1])

    def test_client_cannot_set_state_keywords(self):
        self.start({"u": {"pop3ext_max_age": "1d"}})
        i = self.d.imap("u")
        i.select("INBOX")
        for kw in STATE:
            with self.subTest(keyword=kw):
                self.assert_refused(i.store("1", "+FLAGS", "(%s)" % kw), kw)
                self.assert_refused(i.uid("STORE", "1:*", "+FLAGS",
                                          "(\\Seen %s)" % kw), kw)
                self.assert_refused(i.store("1", "FLAGS", "(%s)" % kw), kw)
                self.assert_refused(i.append(
                    "INBOX", "(%s)" % kw, None,
                    mail.message(9, subject="appended")), kw)
        # other flags and keywords still work
        typ, data = i.store("1", "+FLAGS", "(\\Flagged $Label1)")
        self.assertEqual(typ, "OK", data)
        i.logout()
        msgs = self.imap_messages("u")
        self.assertEqual(len(msgs), 3)
        self.assertEqual(msgs["u 0"], {"\\Flagged", "$Label1"})
        self.assertFalse(any(set(STATE) & f for f in msgs.values()))

    def test_client_cannot_clear_state_keywords(self):
        self.start({"u": {"pop3ext_on_dele": "hide",
                          "pop3ext_min_age": "7d"}})
        p = self.d.pop3("u")
        p.dele(1)
        p.quit()
        i = self.d.imap("u")
        i.select("INBOX")
        i.store("2", "+FLAGS", "(\\Deleted)")
        self.assertEqual(i.expunge()[0], "OK")
        self.assert_refused(i.store("1", "-FLAGS", "(%s)" % HIDDEN), HIDDEN)
        self.assert_refused(i.store("2", "-FLAGS", "(%s)" % PENDING),
                            PENDING)
        # FLAGS (...) replaces the client's flags; the state stays
        typ, data = i.store("1:2", "FLAGS", "(\\Flagged \\Deleted)")
        self.assertEqual(typ, "OK", data)
        # a copy is a new message: without the state of its original
        i.create("Other")
        typ, data = i.copy("1:2", "Other")
        self.assertEqual(typ, "OK", data)
        i.logout()
        msgs = self.imap_messages("u")
        self.assertEqual(msgs["u 0"], {"\\Flagged", "\\Deleted", HIDDEN})
        self.assertEqual(msgs["u 1"], {"\\Flagged", "\\Deleted", PENDING})
        other = self.imap_messages("u", "Other")
        self.assertEqual(other, {"u 0": {"\\Flagged", "\\Deleted"},
                                 "u 1": {"\\Flagged", "\\Deleted"}})
        # hidden and pending stay out of POP3
        self.assertEqual(self.pop3_subjects("u"), ["u 2"])

    def test_pending_keyword_without_record_exempts_nothing_from_max_age(self):
        """The admin may set the keyword (doveadm), but without a held
        record it is no held expunge: max_age still applies."""
        self.start({"u": {"pop3ext_max_age": "1d"}})
        self.d.doveadm("flags", "add", "-u", "u", PENDING, "mailbox",
                       "INBOX", "subject", "u 0")
        self.assertIn(PENDING, self.imap_messages("u")["u 0"])
        res = self.sweep("-u", "u", faketime="+2d")["-"]
        self.assertEqual(res["messages"], 3)
        self.assertEqual(self.imap_messages("u"), {})

    def test_retrieved_keyword_cannot_exempt_from_expire_after_retr(self):
        self.start({"u": {"pop3ext_expire_after_retr": "1d"}})
        i = self.d.imap("u")
        i.select("INBOX")
        self.assert_refused(i.store("1:*", "+FLAGS", "(%s)" % RETRIEVED),
                            RETRIEVED)
        i.logout()
        p = self.d.pop3("u")
        for n in range(1, 4):
            p.retr(n)
        p.quit()
        res = self.sweep("-u", "u", faketime="+2d")["-"]
        self.assertEqual(res["messages"], 3)
        self.assertEqual(self.imap_messages("u"), {})


class KeywordsSdboxTest(KeywordsTest):
    storage = "sdbox"


class KeywordsSqlboxTest(KeywordsTest):
    storage = "sqlbox"
