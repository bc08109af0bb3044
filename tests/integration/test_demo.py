"""`make run` (tools/run-demo): the newcomer's path. Start the demo, paste the
curl line it prints, see the job processed in its output, press Ctrl-C
(SIGINT to the whole process group, as a terminal does), and nothing is
left running.
"""
import os
import re
import signal
import subprocess
import tempfile
import urllib.request

from harness import HOOKQ, Suite, free_port, pid_alive, wait_until

suite = Suite("demo")

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.dirname(os.path.realpath(HOOKQ))


@suite.test
def demo_prints_a_curl_line_that_gets_processed_and_ctrl_c_stops_all():
    tmp = tempfile.mkdtemp(prefix="hq-demo-")
    data = os.path.join(tmp, "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKQ_")}
    env.update(HOOKQ_INTAKE_LISTEN="127.0.0.1:%d" % free_port(),
               HOOKQ_ADMIN_LISTEN="127.0.0.1:%d" % free_port(),
               HOOKQ_REDIS_DATA_DIR=data)
    out = os.path.join(tmp, "demo.out")
    p = subprocess.Popen([os.path.join(REPO, "tools", "run-demo"), BUILD],
                         env=env, stdout=open(out, "w"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        def curl_line():
            if p.poll() is not None:
                raise AssertionError("run-demo exited: " + open(out).read())
            text = open(out).read()
            m = re.search(r"^ +(curl .*)$", text, re.M)
            return m.group(1) if m and "hookq ready" in text else None
        curl = wait_until(curl_line, 30, what="the demo's curl line")
        r = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and '"seq":1' in r.stdout, r
        wait_until(lambda: '"key":"acme:post-create"' in open(out).read()
                   and '"fetched":[' in open(out).read(), 10,
                   what="the job processed in the demo's output")
        # The admin URL it prints serves the dashboard, and /metrics counts
        # the job.
        admin = re.search(r"admin +(http://\S+/) ", open(out).read()).group(1)
        assert admin == "http://%s/" % env["HOOKQ_ADMIN_LISTEN"], admin
        with urllib.request.urlopen(admin, timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/html")
        with urllib.request.urlopen(admin + "metrics", timeout=5) as resp:
            assert 'hookq_intake_requests_total{result="accepted"} 1' in resp.read().decode()
        with open(os.path.join(data, "redis.pid")) as f:
            rpid = int(f.read())
        os.killpg(p.pid, signal.SIGINT)
        rc = p.wait(30)
        text = open(out).read()
        assert rc == 0, (rc, text)
        assert "draining" in text and "embedded redis stopped" in text, text
        assert not pid_alive(rpid), "redis-server %d left running" % rpid
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


if __name__ == "__main__":
    suite.run()
