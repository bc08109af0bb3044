"""The operator's scripts (hold, release, release_customer, token_set,
token_del, dlq_retry, dlq_drop, and the read-only stats, keys, peek,
dlq_list, dlq_show), driven directly with redis-py against a real
redis-server, together with the worker's scripts (enqueue, settle). After
every step the invariants of docs/queue-semantics.md are checked."""
import time

from harness import RedisServer, Suite, lua_script

P = "{hookq:0}:"
WAKE = P + "wake"  # the shard's wake channel, in the shard's slot
suite = Suite("admin_scripts")


class WakeSub:
    """The shard's wake channel as the worker hears it on Redis 7: SSUBSCRIBE
    (redis-py 4.3 has no ssubscribe: the commands go over a connection of
    our own)."""

    def __init__(self, r):
        self.c = r.connection_pool.make_connection()
        self.c.send_command("SSUBSCRIBE", WAKE)
        assert self.c.read_response() == [b"ssubscribe", WAKE.encode(), 1]

    def get(self, timeout=1.0):
        """The next push, or None when none came within `timeout`."""
        return self.c.read_response() if self.c.can_read(timeout=timeout) else None

    def close(self):
        self.c.disconnect()


def s(v):
    return v.decode() if isinstance(v, bytes) else v


class Q:
    NAMES = ["enqueue", "settle", "hold", "release", "release_customer", "token_set",
             "token_del", "dlq_retry", "dlq_drop", "dlq_list", "dlq_show", "stats",
             "keys", "peek"]

    def __init__(self, r):
        self.r = r
        self.sc = {n: r.register_script(lua_script(n)) for n in self.NAMES}

    def run(self, name, *args):
        out = self.sc[name](keys=[P], args=list(args))
        check_invariants(self.r)
        return out

    def push(self, cust, code, body="b"):
        st, jid, seq = self.run("enqueue", 0, 86400000, cust, code, body, "", "")
        assert st == 0
        return s(jid)

    def settle(self, ops=(), claim=0, lease=30000):
        args = [lease, claim, len(ops)]
        for op in ops:
            op = list(op) + [0, "", ""][len(op) - 3:]
            args += op
        res, claimed, now, due = self.run("settle", *args)
        out = []
        for i in range(0, len(claimed), 5):
            key, cust, tok, att, rec = claimed[i:i + 5]
            f = rec.split(b"\n", 4)
            out.append(dict(key=s(key), token=s(tok), attempt=att, id=s(f[0]),
                            seq=int(f[1]), body=s(f[4])))
        return list(res), out

    def state(self, key):
        return s(self.r.hget(P + "m:" + key, "st") or b"idle")

    def rk(self, cust):
        return [s(k) for k in self.r.lrange(P + "rk:" + cust, 0, -1)]

    def drain(self, n=100):
        """Claim and complete jobs one by one; return (key, body) in run order."""
        ran = []
        for _ in range(n):
            _, got = self.settle(claim=1)
            if not got:
                return ran
            g = got[0]
            ran.append((g["key"], g["body"]))
            self.settle([("done", g["key"], g["token"])])
        return ran


def check_invariants(r):
    """docs/queue-semantics.md, invariants 1 and 2, and the held sets."""
    keys = set()
    for k in r.scan_iter(match=P + "q:*", count=1000):
        keys.add(s(k)[len(P) + 2:])
    metas = set(s(k)[len(P) + 2:] for k in r.scan_iter(match=P + "m:*", count=1000))
    assert metas == keys, "meta without jobs or jobs without meta: %r" % (metas ^ keys)
    rc = [s(c) for c in r.lrange(P + "rc", 0, -1)]
    assert len(rc) == len(set(rc)), "customer twice in rc: %r" % rc
    rk_custs = set(s(k)[len(P) + 3:] for k in r.scan_iter(match=P + "rk:*", count=1000))
    assert set(rc) == rk_custs, "rc %r vs non-empty rk %r" % (rc, rk_custs)
    ready = {}
    for c in rc:
        for k in r.lrange(P + "rk:" + c, 0, -1):
            k = s(k)
            assert k not in ready, "key twice in ready: " + k
            ready[k] = c
    active = set(s(k) for k in r.zrange(P + "leases", 0, -1))
    if active:
        # The pin keeps the ZSET a skiplist; it goes with the last lease.
        assert "-" * 65 in active and len(active) > 1, active
        assert r.zscore(P + "leases", "-" * 65) == float("inf")
        assert s(r.object("encoding", P + "leases")) == "skiplist"
        active.discard("-" * 65)
    parked = set(s(k) for k in r.zrange(P + "parked", 0, -1))
    held = {s(k): s(v) for k, v in r.hgetall(P + "held").items()}
    hc = {s(k): s(v) for k, v in r.hgetall(P + "hc").items()}
    for k in keys:
        where = [n for n, group in (("ready", ready), ("active", active),
                                    ("parked", parked), ("held", held)) if k in group]
        assert len(where) == 1, "key %s is in %r" % (k, where)
        m = {s(a): s(b) for a, b in r.hgetall(P + "m:" + k).items()}
        assert m["st"] == where[0], "key %s: st %s but in %s" % (k, m["st"], where[0])
        cust = m["c"]
        if where[0] == "ready":
            assert ready[k] == cust
        if where[0] == "held":
            assert r.sismember(P + "hk:" + cust, k), "held key %s not in hk" % k
            assert m["why"] == held[k]
            if m.get("cw") == "1":
                assert cust in hc and hc[cust] == m["why"], "cw key %s of a free customer" % k
        elif cust in hc:
            # Keys of a held customer are held, except those still active
            # or parked (held when next scheduled) or released one by one.
            pass
    for k in held:
        assert k in keys, "held key %s has no jobs" % k
    pin = "-" * 65
    depth = {s(k): int(v) for k, v in r.zrange(P + "depth", 0, -1, withscores=True)
             if s(k) != pin}
    if depth:
        # The pin keeps `depth` a skiplist while any key has jobs, and goes
        # with the last key.
        assert r.zscore(P + "depth", pin) == float("-inf"), "depth index lost its pin"
    else:
        assert not r.exists(P + "depth"), "depth pin left behind"
    lens = {k: r.llen(P + "q:" + k) for k in keys}
    assert depth == lens, "depth index %r, lists %r" % (depth, lens)
    total = sum(lens.values())
    st = {s(k): int(v) for k, v in r.hgetall(P + "stats").items()}
    jobs = st.get("accepted", 0) + st.get("dlq_retried", 0) - st.get("done", 0) - st.get("deadlettered", 0)
    assert jobs == total, "counters say %d queued jobs, lists hold %d" % (jobs, total)
    for hkey in r.scan_iter(match=P + "hk:*", count=1000):
        for k in r.smembers(hkey):
            assert s(k) in held, "hk lists %s which is not held" % s(k)


def fresh():
    srv = RedisServer()
    return srv, Q(srv.client())


@suite.test
def hold_of_a_ready_key_takes_it_out_of_the_ring_and_release_puts_it_first():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        q.push("c", "a", "a1")
        q.push("c", "b", "b0")
        assert q.run("hold", "c:a", "operator") == [1, b"ready"]
        assert q.state("c:a") == "held" and q.rk("c") == ["c:b"]
        assert q.run("hold", "c:a", "other") == [2, b"operator"]
        assert q.r.hget(P + "held", "c:a") == b"operator"
        # While held, only c:b runs.
        assert q.drain() == [("c:b", "b0")]
        sub = WakeSub(q.r)
        assert q.run("release", "c:a") == [1, b"operator"]
        assert sub.get() == [b"smessage", WAKE.encode(), b"1"]
        sub.close()
        assert q.state("c:a") == "ready"
        assert q.r.hget(P + "m:c:a", "why") is None
        assert q.drain() == [("c:a", "a0"), ("c:a", "a1")]


@suite.test
def release_puts_the_key_in_front_of_its_customers_other_keys():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        q.push("c", "b", "b0")
        q.push("c", "c", "c0")
        q.run("hold", "c:c", "operator")
        q.run("release", "c:c")
        assert q.rk("c") == ["c:c", "c:a", "c:b"]


@suite.test
def hold_of_an_idle_key_does_nothing_and_release_of_a_free_key_says_so():
    srv, q = fresh()
    with srv:
        assert q.run("hold", "c:none", "operator") == [0, b""]
        assert not q.r.exists(P + "m:c:none")
        assert q.run("release", "c:none") == [0, b""]
        q.push("c", "a")
        assert q.run("release", "c:a") == [3, b"ready"]


@suite.test
def hold_of_a_parked_key_and_release_makes_it_ready_at_once():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        _, got = q.settle(claim=1)
        q.settle([("retry", "c:a", got[0]["token"], 60000, "", "boom")])
        assert q.state("c:a") == "parked"
        assert q.run("hold", "c:a", "operator") == [1, b"parked"]
        assert q.r.zscore(P + "parked", "c:a") is None
        q.run("release", "c:a")
        # Released: the head job has a fresh count of attempts (DESIGN §3.4
        # step 5); its last error stays for the operator.
        assert q.r.hget(P + "m:c:a", "a") is None
        assert q.r.hget(P + "m:c:a", "err") == b"boom"
        _, got = q.settle(claim=1)
        assert got[0]["body"] == "a0" and got[0]["attempt"] == 1


@suite.test
def hold_of_an_active_key_takes_effect_when_its_job_settles():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        q.push("c", "a", "a1")
        _, got = q.settle(claim=1)
        assert q.run("hold", "c:a", "operator") == [3, b""]
        assert q.state("c:a") == "active"
        q.settle([("done", "c:a", got[0]["token"])])
        assert q.state("c:a") == "held"
        assert q.r.hget(P + "held", "c:a") == b"operator"
        assert q.r.hget(P + "m:c:a", "ha") is None
        assert q.drain() == []
        q.run("release", "c:a")
        assert q.drain() == [("c:a", "a1")]


@suite.test
def hold_of_an_active_key_that_retries_or_parks_holds_it_at_once():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        q.push("c", "b", "b0")
        _, got = q.settle(claim=2)
        q.run("hold", "c:a", "operator")
        q.run("hold", "c:b", "operator")
        byk = {g["key"]: g for g in got}
        q.settle([("retry", "c:a", byk["c:a"]["token"], 60000, "", "boom"),
                  ("park", "c:b", byk["c:b"]["token"], 60000)])
        assert q.state("c:a") == "held" and q.state("c:b") == "held"
        assert q.r.zcard(P + "parked") == 0
        assert q.r.hget(P + "m:c:a", "a") == b"1"
        q.run("release", "c:a")
        _, got = q.settle(claim=1)
        assert got[0]["key"] == "c:a" and got[0]["attempt"] == 1


@suite.test
def release_of_an_active_key_cancels_its_pending_hold():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        q.push("c", "a", "a1")
        _, got = q.settle(claim=1)
        q.run("hold", "c:a", "operator")
        assert q.run("release", "c:a") == [2, b""]
        assert q.run("release", "c:a") == [3, b"active"]
        q.settle([("done", "c:a", got[0]["token"])])
        assert q.state("c:a") == "ready"


@suite.test
def token_set_resumes_a_customer_held_for_its_token_in_order():
    srv, q = fresh()
    with srv:
        # Heads: c:b's job first, then c:a's, then c:c's.
        q.push("c", "b", "b0")
        q.push("c", "a", "a0")
        q.push("c", "a", "a1")
        q.push("c", "c", "c0")
        q.push("other", "x", "x0")
        _, got = q.settle(claim=1)
        assert got[0]["key"] == "c:b"
        q.settle([("hold", "c:b", got[0]["token"], 1, "token-invalid", "401")])
        assert q.r.hget(P + "hc", "c") == b"token-invalid"
        assert {q.state(k) for k in ("c:a", "c:b", "c:c")} == {"held"}
        # An operator's own hold survives the token.
        q.run("hold", "c:c", "operator")
        # New jobs of the held customer wait too.
        q.push("c", "d", "d0")
        assert q.state("c:d") == "held"
        assert q.drain() == [("other:x", "x0")]
        released, reason = q.run("token_set", "c", "tok-2")
        assert (released, reason) == (3, b"token-invalid")
        assert q.r.hget(P + "tok", "c") == b"tok-2"
        assert q.r.hget(P + "hc", "c") is None
        assert q.state("c:c") == "held"
        assert q.rk("c") == ["c:b", "c:a", "c:d"]
        ran = q.drain()
        assert [b for _, b in ran] == ["b0", "a0", "d0", "a1"], ran


@suite.test
def token_set_leaves_a_customer_held_for_another_reason_held():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        _, got = q.settle(claim=1)
        q.settle([("hold", "c:a", got[0]["token"], 1, "failed", "boom")])
        assert q.run("token_set", "c", "t") == [0, b"failed"]
        assert q.state("c:a") == "held" and q.r.hget(P + "hc", "c") == b"failed"
        assert q.r.hget(P + "tok", "c") == b"t"


@suite.test
def token_set_on_a_free_customer_only_stores_the_token_and_del_removes_it():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        assert q.run("token_set", "c", "t1") == [0, b""]
        assert q.run("token_set", "c", "t2") == [0, b""]
        assert q.r.hget(P + "tok", "c") == b"t2"
        assert q.run("token_del", "c") == 1
        assert q.run("token_del", "c") == 0
        assert q.r.hget(P + "tok", "c") is None


@suite.test
def release_customer_frees_the_keys_held_with_it_only():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        q.push("c", "b", "b0")
        _, got = q.settle(claim=1)
        q.settle([("hold", got[0]["key"], got[0]["token"], 1, "failed", "boom")])
        q.push("c", "z", "z0")
        q.run("hold", "c:b", "operator")
        assert q.run("release_customer", "c") == [2, b"failed"]
        assert q.state("c:a") == "ready" and q.state("c:z") == "ready"
        assert q.state("c:b") == "held"
        assert q.run("release_customer", "c") == [0, b""]


@suite.test
def release_customer_frees_the_keys_held_for_its_token():
    """A 401 or a missing token holds only the key (no `hc` entry):
    release_customer still frees those keys, oldest head job first."""
    srv, q = fresh()
    with srv:
        q.push("c", "b", "b0")
        q.push("c", "a", "a0")
        q.push("c", "a", "a1")
        q.push("c", "z", "z0")
        byk = {}
        for _ in range(3):
            _, got = q.settle(claim=1)
            byk[got[0]["key"]] = got[0]["token"]
        assert set(byk) == {"c:a", "c:b", "c:z"}
        q.settle([("hold", "c:b", byk["c:b"], 0, "token-invalid", "401"),
                  ("hold", "c:a", byk["c:a"], 0, "no-token", ""),
                  ("hold", "c:z", byk["c:z"], 0, "failed", "boom")], claim=0)
        assert q.r.hget(P + "hc", "c") is None
        assert {k: q.state(k) for k in ("c:a", "c:b", "c:z")} == \
            {"c:a": "held", "c:b": "held", "c:z": "held"}
        assert q.run("release_customer", "c") == [2, b""]
        assert q.state("c:z") == "held"
        assert q.rk("c") == ["c:b", "c:a"]
        assert [b for _, b in q.drain()] == ["b0", "a0", "a1"]


@suite.test
def dlq_retry_puts_the_record_at_the_tail_of_a_busy_key():
    srv, q = fresh()
    with srv:
        a0 = q.push("c", "a", "a0")
        q.push("c", "a", "a1")
        _, got = q.settle(claim=1)
        q.settle([("dead", "c:a", got[0]["token"], 8, "", "http 500")])
        assert q.r.lrange(P + "dlq", 0, -1) == [a0.encode()]
        out = q.run("dlq_retry", a0)
        assert out == [a0.encode(), b"c:a"]
        assert q.r.llen(P + "dlq") == 0 and not q.r.exists(P + "dl:" + a0)
        ran = []
        for _ in range(3):
            _, got = q.settle(claim=1)
            if not got:
                break
            ran.append((got[0]["id"], got[0]["seq"], got[0]["body"], got[0]["attempt"]))
            q.settle([("done", "c:a", got[0]["token"])])
        # Same id and seq, after the key's newer job, attempts counted anew.
        assert ran == [(ran[0][0], 2, "a1", 1), (a0, 1, "a0", 1)], ran


@suite.test
def dlq_retry_schedules_an_idle_key_or_holds_it_with_its_customer():
    srv, q = fresh()
    with srv:
        a0 = q.push("c", "a", "a0")
        b0 = q.push("h", "b", "b0")
        for _ in range(2):
            _, got = q.settle(claim=1)
            q.settle([("dead", got[0]["key"], got[0]["token"], 3, "", "x")])
        assert q.state("c:a") == "idle" and q.state("h:b") == "idle"
        q.r.hset(P + "hc", "h", "no-token")
        sub = WakeSub(q.r)
        assert len(q.run("dlq_retry", a0, b0, "0-999")) == 4
        assert sub.get() == [b"smessage", WAKE.encode(), b"1"]
        sub.close()
        assert q.state("c:a") == "ready"
        assert q.state("h:b") == "held" and q.r.hget(P + "m:h:b", "cw") == b"1"
        assert q.run("dlq_retry", a0) == []


@suite.test
def dlq_drop_deletes_and_reports_only_what_existed():
    srv, q = fresh()
    with srv:
        a0 = q.push("c", "a", "a0")
        _, got = q.settle(claim=1)
        q.settle([("dead", "c:a", got[0]["token"], 1, "", "x")])
        assert q.run("dlq_drop", a0, "0-12345") == [a0.encode(), b"c:a"]
        assert q.r.llen(P + "dlq") == 0 and not q.r.exists(P + "dl:" + a0)
        assert q.run("dlq_drop", a0) == []


@suite.test
def dlq_list_and_show_give_the_fields_and_the_last_error():
    srv, q = fresh()
    with srv:
        a0 = q.push("c", "a", "line1\nline2")
        _, got = q.settle(claim=1)
        q.settle([("dead", "c:a", got[0]["token"], 8, "", "http 500: oops")])
        out = q.run("dlq_list", 0, 10)
        assert out[0] == 1
        assert out[1:4] == [a0.encode(), b"c:a", 1] and out[4] == 8
        assert out[5] > 1e12 and out[6] > 1e12 and out[7] == b"http 500: oops"
        d = q.run("dlq_show", a0)
        assert d[0] == b"c:a" and d[1] == b"c" and d[3] == b"http 500: oops" and d[4] == 8
        assert d[2].split(b"\n", 4)[4] == b"line1\nline2"
        assert q.run("dlq_show", "0-999") == []


@suite.test
def stats_keys_and_peek_count_what_is_there():
    srv, q = fresh()
    with srv:
        for i in range(5):
            q.push("big", "e", "big%d" % i)
        for c in ("c1", "c2", "c3"):
            q.push(c, "e", c)
        q.push("c1", "f", "f0")
        _, got = q.settle(claim=1)           # big:e active
        assert got[0]["key"] == "big:e"
        q.run("hold", "c2:e", "operator")
        _, got2 = q.settle(claim=1)          # c1:e active
        q.settle([("retry", got2[0]["key"], got2[0]["token"], 60000, "", "slow")])
        st = q.run("stats")
        ready_c, ready_k, active, parked, held, held_c, dlq = st[:7]
        assert (ready_c, ready_k, active, parked, held, held_c, dlq) == (2, 2, 1, 1, 1, 0, 0), st
        counters = dict(zip(st[9][::2], st[9][1::2]))
        assert counters[b"accepted"] == b"9" and counters[b"held"] == b"1"
        k = q.run("keys", "", 2, 10000)
        assert k[0] == 5 and k[1] == 5
        assert k[3:10] == [b"big:e", b"active", 5, 0, k[7], b"", b""]
        assert k[7] > 1e12
        assert len(k) == 3 + 2 * 7
        k = q.run("keys", "held", 10, 10000)
        assert k[0] == 1 and k[3:10] == [b"c2:e", b"held", 1, 0, -1, b"operator", b""]
        k = q.run("keys", "parked", 10, 10000)
        assert k[3:5] == [b"c1:e", b"parked"] and k[6] == 1 and k[9] == b"slow"
        # The walk for one state stops after `limit` keys (the deepest
        # first) and says so when it may have missed some.
        k = q.run("keys", "ready", 10, 1)
        assert k[0] == 2 and k[1] < k[0] and len(k) == 3
        k = q.run("keys", "ready", 1, 10000)
        assert k[0] == 2 and k[1] == 2 and k[3:6] == [b"c3:e", b"ready", 1]
        p = q.run("peek", "big:e", 2)
        assert p[0] == b"active" and p[1] == 5 and len(p[7]) == 2
        assert p[7][0].split(b"\n")[4] == b"big0"
        p = q.run("peek", "nope:e", 2)
        assert p[0] == b"" and p[1] == 0 and p[7] == []


@suite.test
def a_key_made_ready_is_announced_with_spublish_on_the_shards_channel():
    srv, q = fresh()
    with srv:
        sub = WakeSub(q.r)
        plain = q.r.pubsub()
        plain.subscribe(WAKE)
        assert plain.get_message(timeout=1)["type"] == "subscribe"
        q.push("c", "a", "a0")
        assert sub.get() == [b"smessage", WAKE.encode(), b"1"]
        # Sharded only: a plain subscriber hears nothing (the cluster tests
        # check that the channel lives on the shard's master).
        assert plain.get_message(timeout=0.3) is None
        plain.close()
        sub.close()


@suite.test
def without_spublish_the_wake_goes_out_with_publish():
    # Redis 6 has no SPUBLISH: a server with the command renamed away
    # answers the same "unknown command".
    srv = RedisServer(extra=["--rename-command", "SPUBLISH", ""])
    with srv:
        q = Q(srv.client())
        plain = q.r.pubsub()
        plain.subscribe(WAKE)
        assert plain.get_message(timeout=1)["type"] == "subscribe"
        q.push("c", "a", "a0")
        m = plain.get_message(timeout=1)
        assert m and m["type"] == "message" and m["data"] == b"1", m
        plain.close()


suite.run()
