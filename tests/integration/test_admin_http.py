"""The admin listener's metrics, JSON API and dashboard (DESIGN §3.5), end to
end: a real `hookq run` (intake, worker, admin) on a real redis-server, the
mockapi double as the service's API, and plain HTTP over loopback. Each test
makes the queue do something (accept, reject, deliver, fetch, 429,
dead-letter, hold) and checks that /metrics and /api/* say exactly that."""
import json
import os
import re
import signal
import tempfile
import time
import urllib.error
import urllib.request

from harness import HOOKQ, RedisServer, Suite, free_port, processes, wait_until
from proclib import Double, Queue, prefix

suite = Suite("admin_http")

TOKEN = "s3cret-admin"
P = prefix()


class Hookq:
    """`hookq run` with an admin listener, on `rs`; events: {code: lines};
    extra: more lines at the end (sections of their own); cmd: "serve" for
    an intake without workers."""

    def __init__(self, start, rs, api_url, events, token=None, extra=(), cmd="run",
                 api=()):
        self.intake = free_port()
        self.admin = free_port()
        self.token = token
        d = tempfile.mkdtemp(prefix="hq-adminhttp-")
        lines = ["[redis]", "url = " + rs.url, "",
                 "[intake]", "listen = 127.0.0.1:%d" % self.intake, "",
                 "[admin]", "listen = 127.0.0.1:%d" % self.admin]
        if token:
            lines.append("token = " + token)
        lines += ["", "[worker]", "max_attempts = 1", "backoff = 100ms..200ms", "",
                  "[api]", "base_url = " + api_url, "rate = 2/1s"] + list(api) + [""]
        for code, ev in events.items():
            lines += ["[event %s]" % code] + ev + [""]
        lines += list(extra)
        self.cfg = os.path.join(d, "hookq.ini")
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines))
        self.errlog = os.path.join(d, "stderr.log")
        self.proc = start([HOOKQ, cmd, "-c", self.cfg], cwd=d,
                          stdout=open(os.path.join(d, "stdout.log"), "w"),
                          stderr=open(self.errlog, "w"))
        wait_until(self.up, 20, what="hookq %s's admin listener" % cmd)

    def up(self):
        if not self.proc.alive():
            raise AssertionError("hookq run exited: " + open(self.errlog).read())
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def request(self, path, body=None, method=None, headers=None, token=True):
        h = dict(headers or {})
        if token and self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin, path),
                                     data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def get(self, path, **kw):
        return self.request(path, **kw)

    def json(self, path, body=None, want=200, **kw):
        status, _, text = self.request(path, body=body, **kw)
        assert status == want, (path, status, text)
        return json.loads(text)

    def post_webhook(self, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/webhook" % self.intake,
                                     data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def metrics(self):
        status, headers, text = self.get("/metrics")
        assert status == 200, (status, text)
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
        return parse_prometheus(text)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    """{(name, frozenset(labels)): value}, checking the text format on the
    way: every sample belongs to a family announced by # HELP and # TYPE,
    every line parses, and each histogram's buckets are cumulative and end
    in +Inf == _count."""
    types, out = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram"), line
            assert name not in types, "family %s announced twice" % name
            types[name] = typ
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels = m.group(1), {}
        if m.group(3):
            pos = 0
            for lm in LABEL.finditer(m.group(3)):
                assert lm.start() == pos, line
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
            assert pos == len(m.group(3)), line
        family = re.sub(r'_(bucket|sum|count)$', '', name)
        assert name in types or (family in types and types[family] == "histogram"), \
            "sample %s before its # TYPE" % name
        out[(name, frozenset(labels.items()))] = float(m.group(4))
    for name, typ in types.items():
        if typ != "histogram":
            continue
        groups = {}
        for (n, labels), v in out.items():
            if n == name + "_bucket":
                rest = frozenset((k, x) for k, x in labels if k != "le")
                le = dict(labels)["le"]
                groups.setdefault(rest, []).append((float("inf") if le == "+Inf" else float(le), v))
        assert groups, "histogram %s has no buckets" % name
        for rest, buckets in groups.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), (name, buckets)
            assert buckets[-1][0] == float("inf"), (name, buckets)
            assert buckets[-1][1] == out[(name + "_count", rest)], name
    return out


def val(m, name, **labels):
    return m[(name, frozenset(labels.items()))]


def events():
    return {"ok": ["deliver = log"],
            "fetch": ["fetch = GET /posts/{data.post_id}", "deliver = log"],
            "bad": ["deliver = exec:/bin/false", "on_failure = deadletter"],
            "stop": ["deliver = exec:/bin/false", "on_failure = hold"]}


def wh(code, customer="acme", **data):
    return {"code": code, "data": dict(data, customer_id=customer)}


@suite.test
def metrics_count_what_the_intake_worker_and_api_calls_did():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        hq = Hookq(start, rs, mock.url, events())
        q = Queue(rs.client())
        q.set_token("acme", "tok-acme")
        q.set_token("beta", "tok-beta")
        for i in range(3):
            assert hq.post_webhook(wh("ok", post_id=i)) == 202
        assert hq.post_webhook(wh("fetch", post_id=7)) == 202
        # The API answers the next call of beta's token with 429: the job
        # parks, and runs again once the Retry-After has passed.
        mock.control(force429={"token": "tok-beta", "count": 1, "retry_after": 0})
        assert hq.post_webhook(wh("fetch", customer="beta", post_id=8)) == 202
        assert hq.post_webhook(wh("bad")) == 202
        assert hq.post_webhook(wh("nope")) == 422
        assert hq.post_webhook(b'{"code": "ok", "data": ') == 400
        assert hq.post_webhook(b'{"code": "ok", "data": ') == 400
        r = rs.client()
        wait_until(lambda: int(r.hget(P + "stats", "done") or 0) == 5, 20,
                   what="5 jobs done")
        wait_until(lambda: r.llen(P + "dlq") == 1, 20, what="1 dead letter")
        m = hq.metrics()
        assert val(m, "hookq_redis_up") == 1
        # The intake's counters (this process).
        assert val(m, "hookq_intake_requests_total", result="accepted") == 6
        assert val(m, "hookq_intake_requests_total", result="duplicate") == 0
        assert val(m, "hookq_intake_rejected_total", reason="unknown_code") == 1
        assert val(m, "hookq_intake_rejected_total", reason="invalid_json") == 2
        assert val(m, "hookq_intake_rejected_total", reason="key_full") == 0
        # Every complete request was timed; the 6 stored ones took a Redis
        # round trip, which is more than 0 s and, here, well under 10 s.
        assert val(m, "hookq_intake_request_duration_seconds_count") == 9
        assert 0 < val(m, "hookq_intake_request_duration_seconds_sum") < 10
        assert val(m, "hookq_intake_request_duration_seconds_bucket", le="10") == 9
        # The worker's.
        assert val(m, "hookq_worker_settled_total", outcome="done") == 5
        assert val(m, "hookq_worker_settled_total", outcome="deadlettered") == 1
        assert val(m, "hookq_worker_settled_total", outcome="parked") == 1
        assert val(m, "hookq_worker_claimed_total") == 7
        assert val(m, "hookq_worker_in_flight") == 0
        # The API calls: acme's fetch and beta's two (a 429, then a 200).
        assert val(m, "hookq_api_calls_total", result="2xx") == 2
        assert val(m, "hookq_api_calls_total", result="429") == 1
        assert val(m, "hookq_api_calls_total", result="error") == 0
        assert val(m, "hookq_api_call_duration_seconds_count") == 3
        assert val(m, "hookq_deliveries_total", result="done") == 5
        assert val(m, "hookq_deliveries_total", result="failed") == 1
        assert val(m, "hookq_job_attempt_duration_seconds_count") == 7
        assert val(m, "hookq_job_latency_seconds_count") == 5
        # The queue as Redis has it (every process's).
        assert val(m, "hookq_queue_events_total", event="accepted") == 6
        assert val(m, "hookq_queue_events_total", event="done") == 5
        assert val(m, "hookq_queue_events_total", event="deadlettered") == 1
        assert val(m, "hookq_queue_dead_letters", shard="0") == 1
        assert val(m, "hookq_queue_jobs", shard="0") == 0
        # mockapi agrees on the calls it saw.
        with urllib.request.urlopen(mock.url + "/_stats", timeout=5) as resp:
            st = json.loads(resp.read())
        assert st["ok"] == 2 and st["429"] == 1, st


@suite.test
def api_lists_holds_and_dead_letters_and_retry_and_release_act_on_them():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        hq = Hookq(start, rs, mock.url, events())
        r = rs.client()
        # A failing job of a "hold" event holds its key with the rest queued.
        for i in range(3):
            assert hq.post_webhook(wh("stop", customer="c1", i=i)) == 202
        assert hq.post_webhook(wh("bad", customer="c2")) == 202
        wait_until(lambda: hq.json("/api/keys?state=held")["total"] == 1, 20, what="a held key")
        wait_until(lambda: hq.json("/api/dlq")["total"] == 1, 20, what="a dead letter")

        held = hq.json("/api/keys?state=held")
        assert [(k["key"], k["state"], k["depth"]) for k in held["keys"]] == \
            [("c1:stop", "held", 3)], held
        stats = hq.json("/api/stats?top=5")
        assert stats["total"]["held"] == 1 and stats["total"]["jobs"] == 3, stats
        assert stats["total"]["dead_letters"] == 1
        assert [k["key"] for k in stats["top_keys"]] == ["c1:stop"]
        # Once a sample a second older is kept, each answer has rates over
        # at least a second, even right after another caller's.
        rates = wait_until(lambda: hq.json("/api/stats").get("rates"), 10, interval=0.2,
                           what="rates in /api/stats")
        assert rates["interval_ms"] >= 1000, rates
        again = hq.json("/api/stats")["rates"]
        assert again["interval_ms"] >= 1000, again
        dl = hq.json("/api/dlq")["dead_letters"]
        assert [(d["key"], d["seq"]) for d in dl] == [("c2:bad", 1)], dl
        assert "exited with 1" in dl[0]["error"], dl

        # Retry puts the dead letter back; /bin/false fails it again.
        assert hq.json("/api/dlq/retry", {"id": dl[0]["id"]}) == {"retried": 1}
        wait_until(lambda: int(r.hget(P + "stats", "deadlettered") or 0) == 2, 20,
                   what="the retried job dead again")
        assert hq.json("/api/dlq/retry", {"all": True}) == {"retried": 1}
        wait_until(lambda: int(r.hget(P + "stats", "deadlettered") or 0) == 3, 20,
                   what="the job dead a third time")
        # Unknown ids and malformed bodies are named, and change nothing.
        e = hq.json("/api/dlq/retry", {"id": "0-999"}, want=404)
        assert e["error"] == "not_found", e
        for body in ({"id": 5}, {}, {"id": "x", "all": True}, {"all": False}, [1]):
            e = hq.json("/api/dlq/retry", body, want=400)
            assert e["error"] in ("bad_request", "invalid_json"), (body, e)
        e = hq.json("/api/dlq/retry", b'{"id": ', want=400)
        assert e["error"] == "invalid_json" and "line 1" in e["detail"], e
        e = hq.json("/api/dlq/retry", b'{"all": true}', want=415,
                    headers={"Content-Type": "text/plain"})
        assert e["error"] == "unsupported_media_type", e
        assert hq.json("/api/dlq")["total"] == 1

        # Release: the held key becomes ready and its head job runs again
        # (and holds the key again, as /bin/false fails it once more).
        e = hq.json("/api/release", {"key": "c2:bad"}, want=404)
        assert e["error"] == "not_found", e
        assert hq.json("/api/release", {"key": "c1:stop"}) == {"released": "ready"}
        wait_until(lambda: int(r.hget(P + "stats", "held") or 0) == 2, 20,
                   what="c1:stop held again after its release")
        assert hq.json("/api/keys?state=held")["keys"][0]["depth"] == 3
        e = hq.json("/api/release", {"key": 1}, want=400)
        assert e["error"] == "bad_request", e


@suite.test
def bad_queries_and_methods_are_named():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        for path, word in (("/api/stats?top=abc", "top"), ("/api/stats?top=-1", "top"),
                           ("/api/stats?top=1001", "top"), ("/api/dlq?limit=x", "limit"),
                           ("/api/keys?state=idle", "state"), ("/api/keys?state=zzz", "state")):
            e = hq.json(path, want=400)
            assert e["error"] == "bad_request" and word in e["detail"], (path, e)
        status, headers, text = hq.request("/api/dlq/retry")
        assert status == 405 and headers["Allow"] == "POST", (status, text)
        status, headers, _ = hq.request("/metrics", body={"x": 1})
        assert status == 405 and "GET" in headers["Allow"], status
        assert hq.get("/nope")[0] == 404
        # The listener answers a method a route does not take, alike for
        # every route set, before the route runs: the Allow header and the
        # detail list the route's methods.
        for method, path, allow in (("GET", "/api/limit", "POST"),
                                    ("POST", "/api/tokens/acme", "PUT, DELETE"),
                                    ("DELETE", "/api/keys/acme:x", "GET, HEAD"),
                                    ("PUT", "/", "GET, HEAD")):
            status, headers, text = hq.request(path, method=method)
            assert status == 405 and headers["Allow"] == allow, (method, path, status, text)
            assert json.loads(text) == {"error": "method_not_allowed", "detail": allow}, text
        # /healthz takes any method, as it always has.
        assert hq.request("/healthz", method="POST", body=b"")[0] == 200


@suite.test
def the_token_guards_everything_but_the_dashboard_page():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events(), token=TOKEN)
        for path in ("/metrics", "/api/stats", "/api/keys", "/api/dlq"):
            status, headers, _ = hq.get(path, token=False)
            assert status == 401 and headers["WWW-Authenticate"] == "Bearer", (path, status)
            assert hq.get(path)[0] == 200, path
        status, _, _ = hq.request("/api/dlq/retry", body={"all": True}, token=False)
        assert status == 401
        # The page carries no data, and asks for the token itself.
        status, headers, html = hq.get("/", token=False)
        assert status == 200 and headers["Content-Type"].startswith("text/html"), status
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        for path in ("/api/stats", "/api/keys?state=held", "/api/dlq", "/api/dlq/retry",
                     "/api/release", "Authorization"):
            assert path.split("?")[0] in html, path


@suite.test
def metrics_answer_fast_while_redis_is_down_and_recover():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        assert hq.post_webhook(wh("ok")) == 202
        rs.proc.signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            m = hq.metrics()
            took = time.monotonic() - t0
            # The admin's Redis timeout is 2 s: the scrape does not hang.
            assert took < 5, took
            assert val(m, "hookq_redis_up") == 0
            assert ("hookq_queue_jobs", frozenset({("shard", "0")})) not in m
            assert val(m, "hookq_intake_requests_total", result="accepted") == 1
            e = hq.json("/api/stats", want=503)
            assert e["error"] == "redis_unavailable", e
        finally:
            rs.proc.signal(signal.SIGCONT)
        wait_until(lambda: val(hq.metrics(), "hookq_redis_up") == 1, 15, what="redis_up 1 again")
        assert hq.json("/api/stats")["counters"]["accepted"] == 1


if __name__ == "__main__":
    suite.run()
