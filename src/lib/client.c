/*
 * The synchronous client: push jobs, one at a time or pipelined.
 *
 * A client holds one blocking hiredis connection, so it serves one thread at
 * a time. Pushes go in `enqueue` script calls on the shard of their customer
 * (see docs/queue-semantics.md), up to HQ_ENQUEUE_BATCH_MAX jobs per call
 * (enqueue.c encodes them): dedup, depth check, append and scheduling in one
 * atomic step per call. The administration functions on the same
 * handle live in admin.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "enqueue_int.h"

int
hq_client_new(const struct hq_store_options *opts, hq_client **out)
{
    hq_client *c;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return HQ_ENOMEM;
    *out = c;
    rc = hq__store_parse_url(opts->url ? opts->url : "redis://127.0.0.1:6379/0",
                             opts->timeout_ms, &c->addr, &c->err);
    if (rc == HQ_OK)
        rc = hq__store_set_sentinels(&c->addr, opts->sentinels,
                                     opts->sentinel_master, &c->err);
    if (rc == HQ_OK)
        rc = hq__store_set_sentinel_auth(&c->addr, opts->sentinel_user,
                                         opts->sentinel_password, &c->err);
    if (rc == HQ_OK)
        hq__conn_probe_cluster(&c->addr);
    if (rc != HQ_OK)
        return rc;
    rc = hq__store_ns_init(&c->ns, opts->ns, opts->shards, &c->err);
    if (rc != HQ_OK)
        return rc;
    hq__sconn_init(&c->conn, &c->addr, &c->ns);
    return hq__sconn_for_shard(&c->conn, 0, &c->err) ? HQ_OK : HQ_ESTORE;
}

void
hq_client_free(hq_client *c)
{
    if (c == NULL)
        return;
    hq__sconn_release(&c->conn);
    free(c);
}

void
hq_client_set_progress(hq_client *c, hq_progress_fn *fn, void *arg)
{
    c->progress = fn;
    c->progress_arg = arg;
}

const char *
hq_client_errmsg(const hq_client *c)
{
    return c ? c->err.msg : "out of memory";
}

/* Check push `p` (its error goes to c->err). */
static int
push_check(hq_client *c, const struct hq_push *p)
{
    return hq__enqueue_check(p, &c->err);
}

/* A push of the array, by shard, then by its place in the array. */
struct push_item {
    unsigned shard;
    size_t idx;
};

static int
item_cmp(const void *a, const void *b)
{
    const struct push_item *x = a, *y = b;

    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* One enqueue call: items[0..len-1], all of one shard. */
struct push_batch {
    const struct push_item *items;
    size_t len;
    int state; /* 0 answered, -1 NOSCRIPT (send again), -2 failed */
};

/* The call's arguments for batch `b` (argv/argvlen hold
 * HQ_ENQUEUE_ARGC(HQ_ENQUEUE_BATCH_MAX), dig HQ_ENQUEUE_BATCH_MAX digests). */
static int
batch_argv(const struct hq_push *p, const struct push_batch *b,
           const struct hq__enqueue_limits *lim,
           unsigned char (*dig)[HQ_ENQUEUE_DIGEST], const char **argv,
           size_t *argvlen)
{
    hq__enqueue_argv_limits(lim, argv, argvlen);
    for (size_t j = 0; j < b->len; j++)
        hq__enqueue_argv_job(j, &p[b->items[j].idx], dig[j], argv, argvlen);
    return (int)HQ_ENQUEUE_ARGC(b->len);
}

/* Fill the results of batch `b` from its reply; HQ_OK or HQ_EPROTO. */
static int
batch_results(hq_client *c, const redisReply *r, const struct push_batch *b,
              struct hq_push_result *res)
{
    int rc = hq__enqueue_reply_check(r, b->len);

    for (size_t j = 0; rc == HQ_OK && j < b->len; j++)
        rc = hq__enqueue_reply_job(r, b->len, j, &res[b->items[j].idx]);
    if (rc != HQ_OK)
        hq__err_set(&c->err, rc, "push: unexpected reply from the enqueue script");
    return rc;
}

int
hq_client_push_many(hq_client *c, const struct hq_push *p, size_t n,
                    const struct hq_push_limits *limits,
                    struct hq_push_result *res)
{
    struct hq__enqueue_limits lim;
    const char *argv[HQ_ENQUEUE_ARGC(HQ_ENQUEUE_BATCH_MAX)];
    size_t argvlen[HQ_ENQUEUE_ARGC(HQ_ENQUEUE_BATCH_MAX)];
    unsigned char dig[HQ_ENQUEUE_BATCH_MAX][HQ_ENQUEUE_DIGEST];
    struct push_item *items;
    struct push_batch *batches;
    size_t nok = n, nb = 0, sent = 0;
    int rc = HQ_OK;

    if (n == 0)
        return HQ_OK;
    items = malloc(n * sizeof(*items));
    batches = malloc(n * sizeof(*batches));
    if (items == NULL || batches == NULL) {
        free(items);
        free(batches);
        return hq__err_set(&c->err, HQ_ENOMEM, "push: out of memory");
    }
    /* The pushes before the first invalid one are sent. */
    for (size_t i = 0; i < n; i++) {
        rc = push_check(c, &p[i]);
        if (rc != HQ_OK) {
            nok = i;
            break;
        }
        items[i].shard = hq__store_shard_of(&c->ns, p[i].customer, p[i].customer_len);
        items[i].idx = i;
    }
    qsort(items, nok, sizeof(*items), item_cmp);
    for (size_t i = 0; i < nok;) {
        size_t j = i, bytes = 0;

        while (j < nok && items[j].shard == items[i].shard &&
               j - i < HQ_ENQUEUE_BATCH_MAX && bytes < HQ_ENQUEUE_BATCH_BYTES)
            bytes += p[items[j++].idx].body_len;
        batches[nb].items = &items[i];
        batches[nb].len = j - i;
        batches[nb].state = -2;
        nb++;
        i = j;
    }
    hq__enqueue_limits_init(&lim, limits);

    if (nb > 0 && hq__sconn_for_shard(&c->conn, batches[0].items[0].shard,
                                      &c->err) == NULL) {
        nb = 0;
        rc = HQ_ESTORE;
    }
    for (; sent < nb; sent++) {
        const struct push_batch *b = &batches[sent];
        int argc = batch_argv(p, b, &lim, dig, argv, argvlen);

        if (hq__sconn_eval_append(&c->conn, b->items[0].shard, "enqueue", argc,
                                  argv, argvlen, &c->err) != HQ_OK) {
            rc = HQ_ESTORE;
            break;
        }
    }
    /*
     * Read every reply that was sent, even after a failure. A call answered
     * NOSCRIPT did not run; since the script was missing for the whole
     * pipeline, so did every later one, and running them again afterwards,
     * in order, keeps each key's order.
     */
    for (size_t k = 0; k < sent; k++) {
        int noscript = 0, brc;
        redisReply *r = hq__sconn_eval_reply(&c->conn, batches[k].items[0].shard,
                                             &noscript, &c->err);

        if (r == NULL) {
            batches[k].state = noscript ? -1 : -2;
            continue;
        }
        brc = batch_results(c, r, &batches[k], res);
        batches[k].state = brc == HQ_OK ? 0 : -2;
        if (brc != HQ_OK && rc == HQ_OK)
            rc = brc;
        freeReplyObject(r);
    }
    for (size_t k = 0; k < sent; k++) {
        const struct push_batch *b = &batches[k];
        redisReply *r;
        int argc, brc;

        if (b->state == -2 && rc == HQ_OK)
            rc = HQ_ESTORE;
        if (b->state != -1)
            continue;
        argc = batch_argv(p, b, &lim, dig, argv, argvlen);
        r = hq__sconn_eval(&c->conn, b->items[0].shard, "enqueue", argc, argv,
                           argvlen, &c->err);
        if (r == NULL) {
            if (rc == HQ_OK)
                rc = HQ_ESTORE;
            continue;
        }
        brc = batch_results(c, r, b, res);
        if (brc != HQ_OK && rc == HQ_OK)
            rc = brc;
        freeReplyObject(r);
    }
    if (nok < n && rc == HQ_OK)
        rc = push_check(c, &p[nok]); /* the first invalid push's error */
    free(items);
    free(batches);
    return rc;
}

int
hq_client_push(hq_client *c, const struct hq_push *p,
               const struct hq_push_limits *limits, struct hq_push_result *res)
{
    return hq_client_push_many(c, p, 1, limits, res);
}
