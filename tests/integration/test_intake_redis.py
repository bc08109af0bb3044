"""Intake with Redis going away: 503 + Retry-After within 2 s for every
request, and storing again within 2 s of Redis coming back, without a
restart of the intake."""
import signal
import threading
import time

import harness
from intakelib import Intake, envelope, expect_error, read_response


def timed_post(it, body):
    t0 = time.monotonic()
    r = it.post(body)
    return r, time.monotonic() - t0


def first_202_within(it, seconds, t0):
    """Post until a 202; return the time it took from t0 (fails after)."""
    while True:
        r, _ = timed_post(it, envelope("c-back"))
        if r.status == 202:
            return time.monotonic() - t0
        assert r.status == 503, r
        assert time.monotonic() - t0 < seconds, "still 503 after %.1fs" % seconds
        time.sleep(0.05)


def check_503s(it, n):
    for _ in range(n):
        r, dt = timed_post(it, envelope("c-down"))
        expect_error(r, 503, "redis_unavailable")
        assert int(r.header("retry-after")) >= 1, r
        assert dt < 2.0, "503 took %.2fs" % dt


suite = harness.Suite("intake_redis")


@suite.test
def redis_stopped_mid_test_gives_503_then_recovers():
    redis = harness.RedisServer()
    try:
        with Intake(redis.url) as it:
            assert it.post(envelope("c-before")).status == 202
            redis.stop()
            check_503s(it, 10)
            # Concurrent requests too: each answered within 2 s.
            results = []

            def one():
                results.append(timed_post(it, envelope("c-par")))
            ths = [threading.Thread(target=one) for _ in range(8)]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            for r, dt in results:
                assert r.status == 503 and dt < 2.0, (r, dt)
            redis.start()
            took = first_202_within(it, 2.0, time.monotonic())
            assert took < 2.0, took
            assert it.proc.alive()
    finally:
        redis.stop()


@suite.test
def redis_down_at_start_then_up():
    redis = harness.RedisServer()
    redis.stop()
    try:
        with Intake(redis.url) as it:
            check_503s(it, 3)
            redis.start()
            assert first_202_within(it, 2.0, time.monotonic()) < 2.0
    finally:
        redis.stop()


@suite.test
def redis_hung_gives_503_within_2s_then_recovers():
    redis = harness.RedisServer()
    try:
        with Intake(redis.url, {"threads": "1"}) as it:
            assert it.post(envelope("c-hang")).status == 202
            redis.proc.signal(signal.SIGSTOP)
            try:
                check_503s(it, 4)
            finally:
                redis.proc.signal(signal.SIGCONT)
            assert first_202_within(it, 2.0, time.monotonic()) < 2.0
    finally:
        redis.stop()


@suite.test
def sigterm_answers_the_request_in_flight_then_exits():
    redis = harness.RedisServer()
    try:
        it = Intake(redis.url, {"threads": "1"})
        try:
            assert it.post(envelope("c-drain")).status == 202
            s = it.connect()
            redis.proc.signal(signal.SIGSTOP)  # the next enqueue waits
            body = envelope("c-drain", n=2).encode()
            s.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            time.sleep(0.3)
            it.proc.signal(signal.SIGTERM)
            time.sleep(0.3)
            redis.proc.signal(signal.SIGCONT)
            r = read_response(s, timeout=3)
            assert r.status == 202 and r.json()["seq"] == 2, r
            assert r.header("connection") == "close", r
            assert it.proc.wait(10) == 0
        finally:
            redis.proc.signal(signal.SIGCONT)
            it.stop()
        # It was stored, once.
        assert redis.client().llen("{hookq:0}:q:c-drain:post-create") == 2
    finally:
        redis.stop()


@suite.test
def a_client_that_leaves_while_redis_works_does_not_disturb_the_others():
    redis = harness.RedisServer()
    try:
        with Intake(redis.url, {"threads": "1"}) as it:
            assert it.post(envelope("c-warm")).status == 202
            socks = [it.connect() for _ in range(3)]
            redis.proc.signal(signal.SIGSTOP)  # their enqueue waits
            try:
                for n, s in enumerate(socks):
                    body = envelope("c-leave", n=n).encode()
                    s.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                              % (len(body), body))
                time.sleep(0.3)
                socks[1].close()  # gone while its job is in Redis's hands
                time.sleep(0.3)
            finally:
                redis.proc.signal(signal.SIGCONT)
            got = [read_response(socks[i], timeout=3) for i in (0, 2)]
            for r in got:
                assert r.status == 202, r
            assert len({r.json()["seq"] for r in got}) == 2, got
            socks[0].close()
            socks[2].close()
            # The leaver's job is stored once if it had been sent (a 2xx
            # never reached it, so its sender retries, and the webhook-id
            # dedups), not at all if it was still waiting for the call ahead
            # of it to end.
            assert redis.client().llen("{hookq:0}:q:c-leave:post-create") in (2, 3)
            assert it.post(envelope("c-after")).status == 202
    finally:
        redis.stop()


@suite.test
def requests_that_come_while_a_call_is_in_flight_go_together_in_order():
    """While an enqueue call is in flight, a loop's later requests wait and
    go as one call when it ends (bigger batches: Redis pays its cost per
    call once for all of them), in the order they came."""
    redis = harness.RedisServer()
    try:
        with Intake(redis.url, {"threads": "1"}) as it:
            assert it.post(envelope("c-warm")).status == 202
            rc = redis.client()
            me = rc.client_id()
            rc.config_resetstat()
            # Scripts wait; the calls sent meanwhile queue in Redis.
            rc.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
            socks = []
            try:
                def send(customer, n):
                    s = it.connect()
                    body = envelope(customer, n=n).encode()
                    s.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                              % (len(body), body))
                    socks.append(s)
                send("c-first", 0)

                def first_call_sent():
                    return any(int(c["qbuf"]) > 0 or "b" in c["flags"] for c in rc.client_list()
                               if int(c["id"]) != me)
                harness.wait_until(first_call_sent, 1, interval=0.005,
                                   what="the first call to reach redis")
                # Each in a loop pass of its own: without the wait, a call each.
                for n in range(10):
                    send("c-group", n)
                    time.sleep(0.015)
            finally:
                rc.execute_command("CLIENT", "UNPAUSE")
            got = [read_response(s, timeout=3) for s in socks]
            for s in socks:
                s.close()
            for r in got:
                assert r.status == 202, r
            # In the order they came: seq 1..10 for c-group.
            assert [r.json()["seq"] for r in got[1:]] == list(range(1, 11)), got
            calls = rc.info("commandstats")
            n = sum(v["calls"] for k, v in calls.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
            assert n == 2, calls
            assert [r.json()["id"] for r in got[1:]] == [
                x.split(b"\n")[0].decode() for x in
                redis.client().lrange("{hookq:0}:q:c-group:post-create", 0, -1)], got
    finally:
        redis.stop()


def main():
    suite.run()


if __name__ == "__main__":
    main()
