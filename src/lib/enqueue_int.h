/*
 * The enqueue call's encoding: the one place that knows the arguments of
 * scripts/enqueue.lua and the shape of its reply.
 *
 * DESIGN: a batch is up to HQ_ENQUEUE_BATCH_MAX jobs (and about
 * HQ_ENQUEUE_BATCH_BYTES of bodies) of one shard, sent as one call, jobs in
 * argument order so that jobs of one key keep their order. ARGV is the two
 * limits, then five strings per job (customer, code, body, webhook id, and
 * the webhook id's digest: the first HQ_ENQUEUE_DIGEST bytes of its SHA-256,
 * which the script remembers it by; empty without a webhook id. Hashed here
 * because in C it costs a fraction of a microsecond, and in the script
 * several of Redis's, per job); the
 * reply is {status, id, seq} per job, flattened, status an enum
 * hq_push_status. The synchronous client (client.c) and the asynchronous
 * batched pusher (pusher.c) both build and read their calls here.
 */
#ifndef HQ_ENQUEUE_INT_H
#define HQ_ENQUEUE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "common_int.h"

#define HQ_ENQUEUE_BATCH_MAX 128              /* jobs in one call */
#define HQ_ENQUEUE_BATCH_BYTES (1024 * 1024)  /* bodies in one call, about */
/* ARGV entries of a call of `n` jobs. */
#define HQ_ENQUEUE_ARGC(n) (2 + 5 * (n))
/* Bytes of a webhook id's digest (128 bits: DESIGN §3.3). */
#define HQ_ENQUEUE_DIGEST 16

/* The limits of a call, as the script's first two arguments. */
struct hq__enqueue_limits {
    char max_depth[24];   /* decimal; "0" = none */
    char dedup_ttl[24];   /* decimal ms */
};

/* Format the limits (NULL: none, and a 24 h dedup window). Cannot fail. */
void hq__enqueue_limits_init(struct hq__enqueue_limits *l,
                             const struct hq_push_limits *limits);

/*
 * Check push `p` before it joins a call: customer and code non-empty, no
 * ':' in the code (the key is customer ":" code), no newline in the webhook
 * id. HQ_OK, or HQ_EINVAL with the reason in `err`.
 */
int hq__enqueue_check(const struct hq_push *p, struct hq__err *err);

/*
 * Fill argv/argvlen[0..1] with the limits; the strings stay `l`'s. Then
 * hq__enqueue_argv_job() fills job `i` (from 0) of the call; its strings
 * stay `p`'s, and the webhook id's digest is written to `digest`, which the
 * caller keeps as long as argv. Both cannot fail.
 */
void hq__enqueue_argv_limits(const struct hq__enqueue_limits *l,
                             const char **argv, size_t *argvlen);
void hq__enqueue_argv_job(size_t i, const struct hq_push *p,
                          unsigned char digest[HQ_ENQUEUE_DIGEST],
                          const char **argv, size_t *argvlen);

/*
 * Read job `i`'s answer of the reply `r` to a call of `n` jobs into `res`.
 * HQ_OK, or HQ_EPROTO when `r` is not such a reply (an error reply
 * included); then `res` is zeroed.
 */
int hq__enqueue_reply_job(const redisReply *r, size_t n, size_t i,
                          struct hq_push_result *res);

/* HQ_OK when `r` is a well-formed reply to a call of `n` jobs, else HQ_EPROTO. */
int hq__enqueue_reply_check(const redisReply *r, size_t n);

#endif /* HQ_ENQUEUE_INT_H */
