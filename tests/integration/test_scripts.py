"""The Redis scripts' contract (docs/queue-semantics.md), driven directly
with redis-py against a real redis-server: enqueue, settle (claim, done,
retry, park, dead, hold, renew, release), reap, fencing and fairness."""
import time

from harness import RedisServer, Suite, lua_script, webhook_digest

P = "{hookq:0}:"
suite = Suite("scripts")


class Q:
    def __init__(self, r):
        self.r = r
        self.enq = r.register_script(lua_script("enqueue"))
        self.set = r.register_script(lua_script("settle"))
        self.rp = r.register_script(lua_script("reap"))

    def push(self, cust, code, body="b", whid="", depth=0, ttl=86400000):
        st, jid, seq = self.enq(keys=[P], args=[depth, ttl, cust, code, body, whid,
                                                webhook_digest(whid)])
        return st, jid.decode(), seq

    def settle(self, ops=(), claim=0, lease=30000):
        args = [lease, claim, len(ops)]
        for op in ops:
            typ, key, tok = op[0], op[1], op[2]
            n = op[3] if len(op) > 3 else 0
            reason = op[4] if len(op) > 4 else ""
            err = op[5] if len(op) > 5 else ""
            args += [typ, key, tok, n, reason, err]
        res, claimed, now, due = self.set(keys=[P], args=args)
        out = []
        for i in range(0, len(claimed), 5):
            key, cust, tok, att, rec = claimed[i:i + 5]
            f = rec.split(b"\n", 4)
            out.append(dict(key=key.decode(), customer=cust.decode(), token=tok.decode(),
                            attempt=att, id=f[0].decode(), seq=int(f[1]),
                            received=int(f[2]), whid=f[3].decode(), body=f[4]))
        return list(res), out, now, due

    def state(self, key):
        v = self.r.hget(P + "m:" + key, "st")
        return v.decode() if v else "idle"


def fresh():
    srv = RedisServer()
    return srv, Q(srv.client())


@suite.test
def enqueue_gives_ids_and_per_key_seq_and_stores_the_body_as_is():
    srv, q = fresh()
    with srv:
        a = q.push("c1", "post-create", '{"x":1}\nline2')
        b = q.push("c1", "post-create", "2")
        c = q.push("c2", "post-create", "3")
        assert a[0] == 0 and b[0] == 0 and c[0] == 0
        assert (a[2], b[2], c[2]) == (1, 2, 1)
        assert len({a[1], b[1], c[1]}) == 3
        _, got, _, _ = q.settle(claim=10)
        byk = {g["key"]: g for g in got}
        assert byk["c1:post-create"]["body"] == b'{"x":1}\nline2'
        assert byk["c1:post-create"]["seq"] == 1 and byk["c1:post-create"]["attempt"] == 1


@suite.test
def seq_keeps_growing_after_the_key_went_idle():
    srv, q = fresh()
    with srv:
        q.push("c", "e")
        _, got, _, _ = q.settle(claim=1)
        q.settle([("done", "c:e", got[0]["token"])])
        assert q.state("c:e") == "idle"
        assert q.push("c", "e")[2] == 2


@suite.test
def dedup_answers_the_first_id_and_stores_nothing():
    srv, q = fresh()
    with srv:
        a = q.push("c", "e", whid="w1")
        b = q.push("c", "e", whid="w1")
        assert b[0] == 1 and b[1] == a[1]
        assert q.r.llen(P + "q:c:e") == 1


def dd_hashes(c):
    """The dedup hashes of shard 0: {name: encoding}."""
    return {k: c.object("encoding", k) for k in c.scan_iter(match=P + "dd:*", count=1000)}


@suite.test
def dedup_remembers_an_id_at_least_the_ttl_and_at_most_a_tenth_longer():
    # dedup_ttl 1 s: a window of 500 ms per generation, so the id is looked
    # up across generations as it ages. Every push of the same webhook-id
    # answers duplicate until the ttl has passed; the first one stored again
    # comes within a tenth of the ttl after it.
    srv, q = fresh()
    ttl = 1000
    with srv:
        t0 = time.monotonic()
        st, first, _ = q.push("c", "e", whid="w-ttl", ttl=ttl)
        t1 = time.monotonic()
        assert st == 0
        while True:
            a = time.monotonic()
            st, jid, _ = q.push("c", "e", whid="w-ttl", ttl=ttl)
            b = time.monotonic()
            if st == 0:
                break
            assert st == 1 and jid == first
            # Answered duplicate although the ttl had passed for sure.
            assert a < t1 + ttl * 1.1 / 1000, "remembered %.0f ms" % ((a - t1) * 1000)
            q.push("c", "other", whid="filler-%f" % a, ttl=ttl)  # more generations
            time.sleep(0.01)
        # Stored again: the ttl had passed by the end of that call.
        assert b >= t0 + ttl / 1000, "forgotten after %.0f ms" % ((b - t0) * 1000)
        assert jid != first


@suite.test
def dedup_never_takes_one_id_for_another_that_shares_its_first_bytes():
    srv, q = fresh()
    with srv:
        head = "msg_" + "x" * 200
        ids = {}
        for k in range(300):
            st, jid, _ = q.push("c", "e", whid="%s%03d" % (head, k))
            assert st == 0, k
            ids[k] = jid
        st, jid, _ = q.push("c", "e", whid=head + "a")
        assert st == 0
        for k in (0, 1, 150, 299):
            assert q.push("c", "e", whid="%s%03d" % (head, k)) == (1, ids[k], 0)
        assert q.r.llen(P + "q:c:e") == 301
        # The script compares the whole 128-bit digest: two that differ only
        # in their last bit (so in one hash) are two ids.
        d1 = bytes(range(16))
        d2 = d1[:15] + bytes([d1[15] ^ 1])
        got = [q.enq(keys=[P], args=[0, 86400000, "c", "e", "b", whid, d])
               for whid, d in (("x1", d1), ("x2", d2), ("x1", d1), ("x2", d2))]
        assert [g[0] for g in got] == [0, 0, 1, 1]
        assert got[2][1] == got[0][1] and got[3][1] == got[1][1] != got[0][1]


@suite.test
def dedup_keeps_ids_in_small_listpack_hashes_under_40_bytes_each():
    srv, q = fresh()
    with srv:
        c = srv.client()
        before = c.info("memory")["used_memory"]
        n = 0
        for b in range(200):
            got = push_batch(q, [("c%d" % (j % 50), "e", "", "wh-%d-%d" % (b, j)) for j in range(100)])
            n += len(got)
            assert all(g[0] == 0 for g in got)
        # The queue itself goes: what is left is what dedup holds.
        for k in c.scan_iter(match=P + "q:*", count=1000):
            c.delete(k)
        hashes = dd_hashes(c)
        assert hashes and set(hashes.values()) == {b"listpack"}, set(hashes.values())
        held = sum(c.memory_usage(k, samples=0) for k in hashes)
        assert held / n <= 40, "%.1f bytes per id in the hashes" % (held / n)
        assert q.push("c0", "e", whid="wh-7-7")[0] == 1


@suite.test
def dedup_deletes_a_generation_whole_once_its_ids_are_forgotten():
    srv, q = fresh()
    with srv:
        c = srv.client()
        for j in range(500):
            q.push("c", "e", whid="old-%d" % j, ttl=1000)
        old = set(dd_hashes(c))
        assert old
        time.sleep(1.5)  # the ttl, the window and its last slot have passed
        q.push("c", "e", whid="new", ttl=1000)
        assert not old & set(dd_hashes(c))
        assert q.push("c", "e", whid="old-1", ttl=1000)[0] == 0


@suite.test
def dedup_reads_the_generations_list_in_binary_and_in_the_older_decimal_text():
    import struct
    srv, q = fresh()
    with srv:
        c = srv.client()
        first = q.push("c", "e", whid="w-up")
        raw = c.get(P + "dd")
        # Big-endian doubles: the next generation number, then six per
        # generation.
        assert len(raw) % 8 == 0 and (len(raw) // 8 - 1) % 6 == 0
        nums = struct.unpack(">%dd" % (len(raw) // 8), raw)
        assert nums[0] == 2 and nums[1] == 1
        # A Redis written before the binary list keeps its ids remembered.
        c.set(P + "dd", " ".join("%d" % x for x in nums))
        assert q.push("c", "e", whid="w-up") == (1, first[1], 0)
        assert q.push("c", "e", whid="w-new")[0] == 0
        assert q.push("c", "e", whid="w-new")[0] == 1
        assert q.push("c", "e", whid="w-up") == (1, first[1], 0)


@suite.test
def depth_cap_counts_the_job_in_flight():
    srv, q = fresh()
    with srv:
        assert q.push("c", "e", depth=2)[0] == 0
        q.settle(claim=1)
        assert q.push("c", "e", depth=2)[0] == 0
        assert q.push("c", "e", depth=2)[0] == 2
        assert q.r.llen(P + "q:c:e") == 2


def push_batch(q, jobs, depth=0, ttl=86400000):
    """One enqueue call for every (customer, code, body, whid) of `jobs`."""
    args = [depth, ttl]
    for j in jobs:
        args += list(j) + [webhook_digest(j[3])]
    out = q.enq(keys=[P], args=args)
    return [(out[i], out[i + 1].decode(), out[i + 2]) for i in range(0, len(out), 3)]


@suite.test
def a_batch_keeps_argument_order_per_key_and_answers_each_job():
    srv, q = fresh()
    with srv:
        q.push("c1", "a", "before")
        got = push_batch(q, [("c1", "a", "a1", ""), ("c2", "b", "b1", ""),
                             ("c1", "a", "a2", ""), ("c2", "b", "b2", ""),
                             ("c1", "a", "a3", "")])
        assert [g[0] for g in got] == [0] * 5
        assert [g[2] for g in got] == [2, 1, 3, 2, 4]
        assert len({g[1] for g in got}) == 5
        bodies = [x.split(b"\n", 4)[4] for x in srv.client().lrange(P + "q:c1:a", 0, -1)]
        assert bodies == [b"before", b"a1", b"a2", b"a3"]
        seqs = [int(x.split(b"\n", 4)[1]) for x in srv.client().lrange(P + "q:c2:b", 0, -1)]
        assert seqs == [1, 2]
        # Both keys were idle: both are scheduled, each once.
        assert q.state("c1:a") == "ready" and q.state("c2:b") == "ready"
        assert srv.client().llen(P + "rk:c2") == 1
        assert int(srv.client().zscore(P + "depth", "c1:a")) == 4
        assert int(srv.client().hget(P + "stats", "accepted")) == 6


@suite.test
def ids_and_seqs_are_exact_decimals_across_digit_boundaries():
    # The scripts print their numbers themselves (string.format('%d'), not
    # Lua's "%.14g"): every id, seq and token is the exact decimal, past 9,
    # 99, 999 and near 2^40.
    srv, q = fresh()
    with srv:
        got = push_batch(q, [("c%d" % (j % 3), "e", "b", "") for j in range(1105)])
        assert [g[1] for g in got] == ["0-%d" % n for n in range(1, 1106)]
        assert [g[2] for g in got[:12]] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
        assert got[-1][2] == 369
        recs = srv.client().lrange(P + "q:c0:e", 0, -1)
        assert [r.split(b"\n")[0] for r in recs] == [("0-%d" % n).encode() for n in range(1, 1106, 3)]
        assert [int(r.split(b"\n")[1]) for r in recs] == list(range(1, 370))
        srv.client().set(P + "ids", 2 ** 40 - 3)
        got = push_batch(q, [("c0", "e", "b", "w-%d" % j) for j in range(5)])
        assert [g[1] for g in got] == ["0-%d" % (2 ** 40 - 2 + j) for j in range(5)]
        # A duplicate answers its first job's id, printed as exactly.
        assert q.push("c0", "e", whid="w-3") == (1, "0-%d" % (2 ** 40 + 1), 0)
        # Fencing tokens (settle) too, across 99 -> 100.
        srv.client().set(P + "fence", 95)
        _, claimed, _, _ = q.settle(claim=3)
        assert [c["token"] for c in claimed] == ["96", "97", "98"]
        srv.client().set(P + "fence", 98)
        q.push("c9", "e")
        q.push("c8", "e")
        _, claimed, _, _ = q.settle(claim=2)
        assert [c["token"] for c in claimed] == ["99", "100"]


@suite.test
def a_webhook_id_twice_in_one_batch_is_stored_once():
    srv, q = fresh()
    with srv:
        got = push_batch(q, [("c1", "a", "x", "w1"), ("c1", "a", "y", "w1"),
                             ("c1", "a", "z", "w2")])
        assert got[0][0] == 0 and got[2][0] == 0
        assert got[1] == (1, got[0][1], 0)
        assert srv.client().llen(P + "q:c1:a") == 2
        assert int(srv.client().hget(P + "stats", "duplicate")) == 1
        # A key whose only job is a duplicate does not enter the depth index.
        got = push_batch(q, [("c9", "z", "y", "w2")])
        assert got == [(1, got[0][1], 0)]
        assert srv.client().zscore(P + "depth", "c9:z") is None
        assert srv.client().zscore(P + "depth", "c1:a") == 2


@suite.test
def a_batch_fills_a_key_to_its_cap_and_a_refused_job_keeps_no_webhook_id():
    srv, q = fresh()
    with srv:
        q.push("c1", "a", "1", depth=3)
        got = push_batch(q, [("c1", "a", "2", "w2"), ("c1", "a", "3", "w3"),
                             ("c1", "a", "4", "w4"), ("c1", "a", "4b", "w4"),
                             ("c2", "a", "other", "w5")], depth=3)
        assert [g[0] for g in got] == [0, 0, 2, 2, 0]
        assert [g[2] for g in got] == [2, 3, 0, 0, 1]
        assert srv.client().llen(P + "q:c1:a") == 3
        # The refused job left no trace of its webhook-id: once there is
        # room, the sender's retry is stored, not answered as a duplicate.
        assert got[3] == (2, "", 0)
        srv.client().rpop(P + "q:c1:a")
        srv.client().zadd(P + "depth", {"c1:a": 2})
        st, _, seq = q.push("c1", "a", "4", "w4", depth=3)
        assert st == 0 and seq == 4


@suite.test
def the_enqueue_indexes_stay_fast_encodings_and_the_pin_goes_with_the_last_key():
    srv, q = fresh()
    with srv:
        c = srv.client()
        for k in range(5):
            q.push("c%d" % k, "a")
        # Five keys would be listpacks (a scan per write); the pin makes them
        # a skiplist and a hash table.
        assert c.object("encoding", P + "depth") == b"skiplist"
        assert c.object("encoding", P + "seq") == b"hashtable"
        assert c.zcard(P + "depth") == 6
        for _ in range(5):
            _, got, _, _ = q.settle(claim=1)
            q.settle([("done", got[0]["key"], got[0]["token"])])
        assert not c.exists(P + "depth")
        assert q.push("c0", "a")[2] == 2  # seq survives the idle key


@suite.test
def enqueue_refuses_malformed_arguments():
    srv, q = fresh()
    with srv:
        for args in ([0, 1000], [0, 1000, "c", "a", "b"], ["x", 1000, "c", "a", "b", "", ""],
                     [0, "1h", "c", "a", "b", "", ""]):
            try:
                q.enq(keys=[P], args=args)
            except Exception as e:
                assert "enqueue: ARGV" in str(e), e
            else:
                raise AssertionError("accepted %r" % (args,))
        assert srv.client().dbsize() == 0
        # A webhook id without its 16-byte digest is refused before anything
        # is written.
        for dig in ("", "short"):
            try:
                q.enq(keys=[P], args=[0, 1000, "c", "a", "b", "wh", dig])
            except Exception as e:
                assert "needs its 16-byte digest" in str(e), e
            else:
                raise AssertionError("accepted digest %r" % dig)
        assert srv.client().dbsize() == 0


@suite.test
def a_leased_key_is_not_claimed_again_and_done_moves_to_the_next_job():
    srv, q = fresh()
    with srv:
        for i in range(3):
            q.push("c", "e", str(i))
        _, got, _, _ = q.settle(claim=5)
        assert len(got) == 1 and got[0]["body"] == b"0"
        _, again, _, _ = q.settle(claim=5)
        assert again == []
        res, nxt, _, _ = q.settle([("done", "c:e", got[0]["token"])], claim=5)
        assert res == [1] and nxt[0]["body"] == b"1" and nxt[0]["seq"] == 2


@suite.test
def a_stale_token_changes_nothing():
    srv, q = fresh()
    with srv:
        q.push("c", "e", "0")
        q.push("c", "e", "1")
        _, got, _, _ = q.settle(claim=1)
        tok = got[0]["token"]
        res, _, _, _ = q.settle([("done", "c:e", str(int(tok) + 1))])
        assert res == [0]
        assert q.r.llen(P + "q:c:e") == 2 and q.state("c:e") == "active"
        assert int(q.r.hget(P + "stats", "stale")) == 1


@suite.test
def reap_puts_the_key_in_front_and_fences_the_old_holder():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        q.push("c", "a", "a1")
        q.push("c", "b", "b0")
        _, got, _, _ = q.settle(claim=1, lease=50)
        assert got[0]["key"] == "c:a"
        time.sleep(0.1)
        assert q.rp(keys=[P], args=[10]) == 1
        assert q.state("c:a") == "ready"
        assert q.r.lrange(P + "rk:c", 0, -1)[0] == b"c:a"
        res, got2, _, _ = q.settle([("done", "c:a", got[0]["token"])], claim=1)
        assert res == [0]
        assert got2[0]["key"] == "c:a" and got2[0]["body"] == b"a0" and got2[0]["attempt"] == 2


@suite.test
def settle_reaps_expired_leases_itself():
    srv, q = fresh()
    with srv:
        q.push("c", "a", "a0")
        _, got, _, due = q.settle(claim=1, lease=50)
        assert due > 0
        time.sleep(0.1)
        _, got2, _, _ = q.settle(claim=1)
        assert got2[0]["body"] == b"a0" and got2[0]["token"] != got[0]["token"]


@suite.test
def retry_parks_with_attempt_counted_and_park_does_not_count():
    srv, q = fresh()
    with srv:
        q.push("c", "e", "x")
        _, got, _, _ = q.settle(claim=1)
        res, none, now, due = q.settle([("retry", "c:e", got[0]["token"], 150, "", "boom")], claim=1)
        assert res == [1] and none == [] and q.state("c:e") == "parked"
        assert 140 <= due - now <= 160
        time.sleep(0.2)
        _, got2, _, _ = q.settle(claim=1)
        assert got2[0]["attempt"] == 2
        q.settle([("park", "c:e", got2[0]["token"], 100)])
        time.sleep(0.15)
        _, got3, _, _ = q.settle(claim=1)
        assert got3[0]["attempt"] == 2
        assert q.r.hget(P + "m:c:e", "err") == b"boom"


@suite.test
def dead_letters_the_head_keeps_the_error_and_goes_on():
    srv, q = fresh()
    with srv:
        a = q.push("c", "e", "x")
        q.push("c", "e", "y")
        _, got, _, _ = q.settle(claim=1)
        res, nxt, _, _ = q.settle([("dead", "c:e", got[0]["token"], 8, "", "http 500")], claim=1)
        assert res == [1] and nxt[0]["body"] == b"y" and nxt[0]["attempt"] == 1
        assert q.r.lrange(P + "dlq", 0, -1) == [a[1].encode()]
        dl = q.r.hgetall(P + "dl:" + a[1])
        assert dl[b"error"] == b"http 500" and dl[b"attempts"] == b"8" and dl[b"key"] == b"c:e"


@suite.test
def hold_of_a_customer_holds_its_ready_keys_and_new_ones():
    srv, q = fresh()
    with srv:
        q.push("c", "a")
        q.push("c", "b")
        q.push("d", "a")
        _, got, _, _ = q.settle(claim=1)
        assert got[0]["key"] == "c:a"
        res, nxt, _, _ = q.settle([("hold", "c:a", got[0]["token"], 1, "token-invalid")], claim=5)
        assert res == [1]
        assert [g["key"] for g in nxt] == ["d:a"]
        assert q.state("c:a") == "held" and q.state("c:b") == "held"
        q.push("c", "z")
        assert q.state("c:z") == "held"
        assert q.r.hget(P + "hc", "c") == b"token-invalid"
        assert q.r.smembers(P + "hk:c") == {b"c:a", b"c:b", b"c:z"}


@suite.test
def a_no_token_hold_of_one_key_leaves_the_customer_and_a_token_set_first_voids_it():
    srv, q = fresh()
    with srv:
        q.push("c", "a")
        q.push("c", "b")
        _, got, _, _ = q.settle(claim=2)
        byk = {g["key"]: g for g in got}
        res, _, _, _ = q.settle([("hold", "c:a", byk["c:a"]["token"], 0, "no-token")], claim=0)
        assert res == [1] and q.state("c:a") == "held"
        assert q.r.hget(P + "hc", "c") is None
        q.push("c", "z")
        assert q.state("c:z") == "ready"
        # A token set between the limiter's "no token" and the hold wins:
        # the key runs again at once, no attempt counted.
        q.r.hset(P + "tok", "c", "tok-1")
        res, nxt, _, _ = q.settle([("hold", "c:b", byk["c:b"]["token"], 0, "no-token")],
                                  claim=5)
        assert res == [1] and q.r.hget(P + "held", "c:b") is None
        assert sorted(g["key"] for g in nxt) == ["c:b", "c:z"]
        assert [g["attempt"] for g in nxt] == [1, 1]


@suite.test
def release_hands_the_key_back_in_front_without_an_attempt():
    srv, q = fresh()
    with srv:
        q.push("c", "a")
        q.push("c", "b")
        _, got, _, _ = q.settle(claim=1)
        res, nxt, _, _ = q.settle([("release", "c:a", got[0]["token"])], claim=1)
        assert res == [1] and nxt[0]["key"] == "c:a" and nxt[0]["attempt"] == 1


@suite.test
def renew_extends_the_lease():
    srv, q = fresh()
    with srv:
        q.push("c", "a")
        _, got, _, _ = q.settle(claim=1, lease=100)
        for _ in range(4):
            time.sleep(0.05)
            assert q.settle([("renew", "c:a", got[0]["token"])], lease=100)[0] == [1]
        assert q.state("c:a") == "active"


@suite.test
def claim_is_round_robin_over_customers_then_keys():
    srv, q = fresh()
    with srv:
        # Customer A has three keys with many jobs, B one key, C one key.
        for _ in range(5):
            for k in ("a1", "a2", "a3"):
                q.push("A", k)
        q.push("B", "b1")
        q.push("C", "c1")
        _, got, _, _ = q.settle(claim=5)
        # One key per customer per turn of the ring: A, B, C, then A again.
        assert [g["customer"] for g in got] == ["A", "B", "C", "A", "A"]
        assert [g["key"] for g in got][0] == "A:a1"
        assert [g["key"] for g in got][3:] == ["A:a2", "A:a3"]


@suite.test
def a_big_key_gets_one_turn_like_the_others():
    srv, q = fresh()
    with srv:
        for i in range(1000):
            q.push("big", "e", str(i))
        for i in range(10):
            q.push("small%d" % i, "e")
        served = []
        for _ in range(11):
            _, got, _, _ = q.settle(claim=1)
            served.append(got[0]["customer"])
            q.settle([("done", got[0]["key"], got[0]["token"])])
        assert served.count("big") == 1, served


@suite.test
def unknown_op_is_an_error_and_changes_nothing():
    srv, q = fresh()
    with srv:
        q.push("c", "a")
        _, got, _, _ = q.settle(claim=1)
        try:
            q.settle([("frobnicate", "c:a", got[0]["token"])])
        except Exception as e:
            assert "unknown op" in str(e)
        else:
            raise AssertionError("expected an error")


if __name__ == "__main__":
    suite.run()
