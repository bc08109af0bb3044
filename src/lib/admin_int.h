/*
 * Helpers of admin.c that need no Redis, shared with its unit tests.
 */
#ifndef HQ_ADMIN_INT_H
#define HQ_ADMIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"

/*
 * A job record as stored in a key's list (docs/queue-semantics.md):
 * "id \n seq \n received_at_ms \n webhook_id \n body". Pointers borrow the
 * record's bytes; the body is last and may contain newlines.
 */
struct hq__record {
    const char *id;
    size_t id_len;
    int64_t seq;
    int64_t received_at_ms;
    const char *webhook_id;
    size_t webhook_id_len;
    const char *body;
    size_t body_len;
};

/* Split a record. HQ_EPROTO when a field is missing or a number is bad. */
int hq__record_parse(const char *rec, size_t len, struct hq__record *out);

/*
 * The shard a job or dead-letter id "<S>-<n>" belongs to. HQ_EINVAL when
 * `id` does not look like one or S >= shards.
 */
int hq__job_id_shard(const char *id, unsigned shards, unsigned *shard);

/* Check a key "customer:code" given by a user; HQ_EINVAL with `err` set. */
int hq__admin_check_key(const char *key, size_t *custlen, struct hq__err *err);

#endif /* HQ_ADMIN_INT_H */
