/*
 * The asynchronous batched pusher (see pusher_int.h).
 *
 * A batch is open (collecting) until the flush event sends it, then in
 * flight until Redis answers the enqueue call (and, with wait_replicas,
 * the WAIT after it). e[i].req is NULL once push i stopped waiting.
 *
 * One flight per server: while batches sent to a Redis server (the one
 * Redis, or a cluster master) are in flight, the open batches of its
 * shards wait and grow; when the last of them ends, the flush sends every
 * waiting batch of that server at once, in one write. Under load a call
 * then carries all that came in during a round trip instead of one loop
 * pass's share of its shard (often one job), and the server wakes once per
 * flight instead of once per call: Redis's cost per call (the script's
 * start, parsing, the reply, the wakeup) is paid for several jobs. A
 * push that finds its server idle goes at the end of its loop pass, as
 * before, so an idle intake adds no latency; a busy one adds at most the
 * round trip of the flight ahead. Sends on one connection stay in order,
 * so a key's jobs are stored in the order they were pushed. A
 * failed batch answers each push still waiting with a detail that says
 * whether the job may be stored (so that the requester knows to retry
 * with the same webhook-id).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pusher_int.h"

#define LOST_DETAIL "the connection to redis was lost; the job may or may not " \
                    "be stored: retry with the same webhook-id"

struct hq__push_batch {
    struct hq__pusher *p;
    unsigned shard;
    int node;                   /* sent to this server (counted in
                                   p->flying); -1: not sent, or unknown */
    unsigned n;
    size_t bytes;
    struct hq_push_result *res; /* with WAIT: the script's answers */
    struct {
        void *req;                  /* NULL: stopped waiting */
        struct hq__push_slot *slot;
        struct hq_push job;         /* strings borrowed until sent */
        unsigned char digest[HQ_ENQUEUE_DIGEST]; /* of its webhook id */
    } e[HQ_ENQUEUE_BATCH_MAX];
};

struct hq__pusher {
    struct hq__conn *conn;
    const struct hq__store_ns *ns;
    struct hq__enqueue_limits lim;
    unsigned wait_replicas;
    char wait_timeout[24];
    struct hq__pusher_hooks hooks;
    struct event *flush_ev;          /* sends the open batches */
    struct hq__push_batch **open;    /* per shard: its open batch, or NULL */
    unsigned *open_shards;           /* the shards with an open batch */
    unsigned nopen;
    unsigned pending;                /* batches open or in flight */
    unsigned flying[HQ_CONN_NODES_MAX]; /* batches in flight per server */
};

static void on_flush(evutil_socket_t fd, short what, void *arg);

int
hq__pusher_new(struct event_base *base, struct hq__conn *conn,
               const struct hq__store_ns *ns,
               const struct hq__pusher_options *opts,
               const struct hq__pusher_hooks *hooks, struct hq__pusher **out)
{
    struct hq__pusher *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (p == NULL)
        return HQ_ENOMEM;
    p->conn = conn;
    p->ns = ns;
    hq__enqueue_limits_init(&p->lim, &opts->limits);
    p->wait_replicas = opts->wait_replicas;
    snprintf(p->wait_timeout, sizeof(p->wait_timeout), "%" PRId64,
             opts->wait_timeout_ms);
    p->hooks = *hooks;
    p->flush_ev = event_new(base, -1, 0, on_flush, p);
    p->open = calloc(ns->shards, sizeof(*p->open));
    p->open_shards = calloc(ns->shards, sizeof(*p->open_shards));
    if (p->flush_ev == NULL || p->open == NULL || p->open_shards == NULL) {
        hq__pusher_free(p);
        return HQ_ENOMEM;
    }
    *out = p;
    return HQ_OK;
}

void
hq__pusher_free(struct hq__pusher *p)
{
    if (p == NULL)
        return;
    /* Batches not sent yet: their requesters are gone. */
    while (p->nopen > 0) {
        unsigned shard = p->open_shards[--p->nopen];

        free(p->open[shard]);
        p->open[shard] = NULL;
        p->pending--;
    }
    if (p->flush_ev)
        event_free(p->flush_ev);
    free(p->open);
    free(p->open_shards);
    free(p);
}

unsigned
hq__pusher_pending(const struct hq__pusher *p)
{
    return p->pending;
}

void
hq__pusher_cancel(struct hq__push_slot *slot)
{
    if (slot->batch != NULL)
        slot->batch->e[slot->idx].req = NULL; /* its reply finds no one */
    slot->batch = NULL;
}

/* Push i of `b`, taken out of the batch to be answered now; NULL when it
 * stopped waiting. */
static void *
take(struct hq__push_batch *b, unsigned i)
{
    void *req = b->e[i].req;

    if (req != NULL) {
        b->e[i].req = NULL;
        b->e[i].slot->batch = NULL;
    }
    return req;
}

/* Every push still waiting in `b` gets `outcome` with `detail`. */
static void
answer_all(struct hq__push_batch *b, enum hq__push_outcome outcome,
           const char *detail)
{
    struct hq__pusher *p = b->p;

    for (unsigned i = 0; i < b->n; i++) {
        void *req = take(b, i);

        if (req != NULL)
            p->hooks.done(req, outcome, NULL, detail, p->hooks.arg);
    }
}

/* `b` is over: free it, and tell the owner. */
static void
batch_end(struct hq__push_batch *b)
{
    struct hq__pusher *p = b->p;

    if (b->node >= 0 && --p->flying[b->node] == 0 && p->nopen > 0)
        event_active(p->flush_ev, EV_TIMEOUT, 0); /* the batches waiting for it */
    free(b->res);
    free(b);
    if (p->hooks.batch_done)
        p->hooks.batch_done(p->hooks.arg);
}

static void
warn(struct hq__pusher *p, const char *what, const char *detail)
{
    char msg[300];

    if (p->hooks.warn == NULL)
        return;
    snprintf(msg, sizeof(msg), "%s failed: %.250s", what, detail);
    p->hooks.warn(msg, p->hooks.arg);
}

/* A batch that will not be sent: `detail` to its pushes (when given). */
static void
batch_drop(struct hq__push_batch *b, const char *detail)
{
    b->p->pending--;
    if (detail != NULL)
        answer_all(b, HQ_PUSH_FAILED, detail);
    batch_end(b);
}

static int send_wait(struct hq__push_batch *b, const redisReply *reply);

/* Redis answered a batch (or the connection was lost: r == NULL). */
static void
on_stored(redisAsyncContext *ac, void *r, void *privdata)
{
    struct hq__push_batch *b = privdata;
    struct hq__pusher *p = b->p;
    const redisReply *reply = r;
    char detail[200];

    (void)ac;
    p->pending--;
    if (reply == NULL) {
        answer_all(b, HQ_PUSH_FAILED, LOST_DETAIL);
    } else if (hq__enqueue_reply_check(reply, b->n) != HQ_OK) {
        snprintf(detail, sizeof(detail), "redis answered %s%.150s",
                 reply->type == REDIS_REPLY_ERROR ? "an error: " : "something unexpected",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        warn(p, "enqueue", detail);
        answer_all(b, HQ_PUSH_FAILED, detail);
    } else if (p->wait_replicas > 0) {
        /* The answers wait for WAIT (on_waited ends b). */
        if (send_wait(b, reply) == 0)
            return;
    } else {
        for (unsigned i = 0; i < b->n; i++) {
            struct hq_push_result res;
            void *req = take(b, i);

            if (req == NULL)
                continue;
            hq__enqueue_reply_job(reply, b->n, i, &res);
            p->hooks.done(req, HQ_PUSH_ANSWERED, &res, NULL, p->hooks.arg);
        }
    }
    batch_end(b);
}

static void on_waited(redisAsyncContext *ac, void *r, void *privdata);

/*
 * With wait_replicas: keep the script's answers in b->res and send WAIT for
 * the batch the script just stored. It is sent after the script's reply,
 * not pipelined behind the call: the connection may resend the script
 * (NOSCRIPT), and WAIT must come after whichever call wrote. It goes on the
 * connection that ran the script, since WAIT counts that connection's
 * writes. Returns 0, or -1 after answering every push.
 */
static int
send_wait(struct hq__push_batch *b, const redisReply *reply)
{
    struct hq__pusher *p = b->p;
    char nrep[16];
    const char *argv[3] = {"WAIT", nrep, p->wait_timeout};

    b->res = calloc(b->n, sizeof(*b->res));
    if (b->res == NULL) {
        answer_all(b, HQ_PUSH_FAILED, "out of memory; the job is stored: retry "
                                      "with the same webhook-id");
        return -1;
    }
    for (unsigned i = 0; i < b->n; i++)
        hq__enqueue_reply_job(reply, b->n, i, &b->res[i]);
    snprintf(nrep, sizeof(nrep), "%u", p->wait_replicas);
    if (hq__conn_command(p->conn, b->shard, 3, argv, NULL, on_waited, b) !=
        HQ_OK) {
        answer_all(b, HQ_PUSH_FAILED,
                   "cannot ask redis to WAIT for replicas; the job is stored "
                   "on the master: retry with the same webhook-id");
        return -1;
    }
    p->pending++;
    return 0;
}

/*
 * WAIT answered how many replicas have the batch (r == NULL: the
 * connection was lost). Enough: the script's answers go out. Too few: the
 * job is stored on the master but not acknowledged; a push refused as
 * full stored nothing, and gets its answer.
 */
static void
on_waited(redisAsyncContext *ac, void *r, void *privdata)
{
    struct hq__push_batch *b = privdata;
    struct hq__pusher *p = b->p;
    const redisReply *reply = r;
    char detail[300];
    int enough;

    (void)ac;
    p->pending--;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        if (reply != NULL)
            warn(p, "WAIT",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        answer_all(b, HQ_PUSH_FAILED,
                   reply == NULL ? LOST_DETAIL
                                 : "redis refused to WAIT for replicas; the job is "
                                   "stored on the master: retry with the same webhook-id");
        batch_end(b);
        return;
    }
    enough = reply->integer >= (long long)p->wait_replicas;
    snprintf(detail, sizeof(detail),
             "stored on the master, but %lld of %u replicas acknowledged it "
             "within %s ms: retry with the same webhook-id",
             reply->integer, p->wait_replicas, p->wait_timeout);
    for (unsigned i = 0; i < b->n; i++) {
        void *req = take(b, i);

        if (req == NULL)
            continue;
        if (enough || b->res[i].status == HQ_PUSH_FULL)
            p->hooks.done(req, HQ_PUSH_ANSWERED, &b->res[i], NULL, p->hooks.arg);
        else
            p->hooks.done(req, HQ_PUSH_NOT_REPLICATED, NULL, detail, p->hooks.arg);
    }
    batch_end(b);
}

/* Send the open batch of `shard` (served by server `node`, -1 when
 * unknown): one enqueue call for all its pushes. */
static void
batch_send(struct hq__pusher *p, unsigned shard, int node)
{
    struct hq__push_batch *b = p->open[shard];
    const char *argv[HQ_ENQUEUE_ARGC(HQ_ENQUEUE_BATCH_MAX)];
    size_t argvlen[HQ_ENQUEUE_ARGC(HQ_ENQUEUE_BATCH_MAX)];
    unsigned n = 0;

    p->open[shard] = NULL;
    /* Drop the pushes that stopped waiting since they joined. */
    for (unsigned i = 0; i < b->n; i++) {
        if (b->e[i].req == NULL)
            continue;
        b->e[n] = b->e[i];
        b->e[n].slot->idx = n;
        hq__enqueue_argv_job(n, &b->e[n].job, b->e[n].digest, argv, argvlen);
        n++;
    }
    b->n = n;
    if (n == 0) {
        batch_drop(b, NULL);
        return;
    }
    if (hq__conn_for_shard(p->conn, shard) == NULL) {
        batch_drop(b, "redis is unreachable; reconnecting");
        return;
    }
    hq__enqueue_argv_limits(&p->lim, argv, argvlen);
    if (hq__conn_eval(p->conn, shard, "enqueue", (int)HQ_ENQUEUE_ARGC(n), argv,
                      argvlen, on_stored, b) != HQ_OK) {
        batch_drop(b, "cannot send to redis");
        return;
    }
    b->node = node;
    if (node >= 0)
        p->flying[node]++;
}

/* Take `shard`'s entry out of the open list. */
static void
unlist(struct hq__pusher *p, unsigned shard)
{
    for (unsigned i = 0; i < p->nopen; i++)
        if (p->open_shards[i] == shard) {
            p->open_shards[i] = p->open_shards[--p->nopen];
            return;
        }
}

/*
 * End of a loop pass, or a flight ended: send the open batches of every
 * server with nothing in flight (all of that server's together); the
 * others wait for their server's flight to end.
 */
static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct hq__pusher *p = arg;
    uint64_t sent = 0; /* servers sent to in this pass */
    unsigned i = 0;

    (void)fd;
    (void)what;
    /* batch_send() may answer pushes, whose requesters may push again and
     * open new batches: they join the list and are seen here too. */
    while (i < p->nopen) {
        unsigned shard = p->open_shards[i];
        int node = hq__conn_shard_node(p->conn, shard);

        if (node >= 0 && p->flying[node] > 0 && !(sent & (UINT64_C(1) << node))) {
            i++; /* waits for its server's flight */
            continue;
        }
        if (node >= 0)
            sent |= UINT64_C(1) << node;
        p->open_shards[i] = p->open_shards[--p->nopen];
        batch_send(p, shard, node);
    }
}

int
hq__pusher_add(struct hq__pusher *p, const struct hq_push *job, void *req,
               struct hq__push_slot *slot)
{
    unsigned shard = hq__store_shard_of(p->ns, job->customer, job->customer_len);
    struct hq__push_batch *b;

    if (hq__conn_for_shard(p->conn, shard) == NULL)
        return HQ_ESTORE;
    b = p->open[shard];
    if (b == NULL) {
        b = malloc(sizeof(*b));
        if (b == NULL)
            return HQ_ENOMEM;
        b->p = p;
        b->shard = shard;
        b->node = -1;
        b->n = 0;
        b->bytes = 0;
        b->res = NULL;
        p->open[shard] = b;
        p->open_shards[p->nopen++] = shard;
        p->pending++;
        /* Sent at the end of this pass, unless its server is busy. */
        event_active(p->flush_ev, EV_TIMEOUT, 0);
    }
    slot->batch = b;
    slot->idx = b->n;
    b->e[b->n].req = req;
    b->e[b->n].slot = slot;
    b->e[b->n].job = *job;
    b->n++;
    b->bytes += job->body_len;
    if (b->n == HQ_ENQUEUE_BATCH_MAX || b->bytes >= HQ_ENQUEUE_BATCH_BYTES) {
        /* Full: it goes now, flight or not (it pays for its call). */
        unlist(p, shard);
        batch_send(p, shard, hq__conn_shard_node(p->conn, shard));
    }
    return HQ_OK;
}
