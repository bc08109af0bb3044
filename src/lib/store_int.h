/*
 * The Redis store: where the queue lives and what its calls look like.
 *
 * Parses redis:// and unix:// URLs, names the Redis keys of a shard, and
 * knows the embedded Lua scripts, their SHA1s and the EVALSHA command that
 * runs one. No I/O: connections and calls are conn_int.h's (and
 * router_int.h's, on a cluster), which use this; nothing here uses them.
 */
#ifndef HQ_STORE_INT_H
#define HQ_STORE_INT_H

#include <stddef.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common_int.h"

#define HQ_PREFIX_MAX 160

#define HQ_SEEDS_MAX 16 /* host:port entries in one url or sentinels list */

/* One host:port of a list (cluster seeds, Sentinels). */
struct hq__store_seed {
    char host[256];
    int port;
};

/* A parsed store address. */
struct hq__store_addr {
    char host[256];      /* the first seed; "" when unix_path is set */
    int port;
    char unix_path[256]; /* "" for TCP */
    int db;
    char user[128];      /* "" = AUTH password alone (the default user) */
    char password[256];  /* "" = no AUTH */
    int timeout_ms;
    unsigned nseeds;     /* TCP: >= 1, seeds[0] is host:port; unix: 0 */
    struct hq__store_seed seeds[HQ_SEEDS_MAX];
    int cluster;         /* a Redis Cluster: nseeds > 1, or the one host
                            said cluster_enabled:1 (hq__conn_probe_cluster) */
    unsigned nsentinels; /* > 0: host:port come from these Sentinels */
    struct hq__store_seed sentinels[HQ_SEEDS_MAX];
    char sentinel_master[128];
    char sentinel_user[128];      /* "" = AUTH password alone, as for the
                                     data nodes' user */
    char sentinel_password[256];  /* "" = the Sentinels get no AUTH */
};

/* The namespace and shard count, shared by everything that names keys. */
struct hq__store_ns {
    char ns[64];
    unsigned shards; /* >= 1 */
};

/*
 * Parse `url`: redis://[[user]:password@]host[:port][,host[:port]...][/db]
 * (several host:port = the seeds of a Redis Cluster, whose only database
 * is 0; a userinfo without ':' is a password, as before ACL users) or
 * unix:///path[?db=N]. A port left out is 6379. Returns HQ_OK or HQ_EINVAL
 * with the reason in `err`.
 */
int hq__store_parse_url(const char *url, int timeout_ms,
                        struct hq__store_addr *addr, struct hq__err *err);

/*
 * Parse a list "host:port[,host:port...]" (`what` names it in messages:
 * "sentinels") into `out`, at most HQ_SEEDS_MAX entries; every port must be
 * given when `need_port`, else it defaults to 6379. Returns HQ_OK with the
 * count in `*n`, or HQ_EINVAL with the reason in `err`.
 */
int hq__store_parse_hostports(const char *list, size_t len, const char *what,
                              int need_port, struct hq__store_seed *out,
                              unsigned *n, struct hq__err *err);

/*
 * Add `[redis] sentinels` (NULL or "" = none) and the master's name (NULL =
 * "hookq") to `addr`: connections then ask the Sentinels where the master
 * is. Refused (HQ_EINVAL with `err`) with a unix:// url or a cluster.
 */
int hq__store_set_sentinels(struct hq__store_addr *addr, const char *list,
                            const char *master, struct hq__err *err);

/*
 * Add the Sentinels' own credentials (`[redis] sentinel_user` and
 * `sentinel_password`; NULL or "" = none) to `addr`: every connection to
 * a Sentinel then sends AUTH before asking it anything. Refused (HQ_EINVAL
 * with `err`, which never holds the password) without Sentinels, with a
 * user but no password, or when one is too long. Call after
 * hq__store_set_sentinels().
 */
int hq__store_set_sentinel_auth(struct hq__store_addr *addr, const char *user,
                                const char *password, struct hq__err *err);

/* `addr`'s name in messages: "host:port" (the first seed) or
 * "unix:///path". */
void hq__store_addr_name(const struct hq__store_addr *addr, char *buf,
                         size_t size);

/* Fill `ns` from public options (defaults applied); HQ_EINVAL if bad. */
int hq__store_ns_init(struct hq__store_ns *ns, const char *name,
                      unsigned shards, struct hq__err *err);

/* The shard of a customer: fnv1a32(customer) % shards. */
unsigned hq__store_shard_of(const struct hq__store_ns *ns,
                            const char *customer, size_t len);

/*
 * The pseudo-shard of the namespace's records about its processes (the
 * shard count, the worker registry: registry.c), under a hash tag of its
 * own, "{ns:meta}", so that no real shard's master carries them.
 */
#define HQ_SHARD_META 0xffffffffu

/* Write the key prefix "{ns:shard}:" into buf; returns its length. */
size_t hq__store_prefix(const struct hq__store_ns *ns, unsigned shard,
                        char *buf, size_t size);

/* The customer part of a key "<customer>:<code>" (before the last ':'). */
int hq__store_key_customer(const char *key, size_t keylen, size_t *custlen);

/* The SHA1 (40 hex chars) of an embedded script, or NULL if unknown. */
const char *hq__store_script_sha(const char *name);
/* The source of an embedded script, or NULL if unknown. */
const struct hq__script *hq__store_script(const char *name);

/*
 * The command of script `name` on the keys under `prefix`: "EVALSHA sha 1
 * prefix argv..." or, with `use_src`, "EVAL src 1 prefix argv...", into
 * cmd/cmdlen, which hold argc + 4 entries (the caller bounds argc). The
 * entries point at the script table, `prefix` and `argv` (lengths from
 * `argvlen`, or strlen when it is NULL). HQ_EINVAL for an unknown script
 * or a negative argc. Built here, sent by conn.c, sconn.c and router.c.
 */
int hq__store_eval_cmd(const char *name, int use_src, const char *prefix,
                       int argc, const char **argv, const size_t *argvlen,
                       const char **cmd, size_t *cmdlen);

/* 1 when `r` is Redis's NOSCRIPT error: the script call did not run and
 * may be sent again with `use_src`. `r` may be NULL. */
int hq__store_is_noscript(const redisReply *r);

#endif /* HQ_STORE_INT_H */
