/*
 * intake_server: runs the intake alone from a config file, for tests that
 * need the server without the rest of `hookq serve`.
 *     intake_server -c FILE
 * Logs to stderr, prints "ready" on stdout once listening, stops on SIGTERM
 * or SIGINT (stop accepting, finish requests in flight), then prints the
 * counters as "stat NAME VALUE" lines.
 */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "config_int.h"
#include "intake.h"

static void
log_line(int level, const char *msg, void *arg)
{
    (void)arg;
    fprintf(stderr, "[%d] %s\n", level, msg);
}

int
main(int argc, char **argv)
{
    struct hq__config *cfg = NULL;
    struct hq_store_options store = {0};
    struct hk_intake_hooks hooks = {log_line, NULL, HQ_LOG_INFO};
    struct hk_intake_stats st;
    struct hk_intake *in;
    char err[4096];
    sigset_t set;
    int sig;

    if (getenv("HQ_INTAKE_DEBUG"))
        hooks.log_level = HQ_LOG_DEBUG;
    if (argc != 3 || strcmp(argv[1], "-c") != 0) {
        fprintf(stderr, "usage: intake_server -c FILE\n");
        return 2;
    }
    if (hq__config_load(argv[2], NULL, &cfg, err, sizeof(err)) != HQ_OK) {
        fprintf(stderr, "%s", err);
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg->redis.url == NULL) {
        fprintf(stderr, "intake_server: the config needs a [redis] url\n");
        hq__config_free(cfg);
        return 2;
    }
    store.url = cfg->redis.url;
    store.ns = cfg->redis.ns;
    store.shards = cfg->redis.shards;
    in = hk_intake_start(cfg, &store, &cfg->redis.addr, &hooks, err, sizeof(err));
    if (in == NULL) {
        fprintf(stderr, "intake_server: %s\n", err);
        hq__config_free(cfg);
        return 1;
    }
    printf("ready %d\n", hk_intake_port(in));
    fflush(stdout);
    sigwait(&set, &sig);
    hk_intake_stop(in);
    hk_intake_stats(in, &st);
    printf("stat accepted %llu\nstat duplicate %llu\n",
           (unsigned long long)st.accepted, (unsigned long long)st.duplicate);
    for (int r = 0; r < HQ_INTAKE_NREASONS; r++)
        printf("stat %s %llu\n", hk_intake_reason_name(r),
               (unsigned long long)st.rejected[r]);
    hk_intake_free(in);
    hq__config_free(cfg);
    return 0;
}
