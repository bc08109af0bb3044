"""bench/ratelimit.py: the rate-limit benchmark of issue 4 §7, driven by
bench/ratelimit.sh. Uses the test doubles (mockapi, sink) and procworker
(the job pipeline on an hq_worker) from BUILD/tests, and a private
redis-server.

Section "pairs": TOKENS tokens x 2 endpoints, a backlog of PER_PAIR jobs on
each pair, 3 worker processes: aggregate calls/s against the theoretical
TOKENS x 2 x R/W, the most calls any pair got in any W window (as the mock
API saw them), 429s, worker CPU, and limiter decisions per call.

Section "one-token": ONE_JOBS jobs of one token over 10 keys calling one
endpoint, 3 worker processes (the issue's 1,000-job claim; the CI test
runs 60): calls/s, the most calls in any 1 s window, 429s.

Section "commands": Redis commands and round trips per limiter decision,
measured with INFO commandstats on a quiet Redis.

Section "shared" (issue 12): SHARED_TOKENS tokens on one endpoint, each with
a backlog of SHARED_JOBS fetch jobs, run by `hookq work` (its admin
listener serves /api/limit) and 2 procworkers; first fetch-only (the
baseline), then again with an application thread per token that asks
POST /api/limit (wait_ms 2000) and calls the mock API itself after each
grant, for as long as hookq has backlog. Per (token, endpoint) as the mock
API saw them: steady-state calls/s (R calls every mean gap), the most calls
in any 1 s window, 429s, and how many were the application's.

Section "grant": the cost of one /api/limit grant: Redis commands (INFO
commandstats), Redis time per EVALSHA, and the HTTP round trip (p50, p99)
of GRANTS sequential grants on distinct tokens.
"""
import json
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "build-release"))
for name in ("mockapi", "sink", "procworker"):
    os.environ.setdefault("HQ_" + name.upper(), os.path.join(build, "tests", name))
os.environ.setdefault("REDIS_SERVER", "redis-server")

from harness import RedisServer, processes, wait_until  # noqa: E402
from harness import lua_script  # noqa: E402
from proclib import Double, Queue, max_in_window, prefix, write_config  # noqa: E402

R, W = 2, 1000.0
TOKENS = int(os.environ.get("TOKENS", "200"))
PER_PAIR = int(os.environ.get("PER_PAIR", "16"))
ONE_JOBS = int(os.environ.get("ONE_JOBS", "1000"))
SHARED_TOKENS = int(os.environ.get("SHARED_TOKENS", "20"))
SHARED_JOBS = int(os.environ.get("SHARED_JOBS", "40"))
GRANTS = int(os.environ.get("GRANTS", "2000"))
SECTIONS = sys.argv[2:] or ["pairs", "one-token", "commands", "shared", "grant"]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_workers(start, cfg, n):
    return [start([os.environ["HQ_PROCWORKER"], "-c", cfg, "--quiet"]) for _ in range(n)]


def rate_of(times):
    """Calls per second after the first burst: (n - R) / (last - first)."""
    times = sorted(times)
    if len(times) <= R or times[-1] == times[0]:
        return 0.0
    return (len(times) - R) / ((times[-1] - times[0]) / 1000.0)


def pairs():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--rate", "%d/%d" % (R, W), "--quiet")
        events = {"post": {"fetch": ["GET /posts/{data.id}"], "deliver": "log:/dev/null"},
                  "user": {"fetch": ["GET /users/{data.id}"], "deliver": "log:/dev/null"}}
        cfg = write_config(rs.url, mock.url, events,
                           worker={"concurrency": 64, "threads": 2, "max_attempts": 8},
                           api={"rate": "2/1s", "margin": "25ms", "timeout": "10s"})
        q = Queue(rs.client())
        items = []
        for t in range(TOKENS):
            q.set_token("c%d" % t, "tok-%d" % t)
        for i in range(PER_PAIR):
            for t in range(TOKENS):
                items.append(("c%d" % t, "post", {"id": i}))
                items.append(("c%d" % t, "user", {"id": i}))
        for k in range(0, len(items), 5000):
            q.push_many(items[k:k + 5000])
        total = len(items)
        r = rs.client()
        r.config_resetstat()
        workers = start_workers(start, cfg, 3)
        cpu0 = sum(cpu_seconds(w.pid) for w in workers)
        t0 = time.monotonic()
        wait_until(lambda: int(r.hget(prefix() + "stats", "done") or 0) >= total,
                   PER_PAIR / 2.0 * 1.5 + 60, interval=0.25, what="%d jobs" % total)
        wall = time.monotonic() - t0
        cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu0
        calls = mock.records()
        by_pair = {}
        for c in calls:
            by_pair.setdefault((c["token"], c["endpoint"]), []).append(c["mono"])
        worst = max(max_in_window(ts, W) for ts in by_pair.values())
        all_t = sorted(c["mono"] for c in calls if c["status"] == 200)
        # Aggregate: calls after each pair's first burst, over the span.
        agg = (len(all_t) - R * len(by_pair)) / ((all_t[-1] - all_t[0]) / 1000.0)
        per_pair = sorted(rate_of(ts) for ts in by_pair.values())
        # Steady state: the time between a call and the R-th next one of
        # the same pair (one window's budget), over every pair.
        gaps = []
        for ts in by_pair.values():
            ts = sorted(ts)
            gaps += [ts[i + R] - ts[i] for i in range(len(ts) - R)]
        gaps.sort()
        mean_gap = sum(gaps) / len(gaps)
        st = q.stats()
        decisions = st.get("api_calls", 0) + st.get("api_waits", 0)
        n429 = sum(1 for c in calls if c["status"] == 429)
        theo = TOKENS * 2 * R / (W / 1000.0)
        print(json.dumps({
            "section": "pairs", "tokens": TOKENS, "pairs": len(by_pair), "jobs": total,
            "calls": len(calls), "429": n429, "wall_s": round(wall, 2),
            "calls_per_s": round(agg, 1), "theoretical_per_s": theo,
            "ratio": round(agg / theo, 3),
            "pair_rate_min": round(per_pair[0], 3), "pair_rate_median": round(per_pair[len(per_pair) // 2], 3),
            "window_gap_ms_p50": round(gaps[len(gaps) // 2], 1),
            "window_gap_ms_p99": round(gaps[99 * len(gaps) // 100], 1),
            "steady_pair_rate": round(R * 1000.0 / mean_gap, 3),
            "max_calls_any_pair_any_window": worst,
            "worker_cpu_s": round(cpu, 2), "worker_cpu_pct_of_core": round(100 * cpu / wall, 1),
            "worker_cpu_us_per_call": round(1e6 * cpu / max(len(calls), 1), 1),
            "limiter_decisions_per_call": round(decisions / max(st.get("api_calls", 1), 1), 2),
        }))
        print("pairs: %d tokens x 2 endpoints, %d jobs: %.1f calls/s of %.0f theoretical (%.1f%%) "
              "over the run; steady state %.3f calls/s per pair (%.1f%% of %d/s; R calls every "
              "%.1f ms at p50, %.1f at p99), max %d calls per pair in any %d ms, %d x 429, "
              "worker CPU %.0f%% of a core (%.0f us/call), %.2f limiter decisions per call"
              % (TOKENS, total, agg, theo, 100 * agg / theo, R * 1000.0 / mean_gap,
                 100 * R * 1000.0 / mean_gap / (R * 1000.0 / W), R, gaps[len(gaps) // 2],
                 gaps[99 * len(gaps) // 100], worst, W, n429,
                 100 * cpu / wall, 1e6 * cpu / max(len(calls), 1),
                 decisions / max(st.get("api_calls", 1), 1)))


def one_token():
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--rate", "%d/%d" % (R, W), "--quiet")
        events = {"e%d" % k: {"fetch": ["GET /posts/{data.id}"], "deliver": "log:/dev/null"}
                  for k in range(10)}
        cfg = write_config(rs.url, mock.url, events, worker={"concurrency": 16},
                           api={"rate": "2/1s", "margin": "25ms"})
        q = Queue(rs.client())
        q.set_token("hot", "tok-hot")
        q.push_many([("hot", "e%d" % (i % 10), {"id": i}) for i in range(ONE_JOBS)])
        start_workers(start, cfg, 3)
        r = rs.client()
        wait_until(lambda: int(r.hget(prefix() + "stats", "done") or 0) >= ONE_JOBS,
                   ONE_JOBS / 1.8 + 30, interval=0.5, what="%d jobs" % ONE_JOBS)
        calls = mock.records()
        ts = sorted(c["mono"] for c in calls)
        print(json.dumps({"section": "one-token", "jobs": ONE_JOBS, "calls": len(calls),
                          "429": sum(1 for c in calls if c["status"] == 429),
                          "calls_per_s": round(rate_of(ts), 3),
                          "max_calls_any_1s_window": max_in_window(ts, W)}))
        print("one token, %d jobs over 10 keys, 3 workers: %.3f calls/s (of 2), max %d calls "
              "in any 1 s, %d x 429" % (ONE_JOBS, rate_of(ts), max_in_window(ts, W),
                                       sum(1 for c in calls if c["status"] == 429)))


def commands():
    with RedisServer() as rs:
        r = rs.client()
        P = prefix()
        lim = r.register_script(lua_script("limit"))
        r.hset(P + "m:c:k", mapping={"st": "active", "tok": "1"})
        r.hset(P + "tok", "c", "tok")
        # Warm the script cache, then count: a grant, its "sent", a refusal.
        lim(keys=[P], args=["take", "c:k", "1", "c", "GET /x/{}", 2, 1000, 25, "w", 50])
        r.delete(P + "rl:" + __import__("hashlib").sha1(b"tok").hexdigest()[:16] + ":GET /x/{}")

        def total():
            return sum(v["calls"] for k, v in r.info("commandstats").items()
                       if k not in ("cmdstat_info", "cmdstat_config"))
        out = {}
        for what in ("grant", "sent", "refusal"):
            r.config_resetstat()
            if what == "grant":
                a = lim(keys=[P], args=["take", "c:k", "1", "c", "GET /x/{}", 2, 1000, 25, "a", 50])
                at = a[1]
            elif what == "sent":
                lim(keys=[P], args=["sent", "tok", "GET /x/{}", "a", at, 1000, 25])
            else:
                lim(keys=[P], args=["take", "c:k", "1", "c", "GET /x/{}", 2, 1000, 25, "b", 50])
                lim(keys=[P], args=["take", "c:k", "1", "c", "GET /x/{}", 2, 1000, 25, "c", 50])
                r.config_resetstat()
                lim(keys=[P], args=["take", "c:k", "1", "c", "GET /x/{}", 2, 1000, 25, "d", 50])
            out[what] = total()
        print(json.dumps({"section": "commands", "redis_commands": out,
                          "round_trips_per_call": 2}))
        print("redis commands per limiter step (EVALSHA included): grant %d, sent %d, refusal %d; "
              "a call costs 2 round trips (take + sent), a refusal 1"
              % (out["grant"], out["sent"], out["refusal"]))


def limit_post(port, body):
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d/api/limit" % port,
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def start_hookq_work(start, cfg):
    """`hookq work` with its admin listener (for /api/limit) on a free port."""
    from harness import free_port
    port = free_port()
    env = dict(os.environ, HOOKQ_ADMIN_LISTEN="127.0.0.1:%d" % port)
    proc = start([os.path.join(build, "hookq"), "work", "-c", cfg], env=env,
                 stderr=open(os.devnull, "w"))

    def up():
        try:
            return limit_post(port, {}) == 400
        except OSError:
            return False
    wait_until(up, 20, what="hookq work's admin listener")
    return proc, port


def shared_run(with_app):
    import threading
    with RedisServer() as rs, processes() as start:
        mock = Double(start, "mockapi", "--rate", "%d/%d" % (R, W), "--quiet")
        events = {"post": {"fetch": ["GET /posts/{data.id}"], "deliver": "log:/dev/null"}}
        cfg = write_config(rs.url, mock.url, events,
                           worker={"concurrency": 64, "threads": 2, "max_attempts": 8},
                           api={"rate": "2/1s", "margin": "25ms", "timeout": "10s"})
        q = Queue(rs.client())
        for t in range(SHARED_TOKENS):
            q.set_token("c%d" % t, "tok-%d" % t)
        q.push_many([("c%d" % t, "post", {"id": i}) for i in range(SHARED_JOBS)
                     for t in range(SHARED_TOKENS)])
        total = SHARED_JOBS * SHARED_TOKENS
        r = rs.client()
        _, port = start_hookq_work(start, cfg)
        start_workers(start, cfg, 2)
        done = threading.Event()
        ready = threading.Event()
        grants = [0] * SHARED_TOKENS
        sent_at = {}

        # The application: one asyncio loop (no thread per token, so no
        # interpreter lock between a grant and its call), a kept-alive
        # connection per token to hookq's admin and to the API, connected
        # before the first grant (a call that must connect first leaves
        # late, beyond what [api] margin covers).
        import asyncio

        async def http(rd, wr, method, path, headers=(), body=b""):
            head = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1",
                    "Content-Length: %d" % len(body)] + list(headers)
            wr.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            lines = (await rd.readuntil(b"\r\n\r\n")).decode().split("\r\n")
            status = int(lines[0].split()[1])
            n = 0
            for h in lines[1:]:
                if h.lower().startswith("content-length:"):
                    n = int(h.split(":", 1)[1])
            await rd.readexactly(n)
            return status

        async def app(t):
            adm = await asyncio.open_connection("127.0.0.1", port)
            api = await asyncio.open_connection("127.0.0.1", mock.port)
            while not ready.is_set():
                await asyncio.sleep(0.01)
            body = json.dumps({"customer": "c%d" % t, "endpoint": "GET /posts/{}",
                               "wait_ms": 2000}).encode()
            while not done.is_set():
                t_ask = time.monotonic() * 1000
                st = await http(*adm, "POST", "/api/limit",
                                ["Content-Type: application/json"], body)
                if st != 200:
                    continue
                grants[t] += 1
                sent_at["tok-%d/%d" % (t, 900000 + grants[t])] = (t_ask, time.monotonic() * 1000)
                await http(*api, "GET", "/posts/%d" % (900000 + grants[t]),
                           ["Authorization: Bearer tok-%d" % t])
            for _, wr in (adm, api):
                wr.close()

        async def apps():
            await asyncio.gather(*[app(t) for t in range(SHARED_TOKENS)])

        threads = [threading.Thread(target=lambda: asyncio.run(apps()))] if with_app else []
        for th in threads:
            th.start()
        time.sleep(0.5)
        ready.set()
        try:
            wait_until(lambda: int(r.hget(prefix() + "stats", "done") or 0) >= total,
                       SHARED_JOBS * 1.5 + 60, interval=0.25, what="%d jobs" % total)
        finally:
            done.set()
            for th in threads:
                th.join(15)
        calls = mock.records()
        by_pair = {}
        for c in calls:
            by_pair.setdefault((c["token"], c["endpoint"]), []).append(c)
        rates, worst = [], 0
        for recs in by_pair.values():
            ts = sorted(c["mono"] for c in recs)
            # Steady state while hookq had backlog: up to its last fetch.
            last_fetch = max(c["mono"] for c in recs if not c["path"].startswith("/posts/9000"))
            ts = [x for x in ts if x <= last_fetch]
            gaps = [ts[i + R] - ts[i] for i in range(len(ts) - R)]
            rates.append(R * 1000.0 / (sum(gaps) / len(gaps)))
            worst = max(worst, max_in_window(ts, W))
            if os.environ.get("SHARED_DEBUG"):
                recs = sorted(recs, key=lambda c: c["mono"])
                for i in range(len(recs) - R):
                    if recs[i + R]["mono"] - recs[i]["mono"] < W:
                        print("over:", [(round(c["mono"] - recs[i]["mono"], 1), c["path"],
                                         c["status"],
                                         [round(c["mono"] - x, 1) for x in
                                          sent_at.get(c["token"] + c["path"][6:], ())])
                                        for c in recs[i:i + R + 1]])
        rates.sort()
        app_calls = sum(1 for c in calls if c["path"].startswith("/posts/9000"))
        return {"pairs": len(by_pair), "calls": len(calls), "app_calls": app_calls,
                "429": sum(1 for c in calls if c["status"] == 429),
                "steady_rate_mean": round(sum(rates) / len(rates), 3),
                "steady_rate_min": round(rates[0], 3),
                "max_calls_any_pair_any_window": worst}


def shared():
    base = shared_run(False)
    print(json.dumps(dict(base, section="shared", run="fetch-only")))
    both = shared_run(True)
    print(json.dumps(dict(both, section="shared", run="fetches+app")))
    print("shared budget, %d tokens x 1 endpoint, %d jobs each, hookq work + 2 procworkers: "
          "fetch-only %.3f calls/s per pair (min %.3f), max %d in any 1 s, %d x 429; "
          "fetches + app via /api/limit %.3f calls/s per pair (min %.3f; %d of %d calls the "
          "app's), max %d in any 1 s, %d x 429 (goal >= 1.94 of 2, 0 windows over 2)"
          % (SHARED_TOKENS, SHARED_JOBS, base["steady_rate_mean"], base["steady_rate_min"],
             base["max_calls_any_pair_any_window"], base["429"], both["steady_rate_mean"],
             both["steady_rate_min"], both["app_calls"], both["calls"],
             both["max_calls_any_pair_any_window"], both["429"]))


def grant():
    with RedisServer() as rs, processes() as start:
        events = {"post": {"fetch": ["GET /posts/{data.id}"], "deliver": "log:/dev/null"}}
        cfg = write_config(rs.url, "http://127.0.0.1:9", events,
                           api={"rate": "2/1s", "margin": "25ms"})
        _, port = start_hookq_work(start, cfg)
        r = rs.client()
        for i in range(GRANTS):
            r.hset(prefix() + "tok", "g%d" % i, "tok-g%d" % i)
        limit_post(port, {"customer": "g0", "endpoint": "GET /warm/{}"})
        r.config_resetstat()
        assert limit_post(port, {"customer": "g0", "endpoint": "GET /posts/{}"}) == 200
        cmds = sum(v["calls"] for k, v in r.info("commandstats").items()
                   if k not in ("cmdstat_info", "cmdstat_config"))
        r.config_resetstat()
        lat = []
        for i in range(1, GRANTS):
            t0 = time.perf_counter()
            assert limit_post(port, {"customer": "g%d" % i, "endpoint": "GET /posts/{}"}) == 200
            lat.append((time.perf_counter() - t0) * 1e6)
        st = r.info("commandstats")
        ev = st.get("cmdstat_evalsha", {})
        lat.sort()
        out = {"section": "grant", "redis_commands_per_grant": cmds,
               "evalsha_usec_per_call": ev.get("usec_per_call"),
               "http_roundtrip_us_p50": round(lat[len(lat) // 2]),
               "http_roundtrip_us_p99": round(lat[99 * len(lat) // 100]),
               "grants": len(lat)}
        print(json.dumps(out))
        print("one /api/limit grant: %d Redis commands (2 EVALSHA: limit.lua grant, then sent once "
              "the 200 is written, and what they run), %.1f us in Redis per EVALSHA; HTTP round "
              "trip from Python p50 %d us, p99 %d us "
              "(%d sequential grants)" % (cmds, ev.get("usec_per_call", 0),
                                           out["http_roundtrip_us_p50"],
                                           out["http_roundtrip_us_p99"], len(lat)))


for s in SECTIONS:
    {"pairs": pairs, "one-token": one_token, "commands": commands, "shared": shared,
     "grant": grant}[s]()
