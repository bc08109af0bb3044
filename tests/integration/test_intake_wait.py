"""[redis] wait_replicas (G5's "optional WAIT"): the intake answers 2xx only
once Redis's WAIT says enough replicas have the job. A real master and a real
replica (redis-server --replicaof) on loopback; the replica is stopped with
SIGSTOP to make WAIT come back short."""
import signal
import time

from harness import RedisServer, Suite, wait_until
from intakelib import Intake, envelope, expect_error, read_response

suite = Suite("intake_wait")
P = "{hookq:0}:"


def replica_of(master):
    rep = RedisServer(extra=("--replicaof", "127.0.0.1", str(master.port)))
    # The replica says "link up" before the master streams writes to it,
    # and a WAIT with no write before it counts any connected replica: wait
    # until a write of ours is acknowledged, which is what the intake needs.
    c = master.client()

    def acked():
        c.incr("hq-test-sync")
        return c.execute_command("WAIT", 1, 100) == 1
    wait_until(acked, 15, what="the replica acknowledging writes")
    return rep


@suite.test
def a_202_means_the_replica_has_the_job_and_too_few_replicas_give_503():
    # No 5 s wait before the replica's first full sync.
    with RedisServer(extra=("--repl-diskless-sync-delay", "0")) as master:
        rep = replica_of(master)
        try:
            # A timeout a healthy replica on a busy machine always meets.
            with Intake(master.url, redis_opts={"wait_replicas": "1",
                                                "wait_timeout": "2s"}) as hq:
                r = hq.post(envelope(customer="acme", i=1), headers={"webhook-id": "w1"})
                assert r.status == 202, r
                # WAIT returned 1: the replica holds the job when the 202 leaves.
                assert rep.client().llen(P + "q:acme:post-create") == 1
                assert rep.client().lindex(P + "q:acme:post-create", 0) is not None

                rep.proc.signal(signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    r = hq.post(envelope(customer="acme", i=2), headers={"webhook-id": "w2"})
                    took = time.monotonic() - t0
                    body = expect_error(r, 503, "not_replicated")
                    assert r.header("Retry-After") is not None, r
                    assert "stored on the master, but 0 of 1 replicas" in body["detail"], body
                    assert "2000 ms" in body["detail"], body
                    # It waited for the timeout, and not for longer.
                    assert 1.9 <= took < 3.4, took
                    # The job is on the master, as the answer says.
                    assert master.client().llen(P + "q:acme:post-create") == 2
                finally:
                    rep.proc.signal(signal.SIGCONT)
                # The sender's retry with the same webhook-id is a duplicate
                # (200), once the replica has caught up: no second copy.
                r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
                    hq.post(envelope(customer="acme", i=2), headers={"webhook-id": "w2"})),
                    15, interval=0.2, what="the retry answered 200 duplicate")
                assert r.json()["duplicate"] is True, r
                assert master.client().llen(P + "q:acme:post-create") == 2
                r = hq.post(envelope(customer="acme", i=3))
                assert r.status == 202 and r.json()["seq"] == 3, r
                assert rep.client().llen(P + "q:acme:post-create") == 3
        finally:
            rep.stop()


@suite.test
def without_replicas_every_answer_is_503_not_replicated_and_nothing_hangs():
    with RedisServer() as master, Intake(master.url, redis_opts={
            "wait_replicas": "2", "wait_timeout": "100ms"}) as hq:
        socks = [hq.connect() for _ in range(8)]
        for i, s in enumerate(socks):
            s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (
                          len(b'{"code":"post-create","data":{"customer_id":"c%d"}}' % i),
                          b'{"code":"post-create","data":{"customer_id":"c%d"}}' % i))
        for s in socks:
            r = read_response(s, timeout=5)
            body = expect_error(r, 503, "not_replicated")
            assert "0 of 2 replicas" in body["detail"], body
            s.close()
        assert master.client().hget(P + "stats", "accepted") == b"8"


@suite.test
def a_full_key_is_still_429_while_replicas_lag():
    with RedisServer() as master, Intake(master.url, intake={"max_key_depth": "1"},
                                         redis_opts={"wait_replicas": "1",
                                                     "wait_timeout": "50ms"}) as hq:
        expect_error(hq.post(envelope(customer="k")), 503, "not_replicated")
        # Nothing was stored for this one, so there is nothing to replicate.
        r = hq.post(envelope(customer="k"))
        expect_error(r, 429, "key_full")
        assert r.header("Retry-After") is not None, r


if __name__ == "__main__":
    suite.run()
