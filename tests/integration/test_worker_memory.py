"""G4 with a real worker: its memory does not grow with the backlog. The
same worker process is measured (VmRSS) with 1,000 jobs waiting on one key,
then with 1,000,000; both times after it has worked through the same amount
of other keys' jobs, so that its allocator is warm.

HQ_MEMORY_JOBS sets the big backlog: `make test` (integration.worker_memory)
uses 200,000, which a worker that kept any per-job state for waiting jobs
would already show many times over the 2 MiB bound; `make test-long`
(integration.worker_memory_long) the full 1,000,000."""
import os
import time

from harness import Suite
from workerlib import P, Worker, count_lines, push, wait_until, worker_env

suite = Suite("worker_memory")


def work_through_small_keys(url, out, total):
    push(url, "@500:e*4", extra=["--batch", "2000"])
    wait_until(lambda: count_lines(out, "A", outcome="done") >= total, 120,
               interval=0.1, what="%d small jobs" % total)
    time.sleep(0.5)


@suite.test
def worker_rss_does_not_grow_with_a_million_jobs_waiting():
    with worker_env() as (srv, start, out):
        r = srv.client()
        # The big key's head job never settles: the other 999 wait behind it.
        push(srv.url, "big:e*1000", extra=["--batch", "1000"])
        w = Worker(start, srv.url, out, "--hang-key", "big:e", "--lease-ms", 2000,
                   "--sleep-ms", 1, "--shutdown-ms", 1000, threads=2, concurrency=32)
        for i in range(3):
            work_through_small_keys(srv.url, out, 2000 * (i + 1))
        rss_small = w.rss_kib()
        assert r.llen(P + "q:big:e") == 1000
        big = int(os.environ.get("HQ_MEMORY_JOBS", "1000000"))
        push(srv.url, "big:e*%d" % (big - 1000), extra=["--batch", "20000"], timeout=600)
        assert r.llen(P + "q:big:e") == big
        for i in range(3, 6):
            work_through_small_keys(srv.url, out, 2000 * (i + 1))
        rss_big = w.rss_kib()
        print("worker VmRSS: %d KiB with 1,000 waiting, %d KiB with %d" % (rss_small, rss_big, big))
        assert rss_big - rss_small < 2048, (rss_small, rss_big)
        # The big key's head has been running all along, its lease renewed.
        assert count_lines(out, "S", key="big:e") == 1
        assert w.stop() == 0
        st = w.stats()
        assert st["renewed"] > 0 and st["released"] == 1, st


if __name__ == "__main__":
    suite.run()
