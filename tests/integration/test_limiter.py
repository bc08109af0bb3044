"""The rate limiter's script (src/lib/scripts/limit.lua) against a real
redis-server: strictness under contention from many clients, the lease
check, the token lookup, the 429 push-back and the state's expiry.
docs/queue-semantics.md ("Rate limiter") is the contract."""
import contextlib
import hashlib
import threading
import time

from harness import RedisServer, Suite, lua_script

P = "{hookq:0}:"
EP = "GET /posts/{}"
suite = Suite("limiter")


def rl_key(token, endpoint=EP):
    return P + "rl:" + hashlib.sha1(token.encode()).hexdigest()[:16] + ":" + endpoint


class Lim:
    n = 0

    def __init__(self, r):
        self.r = r
        self.fn = r.register_script(lua_script("limit"))
        self.at = {}

    def take(self, key="c1:post", fence="7", customer="c1", ep=EP, R=2, W=1000, margin=25,
             id=None, lookahead=0):
        Lim.n += 1
        id = id or "%s/%d" % (fence, Lim.n)
        a = self.fn(keys=[P], args=["take", key, fence, customer, ep, R, W, margin, id,
                                    lookahead])
        if a[0] == 1:
            self.at[id] = a[1]
        return a

    def sent(self, token, id, ep=EP, W=1000, margin=25):
        return self.fn(keys=[P], args=["sent", token, ep, id, self.at[id], W, margin])

    def block(self, token, delay, ep=EP, R=2, W=1000, margin=25):
        return self.fn(keys=[P], args=["block", token, ep, delay, R, W, margin])


def lease(r, key="c1:post", fence="7", customer="c1", token="tok-1"):
    r.hset(P + "m:" + key, mapping={"st": "active", "tok": fence, "c": customer})
    if token is not None:
        r.hset(P + "tok", customer, token)


@contextlib.contextmanager
def leased():
    """A redis-server whose key c1:post is leased (fence 7, customer c1 with
    token tok-1): (its client, a Lim on it)."""
    with RedisServer() as rs:
        r = rs.client()
        lim = Lim(r)
        lease(r)
        yield r, lim


def redis_ms(r):
    s, us = r.time()
    return s * 1000 + us // 1000


@suite.test
def take_checks_the_lease_and_the_token_before_any_budget():
    with RedisServer() as rs:
        r = rs.client()
        lim = Lim(r)
        lease(r, token=None)
        assert lim.take(fence="8") == [-1], "a stale fence must be refused"
        r.hset(P + "m:c1:post", "st", "parked")
        assert lim.take() == [-1], "a key that is not active must be refused"
        r.hset(P + "m:c1:post", "st", "active")
        assert lim.take() == [-2], "no token"
        r.hset(P + "tok", "c1", "tok-1")
        got = lim.take()
        assert got[0] == 1 and got[2] == b"tok-1", got
        # Nothing was recorded for the refused takes.
        assert r.zcard(rl_key("tok-1")) == 1
        assert int(r.hget(P + "stats", "api_calls")) == 1


@suite.test
def calls_are_strict_across_window_boundaries_under_contention():
    """8 clients hammer one (token, endpoint) for 3.5 s, each sending its
    call right after the grant, some of them 60 ms late: any R+1 calls in a
    row leave at least W + margin apart, and the budget is used: one burst
    of R per W + margin (+ the late sends)."""
    R, W, M = 2, 400, 25
    with RedisServer() as rs:
        lease(rs.client())
        grants, lock = [], threading.Lock()
        stop = time.monotonic() + 3.5

        def client(slow):
            lim = Lim(rs.client())
            while time.monotonic() < stop:
                cid = "c%d-%f" % (slow, time.monotonic())
                a = lim.take(R=R, W=W, margin=M, id=cid)
                if a[0] == 1:
                    if slow and len(grants) % 3 == 0:
                        time.sleep(0.06)
                    ok, sent_at = lim.sent(b"tok-1", cid, W=W, margin=M)
                    with lock:
                        grants.append(sent_at)
                else:
                    assert a[0] == 0 and 0 < a[1] <= W + M, a
                    time.sleep(min(a[1], 5) / 1000.0)

        ts = [threading.Thread(target=client, args=(i % 2,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        grants.sort()
        for i in range(len(grants) - R):
            assert grants[i + R] - grants[i] >= W + M, (i, grants[i:i + R + 1])
        # 3.5 s / 425 ms = 8.2 windows -> 9 bursts of 2 at most; late sends
        # cost some of them.
        assert 2 * 6 <= len(grants) <= 2 * 9, len(grants)


@suite.test
def a_grant_counts_as_pending_until_its_call_leaves():
    with leased() as (r, lim):
        assert lim.take(id="a")[0] == 1 and lim.take(id="b")[0] == 1
        # Not sent yet: the wait hint counts them as leaving on time...
        verdict, wait = lim.take(id="c")
        assert verdict == 0 and 1000 <= wait <= 1025, wait
        # ...but no grant is made on that hope: unsent, they count as
        # leaving as late as one window after their grant.
        time.sleep(1.1)
        verdict, wait = lim.take(id="c")
        assert verdict == 0, "granted while R calls are unaccounted for"
        lim.sent(b"tok-1", "a")
        ok, t_b = lim.sent(b"tok-1", "b")
        before = redis_ms(r)
        verdict, wait = lim.take(id="c")
        now = redis_ms(r)
        # The script ran between `before` and `now`: its wait ends at t_b + W + margin.
        assert verdict == 0 and before - 1 <= t_b + 1025 - wait <= now + 1, (before, now, wait, t_b)
        # An unknown id (trimmed, or never granted) changes nothing.
        lim.at["zzz"] = 1
        lim.sent(b"tok-1", "zzz")
        assert r.zcard(rl_key("tok-1")) == 2


@suite.test
def a_grant_within_the_lookahead_is_reserved_for_its_time():
    with leased() as (r, lim):
        for i in "ab":
            lim.take(id=i, W=300, margin=20)
            lim.sent(b"tok-1", i, W=300, margin=20)
        t_a = int(r.zscore(rl_key("tok-1"), "s:a"))
        t_b = int(r.zscore(rl_key("tok-1"), "s:b"))
        verdict, wait = lim.take(id="c", W=300, margin=20, lookahead=50)
        assert verdict == 0 and wait > 250, wait
        time.sleep((wait - 40) / 1000.0)
        verdict, at, token, wait = lim.take(id="c", W=300, margin=20, lookahead=50)
        assert verdict == 1 and 0 < wait <= 50, wait
        assert at == t_a + 320, (at, t_a)
        # The next call takes the other slot of the window (b's), and the
        # one after waits for the reserved calls: about a window.
        verdict, at_d, token, wait = lim.take(id="d", W=300, margin=20, lookahead=50)
        assert verdict == 1 and at_d == t_b + 320, (at_d, t_b)
        verdict, wait = lim.take(id="e", W=300, margin=20, lookahead=50)
        assert verdict == 0 and wait >= 300, wait


@suite.test
def each_token_and_endpoint_has_its_own_budget():
    with leased() as (r, lim):
        lease(r, key="c2:post", customer="c2", token="tok-2")
        assert lim.take()[0] == 1 and lim.take()[0] == 1
        assert lim.take()[0] == 0
        assert lim.take(ep="GET /users/{}")[0] == 1, "other endpoint"
        assert lim.take(key="c2:post", customer="c2")[0] == 1, "other token"
        # Two customers sharing one token share its budget.
        r.hset(P + "tok", "c2", "tok-1")
        assert lim.take(key="c2:post", customer="c2")[0] == 0


@suite.test
def wait_is_the_time_until_the_oldest_grant_leaves_the_window():
    with leased() as (r, lim):
        lim.take(id="a")
        lim.take(id="b")
        t0 = lim.sent(b"tok-1", "a")[1]
        lim.sent(b"tok-1", "b")
        before = redis_ms(r)
        verdict, wait = lim.take()
        now = redis_ms(r)
        assert verdict == 0
        # The script ran between `before` and `now`; its wait ends at t0 + W + margin.
        assert before - 1 <= t0 + 1000 + 25 - wait <= now + 1, (before, now, wait, t0)


@suite.test
def block_pushes_the_pair_back_by_the_delay_and_counts_the_429():
    with leased() as (r, lim):
        assert lim.take(id="a")[0] == 1
        lim.sent(b"tok-1", "a")
        # Bounds from Redis clock readings taken around each call, so that
        # time passing on a loaded machine cannot fail the test.
        before = redis_ms(r)
        ok, until = lim.block("tok-1", 3000)
        after = redis_ms(r)
        assert ok == 1 and before + 3000 <= until <= after + 3000, (until, before, after)
        before = redis_ms(r)
        verdict, wait = lim.take()
        after = redis_ms(r)
        assert verdict == 0 and until - after <= wait <= until - before, (wait, until, before, after)
        assert r.zcard(rl_key("tok-1")) == 2
        # The state outlives the block (by at most a window and the margin).
        before = redis_ms(r)
        pttl = r.pttl(rl_key("tok-1"))
        after = redis_ms(r)
        assert before + pttl >= until - 1 and after + pttl <= until + 1025 + 1, (pttl, until)
        assert int(r.hget(P + "stats", "api_429")) == 1
        # A shorter block later does not shorten the longer one.
        lim.block("tok-1", 100)
        assert lim.take()[1] >= 2900
        # After the delay, R calls are granted again.
        r.delete(rl_key("tok-1"))
        lim.block("tok-1", 150)
        time.sleep(0.2)
        assert lim.take()[0] == 1 and lim.take()[0] == 1 and lim.take()[0] == 0
        assert r.zcard(rl_key("tok-1")) == 2


@suite.test
def idle_state_expires():
    with leased() as (r, lim):
        # The bounds allow for the time the calls themselves took (a loaded
        # machine), measured around them: the TTL is set inside the call.
        t0 = time.monotonic()
        lim.take(W=100, margin=10, id="a")
        ttl = r.pttl(rl_key("tok-1"))
        took = (time.monotonic() - t0) * 1000
        assert 210 - took - 2 <= ttl <= 211, \
            "pending: now + W + W + margin; pttl %d after %.1f ms" % (ttl, took)
        t0 = time.monotonic()
        lim.sent(b"tok-1", "a", W=100, margin=10)
        ttl = r.pttl(rl_key("tok-1"))
        took = (time.monotonic() - t0) * 1000
        assert 0 < ttl <= 111 and ttl >= 110 - took - 2, \
            "sent: now + W + margin; pttl %d after %.1f ms" % (ttl, took)
        time.sleep(0.2)
        assert not r.exists(rl_key("tok-1"))


def claim(r, settle, ops=(), n=1):
    args = [30000, n, len(ops)]
    for op in ops:
        args += list(op)
    return settle(keys=[P], args=args)


@suite.test
def a_token_hold_overtaken_by_a_new_token_runs_the_key_again():
    """The API rejects token A; before the worker's hold lands, the operator
    sets token B. The hold must not keep a customer whose token is good."""
    with RedisServer() as rs:
        r = rs.client()
        enq = r.register_script(lua_script("enqueue"))
        settle = r.register_script(lua_script("settle"))
        tset = r.register_script(lua_script("token_set"))
        lim = Lim(r)
        for case in ("replaced", "same", "no-token-then-set", "no-token"):
            r.flushall()
            enq(keys=[P], args=[0, 86400000, "c1", "k", "body", "", ""])
            if case in ("replaced", "same"):
                tset(keys=[P], args=["c1", "A"])
            _, claimed, _, _ = claim(r, settle)
            key, fence = claimed[0].decode(), claimed[2].decode()
            reason = "token-invalid" if case in ("replaced", "same") else "no-token"
            if reason == "token-invalid":
                assert lim.fn(keys=[P], args=["rejected", "c1", "A"]) == [1]
            if case == "replaced":
                tset(keys=[P], args=["c1", "B"])       # releases nothing: not held yet
            if case == "no-token-then-set":
                tset(keys=[P], args=["c1", "B"])
            res, _, _, _ = claim(r, settle, [("hold", key, fence, 1, reason, "")], n=0)
            assert res == [1], res
            held = r.hget(P + "hc", "c1")
            if case in ("replaced", "no-token-then-set"):
                assert held is None, (case, held)
                assert r.hget(P + "m:" + key, "st") == b"ready", case
                assert r.lrange(P + "rk:c1", 0, -1) == [key.encode()], case
            else:
                assert held == reason.encode(), (case, held)
                assert r.hget(P + "m:" + key, "st") == b"held", case


suite.run()
