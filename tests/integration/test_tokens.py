"""Tokens (DESIGN §3.5 ★): PUT/DELETE /api/tokens/CUSTOMER on a real
`hookq run` and `hookq token set CUSTOMER` reading the token from stdin,
each stored exactly as `hookq token set` stores it, a held customer going on
once its token is set over HTTP, and bad input answered with a JSON error
that stores nothing."""
import json
import os
import stat
import subprocess
import tempfile
import time
import urllib.parse

from harness import HOOKQ, RedisServer, Suite, processes, wait_until
from proclib import Double, prefix
from test_admin_http import TOKEN, Hookq

suite = Suite("tokens")
P = prefix()


def token_of(rs, customer):
    v = rs.client().hget(P + "tok", customer)
    return v.decode() if v is not None else None


def key_held(rs, key):
    """The reason a key is held for, or None."""
    m = rs.client().hmget(P + "m:" + key, "st", "why")
    return m[1].decode() if m[0] == b"held" and m[1] else None


def put(hq, customer, body, **kw):
    return hq.request("/api/tokens/" + urllib.parse.quote(customer, safe=""),
                      body=body, method="PUT", **kw)


@suite.test
def token_writes_are_refused_without_an_admin_token():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"e": ["deliver = log"]})
        status, _, text = put(hq, "acme", {"token": "t-1"})
        assert status == 403 and json.loads(text)["error"] == "admin_token_required", text
        status, _, text = hq.request("/api/tokens/acme", method="DELETE")
        assert status == 403, (status, text)
        assert token_of(rs, "acme") is None


@suite.test
def put_and_delete_store_the_token_as_the_cli_does_and_release_what_waited_for_it():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        sink = Double(start, "sink")
        hq = Hookq(start, rs, mock.url, {"post-create": [
            "fetch = GET /posts/{data.post_id}", "deliver = " + sink.url + "/hooks"]},
            token=TOKEN)
        # Without the admin token: 401, as every /api/* route.
        assert put(hq, "acme", {"token": "t-1"}, token=False)[0] == 401
        # A customer without a token: its key with a fetch is held.
        assert hq.post_webhook({"code": "post-create",
                                "data": {"customer_id": "acme", "post_id": 7}}) == 202
        wait_until(lambda: key_held(rs, "acme:post-create") == "no-token", 10,
                   what="acme's key held for its token")
        status, _, text = put(hq, "acme", {"token": "tok-acme"})
        assert status == 204 and text == "", (status, text)
        assert token_of(rs, "acme") == "tok-acme"
        wait_until(lambda: sink.count() == 1, 10, what="the delivery after the token")
        assert [r["token"] for r in mock.records()] == ["tok-acme"]
        assert rs.client().hget(P + "hc", "acme") is None
        # A customer with a '/' and a blank, percent-encoded in the path.
        assert put(hq, "a/b c", {"token": "x"})[0] == 204
        assert token_of(rs, "a/b c") == "x"
        status, _, _ = hq.request("/api/tokens/acme", method="DELETE")
        assert status == 204 and token_of(rs, "acme") is None
        status, _, text = hq.request("/api/tokens/acme", method="DELETE")
        assert status == 404 and json.loads(text)["error"] == "not_found", text
        status, headers, _ = hq.request("/api/tokens/acme")
        assert status == 405 and headers["Allow"] == "PUT, DELETE", status


@suite.test
def bad_token_writes_are_named_and_store_nothing():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"e": ["deliver = log"]}, token=TOKEN)
        assert put(hq, "acme", {"token": "kept"})[0] == 204
        cases = [
            (b'{"token": "x"', 400, "invalid_json"),
            (b'["x"]', 400, "invalid_json"),
            ({"token": "x", "extra": 1}, 400, "unknown_field"),
            ({"token": ""}, 400, "empty_token"),
            ({}, 400, "missing_token"),
            ({"token": 5}, 400, "bad_token"),
            ({"token": "a\nb"}, 400, "bad_token"),
            ({"token": "x" * 1001}, 400, "bad_token"),
            (b'{"token": "' + b"x" * (1 << 20) + b'"}', 413, "body_too_large"),
        ]
        for body, want, error in cases:
            status, _, text = put(hq, "acme", body)
            ans = json.loads(text)
            assert status == want and ans["error"] == error, (body[:40], status, text)
            assert ans.get("detail"), text
            assert token_of(rs, "acme") == "kept", body[:40]
        status, _, text = hq.request("/api/tokens/acme", body={"token": "y"}, method="PUT",
                                     headers={"Content-Type": "text/plain"})
        assert status == 415, (status, text)
        for path in ("/api/tokens/a%0Ab", "/api/tokens/a%00b"):
            status, _, text = hq.request(path, body={"token": "y"}, method="PUT")
            assert status == 400 and json.loads(text)["error"] == "bad_customer", (path, text)
        # No customer at all: no such route.
        assert hq.request("/api/tokens/", body={"token": "y"}, method="PUT")[0] == 404
        assert token_of(rs, "acme") == "kept"
        assert rs.client().hlen(P + "tok") == 1


@suite.test
def token_set_without_token_reads_one_line_of_stdin():
    with RedisServer() as rs:
        def cli(*args, stdin=b""):
            p = subprocess.run([HOOKQ, "token"] + list(args), input=stdin,
                               capture_output=True, timeout=20,
                               env={"HOOKQ_REDIS_URL": rs.url, "PATH": "/usr/bin:/bin"})
            return p.returncode, p.stdout.decode(), p.stderr.decode()

        rc, out, err = cli("set", "acme", stdin=b"s3cr3t-token\n")
        assert rc == 0 and "token set for acme" in out, (rc, out, err)
        assert token_of(rs, "acme") == "s3cr3t-token"
        assert "s3cr3t" not in out + err
        rc, _, _ = cli("set", "acme", stdin=b"other\r\nsecond line\n")
        assert rc == 0 and token_of(rs, "acme") == "other"
        rc, _, _ = cli("set", "bob", stdin=b"no-newline")
        assert rc == 0 and token_of(rs, "bob") == "no-newline"
        for stdin in (b"", b"\n", b"\r\n"):
            rc, _, err = cli("set", "carol", stdin=stdin)
            assert rc == 2 and "stdin" in err, (stdin, rc, err)
        assert token_of(rs, "carol") is None
        rc, out, _ = cli("set", "--help")
        assert rc == 0 and "stdin" in out


class TokenCommand:
    """A token_command script: logs each run (argument, HOOKQ_CUSTOMER,
    HOOKQ_REASON), prints the token file's text, exits with the exit file's
    number after the sleep file's seconds; says a secret on stderr."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hq-tokcmd-")
        self.path = os.path.join(self.dir, "get-token")
        with open(self.path, "w") as f:
            f.write('#!/bin/sh\n'
                    'd=%s\n'
                    'echo "$1 $HOOKQ_CUSTOMER $HOOKQ_REASON $HOOKQ_ADMIN_TOKEN" >> $d/runs\n'
                    'echo "SECRET-on-stderr" >&2\n'
                    'sleep $(cat $d/sleep)\n'
                    'cat $d/token\n'
                    'exit $(cat $d/exit)\n' % self.dir)
        os.chmod(self.path, stat.S_IRWXU)
        self.set("", 0)

    def set(self, token, code=0, sleep=0):
        for name, v in (("token", token), ("exit", str(code)), ("sleep", str(sleep))):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(v)

    def runs(self):
        try:
            with open(os.path.join(self.dir, "runs")) as f:
                return [l.split() for l in f]
        except FileNotFoundError:
            return []


def fetch_hookq(start, rs, mock, sink, cmd, timeout="3s"):
    return Hookq(start, rs, mock.url, {"post-create": [
        "fetch = GET /posts/{data.post_id}", "deliver = " + sink.url + "/hooks"]},
        token=TOKEN, api=["token_command = " + cmd.path, "timeout = " + timeout])


def webhook(post_id, customer="acme"):
    return {"code": "post-create", "data": {"customer_id": customer, "post_id": post_id}}


@suite.test
def token_command_supplies_a_missing_token_and_a_rejected_one_without_an_attempt():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        sink = Double(start, "sink")
        cmd = TokenCommand()
        cmd.set("tok-fresh-1\nsecond line ignored\n")
        hq = fetch_hookq(start, rs, mock, sink, cmd)
        assert hq.post_webhook(webhook(1)) == 202
        wait_until(lambda: sink.count() == 1, 15, what="the delivery with the fetched token")
        # Run once, with the customer as its argument and in its environment;
        # the other HOOKQ_* variables (the admin token here) are not passed on.
        assert cmd.runs() == [["acme", "acme", "missing"]], cmd.runs()
        assert token_of(rs, "acme") == "tok-fresh-1"
        assert [(r["token"], r["status"]) for r in mock.records()] == [("tok-fresh-1", 200)]
        assert sink.records()[0]["attempt"] == "1", sink.records()[0]
        # The token is rejected later: a new one, and the call again.
        cmd.set("tok-fresh-2\r\n")
        mock.control(unauthorized=["tok-fresh-1"])
        rs.client().delete(P + "tokcmd:acme")    # past its 30 s
        assert hq.post_webhook(webhook(2)) == 202
        wait_until(lambda: sink.count() == 2, 15, what="the delivery after a 401")
        assert cmd.runs()[1] == ["acme", "acme", "401"], cmd.runs()
        assert [(r["token"], r["status"]) for r in mock.records()][1:] == \
            [("tok-fresh-1", 401), ("tok-fresh-2", 200)]
        assert sink.records()[1]["attempt"] == "1"
        assert token_of(rs, "acme") == "tok-fresh-2"
        hq.proc.stop()
        log = open(hq.errlog).read()
        assert "token_command gave a new token" in log, log
        for secret in ("tok-fresh", "SECRET", "second line"):
            assert secret not in log, (secret, log)


@suite.test
def token_command_failing_or_slow_holds_the_key_and_runs_once_per_30s():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        sink = Double(start, "sink")
        cmd = TokenCommand()
        cmd.set("tok-unused\n", code=3)
        hq = fetch_hookq(start, rs, mock, sink, cmd, timeout="1s")
        assert hq.post_webhook(webhook(1)) == 202
        wait_until(lambda: key_held(rs, "acme:post-create") == "no-token", 15,
                   what="acme's key held for its token")
        assert len(cmd.runs()) == 1 and token_of(rs, "acme") is None
        # A token that the API rejects: no second run within 30 s, held again.
        mock.control(unauthorized=["bad"])
        assert put(hq, "acme", {"token": "bad"})[0] == 204
        wait_until(lambda: key_held(rs, "acme:post-create") == "token-invalid", 15,
                   what="acme's key held for the rejected token")
        assert rs.client().hget(P + "hc", "acme") is None
        assert len(cmd.runs()) == 1, cmd.runs()
        # Slower than api.timeout: killed, and held.
        rs.client().delete(P + "tokcmd:acme")
        cmd.set("tok-late\n", code=0, sleep=5)
        mock.control(unauthorized=["bad2"])
        t0 = time.monotonic()
        assert put(hq, "acme", {"token": "bad2"})[0] == 204
        wait_until(lambda: len(cmd.runs()) == 2, 10, what="the second run")
        wait_until(lambda: key_held(rs, "acme:post-create") == "token-invalid", 10,
                   what="acme's key held after the timeout")
        assert time.monotonic() - t0 < 4.5
        assert token_of(rs, "acme") == "bad2" and sink.count() == 0
        hq.proc.stop()
        log = open(hq.errlog).read()
        assert "token_command exited with 3" in log and "killed after 1000 ms" in log, log
        assert "tok-unused" not in log and "SECRET" not in log and "tok-late" not in log


if __name__ == "__main__":
    suite.run()
