"""ldap_fields beyond attribute=userdb field (M4): passdb fields from
directory attributes (attribute=passdb:field, e.g. a proxy's host), and
default or composed values (=field=template with %{ldap:attribute})."""

from authtest import AuthTestCase, ldap_conf, auth_test, doveadm_user

FIELDS = ("pop3extOnDele=pop3ext_on_dele "
          "street=passdb:host =passdb:proxy=y "
          "=pop3ext_max_age=30d "
          "=quota_rule=*:storage=%{ldap:roomNumber}M "
          "=pop3ext_on_dele=keep")


class FieldsTest(AuthTestCase):

    def test_passdb_fields_and_composed_values(self):
        s = self.slapd(users={
            "alice": {"password": "alice-pw", "attrs": {
                "pop3extOnDele": "hide", "street": "10.0.0.7",
                "roomNumber": "512"}},
            "bob": {"password": "bob-pw"}})
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s], ldap_fields=FIELDS)))
        code, out = auth_test(d, "alice", "alice-pw")
        self.assertEqual(code, 0, out)
        # passdb extra fields: a proxy to the user's host
        self.assertIn("host=10.0.0.7", out)
        self.assertIn("\n  proxy\n", out)
        fields = doveadm_user(d, "alice")
        # an attribute wins over a default for the same field
        self.assertEqual(fields["pop3ext_on_dele"], "hide")
        self.assertEqual(fields["pop3ext_max_age"], "30d")
        self.assertEqual(fields["quota_rule"], "*:storage=512M")
        # bob has none of the attributes: the defaults, and no composed
        # value without its attribute
        u = doveadm_user(d, "bob")
        self.assertEqual(u["pop3ext_on_dele"], "keep")
        self.assertEqual(u["pop3ext_max_age"], "30d")
        self.assertNotIn("quota_rule", u)

    def test_passdb_fields_that_would_rename_are_refused(self):
        path = self.workdir + "/pop3ext-auth.conf"
        self.write_conf(ldap_conf(["ldap://127.0.0.1:1"],
                                  ldap_fields="uid=passdb:user"))
        d = self.auth_dovecot(path)
        d.wait_log("ldap_fields: passdb:user is not a passdb field "
                   "ldap_fields may set")
