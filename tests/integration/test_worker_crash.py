"""G6 with real worker processes: a worker killed with SIGKILL mid-job loses
its lease and the job runs again, before the later jobs of its key; a worker
stopped with SIGSTOP past its lease cannot complete its job when resumed
(the fencing token rejects it) and cannot reorder the key. On one
redis-server, and with HQ_REDIS=cluster (integration.worker_crash_cluster)
on a 3-master cluster, 12 shards."""
import signal
import time

from harness import Suite, wait_until
from workerlib import (Worker, check_key_order, count_lines, push, records, wait_done,
                       worker_env)

suite = Suite("worker_crash")


@suite.test
def killed_workers_job_runs_again_before_the_rest_of_its_key():
    with worker_env() as (srv, start, out):
        push(srv, "k:e*5")
        push(srv, "@20:e*5")
        a = Worker(start, srv, out, "--hang-key", "k:e", "--hang-seq", 2,
                   "--lease-ms", 1000, "--sleep-ms", 5)
        wait_until(lambda: count_lines(out, "S", key="k:e") >= 2, 30, what="k:e seq 2 running")
        time.sleep(0.3)
        a.proc.signal(signal.SIGKILL)
        a.proc.wait(10)
        killed = time.time_ns()
        b = Worker(start, srv, out, "--lease-ms", 1000, "--sleep-ms", 5)
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
        assert sorted(a_.seq for a_ in rec.done("k:e")) == [1, 2, 3, 4, 5]
        st = srv.stats()
        assert st["done"] == 105 and st["reaped"] == 1


@suite.test
def stopped_worker_cannot_complete_after_its_lease_expired():
    with worker_env() as (srv, start, out):
        push(srv, "k:e*5")
        # A holds k:e seq 1 for 1.15 s on a lease of 1 s.
        a = Worker(start, srv, out, "--slow-key", "k:e", "--slow-ms", 1150,
                   "--lease-ms", 1000)
        wait_until(lambda: count_lines(out, "S", key="k:e") >= 1, 30, what="k:e seq 1 running")
        a.proc.signal(signal.SIGSTOP)
        stopped = time.time_ns()
        # B takes the key over once A's lease has expired; its jobs of k:e
        # take 600 ms each, so A wakes up in the middle of its run of seq 1.
        b = Worker(start, srv, out, "--slow-key", "k:e", "--slow-ms", 600,
                   "--lease-ms", 1000)
        wait_until(lambda: count_lines(out, "S", key="k:e") >= 2, 30, what="B running seq 1")
        a.proc.signal(signal.SIGCONT)
        wait_until(lambda: count_lines(out, "A", key="k:e") >= 6, 30, what="every settlement answered")
        wait_until(lambda: srv.client(srv.prefix("k")).llen(srv.prefix("k") + "q:k:e") == 0, 10,
                   what="k:e empty")
        assert a.stop() == 0 and b.stop() == 0
        rec = records(out)
        acks = [x for x in rec.acks if x.key == "k:e"]
        # A finished its job after waking up, and Redis refused it.
        a_first = [x for x in acks if x.pid == a.pid][0]
        assert (a_first.seq, a_first.attempt, a_first.outcome) == (1, 1, "stale"), acks
        assert a.stats()["stale"] >= 1
        # B ran seq 1 again once A's lease had expired; A woke up while B was
        # in the middle of it.
        b_first = min((s for s in rec.starts if s.pid == b.pid), key=lambda s: s.t)
        assert (b_first.seq, b_first.attempt) == (1, 2)
        assert b_first.t - stopped >= 1000e6 * 0.5
        a_end = min(e.end for e in rec.ends if e.pid == a.pid)
        b_end1 = [e for e in rec.ends if e.pid == b.pid and e.seq == 1][0].end
        assert b_first.t < a_end < b_end1, (b_first.t, a_end, b_end1)
        # A's stale completion removed nothing and reordered nothing: each
        # job of the key completed once, in order (A, alive again, may have
        # taken some of the later ones).
        check_key_order(rec)
        assert sorted(x.seq for x in acks if x.outcome == "done") == [1, 2, 3, 4, 5]
        assert [x.pid for x in acks if x.outcome == "done" and x.seq == 1] == [b.pid]
        st = srv.stats()
        assert st["done"] == 5 and st["stale"] >= 1


if __name__ == "__main__":
    suite.run()
