"""The circuit breaker through a 20 s outage (DESIGN §3.4 step 3, issue
12): a delivery target answers 503 for 20 s to a `hookq run` with
`max_attempts = 3`; nothing is dead-lettered, only probes reach it, one at
a time at the probe backoff, and once it is back every key resumes in
order. The target is shown down, then up, in `hookq stats --json` and
/metrics, with one log line per change. (A test of its own: it mostly
waits, so ctest runs it beside the others.)"""
import re
import time

from deliverlib import Run
from harness import RedisServer, Suite, processes, wait_until
from proclib import Double, Queue

suite = Suite("breaker_outage")


def by_key(records):
    out = {}
    for r in records:
        out.setdefault(r["key"], []).append(r)
    return out


@suite.test
def a_target_down_for_20s_loses_nothing_to_the_dead_letters_and_resumes_in_order():
    outage_s = 20
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink")
        sink.control(status=503)
        run = Run(start, rs, {"order": ["deliver = %s/hooks" % sink.url]},
                  {"worker": ["max_attempts = 3", "backoff = 200ms..500ms",
                              "shutdown_timeout = 2s"],
                   "deliver": ["breaker = 3", "probe = 1s..2s"]})
        keys, per_key = 6, 5
        t0 = time.time()
        for i in range(per_key):
            for k in range(keys):
                st, _ = run.post("c%d" % k, "order", {"n": i + 1})
                assert st == 202
        target = sink.url
        wait_until(lambda: (run.target(target) or {}).get("up") is False, 10,
                   what="the target marked down")
        t = run.target(target)
        assert t["failures"] == 3 and "503" in t["last_error"], t
        assert t["next_probe_ms"] >= t["down_since_ms"] + 1000, t
        assert run.target_up_metric(target) == 0
        down_at = time.time()
        st = run.stats()
        assert st["total"]["dead_letters"] == 0, st
        time.sleep(max(0, t0 + outage_s - time.time()))
        # Still down, nothing lost, no job past its attempts.
        assert run.target(target)["up"] is False
        assert Queue(rs.client()).dead_letters() == []
        sink.control(status=200)
        back = time.time()
        wait_until(lambda: sum(1 for r in sink.records() if r["status"] == 200)
                   >= keys * per_key, 30, interval=0.1, what="every job delivered")
        recovered = time.time() - back
        recs = sink.records()
        assert Queue(rs.client()).dead_letters() == []
        # Every key in order, each job delivered once.
        for key, rs_ in by_key([r for r in recs if r["status"] == 200]).items():
            assert [r["body"]["data"]["n"] for r in rs_] == list(range(1, per_key + 1)), \
                (key, rs_)
        # A probe comes at most 2 s after the target is back (probe = 1s..2s),
        # and the parked keys follow within a second of it.
        assert recovered < 4, recovered
        # While down: only probes, one at a time at the probe backoff (the
        # attempts in flight when it went down answered at once).
        during = sorted(r["t"] / 1000 for r in recs
                        if r["status"] == 503 and r["t"] / 1000 > down_at + 0.5)
        assert outage_s / 2 / 2 <= len(during) <= outage_s / 1 + 2, during
        gaps = [b - a for a, b in zip(during, during[1:])]
        assert all(g >= 0.9 for g in gaps), gaps
        # No job was charged for the outage: 3 attempts would have dead-lettered it.
        assert max(int(r["attempt"]) for r in recs) <= 3
        wait_until(lambda: run.target(target)["up"] is True, 5, what="up in stats")
        assert run.target_up_metric(target) == 1
        log = run.log()
        assert len(re.findall(r"target '%s' is down after 3 consecutive failures" %
                              re.escape(target), log)) == 1, log
        assert len(re.findall(r"target '%s' is up again" % re.escape(target), log)) == 1, log



suite.run()
