"""A hold or min_age follows the mailbox owner's policy, whoever expunges:
another user through a shared namespace (acl plugin, shared/%%u), or
doveadm as that user. Where no owner's policy can be known (a public
namespace), nothing is expunged."""

from policytest import PolicyTestCase, STORAGES

PENDING = "$POP3ExpungePending"


def shared_conf(storage):
    location = STORAGES[storage].replace("~", "%%h")
    return """
namespace inbox {
  inbox = yes
  prefix =
  separator = /
}
namespace shared {
  type = shared
  separator = /
  prefix = shared/%%u/
  location = LOCATION:INDEXPVT=~/shared-idx/%%u
  subscriptions = no
  list = children
}
protocol imap {
  mail_plugins = $mail_plugins imap_acl
}
plugin {
  acl = vfile
}
""".replace("LOCATION", location)


PUBLIC_CONF = """
namespace inbox {
  inbox = yes
  prefix =
  separator = /
}
namespace public {
  type = public
  separator = /
  prefix = Public/
  location = maildir:PUBLIC_DIR
  subscriptions = no
  list = yes
}
"""


class SharedTest(PolicyTestCase):

    def start_shared(self, owner_fields, other_fields=None, messages=3):
        self.start({"alice": owner_fields, "bob": other_fields or {}},
                   messages=messages,
                   mail_plugins=("acl",) + (("sqlbox",) if
                                            self.storage == "sqlbox"
                                            else ()),
                   extra_conf=shared_conf(self.storage))
        i = self.d.imap("alice")
        typ, data = i.setacl("INBOX", "bob", "lrwstie")
        self.assertEqual(typ, "OK", data)
        i.logout()

    def bob_expunges_all(self):
        i = self.d.imap("bob")
        typ, data = i.select('"shared/alice/INBOX"')
        self.assertEqual(typ, "OK", data)
        i.store("1:*", "+FLAGS", "(\\Deleted)")
        typ, data = i.expunge()
        self.assertEqual(typ, "OK")
        i.logout()
        return data

    def test_owners_legal_hold_holds_what_another_user_expunges(self):
        self.start_shared({"pop3ext_legal_hold": "yes"})
        # no EXPUNGE reported: nothing went
        self.assertEqual(self.bob_expunges_all(), [None])
        # doveadm as bob, through the shared namespace: held too
        self.d.doveadm("expunge", "-u", "bob", "mailbox",
                       "shared/alice/INBOX", "all")
        inbox = self.imap_messages("alice")
        self.assertEqual(len(inbox), 3)
        self.assertTrue(all(PENDING in f for f in inbox.values()))
        # the held expunges are in the owner's log: once the hold is
        # lifted, the owner's sweep completes them
        self.d.set_user_fields("alice", pop3ext_legal_hold="no")
        res = self.sweep("-u", "alice")["-"]
        self.assertEqual(res["messages"], 3)
        self.assertEqual(self.imap_messages("alice"), {})

    def test_owners_min_age_applies_whatever_the_other_users_policy(self):
        self.start_shared({"pop3ext_min_age": "7d"},
                          {"pop3ext_min_age": "0"})
        self.assertEqual(self.bob_expunges_all(), [None])
        self.assertEqual(len(self.imap_messages("alice")), 3)
        res = self.sweep("-u", "alice", faketime="+8d")["-"]
        self.assertEqual(res["messages"], 3)
        self.assertEqual(self.imap_messages("alice"), {})

    def test_a_free_owner_is_free(self):
        """Bob's own legal hold does not hold alice's mail."""
        self.start_shared({"pop3ext_legal_hold": "no"},
                          {"pop3ext_legal_hold": "yes"})
        self.assertEqual(self.bob_expunges_all(), [b"3", b"2", b"1"])
        self.assertEqual(self.imap_messages("alice"), {})

    def test_owners_policy_unknown_expunges_nothing(self):
        """Alice's userdb has no pop3ext_legal_hold; bob's has: Dovecot
        gives alice's shared mailboxes bob's settings, so her value is
        unknown, and nothing is expunged (fail closed)."""
        self.start_shared({}, {"pop3ext_legal_hold": "no"})
        self.assertEqual(self.bob_expunges_all(), [None])
        self.assertEqual(len(self.imap_messages("alice")), 3)
        self.assertRegex(self.d.log(), r"imap\(bob\).*pop3ext_legal_hold "
                         r"is not in their userdb")


class SharedSdboxTest(SharedTest):
    storage = "sdbox"


class PublicTest(PolicyTestCase):

    def test_public_namespace_expunges_nothing(self):
        """A public mailbox has no owner whose policy could apply: its
        expunges are refused (fail closed)."""
        import os
        d = self.start({"bob": {}}, messages=0,
                       extra_conf=PUBLIC_CONF.replace(
                           "PUBLIC_DIR", "%s/public" % self.workdir))
        os.makedirs("%s/public" % self.workdir, exist_ok=True)
        os.chown("%s/public" % self.workdir, d.uid, d.gid)
        i = d.imap("bob")
        self.assertEqual(i.create("Public/box")[0], "OK")
        for n in range(2):
            typ, data = i.append("Public/box", None, None,
                                 b"Subject: p%d\r\n\r\nbody\r\n" % n)
            self.assertEqual(typ, "OK", data)
        i.select("Public/box")
        i.store("1:*", "+FLAGS", "(\\Deleted)")
        self.assertEqual(i.expunge(), ("OK", [None]))
        i.logout()
        self.assertEqual(len(self.imap_messages("bob", "Public/box")), 2)
        self.assertIn("has no owner whose policy pop3ext could apply",
                      d.log())
