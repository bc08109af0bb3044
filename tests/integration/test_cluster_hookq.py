"""hookq on a real Redis Cluster (DESIGN §3.7): `hookq run` with a url of
several seeds takes webhooks over HTTP and delivers them (to the sink
double), per key in order, with every shard's keys on the master of its
slot; `/healthz` names a shard whose master does not answer while the
others keep taking webhooks; the admin commands work on the cluster.
"""
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time

from clusterlib import RedisCluster
from harness import HOOKQ, Suite, free_port, processes, wait_until
from proclib import Double

suite = Suite("cluster_hookq")
SHARDS = 12


class Hookq:
    """`hookq run` on the cluster: intake, workers, admin."""

    def __init__(self, start, cluster, sink, extra="", seeds=2, command="run", events=""):
        self.dir = tempfile.mkdtemp(prefix="hq-clrun-")
        self.port, self.admin = free_port(), free_port()
        self.cfg = os.path.join(self.dir, "hookq.ini")
        with open(self.cfg, "w") as f:
            f.write("[redis]\nurl = %s\nshards = %d\n%s\n"
                    "[intake]\nlisten = 127.0.0.1:%d\n"
                    "[admin]\nlisten = 127.0.0.1:%d\n"
                    "[worker]\nconcurrency = 32\nthreads = 2\nlease = 2s\n"
                    "[event post-create]\ndeliver = %s/hooks\n%s"
                    % (cluster.url(seeds), SHARDS, extra, self.port, self.admin, sink.url,
                       events))
        self.log = os.path.join(self.dir, "stderr.log")
        self.errf = open(self.log, "w")
        self.proc = start([HOOKQ, command, "-c", self.cfg], cwd=self.dir, stderr=self.errf)
        wait_until(lambda: "hookq ready" in self.stderr() or self._dead(), 15,
                   what="hookq ready")

    def _dead(self):
        if not self.proc.alive():
            raise AssertionError("hookq exited: " + self.stderr())
        return False

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def post(self, conn, customer, n, code="post-create"):
        body = json.dumps({"code": code, "data": {"customer_id": customer, "n": n}})
        conn.request("POST", "/webhook", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def cli(self, *args):
        return subprocess.run([HOOKQ, "-c", self.cfg] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=30)


def by_key(records):
    out = {}
    for r in records:
        out.setdefault(r["key"], []).append(r)
    return out


@suite.test
def test_run_on_a_cluster_keeps_each_keys_order_and_spreads_the_shards():
    with RedisCluster(masters=3) as c, processes() as start:
        sink = Double(start, "sink")
        # One node in the url: hookq asks it and finds a cluster.
        hq = Hookq(start, c, sink, seeds=1)
        conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
        for n in range(1, 11):
            for cu in range(40):
                st, body = hq.post(conn, "c%d" % cu, n)
                assert st == 202, (st, body)
        wait_until(lambda: sink.count() >= 400, 60, interval=0.1, what="400 deliveries")
        recs = sink.records()
        assert len(recs) == 400, len(recs)
        keys = by_key(recs)
        assert len(keys) == 40
        for key, rs in keys.items():
            assert [int(r["seq"]) for r in rs] == list(range(1, 11)), key
            assert [r["body"]["data"]["n"] for r in rs] == list(range(1, 11)), key
        # Every master holds some of the shards' queues (12 shards, 3 masters).
        used = set()
        for s in range(SHARDS):
            p = "{hookq:%d}:" % s
            owner = c.owner(c.keyslot(p))
            if owner.client().exists(p + "stats"):
                used.add(owner.port)
        assert len(used) == 3, used
        # The start log says where the shards fall.
        log = hq.stderr()
        line = [l for l in log.splitlines() if "redis cluster: shard" in l]
        assert line, log
        for m in c.masters():
            assert "→ %s" % m.addr in line[0], line[0]
        # The admin side on the cluster: /healthz, the CLI.
        assert hq.get("/healthz")[0] == 200
        st = hq.cli("stats", "--json")
        assert st.returncode == 0, st.stderr
        stats = json.loads(st.stdout)
        r = hq.cli("token", "set", "c1", "tok-1")
        assert r.returncode == 0, r.stderr
        assert stats, stats
        # The other admin commands read every shard, wherever it is.
        for args in (("keys", "--top", "5"), ("dlq", "list"), ("token", "del", "c1")):
            r = hq.cli(*args)
            assert r.returncode == 0, (args, r.stderr)


@suite.test
def test_a_dead_master_takes_only_its_shards_down():
    with RedisCluster(masters=3) as c, processes() as start:
        sink = Double(start, "sink")
        hq = Hookq(start, c, sink)
        # Customers by the master their shard is on.
        shard_of = {}
        for cu in range(60):
            st, body = hq.post(http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10),
                               "d%d" % cu, 1)
            assert st == 202, (st, body)
            shard_of["d%d" % cu] = json.loads(body)["key"]
        wait_until(lambda: sink.count() >= 60, 30, what="60 deliveries")
        recs = sink.records()
        rec_shard = {}
        for s in range(SHARDS):
            p = "{hookq:%d}:" % s
            rec_shard[s] = c.owner(c.keyslot(p))
        victim = c.owner(c.keyslot("{hookq:0}:"))
        dead_shards = [s for s in range(SHARDS) if rec_shard[s] is victim]
        # Which customer is on which shard: ask Redis where its seq lives.
        cust_shard = {}
        for cu in shard_of:
            for s in range(SHARDS):
                p = "{hookq:%d}:" % s
                if rec_shard[s].client().hexists(p + "seq", cu + ":post-create"):
                    cust_shard[cu] = s
        assert len(cust_shard) == 60, (len(cust_shard), recs[:1])
        victim.kill()
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
        live = [cu for cu, s in cust_shard.items() if s not in dead_shards]
        dead = [cu for cu, s in cust_shard.items() if s in dead_shards]
        assert live and dead
        # A dead shard's webhook: 503 with Retry-After, within 2 s.
        t = time.monotonic()
        st, body = hq.post(conn, dead[0], 2)
        assert st == 503 and time.monotonic() - t < 2.0, (st, body)
        # The others keep answering 202.
        for cu in live:
            st, body = hq.post(conn, cu, 2)
            assert st == 202, (cu, st, body)
        # /healthz names a shard of the dead master.
        status, body = hq.get("/healthz")
        assert status == 503, body
        assert "shard " in body and victim.addr in body or "no master" in body, body
        assert time.monotonic() - t0 < 10


@suite.test
def test_the_intake_drops_only_a_hung_masters_connection():
    """A request whose master does not answer within 1.5 s gets 503, and
    the intake drops that master's connection alone (the calls on it fail,
    the map is read again): once the master answers again, its shards take
    webhooks on a new connection; the other masters' stay."""
    with RedisCluster(masters=3) as c, processes() as start:
        sink = Double(start, "sink")
        hq = Hookq(start, c, sink, command="serve")
        victim = c.owner(c.keyslot("{hookq:0}:"))
        healthy = [m for m in c.masters() if m is not victim]
        victim_shards = [s for s in range(SHARDS)
                         if c.owner(c.keyslot("{hookq:%d}:" % s)) is victim]
        conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
        on_victim = None
        for cu in range(60):
            st, body = hq.post(conn, "h%d" % cu, 1)
            assert st == 202, (st, body)
            if on_victim is None and any(
                    victim.client().hexists("{hookq:%d}:seq" % s, "h%d:post-create" % cu)
                    for s in victim_shards):
                on_victim = "h%d" % cu

        def clients(node):
            return {x["id"] for x in node.client().client_list()
                    if x["cmd"] != "client|list"}
        assert on_victim is not None
        before = {m.port: clients(m) for m in c.masters()}
        victim.proc.signal(signal.SIGSTOP)
        try:
            t = time.monotonic()
            st, body = hq.post(conn, on_victim, 2)
            assert st == 503 and time.monotonic() - t < 2.5, (st, body)
            wait_until(lambda: "did not answer within" in hq.stderr(), 5,
                       what="the intake's reset")
        finally:
            victim.proc.signal(signal.SIGCONT)

        def stored_again():
            st, body = hq.post(conn, on_victim, 3)
            return st == 202
        wait_until(stored_again, 10, interval=0.2, what="202 again from the shard")
        assert before[victim.port] - clients(victim), "the hung master's connection stayed"
        for m in healthy:
            assert before[m.port] <= clients(m), (m.port, before[m.port], clients(m))


@suite.test
def test_a_worker_killed_on_a_cluster_loses_nothing_and_keeps_order():
    with RedisCluster(masters=3) as c, processes() as start:
        sink = Double(start, "sink", "--delay-ms", "20")
        hq = Hookq(start, c, sink, command="serve")
        # The workers without an admin listener (serve has it).
        wcfg = hq.cfg + ".work"
        with open(hq.cfg) as f, open(wcfg, "w") as g:
            g.write(f.read().replace("[admin]\nlisten = 127.0.0.1:%d" % hq.admin,
                                     "[admin]\nlisten = off"))
        workers = [start([HOOKQ, "work", "-c", wcfg], cwd=hq.dir) for _ in range(2)]
        conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
        for n in range(1, 11):
            for cu in range(30):
                st, body = hq.post(conn, "k%d" % cu, n)
                assert st == 202, (st, body)
        wait_until(lambda: sink.count() >= 60, 30, what="some deliveries")
        workers[0].signal(9)
        workers[0].wait(10)
        # The dead worker's leases expire (2 s) and are reaped by the other.
        wait_until(lambda: len({(r["key"], r["seq"]) for r in sink.records()}) >= 300, 60,
                   interval=0.2, what="every job delivered")
        for key, rs in by_key(sink.records()).items():
            ns = [r["body"]["data"]["n"] for r in rs]
            # At least once: a job in flight at the kill may come twice,
            # back to back (retried before the key's next job, G6).
            collapsed = [x for i, x in enumerate(ns) if i == 0 or ns[i - 1] != x]
            assert collapsed == list(range(1, 11)), (key, ns)


@suite.test
def test_the_rate_limit_holds_on_a_cluster():
    with RedisCluster(masters=3) as c, processes() as start:
        sink = Double(start, "sink")
        mock = Double(start, "mockapi", "--quiet", "--rate", "2/1000")
        events = "".join("[event e%d]\nfetch = GET /posts/{data.n}\ndeliver = %s/hooks\n"
                         % (k, sink.url) for k in range(4))
        hq = Hookq(start, c, sink, extra="[api]\nbase_url = %s\nrate = 2/1s\n" % mock.url,
                   events=events)
        r = hq.cli("token", "set", "hot", "tok-hot")
        assert r.returncode == 0, r.stderr
        conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
        for n in range(8):
            st, body = hq.post(conn, "hot", n, code="e%d" % (n % 4))
            assert st == 202, (st, body)
        wait_until(lambda: sink.count() >= 8, 30, interval=0.2, what="8 deliveries")
        calls = [x for x in mock.records() if x["token"] == "tok-hot"]
        assert len(calls) == 8 and all(x["status"] == 200 for x in calls), calls
        t = sorted(x["mono"] for x in calls)
        # Never 3 calls within one window of 1 s (mono is in ms; the mock would have said 429).
        assert all(t[i + 2] - t[i] >= 1000.0 for i in range(len(t) - 2)), t
        # And the budget is used: 8 calls at 2/s take about 3 s, not much more.
        assert t[-1] - t[0] < 5000.0, t[-1] - t[0]


if __name__ == "__main__":
    suite.run()
