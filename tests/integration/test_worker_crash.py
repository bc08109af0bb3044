"""G6 with real worker processes: a worker killed with SIGKILL mid-job loses
its lease and the job runs again, before the later jobs of its key; a worker
stopped with SIGSTOP past its lease cannot complete its job when resumed
(the fencing token rejects it) and cannot reorder the key."""
import os
import signal
import tempfile
import time

from harness import RedisServer, Suite, processes, wait_until
from workerlib import (P, Worker, check_key_order, count_lines, push, records,
                       redis_stats, wait_done)

suite = Suite("worker_crash")


@suite.test
def killed_workers_job_runs_again_before_the_rest_of_its_key():
    with RedisServer() as srv, processes() as start, tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "rec")
        push(srv.url, "k:e*5")
        push(srv.url, "@20:e*5")
        a = Worker(start, srv.url, out, "--hang-key", "k:e", "--hang-seq", 2,
                   "--lease-ms", 1000, "--sleep-ms", 5)
        wait_until(lambda: count_lines(out, "S", key="k:e") >= 2, 30, what="k:e seq 2 running")
        time.sleep(0.3)
        a.proc.signal(signal.SIGKILL)
        a.proc.wait(10)
        killed = time.time_ns()
        b = Worker(start, srv.url, out, "--lease-ms", 1000, "--sleep-ms", 5)
        wait_done(out, 105, 30)
        assert b.stop() == 0
        rec = records(out)
        runs = sorted((s for s in rec.starts if s.key == "k:e"), key=lambda s: s.t)
        assert [(s.seq, s.pid, s.attempt) for s in runs] == [
            (1, a.pid, 1), (2, a.pid, 1),                       # then SIGKILL
            (2, b.pid, 2), (3, b.pid, 1), (4, b.pid, 1), (5, b.pid, 1)], runs
        # The rerun waited for the lease to expire, not longer than needed.
        assert runs[2].t >= killed
        assert runs[2].t - runs[1].t >= 1000e6 * 0.9
        check_key_order(rec)
        assert [a_.seq for a_ in rec.done("k:e")] == [1, 2, 3, 4, 5]
        st = redis_stats(srv.client())
        assert st["done"] == 105 and st["reaped"] == 1


@suite.test
def stopped_worker_cannot_complete_after_its_lease_expired():
    with RedisServer() as srv, processes() as start, tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "rec")
        r = srv.client()
        push(srv.url, "k:e*5")
        # A holds k:e seq 1 for 1.5 s on a lease of 1 s.
        a = Worker(start, srv.url, out, "--slow-key", "k:e", "--slow-ms", 1500,
                   "--lease-ms", 1000)
        wait_until(lambda: count_lines(out, "S", key="k:e") >= 1, 30, what="k:e seq 1 running")
        a.proc.signal(signal.SIGSTOP)
        stopped = time.time_ns()
        # B takes the key over once A's lease has expired; its jobs of k:e
        # take 300 ms each, so A wakes up in the middle of them.
        b = Worker(start, srv.url, out, "--slow-key", "k:e", "--slow-ms", 300,
                   "--lease-ms", 1000)
        wait_until(lambda: count_lines(out, "S", key="k:e") >= 2, 30, what="B running seq 1")
        a.proc.signal(signal.SIGCONT)
        wait_until(lambda: count_lines(out, "A", key="k:e") >= 6, 30, what="every settlement answered")
        wait_until(lambda: r.llen(P + "q:k:e") == 0, 10, what="k:e empty")
        assert a.stop() == 0 and b.stop() == 0
        rec = records(out)
        acks = [x for x in rec.acks if x.key == "k:e"]
        a_acks = [x for x in acks if x.pid == a.pid]
        # A finished its job after waking up, and Redis refused it.
        assert [x.outcome for x in a_acks] == ["stale"], a_acks
        assert [e.seq for e in rec.ends if e.pid == a.pid] == [1]
        assert a.stats()["stale"] >= 1 and a.stats()["done"] == 0
        # B ran every job of the key once, in order; A's stale completion
        # removed nothing.
        b_runs = sorted((s for s in rec.starts if s.pid == b.pid), key=lambda s: s.t)
        assert [(s.seq, s.attempt) for s in b_runs] == [(1, 2), (2, 1), (3, 1), (4, 1), (5, 1)]
        assert b_runs[0].t - stopped >= 1000e6 * 0.5
        assert [x.seq for x in acks if x.pid == b.pid and x.outcome == "done"] == [1, 2, 3, 4, 5]
        # A woke up while B was in the middle of the key.
        a_end = [e for e in rec.ends if e.pid == a.pid][0].end
        assert b_runs[0].t < a_end < b_runs[-1].t
        st = redis_stats(r)
        assert st["done"] == 5 and st["stale"] >= 1


if __name__ == "__main__":
    suite.run()
