"""Shared helpers for the integration tests.

Every server a test needs is started here on 127.0.0.1, on a free port, in
a private temporary directory, and stopped by PID when the test ends. Nothing
is ever stopped by name. Paths of the binaries under test come from the
environment that ctest sets (HQ_HOOKQ, REDIS_SERVER, HQ_<HELPER>).
"""
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis  # python3-redis

HOOKQ = os.environ.get("HQ_HOOKQ", "hookq")
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


def helper(name):
    """Path of a helper program built from tests/{integration,doubles}/NAME.c."""
    path = os.environ.get("HQ_" + name.upper())
    if not path:
        raise RuntimeError("helper %s not built (no HQ_%s)" % (name, name.upper()))
    return path


SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "lib", "scripts")


def fnv1a(s):
    """FNV-1a 32 of a customer id, as hq__store_shard_of() computes it."""
    h = 2166136261
    for b in s.encode():
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def lua_script(name):
    """The text of src/lib/scripts/NAME.lua as the library loads it: after _prelude.lua."""
    with open(os.path.join(SCRIPTS, "_prelude.lua")) as f:
        prelude = f.read()
    with open(os.path.join(SCRIPTS, name + ".lua")) as f:
        return prelude + f.read()


def webhook_digest(webhook_id):
    """The enqueue script's fifth argument of a job: the first 16 bytes of
    SHA-256(webhook id), as enqueue.c computes it; b"" without one."""
    if not webhook_id:
        return b""
    if isinstance(webhook_id, str):
        webhook_id = webhook_id.encode()
    return hashlib.sha256(webhook_id).digest()[:16]


def pid_alive(pid):
    """Whether process `pid` runs: exists and is no zombie (of someone else's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


_ports_given = set()


def free_port():
    """A loopback port that is free now and that this process has not
    handed out before: the kernel may give the same port to two bind(0)s
    in a row once the first socket is closed, and a test that asks for an
    intake and an admin port must not get one port twice."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def json_lines(path):
    """The whole lines of a file another process is appending to, each
    parsed as JSON; [] if it does not exist yet. A read that races the
    writer's write(2) can end inside a line: that part is left for the next
    poll."""
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.endswith("\n")]
    except FileNotFoundError:
        return []


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Poll pred() until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Proc:
    """A child process that is stopped by PID when the test ends."""

    def __init__(self, argv, env=None, cwd=None, stdout=None, stderr=None, stdin=None):
        e = dict(os.environ)
        if env:
            e.update(env)
        self.argv = argv
        self.p = subprocess.Popen(argv, env=e, cwd=cwd, stdin=stdin,
                                  stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                  stderr=stderr if stderr is not None else None)
        self.pid = self.p.pid

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout):
        return self.p.wait(timeout=timeout)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=10):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGTERM)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
            except ProcessLookupError:
                pass
        return self.p.returncode


class RedisServer:
    """A throwaway redis-server on a free loopback port."""

    def __init__(self, appendonly=False, extra=()):
        self.dir = tempfile.mkdtemp(prefix="hq-redis-")
        self.port = free_port()
        self.appendonly = appendonly
        self.extra = list(extra)
        self.proc = None
        # The port was free when picked, but a parallel test may take it
        # first: then ours exits and we pick another.
        for _ in range(5):
            try:
                self.start()
                return
            except RuntimeError:
                if not self._port_was_taken():
                    raise
                self.port = free_port()
        self.start()

    def _port_was_taken(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return "Address already in use" in f.read()
        except OSError:
            return False

    def start(self):
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no",
                "--logfile", os.path.join(self.dir, "redis.log")] + self.extra
        self.proc = Proc(argv)
        wait_until(self._ping, 10, what="redis-server on port %d" % self.port)

    def _ping(self):
        if not self.proc.alive():
            raise RuntimeError("redis-server exited: see %s/redis.log" % self.dir)
        try:
            # Answered by our server, not by one a parallel test started on
            # the same port.
            return (self.client().ping() and
                    self.client().info("server")["process_id"] == self.proc.pid)
        except redis.exceptions.ConnectionError:
            return False

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def processes():
    """Collects Procs; stops every one of them by PID on exit."""
    procs = []

    def start(*a, **kw):
        p = Proc(*a, **kw)
        procs.append(p)
        return p
    try:
        yield start
    finally:
        for p in reversed(procs):
            p.stop()


class Suite:
    """A tiny test runner: each test is a function; prints 'N passed, N failed'."""

    def __init__(self, name):
        self.name = name
        self.tests = []

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def run(self):
        only = sys.argv[1:]
        passed = failed = 0
        for fn in self.tests:
            if only and fn.__name__ not in only:
                continue
            t0 = time.monotonic()
            try:
                fn()
            except Exception:
                import traceback
                traceback.print_exc()
                print("FAIL %s.%s (%.1fs)" % (self.name, fn.__name__, time.monotonic() - t0), flush=True)
                failed += 1
            else:
                print("ok   %s.%s (%.1fs)" % (self.name, fn.__name__, time.monotonic() - t0), flush=True)
                passed += 1
        print("%d passed, %d failed" % (passed, failed))
        sys.exit(1 if failed or not passed else 0)
