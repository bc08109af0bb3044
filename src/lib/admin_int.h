/*
 * Helpers of admin.c that need no Redis, shared with its unit tests.
 * (Job records are record_int.h's.)
 */
#ifndef HQ_ADMIN_INT_H
#define HQ_ADMIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"

/*
 * The shard a job or dead-letter id "<S>-<n>" belongs to. HQ_EINVAL when
 * `id` does not look like one or S >= shards.
 */
int hq__job_id_shard(const char *id, unsigned shards, unsigned *shard);

/* Check a key "customer:code" given by a user; HQ_EINVAL with `err` set. */
int hq__admin_check_key(const char *key, size_t *custlen, struct hq__err *err);

#endif /* HQ_ADMIN_INT_H */
