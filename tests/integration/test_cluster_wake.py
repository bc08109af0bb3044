"""Wake-ups on a real Redis Cluster stay on their shard (DESIGN §3.7, issue 9).

An idle worker learns that a key became ready from the shard's wake channel
`{ns:S}:wake`, which the scripts SPUBLISH (sharded Pub/Sub, Redis 7.0): the
message stays on the shard's master and its replicas instead of crossing
the cluster bus to every node as PUBLISH does. On a 3-master cluster, with
`hookq run` gone idle, webhooks for customers whose shards sit on one
master are delivered well under the 1 s idle poll (the wake works), the
channels are subscribed on that master only, and the other masters' cluster
bus carries no published message (CLUSTER INFO's counters do not grow).
After a shard's slot moves to another master, or its master fails over to
its replica, the subscriptions follow and wakes still work; with replicas,
the sharded messages go to the shard's replica only.
"""
import http.client
import json
import os
import statistics
import tempfile
import time

from clusterlib import RedisCluster
from harness import HOOKQ, Suite, free_port, processes, wait_until
from proclib import Double

suite = Suite("cluster_wake")
SHARDS = 12
THREADS = 2  # worker loops: each subscribes to every shard's channel
BUS = ("publish_sent", "publish_received", "publishshard_sent", "publishshard_received")


def shard_of(customer):
    """hq__store_shard_of(): FNV-1a of the customer, modulo the shards."""
    h = 2166136261
    for b in customer.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h % SHARDS


def channel(shard):
    return "{hookq:%d}:wake" % shard


class Hookq:
    """`hookq run` on the cluster: intake and workers, delivering to `sink`."""

    def __init__(self, start, cluster, sink):
        self.dir = tempfile.mkdtemp(prefix="hq-clwake-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "hookq.ini")
        with open(cfg, "w") as f:
            f.write("[redis]\nurl = %s\nshards = %d\n"
                    "[intake]\nlisten = 127.0.0.1:%d\n"
                    "[worker]\nconcurrency = 16\nthreads = %d\nlease = 5s\n"
                    "[event post-create]\ndeliver = %s/hooks\n"
                    % (cluster.url(2), SHARDS, self.port, THREADS, sink.url))
        self.log = os.path.join(self.dir, "stderr.log")
        self.errf = open(self.log, "w")
        self.proc = start([HOOKQ, "run", "-c", cfg], cwd=self.dir, stderr=self.errf)
        wait_until(lambda: "hookq ready" in self.stderr() or self._dead(), 15,
                   what="hookq ready")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def _dead(self):
        if not self.proc.alive():
            raise AssertionError("hookq exited: " + self.stderr())
        return False

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def try_post(self, customer, n):
        body = json.dumps({"code": "post-create", "data": {"customer_id": customer, "n": n}})
        self.conn.request("POST", "/webhook", body=body,
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        return r.status, r.read()

    def post(self, customer, n):
        st, out = self.try_post(customer, n)
        assert st == 202, (st, out)


def bus(node):
    """The node's cluster-bus message counters that concern Pub/Sub."""
    info = node.client().execute_command("CLUSTER", "INFO")
    vals = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return {k: int(vals.get("cluster_stats_messages_" + k, 0)) for k in BUS}


def shard_channels(node):
    return set(node.client().execute_command("PUBSUB", "SHARDCHANNELS"))


def subscribers(node, ch):
    """PUBSUB SHARDNUMSUB of `ch`, asked of the node that has its slot."""
    return int(node.client().execute_command("PUBSUB", "SHARDNUMSUB", ch)[1])


def wake_delays(hq, sink, customers, first_n):
    """Post one webhook per customer, each once the worker is idle again;
    the ms from just before each POST until the sink got the delivery."""
    delays = []
    for i, cu in enumerate(customers):
        # Idle again (the claim after the last delivery found nothing); the
        # extra spread puts each post at another point of the 1 s poll.
        time.sleep(0.35 + 0.1 * (i % 4))
        before = sink.count()
        t0 = time.time() * 1000.0
        hq.post(cu, first_n + i)
        wait_until(lambda: sink.count() > before, 10, interval=0.01,
                   what="the delivery for %s" % cu)
        rec = sink.records()[before]
        assert rec["body"]["data"]["customer_id"] == cu, rec
        delays.append(rec["t"] - t0)
    return delays


def shards_on(cluster, master):
    return [s for s in range(SHARDS)
            if cluster.owner(cluster.keyslot("{hookq:%d}:" % s)) is master]


def customers_on(shards, n):
    out, i = [], 0
    while len(out) < n:
        cu = "w%d" % i
        if shard_of(cu) in shards:
            out.append(cu)
        i += 1
    return out


@suite.test
def test_a_wake_stays_on_its_shards_master_and_comes_well_before_the_poll():
    with RedisCluster(masters=3) as c, processes() as start:
        sink = Double(start, "sink")
        hq = Hookq(start, c, sink)
        masters = c.masters()
        a = masters[0]
        mine = shards_on(c, a)
        assert mine, "master %s holds none of the %d shards" % (a.addr, SHARDS)
        # Each loop subscribes to each shard's channel on the shard's master,
        # and nowhere else.
        wait_until(lambda: all(subscribers(c.owner(c.keyslot(channel(s))), channel(s)) == THREADS
                               for s in range(SHARDS)),
                   10, interval=0.1, what="every shard's wake channel subscribed by each loop")
        for m in masters:
            want = {channel(s) for s in shards_on(c, m)}
            assert shard_channels(m) == want, (m.addr, shard_channels(m), want)
        customers = customers_on(mine, 9)
        # Warm up (the delivery's HTTP connection), then go idle.
        hq.post(customers[0], 0)
        wait_until(lambda: sink.count() >= 1, 10, interval=0.05, what="the first delivery")
        time.sleep(1.5)
        before = {m.port: bus(m) for m in masters}
        delays = wake_delays(hq, sink, customers, 1)
        after = {m.port: bus(m) for m in masters}
        # (a) The wake works: the idle poll alone (1 s) would give a median
        # near 500 ms.
        med = statistics.median(delays)
        assert med < 300, "median %.0f ms from post to delivery: %s" % (
            med, ["%.0f" % d for d in delays])
        # (b) No published message crossed the cluster bus: not sent by the
        # owner, not received by the others; no replicas, so no sharded
        # message left the owner either.
        grew = {port: {k: after[port][k] - before[port][k] for k in BUS}
                for port in after}
        print("cluster bus Pub/Sub messages during %d wakes (per node): %s"
              % (len(customers), json.dumps(grew, sort_keys=True)))
        print("post to delivery (ms): median %.0f, max %.0f" % (med, max(delays)))
        for port, d in grew.items():
            assert all(v == 0 for v in d.values()), (port, d)
        # Each post did publish: Redis counted the sharded messages.
        stats = a.client().info("commandstats")
        assert stats.get("cmdstat_spublish", {}).get("calls", 0) >= len(customers), stats
        assert "cmdstat_publish" not in stats, stats


@suite.test
def test_a_wake_follows_its_shards_slot_to_another_master():
    with RedisCluster(masters=3) as c, processes() as start:
        sink = Double(start, "sink")
        hq = Hookq(start, c, sink)
        masters = c.masters()
        a, b = masters[0], masters[1]
        shard = shards_on(c, a)[0]
        ch = channel(shard)
        slot = c.keyslot(ch)
        assert slot == c.keyslot("{hookq:%d}:" % shard)
        wait_until(lambda: subscribers(a, ch) == THREADS, 10, interval=0.1,
                   what="the wake channel subscribed on %s" % a.addr)
        customers = customers_on({shard}, 6)
        hq.post(customers[0], 0)
        wait_until(lambda: sink.count() >= 1, 10, interval=0.05, what="the first delivery")
        before = {m.port: bus(m) for m in masters}
        c.move_slot(slot, b)
        # The old master dropped the channel with the slot (`sunsubscribe`);
        # each loop subscribes again on the new one.
        wait_until(lambda: subscribers(b, ch) == THREADS, 10, interval=0.1,
                   what="the wake channel subscribed again on %s" % b.addr)
        assert ch not in shard_channels(a)
        time.sleep(1.5)
        delays = wake_delays(hq, sink, customers[1:], 1)
        med = statistics.median(delays)
        assert med < 300, "median %.0f ms from post to delivery after the move: %s" % (
            med, ["%.0f" % d for d in delays])
        after = {m.port: bus(m) for m in masters}
        for m in masters:
            assert after[m.port]["publish_sent"] == before[m.port]["publish_sent"], m.addr
            assert after[m.port]["publish_received"] == before[m.port]["publish_received"], m.addr



@suite.test
def test_with_replicas_a_wake_reaches_only_the_shards_replica_and_survives_a_failover():
    with RedisCluster(masters=3, replicas=1) as c, processes() as start:
        sink = Double(start, "sink")
        hq = Hookq(start, c, sink)
        a = c.masters()[0]
        rep = c.replicas_of(a)[0]
        shard = shards_on(c, a)[0]
        ch = channel(shard)
        wait_until(lambda: subscribers(a, ch) == THREADS, 10, interval=0.1,
                   what="the wake channel subscribed on %s" % a.addr)
        customers = customers_on({shard}, 11)
        hq.post(customers[0], 0)
        wait_until(lambda: sink.count() >= 1, 10, interval=0.05, what="the first delivery")
        time.sleep(1.5)
        before = {n.port: bus(n) for n in c.live_nodes()}
        delays = wake_delays(hq, sink, customers[1:6], 1)
        after = {n.port: bus(n) for n in c.live_nodes()}
        assert statistics.median(delays) < 300, delays
        grew = {port: {k: after[port][k] - before[port][k] for k in BUS} for port in after}
        print("with replicas, cluster bus Pub/Sub messages during 5 wakes (per node): %s"
              % json.dumps(grew, sort_keys=True))
        # Sharded messages go from the shard's master to its replica only;
        # no plain published message anywhere.
        assert grew[a.port]["publishshard_sent"] >= 5, grew[a.port]
        assert grew[rep.port]["publishshard_received"] == grew[a.port]["publishshard_sent"], grew
        for port, d in grew.items():
            assert d["publish_sent"] == 0 and d["publish_received"] == 0, (port, d)
            if port not in (a.port, rep.port):
                assert all(v == 0 for v in d.values()), (port, d)
        # The master dies: its replica takes over, each loop subscribes there,
        # and wakes work again.
        new, _ = c.kill_master(a)
        assert new is rep
        wait_until(lambda: subscribers(new, ch) == THREADS, 15, interval=0.1,
                   what="the wake channel subscribed again on %s" % new.addr)
        # The intake takes the shard's webhooks again (its first call may
        # still meet the lost connection: 503).
        warm = customers_on({shard}, 12)[11]
        wait_until(lambda: hq.try_post(warm, 0)[0] == 202, 15, interval=0.2,
                   what="the intake to take shard %d's webhooks again" % shard)
        wait_until(lambda: any(r["body"]["data"]["customer_id"] == warm for r in sink.records()),
                   10, interval=0.05, what="the delivery after the failover")
        time.sleep(1.5)
        delays = wake_delays(hq, sink, customers[6:], 10)
        med = statistics.median(delays)
        assert med < 300, "median %.0f ms from post to delivery after the failover: %s" % (
            med, ["%.0f" % d for d in delays])

if __name__ == "__main__":
    suite.run()
