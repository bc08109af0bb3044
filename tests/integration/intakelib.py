"""Helpers for the intake tests: a config file, the server under test, and
raw HTTP over loopback.

The server under test is `hookq serve -c FILE` (HQ_HOOKQ). Setting
HQ_INTAKE_UNDER_TEST=helper runs tests/integration/intake_server.c instead,
the intake alone, which is how the intake was tested before the CLI existed.
"""
import json
import os
import select
import socket
import tempfile
import time

import harness

UNDER_TEST = os.environ.get("HQ_INTAKE_UNDER_TEST", "hookq")


def config_text(redis_url, port, intake=None, extra="", redis_opts=None):
    opts = {
        "listen": "127.0.0.1:%d" % port,
        "path": "/webhook",
        "max_key_depth": "100000",
    }
    opts.update(intake or {})
    lines = ["[redis]", "url = %s" % redis_url]
    lines += ["%s = %s" % kv for kv in (redis_opts or {}).items()]
    lines += ["", "[intake]"]
    lines += ["%s = %s" % kv for kv in opts.items()]
    lines += ["", "[admin]", "listen = off", "",
              "[event post-create]", "deliver = log", "",
              "[event post-delete]", "deliver = log", "", extra]
    return "\n".join(lines) + "\n"


class Intake:
    """The intake under test, on a free port, stopped by PID."""

    def __init__(self, redis_url, intake=None, extra="", redis_opts=None):
        self.dir = tempfile.mkdtemp(prefix="hq-intake-")
        self.port = harness.free_port()
        self.cfg = os.path.join(self.dir, "hookq.ini")
        with open(self.cfg, "w") as f:
            f.write(config_text(redis_url, self.port, intake, extra, redis_opts))
        self.log = os.path.join(self.dir, "stderr.log")
        if UNDER_TEST == "helper":
            argv = [harness.helper("intake_server"), "-c", self.cfg]
        else:
            argv = [harness.HOOKQ, "serve", "-c", self.cfg]
        self.errf = open(self.log, "w")
        self.proc = harness.Proc(argv, cwd=self.dir, stderr=self.errf)
        harness.wait_until(self._up, 10, what="intake on port %d" % self.port)

    def _up(self):
        if not self.proc.alive():
            raise RuntimeError("intake exited: %s" % self.stderr())
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        rc = self.proc.stop()
        self.errf.close()
        err = self.stderr()
        for bad in ("Sanitizer", "runtime error:"):
            if bad in err:
                raise AssertionError("intake reported an error:\n" + err)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def connect(self, timeout=5):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def post(self, body, headers=None, path="/webhook", method="POST", sock=None):
        """One request; returns Response. Uses `sock` when given (kept open)."""
        if isinstance(body, str):
            body = body.encode()
        h = {"Host": "localhost", "Content-Length": str(len(body))}
        h.update(headers or {})
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        head += "".join("%s: %s\r\n" % kv for kv in h.items() if kv[1] is not None)
        own = sock is None
        s = sock or self.connect()
        try:
            s.sendall(head.encode() + b"\r\n" + body)
            return read_response(s, head_only=(method == "HEAD"))
        finally:
            if own:
                s.close()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Response(%d, %r, %r)" % (self.status, self.headers, self.body[:200])


def recv_before(s, deadline, late, closed):
    """One recv() from `s` by `deadline` (time.monotonic()): AssertionError(late)
    when the deadline has passed, ConnectionError(closed) when the peer closed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise AssertionError(late)
    s.settimeout(left)
    chunk = s.recv(65536)
    if not chunk:
        raise ConnectionError(closed)
    return chunk


def read_response(s, head_only=False, timeout=5):
    """Read one HTTP/1.1 response with a Content-Length (skips 1xx)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        while b"\r\n\r\n" not in buf:
            buf += recv_before(s, deadline, "no response within %.1fs" % timeout,
                               "connection closed before a response: %r" % buf)
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if 100 <= status < 200:
            continue
        n = 0 if head_only else int(headers.get("content-length", "0"))
        while len(buf) < n:
            buf += recv_before(s, deadline, "incomplete body within %.1fs" % timeout,
                               "connection closed in the body")
        r = Response(status, headers, buf[:n])
        r.rest = buf[n:]
        return r


def readable(s, timeout):
    r, _, _ = select.select([s], [], [], timeout)
    return bool(r)


def closed_by_peer(s, timeout):
    """True when the peer closes `s` (EOF or reset) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if readable(s, left):
            try:
                if s.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True


def envelope(customer="acme", code="post-create", **data):
    d = {"customer_id": customer}
    d.update(data)
    return json.dumps({"code": code, "data": d})


def expect_error(r, status, error):
    assert r.status == status, "want %d %s, got %r" % (status, error, r)
    j = r.json()
    assert j["error"] == error, "want error %s, got %r" % (error, j)
    assert "detail" in j, r
    assert r.header("content-type") == "application/json", r
    return j
