#!/usr/bin/env python3
"""bench/script_cpu.py: what Redis spends per job in the enqueue and settle
scripts alone (issue 10).

The intake and queue benchmarks measure Redis's CPU per job with hookq,
wrk and the other engineers' work all on the same two cores; this one
takes everything but Redis out of the figure. On a private redis-server
(appendonly yes, everysec, as in bench/intake.sh) it loads
src/lib/scripts/_prelude.lua + the script and sends what hookq sends:

  enqueue  batches of BATCH jobs as the intake does (customers in turn, one
           of CUSTOMERS; ~1 KiB bodies; each with a new webhook-id and its
           digest), two calls in flight;
  drain    JOBS jobs queued first over CUSTOMERS keys (not measured), then
           settle calls as a worker loop makes them: each one completes the
           jobs the previous call claimed (done) and claims BATCH keys.

It prints the Redis CPU per job (INFO used_cpu_*, median of RUNS runs) and
the scripts' own time (INFO commandstats). With --callgrind, redis-server
runs under valgrind and the figure is Redis's instructions per job over the
measured phase: slow (use a few thousand jobs), but the same on every run
whatever else the machine does, so that two versions of a script can be
compared to the percent.

With --cluster the redis-server runs in cluster mode, alone, holding every
slot: the same calls then pay what cluster mode adds to each command a
script makes (the slot check of every key), without the CPU contention of
three masters on a small machine (issue 9's intake figure).

With --ttl-ms and --warm N --warm-s S (N jobs spread over S seconds before
measuring), enqueue meets the dedup generations of a steady rate: about
ttl/window + 1 of them once S exceeds the ttl.

Usage: bench/script_cpu.py [enqueue|drain] [--jobs N] [--batch B]
         [--runs R] [--customers C] [--body BYTES] [--no-dedup] [--script FILE.lua]
         [--ttl-ms T] [--warm N --warm-s S] [--callgrind] [--cluster]
Not run by ctest; stops its redis-server by PID.
"""
import argparse
import glob
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "src", "lib", "scripts")
P = "{hookq:0}:"


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(1 << 20)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b":"):
            return rest if t == b"+" else int(rest)
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 20)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def call(self, *args):
        self.send(resp(*args))
        return self.read()


def info(c, section, field):
    for line in c.call("INFO", section).decode().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def cpu(c):
    return float(info(c, "cpu", "used_cpu_user")) + float(info(c, "cpu", "used_cpu_sys"))


def script_usec(c):
    total = 0
    for line in c.call("INFO", "commandstats").decode().splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_fcall:")):
            total += int(line.split("usec=")[1].split(",")[0])
    return total


class Meter:
    """Redis's CPU time (or, under callgrind, its instructions) between
    start() and stop()."""

    def __init__(self, c, vg):
        self.c, self.vg = c, vg

    def start(self):
        if self.vg:
            subprocess.call(["callgrind_control", "-i", "on", str(self.vg.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.c0, self.u0 = cpu(self.c), script_usec(self.c)

    def stop(self):
        if not self.vg:
            return cpu(self.c) - self.c0, script_usec(self.c) - self.u0
        subprocess.call(["callgrind_control", "-i", "off", str(self.vg.pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.call(["callgrind_control", "-d", str(self.vg.pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = self.vg.cg_out
        for _ in range(100):
            files = sorted(glob.glob(out + ".*"), key=os.path.getmtime)
            if files and len(files) > self.vg.dumps:
                break
            time.sleep(0.1)
        self.vg.dumps = len(files)
        time.sleep(0.3)
        total = 0
        for line in open(files[-1]):
            if line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
        return total, 0


def bodies(a):
    out = []
    for k in range(a.customers):
        head = '{"code":"post-create","data":{"customer_id":"cust-%03d","post_id":%d,"title":"' % (k, 1000 + k)
        out.append(head + "a" * max(0, a.body - len(head)) + '"}}')
    return out


def enqueue_calls(sha, a, jobs, tag):
    body = bodies(a)
    calls = []
    j = 0
    while j < jobs:
        argv = ["EVALSHA", sha, "1", P, "1000000", str(a.ttl_ms)]
        for _ in range(min(a.batch, jobs - j)):
            k = j % a.customers
            wid = "msg_%s_%d" % (tag, j) if a.dedup else ""
            argv += ["cust-%03d" % k, "post-create", body[k], wid,
                     hashlib.sha256(wid.encode()).digest()[:16] if wid else ""]
            j += 1
        calls.append(resp(*argv))
    return calls


def pipeline(c, calls):
    inflight = 0
    for req in calls:
        c.send(req)
        inflight += 1
        if inflight == 2:
            c.read()
            inflight -= 1
    while inflight:
        c.read()
        inflight -= 1


def run_once(port, sources, a, vg):
    c = Conn(port)
    c.call("FLUSHALL")
    c.call("CONFIG", "RESETSTAT")
    m = Meter(c, vg)
    enq = c.call("SCRIPT", "LOAD", sources["enqueue"]).decode()
    tag = "%d_%d" % (os.getpid(), time.time_ns())
    if a.mode == "enqueue":
        if a.warm:
            # The dedup generations of a steady rate, before measuring.
            warm = enqueue_calls(enq, a, a.warm, tag + "w")
            t0 = time.monotonic()
            for i in range(0, len(warm), 10):
                pipeline(c, warm[i:i + 10])
                time.sleep(max(0, t0 + a.warm_s * (i + 10) / len(warm) - time.monotonic()))
            c.call("HDEL", P + "stats", "accepted")
        calls = enqueue_calls(enq, a, a.jobs, tag)
        m.start()
        pipeline(c, calls)
        used, usec = m.stop()
        stored = int(c.call("HGET", P + "stats", "accepted") or 0)
        if stored != a.jobs:
            raise RuntimeError("stored %d of %d" % (stored, a.jobs))
        return used / a.jobs, usec / a.jobs
    # drain: queue the jobs, then settle them as one worker loop would.
    pipeline(c, enqueue_calls(enq, a, a.jobs, tag))
    st = c.call("SCRIPT", "LOAD", sources["settle"]).decode()
    c.call("CONFIG", "RESETSTAT")
    m.start()
    held, done = [], 0
    while True:
        argv = ["EVALSHA", st, "1", P, "30000", str(a.batch), str(len(held))]
        for key, tok in held:
            argv += ["d", key, tok]
        res = c.call(*argv)
        done += sum(1 for r in res[0] if r == 1)
        claimed = res[1]
        held = [(claimed[i], claimed[i + 2]) for i in range(0, len(claimed), 5)]
        if not held:
            break
    used, usec = m.stop()
    if done != a.jobs:
        raise RuntimeError("settled %d of %d" % (done, a.jobs))
    return used / a.jobs, usec / a.jobs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="enqueue", choices=("enqueue", "drain"))
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=16,
                    help="jobs per enqueue call, keys claimed per settle call")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--customers", type=int, default=100)
    ap.add_argument("--no-dedup", dest="dedup", action="store_false",
                    help="jobs without a webhook-id")
    ap.add_argument("--body", type=int, default=1000, help="body size, about")
    ap.add_argument("--ttl-ms", type=int, default=86400000, help="dedup_ttl")
    ap.add_argument("--warm", type=int, default=0,
                    help="enqueue: jobs sent before measuring, spread over --warm-s seconds")
    ap.add_argument("--warm-s", type=float, default=0)
    ap.add_argument("--script", help="the script measured (default: the mode's own)")
    ap.add_argument("--callgrind", action="store_true",
                    help="count Redis's instructions under valgrind instead of its CPU time")
    ap.add_argument("--cluster", action="store_true",
                    help="a one-node Redis Cluster holding every slot instead of a plain server")
    a = ap.parse_args()
    prelude = open(os.path.join(SCRIPTS, "_prelude.lua")).read()
    sources = {n: prelude + open(os.path.join(SCRIPTS, n + ".lua")).read()
               for n in ("enqueue", "settle")}
    if a.script:
        sources[a.mode if a.mode == "enqueue" else "settle"] = prelude + open(a.script).read()
    tmp = tempfile.mkdtemp(prefix="hq-bench-script.")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
           "--dir", tmp, "--save", "", "--appendonly", "yes",
           "--appendfsync", "everysec", "--auto-aof-rewrite-min-size", "2gb",
           "--logfile", os.path.join(tmp, "redis.log")]
    if a.cluster:
        cmd += ["--cluster-enabled", "yes", "--cluster-config-file",
                os.path.join(tmp, "nodes.conf")]
    cg_out = os.path.join(tmp, "callgrind.out")
    if a.callgrind:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               "--callgrind-out-file=" + cg_out] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.cg_out, p.dumps = cg_out, 0
    try:
        for _ in range(600):
            try:
                Conn(port).call("PING")
                break
            except OSError:
                time.sleep(0.05)
        if a.cluster:
            c = Conn(port)
            c.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            for _ in range(600):
                if "cluster_state:ok" in c.call("CLUSTER", "INFO").decode():
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("the one-node cluster did not reach cluster_state:ok")
        res = [run_once(port, sources, a, p if a.callgrind else None) for _ in range(a.runs)]
        used = sorted(r[0] for r in res)
        what = "%s%s %s: %d jobs, batch %d, %d customers%s" % (
            "cluster " if a.cluster else "",
            a.mode, os.path.basename(a.script or ("enqueue.lua" if a.mode == "enqueue" else "settle.lua")), a.jobs, a.batch,
            a.customers, "" if a.dedup else ", no webhook-ids")
        if a.callgrind:
            print("script_cpu %s: redis %.0f instructions/job" % (what, statistics.median(used)))
        else:
            print("script_cpu %s: redis cpu %.2f us/job (runs %s), script %.2f us/job" % (
                what, statistics.median(used) * 1e6, " ".join("%.2f" % (x * 1e6) for x in used),
                statistics.median(r[1] for r in res)))
    finally:
        p.terminate()
        p.wait()
        subprocess.call(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
