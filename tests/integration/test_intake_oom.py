"""A Redis full to its maxmemory (noeviction): the intake answers every
webhook 503 + Retry-After, naming Redis's refusal, and loses nothing it had
accepted; /healthz and /metrics say so (`redis_oom`, hookq_redis_oom 1);
workers keep draining; once they have freed memory, the intake stores again
and /healthz is ok again, without a restart."""
import json
import os
import tempfile
import time
import urllib.error
import urllib.request

import harness
from harness import HOOKQ, RedisServer, free_port, processes, wait_until
from intakelib import read_response

suite = harness.Suite("intake_oom")
P = "{hookq:0}:"
BODY_PAD = "x" * 2000


def config(rs, intake_port, admin_port, sink):
    text = "\n".join([
        "[redis]", "url = " + rs.url, "",
        "[intake]", "listen = 127.0.0.1:%d" % intake_port, "",
        "[admin]", "listen = 127.0.0.1:%d" % admin_port, "",
        "[worker]", "concurrency = 8", "",
        "[event post-create]", "deliver = log:" + sink, ""])
    d = tempfile.mkdtemp(prefix="hq-oom-")
    path = os.path.join(d, "hookq.ini")
    with open(path, "w") as f:
        f.write(text)
    return d, path


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def up(proc, port, log):
    """For wait_until: the admin listener answers /healthz 200."""
    if not proc.alive():
        raise AssertionError("hookq exited: " + open(log).read())
    try:
        return get(port, "/healthz")[0] == 200
    except urllib.error.URLError:
        return False


def oom_gauge(port):
    status, text = get(port, "/metrics")
    assert status == 200, text
    for line in text.splitlines():
        if line.startswith("hookq_redis_oom "):
            return float(line.split()[1])
    raise AssertionError("no hookq_redis_oom in /metrics")


def post(sock, n, whid=True):
    body = json.dumps({"code": "post-create",
                       "data": {"customer_id": "c%d" % (n % 20), "n": n, "pad": BODY_PAD}}).encode()
    head = "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if whid:
        head += "webhook-id: oom-%d\r\n" % n
    head += "Content-Length: %d\r\n\r\n" % len(body)
    sock.sendall(head.encode() + body)
    return read_response(sock)


@suite.test
def a_full_redis_refuses_with_503_says_so_and_stores_again_once_drained():
    import socket
    rs = RedisServer(extra=["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"])
    with rs, processes() as start:
        iport, aport = free_port(), free_port()
        d, cfg = config(rs, iport, aport, "/dev/null")
        log = os.path.join(d, "serve.log")
        serve = start([HOOKQ, "serve", "-c", cfg], cwd=d, stderr=open(log, "w"))
        wait_until(lambda: up(serve, aport, log), 20, what="hookq serve")
        assert oom_gauge(aport) == 0
        s = socket.create_connection(("127.0.0.1", iport), timeout=10)
        # Fill Redis through the intake until it refuses.
        stored, n = [], 0
        while True:
            r = post(s, n)
            if r.status != 202:
                break
            stored.append(n)
            n += 1
            assert n < 20000, "8 MB never filled"
        assert r.status == 503, r
        assert int(r.header("retry-after")) >= 1, r
        j = r.json()
        assert j["error"] == "redis_unavailable" and "OOM command not allowed" in j["detail"], j
        assert len(stored) > 1000
        # Every webhook is refused now, with or without a webhook-id, and
        # what was accepted is all there.
        for k in range(5):
            assert post(s, n + 1 + k, whid=bool(k % 2)).status == 503
        assert rs.client().llen(P + "q:c0:post-create") + sum(
            rs.client().llen(P + "q:c%d:post-create" % c) for c in range(1, 20)) == len(stored)
        status, body = get(aport, "/healthz")
        assert status == 503 and json.loads(body)["status"] == "redis_oom", (status, body)
        assert "OOM" in json.loads(body)["detail"]
        assert oom_gauge(aport) == 1
        # A worker drains the full Redis: its healthz says redis_oom, but 200.
        wport = free_port()
        wd, wcfg = config(rs, free_port(), wport, os.path.join(d, "delivered.log"))
        wlog = os.path.join(wd, "work.log")
        work = start([HOOKQ, "work", "-c", wcfg], cwd=wd, stderr=open(wlog, "w"))
        wait_until(lambda: up(work, wport, wlog), 20, what="hookq work")
        # The intake stores again once memory is freed: the same webhook is
        # accepted (it was refused, so it is not a duplicate).
        t0 = time.monotonic()
        while True:
            r = post(s, n)
            if r.status == 202:
                break
            assert r.status == 503, r
            assert time.monotonic() - t0 < 60, "still 503 after 60 s"
            time.sleep(0.05)
        assert get(aport, "/healthz") == (200, "{\"status\":\"ok\"}\n")
        assert oom_gauge(aport) == 0
        s.close()
        # Every accepted job is delivered, once each.
        def delivered():
            with open(os.path.join(d, "delivered.log")) as f:
                return [json.loads(x)["data"]["n"] for x in f if x.strip()]
        wait_until(lambda: len(delivered()) == len(stored) + 1, 60, interval=0.2,
                   what="every accepted job delivered")
        assert sorted(delivered()) == stored + [n]


@suite.test
def a_worker_alone_says_redis_oom_but_stays_healthy_since_it_drains():
    rs = RedisServer(extra=["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"])
    with rs, processes() as start:
        wport = free_port()
        d, cfg = config(rs, free_port(), wport, "/dev/null")
        log = os.path.join(d, "work.log")
        work = start([HOOKQ, "work", "-c", cfg], cwd=d, stderr=open(log, "w"))
        wait_until(lambda: up(work, wport, log), 20, what="hookq work")
        assert get(wport, "/healthz") == (200, "{\"status\":\"ok\"}\n")
        c = rs.client()
        k = 40  # what else fills this Redis does not matter: 4 MB, then a
        for i in range(k):  # maxmemory 1 MB under what it uses
            c.set("junk:%d" % i, "j" * 100000)
        c.config_set("maxmemory", c.info("memory")["used_memory"] - (1 << 20))
        status, body = get(wport, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "redis_oom", (status, body)
        assert oom_gauge(wport) == 1
        for i in range(k):
            c.delete("junk:%d" % i)
        assert get(wport, "/healthz") == (200, "{\"status\":\"ok\"}\n")
        assert oom_gauge(wport) == 0


if __name__ == "__main__":
    suite.run()
