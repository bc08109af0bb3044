/*
 * The cluster router: asynchronous calls to a Redis Cluster, on one
 * libevent loop (DESIGN §3.7).
 *
 * A router keeps the slot map (cluster.c) and one connection per master,
 * made when first needed. A call names the hash slot it is for; the
 * router sends it to the master of that slot and deals with what the
 * cluster answers before the caller sees it:
 *   - MOVED: the slot has a new master. The map gets that slot at once and
 *     is read again in full soon after; the call goes to the new master.
 *   - ASK (a slot being moved): a plain command goes, after ASKING, to the
 *     node importing the slot. A script call does not: hookq's scripts
 *     declare only their shard's prefix, so on the importing node they
 *     would see the keys moved so far and miss the rest. A script call is
 *     sent again to the slot's owner until the move is over (then MOVED).
 *   - TRYAGAIN, CLUSTERDOWN, LOADING: sent again after a short wait.
 *   - READONLY, MASTERDOWN: we reached a replica; the map is read again and
 *     the call sent again after a short wait.
 *   - NOSCRIPT: sent again as EVAL on the same node.
 * A call made before the first slot map has been read waits for it. A
 * call that cannot be placed within HQ_ROUTER_PATIENCE_MS of being made
 * is given up: the caller gets the last error reply, or NULL when there was
 * none (no master, or the connection failed), and decides (503, or its own
 * retry). A lost connection answers its calls in flight with NULL and has
 * the map read again; the master is connected again when next needed,
 * after a backoff. The router never sends to a replica.
 *
 * Subscriptions (hq__router_subscribe()) live on a second connection per
 * master, kept for them, and follow their slot: to the new master when the
 * slot moves (the old one says `sunsubscribe`) or after a failover, and
 * are sent again when their connection is made again.
 *
 * Everything is touched only by the loop's thread.
 */
#ifndef HQ_ROUTER_INT_H
#define HQ_ROUTER_INT_H

#include <hiredis/async.h>

#include "cluster_int.h"
#include "common_int.h"
#include "store_int.h"

struct event_base;

#define HQ_ROUTER_PATIENCE_MS 1000 /* a call is placed within this, or given up */
#define HQ_ROUTER_NODES_MAX 64     /* nodes a router knows, over its life */

struct hq__router;

/*
 * A router on `base` for the cluster whose seeds are in `addr` (borrowed;
 * it outlives the router; its user, password and timeout apply to every
 * node). Starts reading the slot map from the seeds at once. Returns HQ_OK
 * or HQ_ENOMEM.
 */
int hq__router_new(struct event_base *base, const struct hq__store_addr *addr,
                   struct hq__router **out);

/*
 * Close every connection: calls in flight or waiting are answered with a
 * NULL reply first. Not from inside a callback of one of its calls.
 * Accepts NULL.
 */
void hq__router_free(struct hq__router *r);

/*
 * What the router tells its owner, on the loop's thread (both optional):
 * `map` after each slot map read; `node_down` when a connection to a node
 * failed or was lost (its calls in flight are answered NULL), `why` says
 * which and how.
 */
struct hq__router_hooks {
    void (*map)(void *arg);
    void (*node_down)(const char *why, void *arg);
    void *arg;
};
void hq__router_set_hooks(struct hq__router *r,
                          const struct hq__router_hooks *hooks);

/*
 * Drop every connection (calls in flight are answered NULL) and read the
 * map again: a call went unanswered for too long. Not from inside a
 * callback of one of its calls.
 */
void hq__router_reset(struct hq__router *r);

/*
 * Drop only the connection to the master of `slot` (its calls in flight
 * are answered NULL), connect to it again after the backoff, and read the
 * map again: a call to that master went unanswered for too long. The
 * other masters' connections, calls and replies are left alone. Not from
 * inside a callback of one of its calls.
 */
void hq__router_reset_slot(struct hq__router *r, unsigned slot);

/*
 * The connection to the master of `slot`, made if need be; NULL when the
 * slot has no master or its connection is failing now. Before the first
 * map has been read: the connection it is being read on (a call made now
 * waits for the map), or NULL when none is open.
 */
redisAsyncContext *hq__router_slot_ac(struct hq__router *r, unsigned slot);

/*
 * Which node is the master of `slot` in the map, as a number in
 * [0, HQ_ROUTER_NODES_MAX) that stays that node's for the router's life;
 * -1 before the first map or when the slot has no master. Connects
 * nothing.
 */
int hq__router_slot_node(struct hq__router *r, unsigned slot);

/* 1 once a slot map has been read (since the router was made). */
int hq__router_has_map(const struct hq__router *r);

/*
 * Run script `name` with KEYS[1] = `prefix` (whose slot is `slot`) and
 * ARGV copied from argv/argvlen (argvlen NULL: NUL-terminated). `fn(ac,
 * reply, privdata)` is called exactly once, later, with the reply (error
 * replies included) or NULL (see the top of this file). Returns HQ_OK, or
 * HQ_EINVAL (unknown script), HQ_ENOMEM, HQ_ESTORE (no master for the slot
 * now): then `fn` is not called.
 */
int hq__router_eval(struct hq__router *r, unsigned slot, const char *name,
                    const char *prefix, int argc, const char **argv,
                    const size_t *argvlen, redisCallbackFn *fn, void *privdata);

/*
 * Send a plain command to the master of `slot` (WAIT goes where the write
 * went: name the same slot). As hq__router_eval() otherwise. Not for
 * SUBSCRIBE: see hq__router_subscribe().
 */
int hq__router_command(struct hq__router *r, unsigned slot, int argc,
                       const char **argv, const size_t *argvlen,
                       redisCallbackFn *fn, void *privdata);

/*
 * Keep `channel` (`len` bytes, copied; its hash slot is `slot`, so that
 * it lives on the master of the keys of that slot) subscribed on the
 * master of `slot` from now until the router is freed: with SUBSCRIBE,
 * and SSUBSCRIBE too when that node has sharded Pub/Sub (Redis >= 7.0),
 * on a connection of that master kept for subscriptions. It is sent again
 * wherever the map says after a failover, a slot move or a lost
 * connection (the `node_down` hook hears of the last). `fn(ac, reply,
 * privdata)` gets every push of the channel: ["message" or "smessage",
 * channel, payload], the confirmations ("subscribe", "ssubscribe") and
 * ["sunsubscribe", channel, n] when the node lost the slot (messages may
 * have been missed until it is subscribed again); NULL replies are not
 * passed on. Subscribing to a channel again replaces its `fn` and
 * `privdata`. Returns HQ_OK, HQ_EINVAL or HQ_ENOMEM.
 */
int hq__router_subscribe(struct hq__router *r, unsigned slot,
                         const char *channel, size_t len,
                         redisCallbackFn *fn, void *privdata);

/* Counters, for tests and logs. */
struct hq__router_stats {
    unsigned long moved, ask, retried, refreshes, given_up;
};
void hq__router_get_stats(const struct hq__router *r,
                          struct hq__router_stats *out);

#endif /* HQ_ROUTER_INT_H */
