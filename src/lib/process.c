/*
 * The job handler of hookq work / hookq run (see process_int.h).
 *
 * DESIGN: a job is a small state machine that runs on its loop thread and
 * never blocks it: parse the body once, then for each fetch line
 * fill -> limiter (Redis, async) -> HTTP (libcurl multi, async), then
 * deliver (HTTP async, or an exec child watched by the loop, or one log
 * line), then settle. Each step's callback starts the next one; any outcome
 * that ends the attempt settles the job and frees its state at once.
 *
 * Per loop (struct ploop): an HTTP client and a Redis connection for the
 * limiter, created on the loop thread by loop_init, which hands it to the
 * worker, and used only there: a job finds its loop's with
 * hq_job_loop_state(), so nothing is shared between threads but the
 * read-only configuration and the relaxed-atomic metrics. A loop also keeps
 * its view of each breaker target (breaker_int.h), so that a healthy
 * target's steps go on without a call to Redis.
 *
 * The limiter's grant is taken just before each call, after checking in
 * the same script that the job's lease is still ours: a worker that lost its
 * lease spends no budget. A job parked for budget at fetch i > 0 runs its
 * earlier fetches again when it comes back; the budget they spend again is
 * granted like any other, so the API's limit holds regardless.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "breaker_int.h"
#include "curl_event_int.h"
#include "deliver_int.h"
#include "json_exact_int.h"
#include "limiter_int.h"
#include "process_int.h"
#include "template_int.h"
#include "tokcmd_int.h"
#include "utf8_int.h"
#include "worker_int.h"

/* [api] token_command runs at most once per customer in this long. */
#define TOKEN_REFRESH_PERIOD_MS 30000

struct pevent {
    const struct hq__event_cfg *cfg;
    struct hq__template *const *fetch; /* cfg's, parsed by config.c */
    size_t nfetch;
    const struct hq__deliver *deliver; /* cfg's, parsed by config.c */
    int log_fd;                 /* log targets: where; -1 = none; ours if > 2 */
    char target[HQ_TARGET_MAX]; /* the breaker's name of it; "" = none (log) */
    size_t view;                /* its loop view's index (ploop.views) */
    const struct hq__sig_key *key; /* the event's or [deliver]'s; NULL = unsigned */
};

struct ploop;

struct hq__process {
    const struct hq__config *cfg;
    struct pevent *events;
    size_t nevents;
    struct hq__store_addr addr;
    struct hq__store_ns ns;
    struct hq__limit_rate rate;
    const char *base_url;      /* api.base_url without a trailing '/' */
    const char *api_target;    /* its origin, the fetches' target */
    struct hq__breaker_cfg breaker; /* threshold 0 = no breaker */
    size_t api_view;           /* api_target's loop view's index */
    size_t nviews;             /* distinct targets: each loop's views */
    hq_log_fn *log;
    hq_log_kv_fn *log_kv;      /* set: used instead of `log`, with log_arg */
    void *log_arg;
    struct hq__process_metrics m;
};

struct pjob;

struct ploop {
    struct hq__process *p;
    struct event_base *base;
    struct hq__http *http;
    struct hq__conn redis;     /* the limiter's; connects on demand */
    struct hq__breaker_view *views; /* per target (pevent.view, api_view) */
    struct pjob *jobs;         /* in flight on this loop */
    int closing;               /* loop_fini runs: callbacks do nothing */
};

struct pjob {
    hq_job *job;
    struct ploop *pl;
    const struct pevent *ev;
    struct pjob *prev, *next;
    json_t *body;              /* the webhook */
    json_t *fetched;           /* array of fetch answers so far */
    size_t next_fetch;
    char *url;                 /* the fetch in flight */
    char endpoint[1024];
    unsigned shard;            /* the job's */
    char *token;
    char call_id[48];          /* the limiter's id of the fetch in flight */
    int64_t call_at;           /* when the limiter granted it for */
    struct event *timer;       /* waits for a reserved grant's time */
    struct hq__http_call *call;
    struct hq__delivery *dl;
    struct hq__tokcmd *tc;     /* token_command running */
    const char *token_reason;  /* "401", "403" or "missing" */
    int refreshed;             /* token_command gave a token this attempt */
    int redis_wait;            /* a limiter call is in flight */
    /* The circuit breaker of the step in flight (fetch or delivery). */
    const char *target;        /* its target, or NULL when not gated */
    struct hq__breaker_view *view; /* this loop's view of it */
    void (*gated)(struct pjob *); /* the step, once the breaker says go */
    int64_t br_failures;       /* consecutive failures the check saw */
    int probe;                 /* this job probes a target that is down */
    char br_id[96];            /* "<job id>/<fence>": this attempt */
    char *br_error;            /* the failure being reported */
    int64_t started_us;        /* when the handler got the job (monotonic) */
    int64_t sent_us;           /* when the fetch in flight was sent */
};

/*
 * A line about a job: `msg` (what happened, no values in it), the job's
 * fields (key, job, customer, code, attempt), its `outcome`, `ms` (the
 * attempt so far), and NULL-terminated name, value pairs (error, ...).
 * Without a log_kv sink, one message as the worker's hq_log_fn wants it.
 */
static void plog_job(const struct pjob *pj, int level, const char *msg,
                     const char *outcome, ...);

/* A line that is about no one job (a target, a loop). */
static void
plog(struct hq__process *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
plog(struct hq__process *p, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!p->log && !p->log_kv)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->log_kv) {
        static const char *const none[] = {NULL};

        p->log_kv(level, msg, none, p->log_arg);
    } else {
        p->log(level, msg, p->log_arg);
    }
}

/* ------------------------------------------------------------------------ */

void
hq__process_rfc3339(int64_t ms, char *buf, size_t size)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;

    char tmp[96]; /* room for any int in each field */
    int n;
    size_t len;

    if (size == 0)
        return;
    gmtime_r(&s, &tm);
    n = snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    len = n < 0 ? 0 : (size_t)n;
    if (len >= size)
        len = size - 1;
    memcpy(buf, tmp, len);
    buf[len] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Set-up.                                                                  */

static void
pevent_release(struct pevent *e)
{
    if (e->log_fd > 2)
        close(e->log_fd);
}

int
hq__process_new(const struct hq__config *cfg,
               const struct hq_store_options *store,
               const struct hq__store_addr *addr, struct hq__process **out,
               char *errbuf, size_t errsize)
{
    struct hq__process *p;
    struct hq__err err = {{0}};
    int rc;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(errbuf, errsize, "out of memory");
        return HQ_ENOMEM;
    }
    p->cfg = cfg;
    p->rate.calls = cfg->api.rate_calls;
    p->rate.window_ms = cfg->api.rate_window_ms;
    p->rate.margin_ms = cfg->api.margin_ms;
    p->base_url = cfg->api.base_url.url;
    p->api_target = cfg->api.base_url.origin;
    p->breaker.threshold = cfg->deliver.breaker;
    p->breaker.probe_min_ms = cfg->deliver.probe_min_ms;
    p->breaker.probe_max_ms = cfg->deliver.probe_max_ms;
    p->addr = *addr;
    p->addr.timeout_ms = store->timeout_ms ? store->timeout_ms : 5000;
    hq__conn_probe_cluster(&p->addr);
    rc = hq__store_ns_init(&p->ns, store->ns, store->shards, &err);
    if (rc != HQ_OK) {
        snprintf(errbuf, errsize, "%s", err.msg);
        goto fail;
    }
    p->events = calloc(cfg->nevents ? cfg->nevents : 1, sizeof(*p->events));
    if (!p->events) {
        rc = HQ_ENOMEM;
        snprintf(errbuf, errsize, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->nevents; i++) {
        const struct hq__event_cfg *ec = &cfg->events[i];
        struct pevent *e = &p->events[i];

        p->nevents++;
        e->cfg = ec;
        e->fetch = ec->fetch;
        e->nfetch = ec->nfetch;
        e->key = ec->secret ? ec->secret : cfg->deliver.secret;
        e->deliver = ec->deliver_to;
        rc = hq__deliver_log_open(e->deliver, &e->log_fd, &err);
        if (rc != HQ_OK) {
            snprintf(errbuf, errsize, "[event %s] deliver: %s", ec->code,
                     err.msg);
            goto fail;
        }
        if (!hq__deliver_target(e->deliver, e->target, sizeof(e->target)))
            e->target[0] = '\0';
        /* One view per distinct target: events that share one share it. */
        e->view = p->nviews;
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->events[j].target, e->target) == 0) {
                e->view = p->events[j].view;
                break;
            }
        if (e->view == p->nviews)
            p->nviews++;
    }
    /* The fetches' target shares the view of a delivery to the same origin. */
    p->api_view = p->nviews;
    for (size_t j = 0; j < p->nevents; j++)
        if (p->api_target && strcmp(p->events[j].target, p->api_target) == 0) {
            p->api_view = p->events[j].view;
            break;
        }
    if (p->api_view == p->nviews)
        p->nviews++;
    *out = p;
    return HQ_OK;
fail:
    hq__process_free(p);
    return rc;
}

static void ploop_free(struct ploop *pl);

void
hq__process_free(struct hq__process *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nevents; i++)
        pevent_release(&p->events[i]);
    free(p->events);
    free(p);
}

const struct hq__process_metrics *
hq__process_metrics(const struct hq__process *p)
{
    return &p->m;
}

const char *
hq__process_api_result_name(int result)
{
    static const char *const names[HQ_API_NRESULTS] = {
        [HQ_API_2XX] = "2xx",   [HQ_API_429] = "429", [HQ_API_AUTH] = "401_403",
        [HQ_API_4XX] = "4xx",   [HQ_API_5XX] = "5xx", [HQ_API_ERROR] = "error",
    };

    return result >= 0 && result < HQ_API_NRESULTS ? names[result] : "unknown";
}

void
hq__process_set_log(struct hq__process *p, hq_log_fn *log, void *arg)
{
    p->log = log;
    p->log_kv = NULL;
    p->log_arg = arg;
}

void
hq__process_set_log_kv(struct hq__process *p, hq_log_kv_fn *log, void *arg)
{
    p->log = NULL;
    p->log_kv = log;
    p->log_arg = arg;
}

void
hq__process_worker_options(struct hq__process *p, struct hq_worker_options *o)
{
    o->handler = hq__process_handle;
    o->handler_arg = p;
    o->policy = hq__process_policy;
    o->policy_arg = p;
    o->loop_init = hq__process_loop_init;
    o->loop_fini = hq__process_loop_fini;
    o->loop_arg = p;
}

/* The job's [event CODE], else the catch-all [event *], else NULL. */
static const struct pevent *
find_event(const struct hq__process *p, const char *code)
{
    const struct pevent *any = NULL;

    for (size_t i = 0; i < p->nevents; i++) {
        if (strcmp(p->events[i].cfg->code, code) == 0)
            return &p->events[i];
        if (strcmp(p->events[i].cfg->code, "*") == 0)
            any = &p->events[i];
    }
    return any;
}

int
hq__process_policy(const hq_job *job, void *arg)
{
    const struct pevent *e = find_event(arg, hq_job_code(job));

    return e ? e->cfg->on_failure : HQ_ON_FAILURE_DEADLETTER;
}

/* ------------------------------------------------------------------------ */
/* Loops.                                                                   */

static void
pjob_release(struct pjob *pj)
{
    struct ploop *pl = pj->pl;

    if (pj->prev)
        pj->prev->next = pj->next;
    else
        pl->jobs = pj->next;
    if (pj->next)
        pj->next->prev = pj->prev;
    if (pj->timer)
        event_free(pj->timer);
    json_decref(pj->body);
    json_decref(pj->fetched);
    free(pj->br_error);
    free(pj->url);
    free(pj->token);
    free(pj);
}

/* Runs on the loop thread, or after the loop has stopped for good. */
static void
ploop_free(struct ploop *pl)
{
    pl->closing = 1;
    /* Pending limiter callbacks run now with no reply, and see
     * `closing`: they leave their jobs alone. */
    hq__conn_release(&pl->redis);
    while (pl->jobs) {
        struct pjob *pj = pl->jobs;

        if (pj->call)
            hq__http_cancel(pj->call);
        if (pj->dl)
            hq__deliver_cancel(pj->dl);
        if (pj->tc)
            hq__tokcmd_cancel(pj->tc);
        pjob_release(pj);
    }
    hq__http_free(pl->http);
    free(pl->views); /* after the connection: its last answers update them */
    free(pl);
}

void *
hq__process_loop_init(void *base, void *arg)
{
    struct hq__process *p = arg;
    struct ploop *pl = calloc(1, sizeof(*pl));

    if (pl && (!(pl->views = calloc(p->nviews, sizeof(*pl->views))) ||
               hq__http_new(base, &pl->http) != HQ_OK ||
               hq__conn_init(&pl->redis, base, &p->addr, &p->ns, NULL,
                             HQ_CONN_ON_DEMAND) != HQ_OK)) {
        plog(p, HQ_LOG_ERROR, "cannot set up a processing loop: out of memory");
        hq__http_free(pl->http);
        free(pl->views);
        free(pl);
        return NULL;
    }
    if (pl) {
        pl->p = p;
        pl->base = base;
    }
    return pl;
}

void
hq__process_loop_fini(void *base, void *loop_state, void *arg)
{
    (void)base;
    (void)arg;
    if (loop_state)
        ploop_free(loop_state);
}

/* ------------------------------------------------------------------------ */
/* Settling: each ends the job's state here, then tells the worker.         */

static void
plog_job(const struct pjob *pj, int level, const char *msg, const char *outcome,
         ...)
{
    struct hq__process *p = pj->pl->p;
    const hq_job *job = pj->job;
    const char *f[32];
    char attempt[16], ms[24], buf[1200];
    size_t n = 0;
    const char *k;
    va_list ap;

    if (!p->log && !p->log_kv)
        return;
    snprintf(attempt, sizeof(attempt), "%d", hq_job_attempt(job));
    snprintf(ms, sizeof(ms), "%lld",
             (long long)((hq__mono_us() - pj->started_us) / 1000));
    f[n++] = "key", f[n++] = hq_job_key(job);
    f[n++] = "job", f[n++] = hq_job_id(job);
    f[n++] = "customer", f[n++] = hq_job_customer(job);
    f[n++] = "code", f[n++] = hq_job_code(job);
    f[n++] = "attempt", f[n++] = attempt;
    f[n++] = "outcome", f[n++] = outcome;
    f[n++] = "ms", f[n++] = ms;
    va_start(ap, outcome);
    while (n + 3 < sizeof(f) / sizeof(f[0]) &&
           (k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);

        if (v == NULL)
            continue;
        f[n++] = k;
        f[n++] = v;
    }
    va_end(ap);
    f[n] = NULL;
    if (p->log_kv) {
        p->log_kv(level, msg, f, p->log_arg);
        return;
    }
    /* "job will retry: job 0-1 of 'acme:x' (attempt 2): fetch ... failed" */
    snprintf(buf, sizeof(buf), "%s: job %s of '%s' (attempt %s)", msg,
             hq_job_id(job), hq_job_key(job), attempt);
    for (size_t i = 14; i + 1 < n; i += 2) {
        size_t len = strlen(buf);

        snprintf(buf + len, sizeof(buf) - len, "; %s: %s", f[i], f[i + 1]);
    }
    p->log(level, buf, p->log_arg);
}

/*
 * A JSON string of a key, customer or code. A customer taken from a header
 * may hold bytes that are not UTF-8, which jansson refuses: those become
 * U+FFFD, rather than the payload failing on every attempt. NULL only when
 * out of memory.
 */
static json_t *
text_string(const char *s)
{
    char *clean = hq__utf8_sanitize(s, strlen(s), NULL);
    json_t *v = clean ? json_string_nocheck(clean) : NULL;

    free(clean);
    return v;
}

/* The attempt's duration, for /metrics. */
static void
attempt_ended(struct pjob *pj)
{
    hq__hist_observe(&pj->pl->p->m.attempt_duration,
                    hq__mono_us() - pj->started_us);
}

static void
settle_done(struct pjob *pj)
{
    hq_job *job = pj->job;
    struct timespec now;

    plog_job(pj, HQ_LOG_DEBUG, "job done", "done", NULL);
    attempt_ended(pj);
    /* Redis TIME at intake against this host's clock: skew shows here. */
    clock_gettime(CLOCK_REALTIME, &now);
    hq__hist_observe(&pj->pl->p->m.job_latency,
                    ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 -
                     hq_job_received_at_ms(job)) * 1000);
    pjob_release(pj);
    hq_job_done(job);
}

static void
settle_retry(struct pjob *pj, const char *error)
{
    hq_job *job = pj->job;

    plog_job(pj, HQ_LOG_INFO, "job will retry", "retry", "error", error, NULL);
    attempt_ended(pj);
    pjob_release(pj);
    hq_job_retry(job, error);
}

static void
settle_fail(struct pjob *pj, const char *error)
{
    hq_job *job = pj->job;

    plog_job(pj, HQ_LOG_WARN, "job failed", "failed", "error", error, NULL);
    attempt_ended(pj);
    pjob_release(pj);
    hq_job_fail(job, error);
}

static void
settle_park(struct pjob *pj, int64_t delay_ms)
{
    hq_job *job = pj->job;

    attempt_ended(pj);
    pjob_release(pj);
    hq_job_park(job, delay_ms);
}

/*
 * A hold for "no-token" or "token-invalid" may be overtaken by a `hookq
 * token set` (between the API's answer and the hold): settle checks the
 * customer's token when it applies such a hold and runs the key again
 * instead when the token was replaced (see on_rejected). With
 * `customer_wide`, every key of the customer is held; without, this key
 * only (a customer without a token, or whose token the API rejects, holds
 * only its keys whose event has a fetch: each finds out for itself, and
 * `token set` releases them all).
 */
static void
settle_hold(struct pjob *pj, const char *reason, int customer_wide)
{
    hq_job *job = pj->job;

    if (customer_wide)
        plog_job(pj, HQ_LOG_WARN, "customer held", "held", "reason", reason, NULL);
    else
        plog_job(pj, HQ_LOG_WARN, "key held", "held", "reason", reason, NULL);
    attempt_ended(pj);
    pjob_release(pj);
    hq_job_hold(job, reason, customer_wide);
}

/* ------------------------------------------------------------------------ */
/* The circuit breaker around a step: ask before, report after.             */

struct ok_ctx {
    struct hq__process *p;
    char target[HQ_TARGET_MAX];
};

static void
on_breaker_ok(const struct hq__breaker_answer *a, void *arg)
{
    struct ok_ctx *c = arg;

    if (a->verdict != HQ_BREAKER_ERROR && a->changed)
        plog(c->p, HQ_LOG_WARN,
             "target '%s' is up again after %lld ms down (%lld failed "
             "probes)", c->target, (long long)a->down_ms,
             (long long)a->probes);
    free(c);
}

/*
 * The target of the step in flight answered (anything but a failure the
 * breaker counts). Redis hears of it only when the check saw failures or
 * made this job the probe: a healthy target costs no report.
 */
static void
breaker_answered(struct pjob *pj)
{
    struct hq__process *p = pj->pl->p;
    struct ok_ctx *c;

    if (!pj->target || (pj->br_failures == 0 && !pj->probe))
        return;
    c = malloc(sizeof(*c));
    if (!c)
        return;
    c->p = p;
    snprintf(c->target, sizeof(c->target), "%s", pj->target);
    if (hq__breaker_ok(&pj->pl->redis, pj->view, pj->target, pj->br_id,
                       on_breaker_ok, c) != HQ_OK)
        free(c);
}

static void
on_breaker_fail(const struct hq__breaker_answer *a, void *arg)
{
    struct pjob *pj = arg;
    char error[1024];

    if (pj->pl->closing)
        return;
    /* A copy: settling frees pj, br_error with it. */
    snprintf(error, sizeof(error), "%s", pj->br_error ? pj->br_error : "failed");
    if (a->verdict == HQ_BREAKER_ERROR || a->counted) {
        if (a->verdict != HQ_BREAKER_ERROR && a->changed)
            plog(pj->pl->p, HQ_LOG_WARN,
                 "target '%s' is down after %lld consecutive failures: %s",
                 pj->target, (long long)a->n, error);
        settle_retry(pj, error);
        return;
    }
    /* Down already: a failed probe, or an attempt that began before it went
     * down. The key waits in place; no attempt is counted. */
    {
        char wait[24];

        snprintf(wait, sizeof(wait), "%lld", (long long)a->wait_ms);
        plog_job(pj, HQ_LOG_INFO, "the job waits for its target (down)", "parked",
                 "target", pj->target, "wait_ms", wait, "error", error, NULL);
    }
    settle_park(pj, a->wait_ms);
}

/*
 * The target of the step in flight failed as the breaker counts it: an
 * attempt as usual while it is up (retry), a park without one once it is
 * down. Without a breaker (or Redis), a plain retry.
 */
static void
breaker_failed(struct pjob *pj, const char *error)
{
    struct hq__process *p = pj->pl->p;

    free(pj->br_error);
    pj->br_error = strdup(error);
    if (!pj->target || !pj->br_error ||
        hq__breaker_fail(&pj->pl->redis, pj->view, pj->target,
                         pj->br_id, &p->breaker, error, on_breaker_fail,
                         pj) != HQ_OK)
        settle_retry(pj, error);
}

static void
on_gate(const struct hq__breaker_answer *a, void *arg)
{
    struct pjob *pj = arg;

    if (pj->pl->closing)
        return;
    switch (a->verdict) {
    case HQ_BREAKER_WAIT:
        settle_park(pj, a->wait_ms);
        return;
    case HQ_BREAKER_PROBE:
        pj->probe = 1;
        pj->br_failures = a->n;
        plog_job(pj, HQ_LOG_INFO, "the job probes its target (down)", "probe",
                 "target", pj->target, NULL);
        break;
    case HQ_BREAKER_GO:
        pj->br_failures = a->n;
        break;
    default:
        /* Redis failed: go on as if there were no breaker. */
        pj->target = NULL;
        break;
    }
    pj->gated(pj);
}

/*
 * Run `go` once the breaker of `target` (this loop's view `vi` of it) lets
 * this job try it: now, when the breaker is off, the step has no target or
 * the view says healthy (breaker_int.h); else after Redis's check.
 * `lease_ms`: how long a probe may take before another job may probe.
 */
static void
gate(struct pjob *pj, const char *target, size_t vi, int64_t lease_ms,
     void (*go)(struct pjob *))
{
    struct hq__process *p = pj->pl->p;
    int64_t now;
    int plan;

    pj->target = NULL;
    pj->br_failures = 0;
    pj->probe = 0;
    if (p->breaker.threshold <= 0 || !target || !*target) {
        go(pj);
        return;
    }
    pj->target = target;
    pj->view = &pj->pl->views[vi];
    pj->gated = go;
    snprintf(pj->br_id, sizeof(pj->br_id), "%s/%s", hq_job_id(pj->job),
             hq__job_fence(pj->job));
    now = hq__mono_ms();
    plan = hq__breaker_view_plan(pj->view, now);
    if (plan != HQ_BREAKER_PLAN_CHECK) {
        /* A failed peek leaves the view as it was: no harm. */
        if (plan == HQ_BREAKER_PLAN_GO_PEEK)
            hq__breaker_peek(&pj->pl->redis, pj->view, target, now);
        go(pj);
        return;
    }
    if (hq__breaker_check(&pj->pl->redis, pj->view, target, pj->br_id,
                          lease_ms, on_gate, pj) != HQ_OK) {
        pj->target = NULL;
        go(pj);
    }
}

/* ------------------------------------------------------------------------ */
/* The steps.                                                               */

static void step(struct pjob *pj);

static void
on_delivered(int outcome, int target_failed, const char *error, void *arg)
{
    struct pjob *pj = arg;
    int k = outcome == HQ_OUTCOME_DONE ? 0 : outcome == HQ_OUTCOME_RETRY ? 1 : 2;

    pj->dl = NULL;
    atomic_fetch_add_explicit(&pj->pl->p->m.deliveries[k], 1,
                              memory_order_relaxed);
    if (target_failed) {
        breaker_failed(pj, error ? error : "delivery failed");
        return;
    }
    breaker_answered(pj);
    if (outcome == HQ_OUTCOME_DONE)
        settle_done(pj);
    else if (outcome == HQ_OUTCOME_RETRY)
        settle_retry(pj, error);
    else
        settle_fail(pj, error);
}

/*
 * The payload of DESIGN §3.4 step 2. `data` is copied from the webhook's
 * own bytes (compacted), not dumped from the tree, so that every number
 * keeps its exact text (json_exact_int.h). NULL when out of memory.
 */
static char *
build_payload(struct pjob *pj, size_t *len)
{
    hq_job *job = pj->job;
    char when[40], *head = NULL, *fetched = NULL, *data = NULL, *out = NULL;
    const char *body;
    size_t blen, dlen = 0, hlen, flen;
    json_t *doc;

    hq__process_rfc3339(hq_job_received_at_ms(job), when, sizeof(when));
    doc = json_pack("{s:s, s:o, s:o, s:o, s:I, s:I, s:s}", "id",
                    hq_job_id(job), "key", text_string(hq_job_key(job)), "customer",
                    text_string(hq_job_customer(job)), "code",
                    text_string(hq_job_code(job)), "seq",
                    (json_int_t)hq_job_seq(job), "attempt",
                    (json_int_t)hq_job_attempt(job), "received_at", when);
    head = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    fetched = json_dumps(pj->fetched, JSON_COMPACT);
    body = hq_job_body(job, &blen);
    if (!head || !fetched ||
        hq__json_member_raw(body, blen, "data", &data, &dlen) != 0)
        goto out;
    hlen = strlen(head) - 1; /* without its '}' */
    flen = strlen(fetched);
    *len = hlen + strlen(",\"data\":") + (data ? dlen : 4) +
           strlen(",\"fetched\":") + flen + 1;
    out = malloc(*len + 1);
    if (!out)
        goto out;
    snprintf(out, *len + 1, "%.*s,\"data\":%s,\"fetched\":%s}", (int)hlen,
             head, data ? data : "null", fetched);
out:
    free(head);
    free(fetched);
    free(data);
    return out;
}

/* [event] timeout, which config.c made [deliver]'s when unset. */
static int64_t
delivery_timeout(const struct pjob *pj)
{
    return pj->ev->cfg->timeout_ms;
}

static void
deliver_now(struct pjob *pj)
{
    hq_job *job = pj->job;
    struct hq__delivery_job dj;
    struct hq__err err = {{0}};
    char *payload;
    size_t payload_len = 0;
    int rc;

    payload = build_payload(pj, &payload_len);
    if (!payload) {
        settle_retry(pj, "out of memory building the payload");
        return;
    }
    memset(&dj, 0, sizeof(dj));
    dj.id = hq_job_id(job);
    dj.key = hq_job_key(job);
    dj.seq = hq_job_seq(job);
    dj.attempt = hq_job_attempt(job);
    dj.payload = payload;
    dj.payload_len = payload_len;
    dj.timeout_ms = delivery_timeout(pj);
    dj.key_sig = pj->ev->key;
    dj.log_fd = pj->ev->log_fd;
    /* For log targets the callback runs (and frees pj) before this returns. */
    rc = hq__deliver_start(pj->ev->deliver, pj->pl->base, pj->pl->http, &dj,
                           on_delivered, pj, &pj->dl, &err);
    free(payload);
    if (rc == HQ_ENOMEM)
        settle_retry(pj, err.msg);
    else if (rc != HQ_OK)
        settle_fail(pj, err.msg);
}

static void
deliver(struct pjob *pj)
{
    /* A probe may take the whole timeout: others wait that long, plus 5 s. */
    gate(pj, pj->ev->target, pj->ev->view, delivery_timeout(pj) + 5000,
         deliver_now);
}

static void
on_rejected(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pjob *pj = privdata;

    (void)ac;
    (void)reply;
    if (pj->pl->closing)
        return;
    settle_hold(pj, "token-invalid", 0);
}

/* ------------------------------------------------------------------------ */
/* Token refresh (DESIGN §3.4 step 4).                                      */

static void fetch(struct pjob *pj);

/*
 * No fresh token: hold this key, as without token_command (G8). Only the
 * key: the customer's keys without a fetch go on, and each of its other
 * keys with a fetch meets the same 401 (or no token) and is held in turn.
 */
static void
token_hold(struct pjob *pj)
{
    if (strcmp(pj->token_reason, "missing") == 0) {
        settle_hold(pj, "no-token", 0);
        return;
    }
    /* Hold once Redis knows which token was rejected (on_rejected). */
    if (hq__limit_rejected(&pj->pl->redis, pj->shard,
                           hq_job_customer(pj->job), pj->token, on_rejected,
                           pj) != HQ_OK)
        settle_hold(pj, "token-invalid", 0);
}

static void
on_token_stored(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pjob *pj = privdata;
    redisReply *r = reply;

    (void)ac;
    if (pj->pl->closing)
        return;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        plog(pj->pl->p, HQ_LOG_WARN,
             "customer '%s': cannot store the token of token_command: %s",
             hq_job_customer(pj->job), r ? r->str : "redis connection lost");
        token_hold(pj);
        return;
    }
    plog(pj->pl->p, HQ_LOG_INFO, "customer '%s': token_command gave a new "
         "token (%s)", hq_job_customer(pj->job), pj->token_reason);
    /* The call again, with the new token; no attempt counted. */
    pj->refreshed = 1;
    fetch(pj);
}

/* token_command's outcome; the token is never logged. */
static void
on_token(const char *token, size_t len, const char *why, void *arg)
{
    struct pjob *pj = arg;
    const char *argv[2];
    size_t lens[2];

    pj->tc = NULL;
    if (!token) {
        plog(pj->pl->p, HQ_LOG_WARN, "customer '%s': token_command %s",
             hq_job_customer(pj->job), why);
        token_hold(pj);
        return;
    }
    argv[0] = hq_job_customer(pj->job);
    argv[1] = token;
    lens[0] = strlen(argv[0]);
    lens[1] = len;
    if (hq__conn_eval(&pj->pl->redis, pj->shard, "token_set", 2, argv, lens,
                      on_token_stored, pj) != HQ_OK)
        token_hold(pj);
}

static void
on_refresh_claim(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pjob *pj = privdata;
    struct hq__process *p = pj->pl->p;
    redisReply *r = reply;
    struct hq__err err = {{0}};

    (void)ac;
    if (pj->pl->closing)
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[0]->integer != 1) {
        token_hold(pj); /* ran within the period, or Redis failed */
        return;
    }
    plog(p, HQ_LOG_INFO, "customer '%s': running token_command (%s)",
         hq_job_customer(pj->job), pj->token_reason);
    if (hq__tokcmd_start(pj->pl->base, p->cfg->api.token_command,
                         hq_job_customer(pj->job), pj->token_reason,
                         p->cfg->api.timeout_ms, on_token, pj, &pj->tc,
                         &err) != HQ_OK) {
        plog(p, HQ_LOG_WARN, "customer '%s': token_command: %s",
             hq_job_customer(pj->job), err.msg);
        token_hold(pj);
    }
}

/*
 * The customer's token is missing or was rejected (pj->token_reason): with
 * [api] token_command, ask Redis whether it may run (once per customer per
 * TOKEN_REFRESH_PERIOD_MS across all workers), run it, store its token as
 * `hookq token set` does and make the call again; else hold.
 */
static void
token_problem(struct pjob *pj)
{
    struct hq__process *p = pj->pl->p;

    if (!p->cfg->api.token_command || pj->refreshed) {
        token_hold(pj);
        return;
    }
    if (hq__limit_refresh(&pj->pl->redis, pj->shard, hq_job_customer(pj->job),
                          TOKEN_REFRESH_PERIOD_MS, on_refresh_claim,
                          pj) != HQ_OK)
        token_hold(pj);
}

/* The fetch's answer and duration, for /metrics. */
static void
count_call(struct pjob *pj, const struct hq__http_response *r)
{
    struct hq__process_metrics *m = &pj->pl->p->m;
    int k = r->failure != HQ_HTTP_OK                  ? HQ_API_ERROR
            : r->status == 429                        ? HQ_API_429
            : r->status == 401 || r->status == 403    ? HQ_API_AUTH
            : r->status >= 200 && r->status < 300     ? HQ_API_2XX
            : r->status >= 400 && r->status < 500     ? HQ_API_4XX
                                                      : HQ_API_5XX;

    atomic_fetch_add_explicit(&m->api_calls[k], 1, memory_order_relaxed);
    hq__hist_observe(&m->api_duration, hq__mono_us() - pj->sent_us);
}

static void
on_fetched(const struct hq__http_response *r, void *arg)
{
    struct pjob *pj = arg;
    const struct hq__template *t = pj->ev->fetch[pj->next_fetch];
    char msg[600];
    json_t *v;

    pj->call = NULL;
    count_call(pj, r);
    if (r->failure != HQ_HTTP_OK) {
        snprintf(msg, sizeof(msg), "fetch %s %s: %s", hq__template_method(t),
                 pj->url, r->error);
        breaker_failed(pj, msg);
        return;
    }
    snprintf(msg, sizeof(msg), "fetch %s %s answered %d%s%.*s",
             hq__template_method(t), pj->url, r->status,
             r->body_len ? ": " : "",
             (int)(r->body_len > 200 ? 200 : r->body_len), r->body);
    if (r->status >= 500) {
        breaker_failed(pj, msg);
        return;
    }
    breaker_answered(pj);
    if (r->status >= 200 && r->status < 300) {
        v = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
        if (!v)
            v = json_stringn_nocheck(r->body, r->body_len);
        if (!v || json_array_append_new(pj->fetched, v)) {
            settle_retry(pj, "out of memory keeping a fetch answer");
            return;
        }
        pj->next_fetch++;
        step(pj);
    } else if (r->status == 429) {
        int64_t delay = hq__limit_backoff_429(&pj->pl->p->rate,
                                              r->retry_after_ms);

        hq__limit_block(&pj->pl->redis, pj->shard, pj->token, pj->endpoint,
                        delay, &pj->pl->p->rate);
        {
            char wait[24];

            snprintf(wait, sizeof(wait), "%lld", (long long)delay);
            plog_job(pj, HQ_LOG_INFO, "api rate limited (429): the key waits",
                     "parked", "endpoint", pj->endpoint, "wait_ms", wait,
                     "error", msg, NULL);
        }
        settle_park(pj, delay);
    } else if (r->status == 401 || r->status == 403) {
        pj->token_reason = r->status == 401 ? "401" : "403";
        token_problem(pj);
    } else if (r->status >= 400 && r->status < 500) {
        settle_fail(pj, msg);
    } else {
        settle_retry(pj, msg);
    }
}

/* The granted request leaves now: the limiter records its real time. */
static void
on_send(void *arg)
{
    struct pjob *pj = arg;

    hq__limit_sent(&pj->pl->redis, pj->shard, pj->token, pj->endpoint,
                   pj->call_id, pj->call_at, &pj->pl->p->rate);
}

static void
send_fetch(struct pjob *pj)
{
    const struct hq__template *t = pj->ev->fetch[pj->next_fetch];
    struct hq__http_request req;
    struct hq__err err = {{0}};
    char auth[1100];
    const char *headers[2];

    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", pj->token);
    headers[0] = auth;
    headers[1] = "Accept: application/json";
    memset(&req, 0, sizeof(req));
    req.method = hq__template_method(t);
    req.url = pj->url;
    req.headers = headers;
    req.nheaders = 2;
    req.timeout_ms = pj->pl->p->cfg->api.timeout_ms;
    req.on_send = on_send;
    pj->sent_us = hq__mono_us();
    if (hq__http_send(pj->pl->http, &req, on_fetched, pj, &pj->call, &err) !=
        HQ_OK)
        settle_retry(pj, err.msg);
}

static void
on_reserved_time(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_fetch(arg);
}

static void
on_grant(const struct hq__limit_answer *a, void *arg)
{
    struct pjob *pj = arg;
    char msg[300];
    struct timeval tv;

    if (pj->pl->closing)
        return;
    pj->redis_wait = 0;
    switch (a->verdict) {
    case HQ_LIMIT_WAIT:
        /* Come back a little early: the grant is then reserved on time. */
        settle_park(pj, a->wait_ms > HQ_LIMIT_EARLY_MS + 1
                            ? a->wait_ms - HQ_LIMIT_EARLY_MS
                            : 1);
        return;
    case HQ_LIMIT_STALE:
        /* The lease moved on: whatever we settle is answered stale. */
        settle_park(pj, 0);
        return;
    case HQ_LIMIT_NO_TOKEN:
        pj->token_reason = "missing";
        token_problem(pj);
        return;
    case HQ_LIMIT_ERROR:
        snprintf(msg, sizeof(msg), "rate limiter: %s", a->error);
        settle_retry(pj, msg);
        return;
    }
    free(pj->token);
    pj->token = strndup(a->token, a->token_len);
    if (!pj->token || a->token_len > 1000) {
        settle_retry(pj, pj->token ? "token too long" : "out of memory");
        return;
    }
    pj->call_at = a->at_ms;
    if (a->wait_ms <= 0) {
        send_fetch(pj);
        return;
    }
    /* A reserved grant: call at its time, at most the look-ahead away. */
    if (!pj->timer)
        pj->timer = evtimer_new(pj->pl->base, on_reserved_time, pj);
    if (!pj->timer) {
        settle_retry(pj, "out of memory");
        return;
    }
    tv.tv_sec = 0;
    tv.tv_usec = (suseconds_t)(a->wait_ms > HQ_LIMIT_LOOKAHEAD_MS
                                   ? HQ_LIMIT_LOOKAHEAD_MS
                                   : a->wait_ms) * 1000;
    evtimer_add(pj->timer, &tv);
}

static void take(struct pjob *pj);

static void
fetch(struct pjob *pj)
{
    struct hq__process *p = pj->pl->p;
    const struct hq__template *t = pj->ev->fetch[pj->next_fetch];
    hq_job *job = pj->job;
    struct hq__err err = {{0}};
    char *path = NULL, msg[600];
    size_t len;
    int rc;

    rc = hq__template_fill(t, json_object_get(pj->body, "data"),
                           hq_job_customer(job), hq_job_code(job), &path,
                           &err);
    if (rc != HQ_OK) {
        snprintf(msg, sizeof(msg), "fetch %zu (%s): %s", pj->next_fetch + 1,
                 hq__template_route(t), err.msg);
        if (rc == HQ_ENOMEM)
            settle_retry(pj, msg);
        else
            settle_fail(pj, msg);
        return;
    }
    free(pj->url);
    len = strlen(p->base_url) + strlen(path) + 1;
    pj->url = malloc(len);
    if (!pj->url) {
        free(path);
        settle_retry(pj, "out of memory");
        return;
    }
    snprintf(pj->url, len, "%s%s", p->base_url, path);
    free(path);
    if (hq__limit_endpoint(p->cfg->api.endpoint == HQ_ENDPOINT_ROUTE,
                           hq__template_route(t), hq__template_method(t),
                           pj->url, pj->endpoint,
                           sizeof(pj->endpoint)) != HQ_OK) {
        settle_fail(pj, "fetch url too long");
        return;
    }
    gate(pj, p->api_target, p->api_view, p->cfg->api.timeout_ms + 5000, take);
}

/* Ask the limiter for the fetch's call (the breaker let it try). */
static void
take(struct pjob *pj)
{
    struct hq__process *p = pj->pl->p;
    hq_job *job = pj->job;
    int rc;

    pj->redis_wait = 1;
    snprintf(pj->call_id, sizeof(pj->call_id), "%s/%zu", hq__job_fence(job),
             pj->next_fetch);
    rc = hq__limit_take(&pj->pl->redis, pj->shard, hq_job_key(job), hq__job_fence(job),
                        hq_job_customer(job), pj->endpoint, pj->call_id,
                        &p->rate, HQ_LIMIT_LOOKAHEAD_MS, on_grant, pj);
    if (rc != HQ_OK) {
        pj->redis_wait = 0;
        settle_retry(pj, "rate limiter: redis unavailable");
    }
}

static void
step(struct pjob *pj)
{
    if (pj->next_fetch < pj->ev->nfetch)
        fetch(pj);
    else
        deliver(pj);
}

void
hq__process_handle(hq_job *job, void *arg)
{
    struct hq__process *p = arg;
    struct ploop *pl;
    struct pjob *pj;
    json_error_t jerr;
    const char *body;
    size_t len;
    char msg[300];

    pl = hq_job_loop_state(job); /* NULL: its loop_init failed */
    pj = pl ? calloc(1, sizeof(*pj)) : NULL;
    if (!pj) {
        hq_job_retry(job, "out of memory");
        return;
    }
    pj->job = job;
    pj->pl = pl;
    pj->started_us = hq__mono_us();
    pj->next = pl->jobs;
    if (pl->jobs)
        pl->jobs->prev = pj;
    pl->jobs = pj;

    pj->ev = find_event(p, hq_job_code(job));
    if (!pj->ev) {
        snprintf(msg, sizeof(msg), "no [event %s] section", hq_job_code(job));
        settle_fail(pj, msg);
        return;
    }
    hq_job_set_policy(job, pj->ev->cfg->on_failure);
    body = hq_job_body(job, &len);
    pj->body = hq__json_loadb_exact(body, len, 0, &jerr);
    if (!pj->body || !json_is_object(pj->body)) {
        snprintf(msg, sizeof(msg), "the stored webhook is not a JSON object: "
                 "%s", pj->body ? "not an object" : jerr.text);
        settle_fail(pj, msg);
        return;
    }
    pj->fetched = json_array();
    if (!pj->fetched) {
        settle_retry(pj, "out of memory");
        return;
    }
    pj->shard = hq__job_shard(job);
    step(pj);
}
