"""`hookq run` with no [redis] url: the embedded redis-server in data_dir.

Jobs are posted through the HTTP intake to an event whose delivery cannot
succeed (exec:/bin/false with on_failure = hold, and a long backoff), so they
stay queued whatever the worker does. The queue is then read over the unix
socket with redis-py: `LLEN {hookq:0}:q:<key>` is the key's FIFO of job
records (docs/queue-semantics.md).
"""
import json
import os
import signal
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import redis as redispy

from harness import (HOOKQ, REDIS_SERVER, RedisServer, Suite, free_port, json_lines, pid_alive,
                     processes, wait_until)

suite = Suite("embedded")

BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HOOKQ_")}
KEY = "c1:post-create"
QUEUE = "{hookq:0}:q:" + KEY


class Dir:
    """A working directory with a hookq.ini and fixed ports."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="hq-emb-")
        self.intake = free_port()
        self.admin = free_port()
        with open(os.path.join(self.path, "hookq.ini"), "w") as f:
            f.write("[intake]\nlisten = 127.0.0.1:%d\n\n"
                    "[admin]\nlisten = 127.0.0.1:%d\n\n"
                    "[worker]\nbackoff = 1h..1h\nshutdown_timeout = 1s\n\n"
                    "[event post-create]\ndeliver = exec:/bin/false\n"
                    "on_failure = hold\n" % (self.intake, self.admin))
        self.data = os.path.join(self.path, "hookq-data")
        self.sock = os.path.join(self.data, "redis.sock")
        self.n = 0

    def start(self, start):
        self.n += 1
        self.errlog = os.path.join(self.path, "stderr.%d.log" % self.n)
        p = start([HOOKQ, "run"], cwd=self.path, env=BASE_ENV,
                  stderr=open(self.errlog, "w"))
        wait_until(lambda: self.healthy(p), 30, what="hookq run healthy")
        return p

    def healthy(self, p):
        if not p.alive():
            raise AssertionError("hookq run exited: " + open(self.errlog).read())
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.admin,
                                        timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def post(self, i):
        body = json.dumps({"code": "post-create", "data": {"customer_id": "c1", "i": i}})
        req = urllib.request.Request("http://127.0.0.1:%d/webhook" % self.intake,
                                     data=body.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 202, r.status
            return json.loads(r.read())

    def redis(self):
        return redispy.Redis(unix_socket_path=self.sock, socket_timeout=5)

    def redis_pid(self):
        with open(os.path.join(self.data, "redis.pid")) as f:
            return int(f.read())


@suite.test
def restart_keeps_the_queued_jobs():
    d = Dir()
    with processes() as start:
        p = d.start(start)
        st = os.stat(d.data)
        assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
        seqs = [d.post(i)["seq"] for i in range(20)]
        assert seqs == list(range(1, 21)), seqs
        assert d.redis().llen(QUEUE) == 20
        rpid = d.redis_pid()
        assert pid_alive(rpid)
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0, open(d.errlog).read()
        # The redis-server went with it, and its socket too.
        assert not pid_alive(rpid), "embedded redis-server %d still running" % rpid
        assert not os.path.exists(d.sock)

        p = d.start(start)
        assert d.redis_pid() != rpid
        r = d.redis()
        assert r.llen(QUEUE) == 20, r.llen(QUEUE)
        # The key's state survived as well: its sequence goes on.
        assert d.post(20)["seq"] == 21
        # Admin commands with no url talk to this embedded Redis.
        st = subprocess.run([HOOKQ, "stats"], cwd=d.path, env=BASE_ENV,
                            capture_output=True, text=True, timeout=30)
        assert st.returncode == 0, st
        p.signal(signal.SIGINT)
        assert p.wait(30) == 0
        st = subprocess.run([HOOKQ, "stats"], cwd=d.path, env=BASE_ENV,
                            capture_output=True, text=True, timeout=30)
        assert st.returncode == 1 and "redis.sock" in st.stderr, st


@suite.test
def a_second_run_on_the_same_data_dir_is_refused():
    d = Dir()
    with processes() as start:
        p = d.start(start)
        r = subprocess.run([HOOKQ, "run"], cwd=d.path, env=BASE_ENV, timeout=30,
                           capture_output=True, text=True)
        assert r.returncode == 1, r
        assert "is in use by another hookq (pid %d)" % p.pid in r.stderr, r.stderr
        # The first one is unharmed.
        assert d.healthy(p)
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0


@suite.test
def killed_hookq_takes_its_redis_along_and_restarts_cleanly():
    d = Dir()
    with processes() as start:
        p = d.start(start)
        for i in range(5):
            d.post(i)
        rpid = d.redis_pid()
        p.signal(signal.SIGKILL)
        p.wait(10)
        # PR_SET_PDEATHSIG: the kernel sends the redis-server SIGTERM.
        wait_until(lambda: not pid_alive(rpid), 10, what="orphaned redis-server to exit")
        p = d.start(start)
        assert d.redis().llen(QUEUE) == 5
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0


@suite.test
def run_stops_with_status_1_when_its_redis_dies():
    d = Dir()
    with processes() as start:
        p = d.start(start)
        rpid = d.redis_pid()
        os.kill(rpid, signal.SIGKILL)
        t0 = time.monotonic()
        assert p.wait(10) == 1
        assert time.monotonic() - t0 < 5
        assert "the embedded redis-server exited" in open(d.errlog).read()
        # And the next run starts cleanly on the same data_dir.
        p = d.start(start)
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0


@suite.test
def a_leftover_redis_in_data_dir_is_stopped_and_another_is_left_alone():
    d = Dir()
    with RedisServer() as other, processes() as start:
        os.makedirs(d.data, mode=0o700)
        # A redis-server left running in data_dir (as by a hookq killed
        # before PR_SET_PDEATHSIG could act), with its pid file.
        left = start([REDIS_SERVER, "--port", "0", "--unixsocket", d.sock,
                      "--dir", d.data, "--pidfile", os.path.join(d.data, "redis.pid"),
                      "--appendonly", "yes", "--save", "", "--daemonize", "no",
                      "--logfile", os.path.join(d.data, "left.log")])
        wait_until(lambda: os.path.exists(os.path.join(d.data, "redis.pid")), 10,
                   what="leftover redis pid file")
        p = d.start(start)
        wait_until(lambda: not left.alive(), 10, what="leftover redis stopped")
        assert "stopping the redis-server (pid %d) left running" % left.pid in open(d.errlog).read()
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0
        # A stale pid file that names a redis-server working elsewhere.
        with open(os.path.join(d.data, "redis.pid"), "w") as f:
            f.write("%d\n" % other.proc.pid)
        p = d.start(start)
        assert other.client().ping()
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert other.proc.alive()


@suite.test
def serve_uses_the_embedded_redis_of_run():
    d = Dir()
    with processes() as start:
        p = d.start(start)
        d.post(0)
        port = free_port()
        env = dict(BASE_ENV, HOOKQ_INTAKE_LISTEN="127.0.0.1:%d" % port,
                   HOOKQ_ADMIN_LISTEN="off")
        s = start([HOOKQ, "serve"], cwd=d.path, env=env,
                  stderr=open(os.path.join(d.path, "serve.log"), "w"))

        def post_via_serve():
            if not s.alive():
                raise AssertionError(open(os.path.join(d.path, "serve.log")).read())
            body = json.dumps({"code": "post-create", "data": {"customer_id": "c1"}})
            req = urllib.request.Request("http://127.0.0.1:%d/webhook" % port,
                                         data=body.encode(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return json.loads(r.read())
            except OSError:
                return None
        res = wait_until(post_via_serve, 10, what="serve answering")
        assert res["seq"] == 2, res
        assert d.redis().llen(QUEUE) == 2
        s.signal(signal.SIGTERM)
        assert s.wait(10) == 0
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0


@suite.test
def run_processes_webhooks_through_the_log_delivery():
    """The `make run` story: post, and the job appears processed on stdout."""
    d = Dir()
    logfile = os.path.join(d.path, "deliveries.log")
    with open(os.path.join(d.path, "hookq.ini"), "a") as f:
        f.write("\n[event post-delete]\ndeliver = log:%s\n" % logfile)
    with processes() as start:
        out = os.path.join(d.path, "stdout.log")
        d.n += 1
        d.errlog = os.path.join(d.path, "stderr.log")
        p = start([HOOKQ, "run"], cwd=d.path, env=BASE_ENV,
                  stdout=open(out, "w"), stderr=open(d.errlog, "w"))
        wait_until(lambda: d.healthy(p), 30, what="hookq run healthy")
        for i in range(3):
            body = json.dumps({"code": "post-create" if i < 2 else "post-delete",
                               "data": {"customer_id": "acme", "post_id": i}})
            req = urllib.request.Request("http://127.0.0.1:%d/webhook" % d.intake,
                                         data=body.encode(), method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 202

        # post-create delivers to exec:/bin/false in this config: only the
        # log:FILE event shows up; switch post-create to log for stdout.
        got = wait_until(lambda: json_lines(logfile), 10, what="log:FILE delivery")
        assert len(got) == 1, got
        job = got[0]
        assert job["key"] == "acme:post-delete" and job["customer"] == "acme"
        assert job["code"] == "post-delete" and job["seq"] == 1 and job["attempt"] == 1
        assert job["data"] == {"customer_id": "acme", "post_id": 2}
        assert job["fetched"] == [] and job["received_at"].endswith("Z")
        assert len(job["received_at"]) == len("2026-01-01T00:00:00.000Z")
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert json_lines(out) == []


@suite.test
def run_logs_each_job_as_one_json_line_on_stdout():
    d = Dir()
    cfg = os.path.join(d.path, "hookq.ini")
    text = open(cfg).read().replace("deliver = exec:/bin/false\non_failure = hold\n",
                                    "deliver = log\n")
    open(cfg, "w").write(text)
    with processes() as start:
        out = os.path.join(d.path, "stdout.log")
        d.errlog = os.path.join(d.path, "stderr.log")
        p = start([HOOKQ, "run"], cwd=d.path, env=BASE_ENV,
                  stdout=open(out, "w"), stderr=open(d.errlog, "w"))
        wait_until(lambda: d.healthy(p), 30, what="hookq run healthy")
        ids = [d.post(i)["id"] for i in range(10)]

        wait_until(lambda: len(json_lines(out)) == 10, 10, what="10 deliveries")
        got = json_lines(out)
        assert [j["id"] for j in got] == ids
        assert [j["seq"] for j in got] == list(range(1, 11))
        assert [j["data"]["i"] for j in got] == list(range(10))
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0


@suite.test
def a_slow_aof_load_at_start_shows_its_progress():
    """A big AOF takes a while to load: `hookq run` logs how far it is,
    then starts as usual. The load is slowed down with Redis's own
    key-load-delay (microseconds per key of the AOF's RDB preamble), through
    a REDIS_SERVER wrapper, so that 6,000 keys take about 2 s."""
    d = Dir()
    keys = 6000
    with processes() as start:
        p = d.start(start)
        r = d.redis()
        pipe = r.pipeline(transaction=False)
        for i in range(keys):
            pipe.set("filler:%d" % i, "x")
        pipe.execute()
        r.bgrewriteaof()  # the keys go to the RDB preamble
        wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0 and
                   r.info("persistence")["aof_rewrite_scheduled"] == 0, 20,
                   what="AOF rewrite")
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0

        wrapper = os.path.join(d.path, "slow-redis-server")
        with open(wrapper, "w") as f:
            # Events (our PING and INFO) are served every 1 KiB of the load
            # rather than every 2 MiB: this AOF is small.
            f.write('#!/bin/sh\nexec "%s" "$@" --key-load-delay 350 '
                    '--loading-process-events-interval-bytes 1024\n' % REDIS_SERVER)
        os.chmod(wrapper, 0o755)
        env = dict(BASE_ENV, REDIS_SERVER=wrapper, HOOKQ_LOG_FORMAT="json")
        d.errlog = os.path.join(d.path, "stderr.slow.log")
        t0 = time.monotonic()
        p = start([HOOKQ, "run"], cwd=d.path, env=env, stderr=open(d.errlog, "w"))
        wait_until(lambda: d.healthy(p), 60, what="hookq run healthy after the load")
        took = time.monotonic() - t0
        lines = json_lines(d.errlog)
        msgs = [l["msg"] for l in lines]
        loading = [l for l in lines if l["msg"] == "embedded redis is loading its data"]
        assert took > 1.0, (took, msgs)  # the load was slow indeed
        assert loading, (took, msgs)
        for l in loading:
            assert isinstance(l["percent"], (int, float)) and 0 <= l["percent"] <= 100, l
        # About once a second while it lasts, and moving.
        assert len(loading) >= 2 or took < 2.0, (took, loading)
        pcts = [l["percent"] for l in loading]
        assert pcts == sorted(pcts), pcts
        ready = msgs.index("hookq ready")
        assert msgs.index("embedded redis is loading its data") < ready, msgs
        assert isinstance(lines[ready]["pid"], int) and lines[ready]["pid"] == p.pid, lines[ready]
        assert d.redis().dbsize() >= keys
        p.signal(signal.SIGTERM)
        assert p.wait(30) == 0


if __name__ == "__main__":
    suite.run()
