"""The admin API's routes for one key and one dead letter, its actions (hold,
release, retry, drop) and its search, paging and throughput samples
(DESIGN §3.5 ★), end to end: a real `hookq run` on a real redis-server,
plain HTTP over loopback, and each answer checked against Redis."""
import time

from harness import RedisServer, Suite, processes, wait_until
from proclib import prefix
from test_admin_http import Hookq, events, wh

suite = Suite("admin_routes")

P = prefix()


@suite.test
def a_keys_page_has_its_state_error_and_first_payloads():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        for i in range(4):
            assert hq.post_webhook(wh("stop", customer="c:1", i=i)) == 202
        wait_until(lambda: hq.json("/api/keys?state=held")["total"] == 1, 20, what="a held key")
        k = hq.json("/api/keys/c:1:stop")
        assert (k["key"], k["state"], k["depth"], k["reason"]) == ("c:1:stop", "held", 4, "failed"), k
        assert "exited with 1" in k["error"] and isinstance(k["attempts"], int), k
        assert [j["seq"] for j in k["jobs"]] == [1, 2, 3, 4], k
        assert '"i": 0' in k["jobs"][0]["body"] or '"i":0' in k["jobs"][0]["body"], k["jobs"][0]
        assert all(set(j) == {"id", "seq", "received_at_ms", "webhook_id", "body"} for j in k["jobs"])
        # ?n= limits the payloads; the key may be URL-encoded.
        k = hq.json("/api/keys/c%3A1%3Astop?n=2")
        assert [j["seq"] for j in k["jobs"]] == [1, 2] and k["depth"] == 4, k
        # Errors name what is wrong.
        e = hq.json("/api/keys/acme:nothing", want=404)
        assert e["error"] == "not_found" and "acme:nothing" in e["detail"], e
        e = hq.json("/api/keys/nocolon", want=400)
        assert e["error"] == "bad_request" and "CUSTOMER:CODE" in e["detail"], e
        e = hq.json("/api/keys/a:b?n=101", want=400)
        assert e["error"] == "bad_request" and "n wants" in e["detail"], e
        e = hq.json("/api/keys/a%00b:c", want=400)
        assert e["error"] == "bad_request", e
        status, headers, _ = hq.request("/api/keys/c:1:stop", body={})
        assert status == 405 and headers["Allow"] == "GET, HEAD", status


@suite.test
def hold_and_release_by_key_and_customer():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        r = rs.client()
        assert hq.post_webhook(wh("stop", customer="c1")) == 202
        wait_until(lambda: r.hget(P + "m:c1:stop", "st") == b"held", 20, what="c1:stop held")
        assert hq.json("/api/hold", {"key": "c1:stop"}) == {"held": "already"}
        assert hq.json("/api/release", {"key": "c1:stop"}) == {"released": "ready"}
        # It runs again, /bin/false holds it again; then an operator's hold
        # with a reason, which the key's page shows.
        wait_until(lambda: int(r.hget(P + "stats", "held") or 0) == 2, 20, what="held again")
        assert hq.json("/api/release", {"key": "c1:stop"}) == {"released": "ready"}
        wait_until(lambda: int(r.hget(P + "stats", "held") or 0) == 3, 20, what="held again")
        e = hq.json("/api/hold", {"key": "nobody:x"}, want=404)
        assert e["error"] == "not_found", e
        for bad in ({"key": 1}, {}, {"key": "c1:stop", "reason": ""}, {"key": "c1:stop", "reason": 2}):
            e = hq.json("/api/hold", bad, want=400)
            assert e["error"] == "bad_request" and "key" in e["detail"], (bad, e)
        e = hq.json("/api/hold", {"key": "nocolon"}, want=400)
        assert "CUSTOMER:CODE" in e["detail"], e
        # A customer held as a whole (as for a rejected token) is released
        # with {"customer"}: its keys go on.
        r.hset(P + "hc", "c1", "token-invalid")
        e = hq.json("/api/release", {"customer": "zz"}, want=404)
        assert e["error"] == "not_found", e
        assert hq.json("/api/release", {"customer": "c1"}) == {"released_keys": 0}
        assert r.hget(P + "hc", "c1") is None
        e = hq.json("/api/release", {"customer": "c1", "key": "c1:stop"}, want=400)
        assert e["error"] == "bad_request", e


@suite.test
def dead_letters_are_shown_retried_and_dropped_one_by_one_or_all():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        r = rs.client()
        for c in ("c1", "c2", "c3"):
            assert hq.post_webhook(wh("bad", customer=c, note="n-" + c)) == 202
        wait_until(lambda: hq.json("/api/dlq")["total"] == 3, 20, what="3 dead letters")
        ids = {d["key"]: d["id"] for d in hq.json("/api/dlq")["dead_letters"]}
        d = hq.json("/api/dlq/" + ids["c1:bad"])
        assert (d["key"], d["customer"], d["seq"], d["attempts"]) == ("c1:bad", "c1", 1, 1), d
        assert '"n-c1"' in d["body"] and "exited with 1" in d["error"], d
        e = hq.json("/api/dlq/0-999", want=404)
        assert e["error"] == "not_found" and "0-999" in e["detail"], e
        e = hq.json("/api/dlq/zz", want=404)  # not an id at all: no such dead letter either
        assert e["error"] == "not_found" and "zz" in e["detail"], e
        # Drop one: gone from Redis; again: 404.
        assert hq.json("/api/dlq/drop", {"id": ids["c1:bad"]}) == {"dropped": 1}
        assert not r.exists(P + "dl:" + ids["c1:bad"])
        assert hq.json("/api/dlq/drop", {"id": ids["c1:bad"]}, want=404)["error"] == "not_found"
        for bad in ({}, {"id": 1}, {"all": False}, {"id": "0-1", "all": True}):
            assert hq.json("/api/dlq/drop", bad, want=400)["error"] == "bad_request", bad
        assert hq.json("/api/dlq/drop", {"all": True}) == {"dropped": 2}
        assert r.llen(P + "dlq") == 0 and int(r.hget(P + "stats", "dlq_dropped")) == 3


@suite.test
def keys_are_searched_and_paged():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        for i in range(12):
            for _ in range(i + 1):  # depth i + 1: the order is known
                assert hq.post_webhook(wh("stop", customer="k%02d" % i)) == 202
        wait_until(lambda: hq.json("/api/keys?state=held")["total"] == 12, 30, what="12 held keys")
        names = ["k%02d:stop" % i for i in range(11, -1, -1)]  # deepest first
        page = hq.json("/api/keys?top=5")
        assert [k["key"] for k in page["keys"]] == names[:5] and page["offset"] == 0, page
        assert page["total"] == 12 and "matched" not in page, page
        page = hq.json("/api/keys?top=5&offset=10")
        assert [k["key"] for k in page["keys"]] == names[10:], page
        assert hq.json("/api/keys?top=5&offset=12")["keys"] == []
        page = hq.json("/api/keys?q=k0&top=3&state=held")
        assert page["matched"] == 10 and [k["key"] for k in page["keys"]] == names[2:5], page
        page = hq.json("/api/keys?q=k0&top=3&offset=9")
        assert [k["key"] for k in page["keys"]] == names[11:], page
        assert hq.json("/api/keys?q=nothing")["matched"] == 0
        e = hq.json("/api/keys?offset=1000", want=400)
        assert "offset" in e["detail"], e


@suite.test
def throughput_samples_count_accepted_processed_and_failed():
    with RedisServer() as rs, processes() as start:
        t0 = time.time()
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        for i in range(10):
            assert hq.post_webhook(wh("ok", i=i)) == 202
        for c in ("c1", "c2"):
            assert hq.post_webhook(wh("bad", customer=c)) == 202
        # The first sample is taken at start, the next 5 s later: the
        # first point is the rates in between.
        tp = wait_until(lambda: (lambda t: t if t["points"] else None)(hq.json("/api/throughput")),
                        15, interval=0.5, what="a throughput point")
        assert tp["interval_ms"] == 5000
        p = tp["points"][0]
        assert set(p) == {"time_ms", "accepted", "processed", "failed"}, p
        assert t0 * 1000 < p["time_ms"] < time.time() * 1000 + 1000, p
        # 12 accepted, 10 done and 2 dead-lettered within the ~5 s before it.
        secs = 5.0
        assert abs(p["accepted"] * secs - 12) < 1.5, p
        assert abs(p["processed"] * secs - 10) < 1.5, p
        assert abs(p["failed"] * secs - 2) < 0.5, p


if __name__ == "__main__":
    suite.run()
