/*
 * The daemon's admin routes (DESIGN §3.5; see admin_api.h and
 * docs/operations.md): /healthz, /metrics, the JSON API the dashboard
 * uses, and the dashboard page itself, registered on the admin listener
 * (admin_http.c) by hk_admin_api_attach().
 *
 * Everything runs on the admin thread, one request at a time, so the one
 * synchronous hq_client here needs no lock; it reconnects by itself after
 * Redis comes back. Its timeout is short (ADMIN_TIMEOUT_MS): a scrape
 * during an outage answers quickly, with hookq_redis_up 0 and the counters
 * this process keeps in memory.
 *
 * /healthz keeps a connection of its own (an hq__sconn: the store's
 * connect, so URLs, AUTH and SELECT behave as everywhere else) and sends
 * PING with a 1 s timeout; a failed PING drops the connection, and the
 * next request connects again, so recovery needs no restart. A Redis over
 * its maxmemory (noeviction) answers PING but refuses every enqueue. To
 * tell, /healthz also runs OOM_PROBE: a script that writes nothing but,
 * having no flags after its shebang, counts as one that may write, which
 * Redis 7 refuses before running it exactly when it refuses writes for
 * memory ("OOM command not allowed ..."). /metrics reads the same state
 * (hookq_redis_oom).
 *
 * The throughput graph's samples are taken here too: a tick on the admin
 * thread reads the queue's counters every SAMPLE_MS into a ring of
 * NSAMPLES, 15 minutes, which GET /api/throughput turns into rates. They are
 * Redis's counters (every process's), so every admin listener draws the
 * same graph, and a sample missed while Redis is down is only a gap.
 *
 * The POST routes change the queue. They want a JSON body with
 * Content-Type: application/json, which a browser cannot send to another
 * origin without a CORS preflight that this server never grants: a page
 * elsewhere cannot retry or release anything through the operator's browser.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "admin_api.h"
#include "conn_int.h"
#include "intake.h"
#include "metrics_int.h"
#include "process_int.h"

#include "banned_int.h"

#define ADMIN_TIMEOUT_MS 2000
#define PING_TIMEOUT_MS 1000 /* /healthz */
#define OOM_PROBE "#!lua\nreturn 1"
#define TOP_DEFAULT 20
#define TOP_MAX 1000
#define DLQ_DEFAULT 100
#define DLQ_MAX 10000
#define RATE_MIN_MS 1000   /* /api/stats: rates over at least this */
#define RATE_MAX_MS 60000  /* and at most this */
#define SAMPLE_MS 5000     /* the throughput graph's resolution */
#define NSAMPLES 181       /* 15 minutes of SAMPLE_MS intervals, and one */
#define PEEK_DEFAULT 10    /* GET /api/keys/KEY: payloads shown */
#define PEEK_MAX 100

extern const char hk_dashboard_html[];
extern const size_t hk_dashboard_html_len;

/* One throughput sample: Redis's counters (every process's) at `time_ms`. */
struct sample {
    int64_t time_ms;   /* Redis TIME */
    int64_t accepted;  /* counter accepted */
    int64_t processed; /* counter done */
    int64_t failed;    /* counters retried + deadlettered: failed attempts */
};

/* What Redis says to this process (redis_state()). */
enum { REDIS_DOWN = 0, REDIS_UP = 1, REDIS_OOM = 2 };

struct hk_admin_api {
    hq_client *client;
    /* /healthz's connection, made when needed, on addr and ns. */
    struct hq__store_addr addr;
    struct hq__store_ns ns; /* the shards /healthz checks on a cluster */
    struct hq__sconn redis;
    /* What this process runs (each may be NULL). */
    struct hk_intake *intake;
    hq_worker *worker;
    struct hq__process *process;
    struct sample ring[NSAMPLES]; /* oldest at ring[head] once full */
    size_t head, nring;
    /*
     * Samples kept for /api/stats's rates: `last` and the one before it,
     * each at least RATE_MIN_MS newer than the one it replaced, so that a
     * caller polling right after another still gets a rate over a second
     * or more.
     */
    struct hq_stats old, last;
    int have_old, have_last;
};

/* ------------------------------------------------------------------------ */
/* Answers.                                                                 */

static void
reply_client_error(struct evhttp_request *req, struct hk_admin_api *api,
                   int rc)
{
    const char *msg = hq_client_errmsg(api->client);

    if (rc == HQ_ENOTFOUND)
        hk_admin_reply_error(req, 404, "not_found", msg);
    else if (rc == HQ_EINVAL)
        hk_admin_reply_error(req, 409, "conflict", msg);
    else if (rc == HQ_ENOMEM)
        hk_admin_reply_error(req, 500, "out_of_memory", msg);
    else
        hk_admin_reply_error(req, 503, "redis_unavailable", msg);
}

/* The query parameter `name` copied into `out`; "" when absent. -1: 400 sent. */
static int
query_string(struct evhttp_request *req, const char *name, char *out,
             size_t size)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params = {0};
    const char *v;

    out[0] = '\0';
    if (q == NULL)
        return 0;
    if (evhttp_parse_query_str(q, &params) != 0) {
        hk_admin_reply_error(req, 400, "bad_request", "malformed query string");
        return -1;
    }
    v = evhttp_find_header(&params, name);
    if (v != NULL)
        snprintf(out, size, "%s", v);
    evhttp_clear_headers(&params);
    return 0;
}

/*
 * The query parameter `name` as a count in [0, max], `dflt` when absent.
 * Answers 400 and returns -1 when it is not one.
 */
static long
query_count(struct evhttp_request *req, const char *name, long dflt, long max)
{
    char v[48], msg[160], *end;
    long n;

    if (query_string(req, name, v, sizeof(v)) < 0)
        return -1;
    if (v[0] == '\0')
        return dflt;
    n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 0 || n > max) {
        snprintf(msg, sizeof(msg), "%s wants a count from 0 to %ld, not "
                 "'%.40s'", name, max, v);
        hk_admin_reply_error(req, 400, "bad_request", msg);
        return -1;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* GET /healthz                                                             */

/* REDIS_UP when Redis answered PING and takes writes; else REDIS_DOWN or
 * REDIS_OOM with the reason in `why`. */
static int
redis_state(struct hk_admin_api *api, char *why, size_t size)
{
    struct hq__err e;
    redisContext *rc;
    redisReply *r;
    int ok;

    if (api->addr.cluster) {
        /* A Redis Cluster: the master of every shard must answer. */
        if (!hq__sconn_ping(&api->redis, why, size))
            return REDIS_DOWN;
        goto intake_oom;
    }
    rc = hq__sconn_for_shard(&api->redis, 0, &e);
    if (rc == NULL) {
        snprintf(why, size, "%s", e.msg);
        return REDIS_DOWN;
    }
    r = redisCommand(rc, "PING");
    ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
         strcmp(r->str, "PONG") == 0;
    if (!ok)
        snprintf(why, size, "%s",
                 r == NULL                      ? rc->errstr
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply");
    if (r != NULL)
        freeReplyObject(r);
    if (!ok) {
        hq__sconn_release(&api->redis);
        return REDIS_DOWN;
    }
    r = redisCommand(rc, "EVAL %s 0", OOM_PROBE);
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "OOM ", 4) == 0) {
        snprintf(why, size, "%s", r->str);
        freeReplyObject(r);
        return REDIS_OOM;
    }
    /* Any other answer (a Redis before 7 runs the shebang as a comment) is
     * not a refusal for memory; a lost connection shows at the next PING. */
    if (r != NULL)
        freeReplyObject(r);
    /* Near the limit, a small probe may pass while a batch of webhooks
     * (whose bytes Redis counts while it reads them) is refused: the
     * intake's last answer from Redis says so. */
intake_oom:
    if (api->intake != NULL) {
        struct hk_intake_stats st;

        hk_intake_stats(api->intake, &st);
        if (st.redis_oom) {
            snprintf(why, size, "the intake's last enqueue was refused: "
                                "OOM command not allowed when used memory > 'maxmemory'");
            return REDIS_OOM;
        }
    }
    return REDIS_UP;
}

static void
healthz(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    char why[300], body[700];
    size_t n = 0;
    int state;

    (void)a;
    state = redis_state(api, why, sizeof(why));
    if (state == REDIS_UP) {
        static const char ok[] = "{\"status\":\"ok\"}\n";

        hk_admin_reply(req, 200, "application/json", ok, sizeof(ok) - 1);
        return;
    }
    /* The reason names the address, never the password (store's messages). */
    n += (size_t)snprintf(body, sizeof(body), "{\"status\":\"%s\",\"detail\":\"",
                          state == REDIS_OOM ? "redis_oom" : "unavailable");
    for (const char *p = why; *p && n + 8 < sizeof(body); p++) {
        if (*p == '"' || *p == '\\')
            body[n++] = '\\';
        body[n++] = (unsigned char)*p < 0x20 ? ' ' : *p;
    }
    n += (size_t)snprintf(body + n, sizeof(body) - n, "\"}\n");
    /* Out of memory: an intake refuses every webhook (503), so it is not
     * healthy; a worker still drains, which is what frees the memory, so a
     * process without an intake says so but answers 200. */
    hk_admin_reply(req, state == REDIS_OOM && api->intake == NULL ? 200 : 503,
                   "application/json", body, n);
}

/* ------------------------------------------------------------------------ */
/* GET /metrics                                                             */

static void
metrics_intake(struct hq__prom *p, struct hk_intake *in)
{
    struct hk_intake_stats st;
    struct hq__hist_snap lat;
    char labels[80];

    hk_intake_stats(in, &st);
    hk_intake_latency(in, &lat);
    hq__prom_family(p, "hookq_intake_requests_total", "counter",
                   "Webhooks answered 2xx by this process: accepted (202, "
                   "stored) or duplicate (200).");
    hq__prom_sample(p, "hookq_intake_requests_total", "result=\"accepted\"",
                   (double)st.accepted);
    hq__prom_sample(p, "hookq_intake_requests_total", "result=\"duplicate\"",
                   (double)st.duplicate);
    hq__prom_family(p, "hookq_intake_rejected_total", "counter",
                   "Requests this process refused, by reason.");
    for (int r = 0; r < HQ_INTAKE_NREASONS; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"",
                 hk_intake_reason_name(r));
        hq__prom_sample(p, "hookq_intake_rejected_total", labels,
                       (double)st.rejected[r]);
    }
    hq__prom_family(p, "hookq_intake_connections", "gauge",
                   "Client connections open now.");
    hq__prom_sample(p, "hookq_intake_connections", NULL, (double)st.connections);
    hq__prom_family(p, "hookq_intake_request_duration_seconds", "histogram",
                   "From a complete request to its answer written; for a "
                   "stored job, the Redis round trip.");
    hq__prom_hist(p, "hookq_intake_request_duration_seconds", NULL, &lat);
}

static void
metrics_worker(struct hq__prom *p, hq_worker *w)
{
    struct hq_worker_stats st;
    static const char *const outcomes[] = {"done", "retried", "parked",
                                           "deadlettered", "held", "released",
                                           "stale"};
    uint64_t v[7];
    char labels[64];

    hq_worker_stats(w, &st);
    v[0] = st.done;
    v[1] = st.retried;
    v[2] = st.parked;
    v[3] = st.dead;
    v[4] = st.held;
    v[5] = st.released;
    v[6] = st.stale;
    hq__prom_family(p, "hookq_worker_claimed_total", "counter",
                   "Jobs this process leased.");
    hq__prom_sample(p, "hookq_worker_claimed_total", NULL, (double)st.claimed);
    hq__prom_family(p, "hookq_worker_settled_total", "counter",
                   "Jobs this process settled, by outcome (stale: rejected "
                   "because the lease had moved on).");
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcomes[i]);
        hq__prom_sample(p, "hookq_worker_settled_total", labels, (double)v[i]);
    }
    hq__prom_family(p, "hookq_worker_in_flight", "gauge",
                   "Jobs leased by this process and not yet settled.");
    hq__prom_sample(p, "hookq_worker_in_flight", NULL, (double)st.in_flight);
    hq__prom_family(p, "hookq_worker_redis_errors_total", "counter",
                   "Failed worker calls and lost Redis connections.");
    hq__prom_sample(p, "hookq_worker_redis_errors_total", NULL,
                   (double)st.redis_errors);
}

static void
metrics_process(struct hq__prom *p, struct hq__process *proc)
{
    const struct hq__process_metrics *m = hq__process_metrics(proc);
    static const char *const delivered[] = {"done", "retry", "failed"};
    struct hq__hist_snap s;
    char labels[64];

    hq__prom_family(p, "hookq_api_calls_total", "counter",
                   "Fetches from the service's API, by answer (429: the "
                   "(token, endpoint) was slowed down).");
    for (int r = 0; r < HQ_API_NRESULTS; r++) {
        snprintf(labels, sizeof(labels), "result=\"%s\"",
                 hq__process_api_result_name(r));
        hq__prom_sample(p, "hookq_api_calls_total", labels,
                       (double)atomic_load_explicit(&m->api_calls[r],
                                                    memory_order_relaxed));
    }
    memset(&s, 0, sizeof(s));
    hq__hist_add(&s, &m->api_duration);
    hq__prom_family(p, "hookq_api_call_duration_seconds", "histogram",
                   "A fetch, from sent to answered.");
    hq__prom_hist(p, "hookq_api_call_duration_seconds", NULL, &s);
    hq__prom_family(p, "hookq_deliveries_total", "counter",
                   "Deliveries to the application, by result.");
    for (size_t i = 0; i < 3; i++) {
        snprintf(labels, sizeof(labels), "result=\"%s\"", delivered[i]);
        hq__prom_sample(p, "hookq_deliveries_total", labels,
                       (double)atomic_load_explicit(&m->deliveries[i],
                                                    memory_order_relaxed));
    }
    memset(&s, 0, sizeof(s));
    hq__hist_add(&s, &m->attempt_duration);
    hq__prom_family(p, "hookq_job_attempt_duration_seconds", "histogram",
                   "One attempt at a job: fetches and delivery, until it "
                   "settled (done, retry, park, fail or hold).");
    hq__prom_hist(p, "hookq_job_attempt_duration_seconds", NULL, &s);
    memset(&s, 0, sizeof(s));
    hq__hist_add(&s, &m->job_latency);
    hq__prom_family(p, "hookq_job_latency_seconds", "histogram",
                   "From the webhook's arrival (Redis TIME) to its delivery "
                   "(this host's clock).");
    hq__prom_hist(p, "hookq_job_latency_seconds", NULL, &s);
}

static void
metrics_queue(struct hq__prom *p, const struct hq_stats *s)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } gauges[] = {
#define G(f, n, h) {n, h, offsetof(struct hq_shard_stats, f)}
        G(jobs, "hookq_queue_jobs", "Jobs stored, running ones included."),
        G(ready_keys, "hookq_queue_ready_keys", "Keys waiting for a worker."),
        G(active, "hookq_queue_active_keys",
          "Keys leased by a worker (jobs in flight, every process)."),
        G(parked, "hookq_queue_parked_keys",
          "Keys waiting for a due time (backoff, rate limit)."),
        G(held, "hookq_queue_held_keys", "Keys held until released."),
        G(dead_letters, "hookq_queue_dead_letters", "Dead letters kept."),
#undef G
    };
    char labels[64], name[80];

    for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++) {
        hq__prom_family(p, gauges[g].name, "gauge", gauges[g].help);
        for (unsigned i = 0; i < s->nshards; i++) {
            const char *base = (const char *)&s->shards[i];
            int64_t v;

            memcpy(&v, base + gauges[g].off, sizeof(v));
            snprintf(labels, sizeof(labels), "shard=\"%u\"", i);
            hq__prom_sample(p, gauges[g].name, labels, (double)v);
        }
    }
    hq__prom_family(p, "hookq_oldest_job_age_seconds", "gauge",
                   "Age of the oldest job waiting for a worker (ready, or "
                   "parked and due); 0 when none waits. It grows when no "
                   "worker takes anything.");
    for (unsigned i = 0; i < s->nshards; i++) {
        int64_t ms = s->shards[i].oldest_age_ms;

        snprintf(labels, sizeof(labels), "shard=\"%u\"", i);
        hq__prom_sample(p, "hookq_oldest_job_age_seconds", labels,
                       ms > 0 ? (double)ms / 1000.0 : 0.0);
    }
    hq__prom_family(p, "hookq_queue_events_total", "counter",
                   "Every process's counts since the namespace was made "
                   "(accepted, done, retried, deadlettered, ...).");
    for (size_t i = 0; i < s->ncounters; i++) {
        char quoted[sizeof(name)];

        snprintf(labels, sizeof(labels), "event=%s",
                 hq__prom_label(s->counters[i].name, quoted, sizeof(quoted)));
        hq__prom_sample(p, "hookq_queue_events_total", labels,
                       (double)s->counters[i].value);
    }
    hq__prom_family(p, "hookq_target_up", "gauge",
                   "1 while a delivery or fetch target is up, 0 while its "
                   "circuit breaker holds it down.");
    for (size_t i = 0; i < s->ntargets; i++) {
        char quoted[2 * sizeof(s->targets[i].target) + 3];
        char tl[sizeof(quoted) + 16];

        snprintf(tl, sizeof(tl), "target=%s",
                 hq__prom_label(s->targets[i].target, quoted, sizeof(quoted)));
        hq__prom_sample(p, "hookq_target_up", tl, s->targets[i].up ? 1 : 0);
    }
}

static void
metrics(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq__prom p = {0};
    struct hq_stats s;
    char version[96], quoted[80];
    int up;

    (void)a;
    up = hq_client_stats(api->client, 0, &s) == HQ_OK;
    snprintf(version, sizeof(version), "version=%s",
             hq__prom_label(hq_version(), quoted, sizeof(quoted)));
    hq__prom_family(&p, "hookq_build_info", "gauge",
                   "1, with this binary's version as a label.");
    hq__prom_sample(&p, "hookq_build_info", version, 1);
    hq__prom_process(&p);
    hq__prom_family(&p, "hookq_redis_up", "gauge",
                   "1 when Redis answered this scrape's queue sample.");
    hq__prom_sample(&p, "hookq_redis_up", NULL, up);
    {
        char why[300];

        hq__prom_family(&p, "hookq_redis_oom", "gauge",
                       "1 when Redis is over its maxmemory and refuses "
                       "writes: every webhook is answered 503.");
        hq__prom_sample(&p, "hookq_redis_oom", NULL,
                       redis_state(api, why, sizeof(why)) == REDIS_OOM);
    }
    if (up) {
        struct hq_worker_list wl;

        metrics_queue(&p, &s);
        hq_stats_release(&s);
        if (hq_client_workers(api->client, &wl) == HQ_OK) {
            hq__prom_family(&p, "hookq_workers", "gauge",
                           "Worker processes of the namespace seen within the "
                           "last 5 s (hookq workers).");
            hq__prom_sample(&p, "hookq_workers", NULL, (double)wl.n);
            hq_worker_list_release(&wl);
        }
    }
    if (api->intake != NULL)
        metrics_intake(&p, api->intake);
    if (api->worker != NULL)
        metrics_worker(&p, api->worker);
    if (api->process != NULL)
        metrics_process(&p, api->process);
    if (p.oom) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    hk_admin_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", p.buf, p.len);
    hq__prom_release(&p);
}

/* ------------------------------------------------------------------------ */
/* The JSON API                                                             */

/* The newest kept sample RATE_MIN_MS..RATE_MAX_MS older than `s`, or NULL. */
static const struct hq_stats *
rate_base(const struct hk_admin_api *api, const struct hq_stats *s)
{
    const struct hq_stats *ref = NULL;

    if (api->have_last && s->time_ms - api->last.time_ms >= RATE_MIN_MS)
        ref = &api->last;
    else if (api->have_old && s->time_ms - api->old.time_ms >= RATE_MIN_MS)
        ref = &api->old;
    return ref != NULL && s->time_ms - ref->time_ms <= RATE_MAX_MS ? ref : NULL;
}

/* Keep `s` (taken) when it is RATE_MIN_MS newer than `last`; else free it. */
static void
keep_sample(struct hk_admin_api *api, struct hq_stats *s)
{
    if (api->have_last && s->time_ms - api->last.time_ms < RATE_MIN_MS) {
        hq_stats_release(s);
        return;
    }
    if (api->have_old)
        hq_stats_release(&api->old);
    api->old = api->last;
    api->have_old = api->have_last;
    api->last = *s;
    api->have_last = 1;
}

/* GET /api/stats[?top=N]: the document of `hookq stats --json`. */
static void
api_stats(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq_stats s;
    long top;
    int rc;

    (void)a;
    top = query_count(req, "top", TOP_DEFAULT, TOP_MAX);
    if (top < 0)
        return;
    rc = hq_client_stats(api->client, (size_t)top, &s);
    if (rc != HQ_OK) {
        reply_client_error(req, api, rc);
        return;
    }
    hk_admin_reply_json(req, 200, hq_stats_json(&s, rate_base(api, &s)));
    keep_sample(api, &s);
}

static void
key_info_free(struct hq_key_info *k)
{
    free(k->key);
    free(k->reason);
    free(k->error);
}

/*
 * Keep the keys of `l` whose name contains `q` ("" keeps all), then the
 * `top` from `offset` on. The items dropped are released.
 */
static void
keys_window(struct hq_key_list *l, const char *q, size_t offset, size_t top,
            size_t *matched)
{
    size_t n = 0, skip, keep;

    for (size_t i = 0; i < l->n; i++) {
        if (q[0] == '\0' || strstr(l->items[i].key, q) != NULL) {
            struct hq_key_info k = l->items[i];

            l->items[i] = l->items[n];
            l->items[n++] = k;
        }
    }
    *matched = n;
    /* Keep items [skip, skip + keep) of the n that matched. */
    skip = offset < n ? offset : n;
    keep = n - skip < top ? n - skip : top;
    for (size_t i = 0; i < l->n; i++)
        if (i < skip || i >= skip + keep)
            key_info_free(&l->items[i]);
    if (keep > 0)
        memmove(l->items, l->items + skip, keep * sizeof(*l->items));
    l->n = keep;
}

/*
 * GET /api/keys[?state=ready|active|parked|held][&top=N][&q=TEXT][&offset=M]
 * With q, the keys whose name contains TEXT, among the TOP_MAX deepest;
 * offset pages through them (or through all, without q) in TOP_MAX.
 */
static void
api_keys(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq_key_list l;
    char state[32], msg[120], q[256];
    int st = HQ_KEY_IDLE, rc;
    long top, offset;
    size_t matched;
    json_t *doc;
    char *text;

    (void)a;
    if (query_string(req, "state", state, sizeof(state)) < 0)
        return;
    if (state[0] != '\0') {
        st = hq_key_state_parse(state);
        if (st <= HQ_KEY_IDLE) {
            snprintf(msg, sizeof(msg), "state wants ready, active, parked or "
                     "held, not '%.30s'", state);
            hk_admin_reply_error(req, 400, "bad_request", msg);
            return;
        }
    }
    top = query_count(req, "top", TOP_DEFAULT, TOP_MAX);
    if (top < 0)
        return;
    offset = query_count(req, "offset", 0, TOP_MAX - 1);
    if (offset < 0 || query_string(req, "q", q, sizeof(q)) < 0)
        return;
    rc = hq_client_keys(api->client, st,
                        q[0] ? TOP_MAX : (size_t)(offset + top), &l);
    if (rc != HQ_OK) {
        reply_client_error(req, api, rc);
        return;
    }
    keys_window(&l, q, (size_t)offset, (size_t)top, &matched);
    text = hq_key_list_json(&l);
    hq_key_list_release(&l);
    doc = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (doc == NULL ||
        json_object_set_new(doc, "offset", json_integer(offset)) != 0 ||
        (q[0] && json_object_set_new(doc, "matched", json_integer(
                                              (json_int_t)matched)) != 0)) {
        json_decref(doc);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    hk_admin_reply_json(req, 200, json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(doc);
}

/*
 * The rest of the path after `prefix`, percent-decoded, into `out`.
 * Answers 400 and returns -1 when it is empty, too long or holds a NUL.
 */
static int
path_rest(struct evhttp_request *req, const char *prefix, const char *what,
          char *out, size_t size)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t plen = strlen(prefix), len = 0;
    char *dec = NULL, msg[120];

    if (path != NULL && strncmp(path, prefix, plen) == 0)
        dec = evhttp_uridecode(path + plen, 0, &len);
    if (dec == NULL || len == 0 || len >= size || strlen(dec) != len) {
        snprintf(msg, sizeof(msg), "the path wants %s%s (URL-encoded, at most "
                 "%zu bytes)", prefix, what, size - 1);
        hk_admin_reply_error(req, 400, "bad_request", msg);
        free(dec);
        return -1;
    }
    memcpy(out, dec, len + 1);
    free(dec);
    return 0;
}

/* Errors of calls naming one key or dead letter: a malformed one is 400. */
static void
reply_named_error(struct evhttp_request *req, struct hk_admin_api *api, int rc)
{
    if (rc == HQ_EINVAL)
        hk_admin_reply_error(req, 400, "bad_request", hq_client_errmsg(api->client));
    else
        reply_client_error(req, api, rc);
}

/*
 * GET /api/keys/KEY[?n=N]: the key's state, attempts, last error and its
 * first N jobs (`hookq peek`). 404 when nothing is queued for it.
 */
static void
api_key(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq_peek p;
    char key[1024], msg[1200];
    long n;
    int rc;

    (void)a;
    if (path_rest(req, "/api/keys/", "<customer>:<code>", key, sizeof(key)) < 0)
        return;
    n = query_count(req, "n", PEEK_DEFAULT, PEEK_MAX);
    if (n < 0)
        return;
    rc = hq_client_peek(api->client, key, (size_t)n, &p);
    if (rc != HQ_OK) {
        reply_named_error(req, api, rc);
        return;
    }
    if (p.key.state == HQ_KEY_IDLE) {
        snprintf(msg, sizeof(msg), "nothing queued for key '%s'", key);
        hk_admin_reply_error(req, 404, "not_found", msg);
    } else {
        hk_admin_reply_json(req, 200, hq_peek_json(&p));
    }
    hq_peek_release(&p);
}

/* GET /api/dlq[?limit=N]: the oldest dead letters, without bodies. */
static void
api_dlq(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq_dead_letters l;
    long limit;
    int rc;

    (void)a;
    limit = query_count(req, "limit", DLQ_DEFAULT, DLQ_MAX);
    if (limit < 0)
        return;
    if (limit == 0)
        limit = DLQ_MAX; /* 0 would mean "all" to the client: keep a bound */
    rc = hq_client_dlq_list(api->client, (size_t)limit, &l);
    if (rc != HQ_OK) {
        reply_client_error(req, api, rc);
        return;
    }
    hk_admin_reply_json(req, 200, hq_dead_letters_json(&l));
    hq_dead_letters_release(&l);
}

/* GET /api/dlq/ID: one dead letter with its payload (`hookq dlq show`). */
static void
api_dead_letter(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq_dead_letter d;
    char id[64];
    int rc;

    (void)a;
    if (path_rest(req, "/api/dlq/", "<id>", id, sizeof(id)) < 0)
        return;
    rc = hq_client_dlq_show(api->client, id, &d);
    if (rc != HQ_OK) {
        reply_named_error(req, api, rc);
        return;
    }
    hk_admin_reply_json(req, 200, hq_dead_letter_json(&d));
    hq_dead_letter_release(&d);
}

static void
reply_count(struct evhttp_request *req, const char *name, size_t n)
{
    char body[80];

    snprintf(body, sizeof(body), "{\"%s\":%zu}", name, n);
    hk_admin_reply(req, 200, "application/json", body, strlen(body));
}

/*
 * POST /api/dlq/retry and /api/dlq/drop: {"id": ID} or {"all": true}, done
 * by `one` or `all`, answered {"<done>": count}.
 */
static void
dlq_act(struct hk_admin_api *api, struct evhttp_request *req,
        int (*one)(hq_client *, const char *),
        int (*every)(hq_client *, size_t *), const char *done)
{
    json_t *body, *id, *all;
    size_t n = 0;
    int rc;

    if (!(body = hk_admin_json_body(req, NULL)))
        return;
    id = json_object_get(body, "id");
    all = json_object_get(body, "all");
    if ((id != NULL) == (all != NULL) || (id && !json_is_string(id)) ||
        (all && !json_is_true(all))) {
        hk_admin_reply_error(req, 400, "bad_request",
                             "want {\"id\": \"<dead letter id>\"} or "
                             "{\"all\": true}");
    } else {
        rc = id ? one(api->client, json_string_value(id))
                : every(api->client, &n);
        if (rc != HQ_OK)
            reply_named_error(req, api, rc);
        else
            reply_count(req, done, id ? 1 : n);
    }
    json_decref(body);
}

static void
api_dlq_retry(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    (void)a;
    dlq_act(arg, req, hq_client_dlq_retry, hq_client_dlq_retry_all, "retried");
}

/* Drop: delete for good. */
static void
api_dlq_drop(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    (void)a;
    dlq_act(arg, req, hq_client_dlq_drop, hq_client_dlq_drop_all, "dropped");
}

/* POST /api/hold {"key": KEY[, "reason": TEXT]} */
static void
api_hold(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    static const char *const said[] = {"held", "already", "pending"};
    struct hk_admin_api *api = arg;
    json_t *body, *key, *reason;
    int rc, status = 0;
    char out[64];

    (void)a;
    if (!(body = hk_admin_json_body(req, NULL)))
        return;
    key = json_object_get(body, "key");
    reason = json_object_get(body, "reason");
    if (!json_is_string(key) || (reason && !json_is_string(reason)) ||
        (reason && json_string_length(reason) == 0)) {
        hk_admin_reply_error(req, 400, "bad_request",
                             "want {\"key\": \"<customer>:<code>\"} and "
                             "optionally \"reason\": a non-empty string");
    } else {
        rc = hq_client_hold(api->client, json_string_value(key),
                            reason ? json_string_value(reason) : NULL, &status);
        if (rc != HQ_OK) {
            reply_named_error(req, api, rc);
        } else {
            snprintf(out, sizeof(out), "{\"held\":\"%s\"}",
                     status >= 0 && status <= 2 ? said[status] : "held");
            hk_admin_reply(req, 200, "application/json", out, strlen(out));
        }
    }
    json_decref(body);
}

/* POST /api/release {"key": KEY} or {"customer": CUSTOMER} */
static void
api_release(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    json_t *body, *key, *customer;
    int rc, status = 0;
    size_t n = 0;

    (void)a;
    if (!(body = hk_admin_json_body(req, NULL)))
        return;
    key = json_object_get(body, "key");
    customer = json_object_get(body, "customer");
    if ((key != NULL) == (customer != NULL) ||
        (key && !json_is_string(key)) ||
        (customer && !json_is_string(customer))) {
        hk_admin_reply_error(req, 400, "bad_request",
                             "want {\"key\": \"<customer>:<code>\"} or "
                             "{\"customer\": \"<customer>\"}");
    } else if (customer != NULL) {
        rc = hq_client_release_customer(api->client,
                                        json_string_value(customer), &n);
        if (rc != HQ_OK)
            reply_named_error(req, api, rc);
        else
            reply_count(req, "released_keys", n);
    } else {
        rc = hq_client_release(api->client, json_string_value(key), &status);
        if (rc != HQ_OK)
            reply_client_error(req, api, rc);
        else
            hk_admin_reply_json(req, 200,
                                strdup(status == HQ_RELEASE_CANCELLED
                                           ? "{\"released\":\"cancelled\"}"
                                           : "{\"released\":\"ready\"}"));
    }
    json_decref(body);
}

/* The admin thread's tick: one throughput sample (a gap while Redis is down). */
static void
take_sample(struct hk_admin *a, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq_stats s;
    struct sample *x;

    (void)a;
    if (hq_client_stats(api->client, 0, &s) != HQ_OK)
        return;
    x = &api->ring[(api->head + api->nring) % NSAMPLES];
    if (api->nring < NSAMPLES)
        api->nring++;
    else
        api->head = (api->head + 1) % NSAMPLES;
    x->time_ms = s.time_ms;
    x->accepted = hq_stats_counter(&s, "accepted");
    x->processed = hq_stats_counter(&s, "done");
    x->failed = hq_stats_counter(&s, "retried") +
                hq_stats_counter(&s, "deadlettered");
    hq_stats_release(&s);
}

static double
per_second(int64_t from, int64_t to, int64_t ms)
{
    /* A counter only falls when the namespace was deleted: count 0 then. */
    return to > from ? (double)(to - from) * 1000.0 / (double)ms : 0.0;
}

/*
 * GET /api/throughput: {"interval_ms", "points": [{"time_ms", "accepted",
 * "processed", "failed"}, ...]}, oldest first: per second over the time
 * since the sample before, for the last 15 minutes.
 */
static void
api_throughput(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    json_t *doc, *points;
    int bad;

    (void)a;
    points = json_array();
    doc = json_pack("{sI so}", "interval_ms", (json_int_t)SAMPLE_MS, "points",
                    points);
    bad = doc == NULL;
    for (size_t i = 1; !bad && i < api->nring; i++) {
        const struct sample *p = &api->ring[(api->head + i - 1) % NSAMPLES];
        const struct sample *x = &api->ring[(api->head + i) % NSAMPLES];
        int64_t ms = x->time_ms - p->time_ms;
        json_t *o;

        if (ms <= 0)
            continue;
        o = json_pack("{sI sf sf sf}", "time_ms", (json_int_t)x->time_ms,
                      "accepted", per_second(p->accepted, x->accepted, ms),
                      "processed", per_second(p->processed, x->processed, ms),
                      "failed", per_second(p->failed, x->failed, ms));
        bad = o == NULL || json_array_append_new(points, o) != 0;
    }
    if (bad) {
        json_decref(doc);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    hk_admin_reply_json(req, 200, json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(doc);
}

/* GET /api/workers: the document of `hookq workers --json`. */
static void
api_workers(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    struct hk_admin_api *api = arg;
    struct hq_worker_list l;
    int rc;

    (void)a;
    rc = hq_client_workers(api->client, &l);
    if (rc != HQ_OK) {
        reply_client_error(req, api, rc);
        return;
    }
    hk_admin_reply_json(req, 200, hq_worker_list_json(&l));
    hq_worker_list_release(&l);
}

/* GET /: the dashboard, a page that reads the API above. */
static void
dashboard(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    (void)a;
    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; "
                      "style-src 'unsafe-inline'; connect-src 'self'; "
                      "frame-ancestors 'none'");
    hk_admin_reply(req, 200, "text/html; charset=utf-8", hk_dashboard_html,
                   hk_dashboard_html_len);
}

/* ------------------------------------------------------------------------ */

/* hk_admin_free()'s clean-up: after the admin thread has stopped. */
static void
api_free(void *arg)
{
    struct hk_admin_api *api = arg;

    if (api->have_old)
        hq_stats_release(&api->old);
    if (api->have_last)
        hq_stats_release(&api->last);
    hq__sconn_release(&api->redis);
    hq_client_free(api->client);
    free(api);
}

int
hk_admin_api_attach(struct hk_admin *a, const struct hq__config *cfg,
                    const struct hq_store_options *store,
                    const struct hq__store_addr *addr,
                    struct hk_intake *intake, hq_worker *worker,
                    struct hq__process *process, char *err, size_t errsize)
{
    struct hk_admin_api *api = calloc(1, sizeof(*api));
    struct hq__err e;

    if (api == NULL || hk_admin_on_free(a, api_free, api) != 0) {
        free(api);
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    /* From here on, hk_admin_free() frees `api`. */
    api->intake = intake;
    api->worker = worker;
    api->process = process;
    api->addr = *addr;
    api->addr.timeout_ms = PING_TIMEOUT_MS;
    hq__conn_probe_cluster(&api->addr);
    if (hq__store_ns_init(&api->ns, store->ns ? store->ns : cfg->redis.ns,
                          store->shards ? store->shards : cfg->redis.shards,
                          &e) != HQ_OK)
        hq__store_ns_init(&api->ns, NULL, 1, &e);
    hq__sconn_init(&api->redis, &api->addr, &api->ns);
    if (hk_admin_client_new(store, ADMIN_TIMEOUT_MS, &api->client, err,
                            errsize) != 0)
        return -1;
    if (hk_admin_route(a, "/healthz", HK_ADMIN_ANY, healthz, api) != 0 ||
        hk_admin_route_public(a, "/", HK_ADMIN_GET, dashboard, api) != 0 ||
        hk_admin_route(a, "/metrics", HK_ADMIN_GET, metrics, api) != 0 ||
        hk_admin_route(a, "/api/stats", HK_ADMIN_GET, api_stats, api) != 0 ||
        hk_admin_route(a, "/api/keys", HK_ADMIN_GET, api_keys, api) != 0 ||
        hk_admin_route_prefix(a, "/api/keys/", HK_ADMIN_GET, api_key, api) != 0 ||
        hk_admin_route(a, "/api/dlq", HK_ADMIN_GET, api_dlq, api) != 0 ||
        hk_admin_route_prefix(a, "/api/dlq/", HK_ADMIN_GET, api_dead_letter,
                              api) != 0 ||
        hk_admin_route(a, "/api/dlq/retry", HK_ADMIN_POST, api_dlq_retry,
                       api) != 0 ||
        hk_admin_route(a, "/api/dlq/drop", HK_ADMIN_POST, api_dlq_drop,
                       api) != 0 ||
        hk_admin_route(a, "/api/hold", HK_ADMIN_POST, api_hold, api) != 0 ||
        hk_admin_route(a, "/api/release", HK_ADMIN_POST, api_release,
                       api) != 0 ||
        hk_admin_route(a, "/api/workers", HK_ADMIN_GET, api_workers, api) != 0 ||
        hk_admin_route(a, "/api/throughput", HK_ADMIN_GET, api_throughput,
                       api) != 0 ||
        hk_admin_every(a, SAMPLE_MS, take_sample, api) != 0) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    return 0;
}
