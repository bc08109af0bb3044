"""The shared rate limiter, POST /api/limit (DESIGN §3.5 ★), on a real
`hookq run`: grants count against the same (token, endpoint) budget as
hookq's fetches, so that an application's own calls and hookq's together
stay within 2 per 1 s at the mock API; a refusal is 429 with retry_after_ms
and Retry-After; wait_ms waits on the admin loop (other requests are served
meanwhile); bad input is a JSON 4xx that records nothing."""
import json
import socket
import threading
import time
import urllib.request

from harness import RedisServer, Suite, processes, wait_until
from proclib import Double, Queue, max_in_window, prefix
from test_admin_http import TOKEN, Hookq

suite = Suite("limit_api")
P = prefix()
EP = "GET /posts/{}"


def limit(hq, body, **kw):
    t0 = time.monotonic()
    status, headers, text = hq.request("/api/limit", body=body, method="POST", **kw)
    return status, headers, json.loads(text), time.monotonic() - t0


def rl_keys(rs):
    return sorted(k.decode() for k in rs.client().scan_iter(P + "rl:*"))


@suite.test
def grants_share_one_budget_per_token_and_endpoint_and_refusals_say_when():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"e": ["deliver = log"]}, token=TOKEN)
        Queue(rs.client()).set_token("acme", "tok-a")
        Queue(rs.client()).set_token("bob", "tok-a")   # the same token
        t0 = time.monotonic()
        assert limit(hq, {"customer": "acme", "endpoint": EP})[0] == 200
        # The endpoint is normalized as [api] endpoint = route says.
        status, _, ans, _ = limit(hq, {"customer": "bob", "endpoint": "get /posts/{id}"})
        assert status == 200 and ans == {"granted": True}, ans
        status, headers, ans, _ = limit(hq, {"token": "tok-a", "endpoint": EP})
        assert status == 429 and ans["granted"] is False, ans
        left = 1000 + 25 - (time.monotonic() - t0) * 1000
        assert 0 < ans["retry_after_ms"] <= 1025 and ans["retry_after_ms"] >= left - 50, \
            (ans, left)
        assert int(headers["Retry-After"]) == (ans["retry_after_ms"] + 999) // 1000
        assert headers["X-Content-Type-Options"] == "nosniff", headers
        # Another endpoint, another token: budgets of their own.
        assert limit(hq, {"customer": "acme", "endpoint": "GET /users/{}"})[0] == 200
        assert limit(hq, {"token": "tok-b", "endpoint": EP})[0] == 200
        # No token for the customer.
        status, _, ans, _ = limit(hq, {"customer": "carol", "endpoint": EP})
        assert status == 404 and ans["error"] == "no_token", ans


@suite.test
def wait_ms_waits_for_the_budget_without_holding_the_admin_server():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"e": ["deliver = log"]})
        Queue(rs.client()).set_token("acme", "tok-a")
        t0 = time.monotonic()
        for _ in range(2):
            assert limit(hq, {"customer": "acme", "endpoint": EP})[0] == 200
        out = {}

        def waiter():
            out["r"] = limit(hq, {"customer": "acme", "endpoint": EP, "wait_ms": 3000})
            out["t"] = time.monotonic() - t0
        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.1)
        # While it waits, the admin server answers others at once.
        t1 = time.monotonic()
        assert hq.get("/healthz")[0] == 200
        assert time.monotonic() - t1 < 0.5
        # A shorter wait gives up at its deadline.
        status, _, ans, took = limit(hq, {"customer": "acme", "endpoint": EP, "wait_ms": 300})
        assert status == 429 and ans["retry_after_ms"] > 0, ans
        assert 0.28 <= took < 1.0, took
        th.join(10)
        status, _, ans, _ = out["r"]
        assert status == 200 and ans == {"granted": True}, ans
        # Strict: not before a window and the margin after the first grant.
        assert 1.0 <= out["t"] < 1.6, out["t"]
        # A client that leaves while it waits is forgotten; the server goes on.
        s = socket.create_connection(("127.0.0.1", hq.admin))
        body = json.dumps({"customer": "acme", "endpoint": EP, "wait_ms": 2000}).encode()
        s.sendall(b"POST /api/limit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.05)
        s.close()
        time.sleep(0.2)
        assert hq.get("/healthz")[0] == 200
        status, _, _, _ = limit(hq, {"customer": "acme", "endpoint": EP, "wait_ms": 3000})
        assert status == 200


@suite.test
def bad_limit_requests_are_named_and_record_nothing():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"e": ["deliver = log"]})
        Queue(rs.client()).set_token("acme", "tok-a")
        cases = [
            (b'{"customer": "acme"', 400, "invalid_json"),
            (b'"x"', 400, "invalid_json"),
            ({"customer": "acme", "endpoint": EP, "extra": 1}, 400, "unknown_field"),
            ({"customer": "acme", "token": "t", "endpoint": EP}, 400, "bad_request"),
            ({"endpoint": EP}, 400, "bad_request"),
            ({"token": "", "endpoint": EP}, 400, "empty_token"),
            ({"customer": "", "endpoint": EP}, 400, "bad_customer"),
            ({"customer": 7, "endpoint": EP}, 400, "bad_customer"),
            ({"customer": "acme"}, 400, "bad_endpoint"),
            ({"customer": "acme", "endpoint": "/posts/{}"}, 400, "bad_endpoint"),
            ({"customer": "acme", "endpoint": "GET posts"}, 400, "bad_endpoint"),
            ({"customer": "acme", "endpoint": "GET /posts/{"}, 400, "bad_endpoint"),
            ({"customer": "acme", "endpoint": EP, "wait_ms": 10001}, 400, "bad_wait_ms"),
            ({"customer": "acme", "endpoint": EP, "wait_ms": -1}, 400, "bad_wait_ms"),
            ({"customer": "acme", "endpoint": EP, "wait_ms": "5"}, 400, "bad_wait_ms"),
            (b'{"customer": "acme", "endpoint": "' + b"x" * (1 << 20) + b'"}', 413,
             "body_too_large"),
        ]
        for body, want, error in cases:
            status, _, ans, _ = limit(hq, body)
            assert status == want and ans["error"] == error, (str(body)[:60], status, ans)
            assert ans.get("detail"), ans
        assert rl_keys(rs) == []
        status, headers, text = hq.request("/api/limit")
        assert status == 405 and headers["Allow"] == "POST", status


@suite.test
def app_calls_and_fetches_together_stay_within_the_rate_at_the_api():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        sink = Double(start, "sink")
        hq = Hookq(start, rs, mock.url, {"post-create": [
            "fetch = GET /posts/{data.post_id}", "deliver = " + sink.url + "/hooks"]},
            api=["margin = 60ms"])
        q = Queue(rs.client())
        q.set_token("acme", "tok-a")
        n = 8
        for i in range(n):
            q.push("acme", "post-create", {"post_id": i, "customer_id": "acme"})
        stop = time.monotonic() + 6
        app = {"granted": 0, "refused": 0}

        def app_loop():
            # The application's own calls: ask, then call at once.
            while time.monotonic() < stop:
                status, _, ans, _ = limit(hq, {"customer": "acme", "endpoint": EP,
                                               "wait_ms": 2000})
                if status != 200:
                    app["refused"] += 1
                    continue
                app["granted"] += 1
                req = urllib.request.Request(mock.url + "/posts/999",
                                             headers={"Authorization": "Bearer tok-a"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    assert r.status == 200
        th = threading.Thread(target=app_loop)
        th.start()
        th.join(20)
        wait_until(lambda: sink.count() >= n, 30, interval=0.1, what="%d deliveries" % n)
        recs = [r for r in mock.records() if r["token"] == "tok-a"]
        assert all(r["status"] == 200 for r in recs), [r for r in recs if r["status"] != 200]
        assert max_in_window([r["mono"] for r in recs], 1000) <= 2
        fetches = [r for r in recs if r["path"] != "/posts/999"]
        assert len(fetches) == n and app["granted"] >= 3, (len(fetches), app)
        # The budget is used: about 2 calls/s over the busy span.
        span = (max(r["mono"] for r in recs) - min(r["mono"] for r in recs)) / 1000
        assert len(recs) >= 1.7 * span, (len(recs), span)


if __name__ == "__main__":
    suite.run()
