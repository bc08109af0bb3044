"""/metrics beyond the queue's counters (DESIGN §3.5 ★): the age of the
oldest waiting job, build info, the standard process_* families, and
Prometheus's own linter, `promtool check metrics` (Debian's prometheus),
on a live scrape; and `promtool check rules` on the sample alert rules of
docs/operations.md. A real hookq, a real redis-server, HTTP over loopback."""
import os
import re
import subprocess
import tempfile
import time

from harness import HOOKQ, RedisServer, Suite, processes, wait_until
from test_admin_http import Hookq, events, val, wh

suite = Suite("metrics")

HERE = os.path.dirname(os.path.abspath(__file__))
OPERATIONS = os.path.join(HERE, "..", "..", "docs", "operations.md")


def promtool(*args, stdin=None):
    return subprocess.run(["promtool"] + list(args), input=stdin, capture_output=True,
                          text=True, timeout=60)


@suite.test
def the_oldest_waiting_job_ages_while_no_worker_takes_it():
    with RedisServer() as rs, processes() as start:
        # `serve`: an intake without workers, so the job waits.
        hq = Hookq(start, rs, "http://127.0.0.1:9", events(), cmd="serve")
        m = hq.metrics()
        assert val(m, "hookq_oldest_job_age_seconds", shard="0") == 0
        t0 = time.monotonic()
        assert hq.post_webhook(wh("ok")) == 202
        t1 = time.monotonic()
        assert hq.post_webhook(wh("ok", customer="other")) == 202
        time.sleep(1.5)
        ages = []
        for _ in range(2):
            a0 = time.monotonic()
            age = val(hq.metrics(), "hookq_oldest_job_age_seconds", shard="0")
            a1 = time.monotonic()
            # Redis's clock, ours: the age is the time since the first job
            # was stored, give or take the round trips (and ms rounding).
            assert a0 - t1 - 0.01 <= age <= a1 - t0 + 0.01, (age, a0 - t1, a1 - t0)
            ages.append(age)
            time.sleep(1)
        assert ages[1] > ages[0], ages
        assert hq.json("/api/stats")["total"]["oldest_age_ms"] >= ages[1] * 1000


@suite.test
def build_info_and_process_metrics_describe_this_process():
    with RedisServer() as rs, processes() as start:
        before = time.time()
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        after = time.time()
        m = hq.metrics()
        version = subprocess.run([HOOKQ, "--version"], capture_output=True, text=True).stdout.split()[-1]
        assert val(m, "hookq_build_info", version=version) == 1, version
        pid = hq.proc.pid
        started = val(m, "process_start_time_seconds")
        assert before - 1 <= started <= after + 1, (before, started, after)
        fds = len(os.listdir("/proc/%d/fd" % pid))
        assert abs(val(m, "process_open_fds") - fds) <= 2, (val(m, "process_open_fds"), fds)
        with open("/proc/%d/status" % pid) as f:
            rss_kb = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
        rss = val(m, "process_resident_memory_bytes")
        assert 1 << 20 < rss and abs(rss - rss_kb * 1024) < 0.5 * rss, (rss, rss_kb)
        assert val(m, "process_virtual_memory_bytes") >= rss
        assert val(m, "process_max_fds") >= fds
        cpu = val(m, "process_cpu_seconds_total")
        assert 0 < cpu <= (time.time() - before) * os.cpu_count(), cpu


@suite.test
def promtool_finds_nothing_to_say_about_a_live_scrape():
    with RedisServer() as rs, processes() as start:
        hq = Hookq(start, rs, "http://127.0.0.1:9", events())
        # Something in every family: accepted, refused, delivered, failed.
        for i in range(3):
            assert hq.post_webhook(wh("ok", i=i)) == 202
        assert hq.post_webhook(wh("bad")) == 202
        assert hq.post_webhook(wh("nope")) == 422
        wait_until(lambda: hq.json("/api/dlq")["total"] == 1, 20, what="a dead letter")
        status, _, text = hq.get("/metrics")
        assert status == 200
        out = promtool("check", "metrics", stdin=text)
        assert out.returncode == 0 and out.stdout == "" and out.stderr == "", \
            (out.returncode, out.stdout, out.stderr)
        # The linter does look: a counter without _total is named.
        bad = promtool("check", "metrics", stdin="# HELP x_requests n\n# TYPE x_requests counter\n"
                                                  "x_requests 1\n")
        assert bad.returncode != 0 and "_total" in bad.stdout + bad.stderr, bad


@suite.test
def the_sample_alert_rules_pass_promtool():
    with open(OPERATIONS) as f:
        text = f.read()
    m = re.search(r"<!-- alert-rules[^>]*-->\n```yaml\n(.*?)```", text, re.S)
    assert m, "no alert-rules block in docs/operations.md"
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(m.group(1))
    try:
        out = promtool("check", "rules", f.name)
        assert out.returncode == 0 and "SUCCESS: 10 rules found" in out.stdout, (out.stdout, out.stderr)
    finally:
        os.unlink(f.name)


if __name__ == "__main__":
    suite.run()
