"""The Redis a test's queue lives in: one redis-server, or a Redis Cluster.

DESIGN: the order, parallelism, fairness, crash-recovery and rate-limit
tests (G1-G3, G6, G7) and the `hookq workers` tests run unchanged against
both (issue 9). Such a test asks for `Store()`, which reads HQ_REDIS:

- unset or "server": a harness.RedisServer with `shards = 1`, the test as
  it always ran (the object *is* the RedisServer, with the methods below);
- "cluster": a 3-master clusterlib.RedisCluster with `shards = 12`, so that
  every master serves several shards (checked at start: a cluster run in
  which one master served none would prove less than it says).

Everything a test hands to hookq or to the test programs, and everything it
reads back from Redis, goes through the store: `url`, `shards`,
`config()` (the `[redis]` lines), `args()` (`--shards N` for testworker and
pushjobs), `prefix(customer)` (the customer's shard, as store.c computes
it), `client(prefix)` (a client of the node serving that shard), `stats()`
(the namespace's counters summed over the shards) and `total(cmd, suffix)`
(one command summed over the shards). The slot map is read once: these
tests move no slots. ctest runs each such test twice, as integration.T and
integration.T_cluster (HQ_REDIS=cluster, label long; tests/CMakeLists.txt).
"""
import os

import redis  # python3-redis

from harness import RedisServer, fnv1a

NS = "hookq"
CLUSTER_MASTERS = 3
CLUSTER_SHARDS = 12
MODE = os.environ.get("HQ_REDIS", "server")
if MODE not in ("server", "cluster"):
    raise RuntimeError("HQ_REDIS=%s: 'server' or 'cluster'" % MODE)


class _Shards:
    """What both kinds of store share: the namespace's shards."""

    shards = 1

    def prefix(self, customer=None):
        """The prefix "{ns:S}:" of `customer`'s shard (shard 0 without one)."""
        s = fnv1a(customer) % self.shards if customer and self.shards > 1 else 0
        return "{%s:%d}:" % (NS, s)

    def prefixes(self):
        return ["{%s:%d}:" % (NS, s) for s in range(self.shards)]

    def config(self):
        """The `[redis]` section's lines (without the header)."""
        return "url = %s\nshards = %d\n" % (self.url, self.shards)

    def args(self):
        """What testworker and pushjobs take to find the namespace."""
        return ["--url", self.url, "--shards", str(self.shards)]

    def stats(self):
        """The namespace's counters (P stats), summed over the shards."""
        out = {}
        for p in self.prefixes():
            for k, v in self.client(p).hgetall(p + "stats").items():
                out[k.decode()] = out.get(k.decode(), 0) + int(v)
        return out

    def total(self, cmd, suffix):
        """`cmd` (a redis-py method name: "llen", "zcard", ...) of P+suffix,
        summed over the shards."""
        return sum(getattr(self.client(p), cmd)(p + suffix) for p in self.prefixes())


class ServerStore(RedisServer, _Shards):
    """One redis-server; shards = 1. client(prefix) is its one client."""

    def client(self, prefix=None):
        return RedisServer.client(self)


class ClusterStore(_Shards):
    """A 3-master Redis Cluster with shards = 12; client(prefix) is a
    client of the master that serves the prefix's slot."""

    shards = CLUSTER_SHARDS

    def __init__(self, **redis_args):
        from clusterlib import RedisCluster  # it imports harness
        if redis_args:
            raise RuntimeError("cluster store: no redis-server options (%s)" % redis_args)
        self.cluster = RedisCluster(masters=CLUSTER_MASTERS)
        try:
            self.url = self.cluster.url()
            self._port = {}
            for p in self.prefixes():
                self._port[p] = self.cluster.owner(self.cluster.keyslot(p)).port
            self._port[None] = self._port[self.prefix()]
            served = {self._port[p] for p in self.prefixes()}
            masters = {m.port for m in self.cluster.masters()}
            assert served == masters and len(masters) == CLUSTER_MASTERS, \
                "shards %s should fall on every master of %s" % (self._port, masters)
            self._clients = {}
            layout = {}
            for s, p in enumerate(self.prefixes()):
                layout.setdefault(self._port[p], []).append(str(s))
            print("store: %d-master redis cluster, shards = %d: %s" % (
                CLUSTER_MASTERS, self.shards, "; ".join(
                    "shards %s -> 127.0.0.1:%d" % (",".join(v), k) for k, v in sorted(layout.items()))),
                flush=True)
        except BaseException:
            self.cluster.stop()
            raise

    def client(self, prefix=None):
        """A client of the master serving `prefix`'s slot (any key with that
        hash tag: "{hookq:meta}:" too)."""
        port = self._port.get(prefix)
        if port is None:
            port = self._port[prefix] = self.cluster.owner(self.cluster.keyslot(prefix)).port
        if port not in self._clients:
            self._clients[port] = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        return self._clients[port]

    def stop(self):
        self.cluster.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ClientStore(_Shards):
    """A redis client made elsewhere, seen as a store of one shard."""

    def __init__(self, r):
        self.r = r

    def client(self, prefix=None):
        return self.r


def as_store(target):
    """`target` if it is a store, else (a redis client) a ClientStore of it."""
    return target if isinstance(target, _Shards) else ClientStore(target)


def Store(**redis_args):
    """A ServerStore (RedisServer(**redis_args)) or, with HQ_REDIS=cluster,
    a ClusterStore."""
    if MODE == "cluster":
        return ClusterStore(**redis_args)
    return ServerStore(**redis_args)
