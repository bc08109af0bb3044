"""Redis Cluster and Sentinel for the integration tests (DESIGN §3.7, §5).

DESIGN: everything here is a real redis-server (7.0) started by harness.Proc
on 127.0.0.1 in a private temporary directory, and stopped by PID; nothing is
mocked and nothing is stopped by name. Each class waits until what it
started is ready — a cluster until every node agrees on the slot map and
says cluster_state:ok, a Sentinel set until every Sentinel knows the master,
its replica and the other Sentinels — so a test starts from a known state.

- RedisCluster(masters=3, replicas=0): `redis-server --cluster-enabled yes`
  per node, joined by `redis-cli --cluster create ... --cluster-yes`, with
  cluster-node-timeout 2000 and cluster-require-full-coverage no (the
  settings docs/deployment.md recommends). A node's cluster bus is its port
  + 10000, so both must be free. Helpers: the node that serves a slot, the
  slot of a key (asked of Redis, not computed here), kill a master and wait
  for its replica to take over, move one slot to another master (by hand,
  optionally slowly so that clients meet ASK), or `redis-cli --cluster
  reshard`.
- SentinelSet(sentinels=3): a master, one replica and three Sentinels
  (`redis-server x.conf --sentinel`) monitoring it as `hookq`, quorum 2,
  down-after 1000 ms. Helpers: the address the Sentinels give, kill the
  master and wait for the replica's promotion. With `password`, each
  Sentinel's conf says `requirepass` (clients must AUTH; the Sentinels use
  it among themselves too) and, with `user`, an ACL user for clients:
  the production setup Redis's docs recommend. The data nodes keep no
  password.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time

import redis  # python3-redis

from harness import Proc, REDIS_SERVER, free_port, wait_until

REDIS_CLI = os.environ.get("REDIS_CLI") or os.path.join(
    os.path.dirname(REDIS_SERVER) if os.path.isabs(REDIS_SERVER) else "", "redis-cli")
if not os.path.exists(REDIS_CLI):
    REDIS_CLI = "redis-cli"

NODE_TIMEOUT_MS = 2000


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port():
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        p = free_port()
        if p + 10000 < 65536 and _port_free(p + 10000):
            return p


def _client(port, timeout=5, password=None):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout,
                       socket_connect_timeout=timeout, decode_responses=True,
                       password=password)


class Node:
    """One redis-server of a cluster or Sentinel set."""

    def __init__(self, root, name, port, args, conf=None, password=None):
        self.dir = os.path.join(root, name)
        self.password = password  # what the test's own client AUTHs with
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.port = port
        self.args = list(args)
        self.conf = conf
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def log(self):
        return os.path.join(self.dir, "redis.log")

    def start(self):
        argv = [REDIS_SERVER]
        if self.conf is not None:
            path = os.path.join(self.dir, "node.conf")
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write(self.conf)
            argv.append(path)
        argv += ["--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", self.dir, "--daemonize", "no",
                 "--logfile", self.log] + self.args
        self.proc = Proc(argv)
        wait_until(self._ping, 10, what="redis-server %s on port %d" % (self.name, self.port))

    def _ping(self):
        if not self.proc.alive():
            raise RuntimeError("redis-server %s exited: see %s" % (self.name, self.log))
        try:
            c = self.client()
            return c.ping() and c.info("server")["process_id"] == self.proc.pid
        except redis.exceptions.ConnectionError:
            return False
        except redis.exceptions.ResponseError as e:
            # A node still loading its data answers LOADING: not ready yet.
            if "LOADING" in str(e):
                return False
            raise

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def client(self, timeout=5):
        return _client(self.port, timeout, self.password)

    def kill(self, sig=signal.SIGKILL):
        """Kill the process with `sig` and reap it (SIGKILL: no shutdown)."""
        if self.proc and self.proc.alive():
            self.proc.signal(sig)
            self.proc.wait(10)

    def stop(self):
        if self.proc:
            self.proc.stop()


def _parse_nodes(text):
    """CLUSTER NODES text → list of dicts (id, addr, port, flags, master, slots)."""
    nodes = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        hostport = f[1].split("@")[0]
        slots = []
        for s in f[8:]:
            if s.startswith("["):
                continue  # a slot being migrated or imported
            if "-" in s:
                a, b = s.split("-")
                slots.append((int(a), int(b)))
            else:
                slots.append((int(s), int(s)))
        nodes.append({"id": f[0], "addr": hostport,
                      "port": int(hostport.rsplit(":", 1)[1]) if ":" in hostport else 0,
                      "flags": f[2].split(","), "master": f[3], "state": f[7],
                      "slots": slots})
    return nodes


class RedisCluster:
    """`masters` masters with `replicas` replicas each, all on 127.0.0.1."""

    def __init__(self, masters=3, replicas=0, appendonly=False, extra=()):
        self.root = tempfile.mkdtemp(prefix="hq-cluster-")
        self.nodes = []
        n = masters * (1 + replicas)
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no",
                # A replica of a master that was down for a while may still
                # take over (failover tests kill masters on purpose).
                "--cluster-replica-validity-factor", "0",
                "--save", "", "--appendonly", "yes" if appendonly else "no"] + list(extra)
        try:
            for i in range(n):
                node = Node(self.root, "node%d" % i, free_cluster_port(), args)
                node.start()
                self.nodes.append(node)
            cmd = [REDIS_CLI, "--cluster", "create"] + [x.addr for x in self.nodes] + \
                  ["--cluster-replicas", str(replicas), "--cluster-yes"]
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=60)
            if out.returncode != 0:
                raise RuntimeError("redis-cli --cluster create failed:\n" +
                                   out.stdout.decode(errors="replace"))
            self.wait_ready(n_masters=masters, n_replicas=masters * replicas)
        except BaseException:
            self.stop()
            raise

    # --- what the cluster looks like -------------------------------------

    def live_nodes(self):
        return [x for x in self.nodes if x.alive()]

    def node_by_port(self, port):
        for x in self.nodes:
            if x.port == port:
                return x
        raise KeyError(port)

    def view(self, node=None):
        """CLUSTER NODES as seen by `node` (default: the first live one)."""
        node = node or self.live_nodes()[0]
        return _parse_nodes(node.client().execute_command("CLUSTER", "NODES"))

    def masters(self):
        """Live master nodes that hold slots, as Node objects."""
        ports = [d["port"] for d in self.view()
                 if "master" in d["flags"] and d["slots"] and "fail" not in d["flags"]]
        return [self.node_by_port(p) for p in ports if self.node_by_port(p).alive()]

    def replicas_of(self, master):
        v = self.view()
        mid = [d["id"] for d in v if d["port"] == master.port][0]
        return [self.node_by_port(d["port"]) for d in v if d["master"] == mid]

    def node_id(self, node):
        return node.client().execute_command("CLUSTER", "MYID")

    def keyslot(self, key):
        """The slot of `key`, as Redis computes it."""
        return int(self.live_nodes()[0].client().execute_command("CLUSTER", "KEYSLOT", key))

    def owner(self, slot, node=None):
        """The node that serves `slot`, as `node` (default: any live one) sees it."""
        for d in self.view(node):
            if "master" in d["flags"] and any(a <= slot <= b for a, b in d["slots"]):
                return self.node_by_port(d["port"])
        return None

    def seeds(self):
        return ",".join(x.addr for x in self.live_nodes())

    def url(self, seeds=None):
        """redis://host:port,host:port,... of the live nodes (or `seeds` of them)."""
        nodes = self.live_nodes()
        if seeds is not None:
            nodes = nodes[:seeds]
        return "redis://" + ",".join(x.addr for x in nodes)

    def _agreed(self, n_masters, n_replicas):
        views = []
        for x in self.live_nodes():
            c = x.client()
            info = c.execute_command("CLUSTER", "INFO")
            if "cluster_state:ok" not in info:
                return False
            v = _parse_nodes(c.execute_command("CLUSTER", "NODES"))
            masters = sorted((d["port"], tuple(d["slots"])) for d in v
                             if "master" in d["flags"] and d["slots"]
                             and "fail" not in d["flags"] and "fail?" not in d["flags"])
            views.append(masters)
            if n_replicas is not None:
                reps = [d for d in v if "slave" in d["flags"] and "fail" not in d["flags"]]
                if len(reps) < n_replicas:
                    return False
        if not views or any(v != views[0] for v in views):
            return False
        if n_masters is not None and len(views[0]) != n_masters:
            return False
        covered = sum(b - a + 1 for _, slots in views[0] for a, b in slots)
        return covered == 16384

    def wait_ready(self, n_masters=None, n_replicas=None, timeout=30):
        """Until every live node says cluster_state:ok and all agree on who
        serves which slots (and the replicas, when counted, are there)."""
        wait_until(lambda: self._agreed(n_masters, n_replicas), timeout, interval=0.1,
                   what="the cluster to agree on its slot map")
        if n_replicas:
            # A replica counts once it has synced: WAIT 1 needs it.
            def synced():
                for x in self.live_nodes():
                    info = x.client().info("replication")
                    if info.get("role") == "slave" and info.get("master_link_status") != "up":
                        return False
                return True
            wait_until(synced, timeout, interval=0.1, what="replicas to sync")

    # --- failures and changes --------------------------------------------

    def kill_master(self, node, timeout=20):
        """SIGKILL master `node` and wait until one of its replicas serves its
        slots and the survivors agree. Returns (the new master, seconds from
        the kill until the survivors agreed)."""
        reps = self.replicas_of(node)
        if not reps:
            raise RuntimeError("master %s has no replica to take over" % node.addr)
        slots = [d["slots"] for d in self.view() if d["port"] == node.port][0]
        t0 = time.monotonic()
        node.kill()

        def promoted():
            for r in reps:
                if not r.alive():
                    continue
                try:
                    role = r.client().info("replication").get("role")
                except redis.exceptions.ConnectionError:
                    continue
                if role == "master":
                    return r
            return None
        new = wait_until(promoted, timeout, interval=0.05, what="a replica of %s to take over" % node.addr)
        wait_until(lambda: all(self.owner(a, n) is new for n in self.live_nodes() for a, _ in slots),
                   timeout, interval=0.05, what="every node to see the new master")
        return new, time.monotonic() - t0

    def restart(self, node):
        """Start a killed node again; it rejoins (as a replica if it was failed over)."""
        node.start()

    def move_slot(self, slot, target, key_pause=0.0, batch=10):
        """Move `slot` to master `target` as `redis-cli --cluster reshard`
        does (SETSLOT IMPORTING / MIGRATING, MIGRATE the keys, SETSLOT NODE),
        but for one chosen slot; `key_pause` seconds between batches of
        `batch` keys keep the slot half-moved for a while, so that clients
        meet ASK (keys already moved) and TRYAGAIN (a script over both)."""
        source = self.owner(slot)
        if source is target:
            return
        sid, tid = self.node_id(source), self.node_id(target)
        tc, sc = target.client(), source.client()
        tc.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", sid)
        sc.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", tid)
        while True:
            keys = sc.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            sc.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                               "KEYS", *keys)
            if key_pause:
                time.sleep(key_pause)
        # The target first, then the source, then the rest (as redis-cli does).
        tc.execute_command("CLUSTER", "SETSLOT", slot, "NODE", tid)
        sc.execute_command("CLUSTER", "SETSLOT", slot, "NODE", tid)
        for x in self.masters():
            if x is not source and x is not target:
                x.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", tid)
        wait_until(lambda: all(self.owner(slot, n) is target for n in self.live_nodes()),
                   20, interval=0.05, what="every node to see slot %d on %s" % (slot, target.addr))

    def reshard(self, source, target, nslots):
        """`redis-cli --cluster reshard`: move `nslots` slots from `source` to `target`."""
        cmd = [REDIS_CLI, "--cluster", "reshard", source.addr,
               "--cluster-from", self.node_id(source), "--cluster-to", self.node_id(target),
               "--cluster-slots", str(nslots), "--cluster-yes"]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("redis-cli --cluster reshard failed:\n" +
                               out.stdout.decode(errors="replace"))
        self.wait_ready()

    def stop(self):
        for x in reversed(self.nodes):
            x.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


SENTINEL_CONF = """\
sentinel monitor {name} 127.0.0.1 {port} 2
sentinel down-after-milliseconds {name} 1000
sentinel failover-timeout {name} 10000
sentinel parallel-syncs {name} 1
"""


class SentinelSet:
    """A master, one replica (or more) and `sentinels` Sentinels watching it
    as `name`."""

    def __init__(self, sentinels=3, replicas=1, name="hookq", appendonly=False,
                 password=None, user=None):
        self.root = tempfile.mkdtemp(prefix="hq-sentinel-")
        self.name = name
        self.password = password
        self.user = user
        conf = SENTINEL_CONF
        if password is not None:
            conf += "requirepass %s\n" % password
            if user is not None:
                # Enough for a client to ask where the master is.
                conf += "user %s on >%s +@connection +sentinel|get-master-addr-by-name\n" \
                        % (user, password)
        self.data = []
        self.sentinels = []
        args = ["--save", "", "--appendonly", "yes" if appendonly else "no",
                # A replica promoted by the Sentinels stays writable for us.
                "--replica-read-only", "yes"]
        try:
            master = Node(self.root, "master", free_port(), args)
            master.start()
            self.data.append(master)
            for i in range(replicas):
                r = Node(self.root, "replica%d" % i, free_port(),
                         args + ["--replicaof", "127.0.0.1", str(master.port)])
                r.start()
                self.data.append(r)
            for i in range(sentinels):
                s = Node(self.root, "sentinel%d" % i, free_port(), ["--sentinel"],
                         conf=conf.format(name=name, port=master.port),
                         password=password)
                s.start()
                self.sentinels.append(s)
            self.wait_ready(master)
        except BaseException:
            self.stop()
            raise

    @property
    def addrs(self):
        """host:port,host:port,... of the Sentinels, as `[redis] sentinels` takes it."""
        return ",".join(s.addr for s in self.sentinels if s.alive())

    def master_addr(self, sentinel=None):
        """(host, port) that `sentinel` (default: the first live one) gives for the master."""
        s = sentinel or [x for x in self.sentinels if x.alive()][0]
        r = s.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        if not r:
            return None
        return (r[0], int(r[1]))

    def master(self):
        """The data node the Sentinels name as master."""
        host, port = self.master_addr()
        return [x for x in self.data if x.port == port][0]

    def _ready(self, master):
        for s in self.sentinels:
            if not s.alive():
                continue
            try:
                m = s.client().execute_command("SENTINEL", "MASTER", self.name)
            except redis.exceptions.ResponseError:
                return False
            if isinstance(m, list):
                m = dict(zip(m[0::2], m[1::2]))
            if int(m["port"]) != master.port or "s_down" in m["flags"] or "o_down" in m["flags"]:
                return False
            want_rep = len([x for x in self.data if x.alive() and x is not master])
            if int(m["num-slaves"]) < want_rep:
                return False
            if int(m["num-other-sentinels"]) < len([x for x in self.sentinels if x.alive()]) - 1:
                return False
        for x in self.data:
            if x.alive() and x is not master:
                info = x.client().info("replication")
                if info.get("role") != "slave" or info.get("master_link_status") != "up" or \
                        int(info.get("master_port", 0)) != master.port:
                    return False
        return True

    def wait_ready(self, master, timeout=30):
        """Until every live Sentinel names `master`, knows its replicas and
        the other Sentinels, and every replica has synced with it."""
        wait_until(lambda: self._ready(master), timeout, interval=0.1,
                   what="the Sentinels to agree on master %s" % master.addr)

    def kill_master(self, timeout=30):
        """SIGKILL the master; wait until the Sentinels name a promoted
        replica that says ROLE master. Returns (new master, seconds)."""
        old = self.master()
        t0 = time.monotonic()
        old.kill()

        def promoted():
            a = [self.master_addr(s) for s in self.sentinels if s.alive()]
            if not a or any(x is None or x[1] == old.port for x in a) or len(set(a)) != 1:
                return None
            new = [x for x in self.data if x.port == a[0][1]][0]
            try:
                if new.client().execute_command("ROLE")[0] == "master":
                    return new
            except redis.exceptions.ConnectionError:
                pass
            return None
        new = wait_until(promoted, timeout, interval=0.05, what="the Sentinels to promote a replica")
        return new, time.monotonic() - t0

    def stop(self):
        for x in reversed(self.sentinels + self.data):
            x.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
