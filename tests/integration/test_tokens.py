"""Tokens (DESIGN §3.5 ★): PUT/DELETE /api/tokens/CUSTOMER on a real
`hookq run` and `hookq token set CUSTOMER` reading the token from stdin,
each stored exactly as `hookq token set` stores it, a held customer going on
once its token is set over HTTP, and bad input answered with a JSON error
that stores nothing."""
import json
import subprocess
import urllib.parse

from harness import HOOKQ, RedisServer, Suite, processes, wait_until
from proclib import Double, Queue, prefix
from test_admin_http import TOKEN, Hookq

suite = Suite("tokens")
P = prefix()


def token_of(rs, customer):
    v = rs.client().hget(P + "tok", customer)
    return v.decode() if v is not None else None


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
def put_and_delete_store_the_token_as_the_cli_does_and_release_a_held_customer():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        sink = Double(start, "sink")
        hq = Hookq(start, rs, mock.url, {"post-create": [
            "fetch = GET /posts/{data.post_id}", "deliver = " + sink.url + "/hooks"]},
            token=TOKEN)
        # Without the admin token: 401, as every /api/* route.
        assert put(hq, "acme", {"token": "t-1"}, token=False)[0] == 401
        # A customer without a token is held at its first fetch.
        assert hq.post_webhook({"code": "post-create",
                                "data": {"customer_id": "acme", "post_id": 7}}) == 202
        wait_until(lambda: rs.client().hget(P + "hc", "acme") is not None, 10,
                   what="acme held for its token")
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
        for path in ("/api/tokens/", "/api/tokens/a%0Ab", "/api/tokens/a%00b"):
            status, _, text = hq.request(path, body={"token": "y"}, method="PUT")
            assert status == 400 and json.loads(text)["error"] == "bad_customer", (path, text)
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


if __name__ == "__main__":
    suite.run()
