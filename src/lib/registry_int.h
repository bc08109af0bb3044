/*
 * The namespace's records of its processes (registry.c): the shard count
 * and the worker registry, under the hash tag "{ns:meta}" (HQ_SHARD_META).
 */
#ifndef HQ_REGISTRY_INT_H
#define HQ_REGISTRY_INT_H

#include "conn_int.h"

/*
 * Record ns->shards as the namespace's shard count unless one is recorded,
 * on the connected `rc`. HQ_OK when Redis holds the same count (or holds it
 * now), HQ_ECONFIG naming both counts when it holds another, HQ_ESTORE or
 * HQ_EPROTO. `*recorded` gets the count Redis holds (0 when unknown).
 */
int hq__registry_check_shards(redisContext *rc, const struct hq__store_ns *ns,
                              unsigned *recorded, struct hq__err *err);

/* RFC 3339 UTC with milliseconds, "2026-12-04T21:33:55.123Z". */
void hq__rfc3339_ms(int64_t ms, char *buf, size_t size);

#endif /* HQ_REGISTRY_INT_H */
