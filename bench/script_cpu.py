#!/usr/bin/env python3
"""bench/script_cpu.py: Redis CPU per job of the enqueue script alone.

The intake and queue benchmarks measure Redis's CPU per job with hookq,
wrk and the other engineers' work all on the same two cores; this one
takes everything but Redis out of the figure, so that two layouts of a
script can be compared in minutes and within a few percent. On a private
redis-server (appendonly yes, everysec, as in bench/intake.sh), it loads
src/lib/scripts/_prelude.lua + enqueue.lua (or SCRIPT) and sends batches
of BATCH jobs as the intake does (customers in turn, one of 100; ~1 KiB
bodies; each with a new webhook-id and its digest), two calls in flight,
then prints the Redis CPU per job (INFO used_cpu_*) and the script's own
time per job (INFO commandstats), median of RUNS runs.

Usage: bench/script_cpu.py [--jobs N] [--batch B] [--runs R]
                           [--customers C] [--script FILE.lua]
Not run by ctest; stops its redis-server by PID.
"""
import argparse
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


def run_once(port, source, a):
    c = Conn(port)
    c.call("FLUSHALL")
    c.call("CONFIG", "RESETSTAT")
    sha = c.call("SCRIPT", "LOAD", source).decode()
    prefix = "{hookq:0}:"
    tag = "%d_%d" % (os.getpid(), time.time_ns())
    bodies = []
    for k in range(a.customers):
        head = '{"code":"post-create","data":{"customer_id":"cust-%03d","post_id":%d,"title":"' % (k, 1000 + k)
        bodies.append(head + "a" * (1000 - len(head)) + '"}}')
    calls = []
    j = 0
    while j < a.jobs:
        argv = ["EVALSHA", sha, "1", prefix, "100000", "86400000"]
        for _ in range(min(a.batch, a.jobs - j)):
            k = j % a.customers
            wid = "msg_%s_%d" % (tag, j) if a.dedup else ""
            argv += ["cust-%03d" % k, "post-create", bodies[k], wid,
                     hashlib.sha256(wid.encode()).digest()[:16] if wid else ""]
            j += 1
        calls.append(resp(*argv))
    c0, u0 = cpu(c), script_usec(c)
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
    c1, u1 = cpu(c), script_usec(c)
    stored = int(c.call("HGET", prefix + "stats", "accepted") or 0)
    if stored != a.jobs:
        raise RuntimeError("stored %d of %d" % (stored, a.jobs))
    return (c1 - c0) * 1e6 / a.jobs, (u1 - u0) / a.jobs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--customers", type=int, default=100)
    ap.add_argument("--no-dedup", dest="dedup", action="store_false",
                    help="jobs without a webhook-id")
    ap.add_argument("--script", default=os.path.join(SCRIPTS, "enqueue.lua"))
    a = ap.parse_args()
    source = open(os.path.join(SCRIPTS, "_prelude.lua")).read() + open(a.script).read()
    tmp = tempfile.mkdtemp(prefix="hq-bench-script.")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--dir", tmp, "--save", "", "--appendonly", "yes",
                          "--appendfsync", "everysec", "--auto-aof-rewrite-min-size", "2gb",
                          "--logfile", os.path.join(tmp, "redis.log")])
    try:
        for _ in range(100):
            try:
                Conn(port).call("PING")
                break
            except OSError:
                time.sleep(0.05)
        res = [run_once(port, source, a) for _ in range(a.runs)]
        cpus = sorted(r[0] for r in res)
        uss = sorted(r[1] for r in res)
        print("script_cpu enqueue %s: %d jobs, batch %d, %d customers: redis cpu %.2f us/job "
              "(runs %s), script %.2f us/job" % (
                  os.path.basename(a.script), a.jobs, a.batch, a.customers,
                  statistics.median(cpus), " ".join("%.2f" % x for x in cpus),
                  statistics.median(uss)))
    finally:
        p.terminate()
        p.wait()
        subprocess.call(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
