"""Deliveries a receiver can rely on (DESIGN §3.2 [deliver], §3.3, §3.4
steps 2 and 5), end to end: a real `hookq run` on a real redis-server, the
sink (tests/doubles/sink.c) and the mock API over loopback HTTP.
- signed deliveries checked by the reference verifiers: the npm
  `standardwebhooks` package and a few lines of Python hmac;
- [deliver] timeout for http and exec, and its per-event override;
- a 3xx is not followed: a counted attempt whose error names the Location,
  which the circuit breaker does not count;
- the catch-all [event *];
- a customer without a token holds only its keys whose event has a fetch;
- release gives the head job a fresh count of attempts.
The circuit breaker's outages are in test_breaker.py."""
import json
import os
import stat
import tempfile
import time

from deliverlib import Run, node_verify, python_verify
from harness import RedisServer, Suite, processes, wait_until
from proclib import Double, Queue, prefix

suite = Suite("deliver")
P = prefix()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET2 = "whsec_c2VjcmV0LWZvci1kZWxpdmVyaWVz"
FAST = ["max_attempts = 3", "backoff = 100ms..200ms", "shutdown_timeout = 2s"]


@suite.test
def signed_deliveries_pass_the_reference_verifiers_on_every_attempt():
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink")
        # The first delivery of each event fails: the retry is signed anew
        # with the same webhook-id.
        sink.control(fail_first=2)
        run = Run(start, rs, {
            "a": ["deliver = %s/a" % sink.url],
            "b": ["deliver = %s/b" % sink.url, "secret = " + SECRET2],
        }, {"worker": FAST, "deliver": ["secret = " + SECRET]})
        t0 = time.time()
        ida = run.post("c1", "a", {"text": "caf\u00e9 \u2713", "n": 1})[1]["id"]
        idb = run.post("c1", "b", {"text": "line\nbreak", "n": 2})[1]["id"]
        wait_until(lambda: sink.count() >= 4, 20, what="4 deliveries")
        t1 = time.time()
        recs = sink.records()
        by_path = {"/a": [r for r in recs if r["path"] == "/a"],
                   "/b": [r for r in recs if r["path"] == "/b"]}
        for path, jid, secret, other in (("/a", ida, SECRET, SECRET2),
                                         ("/b", idb, SECRET2, SECRET)):
            rs_ = by_path[path]
            assert [r["status"] for r in rs_] == [500, 200], rs_
            assert [r["attempt"] for r in rs_] == ["1", "2"], rs_
            for r in rs_:
                # webhook-id is the job id, the same on every attempt.
                assert r["webhook_id"] == jid == r["id"], r
                ts = int(r["webhook_timestamp"])
                assert int(t0) - 1 <= ts <= t1 + 1, (ts, t0, t1)
                assert r["webhook_signature"].startswith("v1,"), r
                assert python_verify(secret, r["webhook_id"], r["webhook_timestamp"],
                                     r["raw"], r["webhook_signature"]), r
                assert not python_verify(other, r["webhook_id"], r["webhook_timestamp"],
                                         r["raw"], r["webhook_signature"])
            res = node_verify(secret, rs_)
            assert res == [(True, jid), (True, jid)], res
            # The verifier does check: another secret, or a changed body, fails.
            assert not any(ok for ok, _ in node_verify(other, rs_))
            tampered = [dict(r, raw=r["raw"].replace('"n":', '"m":')) for r in rs_]
            assert not any(ok for ok, _ in node_verify(secret, tampered))


@suite.test
def unsigned_without_a_secret():
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink")
        run = Run(start, rs, {"a": ["deliver = %s/a" % sink.url]}, {"worker": FAST})
        run.post("c1", "a", {"n": 1})
        wait_until(lambda: sink.count() >= 1, 20, what="a delivery")
        r = sink.records()[0]
        assert (r["webhook_id"], r["webhook_timestamp"], r["webhook_signature"]) == \
            (None, None, None), r


def dead_letters(rs):
    q = Queue(rs.client())
    return q.dead_letters()


@suite.test
def deliver_timeout_bounds_http_and_exec_and_an_event_may_override_it():
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink")
        sink.control(delay_ms=1500)
        d = tempfile.mkdtemp(prefix="hq-deliver-exec-")
        prog = os.path.join(d, "slow")
        with open(prog, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\nsleep 10\n")
        os.chmod(prog, stat.S_IRWXU)
        run = Run(start, rs, {
            "short": ["deliver = %s/short" % sink.url],
            "long": ["deliver = %s/long" % sink.url, "timeout = 5s"],
            "run": ["deliver = exec:" + prog],
        }, {"worker": ["max_attempts = 1", "backoff = 100ms..200ms", "shutdown_timeout = 2s"],
            # [api] timeout is long: [deliver]'s is the one that counts.
            "api": ["timeout = 1m"],
            "deliver": ["timeout = 500ms", "breaker = 0"]})
        t0 = time.monotonic()
        run.post("c1", "short", {})
        run.post("c1", "long", {})
        run.post("c1", "run", {})
        wait_until(lambda: len(dead_letters(rs)) >= 2, 20, what="2 dead letters")
        elapsed = time.monotonic() - t0
        wait_until(lambda: any(r["path"] == "/long" and r["status"] == 200
                               for r in sink.records()), 20, what="the long delivery")
        # The long one was answered (1.5 s late, within its 5 s).
        time.sleep(0.5)
        errors = {d["key"]: d["error"] for d in dead_letters(rs)}
        assert set(errors) == {"c1:short", "c1:run"}, errors
        assert "timed out after" in errors["c1:short"], errors
        assert "killed after 500 ms" in errors["c1:run"], errors
        assert elapsed < 5, elapsed


@suite.test
def a_redirect_is_a_counted_attempt_naming_the_location_and_no_breaker_failure():
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink")
        sink.control(status=302, location="http://elsewhere.example/new-hooks")
        run = Run(start, rs, {"a": ["deliver = %s/a" % sink.url]},
                  {"worker": ["max_attempts = 2", "backoff = 100ms..200ms",
                              "shutdown_timeout = 2s"],
                   # One counted failure would mark the target down.
                   "deliver": ["breaker = 1", "probe = 10s..20s"]})
        run.post("c1", "a", {"n": 1})
        run.post("c2", "a", {"n": 2})
        wait_until(lambda: len(dead_letters(rs)) >= 2, 20, what="2 dead letters")
        recs = sink.records()
        # Each job: 2 attempts (counted), none followed to the Location.
        assert sorted(r["attempt"] for r in recs) == ["1", "1", "2", "2"], recs
        assert all(r["path"] == "/a" for r in recs)
        for dl in dead_letters(rs):
            assert dl["attempts"] == "2", dl
            assert "302" in dl["error"] and "http://elsewhere.example/new-hooks" in dl["error"], dl
        t = run.target(sink.url)
        assert t is not None and t["up"] is True and t["failures"] == 0, t
        assert run.target_up_metric(sink.url) == 1


@suite.test
def the_catch_all_takes_codes_without_a_section_and_keeps_their_code():
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink")
        run = Run(start, rs, {"known": ["deliver = %s/known" % sink.url],
                              "*": ["deliver = %s/any" % sink.url]}, {"worker": FAST})
        st, ans = run.post("c1", "brand-new", {"n": 1})
        assert st == 202 and ans["key"] == "c1:brand-new", (st, ans)
        st, ans = run.post("c1", "known", {"n": 2})
        assert st == 202 and ans["key"] == "c1:known", (st, ans)
        wait_until(lambda: sink.count() >= 2, 20, what="2 deliveries")
        recs = {r["path"]: r for r in sink.records()}
        assert recs["/any"]["body"]["code"] == "brand-new", recs
        assert recs["/any"]["key"] == "c1:brand-new"
        assert recs["/known"]["body"]["code"] == "known"
        run.proc.stop()
        # Without [event *], an unknown code is 422.
        run2 = Run(start, rs, {"known": ["deliver = %s/known" % sink.url]}, {"worker": FAST})
        st, ans = run2.post("c1", "brand-new", {"n": 3})
        assert st == 422 and ans["error"] == "unknown_code", (st, ans)


def plain_and_rich(start, rs):
    """hookq with two events of one customer: `plain` delivers as it is,
    `rich` fetches its post from the mock API first (so only it needs a
    token). Returns the mock API, the sink and the run."""
    mock = Double(start, "mockapi", "--quiet")
    sink = Double(start, "sink")
    run = Run(start, rs, {
        "plain": ["deliver = %s/plain" % sink.url],
        "rich": ["fetch = GET /posts/{data.post_id}", "deliver = %s/rich" % sink.url],
    }, {"worker": FAST, "api": ["base_url = " + mock.url]})
    return mock, sink, run


@suite.test
def a_customer_without_a_token_holds_only_its_keys_that_fetch():
    with RedisServer() as rs, processes() as start:
        _, sink, run = plain_and_rich(start, rs)
        q = Queue(rs.client())
        run.post("acme", "rich", {"post_id": 1})
        wait_until(lambda: rs.client().hget(P + "held", "acme:rich") is not None, 20,
                   what="acme:rich held")
        assert rs.client().hget(P + "held", "acme:rich") == b"no-token"
        # The customer is not held: its fetch-less events go on, new keys too.
        assert rs.client().hget(P + "hc", "acme") is None
        for i in range(3):
            assert run.post("acme", "plain", {"n": i})[0] == 202
        wait_until(lambda: sink.count() >= 3, 20, what="3 plain deliveries")
        assert [r["body"]["data"]["n"] for r in sink.records()] == [0, 1, 2]
        assert rs.client().hget(P + "held", "acme:rich") == b"no-token"
        # A token releases it, in order.
        run.post("acme", "rich", {"post_id": 2})
        q.set_token("acme", "tok-acme")
        wait_until(lambda: sink.count() >= 5, 20, what="the rich deliveries")
        rich = [r["body"]["data"]["post_id"] for r in sink.records() if r["path"] == "/rich"]
        assert rich == [1, 2], rich
        assert not dead_letters(rs)


@suite.test
def a_rejected_token_holds_only_its_keys_that_fetch():
    """A 401 holds the key whose fetch met it, not its customer (DESIGN
    §3.4 step 4): the customer's fetch-less events go on, and `token set`
    resumes the held key in order."""
    with RedisServer() as rs, processes() as start:
        mock, sink, run = plain_and_rich(start, rs)
        q = Queue(rs.client())
        r = rs.client()
        q.set_token("acme", "bad")
        mock.control(unauthorized=["bad"])
        run.post("acme", "rich", {"post_id": 1})
        wait_until(lambda: r.hget(P + "held", "acme:rich") is not None, 20,
                   what="acme:rich held")
        assert r.hget(P + "held", "acme:rich") == b"token-invalid"
        # The customer is not held: its fetch-less events go on.
        assert r.hget(P + "hc", "acme") is None
        run.post("acme", "rich", {"post_id": 2})
        for i in range(3):
            assert run.post("acme", "plain", {"n": i})[0] == 202
        wait_until(lambda: sink.count() >= 3, 20, what="3 plain deliveries")
        assert [x["body"]["data"]["n"] for x in sink.records()] == [0, 1, 2]
        assert {x["path"] for x in sink.records()} == {"/plain"}
        assert r.hget(P + "held", "acme:rich") == b"token-invalid"
        assert r.llen(P + "q:acme:rich") == 2
        # The held key makes no more calls with the rejected token.
        assert [(c["token"], c["status"]) for c in mock.records()] == [("bad", 401)]
        # A new token resumes it, in order, from the job that met the 401.
        q.set_token("acme", "good")
        wait_until(lambda: sink.count() >= 5, 20, what="the rich deliveries")
        rich = [x for x in sink.records() if x["path"] == "/rich"]
        assert [x["body"]["data"]["post_id"] for x in rich] == [1, 2], rich
        assert [x["attempt"] for x in rich] == ["1", "1"], "a 401 counts no attempt"
        assert [c["token"] for c in mock.records()][1:] == ["good", "good"]
        assert r.hget(P + "held", "acme:rich") is None
        assert not dead_letters(rs)


@suite.test
def release_gives_the_head_job_a_fresh_count_of_attempts():
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink")
        sink.control(status=500)
        run = Run(start, rs, {"a": ["deliver = %s/a" % sink.url, "on_failure = hold"]},
                  {"worker": ["max_attempts = 2", "backoff = 100ms..200ms",
                              "shutdown_timeout = 2s"],
                   "deliver": ["breaker = 0"]})
        run.post("c1", "a", {"n": 1})
        r = rs.client()
        wait_until(lambda: r.hget(P + "held", "c1:a") == b"failed", 20, what="held")
        assert [x["attempt"] for x in sink.records()] == ["1", "2"]
        out = run.cli("release", "c1:a")
        assert out.returncode == 0, out.stderr
        # Two attempts again (1, 2), not one (3), then held again.
        wait_until(lambda: sink.count() >= 4 and r.hget(P + "held", "c1:a") == b"failed",
                   20, what="held again")
        assert [x["attempt"] for x in sink.records()] == ["1", "2", "1", "2"]
        # The same through the admin API; this time the target is back.
        sink.control(status=200)
        st, text = run.http("POST", run.admin, "/api/release",
                            json.dumps({"key": "c1:a"}).encode(),
                            {"Content-Type": "application/json"})
        assert st == 200, (st, text)
        wait_until(lambda: sink.count() >= 5, 20, what="the delivery")
        last = sink.records()[-1]
        assert (last["attempt"], last["status"], last["body"]["attempt"]) == ("1", 200, 1), last
        assert r.hget(P + "held", "c1:a") is None


suite.run()
