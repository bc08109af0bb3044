/*
 * procworker: a worker process running the job pipeline of
 * src/lib/process.c (fetch, rate limit, deliver), as `hookq work` does,
 * for the processing tests and the rate-limit benchmark.
 *
 *   procworker -c FILE [--quiet]
 *
 * It loads FILE like hookq (HOOKQ_* variables apply), runs an hq_worker
 * with the process handler, logs to stderr, and on SIGTERM/SIGINT drains
 * and exits 0, printing the worker's counters as one JSON line on stdout.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "process_int.h"

static int quiet;

static void
log_cb(int level, const char *msg, void *arg)
{
    static const char *names[] = {"error", "warn", "info", "debug"};

    (void)arg;
    if (quiet && level > HQ_LOG_WARN)
        return;
    if (level > HQ_LOG_INFO)
        return;
    fprintf(stderr, "procworker: %s: %s\n", names[level & 3], msg);
}

int
main(int argc, char **argv)
{
    const char *path = NULL;
    struct hq__config *cfg = NULL;
    struct hq__process *proc = NULL;
    struct hq_worker_options wo;
    struct hq_worker_stats st;
    hq_worker *w = NULL;
    char err[4096];
    sigset_t set;
    int sig, rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = 1;
        else {
            fprintf(stderr, "usage: procworker -c FILE [--quiet]\n");
            return 2;
        }
    }
    if (hq__config_load(path, NULL, &cfg, err, sizeof(err)) != HQ_OK) {
        fprintf(stderr, "procworker: %s\n", err);
        return 2;
    }
    /* Signals go to the main thread only: block them before any thread. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&wo, 0, sizeof(wo));
    wo.store.url = cfg->redis.url;
    wo.store.ns = cfg->redis.ns;
    wo.store.shards = cfg->redis.shards;
    hq__config_worker_options(cfg, &wo);
    wo.log = log_cb;
    if (cfg->redis.url == NULL) {
        fprintf(stderr, "procworker: the config needs a [redis] url\n");
        rc = 2;
        goto out;
    }
    if (hq__process_new(cfg, &wo.store, &cfg->redis.addr, &proc, err,
                        sizeof(err)) != HQ_OK) {
        fprintf(stderr, "procworker: %s\n", err);
        rc = 2;
        goto out;
    }
    hq__process_set_log(proc, log_cb, NULL);
    hq__process_worker_options(proc, &wo);
    if (hq_worker_new(&wo, &w) != HQ_OK || hq_worker_start(w) != HQ_OK) {
        fprintf(stderr, "procworker: %s\n", w ? hq_worker_errmsg(w) : "oom");
        goto out;
    }
    sigwait(&set, &sig);
    hq_worker_stop(w);
    hq_worker_join(w);
    hq_worker_stats(w, &st);
    printf("{\"claimed\":%llu,\"done\":%llu,\"retried\":%llu,\"parked\":%llu,"
           "\"dead\":%llu,\"held\":%llu,\"stale\":%llu,\"round_trips\":%llu}\n",
           (unsigned long long)st.claimed, (unsigned long long)st.done,
           (unsigned long long)st.retried, (unsigned long long)st.parked,
           (unsigned long long)st.dead, (unsigned long long)st.held,
           (unsigned long long)st.stale, (unsigned long long)st.round_trips);
    fflush(stdout);
    rc = 0;
out:
    hq__process_free(proc);
    hq_worker_free(w);
    hq__config_free(cfg);
    return rc;
}
