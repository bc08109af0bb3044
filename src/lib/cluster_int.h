/*
 * Redis Cluster routing, the pure part (DESIGN §3.7): which hash slot a key
 * is in, which master serves a slot (the slot map, read from CLUSTER SLOTS),
 * and what a redirection or a cluster error reply asks the client to do.
 * Nothing here opens a connection: the connection layer asks these
 * functions and acts on the answer, and the unit tests drive them from
 * tables.
 */
#ifndef HQ_CLUSTER_INT_H
#define HQ_CLUSTER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "common_int.h"
#include "store_int.h"

#define HQ_CLUSTER_SLOTS 16384
#define HQ_CLUSTER_NODES_MAX 255 /* masters in one map (slot_node is a byte) */

/* A master: where to send what its slots hold. */
struct hq__cluster_node {
    char host[256];
    int port;
};

/*
 * The slot map: slot → master. Big (about 80 KiB): allocate it, do not put
 * it on a thread's stack.
 */
struct hq__cluster_map {
    unsigned nnodes;                                  /* distinct masters */
    struct hq__cluster_node nodes[HQ_CLUSTER_NODES_MAX];
    uint8_t slot_node[HQ_CLUSTER_SLOTS];              /* index + 1; 0 = no master */
};

/* CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with. */
uint16_t hq__cluster_crc16(const void *buf, size_t len);

/*
 * The hash slot of `key` as Redis computes it: CRC16 of the whole key, or,
 * when the key holds a '{' followed later by a '}' with something between
 * them, of what is between the first '{' and the first '}' after it; mod
 * 16384.
 */
unsigned hq__cluster_keyslot(const char *key, size_t len);

/* The slot of shard `shard` of `ns`: every key of the shard is in it. */
unsigned hq__cluster_shard_slot(const struct hq__store_ns *ns, unsigned shard);

/* Empty `m`: no slot has a master. */
void hq__cluster_map_init(struct hq__cluster_map *m);

/*
 * Fill `m` from a CLUSTER SLOTS reply `r`, received from a node that we
 * reached at `asked_host`: an endpoint given as NULL, "" or "?" means that
 * host (the node does not know its own address, or sits behind a proxy).
 * Replicas are ignored: hookq never sends to one. Returns HQ_OK, or
 * HQ_EPROTO with the reason in `err` (then `m` is left empty), HQ_EINVAL
 * when the reply names more than HQ_CLUSTER_NODES_MAX masters.
 */
int hq__cluster_map_from_slots(struct hq__cluster_map *m, const redisReply *r,
                               const char *asked_host, struct hq__err *err);

/* The master of `slot`, or NULL when none serves it. Owned by `m`. */
const struct hq__cluster_node *
hq__cluster_map_node(const struct hq__cluster_map *m, unsigned slot);

/*
 * Record that `slot` is served by host:port (a MOVED answer), adding the
 * node when it is new. Returns HQ_OK, HQ_EINVAL (slot out of range, host too
 * long, or the map already holds HQ_CLUSTER_NODES_MAX masters).
 */
int hq__cluster_map_set(struct hq__cluster_map *m, unsigned slot,
                        const char *host, int port);

/* What an error reply asks of the client. */
enum hq__redirect_kind {
    HQ_REDIRECT_NONE = 0, /* an error of the command itself: give it back */
    HQ_REDIRECT_MOVED,    /* the slot lives elsewhere now: new map, send there */
    HQ_REDIRECT_ASK,      /* this one command: ASKING, then send to the node named */
    HQ_REDIRECT_TRYAGAIN, /* slot being moved, keys split: wait, send again */
    HQ_REDIRECT_CLUSTERDOWN, /* the cluster (or this slot) has no master: wait */
    HQ_REDIRECT_READONLY, /* we reached a replica: ask for the master again */
    HQ_REDIRECT_LOADING,  /* the node is loading its data: wait, or ask again */
    HQ_REDIRECT_MASTERDOWN, /* a replica whose master is gone: ask again */
};

struct hq__redirect {
    enum hq__redirect_kind kind;
    unsigned slot;  /* MOVED, ASK */
    char host[256]; /* MOVED, ASK; "" = the host the reply came from */
    int port;       /* MOVED, ASK */
};

/*
 * Read an error reply's text (without the leading '-', as hiredis gives
 * it): "MOVED 3999 127.0.0.1:6381", "ASK 3999 :6381", "TRYAGAIN ...",
 * "CLUSTERDOWN ...", "READONLY ...", "LOADING ...", "MASTERDOWN ...". A
 * MOVED or ASK whose slot, host or port cannot be read is HQ_REDIRECT_NONE
 * (the caller reports the error as it came). Returns out->kind.
 */
enum hq__redirect_kind hq__cluster_redirect_parse(const char *msg, size_t len,
                                                  struct hq__redirect *out);

/*
 * Describe how the shards of `ns` fall on the masters of `m`, for the start
 * log: "shards 0,3,6 → 127.0.0.1:7000; shards 1,4,7 → 127.0.0.1:7001; ..."
 * (a shard whose slot has no master: "→ no master"). Returns 1 when a
 * master holds more than twice its share of the shards (shards / masters),
 * else 0. The text is cut short, ending in "...", when `size` is too small.
 */
int hq__cluster_layout(const struct hq__cluster_map *m,
                       const struct hq__store_ns *ns, char *buf, size_t size);

#endif /* HQ_CLUSTER_INT_H */
