/*
 * hookq run | serve | work: the daemon.
 *
 *   run    intake + worker in one process; with no [redis] url, a private
 *          redis-server in data_dir (embedded_redis.c), stopped on exit
 *   serve  intake only        work   worker only
 *
 * serve and work with no [redis] url use the embedded Redis that a `hookq
 * run` of the same data_dir started; they never start one themselves.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (the mask is set
 * before any thread exists) and taken by the main thread with sigtimedwait,
 * so no work happens in a signal handler. On the first one we drain: stop
 * accepting (intake stop answers the requests in flight), stop the worker
 * (jobs in flight finish for up to shutdown_timeout, the rest hand their
 * leases back), join, stop the admin listener, and stop the embedded Redis
 * last, so that every settlement reaches it. Exit 0. A second signal while
 * draining exits at once (status 1); the embedded Redis then gets SIGTERM
 * from the kernel (PR_SET_PDEATHSIG) and still flushes its AOF.
 *
 * The worker's handler is the job pipeline of process.h (fetch, deliver,
 * settle; DESIGN §3.4).
 *
 * Before anything listens or works, the namespace's shard count recorded
 * in Redis must be ours (hq_client_check_shards): another one exits 2,
 * naming both. When Redis does not answer at start (serve may start before
 * it), the check is made again every second until it is done. The worker
 * waits for Redis the same way: hq_worker_start() fails early when Redis
 * cannot be reached (HQ_ESTORE), and is called again every second until it
 * starts, while the intake and the admin listener already answer (503 and
 * /healthz saying why). Only a shard-count mismatch or a bad config stops
 * the daemon (exit 2), as when Redis answers at once.
 *
 * Under systemd (Type=notify, notify.h): READY=1 once the listeners are open
 * and Redis answers a connection (until then STATUS= says what we wait for,
 * and a signal still drains), STOPPING=1 when the drain begins, and
 * WATCHDOG=1 from the main loop, at half the unit's WatchdogSec=, while it
 * runs. The drain itself sends none: systemd stops the watchdog on
 * STOPPING=1 and gives the drain TimeoutStopSec= instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin_api.h"
#include "admin_app.h"
#include "admin_http.h"
#include "commands.h"
#include "embedded_redis.h"
#include "intake.h"
#include "log.h"
#include "notify.h"
#include "process_int.h"

#include "conn_int.h"

#include "banned_int.h"

#define EMBEDDED_START_TIMEOUT_MS 30000
#define EMBEDDED_STOP_TIMEOUT_MS 15000

/* ------------------------------------------------------------------------ */
/* The daemon.                                                              */

enum { WANT_INTAKE = 1 << 0, WANT_WORKER = 1 << 1, MAY_EMBED = 1 << 2 };

struct daemon {
    const char *name;
    struct hk_cli *cli;
    struct hq_store_options store;
    struct hq__store_addr addr; /* store's url and sentinels, parsed */
    struct hk_embedded_redis *redis;
    struct hk_admin *admin;
    struct hk_intake *intake;
    hq_worker *worker;
    struct hq__process *process; /* the worker's handler; freed after join */
    int shards_checked;         /* the recorded shard count is ours */
    int shards_warned;          /* said once that it cannot be checked yet */
    int worker_pending;         /* created, not started: Redis not reached yet */
};

static void
second_signal(int sig)
{
    static const char msg[] = "hookq: second signal, exiting without "
                              "draining\n";
    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing to do */
    }
    _exit(1);
}

static void
shutdown_all(struct daemon *d)
{
    if (d->intake != NULL)
        hk_intake_stop(d->intake);
    if (d->worker != NULL) {
        hq_worker_stop(d->worker);
        hq_worker_join(d->worker);
    }
    hk_admin_free(d->admin);
    d->admin = NULL;
    hk_intake_free(d->intake);
    d->intake = NULL;
    hq_worker_free(d->worker);
    d->worker = NULL;
    hq__process_free(d->process);
    d->process = NULL;
    if (d->redis != NULL) {
        pid_t pid = hk_embedded_redis_pid(d->redis);
        if (pid <= 0)
            hk_embedded_redis_stop(d->redis, 0); /* exited already */
        else if (hk_embedded_redis_stop(d->redis, EMBEDDED_STOP_TIMEOUT_MS) !=
                 0)
            hk_log(HQ_LOG_WARN,
                   "embedded redis-server (pid %d) did not stop in "
                   "time and was killed",
                   (int)pid);
        else
            hk_log_kv(HQ_LOG_INFO, "embedded redis stopped", NULL);
        d->redis = NULL;
    }
}

static int
usage_error(const char *name, const char *arg)
{
    fprintf(stderr,
            "hookq %s: unexpected argument '%s' (usage: hookq %s "
            "[-c FILE])\n",
            name, arg, name);
    return 2;
}

/*
 * On a Redis Cluster: log how the shards fall on the masters, and warn when
 * one master holds more than twice its share (DESIGN §3.7: `shards` should
 * be several times the number of masters).
 */
static void
log_cluster_layout(const struct hq__config *cfg)
{
    struct hq__store_addr addr = cfg->redis.addr;
    struct hq__store_ns ns;
    struct hq__err e;
    char layout[4096];
    int uneven = 0;

    addr.timeout_ms = 2000;
    if (!hq__conn_probe_cluster(&addr) ||
        hq__store_ns_init(&ns, cfg->redis.ns, cfg->redis.shards, &e) != HQ_OK)
        return;
    if (hq__conn_cluster_layout(&addr, &ns, layout, sizeof(layout), &uneven,
                                &e) != HQ_OK) {
        hk_log(HQ_LOG_WARN, "redis cluster: cannot read the slot map yet: %s",
               e.msg);
        return;
    }
    hk_log(HQ_LOG_INFO, "redis cluster: %s", layout);
    if (uneven)
        hk_log(HQ_LOG_WARN,
               "redis cluster: one master holds more than twice its share of "
               "the %u shards; set [redis] shards to several times the number "
               "of masters",
               ns.shards);
}

static int
start_store(struct daemon *d, int flags)
{
    const struct hq__config *cfg = d->cli->cfg;
    char err[2048], masked[512];

    if (cfg->redis.sentinels.text != NULL) {
        hk_cli_store_options(d->cli, &d->store);
        /* Whether the Sentinels get AUTH, never with what password. */
        hk_log_kv(HQ_LOG_INFO, "using redis through its sentinels", "sentinels",
                  cfg->redis.sentinels.text, "master", cfg->redis.sentinel_master,
                  "sentinel_auth",
                  cfg->redis.sentinel_password == NULL ? "none"
                  : cfg->redis.sentinel_user != NULL   ? cfg->redis.sentinel_user
                                                       : "password",
                  NULL);
        return 0;
    }
    if (cfg->redis.url != NULL) {
        hk_cli_store_options(d->cli, &d->store);
        hk_log_kv(HQ_LOG_INFO, "using redis", "url",
                  hk_log_mask_url(cfg->redis.url, masked, sizeof(masked)),
                  NULL);
        log_cluster_layout(cfg);
        return 0;
    }
    if (flags & MAY_EMBED) {
        char pid[32];
        if (hk_embedded_redis_start(cfg->redis.data_dir,
                                    EMBEDDED_START_TIMEOUT_MS, &d->redis, err,
                                    sizeof(err)) != 0) {
            hk_log(HQ_LOG_ERROR, "cannot start the embedded redis: %s", err);
            return -1;
        }
        if (hk_cli_store_options(d->cli, &d->store) != 0)
            return -1;
        d->store.url = hk_embedded_redis_url(d->redis);
        snprintf(pid, sizeof(pid), "%d", (int)hk_embedded_redis_pid(d->redis));
        hk_log_kv(HQ_LOG_INFO, "embedded redis started", "url", d->store.url,
                  "pid", pid, "data_dir", cfg->redis.data_dir, NULL);
        return 0;
    }
    if (hk_cli_store_options(d->cli, &d->store) != 0)
        return -1;
    if (hk_embedded_redis_ping(d->store.url + strlen("unix://"), 2000) != 1) {
        hk_log(HQ_LOG_ERROR,
               "no [redis] url is set and no embedded redis answers "
               "on '%s': start `hookq run` with this data_dir first, or set "
               "[redis] url",
               d->store.url + strlen("unix://"));
        return -1;
    }
    hk_log_kv(HQ_LOG_INFO, "using the embedded redis of hookq run", "url",
              d->store.url, NULL);
    return 0;
}

/*
 * Where Redis is, parsed, for the intake, the admin and processing: the
 * configured address (config.c parsed [redis] url and sentinels), or the
 * socket of the embedded Redis, known only once it runs.
 */
static int
store_addr(struct daemon *d)
{
    const struct hq__config *cfg = d->cli->cfg;
    struct hq__err e;

    if (cfg->redis.url != NULL || cfg->redis.sentinels.text != NULL) {
        d->addr = cfg->redis.addr;
        return 0;
    }
    if (hq__store_parse_url(d->store.url, 0, &d->addr, &e) != HQ_OK) {
        hk_log(HQ_LOG_ERROR, "embedded redis: %s", e.msg);
        return -1;
    }
    return 0;
}

/*
 * Check the namespace's shard count against ours: 0 when they agree (or
 * Redis cannot tell yet: d->shards_checked stays 0), 2 when they differ.
 */
static int
check_shards(struct daemon *d)
{
    hq_client *c = NULL;
    int rc = hq_client_new(&d->store, &c);

    if (rc == HQ_OK)
        rc = hq_client_check_shards(c, NULL);
    if (rc == HQ_OK) {
        d->shards_checked = 1;
    } else if (rc == HQ_ECONFIG || rc == HQ_EINVAL) {
        hk_log(HQ_LOG_ERROR, "%s", c ? hq_client_errmsg(c) : hq_strerror(rc));
        hq_client_free(c);
        return 2;
    } else if (!d->shards_warned) {
        hk_log(HQ_LOG_WARN, "cannot check the namespace's shard count yet "
               "(trying again every second): %s",
               c ? hq_client_errmsg(c) : hq_strerror(rc));
        d->shards_warned = 1;
    }
    hq_client_free(c);
    return 0;
}

/*
 * The main loop's wait: one second, or half the watchdog interval when that
 * is shorter, with WATCHDOG=1 sent first when the unit asks for it.
 */
static struct timespec
next_tick(int64_t wd_ms)
{
    struct timespec tick = {1, 0};

    if (wd_ms > 0) {
        hk_notify_watchdog();
        if (wd_ms < 1000) {
            tick.tv_sec = 0;
            tick.tv_nsec = (long)wd_ms * 1000000L;
        }
    }
    return tick;
}

/*
 * Wait until Redis answers a connection (with AUTH and SELECT) at the
 * daemon's store, polling once a second, or until SIGINT/SIGTERM. Returns 0
 * once it answers, or the signal.
 */
static int
wait_for_redis(struct daemon *d, const sigset_t *sigs)
{
    int64_t wd_ms = hk_notify_watchdog_interval_ms();
    int logged = 0;

    for (;;) {
        hq_client *c = NULL;
        int rc = hq_client_new(&d->store, &c);
        struct timespec tick;
        int sig;

        if (rc == HQ_OK) {
            hq_client_free(c);
            if (logged)
                hk_log_kv(HQ_LOG_INFO, "redis answers", NULL);
            return 0;
        }
        if (!logged) {
            char status[600];
            snprintf(status, sizeof(status), "waiting for redis: %s",
                     c ? hq_client_errmsg(c) : "out of memory");
            hk_log(HQ_LOG_WARN, "%s", status);
            hk_notify_status(status);
            logged = 1;
        }
        hq_client_free(c);
        tick = next_tick(wd_ms);
        sig = sigtimedwait(sigs, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM)
            return sig;
    }
}

/*
 * Start the worker: 0 when it runs, or when Redis cannot be reached yet
 * (d->worker_pending: the next tick tries again; said once), else the exit
 * status (2 for a config or shard-count error, 1 otherwise).
 */
static int
start_worker(struct daemon *d)
{
    int rc = hq_worker_start(d->worker);

    if (rc == HQ_OK) {
        if (d->worker_pending)
            hk_log_kv(HQ_LOG_INFO, "worker started", NULL);
        d->worker_pending = 0;
        return 0;
    }
    if (rc == HQ_ESTORE) {
        if (!d->worker_pending)
            hk_log(HQ_LOG_WARN, "cannot start the worker yet (trying again "
                   "every second): %s", hq_worker_errmsg(d->worker));
        d->worker_pending = 1;
        return 0;
    }
    hk_log(HQ_LOG_ERROR, "cannot start the worker: %s",
           hq_worker_errmsg(d->worker));
    return rc == HQ_ECONFIG ? 2 : 1;
}

static int
run_daemon(struct hk_cli *cli, int argc, char **argv, const char *name,
           int flags)
{
    const struct hq__config *cfg = cli->cfg;
    struct daemon d;
    sigset_t sigs;
    char err[2048];
    int rc = 1, sig = 0;

    memset(&d, 0, sizeof(d));
    d.name = name;
    d.cli = cli;
    if (argc > 1)
        return usage_error(name, argv[1]);

    /* Before any thread: every thread inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (start_store(&d, flags) != 0 || store_addr(&d) != 0)
        goto out;
    if (check_shards(&d) != 0) {
        rc = 2;
        goto out;
    }

    if (cfg->admin.listen.text != NULL) {
        d.admin = hk_admin_new(cfg, err, sizeof(err));
        if (d.admin == NULL) {
            hk_log(HQ_LOG_ERROR, "%s", err);
            goto out;
        }
    }
    if (flags & WANT_INTAKE) {
        struct hk_intake_hooks hooks = {hk_log_sink, (void *)"intake",
                                        hk_log_enabled(HQ_LOG_DEBUG)
                                            ? HQ_LOG_DEBUG
                                            : HQ_LOG_INFO};
        d.intake = hk_intake_start(cfg, &d.store, &d.addr, &hooks, err,
                                   sizeof(err));
        if (d.intake == NULL) {
            hk_log(HQ_LOG_ERROR, "cannot start the intake: %s", err);
            goto out;
        }
    }
    if (flags & WANT_WORKER) {
        struct hq_worker_options wo;
        memset(&wo, 0, sizeof(wo));
        wo.store = d.store;
        hq__config_worker_options(cfg, &wo);
        wo.log = hk_log_sink;
        wo.log_kv = hk_log_kv_sink;
        wo.log_arg = (void *)"worker";
        rc = hq__process_new(cfg, &d.store, &d.addr, &d.process, err,
                             sizeof(err));
        if (rc != HQ_OK) {
            hk_log(HQ_LOG_ERROR, "%s", err);
            rc = rc == HQ_ECONFIG ? 2 : 1;
            goto out;
        }
        rc = 1;
        hq__process_set_log_kv(d.process, hk_log_kv_sink, (void *)"worker");
        hq__process_worker_options(d.process, &wo);
        if (hq_worker_new(&wo, &d.worker) != HQ_OK) {
            hk_log(HQ_LOG_ERROR, "cannot create the worker: %s",
                   d.worker ? hq_worker_errmsg(d.worker) : "out of memory");
            goto out;
        }
        rc = start_worker(&d);
        if (rc != 0)
            goto out;
        rc = 1;
    }
    if (d.admin != NULL) {
        /* The routes, on the listener bound above. */
        if (hk_admin_api_attach(d.admin, cfg, &d.store, &d.addr, d.intake,
                                d.worker, d.process, err, sizeof(err)) != 0 ||
            hk_admin_app_attach(d.admin, cfg, &d.store, err,
                                sizeof(err)) != 0) {
            hk_log(HQ_LOG_ERROR, "%s", err);
            goto out;
        }
        if (hk_admin_start(d.admin) != 0) {
            hk_log(HQ_LOG_ERROR, "cannot start the admin thread");
            goto out;
        }
    }

    {
        char intake_url[600] = "", admin_url[300] = "", pidbuf[32];
        if (d.intake != NULL) {
            const char *host = cfg->intake.listen.host;
            snprintf(intake_url, sizeof(intake_url), "http://%s%s%s:%d%s",
                     strchr(host, ':') ? "[" : "", host,
                     strchr(host, ':') ? "]" : "", hk_intake_port(d.intake),
                     cfg->intake.path);
        }
        if (d.admin != NULL)
            snprintf(admin_url, sizeof(admin_url), "http://%s/healthz",
                     cfg->admin.listen.text);
        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
        hk_log_kv(HQ_LOG_INFO, "hookq ready", "command", name, "intake",
                  intake_url[0] ? intake_url : NULL, "admin",
                  admin_url[0] ? admin_url : NULL, "worker",
                  (flags & WANT_WORKER) ? "on" : NULL, "pid", pidbuf, NULL);
        sig = wait_for_redis(&d, &sigs);
        if (sig == 0 && d.worker_pending && (rc = start_worker(&d)) != 0)
            goto out;
        rc = 1;
        if (sig == 0) {
            char status[1024];
            snprintf(status, sizeof(status), "%s%s%s%s%s", name,
                     intake_url[0] ? ": intake " : "", intake_url,
                     admin_url[0] ? ", admin " : "", admin_url);
            hk_notify_ready(status);
        }
    }

    for (int64_t wd_ms = hk_notify_watchdog_interval_ms(); sig == 0;) {
        struct timespec tick = next_tick(wd_ms);
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (!d.shards_checked && check_shards(&d) != 0) {
            shutdown_all(&d);
            return 2;
        }
        if (d.worker_pending && (rc = start_worker(&d)) != 0)
            goto out;
        sig = 0;
        if (d.redis != NULL && !hk_embedded_redis_alive(d.redis)) {
            hk_log(HQ_LOG_ERROR,
                   "the embedded redis-server exited (see %s/%s); "
                   "stopping",
                   cfg->redis.data_dir, HQ_EMBEDDED_LOG);
            shutdown_all(&d);
            return 1;
        }
    }
    hk_notify_stopping();
    hk_log_kv(HQ_LOG_INFO, "draining", "signal",
              sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = second_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    }
    rc = 0;
out:
    shutdown_all(&d);
    if (rc == 0)
        hk_log_kv(HQ_LOG_INFO, "stopped", NULL);
    return rc;
}

int
hk_cmd_run(struct hk_cli *cli, int argc, char **argv)
{
    return run_daemon(cli, argc, argv, "run",
                      WANT_INTAKE | WANT_WORKER | MAY_EMBED);
}

int
hk_cmd_serve(struct hk_cli *cli, int argc, char **argv)
{
    return run_daemon(cli, argc, argv, "serve", WANT_INTAKE);
}

int
hk_cmd_work(struct hk_cli *cli, int argc, char **argv)
{
    return run_daemon(cli, argc, argv, "work", WANT_WORKER);
}
