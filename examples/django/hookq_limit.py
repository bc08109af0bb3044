"""Share hookq's API budget: ask hookq before each call the app makes
itself to the external service's API (stdlib only; docs/django.md).

The service allows 2 calls per second per (token, endpoint), and hookq's
workers already spend that budget on their fetches. POST /api/limit on
hookq's admin listener counts one call against the same budget, so that
the app's calls and hookq's together stay within the limit:

    from hookq_limit import acquire
    acquire(customer="acme", endpoint="GET /posts/{}")   # blocks until granted
    urllib.request.urlopen(...)                           # then call at once

The endpoint is written as hookq's [api] endpoint = route counts it: method
and path, each {…} for a variable part. A grant is counted when it is
given: call right away.
"""
import json
import time
import urllib.error
import urllib.request

try:
    from django.conf import settings as _settings
except ImportError:  # usable without Django too
    _settings = None


class LimitError(Exception):
    """hookq refused the request itself (bad input, no token, Redis down)."""


def _default(name, fallback):
    try:
        return getattr(_settings, name) or fallback
    except Exception:
        return fallback


def acquire(endpoint, customer=None, token=None, timeout=30.0, admin_url=None,
            admin_token=None):
    """Block until hookq grants one call of `customer`'s (or `token`'s)
    budget on `endpoint`; raise TimeoutError after `timeout` seconds, or
    LimitError when hookq answers something other than a grant or a 429."""
    admin_url = admin_url or _default("HOOKQ_ADMIN_URL", "http://127.0.0.1:8081")
    admin_token = admin_token if admin_token is not None else _default("HOOKQ_ADMIN_TOKEN", "")
    who = {"customer": customer} if customer is not None else {"token": token}
    deadline = time.monotonic() + timeout
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms < 0:
            raise TimeoutError("no API budget for %s within %.1f s" % (endpoint, timeout))
        body = dict(who, endpoint=endpoint, wait_ms=min(left_ms, 10000))
        headers = {"Content-Type": "application/json"}
        if admin_token:
            headers["Authorization"] = "Bearer " + admin_token
        req = urllib.request.Request(admin_url.rstrip("/") + "/api/limit",
                                     data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                if json.load(r).get("granted"):
                    return
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            if e.code != 429:
                raise LimitError("hookq answered %d: %s" % (e.code, text))
            # hookq waited wait_ms already; ask again (the loop's deadline
            # bounds it).
