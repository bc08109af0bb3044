"""Processing a job end to end (DESIGN §3.4, G7, G8): worker processes
running the job pipeline against a real redis-server, the mock API
(tests/doubles/mockapi.c) and the delivery sink (tests/doubles/sink.c), all
over loopback HTTP. The rate tests are in test_process_rate.py. Each test
runs on a storelib.Store: one redis-server; the first (order over 200 keys
and 3 workers) also on a 3-master cluster, 12 shards
(integration.process_cluster, HQ_REDIS=cluster). The others read shard 0's
keys directly: one server only."""
import json
import os
import stat
import tempfile
import time

from harness import Suite, processes, wait_until
from proclib import Double, Queue, prefix, start_workers, write_config
from storelib import Store

suite = Suite("process")
P = prefix()
FETCH = "GET /posts/{data.post_id}"


def setup(start, rs, events=None, worker=None, api=None, nworkers=1, api_args=(),
          deliver=None):
    mock = Double(start, "mockapi", "--quiet", *api_args)
    sink = Double(start, "sink")
    if events is None:
        events = {"post-create": {"fetch": [FETCH], "deliver": sink.url + "/hooks"}}
    for ev in events.values():
        ev["deliver"] = ev["deliver"].replace("SINK", sink.url)
    extra = ""
    if deliver:
        extra = "\n[deliver]\n" + "".join("%s = %s\n" % kv for kv in deliver.items())
    cfg = write_config(rs, mock.url, events, worker=worker, api=api, extra=extra)
    q = Queue(rs)
    workers = start_workers(start, cfg, nworkers)
    return mock, sink, q, workers


def by_key(records):
    out = {}
    for r in records:
        out.setdefault(r["key"], []).append(r)
    return out


@suite.test
def fetch_and_http_delivery_keep_every_keys_order_over_200_keys_and_3_workers():
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs, api={"rate": "100/1s"}, nworkers=3,
                                 worker={"concurrency": 32}, api_args=("--rate", "100/1000"))
        n_keys, per_key = 200, 5
        for c in range(n_keys):
            q.set_token("c%d" % c, "tok-%d" % c)
        items = []
        for i in range(per_key):
            for c in range(n_keys):
                items.append(("c%d" % c, "post-create", {"post_id": c * 100 + i, "n": i + 1}))
        q.push_many(items)
        total = n_keys * per_key
        wait_until(lambda: sink.count() >= total, 120, interval=0.2,
                   what="%d deliveries" % total)
        recs = sink.records()
        assert len(recs) == total, len(recs)
        for key, rs_ in by_key(recs).items():
            seqs = [int(r["seq"]) for r in rs_]
            assert seqs == list(range(1, per_key + 1)), (key, seqs)
            for r in rs_:
                b = r["body"]
                assert r["id"] == b["id"] and r["attempt"] == "1"
                assert b["key"] == key and b["customer"] == key.split(":")[0]
                assert b["code"] == "post-create" and b["seq"] == int(r["seq"])
                assert b["data"]["n"] == b["seq"], b
                # The fetch answer for this job, parsed.
                assert b["fetched"] == [{"path": "/posts/%d" % b["data"]["post_id"],
                                         "id": str(b["data"]["post_id"]),
                                         "n": b["fetched"][0]["n"]}], b
                assert b["received_at"].endswith("Z") and len(b["received_at"]) == 24
        # Every call carried the customer's own token.
        for c in mock.records():
            assert c["status"] == 200, c
        calls = mock.records()
        assert len(calls) == total
        assert q.stats().get("api_calls") == total


@suite.test
def payload_has_exactly_the_documented_fields():
    with Store() as rs, processes() as start:
        events = {"post-create": {"fetch": [FETCH, "GET /users/{data.user}/{customer}"],
                                  "deliver": "SINK/hooks"}}
        mock, sink, q, workers = setup(start, rs, events=events)
        q.set_token("acme", "tok-a")
        jid, seq = q.push("acme", "post-create", {"post_id": 7, "user": "u 1"})
        wait_until(lambda: sink.count() >= 1, 20, what="a delivery")
        r = sink.records()[0]
        b = r["body"]
        assert list(b.keys()) == ["id", "key", "customer", "code", "seq", "attempt",
                                  "received_at", "data", "fetched"], list(b.keys())
        assert b["id"] == jid and b["seq"] == seq == 1 and b["attempt"] == 1
        assert b["data"] == {"post_id": 7, "user": "u 1"}
        assert [f["path"] for f in b["fetched"]] == ["/posts/7", "/users/u%201/acme"]
        assert r["content_type"] == "application/json"
        assert (r["id"], r["key"], r["seq"], r["attempt"]) == (jid, "acme:post-create", "1", "1")
        calls = mock.records()
        assert [c["endpoint"] for c in calls] == ["GET /posts/{}", "GET /users/u%201/acme"]
        assert all(c["token"] == "tok-a" for c in calls)
        # The worker drains and exits 0 on SIGTERM (loop_fini frees the
        # pipeline's per-loop HTTP client and Redis connection).
        assert workers[0].stop() == 0


@suite.test
def the_endpoint_is_the_route_or_the_concrete_url_as_configured():
    """2 jobs for each of /posts/a and /posts/b: counted as one endpoint
    "GET /posts/{}" (route, the default), the 3rd call waits a window;
    counted per URL (url), all 4 go at once."""
    for mode, spread in (("route", (1000, 2000)), ("url", (0, 500))):
        with Store() as rs, processes() as start:
            events = {"e1": {"fetch": ["GET /posts/{data.slug}"], "deliver": "SINK/hooks"},
                      "e2": {"fetch": ["GET /posts/{data.slug}"], "deliver": "SINK/hooks"}}
            mock, sink, q, _ = setup(start, rs, events=events,
                                     api={"endpoint": mode, "margin": "100ms"})
            q.set_token("c1", "tok-1")
            q.push_many([("c1", "e1", {"slug": "a"}), ("c1", "e2", {"slug": "b"}),
                         ("c1", "e1", {"slug": "a"}), ("c1", "e2", {"slug": "b"})])
            wait_until(lambda: sink.count() >= 4, 10, what="4 deliveries")
            calls = mock.records()
            assert all(c["status"] == 200 for c in calls), calls
            t = sorted(c["mono"] for c in calls)
            assert spread[0] <= t[-1] - t[0] < spread[1], (mode, t[-1] - t[0])


@suite.test
def a_429_with_retry_after_is_honoured_and_counts_no_attempt():
    with Store() as rs, processes() as start:
        # A wide margin: only the forced 429 may happen, even on a busy host.
        mock, sink, q, _ = setup(start, rs, api={"margin": "150ms"})
        q.set_token("c1", "tok-1")
        mock.control(force429={"token": "tok-1", "count": 1, "retry_after": 2})
        for i in range(3):
            q.push("c1", "post-create", {"post_id": i})
        wait_until(lambda: sink.count() >= 3, 20, what="3 deliveries")
        calls = mock.records()
        assert calls[0]["status"] == 429, calls
        later = [c for c in calls[1:]]
        assert all(c["status"] == 200 for c in later), later
        # Retry-After plus the margin (150 ms), which covers Redis TIME's
        # whole milliseconds: the next call comes 2 s after the 429 or later.
        gap = later[0]["mono"] - calls[0]["mono"]
        assert gap >= 2000, "the API was called %.1f ms after a 429 asking for 2 s" % gap
        assert gap < 3500, gap
        # After it, the pair is limited as before: no 429 of the mock's own.
        recs = sink.records()
        assert [int(r["seq"]) for r in recs] == [1, 2, 3]
        assert [r["attempt"] for r in recs] == ["1", "1", "1"], "a 429 must count no attempt"
        assert q.stats().get("api_429") == 1


@suite.test
def a_429_without_retry_after_waits_one_window():
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs, api={"rate": "2/1500ms", "margin": "150ms"},
                                 api_args=("--rate", "2/1500"))
        q.set_token("c1", "tok-1")
        mock.control(force429={"token": "tok-1", "count": 1, "retry_after": -1})
        q.push("c1", "post-create", {"post_id": 1})
        wait_until(lambda: sink.count() >= 1, 20, what="a delivery")
        calls = mock.records()
        assert [c["status"] for c in calls] == [429, 200]
        assert calls[1]["mono"] - calls[0]["mono"] >= 1500


@suite.test
def a_rejected_token_holds_its_keys_until_a_new_token_resumes_them_in_order():
    """Each key whose fetch meets the 401 is held in its turn; the customer
    itself is not held (its fetch-less keys would go on: test_deliver.py)."""
    with Store() as rs, processes() as start:
        events = {"post-create": {"fetch": [FETCH], "deliver": "SINK/hooks"},
                  "post-delete": {"fetch": [FETCH], "deliver": "SINK/hooks"}}
        mock, sink, q, _ = setup(start, rs, events=events)
        q.set_token("c1", "bad")
        q.set_token("c2", "tok-2")
        mock.control(unauthorized=["bad"])
        for i in range(3):
            q.push("c1", "post-create", {"post_id": i})
            q.push("c1", "post-delete", {"post_id": 10 + i})
            q.push("c2", "post-create", {"post_id": 20 + i})
        r = rs.client()
        wait_until(lambda: r.hget(P + "held", "c1:post-create") == b"token-invalid"
                   and r.hget(P + "held", "c1:post-delete") == b"token-invalid", 10,
                   what="c1's keys held for its token")
        assert r.hget(P + "hc", "c1") is None
        wait_until(lambda: sink.count() >= 3, 10, what="c2's deliveries")
        time.sleep(0.5)
        assert {x["key"] for x in sink.records()} == {"c2:post-create"}
        unauthorized = [c for c in mock.records() if c["token"] == "bad"]
        assert len(unauthorized) == 2, "a held key must not keep calling: %d" % len(unauthorized)
        # A new token resumes both keys, each in order, from its first job.
        q.set_token("c1", "good")
        wait_until(lambda: sink.count() >= 9, 20, what="c1's deliveries")
        keys = by_key(sink.records())
        for key in ("c1:post-create", "c1:post-delete"):
            assert [int(x["seq"]) for x in keys[key]] == [1, 2, 3], keys[key]
        assert all(c["token"] == "good" for c in mock.records()
                   if c["token"] != "bad" and c["path"] in ("/posts/0", "/posts/10"))


@suite.test
def a_customer_without_a_token_is_held_until_one_is_set():
    """Its key that fetches is held (the customer is not: its fetch-less
    events go on, test_deliver.py)."""
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs)
        q.push("c9", "post-create", {"post_id": 1})
        q.push("c9", "post-create", {"post_id": 2})
        r = rs.client()
        wait_until(lambda: r.hget(P + "held", "c9:post-create") == b"no-token", 10,
                   what="c9's key held")
        assert r.hget(P + "hc", "c9") is None
        assert mock.count() == 0, "no call may be made without a token"
        q.set_token("c9", "tok-9")
        wait_until(lambda: sink.count() >= 2, 20, what="deliveries")
        assert [int(x["seq"]) for x in sink.records()] == [1, 2]


@suite.test
def server_errors_retry_then_dead_letter_and_the_key_goes_on():
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs, worker={"max_attempts": 3})
        q.set_token("c1", "tok-1")
        mock.control(fail={"/posts/500": 503})
        q.push("c1", "post-create", {"post_id": 500})
        q.push("c1", "post-create", {"post_id": 1})
        wait_until(lambda: sink.count() >= 1, 20, what="the next job's delivery")
        dl = q.dead_letters()
        assert len(dl) == 1, dl
        assert "503" in dl[0]["error"] and "/posts/500" in dl[0]["error"], dl[0]
        assert int(dl[0]["attempts"]) == 3
        fails = [c for c in mock.records() if c["path"] == "/posts/500"]
        assert len(fails) == 3, fails
        assert int(sink.records()[0]["seq"]) == 2


@suite.test
def other_client_errors_fail_at_once_and_the_hold_policy_holds_the_key():
    with Store() as rs, processes() as start:
        events = {"post-create": {"fetch": [FETCH], "deliver": "SINK/hooks",
                                  "on_failure": "hold"}}
        mock, sink, q, _ = setup(start, rs, events=events, worker={"max_attempts": 5})
        q.set_token("c1", "tok-1")
        mock.control(fail={"/posts/404": 404})
        q.push("c1", "post-create", {"post_id": 404})
        q.push("c1", "post-create", {"post_id": 1})
        r = rs.client()
        wait_until(lambda: r.hget(P + "held", "c1:post-create") is not None, 10,
                   what="the key held")
        time.sleep(0.5)
        assert sink.count() == 0, "the key's next job must wait while it is held"
        assert len([c for c in mock.records() if c["path"] == "/posts/404"]) == 1
        assert b"404" in (r.hget(P + "m:c1:post-create", "err") or b"")


@suite.test
def a_missing_template_field_is_a_permanent_failure_naming_it():
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs)
        q.set_token("c1", "tok-1")
        q.push("c1", "post-create", {"title": "no id"})
        q.push("c1", "post-create", {"post_id": 2})
        wait_until(lambda: sink.count() >= 1, 20, what="the next delivery")
        dl = q.dead_letters()
        assert len(dl) == 1 and "missing field 'data.post_id'" in dl[0]["error"], dl
        assert int(dl[0]["attempts"]) <= 1
        assert [c["path"] for c in mock.records()] == ["/posts/2"]


@suite.test
def delivery_answers_decide_done_retry_or_permanent():
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs, events={
            "e": {"deliver": "SINK/hooks"}}, worker={"max_attempts": 2})
        sink.control(key_status={"a:e": 500, "b:e": 422, "c:e": 429})
        for k in "abcd":
            q.push(k, "e", {"x": 1})
        wait_until(lambda: len(q.dead_letters()) >= 3, 20, what="3 dead letters")
        got = {}
        for r in sink.records():
            got.setdefault(r["key"], []).append(r["attempt"])
        assert got["a:e"] == ["1", "2"], got      # 5xx: retried
        assert got["b:e"] == ["1"], got           # 4xx: permanent
        assert got["c:e"] == ["1", "2"], got      # 429: retried
        assert got["d:e"] == ["1"], got
        errors = {d["key"]: d["error"] for d in q.dead_letters()}
        assert "answered 422" in errors["b:e"], errors
        assert mock.count() == 0, "an event without fetch lines calls no API"


@suite.test
def a_slow_delivery_times_out_and_is_retried():
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs, events={"e": {"deliver": "SINK/hooks"}},
                                 deliver={"timeout": "500ms"}, worker={"max_attempts": 5})
        sink.control(delay_ms=1500)
        t0 = time.monotonic()
        q.push("a", "e", {"x": 1})
        wait_until(lambda: sink.count() >= 1, 10, what="the first attempt")
        sink.control(delay_ms=0)
        wait_until(lambda: len([r for r in sink.records() if r["attempt"] != "1"]) >= 1, 10,
                   what="a second attempt")
        r = rs.client()
        wait_until(lambda: int(r.hget(P + "stats", "done") or 0) == 1, 10, what="done")
        first = sink.records()[0]
        assert first["attempt"] == "1"
        assert time.monotonic() - t0 < 8


def exec_script(body):
    fd, path = tempfile.mkstemp(prefix="hq-exec-", suffix=".sh")
    with os.fdopen(fd, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, stat.S_IRWXU)
    return path


@suite.test
def exec_exit_codes_mean_done_retry_or_permanent_and_a_hung_program_is_killed():
    out = tempfile.NamedTemporaryFile(prefix="hq-exec-out-", delete=False).name
    script = exec_script(
        'payload=$(cat)\n'
        'echo "$HOOKQ_KEY $HOOKQ_SEQ $HOOKQ_ATTEMPT $payload" >> %s\n'
        'case "$HOOKQ_KEY" in\n'
        '  retry:*) [ "$HOOKQ_ATTEMPT" -ge 2 ] && exit 0; exit 75 ;;\n'
        '  perm:*) echo "bad input" >&2; exit 3 ;;\n'
        '  hang:*) [ "$HOOKQ_ATTEMPT" -ge 2 ] && exit 0; sleep 30 ;;\n'
        'esac\n'
        'exit 0\n' % out)
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs, events={"e": {"deliver": "exec:" + script}},
                                 deliver={"timeout": "1s"}, worker={"max_attempts": 3})
        for k in ("ok", "retry", "perm", "hang"):
            q.push(k, "e", {"k": k})
        r = rs.client()
        wait_until(lambda: int(r.hget(P + "stats", "done") or 0) == 3, 20, what="3 done")
        lines = [l.split(" ", 3) for l in open(out).read().splitlines()]
        runs = {}
        for key, seq, attempt, payload in lines:
            runs.setdefault(key, []).append(int(attempt))
            assert json.loads(payload)["key"] == key
        assert runs == {"ok:e": [1], "retry:e": [1, 2], "perm:e": [1], "hang:e": [1, 2]}, runs
        dl = q.dead_letters()
        assert len(dl) == 1 and dl[0]["key"] == "perm:e", dl
        assert "exited with 3: bad input" in dl[0]["error"], dl[0]
        # The hung program was killed after the timeout and reaped.
        err = r.hget(P + "m:hang:e", "err")
        assert err is None, "done clears the key's meta"


@suite.test
def log_delivery_writes_one_json_line_per_job():
    path = tempfile.NamedTemporaryFile(prefix="hq-log-", suffix=".jsonl", delete=False).name
    with Store() as rs, processes() as start:
        mock, sink, q, _ = setup(start, rs, events={"e": {"deliver": "log:" + path}},
                                 nworkers=2)
        for i in range(50):
            q.push("k%d" % (i % 5), "e", {"i": i})
        r = rs.client()
        wait_until(lambda: int(r.hget(P + "stats", "done") or 0) == 50, 20, what="50 done")
        lines = open(path).read().splitlines()
        assert len(lines) == 50
        docs = [json.loads(l) for l in lines]
        for k in range(5):
            seqs = [d["seq"] for d in docs if d["key"] == "k%d:e" % k]
            assert seqs == list(range(1, 11)), seqs


suite.run()
