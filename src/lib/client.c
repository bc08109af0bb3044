/*
 * The synchronous client: push jobs, one at a time or pipelined.
 *
 * A client holds one blocking hiredis connection, so it serves one thread at
 * a time. Every push is one `enqueue` script call on the shard of its
 * customer (see docs/queue-semantics.md): dedup, depth check, append and
 * scheduling in one atomic step. The administration functions on the same
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

/* The enqueue call's arguments; numbers are formatted into `nums`. */
struct push_args {
    char prefix[HQ_PREFIX_MAX];
    const char *argv[6];
    size_t argvlen[6];
    char nums[2][24];
};

static int
push_args_init(hq_client *c, const struct hq_push *p,
               const struct hq_push_limits *limits, struct push_args *a)
{
    int64_t depth = limits ? limits->max_key_depth : 0;
    int64_t ttl = limits && limits->dedup_ttl_ms > 0 ? limits->dedup_ttl_ms
                                                      : 24 * 3600 * 1000;

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
    hq__client_prefix_for(c, p->customer, p->customer_len, a->prefix,
                          sizeof(a->prefix));
    snprintf(a->nums[0], sizeof(a->nums[0]), "%" PRId64, depth > 0 ? depth : 0);
    snprintf(a->nums[1], sizeof(a->nums[1]), "%" PRId64, ttl);
    a->argv[0] = p->customer;
    a->argvlen[0] = p->customer_len;
    a->argv[1] = p->code;
    a->argvlen[1] = p->code_len;
    a->argv[2] = p->body ? p->body : "";
    a->argvlen[2] = p->body ? p->body_len : 0;
    a->argv[3] = p->webhook_id ? p->webhook_id : "";
    a->argvlen[3] = p->webhook_id ? p->webhook_id_len : 0;
    a->argv[4] = a->nums[0];
    a->argvlen[4] = strlen(a->nums[0]);
    a->argv[5] = a->nums[1];
    a->argvlen[5] = strlen(a->nums[1]);
    return HQ_OK;
}

int
hq__push_result_parse(const redisReply *r, struct hq_push_result *res)
{
    memset(res, 0, sizeof(*res));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->len >= sizeof(res->id))
        return HQ_EPROTO;
    res->status = (int)r->element[0]->integer;
    memcpy(res->id, r->element[1]->str, r->element[1]->len);
    res->seq = r->element[2]->integer;
    return HQ_OK;
}

int
hq_client_push(hq_client *c, const struct hq_push *p,
               const struct hq_push_limits *limits, struct hq_push_result *res)
{
    struct push_args a;
    redisReply *r;
    int rc;

    rc = push_args_init(c, p, limits, &a);
    if (rc != HQ_OK)
        return rc;
    if (hq__client_conn(c) == NULL)
        return HQ_ESTORE;
    r = hq__store_eval(c->rc, "enqueue", a.prefix, 6, a.argv, a.argvlen,
                       &c->err);
    if (r == NULL)
        return HQ_ESTORE;
    rc = hq__push_result_parse(r, res);
    if (rc != HQ_OK)
        hq__err_set(&c->err, rc, "push: unexpected reply from the enqueue script");
    freeReplyObject(r);
    return rc;
}

int
hq_client_push_many(hq_client *c, const struct hq_push *p, size_t n,
                    const struct hq_push_limits *limits,
                    struct hq_push_result *res)
{
    struct push_args a;
    size_t sent = 0;
    int rc = HQ_OK;

    if (hq__client_conn(c) == NULL)
        return HQ_ESTORE;
    for (size_t i = 0; i < n; i++) {
        rc = push_args_init(c, &p[i], limits, &a);
        if (rc != HQ_OK)
            break;
        rc = hq__store_eval_append(c->rc, "enqueue", a.prefix, 6, a.argv,
                                   a.argvlen);
        if (rc != HQ_OK)
            break;
        sent++;
    }
    /*
     * Read every reply that was sent, even after a failure. A push answered
     * NOSCRIPT did not run; since the script was missing for the whole
     * pipeline, so did every later one, and running them again afterwards,
     * in order, keeps each key's order.
     */
    for (size_t i = 0; i < sent; i++) {
        int noscript, prc;
        redisReply *r = hq__store_eval_reply(c->rc, &noscript, &c->err);

        if (r == NULL) {
            res[i].status = noscript ? -1 : -2;
            continue;
        }
        prc = hq__push_result_parse(r, &res[i]);
        if (prc != HQ_OK && rc == HQ_OK)
            rc = hq__err_set(&c->err, prc, "push: unexpected reply from the enqueue script");
        freeReplyObject(r);
    }
    for (size_t i = 0; i < sent; i++) {
        int prc;

        if (res[i].status == -2 && rc == HQ_OK)
            rc = HQ_ESTORE;
        if (res[i].status != -1)
            continue;
        prc = hq_client_push(c, &p[i], limits, &res[i]);
        if (prc != HQ_OK && rc == HQ_OK)
            rc = prc;
    }
    return rc;
}
