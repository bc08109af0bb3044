/*
 * The Redis connection layer: every connection hookq makes to Redis.
 *
 * DESIGN: one place connects (AUTH and SELECT first), reconnects with one
 * backoff policy, sends scripts by EVALSHA and again as EVAL on NOSCRIPT,
 * and says which connection serves a shard. Two kinds:
 *   - struct hq__conn, asynchronous, owned by one libevent loop (the
 *     intake's loops, the worker's lanes and wake subscriber, processing's
 *     limiter): it reconnects by itself after a failure, with the one
 *     reconnect policy (clock_int.h: jittered exponential backoff from
 *     HQ_RECONNECT_MIN_MS to HQ_RECONNECT_MAX_MS), and tells its owner
 *     through two hooks (conn.c);
 *   - struct hq__sconn, blocking, for one thread at a time (the client,
 *     the admin API's /healthz): a broken connection is made again on the
 *     next call (sconn.c, with the blocking connect and the probes).
 * Callers name a shard, never a connection: hq__conn_for_shard() and
 * hq__sconn_for_shard() are the one lookup of "which connection serves
 * shard S". On one Redis, one connection serves every shard. On a Redis
 * Cluster (a url with several hosts), an asynchronous conn holds a router
 * (router_int.h: one connection per master, MOVED, ASK, TRYAGAIN...) and
 * a blocking one a connection per master and the slot map; the hooks then
 * say `down` when a node's connection fails and `up` when the slot map
 * has been read again, and a shard whose master is unreachable fails its
 * own calls while the others go on.
 *
 * A script call answered NOSCRIPT did not run (Redis restarted, or SCRIPT
 * FLUSH): it is sent once more with the script's source, which also caches
 * it for the next EVALSHA. A script is one atomic transition, so this
 * cannot apply it twice. conn.c and sconn.c make every connection to a
 * data node but a cluster router's (router.c); sentinel.c connects to
 * Sentinels.
 * No other file calls hiredis's connect functions.
 */
#ifndef HQ_CONN_INT_H
#define HQ_CONN_INT_H

#include <stdint.h>

#include "router_int.h"
#include "store_int.h"

struct event;
struct event_base;

#define HQ_CONN_MAX_ARGS 4096 /* a script call's command: argc + 4 at most */

/* ------------------------------------------------------------------------ */
/* Asynchronous connections.                                                */

struct hq__conn;

/*
 * What an asynchronous connection tells its owner, on the loop's thread.
 * Both are optional. `up`: the connection is made (AUTH and SELECT are
 * queued ahead of anything sent). `down`: a connection attempt failed or a
 * connection was lost (`why` says how; the calls in flight have been or are
 * being answered with a NULL reply); a reconnect is scheduled unless the
 * connection is HQ_CONN_ON_DEMAND or being released.
 */
struct hq__conn_hooks {
    void (*up)(struct hq__conn *c, void *arg);
    void (*down)(struct hq__conn *c, const char *why, void *arg);
    void *arg;
};

enum hq__conn_flags {
    /* Connect at the first call, and after a failure at the next call
     * instead of on a timer (processing: no call, no connection). */
    HQ_CONN_ON_DEMAND = 1 << 0,
    /* For subscriptions only (the worker's wake subscription), through
     * hq__conn_subscribe(). On one Redis, its `up` hook comes once the
     * server has said whether it has sharded Pub/Sub (COMMAND INFO
     * SSUBSCRIBE); on a cluster, the router keeps a connection per master
     * for them (router_int.h). */
    HQ_CONN_SUBSCRIBER = 1 << 1,
};

/* Owned by one loop; every field is touched only by its thread. */
struct hq__conn {
    struct event_base *base;
    const struct hq__store_addr *addr; /* borrowed; outlives the conn */
    const struct hq__store_ns *ns;     /* borrowed; names the shards' keys */
    struct hq__conn_hooks hooks;
    unsigned flags;                    /* enum hq__conn_flags */
    redisAsyncContext *ac;             /* NULL while down */
    int up;                            /* connected, not lost since */
    int closing;                       /* released: no reconnect */
    int attempts;                      /* failed attempts since the last connect */
    uint64_t rng;                      /* jitter */
    struct event *retry_ev;            /* the reconnect timer */
    struct hq__router *router;         /* a Redis Cluster: routes the calls;
                                          `ac` stays NULL (router.c) */
    int sharded;                       /* HQ_CONN_SUBSCRIBER on one Redis: it
                                          has SSUBSCRIBE (Redis >= 7.0) */
    struct event *stale_ev;            /* Sentinel: a node answered READONLY or
                                          LOADING; reconnect, asking again */
    char master_host[256];             /* Sentinel: the master last given */
    int master_port;
};

/*
 * Set up `c` on `base` without connecting (see hq__conn_start()).
 * `addr` and `ns` are borrowed and must outlive `c`; `hooks` is copied
 * (NULL: none). Returns HQ_OK or HQ_ENOMEM.
 */
int hq__conn_init(struct hq__conn *c, struct event_base *base,
                  const struct hq__store_addr *addr,
                  const struct hq__store_ns *ns,
                  const struct hq__conn_hooks *hooks, unsigned flags);

/*
 * Connect now, unless connected or connecting. A failure is reported
 * through the `down` hook and retried after the backoff.
 */
void hq__conn_start(struct hq__conn *c);

/*
 * Drop the connection (a call was not answered in time: hiredis has no
 * command timeout of its own) and reconnect after the backoff. Calls in
 * flight are answered with a NULL reply before this returns; the `down`
 * hook gets `why`. Not from inside one of this connection's callbacks.
 */
void hq__conn_reset(struct hq__conn *c, const char *why);

/*
 * As hq__conn_reset(), for a call on `shard` that was not answered in
 * time: on a Redis Cluster only the connection to that shard's master is
 * dropped (its calls answered NULL), the other masters' calls go on; on
 * one Redis, the connection. The `down` hook gets `why`.
 */
void hq__conn_reset_shard(struct hq__conn *c, unsigned shard, const char *why);

/*
 * From now on, a lost connection is not made again (its loop is stopping);
 * the connection in place stays for the calls in flight.
 */
void hq__conn_no_reconnect(struct hq__conn *c);

/*
 * Close for good: calls in flight are answered with a NULL reply, no
 * reconnect follows, the hooks are not called. `c` may then be
 * initialised again. Accepts a conn that was never initialised (zeroed).
 */
void hq__conn_release(struct hq__conn *c);

/*
 * The connection that serves `shard`, or NULL when it cannot take a call
 * now (down, reconnect pending, or being freed). A HQ_CONN_ON_DEMAND conn
 * that is down starts connecting and returns the new connection: calls
 * queue until it is made. This is the one routing lookup.
 */
redisAsyncContext *hq__conn_for_shard(struct hq__conn *c, unsigned shard);

/*
 * Which Redis server serves `shard` now, as a number in
 * [0, HQ_CONN_NODES_MAX): shards with the same number are served by the
 * same server, over one connection (one Redis: always 0; a cluster: the
 * shard's master). -1 when unknown (down, or no slot map yet). Connects
 * nothing; for grouping calls, not for sending them.
 */
#define HQ_CONN_NODES_MAX HQ_ROUTER_NODES_MAX
int hq__conn_shard_node(struct hq__conn *c, unsigned shard);

/*
 * Run script `name` on `shard` (KEYS[1] is the shard's key prefix) with
 * the given ARGV (`argvlen` NULL: NUL-terminated strings), copied.
 * `fn(ac, reply, privdata)` is called exactly once: with the reply, an
 * error reply included, or NULL when the connection failed; a NOSCRIPT
 * answer is sent again as EVAL before `fn` sees it. Returns HQ_OK, or
 * HQ_EINVAL (unknown script), HQ_ENOMEM or HQ_ESTORE (no connection), and
 * then `fn` is not called.
 */
int hq__conn_eval(struct hq__conn *c, unsigned shard, const char *name,
                  int argc, const char **argv, const size_t *argvlen,
                  redisCallbackFn *fn, void *privdata);

/*
 * Send a plain command (WAIT) on the connection that serves `shard`. `fn`
 * as for hq__conn_eval(). Returns HQ_OK or HQ_ESTORE (no connection). Not
 * for SUBSCRIBE: see hq__conn_subscribe().
 */
int hq__conn_command(struct hq__conn *c, unsigned shard, int argc,
                     const char **argv, const size_t *argvlen,
                     redisCallbackFn *fn, void *privdata);

/*
 * On a HQ_CONN_SUBSCRIBER conn: subscribe to shard `shard`'s channel
 * `name`, "{ns:shard}:<name>" (in the shard's hash slot, so on a cluster
 * it lives on the shard's master), with SUBSCRIBE, and SSUBSCRIBE too
 * where the server has sharded Pub/Sub: a publisher that uses SPUBLISH
 * where it can and PUBLISH elsewhere is heard either way (_prelude.lua).
 * `fn(ac, reply, privdata)` gets each push of the channel: ["message" or
 * "smessage", channel, payload], the confirmations, and on a cluster
 * ["sunsubscribe", channel, n] when the slot moved (the subscription
 * follows it; messages may have been missed). On one Redis, call it again
 * from the `up` hook after each reconnect; on a cluster the router keeps
 * the subscription itself (calling again is harmless). Returns HQ_OK,
 * HQ_EINVAL, HQ_ENOMEM or HQ_ESTORE (not connected).
 */
int hq__conn_subscribe(struct hq__conn *c, unsigned shard, const char *name,
                       redisCallbackFn *fn, void *privdata);

/* ------------------------------------------------------------------------ */
/* Blocking connections.                                                    */

/* One thread at a time. */
struct hq__sconn_cluster;

struct hq__sconn {
    const struct hq__store_addr *addr; /* borrowed; outlives the sconn */
    const struct hq__store_ns *ns;     /* borrowed */
    redisContext *rc;                  /* NULL or broken: made on next use */
    struct hq__sconn_cluster *cl;      /* a Redis Cluster: the slot map and a
                                          context per master; made on first use */
};

/* Set up without connecting. Cannot fail. */
void hq__sconn_init(struct hq__sconn *c, const struct hq__store_addr *addr,
                    const struct hq__store_ns *ns);
/* Close the connection, if any. Accepts a zeroed sconn. */
void hq__sconn_release(struct hq__sconn *c);

/*
 * The live connection that serves `shard`, made again first when it is
 * missing or broken (hiredis does not recover a broken context); NULL with
 * the reason in `err` when Redis cannot be reached.
 */
redisContext *hq__sconn_for_shard(struct hq__sconn *c, unsigned shard,
                                  struct hq__err *err);

/*
 * Run script `name` on `shard`, blocking. Returns the reply (caller frees
 * with freeReplyObject) or NULL with `err` set; a Redis error reply is also
 * turned into NULL + err.
 */
redisReply *hq__sconn_eval(struct hq__sconn *c, unsigned shard,
                           const char *name, int argc, const char **argv,
                           const size_t *argvlen, struct hq__err *err);

/*
 * Pipelining: append a call of script `name` on `shard` to the output
 * buffer of the connection serving it, without reading the reply (HQ_OK,
 * HQ_EINVAL, HQ_ENOMEM, or HQ_ESTORE with `err` when Redis cannot be
 * reached); read the replies in order with hq__sconn_eval_reply(), which
 * returns NULL with `err` set on an error reply; `*noscript` is set when
 * that error says the call did not run and may be sent again with
 * hq__sconn_eval(): NOSCRIPT, or on a cluster MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN (hq__sconn_eval() follows them).
 */
int hq__sconn_eval_append(struct hq__sconn *c, unsigned shard,
                          const char *name, int argc, const char **argv,
                          const size_t *argvlen, struct hq__err *err);
redisReply *hq__sconn_eval_reply(struct hq__sconn *c, unsigned shard,
                                 int *noscript, struct hq__err *err);

/*
 * /healthz: 1 when Redis answers PING — on a cluster, when the master of
 * every shard of `c->ns` does (the map read afresh). Else 0, with the
 * reason in `why` ("shard 3 (slot 8784, 127.0.0.1:7002): connection
 * refused"). `ns` NULL counts as one shard.
 */
int hq__sconn_ping(struct hq__sconn *c, char *why, size_t size);

/*
 * A url of one host may name a node of a Redis Cluster: ask it (INFO
 * cluster) and set addr->cluster when it says cluster_enabled:1. Returns
 * addr->cluster. Blocking, once at start; a node that cannot be reached is
 * taken for a single Redis (list two hosts to be sure).
 */
int hq__conn_probe_cluster(struct hq__store_addr *addr);

/*
 * On a cluster: how the shards of `ns` fall on the masters (the map read
 * from the seeds now), for the start log; `*uneven` set when one master
 * holds more than twice its share. HQ_OK, HQ_EINVAL when `addr` is not a
 * cluster, or HQ_ESTORE with `err`.
 */
int hq__conn_cluster_layout(const struct hq__store_addr *addr,
                            const struct hq__store_ns *ns, char *buf,
                            size_t size, int *uneven, struct hq__err *err);

/*
 * A new blocking connection to `addr` with AUTH and SELECT done, for a
 * caller that manages it itself (a start-up check, a benchmark's INFO).
 * NULL with the reason in `err` ("cannot connect to redis at
 * '127.0.0.1:6379': connection refused").
 */
redisContext *hq__conn_connect_sync(const struct hq__store_addr *addr,
                                    struct hq__err *err);

/*
 * Ask the Sentinels of `addr` (addr->sentinels, in order) where
 * addr->sentinel_master is (hq__sentinel_ask(), with addr's timeout and
 * the Sentinels' own user and password), then connect to the node named
 * with addr's user, password and database and check that ROLE says master.
 * The first that answers so wins: its host and port go to `*master`.
 * Returns HQ_OK, or HQ_ESTORE with the reason in `err` (each Sentinel
 * unreachable, none knowing the name, or the node named not being a
 * master: a failover under way, ask again shortly; when a Sentinel refused
 * the password or wanted one, that reason rather than a later one, as it
 * names what to fix), or HQ_EINVAL when `addr` has no Sentinels.
 */
int hq__conn_sentinel_lookup(const struct hq__store_addr *addr,
                             struct hq__store_seed *master,
                             struct hq__err *err);

/*
 * hq__conn_sentinel_lookup() as a connect does it (hq__conn_start(),
 * hq__conn_connect_sync()): a Sentinel, and the node it names, get at most
 * a second each, for an event loop may be waiting on this.
 */
int hq__conn_sentinel_resolve(const struct hq__store_addr *addr,
                              struct hq__store_seed *master,
                              struct hq__err *err);

#endif /* HQ_CONN_INT_H */
