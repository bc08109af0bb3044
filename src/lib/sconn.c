/*
 * The blocking Redis connections (see conn_int.h for the contract): the
 * one blocking connect to a data node, the Sentinels' master, struct
 * hq__sconn and its Redis Cluster form, and the start-up probes.
 *
 * DESIGN: a blocking connection belongs to one thread that waits for each
 * answer (the client, /healthz, a start-up check), so it keeps no timers
 * and no hooks: a connection that broke stays broken in hiredis and is
 * simply made again at the next call. On a cluster, an hq__sconn keeps
 * the slot map and a context per master, and one call follows MOVED, ASK
 * and TRYAGAIN itself, sleeping briefly between tries, for at most
 * SCL_PATIENCE_MS. A NOSCRIPT answer is sent again as EVAL at once, on the
 * same connection. conn.c, the asynchronous side, connects with the same
 * Sentinel lookup (hq__conn_sentinel_resolve()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock_int.h"
#include "cluster_int.h"
#include "conn_int.h"
#include "sentinel_int.h"

static int
check_reply(redisReply *r, const char *what, struct hq__err *err)
{
    if (r == NULL)
        return hq__err_set(err, HQ_ESTORE, "%s: no reply from redis", what);
    if (r->type == REDIS_REPLY_ERROR) {
        hq__err_set(err, HQ_ESTORE, "%s: %s", what, r->str);
        freeReplyObject(r);
        return HQ_ESTORE;
    }
    freeReplyObject(r);
    return HQ_OK;
}

/* A blocking connection to `addr`'s host (its Sentinels aside), with AUTH
 * and SELECT done: the one blocking connect to a data node. */
static redisContext *
connect_node(const struct hq__store_addr *addr, struct hq__err *err)
{
    struct timeval tv = {addr->timeout_ms / 1000,
                         (addr->timeout_ms % 1000) * 1000};
    redisContext *c;
    char name[300];

    hq__store_addr_name(addr, name, sizeof(name));
    if (addr->unix_path[0])
        c = redisConnectUnixWithTimeout(addr->unix_path, tv);
    else
        c = redisConnectWithTimeout(addr->host, addr->port, tv);
    if (c == NULL) {
        hq__err_set(err, HQ_ENOMEM, "cannot connect to redis at '%s': out of memory", name);
        return NULL;
    }
    if (c->err) {
        hq__err_set(err, HQ_ESTORE, "cannot connect to redis at '%s': %s", name,
                    c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    /* TCP only: on a unix socket it fails and leaves c->err set. */
    if (!addr->unix_path[0])
        redisEnableKeepAlive(c);
    if (addr->user[0] &&
        check_reply(redisCommand(c, "AUTH %s %s", addr->user, addr->password),
                    "auth", err))
        goto fail;
    if (!addr->user[0] && addr->password[0] &&
        check_reply(redisCommand(c, "AUTH %s", addr->password), "auth", err))
        goto fail;
    if (addr->db &&
        check_reply(redisCommand(c, "SELECT %d", addr->db), "select", err))
        goto fail;
    return c;
fail:
    if (c->err)
        hq__err_set(err, HQ_ESTORE, "redis at '%s': %s", name, c->errstr);
    redisFree(c);
    return NULL;
}

/*
 * Connect to `m`, the master a Sentinel named, as `addr` says, and check
 * ROLE: HQ_OK when it is a master.
 *
 * DESIGN: a Sentinel's answer can be stale for a moment after a failover
 * (the old master restarted as a replica, or the new one not yet
 * reconfigured), so hookq never trusts it alone: the node named must say
 * ROLE master before hookq writes to it. A Sentinel that is down, does not
 * know the name, or names a non-master is passed over for the next one;
 * when none gives a master, the caller fails this attempt and asks again
 * after its reconnect backoff, so a failover in progress is waited out.
 */
static int
check_master(const struct hq__store_seed *m, const struct hq__store_addr *addr,
             struct hq__err *err)
{
    struct hq__store_addr a = *addr;
    redisContext *c;
    redisReply *r;
    int rc = HQ_OK;

    memcpy(a.host, m->host, sizeof(a.host));
    a.port = m->port;
    a.unix_path[0] = '\0';
    c = connect_node(&a, err);
    if (c == NULL)
        return HQ_ESTORE;
    r = redisCommand(c, "ROLE");
    if (!hq__sentinel_role_is_master(r))
        rc = hq__err_set(err, HQ_ESTORE,
                         "the sentinels name %s:%d as master '%s', but it is "
                         "not a master (%s): a failover is under way",
                         m->host, m->port, addr->sentinel_master,
                         r == NULL ? c->errstr
                         : r->type == REDIS_REPLY_ERROR ? r->str
                         : r->type == REDIS_REPLY_ARRAY && r->elements &&
                                 r->element[0]->type == REDIS_REPLY_STRING
                             ? r->element[0]->str
                             : "unexpected answer to ROLE");
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

int
hq__conn_sentinel_lookup(const struct hq__store_addr *addr,
                         struct hq__store_seed *master, struct hq__err *err)
{
    struct hq__err auth = {{0}}; /* the first Sentinel that refused AUTH */

    if (addr->nsentinels == 0)
        return hq__err_set(err, HQ_EINVAL, "no sentinels to ask");
    for (unsigned i = 0; i < addr->nsentinels; i++) {
        int rc = hq__sentinel_ask(&addr->sentinels[i], addr->sentinel_master,
                                  addr->sentinel_user, addr->sentinel_password,
                                  addr->timeout_ms, master, err);

        if (rc == HQ_ECONFIG && auth.msg[0] == '\0')
            auth = *err;
        if (rc != HQ_OK)
            continue;
        if (check_master(master, addr, err) == HQ_OK)
            return HQ_OK;
    }
    /* A wrong or missing password says what to fix; "connection refused"
     * from the next Sentinel would hide it. Else the last reason. */
    if (auth.msg[0] != '\0')
        *err = auth;
    return HQ_ESTORE;
}

int
hq__conn_sentinel_resolve(const struct hq__store_addr *addr, struct hq__store_seed *m,
                 struct hq__err *err)
{
    struct hq__store_addr a = *addr;

    if (a.timeout_ms > 1000)
        a.timeout_ms = 1000;
    return hq__conn_sentinel_lookup(&a, m, err);
}

redisContext *
hq__conn_connect_sync(const struct hq__store_addr *addr, struct hq__err *err)
{
    struct hq__store_addr a;
    struct hq__store_seed m;

    if (!addr->nsentinels)
        return connect_node(addr, err);
    if (hq__conn_sentinel_resolve(addr, &m, err) != HQ_OK)
        return NULL;
    a = *addr;
    memcpy(a.host, m.host, sizeof(a.host));
    a.port = m.port;
    a.nsentinels = 0;
    return connect_node(&a, err);
}

/* ------------------------------------------------------------------------ */
/* Blocking connections to a Redis Cluster.                                 */

#define SCL_NODES 64
#define SCL_PATIENCE_MS 2000 /* redirections and waits of one blocking call */

struct sc_node {
    char host[256];
    int port;
    redisContext *rc; /* NULL or broken: made on next use */
};

struct hq__sconn_cluster {
    struct hq__cluster_map map;
    int has_map;
    struct sc_node nodes[SCL_NODES];
    unsigned nnodes;
};

static int
is_cluster(const struct hq__store_addr *addr)
{
    return addr->cluster;
}

int
hq__conn_probe_cluster(struct hq__store_addr *addr)
{
    struct hq__store_addr a = *addr;
    struct hq__err e;
    redisContext *rc;
    redisReply *r;

    if (addr->cluster || addr->unix_path[0] || addr->nsentinels)
        return addr->cluster;
    if (a.timeout_ms > 1000)
        a.timeout_ms = 1000; /* at start: do not hold it up for long */
    rc = hq__conn_connect_sync(&a, &e);
    if (rc == NULL)
        return 0;
    r = redisCommand(rc, "INFO cluster");
    if (r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_enabled:1"))
        addr->cluster = 1;
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return addr->cluster;
}

static struct sc_node *
sc_node(struct hq__sconn_cluster *cl, const char *host, int port)
{
    for (unsigned i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].port == port && strcmp(cl->nodes[i].host, host) == 0)
            return &cl->nodes[i];
    if (cl->nnodes == SCL_NODES || strlen(host) >= sizeof(cl->nodes[0].host))
        return NULL;
    memcpy(cl->nodes[cl->nnodes].host, host, strlen(host) + 1);
    cl->nodes[cl->nnodes].port = port;
    cl->nodes[cl->nnodes].rc = NULL;
    return &cl->nodes[cl->nnodes++];
}

/* The node's live context, made again if missing or broken. */
static redisContext *
sc_node_rc(const struct hq__store_addr *addr, struct sc_node *n,
           struct hq__err *err)
{
    struct hq__store_addr a;

    if (n->rc && !n->rc->err)
        return n->rc;
    if (n->rc)
        redisFree(n->rc);
    a = *addr;
    memcpy(a.host, n->host, sizeof(a.host));
    a.port = n->port;
    a.nseeds = 1;
    n->rc = hq__conn_connect_sync(&a, err);
    return n->rc;
}

/* Read the slot map from a known node or seed; HQ_OK or HQ_ESTORE. */
static int
sc_read_map(const struct hq__store_addr *addr, struct hq__sconn_cluster *cl,
            struct hq__err *err)
{
    for (unsigned i = 0; i < addr->nseeds; i++)
        sc_node(cl, addr->seeds[i].host, addr->seeds[i].port);
    for (unsigned i = 0; i < cl->nnodes; i++) {
        struct sc_node *n = &cl->nodes[i];
        redisContext *rc = sc_node_rc(addr, n, err);
        redisReply *r;
        int ok;

        if (rc == NULL)
            continue;
        r = redisCommand(rc, "CLUSTER SLOTS");
        ok = hq__cluster_map_from_slots(&cl->map, r, n->host, err) == HQ_OK;
        if (r)
            freeReplyObject(r);
        if (ok) {
            cl->has_map = 1;
            return HQ_OK;
        }
    }
    cl->has_map = 0;
    return HQ_ESTORE; /* `err` says the last reason */
}

static struct hq__sconn_cluster *
sc_get(struct hq__sconn *c, struct hq__err *err)
{
    if (c->cl == NULL) {
        c->cl = calloc(1, sizeof(*c->cl));
        if (c->cl == NULL) {
            hq__err_set(err, HQ_ENOMEM, "out of memory");
            return NULL;
        }
    }
    if (!c->cl->has_map && sc_read_map(c->addr, c->cl, err) != HQ_OK)
        return NULL;
    return c->cl;
}

/* The context of the master of `slot`, the map read again once if need be. */
static redisContext *
sc_slot_rc(struct hq__sconn *c, unsigned slot, unsigned shard,
           struct hq__err *err)
{
    struct hq__sconn_cluster *cl = sc_get(c, err);

    for (int pass = 0; cl && pass < 2; pass++) {
        const struct hq__cluster_node *cn = hq__cluster_map_node(&cl->map, slot);
        struct sc_node *n = cn ? sc_node(cl, cn->host, cn->port) : NULL;
        redisContext *rc = NULL;

        if (cn == NULL)
            hq__err_set(err, HQ_ESTORE,
                        "shard %u (slot %u): no master serves it", shard, slot);
        else if (n == NULL)
            hq__err_set(err, HQ_ESTORE, "too many redis cluster nodes");
        else
            rc = sc_node_rc(c->addr, n, err);
        if (rc)
            return rc;
        if (pass == 0 && sc_read_map(c->addr, cl, err) != HQ_OK)
            break;
    }
    return NULL;
}

/* What an error reply asks of a blocking cluster call: 0 = give it back. */
static int
sc_follow(struct hq__sconn *c, const redisReply *r, int is_script, int64_t deadline)
{
    struct hq__redirect rd;
    struct hq__err e;

    if (r == NULL || r->type != REDIS_REPLY_ERROR
        || hq__mono_ms() >= deadline)
        return 0;
    if (c->cl == NULL) {
        /* Sentinel: a replica now, or loading; connect again, asking the
         * Sentinels where the master is. */
        enum hq__redirect_kind k = hq__cluster_redirect_parse(r->str, r->len, &rd);
        if (c->addr->nsentinels == 0 ||
            (k != HQ_REDIRECT_READONLY && k != HQ_REDIRECT_LOADING &&
             k != HQ_REDIRECT_MASTERDOWN))
            return 0;
        if (c->rc)
            redisFree(c->rc);
        c->rc = NULL;
        hq__sleep_ms(100);
        return 1;
    }
    switch (hq__cluster_redirect_parse(r->str, r->len, &rd)) {
    case HQ_REDIRECT_MOVED:
        /* A fresh map; the one slot at once in case it cannot be read. */
        if (sc_read_map(c->addr, c->cl, &e) != HQ_OK && rd.host[0])
            hq__cluster_map_set(&c->cl->map, rd.slot, rd.host, rd.port);
        c->cl->has_map = 1;
        return 1;
    case HQ_REDIRECT_ASK:
        /* Scripts wait until the slot has moved (router_int.h says why);
         * hookq sends nothing else blocking that ASK could concern. */
        (void)is_script;
        hq__sleep_ms(50);
        return 1;
    case HQ_REDIRECT_READONLY:
    case HQ_REDIRECT_MASTERDOWN:
        hq__sleep_ms(50);
        sc_read_map(c->addr, c->cl, &e);
        return 1;
    case HQ_REDIRECT_TRYAGAIN:
    case HQ_REDIRECT_CLUSTERDOWN:
    case HQ_REDIRECT_LOADING:
        hq__sleep_ms(50);
        return 1;
    case HQ_REDIRECT_NONE:
        break;
    }
    return 0;
}

static void
sc_free(struct hq__sconn_cluster *cl)
{
    if (cl == NULL)
        return;
    for (unsigned i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].rc)
            redisFree(cl->nodes[i].rc);
    free(cl);
}

int
hq__conn_cluster_layout(const struct hq__store_addr *addr,
                        const struct hq__store_ns *ns, char *buf, size_t size,
                        int *uneven, struct hq__err *err)
{
    struct hq__sconn_cluster *cl;
    int rc;

    if (!is_cluster(addr))
        return HQ_EINVAL;
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    rc = sc_read_map(addr, cl, err);
    if (rc == HQ_OK)
        *uneven = hq__cluster_layout(&cl->map, ns, buf, size);
    sc_free(cl);
    return rc;
}

/* PING on `rc`: 1 on PONG, else 0 with `where` and what went wrong in `why`. */
static int
sc_ping(redisContext *rc, char *why, size_t size, const char *where)
{
    redisReply *r = redisCommand(rc, "PING");
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS
             && strcmp(r->str, "PONG") == 0;

    if (!ok)
        snprintf(why, size, "%s%s", where,
                 r == NULL                      ? rc->errstr
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return ok;
}

int
hq__sconn_ping(struct hq__sconn *c, char *why, size_t size)
{
    unsigned shards = c->ns ? c->ns->shards : 1;
    struct hq__err e;

    if (!is_cluster(c->addr)) {
        redisContext *rc = hq__sconn_for_shard(c, 0, &e);

        if (rc == NULL) {
            snprintf(why, size, "%s", e.msg);
            return 0;
        }
        if (!sc_ping(rc, why, size, "")) {
            hq__sconn_release(c);
            return 0;
        }
        return 1;
    }
    /* The map as it is now, then each shard's master once. */
    if (sc_get(c, &e) == NULL || sc_read_map(c->addr, c->cl, &e) != HQ_OK) {
        snprintf(why, size, "cannot read the cluster's slot map: %s", e.msg);
        return 0;
    }
    for (unsigned s = 0; s < shards; s++) {
        unsigned slot = c->ns ? hq__cluster_shard_slot(c->ns, s) : 0;
        const struct hq__cluster_node *cn = hq__cluster_map_node(&c->cl->map, slot);
        struct sc_node *n = cn ? sc_node(c->cl, cn->host, cn->port) : NULL;
        char where[320]; /* "shard S (slot N, host:port): " */
        redisContext *rc;

        if (cn == NULL || n == NULL) {
            snprintf(why, size, "shard %u (slot %u): no master serves it", s, slot);
            return 0;
        }
        rc = sc_node_rc(c->addr, n, &e);
        if (rc == NULL) {
            snprintf(why, size, "shard %u (slot %u, %s:%d): %s", s, slot,
                     n->host, n->port, e.msg);
            return 0;
        }
        snprintf(where, sizeof(where), "shard %u (slot %u, %s:%d): ", s, slot,
                 n->host, n->port);
        if (!sc_ping(rc, why, size, where))
            return 0;
    }
    return 1;
}

void
hq__sconn_init(struct hq__sconn *c, const struct hq__store_addr *addr,
               const struct hq__store_ns *ns)
{
    c->addr = addr;
    c->ns = ns;
    c->rc = NULL;
    c->cl = NULL;
}

void
hq__sconn_release(struct hq__sconn *c)
{
    if (c->rc)
        redisFree(c->rc);
    c->rc = NULL;
    sc_free(c->cl);
    c->cl = NULL;
}

redisContext *
hq__sconn_for_shard(struct hq__sconn *c, unsigned shard, struct hq__err *err)
{
    if (is_cluster(c->addr))
        return sc_slot_rc(c, c->ns ? hq__cluster_shard_slot(c->ns, shard) : 0,
                          shard, err);
    /* A broken connection stays broken in hiredis: make a new one. */
    if (c->rc == NULL || c->rc->err) {
        if (c->rc)
            redisFree(c->rc);
        c->rc = hq__conn_connect_sync(c->addr, err);
    }
    return c->rc;
}

static redisReply *
take_reply(redisContext *c, redisReply *r, const char *name,
           struct hq__err *err)
{
    if (r == NULL) {
        hq__err_set(err, HQ_ESTORE, "script %s: %s", name,
                    c->errstr[0] ? c->errstr : "no reply from redis");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        hq__err_set(err, HQ_ESTORE, "script %s: %s", name, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* A blocking script call being sent: its connection and command. */
struct sync_call {
    redisContext *rc;
    char prefix[HQ_PREFIX_MAX];
    const char **cmd;
    size_t *cmdlen;
};

/* Connect if need be and build the EVALSHA of `name` on `shard` into `sc`;
 * HQ_OK, or an error with `err` set. sync_call_release() in both cases. */
static int
sync_call_init(struct sync_call *sc, struct hq__sconn *c, unsigned shard,
               const char *name, int argc, const char **argv,
               const size_t *argvlen, struct hq__err *err)
{
    memset(sc, 0, sizeof(*sc));
    if (hq__store_script(name) == NULL || argc < 0 || argc > HQ_CONN_MAX_ARGS - 4)
        return hq__err_set(err, HQ_EINVAL, "no script named '%s'", name);
    sc->rc = hq__sconn_for_shard(c, shard, err);
    if (sc->rc == NULL)
        return HQ_ESTORE;
    hq__store_prefix(c->ns, shard, sc->prefix, sizeof(sc->prefix));
    sc->cmd = malloc(sizeof(*sc->cmd) * (size_t)(argc + 4));
    sc->cmdlen = malloc(sizeof(*sc->cmdlen) * (size_t)(argc + 4));
    if (sc->cmd == NULL || sc->cmdlen == NULL)
        return hq__err_set(err, HQ_ENOMEM, "script %s: out of memory", name);
    return hq__store_eval_cmd(name, 0, sc->prefix, argc, argv, argvlen,
                             sc->cmd, sc->cmdlen);
}

static void
sync_call_release(struct sync_call *sc)
{
    free(sc->cmd);
    free(sc->cmdlen);
}

redisReply *
hq__sconn_eval(struct hq__sconn *c, unsigned shard, const char *name,
               int argc, const char **argv, const size_t *argvlen,
               struct hq__err *err)
{
    struct sync_call sc;
    redisReply *r = NULL;
    int64_t deadline = hq__mono_ms() + SCL_PATIENCE_MS;

    for (;;) {
        if (sync_call_init(&sc, c, shard, name, argc, argv, argvlen, err) != HQ_OK)
            break;
        r = redisCommandArgv(sc.rc, argc + 4, sc.cmd, sc.cmdlen);
        if (hq__store_is_noscript(r)) {
            freeReplyObject(r);
            hq__store_eval_cmd(name, 1, sc.prefix, argc, argv, argvlen, sc.cmd,
                              sc.cmdlen);
            r = redisCommandArgv(sc.rc, argc + 4, sc.cmd, sc.cmdlen);
        }
        /* On a cluster: a call redirected or refused did not run. */
        if (sc_follow(c, r, 1, deadline)) {
            freeReplyObject(r);
            r = NULL;
            sync_call_release(&sc);
            continue;
        }
        r = take_reply(sc.rc, r, name, err);
        break;
    }
    sync_call_release(&sc);
    return r;
}

int
hq__sconn_eval_append(struct hq__sconn *c, unsigned shard, const char *name,
                      int argc, const char **argv, const size_t *argvlen,
                      struct hq__err *err)
{
    struct sync_call sc;
    int ret;

    ret = sync_call_init(&sc, c, shard, name, argc, argv, argvlen, err);
    if (ret == HQ_OK &&
        redisAppendCommandArgv(sc.rc, argc + 4, sc.cmd, sc.cmdlen) != REDIS_OK)
        ret = hq__err_set(err, HQ_ENOMEM, "script %s: out of memory", name);
    sync_call_release(&sc);
    return ret;
}

redisReply *
hq__sconn_eval_reply(struct hq__sconn *c, unsigned shard, int *noscript,
                     struct hq__err *err)
{
    void *r = NULL;
    redisContext *rc = c->rc;
    struct hq__redirect rd;

    *noscript = 0;
    if (is_cluster(c->addr)) {
        /* The context the call was appended to: the map has not been read
         * since (only a blocking call reads it, and those come after). */
        rc = sc_slot_rc(c, c->ns ? hq__cluster_shard_slot(c->ns, shard) : 0,
                        shard, err);
        if (rc == NULL)
            return NULL;
    }
    if (rc == NULL) {
        hq__err_set(err, HQ_ESTORE, "script (pipelined): not connected");
        return NULL;
    }
    if (redisGetReply(rc, &r) != REDIS_OK)
        r = NULL;
    if (hq__store_is_noscript(r) ||
        (r && ((redisReply *)r)->type == REDIS_REPLY_ERROR &&
         hq__cluster_redirect_parse(((redisReply *)r)->str, ((redisReply *)r)->len,
                                    &rd) != HQ_REDIRECT_NONE)) {
        *noscript = 1;
        hq__err_set(err, HQ_ESTORE, "%s", ((redisReply *)r)->str);
        freeReplyObject(r);
        return NULL;
    }
    return take_reply(rc, r, "(pipelined)", err);
}
