"""Many hosts (DESIGN §3.7, §3.1 `hookq workers`, §3.5): every worker
process announces itself in Redis every second; `hookq workers --json`,
GET /api/workers and the hookq_workers gauge list the live ones, and one
that was SIGKILLed is gone from all three within 5 s. And the namespace's
shard count, recorded by its first process: a process with another
`shards` refuses to start (exit 2), naming both values. On one
redis-server, and with HQ_REDIS=cluster (integration.workers_cluster) on a
3-master cluster, 12 shards."""
import calendar
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from harness import HOOKQ, Suite, free_port, processes, wait_until
from storelib import Store

suite = Suite("workers")

BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HOOKQ_")}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def config(d, name, srv, admin="off", shards=None):
    """A config on store `srv`, with its shard count unless `shards`."""
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("[redis]\nurl = %s\nshards = %d\n[admin]\nlisten = %s\n"
                "[worker]\nthreads = 3\nconcurrency = 6\nshutdown_timeout = 1s\n"
                "[event x]\ndeliver = log\n" % (srv.url, shards or srv.shards, admin))
    return path


def hookq(*args, timeout=30):
    return subprocess.run([HOOKQ] + list(args), env=BASE_ENV, timeout=timeout,
                          capture_output=True, text=True)


def workers_json(cfg):
    r = hookq("workers", "--json", "-c", cfg)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def gauge(admin):
    _, text = http_get("http://%s/metrics" % admin)
    m = re.search(r"^hookq_workers (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


@suite.test
def two_workers_are_listed_and_a_killed_one_is_gone_within_5s():
    d = tempfile.mkdtemp(prefix="hq-workers-")
    with Store() as srv, processes() as start:
        admin = "127.0.0.1:%d" % free_port()
        a = config(d, "a.ini", srv, admin=admin)
        b = config(d, "b.ini", srv)
        t0 = int(time.time() * 1000)
        w1 = start([HOOKQ, "work", "-c", a], env=BASE_ENV,
                   stderr=open(os.path.join(d, "w1.log"), "w"))
        w2 = start([HOOKQ, "work", "-c", b], env=BASE_ENV,
                   stderr=open(os.path.join(d, "w2.log"), "w"))
        # Each announces itself at once, then every second.
        got = wait_until(lambda: len(workers_json(a)) == 2 and workers_json(a), 5,
                         what="two workers listed")
        assert sorted(w["pid"] for w in got) == sorted([w1.pid, w2.pid]), got
        r = hookq("--version")
        version = r.stdout.split()[1]
        for w in got:
            assert list(w) == ["host", "pid", "version", "started", "loops",
                               "in_flight", "last_seen"], w
            assert w["host"] == socket.gethostname(), w
            assert w["version"] == version and w["loops"] == 3 and w["in_flight"] == 0, w
            assert RFC3339.match(w["started"]) and RFC3339.match(w["last_seen"]), w
            assert w["started"] <= w["last_seen"], w
            started = calendar.timegm(time.strptime(w["started"][:19], "%Y-%m-%dT%H:%M:%S"))
            assert abs(started * 1000 - t0) < 10000, (w, t0)
        # last_seen moves: the announcement repeats.
        first = {w["pid"]: w["last_seen"] for w in got}
        wait_until(lambda: all(w["last_seen"] > first[w["pid"]] for w in workers_json(a)),
                   3, what="a second announcement")
        # The same list over the admin API, and the gauge.
        status, body = http_get("http://%s/api/workers" % admin)
        assert status == 200 and sorted(w["pid"] for w in json.loads(body)) == \
            sorted([w1.pid, w2.pid]), body
        assert gauge(admin) == 2
        # The table for humans names both.
        r = hookq("workers", "-c", a)
        assert r.returncode == 0 and str(w1.pid) in r.stdout and str(w2.pid) in r.stdout \
            and r.stdout.rstrip().endswith("2 worker processes"), r

        w2.signal(signal.SIGKILL)
        w2.wait(5)
        killed = time.monotonic()
        # Poll until it is gone. A listing made by a call started at time t
        # happened after t: the start of the last call that still listed it
        # bounds how long it stayed, whatever each call costs (sanitizers,
        # a loaded machine).
        last_listed = killed
        while True:
            t = time.monotonic()
            pids = [w["pid"] for w in workers_json(a)]
            if w2.pid not in pids:
                break
            last_listed = t
            assert t - killed < 10, "the killed worker still listed after 10 s"
            time.sleep(0.05)
        assert pids == [w1.pid], pids
        # Its last announcement was before the kill: 5 s after it at most.
        assert last_listed - killed <= 5.1, last_listed - killed
        assert gauge(admin) == 1
        assert [w["pid"] for w in json.loads(http_get("http://%s/api/workers" % admin)[1])] \
            == [w1.pid]
        # The live one stays listed the whole time.
        time.sleep(1.2)
        assert [w["pid"] for w in workers_json(a)] == [w1.pid]
        # A worker that stops (SIGTERM, drained) leaves the list at once.
        assert w1.stop() == 0
        assert workers_json(a) == []


@suite.test
def a_process_with_another_shard_count_refuses_to_start():
    d = tempfile.mkdtemp(prefix="hq-shards-")
    with Store() as srv, processes() as start:
        meta = srv.client("{hookq:meta}:")
        n = srv.shards
        one = config(d, "one.ini", srv)
        four = config(d, "four.ini", srv, shards=4)
        # The first process records its shard count (1, or 12 on the cluster).
        w = start([HOOKQ, "work", "-c", one], env=BASE_ENV,
                  stderr=open(os.path.join(d, "w.log"), "w"))
        wait_until(lambda: meta.get("{hookq:meta}:shards") == b"%d" % n, 5,
                   what="shard count recorded")
        for cmd in (["work"], ["serve"], ["run"], ["stats"], ["keys"], ["workers", "--json"]):
            r = hookq(*cmd, "-c", four, timeout=20)
            err = r.stderr
            assert r.returncode == 2, (cmd, r)
            assert "shards = 4" in err and "shards = %d" % n in err, (cmd, err)
            if "--json" in cmd:
                e = json.loads(err)
                assert e["error"] == "config" and "shards = 4" in e["detail"], e
                assert r.stdout == "", r
        # The worker of the right count is undisturbed, and the record stays.
        assert w.alive()
        assert meta.get("{hookq:meta}:shards") == b"%d" % n
        r = hookq("stats", "-c", one)
        assert r.returncode == 0, r
        # config and store accept the same maximum (in a namespace of its own).
        big = config(d, "big.ini", srv, shards=1024)
        text = open(big).read().replace("[redis]\n", "[redis]\nnamespace = big\n")
        open(big, "w").write(text)
        r = hookq("check", "-c", big)
        assert r.returncode == 0, r
        r = hookq("keys", "-c", big)
        assert r.returncode == 0, r
        assert srv.client("{big:meta}:").get("{big:meta}:shards") == b"1024"
        r = hookq("keys", "-c", config(d, "big2.ini", srv, shards=1025))
        assert r.returncode == 2 and "shards" in r.stderr, r


suite.run()
