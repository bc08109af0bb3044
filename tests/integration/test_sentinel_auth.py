"""Sentinels that require a password (issue 9 follow-up, DESIGN §3.2, §3.7).

A production Sentinel set has `requirepass` in each sentinel.conf; hookq
must send `AUTH [sentinel_user] sentinel_password` to every Sentinel before
asking where the master is. Real Sentinels (clusterlib.SentinelSet with a
password) and a real `hookq run` on free loopback ports:

- the right password: the master is found, a webhook is stored and
  delivered, and the password is nowhere in the log;
- a wrong one: the log names the Sentinel and says it refused the password
  (Redis's own reply), never the password; /healthz is not
  200 and its intake answers 503; it keeps asking, and once the Sentinels
  take that password it goes on without a restart. `hookq run`'s worker
  waits meanwhile (as for any Redis it cannot reach at start), saying why,
  and starts by itself then;
- none, for Sentinels that want one: the log says so and names
  `sentinel_password`.
The data nodes have no password here: the Sentinels' password is theirs
alone (the url's user:password@ is for the data nodes).
"""
import http.client
import json
import os
import tempfile
import time
import urllib.error
import urllib.request

from clusterlib import SentinelSet
from harness import HOOKQ, Suite, free_port, processes, wait_until
from proclib import Double

suite = Suite("sentinel_auth")
PASSWORD = "s3ntinel-Pw-7731"
WRONG = "wr0ng-Pw-5150"


class Hookq:
    """`hookq run` (or `command`) behind the Sentinels of `ss`, delivering
    to `sink`."""

    def __init__(self, start, ss, sink, extra="", command="run"):
        self.dir = tempfile.mkdtemp(prefix="hq-sentauth-")
        self.port, self.admin = free_port(), free_port()
        self.cfg = os.path.join(self.dir, "hookq.ini")
        with open(self.cfg, "w") as f:
            f.write("[redis]\nsentinels = %s\nsentinel_master = %s\n%s"
                    "[intake]\nlisten = 127.0.0.1:%d\n"
                    "[admin]\nlisten = 127.0.0.1:%d\n"
                    "[worker]\nthreads = 1\n"
                    "[event post-create]\ndeliver = %s/hooks\n"
                    % (ss.addrs, ss.name, extra, self.port, self.admin, sink.url))
        self.log = os.path.join(self.dir, "stderr.log")
        self.errf = open(self.log, "w")
        self.proc = start([HOOKQ, command, "-c", self.cfg], cwd=self.dir, stderr=self.errf)

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def alive(self):
        if not self.proc.alive():
            raise AssertionError("hookq exited: " + self.stderr())
        return True

    def healthz(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.admin,
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)

    def post(self, customer, n):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/webhook",
                         body=json.dumps({"code": "post-create",
                                          "data": {"customer_id": customer, "n": n}}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read().decode()
        except OSError as e:
            return 0, str(e)
        finally:
            conn.close()


def delivered(sink, customer):
    return [r["body"]["data"]["n"] for r in sink.records()
            if r["body"]["customer"] == customer]


@suite.test
def the_right_sentinel_password_finds_the_master_and_a_webhook_is_delivered():
    with SentinelSet(replicas=1, password=PASSWORD) as ss, processes() as start:
        sink = Double(start, "sink")
        hq = Hookq(start, ss, sink, "sentinel_password = %s\n" % PASSWORD)
        wait_until(lambda: hq.alive() and "hookq ready" in hq.stderr(), 15, what="hookq ready")
        wait_until(lambda: hq.healthz()[0] == 200, 10, interval=0.1, what="/healthz 200")
        st, body = hq.post("acme", 1)
        assert st == 202, (st, body)
        wait_until(lambda: delivered(sink, "acme") == [1], 15, interval=0.1,
                   what="the webhook delivered")
        # Stored on the master the Sentinels name.
        assert ss.master().client().dbsize() > 0
        log = hq.stderr()
        assert "sentinel_auth=password" in log, log
        assert PASSWORD not in log, log


@suite.test
def a_wrong_sentinel_password_is_logged_as_refused_and_healthz_fails_until_it_is_right():
    with SentinelSet(sentinels=2, replicas=0, password=PASSWORD) as ss, processes() as start:
        sink = Double(start, "sink")
        first = ss.sentinels[0].addr
        want = "sentinel %s refused the password of [redis] sentinel_password: WRONGPASS" % first

        # hookq run: the intake answers 503 and the worker waits for Redis;
        # both say why, and neither exits.
        hq = Hookq(start, ss, sink, "sentinel_password = %s\n" % WRONG)
        wait_until(lambda: hq.alive() and want in hq.stderr(), 15, interval=0.1,
                   what="the refusal in the log")
        wait_until(lambda: "cannot start the worker yet (trying again every second): " + want
                   in hq.stderr(), 10, interval=0.1, what="the worker waiting, and why")
        st, body = hq.healthz()
        assert st != 200, (st, body)
        assert "refused the password" in body, body
        st, body = hq.post("acme", 1)
        assert st == 503, (st, body)
        time.sleep(1)
        hq.alive()
        log = hq.stderr()
        assert WRONG not in log and PASSWORD not in log, log

        # The Sentinels now take that password: hookq goes on by itself.
        for s in ss.sentinels:
            s.client().execute_command("ACL", "SETUSER", "default", "resetpass", ">" + WRONG)
            s.password = WRONG
        wait_until(lambda: hq.alive() and hq.healthz()[0] == 200, 20, interval=0.2,
                   what="/healthz 200 once the password is right")
        wait_until(lambda: hq.post("acme", 1)[0] == 202, 10, interval=0.2, what="202")
        assert ss.master().client().dbsize() > 0
        # The worker started by itself, and delivers.
        wait_until(lambda: delivered(sink, "acme") == [1], 15, interval=0.1,
                   what="the webhook delivered")
        assert "worker started" in hq.stderr()
        assert WRONG not in hq.stderr()


@suite.test
def no_password_for_sentinels_that_want_one_names_sentinel_password():
    with SentinelSet(sentinels=1, replicas=0, password=PASSWORD) as ss, processes() as start:
        sink = Double(start, "sink")
        hq = Hookq(start, ss, sink, command="serve")
        want = ("sentinel %s requires a password (NOAUTH Authentication required.): "
                "set [redis] sentinel_password" % ss.sentinels[0].addr)
        wait_until(lambda: hq.alive() and want in hq.stderr(), 15, interval=0.1,
                   what="NOAUTH in the log")
        st, body = hq.healthz()
        assert st != 200 and "sentinel_password" in body, (st, body)
        assert "sentinel_auth=none" in hq.stderr(), hq.stderr()


if __name__ == "__main__":
    suite.run()
