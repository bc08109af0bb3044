/*
 * The API rate limiter's client side (see limiter_int.h). The decision
 * itself is limit.lua's: this file only builds its arguments and reads its
 * answer, so that every worker, process and host shares one state in Redis.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limiter_int.h"

struct take_ctx {
    hq__limit_fn *fn;
    void *arg;
};

int64_t
hq__limit_backoff_429(const struct hq__limit_rate *rate,
                      int64_t retry_after_ms)
{
    /*
     * Plus the margin, as between calls: Redis TIME is read in whole
     * milliseconds after the answer, and the API's clock is its own.
     */
    return (retry_after_ms >= 0 ? retry_after_ms : rate->window_ms) +
           rate->margin_ms;
}

int
hq__limit_endpoint(int route_mode, const char *route, const char *method,
                   const char *url, char *buf, size_t size)
{
    int n;

    if (route_mode)
        n = snprintf(buf, size, "%s", route);
    else
        n = snprintf(buf, size, "%s %s", method, url);
    return n >= 0 && (size_t)n < size ? HQ_OK : HQ_EINVAL;
}

int
hq__limit_parse(const redisReply *r, struct hq__limit_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->verdict = HQ_LIMIT_ERROR;
    if (!r) {
        a->error = "redis connection lost";
        return HQ_EPROTO;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        a->error = r->str;
        return HQ_EPROTO;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        goto bad;
    switch (r->element[0]->integer) {
    case 1:
        if (r->elements != 4 || r->element[1]->type != REDIS_REPLY_INTEGER ||
            r->element[2]->type != REDIS_REPLY_STRING ||
            r->element[3]->type != REDIS_REPLY_INTEGER)
            goto bad;
        a->verdict = HQ_LIMIT_GO;
        a->at_ms = r->element[1]->integer;
        a->token = r->element[2]->str;
        a->token_len = r->element[2]->len;
        a->wait_ms = r->element[3]->integer;
        return HQ_OK;
    case 0:
        if (r->elements != 2 || r->element[1]->type != REDIS_REPLY_INTEGER)
            goto bad;
        a->verdict = HQ_LIMIT_WAIT;
        a->wait_ms = r->element[1]->integer;
        return HQ_OK;
    case -1:
        a->verdict = HQ_LIMIT_STALE;
        return HQ_OK;
    case -2:
        a->verdict = HQ_LIMIT_NO_TOKEN;
        return HQ_OK;
    }
bad:
    a->error = "unexpected reply from the limit script";
    return HQ_EPROTO;
}

static void
on_take(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct take_ctx *t = privdata;
    struct hq__limit_answer a;

    (void)ac;
    hq__limit_parse(reply, &a);
    t->fn(&a, t->arg);
    free(t);
}

/* Run limit.lua with the `argc` (at most 10) strings of `argv`. */
static int
eval_limit(struct hq__conn *c, unsigned shard, int argc,
           const char **argv, redisCallbackFn *fn, void *privdata)
{
    size_t argvlen[10];

    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    return hq__conn_eval(c, shard, "limit", argc, argv, argvlen, fn, privdata);
}

int
hq__limit_take(struct hq__conn *c, unsigned shard, const char *key,
               const char *fence, const char *customer, const char *endpoint,
               const char *id, const struct hq__limit_rate *rate,
               int64_t lookahead_ms, hq__limit_fn *fn, void *arg)
{
    char r[24], w[24], m[24], la[24];
    const char *argv[10] = {"take", key, fence, customer, endpoint, r, w, m,
                            id, la};
    struct take_ctx *t;
    int rc;

    snprintf(r, sizeof(r), "%d", rate->calls);
    snprintf(w, sizeof(w), "%lld", (long long)rate->window_ms);
    snprintf(m, sizeof(m), "%lld", (long long)rate->margin_ms);
    snprintf(la, sizeof(la), "%lld", (long long)lookahead_ms);
    t = malloc(sizeof(*t));
    if (!t)
        return HQ_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    rc = eval_limit(c, shard, 10, argv, on_take, t);
    if (rc != HQ_OK)
        free(t);
    return rc;
}

static void
on_block(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)reply;
    (void)privdata;
}

int
hq__limit_rejected(struct hq__conn *c, unsigned shard,
                   const char *customer, const char *token,
                   redisCallbackFn *fn, void *arg)
{
    const char *argv[3] = {"rejected", customer, token};

    return eval_limit(c, shard, 3, argv, fn, arg);
}

int
hq__limit_refresh(struct hq__conn *c, unsigned shard, const char *customer,
                  int64_t period_ms, redisCallbackFn *fn, void *arg)
{
    char p[24];
    const char *argv[3] = {"refresh", customer, p};

    snprintf(p, sizeof(p), "%lld", (long long)period_ms);
    return eval_limit(c, shard, 3, argv, fn, arg);
}

int
hq__limit_sent(struct hq__conn *c, unsigned shard, const char *token,
               const char *endpoint, const char *id, int64_t at_ms,
               const struct hq__limit_rate *rate)
{
    char at[24], w[24], m[24];
    const char *argv[7] = {"sent", token, endpoint, id, at, w, m};

    snprintf(at, sizeof(at), "%lld", (long long)at_ms);
    snprintf(w, sizeof(w), "%lld", (long long)rate->window_ms);
    snprintf(m, sizeof(m), "%lld", (long long)rate->margin_ms);
    return eval_limit(c, shard, 7, argv, on_block, NULL);
}

int
hq__limit_block(struct hq__conn *c, unsigned shard, const char *token,
                const char *endpoint, int64_t delay_ms,
                const struct hq__limit_rate *rate)
{
    char d[24], r[24], w[24], m[24];
    const char *argv[7] = {"block", token, endpoint, d, r, w, m};

    snprintf(d, sizeof(d), "%lld", (long long)delay_ms);
    snprintf(r, sizeof(r), "%d", rate->calls);
    snprintf(w, sizeof(w), "%lld", (long long)rate->window_ms);
    snprintf(m, sizeof(m), "%lld", (long long)rate->margin_ms);
    return eval_limit(c, shard, 7, argv, on_block, NULL);
}

int
hq__limit_grant(struct hq__sconn *c, const char *customer, const char *token,
                const char *endpoint, const char *id,
                const struct hq__limit_rate *rate, int64_t lookahead_ms,
                struct hq__limit_grant *g, struct hq__err *err)
{
    char r[24], w[24], m[24], la[24];
    const char *argv[9] = {"grant", customer ? "customer" : "token",
                           customer ? customer : token, endpoint, r, w, m, id,
                           la};
    size_t lens[9];
    redisReply *rep;
    unsigned shard;
    int rc = HQ_OK;

    memset(g, 0, sizeof(*g));
    snprintf(r, sizeof(r), "%d", rate->calls);
    snprintf(w, sizeof(w), "%lld", (long long)rate->window_ms);
    snprintf(m, sizeof(m), "%lld", (long long)rate->margin_ms);
    snprintf(la, sizeof(la), "%lld", (long long)lookahead_ms);
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    shard = customer ? hq__store_shard_of(c->ns, customer, strlen(customer))
                     : 0;
    rep = hq__sconn_eval(c, shard, "limit", 9, argv, lens, err);
    if (rep == NULL)
        return strstr(err->msg, "out of memory") ? HQ_ENOMEM : HQ_ESTORE;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        rc = hq__err_set(err, HQ_EPROTO,
                         "limit: unexpected reply from redis");
    } else if (rep->element[0]->integer == 1) {
        g->verdict = HQ_LIMIT_GO;
        if (rep->elements == 4 && rep->element[1]->type == REDIS_REPLY_INTEGER &&
            rep->element[2]->type == REDIS_REPLY_INTEGER &&
            rep->element[3]->type == REDIS_REPLY_STRING) {
            g->at_ms = rep->element[1]->integer;
            g->wait_ms = rep->element[2]->integer;
            g->token = strndup(rep->element[3]->str, rep->element[3]->len);
            if (!g->token)
                rc = hq__err_set(err, HQ_ENOMEM, "out of memory");
        }
    } else if (rep->element[0]->integer == -2) {
        g->verdict = HQ_LIMIT_NO_TOKEN;
    } else if (rep->elements == 3 &&
               rep->element[1]->type == REDIS_REPLY_INTEGER &&
               rep->element[2]->type == REDIS_REPLY_INTEGER) {
        g->verdict = HQ_LIMIT_WAIT;
        g->wait_ms = rep->element[1]->integer;
        g->expect_ms = rep->element[2]->integer;
        if (g->expect_ms > g->wait_ms)
            g->expect_ms = g->wait_ms;
    } else {
        rc = hq__err_set(err, HQ_EPROTO,
                         "limit: unexpected reply from redis");
    }
    freeReplyObject(rep);
    return rc;
}

int
hq__limit_grant_sent(struct hq__sconn *c, const char *customer,
                     const char *token, const char *endpoint, const char *id,
                     int64_t at_ms, const struct hq__limit_rate *rate,
                     struct hq__err *err)
{
    char at[24], w[24], m[24];
    const char *argv[7] = {"sent", token, endpoint, id, at, w, m};
    unsigned shard;
    redisReply *rep;

    snprintf(at, sizeof(at), "%lld", (long long)at_ms);
    snprintf(w, sizeof(w), "%lld", (long long)rate->window_ms);
    snprintf(m, sizeof(m), "%lld", (long long)rate->margin_ms);
    shard = customer ? hq__store_shard_of(c->ns, customer, strlen(customer))
                     : 0;
    rep = hq__sconn_eval(c, shard, "limit", 7, argv, NULL, err);
    if (rep == NULL)
        return strstr(err->msg, "out of memory") ? HQ_ENOMEM : HQ_ESTORE;
    freeReplyObject(rep);
    return HQ_OK;
}

int
hq__limit_endpoint_norm(int route_mode, const char *base_url, const char *in,
                        char *buf, size_t size, struct hq__err *err)
{
    const char *sp = strchr(in, ' '), *path;
    size_t n = 0, blen = strlen(base_url);

    while (blen > 0 && base_url[blen - 1] == '/')
        blen--;
    if (sp == NULL || sp == in)
        return hq__err_set(err, HQ_EINVAL,
                           "endpoint '%.100s': want \"METHOD /path\", "
                           "e.g. \"GET /posts/{}\"", in);
    for (const char *p = in; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return hq__err_set(err, HQ_EINVAL,
                               "endpoint: contains a control character");
    for (const char *p = in; p < sp; p++) {
        char c = *p;

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
            return hq__err_set(err, HQ_EINVAL,
                               "endpoint '%.100s': the method is not a word",
                               in);
        if (n + 1 < size)
            buf[n] = c;
        n++;
    }
    if (n + 1 < size)
        buf[n] = ' ';
    n++;
    path = sp + 1;
    if (route_mode && blen > 0 && strncmp(path, base_url, blen) == 0 &&
        path[blen] == '/')
        path += blen;
    if (!route_mode && path[0] == '/') {
        for (size_t i = 0; i < blen; i++, n++)
            if (n + 1 < size)
                buf[n] = base_url[i];
    }
    if (path[0] != '/' && (route_mode || strstr(path, "://") == NULL))
        return hq__err_set(err, HQ_EINVAL,
                           "endpoint '%.100s': the path must start with '/'",
                           in);
    for (const char *p = path; *p; p++) {
        if (*p == ' ')
            return hq__err_set(err, HQ_EINVAL,
                               "endpoint '%.100s': a blank in the path", in);
        if (route_mode && *p == '{') {
            const char *close = strchr(p, '}');

            if (close == NULL)
                return hq__err_set(err, HQ_EINVAL,
                                   "endpoint '%.100s': '{' without '}'", in);
            if (n + 2 < size) {
                buf[n] = '{';
                buf[n + 1] = '}';
            }
            n += 2;
            p = close;
            continue;
        }
        if (n + 1 < size)
            buf[n] = *p;
        n++;
    }
    if (n >= size)
        return hq__err_set(err, HQ_EINVAL, "endpoint: longer than %zu bytes",
                           size - 1);
    buf[n] = '\0';
    return HQ_OK;
}
