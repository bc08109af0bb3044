"""The intake's Redis connection, counted in system calls: each enqueue
call is written at the end of its loop pass and its reply read on a read
event that stays armed (src/lib/adapters/redis_event.c), so a call costs no
epoll_ctl. Needs strace (tools/install-deps test installs it); where it
cannot trace (no ptrace), the test exits 77, which ctest reports as
skipped, not passed."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import harness
from intakelib import config_text, envelope, read_response

suite = harness.Suite("intake_events")


def strace_can_trace():
    if shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-o", os.devnull, "true"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def syscall_counts(path):
    """strace -c's summary: {syscall: calls}."""
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
    return counts


@suite.test
def a_call_to_redis_changes_no_event():
    """Each enqueue call is written at the end of its loop pass and its
    reply read on a read event that stays armed: a lone request costs no
    epoll_ctl on the Redis connection (hiredis's own libevent adapter took
    four per call: its write event armed and disarmed, its read event
    taken out and put back after each reply). Counted with strace on the
    intake alone, one loop: 200 requests one after another on one
    keep-alive connection, each its own call."""
    redis = harness.RedisServer()
    tmp = tempfile.mkdtemp(prefix="hq-flights-")
    tracer = None
    pid = None
    try:
        port = harness.free_port()
        cfg = os.path.join(tmp, "hookq.ini")
        with open(cfg, "w") as f:
            f.write(config_text(redis.url, port, {"threads": "1"}))
        out = os.path.join(tmp, "strace.txt")
        tracer = harness.Proc(["strace", "-f", "-qq", "-c", "-e", "trace=epoll_ctl,write",
                               "-o", out, harness.helper("intake_server"), "-c", cfg],
                              cwd=tmp, stderr=subprocess.DEVNULL)

        def intake_pid():
            try:
                with open("/proc/%d/task/%d/children" % (tracer.pid, tracer.pid)) as f:
                    kids = f.read().split()
            except OSError:
                return None
            return int(kids[0]) if kids else None

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        harness.wait_until(up, 20, what="the traced intake on port %d" % port)
        pid = intake_pid()
        assert pid is not None, "no intake under strace"
        rc = redis.client()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        n = 200
        try:
            for i in range(-1, n):
                if i == 0:
                    rc.config_resetstat()  # the script is loaded by now
                body = envelope("c-lone", n=i).encode()
                s.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
                r = read_response(s)
                assert r.status == 202, r
        finally:
            s.close()
        calls = rc.info("commandstats")
        ncalls = sum(v["calls"] for k, v in calls.items()
                     if k in ("cmdstat_evalsha", "cmdstat_eval"))
        assert ncalls == n, calls  # one call each: lone requests
        os.kill(pid, signal.SIGTERM)
        tracer.wait(20)
        pid = None
        got = syscall_counts(out)
        # Setting up (the listener, the Redis and HTTP connections) takes a
        # few; four per call would be 800.
        assert got.get("epoll_ctl", 0) < 40, got
        assert got.get("write", 0) >= n, got  # each call was written
    finally:
        if pid is not None:  # the intake first: strace leaves it running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if tracer is not None:
            tracer.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not strace_can_trace():
        print("skipped: strace is missing or cannot trace here (ptrace)")
        sys.exit(77)
    suite.run()
