"""Two real slapd instances with the same users: the driver fails over when
the first dies or hangs, keeps logging users in through the second, and
goes back to the first once it answers again after ldap_retry_interval."""

import threading
import time

from authtest import (AuthTestCase, ldap_conf, pop3_login, assert_clean_log)

OK = b"+OK Logged in."
USERS = {"alice": {"password": "alice-pw"}, "bob": {"password": "bob-pw"}}


def binds(log, user):
    return log.count('BIND dn="uid=%s,ou=people,dc=example,dc=test"' % user)


class FailoverTest(AuthTestCase):

    def setup_pair(self, **conf):
        a = self.slapd(name="slapd-a", users=USERS)
        b = self.slapd(name="slapd-b", users=USERS)
        keys = {"ldap_retry_interval": "2s", "ldap_timeout": "1s",
                "ldap_connect_timeout": "1s"}
        keys.update(conf)
        d = self.auth_dovecot(self.write_conf(ldap_conf([a, b], **keys)))
        return a, b, d

    def test_kill_primary_mid_run_and_return(self):
        a, b, d = self.setup_pair()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertGreater(binds(a.log(), "alice"), 0)
        self.assertEqual(binds(b.log(), "alice"), 0)

        # logins run continuously from two clients while the primary dies
        results = []
        stop = threading.Event()

        def client(user, pw):
            while not stop.is_set():
                results.append(pop3_login(d, user, pw))

        threads = [threading.Thread(target=client, args=a_)
                   for a_ in (("alice", "alice-pw"), ("bob", "bob-pw"))]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            before_kill = len(results)
            a.kill()
            deadline = time.monotonic() + 10
            while binds(b.log(), "alice") + binds(b.log(), "bob") < 10 and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertGreater(before_kill, 0)
        self.assertGreater(len(results), before_kill)
        self.assertEqual([r for r in results if r != OK], [])
        self.assertGreaterEqual(binds(b.log(), "alice") +
                                binds(b.log(), "bob"), 10)
        log = d.log()
        self.assertIn("ldap: %s unavailable" % a.uri, log)
        self.assertIn("ldap: failed over to %s" % b.uri, log)

        # the primary comes back (same port, same data); once the retry
        # interval has passed, logins go to it again
        a.start()
        a_log = a.log_size()
        time.sleep(2.2)
        for _ in range(4):
            self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertGreater(binds(a.log_since(a_log), "alice"), 0)
        d.wait_log("ldap: back to %s (preferred over %s)" % (a.uri, b.uri))
        # and it stays there
        b_log = b.log_size()
        for _ in range(4):
            self.assertEqual(pop3_login(d, "bob", "bob-pw"), OK)
        self.assertEqual(binds(b.log_since(b_log), "bob"), 0)
        assert_clean_log(self, d)

    def test_hung_primary_fails_over_within_the_timeout(self):
        a, b, d = self.setup_pair()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        a.pause()
        try:
            start = time.monotonic()
            self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
            self.assertGreater(binds(b.log(), "alice"), 0)
            self.assertIn("no answer to", d.log())
            # marked down: the next logins don't wait for it
            self.assertEqual(pop3_login(d, "bob", "bob-pw"), OK)
            self.assertLess(time.monotonic() - start, 30)
        finally:
            a.resume()
        time.sleep(2.2)
        a_log = a.log_size()
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        self.assertGreater(binds(a.log_since(a_log), "alice"), 0)

    def test_all_down_is_tempfail_and_first_back_serves(self):
        a, b, d = self.setup_pair(ldap_retry_interval="1s")
        self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        a.kill()
        b.kill()
        self.assert_tempfail(pop3_login(d, "alice", "alice-pw"))
        self.assertIn("no LDAP server answered", d.log())
        # both are marked down: logins fail at once, without trying them
        start = time.monotonic()
        self.assert_tempfail(pop3_login(d, "alice", "wrong"))
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertIn("every LDAP server is marked down", d.log())
        # once its interval has passed, the one that is back serves
        b.start()
        deadline = time.monotonic() + 10
        while pop3_login(d, "alice", "alice-pw") != OK:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)
        self.assertGreater(binds(b.log(), "alice"), 0)


class ConnectionReuseTest(AuthTestCase):

    def test_connections_are_reused_and_reopened_when_idle_closed(self):
        s = self.slapd(users=USERS, idle_timeout=1)
        d = self.auth_dovecot(
            self.write_conf(ldap_conf([s], ldap_retry_interval="1min")),
            extra_conf="service auth-worker {\n  process_limit = 1\n}\n")
        # (the harness's check that slapd listens is a connection too)
        accepts = s.log().count("ACCEPT from")
        closes = s.log().count(" closed")
        for _ in range(6):
            self.assertEqual(pop3_login(d, "alice", "alice-pw"), OK)
        # one auth-worker: one search and one bind connection, reused
        self.assertEqual(s.log().count("ACCEPT from"), accepts + 2)
        # slapd closes them while idle; the next login reconnects to the
        # same server, which is not taken for down
        deadline = time.monotonic() + 10
        while s.log().count(" closed") < closes + 2 and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(s.log().count(" closed"), closes + 2)
        self.assertEqual(pop3_login(d, "bob", "bob-pw"), OK)
        self.assertEqual(s.log().count("ACCEPT from"), accepts + 4)
        self.assertNotIn("unavailable", d.log())
        assert_clean_log(self, d)
