/*
 * The enqueue call's encoding (see enqueue_int.h): arguments in, reply
 * out, no I/O.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "enqueue_int.h"

#define DEFAULT_DEDUP_TTL_MS (24 * 3600 * 1000)

void
hq__enqueue_limits_init(struct hq__enqueue_limits *l,
                        const struct hq_push_limits *limits)
{
    int64_t depth = limits && limits->max_key_depth > 0 ? limits->max_key_depth : 0;
    int64_t ttl = limits && limits->dedup_ttl_ms > 0 ? limits->dedup_ttl_ms
                                                      : DEFAULT_DEDUP_TTL_MS;

    snprintf(l->max_depth, sizeof(l->max_depth), "%" PRId64, depth);
    snprintf(l->dedup_ttl, sizeof(l->dedup_ttl), "%" PRId64, ttl);
}

int
hq__enqueue_check(const struct hq_push *p, struct hq__err *err)
{
    if (p->customer == NULL || p->customer_len == 0)
        return hq__err_set(err, HQ_EINVAL, "push: empty customer");
    if (p->code == NULL || p->code_len == 0)
        return hq__err_set(err, HQ_EINVAL, "push: empty code");
    if (memchr(p->code, ':', p->code_len))
        return hq__err_set(err, HQ_EINVAL, "push: code '%.*s' contains ':'",
                           (int)p->code_len, p->code);
    if (p->webhook_id_len && memchr(p->webhook_id, '\n', p->webhook_id_len))
        return hq__err_set(err, HQ_EINVAL, "push: webhook id contains a newline");
    return HQ_OK;
}

void
hq__enqueue_argv_limits(const struct hq__enqueue_limits *l, const char **argv,
                        size_t *argvlen)
{
    argv[0] = l->max_depth;
    argvlen[0] = strlen(l->max_depth);
    argv[1] = l->dedup_ttl;
    argvlen[1] = strlen(l->dedup_ttl);
}

void
hq__enqueue_argv_job(size_t i, const struct hq_push *p,
                     unsigned char digest[HQ_ENQUEUE_DIGEST], const char **argv,
                     size_t *argvlen)
{
    size_t a = HQ_ENQUEUE_ARGC(i);
    unsigned char md[SHA256_DIGEST_LENGTH];

    argv[a] = p->customer;
    argvlen[a] = p->customer_len;
    argv[a + 1] = p->code;
    argvlen[a + 1] = p->code_len;
    argv[a + 2] = p->body ? p->body : "";
    argvlen[a + 2] = p->body ? p->body_len : 0;
    argv[a + 3] = p->webhook_id ? p->webhook_id : "";
    argvlen[a + 3] = p->webhook_id ? p->webhook_id_len : 0;
    argv[a + 4] = (const char *)digest;
    argvlen[a + 4] = 0;
    if (argvlen[a + 3] > 0) {
        SHA256((const unsigned char *)p->webhook_id, p->webhook_id_len, md);
        memcpy(digest, md, HQ_ENQUEUE_DIGEST);
        argvlen[a + 4] = HQ_ENQUEUE_DIGEST;
    }
}

/* Is element 3i.. of the reply a well-formed {status, id, seq}? */
static int
job_ok(const redisReply *r, size_t i)
{
    const redisReply *st = r->element[3 * i], *id = r->element[3 * i + 1],
                     *seq = r->element[3 * i + 2];

    return st->type == REDIS_REPLY_INTEGER && st->integer >= HQ_PUSH_STORED &&
           st->integer <= HQ_PUSH_FULL && id->type == REDIS_REPLY_STRING &&
           id->len < sizeof(((struct hq_push_result *)0)->id) &&
           seq->type == REDIS_REPLY_INTEGER;
}

int
hq__enqueue_reply_check(const redisReply *r, size_t n)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 * n)
        return HQ_EPROTO;
    for (size_t i = 0; i < n; i++)
        if (!job_ok(r, i))
            return HQ_EPROTO;
    return HQ_OK;
}

int
hq__enqueue_reply_job(const redisReply *r, size_t n, size_t i,
                      struct hq_push_result *res)
{
    memset(res, 0, sizeof(*res));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 * n ||
        i >= n || !job_ok(r, i))
        return HQ_EPROTO;
    res->status = (int)r->element[3 * i]->integer;
    memcpy(res->id, r->element[3 * i + 1]->str, r->element[3 * i + 1]->len);
    res->seq = r->element[3 * i + 2]->integer;
    return HQ_OK;
}
