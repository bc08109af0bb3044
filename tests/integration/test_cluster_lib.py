"""The pure cluster and Sentinel code of src/lib against real servers.

clustertool (tests/integration/clustertool.c) drives cluster.c, sentinel.c
and store.c's url and connect; each test holds its answers against what a
real Redis Cluster (clusterlib.RedisCluster) or real Sentinels
(clusterlib.SentinelSet) say themselves.
"""
import os
import random
import subprocess

from clusterlib import RedisCluster, SentinelSet
from harness import RedisServer, Suite, helper

suite = Suite("cluster_lib")
TOOL = helper("clustertool")


def tool(*args, ok=True, env=None):
    p = subprocess.run([TOOL] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30,
                       env=dict(os.environ, **(env or {})))
    out, err = p.stdout.decode(), p.stderr.decode()
    if ok and p.returncode != 0:
        raise AssertionError("clustertool %s: exit %d: %s" % (args, p.returncode, err))
    return p.returncode, out, err


def slot_runs(cluster, node=None):
    """The cluster's own view: 'START-END 127.0.0.1:PORT' per run, sorted."""
    runs = []
    for d in cluster.view(node):
        if "master" in d["flags"] and "fail" not in d["flags"]:
            runs += ["%d-%d %s" % (a, b, d["addr"]) for a, b in d["slots"]]
    return sorted(runs, key=lambda r: int(r.split("-")[0]))


def merge(runs):
    """Join adjacent runs on one node (the tool prints maximal runs)."""
    out = []
    for r in runs:
        span, addr = r.split()
        a, b = map(int, span.split("-"))
        if out and out[-1][2] == addr and out[-1][1] + 1 == a:
            out[-1][1] = b
        else:
            out.append([a, b, addr])
    return ["%d-%d %s" % (a, b, addr) for a, b, addr in out]


@suite.test
def test_keyslot_agrees_with_cluster_keyslot_and_the_map_with_cluster_nodes():
    rnd = random.Random(9)
    with RedisCluster(masters=3) as c:
        keys = ["{hookq:%d}:" % s for s in range(64)]
        for _ in range(300):
            k = "".join(rnd.choice("ab{}:x0") for _ in range(rnd.randint(0, 12)))
            keys.append(k)
        keys = [k for k in keys if k]  # an empty argv entry is not a key
        _, out, _ = tool("keyslot", *keys)
        got = [int(x) for x in out.split()]
        node = c.live_nodes()[0]
        want = [int(node.client().execute_command("CLUSTER", "KEYSLOT", k)) for k in keys]
        bad = [(k, g, w) for k, g, w in zip(keys, got, want) if g != w]
        assert not bad, "keyslot differs from Redis for %s" % bad[:5]

        _, out, _ = tool("slots", node.addr)
        assert out.split("\n")[:-1] == merge(slot_runs(c)), out

        # Move the slot of shard 0 and read the map again, from another node.
        slot = c.keyslot("{hookq:0}:")
        target = [m for m in c.masters() if m is not c.owner(slot)][0]
        c.move_slot(slot, target)
        _, out, _ = tool("slots", c.live_nodes()[-1].addr)
        assert "%d-%d %s" % (slot, slot, target.addr) in out.split("\n"), out
        assert out.split("\n")[:-1] == merge(slot_runs(c)), out

        # The layout line names each master with its shards.
        _, out, _ = tool("layout", node.addr, "hookq", 12)
        line, verdict = out.split("\n")[:2]
        for s in range(12):
            owner = c.owner(c.keyslot("{hookq:%d}:" % s))
            part = [p for p in line.split("; ") if p.endswith("→ " + owner.addr)]
            assert len(part) == 1, line
            assert str(s) in part[0].split()[1].split(","), (s, line)
        assert verdict in ("even", "uneven")
        # One shard on three masters is more than twice a third.
        _, out, _ = tool("layout", node.addr, "hookq", 1)
        assert out.split("\n")[1] == "uneven", out


@suite.test
def test_sentinel_lookup_follows_a_failover_and_never_names_a_replica():
    with SentinelSet() as ss:
        master = ss.master()
        _, out, _ = tool("sentinel", ss.addrs, "hookq")
        assert out.strip() == master.addr, out
        # A Sentinel that is down is passed over.
        dead = "127.0.0.1:1," + ss.addrs
        _, out, _ = tool("sentinel", dead, "hookq")
        assert out.strip() == master.addr, out
        # A name no Sentinel knows: an error that says so.
        rc, _, err = tool("sentinel", ss.addrs, "nope", ok=False)
        assert rc == 1 and "does not know master 'nope'" in err, err

        new, took = ss.kill_master()
        assert new is not master
        _, out, _ = tool("sentinel", ss.addrs, "hookq")
        assert out.strip() == new.addr, out
        assert new.client().execute_command("ROLE")[0] == "master"

        # The old master back as a replica: a Sentinel naming it would be
        # refused by ROLE; ours name the new one.
        master.start()
        ss.wait_ready(new)
        _, out, _ = tool("sentinel", ss.addrs, "hookq")
        assert out.strip() == new.addr, out

        for s in ss.sentinels:
            s.kill()
        rc, _, err = tool("sentinel", ss.addrs or "127.0.0.1:1", "hookq", ok=False)
        assert rc == 1 and "sentinel" in err and "127.0.0.1" in err, err


@suite.test
def test_sentinels_with_a_password_answer_only_after_auth():
    """Sentinels with requirepass (and an ACL user): the lookup sends AUTH
    first; a wrong password or none is said naming the Sentinel, what it
    answered and the key to set, never with the password."""
    with SentinelSet(password="s3ntinel-pw", user="hq") as ss:
        master = ss.master()
        _, out, _ = tool("sentinel", ss.addrs, "hookq",
                         env={"HQ_SENTINEL_PASSWORD": "s3ntinel-pw"})
        assert out.strip() == master.addr, out
        _, out, _ = tool("sentinel", ss.addrs, "hookq",
                         env={"HQ_SENTINEL_PASSWORD": "s3ntinel-pw", "HQ_SENTINEL_USER": "hq"})
        assert out.strip() == master.addr, out

        first = ss.sentinels[0].addr
        rc, _, err = tool("sentinel", ss.addrs, "hookq",
                          env={"HQ_SENTINEL_PASSWORD": "wr0ng-pw"}, ok=False)
        assert rc == 1, err
        assert "sentinel %s refused the password of [redis] sentinel_password" % first in err, err
        assert "WRONGPASS" in err and "wr0ng-pw" not in err, err
        rc, _, err = tool("sentinel", ss.addrs, "hookq",
                          env={"HQ_SENTINEL_PASSWORD": "wr0ng-pw", "HQ_SENTINEL_USER": "hq"},
                          ok=False)
        assert "refused the password of [redis] sentinel_password for user hq" in err, err
        assert "wr0ng-pw" not in err, err

        rc, _, err = tool("sentinel", ss.addrs, "hookq", ok=False)
        assert rc == 1, err
        assert "sentinel %s requires a password (NOAUTH" % first in err, err
        assert "set [redis] sentinel_password" in err, err

        # A dead Sentinel after a refusing one does not hide the refusal.
        rc, _, err = tool("sentinel", first + ",127.0.0.1:1", "hookq",
                          env={"HQ_SENTINEL_PASSWORD": "wr0ng-pw"}, ok=False)
        assert "sentinel %s refused the password" % first in err, err

    # A password for Sentinels that have none: said as such.
    with SentinelSet(sentinels=1, replicas=0) as ss:
        rc, _, err = tool("sentinel", ss.addrs, "hookq",
                          env={"HQ_SENTINEL_PASSWORD": "s3ntinel-pw"}, ok=False)
        assert "sentinel %s has no password, but [redis] sentinel_password is set" \
            % ss.sentinels[0].addr in err, err
        assert "s3ntinel-pw" not in err, err


@suite.test
def test_an_acl_user_logs_in_with_its_password():
    with RedisServer() as r:
        r.client().execute_command("ACL", "SETUSER", "hookq", "on", ">s3cret", "~*", "&*", "+@all")
        _, out, _ = tool("ping", "redis://hookq:s3cret@127.0.0.1:%d/0" % r.port)
        assert out.strip() == "PONG", out
        # Before ACL users, "user:" was dropped and the password sent alone:
        # the default user has no such password, so that would fail here.
        rc, _, err = tool("ping", "redis://hookq:wrong@127.0.0.1:%d/0" % r.port, ok=False)
        assert rc == 1 and "auth" in err and "s3cret" not in err, err
        rc, _, err = tool("ping", "redis://:s3cret@127.0.0.1:%d/0" % r.port, ok=False)
        assert rc == 1 and "auth" in err, err


if __name__ == "__main__":
    suite.run()
