"""bench/cluster.sh's driver: see there. The servers come from the tests'
clusterlib (real redis-server processes on free loopback ports, stopped by
PID).

DESIGN: the single redis-server and the 3-master cluster run side by side
for the whole benchmark, and each round measures them in turn (queue on one,
queue on the other, intake on one, intake on the other), so that the load
of whatever else runs on the machine falls on both alike. Wall-clock rates
are noisy on a shared machine; CPU per job (INFO cpu: used_cpu_sys +
used_cpu_user, per node, before and after) is steadier, and the figures
printed are medians over the rounds. INFO commandstats gives each node's
calls per job (a script's own commands included) and the scripts' time;
that time is wall time (Redis measures it with the clock), so on a busy
machine it can exceed the CPU time. `sleeps` are the times a node's main
thread blocked in epoll_wait per job (/proc: voluntary context switches):
near 0, it always had work waiting. `reads` are the read events per job
(INFO stats total_reads_processed): how many jobs a socket read carried."""
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from clusterlib import Node, RedisCluster  # noqa: E402
from harness import free_port, wait_until  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-release")
JOBS = int(os.environ.get("JOBS", "200000"))
DURATION = int(os.environ.get("HQ_BENCH_DURATION", "5"))
ROUNDS = int(os.environ.get("HQ_BENCH_ROUNDS", "3"))
PARTS = os.environ.get("HQ_BENCH_PARTS", "queue,intake,intake-rate,intake-bound").split(",")
RATE = int(os.environ.get("HQ_BENCH_RATE", "4000"))
REDIS_CPU = float(os.environ.get("HQ_BENCH_REDIS_CPU", "0.5"))
SHARDS = 12
TCK = os.sysconf("SC_CLK_TCK")


def wakeups(pid):
    """Times the process's main thread went to sleep (epoll_wait blocked)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def sample(nodes):
    """Per node: (cpu seconds, {command: (calls, usec)}, wakeups, reads):
    reads are the read events Redis handled (INFO stats
    total_reads_processed), one per time a client's socket had data."""
    out = {}
    for n in nodes:
        c = n.client()
        cpu = c.info("cpu")
        cmds = {}
        for name, v in c.info("commandstats").items():
            cmds[name[len("cmdstat_"):]] = (int(v["calls"]), int(v["usec"]))
        reads = int(c.info("stats").get("total_reads_processed", 0))
        out[n.port] = (float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), cmds,
                       wakeups(n.proc.pid), reads)
    return out


def delta(before, after, count):
    """Per node, per job: cpu us, us inside scripts, wakeups, calls by
    command (a script's own commands are counted too)."""
    per = {}
    for port, (cpu1, cmds1, w1, r1) in after.items():
        cpu0, cmds0, w0, r0 = before[port]
        calls, usec = {}, 0
        for name, (c1, u1) in cmds1.items():
            c0, u0 = cmds0.get(name, (0, 0))
            if name in ("info", "config|resetstat", "flushall"):
                continue  # the samples' own
            if name in ("eval", "evalsha"):
                usec += u1 - u0
            if c1 > c0:
                calls[name] = (c1 - c0) / count
        per[port] = {"cpu": (cpu1 - cpu0) * 1e6 / count, "cmd": usec / count,
                     "wake": (w1 - w0) / count, "reads": (r1 - r0) / count, "calls": calls}
    return per


def flush(nodes):
    for n in nodes:
        c = n.client()
        c.flushall()
        c.config_resetstat()


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def queue(url, nodes):
    flush(nodes)
    before = sample(nodes)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([os.path.join(BUILD, "bench", "bench_queue"), "--url", url,
                          "--jobs", str(JOBS), "--keys", "1000", "--shards", str(SHARDS)],
                         stdout=subprocess.PIPE, check=True, timeout=900).stdout.decode()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = sample(nodes)
    j = json.loads(out.strip().splitlines()[-1])
    hq = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e6 / JOBS
    return {"rate": "%.0f / %.0f" % (j["enqueue_jobs_per_s"], j["drain_jobs_per_s"]),
            "rate_n": j["drain_jobs_per_s"], "hookq": hq,
            "nodes": delta(before, after, JOBS)}


def serve(url):
    """`hookq serve` on url (shards = 12, 100 customers); (process, port)."""
    d = tempfile.mkdtemp(prefix="hq-bench-cl-")
    port = free_port()
    cfg = os.path.join(d, "hookq.ini")
    with open(cfg, "w") as f:
        f.write("[redis]\nurl = %s\nshards = %d\n[intake]\nlisten = 127.0.0.1:%d\n"
                "[admin]\nlisten = off\n[event post-create]\ndeliver = log\n"
                % (url, SHARDS, port))
    p = subprocess.Popen([os.path.join(BUILD, "hookq"), "serve", "-c", cfg],
                         stderr=subprocess.DEVNULL, cwd=d)

    def up():
        if p.poll() is not None:
            raise RuntimeError("hookq serve exited")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False
    try:
        wait_until(up, 10, what="hookq serve")
    except BaseException:
        p.terminate()
        p.wait(10)
        raise
    return p, port


def intake(url, nodes):
    """As many requests as wrk gets answered: every core is busy."""
    flush(nodes)
    p, port = serve(url)
    try:
        before = sample(nodes)
        k0 = proc_cpu(p.pid)
        out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % DURATION, "--latency", "-s",
                              os.path.join(HERE, "intake.lua"),
                              "http://127.0.0.1:%d/webhook" % port],
                             stdout=subprocess.PIPE, check=True, timeout=120).stdout.decode()
        k1 = proc_cpu(p.pid)
        after = sample(nodes)
    finally:
        p.terminate()
        p.wait(10)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        raise RuntimeError("intake: %s of %d answers were not 2xx" % (bad.group(1), reqs))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return {"rate": "%.0f req/s, p99 %s" % (rps, p99), "rate_n": rps,
            "hookq": (k1 - k0) * 1e6 / reqs, "nodes": delta(before, after, reqs)}


def intake_rate(url, nodes):
    """A fixed rate (RATE req/s) that leaves the cores idle part of the
    time: the Redis CPU per request is then the work itself, not time lost
    to three redis-servers, hookq and the load generator taking turns on
    two cores, as at full load. The same rate on one server and on the
    cluster, so that both send equally small pipelines."""
    flush(nodes)
    p, port = serve(url)
    try:
        before = sample(nodes)
        k0 = proc_cpu(p.pid)
        out = subprocess.run([os.path.join(BUILD, "bench", "bench_intake_rate"), "127.0.0.1",
                              str(port), "/webhook", str(RATE), str(DURATION), "64"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True,
                             timeout=120).stdout.decode()
        k1 = proc_cpu(p.pid)
        after = sample(nodes)
    finally:
        p.terminate()
        p.wait(10)
    m = re.search(r"sent (\d+) ok (\d+) other (\d+).*p99 ([\d.]+) ms", out)
    if not m or int(m.group(3)):
        raise RuntimeError("intake-rate: not every answer was 2xx: %s" % out.strip())
    reqs = int(m.group(2))
    return {"rate": "%d req/s fixed, p99 %s ms" % (RATE, m.group(4)), "rate_n": reqs,
            "hookq": (k1 - k0) * 1e6 / reqs, "nodes": delta(before, after, reqs)}


class CpuCap:
    """A cgroup with a CPU quota of `cpus` cores (cgroup v2's cpu.max, or
    v1's cpu controller), for the intake-bound part: the redis-servers
    measured are moved into it, so that Redis is what limits the rate, as
    on a machine where each master has a core and the intake has more.
    Needs root; None when the machine has no usable cpu controller."""

    @staticmethod
    def make(cpus):
        name = "hookq-bench-%d" % os.getpid()
        period = 100000
        quota = int(cpus * period)
        v2 = "/sys/fs/cgroup"
        try:
            if os.path.exists(os.path.join(v2, "cgroup.subtree_control")):
                with open(os.path.join(v2, "cgroup.subtree_control"), "w") as f:
                    f.write("+cpu")
                path = os.path.join(v2, name)
                os.mkdir(path)
                with open(os.path.join(path, "cpu.max"), "w") as f:
                    f.write("%d %d" % (quota, period))
                return CpuCap(path, v2)
            v1 = "/sys/fs/cgroup/cpu"
            if os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
                path = os.path.join(v1, name)
                os.mkdir(path)
                with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                    f.write(str(period))
                with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                    f.write(str(quota))
                return CpuCap(path, v1)
        except OSError as e:
            print("   (intake-bound skipped: cannot set up a cpu cgroup: %s)" % e)
            return None
        print("   (intake-bound skipped: no cpu cgroup controller)")
        return None

    def __init__(self, path, root):
        self.path, self.root = path, root

    def _move(self, pids, to):
        for pid in pids:
            with open(os.path.join(to, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def hold(self, nodes):
        self._move([n.proc.pid for n in nodes], self.path)

    def release(self, nodes):
        self._move([n.proc.pid for n in nodes], self.root)

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


CAP = None


def intake_bound(url, nodes):
    """The intake at full load with the redis-servers held to REDIS_CPU
    cores together (one server alone, or the three masters sharing it):
    Redis is the bottleneck, its nodes always have work waiting, and its
    CPU per request is what sets how many requests a core of Redis carries.
    That is the figure the N-masters estimate needs; at full load without
    the cap, wrk and hookq starve the nodes, which then sleep and wake per
    flight."""
    CAP.hold(nodes)
    try:
        return intake(url, nodes)
    finally:
        CAP.release(nodes)


def med(xs):
    return statistics.median(xs)


def summary(runs):
    """Medians over the rounds of one configuration."""
    ports = sorted(runs[0]["nodes"])
    s = {"rate": sorted(runs, key=lambda r: r["rate_n"])[len(runs) // 2]["rate"],
         "hookq": med([r["hookq"] for r in runs]), "node": {}, "calls": {}}
    for port in ports:
        s["node"][port] = {k: med([r["nodes"][port][k] for r in runs])
                           for k in ("cpu", "cmd", "wake", "reads")}
    names = {n for r in runs for p in ports for n in r["nodes"][p]["calls"]}
    for n in sorted(names):
        s["calls"][n] = med([sum(r["nodes"][p]["calls"].get(n, 0) for p in ports)
                             for r in runs])
    s["cpu"] = med([sum(r["nodes"][p]["cpu"] for p in ports) for r in runs])
    s["cmd"] = med([sum(r["nodes"][p]["cmd"] for p in ports) for r in runs])
    s["wake"] = med([sum(r["nodes"][p]["wake"] for p in ports) for r in runs])
    s["reads"] = med([sum(r["nodes"][p]["reads"] for p in ports) for r in runs])
    return s


def show(what, one, three):
    def calls(s):
        return ", ".join("%s %.3f" % (n, v) for n, v in s["calls"].items() if v >= 0.001)

    print("%s (medians of %d rounds; CPU in us per job)" % (what, ROUNDS))
    for name, s in (("one redis-server", one), ("3-master cluster", three)):
        print("  %-17s %s; hookq %.1f us; redis %.2f us (scripts' wall time %.2f us; "
              "%.3f sleeps, %.3f reads)" % (name, s["rate"], s["hookq"], s["cpu"], s["cmd"],
                                            s["wake"], s["reads"]))
        print("  %-17s redis calls per job: %s" % ("", calls(s)))
    total = three["cpu"]
    shares = [v["cpu"] / total for v in three["node"].values()] if total else [0]
    print("  cluster per node: %s" % ", ".join(
        "%.2f us (%.0f %%)" % (v["cpu"], 100 * v["cpu"] / total if total else 0)
        for v in three["node"].values()))
    ratio = total / one["cpu"] if one["cpu"] else 0
    even = all(abs(x * 3 - 1) <= 0.25 for x in shares)
    print("  cluster/single redis CPU per job: %.2f (target <= 1.15: %s); "
          "each node's share within 1/3 +-25 %%: %s"
          % (ratio, "ok" if ratio <= 1.15 else "ABOVE TARGET", "ok" if even else "NO"))
    # Redis-bound ceilings: a redis-server is one thread, so one core
    # carries 1e6 / (its us per job) jobs/s. N masters on N cores carry N
    # times what one master's core carries at its share of the work; with
    # the measured shares, the busiest node sets the pace.
    one_cap = 1e6 / one["cpu"] if one["cpu"] else 0
    three_cap = 1e6 / max(v["cpu"] for v in three["node"].values()) if total else 0
    per_master = 1e6 / total if total else 0
    print("  redis-bound ceiling (each redis-server on a core of its own): one server "
          "%.0f jobs/s; 3 masters %.0f jobs/s (busiest node); N masters ~ N x %.0f jobs/s,"
          " shards several times N, plus %.1f us of hookq CPU per job on other cores"
          % (one_cap, three_cap, per_master, three["hookq"]))


def main():
    print("== cluster: one redis-server vs a 3-master cluster, shards = %d, on %d cores"
          % (SHARDS, os.cpu_count()))
    print("   (on this machine every redis-server, hookq and the load generator share "
          "the same %d cores: throughput cannot grow with masters; the CPU per job says "
          "what more cores would carry)" % os.cpu_count())
    global CAP
    if "intake-bound" in PARTS:
        CAP = CpuCap.make(REDIS_CPU)
    root = tempfile.mkdtemp(prefix="hq-bench-single-")
    single = Node(root, "single", free_port(), ["--save", "", "--appendonly", "no"])
    single.start()
    try:
        with RedisCluster(masters=3) as c:
            url1 = "redis://127.0.0.1:%d/0" % single.port
            res = {}
            for r in range(ROUNDS):
                for part, fn in (("queue", queue), ("intake", intake),
                                 ("intake-rate", intake_rate),
                                 ("intake-bound", intake_bound)):
                    if part not in PARTS or (part == "intake-bound" and CAP is None):
                        continue
                    for name, url, nodes in (("one", url1, [single]),
                                             ("three", c.url(), c.masters())):
                        x = fn(url, nodes)
                        res.setdefault((part, name), []).append(x)
                        print("  round %d %-6s %-5s: %s; redis %.2f us/job"
                              % (r + 1, part, name, x["rate"],
                                 sum(v["cpu"] for v in x["nodes"].values())), flush=True)
            if "queue" in PARTS:
                show("queue: enqueue / drain %d jobs over 1000 keys (bench_queue)" % JOBS,
                     summary(res[("queue", "one")]), summary(res[("queue", "three")]))
            if "intake" in PARTS:
                show("intake: wrk -t2 -c64 -d%ds against hookq serve, 100 customers" % DURATION,
                     summary(res[("intake", "one")]), summary(res[("intake", "three")]))
            if "intake-bound" in PARTS and CAP is not None:
                show("intake at full load, the redis-servers held to %.2f cores in all "
                     "(a cgroup quota): Redis-bound" % REDIS_CPU,
                     summary(res[("intake-bound", "one")]), summary(res[("intake-bound", "three")]))
            if "intake-rate" in PARTS:
                show("intake at a fixed %d req/s (bench_intake_rate, 64 connections), cores "
                     "not saturated" % RATE, summary(res[("intake-rate", "one")]),
                     summary(res[("intake-rate", "three")]))
    finally:
        single.stop()
        if CAP is not None:
            CAP.remove()


if __name__ == "__main__":
    main()
