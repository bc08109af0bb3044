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


def prefix(shard=0, ns="hookq"):
    return "{%s:%d}:" % (ns, shard)


class Double:
    """mockapi or sink: started on a free port, its records in a file."""

    def __init__(self, start, name, *args):
        self.log = tempfile.NamedTemporaryFile(prefix="hq-%s-" % name, suffix=".jsonl",
                                               delete=False).name
        self.proc = start([helper(name), "--port", "0", "--log", self.log] + [str(a) for a in args],
                          stdout=subprocess.PIPE)
        line = self.proc.p.stdout.readline()
        assert line.strip().isdigit(), "%s did not print its port: %r" % (name, line)
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


def write_config(redis_url, api_url, events, worker=None, api=None, extra=""):
    """events: {code: {"fetch": [...], "deliver": ..., "on_failure": ...}}."""
    w = {"concurrency": 16, "threads": 2, "lease": "5s", "max_attempts": 3,
         "backoff": "100ms..300ms", "shutdown_timeout": "5s"}
    w.update(worker or {})
    a = {"base_url": api_url, "rate": "2/1s", "margin": "25ms", "timeout": "3s"}
    a.update(api or {})
    lines = ["[redis]", "url = " + redis_url, "", "[admin]", "listen = off", "", "[worker]"]
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
    """Push webhooks and manage tokens with the project's own scripts."""

    def __init__(self, r):
        self.r = r
        self.enq = r.register_script(lua_script("enqueue"))

    def push(self, customer, code, data, webhook_id=""):
        body = json.dumps({"code": code, "data": data})
        st, jid, seq = self.enq(keys=[prefix()], args=[0, 86400000, customer, code, body, webhook_id,
                                                             webhook_digest(webhook_id)])
        assert st == 0, st
        return jid.decode(), seq

    def push_many(self, items):
        """items: (customer, code, data) in order; one pipeline."""
        pipe = self.r.pipeline(transaction=False)
        for customer, code, data in items:
            body = json.dumps({"code": code, "data": data})
            self.enq(keys=[prefix()], args=[0, 86400000, customer, code, body, "", ""], client=pipe)
        res = pipe.execute()
        assert all(x[0] == 0 for x in res), res[:3]
        return res

    def set_token(self, customer, token):
        """What `hookq token set` does: token_set.lua stores the token and
        releases the customer's keys held for `no-token`/`token-invalid`."""
        if not hasattr(self, "tset"):
            self.tset = self.r.register_script(lua_script("token_set"))
        return self.tset(keys=[prefix()], args=[customer, token])

    def stats(self):
        return {k.decode(): int(v) for k, v in self.r.hgetall(prefix() + "stats").items()}

    def depth(self):
        return sum(self.r.llen(k) for k in self.r.scan_iter(prefix() + "q:*"))

    def dead_letters(self):
        out = []
        for jid in self.r.lrange(prefix() + "dlq", 0, -1):
            out.append({k.decode(): v.decode() for k, v in
                        self.r.hgetall(prefix() + "dl:" + jid.decode()).items()})
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
