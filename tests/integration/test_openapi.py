"""docs/admin-api.yaml is valid OpenAPI 3.0 (npm @apidevtools/swagger-parser)
and says what the live admin API answers (DESIGN §3.5 ★): each /api/* route
of a real `hookq run` on a real redis-server, in its successes and its
errors, checked by tests/node/openapi_check.js against the operation the
document has for it (status listed, JSON body matching its schema), and no
operation of the document left unexercised.

The routes other parts of version 2 add (tokens, limit, workers) are
described from DESIGN §3.5; on a hookq without one of them the test names
it and checks the rest."""
import json
import os
import subprocess
import sys

from harness import RedisServer, Suite, processes, wait_until
from test_admin_http import Hookq, events, wh

suite = Suite("openapi")

TOKEN = "s3cret-admin"
HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.join(HERE, "..", "..", "docs", "admin-api.yaml")
CHECK = os.path.join(HERE, "..", "node", "openapi_check.js")
# Routes that another branch of version 2 adds: absent here until it has.
LATER = ("/api/tokens/", "/api/limit", "/api/workers")


def check(hq, requests):
    out = subprocess.run(["node", CHECK, SPEC, "http://127.0.0.1:%d" % hq.admin, TOKEN],
                         input=json.dumps([r[0] for r in requests]), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def absent(res):
    """Answered by no route: the listener's own 404 (no detail), or 501 from
    libevent for a method it was not told to take."""
    if res["status"] == 501:
        return True
    return res["status"] == 404 and res["body"].strip() == '{"error":"not_found"}'


def req(method, path, want, body=None, **kw):
    r = dict(method=method, path=path, **kw)
    if body is not None:
        r["body"] = body
    return (r, {want} if isinstance(want, int) else set(want))


@suite.test
def every_route_answers_as_the_document_says():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events(), token=TOKEN)
        assert hq.post_webhook(wh("stop", customer="c1")) == 202
        for c in ("c2", "c3", "c4"):
            assert hq.post_webhook(wh("bad", customer=c)) == 202
        assert hq.post_webhook(wh("fetch", customer="tk", post_id=1)) == 202
        assert hq.post_webhook(wh("ok")) == 202
        wait_until(lambda: hq.json("/api/keys?state=held")["total"] == 2, 20, what="2 held keys")
        wait_until(lambda: hq.json("/api/dlq")["total"] == 3, 20, what="3 dead letters")
        wait_until(lambda: hq.json("/api/throughput")["points"], 15, interval=0.5,
                   what="a throughput point")
        ids = {d["key"]: d["id"] for d in hq.json("/api/dlq")["dead_letters"]}
        requests = [
            req("GET", "/api/stats", 200), req("GET", "/api/stats?top=2", 200),
            req("GET", "/api/stats?top=x", 400), req("GET", "/api/stats", 401, auth=False),
            req("GET", "/api/keys", 200), req("GET", "/api/keys?state=held&top=1&offset=1", 200),
            req("GET", "/api/keys?q=c1", 200), req("GET", "/api/keys?state=zzz", 400),
            req("GET", "/api/keys/c1:stop", 200), req("GET", "/api/keys/c1%3Astop?n=1", 200),
            req("GET", "/api/keys/a:none", 404), req("GET", "/api/keys/nocolon", 400),
            req("POST", "/api/hold", 200, {"key": "c1:stop", "reason": "looking"}),
            req("POST", "/api/hold", 404, {"key": "none:x"}), req("POST", "/api/hold", 400, {}),
            req("POST", "/api/hold", 415, '{"key": "c1:stop"}', contentType="text/plain"),
            req("POST", "/api/hold", 400, "{", contentType="application/json"),
            req("POST", "/api/release", 404, {"key": "c9:none"}),
            req("POST", "/api/release", 404, {"customer": "nobody"}),
            req("POST", "/api/release", 400, {"key": 1}),
            req("GET", "/api/dlq", 200), req("GET", "/api/dlq?limit=1", 200),
            req("GET", "/api/dlq?limit=x", 400),
            req("GET", "/api/dlq/" + ids["c2:bad"], 200), req("GET", "/api/dlq/0-999", 404),
            req("POST", "/api/dlq/retry", 200, {"id": ids["c2:bad"]}),
            req("POST", "/api/dlq/retry", 404, {"id": "0-999"}),
            req("POST", "/api/dlq/retry", 400, {"all": False}),
            req("POST", "/api/dlq/drop", 200, {"id": ids["c3:bad"]}),
            req("POST", "/api/dlq/drop", 404, {"id": "0-999"}),
            req("POST", "/api/dlq/drop", 200, {"all": True}),
            req("GET", "/api/throughput", 200),
            req("PUT", "/api/tokens/tk", 204, {"token": "tok-tk"}),
            req("PUT", "/api/tokens/tk", 400, {}),
            req("PUT", "/api/tokens/tk", 401, {"token": "x"}, auth=False),
            req("DELETE", "/api/tokens/tk", 204), req("DELETE", "/api/tokens/nobody", (204, 404)),
            req("POST", "/api/limit", 200, {"token": "t1", "endpoint": "GET /posts/{}"}),
            req("POST", "/api/limit", 200, {"token": "t1", "endpoint": "GET /posts/{}"}),
            req("POST", "/api/limit", 429, {"token": "t1", "endpoint": "GET /posts/{}", "wait_ms": 0}),
            req("POST", "/api/limit", 400, {"endpoint": "GET /posts/{}"}),
            req("GET", "/api/workers", 200),
            # Last: the release that lets c1:stop run again.
            req("POST", "/api/release", 200, {"key": "c1:stop"}),
        ]
        doc = check(hq, requests)
        missing, wrong = set(), []
        for (r, want), res in zip(requests, doc["results"]):
            later = next((p for p in LATER if r["path"].startswith(p)), None)
            if later and absent(res):
                missing.add(later)
                continue
            if res["status"] not in want or res["errors"]:
                wrong.append((r["method"], r["path"], want, res["status"], res["errors"], res["body"][:300]))
        assert wrong == [], "\n".join(map(str, wrong))
        untested = [u for u in doc["untested"] if not any(p in u for p in missing)]
        assert untested == [], untested
        if missing:
            print("not on this hookq yet (described from DESIGN §3.5, not checked live): " +
                  ", ".join(sorted(missing)))


@suite.test
def the_document_lists_every_route_the_listener_serves():
    with open(SPEC) as f:
        text = f.read()
    import re
    served = set()
    for name in ("admin_api.c", "admin_app.c"):
        with open(os.path.join(HERE, "..", "..", "src", "hookq", name)) as f:
            code = f.read()
        defines = dict(re.findall(r'#define ([A-Z_]+) "([^"]*)"', code))
        found = re.findall(r'hk_admin_route(?:_prefix)?\(a, (?:"(/api/[^"]*)"|([A-Z_]+))', code)
        found = [lit or defines.get(macro, "") for lit, macro in found]
        found = [p for p in found if p.startswith("/api/")]
        assert found, "no routes found in %s" % name
        served.update(found)
    for path in served:
        want = path + "{" if path.endswith("/") else path + ":"
        assert "\n  " + want in text, "docs/admin-api.yaml has no %s" % path


if __name__ == "__main__":
    if not os.path.isdir(os.path.join(HERE, "..", "node_modules", "@apidevtools", "swagger-parser")):
        print("tests/node_modules has no @apidevtools/swagger-parser: run tools/install-deps test")
        sys.exit(1)
    suite.run()
