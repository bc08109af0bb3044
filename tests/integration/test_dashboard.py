"""The dashboard in a real browser (DESIGN §5 ★): Debian's chromium, headless,
driven by tests/node/driver.js (npm puppeteer-core), against a real
`hookq run` on a real redis-server. Each view is loaded, each button clicked,
and its effect read in Redis; any console error, uncaught exception or
unexpected error answer fails the test. Screenshots go to $HQ_SCREENSHOTS
(default: <build>/screenshots; docs/img/ holds the README's copies).

Without chromium the test exits 77, which ctest reports as skipped (not
passed); tools/install-deps test installs it, and the node modules."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

from harness import HOOKQ, RedisServer, Suite, processes, wait_until
from proclib import prefix
from test_admin_http import Hookq, wh

suite = Suite("dashboard")

TOKEN = "s3cret-admin"
P = prefix()
HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "..", "node", "driver.js")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or ""
SHOTS = os.environ.get("HQ_SCREENSHOTS") or os.path.join(
    os.environ.get("HQ_BUILD_DIR", tempfile.gettempdir()), "screenshots")


class Browser:
    """driver.js: one command a line in, one answer a line out."""

    def __init__(self, start, token=None):
        argv = ["node", DRIVER] + (["--token", token] if token else [])
        self.proc = start(argv, env={"CHROMIUM": CHROMIUM}, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE)

    def __call__(self, op, **kw):
        kw["op"] = op
        self.proc.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.proc.p.stdin.flush()
        line = self.proc.p.stdout.readline()
        assert line, "driver.js exited (see its stderr above)"
        out = json.loads(line)
        if not out["ok"] and op != "eval":
            # What the page showed then, to say why.
            seen = self("eval", js="JSON.stringify({hash: location.hash, status: "
                        "document.getElementById('status').textContent, msg: "
                        "document.getElementById('msg').textContent, keys: "
                        "[...document.querySelectorAll('#keys tr')].map(tr => tr.textContent)})")
            raise AssertionError("%s: %s\npage: %s" % (kw, out["error"], seen))
        assert out["ok"], "%s: %s" % (kw, out["error"])
        return out["value"]

    def wait(self, js, timeout=10):
        return self("wait", js=js, timeout=timeout)

    def text(self, selector):
        return self("eval", js="document.querySelector(%s).textContent" % json.dumps(selector))

    def table(self, selector):
        """The rows of a table as lists of cell texts, header row included."""
        return self("eval", js="[...document.querySelectorAll(%s + ' tr')].map(tr => "
                    "[...tr.cells].map(c => c.textContent))" % json.dumps(selector))

    def rows_are(self, selector, firsts, timeout=10):
        """Wait until the table's rows (header left out) start with `firsts`."""
        return self.wait("JSON.stringify([...document.querySelectorAll(%s + ' tr')].slice(1)"
                         ".map(tr => tr.cells[0].textContent)) === %s"
                         % (json.dumps(selector), json.dumps(json.dumps(firsts, separators=(",", ":")))),
                         timeout)

    def msg(self, contains, timeout=10):
        """Wait until the action line says `contains`; answer its text and class."""
        self.wait("document.getElementById('msg').textContent.includes(%s)" % json.dumps(contains),
                  timeout)
        return self.text("#msg"), self("eval", js="document.getElementById('msg').className")

    def quit(self):
        self.proc.p.stdin.write(b'{"op": "quit"}\n')
        self.proc.p.stdin.flush()
        self.proc.wait(30)


def shot(b, name):
    os.makedirs(SHOTS, exist_ok=True)
    b("screenshot", path=os.path.join(SHOTS, name))


def stat(r, name):
    return int(r.hget(P + "stats", name) or 0)


def unexpected(problems, allowed):
    """The recorded problems that are not answers the test provoked on
    purpose: allowed is [(method, path regex, statuses)]. Chrome logs every
    answer of 400 or more as a console error ("Failed to load resource");
    those lines are matched against the answers."""
    bad = {"page_errors": problems["page_errors"], "responses": [], "console": []}
    ok_statuses = set()
    for r in problems["responses"]:
        path = urllib.parse.urlsplit(r["url"]).path
        if any(r["method"] == m and re.fullmatch(p, path) and r["status"] in st
               for m, p, st in allowed):
            ok_statuses.add(r["status"])
        else:
            bad["responses"].append(r)
    for line in problems["console"]:
        m = re.match(r"Failed to load resource: the server responded with a status of (\d+)", line)
        if not (m and int(m.group(1)) in ok_statuses):
            bad["console"].append(line)
    return {k: v for k, v in bad.items() if v}


def breaker_knob():
    """Whether this hookq has [deliver] breaker (DESIGN §3.4 ★): then the
    test turns it off, or the many /bin/false runs would take the target
    down and park its keys instead of holding and dead-lettering them."""
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
        f.write("[deliver]\nbreaker = 0\n[event ok]\ndeliver = log\n")
    out = subprocess.run([HOOKQ, "check", "-c", f.name], capture_output=True)
    os.unlink(f.name)
    return out.returncode == 0


def events(d):
    slow = os.path.join(d, "slow.sh")
    with open(slow, "w") as f:
        # Runs until the test creates `go` (at most 60 s): an active key.
        f.write("#!/bin/sh\nfor i in $(seq 600); do [ -e %s/go ] && exit 0; sleep 0.1; done\n" % d)
    os.chmod(slow, 0o755)
    return {"ok": ["deliver = log"],
            # Held once its token is set too: the API at port 9 is not there.
            "fetch": ["fetch = GET /posts/{data.post_id}", "deliver = log",
                      "on_failure = hold"],
            "bad": ["deliver = exec:/bin/false", "on_failure = deadletter"],
            "stop": ["deliver = exec:/bin/false", "on_failure = hold"],
            "slow": ["deliver = exec:" + slow]}


def extra():
    """s1:slow's delivery runs while the test works: a timeout longer than
    the test ([api] timeout bounds a delivery in version 1, [deliver]
    timeout after it)."""
    if breaker_knob():
        return ["[deliver]", "breaker = 0", "timeout = 2m", ""]
    return ["[api]", "timeout = 2m", ""]


@suite.test
def every_view_and_button_works_in_chromium():
    d = tempfile.mkdtemp(prefix="hq-dashboard-")
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events(d), token=TOKEN, extra=extra())
        r = rs.client()
        _, headers, _ = hq.get("/", token=False)
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], headers
        for i in range(3):
            assert hq.post_webhook(wh("stop", customer="c1", i=i)) == 202
        for c in ("c2", "c3", "c4"):
            assert hq.post_webhook(wh("bad", customer=c, note="payload of " + c)) == 202
        for i in range(25):
            assert hq.post_webhook(wh("stop", customer="p%02d" % i)) == 202
        assert hq.post_webhook(wh("fetch", customer="tk", post_id=1)) == 202
        assert hq.post_webhook(wh("slow", customer="s1")) == 202
        for i in range(5):
            assert hq.post_webhook(wh("ok", i=i)) == 202
        wait_until(lambda: hq.json("/api/keys?state=held")["total"] == 27, 30,
                   what="26 keys held by /bin/false and tk held for its token")
        wait_until(lambda: hq.json("/api/dlq")["total"] == 3, 20, what="3 dead letters")
        wait_until(lambda: r.hget(P + "m:s1:slow", "st") == b"active", 20, what="s1:slow active")
        dl = {x["key"].split(":")[0]: x["id"] for x in hq.json("/api/dlq")["dead_letters"]}
        has_workers = hq.get("/api/workers")[0] == 200
        # No route answers 404 before anything else; the token route answers
        # a GET with 405 (it takes PUT and DELETE).
        has_tokens = hq.get("/api/tokens/nobody")[0] != 404

        b = Browser(start, token=TOKEN)
        b("goto", url="http://127.0.0.1:%d/" % hq.admin)

        # The overview: the page asked for the token (the API said 401) and
        # draws what the API says.
        b.wait("document.querySelectorAll('#dlq tr').length === 4")
        cards = b("eval", js="Object.fromEntries([...document.querySelectorAll('#totals .card')]"
                             ".map(c => [c.lastChild.textContent, c.firstChild.textContent]))")
        s = hq.json("/api/stats")
        assert cards["held keys"] == "27" and cards["dead letters"] == "3", cards
        assert cards["jobs queued"] == str(s["total"]["jobs"]), (cards, s["total"])
        assert cards["in flight"] == "1", cards

        # The throughput graph: a point per 5 s sample; the 36 webhooks
        # posted after the first sample show as accepted above 0.
        n = b.wait("(() => { const l = document.querySelector("
                   "'#graph polyline[data-series=accepted]'); return l && "
                   "l.points.length; })()", timeout=20)
        tp = hq.json("/api/throughput")
        assert tp["interval_ms"] == 5000 and abs(len(tp["points"]) - n) <= 1, (n, tp)
        assert max(p["accepted"] for p in tp["points"]) > 0, tp
        top_y = b("eval", js="Math.min(...[...document.querySelector("
                             "'#graph polyline[data-series=accepted]').points].map(p => p.y))")
        assert top_y < 150, top_y  # not flat on the 0 line (y = 160)

        # Keys: paging, search, the state filter.
        total = hq.json("/api/keys")["total"]
        assert b.text("#key-range") == "1–20 of %d" % total, b.text("#key-range")
        b("click", selector="#key-next")
        b.wait("document.getElementById('key-range').textContent === '21–%d of %d'" % (total, total))
        assert len(b.table("#keys")) == total - 20 + 1
        b("click", selector="#key-prev")
        b.wait("document.getElementById('key-range').textContent.startsWith('1–20 ')")
        b("type", selector="#key-search", text="s1:")
        b.rows_are("#keys", ["s1:slow"])
        assert [row[:2] for row in b.table("#keys")[1:]] == [["s1:slow", "active"]]
        assert "1–1 of 1 matching" in b.text("#key-range")
        b("type", selector="#key-search", text="")
        b("select", selector="#key-state", value="held")
        b.wait("document.getElementById('key-range').textContent === '1–20 of 27'")
        b("select", selector="#key-state", value="")

        # Customers held for their token, and the set-token action.
        b.wait("document.querySelectorAll('#token-held tr').length === 2")
        assert b.table("#token-held")[1][:4] == ["tk", "no-token", "1", "1"]
        shot(b, "dashboard.png")
        # The key's page of a key held for its token leads to the form.
        b("eval", js="location.hash = '#/key/' + encodeURIComponent('tk:fetch')")
        b("click", selector="#key-set-token")
        b.wait("location.hash === '#/' && document.getElementById('token-customer').value === 'tk'")
        b("eval", js="document.getElementById('token-customer').value = ''")
        b.wait("document.querySelectorAll('#token-held tr').length === 2")
        b("click_text", within="#token-held", row="tk", text="Set token…")
        assert b("eval", js="document.getElementById('token-customer').value") == "tk"
        b("type", selector="#token-value", text="tok-of-tk")
        b("click", selector="#token-set")
        text, cls = b.msg("Set token for tk")
        if has_tokens:
            assert cls == "ok", text
            wait_until(lambda: r.hget(P + "tok", "tk") == b"tok-of-tk", 5, what="tk's token stored")
            b.wait("!document.querySelector('#token-held td')")
        else:
            # No PUT /api/tokens on this server: the page shows its refusal.
            assert cls == "bad" and "failed" in text, text
            assert r.hget(P + "tok", "tk") is None

        # Workers and targets, from the routes that have them.
        if has_workers:
            b.wait("[...document.querySelectorAll('#workers td')].some(td => "
                   "td.textContent === '%d')" % hq.proc.pid)
        else:
            assert "no worker registry" in b.text("#workers"), b.text("#workers")
        s = hq.json("/api/stats")
        if "targets" in s:
            for t in s["targets"]:
                assert t["target"] in b.text("#targets"), (t, b.text("#targets"))
        else:
            assert "does not report targets" in b.text("#targets")

        # A held key's page: state, attempts, last error, first payloads.
        b("type", selector="#key-search", text="c1:")
        b.wait("document.querySelector('#keys a[href=\"#/key/c1%3Astop\"]')")
        b("click", selector='#keys a[href="#/key/c1%3Astop"]')
        b.wait("document.getElementById('key-info').textContent.includes('held')")
        info = b("eval", js="Object.fromEntries([...document.querySelectorAll('#key-info dt')]"
                            ".map(dt => [dt.textContent, dt.nextSibling.textContent]))")
        k = hq.json("/api/keys/c1:stop")
        assert info["state"] == "held" and info["jobs queued"] == "3", info
        assert info["attempts"] == str(k["attempts"]) and info["held for"] == "failed", info
        assert "exited with 1" in info["last error"], info
        bodies = b("eval", js="[...document.querySelectorAll('#key-jobs pre')].map(p => "
                              "JSON.parse(p.textContent))")
        assert [x["data"]["i"] for x in bodies] == [0, 1, 2], bodies
        assert b("eval", js="document.getElementById('key-hold').disabled")
        shot(b, "dashboard-key.png")
        held = stat(r, "held")
        b("click", selector="#key-release")
        assert b.msg("Release")[1] == "ok"
        # Released, its head job runs again and /bin/false holds it again.
        wait_until(lambda: stat(r, "held") == held + 1, 20, what="c1:stop released and held again")

        # An active key's page: Hold is pending until its job settles;
        # Release cancels that.
        b("eval", js="location.hash = '#/key/' + encodeURIComponent('s1:slow')")
        b.wait("document.getElementById('key-info').textContent.includes('active')")
        b("click", selector="#key-hold")
        text, cls = b.msg("Hold")
        assert cls == "ok" and "pending" in text, text
        assert r.hget(P + "m:s1:slow", "ha") == b"operator"
        b.wait("document.getElementById('key-info').textContent.includes('pending hold')")
        b("click", selector="#key-release")
        text, cls = b.msg("Release")
        assert cls == "ok" and "cancelled" in text, text
        assert r.hget(P + "m:s1:slow", "ha") is None

        # The overview's Hold and Release buttons.
        b("eval", js="location.hash = '#/'")
        b("type", selector="#key-search", text="s1:")
        b.rows_are("#keys", ["s1:slow"])
        b("click_text", within="#keys", row="s1:slow", text="Hold")
        b.msg("Hold")
        assert r.hget(P + "m:s1:slow", "ha") == b"operator"
        b("type", selector="#key-search", text="p07:")
        b.rows_are("#keys", ["p07:stop"])
        held = stat(r, "held")
        b("click_text", within="#keys", row="p07:stop", text="Release")
        b.msg("Release")
        wait_until(lambda: stat(r, "held") == held + 1, 20, what="p07:stop released and held again")

        # A dead letter's page: payload, error, attempts; Retry, then Drop.
        b("type", selector="#key-search", text="")
        b("click", selector='#dlq a[href="#/dlq/%s"]' % dl["c2"])
        b.wait("document.getElementById('dl-info').textContent.includes('c2:bad')")
        body = json.loads(b.text("#dl-body"))
        assert body["data"] == {"note": "payload of c2", "customer_id": "c2"}, body
        info = b("eval", js="Object.fromEntries([...document.querySelectorAll('#dl-info dt')]"
                            ".map(dt => [dt.textContent, dt.nextSibling.textContent]))")
        assert info["attempts"] == "1" and "exited with 1" in info["error"], info
        shot(b, "dashboard-dead-letter.png")
        dead = stat(r, "deadlettered")
        b("click", selector="#dl-retry")
        assert b.msg("Retry")[1] == "ok"
        assert stat(r, "dlq_retried") == 1
        wait_until(lambda: stat(r, "deadlettered") == dead + 1, 20, what="c2 dead again")
        b.wait("!document.getElementById('dl-drop').disabled")
        b("click", selector="#dl-drop")
        assert b.msg("Drop")[1] == "ok"
        assert not r.exists(P + "dl:" + dl["c2"]) and stat(r, "dlq_dropped") == 1

        # The overview's Retry and Drop, then Retry all and Drop all.
        b("eval", js="location.hash = '#/'")
        b.wait("document.querySelectorAll('#dlq tr').length === 3")
        b("click_text", within="#dlq", row=dl["c3"], text="Retry")
        b.msg("Retry")
        assert stat(r, "dlq_retried") == 2
        b("click_text", within="#dlq", row=dl["c4"], text="Drop")
        b.msg("Drop")
        assert not r.exists(P + "dl:" + dl["c4"]) and stat(r, "dlq_dropped") == 2
        wait_until(lambda: r.llen(P + "dlq") == 1, 20, what="c3 dead again")
        b.wait("document.querySelectorAll('#dlq tr').length === 2")
        b("click", selector="#retry-all")
        b.msg("Retry all")
        assert stat(r, "dlq_retried") == 3
        wait_until(lambda: r.llen(P + "dlq") == 1, 20, what="c3 dead once more")
        b.wait("document.querySelectorAll('#dlq tr').length === 2")
        b("click", selector="#drop-all")
        b.msg("Drop all")
        assert r.llen(P + "dlq") == 0

        problems = b("problems")
        b.quit()
        open(os.path.join(d, "go"), "w").close()
        assert [x["message"] for x in problems["dialogs"] if x["type"] == "prompt"] == \
            ["hookq admin token"], problems["dialogs"]
        # Every Drop, and Retry all, asked first.
        assert [x["message"] for x in problems["dialogs"] if x["type"] == "confirm"] == \
            ["Drop this dead letter for good?", "Drop dead letter %s for good?" % dl["c4"],
             "Retry every dead letter?", "Drop every dead letter for good?"], problems["dialogs"]
        # c2's page reads its dead letter while it is retried or dropped: 404.
        allowed = [("GET", r"/api/.*", {401}), ("GET", r"/api/workers", {404}),
                   ("GET", r"/api/dlq/" + re.escape(dl["c2"]), {404})]
        if not has_tokens:
            allowed.append(("PUT", r"/api/tokens/tk", {404, 405, 501}))
        assert unexpected(problems, allowed) == {}, unexpected(problems, allowed)


@suite.test
def a_target_that_is_down_shows_down():
    if not breaker_knob():
        print("this hookq has no circuit breaker: nothing to show")
        return
    d = tempfile.mkdtemp(prefix="hq-dashboard-")
    flaky = os.path.join(d, "flaky.sh")
    with open(flaky, "w") as f:
        f.write("#!/bin/sh\nexit 75\n")  # 75: try again, a failure of the target
    os.chmod(flaky, 0o755)
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"flaky": ["deliver = exec:" + flaky]},
                   token=TOKEN, extra=["[deliver]", "breaker = 2", "probe = 1m..1m", ""])
        for c in ("a", "b", "c"):
            assert hq.post_webhook(wh("flaky", customer=c)) == 202
        target = "exec:" + flaky
        wait_until(lambda: any(t["target"] == target and not t["up"]
                               for t in hq.json("/api/stats").get("targets", [])),
                   20, what="the target down")
        b = Browser(start, token=TOKEN)
        b("goto", url="http://127.0.0.1:%d/" % hq.admin)
        b.rows_are("#targets", [target])
        row = b.table("#targets")[1]
        assert row[1] == "down" and row[2] == "2" and row[3] and row[4], row
        assert b("eval", js="document.querySelector('#targets td span').className") == "down"
        problems = b("problems")
        b.quit()
        assert unexpected(problems, [("GET", r"/api/.*", {401}), ("GET", r"/api/workers", {404})]) == {}, problems


@suite.test
def without_the_token_the_page_says_so():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", {"ok": ["deliver = log"]}, token=TOKEN)
        b = Browser(start)
        b("goto", url="http://127.0.0.1:%d/" % hq.admin)
        b.wait("document.getElementById('status').className === 'bad'")
        assert "token" in b.text("#status"), b.text("#status")
        assert b.text("#totals") == ""
        problems = b("problems")
        b.quit()
        assert [x["type"] for x in problems["dialogs"]] == ["prompt"], problems["dialogs"]
        assert unexpected(problems, [("GET", r"/api/.*", {401})]) == {}, problems


if __name__ == "__main__":
    if not CHROMIUM or not os.access(CHROMIUM, os.X_OK):
        print("SKIP: chromium is not installed (tools/install-deps test installs it)")
        sys.exit(77)
    if not os.path.isdir(os.path.join(HERE, "..", "node_modules", "puppeteer-core")):
        print("tests/node_modules has no puppeteer-core: run tools/install-deps test")
        sys.exit(1)
    suite.run()
