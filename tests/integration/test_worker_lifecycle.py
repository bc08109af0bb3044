"""The worker's life with real processes: graceful drain on SIGTERM (finish
in-flight jobs, or hand their leases back after shutdown_timeout), lease
renewal of a job longer than its lease, retry with backoff, dead letters
and the hold policy, jobs whose attempts were spent by crashes, idling
without polling Redis, and surviving a Redis restart."""
import signal
import time

from harness import Suite, wait_until
from workerlib import (P, Worker, check_key_order, count_lines, key_state, push,
                       records, redis_stats, wait_done, worker_env)

suite = Suite("worker_lifecycle")


@suite.test
def sigterm_lets_running_jobs_finish_and_claims_nothing_more():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "@4:e*3")
        w = Worker(start, srv.url, out, "--sleep-ms", 1500, threads=2, concurrency=4)
        wait_until(lambda: count_lines(out, "S") >= 4, 30, what="4 jobs running")
        t0 = time.monotonic()
        w.proc.signal(signal.SIGTERM)
        assert w.proc.wait(10) == 0
        took = time.monotonic() - t0
        assert took < 3.0, took
        rec = records(out)
        assert len(rec.starts) == 4 and len(rec.done()) == 4
        assert w.stats()["released"] == 0
        # The rest waits in Redis, ready for another worker.
        assert r.zcard(P + "leases") == 0
        for k in range(4):
            assert r.llen(P + "q:c%d:e" % k) == 2
            assert key_state(r, "c%d:e" % k) == "ready"


@suite.test
def a_draining_worker_hands_its_keys_next_jobs_to_an_idle_worker_at_once():
    with worker_env() as (srv, start, out):
        push(srv.url, "k:e*3")
        a = Worker(start, srv.url, out, "--sleep-ms", 1500, threads=1, concurrency=1)
        wait_until(lambda: count_lines(out, "S") >= 1, 30, what="k:e seq 1 running")
        b = Worker(start, srv.url, out, "--sleep-ms", 1, threads=1, concurrency=1)
        time.sleep(0.3)  # b found nothing to claim: it is idle
        a.proc.signal(signal.SIGTERM)
        wait_done(out, 3, 10)
        assert a.proc.wait(10) == 0
        rec = records(out)
        end1 = [e for e in rec.ends if e.seq == 1][0]
        s2 = [s for s in rec.starts if s.seq == 2][0]
        assert end1.pid == a.pid and s2.pid == b.pid
        # Woken by a's settle, not by its own once-a-second look.
        assert (s2.t - end1.end) / 1e6 < 300, (s2.t - end1.end) / 1e6
        assert b.stop() == 0


@suite.test
def drain_hands_leases_back_after_the_shutdown_timeout():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "@4:e*3")
        w = Worker(start, srv.url, out, "--sleep-ms", 60000, "--shutdown-ms", 500,
                   threads=2, concurrency=4)
        wait_until(lambda: count_lines(out, "S") >= 4, 30, what="4 jobs running")
        t0 = time.monotonic()
        w.proc.signal(signal.SIGTERM)
        assert w.proc.wait(10) == 0
        took = time.monotonic() - t0
        assert 0.45 <= took < 2.5, took
        assert w.stats()["released"] == 4
        assert count_lines(out, "A", outcome="release") == 4
        assert r.zcard(P + "leases") == 0
        for k in range(4):
            key = "c%d:e" % k
            assert r.llen(P + "q:" + key) == 3 and key_state(r, key) == "ready"
            assert r.hget(P + "m:" + key, "a") is None  # no attempt counted
        # Another worker takes them at once, first attempt, in order.
        w2 = Worker(start, srv.url, out, threads=1, concurrency=4)
        wait_done(out, 12, 10)
        assert w2.stop() == 0
        rec = records(out)
        check_key_order(rec)
        assert all(s.attempt == 1 for s in rec.starts)


@suite.test
def sigterm_with_redis_gone_still_exits_after_the_grace_period():
    with worker_env() as (srv, start, out):
        push(srv.url, "@4:e*3")
        w = Worker(start, srv.url, out, "--sleep-ms", 60000, "--shutdown-ms", 500,
                   threads=2, concurrency=4)
        wait_until(lambda: count_lines(out, "S") >= 4, 30, what="4 jobs running")
        srv.stop()
        t0 = time.monotonic()
        w.proc.signal(signal.SIGTERM)
        # shutdown_timeout, then at most 5 s of grace waiting for Redis.
        assert w.proc.wait(15) == 0
        took = time.monotonic() - t0
        assert 0.45 <= took < 7.0, took
        # The handler heard of every job it will not settle.
        assert count_lines(out, "A", outcome="lost") == 4
        assert w.stats()["redis_errors"] >= 1


@suite.test
def a_job_longer_than_its_lease_runs_once():
    with worker_env() as (srv, start, out):
        push(srv.url, "slow:e*2")
        ws = [Worker(start, srv.url, out, "--lease-ms", 600, "--slow-key", "slow:e",
                     "--slow-ms", 2500, threads=2, concurrency=4) for _ in range(2)]
        wait_done(out, 1, 20)
        starts = [s for s in records(out).starts if s.key == "slow:e" and s.seq == 1]
        assert len(starts) == 1, starts
        for w in ws:
            assert w.stop() == 0
        st = [w.stats() for w in ws]
        assert sum(s["stale"] for s in st) == 0
        assert sum(s["renewed"] for s in st) >= 4  # 2.5 s at 600 ms / 3
        assert redis_stats(srv.client()).get("reaped", 0) == 0


@suite.test
def retries_back_off_with_jitter_and_hold_the_keys_place():
    with worker_env() as (srv, start, out):
        push(srv.url, "k:e*2")
        w = Worker(start, srv.url, out, "--fail-key", "k:e", "--fail-times", 3,
                   "--backoff-ms", "200,800", "--max-attempts", 8)
        wait_done(out, 2, 30)
        assert w.stop() == 0
        rec = records(out)
        runs = sorted((s for s in rec.starts if s.seq == 1), key=lambda s: s.t)
        ends = sorted((e for e in rec.ends if e.seq == 1), key=lambda e: e.end)
        assert [s.attempt for s in runs] == [1, 2, 3, 4]
        # Full jitter: attempt n waits random(200, min(800, 200 * 2^(n-1))) ms.
        for n, hi in ((1, 200), (2, 400), (3, 800)):
            gap_ms = (runs[n].t - ends[n - 1].end) / 1e6
            print("attempt %d: waited %.1f ms (bounds 200..%d)" % (n, gap_ms, hi))
            assert 200 - 5 <= gap_ms <= hi + 250, (n, gap_ms)
        assert [a.outcome for a in rec.answers() if a.seq == 1] == ["retry"] * 3 + ["done"]
        # seq 2 (which fails 3 times too) waited behind seq 1 all along.
        s2 = sorted((s for s in rec.starts if s.seq == 2), key=lambda s: s.t)
        assert len(s2) == 4 and s2[0].t >= ends[-1].end
        assert w.stats()["retried"] == 6 and redis_stats(srv.client())["retried"] == 6


@suite.test
def spent_attempts_go_to_the_dead_letter_list_and_the_key_goes_on():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "k:e*3")
        w = Worker(start, srv.url, out, "--fail-key", "k:e", "--fail-times", 3,
                   "--backoff-ms", "20,20", "--max-attempts", 3)
        wait_until(lambda: count_lines(out, "A", outcome="dead") >= 3, 30, what="3 dead letters")
        assert w.stop() == 0
        rec = records(out)
        assert [s.attempt for s in rec.starts if s.seq == 1] == [1, 2, 3]
        assert [a.outcome for a in rec.answers() if a.seq == 1] == ["retry", "retry", "dead"]
        # seq 2 and 3 failed 3 times too (--fail-times counts attempts), after
        # seq 1 was dead-lettered: the key went on.
        assert [(a.seq, a.outcome) for a in rec.answers()] == [
            (s, o) for s in (1, 2, 3) for o in ("retry", "retry", "dead")], rec.acks
        # Each seq started after the previous one was dead-lettered.
        last_end = {e.seq: e.end for e in sorted(rec.ends, key=lambda e: e.end)}
        first_start = {}
        for st in sorted(rec.starts, key=lambda st: st.t):
            first_start.setdefault(st.seq, st.t)
        assert first_start[2] > last_end[1] and first_start[3] > last_end[2]
        ids = [x.decode() for x in r.lrange(P + "dlq", 0, -1)]
        assert len(ids) == 3
        dl = r.hgetall(P + "dl:" + ids[0])
        assert dl[b"key"] == b"k:e" and dl[b"attempts"] == b"3"
        assert dl[b"error"] == b"injected failure"
        assert dl[b"record"].split(b"\n")[1] == b"1"
        assert key_state(r, "k:e") == "idle"
        assert w.stats()["dead"] == 3


@suite.test
def a_permanent_failure_is_dead_lettered_at_once():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "k:e*2")
        w = Worker(start, srv.url, out, "--fail-key", "k:e", "--fail-times", 1,
                   "--fail-mode", "fail", "--max-attempts", 5)
        wait_until(lambda: count_lines(out, "A") >= 2, 30, what="both settled")
        assert w.stop() == 0
        rec = records(out)
        assert [(a.seq, a.outcome) for a in rec.answers()] == [(1, "dead"), (2, "dead")], rec.acks
        assert r.llen(P + "dlq") == 2
        assert r.hget(P + "dl:" + r.lindex(P + "dlq", 0).decode(), "attempts") == b"1"


@suite.test
def the_hold_policy_parks_the_key_until_released():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "k:e*3")
        push(srv.url, "other:e*2")
        w = Worker(start, srv.url, out, "--fail-key", "k:e", "--fail-times", 2,
                   "--backoff-ms", "20,20", "--max-attempts", 2, "--on-failure", "hold")
        wait_until(lambda: count_lines(out, "A", key="k:e") >= 2, 30, what="k:e held")
        wait_done(out, 2, 10)
        time.sleep(0.5)
        rec = records(out)
        assert [a.outcome for a in rec.answers("k:e")] == ["retry", "hold"]
        assert key_state(r, "k:e") == "held"
        assert r.hget(P + "held", "k:e") == b"failed"
        assert r.hget(P + "m:k:e", "err") == b"injected failure"
        assert r.llen(P + "q:k:e") == 3
        assert not [s for s in rec.starts if s.key == "k:e" and s.seq > 1]
        assert r.llen(P + "dlq") == 0
        assert w.stop() == 0
        assert w.stats()["held"] == 1


@suite.test
def a_job_whose_attempts_were_spent_by_crashes_gets_its_policy_without_running():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "k:e*2")
        # As if three workers had died on it: reaped three times.
        r.hset(P + "m:k:e", "a", 3)
        w = Worker(start, srv.url, out, "--max-attempts", 3)
        wait_until(lambda: count_lines(out, "A") >= 2, 30, what="both settled")
        assert w.stop() == 0
        rec = records(out)
        assert [(a.seq, a.outcome) for a in rec.answers()] == [(1, "dead"), (2, "done")]
        assert [s.seq for s in rec.starts] == [2]
        dl = r.hgetall(P + "dl:" + r.lindex(P + "dlq", 0).decode())
        assert dl[b"attempts"] == b"4"


@suite.test
def a_job_record_the_worker_cannot_read_is_dead_lettered_and_the_key_goes_on():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "k:e*2")
        r.lset(P + "q:k:e", 0, b"garbage")
        w = Worker(start, srv.url, out)
        wait_done(out, 1, 10)
        assert w.stop() == 0
        rec = records(out)
        assert [(a.seq, a.outcome) for a in rec.answers()] == [(0, "dead"), (2, "done")], rec.acks
        assert [s.seq for s in rec.starts] == [2]
        ids = [x.decode() for x in r.lrange(P + "dlq", 0, -1)]
        assert len(ids) == 1
        dl = r.hgetall(P + "dl:" + ids[0])
        assert dl[b"record"] == b"garbage" and dl[b"error"] == b"malformed job record"
        assert dl[b"key"] == b"k:e"
        assert key_state(r, "k:e") == "idle"


@suite.test
def an_idle_worker_does_not_poll_and_wakes_at_once_on_a_push():
    with worker_env() as (srv, start, out):
        r = srv.client()
        w = Worker(start, srv.url, out, threads=2, concurrency=8)
        time.sleep(1.0)
        calls = lambda: sum(v["calls"] for k, v in r.info("commandstats").items()
                            if k in ("cmdstat_evalsha", "cmdstat_eval"))
        c0 = calls()
        time.sleep(3.0)
        idle_calls = calls() - c0
        # Nothing due: each loop looks again at most once a second, and the
        # process announces itself once a second (the worker registry).
        assert idle_calls <= 2 * 4 + 4 + 2, idle_calls
        t0 = time.time_ns()
        push(srv.url, "k:e*1")
        wait_done(out, 1, 5)
        latency_ms = (records(out).starts[0].t - t0) / 1e6
        assert latency_ms < 300, latency_ms
        assert w.stop() == 0


@suite.test
def on_a_redis_without_sharded_pubsub_the_idle_worker_still_wakes_at_once():
    # Redis 6 has neither SPUBLISH nor SSUBSCRIBE: with both renamed away,
    # the scripts PUBLISH and the worker hears it on its plain SUBSCRIBE.
    with worker_env(extra=["--rename-command", "SPUBLISH", "",
                           "--rename-command", "SSUBSCRIBE", ""]) as (srv, start, out):
        w = Worker(start, srv.url, out, threads=2, concurrency=8)
        time.sleep(1.2)
        waits = []
        for i in range(5):
            t0 = time.time_ns()
            push(srv.url, "k%d:e*1" % i)
            wait_done(out, i + 1, 5)
            waits.append((records(out).starts[i].t - t0) / 1e6)
            time.sleep(0.3)
        # Without a wake each would wait for the 1 s poll: 500 ms on average.
        assert sorted(waits)[2] < 300, waits
        assert w.stop() == 0


@suite.test
def the_worker_survives_a_redis_restart():
    with worker_env(appendonly=True, extra=["--appendfsync", "always"]) as (srv, start, out):
        push(srv.url, "@50:e*20", extra=["--interleave"])
        w = Worker(start, srv.url, out, "--sleep-ms", 20, "--lease-ms", 2000,
                   threads=2, concurrency=16)
        wait_until(lambda: count_lines(out, "A", outcome="done") >= 100, 30, what="100 done")
        srv.stop()
        time.sleep(1.0)
        srv.start()
        wait_until(lambda: redis_stats(srv.client()).get("done", 0) >= 1000, 60,
                   interval=0.2, what="all jobs done after the restart")
        assert w.stop() == 0
        st = w.stats()
        assert st["redis_errors"] >= 1
        r = srv.client()
        assert r.zcard(P + "leases") == 0 and r.llen(P + "rc") == 0
        # Order held through the restart (jobs cut off by it ran again).
        rec = records(out)
        check_key_order(rec)


@suite.test
def keys_of_every_shard_are_served_and_wake_their_workers():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "@60:e*10", extra=["--shards", "3"])
        w = Worker(start, srv.url, out, "--shards", 3, "--sleep-ms", 2, threads=2, concurrency=8)
        wait_done(out, 600, 60)
        check_key_order(records(out))
        assert {int(r.get("{hookq:%d}:jobs" % s) or 0) for s in range(3)} == {0}
        assert all(r.llen("{hookq:%d}:q:c%d:e" % (s, k)) == 0 for s in range(3) for k in range(60))
        # Idle now: a push to any shard wakes the worker at once.
        time.sleep(1.2)
        # Timed from the end of the push (the pusher's own start-up, slow
        # under the sanitizers, is not the worker's): without a wake the
        # idle worker would look again only after 1 s.
        push(srv.url, "@7:late*1", extra=["--shards", "3"])
        t0 = time.time_ns()
        wait_until(lambda: count_lines(out, "A", outcome="done") >= 607, 5, what="the late pushes")
        late = [s for s in records(out).starts if s.key.endswith(":late")]
        assert len(late) == 7, late
        waited_ms = (max(s.t for s in late) - t0) / 1e6
        assert waited_ms < 300, "the last late key started %.0f ms after the push" % waited_ms
        assert w.stop() == 0


@suite.test
def a_redis_that_stops_answering_is_left_after_the_timeout_and_rejoined():
    with worker_env() as (srv, start, out):
        r = srv.client()
        push(srv.url, "@20:e*10")
        w = Worker(start, srv.url, out, "--sleep-ms", 20, "--timeout-ms", 500,
                   "--lease-ms", 2000, threads=2, concurrency=8)
        wait_until(lambda: count_lines(out, "A", outcome="done") >= 20, 30, what="20 done")
        # Redis hangs (no answers, connections stay open) for 2 s.
        srv.proc.signal(signal.SIGSTOP)
        time.sleep(2.0)
        srv.proc.signal(signal.SIGCONT)
        wait_until(lambda: redis_stats(r).get("done", 0) >= 200, 60, interval=0.2,
                   what="all jobs done after the hang")
        assert w.stop() == 0
        st = w.stats()
        # The calls in flight were given up after 500 ms and sent again.
        assert st["redis_errors"] >= 1, st
        check_key_order(records(out))
        assert r.zcard(P + "leases") == 0


if __name__ == "__main__":
    suite.run()
