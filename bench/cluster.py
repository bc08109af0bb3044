"""bench/cluster.sh's driver: see there. The servers come from the tests'
clusterlib (real redis-server processes on free loopback ports, stopped by
PID)."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from clusterlib import Node, RedisCluster  # noqa: E402
from harness import free_port, wait_until  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-release")
JOBS = int(os.environ.get("JOBS", "200000"))
DURATION = int(os.environ.get("HQ_BENCH_DURATION", "5"))
SHARDS = 12


def cpu(nodes):
    out = {}
    for n in nodes:
        i = n.client().info("cpu")
        out[n.port] = float(i["used_cpu_sys"]) + float(i["used_cpu_user"])
    return out


def report(what, nodes, before, after, count):
    per = {p: (after[p] - before[p]) * 1e6 / count for p in after}
    total = sum(per.values())
    shares = ", ".join("%d: %.2f us (%.0f%%)" % (p, v, 100 * v / total if total else 0)
                       for p, v in sorted(per.items()))
    print("  %s redis cpu per job: %.2f us in all; per node %s" % (what, total, shares))
    return total


def queue(url, nodes):
    before = cpu(nodes)
    out = subprocess.run([os.path.join(BUILD, "bench", "bench_queue"), "--url", url,
                          "--jobs", str(JOBS), "--keys", "1000", "--shards", str(SHARDS)],
                         stdout=subprocess.PIPE, check=True, timeout=900).stdout.decode()
    after = cpu(nodes)
    j = json.loads(out.strip().splitlines()[-1])
    print("  queue: enqueue %.0f jobs/s, drain %.0f jobs/s (%d jobs, 1000 keys)"
          % (j["enqueue_jobs_per_s"], j["drain_jobs_per_s"], JOBS))
    return report("queue (enqueue + drain)", nodes, before, after, JOBS)


def intake(url, nodes):
    d = tempfile.mkdtemp(prefix="hq-bench-cl-")
    port = free_port()
    cfg = os.path.join(d, "hookq.ini")
    with open(cfg, "w") as f:
        f.write("[redis]\nurl = %s\nshards = %d\n[intake]\nlisten = 127.0.0.1:%d\n"
                "[admin]\nlisten = off\n[event post-create]\ndeliver = log\n"
                % (url, SHARDS, port))
    p = subprocess.Popen([os.path.join(BUILD, "hookq"), "serve", "-c", cfg],
                         stderr=subprocess.DEVNULL, cwd=d)
    try:
        def up():
            if p.poll() is not None:
                raise RuntimeError("hookq serve exited")
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, what="hookq serve")
        before = cpu(nodes)
        out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % DURATION, "--latency", "-s",
                              os.path.join(HERE, "intake.lua"),
                              "http://127.0.0.1:%d/webhook" % port],
                             stdout=subprocess.PIPE, check=True, timeout=120).stdout.decode()
        after = cpu(nodes)
    finally:
        p.terminate()
        p.wait(10)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    print("  intake: %.0f req/s, p99 %s (wrk -t2 -c64 -d%ds)" % (rps, p99, DURATION))
    return report("intake", nodes, before, after, reqs)


def main():
    print("== cluster: one redis-server vs a 3-master cluster, shards = %d, on %d cores"
          % (SHARDS, os.cpu_count()))
    root = tempfile.mkdtemp(prefix="hq-bench-single-")
    single = Node(root, "single", free_port(), ["--save", "", "--appendonly", "no"])
    single.start()
    try:
        print("one redis-server:")
        q1 = queue("redis://127.0.0.1:%d/0" % single.port, [single])
        i1 = intake("redis://127.0.0.1:%d/0" % single.port, [single])
    finally:
        single.stop()
    with RedisCluster(masters=3) as c:
        print("3-master cluster:")
        q3 = queue(c.url(), c.masters())
        i3 = intake(c.url(), c.masters())
    print("cluster/single redis cpu per job: queue %.2f, intake %.2f (1.00 = no overhead)"
          % (q3 / q1 if q1 else 0, i3 / i1 if i1 else 0))


main()
