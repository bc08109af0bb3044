/*
 * Finding the master through Redis Sentinel (DESIGN §3.7): ask the
 * Sentinels of `[redis] sentinels`, in turn, where `sentinel_master` is,
 * and check with ROLE that the node named is a master before anything is
 * written to it. Synchronous: the connection layer calls it when it
 * connects, after a disconnect, and when a node answers READONLY or
 * LOADING (a replica, or a node that is not ready).
 */
#ifndef HQ_SENTINEL_INT_H
#define HQ_SENTINEL_INT_H

#include <hiredis/hiredis.h>

#include "common_int.h"
#include "store_int.h"

/*
 * Read a SENTINEL GET-MASTER-ADDR-BY-NAME reply ([host, port], or nil when
 * the Sentinel does not know the name) into `out`. Returns HQ_OK,
 * HQ_ENOTFOUND (nil) or HQ_EPROTO.
 */
int hq__sentinel_parse_addr(const redisReply *r, struct hq__store_seed *out);

/* 1 when a ROLE reply says "master", else 0. */
int hq__sentinel_role_is_master(const redisReply *r);

/*
 * Ask the `n` Sentinels, in order, for the master named `name`, connecting
 * with `addr`'s timeout; connect to the address given with `addr`'s user,
 * password and database and check that ROLE says master. The first that
 * answers so wins: its host and port go to `*master`. Returns HQ_OK, or
 * HQ_ESTORE with the reason in `err` (each Sentinel unreachable, none
 * knowing `name`, or the node named not being a master: a failover under
 * way — ask again shortly).
 */
int hq__sentinel_lookup(const struct hq__store_seed *sentinels, unsigned n,
                        const char *name, const struct hq__store_addr *addr,
                        struct hq__store_seed *master, struct hq__err *err);

#endif /* HQ_SENTINEL_INT_H */
