/*
 * The synchronous client: push jobs, one at a time or pipelined.
 *
 * A client holds one blocking hiredis connection, so it serves one thread at
 * a time. Pushes go in `enqueue` script calls on the shard of their customer
 * (see docs/queue-semantics.md), up to BATCH_MAX jobs per call: dedup, depth
 * check, append and scheduling in one atomic step per call. The administration functions on the same
 * handle live in admin.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

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
    if (rc != HQ_OK)
        return rc;
    rc = hq__store_ns_init(&c->ns, opts->ns, opts->shards, &c->err);
    if (rc != HQ_OK)
        return rc;
    return hq__client_reconnect(c);
}

int
hq__client_reconnect(hq_client *c)
{
    if (c->rc)
        redisFree(c->rc);
    c->rc = hq__store_connect(&c->addr, &c->err);
    return c->rc ? HQ_OK : HQ_ESTORE;
}

redisContext *
hq__client_conn(hq_client *c)
{
    /* A broken connection stays broken in hiredis: make a new one. */
    if (c->rc == NULL || c->rc->err)
        hq__client_reconnect(c);
    return c->rc;
}

void
hq_client_free(hq_client *c)
{
    if (c == NULL)
        return;
    if (c->rc)
        redisFree(c->rc);
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

size_t
hq__client_prefix_for(hq_client *c, const char *customer, size_t len,
                      char *buf, size_t size)
{
    unsigned shard = hq__store_shard_of(&c->ns, customer, len);
    return hq__store_prefix(&c->ns, shard, buf, size);
}

/*
 * Pushes go to Redis in batches: one enqueue call takes up to BATCH_MAX
 * jobs of one shard (its KEYS[1]), in array order, so jobs of one key keep
 * their order. See enqueue.lua for what a call costs.
 */
#define BATCH_MAX 128
#define BATCH_BYTES (1024 * 1024)

/* Check push `p` (its error goes to c->err). */
static int
push_check(hq_client *c, const struct hq_push *p)
{
    if (p->customer == NULL || p->customer_len == 0)
        return hq__err_set(&c->err, HQ_EINVAL, "push: empty customer");
    if (p->code == NULL || p->code_len == 0)
        return hq__err_set(&c->err, HQ_EINVAL, "push: empty code");
    if (memchr(p->code, ':', p->code_len))
        return hq__err_set(&c->err, HQ_EINVAL,
                           "push: code '%.*s' contains ':'", (int)p->code_len,
                           p->code);
    if (p->webhook_id_len && memchr(p->webhook_id, '\n', p->webhook_id_len))
        return hq__err_set(&c->err, HQ_EINVAL,
                           "push: webhook id contains a newline");
    return HQ_OK;
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

/* The call's arguments for batch `b` (argv/argvlen hold 2 + 4 BATCH_MAX). */
static int
batch_argv(hq_client *c, const struct hq_push *p, const struct push_batch *b,
           const char nums[2][24], char *prefix, const char **argv,
           size_t *argvlen)
{
    hq__store_prefix(&c->ns, b->items[0].shard, prefix, HQ_PREFIX_MAX);
    argv[0] = nums[0];
    argvlen[0] = strlen(nums[0]);
    argv[1] = nums[1];
    argvlen[1] = strlen(nums[1]);
    for (size_t j = 0; j < b->len; j++) {
        const struct hq_push *q = &p[b->items[j].idx];
        size_t a = 2 + 4 * j;

        argv[a] = q->customer;
        argvlen[a] = q->customer_len;
        argv[a + 1] = q->code;
        argvlen[a + 1] = q->code_len;
        argv[a + 2] = q->body ? q->body : "";
        argvlen[a + 2] = q->body ? q->body_len : 0;
        argv[a + 3] = q->webhook_id ? q->webhook_id : "";
        argvlen[a + 3] = q->webhook_id ? q->webhook_id_len : 0;
    }
    return (int)(2 + 4 * b->len);
}

/* One job's {status, id, seq} of an enqueue reply (`e` points at status). */
static int
push_result_parse(redisReply *const *e, struct hq_push_result *res)
{
    const redisReply *st = e[0], *id = e[1], *seq = e[2];

    memset(res, 0, sizeof(*res));
    if (st->type != REDIS_REPLY_INTEGER || id->type != REDIS_REPLY_STRING ||
        seq->type != REDIS_REPLY_INTEGER || id->len >= sizeof(res->id))
        return HQ_EPROTO;
    res->status = (int)st->integer;
    memcpy(res->id, id->str, id->len);
    res->seq = seq->integer;
    return HQ_OK;
}

/* Fill the results of batch `b` from its reply; HQ_OK or HQ_EPROTO. */
static int
batch_results(hq_client *c, const redisReply *r, const struct push_batch *b,
              struct hq_push_result *res)
{
    int rc = HQ_OK;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 * b->len)
        rc = HQ_EPROTO;
    for (size_t j = 0; j < b->len; j++)
        if (rc == HQ_OK)
            rc = push_result_parse(&r->element[3 * j], &res[b->items[j].idx]);
    if (rc != HQ_OK)
        hq__err_set(&c->err, rc, "push: unexpected reply from the enqueue script");
    return rc;
}

int
hq_client_push_many(hq_client *c, const struct hq_push *p, size_t n,
                    const struct hq_push_limits *limits,
                    struct hq_push_result *res)
{
    int64_t depth = limits ? limits->max_key_depth : 0;
    int64_t ttl = limits && limits->dedup_ttl_ms > 0 ? limits->dedup_ttl_ms
                                                      : 24 * 3600 * 1000;
    char nums[2][24], prefix[HQ_PREFIX_MAX];
    const char *argv[2 + 4 * BATCH_MAX];
    size_t argvlen[2 + 4 * BATCH_MAX];
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

        while (j < nok && items[j].shard == items[i].shard && j - i < BATCH_MAX &&
               bytes < BATCH_BYTES)
            bytes += p[items[j++].idx].body_len;
        batches[nb].items = &items[i];
        batches[nb].len = j - i;
        batches[nb].state = -2;
        nb++;
        i = j;
    }
    snprintf(nums[0], sizeof(nums[0]), "%" PRId64, depth > 0 ? depth : 0);
    snprintf(nums[1], sizeof(nums[1]), "%" PRId64, ttl);

    if (nb > 0 && hq__client_conn(c) == NULL) {
        nb = 0;
        rc = HQ_ESTORE;
    }
    for (; sent < nb; sent++) {
        int argc = batch_argv(c, p, &batches[sent], nums, prefix, argv, argvlen);

        if (hq__store_eval_append(c->rc, "enqueue", prefix, argc, argv, argvlen) != HQ_OK) {
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
        redisReply *r = hq__store_eval_reply(c->rc, &noscript, &c->err);

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
        redisReply *r;
        int argc, brc;

        if (batches[k].state == -2 && rc == HQ_OK)
            rc = HQ_ESTORE;
        if (batches[k].state != -1)
            continue;
        argc = batch_argv(c, p, &batches[k], nums, prefix, argv, argvlen);
        r = hq__store_eval(c->rc, "enqueue", prefix, argc, argv, argvlen, &c->err);
        if (r == NULL) {
            if (rc == HQ_OK)
                rc = HQ_ESTORE;
            continue;
        }
        brc = batch_results(c, r, &batches[k], res);
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
