"""Helpers of the worker tests (test_worker_*.py): start testworker
processes, push jobs with pushjobs, and read the record file that testworker
writes (see tests/integration/testworker.c for its line format)."""
import collections
import contextlib
import json
import os
import subprocess
import tempfile

from harness import helper, processes, wait_until
from storelib import Store

P = "{hookq:0}:"

Start = collections.namedtuple("Start", "key seq pid t attempt")
End = collections.namedtuple("End", "key seq pid start end attempt")
Ack = collections.namedtuple("Ack", "key seq pid outcome latency_us attempt")


@contextlib.contextmanager
def worker_env(**redis_args):
    """What most worker tests start from: (a storelib.Store — a
    redis-server made with `redis_args`, or with HQ_REDIS=cluster a
    cluster —, the start() of harness.processes(), the path of a record
    file in a fresh temporary directory); all stopped or removed on the way
    out."""
    with Store(**redis_args) as srv, processes() as start, tempfile.TemporaryDirectory() as d:
        yield srv, start, os.path.join(d, "rec")


def where(target):
    """The --url (and --shards) arguments of testworker and pushjobs for
    `target`: a redis URL (one shard) or a storelib store."""
    if isinstance(target, str):
        return ["--url", target]
    return target.args()


def push(target, *spec, extra=(), timeout=300):
    """pushjobs SPEC... into `target` (a URL or a store); its JSON answer."""
    out = subprocess.run([helper("pushjobs"), *where(target), *extra, *spec],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Records:
    """The lines of a record file, parsed."""

    def __init__(self, path):
        self.starts, self.ends, self.acks = [], [], []
        with open(path) as f:
            for line in f:
                p = line.split()
                if not p or not line.endswith("\n"):
                    continue
                if p[0] == "S":
                    self.starts.append(Start(p[1], int(p[2]), int(p[3]), int(p[4]), int(p[5])))
                elif p[0] == "E":
                    self.ends.append(End(p[1], int(p[2]), int(p[3]), int(p[4]), int(p[5]), int(p[6])))
                elif p[0] == "A":
                    self.acks.append(Ack(p[1], int(p[2]), int(p[3]), p[4], int(p[5]), int(p[6])))

    def done(self, key=None):
        return [a for a in self.acks if a.outcome == "done" and (key is None or a.key == key)]

    def answers(self, key=None):
        """Acks in the order Redis applied them, for one key (or a
        one-key test): by seq, then attempt. (The file's order is not that
        order: each loop thread writes its acks when it reads its reply, and
        another thread may claim the next job first.)"""
        return sorted((a for a in self.acks if key is None or a.key == key),
                      key=lambda a: (a.seq, a.attempt))


def records(path):
    if not os.path.exists(path):
        return Records(os.devnull)
    return Records(path)


def count_lines(path, prefix, key=None, outcome=None):
    """Cheap count of record lines, for polling."""
    if not os.path.exists(path):
        return 0
    n = 0
    with open(path) as f:
        for line in f:
            # testworker appends each line with one write(2), but a read
            # racing that write can see the line's first part only: count
            # whole lines, as Records does.
            p = line.split()
            if len(p) < 2 or p[0] != prefix or not line.endswith("\n"):
                continue
            if key is not None and p[1] != key:
                continue
            if outcome is not None and p[4] != outcome:
                continue
            n += 1
    return n


class Worker:
    """A testworker process on `target` (a URL or a store); `stats()`
    parses the JSON line it prints on exit."""

    def __init__(self, start, target, out, *args, threads=2, concurrency=16, quiet=True):
        self.outfile = tempfile.NamedTemporaryFile(prefix="hq-worker-", suffix=".json", delete=False)
        argv = [helper("testworker"), *where(target), "--out", out,
                "--threads", str(threads), "--concurrency", str(concurrency)]
        if quiet:
            argv.append("--quiet")
        self.proc = start(argv + [str(a) for a in args], stdout=self.outfile)
        self.pid = self.proc.pid

    def stop(self, timeout=30):
        """SIGTERM (drain) and wait; returns the exit status."""
        self.proc.signal(15)
        return self.proc.wait(timeout)

    def stats(self):
        with open(self.outfile.name) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        assert lines, "worker %d printed no stats" % self.pid
        return json.loads(lines[-1])

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for %d" % self.pid)


def wait_done(path, n, timeout, what=None):
    return wait_until(lambda: count_lines(path, "A", outcome="done") >= n, timeout,
                      interval=0.1, what=what or "%d jobs done" % n)


def redis_stats(r):
    return {k.decode(): int(v) for k, v in r.hgetall(P + "stats").items()}


def key_state(r, key):
    v = r.hget(P + "m:" + key, "st")
    return v.decode() if v else "idle"


def check_key_order(rec):
    """G1 over every key: runs whose completion Redis accepted never overlap,
    and run in seq order, each seq once. Returns the per-key run lists."""
    done = {(a.key, a.seq, a.pid, a.attempt) for a in rec.acks if a.outcome == "done"}
    by_key = collections.defaultdict(list)
    for e in rec.ends:
        if (e.key, e.seq, e.pid, e.attempt) in done:
            by_key[e.key].append(e)
    for key, runs in by_key.items():
        runs.sort(key=lambda e: e.start)
        seqs = [e.seq for e in runs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), \
            "%s ran out of order: %s" % (key, seqs)
        for a, b in zip(runs, runs[1:]):
            assert b.start >= a.end, "%s: seq %d started before seq %d ended" % (key, b.seq, a.seq)
    return by_key


def max_overlap(ends):
    """The largest number of runs in progress at one time."""
    ev = []
    for e in ends:
        ev.append((e.start, 1))
        ev.append((e.end, -1))
    ev.sort()
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best
