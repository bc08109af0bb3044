"""G1 and G2 with real worker processes: 3 testworker processes of 3 loops
each, 1,000 keys of 20 jobs, handlers that sleep on a timer and record their
start and end. Per key, no two jobs overlap and they run in seq order; jobs
of different keys do overlap. On one redis-server, and with HQ_REDIS=cluster
(integration.worker_order_cluster) on a 3-master cluster, 12 shards."""

from harness import Suite
from workerlib import (Worker, check_key_order, max_overlap, push, records, wait_done,
                       worker_env)

suite = Suite("worker_order")


@suite.test
def three_processes_keep_each_keys_order_and_run_keys_in_parallel():
    with worker_env() as (srv, start, out):
        assert push(srv, "@1000:e*20", extra=["--interleave", "--batch", "2000"])["stored"] == 20000
        workers = [Worker(start, srv, out, "--sleep-ms", 2, threads=3, concurrency=48)
                   for _ in range(3)]
        wait_done(out, 20000, 300)
        for w in workers:
            assert w.stop() == 0
        rec = records(out)
        by_key = check_key_order(rec)
        # G1: every job of every key ran and completed exactly once.
        assert len(by_key) == 1000
        for key, runs in by_key.items():
            assert [e.seq for e in runs] == list(range(1, 21)), key
        assert len(rec.done()) == 20000
        assert not [a for a in rec.acks if a.outcome != "done"]
        # All three processes took part.
        assert {e.pid for e in rec.ends} == {w.pid for w in workers}
        # G2: runs of different keys overlapped in time, across processes too.
        assert max_overlap(rec.ends) >= 20, max_overlap(rec.ends)
        for w in workers:
            assert max_overlap([e for e in rec.ends if e.pid == w.pid]) >= 5
        assert srv.stats()["done"] == 20000
        assert srv.total("zcard", "leases") == 0 and srv.total("llen", "rc") == 0


if __name__ == "__main__":
    suite.run()
