"""The hookq command line: exit codes, --help/--version, `check` with file:line
errors, HOOKQ_* overrides, and the daemon's life cycle (serve/run with a
Redis URL, /healthz, admin token, SIGTERM/SIGINT drain, JSON logs, secrets
kept out of the log).
"""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import harness
from harness import HOOKQ, RedisServer, Suite, free_port, json_lines, processes, wait_until

suite = Suite("cli")

# Only HOOKQ_* variables the test sets: a stray one in the caller's
# environment must not change what hookq reads.
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HOOKQ_")}


def hookq(*args, env=None, cwd=None, timeout=30):
    e = dict(BASE_ENV)
    e.update(env or {})
    return subprocess.run([HOOKQ] + list(args), env=e, cwd=cwd, timeout=timeout,
                          capture_output=True, text=True)


def write(dirpath, name, text):
    path = os.path.join(dirpath, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def http_get(url, headers=None, timeout=5):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_post(url, body, timeout=5):
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def reachable(url):
    try:
        return http_get(url, timeout=1)
    except OSError:
        return None


def wait_listening(p, url, errlog, timeout=10):
    """reachable(url) once daemon `p` listens; fails at once, with its
    stderr, when it exits instead."""
    def up():
        if not p.alive():
            raise AssertionError("the daemon exited with %s:\n%s"
                                 % (p.wait(1), open(errlog).read()))
        return reachable(url)
    return wait_until(up, timeout, what=url)


# ---------------------------------------------------------------- options

@suite.test
def version_prints_the_version_and_exits_0():
    r = hookq("--version")
    assert r.returncode == 0, r
    assert r.stdout.startswith("hookq ") and r.stdout.strip().split()[1].count(".") == 2, r.stdout


@suite.test
def help_lists_every_command_and_exits_0():
    r = hookq("--help")
    assert r.returncode == 0, r
    for cmd in ("run", "serve", "work", "stats", "keys", "peek", "hold",
                "release", "dlq", "token", "check"):
        assert "\n  %s " % cmd in r.stdout, (cmd, r.stdout)
    assert "-c FILE" in r.stdout and "HOOKQ_" in r.stdout


@suite.test
def command_help_shows_its_usage():
    r = hookq("check", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: hookq check"), r
    r = hookq("help", "dlq")
    assert r.returncode == 0 and r.stdout.startswith("usage: hookq dlq"), r


@suite.test
def usage_errors_exit_2_and_name_the_problem():
    r = hookq()
    assert r.returncode == 2 and "missing COMMAND" in r.stderr, r
    r = hookq("frobnicate")
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr, r
    r = hookq("--frob", "check")
    assert r.returncode == 2 and "unknown option '--frob'" in r.stderr, r
    r = hookq("check", "-c")
    assert r.returncode == 2 and "option -c needs a FILE" in r.stderr, r
    r = hookq("check", "extra")
    assert r.returncode == 2 and "unexpected argument 'extra'" in r.stderr, r
    d = tempfile.mkdtemp(prefix="hq-cli-")
    good = write(d, "good.ini", "[admin]\nlisten = off\n")
    r = hookq("serve", "-c", good, "extra")
    assert r.returncode == 2 and "unexpected argument 'extra'" in r.stderr, r


# ---------------------------------------------------------------- check

@suite.test
def check_accepts_a_valid_file():
    d = tempfile.mkdtemp(prefix="hq-cli-")
    path = write(d, "ok.ini", "[worker]\nlease = 10s\n\n[event post-create]\n"
                              "fetch = GET /posts/{data.post_id}\ndeliver = log\n"
                              "[event post-delete]\ndeliver = log:/tmp/x.log\n")
    r = hookq("check", "-c", path)
    assert r.returncode == 0, r
    assert r.stdout == "ok: %s: 2 events\n" % path, r.stdout
    # -c before the command works too.
    r = hookq("-c", path, "check")
    assert r.returncode == 0 and r.stdout == "ok: %s: 2 events\n" % path, r


@suite.test
def check_reports_every_error_with_file_line_and_key():
    d = tempfile.mkdtemp(prefix="hq-cli-")
    path = write(d, "bad.ini",
                 "[worker]\n"              # 1
                 "lease = 3x\n"            # 2
                 "concurency = 4\n"        # 3
                 "\n"                      # 4
                 "[event a:b]\n"           # 5
                 "deliver = log\n"         # 6
                 "[api]\n"                 # 7
                 "rate = fast\n")          # 8
    r = hookq("check", "-c", path)
    assert r.returncode == 2, r
    lines = r.stderr.splitlines()
    assert lines[0].startswith(path + ":2: [worker] lease: invalid duration '3x'"), lines
    assert lines[1] == path + ":3: [worker] concurency: unknown key (did you mean 'concurrency'?)", lines
    assert lines[2].startswith(path + ":5: [event a:b]: event code 'a:b' must not contain ':'"), lines
    assert lines[3].startswith(path + ":8: [api] rate: invalid rate 'fast'"), lines
    assert lines[4] == "hookq check: 4 errors", lines


@suite.test
def a_missing_config_file_is_a_configuration_error():
    r = hookq("check", "-c", "/nonexistent/hookq.ini")
    assert r.returncode == 2, r
    assert "/nonexistent/hookq.ini: cannot open: No such file or directory" in r.stderr, r
    r = hookq("serve", "-c", "/nonexistent/hookq.ini")
    assert r.returncode == 2 and "cannot open" in r.stderr, r


@suite.test
def sentinel_password_without_sentinels_is_a_configuration_error_naming_both_keys():
    """[redis] sentinel_password is the Sentinels' (the url's password is
    Redis's): without [redis] sentinels, check and the daemons exit 2,
    naming both keys and never the password, from the file or a variable."""
    d = tempfile.mkdtemp(prefix="hq-cli-")
    path = write(d, "hookq.ini", "[redis]\nurl = redis://127.0.0.1:1\n"
                                 "sentinel_password = Sup3r-s3cret\n[event x]\ndeliver = log\n")
    want = (path + ":3: [redis] sentinel_password: set, but [redis] sentinels is not")
    for cmd in ("check", "serve", "run"):
        r = hookq(cmd, "-c", path)
        assert r.returncode == 2 and want in r.stderr, (cmd, r)
        assert "Sup3r-s3cret" not in r.stderr + r.stdout, r
    path = write(d, "env.ini", "[event x]\ndeliver = log\n")
    r = hookq("check", "-c", path, env={"HOOKQ_REDIS_SENTINEL_PASSWORD": "Sup3r-s3cret"})
    assert r.returncode == 2, r
    assert "$HOOKQ_REDIS_SENTINEL_PASSWORD: [redis] sentinel_password: set, but " \
        "[redis] sentinels is not" in r.stderr, r
    assert "Sup3r-s3cret" not in r.stderr + r.stdout, r
    # With sentinels it is fine, and check does not print it either.
    path = write(d, "ok.ini", "[redis]\nsentinels = 127.0.0.1:26379\n"
                              "sentinel_user = hq\nsentinel_password = Sup3r-s3cret\n"
                              "[event x]\ndeliver = log\n")
    r = hookq("check", "-c", path)
    assert r.returncode == 0, r
    assert "Sup3r-s3cret" not in r.stderr + r.stdout, r


@suite.test
def default_config_is_hookq_ini_in_the_working_directory():
    d = tempfile.mkdtemp(prefix="hq-cli-")
    r = hookq("check", cwd=d)
    if os.path.exists("/etc/hookq/hookq.ini"):  # this host has hookq installed
        assert r.stdout.startswith("ok: /etc/hookq/hookq.ini: "), r
    else:
        assert r.returncode == 0 and r.stdout == "ok: no file, built-in defaults: 0 events\n", r
        assert "no [event CODE] section" in r.stderr, r
    write(d, "hookq.ini", "[event x]\ndeliver = log\n")
    r = hookq("check", cwd=d)
    assert r.returncode == 0 and r.stdout == "ok: hookq.ini: 1 event\n", r
    write(d, "hookq.ini", "[worker]\nthreads = many\n")
    r = hookq("check", cwd=d)
    assert r.returncode == 2 and "hookq.ini:2: [worker] threads:" in r.stderr, r


@suite.test
def config_lookup_is_c_then_hookq_config_then_the_working_directory():
    """DESIGN §3.1: -c FILE, else $HOOKQ_CONFIG, else ./hookq.ini, else
    /etc/hookq/hookq.ini; check names the file it used, and every command
    loads that same file (serve refuses the bad one it names)."""
    d = tempfile.mkdtemp(prefix="hq-cli-")
    local = write(d, "hookq.ini", "[event local]\ndeliver = log\n")
    envf = write(d, "env.ini", "[event e1]\ndeliver = log\n[event e2]\ndeliver = log\n")
    given = write(d, "given.ini", "[event a]\ndeliver = log\n[event b]\ndeliver = log\n"
                                  "[event c]\ndeliver = log\n")
    bad = write(d, "bad.ini", "[worker]\nlease = soon\n")
    r = hookq("check", cwd=d)
    assert r.stdout == "ok: hookq.ini: 1 event\n", r
    r = hookq("check", cwd=d, env={"HOOKQ_CONFIG": envf})
    assert r.returncode == 0 and r.stdout == "ok: %s: 2 events\n" % envf, r
    r = hookq("check", "-c", given, cwd=d, env={"HOOKQ_CONFIG": envf})
    assert r.returncode == 0 and r.stdout == "ok: %s: 3 events\n" % given, r
    # An empty $HOOKQ_CONFIG is unset.
    r = hookq("check", cwd=d, env={"HOOKQ_CONFIG": ""})
    assert r.stdout == "ok: hookq.ini: 1 event\n", r
    # A file named in $HOOKQ_CONFIG that is missing is an error, not skipped.
    r = hookq("check", cwd=d, env={"HOOKQ_CONFIG": os.path.join(d, "nope.ini")})
    assert r.returncode == 2, r
    assert "%s (from $HOOKQ_CONFIG): cannot open: No such file or directory" % os.path.join(d, "nope.ini") in r.stderr, r
    # Every command loads the file found the same way, not only check.
    r = hookq("serve", cwd=d, env={"HOOKQ_CONFIG": bad})
    assert r.returncode == 2 and bad + ":2: [worker] lease: invalid duration 'soon'" in r.stderr, r
    r = hookq("stats", cwd=d, env={"HOOKQ_CONFIG": bad})
    assert r.returncode == 2 and bad + ":2: [worker] lease:" in r.stderr, r


@suite.test
def check_warns_about_an_open_admin_listener_without_token():
    d = tempfile.mkdtemp(prefix="hq-cli-")
    path = write(d, "open.ini", "[admin]\nlisten = 0.0.0.0:8081\n[event x]\ndeliver = log\n")
    r = hookq("check", "-c", path)
    assert r.returncode == 0 and r.stdout == "ok: %s: 1 event\n" % path, r
    assert "warning: [admin] listen 0.0.0.0:8081 is not a loopback address" in r.stderr, r
    r = hookq("check", "-c", path, env={"HOOKQ_ADMIN_TOKEN": "x"})
    assert r.returncode == 0 and r.stderr == "", r


@suite.test
def env_overrides_are_checked_and_name_the_variable():
    d = tempfile.mkdtemp(prefix="hq-cli-")
    path = write(d, "ok.ini", "[event x]\ndeliver = log\n")
    r = hookq("check", "-c", path, env={"HOOKQ_WORKER_LEASE": "soon"})
    assert r.returncode == 2, r
    assert r.stderr.startswith("$HOOKQ_WORKER_LEASE: [worker] lease: invalid duration 'soon'"), r.stderr
    # An override makes a valid file invalid: the admin port equals intake's.
    r = hookq("check", "-c", path, env={"HOOKQ_ADMIN_LISTEN": "127.0.0.1:8080"})
    assert r.returncode == 2 and "[admin] listen: must differ from [intake] listen" in r.stderr, r
    r = hookq("check", "-c", path, env={"HOOKQ_EVENT_X_DELIVER": "log"})
    assert r.returncode == 2 and "cannot be set from the environment" in r.stderr, r
    r = hookq("check", "-c", path, env={"HOOKQ_WORKER_LEASE": "45s"})
    assert r.returncode == 0, r


# ---------------------------------------------------------------- daemon

def daemon_config(d, redis_url, intake_port, admin_port, extra=""):
    return write(d, "hookq.ini",
                 "[redis]\nurl = %s\n\n[intake]\nlisten = 127.0.0.1:%d\n\n"
                 "[admin]\nlisten = 127.0.0.1:%d\n\n"
                 "[event post-create]\ndeliver = log\n%s"
                 % (redis_url, intake_port, admin_port, extra))


@suite.test
def env_override_is_visible_in_the_running_daemon():
    """The file says one port; HOOKQ_ADMIN_LISTEN and HOOKQ_INTAKE_LISTEN win."""
    with RedisServer() as redis, processes() as start:
        d = tempfile.mkdtemp(prefix="hq-cli-")
        file_ports = (free_port(), free_port())
        env_intake, env_admin = free_port(), free_port()
        cfg = daemon_config(d, "redis://127.0.0.1:1/0", *file_ports)
        env = dict(BASE_ENV, HOOKQ_REDIS_URL=redis.url,
                   HOOKQ_INTAKE_LISTEN="127.0.0.1:%d" % env_intake,
                   HOOKQ_ADMIN_LISTEN="127.0.0.1:%d" % env_admin)
        errlog = os.path.join(d, "err.log")
        p = start([HOOKQ, "serve", "-c", cfg], env=env, cwd=d, stderr=open(errlog, "w"))
        health = "http://127.0.0.1:%d/healthz" % env_admin
        assert wait_listening(p, health, errlog) == (200, '{"status":"ok"}\n')
        status, body = http_post("http://127.0.0.1:%d/webhook" % env_intake,
                                 '{"code":"post-create","data":{"customer_id":"c1"}}')
        assert status == 202 and json.loads(body)["seq"] == 1, (status, body)
        assert reachable("http://127.0.0.1:%d/healthz" % file_ports[1]) is None
        p.signal(signal.SIGTERM)
        assert p.wait(10) == 0


@suite.test
def serve_and_work_split_intake_and_worker():
    """serve stores, work (another process) delivers; both exit 0 on SIGTERM."""
    with RedisServer() as redis, processes() as start:
        d = tempfile.mkdtemp(prefix="hq-cli-")
        ip, ap, wp = free_port(), free_port(), free_port()
        cfg = daemon_config(d, redis.url, ip, ap)
        serve_log = os.path.join(d, "serve.log")
        serve = start([HOOKQ, "serve", "-c", cfg], cwd=d, env=BASE_ENV,
                      stderr=open(serve_log, "w"))
        wait_listening(serve, "http://127.0.0.1:%d/healthz" % ap, serve_log)
        ids = []
        for i in range(5):
            status, body = http_post("http://127.0.0.1:%d/webhook" % ip,
                                     '{"code":"post-create","data":{"customer_id":"c%d"}}' % (i % 2))
            assert status == 202, (status, body)
            ids.append(json.loads(body)["id"])
        out = os.path.join(d, "work.out")
        env = dict(BASE_ENV, HOOKQ_ADMIN_LISTEN="127.0.0.1:%d" % wp)
        work = start([HOOKQ, "work", "-c", cfg], cwd=d, env=env,
                     stdout=open(out, "w"), stderr=open(os.path.join(d, "work.log"), "w"))

        def delivered():
            return json_lines(out)
        wait_until(lambda: len(delivered()) == 5, 10, what="5 deliveries by work")
        assert sorted(j["id"] for j in delivered()) == sorted(ids)
        # work opens the admin listener too.
        assert reachable("http://127.0.0.1:%d/healthz" % wp)[0] == 200
        work.signal(signal.SIGTERM)
        serve.signal(signal.SIGTERM)
        assert work.wait(15) == 0 and serve.wait(15) == 0


@suite.test
def healthz_follows_redis_down_and_back_without_restart():
    with RedisServer() as redis, processes() as start:
        d = tempfile.mkdtemp(prefix="hq-cli-")
        ip, ap = free_port(), free_port()
        cfg = daemon_config(d, redis.url, ip, ap)
        errlog = os.path.join(d, "err.log")
        p = start([HOOKQ, "serve", "-c", cfg], cwd=d,
                  env={k: v for k, v in BASE_ENV.items()}, stderr=open(errlog, "w"))
        health = "http://127.0.0.1:%d/healthz" % ap
        assert wait_listening(p, health, errlog)[0] == 200
        redis.stop()
        t0 = time.monotonic()
        status, body = http_get(health)
        assert status == 503, (status, body)
        assert json.loads(body)["status"] == "unavailable"
        assert time.monotonic() - t0 < 3, "a 503 must not wait long"
        redis.start()
        wait_until(lambda: reachable(health)[0] == 200, 5, what="healthz 200 again")
        p.signal(signal.SIGINT)
        assert p.wait(10) == 0


@suite.test
def admin_token_requires_bearer_auth():
    with RedisServer() as redis, processes() as start:
        d = tempfile.mkdtemp(prefix="hq-cli-")
        ap = free_port()
        cfg = daemon_config(d, redis.url, free_port(), ap)
        env = dict(BASE_ENV, HOOKQ_ADMIN_TOKEN="t0ps3cret")
        errlog = os.path.join(d, "err.log")
        p = start([HOOKQ, "serve", "-c", cfg], cwd=d, env=env, stderr=open(errlog, "w"))
        health = "http://127.0.0.1:%d/healthz" % ap
        assert wait_listening(p, health, errlog)[0] == 401
        assert http_get(health, {"Authorization": "Bearer wrong"})[0] == 401
        assert http_get(health, {"Authorization": "Bearer t0ps3cret"})[0] == 200
        assert http_get("http://127.0.0.1:%d/nope" % ap,
                        {"Authorization": "Bearer t0ps3cret"})[0] == 404
        p.signal(signal.SIGTERM)
        assert p.wait(10) == 0


@suite.test
def json_logs_are_one_object_per_line_and_hide_secrets():
    with RedisServer() as redis, processes() as start:
        redis.client().config_set("requirepass", "redispw")
        d = tempfile.mkdtemp(prefix="hq-cli-")
        ap = free_port()
        url = "redis://:redispw@127.0.0.1:%d/0" % redis.port
        cfg = daemon_config(d, url, free_port(), ap)
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        env = dict(BASE_ENV, HOOKQ_LOG_FORMAT="json", HOOKQ_LOG_LEVEL="debug",
                   HOOKQ_INTAKE_SECRET=secret, HOOKQ_ADMIN_TOKEN="adm1ntok")
        errlog = os.path.join(d, "err.log")
        p = start([HOOKQ, "serve", "-c", cfg], cwd=d, env=env, stderr=open(errlog, "w"))
        health = "http://127.0.0.1:%d/healthz" % ap
        wait_listening(p, health, errlog)
        assert http_get(health, {"Authorization": "Bearer adm1ntok"})[0] == 200
        p.signal(signal.SIGTERM)
        assert p.wait(10) == 0
        text = open(errlog).read()
        lines = text.splitlines()
        assert len(lines) >= 3, text
        for line in lines:
            obj = json.loads(line)
            assert set(("ts", "level", "msg")) <= set(obj), obj
        msgs = [json.loads(l)["msg"] for l in lines]
        assert "hookq ready" in msgs and "stopped" in msgs, msgs
        for s in ("redispw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "adm1ntok"):
            assert s not in text, (s, text)


@suite.test
def json_log_lines_of_jobs_carry_fields_and_stay_valid_utf8():
    """A job's log line has its key, job, customer, code, attempt, outcome,
    ms and error as fields, numbers as numbers; a customer holding bytes
    that are not UTF-8 (from a header) still gives valid UTF-8 JSON."""
    import http.client
    with RedisServer() as redis, processes() as start:
        d = tempfile.mkdtemp(prefix="hq-cli-")
        ip, ap, dead = free_port(), free_port(), free_port()
        cfg = write(d, "hookq.ini",
                    "[redis]\nurl = %s\n\n[intake]\nlisten = 127.0.0.1:%d\n"
                    "customer = header:X-Customer\n\n[admin]\nlisten = 127.0.0.1:%d\n\n"
                    "[worker]\nbackoff = 1h..1h\nshutdown_timeout = 1s\n\n"
                    "[event post-create]\ndeliver = http://127.0.0.1:%d/hook\n"
                    % (redis.url, ip, ap, dead))
        env = dict(BASE_ENV, HOOKQ_LOG_FORMAT="json")
        errlog = os.path.join(d, "err.log")
        p = start([HOOKQ, "run", "-c", cfg], cwd=d, env=env, stderr=open(errlog, "w"))
        wait_listening(p, "http://127.0.0.1:%d/healthz" % ap, errlog)
        ids = {}
        for cust in (b"c1", b"caf\xe9\xff"):
            conn = http.client.HTTPConnection("127.0.0.1", ip, timeout=5)
            conn.putrequest("POST", "/webhook")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("X-Customer", cust)
            body = b'{"code":"post-create","data":{}}'
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            answer = r.read()
            assert r.status == 202, (r.status, answer)
            # The answer is valid JSON too, the bad bytes as U+FFFD.
            assert json.loads(answer.decode("utf-8"))["key"] == \
                cust.decode("utf-8", "replace") + ":post-create", answer
            ids[cust] = json.loads(answer)["id"]
            conn.close()

        def retries():
            raw = open(errlog, "rb").read()
            lines = [json.loads(l) for l in raw.decode("utf-8").splitlines()]
            return [l for l in lines if l["msg"] == "job will retry"]
        got = wait_until(lambda: len(retries()) >= 2 and retries(), 10,
                         what="two retry lines")
        by_job = {l["job"]: l for l in got}
        for cust, want in (("c1", ids[b"c1"]), ("caf\ufffd\ufffd", ids[b"caf\xe9\xff"])):
            l = by_job[want]
            assert l["customer"] == cust and l["key"] == cust + ":post-create", l
            assert l["code"] == "post-create" and l["outcome"] == "retry", l
            assert l["attempt"] == 1 and isinstance(l["ms"], int) and l["ms"] >= 0, l
            assert "127.0.0.1:%d" % dead in l["error"] and l["level"] == "info", l
        p.signal(signal.SIGTERM)
        assert p.wait(15) == 0
        lines = [json.loads(l) for l in open(errlog, "rb").read().decode("utf-8").splitlines()]
        ready = [l for l in lines if l["msg"] == "hookq ready"]
        assert ready and ready[0]["pid"] == p.pid, ready


@suite.test
def serve_without_url_needs_a_running_embedded_redis():
    d = tempfile.mkdtemp(prefix="hq-cli-")
    write(d, "hookq.ini", "[intake]\nlisten = 127.0.0.1:%d\n[admin]\nlisten = off\n"
          % free_port())
    r = hookq("serve", cwd=d, timeout=15)
    assert r.returncode == 1, r
    assert "no embedded redis answers on '%s/hookq-data/redis.sock'" % os.path.realpath(d) in r.stderr \
        or "no embedded redis answers on '%s/hookq-data/redis.sock'" % d in r.stderr, r.stderr


@suite.test
def a_port_in_use_is_a_runtime_failure():
    import socket
    with RedisServer() as redis:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        d = tempfile.mkdtemp(prefix="hq-cli-")
        cfg = daemon_config(d, redis.url, free_port(), busy)
        r = hookq("serve", "-c", cfg, cwd=d, timeout=15)
        s.close()
        assert r.returncode == 1, r
        assert "cannot listen on 127.0.0.1:%d (admin)" % busy in r.stderr, r.stderr


@suite.test
def invalid_config_stops_the_daemon_with_status_2():
    d = tempfile.mkdtemp(prefix="hq-cli-")
    write(d, "hookq.ini", "[worker]\nlease = forever\n")
    r = hookq("run", cwd=d, timeout=15)
    assert r.returncode == 2, r
    assert "hookq.ini:2: [worker] lease:" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, "hookq-data")), "nothing may start"


if __name__ == "__main__":
    suite.run()
