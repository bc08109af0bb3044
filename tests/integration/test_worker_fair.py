"""G3 with a real worker: one key with 50,000 jobs and 500 keys with 10
jobs each, all enqueued before the worker starts. Every small key is done
while the big key still has more than 40,000 jobs waiting, and no small key
runs ahead of the others (round-robin over customers). On one redis-server,
and with HQ_REDIS=cluster (integration.worker_fair_cluster) on a 3-master
cluster, 12 shards."""

from harness import Suite
from workerlib import Worker, count_lines, push, records, wait_until, worker_env

suite = Suite("worker_fair")


@suite.test
def small_keys_finish_while_the_big_key_waits():
    with worker_env() as (srv, start, out):
        assert push(srv, "big:e*50000", extra=["--batch", "5000"])["stored"] == 50000
        assert push(srv, "@500:e*10", extra=["--batch", "5000"])["stored"] == 5000
        w = Worker(start, srv, out, threads=2, concurrency=16)
        small_done = lambda: count_lines(out, "A", outcome="done") - count_lines(out, "A", key="big:e")
        wait_until(lambda: small_done() >= 5000, 120, interval=0.1, what="the small keys")
        assert w.stop() == 0
        rec = records(out)
        # How far was the big key when the last small job ended?
        last_small = max(e.end for e in rec.ends if e.key != "big:e")
        big_before = sum(1 for e in rec.ends if e.key == "big:e" and e.end < last_small)
        assert big_before < 10000, big_before
        print("big key jobs done when the last small key finished: %d" % big_before)
        # Round-robin: no small key finished its 10 jobs before every small
        # key had finished its first.
        ends = sorted((e for e in rec.ends if e.key != "big:e"), key=lambda e: e.end)
        first = {}
        last = {}
        for e in ends:
            first.setdefault(e.key, e.end)
            last[e.key] = e.end
        assert len(first) == 500
        assert min(last.values()) > max(first.values())


if __name__ == "__main__":
    suite.run()
