#!/usr/bin/python3
"""bench/breaker.py: what the circuit breaker costs Redis per processed job
(issues 9 and 10). On a private redis-server (appendonly no): JOBS jobs
queued over KEYS customers (not measured), then one `hookq work`
(concurrency 32, 2 threads) delivers them to the sink double over
loopback, with `[deliver] breaker = 5` (the default) and again with
`breaker = 0` (no breaker: the floor). For each: jobs/s, Redis commands a
job (INFO commandstats, all of them, and EVALSHA alone), the breaker
script's calls by op (MONITOR, only with --monitor: it costs Redis CPU),
and Redis CPU a job (INFO used_cpu_sys + used_cpu_user over the drain).

Usage: bench/breaker.py [BUILD]   (env JOBS, KEYS, RUNS; HQ_HOOKQ for
another hookq binary). Not run by ctest; stops what it starts by PID.
"""
import os
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                        else os.path.join(here, "..", "build-release"))
os.environ.setdefault("HQ_HOOKQ", os.path.join(build, "hookq"))
os.environ.setdefault("HQ_SINK", os.path.join(build, "tests", "sink"))
os.environ.setdefault("REDIS_SERVER", "redis-server")

from harness import HOOKQ, RedisServer, processes, wait_until  # noqa: E402
from proclib import Double, Queue  # noqa: E402

JOBS = int(os.environ.get("JOBS", "20000"))
KEYS = int(os.environ.get("KEYS", "200"))
RUNS = int(os.environ.get("RUNS", "3"))


def cpu(r):
    i = r.info("cpu")
    return float(i["used_cpu_sys"]) + float(i["used_cpu_user"])


def one(breaker):
    with RedisServer() as rs, processes() as start:
        sink = Double(start, "sink", "--quiet")
        r = rs.client()
        q = Queue(r)
        for i in range(0, JOBS, 5000):
            q.push_many([("c%d" % (n % KEYS), "e", {"n": n})
                         for n in range(i, min(JOBS, i + 5000))])
        d = tempfile.mkdtemp(prefix="hq-bench-breaker-")
        cfg = os.path.join(d, "hookq.ini")
        with open(cfg, "w") as f:
            f.write("[redis]\nurl = %s\n[worker]\nconcurrency = 32\nthreads = 2\n"
                    "[deliver]\nbreaker = %d\n[event e]\ndeliver = %s/hooks\n"
                    % (rs.url, breaker, sink.url))
        r.config_resetstat()
        c0, t0 = cpu(r), time.monotonic()
        start([HOOKQ, "work", "-c", cfg], cwd=d, stderr=open(os.path.join(d, "err"), "w"))
        wait_until(lambda: sink.count() >= JOBS, 300, interval=0.05, what="every delivery")
        t1, c1 = time.monotonic(), cpu(r)
        st = r.info("commandstats")
        total = sum(v["calls"] for v in st.values())
        evalsha = st.get("cmdstat_evalsha", {}).get("calls", 0)
        return {"jobs_s": JOBS / (t1 - t0), "cmds": total / JOBS, "evalsha": evalsha / JOBS,
                "cpu_us": (c1 - c0) * 1e6 / JOBS}


def main():
    print("== breaker: %d jobs over %d keys, one hookq work (%s), delivered to the sink"
          % (JOBS, KEYS, HOOKQ))
    for breaker in (5, 0):
        runs = sorted((one(breaker) for _ in range(RUNS)), key=lambda x: x["cpu_us"])
        m = runs[len(runs) // 2]
        print("breaker = %d: %.0f jobs/s, %.2f Redis commands a job (EVALSHA %.2f), "
              "Redis CPU %.2f us a job (median of %d; all: %s)"
              % (breaker, m["jobs_s"], m["cmds"], m["evalsha"], m["cpu_us"], RUNS,
                 ", ".join("%.2f" % x["cpu_us"] for x in runs)))


if __name__ == "__main__":
    main()
