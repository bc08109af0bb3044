"""The Django example (examples/django, docs/django.md), for real: a real
`hookq run`, the mock API and the example shop under Debian's gunicorn and
python3-django, all on free loopback ports. Webhooks posted to hookq reach
the Django view once each, in order per key, with their signature
([deliver] secret) checked by the view; the shop's own
API calls, made through hookq_limit.acquire(), and hookq's fetches together
never exceed 2 per 1 s window per (token, endpoint) at the mock API."""
import base64
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from harness import RedisServer, Suite, free_port, processes, wait_until
from proclib import Double, max_in_window
from test_admin_http import TOKEN, Hookq

suite = Suite("django")

PYTHON = "/usr/bin/python3"           # Debian's, where python3-django is
GUNICORN = "/usr/bin/gunicorn"
SHOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "examples", "django")
SECRET = "whsec_" + base64.b64encode(b"django-example-key-0123456789abc").decode()


def shop_signer():
    """A Standard Webhooks signer in a few lines of Python's hmac, written
    from the specification (not the example's own code)."""
    import hashlib
    import hmac

    def sign(secret, msg_id, ts, body):
        key = base64.b64decode(secret.split("_", 1)[1])
        mac = hmac.new(key, ("%s.%d." % (msg_id, ts)).encode() + body, hashlib.sha256)
        return "v1," + base64.b64encode(mac.digest()).decode()
    return sign


class Shop:
    """The example shop under gunicorn, with its own SQLite file."""

    def __init__(self, start, api_url, admin_url, secret):
        self.dir = tempfile.mkdtemp(prefix="hq-django-")
        self.db = os.path.join(self.dir, "shop.sqlite3")
        self.port = free_port()
        self.env = dict(os.environ, SHOP_DB=self.db, HOOKQ_DELIVER_SECRET=secret,
                        HOOKQ_ADMIN_URL=admin_url, HOOKQ_ADMIN_TOKEN=TOKEN,
                        SERVICE_API_URL=api_url, DJANGO_SETTINGS_MODULE="shop.settings",
                        PYTHONDONTWRITEBYTECODE="1")
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=SHOP, env=self.env,
                       check=True, timeout=60)
        self.log = os.path.join(self.dir, "gunicorn.log")
        self.proc = start([GUNICORN, "--bind", "127.0.0.1:%d" % self.port, "--workers", "1",
                           "--threads", "4", "--worker-class", "gthread", "shop.wsgi"],
                          cwd=SHOP, env=self.env, stderr=open(self.log, "w"))
        self.url = "http://127.0.0.1:%d" % self.port
        wait_until(self.up, 30, what="gunicorn")

    def up(self):
        if not self.proc.alive():
            raise AssertionError("gunicorn exited: " + open(self.log).read())
        try:
            urllib.request.urlopen(self.url + "/hooks/x", timeout=1)
        except urllib.error.HTTPError:
            return True      # 405 for a GET: it answers
        except OSError:
            return False
        return True

    def rows(self):
        with sqlite3.connect(self.db, timeout=20) as c:
            return c.execute("SELECT webhook_id, key, seq, attempt, verified, payload "
                             "FROM hooks_delivery ORDER BY id").fetchall()

    def post(self, path, body, headers):
        req = urllib.request.Request(self.url + path, data=body, headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@suite.test
def django_gets_each_webhook_once_in_order_verified_within_the_shared_rate():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--quiet")
        # The shop first: hookq delivers to it. It learns hookq's admin URL
        # (for its own calls) once hookq runs.
        shop = Shop(start, mock.url, "", SECRET)
        events = {code: ["deliver = %s/hooks/%s" % (shop.url, code)]
                  for code in ("post-create", "post-delete")}
        events["post-create"].insert(0, "fetch = GET /posts/{data.post_id}")
        sign_cfg = ["", "[deliver]", "secret = " + SECRET]
        hq = Hookq(start, rs, mock.url, events, token=TOKEN,
                   api=["margin = 100ms"] + sign_cfg)
        shop.env["HOOKQ_ADMIN_URL"] = "http://127.0.0.1:%d" % hq.admin
        for customer in ("acme", "bob"):
            status, _, _ = hq.request("/api/tokens/" + customer,
                                      body={"token": "tok-" + customer}, method="PUT")
            assert status == 204
        # The shop's own calls for acme, beside hookq's fetches.
        app = subprocess.Popen([PYTHON, "manage.py", "call_api", "acme", "tok-acme", "6"],
                               cwd=SHOP, env=shop.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        try:
            posted = []
            for i in range(5):
                for customer in ("acme", "bob"):
                    for code in ("post-create", "post-delete"):
                        body = {"code": code, "data": {"customer_id": customer,
                                                       "post_id": i, "n": i}}
                        assert hq.post_webhook(body) == 202
                        posted.append((customer, code, i))
            n = len(posted)
            wait_until(lambda: len(shop.rows()) >= n, 60, interval=0.2,
                       what="%d deliveries in Django" % n)
            out, err = app.communicate(timeout=60)
        finally:
            if app.poll() is None:
                app.kill()
                app.wait()
        assert app.returncode == 0, err.decode()
        assert out.decode().count("-> 200") == 6, out
        rows = shop.rows()
        assert len(rows) == n, len(rows)
        # Once each.
        assert len({r[0] for r in rows}) == n
        # In order per key: seq 1..5 in the order Django stored them.
        by_key = {}
        for wid, key, seq, attempt, verified, payload in rows:
            by_key.setdefault(key, []).append(seq)
            assert json.loads(payload)["data"]["n"] == seq - 1, payload
            assert verified == 1
        assert sorted(by_key) == ["acme:post-create", "acme:post-delete",
                                  "bob:post-create", "bob:post-delete"], by_key
        for key, seqs in by_key.items():
            assert seqs == [1, 2, 3, 4, 5], (key, seqs)
        # At the API: hookq's fetches and the shop's calls within 2 per 1 s.
        recs = mock.records()
        assert all(r["status"] == 200 for r in recs), [r for r in recs if r["status"] != 200]
        for token in ("tok-acme", "tok-bob"):
            times = [r["mono"] for r in recs if r["token"] == token
                     and r["endpoint"] == "GET /posts/{}"]
            assert max_in_window(times, 1000) <= 2, token
        assert len([r for r in recs if r["token"] == "tok-acme"]) == 5 + 6

        # At-least-once: the same delivery again is a no-op for the shop.
        wid, key, seq, _, _, payload = rows[0]
        body = payload.encode()
        headers = {"Content-Type": "application/json", "webhook-id": wid,
                   "Hookq-Id": wid}
        sign = shop_signer()
        ts = int(time.time())
        headers.update({"webhook-timestamp": str(ts),
                        "webhook-signature": sign(SECRET, wid, ts, body)})
        status, ans = shop.post("/hooks/post-create", body, headers)
        assert status == 200 and ans == {"duplicate": True}, ans
        assert len(shop.rows()) == n
        view_checks_standard_webhooks_signatures(shop, sign)


def view_checks_standard_webhooks_signatures(shop, sign):
    """The view's check against signatures made with Python's hmac from the
    specification: a second v1 entry or another version is fine; a changed
    body, another id, a timestamp over 5 minutes away, no signature or
    another key is 401 (which hookq would dead-letter)."""
    body = json.dumps({"id": "x-1", "key": "acme:other", "seq": 1, "attempt": 1,
                       "code": "other", "customer": "acme",
                       "data": {"n": 0.1000000000000000055511151231257827}}).encode()
    ts = int(time.time())
    good = {"Content-Type": "application/json", "webhook-id": "x-1",
            "webhook-timestamp": str(ts),
            "webhook-signature": "v2,xyz " + sign(SECRET, "x-1", ts, body)}
    cases = [
        dict(good, **{"webhook-signature": sign(SECRET, "x-1", ts, body + b" ")}),
        dict(good, **{"webhook-id": "x-2"}),
        dict(good, **{"webhook-timestamp": str(ts - 301)}),
        {k: v for k, v in good.items() if k != "webhook-signature"},
        dict(good, **{"webhook-signature": sign("whsec_" + base64.b64encode(b"other").decode(),
                                                "x-1", ts, body)}),
    ]
    before = len(shop.rows())
    for h in cases:
        status, ans = shop.post("/hooks/other", body, h)
        assert status == 401 and ans["error"] == "bad_signature", (h, ans)
    assert len(shop.rows()) == before
    assert shop.post("/hooks/other", body, good) == (200, {"stored": True})
    row = shop.rows()[-1]
    assert row[0] == "x-1" and row[4] == 1
    # The payload is kept byte for byte (the numbers' exact text).
    assert row[5].encode() == body


if __name__ == "__main__":
    suite.run()
