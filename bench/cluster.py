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
from clusterlib import Node, RedisCluster, free_cluster_port  # noqa: E402
from harness import free_port, wait_until  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-release")
JOBS = int(os.environ.get("JOBS", "200000"))
DURATION = int(os.environ.get("HQ_BENCH_DURATION", "5"))
ROUNDS = int(os.environ.get("HQ_BENCH_ROUNDS", "3"))
PARTS = os.environ.get("HQ_BENCH_PARTS",
                       "queue,intake,intake-rate,intake-bound,controls").split(",")
RATE = int(os.environ.get("HQ_BENCH_RATE", "4000"))
REDIS_CPU = float(os.environ.get("HQ_BENCH_REDIS_CPU", "0.5"))
CONNS = int(os.environ.get("HQ_BENCH_CONNS", "64"))
SHARDS = 12
TCK = os.sysconf("SC_CLK_TCK")


def switches(pid):
    """(voluntary, involuntary) context switches of the process's main
    thread: the times it went to sleep (epoll_wait blocked), and the times
    the scheduler took its core away while it had work."""
    vol = invol = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                vol = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol = int(line.split()[1])
    return vol, invol


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
        out[n.port] = ((float(cpu["used_cpu_sys"]), float(cpu["used_cpu_user"])), cmds,
                       switches(n.proc.pid), reads)
    return out


def delta(before, after, count):
    """Per node, per job: cpu us, us inside scripts, wakeups, calls by
    command (a script's own commands are counted too)."""
    per = {}
    for port, ((sys1, user1), cmds1, (w1, p1), r1) in after.items():
        (sys0, user0), cmds0, (w0, p0), r0 = before[port]
        calls, usec = {}, 0
        for name, (c1, u1) in cmds1.items():
            c0, u0 = cmds0.get(name, (0, 0))
            if name in ("info", "config|resetstat", "flushall"):
                continue  # the samples' own
            if name in ("eval", "evalsha"):
                usec += u1 - u0
            if c1 > c0:
                calls[name] = (c1 - c0) / count
        per[port] = {"cpu": (sys1 + user1 - sys0 - user0) * 1e6 / count,
                     "sys": (sys1 - sys0) * 1e6 / count, "cmd": usec / count,
                     "wake": (w1 - w0) / count, "preempt": (p1 - p0) / count,
                     "reads": (r1 - r0) / count, "calls": calls}
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
        out = subprocess.run(["wrk", "-t2", "-c%d" % CONNS, "-d%ds" % DURATION, "--latency", "-s",
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


class Neighbours:
    """Two more plain redis-servers kept busy by redis-benchmark (4
    connections each, pipelines of 8: lists, hashes and counters with 1 KB
    values), for the `controls` part: one redis-server doing the intake's
    work beside two other busy redis-servers, as each master of a 3-master
    cluster is on this machine, but with no cluster at all."""

    def __init__(self, root):
        self.nodes = [Node(root, "neighbour%d" % i, free_port(),
                           ["--save", "", "--appendonly", "no"]) for i in range(2)]
        self.procs = []

    def start(self):
        for n in self.nodes:
            n.start()

    def busy(self):
        for n in self.nodes:
            self.procs.append(subprocess.Popen(
                ["redis-benchmark", "-p", str(n.port), "-c", "4", "-P", "8", "-q", "-l",
                 "-t", "lpush,lpop,hset,incr", "-r", "100000", "-d", "1000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # Both are under load before the measured run starts.
        wait_until(lambda: all(n.client().info("stats")["total_commands_processed"] > 10000
                               for n in self.nodes), 10, what="busy neighbours")
        return sum(float(n.client().info("cpu")["used_cpu_sys"]) +
                   float(n.client().info("cpu")["used_cpu_user"]) for n in self.nodes)

    def calm(self):
        for p in self.procs:
            p.terminate()
            p.wait(10)
        self.procs = []
        return sum(float(n.client().info("cpu")["used_cpu_sys"]) +
                   float(n.client().info("cpu")["used_cpu_user"]) for n in self.nodes)

    def stop(self):
        self.calm()
        for n in self.nodes:
            n.stop()


def one_node_cluster(root):
    """A redis-server in cluster mode that holds all 16,384 slots: cluster
    mode's own cost (slot checks, hookq's routing) without a second
    process."""
    n = Node(root, "onenode", free_cluster_port(),
             ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
              "--cluster-require-full-coverage", "no", "--save", "", "--appendonly", "no"])
    n.start()
    c = n.client()
    c.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
    wait_until(lambda: "cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
               if isinstance(c.execute_command("CLUSTER", "INFO"), str)
               else c.execute_command("CLUSTER", "INFO").get("cluster_state") == "ok",
               10, what="one-node cluster")
    return n


def controls(url1, single, cluster, onenode, neighbours):
    """One round of the `controls` part: the intake (as the `intake` part)
    on one server alone, on one server beside two busy neighbours, on a
    one-node cluster, and on the 3-master cluster."""
    out = {}
    out["alone"] = intake(url1, [single])
    n0 = neighbours.busy()
    try:
        out["neighbours"] = intake(url1, [single])
    finally:
        n1 = neighbours.calm()
    out["neighbours"]["neighbour_cpu"] = n1 - n0
    out["onenode"] = intake("redis://127.0.0.1:%d" % onenode.port, [onenode])
    out["three"] = intake(cluster.url(), cluster.masters())
    return out


def show_controls(runs):
    """What the 3-master cluster's excess over one server is made of."""
    s = {k: summary([r[k] for r in runs]) for k in runs[0]}
    base = s["alone"]["cpu"]
    print("controls: the intake (wrk -c%d) on one redis-server alone, beside two busy "
          "redis-servers, on a one-node cluster, and on the 3-master cluster (medians of "
          "%d rounds; Redis CPU in us per job)" % (CONNS, len(runs)))
    busy = med([r["neighbours"]["neighbour_cpu"] / DURATION for r in runs])
    for key, what in (("alone", "one server alone"),
                      ("neighbours", "one server, 2 busy neighbours (%.2f cores)" % busy),
                      ("onenode", "one-node cluster (all slots)"),
                      ("three", "3-master cluster")):
        x = s[key]
        print("  %-44s %s; redis %.2f us (%.2f x alone); %.2f in the kernel; %.3f sleeps, "
              "%.3f reads; %.3f EVALSHA" % (what, x["rate"], x["cpu"], x["cpu"] / base,
                                             x["sys"], x["wake"], x["reads"],
                                             x["calls"].get("evalsha", 0)))
    print("  cluster mode itself: %.2f; sharing the cores with two other busy redis-servers:"
          " %.2f; the 3-master cluster: %.2f"
          % (s["onenode"]["cpu"] / base, s["neighbours"]["cpu"] / base,
             s["three"]["cpu"] / base))


def med(xs):
    return statistics.median(xs)


def summary(runs):
    """Medians over the rounds of one configuration."""
    ports = sorted(runs[0]["nodes"])
    s = {"rate": sorted(runs, key=lambda r: r["rate_n"])[len(runs) // 2]["rate"],
         "hookq": med([r["hookq"] for r in runs]), "node": {}, "calls": {}}
    for port in ports:
        s["node"][port] = {k: med([r["nodes"][port][k] for r in runs])
                           for k in ("cpu", "sys", "cmd", "wake", "preempt", "reads")}
    names = {n for r in runs for p in ports for n in r["nodes"][p]["calls"]}
    for n in sorted(names):
        s["calls"][n] = med([sum(r["nodes"][p]["calls"].get(n, 0) for p in ports)
                             for r in runs])
    s["cpu"] = med([sum(r["nodes"][p]["cpu"] for p in ports) for r in runs])
    s["cmd"] = med([sum(r["nodes"][p]["cmd"] for p in ports) for r in runs])
    for k in ("sys", "wake", "preempt"):
        s[k] = med([sum(r["nodes"][p][k] for p in ports) for r in runs])
    s["reads"] = med([sum(r["nodes"][p]["reads"] for p in ports) for r in runs])
    return s


def show(what, one, three):
    def calls(s):
        return ", ".join("%s %.3f" % (n, v) for n, v in s["calls"].items() if v >= 0.001)

    print("%s (medians of %d rounds; CPU in us per job)" % (what, ROUNDS))
    for name, s in (("one redis-server", one), ("3-master cluster", three)):
        print("  %-17s %s; hookq %.1f us; redis %.2f us, %.2f of it in the kernel "
              "(scripts' wall time %.2f us; %.3f sleeps, %.3f preemptions, %.3f reads)"
              % (name, s["rate"], s["hookq"], s["cpu"], s["sys"], s["cmd"], s["wake"],
                 s["preempt"], s["reads"]))
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
    neighbours = onenode = None
    try:
        if "controls" in PARTS:
            neighbours = Neighbours(root)
            neighbours.start()
            onenode = one_node_cluster(root)
        with RedisCluster(masters=3) as c:
            url1 = "redis://127.0.0.1:%d/0" % single.port
            res = {}
            for r in range(ROUNDS):
                if "controls" in PARTS:
                    x = controls(url1, single, c, onenode, neighbours)
                    res.setdefault("controls", []).append(x)
                    print("  round %d controls: %s" % (r + 1, ", ".join(
                        "%s %.2f us/job" % (k, sum(v["cpu"] for v in x[k]["nodes"].values()))
                        for k in x)), flush=True)
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
                show("intake: wrk -t2 -c%d -d%ds against hookq serve, 100 customers" % (CONNS, DURATION),
                     summary(res[("intake", "one")]), summary(res[("intake", "three")]))
            if "intake-bound" in PARTS and CAP is not None:
                show("intake at full load, the redis-servers held to %.2f cores in all "
                     "(a cgroup quota): Redis-bound" % REDIS_CPU,
                     summary(res[("intake-bound", "one")]), summary(res[("intake-bound", "three")]))
            if "intake-rate" in PARTS:
                show("intake at a fixed %d req/s (bench_intake_rate, 64 connections), cores "
                     "not saturated" % RATE, summary(res[("intake-rate", "one")]),
                     summary(res[("intake-rate", "three")]))
            if "controls" in PARTS:
                show_controls(res["controls"])
    finally:
        single.stop()
        if neighbours is not None:
            neighbours.stop()
        if onenode is not None:
            onenode.stop()
        if CAP is not None:
            CAP.remove()


if __name__ == "__main__":
    main()
