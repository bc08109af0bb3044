/*
 * testworker: a worker process built on the library, for the integration
 * tests and the benchmark. Its handler sleeps on an evtimer (so a sleeping
 * job holds no thread), then settles the job, and records what happened:
 *
 *   S key seq pid start_ns attempt             the handler started
 *   E key seq pid start_ns end_ns attempt      the handler finished (settles)
 *   A key seq pid outcome latency_us attempt   Redis answered the settlement
 *
 * Times are CLOCK_REALTIME in ns; outcome is done, retry, park, dead, hold,
 * release, stale or lost. Lines are appended with one write(2) each, so
 * several processes may share one file.
 *
 *   testworker --url URL [--ns NS] [--shards N] [--timeout-ms N] [--threads T]
 *              [--concurrency C] [--out FILE] [--sleep-ms N] [--lease-ms N]
 *              [--max-attempts N] [--backoff-ms MIN,MAX] [--on-failure dead|hold]
 *              [--shutdown-ms N] [--slow-key K --slow-ms N]
 *              [--fail-key K --fail-times N [--fail-mode retry|fail|park|hold]]
 *              [--hang-key K [--hang-seq S]] [--quiet]
 *
 * --slow-key: jobs of key K sleep --slow-ms instead. --fail-key: the first N
 * attempts of each job of key K fail that way (park: 200 ms, not counted, so
 * its Nth run after parks succeeds; hold: reason "test"). --hang-key: the
 * job (of seq S, or every job) of key K never settles. SIGTERM/SIGINT drain;
 * on exit, one JSON line of the worker's counters goes to stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "hookq/hookq.h"

struct cfg {
    int out_fd;
    int64_t sleep_ms;
    const char *slow_key;
    int64_t slow_ms;
    const char *fail_key;
    int fail_times;
    const char *fail_mode;
    const char *hang_key;
    int64_t hang_seq;
    int quiet;
};

struct run {
    hq_job *job;
    struct event *ev;
    int64_t start_ns;
};

static struct cfg cfg = {.out_fd = -1, .fail_mode = "retry"};
static hq_worker *worker;

static int64_t
real_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
record(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    if (cfg.out_fd < 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(buf) &&
        write(cfg.out_fd, buf, (size_t)n) != n)
        fprintf(stderr, "testworker: cannot write the record file\n");
}

static int
is_key(const hq_job *job, const char *key)
{
    return key && strcmp(hq_job_key(job), key) == 0;
}

static void
finish(struct run *r)
{
    hq_job *job = r->job;
    int64_t end = real_ns();

    record("E %s %" PRId64 " %d %" PRId64 " %" PRId64 " %d\n", hq_job_key(job),
           hq_job_seq(job), (int)getpid(), r->start_ns, end,
           hq_job_attempt(job));
    hq_job_set_userdata(job, NULL);
    if (r->ev)
        event_free(r->ev);
    free(r);
    if (is_key(job, cfg.fail_key) && hq_job_attempt(job) <= cfg.fail_times) {
        if (strcmp(cfg.fail_mode, "fail") == 0)
            hq_job_fail(job, "injected failure");
        else if (strcmp(cfg.fail_mode, "park") == 0)
            hq_job_park(job, 200);
        else if (strcmp(cfg.fail_mode, "hold") == 0)
            hq_job_hold(job, "test", 0);
        else
            hq_job_retry(job, "injected failure");
        return;
    }
    hq_job_done(job);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    finish(arg);
}

static void
on_job(hq_job *job, void *arg)
{
    struct run *r;
    int64_t ms = cfg.sleep_ms;
    struct timeval tv;

    (void)arg;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        hq_job_retry(job, "out of memory");
        return;
    }
    r->job = job;
    r->start_ns = real_ns();
    hq_job_set_userdata(job, r);
    record("S %s %" PRId64 " %d %" PRId64 " %d\n", hq_job_key(job),
           hq_job_seq(job), (int)getpid(), r->start_ns, hq_job_attempt(job));
    if (is_key(job, cfg.hang_key) &&
        (cfg.hang_seq == 0 || cfg.hang_seq == hq_job_seq(job)))
        return; /* never settles: the lease is renewed until the process dies */
    if (is_key(job, cfg.slow_key))
        ms = cfg.slow_ms;
    if (ms <= 0) {
        finish(r);
        return;
    }
    r->ev = evtimer_new(hq_job_loop(job), timer_cb, r);
    if (r->ev == NULL) {
        finish(r);
        return;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(r->ev, &tv);
}

static const char *const outcome_names[] = {
    "done", "retry", "park", "dead", "hold", "release", "stale", "lost",
};

static void
on_settled(const hq_job *job, int outcome, int64_t latency_us, void *arg)
{
    struct run *r = hq_job_userdata(job);

    (void)arg;
    /* A job whose lease was handed back at the end of a drain: its timer
     * will never fire now. */
    if (r) {
        if (r->ev)
            event_free(r->ev);
        free(r);
        hq_job_set_userdata((hq_job *)job, NULL);
    }
    record("A %s %" PRId64 " %d %s %" PRId64 " %d\n", hq_job_key(job),
           hq_job_seq(job), (int)getpid(),
           outcome >= 0 && outcome <= 7 ? outcome_names[outcome] : "?",
           latency_us, hq_job_attempt(job));
}

static void
on_log(int level, const char *msg, void *arg)
{
    (void)arg;
    if (!cfg.quiet || level <= HQ_LOG_ERROR)
        fprintf(stderr, "testworker[%d]: %s\n", (int)getpid(), msg);
}

static void
on_signal(int sig)
{
    (void)sig;
    hq_worker_stop(worker);
}

static void
usage(void)
{
    fprintf(stderr, "usage: testworker --url URL [options] (see the source)\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct hq_worker_options o = {0};
    struct hq_worker_stats st;
    struct sigaction sa;
    const char *out = NULL;
    int rc, i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0) {
            cfg.quiet = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--url") == 0)
            o.store.url = v;
        else if (strcmp(a, "--ns") == 0)
            o.store.ns = v;
        else if (strcmp(a, "--timeout-ms") == 0)
            o.store.timeout_ms = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--shards") == 0)
            o.store.shards = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--threads") == 0)
            o.threads = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--concurrency") == 0)
            o.concurrency = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--sleep-ms") == 0)
            cfg.sleep_ms = strtoll(v, NULL, 10);
        else if (strcmp(a, "--lease-ms") == 0)
            o.lease_ms = strtoll(v, NULL, 10);
        else if (strcmp(a, "--max-attempts") == 0)
            o.max_attempts = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--backoff-ms") == 0) {
            char *end;
            o.backoff_min_ms = strtoll(v, &end, 10);
            o.backoff_max_ms = *end == ',' ? strtoll(end + 1, NULL, 10)
                                           : o.backoff_min_ms;
        } else if (strcmp(a, "--on-failure") == 0)
            o.on_failure = strcmp(v, "hold") == 0 ? HQ_ON_FAILURE_HOLD
                                                  : HQ_ON_FAILURE_DEADLETTER;
        else if (strcmp(a, "--shutdown-ms") == 0)
            o.shutdown_timeout_ms = strtoll(v, NULL, 10);
        else if (strcmp(a, "--slow-key") == 0)
            cfg.slow_key = v;
        else if (strcmp(a, "--slow-ms") == 0)
            cfg.slow_ms = strtoll(v, NULL, 10);
        else if (strcmp(a, "--fail-key") == 0)
            cfg.fail_key = v;
        else if (strcmp(a, "--fail-times") == 0)
            cfg.fail_times = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--fail-mode") == 0)
            cfg.fail_mode = v;
        else if (strcmp(a, "--hang-key") == 0)
            cfg.hang_key = v;
        else if (strcmp(a, "--hang-seq") == 0)
            cfg.hang_seq = strtoll(v, NULL, 10);
        else
            usage();
    }
    if (o.store.url == NULL)
        usage();
    if (out) {
        cfg.out_fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (cfg.out_fd < 0) {
            fprintf(stderr, "testworker: cannot open '%s': %s\n", out,
                    strerror(errno));
            return 1;
        }
    }
    o.handler = on_job;
    o.log = on_log;
    o.on_settled = on_settled;

    rc = hq_worker_new(&o, &worker);
    if (rc != HQ_OK) {
        fprintf(stderr, "testworker: %s\n",
                worker ? hq_worker_errmsg(worker) : hq_strerror(rc));
        hq_worker_free(worker);
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    rc = hq_worker_start(worker);
    if (rc != HQ_OK) {
        fprintf(stderr, "testworker: %s\n", hq_worker_errmsg(worker));
        hq_worker_free(worker);
        return 1;
    }
    fprintf(stderr, "testworker[%d]: started\n", (int)getpid());
    hq_worker_join(worker);
    hq_worker_stats(worker, &st);
    printf("{\"claimed\":%" PRIu64 ",\"done\":%" PRIu64 ",\"retried\":%" PRIu64
           ",\"parked\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"held\":%" PRIu64
           ",\"released\":%" PRIu64 ",\"stale\":%" PRIu64 ",\"renewed\":%" PRIu64
           ",\"round_trips\":%" PRIu64 ",\"redis_errors\":%" PRIu64
           ",\"in_flight\":%" PRId64 "}\n",
           st.claimed, st.done, st.retried, st.parked, st.dead, st.held,
           st.released, st.stale, st.renewed, st.round_trips, st.redis_errors,
           st.in_flight);
    fflush(stdout);
    hq_worker_free(worker);
    if (cfg.out_fd >= 0)
        close(cfg.out_fd);
    return 0;
}
