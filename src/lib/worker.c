/*
 * The worker runtime: `threads` libevent loops that lease keys from Redis and
 * run the handler on each key's head job.
 *
 * DESIGN: each loop owns `concurrency / threads` key slots, one async hiredis
 * connection for commands and one for the wake subscriptions. All state
 * of a loop (its jobs, queues, timers) belongs to its thread; the only things
 * shared between threads are the counters (atomics) and the stop pipes.
 *
 * Per shard, a loop has a lane, and a lane has at most one `settle` call in
 * flight. That call carries every settlement queued since the previous one
 * (done, retry, park, dead, hold, release), the lease renewals that are due,
 * and a claim for the loop's free slots. hq_job_*() only queue an op and
 * activate the flush event, which runs once the current callbacks are done:
 * a busy loop completes and claims in one round trip, and ops that arrive
 * while a call is in flight go out together in the next one.
 *
 * A job is one allocation (struct and strings). It belongs to the loop thread
 * that claimed it: the handler must settle it there. After the handler
 * settles it, the job lives on until Redis has answered its final op (the op
 * points at it), then is freed. Jobs whose leases are handed back at the end
 * of a drain are kept until hq_worker_free(), since the handler may still
 * hold them.
 *
 * Idle: when a claim returns fewer keys than asked and no wake message came
 * meanwhile, the lane claims no more until a wake message arrives on
 * `{NS:S}:wake` or its timer fires at Redis's next due time (at most 1 s),
 * so an idle worker does not poll Redis in a loop. The scripts publish the
 * wake with SPUBLISH where Redis has it (7.0), else PUBLISH; the `sub`
 * connection listens for both (hq__conn_subscribe()). On a Redis Cluster a
 * sharded message stays on the shard's master (and its replicas), so each
 * loop's subscriptions sit on the masters of its lanes' shards, one
 * subscription connection per master (router.c), and follow a slot that
 * moves. A wake that is missed (a connection or slot moving) costs at most
 * the 1 s poll, never a job: after a reconnect the lanes claim again.
 *
 * Failures: a call that fails (connection lost, error reply, no answer within
 * the store timeout) puts its ops back at the front of the lane's queue; they
 * go out again after the reconnect. The fencing token makes that safe: an op
 * Redis had already applied is answered stale, which is counted and logged.
 * Keys claimed by a lost call stay leased until their lease expires and any
 * worker reaps them.
 *
 * Registry: loop 0 announces the process every BEAT_MS on its command
 * connection (worker_beat, registry.c): host, pid, version, start time,
 * loops and jobs in flight, with a TTL of HQ_WORKER_TTL_MS, so that `hookq
 * workers` lists it and forgets it within that time once it is gone; a
 * draining worker leaves the registry at once (worker_gone).
 *
 * Drain: hq_worker_stop() writes one byte into each loop's pipe, which is
 * async-signal-safe. The loop then claims nothing more, lets its jobs finish
 * for up to shutdown_timeout, hands the leases of the rest back (`release`),
 * and exits once Redis has answered everything (or after a grace period when
 * Redis is gone: the leases then expire and are reaped).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include "clock_int.h"
#include "common_int.h"
#include "conn_int.h"
#include "quietlog_int.h"
#include "record_int.h"
#include "registry_int.h"
#include "worker_int.h"

#define MAX_OPS_PER_CALL 600 /* 3 + 6 * 600 args: under the store's limit */
#define IDLE_MAX_MS 1000        /* longest idle wait between two claims */
#define ERROR_BACKOFF_MS 250    /* after an error reply, before trying again */
#define DRAIN_GRACE_MS 5000     /* after shutdown_timeout, wait for Redis */
#define BEAT_MS 1000            /* registry announcements (loop 0) */

enum op_type {
    OP_DONE, OP_RETRY, OP_PARK, OP_DEAD, OP_HOLD, OP_RENEW, OP_RELEASE,
};

static const char *const op_names[] = {
    "done", "retry", "park", "dead", "hold", "renew", "release",
};

static const int op_outcome[] = {
    HQ_SETTLED_DONE, HQ_SETTLED_RETRY, HQ_SETTLED_PARK, HQ_SETTLED_DEAD,
    HQ_SETTLED_HOLD, -1, HQ_SETTLED_RELEASE,
};

enum job_state {
    JOB_RUNNING,  /* the handler has it */
    JOB_SETTLING, /* final op queued or sent; freed when answered */
    JOB_ZOMBIE,   /* released at drain timeout; freed by hq_worker_free() */
};

struct lane;
struct loop;

/* One settlement or renewal, queued on its lane until Redis answers it. */
struct op {
    struct op *next;
    hq_job *job;
    int type;     /* enum op_type */
    int64_t n;    /* ms for retry/park, attempts for dead, 1 = customer for hold */
    char *reason; /* owned; NULL = "" */
    char *error;  /* owned; NULL = "" */
};

struct hq_job {
    struct loop *loop;
    struct lane *lane;
    struct hq_job *prev, *next; /* loop's running list (by renew_ns) or zombies */
    int state;                  /* enum job_state */
    int policy;                 /* enum hq_failure_policy */
    int attempt;                /* 1 on the first run */
    int lost;                   /* a renewal was answered stale */
    int renew_queued;           /* renew op is queued or in flight */
    int malformed;              /* its record could not be read */
    int64_t seq;
    int64_t received_at_ms;
    uint64_t claimed_ns;        /* monotonic, when the claim was answered */
    uint64_t renew_ns;          /* monotonic, when to renew the lease next */
    void *userdata;
    struct op fin;              /* the final op, once settled */
    struct op renew;
    char token[24];             /* fencing token, decimal */
    const char *id, *key, *customer, *code, *webhook_id;
    const char *body;
    size_t body_len;
    char data[];                /* the strings above */
};

struct lane {
    struct loop *loop;
    unsigned shard;
    char prefix[HQ_PREFIX_MAX];
    struct op *pending, **pending_tail; /* queued, not sent */
    struct op *sent;                    /* in the call in flight */
    int inflight;
    unsigned asked;                     /* claim_n of the call in flight */
    uint64_t sent_ns;
    int idle;          /* claim got fewer than asked: wait for wake or timer */
    int wake_pending;  /* a wake message arrived during the call */
    uint64_t retry_ns; /* after an error: no call before this */
    struct event *timer_ev;
    /* Scratch for building a call's ARGV, grown as needed. */
    const char **argv;
    size_t *argvlen;
    char (*num)[24];
    size_t cap;
};

struct loop {
    hq_worker *w;
    unsigned index;
    pthread_t thread;
    int pipefd[2];               /* stop pipe: written by hq_worker_stop() */
    struct event_base *base;
    struct event *flush_ev, *tick_ev, *stop_ev;
    struct hq__conn cmd, sub;    /* settle calls; wake subscription */
    struct lane *lanes;
    unsigned nlanes;
    unsigned capacity;           /* key slots of this loop */
    unsigned running;            /* jobs in JOB_RUNNING */
    unsigned reserved;           /* claims in flight (sum of lane->asked) */
    hq_job *run_head, *run_tail; /* JOB_RUNNING, oldest renew_ns first */
    hq_job *zombies;
    int flush_scheduled;
    int draining;
    int closing;
    uint64_t drain_ns;           /* release what still runs after this */
    uint64_t hard_ns;            /* exit regardless after this */
    uint64_t rng;
    unsigned next_lane;
    struct event *beat_ev;       /* loop 0 only: the registry announcement */
    int beat_inflight;           /* registry calls not yet answered */
    void *loop_state;            /* what opts.loop_init returned */
};

struct hq_worker {
    struct hq_worker_options opts; /* defaults applied; strings not kept */
    struct hq__store_addr addr;
    struct hq__store_ns ns;
    struct loop *loops;
    unsigned nloops;
    int started;
    struct hq__err err;
    struct hq__quietlog quiet;    /* Redis failures per shard and node, shared by the loops */
    /* The registry entry: fixed at hq_worker_start(). */
    char host[256];
    char beat_id[320];  /* host:pid:started_ms */
    char pid[24];
    char started_ms[24];

    /* Counters, updated by the loops with relaxed atomics. */
    _Atomic uint64_t claimed, done, retried, parked, dead, held, released,
        stale, renewed, round_trips, redis_errors;
    _Atomic int64_t in_flight;
};

#define STAT_ADD(w, f, v) atomic_fetch_add_explicit(&(w)->f, (v), memory_order_relaxed)

static void flush_cb(evutil_socket_t fd, short what, void *arg);
static void maybe_exit(struct loop *l);

/* The library's clock (clock_int.h), as the unsigned nanoseconds the
 * loop's deadlines are kept in. */
static uint64_t
mono_ns(void)
{
    return (uint64_t)hq__mono_ns();
}

static void
wlog(hq_worker *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
wlog(hq_worker *w, int level, const char *fmt, ...)
{
    static const char *const none[] = {NULL};
    char buf[512];
    va_list ap;

    if (w->opts.log == NULL && w->opts.log_kv == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (w->opts.log_kv != NULL)
        w->opts.log_kv(level, buf, none, w->opts.log_arg);
    else
        w->opts.log(level, buf, w->opts.log_arg);
}

/*
 * A call of lane `ln` failed (`detail` says how): logged at once the first
 * time, then at most once per HQ_QUIETLOG_EVERY_MS per shard, with how
 * many failures were not (quietlog_int.h).
 */
static void
lane_failed(struct lane *ln, const char *detail)
{
    hq_worker *w = ln->loop->w;
    char subject[32];
    unsigned long quiet;

    snprintf(subject, sizeof(subject), "shard %u", ln->shard);
    if (!hq__quietlog_fail(&w->quiet, subject, 1, hq__mono_ms(), &quiet))
        return;
    if (quiet)
        wlog(w, HQ_LOG_ERROR, "%s: %s (%lu more failures not logged)", subject,
             detail, quiet);
    else
        wlog(w, HQ_LOG_ERROR, "%s: %s", subject, detail);
}

/* Lane `ln`'s call was answered: say so once when its shard had failed. */
static void
lane_answered(struct lane *ln)
{
    hq_worker *w = ln->loop->w;
    char subject[32];
    int64_t down_ms;
    unsigned long n;

    if (!hq__quietlog_failing(&w->quiet))
        return;
    snprintf(subject, sizeof(subject), "shard %u", ln->shard);
    if (hq__quietlog_ok(&w->quiet, subject, hq__mono_ms(), &down_ms, &n))
        wlog(w, HQ_LOG_INFO, "%s back after %.1f s, %lu calls retried", subject,
             (double)down_ms / 1000.0, n);
}

/*
 * A line about job `j`: `msg` and the job's fields (key, job, customer,
 * code, attempt), then NULL-terminated name, value pairs. Without a
 * log_kv sink, one message "msg: job ID of 'KEY' (name value, ...)".
 */
static void
wlog_job(hq_worker *w, int level, const hq_job *j, const char *msg, ...)
{
    const char *f[32];
    char attempt[16], buf[768];
    size_t n = 0;
    const char *k;
    va_list ap;

    if (w->opts.log == NULL && w->opts.log_kv == NULL)
        return;
    snprintf(attempt, sizeof(attempt), "%d", j->attempt);
    f[n++] = "key", f[n++] = j->key, f[n++] = "job", f[n++] = j->id;
    f[n++] = "customer", f[n++] = j->customer, f[n++] = "code", f[n++] = j->code;
    f[n++] = "attempt", f[n++] = attempt;
    va_start(ap, msg);
    while (n + 3 < HQ_ARRAY_SIZE(f) && (k = va_arg(ap, const char *)) != NULL) {
        f[n++] = k;
        f[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    f[n] = NULL;
    if (w->opts.log_kv != NULL) {
        w->opts.log_kv(level, msg, f, w->opts.log_arg);
        return;
    }
    snprintf(buf, sizeof(buf), "%s: job %s of '%s'", msg, j->id, j->key);
    for (size_t i = 10; i + 1 < n; i += 2) {
        size_t len = strlen(buf);

        snprintf(buf + len, sizeof(buf) - len, "%s%s %s", i == 10 ? " (" : ", ",
                 f[i], f[i + 1]);
    }
    if (n > 10) {
        size_t len = strlen(buf);

        snprintf(buf + len, sizeof(buf) - len, ")");
    }
    w->opts.log(level, buf, w->opts.log_arg);
}

static void
timer_set_ms(struct event *ev, int64_t ms)
{
    struct timeval tv;

    if (ms < 0)
        ms = 0;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(ev, &tv);
}

static void
schedule_flush(struct loop *l)
{
    if (!l->flush_scheduled) {
        l->flush_scheduled = 1;
        event_active(l->flush_ev, EV_TIMEOUT, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Jobs and ops.                                                            */

static void
run_unlink(struct loop *l, hq_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->run_head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->run_tail = j->prev;
    j->prev = j->next = NULL;
}

static void
run_append(struct loop *l, hq_job *j)
{
    j->next = NULL;
    j->prev = l->run_tail;
    if (l->run_tail)
        l->run_tail->next = j;
    else
        l->run_head = j;
    l->run_tail = j;
}

static void
op_queue(struct lane *ln, struct op *op)
{
    op->next = NULL;
    *ln->pending_tail = op;
    ln->pending_tail = &op->next;
}

static char *
dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL; /* on ENOMEM the text is dropped */
}

/* Leave JOB_RUNNING: the slot is free for the next claim. */
static void
job_stop_running(hq_job *j)
{
    struct loop *l = j->loop;

    run_unlink(l, j);
    l->running--;
    STAT_ADD(l->w, in_flight, -1);
}

/* Queue the final op of `j` (already out of JOB_RUNNING or never in it). */
static void
job_finish(hq_job *j, int type, int64_t n, const char *reason,
           const char *error)
{
    j->state = JOB_SETTLING;
    j->fin.job = j;
    j->fin.type = type;
    j->fin.n = n;
    j->fin.reason = dup_or_null(reason);
    j->fin.error = dup_or_null(error);
    op_queue(j->lane, &j->fin);
    schedule_flush(j->loop);
}

/* The policy op for a job whose attempts are spent or that failed for good. */
static void
job_apply_policy(hq_job *j, const char *error)
{
    if (j->policy == HQ_ON_FAILURE_HOLD)
        job_finish(j, OP_HOLD, 0, "failed", error);
    else
        job_finish(j, OP_DEAD, j->attempt, NULL, error);
}

static void
job_free(hq_job *j)
{
    if (j == NULL)
        return;
    free(j->fin.reason);
    free(j->fin.error);
    free(j);
}

static int
settle_begin(hq_job *j)
{
    if (j == NULL || j->state != JOB_RUNNING)
        return 0; /* settled twice, or released by a drain: ignored */
    job_stop_running(j);
    return 1;
}

void
hq_job_done(hq_job *job)
{
    if (settle_begin(job))
        job_finish(job, OP_DONE, 0, NULL, NULL);
}

int64_t
hq__backoff_ms(int attempt, int64_t min_ms, int64_t max_ms, uint64_t rnd)
{
    int64_t hi = min_ms;
    int shift = attempt - 1;

    if (max_ms < min_ms)
        max_ms = min_ms;
    /* Doubling stops at max_ms, so it cannot overflow for any attempt. */
    while (shift-- > 0 && hi < max_ms)
        hi = hi > max_ms / 2 ? max_ms : hi * 2;
    if (hi > max_ms)
        hi = max_ms;
    if (hi <= min_ms)
        return min_ms;
    return min_ms + (int64_t)(rnd % (uint64_t)(hi - min_ms + 1));
}

void
hq_job_retry(hq_job *job, const char *error)
{
    const struct hq_worker_options *o;

    if (!settle_begin(job))
        return;
    o = &job->loop->w->opts;
    if (job->attempt >= o->max_attempts) {
        job_apply_policy(job, error);
        return;
    }
    job_finish(job, OP_RETRY,
               hq__backoff_ms(job->attempt, o->backoff_min_ms,
                              o->backoff_max_ms, hq__rng_next(&job->loop->rng)),
               NULL, error);
}

void
hq_job_fail(hq_job *job, const char *error)
{
    if (settle_begin(job))
        job_apply_policy(job, error);
}

void
hq_job_park(hq_job *job, int64_t delay_ms)
{
    if (settle_begin(job))
        job_finish(job, OP_PARK, delay_ms < 0 ? 0 : delay_ms, NULL, NULL);
}

void
hq_job_hold(hq_job *job, const char *reason, int customer_wide)
{
    if (settle_begin(job))
        job_finish(job, OP_HOLD, customer_wide ? 1 : 0,
                   reason && *reason ? reason : "held", NULL);
}

const char *hq_job_id(const hq_job *job) { return job->id; }
const char *hq_job_key(const hq_job *job) { return job->key; }
const char *hq_job_customer(const hq_job *job) { return job->customer; }
const char *hq_job_code(const hq_job *job) { return job->code; }
int64_t hq_job_seq(const hq_job *job) { return job->seq; }
int hq_job_attempt(const hq_job *job) { return job->attempt; }
int64_t hq_job_received_at_ms(const hq_job *job) { return job->received_at_ms; }
const char *hq_job_webhook_id(const hq_job *job) { return job->webhook_id; }
void *hq_job_loop(const hq_job *job) { return job->loop->base; }
void *hq_job_loop_state(const hq_job *job) { return job->loop->loop_state; }
const char *hq__job_fence(const hq_job *job) { return job->token; }
unsigned hq__job_shard(const hq_job *job) { return job->lane->shard; }
void *hq_job_userdata(const hq_job *job) { return job->userdata; }
void hq_job_set_userdata(hq_job *job, void *ud) { job->userdata = ud; }

const void *
hq_job_body(const hq_job *job, size_t *len)
{
    if (len)
        *len = job->body_len;
    return job->body;
}

void
hq_job_set_policy(hq_job *job, int on_failure)
{
    job->policy = on_failure == HQ_ON_FAILURE_HOLD ? HQ_ON_FAILURE_HOLD
                                                   : HQ_ON_FAILURE_DEADLETTER;
}

/* ------------------------------------------------------------------------ */
/* Parsing a claimed entry.                                                 */

static int
reply_int(const redisReply *r, int64_t *out)
{
    char buf[32], *end;

    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf))
        return -1;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    errno = 0;
    *out = strtoll(buf, &end, 10);
    return errno || *end ? -1 : 0;
}

/* Copy (s, len) into the job's block at *pos, NUL-terminated. */
static const char *
put(char **pos, const char *s, size_t len)
{
    char *d = *pos;

    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    *pos += len + 1;
    return d;
}

/*
 * Build a job from one claimed 5-tuple: key, customer, token, attempt,
 * record "id\nseq\nreceived_at_ms\nwebhook_id\nbody". NULL when malformed
 * (or out of memory); the lease then expires and the key is reaped.
 */
static hq_job *
job_from_claim(struct lane *ln, redisReply **e)
{
    const redisReply *key = e[0], *cust = e[1], *rec = e[4];
    struct hq__record r;
    int64_t tok, attempt;
    hq_job *j;
    char *pos;
    size_t size;

    int malformed;

    if (key->type != REDIS_REPLY_STRING || cust->type != REDIS_REPLY_STRING ||
        reply_int(e[2], &tok) || reply_int(e[3], &attempt) ||
        cust->len + 1 >= key->len ||
        memcmp(key->str, cust->str, cust->len) != 0 ||
        key->str[cust->len] != ':')
        return NULL;
    /* A record we cannot read still has a key and a lease: the caller
     * dead-letters it, so that the key goes on. */
    malformed = rec->type != REDIS_REPLY_STRING ||
                hq__record_parse(rec->str, rec->len, &r) != HQ_OK;
    if (malformed)
        memset(&r, 0, sizeof(r));

    size = sizeof(*j) + key->len + 1 + cust->len + 1 + r.id_len + 1 +
           r.webhook_id_len + 1 + r.body_len + 1;
    j = calloc(1, size);
    if (j == NULL)
        return NULL;
    j->loop = ln->loop;
    j->lane = ln;
    j->attempt = attempt < 1 ? 1 : attempt > 1000000 ? 1000000 : (int)attempt;
    j->malformed = malformed;
    j->seq = r.seq;
    j->received_at_ms = r.received_at_ms;
    snprintf(j->token, sizeof(j->token), "%" PRId64, tok);
    pos = j->data;
    j->key = put(&pos, key->str, key->len);
    j->customer = put(&pos, cust->str, cust->len);
    /* The code is what follows the customer and its ':' in the key. */
    j->code = j->key + cust->len + 1;
    j->id = put(&pos, r.id, r.id_len);
    j->webhook_id = put(&pos, r.webhook_id, r.webhook_id_len);
    j->body = put(&pos, r.body, r.body_len);
    j->body_len = r.body_len;
    return j;
}

/* ------------------------------------------------------------------------ */
/* The settle call.                                                         */

static unsigned
free_slots(const struct loop *l)
{
    unsigned used = l->running + l->reserved;

    return used >= l->capacity ? 0 : l->capacity - used;
}

static int
lane_grow(struct lane *ln, size_t nargs)
{
    size_t cap = ln->cap ? ln->cap : 64;
    const char **argv;
    size_t *argvlen;
    char(*num)[24];

    if (nargs <= ln->cap)
        return 0;
    while (cap < nargs)
        cap *= 2;
    argv = realloc(ln->argv, cap * sizeof(*argv));
    if (argv == NULL)
        return -1;
    ln->argv = argv;
    argvlen = realloc(ln->argvlen, cap * sizeof(*argvlen));
    if (argvlen == NULL)
        return -1;
    ln->argvlen = argvlen;
    num = realloc(ln->num, cap * sizeof(*num));
    if (num == NULL)
        return -1;
    ln->num = num;
    ln->cap = cap;
    return 0;
}

static void settle_cb(redisAsyncContext *ac, void *reply, void *privdata);

static void
arg(struct lane *ln, size_t i, const char *s, size_t len)
{
    ln->argv[i] = s;
    ln->argvlen[i] = len;
}

static void
arg_num(struct lane *ln, size_t i, int64_t v)
{
    int n = snprintf(ln->num[i], sizeof(ln->num[i]), "%" PRId64, v);
    arg(ln, i, ln->num[i], (size_t)n);
}

static void
arg_str(struct lane *ln, size_t i, const char *s)
{
    arg(ln, i, s ? s : "", s ? strlen(s) : 0);
}

/* Send one settle call on `ln` with up to MAX_OPS_PER_CALL ops and a claim. */
static void
lane_send(struct lane *ln, unsigned claim_n)
{
    struct loop *l = ln->loop;
    hq_worker *w = l->w;
    struct op *op, **tail;
    size_t nops = 0, n, i;
    int rc;

    for (op = ln->pending; op && nops < MAX_OPS_PER_CALL; op = op->next)
        nops++;
    if (lane_grow(ln, 3 + 6 * nops) != 0) {
        wlog(w, HQ_LOG_ERROR, "out of memory building a settle call");
        return;
    }
    arg_num(ln, 0, w->opts.lease_ms);
    arg_num(ln, 1, claim_n);
    arg_num(ln, 2, (int64_t)nops);
    i = 3;
    tail = &ln->pending;
    for (op = ln->pending, n = 0; n < nops; op = op->next, n++) {
        /* done, the common op, in its short form: "d", key, token. */
        arg_str(ln, i++, op->type == OP_DONE ? "d" : op_names[op->type]);
        arg_str(ln, i++, op->job->key);
        arg_str(ln, i++, op->job->token);
        if (op->type != OP_DONE) {
            arg_num(ln, i++, op->n);
            arg_str(ln, i++, op->reason);
            arg_str(ln, i++, op->error);
        }
        tail = &op->next;
    }
    rc = hq__conn_eval(&l->cmd, ln->shard, "settle", (int)i, ln->argv,
                       ln->argvlen, settle_cb, ln);
    if (rc != HQ_OK) {
        char detail[120];

        snprintf(detail, sizeof(detail), "cannot send settle call: %s",
                 hq_strerror(rc));
        STAT_ADD(w, redis_errors, 1);
        lane_failed(ln, detail);
        ln->retry_ns = mono_ns() + ERROR_BACKOFF_MS * 1000000ull;
        timer_set_ms(ln->timer_ev, ERROR_BACKOFF_MS);
        return;
    }
    /* Detach the ops sent: the first nops of pending. */
    ln->sent = nops ? ln->pending : NULL;
    ln->pending = *tail;
    *tail = NULL;
    if (ln->pending == NULL)
        ln->pending_tail = &ln->pending;
    ln->inflight = 1;
    ln->asked = claim_n;
    l->reserved += claim_n;
    ln->sent_ns = mono_ns();
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg_)
{
    struct loop *l = arg_;
    uint64_t now = mono_ns();
    unsigned i, hungry = 0, k;

    l->flush_scheduled = 0;
    if (!l->cmd.up || l->closing)
        return;
    for (i = 0; i < l->nlanes; i++)
        if (!l->lanes[i].idle && !l->lanes[i].inflight)
            hungry++;
    for (k = 0; k < l->nlanes; k++) {
        struct lane *ln = &l->lanes[(l->next_lane + k) % l->nlanes];
        unsigned claim_n = 0, fs;

        if (ln->inflight || now < ln->retry_ns)
            continue;
        fs = free_slots(l);
        if (!l->draining && !ln->idle && fs > 0) {
            /* With several shards, share the free slots among the lanes
             * that want keys, so that one busy shard does not starve the
             * others. */
            claim_n = hungry > 1 ? (fs + hungry - 1) / hungry : fs;
            if (claim_n > fs)
                claim_n = fs;
        }
        if (ln->pending || claim_n > 0)
            lane_send(ln, claim_n);
    }
    l->next_lane = (l->next_lane + 1) % l->nlanes;
    maybe_exit(l);
}

static void
lane_requeue_sent(struct lane *ln)
{
    struct op *op = ln->sent, *last = NULL;

    if (op == NULL)
        return;
    for (; op; op = op->next)
        last = op;
    last->next = ln->pending;
    if (ln->pending == NULL)
        ln->pending_tail = &last->next;
    ln->pending = ln->sent;
    ln->sent = NULL;
}

static void
op_answered(struct loop *l, struct op *op, int applied, uint64_t now)
{
    hq_worker *w = l->w;
    hq_job *j = op->job;
    int outcome;

    if (op->type == OP_RENEW) {
        j->renew_queued = 0;
        if (applied) {
            STAT_ADD(w, renewed, 1);
        } else if (!j->lost) {
            j->lost = 1;
            STAT_ADD(w, stale, 1);
            wlog_job(w, HQ_LOG_WARN, j, "lease lost while the job ran (renewal stale)",
                     NULL);
        }
        return;
    }
    outcome = applied ? op_outcome[op->type] : HQ_SETTLED_STALE;
    switch (outcome) {
    case HQ_SETTLED_DONE: STAT_ADD(w, done, 1); break;
    case HQ_SETTLED_RETRY: STAT_ADD(w, retried, 1); break;
    case HQ_SETTLED_PARK: STAT_ADD(w, parked, 1); break;
    case HQ_SETTLED_DEAD: STAT_ADD(w, dead, 1); break;
    case HQ_SETTLED_HOLD: STAT_ADD(w, held, 1); break;
    case HQ_SETTLED_RELEASE: STAT_ADD(w, released, 1); break;
    default:
        STAT_ADD(w, stale, 1);
        wlog_job(w, HQ_LOG_WARN, j, "settlement rejected: the lease is no longer ours",
                 "op", op_names[op->type], NULL);
    }
    if (w->opts.on_settled)
        w->opts.on_settled(j, outcome, (int64_t)(now - j->claimed_ns) / 1000,
                           w->opts.settled_arg);
    if (j->state == JOB_SETTLING)
        job_free(j);
}

static void
lane_go_idle(struct lane *ln, int64_t now_ms, int64_t next_due_ms)
{
    int64_t ms = IDLE_MAX_MS;

    ln->idle = 1;
    if (next_due_ms >= 0 && now_ms >= 0 && next_due_ms - now_ms < ms)
        ms = next_due_ms - now_ms;
    if (ms < 1)
        ms = 1;
    timer_set_ms(ln->timer_ev, ms);
}

static void
lane_claimed(struct lane *ln, redisReply **e)
{
    struct loop *l = ln->loop;
    hq_worker *w = l->w;
    hq_job *j = job_from_claim(ln, e);

    if (j == NULL) {
        wlog(w, HQ_LOG_ERROR,
             "cannot read a key claimed ('%.*s'); its lease will expire",
             e[0]->type == REDIS_REPLY_STRING ? (int)e[0]->len : 0,
             e[0]->type == REDIS_REPLY_STRING ? e[0]->str : "");
        STAT_ADD(w, redis_errors, 1);
        return;
    }
    STAT_ADD(w, claimed, 1);
    j->claimed_ns = mono_ns();
    j->policy = w->opts.on_failure;
    if (w->opts.policy)
        hq_job_set_policy(j, w->opts.policy(j, w->opts.policy_arg));
    if (l->draining) {
        job_finish(j, OP_RELEASE, 0, NULL, NULL);
        return;
    }
    if (j->malformed) {
        wlog_job(w, HQ_LOG_ERROR, j, "cannot read the head job: dead-lettered",
                 "outcome", "dead", NULL);
        job_finish(j, OP_DEAD, j->attempt, NULL, "malformed job record");
        return;
    }
    if (j->attempt > w->opts.max_attempts) {
        /* Reaped too often (crashes): its attempts are spent already. */
        job_apply_policy(j, "attempts exhausted (lease expired)");
        return;
    }
    j->state = JOB_RUNNING;
    j->renew_ns = j->claimed_ns + (uint64_t)w->opts.lease_ms * 1000000ull / 3;
    run_append(l, j);
    l->running++;
    STAT_ADD(w, in_flight, 1);
    w->opts.handler(j, w->opts.handler_arg);
}

static void
settle_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct lane *ln = privdata;
    struct loop *l = ln->loop;
    hq_worker *w = l->w;
    redisReply *r = reply_;
    redisReply *res, *cl;
    struct op *op, *next;
    int64_t now_ms = -1, next_due = -1;
    uint64_t now = mono_ns();
    size_t i, nsent = 0, nclaimed;

    ln->inflight = 0;
    l->reserved -= ln->asked;
    for (op = ln->sent; op; op = op->next)
        nsent++;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->elements != nsent || r->element[1]->elements % 5 ||
        reply_int(r->element[2], &now_ms) ||
        reply_int(r->element[3], &next_due)) {
        char detail[300];

        STAT_ADD(w, redis_errors, 1);
        if (r && r->type == REDIS_REPLY_ERROR)
            snprintf(detail, sizeof(detail), "settle failed: %.250s", r->str);
        else if (r)
            snprintf(detail, sizeof(detail), "settle answered something unexpected");
        else
            snprintf(detail, sizeof(detail), "settle call got no answer "
                     "(connection lost or dropped)");
        if (!l->closing)
            lane_failed(ln, detail);
        /* Connection lost, or an error: send the same ops again later. */
        lane_requeue_sent(ln);
        if (r && !l->closing) {
            ln->retry_ns = now + ERROR_BACKOFF_MS * 1000000ull;
            timer_set_ms(ln->timer_ev, ERROR_BACKOFF_MS);
        }
        maybe_exit(l);
        return;
    }
    STAT_ADD(w, round_trips, 1);
    lane_answered(ln);
    res = r->element[0];
    cl = r->element[1];

    /* Answer the ops first: their slots are free before handlers run. */
    op = ln->sent;
    ln->sent = NULL;
    for (i = 0; op; i++, op = next) {
        int64_t applied = 0;
        next = op->next;
        reply_int(res->element[i], &applied);
        op_answered(l, op, applied != 0, now);
    }

    nclaimed = cl->elements / 5;
    if (ln->asked > 0 && nclaimed < ln->asked && !ln->wake_pending)
        lane_go_idle(ln, now_ms, next_due);
    else
        ln->idle = 0;
    ln->wake_pending = 0;
    for (i = 0; i < nclaimed; i++)
        lane_claimed(ln, &cl->element[5 * i]);
    schedule_flush(l);
}

/* ------------------------------------------------------------------------ */
/* The registry announcement (loop 0).                                       */

static void
beat_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct loop *l = privdata;
    redisReply *r = reply_;

    (void)ac;
    if (l->beat_inflight > 0)
        l->beat_inflight--;
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        char msg[HQ_QUIETLOG_SUBJECT_MAX];
        unsigned long quiet;

        /* Every second while the registry's master is down: see quietlog. */
        snprintf(msg, sizeof(msg), "cannot announce this worker in redis: %.100s",
                 r->str);
        if (hq__quietlog_fail(&l->w->quiet, msg, 0, hq__mono_ms(), &quiet)) {
            if (quiet)
                wlog(l->w, HQ_LOG_WARN, "%s (%lu more not logged)", msg, quiet);
            else
                wlog(l->w, HQ_LOG_WARN, "%s", msg);
        }
    }
    if (l->draining)
        maybe_exit(l);
}

static void
beat(struct loop *l)
{
    hq_worker *w = l->w;
    char loops[24], inflight[24], ttl[24];
    const char *argv[8];
    int64_t n = atomic_load_explicit(&w->in_flight, memory_order_relaxed);

    if (l->beat_inflight || l->draining ||
        hq__conn_for_shard(&l->cmd, HQ_SHARD_META) == NULL)
        return;
    snprintf(loops, sizeof(loops), "%u", w->nloops);
    snprintf(inflight, sizeof(inflight), "%lld", (long long)(n > 0 ? n : 0));
    snprintf(ttl, sizeof(ttl), "%d", HQ_WORKER_TTL_MS);
    argv[0] = w->beat_id;
    argv[1] = w->host;
    argv[2] = w->pid;
    argv[3] = hq_version();
    argv[4] = w->started_ms;
    argv[5] = loops;
    argv[6] = inflight;
    argv[7] = ttl;
    if (hq__conn_eval(&l->cmd, HQ_SHARD_META, "worker_beat", 8, argv, NULL,
                      beat_reply, l) == HQ_OK)
        l->beat_inflight++;
}

/* Draining: leave the registry now (worker_gone), not 5 s from now. */
static void
unregister(struct loop *l)
{
    hq_worker *w = l->w;
    const char *argv[1] = {w->beat_id};

    if (l->beat_ev == NULL)
        return;
    event_del(l->beat_ev);
    if (hq__conn_for_shard(&l->cmd, HQ_SHARD_META) != NULL &&
        hq__conn_eval(&l->cmd, HQ_SHARD_META, "worker_gone", 1, argv, NULL,
                      beat_reply, l) == HQ_OK)
        l->beat_inflight++;
}

static void
beat_cb(evutil_socket_t fd, short what, void *arg_)
{
    (void)fd;
    (void)what;
    beat(arg_);
}

/* ------------------------------------------------------------------------ */
/* Timers: lane wake-up, the periodic tick (renewals, watchdog, drain).      */

static void
lane_timer_cb(evutil_socket_t fd, short what, void *arg_)
{
    struct lane *ln = arg_;

    ln->idle = 0;
    schedule_flush(ln->loop);
}

static void
release_all(struct loop *l)
{
    hq_job *j;

    while ((j = l->run_head) != NULL) {
        job_stop_running(j);
        j->state = JOB_ZOMBIE;
        j->fin.job = j;
        j->fin.type = OP_RELEASE;
        op_queue(j->lane, &j->fin);
        j->next = l->zombies;
        l->zombies = j;
    }
    schedule_flush(l);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg_)
{
    struct loop *l = arg_;
    hq_worker *w = l->w;
    uint64_t now = mono_ns();
    uint64_t period = (uint64_t)w->opts.lease_ms * 1000000ull / 3;
    uint64_t timeout = (uint64_t)w->addr.timeout_ms * 1000000ull;
    hq_job *j;
    unsigned i;

    /* Renewals: the running list is ordered by renew_ns. */
    while ((j = l->run_head) != NULL && j->renew_ns <= now) {
        run_unlink(l, j);
        j->renew_ns = now + period;
        run_append(l, j);
        if (!j->renew_queued && !j->lost) {
            j->renew_queued = 1;
            j->renew.job = j;
            j->renew.type = OP_RENEW;
            op_queue(j->lane, &j->renew);
            schedule_flush(l);
        }
    }
    /* Watchdog: hiredis has no command timeout of its own. A lane's call
     * unanswered for too long drops the connection it went on: on a
     * cluster only its master's, so that the lanes of the other masters
     * go on (the reset answers the dropped calls, clearing `inflight` of
     * every lane of that master). */
    for (i = 0; i < l->nlanes; i++) {
        if (l->lanes[i].inflight && now - l->lanes[i].sent_ns > timeout &&
            (l->cmd.ac || l->cmd.router)) {
            char why[80];

            snprintf(why, sizeof(why), "shard %u: redis did not answer within %d ms",
                     l->lanes[i].shard, w->addr.timeout_ms);
            hq__conn_reset_shard(&l->cmd, l->lanes[i].shard, why);
        }
    }
    if (l->draining && l->run_head && now >= l->drain_ns) {
        wlog(w, HQ_LOG_INFO, "shutdown timeout: handing back %u leases",
             l->running);
        release_all(l);
    }
    maybe_exit(l);
}

static int
loop_quiet(const struct loop *l)
{
    unsigned i;

    if (l->running || l->beat_inflight)
        return 0;
    for (i = 0; i < l->nlanes; i++)
        if (l->lanes[i].inflight || l->lanes[i].pending)
            return 0;
    return 1;
}

static void
maybe_exit(struct loop *l)
{
    if (!l->draining || l->closing)
        return;
    if (loop_quiet(l) || mono_ns() >= l->hard_ns) {
        l->closing = 1;
        event_base_loopbreak(l->base);
    }
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg_)
{
    struct loop *l = arg_;
    char buf[16];
    uint64_t now = mono_ns();

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    if (l->draining)
        return;
    l->draining = 1;
    l->drain_ns = now + (uint64_t)l->w->opts.shutdown_timeout_ms * 1000000ull;
    l->hard_ns = l->drain_ns + DRAIN_GRACE_MS * 1000000ull;
    wlog(l->w, HQ_LOG_INFO, "loop %u draining %u jobs", l->index, l->running);
    unregister(l);
    schedule_flush(l);
    maybe_exit(l);
}

/* ------------------------------------------------------------------------ */
/* Connections.                                                             */

/* A push of lane `privdata`'s wake channel (hq__conn_subscribe()). */
static void
wake_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct lane *ln = privdata;
    redisReply *r = reply_;
    const char *type;

    (void)ac;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    type = r->element[0]->str;
    /* A message, or the slot moved (`sunsubscribe`, the subscription
     * follows it): wake messages may have been missed, claim again. */
    if (strcmp(type, "message") != 0 && strcmp(type, "smessage") != 0 &&
        strcmp(type, "sunsubscribe") != 0)
        return;
    if (ln->inflight)
        ln->wake_pending = 1;
    if (ln->idle) {
        ln->idle = 0;
        evtimer_del(ln->timer_ev);
    }
    schedule_flush(ln->loop);
}

/* Each lane's wake channel, "{ns:S}:wake", on its shard's master. */
static void
subscribe(struct loop *l)
{
    unsigned i;

    for (i = 0; i < l->nlanes; i++)
        if (hq__conn_subscribe(&l->sub, l->lanes[i].shard, "wake", wake_cb,
                               &l->lanes[i]) != HQ_OK) {
            wlog(l->w, HQ_LOG_ERROR,
                 "cannot subscribe to the wake channel of shard %u",
                 l->lanes[i].shard);
            break;
        }
}

static void
on_conn_up(struct hq__conn *c, void *arg_)
{
    struct loop *l = arg_;
    unsigned i;

    if (c == &l->sub)
        subscribe(l);
    else if (l->beat_ev != NULL)
        beat(l);
    /* Wake messages may have been missed while down: claim again. */
    for (i = 0; i < l->nlanes; i++)
        l->lanes[i].idle = 0;
    schedule_flush(l);
}

static void
on_conn_down(struct hq__conn *c, const char *why, void *arg_)
{
    struct loop *l = arg_;
    char msg[HQ_QUIETLOG_SUBJECT_MAX];
    unsigned long quiet;

    if (c == &l->cmd)
        l->beat_inflight = 0; /* its calls are answered with NULL */
    if (l->closing)
        return;
    STAT_ADD(l->w, redis_errors, 1);
    /* The same failure again (a node still down): see quietlog_int.h. */
    snprintf(msg, sizeof(msg), "%s connection: %s",
             c == &l->sub ? "wake" : "command", why);
    if (!hq__quietlog_fail(&l->w->quiet, msg, 0, hq__mono_ms(), &quiet))
        return;
    if (quiet)
        wlog(l->w, HQ_LOG_WARN, "%s (%lu more not logged)", msg, quiet);
    else
        wlog(l->w, HQ_LOG_WARN, "%s", msg);
}

/* ------------------------------------------------------------------------ */
/* Loop threads.                                                            */

static void
loop_cleanup(struct loop *l)
{
    unsigned i;

    l->closing = 1;
    hq__conn_release(&l->cmd);
    hq__conn_release(&l->sub);
    /* Jobs still in hand (Redis was gone at the end of the drain): their
     * leases expire and are reaped. */
    for (i = 0; i < l->nlanes; i++) {
        struct lane *ln = &l->lanes[i];
        struct op *op, *next;
        lane_requeue_sent(ln);
        for (op = ln->pending; op; op = next) {
            next = op->next;
            if (op->type != OP_RENEW && op->job->state == JOB_SETTLING)
                job_free(op->job);
        }
        ln->pending = NULL;
        ln->pending_tail = &ln->pending;
        if (ln->timer_ev)
            event_free(ln->timer_ev);
        ln->timer_ev = NULL;
    }
    while (l->run_head) {
        hq_job *j = l->run_head;
        job_stop_running(j);
        j->state = JOB_ZOMBIE;
        j->next = l->zombies;
        l->zombies = j;
    }
    if (l->flush_ev)
        event_free(l->flush_ev);
    if (l->tick_ev)
        event_free(l->tick_ev);
    if (l->stop_ev)
        event_free(l->stop_ev);
    if (l->beat_ev)
        event_free(l->beat_ev);
    l->beat_ev = NULL;
    l->flush_ev = l->tick_ev = l->stop_ev = NULL;
    if (l->base)
        event_base_free(l->base);
    l->base = NULL;
}

/*
 * The loop has stopped with work unanswered (Redis was gone at the end of a
 * drain): tell the handler about every job it will hear no more of, while
 * its event base still exists, so that it can free what it keeps.
 */
static void
loop_abandon(struct loop *l)
{
    hq_worker *w = l->w;
    unsigned i;

    for (i = 0; i < l->nlanes; i++) {
        struct lane *ln = &l->lanes[i];
        struct op *op, *next;

        lane_requeue_sent(ln);
        for (op = ln->pending; op; op = next) {
            next = op->next;
            if (op->type == OP_RENEW)
                continue;
            if (w->opts.on_settled)
                w->opts.on_settled(op->job, HQ_SETTLED_LOST,
                                   (int64_t)(mono_ns() - op->job->claimed_ns) / 1000,
                                   w->opts.settled_arg);
            if (op->job->state == JOB_SETTLING)
                job_free(op->job);
        }
        ln->pending = NULL;
        ln->pending_tail = &ln->pending;
    }
    while (l->run_head) {
        hq_job *j = l->run_head;

        job_stop_running(j);
        j->state = JOB_ZOMBIE;
        j->next = l->zombies;
        l->zombies = j;
        if (w->opts.on_settled)
            w->opts.on_settled(j, HQ_SETTLED_LOST,
                               (int64_t)(mono_ns() - j->claimed_ns) / 1000,
                               w->opts.settled_arg);
    }
}

static void *
loop_main(void *arg_)
{
    struct loop *l = arg_;
    hq_worker *w = l->w;
    struct hq__conn_hooks hooks = {on_conn_up, on_conn_down, l};
    struct timeval tick;
    int64_t tick_ms;
    unsigned i;

    tick_ms = w->opts.lease_ms / 6;
    if (tick_ms > 250)
        tick_ms = 250;
    if (tick_ms < 10)
        tick_ms = 10;
    tick.tv_sec = tick_ms / 1000;
    tick.tv_usec = (tick_ms % 1000) * 1000;

    l->base = event_base_new();
    if (l->base == NULL)
        goto fail;
    l->flush_ev = event_new(l->base, -1, 0, flush_cb, l);
    l->tick_ev = event_new(l->base, -1, EV_PERSIST, tick_cb, l);
    l->stop_ev = event_new(l->base, l->pipefd[0], EV_READ | EV_PERSIST,
                           stop_cb, l);
    if (!l->flush_ev || !l->tick_ev || !l->stop_ev ||
        hq__conn_init(&l->cmd, l->base, &w->addr, &w->ns, &hooks, 0) != HQ_OK ||
        hq__conn_init(&l->sub, l->base, &w->addr, &w->ns, &hooks,
                      HQ_CONN_SUBSCRIBER) != HQ_OK)
        goto fail;
    for (i = 0; i < l->nlanes; i++) {
        l->lanes[i].timer_ev = evtimer_new(l->base, lane_timer_cb, &l->lanes[i]);
        if (l->lanes[i].timer_ev == NULL)
            goto fail;
    }
    if (l->index == 0) {
        struct timeval every = {BEAT_MS / 1000, (BEAT_MS % 1000) * 1000};

        l->beat_ev = event_new(l->base, -1, EV_PERSIST, beat_cb, l);
        if (l->beat_ev == NULL)
            goto fail;
        event_add(l->beat_ev, &every);
    }
    event_add(l->stop_ev, NULL);
    event_add(l->tick_ev, &tick);
    hq__conn_start(&l->cmd);
    hq__conn_start(&l->sub);
    if (w->opts.loop_init)
        l->loop_state = w->opts.loop_init(l->base, w->opts.loop_arg);
    event_base_dispatch(l->base);
    loop_abandon(l);
    if (w->opts.loop_fini)
        w->opts.loop_fini(l->base, l->loop_state, w->opts.loop_arg);
    loop_cleanup(l);
    return NULL;
fail:
    wlog(w, HQ_LOG_ERROR, "loop %u: cannot set up its event loop", l->index);
    loop_cleanup(l);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The public handle.                                                       */

int
hq_worker_new(const struct hq_worker_options *opts, hq_worker **out)
{
    hq_worker *w;
    unsigned i, s, threads, conc;
    int rc;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return HQ_ENOMEM;
    *out = w;
    if (hq__quietlog_init(&w->quiet) != HQ_OK)
        return hq__err_set(&w->err, HQ_ENOMEM, "cannot set up the worker's log");
    if (opts == NULL || opts->handler == NULL)
        return hq__err_set(&w->err, HQ_EINVAL, "a worker needs a handler");
    w->opts = *opts;
    w->opts.store.url = NULL;
    w->opts.store.ns = NULL;
    w->opts.store.sentinel_user = NULL; /* borrowed: read from opts only */
    w->opts.store.sentinel_password = NULL;
    if (w->opts.concurrency == 0)
        w->opts.concurrency = 64;
    if (w->opts.threads == 0)
        w->opts.threads = 2;
    if (w->opts.lease_ms <= 0)
        w->opts.lease_ms = 30000;
    if (w->opts.max_attempts <= 0)
        w->opts.max_attempts = 12;
    if (w->opts.backoff_min_ms <= 0)
        w->opts.backoff_min_ms = 5000;
    if (w->opts.backoff_max_ms <= 0)
        w->opts.backoff_max_ms = 3600000;
    if (w->opts.backoff_max_ms < w->opts.backoff_min_ms)
        w->opts.backoff_max_ms = w->opts.backoff_min_ms;
    if (w->opts.shutdown_timeout_ms <= 0)
        w->opts.shutdown_timeout_ms = 30000;
    if (w->opts.on_failure != HQ_ON_FAILURE_HOLD)
        w->opts.on_failure = HQ_ON_FAILURE_DEADLETTER;

    rc = hq__store_parse_url(opts->store.url ? opts->store.url
                                             : "redis://127.0.0.1:6379/0",
                             opts->store.timeout_ms ? opts->store.timeout_ms
                                                    : 5000,
                             &w->addr, &w->err);
    if (rc == HQ_OK)
        rc = hq__store_set_sentinels(&w->addr, opts->store.sentinels,
                                     opts->store.sentinel_master, &w->err);
    if (rc == HQ_OK)
        rc = hq__store_set_sentinel_auth(&w->addr, opts->store.sentinel_user,
                                         opts->store.sentinel_password, &w->err);
    if (rc == HQ_OK)
        hq__conn_probe_cluster(&w->addr);
    if (rc != HQ_OK)
        return rc;
    if (w->addr.timeout_ms <= 0)
        w->addr.timeout_ms = 5000;
    rc = hq__store_ns_init(&w->ns, opts->store.ns, opts->store.shards, &w->err);
    if (rc != HQ_OK)
        return rc;

    threads = w->opts.threads;
    conc = w->opts.concurrency;
    if (threads > conc)
        threads = conc;
    w->nloops = threads;
    w->loops = calloc(threads, sizeof(*w->loops));
    if (w->loops == NULL)
        return hq__err_set(&w->err, HQ_ENOMEM, "out of memory");
    for (i = 0; i < threads; i++)
        w->loops[i].pipefd[0] = w->loops[i].pipefd[1] = -1;
    for (i = 0; i < threads; i++) {
        struct loop *l = &w->loops[i];
        l->w = w;
        l->index = i;
        l->capacity = conc / threads + (i < conc % threads ? 1 : 0);
        l->rng = hq__rng_seed(l);
        if (pipe2(l->pipefd, O_NONBLOCK | O_CLOEXEC) != 0)
            return hq__err_set(&w->err, HQ_EIO, "cannot create a pipe: %s",
                               strerror(errno));
        l->nlanes = w->ns.shards;
        l->lanes = calloc(l->nlanes, sizeof(*l->lanes));
        if (l->lanes == NULL)
            return hq__err_set(&w->err, HQ_ENOMEM, "out of memory");
        for (s = 0; s < l->nlanes; s++) {
            struct lane *ln = &l->lanes[s];
            ln->loop = l;
            ln->shard = s;
            ln->pending_tail = &ln->pending;
            hq__store_prefix(&w->ns, s, ln->prefix, sizeof(ln->prefix));
        }
        l->next_lane = i % l->nlanes;
    }
    return HQ_OK;
}

int
hq_worker_start(hq_worker *w)
{
    redisContext *c;
    unsigned i;

    if (w->started)
        return hq__err_set(&w->err, HQ_EINVAL, "worker already started");
    /*
     * Fail early when Redis is down (this also loads the scripts), or when
     * the namespace was created with another shard count (our keys would
     * land on other shards than its).
     */
    c = hq__conn_connect_sync(&w->addr, &w->err);
    if (c == NULL)
        return HQ_ESTORE;
    redisFree(c);
    {
        /* The record lives on the node of {ns:meta} (a cluster routes it). */
        struct hq__sconn sc;
        struct hq__err err = {{0}};
        redisContext *mc;
        unsigned had;
        int rc = HQ_ESTORE;

        hq__sconn_init(&sc, &w->addr, &w->ns);
        mc = hq__sconn_for_shard(&sc, HQ_SHARD_META, &err);
        if (mc != NULL)
            rc = hq__registry_check_shards(mc, &w->ns, &had, &err);
        hq__sconn_release(&sc);
        /* Only a mismatch stops us: a Redis that cannot answer the check
         * now (refusing writes when full, say) is the caller's to retry. */
        if (rc == HQ_ECONFIG)
            return hq__err_set(&w->err, rc, "%s", err.msg);
    }
    {
        struct timespec now;

        clock_gettime(CLOCK_REALTIME, &now);
        if (gethostname(w->host, sizeof(w->host) - 1) != 0 || w->host[0] == '\0')
            snprintf(w->host, sizeof(w->host), "localhost");
        snprintf(w->pid, sizeof(w->pid), "%d", (int)getpid());
        snprintf(w->started_ms, sizeof(w->started_ms), "%lld",
                 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        snprintf(w->beat_id, sizeof(w->beat_id), "%s:%s:%s", w->host, w->pid,
                 w->started_ms);
    }
    for (i = 0; i < w->nloops; i++) {
        int rc = pthread_create(&w->loops[i].thread, NULL, loop_main,
                                &w->loops[i]);
        if (rc != 0) {
            /* Stop the loops already running, and wait for them. */
            w->started = (int)i;
            hq_worker_stop(w);
            hq_worker_join(w);
            return hq__err_set(&w->err, HQ_EIO, "cannot start a thread: %s",
                               strerror(rc));
        }
    }
    w->started = (int)w->nloops;
    return HQ_OK;
}

void
hq_worker_stop(hq_worker *w)
{
    unsigned i;
    int saved = errno;

    /* Only write(2): async-signal-safe. */
    for (i = 0; i < w->nloops; i++) {
        if (w->loops[i].pipefd[1] >= 0) {
            ssize_t n = write(w->loops[i].pipefd[1], "s", 1);
            (void)n;
        }
    }
    errno = saved;
}

void
hq_worker_join(hq_worker *w)
{
    int i;

    for (i = 0; i < w->started; i++)
        pthread_join(w->loops[i].thread, NULL);
    w->started = 0;
}

void
hq_worker_free(hq_worker *w)
{
    unsigned i, s;

    if (w == NULL)
        return;
    hq_worker_stop(w);
    hq_worker_join(w);
    for (i = 0; w->loops && i < w->nloops; i++) {
        struct loop *l = &w->loops[i];
        while (l->zombies) {
            hq_job *j = l->zombies;
            l->zombies = j->next;
            job_free(j);
        }
        for (s = 0; l->lanes && s < l->nlanes; s++) {
            free(l->lanes[s].argv);
            free(l->lanes[s].argvlen);
            free(l->lanes[s].num);
        }
        free(l->lanes);
        if (l->pipefd[0] >= 0)
            close(l->pipefd[0]);
        if (l->pipefd[1] >= 0)
            close(l->pipefd[1]);
    }
    free(w->loops);
    hq__quietlog_release(&w->quiet);
    free(w);
}

const char *
hq_worker_errmsg(const hq_worker *w)
{
    return w ? w->err.msg : "out of memory";
}

void
hq_worker_stats(const hq_worker *w, struct hq_worker_stats *st)
{
#define LOAD(f) st->f = atomic_load_explicit(&((hq_worker *)w)->f, memory_order_relaxed)
    LOAD(claimed);
    LOAD(done);
    LOAD(retried);
    LOAD(parked);
    LOAD(dead);
    LOAD(held);
    LOAD(released);
    LOAD(stale);
    LOAD(renewed);
    LOAD(round_trips);
    LOAD(redis_errors);
    LOAD(in_flight);
#undef LOAD
}
