"""Helpers of the processing tests (test_process*.py) and the rate-limit
benchmark: start the test doubles (mockapi, sink), write a config, start
worker processes running the job pipeline, push webhooks, set tokens, and
read what the doubles recorded."""
import json
import os
import subprocess
import tempfile
import time

from harness import HOOKQ, helper, lua_script, webhook_digest
from storelib import as_store


def prefix(shard=0, ns="hookq"):
    return "{%s:%d}:" % (ns, shard)


class Double:
    """mockapi or sink: started on a free port, its records in a file.

    mockapi stands for the external API, another machine: it stamps each
    call when its handler runs, and checks its rate limit on those stamps.
    On a loaded 2-core test machine its event loop may run tens of ms after
    the request arrived (make test-long runs two heavy tests at once), and
    two calls that left hookq W + margin apart could then look closer than
    W to it. So it runs at real-time priority (SCHED_RR) where the test may
    set that (root): its stamps are then the moments the calls arrived, as
    at a real API. Where it may not, it runs as is."""

    def __init__(self, start, name, *args):
        self.log = tempfile.NamedTemporaryFile(prefix="hq-%s-" % name, suffix=".jsonl",
                                               delete=False).name
        self.proc = start([helper(name), "--port", "0", "--log", self.log] + [str(a) for a in args],
                          stdout=subprocess.PIPE)
        line = self.proc.p.stdout.readline()
        assert line.strip().isdigit(), "%s did not print its port: %r" % (name, line)
        if name == "mockapi":
            try:
                os.sched_setscheduler(self.proc.p.pid, os.SCHED_RR, os.sched_param(1))
            except (OSError, AttributeError):
                pass
        self.port = int(line)
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, **kw):
        import urllib.request
        req = urllib.request.Request(self.url + "/_control", data=json.dumps(kw).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200

    def records(self):
        out = []
        with open(self.log) as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line))
        return out

    def count(self):
        with open(self.log) as f:
            return sum(1 for line in f if line.endswith("\n"))


def write_config(redis, api_url, events, worker=None, api=None, extra=""):
    """redis: a URL (one shard) or a storelib store (its url and shards).
    events: {code: {"fetch": [...], "deliver": ..., "on_failure": ...}}."""
    w = {"concurrency": 16, "threads": 2, "lease": "5s", "max_attempts": 3,
         "backoff": "100ms..300ms", "shutdown_timeout": "5s"}
    w.update(worker or {})
    a = {"base_url": api_url, "rate": "2/1s", "margin": "25ms", "timeout": "3s"}
    a.update(api or {})
    lines = ["[redis]"] + (["url = " + redis] if isinstance(redis, str) else
                           redis.config().splitlines())
    lines += ["", "[admin]", "listen = off", "", "[worker]"]
    lines += ["%s = %s" % kv for kv in w.items()]
    lines += ["", "[api]"] + ["%s = %s" % kv for kv in a.items()]
    for code, ev in events.items():
        lines += ["", "[event %s]" % code]
        for f in ev.get("fetch", []):
            lines.append("fetch = " + f)
        lines.append("deliver = " + ev["deliver"])
        if "on_failure" in ev:
            lines.append("on_failure = " + ev["on_failure"])
    path = tempfile.NamedTemporaryFile(prefix="hq-proc-", suffix=".ini", delete=False).name
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)
    return path


def start_workers(start, config, n=1):
    """n `hookq work` processes (the job pipeline of src/lib/process.c) on
    `config`; with HQ_PROC_WORKER=procworker, the procworker helper instead
    (the same pipeline on an hq_worker, without the rest of the binary)."""
    procs = []
    for _ in range(n):
        if os.environ.get("HQ_PROC_WORKER") == "procworker":
            argv = [helper("procworker"), "-c", config, "--quiet"]
        else:
            argv = [HOOKQ, "work", "-c", config]
        procs.append(start(argv))
    return procs


class Queue:
    """Push webhooks and manage tokens with the project's own scripts, in
    `r`: a redis client (one shard) or a storelib store (each customer in
    its own shard, on the node that serves it)."""

    def __init__(self, r):
        self.store = as_store(r)
        self.r = self.store.client()
        self.enq = self.r.register_script(lua_script("enqueue"))

    def _at(self, customer):
        p = self.store.prefix(customer)
        return p, self.store.client(p)

    def push(self, customer, code, data, webhook_id=""):
        body = json.dumps({"code": code, "data": data})
        p, r = self._at(customer)
        st, jid, seq = self.enq(keys=[p], args=[0, 86400000, customer, code, body, webhook_id,
                                                webhook_digest(webhook_id)], client=r)
        assert st == 0, st
        return jid.decode(), seq

    def push_many(self, items):
        """items: (customer, code, data) in order; one pipeline per node
        (a customer's jobs all go through one, in order)."""
        pipes, where = {}, []
        for customer, code, data in items:
            p, r = self._at(customer)
            if id(r) not in pipes:
                pipes[id(r)] = (r.pipeline(transaction=False), [])
            pipe, idx = pipes[id(r)]
            body = json.dumps({"code": code, "data": data})
            self.enq(keys=[p], args=[0, 86400000, customer, code, body, "", ""], client=pipe)
            where.append((id(r), len(idx)))
            idx.append(len(where) - 1)
        out = {k: pipe.execute() for k, (pipe, _) in pipes.items()}
        res = [out[k][i] for k, i in where]
        assert all(x[0] == 0 for x in res), res[:3]
        return res

    def set_token(self, customer, token):
        """What `hookq token set` does: token_set.lua stores the token and
        releases the customer's keys held for `no-token`/`token-invalid`."""
        if not hasattr(self, "tset"):
            self.tset = self.r.register_script(lua_script("token_set"))
        p, r = self._at(customer)
        return self.tset(keys=[p], args=[customer, token], client=r)

    def stats(self):
        return self.store.stats()

    def depth(self):
        return sum(self.store.client(p).llen(k) for p in self.store.prefixes()
                   for k in self.store.client(p).scan_iter(p + "q:*"))

    def dead_letters(self):
        out = []
        for p in self.store.prefixes():
            r = self.store.client(p)
            for jid in r.lrange(p + "dlq", 0, -1):
                out.append({k.decode(): v.decode() for k, v in
                            r.hgetall(p + "dl:" + jid.decode()).items()})
        return out


def max_in_window(times_ms, window_ms):
    """The largest number of times within any half-open window [t, t+W)."""
    ts = sorted(times_ms)
    best, j = 0, 0
    for i in range(len(ts)):
        while ts[i] - ts[j] >= window_ms:
            j += 1
        best = max(best, i - j + 1)
    return best
