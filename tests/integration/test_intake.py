"""Intake answers, row by row of DESIGN §3.3, against a real redis-server."""
import json
import os
import socket
import subprocess
import tempfile
import time

import harness
from intakelib import Intake, config_text, envelope, expect_error, read_response

suite = harness.Suite("intake")
redis = None
intake = None


def queue(customer, code="post-create"):
    return redis.client().lrange("{hookq:0}:q:%s:%s" % (customer, code), 0, -1)


@suite.test
def stored_is_202_with_id_key_and_seq_from_1():
    seqs, ids = [], set()
    for i in range(3):
        r = intake.post(envelope("c-seq", n=i))
        assert r.status == 202, r
        j = r.json()
        assert j["key"] == "c-seq:post-create", j
        assert isinstance(j["id"], str) and j["id"], j
        ids.add(j["id"])
        seqs.append(j["seq"])
    assert seqs == [1, 2, 3], seqs
    assert len(ids) == 3
    assert len(queue("c-seq")) == 3


@suite.test
def stored_job_is_the_body_exactly_as_received():
    body = b'{ "code" : "post-create",\n  "data": {"customer_id": "c-raw", "x": "\\u00e9\xc3\xa9"} }'
    t0 = int(time.time() * 1000)
    r = intake.post(body, headers={"webhook-id": "raw-1"})
    assert r.status == 202, r
    rec = queue("c-raw")[0]
    jid, seq, received, whid, stored = rec.split(b"\n", 4)
    assert jid.decode() == r.json()["id"]
    assert seq == b"1"
    assert abs(int(received) - t0) < 5000, (received, t0)
    assert whid == b"raw-1"
    assert stored == body, stored


@suite.test
def integer_customer_is_kept_as_decimal_text():
    r = intake.post('{"code":"post-create","data":{"customer_id":4200000000123}}')
    assert r.status == 202, r
    assert r.json()["key"] == "4200000000123:post-create"


@suite.test
def duplicate_webhook_id_is_200_with_the_first_id():
    h = {"webhook-id": "dup-%f" % time.time()}
    first = intake.post(envelope("c-dup"), headers=h)
    assert first.status == 202, first
    again = intake.post(envelope("c-dup"), headers=h)
    assert again.status == 200, again
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert len(queue("c-dup")) == 1


@suite.test
def invalid_json_is_400_with_line_and_column():
    deep = '{"code":"post-create","data":' + "[" * 10000 + "]" * 10000 + "}"
    cases = {
        "truncated": b'{"code":"post-create","data":{"customer_id":"c"',
        "deep": deep.encode(),
        "invalid utf-8": b'{"code":"post-create","data":{"customer_id":"\xff\xfe"}}',
        "bare array": b'[{"code":"post-create","data":{"customer_id":"c"}}]',
        "empty": b"",
        "trailing garbage": envelope("c").encode() + b" x",
    }
    for name, body in cases.items():
        r = intake.post(body)
        j = expect_error(r, 400, "invalid_json")
        if name != "bare array":
            assert "line" in j["detail"] and "column" in j["detail"], (name, j)
        else:
            assert "object" in j["detail"], j


@suite.test
def missing_fields_are_400_in_order():
    rows = [
        ('{"data":{}}', "missing_code"),
        ('{"code":"","data":{"customer_id":"c"}}', "missing_code"),
        ('{"code":5,"data":{"customer_id":"c"}}', "missing_code"),
        ('{"code":"post-create"}', "missing_data"),
        ('{"code":"nope"}', "missing_data"),
        ('{"code":"post-create","data":{}}', "missing_customer"),
        ('{"code":"post-create","data":{"customer_id":null}}', "missing_customer"),
        ('{"code":"post-create","data":{"customer_id":""}}', "missing_customer"),
        ('{"code":"post-create","data":{"customer_id":1.5}}', "missing_customer"),
        ('{"code":"post-create","data":{"customer_id":["a"]}}', "missing_customer"),
        # The customer check comes before the event lookup (422).
        ('{"code":"nope","data":{}}', "missing_customer"),
    ]
    for body, error in rows:
        expect_error(intake.post(body), 400, error)


@suite.test
def unknown_code_is_422():
    j = expect_error(intake.post(envelope("c", code="no-such-event")), 422, "unknown_code")
    assert "no-such-event" in j["detail"], j


@suite.test
def other_path_is_404():
    expect_error(intake.post(envelope(), path="/other"), 404, "not_found")
    expect_error(intake.post(envelope(), path="/webhook/x"), 404, "not_found")
    # A query string does not change the path.
    assert intake.post(envelope("c-q"), path="/webhook?src=test").status == 202


@suite.test
def other_methods_are_405_with_allow_post():
    for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        r = intake.post(b"", method=m)
        expect_error(r, 405, "method_not_allowed")
        assert r.header("allow") == "POST", r
    r = intake.post(b"", method="HEAD")
    assert r.status == 405 and r.header("allow") == "POST" and r.body == b"", r
    r = intake.post(b"", method="BREW")
    assert r.status in (405, 501), r
    assert r.json()["error"] == "method_not_allowed"


@suite.test
def key_over_max_key_depth_is_429_with_retry_after():
    with Intake(redis.url, {"max_key_depth": "2"}) as small:
        for _ in range(2):
            assert small.post(envelope("c-full")).status == 202
        r = small.post(envelope("c-full"))
        expect_error(r, 429, "key_full")
        assert int(r.header("retry-after")) > 0, r
        # Other keys of the customer, and other customers, still go in.
        assert small.post(envelope("c-full", code="post-delete")).status == 202
        assert small.post(envelope("c-other")).status == 202
        assert len(queue("c-full")) == 2


@suite.test
def content_length_must_be_plain_decimal():
    body = envelope("c-cl").encode()
    for bad in ("+%d" % len(body), "%d " % len(body) + "x", "0x%x" % len(body),
                "-1", "%d, %d" % (len(body), len(body)), ""):
        s = intake.connect()
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + bad.encode() + b"\r\n\r\n" + body)
        r = read_response(s)
        s.close()
        expect_error(r, 400, "bad_request")


@suite.test
def two_content_lengths_that_differ_are_400():
    body = envelope("c-cl2").encode()
    s = intake.connect()
    s.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n"
              % (len(body), len(body) + 1) + body)
    expect_error(read_response(s), 400, "bad_request")
    s.close()
    # Two that agree are one.
    s = intake.connect()
    s.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n"
              % (len(body), len(body)) + body)
    assert read_response(s).status == 202
    s.close()


@suite.test
def keep_alive_and_pipelined_requests_are_answered_in_order():
    s = intake.connect()
    for i in range(3):
        r = intake.post(envelope("c-ka", n=i), sock=s)
        assert r.status == 202 and r.json()["seq"] == i + 1, r
        assert r.header("connection") != "close"
    # Three requests in one write: three answers, in order.
    reqs = b""
    for i in range(3):
        b = envelope("c-pipe", n=i).encode()
        reqs += b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
    s.sendall(reqs)
    seqs = []
    rest = b""
    for _ in range(3):
        r = read_response(_Prefixed(s, rest))
        rest = r.rest
        seqs.append(r.json()["seq"])
    assert seqs == [1, 2, 3], seqs
    s.close()


@suite.test
def requests_that_arrive_together_are_each_stored_and_answered():
    """The requests one loop pass reads are stored in one enqueue call per
    shard: each still gets its own answer, and each key its own order."""
    with harness.RedisServer() as r, \
            Intake(r.url, intake={"threads": "1"}, redis_opts={"shards": "4"}) as i:
        keys = ["c-b%d" % k for k in range(6)]
        socks = [i.connect() for _ in range(48)]
        # Connection n posts job n // 6 of key n % 6: every key gets 8 jobs.
        reqs = []
        for n, s in enumerate(socks):
            b = envelope(keys[n % 6], n=n).encode()
            reqs.append(b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
        for s, req in zip(socks, reqs):
            s.sendall(req)
        answers = [read_response(s).json() for s in socks]
        for s in socks:
            s.close()
        c = r.client()
        shards = set()
        for k in keys:
            mine = [a for a in answers if a["key"] == k + ":post-create"]
            assert sorted(a["seq"] for a in mine) == list(range(1, 9)), mine
            prefix = [p for p in ("{hookq:%d}:" % sh for sh in range(4))
                      if c.exists(p + "q:%s:post-create" % k)]
            assert len(prefix) == 1, prefix
            shards.add(prefix[0])
            recs = c.lrange(prefix[0] + "q:%s:post-create" % k, 0, -1)
            # Stored in seq order, each record the job its answer named.
            got = [(int(x.split(b"\n", 4)[1]), x.split(b"\n", 4)[0].decode()) for x in recs]
            assert got == sorted((a["seq"], a["id"]) for a in mine), (got, mine)
        assert len(shards) > 1, "the keys should span shards: %r" % shards


class _Prefixed:
    """A socket whose first reads return bytes already received."""

    def __init__(self, s, prefix):
        self.s, self.prefix = s, prefix

    def settimeout(self, t):
        self.s.settimeout(t)

    def recv(self, n):
        if self.prefix:
            p, self.prefix = self.prefix, b""
            return p
        return self.s.recv(n)


@suite.test
def chunked_body_is_accepted():
    body = envelope("c-chunk").encode()
    s = intake.connect()
    s.sendall(b"POST /webhook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              + b"%x\r\n%s\r\n" % (10, body[:10]) + b"%X;ext=1\r\n%s\r\n" % (len(body) - 10, body[10:])
              + b"0\r\n\r\n")
    r = read_response(s)
    s.close()
    assert r.status == 202, r
    assert queue("c-chunk")[0].split(b"\n", 4)[4] == body


@suite.test
def http10_request_gets_answer_and_close():
    b = envelope("c-10").encode()
    s = intake.connect()
    s.sendall(b"POST /webhook HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
    r = read_response(s)
    assert r.status == 202 and r.header("connection") == "close", r
    assert s.recv(10) == b""
    s.close()


@suite.test
def customer_from_a_header():
    with Intake(redis.url, {"customer": "header:X-Customer"}) as hi:
        r = hi.post('{"code":"post-create","data":{}}', headers={"X-Customer": "hdr-cust"})
        assert r.status == 202 and r.json()["key"] == "hdr-cust:post-create", r
        expect_error(hi.post('{"code":"post-create","data":{}}'), 400, "missing_customer")


@suite.test
def customer_by_json_pointer_with_escapes():
    with Intake(redis.url, {"customer": "/meta/a~1b/c~0d"}) as pi:
        r = pi.post('{"code":"post-create","data":1,"meta":{"a/b":{"c~d":"ptr-cust"}}}')
        assert r.status == 202 and r.json()["key"] == "ptr-cust:post-create", r


@suite.test
def counters_count_answers_by_reason():
    # The intake alone (tests/integration/intake_server.c) prints its
    # counters when it stops: what /metrics is built from.
    port = harness.free_port()
    d = tempfile.mkdtemp(prefix="hq-counters-")
    cfg = os.path.join(d, "hookq.ini")
    with open(cfg, "w") as f:
        f.write(config_text(redis.url, port))
    p = subprocess.Popen([harness.helper("intake_server"), "-c", cfg],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline().startswith("ready")
        it = Intake.__new__(Intake)  # a client for the helper's port
        it.port = port
        assert it.post(envelope("c-cnt", n=1)).status == 202
        assert it.post(envelope("c-cnt", n=2), headers={"webhook-id": "cnt-1"}).status == 202
        assert it.post(envelope("c-cnt", n=2), headers={"webhook-id": "cnt-1"}).status == 200
        assert it.post("[").status == 400
        assert it.post(envelope(), path="/nope").status == 404
        assert it.post(envelope(code="nope")).status == 422
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=10)
    stats = dict((l.split()[1], int(l.split()[2])) for l in out.splitlines()
                 if l.startswith("stat "))
    assert stats["accepted"] == 2, stats
    assert stats["duplicate"] == 1, stats
    assert stats["invalid_json"] == 1 and stats["not_found"] == 1, stats
    assert stats["unknown_code"] == 1 and stats["missing_code"] == 0, stats


def main():
    global redis, intake
    with harness.RedisServer() as r:
        redis = r
        with Intake(r.url) as i:
            intake = i
            suite.run()


if __name__ == "__main__":
    main()
