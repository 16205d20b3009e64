"""Broken LDAP servers (tests/auth/badldap.py) first in ldap_uris, a real
slapd second: each costs a login at most about ldap_connect_timeout +
ldap_timeout before the next server is tried, and none stalls Dovecot's
auth process: a login another passdb (passwd-file) answers keeps being
answered while the LDAP login waits. Once every server is down, logins
fail at once, without a new connection per login, and reconnects back
off."""

import threading
import time

from authtest import (AuthTestCase, AUTH_FAILED, ldap_conf, pop3_login,
                      assert_clean_log)
from badldap import (Tarpit, BindThenTarpit, FakeLdap, PagedLister, Closer,
                     FullQueue)
import os

from pop3ext_harness.pam import PamWrapper
from pop3ext_harness.tlsca import CA

OK = b"+OK Logged in."
USERS = {"alice": {"password": "alice-pw"}}
CONNECT_TIMEOUT = 3
TIMEOUT = 2
# what one bad server may cost a login, with room for a slow machine
BOUND = CONNECT_TIMEOUT + TIMEOUT + 2.5
# what another passdb's login may take meanwhile
OTHER_BOUND = 2.0


class OutageTest(AuthTestCase):

    def bad(self, server):
        self.addCleanup(server.stop)
        return server

    def setup(self, bad_uri, slapd=None, service_account=True, **conf):
        s = slapd or self.slapd(users=USERS)
        keys = {"ldap_connect_timeout": "%ds" % CONNECT_TIMEOUT,
                "ldap_timeout": "%ds" % TIMEOUT,
                "ldap_retry_interval": "1min"}
        if not service_account:
            keys.update(ldap_bind_dn=None, ldap_bind_password=None)
        keys.update(conf)
        uris = [bad_uri] + ([s] if s is not False else [])
        d = self.auth_dovecot(
            self.write_conf(ldap_conf(uris, **keys)), passwd_file_first=True,
            users={"carol": {"password": "carol-pw"}})
        return s, d

    def assert_other_logins_answered(self, d, bad, user="alice",
                                     password="alice-pw", expect=OK,
                                     accepted=True):
        """Logs user in through LDAP while carol (passwd-file) logs in
        again and again; returns the LDAP login's time."""
        result = {}

        def ldap_login():
            t = time.monotonic()
            result["answer"] = pop3_login(d, user, password)
            result["time"] = time.monotonic() - t

        t = threading.Thread(target=ldap_login)
        t.start()
        try:
            if accepted:
                # the LDAP login is at the bad server now
                self.assertTrue(bad.wait_accept(bad.accepts + 1))
            others = []
            while t.is_alive():
                start = time.monotonic()
                self.assertEqual(pop3_login(d, "carol", "carol-pw", timeout=10),
                                 OK)
                others.append(time.monotonic() - start)
                if len(others) > 200:
                    break
        finally:
            t.join()
        self.assertEqual(result["answer"][:len(expect)], expect)
        # carol got in while the LDAP login waited, each time quickly
        self.assertGreater(len(others), 0)
        self.assertLess(max(others), OTHER_BOUND, others)
        self.assertLess(result["time"], BOUND)
        return result["time"]

    def test_tarpit_during_service_bind(self):
        bad = self.bad(Tarpit())
        s, d = self.setup(bad.uri)
        self.assert_other_logins_answered(d, bad)
        # marked down: the next login does not wait for it
        start = time.monotonic()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertIn("ldap: %s unavailable" % bad.uri, d.log())
        assert_clean_log(self, d)

    def test_tarpit_during_search(self):
        bad = self.bad(BindThenTarpit())
        s, d = self.setup(bad.uri)
        self.assert_other_logins_answered(d, bad)
        assert_clean_log(self, d)

    def tls_slapd(self):
        ca = CA(os.path.join(self.workdir, "ca"), "good")
        return ca, self.slapd(users=USERS,
                              tls=ca.server_cert("127.0.0.1"))

    def test_tarpit_during_ldaps_handshake(self):
        bad = self.bad(Tarpit())
        ca, s = self.tls_slapd()
        _, d = self.setup(bad.ldaps_uri, slapd=s.ldaps_uri,
                          ldap_tls_ca_file=ca.cert)
        self.assert_other_logins_answered(d, bad)
        assert_clean_log(self, d)

    def test_tarpit_during_starttls(self):
        bad = self.bad(Tarpit())
        ca, s = self.tls_slapd()
        _, d = self.setup(bad.uri, slapd=s, ldap_starttls="yes",
                          ldap_tls_ca_file=ca.cert)
        self.assert_other_logins_answered(d, bad)
        assert_clean_log(self, d)

    def test_closer(self):
        bad = self.bad(Closer())
        s, d = self.setup(bad.uri)
        # a server that closes at once leaves no window in which other
        # logins could wait (the login fails over at once): it must
        # simply be answered in time, and so must carol's
        start = time.monotonic()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertLess(time.monotonic() - start, BOUND)
        self.assertGreater(bad.accepts, 0)
        self.assertEqual(pop3_login(d, "carol", "carol-pw"), OK)
        for _ in range(3):
            self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        # no reconnect loop: a few connections, not thousands
        self.assertLess(bad.accepts, 10)

    def test_full_accept_queue(self):
        bad = self.bad(FullQueue())
        s, d = self.setup(bad.uri)
        self.assert_other_logins_answered(d, bad, accepted=False)
        assert_clean_log(self, d)


class AllDownTest(AuthTestCase):

    def test_every_server_down_fails_at_once(self):
        bad = self.bad_tarpit()
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [bad.uri], ldap_connect_timeout="%ds" % CONNECT_TIMEOUT,
            ldap_timeout="%ds" % TIMEOUT, ldap_retry_interval="1min")),
            passwd_file_first=True, users={"carol": {"password": "c-pw"}})
        start = time.monotonic()
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertLess(time.monotonic() - start, BOUND)
        accepts = bad.accepts
        # the only server is down: each login fails at once, none
        # connects again
        for _ in range(5):
            start = time.monotonic()
            self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
            self.assertLess(time.monotonic() - start, 1.0)
        self.assertEqual(bad.accepts, accepts)
        self.assertEqual(pop3_login(d, "carol", "c-pw"), OK)

    def bad_tarpit(self):
        bad = Tarpit()
        self.addCleanup(bad.stop)
        return bad

    def test_reconnects_back_off(self):
        bad = Closer()
        self.addCleanup(bad.stop)
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [bad.uri], ldap_retry_interval="1s")))
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        d.wait_log("not used for 1000 ms")
        time.sleep(1.1)
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        # failed again right after its interval: twice as long now
        d.wait_log("not used for 2000 ms")
        self.assertLess(bad.accepts, 6)

    def test_first_back_serves_after_its_interval(self):
        s = self.slapd(users=USERS)
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [s], ldap_retry_interval="1s")))
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        s.kill()
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        s.start()
        # marked down for its interval; then it serves again
        deadline = time.monotonic() + 10
        while pop3_login(d, "alice", "alice-pw") != OK:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)
        assert_clean_log(self, d)


class WorkerOutageTest(AuthTestCase):
    """The same code waits in an auth-worker (PAM, then the directory's
    attributes): a hung directory never leaves the worker stuck."""

    def test_tarpit_service_bind_in_the_worker(self):
        bad = Tarpit()
        self.addCleanup(bad.stop)
        pam = PamWrapper(self.workdir, services=("dovecot",))
        pam.add_user("alice", "pam-pw")
        conf = ldap_conf([bad.uri], password_check="pam", attributes="ldap",
                         ldap_connect_timeout="%ds" % CONNECT_TIMEOUT,
                         ldap_timeout="%ds" % TIMEOUT,
                         ldap_retry_interval="1min")
        d = self.auth_dovecot(self.write_conf(conf), extra_conf=(
            pam.dovecot_conf() +
            "service auth-worker {\n  process_limit = 1\n}\n"))
        start = time.monotonic()
        self.assert_tempfail(pop3_login(d, "alice", "pam-pw"))
        self.assertLess(time.monotonic() - start, BOUND)
        # the only worker answers again at once: down, so no waiting
        start = time.monotonic()
        self.assert_tempfail(pop3_login(d, "alice", "pam-pw"))
        self.assertEqual(pop3_login(d, "alice", "wrong"), AUTH_FAILED)
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertNotIn("Lookup timed out", d.log())
        assert_clean_log(self, d)


class SlowSearchTest(AuthTestCase):
    """One slow search is that request's problem, not the server's: it
    goes on to the next server, the server stays in use. Errors another
    server may not have (other(80), busy) fail over."""

    def setup(self, rules):
        bad = FakeLdap(rules)
        self.addCleanup(bad.stop)
        s = self.slapd(users={"slow": {"password": "slow-pw"},
                              "alice": {"password": "alice-pw"}})
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [bad.uri, s], ldap_timeout="%ds" % TIMEOUT,
            ldap_retry_interval="1min")))
        return bad, s, d

    def test_slow_search_does_not_take_the_server_down(self):
        bad, s, d = self.setup({b"slow": None})
        result = {}

        def slow_login():
            result["answer"] = pop3_login(d, "slow", "slow-pw")

        t = threading.Thread(target=slow_login)
        t.start()
        try:
            # the slow search is at the server before any other is sent:
            # the server then answers others after it, which is what
            # tells the driver that only this search is slow
            deadline = time.monotonic() + 10
            while bad.searches < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertGreaterEqual(bad.searches, 1,
                                    "the slow search never reached the "
                                    "server")
            # meanwhile the server answers other searches ("unknown")
            while t.is_alive():
                self.assertEqual(pop3_login(d, "ghost", "x"), AUTH_FAILED)
        finally:
            t.join()
        # the slow one went on to slapd
        self.assertEqual(result["answer"], OK)
        searches = bad.searches
        self.assertEqual(pop3_login(d, "ghost", "x"), AUTH_FAILED)
        self.assertGreater(bad.searches, searches)
        self.assertNotIn("%s unavailable" % bad.uri, d.log())

    def test_server_errors_fail_over(self):
        # other(80): e.g. a broken backend database; busy(51)
        bad, s, d = self.setup({b"alice": 80, b"slow": 51})
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertEqual(pop3_login(d, "slow", "slow-pw"), OK)
        self.assertIn("%s unavailable" % bad.uri, d.log())


class StreamingListTest(AuthTestCase):

    def test_listing_streams_page_by_page(self):
        # the first page reaches doveadm before the next is asked for; a
        # directory that then hangs cuts the listing short - an error,
        # after the users already listed (W5: all pages were buffered
        # first, against Dovecot's 60 s limit for the first reply)
        names = ["user%02d" % i for i in range(5)]
        bad = PagedLister(names)
        self.addCleanup(bad.stop)
        d = self.auth_dovecot(self.write_conf(ldap_conf(
            [bad.uri], ldap_timeout="%ds" % TIMEOUT)))
        r = d.doveadm("user", "*", check=False)
        self.assertEqual(r.stdout.split(), names)
        self.assertNotEqual(r.returncode, 0)
