"""systemd's readiness protocol (DESIGN §4, sd_notify(3)): `hookq run`,
`serve` and `work` under Type=notify send READY=1 once they listen and Redis
answers, STOPPING=1 when the drain begins, and WATCHDOG=1 at half of
WatchdogSec= while they run. The test plays systemd: a unix datagram socket
as $NOTIFY_SOCKET, and $WATCHDOG_USEC / $WATCHDOG_PID as the manager sets
them."""
import os
import select
import signal
import socket
import subprocess
import tempfile
import time

from harness import HOOKQ, RedisServer, free_port, processes, wait_until
from intakelib import envelope

from harness import Suite

suite = Suite("notify")


class Manager:
    """The service manager's end: collects the daemon's datagrams."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hq-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # (monotonic time, {field: value})

    def poll(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if r:
            data = self.sock.recv(4096).decode()
            fields = dict(l.split("=", 1) for l in data.split("\n") if "=" in l)
            self.messages.append((time.monotonic(), fields))
            return fields
        return None

    def wait_for(self, field, timeout):
        """The first message with `field`, received within `timeout` s."""
        for _, m in self.messages:
            if field in m:
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.poll(max(0.0, deadline - time.monotonic()))
            if m is not None and field in m:
                return m
        raise AssertionError("no %s within %.1fs; got %r" % (field, timeout, self.messages))

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll(max(0.0, deadline - time.monotonic()))

    def times(self, field):
        return [t for t, m in self.messages if field in m]

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def config(redis_url, intake_port, admin_port, data_dir=None):
    d = tempfile.mkdtemp(prefix="hq-notify-cfg-")
    path = os.path.join(d, "hookq.ini")
    lines = ["[redis]"]
    lines.append("url = " + redis_url if redis_url else "data_dir = " + (data_dir or d + "/data"))
    lines += ["[intake]", "listen = 127.0.0.1:%d" % intake_port,
              "[admin]", "listen = 127.0.0.1:%d" % admin_port,
              "[worker]", "shutdown_timeout = 2s",
              "[event post-create]", "deliver = log:" + os.path.join(d, "out.log")]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def post(port):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("POST", "/webhook", body=envelope(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def env_for(mgr, watchdog_usec=None):
    e = {"NOTIFY_SOCKET": mgr.path}
    if watchdog_usec:
        e["WATCHDOG_USEC"] = str(watchdog_usec)
    return e


@suite.test
def serve_is_ready_once_listening_and_redis_answers_then_stops_with_stopping():
    mgr = Manager()
    try:
        with RedisServer() as srv, processes() as start:
            ip, ap = free_port(), free_port()
            p = start([HOOKQ, "serve", "-c", config(srv.url, ip, ap)], env=env_for(mgr))
            m = mgr.wait_for("READY", 10)
            assert m["READY"] == "1", m
            assert "intake http://127.0.0.1:%d/webhook" % ip in m.get("STATUS", ""), m
            # Listening at READY: the first request, sent at once, is stored.
            assert post(ip) == 202
            assert not mgr.times("WATCHDOG"), "no WatchdogSec, yet WATCHDOG=1 was sent"
            p.signal(signal.SIGTERM)
            m = mgr.wait_for("STOPPING", 5)
            assert m["STOPPING"] == "1", m
            assert p.wait(15) == 0
    finally:
        mgr.close()


@suite.test
def ready_waits_for_redis_and_says_so_in_status():
    mgr = Manager()
    try:
        with processes() as start:
            rport = free_port()
            ip, ap = free_port(), free_port()
            url = "redis://127.0.0.1:%d/0" % rport
            p = start([HOOKQ, "serve", "-c", config(url, ip, ap)], env=env_for(mgr),
                      stderr=subprocess.DEVNULL)
            m = mgr.wait_for("STATUS", 10)
            assert m["STATUS"].startswith("waiting for redis: "), m
            assert "127.0.0.1:%d" % rport in m["STATUS"], m
            mgr.drain(1.5)
            assert not mgr.times("READY"), "READY=1 while Redis does not answer"
            assert p.alive()
            # Redis comes up on that port: READY follows within ~1 s (one poll).
            srv = RedisServer.__new__(RedisServer)
            srv.dir = tempfile.mkdtemp(prefix="hq-redis-")
            srv.port, srv.appendonly, srv.extra, srv.proc = rport, False, [], None
            srv.start()
            try:
                t0 = time.monotonic()
                mgr.wait_for("READY", 5)
                assert time.monotonic() - t0 < 3.0
                # The intake's own connections follow within 2 s (DESIGN §3.3).
                wait_until(lambda: post(ip) == 202, 3, interval=0.1, what="a 202")
            finally:
                p.signal(signal.SIGTERM)
                mgr.wait_for("STOPPING", 5)
                assert p.wait(15) == 0
                srv.stop()
    finally:
        mgr.close()


@suite.test
def a_signal_while_waiting_for_redis_still_exits_cleanly():
    for cmd in ("serve", "work"):
        mgr = Manager()
        try:
            with processes() as start:
                url = "redis://127.0.0.1:%d/0" % free_port()
                p = start([HOOKQ, cmd, "-c", config(url, free_port(), free_port())],
                          env=env_for(mgr), stderr=subprocess.DEVNULL)
                mgr.wait_for("STATUS", 10)
                p.signal(signal.SIGTERM)
                mgr.wait_for("STOPPING", 5)
                assert p.wait(15) == 0, cmd
                assert not mgr.times("READY"), cmd
        finally:
            mgr.close()


@suite.test
def work_waits_for_redis_at_start_and_then_works():
    """A worker started before its Redis (a host booting, a Redis being
    restarted) waits for it, as serve does, instead of exiting: READY once
    Redis answers, then it takes the jobs posted meanwhile."""
    mgr = Manager()
    try:
        with processes() as start:
            rport = free_port()
            url = "redis://127.0.0.1:%d/0" % rport
            wcfg = config(url, free_port(), free_port())
            errlog = os.path.join(os.path.dirname(wcfg), "stderr.log")
            with open(errlog, "w") as err:
                w = start([HOOKQ, "work", "-c", wcfg], env=env_for(mgr), stderr=err)
            m = mgr.wait_for("STATUS", 10)
            assert m["STATUS"].startswith("waiting for redis: "), m
            mgr.drain(2.0)
            assert w.alive(), "hookq work exited while Redis did not answer"
            assert not mgr.times("READY")
            with open(errlog) as f:
                text = f.read()
            assert "cannot start the worker yet (trying again every second)" in text, text
            srv = RedisServer.__new__(RedisServer)
            srv.dir = tempfile.mkdtemp(prefix="hq-redis-")
            srv.port, srv.appendonly, srv.extra, srv.proc = rport, False, [], None
            srv.start()
            try:
                t0 = time.monotonic()
                mgr.wait_for("READY", 5)
                assert time.monotonic() - t0 < 3.0
                # A webhook taken by an intake now is delivered by that worker.
                ip = free_port()
                start([HOOKQ, "serve", "-c", config(url, ip, free_port())],
                      stderr=subprocess.DEVNULL)
                def posted():
                    try:
                        return post(ip) == 202
                    except OSError:  # serve not listening yet
                        return False
                wait_until(posted, 10, interval=0.1, what="a 202")
                out = os.path.join(os.path.dirname(wcfg), "out.log")
                wait_until(lambda: os.path.exists(out) and os.path.getsize(out) > 0, 10,
                           what="the worker's delivery")
                with open(errlog) as f:
                    assert "worker started" in f.read()
            finally:
                w.signal(signal.SIGTERM)
                mgr.wait_for("STOPPING", 5)
                assert w.wait(15) == 0
                srv.stop()
    finally:
        mgr.close()


@suite.test
def watchdog_pings_at_half_the_interval_while_running():
    mgr = Manager()
    try:
        with RedisServer() as srv, processes() as start:
            # WatchdogSec=0.4s: a ping at least every 200 ms, as sd_watchdog_enabled(3) advises.
            p = start([HOOKQ, "work", "-c", config(srv.url, free_port(), free_port())],
                      env=env_for(mgr, watchdog_usec=400000))
            mgr.wait_for("READY", 10)
            mgr.drain(2.0)
            t = mgr.times("WATCHDOG")
            assert len(t) >= 6, "only %d WATCHDOG=1 in 2 s" % len(t)
            gaps = [b - a for a, b in zip(t, t[1:])]
            # The bound the manager enforces is 400 ms; allow scheduling slack under load.
            assert max(gaps) < 0.4, gaps
            p.signal(signal.SIGTERM)
            mgr.wait_for("STOPPING", 5)
            assert p.wait(15) == 0
    finally:
        mgr.close()


@suite.test
def watchdog_meant_for_another_pid_is_ignored():
    mgr = Manager()
    try:
        with RedisServer() as srv, processes() as start:
            e = env_for(mgr, watchdog_usec=400000)
            e["WATCHDOG_PID"] = "1"
            p = start([HOOKQ, "work", "-c", config(srv.url, free_port(), free_port())], env=e)
            mgr.wait_for("READY", 10)
            mgr.drain(1.0)
            assert not mgr.times("WATCHDOG")
            p.signal(signal.SIGTERM)
            assert p.wait(15) == 0
    finally:
        mgr.close()


@suite.test
def run_with_embedded_redis_is_ready_after_redis_and_listens():
    mgr = Manager()
    try:
        with processes() as start:
            ip, ap = free_port(), free_port()
            d = tempfile.mkdtemp(prefix="hq-notify-emb-")
            p = start([HOOKQ, "run", "-c", config(None, ip, ap, data_dir=d + "/data")],
                      env=env_for(mgr, watchdog_usec=2000000))
            mgr.wait_for("READY", 30)
            assert post(ip) == 202
            mgr.wait_for("WATCHDOG", 2)
            p.signal(signal.SIGTERM)
            mgr.wait_for("STOPPING", 5)
            assert p.wait(30) == 0
    finally:
        mgr.close()


if __name__ == "__main__":
    suite.run()
