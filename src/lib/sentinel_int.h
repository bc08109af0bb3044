/*
 * Finding the master through Redis Sentinel (DESIGN §3.7): ask a Sentinel
 * of `[redis] sentinels` where `sentinel_master` is, and read its answers.
 * Synchronous. The connection layer (hq__conn_sentinel_lookup()) asks the
 * Sentinels in turn, and checks with ROLE that the node named is a master
 * before anything is written to it, when it connects, after a disconnect,
 * and when a node answers READONLY or LOADING (a replica, or a node that
 * is not ready).
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
 * Ask the Sentinel `s` (connecting with `timeout_ms`) where the master
 * named `name` is, after AUTH [user] password when `password` is set
 * (NULL or "" = none; `user` NULL or "" = the default user). Returns
 * HQ_OK with its address in `*out`; HQ_ECONFIG when the Sentinel refused
 * the password or wants one (NOAUTH): the reason in `err` names the
 * Sentinel and the key to set, never the password; or HQ_ESTORE with the
 * reason in `err` (unreachable, an error, a name it does not know, an
 * unexpected answer). The answer is not checked: see
 * hq__conn_sentinel_lookup().
 */
int hq__sentinel_ask(const struct hq__store_seed *s, const char *name,
                     const char *user, const char *password, int timeout_ms,
                     struct hq__store_seed *out, struct hq__err *err);

#endif /* HQ_SENTINEL_INT_H */
