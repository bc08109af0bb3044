"""The circuit breaker per target (DESIGN §3.4 step 3), end to end: a real
`hookq run` on a real redis-server, the sink and the mock API over loopback.
A target that fails `breaker` times in a row is down for every worker: its
keys park in place without counting attempts, nothing is dead-lettered, one
job at a time probes at the `probe` backoff, and the first success brings it
up; each change is one log line and shows in `hookq stats` and /metrics.
The same for api.base_url on fetches. The 20 s outage is in
test_breaker_outage.py (its own ctest, so that it runs beside the others)."""
import time

from deliverlib import Run
from harness import RedisServer, Suite, lua_script, processes, wait_until
from proclib import Double, Queue, prefix

suite = Suite("breaker")


@suite.test
def the_script_trips_after_n_failures_lets_one_probe_at_a_time_and_backs_off():
    """breaker.lua alone, on its slot: the transitions of processing.md."""
    with RedisServer() as rs:
        r = rs.client()
        br = r.register_script(lua_script("breaker"))
        P0, T = prefix(0), "http://127.0.0.1:1"

        def call(*args):
            return br(keys=[P0], args=list(args))

        def fail(job, err="503"):
            return call("fail", T, job, 3, 200, 800, err)
        assert call("check", T, "j1/1", 1000) == [1, 0]
        assert call("peek", T, "") == [1, 0]        # a loop's view: up, clean
        assert fail("j1/1") == [1, 0, 1]            # counted, still up
        assert call("peek", T, "") == [1, 1]        # up, not clean
        assert call("ok", T, "j2/1") == [0, 0, 0]   # an answer resets the count
        assert fail("j1/2") == [1, 0, 1]
        assert fail("j2/2") == [1, 0, 2]
        assert call("check", T, "j3/1", 1000) == [1, 2]
        assert fail("j3/1") == [1, 1, 3]            # the third: down, counted
        st, wait = call("check", T, "j4/1", 1000)
        assert st == 0 and 100 < wait <= 200, wait  # parked until the probe
        st, wait, probes = fail("j5/1", "late")     # began before: not counted
        assert st == 0 and wait <= 200 and probes == 0
        st, wait = call("peek", T, "")
        assert st == 0 and 10 <= wait <= 200, wait       # down
        time.sleep(0.25)
        assert call("peek", T, "") == [0, 10]            # a probe is due: a
        assert call("peek", T, "") == [0, 10]            # peek does not take it
        assert call("check", T, "j4/2", 300) == [2, 3]   # the probe
        st, wait = call("check", T, "j6/1", 300)
        assert st == 0 and 10 <= wait <= 300, wait       # one at a time
        st, wait, probes = fail("j4/2")                  # a failed probe
        assert st == 0 and probes == 1 and 300 < wait <= 400, wait  # 200 * 2
        h = {k.decode(): v.decode() for k, v in r.hgetall(P0 + "br:" + T).items()}
        assert h["np"] == "1" and h["f"] == "3" and "pe" not in h, h
        time.sleep(0.45)
        # A probe whose worker vanished: after its lease, another job probes.
        assert call("check", T, "j7/1", 100) == [2, 3]
        time.sleep(0.15)
        assert call("check", T, "j8/1", 1000) == [2, 3]
        ok, down_ms, probes = call("ok", T, "j8/1")
        assert ok == 1 and down_ms >= 700 and probes == 1
        assert call("check", T, "j9/1", 1000) == [1, 0]
        now, lst = call("list", "", "")
        assert lst == [T.encode(), 0, -1, 0, 0, b"503"], lst
        # Everything it wrote is in shard 0's slot.
        assert all(k.decode().startswith(P0) for k in r.keys("*"))


@suite.test
def errors_cut_inside_utf8_still_give_json():
    """A last error quotes an answer cut at a byte count: stats and keys
    --json stay valid JSON, each broken byte as U+FFFD."""
    import json
    import os
    import subprocess
    import tempfile
    from harness import HOOKQ
    with RedisServer() as rs:
        r = rs.client()
        q = Queue(r)
        q.push("c1", "e", {"n": 1})
        r.hset(prefix() + "m:c1:e", "err", b"answered 503: caf\xc3")
        r.sadd(prefix(0) + "brs", "http://h:1")
        r.hset(prefix(0) + "br:http://h:1", mapping={"f": 1, "err": b"\xff\xfeok \xe2\x82"})
        d = tempfile.mkdtemp(prefix="hq-breaker-utf8-")
        cfg = os.path.join(d, "hookq.ini")
        with open(cfg, "w") as f:
            f.write("[redis]\nurl = %s\n" % rs.url)
        out = subprocess.run([HOOKQ, "stats", "--json", "--interval", "0", "-c", cfg],
                             capture_output=True, timeout=20)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["targets"] == [{"target": "http://h:1", "up": True, "failures": 1,
                                   "last_error": "\ufffd\ufffdok \ufffd\ufffd"}], doc["targets"]
        assert doc["top_keys"][0]["error"] == "answered 503: caf\ufffd", doc["top_keys"]
        out = subprocess.run([HOOKQ, "keys", "--json", "-c", cfg], capture_output=True,
                             timeout=20)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["keys"][0]["error"] == "answered 503: caf\ufffd"


@suite.test
def exec_exit_75_counts_and_a_program_is_its_own_target():
    import os
    import stat
    import tempfile
    with RedisServer() as rs, processes() as start:
        d = tempfile.mkdtemp(prefix="hq-breaker-exec-")
        flag = os.path.join(d, "ok")
        prog = os.path.join(d, "handle")
        with open(prog, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\n[ -e %s ] && exit 0\nexit 75\n" % flag)
        os.chmod(prog, stat.S_IRWXU)
        run = Run(start, rs, {"e": ["deliver = exec:" + prog]},
                  {"worker": ["max_attempts = 2", "backoff = 100ms..200ms",
                              "shutdown_timeout = 2s"],
                   "deliver": ["breaker = 2", "probe = 500ms..1s"]})
        for k in range(4):
            assert run.post("c%d" % k, "e", {})[0] == 202
        target = "exec:" + prog
        wait_until(lambda: (run.target(target) or {}).get("up") is False, 10,
                   what="the program marked down")
        time.sleep(2)
        assert Queue(rs.client()).dead_letters() == []
        open(flag, "w").close()
        wait_until(lambda: run.stats()["counters"].get("done", 0) >= 4, 10,
                   what="4 jobs done")
        assert run.target(target)["up"] is True
        assert Queue(rs.client()).dead_letters() == []


@suite.test
def the_fetch_breaker_on_api_base_url():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        sink = Double(start, "sink")
        mock.control(fail={"/posts": 500})
        run = Run(start, rs, {"p": ["fetch = GET /posts/{data.id}",
                                    "deliver = %s/hooks" % sink.url]},
                  {"worker": ["max_attempts = 2", "backoff = 100ms..200ms",
                              "shutdown_timeout = 2s"],
                   "api": ["base_url = " + mock.url + "/", "rate = 100/1s"],
                   "deliver": ["breaker = 2", "probe = 500ms..1s"]})
        q = Queue(rs.client())
        for k in range(4):
            q.set_token("c%d" % k, "tok-%d" % k)
            assert run.post("c%d" % k, "p", {"id": k})[0] == 202
        # The API's origin is the target: base_url's trailing '/' or path aside.
        target = mock.url
        wait_until(lambda: (run.target(target) or {}).get("up") is False, 10,
                   what="the API marked down")
        assert run.target_up_metric(target) == 0
        time.sleep(2)
        assert q.dead_letters() == []
        # While down, only probes reach the API.
        n_down = len(mock.records())
        time.sleep(1.2)
        assert len(mock.records()) - n_down <= 2
        mock.control(fail={"/posts": 0})
        wait_until(lambda: sink.count() >= 4, 10, what="4 deliveries")
        assert q.dead_letters() == []
        assert run.target(target)["up"] is True
        assert run.target_up_metric(target) == 1
        assert "target '%s' is down" % target in run.log()


def breaker_calls(monitor_log, target):
    """The breaker.lua calls about `target` that MONITOR saw, by op."""
    out = {}
    with open(monitor_log, errors="replace") as f:
        for line in f:
            for op in ("check", "peek", "ok", "fail"):
                if '"%s" "%s"' % (op, target) in line:
                    out[op] = out.get(op, 0) + 1
    return out


@suite.test
def a_healthy_target_costs_a_breaker_call_a_second_per_loop_not_one_per_job():
    """With the breaker on, a loop that saw its target up with no failure
    lets its deliveries go without asking Redis; it peeks in the background
    at most once a second. Before each loop kept that view, every delivery
    made one check: N jobs, at least N calls."""
    import subprocess
    jobs, loops, conc = 2000, 2, 16
    with RedisServer() as rs, processes() as start:
        # 25 ms an answer, 32 in flight: 1.6 s or more, long enough for the
        # views to go stale (1 s) and be peeked again.
        sink = Double(start, "sink", "--delay-ms", 25)
        mon_log = rs.dir + "/monitor.log"
        start(["redis-cli", "-p", str(rs.port), "monitor"], stdout=open(mon_log, "w"),
              stderr=subprocess.DEVNULL)
        wait_until(lambda: "OK" in open(mon_log).read(), 10, what="MONITOR")
        q = Queue(rs.client())
        q.push_many([("c%d" % (i % 50), "e", {"n": i}) for i in range(jobs)])
        r = rs.client()
        r.config_resetstat()
        t0 = time.monotonic()
        run = Run(start, rs, {"e": ["deliver = %s/hooks" % sink.url]},
                  {"worker": ["threads = %d" % loops, "concurrency = %d" % conc],
                   "deliver": ["breaker = 5"]})
        wait_until(lambda: sink.count() >= jobs, 60, interval=0.05,
                   what="%d deliveries" % jobs)
        elapsed = time.monotonic() - t0
        time.sleep(0.3)  # MONITOR's last lines
        calls = breaker_calls(mon_log, sink.url)
        evalsha = int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
        print("  %d jobs in %.1f s: breaker calls %s; %.2f EVALSHA a job"
              % (jobs, elapsed, calls, evalsha / jobs))
        assert all(rec["status"] == 200 for rec in sink.records())
        # Jobs that gate before this loop's first answer each ask (at most
        # the concurrency of each loop); after that, a peek at most once a
        # second per loop.
        bound = loops * conc + loops * (elapsed + 2)
        assert jobs >= 3 * bound, (jobs, bound)  # the test can tell
        assert calls.get("check", 0) + calls.get("peek", 0) <= bound, (calls, bound)
        assert calls.get("fail", 0) == 0 and calls.get("ok", 0) == 0, calls
        # The views were kept fresh by peeks (they go stale after 1 s).
        assert elapsed < 1.5 or calls.get("peek", 0) >= 1, (elapsed, calls)
        assert "is down" not in run.log()


suite.run()
