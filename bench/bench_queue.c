/*
 * bench_queue: the queue's throughput, end to end, against a real Redis.
 *
 *   bench_queue --url URL [--jobs N] [--keys K] [--batch B] [--threads T]
 *               [--concurrency C] [--body-size S] [--shards N]
 *
 * Phase 1 enqueues N no-op jobs over K keys through hq_client_push_many
 * (pipelined, B per pipeline, keys interleaved). Phase 2 drains them with one
 * worker (this process: T loops, C keys in flight) whose handler completes
 * each job at once. For each phase it prints jobs/s, Redis commands per job
 * (INFO commandstats deltas), Redis CPU per job (INFO cpu deltas) and round
 * trips per job (pipelines for the enqueue, the worker's own count of settle
 * calls for the drain), and for the drain the p50/p99 from a claim's answer
 * to the answer of the job's completion. The last line is JSON, for
 * bench/queue.sh.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "hookq/hookq.h"
#include "conn_int.h"

struct redis_sample {
    uint64_t calls;   /* every command Redis ran (INFO commandstats) */
    double cpu_s;     /* used_cpu_sys + used_cpu_user */
};

static int64_t *latencies; /* µs, one per completion */
static _Atomic size_t nlat;
static size_t maxlat;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
sample(redisContext *rc, struct redis_sample *s)
{
    redisReply *r;
    const char *p;

    memset(s, 0, sizeof(*s));
    r = redisCommand(rc, "INFO commandstats");
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return -1;
    /* cmdstat_X:calls=N,usec=...; the INFO call itself counts once. */
    for (p = r->str; (p = strstr(p, "calls=")) != NULL; p += 6)
        s->calls += strtoull(p + 6, NULL, 10);
    freeReplyObject(r);
    r = redisCommand(rc, "INFO cpu");
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return -1;
    if ((p = strstr(r->str, "used_cpu_sys:")) != NULL)
        s->cpu_s += strtod(p + 13, NULL);
    if ((p = strstr(r->str, "used_cpu_user:")) != NULL)
        s->cpu_s += strtod(p + 14, NULL);
    freeReplyObject(r);
    return 0;
}

static void
on_job(hq_job *job, void *arg)
{
    (void)arg;
    hq_job_done(job);
}

static void
on_settled(const hq_job *job, int outcome, int64_t latency_us, void *arg)
{
    size_t i;

    (void)job;
    (void)arg;
    if (outcome != HQ_SETTLED_DONE)
        return;
    i = atomic_fetch_add(&nlat, 1);
    if (i < maxlat)
        latencies[i] = latency_us;
}

static void
on_log(int level, const char *msg, void *arg)
{
    (void)arg;
    if (level <= HQ_LOG_WARN)
        fprintf(stderr, "bench_queue: %s\n", msg);
}

/* CPU seconds this process used so far (every thread). */
static double
cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    struct hq_store_options so = {0};
    struct hq_worker_options wo = {0};
    struct hq__store_addr addr;
    struct hq__err err;
    struct redis_sample s0, s1, s2;
    struct hq_worker_stats st;
    size_t jobs = 200000, keys = 1000, batch = 1000, body_size = 16, i, pipes = 0;
    struct hq_push *p;
    struct hq_push_result *res;
    char (*cust)[24], *body;
    hq_client *c = NULL;
    hq_worker *w = NULL;
    redisContext *rc;
    double t0, t1, t2, enq_s, drain_s, c1, c2;
    int64_t p50 = 0, p99 = 0;

    wo.threads = 2;
    wo.concurrency = 64;
    for (int a = 1; a + 1 < argc; a += 2) {
        if (strcmp(argv[a], "--url") == 0)
            so.url = argv[a + 1];
        else if (strcmp(argv[a], "--jobs") == 0)
            jobs = strtoul(argv[a + 1], NULL, 10);
        else if (strcmp(argv[a], "--keys") == 0)
            keys = strtoul(argv[a + 1], NULL, 10);
        else if (strcmp(argv[a], "--batch") == 0)
            batch = strtoul(argv[a + 1], NULL, 10);
        else if (strcmp(argv[a], "--threads") == 0)
            wo.threads = (unsigned)strtoul(argv[a + 1], NULL, 10);
        else if (strcmp(argv[a], "--concurrency") == 0)
            wo.concurrency = (unsigned)strtoul(argv[a + 1], NULL, 10);
        else if (strcmp(argv[a], "--shards") == 0)
            so.shards = (unsigned)strtoul(argv[a + 1], NULL, 10);
        else if (strcmp(argv[a], "--body-size") == 0)
            body_size = strtoul(argv[a + 1], NULL, 10);
    }
    if (so.url == NULL || jobs == 0 || keys == 0 || batch == 0) {
        fprintf(stderr, "usage: bench_queue --url URL [--jobs N] [--keys K] "
                        "[--batch B] [--threads T] [--concurrency C]\n");
        return 2;
    }
    if (hq__store_parse_url(so.url, 5000, &addr, &err) != HQ_OK ||
        (rc = hq__conn_connect_sync(&addr, &err)) == NULL) {
        fprintf(stderr, "bench_queue: %s\n", err.msg);
        return 1;
    }
    if (hq_client_new(&so, &c) != HQ_OK) {
        fprintf(stderr, "bench_queue: %s\n", hq_client_errmsg(c));
        return 1;
    }
    p = calloc(batch, sizeof(*p));
    res = calloc(batch, sizeof(*res));
    cust = calloc(keys, sizeof(*cust));
    body = malloc(body_size + 1);
    maxlat = jobs;
    latencies = calloc(jobs, sizeof(*latencies));
    if (!p || !res || !cust || !body || !latencies)
        return 1;
    memset(body, 'x', body_size);
    for (i = 0; i < keys; i++)
        snprintf(cust[i], sizeof(cust[i]), "c%zu", i);

    /* Phase 1: enqueue, keys interleaved. */
    sample(rc, &s0);
    t0 = now_s();
    for (i = 0; i < jobs;) {
        size_t n = 0;
        for (; n < batch && i < jobs; n++, i++) {
            const char *cu = cust[i % keys];
            p[n] = (struct hq_push){cu, strlen(cu), "e", 1, body, body_size,
                                    NULL, 0};
        }
        if (hq_client_push_many(c, p, n, NULL, res) != HQ_OK) {
            fprintf(stderr, "bench_queue: %s\n", hq_client_errmsg(c));
            return 1;
        }
        pipes++;
    }
    t1 = now_s();
    sample(rc, &s1);
    enq_s = t1 - t0;

    /* Phase 2: drain with one worker. */
    wo.store = so;
    wo.handler = on_job;
    wo.on_settled = on_settled;
    wo.log = on_log;
    if (hq_worker_new(&wo, &w) != HQ_OK || hq_worker_start(w) != HQ_OK) {
        fprintf(stderr, "bench_queue: %s\n", hq_worker_errmsg(w));
        return 1;
    }
    t1 = now_s();
    c1 = cpu_s();
    for (;;) {
        hq_worker_stats(w, &st);
        if (st.done >= jobs)
            break;
        usleep(2000);
    }
    t2 = now_s();
    c2 = cpu_s();
    drain_s = t2 - t1;
    hq_worker_stats(w, &st);
    sample(rc, &s2);
    hq_worker_stop(w);
    hq_worker_join(w);

    {
        size_t n = atomic_load(&nlat);
        if (n > maxlat)
            n = maxlat;
        qsort(latencies, n, sizeof(*latencies), cmp_i64);
        if (n) {
            p50 = latencies[n / 2];
            p99 = latencies[(n * 99) / 100];
        }
    }
    /* Each sample's own two INFO calls are not the queue's: subtract them. */
    printf("hookq enqueue: %zu jobs in %.2f s = %.0f jobs/s; %.3f round trips/job, "
           "%.2f redis commands/job, %.1f us redis cpu/job\n",
           jobs, enq_s, jobs / enq_s, (double)pipes / jobs,
           (double)(s1.calls - s0.calls - 2) / jobs,
           (s1.cpu_s - s0.cpu_s) * 1e6 / jobs);
    printf("hookq drain:   %zu jobs in %.2f s = %.0f jobs/s; %.3f round trips/job, "
           "%.2f redis commands/job, %.1f us redis cpu/job, %.1f us worker "
           "cpu/job; claim->complete p50 %.2f ms, p99 %.2f ms\n",
           jobs, drain_s, jobs / drain_s, (double)st.round_trips / jobs,
           (double)(s2.calls - s1.calls - 2) / jobs,
           (s2.cpu_s - s1.cpu_s) * 1e6 / jobs, (c2 - c1) * 1e6 / jobs,
           p50 / 1e3, p99 / 1e3);
    printf("hookq total:   %.3f round trips/job (enqueue + drain)\n",
           (double)(pipes + st.round_trips) / jobs);
    printf("{\"enqueue_jobs_per_s\":%.0f,\"drain_jobs_per_s\":%.0f,"
           "\"round_trips_per_job\":%.4f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
           jobs / enq_s, jobs / drain_s,
           (double)(pipes + st.round_trips) / jobs, p50 / 1e3, p99 / 1e3);
    hq_worker_free(w);
    hq_client_free(c);
    redisFree(rc);
    free(p);
    free(res);
    free(cust);
    free(body);
    free(latencies);
    return 0;
}
