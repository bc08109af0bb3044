"""The operator's commands, end to end: `hookq stats|keys|peek|hold|release|
dlq|token` against a real redis-server. Jobs are enqueued through the C
client (the pushjobs helper); what a worker would do (claim, done, dead,
hold) is done by calling the real settle script with redis-py, so each test
decides exactly which key is active, parked, held or dead."""
import json
import os
import re
import subprocess
import tempfile

from harness import HOOKQ, RedisServer, Suite, fnv1a, free_port, helper, lua_script

suite = Suite("admin")


class Env:
    """A redis-server, the hookq CLI pointed at it, and a stand-in worker."""

    def __init__(self, shards=1):
        self.srv = RedisServer()
        self.r = self.srv.client()
        self.shards = shards
        self.cwd = tempfile.mkdtemp(prefix="hq-admin-")
        self.settle_sc = self.r.register_script(lua_script("settle"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.srv.stop()

    def env(self, url=None):
        e = dict(os.environ)
        e.update(HOOKQ_REDIS_URL=url or self.srv.url, HOOKQ_REDIS_SHARDS=str(self.shards),
                 HOOKQ_REDIS_NAMESPACE="hookq")
        return e

    def hookq(self, *args, url=None):
        p = subprocess.run([HOOKQ] + list(args), env=self.env(url), cwd=self.cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, *args):
        rc, out, err = self.hookq(*args)
        assert rc == 0, "hookq %s: exit %d: %s%s" % (" ".join(args), rc, out, err)
        return out

    def push(self, *specs):
        subprocess.run([helper("pushjobs"), "--url", self.srv.url, "--shards", str(self.shards)]
                       + list(specs), check=True, stdout=subprocess.DEVNULL, timeout=60)

    def prefix(self, customer):
        return "{hookq:%d}:" % (fnv1a(customer) % self.shards if self.shards > 1 else 0)

    def settle(self, customer, ops=(), claim=0):
        args = [30000, claim, len(ops)]
        for op in ops:
            args += list(op) + [0, "", ""][len(op) - 3:]
        res, claimed, _, _ = self.settle_sc(keys=[self.prefix(customer)], args=args)
        out = []
        for i in range(0, len(claimed), 5):
            key, _, tok, att, rec = claimed[i:i + 5]
            f = rec.split(b"\n", 4)
            out.append(dict(key=key.decode(), token=tok.decode(), attempt=att,
                            id=f[0].decode(), seq=int(f[1]), body=json.loads(f[4])))
        return list(res), out

    def claim(self, customer):
        """Lease the next ready key of the shard of `customer`."""
        _, got = self.settle(customer, claim=1)
        return got[0] if got else None

    def drain(self, customer, limit=1000):
        """Run every ready job of the shard one at a time: [(key, n)]."""
        ran = []
        for _ in range(limit):
            g = self.claim(customer)
            if g is None:
                break
            ran.append((g["key"], g["body"]["n"]))
            self.settle(customer, [("done", g["key"], g["token"])])
        return ran

    def state(self, key):
        cust = key.rsplit(":", 1)[0]
        v = self.r.hget(self.prefix(cust) + "m:" + key, "st")
        return v.decode() if v else "idle"


def rows(out):
    """The data rows of a table printed by hookq (header and footer cut)."""
    lines = [l for l in out.splitlines() if l.strip()]
    return [l.split() for l in lines[1:-1]]


def per_key(ran):
    d = {}
    for k, n in ran:
        d.setdefault(k, []).append(n)
    return d


@suite.test
def hold_and_release_keep_the_keys_order():
    with Env() as e:
        e.push("acme:e*5", "acme:f*2")
        out = e.ok("hold", "acme:e")
        assert "held acme:e" in out
        assert "held already" in e.ok("hold", "acme:e")
        held = rows(e.ok("keys", "--state", "held"))
        assert held == [["acme:e", "held", "5", "0", "reason", "operator"]], held
        # While held, no job of acme:e runs; the other key does.
        assert e.drain("acme") == [("acme:f", 1), ("acme:f", 2)]
        assert e.state("acme:e") == "held"
        assert "released acme:e" in e.ok("release", "acme:e")
        assert e.drain("acme") == [("acme:e", n) for n in range(1, 6)]


@suite.test
def hold_of_a_running_key_holds_it_when_its_job_settles():
    with Env() as e:
        e.push("acme:e*3")
        g = e.claim("acme")
        assert g["body"]["n"] == 1
        out = e.ok("hold", "acme:e")
        assert "held as soon as its current job settles" in out
        assert e.state("acme:e") == "active"
        e.settle("acme", [("done", "acme:e", g["token"])])
        assert e.state("acme:e") == "held"
        peek = e.ok("peek", "acme:e")
        assert peek.startswith("key acme:e: held, 2 jobs"), peek
        assert e.drain("acme") == []
        e.ok("release", "acme:e")
        assert e.drain("acme") == [("acme:e", 2), ("acme:e", 3)]


@suite.test
def a_customer_held_for_its_token_resumes_in_order_after_token_set():
    with Env() as e:
        e.push("acme:a*3", "acme:b*2", "other:x*2")
        g = e.claim("acme")
        assert g["key"] == "acme:a" and g["body"]["n"] == 1
        # A customer-wide hold for its token (settle still applies one when
        # asked; the worker now holds only the key that met the 401).
        e.settle("acme", [("hold", "acme:a", g["token"], 1, "token-invalid", "401 from api")])
        e.push("acme:c*2")
        held = {r[0]: r for r in rows(e.ok("keys", "--state", "held"))}
        assert set(held) == {"acme:a", "acme:b", "acme:c"}, held
        assert held["acme:a"][4:6] == ["reason", "token-invalid;"]
        st = json.loads(e.ok("stats", "--json", "--interval", "0"))
        assert st["total"]["held"] == 3 and st["total"]["held_customers"] == 1
        # Other customers go on meanwhile.
        assert per_key(e.drain("other")) == {"other:x": [1, 2]}
        out = e.ok("token", "set", "acme", "new-token")
        assert "3 held keys resumed" in out, out
        assert e.r.hget(e.prefix("acme") + "tok", "acme") == b"new-token"
        ran = e.drain("acme")
        # The job that met the bad token runs first, and every key in order.
        assert ran[0] == ("acme:a", 1), ran
        assert per_key(ran) == {"acme:a": [1, 2, 3], "acme:b": [1, 2], "acme:c": [1, 2]}
        assert rows(e.ok("keys", "--state", "held")) == []


@suite.test
def release_customer_frees_a_customer_held_by_policy():
    with Env() as e:
        e.push("acme:a*2", "acme:b*1")
        g = e.claim("acme")
        e.settle("acme", [("hold", g["key"], g["token"], 1, "failed", "boom")])
        out = e.ok("token", "set", "acme", "t")
        assert "resumed" not in out
        assert e.state("acme:b") == "held"
        out = e.ok("release", "--customer", "acme")
        assert "2 keys ready again" in out, out
        assert per_key(e.drain("acme")) == {"acme:a": [1, 2], "acme:b": [1]}
        rc, _, err = e.hookq("release", "--customer", "acme")
        assert rc == 1 and "not held" in err


def make_dead(e, customer, n, error="http 500: boom", attempts=8):
    """Dead-letter the head job of the next n claimed keys of `customer`."""
    ids = []
    for _ in range(n):
        g = e.claim(customer)
        e.settle(customer, [("dead", g["key"], g["token"], attempts, "", error)])
        ids.append((g["id"], g["key"], g["body"]["n"]))
    return ids


@suite.test
def dlq_list_show_retry_and_drop():
    with Env() as e:
        e.push("acme:a*3")
        dead = make_dead(e, "acme", 2)     # acme:a jobs 1 and 2
        (id1, _, _), (id2, _, _) = dead
        lst = rows(e.ok("dlq", "list"))
        assert [r[0] for r in lst] == [id1, id2], lst
        assert lst[0][1:4] == ["acme:a", "1", "8"] and "http 500: boom" in " ".join(lst[0])
        show = e.ok("dlq", "show", id1)
        f = dict(l.split(None, 1) for l in show.splitlines() if " " in l and not l.startswith("dead"))
        assert f["id"].strip() == id1 and f["key"].strip() == "acme:a"
        assert f["customer"].strip() == "acme" and f["seq"].strip() == "1"
        assert f["attempts"].strip() == "8" and f["error"].strip() == "http 500: boom"
        assert '"n":1' in f["body"]
        assert "dead since" in show and "received" in show
        js = json.loads(e.ok("dlq", "list", "--json"))
        assert js["total"] == 2 and [d["id"] for d in js["dead_letters"]] == [id1, id2]
        d = js["dead_letters"][0]
        assert (d["key"], d["customer"], d["seq"], d["attempts"], d["error"]) == (
            "acme:a", "acme", 1, 8, "http 500: boom")
        assert d["at_ms"] >= d["received_at_ms"] > 0 and "body" not in d
        d = json.loads(e.ok("dlq", "show", id1, "--json"))
        assert d["id"] == id1 and json.loads(d["body"])["n"] == 1 and d["webhook_id"] == ""
        # retry: to the tail of the key, after its newer job 3.
        assert e.ok("dlq", "retry", id1).strip() == "retried " + id1
        assert e.drain("acme") == [("acme:a", 3), ("acme:a", 1)]
        assert e.ok("dlq", "drop", id2).strip() == "dropped " + id2
        assert e.ok("dlq", "list").strip() == "no dead letters"
        rc, _, err = e.hookq("dlq", "show", id2)
        assert rc == 1 and "no dead letter '%s'" % id2 in err, err
        rc, _, err = e.hookq("dlq", "retry", id2)
        assert rc == 1 and "no dead letter '%s'" % id2 in err, err
        rc, _, err = e.hookq("dlq", "drop", id2)
        assert rc == 1 and "no dead letter" in err


def dead_in_every_shard(e, custs):
    """Claim every ready key of every shard once and dead-letter its head."""
    n = 0
    for rep in {e.prefix(c): c for c in custs}.values():
        _, got = e.settle(rep, claim=100)
        e.settle(rep, [("dead", g["key"], g["token"], 3, "", "x") for g in got])
        n += len(got)
    return n


@suite.test
def dlq_all_covers_every_shard():
    with Env(shards=4) as e:
        custs = ["c%d" % i for i in range(8)]
        assert len({e.prefix(c) for c in custs}) > 1
        e.push("@8:e*2")
        assert dead_in_every_shard(e, custs) == 8
        assert len(rows(e.ok("dlq", "list"))) == 8
        st = json.loads(e.ok("stats", "--json", "--interval", "0"))
        assert st["total"]["dead_letters"] == 8 and len(st["per_shard"]) == 4
        assert sum(s["dead_letters"] for s in st["per_shard"]) == 8
        assert st["total"]["jobs"] == 8
        assert e.ok("dlq", "retry", "--all").strip() == "retried 8 dead letters"
        st = json.loads(e.ok("stats", "--json", "--interval", "0"))
        assert st["total"]["dead_letters"] == 0 and st["total"]["jobs"] == 16
        ran = []
        for rep in {e.prefix(c): c for c in custs}.values():
            ran += e.drain(rep)
        # Each retried job runs after its key's newer job.
        assert per_key(ran) == {c + ":e": [2, 1] for c in custs}, per_key(ran)
        e.push("@8:e*1")
        assert dead_in_every_shard(e, custs) == 8
        assert e.ok("dlq", "drop", "--all").strip() == "dropped 8 dead letters"
        assert e.ok("dlq", "list").strip() == "no dead letters"
        assert e.ok("dlq", "retry", "--all").strip() == "retried 0 dead letters"
        st = json.loads(e.ok("stats", "--json", "--interval", "0"))
        assert st["total"]["jobs"] == 0 and st["counters"]["dlq_dropped"] == 8


@suite.test
def stats_keys_and_peek_give_the_right_numbers():
    with Env() as e:
        e.push("big:e*50", "a:e*3", "b:e*2", "c:e*1", "c:f*1")
        g = e.claim("big")                     # big:e active
        assert g["key"] == "big:e"
        e.ok("hold", "b:e")
        g2 = e.claim("big")                    # a:e active, then parked by a retry
        assert g2["key"] == "a:e"
        e.settle("a", [("retry", "a:e", g2["token"], 60000, "", "http 503")])
        st = json.loads(e.ok("stats", "--json", "--top", "3", "--interval", "0"))
        t = st["total"]
        assert t["jobs"] == 57, t
        assert (t["ready_keys"], t["ready_customers"]) == (2, 1), t
        assert (t["active"], t["parked"], t["held"], t["dead_letters"]) == (1, 1, 1, 0), t
        assert st["counters"]["accepted"] == 57 and st["counters"]["retried"] == 1
        top = st["top_keys"]
        assert [(k["key"], k["state"], k["depth"]) for k in top] == [
            ("big:e", "active", 50), ("a:e", "parked", 3), ("b:e", "held", 2)], top
        assert top[1]["attempts"] == 1 and top[1]["error"] == "http 503" and "due_ms" in top[1]
        assert top[2]["reason"] == "operator"
        # keys: every key, deepest first; a state filter; --top.
        ks = rows(e.ok("keys"))
        assert [(r[0], r[1], r[2]) for r in ks] == [
            ("big:e", "active", "50"), ("a:e", "parked", "3"), ("b:e", "held", "2"),
            ("c:e", "ready", "1"), ("c:f", "ready", "1")], ks
        out = e.ok("keys", "--state", "ready", "--top", "1")
        r = rows(out)
        assert len(r) == 1 and r[0][0] in ("c:e", "c:f") and r[0][1:] == ["ready", "1", "0"], out
        assert "1 of 2 ready keys" in out
        assert "last error: http 503" in e.ok("keys", "--state", "parked")
        js = json.loads(e.ok("keys", "--json", "--top", "2"))
        assert js["total"] == 5 and js["truncated"] is False and js["time_ms"] > 0
        assert [(k["key"], k["state"], k["depth"]) for k in js["keys"]] == [
            ("big:e", "active", 50), ("a:e", "parked", 3)]
        assert js["keys"][0]["lease_expires_ms"] > js["time_ms"]
        # peek: the state line and the first N jobs, head first.
        out = e.ok("peek", "big:e", "3")
        assert out.splitlines()[0].startswith("key big:e: active, 50 jobs")
        jobs = [l.split() for l in out.splitlines()[2:]]
        assert [(r[0], r[-1]) for r in jobs[:3]] == [
            ("1", '{"n":1,"pad":""}'), ("2", '{"n":2,"pad":""}'), ("3", '{"n":3,"pad":""}')], jobs
        assert len(out.splitlines()) == 2 + 3
        assert len(e.ok("peek", "c:e").splitlines()) == 2 + 1
        # The human stats: the same numbers, and rates over an interval.
        human = e.ok("stats", "--interval", "200ms")
        lines = {l[:20].strip(): l[20:].split() for l in human.splitlines() if l[:20].strip()}
        assert lines["jobs queued"][0] == "57" and lines["held"][0] == "1"
        assert lines["dead letters"][0] == "0" and lines["active (in flight)"][0] == "1"
        # The oldest waiting job's age, as /api/stats gives it (ready keys
        # wait here: nothing takes them).
        oldest = float(lines["oldest waiting"][0])
        assert lines["oldest waiting"][1] == "s" and 0 < oldest < 600, lines["oldest waiting"]
        assert "PER SEC" in human and "TOP KEYS" in human


@suite.test
def stats_json_without_interval_flag_has_rates():
    with Env() as e:
        e.push("a:e*2")
        st = json.loads(e.ok("stats", "--json", "--interval", "300ms"))
        assert st["rates"]["interval_ms"] >= 300 and st["rates"]["accepted"] == 0
        assert st["shards"] == 1 and st["total"]["jobs"] == 2


@suite.test
def bad_input_gives_clear_errors_and_exit_codes():
    with Env() as e:
        e.push("acme:e*1")
        cases = [
            # (args, exit, text on stderr)
            (["hold"], 2, "usage: hookq hold"),
            (["hold", "nocolon"], 2, "not CUSTOMER:CODE"),
            (["hold", "a:b", "c:d"], 2, "unexpected argument"),
            (["hold", "ghost:e"], 1, "cannot hold 'ghost:e': nothing queued"),
            (["release"], 2, "usage: hookq release"),
            (["release", "ghost:e"], 1, "cannot release 'ghost:e': nothing queued"),
            (["release", "acme:e"], 1, "not held (it is ready)"),
            (["peek"], 2, "usage: hookq peek"),
            (["peek", "acme:e", "zero"], 2, "N is a count"),
            (["peek", "ghost:e"], 1, "nothing queued for key 'ghost:e'"),
            (["keys", "--state", "sleeping"], 2, "--state is ready, active, parked or held"),
            (["keys", "--top", "-3"], 2, "--top wants a count"),
            (["keys", "--frob"], 2, "unknown option '--frob'"),
            (["dlq"], 2, "usage: hookq dlq"),
            (["dlq", "frob"], 2, "unknown subcommand 'frob'"),
            (["dlq", "show"], 2, "usage: hookq dlq"),
            (["dlq", "retry"], 2, "usage: hookq dlq"),
            (["dlq", "retry", "0-1", "--all"], 2, "usage: hookq dlq"),
            (["dlq", "show", "0-999"], 1, "no dead letter '0-999'"),
            (["dlq", "show", "nonsense"], 1, "no dead letter 'nonsense'"),
            (["token"], 2, "usage: hookq token"),
            (["token", "set", "acme"], 2, "usage: hookq token"),
            (["token", "del"], 2, "usage: hookq token"),
            (["token", "del", "acme"], 1, "customer 'acme' has no token"),
            (["stats", "--interval", "forever"], 2, "--interval wants a duration"),
        ]
        for args, code, text in cases:
            rc, out, err = e.hookq(*args)
            assert rc == code and text in err, "hookq %s: exit %d, stderr %r" % (
                " ".join(args), rc, err)
        rc, out, _ = e.hookq("dlq", "--help")
        assert rc == 0 and "usage: hookq dlq" in out


@suite.test
def each_command_help_shows_its_own_options():
    with Env() as e:
        want = {
            "stats": ["--json", "--top N", "--interval DURATION"],
            "keys": ["--state", "--top N", "--json"],
            "peek": ["KEY [N]", "--json"],
            "hold": ["--reason TEXT"],
            "release": ["--customer CUSTOMER"],
            "dlq": ["list [--json]", "show ID [--json]", "retry ID|--all", "drop ID|--all"],
            "token": ["set CUSTOMER", "del CUSTOMER"],
            "workers": ["--json"],
        }
        for cmd, options in want.items():
            for form in ([cmd, "--help"],) + (([cmd, "-h"], ["help", cmd])
                                              if cmd == "dlq" else ()):
                out = e.ok(*form)
                assert out.startswith("usage: hookq %s " % cmd), (form, out)
                for o in options:
                    assert o in out, (form, o, out)
                assert "exit status" in out, out
        # The top-level table names every command with its options.
        out = e.ok("--help")
        for cmd, options in want.items():
            assert "\n  %s " % cmd in out, (cmd, out)


@suite.test
def peek_json_is_the_key_and_its_first_jobs():
    with Env() as e:
        e.push("acme:p*3")
        js = json.loads(e.ok("peek", "acme:p", "2", "--json"))
        assert js["key"] == "acme:p" and js["state"] == "ready" and js["depth"] == 3, js
        assert js["attempts"] == 0 and [j["seq"] for j in js["jobs"]] == [1, 2], js
        for j in js["jobs"]:
            assert set(j) >= {"id", "seq", "received_at_ms", "body"}, j
        # Same answer as the table: the ids.
        text = e.ok("peek", "acme:p", "2")
        for j in js["jobs"]:
            assert j["id"] in text, (j, text)
        # The payloads as pushed, in order: what a worker would run next.
        ns = [json.loads(j["body"])["n"] for j in js["jobs"]]
        assert ns[1] == ns[0] + 1, ns
        assert [n for _, n in e.drain("acme")][:2] == ns
        # Non-ASCII keys come back as the same characters.
        e.push("\u00e9t\u00e9:x*1")
        js = json.loads(e.ok("peek", "\u00e9t\u00e9:x", "--json"))
        assert js["key"] == "\u00e9t\u00e9:x" and len(js["jobs"]) == 1, js


@suite.test
def json_mode_errors_are_one_json_object_on_stderr():
    with Env() as e:
        e.push("acme:e*1")
        cases = [
            # (args, exit, error code, text in detail)
            (["peek", "nocolon", "--json"], 2, "usage", "not CUSTOMER:CODE"),
            (["peek", "--json"], 2, "usage", "usage: hookq peek"),
            (["peek", "acme:e", "zero", "--json"], 2, "usage", "N is a count"),
            (["peek", "ghost:e", "--json"], 1, "not_found", "nothing queued for key 'ghost:e'"),
            (["keys", "--state", "sleeping", "--json"], 2, "usage", "--state is ready"),
            (["keys", "--frob", "--json"], 2, "usage", "unknown option '--frob'"),
            (["stats", "--top", "x", "--json"], 2, "usage", "--top wants a count"),
            (["dlq", "show", "0-999", "--json"], 1, "not_found", "no dead letter '0-999'"),
            (["dlq", "list", "extra", "--json"], 2, "usage", "usage: hookq dlq"),
            (["workers", "extra", "--json"], 2, "usage", "unexpected argument 'extra'"),
            (["stats", "--json", "-c"], 2, "usage", "option -c needs a FILE"),
        ]
        for args, code, err_code, text in cases:
            rc, out, err = e.hookq(*args)
            assert rc == code and out == "", (args, rc, out, err)
            lines = err.splitlines()
            assert len(lines) == 1, (args, err)
            js = json.loads(lines[0])
            assert list(js) == ["error", "detail"], js
            assert js["error"] == err_code and text in js["detail"], (args, js)
        # Redis down: "redis", exit 1, the address named.
        port = free_port()
        for args in (["stats", "--json"], ["keys", "--json"], ["peek", "a:b", "--json"],
                     ["dlq", "list", "--json"], ["workers", "--json"]):
            rc, out, err = e.hookq(*args, url="redis://127.0.0.1:%d/0" % port)
            js = json.loads(err)
            assert rc == 1 and out == "" and js["error"] == "redis", (args, rc, err)
            assert "127.0.0.1:%d" % port in js["detail"], js
        # A bad configuration: "config", exit 2, with file and line.
        ini = os.path.join(e.cwd, "bad.ini")
        with open(ini, "w") as f:
            f.write("[redis]\nshards = lots\n")
        rc, out, err = e.hookq("stats", "--json", "-c", ini)
        js = json.loads(err)
        assert rc == 2 and out == "" and js["error"] == "config", (rc, err)
        assert "bad.ini:2" in js["detail"] and "shards" in js["detail"], js
        # Without --json, the same errors stay text.
        rc, out, err = e.hookq("peek", "ghost:e")
        assert rc == 1 and err.startswith("hookq peek: nothing queued"), err


@suite.test
def dlq_retry_all_shows_progress_on_stderr():
    with Env() as e:
        n = 1200
        e.push("acme:d*%d" % n)
        pipe_ids = make_dead(e, "acme", n)
        assert len(pipe_ids) == n
        rc, out, err = e.hookq("dlq", "retry", "--all")
        assert rc == 0 and out.strip() == "retried %d dead letters" % n, (out, err)
        lines = err.splitlines()
        assert lines and lines[-1] == "hookq dlq: retried %d of %d (100%%)" % (n, n), err
        assert any(re.match(r"hookq dlq: retried (\d+) of %d \((\d+)%%\)$" % n, l)
                   and int(l.split()[3]) < n for l in lines), err
        st = json.loads(e.ok("stats", "--json"))
        assert st["total"]["dead_letters"] == 0 and st["total"]["jobs"] == n, st["total"]
        # One batch: the result line alone, no progress.
        make_dead(e, "acme", 3)
        rc, out, err = e.hookq("dlq", "drop", "--all")
        assert rc == 0 and out.strip() == "dropped 3 dead letters" and err == "", (out, err)


@suite.test
def the_config_file_says_where_the_queue_is():
    with Env() as e:
        subprocess.run([helper("pushjobs"), "--url", e.srv.url, "--ns", "other", "--shards", "2",
                        "acme:e*3"], check=True, stdout=subprocess.DEVNULL, timeout=60)
        ini = os.path.join(e.cwd, "q.ini")
        with open(ini, "w") as f:
            f.write("[redis]\nurl = %s\nnamespace = other\nshards = 2\n" % e.srv.url)
        env = dict(os.environ)
        for k in ("HOOKQ_REDIS_URL", "HOOKQ_REDIS_SHARDS", "HOOKQ_REDIS_NAMESPACE"):
            env.pop(k, None)
        p = subprocess.run([HOOKQ, "-c", ini, "keys"], env=env, cwd=e.cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0 and rows(p.stdout.decode()) == [
            ["acme:e", "ready", "3", "0"]], (p.stdout, p.stderr)
        p = subprocess.run([HOOKQ, "hold", "acme:e", "-c", ini], env=env, cwd=e.cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, p.stderr
        # The default namespace sees nothing of it.
        assert rows(e.ok("keys")) == []


@suite.test
def redis_down_is_exit_1_naming_the_address():
    with Env() as e:
        port = free_port()
        url = "redis://127.0.0.1:%d/0" % port
        for args in (["stats"], ["keys"], ["peek", "a:b"], ["hold", "a:b"],
                     ["release", "a:b"], ["dlq", "list"], ["token", "del", "a"]):
            rc, _, err = e.hookq(*args, url=url)
            assert rc == 1 and "127.0.0.1:%d" % port in err, (args, rc, err)


suite.run()
